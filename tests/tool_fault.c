/*
 * tool_fault.c - a worker program for tests/it_fault.sh (not a test by
 * itself): pushes and pulls through links that may carry injected faults
 * (the client option fault=SPEC, src/net/fault.h), and a checker that reads
 * the table afterwards with a clean client.
 *
 *   tool_fault work P B DEPTH OUTCOMES "OPTIONS"
 *       Connects with OPTIONS (e.g. "fault=short=7"), creates the async
 *       add table "f" of n = S*P*B floats: S halves (one per server's
 *       shard), each of P slots of B floats.  Push i is a whole-table push,
 *       zero except slot i of every half, whose element j gets
 *       i*B + j + 1: so the final table says, per server, whether push i
 *       was applied 0, 1 or more times.  Pushes go out with
 *       paramd_push_async, at most DEPTH in flight, one clock each; after
 *       each wait the whole table is pulled and checked against what is
 *       known (an acknowledged push is there exactly; one in flight or
 *       failed is there exactly or not at all; one not yet sent is not).
 *       Writes "I ok" or "I fail" per push to OUTCOMES.  Checks as it goes
 *       (exit 1 with a message otherwise): once a call failed, every call
 *       issued after it fails too; every failure's message names a server;
 *       every call returns.  Prints "calls: X ok, Y failed".
 *   tool_fault check P B OUTCOMES
 *       Connects without faults, opens "f", pulls it and checks: every push
 *       acknowledged in OUTCOMES was applied exactly once on every server,
 *       every failed push at most once on each, and nothing else is in the
 *       table.  Prints "check: A acknowledged applied once, F failed (G
 *       applied on some server)".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paramd.h"

static paramd_client *c;

#define DIE(...)                                                               \
    do {                                                                       \
        fprintf(stderr, "FAIL: " __VA_ARGS__);                                 \
        fputc('\n', stderr);                                                   \
        exit(1);                                                               \
    } while (0)

enum { NOT_SENT, IN_FLIGHT, ACKED, FAILED };

static float want_of(uint64_t B, uint64_t i, uint64_t j) {
    return (float)(i * B + j + 1);
}

/* How many times push i shows in half k of v: 0 or 1, or -1 if the slot
 * holds anything else (applied twice, partly, or garbage). */
static int applied(const float *v, uint64_t P, uint64_t B, uint64_t k,
                   uint64_t i) {
    const float *s = v + k * P * B + i * B;
    int zero = 1, one = 1;
    for (uint64_t j = 0; j < B; j++) {
        if (s[j] != 0.0f) zero = 0;
        if (s[j] != want_of(B, i, j)) one = 0;
    }
    return one ? 1 : zero ? 0 : -1;
}

/* Check a pulled table against the pushes' states; "" or the mismatch. */
static const char *check_table(const float *v, uint64_t S, uint64_t P,
                               uint64_t B, const int *state, char *why,
                               size_t len) {
    for (uint64_t k = 0; k < S; k++)
        for (uint64_t i = 0; i < P; i++) {
            int a = applied(v, P, B, k, i);
            int ok = state[i] == ACKED ? a == 1
                     : state[i] == NOT_SENT ? a == 0
                                            : a == 0 || a == 1;
            if (!ok) {
                snprintf(why, len, "push %llu (%s) on server %llu: slot holds "
                         "%s (first value %g)", (unsigned long long)i,
                         state[i] == ACKED ? "acknowledged"
                         : state[i] == NOT_SENT ? "not sent" : "failed/in flight",
                         (unsigned long long)k,
                         a == 1 ? "it once" : a == 0 ? "nothing" : "something else",
                         v[k * P * B + i * B]);
                return why;
            }
        }
    return "";
}

/* A call's outcome, with the rule that after a failure nothing succeeds
 * (seq numbers are issue order). */
static long first_fail_seq = -1;
static long nok, nfail;

static void outcome(long seq, int rc, const char *what) {
    if (rc == 0) {
        nok++;
        if (first_fail_seq >= 0 && seq > first_fail_seq)
            DIE("%s succeeded although call %ld, issued before it, failed", what,
                first_fail_seq);
        return;
    }
    nfail++;
    const char *msg = paramd_last_error(c);
    if (!strstr(msg, "server "))
        DIE("%s failed with %s but the message does not name the server: '%s'",
            what, paramd_err_name(rc), msg);
    if (first_fail_seq < 0 || seq < first_fail_seq) {
        first_fail_seq = seq;
        printf("first failure: %s: %s: %s\n", what, paramd_err_name(rc), msg);
    }
}

static int work(uint64_t P, uint64_t B, int depth, const char *outpath,
                const char *options) {
    int rc = paramd_connect(&c, options);
    if (rc) DIE("connect: %s", paramd_last_error(NULL));
    uint64_t S = (uint64_t)paramd_num_servers(c), n = S * P * B;
    paramd_table *t;
    if ((rc = paramd_table_open(c, "f", n, "rule=add consistency=async", NULL, &t)))
        DIE("table_open (pick a later fault): %s", paramd_last_error(c));
    /* Shared buffers: over shared memory, parts of at least 64 KiB (B >=
     * 546 with P = 30) go by reference (PUSH_REGION / PULL_REGION). */
    float *grads = paramd_alloc(c, P * n * sizeof *grads), *v = paramd_alloc(c, n * sizeof *v);
    int *state = calloc(P, sizeof *state);
    long *seq = calloc(P, sizeof *seq);
    paramd_request **req = calloc(P, sizeof *req);
    FILE *out = fopen(outpath, "w");
    if (!grads || !v || !state || !seq || !req || !out) DIE("out of memory");
    long next_seq = 0;
    char why[256], what[64];
    uint64_t waited = 0;
    for (uint64_t i = 0; i < P || waited < P;) {
        if (i < P && i - waited < (uint64_t)depth) { /* issue push i */
            float *g = grads + i * n;
            for (uint64_t k = 0; k < S; k++)
                for (uint64_t j = 0; j < B; j++)
                    g[k * P * B + i * B + j] = want_of(B, i, j);
            seq[i] = next_seq++;
            rc = paramd_push_async(t, 0, n, g, &req[i]);
            state[i] = rc ? FAILED : IN_FLIGHT;
            paramd_clock(c);
            if (rc) {
                snprintf(what, sizeof what, "push %llu", (unsigned long long)i);
                outcome(seq[i], rc, what);
            }
            i++;
            continue;
        }
        uint64_t w = waited++; /* wait for the oldest push */
        if (state[w] == IN_FLIGHT) {
            rc = paramd_wait(req[w]);
            state[w] = rc ? FAILED : ACKED;
            snprintf(what, sizeof what, "push %llu", (unsigned long long)w);
            outcome(seq[w], rc, what);
        }
        fprintf(out, "%llu %s\n", (unsigned long long)w,
                state[w] == ACKED ? "ok" : "fail");
        long s = next_seq++;
        rc = paramd_pull(t, 0, n, v);
        snprintf(what, sizeof what, "pull after push %llu", (unsigned long long)w);
        outcome(s, rc, what);
        if (rc == 0 && *check_table(v, S, P, B, state, why, sizeof why))
            DIE("%s: %s", what, why);
    }
    printf("calls: %ld ok, %ld failed\n", nok, nfail);
    fclose(out);
    paramd_close(c); /* releases the shared buffers */
    free(state), free(seq), free(req);
    return 0;
}

static int check(uint64_t P, uint64_t B, const char *outpath) {
    if (paramd_connect(&c, NULL)) DIE("connect: %s", paramd_last_error(NULL));
    uint64_t S = (uint64_t)paramd_num_servers(c), n = S * P * B;
    paramd_table *t;
    if (paramd_table_open(c, "f", n, "rule=add consistency=async", NULL, &t))
        DIE("table_open: %s", paramd_last_error(c));
    int *state = calloc(P, sizeof *state);
    float *v = malloc(n * sizeof *v);
    FILE *in = fopen(outpath, "r");
    if (!state || !v || !in) DIE("cannot read %s", outpath);
    for (uint64_t i = 0; i < P; i++) state[i] = -1;
    unsigned long long i;
    char word[8];
    while (fscanf(in, "%llu %7s", &i, word) == 2) {
        if (i >= P || state[i] != -1) DIE("bad outcome line for push %llu", i);
        state[i] = strcmp(word, "ok") == 0 ? ACKED : FAILED;
    }
    fclose(in);
    for (uint64_t k = 0; k < P; k++)
        if (state[k] == -1) DIE("no outcome for push %llu", (unsigned long long)k);
    if (paramd_pull(t, 0, n, v)) DIE("pull: %s", paramd_last_error(c));
    char why[256];
    if (*check_table(v, S, P, B, state, why, sizeof why)) DIE("%s", why);
    long acked = 0, failed = 0, some = 0;
    for (uint64_t p = 0; p < P; p++) {
        if (state[p] == ACKED) acked++;
        else {
            failed++;
            for (uint64_t k = 0; k < S; k++)
                if (applied(v, P, B, k, p) == 1) {
                    some++;
                    break;
                }
        }
    }
    printf("check: %ld acknowledged applied once, %ld failed (%ld applied on "
           "some server)\n", acked, failed, some);
    paramd_close(c);
    free(state), free(v);
    return 0;
}

static uint64_t num(const char *s) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v == 0 || v > 100000) DIE("'%s' is not a count", s);
    return v;
}

int main(int argc, char **argv) {
    if (argc == 7 && strcmp(argv[1], "work") == 0)
        return work(num(argv[2]), num(argv[3]), (int)num(argv[4]), argv[5], argv[6]);
    if (argc == 5 && strcmp(argv[1], "check") == 0)
        return check(num(argv[2]), num(argv[3]), argv[4]);
    fprintf(stderr, "usage: tool_fault work P B DEPTH OUTCOMES OPTIONS | "
                    "tool_fault check P B OUTCOMES\n");
    return 2;
}
