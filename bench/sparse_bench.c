/*
 * sparse_bench.c - how fast sparse tables push and pull, next to what the
 * memory system allows.
 *
 *   build/bench/sparse_bench [PARAMD] [--quick]
 *
 * It starts its own cluster for each server count (1 and 2): a
 * coordinator and S servers, by fork/exec of PARAMD (default: the paramd
 * next to this program's directory, build/paramd) with --ready-fd, as
 * tests/lib.sh does, and is itself the one worker.  For each dim (16, 64)
 * and batch size (1,000 and 100,000 keys) it opens an Adagrad table
 * (init=normal:0.01), touches every key of a key space of 10 x batch keys
 * (at most 1M) once so that the timed part updates existing rows, then
 * times blocking paramd_sparse_push and paramd_sparse_pull of batches of
 * random keys (best of 3 trials of at least 0.4 s each; --quick: 0.1 s)
 * and prints one line:
 *
 *   push, pull   keys per second through the whole path (client grouping,
 *                loopback TCP, server lookup and update), one worker
 *   apply        the servers' update rate: bytes an update touches per key
 *                (20*dim for Adagrad: w read and written, g read, the
 *                accumulator read and written) over the CPU time the
 *                servers spent in pushes with the table locked
 *                (push_cpu_ns of `paramd stats`, summed over servers):
 *                the rate of one server thread
 *   memcpy       the ceiling: memcpy over a working set as large as the
 *                table's rows, measured in this run, counting bytes read
 *                plus bytes written like apply does
 *
 * The machine's cores are shared by the worker and the servers, so the
 * figures are for a whole cluster on one host.  A benchmark is a program,
 * not a test: nothing here asserts a time.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/common.h"
#include "common/hash.h"
#include "paramd.h"

#define MAX_SERVERS 2
#define TRIALS 3

static double min_seconds = 0.4; /* per trial */

/* ==== A cluster of child processes ====================================== */

typedef struct cluster {
    pid_t pid[1 + MAX_SERVERS];
    int n;
    char coord[128];
} cluster;

static pid_t spawn(char *const argv[], int ready_w) {
    pid_t p = fork();
    if (p < 0) return -1;
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (ready_w >= 0 && ready_w != 3) {
            dup2(ready_w, 3);
            close(ready_w);
        }
        FILE *null = fopen("/dev/null", "w");
        if (null) dup2(fileno(null), 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return p;
}

static void cluster_stop(cluster *cl) {
    for (int i = 0; i < cl->n; i++) kill(cl->pid[i], SIGTERM);
    for (int i = 0; i < cl->n; i++) waitpid(cl->pid[i], NULL, 0);
    cl->n = 0;
}

static int cluster_start(cluster *cl, const char *paramd, int S) {
    int fds[2];
    char s[16];
    memset(cl, 0, sizeof *cl);
    if (pipe(fds) != 0) return -1;
    snprintf(s, sizeof s, "%d", S);
    char *cargv[] = {(char *)paramd, "coordinator", "--servers", s, "--workers", "1",
                     "--ready-fd", "3", NULL};
    cl->pid[cl->n++] = spawn(cargv, fds[1]);
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    if (!f || !fgets(cl->coord, sizeof cl->coord, f)) {
        if (f) fclose(f);
        cluster_stop(cl);
        return -1;
    }
    fclose(f);
    cl->coord[strcspn(cl->coord, "\n")] = '\0';
    for (int k = 0; k < S; k++) {
        char *sargv[] = {(char *)paramd, "server", "--coordinator", cl->coord, NULL};
        cl->pid[cl->n++] = spawn(sargv, -1);
    }
    return 0;
}

/* ==== Ceiling =========================================================== */

/* Best bytes/s of memcpy over a working set of `bytes` (read + written). */
static double memcpy_bw(size_t bytes) {
    size_t half = bytes / 2;
    char *a = malloc(half), *b = malloc(half);
    if (!a || !b) {
        fprintf(stderr, "sparse_bench: out of memory\n");
        exit(1);
    }
    memset(a, 1, half);
    memset(b, 2, half);
    double best = 0;
    for (int t = 0; t < 3; t++) {
        long reps = 0;
        double t0 = pd_now(), el;
        do {
            if (reps & 1)
                memcpy(a, b, half);
            else
                memcpy(b, a, half);
            reps++;
        } while ((el = pd_now() - t0) < 0.2);
        double bw = 2.0 * (double)half * (double)reps / el;
        if (bw > best) best = bw;
    }
    free(a);
    free(b);
    return best;
}

/* ==== One configuration ================================================= */

static paramd_client *cli;

#define MUST(call)                                                             \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_) {                                                             \
            fprintf(stderr, "sparse_bench: %s: %s\n", #call,                   \
                    paramd_last_error(cli));                                   \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static uint64_t total_stat(paramd_table *t, const char *name) {
    uint64_t v = 0;
    MUST(paramd_table_stat(t, -1, name, &v));
    return v;
}

static void run(int S, uint32_t dim, uint64_t batch) {
    uint64_t space = batch * 10 > 1000000 ? 1000000 : batch * 10;
    char name[64];
    snprintf(name, sizeof name, "b%u_%llu", dim, (unsigned long long)batch);
    paramd_table *t;
    MUST(paramd_sparse_open(cli, name, dim, "rule=adagrad lr=0.01 init=normal:0.01 seed=1", &t));
    uint64_t *keys = malloc(batch * sizeof *keys);
    float *rows = malloc(batch * dim * sizeof(float));
    for (uint64_t i = 0; i < batch * dim; i++) rows[i] = 0.001f * (float)(i % 13);
    /* touch every key once */
    for (uint64_t base = 0; base < space; base += batch) {
        uint64_t n = space - base < batch ? space - base : batch;
        for (uint64_t i = 0; i < n; i++) keys[i] = pd_mix64(base + i); /* any uint64 */
        MUST(paramd_sparse_push(t, keys, n, rows));
    }
    uint64_t rng = 12345;
    double best_push = 0, best_pull = 0, best_apply = 0;
    for (int trial = 0; trial < TRIALS; trial++) {
        uint64_t pushed = 0, pulled = 0, ns0 = total_stat(t, "push_cpu_ns");
        double t0 = pd_now(), el;
        do {
            for (uint64_t i = 0; i < batch; i++) {
                rng += PD_GOLDEN64;
                keys[i] = pd_mix64(pd_mix64(rng) % space);
            }
            MUST(paramd_sparse_push(t, keys, batch, rows));
            pushed += batch;
        } while ((el = pd_now() - t0) < min_seconds || pushed < 3 * batch);
        uint64_t ns = total_stat(t, "push_cpu_ns") - ns0;
        /* Adagrad: 1 state plane; per float w r+w (8), g r (4), acc r+w (8) */
        double apply = (double)pushed * dim * 20.0 / ((double)ns * 1e-9);
        if (pushed / el > best_push) best_push = pushed / el;
        if (apply > best_apply) best_apply = apply;
        t0 = pd_now();
        do {
            for (uint64_t i = 0; i < batch; i++) {
                rng += PD_GOLDEN64;
                keys[i] = pd_mix64(pd_mix64(rng) % space);
            }
            MUST(paramd_sparse_pull(t, keys, batch, rows));
            pulled += batch;
        } while ((el = pd_now() - t0) < min_seconds || pulled < 3 * batch);
        if (pulled / el > best_pull) best_pull = pulled / el;
    }
    size_t rowbytes = (size_t)space * dim * 2 * sizeof(float);
    double mc = memcpy_bw(rowbytes < (64u << 20) ? 64u << 20 : rowbytes);
    printf("S=%d dim=%-3u batch=%-6llu push %7.2f Mkeys/s  pull %7.2f Mkeys/s  "
           "apply %6.2f GB/s per server  memcpy %6.2f GB/s  (apply/memcpy %.2f; %llu rows, %.0f MB held)\n",
           S, dim, (unsigned long long)batch, best_push / 1e6, best_pull / 1e6,
           best_apply / 1e9, mc / 1e9, best_apply / mc, (unsigned long long)total_stat(t, "rows"),
           (double)total_stat(t, "bytes") / 1e6);
    fflush(stdout);
    free(keys);
    free(rows);
}

int main(int argc, char **argv) {
    char paramd[4096] = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            min_seconds = 0.1;
        else
            snprintf(paramd, sizeof paramd, "%s", argv[i]);
    }
    if (!paramd[0]) {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) return 1;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) *slash = '\0';
        snprintf(paramd, sizeof paramd, "%s/../paramd", self);
    }
    if (access(paramd, X_OK) != 0) {
        fprintf(stderr, "sparse_bench: no paramd at %s (give its path)\n", paramd);
        return 1;
    }
    printf("sparse_bench: adagrad, init normal:0.01, one worker, %s\n", paramd);
    for (int S = 1; S <= MAX_SERVERS; S++) {
        cluster cl;
        if (cluster_start(&cl, paramd, S) != 0) {
            fprintf(stderr, "sparse_bench: cannot start a cluster\n");
            return 1;
        }
        char opts[256];
        snprintf(opts, sizeof opts, "coordinator=%s rank=0", cl.coord);
        if (paramd_connect(&cli, opts) != 0) {
            fprintf(stderr, "sparse_bench: %s\n", paramd_last_error(NULL));
            cluster_stop(&cl);
            return 1;
        }
        uint32_t dims[2] = {16, 64};
        uint64_t batches[2] = {1000, 100000};
        for (int d = 0; d < 2; d++)
            for (int b = 0; b < 2; b++) run(S, dims[d], batches[b]);
        paramd_close(cli); /* the last worker leaving ends the cluster */
        for (int i = 0; i < cl.n; i++) waitpid(cl.pid[i], NULL, 0);
    }
    return 0;
}
