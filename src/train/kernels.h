/*
 * kernels.h - small helpers the model code (model.c) and its kernels
 * (kernels.c) share: a seeded random stream and array indexing.  Not API;
 * the kernels themselves are declared in model.h.
 */
#ifndef PARAMD_TRAIN_KERNELS_H
#define PARAMD_TRAIN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): the top 53 bits, never 0 (log below). */
static inline double uniform01(uint64_t *s) {
    return ((double)(splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Offset of [a][b][c][d] in a row-major array of dims (., nb, nc, nd):
 * NHWC activations at4(n, i, j, c, H, W, C), HWIO weights
 * at4(p, q, c, o, K, Cin, Cout).  The reference kernels index with it. */
static inline size_t at4(int a, int b, int c, int d, int nb, int nc, int nd) {
    return (((size_t)a * nb + b) * nc + c) * nd + d;
}

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

#endif
