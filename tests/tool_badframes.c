/*
 * tool_badframes.c - sends bad frames to a live cluster (used by
 * tests/it_badframes.sh; not a test by itself).
 *
 *   tool_badframes COORD_HOST:PORT
 *
 * It registers as worker 2 (a slot the cluster's toys leave free), asks
 * the coordinator for the map, defines table 4000 on server 0 with known
 * values (as a raw peer speaking for that worker: its HELLOs show the
 * worker's rank ticket), then attacks server 0
 * and the coordinator with random bytes, truncated, oversized and lying
 * frames, wrong versions, unknown tables, bad ranges and bad payloads, each
 * on its own connection or on a kept one.  After every attack it checks:
 * the reply is the expected error (or the connection was closed), the
 * server still answers a new connection, and table 4000 still holds exactly
 * its values.
 *
 * BATCH frames (docs/protocol.md, "Batches"), against table 4001: a
 * well-formed batch whose inner requests partly fail gets one inner error
 * reply each and the others apply; malformed batches (forbidden, nested or
 * reply-typed inner frames, bad inner headers, overruns, trailing bytes, no
 * frames, a bad BATCH header) get an error reply and a closed connection
 * and change nothing, even when valid pushes come before the bad frame;
 * then random mutations of a valid batch: each is either accepted, or
 * refused with both tables bit for bit unchanged, and the server lives.
 * The BATCH attacks go over shared memory when PARAMD_TRANSPORT=shm.
 * Exit 0 if everything held, 1 with a message otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "frame/frame.h"
#include "net/conn.h"
#include "rawpeer.h"
#include "table/spec.h"
#include "wire/wire.h"

#define TABLE 4000
#define BTABLE 4001 /* the table BATCH attacks push to */
#define N 64

static char server[PD_MAX_ADDR + 1];
/* The raw worker connections speak for this tool's own worker, registered
 * with the coordinator as rank ME (the servers refuse a rank nobody was
 * given: frame/auth.h). */
#define ME 2
static paramd_client *me;
static const char *coord;
static uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];
static float want[N];
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static pd_welcome welcome; /* the last HELLO reply */

static uint64_t next_rand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static pd_conn *dial(const char *addr) { return rp_dial(addr); }

static void hello(pd_conn *c, uint32_t role, int32_t rank, int expect) {
    pd_err e = {0};
    int rc = rp_hello(c, role, rank, &welcome, &e);
    if (rc != expect) CHECK_FAIL_("HELLO gave %s, expected %s (%s)", paramd_err_name(rc), paramd_err_name(expect), e.msg);
}

/* A raw request with an arbitrary payload; returns the reply status (or a
 * connection error code). */
static int raw(pd_conn *c, uint16_t type, uint32_t table, int64_t clock,
               const void *p, size_t n, float *pull_out, size_t pull_n) {
    pd_hdr h = {0}, rh;
    pd_err e = {0};
    h.type = type, h.id = next_rand(), h.table = table, h.clock = clock;
    int rc = pd_send_frame(c, &h, p, n, NULL, 0, NULL, 0, &e);
    if (rc) return rc;
    rc = pd_recv_hdr(c, &rh, 1 << 30, &e);
    if (rc) return rc;
    if (rh.status < 0) {
        rc = pd_recv_payload(c, &rh, buf, &e);
        printf("  reply %s: %s\n", paramd_err_name(rh.status), rc ? "?" : (char *)buf);
        return rh.status;
    }
    if (pull_out) {
        if (rh.len != pull_n * 4) CHECK_FAIL_("pull reply of %llu bytes", (unsigned long long)rh.len);
        return pd_conn_read(c, pull_out, pull_n * 4, 0, &e);
    }
    return pd_conn_skip(c, rh.len, &e);
}

static int push_raw(pd_conn *c, uint32_t table, int64_t clock, uint64_t off,
                    const float *v, size_t n, uint16_t type) {
    uint8_t *p = malloc(8 + n * 4);
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(off >> (8 * i));
    memcpy(p + 8, v, n * 4);
    int rc = raw(c, type, table, clock, p, 8 + n * 4, NULL, 0);
    free(p);
    return rc;
}

static int pull_raw(pd_conn *c, uint32_t table, uint64_t off, uint64_t cnt, float *out) {
    uint8_t p[16];
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(off >> (8 * i)), p[8 + i] = (uint8_t)(cnt >> (8 * i));
    return raw(c, PD_MSG_PULL, table, 0, p, 16, out, cnt);
}

/* The server still works and table TABLE is exactly as defined. */
static void still_fine(const char *after) {
    pd_conn *c = dial(server);
    hello(c, PD_ROLE_WORKER, ME, 0);
    float got[N];
    int rc = pull_raw(c, TABLE, 0, N, got);
    if (rc) CHECK_FAIL_("after %s: pull failed: %s", after, paramd_err_name(rc));
    for (int i = 0; i < N; i++)
        if (got[i] != want[i])
            CHECK_FAIL_("after %s: element %d changed to %g (was %g)", after, i, got[i], want[i]);
    pd_conn_destroy(c);
    printf("ok: server unharmed after %s\n", after);
}

/* Send bytes, then expect an error reply or a close, never a hang. */
static void send_bytes_expect_close(const char *what, const char *addr, int do_hello,
                                    const void *bytes, size_t n) {
    pd_conn *c = dial(addr);
    pd_err e = {0};
    if (do_hello) hello(c, PD_ROLE_WORKER, ME, 0);
    struct iovec iov = {(void *)bytes, n};
    pd_conn_writev(c, &iov, 1, &e);
    pd_tcp_set_rcvtimeo(c, 20000);
    /* read until the server closes: an error reply may come first */
    uint8_t tmp[4096];
    for (;;) {
        struct iovec r = {tmp, sizeof tmp};
        ssize_t k = c->ops->readv(c, &r, 1);
        if (k == 0) break;
        if (k < 0) {
            if (errno == EAGAIN) CHECK_FAIL_("%s: server neither answered nor closed in 20 s", what);
            break; /* reset */
        }
    }
    pd_conn_destroy(c);
    printf("ok: %s -> connection closed by the peer\n", what);
}

/* Send a partial frame and close from our side. */
static void send_and_hang_up(const char *addr, int do_hello, const void *bytes, size_t n) {
    pd_conn *c = dial(addr);
    pd_err e = {0};
    if (do_hello) hello(c, PD_ROLE_WORKER, ME, 0);
    struct iovec iov = {(void *)bytes, n};
    pd_conn_writev(c, &iov, 1, &e);
    pd_conn_destroy(c);
}

static size_t hdr_bytes(uint8_t *out, uint16_t type, uint32_t table, uint64_t len,
                        uint16_t version, uint32_t magic) {
    pd_hdr h = {magic, version, type, 7, table, 0, 0, len};
    pd_hdr_encode(&h, out);
    return PD_HDR_SIZE;
}

/* ==== BATCH attacks ====================================================== */

/* A worker connection to server 0 (after HELLO), over shared memory when
 * the test runs with PARAMD_TRANSPORT=shm, as a worker's would be. */
static pd_conn *dial_worker(void) {
    pd_conn *c = dial(server);
    hello(c, PD_ROLE_WORKER, ME, 0);
    const char *tr = getenv("PARAMD_TRANSPORT");
    if (!tr || strcmp(tr, "shm") != 0) return c;
    pd_conn *s = rp_shm(&welcome);
    if (!s) CHECK_FAIL_("PARAMD_TRANSPORT=shm but the server offers no shared memory");
    pd_conn_destroy(c);
    return s;
}

/* Table TABLE and BTABLE as they are now, bit for bit. */
static void snapshot(float *a, float *b) {
    pd_conn *c = dial_worker();
    if (pull_raw(c, TABLE, 0, N, a) || pull_raw(c, BTABLE, 0, N, b))
        CHECK_FAIL_("snapshot: pull failed");
    pd_conn_destroy(c);
}

/* Append an inner frame: header, then the payload parts. */
static void inner(pd_buf *b, uint16_t type, uint64_t id, uint32_t table, int64_t clock,
                  const void *p1, size_t n1, const void *p2, size_t n2) {
    pd_hdr h = {PD_MAGIC, PD_PROTO_VERSION, type, id, table, 0, clock, n1 + n2};
    uint8_t hb[PD_HDR_SIZE];
    pd_hdr_encode(&h, hb);
    pd_put_bytes(b, hb, sizeof hb);
    if (n1) pd_put_bytes(b, p1, n1);
    if (n2) pd_put_bytes(b, p2, n2);
}

static void inner_push(pd_buf *b, uint64_t id, uint32_t table, int64_t clock, uint64_t off,
                       const float *v, size_t n) {
    uint8_t pre[8];
    for (int i = 0; i < 8; i++) pre[i] = (uint8_t)(off >> (8 * i));
    inner(b, PD_MSG_PUSH, id, table, clock, pre, 8, v, n * 4);
}

static void inner_pull(pd_buf *b, uint64_t id, uint32_t table, uint64_t off, uint64_t cnt) {
    uint8_t p[16];
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(off >> (8 * i)), p[8 + i] = (uint8_t)(cnt >> (8 * i));
    inner(b, PD_MSG_PULL, id, table, 0, p, 16, NULL, 0);
}

/* Send a BATCH (header fields as given) with payload b on a new worker
 * connection.  Returns the reply's status; a refused batch must also be
 * followed by the server closing the connection.  With a reply payload,
 * it goes to *rep (malloc'd; the caller frees) and its length to *replen. */
static int send_batch(const pd_buf *b, uint32_t table, int64_t clock, uint8_t **rep,
                      size_t *replen) {
    pd_conn *c = dial_worker();
    pd_err e = {0};
    pd_hdr h = {0}, rh;
    h.type = PD_MSG_BATCH, h.id = 99, h.table = table, h.clock = clock;
    if (pd_send_frame(c, &h, b->p, b->len, NULL, 0, NULL, 0, &e))
        CHECK_FAIL_("sending a batch: %s", e.msg);
    pd_conn_set_rcvtimeo(c, 20000);
    int rc = pd_recv_hdr(c, &rh, 0, &e);
    if (rc) CHECK_FAIL_("no reply to a batch: %s", e.msg);
    if (rh.type != (PD_MSG_BATCH | PD_REPLY) || rh.id != 99)
        CHECK_FAIL_("a batch answered with %s id %llu", pd_msg_name(rh.type),
                    (unsigned long long)rh.id);
    uint8_t *p = malloc(rh.len + 1);
    if (pd_conn_read(c, p, (size_t)rh.len, 0, &e)) CHECK_FAIL_("batch reply: %s", e.msg);
    if (rh.status < 0) {
        p[rh.len] = 0;
        printf("  BATCH refused: %s: %s\n", paramd_err_name(rh.status), (char *)p);
        uint8_t tmp[64];
        struct iovec v = {tmp, sizeof tmp};
        ssize_t k = c->ops->readv(c, &v, 1);
        if (k != 0 && !(k < 0 && errno == ECONNRESET))
            CHECK_FAIL_("the server kept the connection after refusing a batch (%zd)", k);
        free(p);
        p = NULL;
    }
    if (rep) *rep = p, *replen = (size_t)rh.len;
    else free(p);
    pd_conn_destroy(c);
    return rh.status;
}

/* A malformed batch: refused, connection closed, nothing changed. */
static void refused(const char *what, const pd_buf *b, uint32_t table, int64_t clock) {
    float a0[N], b0[N], a1[N], b1[N];
    snapshot(a0, b0);
    int st = send_batch(b, table, clock, NULL, NULL);
    if (st >= 0) CHECK_FAIL_("%s: the batch was accepted", what);
    snapshot(a1, b1);
    if (memcmp(a0, a1, sizeof a0) || memcmp(b0, b1, sizeof b0))
        CHECK_FAIL_("%s: a refused batch changed a table", what);
    printf("ok: %s -> refused, connection closed, nothing changed\n", what);
}

static void batch_attacks(void) {
    pd_err e = {0};
    /* table BTABLE: N floats of 0, on this one server */
    pd_conn *c = dial(server);
    hello(c, PD_ROLE_WORKER, ME, 0);
    pd_table_def d = {0};
    CHECK_OK(pd_spec_parse("rule=add", &d, &e));
    d.n = N, d.lo = 0, d.hi = N;
    pd_buf b;
    pd_buf_init(&b);
    pd_table_def_encode(&b, &d);
    CHECK_OK(raw(c, PD_MSG_TABLE_CREATE, BTABLE, 0, b.p, b.len, NULL, 0));
    pd_buf_free(&b);
    pd_conn_destroy(c);
    float ones[N], big[N];
    for (int i = 0; i < N; i++) ones[i] = 1.0f, big[i] = 1000.0f;

    /* ---- a good batch whose inner requests partly fail ---------------- */
    pd_buf_init(&b);
    inner_push(&b, 1, BTABLE, 1, 0, ones, N);             /* ok */
    inner_push(&b, 2, 3999, 1, 0, big, 4);                /* no such table */
    inner_push(&b, 3, BTABLE, 1, N - 2, big, 4);          /* out of range */
    inner_push(&b, 4, BTABLE, 1, 0, big, 2);              /* duplicate in clock 1 */
    inner(&b, PD_MSG_PUSH, 5, BTABLE, 1, "abc", 3, NULL, 0); /* malformed payload */
    inner_pull(&b, 6, BTABLE, 0, N);                      /* sees push 1 */
    inner_pull(&b, 7, BTABLE, 0, (PD_MAX_BATCH / 4) + 1); /* too many values */
    uint8_t *rep;
    size_t rlen;
    CHECK_OK(send_batch(&b, 0, 0, &rep, &rlen));
    static const int want_st[] = {0, PARAMD_ENOTABLE, PARAMD_ERANGE, PARAMD_EDUP,
                                  PARAMD_EPROTO, 0, PARAMD_ERANGE};
    size_t off = 0;
    for (size_t i = 0; i < 7; i++) {
        pd_hdr ih;
        if (pd_batch_next(rep, rlen, &off, i, 1, &ih, &e)) CHECK_FAIL_("reply: %s", e.msg);
        CHECK_INT_EQ(ih.id, i + 1);
        CHECK_INT_EQ(ih.status, want_st[i]);
        if (i == 5) {
            CHECK_INT_EQ(ih.len, N * 4);
            float got[N];
            memcpy(got, rep + off - ih.len, sizeof got);
            for (int k = 0; k < N; k++)
                if (got[k] != 1.0f) CHECK_FAIL_("inner pull: element %d is %g", k, got[k]);
        }
        if (ih.status < 0)
            printf("  inner %zu: %s: %.*s\n", i, paramd_err_name(ih.status), (int)ih.len,
                   (const char *)rep + off - ih.len);
    }
    CHECK(off == rlen);
    free(rep);
    pd_buf_free(&b);
    /* The pulls of a batch may ask for PD_MAX_BATCH bytes of values in
     * all: on table 4002 (70000 floats), 40000 floats fit, 40000 more do not
     * (that pull alone is refused), 10000 more still do. */
    c = dial(server);
    hello(c, PD_ROLE_WORKER, ME, 0);
    d.n = 70000, d.lo = 0, d.hi = 70000;
    pd_buf_init(&b);
    pd_table_def_encode(&b, &d);
    CHECK_OK(raw(c, PD_MSG_TABLE_CREATE, 4002, 0, b.p, b.len, NULL, 0));
    pd_buf_free(&b);
    pd_conn_destroy(c);
    pd_buf_init(&b);
    inner_pull(&b, 1, 4002, 0, 40000);
    inner_pull(&b, 2, 4002, 0, 40000);
    inner_pull(&b, 3, 4002, 0, 10000);
    CHECK_OK(send_batch(&b, 0, 0, &rep, &rlen));
    off = 0;
    for (size_t i = 0; i < 3; i++) {
        pd_hdr ih;
        if (pd_batch_next(rep, rlen, &off, i, 1, &ih, &e)) CHECK_FAIL_("reply: %s", e.msg);
        CHECK_INT_EQ(ih.status, i == 1 ? PARAMD_ETOOBIG : 0);
        CHECK_INT_EQ(ih.len, i == 0 ? 160000 : i == 2 ? 40000 : ih.len);
        if (i == 1)
            printf("  inner %zu: %s: %.*s\n", i, paramd_err_name(ih.status), (int)ih.len,
                   (const char *)rep + off - ih.len);
    }
    CHECK(off == rlen);
    free(rep);
    pd_buf_free(&b);
    float ta[N], tb[N];
    snapshot(ta, tb);
    for (int i = 0; i < N; i++)
        if (tb[i] != 1.0f) CHECK_FAIL_("table %d element %d is %g after one push of ones", BTABLE, i, tb[i]);
    printf("ok: a batch with failing inner requests: each its own error, the others applied\n");

    /* ---- malformed batches: a valid push first, then the bad frame ---- */
    struct { const char *what; uint16_t type; uint64_t len; uint16_t version; uint32_t magic; int32_t status; } bad[] = {
        {"nested BATCH", PD_MSG_BATCH, 0, PD_PROTO_VERSION, PD_MAGIC, 0},
        {"HELLO inside a batch", PD_MSG_HELLO, 12, PD_PROTO_VERSION, PD_MAGIC, 0},
        {"STATS inside a batch", PD_MSG_STATS, 0, PD_PROTO_VERSION, PD_MAGIC, 0},
        {"TABLE_CREATE inside a batch", PD_MSG_TABLE_CREATE, 0, PD_PROTO_VERSION, PD_MAGIC, 0},
        {"a reply inside a batch", PD_MSG_PUSH | PD_REPLY, 0, PD_PROTO_VERSION, PD_MAGIC, 0},
        {"inner bad magic", PD_MSG_PUSH, 0, PD_PROTO_VERSION, 0x12345678, 0},
        {"inner version 2", PD_MSG_PUSH, 0, 2, PD_MAGIC, 0},
        {"inner unknown type", 77, 0, PD_PROTO_VERSION, PD_MAGIC, 0},
        {"inner status set", PD_MSG_PUSH, 0, PD_PROTO_VERSION, PD_MAGIC, -3},
        {"inner length past the batch", PD_MSG_PUSH, 1000, PD_PROTO_VERSION, PD_MAGIC, 0},
        {"inner length 2^64-1", PD_MSG_PULL, UINT64_MAX, PD_PROTO_VERSION, PD_MAGIC, 0},
    };
    int64_t clock = 2;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++, clock++) {
        pd_buf_init(&b);
        inner_push(&b, 1, BTABLE, clock, 0, big, N);
        inner_push(&b, 2, TABLE, clock, 0, big, N);
        pd_hdr h = {bad[k].magic, bad[k].version, bad[k].type, 3, BTABLE, bad[k].status, 0, bad[k].len};
        uint8_t hb[PD_HDR_SIZE];
        pd_hdr_encode(&h, hb);
        pd_put_bytes(&b, hb, sizeof hb);
        if (bad[k].len == 12) pd_put_bytes(&b, "\1\0\0\0\0\0\0\0\0\0\0\0", 12);
        refused(bad[k].what, &b, 0, 0);
        pd_buf_free(&b);
    }
    for (size_t extra = 1; extra < PD_HDR_SIZE; extra += 13) {
        pd_buf_init(&b);
        inner_push(&b, 1, BTABLE, clock, 0, big, N);
        for (size_t i = 0; i < extra; i++) pd_put_bytes(&b, "\xff", 1);
        refused("trailing bytes after the last inner frame", &b, 0, 0);
        pd_buf_free(&b);
    }
    pd_buf_init(&b);
    refused("a BATCH with no inner frames", &b, 0, 0);
    inner_push(&b, 1, BTABLE, clock, 0, big, N);
    refused("a BATCH header with a table", &b, BTABLE, 0);
    refused("a BATCH header with a clock", &b, 0, clock);
    pd_buf_free(&b);
    {
        /* larger than PD_MAX_BATCH: refused at the header, closed */
        uint8_t fr[PD_HDR_SIZE];
        hdr_bytes(fr, PD_MSG_BATCH, 0, PD_MAX_BATCH + 1, PD_PROTO_VERSION, PD_MAGIC);
        send_bytes_expect_close("BATCH over PD_MAX_BATCH", server, 1, fr, PD_HDR_SIZE);
        /* a batch that stops short, then the peer hangs up */
        pd_buf_init(&b);
        inner_push(&b, 1, BTABLE, clock, 0, big, N);
        size_t n = PD_HDR_SIZE + b.len;
        uint8_t *p = malloc(n);
        hdr_bytes(p, PD_MSG_BATCH, 0, b.len, PD_PROTO_VERSION, PD_MAGIC);
        memcpy(p + PD_HDR_SIZE, b.p, b.len);
        send_and_hang_up(server, 1, p, n - 1);
        free(p);
        pd_buf_free(&b);
        float a1[N], b1[N];
        snapshot(a1, b1);
        if (memcmp(a1, want, sizeof a1) || memcmp(b1, tb, sizeof b1))
            CHECK_FAIL_("a truncated or oversized batch changed a table");
    }
    still_fine("malformed batches");

    /* ---- fuzz: mutations of a valid batch ---------------------------- */
    int accepted = 0, refused_n = 0;
    for (int it = 0; it < 300; it++) {
        int64_t ck = 1000 + it;
        pd_buf_init(&b);
        inner_push(&b, 1, BTABLE, ck, 0, ones, 16);
        inner_pull(&b, 2, BTABLE, 0, N);
        inner_push(&b, 3, BTABLE, ck, 16, ones, 16);
        inner(&b, PD_MSG_SPARSE_PULL, 4, BTABLE, ck, "\1\0\0\0\0\0\0\0\5\0\0\0\0\0\0\0", 16, NULL, 0);
        inner_push(&b, 5, BTABLE, ck, 32, ones, 32);
        int nmut = 1 + (int)(next_rand() % 3);
        for (int k = 0; k < nmut; k++) {
            uint64_t r = next_rand();
            size_t at = (size_t)((r >> 8) % b.len);
            if (r % 3 == 0) b.p[at] = (uint8_t)(r >> 32);
            else if (r % 3 == 1) b.p[at] ^= (uint8_t)(1u << ((r >> 40) % 8));
            else b.len = at; /* a cut */
        }
        float a0[N], b0[N], a1[N], b1[N];
        snapshot(a0, b0);
        int st = send_batch(&b, 0, 0, NULL, NULL);
        snapshot(a1, b1);
        if (st < 0) {
            refused_n++;
            if (memcmp(a0, a1, sizeof a0) || memcmp(b0, b1, sizeof b0))
                CHECK_FAIL_("fuzz case %d: a refused batch changed a table", it);
        } else {
            accepted++;
            memcpy(want, a1, sizeof want); /* a mutation may validly push to TABLE */
        }
        pd_buf_free(&b);
    }
    printf("ok: batch fuzz: %d mutated batches accepted, %d refused without a change\n",
           accepted, refused_n);
    if (!accepted || !refused_n) CHECK_FAIL_("the batch fuzz did not reach both outcomes");
    still_fine("mutated batches");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tool_badframes COORD_HOST:PORT\n");
        return 2;
    }
    coord = argv[1];
    pd_err e = {0};
    char opt[PD_MAX_ADDR + 64];
    snprintf(opt, sizeof opt, "coordinator=%s rank=%d", coord, ME);
    if (paramd_connect(&me, opt)) CHECK_FAIL_("connect as worker %d: %s", ME, paramd_last_error(NULL));
    rp_speak_for(me);
    /* the map */
    pd_map m;
    rp_map(coord, &m);
    snprintf(server, sizeof server, "%s", m.addr[0]);
    pd_map_free(&m);
    printf("server 0 at %s\n", server);

    /* define table TABLE on server 0: the whole table on this one server */
    pd_conn *c = dial(server);
    hello(c, PD_ROLE_WORKER, ME, 0);
    pd_table_def d = {0};
    CHECK_OK(pd_spec_parse("rule=add", &d, &e));
    d.n = N, d.lo = 0, d.hi = N;
    pd_buf b;
    pd_buf_init(&b);
    pd_table_def_encode(&b, &d);
    CHECK_OK(raw(c, PD_MSG_TABLE_CREATE, TABLE, 0, b.p, b.len, NULL, 0));
    /* the same definition again is fine; a different one is not */
    CHECK_OK(raw(c, PD_MSG_TABLE_CREATE, TABLE, 0, b.p, b.len, NULL, 0));
    pd_buf_free(&b);
    d.rule = PD_RULE_SGD;
    pd_buf_init(&b);
    pd_table_def_encode(&b, &d);
    CHECK_INT_EQ(raw(c, PD_MSG_TABLE_CREATE, TABLE, 0, b.p, b.len, NULL, 0), PARAMD_ESPEC);
    pd_buf_free(&b);
    for (int i = 0; i < N; i++) want[i] = (float)i * 0.5f;
    CHECK_OK(push_raw(c, TABLE, 0, 0, want, N, PD_MSG_SET));

    /* ---- well-framed but wrong requests: error reply, connection kept --- */
    float g[N];
    for (int i = 0; i < N; i++) g[i] = 1000.0f;
    CHECK_INT_EQ(push_raw(c, 3999, 0, 0, g, 4, PD_MSG_PUSH), PARAMD_ENOTABLE);
    CHECK_INT_EQ(push_raw(c, 0, 0, 0, g, 4, PD_MSG_PUSH), PARAMD_ENOTABLE);
    CHECK_INT_EQ(push_raw(c, 0xffffffffu, 0, 0, g, 4, PD_MSG_PUSH), PARAMD_ENOTABLE);
    CHECK_INT_EQ(push_raw(c, TABLE, 0, N - 2, g, 4, PD_MSG_PUSH), PARAMD_ERANGE);
    CHECK_INT_EQ(push_raw(c, TABLE, 0, UINT64_MAX - 1, g, 4, PD_MSG_PUSH), PARAMD_ERANGE);
    CHECK_INT_EQ(push_raw(c, TABLE, 0, 0, g, 0, PD_MSG_PUSH), PARAMD_ERANGE);
    CHECK_INT_EQ(raw(c, PD_MSG_PUSH, TABLE, 0, "abcdefghijk", 11, NULL, 0), PARAMD_EPROTO);
    CHECK_INT_EQ(raw(c, PD_MSG_PUSH, TABLE, 0, "abc", 3, NULL, 0), PARAMD_EPROTO);
    CHECK_INT_EQ(raw(c, PD_MSG_PULL, TABLE, 0, "abc", 3, NULL, 0), PARAMD_EPROTO);
    float tmp[N];
    CHECK_INT_EQ(pull_raw(c, TABLE, 10, N, tmp), PARAMD_ERANGE);
    CHECK_INT_EQ(pull_raw(c, TABLE, 0, UINT64_MAX, tmp), PARAMD_ERANGE);
    CHECK_INT_EQ(raw(c, PD_MSG_TABLE_CREATE, 5, 0, "garbage!", 8, NULL, 0), PARAMD_EPROTO);
    /* a TABLE_CREATE whose range lies about the table */
    d.lo = 10, d.hi = 5;
    pd_buf_init(&b);
    pd_table_def_encode(&b, &d);
    CHECK_INT_EQ(raw(c, PD_MSG_TABLE_CREATE, 6, 0, b.p, b.len, NULL, 0), PARAMD_EPROTO);
    pd_buf_free(&b);
    /* the connection still works for a good request */
    CHECK_OK(pull_raw(c, TABLE, 0, N, tmp));
    pd_conn_destroy(c);
    still_fine("wrong requests");

    /* ---- broken framing: error reply and/or close --------------------- */
    uint8_t junk[2048];
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)next_rand();
        send_bytes_expect_close("random bytes", server, round % 2, junk, sizeof junk);
    }
    still_fine("random bytes");
    uint8_t fr[PD_HDR_SIZE + 64];
    hdr_bytes(fr, PD_MSG_PUSH, TABLE, 8, PD_PROTO_VERSION, 0x12345678);
    send_bytes_expect_close("bad magic", server, 1, fr, PD_HDR_SIZE + 8);
    hdr_bytes(fr, PD_MSG_PUSH, TABLE, 8, 2, PD_MAGIC);
    send_bytes_expect_close("version 2", server, 1, fr, PD_HDR_SIZE + 8);
    hdr_bytes(fr, 77, TABLE, 0, PD_PROTO_VERSION, PD_MAGIC);
    send_bytes_expect_close("unknown type", server, 1, fr, PD_HDR_SIZE);
    hdr_bytes(fr, PD_MSG_PUSH, TABLE, 1ull << 40, PD_PROTO_VERSION, PD_MAGIC);
    send_bytes_expect_close("oversized push", server, 1, fr, PD_HDR_SIZE);
    hdr_bytes(fr, PD_MSG_HELLO, 0, PD_MAX_CTRL_PAYLOAD + 1, PD_PROTO_VERSION, PD_MAGIC);
    send_bytes_expect_close("oversized hello", server, 0, fr, PD_HDR_SIZE);
    hdr_bytes(fr, PD_MSG_PUSH, TABLE, 8, PD_PROTO_VERSION, PD_MAGIC);
    send_bytes_expect_close("push before hello", server, 0, fr, PD_HDR_SIZE + 8);
    hdr_bytes(fr, PD_MSG_REG_WORKER, 0, 0, PD_PROTO_VERSION, PD_MAGIC);
    send_bytes_expect_close("coordinator message at a server", server, 1, fr, PD_HDR_SIZE);
    still_fine("bad headers");

    /* truncated and lying frames: the peer hangs up mid-frame */
    for (size_t cut = 1; cut < PD_HDR_SIZE; cut += 7) {
        hdr_bytes(fr, PD_MSG_PUSH, TABLE, 8 + 4 * N, PD_PROTO_VERSION, PD_MAGIC);
        send_and_hang_up(server, 1, fr, cut);
    }
    {
        /* a push of N floats of 1000 that stops 4 bytes short: nothing of it
         * may be applied */
        size_t n = PD_HDR_SIZE + 8 + 4 * N;
        uint8_t *p = calloc(1, n);
        hdr_bytes(p, PD_MSG_PUSH, TABLE, 8 + 4 * N, PD_PROTO_VERSION, PD_MAGIC);
        memcpy(p + PD_HDR_SIZE + 8, g, 4 * N);
        send_and_hang_up(server, 1, p, n - 4);
        /* a header that promises far more than is sent */
        hdr_bytes(p, PD_MSG_PUSH, TABLE, 8 + 4 * 1000000, PD_PROTO_VERSION, PD_MAGIC);
        send_and_hang_up(server, 1, p, n);
        free(p);
    }
    still_fine("truncated and lying frames");

    /* bad HELLOs */
    pd_conn *c2 = dial(server);
    hello(c2, PD_ROLE_WORKER, 99, PARAMD_EWORKER);
    pd_conn_destroy(c2);
    c2 = dial(server);
    hello(c2, PD_ROLE_SERVER, 0, PARAMD_EPROTO);
    pd_conn_destroy(c2);
    c2 = dial(server); /* a rank this tool was not given: no ticket for it */
    hello(c2, PD_ROLE_WORKER, 0, PARAMD_EWORKER);
    pd_conn_destroy(c2);
    still_fine("bad HELLOs");

    batch_attacks();

    /* ---- the coordinator too ------------------------------------------ */
    for (int round = 0; round < 10; round++) {
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)next_rand();
        send_bytes_expect_close("random bytes to the coordinator", coord, 0, junk, sizeof junk);
    }
    hdr_bytes(fr, PD_MSG_TABLE_OPEN, 0, 4, PD_PROTO_VERSION, PD_MAGIC);
    send_bytes_expect_close("TABLE_OPEN before HELLO", coord, 0, fr, PD_HDR_SIZE + 4);
    hdr_bytes(fr, PD_MSG_HELLO, 0, 3, PD_PROTO_VERSION, PD_MAGIC);
    send_and_hang_up(coord, 0, fr, PD_HDR_SIZE + 1);
    pd_conn *cc = dial(coord);
    hello(cc, PD_ROLE_TOOL, -1, 0);
    pd_hdr h = {0}, rh;
    h.type = PD_MSG_TABLE_OPEN;
    h.id = 3;
    int rc = pd_rpc(cc, &h, "xx", 2, &rh, buf, &e);
    CHECK_INT_EQ(rc, PARAMD_EPROTO);
    h.type = PD_MSG_REG_WORKER;
    uint8_t bad_rank[4] = {100, 0, 0, 0};
    rc = pd_rpc(cc, &h, bad_rank, 4, &rh, buf, &e);
    CHECK_INT_EQ(rc, PARAMD_EPROTO); /* a tool cannot register as a worker */
    pd_conn_destroy(cc);
    printf("ok: coordinator rejected bad requests\n");
    if (paramd_close(me)) CHECK_FAIL_("close: %s", paramd_last_error(me));
    printf("badframes ok\n");
    return 0;
}
