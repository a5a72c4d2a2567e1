/*
 * rx.c - reading a link's replies: the FIFO of pending sub-requests, the
 * payload of a reply (a pull's floats straight into the caller's buffer,
 * an error's text, STATS text), BATCH replies, and failing a link that
 * broke.
 *
 * Frames on a link are answered in order, so the FIFO of pending
 * sub-requests, in the order their frames went out, tells the reader
 * whose reply comes next; a reply whose id or type is not the head's is a
 * protocol error.  A batch is queued as a BATCH marker followed by its
 * inner frames' sub-requests; the reader takes the marker's reply and
 * hands each inner reply in it to the next sub-request.
 *
 * Locks and roles: the FIFO (q, qhead, qlen, due, popped) and dead,
 * dead_msg are guarded by pd_link.q_mu.  Senders append (outbox.c, under
 * send_mu then q_mu); only the holder of the link's read role (reader.c)
 * pops or fails the link, and it alone uses the connection's read side
 * and the buffers msgbuf and rxbuf.  So the head it read under q_mu cannot
 * change until it pops it.  Everything here that reads or pops runs on
 * the holder of the role.
 *
 * Failure: a reply that cannot be read (connection lost, malformed or
 * unexpected frame) breaks the link; its reader fails every queued
 * sub-request with the reason, naming the server, and marks the link dead
 * so that later requests to it fail at once (link_fail_all).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "client/client_impl.h"
#include "common/common.h"
#include "net/conn.h"
#include "wire/wire.h"

/* ==== The FIFO ========================================================== */

/* With q_mu held: room for n more entries.  0 or -1 (out of memory). */
int q_reserve(pd_link *l, size_t n) {
    if (l->qlen + n <= l->qcap) return 0;
    size_t cap = l->qcap ? l->qcap * 2 : 64;
    while (cap < l->qlen + n) cap *= 2;
    pending *q = pd_malloc(sizeof *q * cap);
    if (!q) return -1;
    for (size_t i = 0; i < l->qlen; i++) q[i] = l->q[(l->qhead + i) % l->qcap];
    pd_free(l->q);
    l->q = q;
    l->qcap = cap;
    l->qhead = 0;
    return 0;
}

/* Bytes of values entry p's reply brings (a pull's; other replies are
 * small and not counted). */
static uint64_t q_due(const pending *p) {
    return p->type == PD_MSG_PULL || p->type == PD_MSG_SPARSE_PULL ? p->count * 4 : 0;
}

/* With q_mu held and room reserved: append p. */
void q_push(pd_link *l, const pending *p) {
    l->q[(l->qhead + l->qlen) % l->qcap] = *p;
    l->qlen++;
    l->due += q_due(p);
}

/* The head of the FIFO into *p; 0 if the FIFO is empty. */
static int q_head(pd_link *l, pending *p) {
    pthread_mutex_lock(&l->q_mu);
    int have = l->qlen > 0;
    if (have) *p = l->q[l->qhead];
    pthread_mutex_unlock(&l->q_mu);
    return have;
}

static void q_pop(pd_link *l) {
    pthread_mutex_lock(&l->q_mu);
    l->due -= q_due(&l->q[l->qhead]);
    l->popped++;
    l->qhead = (l->qhead + 1) % l->qcap;
    l->qlen--;
    pthread_mutex_unlock(&l->q_mu);
}

void link_fail_all(pd_link *l, int code, const char *msg) {
    pthread_mutex_lock(&l->q_mu);
    if (!l->dead) {
        snprintf(l->dead_msg, sizeof l->dead_msg, "server %d (%s%s%s): %s",
                 l->index, l->addr, l->host[0] ? " on host " : "", l->host, msg);
        __atomic_store_n(&l->dead, 1, __ATOMIC_RELEASE);
    }
    while (l->qlen > 0) {
        pending p = l->q[l->qhead];
        l->qhead = (l->qhead + 1) % l->qcap;
        l->qlen--;
        l->due -= q_due(&p);
        l->popped++;
        if (!p.req) continue; /* a BATCH marker: its frames follow it */
        pthread_mutex_unlock(&l->q_mu);
        req_lost(p.req, l, code, l->dead_msg);
        pthread_mutex_lock(&l->q_mu);
    }
    pthread_mutex_unlock(&l->q_mu);
    /* A cluster that replaces lost servers: the heartbeat says at once that
     * this worker waits for one (its other requests may be held on the
     * other servers meanwhile, by a clock the replacement decides). */
    paramd_client *c = l->c;
    if (c->replace_ms && c->hb_started && (code == PARAMD_EIO || code == PARAMD_ECLOSED) &&
        !__atomic_load_n(&c->closing, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&c->hb_mu);
        c->hb_kick = 1;
        pthread_cond_broadcast(&c->hb_cv);
        pthread_mutex_unlock(&c->hb_mu);
    }
}

/* ==== Reading replies =================================================== */

/* Read the payload of reply h, for sub-request p, from conn (the link, or
 * a memory connection over one inner reply of a BATCH reply): an error
 * text into msg (*st = its status, the detail in e), a pull's floats
 * straight into the caller's buffer, STATS text into p's.  0, or an error
 * that breaks the link (detail in e). */
static int rx_payload(pd_link *l, pd_conn *conn, const pending *p, const pd_hdr *h,
                      uint8_t *msg, int *st, pd_err *e) {
    int code;
    *st = 0;
    if (h->status < 0) {
        if (h->len > PD_MAX_ERRTEXT)
            return pd_seterr(e, PARAMD_EPROTO, "oversized error reply");
        if ((code = pd_recv_payload(conn, h, msg, e))) return code;
        *st = h->status;
        snprintf(e->msg, sizeof e->msg, "server %d: %s", l->index, (const char *)msg);
    } else if (p->type == PD_MSG_PULL || p->type == PD_MSG_SPARSE_PULL) {
        if (h->len != p->count * 4)
            return pd_seterr(e, PARAMD_EPROTO, "pull reply of %llu bytes, expected %llu",
                             (unsigned long long)h->len,
                             (unsigned long long)(p->count * 4));
        if ((code = pd_conn_read(conn, p->dst, (size_t)h->len, 0, e))) return code;
        if (p->pos) /* rows of several servers: back to request order */
            for (uint64_t i = 0; i < p->count / p->dim; i++)
                memcpy(p->out + p->pos[i] * p->dim, p->dst + i * p->dim,
                       p->dim * sizeof(float));
    } else if (p->type == PD_MSG_PULL_REGION) {
        /* the values are in the caller's shared buffer already */
        if (h->len)
            return pd_seterr(e, PARAMD_EPROTO, "PULL_REGION reply of %llu bytes, "
                             "expected none", (unsigned long long)h->len);
    } else if (p->type == PD_MSG_STATS && p->text) {
        if (h->len > PD_MAX_CTRL_PAYLOAD)
            return pd_seterr(e, PARAMD_EPROTO, "oversized STATS reply");
        if ((code = pd_recv_payload(conn, h, (uint8_t *)p->text, e))) return code;
    } else if (h->len) {
        if ((code = pd_conn_skip(conn, h->len, e))) return code;
    }
    return 0;
}

/* Pop the head (p) and complete it with status st (message msg). */
static void rx_complete(pd_link *l, const pending *p, const pd_hdr *h, int st,
                        const char *msg) {
    q_pop(l);
    __atomic_add_fetch(rd_get(l) == RD_CALLER ? &l->c->n_by_caller : &l->c->n_by_rx, 1,
                       __ATOMIC_RELAXED);
    if (st == 0 && (p->type == PD_MSG_PULL || p->type == PD_MSG_SPARSE_PULL ||
                    p->type == PD_MSG_PULL_REGION)) {
        pthread_mutex_lock(&p->req->mu);
        if (h->clock > p->req->clock_seen) p->req->clock_seen = h->clock;
        pthread_mutex_unlock(&p->req->mu);
    }
    req_done(p->req, st, msg);
}

/* The reply h to the BATCH marker b (the head of the FIFO): read it whole,
 * then complete the b->nbatch sub-requests after b, each with its inner
 * reply, checked like a reply from the link.  0, or an error that breaks
 * the link (the sub-requests not completed yet stay queued and fail with
 * it). */
static int rx_batch(pd_link *l, const pending *b, const pd_hdr *h, uint8_t *msg,
                    pd_err *e) {
    int code;
    if (h->status < 0) { /* the server refused the batch and closes */
        if (h->len > PD_MAX_ERRTEXT)
            return pd_seterr(e, PARAMD_EPROTO, "oversized error reply");
        if ((code = pd_recv_payload(l->conn, h, msg, e))) return code;
        return pd_seterr(e, h->status, "a batch of %u requests was refused: %s",
                         b->nbatch, (const char *)msg);
    }
    if (h->len > b->bound)
        return pd_seterr(e, PARAMD_EPROTO,
                         "BATCH reply of %llu bytes to %u requests, which can "
                         "get at most %llu",
                         (unsigned long long)h->len, b->nbatch,
                         (unsigned long long)b->bound);
    size_t len = (size_t)h->len;
    if (len > l->rxcap) {
        uint8_t *nb = pd_realloc(l->rxbuf, len);
        if (!nb) return pd_seterr(e, PARAMD_ENOMEM, "out of memory for a %zu-byte "
                                  "BATCH reply", len);
        l->rxbuf = nb;
        l->rxcap = len;
    }
    if ((code = pd_conn_read(l->conn, l->rxbuf, len, 0, e))) return code;
    q_pop(l); /* the marker */
    size_t off = 0;
    pd_mem_conn m;
    pd_mem_init(&m, NULL, 0, NULL, l->conn->peer);
    for (uint32_t i = 0; i < b->nbatch; i++) {
        pending p;
        pd_hdr ih;
        if (!q_head(l, &p)) /* queued with the marker: cannot happen */
            return pd_seterr(e, PARAMD_EINTERNAL, "a batch's requests are missing");
        pd_err be = {0};
        if ((code = pd_batch_next(l->rxbuf, len, &off, i, 1, &ih, &be)))
            return pd_seterr(e, code, "BATCH reply: %s", be.msg);
        if (ih.id != p.id || ih.type != (p.type | PD_REPLY))
            return pd_seterr(e, PARAMD_EPROTO,
                             "BATCH reply: inner reply %u is %s id %llu, expected "
                             "%s id %llu",
                             i, pd_msg_name(ih.type), (unsigned long long)ih.id,
                             pd_msg_name(p.type | PD_REPLY), (unsigned long long)p.id);
        int st;
        pd_mem_reset(&m, l->rxbuf + off - ih.len, (size_t)ih.len);
        if ((code = rx_payload(l, &m.conn, &p, &ih, msg, &st, e))) return code;
        rx_complete(l, &p, &ih, st, e->msg);
    }
    if (off != len)
        return pd_seterr(e, PARAMD_EPROTO,
                         "BATCH reply: %zu bytes after its %u inner replies",
                         len - off, b->nbatch);
    return 0;
}

/* Holding the read role: read the reply to p (the head of the FIFO, taken
 * under q_mu: it cannot change meanwhile, since only the reader pops) and
 * complete its sub-request (a BATCH reply: each of its inner ones).  0, or
 * an error that breaks the link (detail in e: the caller then calls
 * rx_fail). */
int rx_read(pd_link *l, const pending *p, pd_err *e) {
    pd_hdr h;
    int code = pd_recv_hdr(l->conn, &h, UINT64_MAX / 2, e);
    if (code) return code;
    if (h.id != p->id || h.type != (p->type | PD_REPLY))
        return pd_seterr(e, PARAMD_EPROTO, "unexpected %s id %llu from the server",
                         pd_msg_name(h.type), (unsigned long long)h.id);
    if (p->type == PD_MSG_BATCH) return rx_batch(l, p, &h, l->msgbuf, e);
    int st;
    if ((code = rx_payload(l, l->conn, p, &h, l->msgbuf, &st, e))) return code;
    rx_complete(l, p, &h, st, e->msg);
    return 0;
}

/* Holding the read role: read the next reply (rx_read).  1 if the FIFO is
 * empty (nothing is due: nothing was read). */
int rx_one(pd_link *l, pd_err *e) {
    pending p;
    if (!q_head(l, &p)) return 1;
    return rx_read(l, &p, e);
}

/* Holding the read role: the link broke (code, detail in e): fail every
 * sub-request pending on it, and every later one at once. */
void rx_fail(pd_link *l, int code, pd_err *e) {
    if (code == PARAMD_ECLOSED) snprintf(e->msg, sizeof e->msg, "connection closed");
    link_fail_all(l, code, e->msg);
}
