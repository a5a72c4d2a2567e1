/*
 * auth_bench.c - what the cluster secret costs a connection: the
 * handshake with the secret's challenge-response (two more messages and
 * four HMAC-SHA256 over a few hundred bytes) against the same handshake
 * without a secret, measured in the same run, interleaved.
 *
 *   build/bench/auth_bench [CONNECTIONS] [ROUNDS]      (defaults: 300, 7)
 *
 * Each round makes CONNECTIONS loopback TCP connections one after the
 * other, each dialed, taken through pd_handshake_dial against a thread
 * running pd_handshake_accept (as a server's connection thread does), and
 * closed: first without a secret, then with one (the order alternates
 * from round to round).  One line per round, then the medians and their
 * ratio.  The secret costs nothing after the handshake (frames are not
 * authenticated one by one), so this is the whole of its cost.  A
 * benchmark, not a test: it asserts only that every handshake succeeded.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_stats.h"
#include "common/common.h"
#include "frame/auth.h"
#include "frame/hello.h"
#include "net/conn.h"

static int lfd = -1;
static char bound[PD_MAX_ADDR + 1];
static pd_key key;

typedef struct answerer {
    int n, with_key;
    int failed;
} answerer;

static void *answer_main(void *arg) {
    answerer *a = arg;
    const pd_hello_rules rules = {.who = "bench", .roles = PD_ROLE_BIT(PD_ROLE_TOOL),
                                  .key = a->with_key ? &key : NULL};
    for (int i = 0; i < a->n; i++) {
        pd_conn *c = pd_tcp_accept(lfd);
        if (!c) {
            a->failed++;
            continue;
        }
        pd_err e = {0};
        pd_hello peer;
        if (pd_handshake_accept(c, &rules, NULL, &peer, &e) != 0) a->failed++;
        pd_conn_destroy(c);
    }
    return NULL;
}

/* Seconds for n connections, each dialed, through the handshake, closed. */
static double run(int n, int with_key) {
    answerer a = {n, with_key, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, answer_main, &a) != 0) {
        fprintf(stderr, "auth_bench: cannot start a thread\n");
        exit(1);
    }
    pd_hello me = {.role = PD_ROLE_TOOL, .rank = -1};
    double t0 = pd_now();
    for (int i = 0; i < n; i++) {
        pd_err e = {0};
        pd_conn *c = pd_tcp_connect(bound, 5000, &e);
        if (!c || pd_handshake_dial(c, &me, with_key ? &key : NULL, NULL, &e) != 0) {
            fprintf(stderr, "auth_bench: handshake %d (%s): %s\n", i,
                    with_key ? "with the secret" : "without", e.msg);
            exit(1);
        }
        pd_conn_destroy(c);
    }
    double dt = pd_now() - t0;
    pthread_join(t, NULL);
    if (a.failed) {
        fprintf(stderr, "auth_bench: %d handshakes failed on the answering side\n", a.failed);
        exit(1);
    }
    return dt;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 300, rounds = argc > 2 ? atoi(argv[2]) : 7;
    if (n < 1 || rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: auth_bench [CONNECTIONS >= 1] [ROUNDS 1..100]\n");
        return 2;
    }
    pd_log_set_level(PD_LOG_ERROR); /* one line per connection otherwise */
    pd_key_random(&key);
    pd_err e = {0};
    if (pd_tcp_listen("127.0.0.1", 0, &lfd, bound, sizeof bound, &e) != 0) {
        fprintf(stderr, "auth_bench: %s\n", e.msg);
        return 1;
    }
    double plain[100], keyed[100], ratio[100];
    printf("auth_bench: %d loopback connections per figure, %d rounds\n", n, rounds);
    for (int r = 0; r < rounds; r++) {
        double p, k;
        if (r % 2) k = run(n, 1), p = run(n, 0);
        else p = run(n, 0), k = run(n, 1);
        plain[r] = p / n * 1e6, keyed[r] = k / n * 1e6, ratio[r] = k / p;
        printf("round %d: without a secret %.1f us per connection, with %.1f us (x%.2f)\n", r,
               plain[r], keyed[r], ratio[r]);
    }
    printf("median: without a secret %.1f us per connection, with %.1f us; with/without %.2f\n",
           bench_median(plain, rounds), bench_median(keyed, rounds), bench_median(ratio, rounds));
    close(lfd);
    return 0;
}
