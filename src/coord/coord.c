/*
 * coord.c - the coordinator: hands out ranks and the cluster map, keeps the
 * table registry, runs barriers, and notices who left.
 *
 * The coordinator never carries tensors.  It answers a handful of small
 * requests per worker: HELLO, REG_WORKER (answered once all S servers have
 * registered, with the map: epoch, S server addresses), TABLE_OPEN per
 * table, BARRIER, BYE.  Servers send HELLO and REG_SERVER and then keep the
 * connection open: closing it (or a SHUTDOWN frame) is how the coordinator
 * ends the cluster.
 *
 * Tables are created exactly once: the first TABLE_OPEN of a name makes the
 * caller its creator (reply created=1); the creator defines the table on
 * every server, writes its initial values, then sends TABLE_READY.  Other
 * workers' TABLE_OPEN of the same name wait until then, so no worker can
 * pull a table before its initial values are in place.  If the creator
 * disconnects first, the entry is dropped and the waiters are told.
 *
 * Membership.  Every rank 0..M-1 (M = --max-workers, default W) is a
 * slot in one state: NEW (one of the W expected at start, not registered
 * yet), LIVE, JOINING, LEFT (said BYE), DIED (disconnected or silent), or
 * FREE (a spare slot never joined).  `nmembers` counts NEW and LIVE slots:
 * barriers wait for them, and the cluster shuts down when it reaches 0.
 * A REG_WORKER takes a NEW rank if one is left (a normal start, clock 0);
 * otherwise a DIED, FREE or LEFT one (in that order; or the rank asked for
 * if it is not NEW, LIVE or JOINING), which is a join.
 *
 * Joins.  The joiner's REG_WORKER thread runs the two phases of
 * server/gate.h ("Joins"), one join at a time: PREPARE to every server,
 * each answers its frontier (the first clock nobody pushed for, over all
 * its tables) on its coordinator connection (read by that server's
 * connection thread here, which records it and wakes the joiner's
 * thread); J = the largest frontier; COMMIT(J) to every server; then the
 * REG_WORKER reply carries J as the joiner's start clock.  Servers hold
 * their clocks >= frontier between the phases (one round trip).  If a
 * server is lost meanwhile, the join is undone with WORKER_GONE and
 * refused.  Ranks have an incarnation (wgen) so that a dead worker's
 * connection ending late never removes the worker that took its rank.
 *
 * Threads: main (accept loop) and one thread per connection.  One mutex
 * `mu` guards all cluster state; one condition variable `cv` wakes every
 * waiter (servers registered, table ready, barrier released, a worker left,
 * stop).  Waiters recheck their own condition, so one broadcast serves all.
 */
#include "coord/coord.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame/hello.h"
#include "wire/map.h"
#include "net/conn.h"
#include "table/spec.h"
#include "wire/wire.h"

/* ==== Types ============================================================= */

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
    uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];
} co_conn;

struct pd_coord {
    pd_coord_opts o;
    char bound[PD_MAX_ADDR + 1];
    int lfd;

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

/* ==== Helpers =========================================================== */

static int reply(co_conn *cc, const pd_hdr *req, pd_buf *b) {
    pd_hdr h = {0};
    h.type = req->type | PD_REPLY;
    h.id = req->id;
    h.table = req->table;
    h.clock = req->clock;
    if (b && b->oom) return pd_send_error(cc->conn, req, PARAMD_ENOMEM, "out of memory");
    return pd_send_frame(cc->conn, &h, b ? b->p : NULL, b ? b->len : 0, NULL,
                         0, NULL, 0, NULL);
}

static int reply_err(co_conn *cc, const pd_hdr *req, int code,
                     const char *msg) {
    pd_log(PD_LOG_INFO, "rejected %s from %s: %s", pd_msg_name(req->type),
           cc->conn->peer, msg);
    pd_send_error(cc->conn, req, code, msg);
    return 0;
}

/* Called with mu held: release the barrier if every worker still in the
 * cluster (NEW or LIVE: not those who left or died) has arrived. */
static void barrier_check(pd_coord *co) {
    if (co->barrier_arrived > 0 && co->barrier_arrived >= co->nmembers) {
        co->barrier_arrived = 0;
        co->barrier_gen++;
        pthread_cond_broadcast(&co->cv);
    }
}

/* Called with mu held: a worker is gone (BYE, disconnect, or silence).
 * Servers are told, so that sync clocks stop waiting for it. */
static void worker_departed(pd_coord *co, int32_t rank, int clean,
                            const char *why) {
    co->wstate[rank] = clean ? W_LEFT : W_DIED;
    co->departed++;
    co->nmembers--;
    barrier_check(co);
    if (!clean) {
        co->died++;
        pd_log(PD_LOG_WARN, "worker %d %s at clock %lld; removed from the "
               "cluster, the others go on",
               rank, why, (long long)co->wclock[rank]);
    }
    for (int32_t i = 0; i < co->o.servers; i++) {
        co_conn *sc = co->server_conn[i];
        if (!sc) continue;
        pd_hdr h = {0};
        uint8_t p[8] = {(uint8_t)rank, (uint8_t)(rank >> 8), (uint8_t)(rank >> 16),
                        (uint8_t)(rank >> 24), (uint8_t)clean, 0, 0, 0};
        h.type = PD_MSG_WORKER_GONE;
        pd_send_frame(sc->conn, &h, p, 8, NULL, 0, NULL, 0, NULL);
    }
    pthread_cond_broadcast(&co->cv);
    if (co->nmembers == 0 && !co->o.persist && !co->stopping) {
        pd_log(PD_LOG_DEBUG, "every worker has left: shutting the cluster down");
        for (int32_t i = 0; i < co->o.servers; i++) {
            co_conn *sc = co->server_conn[i];
            if (!sc) continue;
            pd_hdr h = {0};
            h.type = PD_MSG_SHUTDOWN;
            pd_send_frame(sc->conn, &h, NULL, 0, NULL, 0, NULL, 0, NULL);
        }
        co->stopping = 1;
        if (co->lfd >= 0) shutdown(co->lfd, SHUT_RDWR);
    }
}

/* ==== Handlers ========================================================== */

static int on_reg_server(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    char addr[PD_MAX_ADDR + 1];
    pd_rd r;
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_str(&r, addr, PD_MAX_ADDR);
    if (!pd_rd_done(&r) || cc->role != PD_ROLE_SERVER || cc->server >= 0)
        return reply_err(cc, h, PARAMD_EPROTO, "malformed or repeated REG_SERVER");
    pthread_mutex_lock(&co->mu);
    if (co->nservers >= co->o.servers) {
        pthread_mutex_unlock(&co->mu);
        char msg[128];
        snprintf(msg, sizeof msg,
                 "the cluster already has its %d servers (--servers)",
                 co->o.servers);
        reply_err(cc, h, PARAMD_ECONFIG, msg);
        return PARAMD_ECONFIG;
    }
    int32_t idx = co->nservers++;
    snprintf(co->server_addr[idx], PD_MAX_ADDR + 1, "%s", addr);
    co->server_conn[idx] = cc;
    cc->server = idx;
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    pd_log(PD_LOG_DEBUG, "server %d registered at %s", idx, addr);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u32(&b, (uint32_t)idx);
    pd_put_u32(&b, (uint32_t)co->o.servers);
    pd_put_u32(&b, (uint32_t)co->o.workers);
    pd_put_u32(&b, (uint32_t)co->o.max_workers);
    int rc = reply(cc, h, &b);
    pd_buf_free(&b);
    return rc;
}

/* Called with mu held: send WORKER_JOIN (or, with phase 0, WORKER_GONE to
 * undo a prepared join) for `rank` to every registered server. */
static void send_join(pd_coord *co, int32_t rank, uint32_t phase, int64_t J) {
    for (int32_t i = 0; i < co->o.servers; i++) {
        co_conn *sc = co->server_conn[i];
        if (!sc) continue;
        pd_hdr h = {0};
        pd_buf b;
        pd_buf_init(&b);
        pd_put_u32(&b, (uint32_t)rank);
        if (phase) {
            pd_put_u32(&b, phase);
            pd_put_u64(&b, (uint64_t)J);
            h.type = PD_MSG_WORKER_JOIN;
            h.id = co->join_id;
        } else {
            pd_put_u32(&b, 1); /* clean: nothing went wrong with the worker */
            h.type = PD_MSG_WORKER_GONE;
        }
        if (!b.oom) pd_send_frame(sc->conn, &h, b.p, b.len, NULL, 0, NULL, 0, NULL);
        pd_buf_free(&b);
    }
}

/* Called with mu held (released while waiting): the two phases of a join
 * of `rank` (see the top of this file).  0 with the start clock in *J, or
 * PARAMD_ESHUTDOWN (the servers were told to forget the join). */
static int run_join(pd_coord *co, int32_t rank, int64_t *J) {
    while (co->joining && !co->stopping) pthread_cond_wait(&co->cv, &co->mu);
    if (co->stopping) return PARAMD_ESHUTDOWN;
    co->joining = 1;
    co->join_id++;
    co->join_replies = 0;
    co->join_max = 0;
    co->join_failed = 0;
    for (int32_t i = 0; i < co->o.servers; i++)
        if (!co->server_conn[i]) co->join_failed = 1;
    if (!co->join_failed) send_join(co, rank, PD_JOIN_PREPARE, 0);
    while (co->join_replies < co->o.servers && !co->join_failed && !co->stopping)
        pthread_cond_wait(&co->cv, &co->mu);
    int ok = co->join_replies == co->o.servers && !co->join_failed;
    /* Any J >= every frontier is safe; the live workers' clocks raise it
     * so that a joiner of async tables (no frontier) starts near them. */
    for (int32_t w = 0; w < co->o.max_workers; w++)
        if (co->wstate[w] == W_LIVE && co->wclock[w] > co->join_max)
            co->join_max = co->wclock[w];
    if (ok) send_join(co, rank, PD_JOIN_COMMIT, co->join_max);
    else send_join(co, rank, 0, 0);
    *J = co->join_max;
    co->joining = 0;
    pthread_cond_broadcast(&co->cv);
    return ok ? 0 : PARAMD_ESHUTDOWN;
}

/* A server's answer to PREPARE: i64 frontier (status 0). */
static int on_join_reply(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pd_rd r;
    uint64_t F = 0;
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_u64(&r, &F);
    int bad = !pd_rd_done(&r) || h->status != 0 || F > (uint64_t)INT64_MAX;
    pthread_mutex_lock(&co->mu);
    if (cc->server >= 0 && co->joining && h->id == co->join_id) {
        if (bad) {
            co->join_failed = 1;
            pd_log(PD_LOG_ERROR, "server %d answered a join badly", cc->server);
        } else {
            co->join_replies++;
            if ((int64_t)F > co->join_max) co->join_max = (int64_t)F;
        }
        pthread_cond_broadcast(&co->cv);
    }
    pthread_mutex_unlock(&co->mu);
    return 0;
}

/* Called with mu held: a rank for a worker that asked for any (-1): one
 * expected at start, else the rank of a worker that died, a spare slot,
 * the rank of a worker that left.  -1 if every slot is taken. */
static int32_t pick_rank(const pd_coord *co) {
    static const int order[] = {W_NEW, W_DIED, W_FREE, W_LEFT};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        for (int32_t i = 0; i < co->o.max_workers; i++)
            if (co->wstate[i] == order[k]) return i;
    return -1;
}

static int on_reg_worker(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    uint32_t want_u;
    pd_rd r;
    char msg[256];
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_u32(&r, &want_u);
    int32_t want = (int32_t)want_u;
    if (!pd_rd_done(&r) || cc->role != PD_ROLE_WORKER || cc->rank >= 0)
        return reply_err(cc, h, PARAMD_EPROTO, "malformed or repeated REG_WORKER");
    pthread_mutex_lock(&co->mu);
    int32_t W = co->o.workers, M = co->o.max_workers;
    if (want < -1 || want >= M) {
        pthread_mutex_unlock(&co->mu);
        snprintf(msg, sizeof msg,
                 "rank %d is outside 0..%d: the cluster has %d worker slots "
                 "(--workers %d, --max-workers %d)",
                 want, M - 1, M, W, M);
        return reply_err(cc, h, PARAMD_EWORKER, msg);
    }
    if (want == -1) want = pick_rank(co);
    if (want < 0 || co->wstate[want] == W_LIVE || co->wstate[want] == W_JOINING) {
        pthread_mutex_unlock(&co->mu);
        if (want < 0)
            snprintf(msg, sizeof msg,
                     "all %d worker slots are taken by live workers: no rank "
                     "for another one (start the cluster with a larger "
                     "--max-workers)",
                     M);
        else
            snprintf(msg, sizeof msg,
                     "rank %d is taken by a live worker (a rank can be taken "
                     "again once its worker left or died; check PARAMD_RANK)",
                     want);
        return reply_err(cc, h, PARAMD_EWORKER, msg);
    }
    int was = co->wstate[want];
    int join = was != W_NEW;
    co->wstate[want] = join ? W_JOINING : W_LIVE;
    co->wgen[want]++;
    cc->gen = co->wgen[want];
    cc->rank = want;
    co->wseen_ms[want] = pd_now_ms();
    while (co->nservers < co->o.servers && !co->stopping)
        pthread_cond_wait(&co->cv, &co->mu);
    int64_t start = 0;
    int rc = 0;
    if (co->stopping) {
        rc = PARAMD_ESHUTDOWN;
    } else if (join) {
        rc = run_join(co, want, &start);
        if (rc == 0 && !co->stopping) {
            co->wstate[want] = W_LIVE;
            co->wstart[want] = start;
            co->wclock[want] = start;
            co->nmembers++;
            static const char *const how[] = {
                [W_LEFT] = "left", [W_DIED] = "died", [W_FREE] = "spare"};
            pd_log(PD_LOG_INFO, "worker %d joined at clock %lld (%s slot; %d "
                   "workers in the cluster)",
                   want, (long long)start, how[was], co->nmembers);
            barrier_check(co);
        } else {
            rc = PARAMD_ESHUTDOWN;
        }
    } else {
        co->wstart[want] = -1;
    }
    if (rc) { /* the slot is vacant again */
        if (co->wstate[want] == W_JOINING) co->wstate[want] = was;
        cc->rank = -1;
    }
    pd_buf b;
    pd_buf_init(&b);
    pd_map m = {want, (uint32_t)W, (uint32_t)co->o.servers, co->epoch, co->server_addr,
                (uint32_t)co->o.heartbeat_ms, (uint32_t)M, start};
    pd_map_encode(&b, &m);
    co->wseen_ms[want] = pd_now_ms(); /* waiting for servers is not silence */
    pthread_mutex_unlock(&co->mu);
    if (rc) {
        pd_buf_free(&b);
        return reply_err(cc, h, PARAMD_ESHUTDOWN,
                         join ? "the cluster is stopping or lost a server while "
                                "this worker joined"
                              : "cluster is stopping");
    }
    rc = reply(cc, h, &b);
    pd_buf_free(&b);
    return rc;
}

/* MAP: the cluster map for tools (paramd stats, tests): rank -1, W, S,
 * epoch, addresses; answered once every server registered. */
static int on_map(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pthread_mutex_lock(&co->mu);
    while (co->nservers < co->o.servers && !co->stopping)
        pthread_cond_wait(&co->cv, &co->mu);
    pd_buf b;
    pd_buf_init(&b);
    pd_map m = {-1, (uint32_t)co->o.workers, (uint32_t)co->o.servers, co->epoch,
                co->server_addr, 0, 0, 0};
    pd_map_encode(&b, &m);
    pthread_mutex_unlock(&co->mu);
    int rc = reply(cc, h, &b);
    pd_buf_free(&b);
    return rc;
}

static int on_table_open(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    char name[PD_MAX_NAME + 1], spec[PD_MAX_SPEC + 1], msg[PD_MAX_ERRTEXT];
    uint64_t n;
    pd_rd r;
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_str(&r, name, PD_MAX_NAME);
    pd_get_u64(&r, &n);
    pd_get_str(&r, spec, PD_MAX_SPEC);
    if (!pd_rd_done(&r) || !name[0] || cc->rank < 0)
        return reply_err(cc, h, PARAMD_EPROTO, "malformed TABLE_OPEN");
    pthread_mutex_lock(&co->mu);
    if (co->wstart[cc->rank] >= 0 && !pd_spec_elastic(spec)) {
        snprintf(msg, sizeof msg,
                 "table '%s' does not take workers that join a running "
                 "cluster (its spec has elastic=no); this worker (rank %d) "
                 "joined at clock %lld",
                 name, cc->rank, (long long)co->wstart[cc->rank]);
        pthread_mutex_unlock(&co->mu);
        return reply_err(cc, h, PARAMD_EWORKER, msg);
    }
    uint32_t id = 0;
    for (uint32_t i = 0; i < co->ntables; i++)
        if (!co->tables[i].dropped && strcmp(co->tables[i].name, name) == 0)
            id = i + 1;
    int created = 0;
    if (!id) {
        if (co->ntables + 1 >= PD_MAX_TABLES) {
            pthread_mutex_unlock(&co->mu);
            return reply_err(cc, h, PARAMD_ENOMEM, "too many tables");
        }
        if (co->ntables == co->tcap) {
            uint32_t cap = co->tcap ? co->tcap * 2 : 16;
            co_table *t = pd_realloc(co->tables, sizeof *t * cap);
            if (!t) {
                pthread_mutex_unlock(&co->mu);
                return reply_err(cc, h, PARAMD_ENOMEM, "out of memory");
            }
            co->tables = t;
            co->tcap = cap;
        }
        co_table *t = &co->tables[co->ntables++];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", name);
        snprintf(t->spec, sizeof t->spec, "%s", spec);
        t->n = n;
        t->creator = cc;
        id = co->ntables;
        created = 1;
    } else {
        co_table *t = &co->tables[id - 1];
        if (t->n != n || strcmp(t->spec, spec) != 0) {
            snprintf(msg, sizeof msg,
                     "table '%s' exists with n=%llu and spec '%s'; this worker "
                     "asked for n=%llu and spec '%s'",
                     name, (unsigned long long)t->n, t->spec,
                     (unsigned long long)n, spec);
            pthread_mutex_unlock(&co->mu);
            return reply_err(cc, h, PARAMD_ESPEC, msg);
        }
        while (!co->tables[id - 1].ready && !co->tables[id - 1].dropped &&
               !co->stopping)
            pthread_cond_wait(&co->cv, &co->mu);
        if (!co->tables[id - 1].ready) {
            pthread_mutex_unlock(&co->mu);
            snprintf(msg, sizeof msg,
                     "table '%s': the worker creating it left before it was "
                     "ready",
                     name);
            return reply_err(cc, h, PARAMD_ESHUTDOWN, msg);
        }
    }
    pthread_mutex_unlock(&co->mu);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u32(&b, id);
    pd_put_u32(&b, (uint32_t)created);
    int rc = reply(cc, h, &b);
    pd_buf_free(&b);
    return rc;
}

static int on_table_ready(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pthread_mutex_lock(&co->mu);
    uint32_t id = h->table;
    if (id == 0 || id > co->ntables || co->tables[id - 1].creator != cc) {
        pthread_mutex_unlock(&co->mu);
        return reply_err(cc, h, PARAMD_ENOTABLE,
                         "TABLE_READY for a table this worker is not creating");
    }
    co->tables[id - 1].ready = 1;
    co->tables[id - 1].creator = NULL;
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    return reply(cc, h, NULL);
}

static int on_barrier(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    if (cc->rank < 0) return reply_err(cc, h, PARAMD_EPROTO, "BARRIER before REG_WORKER");
    pthread_mutex_lock(&co->mu);
    uint64_t gen = co->barrier_gen;
    co->barrier_arrived++;
    barrier_check(co);
    while (co->barrier_gen == gen && !co->stopping)
        pthread_cond_wait(&co->cv, &co->mu);
    int ok = co->barrier_gen != gen;
    pthread_mutex_unlock(&co->mu);
    if (!ok)
        return reply_err(cc, h, PARAMD_ESHUTDOWN,
                         "the cluster is stopping");
    return reply(cc, h, NULL);
}

/* HEARTBEAT on a worker's second connection: u32 rank; clock in header. */
static int on_heartbeat(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pd_rd r;
    uint32_t rank;
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_u32(&r, &rank);
    if (!pd_rd_done(&r) || cc->role != PD_ROLE_WORKER || rank >= (uint32_t)co->o.max_workers)
        return reply_err(cc, h, PARAMD_EPROTO, "malformed HEARTBEAT");
    pthread_mutex_lock(&co->mu);
    cc->heartbeat = 1;
    cc->hb_rank = (int32_t)rank;
    int live = co->wstate[rank] == W_LIVE;
    if (live) {
        co->wseen_ms[rank] = pd_now_ms();
        co->wclock[rank] = h->clock;
    }
    pthread_mutex_unlock(&co->mu);
    if (!live) {
        reply_err(cc, h, PARAMD_EWORKER, "this worker was removed from the cluster");
        return PARAMD_EWORKER;
    }
    return reply(cc, h, NULL);
}

/* The heartbeat monitor: removes workers silent for heartbeat_ms (a
 * stopped or hung process keeps its sockets open, so only silence tells). */
static void *monitor_main(void *arg) {
    pd_coord *co = arg;
    pthread_mutex_lock(&co->mu);
    while (!co->stopping) {
        int64_t now = pd_now_ms();
        for (int32_t w = 0; w < co->o.max_workers; w++)
            if (co->wstate[w] == W_LIVE && now - co->wseen_ms[w] > co->o.heartbeat_ms) {
                char why[96];
                snprintf(why, sizeof why, "sent no heartbeat for %.1f s",
                         (now - co->wseen_ms[w]) / 1000.0);
                worker_departed(co, w, 0, why);
                /* close its connections: a resumed process gets errors */
                for (co_conn *cc = co->conns; cc; cc = cc->next)
                    if (cc->rank == w || (cc->heartbeat && cc->hb_rank == w))
                        pd_conn_shutdown(cc->conn);
            }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (int64_t)(co->o.heartbeat_ms / 4 + 1) * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&co->cv, &co->mu, &ts);
    }
    pthread_mutex_unlock(&co->mu);
    return NULL;
}

static int on_bye(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    if (cc->rank < 0) return reply_err(cc, h, PARAMD_EPROTO, "BYE before REG_WORKER");
    int rc = reply(cc, h, NULL);
    pthread_mutex_lock(&co->mu);
    if (co->wstate[cc->rank] == W_LIVE && cc->gen == co->wgen[cc->rank])
        worker_departed(co, cc->rank, 1, "left");
    pthread_mutex_unlock(&co->mu);
    return rc ? rc : PARAMD_ECLOSED; /* the worker is done with us */
}

/* ==== Connection thread ================================================= */

static void *conn_main(void *arg) {
    co_conn *cc = arg;
    pd_coord *co = cc->co;
    pd_tcp_set_rcvtimeo(cc->conn, 30000);
    static const pd_hello_rules rules = {
        "coordinator",
        PD_ROLE_BIT(PD_ROLE_WORKER) | PD_ROLE_BIT(PD_ROLE_SERVER) | PD_ROLE_BIT(PD_ROLE_TOOL),
        0 /* ranks are checked at REG_WORKER */};
    pd_err he = {0};
    pd_hello hello;
    int rc = pd_handshake_accept(cc->conn, &rules, NULL, &hello, &he);
    if (rc == 0) cc->role = hello.role;
    while (rc == 0) {
        pd_err e = {0};
        pd_hdr h;
        rc = pd_recv_hdr(cc->conn, &h, PD_MAX_CTRL_PAYLOAD, &e);
        if (rc == 0) rc = pd_recv_payload(cc->conn, &h, cc->buf, &e);
        if (rc) {
            if (rc != PARAMD_ECLOSED) {
                pd_log(PD_LOG_WARN, "closing connection from %s: %s",
                       cc->conn->peer, e.msg);
                if (rc != PARAMD_EIO) pd_send_error(cc->conn, &h, rc, e.msg);
            }
            break;
        }
        if (cc->rank >= 0) {
            pthread_mutex_lock(&co->mu);
            if (cc->gen == co->wgen[cc->rank]) {
                co->wclock[cc->rank] = h.clock;
                co->wseen_ms[cc->rank] = pd_now_ms();
            }
            pthread_mutex_unlock(&co->mu);
        }
        switch (h.type) {
        case PD_MSG_REG_SERVER: rc = on_reg_server(cc, &h); break;
        case PD_MSG_REG_WORKER: rc = on_reg_worker(cc, &h); break;
        case PD_MSG_MAP: rc = on_map(cc, &h); break;
        case PD_MSG_TABLE_OPEN: rc = on_table_open(cc, &h); break;
        case PD_MSG_TABLE_READY: rc = on_table_ready(cc, &h); break;
        case PD_MSG_BARRIER: rc = on_barrier(cc, &h); break;
        case PD_MSG_BYE: rc = on_bye(cc, &h); break;
        case PD_MSG_HEARTBEAT: rc = on_heartbeat(cc, &h); break;
        case PD_MSG_WORKER_JOIN | PD_REPLY: rc = on_join_reply(cc, &h); break;
        default:
            pd_seterr(&e, PARAMD_EPROTO, "unexpected %s at the coordinator",
                      pd_msg_name(h.type));
            pd_log(PD_LOG_WARN, "closing connection from %s: %s",
                   cc->conn->peer, e.msg);
            pd_send_error(cc->conn, &h, e.code, e.msg);
            rc = e.code;
        }
    }
    pthread_mutex_lock(&co->mu);
    if (cc->rank >= 0 && !cc->heartbeat && co->wstate[cc->rank] == W_LIVE &&
        cc->gen == co->wgen[cc->rank])
        worker_departed(co, cc->rank, 0, "disconnected without saying goodbye");
    for (uint32_t i = 0; i < co->ntables; i++)
        if (co->tables[i].creator == cc) {
            co->tables[i].dropped = 1;
            co->tables[i].creator = NULL;
            pthread_cond_broadcast(&co->cv);
        }
    if (cc->server >= 0) {
        co->server_conn[cc->server] = NULL;
        if (co->joining) co->join_failed = 1;
        pthread_cond_broadcast(&co->cv);
        if (!co->stopping)
            pd_log(PD_LOG_ERROR, "server %d disconnected", cc->server);
    }
    for (co_conn **pp = &co->conns; *pp; pp = &(*pp)->next)
        if (*pp == cc) {
            *pp = cc->next;
            break;
        }
    pd_conn_destroy(cc->conn);
    pd_free(cc);
    if (--co->nthreads == 0) pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    return NULL;
}

/* ==== Public ============================================================ */

pd_coord *pd_coord_start(const pd_coord_opts *o, pd_err *e) {
    if (o->servers < 1 || o->servers > PD_MAX_SERVERS || o->workers < 1 ||
        o->workers > PD_MAX_WORKERS) {
        pd_seterr(e, PARAMD_EINVAL,
                  "need 1..%d servers and 1..%d workers (got %d and %d)",
                  PD_MAX_SERVERS, PD_MAX_WORKERS, o->servers, o->workers);
        return NULL;
    }
    if (o->max_workers && (o->max_workers < o->workers ||
                           o->max_workers > PD_MAX_WORKERS)) {
        pd_seterr(e, PARAMD_EINVAL,
                  "--max-workers %d must be in %d..%d (at least --workers)",
                  o->max_workers, o->workers, PD_MAX_WORKERS);
        return NULL;
    }
    pd_coord *co = pd_calloc(1, sizeof *co);
    if (!co) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory");
        return NULL;
    }
    co->o = *o;
    if (!co->o.max_workers) co->o.max_workers = o->workers;
    int32_t M = co->o.max_workers;
    if (!co->o.listen) co->o.listen = "127.0.0.1:0";
    co->lfd = -1;
    co->epoch = 1;
    pthread_mutex_init(&co->mu, NULL);
    pthread_cond_init(&co->cv, NULL);
    co->server_addr = pd_calloc((size_t)o->servers, sizeof *co->server_addr);
    co->server_conn = pd_calloc((size_t)o->servers, sizeof *co->server_conn);
    co->wstate = pd_calloc((size_t)M, sizeof *co->wstate);
    co->wseen_ms = pd_calloc((size_t)M, sizeof *co->wseen_ms);
    co->wclock = pd_calloc((size_t)M, sizeof *co->wclock);
    co->wgen = pd_calloc((size_t)M, sizeof *co->wgen);
    co->wstart = pd_calloc((size_t)M, sizeof *co->wstart);
    if (co->o.heartbeat_ms < 0) co->o.heartbeat_ms = 10000;
    if (!co->server_addr || !co->server_conn || !co->wstate || !co->wseen_ms ||
        !co->wclock || !co->wgen || !co->wstart) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory");
        pd_coord_free(co);
        return NULL;
    }
    for (int32_t w = 0; w < M; w++) {
        co->wstate[w] = w < o->workers ? W_NEW : W_FREE;
        co->wstart[w] = -1;
    }
    co->nmembers = o->workers;
    char host[PD_MAX_ADDR + 1];
    uint16_t port;
    if (pd_parse_hostport(co->o.listen, host, sizeof host, &port) != 0) {
        pd_seterr(e, PARAMD_EINVAL, "--listen '%s' is not HOST:PORT",
                  co->o.listen);
        pd_coord_free(co);
        return NULL;
    }
    if (pd_tcp_listen(host, port, &co->lfd, co->bound, sizeof co->bound, e)) {
        pd_coord_free(co);
        return NULL;
    }
    return co;
}

const char *pd_coord_address(const pd_coord *co) { return co->bound; }

int pd_coord_run(pd_coord *co) {
    if (co->o.heartbeat_ms > 0 &&
        pthread_create(&co->monitor, NULL, monitor_main, co) == 0)
        co->monitor_started = 1;
    for (;;) {
        pd_conn *c = pd_tcp_accept(co->lfd);
        pthread_mutex_lock(&co->mu);
        int stopping = co->stopping;
        pthread_mutex_unlock(&co->mu);
        if (stopping) {
            pd_conn_destroy(c);
            break;
        }
        if (!c) continue;
        co_conn *cc = pd_calloc(1, sizeof *cc);
        if (!cc) {
            pd_conn_destroy(c);
            continue;
        }
        cc->conn = c;
        cc->co = co;
        cc->rank = -1;
        cc->server = -1;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&co->mu);
        cc->next = co->conns;
        co->conns = cc;
        co->nthreads++;
        pthread_t tid;
        if (pthread_create(&tid, &attr, conn_main, cc) != 0) {
            co->conns = cc->next;
            co->nthreads--;
            pd_conn_destroy(c);
            pd_free(cc);
        }
        pthread_mutex_unlock(&co->mu);
        pthread_attr_destroy(&attr);
    }
    pthread_mutex_lock(&co->mu);
    pthread_cond_broadcast(&co->cv);
    for (co_conn *cc = co->conns; cc; cc = cc->next) pd_conn_shutdown(cc->conn);
    while (co->nthreads > 0) pthread_cond_wait(&co->cv, &co->mu);
    int died = co->died;
    pthread_mutex_unlock(&co->mu);
    if (co->monitor_started) pthread_join(co->monitor, NULL);
    co->monitor_started = 0;
    return died ? PARAMD_ECLOSED : 0;
}

void pd_coord_stop(pd_coord *co) {
    pthread_mutex_lock(&co->mu);
    co->stopping = 1;
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    if (co->lfd >= 0) shutdown(co->lfd, SHUT_RDWR);
}

void pd_coord_free(pd_coord *co) {
    if (!co) return;
    if (co->lfd >= 0) close(co->lfd);
    pd_free(co->server_addr);
    pd_free(co->server_conn);
    pd_free(co->wstate);
    pd_free(co->wseen_ms);
    pd_free(co->wclock);
    pd_free(co->wgen);
    pd_free(co->wstart);
    pd_free(co->tables);
    pthread_mutex_destroy(&co->mu);
    pthread_cond_destroy(&co->cv);
    pd_free(co);
}
