/*
 * mem.c - a transport over memory: reads from a buffer, writes into a
 * growable one (conn.h, "Memory").
 *
 * Why it exists.  A BATCH frame carries whole request frames, and its reply
 * carries whole reply frames (docs/protocol.md, "Batches").  Rather than a
 * second set of request handlers that parse from memory, the server runs
 * each inner frame through its one dispatch (srv_dispatch in
 * server/session.c, then the ordinary handlers) with this connection in place of the
 * socket: their reads are bounded copies out of the batch, their peek a
 * pointer into it (the zero-copy push path still applies the gradient
 * where it lies), and their replies, including the non-blocking pull
 * reply written under a shard's lock, are appended to one output buffer
 * that goes out as one frame.  The client reads the inner replies of a
 * BATCH reply the same way.
 *
 * Invariants.  Nothing is read outside [in, in+inlen): a read past the end
 * is the end of the stream, which pd_conn_read reports
 * as a truncated frame.  No allocation here except the output buffer's
 * growth (pd_buf, kept by its owner across batches).  The struct is the
 * caller's (usually on the stack), so destroy does nothing.
 */
#include "net/conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static pd_mem_conn *mem_of(pd_conn *c) { return c->impl; }

static ssize_t mem_readv(pd_conn *c, const struct iovec *iov, int cnt) {
    pd_mem_conn *m = mem_of(c);
    if (m->shut) {
        errno = EPIPE;
        return -1;
    }
    size_t done = 0;
    for (int i = 0; i < cnt && m->inoff < m->inlen; i++) {
        size_t k = m->inlen - m->inoff;
        if (k > iov[i].iov_len) k = iov[i].iov_len;
        if (k) memcpy(iov[i].iov_base, m->in + m->inoff, k);
        m->inoff += k;
        done += k;
    }
    return (ssize_t)done; /* 0 at the end: end of stream */
}

/* Every byte goes into the output: a memory connection never blocks, so
 * writev and try_writev are the same. */
static ssize_t mem_writev(pd_conn *c, const struct iovec *iov, int cnt) {
    pd_mem_conn *m = mem_of(c);
    if (m->shut || !m->out) {
        errno = EPIPE;
        return -1;
    }
    size_t done = 0;
    for (int i = 0; i < cnt; i++) {
        pd_put_bytes(m->out, iov[i].iov_base, iov[i].iov_len);
        done += iov[i].iov_len;
    }
    if (m->out->oom) {
        errno = ENOMEM;
        return -1;
    }
    return (ssize_t)done;
}

static void mem_shutdown(pd_conn *c) { mem_of(c)->shut = 1; }

static void mem_destroy(pd_conn *c) { (void)c; }

static void mem_set_rcvtimeo(pd_conn *c, int ms) { (void)c, (void)ms; }

/* Floats are read in place only where they are aligned for them (an inner
 * frame after one whose payload is not a multiple of 4 is not): otherwise
 * the caller copies them out with a read. */
static int mem_peek(pd_conn *c, size_t n, const void **p) {
    pd_mem_conn *m = mem_of(c);
    if (m->shut) {
        errno = EPIPE;
        return -1;
    }
    if (n > m->inlen - m->inoff) {
        errno = 0; /* end of stream before n bytes */
        return -1;
    }
    const uint8_t *at = m->in + m->inoff;
    if (n == 0 || ((uintptr_t)at & 3) != 0) return 0;
    *p = at;
    return 1;
}

static void mem_consume(pd_conn *c, size_t n) {
    pd_mem_conn *m = mem_of(c);
    m->inoff += n <= m->inlen - m->inoff ? n : m->inlen - m->inoff;
}

static const pd_transport_ops mem_ops = {"mem", mem_readv, mem_writev,
                                         mem_shutdown, mem_destroy,
                                         mem_set_rcvtimeo, mem_writev,
                                         mem_peek, mem_consume, NULL, NULL, NULL};

void pd_mem_init(pd_mem_conn *m, const void *in, size_t inlen, pd_buf *out,
                 const char *peer) {
    memset(m, 0, sizeof *m);
    m->conn.ops = &mem_ops;
    m->conn.fd = -1;
    m->conn.impl = m;
    snprintf(m->conn.peer, sizeof m->conn.peer, "%s", peer ? peer : "memory");
    m->out = out;
    pd_mem_reset(m, in, inlen);
}

void pd_mem_reset(pd_mem_conn *m, const void *in, size_t inlen) {
    m->in = in;
    m->inlen = in ? inlen : 0;
    m->inoff = 0;
}
