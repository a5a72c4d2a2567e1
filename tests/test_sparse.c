/*
 * test_sparse.c - sparse tables without networking: the key -> row hash map
 * (growth, many keys, every key value allowed), jump consistent hash
 * (balance, minimal movement when servers are added), deterministic row
 * initialisation, a server's sparse table (rows created on first touch,
 * duplicates summed then applied once, 1 server = 3 servers bit for bit,
 * keys of another server refused, sync aggregation and its rejections,
 * workers that leave, all-or-nothing under allocation failures), the rows
 * an incremental checkpoint writes (changed since its base, a failed
 * checkpoint's rows kept, all rows for an unknown base), and the spec and
 * wire encoding of sparse table definitions.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/hash.h"
#include "common/keymap.h"
#include "server/sparse.h"
#include "table/spec.h"

/* The sparse store through the table interface (server/table.h), with the
 * arguments of a call spelled out. */
static pd_sparse *sparse_create(uint32_t id, const pd_table_def *d, int32_t W, int32_t index,
                                int32_t S, pd_pool *pool, pd_err *e) {
    pd_table_env env = {W, index, S, pool, 0, NULL};
    return (pd_sparse *)(void *)pd_table_create(id, d, &env, e);
}
static int sparse_push(pd_sparse *t, int32_t w, int64_t clock, const uint64_t *keys,
                       uint64_t n, float *g, pd_err *e) {
    pd_table_req rq = {0};
    rq.worker = w, rq.clock = clock, rq.keyed = 1, rq.keys = keys, rq.nkeys = n, rq.io = g;
    return pd_table_push(&t->base, &rq, e);
}
static void emit_none(void *arg, const float *v, uint64_t count, int64_t applied) {
    (void)arg, (void)v, (void)count, (void)applied;
}
static int sparse_pull(pd_sparse *t, int32_t w, int64_t clock, const uint64_t *keys,
                       uint64_t n, float *out, pd_err *e) {
    pd_table_req rq = {0};
    rq.worker = w, rq.clock = clock, rq.keyed = 1, rq.keys = keys, rq.nkeys = n, rq.io = out;
    return pd_table_pull(&t->base, &rq, emit_none, NULL, e);
}
static void sparse_destroy(pd_sparse *t) {
    if (t) pd_table_destroy(&t->base);
}
#include "wire/wire.h"

/* ==== Helpers =========================================================== */

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rnd(void) {
    rng_state += PD_GOLDEN64;
    return pd_mix64(rng_state);
}

static pd_table_def sparse_def(const char *spec, uint32_t dim) {
    pd_table_def d = {0};
    pd_err e = {0};
    d.kind = PD_TABLE_SPARSE;
    if (pd_spec_parse(spec, &d, &e) != 0) CHECK_FAIL_("spec '%s': %s", spec, e.msg);
    d.n = dim, d.lo = 0, d.hi = dim;
    return d;
}

static pd_sparse *mk(const char *spec, uint32_t dim, int32_t W, int32_t index,
                     int32_t S) {
    pd_table_def d = sparse_def(spec, dim);
    pd_err e = {0};
    pd_sparse *t = sparse_create(1, &d, W, index, S, NULL, &e);
    if (!t) CHECK_FAIL_("create: %s", e.msg);
    return t;
}

/* Pull one row (as a tool would: worker -1, clock 0). */
static void pull1(pd_sparse *t, uint64_t key, float *row) {
    pd_err e = {0};
    if (sparse_pull(t, -1, 0, &key, 1, row, &e) != 0) CHECK_FAIL_("pull: %s", e.msg);
}

/* ==== Hash map ========================================================== */

static void test_keymap(void) {
    pd_keymap m;
    pd_keymap_init(&m);
    CHECK(pd_keymap_get(&m, 0) == PD_KEYMAP_NONE);
    int added;
    /* every key value is allowed, 0 and UINT64_MAX too */
    CHECK_INT_EQ(pd_keymap_put(&m, 0, 7, &added), 7);
    CHECK(added);
    CHECK_INT_EQ(pd_keymap_put(&m, UINT64_MAX, 8, &added), 8);
    CHECK_INT_EQ(pd_keymap_put(&m, 0, 9, &added), 7); /* existing value wins */
    CHECK(!added);
    CHECK_INT_EQ(m.count, 2);
    pd_keymap_clear(&m);
    CHECK_INT_EQ(m.count, 0);
    CHECK(pd_keymap_get(&m, 0) == PD_KEYMAP_NONE);
    /* growth: a million keys, consecutive ones and random ones */
    enum { N = 1000000 };
    static uint64_t keys[N];
    for (uint32_t i = 0; i < N; i++) keys[i] = i < N / 2 ? i : rnd();
    size_t caps = 0, last = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint32_t v = pd_keymap_put(&m, keys[i], i, &added);
        if (v != i) CHECK_FAIL_("key %llu: value %u, expected %u (random collision?)",
                                (unsigned long long)keys[i], v, i);
        if (m.cap != last) caps++, last = m.cap;
        CHECK(m.count * 4 <= m.cap * 3); /* load factor <= 3/4 */
    }
    CHECK_INT_EQ(m.count, N);
    CHECK(caps > 10); /* it grew, many times */
    for (uint32_t i = 0; i < N; i++) CHECK_INT_EQ(pd_keymap_get(&m, keys[i]), i);
    for (uint64_t i = N / 2; i < N / 2 + 1000; i++) CHECK(pd_keymap_get(&m, i) == PD_KEYMAP_NONE);
    /* reserve, then inserting allocates nothing */
    pd_keymap r;
    pd_keymap_init(&r);
    CHECK_OK(pd_keymap_reserve(&r, 1000));
    size_t cap = r.cap;
    pd_alloc_fail_after(1); /* the next allocation would fail */
    for (uint64_t i = 0; i < 1000; i++) pd_keymap_put(&r, i * 977, (uint32_t)i, &added);
    pd_alloc_fail_after(0);
    CHECK_INT_EQ(r.cap, cap);
    CHECK_INT_EQ(r.count, 1000);
    /* a failed growth changes nothing */
    pd_alloc_fail_after(1);
    CHECK(pd_keymap_reserve(&r, 100000) != 0);
    pd_alloc_fail_after(0);
    CHECK_INT_EQ(r.cap, cap);
    CHECK_INT_EQ(pd_keymap_get(&r, 977), 1);
    pd_keymap_free(&r);
    pd_keymap_free(&m);
    pd_keymap_free(NULL);
    printf("ok: keymap (1M keys, %zu growths)\n", caps);
}

/* ==== Jump consistent hash ============================================== */

static void test_jump_hash(void) {
    enum { N = 400000, SMAX = 12 };
    static uint32_t where[SMAX + 1][N];
    for (uint32_t S = 1; S <= SMAX; S++) {
        uint64_t count[SMAX] = {0};
        for (uint32_t i = 0; i < N; i++) {
            /* consecutive user keys: the worst case for a weak hash */
            uint32_t k = pd_sparse_server(i, S);
            CHECK(k < S);
            where[S][i] = k;
            count[k]++;
        }
        for (uint32_t k = 0; k < S; k++) {
            double share = (double)count[k] * S / N;
            if (fabs(share - 1.0) > 0.02)
                CHECK_FAIL_("S=%u: server %u holds %.4f of its fair share", S, k, share);
        }
    }
    for (uint32_t S = 1; S < SMAX; S++) {
        /* from S to S+1 servers: a key either stays or moves to the new
         * server, and about 1/(S+1) of them move */
        uint64_t moved = 0;
        for (uint32_t i = 0; i < N; i++) {
            if (where[S + 1][i] == where[S][i]) continue;
            CHECK_INT_EQ(where[S + 1][i], S);
            moved++;
        }
        double frac = (double)moved / N, want = 1.0 / (S + 1);
        if (fabs(frac - want) > 0.01)
            CHECK_FAIL_("S=%u -> %u moved %.4f of the keys, expected %.4f", S, S + 1,
                        frac, want);
    }
    /* pinned: the partition is part of the protocol and must never change */
    CHECK_INT_EQ(pd_jump_hash(0, 1), 0);
    CHECK_INT_EQ(pd_sparse_server(123456789, 1), 0);
    static const uint32_t pin[8] = {0, 2, 2, 1, 2, 3, 3, 4};
    for (int i = 0; i < 8; i++) CHECK_INT_EQ(pd_sparse_server((uint64_t)i * 1000003, 5), pin[i]);
    printf("ok: jump hash balanced (S=1..%d), minimal movement, pinned\n", SMAX);
}

/* ==== Row initialisation ================================================ */

static void test_init_rows(void) {
    float a[64], b[64], c[64];
    pd_table_def z = sparse_def("init=zeros seed=1", 64);
    pd_sparse_init_row(&z, 42, a);
    for (int j = 0; j < 64; j++) CHECK(a[j] == 0.0f);

    pd_table_def u = sparse_def("init=uniform:0.5 seed=7", 64);
    pd_table_def n = sparse_def("init=normal:2 seed=7", 64);
    pd_table_def n7 = sparse_def("init=normal:2 seed=7", 7);
    pd_table_def n8 = sparse_def("init=normal:2 seed=8", 64);
    /* deterministic, and the same element whatever the dim */
    pd_sparse_init_row(&n, 99, a);
    pd_sparse_init_row(&n, 99, b);
    pd_sparse_init_row(&n7, 99, c);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, 7 * sizeof(float)) == 0);
    /* another seed or another key: another row */
    pd_sparse_init_row(&n8, 99, b);
    CHECK(memcmp(a, b, sizeof a) != 0);
    pd_sparse_init_row(&n, 100, b);
    CHECK(memcmp(a, b, sizeof a) != 0);
    /* distributions, over many keys */
    double su = 0, su2 = 0, sn = 0, sn2 = 0, m = 0;
    for (uint64_t key = 0; key < 4000; key++) {
        pd_sparse_init_row(&u, key, a);
        pd_sparse_init_row(&n, key, b);
        for (int j = 0; j < 64; j++) {
            CHECK(a[j] >= -0.5f && a[j] < 0.5f);
            su += a[j], su2 += (double)a[j] * a[j];
            sn += b[j], sn2 += (double)b[j] * b[j];
            m++;
        }
    }
    CHECK_NEAR(su / m, 0.0, 0.005);
    CHECK_NEAR(su2 / m, 0.25 / 3, 0.005);  /* var of U(-a, a) = a^2/3 */
    CHECK_NEAR(sn / m, 0.0, 0.02);
    CHECK_NEAR(sqrt(sn2 / m), 2.0, 0.01);  /* std = s */
    /* pinned: a key's initial row must not change between versions */
    pd_sparse_init_row(&n, 1, a);
    pd_sparse_init_row(&u, 1, b);
    CHECK(a[0] == -0.252854735f && a[1] == 1.81506479f);
    CHECK(b[0] == -0.157178596f && b[1] == -0.227970079f);
    printf("ok: row init: deterministic, independent of dim, distributions, pinned\n");
}

/* ==== A server's sparse table =========================================== */

/* Reference for one row: init, then the rule applied with gradient g. */
static void ref_row(const pd_table_def *d, uint64_t key, const float *const *gs,
                    int ng, float *w) {
    uint32_t dim = (uint32_t)d->n;
    pd_rule rule = {0};
    rule.kind = (pd_rule_kind)d->rule;
    pd_spec_hyper(d, &rule.hyper);
    size_t k = pd_rule_state_floats(&rule);
    float state[4 * 64];
    pd_sparse_init_row(d, key, w);
    pd_rule_init_state(&rule, state, dim);
    for (int i = 0; i < ng; i++) pd_rule_apply(&rule, w, k ? state : NULL, gs[i], dim, i + 1);
}

static void test_push_pull_dups(void) {
    enum { D = 8 };
    const char *spec = "rule=adagrad lr=0.1 init=normal:0.1 seed=3";
    pd_table_def d = sparse_def(spec, D);
    pd_sparse *t = mk(spec, D, 1, 0, 1);
    pd_err e = {0};
    float row[D], want[D];
    /* a pull creates the row with its initial values */
    pull1(t, 77, row);
    ref_row(&d, 77, NULL, 0, want);
    CHECK(memcmp(row, want, sizeof row) == 0);
    CHECK_INT_EQ(t->nrows, 1);
    /* a push with key 5 three times and key 9 once */
    uint64_t keys[4] = {5, 9, 5, 5};
    float g[4 * D], g5[D], g9[D];
    for (int i = 0; i < 4 * D; i++) g[i] = (float)((i * 7) % 11) * 0.25f - 1.0f;
    for (int j = 0; j < D; j++) {
        g5[j] = g[0 * D + j] + g[2 * D + j] + g[3 * D + j]; /* in request order */
        g9[j] = g[1 * D + j];
    }
    CHECK_OK(sparse_push(t, 0, 0, keys, 4, g, &e));
    CHECK_INT_EQ(t->nrows, 3);
    const float *gs5[1] = {g5}, *gs9[1] = {g9};
    pull1(t, 5, row);
    ref_row(&d, 5, gs5, 1, want); /* summed, applied once */
    CHECK(memcmp(row, want, sizeof row) == 0);
    pull1(t, 9, row);
    ref_row(&d, 9, gs9, 1, want);
    CHECK(memcmp(row, want, sizeof row) == 0);
    CHECK_INT_EQ(t->stats.pushes, 1);
    CHECK_INT_EQ(t->stats.keys_pushed, 4);
    /* an empty push is fine and changes nothing */
    CHECK_OK(sparse_push(t, 0, 0, NULL, 0, NULL, &e));
    CHECK_INT_EQ(t->nrows, 3);
    /* a tool may not push */
    CHECK_INT_EQ(sparse_push(t, -1, 0, keys, 1, g, &e), PARAMD_EWORKER);
    /* clocks never go back */
    CHECK_OK(sparse_push(t, 0, 5, keys, 1, g, &e));
    CHECK_INT_EQ(sparse_push(t, 0, 4, keys, 1, g, &e), PARAMD_ESTALE);
    sparse_destroy(t);
    printf("ok: push and pull, duplicates summed then applied once\n");
}

/* The same pushes on 1 server and, routed by key, on 3: the same rows. */
static void test_one_vs_three(void) {
    enum { D = 16, STEPS = 30, B = 200 };
    const char *specs[] = {"rule=adam lr=0.01 init=uniform:0.1 seed=11",
                           "rule=ftrl lr=0.1 l1=0.01 init=normal:0.05",
                           "rule=momentum lr=0.05 init=zeros"};
    for (int sp = 0; sp < 3; sp++) {
        pd_sparse *one = mk(specs[sp], D, 1, 0, 1), *three[3];
        for (int k = 0; k < 3; k++) three[k] = mk(specs[sp], D, 1, k, 3);
        pd_err e = {0};
        static uint64_t keys[B], part[3][B];
        static float g[B * D], gp[3][B * D];
        uint64_t np[3];
        for (int st = 0; st < STEPS; st++) {
            for (int i = 0; i < B; i++) {
                keys[i] = rnd() % 500; /* duplicates in most pushes */
                for (int j = 0; j < D; j++) g[i * D + j] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
            }
            np[0] = np[1] = np[2] = 0;
            for (int i = 0; i < B; i++) {
                uint32_t k = pd_sparse_server(keys[i], 3);
                part[k][np[k]] = keys[i];
                memcpy(gp[k] + np[k] * D, g + i * D, D * sizeof(float));
                np[k]++;
            }
            CHECK_OK(sparse_push(one, 0, st, keys, B, g, &e));
            for (int k = 0; k < 3; k++) CHECK_OK(sparse_push(three[k], 0, st, part[k], np[k], gp[k], &e));
        }
        size_t total = 0;
        for (int k = 0; k < 3; k++) total += three[k]->nrows;
        CHECK_INT_EQ(total, one->nrows);
        for (uint64_t key = 0; key < 600; key++) {
            float a[D], b[D];
            pull1(one, key, a);
            pull1(three[pd_sparse_server(key, 3)], key, b);
            if (memcmp(a, b, sizeof a) != 0)
                CHECK_FAIL_("%s: key %llu differs on 1 and 3 servers", specs[sp],
                            (unsigned long long)key);
        }
        /* a key sent to the wrong server is refused, nothing changes */
        uint64_t wrong = 0;
        while (pd_sparse_server(wrong, 3) == 1) wrong++;
        size_t before = three[1]->nrows;
        CHECK_INT_EQ(sparse_push(three[1], 0, STEPS, &wrong, 1, g, &e), PARAMD_ERANGE);
        CHECK(strstr(e.msg, "belongs to server"));
        float tmp[D];
        CHECK_INT_EQ(sparse_pull(three[1], 0, STEPS, &wrong, 1, tmp, &e), PARAMD_ERANGE);
        CHECK_INT_EQ(three[1]->nrows, before);
        sparse_destroy(one);
        for (int k = 0; k < 3; k++) sparse_destroy(three[k]);
    }
    printf("ok: 1 server and 3 servers give identical rows (adam, ftrl, momentum)\n");
}

static void test_growth(void) {
    enum { D = 4, N = 300000, B = 1000 };
    pd_sparse *t = mk("rule=add", D, 1, 0, 1);
    pd_err e = {0};
    static uint64_t keys[B];
    static float g[B * D];
    for (int i = 0; i < B * D; i++) g[i] = 1.0f;
    /* every key pushed twice, in different batches: exact sums with add */
    for (int pass = 0; pass < 2; pass++)
        for (uint64_t base = 0; base < N; base += B) {
            for (int i = 0; i < B; i++) keys[i] = (base + (uint64_t)i) * 0x10001ull;
            CHECK_OK(sparse_push(t, 0, 0, keys, B, g, &e));
        }
    CHECK_INT_EQ(t->nrows, N);
    CHECK(pd_sparse_bytes(t) >= (size_t)N * D * 4);
    for (uint64_t i = 0; i < N; i += 997) {
        float row[D];
        pull1(t, i * 0x10001ull, row);
        for (int j = 0; j < D; j++) CHECK(row[j] == 2.0f);
    }
    CHECK_INT_EQ(t->nrows, N); /* pulls of known keys create nothing */
    char line[512];
    CHECK(pd_table_stats_line(&t->base, line, sizeof line) > 0);
    CHECK(strstr(line, "kind sparse dim 4 rows 300000 "));
    sparse_destroy(t);
    printf("ok: growth to %d rows; %s", N, line);
}

static void test_sync(void) {
    enum { D = 2 };
    pd_sparse *t = mk("rule=add consistency=sync", D, 2, 0, 1);
    pd_err e = {0};
    uint64_t k1[2] = {1, 2}, k2[1] = {1};
    float g1[4] = {1, 2, 3, 4}, g2[2] = {10, 20}, row[D];
    CHECK_OK(sparse_push(t, 0, 0, k1, 2, g1, &e));
    CHECK_INT_EQ(t->base.gate.applied, 0);
    /* one push per worker and clock */
    CHECK_INT_EQ(sparse_push(t, 0, 0, k2, 1, g2, &e), PARAMD_EDUP);
    /* worker 0 pulling clock 2 before pushing clock 1 would wait forever */
    CHECK_INT_EQ(sparse_pull(t, 0, 2, k2, 1, row, &e), PARAMD_EDEADLOCK);
    /* too far ahead */
    CHECK_INT_EQ(sparse_push(t, 1, PD_SYNC_WINDOW, k2, 1, g2, &e), PARAMD_EAHEAD);
    CHECK_OK(sparse_push(t, 1, 0, k2, 1, g2, &e));
    CHECK_INT_EQ(t->base.gate.applied, 1);
    /* mean of the two workers' pushes, key by key */
    CHECK_OK(sparse_pull(t, 0, 1, k2, 1, row, &e));
    CHECK(row[0] == (1 + 10) / 2.0f && row[1] == (2 + 20) / 2.0f);
    uint64_t two = 2;
    CHECK_OK(sparse_pull(t, 0, 1, &two, 1, row, &e));
    CHECK(row[0] == 1.5f && row[1] == 2.0f);
    /* stale */
    CHECK_INT_EQ(sparse_push(t, 1, 0, k2, 1, g2, &e), PARAMD_ESTALE);
    /* empty pushes count: clock 1 is applied with no keys */
    CHECK_OK(sparse_push(t, 0, 1, NULL, 0, NULL, &e));
    CHECK_OK(sparse_push(t, 1, 1, NULL, 0, NULL, &e));
    CHECK_INT_EQ(t->base.gate.applied, 2);
    /* a worker that leaves is no longer waited for */
    CHECK_OK(sparse_push(t, 0, 2, k2, 1, g2, &e));
    CHECK_INT_EQ(t->base.gate.applied, 2);
    pd_table_worker_gone(&t->base, 1);
    CHECK_INT_EQ(t->base.gate.applied, 3);
    CHECK_OK(sparse_pull(t, 0, 3, k2, 1, row, &e));
    CHECK(row[0] == 5.5f + 10 && row[1] == 11.0f + 20); /* mean of one */
    CHECK_INT_EQ(sparse_push(t, 1, 3, k2, 1, g2, &e), PARAMD_EWORKER);
    sparse_destroy(t);

    /* sum, 3 workers, clocks completing out of order */
    t = mk("rule=sgd lr=0.5 consistency=sync aggregate=sum", D, 3, 0, 1);
    float g[2] = {2, 4};
    for (int w = 0; w < 3; w++) CHECK_OK(sparse_push(t, w, 1, k2, 1, g, &e));
    CHECK_INT_EQ(t->base.gate.applied, 0); /* clock 1 complete, clock 0 not */
    /* clocks never go back: after clock 1, clock 0 is stale for a worker */
    CHECK_INT_EQ(sparse_push(t, 0, 0, k2, 1, g, &e), PARAMD_ESTALE);
    CHECK_INT_EQ(t->base.gate.applied, 0);
    sparse_destroy(t);
    printf("ok: sync: mean and sum per key, EDUP, EDEADLOCK, EAHEAD, ESTALE, "
           "empty pushes, workers that leave\n");
}

static void test_sync_order(void) {
    enum { D = 1 };
    pd_sparse *t = mk("rule=sgd lr=0.5 consistency=sync aggregate=sum", D, 2, 0, 1);
    pd_err e = {0};
    uint64_t k = 7;
    float g = 2, row;
    /* worker 0 runs ahead to clock 1; clock 0 completes when worker 1 comes */
    CHECK_OK(sparse_push(t, 0, 0, &k, 1, &g, &e));
    CHECK_OK(sparse_push(t, 0, 1, &k, 1, &g, &e));
    CHECK_OK(sparse_push(t, 1, 0, &k, 1, &g, &e));
    CHECK_INT_EQ(t->base.gate.applied, 1);
    CHECK_OK(sparse_push(t, 1, 1, &k, 1, &g, &e));
    CHECK_INT_EQ(t->base.gate.applied, 2);
    CHECK_OK(sparse_pull(t, 0, 2, &k, 1, &row, &e));
    CHECK(row == -4.0f); /* two clocks of -0.5 * (2 + 2) */
    sparse_destroy(t);
    /* ssp:1 lets a pull run one clock ahead */
    t = mk("rule=add consistency=ssp:1", D, 2, 0, 1);
    CHECK_OK(sparse_push(t, 0, 0, &k, 1, &g, &e));
    CHECK_OK(sparse_pull(t, 0, 1, &k, 1, &row, &e)); /* needs nothing applied */
    CHECK(row == 0.0f);
    CHECK_INT_EQ(sparse_pull(t, 0, 3, &k, 1, &row, &e), PARAMD_EDEADLOCK);
    sparse_destroy(t);
    /* backup=1: a clock goes on without the slowest worker; its late push
     * is dropped and counted */
    t = mk("rule=add consistency=sync backup=1", D, 2, 0, 1);
    CHECK_OK(sparse_push(t, 0, 0, &k, 1, &g, &e));
    CHECK_INT_EQ(t->base.gate.applied, 1);
    CHECK_OK(sparse_push(t, 1, 0, &k, 1, &g, &e));
    CHECK_INT_EQ(t->stats.dropped, 1);
    CHECK_OK(sparse_pull(t, 1, 1, &k, 1, &row, &e));
    CHECK(row == 2.0f);
    sparse_destroy(t);
    printf("ok: sync clocks in order, ssp:1, backup workers\n");
}

/* Every allocation a push or a pull makes may fail: the table is then
 * exactly as before. */
static void test_alloc_failures(void) {
    enum { D = 4, B = 300 };
    const char *specs[] = {"rule=adagrad init=normal:1", "rule=add consistency=sync"};
    for (int sp = 0; sp < 2; sp++) {
        int failures = 0;
        for (long k = 1; k < 40; k++) {
            pd_sparse *t = mk(specs[sp], D, 1, 0, 1);
            pd_err e = {0};
            static uint64_t keys[B];
            static float g[B * D], before[B * D], after[B * D];
            for (int i = 0; i < B; i++) keys[i] = (uint64_t)i * 31;
            for (int i = 0; i < B * D; i++) g[i] = 1.0f;
            CHECK_OK(sparse_push(t, 0, 0, keys, 50, g, &e)); /* some rows */
            CHECK_OK(sparse_pull(t, -1, 1, keys, 50, before, &e));
            size_t rows = t->nrows;
            for (int i = 0; i < B; i++) keys[i] = (uint64_t)i * 29; /* many new */
            pd_alloc_fail_after(k);
            int rc = sparse_push(t, 0, 1, keys, B, g, &e);
            pd_alloc_fail_after(0);
            if (rc == 0) {
                sparse_destroy(t);
                break; /* past the last allocation */
            }
            CHECK_INT_EQ(rc, PARAMD_ENOMEM);
            failures++;
            CHECK_INT_EQ(t->nrows, rows);
            for (int i = 0; i < 50; i++) keys[i] = (uint64_t)i * 31;
            CHECK_OK(sparse_pull(t, -1, 1, keys, 50, after, &e));
            CHECK(memcmp(before, after, sizeof(float) * 50 * D) == 0);
            /* and a failing pull creates nothing */
            for (int i = 0; i < B; i++) keys[i] = (uint64_t)i * 29;
            pd_alloc_fail_after(1);
            rc = sparse_pull(t, -1, 1, keys, B, after, &e);
            pd_alloc_fail_after(0);
            if (rc) CHECK_INT_EQ(t->nrows, rows);
            sparse_destroy(t);
        }
        CHECK(failures > 0);
    }
    printf("ok: allocation failures leave the table unchanged\n");
}

/* ==== Spec and wire ===================================================== */

static void test_spec_and_wire(void) {
    pd_err e = {0};
    char canon[PD_MAX_SPEC + 1];
    pd_table_def d = sparse_def("seed=5 rule=adagrad init=normal:0.010", 16);
    pd_spec_canonical(&d, canon, sizeof canon);
    CHECK_STR_EQ(canon, "rule=adagrad consistency=async aggregate=mean lr=0.01 "
                        "eps=1e-10 init_acc=0.1 init=normal:0.01 seed=5");
    CHECK(d.seed_given);
    d = sparse_def("", 16);
    CHECK(!d.seed_given && d.init == PD_INIT_ZEROS);
    /* bad values */
    const char *bad[] = {"init=gauss:1", "init=normal", "init=normal:0", "init=uniform:-1",
                         "init=normal:nan", "seed=-1", "seed=x", "init=zeros:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pd_table_def x = {0};
        x.kind = PD_TABLE_SPARSE;
        if (pd_spec_parse(bad[i], &x, &e) != PARAMD_EINVAL) CHECK_FAIL_("'%s' accepted", bad[i]);
    }
    /* dense tables take neither, and their canonical text is unchanged */
    pd_table_def dn = {0};
    CHECK_INT_EQ(pd_spec_parse("init=zeros", &dn, &e), PARAMD_EINVAL);
    CHECK(strstr(e.msg, "sparse"));
    CHECK_INT_EQ(pd_spec_parse("seed=1", &dn, &e), PARAMD_EINVAL);
    CHECK_OK(pd_spec_parse("rule=sgd lr=0.1", &dn, &e));
    pd_spec_canonical(&dn, canon, sizeof canon);
    CHECK_STR_EQ(canon, "rule=sgd consistency=async aggregate=mean lr=0.1");

    /* wire: a dense definition has no extension; a sparse one round-trips */
    pd_buf b;
    pd_table_def out;
    dn.n = 10, dn.lo = 0, dn.hi = 10;
    pd_buf_init(&b);
    pd_table_def_encode(&b, &dn);
    size_t dense_len = b.len;
    CHECK_OK(pd_table_def_decode(b.p, b.len, &out, &e));
    CHECK_INT_EQ(out.kind, PD_TABLE_DENSE);
    pd_buf_free(&b);
    d = sparse_def("rule=adam init=uniform:0.25 seed=18446744073709551615", 64);
    pd_buf_init(&b);
    pd_table_def_encode(&b, &d);
    CHECK_INT_EQ(b.len, dense_len + 4 + 4 + 8 + 8); /* same hypers, no plugin */
    CHECK_OK(pd_table_def_decode(b.p, b.len, &out, &e));
    CHECK_INT_EQ(out.kind, PD_TABLE_SPARSE);
    CHECK_INT_EQ(out.n, 64);
    CHECK_INT_EQ(out.init, PD_INIT_UNIFORM);
    CHECK(out.init_param == 0.25);
    CHECK(out.seed == UINT64_MAX);
    /* a truncated extension is malformed */
    CHECK_INT_EQ(pd_table_def_decode(b.p, b.len - 1, &out, &e), PARAMD_EPROTO);
    pd_buf_free(&b);
    /* out-of-range sparse fields are refused */
    struct {
        uint64_t n, hi;
        uint32_t kind, init;
        double param;
    } cases[] = {{PD_MAX_SPARSE_DIM + 1, PD_MAX_SPARSE_DIM + 1, 1, 0, 0},
                 {8, 4, 1, 0, 0},
                 {8, 8, 2, 0, 0},
                 {8, 8, 1, 3, 1},
                 {8, 8, 1, 0, 1},
                 {8, 8, 1, 2, 0},
                 {8, 8, 1, 2, NAN}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pd_table_def x = d;
        x.n = cases[i].n, x.hi = cases[i].hi, x.kind = cases[i].kind;
        x.init = cases[i].init, x.init_param = cases[i].param;
        pd_buf_init(&b);
        pd_table_def_encode(&b, &x);
        if (x.kind != PD_TABLE_SPARSE) { /* encode writes no extension: add one */
            pd_put_u32(&b, x.kind);
            pd_put_u32(&b, x.init);
            pd_put_f64(&b, x.init_param);
            pd_put_u64(&b, x.seed);
        }
        if (pd_table_def_decode(b.p, b.len, &out, &e) != PARAMD_EPROTO)
            CHECK_FAIL_("sparse definition case %zu accepted", i);
        pd_buf_free(&b);
    }
    /* the message types are data messages: the frame limit applies */
    CHECK(strcmp(pd_msg_name(PD_MSG_SPARSE_PUSH), "SPARSE_PUSH") == 0);
    pd_hdr h = {PD_MAGIC, PD_PROTO_VERSION, PD_MSG_SPARSE_PULL, 1, 1, 0, 0, 1 << 20};
    uint8_t hb[PD_HDR_SIZE];
    pd_hdr_encode(&h, hb);
    pd_hdr hd;
    CHECK_OK(pd_hdr_decode(hb, &hd, 1 << 20, &e));
    CHECK_INT_EQ(pd_hdr_decode(hb, &hd, (1 << 20) - 1, &e), PARAMD_ETOOBIG);
    printf("ok: sparse specs and table definitions on the wire\n");
}

/* Joins, as for dense shards (test_shard.c): exact sums per key, the
 * joiner counted from the commit clock J and not before. */
static void test_join(void) {
    enum { D = 1 };
    pd_sparse *t = mk("rule=add consistency=sync aggregate=sum", D, 3, 0, 1);
    pd_err e = {0};
    uint64_t k = 5;
    float g, row;
    pd_table_worker_gone(&t->base, 2);
    g = 1;
    CHECK_OK(sparse_push(t, 0, 0, &k, 1, &g, &e));
    CHECK_INT_EQ(pd_table_join_begin(&t->base, 2), 1); /* clock 0 being aggregated */
    g = 2;
    CHECK_OK(sparse_push(t, 1, 0, &k, 1, &g, &e));
    CHECK_INT_EQ(t->base.gate.applied, 1); /* without the joiner: 3 */
    g = 10;
    CHECK_OK(sparse_push(t, 0, 1, &k, 1, &g, &e));
    CHECK_OK(sparse_push(t, 1, 1, &k, 1, &g, &e));
    CHECK_INT_EQ(t->base.gate.applied, 1); /* clock 1 waits between the phases */
    pd_table_join_at(&t->base, 2, 2);
    CHECK_INT_EQ(t->base.gate.applied, 2); /* 23 */
    CHECK_INT_EQ(sparse_push(t, 2, 1, &k, 1, &g, &e), PARAMD_ESTALE);
    CHECK_OK(sparse_pull(t, 2, 2, &k, 1, &row, &e));
    CHECK(row == 23);
    g = 100;
    for (int w = 0; w < 2; w++) CHECK_OK(sparse_push(t, w, 2, &k, 1, &g, &e));
    CHECK_INT_EQ(t->base.gate.applied, 2);
    CHECK_INT_EQ(sparse_pull(t, 2, 3, &k, 1, &row, &e), PARAMD_EDEADLOCK);
    CHECK_OK(sparse_push(t, 2, 2, NULL, 0, NULL, &e)); /* an empty push counts */
    CHECK_INT_EQ(t->base.gate.applied, 3);
    CHECK_OK(sparse_pull(t, 2, 3, &k, 1, &row, &e));
    CHECK(row == 223);
    sparse_destroy(t);
    /* a dead worker's push never stands in for a live one */
    t = mk("rule=add consistency=sync aggregate=sum", D, 2, 0, 1);
    g = 5;
    CHECK_OK(sparse_push(t, 1, 0, &k, 1, &g, &e));
    pd_table_worker_gone(&t->base, 1);
    CHECK_INT_EQ(t->base.gate.applied, 0);
    g = 1;
    CHECK_OK(sparse_push(t, 0, 0, &k, 1, &g, &e));
    CHECK_INT_EQ(t->base.gate.applied, 1);
    CHECK_OK(sparse_pull(t, 0, 1, &k, 1, &row, &e));
    CHECK(row == 6);
    sparse_destroy(t);
    /* elastic=no */
    t = mk("rule=add consistency=sync elastic=no", D, 2, 0, 1);
    pd_table_worker_gone(&t->base, 1);
    CHECK_INT_EQ(pd_table_join_begin(&t->base, 1), -1);
    CHECK_INT_EQ(sparse_push(t, 1, 0, &k, 1, &g, &e), PARAMD_EWORKER);
    CHECK(strstr(e.msg, "elastic=no"));
    CHECK_OK(sparse_push(t, 0, 0, &k, 1, &g, &e));
    CHECK_INT_EQ(t->base.gate.applied, 1);
    sparse_destroy(t);
    printf("ok: joins: counted from the join clock, exact sums, elastic=no\n");
}

/* The apply threads change nothing but speed: pushes of many rows (with
 * duplicate keys, new and old rows; async, and sync with mean over two
 * workers) through adam give the same rows, bit for bit, with a pool of 3
 * threads as with none. */
static void run_rows_pushes(const char *spec, pd_pool *pool, float *out, uint64_t nkeys) {
    enum { DIM = 32, N = 30000 };
    pd_table_def d = sparse_def(spec, DIM);
    pd_err e = {0};
    pd_sparse *t = sparse_create(1, &d, 2, 0, 1, pool, &e);
    if (!t) CHECK_FAIL_("create: %s", e.msg);
    uint64_t *keys = malloc(N * sizeof *keys);
    float *g = malloc((size_t)N * DIM * sizeof(float));
    CHECK(keys && g);
    for (int64_t c = 0; c < 3; c++)
        for (int32_t w = 0; w < 2; w++) {
            for (uint64_t i = 0; i < N; i++) {
                keys[i] = (i * 7919 + (uint64_t)c * 131 + (uint64_t)w) % nkeys; /* repeats */
                for (int k = 0; k < DIM; k++)
                    g[i * DIM + k] = (float)((i + (uint64_t)k * 3 + (uint64_t)w) % 17) / 8.0f - 1.0f;
            }
            if (sparse_push(t, w, c, keys, N, g, &e) != 0) CHECK_FAIL_("push: %s", e.msg);
        }
    for (uint64_t k = 0; k < nkeys; k++) keys[k % N] = k;
    if (sparse_pull(t, -1, 0, keys, nkeys < N ? nkeys : N, out, &e) != 0)
        CHECK_FAIL_("pull: %s", e.msg);
    sparse_destroy(t);
    free(keys), free(g);
}

static void test_pool_same_rows(void) {
    static const char *const specs[] = {"consistency=async rule=adam lr=0.01",
                                        "consistency=sync rule=adam lr=0.01"};
    enum { DIM = 32, NK = 20000 };
    float *a = malloc((size_t)NK * DIM * sizeof(float)), *b = malloc((size_t)NK * DIM * sizeof(float));
    CHECK(a && b);
    pd_pool *pool = pd_pool_create(3);
    CHECK(pool != NULL);
    for (size_t k = 0; k < 2; k++) {
        run_rows_pushes(specs[k], NULL, a, NK);
        run_rows_pushes(specs[k], pool, b, NK);
        for (uint64_t i = 0; i < (uint64_t)NK * DIM; i++)
            if (a[i] != b[i])
                CHECK_FAIL_("%s: float %llu is %.9g alone, %.9g with the pool", specs[k],
                            (unsigned long long)i, a[i], b[i]);
        int moved = 0;
        for (uint64_t i = 0; i < (uint64_t)NK * DIM && !moved; i++) moved = a[i] != 0;
        CHECK(moved);
    }
    uint64_t par, busy;
    pd_pool_counts(pool, &par, &busy);
    CHECK(par > 0);
    pd_pool_destroy(pool);
    free(a), free(b);
}

/* --max-table-mb on a sparse table: rows up to the limit are created,
 * a push that would pass it is refused with PARAMD_ELIMIT naming the
 * option, and changes nothing (no row, no value). */
static void test_row_limit(void) {
    pd_table_def d = sparse_def("rule=sgd lr=1", 64);
    pd_table_env env = {1, 0, 1, NULL, 1u << 20, NULL}; /* 1 MiB */
    pd_err e = {0};
    pd_sparse *t = (pd_sparse *)(void *)pd_table_create(1, &d, &env, &e);
    if (!t) CHECK_FAIL_("create: %s", e.msg);
    CHECK(t->max_rows > 100 && t->max_rows < 4096); /* 64 floats: ~256 B a row */
    uint64_t keys[64];
    float g[64 * 64];
    for (int i = 0; i < 64 * 64; i++) g[i] = 1;
    uint64_t next = 0;
    int rc = 0;
    while (rc == 0) {
        for (int i = 0; i < 64; i++) keys[i] = next + (uint64_t)i;
        size_t before = t->nrows;
        rc = sparse_push(t, 0, 0, keys, 64, g, &e);
        if (rc) CHECK_INT_EQ(t->nrows, before); /* nothing changed */
        else next += 64;
    }
    CHECK_INT_EQ(rc, PARAMD_ELIMIT);
    CHECK(strstr(e.msg, "--max-table-mb") != NULL);
    CHECK(t->nrows <= t->max_rows && t->nrows + 64 > t->max_rows);
    CHECK(pd_sparse_bytes(t) <= (1u << 20) + (1u << 18)); /* about the budget */
    /* Rows that exist still take pushes. */
    for (int i = 0; i < 64; i++) keys[i] = (uint64_t)i;
    for (int i = 0; i < 64 * 64; i++) g[i] = 1;
    CHECK_OK(sparse_push(t, 0, 0, keys, 64, g, &e));
    sparse_destroy(t);
    printf("row limit: ok (%zu rows of 64 floats in 1 MiB)\n", (size_t)next);
}

/* ==== Incremental checkpoints ============================================ */

/* Save t as checkpoint seq (a delta of base; 0: full) into dir; the keys
 * of the rows written, sorted, into keys (n of them returned). */
static uint64_t save_keys(pd_sparse *t, const char *dir, uint64_t seq, uint64_t base,
                          uint64_t *keys, uint64_t cap) {
    pd_ckw w;
    pd_ckr r;
    pd_err e = {0};
    CHECK_OK(pd_ckw_open(&w, dir, "t.pdck", PD_CK_SERVER, &e));
    pd_ck_save how = {seq, base};
    t->base.ops->save(&t->base, &w, &how);
    CHECK_OK(pd_ckw_commit(&w, NULL, NULL, &e));
    char path[600];
    snprintf(path, sizeof path, "%s/t.pdck", dir);
    CHECK_OK(pd_ckr_open(&r, path, PD_CK_SERVER, &e));
    uint64_t applied, top, n;
    uint32_t dim, k;
    pd_get_u64(&r.body, &applied);
    pd_get_u64(&r.body, &top);
    pd_get_u32(&r.body, &dim);
    pd_get_u32(&r.body, &k);
    pd_get_u64(&r.body, &n);
    CHECK(n <= cap);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t steps;
        pd_get_u64(&r.body, &keys[i]);
        pd_get_u64(&r.body, &steps);
        CHECK_OK(pd_ckr_floats(&r, NULL, (uint64_t)dim * (1 + k)));
    }
    CHECK(pd_rd_done(&r.body));
    pd_ckr_close(&r);
    for (uint64_t i = 1; i < n; i++) /* insertion sort: small */
        for (uint64_t j = i; j > 0 && keys[j - 1] > keys[j]; j--) {
            uint64_t x = keys[j];
            keys[j] = keys[j - 1], keys[j - 1] = x;
        }
    return n;
}

static void test_delta_rows(void) {
    enum { D = 4 };
    pd_sparse *t = mk("rule=adam", D, 1, 0, 1);
    pd_err e = {0};
    char dir[] = "/tmp/test_sparse.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    uint64_t keys[200], got[200];
    float g[200 * D], row[D];
    for (uint64_t i = 0; i < 100; i++) keys[i] = i * 3;
    for (int i = 0; i < 200 * D; i++) g[i] = 0.5f;
    CHECK_OK(sparse_push(t, 0, 0, keys, 100, g, &e));
    CHECK_INT_EQ(save_keys(t, dir, 1, 0, got, 200), 100); /* full: every row */
    /* nothing changed: an empty delta; a pull of an existing row changes nothing */
    pull1(t, 3, row);
    CHECK_INT_EQ(save_keys(t, dir, 2, 1, got, 200), 0);
    /* two rows pushed, one created by a pull: those three */
    uint64_t k2[2] = {6, 9};
    CHECK_OK(sparse_push(t, 0, 0, k2, 2, g, &e));
    pull1(t, 1000, row);
    CHECK_INT_EQ(save_keys(t, dir, 3, 2, got, 200), 3);
    CHECK_INT_EQ(got[0], 6);
    CHECK_INT_EQ(got[1], 9);
    CHECK_INT_EQ(got[2], 1000);
    /* checkpoint 4 "fails" (written, never complete); 5 is a delta of 3
     * and still holds what 4 held, and what changed since */
    uint64_t k4[1] = {12}, k5[1] = {15};
    CHECK_OK(sparse_push(t, 0, 0, k4, 1, g, &e));
    CHECK_INT_EQ(save_keys(t, dir, 4, 3, got, 200), 1);
    CHECK_OK(sparse_push(t, 0, 0, k5, 1, g, &e));
    CHECK_INT_EQ(save_keys(t, dir, 5, 3, got, 200), 2);
    CHECK_INT_EQ(got[0], 12);
    CHECK_INT_EQ(got[1], 15);
    /* a base the table has no record of (created after it): every row */
    CHECK_INT_EQ(save_keys(t, dir, 6, 99, got, 200), 101);
    /* the records of bases older than the one named are dropped, at most
     * PD_SPARSE_CUTS are kept, and the base's own survives a long run of
     * failed checkpoints */
    CHECK_INT_EQ(t->ncuts, 1);
    for (uint64_t s = 7; s < 7 + 2 * PD_SPARSE_CUTS; s++) save_keys(t, dir, s, 6, got, 200);
    CHECK_INT_EQ(t->ncuts, PD_SPARSE_CUTS);
    uint64_t k6[1] = {18};
    CHECK_OK(sparse_push(t, 0, 0, k6, 1, g, &e));
    CHECK_INT_EQ(save_keys(t, dir, 100, 6, got, 200), 1);
    CHECK_INT_EQ(got[0], 18);
    char p[600];
    snprintf(p, sizeof p, "%s/t.pdck", dir);
    unlink(p);
    rmdir(dir);
    pd_table_destroy(&t->base);
    printf("ok: incremental checkpoints write the rows changed since their base, a failed "
           "one's too\n");
}

int main(void) {
    test_delta_rows();
    test_row_limit();
    test_pool_same_rows();
    test_keymap();
    test_jump_hash();
    test_init_rows();
    test_push_pull_dups();
    test_one_vs_three();
    test_growth();
    test_sync();
    test_sync_order();
    test_alloc_failures();
    test_spec_and_wire();
    test_join();
    printf("test_sparse: all ok\n");
    return 0;
}
