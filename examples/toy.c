/*
 * toy.c - the seed's sharded parameter server, in C.
 *
 * The blog post "a parameter server in 15 lines" keeps a vector of 10
 * floats on 2 servers; 2 workers each loop 100 times: get the params, make
 * a fake gradient of ten ones, sleep, push it (params += grad).  Run it:
 *
 *   paramd local --servers 2 --workers 2 -- build/examples/toy
 *
 * Worker 0 prints the final params: 200 everywhere in async mode (every
 * push is added), 100 in sync mode (each clock applies the mean of the two
 * pushes), 200 in sync mode with --aggregate sum.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "paramd.h"

#define CHECK(call)                                                            \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_) {                                                             \
            fprintf(stderr, "toy: %s: %s (%s)\n", #call,                       \
                    paramd_last_error(c), paramd_strerror(rc_));               \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

int main(int argc, char **argv) {
    const char *consistency = "async", *aggregate = "mean";
    int dim = 10, iters = 100, sleep_ms = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--consistency") && i + 1 < argc) consistency = argv[++i];
        else if (!strcmp(argv[i], "--aggregate") && i + 1 < argc) aggregate = argv[++i];
        else if (!strcmp(argv[i], "--dim") && i + 1 < argc) dim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sleep-ms") && i + 1 < argc) sleep_ms = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: toy [--consistency sync|async] [--aggregate mean|sum]\n"
                    "           [--dim 10] [--iters 100] [--sleep-ms 20]\n"
                    "run it inside a cluster: paramd local --servers 2 --workers 2 -- toy\n");
            return 2;
        }
    }
    if (dim < 1 || iters < 0 || sleep_ms < 0) {
        fprintf(stderr, "toy: --dim must be >= 1, --iters and --sleep-ms >= 0\n");
        return 2;
    }
    paramd_client *c = NULL;
    paramd_table *t;
    char spec[128];
    snprintf(spec, sizeof spec, "rule=add consistency=%s aggregate=%s",
             consistency, aggregate);
    CHECK(paramd_connect(&c, NULL));
    CHECK(paramd_table_open(c, "params", (uint64_t)dim, spec, NULL, &t));

    float *params = malloc(sizeof(float) * (size_t)dim);
    float *grad = malloc(sizeof(float) * (size_t)dim);
    for (int i = 0; i < dim; i++) grad[i] = 1.0f;
    for (int it = 0; it < iters; it++) {
        CHECK(paramd_pull(t, 0, (uint64_t)dim, params));     /* get the params */
        struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);                                /* "compute" */
        CHECK(paramd_push(t, 0, (uint64_t)dim, grad));      /* update */
        paramd_clock(c);
    }
    CHECK(paramd_barrier(c));                                /* all pushed */
    if (paramd_rank(c) == 0) {
        CHECK(paramd_pull(t, 0, (uint64_t)dim, params));
        printf("final params (%s, %s):", consistency, aggregate);
        for (int i = 0; i < dim; i++) printf(" %.1f", params[i]);
        printf("\n");
    }
    free(params);
    free(grad);
    return paramd_close(c) ? 1 : 0;
}
