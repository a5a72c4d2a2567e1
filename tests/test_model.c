/*
 * test_model.c - tests of src/train/model.c: kernels, gradients, learning.
 *
 *   1. Each fast kernel (BLAS fc, im2col + sgemm convolution) equals its
 *      plain-loop reference, on odd shapes and with a col buffer small
 *      enough to force several chunks.
 *   2. A whole model's gradient through the fast kernels equals the one
 *      through the reference kernels (pd_model_set_reference).
 *   3. Finite differences: for mlp and cnn on a batch of 2-3 samples, on
 *      indices drawn from every tensor (the largest gradients of each, so
 *      the comparison has digits to compare, plus random ones), with
 *      dropout off and with dropout on under a fixed seed (the mask is a
 *      function of the seed, so both sides see the same network).
 *   4. A few SGD steps on a fixed batch lower the loss.
 *   5. The bookkeeping: layout table, init statistics and determinism,
 *      dropout determinism, eval in chunks, argument errors, BLAS info.
 *
 * About the finite differences.  The forward pass runs in float, so the
 * loss carries rounding noise (measured: up to ~1e-6 on the cnn's loss of
 * ~4), which central differences divide by 2*eps.  The tolerance is
 * |fd - g| <= 1e-4 + 1e-2 * max(|fd|, |g|), with eps = 1e-2 when the
 * pattern is frozen (the loss is then smooth enough that eps = 1e-1 still
 * agrees to 6 digits) and 1e-3 when not.
 * ReLU and max-pool make the loss piecewise smooth, and for the cnn the
 * pieces are small: a conv1 weight moves 1568 pre-activations and 392
 * pool windows of each sample, and on random inputs the loss's slope along
 * it changes by several per cent within +-1e-3.  So the cnn is checked
 * with its ReLU/pool pattern frozen at the point of the gradient
 * (pd_model_freeze_pattern): the loss is then smooth, with the same
 * gradient at that point, and the check is tight.  The mlp, whose pieces
 * are large, is also checked unfrozen; there an index whose one-sided
 * differences disagree (a kink within eps) is skipped and counted, and at
 * most 5% may be.
 */
#include "check.h"
#include "train/model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ==== Helpers ========================================================== */

static uint64_t g_rng = 0x1234567887654321ull;

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

/* ==== 1. Kernels against their references ============================== */

static void test_fc_kernel(void) {
    enum { B = 7, IN = 13, OUT = 5 };
    float x[B * IN], W[IN * OUT], b[OUT], dy[B * OUT];
    float y1[B * OUT], y2[B * OUT], dW1[IN * OUT], dW2[IN * OUT], db1[OUT],
        db2[OUT], dx1[B * IN], dx2[B * IN];
    fill(x, B * IN, -1, 1);
    fill(W, IN * OUT, -1, 1);
    fill(b, OUT, -1, 1);
    fill(dy, B * OUT, -1, 1);
    pd_fc_forward(x, B, IN, OUT, W, b, y1);
    pd_fc_forward_ref(x, B, IN, OUT, W, b, y2);
    CHECK(rel_diff(y1, y2, B * OUT) < 1e-5);
    memset(dW1, 0x7f, sizeof dW1); /* the kernels overwrite, not add */
    pd_fc_backward(x, dy, B, IN, OUT, W, dW1, db1, dx1);
    pd_fc_backward_ref(x, dy, B, IN, OUT, W, dW2, db2, dx2);
    CHECK(rel_diff(dW1, dW2, IN * OUT) < 1e-5);
    CHECK(rel_diff(db1, db2, OUT) < 1e-5);
    CHECK(rel_diff(dx1, dx2, B * IN) < 1e-5);
    /* spot-check the reference itself: y[2][3] by hand */
    double acc = b[3];
    for (int i = 0; i < IN; i++) acc += (double)x[2 * IN + i] * W[i * OUT + 3];
    CHECK_NEAR(y2[2 * OUT + 3], acc, 1e-6);
    printf("test_fc_kernel: ok\n");
}

static void conv_case(int B, int H, int W, int Cin, int K, int Cout,
                      int chunk) {
    size_t nx = (size_t)B * H * W * Cin, ny = (size_t)B * H * W * Cout;
    size_t nw = (size_t)K * K * Cin * Cout;
    float *x = xmalloc(nx * 4), *w = xmalloc(nw * 4), *b = xmalloc(Cout * 4);
    float *dy = xmalloc(ny * 4), *y1 = xmalloc(ny * 4), *y2 = xmalloc(ny * 4);
    float *dw1 = xmalloc(nw * 4), *dw2 = xmalloc(nw * 4);
    float *db1 = xmalloc(Cout * 4), *db2 = xmalloc(Cout * 4);
    float *dx1 = xmalloc(nx * 4), *dx2 = xmalloc(nx * 4);
    size_t cap = pd_conv2d_col_floats(H, W, Cin, K) * (size_t)chunk;
    float *col = xmalloc(cap * 4);
    fill(x, nx, -1, 1);
    fill(w, nw, -1, 1);
    fill(b, Cout, -1, 1);
    fill(dy, ny, -1, 1);

    pd_conv2d_forward(x, B, H, W, Cin, K, Cout, w, b, y1, col, cap);
    pd_conv2d_forward_ref(x, B, H, W, Cin, K, Cout, w, b, y2);
    CHECK(rel_diff(y1, y2, ny) < 1e-5);

    memset(dx1, 0x7f, nx * 4);
    pd_conv2d_backward(x, dy, B, H, W, Cin, K, Cout, w, dw1, db1, dx1, col,
                       cap);
    pd_conv2d_backward_ref(x, dy, B, H, W, Cin, K, Cout, w, dw2, db2, dx2);
    CHECK(rel_diff(dw1, dw2, nw) < 1e-5);
    CHECK(rel_diff(db1, db2, Cout) < 1e-5);
    CHECK(rel_diff(dx1, dx2, nx) < 1e-5);
    /* dx NULL: the weights' gradient alone, same values */
    pd_conv2d_backward(x, dy, B, H, W, Cin, K, Cout, w, dw1, db1, NULL, col,
                       cap);
    CHECK(rel_diff(dw1, dw2, nw) < 1e-5);

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
}

static void test_conv_kernel(void) {
    conv_case(5, 7, 6, 3, 5, 4, 2);   /* chunks of 2, 2, 1 */
    conv_case(3, 6, 9, 2, 3, 5, 1);   /* one sample per chunk */
    conv_case(2, 4, 4, 1, 5, 3, 8);   /* kernel wider than half the image */
    conv_case(4, 28, 28, 1, 5, 8, 3); /* the cnn's first layer, fewer maps */
    printf("test_conv_kernel: ok\n");
}

/* ==== 2. Fast model against reference model ============================ */

static void test_model_fast_vs_reference(const char *name, int B) {
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
    pd_model_set_reference(m, 1);
    float l2 = pd_model_grad(m, params, x, y, B, g2, 1, 99);
    pd_model_set_reference(m, 0);
    CHECK_NEAR(l1, l2, 1e-5);
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

typedef struct fd_stats {
    int checked, skipped;
    double worst; /* max |fd - g| / (atol + rtol*max(|fd|,|g|)) */
} fd_stats;

/* Check index i of grad against central differences of the loss. */
static void fd_one(pd_model *m, float *params, const float *x, const uint8_t *y,
                   int B, int train, uint64_t seed, const float *grad,
                   uint64_t i, double l0, const char *tname, double eps,
                   fd_stats *st) {
    const double atol = 1e-4, rtol = 1e-2;
    float p = params[i];
    params[i] = p + (float)eps;
    double lp = pd_model_loss(m, params, x, y, B, train, seed);
    params[i] = p - (float)eps;
    double lm = pd_model_loss(m, params, x, y, B, train, seed);
    params[i] = p;
    /* the steps actually taken in float */
    double hp = (double)(float)(p + (float)eps) - p;
    double hm = p - (double)(float)(p - (float)eps);
    double fd = (lp - lm) / (hp + hm);
    double right = (lp - l0) / hp, left = (l0 - lm) / hm;
    if (fabs(right - left) > 2 * atol + 0.1 * fmax(fabs(right), fabs(left))) {
        st->skipped++; /* a kink between p - eps and p + eps */
        return;
    }
    double g = grad[i];
    double ratio = fabs(fd - g) / (atol + rtol * fmax(fabs(fd), fabs(g)));
    if (ratio > st->worst) st->worst = ratio;
    if (ratio > 1)
        CHECK_FAIL_(
            "%s: %s, flat index %llu: analytic %.6g, finite difference %.6g",
            pd_model_name(m), tname, (unsigned long long)i, g, fd);
    st->checked++;
}

/* Indices per tensor: the n_top largest |grad| and n_rand random ones.
 * frozen: finite differences with the ReLU/pool pattern frozen. */
static void grad_check(const char *name, int B, int train, int frozen,
                       int n_top, int n_rand) {
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
    pd_model_freeze_pattern(m, frozen);
    double l0 = pd_model_loss(m, params, x, y, B, train, seed);
    CHECK_NEAR(loss, l0, 1e-6); /* the same network both ways */

    fd_stats st = {0, 0, 0};
    for (int t = 0; t < pd_model_num_tensors(m); t++) {
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
        for (int k = 0; k < npicked; k++)
            fd_one(m, params, x, y, B, train, seed, grad, ti.offset + picked[k],
                   l0, ti.name, frozen ? 1e-2 : 1e-3, &st);
        /* a gradient of all zeros would make the check vacuous */
        CHECK(fabsf(g[picked[0]]) > 1e-6f);
    }
    if (frozen) CHECK_INT_EQ(st.skipped, 0); /* no kinks when frozen */
    CHECK(st.skipped * 20 <= st.checked + st.skipped); /* <= 5% at kinks */
    printf("grad_check(%s, B=%d, train=%d, frozen=%d): ok: %d indices, %d "
           "skipped at kinks, worst error %.2f of tolerance\n",
           name, B, train, frozen, st.checked, st.skipped, st.worst);
    free(params), free(grad), free(x);
    pd_model_free(m);
}

/* ==== 4. Learning ====================================================== */

/*
 * A synthetic batch of 20 images: class c is a bright 6x6 square at a
 * position given by c, plus noise.  SGD on that fixed batch must bring the
 * loss down well below ln(10).
 */
static void test_sgd_learns(const char *name, float lr, int steps) {
    enum { B = 20 };
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
    pd_model *m = make_model("cnn", 64, B); /* a narrow fc1: quicker */
    uint64_t np = pd_model_num_params(m);
    float *p = xmalloc(np * 4), *g1 = xmalloc(np * 4), *g2 = xmalloc(np * 4);
    float x[B * PD_MODEL_INPUT];
    uint8_t y[B] = {1, 7, 3};
    pd_model_init_params(m, p, 9);
    fill(x, B * PD_MODEL_INPUT, 0, 1);

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

    /* eval in chunks of max_batch equals one pass */
    double loss, acc;
    pd_model *m1 = make_model("cnn", 64, 1);
    pd_model_eval(m1, p, x, y, B, &loss, &acc);
    CHECK_NEAR(loss, pd_model_loss(m, p, x, y, B, 0, 0), 1e-6);
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
    printf("test_dropout_and_args: ok\n");
}

static void test_blas_info(void) {
    pd_blas_set_threads(1);
    const char *s = pd_blas_info();
    printf("test_blas_info: %s\n", s);
    CHECK(strncmp(s, "OpenBLAS", 8) == 0);
    CHECK(strstr(s, "1 thread)") != NULL);
}

/* ==== Main ============================================================= */

int main(void) {
    double t0 = now_s();
    test_blas_info();
    test_fc_kernel();
    test_conv_kernel();
    test_layout();
    test_init();
    test_dropout_and_args();
    test_model_fast_vs_reference("mlp", 3);
    test_model_fast_vs_reference("cnn", 2);
    grad_check("mlp", 3, 0, 0, 8, 12);
    grad_check("mlp", 3, 0, 1, 8, 12);
    grad_check("cnn", 2, 0, 1, 8, 12);
    grad_check("cnn", 2, 1, 1, 8, 12);
    test_sgd_learns("mlp", 0.1f, 30);
    test_sgd_learns("cnn", 0.05f, 20);
    printf("test_model: all ok in %.1f s\n", now_s() - t0);
    return 0;
}
