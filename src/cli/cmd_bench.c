/*
 * cmd_bench.c - `paramd bench`: how fast paramd moves dense parameters,
 * next to what the machine allows, measured in the same run.  This file is
 * the driver and the table; bench.h lists the other parts.
 *
 * What it measures.  For every cluster shape (S servers x W workers) and
 * every transport asked for (--transport tcp,shm) it starts a local
 * cluster (pd_local_start, as `paramd local` does) whose workers are this
 * same program run as `paramd bench --worker DIR ...`, forced onto that
 * transport (bench_worker.c: dense push, pull and push+pull throughput,
 * then the latency of single 4 KiB requests).  Small requests get a
 * cluster of their own per transport (1 server, 2 workers: coalescing on
 * and off).  The ceilings (bench_ceil.c) are measured before the first
 * cluster starts, and every figure is printed with its ratio to its
 * ceiling.  Once a cluster has exited, the driver reads the files its
 * workers left in DIR (collect, collect_small) and removes them.
 *
 * How figures are counted.  Throughput is payload bytes (the values, not
 * headers) moved by all workers together, divided by the wall time from
 * the first worker's start to the last worker's end: pushpull counts 2 x
 * size per round.  Every process runs on this host, so CLOCK_MONOTONIC is
 * one clock for all of them.  Latency percentiles are over the samples of
 * every worker (with W > 1 they measure the requests of W workers at once).
 * A figure is verified=1 when the table's final values equal the pushes
 * all workers made; a mismatch fails the run.
 *
 * Output: one line per configuration (key=value, or a JSON object per
 * line with --json; bench_opts.c) on stdout as each cluster finishes, then
 * a readable table.  Progress and the children's own messages go to
 * stderr: the children's stdout is sent to our stderr so that stdout stays
 * parseable.  Shared-memory figures are set against the shared-memory
 * copy and stream ceilings; the table also gives each one's ratio to TCP's
 * figure of the same configuration.
 *
 * What it deliberately does not do: assert any time (a benchmark is a
 * program, not a test).  Memory is checked up front: each worker
 * holds two buffers of the largest size, the servers one copy of every
 * table, and the run refuses to start if that exceeds half of RAM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/bench.h"
#include "cli/cli.h"
#include "cli/local.h"
#include "cli/util.h"
#include "common/common.h"
#include "paramd.h"

/* ==== The driver: one cluster per shape ================================== */

typedef struct tp_result {
    int tr; /* 0 tcp, 1 shm */
    int S, W, op;
    uint64_t size;
    int64_t reps;      /* rounds, all workers */
    double bytes, secs;
    int verified;
} tp_result;

typedef struct lat_result {
    int tr;
    int S, W, op; /* 0 pull, 1 push */
    size_t n;
    double p50, p99, mean;
    double ceil_p50, ceil_p99; /* the ping-pong right before the cluster */
} lat_result;

/* The small-request op of one transport: requests/s with coalescing on
 * (worker 0) and off (worker 1). */
typedef struct small_result {
    int tr;
    int64_t reqs[2];   /* [0] off, [1] on */
    double secs[2];
    int verified;
} small_result;

typedef struct results {
    tp_result *tp;
    size_t ntp;
    lat_result lat[2 * 2 * MAX_LIST * MAX_LIST];
    size_t nlat;
    small_result small[2];
    size_t nsmall;
} results;

/* The samples DIR/NAME.OP.RANK of every worker, merged and sorted, or
 * NULL (message printed). */
static double *read_samples(const char *dir, const char *name, int k, int W, size_t *nout) {
    double *v = NULL;
    size_t n = 0;
    for (int w = 0; w < W; w++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.%s.%d", dir, name, k ? "push" : "pull", w);
        FILE *f = fopen(path, "rb");
        struct stat st;
        size_t m = 0;
        double *nv = NULL;
        if (f && fstat(fileno(f), &st) == 0) {
            m = (size_t)st.st_size / sizeof *v;
            nv = realloc(v, sizeof *v * (n + m + 1));
        }
        if (!nv || fread(nv + n, sizeof *v, m, f) != m) {
            fprintf(stderr, "paramd bench: worker %d left no usable %s\n", w, path);
            if (f) fclose(f);
            free(nv ? nv : v);
            return NULL;
        }
        fclose(f);
        v = nv;
        n += m;
    }
    if (n == 0) {
        fprintf(stderr, "paramd bench: no %s samples\n", name);
        free(v);
        return NULL;
    }
    qsort(v, n, sizeof *v, cmp_double);
    *nout = n;
    return v;
}

/* Read the workers' files for a cluster of S x W; append to R and print a
 * line per configuration.  0, or -1 if a file is missing or the final
 * values do not match the pushes. */
static const char *const tr_names[2] = {"tcp", "shm"};

static int collect(const char *dir, int tr, int S, int W, const bench_opts *o,
                   const ceilings *cl, results *R, FILE *out) {
    int ok = 1;
    typedef struct acc {
        int64_t reps;
        double t0, t1;
        int seen;
    } acc;
    acc a[MAX_LIST][3];
    int64_t pushes[MAX_LIST];
    double vmin[MAX_LIST] = {0}, vmax[MAX_LIST] = {0};
    int have_value[MAX_LIST];
    memset(a, 0, sizeof a);
    memset(pushes, 0, sizeof pushes);
    memset(have_value, 0, sizeof have_value);
    for (int w = 0; w < W; w++) {
        char path[4200], line[256];
        snprintf(path, sizeof path, "%s/w%d.txt", dir, w);
        FILE *f = fopen(path, "r");
        if (!f) {
            fprintf(stderr, "paramd bench: worker %d left no results (%s)\n", w, path);
            return -1;
        }
        while (fgets(line, sizeof line, f)) {
            int op;
            unsigned long long size;
            long long reps;
            double t0, t1, lo, hi;
            int si = -1;
            if (sscanf(line, "tp op=%d size=%llu reps=%lld t0=%lf t1=%lf", &op, &size, &reps,
                       &t0, &t1) == 5) {
                for (int i = 0; i < o->nsizes; i++)
                    if (o->sizes[i] == size) si = i;
                if (si < 0 || op < 0 || op > 2) continue;
                acc *x = &a[si][op];
                if (!x->seen || t0 < x->t0) x->t0 = t0;
                if (!x->seen || t1 > x->t1) x->t1 = t1;
                x->reps += reps;
                x->seen = 1;
            } else if (sscanf(line, "value size=%llu min=%lf max=%lf", &size, &lo, &hi) == 3) {
                for (int i = 0; i < o->nsizes; i++)
                    if (o->sizes[i] == size) si = i;
                if (si < 0) continue;
                vmin[si] = lo, vmax[si] = hi, have_value[si] = 1;
            } else if (sscanf(line, "pushes size=%llu n=%lld", &size, &reps) == 2) {
                for (int i = 0; i < o->nsizes; i++)
                    if (o->sizes[i] == size) si = i;
                if (si >= 0) pushes[si] += reps;
            }
        }
        fclose(f);
    }
    for (int i = 0; i < o->nsizes; i++) {
        int verified = have_value[i] && vmin[i] == (double)pushes[i] && vmax[i] == vmin[i];
        int any = 0;
        for (int op = 0; op < 3; op++) {
            acc *x = &a[i][op];
            if (!x->seen) continue;
            any = 1;
            tp_result *t = realloc(R->tp, sizeof *R->tp * (R->ntp + 1));
            if (!t) return -1;
            R->tp = t;
            tp_result *r = &R->tp[R->ntp++];
            r->tr = tr, r->S = S, r->W = W, r->op = op, r->size = o->sizes[i];
            r->reps = x->reps;
            r->bytes = (double)x->reps * (double)o->sizes[i] * (op == OP_PUSHPULL ? 2 : 1);
            r->secs = x->t1 - x->t0;
            r->verified = verified;
            double bps = r->secs > 0 ? r->bytes / r->secs : 0;
            rec q;
            rec_begin(&q, out, o->json, "dense");
            rec_str(&q, "transport", tr_names[tr]);
            rec_str(&q, "op", op_names[op]);
            rec_int(&q, "servers", S);
            if (o->replicas > 1) rec_int(&q, "replicas", o->replicas); /* (--replicas) */
            rec_int(&q, "workers", W);
            rec_int(&q, "size", (long long)o->sizes[i]);
            rec_int(&q, "reps", (long long)r->reps);
            rec_num(&q, "seconds", r->secs);
            rec_int(&q, "bytes", (long long)r->bytes);
            rec_num(&q, "bytes_per_s", bps);
            rec_num(&q, "ceiling_tcp_bytes_per_s", cl->tcp_bps[i]);
            rec_num(&q, "ratio_tcp", bps / cl->tcp_bps[i]);
            rec_num(&q, "ratio_memcpy", bps / cl->memcpy_bps[i]);
            if (tr == 1) {
                rec_num(&q, "ceiling_shm_copy_bytes_per_s", cl->shmcopy_bps[i]);
                rec_num(&q, "ratio_shm_copy", bps / cl->shmcopy_bps[i]);
                rec_num(&q, "ceiling_shm_stream_bytes_per_s", cl->shm_bps[i]);
                rec_num(&q, "ratio_shm_stream", bps / cl->shm_bps[i]);
            }
            rec_int(&q, "verified", verified);
            rec_end(&q);
        }
        if (any && !verified) {
            fprintf(stderr,
                    "paramd bench: S=%d W=%d size %llu: final values %.1f..%.1f, but "
                    "the workers pushed %lld times\n",
                    S, W, (unsigned long long)o->sizes[i], have_value[i] ? vmin[i] : -1.0,
                    have_value[i] ? vmax[i] : -1.0, (long long)pushes[i]);
            ok = 0;
        }
    }
    if (o->ops[OP_LAT]) {
        for (int k = 0; k < 2; k++) {
            size_t n, nr;
            double *v = read_samples(dir, "lat", k, W, &n);
            double *u = v ? read_samples(dir, "raw", k, W, &nr) : NULL;
            if (!v || !u) {
                free(v);
                return -1;
            }
            double sum = 0;
            for (size_t j = 0; j < n; j++) sum += v[j];
            lat_result *l = &R->lat[R->nlat++];
            l->tr = tr, l->S = S, l->W = W, l->op = k, l->n = n;
            l->p50 = quantile(v, n, 0.5);
            l->p99 = quantile(v, n, 0.99);
            l->mean = sum / (double)n;
            l->ceil_p50 = quantile(u, nr, 0.5);
            l->ceil_p99 = quantile(u, nr, 0.99);
            free(v);
            free(u);
            rec q;
            rec_begin(&q, out, o->json, "ceiling");
            rec_str(&q, "what", "tcp_pingpong");
            rec_str(&q, "during", tr_names[tr]);
            rec_str(&q, "op", k ? "push" : "pull");
            rec_int(&q, "servers", S);
            if (o->replicas > 1) rec_int(&q, "replicas", o->replicas); /* (--replicas) */
            rec_int(&q, "workers", W);
            rec_int(&q, "size", LAT_SIZE);
            rec_int(&q, "request_bytes", (long long)pp_request(k));
            rec_int(&q, "reply_bytes", (long long)pp_reply(k));
            rec_int(&q, "samples", (long long)nr);
            rec_num(&q, "p50_us", l->ceil_p50);
            rec_num(&q, "p99_us", l->ceil_p99);
            rec_end(&q);
            rec_begin(&q, out, o->json, "latency");
            rec_str(&q, "transport", tr_names[tr]);
            rec_str(&q, "op", k ? "push" : "pull");
            rec_int(&q, "servers", S);
            if (o->replicas > 1) rec_int(&q, "replicas", o->replicas); /* (--replicas) */
            rec_int(&q, "workers", W);
            rec_int(&q, "size", LAT_SIZE);
            rec_int(&q, "samples", (long long)n);
            rec_num(&q, "p50_us", l->p50);
            rec_num(&q, "p99_us", l->p99);
            rec_num(&q, "mean_us", l->mean);
            rec_num(&q, "ceiling_p50_us", l->ceil_p50);
            rec_num(&q, "ceiling_p99_us", l->ceil_p99);
            rec_num(&q, "ratio_p50", l->p50 / l->ceil_p50);
            rec_num(&q, "ratio_p99", l->p99 / l->ceil_p99);
            rec_end(&q);
        }
    }
    return ok ? 0 : -1;
}

/* Read the two workers' files of the small op's cluster (transport tr),
 * append to R, print its line.  0, or -1 if a file is missing or the
 * final values do not match the windows pushed. */
static int collect_small(const char *dir, int tr, const bench_opts *o, results *R,
                         FILE *out) {
    small_result *s = &R->small[R->nsmall];
    int64_t windows = 0;
    double lo = -1, hi = -1;
    int seen[2] = {0, 0};
    memset(s, 0, sizeof *s);
    s->tr = tr;
    for (int w = 0; w < 2; w++) {
        char path[4200], line[256];
        snprintf(path, sizeof path, "%s/w%d.txt", dir, w);
        FILE *f = fopen(path, "r");
        if (!f) {
            fprintf(stderr, "paramd bench: worker %d left no results (%s)\n", w, path);
            return -1;
        }
        while (fgets(line, sizeof line, f)) {
            int on;
            long long reqs, n;
            double secs, a, b;
            if (sscanf(line, "small on=%d reqs=%lld secs=%lf", &on, &reqs, &secs) == 3 &&
                (on == 0 || on == 1)) {
                s->reqs[on] = reqs, s->secs[on] = secs, seen[on] = 1;
            } else if (sscanf(line, "smallpushes n=%lld", &n) == 1) {
                windows += n;
            } else if (sscanf(line, "smallvalue min=%lf max=%lf", &a, &b) == 2) {
                lo = a, hi = b;
            }
        }
        fclose(f);
    }
    if (!seen[0] || !seen[1]) {
        fprintf(stderr, "paramd bench: the small-request workers left no figures\n");
        return -1;
    }
    s->verified = lo == (double)windows && hi == lo;
    R->nsmall++;
    rec q;
    rec_begin(&q, out, o->json, "small");
    rec_str(&q, "transport", tr_names[tr]);
    rec_int(&q, "servers", 1);
    rec_int(&q, "workers", 1);
    rec_int(&q, "size", LAT_SIZE);
    rec_int(&q, "window", SMALL_WIN);
    rec_int(&q, "coalesce_bytes_on", 16384);
    rec_int(&q, "reqs_on", (long long)s->reqs[1]);
    rec_num(&q, "seconds_on", s->secs[1]);
    rec_num(&q, "reqs_per_s_on", (double)s->reqs[1] / s->secs[1]);
    rec_int(&q, "reqs_off", (long long)s->reqs[0]);
    rec_num(&q, "seconds_off", s->secs[0]);
    rec_num(&q, "reqs_per_s_off", (double)s->reqs[0] / s->secs[0]);
    rec_num(&q, "ratio_on_off", ((double)s->reqs[1] / s->secs[1]) /
                                    ((double)s->reqs[0] / s->secs[0]));
    rec_int(&q, "verified", s->verified);
    rec_end(&q);
    if (!s->verified) {
        fprintf(stderr, "paramd bench: small requests over %s: final values %.1f..%.1f, but "
                "the workers pushed %lld windows\n", tr_names[tr], lo, hi, (long long)windows);
        return -1;
    }
    return 0;
}

static void remove_dir(const char *dir, int W) {
    char path[4200];
    for (int w = 0; w < W; w++) {
        snprintf(path, sizeof path, "%s/w%d.txt", dir, w);
        unlink(path);
        snprintf(path, sizeof path, "%s/lat.pull.%d", dir, w);
        unlink(path);
        snprintf(path, sizeof path, "%s/lat.push.%d", dir, w);
        unlink(path);
        snprintf(path, sizeof path, "%s/raw.pull.%d", dir, w);
        unlink(path);
        snprintf(path, sizeof path, "%s/raw.push.%d", dir, w);
        unlink(path);
    }
}

/* Start a cluster of S x W whose workers are `paramd bench --worker`,
 * wait for it, collect.  small: the cluster of the small op (only that
 * op); else every other op asked for.  0, 1 (failed), or 128+signal. */
static int run_cluster(int tr, int S, int W, int small, const bench_opts *o,
                       const char *dir, const ceilings *cl, results *R, FILE *out) {
    char sizes[MAX_LIST * 24] = "", ops[64] = "", secs[32], reps[32], chunk[32];
    for (int i = 0; i < o->nsizes; i++)
        snprintf(sizes + strlen(sizes), sizeof sizes - strlen(sizes), "%s%llu", i ? "," : "",
                 (unsigned long long)o->sizes[i]);
    for (int k = 0; k < NOPS; k++)
        if (o->ops[k] && (k == OP_SMALL) == small)
            snprintf(ops + strlen(ops), sizeof ops - strlen(ops), "%s%s", ops[0] ? "," : "",
                     op_names[k]);
    snprintf(secs, sizeof secs, "%.17g", o->seconds);
    snprintf(reps, sizeof reps, "%lld", (long long)o->max_reps);
    snprintf(chunk, sizeof chunk, "%lld", (long long)o->chunk_bytes);
    char *wargv[20];
    int k = 0;
    wargv[k++] = (char *)cli_self_path();
    wargv[k++] = "bench";
    wargv[k++] = "--worker";
    wargv[k++] = (char *)dir;
    wargv[k++] = "--sizes";
    wargv[k++] = sizes;
    wargv[k++] = "--ops";
    wargv[k++] = ops;
    wargv[k++] = "--seconds";
    wargv[k++] = secs;
    wargv[k++] = "--max-reps";
    wargv[k++] = reps;
    if (o->chunk_bytes) {
        wargv[k++] = "--chunk-bytes";
        wargv[k++] = chunk;
    }
    if (o->private_buffers) {
        wargv[k++] = "--shared-buffers";
        wargv[k++] = "no";
    }
    wargv[k++] = "--transport";
    wargv[k++] = (char *)tr_names[tr];
    wargv[k] = NULL;
    pd_local *L;
    char why[300];
    pd_local_start(&L, S, W, 0, "127.0.0.1", wargv, NULL,
                   PD_LOCAL_REPLICAS(o->replicas > 1 ? o->replicas : 1));
    if (!L) {
        fprintf(stderr, "paramd bench: out of memory\n");
        return 1;
    }
    int rc = pd_local_wait(L, why, sizeof why);
    pd_local_free(L);
    if (rc) {
        fprintf(stderr, "paramd bench: cluster of %d servers, %d workers over %s: %s\n", S, W,
                tr_names[tr], why);
    } else if (small ? collect_small(dir, tr, o, R, out)
                     : collect(dir, tr, S, W, o, cl, R, out)) {
        rc = 1;
    }
    remove_dir(dir, W);
    return rc;
}

/* ==== The readable table ================================================= */

static const tp_result *find_tp(const results *R, int tr, int S, int W, uint64_t size,
                                int op) {
    for (size_t i = 0; i < R->ntp; i++) {
        const tp_result *t = &R->tp[i];
        if (t->tr == tr && t->S == S && t->W == W && t->size == size && t->op == op) return t;
    }
    return NULL;
}

static void print_table(const results *R, const bench_opts *o, const ceilings *c, FILE *out) {
    char b1[32];
    fprintf(out, "\nceilings, per value size: raw TCP stream between two processes, memcpy%s\n",
            o->shm ? ",\nmemcpy into shared memory, raw shared-memory stream between two processes"
                   : "");
    fprintf(out, "%9s  %10s  %10s", "size", "TCP GB/s", "memcpy GB/s");
    if (o->shm) fprintf(out, "  %10s  %10s", "shm copy", "shm stream");
    fprintf(out, "\n");
    for (int z = 0; z < o->nsizes; z++) {
        fmt_size(o->sizes[z], b1, sizeof b1);
        fprintf(out, "%9s  %10.2f  %10.2f", b1, c->tcp_bps[z] / 1e9, c->memcpy_bps[z] / 1e9);
        if (o->shm) fprintf(out, "  %10.2f  %10.2f", c->shmcopy_bps[z] / 1e9, c->shm_bps[z] / 1e9);
        fprintf(out, "\n");
    }
    for (int tr = 0; tr < 2; tr++) {
        int any = 0;
        for (size_t i = 0; i < R->ntp; i++) any |= R->tp[i].tr == tr;
        if (!any) continue;
        if (tr == 0)
            fprintf(out, "\ndense throughput over TCP, GB/s of values, all workers (ratio to the "
                         "raw TCP stream of that size)\n");
        else
            fprintf(out, "\ndense throughput over shared memory, GB/s of values, all workers "
                         "(ratio to the shm copy of that size;\nx: ratio to TCP's figure of the "
                         "same configuration)\n");
        fprintf(out, "%3s %3s %9s  %-22s %-22s %-22s %s\n", "S", "W", "size", "push", "pull",
                "push+pull", "rounds (push/pull/both)");
        for (int si = 0; si < o->nservers; si++)
            for (int wi = 0; wi < o->nworkers; wi++)
                for (int z = 0; z < o->nsizes; z++) {
                    int S = o->servers[si], W = o->workers[wi];
                    fmt_size(o->sizes[z], b1, sizeof b1);
                    fprintf(out, "%3d %3d %9s ", S, W, b1);
                    char reps[96] = "";
                    for (int op = 0; op < 3; op++) {
                        const tp_result *t = find_tp(R, tr, S, W, o->sizes[z], op);
                        const tp_result *tt = find_tp(R, 0, S, W, o->sizes[z], op);
                        char cell[48] = "-";
                        if (t) {
                            double bps = t->bytes / t->secs;
                            if (tr == 0)
                                snprintf(cell, sizeof cell, "%6.2f (%.2f)", bps / 1e9,
                                         bps / c->tcp_bps[z]);
                            else if (tt)
                                snprintf(cell, sizeof cell, "%6.2f (%.2f, %.1fx)", bps / 1e9,
                                         bps / c->shmcopy_bps[z], bps / (tt->bytes / tt->secs));
                            else
                                snprintf(cell, sizeof cell, "%6.2f (%.2f)", bps / 1e9,
                                         bps / c->shmcopy_bps[z]);
                        }
                        fprintf(out, " %-22s", cell);
                        snprintf(reps + strlen(reps), sizeof reps - strlen(reps), "%s%lld",
                                 op ? "/" : "", t ? (long long)t->reps : 0LL);
                    }
                    fprintf(out, " %s\n", reps);
                }
    }
    for (int tr = 0; tr < 2; tr++) {
        int any = 0;
        for (size_t i = 0; i < R->nlat; i++) any |= R->lat[i].tr == tr;
        if (!any) continue;
        fprintf(out,
                "\nlatency of one 4 KiB request over %s, us: p50 / p99, then the raw TCP "
                "ping-pong of the same frames\nmeasured in alternation with it (p50 / p99), and "
                "the ratio of the p50s\n", tr ? "shared memory" : "TCP");
        fprintf(out, "%3s %3s  %-42s %s\n", "S", "W", "pull", "push");
        for (int si = 0; si < o->nservers; si++)
            for (int wi = 0; wi < o->nworkers; wi++) {
                int S = o->servers[si], W = o->workers[wi];
                fprintf(out, "%3d %3d ", S, W);
                for (int k = 0; k < 2; k++) {
                    char cell[96] = "-";
                    for (size_t i = 0; i < R->nlat; i++) {
                        const lat_result *l = &R->lat[i];
                        if (l->tr == tr && l->S == S && l->W == W && l->op == k)
                            snprintf(cell, sizeof cell, "%.1f / %.1f, raw %.1f / %.1f (%.2fx)",
                                     l->p50, l->p99, l->ceil_p50, l->ceil_p99,
                                     l->p50 / l->ceil_p50);
                    }
                    fprintf(out, k ? " %s" : " %-42s", cell);
                }
                fprintf(out, "\n");
            }
    }
    if (R->nsmall) {
        fprintf(out,
                "\nsmall requests: one worker, windows of %d async 4 KiB pushes then wait, 1 "
                "server;\nrequests/s with coalescing into BATCH frames on (coalesce_bytes=16384) "
                "and off, and their ratio\n", SMALL_WIN);
        fprintf(out, "%-10s %12s %12s %8s\n", "transport", "on", "off", "on/off");
        for (size_t i = 0; i < R->nsmall; i++) {
            const small_result *s = &R->small[i];
            double on = (double)s->reqs[1] / s->secs[1], off = (double)s->reqs[0] / s->secs[0];
            fprintf(out, "%-10s %12.0f %12.0f %7.2fx\n", tr_names[s->tr], on, off, on / off);
        }
    }
}

/* ==== paramd bench ======================================================== */

static int check_memory(const bench_opts *o) {
    uint64_t maxsz = 0, total = 0;
    int maxw = 0;
    for (int i = 0; i < o->nsizes; i++) {
        if (o->sizes[i] > maxsz) maxsz = o->sizes[i];
        total += o->sizes[i];
    }
    for (int i = 0; i < o->nworkers; i++)
        if (o->workers[i] > maxw) maxw = o->workers[i];
    /* Workers: a buffer of ones and one to pull into.  Servers: every
     * table stays until the cluster exits. */
    double need = (double)maxw * 2.0 * (double)maxsz + (double)total;
    double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (ram > 0 && need > ram / 2) {
        fprintf(stderr,
                "paramd bench: this run needs about %.1f GiB (%d workers x 2 x %.0f MiB, "
                "plus the tables), more than half of this machine's %.1f GiB: use "
                "fewer --workers or smaller --sizes\n",
                need / (1u << 30), maxw, (double)maxsz / (1u << 20), ram / (1u << 30));
        return -1;
    }
    return 0;
}

int cmd_bench(int argc, char **argv) {
    bench_opts o;
    pd_log_set_name("paramd bench");
    int prc = bench_parse_args(argc, argv, &o);
    if (prc) return prc == 1 ? 0 : 2;
    if (o.worker_dir) return bench_worker_main(&o);
    if (check_memory(&o)) return 2;

    /* Our records go to the real stdout; the children's stdout (which
     * paramd local forwards to ours, like "coordinator listening on")
     * goes to stderr, so that stdout stays machine-readable. */
    fflush(stdout);
    int outfd = dup(1);
    FILE *out = outfd >= 0 ? fdopen(outfd, "w") : NULL;
    if (!out || dup2(2, 1) < 0) {
        fprintf(stderr, "paramd bench: cannot set up output: %s\n", strerror(errno));
        return 1;
    }
    /* The children log only warnings unless told otherwise. */
    setenv("PARAMD_LOG", "warn", 0);

    /* Other work on the machine makes every figure lower and noisier: say
     * so in the record and on stderr. */
    double load1 = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf", &load1) != 1) load1 = 0;
        fclose(la);
    }
    if (load1 > 0.5)
        fprintf(stderr,
                "paramd bench: warning: load average %.2f before starting; other "
                "processes will lower and blur these figures\n",
                load1);
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    rec r;
    rec_begin(&r, out, o.json, "run");
    rec_str(&r, "version", paramd_version_string());
    rec_str(&r, "date", date);
    rec_int(&r, "cores", sysconf(_SC_NPROCESSORS_ONLN));
    rec_num(&r, "load1", load1);
    rec_int(&r, "quick", o.quick);
    rec_num(&r, "seconds", o.seconds);
    rec_int(&r, "max_reps", o.max_reps);
    rec_int(&r, "chunk_bytes", o.chunk_bytes ? o.chunk_bytes : 1 << 20);
    rec_int(&r, "shared_buffers", !o.private_buffers);
    rec_str(&r, "table", TABLE_SPEC);
    rec_end(&r);

    ceilings cl;
    if (bench_measure_ceilings(&cl, &o)) {
        fclose(out);
        return 1;
    }
    bench_print_ceilings(&cl, &o, out);

    results R;
    memset(&R, 0, sizeof R);
    int rc = 0;
    int any = o.ops[OP_PUSH] || o.ops[OP_PULL] || o.ops[OP_PUSHPULL] || o.ops[OP_LAT];
    if ((o.tcp || o.shm) && (any || o.ops[OP_SMALL])) {
        char dir[] = "/tmp/paramd-bench.XXXXXX";
        if (!mkdtemp(dir)) {
            fprintf(stderr, "paramd bench: cannot make a temporary directory: %s\n",
                    strerror(errno));
            fclose(out);
            return 1;
        }
        int nclusters = ((any ? o.nservers * o.nworkers : 0) + o.ops[OP_SMALL]) *
                        (o.tcp + o.shm), i = 0;
        double t0 = pd_now();
        for (int si = 0; si < o.nservers && !rc && any; si++)
            for (int wi = 0; wi < o.nworkers && !rc; wi++)
                for (int tr = 0; tr < 2 && !rc; tr++) {
                    if (!(tr ? o.shm : o.tcp)) continue;
                    fprintf(stderr, "paramd bench: cluster %d/%d: %d servers, %d workers, %s "
                            "(%.0f s so far)\n", ++i, nclusters, o.servers[si], o.workers[wi],
                            tr_names[tr], pd_now() - t0);
                    rc = run_cluster(tr, o.servers[si], o.workers[wi], 0, &o, dir, &cl, &R, out);
                }
        for (int tr = 0; tr < 2 && !rc && o.ops[OP_SMALL]; tr++) {
            if (!(tr ? o.shm : o.tcp)) continue;
            fprintf(stderr, "paramd bench: cluster %d/%d: small requests, 1 server, a worker "
                    "with coalescing and one without, %s (%.0f s so far)\n", ++i, nclusters,
                    tr_names[tr], pd_now() - t0);
            rc = run_cluster(tr, 1, 2, 1, &o, dir, &cl, &R, out);
        }
        rmdir(dir);
    }
    if (!o.json && rc == 0) print_table(&R, &o, &cl, out);
    free(R.tp);
    fclose(out);
    return rc;
}
