/*
 * rules.c - the update rules a server applies to aggregated gradients:
 * add, sgd, momentum, adagrad, adam, ftrl, and rules loaded from a shared
 * object (see rules.h for the interface, include/paramd_rule.h for the
 * plugin ABI, docs/update-rules.md for every formula as implemented).
 *
 * Design.  Each built-in rule is one "block kernel": a function that
 * updates exactly BLOCK consecutive parameters, written as straight loops
 * over float arrays with restrict pointers and no branches.  One driver
 * (run_blocks) walks a run of n parameters block by block and pushes the
 * last n % BLOCK parameters through the same kernel on zero-padded copies,
 * so every parameter, tail or not, gets bit-for-bit the same arithmetic.
 *
 * Why blocks.  The build uses -O2, where GCC's vectorizer only runs with
 * its "very cheap" cost model: it vectorizes a loop only if it needs no
 * scalar epilogue, i.e. if the trip count is a known multiple of the
 * vector width.  A loop of BLOCK = 64 iterations qualifies for every width
 * up to AVX-512; a loop to n does not.  (At -O3 both would vectorize.)
 *
 * Why sqrt_block.  With the default -fmath-errno, sqrtf() may set errno, so
 * GCC compiles each call to a square-root instruction plus a branch to the
 * library for negative inputs, and a loop holding it is not vectorized.
 * sqrt_block takes the square roots of a block with the SSE/AVX instruction
 * (which is what sqrtf computes, correctly rounded, minus errno; our
 * inputs are never negative) and falls back to sqrtf elsewhere.  Built
 * with -fno-math-errno the plain loop is used and vectorizes by itself.
 *
 * Precision.  Parameters and state are float32; per-call constants (adam's
 * bias corrections, 1/alpha) are computed in double once per call and
 * rounded to float.  tests/test_rules.c checks every rule against a plain
 * double-precision version written straight from the formulas.
 *
 * What this file does not do: no locking (the caller serialises calls on
 * overlapping ranges), no allocation on the apply path, no global state.
 * Plugins are loaded with dlopen, and only from a file the process's own
 * operator allowed: a spec names a plugin (plugin=NAME) and
 * pd_rule_plugin_path resolves the name inside the plugin directory the
 * process was given, so no string from a peer ever reaches dlopen as a
 * path.  Everything a plugin can get wrong at load time (missing file or symbol, wrong ABI version, absurd state size) is an
 * error message, never a crash.  What it does when called is its business.
 */
#include "table/rules.h"

#include <assert.h>
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* How sqrt_block takes square roots (see the essay). */
#if defined(__NO_MATH_ERRNO__)
#define PD_SQRT_PLAIN 1 /* sqrtf vectorizes by itself */
#elif defined(__AVX512F__)
#include <immintrin.h>
#define PD_SQRT_AVX512 1
#elif defined(__AVX__)
#include <immintrin.h>
#define PD_SQRT_AVX 1
#elif defined(__SSE__)
#include <xmmintrin.h>
#define PD_SQRT_SSE 1
#else
#define PD_SQRT_PLAIN 1
#endif

#include "common/common.h"
#include "paramd_rule.h"

/* ==== Constants ========================================================== */

/* Parameters per kernel call: 256 bytes of each array.  A whole number of
 * vectors of every x86 width.  Long enough that the square roots a kernel
 * stores are out of the store buffer before its next loop reads them back
 * (with 16, adam ran much slower under -march=icelake-server, whose 32-byte
 * loads could not be forwarded from sqrt_block's 64-byte stores); short enough
 * that the zero-padded tail costs little for a sparse row of a few floats.
 * rules_bench measures it. */
#define BLOCK 64

static const char *const rule_names[PD_RULE_COUNT_] = {
    "add", "sgd", "momentum", "adagrad", "adam", "ftrl", "plugin"};

/* ==== Hyper-parameter table ============================================= */

/* The valid values of a hyper-parameter. */
typedef enum hyper_range {
    RANGE_POS,    /* finite, > 0 */
    RANGE_NONNEG, /* finite, >= 0 */
    RANGE_UNIT,   /* 0 <= x < 1 */
} hyper_range;

typedef struct hyper_spec {
    const char *name;
    size_t offset; /* in pd_rule_hyper */
    hyper_range range;
} hyper_spec;

/* In PARAMD_RULE_HYPER_* order (checked below). */
static const hyper_spec hyper_specs[PARAMD_RULE_NHYPER] = {
    {"lr", offsetof(pd_rule_hyper, lr), RANGE_POS},
    {"momentum", offsetof(pd_rule_hyper, momentum), RANGE_UNIT},
    {"beta1", offsetof(pd_rule_hyper, beta1), RANGE_UNIT},
    {"beta2", offsetof(pd_rule_hyper, beta2), RANGE_UNIT},
    {"eps", offsetof(pd_rule_hyper, eps), RANGE_POS},
    {"init_acc", offsetof(pd_rule_hyper, init_acc), RANGE_NONNEG},
    {"l1", offsetof(pd_rule_hyper, l1), RANGE_NONNEG},
    {"l2", offsetof(pd_rule_hyper, l2), RANGE_NONNEG},
    {"beta", offsetof(pd_rule_hyper, beta), RANGE_NONNEG},
};

/* pd_rule_hyper is the plugin's hyper array, field for field. */
_Static_assert(sizeof(pd_rule_hyper) == PARAMD_RULE_NHYPER * sizeof(double),
               "pd_rule_hyper must hold exactly the PARAMD_RULE_HYPER_* fields");
_Static_assert(offsetof(pd_rule_hyper, beta) ==
                   PARAMD_RULE_HYPER_BETA * sizeof(double),
               "pd_rule_hyper field order must match PARAMD_RULE_HYPER_*");

#define H(x) (1u << PARAMD_RULE_HYPER_##x)
/* Which hyper-parameters each rule reads. */
static const unsigned hyper_used[PD_RULE_COUNT_] = {
    [PD_RULE_ADD] = 0,
    [PD_RULE_SGD] = H(LR),
    [PD_RULE_MOMENTUM] = H(LR) | H(MOMENTUM),
    [PD_RULE_ADAGRAD] = H(LR) | H(INIT_ACC) | H(EPS),
    [PD_RULE_ADAM] = H(LR) | H(BETA1) | H(BETA2) | H(EPS),
    [PD_RULE_FTRL] = H(LR) | H(BETA) | H(L1) | H(L2),
    [PD_RULE_PLUGIN] = (1u << PARAMD_RULE_NHYPER) - 1,
};
#undef H

/* ==== Types ============================================================== */

struct pd_rule_plugin {
    void *dl;    /* dlopen handle */
    char *path;  /* as given, for messages */
    size_t k;    /* state floats per parameter */
    paramd_rule_apply_fn *apply;
    paramd_rule_init_state_fn *init; /* NULL: zeros */
    paramd_rule_check_fn *check;     /* NULL: anything goes */
};

/* Per-call constants of the built-in kernels, as float. */
typedef struct coef {
    float lr;          /* sgd, momentum, adagrad */
    float mu;          /* momentum */
    float eps;         /* adagrad, adam */
    float b1, one_b1;  /* adam: beta1, 1 - beta1 */
    float b2, one_b2;  /* adam: beta2, 1 - beta2 */
    float step_a;      /* adam: lr / (1 - beta1^t) */
    float step_b;      /* adam: 1 / sqrt(1 - beta2^t) */
    float inv_alpha;   /* ftrl: 1 / lr */
    float beta, l1, l2; /* ftrl */
} coef;

_Static_assert(BLOCK % 16 == 0, "BLOCK must be whole 64-byte vectors");

/* A block kernel: updates w[i .. i+BLOCK), planes s0, s1 at the same
 * offsets (NULL if the rule has fewer planes; never dereferenced then),
 * from g[i .. i+BLOCK). */
typedef void block_fn(float *restrict w, float *restrict s0,
                      float *restrict s1, const float *restrict g, size_t i,
                      const coef *c);

/* ==== Helpers ============================================================ */

/* snprintf into err if there is room; always returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(char *err,
                                                       size_t errlen,
                                                       const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static double hyper_get(const pd_rule_hyper *h, int idx) {
    double v;
    memcpy(&v, (const char *)h + hyper_specs[idx].offset, sizeof v);
    return v;
}

/* 0 if v is a valid value of hyper-parameter idx, else -1 and a message. */
static int hyper_validate(int idx, double v, char *err, size_t errlen) {
    const hyper_spec *s = &hyper_specs[idx];
    switch (s->range) {
    case RANGE_POS:
        if (isfinite(v) && v > 0) return 0;
        return fail(err, errlen,
                    "hyper-parameter %s=%g is out of range: it must be a "
                    "finite number > 0",
                    s->name, v);
    case RANGE_NONNEG:
        if (isfinite(v) && v >= 0) return 0;
        return fail(err, errlen,
                    "hyper-parameter %s=%g is out of range: it must be a "
                    "finite number >= 0",
                    s->name, v);
    case RANGE_UNIT:
        if (v >= 0 && v < 1) return 0;
        return fail(err, errlen,
                    "hyper-parameter %s=%g is out of range: it must be in "
                    "[0, 1)",
                    s->name, v);
    }
    return fail(err, errlen, "hyper-parameter %s: no range", s->name);
}

static int hyper_index(const char *key) {
    for (int i = 0; i < PARAMD_RULE_NHYPER; i++)
        if (strcmp(key, hyper_specs[i].name) == 0) return i;
    return -1;
}

static void hyper_to_array(const pd_rule_hyper *h,
                           double a[PARAMD_RULE_NHYPER]) {
    for (int i = 0; i < PARAMD_RULE_NHYPER; i++) a[i] = hyper_get(h, i);
}

/* out[j] = sqrt(in[j]) for j < BLOCK (see the essay: no errno, so it
 * vectorizes).  in and out may be the same array.  It uses the widest
 * vectors the target has, which may be wider or narrower than those GCC
 * picks for the loops around it (-mprefer-vector-width); BLOCK is long
 * enough for that not to matter. */
static inline void sqrt_block(float *out, const float *in) {
#if defined(PD_SQRT_AVX512)
    for (int j = 0; j < BLOCK; j += 16)
        _mm512_storeu_ps(out + j, _mm512_sqrt_ps(_mm512_loadu_ps(in + j)));
#elif defined(PD_SQRT_AVX)
    for (int j = 0; j < BLOCK; j += 8)
        _mm256_storeu_ps(out + j, _mm256_sqrt_ps(_mm256_loadu_ps(in + j)));
#elif defined(PD_SQRT_SSE)
    for (int j = 0; j < BLOCK; j += 4)
        _mm_storeu_ps(out + j, _mm_sqrt_ps(_mm_loadu_ps(in + j)));
#else
    for (int j = 0; j < BLOCK; j++) out[j] = sqrtf(in[j]);
#endif
}

/* ==== Block kernels ====================================================== */
/*
 * Shapes: w, g, s0, s1 are (n,) float arrays; each kernel touches
 * [i, i+BLOCK).  The formulas are the ones in docs/update-rules.md.
 */

/* w += g */
static void add_block(float *restrict w, float *restrict s0,
                      float *restrict s1, const float *restrict g, size_t i,
                      const coef *c) {
    (void)s0, (void)s1, (void)c;
    for (size_t j = 0; j < BLOCK; j++) w[i + j] += g[i + j];
}

/* w -= lr*g */
static void sgd_block(float *restrict w, float *restrict s0,
                      float *restrict s1, const float *restrict g, size_t i,
                      const coef *c) {
    (void)s0, (void)s1;
    const float lr = c->lr;
    for (size_t j = 0; j < BLOCK; j++) w[i + j] -= lr * g[i + j];
}

/* s0 = v:  v = mu*v + g;  w -= lr*v */
static void momentum_block(float *restrict w, float *restrict v,
                           float *restrict s1, const float *restrict g,
                           size_t i, const coef *c) {
    (void)s1;
    const float lr = c->lr, mu = c->mu;
    for (size_t j = 0; j < BLOCK; j++) {
        float vj = mu * v[i + j] + g[i + j];
        v[i + j] = vj;
        w[i + j] -= lr * vj;
    }
}

/* s0 = acc:  acc += g*g;  w -= lr*g / (sqrt(acc) + eps) */
static void adagrad_block(float *restrict w, float *restrict acc,
                          float *restrict s1, const float *restrict g,
                          size_t i, const coef *c) {
    (void)s1;
    const float lr = c->lr, eps = c->eps;
    float r[BLOCK];
    for (size_t j = 0; j < BLOCK; j++) {
        float gj = g[i + j];
        float a = acc[i + j] + gj * gj;
        acc[i + j] = a;
        r[j] = a;
    }
    sqrt_block(r, r);
    for (size_t j = 0; j < BLOCK; j++)
        w[i + j] -= lr * g[i + j] / (r[j] + eps);
}

/* s0 = m, s1 = v:
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
 *   w -= step_a*m / (sqrt(v)*step_b + eps)
 * which is lr*mhat / (sqrt(vhat) + eps) with mhat = m/(1-b1^t),
 * vhat = v/(1-b2^t). */
static void adam_block(float *restrict w, float *restrict m,
                       float *restrict v, const float *restrict g, size_t i,
                       const coef *c) {
    const float b1 = c->b1, one_b1 = c->one_b1, b2 = c->b2,
                one_b2 = c->one_b2;
    const float sa = c->step_a, sb = c->step_b, eps = c->eps;
    float r[BLOCK];
    for (size_t j = 0; j < BLOCK; j++) {
        float gj = g[i + j];
        m[i + j] = b1 * m[i + j] + one_b1 * gj;
        float vj = b2 * v[i + j] + one_b2 * (gj * gj);
        v[i + j] = vj;
        r[j] = vj;
    }
    sqrt_block(r, r);
    for (size_t j = 0; j < BLOCK; j++)
        w[i + j] -= sa * m[i + j] / (r[j] * sb + eps);
}

/* s0 = z, s1 = n (FTRL-proximal, McMahan et al. 2013, algorithm 1, with
 * the stored w as the weight the gradient was computed at):
 *   sigma = (sqrt(n + g*g) - sqrt(n)) / alpha
 *   z += g - sigma*w;  n += g*g
 *   w = |z| <= l1 ? 0 : -(z - sign(z)*l1) / ((beta + sqrt(n))/alpha + l2)
 * written without a branch: t = copysign(max(|z| - l1, 0), z) is 0 exactly
 * when |z| <= l1; the denominator is floored at FLT_MIN so that beta = l2 =
 * n = 0 gives w = 0 rather than 0/0; "+ 0.0f" turns -0 into +0 so sparse
 * weights are all-zero bits. */
static void ftrl_block(float *restrict w, float *restrict z,
                       float *restrict nacc, const float *restrict g,
                       size_t i, const coef *c) {
    const float ia = c->inv_alpha, beta = c->beta, l1 = c->l1, l2 = c->l2;
    float r0[BLOCK], r1[BLOCK];
    for (size_t j = 0; j < BLOCK; j++) {
        float gj = g[i + j];
        float n0 = nacc[i + j];
        float n1 = n0 + gj * gj;
        nacc[i + j] = n1;
        r0[j] = n0;
        r1[j] = n1;
    }
    sqrt_block(r0, r0);
    sqrt_block(r1, r1);
    for (size_t j = 0; j < BLOCK; j++) {
        float sigma = (r1[j] - r0[j]) * ia;
        float zj = z[i + j] + g[i + j] - sigma * w[i + j];
        z[i + j] = zj;
        float t = fabsf(zj) - l1;
        t = t > 0.0f ? t : 0.0f;
        t = copysignf(t, zj);
        float d = (beta + r1[j]) * ia + l2;
        d = d > FLT_MIN ? d : FLT_MIN;
        w[i + j] = -t / d + 0.0f;
    }
}

/* ==== Driver ============================================================= */

/* Run `f` over n parameters: whole blocks in place, then the tail through
 * zero-padded copies (zeros are a harmless input to every kernel).
 * Inlined into each caller so that f is a direct, inlined call. */
static inline __attribute__((always_inline)) void
run_blocks(block_fn *f, float *w, float *s0, float *s1, const float *g,
           size_t n, const coef *c) {
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) f(w, s0, s1, g, i, c);
    size_t rem = n - i;
    if (rem == 0) return;
    float tw[BLOCK] = {0}, t0[BLOCK] = {0}, t1[BLOCK] = {0}, tg[BLOCK] = {0};
    memcpy(tw, w + i, rem * sizeof(float));
    memcpy(tg, g + i, rem * sizeof(float));
    if (s0) memcpy(t0, s0 + i, rem * sizeof(float));
    if (s1) memcpy(t1, s1 + i, rem * sizeof(float));
    f(tw, t0, t1, tg, 0, c);
    memcpy(w + i, tw, rem * sizeof(float));
    if (s0) memcpy(s0 + i, t0, rem * sizeof(float));
    if (s1) memcpy(s1 + i, t1, rem * sizeof(float));
}

/* ==== Names and hyper-parameters ========================================= */

const char *pd_rule_name(pd_rule_kind kind) {
    if ((unsigned)kind >= PD_RULE_COUNT_) return NULL;
    return rule_names[kind];
}

int pd_rule_from_name(const char *name, pd_rule_kind *out) {
    if (!name) return -1;
    for (int k = 0; k < PD_RULE_PLUGIN; k++)
        if (strcmp(name, rule_names[k]) == 0) {
            *out = (pd_rule_kind)k;
            return 0;
        }
    return -1;
}

void pd_rule_defaults(pd_rule_kind kind, pd_rule_hyper *h) {
    /* Every field gets a valid value, whether the rule reads it or not. */
    h->lr = 0.01;
    h->momentum = 0.9;
    h->beta1 = 0.9;
    h->beta2 = 0.999;
    h->eps = 1e-8;
    h->init_acc = 0.1;
    h->l1 = 0.0;
    h->l2 = 0.0;
    h->beta = 1.0;
    switch (kind) {
    case PD_RULE_ADAGRAD:
        h->eps = 1e-10;
        break;
    case PD_RULE_ADAM:
        h->lr = 0.001;
        break;
    case PD_RULE_FTRL:
        h->lr = 0.05;
        break;
    default:
        break;
    }
}

int pd_rule_set_hyper(pd_rule_hyper *h, const char *key, double value,
                      char *err, size_t errlen) {
    int idx = key ? hyper_index(key) : -1;
    if (idx < 0)
        return fail(err, errlen,
                    "unknown hyper-parameter '%s' (known: lr momentum beta1 "
                    "beta2 eps init_acc l1 l2 beta)",
                    key ? key : "(null)");
    if (hyper_validate(idx, value, err, errlen) != 0) return -1;
    memcpy((char *)h + hyper_specs[idx].offset, &value, sizeof value);
    return 0;
}

int pd_rule_uses_hyper(pd_rule_kind kind, const char *key) {
    int idx = key ? hyper_index(key) : -1;
    if (idx < 0 || (unsigned)kind >= PD_RULE_COUNT_) return 0;
    return (hyper_used[kind] >> idx) & 1u;
}

int pd_rule_check(const pd_rule *r, char *err, size_t errlen) {
    if ((unsigned)r->kind >= PD_RULE_COUNT_)
        return fail(err, errlen, "unknown update rule %u", (unsigned)r->kind);
    for (int i = 0; i < PARAMD_RULE_NHYPER; i++)
        if ((hyper_used[r->kind] >> i) & 1u)
            if (hyper_validate(i, hyper_get(&r->hyper, i), err, errlen) != 0)
                return -1;
    if (r->kind != PD_RULE_PLUGIN) return 0;
    const pd_rule_plugin *p = r->plugin;
    if (!p) return fail(err, errlen, "rule plugin: no plugin loaded");
    if (!p->check) return 0;
    double a[PARAMD_RULE_NHYPER];
    char why[256] = "";
    hyper_to_array(&r->hyper, a);
    if (p->check(a, PARAMD_RULE_NHYPER, why, sizeof why) != 0) {
        why[sizeof why - 1] = '\0';
        return fail(err, errlen, "rule plugin '%s' rejects its hyper-parameters: %s",
                    p->path, why[0] ? why : "(no reason given)");
    }
    return 0;
}

void pd_rule_format(const pd_rule *r, char *buf, size_t len) {
    if (!buf || len == 0) return;
    buf[0] = '\0';
    if ((unsigned)r->kind >= PD_RULE_COUNT_) {
        snprintf(buf, len, "rule %u", (unsigned)r->kind);
        return;
    }
    int off;
    if (r->kind == PD_RULE_PLUGIN)
        off = snprintf(buf, len, "plugin %s",
                       r->plugin ? r->plugin->path : "(not loaded)");
    else
        off = snprintf(buf, len, "%s", rule_names[r->kind]);
    for (int i = 0; i < PARAMD_RULE_NHYPER; i++) {
        if (off < 0 || (size_t)off >= len) return;
        if (!((hyper_used[r->kind] >> i) & 1u)) continue;
        off += snprintf(buf + off, len - (size_t)off, " %s=%g",
                        hyper_specs[i].name, hyper_get(&r->hyper, i));
    }
}

/* ==== State and apply ==================================================== */

size_t pd_rule_state_floats(const pd_rule *r) {
    switch (r->kind) {
    case PD_RULE_MOMENTUM:
    case PD_RULE_ADAGRAD:
        return 1;
    case PD_RULE_ADAM:
    case PD_RULE_FTRL:
        return 2;
    case PD_RULE_PLUGIN:
        return r->plugin ? r->plugin->k : 0;
    default:
        return 0;
    }
}

void pd_rule_init_state(const pd_rule *r, float *state, size_t n) {
    pd_rule_init_state_strided(r, state, n, n);
}

void pd_rule_init_state_strided(const pd_rule *r, float *state,
                                size_t stride, size_t n) {
    size_t k = pd_rule_state_floats(r);
    if (k == 0 || n == 0) return;
    assert(stride >= n);
    if (r->kind == PD_RULE_PLUGIN && r->plugin->init) {
        float *planes[PARAMD_RULE_MAX_STATE_FLOATS];
        double a[PARAMD_RULE_NHYPER];
        for (size_t j = 0; j < k; j++) planes[j] = state + j * stride;
        hyper_to_array(&r->hyper, a);
        r->plugin->init(planes, n, a, PARAMD_RULE_NHYPER);
        return;
    }
    for (size_t j = 0; j < k; j++)
        memset(state + j * stride, 0, n * sizeof(float));
    if (r->kind == PD_RULE_ADAGRAD) {
        const float a0 = (float)r->hyper.init_acc;
        for (size_t i = 0; i < n; i++) state[i] = a0;
    }
}

void pd_rule_apply(const pd_rule *r, float *w, float *state, const float *g,
                   size_t n, int64_t step) {
    pd_rule_apply_strided(r, w, state, n, g, n, step);
}

void pd_rule_apply_strided(const pd_rule *r, float *w, float *state,
                           size_t stride, const float *g, size_t n,
                           int64_t step) {
    if (n == 0) return;
    if (step < 1) step = 1;
    const pd_rule_hyper *h = &r->hyper;
    size_t k = pd_rule_state_floats(r);
    assert(k == 0 || stride >= n);
    float *s0 = k > 0 ? state : NULL;
    float *s1 = k > 1 ? state + stride : NULL;
    coef c = {0};
    switch (r->kind) {
    case PD_RULE_ADD:
        run_blocks(add_block, w, NULL, NULL, g, n, &c);
        break;
    case PD_RULE_SGD:
        c.lr = (float)h->lr;
        run_blocks(sgd_block, w, NULL, NULL, g, n, &c);
        break;
    case PD_RULE_MOMENTUM:
        c.lr = (float)h->lr;
        c.mu = (float)h->momentum;
        run_blocks(momentum_block, w, s0, NULL, g, n, &c);
        break;
    case PD_RULE_ADAGRAD:
        c.lr = (float)h->lr;
        c.eps = (float)h->eps;
        run_blocks(adagrad_block, w, s0, NULL, g, n, &c);
        break;
    case PD_RULE_ADAM: {
        double t = (double)step;
        c.b1 = (float)h->beta1;
        c.one_b1 = (float)(1.0 - h->beta1);
        c.b2 = (float)h->beta2;
        c.one_b2 = (float)(1.0 - h->beta2);
        c.step_a = (float)(h->lr / (1.0 - pow(h->beta1, t)));
        c.step_b = (float)(1.0 / sqrt(1.0 - pow(h->beta2, t)));
        c.eps = (float)h->eps;
        run_blocks(adam_block, w, s0, s1, g, n, &c);
        break;
    }
    case PD_RULE_FTRL:
        c.inv_alpha = (float)(1.0 / h->lr);
        c.beta = (float)h->beta;
        c.l1 = (float)h->l1;
        c.l2 = (float)h->l2;
        run_blocks(ftrl_block, w, s0, s1, g, n, &c);
        break;
    case PD_RULE_PLUGIN: {
        const pd_rule_plugin *p = r->plugin;
        if (!p) return;
        float *planes[PARAMD_RULE_MAX_STATE_FLOATS];
        double a[PARAMD_RULE_NHYPER];
        for (size_t j = 0; j < k; j++) planes[j] = state + j * stride;
        hyper_to_array(h, a);
        p->apply(w, k ? planes : NULL, g, n, step, a, PARAMD_RULE_NHYPER);
        break;
    }
    default:
        break;
    }
}

/* ==== Plugins ============================================================ */

/* dlsym that tells "absent" apart; NULL with a message if required. */
static void *plugin_sym(void *dl, const char *path, const char *name,
                        int required, char *err, size_t errlen) {
    dlerror(); /* clear */
    void *sym = dlsym(dl, name);
    if (sym || !required) return sym;
    const char *why = dlerror();
    fail(err, errlen,
         "rule plugin '%s': missing symbol '%s' (%s); define it with the "
         "prototype in include/paramd_rule.h",
         path, name, why ? why : "it is NULL");
    return NULL;
}

int pd_rule_load_plugin(pd_rule *r, const char *path, char *err,
                        size_t errlen) {
    if (!r || !path || !path[0])
        return fail(err, errlen, "rule plugin: no path given");
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *why = dlerror();
        return fail(err, errlen, "rule plugin '%s': cannot load it: %s", path,
                    why ? why : "unknown dlopen error");
    }
    paramd_rule_abi_version_fn *abi;
    paramd_rule_state_floats_fn *nstate;
    paramd_rule_apply_fn *apply;
    /* POSIX guarantees data and function pointers convert. */
    abi = (paramd_rule_abi_version_fn *)plugin_sym(
        dl, path, "paramd_rule_abi_version", 1, err, errlen);
    if (!abi) goto fail;
    uint32_t version = abi();
    if (version != PARAMD_RULE_ABI_VERSION) {
        fail(err, errlen,
             "rule plugin '%s': paramd_rule_abi_version() is %u but this "
             "server speaks version %u; rebuild the plugin against this "
             "paramd's include/paramd_rule.h",
             path, (unsigned)version, (unsigned)PARAMD_RULE_ABI_VERSION);
        goto fail;
    }
    nstate = (paramd_rule_state_floats_fn *)plugin_sym(
        dl, path, "paramd_rule_state_floats", 1, err, errlen);
    if (!nstate) goto fail;
    apply = (paramd_rule_apply_fn *)plugin_sym(dl, path, "paramd_rule_apply",
                                               1, err, errlen);
    if (!apply) goto fail;
    size_t k = nstate();
    if (k > PARAMD_RULE_MAX_STATE_FLOATS) {
        fail(err, errlen,
             "rule plugin '%s': paramd_rule_state_floats() is %zu, more than "
             "the limit of %d state floats per parameter",
             path, k, PARAMD_RULE_MAX_STATE_FLOATS);
        goto fail;
    }
    pd_rule_plugin *p = pd_malloc(sizeof *p);
    char *copy = pd_strdup(path);
    if (!p || !copy) {
        pd_free(p);
        pd_free(copy);
        fail(err, errlen, "rule plugin '%s': out of memory", path);
        goto fail;
    }
    p->dl = dl;
    p->path = copy;
    p->k = k;
    p->apply = apply;
    p->init = (paramd_rule_init_state_fn *)plugin_sym(
        dl, path, "paramd_rule_init_state", 0, NULL, 0);
    p->check = (paramd_rule_check_fn *)plugin_sym(dl, path,
                                                  "paramd_rule_check", 0,
                                                  NULL, 0);
    pd_rule_release(r);
    r->kind = PD_RULE_PLUGIN;
    r->plugin = p;
    return 0;
fail:
    dlclose(dl);
    return -1;
}

int pd_rule_plugin_name_ok(const char *name) {
    size_t n = 0;
    for (; name && name[n]; n++) {
        char ch = name[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return n >= 1 && n <= PD_RULE_PLUGIN_NAME_MAX;
}

int pd_rule_plugin_path(const char *dir, const char *name, char *out, size_t outlen,
                        char *err, size_t errlen) {
    if (!pd_rule_plugin_name_ok(name))
        return fail(err, errlen,
                    "rule plugin '%s' is not a plugin name: plugins are named "
                    "(plugin=NAME: 1..%d letters, digits, '_' or '-') and loaded "
                    "only from the server's own --plugin-dir, never from a path "
                    "a client sends",
                    name ? name : "", PD_RULE_PLUGIN_NAME_MAX);
    if (!dir || !dir[0])
        return fail(err, errlen,
                    "rule plugin '%s': this process loads no plugins; start the "
                    "servers with --plugin-dir DIR (paramd local and paramd train "
                    "take --plugin-dir too) where DIR holds %s.so",
                    name, name);
    int n = snprintf(out, outlen, "%s/%s.so", dir, name);
    if (n < 0 || (size_t)n >= outlen)
        return fail(err, errlen, "rule plugin '%s': the path in --plugin-dir %s is too long",
                    name, dir);
    if (access(out, F_OK) != 0)
        return fail(err, errlen,
                    "rule plugin '%s' is not in this server's --plugin-dir: no "
                    "file %s; put %s.so there to allow it",
                    name, out, name);
    return 0;
}

void pd_rule_release(pd_rule *r) {
    if (!r || !r->plugin) return;
    pd_rule_plugin *p = r->plugin;
    r->plugin = NULL;
    dlclose(p->dl);
    pd_free(p->path);
    pd_free(p);
}
