/*
 * handlers.c - the requests that reach tables: TABLE_CREATE, SET, PUSH,
 * PULL, SPARSE_PUSH, SPARSE_PULL, and STATS.  Each handler reads its
 * payload from sc->io, checks every field against the table before any of
 * it is used, turns the frame into a pd_table_req (table.h) and answers
 * on sc->io.  Each returns 0 to keep the connection, or an error to close
 * it; a wrong request is answered with an error and changes nothing.
 *
 * Pull replies are sent from under the table's values lock where the
 * transport takes them without blocking (a dense pull's values go
 * straight from the table to the socket or ring); what does not fit is
 * copied to the connection's buffer and sent after the lock is released,
 * so a slow worker never holds a table.
 */
#include <stdio.h>
#include <string.h>

#include "server/server_impl.h"

pd_table *srv_table(pd_server *s, uint32_t id) {
    if (id == 0 || id >= PD_MAX_TABLES) return NULL;
    pthread_mutex_lock(&s->mu);
    pd_table *t = s->tables[id];
    pthread_mutex_unlock(&s->mu);
    return t;
}

/* A pull's deadline (pd_table_req.wait_ms): the worker's op_timeout_ms;
 * spent (-1) for a later part of a call (more: PD_PULL_MORE) whose
 * earlier part on this connection timed out waiting for the same clock
 * of the same table, so that a range cut into k chunks waits once, not k
 * times.  A pull that is not such a part starts afresh: a retry after
 * PARAMD_ETIMEDOUT waits the whole deadline again. */
int64_t srv_pull_deadline(srv_conn *sc, const pd_hdr *h, int more) {
    if (more && sc->spent_table == h->table && sc->spent_clock == h->clock) return -1;
    return sc->op_timeout_ms;
}

/* After a pull: remember (or forget) that it timed out. */
void srv_pull_spent(srv_conn *sc, const pd_hdr *h, int rc) {
    sc->spent_table = rc == PARAMD_ETIMEDOUT ? h->table : 0;
    sc->spent_clock = h->clock;
}

int srv_push(srv_conn *sc, pd_table *t, const pd_table_req *rq, pd_err *e) {
    int rc = srv_push_begin(sc, e);
    if (rc) return rc;
    rc = pd_table_push(t, rq, e);
    srv_push_end(sc);
    return rc;
}

/* ==== TABLE_CREATE ====================================================== */

static int create_locked(srv_conn *sc, const pd_hdr *h, const pd_table_def *dp, pd_err *e);

int srv_on_table_create(srv_conn *sc, const pd_hdr *h) {
    pd_err e = {0};
    pd_table_def d;
    int rc = pd_recv_payload(sc->io, h, sc->ctrl, &sc->ioerr);
    if (rc) return rc;
    if (pd_table_def_decode(sc->ctrl, (size_t)h->len, &d, &e) != 0)
        return srv_reply_err(sc, h, &e);
    if (h->table == 0 || h->table >= PD_MAX_TABLES) {
        pd_seterr(&e, PARAMD_ENOTABLE, "table id %u outside 1..%d", h->table,
                  PD_MAX_TABLES - 1);
        return srv_reply_err(sc, h, &e);
    }
    /* Tables are defined by registered workers only (their HELLO showed
     * the coordinator's ticket), within this server's limits. */
    if (sc->role != PD_ROLE_WORKER) {
        pd_seterr(&e, PARAMD_EWORKER, "only workers define tables");
        return srv_reply_err(sc, h, &e);
    }
    srv_mut_begin(sc, h, NULL); /* (a TABLE_CREATE is never skipped) */
    rc = create_locked(sc, h, &d, &e);
    srv_mut_end(sc, h, rc, h->type, sc->ctrl, (size_t)h->len, NULL, 0);
    if (rc) return srv_reply_err(sc, h, &e);
    return srv_send_ok(sc, h, NULL, 0, NULL, 0);
}

/* TABLE_CREATE's work, under the server's mu: 0 or the error in e. */
static int create_locked(srv_conn *sc, const pd_hdr *h, const pd_table_def *dp, pd_err *e) {
    pd_server *s = sc->srv;
    const pd_table_def d = *dp;
    pthread_mutex_lock(&s->mu);
    pd_table *t = s->tables[h->table];
    if (t && !pd_table_same_def(t, &d)) {
        pthread_mutex_unlock(&s->mu);
        return pd_seterr(e, PARAMD_ESPEC,
                         "table %u exists on this server with another definition",
                         h->table);
    }
    if (!t) {
        if (s->ntables >= s->o.max_tables) {
            pthread_mutex_unlock(&s->mu);
            return pd_seterr(e, PARAMD_ELIMIT,
                             "table %u: this server holds %d tables, its limit "
                             "(paramd server --max-tables)", h->table, s->ntables);
        }
        if (srv_def_within_limit(h->table, &d, s->o.max_table_bytes, e) != 0) {
            pthread_mutex_unlock(&s->mu);
            return e->code;
        }
        pd_table_env env = {s->W, s->index, s->S, s->pool, s->o.max_table_bytes,
                            s->plugin_dir[0] ? s->plugin_dir : NULL};
        t = pd_table_create(h->table, &d, &env, e);
        if (!t || srv_table_within_limit(t, s->o.max_table_bytes, e) != 0) {
            pthread_mutex_unlock(&s->mu);
            pd_table_destroy(t); /* nothing touched its (lazy) memory yet */
            return e->code ? e->code : PARAMD_ENOMEM;
        }
        s->ntables++;
        t->gate.alive = srv_rank_alive; /* for the wait messages */
        t->gate.alive_arg = s;
        /* The table starts where the cluster's membership is now. */
        for (int32_t w = 0; w < s->W; w++)
            if (s->gone[w]) pd_table_worker_gone(t, w);
            else if (s->jfrom[w] >= 0) pd_table_join_at(t, w, s->jfrom[w]);
        s->tables[h->table] = t;
        if (d.kind == PD_TABLE_SPARSE)
            pd_log(PD_LOG_DEBUG, "table %u: sparse, dim %llu", h->table,
                   (unsigned long long)d.n);
        else
            pd_log(PD_LOG_DEBUG, "table %u: shard [%llu, %llu) of %llu", h->table,
                   (unsigned long long)d.lo, (unsigned long long)d.hi,
                   (unsigned long long)d.n);
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ==== Dense: SET, PUSH, PULL ============================================ */

/* SET and PUSH: u64 offset, then floats. */
int srv_on_write(srv_conn *sc, const pd_hdr *h) {
    pd_err e = {0};
    uint8_t pre[PD_RANGE_PREFIX];
    if (h->len < PD_RANGE_PREFIX || (h->len - PD_RANGE_PREFIX) % 4 != 0) {
        int rc = pd_conn_skip(sc->io, h->len, &sc->ioerr);
        if (rc) return rc;
        pd_seterr(&e, PARAMD_EPROTO,
                  "%s payload of %llu bytes is not an offset plus floats",
                  pd_msg_name(h->type), (unsigned long long)h->len);
        return srv_reply_err(sc, h, &e);
    }
    int rc = pd_conn_read(sc->io, pre, sizeof pre, 0, &sc->ioerr);
    if (rc) return rc;
    pd_table_req rq = {0};
    rq.worker = sc->rank;
    rq.clock = h->clock;
    rq.off = pd_le64_get(pre);
    rq.count = (h->len - PD_RANGE_PREFIX) / 4;
    uint64_t nbytes = h->len - PD_RANGE_PREFIX;
    pd_table *t = srv_table(sc->srv, h->table);
    if (!t) {
        pd_seterr(&e, PARAMD_ENOTABLE, "no table %u on this server", h->table);
    } else if (pd_table_check(t, &rq, &e) == 0 && sc->role != PD_ROLE_WORKER) {
        pd_seterr(&e, PARAMD_EWORKER, h->type == PD_MSG_PUSH ? "only workers push"
                                                             : "only workers write values");
    } else if (e.code == 0 && srv_ensure_buf(sc, (size_t)nbytes) != 0) {
        pd_seterr(&e, PARAMD_ENOMEM, "out of memory for a %llu-byte payload",
                  (unsigned long long)nbytes);
    }
    if (e.code) {
        rc = pd_conn_skip(sc->io, nbytes, &sc->ioerr);
        if (rc) return rc;
        return srv_reply_err(sc, h, &e);
    }
    /* Zero-copy where the transport allows it (shared memory): the rule
     * reads the gradient where the worker wrote it. */
    const void *in_place = NULL;
    int peeked = pd_conn_peek(sc->io, (size_t)nbytes, &in_place, &sc->ioerr);
    if (peeked < 0) return peeked;
    if (!peeked) {
        rc = pd_conn_read(sc->io, sc->buf, (size_t)nbytes, 0, &sc->ioerr);
        if (rc) return rc;
    }
    rq.in = peeked ? in_place : (const float *)(void *)sc->buf;
    if (srv_mut_begin(sc, h, t)) { /* sent again after a failover: applied already */
        if (peeked) pd_conn_consume(sc->io, (size_t)nbytes);
        return srv_send_ok(sc, h, NULL, 0, NULL, 0);
    }
    if (h->type == PD_MSG_SET)
        rc = pd_table_set(t, &rq, &e);
    else
        rc = srv_push(sc, t, &rq, &e);
    srv_mut_end(sc, h, rc, h->type, pre, sizeof pre, rq.in, (size_t)nbytes);
    if (peeked) pd_conn_consume(sc->io, (size_t)nbytes);
    if (rc) return srv_reply_err(sc, h, &e);
    return srv_send_ok(sc, h, NULL, 0, NULL, 0);
}

/* A pull reply sent from under the table's values lock: as much of the
 * frame as the transport takes without blocking goes straight from the
 * values; the rest is copied to the connection's buffer and sent after
 * the lock is released. */
typedef struct pull_emit {
    srv_conn *sc;
    const pd_hdr *req;
    uint8_t hb[PD_HDR_SIZE];
    size_t hb_left;     /* header bytes not yet sent (at the end of hb) */
    uint64_t rest;      /* value bytes not yet sent, copied to sc->buf */
    int failed;
} pull_emit;

static void pull_emit_fn(void *arg, const float *v, uint64_t count,
                         int64_t applied) {
    pull_emit *pe = arg;
    pd_hdr rh = {0};
    rh.magic = PD_MAGIC;
    rh.version = PD_PROTO_VERSION;
    rh.type = pe->req->type | PD_REPLY;
    rh.id = pe->req->id;
    rh.table = pe->req->table;
    /* The reply's clock is the table's applied clock: a worker behind it
     * (a backup worker's straggler) can jump ahead. */
    rh.clock = applied;
    rh.len = count * 4;
    pd_hdr_encode(&rh, pe->hb);
    struct iovec iov[2] = {{pe->hb, PD_HDR_SIZE}, {(void *)v, (size_t)count * 4}};
    struct iovec *p = iov;
    int cnt = 2;
    if (pd_conn_try_writev(pe->sc->io, &p, &cnt, &pe->sc->ioerr) < 0) {
        pe->failed = 1;
        return;
    }
    pe->hb_left = cnt == 2 ? iov[0].iov_len : 0;
    pe->rest = cnt > 0 ? p[cnt - 1].iov_len : 0;
    if (pe->rest) memcpy(pe->sc->buf, p[cnt - 1].iov_base, (size_t)pe->rest);
}

int srv_on_pull(srv_conn *sc, const pd_hdr *h) {
    pd_err e = {0};
    uint8_t p[PD_PULL_FLAGS_PAYLOAD];
    if (h->len != PD_PULL_PAYLOAD && h->len != PD_PULL_FLAGS_PAYLOAD) {
        int rc = pd_conn_skip(sc->io, h->len, &sc->ioerr);
        if (rc) return rc;
        pd_seterr(&e, PARAMD_EPROTO, "PULL payload of %llu bytes, expected %d (or %d "
                  "with flags)", (unsigned long long)h->len, PD_PULL_PAYLOAD,
                  PD_PULL_FLAGS_PAYLOAD);
        return srv_reply_err(sc, h, &e);
    }
    int rc = pd_conn_read(sc->io, p, (size_t)h->len, 0, &sc->ioerr);
    if (rc) return rc;
    uint32_t flags = h->len == PD_PULL_FLAGS_PAYLOAD ? pd_le32_get(p + PD_PULL_PAYLOAD) : 0;
    if (flags & ~PD_PULL_MORE) {
        pd_seterr(&e, PARAMD_EPROTO, "PULL with unknown flags 0x%x", flags);
        return srv_reply_err(sc, h, &e);
    }
    pd_table_req rq = {0};
    rq.worker = sc->rank;
    rq.clock = h->clock;
    rq.wait_ms = srv_pull_deadline(sc, h, (flags & PD_PULL_MORE) != 0);
    rq.off = pd_le64_get(p);
    rq.count = pd_le64_get(p + 8);
    uint64_t count = rq.count;
    pd_table *t = srv_table(sc->srv, h->table);
    if (!t)
        pd_seterr(&e, PARAMD_ENOTABLE, "no table %u on this server", h->table);
    else if (pd_table_check(t, &rq, &e) != 0)
        ;
    else if (count > sc->srv->o.max_frame / 4)
        pd_seterr(&e, PARAMD_ETOOBIG,
                  "pull of %llu floats exceeds the frame limit of %llu bytes",
                  (unsigned long long)count,
                  (unsigned long long)sc->srv->o.max_frame);
    else if (count * 4 > sc->pull_room)
        pd_seterr(&e, PARAMD_ETOOBIG,
                  "pull of %llu floats in a BATCH whose pulls already ask for "
                  "%llu of the %u bytes of values a batch may return: send it "
                  "alone",
                  (unsigned long long)count,
                  (unsigned long long)(PD_MAX_BATCH - sc->pull_room), PD_MAX_BATCH);
    else if (srv_ensure_buf(sc, (size_t)count * 4) != 0)
        pd_seterr(&e, PARAMD_ENOMEM, "out of memory for a pull reply");
    if (e.code) return srv_reply_err(sc, h, &e);
    if (sc->pull_room != UINT64_MAX) sc->pull_room -= count * 4;
    pull_emit pe = {sc, h, {0}, 0, 0, 0};
    rc = pd_table_pull(t, &rq, pull_emit_fn, &pe, &e);
    srv_pull_spent(sc, h, rc);
    if (rc) return srv_reply_err(sc, h, &e);
    if (pe.failed) return PARAMD_EIO;
    struct iovec iov[2];
    int cnt = 0;
    if (pe.hb_left) iov[cnt++] = (struct iovec){pe.hb + PD_HDR_SIZE - pe.hb_left, pe.hb_left};
    if (pe.rest) iov[cnt++] = (struct iovec){sc->buf, (size_t)pe.rest};
    return cnt ? pd_conn_writev(sc->io, iov, cnt, &sc->ioerr) : 0;
}

/* ==== Sparse: SPARSE_PUSH, SPARSE_PULL ==================================
 * SPARSE_PUSH: u64 nkeys, keys, nkeys*dim floats.  SPARSE_PULL: u64 nkeys,
 * keys; reply nkeys*dim floats.  The length must match nkeys exactly: a
 * count that lies, or rows of another dim, is refused before anything is
 * read into the table. */

static void sparse_emit_fn(void *arg, const float *v, uint64_t count, int64_t applied) {
    (void)v, (void)count;
    *(int64_t *)arg = applied;
}

int srv_on_sparse(srv_conn *sc, const pd_hdr *h) {
    pd_err e = {0};
    int push = h->type == PD_MSG_SPARSE_PUSH;
    uint8_t pre[PD_SPARSE_PREFIX];
    uint64_t nkeys = 0, left = h->len;
    int rc;
    pd_table *t = NULL;
    pd_table_req rq = {0};
    rq.keyed = 1;
    if (h->len < PD_SPARSE_PREFIX) {
        pd_seterr(&e, PARAMD_EPROTO, "%s payload of %llu bytes has no key count",
                  pd_msg_name(h->type), (unsigned long long)h->len);
        goto reject;
    }
    if ((rc = pd_conn_read(sc->io, pre, sizeof pre, 0, &sc->ioerr))) return rc;
    left -= PD_SPARSE_PREFIX;
    nkeys = pd_le64_get(pre);
    t = srv_table(sc->srv, h->table);
    if (t && pd_table_check(t, &rq, &e) != 0) goto reject;
    uint64_t dim = t ? t->def.n : 0;
    /* bytes per key: 8 (the key) + dim*4 (its row) for a push; nkeys is
     * bounded by the payload first, so nothing below overflows. */
    uint64_t per = push ? 8 + dim * 4 : 8;
    if (!t) {
        pd_seterr(&e, PARAMD_ENOTABLE, "no sparse table %u on this server",
                  h->table);
    } else if (nkeys > left / per) {
        pd_seterr(&e, PARAMD_EPROTO,
                  "%s of %llu keys for table %u (dim %llu): the frame has only "
                  "%llu payload bytes after the count",
                  pd_msg_name(h->type), (unsigned long long)nkeys, h->table,
                  (unsigned long long)dim, (unsigned long long)left);
    } else if (nkeys * per != left) {
        pd_seterr(&e, PARAMD_EPROTO,
                  "%s of %llu keys for table %u (dim %llu) needs %llu payload "
                  "bytes after the count, the frame has %llu",
                  pd_msg_name(h->type), (unsigned long long)nkeys, h->table,
                  (unsigned long long)dim, (unsigned long long)(nkeys * per),
                  (unsigned long long)left);
    } else if (push && sc->role != PD_ROLE_WORKER) {
        pd_seterr(&e, PARAMD_EWORKER, "only workers push");
    } else if (!push && nkeys > sc->srv->o.max_frame / 4 / dim) {
        pd_seterr(&e, PARAMD_ETOOBIG,
                  "pull of %llu rows of %llu floats exceeds the frame limit of "
                  "%llu bytes",
                  (unsigned long long)nkeys, (unsigned long long)dim,
                  (unsigned long long)sc->srv->o.max_frame);
    } else if (!push && nkeys * dim * 4 > sc->pull_room) {
        pd_seterr(&e, PARAMD_ETOOBIG,
                  "pull of %llu rows of %llu floats in a BATCH whose pulls "
                  "already ask for %llu of the %u bytes of values a batch may "
                  "return: send it alone",
                  (unsigned long long)nkeys, (unsigned long long)dim,
                  (unsigned long long)(PD_MAX_BATCH - sc->pull_room), PD_MAX_BATCH);
    } else if (srv_ensure_buf(sc, (size_t)(left + (push ? 0 : nkeys * dim * 4))) != 0) {
        pd_seterr(&e, PARAMD_ENOMEM, "out of memory for a %llu-byte payload",
                  (unsigned long long)left);
    }
    if (e.code) goto reject;
    if (!push && sc->pull_room != UINT64_MAX) sc->pull_room -= nkeys * dim * 4;
    if ((rc = pd_conn_read(sc->io, sc->buf, (size_t)left, 0, &sc->ioerr))) return rc;
    /* Keys are little-endian u64 and floats little-endian IEEE-754, like
     * the host (wire.h); the buffer is malloc-aligned. */
    rq.worker = sc->rank;
    rq.clock = h->clock;
    rq.wait_ms = push ? 0 : srv_pull_deadline(sc, h, 0);
    rq.keys = (const uint64_t *)(void *)sc->buf;
    rq.nkeys = nkeys;
    /* (no keys: no offset, buf may be NULL; an offset to NULL is undefined) */
    rq.io = (float *)(void *)(nkeys ? sc->buf + nkeys * 8 : sc->buf);
    int64_t applied = 0;
    if (push && srv_mut_begin(sc, h, t)) /* sent again after a failover: applied already */
        return srv_send_ok(sc, h, NULL, 0, NULL, 0);
    /* The store folds duplicate keys in place: a primary forwards the
     * push as it came. */
    const uint8_t *fwd = sc->buf;
    if (push && sc->mut_locked && srv_is_primary(sc->srv) && left) {
        if (left > sc->fwd_cap) {
            uint8_t *p = pd_realloc(sc->fwd, (size_t)left);
            if (!p) {
                srv_mut_end(sc, h, PARAMD_ENOMEM, h->type, NULL, 0, NULL, 0);
                pd_seterr(&e, PARAMD_ENOMEM, "out of memory for a copy of the push");
                return srv_reply_err(sc, h, &e);
            }
            sc->fwd = p;
            sc->fwd_cap = (size_t)left;
        }
        memcpy(sc->fwd, sc->buf, (size_t)left);
        fwd = sc->fwd;
    }
    if (push) {
        rc = srv_push(sc, t, &rq, &e);
        srv_mut_end(sc, h, rc, h->type, pre, sizeof pre, fwd, (size_t)left);
    } else
        rc = pd_table_pull(t, &rq, sparse_emit_fn, &applied, &e);
    if (!push) srv_pull_spent(sc, h, rc);
    if (rc) return srv_reply_err(sc, h, &e);
    pd_hdr rh = *h; /* a pull's reply carries the applied clock, as PULL's */
    if (!push) rh.clock = applied;
    return srv_send_ok(sc, &rh, push ? NULL : rq.io, push ? 0 : (size_t)(nkeys * dim * 4),
                       NULL, 0);
reject:
    if ((rc = pd_conn_skip(sc->io, left, &sc->ioerr))) return rc;
    return srv_reply_err(sc, h, &e);
}

/* ==== STATS ============================================================= */

int srv_on_stats(srv_conn *sc, const pd_hdr *h) {
    pd_server *s = sc->srv;
    int rc = pd_conn_skip(sc->io, h->len, &sc->ioerr);
    if (rc) return rc;
    size_t cap = PD_MAX_CTRL_PAYLOAD, off = 0;
    char *text = pd_malloc(cap);
    if (!text) {
        pd_err e = {0};
        pd_seterr(&e, PARAMD_ENOMEM, "out of memory for the STATS text");
        return srv_reply_err(sc, h, &e);
    }
#define PUT(...)                                                               \
    do {                                                                       \
        if (off < cap) {                                                       \
            int n_ = snprintf(text + off, cap - off, __VA_ARGS__);             \
            off += n_ > 0 ? (size_t)n_ : 0;                                    \
            if (off > cap - 1) off = cap - 1;                                  \
        }                                                                      \
    } while (0)
    int ntcp = 0, nshm = 0;
    pthread_mutex_lock(&s->mu);
    for (srv_conn *c = s->conns; c; c = c->next)
        if (c->conn && c->rank >= 0) {
            if (c->shm_fd >= 0) nshm++;
            else ntcp++;
        }
    pthread_mutex_unlock(&s->mu);
    PUT("server %d of %d, %d workers, worker connections tcp %d shm %d batches %llu "
        "batched %llu\n",
        s->index, s->S, s->W, ntcp, nshm,
        (unsigned long long)__atomic_load_n(&s->batches, __ATOMIC_RELAXED),
        (unsigned long long)__atomic_load_n(&s->batched, __ATOMIC_RELAXED));
    /* For paramd status (wire/status.h: lines of words). */
    const char *maddr = pd_server_metrics_address(s);
    uint64_t nreq = 0;
    double req_s = 0;
    for (int k = 1; k < SRV_KINDS; k++) {
        double ks;
        nreq += __atomic_load_n(&s->kinds[k].count, __ATOMIC_RELAXED);
        __atomic_load(&s->kinds[k].latency.sum, &ks, __ATOMIC_RELAXED);
        req_s += ks;
    }
    const srv_kind_stats *kp = &s->kinds[PD_MSG_PUSH], *kl = &s->kinds[PD_MSG_PULL];
    double push_s, pull_s;
    __atomic_load(&kp->latency.sum, &push_s, __ATOMIC_RELAXED);
    __atomic_load(&kl->latency.sum, &pull_s, __ATOMIC_RELAXED);
    PUT("info %d address %s metrics %s uptime_ms %lld requests %llu request_us %.0f "
        "push %llu push_us %.0f pull %llu pull_us %.0f\n",
        s->index, s->bound, maddr ? maddr : "-", (long long)((pd_now() - s->started) * 1000),
        (unsigned long long)nreq, req_s * 1e6,
        (unsigned long long)__atomic_load_n(&kp->count, __ATOMIC_RELAXED), push_s * 1e6,
        (unsigned long long)__atomic_load_n(&kl->count, __ATOMIC_RELAXED), pull_s * 1e6);
    for (uint32_t id = 1; id < PD_MAX_TABLES && off < cap - 4096; id++) {
        if (h->table && id != h->table) continue; /* STATS of one table */
        pd_table *t = srv_table(s, id);
        if (!t) continue;
        int n = pd_table_stats_line(t, text + off, cap - off);
        if (n < 0 || (size_t)n >= cap - off) break;
        off += (size_t)n;
        if (off > 0 && text[off - 1] == '\n') off--; /* the gate's fields follow */
        pd_gate_stats(&t->gate, text, cap, &off);
        char name[3 * (PD_TABLE_NAME_MAX + 1)];
        pd_kv_escape(t->def.name, name, sizeof name);
        PUT("name %u name %s consistency %s\n", id, name,
            t->def.consistency == PD_CONS_ASYNC  ? "async"
            : t->def.consistency == PD_CONS_SYNC ? "sync"
                                                 : "ssp");
    }
    pthread_mutex_lock(&s->mu);
    for (srv_conn *c = s->conns; c; c = c->next)
        if (c->conn && c->rank >= 0)
            PUT("conn %d transport %s peer %s\n", c->rank, c->shm_fd >= 0 ? "shm" : "tcp",
                c->shm_fd >= 0 ? "-" : c->conn->peer);
    pthread_mutex_unlock(&s->mu);
    uint64_t par, busy;
    pd_pool_counts(s->pool, &par, &busy);
    PUT("apply threads %d updates in parallel %llu inline because busy %llu\n",
        pd_pool_threads(s->pool), (unsigned long long)par, (unsigned long long)busy);
    PUT("shared buffers mapped %llu bytes %llu pushes %llu pulls %llu\n",
        (unsigned long long)__atomic_load_n(&s->regions, __ATOMIC_RELAXED),
        (unsigned long long)__atomic_load_n(&s->region_bytes, __ATOMIC_RELAXED),
        (unsigned long long)__atomic_load_n(&s->region_pushes, __ATOMIC_RELAXED),
        (unsigned long long)__atomic_load_n(&s->region_pulls, __ATOMIC_RELAXED));
#undef PUT
    rc = srv_send_ok(sc, h, text, off, NULL, 0);
    pd_free(text);
    return rc;
}
