/*
 * sparse.c - one server's part of a sparse table: rows created on first
 * touch, pushes applied through the update rule once per distinct key,
 * sync/ssp aggregation per clock, and pulls (see sparse.h for the layout
 * and the invariants).
 *
 * The life of a request, all under the table's lock:
 *   1. the gate admits it (worker, clock, window: gate.h);
 *   2. reserve everything that can fail (clock sums, scratch, and the rows
 *      of keys never seen, counted exactly): on failure return with
 *      nothing changed;
 *   3. resolve every key to its row, creating the missing ones;
 *   4. async push: sum duplicates, apply once per row; sync push: add into
 *      the clock's sums and apply the clocks that are complete; pull: copy.
 * Keys are checked against the partition before the lock is taken.
 *
 * Complexity: a request of n keys costs n hash probes (one cache line each
 * at load <= 3/4) plus n row updates of O(dim * (1 + k)) each; a clock of a
 * sync table costs, once complete, one update per distinct key pushed in it.
 */
#include "server/sparse.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/hash.h"

/* Loops over a request's keys start loading the hash slot, meta or row of
 * the key this many places ahead: in a table larger than the caches each
 * key costs a few cache misses, and this lets them overlap. */
#define PREFETCH 8

/* ==== Row initialisation ================================================ */

/* Uniform in [0, 1) with 53 bits. */
static double unit(uint64_t x) { return (double)(x >> 11) * 0x1p-53; }

void pd_sparse_init_row(const pd_table_def *d, uint64_t key, float *row) {
    uint32_t dim = (uint32_t)d->n;
    switch (d->init) {
    case PD_INIT_UNIFORM:
        for (uint32_t j = 0; j < dim; j++)
            row[j] = (float)(d->init_param *
                             (2.0 * unit(pd_row_rand(d->seed, key, j)) - 1.0));
        break;
    case PD_INIT_NORMAL:
        /* Box-Muller: elements 2p and 2p+1 from numbers 2p and 2p+1. */
        for (uint32_t j = 0; j < dim; j += 2) {
            double u1 = 1.0 - unit(pd_row_rand(d->seed, key, j)); /* (0, 1] */
            double u2 = unit(pd_row_rand(d->seed, key, j + 1));
            double r = sqrt(-2.0 * log(u1)) * d->init_param;
            double a = 2.0 * M_PI * u2;
            row[j] = (float)(r * cos(a));
            if (j + 1 < dim) row[j + 1] = (float)(r * sin(a));
        }
        break;
    default:
        memset(row, 0, dim * sizeof(float));
    }
}

/* ==== Create and destroy ================================================ */

static const pd_table_ops sparse_ops;

static pd_sparse *sparse_of(pd_table *t) { return (pd_sparse *)(void *)t; }

static void gate_apply(void *store, pd_gate_slot *sl);

pd_table *pd_sparse_create(uint32_t id, const pd_table_def *def,
                           const pd_table_env *env, pd_err *e) {
    if (def->kind != PD_TABLE_SPARSE || def->n == 0 ||
        def->n > PD_MAX_SPARSE_DIM || env->W < 1 || env->S < 1 || env->index < 0 ||
        env->index >= env->S) {
        pd_seterr(e, PARAMD_EINVAL, "table %u: not a sparse table definition",
                  id);
        return NULL;
    }
    pd_sparse *t = pd_calloc(1, sizeof *t);
    if (!t) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory for table %u", id);
        return NULL;
    }
    t->dim = (uint32_t)def->n;
    t->index = env->index, t->S = env->S;
    t->gen = 1;
    t->ck_epoch = 1;
    pd_keymap_init(&t->map);
    pd_gate_store gs = {gate_apply, NULL, t};
    if (pd_table_init(&t->base, &sparse_ops, id, def, env, &gs,
                      "for it (a sync sparse table needs one push per server "
                      "and clock, possibly with no keys)",
                      e) != 0) {
        sparse_ops.destroy(&t->base);
        return NULL;
    }
    t->k = pd_rule_state_floats(&t->base.rule);
    t->rowfloats = (size_t)t->dim * (1 + t->k);
    /* --max-table-mb: a row costs its floats, its metadata and its key's
     * share of the map (about two slots), and a clock's sum may hold a
     * copy of every row's gradient. */
    t->max_rows = PD_SPARSE_MAX_ROWS;
    if (env->max_bytes) {
        uint64_t per = (uint64_t)t->rowfloats * sizeof(float) + sizeof(pd_sparse_meta) + 32;
        if (t->base.gate.clocked) per += (uint64_t)t->dim * sizeof(float) + 16;
        uint64_t m = env->max_bytes / per;
        t->max_rows = m < PD_SPARSE_MAX_ROWS ? (size_t)m : PD_SPARSE_MAX_ROWS;
        t->max_bytes = env->max_bytes;
    }
    t->sums = pd_calloc((size_t)t->base.gate.window, sizeof *t->sums);
    if (!t->sums) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory for table %u", id);
        sparse_ops.destroy(&t->base);
        return NULL;
    }
    return &t->base;
}

static void sums_free(pd_sparse_sums *sm) {
    if (!sm) return;
    pd_keymap_free(&sm->map);
    pd_free(sm->row);
    pd_free(sm->sum);
    pd_free(sm);
}

static void sparse_destroy(pd_table *tb) {
    pd_sparse *t = sparse_of(tb);
    if (t->sums)
        for (int32_t i = 0; i < tb->gate.window; i++) sums_free(t->sums[i]);
    pd_free(t->sums);
    pd_keymap_free(&t->map);
    pd_free(t->rows);
    pd_free(t->meta);
    pd_free(t->ridx);
    pd_table_fini(tb);
    pd_free(t);
}

/* ==== Rows ============================================================== */

static float *row_at(const pd_sparse *t, uint32_t r) {
    return t->rows + (size_t)r * t->rowfloats;
}

/* Room for `n` rows in all, and scratch for a request of `nreq` keys,
 * without changing any row.  0 or PARAMD_ENOMEM. */
static int reserve(pd_sparse *t, size_t n, size_t nreq, pd_err *e) {
    if (n > t->max_rows && t->max_rows < PD_SPARSE_MAX_ROWS)
        return pd_seterr(e, PARAMD_ELIMIT,
                         "table %u: %zu rows of %u floats would pass the %llu "
                         "MiB one table may take on this server (at most %zu "
                         "rows; paramd server --max-table-mb)",
                         t->base.id, n, t->dim,
                         (unsigned long long)(t->max_bytes >> 20), t->max_rows);
    if (n > PD_SPARSE_MAX_ROWS)
        return pd_seterr(e, PARAMD_ENOMEM,
                         "table %u: more than %u rows on one server", t->base.id,
                         PD_SPARSE_MAX_ROWS);
    if (nreq > t->ridx_cap) {
        uint32_t *p = pd_realloc(t->ridx, nreq * sizeof *p);
        if (!p) goto oom;
        t->ridx = p;
        t->ridx_cap = nreq;
    }
    if (n > t->rowcap) {
        size_t cap = t->rowcap ? t->rowcap : 64;
        while (cap < n) cap *= 2;
        if (cap > PD_SPARSE_MAX_ROWS + 1ull) cap = PD_SPARSE_MAX_ROWS + 1ull;
        if (cap > t->max_rows && n <= t->max_rows) cap = t->max_rows; /* the budget */
        if (cap > SIZE_MAX / sizeof(float) / t->rowfloats) goto oom;
        float *rows = pd_realloc(t->rows, cap * t->rowfloats * sizeof(float));
        if (!rows) goto oom;
        t->rows = rows;
        pd_sparse_meta *meta = pd_realloc(t->meta, cap * sizeof *meta);
        if (!meta) goto oom; /* rows grew: harmless, only capacity */
        t->meta = meta;
        /* rows are read at random: fewer TLB misses with huge pages */
        pd_advise_hugepages(rows, cap * t->rowfloats * sizeof(float));
        pd_advise_hugepages(meta, cap * sizeof *meta);
        t->rowcap = cap;
    }
    if (pd_keymap_reserve(&t->map, n) != 0) goto oom;
    return 0;
oom:
    return pd_seterr(e, PARAMD_ENOMEM,
                     "table %u: out of memory for %zu rows of %u floats",
                     t->base.id, n, t->dim);
}

/* The row of `key`, created with its initial values if new.  Room must
 * have been reserved. */
static uint32_t row_get_or_create(pd_sparse *t, uint64_t key) {
    int added;
    uint32_t r = pd_keymap_put(&t->map, key, (uint32_t)t->nrows, &added);
    if (added) {
        float *row = row_at(t, r);
        pd_sparse_init_row(&t->base.def, key, row);
        if (t->k) pd_rule_init_state(&t->base.rule, row + t->dim, t->dim);
        t->meta[r] = (pd_sparse_meta){key, 0, 0, 0, t->ck_epoch};
        t->nrows++;
    }
    return r;
}

/* A fresh generation for duplicate detection (marks of rows are older). */
static uint32_t next_gen(pd_sparse *t) {
    if (++t->gen == 0) {
        for (size_t r = 0; r < t->nrows; r++) t->meta[r].mark = 0;
        t->gen = 1;
    }
    return t->gen;
}

/* For an async push: if row r was already met in this push (generation
 * gen), add key i's gradient to its first occurrence's and mark i to be
 * skipped; else remember i as its first occurrence.  Returns 1 for a
 * duplicate. */
static inline int dedupe_at(pd_sparse *t, uint32_t gen, uint64_t i, uint32_t r,
                            float *g) {
    pd_sparse_meta *m = &t->meta[r];
    if (m->mark != gen) {
        m->mark = gen;
        m->pos = (uint32_t)i;
        return 0;
    }
    float *dst = g + (size_t)m->pos * t->dim;
    const float *src = g + i * t->dim;
    for (uint32_t j = 0; j < t->dim; j++) dst[j] += src[j];
    t->ridx[i] = PD_KEYMAP_NONE;
    return 1;
}

/* t->ridx[i] = the row of keys[i] for every i, creating the missing rows.
 * With g (an async push's gradients), duplicated keys are also summed on
 * the way (dedupe_at) and *dups tells whether there were any.  All or
 * nothing: on failure no row was created and g is untouched. */
static int resolve(pd_sparse *t, const uint64_t *keys, uint64_t n, float *g,
                   int *dups, pd_err *e) {
    uint32_t *ridx, gen = 0;
    int rc, d = 0;
    if ((rc = reserve(t, t->nrows, n, e))) return rc; /* scratch */
    ridx = t->ridx;
    if (t->nrows + n <= t->rowcap && t->nrows + n <= t->map.cap / 4 * 3 &&
        t->nrows + n <= t->max_rows) {
        /* Room for every key even if all are new: one pass. */
        if (g) gen = next_gen(t);
        for (uint64_t i = 0; i < n; i++) {
            if (i + PREFETCH < n) pd_keymap_prefetch(&t->map, keys[i + PREFETCH]);
            uint32_t r = ridx[i] = row_get_or_create(t, keys[i]);
            if (g) d |= dedupe_at(t, gen, i, r, g);
        }
    } else {
        /* Count the new keys exactly (a duplicated new key counts twice: a
         * little room to spare), reserve, then create. */
        uint64_t miss = 0;
        for (uint64_t i = 0; i < n; i++) {
            if (i + PREFETCH < n) pd_keymap_prefetch(&t->map, keys[i + PREFETCH]);
            ridx[i] = pd_keymap_get(&t->map, keys[i]);
            miss += ridx[i] == PD_KEYMAP_NONE;
        }
        if (miss && (rc = reserve(t, t->nrows + miss, n, e))) return rc;
        if (g) gen = next_gen(t);
        for (uint64_t i = 0; i < n; i++) {
            if (ridx[i] == PD_KEYMAP_NONE) ridx[i] = row_get_or_create(t, keys[i]);
            if (g) d |= dedupe_at(t, gen, i, ridx[i], g);
        }
    }
    if (dups) *dups = d;
    return 0;
}

/* Start loading a row and its meta (see PREFETCH). */
static void prefetch_row(const pd_sparse *t, uint32_t r) {
    const char *p = (const char *)row_at(t, r);
    size_t bytes = t->rowfloats * sizeof(float);
    if (bytes > 1024) bytes = 1024; /* the hardware prefetcher does the rest */
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 1);
    __builtin_prefetch(&t->meta[r], 1);
}

/* The one place a row changes: gradient g (dim floats, already aggregated)
 * through the rule.  A replica runs the same. */
static void apply_row(pd_sparse *t, uint32_t r, const float *g) {
    float *row = row_at(t, r);
    pd_rule_apply(&t->base.rule, row, t->k ? row + t->dim : NULL, g, t->dim,
                  (int64_t)++t->meta[r].steps);
    t->meta[r].mod = t->ck_epoch; /* for incremental checkpoints */
}


/* ==== Clocks (sync, ssp) ================================================ */

/* Room in sums `sl` for `n` more entries.  0 or PARAMD_ENOMEM. */
static int slot_reserve(pd_sparse *t, pd_sparse_sums *sl, uint64_t n,
                        pd_err *e) {
    size_t want = sl->nent + n;
    if (want > sl->cap) {
        size_t cap = sl->cap ? sl->cap : 64;
        while (cap < want) cap *= 2;
        if (cap > SIZE_MAX / sizeof(float) / t->dim) goto oom;
        uint32_t *row = pd_realloc(sl->row, cap * sizeof *row);
        if (!row) goto oom;
        sl->row = row;
        float *sum = pd_realloc(sl->sum, cap * t->dim * sizeof(float));
        if (!sum) goto oom;
        sl->sum = sum;
        sl->cap = cap;
    }
    if (pd_keymap_reserve(&sl->map, want) != 0) goto oom;
    return 0;
oom:
    return pd_seterr(e, PARAMD_ENOMEM,
                     "table %u: out of memory for the sums of a clock", t->base.id);
}

/* CPU time of the calling thread: what a push costs the server, whatever
 * else runs on the machine (wall time would count the time the thread
 * waits for a core). */
static int64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ==== Rows in parallel ==================================================
 * The rows of an async push, and the entries of a clock being applied,
 * are distinct rows (resolve() folded duplicate keys), so their updates
 * touch disjoint memory (the row, its state, its meta) and run on the
 * server's apply threads (pool.h) in parts of about 64 Ki floats, under
 * the table's lock held by the calling connection thread.  The CPU time
 * the pool's threads spend is added to push_cpu_ns with the caller's. */

typedef struct row_job {
    pd_sparse *t;
    pd_sparse_sums *sl;  /* apply: the clock's sums */
    const float *g;      /* async push: the gradients, request order */
    int dups;            /* async push: ridx has PD_KEYMAP_NONE holes */
    float inv;           /* apply: mean scale (1: none) */
    pthread_t caller;
    int64_t helper_ns;   /* atomic: CPU time of the pool's threads */
} row_job;

static void run_rows(pd_sparse *t, uint64_t n, pd_pool_fn fn, row_job *j) {
    uint64_t grain = (64u << 10) / t->dim;
    pd_pool_for(t->base.pool, n, grain ? grain : 1, fn, j);
    t->stats.push_cpu_ns += (uint64_t)j->helper_ns;
}

static void job_apply_slot(void *arg, uint64_t lo, uint64_t hi) {
    row_job *j = arg;
    pd_sparse *t = j->t;
    pd_sparse_sums *sl = j->sl;
    int64_t c0 = pthread_equal(pthread_self(), j->caller) ? -1 : thread_cpu_ns();
    for (uint64_t en = lo; en < hi; en++) {
        float *g = sl->sum + en * t->dim;
        if (j->inv != 1.0f)
            for (uint32_t k = 0; k < t->dim; k++) g[k] *= j->inv;
        apply_row(t, sl->row[en], g);
    }
    if (c0 >= 0) __atomic_add_fetch(&j->helper_ns, thread_cpu_ns() - c0, __ATOMIC_RELAXED);
}

/* The gate found the clock of slot gs complete: apply its sums (mu held). */
static void gate_apply(void *store, pd_gate_slot *gs) {
    pd_sparse *t = store;
    pd_sparse_sums *sl = t->sums[pd_gate_slot_index(&t->base.gate, gs)];
    row_job j = {t, sl, NULL, 0, 1.0f, pthread_self(), 0};
    if (t->base.def.aggregate == PD_AGG_MEAN && gs->ndone > 1) j.inv = 1.0f / (float)gs->ndone;
    run_rows(t, sl->nent, job_apply_slot, &j);
}

/* ==== Push and pull ===================================================== */


/* Every key belongs to this server.  No lock needed: S and index never
 * change. */
static int check_keys(const pd_sparse *t, const uint64_t *keys, uint64_t n,
                      pd_err *e) {
    if (t->S <= 1) return 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t k = pd_sparse_server(keys[i], (uint32_t)t->S);
        if (k != (uint32_t)t->index)
            return pd_seterr(e, PARAMD_ERANGE,
                             "table %u: key %llu (request position %llu) "
                             "belongs to server %u of %d, not to this server "
                             "(%d)",
                             t->base.id, (unsigned long long)keys[i],
                             (unsigned long long)i, k, t->S, t->index);
    }
    return 0;
}

/* Async: apply once per row (resolve summed the duplicates, if any, into
 * their first occurrence and marked the others PD_KEYMAP_NONE). */
static void job_push_async(void *arg, uint64_t lo, uint64_t hi) {
    row_job *j = arg;
    pd_sparse *t = j->t;
    const uint32_t *ridx = t->ridx;
    int64_t c0 = pthread_equal(pthread_self(), j->caller) ? -1 : thread_cpu_ns();
    for (uint64_t i = lo; i < hi; i++) {
        if (i + PREFETCH < hi && ridx[i + PREFETCH] != PD_KEYMAP_NONE)
            prefetch_row(t, ridx[i + PREFETCH]);
        if (!j->dups || ridx[i] != PD_KEYMAP_NONE) apply_row(t, ridx[i], j->g + i * t->dim);
    }
    if (c0 >= 0) __atomic_add_fetch(&j->helper_ns, thread_cpu_ns() - c0, __ATOMIC_RELAXED);
}

static void push_async(pd_sparse *t, uint64_t n, const float *g, int dups) {
    row_job j = {t, NULL, g, dups, 1.0f, pthread_self(), 0};
    run_rows(t, n, job_push_async, &j);
}

/* Sync/ssp: add the push into slot `sl` (room reserved). */
static void push_into_slot(pd_sparse *t, pd_sparse_sums *sl, uint64_t n,
                           const float *g) {
    uint32_t dim = t->dim;
    for (uint64_t i = 0; i < n; i++) {
        int added;
        uint32_t en = pd_keymap_put(&sl->map, t->ridx[i], (uint32_t)sl->nent, &added);
        float *dst = sl->sum + (size_t)en * dim;
        const float *src = g + i * dim;
        if (added) {
            sl->row[en] = t->ridx[i];
            sl->nent++;
            memcpy(dst, src, dim * sizeof(float));
        } else {
            for (uint32_t j = 0; j < dim; j++) dst[j] += src[j];
        }
    }
}

static int sparse_check(pd_table *tb, const pd_table_req *rq, pd_err *e) {
    if (!rq->keyed)
        return pd_seterr(e, PARAMD_ENOTABLE,
                         "no table %u on this server for ranges (table %u is "
                         "sparse: push and pull it by key, paramd_sparse_push, "
                         "paramd_sparse_pull)",
                         tb->id, tb->id);
    return 0;
}

static int sparse_push(pd_table *tb, const pd_table_req *rq, pd_err *e) {
    pd_sparse *t = sparse_of(tb);
    pd_gate *gt = &tb->gate;
    int32_t worker = rq->worker;
    int64_t clock = rq->clock;
    const uint64_t *keys = rq->keys;
    uint64_t n = rq->nkeys;
    float *g = rq->io;
    int rc = sparse_check(tb, rq, e);
    if (rc) return rc;
    if ((rc = check_keys(t, keys, n, e))) {
        pthread_mutex_lock(&gt->mu);
        t->stats.rejected++;
        pthread_mutex_unlock(&gt->mu);
        return rc;
    }
    if ((rc = pd_gate_check_worker(gt, worker, e))) return rc;
    if (n > PD_SPARSE_MAX_ROWS)
        return pd_seterr(e, PARAMD_ETOOBIG, "table %u: %llu keys in one push",
                         tb->id, (unsigned long long)n);
    pthread_mutex_lock(&gt->mu);
    int64_t t0 = thread_cpu_ns();
    int dropped = 0;
    pd_gate_slot *gs = NULL;
    pd_sparse_sums *sl = NULL;
    if ((rc = pd_gate_admit(gt, worker, clock, &dropped, e))) goto out;
    if (gt->clocked && !dropped && clock == gt->last[worker]) {
        rc = pd_seterr(e, PARAMD_EDUP,
                       "table %u: worker %d already pushed to this server "
                       "for clock %lld (a sync or ssp sparse table takes "
                       "one push per worker and clock)",
                       tb->id, worker, (long long)clock);
        goto out;
    }
    if (dropped) {
        pd_gate_pushed(gt, worker, clock, 1, 1);
        t->stats.dropped++;
        goto out;
    }
    if (gt->clocked) {
        if (!(gs = pd_gate_slot_for(gt, clock, e))) {
            rc = e->code;
            goto out;
        }
        pd_sparse_sums **pp = &t->sums[pd_gate_slot_index(gt, gs)];
        if (!*pp && !(*pp = pd_calloc(1, sizeof **pp))) {
            rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory for clock sums");
            goto out;
        }
        sl = *pp;
        if (pd_gate_open(gt, gs, clock)) {
            sl->nent = 0;
            pd_keymap_clear(&sl->map);
        }
        if ((rc = slot_reserve(t, sl, n, e))) goto out;
    }
    int dups = 0;
    if ((rc = resolve(t, keys, n, sl ? NULL : g, &dups, e))) goto out;
    /* Nothing can fail from here on. */
    pd_gate_pushed(gt, worker, clock, 1, 0);
    if (sl) {
        push_into_slot(t, sl, n, g);
        pd_gate_count(gt, gs, worker);
        pd_gate_apply_ready(gt);
    } else {
        push_async(t, n, g, dups);
    }
    t->stats.pushes++;
    t->stats.keys_pushed += n;
    t->stats.bytes_in += n * t->dim * sizeof(float);
out:
    if (rc) t->stats.rejected++;
    t->stats.push_cpu_ns += (uint64_t)(thread_cpu_ns() - t0);
    pthread_mutex_unlock(&gt->mu);
    return rc;
}

static int sparse_pull(pd_table *tb, const pd_table_req *rq, pd_emit_fn emit, void *arg,
                       pd_err *e) {
    pd_sparse *t = sparse_of(tb);
    const uint64_t *keys = rq->keys;
    uint64_t n = rq->nkeys;
    float *out = rq->io;
    int rc = sparse_check(tb, rq, e);
    if (rc) return rc;
    if ((rc = check_keys(t, keys, n, e))) return rc;
    if (n > PD_SPARSE_MAX_ROWS)
        return pd_seterr(e, PARAMD_ETOOBIG, "table %u: %llu keys in one pull",
                         tb->id, (unsigned long long)n);
    pthread_mutex_lock(&tb->gate.mu);
    if ((rc = pd_gate_pull_wait(&tb->gate, rq->worker, rq->clock, rq->wait_ms, e))) goto out;
    if ((rc = resolve(t, keys, n, NULL, NULL, e))) goto out;
    for (uint64_t i = 0; i < n; i++) {
        if (i + PREFETCH < n) __builtin_prefetch(row_at(t, t->ridx[i + PREFETCH]));
        memcpy(out + i * t->dim, row_at(t, t->ridx[i]), t->dim * sizeof(float));
    }
    t->stats.pulls++;
    t->stats.keys_pulled += n;
    t->stats.bytes_out += n * t->dim * sizeof(float);
    int64_t applied = pd_gate_reply_clock(&tb->gate);
    pthread_mutex_unlock(&tb->gate.mu);
    emit(arg, out, n * t->dim, applied);
    return 0;
out:
    pthread_mutex_unlock(&tb->gate.mu);
    return rc;
}

/* ==== Stats ============================================================= */

size_t pd_sparse_bytes(const pd_sparse *t) {
    size_t b = t->rowcap * (t->rowfloats * sizeof(float) + sizeof(pd_sparse_meta));
    b += pd_keymap_bytes(&t->map) + t->ridx_cap * sizeof(uint32_t);
    for (int32_t i = 0; i < t->base.gate.window; i++) {
        const pd_sparse_sums *sl = t->sums[i];
        if (sl)
            b += pd_keymap_bytes(&sl->map) +
                 sl->cap * (sizeof(uint32_t) + t->dim * sizeof(float));
    }
    return b;
}

static int sparse_stats_line(pd_table *tb, char *out, size_t outlen) {
    pd_sparse *t = sparse_of(tb);
    pthread_mutex_lock(&tb->gate.mu);
    int n = snprintf(
        out, outlen,
        "table %u kind sparse dim %u rows %zu bytes %zu pushes %llu pulls %llu "
        "keys_pushed %llu keys_pulled %llu bytes_in %llu bytes_out %llu "
        "rejected %llu dropped %llu clock %lld push_cpu_ns %llu\n",
        tb->id, t->dim, t->nrows, pd_sparse_bytes(t),
        (unsigned long long)t->stats.pushes, (unsigned long long)t->stats.pulls,
        (unsigned long long)t->stats.keys_pushed,
        (unsigned long long)t->stats.keys_pulled,
        (unsigned long long)t->stats.bytes_in,
        (unsigned long long)t->stats.bytes_out,
        (unsigned long long)t->stats.rejected,
        (unsigned long long)t->stats.dropped, (long long)tb->gate.applied,
        (unsigned long long)t->stats.push_cpu_ns);
    pthread_mutex_unlock(&tb->gate.mu);
    return n;
}

/* ==== Checkpoints ========================================================
 * A section: the gate's clocks, then u32 dim, u32 state planes, u64
 * nrows, and per row u64 key, u64 steps, dim * (1 + planes) floats (the
 * row as the arena holds it).  A full checkpoint's section holds every
 * row; a delta's the same layout with only the rows changed since its
 * base (sparse.h), so load is one upsert for both.  Written under the
 * table's lock: a pull may create rows, and the arena moves when it
 * grows. */

/* The epoch table t closed when it wrote checkpoint seq; 0 (all rows are
 * newer) if it has no record of it.  mu held. */
static uint64_t cut_of(const pd_sparse *t, uint64_t seq) {
    for (uint32_t i = 0; i < t->ncuts; i++)
        if (t->cuts[i].seq == seq) return t->cuts[i].epoch;
    return 0;
}

/* Remember that checkpoint seq holds the rows with mod <= epoch; forget
 * the saves older than base (a later delta never names them: bases only
 * move forward) and, past PD_SPARSE_CUTS, the oldest but base itself (a
 * run of failed checkpoints: the next delta is again one of base).  mu
 * held. */
static void cut_record(pd_sparse *t, uint64_t seq, uint64_t base, uint64_t epoch) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < t->ncuts; i++)
        if (t->cuts[i].seq >= base && t->cuts[i].seq != seq) t->cuts[k++] = t->cuts[i];
    if (k == PD_SPARSE_CUTS) {
        uint32_t drop = t->cuts[0].seq == base ? 1 : 0; /* oldest first */
        memmove(t->cuts + drop, t->cuts + drop + 1,
                (PD_SPARSE_CUTS - 1 - drop) * sizeof *t->cuts);
        k--;
    }
    t->cuts[k++] = (pd_sparse_cut){seq, epoch};
    t->ncuts = k;
}

static void sparse_save(pd_table *tb, pd_ckw *w, const pd_ck_save *how) {
    pd_sparse *t = sparse_of(tb);
    pthread_mutex_lock(&tb->gate.mu);
    uint64_t since = how->base ? cut_of(t, how->base) : 0;
    uint64_t n = 0;
    if (since == 0) {
        n = t->nrows;
    } else {
        for (size_t r = 0; r < t->nrows; r++) n += t->meta[r].mod > since;
    }
    pd_table_put_gate(tb, w);
    pd_ckw_u32(w, t->dim);
    pd_ckw_u32(w, (uint32_t)t->k);
    pd_ckw_u64(w, n);
    for (size_t r = 0; r < t->nrows && !w->err.code; r++) {
        if (t->meta[r].mod <= since) continue;
        pd_ckw_u64(w, t->meta[r].key);
        pd_ckw_u64(w, t->meta[r].steps);
        pd_ckw_floats(w, row_at(t, (uint32_t)r), t->rowfloats);
    }
    /* Whether or not this checkpoint completes: a later delta of it needs
     * the rows changed from now on, a later delta of an older base those
     * changed since that base (still recorded). */
    cut_record(t, how->seq, how->base, t->ck_epoch);
    t->ck_epoch++;
    pthread_mutex_unlock(&tb->gate.mu);
}

/* Keep the rows whose key this server holds (any partition they came
 * from); skip the others. */
static int sparse_load(pd_table *tb, pd_ckr *r, const pd_table_def *from, pd_err *e) {
    pd_sparse *t = sparse_of(tb);
    pd_rd *b = &r->body;
    uint64_t applied, top, nrows;
    uint32_t dim, k;
    (void)from;
    pd_get_u64(b, &applied);
    pd_get_u64(b, &top);
    pd_get_u32(b, &dim);
    pd_get_u32(b, &k);
    pd_get_u64(b, &nrows);
    if (b->bad || dim != t->dim || k != t->k)
        return pd_seterr(e, PARAMD_EPROTO,
                         "%s: table %u: a sparse section of rows of %u floats with %u "
                         "state planes, for a table of %u and %zu",
                         r->path, tb->id, dim, k, t->dim, t->k);
    if (nrows > (b->len - b->off) / (16 + t->rowfloats * sizeof(float)))
        return pd_seterr(e, PARAMD_EPROTO, "%s: table %u: %llu rows do not fit the file",
                         r->path, tb->id, (unsigned long long)nrows);
    pthread_mutex_lock(&tb->gate.mu);
    int rc = 0;
    for (uint64_t i = 0; i < nrows && rc == 0; i++) {
        uint64_t key, steps;
        pd_get_u64(b, &key);
        pd_get_u64(b, &steps);
        if (t->S > 1 && pd_sparse_server(key, (uint32_t)t->S) != (uint32_t)t->index) {
            pd_ckr_floats(r, NULL, t->rowfloats);
            continue;
        }
        if ((rc = reserve(t, t->nrows + 1, 1, e))) break;
        uint32_t row = row_get_or_create(t, key);
        pd_ckr_floats(r, row_at(t, row), t->rowfloats);
        t->meta[row].steps = steps;
        t->meta[row].mod = t->ck_epoch;
    }
    pthread_mutex_unlock(&tb->gate.mu);
    if (rc) return rc;
    if (b->bad)
        return pd_seterr(e, PARAMD_EPROTO, "%s: table %u: the rows end early", r->path, tb->id);
    return 0;
}

static const pd_table_ops sparse_ops = {
    "sparse", sparse_check, NULL, sparse_push, sparse_pull, sparse_stats_line,
    sparse_destroy, sparse_save, sparse_load,
};
