/*
 * rules_bench.c - how fast each update rule runs, next to what the memory
 * system allows.
 *
 *   build-rules/bench/rules_bench [N] [PLUGIN.so ...]
 *
 * For every built-in rule (and each plugin named on the command line) it
 * applies a gradient to N parameters (default 1M floats) over and over on
 * one thread, and prints one line: parameter updates per second, and bytes
 * touched per second, counting w read and written, g read, and every state
 * plane read and written ((12 + 8k) bytes per parameter with k planes).
 *
 * The ceiling is memcpy, measured in the same run over the same working
 * set as the rule (w + g + planes, half as source, half as destination),
 * counting its bytes the same way (read + written).  "ratio" is the rule's
 * bytes/s over memcpy's.  Read it with one fact in mind: memcpy's
 * destination is written without being read, so the cache must first
 * fetch each destination line (write-allocate): memcpy moves 3 bytes for
 * every 2 it is credited with, while a rule updates w and its state in
 * place and pays no such fetch.  A rule that only moves memory therefore
 * scores about 1.5 (add and sgd do); well under that means the rule is
 * bound by arithmetic (sqrt and division in adagrad, adam, ftrl).
 *
 * Each figure is the best of 3 trials of at least 0.2 s each.  A benchmark
 * is a program, not a test: nothing here asserts a time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "table/rules.h"

#define TRIALS 3
#define MIN_SECONDS 0.2

/* ==== Timing ============================================================= */

/* Best bytes per second of memcpy over a working set of `bytes`. */
static double memcpy_bw(size_t bytes) {
    size_t half = bytes / 2;
    char *a = malloc(half), *b = malloc(half);
    if (!a || !b) {
        fprintf(stderr, "rules_bench: out of memory for memcpy\n");
        exit(1);
    }
    memset(a, 1, half);
    memset(b, 2, half);
    memcpy(b, a, half); /* warm */
    double best = 0;
    for (int t = 0; t < TRIALS; t++) {
        long reps = 0;
        double t0 = pd_now(), el;
        do {
            /* Alternate directions so neither buffer stays clean. */
            if (reps & 1)
                memcpy(a, b, half);
            else
                memcpy(b, a, half);
            reps++;
        } while ((el = pd_now() - t0) < MIN_SECONDS);
        double bw = (double)reps * 2.0 * (double)half / el;
        if (bw > best) best = bw;
    }
    /* Keep the copies observable. */
    if (a[half / 2] == 42) puts("");
    free(a);
    free(b);
    return best;
}

/* Best updates (parameters) per second of rule r on n parameters. */
static double rule_rate(const pd_rule *r, size_t n) {
    size_t k = pd_rule_state_floats(r);
    float *w = malloc(n * sizeof *w), *g = malloc(n * sizeof *g);
    float *state = malloc((k ? k : 1) * n * sizeof *state);
    if (!w || !g || !state) {
        fprintf(stderr, "rules_bench: out of memory for n=%zu\n", n);
        exit(1);
    }
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        g[i] = ((float)(x >> 8) * 0x1p-24f - 0.5f) * 1e-3f;
        w[i] = 0.01f;
    }
    if (k) pd_rule_init_state(r, state, n);
    int64_t step = 1;
    pd_rule_apply(r, w, state, g, n, step++); /* warm */
    double best = 0;
    for (int t = 0; t < TRIALS; t++) {
        long reps = 0;
        double t0 = pd_now(), el;
        do {
            pd_rule_apply(r, w, state, g, n, step++);
            reps++;
        } while ((el = pd_now() - t0) < MIN_SECONDS);
        double rate = (double)reps * (double)n / el;
        if (rate > best) best = rate;
    }
    if (w[n / 2] == 42.0f) puts("");
    free(w);
    free(g);
    free(state);
    return best;
}

static void report(const char *name, const pd_rule *r, size_t n) {
    size_t k = pd_rule_state_floats(r);
    double ups = rule_rate(r, n);
    double per = 12.0 + 8.0 * (double)k;           /* bytes touched each */
    double footprint = 4.0 * (double)n * (2.0 + (double)k);
    double mc = memcpy_bw((size_t)footprint);
    double bw = ups * per;
    printf("%-12s %9zu %5zu %12.1f %12.2f %12.2f %7.2f\n", name, n, k,
           ups / 1e6, bw / 1e9, mc / 1e9, bw / mc);
    fflush(stdout);
}

/* ==== Main =============================================================== */

int main(int argc, char **argv) {
    size_t n = (size_t)1 << 20;
    int first_plugin = 1;
    if (argc > 1) {
        uint64_t v;
        if (pd_parse_u64(argv[1], &v) == 0) {
            if (v == 0 || v > ((uint64_t)1 << 32)) {
                fprintf(stderr, "rules_bench: N must be in 1..2^32\n");
                return 2;
            }
            n = (size_t)v;
            first_plugin = 2;
        }
    }
    printf("# one thread; bytes = w r+w, g r, each state plane r+w; "
           "memcpy over the same working set\n"
           "# ratio ~1.5 = memory-bound (memcpy also pays a write-allocate "
           "read it is not credited for)\n");
    printf("%-12s %9s %5s %12s %12s %12s %7s\n", "rule", "n", "state",
           "Mupdates/s", "GB/s", "memcpy GB/s", "ratio");
    for (int kind = PD_RULE_ADD; kind < PD_RULE_PLUGIN; kind++) {
        pd_rule r = {.kind = (pd_rule_kind)kind, .plugin = NULL};
        pd_rule_defaults(r.kind, &r.hyper);
        report(pd_rule_name(r.kind), &r, n);
    }
    for (int i = first_plugin; i < argc; i++) {
        pd_rule r = {.kind = PD_RULE_PLUGIN, .plugin = NULL};
        char err[512];
        pd_rule_defaults(PD_RULE_PLUGIN, &r.hyper);
        r.hyper.l1 = 1.0; /* clip_sgd's threshold; others may ignore it */
        if (pd_rule_load_plugin(&r, argv[i], err, sizeof err) != 0 ||
            pd_rule_check(&r, err, sizeof err) != 0) {
            fprintf(stderr, "rules_bench: %s\n", err);
            pd_rule_release(&r);
            return 1;
        }
        const char *base = strrchr(argv[i], '/');
        report(base ? base + 1 : argv[i], &r, n);
        pd_rule_release(&r);
    }
    return 0;
}
