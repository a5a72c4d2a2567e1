/*
 * test_shard.c - the consistency rules of a shard, without networking:
 * sync aggregation (mean and sum), clocks applied once and in order,
 * rejection of stale, duplicate, too-early and unknown-worker pushes with
 * nothing changed, the deadlock check, and async application.
 */
#include <pthread.h>
#include <string.h>

#include "check.h"
#include "server/shard.h"
#include "wire/spec.h"

static pd_shard *mk(const char *spec, uint64_t n, uint64_t lo, uint64_t hi,
                    int32_t W) {
    pd_table_def d = {0};
    pd_err e = {0};
    CHECK_OK(pd_spec_parse(spec, &d, &e));
    d.n = n, d.lo = lo, d.hi = hi;
    pd_shard *s = pd_shard_create(1, &d, W, &e);
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
        pd_shard *s = mk(agg ? "consistency=sync aggregate=sum" : "consistency=sync",
                         10, 6, 10, 2);
        fill(g, 4, 1.0f);
        CHECK_OK(pd_shard_push(s, 0, 0, 6, 4, g, &e));
        CHECK_INT_EQ(s->applied, 0); /* waits for worker 1 */
        fill(g, 4, 3.0f);
        CHECK_OK(pd_shard_push(s, 1, 0, 6, 2, g, &e)); /* in two pieces */
        CHECK_INT_EQ(s->applied, 0);
        CHECK_OK(pd_shard_push(s, 1, 0, 8, 2, g, &e));
        CHECK_INT_EQ(s->applied, 1);
        CHECK_OK(pd_shard_pull(s, 0, 1, 6, 4, out, &e));
        for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], agg ? 4.0 : 2.0, 0);
        pd_shard_destroy(s);
    }
}

static void test_sync_rejections(void) {
    float g[4] = {1, 1, 1, 1}, out[4];
    pd_err e = {0};
    pd_shard *s = mk("consistency=sync", 4, 0, 4, 2);
    CHECK_OK(pd_shard_push(s, 0, 0, 0, 4, g, &e));
    /* duplicate: same worker, same clock, overlapping */
    CHECK_INT_EQ(pd_shard_push(s, 0, 0, 1, 2, g, &e), PARAMD_EDUP);
    CHECK(strstr(e.msg, "already pushed"));
    /* unknown worker */
    CHECK_INT_EQ(pd_shard_push(s, 2, 0, 0, 4, g, &e), PARAMD_EWORKER);
    CHECK_INT_EQ(pd_shard_push(s, -1, 0, 0, 4, g, &e), PARAMD_EWORKER);
    /* out of range */
    CHECK_INT_EQ(pd_shard_push(s, 1, 0, 2, 4, g, &e), PARAMD_ERANGE);
    CHECK_INT_EQ(pd_shard_push(s, 1, 0, 0, 0, g, &e), PARAMD_ERANGE);
    CHECK_INT_EQ(pd_shard_push(s, 1, 0, UINT64_MAX - 1, 4, g, &e), PARAMD_ERANGE);
    /* too far ahead */
    CHECK_INT_EQ(pd_shard_push(s, 1, PD_SYNC_WINDOW, 0, 4, g, &e), PARAMD_EAHEAD);
    /* deadlock: worker 1 pulls clock 1 without pushing clock 0 */
    CHECK_INT_EQ(pd_shard_pull(s, 1, 1, 0, 4, out, &e), PARAMD_EDEADLOCK);
    /* nothing above changed the parameters or applied a clock */
    CHECK_INT_EQ(s->applied, 0);
    CHECK_OK(pd_shard_pull(s, 1, 0, 0, 4, out, &e));
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], 0.0, 0);
    CHECK_OK(pd_shard_push(s, 1, 0, 0, 4, g, &e));
    CHECK_INT_EQ(s->applied, 1);
    /* a push for the applied clock is stale */
    CHECK_INT_EQ(pd_shard_push(s, 1, 0, 0, 4, g, &e), PARAMD_ESTALE);
    CHECK_OK(pd_shard_pull(s, 1, 1, 0, 4, out, &e));
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], 1.0, 0);
    pd_shard_destroy(s);
}

static void test_sync_ahead_in_order(void) {
    /* worker 0 pushes clocks 0 and 1 before worker 1 pushes clock 0: both
     * clocks apply once, in order, when worker 1 catches up. */
    float g[2], out[2];
    pd_err e = {0};
    pd_shard *s = mk("consistency=sync aggregate=sum rule=sgd lr=1", 2, 0, 2, 2);
    fill(g, 2, 1.0f);
    CHECK_OK(pd_shard_push(s, 0, 0, 0, 2, g, &e));
    fill(g, 2, 10.0f);
    CHECK_OK(pd_shard_push(s, 0, 1, 0, 2, g, &e));
    CHECK_INT_EQ(s->applied, 0);
    fill(g, 2, 2.0f);
    CHECK_OK(pd_shard_push(s, 1, 0, 0, 2, g, &e));
    CHECK_INT_EQ(s->applied, 1);
    fill(g, 2, 20.0f);
    CHECK_OK(pd_shard_push(s, 1, 1, 0, 2, g, &e));
    CHECK_INT_EQ(s->applied, 2);
    CHECK_OK(pd_shard_pull(s, 0, 2, 0, 2, out, &e));
    CHECK_NEAR(out[0], -33.0, 0); /* -(1+2) - (10+20) */
    pd_shard_destroy(s);
}

typedef struct { pd_shard *s; float out[2]; int rc; } puller;
static void *pull_thread(void *p) {
    puller *pl = p;
    pd_err e = {0};
    pl->rc = pd_shard_pull(pl->s, 0, 1, 0, 2, pl->out, &e);
    return NULL;
}

static void test_sync_pull_waits(void) {
    /* worker 0 pushed clock 0 and pulls clock 1: the pull must wait until
     * worker 1's push applies clock 0, and then see the new values. */
    float g[2] = {4, 4};
    pd_err e = {0};
    pd_shard *s = mk("consistency=sync", 2, 0, 2, 2);
    CHECK_OK(pd_shard_push(s, 0, 0, 0, 2, g, &e));
    puller pl = {s, {-1, -1}, 99};
    pthread_t t;
    pthread_create(&t, NULL, pull_thread, &pl);
    CHECK_OK(pd_shard_push(s, 1, 0, 0, 2, g, &e));
    pthread_join(t, NULL);
    CHECK_OK(pl.rc);
    CHECK_NEAR(pl.out[0], 4.0, 0);
    /* a pull waiting for a clock that never comes gives up on stop */
    CHECK_OK(pd_shard_push(s, 0, 1, 0, 2, g, &e));
    pd_shard_stop(s);
    float out[2];
    CHECK_INT_EQ(pd_shard_pull(s, 0, 2, 0, 2, out, &e), PARAMD_ESHUTDOWN);
    pd_shard_destroy(s);
}

static void test_async(void) {
    float g[3] = {1, 2, 3}, out[3];
    pd_err e = {0};
    pd_shard *s = mk("rule=add", 3, 0, 3, 2);
    CHECK_OK(pd_shard_push(s, 0, 0, 0, 3, g, &e));
    CHECK_OK(pd_shard_push(s, 1, 0, 0, 3, g, &e));
    CHECK_INT_EQ(pd_shard_push(s, 1, 0, 0, 1, g, &e), PARAMD_EDUP);
    CHECK_OK(pd_shard_push(s, 1, 1, 0, 3, g, &e));
    CHECK_INT_EQ(pd_shard_push(s, 1, 0, 0, 3, g, &e), PARAMD_ESTALE);
    CHECK_OK(pd_shard_pull(s, 0, 7, 0, 3, out, &e)); /* async pulls never wait */
    CHECK_NEAR(out[0], 3.0, 0);
    CHECK_NEAR(out[2], 9.0, 0);
    CHECK_OK(pd_shard_set(s, 1, 1, g, &e));
    CHECK_OK(pd_shard_pull(s, 0, 0, 0, 3, out, &e));
    CHECK_NEAR(out[1], 1.0, 0);
    pd_shard_destroy(s);
}

int main(void) {
    test_sync_mean_and_sum();
    test_sync_rejections();
    test_sync_ahead_in_order();
    test_sync_pull_waits();
    test_async();
    printf("test_shard: ok\n");
    return 0;
}
