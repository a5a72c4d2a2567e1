/*
 * admit.c - connection limits, the pending (handshake) queue and accept
 * backoff for a listening role (see admit.h for the design and the
 * threading rules).
 *
 * Logging under attack.  A flood must not become a flood of log lines
 * (the coordinator once wrote 270 MB in 8 s while its accept loop spun):
 * evictions and refusals are counted and reported at most once per
 * ADMIT_LOG_MS, and descriptor exhaustion once when it starts and once
 * when it ends.
 */
#include "frame/admit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define ADMIT_LOG_MS 10000

/* ==== Helpers =========================================================== */

static void unlink_pending(pd_admit *a, pd_admit_slot *s) {
    if (s->prev) s->prev->next = s->next;
    else a->head = s->next;
    if (s->next) s->next->prev = s->prev;
    else a->tail = s->prev;
    s->prev = s->next = NULL;
    a->npending--;
}

/* mu held: shut a pending connection down (its thread ends it). */
static void evict(pd_admit *a, pd_admit_slot *s) {
    unlink_pending(a, s);
    s->state = PD_SLOT_EVICTED;
    a->nconns--; /* its thread is on its way out */
    a->evicted++;
    pd_conn_shutdown(s->conn);
}

/* mu held: evict the oldest evictable pending connection.  1 if one was. */
static int evict_oldest(pd_admit *a) {
    for (pd_admit_slot *s = a->head; s; s = s->next)
        if (s->conn) {
            evict(a, s);
            return 1;
        }
    return 0;
}

/* mu held: evict every pending connection older than age_ms (the list is
 * oldest first), or the oldest one if none is. */
static void evict_stale(pd_admit *a, int64_t age_ms) {
    int64_t now = pd_now_ms();
    int n = 0;
    pd_admit_slot *s = a->head;
    while (s && now - s->since_ms >= age_ms) {
        pd_admit_slot *next = s->next;
        if (s->conn) evict(a, s), n++;
        s = next;
    }
    if (!n) evict_oldest(a);
}

/* mu held: one line about evictions and refusals since the last one, at
 * most every ADMIT_LOG_MS. */
static void maybe_log(pd_admit *a) {
    int64_t now = pd_now_ms();
    if (!a->evicted && !a->refused) return;
    if (a->logged_ms && now - a->logged_ms < ADMIT_LOG_MS) return;
    pd_log(PD_LOG_WARN,
           "%llu connection%s dropped before finishing the handshake (at most "
           "%d may be in it at once), %llu refused (at most %d connections; "
           "--max-connections) in the last %.1f s",
           (unsigned long long)a->evicted, a->evicted == 1 ? "" : "s",
           a->max_pending, (unsigned long long)a->refused, a->max_conns,
           (double)(now - a->window_ms) / 1000);
    a->evicted = a->refused = 0;
    a->logged_ms = a->window_ms = now;
}

/* ==== Public ============================================================ */

void pd_admit_init(pd_admit *a, const char *who, int max_conns, int max_pending) {
    memset(a, 0, sizeof *a);
    a->who = who;
    a->window_ms = pd_now_ms();
    pthread_mutex_init(&a->mu, NULL);
    pd_admit_set_limits(a, max_conns, max_pending);
}

void pd_admit_destroy(pd_admit *a) { pthread_mutex_destroy(&a->mu); }

void pd_admit_set_limits(pd_admit *a, int max_conns, int max_pending) {
    pthread_mutex_lock(&a->mu);
    a->max_conns = max_conns > 0 ? max_conns : 1;
    a->max_pending = max_pending > 0 ? max_pending : PD_MAX_PENDING_DEFAULT;
    if (a->max_pending > a->max_conns) a->max_pending = a->max_conns;
    pthread_mutex_unlock(&a->mu);
}

int pd_admit_enter(pd_admit *a, pd_admit_slot *s, pd_conn *conn) {
    pthread_mutex_lock(&a->mu);
    if (a->npending >= a->max_pending || a->nconns >= a->max_conns) evict_oldest(a);
    if (a->nconns >= a->max_conns) {
        a->refused++;
        maybe_log(a);
        pthread_mutex_unlock(&a->mu);
        return PARAMD_ELIMIT;
    }
    s->conn = conn;
    s->since_ms = pd_now_ms();
    s->state = PD_SLOT_PENDING;
    s->next = NULL;
    s->prev = a->tail;
    if (a->tail) a->tail->next = s;
    else a->head = s;
    a->tail = s;
    a->npending++;
    a->nconns++;
    maybe_log(a);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

void pd_admit_set_conn(pd_admit *a, pd_admit_slot *s, pd_conn *conn) {
    pthread_mutex_lock(&a->mu);
    s->conn = conn;
    pthread_mutex_unlock(&a->mu);
}

int pd_admit_welcomed(pd_admit *a, pd_admit_slot *s) {
    pthread_mutex_lock(&a->mu);
    int rc = 0;
    if (s->state == PD_SLOT_PENDING) {
        unlink_pending(a, s);
        s->state = PD_SLOT_IN;
    } else if (s->state == PD_SLOT_EVICTED) {
        rc = PARAMD_ECLOSED;
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

void pd_admit_leave(pd_admit *a, pd_admit_slot *s) {
    pthread_mutex_lock(&a->mu);
    if (s->state == PD_SLOT_PENDING) unlink_pending(a, s);
    if (s->state == PD_SLOT_PENDING || s->state == PD_SLOT_IN) a->nconns--;
    s->state = PD_SLOT_FREE;
    s->conn = NULL;
    pthread_mutex_unlock(&a->mu);
}

void pd_admit_refuse(pd_admit *a, pd_conn *c) {
    char msg[256];
    int maxc;
    pthread_mutex_lock(&a->mu);
    maxc = a->max_conns;
    pthread_mutex_unlock(&a->mu);
    snprintf(msg, sizeof msg,
             "the %s has %d connections, its limit (--max-connections): try "
             "again later, or raise the limit",
             a->who, maxc);
    /* The answer to the HELLO the peer is about to send (id 1: every
     * dialer's, frame/hello.c): a fresh socket's buffer takes these few
     * bytes without blocking. */
    pd_hdr req = {0};
    req.type = PD_MSG_HELLO;
    req.id = 1;
    pd_send_error(c, &req, PARAMD_ELIMIT, msg);
    pd_conn_destroy(c);
}

void pd_admit_accept_failed(pd_admit *a, int err) {
    if (err != EMFILE && err != ENFILE && err != ENOMEM && err != ENOBUFS &&
        err != EAGAIN) {
        pd_log(PD_LOG_DEBUG, "accept: %s", strerror(err));
        return;
    }
    /* Under mu: a server has two accepting threads (TCP, shared memory)
     * sharing one episode. */
    pthread_mutex_lock(&a->mu);
    int64_t now = pd_now_ms();
    if (!a->starved) {
        a->starved = 1;
        a->starved_since_ms = now;
        a->starved_fails = 0;
        a->backoff_ms = 1;
        /* Episodes that follow each other closely (a flood that keeps the
         * descriptors short) share one pair of lines. */
        a->starved_logged = !a->starved_log_ms || now - a->starved_log_ms >= ADMIT_LOG_MS;
        if (a->starved_logged) {
            struct rlimit rl = {0, 0};
            getrlimit(RLIMIT_NOFILE, &rl);
            a->starved_log_ms = now;
            pd_log(PD_LOG_WARN,
                   "cannot accept connections: %s (descriptor limit %llu, "
                   "ulimit -n); new connections wait until descriptors free "
                   "up, connections still in their handshake are dropped first",
                   strerror(err), (unsigned long long)rl.rlim_cur);
        }
    }
    a->starved_fails++;
    evict_stale(a, PD_EVICT_AGE_MS);
    int ms = a->backoff_ms;
    a->backoff_ms = ms * 2 > PD_ACCEPT_BACKOFF_MAX_MS ? PD_ACCEPT_BACKOFF_MAX_MS : ms * 2;
    pthread_mutex_unlock(&a->mu);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void pd_admit_accept_ok(pd_admit *a) {
    pthread_mutex_lock(&a->mu);
    if (a->starved) {
        a->starved = 0;
        if (a->starved_logged)
            pd_log(PD_LOG_WARN, "accepting connections again, after %lld ms short of "
                   "descriptors (%llu accepts failed)",
                   (long long)(pd_now_ms() - a->starved_since_ms),
                   (unsigned long long)a->starved_fails);
    }
    pthread_mutex_unlock(&a->mu);
}

void pd_admit_counts(pd_admit *a, int *nconns, int *npending) {
    pthread_mutex_lock(&a->mu);
    if (nconns) *nconns = a->nconns;
    if (npending) *npending = a->npending;
    pthread_mutex_unlock(&a->mu);
}
