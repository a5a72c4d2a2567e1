/*
 * test_fault.c - the fault-injecting transport (src/net/fault.c) over a
 * socketpair: short reads and writes still deliver every frame intact, the
 * K-th send or receive fails exactly at K with PARAMD_EIO and breaks the
 * link for both directions and for the peer, and bad specs are refused
 * with a message.
 *
 * The connections under the wrapper use a tiny transport defined here (a
 * socket fd, like tcp.c's table without the TCP parts), so the test needs
 * no listening socket and no port.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "common/common.h"
#include "frame/frame.h"
#include "net/conn.h"
#include "net/fault.h"
#include "wire/wire.h"

/* ==== A socketpair transport ============================================ */

static ssize_t sp_readv(pd_conn *c, const struct iovec *iov, int cnt) {
    return readv(c->fd, iov, cnt);
}
static ssize_t sp_writev(pd_conn *c, const struct iovec *iov, int cnt) {
    struct msghdr m = {0};
    m.msg_iov = (struct iovec *)iov;
    m.msg_iovlen = (size_t)cnt;
    return sendmsg(c->fd, &m, MSG_NOSIGNAL);
}
static void sp_shutdown(pd_conn *c) { shutdown(c->fd, SHUT_RDWR); }
static void sp_destroy(pd_conn *c) {
    close(c->fd);
    pd_free(c);
}
static const pd_transport_ops sp_ops = {"socketpair", sp_readv, sp_writev,
                                        sp_shutdown, sp_destroy, NULL, NULL, NULL, NULL,
                                        NULL, NULL, NULL};

static pd_conn *sp_conn(int fd, const char *name) {
    pd_conn *c = pd_calloc(1, sizeof *c);
    CHECK(c);
    c->ops = &sp_ops;
    c->fd = fd;
    snprintf(c->peer, sizeof c->peer, "%s", name);
    return c;
}

/* Two connected pd_conns; each wrapped when its spec is not NULL. */
static void pair(const char *spec_a, const char *spec_b, pd_conn **a,
                 pd_conn **b) {
    int sv[2];
    pd_err e = {0};
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    *a = sp_conn(sv[0], "peer-b");
    *b = sp_conn(sv[1], "peer-a");
    if (spec_a) {
        *a = pd_fault_wrap(*a, spec_a, &e);
        if (!*a) CHECK_FAIL_("wrap '%s': %s", spec_a, e.msg);
    }
    if (spec_b) {
        *b = pd_fault_wrap(*b, spec_b, &e);
        if (!*b) CHECK_FAIL_("wrap '%s': %s", spec_b, e.msg);
    }
}

/* ==== Frames ============================================================ */

static uint8_t pattern(uint64_t size, uint64_t i) {
    return (uint8_t)((i * 131 + size * 7 + (i >> 9)) & 0xff);
}

/* Send a PUSH frame of `size` pattern bytes, in three parts. */
static int send_pattern(pd_conn *c, uint64_t id, uint64_t size, pd_err *e) {
    uint8_t *p = pd_malloc(size ? size : 1);
    CHECK(p);
    for (uint64_t i = 0; i < size; i++) p[i] = pattern(size, i);
    pd_hdr h = {0};
    h.type = PD_MSG_PUSH;
    h.id = id;
    h.table = 5;
    h.clock = (int64_t)id;
    size_t n1 = size / 3, n2 = size / 2;
    int rc = pd_send_frame(c, &h, p, n1, p + n1, n2, p + n1 + n2,
                           size - n1 - n2, e);
    pd_free(p);
    return rc;
}

/* Receive one frame and check it is send_pattern(id, size)'s. */
static void recv_pattern(pd_conn *c, uint64_t id, uint64_t size) {
    pd_err e = {0};
    pd_hdr h;
    int rc = pd_recv_hdr(c, &h, 1u << 30, &e);
    if (rc) CHECK_FAIL_("frame %llu: %s", (unsigned long long)id, e.msg);
    CHECK_INT_EQ(h.type, PD_MSG_PUSH);
    CHECK(h.id == id);
    CHECK_INT_EQ(h.table, 5);
    CHECK_INT_EQ(h.clock, (int64_t)id);
    CHECK(h.len == size);
    uint8_t *p = pd_malloc(size ? size : 1);
    CHECK(p);
    rc = pd_conn_read(c, p, (size_t)size, 0, &e);
    if (rc) CHECK_FAIL_("payload %llu: %s", (unsigned long long)id, e.msg);
    for (uint64_t i = 0; i < size; i++)
        if (p[i] != pattern(size, i))
            CHECK_FAIL_("frame %llu byte %llu: %u != %u", (unsigned long long)id,
                        (unsigned long long)i, p[i], pattern(size, i));
    pd_free(p);
}

static const uint64_t sizes[] = {0, 1, 2, 3, 7, 40, 41, 1000, 4096, 65537, 300000};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* ==== Short reads and writes ============================================ */

static void *echo_main(void *arg) {
    pd_conn *c = arg;
    for (size_t k = 0; k < NSIZES; k++) {
        recv_pattern(c, k + 1, sizes[k]);
        pd_err e = {0};
        if (send_pattern(c, 100 + k, sizes[k], &e))
            CHECK_FAIL_("echo %zu: %s", k, e.msg);
    }
    return NULL;
}

/* Both ends cut every call short: every frame of every size still arrives
 * whole, in both directions. */
static void test_short_roundtrip(void) {
    pd_conn *a, *b;
    pair("short=7,seed=3", "short=5,seed=9", &a, &b);
    pthread_t t;
    CHECK_OK(pthread_create(&t, NULL, echo_main, b));
    for (size_t k = 0; k < NSIZES; k++) {
        pd_err e = {0};
        if (send_pattern(a, k + 1, sizes[k], &e))
            CHECK_FAIL_("send %zu: %s", k, e.msg);
        recv_pattern(a, 100 + k, sizes[k]);
    }
    CHECK_OK(pthread_join(t, NULL));
    pd_conn_destroy(a);
    pd_conn_destroy(b);
}

/* short=N really cuts: each readv of a large buffer gets 1..N bytes, and
 * over many calls every length in 1..N shows up. */
static void test_short_lengths(void) {
    pd_conn *a, *b;
    pair(NULL, "short=7,seed=11", &a, &b);
    uint8_t big[4096] = {0}, got[4096];
    int seen[8] = {0};
    size_t total = 0;
    CHECK(write(a->fd, big, sizeof big) == (ssize_t)sizeof big);
    while (total < sizeof big) {
        struct iovec iov = {got, sizeof got};
        ssize_t r = b->ops->readv(b, &iov, 1);
        if (r < 1 || r > 7) CHECK_FAIL_("short=7 read gave %zd bytes", r);
        seen[r]++;
        total += (size_t)r;
    }
    for (int n = 1; n <= 7; n++)
        if (!seen[n]) CHECK_FAIL_("no read of %d bytes in 4096 bytes", n);
    /* and writes: each writev of a large buffer moves 1..N bytes */
    pd_conn_destroy(b);
    pd_conn_destroy(a);
    pair("short=3", NULL, &a, &b);
    struct iovec iov[2] = {{big, 10}, {big + 10, 10}};
    for (int i = 0; i < 100; i++) {
        ssize_t w = a->ops->writev(a, iov, 2);
        if (w < 1 || w > 3) CHECK_FAIL_("short=3 write moved %zd bytes", w);
    }
    pd_conn_destroy(a);
    pd_conn_destroy(b);
}

/* ==== Failing the K-th call ============================================= */

/* send_fail=3: the first two frames arrive, the third send fails with
 * PARAMD_EIO, every later send and receive fails too, and the peer sees a
 * clean end of stream after the two frames. */
static void test_send_fail(void) {
    pd_conn *a, *b;
    pd_err e = {0};
    pair("send_fail=3", NULL, &a, &b);
    CHECK_OK(send_pattern(a, 1, 40, &e));
    CHECK_OK(send_pattern(a, 2, 0, &e));
    CHECK_INT_EQ(send_pattern(a, 3, 40, &e), PARAMD_EIO);
    CHECK(strstr(e.msg, "peer-b"));
    CHECK_INT_EQ(send_pattern(a, 4, 40, &e), PARAMD_EIO);
    uint8_t x;
    CHECK_INT_EQ(pd_conn_read(a, &x, 1, 1, &e), PARAMD_EIO);
    recv_pattern(b, 1, 40);
    recv_pattern(b, 2, 0);
    pd_hdr h;
    CHECK_INT_EQ(pd_recv_hdr(b, &h, 1u << 30, &e), PARAMD_ECLOSED);
    pd_conn_destroy(a);
    pd_conn_destroy(b);

    /* With short writes the K-th call falls inside a frame: the peer sees
     * a truncated frame, never a wrong one. */
    pair("send_fail=5,short=3", NULL, &a, &b);
    CHECK_INT_EQ(send_pattern(a, 1, 100, &e), PARAMD_EIO);
    CHECK_INT_EQ(pd_recv_hdr(b, &h, 1u << 30, &e), PARAMD_EIO);
    CHECK(strstr(e.msg, "truncated"));
    pd_conn_destroy(a);
    pd_conn_destroy(b);
}

/* recv_fail=3: two header-only frames are read (one readv each), the third
 * read fails with PARAMD_EIO, later reads and sends fail too, and the
 * peer's sends fail once the link is down. */
static void test_recv_fail(void) {
    pd_conn *a, *b;
    pd_err e = {0};
    pair(NULL, "recv_fail=3", &a, &b);
    for (uint64_t id = 1; id <= 4; id++) CHECK_OK(send_pattern(a, id, 0, &e));
    recv_pattern(b, 1, 0);
    recv_pattern(b, 2, 0);
    pd_hdr h;
    CHECK_INT_EQ(pd_recv_hdr(b, &h, 1u << 30, &e), PARAMD_EIO);
    CHECK(strstr(e.msg, "peer-a"));
    CHECK_INT_EQ(pd_recv_hdr(b, &h, 1u << 30, &e), PARAMD_EIO);
    CHECK_INT_EQ(send_pattern(b, 9, 10, &e), PARAMD_EIO);
    CHECK_INT_EQ(send_pattern(a, 5, 10, &e), PARAMD_EIO); /* broken pipe */
    CHECK_INT_EQ(pd_recv_hdr(a, &h, 1u << 30, &e), PARAMD_ECLOSED);
    pd_conn_destroy(a);
    pd_conn_destroy(b);
}

/* A failing send wakes a reader blocked on the same connection in another
 * thread (the client's receiver), as a broken link would. */
static void *blocked_reader(void *arg) {
    pd_conn *c = arg;
    pd_err e = {0};
    pd_hdr h;
    int rc = pd_recv_hdr(c, &h, 1u << 30, &e);
    return (void *)(intptr_t)rc;
}

static void test_fail_wakes_reader(void) {
    pd_conn *a, *b;
    pd_err e = {0};
    pair("send_fail=1", NULL, &a, &b);
    pthread_t t;
    void *res;
    CHECK_OK(pthread_create(&t, NULL, blocked_reader, a));
    CHECK_INT_EQ(send_pattern(a, 1, 40, &e), PARAMD_EIO);
    CHECK_OK(pthread_join(t, &res));
    CHECK((intptr_t)res == PARAMD_ECLOSED || (intptr_t)res == PARAMD_EIO);
    pd_conn_destroy(a);
    pd_conn_destroy(b);
}

/* ==== The wrapper's identity and specs ================================== */

static void test_identity(void) {
    int sv[2];
    pd_err e = {0};
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    pd_conn *in = sp_conn(sv[0], "10.0.0.1:99");
    pd_conn *w = pd_fault_wrap(in, "short=100", &e);
    CHECK(w && w != in);
    CHECK_INT_EQ(w->fd, sv[0]);
    CHECK_STR_EQ(w->peer, "10.0.0.1:99");
    CHECK_STR_EQ(w->ops->name, "fault");
    pd_conn_destroy(w); /* destroys inner: the fd is closed */
    CHECK(fcntl(sv[0], F_GETFD) == -1 && errno == EBADF);
    /* A refused spec destroys inner too. */
    in = sp_conn(sv[1], "x");
    CHECK(pd_fault_wrap(in, "nope=1", &e) == NULL);
    CHECK_INT_EQ(e.code, PARAMD_EINVAL);
    CHECK(fcntl(sv[1], F_GETFD) == -1 && errno == EBADF);
    CHECK(pd_fault_wrap(NULL, "short=1", &e) == NULL);
}

static void test_specs(void) {
    static const struct {
        const char *spec, *why;
    } bad[] = {
        {"", "empty"},
        {"bogus=1", "unknown key 'bogus'"},
        {"send_fail", "not key=value"},
        {"send_fail=", "send_fail= is not a number"},
        {"send_fail=0", "send_fail=0 is not a number"},
        {"recv_fail=-1", "recv_fail=-1"},
        {"short=0", "short=0"},
        {"short=7x", "short=7x"},
        {"short=2000000000", "1..2^30"},
        {"seed=abc", "seed=abc"},
        {"short=7,", "empty item"},
        {"short=7,,seed=1", "empty item"},
        {"short=7,short=8", "given twice"},
        {"short=7 seed=1", "short=7 seed=1 is not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pd_fault_spec s = {0};
        pd_err e = {0};
        int rc = pd_fault_parse(bad[i].spec, &s, &e);
        if (rc != PARAMD_EINVAL)
            CHECK_FAIL_("spec '%s' gave %d, not PARAMD_EINVAL", bad[i].spec, rc);
        if (!strstr(e.msg, bad[i].why))
            CHECK_FAIL_("spec '%s': message '%s' lacks '%s'", bad[i].spec,
                        e.msg, bad[i].why);
        CHECK(s.send_fail == 0 && s.short_max == 0); /* untouched */
    }
    pd_fault_spec s;
    pd_err e = {0};
    CHECK_OK(pd_fault_parse("send_fail=3", &s, &e));
    CHECK(s.send_fail == 3 && s.recv_fail == 0 && s.short_max == 0 && s.seed == 1);
    CHECK_OK(pd_fault_parse("recv_fail=10,short=100,seed=0", &s, &e));
    CHECK(s.send_fail == 0 && s.recv_fail == 10 && s.short_max == 100 && s.seed == 0);
}

int main(void) {
    test_specs();
    test_identity();
    test_short_lengths();
    test_short_roundtrip();
    test_send_fail();
    test_recv_fail();
    test_fail_wakes_reader();
    printf("test_fault: ok\n");
    return 0;
}
