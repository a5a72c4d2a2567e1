/*
 * kernels.c - the numeric kernels of the mlp and cnn (model.c runs them
 * layer by layer): fully connected and convolution layers forward and
 * backward, each fast path (OpenBLAS sgemm, im2col) beside its plain
 * reference (*_ref: loops written for obviousness, accumulating in
 * double), and the elementwise, pooling and loss kernels.  Every kernel
 * opens with its shapes; model.h declares them and says the layouts.
 * tests/test_model.c compares each fast kernel with its reference.
 *
 * A convolution is im2col + one sgemm per chunk of samples: in NHWC one
 * im2col row is K runs of K*Cin contiguous floats, so building it is K
 * memcpy's per output pixel.  The chunk is as many samples as the col
 * buffer holds (model.c's COL_FLOATS, 1 MB: 1 sample of conv2, 13 of
 * conv1), which bounds the scratch whatever max_batch is.  Small chunks
 * are faster than large ones (bench/README.md): the im2col, the sgemm's
 * output and col2im stay in L2.  The backward pass rebuilds the im2col of
 * each chunk rather than keeping it from the forward pass: it is cheap
 * next to the sgemm and saves 0.6 MB per sample.
 */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "train/kernels.h"
#include "train/model.h"

/* ==== Kernels: fully connected ========================================= */

/* x (B,in), W (in,out), b (out) -> y (B,out) = x W + b */
void pd_fc_forward(const float *x, int B, int in, int out, const float *W,
                   const float *b, float *y) {
    for (int n = 0; n < B; n++)
        memcpy(y + (size_t)n * out, b, (size_t)out * sizeof *y);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, out, in, 1.0f, x,
                in, W, out, 1.0f, y, out);
}

void pd_fc_forward_ref(const float *x, int B, int in, int out, const float *W,
                       const float *b, float *y) {
    for (int n = 0; n < B; n++)
        for (int o = 0; o < out; o++) {
            double acc = b[o];
            for (int i = 0; i < in; i++)
                acc += (double)x[(size_t)n * in + i] * W[(size_t)i * out + o];
            y[(size_t)n * out + o] = (float)acc;
        }
}

/* dy (B,out) -> dW (in,out) = x^T dy, db (out) = sum_n dy,
 * dx (B,in) = dy W^T */
void pd_fc_backward(const float *x, const float *dy, int B, int in, int out,
                    const float *W, float *dW, float *db, float *dx) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, B, 1.0f, x,
                in, dy, out, 0.0f, dW, out);
    memcpy(db, dy, (size_t)out * sizeof *db);
    for (int n = 1; n < B; n++)
        for (int o = 0; o < out; o++) db[o] += dy[(size_t)n * out + o];
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, in, out, 1.0f,
                    dy, out, W, out, 0.0f, dx, in);
}

void pd_fc_backward_ref(const float *x, const float *dy, int B, int in, int out,
                        const float *W, float *dW, float *db, float *dx) {
    for (int i = 0; i < in; i++)
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int n = 0; n < B; n++)
                acc += (double)x[(size_t)n * in + i] * dy[(size_t)n * out + o];
            dW[(size_t)i * out + o] = (float)acc;
        }
    for (int o = 0; o < out; o++) {
        double acc = 0;
        for (int n = 0; n < B; n++) acc += dy[(size_t)n * out + o];
        db[o] = (float)acc;
    }
    if (!dx) return;
    for (int n = 0; n < B; n++)
        for (int i = 0; i < in; i++) {
            double acc = 0;
            for (int o = 0; o < out; o++)
                acc += (double)dy[(size_t)n * out + o] * W[(size_t)i * out + o];
            dx[(size_t)n * in + i] = (float)acc;
        }
}

/* ==== Kernels: convolution ============================================= */

size_t pd_conv2d_col_floats(int H, int W, int Cin, int K) {
    return (size_t)H * W * K * K * Cin;
}

/*
 * One sample: x (H,W,C) -> col (H*W, K*K*C); row i*W+j holds the patch
 * centred on (i,j) in (p,q,c) order, zeros where it leaves the image.  For
 * a fixed kernel row p the patch is one contiguous run of x (columns
 * j-K/2 .. j+K/2, all channels), clipped at the borders.
 */
static void im2col(const float *x, int H, int W, int C, int K, float *col) {
    int pad = K / 2;
    size_t KC = (size_t)K * C, row = (size_t)K * KC;
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            float *r = col + ((size_t)i * W + j) * row;
            int q0 = imax(0, pad - j), q1 = imin(K, W + pad - j); /* [q0,q1) */
            for (int p = 0; p < K; p++) {
                float *seg = r + p * KC;
                int si = i + p - pad;
                if (si < 0 || si >= H) {
                    memset(seg, 0, KC * sizeof *seg);
                    continue;
                }
                const float *src = x + ((size_t)si * W + (j + q0 - pad)) * C;
                size_t lo = (size_t)q0 * C, hi = (size_t)q1 * C;
                if (KC <= 16) { /* conv1 (C = 1): runs too short for memcpy */
                    for (size_t t = 0; t < KC; t++)
                        seg[t] = t >= lo && t < hi ? src[t - lo] : 0.0f;
                    continue;
                }
                if (lo > 0) memset(seg, 0, lo * sizeof *seg);
                memcpy(seg + lo, src, (hi - lo) * sizeof *seg);
                if (hi < KC) memset(seg + hi, 0, (KC - hi) * sizeof *seg);
            }
        }
}

/* The adjoint of im2col: dx (H,W,C) = sum of col's patches put back where
 * they came from (overwrites dx).  The adds are saxpy's: the build's -O2
 * does not vectorize a loop of unknown length, OpenBLAS's saxpy is. */
static void col2im(const float *col, int H, int W, int C, int K, float *dx) {
    int pad = K / 2;
    size_t KC = (size_t)K * C, row = (size_t)K * KC;
    memset(dx, 0, (size_t)H * W * C * sizeof *dx);
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            const float *r = col + ((size_t)i * W + j) * row;
            int q0 = imax(0, pad - j), q1 = imin(K, W + pad - j);
            size_t len = (size_t)(q1 - q0) * C;
            for (int p = 0; p < K; p++) {
                int si = i + p - pad;
                if (si < 0 || si >= H) continue;
                const float *seg = r + p * KC + (size_t)q0 * C;
                float *dst = dx + ((size_t)si * W + (j + q0 - pad)) * C;
                cblas_saxpy((int)len, 1.0f, seg, 1, dst, 1);
            }
        }
}

/* Samples per sgemm: as many as the col buffer holds, at least 1. */
static int conv_chunk(int B, size_t per_sample, size_t col_cap) {
    size_t c = col_cap / per_sample;
    assert(c >= 1);
    return c >= (size_t)B ? B : (int)c;
}

/*
 * x (B,H,W,Cin), w (K*K*Cin, Cout), b (Cout) -> y (B,H,W,Cout).
 * Per chunk of nb samples: col (nb*H*W, KKC) = im2col(x);
 * y (nb*H*W, Cout) = b + col w.
 */
void pd_conv2d_forward(const float *x, int B, int H, int W, int Cin, int K,
                       int Cout, const float *w, const float *b, float *y,
                       float *col, size_t col_cap) {
    size_t per = pd_conv2d_col_floats(H, W, Cin, K);
    size_t HW = (size_t)H * W, KKC = (size_t)K * K * Cin;
    int chunk = conv_chunk(B, per, col_cap);
    for (int n0 = 0; n0 < B; n0 += chunk) {
        int nb = imin(chunk, B - n0);
        for (int s = 0; s < nb; s++)
            im2col(x + (n0 + s) * HW * Cin, H, W, Cin, K, col + s * per);
        int M = nb * (int)HW;
        float *yc = y + n0 * HW * Cout;
        for (int r = 0; r < M; r++)
            memcpy(yc + (size_t)r * Cout, b, (size_t)Cout * sizeof *yc);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, Cout,
                    (int)KKC, 1.0f, col, (int)KKC, w, Cout, 1.0f, yc, Cout);
    }
}

void pd_conv2d_forward_ref(const float *x, int B, int H, int W, int Cin, int K,
                           int Cout, const float *w, const float *b, float *y) {
    int pad = K / 2;
    for (int n = 0; n < B; n++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++)
                for (int o = 0; o < Cout; o++) {
                    double acc = b[o];
                    for (int p = 0; p < K; p++)
                        for (int q = 0; q < K; q++) {
                            int si = i + p - pad, sj = j + q - pad;
                            if (si < 0 || si >= H || sj < 0 || sj >= W)
                                continue;
                            for (int c = 0; c < Cin; c++)
                                acc += (double)x[at4(n, si, sj, c, H, W, Cin)] *
                                       w[at4(p, q, c, o, K, Cin, Cout)];
                        }
                    y[at4(n, i, j, o, H, W, Cout)] = (float)acc;
                }
}

/*
 * dy (B,H,W,Cout) -> dw (KKC, Cout) = sum over chunks of col^T dy_chunk,
 * db (Cout) = column sums of dy, dx = col2im(dy_chunk w^T) per chunk.
 */
void pd_conv2d_backward(const float *x, const float *dy, int B, int H, int W,
                        int Cin, int K, int Cout, const float *w, float *dw,
                        float *db, float *dx, float *col, size_t col_cap) {
    size_t per = pd_conv2d_col_floats(H, W, Cin, K);
    size_t HW = (size_t)H * W, KKC = (size_t)K * K * Cin;
    int chunk = conv_chunk(B, per, col_cap);
    memset(db, 0, (size_t)Cout * sizeof *db);
    for (int n0 = 0; n0 < B; n0 += chunk) {
        int nb = imin(chunk, B - n0);
        int M = nb * (int)HW;
        const float *dyc = dy + n0 * HW * Cout;
        for (int s = 0; s < nb; s++)
            im2col(x + (n0 + s) * HW * Cin, H, W, Cin, K, col + s * per);
        /* dw (KKC,Cout) (+)= col^T (KKC,M) dyc (M,Cout) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)KKC, Cout, M,
                    1.0f, col, (int)KKC, dyc, Cout, n0 == 0 ? 0.0f : 1.0f, dw,
                    Cout);
        for (int r = 0; r < M; r++)
            for (int o = 0; o < Cout; o++) db[o] += dyc[(size_t)r * Cout + o];
        if (!dx) continue;
        /* dcol (M,KKC) = dyc (M,Cout) w^T (Cout,KKC), into col (done with
         * it above) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, (int)KKC, Cout,
                    1.0f, dyc, Cout, w, Cout, 0.0f, col, (int)KKC);
        for (int s = 0; s < nb; s++)
            col2im(col + s * per, H, W, Cin, K, dx + (n0 + s) * HW * Cin);
    }
}

void pd_conv2d_backward_ref(const float *x, const float *dy, int B, int H,
                            int W, int Cin, int K, int Cout, const float *w,
                            float *dw, float *db, float *dx) {
    int pad = K / 2;
    for (int o = 0; o < Cout; o++) {
        double acc = 0;
        for (size_t r = 0; r < (size_t)B * H * W; r++) acc += dy[r * Cout + o];
        db[o] = (float)acc;
    }
    /* dw[p,q,c,o] = sum_{n,i,j} x[n,i+p-pad,j+q-pad,c] dy[n,i,j,o] */
    for (int p = 0; p < K; p++)
        for (int q = 0; q < K; q++)
            for (int c = 0; c < Cin; c++)
                for (int o = 0; o < Cout; o++) {
                    double acc = 0;
                    for (int n = 0; n < B; n++)
                        for (int i = 0; i < H; i++)
                            for (int j = 0; j < W; j++) {
                                int si = i + p - pad, sj = j + q - pad;
                                if (si < 0 || si >= H || sj < 0 || sj >= W)
                                    continue;
                                acc += (double)x[at4(n, si, sj, c, H, W, Cin)] *
                                       dy[at4(n, i, j, o, H, W, Cout)];
                            }
                    dw[at4(p, q, c, o, K, Cin, Cout)] = (float)acc;
                }
    if (!dx) return;
    /* dx[n,si,sj,c] = sum_{p,q,o} dy[n,si-p+pad,sj-q+pad,o] w[p,q,c,o] */
    for (int n = 0; n < B; n++)
        for (int si = 0; si < H; si++)
            for (int sj = 0; sj < W; sj++)
                for (int c = 0; c < Cin; c++) {
                    double acc = 0;
                    for (int p = 0; p < K; p++)
                        for (int q = 0; q < K; q++) {
                            int i = si - p + pad, j = sj - q + pad;
                            if (i < 0 || i >= H || j < 0 || j >= W) continue;
                            for (int o = 0; o < Cout; o++)
                                acc += (double)dy[at4(n, i, j, o, H, W, Cout)] *
                                       w[at4(p, q, c, o, K, Cin, Cout)];
                        }
                    dx[at4(n, si, sj, c, H, W, Cin)] = (float)acc;
                }
}

/* ==== Kernels: elementwise, pooling, loss ============================== */

/*
 * In place over n floats: pass[i] = y[i] > 0, y[i] = pass[i] ? y[i] : 0.
 * frozen: keep pass[] from an earlier call and apply it.  Written as a
 * multiply, not a branch: signs are random, and the branchy form was 4x
 * slower (mispredictions) on the cnn's 1.6M units per step.
 */
void pd_relu_forward(float *restrict y, uint8_t *restrict pass, size_t n, int frozen) {
    if (frozen) {
        for (size_t i = 0; i < n; i++) y[i] *= (float)pass[i];
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float v = y[i];
        uint8_t p = v > 0.0f;
        pass[i] = p;
        y[i] = v * (float)p;
    }
}

/* In place: dy = dy where the unit passed, else 0 (a multiply, as above). */
void pd_relu_backward(const uint8_t *restrict pass, float *restrict dy, size_t n) {
    for (size_t i = 0; i < n; i++) dy[i] *= (float)pass[i];
}

/*
 * 2x2 max-pool, stride 2: x (B,H,W,C) -> y (B,H/2,W/2,C), arg (same shape
 * as y) = which of the window's four (2*dh + dw) held the max (the first
 * one on ties).  Odd trailing rows/columns are dropped.  frozen: take the
 * element arg already names instead of the max.
 */
void pd_maxpool_forward(const float *x, int B, int H, int W, int C, float *y,
                        uint8_t *arg, int frozen) {
    int OH = H / 2, OW = W / 2;
    if (frozen) {
        for (int n = 0; n < B; n++)
            for (int i = 0; i < OH; i++)
                for (int j = 0; j < OW; j++) {
                    const float *x00 =
                        x + (((size_t)n * H + 2 * i) * W + 2 * j) * C;
                    size_t o = (((size_t)n * OH + i) * OW + j) * C;
                    for (int c = 0; c < C; c++) {
                        int a = arg[o + c];
                        y[o + c] =
                            x00[((size_t)(a >> 1) * W + (a & 1)) * C + c];
                    }
                }
        return;
    }
    for (int n = 0; n < B; n++)
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++) {
                const float *x00 =
                    x + (((size_t)n * H + 2 * i) * W + 2 * j) * C;
                const float *x01 = x00 + C;
                const float *x10 = x00 + (size_t)W * C;
                const float *x11 = x10 + C;
                size_t o = (((size_t)n * OH + i) * OW + j) * C;
                for (int c = 0; c < C; c++) { /* branch-free selects */
                    float m = x00[c], v;
                    uint8_t a = 0;
                    v = x01[c], a = v > m ? 1 : a, m = v > m ? v : m;
                    v = x10[c], a = v > m ? 2 : a, m = v > m ? v : m;
                    v = x11[c], a = v > m ? 3 : a, m = v > m ? v : m;
                    y[o + c] = m;
                    arg[o + c] = a;
                }
            }
}

/* dy (B,H/2,W/2,C) -> dx (B,H,W,C): each dy goes to its window's argmax. */
void pd_maxpool_backward(const float *dy, const uint8_t *arg, int B, int H, int W,
                         int C, float *dx) {
    int OH = H / 2, OW = W / 2;
    memset(dx, 0, (size_t)B * H * W * C * sizeof *dx);
    for (int n = 0; n < B; n++)
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++) {
                size_t o = (((size_t)n * OH + i) * OW + j) * C;
                float *d00 = dx + (((size_t)n * H + 2 * i) * W + 2 * j) * C;
                for (int c = 0; c < C; c++) {
                    int a = arg[o + c];
                    d00[((size_t)(a >> 1) * W + (a & 1)) * C + c] = dy[o + c];
                }
            }
}

/*
 * Inverted dropout mask (n floats): element i is 1/keep with probability
 * keep, else 0, drawn from (seed, i) alone, so a mask can be rebuilt
 * exactly (the gradient check relies on it).
 */
void pd_dropout_mask(float *mask, size_t n, float keep, uint64_t seed) {
    uint64_t threshold = (uint64_t)((double)keep * 9007199254740992.0);
    float scale = 1.0f / keep;
    uint64_t base = seed * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = base ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull);
        mask[i] = (splitmix64(&s) >> 11) < threshold ? scale : 0.0f;
    }
}

/*
 * logits (B,C), labels y (B) -> returns sum over the batch of
 * -log softmax(logits_n)[y_n] (in double); *correct += number of rows whose
 * argmax is the label; if dlogits, dlogits (B,C) = (softmax - onehot)/B.
 */
double pd_softmax_xent(const float *logits, const uint8_t *y, int B, int C,
                       float *dlogits, int *correct) {
    double total = 0;
    for (int n = 0; n < B; n++) {
        const float *z = logits + (size_t)n * C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (z[c] > z[best]) best = c;
        if (best == y[n]) (*correct)++;
        double mx = z[best], sum = 0;
        for (int c = 0; c < C; c++) sum += exp((double)z[c] - mx);
        double logsum = mx + log(sum);
        total += logsum - z[y[n]];
        if (dlogits)
            for (int c = 0; c < C; c++)
                dlogits[(size_t)n * C + c] =
                    (float)((exp((double)z[c] - logsum) - (c == y[n])) / B);
    }
    return total;
}

