/*
 * client_impl.h - the worker library's own types, and the functions its
 * files call in one another.  src/client/client.c has the overview: which
 * file does what, the threads, and the lock order.
 *
 * Not API, and not the tests' window either (that is client_internal.h):
 * nothing here is exported from libparamd.so (-fvisibility=hidden).  Each
 * lock's comment says what it guards; a field read without its lock says
 * so and is accessed atomically.  Each function's contract is at its
 * definition, in the file named above its prototype.
 */
#ifndef PARAMD_CLIENT_IMPL_H
#define PARAMD_CLIENT_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "frame/auth.h"
#include "frame/frame.h"
#include "net/conn.h"
#include "net/fault.h"
#include "paramd.h"
#include "wire/wire.h"

/* ==== Constants ========================================================= */

enum { TR_AUTO = 0, TR_TCP, TR_SHM }; /* option transport= */

#define PD_WAIT_YIELD_S 50e-6 /* a waiter yields this long before sleeping */

/* Coalescing (the outbox, outbox.c): frames up to coalesce_bytes (and pulls
 * of values up to as many bytes) wait in their link's outbox and go as one
 * BATCH.  Option coalesce_bytes=, 0: off. */
#define PD_COALESCE_DEFAULT 16384
#define PD_COALESCE_MIN 64
#define PD_COALESCE_MAX 65536
/* A batch is sent once it holds this many bytes of frames (or of pulled
 * values), well under the protocol's PD_MAX_BATCH: the server starts on a
 * batch only once it has all of it, so smaller batches let it work on one
 * while the caller writes the next; 64 KiB did best over both transports
 * (bench/README.md, "Figures once kept in code comments"). */
#define OB_FLUSH_BYTES (64u << 10)
_Static_assert(OB_FLUSH_BYTES >= PD_COALESCE_MAX && OB_FLUSH_BYTES <= PD_MAX_BATCH,
               "a coalescable frame must fit an empty outbox, a batch the protocol");
#define OB_IOV_MAX 256  /* iovecs of one flush, BATCH header aside (the
                         * kernel takes 1024) */

/* ==== Types ============================================================= */

typedef struct pending {
    uint64_t id;
    uint16_t type;
    paramd_request *req;
    float *dst;      /* PULL, SPARSE_PULL: where the reply's floats go */
    uint64_t count;  /* PULL, SPARSE_PULL: floats expected */
    /* SPARSE_PULL to one of several servers: the rows read into dst are
     * then scattered, row i to out + pos[i]*dim (the caller's order). */
    const uint64_t *pos;
    float *out;
    uint32_t dim;
    char *text;      /* STATS: the reply's text (PD_MAX_CTRL_PAYLOAD+1) */
    /* BATCH: the marker queued just before the frames of one batch; it
     * belongs to no request (req is NULL). */
    uint32_t nbatch; /* inner frames right after it in the FIFO */
    uint64_t bound;  /* the largest reply those frames can get */
} pending;

/* Who holds a link's read role (pd_link.reader). */
enum { RD_NONE = 0, RD_RX, RD_CALLER };

/* A caller waiting on a link that someone else reads (a follower): queued
 * in the link's list, on the caller's stack.  It sleeps on its request's
 * condition variable until the request completes or the role is handed to
 * it (granted: set under q_mu and req->mu, peeked at atomically). */
typedef struct rd_waiter {
    paramd_request *req;
    int granted;
    struct rd_waiter *next, *prev;
} rd_waiter;

typedef struct pd_link {
    paramd_client *c;
    int index;
    char addr[PD_MAX_ADDR + 1];
    uint64_t epoch;          /* the map epoch addr is from (a lost server's
                              * replacement: connect.c, cl_recover_link) */
    char host[64];           /* the server's host name (its welcome's
                              * identity), for messages; "" if unknown */
    pd_conn *conn;
    pthread_t rx;
    int rx_started;
    pthread_mutex_t send_mu; /* guards writes on conn and next_id */
    uint64_t next_id;
    pthread_mutex_t q_mu;    /* guards q*, dead, dead_msg, reader, rx_stop,
                              * the followers wq* */
    pending *q;              /* ring of qcap */
    size_t qhead, qlen, qcap;
    uint64_t due;            /* bytes of pulled values the FIFO awaits */
    uint64_t popped;         /* entries ever taken off the FIFO */
    int dead;                /* written under q_mu, atomically: a sender may
                              * peek at it without the lock */
    char dead_msg[PD_ERRMSG_MAX];
    /* The read side (reader.c).  reader says who holds the
     * role; the holder reads it without the lock (only the holder changes
     * it, under q_mu, when it gives the role up).  The receiver thread
     * sleeps on rx_cv until it is given the role or rx_stop is set. */
    int reader;              /* RD_NONE, RD_RX, RD_CALLER */
    int rx_stop;             /* paramd_close: the receiver thread ends */
    pthread_cond_t rx_cv;
    rd_waiter *wq, *wq_tail; /* followers, in the order they came */
    /* The outbox, guarded by send_mu: small frames not yet sent, in order.
     * ob_bytes has room for a BATCH header then OB_FLUSH_BYTES, and is
     * never moved once allocated, so ob_iov may point into it; ob_iov[0] is
     * the BATCH header, the frames' bytes follow (copied into ob_bytes, or
     * the caller's own buffers for parts over OB_COPY_MAX).  ob_n is also
     * read without the lock (atomically) by waiters deciding whether to
     * flush. */
    uint8_t *ob_bytes;
    size_t ob_used;          /* bytes copied after the BATCH header */
    struct iovec ob_iov[OB_IOV_MAX + 1];
    int ob_niov;             /* >= 1 */
    int ob_run;              /* the last iovec is a run of ob_bytes */
    size_t ob_frames;        /* bytes of the frames held: a BATCH payload */
    uint64_t ob_values;      /* bytes of values their pulls ask for */
    uint64_t ob_bound;       /* the largest reply they can get */
    pending *ob_ents;        /* the frames' sub-requests, ob_cap */
    size_t ob_n, ob_cap;
    /* The reader's buffers (the holder of the read role only): an error
     * or control payload (PD_MAX_CTRL_PAYLOAD + 1 bytes), a BATCH reply. */
    uint8_t *msgbuf;
    uint8_t *rxbuf;
    size_t rxcap;
    /* Shared buffers (paramd_alloc) can be mapped into this server: the
     * link is on shared memory and the server offers them.  Set once at
     * connect. */
    int regions_ok;
} pd_link;

/* A shared buffer (paramd_alloc): a memfd mapped here and, through each
 * shared-memory link whose server accepted it, in that server.  Pushes
 * from it and pulls into it name the range instead of carrying the floats
 * (region.c).  Guarded by reg_mu; `on` never changes once
 * the region is in the list. */
typedef struct region {
    struct region *next;
    uint64_t id;
    uint8_t *base;
    size_t bytes;   /* mapped here: a multiple of the page size */
    uint8_t *on;    /* S: mapped in server k (read and written atomically:
                     * a lost server's replacement maps it again) */
    int fd;         /* its memfd, kept to map it into a replacement
                     * server (region_remap); -1: none */
} region;

/* A blocking call's wait, registered while it lasts (waits.c). */
typedef struct cl_wait {
    struct cl_wait *next, *prev;
    int64_t since, mark; /* pd_now_ms at its start; the interval logged */
    int32_t server;      /* the server it waits on, -1: the coordinator */
    char what[160];      /* "a pull of table 's' at clock 7 from server 0" */
} cl_wait;

struct paramd_request {
    pthread_mutex_t mu; /* guards outstanding, err, msg */
    pthread_cond_t cv;
    int outstanding;
    int err;
    int64_t clock_seen; /* largest clock in a reply (pull: table's applied) */
    paramd_table *table; /* the table of a pull or push, else NULL */
    char msg[PD_ERRMSG_MAX];
    paramd_client *c;
    /* The link of its first sub-request, and whether others went to other
     * links: a request on one link is read by its waiter (req_finish).
     * Set under mu while the request is issued, read once it is. */
    pd_link *link;
    int multi;
    int heap; /* allocated by an _async call */
    void *owned; /* memory the request's frames point into, freed at the end */
    /* Sending again after a lost server's replacement (request.c,
     * req_finish): which links failed because their server was lost (bit
     * k: server k; servers 64 and up are never retried), whether another
     * error came too (then nothing is retried), and how to issue the
     * request's part for one server again.  The op_ fields describe the
     * call (its buffers stay valid until it returns or is waited for). */
    uint64_t lost;
    int other_err;
    void (*reissue)(paramd_request *r, int32_t server);
    uint16_t op_type;
    uint64_t op_off, op_count;
    const float *op_src;
    float *op_dst;
    int64_t op_clock;
    void *op_plan; /* a sparse call's plan (sparse.c), freed at the end */
    /* With replicated shards (the map's replicas > 1), the id of each
     * frame the request sent, with its server, in order: sent again after
     * a failover, its frames keep their ids, so that the new primary
     * recognises those it applied already (server/replica.c).  replay_srv:
     * the server whose part is being sent again (-1: none), replay_pos
     * where in rid it is.  Touched only by the thread issuing r. */
    struct { int32_t srv; uint64_t id; } *rid;
    uint32_t nrid, caprid, replay_pos;
    int32_t replay_srv;
};

struct paramd_table {
    paramd_client *c;
    paramd_table *next;
    uint32_t id;
    uint64_t n;
    pd_table_def def;
    char name[PD_MAX_NAME + 1];
    int64_t clock_seen; /* newest applied clock a pull saw (atomic) */
};

struct paramd_client {
    char coord_addr[PD_MAX_ADDR + 1];
    int timeout_ms;
    int peer_timeout_ms;  /* a TCP peer silent this long is dead (tcp.c) */
    uint32_t op_timeout_ms; /* op_timeout_ms=: sent in every HELLO, so the
                           * servers and the coordinator end a wait held
                           * for us after this long (0: never) */
    uint64_t chunk_bytes;
    int transport;        /* TR_AUTO, TR_TCP, TR_SHM */
    uint64_t shm_ring;    /* bytes per direction of a shm pd_link */
    int tool;             /* option role=tool: no rank, no tables, no
                           * pushes, no barriers (connect.c) */
    char host_id[PD_MAX_ADDR + 1]; /* this host's identity (net/host.h):
                                    * shm only to servers with the same */
    const char *size_var; /* the launcher's world-size variable that goes
                           * with the rank variable used, or NULL */
    int64_t launch_size;  /* its value (checked against W at connect) */
    int32_t rank, W, S;   /* rank -1: a tool */
    pd_key key;           /* the cluster secret (option secret_file=,
                           * PARAMD_SECRET_FILE); has_key 0: none */
    int has_key;
    pd_ticket ticket;     /* the rank's ticket from REG_WORKER: shown in
                           * every later HELLO (has_ticket) */
    int has_ticket;
    int32_t slots; /* M: worker slots (ranks 0..M-1); servers report it */
    uint64_t epoch;
    int64_t clock;
    uint64_t barriers; /* released before our rank was given + ours since
                        * (paramd_barrier_count; atomic: a rejoin on the
                        * heartbeat thread reads it) */
    uint32_t rejoin_ms; /* the map's rejoin window: a lost coordinator is
                         * reconnected to for this long (connect.c) */
    uint32_t replace_ms; /* the map's replacement window: a request to a lost
                          * server waits for its replacement (SERVER_WAIT)
                          * and is sent to it again (request.c); 0: fails */
    uint32_t replicas;   /* the map's copies of each shard: > 1, requests
                          * keep their frames' ids to be sent again */
    pthread_mutex_t recover_mu; /* one link recovered at a time (connect.c,
                                 * cl_recover_link); taken before coord_mu */
    int closing;          /* paramd_close began (atomic): nothing is retried */
    uint64_t coalesce_bytes; /* 0: every frame is sent at once */
    pthread_mutex_t coord_mu; /* guards coord, coord_id and creating* */
    pd_conn *coord;
    uint64_t coord_id;
    /* The table this worker is creating, between the TABLE_OPEN that made
     * it the creator and its TABLE_READY (0: none): a rejoin says so. */
    uint32_t creating;
    char creating_name[PD_MAX_NAME + 1];
    uint64_t creating_n;
    char creating_spec[PD_MAX_SPEC + 1];
    pd_link *links; /* S */
    int heartbeat_ms;          /* the coordinator's timeout; 0: none */
    pthread_t hb;              /* heartbeat thread, on its own connection */
    int hb_started;
    pthread_mutex_t hb_mu;     /* guards hb_stop */
    pthread_cond_t hb_cv;
    int hb_stop;
    int hb_kick;               /* (under hb_mu) a link broke: beat now, so
                                * that the coordinator knows this worker
                                * waits for a replacement (connect.c) */
    paramd_table *tables;
    char fault[PD_FAULT_SPEC_MAX + 1]; /* option fault=: tests only; "" off */
    int shared_buffers;     /* option shared_buffers=: map paramd_alloc's
                             * buffers into same-host servers */
    pthread_mutex_t reg_mu; /* guards regions (never held while waiting) */
    region *regions;
    uint64_t nregions;      /* atomic: how many; a lookup peeks at it */
    pthread_mutex_t map_mu; /* held through the mapping or unmapping of a
                             * buffer on every link, so that descriptors
                             * and REGION_MAP frames go out in one order;
                             * guards next_region */
    uint64_t next_region;
    /* Who read the replies (atomic counters; client_internal.h). */
    uint64_t n_by_caller, n_by_rx, n_rx_wakes, n_handoffs;
    pthread_mutex_t wait_mu; /* guards waits (a leaf: waits.c) */
    cl_wait *waits;
    pthread_mutex_t err_mu; /* guards errmsg */
    char errmsg[PD_ERRMSG_MAX];
};

/* ==== Small helpers used by several files =============================== */

/* The read role (pd_link.reader, reader.c): written under q_mu,
 * atomically, so that a thread may peek at it without the lock. */
static inline int rd_get(pd_link *l) { return __atomic_load_n(&l->reader, __ATOMIC_RELAXED); }
static inline void rd_set(pd_link *l, int who) { __atomic_store_n(&l->reader, who, __ATOMIC_RELAXED); }

/* 1 while r has sub-requests outstanding: a peek without the lock (the
 * count is written atomically under it). */
static inline int req_pending(paramd_request *r) {
    return __atomic_load_n(&r->outstanding, __ATOMIC_ACQUIRE) > 0;
}

static inline void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ==== Cross-file functions ============================================== */

/* connect.c */
int cl_err(paramd_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int coord_rpc(paramd_client *c, uint16_t type, uint32_t table, pd_buf *b,
              uint8_t *reply, size_t *replylen);
/* region.c: map every shared buffer into link k's server, a lost
 * server's replacement (after cl_recover_link connected it). */
void region_remap(paramd_client *c, int32_t k);
/* Server k was lost: wait for its replacement and connect link k to it
 * (if nobody did since).  0, or the error (the client's error says why). */
int cl_recover_link(paramd_client *c, int32_t k);
/* Say (id != 0) or forget (0) which table this worker is creating. */
void coord_creating(paramd_client *c, uint32_t id, const char *name, uint64_t n,
                    const char *spec);

/* request.c */
void req_init(paramd_request *r, paramd_client *c);
void req_done(paramd_request *r, int err, const char *msg);
/* A sub-request on link l failed because the link broke (its server may
 * have been lost): as req_done, remembering the link for a retry. */
void req_lost(paramd_request *r, const pd_link *l, int err, const char *msg);
/* With l's send_mu held: the id of r's next frame on l (request.c). */
uint64_t req_next_id(paramd_request *r, pd_link *l);
void req_add(paramd_request *r, pd_link *l);
void req_sleep(paramd_request *r, const int *granted);
int req_finish(paramd_request *r);

/* rx.c */
int q_reserve(pd_link *l, size_t n);
void q_push(pd_link *l, const pending *p);
void link_fail_all(pd_link *l, int code, const char *msg);
int rx_read(pd_link *l, const pending *p, pd_err *e);
int rx_one(pd_link *l, pd_err *e);
void rx_fail(pd_link *l, int code, pd_err *e);

/* reader.c */
void rd_before_write(pd_link *l);
void link_kick(pd_link *l);
void req_kick(paramd_request *r);
void link_wait(pd_link *l, paramd_request *r);
void req_wait_links(paramd_request *r);
void *link_rx(void *arg);

/* outbox.c */
int batchable(const paramd_table *t, uint16_t type);
void client_flush(paramd_client *c, const paramd_request *waiter);
void link_send_ex(pd_link *l, paramd_request *r, const pending *pt, int can_batch,
                  uint32_t table, int64_t clock, const void *p1, size_t n1,
                  const void *p2, size_t n2, const void *p3, size_t n3);
void link_send(pd_link *l, paramd_request *r, uint16_t type, int can_batch,
               uint32_t table, int64_t clock, const void *pre, size_t npre,
               const void *data, size_t ndata, float *dst, uint64_t count);

/* dense.c */
int table_check_push(paramd_table *t);
int table_open(paramd_client *c, const char *name, uint64_t n, uint32_t kind,
               const char *spec, const float *init, paramd_table **out);

/* waits.c */
void cl_wait_begin(paramd_client *c, cl_wait *w);
void cl_wait_end(paramd_client *c, cl_wait *w);
void cl_wait_check(paramd_client *c);

/* region.c */
int region_lookup(paramd_client *c, const void *p, uint64_t n, region *g);

#endif
