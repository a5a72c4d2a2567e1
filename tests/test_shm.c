/*
 * test_shm.c - the shared-memory transport (src/net/shm.c) on its own:
 * frames of every size cross intact both ways (including frames larger
 * than the ring, which wrap and block), zero-copy peek/consume and
 * non-blocking writes, a clean close, a peer process that dies without
 * closing, shutdown from another thread, the receive timeout, and hostile
 * peers: handshakes that lie (no descriptor, unsealed segment, wrong size,
 * wrong magic or version) and a worker that corrupts its ring index are
 * refused with a message, never a crash or a hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "frame/frame.h"
#include "net/conn.h"

#define RING (64u << 10) /* the smallest ring: wrapping and blocking happen */

static int lfd;
static char name[PD_MAX_ADDR + 1];

/* Accept one socket and run the server side of the handshake. */
static pd_conn *accept_one(pd_err *e) {
    int fd = pd_shm_accept(lfd);
    CHECK(fd >= 0);
    return pd_shm_server_handshake(fd, 5000, e);
}

/* A connected pair: the server's handshake runs on a thread while this
 * one connects (the worker waits for the server's answer). */
static void *accept_main(void *arg) {
    pd_err e = {0};
    *(pd_conn **)arg = accept_one(&e);
    return NULL;
}

static void pair(pd_conn **w, pd_conn **s) {
    pthread_t th;
    pd_err e = {0};
    *s = NULL;
    CHECK(pthread_create(&th, NULL, accept_main, s) == 0);
    *w = pd_shm_connect(name, RING, 5000, &e);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(*w != NULL);
    CHECK(*s != NULL);
}

/* ==== An echo server thread ============================================= */

static void *echo_main(void *arg) {
    (void)arg;
    pd_err e = {0};
    pd_conn *c = accept_one(&e);
    CHECK(c != NULL);
    uint8_t *buf = malloc(16u << 20);
    CHECK(buf != NULL);
    for (;;) {
        pd_hdr h;
        int rc = pd_recv_hdr(c, &h, 16u << 20, &e);
        if (rc == PARAMD_ECLOSED) break;
        CHECK_OK(rc);
        CHECK_OK(pd_conn_read(c, buf, (size_t)h.len, 0, &e));
        h.type |= PD_REPLY;
        CHECK_OK(pd_send_frame(c, &h, buf, (size_t)h.len, NULL, 0, NULL, 0, &e));
    }
    free(buf);
    pd_conn_destroy(c);
    return NULL;
}

static void test_echo(void) {
    pthread_t th;
    pd_err e = {0};
    CHECK(pthread_create(&th, NULL, echo_main, NULL) == 0);
    pd_conn *c = pd_shm_connect(name, RING, 5000, &e);
    CHECK(c != NULL);
    CHECK_STR_EQ(c->ops->name, "shm");
    size_t sizes[] = {0, 1, 3, 4096, RING - PD_HDR_SIZE, RING, 3u << 20, 9u << 20};
    uint8_t *out = malloc(9u << 20), *in = malloc(9u << 20);
    CHECK(out && in);
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(i * 7 + k);
        pd_hdr h = {0}, rh;
        h.type = PD_MSG_PUSH;
        h.id = k + 1;
        h.clock = (int64_t)k;
        CHECK_OK(pd_send_frame(c, &h, out, n, NULL, 0, NULL, 0, &e));
        CHECK_OK(pd_recv_hdr(c, &rh, 16u << 20, &e));
        CHECK_INT_EQ(rh.type, PD_MSG_PUSH | PD_REPLY);
        CHECK_INT_EQ(rh.id, k + 1);
        CHECK_INT_EQ(rh.len, n);
        memset(in, 0, n);
        CHECK_OK(pd_conn_read(c, in, n, 0, &e));
        CHECK(memcmp(in, out, n) == 0);
    }
    free(out);
    free(in);
    pd_conn_destroy(c); /* the echo thread sees a clean close */
    CHECK(pthread_join(th, NULL) == 0);
}

/* ==== peek / consume and non-blocking writes ============================ */

static void test_peek_and_try_write(void) {
    pd_err e = {0};
    pd_conn *w, *s;
    pair(&w, &s);
    /* The worker's side takes what fits without blocking: the whole ring,
     * then nothing. */
    uint8_t *big = calloc(1, RING + 1000);
    struct iovec iov[1] = {{big, RING + 1000}}, *p = iov;
    int cnt = 1;
    CHECK_INT_EQ(pd_conn_try_writev(w, &p, &cnt, &e), RING);
    CHECK_INT_EQ(cnt, 1);
    CHECK_INT_EQ(p->iov_len, 1000);
    CHECK_INT_EQ(pd_conn_try_writev(w, &p, &cnt, &e), 0);
    /* The server peeks the first 4096 bytes in place, consumes them. */
    const void *at = NULL;
    CHECK_INT_EQ(pd_conn_peek(s, 4096, &at, &e), 1);
    CHECK(at != NULL);
    pd_conn_consume(s, 4096);
    /* More than the ring can never be contiguous: read instead. */
    CHECK_INT_EQ(pd_conn_peek(s, RING + 4, &at, &e), 0);
    /* Drain the rest, then send floats and peek them in place. */
    CHECK_OK(pd_conn_read(s, big, RING - 4096, 0, &e));
    float f[1000];
    for (int i = 0; i < 1000; i++) f[i] = (float)i * 0.5f;
    struct iovec fi = {f, sizeof f};
    CHECK_OK(pd_conn_writev(w, &fi, 1, &e));
    /* 4000 bytes from offset 0 of the ring (it has wrapped exactly). */
    CHECK_INT_EQ(pd_conn_peek(s, sizeof f, &at, &e), 1);
    CHECK(memcmp(at, f, sizeof f) == 0);
    pd_conn_consume(s, sizeof f);
    /* An unaligned position is not peeked (floats must be aligned). */
    uint8_t three[3] = {1, 2, 3};
    struct iovec ti = {three, 3};
    CHECK_OK(pd_conn_writev(w, &ti, 1, &e));
    uint8_t got3[3];
    CHECK_OK(pd_conn_read(s, got3, 3, 0, &e));
    CHECK(memcmp(got3, three, 3) == 0);
    CHECK_OK(pd_conn_writev(w, &fi, 1, &e));
    CHECK_INT_EQ(pd_conn_peek(s, sizeof f, &at, &e), 0);
    free(big);
    pd_conn_destroy(w);
    /* The worker closed: what it wrote is still delivered, then the end. */
    float back[1000];
    CHECK_OK(pd_conn_read(s, back, sizeof back, 0, &e));
    CHECK(memcmp(back, f, sizeof f) == 0);
    pd_hdr h;
    CHECK_INT_EQ(pd_recv_hdr(s, &h, 1024, &e), PARAMD_ECLOSED);
    pd_conn_destroy(s);
}

/* ==== Peer death, shutdown, timeout ===================================== */

static void test_peer_dies(void) {
    pd_err e = {0};
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        pd_conn *c = pd_shm_connect(name, RING, 5000, &e);
        if (!c) _exit(2);
        uint8_t half[10] = {0};
        struct iovec iov = {half, sizeof half};
        pd_conn_writev(c, &iov, 1, &e); /* a frame cut short */
        raise(SIGKILL);                 /* dies without closing */
    }
    pd_conn *s = accept_one(&e);
    CHECK(s != NULL);
    pd_hdr h;
    /* 10 bytes of a 40-byte header, then nothing: a truncated frame, seen
     * through the socket's end of stream, not a hang. */
    int rc = pd_recv_hdr(s, &h, 1024, &e);
    CHECK_INT_EQ(rc, PARAMD_EIO);
    CHECK(strstr(e.msg, "truncated") != NULL);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st));
    pd_conn_destroy(s);
}

static pd_conn *blocked;
static void *shutdown_later(void *arg) {
    (void)arg;
    pd_conn_shutdown(blocked);
    return NULL;
}

static void test_shutdown_and_timeout(void) {
    pd_err e = {0};
    pd_conn *w, *s;
    pair(&w, &s);
    /* A stalled frame times out with the receive timeout set. */
    pd_conn_set_rcvtimeo(s, 100);
    uint8_t b[8];
    CHECK_INT_EQ(pd_conn_read(s, b, sizeof b, 0, &e), PARAMD_EIO);
    CHECK(strstr(e.msg, "timed out") != NULL);
    /* shutdown from another thread wakes a reader blocked between frames
     * (at a boundary a timeout is not an end: only the shutdown is). */
    blocked = s;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, shutdown_later, NULL) == 0);
    pd_hdr h;
    int rc = pd_recv_hdr(s, &h, 1024, &e);
    CHECK(rc == PARAMD_ECLOSED || rc == PARAMD_EIO);
    CHECK(pthread_join(th, NULL) == 0);
    /* The worker sees the close too: its writes fail. */
    struct iovec iov = {b, sizeof b};
    CHECK_INT_EQ(pd_conn_writev(w, &iov, 1, &e), PARAMD_EIO);
    pd_conn_destroy(s);
    pd_conn_destroy(w);
}

/* ==== Hostile peers ===================================================== */

/* Connect a raw socket to the server's name. */
static int raw_connect(void) {
    struct sockaddr_un sa = {0};
    sa.sun_family = AF_UNIX;
    size_t n = strlen(name + 1);
    memcpy(sa.sun_path + 1, name + 1, n);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(s >= 0);
    CHECK(connect(s, (struct sockaddr *)&sa,
                  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) == 0);
    return s;
}

/* The segment layout of shm.c (a test that builds segments itself, like a
 * hostile worker would): header of 4096 bytes, ring [0] (worker -> server)
 * with its head index at offset 64, data from 4096. */
#define SEG_LEN(ring) (4096 + 2 * (size_t)(ring))

static int make_segment(uint64_t ring, size_t len, int seal) {
    int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, (off_t)len) == 0);
    (void)ring;
    if (seal) CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    return fd;
}

/* Send a handshake request (magic, version, ring) with fd (or none). */
static void send_req(int s, uint32_t magic, uint32_t version, uint64_t ring, int fd) {
    uint8_t raw[16];
    for (int i = 0; i < 4; i++) raw[i] = (uint8_t)(magic >> (8 * i));
    for (int i = 0; i < 4; i++) raw[4 + i] = (uint8_t)(version >> (8 * i));
    for (int i = 0; i < 8; i++) raw[8 + i] = (uint8_t)(ring >> (8 * i));
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {raw, sizeof raw};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (fd >= 0) {
        m.msg_control = ctl.b;
        m.msg_controllen = sizeof ctl.b;
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(h), &fd, sizeof(int));
    }
    CHECK(sendmsg(s, &m, MSG_NOSIGNAL) == (ssize_t)sizeof raw);
}

static void expect_refused(const char *what, uint32_t magic, uint32_t version,
                           uint64_t ring, size_t len, int seal, int with_fd) {
    int s = raw_connect();
    int fd = with_fd ? make_segment(ring, len, seal) : -1;
    send_req(s, magic, version, ring, fd);
    if (fd >= 0) close(fd);
    pd_err e = {0};
    pd_conn *c = accept_one(&e);
    CHECK(c == NULL);
    if (!strstr(e.msg, what)) CHECK_FAIL_("refusal '%s' does not say '%s'", e.msg, what);
    /* The worker is told why: status byte 1, then the message. */
    char reply[600] = {0};
    ssize_t n = recv(s, reply, sizeof reply - 1, MSG_WAITALL);
    CHECK(n >= 2);
    CHECK_INT_EQ(reply[0], 1);
    CHECK(strstr(reply + 1, what) != NULL);
    close(s);
}

static void test_hostile_handshakes(void) {
    uint32_t M = 0x4d485350u;
    expect_refused("not a paramd", 0xdeadbeef, 1, RING, SEG_LEN(RING), 1, 1);
    expect_refused("version", M, 99, RING, SEG_LEN(RING), 1, 1);
    expect_refused("power of two", M, 1, RING + 4, SEG_LEN(RING + 4), 1, 1);
    expect_refused("no segment descriptor", M, 1, RING, SEG_LEN(RING), 1, 0);
    expect_refused("not sealed", M, 1, RING, SEG_LEN(RING), 0, 1);
    expect_refused("size does not match", M, 1, RING, SEG_LEN(RING) - 4096, 1, 1);
    /* A request cut short. */
    int s = raw_connect();
    CHECK(send(s, "PSH", 3, MSG_NOSIGNAL) == 3);
    shutdown(s, SHUT_WR);
    pd_err e = {0};
    CHECK(accept_one(&e) == NULL);
    CHECK(strstr(e.msg, "short") != NULL || strstr(e.msg, "closed") != NULL);
    close(s);
}

static void test_corrupt_index(void) {
    /* A valid handshake from a segment we built, then a head index that
     * claims more than the ring holds: the server's read fails, cleanly. */
    int s = raw_connect();
    int fd = make_segment(RING, SEG_LEN(RING), 1);
    uint8_t *seg = mmap(NULL, SEG_LEN(RING), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(seg != MAP_FAILED);
    send_req(s, 0x4d485350u, 1, RING, fd);
    close(fd);
    pd_err e = {0};
    pd_conn *c = accept_one(&e);
    CHECK(c != NULL);
    char ok[2];
    CHECK(recv(s, ok, 2, MSG_WAITALL) == 2 && ok[0] == 0);
    uint64_t lie = 5 * (uint64_t)RING;
    memcpy(seg + 64, &lie, sizeof lie);
    uint8_t b[64];
    CHECK_INT_EQ(pd_conn_read(c, b, sizeof b, 1, &e), PARAMD_EIO);
    const void *at;
    CHECK(pd_conn_peek(c, 16, &at, &e) < 0);
    pd_conn_destroy(c);
    munmap(seg, SEG_LEN(RING));
    close(s);
}

int main(void) {
    pd_err e = {0};
    CHECK_OK(pd_shm_listen(&lfd, name, sizeof name, &e));
    CHECK(strncmp(name, "@paramd-", 8) == 0);
    /* Bad arguments to connect. */
    CHECK(pd_shm_connect("nope", RING, 100, &e) == NULL);
    CHECK_INT_EQ(e.code, PARAMD_EINVAL);
    CHECK(pd_shm_connect(name, RING + 1, 100, &e) == NULL);
    CHECK_INT_EQ(e.code, PARAMD_EINVAL);
    CHECK(pd_shm_connect("@paramd-nobody-listens-here", RING, 100, &e) == NULL);
    CHECK_INT_EQ(e.code, PARAMD_ECONNECT);
    test_echo();
    test_peek_and_try_write();
    test_peer_dies();
    test_shutdown_and_timeout();
    test_hostile_handshakes();
    test_corrupt_index();
    close(lfd);
    printf("test_shm ok\n");
    return 0;
}
