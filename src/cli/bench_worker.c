/*
 * bench_worker.c - `paramd bench --worker DIR`: what each worker of a
 * benchmark cluster runs (bench.h lists the files of the command; the
 * driver, cmd_bench.c, starts the cluster with pd_local_start and reads
 * DIR once it has exited).
 *
 * Dense throughput.  Every worker opens one dense table per value size
 * (rule=add consistency=async) and, all at once after a barrier, times
 * three loops:
 *
 *   push      push the whole table (a buffer of ones), advance the clock
 *   pull      pull the whole table
 *   pushpull  push it, then pull it (one training step without compute)
 *
 * each until at least --seconds have passed (or --max-reps), after one
 * untimed warm-up round.  The numbers are real: pushes add ones, and after
 * the three loops worker 0 pulls the table and reports its smallest and
 * largest element, which the driver checks against the number of pushes
 * all workers made.
 *
 * Latency.  On a 4 KiB table, one request at a time, every pull and then
 * every push is timed, in blocks that alternate with raw TCP round trips
 * of the same frames to a ping-pong peer this worker forked before
 * connecting (bench_ceil.c says why).
 *
 * Small requests (op "small"), on a cluster of its own (1 server, 2
 * workers): one worker at a time issues windows of SMALL_WIN async 4 KiB
 * pushes (one per block of a 256 KiB table), waits for all of them,
 * advances its clock, and counts requests per second.  Worker 0 connects
 * with the library's default coalescing (coalesce_bytes=16384: a window
 * goes in a few BATCH frames), worker 1 with coalesce_bytes=0 (one frame
 * each).  They take SMALL_TURNS turns each, in alternation with barriers
 * between, so that "on" and "off" are measured at interleaved moments of
 * the same run and their ratio is fair on a noisy machine.  The pushes add
 * ones; the final value must equal the windows of both workers.
 *
 * Files.  A worker writes its counts and times to DIR/w<rank>.txt (lines
 * "tp ...", "value ...", "pushes ...", "small ...", "smallpushes ...",
 * "smallvalue ..."), its latency samples to DIR/lat.<op>.<rank> and its
 * raw ping-pong samples to DIR/raw.<op>.<rank> (doubles, microseconds).
 * Buffers of the throughput loops come from paramd_alloc (unless
 * --shared-buffers no), as a training loop's should.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/bench.h"
#include "common/common.h"
#include "paramd.h"

/* ==== The worker: paramd bench --worker DIR =============================== */

/* Time one loop of `op` over the whole table t; writes one line to f. */
static int worker_loop(paramd_client *c, paramd_table *t, int op, uint64_t n,
                       const float *ones, float *got, const bench_opts *o,
                       int64_t *pushes, FILE *f) {
    int rc = paramd_barrier(c);
    if (rc) return rc;
    int64_t reps = 0;
    double t0 = pd_now(), t1;
    do {
        if (op != OP_PULL) {
            if ((rc = paramd_push(t, 0, n, ones))) return rc;
            paramd_clock(c);
            (*pushes)++;
        }
        if (op != OP_PUSH && (rc = paramd_pull(t, 0, n, got))) return rc;
        reps++;
        t1 = pd_now();
    } while (t1 - t0 < o->seconds && reps < o->max_reps);
    /* Our own pushes were all answered, so they show; in the pull loop
     * nobody pushes (barriers), so both ends agree.  In the pushpull loop
     * other workers may push between the chunks of one pull. */
    float mine = (float)*pushes;
    if (op != OP_PUSH &&
        !(got[0] >= mine && got[n - 1] >= mine && (op != OP_PULL || got[0] == got[n - 1]))) {
        fprintf(stderr,
                "paramd bench: pulled %.1f and %.1f at both ends of the table after "
                "%lld own pushes\n",
                got[0], got[n - 1], (long long)*pushes);
        return PARAMD_EINTERNAL;
    }
    fprintf(f, "tp op=%d size=%llu reps=%lld t0=%.9f t1=%.9f\n", op,
            (unsigned long long)(n * 4), (long long)reps, t0, t1);
    return 0;
}

static int worker_size(paramd_client *c, uint64_t size, const bench_opts *o, FILE *f) {
    uint64_t n = size / 4;
    char name[64];
    snprintf(name, sizeof name, "bench.%llu", (unsigned long long)size);
    paramd_table *t;
    int rc = paramd_table_open(c, name, n, TABLE_SPEC, NULL, &t);
    if (rc) return rc;
    /* Shared buffers (paramd_alloc), as a training loop should use: over
     * shared memory the servers read and write them in place. */
    float *ones = paramd_alloc(c, size), *got = paramd_alloc(c, size);
    if (!ones || !got) {
        paramd_free(c, ones), paramd_free(c, got);
        fprintf(stderr, "paramd bench: out of memory for two %llu-byte buffers\n",
                (unsigned long long)size);
        return PARAMD_ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++) ones[i] = 1.0f;
    memset(got, 0, size);
    int64_t pushes = 0;
    /* Warm-up: first touches of every page, on both sides. */
    rc = paramd_push(t, 0, n, ones);
    paramd_clock(c);
    pushes++;
    if (!rc) rc = paramd_pull(t, 0, n, got);
    for (int op = OP_PUSH; op <= OP_PUSHPULL && !rc; op++)
        if (o->ops[op]) rc = worker_loop(c, t, op, n, ones, got, o, &pushes, f);
    /* Every worker's pushes are answered: worker 0 reads the result. */
    if (!rc) rc = paramd_barrier(c);
    if (!rc && paramd_rank(c) == 0 && !(rc = paramd_pull(t, 0, n, got))) {
        float lo = got[0], hi = got[0];
        for (uint64_t i = 1; i < n; i++) {
            if (got[i] < lo) lo = got[i];
            if (got[i] > hi) hi = got[i];
        }
        fprintf(f, "value size=%llu min=%.1f max=%.1f\n", (unsigned long long)size, lo, hi);
    }
    if (!rc) fprintf(f, "pushes size=%llu n=%lld\n", (unsigned long long)size, (long long)pushes);
    paramd_free(c, ones);
    paramd_free(c, got);
    return rc;
}

/* Write n doubles to DIR/NAME.OP.RANK.  0 or PARAMD_EIO. */
static int write_samples(const bench_opts *o, const char *name, int k, int rank,
                         const double *v, size_t n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.%s.%d", o->worker_dir, name, k ? "push" : "pull", rank);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(v, sizeof *v, n, f) != n || fclose(f)) {
        fprintf(stderr, "paramd bench: cannot write %s\n", path);
        return PARAMD_EIO;
    }
    return 0;
}

/* Latency of single 4 KiB pulls, then pushes, in blocks of LAT_BLOCK
 * requests that alternate with as many raw TCP round trips of the same
 * frames to our own peer process (peer_fd), so that paramd and its
 * ceiling are measured at the same moments, under the same load.  Samples
 * go to DIR/lat.OP.RANK and DIR/raw.OP.RANK. */
static int worker_latency(paramd_client *c, const bench_opts *o, int peer_fd) {
    uint64_t n = LAT_SIZE / 4;
    paramd_table *t;
    int rc = paramd_table_open(c, "bench.latency", n, TABLE_SPEC, NULL, &t);
    if (rc) return rc;
    float *buf = calloc(n, sizeof *buf);
    char *req = calloc(1, pp_request(1)), *ans = calloc(1, pp_reply(0));
    double *v = malloc(sizeof *v * (size_t)o->max_reps);
    double *u = malloc(sizeof *u * (size_t)o->max_reps);
    if (!buf || !req || !ans || !v || !u) {
        rc = PARAMD_ENOMEM;
        goto out;
    }
    for (int i = 0; i < 100 && !rc; i++) {
        rc = paramd_pull(t, 0, n, buf);
        if (!rc && pingpong_once(peer_fd, 0, req, ans)) rc = PARAMD_EIO;
    }
    for (int k = 0; k < 2 && !rc; k++) {
        if ((rc = paramd_barrier(c))) break;
        size_t m = 0, mu = 0;
        double t0 = pd_now(), e = t0;
        while ((int64_t)m < o->max_reps && e - t0 < o->seconds && !rc) {
            for (int j = 0; j < LAT_BLOCK && (int64_t)m < o->max_reps && !rc; j++) {
                double s = pd_now();
                rc = k == 0 ? paramd_pull(t, 0, n, buf) : paramd_push(t, 0, n, buf);
                e = pd_now();
                if (k == 1) paramd_clock(c);
                v[m++] = (e - s) * 1e6;
            }
            for (int j = 0; j < LAT_BLOCK && (int64_t)mu < o->max_reps && !rc; j++) {
                double s = pd_now();
                if (pingpong_once(peer_fd, k, req, ans)) {
                    fprintf(stderr, "paramd bench: raw TCP ping-pong failed\n");
                    rc = PARAMD_EIO;
                }
                e = pd_now();
                u[mu++] = (e - s) * 1e6;
            }
        }
        if (!rc) rc = write_samples(o, "lat", k, paramd_rank(c), v, m);
        if (!rc) rc = write_samples(o, "raw", k, paramd_rank(c), u, mu);
    }
out:
    free(buf), free(req), free(ans), free(v), free(u);
    return rc;
}

/* The small-request op: windows of SMALL_WIN async 4 KiB pushes, one per
 * block of a table of SMALL_WIN blocks, then wait for all, then clock;
 * SMALL_TURNS turns of about seconds / SMALL_TURNS each, taking turns with
 * the other worker (barriers).  Writes "small on=... reqs=... secs=..."
 * and "smallpushes n=..." (windows: every element got one push of one per
 * window), and worker 0 "smallvalue min=... max=...". */
static int worker_small(paramd_client *c, const bench_opts *o, int on, FILE *f) {
    uint64_t blk = LAT_SIZE / 4, n = blk * SMALL_WIN;
    paramd_table *t;
    int rc = paramd_table_open(c, "bench.small", n, TABLE_SPEC, NULL, &t);
    if (rc) return rc;
    float *ones = malloc(LAT_SIZE), *got = malloc(n * sizeof *got);
    paramd_request *q[SMALL_WIN];
    if (!ones || !got) {
        free(ones), free(got);
        return PARAMD_ENOMEM;
    }
    for (uint64_t i = 0; i < blk; i++) ones[i] = 1.0f;
    int64_t reqs = 0, windows = 0, max_windows = o->max_reps;
    double secs = 0;
    for (int turn = 0; turn < SMALL_TURNS && !rc; turn++)
        for (int who = 0; who < 2 && !rc; who++) {
            if ((rc = paramd_barrier(c))) break;
            if (paramd_rank(c) != who) continue;
            double t0 = pd_now(), t1;
            do {
                for (int b = 0; b < SMALL_WIN && !rc; b++)
                    rc = paramd_push_async(t, (uint64_t)b * blk, blk, ones, &q[b]);
                for (int b = 0; b < SMALL_WIN && !rc; b++) {
                    int r2 = paramd_wait(q[b]);
                    if (r2 && !rc) rc = r2;
                }
                paramd_clock(c);
                reqs += SMALL_WIN;
                windows++;
                t1 = pd_now();
            } while (!rc && t1 - t0 < o->seconds / SMALL_TURNS &&
                     windows < max_windows);
            secs += t1 - t0;
        }
    if (!rc) rc = paramd_barrier(c);
    if (!rc) {
        fprintf(f, "small on=%d reqs=%lld secs=%.9f\n", on, (long long)reqs, secs);
        fprintf(f, "smallpushes n=%lld\n", (long long)windows);
    }
    if (!rc && paramd_rank(c) == 0 && !(rc = paramd_pull(t, 0, n, got))) {
        float lo = got[0], hi = got[0];
        for (uint64_t i = 1; i < n; i++) {
            if (got[i] < lo) lo = got[i];
            if (got[i] > hi) hi = got[i];
        }
        fprintf(f, "smallvalue min=%.1f max=%.1f\n", lo, hi);
    }
    free(ones);
    free(got);
    return rc;
}

int bench_worker_main(const bench_opts *o) {
    paramd_client *c;
    char opt[96] = "";
    pd_log_set_name("bench worker");
    /* The raw ping-pong peer, started before the client's threads. */
    int peer_fd = -1;
    pid_t peer = -1;
    if (o->ops[OP_LAT] && (peer = peer_start(&peer_fd, pingpong_peer, NULL)) < 0) return 1;
    if (o->chunk_bytes) snprintf(opt, sizeof opt, "chunk_bytes=%lld", (long long)o->chunk_bytes);
    if (o->private_buffers)
        snprintf(opt + strlen(opt), sizeof opt - strlen(opt), " shared_buffers=no");
    /* The small op: worker 1 sends one frame per request, worker 0 lets
     * the library coalesce (its default).  The rank is known before
     * connecting: paramd local sets PARAMD_RANK. */
    const char *rank_env = getenv("PARAMD_RANK");
    int small_off = o->ops[OP_SMALL] && rank_env && atoi(rank_env) == 1;
    if (small_off) snprintf(opt + strlen(opt), sizeof opt - strlen(opt), " coalesce_bytes=0");
    /* The driver passes exactly one transport to its workers: forced. */
    if (o->tcp != o->shm)
        snprintf(opt + strlen(opt), sizeof opt - strlen(opt), " transport=%s",
                 o->tcp ? "tcp" : "shm");
    if (paramd_connect(&c, opt)) {
        fprintf(stderr, "paramd bench: cannot join the cluster: %s\n", paramd_last_error(NULL));
        if (peer >= 0) peer_finish(peer_fd, peer);
        return 1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/w%d.txt", o->worker_dir, paramd_rank(c));
    FILE *f = fopen(path, "w");
    int rc = f ? 0 : PARAMD_EIO;
    if (!f) fprintf(stderr, "paramd bench: cannot write %s: %s\n", path, strerror(errno));
    int any_tp = o->ops[OP_PUSH] || o->ops[OP_PULL] || o->ops[OP_PUSHPULL];
    for (int i = 0; i < o->nsizes && !rc && any_tp; i++) rc = worker_size(c, o->sizes[i], o, f);
    if (!rc && o->ops[OP_LAT]) rc = worker_latency(c, o, peer_fd);
    if (!rc && o->ops[OP_SMALL]) rc = worker_small(c, o, !small_off, f);
    if (f && fclose(f) && !rc) rc = PARAMD_EIO;
    if (rc)
        fprintf(stderr, "paramd bench (worker %d): %s: %s\n", paramd_rank(c),
                paramd_strerror(rc), paramd_last_error(c));
    paramd_close(c);
    if (peer >= 0) peer_finish(peer_fd, peer);
    return rc ? 1 : 0;
}
