/*
 * test_shard.c - the consistency rules of a shard, without networking:
 * sync aggregation (mean and sum), clocks applied once and in order,
 * rejection of stale, duplicate, too-early and unknown-worker pushes with
 * nothing changed, the deadlock check, async application, and workers
 * that join a running cluster (counted from the join clock, exact sums;
 * refused by an elastic=no table; the spec and wire form of elastic=).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "server/dense.h"
#include "table/spec.h"
#include "wire/wire.h"

/* The dense store through the table interface (server/table.h), with the
 * arguments of a call spelled out. */
static pd_table *shard_create(uint32_t id, const pd_table_def *d, int32_t W, pd_pool *pool,
                              pd_err *e) {
    pd_table_env env = {W, 0, 1, pool, 0, NULL};
    return pd_table_create(id, d, &env, e);
}
static int shard_push(pd_table *s, int32_t w, int64_t clock, uint64_t off, uint64_t count,
                      const float *g, pd_err *e) {
    pd_table_req rq = {0};
    rq.worker = w, rq.clock = clock, rq.off = off, rq.count = count, rq.in = g;
    return pd_table_push(s, &rq, e);
}
static int shard_set(pd_table *s, uint64_t off, uint64_t count, const float *v, pd_err *e) {
    pd_table_req rq = {0};
    rq.off = off, rq.count = count, rq.in = v;
    return pd_table_set(s, &rq, e);
}
static void emit_copy(void *arg, const float *v, uint64_t count, int64_t applied) {
    (void)applied;
    memcpy(arg, v, count * sizeof(float));
}
static int shard_pull(pd_table *s, int32_t w, int64_t clock, uint64_t off, uint64_t count,
                      float *dst, pd_err *e) {
    pd_table_req rq = {0};
    rq.worker = w, rq.clock = clock, rq.off = off, rq.count = count;
    return pd_table_pull(s, &rq, emit_copy, dst, e);
}

static pd_table *mk(const char *spec, uint64_t n, uint64_t lo, uint64_t hi,
                    int32_t W) {
    pd_table_def d = {0};
    pd_err e = {0};
    CHECK_OK(pd_spec_parse(spec, &d, &e));
    d.n = n, d.lo = lo, d.hi = hi;
    pd_table *s = shard_create(1, &d, W, NULL, &e);
    CHECK(s != NULL);
    return s;
}

static void fill(float *v, size_t n, float x) {
    for (size_t i = 0; i < n; i++) v[i] = x;
}

static void test_sync_mean_and_sum(void) {
    float g[4], out[4];
    pd_err e = {0};
    for (int agg = 0; agg < 2; agg++) {
        pd_table *s = mk(agg ? "consistency=sync aggregate=sum" : "consistency=sync",
                         10, 6, 10, 2);
        fill(g, 4, 1.0f);
        CHECK_OK(shard_push(s, 0, 0, 6, 4, g, &e));
        CHECK_INT_EQ(s->gate.applied, 0); /* waits for worker 1 */
        fill(g, 4, 3.0f);
        CHECK_OK(shard_push(s, 1, 0, 6, 2, g, &e)); /* in two pieces */
        CHECK_INT_EQ(s->gate.applied, 0);
        CHECK_OK(shard_push(s, 1, 0, 8, 2, g, &e));
        CHECK_INT_EQ(s->gate.applied, 1);
        CHECK_OK(shard_pull(s, 0, 1, 6, 4, out, &e));
        for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], agg ? 4.0 : 2.0, 0);
        pd_table_destroy(s);
    }
}

static void test_sync_rejections(void) {
    float g[4] = {1, 1, 1, 1}, out[4];
    pd_err e = {0};
    pd_table *s = mk("consistency=sync", 4, 0, 4, 2);
    CHECK_OK(shard_push(s, 0, 0, 0, 4, g, &e));
    /* duplicate: same worker, same clock, overlapping */
    CHECK_INT_EQ(shard_push(s, 0, 0, 1, 2, g, &e), PARAMD_EDUP);
    CHECK(strstr(e.msg, "already pushed"));
    /* unknown worker */
    CHECK_INT_EQ(shard_push(s, 2, 0, 0, 4, g, &e), PARAMD_EWORKER);
    CHECK_INT_EQ(shard_push(s, -1, 0, 0, 4, g, &e), PARAMD_EWORKER);
    /* out of range */
    CHECK_INT_EQ(shard_push(s, 1, 0, 2, 4, g, &e), PARAMD_ERANGE);
    CHECK_INT_EQ(shard_push(s, 1, 0, 0, 0, g, &e), PARAMD_ERANGE);
    CHECK_INT_EQ(shard_push(s, 1, 0, UINT64_MAX - 1, 4, g, &e), PARAMD_ERANGE);
    /* too far ahead */
    CHECK_INT_EQ(shard_push(s, 1, PD_SYNC_WINDOW, 0, 4, g, &e), PARAMD_EAHEAD);
    /* deadlock: worker 1 pulls clock 1 without pushing clock 0 */
    CHECK_INT_EQ(shard_pull(s, 1, 1, 0, 4, out, &e), PARAMD_EDEADLOCK);
    /* nothing above changed the parameters or applied a clock */
    CHECK_INT_EQ(s->gate.applied, 0);
    CHECK_OK(shard_pull(s, 1, 0, 0, 4, out, &e));
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], 0.0, 0);
    CHECK_OK(shard_push(s, 1, 0, 0, 4, g, &e));
    CHECK_INT_EQ(s->gate.applied, 1);
    /* a push for the applied clock is stale */
    CHECK_INT_EQ(shard_push(s, 1, 0, 0, 4, g, &e), PARAMD_ESTALE);
    CHECK_OK(shard_pull(s, 1, 1, 0, 4, out, &e));
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], 1.0, 0);
    pd_table_destroy(s);
}

static void test_sync_ahead_in_order(void) {
    /* worker 0 pushes clocks 0 and 1 before worker 1 pushes clock 0: both
     * clocks apply once, in order, when worker 1 catches up. */
    float g[2], out[2];
    pd_err e = {0};
    pd_table *s = mk("consistency=sync aggregate=sum rule=sgd lr=1", 2, 0, 2, 2);
    fill(g, 2, 1.0f);
    CHECK_OK(shard_push(s, 0, 0, 0, 2, g, &e));
    fill(g, 2, 10.0f);
    CHECK_OK(shard_push(s, 0, 1, 0, 2, g, &e));
    CHECK_INT_EQ(s->gate.applied, 0);
    fill(g, 2, 2.0f);
    CHECK_OK(shard_push(s, 1, 0, 0, 2, g, &e));
    CHECK_INT_EQ(s->gate.applied, 1);
    fill(g, 2, 20.0f);
    CHECK_OK(shard_push(s, 1, 1, 0, 2, g, &e));
    CHECK_INT_EQ(s->gate.applied, 2);
    CHECK_OK(shard_pull(s, 0, 2, 0, 2, out, &e));
    CHECK_NEAR(out[0], -33.0, 0); /* -(1+2) - (10+20) */
    pd_table_destroy(s);
}

typedef struct { pd_table *s; float out[2]; int rc; } puller;
static void *pull_thread(void *p) {
    puller *pl = p;
    pd_err e = {0};
    pl->rc = shard_pull(pl->s, 0, 1, 0, 2, pl->out, &e);
    return NULL;
}

static void test_sync_pull_waits(void) {
    /* worker 0 pushed clock 0 and pulls clock 1: the pull must wait until
     * worker 1's push applies clock 0, and then see the new values. */
    float g[2] = {4, 4};
    pd_err e = {0};
    pd_table *s = mk("consistency=sync", 2, 0, 2, 2);
    CHECK_OK(shard_push(s, 0, 0, 0, 2, g, &e));
    puller pl = {s, {-1, -1}, 99};
    pthread_t t;
    pthread_create(&t, NULL, pull_thread, &pl);
    CHECK_OK(shard_push(s, 1, 0, 0, 2, g, &e));
    pthread_join(t, NULL);
    CHECK_OK(pl.rc);
    CHECK_NEAR(pl.out[0], 4.0, 0);
    /* a pull waiting for a clock that never comes gives up on stop */
    CHECK_OK(shard_push(s, 0, 1, 0, 2, g, &e));
    pd_table_stop(s);
    float out[2];
    CHECK_INT_EQ(shard_pull(s, 0, 2, 0, 2, out, &e), PARAMD_ESHUTDOWN);
    pd_table_destroy(s);
}

static void test_async(void) {
    float g[3] = {1, 2, 3}, out[3];
    pd_err e = {0};
    pd_table *s = mk("rule=add", 3, 0, 3, 2);
    CHECK_OK(shard_push(s, 0, 0, 0, 3, g, &e));
    CHECK_OK(shard_push(s, 1, 0, 0, 3, g, &e));
    CHECK_INT_EQ(shard_push(s, 1, 0, 0, 1, g, &e), PARAMD_EDUP);
    CHECK_OK(shard_push(s, 1, 1, 0, 3, g, &e));
    CHECK_INT_EQ(shard_push(s, 1, 0, 0, 3, g, &e), PARAMD_ESTALE);
    CHECK_OK(shard_pull(s, 0, 7, 0, 3, out, &e)); /* async pulls never wait */
    CHECK_NEAR(out[0], 3.0, 0);
    CHECK_NEAR(out[2], 9.0, 0);
    CHECK_OK(shard_set(s, 1, 1, g, &e));
    CHECK_OK(shard_pull(s, 0, 0, 0, 3, out, &e));
    CHECK_NEAR(out[1], 1.0, 0);
    pd_table_destroy(s);
}

/* Joins (shard.h, "Joins"): 3 slots, slot 2 vacant; a joiner is prepared
 * while clock 1 is being aggregated, committed at J = 3 (as if another
 * server's frontier were 3): clocks 1 and 2 never count it, clock 3 does. */
static void test_join(void) {
    float g[4], out[4];
    pd_err e = {0};
    pd_table *s = mk("consistency=sync aggregate=sum", 4, 0, 4, 3);
    pd_table_worker_gone(s, 2); /* a spare slot: vacant */
    fill(g, 4, 1);
    CHECK_OK(shard_push(s, 0, 0, 0, 4, g, &e));
    fill(g, 4, 2);
    CHECK_OK(shard_push(s, 1, 0, 0, 4, g, &e));
    CHECK_INT_EQ(s->gate.applied, 1); /* 3 */
    fill(g, 4, 10);
    CHECK_OK(shard_push(s, 0, 1, 0, 2, g, &e)); /* clock 1 begun (a piece) */
    /* prepare: the frontier is the first clock nobody pushed for */
    CHECK_INT_EQ(pd_table_join_begin(s, 2), 2);
    fill(g, 4, 10);
    CHECK_OK(shard_push(s, 0, 1, 2, 2, g, &e));
    fill(g, 4, 20);
    CHECK_OK(shard_push(s, 1, 1, 0, 4, g, &e));
    CHECK_INT_EQ(s->gate.applied, 2); /* clock 1 did not wait for the joiner: 33 */
    fill(g, 4, 100);
    CHECK_OK(shard_push(s, 0, 2, 0, 4, g, &e));
    fill(g, 4, 200);
    CHECK_OK(shard_push(s, 1, 2, 0, 4, g, &e));
    CHECK_INT_EQ(s->gate.applied, 2); /* between the phases clock 2 waits */
    /* the joiner may not push before it is committed at J (pending: >= 2) */
    pd_table_join_at(s, 2, 3);
    CHECK_INT_EQ(s->gate.applied, 3); /* clock 2 without the joiner: 333 */
    fill(g, 4, 7);
    CHECK_INT_EQ(shard_push(s, 2, 2, 0, 4, g, &e), PARAMD_ESTALE);
    CHECK(strstr(e.msg, "joined the cluster at clock 3"));
    /* the joiner's first pull, at J, does not wait on itself */
    CHECK_OK(shard_pull(s, 2, 3, 0, 4, out, &e));
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], 333, 0);
    fill(g, 4, 1000);
    CHECK_OK(shard_push(s, 0, 3, 0, 4, g, &e));
    fill(g, 4, 2000);
    CHECK_OK(shard_push(s, 1, 3, 0, 4, g, &e));
    CHECK_INT_EQ(s->gate.applied, 3); /* clock 3 waits for the joiner */
    CHECK_INT_EQ(shard_pull(s, 2, 4, 0, 4, out, &e), PARAMD_EDEADLOCK);
    fill(g, 4, 3000);
    CHECK_OK(shard_push(s, 2, 3, 0, 1, g, &e)); /* in two pieces */
    CHECK_INT_EQ(s->gate.applied, 3);
    CHECK_OK(shard_push(s, 2, 3, 1, 3, g, &e));
    CHECK_INT_EQ(s->gate.applied, 4);
    CHECK_OK(shard_pull(s, 2, 4, 0, 4, out, &e));
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], 6333, 0);
    /* it dies and another worker takes its rank: a fresh record */
    pd_table_worker_gone(s, 2);
    CHECK_INT_EQ(shard_push(s, 2, 4, 0, 4, g, &e), PARAMD_EWORKER);
    CHECK_INT_EQ(pd_table_join_begin(s, 2), 4);
    pd_table_join_at(s, 2, 4);
    for (int w = 0; w < 3; w++) {
        fill(g, 4, (float)(w + 1));
        CHECK_OK(shard_push(s, w, 4, 0, 4, g, &e));
    }
    CHECK_INT_EQ(s->gate.applied, 5);
    CHECK_OK(shard_pull(s, 0, 5, 0, 4, out, &e));
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], 6339, 0);
    pd_table_destroy(s);

    /* mean over the workers counted for each clock; ssp:1 and a joiner */
    s = mk("consistency=ssp:1", 2, 0, 2, 2);
    pd_table_worker_gone(s, 1);
    fill(g, 2, 4);
    CHECK_OK(shard_push(s, 0, 0, 0, 2, g, &e)); /* applied at once: 4 */
    CHECK_OK(shard_push(s, 0, 1, 0, 2, g, &e)); /* 8 */
    CHECK_INT_EQ(pd_table_join_begin(s, 1), 2);
    pd_table_join_at(s, 1, 2);
    CHECK_OK(shard_pull(s, 1, 2, 0, 2, out, &e)); /* needs clock 0 only */
    fill(g, 2, 2);
    CHECK_OK(shard_push(s, 0, 2, 0, 2, g, &e));
    CHECK_INT_EQ(s->gate.applied, 2);
    fill(g, 2, 6);
    CHECK_OK(shard_push(s, 1, 2, 0, 2, g, &e));
    CHECK_INT_EQ(s->gate.applied, 3);
    CHECK_OK(shard_pull(s, 1, 3, 0, 2, out, &e));
    CHECK_NEAR(out[0], 12, 0); /* 4 + 4 + mean(2, 6) */
    pd_table_destroy(s);

    /* elastic=no: the joiner is kept out and told why; clocks go on */
    s = mk("consistency=sync elastic=no", 2, 0, 2, 2);
    pd_table_worker_gone(s, 1);
    CHECK_INT_EQ(pd_table_join_begin(s, 1), -1);
    pd_table_join_at(s, 1, 0);
    fill(g, 2, 1);
    CHECK_OK(shard_push(s, 0, 0, 0, 2, g, &e));
    CHECK_INT_EQ(s->gate.applied, 1);
    CHECK_INT_EQ(shard_push(s, 1, 1, 0, 2, g, &e), PARAMD_EWORKER);
    CHECK(strstr(e.msg, "elastic=no"));
    CHECK_INT_EQ(s->gate.applied, 1);
    pd_table_destroy(s);

    /* async: the joiner pushes at once, whatever its predecessor's clock */
    s = mk("consistency=async", 2, 0, 2, 2);
    CHECK_OK(shard_push(s, 1, 9, 0, 2, g, &e));
    pd_table_worker_gone(s, 1);
    CHECK_INT_EQ(pd_table_join_begin(s, 1), -1);
    pd_table_join_at(s, 1, 3);
    CHECK_OK(shard_push(s, 1, 3, 0, 2, g, &e));
    CHECK_OK(shard_pull(s, 1, 3, 0, 2, out, &e));
    CHECK_NEAR(out[0], 2, 0);
    pd_table_destroy(s);

    /* a worker that dies after pushing never stands in for a live one:
     * its push stays in the mean, the clock still waits for worker 0 */
    s = mk("consistency=sync aggregate=sum", 2, 0, 2, 2);
    fill(g, 2, 5);
    CHECK_OK(shard_push(s, 1, 0, 0, 2, g, &e));
    pd_table_worker_gone(s, 1);
    CHECK_INT_EQ(s->gate.applied, 0);
    fill(g, 2, 1);
    CHECK_OK(shard_push(s, 0, 0, 0, 2, g, &e));
    CHECK_INT_EQ(s->gate.applied, 1);
    CHECK_OK(shard_pull(s, 0, 1, 0, 2, out, &e));
    CHECK_NEAR(out[0], 6, 0);
    pd_table_destroy(s);

    /* spec and wire: elastic=no is canonical and travels as a flag; a
     * dense definition without it is byte for byte as before */
    pd_table_def d = {0}, o;
    char canon[PD_MAX_SPEC + 1];
    CHECK_OK(pd_spec_parse("elastic=no consistency=sync", &d, &e));
    pd_spec_canonical(&d, canon, sizeof canon);
    CHECK_STR_EQ(canon, "rule=add consistency=sync aggregate=mean elastic=no");
    CHECK(!pd_spec_elastic(canon));
    CHECK(pd_spec_elastic("rule=add consistency=sync aggregate=mean"));
    CHECK_INT_EQ(pd_spec_parse("elastic=maybe", &o, &e), PARAMD_EINVAL);
    d.n = 4, d.lo = 0, d.hi = 4;
    pd_buf b, b2;
    pd_buf_init(&b);
    pd_table_def_encode(&b, &d);
    CHECK_OK(pd_table_def_decode(b.p, b.len, &o, &e));
    CHECK(!o.elastic && o.kind == PD_TABLE_DENSE);
    d.elastic = 1;
    pd_buf_init(&b2);
    pd_table_def_encode(&b2, &d);
    CHECK_INT_EQ(b2.len + 8, b.len); /* u32 kind, u32 flags */
    CHECK_OK(pd_table_def_decode(b2.p, b2.len, &o, &e));
    CHECK(o.elastic);
    pd_buf_free(&b);
    pd_buf_free(&b2);
    printf("ok: joins: counted from the join clock, exact sums, elastic=no, async\n");
}

/* The apply threads change nothing but speed: the same pushes (whole and
 * in pieces, sync with mean, ssp, async; adam, whose state and bias
 * correction would show any element applied twice, skipped or mixed up)
 * give the same floats, bit for bit, with a pool of 3 threads as with
 * none.  The shard is large enough to be cut into many parts. */
static void run_pushes(const char *spec, pd_pool *pool, float *out) {
    enum { N = 700001, W = 3 };
    pd_table_def d = {0};
    pd_err e = {0};
    CHECK_OK(pd_spec_parse(spec, &d, &e));
    d.n = N + 10, d.lo = 10, d.hi = N + 10;
    pd_table *s = shard_create(1, &d, W, pool, &e);
    CHECK(s != NULL);
    float *g = malloc(N * sizeof(float));
    CHECK(g != NULL);
    for (int64_t c = 0; c < 4; c++) {
        for (int w = 0; w < W; w++) {
            for (uint64_t i = 0; i < N; i++)
                g[i] = (float)((i * 7 + (uint64_t)w * 13 + (uint64_t)c * 5) % 101) / 50.0f - 1.0f;
            if (w == 1) { /* in three uneven pieces */
                CHECK_OK(shard_push(s, w, c, 10, 1000, g, &e));
                CHECK_OK(shard_push(s, w, c, 1010 + 300000, N - 1000 - 300000,
                                       g + 1000 + 300000, &e));
                CHECK_OK(shard_push(s, w, c, 1010, 300000, g + 1000, &e));
            } else {
                CHECK_OK(shard_push(s, w, c, 10, N, g, &e));
            }
        }
    }
    CHECK_OK(shard_pull(s, 0, 4, 10, N, out, &e));
    if (d.consistency != PD_CONS_ASYNC) CHECK_INT_EQ(s->gate.applied, 4);
    pd_table_destroy(s);
    free(g);
}

static void test_pool_same_floats(void) {
    static const char *const specs[] = {
        "consistency=sync rule=adam lr=0.01",
        "consistency=ssp:2 aggregate=sum rule=momentum lr=0.1",
        "consistency=async rule=adam lr=0.01",
    };
    enum { N = 700001 };
    float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
    CHECK(a && b);
    pd_pool *pool = pd_pool_create(3);
    CHECK(pool != NULL);
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        run_pushes(specs[k], NULL, a);
        run_pushes(specs[k], pool, b);
        if (memcmp(a, b, N * sizeof(float)) != 0) {
            for (uint64_t i = 0; i < N; i++)
                if (a[i] != b[i])
                    CHECK_FAIL_("%s: element %llu is %.9g alone, %.9g with the pool",
                                specs[k], (unsigned long long)i, a[i], b[i]);
        }
        int moved = 0;
        for (uint64_t i = 0; i < N && !moved; i++) moved = a[i] != 0;
        CHECK(moved); /* the updates did something */
    }
    uint64_t par, busy;
    pd_pool_counts(pool, &par, &busy);
    CHECK(par > 0);
    pd_pool_destroy(pool);
    free(a), free(b);
}

int main(void) {
    test_pool_same_floats();
    test_sync_mean_and_sum();
    test_sync_rejections();
    test_sync_ahead_in_order();
    test_sync_pull_waits();
    test_async();
    test_join();
    printf("test_shard: ok\n");
    return 0;
}
