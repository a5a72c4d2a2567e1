/*
 * model.c - the mlp and cnn models (see model.h for the parameter layout).
 *
 * Design.  A model is a short list of layers run in order (conv, relu,
 * pool, fc, dropout) plus a table of parameter tensors.  Both are built by
 * pd_model_create from the model's name; forward and backward are one
 * generic loop over the list, so a new sequential model is a new table,
 * not new passes.  All activations are NHWC, which makes the convolution
 * weights TensorFlow's HWIO layout and makes the flatten before fc1 a no-op
 * with the same order as the Ray example's reshape.
 *
 * Memory.  Every buffer a step touches is carved from one arena allocated
 * in pd_model_create, sized for max_batch: one output buffer per layer
 * (relu and dropout work in place on their input's buffer), a byte per
 * unit of each pool and relu layer (which input won, whether it passed:
 * the pattern the backward pass follows), the dropout mask, two ping-pong
 * gradient buffers for the backward pass, and one im2col buffer.  For the
 * cnn that is 0.45 MB per sample plus 1 MB (29 MB at max_batch 64).  A
 * step allocates nothing.
 *
 * Speed.  Nearly all the cnn's arithmetic is three sgemm per convolution
 * and three per fc layer:
 *
 *   per sample     forward MFLOP   backward MFLOP
 *   conv1          1.25            1.25   (no dx: the input needs none)
 *   conv2          20.1            40.1
 *   fc1            6.4             12.8
 *   fc2            0.02            0.04
 *   total          27.8            54.2   => 82 MFLOP per sample
 *
 * So the ceiling of a step is the sgemm rate of one BLAS thread divided by
 * 82 MFLOP per sample; bench/single_train --bench-steps prints both the
 * ceiling and the rate reached (bench/README.md has the figures).  What
 * the cnn loses to it is memory-bound passes (im2col, col2im, ReLU,
 * pooling, bias) and sgemm shapes less square than 1024^3.
 *
 * The kernels themselves (fully connected, convolution by im2col + sgemm,
 * relu, pooling, dropout, the loss) are in kernels.c.  Every fast kernel
 * has a plain-loop version beside it (the *_ref functions), written for
 * obviousness, accumulating in double.  pd_model_set_reference switches a
 * whole model to them; the tests compare the two paths kernel by kernel
 * and model by model.
 *
 * Not done, on purpose: other strides, paddings or pool sizes than the two
 * models need; float16; our own threading (BLAS threads are the knob, and
 * several workers per host are the better use of cores).
 */
#include "train/model.h"
#include "train/kernels.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ==== Constants ======================================================== */

#define MAX_LAYERS 12
#define MAX_TENSORS 8
#define MAX_BATCH_LIMIT 65536
#define COL_FLOATS (1u << 18) /* im2col scratch: 1 MB, half an L2 */
#define ARENA_ALIGN 64
#define CNN_DROPOUT_KEEP 0.5f

/* ==== Types ============================================================ */

typedef enum layer_kind { L_FC, L_CONV, L_RELU, L_POOL, L_DROPOUT } layer_kind;

typedef struct layer {
    layer_kind kind;
    int ih, iw, ic; /* input shape of one sample (fc: 1, 1, in) */
    int oh, ow, oc; /* output shape of one sample */
    int k;          /* conv: kernel side */
    float keep;     /* dropout: keep probability */
    int tensor;     /* conv, fc: index of the weight tensor (bias = +1) */
    float *out;     /* (max_batch, oh*ow*oc); in-place layers: the input */
    uint8_t *arg;   /* (max_batch, oh*ow*oc): pool: argmax, 0..3;
                       relu: 1 where the unit passed, else 0 */
    float *mask;    /* dropout: (max_batch, oc) each 0 or 1/keep */
} layer;

typedef struct tensor {
    const char *name;
    uint64_t offset, count;
    int ndim, shape[4];
    float init_std; /* 0: zeros */
} tensor;

struct pd_model {
    const char *name;
    int max_batch;
    int reference;  /* 1: use the *_ref kernels */
    int frozen;     /* 1: relu and pool reuse the last pattern */
    int dropout_on; /* set by the last forward: whether masks apply */
    int nlayers, ntensors;
    layer layers[MAX_LAYERS];
    tensor tensors[MAX_TENSORS];
    uint64_t nparams;
    float *gbuf[2]; /* backward ping-pong, (max_batch, largest layer) */
    float *col;     /* im2col scratch */
    size_t col_cap; /* floats in col */
    void *arena;    /* owns everything above */
};

/* ==== Small helpers ==================================================== */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static size_t layer_out_size(const layer *L) {
    return (size_t)L->oh * L->ow * L->oc;
}
static size_t layer_in_size(const layer *L) {
    return (size_t)L->ih * L->iw * L->ic;
}

/* ==== Building models ================================================== */

static int add_tensor(pd_model *m, const char *name, int ndim, const int *shape,
                      float init_std) {
    assert(m->ntensors < MAX_TENSORS);
    tensor *t = &m->tensors[m->ntensors];
    t->name = name;
    t->offset = m->nparams;
    t->count = 1;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->count *= (uint64_t)shape[d];
    }
    t->init_std = init_std;
    m->nparams += t->count;
    return m->ntensors++;
}

static layer *add_layer(pd_model *m, layer_kind kind) {
    assert(m->nlayers < MAX_LAYERS);
    layer *L = &m->layers[m->nlayers];
    memset(L, 0, sizeof *L);
    L->kind = kind;
    L->tensor = -1;
    if (m->nlayers > 0) { /* input shape = previous output shape */
        const layer *P = &m->layers[m->nlayers - 1];
        L->ih = P->oh, L->iw = P->ow, L->ic = P->oc;
    } else {
        L->ih = 28, L->iw = 28, L->ic = 1;
    }
    L->oh = L->ih, L->ow = L->iw, L->oc = L->ic;
    m->nlayers++;
    return L;
}

/* conv KxK 'same', Cin -> cout, He init */
static void add_conv(pd_model *m, const char *wname, const char *bname, int k,
                     int cout) {
    layer *L = add_layer(m, L_CONV);
    L->k = k;
    L->oc = cout;
    int ws[4] = {k, k, L->ic, cout}, bs[1] = {cout};
    L->tensor = add_tensor(m, wname, 4, ws, sqrtf(2.0f / (k * k * L->ic)));
    add_tensor(m, bname, 1, bs, 0.0f);
}

/* fully connected, flattening its input; He init, or Glorot for the
 * output layer */
static void add_fc(pd_model *m, const char *wname, const char *bname, int out,
                   int is_output) {
    layer *L = add_layer(m, L_FC);
    int in = L->ih * L->iw * L->ic;
    L->ih = 1, L->iw = 1, L->ic = in;
    L->oh = 1, L->ow = 1, L->oc = out;
    int ws[2] = {in, out}, bs[1] = {out};
    float std =
        is_output ? sqrtf(2.0f / (float)(in + out)) : sqrtf(2.0f / (float)in);
    L->tensor = add_tensor(m, wname, 2, ws, std);
    add_tensor(m, bname, 1, bs, 0.0f);
}

static void add_pool(pd_model *m) {
    layer *L = add_layer(m, L_POOL);
    L->oh = L->ih / 2, L->ow = L->iw / 2;
}

static void add_dropout(pd_model *m, float keep) {
    layer *L = add_layer(m, L_DROPOUT);
    L->keep = keep;
}

static int is_inplace(layer_kind k) { return k == L_RELU || k == L_DROPOUT; }

/* Carve every scratch buffer from one arena.  Returns 0 or -1 (no
 * memory). */
static int alloc_scratch(pd_model *m) {
    size_t B = (size_t)m->max_batch, maxact = PD_MODEL_CLASSES, colper = 0;
    size_t off[MAX_LAYERS][3], goff[2], coloff, total = 0;
#define TAKE(bytes)                                                            \
    (total += ((bytes) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN,         \
     total - ((bytes) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN)
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        size_t o = layer_out_size(L), i = layer_in_size(L);
        maxact = o > maxact ? o : maxact;
        maxact = i > maxact ? i : maxact;
        off[l][0] = is_inplace(L->kind) ? 0 : TAKE(B * o * sizeof(float));
        off[l][1] = L->kind == L_POOL || L->kind == L_RELU ? TAKE(B * o) : 0;
        off[l][2] = L->kind == L_DROPOUT ? TAKE(B * o * sizeof(float)) : 0;
        if (L->kind == L_CONV) {
            size_t per = pd_conv2d_col_floats(L->ih, L->iw, L->ic, L->k);
            if (per > colper) colper = per;
        }
    }
    goff[0] = TAKE(B * maxact * sizeof(float));
    goff[1] = TAKE(B * maxact * sizeof(float));
    /* col: room for min(max_batch, COL_FLOATS / per) samples, >= 1 */
    m->col_cap = 0;
    if (colper) {
        size_t fit = COL_FLOATS / colper;
        if (fit < 1) fit = 1;
        if (fit > B) fit = B;
        m->col_cap = fit * colper;
    }
    coloff = TAKE(m->col_cap * sizeof(float));
#undef TAKE
    char *base = aligned_alloc(ARENA_ALIGN, total);
    if (!base) return -1;
    m->arena = base;
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        L->out = is_inplace(L->kind) ? m->layers[l - 1].out
                                     : (float *)(base + off[l][0]);
        L->arg = L->kind == L_POOL || L->kind == L_RELU
                     ? (uint8_t *)(base + off[l][1])
                     : NULL;
        L->mask = L->kind == L_DROPOUT ? (float *)(base + off[l][2]) : NULL;
    }
    m->gbuf[0] = (float *)(base + goff[0]);
    m->gbuf[1] = (float *)(base + goff[1]);
    m->col = m->col_cap ? (float *)(base + coloff) : NULL;
    return 0;
}

/* ==== Forward and backward ============================================= */

/* Run the layers on x (B, 784); returns the logits (B, 10).  Sets
 * m->dropout_on = train. */
static const float *forward(pd_model *m, const float *params, const float *x,
                            int B, int train, uint64_t dropout_seed) {
    const float *in = x;
    m->dropout_on = train != 0;
    for (int l = 0; l < m->nlayers; l++) {
        layer *L = &m->layers[l];
        size_t osz = (size_t)B * layer_out_size(L);
        const tensor *tw = L->tensor >= 0 ? &m->tensors[L->tensor] : NULL;
        const float *w = tw ? params + tw->offset : NULL;
        const float *b = tw ? params + m->tensors[L->tensor + 1].offset : NULL;
        switch (L->kind) {
        case L_FC:
            if (m->reference)
                pd_fc_forward_ref(in, B, L->ic, L->oc, w, b, L->out);
            else
                pd_fc_forward(in, B, L->ic, L->oc, w, b, L->out);
            break;
        case L_CONV:
            if (m->reference)
                pd_conv2d_forward_ref(in, B, L->ih, L->iw, L->ic, L->k, L->oc,
                                      w, b, L->out);
            else
                pd_conv2d_forward(in, B, L->ih, L->iw, L->ic, L->k, L->oc, w, b,
                                  L->out, m->col, m->col_cap);
            break;
        case L_RELU:
            pd_relu_forward(L->out, L->arg, osz, m->frozen);
            break;
        case L_POOL:
            pd_maxpool_forward(in, B, L->ih, L->iw, L->ic, L->out, L->arg,
                            m->frozen);
            break;
        case L_DROPOUT:
            if (!train) break;
            /* one seed per layer, in case a model has several */
            pd_dropout_mask(L->mask, osz, L->keep,
                         dropout_seed + (uint64_t)l * 0x632be59bd9b4e019ull);
            for (size_t i = 0; i < osz; i++) L->out[i] *= L->mask[i];
            break;
        }
        in = L->out;
    }
    return in;
}

/* Backward from dlogits in m->gbuf[0] (B, 10), after forward() on the same
 * inputs; writes every element of grad. */
static void backward(pd_model *m, const float *params, const float *x, int B,
                     float *grad) {
    float *g = m->gbuf[0], *other = m->gbuf[1];
    for (int l = m->nlayers - 1; l >= 0; l--) {
        layer *L = &m->layers[l];
        const float *in = l > 0 ? m->layers[l - 1].out : x;
        size_t osz = (size_t)B * layer_out_size(L);
        const tensor *tw = L->tensor >= 0 ? &m->tensors[L->tensor] : NULL;
        const float *w = tw ? params + tw->offset : NULL;
        float *dw = tw ? grad + tw->offset : NULL;
        float *db = tw ? grad + m->tensors[L->tensor + 1].offset : NULL;
        float *dx = l > 0 ? other : NULL; /* the input x needs no gradient */
        switch (L->kind) {
        case L_RELU:
            pd_relu_backward(L->arg, g, osz);
            continue; /* in place: g stays the current gradient */
        case L_DROPOUT:
            if (m->dropout_on)
                for (size_t i = 0; i < osz; i++) g[i] *= L->mask[i];
            continue;
        case L_POOL:
            pd_maxpool_backward(g, L->arg, B, L->ih, L->iw, L->ic, dx);
            break;
        case L_FC:
            if (m->reference)
                pd_fc_backward_ref(in, g, B, L->ic, L->oc, w, dw, db, dx);
            else
                pd_fc_backward(in, g, B, L->ic, L->oc, w, dw, db, dx);
            break;
        case L_CONV:
            if (m->reference)
                pd_conv2d_backward_ref(in, g, B, L->ih, L->iw, L->ic, L->k,
                                       L->oc, w, dw, db, dx);
            else
                pd_conv2d_backward(in, g, B, L->ih, L->iw, L->ic, L->k, L->oc,
                                   w, dw, db, dx, m->col, m->col_cap);
            break;
        }
        other = g;
        g = dx;
        if (!g) break; /* first layer done */
    }
}

static int labels_ok(const uint8_t *y, int B) {
    for (int n = 0; n < B; n++)
        if (y[n] >= PD_MODEL_CLASSES) return 0;
    return 1;
}

/* ==== Public: models =================================================== */

int pd_model_create(const char *name, int hidden, int max_batch, pd_model **out,
                    char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!out) {
        set_err(err, errlen, "pd_model_create: out is NULL");
        return -1;
    }
    *out = NULL;
    if (max_batch < 1 || max_batch > MAX_BATCH_LIMIT) {
        set_err(err, errlen, "max_batch %d is not in 1..%d", max_batch,
                MAX_BATCH_LIMIT);
        return -1;
    }
    if (hidden < 0 || hidden > 65536) {
        set_err(err, errlen, "hidden %d is not in 0..65536 (0: default)",
                hidden);
        return -1;
    }
    pd_model *m = calloc(1, sizeof *m);
    if (!m) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    m->max_batch = max_batch;
    if (name && strcmp(name, "mlp") == 0) {
        m->name = "mlp";
        add_fc(m, "fc1.w", "fc1.b", hidden ? hidden : 256, 0);
        add_layer(m, L_RELU);
        add_fc(m, "fc2.w", "fc2.b", PD_MODEL_CLASSES, 1);
    } else if (name && strcmp(name, "cnn") == 0) {
        m->name = "cnn";
        add_conv(m, "conv1.w", "conv1.b", 5, 32);
        add_layer(m, L_RELU);
        add_pool(m);
        add_conv(m, "conv2.w", "conv2.b", 5, 64);
        add_layer(m, L_RELU);
        add_pool(m);
        add_fc(m, "fc1.w", "fc1.b", hidden ? hidden : 1024, 0);
        add_layer(m, L_RELU);
        add_dropout(m, CNN_DROPOUT_KEEP);
        add_fc(m, "fc2.w", "fc2.b", PD_MODEL_CLASSES, 1);
    } else {
        set_err(err, errlen, "unknown model '%s' (expected mlp or cnn)",
                name ? name : "(null)");
        free(m);
        return -1;
    }
    if (alloc_scratch(m)) {
        set_err(err, errlen, "out of memory for %s scratch (max_batch %d)",
                m->name, max_batch);
        free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void pd_model_free(pd_model *m) {
    if (!m) return;
    free(m->arena);
    free(m);
}

uint64_t pd_model_num_params(const pd_model *m) { return m->nparams; }
const char *pd_model_name(const pd_model *m) { return m->name; }
int pd_model_max_batch(const pd_model *m) { return m->max_batch; }
int pd_model_num_tensors(const pd_model *m) { return m->ntensors; }

int pd_model_tensor(const pd_model *m, int i, pd_tensor_info *out) {
    if (i < 0 || i >= m->ntensors) return -1;
    const tensor *t = &m->tensors[i];
    out->name = t->name;
    out->offset = t->offset;
    out->count = t->count;
    out->ndim = t->ndim;
    memset(out->shape, 0, sizeof out->shape);
    memcpy(out->shape, t->shape, (size_t)t->ndim * sizeof *t->shape);
    return 0;
}

void pd_model_init_params(const pd_model *m, float *params, uint64_t seed) {
    for (int ti = 0; ti < m->ntensors; ti++) {
        const tensor *t = &m->tensors[ti];
        float *p = params + t->offset;
        if (t->init_std == 0.0f) {
            memset(p, 0, t->count * sizeof *p);
            continue;
        }
        uint64_t s = seed ^ ((uint64_t)(ti + 1) * 0xa0761d6478bd642full);
        splitmix64(&s);
        /* Box-Muller: two normals per two uniforms */
        for (uint64_t i = 0; i < t->count; i += 2) {
            double r = sqrt(-2.0 * log(uniform01(&s)));
            double a = 6.283185307179586 * uniform01(&s);
            p[i] = (float)(t->init_std * r * cos(a));
            if (i + 1 < t->count) p[i + 1] = (float)(t->init_std * r * sin(a));
        }
    }
}

float pd_model_grad(pd_model *m, const float *params, const float *x,
                    const uint8_t *y, int B, float *grad, int train,
                    uint64_t dropout_seed) {
    if (B < 1 || B > m->max_batch || !labels_ok(y, B)) return NAN;
    const float *logits = forward(m, params, x, B, train, dropout_seed);
    int correct = 0;
    double loss =
        pd_softmax_xent(logits, y, B, PD_MODEL_CLASSES, m->gbuf[0], &correct);
    backward(m, params, x, B, grad);
    return (float)(loss / B);
}

double pd_model_loss(pd_model *m, const float *params, const float *x,
                     const uint8_t *y, int B, int train,
                     uint64_t dropout_seed) {
    if (B < 1 || B > m->max_batch || !labels_ok(y, B)) return NAN;
    const float *logits = forward(m, params, x, B, train, dropout_seed);
    int correct = 0;
    return pd_softmax_xent(logits, y, B, PD_MODEL_CLASSES, NULL, &correct) / B;
}

void pd_model_eval(pd_model *m, const float *params, const float *x,
                   const uint8_t *y, int n, double *loss, double *acc) {
    *loss = 0;
    *acc = 0;
    if (n <= 0) return;
    if (!labels_ok(y, n)) {
        *loss = *acc = NAN;
        return;
    }
    double total = 0;
    int correct = 0;
    for (int n0 = 0; n0 < n; n0 += m->max_batch) {
        int B = imin(m->max_batch, n - n0);
        const float *logits =
            forward(m, params, x + (size_t)n0 * PD_MODEL_INPUT, B, 0, 0);
        total +=
            pd_softmax_xent(logits, y + n0, B, PD_MODEL_CLASSES, NULL, &correct);
    }
    *loss = total / n;
    *acc = (double)correct / n;
}

double pd_model_flops(const pd_model *m) {
    double total = 0;
    for (int l = 0; l < m->nlayers; l++) {
        const layer *L = &m->layers[l];
        double fwd = 0;
        if (L->kind == L_FC) fwd = 2.0 * L->ic * L->oc;
        if (L->kind == L_CONV)
            fwd = 2.0 * L->oh * L->ow * L->oc * L->k * L->k * L->ic;
        /* backward: dw costs a forward, dx another (none for layer 0) */
        total += fwd * (l == 0 ? 2 : 3);
    }
    return total;
}

void pd_model_set_reference(pd_model *m, int on) { m->reference = on != 0; }

void pd_model_freeze_pattern(pd_model *m, int on) { m->frozen = on != 0; }

/* ==== Public: BLAS ===================================================== */

const char *pd_blas_info(void) {
    static _Thread_local char buf[192];
    /* openblas_get_config(): "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY
     * SkylakeX MAX_THREADS=64"; keep its first two words */
    const char *cfg = openblas_get_config();
    char version[48] = "OpenBLAS";
    if (cfg) {
        int words = 0;
        size_t i = 0;
        for (; cfg[i] && i < sizeof version - 1; i++) {
            if (cfg[i] == ' ' && ++words == 2) break;
            version[i] = cfg[i];
        }
        version[i] = '\0';
    }
    int par = openblas_get_parallel(), nt = openblas_get_num_threads();
    const char *core = openblas_get_corename();
    snprintf(buf, sizeof buf, "%s (%s, %s, %d thread%s)", version,
             core ? core : "?",
             par == 0   ? "sequential"
             : par == 2 ? "openmp"
                        : "pthread",
             nt, nt == 1 ? "" : "s");
    return buf;
}

void pd_blas_set_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

/*
 * OpenBLAS picks its kernels when it loads, from the CPU model; a CPU newer
 * than the OpenBLAS release is not recognised and gets the generic
 * "Prescott" (SSE3) kernels.  On this project's 2-core Xeon (family 6,
 * model 207) Debian's 0.3.21 does that, and sgemm runs at 27 GFLOP/s
 * instead of 125-145 with OPENBLAS_CORETYPE=SkylakeX.  Levels: 0 SSE only,
 * 1 AVX, 2 AVX2+FMA, 3 AVX-512 (F, BW, DQ, VL).
 */
static int core_level(const char *core) {
    static const struct {
        const char *name;
        int level;
    } known[] = {
        {"Prescott", 0},    {"Core2", 0},      {"Penryn", 0},
        {"Dunnington", 0},  {"Nehalem", 0},    {"Atom", 0},
        {"Sandybridge", 1}, {"Haswell", 2},    {"Zen", 2},
        {"SkylakeX", 3},    {"Cooperlake", 3}, {"SapphireRapids", 3},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (core && strcasecmp(core, known[i].name) == 0) return known[i].level;
    return -1; /* unknown: make no claim */
}

const char *pd_blas_suggest_core(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    int cpu = 0;
    if (__builtin_cpu_supports("avx")) cpu = 1;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        cpu = 2;
    if (__builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        cpu = 3;
    int have = core_level(openblas_get_corename());
    if (have < 0 || have >= cpu) return NULL;
    static const char *const names[4] = {NULL, "Sandybridge", "Haswell",
                                         "SkylakeX"};
    return names[cpu];
#else
    return NULL;
#endif
}
