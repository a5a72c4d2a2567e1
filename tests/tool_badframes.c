/*
 * tool_badframes.c - sends bad frames to a live cluster (used by
 * tests/it_badframes.sh; not a test by itself).
 *
 *   tool_badframes COORD_HOST:PORT
 *
 * It asks the coordinator for the map, defines table 4000 on server 0 with
 * known values (as a raw peer, outside any worker), then attacks server 0
 * and the coordinator with random bytes, truncated, oversized and lying
 * frames, wrong versions, unknown tables, bad ranges and bad payloads, each
 * on its own connection or on a kept one.  After every attack it checks:
 * the reply is the expected error (or the connection was closed), the
 * server still answers a new connection, and table 4000 still holds exactly
 * its values.  Exit 0 if everything held, 1 with a message otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "net/conn.h"
#include "wire/spec.h"
#include "wire/wire.h"

#define TABLE 4000
#define N 64

static char server[PD_MAX_ADDR + 1];
static const char *coord;
static uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];
static float want[N];
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static pd_conn *dial(const char *addr) {
    pd_err e = {0};
    pd_conn *c = pd_tcp_connect(addr, 5000, &e);
    if (!c) CHECK_FAIL_("connect %s: %s", addr, e.msg);
    return c;
}

static void hello(pd_conn *c, uint32_t role, int32_t rank, int expect) {
    pd_buf b;
    pd_hdr h = {0}, rh;
    pd_err e = {0};
    pd_hello hl = {role, rank};
    pd_buf_init(&b);
    pd_hello_encode(&b, &hl);
    h.type = PD_MSG_HELLO;
    h.id = 1;
    int rc = pd_rpc(c, &h, b.p, b.len, &rh, buf, &e);
    pd_buf_free(&b);
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
    hello(c, PD_ROLE_WORKER, 0, 0);
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
    if (do_hello) hello(c, PD_ROLE_WORKER, 0, 0);
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
    if (do_hello) hello(c, PD_ROLE_WORKER, 0, 0);
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

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tool_badframes COORD_HOST:PORT\n");
        return 2;
    }
    coord = argv[1];
    pd_err e = {0};
    /* the map */
    pd_conn *cc = dial(coord);
    hello(cc, PD_ROLE_TOOL, -1, 0);
    pd_hdr h = {0}, rh;
    h.type = PD_MSG_MAP;
    h.id = 2;
    if (pd_rpc(cc, &h, NULL, 0, &rh, buf, &e)) CHECK_FAIL_("MAP: %s", e.msg);
    pd_rd r;
    uint32_t u32;
    uint64_t u64;
    pd_rd_init(&r, buf, rh.len);
    pd_get_u32(&r, &u32), pd_get_u32(&r, &u32), pd_get_u32(&r, &u32), pd_get_u64(&r, &u64);
    if (pd_get_str(&r, server, PD_MAX_ADDR)) CHECK_FAIL_("bad map");
    pd_conn_destroy(cc);
    printf("server 0 at %s\n", server);

    /* define table TABLE on server 0: the whole table on this one server */
    pd_conn *c = dial(server);
    hello(c, PD_ROLE_WORKER, 0, 0);
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
    still_fine("bad HELLOs");

    /* ---- the coordinator too ------------------------------------------ */
    for (int round = 0; round < 10; round++) {
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)next_rand();
        send_bytes_expect_close("random bytes to the coordinator", coord, 0, junk, sizeof junk);
    }
    hdr_bytes(fr, PD_MSG_TABLE_OPEN, 0, 4, PD_PROTO_VERSION, PD_MAGIC);
    send_bytes_expect_close("TABLE_OPEN before HELLO", coord, 0, fr, PD_HDR_SIZE + 4);
    hdr_bytes(fr, PD_MSG_HELLO, 0, 3, PD_PROTO_VERSION, PD_MAGIC);
    send_and_hang_up(coord, 0, fr, PD_HDR_SIZE + 1);
    cc = dial(coord);
    hello(cc, PD_ROLE_TOOL, -1, 0);
    h = (pd_hdr){0};
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
    printf("badframes ok\n");
    return 0;
}
