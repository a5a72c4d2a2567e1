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
 *                 incarnation of each rank
 *
 * Threads and what they own:
 *   main (pd_server_run)  the TCP accept loop; starts connection threads
 *   shm acceptor          the same for the shared-memory socket
 *   coordinator watcher   reads the coordinator connection: WORKER_GONE,
 *                         WORKER_JOIN, SHUTDOWN; its loss stops the server
 *   connection threads    one per accepted connection; each owns its
 *                         srv_conn (buffers, mapped regions) and the
 *                         connection's reads and writes
 * Lock order: pd_server.mu before a table's lock (never the other way).
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
#include "frame/frame.h"
#include "frame/hello.h"
#include "server/server.h"
#include "server/table.h"

/* A peer that stalls in the middle of a frame this long is disconnected. */
#define PD_FRAME_STALL_MS 30000

/* A worker's shared buffer (paramd_alloc) mapped into this server:
 * connection thread only (regions.c). */
typedef struct srv_region {
    uint64_t id;
    uint8_t *base;
    uint64_t bytes;
} srv_region;

typedef struct srv_conn {
    struct srv_conn *next;
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
    srv_region *regions; /* the worker's shared buffers mapped here */
    uint32_t nregions, regions_cap;
    uint8_t ctrl[PD_MAX_CTRL_PAYLOAD + 1];
} srv_conn;

struct pd_server {
    pd_server_opts o;
    char bound[PD_MAX_ADDR + 1];
    int lfd;
    int shm_lfd;                   /* -1: shared memory not offered */
    char shm_name[PD_MAX_ADDR + 1]; /* "@paramd-..." or "" */
    pthread_t shm_thread;
    int shm_thread_started;
    pd_conn *coord;
    pd_pool *pool;        /* apply threads (o.apply_threads), NULL: inline;
                           * shared by every table, freed last */
    int32_t index, S, W;  /* W: worker slots */
    char plugin_dir[PD_MAX_PLUGIN_FILE]; /* o.plugin_dir made absolute;
                                          * "": no plugins */
    pd_key key;           /* the cluster secret (has_key) */
    int has_key;
    pd_key grant;         /* the coordinator's: checks rank tickets */
    uint32_t max_tables;  /* quotas from the coordinator (REG_SERVER) */
    uint64_t max_table_bytes;
    pthread_t coord_thread;
    int coord_thread_started;

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
    srv_conn *conns;
    int nthreads;
    int stopping;
    int lost_coordinator;
    uint64_t batches;     /* atomic: BATCH frames executed */
    uint64_t batched;     /* atomic: inner requests they held */
    uint64_t regions;     /* atomic: shared buffers mapped now */
    uint64_t region_bytes; /* atomic: their bytes */
    uint64_t region_pushes, region_pulls; /* atomic: requests served so */
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

pd_table *srv_table(pd_server *s, uint32_t id); /* NULL: none */
int srv_on_table_create(srv_conn *sc, const pd_hdr *h);
int srv_on_write(srv_conn *sc, const pd_hdr *h);   /* SET, PUSH */
int srv_on_pull(srv_conn *sc, const pd_hdr *h);
int srv_on_sparse(srv_conn *sc, const pd_hdr *h);  /* SPARSE_PUSH, _PULL */
int srv_on_stats(srv_conn *sc, const pd_hdr *h);
/* The push rq of this connection's worker, between the membership checks
 * (srv_push_begin / srv_push_end). */
int srv_push(srv_conn *sc, pd_table *t, const pd_table_req *rq, pd_err *e);

/* ==== regions.c ========================================================= */

int srv_on_region_map(srv_conn *sc, const pd_hdr *h);
int srv_on_region_unmap(srv_conn *sc, const pd_hdr *h);
int srv_on_push_region(srv_conn *sc, const pd_hdr *h);
int srv_on_pull_region(srv_conn *sc, const pd_hdr *h);
/* Unmap every region of sc (its connection ends). */
void srv_regions_drop_all(srv_conn *sc);

/* ==== batch.c =========================================================== */

int srv_on_batch(srv_conn *sc, const pd_hdr *h);

/* ==== membership.c ====================================================== */

/* The coordinator watcher's thread. */
void *srv_coord_main(void *arg);
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
