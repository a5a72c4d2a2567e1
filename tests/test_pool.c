/*
 * test_pool.c - the apply threads (src/common/pool.c): every element of a
 * loop runs exactly once whatever n, grain and thread count; parts are at
 * least `grain` long; loops from several threads at once (the pool busy:
 * inline) all complete; a NULL pool runs inline; results do not depend on
 * the number of threads (a shard with a pool gives the same floats, bit
 * for bit, as one without: see test_shard's test_pool_same_floats).
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "common/pool.h"

typedef struct cover {
    uint32_t *hits;   /* atomic increments per element */
    uint64_t grain, n;
    int short_part;   /* a part shorter than grain was seen */
    pthread_t owner;
    int other_thread; /* some part ran on another thread */
} cover;

static void count_fn(void *arg, uint64_t lo, uint64_t hi) {
    cover *c = arg;
    if (hi - lo < c->grain && !(lo == 0 && hi == c->n))
        __atomic_store_n(&c->short_part, 1, __ATOMIC_RELAXED);
    if (!pthread_equal(pthread_self(), c->owner))
        __atomic_store_n(&c->other_thread, 1, __ATOMIC_RELAXED);
    for (uint64_t i = lo; i < hi; i++) __atomic_add_fetch(&c->hits[i], 1, __ATOMIC_RELAXED);
}

static void run_cover(pd_pool *p, uint64_t n, uint64_t grain, int *other) {
    cover c = {calloc(n ? n : 1, sizeof(uint32_t)), grain, n, 0, pthread_self(), 0};
    CHECK(c.hits != NULL);
    pd_pool_for(p, n, grain, count_fn, &c);
    for (uint64_t i = 0; i < n; i++)
        if (c.hits[i] != 1)
            CHECK_FAIL_("n=%llu grain=%llu: element %llu ran %u times",
                        (unsigned long long)n, (unsigned long long)grain,
                        (unsigned long long)i, c.hits[i]);
    CHECK_INT_EQ(c.short_part, 0);
    if (other) *other |= c.other_thread;
    free(c.hits);
}

static void test_cover(void) {
    static const uint64_t ns[] = {0, 1, 7, 100, 4096, 65537, 1000003};
    static const uint64_t grains[] = {1, 3, 1024, 1 << 20};
    for (int threads = 0; threads <= 4; threads++) {
        pd_pool *p = pd_pool_create(threads);
        CHECK(threads <= 1 ? p == NULL : p != NULL);
        CHECK_INT_EQ(pd_pool_threads(p), threads <= 1 ? 1 : threads);
        int other = 0;
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t j = 0; j < sizeof grains / sizeof grains[0]; j++)
                run_cover(p, ns[i], grains[j], &other);
        if (threads <= 1) CHECK_INT_EQ(other, 0);
        uint64_t par, busy;
        pd_pool_counts(p, &par, &busy);
        if (threads > 1) CHECK(par > 0); /* large loops were split */
        pd_pool_destroy(p);
    }
}

/* Several threads run loops on one pool at once; each must complete
 * exactly (the ones that find the pool busy run inline). */
typedef struct racer {
    pd_pool *p;
    int rounds;
} racer;

static void *race_main(void *arg) {
    racer *r = arg;
    for (int k = 0; k < r->rounds; k++) run_cover(r->p, 200000 + (uint64_t)k, 1000, NULL);
    return NULL;
}

static void test_concurrent_callers(void) {
    pd_pool *p = pd_pool_create(3);
    CHECK(p != NULL);
    pthread_t th[4];
    racer r = {p, 30};
    for (int i = 0; i < 4; i++) CHECK_INT_EQ(pthread_create(&th[i], NULL, race_main, &r), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    uint64_t par, busy;
    pd_pool_counts(p, &par, &busy);
    CHECK_INT_EQ(par + busy, 4 * 30); /* every loop went one way or the other */
    pd_pool_destroy(p);
}

/* The pool's threads really run parts: the first part to start waits
 * until a second one has started, which can only be on another thread.
 * (If no pool thread ever ran, the wait gives up after 20 s and fails.) */
typedef struct meet {
    int started;
    int met;
} meet;

#include "common/common.h"

static void meet_fn(void *arg, uint64_t lo, uint64_t hi) {
    (void)lo, (void)hi;
    meet *m = arg;
    if (__atomic_add_fetch(&m->started, 1, __ATOMIC_ACQ_REL) == 1) {
        double end = pd_now() + 20;
        while (__atomic_load_n(&m->started, __ATOMIC_ACQUIRE) < 2 && pd_now() < end)
            sched_yield();
        if (__atomic_load_n(&m->started, __ATOMIC_ACQUIRE) >= 2)
            __atomic_store_n(&m->met, 1, __ATOMIC_RELEASE);
    }
}

static void test_really_parallel(void) {
    pd_pool *p = pd_pool_create(2);
    CHECK(p != NULL);
    meet m = {0, 0};
    pd_pool_for(p, 2000, 1000, meet_fn, &m); /* two parts */
    CHECK_INT_EQ(m.started, 2);
    CHECK_INT_EQ(m.met, 1);
    pd_pool_destroy(p);
}

int main(void) {
    test_cover();
    test_really_parallel();
    test_concurrent_callers();
    pd_pool_destroy(NULL);
    printf("test_pool: ok\n");
    return 0;
}
