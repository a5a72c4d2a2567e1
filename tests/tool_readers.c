/*
 * tool_readers.c - a worker for tests/it_readers.sh (not a test by
 * itself): who reads a link's replies (src/client/reader.c).  A caller waiting on a request to one server reads the replies
 * itself when nobody else does; the receiver thread reads the rest.  The
 * counters and probes of src/client/client_internal.h say who read what.
 *
 *   tool_readers own          (1 server, 1 worker: paramd local)
 *       1. 200 blocking pushes and 200 blocking pulls of 4 KiB: every
 *          reply read by its caller, the receiver thread never woken.
 *       2. An async pull of 32 MiB (more than the socket buffers and the
 *          shared-memory ring) completes while the caller does not wait:
 *          polled with a deadline, done before paramd_wait, read by the
 *          receiver thread; the same for an async push of 32 MiB.
 *       3. An async pull of 32 MiB waited for at once (the receiver
 *          thread reads it, or the caller if it waits first): exact values.
 *       4. 4 threads each doing 300 push+pull pairs (each on a block of its
 *          own) on one link, blocking or async+wait: exact values, every
 *          reply read once.
 *       5. A blocking sparse pull of 4M keys (32 MiB of keys out, 16 MiB of
 *          rows back, 16 frames): returns, with exact rows.
 *   tool_readers multi        (2 servers, 1 worker: paramd local)
 *       1. 200 blocking pushes and pulls of 4 KiB spanning both servers:
 *          every reply read by the caller, link after link, the receiver
 *          threads never woken.
 *       2. A blocking pull of 32 MiB over both servers (the receiver
 *          threads drain the large replies in parallel) and an async one
 *          left unwaited, which completes in the background: exact values.
 *   tool_readers handoff      (1 server, 2 worker slots; connects ranks 0
 *                             and 1 itself)
 *       Deterministic hand-offs on a sync table: thread A's pull (rank 0)
 *       waits at the server for rank 1's push, A reading the link; thread
 *       B's pull queues behind it as a follower; an async pull is flushed
 *       behind both.  Then rank 1 pushes: A reads its reply and hands the
 *       role to B, B reads its own and hands it to the receiver thread,
 *       which reads the async pull, done before it is waited for.
 *   tool_readers kill         (1 server, 2 worker slots, only rank 0
 *                             connects; the script kills the server)
 *       A blocking sync pull reads the link (it can never be answered),
 *       another waits as a follower, an async push is queued behind them;
 *       prints "reading", and once the server is killed all three must
 *       fail with a message naming server 0, a new pull must fail at once,
 *       and paramd_close must return.
 *   tool_readers close        (1 server, 1 worker)
 *       paramd_close with an async 32 MiB pull in flight and a small push
 *       in an outbox returns.
 * Each prints "<mode> ok: ..." and exits 0, or a message and 1.  No sleep
 * synchronises anything: waits poll a probe with a deadline.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "client/client_internal.h"
#include "common/common.h"
#include "paramd.h"

#define BLOCK 1024                 /* floats: 4 KiB */
#define BIG (8u << 20)             /* floats: 32 MiB, 32 chunks of 1 MiB */
#define BIG_CHUNKS 32
#define DEADLINE_S 60.0

#define MUST(c, call)                                                          \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_) CHECK_FAIL_("%s -> %s: %s", #call, paramd_err_name(rc_),      \
                             paramd_last_error(c));                            \
    } while (0)

static paramd_client *connect_rank(int rank) {
    char opt[32];
    paramd_client *c;
    if (rank >= 0) snprintf(opt, sizeof opt, "rank=%d", rank);
    int rc = paramd_connect(&c, rank >= 0 ? opt : NULL);
    if (rc) CHECK_FAIL_("connect: %s", paramd_last_error(NULL));
    return c;
}

/* Poll until r completes, at most DEADLINE_S seconds: 1 done, 0 not.  The
 * short sleeps only pace the polling; nothing depends on their length. */
static int poll_done(paramd_request *r) {
    double end = pd_now() + DEADLINE_S;
    struct timespec ts = {0, 1000000};
    while (!pd_request_done(r)) {
        if (pd_now() > end) return 0;
        nanosleep(&ts, NULL);
    }
    return 1;
}

/* Poll until link k of c has reader `who` and `followers` queued. */
static int poll_reader(paramd_client *c, int who, int followers) {
    double end = pd_now() + DEADLINE_S;
    struct timespec ts = {0, 1000000};
    for (;;) {
        int f;
        if (pd_client_link_reader(c, 0, &f) == who && f == followers) return 1;
        if (pd_now() > end) return 0;
        nanosleep(&ts, NULL);
    }
}

static pd_client_reads reads(paramd_client *c) {
    pd_client_reads r;
    pd_client_reads_get(c, &r);
    return r;
}

static void check_all(const float *v, uint64_t n, float (*want)(uint64_t),
                      const char *what) {
    for (uint64_t i = 0; i < n; i++)
        if (v[i] != want(i))
            CHECK_FAIL_("%s: element %llu is %g, expected %g", what,
                        (unsigned long long)i, v[i], want(i));
}

/* ==== own =============================================================== */

/* "a" after step 1 (25 pushes of 1 on each of the first 8 blocks) and the
 * whole-table push of i % 4096. */
static float want_a(uint64_t i) { return (float)((i < 8 * BLOCK ? 25 : 0) + i % 4096); }
/* ... and after the second whole-table push */
static float want_a2(uint64_t i) { return (float)((i < 8 * BLOCK ? 25 : 0) + 2 * (i % 4096)); }

#define NT 4
#define ITERS 300
#define SP_KEYS (4u << 20) /* keys of a sparse pull: 32 MiB of keys */

typedef struct worker_arg {
    paramd_table *t;
    int part;
} worker_arg;

/* Thread `part` owns blocks part*ITERS.. of "m" (each element may be
 * pushed once per clock, and only one thread may move the clock): pair i
 * pushes i + 1 to its block i, then pulls it back; every 4th pair through
 * the async calls. */
static void *stress(void *arg) {
    worker_arg *w = arg;
    paramd_client *c = NULL;
    float one[BLOCK], got[BLOCK];
    for (int i = 0; i < ITERS; i++) {
        uint64_t off = ((uint64_t)w->part * ITERS + (uint64_t)i) * BLOCK;
        for (int j = 0; j < BLOCK; j++) one[j] = (float)(i + 1);
        if (i % 4 == 3) {
            paramd_request *p, *q;
            MUST(c, paramd_push_async(w->t, off, BLOCK, one, &p));
            MUST(c, paramd_wait(p));
            MUST(c, paramd_pull_async(w->t, off, BLOCK, got, &q));
            MUST(c, paramd_wait(q));
        } else {
            MUST(c, paramd_push(w->t, off, BLOCK, one));
            MUST(c, paramd_pull(w->t, off, BLOCK, got));
        }
        for (int j = 0; j < BLOCK; j++)
            if (got[j] != (float)(i + 1))
                CHECK_FAIL_("thread %d, pair %d: element %d is %g, expected %d",
                            w->part, i, j, got[j], i + 1);
    }
    return NULL;
}

static int own_mode(void) {
    paramd_client *c = connect_rank(-1);
    CHECK_INT_EQ(paramd_num_servers(c), 1);
    paramd_table *a, *m;
    MUST(c, paramd_table_open(c, "a", BIG, "rule=add consistency=async", NULL, &a));
    MUST(c, paramd_table_open(c, "m", (uint64_t)NT * ITERS * BLOCK,
                              "rule=add consistency=async", NULL, &m));
    float *v = malloc(BIG * sizeof *v), *g = malloc(BIG * sizeof *g);
    CHECK(v && g);

    /* 1. blocking calls: read by their caller, no receiver wake-up */
    pd_client_reads r0 = reads(c);
    float one[BLOCK], got[BLOCK];
    for (int j = 0; j < BLOCK; j++) one[j] = 1.0f;
    for (int i = 0; i < 200; i++) {
        uint64_t off = (uint64_t)(i % 8) * BLOCK;
        MUST(c, paramd_push(a, off, BLOCK, one));
        paramd_clock(c); /* an element is pushed once per clock */
        MUST(c, paramd_pull(a, off, BLOCK, got));
        for (int j = 0; j < BLOCK; j++)
            if (got[j] != (float)(i / 8 + 1))
                CHECK_FAIL_("blocking pull %d: element %d is %g, expected %d", i, j,
                            got[j], i / 8 + 1);
    }
    pd_client_reads r1 = reads(c);
    CHECK_INT_EQ(r1.by_caller - r0.by_caller, 400);
    CHECK_INT_EQ(r1.by_rx - r0.by_rx, 0);
    CHECK_INT_EQ(r1.rx_wakes - r0.rx_wakes, 0);
    CHECK_INT_EQ(pd_client_link_reader(c, 0, NULL), PD_READER_NONE);
    printf("blocking: 400 replies read by their callers, receiver woken 0 times\n");

    /* 2. async requests left unwaited complete in the background */
    for (uint64_t i = 0; i < BIG; i++) g[i] = (float)(i % 4096);
    MUST(c, paramd_push(a, 0, BIG, g)); /* blocking, 32 chunks: the caller's */
    paramd_clock(c);
    pd_client_reads r2 = reads(c);
    CHECK_INT_EQ(r2.by_caller - r1.by_caller, BIG_CHUNKS);
    paramd_request *req;
    memset(v, 0xff, BIG * sizeof *v);
    MUST(c, paramd_pull_async(a, 0, BIG, v, &req));
    if (!poll_done(req)) CHECK_FAIL_("an async pull of 32 MiB not waited for did not complete");
    pd_client_reads r3 = reads(c);
    CHECK_INT_EQ(r3.by_rx - r2.by_rx, BIG_CHUNKS);
    CHECK_INT_EQ(r3.by_caller - r2.by_caller, 0);
    CHECK(r3.rx_wakes > r2.rx_wakes);
    MUST(c, paramd_wait(req));
    check_all(v, BIG, want_a, "background pull");
    MUST(c, paramd_push_async(a, 0, BIG, g, &req));
    if (!poll_done(req)) CHECK_FAIL_("an async push of 32 MiB not waited for did not complete");
    pd_client_reads r4 = reads(c);
    CHECK_INT_EQ(r4.by_rx - r3.by_rx, BIG_CHUNKS);
    CHECK_INT_EQ(r4.by_caller - r3.by_caller, 0);
    MUST(c, paramd_wait(req));
    paramd_clock(c);
    printf("background: an async pull and push of 32 MiB completed unwaited, "
           "%d replies each read by the receiver thread\n", BIG_CHUNKS);

    /* 3. waited for at once: whoever reads, the values are exact */
    memset(v, 0xff, BIG * sizeof *v);
    MUST(c, paramd_pull_async(a, 0, BIG, v, &req));
    MUST(c, paramd_wait(req));
    check_all(v, BIG, want_a2, "pull waited at once");
    pd_client_reads r5 = reads(c);
    CHECK_INT_EQ((r5.by_rx - r4.by_rx) + (r5.by_caller - r4.by_caller), BIG_CHUNKS);
    printf("async pull waited at once: %llu replies read by the receiver thread, "
           "%llu by the caller\n", (unsigned long long)(r5.by_rx - r4.by_rx),
           (unsigned long long)(r5.by_caller - r4.by_caller));

    /* 4. several threads waiting on one link */
    pthread_t th[NT];
    worker_arg wa[NT];
    for (int k = 0; k < NT; k++) {
        wa[k] = (worker_arg){m, k};
        CHECK(pthread_create(&th[k], NULL, stress, &wa[k]) == 0);
    }
    for (int k = 0; k < NT; k++) pthread_join(th[k], NULL);
    pd_client_reads r6 = reads(c);
    CHECK_INT_EQ((r6.by_rx - r5.by_rx) + (r6.by_caller - r5.by_caller), NT * ITERS * 2);
    CHECK(r6.by_caller > r5.by_caller);
    printf("%d threads x %d push+pull pairs on one link: exact; replies read by "
           "callers %llu, by the receiver thread %llu; role handed to a waiting "
           "caller %llu times\n", NT, ITERS,
           (unsigned long long)(r6.by_caller - r5.by_caller),
           (unsigned long long)(r6.by_rx - r5.by_rx),
           (unsigned long long)(r6.handoffs - r5.handoffs));
    /* 5. a blocking sparse pull whose keys (32 MiB) and rows (16 MiB) are
     * both more than the buffers hold: the replies must be read while the
     * caller still writes keys (the server stops reading while its
     * replies wait), else this never returns. */
    paramd_table *sp;
    MUST(c, paramd_sparse_open(c, "sp", 1, "rule=add consistency=async", &sp));
    uint64_t *keys = malloc(SP_KEYS * sizeof *keys);
    float *rows = malloc(SP_KEYS * sizeof *rows);
    CHECK(keys && rows);
    for (uint64_t i = 0; i < SP_KEYS; i++) keys[i] = i < 1024 ? i : (i * 7919) % 1024;
    for (uint64_t i = 0; i < 1024; i++) rows[i] = (float)i;
    MUST(c, paramd_sparse_push(sp, keys, 1024, rows));
    paramd_clock(c);
    memset(rows, 0xff, SP_KEYS * sizeof *rows);
    MUST(c, paramd_sparse_pull(sp, keys, SP_KEYS, rows));
    for (uint64_t i = 0; i < SP_KEYS; i++)
        if (rows[i] != (float)keys[i])
            CHECK_FAIL_("sparse pull: row %llu (key %llu) is %g", (unsigned long long)i,
                        (unsigned long long)keys[i], rows[i]);
    printf("a blocking sparse pull of %u keys (1 float each) returned exact rows\n", SP_KEYS);
    free(keys);
    free(rows);
    free(v);
    free(g);
    MUST(c, paramd_close(c));
    printf("own ok\n");
    return 0;
}

/* ==== multi ============================================================= */

static float want_iota(uint64_t i) { return (float)(i % 4096); }

static int multi_mode(void) {
    paramd_client *c = connect_rank(-1);
    CHECK_INT_EQ(paramd_num_servers(c), 2);
    paramd_table *a;
    MUST(c, paramd_table_open(c, "a", BIG, "rule=add consistency=async", NULL, &a));
    float *v = malloc(BIG * sizeof *v), *g = malloc(BIG * sizeof *g);
    CHECK(v && g);
    /* 1. a 4 KiB range across the boundary between the two shards */
    uint64_t mid = BIG / 2 - BLOCK / 2;
    float one[BLOCK], got[BLOCK];
    for (int j = 0; j < BLOCK; j++) one[j] = 1.0f;
    pd_client_reads r0 = reads(c);
    for (int i = 0; i < 200; i++) {
        MUST(c, paramd_push(a, mid, BLOCK, one));
        paramd_clock(c);
        MUST(c, paramd_pull(a, mid, BLOCK, got));
        for (int j = 0; j < BLOCK; j++)
            if (got[j] != (float)(i + 1))
                CHECK_FAIL_("pull %d across both servers: element %d is %g", i, j, got[j]);
    }
    pd_client_reads r1 = reads(c);
    CHECK_INT_EQ(r1.by_caller - r0.by_caller, 800); /* 2 servers x 400 calls */
    CHECK_INT_EQ(r1.by_rx - r0.by_rx, 0);
    CHECK_INT_EQ(r1.rx_wakes - r0.rx_wakes, 0);
    printf("blocking across 2 servers: 800 replies read by their callers, "
           "receivers woken 0 times\n");
    /* 2. large ones: whole-table push and pull, blocking, then async */
    for (uint64_t i = 0; i < BIG; i++) g[i] = (float)(i % 4096);
    MUST(c, paramd_push(a, 0, BIG, g));
    paramd_clock(c);
    MUST(c, paramd_push(a, mid, BLOCK, g + mid)); /* undo step 1's 200: */
    paramd_clock(c);
    for (int j = 0; j < BLOCK; j++) one[j] = -200.0f - g[mid + (uint64_t)j];
    MUST(c, paramd_push(a, mid, BLOCK, one));
    paramd_clock(c);
    memset(v, 0xff, BIG * sizeof *v);
    MUST(c, paramd_pull(a, 0, BIG, v));
    check_all(v, BIG, want_iota, "blocking pull of 32 MiB over 2 servers");
    paramd_request *req;
    memset(v, 0xff, BIG * sizeof *v);
    MUST(c, paramd_pull_async(a, 0, BIG, v, &req));
    if (!poll_done(req)) CHECK_FAIL_("an async pull over 2 servers did not complete unwaited");
    MUST(c, paramd_wait(req));
    check_all(v, BIG, want_iota, "async pull of 32 MiB over 2 servers");
    pd_client_reads r2 = reads(c);
    printf("32 MiB over 2 servers, blocking and async: exact; replies read by "
           "callers %llu, by receiver threads %llu\n",
           (unsigned long long)(r2.by_caller - r1.by_caller),
           (unsigned long long)(r2.by_rx - r1.by_rx));
    free(v);
    free(g);
    MUST(c, paramd_close(c));
    printf("multi ok\n");
    return 0;
}

/* ==== handoff =========================================================== */

/* A thread's pull.  (Its error text is read once both threads are done:
 * paramd_last_error is the client's, not the thread's.) */
typedef struct puller {
    paramd_table *t;
    uint64_t off;
    float v[BLOCK / 2];
    int rc;
} puller;

static void *pull_half(void *arg) {
    puller *p = arg;
    p->rc = paramd_pull(p->t, p->off, BLOCK / 2, p->v);
    return NULL;
}

static float want_two(uint64_t i) { return (void)i, 2.0f; }
static float want_zero(uint64_t i) { return (void)i, 0.0f; }

static int handoff_mode(void) {
    paramd_client *c0 = connect_rank(0), *c1 = connect_rank(1);
    CHECK_INT_EQ(paramd_num_servers(c0), 1);
    CHECK_INT_EQ(paramd_num_workers(c0), 2);
    paramd_table *s0, *s1, *x;
    MUST(c0, paramd_table_open(c0, "s", BLOCK, "rule=add consistency=sync", NULL, &s0));
    MUST(c0, paramd_table_open(c0, "x", BLOCK, "rule=add consistency=async", NULL, &x));
    MUST(c1, paramd_table_open(c1, "s", BLOCK, "rule=add consistency=sync", NULL, &s1));
    float g[BLOCK], xv[BLOCK];
    for (int j = 0; j < BLOCK; j++) g[j] = 1.0f;
    MUST(c0, paramd_push(s0, 0, BLOCK, g)); /* rank 0's clock 0 */
    paramd_clock(c0);
    pd_client_reads r0 = reads(c0);
    CHECK_INT_EQ(pd_client_link_reader(c0, 0, NULL), PD_READER_NONE);

    /* A: waits at the server for clock 0, reading the link */
    puller A = {s0, 0, {0}, 0}, B = {s0, BLOCK / 2, {0}, 0};
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, pull_half, &A) == 0);
    if (!poll_reader(c0, PD_READER_CALLER, 0)) CHECK_FAIL_("thread A never read the link");
    /* B: queues as a follower */
    CHECK(pthread_create(&tb, NULL, pull_half, &B) == 0);
    if (!poll_reader(c0, PD_READER_CALLER, 1)) CHECK_FAIL_("thread B never queued");
    /* an async pull behind both (small: through the outbox) */
    paramd_request *xr;
    memset(xv, 0xff, sizeof xv);
    MUST(c0, paramd_pull_async(x, 0, BLOCK, xv, &xr));
    paramd_flush(c0);
    CHECK_INT_EQ(pd_client_link_reader(c0, 0, NULL), PD_READER_CALLER);
    CHECK(!pd_request_done(xr));

    /* rank 1's push applies clock 0: the server answers A, B, the pull */
    for (int j = 0; j < BLOCK; j++) g[j] = 3.0f;
    MUST(c1, paramd_push(s1, 0, BLOCK, g));
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (A.rc || B.rc)
        CHECK_FAIL_("sync pulls failed: %s %s: %s", paramd_err_name(A.rc),
                    paramd_err_name(B.rc), paramd_last_error(c0));
    check_all(A.v, BLOCK / 2, want_two, "thread A's pull");
    check_all(B.v, BLOCK / 2, want_two, "thread B's pull");
    if (!poll_done(xr)) CHECK_FAIL_("the async pull behind them did not complete unwaited");
    pd_client_reads r1 = reads(c0);
    MUST(c0, paramd_wait(xr));
    check_all(xv, BLOCK, want_zero, "the async pull");
    CHECK_INT_EQ(r1.by_caller - r0.by_caller, 2);
    CHECK_INT_EQ(r1.handoffs - r0.handoffs, 1);
    CHECK_INT_EQ(r1.rx_wakes - r0.rx_wakes, 1);
    CHECK_INT_EQ(r1.by_rx - r0.by_rx, 1);
    /* the receiver thread gives the role up once the FIFO is empty */
    if (!poll_reader(c0, PD_READER_NONE, 0)) CHECK_FAIL_("the receiver thread kept the role");
    paramd_clock(c1);
    MUST(c1, paramd_close(c1));
    MUST(c0, paramd_close(c0));
    printf("handoff ok: A read its reply and handed the role to B, B read its "
           "own and handed it to the receiver thread, which read the async pull\n");
    return 0;
}

/* ==== kill ============================================================== */

static int kill_mode(void) {
    paramd_client *c = connect_rank(0);
    CHECK_INT_EQ(paramd_num_workers(c), 2);
    paramd_table *s, *x;
    MUST(c, paramd_table_open(c, "s", BLOCK, "rule=add consistency=sync", NULL, &s));
    MUST(c, paramd_table_open(c, "x", BLOCK, "rule=add consistency=async", NULL, &x));
    float g[BLOCK];
    for (int j = 0; j < BLOCK; j++) g[j] = 1.0f;
    MUST(c, paramd_push(s, 0, BLOCK, g));
    paramd_clock(c); /* clock 1: waits for rank 1, who never comes */
    puller A = {s, 0, {0}, 0}, B = {s, BLOCK / 2, {0}, 0};
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, pull_half, &A) == 0);
    if (!poll_reader(c, PD_READER_CALLER, 0)) CHECK_FAIL_("thread A never read the link");
    CHECK(pthread_create(&tb, NULL, pull_half, &B) == 0);
    if (!poll_reader(c, PD_READER_CALLER, 1)) CHECK_FAIL_("thread B never queued");
    paramd_request *xr;
    MUST(c, paramd_push_async(x, 0, BLOCK, g, &xr));
    paramd_flush(c);
    printf("reading\n");
    fflush(stdout);
    /* the script kills the server now */
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (!A.rc || !B.rc) CHECK_FAIL_("a pull succeeded with its server killed");
    char msg[512];
    snprintf(msg, sizeof msg, "%s", paramd_last_error(c));
    if (!strstr(msg, "server 0"))
        CHECK_FAIL_("the message does not name the server: '%s'", msg);
    int rc = paramd_wait(xr);
    if (!rc || !strstr(paramd_last_error(c), "server 0"))
        CHECK_FAIL_("the async push behind them: %s '%s'", paramd_err_name(rc),
                    paramd_last_error(c));
    float v[BLOCK];
    rc = paramd_pull(x, 0, BLOCK, v);
    if (!rc || !strstr(paramd_last_error(c), "server 0"))
        CHECK_FAIL_("a pull after the failure: %s '%s'", paramd_err_name(rc),
                    paramd_last_error(c));
    pd_client_reads r = reads(c);
    paramd_close(c); /* may say the coordinator is gone: it only must return */
    printf("kill ok: reader, follower and queued request failed: %s (%s); "
           "replies read by callers %llu, receiver %llu\n",
           msg, paramd_err_name(A.rc), (unsigned long long)r.by_caller,
           (unsigned long long)r.by_rx);
    return 0;
}

/* ==== close ============================================================= */

static int close_mode(void) {
    paramd_client *c = connect_rank(-1);
    paramd_table *a;
    MUST(c, paramd_table_open(c, "a", BIG, "rule=add consistency=async", NULL, &a));
    float *v = malloc(BIG * sizeof *v), g[BLOCK] = {0};
    CHECK(v);
    paramd_request *p, *q;
    MUST(c, paramd_pull_async(a, 0, BIG, v, &p));
    MUST(c, paramd_push_async(a, 0, BLOCK, g, &q)); /* small: in the outbox */
    MUST(c, paramd_close(c));
    printf("close ok: paramd_close returned with a 32 MiB pull in flight\n");
    fflush(stdout);
    /* The two handles were never waited for: paramd_close has finished with
     * them but they are the caller's memory.  Leave without the leak check
     * (they cannot be waited for after the close). */
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "own")) return own_mode();
    if (argc == 2 && !strcmp(argv[1], "multi")) return multi_mode();
    if (argc == 2 && !strcmp(argv[1], "handoff")) return handoff_mode();
    if (argc == 2 && !strcmp(argv[1], "kill")) return kill_mode();
    if (argc == 2 && !strcmp(argv[1], "close")) return close_mode();
    fprintf(stderr, "usage: tool_readers own|multi|handoff|kill|close\n");
    return 2;
}
