/*
 * tool_sparse.c - a worker program for tests/it_sparse.sh (not a test by
 * itself): sparse tables on a live cluster.  It exits 0 when everything it
 * checked held, 1 with a message otherwise.
 *
 *   tool_sparse replay "SPEC" STEPS DUMP
 *       Table "emb" (dim 8) with SPEC.  Each worker, at every clock: pulls
 *       the rows of its next batch and checks them against a replay of
 *       every worker's pushes in this process (exact: gradients are
 *       multiples of 1/8, so sums do not depend on arrival order), then
 *       pushes the batch (keys drawn with many duplicates; in sync mode
 *       worker 1 pushes no keys every third clock), half the clocks
 *       through the async calls.  At the end rank 0 pulls keys 0..KS+99
 *       (the last 100 never touched: their initial rows), checks them,
 *       checks the counters (rows = KS + 100, keys_pushed), and writes
 *       every float's bits to DUMP, so that runs on 1 and on 3 servers can
 *       be compared byte for byte.
 *   tool_sparse hammer ITERS
 *       Async pushes with rule=add from every worker at once, several in
 *       flight per worker, batches cut into many frames (chunk_bytes=4096)
 *       with duplicates, pulls racing with them.  After a barrier rank 0
 *       checks every key holds exactly the sum of all pushes.
 *   tool_sparse api
 *       The API's error paths and corner cases (one worker).
 *   tool_sparse bad
 *       Lying, mis-sized and misdirected SPARSE_PUSH / SPARSE_PULL frames
 *       sent on raw connections to every server: each gets the expected
 *       error, the connection stays usable, and the table (its values and
 *       its row count) is unchanged.  Needs to be the only worker.
 *   tool_sparse toy ITERS
 *       The seed's toy on a sparse table (tests/it_server_replace.sh):
 *       table "st" (dim 4, rule=add, sync, mean), keys 0..TK-1; at every
 *       clock each worker pushes ones for every key and pulls them (a
 *       millisecond's pause between clocks).  At the end rank 0 prints
 *       each key's server and value: "key K server S value V".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hash.h"
#include "rawpeer.h"
#include "net/conn.h"
#include "paramd.h"
#include "table/rules.h"
#include "server/sparse.h"
#include "table/spec.h"
#include "wire/wire.h"

static paramd_client *c;

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                   \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        exit(1);                                                               \
    } while (0)

#define MUST(call)                                                             \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_)                                                               \
            FAIL("%s -> %s: %s", #call, paramd_err_name(rc_),                  \
                 paramd_last_error(c));                                        \
    } while (0)

#define EXPECT_ERR(call, code)                                                 \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ != (code))                                                     \
            FAIL("%s -> %s, expected %s (%s)", #call, paramd_err_name(rc_),    \
                 paramd_err_name(code), paramd_last_error(c));                 \
        printf("ok: %s -> %s: %s\n", #call, paramd_err_name(rc_),              \
               paramd_last_error(c));                                          \
    } while (0)

/* ==== Deterministic batches ============================================= */

enum { DIM = 8, KS = 3000, BMAX = 200 };

typedef struct batch {
    uint64_t n;
    uint64_t keys[BMAX];
    float g[BMAX * DIM];
} batch;

/* The batch of worker `rank` at clock `st`: the same in every process. */
static void batch_of(int rank, int st, int sync, batch *b) {
    uint64_t s = pd_mix64(((uint64_t)rank << 32) ^ (uint64_t)st ^ 0x5eed);
    b->n = 40 + (uint64_t)((st * 37 + rank * 11) % 150);
    if (sync && rank == 1 && st % 3 == 2) b->n = 0;
    for (uint64_t i = 0; i < b->n; i++) {
        s += PD_GOLDEN64;
        uint64_t x = pd_mix64(s);
        b->keys[i] = x % 16 == 0 ? 7 : x % KS; /* key 7: in most batches */
        for (int j = 0; j < DIM; j++) {
            s += PD_GOLDEN64;
            b->g[i * DIM + j] = (float)((int)(pd_mix64(s) % 17) - 8) / 8.0f;
        }
    }
}

/* ==== The replay: every worker's pushes, in this process ================ */

typedef struct ref {
    pd_table_def d;
    pd_rule rule;
    size_t k;
    int sync, W;
    uint8_t touched[KS + 100];
    uint64_t steps[KS + 100];
    float w[KS + 100][DIM];
    float *state; /* (KS+100) * k * DIM */
    float sum[KS + 100][DIM];
    uint8_t insum[KS + 100];
} ref;

static void ref_touch(ref *r, uint64_t key) {
    if (r->touched[key]) return;
    r->touched[key] = 1;
    pd_sparse_init_row(&r->d, key, r->w[key]);
    if (r->k) pd_rule_init_state(&r->rule, r->state + key * r->k * DIM, DIM);
}

static void ref_apply(ref *r, uint64_t key, const float *g) {
    ref_touch(r, key);
    pd_rule_apply(&r->rule, r->w[key], r->k ? r->state + key * r->k * DIM : NULL, g,
                  DIM, (int64_t)++r->steps[key]);
}

static void ref_init(ref *r, const char *spec) {
    pd_err e = {0};
    memset(r, 0, sizeof *r);
    r->d.kind = PD_TABLE_SPARSE;
    if (pd_spec_parse(spec, &r->d, &e)) FAIL("spec: %s", e.msg);
    r->d.n = DIM;
    if (!r->d.seed_given) FAIL("give seed= in the spec");
    r->rule.kind = (pd_rule_kind)r->d.rule;
    pd_spec_hyper(&r->d, &r->rule.hyper);
    r->k = pd_rule_state_floats(&r->rule);
    r->state = calloc((KS + 100) * (r->k ? r->k : 1) * DIM, sizeof(float));
    r->sync = r->d.consistency != PD_CONS_ASYNC;
}

/* Apply clock st: async (W = 1) push by push, sync the mean per key. */
static void ref_clock(ref *r, int st) {
    batch b;
    if (!r->sync) {
        batch_of(0, st, 0, &b);
        /* duplicates summed in request order, each distinct key once */
        float sum[KS][DIM];
        int first[KS];
        memset(first, -1, sizeof first);
        for (uint64_t i = 0; i < b.n; i++) {
            uint64_t k = b.keys[i];
            if (first[k] < 0) {
                first[k] = (int)i;
                memcpy(sum[k], b.g + i * DIM, sizeof sum[k]);
            } else {
                for (int j = 0; j < DIM; j++) sum[k][j] += b.g[i * DIM + j];
            }
        }
        for (uint64_t i = 0; i < b.n; i++)
            if (first[b.keys[i]] == (int)i) ref_apply(r, b.keys[i], sum[b.keys[i]]);
        return;
    }
    memset(r->insum, 0, sizeof r->insum);
    for (int w = 0; w < r->W; w++) {
        batch_of(w, st, 1, &b);
        for (uint64_t i = 0; i < b.n; i++) {
            uint64_t k = b.keys[i];
            ref_touch(r, k);
            if (!r->insum[k]) memset(r->sum[k], 0, sizeof r->sum[k]), r->insum[k] = 1;
            for (int j = 0; j < DIM; j++) r->sum[k][j] += b.g[i * DIM + j];
        }
    }
    float inv = r->d.aggregate == PD_AGG_MEAN && r->W > 1 ? 1.0f / (float)r->W : 1.0f;
    for (uint64_t k = 0; k < KS; k++) {
        if (!r->insum[k]) continue;
        if (inv != 1.0f)
            for (int j = 0; j < DIM; j++) r->sum[k][j] *= inv;
        ref_apply(r, k, r->sum[k]);
    }
}

static void check_rows(ref *r, const uint64_t *keys, uint64_t n, const float *rows,
                       const char *when) {
    for (uint64_t i = 0; i < n; i++) {
        ref_touch(r, keys[i]);
        if (memcmp(rows + i * DIM, r->w[keys[i]], DIM * sizeof(float)) != 0)
            FAIL("%s: key %llu is %.9g %.9g ..., the replay says %.9g %.9g ...", when,
                 (unsigned long long)keys[i], rows[i * DIM], rows[i * DIM + 1],
                 r->w[keys[i]][0], r->w[keys[i]][1]);
    }
}

static uint64_t stat(paramd_table *t, int32_t server, const char *name) {
    uint64_t v = 0;
    MUST(paramd_table_stat(t, server, name, &v));
    return v;
}

static int replay(const char *spec, int steps, const char *dump) {
    static ref r;
    static batch b;
    static float rows[BMAX * DIM];
    paramd_table *t;
    ref_init(&r, spec);
    r.W = paramd_num_workers(c);
    int me = paramd_rank(c);
    if (!r.sync && r.W != 1) FAIL("async replay needs one worker");
    MUST(paramd_sparse_open(c, "emb", DIM, spec, &t));
    if (paramd_table_dim(t) != DIM || paramd_table_size(t) != 0) FAIL("dim/size");
    uint64_t pushed = 0;
    for (int st = 0; st < steps; st++) {
        batch_of(me, st, r.sync, &b);
        /* pull what this step needs: sync waits for clock st-1 everywhere */
        if (st % 2) {
            paramd_request *q;
            MUST(paramd_sparse_pull_async(t, b.keys, b.n, rows, &q));
            MUST(paramd_wait(q));
        } else {
            MUST(paramd_sparse_pull(t, b.keys, b.n, rows));
        }
        char when[64];
        snprintf(when, sizeof when, "pull at clock %d", st);
        check_rows(&r, b.keys, b.n, rows, when);
        if (st % 2) {
            paramd_request *q;
            MUST(paramd_sparse_push_async(t, b.keys, b.n, b.g, &q));
            MUST(paramd_wait(q));
        } else {
            MUST(paramd_sparse_push(t, b.keys, b.n, b.g));
        }
        paramd_clock(c);
        ref_clock(&r, st);
    }
    for (int w = 0; w < r.W; w++)
        for (int st = 0; st < steps; st++) {
            batch_of(w, st, r.sync, &b);
            pushed += b.n;
        }
    MUST(paramd_barrier(c));
    if (me == 0) {
        enum { NK = KS + 100 };
        static uint64_t keys[NK];
        static float all[NK * DIM];
        for (uint64_t i = 0; i < NK; i++) keys[i] = NK - 1 - i; /* any order */
        MUST(paramd_sparse_pull(t, keys, NK, all));
        check_rows(&r, keys, NK, all, "final pull");
        uint64_t rows_held = stat(t, -1, "rows"), per = 0;
        for (int32_t k = 0; k < paramd_num_servers(c); k++) per += stat(t, k, "rows");
        if (rows_held != NK || per != NK)
            FAIL("servers hold %llu rows (%llu summed one by one), expected %d",
                 (unsigned long long)rows_held, (unsigned long long)per, NK);
        if (stat(t, -1, "keys_pushed") != pushed)
            FAIL("keys_pushed %llu, expected %llu", (unsigned long long)stat(t, -1, "keys_pushed"),
                 (unsigned long long)pushed);
        if (stat(t, -1, "dim") != DIM || stat(t, -1, "bytes") < NK * DIM * 4)
            FAIL("dim or bytes");
        FILE *f = fopen(dump, "w");
        if (!f) FAIL("cannot write %s", dump);
        for (uint64_t i = 0; i < NK; i++) {
            fprintf(f, "%llu", (unsigned long long)keys[i]);
            for (int j = 0; j < DIM; j++) {
                uint32_t u;
                memcpy(&u, &all[i * DIM + j], 4);
                fprintf(f, " %08x", u);
            }
            fputc('\n', f);
        }
        fclose(f);
        printf("replay ok: '%s' W=%d S=%d, %d clocks, %llu keys pushed, %d rows, "
               "every pull equal to the replay\n",
               spec, r.W, paramd_num_servers(c), steps, (unsigned long long)pushed, NK);
    }
    MUST(paramd_barrier(c)); /* the counters above before anyone leaves */
    return 0;
}

/* ==== Many workers, async, at once ====================================== */

enum { HK = 500, HB = 300, INFLIGHT = 4 };

static void hammer_batch(int rank, int it, uint64_t *keys, float *g) {
    uint64_t s = pd_mix64(((uint64_t)rank << 40) ^ (uint64_t)it ^ 0xabcdef);
    for (int i = 0; i < HB; i++) {
        s += PD_GOLDEN64;
        uint64_t x = pd_mix64(s);
        keys[i] = x % HK;
        for (int j = 0; j < DIM; j++) g[i * DIM + j] = (float)(1 + (x >> (8 + 2 * j)) % 3);
    }
}

static int hammer(int iters) {
    paramd_table *t;
    MUST(paramd_sparse_open(c, "hammer", DIM, "rule=add init=zeros", &t));
    int me = paramd_rank(c), W = paramd_num_workers(c);
    static uint64_t keys[INFLIGHT][HB], pk[64];
    static float g[INFLIGHT][HB * DIM], pr[64 * DIM];
    paramd_request *q[INFLIGHT] = {0};
    for (int it = 0; it < iters; it++) {
        int s = it % INFLIGHT;
        if (q[s]) MUST(paramd_wait(q[s]));
        hammer_batch(me, it, keys[s], g[s]);
        MUST(paramd_sparse_push_async(t, keys[s], HB, g[s], &q[s]));
        if (it % 10 == 0) { /* a pull racing with the pushes: sane values */
            for (int i = 0; i < 64; i++) pk[i] = (uint64_t)(i * 7) % HK;
            MUST(paramd_sparse_pull(t, pk, 64, pr));
            for (int i = 0; i < 64 * DIM; i++)
                if (pr[i] < 0 || pr[i] != floorf(pr[i])) FAIL("pulled %g", pr[i]);
        }
    }
    for (int s = 0; s < INFLIGHT; s++)
        if (q[s]) MUST(paramd_wait(q[s]));
    MUST(paramd_barrier(c));
    if (me == 0) {
        static double want[HK][DIM];
        static uint64_t all[HK], kk[HB];
        static float got[HK * DIM], gg[HB * DIM];
        for (int w = 0; w < W; w++)
            for (int it = 0; it < iters; it++) {
                hammer_batch(w, it, kk, gg);
                for (int i = 0; i < HB; i++)
                    for (int j = 0; j < DIM; j++) want[kk[i]][j] += gg[i * DIM + j];
            }
        for (int i = 0; i < HK; i++) all[i] = (uint64_t)i;
        MUST(paramd_sparse_pull(t, all, HK, got));
        double total = 0;
        for (int i = 0; i < HK; i++)
            for (int j = 0; j < DIM; j++) {
                if (got[i * DIM + j] != want[i][j])
                    FAIL("key %d[%d] = %.1f, expected %.1f: an update was lost", i, j,
                         got[i * DIM + j], want[i][j]);
                total += want[i][j];
            }
        printf("hammer ok: W=%d S=%d, %d async pushes of %d keys each, every sum "
               "exact (total %.0f)\n",
               W, paramd_num_servers(c), W * iters, HB, total);
    }
    MUST(paramd_barrier(c));
    return 0;
}

/* ==== The API's error paths ============================================= */

static int api(void) {
    paramd_table *t, *t2, *d;
    float rows[4 * DIM], g[4 * DIM];
    uint64_t keys[4] = {5, 5, 5, 9};
    EXPECT_ERR(paramd_sparse_open(c, "e", 0, NULL, &t), PARAMD_EINVAL);
    EXPECT_ERR(paramd_sparse_open(c, "e", 65537, NULL, &t), PARAMD_EINVAL);
    EXPECT_ERR(paramd_sparse_open(c, "e", DIM, "init=normal:-1", &t), PARAMD_EINVAL);
    EXPECT_ERR(paramd_table_open(c, "d", 10, "init=zeros", NULL, &d), PARAMD_EINVAL);
    MUST(paramd_sparse_open(c, "e", DIM, "rule=add init=uniform:1 seed=4", &t));
    /* the same table opened again; a different dim or spec is refused */
    MUST(paramd_sparse_open(c, "e", DIM, "seed=4 init=uniform:1.0", &t2));
    EXPECT_ERR(paramd_sparse_open(c, "e", DIM + 1, "rule=add init=uniform:1 seed=4", &t2),
               PARAMD_ESPEC);
    EXPECT_ERR(paramd_sparse_open(c, "e", DIM, "rule=add init=uniform:1 seed=5", &t2),
               PARAMD_ESPEC);
    EXPECT_ERR(paramd_table_open(c, "e", DIM, "rule=add", NULL, &t2), PARAMD_ESPEC);
    MUST(paramd_table_open(c, "d", 10, NULL, NULL, &d));
    EXPECT_ERR(paramd_sparse_open(c, "d", 10, NULL, &t2), PARAMD_ESPEC);
    /* dense calls on a sparse table and the other way round */
    EXPECT_ERR(paramd_pull(t, 0, 1, rows), PARAMD_EINVAL);
    EXPECT_ERR(paramd_push(t, 0, 1, rows), PARAMD_EINVAL);
    EXPECT_ERR(paramd_sparse_pull(d, keys, 1, rows), PARAMD_EINVAL);
    EXPECT_ERR(paramd_sparse_push(d, keys, 1, rows), PARAMD_EINVAL);
    EXPECT_ERR(paramd_sparse_pull(t, NULL, 1, rows), PARAMD_EINVAL);
    EXPECT_ERR(paramd_sparse_push(t, keys, 1, NULL), PARAMD_EINVAL);
    paramd_request *q = (paramd_request *)1;
    EXPECT_ERR(paramd_sparse_push_async(t, NULL, 1, g, &q), PARAMD_EINVAL);
    if (q != NULL) FAIL("a failed async call left a handle");
    if (paramd_table_dim(d) != 0 || paramd_table_dim(t) != DIM) FAIL("paramd_table_dim");
    /* nothing to do is fine, and creates no row */
    MUST(paramd_sparse_pull(t, NULL, 0, NULL));
    MUST(paramd_sparse_push(t, NULL, 0, NULL));
    MUST(paramd_sparse_push_async(t, NULL, 0, NULL, &q));
    MUST(paramd_wait(q));
    if (stat(t, -1, "rows") != 0) FAIL("rows without a touch");
    /* duplicates: key 5 three times, key 9 once; add: init + sum */
    pd_table_def def = {0};
    pd_err e = {0};
    def.kind = PD_TABLE_SPARSE;
    if (pd_spec_parse("rule=add init=uniform:1 seed=4", &def, &e)) FAIL("%s", e.msg);
    def.n = DIM;
    for (int i = 0; i < 4 * DIM; i++) g[i] = (float)(i % 5);
    MUST(paramd_sparse_push(t, keys, 4, g));
    MUST(paramd_sparse_pull(t, keys + 2, 2, rows));
    float init[DIM];
    pd_sparse_init_row(&def, 5, init);
    for (int j = 0; j < DIM; j++) {
        float want = init[j] + ((g[j] + g[DIM + j]) + g[2 * DIM + j]);
        if (rows[j] != want) FAIL("key 5[%d] = %.9g, expected %.9g", j, rows[j], want);
    }
    pd_sparse_init_row(&def, 9, init);
    for (int j = 0; j < DIM; j++)
        if (rows[DIM + j] != init[j] + g[3 * DIM + j]) FAIL("key 9[%d]", j);
    if (stat(t, -1, "rows") != 2) FAIL("rows %llu", (unsigned long long)stat(t, -1, "rows"));
    uint64_t v;
    EXPECT_ERR(paramd_table_stat(t, -1, "nonsense", &v), PARAMD_EINVAL);
    EXPECT_ERR(paramd_table_stat(t, 99, "rows", &v), PARAMD_EINVAL);
    EXPECT_ERR(paramd_table_stat(t, -1, "kind", &v), PARAMD_EINVAL);
    /* sync: one push per clock and server (with one worker the clock is
     * applied at once, so a second push is for an applied clock) */
    paramd_table *s;
    MUST(paramd_sparse_open(c, "s", DIM, "rule=add consistency=sync", &s));
    MUST(paramd_sparse_push(s, keys, 1, g));
    EXPECT_ERR(paramd_sparse_push(s, keys + 3, 1, g), PARAMD_ESTALE);
    paramd_clock(c);
    MUST(paramd_sparse_pull(s, keys, 1, rows));
    for (int j = 0; j < DIM; j++)
        if (rows[j] != g[j]) FAIL("sync key 5[%d] = %g", j, rows[j]);
    paramd_clock(c); /* clock 2 needs clock 1, which this worker did not push */
    EXPECT_ERR(paramd_sparse_pull(s, keys, 1, rows), PARAMD_EDEADLOCK);
    printf("api ok\n");
    return 0;
}

/* ==== Bad frames ======================================================== */

static uint8_t rbuf[PD_MAX_CTRL_PAYLOAD + 1];

static pd_conn *raw_connect(const char *addr, uint32_t role, int32_t rank) {
    pd_err e = {0};
    pd_conn *k = rp_dial(addr);
    if (rp_hello(k, role, rank, NULL, &e)) FAIL("HELLO %s: %s", addr, e.msg);
    return k;
}

/* A raw frame; returns the reply status (reading a reply payload of
 * `want` bytes into out on success). */
static int raw(pd_conn *k, uint16_t type, uint32_t table, const void *p, size_t n,
               void *out, size_t want) {
    pd_hdr h = {0}, rh;
    pd_err e = {0};
    static uint64_t id = 100;
    h.type = type, h.id = ++id, h.table = table;
    if (pd_send_frame(k, &h, p, n, NULL, 0, NULL, 0, &e)) return e.code;
    int rc = pd_recv_hdr(k, &rh, 1u << 30, &e);
    if (rc) return rc;
    if (rh.status < 0) {
        if (pd_recv_payload(k, &rh, rbuf, &e)) return PARAMD_EIO;
        printf("  %s: %s\n", paramd_err_name(rh.status), (char *)rbuf);
        return rh.status;
    }
    if (rh.len != want) FAIL("reply of %llu bytes, expected %zu", (unsigned long long)rh.len, want);
    return want ? pd_conn_read(k, out, want, 0, &e) : 0;
}

/* A SPARSE_PUSH/PULL payload: count `claim`, then nk keys, then nf floats. */
static size_t payload(uint8_t *p, uint64_t claim, const uint64_t *keys, size_t nk,
                      size_t nf) {
    memcpy(p, &claim, 8);
    memcpy(p + 8, keys, nk * 8);
    for (size_t i = 0; i < nf; i++) {
        float one = 1.0f;
        memcpy(p + 8 + nk * 8 + i * 4, &one, 4);
    }
    return 8 + nk * 8 + nf * 4;
}

static int bad(void) {
    paramd_table *t, *d;
    /* ids: the coordinator numbers tables in order of creation */
    MUST(paramd_sparse_open(c, "victim", 4, "rule=add init=normal:1 seed=9", &t));
    MUST(paramd_table_open(c, "dense", 16, NULL, NULL, &d));
    const uint32_t TID = 1, DID = 2;
    int S = paramd_num_servers(c), me = paramd_rank(c);
    rp_speak_for(c); /* raw worker connections show c's rank ticket */
    enum { NK = 64 };
    uint64_t keys[NK];
    float g[NK * 4], before[NK * 4], after[NK * 4];
    for (int i = 0; i < NK; i++) keys[i] = (uint64_t)i * 101;
    for (int i = 0; i < NK * 4; i++) g[i] = 0.5f;
    MUST(paramd_sparse_push(t, keys, NK, g));
    MUST(paramd_sparse_pull(t, keys, NK, before));
    uint64_t rows0 = stat(t, -1, "rows");
    /* the servers, from the coordinator's map */
    pd_conn *cc = raw_connect(getenv("PARAMD_COORDINATOR"), PD_ROLE_TOOL, -1);
    pd_hdr h = {0}, rh;
    pd_err e = {0};
    h.type = PD_MSG_MAP, h.id = 2;
    if (pd_rpc(cc, &h, NULL, 0, &rh, rbuf, &e)) FAIL("MAP: %s", e.msg);
    pd_conn_destroy(cc);
    pd_rd r;
    uint32_t u;
    uint64_t ep;
    char addr[16][PD_MAX_ADDR + 1];
    pd_rd_init(&r, rbuf, (size_t)rh.len);
    pd_get_u32(&r, &u), pd_get_u32(&r, &u), pd_get_u32(&r, &u), pd_get_u64(&r, &ep);
    for (int k = 0; k < S && k < 16; k++)
        if (pd_get_str(&r, addr[k], PD_MAX_ADDR)) FAIL("bad map");
    static uint8_t p[1 << 16];
    for (int k = 0; k < S && k < 16; k++) {
        pd_conn *w = raw_connect(addr[k], PD_ROLE_WORKER, me);
        uint64_t mine[3], other = 0;
        int nm = 0;
        for (uint64_t key = 0; nm < 3; key++)
            if (pd_sparse_server(key + 1000000, (uint32_t)S) == (uint32_t)k) mine[nm++] = key + 1000000;
        while (S > 1 && pd_sparse_server(other, (uint32_t)S) == (uint32_t)k) other++;
        float rows[3 * 4];
        struct {
            const char *what;
            uint16_t type;
            uint32_t table;
            uint64_t claim;
            size_t nk, nf;
            int want;
        } cases[] = {
            {"push: 5 keys claimed, 3 sent", PD_MSG_SPARSE_PUSH, TID, 5, 3, 12, PARAMD_EPROTO},
            {"push: 2 keys claimed, 3 sent", PD_MSG_SPARSE_PUSH, TID, 2, 3, 12, PARAMD_EPROTO},
            {"push: 2^61 keys claimed", PD_MSG_SPARSE_PUSH, TID, 1ull << 61, 3, 12, PARAMD_EPROTO},
            {"push: 2^64-1 keys claimed", PD_MSG_SPARSE_PUSH, TID, UINT64_MAX, 3, 12, PARAMD_EPROTO},
            {"push: rows of dim 5", PD_MSG_SPARSE_PUSH, TID, 3, 3, 15, PARAMD_EPROTO},
            {"push: rows of dim 3", PD_MSG_SPARSE_PUSH, TID, 3, 3, 9, PARAMD_EPROTO},
            {"push: no rows", PD_MSG_SPARSE_PUSH, TID, 3, 3, 0, PARAMD_EPROTO},
            {"push: unknown table", PD_MSG_SPARSE_PUSH, 4000, 3, 3, 12, PARAMD_ENOTABLE},
            {"push: table 0", PD_MSG_SPARSE_PUSH, 0, 3, 3, 12, PARAMD_ENOTABLE},
            {"push: a dense table", PD_MSG_SPARSE_PUSH, DID, 3, 3, 12, PARAMD_ENOTABLE},
            {"pull: 4 keys claimed, 3 sent", PD_MSG_SPARSE_PULL, TID, 4, 3, 0, PARAMD_EPROTO},
            {"pull: 3 keys and floats", PD_MSG_SPARSE_PULL, TID, 3, 3, 1, PARAMD_EPROTO},
            {"pull: 2^63 keys claimed", PD_MSG_SPARSE_PULL, TID, 1ull << 63, 3, 0, PARAMD_EPROTO},
            {"pull: unknown table", PD_MSG_SPARSE_PULL, 77, 3, 3, 0, PARAMD_ENOTABLE},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            size_t n = payload(p, cases[i].claim, mine, cases[i].nk, cases[i].nf);
            int rc = raw(w, cases[i].type, cases[i].table, p, n, NULL, 0);
            if (rc != cases[i].want)
                FAIL("server %d, %s: %s, expected %s", k, cases[i].what, paramd_err_name(rc),
                     paramd_err_name(cases[i].want));
            printf("ok: server %d, %s -> %s\n", k, cases[i].what, paramd_err_name(rc));
        }
        /* a payload too short to hold the count */
        if (raw(w, PD_MSG_SPARSE_PUSH, TID, p, 5, NULL, 0) != PARAMD_EPROTO) FAIL("5-byte push");
        /* a key that belongs to another server: the whole push is refused */
        if (S > 1) {
            uint64_t mixed[3] = {mine[0], other, mine[1]};
            size_t n = payload(p, 3, mixed, 3, 12);
            if (raw(w, PD_MSG_SPARSE_PUSH, TID, p, n, NULL, 0) != PARAMD_ERANGE) FAIL("misdirected push");
            n = payload(p, 3, mixed, 3, 0);
            if (raw(w, PD_MSG_SPARSE_PULL, TID, p, n, NULL, 0) != PARAMD_ERANGE) FAIL("misdirected pull");
            printf("ok: server %d refuses keys of another server\n", k);
        }
        /* a tool may pull but not push */
        pd_conn *tool = raw_connect(addr[k], PD_ROLE_TOOL, -1);
        size_t n = payload(p, 3, mine, 3, 12);
        if (raw(tool, PD_MSG_SPARSE_PUSH, TID, p, n, NULL, 0) != PARAMD_EWORKER) FAIL("tool push");
        pd_conn_destroy(tool);
        /* redefining the table with another dim is refused */
        pd_table_def def = {0};
        def.kind = PD_TABLE_SPARSE;
        if (pd_spec_parse("rule=add init=normal:1 seed=9", &def, &e)) FAIL("%s", e.msg);
        def.n = def.hi = 5;
        pd_buf b;
        pd_buf_init(&b);
        pd_table_def_encode(&b, &def);
        if (raw(w, PD_MSG_TABLE_CREATE, TID, b.p, b.len, NULL, 0) != PARAMD_ESPEC) FAIL("redefine");
        pd_buf_free(&b);
        /* the connection still works, and nothing was created or changed */
        n = payload(p, 0, mine, 0, 0);
        if (raw(w, PD_MSG_SPARSE_PULL, TID, p, n, NULL, 0) != 0) FAIL("empty pull");
        pd_conn_destroy(w);
        (void)rows;
        /* an oversized frame closes the connection, and only that one */
        w = raw_connect(addr[k], PD_ROLE_WORKER, me);
        pd_hdr big = {0};
        uint8_t hb[PD_HDR_SIZE];
        big.magic = PD_MAGIC, big.version = PD_PROTO_VERSION, big.type = PD_MSG_SPARSE_PUSH;
        big.table = TID, big.len = 1ull << 40;
        pd_hdr_encode(&big, hb);
        struct iovec iov = {hb, sizeof hb};
        pd_conn_writev(w, &iov, 1, &e);
        int rc = pd_recv_hdr(w, &rh, 1u << 20, &e);
        if (rc == 0 && rh.status != PARAMD_ETOOBIG) FAIL("oversized frame: %d", rh.status);
        pd_conn_destroy(w);
        printf("ok: server %d closes on an oversized SPARSE_PUSH\n", k);
    }
    MUST(paramd_sparse_pull(t, keys, NK, after));
    if (memcmp(before, after, sizeof before) != 0) FAIL("the table changed");
    uint64_t rows1 = stat(t, -1, "rows");
    if (rows1 != rows0) FAIL("rows went from %llu to %llu", (unsigned long long)rows0,
                             (unsigned long long)rows1);
    printf("badframes ok: every bad sparse frame refused on %d servers, table unchanged "
           "(%llu rows, %llu rejected)\n",
           S, (unsigned long long)rows1, (unsigned long long)stat(t, -1, "rejected"));
    return 0;
}

/* ==== toy ================================================================ */

#define TK 24

static int toy(int iters) {
    paramd_table *t;
    MUST(paramd_sparse_open(c, "st", 4, "rule=add consistency=sync aggregate=mean init=zeros",
                            &t));
    uint64_t keys[TK];
    float g[TK * 4], rows[TK * 4];
    for (int i = 0; i < TK; i++) keys[i] = (uint64_t)i;
    for (int i = 0; i < TK * 4; i++) g[i] = 1.0f;
    for (int64_t k = paramd_get_clock(c); k < iters; k++) {
        MUST(paramd_sparse_pull(t, keys, TK, rows));
        MUST(paramd_sparse_push(t, keys, TK, g));
        paramd_clock(c);
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    MUST(paramd_sparse_pull(t, keys, TK, rows));
    if (paramd_rank(c) == 0)
        for (int i = 0; i < TK; i++)
            printf("key %d server %u value %g\n", i,
                   pd_sparse_server(keys[i], (uint32_t)paramd_num_servers(c)), rows[i * 4]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tool_sparse replay SPEC STEPS DUMP | hammer ITERS | toy ITERS | api | bad\n");
        return 2;
    }
    const char *opts = !strcmp(argv[1], "hammer") ? "chunk_bytes=4096" : NULL;
    if (paramd_connect(&c, opts)) FAIL("connect: %s", paramd_last_error(NULL));
    int rc = 2;
    if (!strcmp(argv[1], "replay") && argc == 5)
        rc = replay(argv[2], atoi(argv[3]), argv[4]);
    else if (!strcmp(argv[1], "hammer") && argc == 3)
        rc = hammer(atoi(argv[2]));
    else if (!strcmp(argv[1], "toy") && argc == 3)
        rc = toy(atoi(argv[2]));
    else if (!strcmp(argv[1], "api") && argc == 2)
        rc = api();
    else if (!strcmp(argv[1], "bad") && argc == 2)
        rc = bad();
    else
        fprintf(stderr, "tool_sparse: bad arguments\n");
    int rc2 = paramd_close(c);
    if (rc == 0 && rc2) FAIL("close: %s", paramd_err_name(rc2));
    return rc;
}
