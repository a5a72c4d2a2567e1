/*
 * hosts_pushpull.c - the worker of bench/hosts_bench.sh: dense push+pull
 * throughput of one worker of a cluster spread over (simulated) hosts.
 *
 *   hosts_pushpull BYTES SECONDS
 *
 * Run as a worker of a cluster (paramd launch sets PARAMD_COORDINATOR and
 * PARAMD_RANK).  Opens the table "pp" of BYTES/4 floats (rule=add,
 * async), and, after one untimed push+pull and a barrier, pushes the whole
 * table (a buffer of ones) and pulls it back, again and again for at least
 * SECONDS (one clock per round), then waits at a barrier.  Prints one line:
 *
 *   pushpull rank R bytes B reps N seconds T mbit_s X
 *
 * where X counts what crossed this worker's link both ways, 2*B*N bytes,
 * over T.  The values are real: each worker then adds its number of
 * pushes into a one-float table, and worker 0 checks that both ends of
 * "pp" hold their sum (it prints "verified 1 (N pushes)", or fails).
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/common.h"
#include "paramd.h"

#define MUST(call)                                                             \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_) {                                                             \
            fprintf(stderr, "hosts_pushpull: %s: %s\n", #call, paramd_last_error(c)); \
            return 1;                                                          \
        }                                                                      \
    } while (0)

int main(int argc, char **argv) {
    int64_t bytes;
    double secs = argc == 3 ? atof(argv[2]) : 0;
    if (argc != 3 || pd_parse_i64(argv[1], &bytes) || bytes < 4 || bytes % 4 || secs <= 0) {
        fprintf(stderr, "usage: hosts_pushpull BYTES SECONDS (inside a cluster)\n");
        return 2;
    }
    paramd_client *c = NULL;
    paramd_table *t;
    uint64_t n = (uint64_t)bytes / 4;
    float *ones = malloc((size_t)bytes), *got = malloc((size_t)bytes);
    if (!ones || !got) return 1;
    for (uint64_t i = 0; i < n; i++) ones[i] = 1.0f;
    if (paramd_connect(&c, NULL)) {
        fprintf(stderr, "hosts_pushpull: %s\n", paramd_last_error(NULL));
        return 1;
    }
    MUST(paramd_table_open(c, "pp", n, "rule=add consistency=async", NULL, &t));
    MUST(paramd_push(t, 0, n, ones)); /* warm-up: connections, pages */
    paramd_clock(c);
    MUST(paramd_pull(t, 0, n, got));
    MUST(paramd_barrier(c));
    int64_t reps = 0;
    double t0 = pd_now(), t1;
    do {
        MUST(paramd_push(t, 0, n, ones));
        paramd_clock(c); /* one push per clock and worker */
        MUST(paramd_pull(t, 0, n, got));
        reps++;
        t1 = pd_now();
    } while (t1 - t0 < secs);
    /* Each worker adds its number of pushes into "count"; then the table
     * must hold their sum everywhere. */
    paramd_table *cnt;
    float mine = (float)(reps + 1), total;
    MUST(paramd_table_open(c, "count", 1, "rule=add consistency=async", NULL, &cnt));
    MUST(paramd_push(cnt, 0, 1, &mine));
    MUST(paramd_barrier(c)); /* every worker's pushes are in */
    printf("pushpull rank %d bytes %lld reps %lld seconds %.3f mbit_s %.1f\n", paramd_rank(c),
           (long long)bytes, (long long)reps, t1 - t0,
           2.0 * (double)bytes * (double)reps * 8 / (t1 - t0) / 1e6);
    if (paramd_rank(c) == 0) {
        MUST(paramd_pull(cnt, 0, 1, &total));
        MUST(paramd_pull(t, 0, n, got));
        if (got[0] != total || got[n - 1] != total) {
            fprintf(stderr, "hosts_pushpull: the table holds %g and %g at its ends, but "
                    "the workers pushed %g times\n", got[0], got[n - 1], total);
            return 1;
        }
        printf("verified 1 (%g pushes)\n", total);
    }
    fflush(stdout);
    MUST(paramd_barrier(c));
    free(ones);
    free(got);
    return paramd_close(c) ? 1 : 0;
}
