/*
 * sparse.c - one server's part of a sparse table: rows created on first
 * touch, pushes applied through the update rule once per distinct key,
 * sync/ssp aggregation per clock, and pulls (see sparse.h for the layout
 * and the invariants).
 *
 * The life of a request, all under the table's mutex:
 *   1. check (worker, clock, window);
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
#include "server/shard.h" /* PD_SYNC_WINDOW */
#include "table/spec.h"

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

pd_sparse *pd_sparse_create(uint32_t id, const pd_table_def *def, int32_t W,
                            int32_t index, int32_t S, pd_pool *pool, pd_err *e) {
    if (def->kind != PD_TABLE_SPARSE || def->n == 0 ||
        def->n > PD_MAX_SPARSE_DIM || W < 1 || S < 1 || index < 0 ||
        index >= S) {
        pd_seterr(e, PARAMD_EINVAL, "table %u: not a sparse table definition",
                  id);
        return NULL;
    }
    pd_sparse *t = pd_calloc(1, sizeof *t);
    if (!t) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory for table %u", id);
        return NULL;
    }
    t->id = id;
    t->pool = pool;
    t->def = *def;
    t->dim = (uint32_t)def->n;
    t->W = W, t->index = index, t->S = S;
    t->gen = 1;
    t->rule.kind = (pd_rule_kind)def->rule;
    pd_spec_hyper(def, &t->rule.hyper);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    pd_keymap_init(&t->map);
    char msg[PD_ERRMSG_MAX];
    if (def->rule == PD_RULE_PLUGIN &&
        pd_rule_load_plugin(&t->rule, def->plugin, msg, sizeof msg) != 0) {
        pd_seterr(e, PARAMD_EINVAL, "table %u: %s", id, msg);
        pd_sparse_destroy(t);
        return NULL;
    }
    if (pd_rule_check(&t->rule, msg, sizeof msg) != 0) {
        pd_seterr(e, PARAMD_EINVAL, "table %u: %s", id, msg);
        pd_sparse_destroy(t);
        return NULL;
    }
    t->k = pd_rule_state_floats(&t->rule);
    t->rowfloats = (size_t)t->dim * (1 + t->k);
    t->window = (int32_t)def->staleness + PD_SYNC_WINDOW;
    t->slots = pd_calloc((size_t)t->window, sizeof *t->slots);
    t->wclock = pd_malloc((size_t)W * sizeof *t->wclock);
    int mok = pd_members_init(&t->mem, W, (int)def->elastic) == 0;
    if (!t->slots || !t->wclock || !mok) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory for table %u", id);
        pd_sparse_destroy(t);
        return NULL;
    }
    for (int32_t w = 0; w < W; w++) t->wclock[w] = -1;
    return t;
}

static void slot_free(pd_sparse_slot *sl) {
    if (!sl) return;
    pd_keymap_free(&sl->map);
    pd_free(sl->who);
    pd_free(sl->row);
    pd_free(sl->sum);
    pd_free(sl);
}

void pd_sparse_destroy(pd_sparse *t) {
    if (!t) return;
    if (t->slots)
        for (int32_t i = 0; i < t->window; i++) slot_free(t->slots[i]);
    pd_free(t->slots);
    pd_free(t->wclock);
    pd_members_free(&t->mem);
    pd_keymap_free(&t->map);
    pd_free(t->rows);
    pd_free(t->meta);
    pd_free(t->ridx);
    pd_rule_release(&t->rule);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    pd_free(t);
}

int pd_sparse_same_def(const pd_sparse *t, const pd_table_def *d) {
    const pd_table_def *a = &t->def;
    if (d->kind != PD_TABLE_SPARSE || a->n != d->n || a->rule != d->rule ||
        a->consistency != d->consistency || a->aggregate != d->aggregate ||
        a->staleness != d->staleness || a->backup != d->backup ||
        a->init != d->init || a->init_param != d->init_param ||
        a->seed != d->seed || a->nhyper != d->nhyper || a->elastic != d->elastic ||
        strcmp(a->plugin, d->plugin) != 0)
        return 0;
    return memcmp(a->hyper, d->hyper, sizeof(double) * a->nhyper) == 0;
}

/* ==== Rows ============================================================== */

static float *row_at(const pd_sparse *t, uint32_t r) {
    return t->rows + (size_t)r * t->rowfloats;
}

/* Room for `n` rows in all, and scratch for a request of `nreq` keys,
 * without changing any row.  0 or PARAMD_ENOMEM. */
static int reserve(pd_sparse *t, size_t n, size_t nreq, pd_err *e) {
    if (n > PD_SPARSE_MAX_ROWS)
        return pd_seterr(e, PARAMD_ENOMEM,
                         "table %u: more than %u rows on one server", t->id,
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
                     t->id, n, t->dim);
}

/* The row of `key`, created with its initial values if new.  Room must
 * have been reserved. */
static uint32_t row_get_or_create(pd_sparse *t, uint64_t key) {
    int added;
    uint32_t r = pd_keymap_put(&t->map, key, (uint32_t)t->nrows, &added);
    if (added) {
        float *row = row_at(t, r);
        pd_sparse_init_row(&t->def, key, row);
        if (t->k) pd_rule_init_state(&t->rule, row + t->dim, t->dim);
        t->meta[r] = (pd_sparse_meta){key, 0, 0, 0};
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
    if (t->nrows + n <= t->rowcap && t->nrows + n <= t->map.cap / 4 * 3) {
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
    pd_rule_apply(&t->rule, row, t->k ? row + t->dim : NULL, g, t->dim,
                  (int64_t)++t->meta[r].steps);
}


/* ==== Clocks (sync, ssp) ================================================ */

static int clocked(const pd_sparse *t) {
    return t->def.consistency != PD_CONS_ASYNC;
}


/* Room in slot `sl` for `n` more entries.  0 or PARAMD_ENOMEM. */
static int slot_reserve(pd_sparse *t, pd_sparse_slot *sl, uint64_t n,
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
                     "table %u: out of memory for the sums of a clock", t->id);
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
    pd_sparse_slot *sl;  /* apply: the clock's slot */
    const float *g;      /* async push: the gradients, request order */
    int dups;            /* async push: ridx has PD_KEYMAP_NONE holes */
    float inv;           /* apply: mean scale (1: none) */
    pthread_t caller;
    int64_t helper_ns;   /* atomic: CPU time of the pool's threads */
} row_job;

static void run_rows(pd_sparse *t, uint64_t n, pd_pool_fn fn, row_job *j) {
    uint64_t grain = (64u << 10) / t->dim;
    pd_pool_for(t->pool, n, grain ? grain : 1, fn, j);
    t->stats.push_cpu_ns += (uint64_t)j->helper_ns;
}

static void job_apply_slot(void *arg, uint64_t lo, uint64_t hi) {
    row_job *j = arg;
    pd_sparse *t = j->t;
    pd_sparse_slot *sl = j->sl;
    int64_t c0 = pthread_equal(pthread_self(), j->caller) ? -1 : thread_cpu_ns();
    for (uint64_t en = lo; en < hi; en++) {
        float *g = sl->sum + en * t->dim;
        if (j->inv != 1.0f)
            for (uint32_t k = 0; k < t->dim; k++) g[k] *= j->inv;
        apply_row(t, sl->row[en], g);
    }
    if (c0 >= 0) __atomic_add_fetch(&j->helper_ns, thread_cpu_ns() - c0, __ATOMIC_RELAXED);
}

/* Apply every complete clock, in order. */
static void apply_ready(pd_sparse *t) {
    for (;;) {
        pd_sparse_slot *sl = t->slots[t->applied % t->window];
        if (!sl || !sl->active || sl->clock != t->applied ||
            sl->ncount < pd_members_need(&t->mem, t->applied, t->def.backup))
            return;
        row_job j = {t, sl, NULL, 0, 1.0f, pthread_self(), 0};
        if (t->def.aggregate == PD_AGG_MEAN && sl->ndone > 1) j.inv = 1.0f / (float)sl->ndone;
        run_rows(t, sl->nent, job_apply_slot, &j);
        sl->active = 0;
        t->applied++;
        pthread_cond_broadcast(&t->cv);
    }
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
                             t->id, (unsigned long long)keys[i],
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
static void push_into_slot(pd_sparse *t, pd_sparse_slot *sl, uint64_t n,
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

int pd_sparse_push(pd_sparse *t, int32_t worker, int64_t clock,
                   const uint64_t *keys, uint64_t n, float *g, pd_err *e) {
    int rc = check_keys(t, keys, n, e);
    if (rc) {
        pthread_mutex_lock(&t->mu);
        t->stats.rejected++;
        pthread_mutex_unlock(&t->mu);
        return rc;
    }
    if (worker < 0 || worker >= t->W)
        return pd_seterr(e, PARAMD_EWORKER,
                         "push from worker %d, but the cluster has %d workers",
                         worker, t->W);
    if (n > PD_SPARSE_MAX_ROWS)
        return pd_seterr(e, PARAMD_ETOOBIG, "table %u: %llu keys in one push",
                         t->id, (unsigned long long)n);
    pthread_mutex_lock(&t->mu);
    int64_t t0 = thread_cpu_ns();
    int dropped = 0;
    pd_sparse_slot *sl = NULL;
    if (t->mem.st[worker] == PD_MEM_REFUSED) {
        rc = pd_seterr(e, PARAMD_EWORKER,
                       "table %u does not take workers that join a running "
                       "cluster (elastic=no in its spec), and worker %d "
                       "joined late",
                       t->id, worker);
        goto out;
    }
    if (t->mem.st[worker] != PD_MEM_LIVE) {
        rc = pd_seterr(e, PARAMD_EWORKER,
                       "table %u: worker %d was removed from the cluster (it "
                       "left, died or missed its heartbeats)",
                       t->id, worker);
        goto out;
    }
    if (clocked(t) && clock < t->mem.from[worker]) {
        rc = pd_seterr(e, PARAMD_ESTALE,
                       "table %u: worker %d joined the cluster at clock %lld "
                       "and pushed for clock %lld (a joiner starts at the "
                       "clock paramd_get_clock gives after connecting)",
                       t->id, worker, (long long)t->mem.from[worker],
                       (long long)clock);
        goto out;
    }
    if (clock < t->wclock[worker]) {
        rc = pd_seterr(e, PARAMD_ESTALE,
                       "table %u: worker %d pushed for clock %lld after "
                       "pushing for clock %lld",
                       t->id, worker, (long long)clock,
                       (long long)t->wclock[worker]);
        goto out;
    }
    if (clocked(t)) {
        if (clock < t->applied) {
            if (!t->def.backup) {
                rc = pd_seterr(e, PARAMD_ESTALE,
                               "table %u: worker %d pushed for clock %lld, "
                               "which was already applied (next clock is "
                               "%lld)",
                               t->id, worker, (long long)clock,
                               (long long)t->applied);
                goto out;
            }
            dropped = 1; /* a backup worker's late push: count, drop */
        } else if (clock == t->wclock[worker]) {
            rc = pd_seterr(e, PARAMD_EDUP,
                           "table %u: worker %d already pushed to this server "
                           "for clock %lld (a sync or ssp sparse table takes "
                           "one push per worker and clock)",
                           t->id, worker, (long long)clock);
            goto out;
        } else if (clock >= t->applied + t->window) {
            rc = pd_seterr(e, PARAMD_EAHEAD,
                           "table %u: worker %d pushed for clock %lld but the "
                           "table is at clock %lld (window %d)",
                           t->id, worker, (long long)clock,
                           (long long)t->applied, t->window);
            goto out;
        }
    }
    if (dropped) {
        t->wclock[worker] = clock;
        t->stats.dropped++;
        goto out;
    }
    if (clocked(t)) {
        pd_sparse_slot **pp = &t->slots[clock % t->window];
        if (!*pp && !(*pp = pd_calloc(1, sizeof **pp))) {
            rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory for clock sums");
            goto out;
        }
        sl = *pp;
        if (!sl->active) {
            sl->active = 1;
            sl->clock = clock;
            sl->ndone = 0;
            sl->ncount = 0;
            sl->nent = 0;
            pd_keymap_clear(&sl->map);
        }
        if ((rc = slot_reserve(t, sl, n, e))) goto out;
        if (pd_members_who_reserve(&sl->who, &sl->whocap, sl->ndone)) {
            rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory for clock sums");
            goto out;
        }
    }
    int dups = 0;
    if ((rc = resolve(t, keys, n, sl ? NULL : g, &dups, e))) goto out;
    /* Nothing can fail from here on. */
    t->wclock[worker] = clock;
    if (clock >= t->top) t->top = clock + 1;
    if (sl) {
        push_into_slot(t, sl, n, g);
        sl->who[sl->ndone++] = worker;
        sl->ncount++;
        apply_ready(t);
    } else {
        push_async(t, n, g, dups);
    }
    t->stats.pushes++;
    t->stats.keys_pushed += n;
    t->stats.bytes_in += n * t->dim * sizeof(float);
out:
    if (rc) t->stats.rejected++;
    t->stats.push_cpu_ns += (uint64_t)(thread_cpu_ns() - t0);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int pd_sparse_pull(pd_sparse *t, int32_t worker, int64_t clock,
                   const uint64_t *keys, uint64_t n, float *out, pd_err *e) {
    int rc = check_keys(t, keys, n, e);
    if (rc) return rc;
    if (n > PD_SPARSE_MAX_ROWS)
        return pd_seterr(e, PARAMD_ETOOBIG, "table %u: %llu keys in one pull",
                         t->id, (unsigned long long)n);
    pthread_mutex_lock(&t->mu);
    if (clocked(t)) {
        /* A pull at clock c needs clocks up to c - s - 1 applied. */
        int64_t need = clock - (int64_t)t->def.staleness;
        if (t->applied < need && pd_members_counts(&t->mem, worker, need - 1) &&
            !t->def.backup && t->wclock[worker] < need - 1) {
            rc = pd_seterr(e, PARAMD_EDEADLOCK,
                           "table %u: pull at clock %lld waits for clock %lld "
                           "to be applied, but worker %d has not pushed for "
                           "it (a sync sparse table needs one push per "
                           "server and clock, possibly with no keys)",
                           t->id, (long long)clock, (long long)(need - 1),
                           worker);
            goto out;
        }
        while (t->applied < need && !t->stop) pthread_cond_wait(&t->cv, &t->mu);
        if (t->applied < need) {
            rc = pd_seterr(e, PARAMD_ESHUTDOWN,
                           "table %u: server stopping while a pull waited "
                           "for clock %lld",
                           t->id, (long long)need - 1);
            goto out;
        }
    }
    if ((rc = resolve(t, keys, n, NULL, NULL, e))) goto out;
    for (uint64_t i = 0; i < n; i++) {
        if (i + PREFETCH < n) __builtin_prefetch(row_at(t, t->ridx[i + PREFETCH]));
        memcpy(out + i * t->dim, row_at(t, t->ridx[i]), t->dim * sizeof(float));
    }
    t->stats.pulls++;
    t->stats.keys_pulled += n;
    t->stats.bytes_out += n * t->dim * sizeof(float);
out:
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void pd_sparse_worker_gone(pd_sparse *t, int32_t w) {
    if (w < 0 || w >= t->W) return;
    pthread_mutex_lock(&t->mu);
    if (pd_members_gone(&t->mem, w)) {
        for (int32_t i = 0; i < t->window; i++) {
            pd_sparse_slot *sl = t->slots[i];
            if (sl && sl->active) sl->ncount -= pd_members_who_forget(sl->who, sl->ndone, w);
        }
        if (clocked(t)) apply_ready(t);
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
}

int64_t pd_sparse_join_begin(pd_sparse *t, int32_t w) {
    if (w < 0 || w >= t->W) return -1;
    pthread_mutex_lock(&t->mu);
    t->wclock[w] = -1; /* a predecessor's record: not the joiner's */
    int64_t F = -1;
    if (!clocked(t)) {
        pd_members_join(&t->mem, w, 0);
    } else {
        int64_t f = t->applied > t->top ? t->applied : t->top;
        if (pd_members_join(&t->mem, w, f)) F = f;
    }
    pthread_mutex_unlock(&t->mu);
    return F;
}

void pd_sparse_join_at(pd_sparse *t, int32_t w, int64_t J) {
    if (w < 0 || w >= t->W) return;
    pthread_mutex_lock(&t->mu);
    pd_members_join(&t->mem, w, clocked(t) ? J : 0);
    if (clocked(t)) apply_ready(t);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

void pd_sparse_stop(pd_sparse *t) {
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* ==== Stats ============================================================= */

size_t pd_sparse_bytes(const pd_sparse *t) {
    size_t b = t->rowcap * (t->rowfloats * sizeof(float) + sizeof(pd_sparse_meta));
    b += pd_keymap_bytes(&t->map) + t->ridx_cap * sizeof(uint32_t);
    for (int32_t i = 0; i < t->window; i++) {
        const pd_sparse_slot *sl = t->slots[i];
        if (sl)
            b += pd_keymap_bytes(&sl->map) +
                 sl->cap * (sizeof(uint32_t) + t->dim * sizeof(float));
    }
    return b;
}

int pd_sparse_stats_line(pd_sparse *t, char *out, size_t outlen) {
    pthread_mutex_lock(&t->mu);
    int n = snprintf(
        out, outlen,
        "table %u kind sparse dim %u rows %zu bytes %zu pushes %llu pulls %llu "
        "keys_pushed %llu keys_pulled %llu bytes_in %llu bytes_out %llu "
        "rejected %llu dropped %llu clock %lld push_cpu_ns %llu\n",
        t->id, t->dim, t->nrows, pd_sparse_bytes(t),
        (unsigned long long)t->stats.pushes, (unsigned long long)t->stats.pulls,
        (unsigned long long)t->stats.keys_pushed,
        (unsigned long long)t->stats.keys_pulled,
        (unsigned long long)t->stats.bytes_in,
        (unsigned long long)t->stats.bytes_out,
        (unsigned long long)t->stats.rejected,
        (unsigned long long)t->stats.dropped, (long long)t->applied,
        (unsigned long long)t->stats.push_cpu_ns);
    pthread_mutex_unlock(&t->mu);
    return n;
}
