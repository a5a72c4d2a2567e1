/*
 * test_model.c - tests of src/train/model.c: kernels, gradients, learning.
 *
 *   1. Each fast kernel (BLAS fc, im2col + sgemm convolution) equals its
 *      plain-loop reference, element by element, within what float32
 *      rounding of that element's sum allows; on odd shapes and with a col
 *      buffer small enough to force several chunks.
 *   2. A whole model's gradient through the fast kernels equals the one
 *      through the reference kernels (pd_model_set_reference), both on the
 *      same ReLU/pool pattern.
 *   3. Finite differences: for mlp and cnn on a batch of 2-3 samples, on
 *      indices drawn from every tensor (the largest gradients of each, so
 *      the comparison has digits to compare, plus random ones), with
 *      dropout off and with dropout on under a fixed seed (the mask is a
 *      function of the seed, so both sides see the same network).
 *   4. A few SGD steps on a fixed batch lower the loss.
 *   5. The bookkeeping: layout table, init statistics and determinism,
 *      dropout determinism, eval in chunks, argument errors, BLAS info.
 *
 * Every kernel OpenBLAS may pick.  OpenBLAS chooses its kernels for the
 * CPU it runs on (or OPENBLAS_CORETYPE), and they differ in summation
 * order, blocking and fused multiply-adds, so float32 results differ in
 * their last bits from one CPU to the next.  No tolerance here is a number
 * that happened to pass on one CPU: each is derived from what float32
 * rounding can do to that computation, written next to it, or is the
 * rounding noise itself, measured at run time on the kernels in use
 * (loss_noise).  `test_model --blas` runs only what depends on the BLAS
 * kernels (sections 1-3 with fewer finite-difference probes, and the
 * determinism and eval checks of 5), and ctest runs it once more for each
 * core type of OpenBLAS (tests/blas_core.sh, docs/testing.md), so a test
 * that holds on one CPU only shows up here.
 *
 * About the finite differences.  The forward pass runs in float32, so the
 * loss carries rounding noise, different at p + eps and at p - eps; the
 * central difference divides that difference by 2 eps.  How large the
 * noise is depends on the kernels, the model and the point, so each check
 * measures it (loss_noise: the spread of the loss over rescalings of the
 * network that change every rounding and, in exact arithmetic, nothing
 * else) and a probe passes when
 *     |fd - g| <= NOISE_K * sqrt(2) * sigma / (2 eps) + rtol * max(|fd|,|g|)
 * (fd_one explains both terms).  So that a wrong gradient cannot hide in
 * the noise term, each tensor's largest |g| must be at least 30 times it:
 * there a gradient off by 5% fails, whatever the kernels' noise.
 * ReLU and max-pool make the loss piecewise smooth, and for the cnn the
 * pieces are small: a conv1 weight moves 1568 pre-activations and 392
 * pool windows of each sample, and on random inputs the loss's slope along
 * it changes by several per cent within +-1e-3.  So the cnn is checked
 * with its ReLU/pool pattern frozen at the point of the gradient
 * (pd_model_freeze_pattern): the loss is then smooth, with the same
 * gradient at that point, whatever kinks lie within eps, so no probe needs
 * skipping, and eps can be 1e-2, where the noise term is small.  The mlp,
 * whose pieces are large, is also checked with the pattern recomputed at
 * every point, as in training: where [p - eps, p + eps] holds no kink that
 * loss is bit for bit the frozen one, which the check confirms; where it
 * holds one, the probe is compared on the frozen pattern and counted
 * (fd_one).
 */
#include "check.h"
#include "train/model.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ==== Constants ======================================================== */

/* Unit roundoff of float32: each float operation returns the exact
 * result times (1 + d), |d| <= U32 (round to nearest). */
#define U32 0x1p-24

/* Samples of the loss's rounding noise per check (loss_noise), and how
 * many of its standard deviations a finite difference may be off (fd_one). */
#define NOISE_SAMPLES 16
#define NOISE_K 8.0

/* The exit status ctest reads as "skipped" (SKIP_RETURN_CODE in
 * CMakeLists.txt). */
#define EXIT_SKIP 77

/* ==== Helpers ========================================================== */

static uint64_t g_rng = 0x1234567887654321ull;

/* Each test draws its data from its own seed, so that it sees the same
 * data whichever tests ran before it (test_model --blas runs fewer). */
static void reseed(const char *tag, uint64_t k) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *tag; tag++) h = (h ^ (uint8_t)*tag) * 0x100000001b3ull;
    g_rng = h ^ (k * 0x9e3779b97f4a7c15ull);
}

static uint64_t next_u64(void) {
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)((next_u64() >> 40) * (1.0 / 16777216.0));
}

static void fill(float *a, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) a[i] = uniform(lo, hi);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    CHECK(p != NULL);
    return p;
}

/* A new array of |a[i]|. */
static float *abs_copy(const float *a, size_t n) {
    float *r = xmalloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++) r[i] = fabsf(a[i]);
    return r;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* max |a-b| / max(1e-3, max |b|): a relative distance between arrays */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, scale = 1e-3;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return d / scale;
}

static pd_model *make_model(const char *name, int hidden, int max_batch) {
    pd_model *m = NULL;
    char err[256];
    int rc = pd_model_create(name, hidden, max_batch, &m, err, sizeof err);
    if (rc != 0) CHECK_FAIL_("pd_model_create(%s): %s", name, err);
    return m;
}

/* ==== Rounding: what float32 may do to a sum ========================== */

/*
 * How far a float32 sum of n products may be from the exact sum, as a
 * fraction of S = the sum of the products' absolute values, in any order
 * of summation, with any blocking, with or without fused multiply-adds
 * (so for every kernel OpenBLAS has): the smaller of
 *   gamma_n = n u / (1 - n u), the worst case over all roundings (Higham,
 *     "Accuracy and Stability of Numerical Algorithms", 2nd ed., sec. 3.1);
 *   8 sqrt(n) u, which holds with probability at least 1 - 2n exp(-8^2/2)
 *     (1 - 1e-10 for the n <= 3136 here) when the roundings are
 *     independent with mean zero (Higham and Mary, "A new approach to
 *     probabilistic rounding error analysis", SIAM J. Sci. Comput. 41(5),
 *     2019), as they are for round-to-nearest on random data like these;
 *     the smaller one for n > 64;
 * plus 2u: the reference rounds its double result to float once, and S,
 * computed the same way, is itself rounded.
 */
static double sum_tol(long n) {
    double worst = n * U32 / (1 - n * U32), likely = 8 * sqrt((double)n) * U32;
    return fmin(worst, likely) + 2 * U32;
}

/*
 * Element by element, |fast - ref| <= sum_tol(nterms) * S, where S holds
 * each element's sum of |products| (the reference kernel run on the
 * operands' absolute values).  Fails naming the element; returns the
 * worst |fast - ref| as a fraction of what is allowed.
 */
static double check_within(const char *what, const float *fast,
                           const float *ref, const float *S, size_t count,
                           long nterms) {
    double tol = sum_tol(nterms), worst = 0;
    for (size_t i = 0; i < count; i++) {
        double d = fabs((double)fast[i] - ref[i]), allowed = tol * S[i];
        if (!(d <= allowed))
            CHECK_FAIL_("%s[%zu]: fast %.9g, reference %.9g differ by %.3g, "
                        "more than float32 rounding of a sum of %ld terms "
                        "allows (%.3g)",
                        what, i, fast[i], ref[i], d, nterms, allowed);
        if (allowed > 0) worst = fmax(worst, d / allowed);
    }
    return worst;
}

/* ==== 1. Kernels against their references ============================== */

static void test_fc_kernel(void) {
    enum { B = 7, IN = 13, OUT = 5 };
    reseed("fc", 0);
    float x[B * IN], W[IN * OUT], b[OUT], dy[B * OUT];
    float y1[B * OUT], y2[B * OUT], dW1[IN * OUT], dW2[IN * OUT], db1[OUT],
        db2[OUT], dx1[B * IN], dx2[B * IN];
    float Sy[B * OUT], SdW[IN * OUT], Sdb[OUT], Sdx[B * IN];
    fill(x, B * IN, -1, 1);
    fill(W, IN * OUT, -1, 1);
    fill(b, OUT, -1, 1);
    fill(dy, B * OUT, -1, 1);
    float *ax = abs_copy(x, B * IN), *aW = abs_copy(W, IN * OUT),
          *ab = abs_copy(b, OUT), *ady = abs_copy(dy, B * OUT);
    double worst = 0;

    /* y: IN products and the bias */
    pd_fc_forward(x, B, IN, OUT, W, b, y1);
    pd_fc_forward_ref(x, B, IN, OUT, W, b, y2);
    pd_fc_forward_ref(ax, B, IN, OUT, aW, ab, Sy);
    worst = fmax(worst, check_within("fc y", y1, y2, Sy, B * OUT, IN + 1));
    /* dW and db: sums over the batch; dx: over OUT */
    memset(dW1, 0x7f, sizeof dW1); /* the kernels overwrite, not add */
    pd_fc_backward(x, dy, B, IN, OUT, W, dW1, db1, dx1);
    pd_fc_backward_ref(x, dy, B, IN, OUT, W, dW2, db2, dx2);
    pd_fc_backward_ref(ax, ady, B, IN, OUT, aW, SdW, Sdb, Sdx);
    worst = fmax(worst, check_within("fc dW", dW1, dW2, SdW, IN * OUT, B));
    worst = fmax(worst, check_within("fc db", db1, db2, Sdb, OUT, B));
    worst = fmax(worst, check_within("fc dx", dx1, dx2, Sdx, B * IN, OUT));
    /* spot-check the reference itself: y[2][3] by hand */
    double acc = b[3];
    for (int i = 0; i < IN; i++) acc += (double)x[2 * IN + i] * W[i * OUT + 3];
    CHECK_NEAR(y2[2 * OUT + 3], acc, 1e-6);
    free(ax), free(aW), free(ab), free(ady);
    printf("test_fc_kernel: ok (worst %.2f of the rounding bound)\n", worst);
}

static double conv_case(int B, int H, int W, int Cin, int K, int Cout,
                        int chunk) {
    size_t nx = (size_t)B * H * W * Cin, ny = (size_t)B * H * W * Cout;
    size_t nw = (size_t)K * K * Cin * Cout;
    float *x = xmalloc(nx * 4), *w = xmalloc(nw * 4), *b = xmalloc(Cout * 4);
    float *dy = xmalloc(ny * 4), *y1 = xmalloc(ny * 4), *y2 = xmalloc(ny * 4);
    float *dw1 = xmalloc(nw * 4), *dw2 = xmalloc(nw * 4);
    float *db1 = xmalloc(Cout * 4), *db2 = xmalloc(Cout * 4);
    float *dx1 = xmalloc(nx * 4), *dx2 = xmalloc(nx * 4);
    float *Sy = xmalloc(ny * 4), *Sdw = xmalloc(nw * 4);
    float *Sdb = xmalloc(Cout * 4), *Sdx = xmalloc(nx * 4);
    size_t cap = pd_conv2d_col_floats(H, W, Cin, K) * (size_t)chunk;
    float *col = xmalloc(cap * 4);
    fill(x, nx, -1, 1);
    fill(w, nw, -1, 1);
    fill(b, Cout, -1, 1);
    fill(dy, ny, -1, 1);
    float *ax = abs_copy(x, nx), *aw = abs_copy(w, nw), *ab = abs_copy(b, Cout);
    float *ady = abs_copy(dy, ny);
    /* terms per element: y = bias + K*K*Cin products; dw and db sum over
     * every output pixel of every sample (across chunks too: the sgemm of
     * each chunk adds into dw); dx sums K*K*Cout products (an sgemm over
     * Cout per patch position, then col2im adds the K*K positions) */
    long n_y = (long)K * K * Cin + 1, n_dw = (long)B * H * W;
    long n_dx = (long)K * K * Cout;
    double worst = 0;

    pd_conv2d_forward(x, B, H, W, Cin, K, Cout, w, b, y1, col, cap);
    pd_conv2d_forward_ref(x, B, H, W, Cin, K, Cout, w, b, y2);
    pd_conv2d_forward_ref(ax, B, H, W, Cin, K, Cout, aw, ab, Sy);
    worst = fmax(worst, check_within("conv y", y1, y2, Sy, ny, n_y));

    memset(dx1, 0x7f, nx * 4);
    pd_conv2d_backward(x, dy, B, H, W, Cin, K, Cout, w, dw1, db1, dx1, col,
                       cap);
    pd_conv2d_backward_ref(x, dy, B, H, W, Cin, K, Cout, w, dw2, db2, dx2);
    pd_conv2d_backward_ref(ax, ady, B, H, W, Cin, K, Cout, aw, Sdw, Sdb, Sdx);
    worst = fmax(worst, check_within("conv dw", dw1, dw2, Sdw, nw, n_dw));
    worst = fmax(worst, check_within("conv db", db1, db2, Sdb, Cout, n_dw));
    worst = fmax(worst, check_within("conv dx", dx1, dx2, Sdx, nx, n_dx));
    /* dx NULL: the weights' gradient alone, same values */
    pd_conv2d_backward(x, dy, B, H, W, Cin, K, Cout, w, dw1, db1, NULL, col,
                       cap);
    worst = fmax(worst, check_within("conv dw", dw1, dw2, Sdw, nw, n_dw));

    /* the reference itself, one output by hand: y[n=B-1, i=0, j=W-1, o] */
    int n = B - 1, i = 0, j = W - 1, o = Cout - 1, pad = K / 2;
    double acc = b[o];
    for (int p = 0; p < K; p++)
        for (int q = 0; q < K; q++)
            for (int c = 0; c < Cin; c++) {
                int si = i + p - pad, sj = j + q - pad;
                if (si >= 0 && si < H && sj >= 0 && sj < W)
                    acc +=
                        (double)x[(((size_t)n * H + si) * W + sj) * Cin + c] *
                        w[((p * K + q) * Cin + c) * Cout + o];
            }
    CHECK_NEAR(y2[(((size_t)n * H + i) * W + j) * Cout + o], acc, 1e-6);

    free(x), free(w), free(b), free(dy), free(y1), free(y2), free(dw1);
    free(dw2), free(db1), free(db2), free(dx1), free(dx2), free(col);
    free(Sy), free(Sdw), free(Sdb), free(Sdx);
    free(ax), free(aw), free(ab), free(ady);
    return worst;
}

static void test_conv_kernel(void) {
    double worst = 0;
    reseed("conv", 0);
    worst = fmax(worst, conv_case(5, 7, 6, 3, 5, 4, 2)); /* chunks 2, 2, 1 */
    worst = fmax(worst, conv_case(3, 6, 9, 2, 3, 5, 1)); /* 1 per chunk */
    worst = fmax(worst, conv_case(2, 4, 4, 1, 5, 3, 8)); /* K > half image */
    /* the cnn's first layer, fewer maps */
    worst = fmax(worst, conv_case(4, 28, 28, 1, 5, 8, 3));
    printf("test_conv_kernel: ok (worst %.2f of the rounding bound)\n", worst);
}

/* ==== 2. Fast model against reference model ============================ */

static void test_model_fast_vs_reference(const char *name, int B) {
    reseed(name, (uint64_t)B);
    pd_model *m = make_model(name, 0, B);
    uint64_t np = pd_model_num_params(m);
    float *params = xmalloc(np * 4), *g1 = xmalloc(np * 4),
          *g2 = xmalloc(np * 4);
    float *x = xmalloc((size_t)B * PD_MODEL_INPUT * 4);
    uint8_t y[8];
    pd_model_init_params(m, params, 3);
    fill(x, (size_t)B * PD_MODEL_INPUT, 0, 1);
    for (int n = 0; n < B; n++) y[n] = (uint8_t)(next_u64() % 10);

    float l1 = pd_model_grad(m, params, x, y, B, g1, 1, 99);
    /* The reference runs on the fast pass's ReLU/pool pattern.  Left to
     * choose its own, a unit whose pre-activation is within rounding of 0,
     * or a pool window with a near-tie, could go one way in each pass; the
     * gradients then differ by that unit's whole contribution, a kink, not
     * rounding, and on some kernels only. */
    pd_model_freeze_pattern(m, 1);
    pd_model_set_reference(m, 1);
    float l2 = pd_model_grad(m, params, x, y, B, g2, 1, 99);
    pd_model_set_reference(m, 0);
    pd_model_freeze_pattern(m, 0);
    /* The two then differ by the fast pass's float32 rounding only (the
     * reference sums in double).  The loss carries a few ulps of it (test
     * 3 measures it); 1e-5 is about a hundred. */
    CHECK_NEAR(l1, l2, 1e-5);
    /* Per tensor, relative to its largest gradient: each of the model's
     * products (forward and backward, up to 3136 terms) adds a relative
     * error of about u sqrt(n) <= 3.4e-6, random in sign, a few of them
     * in a row; where a gradient is a sum of terms of both signs (a
     * bias's, over 392 pixels) the error is up to sqrt(n) times larger
     * relative to the sum.  That comes to about 1e-5 in the worst tensor;
     * 1e-4 leaves a factor of ten for the tail. */
    for (int t = 0; t < pd_model_num_tensors(m); t++) {
        pd_tensor_info ti;
        CHECK_OK(pd_model_tensor(m, t, &ti));
        double d = rel_diff(g1 + ti.offset, g2 + ti.offset, ti.count);
        if (!(d < 1e-4))
            CHECK_FAIL_("%s %s: fast and reference gradients differ by %g",
                        name, ti.name, d);
    }
    printf("test_model_fast_vs_reference(%s): ok (loss %.6f)\n", name, l1);
    free(params), free(g1), free(g2), free(x);
    pd_model_free(m);
}

/* ==== 3. Finite differences ============================================ */

/*
 * The rounding noise of the loss at params, on the kernels in use: the
 * standard deviation of the loss over NOISE_SAMPLES rescalings that leave
 * it unchanged in exact arithmetic.  A ReLU network is positively
 * homogeneous: multiplying layer l's weights by a_l / a_(l-1) and its bias
 * by a_l (a_0 = 1 at the input, a = 1 at the logits) multiplies its output
 * by a_l, which ReLU, max-pool and dropout pass on (ReLU(a v) = a ReLU(v)
 * for a > 0), so the logits are the same numbers.  The roundings are not:
 * no a_l is a power of two, so every product and sum in the network
 * (scaled by a_l) has other bits to round, as at a probe's p +- eps.
 * (Rounding the rescaled weights to float moves the loss by about
 * u |g.p|, far less.)  The pattern must be frozen at params: in exact
 * arithmetic the rescaled pass takes the same branches, but a unit within
 * rounding of 0 could flip.
 */
static double loss_noise(pd_model *m, const float *params, const float *x,
                         const uint8_t *y, int B, int train, uint64_t seed) {
    uint64_t np = pd_model_num_params(m);
    int nt = pd_model_num_tensors(m);
    float *q = xmalloc(np * 4);
    double l[NOISE_SAMPLES], mean = 0, var = 0;
    for (int k = 0; k < NOISE_SAMPLES; k++) {
        double prev = 1; /* a_(l-1) */
        for (int t = 0; t < nt; t += 2) {
            pd_tensor_info w, b;
            CHECK_OK(pd_model_tensor(m, t, &w));
            CHECK_OK(pd_model_tensor(m, t + 1, &b));
            CHECK(w.ndim > 1 && b.ndim == 1); /* (weights, bias) per layer */
            /* a in [1.1, 1.9] or its inverse; 1 for the logits */
            double a = t + 2 < nt ? uniform(1.1f, 1.9f) : 1.0;
            if (t + 2 < nt && (next_u64() & 1)) a = 1 / a;
            for (uint64_t i = 0; i < w.count; i++)
                q[w.offset + i] = (float)(params[w.offset + i] * (a / prev));
            for (uint64_t i = 0; i < b.count; i++)
                q[b.offset + i] = (float)(params[b.offset + i] * a);
            prev = a;
        }
        l[k] = pd_model_loss(m, q, x, y, B, train, seed);
        mean += l[k] / NOISE_SAMPLES;
    }
    for (int k = 0; k < NOISE_SAMPLES; k++)
        var += (l[k] - mean) * (l[k] - mean) / (NOISE_SAMPLES - 1);
    free(q);
    return sqrt(var);
}

typedef struct fd_ctx {
    pd_model *m;
    float *params;
    const float *x;
    const uint8_t *y;
    int B, train;
    uint64_t seed;
    int recompute; /* 1: also the loss with the pattern recomputed */
    double eps;    /* the step */
    double l0;     /* the loss at params */
    double sigma;  /* its rounding noise (loss_noise) */
} fd_ctx;

typedef struct fd_stats {
    int checked, at_kinks;
    double worst; /* max |fd - g| / tolerance */
} fd_stats;

static double fd_loss(const fd_ctx *c) {
    return pd_model_loss(c->m, c->params, c->x, c->y, c->B, c->train, c->seed);
}

/*
 * Check index i of grad against the central difference of the loss.  The
 * tolerance has two terms:
 *   noise: lp and lm each carry rounding noise of standard deviation
 *     sigma, independently, so fd carries sqrt(2) sigma / (hp + hm) (a
 *     probe changes fewer roundings than loss_noise's rescalings do, so
 *     if anything less).  sigma's estimate from NOISE_SAMPLES = 16 is above
 *     0.59 sigma with probability 99% (chi-square, 15 degrees of freedom),
 *     so NOISE_K = 8 of them is at least 4.7 standard deviations: exceeded
 *     by chance with probability below 3e-6 per probe, on any kernel.
 *   rtol = 1e-2: the step's truncation error eps^2 f'''/6, with f''' the
 *     third derivative of the softmax cross-entropy along the parameter -
 *     a property of the math at this point, the same on every CPU, and at
 *     eps = 1e-2 two orders of magnitude below rtol * |g| even for the
 *     most curved tensor (fc2) - and the analytic gradient's own float32
 *     rounding (section 2: below 1e-4 of it).
 * With c->recompute, the loss at p +- eps is also computed with the
 * pattern recomputed there, as in training.  [p - eps, p + eps] holds a
 * kink exactly when some unit's pattern (ReLU side, pool winner) at one
 * end differs from p's, and that shows without guessing: the loss with
 * the pattern recomputed is, bit for bit, the loss with p's pattern frozen
 * unless a unit on the way changed (the same kernels on the same operands
 * give the same bits).  With no kink, the frozen difference below is then
 * the true loss's.  With one, the true loss's difference would measure
 * the kink, not the gradient; the probe is compared on the frozen pattern
 * (whose derivative at p is the gradient all the same) and counted.  A
 * probe of a parameter after the last ReLU and pool (after_patterns)
 * cannot move a pattern: a kink there is a bug.
 */
static void fd_one(const fd_ctx *c, const float *grad, uint64_t i,
                   const char *tname, int after_patterns, fd_stats *st) {
    const double rtol = 1e-2;
    float p = c->params[i];
    float pp = p + (float)c->eps, pm = p - (float)c->eps;
    double hp = (double)pp - p, hm = p - (double)pm; /* the steps in float */
    pd_model_freeze_pattern(c->m, 1);
    c->params[i] = pp;
    double lp = fd_loss(c);
    c->params[i] = pm;
    double lm = fd_loss(c);
    c->params[i] = p;
    if (c->recompute) {
        pd_model_freeze_pattern(c->m, 0);
        c->params[i] = pp;
        double lp_free = fd_loss(c);
        c->params[i] = pm;
        double lm_free = fd_loss(c);
        c->params[i] = p;
        /* back to p's own pattern for the next probe (and deterministic) */
        CHECK(fd_loss(c) == c->l0);
        if (lp_free != lp || lm_free != lm) {
            if (after_patterns)
                CHECK_FAIL_("%s: %s, flat index %llu: the loss with the "
                            "pattern recomputed differs from the frozen one "
                            "(%.17g, %.17g against %.17g, %.17g), but this "
                            "parameter cannot move a pattern",
                            pd_model_name(c->m), tname, (unsigned long long)i,
                            lp_free, lm_free, lp, lm);
            st->at_kinks++;
        }
    }
    double fd = (lp - lm) / (hp + hm), g = grad[i];
    double noise = NOISE_K * M_SQRT2 * c->sigma / (hp + hm);
    double tol = noise + rtol * fmax(fabs(fd), fabs(g));
    double ratio = fabs(fd - g) / tol;
    if (ratio > st->worst) st->worst = ratio;
    if (!(ratio <= 1))
        CHECK_FAIL_("%s: %s, flat index %llu: analytic %.6g, finite "
                    "difference %.6g (tolerance %.3g, of it noise %.3g)",
                    pd_model_name(c->m), tname, (unsigned long long)i, g, fd,
                    tol, noise);
    st->checked++;
}

/* Indices per tensor: the n_top largest |grad| and n_rand random ones.
 * recompute: also with the pattern recomputed at every point (fd_one). */
static void grad_check(const char *name, int B, int train, int recompute,
                       double eps, int n_top, int n_rand) {
    reseed(name, (uint64_t)(B * 4 + train * 2 + recompute));
    pd_model *m = make_model(name, 0, B);
    uint64_t np = pd_model_num_params(m);
    float *params = xmalloc(np * 4), *grad = xmalloc(np * 4);
    float *x = xmalloc((size_t)B * PD_MODEL_INPUT * 4);
    uint8_t y[8];
    pd_model_init_params(m, params, 11);
    /* nonzero biases, so that their gradients are not a special case */
    for (int t = 0; t < pd_model_num_tensors(m); t++) {
        pd_tensor_info ti;
        CHECK_OK(pd_model_tensor(m, t, &ti));
        if (ti.ndim == 1) fill(params + ti.offset, ti.count, -0.05f, 0.05f);
    }
    fill(x, (size_t)B * PD_MODEL_INPUT, 0, 1);
    for (int n = 0; n < B; n++) y[n] = (uint8_t)(next_u64() % 10);
    const uint64_t seed = 2024;

    float loss = pd_model_grad(m, params, x, y, B, grad, train, seed);
    pd_model_freeze_pattern(m, 1);
    fd_ctx c = {m, params, x, y, B, train, seed, recompute, eps, 0, 0};
    c.l0 = fd_loss(&c);
    /* the same network both ways: the same pattern, kernels and operands
     * give the same bits */
    CHECK(loss == (float)c.l0);
    c.sigma = loss_noise(m, params, x, y, B, train, seed);
    const double noise = NOISE_K * M_SQRT2 * c.sigma / (2 * eps);

    fd_stats st = {0, 0, 0};
    double margin = INFINITY; /* min over tensors of largest |g| / noise */
    int nt = pd_model_num_tensors(m);
    for (int t = 0; t < nt; t++) {
        pd_tensor_info ti;
        CHECK_OK(pd_model_tensor(m, t, &ti));
        const float *g = grad + ti.offset;
        /* the n_top largest |g| (one pass, insertion into a sorted list;
         * picked[0] is the largest) */
        uint64_t picked[64];
        int npicked = 0;
        for (uint64_t i = 0; i < ti.count; i++) {
            if (npicked == n_top &&
                !(fabsf(g[i]) > fabsf(g[picked[n_top - 1]])))
                continue;
            int k = npicked < n_top ? npicked++ : n_top - 1;
            for (; k > 0 && fabsf(g[picked[k - 1]]) < fabsf(g[i]); k--)
                picked[k] = picked[k - 1];
            picked[k] = i;
        }
        for (int k = 0; k < n_rand; k++)
            picked[npicked++] = next_u64() % ti.count;
        /* the largest gradients tower over the noise term, so that a wrong
         * one cannot pass for noise (this also rules out all zeros) */
        if (!(fabsf(g[picked[0]]) >= 30 * noise))
            CHECK_FAIL_("%s %s: largest gradient %.3g is not 30 times the "
                        "loss's rounding noise over the step (%.3g): the "
                        "finite differences could not tell it from wrong",
                        name, ti.name, fabsf(g[picked[0]]), noise);
        margin = fmin(margin, fabsf(g[picked[0]]) / noise);
        for (int k = 0; k < npicked; k++)
            fd_one(&c, grad, ti.offset + picked[k], ti.name, t >= nt - 2, &st);
    }
    pd_model_freeze_pattern(m, 0);
    char kinks[48] = "";
    if (recompute) snprintf(kinks, sizeof kinks, " (%d at kinks)", st.at_kinks);
    printf("grad_check(%s, B=%d, train=%d, pattern %s, eps=%g): ok: %d "
           "indices%s, worst error %.2f of tolerance (noise term %.2g, "
           "largest |g| >= %.0f of it)\n",
           name, B, train, recompute ? "recomputed" : "frozen", eps, st.checked,
           kinks, st.worst, noise, margin);
    free(params), free(grad), free(x);
    pd_model_free(m);
}

/* ==== 4. Learning ====================================================== */

/*
 * A synthetic batch of 20 images: class c is a bright 6x6 square at a
 * position given by c, plus noise.  SGD on that fixed batch must bring the
 * loss down well below ln(10).  The bounds are coarse on purpose: another
 * kernel's rounding moves the trajectory, but not whether so separable a
 * batch is learned (it ends far below them).
 */
static void test_sgd_learns(const char *name, float lr, int steps) {
    enum { B = 20 };
    reseed(name, 20);
    pd_model *m = make_model(name, 0, B);
    uint64_t np = pd_model_num_params(m);
    float *params = xmalloc(np * 4), *grad = xmalloc(np * 4);
    float *x = xmalloc((size_t)B * PD_MODEL_INPUT * 4);
    uint8_t y[B];
    for (int n = 0; n < B; n++) {
        int c = n % 10;
        y[n] = (uint8_t)c;
        float *img = x + (size_t)n * PD_MODEL_INPUT;
        fill(img, PD_MODEL_INPUT, 0, 0.3f);
        int r0 = 2 + (c / 5) * 12, c0 = 2 + (c % 5) * 5;
        for (int r = r0; r < r0 + 6; r++)
            for (int k = c0; k < c0 + 6 && k < 28; k++) img[r * 28 + k] = 1;
    }
    pd_model_init_params(m, params, 5);
    double first = pd_model_loss(m, params, x, y, B, 0, 0), last = first;
    for (int s = 0; s < steps; s++) {
        float l = pd_model_grad(m, params, x, y, B, grad, 1, (uint64_t)s);
        CHECK(isfinite(l));
        for (uint64_t i = 0; i < np; i++) params[i] -= lr * grad[i];
    }
    last = pd_model_loss(m, params, x, y, B, 0, 0);
    double eloss, eacc;
    pd_model_eval(m, params, x, y, B, &eloss, &eacc);
    printf("test_sgd_learns(%s): loss %.4f -> %.4f after %d steps, batch "
           "accuracy %.2f\n",
           name, first, last, steps, eacc);
    CHECK(first > 2.0);
    CHECK(last < 0.3 * first);
    CHECK(eacc >= 0.9);
    free(params), free(grad), free(x);
    pd_model_free(m);
}

/* ==== 5. Bookkeeping =================================================== */

static void test_layout(void) {
    static const struct {
        const char *model;
        uint64_t nparams;
        const char *names[9];
    } want[2] = {
        {"mlp",
         784 * 256 + 256 + 256 * 10 + 10,
         {"fc1.w", "fc1.b", "fc2.w", "fc2.b"}},
        {"cnn",
         5 * 5 * 32 + 32 + 5 * 5 * 32 * 64 + 64 + 3136 * 1024 + 1024 +
             1024 * 10 + 10,
         {"conv1.w", "conv1.b", "conv2.w", "conv2.b", "fc1.w", "fc1.b", "fc2.w",
          "fc2.b"}},
    };
    for (int k = 0; k < 2; k++) {
        pd_model *m = make_model(want[k].model, 0, 4);
        CHECK_STR_EQ(pd_model_name(m), want[k].model);
        CHECK_INT_EQ(pd_model_num_params(m), want[k].nparams);
        CHECK_INT_EQ(pd_model_max_batch(m), 4);
        uint64_t off = 0;
        int t = 0;
        for (; t < pd_model_num_tensors(m); t++) {
            pd_tensor_info ti;
            CHECK_OK(pd_model_tensor(m, t, &ti));
            CHECK_STR_EQ(ti.name, want[k].names[t]);
            CHECK_INT_EQ(ti.offset, off);
            uint64_t count = 1;
            for (int d = 0; d < ti.ndim; d++) count *= (uint64_t)ti.shape[d];
            CHECK_INT_EQ(count, ti.count);
            off += ti.count;
        }
        CHECK(want[k].names[t] == NULL);
        CHECK_INT_EQ(off, want[k].nparams);
        pd_tensor_info ti;
        CHECK_INT_EQ(pd_model_tensor(m, t, &ti), -1);
        CHECK_INT_EQ(pd_model_tensor(m, -1, &ti), -1);
        pd_model_free(m);
    }
    /* the cnn's fc1 is (3136, 1024) and conv2 is (5, 5, 32, 64) */
    pd_model *m = make_model("cnn", 0, 1);
    pd_tensor_info ti;
    CHECK_OK(pd_model_tensor(m, 2, &ti));
    CHECK(ti.ndim == 4 && ti.shape[0] == 5 && ti.shape[1] == 5 &&
          ti.shape[2] == 32 && ti.shape[3] == 64);
    CHECK_OK(pd_model_tensor(m, 4, &ti));
    CHECK(ti.ndim == 2 && ti.shape[0] == 3136 && ti.shape[1] == 1024);
    CHECK(pd_model_flops(m) > 80e6 && pd_model_flops(m) < 84e6);
    pd_model_free(m);
    /* hidden sets the width */
    m = make_model("mlp", 100, 1);
    CHECK_INT_EQ(pd_model_num_params(m), 784 * 100 + 100 + 100 * 10 + 10);
    pd_model_free(m);
    printf("test_layout: ok\n");
}

static void test_init(void) {
    pd_model *m = make_model("cnn", 0, 1);
    uint64_t np = pd_model_num_params(m);
    float *a = xmalloc(np * 4), *b = xmalloc(np * 4), *c = xmalloc(np * 4);
    pd_model_init_params(m, a, 1);
    pd_model_init_params(m, b, 1);
    pd_model_init_params(m, c, 2);
    CHECK(memcmp(a, b, np * 4) == 0);
    CHECK(memcmp(a, c, np * 4) != 0);
    for (int t = 0; t < pd_model_num_tensors(m); t++) {
        pd_tensor_info ti;
        CHECK_OK(pd_model_tensor(m, t, &ti));
        const float *p = a + ti.offset;
        double s = 0, s2 = 0;
        for (uint64_t i = 0; i < ti.count; i++) s += p[i], s2 += p[i] * p[i];
        double mean = s / ti.count, sd = sqrt(s2 / ti.count - mean * mean);
        if (ti.ndim == 1) {
            CHECK(s2 == 0); /* biases start at 0 */
            continue;
        }
        int fan_in = ti.ndim == 4 ? ti.shape[0] * ti.shape[1] * ti.shape[2]
                                  : ti.shape[0];
        int fan_out = ti.ndim == 4 ? ti.shape[3] : ti.shape[1];
        double want = strcmp(ti.name, "fc2.w") == 0
                          ? sqrt(2.0 / (fan_in + fan_out))
                          : sqrt(2.0 / fan_in);
        if (!(fabs(sd - want) < 0.1 * want && fabs(mean) < 0.1 * want))
            CHECK_FAIL_("%s: mean %g sd %g, want sd %g", ti.name, mean, sd,
                        want);
    }
    free(a), free(b), free(c);
    pd_model_free(m);
    printf("test_init: ok\n");
}

static void test_dropout_and_args(void) {
    enum { B = 3 };
    reseed("dropout", 0);
    pd_model *m = make_model("cnn", 64, B); /* a narrow fc1: quicker */
    uint64_t np = pd_model_num_params(m);
    float *p = xmalloc(np * 4), *g1 = xmalloc(np * 4), *g2 = xmalloc(np * 4);
    float x[B * PD_MODEL_INPUT];
    uint8_t y[B] = {1, 7, 3};
    pd_model_init_params(m, p, 9);
    fill(x, B * PD_MODEL_INPUT, 0, 1);

    /* exact equalities: the same kernels on the same operands give the
     * same bits, on any CPU */
    float a = pd_model_grad(m, p, x, y, B, g1, 1, 5);
    float b = pd_model_grad(m, p, x, y, B, g2, 1, 5);
    CHECK(a == b && memcmp(g1, g2, np * 4) == 0); /* same seed, same mask */
    b = pd_model_grad(m, p, x, y, B, g2, 1, 6);
    CHECK(memcmp(g1, g2, np * 4) != 0); /* another seed, another mask */
    float c = pd_model_grad(m, p, x, y, B, g1, 0, 5);
    float d = pd_model_grad(m, p, x, y, B, g2, 0, 6);
    CHECK(c == d && memcmp(g1, g2, np * 4) == 0); /* train=0: no dropout */
    (void)b;

    /* bad arguments: NAN, grad untouched */
    memset(g1, 0, np * 4);
    CHECK(isnan(pd_model_grad(m, p, x, y, B + 1, g1, 0, 0)));
    CHECK(isnan(pd_model_grad(m, p, x, y, 0, g1, 0, 0)));
    uint8_t bad[B] = {1, 10, 3};
    CHECK(isnan(pd_model_grad(m, p, x, bad, B, g1, 0, 0)));
    for (uint64_t i = 0; i < np; i++) CHECK(g1[i] == 0);

    /* Eval in chunks of max_batch equals one pass, up to rounding: the
     * sgemm shapes differ, so the kernels sum in another order; two
     * evaluations differ by sqrt(2) times the loss's rounding noise (see
     * fd_one for the factor NOISE_K). */
    double loss, acc, whole = pd_model_loss(m, p, x, y, B, 0, 0);
    pd_model_freeze_pattern(m, 1);
    double sigma = loss_noise(m, p, x, y, B, 0, 0);
    pd_model_freeze_pattern(m, 0);
    pd_model *m1 = make_model("cnn", 64, 1);
    pd_model_eval(m1, p, x, y, B, &loss, &acc);
    double eval_ratio = fabs(loss - whole) / (NOISE_K * M_SQRT2 * sigma);
    if (!(eval_ratio <= 1))
        CHECK_FAIL_("eval in chunks: loss %.9g, in one pass %.9g: more apart "
                    "than rounding noise (sigma %.3g) explains",
                    loss, whole, sigma);
    CHECK(acc >= 0 && acc <= 1 && fabs(acc * B - round(acc * B)) < 1e-9);
    pd_model_eval(m1, p, x, y, 0, &loss, &acc);
    CHECK(loss == 0 && acc == 0);
    pd_model_free(m1);

    /* constructor errors */
    pd_model *bad_m = (pd_model *)1;
    char err[256];
    CHECK_INT_EQ(pd_model_create("resnet", 0, 4, &bad_m, err, sizeof err), -1);
    CHECK(bad_m == NULL && strstr(err, "unknown model 'resnet'"));
    CHECK_INT_EQ(pd_model_create("mlp", 0, 0, &bad_m, err, sizeof err), -1);
    CHECK(strstr(err, "max_batch"));
    CHECK_INT_EQ(pd_model_create("mlp", -3, 4, &bad_m, err, sizeof err), -1);
    CHECK(strstr(err, "hidden"));
    pd_model_free(NULL);

    free(p), free(g1), free(g2);
    pd_model_free(m);
    printf("test_dropout_and_args: ok (eval in chunks off by %.2f of the "
           "tolerance, noise sigma %.2g)\n",
           eval_ratio, sigma);
}

/* One BLAS thread for the whole run (the results do not depend on it, the
 * timing on a shared machine does).  blas_only: the run is meant for the
 * kernels OPENBLAS_CORETYPE names; if OpenBLAS does not know the name
 * (it then falls back to the CPU's own kernels, saying "Core not found"
 * or nothing) the run would test something else: skip, saying so. */
static void test_blas_info(int blas_only) {
    pd_blas_set_threads(1);
    const char *s = pd_blas_info();
    printf("test_blas_info: %s\n", s);
    CHECK(strncmp(s, "OpenBLAS", 8) == 0);
    CHECK(strstr(s, "1 thread)") != NULL);
    const char *want = getenv("OPENBLAS_CORETYPE");
    const char *core = openblas_get_corename();
    if (blas_only && want && *want && strcasecmp(want, core ? core : "") != 0) {
        printf("SKIPPED: OPENBLAS_CORETYPE=%s is not a core type this "
               "OpenBLAS can select: it runs its %s kernels instead\n",
               want, core ? core : "(unnamed)");
        exit(EXIT_SKIP);
    }
}

/* ==== Main ============================================================= */

int main(int argc, char **argv) {
    int blas_only = argc == 2 && strcmp(argv[1], "--blas") == 0;
    if (argc > 1 && !blas_only) {
        fprintf(stderr,
                "usage: test_model [--blas]\n"
                "  --blas  only the checks whose results depend on the BLAS "
                "kernels (kernels\n"
                "          and models against their references, finite "
                "differences with fewer\n"
                "          probes, determinism, eval in chunks); ctest runs "
                "it under each\n"
                "          OPENBLAS_CORETYPE (tests/blas_core.sh)\n");
        return 2;
    }
    double t0 = now_s();
    test_blas_info(blas_only);
    test_fc_kernel();
    test_conv_kernel();
    if (!blas_only) {
        test_layout();
        test_init();
    }
    test_dropout_and_args();
    test_model_fast_vs_reference("mlp", 3);
    test_model_fast_vs_reference("cnn", 2);
    grad_check("mlp", 3, 0, 1, 1e-2, 8, 12);
    grad_check("mlp", 3, 0, 0, 1e-2, 8, 12);
    if (blas_only) {
        grad_check("cnn", 2, 1, 0, 1e-2, 4, 4);
    } else {
        grad_check("cnn", 2, 0, 0, 1e-2, 8, 12);
        grad_check("cnn", 2, 1, 0, 1e-2, 8, 12);
        test_sgd_learns("mlp", 0.1f, 30);
        test_sgd_learns("cnn", 0.05f, 20);
    }
    printf("test_model: all ok%s in %.1f s\n",
           blas_only ? " (the BLAS-dependent checks)" : "", now_s() - t0);
    return 0;
}
