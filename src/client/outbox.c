/*
 * outbox.c - sending a sub-request on a link, and coalescing small ones:
 * the outbox.
 *
 * Small frames (at most coalesce_bytes, 16 KiB by default, and not pulls
 * of sync/ssp tables) are not written at once: they wait in their link's
 * outbox, and go out together as one BATCH frame (one write, one wake-up
 * of the server, one reply) when the outbox is full, before a frame that
 * goes alone, and before anything waits (paramd_wait and every blocking
 * call), at paramd_clock, paramd_barrier and paramd_close.  So a worker
 * that issues a window of small async requests and then waits sends them
 * in a few frames, and a blocking call costs what it did.  The reader
 * reads a BATCH reply whole and completes its inner replies in order, as
 * if they had come one by one (rx.c).
 *
 * A sub-request goes out in one of two ways, both under the link's
 * send_mu, so that the FIFO order is the order on the wire:
 *   - alone: queued, then written at once by the calling thread (one
 *     gathered write of header and payload parts);
 *   - through the outbox, if it is small (frame and pulled values at most
 *     coalesce_bytes) and can never wait on the server (not a pull of a
 *     sync or ssp table: a waiting pull would hold back the replies of the
 *     requests before it in its batch).  The outbox is flushed, as one
 *     BATCH frame if it holds two frames or more, else as the frame itself,
 *     when the next small frame would not fit a batch (OB_FLUSH_BYTES of
 *     frames or of pulled values, OB_IOV_MAX iovecs),
 *     before a frame that goes alone, and by client_flush: before any wait
 *     on a request (a waiter must never sleep on a frame still in an
 *     outbox), paramd_clock, paramd_barrier and paramd_close.
 * A frame in the outbox has its id, header and sub-request but is not in
 * the FIFO yet; flushing queues a BATCH marker and the frames together.
 * Payload parts over OB_COPY_MAX are not copied: the outbox points at the
 * caller's buffer (or the request's own memory), which the API requires to
 * stay untouched until the request is waited for, and every wait flushes
 * first.
 *
 * Locks: the outbox (ob_*) and next_id are guarded by pd_link.send_mu,
 * taken before q_mu when the frames are queued; ob_n is also read without
 * it, atomically, by waiters deciding whether to flush (client_flush). */

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "client/client_impl.h"
#include "common/common.h"
#include "net/conn.h"
#include "wire/wire.h"

#define OB_COPY_MAX 512 /* payload parts up to this size are copied into the
                         * outbox; larger ones are sent from where they lie */

/* ==== The outbox ======================================================== */

/* Can a frame of this type, for table t, wait in the outbox? */
int batchable(const paramd_table *t, uint16_t type) {
    switch (type) {
    case PD_MSG_PUSH:
    case PD_MSG_SET:
    case PD_MSG_SPARSE_PUSH: return 1;
    case PD_MSG_PULL:
    case PD_MSG_SPARSE_PULL: return t->def.consistency == PD_CONS_ASYNC;
    }
    return 0;
}

/* With send_mu held: an empty outbox. */
static void ob_reset(pd_link *l) {
    l->ob_used = 0;
    l->ob_niov = 1;
    l->ob_run = 0;
    l->ob_frames = 0;
    l->ob_values = 0;
    l->ob_bound = 0;
    __atomic_store_n(&l->ob_n, 0, __ATOMIC_RELEASE);
}

/* With send_mu held: fail every frame of the outbox, and empty it. */
static void ob_fail(pd_link *l, int code, const char *msg) {
    int dead = __atomic_load_n(&l->dead, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < l->ob_n; i++)
        if (dead)
            req_lost(l->ob_ents[i].req, l, code, msg);
        else
            req_done(l->ob_ents[i].req, code, msg);
    ob_reset(l);
}

/* With send_mu held: copy n bytes into the outbox, extending the last
 * iovec if it is a run of ob_bytes. */
static void ob_copy(pd_link *l, const void *p, size_t n) {
    uint8_t *at = l->ob_bytes + PD_HDR_SIZE + l->ob_used;
    memcpy(at, p, n);
    l->ob_used += n;
    if (l->ob_run)
        l->ob_iov[l->ob_niov - 1].iov_len += n;
    else
        l->ob_iov[l->ob_niov++] = (struct iovec){at, n};
    l->ob_run = 1;
}

/* With send_mu held: send what the outbox holds, and empty it.  A write
 * that fails shuts the link down: the receiver then fails everything
 * queued. */
static void ob_flush(pd_link *l) {
    size_t n = l->ob_n;
    if (n == 0) return;
    pthread_mutex_lock(&l->q_mu);
    if (l->dead || q_reserve(l, n + 1) != 0) {
        char msg[PD_ERRMSG_MAX];
        int code = l->dead ? PARAMD_ECLOSED : PARAMD_ENOMEM;
        snprintf(msg, sizeof msg, "%s", l->dead ? l->dead_msg : "out of memory");
        pthread_mutex_unlock(&l->q_mu);
        ob_fail(l, code, msg);
        return;
    }
    rd_before_write(l);
    struct iovec *iov = l->ob_iov + 1;
    int cnt = l->ob_niov - 1;
    uint8_t *hb = l->ob_bytes;
    if (n >= 2) {
        pending b = {0};
        b.type = PD_MSG_BATCH;
        b.id = ++l->next_id;
        b.nbatch = (uint32_t)n;
        b.bound = l->ob_bound;
        q_push(l, &b);
        pd_hdr h = {PD_MAGIC, PD_PROTO_VERSION, PD_MSG_BATCH, b.id, 0, 0, 0,
                    l->ob_frames};
        pd_hdr_encode(&h, hb);
        l->ob_iov[0] = (struct iovec){hb, PD_HDR_SIZE};
        iov--, cnt++;
    }
    for (size_t i = 0; i < n; i++) q_push(l, &l->ob_ents[i]);
    pthread_mutex_unlock(&l->q_mu);
    pd_err e = {0};
    if (pd_conn_writev(l->conn, iov, cnt, &e) != 0) pd_conn_shutdown(l->conn);
    ob_reset(l);
}

/* With send_mu held: put one frame in the outbox (flushing it first if the
 * frame would not fit).  0, or -1 if the outbox cannot take it (out of
 * memory: the caller sends the frame alone). */
static int ob_add(pd_link *l, paramd_request *r, const pending *pt, uint32_t table,
                  int64_t clock, const void *const *part, const size_t *plen,
                  size_t fbytes, uint64_t values) {
    if (!l->ob_bytes && !(l->ob_bytes = pd_malloc(PD_HDR_SIZE + OB_FLUSH_BYTES)))
        return -1;
    int nref = 0;
    for (int i = 0; i < 3; i++) nref += plen[i] > OB_COPY_MAX;
    /* a copied run and, per referenced part, itself and a run after it */
    if (l->ob_frames + fbytes > OB_FLUSH_BYTES || l->ob_values + values > OB_FLUSH_BYTES ||
        l->ob_niov + 1 + 2 * nref > OB_IOV_MAX + 1)
        ob_flush(l); /* a frame (<= PD_COALESCE_MAX) always fits an empty one */
    if (l->ob_n == l->ob_cap) {
        size_t cap = l->ob_cap ? l->ob_cap * 2 : 64;
        pending *ents = pd_realloc(l->ob_ents, cap * sizeof *ents);
        if (!ents) return -1;
        l->ob_ents = ents;
        l->ob_cap = cap;
    }
    uint8_t hb[PD_HDR_SIZE];
    pd_hdr h = {PD_MAGIC, PD_PROTO_VERSION, pt->type, req_next_id(r, l), table, 0,
                clock, fbytes - PD_HDR_SIZE};
    pd_hdr_encode(&h, hb);
    ob_copy(l, hb, sizeof hb);
    for (int i = 0; i < 3; i++) {
        if (plen[i] == 0) continue;
        if (plen[i] <= OB_COPY_MAX) {
            ob_copy(l, part[i], plen[i]);
        } else {
            l->ob_iov[l->ob_niov++] = (struct iovec){(void *)part[i], plen[i]};
            l->ob_run = 0;
        }
    }
    pending *q = &l->ob_ents[l->ob_n];
    *q = *pt;
    q->id = h.id;
    q->req = r;
    l->ob_frames += fbytes;
    l->ob_values += values;
    l->ob_bound += PD_HDR_SIZE + (values > PD_MAX_ERRTEXT ? values : PD_MAX_ERRTEXT);
    __atomic_store_n(&l->ob_n, l->ob_n + 1, __ATOMIC_RELEASE);
    return 0;
}

/* Send everything waiting in the outboxes of c's links.  The frames sent
 * are then read by the receiver threads (link_kick), unless the calling
 * thread is about to wait for `waiter` (or NULL) and reads them itself:
 * those on its link, for a request on one link (link_wait); all, for one
 * spanning several (req_wait_links visits every link).  Thread-safe. */
void client_flush(paramd_client *c, const paramd_request *waiter) {
    for (int32_t k = 0; c->links && k < c->S; k++) {
        pd_link *l = &c->links[k];
        /* A frame this thread put in an outbox is seen here (same thread,
         * or the request was handed over with a happens-before); one that
         * another thread is adding or flushing meanwhile is not ours. */
        if (__atomic_load_n(&l->ob_n, __ATOMIC_ACQUIRE) == 0) continue;
        pthread_mutex_lock(&l->send_mu);
        ob_flush(l);
        pthread_mutex_unlock(&l->send_mu);
        if (!waiter || (!waiter->multi && waiter->link != l)) link_kick(l);
    }
}

void paramd_flush(paramd_client *c) {
    if (c) client_flush(c, NULL);
}

/* ==== Sending =========================================================== */

/* Queue and send one sub-request of r on link l: a frame of type pt->type
 * with up to three payload parts; pt also says where the reply goes.
 * can_batch: the frame may wait in the outbox (batchable()).  On failure r
 * is completed with the error (so the caller just waits). */
void link_send_ex(pd_link *l, paramd_request *r, const pending *pt,
                  int can_batch, uint32_t table, int64_t clock,
                  const void *p1, size_t n1, const void *p2, size_t n2,
                  const void *p3, size_t n3) {
    paramd_client *c = l->c;
    uint16_t type = pt->type;
    size_t fbytes = PD_HDR_SIZE + n1 + n2 + n3;
    uint64_t values = type == PD_MSG_PULL || type == PD_MSG_SPARSE_PULL ? pt->count * 4 : 0;
    int small = can_batch && c->coalesce_bytes && fbytes <= c->coalesce_bytes &&
                values <= c->coalesce_bytes &&
                !__atomic_load_n(&l->dead, __ATOMIC_ACQUIRE);
    req_add(r, l);
    pthread_mutex_lock(&l->send_mu);
    if (small) {
        const void *part[3] = {p1, p2, p3};
        size_t plen[3] = {n1, n2, n3};
        if (ob_add(l, r, pt, table, clock, part, plen, fbytes, values) == 0) {
            pthread_mutex_unlock(&l->send_mu);
            return;
        }
    }
    ob_flush(l); /* what waits goes first: the link's order is kept */
    pthread_mutex_lock(&l->q_mu);
    if (l->dead || q_reserve(l, 1) != 0) {
        char msg[PD_ERRMSG_MAX];
        int code = l->dead ? PARAMD_ECLOSED : PARAMD_ENOMEM;
        snprintf(msg, sizeof msg, "%s", l->dead ? l->dead_msg : "out of memory");
        int dead = l->dead;
        pthread_mutex_unlock(&l->q_mu);
        pthread_mutex_unlock(&l->send_mu);
        if (dead)
            req_lost(r, l, code, msg);
        else
            req_done(r, code, msg);
        return;
    }
    rd_before_write(l);
    uint64_t id = req_next_id(r, l);
    pending q = *pt;
    q.id = id;
    q.req = r;
    q_push(l, &q);
    pthread_mutex_unlock(&l->q_mu);
    pd_hdr h = {0};
    pd_err e = {0};
    h.type = type;
    h.id = id;
    h.table = table;
    h.clock = clock;
    if (pd_send_frame(l->conn, &h, p1, n1, p2, n2, p3, n3, &e) != 0) {
        /* The receiver fails everything queued, this one included. */
        pd_conn_shutdown(l->conn);
    }
    pthread_mutex_unlock(&l->send_mu);
}

void link_send(pd_link *l, paramd_request *r, uint16_t type, int can_batch,
               uint32_t table, int64_t clock, const void *pre, size_t npre,
               const void *data, size_t ndata, float *dst, uint64_t count) {
    pending pt = {0};
    pt.type = type, pt.dst = dst, pt.count = count;
    link_send_ex(l, r, &pt, can_batch, table, clock, pre, npre, data, ndata, NULL, 0);
}
