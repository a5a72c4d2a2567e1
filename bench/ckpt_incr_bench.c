/*
 * ckpt_incr_bench.c - what an incremental checkpoint of a sparse table
 * costs next to a full one: the bytes written and the time to write them
 * (as a server writes its file: CRC-32, fsync, rename, fsync of the
 * directory), after a given fraction of the rows changed.
 *
 *   build/bench/ckpt_incr_bench [DIR] [ROWS] [DIM] [ROUNDS]
 *                               (defaults: /tmp, 400000, 32, 3)
 *
 * One sparse table (rule adam: each row is its dim values and two state
 * planes, 3 x dim floats, plus its key and step count in the file), all
 * ROWS rows created by a push.  Each round: a full checkpoint, then for
 * each fraction (1%, 10%, 100%) a push of that many distinct random rows
 * and a delta of the previous checkpoint (as the coordinator chains
 * them), timed and sized; then the
 * chain (the full file and the three deltas) restored into a new table
 * and compared with the table, row by row.  One line per checkpoint, then
 * the medians.  A benchmark, not a test: it asserts only that the
 * restored rows equal the written ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_stats.h"
#include "common/common.h"
#include "durable/ckfile.h"
#include "server/sparse.h"
#include "table/spec.h"
#include "wire/wire.h"

#define NFRAC 3
static const double fracs[NFRAC] = {0.01, 0.10, 1.00};

static pd_sparse *mk(uint32_t dim) {
    pd_table_def d = {0};
    pd_err e = {0};
    d.kind = PD_TABLE_SPARSE; /* before the spec: init= is for sparse tables */
    d.n = dim, d.lo = 0, d.hi = dim;
    if (pd_spec_parse("rule=adam consistency=async", &d, &e)) exit(1);
    pd_table_env env = {1, 0, 1, NULL, 0, NULL};
    pd_table *t = pd_table_create(1, &d, &env, &e);
    if (!t) {
        fprintf(stderr, "ckpt_incr_bench: %s\n", e.msg);
        exit(1);
    }
    return (pd_sparse *)(void *)t;
}

static void push(pd_sparse *t, const uint64_t *keys, uint64_t n, float *g) {
    pd_err e = {0};
    pd_table_req rq = {0};
    rq.worker = 0, rq.keyed = 1, rq.keys = keys, rq.nkeys = n, rq.io = g;
    for (uint64_t i = 0; i < n * t->dim; i++) g[i] = 0.01f * (float)(i % 7);
    if (pd_table_push(&t->base, &rq, &e)) {
        fprintf(stderr, "ckpt_incr_bench: push: %s\n", e.msg);
        exit(1);
    }
}

/* Write checkpoint seq (a delta of base, or full with base 0) as
 * DIR/NAME; its bytes, and the seconds in *s. */
static uint64_t save(pd_sparse *t, const char *dir, const char *name, uint64_t seq,
                     uint64_t base, double *s) {
    pd_ckw w;
    pd_err e = {0};
    uint64_t bytes = 0;
    double t0 = pd_now();
    if (pd_ckw_open(&w, dir, name, base ? PD_CK_SERVER_DELTA : PD_CK_SERVER, &e)) {
        fprintf(stderr, "ckpt_incr_bench: %s\n", e.msg);
        exit(1);
    }
    pd_ck_save how = {seq, base};
    pd_table_save(&t->base, &w, &how);
    if (pd_ckw_commit(&w, &bytes, NULL, &e)) {
        fprintf(stderr, "ckpt_incr_bench: %s\n", e.msg);
        exit(1);
    }
    *s = pd_now() - t0;
    return bytes;
}

static void load(pd_sparse *t, const char *path) {
    pd_ckr r;
    pd_err e = {0};
    uint32_t id, dlen;
    pd_table_def from;
    if (pd_ckr_open(&r, path, 0, &e)) goto bad;
    pd_get_u32(&r.body, &id);
    pd_get_u32(&r.body, &dlen);
    if (pd_table_def_decode(r.body.p + r.body.off, dlen, &from, &e)) goto bad;
    r.body.off += dlen;
    if (t->base.ops->load(&t->base, &r, &from, &e)) goto bad;
    pd_ckr_close(&r);
    return;
bad:
    fprintf(stderr, "ckpt_incr_bench: %s\n", e.msg);
    exit(1);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    long rows = argc > 2 ? atol(argv[2]) : 400000;
    int dim = argc > 3 ? atoi(argv[3]) : 32;
    int rounds = argc > 4 ? atoi(argv[4]) : 3;
    if (rows < 100 || dim < 1 || dim > 4096 || rounds < 1 || rounds > 50) {
        fprintf(stderr, "usage: ckpt_incr_bench [DIR] [ROWS>=100] [DIM] [ROUNDS]\n");
        return 2;
    }
    uint64_t n = (uint64_t)rows;
    pd_sparse *t = mk((uint32_t)dim);
    uint64_t *keys = malloc(n * sizeof *keys);
    float *g = malloc(n * (size_t)dim * sizeof *g);
    if (!keys || !g) return 1;
    for (uint64_t i = 0; i < n; i++) keys[i] = i * 2654435761u + 17; /* spread keys */
    push(t, keys, n, g);
    printf("# ckpt_incr_bench: %s, a sparse table of %llu rows of dim %d (adam: %d floats "
           "a row), %d rounds\n",
           dir, (unsigned long long)n, dim, 3 * dim, rounds);
    double rsize[NFRAC][50], rtime[NFRAC][50];
    uint64_t seq = 0;
    char names[1 + NFRAC][64];
    for (int r = 0; r < rounds; r++) {
        double sf;
        uint64_t base = ++seq;
        snprintf(names[0], sizeof names[0], "ckpt_incr_bench.%d.full", r);
        uint64_t fb = save(t, dir, names[0], base, 0, &sf);
        printf("round %d  full       %10llu bytes  %7.3f s  %6.0f MB/s\n", r + 1,
               (unsigned long long)fb, sf, (double)fb / sf / 1e6);
        for (int f = 0; f < NFRAC; f++) {
            uint64_t m = (uint64_t)(fracs[f] * (double)n);
            /* m distinct random rows: a partial Fisher-Yates shuffle */
            for (uint64_t i = 0; i < m; i++) {
                uint64_t j = i + (uint64_t)rand() % (n - i), k = keys[i];
                keys[i] = keys[j], keys[j] = k;
            }
            push(t, keys, m, g);
            double sd;
            snprintf(names[1 + f], sizeof names[0], "ckpt_incr_bench.%d.delta%d", r, f);
            uint64_t db = save(t, dir, names[1 + f], seq + 1, seq, &sd);
            seq++;
            rsize[f][r] = (double)db / (double)fb;
            rtime[f][r] = sd / sf;
            printf("round %d  delta %3.0f%% %10llu bytes  %7.3f s  (%.3f of the full "
                   "file's bytes, %.3f of its time)\n",
                   r + 1, fracs[f] * 100, (unsigned long long)db, sd, rsize[f][r],
                   rtime[f][r]);
        }
        /* the chain, restored in order, equals the table */
        pd_sparse *b = mk((uint32_t)dim);
        for (int k = 0; k <= NFRAC; k++) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", dir, names[k]);
            load(b, p);
            unlink(p);
        }
        if (b->nrows != t->nrows) {
            fprintf(stderr, "ckpt_incr_bench: %zu rows restored of %zu\n", b->nrows, t->nrows);
            return 1;
        }
        for (size_t i = 0; i < t->nrows; i++) {
            uint32_t k = pd_keymap_get(&b->map, t->meta[i].key);
            if (k == PD_KEYMAP_NONE || b->meta[k].steps != t->meta[i].steps ||
                memcmp(b->rows + k * b->rowfloats, t->rows + i * t->rowfloats,
                       t->rowfloats * sizeof(float))) {
                fprintf(stderr, "ckpt_incr_bench: the restored chain differs at row %zu\n", i);
                return 1;
            }
        }
        pd_table_destroy(&b->base);
        fflush(stdout);
    }
    for (int f = 0; f < NFRAC; f++)
        printf("median: delta of %3.0f%% of the rows: %.3f of a full checkpoint's bytes, "
               "%.3f of its time\n",
               fracs[f] * 100, bench_median(rsize[f], rounds), bench_median(rtime[f], rounds));
    pd_table_destroy(&t->base);
    free(keys);
    free(g);
    return 0;
}
