/*
 * test_wire.c - frame encode/decode/validation, the bounds-checked reader,
 * table specs, and dense partitioning.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "wire/spec.h"
#include "wire/wire.h"

static void test_header_roundtrip(void) {
    pd_hdr h = {PD_MAGIC, PD_PROTO_VERSION, PD_MSG_PUSH, 0x1122334455667788ull,
                7, -9, 42, 1000};
    uint8_t b[PD_HDR_SIZE];
    pd_hdr_encode(&h, b);
    /* little-endian on the wire, whatever the host */
    CHECK_INT_EQ(b[0], 0x50);
    CHECK_INT_EQ(b[8], 0x88);
    CHECK_INT_EQ(b[15], 0x11);
    pd_hdr d;
    pd_err e = {0};
    CHECK_OK(pd_hdr_decode(b, &d, 1 << 20, &e));
    CHECK_INT_EQ(d.type, PD_MSG_PUSH);
    CHECK(d.id == 0x1122334455667788ull);
    CHECK_INT_EQ(d.table, 7);
    CHECK_INT_EQ(d.status, -9);
    CHECK_INT_EQ(d.clock, 42);
    CHECK_INT_EQ(d.len, 1000);
}

static int decode_after(void (*mut)(pd_hdr *), uint64_t max, pd_err *e) {
    pd_hdr h = {PD_MAGIC, PD_PROTO_VERSION, PD_MSG_PULL, 1, 1, 0, 0, 16};
    mut(&h);
    uint8_t b[PD_HDR_SIZE];
    pd_hdr_encode(&h, b);
    pd_hdr d;
    return pd_hdr_decode(b, &d, max, e);
}
static void m_magic(pd_hdr *h) { h->magic = 0xdeadbeef; }
static void m_version(pd_hdr *h) { h->version = 99; }
static void m_type(pd_hdr *h) { h->type = 999; }
static void m_len(pd_hdr *h) { h->len = (1ull << 20) + 1; }
static void m_ctrl_len(pd_hdr *h) { h->type = PD_MSG_HELLO; h->len = PD_MAX_CTRL_PAYLOAD + 1; }
static void m_clock(pd_hdr *h) { h->clock = -1; }
static void m_none(pd_hdr *h) { (void)h; }

static void test_header_validation(void) {
    pd_err e = {0};
    CHECK_INT_EQ(decode_after(m_none, 1 << 20, &e), 0);
    CHECK_INT_EQ(decode_after(m_magic, 1 << 20, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "magic"));
    CHECK_INT_EQ(decode_after(m_version, 1 << 20, &e), PARAMD_EVERSION);
    CHECK(strstr(e.msg, "version 99"));
    CHECK_INT_EQ(decode_after(m_type, 1 << 20, &e), PARAMD_EPROTO);
    CHECK_INT_EQ(decode_after(m_len, 1 << 20, &e), PARAMD_ETOOBIG);
    CHECK_INT_EQ(decode_after(m_ctrl_len, UINT64_MAX, &e), PARAMD_ETOOBIG);
    CHECK_INT_EQ(decode_after(m_clock, 1 << 20, &e), PARAMD_EPROTO);
}

static void test_reader_bounds(void) {
    uint8_t b[6] = {1, 0, 0, 0, 3, 0};
    pd_rd r;
    uint32_t v;
    uint64_t w;
    char s[8];
    pd_rd_init(&r, b, sizeof b);
    CHECK_OK(pd_get_u32(&r, &v));
    CHECK_INT_EQ(v, 1);
    CHECK(pd_get_u64(&r, &w) == -1); /* only 2 bytes left */
    CHECK(r.bad);
    CHECK(!pd_rd_done(&r));
    /* a string whose length lies */
    pd_rd_init(&r, b + 4, 2);
    CHECK(pd_get_str(&r, s, sizeof s - 1) == -1);
    /* a string longer than allowed */
    uint8_t b2[] = {9, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'};
    pd_rd_init(&r, b2, sizeof b2);
    CHECK(pd_get_str(&r, s, 7) == -1);
    /* an embedded NUL */
    uint8_t b3[] = {3, 0, 'a', 0, 'c'};
    pd_rd_init(&r, b3, sizeof b3);
    CHECK(pd_get_str(&r, s, 7) == -1);
}

static void test_hello(void) {
    pd_buf b;
    pd_buf_init(&b);
    pd_hello h = {PD_ROLE_WORKER, 3}, d;
    pd_hello_encode(&b, &h);
    pd_err e = {0};
    CHECK_OK(pd_hello_decode(b.p, b.len, &d, &e));
    CHECK_INT_EQ(d.role, PD_ROLE_WORKER);
    CHECK_INT_EQ(d.rank, 3);
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len - 1, &d, &e), PARAMD_EPROTO);
    b.p[0] = 77; /* unknown role */
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    pd_buf_free(&b);
}

static void test_table_def(void) {
    pd_table_def d = {0}, o;
    pd_err e = {0};
    CHECK_OK(pd_spec_parse("rule=sgd lr=0.5 consistency=sync aggregate=sum", &d, &e));
    d.n = 10, d.lo = 5, d.hi = 10;
    pd_buf b;
    pd_buf_init(&b);
    pd_table_def_encode(&b, &d);
    CHECK_OK(pd_table_def_decode(b.p, b.len, &o, &e));
    CHECK_INT_EQ(o.rule, PD_RULE_SGD);
    CHECK_INT_EQ(o.consistency, PD_CONS_SYNC);
    CHECK_INT_EQ(o.aggregate, PD_AGG_SUM);
    CHECK_NEAR(o.hyper[0], 0.5, 0);
    CHECK_INT_EQ(o.lo, 5);
    /* every truncation is rejected */
    for (size_t k = 0; k < b.len; k++)
        CHECK(pd_table_def_decode(b.p, k, &o, &e) != 0);
    /* a range that lies */
    d.lo = 11;
    pd_buf_free(&b);
    pd_buf_init(&b);
    pd_table_def_encode(&b, &d);
    CHECK(pd_table_def_decode(b.p, b.len, &o, &e) != 0);
    pd_buf_free(&b);
}

static void test_spec(void) {
    pd_table_def a = {0}, b = {0};
    pd_err e = {0};
    char ca[PD_MAX_SPEC + 1], cb[PD_MAX_SPEC + 1];
    CHECK_OK(pd_spec_parse("lr=0.1 rule=sgd", &a, &e));
    CHECK_OK(pd_spec_parse("rule=sgd,  lr=0.10", &b, &e));
    pd_spec_canonical(&a, ca, sizeof ca);
    pd_spec_canonical(&b, cb, sizeof cb);
    CHECK_STR_EQ(ca, cb);
    CHECK_OK(pd_spec_parse(NULL, &a, &e));
    CHECK_INT_EQ(a.rule, PD_RULE_ADD);
    CHECK_INT_EQ(a.consistency, PD_CONS_ASYNC);
    CHECK_INT_EQ(pd_spec_parse("rule=nope", &a, &e), PARAMD_EINVAL);
    CHECK(strstr(e.msg, "nope"));
    CHECK_INT_EQ(pd_spec_parse("consistency=maybe", &a, &e), PARAMD_EINVAL);
    CHECK_INT_EQ(pd_spec_parse("lr", &a, &e), PARAMD_EINVAL);
    CHECK_INT_EQ(pd_spec_parse("lr=abc", &a, &e), PARAMD_EINVAL);
    CHECK_INT_EQ(pd_spec_parse("colour=red", &a, &e), PARAMD_EINVAL);
    CHECK(strstr(e.msg, "colour"));
}

static void test_partition(void) {
    uint64_t ns[] = {1, 7, 10, 1000003, 1ull << 40};
    uint32_t Ss[] = {1, 2, 3, 4, 7, 64};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof Ss / sizeof Ss[0]; j++) {
            uint64_t n = ns[i];
            uint32_t S = Ss[j];
            CHECK_INT_EQ(pd_partition_lo(n, S, 0), 0);
            CHECK(pd_partition_lo(n, S, S) == n);
            uint64_t mn = UINT64_MAX, mx = 0;
            for (uint32_t k = 0; k < S; k++) {
                uint64_t lo = pd_partition_lo(n, S, k), hi = pd_partition_lo(n, S, k + 1);
                CHECK(lo <= hi);
                if (hi - lo < mn) mn = hi - lo;
                if (hi - lo > mx) mx = hi - lo;
            }
            CHECK(mx - mn <= 1); /* balanced */
        }
    /* 10 floats on 4 servers: 2,3,2,3 */
    CHECK_INT_EQ(pd_partition_lo(10, 4, 1), 2);
    CHECK_INT_EQ(pd_partition_lo(10, 4, 2), 5);
    CHECK_INT_EQ(pd_partition_lo(10, 4, 3), 7);
}

static void test_errors(void) {
    CHECK_STR_EQ(paramd_err_name(PARAMD_EDUP), "PARAMD_EDUP");
    CHECK(strstr(paramd_strerror(PARAMD_EDUP), "duplicate"));
    CHECK_STR_EQ(paramd_strerror(-12345), "unknown error");
    CHECK_STR_EQ(paramd_strerror(0), "success");
    CHECK_INT_EQ(paramd_version(), PARAMD_VERSION_HEX);
}

int main(void) {
    test_header_roundtrip();
    test_header_validation();
    test_reader_bounds();
    test_hello();
    test_table_def();
    test_spec();
    test_partition();
    test_errors();
    printf("test_wire: ok\n");
    return 0;
}
