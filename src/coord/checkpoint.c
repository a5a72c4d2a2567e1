/*
 * checkpoint.c - the coordinator's part of checkpoints (docs/durability.md):
 * it drives the consistent cut over every server, writes the manifest
 * once every server's file is in place, keeps the newest checkpoints, and
 * at start can take its table registry and the clock to resume at back
 * from one.
 *
 * One checkpoint at a time, and never during a join (both are two-phase
 * protocols over every server): co->ck_busy and co->joining exclude each
 * other.  The phases (server/checkpoint.c has the servers' side):
 *   1. CKPT_HOLD to every server; each holds its clocked tables where they
 *      are and answers its frontier F_k;
 *   2. CKPT_WRITE(seq, C = max F_k, dir) to every server; each lets its
 *      tables reach C, writes its file, lifts its holds, and answers the
 *      file's size and checksum;
 *   3. the manifest (the registry, the clock, the files) into the
 *      checkpoint directory, then ROOT/LATEST pointing to it; older
 *      checkpoints are removed but for the newest two restorable chains
 *      (prune).
 * Full and incremental.  A checkpoint is a delta of ck_base (the newest
 * one this coordinator completed) unless it is the first of this
 * coordinator's life (after a start or a restore), or ck_base is the
 * (K-1)th delta after a full one (K = --checkpoint-full-every): then it
 * is full.  A failed checkpoint leaves ck_base as it was, so the next
 * delta is again one of the newest complete checkpoint and carries every
 * row the failed one would have (server/sparse.h).
 * A server that fails or is lost makes the checkpoint fail (CKPT_ABORT
 * after phase 1); the previous checkpoint is untouched, since nothing
 * points to a directory without its manifest.  Servers' replies are read
 * by their connection threads (co_on_ckpt_reply) and counted under mu.
 *
 * Where the files go is the coordinator's operator's choice alone
 * (--checkpoint-dir): a client can ask for a checkpoint (CHECKPOINT) but
 * never say where servers write.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "coord/coord_impl.h"
#include "durable/manifest.h"

#define PD_CKPT_PHASE_MS 120000

/* ==== Directories ======================================================= */

/* The number of ckpt-N in root (0 if none or no root). */
static uint64_t newest_seq(const char *root) {
    uint64_t best = 0;
    DIR *d = opendir(root);
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned long long n;
        char tail;
        if (sscanf(de->d_name, "ckpt-%llu%c", &n, &tail) == 1 && n > best) best = n;
    }
    closedir(d);
    return best;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[4400];
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* The numbers of the ckpt-N directories of root, ascending; NULL (and
 * *n = 0) if none or out of memory.  pd_free it. */
static uint64_t *list_seqs(const char *root, size_t *n) {
    *n = 0;
    DIR *d = opendir(root);
    if (!d) return NULL;
    uint64_t *v = NULL;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned long long k;
        char tail;
        if (sscanf(de->d_name, "ckpt-%llu%c", &k, &tail) != 1) continue;
        if (*n == cap) {
            uint64_t *p = pd_realloc(v, (cap = cap ? cap * 2 : 16) * sizeof *v);
            if (!p) break;
            v = p;
        }
        size_t i = (*n)++;
        while (i > 0 && v[i - 1] > k) v[i] = v[i - 1], i--;
        v[i] = k;
    }
    closedir(d);
    return v;
}

static void seq_dir(char *out, size_t len, const char *root, uint64_t seq) {
    snprintf(out, len, "%s/ckpt-%06llu", root, (unsigned long long)seq);
}

/* Mark seq and the checkpoints it depends on in keep[] (parallel to
 * seqs[]); the first of the chain (its full checkpoint, or where it is
 * broken). */
static uint64_t keep_chain(const char *root, const uint64_t *seqs, size_t n, char *keep,
                           uint64_t seq) {
    for (uint32_t hop = 0; hop <= PD_CK_MAX_DEPTH; hop++) {
        for (size_t i = 0; i < n; i++)
            if (seqs[i] == seq) keep[i] = 1;
        char dir[4200];
        pd_manifest m;
        pd_err e = {0};
        seq_dir(dir, sizeof dir, root, seq);
        if (pd_manifest_read(dir, &m, &e) != 0) return seq;
        int delta = (int)m.delta;
        uint64_t base = m.base_seq;
        pd_manifest_free(&m);
        if (!delta || base >= seq) return seq;
        seq = base;
    }
    return seq;
}

/* Retention.  Keep the newest checkpoint's chain (back to its full
 * checkpoint) and the chain of the newest complete checkpoint before that
 * full one, so that if any file of the newest chain is lost, the one
 * before is still whole; remove every other checkpoint older than the
 * newest, complete or not.  With every checkpoint full, that is the newest
 * two. */
static void prune(const char *root, uint64_t newest) {
    size_t n;
    uint64_t *seqs = list_seqs(root, &n);
    char *keep = seqs ? pd_calloc(n, 1) : NULL;
    if (!keep) {
        pd_free(seqs);
        return; /* keep everything rather than guess */
    }
    uint64_t first = keep_chain(root, seqs, n, keep, newest);
    for (size_t i = n; i-- > 0;) {
        char p[4400];
        struct stat st;
        if (seqs[i] >= first) continue;
        seq_dir(p, sizeof p, root, seqs[i]);
        strcat(p, "/MANIFEST");
        if (stat(p, &st) == 0) {
            keep_chain(root, seqs, n, keep, seqs[i]);
            break;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!keep[i] && seqs[i] < newest) {
            char p[4400];
            seq_dir(p, sizeof p, root, seqs[i]);
            remove_tree(p);
        }
    pd_free(keep);
    pd_free(seqs);
}

/* ==== The protocol ====================================================== */

/* mu held: send a checkpoint frame to every registered server. */
static void send_all(pd_coord *co, uint16_t type, const pd_buf *b) {
    for (int32_t i = 0; i < co->o.servers; i++) {
        co_conn *sc = co->server_conn[i];
        if (!sc) continue;
        pd_hdr h = {0};
        h.type = type;
        h.id = co->ck_id;
        pd_send_frame(sc->conn, &h, b ? b->p : NULL, b ? b->len : 0, NULL, 0, NULL, 0, NULL);
    }
}

/* mu held (released while waiting): until every server answered the
 * current phase, one failed, or PD_CKPT_PHASE_MS passed.  0 or the error
 * (with its text in co->ck_err). */
static int wait_phase(pd_coord *co) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += PD_CKPT_PHASE_MS / 1000;
    while (co->ck_replies < co->o.servers && !co->ck_failed && !co->stopping)
        if (pthread_cond_timedwait(&co->cv, &co->mu, &ts) == ETIMEDOUT) {
            snprintf(co->ck_err, sizeof co->ck_err,
                     "%d of %d servers answered within %d s", co->ck_replies,
                     co->o.servers, PD_CKPT_PHASE_MS / 1000);
            return PARAMD_ETIMEDOUT;
        }
    if (co->stopping) {
        snprintf(co->ck_err, sizeof co->ck_err, "the cluster is stopping");
        return PARAMD_ESHUTDOWN;
    }
    return co->ck_failed ? PARAMD_EIO : 0;
}

int co_checkpoint(pd_coord *co, uint64_t *seq_out, int64_t *clock_out, char *dir_out,
                  size_t dirlen, pd_err *e) {
    const char *root = co->o.checkpoint_dir;
    if (!root)
        return pd_seterr(e, PARAMD_EINVAL,
                         "this coordinator takes no checkpoints: start it with "
                         "--checkpoint-dir DIR");
    pthread_mutex_lock(&co->mu);
    while ((co->ck_busy || co->joining || co->mv_slot >= 0) && !co->stopping)
        pthread_cond_wait(&co->cv, &co->mu);
    int rc = 0;
    if (co->stopping) {
        pthread_mutex_unlock(&co->mu);
        return pd_seterr(e, PARAMD_ESHUTDOWN, "the cluster is stopping");
    }
    if (co->nservers < co->o.servers) {
        pthread_mutex_unlock(&co->mu);
        return pd_seterr(e, PARAMD_EINVAL, "only %d of %d servers have registered",
                         co->nservers, co->o.servers);
    }
    for (int32_t k = 0; k < co->o.servers; k++)
        if (co->sdown[k] != SD_UP) {
            int gone = co->sdown[k] == SD_GONE; /* (read under mu) */
            pthread_mutex_unlock(&co->mu);
            return pd_seterr(e, PARAMD_EIO, "server %d was lost and %s", k,
                             gone ? "not replaced" : "is being replaced");
        }
    co->ck_busy = 1;
    uint64_t seq = ++co->ck_seq;
    int32_t K = co->o.checkpoint_full_every > 0 ? co->o.checkpoint_full_every
                                                : PD_CKPT_FULL_EVERY;
    /* a delta of the newest complete checkpoint, or a full one */
    uint64_t base = co->ck_base && co->ck_depth + 1 < (uint32_t)K && !co->ck_full_next
                        ? co->ck_base : 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ckpt-%06llu", root, (unsigned long long)seq);
    double t0 = pd_now();
    /* The registry now, before any server holds or writes: a table ready
     * here has been created on every server, with its initial values,
     * before they write their files.  A table that becomes ready later is
     * recorded as not ready, and is created again on restore. */
    pd_manifest m = {0};
    m.seq = seq;
    m.S = (uint32_t)co->o.servers;
    m.W = (uint32_t)co->o.workers;
    m.M = (uint32_t)co->o.max_workers;
    m.nfiles = (uint32_t)co->o.servers;
    m.ntables = co->ntables;
    uint32_t ntables = m.ntables;
    if (base) {
        m.delta = 1;
        m.base_seq = base;
        snprintf(m.base, sizeof m.base, "ckpt-%06llu", (unsigned long long)base);
        m.base_crc = co->ck_base_crc;
        m.depth = co->ck_depth + 1;
    }
    m.files = pd_calloc(m.nfiles, sizeof *m.files);
    m.tables = pd_calloc(m.ntables ? m.ntables : 1, sizeof *m.tables);
    if (!m.files || !m.tables) {
        co->ck_busy = 0;
        pthread_cond_broadcast(&co->cv);
        pthread_mutex_unlock(&co->mu);
        pd_manifest_free(&m);
        return pd_seterr(e, PARAMD_ENOMEM, "out of memory for a checkpoint's manifest");
    }
    for (uint32_t i = 0; i < m.ntables; i++) {
        const co_table *t = &co->tables[i];
        m.tables[i].id = i + 1;
        m.tables[i].dropped = t->dropped || !t->ready;
        snprintf(m.tables[i].name, sizeof m.tables[i].name, "%s", t->name);
        m.tables[i].n = t->n;
        snprintf(m.tables[i].spec, sizeof m.tables[i].spec, "%s", t->spec);
    }
    /* Phase 1 */
    co->ck_id++;
    co->ck_phase = PD_MSG_CKPT_HOLD;
    co->ck_replies = 0;
    co->ck_failed = 0;
    co->ck_frontier = 0;
    co->ck_err[0] = '\0';
    send_all(co, PD_MSG_CKPT_HOLD, NULL);
    rc = wait_phase(co);
    int64_t C = co->ck_frontier;
    /* Phase 2 */
    if (rc == 0) {
        pd_buf b;
        pd_buf_init(&b);
        pd_put_u64(&b, seq);
        pd_put_u64(&b, (uint64_t)C);
        pd_put_str(&b, dir);
        pd_put_u64(&b, base);
        co->ck_id++;
        co->ck_phase = PD_MSG_CKPT_WRITE;
        co->ck_replies = 0;
        memset(co->ck_files, 0, sizeof *co->ck_files * (size_t)co->o.servers);
        if (b.oom) {
            rc = PARAMD_ENOMEM;
            snprintf(co->ck_err, sizeof co->ck_err, "out of memory");
        } else {
            send_all(co, PD_MSG_CKPT_WRITE, &b);
            rc = wait_phase(co);
        }
        pd_buf_free(&b);
    } else {
        send_all(co, PD_MSG_CKPT_ABORT, NULL);
    }
    /* Phase 3: the manifest, with the files the servers answered */
    if (rc == 0) {
        m.clock = C;
        for (uint32_t i = 0; i < m.nfiles; i++) {
            pd_ck_server_file(m.files[i].name, sizeof m.files[i].name, (int32_t)i,
                              co->o.servers);
            m.files[i].bytes = co->ck_files[i].bytes;
            m.files[i].crc = co->ck_files[i].crc;
        }
    }
    char err[PD_ERRMSG_MAX];
    snprintf(err, sizeof err, "%s", co->ck_err);
    pthread_mutex_unlock(&co->mu);
    pd_err we = {0};
    uint32_t mcrc = 0, depth = m.depth;
    if (rc == 0 && (rc = pd_manifest_write(dir, &m, &mcrc, &we)) != 0)
        snprintf(err, sizeof err, "%s", we.msg);
    pd_manifest_free(&m);
    char latest[64];
    snprintf(latest, sizeof latest, "ckpt-%06llu\n", (unsigned long long)seq);
    if (rc == 0 && (rc = pd_write_atomic(root, "LATEST", latest, &we)) != 0)
        snprintf(err, sizeof err, "%s", we.msg);
    if (rc == 0) {
        prune(root, seq);
        char kind[64] = "full";
        if (base) snprintf(kind, sizeof kind, "delta of %llu", (unsigned long long)base);
        pd_log(PD_LOG_INFO, "checkpoint %llu at clock %lld: %s (%s, %.2f s)",
               (unsigned long long)seq, (long long)C, dir, kind, pd_now() - t0);
    } else {
        pd_seterr(e, rc, "checkpoint %llu failed: %s (the previous checkpoint is kept)",
                  (unsigned long long)seq, err);
        pd_log(PD_LOG_ERROR, "%s", e->msg);
    }
    pthread_mutex_lock(&co->mu);
    co->ck_busy = 0;
    if (rc == 0) {
        co->ck_last_clock = C;
        co->ck_ntables = ntables;
        co->ck_full_next = 0;
        co->ck_base = seq;
        co->ck_base_crc = mcrc;
        co->ck_depth = base ? depth : 0;
    }
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    if (rc == 0) {
        if (seq_out) *seq_out = seq;
        if (clock_out) *clock_out = C;
        if (dir_out) snprintf(dir_out, dirlen, "%s", dir);
    }
    return rc;
}

/* A server's answer to CKPT_HOLD (i64 frontier) or CKPT_WRITE (u64 bytes,
 * u32 crc), or its error. */
int co_on_ckpt_reply(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pd_rd r;
    uint64_t a = 0;
    uint32_t crc = 0;
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pthread_mutex_lock(&co->mu);
    uint16_t type = h->type & (uint16_t)~PD_REPLY;
    if (cc->server >= 0 && co->ck_busy && h->id == co->ck_id && type == co->ck_phase) {
        if (h->status != 0) {
            co->ck_failed = 1;
            snprintf(co->ck_err, sizeof co->ck_err, "server %d: %s", cc->server,
                     (const char *)cc->buf);
        } else {
            pd_get_u64(&r, &a);
            if (type == PD_MSG_CKPT_WRITE) pd_get_u32(&r, &crc);
            if (!pd_rd_done(&r) || a > (uint64_t)INT64_MAX) {
                co->ck_failed = 1;
                snprintf(co->ck_err, sizeof co->ck_err, "server %d answered badly",
                         cc->server);
            } else if (type == PD_MSG_CKPT_HOLD) {
                if ((int64_t)a > co->ck_frontier) co->ck_frontier = (int64_t)a;
                co->ck_replies++;
            } else {
                co->ck_files[cc->server].bytes = a;
                co->ck_files[cc->server].crc = crc;
                co->ck_replies++;
            }
        }
        pthread_cond_broadcast(&co->cv);
    }
    pthread_mutex_unlock(&co->mu);
    return 0;
}

/* CHECKPOINT from a tool: take one now; reply u64 seq, i64 clock, str dir. */
int co_on_checkpoint(co_conn *cc, const pd_hdr *h) {
    pd_err e = {0};
    uint64_t seq;
    int64_t C;
    char dir[4096];
    if (cc->role != PD_ROLE_TOOL)
        return co_reply_err(cc, h, PARAMD_EPROTO, "CHECKPOINT is for tools (paramd checkpoint)");
    int rc = co_checkpoint(cc->co, &seq, &C, dir, sizeof dir, &e);
    if (rc) return co_reply_err(cc, h, rc, e.msg);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u64(&b, seq);
    pd_put_u64(&b, (uint64_t)C);
    pd_put_str(&b, dir);
    rc = co_reply(cc, h, &b);
    pd_buf_free(&b);
    return rc;
}

/* ==== Periodic checkpoints ============================================== */

/* Every checkpoint_every_s seconds, or once the live workers' clocks (as
 * their heartbeats report them) passed the last checkpoint's clock by
 * checkpoint_every_clocks. */
void *co_ckpt_main(void *arg) {
    pd_coord *co = arg;
    double last = pd_now();
    pthread_mutex_lock(&co->mu);
    while (!co->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&co->cv, &co->mu, &ts);
        if (co->stopping || co->nservers < co->o.servers || co->ntables == 0) continue;
        int due = co->o.checkpoint_every_s > 0 && pd_now() - last >= co->o.checkpoint_every_s;
        if (co->o.checkpoint_every_clocks > 0) {
            int64_t slowest = INT64_MAX;
            for (int32_t w = 0; w < co->o.max_workers; w++)
                if (co->wstate[w] == W_LIVE && co->wclock[w] < slowest) slowest = co->wclock[w];
            if (slowest != INT64_MAX &&
                slowest >= co->ck_last_clock + co->o.checkpoint_every_clocks)
                due = 1;
        }
        if (!due) continue;
        pthread_mutex_unlock(&co->mu);
        pd_err e = {0};
        co_checkpoint(co, NULL, NULL, NULL, 0, &e); /* logs its own outcome */
        last = pd_now();
        pthread_mutex_lock(&co->mu);
    }
    pthread_mutex_unlock(&co->mu);
    return NULL;
}

/* ==== Restore =========================================================== */

/* The registry and clock of the newest checkpoint of the chain (whose
 * every manifest is checked here; the servers check their files).  The
 * first checkpoint after a restore is full (ck_base stays 0). */
int co_restore(pd_coord *co, pd_err *e) {
    char dir[4096];
    pd_ck_chain c;
    int rc = pd_ck_resolve(co->o.restore, dir, sizeof dir, e);
    if (rc) return rc;
    if ((rc = pd_ck_chain_read(dir, &c, e))) return rc;
    pd_manifest m = c.m[c.n - 1];
    c.m[c.n - 1] = (pd_manifest){0};
    pd_ck_chain_free(&c);
    if (m.ntables) {
        co->tables = pd_calloc(m.ntables, sizeof *co->tables);
        if (!co->tables) {
            pd_manifest_free(&m);
            return pd_seterr(e, PARAMD_ENOMEM, "out of memory");
        }
        co->tcap = m.ntables;
    }
    for (uint32_t i = 0; i < m.ntables; i++) {
        co_table *t = &co->tables[i];
        snprintf(t->name, sizeof t->name, "%s", m.tables[i].name);
        snprintf(t->spec, sizeof t->spec, "%s", m.tables[i].spec);
        t->n = m.tables[i].n;
        t->ready = !m.tables[i].dropped;
        t->dropped = (int)m.tables[i].dropped;
    }
    co->ntables = m.ntables;
    co->ck_ntables = m.ntables;
    co->restore_clock = m.clock;
    co->ck_last_clock = m.clock;
    if (m.seq > co->ck_seq) co->ck_seq = m.seq;
    if ((int32_t)m.W != co->o.workers)
        pd_log(PD_LOG_WARN, "the checkpoint was written by a cluster of %u workers; this "
               "one has %d (a sync table's mean now has %d terms)", m.W, co->o.workers,
               co->o.workers);
    pd_log(PD_LOG_INFO, "restored the table registry of %s: %u tables, workers start "
           "at clock %lld", dir, m.ntables, (long long)m.clock);
    pd_manifest_free(&m);
    return 0;
}

void co_ckpt_init(pd_coord *co) {
    if (co->o.checkpoint_dir) {
        uint64_t n = newest_seq(co->o.checkpoint_dir);
        if (n > co->ck_seq) co->ck_seq = n;
    }
}
