/*
 * test_wire.c - frame encode/decode/validation, the bounds-checked reader,
 * table specs, dense partitioning, the validation of BATCH payloads
 * (pd_batch_parse, pd_batch_next), fuzzed, and SERVER_REJOIN's records
 * (wire/rejoin.c).
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "table/spec.h"
#include "wire/rejoin.h"
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

/* ==== Batches ========================================================== */

/* Append one frame (header + len payload bytes of `fill`) to b. */
static void put_frame(pd_buf *b, uint16_t type, uint64_t id, uint32_t table,
                      int32_t status, int64_t clock, size_t len, uint8_t fill) {
    pd_hdr h = {PD_MAGIC, PD_PROTO_VERSION, type, id, table, status, clock, len};
    uint8_t hb[PD_HDR_SIZE];
    pd_hdr_encode(&h, hb);
    pd_put_bytes(b, hb, sizeof hb);
    for (size_t i = 0; i < len; i++) pd_put_bytes(b, &fill, 1);
}

/* A valid batch of 5 inner requests of every allowed type. */
static void good_batch(pd_buf *b) {
    pd_buf_init(b);
    put_frame(b, PD_MSG_PUSH, 1, 3, 0, 7, 8 + 16, 0x11);
    put_frame(b, PD_MSG_PULL, 2, 3, 0, 7, 16, 0x22);
    put_frame(b, PD_MSG_SET, 3, 3, 0, 0, 8 + 4, 0x33);
    put_frame(b, PD_MSG_SPARSE_PUSH, 4, 5, 0, 7, 8 + 8 + 8, 0x44);
    put_frame(b, PD_MSG_SPARSE_PULL, 5, 5, 0, 7, 8 + 8, 0x55);
    CHECK(!b->oom);
}

static pd_batch_item items[PD_MAX_BATCH / PD_HDR_SIZE];

/* Parse p[0..len); on success check the items tile the payload exactly. */
static int parse(const uint8_t *p, size_t len, size_t *n, pd_err *e) {
    memset(e, 0, sizeof *e);
    int rc = pd_batch_parse(p, len, items, n, e);
    if (rc) {
        CHECK(e->code == rc && e->msg[0]); /* always a reason */
        return rc;
    }
    size_t at = 0;
    CHECK(*n >= 1 && *n <= len / PD_HDR_SIZE);
    for (size_t i = 0; i < *n; i++) {
        CHECK(items[i].off == at + PD_HDR_SIZE);
        CHECK(pd_batch_allowed(items[i].h.type) && !(items[i].h.type & PD_REPLY));
        CHECK(items[i].h.status == 0 && items[i].h.clock >= 0);
        at = items[i].off + (size_t)items[i].h.len;
        CHECK(at <= len);
    }
    CHECK(at == len);
    return 0;
}

/* Rewrite the header of inner frame k of b (at byte off) through mut. */
static void remake(pd_buf *b, size_t off, void (*mut)(pd_hdr *)) {
    pd_hdr h;
    pd_err e = {0};
    pd_hdr_decode(b->p + off, &h, UINT64_MAX, &e);
    mut(&h);
    pd_hdr_encode(&h, b->p + off);
}
static void m_nested(pd_hdr *h) { h->type = PD_MSG_BATCH; }
static void m_hello(pd_hdr *h) { h->type = PD_MSG_HELLO; }
static void m_stats(pd_hdr *h) { h->type = PD_MSG_STATS; }
static void m_create(pd_hdr *h) { h->type = PD_MSG_TABLE_CREATE; }
static void m_join(pd_hdr *h) { h->type = PD_MSG_WORKER_JOIN; }
static void m_replytype(pd_hdr *h) { h->type = PD_MSG_PUSH | PD_REPLY; }
static void m_status(pd_hdr *h) { h->status = PARAMD_EDUP; }
static void m_overrun(pd_hdr *h) { h->len += 1000; }
static void m_huge(pd_hdr *h) { h->len = UINT64_MAX; }
static void m_huge_hello(pd_hdr *h) { h->type = PD_MSG_HELLO; h->len = 1ull << 40; }

static void test_batch(void) {
    pd_buf b;
    pd_err e;
    size_t n;
    good_batch(&b);
    CHECK_OK(parse(b.p, b.len, &n, &e));
    CHECK_INT_EQ(n, 5);
    CHECK_INT_EQ(items[1].h.type, PD_MSG_PULL);
    CHECK_INT_EQ(items[1].h.id, 2);
    CHECK_INT_EQ(items[1].off, PD_HDR_SIZE + 24 + PD_HDR_SIZE);
    CHECK_INT_EQ(b.p[items[4].off], 0x55);
    /* zero inner frames */
    CHECK_INT_EQ(parse(b.p, 0, &n, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "no inner frames"));
    /* under one header, items (room for len / 40 = 0) may be NULL: found
     * by the live fuzz in tool_badframes under UBSan */
    for (size_t len = 0; len < PD_HDR_SIZE; len++)
        CHECK_INT_EQ(pd_batch_parse(b.p, len, NULL, &n, &e), PARAMD_EPROTO);
    /* every cut: valid only at a frame boundary (a shorter batch) */
    size_t ends[5], at = 0;
    for (int i = 0; i < 5; i++) ends[i] = at = items[i].off + (size_t)items[i].h.len;
    for (size_t cut = 1; cut < b.len; cut++) {
        int boundary = 0;
        for (int i = 0; i < 5; i++) boundary |= cut == ends[i];
        int rc = parse(b.p, cut, &n, &e);
        if (boundary) CHECK_INT_EQ(rc, 0);
        else CHECK_INT_EQ(rc, PARAMD_EPROTO);
    }
    /* trailing bytes: 1..39 after the last frame */
    for (size_t extra = 1; extra < PD_HDR_SIZE; extra++) {
        pd_buf t;
        good_batch(&t);
        for (size_t i = 0; i < extra; i++) pd_put_bytes(&t, "", 1);
        CHECK_INT_EQ(parse(t.p, t.len, &n, &e), PARAMD_EPROTO);
        CHECK(strstr(e.msg, "not a whole 40-byte header"));
        pd_buf_free(&t);
    }
    /* forbidden types, each in the middle (frame 2, at ends[1]) */
    struct { void (*mut)(pd_hdr *); const char *want; } bad[] = {
        {m_nested, "is a BATCH"},       {m_hello, "is a HELLO"},
        {m_stats, "is a STATS"},        {m_create, "is a TABLE_CREATE"},
        {m_join, "is a WORKER_JOIN"},   {m_replytype, "is a PUSH|REPLY"},
        {m_status, "with status -12"},  {m_overrun, "announces 1012 payload bytes"},
        {m_huge, "announces"},          {m_huge_hello, "is a HELLO"},
        {m_magic, "bad magic"},         {m_type, "unknown message type 999"},
        {m_clock, "negative clock"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        pd_buf t;
        good_batch(&t);
        remake(&t, ends[1], bad[k].mut);
        CHECK_INT_EQ(parse(t.p, t.len, &n, &e), PARAMD_EPROTO);
        if (!strstr(e.msg, bad[k].want) || !strstr(e.msg, "inner frame 2"))
            CHECK_FAIL_("case %zu: message '%s' lacks '%s'", k, e.msg, bad[k].want);
        pd_buf_free(&t);
    }
    {
        pd_buf t;
        good_batch(&t);
        remake(&t, 0, m_version);
        CHECK_INT_EQ(parse(t.p, t.len, &n, &e), PARAMD_EVERSION);
        CHECK(strstr(e.msg, "inner frame 0") && strstr(e.msg, "version 99"));
        pd_buf_free(&t);
    }
    /* replies: pd_batch_next with reply set takes error replies of
     * allowed types and refuses requests */
    {
        pd_buf r;
        pd_buf_init(&r);
        put_frame(&r, PD_MSG_PUSH | PD_REPLY, 1, 3, PARAMD_EDUP, 0, 5, 'x');
        put_frame(&r, PD_MSG_PULL | PD_REPLY, 2, 3, 0, 4, 16, 0);
        put_frame(&r, PD_MSG_PULL, 3, 3, 0, 0, 16, 0);
        size_t off = 0;
        pd_hdr h;
        CHECK_OK(pd_batch_next(r.p, r.len, &off, 0, 1, &h, &e));
        CHECK_INT_EQ(h.status, PARAMD_EDUP);
        CHECK_INT_EQ(off, PD_HDR_SIZE + 5);
        CHECK_OK(pd_batch_next(r.p, r.len, &off, 1, 1, &h, &e));
        CHECK_INT_EQ(h.clock, 4);
        size_t keep = off;
        CHECK_INT_EQ(pd_batch_next(r.p, r.len, &off, 2, 1, &h, &e), PARAMD_EPROTO);
        CHECK(strstr(e.msg, "is a PULL:") && strstr(e.msg, "replies"));
        CHECK_INT_EQ(off, keep); /* unchanged on failure */
        pd_buf_free(&r);
    }
    /* the BATCH header's own limits */
    {
        pd_hdr h = {PD_MAGIC, PD_PROTO_VERSION, PD_MSG_BATCH, 1, 0, 0, 0, PD_MAX_BATCH};
        uint8_t hb[PD_HDR_SIZE];
        pd_hdr d;
        pd_hdr_encode(&h, hb);
        CHECK_OK(pd_hdr_decode(hb, &d, 1u << 20, &e));
        h.len = PD_MAX_BATCH + 1;
        pd_hdr_encode(&h, hb);
        CHECK_INT_EQ(pd_hdr_decode(hb, &d, UINT64_MAX, &e), PARAMD_ETOOBIG);
        h.type = PD_MSG_BATCH | PD_REPLY;
        h.len = PD_MAX_BATCH_REPLY;
        pd_hdr_encode(&h, hb);
        CHECK_OK(pd_hdr_decode(hb, &d, 1u << 20, &e));
        h.len = PD_MAX_BATCH_REPLY + 1;
        pd_hdr_encode(&h, hb);
        CHECK_INT_EQ(pd_hdr_decode(hb, &d, UINT64_MAX, &e), PARAMD_ETOOBIG);
        CHECK_STR_EQ(pd_msg_name(PD_MSG_BATCH | PD_REPLY), "BATCH|REPLY");
    }
    /* the most frames a batch can hold: all headers, no payload */
    {
        pd_buf t;
        pd_buf_init(&t);
        for (size_t i = 0; i < PD_MAX_BATCH / PD_HDR_SIZE; i++)
            put_frame(&t, PD_MSG_PULL, i, 1, 0, 0, 0, 0);
        CHECK_OK(parse(t.p, t.len, &n, &e));
        CHECK_INT_EQ(n, PD_MAX_BATCH / PD_HDR_SIZE);
        pd_buf_free(&t);
    }
    pd_buf_free(&b);
}

/* Fuzz: random mutations of a valid batch, and random bytes.  The parser
 * must never read outside the payload (the sanitizer build checks), must
 * always say why it refused, and whatever it accepts must tile the payload
 * with allowed request frames (parse() checks).  Deterministic seed. */
static void test_batch_fuzz(void) {
    uint64_t x = 0x2545f4914f6cdd1dull;
    pd_buf g;
    good_batch(&g);
    uint8_t *p = malloc(g.len + 64);
    int accepted = 0, refused = 0;
    for (int it = 0; it < 200000; it++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = g.len;
        memcpy(p, g.p, len);
        int nmut = 1 + (int)(x % 4);
        for (int k = 0; k < nmut; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            switch (x % 5) {
            case 0: if (len) p[(x >> 8) % len] = (uint8_t)(x >> 32); break; /* a byte */
            case 1: if (len) p[(x >> 8) % len] ^= (uint8_t)(1u << ((x >> 40) % 8)); break;
            case 2: len = (size_t)((x >> 8) % (len + 1)); break;          /* a cut */
            case 3: if (len < g.len + 64) p[len++] = (uint8_t)(x >> 16); break; /* extra */
            case 4: { /* an inner length field, to a boundary-ish value */
                static const uint64_t v[] = {0, 1, 7, 8, 16, 39, 40, 41, 1000, UINT64_MAX};
                size_t f = (x >> 8) % 5, off = 0;
                for (size_t i = 0; i < f && off + PD_HDR_SIZE <= len; i++)
                    off = items[i].off + (size_t)items[i].h.len; /* stale is fine */
                if (off + PD_HDR_SIZE <= len)
                    for (int i = 0; i < 8; i++)
                        p[off + 32 + i] = (uint8_t)(v[(x >> 16) % 10] >> (8 * i));
                break;
            }
            }
        }
        size_t n;
        pd_err e;
        uint8_t *q = malloc(len ? len : 1); /* exact size: ASan sees overreads */
        memcpy(q, p, len);
        if (parse(q, len, &n, &e) == 0) accepted++;
        else refused++;
        free(q);
    }
    for (int it = 0; it < 20000; it++) {
        size_t len = 1 + (size_t)(x % 300), n;
        uint8_t *q = malloc(len);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            q[i] = (uint8_t)x;
        }
        pd_err e;
        CHECK(parse(q, len, &n, &e) != 0); /* random bytes are never a batch */
        free(q);
    }
    printf("batch fuzz: %d mutations accepted, %d refused\n", accepted, refused);
    CHECK(accepted > 0 && refused > 0);
    free(p);
    pd_buf_free(&g);
}

/* SERVER_REJOIN's records (wire/rejoin.c): what a server writes reads back
 * the same, in one part or cut between records into several; every
 * malformed record is refused naming what is wrong. */
static void rejoin_read_ok(pd_rejoin *r, const pd_buf *b, size_t cut) {
    pd_err e = {0};
    memset(r, 0, sizeof *r);
    CHECK_OK(pd_rejoin_read(r, b->p, cut, &e));
    CHECK_OK(pd_rejoin_read(r, b->p + cut, b->len - cut, &e));
}

static void rejoin_refused(const void *p, size_t n, int code, const char *has) {
    pd_rejoin r;
    pd_err e = {0};
    memset(&r, 0, sizeof r);
    CHECK_INT_EQ(pd_rejoin_read(&r, p, n, &e), code);
    if (!strstr(e.msg, has)) CHECK_FAIL_("'%s' does not say '%s'", e.msg, has);
    pd_rejoin_free(&r);
}

static void test_rejoin(void) {
    uint8_t key[PD_REJOIN_KEY_BYTES];
    for (int i = 0; i < PD_REJOIN_KEY_BYTES; i++) key[i] = (uint8_t)(i * 7);
    pd_buf b;
    pd_buf_init(&b);
    pd_rejoin_put_head(&b, 1, 3, 2, 4, key, "10.0.0.2:7001");
    size_t head = b.len;
    pd_rejoin_put_table(&b, 1, "w", 100, "rule=sgd consistency=sync aggregate=mean lr=0.1");
    size_t t1 = b.len;
    pd_rejoin_put_table(&b, 7, "emb", 8, "rule=add consistency=async aggregate=sum init=zeros seed=1");
    size_t tables = b.len;
    pd_rejoin_put_rank(&b, 0, 3, 0);
    pd_rejoin_put_rank(&b, 2, 0, 1);
    pd_rejoin_put_rank(&b, 3, 5, 1);
    CHECK(!b.oom);
    size_t cuts[] = {0, head, tables, b.len};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        pd_rejoin r;
        rejoin_read_ok(&r, &b, cuts[c]);
        CHECK(r.have_head && r.idx == 1 && r.S == 3 && r.W == 2 && r.M == 4);
        CHECK(!memcmp(r.key, key, sizeof key) && !strcmp(r.addr, "10.0.0.2:7001"));
        CHECK_INT_EQ(r.nt, 2);
        CHECK(r.t[0].id == 1 && !strcmp(r.t[0].name, "w") && r.t[0].n == 100);
        CHECK(r.t[1].id == 7 && !strcmp(r.t[1].spec, "rule=add consistency=async "
                                                      "aggregate=sum init=zeros seed=1"));
        CHECK(r.gen[0] == 3 && r.gen[1] == 0 && r.gen[2] == 0 && r.gen[3] == 5);
        CHECK(r.gone[0] == 0 && r.gone[1] == 0 && r.gone[2] == 1 && r.gone[3] == 1);
        pd_rejoin_free(&r);
        CHECK(r.t == NULL && r.gen == NULL && !r.have_head); /* and zeroed */
    }
    /* every cut inside a record is refused */
    for (size_t n = 1; n < b.len; n++) {
        /* (the ends of records: a rank record is 10 bytes) */
        if (n == head || n == t1 || n == tables || n == tables + 10 || n == tables + 20)
            continue;
        rejoin_refused(b.p, n, PARAMD_EPROTO, "SERVER_REJOIN");
    }
    /* a second head; a table or rank before the head; unknown records */
    pd_buf two;
    pd_buf_init(&two);
    pd_rejoin_put_head(&two, 0, 1, 1, 1, key, "a:1");
    pd_rejoin_put_head(&two, 0, 1, 1, 1, key, "a:1");
    rejoin_refused(two.p, two.len, PARAMD_EPROTO, "a bad or repeated head");
    pd_buf_free(&two);
    rejoin_refused(b.p + head, tables - head, PARAMD_EPROTO, "no head before record 84");
    rejoin_refused(b.p + tables, b.len - tables, PARAMD_EPROTO, "no head before record 82");
    pd_buf_init(&two);
    pd_rejoin_put_head(&two, 0, 1, 1, 1, key, "a:1");
    uint8_t junk = 'Q';
    pd_put_bytes(&two, &junk, 1);
    rejoin_refused(two.p, two.len, PARAMD_EPROTO, "an unknown record 81");
    pd_buf_free(&two);
    /* values out of range: index >= S, W > M, M past the limit, a rank
     * >= M, gone not 0/1, table id 0 or past the limit, an empty name */
    struct { uint32_t idx, S, W, M; } heads[] = {
        {3, 3, 1, 1}, {0, 0, 1, 1}, {0, 1, 3, 2}, {0, 1, 0, 1}, {0, 1, 1, PD_REJOIN_MAX_SLOTS + 1},
        {0, PD_MAX_SERVERS + 1, 1, 1}};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        pd_buf_init(&two);
        pd_rejoin_put_head(&two, heads[i].idx, heads[i].S, heads[i].W, heads[i].M, key, "a:1");
        rejoin_refused(two.p, two.len, PARAMD_EPROTO, "a bad or repeated head");
        pd_buf_free(&two);
    }
    pd_buf_init(&two);
    pd_rejoin_put_head(&two, 0, 1, 1, 2, key, "a:1");
    size_t h2 = two.len;
    pd_rejoin_put_rank(&two, 2, 1, 0);
    rejoin_refused(two.p, two.len, PARAMD_EPROTO, "a bad rank");
    two.len = h2;
    pd_rejoin_put_rank(&two, 1, 1, 0);
    two.p[two.len - 1] = 2; /* gone = 2 */
    rejoin_refused(two.p, two.len, PARAMD_EPROTO, "a bad rank");
    const uint32_t bad_ids[] = {0, PD_REJOIN_MAX_TABLES + 1};
    for (size_t i = 0; i < 2; i++) {
        two.len = h2;
        pd_rejoin_put_table(&two, bad_ids[i], "t", 1, "");
        rejoin_refused(two.p, two.len, PARAMD_EPROTO, "a bad table");
    }
    two.len = h2;
    pd_rejoin_put_table(&two, 1, "", 1, "");
    rejoin_refused(two.p, two.len, PARAMD_EPROTO, "a bad table");
    /* PD_REJOIN_MAX_TABLES tables are taken, one more is not */
    two.len = h2;
    for (uint32_t i = 0; i < PD_REJOIN_MAX_TABLES; i++) pd_rejoin_put_table(&two, i + 1, "t", 1, "");
    {
        pd_rejoin r;
        pd_err e = {0};
        memset(&r, 0, sizeof r);
        CHECK_OK(pd_rejoin_read(&r, two.p, two.len, &e));
        CHECK_INT_EQ(r.nt, PD_REJOIN_MAX_TABLES);
        pd_rejoin_free(&r);
    }
    pd_rejoin_put_table(&two, 1, "t", 1, "");
    rejoin_refused(two.p, two.len, PARAMD_EPROTO, "more than 4095 tables");
    pd_buf_free(&two);
    pd_buf_free(&b);
}

int main(void) {
    test_header_roundtrip();
    test_header_validation();
    test_reader_bounds();
    test_table_def();
    test_spec();
    test_partition();
    test_errors();
    test_batch();
    test_batch_fuzz();
    test_rejoin();
    printf("test_wire: ok\n");
    return 0;
}
