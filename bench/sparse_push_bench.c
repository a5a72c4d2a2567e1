/*
 * sparse_push_bench.c - the server's own cost of an async sparse push,
 * in process, without a network: CPU time of the calling thread per key
 * for pd_table_push of a batch of random existing keys (hash probe, dedupe
 * mark, the rule's update of the row and its state, the row's counters).
 * It exists to compare two trees (built against each, run interleaved):
 * sparse_bench's end-to-end figures move too much on a shared machine to
 * show a change of a few percent in the apply path.
 *
 *   build/bench/sparse_push_bench [DIM] [ROWS] [BATCH] [REPS]
 *                                 (defaults: 16, 1000000, 100000, 41)
 *
 * An adagrad table (rule=adagrad lr=0.01 init=normal:0.01), all ROWS rows
 * created first; then REPS pushes of BATCH keys drawn at random; prints
 * the median and the first quartile of ns per key.  A benchmark, not a
 * test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_stats.h"
#include "server/sparse.h"
#include "table/spec.h"

static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    uint32_t dim = argc > 1 ? (uint32_t)atoi(argv[1]) : 16;
    uint64_t rows = argc > 2 ? (uint64_t)atoll(argv[2]) : 1000000;
    uint64_t batch = argc > 3 ? (uint64_t)atoll(argv[3]) : 100000;
    int reps = argc > 4 ? atoi(argv[4]) : 41;
    if (dim < 1 || dim > 4096 || rows < 1 || batch < 1 || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: sparse_push_bench [DIM] [ROWS] [BATCH] [REPS<=1000]\n");
        return 2;
    }
    pd_table_def d = {0};
    pd_err e = {0};
    d.kind = PD_TABLE_SPARSE, d.n = dim, d.lo = 0, d.hi = dim; /* kind before the spec */
    if (pd_spec_parse("rule=adagrad lr=0.01 init=normal:0.01 consistency=async", &d, &e)) {
        fprintf(stderr, "sparse_push_bench: %s\n", e.msg);
        return 1;
    }
    pd_table_env env = {1, 0, 1, NULL, 0, NULL};
    pd_table *t = pd_table_create(1, &d, &env, &e);
    uint64_t big = rows > batch ? rows : batch;
    uint64_t *k = malloc(rows * sizeof *k), *kb = malloc(batch * sizeof *kb);
    float *g = malloc(big * dim * sizeof *g);
    double *v = malloc((size_t)reps * sizeof *v);
    if (!t || !k || !kb || !g || !v) {
        fprintf(stderr, "sparse_push_bench: %s\n", t ? "out of memory" : e.msg);
        return 1;
    }
    for (uint64_t i = 0; i < rows; i++) k[i] = i * 2654435761u;
    pd_table_req rq = {0};
    rq.worker = 0, rq.keyed = 1;
    for (uint64_t o = 0; o < rows; o += batch) { /* create every row */
        uint64_t n = rows - o < batch ? rows - o : batch;
        for (uint64_t i = 0; i < n * dim; i++) g[i] = 0.01f;
        rq.keys = k + o, rq.nkeys = n, rq.io = g;
        if (pd_table_push(t, &rq, &e)) {
            fprintf(stderr, "sparse_push_bench: %s\n", e.msg);
            return 1;
        }
    }
    srand(1);
    for (int r = 0; r < reps; r++) {
        for (uint64_t i = 0; i < batch; i++) kb[i] = k[(uint64_t)rand() % rows];
        for (uint64_t i = 0; i < batch * dim; i++) g[i] = 0.01f;
        rq.keys = kb, rq.nkeys = batch, rq.io = g;
        double t0 = cpu();
        if (pd_table_push(t, &rq, &e)) {
            fprintf(stderr, "sparse_push_bench: %s\n", e.msg);
            return 1;
        }
        v[r] = (cpu() - t0) / (double)batch * 1e9;
    }
    bench_sort(v, reps);
    printf("dim %u rows %llu batch %llu: median %.1f ns/key (p25 %.1f), %d pushes\n", dim,
           (unsigned long long)rows, (unsigned long long)batch, v[reps / 2], v[reps / 4], reps);
    pd_table_destroy(t);
    free(k), free(kb), free(g), free(v);
    return 0;
}
