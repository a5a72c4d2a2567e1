/*
 * bench.h - the parts of `paramd bench`, one job per file:
 *
 *   cmd_bench.c     the command: runs the ceilings, one local cluster per
 *                   shape and transport, collects the workers' files,
 *                   prints the records and the readable table
 *   bench_opts.c    its options, the key=value / JSON record writer, and
 *                   small helpers (sizes, quantiles, whole reads/writes)
 *   bench_ceil.c    the ceilings: raw TCP stream and ping-pong with a
 *                   forked peer, memcpy, shared-memory copy and stream
 *   bench_worker.c  `paramd bench --worker DIR`: the timed loops a worker
 *                   of each cluster runs
 *
 * Calls go one way: cmd_bench.c calls the three others, bench_worker.c
 * calls bench_ceil.c (its ping-pong peer), bench_ceil.c calls
 * bench_opts.c (records, whole writes), which calls none of them.
 */
#ifndef PARAMD_CLI_BENCH_H
#define PARAMD_CLI_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ==== Constants ========================================================= */

#define MAX_LIST 16               /* entries in --sizes / --servers / ... */
#define LAT_SIZE 4096             /* bytes of a small request */
#define LAT_BLOCK 50              /* requests between raw and paramd turns */
#define CEIL_IO (1u << 20)        /* raw TCP bytes per write/read call */
#define MAX_SIZE (1ull << 30)     /* largest --sizes value */
#define TABLE_SPEC "rule=add consistency=async"
#define SMALL_WIN 64              /* async 4 KiB pushes in flight, then wait */
#define SMALL_TURNS 4             /* turns of each worker in the small op */

enum { OP_PUSH, OP_PULL, OP_PUSHPULL, OP_LAT, OP_SMALL, NOPS };
extern const char *const op_names[NOPS]; /* "push", ... as in --ops */

/* ==== Options (bench_opts.c) ============================================ */

typedef struct bench_opts {
    int quick, json;
    uint64_t sizes[MAX_LIST];
    int nsizes;
    int servers[MAX_LIST], nservers;
    int workers[MAX_LIST], nworkers;
    double seconds;
    int64_t max_reps;
    int ops[NOPS];           /* 1 if the op is run */
    int tcp, shm;            /* transports asked for */
    int64_t chunk_bytes;     /* 0: the library's default */
    int private_buffers;     /* --shared-buffers no */
    int replicas;            /* copies of each shard of every cluster [1] */
    const char *worker_dir;  /* internal: run as a worker */
} bench_opts;

/* Parse argv (from "bench") into o.  0, or 2 (bad usage, message
 * printed), or 1 (--help printed). */
int bench_parse_args(int argc, char **argv, bench_opts *o);

/* ==== Output: key=value or JSON lines (bench_opts.c) ==================== */

/* One record: rec_begin, then one rec_str/int/num per field, rec_end. */
typedef struct rec {
    FILE *out;
    int json, n;
} rec;

void rec_begin(rec *r, FILE *out, int json, const char *bench);
void rec_str(rec *r, const char *k, const char *v);
void rec_int(rec *r, const char *k, long long v);
void rec_num(rec *r, const char *k, double v);
void rec_end(rec *r);

/* ==== Small helpers (bench_opts.c) ====================================== */

void fmt_size(uint64_t b, char *out, size_t n); /* 4096 -> "4 KiB" */
int cmp_double(const void *a, const void *b);   /* for qsort */
/* The q-quantile (0..1) of sorted v[0..n) by the nearest-rank rule. */
double quantile(const double *v, size_t n, double q);
/* Read or write exactly n bytes; 0 or -1. */
int read_full(int fd, void *buf, size_t n);
int write_full(int fd, const void *buf, size_t n);

/* ==== Ceilings (bench_ceil.c) =========================================== */

/* Per value size (index as in --sizes): the raw stream (the writer
 * cycling over a buffer of that size) and memcpy of that size, so that a
 * figure is compared with a ceiling whose data is as cache-resident (or
 * not) as its own. */
typedef struct ceilings {
    double tcp_bps[MAX_LIST], tcp_secs[MAX_LIST];
    uint64_t tcp_bytes[MAX_LIST];
    double memcpy_bps[MAX_LIST], memcpy_secs[MAX_LIST];
    uint64_t memcpy_reps[MAX_LIST];
    /* shm_copy: memcpy into a shared (memfd) mapping, the copy the issue
     * calls the shared-memory ceiling; shm_stream: the raw shared-memory
     * transport (pd_shm_connect, no paramd frames) between two processes,
     * like the TCP stream. */
    double shmcopy_bps[MAX_LIST];
    double shm_bps[MAX_LIST], shm_secs[MAX_LIST];
    uint64_t shm_bytes[MAX_LIST];
} ceilings;

/* The throughput ceilings, once per run; print them as records. */
int bench_measure_ceilings(ceilings *c, const bench_opts *o);
void bench_print_ceilings(const ceilings *c, const bench_opts *o, FILE *out);

typedef void (*peer_fn)(int fd, const void *arg);
/* Fork a peer that connects to us over loopback and runs fn(fd, arg).
 * *fd is our end.  Returns the peer's pid, or -1 after printing why. */
pid_t peer_start(int *fd, peer_fn fn, const void *arg);
void peer_finish(int fd, pid_t pid);

/* The exact frames of a 4 KiB pull (k = 0) and of a 4 KiB push (k = 1):
 * what goes over TCP for one paramd request, header included. */
size_t pp_request(int k);
size_t pp_reply(int k);
/* The raw ping-pong peer (a peer_fn), and one round trip of kind k with
 * it over fd; 0 or -1. */
void pingpong_peer(int fd, const void *arg);
int pingpong_once(int fd, int k, char *req, char *rep);

/* ==== The worker (bench_worker.c) ======================================= */

/* `paramd bench --worker DIR`, run by the local cluster: the exit status. */
int bench_worker_main(const bench_opts *o);

#endif
