/*
 * membership.c - the coordinator watcher and what it tells a server about
 * workers: WORKER_GONE, WORKER_JOIN (two phases), SHUTDOWN; the
 * incarnation of each rank, which keeps a dead worker's pushes out of its
 * successor's clocks; and, when the coordinator is lost and gave a rejoin
 * window, serving on while reconnecting to its address, to rejoin a
 * coordinator started again there (SERVER_REJOIN: coord/takeover.c).
 *
 * The coordinator watcher calls these (WORKER_GONE, WORKER_JOIN); the
 * tables do the clock arithmetic (gate.h, "Joins").  Each rank has an
 * incarnation, wgen[rank], bumped when it is gone and when it joins: a
 * connection remembers the incarnation it was opened in (srv_bind_rank)
 * and may push only while it is current, and a bump waits until the
 * pushes already inside a table are done (inflight).  So no push of a
 * dead worker's connection still in a socket buffer can ever count for
 * the worker that takes its rank.  Called with nothing locked.
 *
 * Who may connect as a rank.  A worker's HELLO shows the ticket the
 * coordinator gave it (frame/auth.h): the handshake checks that it is the
 * coordinator's, and srv_claim_rank that its incarnation is not older
 * than the newest this server has seen for that rank.  So no peer takes
 * a rank it was not given, and the holder of a rank is never displaced
 * by anyone but the worker the coordinator gave the rank to next (which
 * it does only once the holder left or died: WORKER_GONE came first).
 */
#include <stdio.h>
#include <time.h>

#include "table/spec.h"
#include "wire/rejoin.h"

#include "server/server_impl.h"

int srv_claim_rank(void *arg, const pd_hello *peer, pd_err *e) {
    pd_server *s = arg;
    if (peer->role == PD_ROLE_SERVER) return srv_claim_feed(s, peer, e);
    if (peer->role != PD_ROLE_WORKER) return 0;
    if (!srv_is_primary(s))
        return pd_seterr(e, PARAMD_EWORKER, "server %d is copy %d of slot %d, fed by the "
                         "slot's primary: workers reach the primary (the coordinator's "
                         "map names it)", s->index, __atomic_load_n(&s->copy, __ATOMIC_ACQUIRE),
                         s->index);
    pthread_mutex_lock(&s->mu);
    uint32_t newest = s->holder[peer->rank];
    int ok = peer->ticket.gen >= newest;
    if (ok) s->holder[peer->rank] = peer->ticket.gen;
    pthread_mutex_unlock(&s->mu);
    if (ok) return 0;
    return pd_seterr(e, PARAMD_EWORKER,
                     "rank %d was given to a newer worker (incarnation %u; this "
                     "connection's ticket is of incarnation %u): it may not connect "
                     "as that rank",
                     peer->rank, newest, peer->ticket.gen);
}

void srv_bind_rank(srv_conn *sc) {
    if (sc->rank < 0) return;
    pthread_mutex_lock(&sc->srv->mu);
    sc->gen = sc->srv->wgen[sc->rank];
    pthread_mutex_unlock(&sc->srv->mu);
}

/* 0 and the push may go into a table (then push_end), or PARAMD_EWORKER. */
int srv_push_begin(srv_conn *sc, pd_err *e) {
    pd_server *s = sc->srv;
    if (sc->rank < 0) return 0; /* the table refuses it */
    pthread_mutex_lock(&s->mu);
    int ok = sc->gen == s->wgen[sc->rank];
    if (ok) s->inflight[sc->rank]++;
    pthread_mutex_unlock(&s->mu);
    if (ok) return 0;
    return pd_seterr(e, PARAMD_EWORKER,
                     "worker %d was removed from the cluster (or its rank was "
                     "given to a new worker): this connection may not push",
                     sc->rank);
}

void srv_push_end(srv_conn *sc) {
    pd_server *s = sc->srv;
    if (sc->rank < 0) return;
    pthread_mutex_lock(&s->mu);
    if (--s->inflight[sc->rank] == 0) pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* With s->mu held: a new incarnation of rank w; returns once no push of an
 * older one is inside a table.  Pushes never wait inside a table, so this
 * is short.  Connections of the old incarnation are shut down (a stopped
 * worker that resumes gets errors, not silence). */
static void new_incarnation(pd_server *s, uint32_t w) {
    s->wgen[w]++;
    for (srv_conn *sc = s->conns; sc; sc = sc->next)
        if (sc->rank == (int32_t)w && sc->gen != s->wgen[w])
            pd_conn_shutdown(sc->conn);
    while (s->inflight[w] > 0) pthread_cond_wait(&s->cv, &s->mu);
}

/* With s->mu held: worker w is gone (WORKER_GONE, or the undoing of a join
 * the lost coordinator had prepared). */
static void forget_worker(pd_server *s, uint32_t w, uint32_t clean) {
    if (s->join_pending == (int32_t)w) s->join_pending = -1;
    s->gone[w] = 1;
    new_incarnation(s, w);
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
        pd_table *t = s->tables[id];
        if (!t) continue;
        int64_t at = pd_table_applied(t);
        pd_table_worker_gone(t, (int32_t)w);
        if (t->def.consistency != PD_CONS_ASYNC)
            pd_log(clean ? PD_LOG_DEBUG : PD_LOG_WARN, "worker %u removed: table %u goes on at "
                   "clock %lld without it", w, id, (long long)at);
    }
}

static void on_worker_gone(pd_server *s, const pd_hdr *h, const uint8_t *buf) {
    pd_rd r;
    uint32_t w, clean = 0;
    pd_rd_init(&r, buf, (size_t)h->len);
    pd_get_u32(&r, &w);
    pd_get_u32(&r, &clean);
    if (!pd_rd_done(&r) || w >= (uint32_t)s->W) {
        pd_log(PD_LOG_WARN, "ignoring a malformed WORKER_GONE");
        return;
    }
    pthread_mutex_lock(&s->mu);
    forget_worker(s, w, clean);
    pthread_mutex_unlock(&s->mu);
}

/* WORKER_JOIN: u32 rank, u32 phase, i64 clock.  PREPARE is answered with
 * this server's frontier (i64: the largest of its tables', 0 if none);
 * COMMIT (clock J) is not answered. */
static void on_worker_join(pd_server *s, const pd_hdr *h, const uint8_t *buf, int reply) {
    pd_rd r;
    uint32_t w, phase;
    uint64_t J;
    pd_rd_init(&r, buf, (size_t)h->len);
    pd_get_u32(&r, &w);
    pd_get_u32(&r, &phase);
    pd_get_u64(&r, &J);
    if (!pd_rd_done(&r) || w >= (uint32_t)s->W ||
        (phase != PD_JOIN_PREPARE && phase != PD_JOIN_COMMIT) ||
        J > (uint64_t)INT64_MAX) {
        pd_log(PD_LOG_WARN, "ignoring a malformed WORKER_JOIN");
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (phase == PD_JOIN_PREPARE) {
        int64_t F = 0;
        s->gone[w] = 0;
        new_incarnation(s, w);
        for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
            int64_t f = s->tables[id] ? pd_table_join_begin(s->tables[id], (int32_t)w) : -1;
            if (f > F) F = f;
        }
        s->jfrom[w] = F;
        s->join_pending = (int32_t)w;
        pthread_mutex_unlock(&s->mu);
        if (!reply) return;
        uint8_t p[8];
        for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)F >> (8 * i));
        pd_hdr rh = *h;
        rh.type = PD_MSG_WORKER_JOIN | PD_REPLY;
        rh.len = 0;
        pthread_mutex_lock(&s->coord_send_mu); /* the checkpoint thread writes too */
        pd_send_frame(s->coord, &rh, p, sizeof p, NULL, 0, NULL, 0, NULL);
        pthread_mutex_unlock(&s->coord_send_mu);
        pd_log(PD_LOG_DEBUG, "worker %u joining: this server's frontier is clock %lld",
               w, (long long)F);
        return;
    }
    s->jfrom[w] = (int64_t)J;
    if (s->join_pending == (int32_t)w) s->join_pending = -1;
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
        pd_table *t = s->tables[id];
        if (!t) continue;
        const pd_table_def *d = &t->def;
        pd_table_join_at(t, (int32_t)w, (int64_t)J);
        if (!d->elastic)
            pd_log(PD_LOG_INFO, "worker %u joined: table %u does not take it "
                   "(elastic=no)", w, id);
        else if (d->consistency != PD_CONS_ASYNC)
            pd_log(PD_LOG_INFO, "worker %u joined: table %u counts it from "
                   "clock %lld", w, id, (long long)J);
    }
    pthread_mutex_unlock(&s->mu);
}

void srv_member_event(pd_server *s, const pd_hdr *h, const uint8_t *buf, int reply) {
    if (h->type == PD_MSG_WORKER_GONE) on_worker_gone(s, h, buf);
    else on_worker_join(s, h, buf, reply);
}

/* ==== Heartbeats ======================================================== */

void *srv_heartbeat_main(void *arg) {
    pd_server *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        /* (cv is broadcast for other reasons too: a beat goes only once
         * the interval has passed) */
        int64_t due = pd_now_ms() + SRV_HEARTBEAT_MS;
        for (int64_t now = pd_now_ms(); now < due && !s->stopping; now = pd_now_ms())
            pd_cond_wait_ms(&s->cv, &s->mu, due - now); /* pd_server_stop wakes it */
        if (s->stopping) break;
        pthread_mutex_unlock(&s->mu);
        pd_hdr h = {0};
        h.type = PD_MSG_HEARTBEAT; /* id 0: unsolicited, no reply */
        pd_err e = {0};
        pthread_mutex_lock(&s->coord_send_mu);
        int rc = pd_send_frame(s->coord, &h, NULL, 0, NULL, 0, NULL, 0, &e);
        pthread_mutex_unlock(&s->coord_send_mu);
        pthread_mutex_lock(&s->mu);
        /* A failed send: the watcher notices the loss, and rejoins a new
         * coordinator (the next beat goes there) or stops us. */
        (void)rc;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ==== Rejoining a coordinator started again ============================ */

/* The SERVER_REJOIN parts (coord/takeover.c): records, cut at record
 * boundaries into frames of up to PD_MAX_CTRL_PAYLOAD, the last one's
 * clock 1; sent on conn, the last as an RPC.  0 once it is answered. */
static int send_rejoin(pd_server *s, pd_conn *conn, pd_err *e) {
    pd_buf b;
    pd_buf_init(&b);
    size_t *cut = NULL, ncut = 0, capcut = 0; /* where each record ends */
#define CUT()                                                                  \
    do {                                                                       \
        if (ncut == capcut) {                                                  \
            size_t nc = capcut ? capcut * 2 : 64;                              \
            size_t *p = pd_realloc(cut, nc * sizeof *p);                       \
            if (!p) { b.oom = 1; break; }                                      \
            cut = p, capcut = nc;                                              \
        }                                                                      \
        cut[ncut++] = b.len;                                                   \
    } while (0)
    pd_rejoin_put_head(&b, (uint32_t)s->index, (uint32_t)s->S, (uint32_t)s->W_start,
                       (uint32_t)s->W, s->grant.k, s->advertised);
    CUT();
    pthread_mutex_lock(&s->mu);
    for (uint32_t id = 1; id < PD_MAX_TABLES && !b.oom; id++) {
        pd_table *t = s->tables[id];
        if (!t) continue;
        char spec[PD_MAX_SPEC + 1];
        pd_spec_canonical(&t->def, spec, sizeof spec);
        pd_rejoin_put_table(&b, id, t->def.name, t->def.n, spec);
        CUT();
    }
    for (int32_t w = 0; w < s->W && !b.oom; w++) {
        if (!s->holder[w] && !s->gone[w]) continue;
        pd_rejoin_put_rank(&b, (uint32_t)w, s->holder[w], s->gone[w] != 0);
        CUT();
    }
    pthread_mutex_unlock(&s->mu);
#undef CUT
    int rc = b.oom ? pd_seterr(e, PARAMD_ENOMEM, "out of memory") : 0;
    size_t from = 0;
    uint8_t *reply = rc ? NULL : pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    if (!rc && !reply) rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && from < b.len;) {
        size_t to = from;
        while (i < ncut && cut[i] - from <= PD_MAX_CTRL_PAYLOAD) to = cut[i++];
        if (to == from) { /* (a record never exceeds a frame) */
            rc = pd_seterr(e, PARAMD_EPROTO, "a SERVER_REJOIN record too large");
            break;
        }
        pd_hdr h = {0}, rh;
        h.type = PD_MSG_SERVER_REJOIN;
        h.id = 2;
        h.clock = to == b.len;
        if (to < b.len)
            rc = pd_send_frame(conn, &h, b.p + from, to - from, NULL, 0, NULL, 0, e);
        else
            rc = pd_rpc(conn, &h, b.p + from, to - from, &rh, reply, e);
        from = to;
    }
    pd_free(reply);
    pd_free(cut);
    pd_wipe(b.p, b.len);
    pd_buf_free(&b);
    return rc;
}

/* The coordinator was lost (why): keep serving, and for the rejoin window
 * try to rejoin a coordinator at its address.  0 once one took this
 * server back (s->coord is the new connection), else -1 (logged). */
static int rejoin(pd_server *s, const char *why) {
    int64_t t0 = pd_now_ms(), end = t0 + s->rejoin_ms;
    pd_log(PD_LOG_WARN, "lost the coordinator: %s; serving on, and reconnecting to %s for "
           "up to %.0f s (its --rejoin-s)", why, s->o.coordinator, s->rejoin_ms / 1000.0);
    /* What the lost coordinator had begun cannot end: a checkpoint (its
     * holds are lifted) and a join (undone, as it would have done). */
    srv_ckpt_lost(s);
    pthread_mutex_lock(&s->mu);
    if (s->join_pending >= 0) forget_worker(s, (uint32_t)s->join_pending, 1);
    pthread_mutex_unlock(&s->mu);
    char last[PD_ERRMSG_MAX];
    snprintf(last, sizeof last, "%s", why);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        int64_t left = end - pd_now_ms();
        if (stopping) return -1;
        if (left <= 0) break;
        pd_err e = {0};
        pd_conn *c = pd_tcp_connect(s->o.coordinator, left < 1000 ? (int)left : 1000, &e);
        int rc = c ? 0 : e.code ? e.code : PARAMD_EIO;
        if (c) {
            pd_tcp_set_peer_timeout(c, PD_PEER_TIMEOUT_DEFAULT);
            pd_hello hello = {.role = PD_ROLE_SERVER, .rank = -1};
            rc = pd_handshake_dial(c, &hello, s->has_key ? &s->key : NULL, NULL, &e);
            if (rc == 0) rc = send_rejoin(s, c, &e);
        }
        if (rc == 0) {
            pthread_mutex_lock(&s->coord_send_mu);
            pd_conn *old = s->coord;
            s->coord = c;
            pthread_mutex_unlock(&s->coord_send_mu);
            pd_conn_destroy(old);
            pthread_mutex_lock(&s->mu);
            if (s->stopping) pd_conn_shutdown(c); /* (its stop shut the old one) */
            pthread_mutex_unlock(&s->mu);
            pd_log(PD_LOG_INFO, "rejoined the coordinator at %s after %.1f s",
                   s->o.coordinator, (double)(pd_now_ms() - t0) / 1000.0);
            return 0;
        }
        pd_conn_destroy(c);
        snprintf(last, sizeof last, "%s", e.msg);
        if (rc == PARAMD_ECONFIG) { /* it answered, and will not take us */
            pd_log(PD_LOG_ERROR, "the coordinator at %s refused this server: %s",
                   s->o.coordinator, e.msg);
            return -1;
        }
        /* try again in a tenth of a second (pd_server_stop wakes us) */
        pthread_mutex_lock(&s->mu);
        if (!s->stopping) pd_cond_wait_ms(&s->cv, &s->mu, 100);
        pthread_mutex_unlock(&s->mu);
    }
    pd_log(PD_LOG_ERROR, "lost the coordinator: no coordinator took the cluster back at %s "
           "within %.0f s (the last try: %s); stopping", s->o.coordinator,
           s->rejoin_ms / 1000.0, last);
    return -1;
}

/* ==== Coordinator watcher ============================================== */

void *srv_coord_main(void *arg) {
    pd_server *s = arg;
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    for (;;) {
        pd_err e = {0};
        pd_hdr h;
        int rc = pd_recv_hdr(s->coord, &h, PD_MAX_CTRL_PAYLOAD, &e);
        if (rc == 0 && buf) rc = pd_recv_payload(s->coord, &h, buf, &e);
        if (rc == 0 && h.type == PD_MSG_SHUTDOWN) {
            /* With a reason (a str): the coordinator ended a cluster that
             * failed (coord/startup.c), and so does this server's run. */
            char why[PD_ERRMSG_MAX] = "";
            pd_rd r;
            pd_rd_init(&r, buf, buf ? (size_t)h.len : 0);
            if (h.len > 0 && pd_get_str(&r, why, sizeof why - 1) == 0 && why[0]) {
                pd_log(PD_LOG_ERROR, "the coordinator ended the cluster: %s", why);
                pthread_mutex_lock(&s->mu);
                s->lost_coordinator = 1;
                pthread_mutex_unlock(&s->mu);
            } else {
                pd_log(PD_LOG_DEBUG, "coordinator says shutdown");
            }
            break;
        }
        if (rc == 0 && (h.type == PD_MSG_WORKER_GONE || h.type == PD_MSG_WORKER_JOIN)) {
            srv_repl_member(s, &h, buf, srv_member_event); /* (in the order of updates) */
            continue;
        }
        if (rc == 0 && h.type == PD_MSG_REPLICA_ADD) {
            srv_on_replica_add(s, &h, buf);
            continue;
        }
        if (rc == 0 && h.type == (PD_MSG_REPLICA_DROP | PD_REPLY)) {
            srv_on_drop_reply(s, &h);
            continue;
        }
        if (rc == 0 && h.type == PD_MSG_RETIRE) { /* (coord/moves.c) */
            char why[PD_ERRMSG_MAX] = "";
            uint32_t flags = 0;
            pd_rd r;
            pd_rd_init(&r, buf, buf ? (size_t)h.len : 0);
            pd_get_str(&r, why, sizeof why - 1);
            if (!r.bad && r.off < r.len) pd_get_u32(&r, &flags); /* (optional) */
            pd_log(PD_LOG_INFO, "%s; stopping", why[0] ? why : "drained");
            pthread_mutex_lock(&s->mu);
            s->retired = flags & PD_RETIRE_STAY ? 2 : 1;
            pthread_mutex_unlock(&s->mu);
            break;
        }
        if (rc == 0 && h.type == PD_MSG_PROMOTE) {
            srv_on_promote(s, &h);
            continue;
        }
        if (rc == 0 && h.type == PD_MSG_CKPT_HOLD) {
            srv_on_ckpt_hold(s, &h);
            continue;
        }
        if (rc == 0 && h.type == PD_MSG_CKPT_WRITE) {
            srv_on_ckpt_write(s, &h, buf);
            continue;
        }
        if (rc == 0 && h.type == PD_MSG_CKPT_ABORT) {
            srv_on_ckpt_abort(s);
            continue;
        }
        if (rc) {
            pthread_mutex_lock(&s->mu);
            int stopping = s->stopping;
            pthread_mutex_unlock(&s->mu);
            if (stopping) break;
            if (s->replicas > 1) srv_repl_lost_coordinator(s);
            if (s->rejoin_ms > 0 && srv_is_primary(s)) {
                if (rejoin(s, e.msg) == 0) continue;
            } else {
                pd_log(PD_LOG_ERROR, "lost the coordinator: %s", e.msg);
            }
            pthread_mutex_lock(&s->mu);
            if (!s->stopping) s->lost_coordinator = 1;
            pthread_mutex_unlock(&s->mu);
            break;
        }
    }
    pd_free(buf);
    pd_server_stop(s);
    return NULL;
}

