/*
 * cmd_bench.c - `paramd bench`: how fast paramd moves dense parameters,
 * next to what the machine allows, measured in the same run.
 *
 * What it measures.  For every cluster shape (S servers x W workers) it
 * starts a local cluster (pd_local_start, as `paramd local` does) whose
 * workers are this same program run as `paramd bench --worker DIR ...`.
 * Every worker opens one dense table per value size (rule=add
 * consistency=async) and, all at once after a barrier, times three loops:
 *
 *   push      push the whole table (a buffer of ones), advance the clock
 *   pull      pull the whole table
 *   pushpull  push it, then pull it (one training step without compute)
 *
 * each until at least --seconds have passed (or --max-reps), after one
 * untimed warm-up round.  Then, on a 4 KiB table, one request at a time,
 * the latency of every pull and of every push (p50, p99).
 *
 * Small requests (op "small"), once per transport, on a cluster of its own
 * (1 server, 2 workers): one worker at a time issues windows of SMALL_WIN
 * async 4 KiB pushes (one per block of a 256 KiB table), waits for all of
 * them, advances its clock, and counts requests per second.  Worker 0
 * connects with the library's default coalescing (coalesce_bytes=16384:
 * a window goes in a few BATCH frames), worker 1 with coalesce_bytes=0
 * (one frame each).  They take SMALL_TURNS turns each, in alternation
 * with barriers between, so that "on" and "off" are measured at
 * interleaved moments of the same run and their ratio is fair on a noisy
 * machine.  The pushes add ones; the final value must equal the windows
 * of both workers (verified=1).  A worker writes
 * its counts and times to DIR/w<rank>.txt and its latency samples to
 * DIR/lat.<op>.<rank> (and its raw ping-pong samples, below, to
 * DIR/raw.<op>.<rank>); the driver reads them once the cluster has exited.
 *
 * How figures are counted.  Throughput is payload bytes (the values, not
 * headers) moved by all workers together, divided by the wall time from
 * the first worker's start to the last worker's end: pushpull counts 2 x
 * size per round.  Every process runs on this host, so CLOCK_MONOTONIC is
 * one clock for all of them.  Latency percentiles are over the samples of
 * every worker (with W > 1 they measure the requests of W workers at once).
 *
 * The numbers are real: pushes add ones, and after the three loops worker
 * 0 pulls the table and every element must equal the number of pushes all
 * workers made (reported as verified=1; a mismatch fails the run).
 *
 * Ceilings, measured in the same run, each against the figures it bounds:
 *   - per value size, first: raw TCP stream throughput between two
 *     processes over loopback (one writes, cycling over a buffer of the
 *     value's size in calls of up to 1 MiB; the other reads into one
 *     cache-resident buffer, the cheapest receiver there is), and memcpy
 *     of that size;
 *   - in each worker, in alternation with its latency loop (blocks of
 *     LAT_BLOCK requests each): raw TCP ping-pong of the exact frames of a
 *     4 KiB pull (56-byte request, 4136-byte answer) and of a 4 KiB push
 *     (4144-byte request, 40-byte answer) with a peer process the worker
 *     forked at its start.  Interleaved because on a virtual machine a
 *     round trip differs ten-fold between an idle moment (a halted vCPU is
 *     woken through the hypervisor) and a busy one: a latency is compared
 *     with raw round trips of the same moments, from the same thread.
 * Every figure is printed with its ratio to its ceiling.
 *
 * Output: one line per configuration (key=value, or a JSON object per
 * line with --json) on stdout as each cluster finishes, then a readable
 * table.  Progress and the children's own messages go to stderr: the
 * children's stdout is sent to our stderr so that stdout stays parseable.
 *
 * Transports: every cluster shape runs once per transport asked for
 * (--transport tcp,shm), its workers forced onto it (transport=tcp|shm).
 * Shared-memory figures get two more ceilings per size: memcpy into a
 * shared (memfd) mapping, and the raw shared-memory transport streaming
 * between two processes; the table also gives each one's ratio to TCP's
 * figure of the same configuration.  Latency is always set against the
 * raw TCP ping-pong (the ceiling).
 *
 * What it deliberately does not do: assert any time (a benchmark is a
 * program, not a test).  Memory is checked up front: each worker
 * holds two buffers of the largest size, the servers one copy of every
 * table, and the run refuses to start if that exceeds half of RAM.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/util.h"
#include "cli/local.h"
#include "common/common.h"
#include "net/conn.h"
#include "paramd.h"
#include "wire/wire.h"

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
static const char *const op_names[NOPS] = {"push", "pull", "pushpull", "latency", "small"};

/* ==== Options =========================================================== */

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
    const char *worker_dir;  /* internal: run as a worker */
} bench_opts;

static void usage(FILE *f) {
    fprintf(f,
"usage: paramd bench [--quick] [--json] [options]\n"
"\n"
"Measures dense push, pull and push+pull throughput and small-request\n"
"latency of paramd on local clusters of every shape asked for, over TCP\n"
"and shared memory, next to ceilings measured in the same run (raw TCP\n"
"stream and ping-pong between two processes over loopback, memcpy,\n"
"memcpy into shared memory, raw shared-memory stream), and prints every\n"
"figure with its ratio to its ceiling.  One line per configuration (key=value, or JSON),\n"
"then a readable table.  Tables are rule=add consistency=async; pushes\n"
"add ones and the final value is checked against the number of pushes.\n"
"Small requests (op small): requests/s of one worker issuing windows of 64\n"
"async 4 KiB pushes to 1 server, with coalescing into BATCH frames on\n"
"(coalesce_bytes=16384, the default) and off, and their ratio.\n"
"\n"
"  --quick             a sub-minute run: sizes 4K,1M,16M,64M, servers 1,2,\n"
"                      workers 1,2, --seconds 0.15 (other options given\n"
"                      override these)\n"
"  --json              JSON objects, one per line, instead of key=value\n"
"                      lines, and no table\n"
"  --sizes LIST        value sizes in bytes, K/M/G suffixes (binary), each\n"
"                      a multiple of 4 up to 1G\n"
"                      [4K,64K,1M,16M,64M,256M]\n"
"  --servers LIST      servers per cluster, each 1..64 [1,2,4]\n"
"  --workers LIST      workers per cluster, each 1..64 [1,2,4]\n"
"  --seconds X         time each measurement for at least X seconds, after\n"
"                      one untimed warm-up round [0.5]\n"
"  --max-reps N        ...or stop after N rounds (and keep at most N\n"
"                      latency samples per worker) [100000]\n"
"  --ops LIST          any of push,pull,pushpull,latency,small [all]\n"
"  --transport LIST    tcp and/or shm [tcp,shm]: every cluster shape runs\n"
"                      once per transport, the workers forced onto it\n"
"  --chunk-bytes N     the client's chunk size (paramd_connect's\n"
"                      chunk_bytes=), 4096..256M [library default, 1M]\n"
"  --shared-buffers yes|no  the workers' buffers come from paramd_alloc, so\n"
"                      over shared memory the servers read and write them\n"
"                      in place [yes]; no: plain memory, every float\n"
"                      through the rings\n"
"  --help              this text\n"
"\n"
"Every cluster runs on 127.0.0.1 and is torn down before the next starts.\n"
"Internal: `paramd bench --worker DIR ...` is how the workers are run.\n");
}

/* "4K" -> 4096.  0 or -1. */
static int parse_size(const char *s, uint64_t *out) {
    char num[32];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof num) return -1;
    memcpy(num, s, n + 1);
    uint64_t mult = 1;
    char last = num[n - 1];
    if (last == 'K' || last == 'k') mult = 1ull << 10;
    else if (last == 'M' || last == 'm') mult = 1ull << 20;
    else if (last == 'G' || last == 'g') mult = 1ull << 30;
    if (mult != 1) num[n - 1] = '\0';
    uint64_t v;
    if (pd_parse_u64(num, &v) || v == 0 || v > MAX_SIZE / mult) return -1;
    *out = v * mult;
    return 0;
}

/* Split a comma-separated list into at most MAX_LIST tokens (in buf). */
static int split_list(char *buf, char **tok) {
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == MAX_LIST) return -1;
        tok[n++] = t;
    }
    return n;
}

static int parse_sizes(const char *arg, bench_opts *o) {
    char buf[512], *tok[MAX_LIST];
    snprintf(buf, sizeof buf, "%s", arg);
    int n = split_list(buf, tok);
    if (n <= 0) {
        fprintf(stderr, "paramd bench: --sizes '%s': give 1..%d sizes like 4K,64K,1M\n",
                arg, MAX_LIST);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        uint64_t v;
        if (parse_size(tok[i], &v) || v % 4 != 0) {
            fprintf(stderr,
                    "paramd bench: --sizes: '%s' is not a size in bytes (a multiple "
                    "of 4 up to 1G, like 4096, 4K, 64K, 1M, 256M)\n",
                    tok[i]);
            return -1;
        }
        o->sizes[i] = v;
    }
    o->nsizes = n;
    return 0;
}

static int parse_ints(const char *opt, const char *arg, int *out, int *nout,
                      int max) {
    char buf[512], *tok[MAX_LIST];
    snprintf(buf, sizeof buf, "%s", arg);
    int n = split_list(buf, tok);
    if (n <= 0) {
        fprintf(stderr, "paramd bench: %s '%s': give 1..%d numbers like 1,2,4\n",
                opt, arg, MAX_LIST);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int64_t v;
        if (pd_parse_i64(tok[i], &v) || v < 1 || v > max) {
            fprintf(stderr, "paramd bench: %s: '%s' is not a number in 1..%d\n",
                    opt, tok[i], max);
            return -1;
        }
        out[i] = (int)v;
    }
    *nout = n;
    return 0;
}

static int parse_ops(const char *arg, bench_opts *o) {
    char buf[512], *tok[MAX_LIST];
    snprintf(buf, sizeof buf, "%s", arg);
    int n = split_list(buf, tok);
    if (n <= 0) {
        fprintf(stderr, "paramd bench: --ops '%s': give push,pull,pushpull,latency,small\n",
                arg);
        return -1;
    }
    memset(o->ops, 0, sizeof o->ops);
    for (int i = 0; i < n; i++) {
        int k;
        for (k = 0; k < NOPS && strcmp(tok[i], op_names[k]); k++) {}
        if (k == NOPS) {
            fprintf(stderr,
                    "paramd bench: --ops: unknown '%s' (push, pull, pushpull, latency, small)\n",
                    tok[i]);
            return -1;
        }
        o->ops[k] = 1;
    }
    return 0;
}

static int parse_transports(const char *arg, bench_opts *o) {
    char buf[512], *tok[MAX_LIST];
    snprintf(buf, sizeof buf, "%s", arg);
    int n = split_list(buf, tok);
    o->tcp = o->shm = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(tok[i], "tcp")) o->tcp = 1;
        else if (!strcmp(tok[i], "shm")) o->shm = 1;
        else {
            fprintf(stderr, "paramd bench: --transport: unknown '%s' (tcp, shm)\n", tok[i]);
            return -1;
        }
    }
    if (n <= 0) {
        fprintf(stderr, "paramd bench: --transport '%s': give tcp and/or shm\n", arg);
        return -1;
    }
    return 0;
}

static void set_defaults(bench_opts *o, int quick) {
    static const uint64_t full_sizes[] = {4u << 10, 64u << 10, 1u << 20, 16u << 20,
                                          64u << 20, 256u << 20};
    static const uint64_t quick_sizes[] = {4u << 10, 1u << 20, 16u << 20, 64u << 20};
    const uint64_t *sz = quick ? quick_sizes : full_sizes;
    o->nsizes = quick ? 4 : 6;
    memcpy(o->sizes, sz, sizeof *sz * (size_t)o->nsizes);
    o->nservers = o->nworkers = quick ? 2 : 3;
    for (int i = 0; i < 3; i++) o->servers[i] = o->workers[i] = 1 << i;
    o->seconds = quick ? 0.15 : 0.5;
}

/* 0, or 2 (bad usage, message printed), or 1 (--help printed). */
static int parse_args(int argc, char **argv, bench_opts *o) {
    enum { O_QUICK = 256, O_JSON, O_SIZES, O_SERVERS, O_WORKERS, O_SECONDS,
           O_MAXREPS, O_OPS, O_TRANSPORT, O_CHUNK, O_SHARED, O_WORKER };
    static const struct option opts[] = {
        {"quick", 0, 0, O_QUICK},       {"json", 0, 0, O_JSON},
        {"sizes", 1, 0, O_SIZES},       {"servers", 1, 0, O_SERVERS},
        {"workers", 1, 0, O_WORKERS},   {"seconds", 1, 0, O_SECONDS},
        {"max-reps", 1, 0, O_MAXREPS},  {"ops", 1, 0, O_OPS},
        {"transport", 1, 0, O_TRANSPORT}, {"chunk-bytes", 1, 0, O_CHUNK},
        {"shared-buffers", 1, 0, O_SHARED},
        {"worker", 1, 0, O_WORKER},     {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    /* --quick sets defaults that later options override: look for it first. */
    int quick = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--quick")) quick = 1;
    set_defaults(o, quick);
    o->quick = quick;
    o->max_reps = 100000;
    for (int k = 0; k < NOPS; k++) o->ops[k] = 1;
    o->tcp = o->shm = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_QUICK: break;
        case O_JSON: o->json = 1; break;
        case O_SIZES: if (parse_sizes(optarg, o)) return 2; break;
        case O_SERVERS:
            if (parse_ints("--servers", optarg, o->servers, &o->nservers, 64)) return 2;
            break;
        case O_WORKERS:
            if (parse_ints("--workers", optarg, o->workers, &o->nworkers, 64)) return 2;
            break;
        case O_SECONDS:
            if (pd_parse_double(optarg, &o->seconds) || !(o->seconds > 0) ||
                o->seconds > 3600) {
                fprintf(stderr, "paramd bench: --seconds '%s' is not a number in (0, 3600]\n",
                        optarg);
                return 2;
            }
            break;
        case O_MAXREPS:
            if (pd_parse_i64(optarg, &o->max_reps) || o->max_reps < 1 ||
                o->max_reps > 100000000) {
                fprintf(stderr, "paramd bench: --max-reps '%s' is not a number in 1..1e8\n",
                        optarg);
                return 2;
            }
            break;
        case O_OPS: if (parse_ops(optarg, o)) return 2; break;
        case O_TRANSPORT: if (parse_transports(optarg, o)) return 2; break;
        case O_CHUNK:
            if (pd_parse_i64(optarg, &o->chunk_bytes) || o->chunk_bytes < 4096 ||
                o->chunk_bytes > (256 << 20)) {
                uint64_t v;
                if (parse_size(optarg, &v) == 0 && v >= 4096 && v <= (256u << 20)) {
                    o->chunk_bytes = (int64_t)v;
                    break;
                }
                fprintf(stderr, "paramd bench: --chunk-bytes '%s' is not a size in 4096..256M\n",
                        optarg);
                return 2;
            }
            break;
        case O_SHARED:
            if (strcmp(optarg, "yes") && strcmp(optarg, "no")) {
                fprintf(stderr, "paramd bench: --shared-buffers '%s' is not yes or no\n",
                        optarg);
                return 2;
            }
            o->private_buffers = !strcmp(optarg, "no");
            break;
        case O_WORKER: o->worker_dir = optarg; break;
        case 'h': usage(stdout); return 1;
        default:
            fprintf(stderr, "\n");
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "paramd bench: unexpected argument '%s' (see paramd bench --help)\n",
                argv[optind]);
        return 2;
    }
    return 0;
}

/* ==== Output: key=value or JSON lines ===================================== */

typedef struct rec {
    FILE *out;
    int json, n;
} rec;

static void rec_begin(rec *r, FILE *out, int json, const char *bench) {
    r->out = out;
    r->json = json;
    r->n = 0;
    if (json) fputc('{', out);
    if (json) fprintf(out, "\"bench\":\"%s\"", bench);
    else fprintf(out, "bench=%s", bench);
    r->n = 1;
}

static void rec_key(rec *r, const char *k) {
    if (r->json) fprintf(r->out, ",\"%s\":", k);
    else fprintf(r->out, " %s=", k);
}

/* Strings here never hold quotes or backslashes (we write them all). */
static void rec_str(rec *r, const char *k, const char *v) {
    rec_key(r, k);
    if (r->json || strchr(v, ' ')) fprintf(r->out, "\"%s\"", v);
    else fputs(v, r->out);
}

static void rec_int(rec *r, const char *k, long long v) {
    rec_key(r, k);
    fprintf(r->out, "%lld", v);
}

/* JSON has no NaN or infinity: those print as 0. */
static void rec_num(rec *r, const char *k, double v) {
    rec_key(r, k);
    fprintf(r->out, "%.6g", isfinite(v) ? v : 0.0);
}

static void rec_end(rec *r) {
    if (r->json) fputc('}', r->out);
    fputc('\n', r->out);
    fflush(r->out);
}

/* ==== Small helpers ====================================================== */

static void fmt_size(uint64_t b, char *out, size_t n) {
    if (b >= (1u << 20) && b % (1u << 20) == 0)
        snprintf(out, n, "%llu MiB", (unsigned long long)(b >> 20));
    else if (b >= 1024 && b % 1024 == 0)
        snprintf(out, n, "%llu KiB", (unsigned long long)(b >> 10));
    else
        snprintf(out, n, "%llu B", (unsigned long long)b);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of sorted v[0..n) by the nearest-rank rule. */
static double quantile(const double *v, size_t n, double q) {
    if (n == 0) return 0;
    size_t k = (size_t)ceil(q * (double)n);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}

/* Read or write exactly n bytes; 0 or -1. */
static int read_full(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r > 0) got += (size_t)r;
        else if (r < 0 && errno == EINTR) continue;
        else return -1;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
    size_t put = 0;
    while (put < n) {
        ssize_t w = send(fd, (const char *)buf + put, n - put, MSG_NOSIGNAL);
        if (w > 0) put += (size_t)w;
        else if (w < 0 && errno == EINTR) continue;
        else return -1;
    }
    return 0;
}

/* ==== Ceilings ============================================================
 * Raw TCP between this process and a forked peer over loopback, and
 * memcpy.  The driver forks its peers before any cluster starts, a worker
 * before it connects: no thread of ours exists yet, so no lock of ours
 * can be held in the child (OpenBLAS's idle pool threads may exist; glibc
 * keeps malloc usable in a forked child). */

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

typedef void (*peer_fn)(int fd, const void *arg);

/* Fork a peer that connects to us over loopback and runs fn(fd, arg).
 * *fd is our end.  Returns the peer's pid, or -1 after printing why. */
static pid_t peer_start(int *fd, peer_fn fn, const void *arg) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {0};
    socklen_t al = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 1) ||
        getsockname(lfd, (struct sockaddr *)&a, &al)) {
        fprintf(stderr, "paramd bench: loopback socket: %s\n", strerror(errno));
        if (lfd >= 0) close(lfd);
        return -1;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "paramd bench: fork: %s\n", strerror(errno));
        close(lfd);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        close(lfd);
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a)) _exit(1);
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fn(s, arg);
        _exit(0);
    }
    int s;
    do s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    while (s < 0 && errno == EINTR);
    close(lfd);
    if (s < 0) {
        fprintf(stderr, "paramd bench: accept: %s\n", strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *fd = s;
    return pid;
}

static void peer_finish(int fd, pid_t pid) {
    close(fd);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
}

/* The raw stream's buffer (bytes) and bytes per write or read call. */
static size_t stream_io(size_t size) { return size < CEIL_IO ? size : CEIL_IO; }

/* Stream writer: writes of stream_io(size) bytes cycling over a buffer of
 * `size` bytes, until the reader closes. */
static void stream_writer(int fd, const void *arg) {
    size_t size = *(const size_t *)arg, io = stream_io(size);
    char *buf = malloc(size);
    if (!buf) return;
    memset(buf, 1, size);
    for (size_t off = 0;; off = (off + io) % size)
        if (write_full(fd, buf + off, io)) break;
    free(buf);
}

/* The exact frames of a 4 KiB pull (k = 0) and of a 4 KiB push (k = 1):
 * what goes over TCP for one paramd request, header included. */
static size_t pp_request(int k) {
    return k == 0 ? PD_HDR_SIZE + PD_PULL_PAYLOAD : PD_HDR_SIZE + PD_RANGE_PREFIX + LAT_SIZE;
}
static size_t pp_reply(int k) { return k == 0 ? PD_HDR_SIZE + LAT_SIZE : PD_HDR_SIZE; }

/* Raw ping-pong peer: answers pull-shaped and push-shaped requests with
 * replies of the same sizes as paramd's.  The first byte of a request says
 * which (0 pull, 1 push); the first pp_request(0) bytes are read at once,
 * the rest of a push after. */
static void pingpong_peer(int fd, const void *arg) {
    (void)arg;
    char *req = calloc(1, pp_request(1)), *rep = calloc(1, pp_reply(0));
    while (req && rep && read_full(fd, req, pp_request(0)) == 0) {
        int k = req[0] == 1;
        if (k && read_full(fd, req + pp_request(0), pp_request(1) - pp_request(0))) break;
        if (write_full(fd, rep, pp_reply(k))) break;
    }
    free(req);
    free(rep);
}

/* One raw round trip of kind k over fd; 0 or -1. */
static int pingpong_once(int fd, int k, char *req, char *rep) {
    req[0] = (char)k;
    if (write_full(fd, req, pp_request(k))) return -1;
    return read_full(fd, rep, pp_reply(k));
}

/* Raw stream of value size `size` (index i).  The writer cycles over a
 * buffer of `size` bytes (as cold, for large sizes, as a worker's values);
 * the reader reads calls of stream_io(size) bytes into one buffer of that
 * many bytes, which stays in cache: the cheapest receiver there is, so
 * that the figure is a ceiling. */
static int ceil_tcp_stream(ceilings *c, int i, size_t size, double seconds) {
    int fd;
    size_t io = stream_io(size);
    char *buf = malloc(io);
    if (!buf) return -1;
    memset(buf, 0, io);
    pid_t pid = peer_start(&fd, stream_writer, &size);
    if (pid < 0) {
        free(buf);
        return -1;
    }
    /* Warm-up: at least a whole buffer, so that page faults on both sides
     * are behind us. */
    int rc = 0;
    for (size_t w = 0; w < size || w < (4u << 20); w += io)
        if ((rc = read_full(fd, buf, io))) break;
    uint64_t bytes = 0;
    double t0 = pd_now(), t = t0;
    while (rc == 0 && t - t0 < seconds) {
        ssize_t r = read(fd, buf, io);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            rc = -1;
            break;
        }
        bytes += (uint64_t)r;
        t = pd_now();
    }
    peer_finish(fd, pid);
    free(buf);
    if (rc) {
        fprintf(stderr, "paramd bench: raw TCP stream: the writer stopped early\n");
        return -1;
    }
    c->tcp_bytes[i] = bytes;
    c->tcp_secs[i] = t - t0;
    c->tcp_bps[i] = (double)bytes / (t - t0);
    return 0;
}

/* memcpy of `size` bytes between two buffers of that size, repeated. */
static int ceil_memcpy(ceilings *c, int i, size_t size, double seconds) {
    char *src = malloc(size), *dst = malloc(size);
    if (!src || !dst) {
        free(src), free(dst);
        return -1;
    }
    memset(src, 1, size);
    memset(dst, 2, size);
    memcpy(dst, src, size);
    volatile char sink = 0;
    uint64_t reps = 0;
    double t0 = pd_now(), t;
    do {
        memcpy(dst, src, size);
        sink = (char)(sink + dst[reps % size]);
        reps++;
        t = pd_now();
    } while (t - t0 < seconds);
    free(src), free(dst);
    c->memcpy_reps[i] = reps;
    c->memcpy_secs[i] = t - t0;
    c->memcpy_bps[i] = (double)reps * (double)size / (t - t0);
    return 0;
}

/* memcpy of `size` bytes from private memory into a shared mapping (a
 * memfd, MAP_SHARED, as the transport's rings), repeated. */
static int ceil_shm_copy(ceilings *c, int i, size_t size, double seconds) {
    int fd = memfd_create("paramd-bench", MFD_CLOEXEC);
    char *src = malloc(size);
    char *dst = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, (off_t)size) == 0)
        dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd >= 0) close(fd);
    if (!src || dst == MAP_FAILED) {
        free(src);
        if (dst != MAP_FAILED) munmap(dst, size);
        fprintf(stderr, "paramd bench: cannot map %zu shared bytes\n", size);
        return -1;
    }
    memset(src, 1, size);
    memcpy(dst, src, size);
    uint64_t reps = 0;
    double t0 = pd_now(), t;
    do {
        memcpy(dst, src, size);
        reps++;
        t = pd_now();
    } while (t - t0 < seconds);
    free(src);
    munmap(dst, size);
    c->shmcopy_bps[i] = (double)reps * (double)size / (t - t0);
    return 0;
}

/* Raw shared-memory stream: a forked writer cycling over a buffer of
 * `size` bytes in writes of stream_io(size), into our reads of that many
 * bytes (one cache-resident buffer), through the transport itself. */
static int ceil_shm_stream(ceilings *c, int i, size_t size, double seconds) {
    pd_err e = {0};
    char name[PD_MAX_ADDR + 1];
    int lfd;
    if (pd_shm_listen(&lfd, name, sizeof name, &e)) {
        fprintf(stderr, "paramd bench: %s\n", e.msg);
        return -1;
    }
    fflush(NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        close(lfd);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        close(lfd);
        pd_conn *w = pd_shm_connect(name, PD_SHM_RING_DEFAULT, 10000, &e);
        size_t io = stream_io(size);
        char *buf = malloc(size);
        if (!w || !buf) _exit(1);
        memset(buf, 1, size);
        for (size_t off = 0;; off = (off + io) % size) {
            struct iovec v = {buf + off, io};
            if (pd_conn_writev(w, &v, 1, &e)) break;
        }
        _exit(0);
    }
    /* A writer that fails to connect exits: never wait forever for it. */
    struct pollfd pl = {lfd, POLLIN, 0};
    int fd = poll(&pl, 1, 10000) == 1 ? pd_shm_accept(lfd) : -1;
    close(lfd);
    pd_conn *r = fd >= 0 ? pd_shm_server_handshake(fd, 10000, &e) : NULL;
    if (!r && !e.msg[0]) snprintf(e.msg, sizeof e.msg, "the writer never connected");
    size_t io = stream_io(size);
    char *buf = malloc(io);
    int rc = r && buf ? 0 : -1;
    for (size_t w = 0; rc == 0 && (w < size || w < (4u << 20)); w += io)
        rc = pd_conn_read(r, buf, io, 0, &e);
    uint64_t bytes = 0;
    double t0 = pd_now(), t = t0;
    while (rc == 0 && t - t0 < seconds) {
        rc = pd_conn_read(r, buf, io, 0, &e);
        bytes += io;
        t = pd_now();
    }
    pd_conn_destroy(r); /* the writer's next write fails: it exits */
    free(buf);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (rc) {
        fprintf(stderr, "paramd bench: raw shared-memory stream failed: %s\n", e.msg);
        return -1;
    }
    c->shm_bytes[i] = bytes;
    c->shm_secs[i] = t - t0;
    c->shm_bps[i] = (double)bytes / (t - t0);
    return 0;
}

/* The throughput ceilings, once per run. */
static int measure_ceilings(ceilings *c, const bench_opts *o) {
    memset(c, 0, sizeof *c);
    fprintf(stderr, "paramd bench: measuring ceilings (raw TCP over loopback, memcpy%s)\n",
            o->shm ? ", shared-memory copy and stream" : "");
    for (int i = 0; i < o->nsizes; i++) {
        if (ceil_memcpy(c, i, (size_t)o->sizes[i], o->seconds)) return -1;
        if (ceil_tcp_stream(c, i, (size_t)o->sizes[i], o->seconds)) return -1;
        if (o->shm && ceil_shm_copy(c, i, (size_t)o->sizes[i], o->seconds)) return -1;
        if (o->shm && ceil_shm_stream(c, i, (size_t)o->sizes[i], o->seconds)) return -1;
    }
    return 0;
}

static void print_ceilings(const ceilings *c, const bench_opts *o, FILE *out) {
    rec r;
    for (int i = 0; i < o->nsizes; i++) {
        rec_begin(&r, out, o->json, "ceiling");
        rec_str(&r, "what", "tcp_stream");
        rec_int(&r, "size", (long long)o->sizes[i]);
        rec_int(&r, "io_bytes", (long long)stream_io((size_t)o->sizes[i]));
        rec_int(&r, "bytes", (long long)c->tcp_bytes[i]);
        rec_num(&r, "seconds", c->tcp_secs[i]);
        rec_num(&r, "bytes_per_s", c->tcp_bps[i]);
        rec_end(&r);
        rec_begin(&r, out, o->json, "ceiling");
        rec_str(&r, "what", "memcpy");
        rec_int(&r, "size", (long long)o->sizes[i]);
        rec_int(&r, "reps", (long long)c->memcpy_reps[i]);
        rec_num(&r, "seconds", c->memcpy_secs[i]);
        rec_num(&r, "bytes_per_s", c->memcpy_bps[i]);
        rec_end(&r);
        if (!o->shm) continue;
        rec_begin(&r, out, o->json, "ceiling");
        rec_str(&r, "what", "shm_copy");
        rec_int(&r, "size", (long long)o->sizes[i]);
        rec_num(&r, "bytes_per_s", c->shmcopy_bps[i]);
        rec_end(&r);
        rec_begin(&r, out, o->json, "ceiling");
        rec_str(&r, "what", "shm_stream");
        rec_int(&r, "size", (long long)o->sizes[i]);
        rec_int(&r, "io_bytes", (long long)stream_io((size_t)o->sizes[i]));
        rec_int(&r, "bytes", (long long)c->shm_bytes[i]);
        rec_num(&r, "seconds", c->shm_secs[i]);
        rec_num(&r, "bytes_per_s", c->shm_bps[i]);
        rec_end(&r);
    }
}

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

static int worker_main(const bench_opts *o) {
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
    pd_local_start(&L, S, W, 0, "127.0.0.1", wargv, NULL, 0);
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
    int prc = parse_args(argc, argv, &o);
    if (prc) return prc == 1 ? 0 : 2;
    if (o.worker_dir) return worker_main(&o);
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
    if (measure_ceilings(&cl, &o)) {
        fclose(out);
        return 1;
    }
    print_ceilings(&cl, &o, out);

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
