/*
 * conn.c - blocking frame I/O over any transport (see conn.h).
 *
 * Frames are written with one gathered write of header + payload parts, so
 * a frame is never interleaved with another on the same connection as long
 * as writers hold the connection's send lock (the client does).
 */
#include "net/conn.h"

#include <errno.h>
#include <string.h>

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

int pd_conn_read(pd_conn *c, void *buf, size_t n, int at_boundary, pd_err *e) {
    size_t got = 0;
    while (got < n) {
        struct iovec iov = {(char *)buf + got, n - got};
        ssize_t r = c->ops->readv(c, &iov, 1);
        if (r > 0) {
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
            if (got == 0 && at_boundary) continue;
            return pd_seterr(e, PARAMD_EIO,
                             "truncated frame from %s: timed out after %zu of "
                             "%zu bytes",
                             c->peer, got, n);
        }
        return pd_seterr(e, PARAMD_EIO, "read from %s: %s", c->peer,
                         strerror(errno));
    }
    return 0;
}

int pd_conn_writev(pd_conn *c, struct iovec *iov, int cnt, pd_err *e) {
    while (cnt > 0) {
        ssize_t w = c->ops->writev(c, iov, cnt);
        if (w < 0) {
            if (errno == EINTR) continue;
            return pd_seterr(e, PARAMD_EIO, "write to %s: %s", c->peer,
                             strerror(errno));
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

int pd_send_frame(pd_conn *c, pd_hdr *h, const void *p1, size_t n1,
                  const void *p2, size_t n2, const void *p3, size_t n3,
                  pd_err *e) {
    uint8_t hb[PD_HDR_SIZE];
    struct iovec iov[4];
    int cnt = 0;
    h->magic = PD_MAGIC;
    h->version = PD_PROTO_VERSION;
    h->len = n1 + n2 + n3;
    pd_hdr_encode(h, hb);
    iov[cnt++] = (struct iovec){hb, PD_HDR_SIZE};
    if (n1) iov[cnt++] = (struct iovec){(void *)p1, n1};
    if (n2) iov[cnt++] = (struct iovec){(void *)p2, n2};
    if (n3) iov[cnt++] = (struct iovec){(void *)p3, n3};
    return pd_conn_writev(c, iov, cnt, e);
}

int pd_send_error(pd_conn *c, const pd_hdr *req, int code, const char *msg) {
    pd_hdr h = {0};
    h.type = (uint16_t)((req ? req->type : 0) | PD_REPLY);
    if (!pd_msg_known(h.type)) h.type = PD_MSG_HELLO | PD_REPLY;
    h.id = req ? req->id : 0;
    h.table = req ? req->table : 0;
    h.clock = req && req->clock >= 0 ? req->clock : 0;
    h.status = code;
    size_t n = strlen(msg);
    if (n > PD_MAX_ERRTEXT) n = PD_MAX_ERRTEXT;
    return pd_send_frame(c, &h, msg, n, NULL, 0, NULL, 0, NULL);
}

int pd_recv_hdr(pd_conn *c, pd_hdr *h, uint64_t max_payload, pd_err *e) {
    uint8_t hb[PD_HDR_SIZE];
    int rc = pd_conn_read(c, hb, PD_HDR_SIZE, 1, e);
    if (rc) return rc;
    return pd_hdr_decode(hb, h, max_payload, e);
}

int pd_recv_payload(pd_conn *c, const pd_hdr *h, uint8_t *buf, pd_err *e) {
    if (h->len > PD_MAX_CTRL_PAYLOAD)
        return pd_seterr(e, PARAMD_ETOOBIG, "control payload too large");
    int rc = pd_conn_read(c, buf, (size_t)h->len, 0, e);
    if (rc) return rc;
    buf[h->len] = '\0';
    return 0;
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
    if (c) c->ops->shutdown(c);
}

void pd_conn_destroy(pd_conn *c) {
    if (c) c->ops->destroy(c);
}

int pd_rpc(pd_conn *c, pd_hdr *h, const void *payload, size_t len,
           pd_hdr *rh, uint8_t *buf, pd_err *e) {
    int rc = pd_send_frame(c, h, payload, len, NULL, 0, NULL, 0, e);
    if (rc) return rc;
    rc = pd_recv_hdr(c, rh, PD_MAX_CTRL_PAYLOAD, e);
    if (rc == PARAMD_ECLOSED)
        return pd_seterr(e, PARAMD_ECLOSED, "%s closed the connection "
                         "while a %s was pending", c->peer, pd_msg_name(h->type));
    if (rc) return rc;
    rc = pd_recv_payload(c, rh, buf, e);
    if (rc) return rc;
    if (rh->type != (h->type | PD_REPLY) || rh->id != h->id)
        return pd_seterr(e, PARAMD_EPROTO,
                         "%s answered %s id %llu to %s id %llu", c->peer,
                         pd_msg_name(rh->type), (unsigned long long)rh->id,
                         pd_msg_name(h->type), (unsigned long long)h->id);
    if (rh->status < 0)
        return pd_seterr(e, rh->status, "%s", (const char *)buf);
    return 0;
}
