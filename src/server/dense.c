/*
 * dense.c - the dense store (see dense.h): storage, the staging of
 * partial pushes, a clock's sum, application through the update rule, and
 * pulls that copy out under the values' read lock.  Which push is taken
 * and when a clock applies is the gate's (gate.h).
 *
 * Locking: the table's mutex is held for the whole of a push; writers of
 * params/state (set, an async push, a clock's apply) also take the values
 * lock for writing, a pull takes it for reading and then drops the mutex,
 * so the pulls of several workers copy out at once, and pushes stage and
 * sum meanwhile.  Updates to one table are serialised, but each one's
 * float loops are cut into disjoint ranges run in parallel by the
 * server's apply threads (pool.h; "Parallel loops" below); different
 * tables and different servers proceed in parallel too.
 */
#include "server/dense.h"

#include <stdio.h>
#include <string.h>

static const pd_table_ops dense_ops;

static pd_dense *dense_of(pd_table *t) { return (pd_dense *)(void *)t; }

/* ==== Parallel loops ====================================================
 * The float loops of a push and of an apply run through the server's apply
 * pool (pool.h), cut into parts of PD_APPLY_GRAIN floats or more, with the
 * table's lock held by the calling connection thread throughout: the
 * lock's meaning does not change, the work under it just uses more cores.
 * Each element is computed exactly as the serial loop would (the sum adds
 * the workers in the same order, then scales, then the rule), so results
 * do not depend on the number of threads. */

typedef struct dense_job {
    pd_dense *s;
    float *dst;        /* copy, add: destination; apply: the clock's sum */
    const float *src;  /* copy, add: source; apply: a last gradient to add
                        * first, or NULL */
    uint64_t base;     /* async apply: offset of the range in the shard */
    float inv;         /* apply: mean scale (1: none) */
    int64_t step;
} dense_job;

static void job_copy(void *arg, uint64_t lo, uint64_t hi) {
    dense_job *j = arg;
    memcpy(j->dst + lo, j->src + lo, (hi - lo) * sizeof(float));
}

static void job_add(void *arg, uint64_t lo, uint64_t hi) {
    dense_job *j = arg;
    float *d = j->dst;
    const float *g = j->src;
    for (uint64_t i = lo; i < hi; i++) d[i] += g[i];
}

/* One clock's update of [lo, hi): sum (+ the last worker's gradient),
 * scaled to the mean, through the rule, part by part while it is in
 * cache. */
static void job_apply_clock(void *arg, uint64_t lo, uint64_t hi) {
    dense_job *j = arg;
    pd_dense *s = j->s;
    float *sum = j->dst;
    if (j->src)
        for (uint64_t i = lo; i < hi; i++) sum[i] += j->src[i];
    if (j->inv != 1.0f)
        for (uint64_t i = lo; i < hi; i++) sum[i] *= j->inv;
    pd_rule_apply_strided(&s->base.rule, s->params + lo, s->state ? s->state + lo : NULL,
                          s->len, sum + lo, hi - lo, j->step);
}

/* An async push of g to [base, base + n): lo, hi relative to base. */
static void job_apply_async(void *arg, uint64_t lo, uint64_t hi) {
    dense_job *j = arg;
    pd_dense *s = j->s;
    uint64_t a = j->base + lo;
    pd_rule_apply_strided(&s->base.rule, s->params + a, s->state ? s->state + a : NULL,
                          s->len, j->src + lo, hi - lo, j->step);
}

/* Apply the clock of slot sl, adding `last` (a worker's whole gradient,
 * not yet in the sum) first if not NULL.  The caller then tells the gate
 * (pd_gate_advance). */
static void apply_clock(pd_dense *s, pd_gate_slot *sl, const float *last) {
    dense_job j = {s, s->sums[pd_gate_slot_index(&s->base.gate, sl)], last, 0, 1.0f, 0};
    if (s->base.def.aggregate == PD_AGG_MEAN && sl->ndone > 1) j.inv = 1.0f / (float)sl->ndone;
    j.step = ++s->steps;
    pthread_rwlock_wrlock(&s->vrw);
    pd_pool_for(s->base.pool, s->len, PD_APPLY_GRAIN, job_apply_clock, &j);
    pthread_rwlock_unlock(&s->vrw);
}

/* The gate's callbacks (mu held). */
static void gate_apply(void *store, pd_gate_slot *sl) { apply_clock(store, sl, NULL); }

static void gate_forget(void *store, int32_t w) {
    pd_dense *s = store;
    s->wt[w].niv = 0;
    s->wt[w].covered = 0;
}

/* ==== Create and destroy ================================================ */

pd_table *pd_dense_create(uint32_t id, const pd_table_def *def,
                          const pd_table_env *env, pd_err *e) {
    pd_dense *s = pd_calloc(1, sizeof *s);
    if (!s) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory for table %u", id);
        return NULL;
    }
    pthread_rwlock_init(&s->vrw, NULL);
    s->len = def->hi - def->lo;
    pd_gate_store gs = {gate_apply, gate_forget, s};
    if (pd_table_init(&s->base, &dense_ops, id, def, env, &gs,
                      "all of it (push every element once per clock before "
                      "pulling the next)",
                      e) != 0) {
        dense_ops.destroy(&s->base);
        return NULL;
    }
    size_t sf = pd_rule_state_floats(&s->base.rule);
    s->params = pd_calloc(s->len ? s->len : 1, sizeof(float));
    s->state = sf ? pd_calloc(s->len * sf, sizeof(float)) : NULL;
    s->wt = pd_calloc((size_t)env->W, sizeof *s->wt);
    s->sums = pd_calloc((size_t)s->base.gate.window, sizeof *s->sums);
    if (!s->params || (sf && !s->state) || !s->wt || !s->sums) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory for table %u (%llu floats)", id,
                  (unsigned long long)s->len);
        dense_ops.destroy(&s->base);
        return NULL;
    }
    if (sf) pd_rule_init_state(&s->base.rule, s->state, s->len);
    return &s->base;
}

static void dense_destroy(pd_table *t) {
    pd_dense *s = dense_of(t);
    if (s->sums)
        for (int32_t i = 0; i < t->gate.window; i++) pd_free(s->sums[i]);
    pd_free(s->sums);
    if (s->wt)
        for (int32_t w = 0; w < t->W; w++) pd_free(s->wt[w].iv), pd_free(s->wt[w].stage);
    pd_free(s->wt);
    pd_free(s->params);
    pd_free(s->state);
    pd_table_fini(t);
    pthread_rwlock_destroy(&s->vrw);
    pd_free(s);
}

/* ==== Pushed ranges ===================================================== */

static int dense_check(pd_table *t, const pd_table_req *rq, pd_err *e) {
    const pd_table_def *d = &t->def;
    if (rq->keyed)
        return pd_seterr(e, PARAMD_ENOTABLE,
                         "no sparse table %u on this server (table %u is dense: "
                         "push and pull ranges of it, paramd_push, paramd_pull)",
                         t->id, t->id);
    if (rq->count == 0 || rq->off < d->lo || rq->off > d->hi || rq->count > d->hi - rq->off)
        return pd_seterr(e, PARAMD_ERANGE,
                         "table %u: range [%llu, %llu) is outside this "
                         "server's shard [%llu, %llu) of n=%llu",
                         t->id, (unsigned long long)rq->off,
                         (unsigned long long)(rq->off + rq->count),
                         (unsigned long long)d->lo, (unsigned long long)d->hi,
                         (unsigned long long)d->n);
    return 0;
}

/* Does [a, b) overlap an interval of t?  Intervals are sorted. */
static int ivl_overlaps(const pd_wtrack *t, uint64_t a, uint64_t b) {
    for (int i = 0; i < t->niv; i++)
        if (a < t->iv[i].b && t->iv[i].a < b) return 1;
    return 0;
}

/* Insert [a, b) (known not to overlap), merging neighbours. */
static int ivl_insert(pd_wtrack *t, uint64_t a, uint64_t b) {
    int i = 0;
    while (i < t->niv && t->iv[i].b < a) i++;
    /* merge with left neighbour ending exactly at a */
    if (i < t->niv && t->iv[i].b == a) {
        t->iv[i].b = b;
        if (i + 1 < t->niv && t->iv[i + 1].a == b) {
            t->iv[i].b = t->iv[i + 1].b;
            memmove(&t->iv[i + 1], &t->iv[i + 2],
                    sizeof(pd_ivl) * (size_t)(t->niv - i - 2));
            t->niv--;
        }
        return 0;
    }
    if (i < t->niv && t->iv[i].a == b) {
        t->iv[i].a = a;
        return 0;
    }
    if (t->niv == t->cap) {
        int cap = t->cap ? t->cap * 2 : 4;
        pd_ivl *iv = pd_realloc(t->iv, sizeof(pd_ivl) * (size_t)cap);
        if (!iv) return -1;
        t->iv = iv;
        t->cap = cap;
    }
    memmove(&t->iv[i + 1], &t->iv[i], sizeof(pd_ivl) * (size_t)(t->niv - i));
    t->iv[i] = (pd_ivl){a, b};
    t->niv++;
    return 0;
}

/* ==== Operations ======================================================== */

static int dense_set(pd_table *t, const pd_table_req *rq, pd_err *e) {
    pd_dense *s = dense_of(t);
    int rc = dense_check(t, rq, e);
    if (rc) return rc;
    pthread_mutex_lock(&t->gate.mu);
    pthread_rwlock_wrlock(&s->vrw);
    memcpy(s->params + (rq->off - t->def.lo), rq->in, rq->count * sizeof(float));
    pthread_rwlock_unlock(&s->vrw);
    s->stats.sets++;
    s->stats.bytes_in += rq->count * sizeof(float);
    pthread_mutex_unlock(&t->gate.mu);
    return 0;
}

/* A clocked push's piece into the sum of slot sl (everything reserved):
 * stage it, and once the worker's contribution is complete add it to the
 * sum and apply what is ready. */
static void sum_piece(pd_dense *s, pd_gate_slot *sl, int32_t worker, uint64_t a,
                      uint64_t count, const float *g, int whole, int complete) {
    pd_gate *gt = &s->base.gate;
    pd_wtrack *t = &s->wt[worker];
    float **sum = &s->sums[pd_gate_slot_index(gt, sl)];
    const float *src = g;
    if (!whole) {
        /* Stage the piece; elements never overlap within a clock, so a
         * copy (not an add) fills the stage exactly once. */
        dense_job j = {s, t->stage + a, g, 0, 1.0f, 0};
        pd_pool_for(s->base.pool, count, PD_APPLY_GRAIN, job_copy, &j);
        src = t->stage;
    }
    if (!complete) return;
    if (sl->ndone > 0 && pd_gate_ready(gt, sl, 1)) {
        /* The last gradient this clock waited for: add it, scale and
         * apply in one pass. */
        pd_gate_count(gt, sl, worker);
        apply_clock(s, sl, src);
        pd_gate_advance(gt, sl);
        pd_gate_apply_ready(gt);
        return;
    }
    if (sl->ndone > 0) {
        dense_job j = {s, *sum, src, 0, 1.0f, 0};
        pd_pool_for(s->base.pool, s->len, PD_APPLY_GRAIN, job_add, &j);
    } else if (!whole) {
        /* The first worker of the clock: its stage becomes the sum (the
         * old sum buffer is its next stage; a stage is fully written
         * before it is read). */
        float *tmp = *sum;
        *sum = t->stage;
        t->stage = tmp;
    } else {
        memcpy(*sum, g, s->len * sizeof(float));
    }
    pd_gate_count(gt, sl, worker);
    pd_gate_apply_ready(gt);
}

static int dense_push(pd_table *tb, const pd_table_req *rq, pd_err *e) {
    pd_dense *s = dense_of(tb);
    pd_gate *gt = &tb->gate;
    int32_t worker = rq->worker;
    int64_t clock = rq->clock;
    uint64_t count = rq->count;
    const float *g = rq->in;
    int rc = dense_check(tb, rq, e);
    if (rc) return rc;
    if ((rc = pd_gate_check_worker(gt, worker, e))) return rc;
    uint64_t a = rq->off - tb->def.lo, b = a + count;
    int dropped = 0;
    pthread_mutex_lock(&gt->mu);
    pd_wtrack *t = &s->wt[worker];
    if ((rc = pd_gate_admit(gt, worker, clock, &dropped, e))) goto out;
    if (clock == gt->last[worker] && ivl_overlaps(t, a, b)) {
        rc = pd_seterr(e, PARAMD_EDUP,
                       "table %u: worker %d already pushed part of [%llu, "
                       "%llu) for clock %lld",
                       tb->id, worker, (unsigned long long)rq->off,
                       (unsigned long long)(rq->off + count), (long long)clock);
        goto out;
    }
    int first = clock > gt->last[worker] || t->covered == 0;
    int whole = first && count == s->len; /* the whole shard in one push */
    /* Reserve what can fail before changing anything. */
    pd_gate_slot *sl = NULL;
    if (gt->clocked && !dropped) {
        if (!(sl = pd_gate_slot_for(gt, clock, e))) {
            rc = e->code;
            goto out;
        }
        float **sum = &s->sums[pd_gate_slot_index(gt, sl)];
        if (!*sum && !(*sum = pd_malloc(s->len * sizeof(float)))) {
            rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory for clock sums");
            goto out;
        }
        if (!whole && !t->stage && !(t->stage = pd_malloc(s->len * sizeof(float)))) {
            rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory for a partial push");
            goto out;
        }
    }
    if (clock > gt->last[worker]) {
        t->niv = 0;
        t->covered = 0;
    }
    if (ivl_insert(t, a, b) != 0) {
        rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory for push tracking");
        goto out;
    }
    t->covered += count;
    int complete = t->covered == s->len;
    pd_gate_pushed(gt, worker, clock, complete, dropped);
    if (dropped) {
        if (complete) s->stats.dropped++;
    } else if (sl) {
        /* sum holds garbage until the first worker counts (ndone 0) */
        pd_gate_open(gt, sl, clock);
        sum_piece(s, sl, worker, a, count, g, whole, complete);
    } else {
        /* state planes are len floats apart: a sub-range needs the stride */
        dense_job j = {s, NULL, g, a, 1.0f, s->steps + 1};
        pthread_rwlock_wrlock(&s->vrw);
        pd_pool_for(tb->pool, count, PD_APPLY_GRAIN, job_apply_async, &j);
        pthread_rwlock_unlock(&s->vrw);
        if (complete) s->steps++;
    }
    s->stats.pushes++;
    s->stats.bytes_in += count * sizeof(float);
out:
    if (rc) s->stats.rejected++;
    pthread_mutex_unlock(&gt->mu);
    return rc;
}

static int dense_pull(pd_table *tb, const pd_table_req *rq, pd_emit_fn emit, void *arg,
                      pd_err *e) {
    pd_dense *s = dense_of(tb);
    int rc = dense_check(tb, rq, e);
    if (rc) return rc;
    pthread_mutex_lock(&tb->gate.mu);
    if ((rc = pd_gate_pull_wait(&tb->gate, rq->worker, rq->clock, rq->wait_ms, e))) {
        pthread_mutex_unlock(&tb->gate.mu);
        return rc;
    }
    /* Emit under the values' read lock only: pulls of several workers
     * copy at once (the values cannot change: every writer holds the
     * write lock), and pushes may stage and sum meanwhile. */
    int64_t applied = pd_gate_reply_clock(&tb->gate);
    s->stats.pulls++;
    s->stats.bytes_out += rq->count * sizeof(float);
    pthread_rwlock_rdlock(&s->vrw);
    pthread_mutex_unlock(&tb->gate.mu);
    emit(arg, s->params + (rq->off - tb->def.lo), rq->count, applied);
    pthread_rwlock_unlock(&s->vrw);
    return 0;
}

static int dense_stats_line(pd_table *tb, char *out, size_t len) {
    pd_dense *s = dense_of(tb);
    pthread_mutex_lock(&tb->gate.mu);
    int n = snprintf(
        out, len,
        "table %u floats %llu bytes %llu pushes %llu pulls %llu "
        "bytes_in %llu bytes_out %llu rejected %llu dropped %llu "
        "clock %lld max_ahead %lld\n",
        tb->id, (unsigned long long)s->len,
        (unsigned long long)(s->len * 4 * (1 + pd_rule_state_floats(&tb->rule))),
        (unsigned long long)s->stats.pushes, (unsigned long long)s->stats.pulls,
        (unsigned long long)s->stats.bytes_in, (unsigned long long)s->stats.bytes_out,
        (unsigned long long)s->stats.rejected, (unsigned long long)s->stats.dropped,
        (long long)tb->gate.applied, (long long)tb->gate.max_ahead);
    pthread_mutex_unlock(&tb->gate.mu);
    return n;
}

/* ==== Checkpoints ========================================================
 * A section: the gate's clocks, then u64 len, u64 steps, u32 state
 * planes, len floats of values, planes x len floats of rule state.  The
 * snapshot is taken under the values' read lock, which every writer of
 * values and state needs for writing; the clocks and steps are read under
 * the table's lock just before, and cannot move while the read lock is
 * held (applying a clock takes the write lock).  An incremental
 * checkpoint writes a dense shard whole too: a dense table's pushes
 * touch every value, so there is nothing to leave out. */

static void dense_save(pd_table *tb, pd_ckw *w, const pd_ck_save *how) {
    pd_dense *s = dense_of(tb);
    (void)how;
    uint32_t sf = (uint32_t)pd_rule_state_floats(&tb->rule);
    pthread_mutex_lock(&tb->gate.mu);
    pd_table_put_gate(tb, w);
    pd_ckw_u64(w, s->len);
    pd_ckw_u64(w, (uint64_t)s->steps);
    pd_ckw_u32(w, sf);
    pthread_rwlock_rdlock(&s->vrw);
    pthread_mutex_unlock(&tb->gate.mu);
    pd_ckw_floats(w, s->params, s->len);
    if (sf) pd_ckw_floats(w, s->state, s->len * sf);
    pthread_rwlock_unlock(&s->vrw);
}

/* Copy what [from->lo, from->hi) and this part share, plane by plane. */
static int dense_load(pd_table *tb, pd_ckr *r, const pd_table_def *from, pd_err *e) {
    pd_dense *s = dense_of(tb);
    pd_rd *b = &r->body;
    uint64_t applied, top, len, steps;
    uint32_t sf;
    pd_get_u64(b, &applied);
    pd_get_u64(b, &top);
    pd_get_u64(b, &len);
    pd_get_u64(b, &steps);
    pd_get_u32(b, &sf);
    if (b->bad || len != from->hi - from->lo)
        return pd_seterr(e, PARAMD_EPROTO, "%s: table %u: malformed dense section", r->path,
                         tb->id);
    if (sf != pd_rule_state_floats(&tb->rule))
        return pd_seterr(e, PARAMD_EPROTO,
                         "%s: table %u keeps %u floats of rule state per parameter; "
                         "this server's rule keeps %zu (another plugin?)",
                         r->path, tb->id, sf, pd_rule_state_floats(&tb->rule));
    const pd_table_def *d = &tb->def;
    uint64_t a = from->lo > d->lo ? from->lo : d->lo;
    uint64_t z = from->hi < d->hi ? from->hi : d->hi;
    for (uint32_t plane = 0; plane <= sf; plane++) {
        float *dst = plane == 0 ? s->params : s->state + (size_t)(plane - 1) * s->len;
        if (a < z) {
            pd_ckr_floats(r, NULL, a - from->lo);
            pd_ckr_floats(r, dst + (a - d->lo), z - a);
            pd_ckr_floats(r, NULL, from->hi - z);
        } else {
            pd_ckr_floats(r, NULL, len);
        }
    }
    if (b->bad)
        return pd_seterr(e, PARAMD_EPROTO, "%s: table %u: the values end early", r->path,
                         tb->id);
    if (a < z) s->steps = (int64_t)steps;
    return 0;
}

static const pd_table_ops dense_ops = {
    "dense", dense_check, dense_set, dense_push, dense_pull, dense_stats_line,
    dense_destroy, dense_save, dense_load,
};
