/*
 * coord_impl.h - the inside of the coordinator, shared by its files:
 *
 *   coord.c    start, the accept loop, a connection's thread and its
 *              dispatch, stop and free; the replies
 *   workers.c  servers and workers registering, joins, the cluster map,
 *              barriers, heartbeats and the monitor, leaving
 *   tables.c   the table registry (TABLE_OPEN, TABLE_READY)
 *   checkpoint.c  the consistent cut over every server, the manifest, the
 *              periodic checkpoints, restoring the registry
 *   status.c   what the coordinator tells operators: the STATUS reply,
 *              the metrics endpoint's text, and the waits (barriers,
 *              joins, tables being created) that log whom they wait for
 *   takeover.c a coordinator started again takes a running cluster back
 *              from its servers' and workers' rejoins
 *
 * coord.c's opening essay describes the design; the rules of the lock are
 * there ("Threads").
 */
#ifndef PARAMD_COORD_COORD_IMPL_H
#define PARAMD_COORD_COORD_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "coord/coord.h"
#include "frame/admit.h"
#include "frame/frame.h"
#include "frame/hello.h"
#include "metrics/http.h"
#include "table/def.h"
#include "wire/wire.h"

/* Standbys at once (paramd server --join). */
#define PD_MAX_STANDBYS 64

/* A rank's state.  W_AWAY (a coordinator taking a running cluster back,
 * takeover.c): the servers have seen its worker, which has not rejoined
 * yet; it counts for barriers like W_LIVE until it rejoins or falls
 * silent. */
enum { W_NEW = 0, W_LIVE, W_LEFT, W_DIED, W_FREE, W_JOINING, W_AWAY };

typedef struct co_table {
    char name[PD_MAX_NAME + 1];
    uint64_t n;
    char spec[PD_MAX_SPEC + 1];
    int ready;
    int dropped;
    void *creator; /* the co_conn that creates it, while pending */
} co_table;

typedef struct co_conn {
    struct co_conn *next;
    pd_admit_slot slot; /* its place in the admission counts */
    struct pd_coord *co;
    pd_conn *conn;
    uint32_t role;
    int32_t rank;   /* worker rank once registered */
    int32_t server; /* server index once registered, else -1 */
    int heartbeat;  /* a worker's heartbeat connection */
    int32_t hb_rank; /* the rank it beats for */
    int bye;         /* its worker said BYE (under mu): its close is no death */
    int bumped;      /* (under mu) its REG_WORKER took a rank that the
                      * servers of a cluster being taken back hold
                      * (takeover.c): it is refused */
    uint32_t gen;    /* wgen[rank] when it registered */
    int in_call;     /* (under mu) a request of its is being answered: its
                      * worker, held in a barrier, a table's creation or a
                      * SERVER_WAIT, pushes nothing meanwhile (replace.c) */
    int32_t wait_slot; /* (under mu) the server slot its SERVER_WAIT waits
                        * for; -1: none */
    int32_t copy_of;   /* (under mu) a copy's entry (copies.c), else -1 */
    int32_t standby_at; /* (under mu) a standby (paramd server --join) the
                        * coordinator gave a shard to: its copy entry;
                        * -1: waiting; -2: not a standby; -3: told to
                        * stop (its host was drained: moves.c) */
    char host[PD_MAX_ADDR + 1]; /* a server's host identity (its
                        * REG_SERVER; net/host.h), "" if not said */
    pd_hello hello;  /* what it said in HELLO: its role, and the rank
                      * ticket it showed (checked against grant) */
    struct co_rejoin *rj; /* a server's SERVER_REJOIN being read (its
                           * parts before the last), else NULL */
    uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];
} co_conn;

struct pd_coord {
    pd_coord_opts o;
    char bound[PD_MAX_ADDR + 1];
    int lfd;
    pd_admit admit;     /* connection limits (frame/admit.h; its own lock) */
    pd_key key;         /* the cluster secret (has_key) */
    int has_key;
    pd_key grant;       /* signs rank tickets; random at start, handed to
                         * servers only (frame/auth.h); a coordinator taking
                         * a cluster back adopts the servers' (under mu:
                         * readers copy it under mu) */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* any change a waiter may wait for */
    char (*server_addr)[PD_MAX_ADDR + 1]; /* S */
    co_conn **server_conn;                /* S */
    int64_t *sseen_ms;    /* S: a server's last word (its heartbeat, every
                           * SRV_HEARTBEAT_MS; monotonic ms) */
    uint8_t *ssilent;     /* S: said to be silent (the monitor) */
    int32_t nservers;
    int *wstate;          /* M: W_NEW.. */
    int64_t *wseen_ms;    /* M: last heartbeat or request (monotonic ms) */
    int64_t *wclock;      /* M: the latest clock a worker reported */
    uint32_t *wgen;       /* M: incarnation, bumped at each registration */
    int64_t *wstart;      /* M: clock a joined worker started at; -1: it
                           * started with the cluster */
    int32_t nmembers;     /* slots NEW or LIVE */
    int joining;          /* a join is between PREPARE and COMMIT */
    uint64_t join_id;     /* request id of the current PREPARE */
    int32_t join_replies; /* servers that answered it */
    int64_t join_max;     /* largest frontier answered */
    int join_failed;      /* a server was lost or answered badly */
    pthread_t monitor;    /* heartbeat monitor thread */
    int monitor_started;
    int32_t departed;     /* workers left or died */
    int32_t died;
    int32_t servers_lost; /* servers disconnected before the end */
    co_table *tables;     /* id = index + 1 */
    uint32_t ntables, tcap;
    uint64_t barrier_gen;
    int32_t barrier_arrived;
    uint64_t epoch;
    /* Checkpoints (checkpoint.c) */
    int ck_busy;          /* a checkpoint is being taken (not with a join) */
    uint64_t ck_seq;      /* the newest checkpoint's number */
    uint64_t ck_id;       /* request id of the current phase */
    uint16_t ck_phase;    /* PD_MSG_CKPT_HOLD or _WRITE */
    int32_t ck_replies;   /* servers that answered it */
    int ck_failed;        /* one failed or was lost */
    char ck_err[PD_ERRMSG_MAX];
    int64_t ck_frontier;  /* largest frontier answered to HOLD */
    struct { uint64_t bytes; uint32_t crc; } *ck_files; /* S: answered to WRITE */
    int64_t ck_last_clock; /* the newest checkpoint's clock */
    uint64_t ck_base;     /* the newest checkpoint this coordinator completed:
                           * the next delta's base; 0: none (the next is full) */
    uint32_t ck_base_crc; /* its MANIFEST's CRC-32 */
    uint32_t ck_depth;    /* its depth: 0 full, d: the d-th delta after one */
    int64_t restore_clock; /* workers start here (a restored cluster) */
    pthread_t ck_thread;  /* periodic checkpoints */
    int ck_thread_started;
    co_conn *conns;
    int nthreads;
    int stopping;
    uint64_t *wbar;       /* M: barrier_gen + 1 once the rank arrived at the
                           * barrier being held (status.c) */
    int64_t bar_log_mark; /* the interval the current barrier was last
                           * logged at (ms into its wait) */
    int64_t bar_since;    /* pd_now_ms when its first worker arrived */
    double started;       /* pd_now() at start */
    pd_http *http;        /* the metrics endpoint, or NULL */
    int nbusy;            /* connection threads handling a request: at
                           * stop, the stop waits for their replies */
    char fail_msg[PD_ERRMSG_MAX]; /* why co_fail ended the cluster; "" */
    pthread_t startup;    /* the start-up watch (startup.c) */
    int startup_started;
    /* Taking a running cluster back (takeover.c). */
    int takeover;         /* 1: the first server came with SERVER_REJOIN */
    int32_t rejoined;     /* servers that rejoined */
    int whole_again;      /* every server rejoined: ranks settled from what
                           * they said */
    int32_t naway;        /* ranks W_AWAY */
    uint32_t *tk_gen;     /* M: the newest ticket incarnation a server saw */
    int32_t *tk_gone;     /* M: servers that said the rank is gone */
    double takeover_t0;   /* pd_now() at the first rejoin */
    /* Replacing a lost server (replace.c). */
    int8_t *sdown;        /* S: SD_UP.. */
    int64_t *sdown_until; /* S: when the wait for its replacement ends (ms) */
    double *sdown_t0;     /* S: pd_now() when it was lost */
    uint64_t *sepoch;     /* S: the map epoch its replacement began serving
                           * at (0: the server it started with) */
    char (*sdown_why)[PD_ERRMSG_MAX]; /* S: why it cannot be replaced (SD_GONE) */
    uint8_t *wwait;       /* M: the worker waits in SERVER_WAIT */
    int64_t *srep_clock;  /* S: the clock its replacement's shard goes on at */
    int64_t *srep_from;   /* S: the clock of the checkpoint it restores */
    uint32_t ck_ntables;  /* tables in the newest complete checkpoint's
                           * registry (or the restored one's) */
    int32_t servers_replaced;
    int ck_full_next;     /* the next checkpoint is full (a replacement
                           * restored a shard: it wrote no delta's base) */
    /* Replicated shards (copies.c): entry k * R + j is copy j of slot k. */
    co_conn **cp_conn;    /* S * R */
    char (*cp_addr)[PD_MAX_ADDR + 1]; /* S * R */
    int8_t *cp_state;     /* S * R: CS_* */
    int32_t *cp_promoting; /* S: the entry being promoted (SD_PROMOTING) */
    int copies_ready;     /* every copy was live once: workers may come */
    int32_t promotions;   /* copies that took a lost primary's place */
    int32_t copies_lost;  /* copies whose connection ended or were dropped */
    /* Elastic servers (--elastic, copies.c): RS entries per slot, the
     * last (RS - 1) for a shard moving in; standbys wait for a shard. */
    int32_t RS;           /* copy entries per slot: replicas (+ 1 if elastic) */
    co_conn *standby[PD_MAX_STANDBYS];
    char standby_addr[PD_MAX_STANDBYS][PD_MAX_ADDR + 1];
    int32_t nstandby;
    int32_t mv_slot;      /* the slot whose shard moves (-1: none) */
    int mv_state;         /* MV_* */
    double mv_t0, mv_live_t; /* the drain's start, its shard's seeding done */
    char mv_from[PD_MAX_ADDR + 1];
    char mv_msg[PD_ERRMSG_MAX]; /* what the move did, or why it failed */
    int32_t moves;        /* shards moved (paramd drain, or to a joining host) */
    int mv_auto;          /* the move is the coordinator's own (a server
                           * joined from a host with fewer shards): no
                           * DRAIN waits for its end */
    int mv_leave;         /* the old server stops for good (a host drain)
                           * rather than wait for another shard */
    char hd_host[PD_MAX_ADDR + 1]; /* the host a DRAIN empties ("": none);
                           * no other move starts meanwhile */
};

/* A move's state (mv_state). */
enum { MV_NONE = 0, MV_SEEDING, MV_HANDOVER, MV_DONE, MV_FAILED };

/* How long a worker's request to a lost primary waits for a copy's
 * promotion (the map's replacement window, at least). */
#define PD_COPY_WAIT_MS 60000

/* A copy entry's state. */
enum { CS_NONE = 0, CS_SEEDING, CS_LIVE };

/* A server slot's state (sdown).  SD_PROMOTING: its primary was lost and
 * a copy is being promoted (copies.c). */
enum { SD_UP = 0, SD_LOST, SD_RESTORING, SD_GONE, SD_PROMOTING };

/* ==== coord.c =========================================================== */

/* Replies on cc's connection: success with b's payload (NULL: empty), or
 * an error (logged; the connection stays open: returns 0). */
int co_reply(co_conn *cc, const pd_hdr *req, pd_buf *b);
int co_reply_err(co_conn *cc, const pd_hdr *req, int code, const char *msg);

/* ==== workers.c ========================================================= */

/* mu held: release the barrier if every worker still in the cluster
 * arrived. */
void co_barrier_check(pd_coord *co);
/* mu held: a worker is gone (BYE, disconnect, or silence); servers are
 * told, and the cluster shuts down when the last one went. */
void co_worker_departed(pd_coord *co, int32_t rank, int clean, const char *why);
/* mu held: no worker is left (and no --persist): the servers are told to
 * exit (SHUTDOWN) and the coordinator stops. */
void co_end_if_empty(pd_coord *co);
/* The REG_SERVER reply for server idx (mu held: the grant key), as far
 * as every server gets it (a replacement gets more: replace.c). */
void co_put_reg_server(const pd_coord *co, pd_buf *b, int32_t idx, uint32_t copy);
int co_on_reg_server(co_conn *cc, const pd_hdr *h);
int co_on_join_reply(co_conn *cc, const pd_hdr *h);
int co_on_reg_worker(co_conn *cc, const pd_hdr *h);
int co_on_map(co_conn *cc, const pd_hdr *h);
int co_on_barrier(co_conn *cc, const pd_hdr *h);
int co_on_heartbeat(co_conn *cc, const pd_hdr *h);
int co_on_bye(co_conn *cc, const pd_hdr *h);
/* The heartbeat monitor's thread: removes workers silent too long. */
void *co_monitor_main(void *arg);

/* ==== checkpoint.c ====================================================== */

/* Take a checkpoint now (not under mu): 0 with its number, clock and
 * directory (any may be NULL), or the error (the previous one is kept). */
int co_checkpoint(pd_coord *co, uint64_t *seq, int64_t *clock, char *dir, size_t dirlen,
                  pd_err *e);
int co_on_checkpoint(co_conn *cc, const pd_hdr *h);
int co_on_ckpt_reply(co_conn *cc, const pd_hdr *h);
void *co_ckpt_main(void *arg);
/* At start: the newest checkpoint number in the root; the registry and
 * the clock of the checkpoint at o.restore. */
void co_ckpt_init(pd_coord *co);
int co_restore(pd_coord *co, pd_err *e);
/* ==== replace.c ========================================================= */

/* mu held: server k's connection ended while the cluster runs: wait for a
 * replacement if one can restore its shard, else say why not. */
void co_server_down(pd_coord *co, int32_t k);
/* mu held: a slot waiting for a replacement, or -1. */
int32_t co_replace_slot(const pd_coord *co);
/* A REG_SERVER for slot k, which is waiting for a replacement (mu held;
 * unlocks it): wait until every worker waits, then answer with where to
 * restore from and the clock to go on at. */
int co_reg_replacement(co_conn *cc, const pd_hdr *h, int32_t k, const char *addr);
int co_on_server_ready(co_conn *cc, const pd_hdr *h);
/* mu held: a worker's heartbeat says which servers' links it has broken
 * (bit k: server k): if one waits for a replacement, so does the worker. */
void co_worker_lost(pd_coord *co, int32_t rank, uint64_t lost);
int co_on_server_wait(co_conn *cc, const pd_hdr *h);
/* ==== copies.c ========================================================== */

/* mu held: every server (and, with --replicas, every copy once) is there. */
int co_servers_ready(const pd_coord *co);
/* A REG_SERVER once the primaries are there (mu held; unlocks it): take a
 * free copy entry, or refuse. */
int co_reg_copy(co_conn *cc, const pd_hdr *h, const char *addr);
int co_on_replica_added(co_conn *cc, const pd_hdr *h);
int co_on_replica_drop(co_conn *cc, const pd_hdr *h);
int co_on_promoted(co_conn *cc, const pd_hdr *h);
/* mu held: slot k's primary was lost: promote a live copy, or as
 * co_server_down. */
void co_primary_lost(pd_coord *co, int32_t k);
/* mu held: a copy's connection ended. */
void co_copy_gone(pd_coord *co, co_conn *cc);
/* mu held: SHUTDOWN (with why, or none) to every copy. */
void co_stop_copies(pd_coord *co, const char *why);
const char *co_copy_state_name(int st);
/* mu held: give copy entry `at` to cc, whose REG_SERVER h is answered
 * (under mu), and send its primary REPLICA_ADD. */
int co_copy_assign(co_conn *cc, const pd_hdr *h, int32_t at, const char *addr);

/* ==== moves.c =========================================================== */

/* mu held: some slot lacks one of its --replicas copies. */
int co_copy_wanted(const pd_coord *co);
/* A REG_SERVER with PD_REG_JOIN once the cluster has its servers (mu
 * held; unlocks it): wait as a standby until a drain gives it a shard. */
int co_reg_standby(co_conn *cc, const pd_hdr *h, const char *addr);
/* mu held: cc's connection ended: if it was a standby, it is no more. */
void co_standby_gone(pd_coord *co, co_conn *cc);
int co_on_drain(co_conn *cc, const pd_hdr *h);
/* mu held: the move's standby is live: the old server retires. */
void co_move_handover(pd_coord *co);
/* mu held: the standby took the slot (old: the old server's address). */
void co_move_done(pd_coord *co, const char *old);
/* mu held: the move in progress (if any) failed. */
void co_move_failed(pd_coord *co, const char *why);

/* ==== status.c ========================================================== */

int co_on_status(co_conn *cc, const pd_hdr *h);
/* mu held: wait (releasing mu) until barrier `gen` is released or the
 * coordinator stops, logging whom it waits for at a growing interval; or
 * until limit ms (> 0: the waiting worker's op_timeout_ms) have passed:
 * then PARAMD_ETIMEDOUT with the wait's line in why.  Else 0 (the caller
 * looks at what ended the wait). */
int co_barrier_wait(pd_coord *co, uint64_t gen, int64_t limit, char *why, size_t whylen);
/* mu held: wait until every server answered the join of `rank` (or it
 * failed, or the coordinator stops), logging which servers are silent;
 * limit as above. */
int co_join_wait(pd_coord *co, int32_t rank, int64_t limit, char *why, size_t whylen);
/* mu held: wait until table `id` is ready or dropped, or the coordinator
 * stops, logging which worker is creating it; limit as above. */
int co_table_wait(pd_coord *co, uint32_t id, int64_t limit, char *why, size_t whylen);
/* The metrics endpoint's render function (metrics/http.h). */
void co_metrics_render(void *coord, pd_buf *b);
/* ==== startup.c ========================================================= */

/* The start-up watch's thread: says who is missing, gives up at the
 * deadline. */
void *co_startup_main(void *arg);
/* mu held: end the cluster because of `why`: SHUTDOWN with it to every
 * server, every waiting request answered with it, the run stops. */
void co_fail(pd_coord *co, const char *why);
/* mu held: the text to answer a request that the stop ended: co_fail's
 * reason, else `otherwise`. */
const char *co_stop_reason(const pd_coord *co, const char *otherwise);

/* ==== takeover.c ======================================================== */

int co_on_server_rejoin(co_conn *cc, const pd_hdr *h);
int co_on_worker_rejoin(co_conn *cc, const pd_hdr *h);
/* mu held: a rank that was W_AWAY is settled (rejoined or removed). */
void co_away_settled(pd_coord *co, int32_t rank);
/* mu held: wait until no rank is W_AWAY and every server rejoined (a
 * coordinator taking a cluster back), or the coordinator stops, or limit
 * ms (> 0) passed: then PARAMD_ETIMEDOUT with the reason in why. */
int co_takeover_wait(pd_coord *co, int64_t limit, char *why, size_t whylen);
void co_rejoin_free(co_conn *cc);

/* ==== tables.c ========================================================== */

int co_on_table_open(co_conn *cc, const pd_hdr *h);
int co_on_table_ready(co_conn *cc, const pd_hdr *h);

#endif
