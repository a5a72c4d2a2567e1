/*
 * conn.c - blocking byte I/O over any transport (see conn.h): read exactly
 * n bytes, write every byte of a gather list, and the optional zero-copy
 * and descriptor-passing calls, with the transport's errno turned into a
 * paramd error that names the peer.  What the bytes mean is the frame
 * layer's business (frame/frame.h).
 */
#include "net/conn.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* Advance iov/cnt past `left` bytes. */
static void iov_advance(struct iovec **iov, int *cnt, size_t left) {
    while (*cnt > 0 && left >= (*iov)->iov_len) {
        left -= (*iov)->iov_len;
        (*iov)++, (*cnt)--;
    }
    if (*cnt > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + left;
        (*iov)->iov_len -= left;
    }
}

/* The deadline that applies to a read now (0: none): the connection's,
 * and inside a frame also the frame's, whichever comes first. */
static int64_t read_deadline(const pd_conn *c, int in_frame) {
    int64_t d = c->deadline_ms;
    if (in_frame && c->frame_deadline_ms && (!d || c->frame_deadline_ms < d))
        d = c->frame_deadline_ms;
    return d;
}

static int deadline_err(pd_conn *c, size_t got, size_t n, pd_err *e) {
    int frame = c->frame_deadline_ms &&
                (!c->deadline_ms || c->frame_deadline_ms <= c->deadline_ms);
    if (frame)
        return pd_seterr(e, PARAMD_EIO,
                         "frame from %s not complete within %d ms (%zu of %zu "
                         "bytes of this read): dropped",
                         c->peer, c->frame_ms, got, n);
    return pd_seterr(e, PARAMD_EIO, "%s did not finish within the connection's "
                     "deadline (%zu of %zu bytes of this read): dropped",
                     c->peer, got, n);
}

int pd_conn_read(pd_conn *c, void *buf, size_t n, int at_boundary, pd_err *e) {
    size_t got = 0;
    while (got < n) {
        int in_frame = !(at_boundary && got == 0);
        int64_t dl = read_deadline(c, in_frame);
        if (dl && pd_now_ms() >= dl) {
            if (!in_frame)
                return pd_seterr(e, PARAMD_ETIMEDOUT,
                                 "%s sent nothing within the deadline: dropped",
                                 c->peer);
            return deadline_err(c, got, n, e);
        }
        struct iovec iov = {(char *)buf + got, n - got};
        ssize_t r = c->ops->readv(c, &iov, 1);
        if (r > 0) {
            /* The first byte of a frame starts its deadline. */
            if (!in_frame && c->frame_ms) c->frame_deadline_ms = pd_now_ms() + c->frame_ms;
            got += (size_t)r;
            continue;
        }
        if (r == 0) {
            if (got == 0 && at_boundary)
                return pd_seterr(e, PARAMD_ECLOSED, "%s closed the connection",
                                 c->peer);
            return pd_seterr(e, PARAMD_EIO,
                             "truncated frame from %s: stream ended after %zu "
                             "of %zu bytes",
                             c->peer, got, n);
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (got == 0 && at_boundary) continue; /* idle: the deadline decides */
            if (read_deadline(c, 1)) continue;    /* the deadline decides */
            return pd_seterr(e, PARAMD_EIO,
                             "truncated frame from %s: timed out after %zu of "
                             "%zu bytes",
                             c->peer, got, n);
        }
        int err = errno;
        return pd_seterr(e, PARAMD_EIO, "read from %s: %s%s", c->peer,
                         strerror(err),
                         err == ETIMEDOUT ? " (its host stopped answering: down, "
                                              "or cut off from this one)" : "");
    }
    return 0;
}

int pd_conn_writev(pd_conn *c, struct iovec *iov, int cnt, pd_err *e) {
    while (cnt > 0) {
        ssize_t w = c->ops->writev(c, iov, cnt);
        if (w < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            return pd_seterr(e, PARAMD_EIO, "write to %s: %s%s", c->peer,
                             strerror(err),
                             err == ETIMEDOUT ? " (its host stopped answering: "
                                                  "down, or cut off from this one)" : "");
        }
        iov_advance(&iov, &cnt, (size_t)w);
    }
    return 0;
}

ssize_t pd_conn_try_writev(pd_conn *c, struct iovec **iov, int *cnt, pd_err *e) {
    if (!c->ops->try_writev || *cnt == 0) return 0;
    ssize_t w;
    do w = c->ops->try_writev(c, *iov, *cnt);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return pd_seterr(e, PARAMD_EIO, "write to %s: %s", c->peer, strerror(errno));
    iov_advance(iov, cnt, (size_t)w);
    return w;
}

int pd_conn_peek(pd_conn *c, size_t n, const void **p, pd_err *e) {
    if (!c->ops->peek) return 0;
    int64_t dl = read_deadline(c, 1);
    if (dl && pd_now_ms() >= dl) return deadline_err(c, 0, n, e);
    int r;
    do r = c->ops->peek(c, n, p);
    while (r < 0 && errno == EINTR);
    if (r >= 0) return r;
    if (errno == 0)
        return pd_seterr(e, PARAMD_EIO, "truncated frame from %s: stream ended "
                         "before %zu payload bytes", c->peer, n);
    if (errno == EAGAIN)
        return pd_seterr(e, PARAMD_EIO, "truncated frame from %s: timed out "
                         "waiting for %zu payload bytes", c->peer, n);
    return pd_seterr(e, PARAMD_EIO, "read from %s: %s", c->peer, strerror(errno));
}

void pd_conn_consume(pd_conn *c, size_t n) { c->ops->consume(c, n); }

int pd_conn_send_fd(pd_conn *c, int fd, uint64_t tag) {
    if (!c->ops->send_fd) {
        errno = ENOTSUP;
        return -1;
    }
    return c->ops->send_fd(c, fd, tag);
}

int pd_conn_recv_fd(pd_conn *c, uint64_t *tag) {
    if (!c->ops->recv_fd) {
        errno = ENOTSUP;
        return -1;
    }
    return c->ops->recv_fd(c, tag);
}

int pd_conn_skip(pd_conn *c, uint64_t n, pd_err *e) {
    uint8_t tmp[4096];
    while (n > 0) {
        size_t k = n < sizeof tmp ? (size_t)n : sizeof tmp;
        int rc = pd_conn_read(c, tmp, k, 0, e);
        if (rc) return rc;
        n -= k;
    }
    return 0;
}

void pd_conn_set_rcvtimeo(pd_conn *c, int ms) {
    if (c->ops->set_rcvtimeo) c->ops->set_rcvtimeo(c, ms);
    else pd_tcp_set_rcvtimeo(c, ms);
}

void pd_conn_shutdown(pd_conn *c) {
    if (!c) return;
    __atomic_store_n(&c->shut, 1, __ATOMIC_RELEASE);
    c->ops->shutdown(c);
}

int pd_conn_peer_gone(pd_conn *c) {
    if (!c || c->fd < 0) return 0;
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void pd_conn_destroy(pd_conn *c) {
    if (c) c->ops->destroy(c);
}

