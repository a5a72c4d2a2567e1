/*
 * pool.c - the apply threads: a parallel for over a range (see pool.h).
 *
 * One job slot.  A caller that finds it free fills it (function, range,
 * part size), bumps the generation and wakes the pool's threads; everyone,
 * the caller included, then claims parts with an atomic counter until none
 * is left.  The caller returns when every part is done and no pool thread
 * is still inside the job, and only then is the slot free again: so a
 * pool thread that wakes late can never read the fields of the next job
 * halfway through their change (it enters under the lock, counts itself in
 * `inside`, and finds the parts of a finished job all claimed).
 *
 * A caller that finds the slot taken runs its loop inline instead of
 * queueing: connection threads of other shards keep their own core busy,
 * and no thread ever waits for another's update.  A caller whose own parts
 * are done sleeps on `idle` at once, without spinning or yielding (parts
 * take hundreds of microseconds or more, and a yield on a loaded machine
 * can lose the CPU for a whole time slice: see shm.c, "Waiting").
 */
#include "common/pool.h"

#include <pthread.h>

#include "common/common.h"

struct pd_pool {
    pthread_mutex_t mu; /* guards busy, gen, inside, stop, the job fields'
                         * writes, and the counters below */
    pthread_cond_t go;  /* the pool's threads: a new generation or stop */
    pthread_cond_t idle; /* the caller: all parts done, nobody inside */
    int nth;            /* pool threads (the caller is one more) */
    pthread_t *th;
    int stop;
    int busy;           /* a job is in the slot */
    uint64_t gen;       /* bumped per job */
    int inside;         /* pool threads working on the current job */
    /* the job: written under mu while !busy && inside == 0 */
    pd_pool_fn fn;
    void *arg;
    uint64_t n;
    uint32_t nparts;
    uint32_t next;      /* atomic: next part to claim */
    uint32_t done;      /* atomic: parts finished */
    uint64_t n_parallel, n_inline_busy;
};

/* Claim and run parts of the current job until none is left.  Returns 1
 * if this call finished the job's last part. */
static int run_parts(pd_pool *p) {
    int last = 0;
    for (;;) {
        uint32_t k = __atomic_fetch_add(&p->next, 1, __ATOMIC_ACQ_REL);
        if (k >= p->nparts) break;
        /* balanced cut: every part has floor(n/nparts) >= grain or one
         * more element */
        uint64_t lo = p->n / p->nparts * k + (k < p->n % p->nparts ? k : p->n % p->nparts);
        uint64_t hi = lo + p->n / p->nparts + (k < p->n % p->nparts ? 1 : 0);
        p->fn(p->arg, lo, hi);
        if (__atomic_add_fetch(&p->done, 1, __ATOMIC_ACQ_REL) == p->nparts) last = 1;
    }
    return last;
}

static void *pool_main(void *arg) {
    pd_pool *p = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen) pthread_cond_wait(&p->go, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        if (!p->busy) continue; /* woke after that job ended */
        p->inside++;
        pthread_mutex_unlock(&p->mu);
        run_parts(p);
        pthread_mutex_lock(&p->mu);
        if (--p->inside == 0) pthread_cond_signal(&p->idle);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

pd_pool *pd_pool_create(int threads) {
    if (threads <= 1) return NULL;
    pd_pool *p = pd_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->th = pd_calloc((size_t)threads - 1, sizeof *p->th);
    if (!p->th) {
        pd_free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->idle, NULL);
    for (int i = 0; i < threads - 1; i++) {
        if (pthread_create(&p->th[i], NULL, pool_main, p) != 0) {
            p->nth = i;
            pd_pool_destroy(p);
            return NULL;
        }
        p->nth = i + 1;
    }
    return p;
}

void pd_pool_destroy(pd_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nth; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->idle);
    pd_free(p->th);
    pd_free(p);
}

int pd_pool_threads(const pd_pool *p) { return p ? p->nth + 1 : 1; }

void pd_pool_counts(pd_pool *p, uint64_t *parallel, uint64_t *inline_busy) {
    *parallel = *inline_busy = 0;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    *parallel = p->n_parallel;
    *inline_busy = p->n_inline_busy;
    pthread_mutex_unlock(&p->mu);
}

void pd_pool_for(pd_pool *p, uint64_t n, uint64_t grain, pd_pool_fn fn,
                 void *arg) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    if (!p || n < 2 * grain) {
        fn(arg, 0, n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (p->busy || p->inside > 0) {
        p->n_inline_busy++;
        pthread_mutex_unlock(&p->mu);
        fn(arg, 0, n);
        return;
    }
    /* Parts: at least grain each, and a few per thread so that a thread
     * the scheduler delays holds up little of the loop. */
    uint64_t want = (uint64_t)(p->nth + 1) * 4;
    uint64_t nparts = n / grain < want ? n / grain : want; /* >= 2 here */
    p->busy = 1;
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->nparts = (uint32_t)nparts;
    __atomic_store_n(&p->next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
    p->gen++;
    p->n_parallel++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);

    run_parts(p);
    pthread_mutex_lock(&p->mu);
    while (__atomic_load_n(&p->done, __ATOMIC_ACQUIRE) < p->nparts || p->inside > 0)
        pthread_cond_wait(&p->idle, &p->mu);
    p->busy = 0;
    pthread_mutex_unlock(&p->mu);
}
