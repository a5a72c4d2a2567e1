/*
 * backpressure.c - does a push stream faster than a server can apply slow
 * down, or queue?  (docs/limits.md, "Backpressure"; figures in
 * bench/README.md.)  A benchmark, never a test: it prints what it
 * measured and asserts nothing about time.
 *
 *   build/bench/backpressure [--paramd PATH] [--transport tcp|shm]
 *                            [--floats N] [--seconds S] [--workers K]
 *                            [--factor F]
 *
 * It starts a coordinator and one server (`paramd server
 * --apply-threads 1`: one core applies, so the server is the bottleneck)
 * as child processes, and K workers as threads of this process, each its
 * own paramd_client.  The table is dense, async, rule adam, N floats
 * (1M: 4 MB of values, 12 MB with adam's state).
 *
 *   1. sustainable: worker 0 alone pushes the whole table with blocking
 *      pushes for S seconds: R pushes/s, the rate the server applies.
 *   2. flood: K workers together try to push at F x R (default 10x) for S
 *      seconds, each on a schedule of F*R/K pushes/s with up to 64 async
 *      pushes in flight (then it waits for its oldest).  A server that
 *      queued would grow by the excess; one that pushes back keeps the
 *      clients' writes blocked and its memory flat.
 *
 * Per phase it prints the offered and the achieved rates, how far the
 * workers fell behind their schedule, and the server's resident memory
 * (VmRSS sampled every 20 ms: its peak; and VmHWM) beside the budget:
 * what it had after setup, the table (values and state, whose pages are
 * touched by the first pushes) and, per connection, one chunk of payload
 * (1 MiB) and the transport's buffers.  The roles' logs go to /dev/null
 * unless BACKPRESSURE_LOGS is set.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "paramd.h"

#define WINDOW 64

static const char *paramd_path = NULL;
static uint64_t nfloats = 1u << 20;
static double seconds = 3;
static int nworkers = 4;
static double factor = 10;
static char coord_addr[256];
static pid_t server_pid;

static double now_s(void) { return pd_now(); }

static long status_kb(pid_t pid, const char *key) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0) kb = atol(line + kl + 1);
    fclose(f);
    return kb;
}

static pid_t spawn(char *const argv[], int outfd) {
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (outfd >= 0) dup2(outfd, 3);
        if (!getenv("BACKPRESSURE_LOGS")) { /* the roles' logs: only if asked */
            FILE *null = fopen("/dev/null", "w");
            if (null) dup2(fileno(null), 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* ---- the sampler: the server's peak VmRSS while a phase runs ---------- */

static volatile int sampling;
static long peak_rss_kb;

static void *sampler(void *arg) {
    (void)arg;
    while (sampling) {
        long kb = status_kb(server_pid, "VmRSS:");
        if (kb > peak_rss_kb) peak_rss_kb = kb;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ---- workers ------------------------------------------------------------- */

typedef struct worker {
    int rank;
    double rate;     /* pushes/s to aim for; 0: blocking pushes, no schedule */
    paramd_client *c;
    paramd_table *t;
    float *g;
    uint64_t pushes;
    double lag_s;    /* how far behind its schedule it ended */
    int failed;
} worker;

static void worker_open(worker *w) {
    char opt[512];
    snprintf(opt, sizeof opt, "coordinator=%s rank=%d", coord_addr, w->rank);
    if (paramd_connect(&w->c, opt)) {
        fprintf(stderr, "backpressure: connect: %s\n", paramd_last_error(NULL));
        exit(1);
    }
    if (paramd_table_open(w->c, "flood", nfloats, "rule=adam consistency=async", NULL, &w->t)) {
        fprintf(stderr, "backpressure: table: %s\n", paramd_last_error(w->c));
        exit(1);
    }
    w->g = paramd_alloc(w->c, nfloats * sizeof(float));
    for (uint64_t i = 0; i < nfloats; i++) w->g[i] = 1e-3f;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    paramd_request *req[WINDOW] = {0};
    double t0 = now_s(), end = t0 + seconds;
    uint64_t i = 0;
    while (now_s() < end) {
        if (w->rate <= 0) {
            if (paramd_push(w->t, 0, nfloats, w->g)) w->failed = 1;
            paramd_clock(w->c); /* one push per clock, even async */
        } else {
            double due = t0 + (double)i / w->rate;
            double d = due - now_s();
            if (d > 0) {
                struct timespec ts = {(time_t)d, (long)((d - (time_t)d) * 1e9)};
                nanosleep(&ts, NULL);
            }
            paramd_request **r = &req[i % WINDOW];
            if (*r && paramd_wait(*r)) w->failed = 1;
            *r = NULL;
            if (paramd_push_async(w->t, 0, nfloats, w->g, r)) w->failed = 1;
            paramd_clock(w->c);
        }
        i++;
    }
    for (int k = 0; k < WINDOW; k++)
        if (req[k] && paramd_wait(req[k])) w->failed = 1;
    /* Behind schedule: the time the pushes it did not get to would have
     * taken at its rate. */
    if (w->rate > 0) {
        double due = seconds * w->rate;
        w->lag_s = (double)i < due ? (due - (double)i) / w->rate : 0;
    }
    w->pushes = i;
    return NULL;
}

/* One phase: k workers at `rate` pushes/s in all (0: blocking, alone). */
static double phase(const char *name, worker *ws, int k, double rate) {
    peak_rss_kb = 0;
    sampling = 1;
    pthread_t st, th[64];
    pthread_create(&st, NULL, sampler, NULL);
    double t0 = now_s();
    for (int i = 0; i < k; i++) {
        ws[i].rate = rate > 0 ? rate / k : 0;
        ws[i].pushes = 0, ws[i].lag_s = 0;
        pthread_create(&th[i], NULL, worker_main, &ws[i]);
    }
    uint64_t pushes = 0;
    double lag = 0;
    int failed = 0;
    for (int i = 0; i < k; i++) {
        pthread_join(th[i], NULL);
        pushes += ws[i].pushes;
        if (ws[i].lag_s > lag) lag = ws[i].lag_s;
        failed |= ws[i].failed;
    }
    double wall = now_s() - t0;
    sampling = 0;
    pthread_join(st, NULL);
    double achieved = pushes / wall;
    double mb = (double)nfloats * 4 / 1e6;
    long hwm = status_kb(server_pid, "VmHWM:");
    printf("%-11s workers=%d offered=%s%.0f/s achieved=%.0f/s (%.0f MB/s) "
           "behind_schedule=%.1fs server_rss_peak=%.1fMB server_hwm=%.1fMB%s\n",
           name, k, rate > 0 ? "" : "as-fast-as-blocking ", rate > 0 ? rate : achieved,
           achieved, achieved * mb, lag, peak_rss_kb / 1024.0, hwm / 1024.0,
           failed ? " FAILED-PUSHES" : "");
    fflush(stdout);
    return achieved;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"paramd", 1, 0, 'p'}, {"transport", 1, 0, 't'}, {"floats", 1, 0, 'n'},
        {"seconds", 1, 0, 's'}, {"workers", 1, 0, 'w'}, {"factor", 1, 0, 'f'},
        {0, 0, 0, 0}};
    const char *transport = "tcp";
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p': paramd_path = optarg; break;
        case 't': transport = optarg; break;
        case 'n': nfloats = strtoull(optarg, NULL, 10); break;
        case 's': seconds = atof(optarg); break;
        case 'w': nworkers = atoi(optarg); break;
        case 'f': factor = atof(optarg); break;
        default:
            fprintf(stderr, "usage: backpressure [--paramd PATH] [--transport tcp|shm] "
                    "[--floats N] [--seconds S] [--workers K] [--factor F]\n");
            return 2;
        }
    }
    if (nworkers < 1 || nworkers > 64 || nfloats < 1 || seconds <= 0 || factor <= 0) {
        fprintf(stderr, "backpressure: bad option value\n");
        return 2;
    }
    static char self[4096], pbuf[4096];
    if (!paramd_path) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) return 1;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        *slash = '\0';
        snprintf(pbuf, sizeof pbuf, "%s/../paramd", self);
        paramd_path = pbuf;
    }
    setenv("PARAMD_TRANSPORT", transport, 1);
    int rp[2];
    if (pipe(rp)) return 1;
    char ws[16];
    snprintf(ws, sizeof ws, "%d", nworkers);
    char *cargv[] = {(char *)paramd_path, "coordinator", "--servers", "1", "--workers", ws,
                     "--ready-fd", "3", "--persist", "--heartbeat-timeout-ms", "0", NULL};
    pid_t coord_pid = spawn(cargv, rp[1]);
    close(rp[1]);
    ssize_t n = read(rp[0], coord_addr, sizeof coord_addr - 1);
    if (n <= 0) {
        fprintf(stderr, "backpressure: the coordinator did not start (%s)\n", paramd_path);
        return 1;
    }
    coord_addr[n] = '\0';
    coord_addr[strcspn(coord_addr, "\n")] = '\0';
    char *sargv[] = {(char *)paramd_path, "server", "--coordinator", coord_addr,
                     "--apply-threads", "1", "--transport",
                     strcmp(transport, "tcp") ? "auto" : "tcp", NULL};
    server_pid = spawn(sargv, -1);

    worker *w = calloc((size_t)nworkers, sizeof *w);
    for (int i = 0; i < nworkers; i++) w[i].rank = i, worker_open(&w[i]);
    double mb = (double)nfloats * 4 / 1e6;
    long base = status_kb(server_pid, "VmRSS:");
    printf("# backpressure: transport %s, table %llu floats (%.1f MB, adam: %.1f MB with "
           "state), server --apply-threads 1, %d workers, %.1f s per phase\n",
           transport, (unsigned long long)nfloats, mb, 3 * mb, nworkers, seconds);
    /* What the server may hold: the table (values and adam's two state
     * planes) and, per worker connection, one 1 MiB chunk being read and,
     * over shared memory, the two 4 MiB rings mapped from the worker. */
    double per_conn = 1.048576 + (strcmp(transport, "tcp") ? 8.388608 : 0);
    printf("# server rss after setup: %.1f MB; budget: rss after setup + table %.1f MB + "
           "%d connections x %.1f MB = %.1f MB\n",
           base / 1024.0, 3 * mb, nworkers, per_conn,
           base / 1024.0 + 3 * mb + nworkers * per_conn);
    fflush(stdout);
    double R = phase("sustainable", w, 1, 0);
    phase("flood", w, nworkers, factor * R);
    for (int i = 0; i < nworkers; i++) {
        paramd_free(w[i].c, w[i].g);
        paramd_close(w[i].c);
    }
    free(w);
    kill(server_pid, SIGTERM);
    kill(coord_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
    waitpid(coord_pid, NULL, 0);
    return 0;
}
