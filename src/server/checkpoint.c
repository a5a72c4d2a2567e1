/*
 * checkpoint.c - a server's part of checkpoints: holding its tables at a
 * clock, writing them to its file, and restoring them at start.
 *
 * The cut (docs/durability.md).  The coordinator makes every table of
 * every server stop at one clock C, in two phases, as for joins:
 *   1. CKPT_HOLD: each clocked (sync, ssp) table stops where it is: no
 *      further clock is applied (pushes are still taken and summed).  The
 *      reply is this server's frontier: the largest applied clock of its
 *      tables.
 *   2. CKPT_WRITE(C), C = the largest frontier of all servers: each
 *      clocked table may apply clocks up to C and no further; once every
 *      one has reached C, this server writes all its tables (values, rule
 *      state, clocks, sparse rows) to ROOT/ckpt-N/server-K-of-S.pdck
 *      (ckfile.h: atomic, checksummed), lifts the holds and replies with
 *      the file's size and checksum.
 * A table behind C reaches it: its workers pushed clocks < C everywhere
 * (another server applied them), and none can be waiting on a held table
 * for a clock the held table has already applied.  Async tables have no
 * clocks to cut at: each is written as it is at that moment.  The write
 * runs on a thread of its own (ckpt_main), so the coordinator watcher
 * goes on handling WORKER_GONE and the rest meanwhile; a table that does
 * not reach C within PD_CKPT_WAIT_MS fails the checkpoint (holds lifted,
 * an error reply naming it).  CKPT_ABORT lifts the holds of a checkpoint
 * the coordinator gave up.
 *
 * Incremental checkpoints.  CKPT_WRITE names a base (0: a full
 * checkpoint).  With one, the file is of kind PD_CK_SERVER_DELTA, names
 * its base after the clock, and its sparse sections hold only the rows
 * changed since this server wrote the base (sparse.h: per-row epochs);
 * dense sections are whole either way.
 *
 * Restore (pd_server_opts.restore).  At start, after registering (so it
 * knows it is server K of S, which may differ from the S that wrote the
 * checkpoint), the server reads the checkpoint's chain (manifest.h: the
 * full checkpoint and the deltas up to the one named), opens and checks
 * every server file of it, and only then loads them, oldest first: it
 * creates each table with its part of the new partition, and keeps from
 * each file what falls in that part (a dense table's overlapping range,
 * a sparse table's rows whose keys hash to it), a later delta's rows
 * overwriting the earlier ones.  Every clocked table continues from the
 * newest checkpoint's clock.
 *
 * Threads: the checkpoint thread owns s->ck (guarded by s->mu for the
 * `running` flag); replies to the coordinator go under s->coord_send_mu,
 * shared with the watcher's join replies.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "durable/manifest.h"
#include "server/server_impl.h"
#include "table/spec.h"

#define PD_CKPT_WAIT_MS 60000

/* ==== Sending to the coordinator ======================================== */

static void coord_reply(pd_server *s, const pd_hdr *req, int code, const char *msg,
                        const void *p, size_t n) {
    pthread_mutex_lock(&s->coord_send_mu);
    if (code) {
        pd_send_error(s->coord, req, code, msg);
    } else {
        pd_hdr rh = *req;
        rh.type = req->type | PD_REPLY;
        rh.status = 0;
        pd_send_frame(s->coord, &rh, p, n, NULL, 0, NULL, 0, NULL);
    }
    pthread_mutex_unlock(&s->coord_send_mu);
}

/* The tables now (a snapshot of the pointers, under s->mu: tables are
 * never removed while the server runs). */
static uint32_t tables_now(pd_server *s, pd_table **out) {
    uint32_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++)
        if (s->tables[id]) out[n++] = s->tables[id];
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void release_all(pd_server *s) {
    /* (the tables never go away while the server runs: release them by id
     * under nothing but each table's own lock) */
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
        pthread_mutex_lock(&s->mu);
        pd_table *t = s->tables[id];
        pthread_mutex_unlock(&s->mu);
        if (t && t->gate.clocked) pd_gate_release(&t->gate);
    }
}

/* ==== Phase 1: hold ===================================================== */

void srv_on_ckpt_hold(pd_server *s, const pd_hdr *h) {
    pd_table **t = pd_malloc(PD_MAX_TABLES * sizeof *t);
    if (!t) return coord_reply(s, h, PARAMD_ENOMEM, "out of memory", NULL, 0);
    uint32_t n = tables_now(s, t);
    int64_t F = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!t[i]->gate.clocked) continue;
        int64_t a = pd_gate_hold(&t[i]->gate, -1);
        if (a > F) F = a;
    }
    pd_free(t);
    uint8_t p[8];
    pd_le64_put(p, (uint64_t)F);
    pd_log(PD_LOG_DEBUG, "checkpoint: tables held, frontier clock %lld", (long long)F);
    coord_reply(s, h, 0, NULL, p, sizeof p);
}

void srv_on_ckpt_abort(pd_server *s) {
    release_all(s);
    pd_log(PD_LOG_INFO, "checkpoint abandoned by the coordinator: tables go on");
}

void srv_ckpt_lost(pd_server *s) {
    release_all(s);
}

/* ==== Phase 2: write ==================================================== */

typedef struct ckpt_job {
    pd_server *s;
    pd_hdr req;
    uint64_t seq;
    uint64_t base;  /* 0: a full checkpoint; else the one it is a delta of */
    int64_t C;
    char dir[PD_MAX_ADDR + 1];
} ckpt_job;

/* Write every table to dir/server-K-of-S.pdck at clock C. */
static int ckpt_write(pd_server *s, const ckpt_job *j, uint64_t *bytes, uint32_t *crc,
                      pd_err *e) {
    pd_table **t = pd_malloc(PD_MAX_TABLES * sizeof *t);
    if (!t) return pd_seterr(e, PARAMD_ENOMEM, "out of memory");
    uint32_t n = tables_now(s, t);
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (!t[i]->gate.clocked) continue;
        pd_gate_hold(&t[i]->gate, j->C);
        rc = pd_gate_wait_applied(&t[i]->gate, j->C, PD_CKPT_WAIT_MS);
        if (rc == PARAMD_ETIMEDOUT)
            pd_seterr(e, rc,
                      "server %d: table %u did not reach clock %lld within %d s (it is "
                      "at %lld: are its workers pushing?)",
                      s->index, t[i]->id, (long long)j->C, PD_CKPT_WAIT_MS / 1000,
                      (long long)pd_table_applied(t[i]));
        else if (rc)
            pd_seterr(e, rc, "server %d: stopping during a checkpoint", s->index);
    }
    if (rc == 0) {
        char name[64];
        pd_ckw w;
        pd_ck_server_file(name, sizeof name, s->index, s->S);
        pd_ck_save how = {j->seq, j->base};
        rc = pd_mkdirs(j->dir, e);
        if (rc == 0)
            rc = pd_ckw_open(&w, j->dir, name, j->base ? PD_CK_SERVER_DELTA : PD_CK_SERVER, e);
        if (rc == 0) {
            pd_ckw_u32(&w, (uint32_t)s->index);
            pd_ckw_u32(&w, (uint32_t)s->S);
            pd_ckw_u64(&w, (uint64_t)j->C);
            if (j->base) pd_ckw_u64(&w, j->base);
            pd_ckw_u32(&w, n);
            for (uint32_t i = 0; i < n; i++) pd_table_save(t[i], &w, &how);
            rc = pd_ckw_commit(&w, bytes, crc, e);
        }
    }
    pd_free(t);
    return rc;
}

static void *ckpt_main(void *arg) {
    ckpt_job *j = arg;
    pd_server *s = j->s;
    pd_err e = {0};
    uint64_t bytes = 0;
    uint32_t crc = 0;
    double t0 = pd_now();
    int rc = ckpt_write(s, j, &bytes, &crc, &e);
    release_all(s);
    /* Done before the reply: the coordinator may send the next CKPT_WRITE
     * as soon as it has every server's, and it must not find this one
     * still "being written" (that one joins this thread first). */
    pthread_mutex_lock(&s->mu);
    s->ck_running = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        pd_log(PD_LOG_ERROR, "checkpoint %llu failed: %s", (unsigned long long)j->seq, e.msg);
        coord_reply(s, &j->req, rc, e.msg, NULL, 0);
    } else {
        char kind[64] = "full";
        if (j->base) snprintf(kind, sizeof kind, "delta of %llu", (unsigned long long)j->base);
        pd_log(PD_LOG_INFO, "checkpoint %llu (%s) at clock %lld: %llu bytes in %.2f s",
               (unsigned long long)j->seq, kind, (long long)j->C, (unsigned long long)bytes,
               pd_now() - t0);
        uint8_t p[12];
        pd_le64_put(p, bytes);
        pd_le32_put(p + 8, crc);
        coord_reply(s, &j->req, 0, NULL, p, sizeof p);
    }
    pd_free(j);
    return NULL;
}

/* CKPT_WRITE: u64 seq, i64 clock, str dir, u64 base (0: full). */
void srv_on_ckpt_write(pd_server *s, const pd_hdr *h, const uint8_t *buf) {
    ckpt_job *j = pd_calloc(1, sizeof *j);
    if (!j) return coord_reply(s, h, PARAMD_ENOMEM, "out of memory", NULL, 0);
    pd_rd r;
    uint64_t C;
    pd_rd_init(&r, buf, (size_t)h->len);
    pd_get_u64(&r, &j->seq);
    pd_get_u64(&r, &C);
    pd_get_str(&r, j->dir, PD_MAX_ADDR);
    if (r.off < r.len) pd_get_u64(&r, &j->base); /* absent (an older peer): full */
    j->s = s;
    j->req = *h;
    j->C = (int64_t)C;
    if (!pd_rd_done(&r) || j->C < 0 || j->dir[0] != '/' || j->base >= j->seq) {
        pd_free(j);
        release_all(s);
        return coord_reply(s, h, PARAMD_EPROTO, "malformed CKPT_WRITE", NULL, 0);
    }
    pthread_mutex_lock(&s->mu);
    int busy = s->ck_running;
    if (!busy) {
        /* the previous checkpoint thread, done, is joined before the next */
        if (s->ck_started) pthread_join(s->ck_thread, NULL);
        s->ck_started = 0;
        s->ck_running = 1;
        if (pthread_create(&s->ck_thread, NULL, ckpt_main, j) == 0) {
            s->ck_started = 1;
        } else {
            s->ck_running = 0;
            busy = -1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (busy) {
        pd_free(j);
        coord_reply(s, h, busy > 0 ? PARAMD_EINVAL : PARAMD_ENOMEM,
                    busy > 0 ? "a checkpoint is already being written"
                             : "cannot start a checkpoint thread",
                    NULL, 0);
    }
}

void srv_ckpt_join(pd_server *s) {
    pthread_mutex_lock(&s->mu);
    int started = s->ck_started;
    s->ck_started = 0;
    pthread_mutex_unlock(&s->mu);
    if (started) pthread_join(s->ck_thread, NULL);
}

/* ==== Restore =========================================================== */

/* This server's part of a table written as `from` on a server of another
 * (or the same) partition. */
static void my_part(const pd_server *s, const pd_table_def *from, pd_table_def *d) {
    *d = *from;
    if (d->kind == PD_TABLE_DENSE) {
        d->lo = pd_partition_lo(d->n, (uint32_t)s->S, (uint32_t)s->index);
        d->hi = pd_partition_lo(d->n, (uint32_t)s->S, (uint32_t)s->index + 1);
    }
}

/* Open one server file of link m of a chain and check it is the one the
 * manifest names, of the kind its checkpoint is: nothing is loaded from
 * any file before every file of the chain passed this. */
static int open_file(const char *path, const pd_manifest *m, const pd_ck_file *f, pd_ckr *r,
                     pd_err *e) {
    int rc = pd_ckr_open(r, path, m->delta ? PD_CK_SERVER_DELTA : PD_CK_SERVER, e);
    if (rc) return rc;
    if ((uint64_t)r->size != f->bytes || r->crc != f->crc) {
        rc = pd_seterr(e, PARAMD_EPROTO,
                       "%s is not the file the manifest names (%zu bytes, checksum "
                       "%08x; the manifest says %llu, %08x): written by another "
                       "checkpoint?",
                       path, r->size, r->crc, (unsigned long long)f->bytes, f->crc);
        pd_ckr_close(r);
    }
    return rc;
}

/* n table sections of r, from its position: each table created with this
 * server's part of its partition (if it is not here yet), then loaded. */
int srv_load_tables(pd_server *s, pd_ckr *r, uint32_t n, pd_err *e) {
    const char *path = r->path;
    pd_rd *b = &r->body;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        uint32_t id, dlen;
        pd_get_u32(b, &id);
        pd_get_u32(b, &dlen);
        pd_table_def from;
        if (b->bad || id == 0 || id >= PD_MAX_TABLES || dlen > b->len - b->off ||
            pd_table_def_decode(b->p + b->off, dlen, &from, e) != 0) {
            rc = pd_seterr(e, PARAMD_EPROTO, "%s: malformed table section %u", path, i);
            break;
        }
        b->off += dlen;
        pd_table *t = s->tables[id];
        if (!t) {
            pd_table_def d;
            my_part(s, &from, &d);
            pd_table_env env = {s->W, s->index, s->S, s->pool, s->o.max_table_bytes,
                                s->plugin_dir[0] ? s->plugin_dir : NULL};
            if (!(t = pd_table_create(id, &d, &env, e))) break;
            t->gate.alive = srv_rank_alive; /* for the wait messages */
            t->gate.alive_arg = s;
            s->tables[id] = t;
            s->ntables++;
        } else if (t->def.n != from.n || t->def.kind != from.kind ||
                   t->def.rule != from.rule || t->def.consistency != from.consistency) {
            rc = pd_seterr(e, PARAMD_EPROTO,
                           "%s: table %u is not the table another file of the "
                           "checkpoint describes", path, id);
            break;
        }
        rc = t->ops->load(t, r, &from, e);
    }
    return rc;
}

/* Read one opened server file of the checkpoint m into this server's
 * tables (over what its base put there, for a delta). */
static int load_file(pd_server *s, pd_ckr *rr, const pd_manifest *m, pd_err *e) {
    pd_ckr *r = rr;
    const char *path = r->path;
    int rc = 0;
    pd_rd *b = &r->body;
    uint32_t index, S, n;
    uint64_t C, base = 0;
    pd_get_u32(b, &index);
    pd_get_u32(b, &S);
    pd_get_u64(b, &C);
    if (m->delta) pd_get_u64(b, &base);
    pd_get_u32(b, &n);
    if (b->bad || S != m->S || index >= S || (int64_t)C != m->clock || n >= PD_MAX_TABLES ||
        base != m->base_seq) {
        return pd_seterr(e, PARAMD_EPROTO, "%s does not belong to this checkpoint "
                         "(server %u of %u at clock %llu%s)", path, index, S,
                         (unsigned long long)C, m->delta ? ", a delta" : "");
    }
    rc = srv_load_tables(s, r, n, e);
    if (rc == 0 && !pd_rd_done(b) && !e->code)
        rc = pd_seterr(e, PARAMD_EPROTO, "%s: bytes after its last table", path);
    if (rc && !e->code) rc = pd_seterr(e, rc, "%s: cannot restore", path);
    return rc;
}

/* Restore the chain of the checkpoint named: its full checkpoint, then
 * each delta in order.  Every file of the chain is opened and checked
 * (frame, checksum, the manifest's size and checksum) before any is
 * loaded, so a chain with a bad link loads nothing. */
static int restore_from(pd_server *s, const char *path, pd_err *e) {
    char dir[4096];
    pd_ck_chain c;
    int rc = pd_ck_resolve(path, dir, sizeof dir, e);
    if (rc) return rc;
    if ((rc = pd_ck_chain_read(dir, &c, e))) return rc;
    double t0 = pd_now();
    uint32_t nf = 0, opened = 0;
    for (uint32_t i = 0; i < c.n; i++) nf += c.m[i].nfiles;
    pd_ckr *r = pd_calloc(nf, sizeof *r);
    if (!r) {
        pd_ck_chain_free(&c);
        return pd_seterr(e, PARAMD_ENOMEM, "out of memory restoring %s", dir);
    }
    for (uint32_t i = 0; i < c.n && rc == 0; i++)
        for (uint32_t f = 0; f < c.m[i].nfiles && rc == 0; f++) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", c.dir[i], c.m[i].files[f].name);
            if ((rc = open_file(path, &c.m[i], &c.m[i].files[f], &r[opened], e)) == 0) opened++;
        }
    for (uint32_t i = 0, k = 0; i < c.n && rc == 0; i++)
        for (uint32_t f = 0; f < c.m[i].nfiles && rc == 0; f++)
            rc = load_file(s, &r[k++], &c.m[i], e);
    for (uint32_t k = 0; k < opened; k++) pd_ckr_close(&r[k]);
    pd_free(r);
    const pd_manifest *m = &c.m[c.n - 1];
    uint64_t ntab = 0;
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++)
        if (s->tables[id]) {
            pd_gate_restore(&s->tables[id]->gate, m->clock);
            ntab++;
        }
    if (rc == 0)
        pd_log(PD_LOG_INFO, "restored %llu tables of %s at clock %lld (%s of %u "
               "checkpoint%s; written by %u servers, now server %d of %d) in %.2f s",
               (unsigned long long)ntab, dir, (long long)m->clock,
               c.n > 1 ? "a chain" : "full", c.n, c.n > 1 ? "s" : "", m->S, s->index, s->S,
               pd_now() - t0);
    pd_ck_chain_free(&c);
    return rc;
}

int srv_restore(pd_server *s, pd_err *e) { return restore_from(s, s->o.restore, e); }

/* SERVER_READY and its answer.  A worker that leaves or joins while this
 * server restores is told before the answer (WORKER_GONE, WORKER_JOIN:
 * the coordinator sends them to the slot's connection from registration
 * on); they are applied here, as the watcher would, in their order. */
static int server_ready(pd_server *s, pd_err *e) {
    pd_hdr h = {0}, rh;
    h.type = PD_MSG_SERVER_READY;
    h.id = 3;
    uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];
    int rc = pd_send_frame(s->coord, &h, NULL, 0, NULL, 0, NULL, 0, e);
    while (rc == 0) {
        if ((rc = pd_recv_hdr(s->coord, &rh, PD_MAX_CTRL_PAYLOAD, e)) ||
            (rc = pd_recv_payload(s->coord, &rh, buf, e)))
            break;
        if (rh.type == PD_MSG_WORKER_GONE || rh.type == PD_MSG_WORKER_JOIN) {
            srv_member_event(s, &rh, buf, 1);
            continue;
        }
        if (rh.type == PD_MSG_SHUTDOWN)
            return pd_seterr(e, PARAMD_ESHUTDOWN, "the coordinator ended the cluster "
                             "while this server restored the shard");
        if (rh.type != (PD_MSG_SERVER_READY | PD_REPLY) || rh.id != h.id)
            return pd_seterr(e, PARAMD_EPROTO, "%s answered %s id %llu to SERVER_READY "
                             "id %llu", s->coord->peer, pd_msg_name(rh.type),
                             (unsigned long long)rh.id, (unsigned long long)h.id);
        if (rh.status < 0) return pd_seterr(e, rh.status, "%s", (const char *)buf);
        return 0;
    }
    if (rc == PARAMD_ECLOSED)
        return pd_seterr(e, rc, "%s closed the connection while a SERVER_READY was "
                         "pending", s->coord->peer);
    return rc;
}

int srv_replace(pd_server *s, const char *dir, int64_t C, int64_t A, const uint8_t *member,
                pd_err *e) {
    if (s->o.restore)
        pd_log(PD_LOG_INFO, "this server replaces lost server %d: it restores from the "
               "checkpoint the coordinator names, not --restore %s", s->index, s->o.restore);
    int rc = restore_from(s, dir, e);
    if (rc) {
        char why[PD_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", e->msg);
        return pd_seterr(e, rc, "replacing lost server %d: %s", s->index, why);
    }
    uint32_t ntab = 0;
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
        pd_table *t = s->tables[id];
        if (!t) continue;
        ntab++;
        /* Clocks below A are never awaited here again (coord/replace.c). */
        pd_gate_restore(&t->gate, A);
        t->gate.drop_below = A;
    }
    for (int32_t w = 0; w < s->W; w++) {
        s->gone[w] = !member[w];
        for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
            pd_table *t = s->tables[id];
            if (!t) continue;
            if (!member[w]) {
                pd_table_worker_gone(t, w);
            } else if (w >= s->W_start) { /* it joined: it counts from A */
                pd_table_join_begin(t, w);
                pd_table_join_at(t, w, A);
            }
        }
        if (member[w] && w >= s->W_start) s->jfrom[w] = A;
    }
    pd_log(PD_LOG_WARN, "replacing lost server %d of %d: %u tables restored from %s at "
           "clock %lld; going on at clock %lld (this shard lost the updates of clocks "
           "%lld..%lld; the other servers kept theirs)", s->index, s->S, ntab, dir,
           (long long)C, (long long)A, (long long)C, (long long)A);
    if ((rc = server_ready(s, e))) {
        char why[PD_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", e->msg);
        return pd_seterr(e, rc, "replacing lost server %d: SERVER_READY: %s", s->index, why);
    }
    return 0;
}
