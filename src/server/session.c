/*
 * session.c - one connection to a server: its thread, the handshake, and
 * the one dispatch every request goes through (server_impl.h says who
 * owns what).
 *
 * Design.  One thread per connection, blocking I/O.  A worker keeps one
 * connection to each server, and a server answers the requests of one
 * connection in order, so replies need no reordering on the client and a
 * sync pull that must wait for its clock blocks only the connection of the
 * worker that asked.  Payloads of pushes are read into the connection's
 * own buffer (grown to the largest chunk seen, never per request) and
 * applied under the table's lock; pulls copy out under its values' read
 * lock and send what did not fit after releasing it (handlers.c).
 *
 * Handlers do their I/O on sc->io, never on sc->conn: sc->io is the
 * connection itself, or during a BATCH a memory connection over the
 * batch's inner frames (batch.c), which run through srv_dispatch exactly
 * as frames from the socket do.  sc->conn is the socket (or ring) itself,
 * which other threads may shut down.
 *
 * Bad input.  A frame whose header is bad (magic, version, type, length
 * over the limit) gets an error reply and the connection is closed, since
 * the stream can no longer be trusted; so does a malformed BATCH (a bad
 * inner header, an inner length past its end, a forbidden inner type,
 * trailing bytes), before any of its requests runs.  A well-framed request
 * that is wrong (unknown table, range outside the shard, duplicate push),
 * inside a batch or not, gets an error reply, its payload is skipped, and
 * the connection stays open.  In every case nothing in any table changes.
 * Deadlines and limits (frame/admit.h, docs/limits.md).  A connection
 * must finish its handshake within o.handshake_ms of being accepted, and
 * every frame must arrive whole within o.frame_ms of its first byte (an
 * idle peer between frames is fine; a trickling one is not); a
 * connection that misses either is dropped.  Until its handshake is done
 * a connection is pending: the server keeps at most o.max_pending of
 * those and evicts the oldest for a newer one.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "frame/hello.h"
#include "net/fault.h"
#include "server/server_impl.h"

/* ==== Helpers =========================================================== */

int srv_send_ok(srv_conn *sc, const pd_hdr *req, const void *p, size_t n,
                const void *p2, size_t n2) {
    pd_hdr h = {0};
    h.type = req->type | PD_REPLY;
    h.id = req->id;
    h.table = req->table;
    h.clock = req->clock;
    /* An update is answered once every live copy has it (replica.c); in
     * a BATCH, before the batch's reply. */
    if (sc->io == sc->conn) {
        int rc = srv_repl_wait(sc);
        if (rc) return rc;
    }
    return pd_send_frame(sc->io, &h, p, n, p2, n2, NULL, 0, NULL);
}

int srv_reply_err(srv_conn *sc, const pd_hdr *req, const pd_err *e) {
    srv_count_error(sc->srv, req->type);
    pd_log(PD_LOG_INFO, "rejected %s from %s (rank %d): %s",
           pd_msg_name(req->type), sc->conn->peer, sc->rank, e->msg);
    return pd_send_error(sc->io, req, e->code, e->msg);
}

int srv_read_fixed(srv_conn *sc, const pd_hdr *h, size_t want, int *rc) {
    if (h->len != want) {
        pd_err e = {0};
        if ((*rc = pd_conn_skip(sc->io, h->len, &sc->ioerr))) return 1;
        pd_seterr(&e, PARAMD_EPROTO, "%s payload of %llu bytes, expected %zu",
                  pd_msg_name(h->type), (unsigned long long)h->len, want);
        *rc = srv_reply_err(sc, h, &e);
        return 1;
    }
    *rc = pd_conn_read(sc->io, sc->ctrl, want, 0, &sc->ioerr);
    return *rc != 0;
}

int srv_ensure_buf(srv_conn *sc, size_t n) {
    if (n <= sc->cap) return 0;
    uint8_t *p = pd_realloc(sc->buf, n);
    if (!p) return -1;
    sc->buf = p;
    sc->cap = n;
    return 0;
}

int srv_stopping(pd_server *s) {
    pthread_mutex_lock(&s->mu);
    int stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stopping;
}

/* ==== The dispatch ====================================================== */

static int dispatch(srv_conn *sc, const pd_hdr *h) {
    switch (h->type) {
    case PD_MSG_TABLE_CREATE: return srv_on_table_create(sc, h);
    case PD_MSG_SET:
    case PD_MSG_PUSH: return srv_on_write(sc, h);
    case PD_MSG_PULL: return srv_on_pull(sc, h);
    case PD_MSG_STATS: return srv_on_stats(sc, h);
    case PD_MSG_SPARSE_PUSH:
    case PD_MSG_SPARSE_PULL: return srv_on_sparse(sc, h);
    case PD_MSG_BATCH: return srv_on_batch(sc, h);
    case PD_MSG_REGION_MAP: return srv_on_region_map(sc, h);
    case PD_MSG_REGION_UNMAP: return srv_on_region_unmap(sc, h);
    case PD_MSG_PUSH_REGION: return srv_on_push_region(sc, h);
    case PD_MSG_PULL_REGION: return srv_on_pull_region(sc, h);
    case PD_MSG_REPL: return srv_on_repl(sc, h);
    case PD_MSG_SEED: return srv_on_seed(sc, h);
    }
    pd_err e = {0};
    pd_seterr(&e, PARAMD_EPROTO, "unexpected %s on a server connection",
              pd_msg_name(h->type));
    pd_log(PD_LOG_WARN, "closing connection from %s: %s", sc->conn->peer, e.msg);
    pd_send_error(sc->io, h, e.code, e.msg);
    return e.code;
}

int srv_dispatch(srv_conn *sc, const pd_hdr *h) {
    double t0 = pd_now();
    int rc = dispatch(sc, h);
    srv_count_request(sc->srv, h->type, h->len, pd_now() - t0);
    return rc;
}

/* ==== The connection thread ============================================= */

/* The handshake (frame/hello.h): workers of this cluster and tools. */
static int conn_hello(srv_conn *sc) {
    pd_server *s = sc->srv;
    pd_err e = {0};
    pd_hello peer;
    pd_hello_rules rules = {
        .who = "server",
        .roles = PD_ROLE_BIT(PD_ROLE_WORKER) | PD_ROLE_BIT(PD_ROLE_TOOL) |
                 (s->replicas > 1 ? PD_ROLE_BIT(PD_ROLE_SERVER) : 0), /* a copy's feed */
        .workers = s->W,
        .key = s->has_key ? &s->key : NULL,
        .grant = &s->grant,
        .need_ticket = 1, /* a rank is the coordinator's to give */
        .claim = srv_claim_rank,
        .claim_arg = s,
    };
    pd_welcome w = {1, (uint32_t)s->index, (uint32_t)s->S, (uint32_t)s->W, "",
                    PD_FEAT_REGIONS, ""};
    /* Who this host is: a worker tries shared memory only if its own
     * identity is the same (net/host.h). */
    snprintf(w.host, sizeof w.host, "%s", s->host_id);
    /* Where a worker on this host can reach the shared-memory transport
     * (empty: not offered, or already on it). */
    if (sc->shm_fd < 0) snprintf(w.shm, sizeof w.shm, "%s", s->shm_name);
    int rc = pd_handshake_accept(sc->conn, &rules, &w, &peer, &e);
    if (rc) return rc;
    pthread_mutex_lock(&s->mu); /* read by STATS on other threads */
    if (peer.role == PD_ROLE_SERVER) { /* its primary (srv_claim_feed checked) */
        if (s->feed_conns > 0 || s->seeded || s->copy <= 0) {
            pthread_mutex_unlock(&s->mu);
            pd_log(PD_LOG_WARN, "refused a second feed for copy %d of slot %d from %s",
                   s->copy, s->index, sc->conn->peer);
            return PARAMD_EPROTO;
        }
        s->feed_conns++;
    }
    sc->role = peer.role;
    sc->rank = peer.role == PD_ROLE_WORKER ? peer.rank : -1;
    sc->op_timeout_ms = peer.op_timeout_ms;
    if (sc->rank >= 0) __atomic_add_fetch(&s->wconns[sc->rank], 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* The loop: a header, its request, until the peer leaves or breaks. */
static int conn_serve(srv_conn *sc) {
    pd_server *s = sc->srv;
    int rc = 0;
    while (rc == 0) {
        pd_err e = {0};
        pd_hdr h;
        rc = pd_recv_hdr(sc->conn, &h, s->o.max_frame, &e);
        if (rc == PARAMD_ECLOSED) break;
        if (rc) {
            if (!srv_stopping(s)) {
                pd_log(PD_LOG_WARN, "closing connection from %s (rank %d): %s",
                       sc->conn->peer, sc->rank, e.msg);
                if (rc != PARAMD_EIO) pd_send_error(sc->conn, &h, rc, e.msg);
            }
            break;
        }
        rc = srv_dispatch(sc, &h);
        if (rc && rc != PARAMD_ECLOSED && !srv_stopping(s) && rc != PARAMD_EPROTO)
            pd_log(PD_LOG_WARN, "connection from %s (rank %d) ended: %s",
                   sc->conn->peer, sc->rank,
                   sc->ioerr.code ? sc->ioerr.msg : paramd_strerror(rc));
    }
    return rc;
}

/* A receive timeout a quarter of the deadline: a read blocked in the
 * transport notices a passed deadline that much late at most. */
static int timeo_for(int deadline_ms) {
    return deadline_ms / 4 > 100 ? deadline_ms / 4 : 100;
}

static void *conn_main(void *arg) {
    srv_conn *sc = arg;
    pd_server *s = sc->srv;
    int rc = 0;
    int64_t hs_deadline = pd_now_ms() + s->o.handshake_ms;
    if (sc->shm_fd >= 0) {
        pd_err e = {0};
        pd_conn *c = pd_shm_server_handshake(sc->shm_fd, s->o.handshake_ms, &e);
        if (c && s->o.fault) c = pd_fault_wrap(c, s->o.fault, &e); /* tests */
        pthread_mutex_lock(&s->mu);
        sc->conn = c; /* visible to the stop path from here on */
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (!c) pd_log(PD_LOG_WARN, "shared-memory connection refused: %s", e.msg);
        if (c) pd_admit_set_conn(&s->admit, &sc->slot, c); /* evictable now */
        if (c && stopping) pd_conn_shutdown(c);
        if (!c) rc = PARAMD_EPROTO;
    }
    if (rc == 0) {
        sc->io = sc->conn;
        sc->conn->deadline_ms = hs_deadline;
        sc->conn->frame_ms = s->o.frame_ms;
        pd_conn_set_rcvtimeo(sc->conn, timeo_for(s->o.handshake_ms));
        rc = conn_hello(sc);
    }
    if (rc == 0) rc = pd_admit_welcomed(&s->admit, &sc->slot);
    if (rc == 0) {
        sc->conn->deadline_ms = 0;
        pd_conn_set_rcvtimeo(sc->conn, timeo_for(s->o.frame_ms));
        srv_bind_rank(sc);
        conn_serve(sc);
    }
    pd_admit_leave(&s->admit, &sc->slot); /* before the connection goes */
    /* unlink and free */
    pthread_mutex_lock(&s->mu);
    if (sc->rank >= 0) __atomic_sub_fetch(&s->wconns[sc->rank], 1, __ATOMIC_RELAXED);
    if (sc->role == PD_ROLE_SERVER && --s->feed_conns == 0) pthread_cond_broadcast(&s->cv);
    if (sc->seed_fd >= 0) {
        close(sc->seed_fd);
        unlink(sc->seed_path);
    }
    pd_free(sc->fwd);
    for (srv_conn **pp = &s->conns; *pp; pp = &(*pp)->next)
        if (*pp == sc) {
            *pp = sc->next;
            break;
        }
    srv_regions_drop_all(sc);
    pd_conn_destroy(sc->conn);
    pd_free(sc->buf);
    pd_free(sc->bin);
    pd_free(sc->items);
    pd_buf_free(&sc->bout);
    pd_free(sc);
    if (--s->nthreads == 0) pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

void srv_start_conn(pd_server *s, pd_conn *c, int shm_fd) {
    srv_conn *sc = pd_calloc(1, sizeof *sc);
    if (!sc) {
        pd_conn_destroy(c);
        if (shm_fd >= 0) close(shm_fd);
        return;
    }
    if (pd_admit_enter(&s->admit, &sc->slot, c) != 0) {
        if (c) pd_admit_refuse(&s->admit, c); /* names the limit */
        if (shm_fd >= 0) close(shm_fd);
        pd_free(sc);
        return;
    }
    sc->conn = c;
    sc->shm_fd = shm_fd;
    sc->srv = s;
    sc->rank = -1;
    sc->seed_fd = -1;
    sc->pull_room = UINT64_MAX;
    pd_buf_init(&sc->bout);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&s->mu);
    sc->next = s->conns;
    s->conns = sc;
    s->nthreads++;
    __atomic_add_fetch(&s->conns_total, 1, __ATOMIC_RELAXED);
    pthread_t tid;
    if (pthread_create(&tid, &attr, conn_main, sc) != 0) {
        s->conns = sc->next;
        s->nthreads--;
        pd_admit_leave(&s->admit, &sc->slot);
        pd_conn_destroy(c);
        if (shm_fd >= 0) close(shm_fd);
        pd_free(sc);
        pd_log(PD_LOG_WARN, "cannot start a connection thread");
    }
    pthread_mutex_unlock(&s->mu);
    pthread_attr_destroy(&attr);
}
