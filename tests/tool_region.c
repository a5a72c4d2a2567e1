/*
 * tool_region.c - shared buffers (paramd_alloc) against a live cluster
 * (used by tests/it_region.sh; not a test by itself).
 *
 *   tool_region COORD_HOST:PORT
 *
 * The cluster has 2 servers and 2 worker slots.  Worker A (rank 0) uses
 * shared buffers; worker B (rank 1) connects with shared_buffers=no.
 *
 * 1. Values.  Pushes from and pulls into paramd_alloc memory (at offsets
 *    inside the buffer, whole tables over both servers, ranges across the
 *    shard boundary, ranges too small for a reference) give exactly the
 *    values plain memory gives, async and sync (A and B pushing together).
 * 2. The path.  Each server's STATS "shared buffers" line counts the
 *    mappings and the requests served by reference: over shared memory A's
 *    large requests go by reference and its buffers are mapped in both
 *    servers; over TCP (PARAMD_TRANSPORT=tcp), and for B always, nothing
 *    is mapped and nothing goes by reference.  paramd_free unmaps; a
 *    pointer paramd_alloc did not return is refused.
 * 3. Bad frames, on raw connections to server 0: REGION_MAP without a
 *    descriptor (TCP), with an unsealed memfd, a regular file, a memfd
 *    smaller than announced, the descriptor of another region, sizes of 0
 *    or not a multiple of 4, a second map of one id, more than
 *    PD_MAX_REGIONS mappings; PUSH_REGION / PULL_REGION naming no region,
 *    passing its end, misaligned, overflowing offsets, bad payload sizes;
 *    REGION_UNMAP of an unknown id.  Each gets its error reply, the
 *    connection goes on, a table on the server keeps exactly its values,
 *    and a closed connection's mappings are dropped.
 * Exit 0 and "region ok" if everything held, 1 with a message otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "frame/frame.h"
#include "net/conn.h"
#include "paramd.h"
#include "rawpeer.h"
#include "table/spec.h"
#include "wire/wire.h"

#define RTABLE 4090 /* the raw part's table, on server 0 only */
#define RN 1024

static const char *coord;
static char addr[2][PD_MAX_ADDR + 1];
static uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];
static pd_welcome welcome;
static int over_shm;

/* ==== Raw peers ========================================================= */

static pd_conn *dial(const char *a) { return rp_dial(a); }

static void hello(pd_conn *c, uint32_t role, int32_t rank) {
    pd_err e = {0};
    if (rp_hello(c, role, rank, &welcome, &e)) CHECK_FAIL_("HELLO: %s", e.msg);
}

/* A worker connection to server k over shared memory, or NULL if the
 * server offers none. */
static pd_conn *dial_shm(int k) {
    pd_conn *c = dial(addr[k]);
    hello(c, PD_ROLE_WORKER, 0);
    pd_conn *s = rp_shm(&welcome);
    pd_conn_destroy(c);
    return s;
}

/* One request; the reply status (its message printed), or a connection
 * error.  A successful reply's payload is skipped. */
static int raw(pd_conn *c, uint16_t type, uint32_t table, const void *p, size_t n) {
    static uint64_t id = 100;
    pd_hdr h = {0}, rh;
    pd_err e = {0};
    h.type = type, h.id = ++id, h.table = table;
    int rc = pd_send_frame(c, &h, p, n, NULL, 0, NULL, 0, &e);
    if (!rc) rc = pd_recv_hdr(c, &rh, 1 << 30, &e);
    if (rc) return rc;
    if (rh.id != h.id) CHECK_FAIL_("reply id %llu to request %llu", (unsigned long long)rh.id,
                                   (unsigned long long)h.id);
    if (rh.status < 0) {
        rc = pd_recv_payload(c, &rh, buf, &e);
        printf("  %s: %s: %s\n", pd_msg_name(type), paramd_err_name(rh.status),
               rc ? "?" : (char *)buf);
        return rh.status;
    }
    return pd_conn_skip(c, rh.len, &e);
}

static void le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* REGION_MAP of `id`, `bytes`, passing fd (if >= 0) tagged `tag` first. */
static int map_region(pd_conn *c, int fd, uint64_t tag, uint64_t id, uint64_t bytes) {
    if (fd >= 0 && pd_conn_send_fd(c, fd, tag) != 0)
        CHECK_FAIL_("passing a descriptor: %s", strerror(errno));
    uint8_t p[16];
    le64(p, id);
    le64(p + 8, bytes);
    return raw(c, PD_MSG_REGION_MAP, 0, p, sizeof p);
}

static int region_op(pd_conn *c, uint16_t type, uint64_t off, uint64_t count, uint64_t id,
                     uint64_t at) {
    uint8_t p[32];
    le64(p, off), le64(p + 8, count), le64(p + 16, id), le64(p + 24, at);
    return raw(c, type, RTABLE, p, sizeof p);
}

/* A sealed memfd of `bytes`, as paramd_alloc makes them. */
static int sealed_memfd(size_t bytes, int seal) {
    int fd = memfd_create("tool_region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0) CHECK_FAIL_("memfd: %s", strerror(errno));
    if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
        CHECK_FAIL_("seal: %s", strerror(errno));
    return fd;
}

/* The "shared buffers" counters of server k: mapped, pushes, pulls. */
typedef struct counters {
    unsigned long long mapped, bytes, pushes, pulls;
} counters;

static counters stats_of(int k) {
    pd_conn *c = dial(addr[k]);
    hello(c, PD_ROLE_TOOL, -1);
    pd_hdr h = {0}, rh;
    pd_err e = {0};
    h.type = PD_MSG_STATS;
    h.id = 2;
    if (pd_rpc(c, &h, NULL, 0, &rh, buf, &e)) CHECK_FAIL_("STATS: %s", e.msg);
    pd_conn_destroy(c);
    counters n = {0};
    const char *line = strstr((char *)buf, "shared buffers mapped");
    if (!line || sscanf(line, "shared buffers mapped %llu bytes %llu pushes %llu pulls %llu",
                        &n.mapped, &n.bytes, &n.pushes, &n.pulls) != 4)
        CHECK_FAIL_("server %d's STATS has no shared buffers line:\n%s", k, (char *)buf);
    return n;
}

static counters stats_sum(void) {
    counters a = stats_of(0), b = stats_of(1);
    return (counters){a.mapped + b.mapped, a.bytes + b.bytes, a.pushes + b.pushes,
                      a.pulls + b.pulls};
}

/* ==== 1 and 2: workers ================================================== */

static void expect_equal(const float *got, const float *want, uint64_t n, const char *what) {
    for (uint64_t i = 0; i < n; i++)
        if (got[i] != want[i])
            CHECK_FAIL_("%s: element %llu is %g, expected %g", what, (unsigned long long)i,
                        got[i], want[i]);
}

static void workers(paramd_client *A) {
    char opt[400];
    paramd_client *B;
    snprintf(opt, sizeof opt, "coordinator=%s rank=1 shared_buffers=no", coord);
    if (paramd_connect(&B, opt)) CHECK_FAIL_("connect B: %s", paramd_last_error(NULL));
    CHECK_INT_EQ(paramd_num_servers(A), 2);
    counters s0 = stats_sum();
    CHECK_INT_EQ(s0.mapped, 0);

    /* --- sync: A (shared buffers) and B (plain) push each clock */
    const uint64_t n2 = 300001;
    paramd_table *sa, *sb;
    const char *spec = "rule=add consistency=sync aggregate=sum";
    float *init = paramd_alloc(A, n2 * 4), *sg = paramd_alloc(A, n2 * 4),
          *sp = paramd_alloc(A, n2 * 4);
    CHECK(init && sg && sp);
    for (uint64_t i = 0; i < n2; i++) init[i] = (float)(i % 5);
    CHECK_OK(paramd_table_open(A, "r.sync", n2, spec, init, &sa));
    CHECK_OK(paramd_table_open(B, "r.sync", n2, spec, NULL, &sb));
    float *ref = malloc(n2 * 4), *bp = malloc(n2 * 4), *bgr = malloc(n2 * 4);
    CHECK(ref && bp && bgr);
    memcpy(ref, init, n2 * 4);
    counters s7 = stats_sum();
    for (int step = 0; step < 4; step++) {
        CHECK_OK(paramd_pull(sa, 0, n2, sp));
        CHECK_OK(paramd_pull(sb, 0, n2, bp));
        expect_equal(sp, ref, n2, "sync pull of A (shared buffer)");
        expect_equal(bp, ref, n2, "sync pull of B");
        for (uint64_t i = 0; i < n2; i++) {
            sg[i] = (float)((i + (uint64_t)step) % 3);
            bgr[i] = (float)step;
            ref[i] += sg[i] + bgr[i];
        }
        CHECK_OK(paramd_push(sa, 0, n2, sg));
        CHECK_OK(paramd_push(sb, 0, n2, bgr));
        paramd_clock(A);
        paramd_clock(B);
    }
    CHECK_OK(paramd_pull(sa, 0, n2, sp));
    expect_equal(sp, ref, n2, "sync after 4 clocks");
    counters s8 = stats_sum();
    CHECK_INT_EQ(s8.pushes - s7.pushes, over_shm ? 8 : 0);
    CHECK_INT_EQ(s8.pulls - s7.pulls, over_shm ? 10 : 0);
    printf("ok: sync values, one worker by reference, one not\n");
    CHECK_OK(paramd_free(A, sg));
    CHECK_OK(paramd_free(A, sp));
    CHECK_OK(paramd_free(A, init));
    free(ref), free(bp), free(bgr);

    /* --- async, worker A: a table over both servers (shards of ~2 MB) */
    const uint64_t n = 1000003;
    paramd_table *t;
    CHECK_OK(paramd_table_open(A, "r.async", n, "rule=add consistency=async", NULL, &t));
    float *g = paramd_alloc(A, (n + 16) * 4), *p = paramd_alloc(A, (n + 16) * 4);
    CHECK(g && p);
    CHECK(g[0] == 0.0f && p[n + 15] == 0.0f); /* zeroed */
    counters s1 = stats_sum();
    CHECK_INT_EQ(s1.mapped, over_shm ? 4 : 0); /* 2 buffers x 2 servers */
    float *gg = g + 5, *pp = p + 3; /* inside the buffers, not at their start */
    float *want = malloc(n * 4), *plain = malloc(n * 4);
    CHECK(want && plain);
    for (uint64_t i = 0; i < n; i++) {
        gg[i] = (float)(i % 17) - 8.0f;
        want[i] = 2.0f * gg[i];
    }
    CHECK_OK(paramd_push(t, 0, n, gg));
    paramd_clock(A); /* one push of each element per clock */
    paramd_request *rq;
    CHECK_OK(paramd_push_async(t, 0, n, gg, &rq));
    CHECK_OK(paramd_wait(rq));
    CHECK_OK(paramd_pull(t, 0, n, pp));
    expect_equal(pp, want, n, "async pull into a shared buffer");
    CHECK_OK(paramd_pull(t, 0, n, plain));
    expect_equal(plain, want, n, "async pull into plain memory");
    CHECK_OK(paramd_pull_async(t, 0, n, pp, &rq));
    CHECK_OK(paramd_wait(rq));
    expect_equal(pp, want, n, "async pull_async into a shared buffer");
    counters s2 = stats_sum();
    /* 2 pushes and 2 pulls, each one reference per server */
    CHECK_INT_EQ(s2.pushes - s1.pushes, over_shm ? 4 : 0);
    CHECK_INT_EQ(s2.pulls - s1.pulls, over_shm ? 4 : 0);
    /* across the shard boundary (500002), from inside the buffer */
    uint64_t a = 400000, m = 300000;
    paramd_clock(A);
    CHECK_OK(paramd_push(t, a, m, gg + a));
    for (uint64_t i = a; i < a + m; i++) want[i] += gg[i];
    memset(pp, 0, n * 4);
    CHECK_OK(paramd_pull(t, a, m, pp + a));
    expect_equal(pp + a, want + a, m, "a range across both shards");
    /* a part too small for a reference goes through the connection */
    counters s3 = stats_sum();
    paramd_clock(A);
    CHECK_OK(paramd_push(t, 10, 100, gg + 10));
    for (uint64_t i = 10; i < 110; i++) want[i] += gg[i];
    CHECK_OK(paramd_pull(t, 0, 1000, pp));
    expect_equal(pp, want, 1000, "small ranges");
    counters s4 = stats_sum();
    CHECK_INT_EQ(s4.pushes, s3.pushes);
    CHECK_INT_EQ(s4.pulls, s3.pulls);
    printf("ok: async values through shared buffers (%s)\n",
           over_shm ? "by reference" : "over TCP: as plain memory");

    /* --- worker B never maps: shared_buffers=no */
    float *bg = paramd_alloc(B, n * 4);
    CHECK(bg);
    counters s5 = stats_sum();
    CHECK_INT_EQ(s5.mapped, s4.mapped);
    paramd_table *tb;
    CHECK_OK(paramd_table_open(B, "r.async", n, "rule=add consistency=async", NULL, &tb));
    for (uint64_t i = 0; i < n; i++) bg[i] = 1.0f, want[i] += 1.0f;
    CHECK_OK(paramd_push(tb, 0, n, bg));
    CHECK_OK(paramd_pull(tb, 0, n, bg));
    expect_equal(bg, want, n, "worker B (shared_buffers=no)");
    counters s6 = stats_sum();
    CHECK_INT_EQ(s6.pushes, s5.pushes);
    CHECK_INT_EQ(s6.pulls, s5.pulls);
    printf("ok: shared_buffers=no maps nothing and moves the floats\n");

    /* --- paramd_free */
    CHECK_INT_EQ(paramd_free(A, gg), PARAMD_EINVAL); /* not what alloc returned */
    CHECK(strstr(paramd_last_error(A), "paramd_alloc did not return"));
    CHECK_OK(paramd_free(A, g));
    CHECK_INT_EQ(paramd_free(A, g), PARAMD_EINVAL);
    counters s9 = stats_sum();
    CHECK_INT_EQ(s9.mapped, over_shm ? 2 : 0); /* p, in both servers */
    CHECK(paramd_alloc(A, 0) == NULL);
    CHECK(strstr(paramd_last_error(A), "paramd_alloc of 0 bytes"));
    /* p is left allocated: paramd_close releases it */
    free(want), free(plain);
    CHECK_OK(paramd_close(B));
    CHECK_OK(paramd_close(A));
    printf("ok: paramd_free and paramd_close release the buffers\n");
}

/* ==== 3: bad frames ===================================================== */

static void still_fine(pd_conn *c, const char *after) {
    uint8_t q[16];
    float got[RN];
    le64(q, 0), le64(q + 8, RN);
    pd_hdr h = {0}, rh;
    pd_err e = {0};
    h.type = PD_MSG_PULL, h.id = 7, h.table = RTABLE;
    if (pd_send_frame(c, &h, q, 16, NULL, 0, NULL, 0, &e) || pd_recv_hdr(c, &rh, 1 << 30, &e) ||
        rh.status != 0 || rh.len != RN * 4 || pd_conn_read(c, got, RN * 4, 0, &e))
        CHECK_FAIL_("after %s: the pull failed (%s)", after, e.msg);
    for (int i = 0; i < RN; i++)
        if (got[i] != (float)i)
            CHECK_FAIL_("after %s: element %d is %g, expected %d", after, i, got[i], i);
    printf("ok: connection and table fine after %s\n", after);
}

static void bad_frames(void) {
    /* table RTABLE on server 0 alone, values 0, 1, 2, ... */
    pd_conn *c = dial(addr[0]);
    hello(c, PD_ROLE_WORKER, 0);
    pd_table_def d = {0};
    pd_err e = {0};
    CHECK_OK(pd_spec_parse("rule=add", &d, &e));
    d.n = RN, d.lo = 0, d.hi = RN;
    pd_buf b;
    pd_buf_init(&b);
    pd_table_def_encode(&b, &d);
    CHECK_OK(raw(c, PD_MSG_TABLE_CREATE, RTABLE, b.p, b.len));
    pd_buf_free(&b);
    uint8_t set[8 + RN * 4];
    le64(set, 0);
    for (int i = 0; i < RN; i++) {
        float v = (float)i;
        memcpy(set + 8 + 4 * i, &v, 4);
    }
    CHECK_OK(raw(c, PD_MSG_SET, RTABLE, set, sizeof set));

    /* over TCP: no descriptor can come */
    CHECK_INT_EQ(map_region(c, -1, 0, 1, 4096), PARAMD_EPROTO);
    CHECK_INT_EQ(raw(c, PD_MSG_REGION_MAP, 0, "abc", 3), PARAMD_EPROTO);
    CHECK_INT_EQ(region_op(c, PD_MSG_PUSH_REGION, 0, 4, 1, 0), PARAMD_EINVAL);
    CHECK_INT_EQ(region_op(c, PD_MSG_PULL_REGION, 0, 4, 1, 0), PARAMD_EINVAL);
    CHECK_INT_EQ(raw(c, PD_MSG_PULL_REGION, RTABLE, "0123456789012345678901234567890", 31),
                 PARAMD_EPROTO);
    CHECK_INT_EQ(raw(c, PD_MSG_REGION_UNMAP, 0, "12345678", 8), PARAMD_EINVAL);
    still_fine(c, "region frames over TCP");
    pd_conn_destroy(c);
    if (!over_shm) return;

    c = dial_shm(0);
    if (!c) CHECK_FAIL_("server 0 offers no shared memory");
    int fd = sealed_memfd(65536, 0);
    CHECK_INT_EQ(map_region(c, fd, 1, 1, 65536), PARAMD_EPROTO); /* not sealed */
    close(fd);
    char path[] = "/tmp/tool_region.XXXXXX";
    fd = mkstemp(path);
    CHECK(fd >= 0 && ftruncate(fd, 65536) == 0);
    unlink(path);
    CHECK_INT_EQ(map_region(c, fd, 1, 1, 65536), PARAMD_EPROTO); /* a file */
    close(fd);
    fd = sealed_memfd(4096, 1);
    CHECK_INT_EQ(map_region(c, fd, 1, 1, 65536), PARAMD_EPROTO); /* too small */
    CHECK_INT_EQ(map_region(c, fd, 2, 1, 4096), PARAMD_EPROTO);  /* wrong tag */
    CHECK_INT_EQ(map_region(c, fd, 1, 1, 0), PARAMD_EINVAL);
    CHECK_INT_EQ(map_region(c, fd, 1, 1, 4094), PARAMD_EINVAL);
    close(fd);
    still_fine(c, "bad REGION_MAPs");

    /* a malformed REGION_MAP still takes its descriptor: the next one
     * (the good region below) gets its own, not this one */
    fd = sealed_memfd(4096, 1);
    if (pd_conn_send_fd(c, fd, 5) != 0) CHECK_FAIL_("passing a descriptor: %s", strerror(errno));
    CHECK_INT_EQ(raw(c, PD_MSG_REGION_MAP, 0, "abc", 3), PARAMD_EPROTO);
    close(fd);
    /* a good region of 64 KiB */
    fd = sealed_memfd(65536, 1);
    float *mine = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(mine != MAP_FAILED);
    CHECK_OK(map_region(c, fd, 7, 7, 65536));
    CHECK_INT_EQ(map_region(c, fd, 7, 7, 65536), PARAMD_EINVAL); /* mapped already */
    close(fd);
    counters k0 = stats_of(0);
    CHECK_INT_EQ(k0.mapped, 1);
    CHECK_INT_EQ(k0.bytes, 65536);
    /* lying references: nothing applied */
    CHECK_INT_EQ(region_op(c, PD_MSG_PUSH_REGION, 0, RN, 8, 0), PARAMD_EINVAL);
    CHECK_INT_EQ(region_op(c, PD_MSG_PUSH_REGION, 0, RN, 7, 2), PARAMD_ERANGE);
    CHECK_INT_EQ(region_op(c, PD_MSG_PUSH_REGION, 0, 2, 7, 65532), PARAMD_ERANGE);
    CHECK_INT_EQ(region_op(c, PD_MSG_PUSH_REGION, 0, 2, 7, UINT64_MAX - 3), PARAMD_ERANGE);
    CHECK_INT_EQ(region_op(c, PD_MSG_PULL_REGION, 0, RN, 7, 65536 - 1024), PARAMD_ERANGE);
    CHECK_INT_EQ(region_op(c, PD_MSG_PUSH_REGION, 0, UINT64_MAX, 7, 0), PARAMD_ERANGE);
    CHECK_INT_EQ(region_op(c, PD_MSG_PUSH_REGION, RN - 1, 2, 7, 0), PARAMD_ERANGE);
    still_fine(c, "lying region references");
    /* good references: a pull into the region, a push of zeros from it */
    CHECK_OK(region_op(c, PD_MSG_PULL_REGION, 0, RN, 7, 4096));
    for (int i = 0; i < RN; i++)
        if (mine[1024 + i] != (float)i)
            CHECK_FAIL_("PULL_REGION wrote %g at %d, expected %d", mine[1024 + i], i, i);
    memset(mine, 0, 4096);
    CHECK_OK(region_op(c, PD_MSG_PUSH_REGION, 0, RN, 7, 0));
    still_fine(c, "good region references");
    CHECK_INT_EQ(raw(c, PD_MSG_REGION_UNMAP, 0, "\x08\0\0\0\0\0\0\0", 8), PARAMD_EINVAL);
    CHECK_OK(raw(c, PD_MSG_REGION_UNMAP, 0, "\x07\0\0\0\0\0\0\0", 8));
    CHECK_INT_EQ(region_op(c, PD_MSG_PULL_REGION, 0, RN, 7, 0), PARAMD_EINVAL);
    munmap(mine, 65536);
    CHECK_INT_EQ(stats_of(0).mapped, 0);

    /* at most PD_MAX_REGIONS per connection */
    for (uint64_t id = 1; id <= PD_MAX_REGIONS; id++) {
        fd = sealed_memfd(4096, 1);
        CHECK_OK(map_region(c, fd, id, id, 4096));
        close(fd);
    }
    fd = sealed_memfd(4096, 1);
    CHECK_INT_EQ(map_region(c, fd, 9999, 9999, 4096), PARAMD_ETOOBIG);
    close(fd);
    CHECK_INT_EQ(stats_of(0).mapped, PD_MAX_REGIONS);
    still_fine(c, "the mapping limit");
    /* the mappings go with the connection: the server drops them when it
     * sees the close (checked on its counter, for at most 20 s) */
    pd_conn_destroy(c);
    struct timespec ts = {0, 20 * 1000 * 1000};
    int tries = 0;
    while (stats_of(0).mapped != 0 && ++tries < 1000) nanosleep(&ts, NULL);
    CHECK_INT_EQ(stats_of(0).mapped, 0);
    printf("ok: a closed connection's mappings are dropped\n");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tool_region COORD_HOST:PORT\n");
        return 2;
    }
    coord = argv[1];
    const char *tr = getenv("PARAMD_TRANSPORT");
    over_shm = !tr || strcmp(tr, "tcp") != 0;
    /* the map: the servers' addresses */
    pd_map m;
    rp_map(coord, &m);
    if (m.S != 2) CHECK_FAIL_("the cluster map names %u servers, not 2", m.S);
    for (int k = 0; k < 2; k++) snprintf(addr[k], sizeof addr[k], "%s", m.addr[k]);
    pd_map_free(&m);
    /* worker A (rank 0) first: the raw frames of bad_frames speak for it */
    char opt[400];
    paramd_client *A;
    snprintf(opt, sizeof opt, "coordinator=%s rank=0", coord);
    if (paramd_connect(&A, opt)) CHECK_FAIL_("connect A: %s", paramd_last_error(NULL));
    rp_speak_for(A);
    bad_frames();
    workers(A);
    printf("region ok\n");
    return 0;
}
