/*
 * client.c - libparamd, the worker side: connect to a cluster, open tables,
 * and push and pull ranges that are split by shard, cut into chunks, sent
 * to every server in parallel and reassembled in place.
 *
 * Design.  A client keeps one connection to the coordinator (control
 * requests, one at a time under coord_mu) and one connection ("link") to
 * each server.  Requests on a link are written by the calling thread under
 * the link's send lock and answered by the server in order, so each link
 * has a FIFO of pending sub-requests, and whoever reads the link reads the
 * replies in that order: a pull reply's floats are read from the socket
 * straight into the caller's buffer.  A paramd_request counts its
 * outstanding sub-requests; the reader completes them; paramd_wait returns
 * when the count is zero.
 *
 * Who reads (leader/follower).  At most one thread reads a link at a time:
 * the holder of its read role (link.reader, under q_mu).  A caller that
 * waits for a request whose frames all went to one link takes the role if
 * nobody holds it and reads the replies itself, completing every
 * sub-request it meets on the way, until its own request is complete; so a
 * blocking call costs what a raw ping-pong costs, with no other thread
 * woken.  If another caller reads, it queues on the link as a follower and
 * sleeps until its request completes or the role is handed to it; if the
 * receiver thread reads, it waits for its request as before.  A caller
 * gives the role up (between two replies, never inside one) to the first
 * follower still waiting, else to the link's receiver thread if replies
 * are still due (async requests nobody waits for yet: they complete in the
 * background, and large replies are drained so the server is never
 * blocked), else to nobody.  The receiver thread sleeps while it does not
 * hold the role; it gets it when an async request returns to its user,
 * when outboxes are flushed without a wait, and when large replies are due
 * unread while a caller writes frames or reads another link; it keeps it
 * until nothing is due.  A request spanning several links is read by its
 * waiter too, one link after the other (large ones: in parallel with the
 * receiver threads).  "Links: who reads" below.
 *
 * Coalescing.  Small frames (at most coalesce_bytes, 16 KiB by default,
 * and not pulls of sync/ssp tables) are not written at once: they wait in
 * their link's outbox, and go out together as one BATCH frame (one write,
 * one wake-up of the server, one reply) when the outbox is full, before a
 * frame that goes alone, and before anything waits (paramd_wait and every
 * blocking call), at paramd_clock, paramd_barrier and paramd_close.  So a
 * worker that issues a window of small async requests and then waits sends
 * them in a few frames, and a blocking call costs what it did.  The reader
 * reads a BATCH reply whole and completes its inner replies in order, as
 * if they had come one by one.  "Links: sending, and the outbox" below.
 *
 * Threads and what they own:
 *   caller threads     write requests and flush outboxes (link.send_mu),
 *                      wait on requests; read a link while they hold its
 *                      read role
 *   receiver, 1/link   reads replies while it holds its link's read role,
 *                      sleeps otherwise
 * The holder of a link's read role owns the read side of its connection,
 * the reply buffers (msgbuf, rxbuf) and the FIFO's head: only it pops
 * entries or fails the link.
 * Locks: coord_mu (coordinator connection); link.send_mu (the write side of
 * the link, next_id, the outbox) then link.q_mu (the FIFO, the read role,
 * the followers; never the other way); request.mu (leaf; also taken under
 * q_mu to hand the role to a follower); err_mu (leaf).  A waiter takes the
 * send_mu of each link whose outbox is not empty before it waits, holding
 * nothing.
 *
 * Failure.  If a link breaks (server died, protocol error), its reader (a
 * caller or the receiver thread) fails every pending sub-request with the
 * reason and marks the link dead; later requests to that server fail at
 * once, and frames still in its outbox fail when it is next flushed (at
 * the latest by their waiter).  A link that breaks while nothing is
 * pending is noticed by the next request's reader.  Nothing aborts the
 * caller.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "client/client_internal.h"
#include "common/common.h"
#include "common/keymap.h"
#include "net/conn.h"
#include "net/fault.h"
#include "paramd.h"
#include "wire/spec.h"
#include "wire/wire.h"

#define PD_CHUNK_BYTES_DEFAULT (1u << 20)

enum { TR_AUTO = 0, TR_TCP, TR_SHM };

/* Parts of a push or pull from or into a shared buffer (paramd_alloc)
 * smaller than this go through the rings as usual (and may be coalesced):
 * a reference saves copies only once there is something to copy. */
#define PD_REGION_MIN_BYTES (64u << 10)

#define PD_WAIT_YIELD_S 50e-6 /* a waiter yields this long before sleeping */

/* Coalescing (the outbox, below): frames up to coalesce_bytes (and pulls
 * of values up to as many bytes) wait in their link's outbox and go as one
 * BATCH.  Option coalesce_bytes=, 0: off. */
#define PD_COALESCE_DEFAULT 16384
#define PD_COALESCE_MIN 64
#define PD_COALESCE_MAX 65536
#define OB_COPY_MAX 512 /* payload parts up to this size are copied into the
                         * outbox; larger ones are sent from where they lie */
/* A batch is sent once it holds this many bytes of frames (or of pulled
 * values), well under the protocol's PD_MAX_BATCH: the server starts on a
 * batch only once it has all of it, so smaller batches let it work on one
 * while the caller writes the next.  Windows of 64 async 4 KiB pushes, 1
 * server: over shared memory 64 KiB batches gave 0.92-0.97M requests/s,
 * 256 KiB ones 0.52-0.60M, one frame each 0.80M; over TCP 64 KiB to 256
 * KiB all gave 0.32-0.43M, 32 KiB 0.22-0.25M, one frame each 0.085M. */
#define OB_FLUSH_BYTES (64u << 10)
_Static_assert(OB_FLUSH_BYTES >= PD_COALESCE_MAX && OB_FLUSH_BYTES <= PD_MAX_BATCH,
               "a coalescable frame must fit an empty outbox, a batch the protocol");
#define OB_IOV_MAX 256  /* iovecs of one flush, BATCH header aside (the
                         * kernel takes 1024) */
/* Replies of up to this many bytes of values may wait unread while more
 * frames are written to their link (rd_before_write): they fit the socket
 * buffers (or the shared-memory ring), so the server never blocks on them. */
#define RD_DUE_MAX (64u << 10)

/* ==== Types ============================================================= */

typedef struct pending {
    uint64_t id;
    uint16_t type;
    paramd_request *req;
    float *dst;      /* PULL, SPARSE_PULL: where the reply's floats go */
    uint64_t count;  /* PULL, SPARSE_PULL: floats expected */
    /* SPARSE_PULL to one of several servers: the rows read into dst are
     * then scattered, row i to out + pos[i]*dim (the caller's order). */
    const uint64_t *pos;
    float *out;
    uint32_t dim;
    char *text;      /* STATS: the reply's text (PD_MAX_CTRL_PAYLOAD+1) */
    /* BATCH: the marker queued just before the frames of one batch; it
     * belongs to no request (req is NULL). */
    uint32_t nbatch; /* inner frames right after it in the FIFO */
    uint64_t bound;  /* the largest reply those frames can get */
} pending;

/* Who holds a link's read role (link.reader). */
enum { RD_NONE = 0, RD_RX, RD_CALLER };

/* A caller waiting on a link that someone else reads (a follower): queued
 * in the link's list, on the caller's stack.  It sleeps on its request's
 * condition variable until the request completes or the role is handed to
 * it (granted: set under q_mu and req->mu, peeked at atomically). */
typedef struct rd_waiter {
    paramd_request *req;
    int granted;
    struct rd_waiter *next, *prev;
} rd_waiter;

typedef struct pd_link {
    paramd_client *c;
    int index;
    char addr[PD_MAX_ADDR + 1];
    pd_conn *conn;
    pthread_t rx;
    int rx_started;
    pthread_mutex_t send_mu; /* guards writes on conn and next_id */
    uint64_t next_id;
    pthread_mutex_t q_mu;    /* guards q*, dead, dead_msg, reader, rx_stop,
                              * the followers wq* */
    pending *q;              /* ring of qcap */
    size_t qhead, qlen, qcap;
    uint64_t due;            /* bytes of pulled values the FIFO awaits */
    uint64_t popped;         /* entries ever taken off the FIFO */
    int dead;                /* written under q_mu, atomically: a sender may
                              * peek at it without the lock */
    char dead_msg[PD_ERRMSG_MAX];
    /* The read side ("Links: who reads").  reader says who holds the
     * role; the holder reads it without the lock (only the holder changes
     * it, under q_mu, when it gives the role up).  The receiver thread
     * sleeps on rx_cv until it is given the role or rx_stop is set. */
    int reader;              /* RD_NONE, RD_RX, RD_CALLER */
    int rx_stop;             /* paramd_close: the receiver thread ends */
    pthread_cond_t rx_cv;
    rd_waiter *wq, *wq_tail; /* followers, in the order they came */
    /* The outbox, guarded by send_mu: small frames not yet sent, in order.
     * ob_bytes has room for a BATCH header then OB_FLUSH_BYTES, and is
     * never moved once allocated, so ob_iov may point into it; ob_iov[0] is
     * the BATCH header, the frames' bytes follow (copied into ob_bytes, or
     * the caller's own buffers for parts over OB_COPY_MAX).  ob_n is also
     * read without the lock (atomically) by waiters deciding whether to
     * flush. */
    uint8_t *ob_bytes;
    size_t ob_used;          /* bytes copied after the BATCH header */
    struct iovec ob_iov[OB_IOV_MAX + 1];
    int ob_niov;             /* >= 1 */
    int ob_run;              /* the last iovec is a run of ob_bytes */
    size_t ob_frames;        /* bytes of the frames held: a BATCH payload */
    uint64_t ob_values;      /* bytes of values their pulls ask for */
    uint64_t ob_bound;       /* the largest reply they can get */
    pending *ob_ents;        /* the frames' sub-requests, ob_cap */
    size_t ob_n, ob_cap;
    /* The reader's buffers (the holder of the read role only): an error
     * or control payload (PD_MAX_CTRL_PAYLOAD + 1 bytes), a BATCH reply. */
    uint8_t *msgbuf;
    uint8_t *rxbuf;
    size_t rxcap;
    /* Shared buffers (paramd_alloc) can be mapped into this server: the
     * link is on shared memory and the server offers them.  Set once at
     * connect. */
    int regions_ok;
} pd_link;

/* A shared buffer (paramd_alloc): a memfd mapped here and, through each
 * shared-memory link whose server accepted it, in that server.  Pushes
 * from it and pulls into it name the range instead of carrying the floats
 * ("Shared buffers" below).  Guarded by reg_mu; `on` never changes once
 * the region is in the list. */
typedef struct region {
    struct region *next;
    uint64_t id;
    uint8_t *base;
    size_t bytes;   /* mapped here: a multiple of the page size */
    uint8_t *on;    /* S: mapped in server k */
} region;

struct paramd_request {
    pthread_mutex_t mu; /* guards outstanding, err, msg */
    pthread_cond_t cv;
    int outstanding;
    int err;
    int64_t clock_seen; /* largest clock in a reply (pull: table's applied) */
    paramd_table *table; /* the table of a pull or push, else NULL */
    char msg[PD_ERRMSG_MAX];
    paramd_client *c;
    /* The link of its first sub-request, and whether others went to other
     * links: a request on one link is read by its waiter (req_finish).
     * Set under mu while the request is issued, read once it is. */
    pd_link *link;
    int multi;
    int heap; /* allocated by an _async call */
    void *owned; /* memory the request's frames point into, freed at the end */
};

struct paramd_table {
    paramd_client *c;
    paramd_table *next;
    uint32_t id;
    uint64_t n;
    pd_table_def def;
    char name[PD_MAX_NAME + 1];
    int64_t clock_seen; /* newest applied clock a pull saw (atomic) */
};

struct paramd_client {
    char coord_addr[PD_MAX_ADDR + 1];
    int timeout_ms;
    uint64_t chunk_bytes;
    int transport;        /* TR_AUTO, TR_TCP, TR_SHM */
    uint64_t shm_ring;    /* bytes per direction of a shm pd_link */
    int32_t rank, W, S;
    int32_t slots; /* M: worker slots (ranks 0..M-1); servers report it */
    uint64_t epoch;
    int64_t clock;
    uint64_t coalesce_bytes; /* 0: every frame is sent at once */
    pthread_mutex_t coord_mu; /* guards coord and coord_id */
    pd_conn *coord;
    uint64_t coord_id;
    pd_link *links; /* S */
    int heartbeat_ms;          /* the coordinator's timeout; 0: none */
    pthread_t hb;              /* heartbeat thread, on its own connection */
    int hb_started;
    pthread_mutex_t hb_mu;     /* guards hb_stop */
    pthread_cond_t hb_cv;
    int hb_stop;
    paramd_table *tables;
    char fault[PD_FAULT_SPEC_MAX + 1]; /* option fault=: tests only; "" off */
    int shared_buffers;     /* option shared_buffers=: map paramd_alloc's
                             * buffers into same-host servers */
    pthread_mutex_t reg_mu; /* guards regions (never held while waiting) */
    region *regions;
    uint64_t nregions;      /* atomic: how many; a lookup peeks at it */
    pthread_mutex_t map_mu; /* held through the mapping or unmapping of a
                             * buffer on every link, so that descriptors
                             * and REGION_MAP frames go out in one order;
                             * guards next_region */
    uint64_t next_region;
    /* Who read the replies (atomic counters; client_internal.h). */
    uint64_t n_by_caller, n_by_rx, n_rx_wakes, n_handoffs;
    pthread_mutex_t err_mu; /* guards errmsg */
    char errmsg[PD_ERRMSG_MAX];
};

static __thread char connect_errmsg[PD_ERRMSG_MAX];

/* ==== Errors ============================================================ */

static int cl_err(paramd_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cl_err(paramd_client *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (c) {
        pthread_mutex_lock(&c->err_mu);
        vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
        pthread_mutex_unlock(&c->err_mu);
    } else {
        vsnprintf(connect_errmsg, sizeof connect_errmsg, fmt, ap);
    }
    va_end(ap);
    return code;
}

const char *paramd_last_error(const paramd_client *c) {
    return c ? c->errmsg : connect_errmsg;
}

/* ==== Requests ========================================================== */

static void req_init(paramd_request *r, paramd_client *c) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->c = c;
    r->outstanding = 1; /* the issuer's own guard, dropped by req_issued */
}

static void req_done(paramd_request *r, int err, const char *msg) {
    pthread_mutex_lock(&r->mu);
    if (err && !r->err) {
        r->err = err;
        snprintf(r->msg, sizeof r->msg, "%s", msg);
    }
    /* atomic too: req_finish peeks at it without the lock */
    if (__atomic_sub_fetch(&r->outstanding, 1, __ATOMIC_RELEASE) == 0)
        pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Request r gets one more sub-request, on link l. */
static void req_add(paramd_request *r, pd_link *l) {
    pthread_mutex_lock(&r->mu);
    __atomic_add_fetch(&r->outstanding, 1, __ATOMIC_RELAXED);
    if (!r->link)
        r->link = l;
    else if (r->link != l)
        r->multi = 1;
    pthread_mutex_unlock(&r->mu);
}

/* 1 while r has sub-requests outstanding: a peek without the lock (the
 * count is written atomically under it). */
static int req_pending(paramd_request *r) {
    return __atomic_load_n(&r->outstanding, __ATOMIC_ACQUIRE) > 0;
}

static void client_flush(paramd_client *c, const paramd_request *waiter);
static void link_wait(pd_link *l, paramd_request *r);
static void req_wait_links(paramd_request *r);

/* Sleep until r completes or, if granted is not NULL, until *granted is
 * set (the read role of r's link was handed to this thread: link_wait).
 * Before sleeping on the condition variable, watch for a moment, yielding
 * the CPU: the waker's broadcast is a futex wake-up that lands on another
 * vCPU (25-100 us to wake a halted one on these virtual machines), while a
 * waiter that is still awake sees the change at once.  paramd bench, when
 * the receiver thread read every reply: a 4 KiB pull over TCP went from
 * 104 us to 26 us on an idle machine, over shared memory from 20 to 6 us.
 * On a loaded machine a yield can lose the CPU for a whole time slice
 * (~4 ms): then pd_yield says so and this thread sleeps at once for its
 * next waits (common.h).  The reads while yielding are peeks; the locked
 * check decides. */
static void req_sleep(paramd_request *r, const int *granted) {
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

/* Wait and return the result; copy the detail to the client's error.  What
 * waits in the outboxes is sent first: r's frames may be there.  This
 * thread reads r's replies itself from links nobody else reads: a request
 * on one link with link_wait, one spanning several with req_wait_links. */
static int req_finish(paramd_request *r) {
    client_flush(r->c, r);
    if (r->multi)
        req_wait_links(r);
    else if (r->link)
        link_wait(r->link, r);
    pthread_mutex_lock(&r->mu); /* also orders us after the completer's unlock */
    while (r->outstanding > 0) pthread_cond_wait(&r->cv, &r->mu);
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
    return err;
}

/* ==== Links: the FIFO and reading replies ===============================
 * Frames on a link are answered in order, so the FIFO of pending
 * sub-requests, in the order their frames went out, tells the reader
 * whose reply comes next.  A batch is queued as a BATCH marker followed by
 * its inner frames' sub-requests; the reader takes the marker's reply
 * and hands each inner reply in it to the next sub-request.  Everything
 * here that reads or pops runs on the holder of the link's read role. */

/* The read role (link.reader, "Links: who reads"): written under q_mu,
 * atomically, so that a thread may peek at it without the lock. */
static int rd_get(pd_link *l) { return __atomic_load_n(&l->reader, __ATOMIC_RELAXED); }
static void rd_set(pd_link *l, int who) { __atomic_store_n(&l->reader, who, __ATOMIC_RELAXED); }

/* With q_mu held: room for n more entries.  0 or -1 (out of memory). */
static int q_reserve(pd_link *l, size_t n) {
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
static void q_push(pd_link *l, const pending *p) {
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

static void link_fail_all(pd_link *l, int code, const char *msg) {
    pthread_mutex_lock(&l->q_mu);
    if (!l->dead) {
        snprintf(l->dead_msg, sizeof l->dead_msg, "server %d (%s): %s",
                 l->index, l->addr, msg);
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
        req_done(p.req, code, l->dead_msg);
        pthread_mutex_lock(&l->q_mu);
    }
    pthread_mutex_unlock(&l->q_mu);
}

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
static int rx_read(pd_link *l, const pending *p, pd_err *e) {
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
static int rx_one(pd_link *l, pd_err *e) {
    pending p;
    if (!q_head(l, &p)) return 1;
    return rx_read(l, &p, e);
}

/* Holding the read role: the link broke (code, detail in e): fail every
 * sub-request pending on it, and every later one at once. */
static void rx_fail(pd_link *l, int code, pd_err *e) {
    if (code == PARAMD_ECLOSED) snprintf(e->msg, sizeof e->msg, "connection closed");
    link_fail_all(l, code, e->msg);
}

/* ==== Links: who reads ==================================================
 * One thread at a time reads a link: the holder of its read role,
 * link.reader, written under q_mu:
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
 * wake-ups per request; paramd bench --ops small lost 14-43%.)  A caller
 * whose request is on a link another caller reads queues as a follower
 * (link.wq) and sleeps on its request's condition variable: it wakes when
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
static void rd_before_write(pd_link *l) {
    if (rd_get(l) == RD_NONE && l->due > RD_DUE_MAX) rd_to_rx(l);
}

/* If replies are due on l and nobody reads them, give the receiver thread
 * the role.  For frames whose waiter (if any) will not read l itself,
 * called after they are queued.  The peek without the lock is enough when
 * someone holds the role: a reader sees the frames queued before it next
 * decides (a caller leaving passes the role to the receiver thread then;
 * the receiver thread keeps it), and a reader that gave the role up before
 * they were queued did so under q_mu, before this thread queued them. */
static void link_kick(pd_link *l) {
    if (rd_get(l) != RD_NONE) return;
    pthread_mutex_lock(&l->q_mu);
    if (rd_get(l) == RD_NONE && l->qlen > 0) rd_to_rx(l);
    pthread_mutex_unlock(&l->q_mu);
}

/* r goes back to its user unwaited (an async call): have the links it went
 * to read by their receiver threads if nobody reads them.  (Every link, for
 * one on several: they are not recorded, and a link that is read costs a
 * peek.) */
static void req_kick(paramd_request *r) {
    paramd_client *c = r->c;
    if (!r->multi) {
        if (r->link) link_kick(r->link);
        return;
    }
    for (int32_t k = 0; k < c->S; k++) link_kick(&c->links[k]);
}

/* Holding the read role, before reading the next reply: watch for it a
 * moment, yielding, as req_sleep does (and the shm transport inside its
 * reads).  A read that blocks at once lets this vCPU halt, and waking a
 * halted vCPU costs 25-100 us on these virtual machines: paramd bench, a
 * 4 KiB push over TCP on an otherwise idle machine, 9-13 us in some runs
 * and 86-119 us in others without the watch, 13-14 us in all with it.
 * Only transports that can tell (ops->readable: TCP) are watched. */
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
static void link_wait(pd_link *l, paramd_request *r) {
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
static void req_wait_links(paramd_request *r) {
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
static void *link_rx(void *arg) {
    pd_link *l = arg;
    pending p;
    while (rx_next(l, &p)) {
        pd_err e = {0};
        int code = rx_read(l, &p, &e);
        if (code) rx_fail(l, code, &e);
    }
    return NULL;
}

/* ==== Links: sending, and the outbox ====================================
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
 * first. */

/* Can a frame of this type, for table t, wait in the outbox? */
static int batchable(const paramd_table *t, uint16_t type) {
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
    for (size_t i = 0; i < l->ob_n; i++) req_done(l->ob_ents[i].req, code, msg);
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
    pd_hdr h = {PD_MAGIC, PD_PROTO_VERSION, pt->type, ++l->next_id, table, 0,
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
static void client_flush(paramd_client *c, const paramd_request *waiter) {
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

/* Queue and send one sub-request of r on link l: a frame of type pt->type
 * with up to three payload parts; pt also says where the reply goes.
 * can_batch: the frame may wait in the outbox (batchable()).  On failure r
 * is completed with the error (so the caller just waits). */
static void link_send_ex(pd_link *l, paramd_request *r, const pending *pt,
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
        pthread_mutex_unlock(&l->q_mu);
        pthread_mutex_unlock(&l->send_mu);
        req_done(r, code, msg);
        return;
    }
    rd_before_write(l);
    uint64_t id = ++l->next_id;
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

static void link_send(pd_link *l, paramd_request *r, uint16_t type, int can_batch,
                      uint32_t table, int64_t clock, const void *pre, size_t npre,
                      const void *data, size_t ndata, float *dst, uint64_t count) {
    pending pt = {0};
    pt.type = type, pt.dst = dst, pt.count = count;
    link_send_ex(l, r, &pt, can_batch, table, clock, pre, npre, data, ndata, NULL, 0);
}

/* ==== Coordinator RPC =================================================== */

static int coord_rpc(paramd_client *c, uint16_t type, uint32_t table,
                     pd_buf *b, uint8_t *reply, size_t *replylen) {
    pd_err e = {0};
    pd_hdr h = {0}, rh;
    if (b && b->oom) return cl_err(c, PARAMD_ENOMEM, "out of memory");
    pthread_mutex_lock(&c->coord_mu);
    h.type = type;
    h.id = ++c->coord_id;
    h.table = table;
    h.clock = c->clock;
    int rc = pd_rpc(c->coord, &h, b ? b->p : NULL, b ? b->len : 0, &rh, reply, &e);
    pthread_mutex_unlock(&c->coord_mu);
    if (rc) return cl_err(c, rc, "coordinator %s: %s", c->coord_addr, e.msg);
    if (replylen) *replylen = (size_t)rh.len;
    return 0;
}

/* ==== Connect and close ================================================= */

static int parse_options(paramd_client *c, const char *options) {
    char buf[1024];
    const char *coord = NULL, *rank = NULL, *transport = NULL;
    char coordbuf[PD_MAX_ADDR + 1], rankbuf[32], trbuf[16];
    c->timeout_ms = 30000;
    c->chunk_bytes = PD_CHUNK_BYTES_DEFAULT;
    c->coalesce_bytes = PD_COALESCE_DEFAULT;
    c->shm_ring = PD_SHM_RING_DEFAULT;
    c->shared_buffers = 1;
    snprintf(buf, sizeof buf, "%s", options ? options : "");
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t\n", &save); tok;
         tok = strtok_r(NULL, " \t\n", &save)) {
        char *eq = strchr(tok, '=');
        int64_t v;
        if (!eq) return cl_err(NULL, PARAMD_EINVAL, "option '%s' is not key=value", tok);
        *eq = '\0';
        const char *val = eq + 1;
        if (strcmp(tok, "coordinator") == 0) {
            snprintf(coordbuf, sizeof coordbuf, "%s", val);
            coord = coordbuf;
        } else if (strcmp(tok, "rank") == 0) {
            snprintf(rankbuf, sizeof rankbuf, "%s", val);
            rank = rankbuf;
        } else if (strcmp(tok, "timeout_ms") == 0) {
            if (pd_parse_i64(val, &v) || v <= 0 || v > 3600000)
                return cl_err(NULL, PARAMD_EINVAL, "timeout_ms=%s is not 1..3600000", val);
            c->timeout_ms = (int)v;
        } else if (strcmp(tok, "chunk_bytes") == 0) {
            if (pd_parse_i64(val, &v) || v < 4096 || v > (1 << 30))
                return cl_err(NULL, PARAMD_EINVAL, "chunk_bytes=%s is not 4096..2^30", val);
            c->chunk_bytes = (uint64_t)v & ~3ull;
        } else if (strcmp(tok, "coalesce_bytes") == 0) {
            if (pd_parse_i64(val, &v) || (v != 0 && (v < PD_COALESCE_MIN || v > PD_COALESCE_MAX)))
                return cl_err(NULL, PARAMD_EINVAL,
                              "coalesce_bytes=%s is not 0 (off) or %d..%d: "
                              "requests of up to that many bytes are sent "
                              "together (default %d)",
                              val, PD_COALESCE_MIN, PD_COALESCE_MAX, PD_COALESCE_DEFAULT);
            c->coalesce_bytes = (uint64_t)v;
        } else if (strcmp(tok, "fault") == 0) { /* a testing aid: net/fault.h */
            pd_fault_spec fs;
            pd_err fe = {0};
            if (pd_fault_parse(val, &fs, &fe))
                return cl_err(NULL, PARAMD_EINVAL, "fault=: %s", fe.msg);
            snprintf(c->fault, sizeof c->fault, "%s", val);
        } else if (strcmp(tok, "transport") == 0) {
            snprintf(trbuf, sizeof trbuf, "%s", val);
            transport = trbuf;
        } else if (strcmp(tok, "shared_buffers") == 0) {
            if (strcmp(val, "yes") != 0 && strcmp(val, "no") != 0)
                return cl_err(NULL, PARAMD_EINVAL,
                              "shared_buffers=%s is not yes or no", val);
            c->shared_buffers = strcmp(val, "yes") == 0;
        } else if (strcmp(tok, "shm_ring_bytes") == 0) {
            if (pd_parse_i64(val, &v) || !pd_shm_valid_ring((uint64_t)v))
                return cl_err(NULL, PARAMD_EINVAL,
                              "shm_ring_bytes=%s is not a power of two in %u..%u",
                              val, PD_SHM_RING_MIN, PD_SHM_RING_MAX);
            c->shm_ring = (uint64_t)v;
        } else {
            return cl_err(NULL, PARAMD_EINVAL,
                          "unknown option '%s' (coordinator, rank, timeout_ms, "
                          "chunk_bytes, coalesce_bytes, transport, "
                          "shm_ring_bytes, shared_buffers, fault)",
                          tok);
        }
    }
    /* Environment defaults, in one place. */
    static const char *const coord_env[] = {"PARAMD_COORDINATOR", NULL};
    static const char *const rank_env[] = {"PARAMD_RANK", "OMPI_COMM_WORLD_RANK",
                                           "PMI_RANK", "PMIX_RANK",
                                           "SLURM_PROCID", NULL};
    static const char *const transport_env[] = {"PARAMD_TRANSPORT", NULL};
    if (!coord) coord = pd_env_first(coord_env);
    if (!rank) rank = pd_env_first(rank_env);
    if (!transport) transport = pd_env_first(transport_env);
    if (!transport || strcmp(transport, "auto") == 0) c->transport = TR_AUTO;
    else if (strcmp(transport, "tcp") == 0) c->transport = TR_TCP;
    else if (strcmp(transport, "shm") == 0) c->transport = TR_SHM;
    else
        return cl_err(NULL, PARAMD_EINVAL,
                      "transport '%s' is not auto, tcp or shm (from the "
                      "transport= option or PARAMD_TRANSPORT)", transport);
    if (!coord)
        return cl_err(NULL, PARAMD_ECONFIG,
                      "no coordinator: set PARAMD_COORDINATOR=HOST:PORT or pass "
                      "coordinator=HOST:PORT (paramd local sets it for you)");
    snprintf(c->coord_addr, sizeof c->coord_addr, "%s", coord);
    c->rank = -1;
    if (rank) {
        int64_t r;
        if (pd_parse_i64(rank, &r) || r < 0 || r >= PD_MAX_WORKERS)
            return cl_err(NULL, PARAMD_ECONFIG, "worker rank '%s' is not a number in 0..%d",
                          rank, PD_MAX_WORKERS - 1);
        c->rank = (int32_t)r;
    }
    return 0;
}

static int hello(pd_conn *conn, int32_t rank, uint8_t *reply, size_t *rlen,
                 pd_err *e) {
    pd_buf b;
    pd_hdr h = {0}, rh;
    pd_hello hl = {PD_ROLE_WORKER, rank};
    pd_buf_init(&b);
    pd_hello_encode(&b, &hl);
    h.type = PD_MSG_HELLO;
    h.id = 1;
    int rc = b.oom ? pd_seterr(e, PARAMD_ENOMEM, "out of memory")
                   : pd_rpc(conn, &h, b.p, b.len, &rh, reply, e);
    pd_buf_free(&b);
    if (rlen) *rlen = (size_t)rh.len;
    return rc;
}

/* Say HELLO on conn and check the server's answer against the map.  Fills
 * shm (PD_MAX_ADDR + 1 bytes) with the server's shared-memory address, ""
 * if it offers none. */
static int link_hello(paramd_client *c, pd_link *l, pd_conn *conn, uint8_t *buf,
                      char *shm, uint32_t *features) {
    pd_err e = {0};
    size_t rlen;
    int rc = hello(conn, c->rank, buf, &rlen, &e);
    if (rc)
        return cl_err(NULL, rc, "server %d (%s): %s", l->index, l->addr, e.msg);
    uint32_t idx, s2, w2;
    pd_rd r;
    pd_rd_init(&r, buf, rlen);
    pd_get_u32(&r, &idx);
    pd_get_u32(&r, &s2);
    pd_get_u32(&r, &w2);
    shm[0] = '\0';
    *features = 0;
    if (!r.bad && r.off < r.len) pd_get_str(&r, shm, PD_MAX_ADDR);
    if (!r.bad && r.off < r.len) pd_get_u32(&r, features); /* PD_FEAT_* */
    if (!pd_rd_done(&r) || idx != (uint32_t)l->index || s2 != (uint32_t)c->S ||
        w2 != (uint32_t)c->slots)
        return cl_err(NULL, PARAMD_EPROTO,
                      "server at %s says it is server %u of %u with %u "
                      "worker slots; the coordinator's map says server %d of "
                      "%d with %d",
                      l->addr, idx, s2, w2, l->index, c->S, c->slots);
    return 0;
}

/* Connect link l: TCP first (the HELLO reply says whether the server offers
 * shared memory), then, unless transport=tcp, the shared-memory transport
 * if the server's socket is reachable from here (same host).  With
 * transport=shm a server that cannot be reached so is an error. */
static int link_open(paramd_client *c, pd_link *l, uint8_t *buf) {
    pd_err e = {0};
    char shm[PD_MAX_ADDR + 1];
    l->conn = pd_tcp_connect(l->addr, c->timeout_ms, &e);
    if (l->conn && c->fault[0]) /* option fault=: tests only */
        l->conn = pd_fault_wrap(l->conn, c->fault, &e);
    if (!l->conn) return cl_err(NULL, e.code, "server %d: %s", l->index, e.msg);
    uint32_t feat;
    int rc = link_hello(c, l, l->conn, buf, shm, &feat);
    if (rc || c->transport == TR_TCP) return rc;
    if (!shm[0]) {
        if (c->transport == TR_AUTO) return 0;
        return cl_err(NULL, PARAMD_ECONNECT,
                      "server %d (%s) offers no shared-memory transport "
                      "(started with --transport tcp?); use transport=auto "
                      "or tcp", l->index, l->addr);
    }
    pd_conn *sc = pd_shm_connect(shm, c->shm_ring, c->timeout_ms, &e);
    if (sc && c->fault[0]) sc = pd_fault_wrap(sc, c->fault, &e);
    if (!sc) {
        if (c->transport == TR_AUTO) return 0; /* another host: TCP it is */
        return cl_err(NULL, e.code,
                      "server %d (%s): transport=shm but %s; use "
                      "transport=auto to fall back to TCP", l->index, l->addr,
                      e.msg);
    }
    char again[PD_MAX_ADDR + 1];
    if ((rc = link_hello(c, l, sc, buf, again, &feat))) {
        pd_conn_destroy(sc);
        return rc;
    }
    pd_conn_destroy(l->conn);
    l->conn = sc;
    l->regions_ok = c->shared_buffers && (feat & PD_FEAT_REGIONS);
    snprintf(sc->peer, sizeof sc->peer, "%.80s (shm)", l->addr);
    return 0;
}

static void *heartbeat_main(void *arg);

int paramd_connect(paramd_client **out, const char *options) {
    *out = NULL;
    paramd_client *c = pd_calloc(1, sizeof *c);
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    pd_err e = {0};
    int rc;
    if (!c || !buf) {
        pd_free(c);
        pd_free(buf);
        return cl_err(NULL, PARAMD_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&c->coord_mu, NULL);
    pthread_mutex_init(&c->reg_mu, NULL);
    pthread_mutex_init(&c->map_mu, NULL);
    pthread_mutex_init(&c->err_mu, NULL);
    pthread_mutex_init(&c->hb_mu, NULL);
    pthread_cond_init(&c->hb_cv, NULL);
    if ((rc = parse_options(c, options))) goto fail_early;
    c->coord = pd_tcp_connect(c->coord_addr, c->timeout_ms, &e);
    if (!c->coord) {
        rc = cl_err(NULL, e.code, "coordinator: %s", e.msg);
        goto fail_early;
    }
    if ((rc = hello(c->coord, c->rank, buf, NULL, &e))) {
        cl_err(NULL, rc, "coordinator %s: %s", c->coord_addr, e.msg);
        goto fail_early;
    }
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u32(&b, (uint32_t)c->rank);
    size_t rlen;
    rc = coord_rpc(c, PD_MSG_REG_WORKER, 0, &b, buf, &rlen);
    pd_buf_free(&b);
    if (rc) {
        cl_err(NULL, rc, "%s", c->errmsg);
        goto fail_early;
    }
    pd_rd r;
    uint32_t rank, W, S;
    pd_rd_init(&r, buf, rlen);
    pd_get_u32(&r, &rank);
    pd_get_u32(&r, &W);
    pd_get_u32(&r, &S);
    pd_get_u64(&r, &c->epoch);
    if (r.bad || W == 0 || S == 0 || S > PD_MAX_SERVERS) {
        rc = cl_err(NULL, PARAMD_EPROTO, "malformed cluster map from the coordinator");
        goto fail_early;
    }
    c->rank = (int32_t)rank;
    c->W = (int32_t)W;
    c->S = (int32_t)S;
    c->links = pd_calloc(S, sizeof *c->links);
    if (!c->links) {
        rc = cl_err(NULL, PARAMD_ENOMEM, "out of memory");
        goto fail_early;
    }
    for (uint32_t i = 0; i < S; i++) {
        pd_link *l = &c->links[i];
        l->c = c;
        l->index = (int)i;
        pthread_mutex_init(&l->send_mu, NULL);
        pthread_mutex_init(&l->q_mu, NULL);
        pthread_cond_init(&l->rx_cv, NULL);
        l->ob_niov = 1;
        if (pd_get_str(&r, l->addr, PD_MAX_ADDR)) {
            rc = cl_err(NULL, PARAMD_EPROTO, "malformed cluster map from the coordinator");
            goto fail;
        }
    }
    /* heartbeat period; worker slots M (ranks 0..M-1, W of them expected at
     * start); the clock this worker starts at (> 0 when it joined a running
     * cluster: its loop starts there, docs/consistency.md) */
    uint32_t hb_ms = 0, M = 0;
    uint64_t start = 0;
    pd_get_u32(&r, &hb_ms);
    pd_get_u32(&r, &M);
    pd_get_u64(&r, &start);
    if (!pd_rd_done(&r) || hb_ms > 86400000 || M < W || rank >= M ||
        start > (uint64_t)INT64_MAX) {
        rc = cl_err(NULL, PARAMD_EPROTO, "malformed cluster map from the coordinator");
        goto fail;
    }
    c->heartbeat_ms = (int)hb_ms;
    c->clock = (int64_t)start;
    c->slots = (int32_t)M;
    for (uint32_t i = 0; i < S; i++) {
        pd_link *l = &c->links[i];
        if ((rc = link_open(c, l, buf))) goto fail;
        if (!(l->msgbuf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1))) {
            rc = cl_err(NULL, PARAMD_ENOMEM, "out of memory");
            goto fail;
        }
        if (pthread_create(&l->rx, NULL, link_rx, l) != 0) {
            rc = cl_err(NULL, PARAMD_ENOMEM, "cannot start a receiver thread");
            goto fail;
        }
        l->rx_started = 1;
    }
    if (c->heartbeat_ms > 0) {
        if (pthread_create(&c->hb, NULL, heartbeat_main, c) != 0) {
            rc = cl_err(NULL, PARAMD_ENOMEM, "cannot start the heartbeat thread");
            goto fail;
        }
        c->hb_started = 1;
    }
    pd_free(buf);
    *out = c;
    return 0;
fail_early:
fail:
    pd_free(buf);
    {
        char keep[PD_ERRMSG_MAX];
        snprintf(keep, sizeof keep, "%s", connect_errmsg);
        paramd_close(c);
        snprintf(connect_errmsg, sizeof connect_errmsg, "%s", keep);
    }
    return rc;
}

int paramd_close(paramd_client *c) {
    if (!c) return 0;
    int rc = 0;
    if (c->hb_started) {
        pthread_mutex_lock(&c->hb_mu);
        c->hb_stop = 1;
        pthread_cond_broadcast(&c->hb_cv);
        pthread_mutex_unlock(&c->hb_mu);
        pthread_join(c->hb, NULL);
    }
    client_flush(c, NULL); /* what waits in the outboxes is sent */
    if (c->coord && c->links) {
        uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
        if (buf) rc = coord_rpc(c, PD_MSG_BYE, 0, NULL, buf, NULL);
        pd_free(buf);
    }
    if (c->links) {
        for (int32_t i = 0; i < c->S; i++) {
            pd_link *l = &c->links[i];
            /* The receiver thread ends: at once if it sleeps, else once
             * the shut-down connection fails its read. */
            pthread_mutex_lock(&l->q_mu);
            __atomic_store_n(&l->rx_stop, 1, __ATOMIC_RELAXED); /* peeked at */
            pthread_cond_broadcast(&l->rx_cv);
            pthread_mutex_unlock(&l->q_mu);
            if (l->conn) pd_conn_shutdown(l->conn);
            if (l->rx_started) pthread_join(l->rx, NULL);
            /* Nobody reads any more: what is still due fails (requests
             * issued and never waited for). */
            if (l->qlen > 0) link_fail_all(l, PARAMD_ECLOSED, "the client was closed");
            pd_conn_destroy(l->conn);
            pd_free(l->q);
            pd_free(l->ob_bytes);
            pd_free(l->ob_ents);
            pd_free(l->msgbuf);
            pd_free(l->rxbuf);
            pthread_mutex_destroy(&l->send_mu);
            pthread_mutex_destroy(&l->q_mu);
            pthread_cond_destroy(&l->rx_cv);
        }
        pd_free(c->links);
    }
    pd_conn_destroy(c->coord);
    while (c->tables) {
        paramd_table *t = c->tables;
        c->tables = t->next;
        pd_free(t);
    }
    while (c->regions) { /* buffers the program did not free */
        region *g = c->regions;
        c->regions = g->next;
        munmap(g->base, g->bytes);
        pd_free(g->on);
        pd_free(g);
    }
    pthread_mutex_destroy(&c->reg_mu);
    pthread_mutex_destroy(&c->map_mu);
    pthread_mutex_destroy(&c->coord_mu);
    pthread_mutex_destroy(&c->err_mu);
    pthread_mutex_destroy(&c->hb_mu);
    pthread_cond_destroy(&c->hb_cv);
    pd_free(c);
    return rc;
}

int32_t paramd_rank(const paramd_client *c) { return c->rank; }
int32_t paramd_num_workers(const paramd_client *c) { return c->W; }
int32_t paramd_num_servers(const paramd_client *c) { return c->S; }
/* The clock is read by the heartbeat thread too: atomic accesses.  The
 * outboxes are flushed first: a sync table's clock waits for this
 * worker's pushes, which must not sit in an outbox while it computes. */
int64_t paramd_clock(paramd_client *c) {
    client_flush(c, NULL);
    return __atomic_add_fetch(&c->clock, 1, __ATOMIC_RELAXED);
}
int64_t paramd_get_clock(const paramd_client *c) {
    return __atomic_load_n(&c->clock, __ATOMIC_RELAXED);
}

/* ==== Heartbeats ======================================================== */

/* Tell the coordinator, every heartbeat_ms/4, that this worker is alive
 * and at which clock.  Its own connection, so that a long barrier or a
 * blocked pull never delays a heartbeat. */
static void *heartbeat_main(void *arg) {
    paramd_client *c = arg;
    pd_err e = {0};
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    pd_conn *conn = buf ? pd_tcp_connect(c->coord_addr, c->timeout_ms, &e) : NULL;
    int ok = conn && hello(conn, c->rank, buf, NULL, &e) == 0;
    uint64_t id = 1;
    pthread_mutex_lock(&c->hb_mu);
    while (ok && !c->hb_stop) {
        pthread_mutex_unlock(&c->hb_mu);
        pd_hdr h = {0}, rh;
        uint8_t p[4] = {(uint8_t)c->rank, (uint8_t)(c->rank >> 8),
                        (uint8_t)(c->rank >> 16), (uint8_t)(c->rank >> 24)};
        h.type = PD_MSG_HEARTBEAT;
        h.id = ++id;
        h.clock = paramd_get_clock(c);
        ok = pd_rpc(conn, &h, p, 4, &rh, buf, &e) == 0;
        pthread_mutex_lock(&c->hb_mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (int64_t)(c->heartbeat_ms / 4 + 1) * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        while (!c->hb_stop &&
               pthread_cond_timedwait(&c->hb_cv, &c->hb_mu, &ts) == 0)
            ;
    }
    int stopping = c->hb_stop;
    pthread_mutex_unlock(&c->hb_mu);
    if (!ok && !stopping)
        cl_err(c, e.code ? e.code : PARAMD_ECLOSED, "heartbeats to the coordinator stopped: %s",
               e.msg);
    pd_conn_destroy(conn);
    pd_free(buf);
    return NULL;
}

int paramd_barrier(paramd_client *c) {
    client_flush(c, NULL);
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    if (!buf) return cl_err(c, PARAMD_ENOMEM, "out of memory");
    int rc = coord_rpc(c, PD_MSG_BARRIER, 0, NULL, buf, NULL);
    pd_free(buf);
    return rc;
}

/* ==== Sharding ========================================================== */

static uint64_t shard_lo(uint64_t n, int32_t S, int32_t k) {
    return pd_partition_lo(n, (uint32_t)S, (uint32_t)k);
}

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The shared buffer holding [p, p+n), copied into *g (its `on` stays
 * valid while the buffer is allocated, which the caller's request
 * requires): 1, or 0 if p is not in one. */
static int region_lookup(paramd_client *c, const void *p, uint64_t n, region *g) {
    if (!__atomic_load_n(&c->nregions, __ATOMIC_RELAXED)) return 0; /* a peek */
    uintptr_t a = (uintptr_t)p;
    int found = 0;
    pthread_mutex_lock(&c->reg_mu);
    for (region *x = c->regions; x && !found; x = x->next) {
        uintptr_t b = (uintptr_t)x->base;
        if (a >= b && a - b <= x->bytes && n <= x->bytes - (a - b)) {
            *g = *x;
            found = 1;
        }
    }
    pthread_mutex_unlock(&c->reg_mu);
    return found;
}

/* Issue sub-requests for [off, off+count) of t: per server, in chunks,
 * round-robin over servers so that all of them work at once.  From or into
 * a shared buffer (paramd_alloc) mapped in a server, that server gets one
 * small PUSH_REGION or PULL_REGION frame for its whole part instead
 * (parts of at least PD_REGION_MIN_BYTES; smaller ones go as usual). */
static void issue_range(paramd_table *t, paramd_request *r, uint16_t type,
                        uint64_t off, uint64_t count, const float *src,
                        float *dst) {
    paramd_client *c = t->c;
    uint64_t end = off + count;
    uint64_t chunk = c->chunk_bytes / 4;
    int can_batch = batchable(t, type);
    region g;
    const float *buf = type == PD_MSG_PULL ? dst : src;
    int in_region = (type == PD_MSG_PUSH || type == PD_MSG_PULL) &&
                    region_lookup(c, buf, count * 4, &g);
    uint64_t pos[PD_MAX_SERVERS > 64 ? 64 : PD_MAX_SERVERS];
    int32_t first = -1, nsv = 0;
    /* The servers this range touches are consecutive: find them. */
    for (int32_t k = 0; k < c->S; k++) {
        uint64_t lo = shard_lo(t->n, c->S, k), hi = shard_lo(t->n, c->S, k + 1);
        if (hi <= off || lo >= end || lo == hi) continue;
        if (first < 0) first = k;
        nsv = k - first + 1;
    }
    for (int32_t base = 0; base < nsv; base += 64) {
        int32_t m = nsv - base < 64 ? nsv - base : 64;
        for (int32_t j = 0; j < m; j++) {
            uint64_t lo = shard_lo(t->n, c->S, first + base + j);
            pos[j] = lo > off ? lo : off;
        }
        for (int more = 1; more;) {
            more = 0;
            for (int32_t j = 0; j < m; j++) {
                int32_t k = first + base + j;
                uint64_t hi = shard_lo(t->n, c->S, k + 1);
                if (hi > end) hi = end;
                if (pos[j] >= hi) continue;
                uint64_t a = pos[j], len = hi - a < chunk ? hi - a : chunk;
                if (in_region && g.on[k] && (hi - a) * 4 >= PD_REGION_MIN_BYTES) {
                    uint8_t ref[PD_REGION_REF_PAYLOAD];
                    pending pt = {0};
                    pt.type = type == PD_MSG_PULL ? PD_MSG_PULL_REGION : PD_MSG_PUSH_REGION;
                    pt.count = hi - a;
                    put_le64(ref, a);
                    put_le64(ref + 8, hi - a);
                    put_le64(ref + 16, g.id);
                    put_le64(ref + 24, (uint64_t)((const uint8_t *)(buf + (a - off)) - g.base));
                    pos[j] = hi;
                    link_send_ex(&c->links[k], r, &pt, 0, t->id, c->clock, ref,
                                 sizeof ref, NULL, 0, NULL, 0);
                    continue;
                }
                pos[j] += len;
                if (pos[j] < hi) more = 1;
                uint8_t pre[PD_PULL_PAYLOAD];
                put_le64(pre, a);
                put_le64(pre + 8, len);
                if (type == PD_MSG_PULL)
                    link_send(&c->links[k], r, type, can_batch, t->id, c->clock,
                              pre, PD_PULL_PAYLOAD, NULL, 0, dst + (a - off), len);
                else
                    link_send(&c->links[k], r, type, can_batch, t->id, c->clock,
                              pre, PD_RANGE_PREFIX, src + (a - off), len * 4, NULL, 0);
            }
        }
    }
}

static int check_range(paramd_table *t, uint64_t off, uint64_t count,
                       const void *buf) {
    if (t->def.kind == PD_TABLE_SPARSE)
        return cl_err(t->c, PARAMD_EINVAL,
                      "table '%s' is sparse: use paramd_sparse_pull and "
                      "paramd_sparse_push",
                      t->name);
    if (!buf && count)
        return cl_err(t->c, PARAMD_EINVAL, "table '%s': NULL buffer", t->name);
    if (count == 0 || off > t->n || count > t->n - off)
        return cl_err(t->c, PARAMD_ERANGE,
                      "table '%s' has %llu floats; range [%llu, %llu) is "
                      "outside it",
                      t->name, (unsigned long long)t->n, (unsigned long long)off,
                      (unsigned long long)(off + count));
    return 0;
}

static int start_op(paramd_table *t, uint16_t type, uint64_t off,
                    uint64_t count, const float *src, float *dst,
                    paramd_request *r) {
    req_init(r, t->c);
    r->table = t;
    issue_range(t, r, type, off, count, src, dst);
    req_done(r, 0, ""); /* drop the issuer's guard */
    return 0;
}

/* ==== Tables ============================================================ */

/* A sparse table's default seed: FNV-1a (64-bit) of its name, so that two
 * tables differ and a table starts the same in every run. */
static uint64_t name_seed(const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

/* Open (creating if needed) a dense table of n floats or a sparse table of
 * rows of n floats. */
static int table_open(paramd_client *c, const char *name, uint64_t n,
                      uint32_t kind, const char *spec, const float *init,
                      paramd_table **out) {
    *out = NULL;
    pd_err e = {0};
    if (!name || !*name || strlen(name) > PD_MAX_NAME)
        return cl_err(c, PARAMD_EINVAL, "table name must be 1..%d bytes", PD_MAX_NAME);
    if (kind == PD_TABLE_SPARSE && (n == 0 || n > PD_MAX_SPARSE_DIM))
        return cl_err(c, PARAMD_EINVAL, "sparse table '%s': dim %llu is not 1..%d",
                      name, (unsigned long long)n, PD_MAX_SPARSE_DIM);
    if (n == 0 || n > (1ull << 40))
        return cl_err(c, PARAMD_EINVAL, "table '%s': size %llu is not 1..2^40",
                      name, (unsigned long long)n);
    paramd_table *t = pd_calloc(1, sizeof *t);
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    if (!t || !buf) {
        pd_free(t);
        pd_free(buf);
        return cl_err(c, PARAMD_ENOMEM, "out of memory");
    }
    int rc;
    t->c = c;
    t->n = n;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->def.kind = kind;
    if ((rc = pd_spec_parse(spec, &t->def, &e))) {
        cl_err(c, rc, "table '%s': %s", name, e.msg);
        goto fail;
    }
    t->def.n = n;
    if (kind == PD_TABLE_SPARSE) {
        t->def.lo = 0, t->def.hi = n;
        if (!t->def.seed_given) t->def.seed = name_seed(name);
    }
    char canon[PD_MAX_SPEC + 1];
    pd_spec_canonical(&t->def, canon, sizeof canon);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_str(&b, name);
    pd_put_u64(&b, n);
    pd_put_str(&b, canon);
    size_t rlen;
    rc = coord_rpc(c, PD_MSG_TABLE_OPEN, 0, &b, buf, &rlen);
    pd_buf_free(&b);
    if (rc) goto fail;
    pd_rd r;
    uint32_t id, created;
    pd_rd_init(&r, buf, rlen);
    pd_get_u32(&r, &id);
    pd_get_u32(&r, &created);
    if (!pd_rd_done(&r) || id == 0 || id >= PD_MAX_TABLES) {
        rc = cl_err(c, PARAMD_EPROTO, "malformed TABLE_OPEN reply");
        goto fail;
    }
    t->id = id;
    if (created) {
        /* Define the shard on every server, then write initial values. */
        paramd_request req;
        req_init(&req, c);
        for (int32_t k = 0; k < c->S; k++) {
            pd_table_def d = t->def;
            if (kind == PD_TABLE_DENSE) {
                d.lo = shard_lo(n, c->S, k);
                d.hi = shard_lo(n, c->S, k + 1);
            }
            pd_buf_init(&b);
            pd_table_def_encode(&b, &d);
            if (b.oom)
                req_done(&req, 0, ""), rc = cl_err(c, PARAMD_ENOMEM, "out of memory");
            else
                link_send(&c->links[k], &req, PD_MSG_TABLE_CREATE, 0, id, 0, b.p,
                          b.len, NULL, 0, NULL, 0);
            pd_buf_free(&b);
            if (rc) break;
        }
        if (!rc) req_done(&req, 0, "");
        int rc2 = req_finish(&req);
        if (rc || rc2) {
            rc = rc ? rc : rc2;
            goto fail;
        }
        if (init) {
            start_op(t, PD_MSG_SET, 0, n, init, NULL, &req);
            if ((rc = req_finish(&req))) goto fail;
        }
        if ((rc = coord_rpc(c, PD_MSG_TABLE_READY, id, NULL, buf, NULL)))
            goto fail;
    }
    pd_free(buf);
    t->next = c->tables;
    c->tables = t;
    *out = t;
    return 0;
fail:
    pd_free(buf);
    pd_free(t);
    return rc;
}

int paramd_table_open(paramd_client *c, const char *name, uint64_t n,
                      const char *spec, const float *init, paramd_table **out) {
    return table_open(c, name, n, PD_TABLE_DENSE, spec, init, out);
}

uint64_t paramd_table_size(const paramd_table *t) {
    return t->def.kind == PD_TABLE_SPARSE ? 0 : t->n;
}

int64_t paramd_table_clock(const paramd_table *t) {
    return __atomic_load_n(&t->clock_seen, __ATOMIC_RELAXED);
}

int64_t paramd_clock_to(paramd_client *c, int64_t clock) {
    client_flush(c, NULL);
    int64_t cur = __atomic_load_n(&c->clock, __ATOMIC_RELAXED);
    while (clock > cur &&
           !__atomic_compare_exchange_n(&c->clock, &cur, clock, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
    return paramd_get_clock(c);
}

/* ==== Push, pull, wait ================================================== */

int paramd_pull(paramd_table *t, uint64_t off, uint64_t count, float *dst) {
    paramd_request r;
    int rc = check_range(t, off, count, dst);
    if (rc) return rc;
    start_op(t, PD_MSG_PULL, off, count, NULL, dst, &r);
    return req_finish(&r);
}

int paramd_push(paramd_table *t, uint64_t off, uint64_t count,
                const float *grad) {
    paramd_request r;
    int rc = check_range(t, off, count, grad);
    if (rc) return rc;
    start_op(t, PD_MSG_PUSH, off, count, grad, NULL, &r);
    return req_finish(&r);
}

static int start_async(paramd_table *t, uint16_t type, uint64_t off,
                       uint64_t count, const float *src, float *dst,
                       paramd_request **req) {
    *req = NULL;
    int rc = check_range(t, off, count, type == PD_MSG_PULL ? (void *)dst : (void *)src);
    if (rc) return rc;
    paramd_request *r = pd_malloc(sizeof *r);
    if (!r) return cl_err(t->c, PARAMD_ENOMEM, "out of memory");
    start_op(t, type, off, count, src, dst, r);
    req_kick(r); /* read in the background until it is waited for */
    r->heap = 1;
    *req = r;
    return 0;
}

int paramd_pull_async(paramd_table *t, uint64_t off, uint64_t count,
                      float *dst, paramd_request **req) {
    return start_async(t, PD_MSG_PULL, off, count, NULL, dst, req);
}

int paramd_push_async(paramd_table *t, uint64_t off, uint64_t count,
                      const float *grad, paramd_request **req) {
    return start_async(t, PD_MSG_PUSH, off, count, grad, NULL, req);
}

int paramd_wait(paramd_request *r) {
    if (!r) return PARAMD_EINVAL;
    int rc = req_finish(r);
    pd_free(r);
    return rc;
}

/* ==== Shared buffers ====================================================
 * paramd_alloc gives the program memory that same-host servers can map:
 * a memfd, sealed against shrinking and growing, mapped here and passed to
 * every server on a shared-memory link that offers it (PD_FEAT_REGIONS),
 * beside the rings (pd_conn_send_fd), with a REGION_MAP frame.  A push
 * from it or a pull into it then sends the server a reference (region id
 * and offset) instead of the floats: the server's rule reads the gradient
 * where the program wrote it, and a pull's values are copied by the
 * server straight into it (docs/transports.md).  Everything else - TCP
 * links, servers on other hosts, a server that refused the mapping, parts
 * under PD_REGION_MIN_BYTES - moves the floats as usual, so the memory
 * works with every call and every cluster.  Mapping and unmapping are
 * rare and hold map_mu throughout (one buffer's descriptors and frames at
 * a time); reg_mu guards only the list, so a push or pull that looks its
 * buffer up never waits behind a mapping's round trips. */

/* One small request to link l, waited for: 0 or its error (detail in the
 * client's last error). */
static int link_call(pd_link *l, uint16_t type, const void *payload, size_t n) {
    paramd_request r;
    req_init(&r, l->c);
    link_send(l, &r, type, 0, 0, 0, payload, n, NULL, 0, NULL, 0);
    req_done(&r, 0, "");
    return req_finish(&r);
}

void *paramd_alloc(paramd_client *c, size_t bytes) {
    if (!c) return NULL;
    if (bytes == 0 || bytes > PD_MAX_REGION_BYTES) {
        cl_err(c, PARAMD_EINVAL, "paramd_alloc of %zu bytes: ask for 1 to %llu", bytes,
               PD_MAX_REGION_BYTES);
        return NULL;
    }
    size_t len = 0;
    void *p = NULL;
    int fd = pd_shm_buffer(bytes, &p, &len);
    region *g = pd_calloc(1, sizeof *g);
    uint8_t *on = pd_calloc((size_t)c->S, 1);
    if (!g || !on || !p) {
        int err = errno;
        if (p) munmap(p, len);
        pd_close_fd(fd);
        pd_free(g);
        pd_free(on);
        cl_err(c, PARAMD_ENOMEM, "paramd_alloc: cannot map %zu bytes: %s", bytes,
               strerror(p ? ENOMEM : err));
        return NULL;
    }
    g->base = p;
    g->bytes = len;
    g->on = on;
    pthread_mutex_lock(&c->map_mu);
    g->id = ++c->next_region;
    for (int32_t k = 0; fd >= 0 && k < c->S; k++) {
        pd_link *l = &c->links[k];
        if (!l->regions_ok || __atomic_load_n(&l->dead, __ATOMIC_ACQUIRE)) continue;
        uint8_t pl[PD_REGION_MAP_PAYLOAD];
        put_le64(pl, g->id);
        put_le64(pl + 8, len);
        /* The descriptor first: the server takes it when the frame comes.
         * A server that refuses just gets the floats, as over TCP. */
        if (pd_conn_send_fd(l->conn, fd, g->id) == 0 &&
            link_call(l, PD_MSG_REGION_MAP, pl, sizeof pl) == 0)
            on[k] = 1;
    }
    pthread_mutex_lock(&c->reg_mu);
    g->next = c->regions;
    c->regions = g;
    __atomic_add_fetch(&c->nregions, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&c->reg_mu);
    pthread_mutex_unlock(&c->map_mu);
    pd_close_fd(fd); /* the mappings keep the memory */
    return p;
}

int paramd_free(paramd_client *c, void *p) {
    if (!c || !p) return 0;
    pthread_mutex_lock(&c->reg_mu);
    region **pp = &c->regions;
    while (*pp && (*pp)->base != p) pp = &(*pp)->next;
    region *g = *pp;
    if (!g) {
        pthread_mutex_unlock(&c->reg_mu);
        return cl_err(c, PARAMD_EINVAL,
                      "paramd_free of %p, which paramd_alloc did not return "
                      "(or was freed already)", p);
    }
    *pp = g->next;
    __atomic_sub_fetch(&c->nregions, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&c->reg_mu);
    int rc = 0;
    pthread_mutex_lock(&c->map_mu);
    for (int32_t k = 0; k < c->S; k++) {
        if (!g->on[k]) continue;
        uint8_t pl[8];
        put_le64(pl, g->id);
        int e = link_call(&c->links[k], PD_MSG_REGION_UNMAP, pl, sizeof pl);
        /* a link that broke has dropped its mappings with it */
        if (e && e != PARAMD_ECLOSED && e != PARAMD_EIO && !rc) rc = e;
    }
    pthread_mutex_unlock(&c->map_mu);
    munmap(g->base, g->bytes);
    pd_free(g->on);
    pd_free(g);
    return rc;
}

/* ==== Sparse tables =====================================================
 * A sparse request is a list of keys (and, for a push, one row of dim
 * floats per key).  The client groups the keys by server (pd_sparse_server,
 * the same formula the servers check), sends each server its part, in
 * chunks of about chunk_bytes round-robin over the servers (async tables;
 * a sync or ssp push is exactly one frame per server, empty or not, since
 * the server counts one push per worker and clock), and the receivers put
 * the pulled rows back in the caller's order.
 *
 * Copies: with one server, keys and rows go straight from and into the
 * caller's buffers.  With several, keys and gradients are first grouped by
 * server into memory the request owns, and pulled rows are read into it
 * and scattered by the receiver thread.  An async push that has to be cut
 * into several frames first sums its duplicated keys, so that each key is
 * still applied once, after summing, as a single frame would be. */

#define PD_SPARSE_MAX_KEYS (UINT32_MAX - 1ull) /* per call */

typedef struct sparse_plan {
    int push;
    uint64_t n;            /* keys to send (after summing duplicates) */
    const uint64_t *keys;  /* server k's keys are [off[k], off[k+1]) */
    const float *vals;     /* push: key i's row at vals + i*dim */
    float *dst;            /* pull: where key i's row is read, + i*dim */
    const uint64_t *pos;   /* pull, several servers: key i's request index */
    float *out;            /* pull: the caller's rows */
    uint64_t *off, *cur;   /* S+1, S */
    uint64_t off1[2], cur1[1];
    void *block;           /* what the plan allocated; the request owns it */
} sparse_plan;

static int sparse_check(paramd_table *t, const uint64_t *keys, uint64_t n,
                        const void *buf) {
    if (t->def.kind != PD_TABLE_SPARSE)
        return cl_err(t->c, PARAMD_EINVAL,
                      "table '%s' is dense: use paramd_pull and paramd_push",
                      t->name);
    if (n && (!keys || !buf))
        return cl_err(t->c, PARAMD_EINVAL, "table '%s': NULL keys or rows",
                      t->name);
    if (n > PD_SPARSE_MAX_KEYS)
        return cl_err(t->c, PARAMD_EINVAL,
                      "table '%s': %llu keys in one call (at most %llu)",
                      t->name, (unsigned long long)n,
                      (unsigned long long)PD_SPARSE_MAX_KEYS);
    return 0;
}

/* Sum duplicated keys: uk[0..*nu) are the distinct keys in order of first
 * appearance and ug their rows summed in request order (what a server does
 * with duplicates in one push).  0, or -1 out of memory. */
static int sum_duplicates(const uint64_t *keys, uint64_t n, const float *g,
                          uint32_t dim, uint64_t *uk, float *ug, uint64_t *nu) {
    pd_keymap m;
    pd_keymap_init(&m);
    if (pd_keymap_reserve(&m, n) != 0) return -1;
    uint64_t u = 0;
    for (uint64_t i = 0; i < n; i++) {
        int added;
        uint32_t at = pd_keymap_put(&m, keys[i], (uint32_t)u, &added);
        const float *src = g + i * dim;
        if (added) {
            uk[u] = keys[i];
            memcpy(ug + u * dim, src, dim * sizeof(float));
            u++;
        } else {
            float *dst = ug + (size_t)at * dim;
            for (uint32_t j = 0; j < dim; j++) dst[j] += src[j];
        }
    }
    pd_keymap_free(&m);
    *nu = u;
    return 0;
}

/* Keys per frame: about chunk_bytes of rows, at least one. */
static uint64_t sparse_chunk(const paramd_client *c, int push, uint32_t dim) {
    uint64_t per = (uint64_t)dim * 4 + (push ? 8 : 0);
    uint64_t k = c->chunk_bytes / per;
    return k ? k : 1;
}

/* Build what goes to each server.  Nothing is sent; on failure nothing is
 * allocated.  0 or a PARAMD_E* code (with the client's error set). */
static int sparse_plan_make(paramd_table *t, sparse_plan *p, int push,
                            const uint64_t *keys, uint64_t n,
                            const float *grads, float *rows) {
    paramd_client *c = t->c;
    uint32_t S = (uint32_t)c->S, dim = (uint32_t)t->n;
    int clocked = t->def.consistency != PD_CONS_ASYNC;
    int dedupe = push && !clocked && n > sparse_chunk(c, 1, dim);
    size_t rowb = (size_t)dim * sizeof(float);
    memset(p, 0, sizeof *p);
    p->push = push;
    p->n = n;
    p->keys = keys;
    p->vals = grads;
    p->dst = rows;
    p->out = rows;
    p->off = p->off1, p->cur = p->cur1;
    p->off1[1] = n;
    if (!dedupe && S == 1) return 0; /* straight from and into the caller */
    /* One block: u64 arrays, then float arrays, then the u32 one. */
    size_t nd = dedupe ? n : 0, ng = S > 1 ? n : 0;
    size_t bytes = (S > 1 ? (2 * (size_t)S + 1) * 8 : 0) + nd * 8 + ng * 8 +
                   (!push ? ng * 8 : 0) + nd * rowb + ng * rowb + ng * 4;
    uint8_t *b = pd_malloc(bytes ? bytes : 1);
    if (!b) return cl_err(c, PARAMD_ENOMEM, "out of memory for %zu bytes", bytes);
    p->block = b;
    uint64_t *off = NULL, *cur = NULL, *uk = NULL, *gk = NULL, *pos = NULL;
    if (S > 1) off = (uint64_t *)(void *)b, b += (S + 1) * 8;
    if (S > 1) cur = (uint64_t *)(void *)b, b += (size_t)S * 8;
    if (nd) uk = (uint64_t *)(void *)b, b += nd * 8;
    if (ng) gk = (uint64_t *)(void *)b, b += ng * 8;
    if (ng && !push) pos = (uint64_t *)(void *)b, b += ng * 8;
    float *ug = nd ? (float *)(void *)b : NULL;
    b += nd * rowb;
    float *gv = ng ? (float *)(void *)b : NULL; /* push: rows; pull: replies */
    b += ng * rowb;
    uint32_t *srv = ng ? (uint32_t *)(void *)b : NULL;
    if (dedupe) {
        if (sum_duplicates(keys, n, grads, dim, uk, ug, &p->n) != 0) {
            pd_free(p->block);
            p->block = NULL;
            return cl_err(c, PARAMD_ENOMEM, "out of memory");
        }
        p->keys = uk;
        p->vals = ug;
        p->off1[1] = p->n;
    }
    if (S == 1) return 0;
    /* Counting sort by server: stable, so each server sees its keys in
     * request order. */
    uint64_t N = p->n;
    const uint64_t *K = p->keys;
    const float *V = p->vals;
    memset(off, 0, (S + 1) * 8);
    for (uint64_t i = 0; i < N; i++) {
        srv[i] = pd_sparse_server(K[i], S);
        off[srv[i] + 1]++;
    }
    for (uint32_t k = 0; k < S; k++) off[k + 1] += off[k];
    memcpy(cur, off, (size_t)S * 8);
    for (uint64_t i = 0; i < N; i++) {
        uint64_t j = cur[srv[i]]++;
        gk[j] = K[i];
        if (push)
            memcpy(gv + j * dim, V + i * dim, rowb);
        else
            pos[j] = i;
    }
    p->keys = gk;
    p->vals = push ? gv : NULL;
    p->dst = push ? NULL : gv;
    p->pos = pos;
    p->off = off;
    p->cur = cur;
    return 0;
}

/* Send the plan's frames as sub-requests of r. */
static void sparse_send(paramd_table *t, paramd_request *r, sparse_plan *p) {
    paramd_client *c = t->c;
    uint32_t S = (uint32_t)c->S, dim = (uint32_t)t->n;
    int clocked = t->def.consistency != PD_CONS_ASYNC;
    int64_t clock = paramd_get_clock(c);
    uint64_t chunk = clocked && p->push ? UINT64_MAX : sparse_chunk(c, p->push, dim);
    uint16_t type = p->push ? PD_MSG_SPARSE_PUSH : PD_MSG_SPARSE_PULL;
    int can_batch = batchable(t, type);
    memcpy(p->cur, p->off, (size_t)S * 8);
    for (int more = 1, first = 1; more; first = 0) {
        more = 0;
        for (uint32_t k = 0; k < S; k++) {
            uint64_t a = p->cur[k], end = p->off[k + 1];
            /* a sync/ssp push goes to every server, with no keys too */
            if (a >= end && !(first && clocked && p->push)) continue;
            uint64_t m = end - a < chunk ? end - a : chunk;
            p->cur[k] += m;
            if (p->cur[k] < end) more = 1;
            uint8_t pre[PD_SPARSE_PREFIX];
            for (int i = 0; i < 8; i++) pre[i] = (uint8_t)(m >> (8 * i));
            pending pt = {0};
            pt.type = type;
            /* (an empty sync push may have no arrays at all: no NULL + 0) */
            const uint64_t *keys = m ? p->keys + a : NULL;
            if (p->push) {
                link_send_ex(&c->links[k], r, &pt, can_batch, t->id, clock, pre, sizeof pre,
                             keys, m * 8, m ? p->vals + a * dim : NULL,
                             m * dim * sizeof(float));
            } else {
                pt.dst = p->dst + a * dim;
                pt.count = m * dim;
                pt.pos = p->pos ? p->pos + a : NULL;
                pt.out = p->out;
                pt.dim = dim;
                link_send_ex(&c->links[k], r, &pt, can_batch, t->id, clock, pre,
                             sizeof pre, keys, m * 8, NULL, 0);
            }
        }
    }
}

static int sparse_start(paramd_table *t, int push, const uint64_t *keys,
                        uint64_t n, const float *grads, float *rows,
                        paramd_request *r) {
    sparse_plan p;
    int rc = sparse_check(t, keys, n, push ? (const void *)grads : (const void *)rows);
    if (rc) return rc;
    if ((rc = sparse_plan_make(t, &p, push, keys, n, grads, rows))) return rc;
    if (push && t->def.consistency != PD_CONS_ASYNC) {
        /* One frame per server: check them all before sending any, so a
         * refused push never leaves a clock half pushed. */
        for (int32_t k = 0; k < t->c->S; k++) {
            uint64_t m = p.off[k + 1] - p.off[k];
            if (m > (PD_MAX_FRAME_DEFAULT - PD_SPARSE_PREFIX) / (8 + t->n * 4)) {
                pd_free(p.block);
                return cl_err(t->c, PARAMD_ETOOBIG,
                              "table '%s': %llu keys for server %d in one "
                              "sync push exceed the frame limit of %llu bytes "
                              "(sync sparse pushes are one frame per server "
                              "and clock)",
                              t->name, (unsigned long long)m, k,
                              (unsigned long long)PD_MAX_FRAME_DEFAULT);
            }
        }
    }
    req_init(r, t->c);
    r->owned = p.block;
    r->table = t;
    sparse_send(t, r, &p);
    req_done(r, 0, ""); /* drop the issuer's guard */
    return 0;
}

int paramd_sparse_open(paramd_client *c, const char *name, uint32_t dim,
                       const char *spec, paramd_table **out) {
    return table_open(c, name, dim, PD_TABLE_SPARSE, spec, NULL, out);
}

uint32_t paramd_table_dim(const paramd_table *t) {
    return t->def.kind == PD_TABLE_SPARSE ? (uint32_t)t->n : 0;
}

int paramd_sparse_pull(paramd_table *t, const uint64_t *keys, uint64_t nkeys,
                       float *rows) {
    paramd_request r;
    int rc = sparse_start(t, 0, keys, nkeys, NULL, rows, &r);
    return rc ? rc : req_finish(&r);
}

int paramd_sparse_push(paramd_table *t, const uint64_t *keys, uint64_t nkeys,
                       const float *grads) {
    paramd_request r;
    int rc = sparse_start(t, 1, keys, nkeys, grads, NULL, &r);
    return rc ? rc : req_finish(&r);
}

static int sparse_async(paramd_table *t, int push, const uint64_t *keys,
                        uint64_t n, const float *grads, float *rows,
                        paramd_request **req) {
    *req = NULL;
    paramd_request *r = pd_malloc(sizeof *r);
    if (!r) return cl_err(t->c, PARAMD_ENOMEM, "out of memory");
    int rc = sparse_start(t, push, keys, n, grads, rows, r);
    if (rc) {
        pd_free(r);
        return rc;
    }
    req_kick(r); /* read in the background until it is waited for */
    r->heap = 1;
    *req = r;
    return 0;
}

int paramd_sparse_pull_async(paramd_table *t, const uint64_t *keys,
                             uint64_t nkeys, float *rows, paramd_request **req) {
    return sparse_async(t, 0, keys, nkeys, NULL, rows, req);
}

int paramd_sparse_push_async(paramd_table *t, const uint64_t *keys,
                             uint64_t nkeys, const float *grads,
                             paramd_request **req) {
    return sparse_async(t, 1, keys, nkeys, grads, NULL, req);
}

/* ==== Table counters ==================================================== */

/* Find counter `name` in the STATS line of table `id` in text.  0 with
 * *v set, PARAMD_ENOTABLE (no line), PARAMD_EINVAL (no such counter),
 * PARAMD_EPROTO (not a number). */
static int stat_from_text(const char *text, uint32_t id, const char *name,
                          uint64_t *v) {
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        unsigned tid;
        int at = 0;
        if (sscanf(line, "table %u %n", &tid, &at) == 1 && tid == id && at > 0) {
            char buf[1024];
            snprintf(buf, sizeof buf, "%.*s", (int)(len - (size_t)at), line + at);
            char *save = NULL;
            for (char *k = strtok_r(buf, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
                char *val = strtok_r(NULL, " ", &save);
                if (!val) break;
                if (strcmp(k, name) != 0) continue;
                return pd_parse_u64(val, v) == 0 ? 0 : PARAMD_EPROTO;
            }
            return PARAMD_EINVAL;
        }
        line = nl ? nl + 1 : NULL;
    }
    return PARAMD_ENOTABLE;
}

int paramd_table_stat(paramd_table *t, int32_t server, const char *name,
                      uint64_t *value) {
    paramd_client *c = t->c;
    if (!name || !value || server < -1 || server >= c->S)
        return cl_err(c, PARAMD_EINVAL,
                      "table '%s': bad counter name or server %d (0..%d, or "
                      "-1 for all)",
                      t->name, server, c->S - 1);
    int32_t k0 = server < 0 ? 0 : server, k1 = server < 0 ? c->S : server + 1;
    size_t each = PD_MAX_CTRL_PAYLOAD + 1;
    char *texts = pd_calloc((size_t)(k1 - k0), each);
    if (!texts) return cl_err(c, PARAMD_ENOMEM, "out of memory");
    paramd_request r;
    req_init(&r, c);
    for (int32_t k = k0; k < k1; k++) {
        pending pt = {0};
        pt.type = PD_MSG_STATS;
        pt.text = texts + (size_t)(k - k0) * each;
        link_send_ex(&c->links[k], &r, &pt, 0, t->id, 0, NULL, 0, NULL, 0, NULL, 0);
    }
    req_done(&r, 0, "");
    int rc = req_finish(&r);
    uint64_t total = 0;
    for (int32_t k = k0; k < k1 && !rc; k++) {
        uint64_t v;
        rc = stat_from_text(texts + (size_t)(k - k0) * each, t->id, name, &v);
        if (rc == PARAMD_ENOTABLE)
            cl_err(c, rc, "server %d has no counters for table '%s'", k, t->name);
        else if (rc == PARAMD_EPROTO)
            rc = cl_err(c, PARAMD_EINVAL, "table '%s': counter '%s' is not a number",
                        t->name, name);
        else if (rc)
            cl_err(c, rc, "table '%s' has no counter '%s' on server %d", t->name,
                   name, k);
        else if (!strcmp(name, "dim"))
            total = v; /* the same on every server */
        else if (!strcmp(name, "clock"))
            total = k == k0 || v < total ? v : total; /* applied everywhere */
        else
            total += v;
    }
    pd_free(texts);
    if (!rc) *value = total;
    return rc;
}

/* ==== Probes for tests (client_internal.h) ============================== */

void pd_client_reads_get(paramd_client *c, pd_client_reads *out) {
    out->by_caller = __atomic_load_n(&c->n_by_caller, __ATOMIC_RELAXED);
    out->by_rx = __atomic_load_n(&c->n_by_rx, __ATOMIC_RELAXED);
    out->rx_wakes = __atomic_load_n(&c->n_rx_wakes, __ATOMIC_RELAXED);
    out->handoffs = __atomic_load_n(&c->n_handoffs, __ATOMIC_RELAXED);
}

int pd_client_link_reader(paramd_client *c, int32_t k, int *followers) {
    pd_link *l = &c->links[k];
    pthread_mutex_lock(&l->q_mu);
    int who = rd_get(l) == RD_RX ? PD_READER_RX
              : rd_get(l) == RD_CALLER ? PD_READER_CALLER : PD_READER_NONE;
    int n = 0;
    for (rd_waiter *w = l->wq; w; w = w->next) n++;
    pthread_mutex_unlock(&l->q_mu);
    if (followers) *followers = n;
    return who;
}

int pd_request_done(paramd_request *r) { return !req_pending(r); }
