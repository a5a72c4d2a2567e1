/*
 * shard.c - one server's part of a dense table: storage, push aggregation
 * per clock, application through the update rule, and pulls that wait for
 * their clock (see shard.h for the invariants).
 *
 * Locking: one mutex per shard, held for the whole of a push, and a
 * read-write lock on the values: writers of params/state (set, an async
 * push, a clock's apply) take it for writing inside the mutex, a pull
 * takes it for reading and then drops the mutex, so the pulls of several
 * workers copy out at once, and pushes stage and sum meanwhile.  Updates
 * to one shard are serialised, but each one's
 * float loops are cut into disjoint ranges run in parallel by the
 * server's apply threads (pool.h; "Parallel loops" below); different
 * tables and different servers proceed in parallel too.  A pull that must
 * wait sleeps on the condition variable with the mutex released.
 */
#include "server/shard.h"

#include <math.h>
#include <string.h>

#include "table/spec.h"

/* ==== Create and destroy ================================================ */

pd_shard *pd_shard_create(uint32_t id, const pd_table_def *def, int32_t W,
                          pd_pool *pool, pd_err *e) {
    pd_shard *s = pd_calloc(1, sizeof *s);
    if (!s) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory for table %u", id);
        return NULL;
    }
    s->id = id;
    s->pool = pool;
    s->def = *def;
    s->len = def->hi - def->lo;
    s->W = W;
    s->rule.kind = (pd_rule_kind)def->rule;
    pd_spec_hyper(def, &s->rule.hyper);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_rwlock_init(&s->vrw, NULL);
    char msg[PD_ERRMSG_MAX];
    if (def->rule == PD_RULE_PLUGIN &&
        pd_rule_load_plugin(&s->rule, def->plugin, msg, sizeof msg) != 0) {
        pd_seterr(e, PARAMD_EINVAL, "table %u: %s", id, msg);
        pd_shard_destroy(s);
        return NULL;
    }
    /* Hyper-parameters arrive over the wire: check them like a spec. */
    if (pd_rule_check(&s->rule, msg, sizeof msg) != 0) {
        pd_seterr(e, PARAMD_EINVAL, "table %u: %s", id, msg);
        pd_shard_destroy(s);
        return NULL;
    }
    size_t sf = pd_rule_state_floats(&s->rule);
    s->params = pd_calloc(s->len ? s->len : 1, sizeof(float));
    s->state = sf ? pd_calloc(s->len * sf, sizeof(float)) : NULL;
    s->wt = pd_calloc((size_t)W, sizeof *s->wt);
    s->window = (int32_t)def->staleness + PD_SYNC_WINDOW;
    s->slots = pd_calloc((size_t)s->window, sizeof *s->slots);
    int mok = s->wt && pd_members_init(&s->mem, W, (int)def->elastic) == 0;
    if (!s->params || (sf && !s->state) || !mok || !s->slots) {
        pd_seterr(e, PARAMD_ENOMEM,
                  "out of memory for table %u (%llu floats)", id,
                  (unsigned long long)s->len);
        pd_shard_destroy(s);
        return NULL;
    }
    if (sf) pd_rule_init_state(&s->rule, s->state, s->len);
    for (int32_t w = 0; w < W; w++) s->wt[w].clock = s->wt[w].done_clock = -1;
    return s;
}

void pd_shard_destroy(pd_shard *s) {
    if (!s) return;
    if (s->slots)
        for (int i = 0; i < s->window; i++)
            pd_free(s->slots[i].sum), pd_free(s->slots[i].who);
    pd_free(s->slots);
    if (s->wt)
        for (int32_t w = 0; w < s->W; w++) pd_free(s->wt[w].iv), pd_free(s->wt[w].stage);
    pd_free(s->wt);
    pd_members_free(&s->mem);
    pd_free(s->params);
    pd_free(s->state);
    pd_rule_release(&s->rule);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_rwlock_destroy(&s->vrw);
    pd_free(s);
}

int pd_shard_same_def(const pd_shard *s, const pd_table_def *d) {
    const pd_table_def *a = &s->def;
    if (a->n != d->n || a->lo != d->lo || a->hi != d->hi || a->rule != d->rule ||
        a->consistency != d->consistency || a->aggregate != d->aggregate ||
        a->staleness != d->staleness || a->backup != d->backup ||
        a->nhyper != d->nhyper || a->elastic != d->elastic ||
        strcmp(a->plugin, d->plugin) != 0)
        return 0;
    return memcmp(a->hyper, d->hyper, sizeof(double) * a->nhyper) == 0;
}

/* ==== Helpers =========================================================== */

int pd_shard_check_range(const pd_shard *s, uint64_t off, uint64_t count,
                         pd_err *e) {
    const pd_table_def *d = &s->def;
    if (count == 0 || off < d->lo || off > d->hi || count > d->hi - off)
        return pd_seterr(e, PARAMD_ERANGE,
                         "table %u: range [%llu, %llu) is outside this "
                         "server's shard [%llu, %llu) of n=%llu",
                         s->id, (unsigned long long)off,
                         (unsigned long long)(off + count),
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

static int clocked(const pd_shard *s) {
    return s->def.consistency != PD_CONS_ASYNC;
}


/* ==== Parallel loops over the shard =====================================
 * The float loops of a push and of an apply run through the server's apply
 * pool (pool.h), cut into parts of PD_APPLY_GRAIN floats or more, with the
 * shard's lock held by the calling connection thread throughout: the
 * lock's meaning does not change, the work under it just uses more cores.
 * Each element is computed exactly as the serial loop would (the sum adds
 * the workers in the same order, then scales, then the rule), so results
 * do not depend on the number of threads. */

typedef struct shard_job {
    pd_shard *s;
    float *dst;        /* copy, add: destination; apply: the clock's sum */
    const float *src;  /* copy, add: source; apply: a last gradient to add
                        * first, or NULL */
    uint64_t base;     /* async apply: offset of the range in the shard */
    float inv;         /* apply: mean scale (1: none) */
    int64_t step;
} shard_job;

static void job_copy(void *arg, uint64_t lo, uint64_t hi) {
    shard_job *j = arg;
    memcpy(j->dst + lo, j->src + lo, (hi - lo) * sizeof(float));
}

static void job_add(void *arg, uint64_t lo, uint64_t hi) {
    shard_job *j = arg;
    float *d = j->dst;
    const float *g = j->src;
    for (uint64_t i = lo; i < hi; i++) d[i] += g[i];
}

/* One clock's update of [lo, hi): sum (+ the last worker's gradient),
 * scaled to the mean, through the rule, part by part while it is in
 * cache. */
static void job_apply_clock(void *arg, uint64_t lo, uint64_t hi) {
    shard_job *j = arg;
    pd_shard *s = j->s;
    float *sum = j->dst;
    if (j->src)
        for (uint64_t i = lo; i < hi; i++) sum[i] += j->src[i];
    if (j->inv != 1.0f)
        for (uint64_t i = lo; i < hi; i++) sum[i] *= j->inv;
    pd_rule_apply_strided(&s->rule, s->params + lo, s->state ? s->state + lo : NULL,
                          s->len, sum + lo, hi - lo, j->step);
}

/* An async push of g to [base, base + n): lo, hi relative to base. */
static void job_apply_async(void *arg, uint64_t lo, uint64_t hi) {
    shard_job *j = arg;
    pd_shard *s = j->s;
    uint64_t a = j->base + lo;
    pd_rule_apply_strided(&s->rule, s->params + a, s->state ? s->state + a : NULL,
                          s->len, j->src + lo, hi - lo, j->step);
}

/* Apply clock `applied` from slot sl, adding `last` (a worker's whole
 * gradient, not yet in the sum) first if not NULL. */
static void apply_slot(pd_shard *s, pd_slot *sl, const float *last) {
    shard_job j = {s, sl->sum, last, 0, 1.0f, 0};
    if (s->def.aggregate == PD_AGG_MEAN && sl->ndone > 1) j.inv = 1.0f / (float)sl->ndone;
    j.step = ++s->steps;
    pthread_rwlock_wrlock(&s->vrw);
    pd_pool_for(s->pool, s->len, PD_APPLY_GRAIN, job_apply_clock, &j);
    pthread_rwlock_unlock(&s->vrw);
    sl->active = 0;
    s->applied++;
    pthread_cond_broadcast(&s->cv);
}

/* Is slot sl's clock the next to apply, and complete with `more` more
 * workers counted? */
static int slot_ready(const pd_shard *s, const pd_slot *sl, int more) {
    return sl->active && sl->clock == s->applied &&
           sl->ncount + more >= pd_members_need(&s->mem, s->applied, s->def.backup);
}

/* Apply every complete clock in order. */
static void apply_ready(pd_shard *s) {
    for (;;) {
        pd_slot *sl = &s->slots[s->applied % s->window];
        if (!slot_ready(s, sl, 0)) return;
        apply_slot(s, sl, NULL);
    }
}

/* ==== Operations ======================================================== */

int pd_shard_set(pd_shard *s, uint64_t off, uint64_t count, const float *v,
                 pd_err *e) {
    int rc = pd_shard_check_range(s, off, count, e);
    if (rc) return rc;
    pthread_mutex_lock(&s->mu);
    pthread_rwlock_wrlock(&s->vrw);
    memcpy(s->params + (off - s->def.lo), v, count * sizeof(float));
    pthread_rwlock_unlock(&s->vrw);
    s->stats.sets++;
    s->stats.bytes_in += count * sizeof(float);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int pd_shard_push(pd_shard *s, int32_t worker, int64_t clock, uint64_t off,
                  uint64_t count, const float *g, pd_err *e) {
    int rc = pd_shard_check_range(s, off, count, e);
    if (rc) return rc;
    if (worker < 0 || worker >= s->W)
        return pd_seterr(e, PARAMD_EWORKER,
                         "push from worker %d, but the cluster has %d workers",
                         worker, s->W);
    uint64_t a = off - s->def.lo, b = a + count;
    int dropped = 0;
    pthread_mutex_lock(&s->mu);
    pd_wtrack *t = &s->wt[worker];
    if (s->mem.st[worker] == PD_MEM_REFUSED) {
        rc = pd_seterr(e, PARAMD_EWORKER,
                       "table %u does not take workers that join a running "
                       "cluster (elastic=no in its spec), and worker %d "
                       "joined late",
                       s->id, worker);
        goto out;
    }
    if (s->mem.st[worker] != PD_MEM_LIVE) {
        rc = pd_seterr(e, PARAMD_EWORKER,
                       "table %u: worker %d was removed from the cluster "
                       "(it left, died or missed its heartbeats)",
                       s->id, worker);
        goto out;
    }
    if (clocked(s) && clock < s->mem.from[worker]) {
        rc = pd_seterr(e, PARAMD_ESTALE,
                       "table %u: worker %d joined the cluster at clock %lld "
                       "and pushed for clock %lld (a joiner starts at the "
                       "clock paramd_get_clock gives after connecting)",
                       s->id, worker, (long long)s->mem.from[worker],
                       (long long)clock);
        goto out;
    }
    if (clock < t->clock) {
        rc = pd_seterr(e, PARAMD_ESTALE,
                       "table %u: worker %d pushed for clock %lld after "
                       "pushing for clock %lld",
                       s->id, worker, (long long)clock, (long long)t->clock);
        goto out;
    }
    if (clocked(s)) {
        if (clock < s->applied) {
            if (!s->def.backup) {
                rc = pd_seterr(e, PARAMD_ESTALE,
                               "table %u: worker %d pushed for clock %lld, "
                               "which was already applied (next clock is "
                               "%lld)",
                               s->id, worker, (long long)clock,
                               (long long)s->applied);
                goto out;
            }
            dropped = 1; /* a backup worker's late push: count, drop */
        }
        if (clock >= s->applied + s->window) {
            rc = pd_seterr(e, PARAMD_EAHEAD,
                           "table %u: worker %d pushed for clock %lld but the "
                           "table is at clock %lld (window %d)",
                           s->id, worker, (long long)clock,
                           (long long)s->applied, s->window);
            goto out;
        }
    }
    if (clock == t->clock && ivl_overlaps(t, a, b)) {
        rc = pd_seterr(e, PARAMD_EDUP,
                       "table %u: worker %d already pushed part of [%llu, "
                       "%llu) for clock %lld",
                       s->id, worker, (unsigned long long)off,
                       (unsigned long long)(off + count), (long long)clock);
        goto out;
    }
    int first = clock > t->clock || t->covered == 0;
    int whole = first && count == s->len; /* the whole shard in one push */
    /* Reserve what can fail before changing anything. */
    pd_slot *sl = NULL;
    if (clocked(s) && !dropped) {
        sl = &s->slots[clock % s->window];
        if (!sl->sum && !(sl->sum = pd_malloc(s->len * sizeof(float)))) {
            rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory for clock sums");
            goto out;
        }
        if (pd_members_who_reserve(&sl->who, &sl->whocap, sl->active ? sl->ndone : 0)) {
            rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory for clock sums");
            goto out;
        }
        if (!whole && !t->stage && !(t->stage = pd_malloc(s->len * sizeof(float)))) {
            rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory for a partial push");
            goto out;
        }
    }
    if (clock > t->clock) {
        t->clock = clock;
        t->niv = 0;
        t->covered = 0;
    }
    if (ivl_insert(t, a, b) != 0) {
        rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory for push tracking");
        goto out;
    }
    t->covered += count;
    if (!dropped && clock >= s->top) s->top = clock + 1;
    int complete = t->covered == s->len;
    if (complete) t->done_clock = clock;
    if (dropped) {
        if (complete) s->stats.dropped++;
    } else if (sl) {
        if (!sl->active) {
            sl->active = 1;
            sl->clock = clock;
            sl->ndone = 0; /* sum holds garbage until the first worker counts */
            sl->ncount = 0;
        }
        const float *src = g;
        if (!whole) {
            /* Stage the piece; elements never overlap within a clock, so a
             * copy (not an add) fills the stage exactly once. */
            shard_job j = {s, t->stage + a, g, 0, 1.0f, 0};
            pd_pool_for(s->pool, count, PD_APPLY_GRAIN, job_copy, &j);
            src = t->stage;
        }
        if (complete) {
            if (sl->ndone > 0 && slot_ready(s, sl, 1)) {
                /* The last gradient this clock waited for: add it, scale
                 * and apply in one pass. */
                sl->who[sl->ndone++] = worker;
                sl->ncount++;
                apply_slot(s, sl, src);
                apply_ready(s);
                goto counted;
            }
            if (sl->ndone > 0) {
                shard_job j = {s, sl->sum, src, 0, 1.0f, 0};
                pd_pool_for(s->pool, s->len, PD_APPLY_GRAIN, job_add, &j);
            } else if (!whole) {
                /* The first worker of the clock: its stage becomes the sum
                 * (the old sum buffer is its next stage; a stage is fully
                 * written before it is read). */
                float *tmp = sl->sum;
                sl->sum = t->stage;
                t->stage = tmp;
            } else {
                memcpy(sl->sum, g, s->len * sizeof(float));
            }
            sl->who[sl->ndone++] = worker;
            sl->ncount++;
            apply_ready(s);
        }
    } else {
        /* state planes are len floats apart: a sub-range needs the stride */
        shard_job j = {s, NULL, g, a, 1.0f, s->steps + 1};
        pthread_rwlock_wrlock(&s->vrw);
        pd_pool_for(s->pool, count, PD_APPLY_GRAIN, job_apply_async, &j);
        pthread_rwlock_unlock(&s->vrw);
        if (complete) s->steps++;
    }
counted:
    s->stats.pushes++;
    s->stats.bytes_in += count * sizeof(float);
out:
    if (rc) s->stats.rejected++;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void emit_copy(void *arg, const float *v, uint64_t count, int64_t applied) {
    (void)applied;
    memcpy(arg, v, count * sizeof(float));
}

int pd_shard_pull(pd_shard *s, int32_t worker, int64_t clock, uint64_t off,
                  uint64_t count, float *dst, pd_err *e) {
    return pd_shard_pull_emit(s, worker, clock, off, count, emit_copy, dst, e);
}

int pd_shard_pull_emit(pd_shard *s, int32_t worker, int64_t clock, uint64_t off,
                       uint64_t count, pd_emit_fn emit, void *arg, pd_err *e) {
    int rc = pd_shard_check_range(s, off, count, e);
    if (rc) return rc;
    pthread_mutex_lock(&s->mu);
    if (clocked(s)) {
        /* A pull at clock c needs clocks up to c - s - 1 applied. */
        int64_t need = clock - (int64_t)s->def.staleness;
        if (s->applied < need && pd_members_counts(&s->mem, worker, need - 1) &&
            !s->def.backup && s->wt[worker].done_clock < need - 1) {
            rc = pd_seterr(e, PARAMD_EDEADLOCK,
                           "table %u: pull at clock %lld waits for clock %lld "
                           "to be applied, but worker %d has not pushed all "
                           "of it (push every element once per clock before "
                           "pulling the next)",
                           s->id, (long long)clock, (long long)(need - 1),
                           worker);
            goto out;
        }
        while (s->applied < need && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->applied < need) {
            rc = pd_seterr(e, PARAMD_ESHUTDOWN,
                           "table %u: server stopping while a pull waited "
                           "for clock %lld",
                           s->id, (long long)need - 1);
            goto out;
        }
        if (clock - s->applied > s->stats.max_ahead)
            s->stats.max_ahead = clock - s->applied;
    }
    /* Emit under the values' read lock only: pulls of several workers
     * copy at once (the values cannot change: every writer holds the
     * write lock), and pushes may stage and sum meanwhile. */
    int64_t applied = clocked(s) ? s->applied : 0;
    s->stats.pulls++;
    s->stats.bytes_out += count * sizeof(float);
    pthread_rwlock_rdlock(&s->vrw);
    pthread_mutex_unlock(&s->mu);
    emit(arg, s->params + (off - s->def.lo), count, applied);
    pthread_rwlock_unlock(&s->vrw);
    return 0;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void pd_shard_worker_gone(pd_shard *s, int32_t w) {
    if (w < 0 || w >= s->W) return;
    pthread_mutex_lock(&s->mu);
    if (pd_members_gone(&s->mem, w)) {
        for (int i = 0; i < s->window; i++)
            if (s->slots[i].active)
                s->slots[i].ncount -= pd_members_who_forget(s->slots[i].who,
                                                            s->slots[i].ndone, w);
        if (clocked(s)) apply_ready(s);
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

int64_t pd_shard_join_begin(pd_shard *s, int32_t w) {
    if (w < 0 || w >= s->W) return -1;
    pthread_mutex_lock(&s->mu);
    pd_wtrack *t = &s->wt[w]; /* a predecessor's record: not the joiner's */
    t->clock = t->done_clock = -1;
    t->niv = 0;
    t->covered = 0;
    int64_t F = -1;
    if (!clocked(s)) {
        pd_members_join(&s->mem, w, 0);
    } else {
        int64_t f = s->applied > s->top ? s->applied : s->top;
        if (pd_members_join(&s->mem, w, f)) F = f;
    }
    pthread_mutex_unlock(&s->mu);
    return F;
}

void pd_shard_join_at(pd_shard *s, int32_t w, int64_t J) {
    if (w < 0 || w >= s->W) return;
    pthread_mutex_lock(&s->mu);
    pd_members_join(&s->mem, w, clocked(s) ? J : 0);
    if (clocked(s)) apply_ready(s);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void pd_shard_stop(pd_shard *s) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}
