/*
 * coord_impl.h - the inside of the coordinator, shared by its files:
 *
 *   coord.c    start, the accept loop, a connection's thread and its
 *              dispatch, stop and free; the replies
 *   workers.c  servers and workers registering, joins, the cluster map,
 *              barriers, heartbeats and the monitor, leaving
 *   tables.c   the table registry (TABLE_OPEN, TABLE_READY)
 *
 * coord.c's opening essay describes the design; the rules of the lock are
 * there ("Threads").
 */
#ifndef PARAMD_COORD_COORD_IMPL_H
#define PARAMD_COORD_COORD_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "coord/coord.h"
#include "frame/frame.h"
#include "frame/hello.h"
#include "table/def.h"
#include "wire/wire.h"

enum { W_NEW = 0, W_LIVE, W_LEFT, W_DIED, W_FREE, W_JOINING };

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
    struct pd_coord *co;
    pd_conn *conn;
    uint32_t role;
    int32_t rank;   /* worker rank once registered */
    int32_t server; /* server index once registered, else -1 */
    int heartbeat;  /* a worker's heartbeat connection */
    int32_t hb_rank; /* the rank it beats for */
    uint32_t gen;    /* wgen[rank] when it registered */
    pd_hello hello;  /* what it said in HELLO: its role, and the rank
                      * ticket it showed (checked against grant) */
    uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];
} co_conn;

struct pd_coord {
    pd_coord_opts o;
    char bound[PD_MAX_ADDR + 1];
    int lfd;
    pd_key key;         /* the cluster secret (has_key) */
    int has_key;
    pd_key grant;       /* signs rank tickets; random at start, handed to
                         * servers only (frame/auth.h) */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* any change a waiter may wait for */
    char (*server_addr)[PD_MAX_ADDR + 1]; /* S */
    co_conn **server_conn;                /* S */
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
    co_table *tables;     /* id = index + 1 */
    uint32_t ntables, tcap;
    uint64_t barrier_gen;
    int32_t barrier_arrived;
    uint64_t epoch;
    co_conn *conns;
    int nthreads;
    int stopping;
};

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
int co_on_reg_server(co_conn *cc, const pd_hdr *h);
int co_on_join_reply(co_conn *cc, const pd_hdr *h);
int co_on_reg_worker(co_conn *cc, const pd_hdr *h);
int co_on_map(co_conn *cc, const pd_hdr *h);
int co_on_barrier(co_conn *cc, const pd_hdr *h);
int co_on_heartbeat(co_conn *cc, const pd_hdr *h);
int co_on_bye(co_conn *cc, const pd_hdr *h);
/* The heartbeat monitor's thread: removes workers silent too long. */
void *co_monitor_main(void *arg);

/* ==== tables.c ========================================================== */

int co_on_table_open(co_conn *cc, const pd_hdr *h);
int co_on_table_ready(co_conn *cc, const pd_hdr *h);

#endif
