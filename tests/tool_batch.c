/*
 * tool_batch.c - a worker for tests/it_batch.sh (not a test by itself):
 * many small requests, coalesced into BATCH frames or not, must give
 * exactly the values and errors that one frame per request gives.
 *
 *   tool_batch COALESCE_BYTES THREADS
 *
 * Connects with coalesce_bytes=COALESCE_BYTES (0: off).  Every worker
 * (rank r, g = r + 1; G = the sum of g over the W workers) then, all
 * values integers so that float sums are exact:
 *   1. sync table "bs" (4 blocks of 1024 floats, aggregate=sum): T clocks
 *      of 4 async pushes of 4 KiB (g), wait, clock, then a blocking pull
 *      (sync: not coalesced) that must see exactly (c+1) * G.
 *   2. async table "ba" (64 blocks of 1024 floats): R rounds of a window
 *      of 64 async pushes of 4 KiB (g), one per block, issued by THREADS
 *      threads at once, each round with small async pulls of 16 floats in
 *      between (each value an integer in [0, R*G]); wait for all, clock.
 *      In round 5 one more push of block 3, a duplicate in its clock,
 *      must fail alone with PARAMD_EDUP and the server's message, while
 *      the 64 others apply.
 *   3. async sparse table "sp" (dim 16): R2 rounds of 8 async pushes of 8
 *      keys (rows of g), and async pulls of 8 keys, waited together.
 *   4. after a barrier: 64 async pulls of 4 KiB must read R*G everywhere,
 *      8 async sparse pulls R2*G in every row.
 *   5. after a barrier, rank 0 reads the servers' STATS and checks the
 *      BATCH counters: with coalescing on, batches > 0 and at least 90% of
 *      the W*R*64 async pushes went inside batches; off, none did.
 * It also checks that a bad coalesce_bytes= is refused with a message.
 * Prints "batch ok: ..." and exits 0, or a message and 1.
 *
 *   tool_batch flush
 *
 * paramd_flush sends small async requests without a wait (see flush_mode).
 *
 *   tool_batch lost
 *
 * Against a server started with --fault send_fail=3 (its HELLO and
 * TABLE_CREATE replies go out, the reply to the first BATCH does not, and
 * the connection closes): 16 async 4 KiB pushes and 4 small pulls, all in
 * batches, must each fail with an error naming the server; none may hang
 * and the process may not crash.  Prints "batch lost ok: ...".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "rawpeer.h"
#include "net/conn.h"
#include "paramd.h"

#define BLOCK 1024       /* floats per dense push: 4 KiB */
#define NB 64            /* blocks of "ba": a window of 64 pushes */
#define R 32             /* rounds of "ba": 2048 pushes per worker */
#define T 40             /* clocks of "bs" */
#define SB 4             /* blocks of "bs" */
#define DIM 16           /* "sp" rows */
#define NK 64            /* "sp" keys */
#define R2 20            /* rounds of "sp" */
#define DUP_ROUND 5

static paramd_client *c;

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "FAIL rank %d: ", c ? paramd_rank(c) : -1);            \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        exit(1);                                                               \
    } while (0)

#define MUST(call)                                                             \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_) FAIL("%s:%d: %s -> %s: %s", __FILE__, __LINE__, #call,        \
                      paramd_err_name(rc_), paramd_last_error(c));             \
    } while (0)

/* ==== STATS of every server (as a tool, through the coordinator's map) == */

static void server_counters(long long *batches, long long *batched) {
    static char text[PD_MAX_CTRL_PAYLOAD + 1];
    pd_map m;
    *batches = *batched = 0;
    rp_map(getenv("PARAMD_COORDINATOR"), &m);
    for (uint32_t k = 0; k < m.S; k++) {
        rp_stats(m.addr[k], 0, text);
        const char *p = strstr(text, " batches ");
        long long x, y;
        if (!p || sscanf(p, " batches %lld batched %lld", &x, &y) != 2)
            FAIL("server %u's STATS has no batch counters: %s", k, text);
        printf("server %u: batches %lld batched %lld\n", k, x, y);
        *batches += x, *batched += y;
    }
    pd_map_free(&m);
}

/* ==== The async window, from several threads ============================ */

typedef struct window {
    paramd_table *t;
    int part, nparts;
    const float *g;
    float peek[NB][16];          /* small pulls, one per block of this part */
    paramd_request *push[NB], *pull[NB];
} window;

static void *issue(void *arg) {
    window *w = arg;
    for (int b = w->part; b < NB; b += w->nparts) {
        MUST(paramd_push_async(w->t, (uint64_t)b * BLOCK, BLOCK, w->g, &w->push[b]));
        if (b % 4 == 0)
            MUST(paramd_pull_async(w->t, (uint64_t)b * BLOCK + 8, 16, w->peek[b], &w->pull[b]));
    }
    return NULL;
}

/* Wait for this part's requests and check the small pulls. */
static void *finish(void *arg) {
    window *w = arg;
    for (int b = w->part; b < NB; b += w->nparts) {
        MUST(paramd_wait(w->push[b]));
        if (!w->pull[b]) continue;
        MUST(paramd_wait(w->pull[b]));
        w->pull[b] = NULL;
        for (int i = 0; i < 16; i++) {
            float v = w->peek[b][i];
            if (v != (float)(long)v || v < 0 || v > 1e6)
                FAIL("a small pull of block %d read %g, not a sum of pushes", b, v);
        }
    }
    return NULL;
}

/* tool_batch lost: the link breaks with batches in flight. */
static int lost(void) {
    if (paramd_connect(&c, NULL)) FAIL("connect: %s", paramd_last_error(NULL));
    paramd_table *t;
    static float g[BLOCK], v[4][16];
    paramd_request *q[20];
    MUST(paramd_table_open(c, "lost", 16 * BLOCK, "rule=add", NULL, &t));
    for (int b = 0; b < 16; b++)
        MUST(paramd_push_async(t, (uint64_t)b * BLOCK, BLOCK, g, &q[b]));
    for (int k = 0; k < 4; k++) MUST(paramd_pull_async(t, (uint64_t)k * 16, 16, v[k], &q[16 + k]));
    int failed = 0;
    for (int k = 0; k < 20; k++) {
        int rc = paramd_wait(q[k]);
        if (rc == 0) FAIL("request %d succeeded after its batch's reply was lost", k);
        if (!strstr(paramd_last_error(c), "server 0"))
            FAIL("request %d: %s: '%s' does not name the server", k, paramd_err_name(rc),
                 paramd_last_error(c));
        if (k == 0) printf("first: %s: %s\n", paramd_err_name(rc), paramd_last_error(c));
        failed++;
    }
    /* later requests to the dead link fail at once, in or out of batches */
    paramd_request *r2;
    MUST(paramd_push_async(t, 0, BLOCK, g, &r2));
    if (paramd_wait(r2) == 0) FAIL("a push to a dead link succeeded");
    if (paramd_push(t, 0, 16 * BLOCK, g) == 0) FAIL("a blocking push to a dead link succeeded");
    printf("batch lost ok: %d requests failed with the link\n", failed);
    paramd_close(c);
    return 0;
}

/* tool_batch flush: paramd_flush sends what waits in the outboxes at
 * once.  64 async 4 KiB pushes sit in the outbox (coalescing on) until
 * paramd_flush; the servers' batched counter must then reach 64 while
 * nobody waits on them (polled through STATS for up to 20 s: without the
 * flush they would never leave the outbox and this fails). */
static int flush_mode(void) {
    if (paramd_connect(&c, NULL)) FAIL("connect: %s", paramd_last_error(NULL));
    paramd_table *t;
    static float g[BLOCK];
    paramd_request *q[NB];
    long long b0, n0, b1, n1;
    MUST(paramd_table_open(c, "flush", NB * BLOCK, "rule=add", NULL, &t));
    server_counters(&b0, &n0);
    for (int b = 0; b < NB; b++) MUST(paramd_push_async(t, (uint64_t)b * BLOCK, BLOCK, g, &q[b]));
    paramd_flush(c);
    paramd_flush(NULL); /* harmless */
    double end = pd_now() + 20;
    do {
        server_counters(&b1, &n1);
    } while (n1 - n0 < NB && pd_now() < end);
    if (n1 - n0 < NB) FAIL("after paramd_flush the servers saw %lld of %d pushes", n1 - n0, NB);
    for (int b = 0; b < NB; b++) MUST(paramd_wait(q[b]));
    printf("batch flush ok: %lld pushes in %lld batches before any wait\n", n1 - n0, b1 - b0);
    paramd_close(c);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "lost")) return lost();
    if (argc == 2 && !strcmp(argv[1], "flush")) return flush_mode();
    if (argc != 3) {
        fprintf(stderr, "usage: tool_batch COALESCE_BYTES THREADS\n");
        return 2;
    }
    int coalesce = atoi(argv[1]), nthreads = atoi(argv[2]);
    if (nthreads < 1 || nthreads > 8) FAIL("THREADS must be 1..8");
    /* a bad value is refused before anything connects */
    paramd_client *bad = NULL;
    int rc = paramd_connect(&bad, "coalesce_bytes=7");
    if (rc != PARAMD_EINVAL || bad ||
        !strstr(paramd_last_error(NULL), "coalesce_bytes=7 is not 0 (off) or 64..65536"))
        FAIL("coalesce_bytes=7 gave %s: %s", paramd_err_name(rc), paramd_last_error(NULL));
    rc = paramd_connect(&bad, "coalesce_bytes=lots");
    if (rc != PARAMD_EINVAL) FAIL("coalesce_bytes=lots accepted");
    char opt[64];
    snprintf(opt, sizeof opt, "coalesce_bytes=%d", coalesce);
    if (paramd_connect(&c, opt)) FAIL("connect: %s", paramd_last_error(NULL));
    int r = paramd_rank(c), W = paramd_num_workers(c);
    float G = (float)(W * (W + 1) / 2), g1 = (float)(r + 1);
    static float g[BLOCK], big[BLOCK], v[NB * BLOCK];
    for (int i = 0; i < BLOCK; i++) g[i] = g1, big[i] = 1000.0f;

    /* ---- 1. sync: pushes coalesced, pulls not ----------------------- */
    paramd_table *bs, *ba, *sp;
    MUST(paramd_table_open(c, "bs", SB * BLOCK, "rule=add consistency=sync aggregate=sum",
                           NULL, &bs));
    for (int ck = 0; ck < T; ck++) {
        paramd_request *q[SB];
        for (int b = 0; b < SB; b++)
            MUST(paramd_push_async(bs, (uint64_t)b * BLOCK, BLOCK, g, &q[b]));
        for (int b = 0; b < SB; b++) MUST(paramd_wait(q[b]));
        paramd_clock(c);
        MUST(paramd_pull(bs, 0, SB * BLOCK, v));
        for (int i = 0; i < SB * BLOCK; i++)
            if (v[i] != (float)(ck + 1) * G)
                FAIL("sync clock %d: element %d is %g, expected %g", ck, i, v[i],
                     (ck + 1) * G);
    }

    /* ---- 2. async windows of 64 pushes, several threads ------------- */
    MUST(paramd_table_open(c, "ba", NB * BLOCK, "rule=add consistency=async", NULL, &ba));
    window w[8];
    memset(w, 0, sizeof w);
    for (int round = 0; round < R; round++) {
        pthread_t th[8];
        for (int k = 0; k < nthreads; k++) {
            w[k].t = ba, w[k].part = k, w[k].nparts = nthreads, w[k].g = g;
            pthread_create(&th[k], NULL, issue, &w[k]);
        }
        for (int k = 0; k < nthreads; k++) pthread_join(th[k], NULL);
        paramd_request *dup = NULL;
        if (round == DUP_ROUND) /* block 3 again in this clock */
            MUST(paramd_push_async(ba, 3 * BLOCK, BLOCK, big, &dup));
        for (int k = 0; k < nthreads; k++) pthread_create(&th[k], NULL, finish, &w[k]);
        for (int k = 0; k < nthreads; k++) pthread_join(th[k], NULL);
        if (dup) {
            rc = paramd_wait(dup);
            if (rc != PARAMD_EDUP || !strstr(paramd_last_error(c), "server ") ||
                !strstr(paramd_last_error(c), "already pushed"))
                FAIL("the duplicate push gave %s: %s", paramd_err_name(rc),
                     paramd_last_error(c));
            printf("ok: a duplicate push in a window failed alone: %s\n", paramd_last_error(c));
        }
        paramd_clock(c);
    }

    /* ---- 3. sparse: small pushes and pulls --------------------------- */
    MUST(paramd_sparse_open(c, "sp", DIM, "rule=add consistency=async", &sp));
    uint64_t keys[NK];
    static float rows[NK * DIM], got[NK * DIM];
    for (int k = 0; k < NK; k++) keys[k] = (uint64_t)k * 7919 + 1;
    for (int i = 0; i < NK * DIM; i++) rows[i] = g1;
    for (int round = 0; round < R2; round++) {
        paramd_request *q[16];
        for (int j = 0; j < 8; j++) {
            MUST(paramd_sparse_push_async(sp, keys + 8 * j, 8, rows, &q[j]));
            MUST(paramd_sparse_pull_async(sp, keys + 8 * j, 8, got + 8 * j * DIM, &q[8 + j]));
        }
        for (int j = 0; j < 16; j++) MUST(paramd_wait(q[j]));
    }

    /* ---- 4. exact final values, read by small async pulls ------------ */
    MUST(paramd_barrier(c));
    paramd_request *q[NB];
    for (int b = 0; b < NB; b++)
        MUST(paramd_pull_async(ba, (uint64_t)b * BLOCK, BLOCK, v + b * BLOCK, &q[b]));
    for (int b = 0; b < NB; b++) MUST(paramd_wait(q[b]));
    for (int i = 0; i < NB * BLOCK; i++)
        if (v[i] != (float)R * G)
            FAIL("async element %d is %g, expected %g (%d rounds x %g)", i, v[i], R * G, R, G);
    for (int j = 0; j < 8; j++)
        MUST(paramd_sparse_pull_async(sp, keys + 8 * j, 8, got + 8 * j * DIM, &q[j]));
    for (int j = 0; j < 8; j++) MUST(paramd_wait(q[j]));
    for (int i = 0; i < NK * DIM; i++)
        if (got[i] != (float)R2 * G)
            FAIL("sparse row %d is %g, expected %g", i / DIM, got[i], R2 * G);

    /* ---- 5. did batches happen? -------------------------------------- */
    MUST(paramd_barrier(c));
    if (r == 0) {
        long long batches, batched, pushes = (long long)W * R * NB;
        server_counters(&batches, &batched);
        if (coalesce && (batches == 0 || batched < pushes * 9 / 10))
            FAIL("coalescing on, but the servers saw %lld batches holding %lld requests "
                 "(%lld small async pushes were made)", batches, batched, pushes);
        if (!coalesce && (batches || batched))
            FAIL("coalescing off, but the servers saw %lld batches", batches);
        printf("batches: %lld holding %lld requests\n", batches, batched);
    }
    printf("batch ok: rank %d of %d, %d servers, coalesce_bytes=%d, %d threads\n", r, W,
           paramd_num_servers(c), coalesce, nthreads);
    if (paramd_close(c)) FAIL("close: %s", paramd_last_error(c));
    return 0;
}
