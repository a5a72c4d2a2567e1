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

#include "coord/coord_impl.h"
#include "frame/hello.h"
#include "net/conn.h"

/* ==== Helpers =========================================================== */

int co_reply(co_conn *cc, const pd_hdr *req, pd_buf *b) {
    pd_hdr h = {0};
    h.type = req->type | PD_REPLY;
    h.id = req->id;
    h.table = req->table;
    h.clock = req->clock;
    if (b && b->oom) return pd_send_error(cc->conn, req, PARAMD_ENOMEM, "out of memory");
    return pd_send_frame(cc->conn, &h, b ? b->p : NULL, b ? b->len : 0, NULL,
                         0, NULL, 0, NULL);
}

int co_reply_err(co_conn *cc, const pd_hdr *req, int code,
                     const char *msg) {
    pd_log(PD_LOG_INFO, "rejected %s from %s: %s", pd_msg_name(req->type),
           cc->conn->peer, msg);
    pd_send_error(cc->conn, req, code, msg);
    return 0;
}


/* ==== Connection thread ================================================= */

/* A receive timeout a quarter of the deadline (server/session.c). */
static int timeo_for(int deadline_ms) {
    return deadline_ms / 4 > 100 ? deadline_ms / 4 : 100;
}

static void *conn_main(void *arg) {
    co_conn *cc = arg;
    pd_coord *co = cc->co;
    /* The handshake within its deadline, then every frame within its
     * own (frame/admit.h, docs/limits.md). */
    cc->conn->deadline_ms = pd_now_ms() + co->o.handshake_ms;
    cc->conn->frame_ms = co->o.frame_ms;
    pd_tcp_set_rcvtimeo(cc->conn, timeo_for(co->o.handshake_ms));
    /* A worker's ticket is checked here once the key is this cluster's
     * for good: a server registered or rejoined.  Before that, a worker
     * of a cluster that this coordinator is about to take back may come
     * first: its ticket is checked when it uses it (takeover.c). */
    pd_key grant;
    pthread_mutex_lock(&co->mu);
    grant = co->grant;
    int settled = co->takeover || co->nservers > 0;
    pthread_mutex_unlock(&co->mu);
    const pd_hello_rules rules = {
        .who = "coordinator",
        .roles = PD_ROLE_BIT(PD_ROLE_WORKER) | PD_ROLE_BIT(PD_ROLE_SERVER) |
                 PD_ROLE_BIT(PD_ROLE_TOOL),
        .workers = 0, /* ranks are checked at REG_WORKER */
        .key = co->has_key ? &co->key : NULL,
        .grant = settled ? &grant : NULL, /* a heartbeat connection shows its ticket */
    };
    pd_err he = {0};
    int rc = pd_handshake_accept(cc->conn, &rules, NULL, &cc->hello, &he);
    pd_wipe(&grant, sizeof grant);
    if (rc == 0) rc = pd_admit_welcomed(&co->admit, &cc->slot);
    if (rc == 0) {
        cc->role = cc->hello.role;
        cc->conn->deadline_ms = 0;
        pd_tcp_set_rcvtimeo(cc->conn, timeo_for(co->o.frame_ms));
    }
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
        pthread_mutex_lock(&co->mu);
        co->nbusy++;
        cc->in_call = 1; /* (a worker held here pushes nothing: replace.c) */
        pthread_mutex_unlock(&co->mu);
        switch (h.type) {
        case PD_MSG_REG_SERVER: rc = co_on_reg_server(cc, &h); break;
        case PD_MSG_REG_WORKER: rc = co_on_reg_worker(cc, &h); break;
        case PD_MSG_MAP: rc = co_on_map(cc, &h); break;
        case PD_MSG_TABLE_OPEN: rc = co_on_table_open(cc, &h); break;
        case PD_MSG_TABLE_READY: rc = co_on_table_ready(cc, &h); break;
        case PD_MSG_BARRIER: rc = co_on_barrier(cc, &h); break;
        case PD_MSG_BYE: rc = co_on_bye(cc, &h); break;
        case PD_MSG_HEARTBEAT: rc = co_on_heartbeat(cc, &h); break;
        case PD_MSG_STATUS: rc = co_on_status(cc, &h); break;
        case PD_MSG_WORKER_JOIN | PD_REPLY: rc = co_on_join_reply(cc, &h); break;
        case PD_MSG_CHECKPOINT: rc = co_on_checkpoint(cc, &h); break;
        case PD_MSG_CKPT_HOLD | PD_REPLY:
        case PD_MSG_CKPT_WRITE | PD_REPLY: rc = co_on_ckpt_reply(cc, &h); break;
        case PD_MSG_SERVER_REJOIN: rc = co_on_server_rejoin(cc, &h); break;
        case PD_MSG_WORKER_REJOIN: rc = co_on_worker_rejoin(cc, &h); break;
        case PD_MSG_SERVER_WAIT: rc = co_on_server_wait(cc, &h); break;
        case PD_MSG_SERVER_READY: rc = co_on_server_ready(cc, &h); break;
        case PD_MSG_REPLICA_ADD | PD_REPLY: rc = co_on_replica_added(cc, &h); break;
        case PD_MSG_REPLICA_DROP: rc = co_on_replica_drop(cc, &h); break;
        case PD_MSG_PROMOTE | PD_REPLY: rc = co_on_promoted(cc, &h); break;
        case PD_MSG_DRAIN: rc = co_on_drain(cc, &h); break;
        default:
            pd_seterr(&e, PARAMD_EPROTO, "unexpected %s at the coordinator",
                      pd_msg_name(h.type));
            pd_log(PD_LOG_WARN, "closing connection from %s: %s",
                   cc->conn->peer, e.msg);
            pd_send_error(cc->conn, &h, e.code, e.msg);
            rc = e.code;
        }
        pthread_mutex_lock(&co->mu);
        cc->in_call = 0;
        if (--co->nbusy == 0 && co->stopping) pthread_cond_broadcast(&co->cv);
        pthread_mutex_unlock(&co->mu);
    }
    pthread_mutex_lock(&co->mu);
    if (cc->rank >= 0 && !cc->heartbeat && co->wstate[cc->rank] == W_LIVE &&
        cc->gen == co->wgen[cc->rank])
        co_worker_departed(co, cc->rank, 0, "disconnected without saying goodbye");
    if (cc->heartbeat && co->wstate[cc->hb_rank] == W_LIVE &&
        cc->hello.ticket.gen == co->wgen[cc->hb_rank]) {
        /* Its heartbeats ended.  A worker closing stops them before its
         * BYE; one that died closed its request connection too, whose
         * thread may be waiting for others (a barrier, a table's
         * creator) and not reading it: look, and it is gone now, not
         * at the heartbeat timeout. */
        for (co_conn *o = co->conns; o; o = o->next)
            if (o->rank == cc->hb_rank && !o->heartbeat && o->gen == co->wgen[cc->hb_rank] &&
                !o->bye && pd_conn_peer_gone(o->conn)) {
                co_worker_departed(co, cc->hb_rank, 0, "disconnected without saying goodbye");
                break;
            }
    }
    for (uint32_t i = 0; i < co->ntables; i++)
        if (co->tables[i].creator == cc) {
            co->tables[i].dropped = 1;
            co->tables[i].creator = NULL;
            pthread_cond_broadcast(&co->cv);
        }
    if (cc->server >= 0) {
        co->server_conn[cc->server] = NULL;
        if (co->joining) co->join_failed = 1;
        if (co->ck_busy) {
            co->ck_failed = 1;
            snprintf(co->ck_err, sizeof co->ck_err, "server %d disconnected", cc->server);
        }
        pthread_cond_broadcast(&co->cv);
        if (!co->stopping) {
            if (co->mv_slot == cc->server && co->mv_state == MV_HANDOVER)
                pd_log(PD_LOG_INFO, "server %d (%s) stopped: its shard moves to %s",
                       cc->server, co->server_addr[cc->server],
                       co->cp_addr[cc->server * co->RS + co->RS - 1]);
            else
                co->servers_lost++;
            if (co->mv_slot != cc->server || co->mv_state != MV_HANDOVER)
                pd_log(PD_LOG_ERROR, "server %d disconnected", cc->server);
            if (co->RS > 1) co_primary_lost(co, cc->server);
            else co_server_down(co, cc->server);
        }
    }
    if (cc->copy_of >= 0) co_copy_gone(co, cc);
    co_standby_gone(co, cc);
    for (co_conn **pp = &co->conns; *pp; pp = &(*pp)->next)
        if (*pp == cc) {
            *pp = cc->next;
            break;
        }
    pd_admit_leave(&co->admit, &cc->slot); /* before the connection goes */
    co_rejoin_free(cc);
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
    if (o->replicas > PD_MAX_REPLICAS - (o->elastic ? 1 : 0)) {
        pd_seterr(e, PARAMD_EINVAL, "--replicas %d: at most %d copies of a shard%s",
                  o->replicas, PD_MAX_REPLICAS - (o->elastic ? 1 : 0),
                  o->elastic ? " with --elastic (a shard moving in takes one more)" : "");
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
    if (co->o.handshake_ms <= 0) co->o.handshake_ms = PD_HANDSHAKE_MS_DEFAULT;
    if (co->o.frame_ms <= 0) co->o.frame_ms = PD_FRAME_MS_DEFAULT;
    if (co->o.max_tables <= 0 || co->o.max_tables > PD_MAX_TABLES - 1)
        co->o.max_tables = PD_MAX_TABLES - 1;
    /* Each worker keeps two connections (requests, heartbeats); each
     * server one; tools come and go. */
    if (co->o.max_conns <= 0)
        co->o.max_conns = 2 * M + o->servers * (o->replicas > 1 ? o->replicas : 1) + 256;
    pd_admit_init(&co->admit, "coordinator", co->o.max_conns, co->o.max_pending);
    if (!co->o.listen) co->o.listen = "127.0.0.1:0";
    co->lfd = -1;
    co->epoch = 1;
    pthread_mutex_init(&co->mu, NULL);
    pthread_cond_init(&co->cv, NULL);
    co->server_addr = pd_calloc((size_t)o->servers, sizeof *co->server_addr);
    co->server_conn = pd_calloc((size_t)o->servers, sizeof *co->server_conn);
    co->sseen_ms = pd_calloc((size_t)o->servers, sizeof *co->sseen_ms);
    co->ssilent = pd_calloc((size_t)o->servers, sizeof *co->ssilent);
    co->wstate = pd_calloc((size_t)M, sizeof *co->wstate);
    co->wseen_ms = pd_calloc((size_t)M, sizeof *co->wseen_ms);
    co->wclock = pd_calloc((size_t)M, sizeof *co->wclock);
    co->wgen = pd_calloc((size_t)M, sizeof *co->wgen);
    co->wstart = pd_calloc((size_t)M, sizeof *co->wstart);
    co->ck_files = pd_calloc((size_t)o->servers, sizeof *co->ck_files);
    co->wbar = pd_calloc((size_t)M, sizeof *co->wbar);
    co->tk_gen = pd_calloc((size_t)M, sizeof *co->tk_gen);
    co->tk_gone = pd_calloc((size_t)M, sizeof *co->tk_gone);
    co->sdown = pd_calloc((size_t)o->servers, sizeof *co->sdown);
    co->sdown_until = pd_calloc((size_t)o->servers, sizeof *co->sdown_until);
    co->sdown_t0 = pd_calloc((size_t)o->servers, sizeof *co->sdown_t0);
    co->sepoch = pd_calloc((size_t)o->servers, sizeof *co->sepoch);
    co->srep_clock = pd_calloc((size_t)o->servers, sizeof *co->srep_clock);
    co->srep_from = pd_calloc((size_t)o->servers, sizeof *co->srep_from);
    co->sdown_why = pd_calloc((size_t)o->servers, sizeof *co->sdown_why);
    co->wwait = pd_calloc((size_t)M, sizeof *co->wwait);
    if (co->o.replicas < 1) co->o.replicas = 1;
    co->RS = co->o.replicas + (co->o.elastic ? 1 : 0);
    co->mv_slot = -1;
    size_t ncp = (size_t)o->servers * (size_t)co->RS;
    co->cp_conn = pd_calloc(ncp, sizeof *co->cp_conn);
    co->cp_addr = pd_calloc(ncp, sizeof *co->cp_addr);
    co->cp_state = pd_calloc(ncp, sizeof *co->cp_state);
    co->cp_promoting = pd_calloc((size_t)o->servers, sizeof *co->cp_promoting);
    co->started = pd_now();
    if (co->o.heartbeat_ms < 0) co->o.heartbeat_ms = 10000;
    if (co->o.startup_ms < 0) co->o.startup_ms = 300000;
    if (co->o.report_ms <= 0) co->o.report_ms = 5000;
    if (co->o.rejoin_ms < 0) co->o.rejoin_ms = 60000;
    if (!co->server_addr || !co->server_conn || !co->sseen_ms || !co->ssilent ||
        !co->wstate || !co->wseen_ms ||
        !co->wclock || !co->wgen || !co->wstart || !co->ck_files || !co->wbar ||
        !co->tk_gen || !co->tk_gone || !co->sdown || !co->sdown_until || !co->sdown_t0 || !co->sepoch || !co->srep_clock || !co->srep_from ||
        !co->sdown_why || !co->wwait || !co->cp_conn || !co->cp_addr || !co->cp_state ||
        !co->cp_promoting) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory");
        pd_coord_free(co);
        return NULL;
    }
    for (int32_t w = 0; w < M; w++) {
        co->wstate[w] = w < o->workers ? W_NEW : W_FREE;
        co->wstart[w] = -1;
    }
    co->nmembers = o->workers;
    pd_key_random(&co->grant);
    co_ckpt_init(co);
    if (co->o.restore && co_restore(co, e) != 0) {
        pd_coord_free(co);
        return NULL;
    }
    for (int32_t w = 0; w < M; w++) co->wclock[w] = co->restore_clock;
    char host[PD_MAX_ADDR + 1];
    uint16_t port;
    if (pd_parse_hostport(co->o.listen, host, sizeof host, &port) != 0) {
        pd_seterr(e, PARAMD_EINVAL, "--listen '%s' is not HOST:PORT",
                  co->o.listen);
        pd_coord_free(co);
        return NULL;
    }
    /* The secret first: beyond loopback nothing is bound without it. */
    int created = 0;
    if (co->o.secret_file) {
        if (pd_secret_load_or_create(co->o.secret_file, &co->key, &created, e) != 0) {
            pd_coord_free(co);
            return NULL;
        }
        co->has_key = 1;
    }
    if (co->o.listen_fd > 0) {
        /* a supervisor's socket: its address, and the same check of it */
        co->lfd = co->o.listen_fd;
        if (pd_tcp_bound(co->lfd, co->bound, sizeof co->bound, e) != 0 ||
            pd_parse_hostport(co->bound, host, sizeof host, &port) != 0 ||
            pd_listen_check("paramd coordinator", host, co->has_key, e) != 0) {
            if (!e->msg[0]) pd_seterr(e, PARAMD_EINVAL, "bad inherited socket %s", co->bound);
            pd_coord_free(co);
            return NULL;
        }
    } else if (pd_listen_check("paramd coordinator", host, co->has_key, e) != 0 ||
               pd_tcp_listen(host, port, &co->lfd, co->bound, sizeof co->bound, e)) {
        pd_coord_free(co);
        return NULL;
    }
    if (created)
        pd_log(PD_LOG_INFO, "created the cluster secret %s (mode 0600): give every "
               "server and worker this file", co->o.secret_file);
    if (!co->has_key)
        pd_log(PD_LOG_WARN, "no cluster secret (--secret-file): any process on this "
               "host can connect to %s and act as a server, worker or tool "
               "(docs/security.md)", co->bound);
    if (co->o.metrics && !(co->http = pd_http_start(co->o.metrics, co_metrics_render, co, e))) {
        pd_coord_free(co);
        return NULL;
    }
    return co;
}

const char *pd_coord_address(const pd_coord *co) { return co->bound; }
const char *pd_coord_metrics_address(const pd_coord *co) {
    return co->http ? pd_http_address(co->http) : NULL;
}

int pd_coord_run(pd_coord *co) {
    if (co->o.heartbeat_ms > 0 &&
        pthread_create(&co->monitor, NULL, co_monitor_main, co) == 0)
        co->monitor_started = 1;
    if (co->o.checkpoint_dir &&
        (co->o.checkpoint_every_s > 0 || co->o.checkpoint_every_clocks > 0) &&
        pthread_create(&co->ck_thread, NULL, co_ckpt_main, co) == 0)
        co->ck_thread_started = 1;
    if (pthread_create(&co->startup, NULL, co_startup_main, co) == 0)
        co->startup_started = 1;
    for (;;) {
        pd_conn *c = pd_tcp_accept(co->lfd);
        int err = errno;
        pthread_mutex_lock(&co->mu);
        int stopping = co->stopping;
        pthread_mutex_unlock(&co->mu);
        if (stopping) {
            pd_conn_destroy(c);
            break;
        }
        if (!c) {
            /* Out of descriptors: no spinning, one line per episode
             * (frame/admit.h). */
            pd_admit_accept_failed(&co->admit, err);
            continue;
        }
        pd_admit_accept_ok(&co->admit);
        co_conn *cc = pd_calloc(1, sizeof *cc);
        if (!cc) {
            pd_conn_destroy(c);
            continue;
        }
        if (pd_admit_enter(&co->admit, &cc->slot, c) != 0) {
            pd_admit_refuse(&co->admit, c); /* names the limit */
            pd_free(cc);
            continue;
        }
        cc->conn = c;
        cc->co = co;
        cc->rank = -1;
        cc->server = -1;
        cc->wait_slot = -1;
        cc->copy_of = -1;
        cc->standby_at = -2;
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
            pd_admit_leave(&co->admit, &cc->slot);
            pd_conn_destroy(c);
            pd_free(cc);
        }
        pthread_mutex_unlock(&co->mu);
        pthread_attr_destroy(&attr);
    }
    pthread_mutex_lock(&co->mu);
    pthread_cond_broadcast(&co->cv);
    /* Requests that were waiting (for servers, a barrier, a table) woke
     * to the stop: let them send their answer (with co_fail's reason)
     * before their connections go.  Each wait checks stopping, so this
     * is short; a peer that does not read is not waited for long. */
    int64_t grace = pd_now_ms() + 2000;
    while (co->nbusy > 0 && pd_now_ms() < grace) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&co->cv, &co->mu, &ts);
    }
    for (co_conn *cc = co->conns; cc; cc = cc->next) pd_conn_shutdown(cc->conn);
    while (co->nthreads > 0) pthread_cond_wait(&co->cv, &co->mu);
    int died = co->died, failed = co->fail_msg[0] != '\0';
    int lost = co->servers_lost - co->promotions; /* (a promoted copy lost nothing) */
    pthread_mutex_unlock(&co->mu);
    if (co->monitor_started) pthread_join(co->monitor, NULL);
    co->monitor_started = 0;
    if (co->ck_thread_started) pthread_join(co->ck_thread, NULL);
    co->ck_thread_started = 0;
    if (co->startup_started) pthread_join(co->startup, NULL);
    co->startup_started = 0;
    return failed ? PARAMD_ETIMEDOUT : died || lost ? PARAMD_ECLOSED : 0;
}

void pd_coord_failures(pd_coord *co, int *workers_died, int *servers_lost) {
    pthread_mutex_lock(&co->mu);
    if (workers_died) *workers_died = co->died;
    if (servers_lost) *servers_lost = co->servers_lost - co->promotions;
    pthread_mutex_unlock(&co->mu);
}

int pd_coord_promotions(pd_coord *co) {
    pthread_mutex_lock(&co->mu);
    int n = co->promotions;
    pthread_mutex_unlock(&co->mu);
    return n;
}

int pd_coord_servers_replaced(pd_coord *co) {
    pthread_mutex_lock(&co->mu);
    int n = co->servers_replaced;
    pthread_mutex_unlock(&co->mu);
    return n;
}

const char *pd_coord_failure(const pd_coord *co) { return co->fail_msg; }

void pd_coord_stop(pd_coord *co) {
    pthread_mutex_lock(&co->mu);
    co->stopping = 1;
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    if (co->lfd >= 0) shutdown(co->lfd, SHUT_RDWR);
}

void pd_coord_free(pd_coord *co) {
    if (!co) return;
    pd_http_stop(co->http); /* first: it reads the cluster's state */
    if (co->lfd >= 0) close(co->lfd);
    pd_free(co->server_addr);
    pd_free(co->server_conn);
    pd_free(co->sseen_ms);
    pd_free(co->ssilent);
    pd_free(co->wstate);
    pd_free(co->wseen_ms);
    pd_free(co->wclock);
    pd_free(co->wgen);
    pd_free(co->wstart);
    pd_free(co->wbar);
    pd_free(co->tk_gen);
    pd_free(co->tk_gone);
    pd_free(co->sdown);
    pd_free(co->sdown_until);
    pd_free(co->sdown_t0);
    pd_free(co->sepoch);
    pd_free(co->srep_clock);
    pd_free(co->srep_from);
    pd_free(co->sdown_why);
    pd_free(co->wwait);
    pd_free(co->cp_conn);
    pd_free(co->cp_addr);
    pd_free(co->cp_state);
    pd_free(co->cp_promoting);
    pd_free(co->tables);
    pd_free(co->ck_files);
    pd_wipe(&co->key, sizeof co->key);
    pd_wipe(&co->grant, sizeof co->grant);
    pthread_mutex_destroy(&co->mu);
    pthread_cond_destroy(&co->cv);
    pd_admit_destroy(&co->admit);
    pd_free(co);
}

