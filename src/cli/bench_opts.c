/*
 * bench_opts.c - the options of `paramd bench` and how it writes its
 * figures (bench.h lists the files of the command).
 *
 * Options.  --quick sets defaults (sizes, shapes, seconds) that any other
 * option given overrides, wherever it stands on the line, so it is looked
 * for first.  Lists (--sizes, --servers, --workers, --ops, --transport)
 * are comma-separated, at most MAX_LIST entries; a bad entry is named in
 * the message.  The driver passes the same options to its workers
 * (`paramd bench --worker DIR ...`), so both parse them here.
 *
 * Records.  One line per configuration: `bench=KIND key=value ...`, or
 * with --json one JSON object per line with the same keys, in the same
 * order.  Strings are ours (no quotes or backslashes to escape); JSON has
 * no NaN or infinity, so those print as 0.  Each record is flushed as it
 * ends, so a reader sees every cluster's figures as soon as it finished.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/bench.h"
#include "common/common.h"

const char *const op_names[NOPS] = {"push", "pull", "pushpull", "latency", "small"};

/* ==== Options =========================================================== */

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
"  --replicas R        every cluster keeps R copies of each shard (S x R\n"
"                      servers; docs/durability.md): what replication\n"
"                      costs [1]\n"
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
int bench_parse_args(int argc, char **argv, bench_opts *o) {
    enum { O_QUICK = 256, O_JSON, O_SIZES, O_SERVERS, O_WORKERS, O_SECONDS,
           O_MAXREPS, O_OPS, O_TRANSPORT, O_CHUNK, O_SHARED, O_WORKER, O_REPLICAS };
    static const struct option opts[] = {
        {"quick", 0, 0, O_QUICK},       {"json", 0, 0, O_JSON},
        {"sizes", 1, 0, O_SIZES},       {"servers", 1, 0, O_SERVERS},
        {"workers", 1, 0, O_WORKERS},   {"seconds", 1, 0, O_SECONDS},
        {"max-reps", 1, 0, O_MAXREPS},  {"ops", 1, 0, O_OPS},
        {"transport", 1, 0, O_TRANSPORT}, {"chunk-bytes", 1, 0, O_CHUNK},
        {"replicas", 1, 0, O_REPLICAS},
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
        case O_REPLICAS: {
            int64_t v;
            if (pd_parse_i64(optarg, &v) || v < 1 || v > 8) {
                fprintf(stderr, "paramd bench: --replicas '%s' is not 1..8\n", optarg);
                return 2;
            }
            o->replicas = (int)v;
            break;
        }
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

void rec_begin(rec *r, FILE *out, int json, const char *bench) {
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
void rec_str(rec *r, const char *k, const char *v) {
    rec_key(r, k);
    if (r->json || strchr(v, ' ')) fprintf(r->out, "\"%s\"", v);
    else fputs(v, r->out);
}

void rec_int(rec *r, const char *k, long long v) {
    rec_key(r, k);
    fprintf(r->out, "%lld", v);
}

/* JSON has no NaN or infinity: those print as 0. */
void rec_num(rec *r, const char *k, double v) {
    rec_key(r, k);
    fprintf(r->out, "%.6g", isfinite(v) ? v : 0.0);
}

void rec_end(rec *r) {
    if (r->json) fputc('}', r->out);
    fputc('\n', r->out);
    fflush(r->out);
}

/* ==== Small helpers ====================================================== */

void fmt_size(uint64_t b, char *out, size_t n) {
    if (b >= (1u << 20) && b % (1u << 20) == 0)
        snprintf(out, n, "%llu MiB", (unsigned long long)(b >> 20));
    else if (b >= 1024 && b % 1024 == 0)
        snprintf(out, n, "%llu KiB", (unsigned long long)(b >> 10));
    else
        snprintf(out, n, "%llu B", (unsigned long long)b);
}

int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double quantile(const double *v, size_t n, double q) {
    if (n == 0) return 0;
    size_t k = (size_t)ceil(q * (double)n);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}

int read_full(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r > 0) got += (size_t)r;
        else if (r < 0 && errno == EINTR) continue;
        else return -1;
    }
    return 0;
}

int write_full(int fd, const void *buf, size_t n) {
    size_t put = 0;
    while (put < n) {
        ssize_t w = send(fd, (const char *)buf + put, n - put, MSG_NOSIGNAL);
        if (w > 0) put += (size_t)w;
        else if (w < 0 && errno == EINTR) continue;
        else return -1;
    }
    return 0;
}
