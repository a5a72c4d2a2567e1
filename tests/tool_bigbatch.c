/*
 * tool_bigbatch.c - the reference for "sync equals big batch" (used by
 * tests/it_train.sh; not a test by itself).
 *
 *   tool_bigbatch PARAMS_FILE MODEL HIDDEN W B STEPS LR SEED LIMIT
 *
 * Trains MODEL in this one process with plain SGD on batches of W*B: at
 * step t the batch is the union of the B samples each of the W workers of
 * `paramd train` uses at step t (pd_train_batch), the gradient is the mean
 * over all W*B samples (one pd_model_grad call), and params -= LR * grad.
 * Then compares with the final weights that `paramd train --consistency
 * sync --no-lr-scaling --no-dropout --save-params PARAMS_FILE` wrote, and
 * prints the relative difference ||ps - ref|| / ||ref||.  Exit 0 if it is
 * below 1e-5, 1 otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "train/data.h"
#include "train/model.h"
#include "train/trainer.h"

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: tool_bigbatch PARAMS_FILE MODEL HIDDEN W B STEPS LR SEED LIMIT\n");
        return 2;
    }
    const char *file = argv[1], *model = argv[2];
    int hidden = atoi(argv[3]), W = atoi(argv[4]), B = atoi(argv[5]), steps = atoi(argv[6]);
    float lr = strtof(argv[7], NULL);
    uint64_t seed = strtoull(argv[8], NULL, 10);
    uint32_t limit = (uint32_t)atol(argv[9]);
    char err[512];
    pd_dataset d;
    if (pd_dataset_load(NULL, "train", &d, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uint32_t n = limit && limit < (uint32_t)d.n ? limit : (uint32_t)d.n;
    pd_model *m;
    if (pd_model_create(model, hidden, W * B, &m, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uint64_t np = pd_model_num_params(m);
    float *p = malloc(np * 4), *g = malloc(np * 4), *ps = malloc(np * 4);
    float *x = malloc((size_t)W * B * PD_MODEL_INPUT * 4);
    uint8_t *y = malloc((size_t)W * B);
    uint32_t *idx = malloc((size_t)W * B * 4);
    uint32_t **perm = malloc(sizeof *perm * (size_t)W);
    int64_t *pe = malloc(sizeof *pe * (size_t)W);
    for (int r = 0; r < W; r++) perm[r] = malloc(n * 4), pe[r] = -1;
    pd_model_init_params(m, p, seed);
    int64_t spe = pd_train_steps_per_epoch(n, W, B);
    for (int t = 0; t < steps; t++) {
        for (int r = 0; r < W; r++)
            pd_train_batch(seed, r, t, spe, n, B, perm[r], &pe[r], idx + r * B);
        pd_dataset_gather(&d, idx, W * B, x, y);
        pd_model_grad(m, p, x, y, W * B, g, 0, 0);
        for (uint64_t i = 0; i < np; i++) p[i] -= lr * g[i];
    }
    FILE *f = fopen(file, "rb");
    if (!f || fread(ps, 4, np, f) != np) {
        fprintf(stderr, "cannot read %llu floats from %s\n", (unsigned long long)np, file);
        return 1;
    }
    fclose(f);
    double num = 0, den = 0, init_num = 0;
    float *p0 = g; /* reuse: the initial weights, to show the run moved */
    pd_model_init_params(m, p0, seed);
    for (uint64_t i = 0; i < np; i++) {
        num += ((double)ps[i] - p[i]) * ((double)ps[i] - p[i]);
        den += (double)p[i] * p[i];
        init_num += ((double)p0[i] - p[i]) * ((double)p0[i] - p[i]);
    }
    double rel = sqrt(num / den), moved = sqrt(init_num / den);
    printf("%s W=%d B=%d steps=%d: relative difference %.3g (the weights moved %.3g "
           "from their initial values)\n", model, W, B, steps, rel, moved);
    int ok = rel < 1e-5 && moved > 1e-3;
    if (!ok) printf("FAIL: sync training is not big-batch SGD\n");
    for (int r = 0; r < W; r++) free(perm[r]);
    free(perm), free(pe), free(p), free(g), free(ps), free(x), free(y), free(idx);
    pd_model_free(m);
    pd_dataset_free(&d);
    return ok ? 0 : 1;
}
