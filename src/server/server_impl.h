/*
 * server_impl.h - the inside of a paramd server, shared by its files:
 *
 *   server.c      start (bind, register with the coordinator), the accept
 *                 loops, stop and free
 *   session.c     a connection's thread: the handshake, then the one
 *                 dispatch of every request frame (plain or in a BATCH)
 *   handlers.c    table creation, dense and sparse pushes and pulls, SET,
 *                 STATS
 *   regions.c     a worker's shared buffers (REGION_MAP, PUSH_REGION, ...)
 *   batch.c       BATCH frames: many small requests in one
 *   membership.c  the coordinator watcher: workers gone and joined, and the
 *                 incarnation of each rank; the heartbeats to the
 *                 coordinator
 *   checkpoint.c  holding tables at a clock, writing them out, restoring
 *   metrics.c     what the server counts for its metrics endpoint and its
 *                 STATS text: requests by kind, and the Prometheus text
 *   replica.c     replicated shards: a primary forwards each update to its
 *                 copies and answers once they applied it; a copy applies
 *                 what its primary forwards, is seeded by it, and takes
 *                 the slot over when promoted; updates sent again are
 *                 recognised by their ids
 *
 * Threads and what they own:
 *   main (pd_server_run)  the TCP accept loop; starts connection threads
 *   shm acceptor          the same for the shared-memory socket
 *   coordinator watcher   reads the coordinator connection: WORKER_GONE,
 *                         WORKER_JOIN, SHUTDOWN; its loss stops the server
 *   heartbeat thread      an empty HEARTBEAT to the coordinator every
 *                         second (writes under coord_send_mu); sleeps on cv
 *                         under mu, woken by pd_server_stop
 *   connection threads    one per accepted connection; each owns its
 *                         srv_conn (buffers, mapped regions) and the
 *                         connection's reads and writes
 *   metrics endpoint      (--metrics) metrics/http.h: renders the
 *                         Prometheus text from the counters and tables
 *   copy threads          (a primary of a replicated shard) one per copy:
 *                         connects to it, seeds it, then reads its
 *                         acknowledgements (replica.c)
 * Lock order: repl_mu before pd_server.mu before a table's lock (never
 * the other way); ack_mu is a leaf.
 * pd_server.mu guards what the comment at its fields says.
 *
 * Lifetime.  pd_server_run returns only once every connection thread has
 * ended and the coordinator watcher has been joined; pd_server_free may
 * run only after that (or after a failed start, when no thread exists),
 * so nothing a thread touches is freed under it.
 */
#ifndef PARAMD_SERVER_SERVER_IMPL_H
#define PARAMD_SERVER_SERVER_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "common/pool.h"
#include "frame/admit.h"
#include "frame/frame.h"
#include "frame/hello.h"
#include "metrics/http.h"
#include "metrics/prom.h"
#include "server/server.h"
#include "server/table.h"


/* A worker's shared buffer (paramd_alloc) mapped into this server:
 * connection thread only (regions.c). */
typedef struct srv_region {
    uint64_t id;
    uint8_t *base;
    uint64_t bytes;
} srv_region;

typedef struct srv_conn {
    struct srv_conn *next;
    pd_admit_slot slot;  /* its place in the server's admission counts */
    pd_conn *conn;       /* NULL until a shared-memory handshake is done */
    pd_conn *io;         /* where the request being handled is read from and
                          * answered: conn, or during a BATCH the memory
                          * connection over its inner frames (connection
                          * thread only; others use conn) */
    int shm_fd;          /* accepted on the shm socket: handshake first */
    struct pd_server *srv;
    int32_t rank;        /* worker rank, -1 for tools (srv.mu: read by
                          * STATS and membership on other threads) */
    uint32_t role;       /* PD_ROLE_* (srv.mu, as rank) */
    uint8_t *buf;        /* payload buffer, grown on demand */
    size_t cap;
    pd_err ioerr;        /* why the connection broke, for the log */
    uint64_t pull_room;  /* bytes of values a pull may still ask for:
                          * UINT64_MAX, or in a BATCH what is left of
                          * PD_MAX_BATCH */
    uint8_t *bin;        /* a BATCH's payload, grown on demand */
    size_t bin_cap;
    pd_batch_item *items; /* its inner requests, grown on demand */
    size_t items_cap;
    pd_buf bout;         /* its inner replies; emptied, not freed, between
                          * batches */
    uint32_t gen;        /* worker: wgen[rank] when it connected (srv.mu) */
    uint32_t op_timeout_ms; /* the worker's deadline for a sync pull's
                          * wait (its HELLO; 0: none; connection thread) */
    uint32_t spent_table; /* a pull of this table (0: none) at spent_clock
                          * timed out: a later part of the same call
                          * (PD_PULL_MORE) that would wait fails at once */
    int64_t spent_clock;
    srv_region *regions; /* the worker's shared buffers mapped here */
    uint32_t nregions, regions_cap;
    /* Replicated shards (replica.c; connection thread). */
    int mut_locked;      /* srv_mut_begin took repl_mu */
    uint64_t repl_need;  /* the last REPL frame an update of this
                          * connection sent: its reply waits for it */
    uint8_t *fwd;        /* a sparse push's payload as it came (the store
                          * folds duplicate keys in place) */
    size_t fwd_cap;
    int seed_fd;         /* a copy: the seed being received, or -1 */
    char seed_path[256];
    uint8_t ctrl[PD_MAX_CTRL_PAYLOAD + 1];
} srv_conn;

/* Replicated shards (replica.c).  The ids of a rank's updates applied
 * here (the newest SRV_DEDUP_N, sorted, in a ring from head), for the
 * rank's incarnation gen: an update sent again after a failover is
 * recognised and answered without being applied twice. */
#define SRV_DEDUP_N 4096
typedef struct srv_dedup {
    uint32_t gen;
    uint32_t head, n;
    uint64_t *id;        /* SRV_DEDUP_N, allocated on first use */
} srv_dedup;

/* A primary's copy of its shard on another server. */
enum { CP_NONE = 0, CP_CONNECTING, CP_SEEDING, CP_LIVE, CP_BROKEN, CP_DROPPED };
typedef struct srv_copy {
    struct pd_server *srv;
    int state;           /* CP_* (ack_mu) */
    uint32_t j;          /* its number, 1..R-1 */
    char addr[PD_MAX_ADDR + 1];
    pd_conn *conn;       /* writes under repl_mu; reads by its thread */
    uint64_t base;       /* repl_seq when its seed went (repl_mu, then fixed) */
    uint64_t acked;      /* REPL frames it acknowledged (ack_mu) */
    int timed_out;       /* (ack_mu) it missed --copy-timeout-ms */
    pd_hdr add;          /* the coordinator's REPLICA_ADD, answered once
                          * the copy is seeded (or failed) */
    pthread_t thread;
    int started;         /* (mu) */
    char why[PD_ERRMSG_MAX]; /* why it broke */
} srv_copy;

/* Requests of one kind (PD_MSG_*, index = type): counted by srv_dispatch
 * with relaxed atomics, read by the metrics endpoint without a lock. */
#define SRV_KINDS 64
typedef struct srv_kind_stats {
    uint64_t count, bytes, errors; /* requests, payload bytes received,
                                    * error replies */
    pd_hist latency;               /* seconds from header read to reply */
} srv_kind_stats;

struct pd_server {
    pd_server_opts o;
    char bound[PD_MAX_ADDR + 1];
    int lfd;
    int shm_lfd;                   /* -1: shared memory not offered */
    char shm_name[PD_MAX_ADDR + 1]; /* "@paramd-..." or "" */
    char host_id[PD_MAX_ADDR + 1];  /* said in every welcome (net/host.h) */
    char advertised[PD_MAX_ADDR + 1]; /* the address registered */
    pthread_t shm_thread;
    int shm_thread_started;
    pd_conn *coord;       /* the coordinator: read by the watcher only; written
                           * (and replaced, when the server rejoins a new
                           * coordinator) under coord_send_mu */
    pd_pool *pool;        /* apply threads (o.apply_threads), NULL: inline;
                           * shared by every table, freed last */
    pd_admit admit;       /* connection limits (frame/admit.h; its own
                           * lock, a leaf) */
    int ntables;          /* tables created (mu), against o.max_tables */
    int32_t index, S, W;  /* W: worker slots */
    int32_t W_start;      /* workers the cluster started with (--workers) */
    uint32_t rejoin_ms;   /* the coordinator's rejoin window: keep serving
                           * this long when it is lost, reconnecting
                           * (membership.c); 0: stop at once */
    char plugin_dir[PD_MAX_PLUGIN_FILE]; /* o.plugin_dir made absolute;
                                          * "": no plugins */
    pd_key key;           /* the cluster secret (has_key) */
    int has_key;
    pd_key grant;         /* the coordinator's: checks rank tickets */
    pthread_t coord_thread;
    int coord_thread_started;
    pthread_t hb_thread;  /* heartbeats to the coordinator (membership.c) */
    int hb_thread_started;

    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t cv;    /* nthreads reached 0; an inflight count fell */
    pd_table *tables[PD_MAX_TABLES];
    uint8_t *gone;        /* W: workers the coordinator said are gone */
    int64_t *jfrom;       /* W: clock a joined worker counts from; -1 */
    uint32_t *wgen;       /* W: incarnation of each rank (bumped on gone
                           * and join: older connections may not push) */
    int32_t *inflight;    /* W: pushes of each rank inside a table now */
    uint32_t *holder;     /* W: the newest ticket incarnation seen for each
                           * rank: an older one may not connect
                           * (membership.c, srv_claim_rank) */
    int32_t join_pending; /* the rank between its join's PREPARE and
                           * COMMIT, else -1 */
    srv_conn *conns;
    int nthreads;
    int stopping;
    int lost_coordinator;
    int retired;          /* (mu) its shard moved away (RETIRE): 1 stop, 2
                           * wait as a standby for another (PD_RETIRE_STAY) */
    uint64_t batches;     /* atomic: BATCH frames executed */
    uint64_t batched;     /* atomic: inner requests they held */
    uint64_t regions;     /* atomic: shared buffers mapped now */
    uint64_t region_bytes; /* atomic: their bytes */
    uint64_t region_pushes, region_pulls; /* atomic: requests served so */
    /* Checkpoints (checkpoint.c): the thread writing one; ck_running and
     * ck_started under mu. */
    pthread_t ck_thread;
    int ck_running, ck_started;
    pthread_mutex_t coord_send_mu; /* writes on the coordinator connection
                                    * after start-up (the watcher's join
                                    * replies, the checkpoint thread's) */
    int32_t *wconns;      /* W, atomic: open connections of each rank
                           * (gate.h's alive: read under a table's lock) */
    srv_kind_stats kinds[SRV_KINDS];
    uint64_t conns_total; /* atomic: connections accepted */
    /* Replicated shards (replica.c). */
    uint32_t replicas;    /* copies of each shard in the cluster (1: none) */
    int32_t copy;         /* atomic (written under mu): 0 this server
                           * serves its slot; j > 0 it is copy j, fed by
                           * the slot's primary (srv_is_primary) */
    int seeded;           /* (mu) a copy: its seed was loaded */
    int feed_conns;       /* (mu) a copy: its primary's connection is open */
    pthread_mutex_t repl_mu; /* the order of a primary's updates and their
                           * forwarding; seed_block, repl_seq, dedup, and
                           * writes on the copies' connections */
    pthread_cond_t repl_cv;  /* (repl_mu) an update ended; a seed's cut
                           * was lifted */
    int64_t seed_block;   /* (repl_mu) > 0: updates of clocked tables for
                           * this clock or later wait (a seed's cut) */
    uint64_t repl_seq;    /* (repl_mu) REPL frames sent */
    srv_dedup *dedup;     /* W (repl_mu) */
    pthread_mutex_t ack_mu; /* copies' state and acked; a leaf */
    pthread_cond_t ack_cv;
    srv_copy copies[PD_MAX_REPLICAS];
    uint64_t repl_dups;   /* atomic: updates sent again, already applied */
    uint64_t repl_frames; /* atomic: REPL frames applied (a copy) */
    double started;       /* pd_now() at start */
    pd_http *http;        /* the metrics endpoint, or NULL */
};

/* ==== session.c ========================================================= */

/* Start a connection thread for c (TCP) or for the accepted shared-memory
 * socket shm_fd (the thread does the handshake). */
void srv_start_conn(pd_server *s, pd_conn *c, int shm_fd);
/* Run one request whose header was read from sc->io: the one dispatch of
 * plain and batched frames.  0 to keep the connection, or an error to
 * close it. */
int srv_dispatch(srv_conn *sc, const pd_hdr *h);
/* Replies on sc->io: success with up to two payload parts, or the error
 * in e (logged at info level). */
int srv_send_ok(srv_conn *sc, const pd_hdr *req, const void *p, size_t n,
                const void *p2, size_t n2);
int srv_reply_err(srv_conn *sc, const pd_hdr *req, const pd_err *e);
/* Read a control payload of exactly `want` bytes into sc->ctrl; a payload
 * of another size is skipped and answered with an error.  0 read, 1
 * answered (the handler returns *rc), else an error that closes. */
int srv_read_fixed(srv_conn *sc, const pd_hdr *h, size_t want, int *rc);
/* sc->buf holds at least n bytes: 0, or -1 (out of memory). */
int srv_ensure_buf(srv_conn *sc, size_t n);
int srv_stopping(pd_server *s);

/* ==== handlers.c ======================================================== */

/* A pull's deadline for request h on sc (more: the frame says
 * PD_PULL_MORE), and the note of its outcome (rc) for the next part. */
int64_t srv_pull_deadline(srv_conn *sc, const pd_hdr *h, int more);
void srv_pull_spent(srv_conn *sc, const pd_hdr *h, int rc);

pd_table *srv_table(pd_server *s, uint32_t id); /* NULL: none */
int srv_on_table_create(srv_conn *sc, const pd_hdr *h);
int srv_on_write(srv_conn *sc, const pd_hdr *h);   /* SET, PUSH */
int srv_on_pull(srv_conn *sc, const pd_hdr *h);
int srv_on_sparse(srv_conn *sc, const pd_hdr *h);  /* SPARSE_PUSH, _PULL */
int srv_on_stats(srv_conn *sc, const pd_hdr *h);
/* The push rq of this connection's worker, between the membership checks
 * (srv_push_begin / srv_push_end). */
int srv_push(srv_conn *sc, pd_table *t, const pd_table_req *rq, pd_err *e);

/* ==== limits.c ========================================================== */

/* The most a dense table t may come to take on this server (values, rule
 * state, a sum per clock of its window, a staging copy); sparse tables
 * grow by rows and are bounded there (sparse.c). */
uint64_t srv_table_max_bytes(const pd_table *t);
/* 0 if a dense table of definition d (a built-in rule's state; a
 * plugin's is counted by srv_table_within_limit) fits in max_bytes (0: no
 * limit), else PARAMD_ELIMIT with a message naming the sizes and the
 * option.  Before anything is allocated. */
int srv_def_within_limit(uint32_t id, const pd_table_def *d, uint64_t max_bytes, pd_err *e);
/* The same for a created table t, exactly. */
int srv_table_within_limit(const pd_table *t, uint64_t max_bytes, pd_err *e);

/* ==== regions.c ========================================================= */

int srv_on_region_map(srv_conn *sc, const pd_hdr *h);
int srv_on_region_unmap(srv_conn *sc, const pd_hdr *h);
int srv_on_push_region(srv_conn *sc, const pd_hdr *h);
int srv_on_pull_region(srv_conn *sc, const pd_hdr *h);
/* Unmap every region of sc (its connection ends). */
void srv_regions_drop_all(srv_conn *sc);

/* ==== checkpoint.c ====================================================== */

/* The coordinator watcher's CKPT_HOLD, CKPT_WRITE (the write runs on a
 * thread of its own and replies when done) and CKPT_ABORT. */
void srv_on_ckpt_hold(pd_server *s, const pd_hdr *h);
void srv_on_ckpt_write(pd_server *s, const pd_hdr *h, const uint8_t *buf);
void srv_on_ckpt_abort(pd_server *s);
/* The coordinator was lost: a checkpoint it began will never complete, so
 * its holds are lifted. */
void srv_ckpt_lost(pd_server *s);
/* Join a checkpoint thread (stopping: its waits fail once tables stop). */
void srv_ckpt_join(pd_server *s);
/* At start: the tables of the checkpoint at o.restore.  0 or the error. */
int srv_restore(pd_server *s, pd_err *e);
/* This server replaces lost server s->index (coord/replace.c): restore its
 * shard from checkpoint dir (clock C), go on at clock A with the members
 * member[0..W) (1: in the cluster), and tell the coordinator
 * (SERVER_READY).  At start, before serving. */
int srv_replace(pd_server *s, const char *dir, int64_t C, int64_t A, const uint8_t *member,
                pd_err *e);
/* A copy: the tables of seed file `path` (replica.c wrote it), n of them
 * after the reader's position.  0 or the error. */
int srv_load_tables(pd_server *s, pd_ckr *r, uint32_t n, pd_err *e);

/* ==== replica.c ========================================================= */

/* An update (SET, PUSH, SPARSE_PUSH, PUSH_REGION, TABLE_CREATE) of table t
 * (NULL: TABLE_CREATE) by sc, request h.  In a replicated cluster begin
 * takes repl_mu, so that updates are applied and forwarded in one order;
 * it returns 1 if this is an update sent again that was applied already
 * (answer success, apply nothing), else 0.  end (after the apply, rc its
 * result) records the id and, on a primary, forwards the frame, type
 * `type` with the payload parts p1, p2, to every copy, then unlocks.  The
 * reply (srv_send_ok) then waits for the copies (srv_repl_wait). */
int srv_mut_begin(srv_conn *sc, const pd_hdr *h, pd_table *t);
int srv_is_primary(pd_server *s);
void srv_mut_end(srv_conn *sc, const pd_hdr *h, int rc, uint16_t type, const void *p1,
                 size_t n1, const void *p2, size_t n2);
/* Before a reply to the connection itself: wait until every live copy
 * applied the updates this connection forwarded.  0, or an error (the
 * server stops: no reply). */
int srv_repl_wait(srv_conn *sc);
/* A membership event (WORKER_GONE, WORKER_JOIN from the coordinator), in
 * the order of updates: run it (fn) and forward it to the copies. */
void srv_repl_member(pd_server *s, const pd_hdr *h, const uint8_t *buf,
                     void (*fn)(pd_server *, const pd_hdr *, const uint8_t *, int));
/* A copy's handlers: REPL and SEED from its primary. */
int srv_on_repl(srv_conn *sc, const pd_hdr *h);
int srv_on_seed(srv_conn *sc, const pd_hdr *h);
/* The coordinator watcher's: REPLICA_ADD (a primary: seed that copy and
 * feed it), REPLICA_DROP's reply, PROMOTE (a copy: serve the slot). */
void srv_on_replica_add(pd_server *s, const pd_hdr *h, const uint8_t *buf);
void srv_on_drop_reply(pd_server *s, const pd_hdr *h);
void srv_on_promote(pd_server *s, const pd_hdr *h);
/* The coordinator was lost: a primary drops its copies (none can be
 * promoted now) and goes on alone. */
void srv_repl_lost_coordinator(pd_server *s);
/* Stop and join the copy threads (pd_server_run's end). */
void srv_repl_stop(pd_server *s);
/* The handshake's check of a server role: the primary feeding this copy. */
int srv_claim_feed(pd_server *s, const pd_hello *peer, pd_err *e);

/* ==== batch.c =========================================================== */

int srv_on_batch(srv_conn *sc, const pd_hdr *h);

/* ==== metrics.c ========================================================= */

void srv_metrics_init(pd_server *s);
/* A request of type `type` with `bytes` of payload took `secs`. */
void srv_count_request(pd_server *s, uint16_t type, uint64_t bytes, double secs);
void srv_count_error(pd_server *s, uint16_t type);
/* gate.h's alive callback: 1 if rank w has a connection here. */
int srv_rank_alive(void *server, int32_t w);
/* The metrics endpoint's render function (metrics/http.h). */
void srv_metrics_render(void *server, pd_buf *b);

/* ==== membership.c ====================================================== */

/* WORKER_GONE and WORKER_JOIN (h, payload buf) applied here; reply: a
 * PREPARE's frontier goes to the coordinator (not from a copy). */
void srv_member_event(pd_server *s, const pd_hdr *h, const uint8_t *buf, int reply);

/* The coordinator watcher's thread. */
void *srv_coord_main(void *arg);
/* The heartbeat thread: an empty HEARTBEAT to the coordinator every
 * SRV_HEARTBEAT_MS (under coord_send_mu) until stopping, so that a server
 * that is stopped or hung is named by the coordinator (paramd status). */
#define SRV_HEARTBEAT_MS 1000
void *srv_heartbeat_main(void *arg);
/* The handshake's last check (pd_hello_rules.claim; arg: the server): a
 * worker's ticket must be at least as new as the newest seen for its
 * rank, so a rank the coordinator gave to a newer worker cannot be taken
 * back by an older one's ticket.  0 or PARAMD_EWORKER. */
int srv_claim_rank(void *arg, const pd_hello *peer, pd_err *e);
/* A worker connection remembers its rank's incarnation (after HELLO). */
void srv_bind_rank(srv_conn *sc);
/* 0 and the push may go into a table (then srv_push_end), or
 * PARAMD_EWORKER: the rank was given to a newer incarnation. */
int srv_push_begin(srv_conn *sc, pd_err *e);
void srv_push_end(srv_conn *sc);

#endif
