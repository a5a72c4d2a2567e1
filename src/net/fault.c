/*
 * fault.c - the fault-injecting transport: a pd_conn that wraps another one
 * and, following a small spec, fails the k-th send or receive or cuts every
 * read and write short.  It exists for tests: it shows that the layers
 * above the transport lose no request, apply none twice, and turn every
 * transport failure into an error for the caller (docs/testing.md).
 *
 * Design.  A wrapper is one more table of transport functions (conn.h), in
 * the way SQLite's test VFS wraps the real one: each call goes to the inner
 * connection's function unless the spec says otherwise.  The wrapper's
 * pd_conn copies the inner fd and peer, so code that sets socket options
 * (pd_tcp_set_rcvtimeo) or names the peer in a message needs no change, and
 * wrapping is one call where a connection is made or accepted.
 *
 *   send_fail=K  the K-th writev moves nothing and fails with EIO
 *   recv_fail=K  the K-th readv likewise
 *   short=N      each readv/writev is given at most 1..N bytes of its iovec
 *                (pseudo-random, from seed=S), so callers see short reads
 *                and short writes on every call, not only under load
 *
 * A failure behaves like a link that broke: the wrapper shuts the inner
 * connection down (the peer sees the stream end, a reader blocked on this
 * connection in another thread wakes up) and every later readv or writev
 * fails with EIO.  What a failure does NOT do: write part of a frame and
 * then fail (the inner stream only ever carries whole writev prefixes that
 * the inner transport accepted), corrupt bytes, or delay.  Those would be
 * further keys.
 *
 * Counting.  Calls are counted per wrapper and per direction, so K is the
 * K-th call of the transport function, not the K-th frame: a frame's read
 * is one readv for the header and one or more for the payload, and with
 * short=N a frame takes many calls.  Tests that need "the k-th push" pick
 * K from that or, better, check invariants that hold for every K.
 *
 * Threading.  Like every pd_conn: one reader and one writer at a time.  The
 * read side owns recv_calls and rd_rng, the write side send_calls and
 * wr_rng; `broken` is the one field both touch, with atomic loads and
 * stores.  No global state: two wrapped connections in one process count
 * and draw independently.
 */
#include "net/fault.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ==== Types ============================================================= */

typedef struct fault_conn {
    pd_conn conn;        /* what callers see; conn.impl points here */
    pd_conn *inner;
    pd_fault_spec spec;
    char text[PD_FAULT_SPEC_MAX + 1];
    uint64_t send_calls; /* write side only */
    uint64_t recv_calls; /* read side only */
    uint64_t wr_rng, rd_rng;
    int broken;          /* atomic: a fault fired; all I/O fails */
} fault_conn;

/* At most this many iovec entries are passed on under short=N (each entry
 * carries at least one byte, so the cut is at most as short as asked). */
#define FAULT_MAX_IOV 16

/* ==== Helpers =========================================================== */

/* splitmix64: a tiny, well-mixed generator; the state is the caller's. */
static uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Copy the first `limit` bytes of iov[0..cnt) into out (skipping empty
 * entries); the number of entries used.  0 if iov holds no bytes. */
static int cut_iov(const struct iovec *iov, int cnt, size_t limit,
                   struct iovec *out) {
    int k = 0;
    for (int i = 0; i < cnt && limit > 0 && k < FAULT_MAX_IOV; i++) {
        if (iov[i].iov_len == 0) continue;
        size_t n = iov[i].iov_len < limit ? iov[i].iov_len : limit;
        out[k++] = (struct iovec){iov[i].iov_base, n};
        limit -= n;
    }
    return k;
}

/* A fault fires: break the link, say so once in the log. */
static ssize_t fire(fault_conn *f, const char *what, uint64_t call) {
    __atomic_store_n(&f->broken, 1, __ATOMIC_SEQ_CST);
    pd_log(PD_LOG_WARN, "fault injection ('%s'): failing %s call %llu on the "
           "connection with %s", f->text, what, (unsigned long long)call,
           f->conn.peer);
    f->inner->ops->shutdown(f->inner);
    errno = EIO;
    return -1;
}

/* One call in direction `what`: fail it, pass it on cut short, or pass it
 * on whole.  `calls` and `rng` belong to that direction. */
static ssize_t fault_io(fault_conn *f, const struct iovec *iov, int cnt,
                        uint64_t *calls, uint64_t fail_at, uint64_t *rng,
                        int write) {
    if (__atomic_load_n(&f->broken, __ATOMIC_SEQ_CST)) {
        errno = EIO;
        return -1;
    }
    uint64_t call = ++*calls;
    if (fail_at && call == fail_at)
        return fire(f, write ? "send" : "receive", call);
    pd_conn *in = f->inner;
    if (f->spec.short_max) {
        struct iovec cut[FAULT_MAX_IOV];
        size_t limit = 1 + (size_t)(next_rand(rng) % f->spec.short_max);
        int k = cut_iov(iov, cnt, limit, cut);
        if (k > 0)
            return write ? in->ops->writev(in, cut, k)
                         : in->ops->readv(in, cut, k);
    }
    return write ? in->ops->writev(in, iov, cnt) : in->ops->readv(in, iov, cnt);
}

/* ==== Transport table =================================================== */

static ssize_t fault_readv(pd_conn *c, const struct iovec *iov, int cnt) {
    fault_conn *f = c->impl;
    return fault_io(f, iov, cnt, &f->recv_calls, f->spec.recv_fail, &f->rd_rng, 0);
}

static ssize_t fault_writev(pd_conn *c, const struct iovec *iov, int cnt) {
    fault_conn *f = c->impl;
    return fault_io(f, iov, cnt, &f->send_calls, f->spec.send_fail, &f->wr_rng, 1);
}

static void fault_shutdown(pd_conn *c) {
    fault_conn *f = c->impl;
    f->inner->ops->shutdown(f->inner);
}

static void fault_destroy(pd_conn *c) {
    fault_conn *f = c->impl;
    pd_conn_destroy(f->inner);
    pd_free(f);
}

/* The receive timeout belongs to the inner transport.  The optional
 * zero-copy calls (try_writev, peek) are not offered: every byte goes
 * through readv/writev, where the faults are. */
static void fault_set_rcvtimeo(pd_conn *c, int ms) {
    fault_conn *f = c->impl;
    pd_conn_set_rcvtimeo(f->inner, ms);
}

/* Descriptors pass straight to the inner transport (no faults there: the
 * frame that names a descriptor is where a fault shows). */
static int fault_send_fd(pd_conn *c, int fd, uint64_t tag) {
    fault_conn *f = c->impl;
    return pd_conn_send_fd(f->inner, fd, tag);
}

static int fault_recv_fd(pd_conn *c, uint64_t *tag) {
    fault_conn *f = c->impl;
    return pd_conn_recv_fd(f->inner, tag);
}

static const pd_transport_ops fault_ops = {"fault", fault_readv, fault_writev,
                                           fault_shutdown, fault_destroy,
                                           fault_set_rcvtimeo, NULL, NULL, NULL,
                                           fault_send_fd, fault_recv_fd, NULL};

/* ==== Public ============================================================ */

int pd_fault_parse(const char *spec, pd_fault_spec *out, pd_err *e) {
    static const char *const keys[] = {"send_fail", "recv_fail", "short", "seed"};
    char buf[PD_FAULT_SPEC_MAX + 1];
    if (!spec || !*spec)
        return pd_seterr(e, PARAMD_EINVAL, "empty fault spec (want e.g. "
                         "send_fail=K, recv_fail=K, short=N, seed=S)");
    if (strlen(spec) > PD_FAULT_SPEC_MAX)
        return pd_seterr(e, PARAMD_EINVAL, "fault spec longer than %d bytes",
                         PD_FAULT_SPEC_MAX);
    snprintf(buf, sizeof buf, "%s", spec);
    pd_fault_spec s = {0};
    s.seed = 1;
    int seen[4] = {0};
    char *save = NULL, *tok;
    /* strtok_r would skip empty items ("short=7,,seed=1"): walk by hand. */
    for (char *p = buf;; p = save + 1) {
        save = strchr(p, ',');
        if (save) *save = '\0';
        tok = p;
        char *eq = strchr(tok, '=');
        if (!*tok)
            return pd_seterr(e, PARAMD_EINVAL, "fault spec '%s': empty item",
                             spec);
        if (!eq)
            return pd_seterr(e, PARAMD_EINVAL,
                             "fault spec '%s': '%s' is not key=value", spec, tok);
        *eq = '\0';
        const char *val = eq + 1;
        int k = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(tok, keys[i]) == 0) k = i;
        if (k < 0)
            return pd_seterr(e, PARAMD_EINVAL,
                             "fault spec '%s': unknown key '%s' (send_fail, "
                             "recv_fail, short, seed)", spec, tok);
        if (seen[k]++)
            return pd_seterr(e, PARAMD_EINVAL,
                             "fault spec '%s': '%s' given twice", spec, tok);
        uint64_t v;
        if (pd_parse_u64(val, &v) || (k < 3 && v == 0) ||
            (k == 2 && v > (1u << 30)))
            return pd_seterr(e, PARAMD_EINVAL,
                             "fault spec '%s': %s=%s is not a number in %s",
                             spec, tok, val,
                             k == 2 ? "1..2^30" : k == 3 ? "0..2^64-1"
                                                         : "1..2^64-1");
        switch (k) {
        case 0: s.send_fail = v; break;
        case 1: s.recv_fail = v; break;
        case 2: s.short_max = (uint32_t)v; break;
        default: s.seed = v; break;
        }
        if (!save) break;
    }
    *out = s;
    return 0;
}

pd_conn *pd_fault_wrap(pd_conn *inner, const char *spec, pd_err *e) {
    pd_fault_spec s;
    if (!inner) {
        pd_seterr(e, PARAMD_EINVAL, "no connection to wrap");
        return NULL;
    }
    if (pd_fault_parse(spec, &s, e) != 0) {
        pd_conn_destroy(inner);
        return NULL;
    }
    fault_conn *f = pd_calloc(1, sizeof *f);
    if (!f) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory");
        pd_conn_destroy(inner);
        return NULL;
    }
    f->inner = inner;
    f->spec = s;
    snprintf(f->text, sizeof f->text, "%s", spec);
    /* Two streams from one seed: reads and writes draw independently. */
    f->rd_rng = s.seed;
    f->wr_rng = s.seed ^ 0x5deece66dull;
    f->conn.ops = &fault_ops;
    f->conn.fd = inner->fd;
    f->conn.impl = f;
    memcpy(f->conn.peer, inner->peer, sizeof f->conn.peer);
    return &f->conn;
}
