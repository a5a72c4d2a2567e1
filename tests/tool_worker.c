/*
 * tool_worker.c - a worker program for the integration tests (not a test by
 * itself).  It runs inside a cluster and checks what it sees, exiting 0 on
 * success and 1 with a message on any mismatch.
 *
 *   tool_worker ramp N CONSISTENCY
 *       Rank 0 creates table "ramp" of N floats with init[i] = i; every
 *       worker pushes grad[i] = (rank+1) * i once (in two ranges); after a
 *       barrier every worker pulls and checks, exactly:
 *         async, add:     i + i * sum(rank+1)
 *         sync, add mean: i + i * mean(rank+1)
 *   tool_worker barrier
 *       One paramd_barrier; prints "released" after it.
 *   tool_worker spin
 *       Async pushes to table "spin" forever; prints "spinning" after the
 *       first push (a test kills it with SIGKILL).
 *   tool_worker errors
 *       Every error path of the API against a live cluster (one worker):
 *       each call fails with the right code and a message, and leaves the
 *       table as it was.
 *   tool_worker rules "SPEC" STEPS
 *       Table "r" of 1000 floats with SPEC (a rule, its hyper-parameters,
 *       a consistency); each worker pushes deterministic pseudo-random
 *       gradients for STEPS clocks, each clock in two ranges (so shards see
 *       partial pushes).  Worker 0 then replays the same sequence through
 *       pd_rule_apply in this process (sync: the mean of the W gradients
 *       per clock; async needs W = 1) and checks the servers agree to 1e-6.
 *   tool_worker steps T PAUSE_AT
 *       Sync table "s" (100 floats, add, mean): T steps of pull, push of
 *       (rank+1), clock.  The last rank prints "paused" and stops before
 *       pushing clock PAUSE_AT (-1: never) so a test can kill or stop it.
 *       Rank 0 checks the final values exactly: clocks before PAUSE_AT
 *       apply the mean over W workers, later ones over the W-1 left.
 *   tool_worker ssp S
 *       Table "p" with consistency=ssp:S, 2 workers.  Worker 1 holds back
 *       its first push until worker 0 has pulled at clocks 1..S (allowed:
 *       S ahead) and issued the pull at clock S+1 (must wait).  Worker 0
 *       checks that this pull returns clock 0's update, and that the
 *       servers' own record says no pull was served more than S clocks
 *       ahead and one was served exactly S ahead.
 *   tool_worker backup T
 *       3 workers, sync with backup=1: workers 0 and 1 push (rank+1) each
 *       clock; after a barrier worker 2 pushes 100 for the same clock,
 *       which the servers must drop.  Checks values = T * mean(1, 2) and
 *       the servers' dropped count = T.
 *   tool_worker elastic SPEC T PAUSE_AT WAIT_AT GO_FIFO
 *       Elastic workers (tests/it_elastic.sh): table "e" of 100 floats
 *       with SPEC (add, aggregate=sum); each worker runs the loop from the
 *       clock it was given (paramd_get_clock: 0, or its join clock J;
 *       printed first as "start at clock J as rank R") to T: pull, push, clock.  Rank 0
 *       pushes 1, every other rank 1000.  Rank 1, started with the
 *       cluster, prints "paused" and stops before pushing clock PAUSE_AT
 *       if PAUSE_AT > 0 (a test kills it; 0: no rank 1 at start); rank 0 prints "waiting at K" before pulling
 *       clock K = WAIT_AT and reads a line from GO_FIFO.  After a barrier:
 *       a rank other than 0 (a joiner) checks the values exactly,
 *       T + 1000*(PAUSE_AT + T - J);
 *       rank 0 checks that they are T plus whole 1000s.
 *   tool_worker deadline N T PAUSE_AT
 *       Deadlines (op_timeout_ms, tests/it_waits.sh): sync table "d" of N
 *       floats (add, mean); T steps of pull, push of (rank+1), clock, then
 *       a barrier.  The last rank prints "paused" and stops itself
 *       (SIGSTOP) before pushing clock PAUSE_AT; SIGCONT resumes it.  Rank
 *       0, when a pull fails with PARAMD_ETIMEDOUT, prints "pull timed out
 *       after MS ms: MESSAGE", tries a barrier (which must time out too:
 *       "barrier timed out after MS ms: MESSAGE"), prints "retrying" and
 *       retries the pull until it succeeds; any other failure is one.  It
 *       checks the final values exactly (T * mean(1..W)): a timed-out
 *       pull or barrier changed nothing.  Options for paramd_connect come
 *       from $TOOL_OPTIONS (e.g. chunk_bytes=4096 op_timeout_ms=1500).
 *   tool_worker fail
 *       Connects, then exits 3 (for paramd local's failure handling).
 *   tool_worker pidfile DIR
 *       Writes its pid to DIR/worker.RANK.pid and sleeps until killed.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rawpeer.h"
#include "net/conn.h"
#include "paramd.h"
#include "table/rules.h"
#include "table/spec.h"

static paramd_client *c;

#define MUST(call)                                                             \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_) {                                                             \
            fprintf(stderr, "FAIL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__,  \
                    #call, paramd_err_name(rc_), paramd_last_error(c));        \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define EXPECT_ERR(call, code)                                                 \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ != (code)) {                                                   \
            fprintf(stderr, "FAIL %s:%d: %s -> %s, expected %s\n", __FILE__,   \
                    __LINE__, #call, paramd_err_name(rc_),                     \
                    paramd_err_name(code));                                    \
            exit(1);                                                           \
        }                                                                      \
        if (!*paramd_last_error(c)) {                                          \
            fprintf(stderr, "FAIL %s:%d: no message\n", __FILE__, __LINE__);   \
            exit(1);                                                           \
        }                                                                      \
        printf("ok: %s -> %s: %s\n", #call, paramd_err_name(rc_),              \
               paramd_last_error(c));                                          \
    } while (0)

static int ramp(uint64_t n, const char *cons) {
    paramd_table *t;
    char spec[64];
    snprintf(spec, sizeof spec, "rule=add consistency=%s", cons);
    float *v = malloc(n * sizeof *v), *g = malloc(n * sizeof *g);
    for (uint64_t i = 0; i < n; i++) v[i] = (float)i;
    MUST(paramd_table_open(c, "ramp", n, spec, v, &t));
    int r = paramd_rank(c), W = paramd_num_workers(c);
    for (uint64_t i = 0; i < n; i++) g[i] = (float)(r + 1) * (float)i;
    uint64_t half = n / 2;
    if (half) MUST(paramd_push(t, 0, half, g));
    MUST(paramd_push(t, half, n - half, g + half));
    paramd_clock(c);
    MUST(paramd_barrier(c));
    MUST(paramd_pull(t, 0, n, v));
    double k = (double)W * (W + 1) / 2; /* sum of rank+1 */
    if (!strcmp(cons, "sync")) k /= W;
    for (uint64_t i = 0; i < n; i++) {
        float want = (float)((double)i + (double)i * k);
        if (v[i] != want) {
            fprintf(stderr, "FAIL ramp: element %llu is %.9g, expected %.9g\n",
                    (unsigned long long)i, v[i], want);
            return 1;
        }
    }
    printf("ramp ok: n=%llu W=%d S=%d %s\n", (unsigned long long)n, W,
           paramd_num_servers(c), cons);
    free(v);
    free(g);
    return 0;
}

static float grad_of(int rank, int step, int i) {
    uint32_t x = (uint32_t)(rank * 7919 + step * 104729 + i * 31 + 12345);
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    return (float)((x % 2001) / 1000.0 - 1.0);
}

static int rules(const char *spec, int steps) {
    enum { N = 1000 };
    static float g[N], got[N], w[N], gm[N], init[N];
    paramd_table *t;
    for (int i = 0; i < N; i++) init[i] = (float)(i % 17) * 0.01f;
    MUST(paramd_table_open(c, "r", N, spec, init, &t));
    int r = paramd_rank(c), W = paramd_num_workers(c);
    for (int st = 0; st < steps; st++) {
        for (int i = 0; i < N; i++) g[i] = grad_of(r, st, i);
        MUST(paramd_push(t, 0, 300, g));
        MUST(paramd_push(t, 300, N - 300, g + 300));
        paramd_clock(c);
        MUST(paramd_pull(t, 0, N, got)); /* sync: waits for the clock */
    }
    MUST(paramd_barrier(c));
    if (r != 0) return 0;
    MUST(paramd_pull(t, 0, N, got));
    /* the reference: the same rule, in this process */
    pd_table_def d;
    pd_err e = {0};
    if (pd_spec_parse(spec, &d, &e)) { fprintf(stderr, "FAIL spec: %s\n", e.msg); return 1; }
    pd_rule rule;
    memset(&rule, 0, sizeof rule);
    rule.kind = (pd_rule_kind)d.rule;
    pd_spec_hyper(&d, &rule.hyper);
    char msg[512];
    char ppath[PD_MAX_PLUGIN_FILE]; /* plugin=NAME: where paramd local --plugin-dir said */
    if (d.rule == PD_RULE_PLUGIN &&
        (pd_rule_plugin_path(getenv("PARAMD_PLUGIN_DIR"), d.plugin, ppath, sizeof ppath, msg,
                             sizeof msg) ||
         pd_rule_load_plugin(&rule, ppath, msg, sizeof msg))) {
        fprintf(stderr, "FAIL plugin: %s\n", msg);
        return 1;
    }
    size_t sf = pd_rule_state_floats(&rule);
    float *state = calloc(sf * N + 1, sizeof(float));
    pd_rule_init_state(&rule, state, N);
    memcpy(w, init, sizeof w);
    for (int st = 0; st < steps; st++) {
        for (int i = 0; i < N; i++) {
            double sum = 0;
            for (int k = 0; k < W; k++) sum += grad_of(k, st, i);
            gm[i] = (float)(sum / W);
        }
        pd_rule_apply(&rule, w, state, gm, N, st + 1);
    }
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double dd = fabs((double)got[i] - w[i]) / fmax(1.0, fabs(w[i]));
        if (dd > worst) worst = dd;
    }
    pd_rule_release(&rule);
    free(state);
    if (!(worst < 1e-6)) {
        fprintf(stderr, "FAIL rules '%s': servers differ from the reference by %.3g\n", spec, worst);
        return 1;
    }
    printf("rules ok: '%s' W=%d S=%d %d steps, worst relative difference %.3g\n", spec, W,
           paramd_num_servers(c), steps, worst);
    return 0;
}

/* The text of STATS from every server (through the coordinator's map). */
static void all_stats(char *out, size_t outlen) {
    static char text[PD_MAX_CTRL_PAYLOAD + 1];
    pd_map m;
    out[0] = 0;
    rp_map(getenv("PARAMD_COORDINATOR"), &m);
    for (uint32_t k = 0; k < m.S; k++) {
        rp_stats(m.addr[k], 0, text);
        snprintf(out + strlen(out), outlen - strlen(out), "%s", text);
    }
    pd_map_free(&m);
}

/* Sum (or max) of a "key N" counter over the lines of STATS text. */
static long long stat_sum(const char *text, const char *key, int max) {
    long long acc = 0;
    char pat[64];
    snprintf(pat, sizeof pat, " %s ", key);
    for (const char *p = strstr(text, pat); p; p = strstr(p + 1, pat)) {
        long long v = atoll(p + strlen(pat));
        acc = max ? (v > acc ? v : acc) : acc + v;
    }
    return acc;
}

static int steps(int T, int pause_at) {
    enum { N = 100 };
    float v[N], g[N];
    paramd_table *t;
    int r = paramd_rank(c), W = paramd_num_workers(c);
    MUST(paramd_table_open(c, "s", N, "rule=add consistency=sync", NULL, &t));
    for (int i = 0; i < N; i++) g[i] = (float)(r + 1);
    for (int st = 0; st < T; st++) {
        MUST(paramd_pull(t, 0, N, v));
        if (r == W - 1 && st == pause_at) {
            printf("paused\n");
            fflush(stdout);
            for (;;) pause();
        }
        MUST(paramd_push(t, 0, N, g));
        paramd_clock(c);
    }
    MUST(paramd_barrier(c));
    if (r != 0) return 0;
    MUST(paramd_pull(t, 0, N, v));
    double want = 0;
    for (int st = 0; st < T; st++) {
        int n = (pause_at >= 0 && st >= pause_at) ? W - 1 : W;
        want += (double)n * (n + 1) / 2 / n; /* mean of 1..n */
    }
    for (int i = 0; i < N; i++)
        if (fabs(v[i] - want) > 1e-4) {
            fprintf(stderr, "FAIL steps: element %d is %g, expected %g\n", i, v[i], want);
            return 1;
        }
    printf("steps ok: %d steps, values %g\n", T, want);
    return 0;
}

static int deadline(uint64_t N, int T, int pause_at) {
    float *v = calloc(N, sizeof *v), *g = calloc(N, sizeof *g);
    paramd_table *t;
    int r = paramd_rank(c), W = paramd_num_workers(c), timeouts = 0;
    if (!v || !g) return 1;
    MUST(paramd_table_open(c, "d", N, "rule=add consistency=sync", NULL, &t));
    for (uint64_t i = 0; i < N; i++) g[i] = (float)(r + 1);
    for (int st = 0; st < T; st++) {
        for (;;) {
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            int rc = paramd_pull(t, 0, N, v);
            clock_gettime(CLOCK_MONOTONIC, &b);
            if (rc == 0) break;
            long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
            if (rc != PARAMD_ETIMEDOUT || r != 0) {
                fprintf(stderr, "FAIL pull: %s: %s\n", paramd_err_name(rc), paramd_last_error(c));
                return 1;
            }
            printf("pull timed out after %ld ms: %s\n", ms, paramd_last_error(c));
            if (timeouts++ == 0) {
                clock_gettime(CLOCK_MONOTONIC, &a);
                rc = paramd_barrier(c);
                clock_gettime(CLOCK_MONOTONIC, &b);
                ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
                if (rc != PARAMD_ETIMEDOUT) {
                    fprintf(stderr, "FAIL barrier: %s: %s\n", paramd_err_name(rc),
                            paramd_last_error(c));
                    return 1;
                }
                printf("barrier timed out after %ld ms: %s\n", ms, paramd_last_error(c));
                printf("retrying\n");
            }
            fflush(stdout);
        }
        if (r == W - 1 && st == pause_at) {
            printf("paused\n");
            fflush(stdout);
            raise(SIGSTOP);
        }
        MUST(paramd_push(t, 0, N, g));
        paramd_clock(c);
    }
    MUST(paramd_barrier(c));
    MUST(paramd_pull(t, 0, N, v));
    double want = T * (double)(W + 1) / 2; /* T clocks of mean(1..W) */
    for (uint64_t i = 0; i < N; i++)
        if (fabs(v[i] - want) > 1e-3) {
            fprintf(stderr, "FAIL deadline: element %llu is %g, expected %g\n",
                    (unsigned long long)i, v[i], want);
            return 1;
        }
    printf("deadline ok: rank %d, %d steps, %d pulls timed out, values %g\n", r, T, timeouts,
           want);
    free(v);
    free(g);
    return 0;
}

static int ssp(int S) {
    enum { N = 64 };
    float v[N], g[N];
    paramd_table *t;
    char spec[64];
    snprintf(spec, sizeof spec, "rule=add consistency=ssp:%d", S);
    int r = paramd_rank(c);
    MUST(paramd_table_open(c, "p", N, spec, NULL, &t));
    for (int i = 0; i < N; i++) g[i] = (float)(r + 1);
    if (r == 1) {
        MUST(paramd_barrier(c)); /* worker 0 is S ahead and waiting */
        for (int st = 0; st <= S + 1; st++) {
            MUST(paramd_pull(t, 0, N, v));
            MUST(paramd_push(t, 0, N, g));
            paramd_clock(c);
        }
        MUST(paramd_barrier(c));
        return 0;
    }
    for (int st = 0; st <= S; st++) { /* pulls at clocks 0..S are served */
        MUST(paramd_pull(t, 0, N, v));
        if (v[0] != 0) { fprintf(stderr, "FAIL ssp: clock applied too early\n"); return 1; }
        MUST(paramd_push(t, 0, N, g));
        paramd_clock(c);
    }
    paramd_request *rq; /* clock S+1: needs clock 0, which needs worker 1 */
    MUST(paramd_pull_async(t, 0, N, v, &rq));
    MUST(paramd_barrier(c));
    MUST(paramd_wait(rq));
    if (v[0] < 1.5f - 1e-6f) {
        fprintf(stderr, "FAIL ssp: the pull at clock %d returned %g, before clock 0 "
                "(mean 1.5) was applied\n", S + 1, v[0]);
        return 1;
    }
    MUST(paramd_push(t, 0, N, g));
    paramd_clock(c);
    MUST(paramd_barrier(c));
    char text[8192];
    all_stats(text, sizeof text);
    long long ahead = stat_sum(text, "max_ahead", 1);
    if (ahead != S) {
        fprintf(stderr, "FAIL ssp:%d: servers served pulls up to %lld clocks ahead\n%s", S,
                ahead, text);
        return 1;
    }
    printf("ssp ok: s=%d, pulls served at most %lld clocks ahead\n", S, ahead);
    return 0;
}

static int backup(int T) {
    enum { N = 50 };
    float v[N], g[N];
    paramd_table *t;
    int r = paramd_rank(c);
    MUST(paramd_table_open(c, "b", N, "rule=add consistency=sync backup=1", NULL, &t));
    for (int i = 0; i < N; i++) g[i] = r == 2 ? 100.0f : (float)(r + 1);
    for (int st = 0; st < T; st++) {
        MUST(paramd_pull(t, 0, N, v));
        if (r < 2) MUST(paramd_push(t, 0, N, g)); /* returns once applied */
        MUST(paramd_barrier(c));
        if (r == 2) MUST(paramd_push(t, 0, N, g)); /* late: dropped */
        paramd_clock(c);
    }
    MUST(paramd_barrier(c));
    if (r != 0) return 0;
    MUST(paramd_pull(t, 0, N, v));
    for (int i = 0; i < N; i++)
        if (v[i] != 1.5f * T) {
            fprintf(stderr, "FAIL backup: element %d is %g, expected %g\n", i, v[i], 1.5 * T);
            return 1;
        }
    char text[8192];
    all_stats(text, sizeof text);
    int S = paramd_num_servers(c);
    long long dropped = stat_sum(text, "dropped", 0);
    if (dropped != (long long)T * S) {
        fprintf(stderr, "FAIL backup: servers dropped %lld worker-clocks, expected %d\n%s",
                dropped, T * S, text);
        return 1;
    }
    printf("backup ok: %d late pushes dropped on each of %d servers; values %g\n", T, S, v[0]);
    return 0;
}

static int spin(void) {
    paramd_table *t;
    float g[1000];
    for (int i = 0; i < 1000; i++) g[i] = 1.0f;
    MUST(paramd_table_open(c, "spin", 1000, "rule=add", NULL, &t));
    for (long it = 0;; it++) {
        MUST(paramd_push(t, 0, 1000, g));
        paramd_clock(c);
        if (it == 0) {
            printf("spinning\n");
            fflush(stdout);
        }
    }
}

static int errors(void) {
    paramd_table *t, *t2, *s;
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
    MUST(paramd_table_open(c, "e", 8, "rule=add", v, &t));
    EXPECT_ERR(paramd_pull(t, 4, 5, out), PARAMD_ERANGE);
    EXPECT_ERR(paramd_pull(t, 0, 0, out), PARAMD_ERANGE);
    EXPECT_ERR(paramd_pull(t, UINT64_MAX, 2, out), PARAMD_ERANGE);
    EXPECT_ERR(paramd_push(t, 8, 1, v), PARAMD_ERANGE);
    EXPECT_ERR(paramd_pull(t, 0, 8, NULL), PARAMD_EINVAL);
    EXPECT_ERR(paramd_table_open(c, "e", 9, "rule=add", NULL, &t2), PARAMD_ESPEC);
    EXPECT_ERR(paramd_table_open(c, "e", 8, "rule=sgd", NULL, &t2), PARAMD_ESPEC);
    EXPECT_ERR(paramd_table_open(c, "x", 8, "rule=bogus", NULL, &t2), PARAMD_EINVAL);
    EXPECT_ERR(paramd_table_open(c, "", 8, NULL, NULL, &t2), PARAMD_EINVAL);
    EXPECT_ERR(paramd_table_open(c, "x", 0, NULL, NULL, &t2), PARAMD_EINVAL);
    MUST(paramd_push(t, 0, 8, v));
    EXPECT_ERR(paramd_push(t, 2, 2, v), PARAMD_EDUP);
    /* sync: pulling the next clock without pushing this one would hang */
    MUST(paramd_table_open(c, "s", 8, "consistency=sync", NULL, &s));
    paramd_clock(c);
    EXPECT_ERR(paramd_pull(s, 0, 8, out), PARAMD_EDEADLOCK);
    /* async requests: a failed request reports through wait */
    paramd_request *rq = NULL;
    MUST(paramd_pull_async(t, 0, 8, out, &rq));
    MUST(paramd_wait(rq));
    for (int i = 0; i < 8; i++)
        if (out[i] != 2 * v[i]) {
            fprintf(stderr, "FAIL errors: element %d is %g after rejected "
                    "requests, expected %g\n", i, out[i], 2 * v[i]);
            return 1;
        }
    EXPECT_ERR(paramd_pull_async(t, 0, 9, out, &rq), PARAMD_ERANGE);
    if (rq) { fprintf(stderr, "FAIL: handle set on failure\n"); return 1; }
    printf("errors ok\n");
    return 0;
}

static int elastic(const char *spec, int T, int pause_at, int wait_at,
                   const char *go) {
    enum { N = 100 };
    float v[N], g[N];
    paramd_table *t;
    int r = paramd_rank(c);
    int64_t J = paramd_get_clock(c);
    printf("start at clock %lld as rank %d\n", (long long)J, r);
    fflush(stdout);
    MUST(paramd_table_open(c, "e", N, spec, NULL, &t));
    for (int i = 0; i < N; i++) g[i] = r == 0 ? 1.0f : 1000.0f;
    for (int64_t k = J; k < T; k++) {
        if (r == 0 && k == wait_at) {
            printf("waiting at %lld\n", (long long)k);
            fflush(stdout);
            char line[16];
            FILE *f = fopen(go, "r");
            if (!f || !fgets(line, sizeof line, f)) {
                fprintf(stderr, "FAIL elastic: cannot read %s\n", go);
                return 1;
            }
            fclose(f);
        }
        MUST(paramd_pull(t, 0, N, v));
        if (r == 1 && J == 0 && pause_at > 0 && k == pause_at) {
            printf("paused\n");
            fflush(stdout);
            for (;;) pause();
        }
        MUST(paramd_push(t, 0, N, g));
        paramd_clock(c);
    }
    MUST(paramd_barrier(c));
    MUST(paramd_pull(t, 0, N, v));
    double want = (double)T + 1000.0 * (double)(pause_at + T - J);
    for (int i = 0; i < N; i++) {
        double extra = fmod((double)v[i] - T, 1000.0);
        if ((r != 0 && v[i] != want) || (r == 0 && extra != 0)) {
            fprintf(stderr, "FAIL elastic: rank %d (from clock %lld): element %d is "
                    "%g, expected %s%g\n", r, (long long)J, i, v[i],
                    r != 0 ? "" : "T plus whole 1000s, T = ", r != 0 ? want : (double)T);
            return 1;
        }
    }
    printf("elastic ok: rank %d, clocks %lld..%d, value %g\n", r, (long long)J, T - 1,
           v[0]);
    return 0;
}

/* One barrier: prints "released" once through it. */
static int barrier(void) {
    MUST(paramd_barrier(c));
    printf("released\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tool_worker ramp N sync|async | spin | errors | fail | pidfile DIR\n");
        return 2;
    }
    if (paramd_connect(&c, getenv("TOOL_OPTIONS"))) {
        fprintf(stderr, "FAIL connect: %s\n", paramd_last_error(NULL));
        return 1;
    }
    int rc = 2;
    if (!strcmp(argv[1], "ramp") && argc == 4) rc = ramp(strtoull(argv[2], NULL, 10), argv[3]);
    else if (!strcmp(argv[1], "spin")) rc = spin();
    else if (!strcmp(argv[1], "barrier")) rc = barrier();
    else if (!strcmp(argv[1], "steps") && argc == 4) rc = steps(atoi(argv[2]), atoi(argv[3]));
    else if (!strcmp(argv[1], "ssp") && argc == 3) rc = ssp(atoi(argv[2]));
    else if (!strcmp(argv[1], "deadline") && argc == 5)
        rc = deadline(strtoull(argv[2], NULL, 10), atoi(argv[3]), atoi(argv[4]));
    else if (!strcmp(argv[1], "backup") && argc == 3) rc = backup(atoi(argv[2]));
    else if (!strcmp(argv[1], "rules") && argc == 4) rc = rules(argv[2], atoi(argv[3]));
    else if (!strcmp(argv[1], "errors")) rc = errors();
    else if (!strcmp(argv[1], "elastic") && argc == 7)
        rc = elastic(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argv[6]);
    else if (!strcmp(argv[1], "fail")) return 3;
    else if (!strcmp(argv[1], "pidfile") && argc == 3) {
        char path[4096];
        snprintf(path, sizeof path, "%s/worker.%d.pid", argv[2], paramd_rank(c));
        FILE *f = fopen(path, "w");
        if (!f) return 1;
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
        printf("waiting\n");
        fflush(stdout);
        for (;;) pause();
    }
    if (paramd_close(c) && rc == 0) {
        fprintf(stderr, "FAIL close: %s\n", paramd_last_error(c));
        rc = 1;
    }
    return rc;
}
