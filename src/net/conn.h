/*
 * conn.h - a connection is a transport (a table of functions) plus its
 * state, and the blocking byte I/O every process uses on top of it.  It
 * moves bytes and file descriptors; frames (what the bytes mean) are the
 * frame layer's (frame/frame.h), which is built on this.
 *
 * Transports: TCP (tcp.c), same-host shared memory (shm.c), the
 * fault-injecting wrapper for tests (fault.c, fault.h), and memory (mem.c:
 * the frames inside a BATCH), each a table of the same functions.  Nothing
 * above this layer touches a socket directly.
 *
 * Threading: one reader and one writer may use a connection at the same
 * time (the client's reader - its receiver thread or a waiting caller,
 * one at a time - reads while callers write under the connection's send
 * lock); two concurrent readers or writers may not.
 */
#ifndef PARAMD_NET_CONN_H
#define PARAMD_NET_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/bytes.h"
#include "common/common.h"

typedef struct pd_conn pd_conn;

typedef struct pd_transport_ops {
    const char *name;
    /* Like readv/writev: bytes moved, 0 at end of stream (read), -1 with
     * errno set.  EAGAIN means the receive timeout expired. */
    ssize_t (*readv)(pd_conn *c, const struct iovec *iov, int cnt);
    ssize_t (*writev)(pd_conn *c, const struct iovec *iov, int cnt);
    /* Wake a blocked reader or writer; further I/O fails.  Idempotent,
     * safe from another thread. */
    void (*shutdown)(pd_conn *c);
    void (*destroy)(pd_conn *c);
    /* Make a blocked read give up with EAGAIN after ms (0: never). */
    void (*set_rcvtimeo)(pd_conn *c, int ms);
    /* Optional (NULL: not offered).  Write what fits now, never blocking:
     * bytes moved (maybe 0), or -1 with errno if the connection broke. */
    ssize_t (*try_writev)(pd_conn *c, const struct iovec *iov, int cnt);
    /* Optional: wait, as a read would, until the next n bytes of the stream
     * are readable and lie contiguous in the transport's own memory, and
     * point *p at them without consuming them.  1 yes; 0 not possible this
     * way (read them instead); -1 with errno as readv, errno 0 at end of
     * stream.  consume(n) then drops them. */
    int (*peek)(pd_conn *c, size_t n, const void **p);
    void (*consume)(pd_conn *c, size_t n);
    /* Optional: pass a file descriptor to the peer beside the byte stream,
     * with a 64-bit tag (shared memory: SCM_RIGHTS on its Unix socket).
     * Neither blocks.  send_fd: 0, or -1 with errno (fd stays the
     * caller's).  recv_fd: the next descriptor the peer passed (the
     * receiver owns it) with its tag, or -1 with errno (EAGAIN: none
     * waiting). */
    int (*send_fd)(pd_conn *c, int fd, uint64_t tag);
    int (*recv_fd)(pd_conn *c, uint64_t *tag);
    /* Optional: 1 if a read would return at once (bytes, the end of the
     * stream or an error are there), else 0; consumes nothing.  A reader
     * may watch it, yielding, before a read that would block (the
     * client's link_lead: a blocked read lets the vCPU halt).  Transports
     * whose reads watch by themselves (shm) leave it NULL. */
    int (*readable)(pd_conn *c);
} pd_transport_ops;

struct pd_conn {
    const pd_transport_ops *ops;
    int fd;
    void *impl;      /* transport-specific state */
    char peer[96];   /* "127.0.0.1:40222", for messages */
    /* Deadlines (pd_conn_read and pd_conn_peek; 0: none), set by the
     * connection's reading thread only (docs/limits.md):
     * deadline_ms  monotonic ms after which every read fails, even one
     *              waiting at a frame boundary (the handshake's);
     * frame_ms     a frame must be whole this long after its first byte
     *              arrived (the first byte read at a boundary starts
     *              frame_deadline_ms; the reads of its header and payload
     *              fail once it passed).  A read blocked inside the
     *              transport notices at its receive timeout, so a deadline
     *              fires at most one receive timeout late. */
    int64_t deadline_ms;
    int frame_ms;
    int64_t frame_deadline_ms;
    /* Set (atomic) by pd_conn_shutdown: an end of stream after it is this
     * side's doing, not the peer's (frame/hello.c logs only the peer's). */
    int shut;
};

/* Read exactly n bytes.  Returns 0, PARAMD_ECLOSED if the stream ended
 * before the first byte and `at_boundary` is set (a clean close between
 * frames), PARAMD_EIO otherwise (detail in e: "truncated", "timed out").
 * With at_boundary set, a receive timeout before the first byte is not an
 * error: the read keeps waiting (an idle peer is fine; a stalled frame is
 * not), unless c->deadline_ms passed: then PARAMD_ETIMEDOUT with nothing
 * read ("sent nothing within the deadline").  A frame past its
 * c->frame_ms, or any read past c->deadline_ms, is PARAMD_EIO
 * ("not complete within N ms"). */
int pd_conn_read(pd_conn *c, void *buf, size_t n, int at_boundary, pd_err *e);
/* Write every byte of iov[0..cnt).  0 or PARAMD_EIO. */
int pd_conn_writev(pd_conn *c, struct iovec *iov, int cnt, pd_err *e);

/* Write what the transport takes now without blocking, advancing iov/cnt
 * past it (a transport without try_writev takes nothing).  Bytes written,
 * or PARAMD_EIO with the reason in e. */
ssize_t pd_conn_try_writev(pd_conn *c, struct iovec **iov, int *cnt, pd_err *e);
/* Zero-copy read of the next n bytes (see ops.peek): 1 with *p set (call
 * pd_conn_consume(c, n) when done with them), 0 if the caller must read
 * them itself (pd_conn_read), PARAMD_EIO with the reason in e. */
int pd_conn_peek(pd_conn *c, size_t n, const void **p, pd_err *e);
void pd_conn_consume(pd_conn *c, size_t n);
/* Pass a descriptor beside the stream (ops.send_fd, ops.recv_fd); -1 with
 * errno ENOTSUP on a transport that cannot. */
int pd_conn_send_fd(pd_conn *c, int fd, uint64_t tag);
int pd_conn_recv_fd(pd_conn *c, uint64_t *tag);

/* Discard n payload bytes. */
int pd_conn_skip(pd_conn *c, uint64_t n, pd_err *e);

/* Set a receive timeout (0 = none) on any transport. */
void pd_conn_set_rcvtimeo(pd_conn *c, int ms);
void pd_conn_shutdown(pd_conn *c);
/* 1 if the peer of a socket connection has closed it or it failed (the
 * end of the stream is waiting to be read, nothing before it), without
 * reading or blocking: for a connection whose reader is busy elsewhere
 * (the coordinator's, waiting in a barrier for its worker).  0 otherwise,
 * and for a transport without a socket. */
int pd_conn_peer_gone(pd_conn *c);
void pd_conn_destroy(pd_conn *c); /* NULL-safe */

/* ==== TCP =============================================================== */

/* Listen on host:port (port 0 picks one); *fd and the bound "host:port" in
 * bound.  PARAMD_ECONNECT with the reason on failure. */
int pd_tcp_listen(const char *host, uint16_t port, int *fd, char *bound,
                  size_t boundlen, pd_err *e);
/* The bound "host:port" of fd, a listening TCP socket made elsewhere (a
 * supervisor's, inherited); PARAMD_EINVAL if fd is not one. */
int pd_tcp_bound(int fd, char *bound, size_t boundlen, pd_err *e);
/* Accept one connection (blocking).  NULL on error (errno set). */
pd_conn *pd_tcp_accept(int lfd);
/* Connect to "host:port", retrying a peer that is not up yet (refused,
 * unreachable, not answering, a name that does not resolve yet) with
 * backoff until timeout_ms has passed; each attempt is bounded by what is
 * left.  One line is logged if it still fails after 5 s.  NULL with the
 * reason (and, after retries, how often and how long it tried) in e. */
pd_conn *pd_tcp_connect(const char *hostport, int timeout_ms, pd_err *e);
/* A connection whose peer stops answering (its sent data unacknowledged,
 * or, idle, its keepalive probes) for ms fails with ETIMEDOUT: a host cut
 * off is noticed in about ms instead of TCP's quarter of an hour.  ms <= 0:
 * leave the system's defaults. */
void pd_tcp_set_peer_timeout(pd_conn *c, int ms);
/* What clients, servers and the coordinator use unless told otherwise. */
#define PD_PEER_TIMEOUT_DEFAULT 20000
/* Set a receive timeout (0 = none) on a TCP connection. */
void pd_tcp_set_rcvtimeo(pd_conn *c, int ms);

/* ==== Shared memory (same host) ======================================== */

#define PD_SHM_RING_MIN (64u << 10)
#define PD_SHM_RING_MAX (1u << 30)
#define PD_SHM_RING_DEFAULT (4u << 20) /* bytes per direction */

/* 1 if ring is a power of two in PD_SHM_RING_MIN..PD_SHM_RING_MAX. */
int pd_shm_valid_ring(uint64_t ring);
/* Listen on a new abstract Unix socket with a random name; *fd and the
 * name ("@paramd-<hex>", what workers pass to pd_shm_connect). */
int pd_shm_listen(int *fd, char *name, size_t namelen, pd_err *e);
/* Accept one socket (blocking): its fd, or -1 with errno. */
int pd_shm_accept(int lfd);
/* Server side of the handshake on an accepted socket: receive the segment,
 * validate it, map it.  Takes ownership of fd (closed on failure, after
 * telling the worker why). */
pd_conn *pd_shm_server_handshake(int fd, int timeout_ms, pd_err *e);
/* Worker side: connect to `name`, create and send a segment with rings of
 * `ring` bytes.  NULL with the reason in e (PARAMD_ECONNECT if the name is
 * not reachable: another host or network namespace). */
pd_conn *pd_shm_connect(const char *name, uint64_t ring, int timeout_ms,
                        pd_err *e);

/* Memory a worker can share with servers (paramd_alloc): a memfd of
 * `bytes` rounded up to whole pages (*len), sealed against shrinking and
 * growing, mapped read-write and shared at *p.  Returns its descriptor
 * (for pd_conn_send_fd; close it with pd_close_fd), or -1 when no memfd
 * can be had: then *p is private memory (never shared), or NULL with
 * errno set if there is none either.  Free *p with munmap(*p, *len). */
int pd_shm_buffer(size_t bytes, void **p, size_t *len);
/* close(fd) for fd >= 0. */
void pd_close_fd(int fd);

/* ==== Memory (the frames of a batch) ==================================== */

/* A connection over bytes in memory, so that the frames inside a BATCH go
 * through the same code as frames from a socket (mem.c).  Reads come from
 * the input [in, in+inlen) and end there (end of stream); peek points into
 * it (only where the bytes are aligned for floats); writev and try_writev
 * append every byte to the output buffer (failing with ENOMEM if it cannot
 * grow, EPIPE if there is none).  After shutdown every call fails.  It
 * lives where the caller puts it (on the stack: no allocation), and
 * destroy does nothing.  One thread at a time. */
typedef struct pd_mem_conn {
    pd_conn conn;          /* what callers use: &m->conn */
    const uint8_t *in;
    size_t inlen, inoff;
    pd_buf *out;           /* NULL: writes fail */
    int shut;
} pd_mem_conn;

/* Set m up over the input in[0..inlen) and the output buffer out (or
 * NULL); peer names it in messages. */
void pd_mem_init(pd_mem_conn *m, const void *in, size_t inlen, pd_buf *out,
                 const char *peer);
/* Read from in[0..inlen) next, from its start; the output is kept. */
void pd_mem_reset(pd_mem_conn *m, const void *in, size_t inlen);

#endif
