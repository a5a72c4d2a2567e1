/*
 * test_mem.c - the memory transport (src/net/mem.c): bounded reads that end
 * like a stream, peek only where floats are aligned, writes that append,
 * shutdown, and frames written to one memory connection read back from
 * another (what a BATCH does on both sides).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "frame/frame.h"
#include "net/conn.h"

static void test_reads(void) {
    uint8_t in[10];
    for (int i = 0; i < 10; i++) in[i] = (uint8_t)i;
    pd_mem_conn m;
    pd_err e = {0};
    pd_mem_init(&m, in, sizeof in, NULL, "test");
    uint8_t a[4], b[8];
    CHECK_OK(pd_conn_read(&m.conn, a, 4, 1, &e));
    CHECK_INT_EQ(a[3], 3);
    /* 6 bytes left: reading 8 is a truncated frame, never an overread */
    CHECK_INT_EQ(pd_conn_read(&m.conn, b, 8, 0, &e), PARAMD_EIO);
    CHECK(strstr(e.msg, "truncated frame from test"));
    /* at a frame boundary the end is a clean close */
    CHECK_INT_EQ(pd_conn_read(&m.conn, b, 1, 1, &e), PARAMD_ECLOSED);
    /* skip and reset */
    pd_mem_reset(&m, in, sizeof in);
    CHECK_OK(pd_conn_skip(&m.conn, 9, &e));
    CHECK_OK(pd_conn_read(&m.conn, a, 1, 0, &e));
    CHECK_INT_EQ(a[0], 9);
    /* writes fail without an output buffer */
    struct iovec v = {a, 1};
    CHECK_INT_EQ(pd_conn_writev(&m.conn, &v, 1, &e), PARAMD_EIO);
}

static void test_peek(void) {
    static float f[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const uint8_t *base = (const uint8_t *)f;
    pd_mem_conn m;
    pd_err e = {0};
    const void *p = NULL;
    pd_mem_init(&m, base, sizeof f, NULL, "test");
    CHECK_INT_EQ(pd_conn_peek(&m.conn, 8, &p, &e), 1);
    CHECK(p == base);
    pd_conn_consume(&m.conn, 8);
    CHECK_INT_EQ(pd_conn_peek(&m.conn, 24, &p, &e), 1);
    CHECK(*(const float *)p == 3.0f);
    /* more than is left: the end of the stream */
    CHECK_INT_EQ(pd_conn_peek(&m.conn, 25, &p, &e), PARAMD_EIO);
    /* unaligned for floats: the caller must read instead */
    pd_mem_reset(&m, base + 1, sizeof f - 1);
    CHECK_INT_EQ(pd_conn_peek(&m.conn, 4, &p, &e), 0);
    /* consume never passes the end */
    pd_mem_reset(&m, base, 4);
    pd_conn_consume(&m.conn, 100);
    CHECK_INT_EQ(pd_conn_peek(&m.conn, 1, &p, &e), PARAMD_EIO);
}

static void test_frames(void) {
    pd_buf out;
    pd_buf_init(&out);
    pd_mem_conn w, r;
    pd_err e = {0};
    pd_mem_init(&w, NULL, 0, &out, "writer");
    float v[3] = {1.5f, -2, 4};
    for (uint64_t id = 1; id <= 3; id++) {
        pd_hdr h = {0};
        h.type = PD_MSG_PULL | PD_REPLY;
        h.id = id;
        h.clock = (int64_t)id;
        CHECK_OK(pd_send_frame(&w.conn, &h, v, sizeof v, NULL, 0, NULL, 0, &e));
    }
    pd_hdr h = {0};
    CHECK_OK(pd_send_error(&w.conn, &h, PARAMD_EDUP, "twice"));
    struct iovec iov = {v, 4};
    struct iovec *ip = &iov;
    int cnt = 1;
    CHECK_INT_EQ(pd_conn_try_writev(&w.conn, &ip, &cnt, &e), 4); /* takes all */
    CHECK_INT_EQ(cnt, 0);
    CHECK_INT_EQ(out.len, 3 * (PD_HDR_SIZE + 12) + PD_HDR_SIZE + 5 + 4);
    pd_mem_init(&r, out.p, out.len, NULL, "reader");
    for (uint64_t id = 1; id <= 3; id++) {
        float got[3];
        CHECK_OK(pd_recv_hdr(&r.conn, &h, 1 << 20, &e));
        CHECK_INT_EQ(h.id, id);
        CHECK_INT_EQ(h.len, 12);
        CHECK_OK(pd_conn_read(&r.conn, got, sizeof got, 0, &e));
        CHECK(memcmp(got, v, sizeof v) == 0);
    }
    CHECK_OK(pd_recv_hdr(&r.conn, &h, 1 << 20, &e));
    CHECK_INT_EQ(h.status, PARAMD_EDUP);
    /* after shutdown everything fails */
    pd_conn_shutdown(&w.conn);
    CHECK_INT_EQ(pd_send_frame(&w.conn, &h, NULL, 0, NULL, 0, NULL, 0, &e), PARAMD_EIO);
    pd_conn_shutdown(&r.conn);
    uint8_t b;
    CHECK_INT_EQ(pd_conn_read(&r.conn, &b, 1, 0, &e), PARAMD_EIO);
    pd_conn_destroy(&r.conn); /* harmless: the struct is ours */
    pd_buf_free(&out);
}

int main(void) {
    test_reads();
    test_peek();
    test_frames();
    printf("test_mem: ok\n");
    return 0;
}
