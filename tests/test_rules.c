/*
 * test_rules.c - the update rules of src/table/rules.c against reference
 * versions written here straight from the formulas, and the plugin loader.
 *
 * Each built-in rule has a reference below: double precision, one scalar
 * loop, no cleverness, in the notation of docs/update-rules.md.  The test
 * runs rule and reference side by side for several steps on random data
 * (fixed seed) and compares parameters and every state plane after each
 * step, for run lengths that exercise the kernels' full blocks and their
 * tails, in plain and strided layouts.
 *
 * Plugin tests compile shared objects with the system compiler ($CC or
 * cc): examples/plugins/clip_sgd.c (so this test must run from the
 * repository root, as ctest does), and small objects written here that
 * probe the ABI (hyper order, planes, init, step) or are broken on purpose
 * (missing symbol, wrong ABI version, too much state).  They go in a fresh
 * temporary directory that is removed at exit.
 */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/common.h"
#include "paramd_rule.h"
#include "table/rules.h"
#include "table/spec.h"

/* ==== Helpers ============================================================ */

/* xorshift64*: a fixed, portable sequence. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* [0, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) * 0x1p-53;
}
static float frand(double lo, double hi) {
    return (float)(lo + (hi - lo) * urand());
}

/* numpy.allclose's rule, with the scale taken as the largest magnitude the
 * value has had (float rounding errors accumulate relative to that, so a
 * value that returns near zero is not held to a tighter bound):
 * |got - want| <= ATOL + RTOL*max(|want|, peak). */
#define RTOL 1e-5
#define ATOL 1e-6
#define CHECK_CLOSE(got, want, peak, what, idx)                                \
    do {                                                                       \
        double g_ = (double)(got), w_ = (double)(want);                        \
        double s_ = fmax(fabs(w_), (double)(peak));                            \
        if (!(fabs(g_ - w_) <= ATOL + RTOL * s_))                              \
            CHECK_FAIL_("%s[%zu]: got %.9g, reference %.9g", what,            \
                        (size_t)(idx), g_, w_);                                \
    } while (0)

/* ==== Reference rules (double precision, straight from the formulas) ==== */

/* One parameter run in double: w, up to two state planes. */
typedef struct ref_run {
    size_t n;
    double *w, *s0, *s1;
} ref_run;

static void ref_apply(pd_rule_kind kind, const pd_rule_hyper *h, ref_run *r,
                      const float *gf, int64_t t) {
    for (size_t i = 0; i < r->n; i++) {
        double g = gf[i];
        double *w = &r->w[i];
        switch (kind) {
        case PD_RULE_ADD:
            *w += g;
            break;
        case PD_RULE_SGD:
            *w -= h->lr * g;
            break;
        case PD_RULE_MOMENTUM: {
            double *v = &r->s0[i];
            *v = h->momentum * *v + g;
            *w -= h->lr * *v;
            break;
        }
        case PD_RULE_ADAGRAD: {
            double *acc = &r->s0[i];
            *acc += g * g;
            *w -= h->lr * g / (sqrt(*acc) + h->eps);
            break;
        }
        case PD_RULE_ADAM: {
            double *m = &r->s0[i], *v = &r->s1[i];
            *m = h->beta1 * *m + (1 - h->beta1) * g;
            *v = h->beta2 * *v + (1 - h->beta2) * g * g;
            double mhat = *m / (1 - pow(h->beta1, (double)t));
            double vhat = *v / (1 - pow(h->beta2, (double)t));
            *w -= h->lr * mhat / (sqrt(vhat) + h->eps);
            break;
        }
        case PD_RULE_FTRL: {
            /* McMahan et al. 2013, algorithm 1; alpha = lr. */
            double *z = &r->s0[i], *nn = &r->s1[i], alpha = h->lr;
            double sigma = (sqrt(*nn + g * g) - sqrt(*nn)) / alpha;
            *z += g - sigma * *w;
            *nn += g * g;
            if (fabs(*z) <= h->l1)
                *w = 0;
            else
                *w = -(*z - (*z > 0 ? 1 : -1) * h->l1) /
                     ((h->beta + sqrt(*nn)) / alpha + h->l2);
            break;
        }
        default:
            CHECK(!"no reference for this rule");
        }
    }
}

/* ==== Built-in rules against the reference =============================== */

/*
 * Run rule `r` and the reference for `steps` steps on n parameters.  The
 * rule's state lives in planes of `stride` floats (stride >= n) at offset
 * `off` of a larger buffer, as a shard's sub-range would; the floats around
 * the run are filled with a sentinel that must survive.
 */
static void compare_rule(const pd_rule *r, size_t n, size_t stride,
                         size_t off, int steps, double gscale) {
    const char *name = pd_rule_name(r->kind);
    size_t k = pd_rule_state_floats(r);
    size_t total = off + stride * (k ? k : 1) + 8;
    const float sentinel = 12345.0f;
    float *w = malloc((n + 1) * sizeof *w);
    float *g = malloc((n + 1) * sizeof *g);
    float *buf = malloc(total * sizeof *buf);
    double *rw = calloc(n + 1, sizeof *rw), *r0 = calloc(n + 1, sizeof *r0),
           *r1 = calloc(n + 1, sizeof *r1);
    double *pk = calloc(3 * (n + 1), sizeof *pk); /* peaks of rw, r0, r1 */
    CHECK(w && g && buf && rw && r0 && r1 && pk);
    for (size_t i = 0; i < total; i++) buf[i] = sentinel;
    float *state = buf + off;
    for (size_t i = 0; i < n; i++)
        w[i] = frand(-1, 1), rw[i] = w[i], pk[i] = fabs(rw[i]);
    if (k) pd_rule_init_state_strided(r, state, stride, n);
    /* The reference's starting state, and a check of init_state. */
    for (size_t i = 0; i < n; i++) {
        double want = r->kind == PD_RULE_ADAGRAD ? r->hyper.init_acc : 0.0;
        for (size_t j = 0; j < k; j++)
            CHECK_INT_EQ(state[j * stride + i] == (float)want, 1);
        r0[i] = k > 0 ? state[i] : 0;
        r1[i] = k > 1 ? state[stride + i] : 0;
    }
    ref_run ref = {n, rw, r0, r1};
    for (int t = 1; t <= steps; t++) {
        /* Gradients of varying scale, some exactly zero. */
        double sc = gscale * (t % 3 == 0 ? 0.1 : 1.0);
        for (size_t i = 0; i < n; i++)
            g[i] = (i % 11 == 5) ? 0.0f : frand(-sc, sc);
        pd_rule_apply_strided(r, w, state, stride, g, n, t);
        ref_apply(r->kind, &r->hyper, &ref, g, t);
        char what[64];
        for (size_t i = 0; i < n; i++) {
            pk[i] = fmax(pk[i], fabs(rw[i]));
            pk[n + 1 + i] = fmax(pk[n + 1 + i], fabs(r0[i]));
            pk[2 * (n + 1) + i] = fmax(pk[2 * (n + 1) + i], fabs(r1[i]));
            snprintf(what, sizeof what, "%s n=%zu step %d: w", name, n, t);
            CHECK_CLOSE(w[i], rw[i], pk[i], what, i);
            if (k > 0) {
                snprintf(what, sizeof what, "%s n=%zu step %d: plane0", name,
                         n, t);
                CHECK_CLOSE(state[i], r0[i], pk[n + 1 + i], what, i);
            }
            if (k > 1) {
                snprintf(what, sizeof what, "%s n=%zu step %d: plane1", name,
                         n, t);
                CHECK_CLOSE(state[stride + i], r1[i], pk[2 * (n + 1) + i], what,
                            i);
            }
        }
    }
    /* Nothing outside the run's planes was written. */
    for (size_t i = 0; i < total; i++) {
        size_t rel = i - off;
        int inside = i >= off && rel < stride * k && rel % stride < n;
        if (!inside) CHECK_INT_EQ(buf[i] == sentinel, 1);
    }
    free(w), free(g), free(buf), free(rw), free(r0), free(r1), free(pk);
}

static pd_rule make_rule(pd_rule_kind kind) {
    pd_rule r = {.kind = kind, .plugin = NULL};
    pd_rule_defaults(kind, &r.hyper);
    return r;
}

static void test_builtin_rules(void) {
    static const size_t sizes[] = {1, 7, 15, 16, 17, 33, 100, 1000};
    for (int kind = PD_RULE_ADD; kind < PD_RULE_PLUGIN; kind++) {
        pd_rule r = make_rule((pd_rule_kind)kind);
        if (kind == PD_RULE_FTRL) r.hyper.l1 = 0.05; /* some zeros */
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            compare_rule(&r, n, n, 0, 12, 1.0);            /* plain */
            compare_rule(&r, n, n + 13, 5, 12, 1.0);       /* strided */
        }
        compare_rule(&r, 257, 257, 0, 30, 10.0); /* large gradients */
        compare_rule(&r, 257, 257, 0, 30, 1e-3); /* small gradients */
    }
    /* Non-default hyper-parameters. */
    pd_rule r = make_rule(PD_RULE_MOMENTUM);
    r.hyper.momentum = 0.0, r.hyper.lr = 0.5;
    compare_rule(&r, 100, 100, 0, 10, 1.0);
    r = make_rule(PD_RULE_ADAGRAD);
    r.hyper.init_acc = 0.0, r.hyper.eps = 1e-3, r.hyper.lr = 0.3;
    compare_rule(&r, 100, 100, 0, 10, 1.0);
    r = make_rule(PD_RULE_ADAM);
    r.hyper.beta1 = 0.5, r.hyper.beta2 = 0.75, r.hyper.lr = 0.01;
    r.hyper.eps = 1e-3;
    compare_rule(&r, 100, 100, 0, 10, 1.0);
    r = make_rule(PD_RULE_FTRL);
    r.hyper.lr = 0.1, r.hyper.beta = 0.0, r.hyper.l1 = 0.2, r.hyper.l2 = 1.5;
    compare_rule(&r, 100, 100, 0, 10, 1.0);
    printf("ok builtin rules against the double-precision reference\n");
}

/* The state layout, spelled out: planes of n floats, m then v for adam. */
static void test_state_layout(void) {
    pd_rule r = make_rule(PD_RULE_ADAM);
    CHECK_INT_EQ(pd_rule_state_floats(&r), 2);
    enum { N = 3 };
    float w[N] = {0, 0, 0}, g[N] = {1, -2, 0}, st[2 * N];
    pd_rule_init_state(&r, st, N);
    pd_rule_apply(&r, w, st, g, N, 1);
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(st[i], 0.1 * g[i], 1e-7);             /* m, plane 0 */
        CHECK_NEAR(st[N + i], 0.001 * g[i] * g[i], 1e-7); /* v, plane 1 */
    }
    CHECK_INT_EQ(pd_rule_state_floats(&(pd_rule){.kind = PD_RULE_ADD}), 0);
    CHECK_INT_EQ(pd_rule_state_floats(&(pd_rule){.kind = PD_RULE_SGD}), 0);
    CHECK_INT_EQ(pd_rule_state_floats(&(pd_rule){.kind = PD_RULE_MOMENTUM}), 1);
    CHECK_INT_EQ(pd_rule_state_floats(&(pd_rule){.kind = PD_RULE_ADAGRAD}), 1);
    CHECK_INT_EQ(pd_rule_state_floats(&(pd_rule){.kind = PD_RULE_FTRL}), 2);
    CHECK_INT_EQ(pd_rule_state_floats(&(pd_rule){.kind = PD_RULE_PLUGIN}), 0);
    printf("ok state layout\n");
}

/* Adam's first step moves every parameter by lr*sign(g) (bias correction
 * at work); the step counts are per call, and step < 1 counts as 1. */
static void test_step_counting(void) {
    pd_rule r = make_rule(PD_RULE_ADAM);
    enum { N = 40 };
    float w[N], g[N], st[2 * N];
    for (int i = 0; i < N; i++) w[i] = 0, g[i] = frand(-3, 3) + (i & 1 ? 4 : -4);
    pd_rule_init_state(&r, st, N);
    pd_rule_apply(&r, w, st, g, N, 1);
    for (int i = 0; i < N; i++)
        CHECK_NEAR(w[i], g[i] > 0 ? -0.001 : 0.001, 1e-9);

    /* Same gradient at step 1 and at step 0: identical. */
    float w1[N] = {0}, w0[N] = {0}, s1[2 * N], s0[2 * N];
    pd_rule_init_state(&r, s1, N);
    pd_rule_init_state(&r, s0, N);
    pd_rule_apply(&r, w1, s1, g, N, 1);
    pd_rule_apply(&r, w0, s0, g, N, 0);
    CHECK(memcmp(w1, w0, sizeof w1) == 0);

    /* Step t uses (1 - beta^t): on fresh state at t = 1000, beta1^t is ~0
     * and 1 - beta2^t = 0.632, so every parameter moves by
     * lr * 0.1 / sqrt(0.001 / (1 - 0.999^1000)) (2.51 lr). */
    float wt[N] = {0}, stt[2 * N];
    pd_rule_init_state(&r, stt, N);
    pd_rule_apply(&r, wt, stt, g, N, 1000);
    double want = 0.001 * 0.1 / sqrt(0.001 / (1 - pow(0.999, 1000)));
    for (int i = 0; i < N; i++) CHECK_NEAR(fabsf(wt[i]), want, 1e-8);
    printf("ok step counting\n");
}

/* FTRL with l1 > 0: small |z| gives weights that are exactly +0.0f. */
static void test_ftrl_sparsity(void) {
    pd_rule r = make_rule(PD_RULE_FTRL);
    r.hyper.l1 = 1.0;
    enum { N = 100 };
    float w[N], g[N], st[2 * N];
    memset(w, 0, sizeof w);
    pd_rule_init_state(&r, st, N);
    int zeros = 0, nonzeros = 0;
    for (int t = 1; t <= 5; t++) {
        /* The first half gets small gradients (|z| stays under l1), the
         * second half large ones. */
        for (int i = 0; i < N; i++)
            g[i] = i < N / 2 ? frand(-0.1, 0.1) : frand(1.5, 3.0);
        pd_rule_apply(&r, w, st, g, N, t);
    }
    const float pos_zero = 0.0f;
    for (int i = 0; i < N; i++) {
        if (i < N / 2) {
            CHECK(fabsf(st[i]) <= 1.0f);
            CHECK(memcmp(&w[i], &pos_zero, sizeof w[i]) == 0);
            zeros++;
        } else {
            CHECK(fabsf(st[i]) > 1.0f);
            CHECK(w[i] < 0); /* positive gradients push w down */
            nonzeros++;
        }
    }
    CHECK_INT_EQ(zeros, N / 2);
    CHECK_INT_EQ(nonzeros, N / 2);

    /* beta = l2 = 0 and no gradient yet: w = 0, not 0/0. */
    r.hyper.beta = 0, r.hyper.l1 = 0;
    float w1[3] = {0.5f, -0.5f, 0}, g1[3] = {0, 0, 0}, s1[6];
    pd_rule_init_state(&r, s1, 3);
    pd_rule_apply(&r, w1, s1, g1, 3, 1);
    for (int i = 0; i < 3; i++) CHECK(w1[i] == 0.0f);
    printf("ok ftrl sparsity\n");
}

/* Calls on disjoint parts from two threads give the same bits as one call
 * (no hidden shared state; the tail of a part uses the same arithmetic). */
typedef struct part {
    const pd_rule *r;
    float *w, *state;
    const float *g;
    size_t stride, n;
} part;

static void *apply_part(void *arg) {
    part *p = arg;
    for (int t = 1; t <= 20; t++)
        pd_rule_apply_strided(p->r, p->w, p->state, p->stride, p->g, p->n, t);
    return NULL;
}

static void test_threads(void) {
    enum { N = 10007, CUT = 4099 }; /* neither a multiple of the block */
    for (int kind = PD_RULE_ADD; kind < PD_RULE_PLUGIN; kind++) {
        pd_rule r = make_rule((pd_rule_kind)kind);
        r.hyper.l1 = 0.01;
        float *w1 = malloc(N * sizeof(float)), *w2 = malloc(N * sizeof(float));
        float *s1 = malloc(2 * N * sizeof(float)),
              *s2 = malloc(2 * N * sizeof(float));
        float *g = malloc(N * sizeof(float));
        CHECK(w1 && w2 && s1 && s2 && g);
        for (size_t i = 0; i < N; i++)
            w1[i] = w2[i] = frand(-1, 1), g[i] = frand(-1, 1);
        pd_rule_init_state(&r, s1, N);
        pd_rule_init_state(&r, s2, N);
        part whole = {&r, w1, s1, g, N, N};
        apply_part(&whole);
        part a = {&r, w2, s2, g, N, CUT};
        part b = {&r, w2 + CUT, s2 + CUT, g + CUT, N, N - CUT};
        pthread_t ta, tb;
        CHECK(pthread_create(&ta, NULL, apply_part, &a) == 0);
        CHECK(pthread_create(&tb, NULL, apply_part, &b) == 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        CHECK(memcmp(w1, w2, N * sizeof(float)) == 0);
        CHECK(memcmp(s1, s2, pd_rule_state_floats(&r) * N * sizeof(float)) ==
              0);
        free(w1), free(w2), free(s1), free(s2), free(g);
    }
    printf("ok concurrent disjoint calls match one call bit for bit\n");
}

/* ==== Names and hyper-parameters ========================================= */

static void test_names(void) {
    pd_rule_kind k;
    for (int i = 0; i < PD_RULE_PLUGIN; i++) {
        CHECK_OK(pd_rule_from_name(pd_rule_name((pd_rule_kind)i), &k));
        CHECK_INT_EQ(k, i);
    }
    CHECK_STR_EQ(pd_rule_name(PD_RULE_ADAM), "adam");
    CHECK_STR_EQ(pd_rule_name(PD_RULE_PLUGIN), "plugin");
    CHECK(pd_rule_name(PD_RULE_COUNT_) == NULL);
    CHECK(pd_rule_name((pd_rule_kind)-1) == NULL);
    CHECK(pd_rule_from_name("plugin", &k) == -1);
    CHECK(pd_rule_from_name("Adam", &k) == -1);
    CHECK(pd_rule_from_name(NULL, &k) == -1);

    CHECK_INT_EQ(pd_rule_uses_hyper(PD_RULE_SGD, "lr"), 1);
    CHECK_INT_EQ(pd_rule_uses_hyper(PD_RULE_SGD, "momentum"), 0);
    CHECK_INT_EQ(pd_rule_uses_hyper(PD_RULE_ADD, "lr"), 0);
    CHECK_INT_EQ(pd_rule_uses_hyper(PD_RULE_ADAM, "beta2"), 1);
    CHECK_INT_EQ(pd_rule_uses_hyper(PD_RULE_ADAM, "beta"), 0);
    CHECK_INT_EQ(pd_rule_uses_hyper(PD_RULE_FTRL, "beta"), 1);
    CHECK_INT_EQ(pd_rule_uses_hyper(PD_RULE_ADAGRAD, "init_acc"), 1);
    CHECK_INT_EQ(pd_rule_uses_hyper(PD_RULE_PLUGIN, "l2"), 1);
    CHECK_INT_EQ(pd_rule_uses_hyper(PD_RULE_PLUGIN, "nope"), 0);

    char buf[256];
    pd_rule r = make_rule(PD_RULE_ADAM);
    pd_rule_format(&r, buf, sizeof buf);
    CHECK_STR_EQ(buf, "adam lr=0.001 beta1=0.9 beta2=0.999 eps=1e-08");
    r = make_rule(PD_RULE_ADD);
    pd_rule_format(&r, buf, sizeof buf);
    CHECK_STR_EQ(buf, "add");
    r = make_rule(PD_RULE_ADAM);
    pd_rule_format(&r, buf, 6); /* truncated, terminated */
    CHECK_STR_EQ(buf, "adam ");
    printf("ok names\n");
}

static void test_defaults(void) {
    pd_rule_hyper h;
    pd_rule_defaults(PD_RULE_SGD, &h);
    CHECK(h.lr == 0.01);
    pd_rule_defaults(PD_RULE_MOMENTUM, &h);
    CHECK(h.lr == 0.01 && h.momentum == 0.9);
    pd_rule_defaults(PD_RULE_ADAGRAD, &h);
    CHECK(h.lr == 0.01 && h.init_acc == 0.1 && h.eps == 1e-10);
    pd_rule_defaults(PD_RULE_ADAM, &h);
    CHECK(h.lr == 0.001 && h.beta1 == 0.9 && h.beta2 == 0.999 &&
          h.eps == 1e-8);
    pd_rule_defaults(PD_RULE_FTRL, &h);
    CHECK(h.lr == 0.05 && h.beta == 1.0 && h.l1 == 0 && h.l2 == 0);
    /* Every default of every rule passes the checks. */
    for (int k = PD_RULE_ADD; k < PD_RULE_PLUGIN; k++) {
        pd_rule r = make_rule((pd_rule_kind)k);
        char err[256];
        CHECK_OK(pd_rule_check(&r, err, sizeof err));
    }
    printf("ok defaults\n");
}

static void test_set_hyper(void) {
    static const struct {
        const char *key;
        double v;
    } bad[] = {
        {"lr", 0},        {"lr", -1},       {"lr", NAN},
        {"lr", INFINITY}, {"momentum", 1},  {"momentum", -0.1},
        {"beta1", 1},     {"beta1", -1e-9}, {"beta2", 1.5},
        {"beta2", NAN},   {"eps", 0},       {"eps", -1e-8},
        {"eps", INFINITY}, {"init_acc", -1}, {"l1", -0.5},
        {"l2", NAN},      {"l2", INFINITY}, {"beta", -1},
    };
    pd_rule_hyper h, before;
    pd_rule_defaults(PD_RULE_ADAM, &h);
    before = h;
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (pd_rule_set_hyper(&h, bad[i].key, bad[i].v, err, sizeof err) !=
            -1)
            CHECK_FAIL_("%s=%g was accepted", bad[i].key, bad[i].v);
        CHECK(strstr(err, bad[i].key) != NULL);
        CHECK(strstr(err, "out of range") != NULL);
        CHECK(memcmp(&h, &before, sizeof h) == 0);
    }
    CHECK_INT_EQ(pd_rule_set_hyper(&h, "lrr", 0.1, err, sizeof err), -1);
    CHECK(strstr(err, "unknown hyper-parameter 'lrr'") != NULL);
    CHECK_INT_EQ(pd_rule_set_hyper(&h, "lr", -1, NULL, 0), -1); /* no err */

    CHECK_OK(pd_rule_set_hyper(&h, "lr", 0.5, err, sizeof err));
    CHECK_OK(pd_rule_set_hyper(&h, "momentum", 0, err, sizeof err));
    CHECK_OK(pd_rule_set_hyper(&h, "beta2", 0.9999, err, sizeof err));
    CHECK_OK(pd_rule_set_hyper(&h, "l1", 0, err, sizeof err));
    CHECK_OK(pd_rule_set_hyper(&h, "beta", 2.5, err, sizeof err));
    CHECK_OK(pd_rule_set_hyper(&h, "init_acc", 0, err, sizeof err));
    CHECK(h.lr == 0.5 && h.momentum == 0 && h.beta2 == 0.9999 &&
          h.beta == 2.5);

    /* pd_rule_check catches values that bypassed set_hyper (a decoded
     * frame), but only those the rule reads. */
    pd_rule r = make_rule(PD_RULE_SGD);
    r.hyper.lr = NAN;
    CHECK_INT_EQ(pd_rule_check(&r, err, sizeof err), -1);
    CHECK(strstr(err, "lr=") != NULL);
    r = make_rule(PD_RULE_SGD);
    r.hyper.eps = 0; /* sgd does not read eps */
    CHECK_OK(pd_rule_check(&r, err, sizeof err));
    r.kind = (pd_rule_kind)99;
    CHECK_INT_EQ(pd_rule_check(&r, err, sizeof err), -1);
    CHECK(strstr(err, "99") != NULL);
    r = make_rule(PD_RULE_PLUGIN);
    CHECK_INT_EQ(pd_rule_check(&r, err, sizeof err), -1);
    CHECK(strstr(err, "no plugin loaded") != NULL);
    printf("ok set_hyper and check\n");
}

/* A plugin rule with no plugin, or an unknown kind, changes nothing. */
static void test_inert(void) {
    float w[5] = {1, 2, 3, 4, 5}, g[5] = {1, 1, 1, 1, 1};
    pd_rule r = make_rule(PD_RULE_PLUGIN);
    pd_rule_apply(&r, w, NULL, g, 5, 1);
    r.kind = (pd_rule_kind)42;
    pd_rule_apply(&r, w, NULL, g, 5, 1);
    for (int i = 0; i < 5; i++) CHECK(w[i] == (float)(i + 1));
    pd_rule_release(NULL);
    pd_rule_release(&r);
    printf("ok inert rules\n");
}

/* ==== Plugins ============================================================ */

static char tmpdir[64];

static void remove_tmpdir(void) {
    if (!tmpdir[0]) return;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(tmpdir);
}

static const char *compiler(void) {
    const char *cc = getenv("CC");
    return cc && cc[0] ? cc : "cc";
}

/* Build `src` (a path) into tmpdir/NAME.so; returns the path (static). */
static const char *build_so(const char *src, const char *name) {
    static char out[256];
    char cmd[1024];
    snprintf(out, sizeof out, "%s/%s.so", tmpdir, name);
    snprintf(cmd, sizeof cmd, "%s -shared -fPIC -I include -o %s %s",
             compiler(), out, src);
    int rc = system(cmd);
    if (rc != 0) CHECK_FAIL_("'%s' failed (status %d)", cmd, rc);
    return out;
}

/* Write `code` to tmpdir/NAME.c and build it into tmpdir/NAME.so. */
static const char *build_so_from(const char *name, const char *code) {
    char src[256];
    snprintf(src, sizeof src, "%s/%s.c", tmpdir, name);
    FILE *f = fopen(src, "w");
    CHECK(f != NULL);
    fputs(code, f);
    CHECK(fclose(f) == 0);
    return build_so(src, name);
}

static void test_plugin_clip_sgd(void) {
    if (access("examples/plugins/clip_sgd.c", R_OK) != 0)
        CHECK_FAIL_("examples/plugins/clip_sgd.c not found: run this test "
                    "from the repository root (ctest does)");
    char path[256], err[512];
    snprintf(path, sizeof path, "%s", build_so("examples/plugins/clip_sgd.c",
                                               "clip_sgd"));
    pd_rule r = make_rule(PD_RULE_PLUGIN);
    CHECK_OK(pd_rule_load_plugin(&r, path, err, sizeof err));
    CHECK_INT_EQ(r.kind, PD_RULE_PLUGIN);
    CHECK_INT_EQ(pd_rule_state_floats(&r), 0);

    /* Its check wants l1 > 0 (the clipping threshold). */
    CHECK_INT_EQ(pd_rule_check(&r, err, sizeof err), -1);
    CHECK(strstr(err, path) != NULL && strstr(err, "l1") != NULL);
    CHECK_OK(pd_rule_set_hyper(&r.hyper, "lr", 0.1, err, sizeof err));
    CHECK_OK(pd_rule_set_hyper(&r.hyper, "l1", 0.5, err, sizeof err));
    CHECK_OK(pd_rule_check(&r, err, sizeof err));

    char fmt[512];
    pd_rule_format(&r, fmt, sizeof fmt);
    CHECK(strncmp(fmt, "plugin ", 7) == 0 && strstr(fmt, "l1=0.5"));

    enum { N = 333 };
    float w[N], g[N];
    double ref[N];
    for (int i = 0; i < N; i++) w[i] = frand(-1, 1), ref[i] = w[i];
    int clipped = 0;
    for (int t = 1; t <= 5; t++) {
        for (int i = 0; i < N; i++) g[i] = frand(-2, 2);
        pd_rule_apply(&r, w, NULL, g, N, t);
        for (int i = 0; i < N; i++) {
            double gi = g[i], c = 0.5;
            if (gi > c) gi = c, clipped++;
            if (gi < -c) gi = -c, clipped++;
            ref[i] -= 0.1 * gi;
            CHECK_CLOSE(w[i], ref[i], 1.0, "clip_sgd w", i);
        }
    }
    CHECK(clipped > 0);

    /* Loading again over a loaded rule replaces it; release twice is
     * harmless. */
    CHECK_OK(pd_rule_load_plugin(&r, path, err, sizeof err));
    pd_rule_release(&r);
    CHECK(r.plugin == NULL);
    pd_rule_release(&r);
    printf("ok plugin clip_sgd matches its reference\n");
}

/* A plugin that shows what it receives: w[i] = hyper[i % nhyper], plane 0
 * counts steps, plane 1 sums gradients; init sets plane 0 to init_acc and
 * plane 1 to the index; check refuses lr > 1. */
static const char probe_src[] =
    "#include \"paramd_rule.h\"\n"
    "#include <stdio.h>\n"
    "PARAMD_RULE_DEFINE_ABI_VERSION()\n"
    "size_t paramd_rule_state_floats(void) { return 2; }\n"
    "void paramd_rule_init_state(float *const *s, size_t n,\n"
    "                            const double *h, size_t nh) {\n"
    "  for (size_t i = 0; i < n; i++) {\n"
    "    s[0][i] = nh > PARAMD_RULE_HYPER_INIT_ACC ?\n"
    "              (float)h[PARAMD_RULE_HYPER_INIT_ACC] : -1.0f;\n"
    "    s[1][i] = (float)i;\n"
    "  }\n"
    "}\n"
    "void paramd_rule_apply(float *restrict w, float *const *s,\n"
    "                       const float *restrict g, size_t n, int64_t step,\n"
    "                       const double *h, size_t nh) {\n"
    "  for (size_t i = 0; i < n; i++) {\n"
    "    w[i] = (float)h[i % nh];\n"
    "    s[0][i] += (float)step;\n"
    "    s[1][i] += g[i];\n"
    "  }\n"
    "}\n"
    "int paramd_rule_check(const double *h, size_t nh, char *err,\n"
    "                      size_t len) {\n"
    "  if (nh > 0 && h[0] > 1) { snprintf(err, len, \"lr too big\");\n"
    "                            return 1; }\n"
    "  return 0;\n"
    "}\n";

static void test_plugin_probe(void) {
    char path[256], err[512];
    snprintf(path, sizeof path, "%s", build_so_from("probe", probe_src));
    pd_rule r = make_rule(PD_RULE_PLUGIN);
    CHECK_OK(pd_rule_load_plugin(&r, path, err, sizeof err));
    CHECK_INT_EQ(pd_rule_state_floats(&r), 2);

    /* Hyper-parameters arrive in PARAMD_RULE_HYPER_* order. */
    const char *names[PARAMD_RULE_NHYPER] = {
        "lr", "momentum", "beta1", "beta2", "eps", "init_acc", "l1", "l2",
        "beta"};
    int idx[PARAMD_RULE_NHYPER] = {
        PARAMD_RULE_HYPER_LR,    PARAMD_RULE_HYPER_MOMENTUM,
        PARAMD_RULE_HYPER_BETA1, PARAMD_RULE_HYPER_BETA2,
        PARAMD_RULE_HYPER_EPS,   PARAMD_RULE_HYPER_INIT_ACC,
        PARAMD_RULE_HYPER_L1,    PARAMD_RULE_HYPER_L2,
        PARAMD_RULE_HYPER_BETA};
    /* Distinct valid values: 0.01 * (index + 1) (all < 1). */
    for (int i = 0; i < PARAMD_RULE_NHYPER; i++)
        CHECK_OK(pd_rule_set_hyper(&r.hyper, names[i], 0.01 * (idx[i] + 1),
                                   err, sizeof err));
    CHECK_OK(pd_rule_check(&r, err, sizeof err));

    /* A run of 7 parameters at offset 2 of planes with stride 12. */
    enum { STRIDE = 12, OFF = 2, N = 7 };
    float w[N], g[N], st[2 * STRIDE];
    for (int i = 0; i < 2 * STRIDE; i++) st[i] = -99;
    pd_rule_init_state_strided(&r, st + OFF, STRIDE, N);
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(st[OFF + i], 0.06, 1e-7); /* init_acc, index 5 */
        CHECK(st[STRIDE + OFF + i] == (float)i);
    }
    for (int i = 0; i < N; i++) g[i] = (float)(10 * i);
    pd_rule_apply_strided(&r, w, st + OFF, STRIDE, g, N, 3);
    pd_rule_apply_strided(&r, w, st + OFF, STRIDE, g, N, 4);
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(w[i], 0.01 * (i % PARAMD_RULE_NHYPER + 1), 1e-7);
        CHECK_NEAR(st[OFF + i], 0.06 + 3 + 4, 1e-6);
        CHECK(st[STRIDE + OFF + i] == (float)(i + 20 * i));
    }
    for (int i = 0; i < 2 * STRIDE; i++) /* outside the run: untouched */
        if (i % STRIDE < OFF || i % STRIDE >= OFF + N) CHECK(st[i] == -99);

    /* The plugin's check, with its reason. */
    CHECK_OK(pd_rule_set_hyper(&r.hyper, "lr", 2, err, sizeof err));
    CHECK_INT_EQ(pd_rule_check(&r, err, sizeof err), -1);
    CHECK(strstr(err, "lr too big") != NULL && strstr(err, path) != NULL);
    pd_rule_release(&r);
    printf("ok plugin ABI probe (hyper order, planes, init, step, check)\n");
}

/* Loading must fail with `want` in the message and leave r untouched. */
static void expect_load_error(const char *path, const char *want) {
    char err[512] = "";
    pd_rule r = make_rule(PD_RULE_SGD), before = r;
    if (pd_rule_load_plugin(&r, path, err, sizeof err) != -1)
        CHECK_FAIL_("loading '%s' succeeded", path);
    if (!strstr(err, want))
        CHECK_FAIL_("message '%s' lacks '%s'", err, want);
    if (!strstr(err, path)) CHECK_FAIL_("message '%s' lacks the path", err);
    CHECK(memcmp(&r, &before, sizeof r) == 0);
    printf("  (expected) %s\n", err);
}

static void test_plugin_errors(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/does-not-exist.so", tmpdir);
    expect_load_error(path, "cannot load");

    snprintf(path, sizeof path, "%s/not-elf.so", tmpdir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("this is not a shared object\n", f);
    fclose(f);
    expect_load_error(path, "cannot load");

    snprintf(path, sizeof path, "%s",
             build_so_from("no_apply",
                           "#include \"paramd_rule.h\"\n"
                           "PARAMD_RULE_DEFINE_ABI_VERSION()\n"
                           "size_t paramd_rule_state_floats(void) "
                           "{ return 0; }\n"));
    expect_load_error(path, "missing symbol 'paramd_rule_apply'");

    snprintf(path, sizeof path, "%s",
             build_so_from("no_version", "int unrelated = 1;\n"));
    expect_load_error(path, "missing symbol 'paramd_rule_abi_version'");

    snprintf(path, sizeof path, "%s",
             build_so_from("old_abi",
                           "#include <stdint.h>\n"
                           "#include <stddef.h>\n"
                           "uint32_t paramd_rule_abi_version(void) "
                           "{ return 999; }\n"
                           "size_t paramd_rule_state_floats(void) "
                           "{ return 0; }\n"
                           "void paramd_rule_apply(void) {}\n"));
    expect_load_error(path, "paramd_rule_abi_version() is 999");

    snprintf(path, sizeof path, "%s",
             build_so_from("big_state",
                           "#include \"paramd_rule.h\"\n"
                           "PARAMD_RULE_DEFINE_ABI_VERSION()\n"
                           "size_t paramd_rule_state_floats(void) "
                           "{ return 1000; }\n"
                           "void paramd_rule_apply(float *restrict w, "
                           "float *const *s, const float *restrict g, "
                           "size_t n, int64_t t, const double *h, "
                           "size_t nh) { (void)w; (void)s; (void)g; "
                           "(void)n; (void)t; (void)h; (void)nh; }\n"));
    expect_load_error(path, "is 1000");

    /* No path; no room for a message. */
    pd_rule r = make_rule(PD_RULE_SGD);
    char err[64];
    CHECK_INT_EQ(pd_rule_load_plugin(&r, "", err, sizeof err), -1);
    CHECK_INT_EQ(pd_rule_load_plugin(&r, NULL, NULL, 0), -1);
    CHECK_INT_EQ(r.kind, PD_RULE_SGD);

    /* Out of memory at either allocation: an error, no leak (ASan). */
    char clip[256];
    snprintf(clip, sizeof clip, "%s/clip_sgd.so", tmpdir);
    for (long k = 1; k <= 2; k++) {
        char msg[512];
        pd_alloc_fail_after(k);
        CHECK_INT_EQ(pd_rule_load_plugin(&r, clip, msg, sizeof msg), -1);
        pd_alloc_fail_after(0);
        CHECK(strstr(msg, "out of memory") != NULL);
        CHECK(r.plugin == NULL && r.kind == PD_RULE_SGD);
    }
    printf("ok plugin load errors\n");
}

/* ==== Main =============================================================== */

/* Plugin names: only names resolve, and only inside the directory given;
 * a spec with a path is refused when it is parsed. */
static void test_plugin_names(void) {
    static const char *const good[] = {"clip_sgd", "a", "Rule-2", "x_y-z"};
    static const char *const bad[] = {"", "/abs/x.so", "../x", "x.so", "a/b", ".", "..",
                                      "x y", "x\n", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_INT_EQ(pd_rule_plugin_name_ok(good[i]), 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT_EQ(pd_rule_plugin_name_ok(bad[i]), 0);
    char longname[PD_RULE_PLUGIN_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_INT_EQ(pd_rule_plugin_name_ok(longname), 0);
    longname[PD_RULE_PLUGIN_NAME_MAX] = '\0';
    CHECK_INT_EQ(pd_rule_plugin_name_ok(longname), 1);

    char path[PD_MAX_PLUGIN_FILE], err[512];
    CHECK_INT_EQ(pd_rule_plugin_path(tmpdir, "../x", path, sizeof path, err, sizeof err), -1);
    CHECK(strstr(err, "is not a plugin name"));
    CHECK_INT_EQ(pd_rule_plugin_path(NULL, "x", path, sizeof path, err, sizeof err), -1);
    CHECK(strstr(err, "--plugin-dir DIR") && strstr(err, "x.so"));
    CHECK_INT_EQ(pd_rule_plugin_path(tmpdir, "absent", path, sizeof path, err, sizeof err), -1);
    CHECK(strstr(err, "put absent.so there to allow it"));
    char file[600];
    snprintf(file, sizeof file, "%s/present.so", tmpdir);
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    fclose(f);
    CHECK_OK(pd_rule_plugin_path(tmpdir, "present", path, sizeof path, err, sizeof err));
    CHECK_STR_EQ(path, file);
    remove(file);

    pd_table_def d = {0};
    pd_err e = {0};
    CHECK_INT_EQ(pd_spec_parse("plugin=/tmp/x.so lr=0.1", &d, &e), PARAMD_EINVAL);
    CHECK(strstr(e.msg, "is a path") && strstr(e.msg, "plugin=NAME"));
    CHECK_INT_EQ(pd_spec_parse("plugin=x.so", &d, &e), PARAMD_EINVAL);
    CHECK(strstr(e.msg, "is not a plugin name"));
    CHECK_OK(pd_spec_parse("plugin=clip_sgd lr=0.1 l1=1", &d, &e));
    CHECK_INT_EQ(d.rule, PD_RULE_PLUGIN);
    CHECK_STR_EQ(d.plugin, "clip_sgd");
    printf("ok plugin names: paths and non-names refused, names resolve in the directory\n");
}

int main(void) {
    test_names();
    test_defaults();
    test_set_hyper();
    test_state_layout();
    test_step_counting();
    test_builtin_rules();
    test_ftrl_sparsity();
    test_threads();
    test_inert();

    snprintf(tmpdir, sizeof tmpdir, "/tmp/paramd_test_rules.XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    atexit(remove_tmpdir);
    char probe[512];
    snprintf(probe, sizeof probe, "%s --version >/dev/null 2>&1", compiler());
    if (system(probe) != 0)
        CHECK_FAIL_("no C compiler '%s' to build test plugins (set $CC)",
                    compiler());
    test_plugin_names();
    test_plugin_clip_sgd();
    test_plugin_probe();
    test_plugin_errors();
    printf("all rules tests passed\n");
    return 0;
}
