/*
 * shm.c - the same-host shared-memory transport.
 *
 * What it is.  A connection is two byte rings in one shared-memory segment
 * (a memfd: anonymous, sealed, never a file in /dev/shm), one ring per
 * direction, plus the Unix-domain socket that carried the segment's file
 * descriptor.  readv/writev copy straight between the caller's buffers and
 * the ring, so a pull reply still lands directly in the caller's buffer
 * and a frame costs two memcpy (in, out) and no system call while both
 * sides are busy.  Everything above this file (frames, the client's
 * receiver thread, the server's connection threads) is the same as over
 * TCP: this is one more table of transport functions (conn.h).
 *
 * Setup.  A server listens on an abstract Unix socket with a random name
 * ("@paramd-<32 hex>", vanishing with the process, nothing to clean up) and
 * tells each worker the name in its HELLO reply.  A worker that can reach
 * the name is on the same host (and network namespace): it creates the
 * segment, seals its size, sends the descriptor with SCM_RIGHTS and a
 * small request (magic, version, ring size), and the server answers one
 * status byte plus a message.  Then the worker says HELLO again over the
 * new connection and drops the TCP one.  A worker on another host finds no
 * such name and stays on TCP.
 *
 * Rings.  Each ring has a producer index `head` and a consumer index `tail`
 * (bytes ever written / read, so head - tail is the fill), each on its own
 * cache line.  The producer copies into [head, ...) modulo the ring size
 * and publishes head with a release store every PD_SHM_PUBLISH bytes, so
 * the consumer starts copying out while the producer still copies in (a
 * 1 MiB chunk crosses in pipelined slices on two cores).
 *
 * Waiting.  A side that finds its ring empty (reader) or full (writer)
 * checks a few dozen times, then for up to PD_SHM_YIELD_NS checks between
 * sched_yield() calls, then sleeps on a futex word of the ring.  Why the
 * yielding: a futex wake-up is not a "sync" wake-up like a socket's, so the
 * sleeper is woken on another, halted vCPU, which on a virtual machine
 * costs many times a round trip through the ring; yielding keeps the vCPU
 * awake while still giving it to any runnable thread (a pure spin starves
 * the peer when the vCPUs are loaded).  But on a loaded machine a yield
 * can hand the rest of the time slice to a busy process, and the waiter
 * comes back a whole slice later.  So a yield that took longer than 200 us
 * (the CPU was lost) makes this thread skip the yielding for its next
 * 1000 waits (pd_yield in common.h): idle machines keep the fast path,
 * loaded ones sleep at once and pay a lost slice once per 1000 waits.
 * bench/README.md ("Waiters that stop yielding", "figures once in
 * comments") has what was measured each way.  To sleep it reads the word,
 * raises its `waiting` flag, re-checks the index, and waits for the word
 * to change.  The other side publishes an index and then, if the flag is
 * up, bumps the word and wakes it.  Flag store / index load on one side
 * and index store / flag load on the other are all seq_cst, so at least
 * one side sees the other: no lost wake-up.  Sleeps last at most
 * PD_SHM_POLL_MS; after each one the waiter checks the socket, whose end
 * of stream says the peer process is gone (exited, crashed, killed) even
 * though it never marked the segment closed.  So a dead peer is noticed
 * within PD_SHM_POLL_MS and nothing hangs.
 *
 * Trust.  The server maps memory the worker can write at any time, so it
 * trusts nothing in it: it keeps its own copy of the ring size and of its
 * own index, takes the peer's index only to compute a fill, and a fill
 * larger than the ring is a protocol error (EIO), never an out-of-bounds
 * copy.  The segment's size is sealed (F_SEAL_SHRINK|F_SEAL_GROW) and
 * checked before mapping, so the worker cannot shrink it under the server
 * (which would raise SIGBUS).
 *
 * Threading: as for every transport (conn.h), one reader and one writer at
 * a time; shutdown may be called from any thread.
 *
 * Who the peer is.  Anyone on the host who can reach the abstract name
 * can make this setup (as with a loopback TCP port: the name is listed in
 * /proc/net/unix, it is no secret); nothing but the rings comes of it.
 * The first frame on the new connection must be HELLO, and the server
 * runs the same handshake on it as on TCP (frame/hello.h: the cluster
 * secret's challenge-response, the rank ticket), so a peer without the
 * secret is refused there.  Its log lines name the peer by the process
 * and user the kernel gives for the socket (SO_PEERCRED), the nearest a
 * Unix socket has to an address.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "net/conn.h"

#define PD_SHM_MAGIC 0x4d485350u  /* "PSHM" little-endian */
#define PD_SHM_VERSION 1u
#define PD_SHM_HDR 4096u          /* segment header; rings follow */
#define PD_SHM_PUBLISH (64u << 10) /* publish the producer index this often */
#define PD_SHM_SPIN 64          /* index checks before yielding */
#define PD_SHM_YIELD_NS 50000   /* then checks between sched_yield() calls */
#define PD_SHM_POLL_MS 50         /* longest sleep before checking the peer */
#define PD_SHM_NAME_PREFIX "paramd-"

/* ==== Types ============================================================= */

/* One direction.  Every field is in shared memory and written by exactly
 * one side: head, data_seq by the producer (data_seq also by anyone
 * closing), cons_wait and tail, space_seq... see below. */
typedef struct shm_ring {
    uint64_t head;       /* producer: bytes ever written */
    char pad0[56];
    uint64_t tail;       /* consumer: bytes ever read */
    char pad1[56];
    uint32_t data_seq;   /* futex: bumped when data arrives (or on close) */
    uint32_t cons_wait;  /* consumer: 1 while asleep on data_seq */
    char pad2[56];
    uint32_t space_seq;  /* futex: bumped when space frees (or on close) */
    uint32_t prod_wait;  /* producer: 1 while asleep on space_seq */
    char pad3[56];
} shm_ring;

typedef struct shm_seg {
    uint32_t magic, version;
    uint64_t ring_bytes;
    uint32_t closed;     /* either side: the connection is over */
    char pad[44];
    shm_ring ring[2];    /* [0] worker -> server, [1] server -> worker */
} shm_seg;

typedef struct shm_impl {
    shm_seg *seg;
    size_t map_len;
    uint64_t cap, mask;  /* own copies: never re-read from the segment */
    shm_ring *rx, *tx;   /* the ring this side reads, and writes */
    uint8_t *rx_data, *tx_data;
    uint64_t rx_tail;    /* own index copies */
    uint64_t tx_head;
    int shut;            /* local shutdown (atomic) */
    int peer_gone;       /* the socket reached end of stream (atomic) */
    int rcvtimeo_ms;     /* 0: none */
} shm_impl;

/* The handshake request, little-endian, after SCM_RIGHTS. */
typedef struct shm_req {
    uint32_t magic, version;
    uint64_t ring_bytes;
} shm_req;

/* ==== Helpers =========================================================== */


static int futex_wait(uint32_t *addr, uint32_t val, int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    return (int)syscall(SYS_futex, addr, FUTEX_WAIT, val, &ts, NULL, 0);
}

static void futex_wake(uint32_t *addr) {
    syscall(SYS_futex, addr, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* 1 if the connection is over for this side: shut down here, closed by
 * the peer, or the peer process is gone. */
static int is_closed(pd_conn *c) {
    shm_impl *m = c->impl;
    return __atomic_load_n(&m->shut, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&m->seg->closed, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&m->peer_gone, __ATOMIC_ACQUIRE);
}

/* Check the socket: its end of stream (or an error) means the peer's
 * process has gone without closing the segment. */
static void check_peer(pd_conn *c) {
    shm_impl *m = c->impl;
    /* Not POLLIN: a descriptor the peer passed (send_fd) waits there. */
    struct pollfd p = {c->fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        __atomic_store_n(&m->peer_gone, 1, __ATOMIC_RELEASE);
}

/* Wait until *idx differs from `seen` (ready), the connection closes, or the
 * deadline (ns, 0 = none) passes.  `seq`/`flag` are the futex word and
 * waiting flag of this side.  Returns 1 ready, 0 closed, -1 timed out. */
static int wait_change(pd_conn *c, const uint64_t *idx, uint64_t seen,
                       uint32_t *seq, uint32_t *flag, int64_t deadline) {
    for (int i = 0; i < PD_SHM_SPIN; i++) {
        if (__atomic_load_n(idx, __ATOMIC_ACQUIRE) != seen) return 1;
        if (is_closed(c)) return 0;
        cpu_relax();
    }
    if (pd_yield_ok()) {
        int64_t end = now_ns() + PD_SHM_YIELD_NS;
        while (now_ns() < end) {
            if (__atomic_load_n(idx, __ATOMIC_ACQUIRE) != seen) return 1;
            if (is_closed(c)) return 0;
            if (pd_yield() < 0) break; /* loaded: sleep instead */
        }
    }
    for (;;) {
        uint32_t s = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
        /* Both seq_cst: the store of the flag comes before the load of
         * the index in the single total order of seq_cst operations
         * (publish, below, is the mirror image). */
        __atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(idx, __ATOMIC_SEQ_CST) != seen) {
            __atomic_store_n(flag, 0, __ATOMIC_RELAXED);
            return 1;
        }
        if (is_closed(c)) {
            __atomic_store_n(flag, 0, __ATOMIC_RELAXED);
            return 0;
        }
        int ms = PD_SHM_POLL_MS;
        if (deadline) {
            int64_t left = (deadline - now_ns()) / 1000000;
            if (left <= 0) {
                __atomic_store_n(flag, 0, __ATOMIC_RELAXED);
                return -1;
            }
            if (left < ms) ms = (int)left;
        }
        if (futex_wait(seq, s, ms) != 0 && errno == ETIMEDOUT) check_peer(c);
        __atomic_store_n(flag, 0, __ATOMIC_RELAXED);
    }
}

/* Publish an index (*idx = v) and wake the other side if it sleeps.
 * Store and flag load are seq_cst, as are the waiter's flag store and index
 * load (wait_change): of four seq_cst operations on two words, at least one
 * side's load sees the other side's store (no "store buffering" outcome),
 * which is what the fence pair that used to stand here guaranteed.  It
 * costs the same (on x86 the seq_cst store is one xchg, a full barrier
 * like the fence was), and ThreadSanitizer, which does not model fences,
 * understands it. */
static void publish(uint64_t *idx, uint64_t v, uint32_t *seq, uint32_t *flag) {
    __atomic_store_n(idx, v, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(flag, __ATOMIC_SEQ_CST)) {
        __atomic_add_fetch(seq, 1, __ATOMIC_SEQ_CST);
        futex_wake(seq);
    }
}

static void wake_all(shm_seg *seg) {
    for (int i = 0; i < 2; i++) {
        __atomic_add_fetch(&seg->ring[i].data_seq, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&seg->ring[i].space_seq, 1, __ATOMIC_SEQ_CST);
        futex_wake(&seg->ring[i].data_seq);
        futex_wake(&seg->ring[i].space_seq);
    }
}

/* ==== Transport table =================================================== */

static ssize_t shm_readv(pd_conn *c, const struct iovec *iov, int cnt) {
    shm_impl *m = c->impl;
    shm_ring *r = m->rx;
    int64_t deadline = m->rcvtimeo_ms ? now_ns() + (int64_t)m->rcvtimeo_ms * 1000000 : 0;
    uint64_t head;
    for (;;) {
        head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
        if (head != m->rx_tail) break;
        int w = wait_change(c, &r->head, m->rx_tail, &r->data_seq, &r->cons_wait,
                            deadline);
        if (w == 1) continue;
        /* Data the peer wrote before closing is still delivered. */
        head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
        if (head != m->rx_tail) break;
        if (w == 0) return 0;
        errno = EAGAIN;
        return -1;
    }
    uint64_t avail = head - m->rx_tail;
    if (avail > m->cap) { /* the peer wrote garbage into its index */
        errno = EPROTO;
        return -1;
    }
    size_t done = 0;
    for (int i = 0; i < cnt && avail > 0; i++) {
        uint8_t *dst = iov[i].iov_base;
        size_t want = iov[i].iov_len;
        while (want > 0 && avail > 0) {
            uint64_t at = m->rx_tail & m->mask;
            uint64_t n = m->cap - at;
            if (n > avail) n = avail;
            if (n > want) n = want;
            memcpy(dst, m->rx_data + at, (size_t)n);
            dst += n, want -= (size_t)n, avail -= n, done += (size_t)n;
            m->rx_tail += n;
        }
    }
    publish(&r->tail, m->rx_tail, &r->space_seq, &r->prod_wait);
    return (ssize_t)done;
}

/* Copy iov into the ring; with `block`, wait for space before the first
 * byte, else return 0 when the ring is full. */
static ssize_t ring_write(pd_conn *c, const struct iovec *iov, int cnt, int block) {
    shm_impl *m = c->impl;
    shm_ring *r = m->tx;
    size_t done = 0;
    int i = 0;
    size_t off = 0; /* within iov[i] */
    while (i < cnt) {
        if (is_closed(c)) {
            if (done) break;
            errno = EPIPE;
            return -1;
        }
        uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
        uint64_t used = m->tx_head - tail;
        if (used > m->cap) {
            errno = EPROTO;
            return -1;
        }
        if (used == m->cap) {
            if (done || !block) break; /* a partial write: the caller loops */
            /* Closed: the check at the top of the loop fails the write. */
            wait_change(c, &r->tail, tail, &r->space_seq, &r->prod_wait, 0);
            continue;
        }
        uint64_t space = m->cap - used;
        if (space > PD_SHM_PUBLISH) space = PD_SHM_PUBLISH;
        while (space > 0 && i < cnt) {
            const uint8_t *src = (const uint8_t *)iov[i].iov_base + off;
            size_t want = iov[i].iov_len - off;
            if (want == 0) {
                i++, off = 0;
                continue;
            }
            uint64_t at = m->tx_head & m->mask;
            uint64_t n = m->cap - at;
            if (n > space) n = space;
            if (n > want) n = want;
            memcpy(m->tx_data + at, src, (size_t)n);
            m->tx_head += n, space -= n, off += (size_t)n, done += (size_t)n;
        }
        publish(&r->head, m->tx_head, &r->data_seq, &r->cons_wait);
    }
    return (ssize_t)done;
}

static ssize_t shm_writev(pd_conn *c, const struct iovec *iov, int cnt) {
    return ring_write(c, iov, cnt, 1);
}

static ssize_t shm_try_writev(pd_conn *c, const struct iovec *iov, int cnt) {
    return ring_write(c, iov, cnt, 0);
}

/* The next n bytes, in place, once they are all in the ring (the peer
 * publishes them in slices).  Only when they do not wrap around the end of
 * the ring and are aligned for floats: otherwise the caller reads. */
static int shm_peek(pd_conn *c, size_t n, const void **p) {
    shm_impl *m = c->impl;
    shm_ring *r = m->rx;
    uint64_t at = m->rx_tail & m->mask;
    if (n == 0 || n > m->cap - at || (at & 3) != 0) return 0;
    int64_t deadline = m->rcvtimeo_ms ? now_ns() + (int64_t)m->rcvtimeo_ms * 1000000 : 0;
    for (;;) {
        uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
        uint64_t avail = head - m->rx_tail;
        if (avail > m->cap) {
            errno = EPROTO;
            return -1;
        }
        if (avail >= n) {
            *p = m->rx_data + at;
            return 1;
        }
        int w = wait_change(c, &r->head, head, &r->data_seq, &r->cons_wait, deadline);
        if (w == 1) continue;
        head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
        if (head - m->rx_tail >= n && head - m->rx_tail <= m->cap) continue;
        errno = w == 0 ? 0 : EAGAIN;
        return -1;
    }
}

static void shm_consume(pd_conn *c, size_t n) {
    shm_impl *m = c->impl;
    m->rx_tail += n;
    publish(&m->rx->tail, m->rx_tail, &m->rx->space_seq, &m->rx->prod_wait);
}

static void shm_shutdown(pd_conn *c) {
    shm_impl *m = c->impl;
    __atomic_store_n(&m->shut, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&m->seg->closed, 1, __ATOMIC_RELEASE);
    wake_all(m->seg);
    shutdown(c->fd, SHUT_RDWR);
}

static void shm_destroy(pd_conn *c) {
    shm_impl *m = c->impl;
    if (m) {
        __atomic_store_n(&m->seg->closed, 1, __ATOMIC_RELEASE);
        wake_all(m->seg);
        munmap(m->seg, m->map_len);
        pd_free(m);
    }
    close(c->fd);
    pd_free(c);
}

static void shm_set_rcvtimeo(pd_conn *c, int ms) {
    shm_impl *m = c->impl;
    m->rcvtimeo_ms = ms > 0 ? ms : 0;
}

/* Send n bytes with descriptor fd attached (SCM_RIGHTS).  As sendmsg. */
static ssize_t send_with_fd(int sock, const void *p, size_t n, int fd, int flags) {
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {(void *)p, n};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.b;
    msg.msg_controllen = sizeof ctl.b;
    struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd, sizeof(int));
    ssize_t k;
    do k = sendmsg(sock, &msg, MSG_NOSIGNAL | flags);
    while (k < 0 && errno == EINTR);
    return k;
}

/* Receive up to n bytes and the descriptor that came with them: *fd is
 * the first one passed (-1: none; any others are closed), and *trunc says
 * the control data did not fit.  As recvmsg. */
static ssize_t recv_with_fd(int sock, void *p, size_t n, int *fd, int *trunc, int flags) {
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = {p, n};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.b;
    msg.msg_controllen = sizeof ctl.b;
    ssize_t k;
    do k = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
    while (k < 0 && errno == EINTR);
    *fd = -1;
    *trunc = k >= 0 && (msg.msg_flags & MSG_CTRUNC);
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); k >= 0 && h; h = CMSG_NXTHDR(&msg, h))
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
            h->cmsg_len >= CMSG_LEN(sizeof(int))) {
            size_t m = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < m; i++) {
                int x;
                memcpy(&x, CMSG_DATA(h) + i * sizeof(int), sizeof x);
                if (*fd < 0) *fd = x;
                else close(x);
            }
        }
    return k;
}

/* Descriptors beside the rings: one SCM_RIGHTS message per descriptor on
 * the connection's Unix socket, carrying its tag as 8 little-endian bytes
 * (the shared buffers of paramd_alloc, docs/transports.md).  Stream
 * sockets never merge a message that carries descriptors with the next,
 * so each recvmsg of 8 bytes gets one tag and its descriptor. */
static int shm_send_fd(pd_conn *c, int fd, uint64_t tag) {
    uint8_t raw[8];
    for (int i = 0; i < 8; i++) raw[i] = (uint8_t)(tag >> (8 * i));
    ssize_t n = send_with_fd(c->fd, raw, sizeof raw, fd, MSG_DONTWAIT);
    if (n == (ssize_t)sizeof raw) return 0;
    if (n >= 0) errno = EIO; /* a stream socket sends 8 bytes whole or none */
    return -1;
}

static int shm_recv_fd(pd_conn *c, uint64_t *tag) {
    uint8_t raw[8];
    int fd, trunc;
    ssize_t n = recv_with_fd(c->fd, raw, sizeof raw, &fd, &trunc, MSG_DONTWAIT);
    if (n < 0) return -1;
    if (n != (ssize_t)sizeof raw || fd < 0 || trunc) {
        if (fd >= 0) close(fd);
        errno = n == 0 ? EPIPE : EPROTO;
        return -1;
    }
    uint64_t t = 0;
    for (int i = 7; i >= 0; i--) t = t << 8 | raw[i];
    *tag = t;
    return fd;
}

static const pd_transport_ops shm_ops = {"shm", shm_readv, shm_writev,
                                         shm_shutdown, shm_destroy,
                                         shm_set_rcvtimeo, shm_try_writev,
                                         shm_peek, shm_consume,
                                         shm_send_fd, shm_recv_fd, NULL};

/* ==== Setup ============================================================= */

static size_t seg_len(uint64_t ring) { return PD_SHM_HDR + 2 * (size_t)ring; }

/* Wrap a mapped, validated segment: `side` 0 is the worker, 1 the server. */
static pd_conn *wrap(int fd, shm_seg *seg, uint64_t ring, int side,
                     const char *peer, pd_err *e) {
    pd_conn *c = pd_calloc(1, sizeof *c);
    shm_impl *m = pd_calloc(1, sizeof *m);
    if (!c || !m) {
        pd_free(c);
        pd_free(m);
        munmap(seg, seg_len(ring));
        close(fd);
        pd_seterr(e, PARAMD_ENOMEM, "out of memory");
        return NULL;
    }
    m->seg = seg;
    m->map_len = seg_len(ring);
    m->cap = ring;
    m->mask = ring - 1;
    uint8_t *data = (uint8_t *)seg + PD_SHM_HDR;
    m->tx = &seg->ring[side];
    m->rx = &seg->ring[1 - side];
    m->tx_data = data + (size_t)side * ring;
    m->rx_data = data + (size_t)(1 - side) * ring;
    /* A fresh segment: both indices are 0 (the worker zeroed it; the server
     * takes its own copies as 0 and never trusts the peer's). */
    m->rx_tail = 0;
    m->tx_head = 0;
    c->ops = &shm_ops;
    c->fd = fd;
    c->impl = m;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    return c;
}

static int fill_addr(const char *name, struct sockaddr_un *sa, socklen_t *len) {
    /* name is "@NAME": the abstract namespace (sun_path[0] = 0). */
    if (name[0] != '@') return -1;
    size_t n = strlen(name + 1);
    if (n == 0 || n + 1 > sizeof sa->sun_path) return -1;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path + 1, name + 1, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    return 0;
}

int pd_shm_valid_ring(uint64_t ring) {
    return ring >= PD_SHM_RING_MIN && ring <= PD_SHM_RING_MAX &&
           (ring & (ring - 1)) == 0;
}

int pd_shm_listen(int *fd, char *name, size_t namelen, pd_err *e) {
    uint8_t rnd[16];
    int u = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (u < 0 || read(u, rnd, sizeof rnd) != (ssize_t)sizeof rnd) {
        if (u >= 0) close(u);
        return pd_seterr(e, PARAMD_ECONNECT, "cannot read /dev/urandom for the "
                         "shared-memory socket name");
    }
    close(u);
    char nm[64];
    int k = snprintf(nm, sizeof nm, "@" PD_SHM_NAME_PREFIX);
    for (int i = 0; i < 16; i++) k += snprintf(nm + k, sizeof nm - (size_t)k, "%02x", rnd[i]);
    struct sockaddr_un sa;
    socklen_t sl;
    fill_addr(nm, &sa, &sl);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return pd_seterr(e, PARAMD_ECONNECT, "socket(AF_UNIX): %s", strerror(errno));
    if (bind(s, (struct sockaddr *)&sa, sl) != 0 || listen(s, 128) != 0) {
        int err = errno;
        close(s);
        return pd_seterr(e, PARAMD_ECONNECT, "cannot listen on %s: %s", nm, strerror(err));
    }
    *fd = s;
    snprintf(name, namelen, "%s", nm);
    return 0;
}

int pd_shm_accept(int lfd) {
    int fd;
    do fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    return fd;
}

/* Send the status byte and message of the handshake. */
static void hs_reply(int fd, int code, const char *msg) {
    char out[PD_ERRMSG_MAX + 1];
    out[0] = (char)(code == 0 ? 0 : 1);
    size_t n = strlen(msg);
    if (n > PD_ERRMSG_MAX - 1) n = PD_ERRMSG_MAX - 1;
    memcpy(out + 1, msg, n);
    out[1 + n] = '\0';
    (void)send(fd, out, n + 2, MSG_NOSIGNAL);
}

pd_conn *pd_shm_server_handshake(int fd, int timeout_ms, pd_err *e) {
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t raw[16];
    int mfd, trunc;
    ssize_t n = recv_with_fd(fd, raw, sizeof raw, &mfd, &trunc, MSG_WAITALL);
    const char *why = NULL;
    char whybuf[160];
    uint32_t magic = 0, version = 0;
    uint64_t ring = 0;
    struct stat st;
    if (n != (ssize_t)sizeof raw) {
        why = n == 0 ? "closed before the shared-memory request" : "short shared-memory request";
    } else {
        for (int i = 3; i >= 0; i--) magic = magic << 8 | raw[i];
        for (int i = 7; i >= 4; i--) version = version << 8 | raw[i];
        for (int i = 15; i >= 8; i--) ring = ring << 8 | raw[i];
        int seals = mfd >= 0 ? fcntl(mfd, F_GET_SEALS) : -1;
        if (magic != PD_SHM_MAGIC)
            why = "not a paramd shared-memory request";
        else if (version != PD_SHM_VERSION) {
            snprintf(whybuf, sizeof whybuf, "shared-memory version %u, this server speaks %u",
                     version, PD_SHM_VERSION);
            why = whybuf;
        } else if (!pd_shm_valid_ring(ring))
            why = "ring size is not a power of two in range";
        else if (mfd < 0)
            why = "no segment descriptor came with the request";
        else if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) !=
                                  (F_SEAL_SHRINK | F_SEAL_GROW))
            why = "the segment is not sealed against resizing";
        else if (fstat(mfd, &st) != 0 || (uint64_t)st.st_size != seg_len(ring))
            why = "the segment's size does not match the request";
    }
    shm_seg *seg = NULL;
    if (!why) {
        void *p = mmap(NULL, seg_len(ring), PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        if (p == MAP_FAILED) why = "cannot map the segment";
        else seg = p;
    }
    if (mfd >= 0) close(mfd); /* the mapping keeps the memory */
    /* The peer as the kernel knows it, for log lines (it has no address). */
    char who[64] = "shm peer";
    struct ucred cr;
    socklen_t crl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) == 0)
        snprintf(who, sizeof who, "shm peer pid %ld uid %ld", (long)cr.pid, (long)cr.uid);
    if (why) {
        hs_reply(fd, 1, why);
        close(fd);
        pd_seterr(e, PARAMD_EPROTO, "shared-memory handshake with %s: %s", who, why);
        return NULL;
    }
    pd_conn *c = wrap(fd, seg, ring, 1, who, e);
    if (!c) return NULL;
    tv = (struct timeval){0, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    hs_reply(fd, 0, "");
    return c;
}

pd_conn *pd_shm_connect(const char *name, uint64_t ring, int timeout_ms,
                        pd_err *e) {
    struct sockaddr_un sa;
    socklen_t sl;
    if (fill_addr(name, &sa, &sl) != 0) {
        pd_seterr(e, PARAMD_EINVAL, "'%s' is not a shared-memory address", name);
        return NULL;
    }
    if (!pd_shm_valid_ring(ring)) {
        pd_seterr(e, PARAMD_EINVAL, "shared-memory ring of %llu bytes is not a "
                  "power of two in %u..%u", (unsigned long long)ring,
                  PD_SHM_RING_MIN, PD_SHM_RING_MAX);
        return NULL;
    }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        pd_seterr(e, PARAMD_ECONNECT, "socket(AF_UNIX): %s", strerror(errno));
        return NULL;
    }
    if (connect(s, (struct sockaddr *)&sa, sl) != 0) {
        pd_seterr(e, PARAMD_ECONNECT, "cannot reach %s: %s (not on this host?)",
                  name, strerror(errno));
        close(s);
        return NULL;
    }
    int mfd = memfd_create("paramd-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    size_t len = seg_len(ring);
    void *p = MAP_FAILED;
    if (mfd < 0 || ftruncate(mfd, (off_t)len) != 0 ||
        fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0 ||
        (p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0)) == MAP_FAILED) {
        pd_seterr(e, PARAMD_ENOMEM, "cannot create a %zu-byte shared-memory "
                  "segment: %s", len, strerror(errno));
        if (mfd >= 0) close(mfd);
        close(s);
        return NULL;
    }
    shm_seg *seg = p; /* a new memfd reads as zeros: indices start at 0 */
    seg->magic = PD_SHM_MAGIC;
    seg->version = PD_SHM_VERSION;
    seg->ring_bytes = ring;
    uint8_t raw[16];
    for (int i = 0; i < 4; i++) raw[i] = (uint8_t)(PD_SHM_MAGIC >> (8 * i));
    for (int i = 0; i < 4; i++) raw[4 + i] = (uint8_t)(PD_SHM_VERSION >> (8 * i));
    for (int i = 0; i < 8; i++) raw[8 + i] = (uint8_t)(ring >> (8 * i));
    ssize_t n = send_with_fd(s, raw, sizeof raw, mfd, 0);
    close(mfd);
    char reply[PD_ERRMSG_MAX + 1];
    size_t got = 0;
    if (n == (ssize_t)sizeof raw) {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        /* status byte, then a NUL-terminated message */
        while (got < sizeof reply - 1) {
            ssize_t r = recv(s, reply + got, sizeof reply - 1 - got, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
            if (memchr(reply + 1, '\0', got - 1)) break;
        }
        struct timeval zero = {0, 0};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &zero, sizeof zero);
    }
    reply[got] = '\0';
    if (got < 2 || reply[0] != 0) {
        pd_seterr(e, PARAMD_ECONNECT, "shared-memory handshake with %s failed: %s",
                  name, got >= 2 ? reply + 1 : "no answer");
        munmap(p, len);
        close(s);
        return NULL;
    }
    char peer[96];
    snprintf(peer, sizeof peer, "shm %.80s", name);
    return wrap(s, seg, ring, 0, peer, e);
}

/* ==== Shared buffers ==================================================== */

int pd_shm_buffer(size_t bytes, void **p, size_t *len) {
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096;
    *p = NULL;
    *len = 0;
    if (bytes == 0 || bytes > SIZE_MAX - page) {
        errno = EINVAL;
        return -1;
    }
    size_t n = (bytes + page - 1) / page * page;
    int fd = memfd_create("paramd-buffer", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd >= 0 && (ftruncate(fd, (off_t)n) != 0 ||
                    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)) {
        close(fd);
        fd = -1;
    }
    void *m = fd >= 0 ? mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                      : MAP_FAILED;
    if (m == MAP_FAILED) {
        if (fd >= 0) close(fd);
        fd = -1;
        m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return -1;
    }
    *p = m;
    *len = n;
    return fd;
}

void pd_close_fd(int fd) {
    if (fd >= 0) close(fd);
}
