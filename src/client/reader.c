/*
 * reader.c - who reads a link: its read role (leader/follower), and the
 * link's receiver thread.
 *
 * At most one thread reads a link at a time: the holder of its read role.
 * A caller that waits for a request whose frames all went to one link
 * takes the role if nobody holds it and reads the replies itself,
 * completing every sub-request it meets on the way, until its own request
 * is complete; so a blocking call costs what a raw ping-pong costs, with
 * no other thread woken.  If another caller reads, it queues on the link
 * as a follower and sleeps until its request completes or the role is
 * handed to it; if the receiver thread reads, it waits for its request.
 * A caller gives the role up (between two replies, never inside one) to
 * the first follower still waiting, else to the link's receiver thread if
 * replies are still due (async requests nobody waits for yet complete in
 * the background, and large replies are drained so the server is never
 * blocked), else to nobody.  A request spanning several links is read by
 * its waiter too, one link after the other (large ones: in parallel with
 * the receiver threads).  In detail:
 *
 * The role is pd_link.reader, written under q_mu:
 *   RD_NONE    nobody reads.  Either nothing is due (the FIFO is empty),
 *              or a caller has just queued frames it is about to wait for
 *              and will read itself (a blocking call: no thread is woken).
 *   RD_CALLER  a caller reads (link_wait): it took the role from nobody, or
 *              was handed it as a follower.  It reads until its own
 *              request is complete, then passes the role on (rd_pass):
 *              to the first follower whose request is pending, else to
 *              the receiver thread if replies are due, else to nobody.
 *              A caller waiting on a request spanning several links
 *              (req_wait_links) takes the role of each link nobody reads,
 *              in turn, and reads it until its request has nothing left
 *              there (link_read_part).
 *   RD_RX      the link's receiver thread reads, for requests nobody
 *              reads for: async ones not waited for yet, and large
 *              replies due while a caller writes or reads elsewhere.  It
 *              keeps the role until nothing is due, then gives it up (to
 *              nobody).
 * The role changes hands only under q_mu and only between two replies, so
 * reads never overlap and each starts at a frame boundary; the lock also
 * orders each reader's use of the connection and the buffers after the
 * previous reader's.
 * A caller whose request is on a link the receiver thread reads just waits
 * for it to complete: the receiver reads until nothing is due, so it reads
 * that request too.  (Handing the role to such a caller would cost the
 * same wake-up as completing its request, and a caller that waits on a
 * window of async requests one by one would toss the role to and fro: two
 * wake-ups per request; bench/README.md, "The caller reads its own
 * reply".)  A caller
 * whose request is on a link another caller reads queues as a follower
 * (pd_link.wq) and sleeps on its request's condition variable: it wakes when
 * its request completes (the leader read it on the way) or when rd_pass
 * hands it the role.
 * Who gives the receiver thread the role (link_kick, rd_pass,
 * rd_before_write, req_wait_links): nobody holds it and replies are due
 * that no caller is about to read: an async request returning to its user
 * (req_kick), outboxes flushed without a wait or for another link
 * (client_flush), a caller leaving with replies still due and no
 * follower, large replies due while more frames are written, and large
 * replies due on the other links of a request spanning several, while its
 * waiter reads one.  So unwaited async requests complete in the
 * background, and a large reply is drained even while its caller computes.
 * The receiver thread, after giving the role up, watches for it a moment
 * (yielding, as req_sleep) before it sleeps: a program issuing a window of
 * async requests gives it back at once, and a signal to a thread that
 * does not sleep costs no system call. */

#include <pthread.h>

#include "client/client_impl.h"
#include "common/common.h"
#include "net/conn.h"

/* Replies of up to this many bytes of values may wait unread while more
 * frames are written to their link (rd_before_write): they fit the socket
 * buffers (or the shared-memory ring), so the server never blocks on them. */
#define RD_DUE_MAX (64u << 10)

/* ==== Handing the role on =============================================== */

/* With q_mu held: queue follower w last, or take it off the queue. */
static void wq_add(pd_link *l, rd_waiter *w) {
    w->next = NULL;
    w->prev = l->wq_tail;
    if (l->wq_tail)
        l->wq_tail->next = w;
    else
        l->wq = w;
    l->wq_tail = w;
}

static void wq_del(pd_link *l, rd_waiter *w) {
    if (w->prev)
        w->prev->next = w->next;
    else
        l->wq = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->wq_tail = w->prev;
    w->next = w->prev = NULL;
}

/* With q_mu held, nobody else reading: the receiver thread reads. */
static void rd_to_rx(pd_link *l) {
    rd_set(l, RD_RX);
    __atomic_add_fetch(&l->c->n_rx_wakes, 1, __ATOMIC_RELAXED);
    pthread_cond_signal(&l->rx_cv);
}

/* With q_mu held, by a caller holding the read role, between two replies:
 * give the role up.  To the first follower whose request is still
 * pending (its replies are due, so it reads); else to the receiver thread
 * if replies are due; else to nobody.  A follower whose request has
 * completed is skipped: it wakes by itself and leaves the queue. */
static void rd_pass(pd_link *l) {
    for (rd_waiter *w = l->wq; w; w = w->next) {
        if (!req_pending(w->req)) continue;
        wq_del(l, w);
        rd_set(l, RD_CALLER);
        __atomic_add_fetch(&l->c->n_handoffs, 1, __ATOMIC_RELAXED);
        /* Under the request's lock, so that its owner, checking *granted
         * under it before sleeping, cannot miss the broadcast. */
        pthread_mutex_lock(&w->req->mu);
        __atomic_store_n(&w->granted, 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&w->req->cv);
        pthread_mutex_unlock(&w->req->mu);
        return;
    }
    if (l->qlen > 0)
        rd_to_rx(l);
    else
        rd_set(l, RD_NONE);
}

/* With q_mu held, before frames are written to l: if more than
 * RD_DUE_MAX bytes of pulled values are due and nobody reads them, the
 * receiver thread reads them.  Else the write could block for good: the
 * server stops reading our frames while it cannot write its replies, and
 * the caller that would read them (a blocking call, or the waiter of an
 * async one) starts reading only once it has written all its frames: a
 * large sparse pull, for one, writes more keys than the buffers hold. */
void rd_before_write(pd_link *l) {
    if (rd_get(l) == RD_NONE && l->due > RD_DUE_MAX) rd_to_rx(l);
}

/* If replies are due on l and nobody reads them, give the receiver thread
 * the role.  For frames whose waiter (if any) will not read l itself,
 * called after they are queued.  The peek without the lock is enough when
 * someone holds the role: a reader sees the frames queued before it next
 * decides (a caller leaving passes the role to the receiver thread then;
 * the receiver thread keeps it), and a reader that gave the role up before
 * they were queued did so under q_mu, before this thread queued them. */
void link_kick(pd_link *l) {
    if (rd_get(l) != RD_NONE) return;
    pthread_mutex_lock(&l->q_mu);
    if (rd_get(l) == RD_NONE && l->qlen > 0) rd_to_rx(l);
    pthread_mutex_unlock(&l->q_mu);
}

/* r goes back to its user unwaited (an async call): have the links it went
 * to read by their receiver threads if nobody reads them.  (Every link, for
 * one on several: they are not recorded, and a link that is read costs a
 * peek.) */
void req_kick(paramd_request *r) {
    paramd_client *c = r->c;
    if (!r->multi) {
        if (r->link) link_kick(r->link);
        return;
    }
    for (int32_t k = 0; k < c->S; k++) link_kick(&c->links[k]);
}

/* ==== Waiting on a link: leader and followers =========================== */

/* Holding the read role, before reading the next reply: watch for it a
 * moment, yielding, as req_sleep does (and the shm transport inside its
 * reads).  A read that blocks at once lets this vCPU halt, and waking a
 * halted vCPU is slow on virtual machines: without the watch, a small
 * blocking call over TCP on an idle machine was fast in some runs and
 * many times slower in others (bench/README.md, "The caller reads its own
 * reply").  Only transports that can tell (ops->readable: TCP) are
 * watched. */
static void rx_watch(pd_link *l) {
    pd_conn *c = l->conn;
    if (!c->ops->readable || !pd_yield_ok()) return;
    double end = pd_now() + PD_WAIT_YIELD_S;
    while (!c->ops->readable(c) && pd_now() < end)
        if (pd_yield() < 0) break;
}

/* Holding the read role: read replies until r is complete or the link
 * breaks.  1 if the FIFO ran empty with r still pending (r's replies are
 * not on this link: cannot happen for a request on one link, whose frames
 * are all queued before it is waited for), else 0. */
static int link_lead(pd_link *l, paramd_request *r) {
    while (req_pending(r)) {
        pd_err e = {0};
        rx_watch(l);
        int code = rx_one(l, &e);
        if (code == 1) return 1;
        if (code) {
            rx_fail(l, code, &e); /* r fails with it */
            break;
        }
    }
    return 0;
}

/* Wait for r, every sub-request of which went to link l (its frames are
 * queued: flushed from the outbox).  If nobody reads l, take the role and
 * read until r is complete (leader).  If the receiver thread reads l, it
 * reads r's replies too: wait for r.  If another caller reads l, queue as
 * a follower and sleep until r completes (the leader read its replies on
 * the way) or the role is handed over.  Whatever role this thread took is
 * passed on before it returns.  The peek at the role without the lock is
 * safe for the same reason as in link_kick. */
void link_wait(pd_link *l, paramd_request *r) {
    rd_waiter w = {r, 0, NULL, NULL};
    if (!req_pending(r)) return;
    if (rd_get(l) == RD_RX) {
        req_sleep(r, NULL);
        return;
    }
    pthread_mutex_lock(&l->q_mu);
    while (req_pending(r)) {
        int who = rd_get(l);
        if (who == RD_NONE) {
            rd_set(l, RD_CALLER);
        } else if (who == RD_RX) {
            pthread_mutex_unlock(&l->q_mu);
            req_sleep(r, NULL);
            pthread_mutex_lock(&l->q_mu);
            continue;
        } else {
            wq_add(l, &w);
            pthread_mutex_unlock(&l->q_mu);
            req_sleep(r, &w.granted);
            pthread_mutex_lock(&l->q_mu);
            /* granted is only written under q_mu: this read decides. */
            if (!__atomic_load_n(&w.granted, __ATOMIC_RELAXED)) {
                wq_del(l, &w); /* r completed meanwhile */
                continue;
            }
            __atomic_store_n(&w.granted, 0, __ATOMIC_RELAXED); /* rd_pass unqueued w */
        }
        pthread_mutex_unlock(&l->q_mu);
        int empty = link_lead(l, r);
        pthread_mutex_lock(&l->q_mu);
        rd_pass(l);
        if (empty) break; /* req_finish sleeps on r */
    }
    pthread_mutex_unlock(&l->q_mu);
}

/* With q_mu held: the value l->popped will have once every entry of r now
 * in l's FIFO is taken off it (l->popped itself if there is none). */
static uint64_t rd_target(pd_link *l, paramd_request *r) {
    for (size_t i = l->qlen; i-- > 0;)
        if (l->q[(l->qhead + i) % l->qcap].req == r) return l->popped + i + 1;
    return l->popped;
}

/* r's replies on link l, for a request spanning several links: if nobody
 * reads l, read until r has no entry left in its FIFO, then pass the role
 * on.  Else return at once: whoever reads l passes the role on, with
 * replies due, to a follower or the receiver thread, so r's entries are
 * read.  Replies due on l but not r's (flushed from its outbox with r's
 * frames) go to the receiver thread, as link_kick would. */
static void link_read_part(pd_link *l, paramd_request *r) {
    pthread_mutex_lock(&l->q_mu);
    uint64_t target = rd_target(l, r);
    if (rd_get(l) != RD_NONE || l->popped >= target) {
        if (rd_get(l) == RD_NONE && l->qlen > 0) rd_to_rx(l);
        pthread_mutex_unlock(&l->q_mu);
        return;
    }
    rd_set(l, RD_CALLER);
    pthread_mutex_unlock(&l->q_mu);
    /* popped changes only on the holder of the role: this thread */
    while (l->popped < target) {
        pd_err e = {0};
        rx_watch(l);
        int code = rx_one(l, &e);
        if (code == 1) break;
        if (code) {
            rx_fail(l, code, &e);
            break;
        }
    }
    pthread_mutex_lock(&l->q_mu);
    rd_pass(l);
    pthread_mutex_unlock(&l->q_mu);
}

/* Wait for r, whose sub-requests went to several links.  First, links with
 * more than RD_DUE_MAX bytes of replies due and nobody reading them go to
 * their receiver threads, which drain them in parallel (a large range is
 * cut in chunks over all servers: reading the links one after the other
 * would stall the servers behind full buffers).  Then this thread reads
 * the links nobody reads, one after the other (small replies wait in the
 * buffers meanwhile), and waits for the rest: a small request to S servers
 * wakes no other thread. */
void req_wait_links(paramd_request *r) {
    paramd_client *c = r->c;
    for (int32_t k = 0; k < c->S; k++) {
        pd_link *l = &c->links[k];
        pthread_mutex_lock(&l->q_mu);
        if (rd_get(l) == RD_NONE && l->due > RD_DUE_MAX) rd_to_rx(l);
        pthread_mutex_unlock(&l->q_mu);
    }
    for (int32_t k = 0; k < c->S; k++) link_read_part(&c->links[k], r);
    req_sleep(r, NULL);
}

/* ==== The receiver thread =============================================== */

/* The receiver thread: wait until it holds the read role with a reply
 * due, and take the head of the FIFO into *p: 1; or 0 once it must end
 * (paramd_close).  It gives the role up when nothing is due, then watches
 * for it a moment before sleeping on rx_cv. */
static int rx_next(pd_link *l, pending *p) {
    int watched = 0;
    pthread_mutex_lock(&l->q_mu);
    while (!l->rx_stop) {
        if (rd_get(l) == RD_RX) {
            if (l->qlen > 0) {
                *p = l->q[l->qhead];
                pthread_mutex_unlock(&l->q_mu);
                return 1;
            }
            rd_set(l, RD_NONE);
            watched = 0;
        }
        if (!watched && pd_yield_ok()) {
            watched = 1;
            pthread_mutex_unlock(&l->q_mu);
            double end = pd_now() + PD_WAIT_YIELD_S;
            while (rd_get(l) != RD_RX && !__atomic_load_n(&l->rx_stop, __ATOMIC_RELAXED) &&
                   pd_now() < end)
                if (pd_yield() < 0) break;
            pthread_mutex_lock(&l->q_mu);
            continue;
        }
        pthread_cond_wait(&l->rx_cv, &l->q_mu);
    }
    if (rd_get(l) == RD_RX) rd_set(l, RD_NONE);
    pthread_mutex_unlock(&l->q_mu);
    return 0;
}

/* The receiver thread of link l: reads while it holds the read role,
 * sleeps otherwise, ends at paramd_close (rx_stop; a read it is blocked in
 * fails once the connection is shut down). */
void *link_rx(void *arg) {
    pd_link *l = arg;
    pending p;
    while (rx_next(l, &p)) {
        pd_err e = {0};
        int code = rx_read(l, &p, &e);
        if (code) rx_fail(l, code, &e);
    }
    return NULL;
}
