/*
 * request.c - a request (paramd_request): the sub-requests of one call,
 * their completion, and waiting for them.
 *
 * A request counts its outstanding sub-requests, plus one guard that its
 * issuer holds while it sends (set by req_init, dropped with req_done once
 * everything is sent), so that it cannot complete while it is still being
 * issued.  Each sub-request is queued on one link; req_add records the
 * request's first link and whether others were used.  Whoever reads that
 * link completes the sub-request (req_done, from rx.c), and the first
 * error is kept with its message.  req_finish waits: it flushes the
 * outboxes (the request's frames may be there, outbox.c), reads the
 * request's links itself where nobody else does (link_wait,
 * req_wait_links: reader.c), sleeps until the count is zero, copies the
 * error into the client's last error, and frees what the request owned.
 *
 * Locks: paramd_request.mu (a leaf, but taken under q_mu when the read
 * role is handed to a follower) guards outstanding, err, msg and
 * clock_seen; outstanding is also written atomically so that waiters may
 * peek at it (req_pending).  A request lives on its caller's stack (a
 * blocking call) or on the heap (an async call's handle, which
 * paramd_wait frees).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "client/client_impl.h"
#include "common/common.h"
#include "paramd.h"

/* ==== Issuing =========================================================== */

void req_init(paramd_request *r, paramd_client *c) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->c = c;
    r->outstanding = 1; /* the issuer's own guard, dropped by req_issued */
    r->replay_srv = -1;
}

uint64_t req_next_id(paramd_request *r, pd_link *l) {
    if (r && r->replay_srv == l->index)
        for (; r->replay_pos < r->nrid; r->replay_pos++)
            if (r->rid[r->replay_pos].srv == l->index) return r->rid[r->replay_pos++].id;
    uint64_t id = ++l->next_id;
    if (r && r->reissue && l->c->replicas > 1 && r->replay_srv < 0) {
        if (r->nrid == r->caprid) {
            uint32_t cap = r->caprid ? r->caprid * 2 : 8;
            void *p = pd_realloc(r->rid, cap * sizeof *r->rid);
            if (!p) return id; /* (then that frame is applied again if sent again) */
            r->rid = p;
            r->caprid = cap;
        }
        r->rid[r->nrid].srv = l->index;
        r->rid[r->nrid++].id = id;
    }
    return id;
}

static void req_end(paramd_request *r, int err, const char *msg, int32_t link) {
    pthread_mutex_lock(&r->mu);
    if (err && link >= 0 && link < 64)
        r->lost |= 1ull << link;
    else if (err)
        r->other_err = 1;
    if (err && !r->err) {
        r->err = err;
        snprintf(r->msg, sizeof r->msg, "%s", msg);
    }
    /* atomic too: req_finish peeks at it without the lock */
    if (__atomic_sub_fetch(&r->outstanding, 1, __ATOMIC_RELEASE) == 0)
        pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void req_done(paramd_request *r, int err, const char *msg) { req_end(r, err, msg, -1); }

void req_lost(paramd_request *r, const pd_link *l, int err, const char *msg) {
    req_end(r, err, msg, err == PARAMD_EIO || err == PARAMD_ECLOSED ? l->index : -1);
}

/* Request r gets one more sub-request, on link l. */
void req_add(paramd_request *r, pd_link *l) {
    pthread_mutex_lock(&r->mu);
    __atomic_add_fetch(&r->outstanding, 1, __ATOMIC_RELAXED);
    if (!r->link)
        r->link = l;
    else if (r->link != l)
        r->multi = 1;
    pthread_mutex_unlock(&r->mu);
}

/* ==== Waiting =========================================================== */

/* Sleep until r completes or, if granted is not NULL, until *granted is
 * set (the read role of r's link was handed to this thread: link_wait).
 * Before sleeping on the condition variable, watch for a moment, yielding
 * the CPU: the waker's broadcast is a futex wake-up that lands on another
 * vCPU (slow to wake when it halted, on virtual machines: bench/README.md,
 * "Figures once kept in code comments"), while a waiter that is still
 * awake sees the change at once (the gain, measured when the receiver
 * thread read every reply, is in bench/README.md).  On a loaded machine a yield can lose the CPU for a whole time slice:
 * then pd_yield says so and this thread sleeps at once for its
 * next waits (common.h).  The reads while yielding are peeks; the locked
 * check decides. */
void req_sleep(paramd_request *r, const int *granted) {
    if (pd_yield_ok()) { /* not after a lost slice (common.h, pd_yield) */
        double end = pd_now() + PD_WAIT_YIELD_S;
        while (req_pending(r) && !(granted && __atomic_load_n(granted, __ATOMIC_ACQUIRE)) &&
               pd_now() < end)
            if (pd_yield() < 0) break;
    }
    pthread_mutex_lock(&r->mu);
    while (r->outstanding > 0 && !(granted && __atomic_load_n(granted, __ATOMIC_ACQUIRE)))
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

/* r failed only because servers were lost (r->lost), in a cluster that
 * replaces them: wait for each replacement, and issue r's part for it
 * again (the request starts over with those parts alone).  1 if r was
 * issued again, 0 if r stays failed (its error is then the recovery's if
 * that failed). */
static int req_retry(paramd_request *r) {
    paramd_client *c = r->c;
    if (!r->err || !r->lost || r->other_err || !r->reissue || !c->replace_ms ||
        __atomic_load_n(&c->closing, __ATOMIC_ACQUIRE))
        return 0;
    uint64_t lost = r->lost;
    for (int32_t k = 0; k < c->S && k < 64; k++) {
        if (!(lost >> k & 1)) continue;
        int rc = cl_recover_link(c, k);
        if (rc) {
            pthread_mutex_lock(&r->mu);
            r->err = rc;
            pthread_mutex_lock(&c->err_mu);
            snprintf(r->msg, sizeof r->msg, "%s", c->errmsg);
            pthread_mutex_unlock(&c->err_mu);
            pthread_mutex_unlock(&r->mu);
            return 0;
        }
    }
    /* Every sub-request of the first round is done: nobody else touches r */
    pthread_mutex_lock(&r->mu);
    __atomic_store_n(&r->outstanding, 1, __ATOMIC_RELAXED);
    r->err = 0;
    r->msg[0] = '\0';
    r->lost = 0;
    r->link = NULL;
    r->multi = 0;
    pthread_mutex_unlock(&r->mu);
    for (int32_t k = 0; k < c->S && k < 64; k++)
        if (lost >> k & 1) {
            r->replay_srv = k; /* its frames keep their ids (req_next_id) */
            r->replay_pos = 0;
            r->reissue(r, k);
        }
    r->replay_srv = -1;
    req_done(r, 0, ""); /* the issuer's guard */
    return 1;
}

/* Wait and return the result; copy the detail to the client's error.  What
 * waits in the outboxes is sent first: r's frames may be there.  This
 * thread reads r's replies itself from links nobody else reads: a request
 * on one link with link_wait, one spanning several with req_wait_links.
 * A request that failed only because servers were lost is sent again to
 * their replacements first (req_retry). */
int req_finish(paramd_request *r) {
again:
    client_flush(r->c, r);
    /* A wait that lasts is logged by the heartbeat thread (waits.c); one
     * already complete needs no registration. */
    cl_wait cw;
    int watched = req_pending(r);
    if (watched) {
        cw.server = !r->multi && r->link ? r->link->index : -1;
        char to[32];
        if (cw.server >= 0) snprintf(to, sizeof to, "server %d", cw.server);
        else snprintf(to, sizeof to, "several servers");
        if (r->table)
            snprintf(cw.what, sizeof cw.what, "a request on table '%.60s' at clock %lld to %s",
                     r->table->name, (long long)paramd_get_clock(r->c), to);
        else
            snprintf(cw.what, sizeof cw.what, "a request to %s", to);
        if (cw.server < 0) cw.server = 0; /* a server's log, either way */
        cl_wait_begin(r->c, &cw);
    }
    if (r->multi)
        req_wait_links(r);
    else if (r->link)
        link_wait(r->link, r);
    pthread_mutex_lock(&r->mu); /* also orders us after the completer's unlock */
    while (r->outstanding > 0) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    if (watched) cl_wait_end(r->c, &cw);
    if (req_retry(r)) goto again;
    pthread_mutex_lock(&r->mu);
    int err = r->err;
    int64_t seen = r->clock_seen;
    pthread_mutex_unlock(&r->mu);
    if (err) cl_err(r->c, err, "%s", r->msg);
    if (r->table) { /* atomic max: pulls may finish on several threads */
        int64_t cur = __atomic_load_n(&r->table->clock_seen, __ATOMIC_RELAXED);
        while (seen > cur &&
               !__atomic_compare_exchange_n(&r->table->clock_seen, &cur, seen, 0,
                                            __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            ;
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    pd_free(r->owned);
    r->owned = NULL;
    pd_free(r->op_plan);
    r->op_plan = NULL;
    pd_free(r->rid);
    r->rid = NULL;
    r->nrid = r->caprid = 0;
    return err;
}

int paramd_wait(paramd_request *r) {
    if (!r) return PARAMD_EINVAL;
    int rc = req_finish(r);
    pd_free(r);
    return rc;
}
