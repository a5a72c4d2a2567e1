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
#include <unistd.h>

#include "paramd.h"
#include "server/rules.h"
#include "wire/spec.h"

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
    if (d.rule == PD_RULE_PLUGIN && pd_rule_load_plugin(&rule, d.plugin, msg, sizeof msg)) {
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

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tool_worker ramp N sync|async | spin | errors | fail | pidfile DIR\n");
        return 2;
    }
    if (paramd_connect(&c, NULL)) {
        fprintf(stderr, "FAIL connect: %s\n", paramd_last_error(NULL));
        return 1;
    }
    int rc = 2;
    if (!strcmp(argv[1], "ramp") && argc == 4) rc = ramp(strtoull(argv[2], NULL, 10), argv[3]);
    else if (!strcmp(argv[1], "spin")) rc = spin();
    else if (!strcmp(argv[1], "rules") && argc == 4) rc = rules(argv[2], atoi(argv[3]));
    else if (!strcmp(argv[1], "errors")) rc = errors();
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
