/*
 * replica.c - replicated shards (docs/durability.md, "Replicated shards").
 *
 * With --replicas R the coordinator keeps R servers for each slot: the
 * primary, which workers talk to, and R-1 copies, which only their
 * primary talks to.  Primary-backup replication:
 *
 *   - Every update the primary takes (SET, PUSH, SPARSE_PUSH, PUSH_REGION
 *     as a PUSH, TABLE_CREATE, and the coordinator's WORKER_GONE and
 *     WORKER_JOIN) is applied under repl_mu and, if it succeeded, sent to
 *     every copy as a REPL frame (the worker's rank, then the whole frame)
 *     before repl_mu is released: the copies see the updates in the order
 *     the primary applied them, so their state is the primary's, bit for
 *     bit (the rules are deterministic given the order).
 *   - The worker's reply waits until every copy acknowledged that REPL
 *     frame (srv_repl_wait): an acknowledged update is on every live copy.
 *   - A copy whose connection breaks is reported to the coordinator
 *     (REPLICA_DROP), which will never promote it; replies that waited
 *     for it go on once the coordinator confirmed.  So the coordinator
 *     promotes only a copy that has every acknowledged update.
 *   - When the primary is lost the coordinator sends PROMOTE to a live
 *     copy: it cuts its primary's connection (nothing more can come from
 *     it), finishes what it received, and serves the slot.  Workers wait
 *     for the new address (SERVER_WAIT) and send again what had no reply.
 *   - An update sent again carries the id it had (the client keeps it):
 *     every server of a replicated cluster remembers the ids of each
 *     rank's newest updates (srv_dedup) and answers one it applied already
 *     with success, applying nothing.  So nothing acknowledged is lost and
 *     nothing is applied twice.
 *
 * Why primary-backup and not chain replication: with R = 2, the usual
 * case, they are the same; for R > 2 primary-backup sends to the copies
 * in parallel (one round trip, not R-1), and failover needs no chain
 * repair: any live copy has every acknowledged update.
 *
 * Seeding.  A copy starts empty and is fed by its primary from a seed:
 * the coordinator sends the primary REPLICA_ADD; a thread of the primary
 * connects to the copy, waits for a cut where no clocked table has a
 * partly summed clock (updates of clocked tables for clocks at or past
 * the largest clock any push was taken for wait meanwhile: seed_block),
 * and, with repl_mu held, writes every table (as a checkpoint file does,
 * ckfile.h), the membership and the dedup records to a scratch file,
 * sends it (SEED frames), and starts forwarding.  Training goes on
 * meanwhile, but for the moment of the cut and the copy.  The copy loads
 * the seed and acknowledges; then the primary answers REPLICA_ADD and the
 * coordinator counts the copy as live.
 *
 * Threads: handlers run on connection threads (srv_mut_begin/end); a
 * copy thread per copy (seeding, then reading the acknowledgements); the
 * coordinator watcher (REPLICA_ADD, PROMOTE, membership events).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "durable/ckfile.h"
#include "server/server_impl.h"

#define SEED_PART (8u << 20)     /* bytes of a seed per SEED frame */
#define SEED_CUT_MS 30000        /* the longest a seed waits for its cut */
#define DROP_ID_BASE 0x7e00000000ull /* REPLICA_DROP request ids: + copy */

/* ==== Dedup records ===================================================== */

static srv_dedup *dd_get(pd_server *s, int32_t rank, uint32_t gen) {
    if (!s->dedup || rank < 0 || rank >= s->W) return NULL;
    srv_dedup *d = &s->dedup[rank];
    if (!d->id && !(d->id = pd_malloc(SRV_DEDUP_N * sizeof *d->id))) return NULL;
    if (d->gen != gen) { /* a new incarnation: its ids start again */
        d->gen = gen;
        d->head = d->n = 0;
    }
    return d;
}

#define DD_AT(d, i) ((d)->id[((d)->head + (i)) % SRV_DEDUP_N])

/* The first position whose id is >= id. */
static uint32_t dd_lower(const srv_dedup *d, uint64_t id) {
    uint32_t lo = 0, hi = d->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (DD_AT(d, mid) < id) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* 1 if the update with this id was applied here.  Older than what the
 * record keeps (it is full): applied long ago, as a client sends again
 * only what had no reply, far fewer than SRV_DEDUP_N. */
static int dd_has(const srv_dedup *d, uint64_t id) {
    if (d->n == 0) return 0;
    if (id < DD_AT(d, 0)) return d->n == SRV_DEDUP_N;
    uint32_t i = dd_lower(d, id);
    return i < d->n && DD_AT(d, i) == id;
}

static void dd_add(srv_dedup *d, uint64_t id) {
    if (d->n > 0 && id < DD_AT(d, 0) && d->n == SRV_DEDUP_N) return;
    if (d->n == SRV_DEDUP_N) { /* forget the oldest */
        d->head = (d->head + 1) % SRV_DEDUP_N;
        d->n--;
    }
    uint32_t i = d->n > 0 && DD_AT(d, d->n - 1) < id ? d->n : dd_lower(d, id);
    if (i < d->n && DD_AT(d, i) == id) return;
    for (uint32_t k = d->n; k > i; k--) DD_AT(d, k) = DD_AT(d, k - 1);
    DD_AT(d, i) = id;
    d->n++;
}

/* ==== Updates in order, forwarded ======================================= */

/* repl_mu held: send one REPL frame (rank, then the frame type/h with
 * payload p1, p2) to every copy being fed.  A copy whose write fails is
 * left to its thread, which sees the connection end. */
static void forward(pd_server *s, srv_conn *sc, int32_t rank, uint16_t type, const pd_hdr *h,
                    const void *p1, size_t n1, const void *p2, size_t n2) {
    int any = 0;
    pthread_mutex_lock(&s->ack_mu);
    for (uint32_t j = 1; j < s->replicas; j++) {
        int st = s->copies[j].state;
        any |= st == CP_SEEDING || st == CP_LIVE;
    }
    pthread_mutex_unlock(&s->ack_mu);
    if (!any) return;
    uint8_t pre[4 + PD_HDR_SIZE];
    pd_hdr ih = {PD_MAGIC, PD_PROTO_VERSION, type, h->id, h->table, 0, h->clock, n1 + n2};
    pd_le32_put(pre, (uint32_t)rank);
    pd_hdr_encode(&ih, pre + 4);
    uint64_t seq = ++s->repl_seq;
    for (uint32_t j = 1; j < s->replicas; j++) {
        srv_copy *cp = &s->copies[j];
        pthread_mutex_lock(&s->ack_mu);
        int st = cp->state;
        pthread_mutex_unlock(&s->ack_mu);
        if (st != CP_SEEDING && st != CP_LIVE) continue;
        pd_hdr rh = {0};
        rh.type = PD_MSG_REPL;
        rh.id = seq;
        pd_err e = {0};
        if (pd_send_frame(cp->conn, &rh, pre, sizeof pre, p1, n1, p2, n2, &e) != 0)
            pd_conn_shutdown(cp->conn); /* its thread reports it */
    }
    if (sc) sc->repl_need = seq;
}

int srv_is_primary(pd_server *s) { return __atomic_load_n(&s->copy, __ATOMIC_ACQUIRE) == 0; }

int srv_mut_begin(srv_conn *sc, const pd_hdr *h, pd_table *t) {
    pd_server *s = sc->srv;
    if (s->replicas <= 1) return 0;
    pthread_mutex_lock(&s->repl_mu);
    /* A seed's cut: clocked updates at or past it wait (not the copy's
     * own feed, which has no copies of its own). */
    while (s->seed_block > 0 && t && t->gate.clocked && h->clock >= s->seed_block &&
           sc->role == PD_ROLE_WORKER && !srv_stopping(s))
        pd_cond_wait_ms(&s->repl_cv, &s->repl_mu, 200);
    sc->mut_locked = 1;
    if (sc->rank >= 0 && h->type != PD_MSG_TABLE_CREATE) {
        srv_dedup *d = dd_get(s, sc->rank, sc->gen);
        if (d && dd_has(d, h->id)) {
            sc->mut_locked = 0;
            pthread_mutex_unlock(&s->repl_mu);
            __atomic_add_fetch(&s->repl_dups, 1, __ATOMIC_RELAXED);
            pd_log(PD_LOG_DEBUG, "%s %llu of rank %d was applied already: not again",
                   pd_msg_name(h->type), (unsigned long long)h->id, sc->rank);
            return 1;
        }
    }
    return 0;
}

void srv_mut_end(srv_conn *sc, const pd_hdr *h, int rc, uint16_t type, const void *p1,
                 size_t n1, const void *p2, size_t n2) {
    pd_server *s = sc->srv;
    if (!sc->mut_locked) return;
    if (rc == 0) {
        if (sc->rank >= 0 && type != PD_MSG_TABLE_CREATE) {
            srv_dedup *d = dd_get(s, sc->rank, sc->gen);
            if (d) dd_add(d, h->id);
        }
        if (srv_is_primary(s)) forward(s, sc, sc->rank, type, h, p1, n1, p2, n2);
    }
    sc->mut_locked = 0;
    pthread_cond_broadcast(&s->repl_cv); /* a seed waiting for its cut */
    pthread_mutex_unlock(&s->repl_mu);
}

int srv_repl_wait(srv_conn *sc) {
    pd_server *s = sc->srv;
    uint64_t need = sc->repl_need;
    if (!need) return 0;
    sc->repl_need = 0;
    int64_t t0 = pd_now_ms();
    pthread_mutex_lock(&s->ack_mu);
    for (;;) {
        int waiting = 0;
        int64_t now = pd_now_ms();
        for (uint32_t j = 1; j < s->replicas; j++) {
            srv_copy *cp = &s->copies[j];
            int st = cp->state;
            if (st != CP_SEEDING && st != CP_LIVE && st != CP_BROKEN) continue;
            if (cp->base >= need || cp->base + cp->acked >= need) continue;
            waiting = 1; /* (a broken one: until the coordinator confirmed) */
            if (st != CP_BROKEN && now - t0 >= s->o.copy_timeout_ms && !cp->timed_out) {
                /* stopped or hung: its thread sees its connection end,
                 * and the coordinator is asked to drop it */
                cp->timed_out = 1;
                pd_conn_shutdown(cp->conn);
            }
        }
        if (!waiting) break;
        pthread_mutex_unlock(&s->ack_mu); /* (a leaf: mu is not taken under it) */
        if (srv_stopping(s)) return PARAMD_ESHUTDOWN;
        pthread_mutex_lock(&s->ack_mu);
        pd_cond_wait_ms(&s->ack_cv, &s->ack_mu, 200);
    }
    pthread_mutex_unlock(&s->ack_mu);
    return 0;
}

void srv_repl_member(pd_server *s, const pd_hdr *h, const uint8_t *buf,
                     void (*fn)(pd_server *, const pd_hdr *, const uint8_t *, int)) {
    if (s->replicas <= 1) return fn(s, h, buf, 1);
    pthread_mutex_lock(&s->repl_mu);
    int primary = srv_is_primary(s);
    fn(s, h, buf, primary); /* (a copy does not answer the coordinator) */
    if (primary) forward(s, NULL, -1, h->type, h, buf, (size_t)h->len, NULL, 0);
    pthread_cond_broadcast(&s->repl_cv);
    pthread_mutex_unlock(&s->repl_mu);
}

/* ==== A copy: what its primary sends ==================================== */

int srv_claim_feed(pd_server *s, const pd_hello *peer, pd_err *e) {
    pthread_mutex_lock(&s->mu);
    int copy = s->copy, fed = s->feed_conns > 0 || s->seeded;
    pthread_mutex_unlock(&s->mu);
    if (copy <= 0)
        return pd_seterr(e, PARAMD_EPROTO, "server %d serves its slot: no server feeds it",
                         s->index);
    if (peer->rank != s->index)
        return pd_seterr(e, PARAMD_EPROTO, "server %d is a copy of slot %d, not of slot %d",
                         s->index, s->index, peer->rank);
    if (fed)
        return pd_seterr(e, PARAMD_EPROTO, "server %d (copy %d) is already fed by its "
                         "primary, or was: a copy is seeded once", s->index, copy);
    return 0;
}

/* The copy's feed: only its primary's connection, and only REPL and SEED
 * from it. */
static int feed_only(srv_conn *sc, const pd_hdr *h, int *rc) {
    if (sc->role == PD_ROLE_SERVER) return 0;
    pd_err e = {0};
    if ((*rc = pd_conn_skip(sc->io, h->len, &sc->ioerr))) return 1;
    pd_seterr(&e, PARAMD_EPROTO, "%s comes only from a shard's primary to its copy",
              pd_msg_name(h->type));
    *rc = srv_reply_err(sc, h, &e);
    return 1;
}

static int grow(uint8_t **p, size_t *cap, size_t n) {
    if (n <= *cap) return 0;
    uint8_t *q = pd_realloc(*p, n);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* REPL: u32 rank, then one whole frame, applied as if its worker had sent
 * it here; the reply carries the inner status (i32). */
int srv_on_repl(srv_conn *sc, const pd_hdr *h) {
    pd_server *s = sc->srv;
    int rc = 0;
    if (feed_only(sc, h, &rc)) return rc;
    pd_err e = {0};
    if (h->len < 4 + PD_HDR_SIZE || grow(&sc->bin, &sc->bin_cap, (size_t)h->len) != 0) {
        pd_seterr(&e, h->len < 4 + PD_HDR_SIZE ? PARAMD_EPROTO : PARAMD_ENOMEM,
                  "REPL of %llu bytes: not a rank and a frame, or out of memory",
                  (unsigned long long)h->len);
        pd_log(PD_LOG_ERROR, "copy of slot %d: %s", s->index, e.msg);
        pd_send_error(sc->conn, h, e.code, e.msg);
        return e.code; /* the feed is broken: the primary drops this copy */
    }
    if ((rc = pd_conn_read(sc->conn, sc->bin, (size_t)h->len, 0, &sc->ioerr))) return rc;
    int32_t rank = (int32_t)pd_le32_get(sc->bin);
    pd_hdr ih;
    rc = pd_hdr_decode(sc->bin + 4, &ih, s->o.max_frame, &e);
    if (rc == 0 && ih.len != h->len - 4 - PD_HDR_SIZE)
        rc = pd_seterr(&e, PARAMD_EPROTO, "REPL's frame says %llu bytes, it has %llu",
                       (unsigned long long)ih.len,
                       (unsigned long long)(h->len - 4 - PD_HDR_SIZE));
    int member = ih.type == PD_MSG_WORKER_GONE || ih.type == PD_MSG_WORKER_JOIN;
    int update = ih.type == PD_MSG_SET || ih.type == PD_MSG_PUSH ||
                 ih.type == PD_MSG_SPARSE_PUSH || ih.type == PD_MSG_TABLE_CREATE;
    if (rc == 0 && !member && !update)
        rc = pd_seterr(&e, PARAMD_EPROTO, "REPL carries %s, not an update",
                       pd_msg_name(ih.type));
    if (rc == 0 && update && (rank < 0 || rank >= s->W))
        rc = pd_seterr(&e, PARAMD_EPROTO, "REPL for rank %d of %d", rank, s->W);
    if (rc == 0 && member && ih.len > PD_MAX_CTRL_PAYLOAD)
        rc = pd_seterr(&e, PARAMD_EPROTO, "REPL's %s is too long", pd_msg_name(ih.type));
    if (rc) {
        pd_log(PD_LOG_ERROR, "copy of slot %d: a malformed REPL from its primary: %s",
               s->index, e.msg);
        pd_send_error(sc->conn, h, rc, e.msg);
        return rc;
    }
    const uint8_t *payload = sc->bin + 4 + PD_HDR_SIZE;
    int32_t status = 0;
    if (member) {
        memcpy(sc->ctrl, payload, (size_t)ih.len);
        srv_repl_member(s, &ih, sc->ctrl, srv_member_event);
    } else {
        /* As the worker: its rank, its current incarnation (the primary
         * checked the connection's). */
        int32_t my_rank = sc->rank;
        uint32_t my_role = sc->role, my_gen = sc->gen;
        pthread_mutex_lock(&s->mu);
        sc->rank = rank;
        sc->role = PD_ROLE_WORKER;
        sc->gen = s->wgen[rank];
        pthread_mutex_unlock(&s->mu);
        pd_mem_conn mem;
        sc->bout.len = 0;
        sc->bout.oom = 0;
        pd_mem_init(&mem, payload, (size_t)ih.len, &sc->bout, sc->conn->peer);
        sc->io = &mem.conn;
        rc = srv_dispatch(sc, &ih);
        sc->io = sc->conn;
        pthread_mutex_lock(&s->mu);
        sc->rank = my_rank;
        sc->role = my_role;
        sc->gen = my_gen;
        pthread_mutex_unlock(&s->mu);
        if (rc) return rc;
        pd_hdr rh;
        if (sc->bout.len >= PD_HDR_SIZE &&
            pd_hdr_decode(sc->bout.p, &rh, UINT64_MAX, NULL) == 0)
            status = rh.status;
        if (status)
            pd_log(PD_LOG_WARN, "copy of slot %d: %s %llu of rank %d failed here: %.*s",
                   s->index, pd_msg_name(ih.type), (unsigned long long)ih.id, rank,
                   (int)(sc->bout.len - PD_HDR_SIZE), (const char *)sc->bout.p + PD_HDR_SIZE);
    }
    __atomic_add_fetch(&s->repl_frames, 1, __ATOMIC_RELAXED);
    uint8_t st[4];
    pd_le32_put(st, (uint32_t)status);
    pd_hdr rh = {0};
    rh.type = PD_MSG_REPL | PD_REPLY;
    rh.id = h->id;
    return pd_send_frame(sc->conn, &rh, st, sizeof st, NULL, 0, NULL, 0, &sc->ioerr);
}

/* The seed's body (a PD_CK_SEED file, ckfile.h):
 *   u32 index, u32 S, u32 W
 *   W x {u8 gone, u64 jfrom + 1, u32 wgen, u32 holder}
 *   W x {u32 gen, u32 n, n x u64 id}          the dedup records
 *   u32 ntables, ntables x {u32 id, u64 applied clock}
 *   the ntables sections (pd_table_save)                                */
static int seed_load(pd_server *s, const char *path, pd_err *e) {
    pd_ckr r;
    int rc = pd_ckr_open(&r, path, PD_CK_SEED, e);
    if (rc) return rc;
    pd_rd *b = &r.body;
    uint32_t index, S, W, n;
    pd_get_u32(b, &index);
    pd_get_u32(b, &S);
    pd_get_u32(b, &W);
    if (b->bad || (int32_t)index != s->index || (int32_t)S != s->S || (int32_t)W != s->W) {
        pd_ckr_close(&r);
        return pd_seterr(e, PARAMD_EPROTO, "the seed is of server %u of %u with %u worker "
                         "slots, this copy is of %d of %d with %d", index, S, W, s->index,
                         s->S, s->W);
    }
    pthread_mutex_lock(&s->repl_mu);
    pthread_mutex_lock(&s->mu);
    for (int32_t w = 0; w < s->W; w++) {
        uint8_t gone;
        uint64_t jf;
        pd_get_bytes(b, &gone, 1);
        pd_get_u64(b, &jf);
        pd_get_u32(b, &s->wgen[w]);
        pd_get_u32(b, &s->holder[w]);
        s->gone[w] = gone != 0;
        s->jfrom[w] = (int64_t)jf - 1;
    }
    for (int32_t w = 0; w < s->W && !b->bad; w++) {
        uint32_t gen, k;
        pd_get_u32(b, &gen);
        pd_get_u32(b, &k);
        if (k > SRV_DEDUP_N) b->bad = 1;
        srv_dedup *d = k ? dd_get(s, w, gen) : NULL;
        for (uint32_t i = 0; i < k && !b->bad; i++) {
            uint64_t id;
            pd_get_u64(b, &id);
            if (d) dd_add(d, id);
        }
    }
    pd_get_u32(b, &n);
    uint32_t ids[PD_MAX_TABLES];
    int64_t applied[PD_MAX_TABLES];
    if (n >= PD_MAX_TABLES) b->bad = 1;
    for (uint32_t i = 0; i < n && !b->bad; i++) {
        uint64_t a;
        pd_get_u32(b, &ids[i]);
        pd_get_u64(b, &a);
        applied[i] = (int64_t)a;
        if (ids[i] == 0 || ids[i] >= PD_MAX_TABLES || a > (uint64_t)INT64_MAX) b->bad = 1;
    }
    if (b->bad) rc = pd_seterr(e, PARAMD_EPROTO, "%s: a malformed seed", path);
    if (rc == 0) rc = srv_load_tables(s, &r, n, e);
    if (rc == 0 && !pd_rd_done(b)) rc = pd_seterr(e, PARAMD_EPROTO, "%s: bytes after its "
                                                 "last table", path);
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        pd_table *t = s->tables[ids[i]];
        if (!t) continue;
        pd_gate_restore(&t->gate, applied[i]);
        for (int32_t w = 0; w < s->W; w++)
            if (s->gone[w]) {
                pd_table_worker_gone(t, w);
            } else if (s->jfrom[w] >= 0) {
                pd_table_join_begin(t, w);
                pd_table_join_at(t, w, s->jfrom[w]);
            }
    }
    if (rc == 0) s->seeded = 1;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->repl_mu);
    if (rc == 0)
        pd_log(PD_LOG_INFO, "copy %d of slot %d: seeded by its primary (%u tables, %zu "
               "bytes)", s->copy, s->index, n, r.size);
    pd_ckr_close(&r);
    return rc;
}

static const char *tmp_root(void) {
    const char *t = getenv("TMPDIR");
    return t && t[0] == '/' && strlen(t) < 200 ? t : "/tmp";
}

/* SEED: parts of the seed file; the header's clock 1 on the last, which
 * alone is answered (after the seed is loaded). */
int srv_on_seed(srv_conn *sc, const pd_hdr *h) {
    pd_server *s = sc->srv;
    int rc = 0;
    if (feed_only(sc, h, &rc)) return rc;
    pd_err e = {0};
    if (sc->seed_fd < 0) {
        snprintf(sc->seed_path, sizeof sc->seed_path, "%s/paramd-seed-XXXXXX", tmp_root());
        sc->seed_fd = mkstemp(sc->seed_path);
        if (sc->seed_fd < 0)
            pd_seterr(&e, PARAMD_EIO, "cannot create a file for the seed in %s: %s",
                      tmp_root(), strerror(errno));
    }
    uint64_t left = h->len;
    while (left > 0 && rc == 0) {
        size_t chunk = left > sizeof sc->ctrl ? sizeof sc->ctrl : (size_t)left;
        if ((rc = pd_conn_read(sc->conn, sc->ctrl, chunk, 0, &sc->ioerr))) return rc;
        if (!e.code && sc->seed_fd >= 0 && write(sc->seed_fd, sc->ctrl, chunk) != (ssize_t)chunk)
            pd_seterr(&e, PARAMD_EIO, "cannot write the seed to %s: %s", sc->seed_path,
                      strerror(errno ? errno : ENOSPC));
        left -= chunk;
    }
    if (h->clock != 1 && !e.code) return 0; /* more to come */
    if (!e.code) rc = seed_load(s, sc->seed_path, &e);
    if (sc->seed_fd >= 0) {
        close(sc->seed_fd);
        unlink(sc->seed_path);
        sc->seed_fd = -1;
    }
    if (e.code) {
        pd_log(PD_LOG_ERROR, "copy of slot %d: cannot take the seed: %s", s->index, e.msg);
        return srv_reply_err(sc, h, &e);
    }
    pd_hdr rh = {0};
    rh.type = PD_MSG_SEED | PD_REPLY;
    rh.id = h->id;
    return pd_send_frame(sc->conn, &rh, NULL, 0, NULL, 0, NULL, 0, &sc->ioerr);
}

/* ==== A primary: its copies ============================================= */

static void coord_send(pd_server *s, pd_hdr *h, const void *p, size_t n) {
    pthread_mutex_lock(&s->coord_send_mu);
    pd_send_frame(s->coord, h, p, n, NULL, 0, NULL, 0, NULL);
    pthread_mutex_unlock(&s->coord_send_mu);
}

static void answer_add(pd_server *s, srv_copy *cp, int code, const char *msg) {
    pthread_mutex_lock(&s->coord_send_mu);
    if (code) {
        pd_send_error(s->coord, &cp->add, code, msg);
    } else {
        pd_hdr rh = cp->add;
        rh.type = PD_MSG_REPLICA_ADD | PD_REPLY;
        rh.status = 0;
        pd_send_frame(s->coord, &rh, NULL, 0, NULL, 0, NULL, 0, NULL);
    }
    pthread_mutex_unlock(&s->coord_send_mu);
}

static void set_state(pd_server *s, srv_copy *cp, int st) {
    pthread_mutex_lock(&s->ack_mu);
    cp->state = st;
    pthread_cond_broadcast(&s->ack_cv);
    pthread_mutex_unlock(&s->ack_mu);
}

/* repl_mu held: 1 if no clocked table has a clock partly summed. */
static int quiet(pd_server *s, int64_t *top_max) {
    int q = 1;
    *top_max = 0;
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
        pthread_mutex_lock(&s->mu);
        pd_table *t = s->tables[id];
        pthread_mutex_unlock(&s->mu);
        if (!t || !t->gate.clocked) continue;
        pthread_mutex_lock(&t->gate.mu);
        if (t->gate.top > t->gate.applied) q = 0;
        if (t->gate.top > *top_max) *top_max = t->gate.top;
        pthread_mutex_unlock(&t->gate.mu);
    }
    return q;
}

/* repl_mu held, the cut reached: write the seed to a scratch file. */
static int seed_write(pd_server *s, const char *dir, char *path, size_t plen, pd_err *e) {
    pd_ckw w;
    int rc = pd_ckw_open(&w, dir, "seed", PD_CK_SEED, e);
    if (rc) return rc;
    w.nosync = 1;
    snprintf(path, plen, "%s/seed", dir);
    pd_table *t[PD_MAX_TABLES];
    uint32_t n = 0;
    pthread_mutex_lock(&s->mu);
    pd_ckw_u32(&w, (uint32_t)s->index);
    pd_ckw_u32(&w, (uint32_t)s->S);
    pd_ckw_u32(&w, (uint32_t)s->W);
    for (int32_t k = 0; k < s->W; k++) {
        uint8_t gone = s->gone[k] != 0;
        pd_ckw_bytes(&w, &gone, 1);
        pd_ckw_u64(&w, (uint64_t)(s->jfrom[k] + 1));
        pd_ckw_u32(&w, s->wgen[k]);
        pd_ckw_u32(&w, s->holder[k]);
    }
    for (int32_t k = 0; k < s->W; k++) {
        srv_dedup *d = &s->dedup[k];
        uint32_t cnt = d->id ? d->n : 0;
        pd_ckw_u32(&w, d->gen);
        pd_ckw_u32(&w, cnt);
        for (uint32_t i = 0; i < cnt; i++) pd_ckw_u64(&w, DD_AT(d, i));
    }
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++)
        if (s->tables[id]) t[n++] = s->tables[id];
    pthread_mutex_unlock(&s->mu);
    pd_ckw_u32(&w, n);
    for (uint32_t i = 0; i < n; i++) {
        pd_ckw_u32(&w, t[i]->id);
        pd_ckw_u64(&w, (uint64_t)pd_table_applied(t[i]));
    }
    pd_ck_save how = {0, 0};
    for (uint32_t i = 0; i < n; i++) pd_table_save(t[i], &w, &how);
    return pd_ckw_commit(&w, NULL, NULL, e);
}

/* repl_mu held: send the seed file as SEED frames. */
static int seed_send(srv_copy *cp, const char *path, pd_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pd_seterr(e, PARAMD_EIO, "cannot read the seed %s: %s", path,
                                 strerror(errno));
    struct stat st;
    uint8_t *buf = pd_malloc(SEED_PART);
    int rc = fstat(fd, &st) != 0 || !buf
                 ? pd_seterr(e, PARAMD_EIO, "cannot read the seed %s", path) : 0;
    uint64_t left = rc ? 0 : (uint64_t)st.st_size;
    while (rc == 0) {
        size_t chunk = left > SEED_PART ? SEED_PART : (size_t)left;
        if (chunk && read(fd, buf, chunk) != (ssize_t)chunk) {
            rc = pd_seterr(e, PARAMD_EIO, "cannot read the seed %s", path);
            break;
        }
        left -= chunk;
        pd_hdr h = {0};
        h.type = PD_MSG_SEED;
        h.id = 1;
        h.clock = left == 0;
        if ((rc = pd_send_frame(cp->conn, &h, buf, chunk, NULL, 0, NULL, 0, e))) break;
        if (left == 0) break;
    }
    pd_free(buf);
    close(fd);
    return rc;
}

/* Connect to the copy, wait for a cut, seed it.  0 or the error. */
static int seed_copy(pd_server *s, srv_copy *cp, pd_err *e) {
    pd_conn *c = pd_tcp_connect(cp->addr, 10000, e);
    if (!c) return e->code ? e->code : PARAMD_EIO;
    pd_tcp_set_peer_timeout(c, PD_PEER_TIMEOUT_DEFAULT);
    /* A copy that stops reading (stopped, hung) fails the write that
     * would block longer than this, instead of holding every update. */
    struct timeval tv = {s->o.copy_timeout_ms / 1000, (s->o.copy_timeout_ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    pd_hello me = {.role = PD_ROLE_SERVER, .rank = s->index};
    int rc = pd_handshake_dial(c, &me, s->has_key ? &s->key : NULL, NULL, e);
    if (rc) {
        pd_conn_destroy(c);
        return rc;
    }
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/paramd-seed-XXXXXX", tmp_root());
    if (!mkdtemp(dir)) {
        pd_conn_destroy(c);
        return pd_seterr(e, PARAMD_EIO, "cannot make a directory for a seed in %s: %s",
                         tmp_root(), strerror(errno));
    }
    double t0 = pd_now();
    int64_t until = pd_now_ms() + SEED_CUT_MS, X = 0;
    pthread_mutex_lock(&s->repl_mu);
    if (!quiet(s, &X)) {
        s->seed_block = X; /* updates for X or later wait for the cut */
        while (!quiet(s, &X) && !srv_stopping(s) && pd_now_ms() < until)
            pd_cond_wait_ms(&s->repl_cv, &s->repl_mu, 100);
    }
    if (!quiet(s, &X)) {
        rc = pd_seterr(e, PARAMD_ETIMEDOUT, "no moment within %d s where every clocked "
                       "table of server %d had its clocks complete (are its workers "
                       "pushing?)", SEED_CUT_MS / 1000, s->index);
    } else {
        rc = seed_write(s, dir, path, sizeof path, e);
        if (rc == 0) {
            cp->conn = c;
            cp->base = s->repl_seq;
            set_state(s, cp, CP_SEEDING);
            rc = seed_send(cp, path, e);
        }
        unlink(path);
    }
    s->seed_block = 0;
    pthread_cond_broadcast(&s->repl_cv);
    pthread_mutex_unlock(&s->repl_mu);
    rmdir(dir);
    if (rc && cp->conn != c) pd_conn_destroy(c);
    if (rc == 0)
        pd_log(PD_LOG_INFO, "slot %d: copy %u at %s seeded in %.3f s (training held "
               "for the cut and the copy)", s->index, cp->j, cp->addr, pd_now() - t0);
    return rc;
}

/* A copy's thread: seed it, then read its acknowledgements in order. */
static void *copy_main(void *arg) {
    srv_copy *cp = arg;
    pd_server *s = cp->srv;
    pd_err e = {0};
    int rc = seed_copy(s, cp, &e);
    int live = 0;
    while (rc == 0) {
        pd_hdr h;
        uint8_t st[PD_MAX_ERRTEXT + 1];
        rc = pd_recv_hdr(cp->conn, &h, PD_MAX_CTRL_PAYLOAD, &e);
        if (rc) break;
        if (h.len > PD_MAX_ERRTEXT) {
            rc = pd_seterr(&e, PARAMD_EPROTO, "a reply of %llu bytes from the copy",
                           (unsigned long long)h.len);
            break;
        }
        if ((rc = pd_conn_read(cp->conn, st, (size_t)h.len, 0, &e))) break;
        st[h.len] = '\0';
        if (h.status) {
            rc = pd_seterr(&e, h.status, "it refused %s: %s", pd_msg_name(h.type),
                           (const char *)st);
            break;
        }
        if (h.type == (PD_MSG_SEED | PD_REPLY) && !live) {
            live = 1;
            set_state(s, cp, CP_LIVE);
            answer_add(s, cp, 0, NULL);
            continue;
        }
        if (h.type != (PD_MSG_REPL | PD_REPLY) || !live) {
            rc = pd_seterr(&e, PARAMD_EPROTO, "unexpected %s from the copy",
                           pd_msg_name(h.type));
            break;
        }
        pthread_mutex_lock(&s->ack_mu);
        cp->acked++;
        pthread_cond_broadcast(&s->ack_cv);
        pthread_mutex_unlock(&s->ack_mu);
    }
    pthread_mutex_lock(&s->ack_mu);
    int dropped = cp->state == CP_DROPPED; /* (the coordinator was lost) */
    pthread_mutex_unlock(&s->ack_mu);
    if (srv_stopping(s) || dropped) {
        set_state(s, cp, CP_DROPPED);
        return NULL;
    }
    snprintf(cp->why, sizeof cp->why, "%s", e.msg[0] ? e.msg : paramd_strerror(rc));
    pthread_mutex_lock(&s->ack_mu);
    if (cp->timed_out)
        snprintf(cp->why, sizeof cp->why, "it did not acknowledge an update within %d ms "
                 "(--copy-timeout-ms): stopped or hung?", s->o.copy_timeout_ms);
    pthread_mutex_unlock(&s->ack_mu);
    if (!live) { /* never live: the coordinator counts it as nothing */
        pd_log(PD_LOG_WARN, "slot %d: copy %u at %s could not be seeded: %s", s->index,
               cp->j, cp->addr, cp->why);
        set_state(s, cp, CP_DROPPED);
        answer_add(s, cp, rc ? rc : PARAMD_EIO, cp->why);
        return NULL;
    }
    /* Live: replies that wait for it go on once the coordinator knows it
     * must not promote it (srv_on_drop_reply). */
    pd_log(PD_LOG_WARN, "slot %d: copy %u at %s lost: %s; asking the coordinator to drop "
           "it", s->index, cp->j, cp->addr, cp->why);
    set_state(s, cp, CP_BROKEN);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u32(&b, cp->j);
    pd_put_str(&b, cp->why);
    pd_hdr h = {0};
    h.type = PD_MSG_REPLICA_DROP;
    h.id = DROP_ID_BASE + cp->j;
    if (!b.oom) coord_send(s, &h, b.p, b.len);
    pd_buf_free(&b);
    return NULL;
}

void srv_on_replica_add(pd_server *s, const pd_hdr *h, const uint8_t *buf) {
    pd_rd r;
    uint32_t j = 0;
    char addr[PD_MAX_ADDR + 1] = "";
    pd_rd_init(&r, buf, (size_t)h->len);
    pd_get_u32(&r, &j);
    pd_get_str(&r, addr, PD_MAX_ADDR);
    if (!pd_rd_done(&r) || j == 0 || j >= s->replicas || !addr[0] || !srv_is_primary(s)) {
        pthread_mutex_lock(&s->coord_send_mu);
        pd_send_error(s->coord, h, PARAMD_EPROTO, "malformed REPLICA_ADD, or not to a "
                      "primary");
        pthread_mutex_unlock(&s->coord_send_mu);
        return;
    }
    srv_copy *cp = &s->copies[j];
    pthread_mutex_lock(&s->mu);
    int started = cp->started;
    cp->started = 0;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->ack_mu);
    int st = cp->state;
    pthread_mutex_unlock(&s->ack_mu);
    if (st == CP_CONNECTING || st == CP_SEEDING || st == CP_LIVE || st == CP_BROKEN) {
        pthread_mutex_lock(&s->coord_send_mu);
        pd_send_error(s->coord, h, PARAMD_EINVAL, "that copy is still being fed");
        pthread_mutex_unlock(&s->coord_send_mu);
        return;
    }
    if (started) pthread_join(cp->thread, NULL); /* a dropped copy's thread, done */
    pd_conn_destroy(cp->conn);
    cp->conn = NULL;
    cp->srv = s;
    cp->j = j;
    cp->acked = 0;
    cp->timed_out = 0;
    cp->base = 0;
    cp->why[0] = '\0';
    cp->add = *h;
    snprintf(cp->addr, sizeof cp->addr, "%s", addr);
    set_state(s, cp, CP_CONNECTING);
    pthread_mutex_lock(&s->mu);
    if (pthread_create(&cp->thread, NULL, copy_main, cp) == 0) {
        cp->started = 1;
    } else {
        pthread_mutex_unlock(&s->mu);
        set_state(s, cp, CP_DROPPED);
        answer_add(s, cp, PARAMD_ENOMEM, "cannot start a thread for the copy");
        return;
    }
    pthread_mutex_unlock(&s->mu);
}

void srv_on_drop_reply(pd_server *s, const pd_hdr *h) {
    uint64_t j = h->id - DROP_ID_BASE;
    if (h->id < DROP_ID_BASE || j == 0 || j >= s->replicas) return;
    pthread_mutex_lock(&s->ack_mu);
    if (s->copies[j].state == CP_BROKEN) s->copies[j].state = CP_DROPPED;
    pthread_cond_broadcast(&s->ack_cv);
    pthread_mutex_unlock(&s->ack_mu);
    pd_log(PD_LOG_INFO, "slot %d: the coordinator dropped copy %llu", s->index,
           (unsigned long long)j);
}

void srv_repl_lost_coordinator(pd_server *s) {
    pthread_mutex_lock(&s->ack_mu);
    for (uint32_t j = 1; j < s->replicas; j++)
        if (s->copies[j].state != CP_NONE && s->copies[j].state != CP_DROPPED) {
            s->copies[j].state = CP_DROPPED;
            if (s->copies[j].conn) pd_conn_shutdown(s->copies[j].conn);
        }
    pthread_cond_broadcast(&s->ack_cv);
    pthread_mutex_unlock(&s->ack_mu);
}

void srv_on_promote(pd_server *s, const pd_hdr *h) {
    pthread_mutex_lock(&s->mu);
    int ok = s->copy > 0 && s->seeded;
    int was = s->copy;
    if (ok) {
        /* Nothing more from the old primary: cut its feed, and wait until
         * what it sent is applied (its connection thread ends). */
        for (srv_conn *c = s->conns; c; c = c->next)
            if (c->role == PD_ROLE_SERVER && c->conn) pd_conn_shutdown(c->conn);
        while (s->feed_conns > 0) pthread_cond_wait(&s->cv, &s->mu);
        __atomic_store_n(&s->copy, 0, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->coord_send_mu);
    if (ok) {
        pd_hdr rh = *h;
        rh.type = PD_MSG_PROMOTE | PD_REPLY;
        rh.status = 0;
        pd_send_frame(s->coord, &rh, NULL, 0, NULL, 0, NULL, 0, NULL);
    } else {
        pd_send_error(s->coord, h, PARAMD_EINVAL, was > 0 ? "this copy was never seeded"
                                                          : "this server is no copy");
    }
    pthread_mutex_unlock(&s->coord_send_mu);
    if (ok)
        pd_log(PD_LOG_WARN, "copy %d of slot %d promoted: this server serves the slot now "
               "(%llu updates were fed to it)", was, s->index,
               (unsigned long long)__atomic_load_n(&s->repl_frames, __ATOMIC_RELAXED));
}

void srv_repl_stop(pd_server *s) {
    for (uint32_t j = 1; j < s->replicas; j++) {
        srv_copy *cp = &s->copies[j];
        pthread_mutex_lock(&s->ack_mu);
        if (cp->conn) pd_conn_shutdown(cp->conn);
        pthread_cond_broadcast(&s->ack_cv);
        pthread_mutex_unlock(&s->ack_mu);
        pthread_mutex_lock(&s->repl_mu);
        pthread_cond_broadcast(&s->repl_cv);
        pthread_mutex_unlock(&s->repl_mu);
        pthread_mutex_lock(&s->mu);
        int started = cp->started;
        cp->started = 0;
        pthread_mutex_unlock(&s->mu);
        if (started) pthread_join(cp->thread, NULL);
        pd_conn_destroy(cp->conn);
        cp->conn = NULL;
    }
}
