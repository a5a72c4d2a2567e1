/*
 * model.h - the models a worker trains, as functions of one flat parameter
 * vector: "mlp" and "cnn" for 28x28 grey images in 10 classes
 * (Fashion-MNIST, MNIST).
 *
 * A model here is code plus scratch memory, never parameters: every call
 * takes `params` (what a parameter server stores and a worker pulls) and
 * writes the gradient to `grad` (what a worker pushes), both flat float
 * arrays of pd_model_num_params() floats in the layout below.  So one model
 * object can evaluate any parameter vector, and nothing needs copying
 * between a pull, a step and a push.
 *
 * Parameter layout (tensors in this order, each row-major, no padding;
 * weight shapes follow TensorFlow's, as in the Ray parameter-server
 * example, so its flat vectors map one to one):
 *
 *   mlp (H = hidden, default 256):
 *     fc1.w (784, H)    fc1.b (H)    fc2.w (H, 10)    fc2.b (10)
 *     784*H + H + 10*H + 10 floats (203,530 for H = 256)
 *
 *   cnn (F = hidden, default 1024: the Ray example's SimpleCNN):
 *     conv1.w (5, 5, 1, 32)    conv1.b (32)      [kh, kw, in, out]
 *     conv2.w (5, 5, 32, 64)   conv2.b (64)
 *     fc1.w (3136, F)          fc1.b (F)         3136 = 7*7*64, row index
 *                                                 (h*7 + w)*64 + c
 *     fc2.w (F, 10)            fc2.b (10)
 *     3,274,634 floats for F = 1024
 *
 * pd_model_tensor() gives the same table at run time.
 *
 * The networks.  Input x is (B, 784): B images of 28x28, row-major, values
 * in [0,1], seen as NHWC (B, 28, 28, 1).  All activations are NHWC.
 *   mlp: fc1 -> ReLU -> fc2 -> softmax cross-entropy.
 *   cnn: conv1 5x5 'same' -> ReLU -> max-pool 2x2 -> conv2 5x5 'same' ->
 *        ReLU -> max-pool 2x2 -> flatten (B, 7*7*64) -> fc1 -> ReLU ->
 *        dropout (keep 0.5, inverted: kept units are scaled by 2, training
 *        only) -> fc2 -> softmax cross-entropy.
 * The loss is the mean over the batch of -log softmax(logits)[label].
 *
 * Speed: fully connected layers are one sgemm each; convolutions are
 * im2col + sgemm over chunks of the batch (see model.c).  Each fast kernel
 * has a plain-loop reference version below, and pd_model_set_reference()
 * runs a whole model through them; tests/test_model.c checks they agree.
 *
 * Threads: a pd_model is used by one thread at a time (its scratch buffers
 * are written by every call); distinct models may run in parallel.  The
 * BLAS thread count (pd_blas_set_threads) is process-wide: it belongs to
 * OpenBLAS, not to a model.
 */
#ifndef PARAMD_TRAIN_MODEL_H
#define PARAMD_TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define PD_MODEL_INPUT 784 /* floats per sample: 28x28x1 */
#define PD_MODEL_SIDE 28   /* images are PD_MODEL_SIDE x PD_MODEL_SIDE */
#define PD_MODEL_CLASSES 10

typedef struct pd_model pd_model;

/* ==== Models =========================================================== */

/*
 * Create the model `name`: "mlp" (hidden = width of the hidden layer,
 * 0 => 256) or "cnn" (hidden = width of fc1, 0 => 1024).  max_batch
 * (1..65536) bounds B in every call; all scratch memory is allocated here,
 * once, in proportion to it (cnn: 0.45 MB per sample plus 1 MB).
 * Returns 0 and *out, or -1 with a one-line message in err and *out NULL.
 */
int pd_model_create(const char *name, int hidden, int max_batch, pd_model **out,
                    char *err, size_t errlen);

/* Free the model.  NULL-safe. */
void pd_model_free(pd_model *m);

uint64_t pd_model_num_params(const pd_model *m);
const char *pd_model_name(const pd_model *m); /* "mlp" or "cnn" */
int pd_model_max_batch(const pd_model *m);

/* One tensor of the parameter layout. */
typedef struct pd_tensor_info {
    const char *name; /* "conv1.w", "fc2.b", ... (static storage) */
    uint64_t offset;  /* first float in the flat vector */
    uint64_t count;   /* number of floats */
    int ndim;
    int shape[4];
} pd_tensor_info;

/* Number of tensors, and tensor i (0-based, in layout order).
 * pd_model_tensor returns 0, or -1 if i is out of range. */
int pd_model_num_tensors(const pd_model *m);
int pd_model_tensor(const pd_model *m, int i, pd_tensor_info *out);

/*
 * Initial parameters, deterministic from seed: weights of layers followed
 * by ReLU ~ N(0, 2/fan_in) (He), the output layer's ~ N(0, 2/(fan_in +
 * fan_out)) (Glorot), biases 0.  Each tensor draws from its own stream, so
 * the values do not depend on the machine or on the other tensors' sizes.
 */
void pd_model_init_params(const pd_model *m, float *params, uint64_t seed);

/*
 * Mean cross-entropy loss over x (B, 784), y (B) labels 0..9; writes
 * grad (num_params floats) = d(mean loss)/d(params), every element (no
 * need to zero it first).  train != 0 applies dropout with a mask drawn
 * from dropout_seed (the same seed gives the same mask, element by
 * element); train == 0 disables dropout.  Requires 1 <= B <= max_batch
 * and labels < 10: otherwise returns NAN and leaves grad untouched.
 */
float pd_model_grad(pd_model *m, const float *params, const float *x,
                    const uint8_t *y, int B, float *grad, int train,
                    uint64_t dropout_seed);

/* The same loss as pd_model_grad with the same arguments, without the
 * backward pass, and not rounded to float (finite differences need the
 * digits). */
double pd_model_loss(pd_model *m, const float *params, const float *x,
                     const uint8_t *y, int B, int train, uint64_t dropout_seed);

/*
 * Evaluate on n samples in batches of at most max_batch, without dropout:
 * *loss = mean cross-entropy, *acc = fraction of argmax(logits) == label
 * (0..1).  n <= 0 gives 0 and 0; bad labels give NAN.
 */
void pd_model_eval(pd_model *m, const float *params, const float *x,
                   const uint8_t *y, int n, double *loss, double *acc);

/* Floating-point operations of one forward + backward pass per sample
 * (2 per multiply-add, convolutions and fully connected layers only): the
 * numerator of a compute ceiling. */
double pd_model_flops(const pd_model *m);

/* on != 0: run every layer through the plain-loop reference kernels
 * (slow; for tests).  on == 0 (the default): the BLAS kernels. */
void pd_model_set_reference(pd_model *m, int on);

/*
 * Test hook for finite differences.  on != 0: later forward passes reuse
 * the ReLU on/off pattern and the max-pool choices of the last pass made
 * with it off (same B), instead of recomputing them.  Around that point the
 * loss is then a smooth function of the parameters, whose gradient is the
 * one pd_model_grad computed there, so finite differences can be compared
 * to it tightly however many kinks lie within eps.  Off by default.
 */
void pd_model_freeze_pattern(pd_model *m, int on);

/* ==== BLAS ============================================================= */

/* Which BLAS runs, e.g. "OpenBLAS 0.3.21 (SkylakeX, pthread, 1 thread)".
 * The string lives in thread-local storage until the next call from the
 * same thread. */
const char *pd_blas_info(void);

/* Set the number of BLAS threads (process-wide; n < 1 means 1). */
void pd_blas_set_threads(int n);

/*
 * NULL if the BLAS kernels in use suit this CPU; otherwise the value of
 * OPENBLAS_CORETYPE that selects better ones ("SkylakeX", "Haswell",
 * "Sandybridge").  That happens when the CPU is newer than the OpenBLAS
 * release: OpenBLAS then falls back to its oldest x86-64 kernels
 * ("Prescott"), several times slower.  OpenBLAS reads OPENBLAS_CORETYPE only when it
 * is loaded, so a program that wants the fix sets it and re-executes
 * itself before doing anything else (bench/single_train.c shows how).
 */
const char *pd_blas_suggest_core(void);

/* ==== Kernels (the fast path and its reference) ========================
 *
 * Exposed for the tests and benchmarks; the models call them.  Gradient
 * kernels overwrite their outputs (dw, db, dx), they do not accumulate.
 */

/* Fully connected: x (B, in), W (in, out), b (out) -> y (B, out) = x W + b */
void pd_fc_forward(const float *x, int B, int in, int out, const float *W,
                   const float *b, float *y);
void pd_fc_forward_ref(const float *x, int B, int in, int out, const float *W,
                       const float *b, float *y);
/* Given dy (B, out): dW (in, out) = x^T dy, db (out) = sum over B of dy,
 * dx (B, in) = dy W^T (dx NULL: not computed). */
void pd_fc_backward(const float *x, const float *dy, int B, int in, int out,
                    const float *W, float *dW, float *db, float *dx);
void pd_fc_backward_ref(const float *x, const float *dy, int B, int in, int out,
                        const float *W, float *dW, float *db, float *dx);

/*
 * 2-D convolution, stride 1, 'same' zero padding (K odd, pad K/2):
 *   x (B, H, W, Cin), w (K, K, Cin, Cout), b (Cout) -> y (B, H, W, Cout)
 *   y[n,i,j,o] = b[o] + sum_{p,q,c} x[n, i+p-K/2, j+q-K/2, c] w[p,q,c,o]
 * The fast versions use col, a scratch of col_cap floats, at least
 * pd_conv2d_col_floats(H, W, Cin, K) (one sample's im2col); they process
 * as many samples per sgemm as col holds.
 */
size_t pd_conv2d_col_floats(int H, int W, int Cin, int K);
void pd_conv2d_forward(const float *x, int B, int H, int W, int Cin, int K,
                       int Cout, const float *w, const float *b, float *y,
                       float *col, size_t col_cap);
void pd_conv2d_forward_ref(const float *x, int B, int H, int W, int Cin, int K,
                           int Cout, const float *w, const float *b, float *y);
/* Given dy (B, H, W, Cout): dw (K, K, Cin, Cout), db (Cout), and dx
 * (B, H, W, Cin) unless NULL. */
void pd_conv2d_backward(const float *x, const float *dy, int B, int H, int W,
                        int Cin, int K, int Cout, const float *w, float *dw,
                        float *db, float *dx, float *col, size_t col_cap);
void pd_conv2d_backward_ref(const float *x, const float *dy, int B, int H,
                            int W, int Cin, int K, int Cout, const float *w,
                            float *dw, float *db, float *dx);

/* Elementwise, pooling and loss kernels (kernels.c has each one's
 * contract beside its code):
 *   relu      in place over n floats; pass[i] = y[i] > 0 (frozen: reuse
 *             pass from an earlier call); backward: dy *= pass
 *   maxpool   2x2, stride 2: x (B,H,W,C) -> y (B,H/2,W/2,C), arg = which
 *             of each window's four won (frozen: reuse arg); backward:
 *             dy (B,H/2,W/2,C) -> dx (B,H,W,C)
 *   dropout   inverted mask of n floats from (seed, i) alone
 *   softmax   logits (B,C), labels (B): summed cross-entropy; *correct +=
 *             rows whose argmax is the label; dlogits (B,C) unless NULL */
void pd_relu_forward(float *restrict y, uint8_t *restrict pass, size_t n, int frozen);
void pd_relu_backward(const uint8_t *restrict pass, float *restrict dy, size_t n);
void pd_maxpool_forward(const float *x, int B, int H, int W, int C, float *y,
                        uint8_t *arg, int frozen);
void pd_maxpool_backward(const float *dy, const uint8_t *arg, int B, int H, int W,
                         int C, float *dx);
void pd_dropout_mask(float *mask, size_t n, float keep, uint64_t seed);
double pd_softmax_xent(const float *logits, const uint8_t *y, int B, int C,
                       float *dlogits, int *correct);

#endif
