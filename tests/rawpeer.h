/*
 * rawpeer.h - a test tool talking to a live cluster as a raw peer, frame
 * by frame, outside libparamd (tool_badframes.c, tool_region.c,
 * tool_batch.c, tool_sparse.c, tool_worker.c, tool_trust.c): dial, the
 * handshake (frame/hello.h, the same one every role uses, with the
 * cluster's secret from PARAMD_SECRET_FILE and, for a raw worker
 * connection, the rank ticket of a worker connected in the same process:
 * rp_speak_for), move onto a server's
 * shared memory, read the cluster map (wire/map.h), ask a server for its
 * STATS text.  Every failure ends the tool through CHECK_FAIL_ (check.h).
 * Header-only: each tool is one program.
 */
#ifndef PARAMD_TESTS_RAWPEER_H
#define PARAMD_TESTS_RAWPEER_H

#include <stdlib.h>

#include "check.h"
#include "client/client_impl.h"
#include "frame/hello.h"
#include "net/conn.h"
#include "wire/map.h"
#include "wire/wire.h"

/* A TCP connection to addr. */
static inline pd_conn *rp_dial(const char *addr) {
    pd_err e = {0};
    pd_conn *c = pd_tcp_connect(addr, 5000, &e);
    if (!c) CHECK_FAIL_("connect %s: %s", addr, e.msg);
    return c;
}

/* What every raw connection of this tool says about itself: the cluster
 * secret (PARAMD_SECRET_FILE, as every paramd program reads it), and the
 * worker whose rank ticket a raw worker connection shows (rp_speak_for). */
typedef struct rp_state {
    int key_read, has_key;
    pd_key key;
    int speaks;
    int32_t rank;
    pd_ticket ticket;
} rp_state;

static inline rp_state *rp_st(void) {
    static rp_state st;
    return &st;
}

/* The cluster secret from PARAMD_SECRET_FILE; NULL if none is set. */
static inline const pd_key *rp_key(void) {
    rp_state *st = rp_st();
    if (!st->key_read) {
        const char *path = getenv("PARAMD_SECRET_FILE");
        pd_err e = {0};
        st->key_read = 1;
        if (path && path[0]) {
            if (pd_secret_load(path, &st->key, &e)) CHECK_FAIL_("%s", e.msg);
            st->has_key = 1;
        }
    }
    return st->has_key ? &st->key : NULL;
}

/* From now on a raw HELLO as worker `paramd_rank(w)` shows the ticket the
 * coordinator gave w, a worker connected in this process: raw frames then
 * speak for a registered worker, as the servers demand (frame/auth.h). */
static inline void rp_speak_for(const paramd_client *w) {
    rp_state *st = rp_st();
    st->speaks = 1;
    st->rank = w->rank;
    st->ticket = w->ticket;
}

/* The handshake as role/rank (with the ticket of rp_speak_for's worker if
 * the rank is its) under `key`; the answerer's welcome into *w (may be
 * NULL).  The status (0 or an error code, with the peer's reason in e). */
static inline int rp_hello_key(pd_conn *c, uint32_t role, int32_t rank, const pd_key *key,
                               pd_welcome *w, pd_err *e) {
    rp_state *st = rp_st();
    pd_hello me = {.role = role, .rank = rank};
    if (role == PD_ROLE_WORKER && st->speaks && rank == st->rank)
        me.has_ticket = 1, me.ticket = st->ticket;
    return pd_handshake_dial(c, &me, key, w, e);
}

/* The same with the cluster's secret (rp_key). */
static inline int rp_hello(pd_conn *c, uint32_t role, int32_t rank, pd_welcome *w,
                           pd_err *e) {
    return rp_hello_key(c, role, rank, rp_key(), w, e);
}

/* A connection to addr that has said HELLO as a tool. */
static inline pd_conn *rp_tool(const char *addr) {
    pd_err e = {0};
    pd_conn *c = rp_dial(addr);
    if (rp_hello(c, PD_ROLE_TOOL, -1, NULL, &e)) CHECK_FAIL_("HELLO %s: %s", addr, e.msg);
    return c;
}

/* The shared-memory connection a server's welcome offers, after a worker
 * HELLO on it (as rp_speak_for's worker, else rank 0); NULL if it offers
 * none. */
static inline pd_conn *rp_shm(const pd_welcome *w) {
    pd_err e = {0};
    if (!w->shm[0]) return NULL;
    pd_conn *s = pd_shm_connect(w->shm, PD_SHM_RING_DEFAULT, 5000, &e);
    if (!s) CHECK_FAIL_("shared memory: %s", e.msg);
    int32_t rank = rp_st()->speaks ? rp_st()->rank : 0;
    if (rp_hello(s, PD_ROLE_WORKER, rank, NULL, &e)) CHECK_FAIL_("HELLO over shm: %s", e.msg);
    return s;
}

/* The coordinator's map, as a tool sees it (free it with pd_map_free). */
static inline void rp_map(const char *coord, pd_map *m) {
    static uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];
    pd_err e = {0};
    pd_conn *c = rp_tool(coord);
    pd_hdr h = {0}, rh;
    h.type = PD_MSG_MAP;
    h.id = 2;
    if (pd_rpc(c, &h, NULL, 0, &rh, buf, &e)) CHECK_FAIL_("MAP: %s", e.msg);
    pd_conn_destroy(c);
    if (pd_map_decode(buf, (size_t)rh.len, m, &e)) CHECK_FAIL_("%s", e.msg);
}

/* Server addr's STATS text (of one table, or 0: all) into out
 * (PD_MAX_CTRL_PAYLOAD + 1 bytes). */
static inline void rp_stats(const char *addr, uint32_t table, char *out) {
    pd_err e = {0};
    pd_conn *c = rp_tool(addr);
    pd_hdr h = {0}, rh;
    h.type = PD_MSG_STATS;
    h.id = 2;
    h.table = table;
    if (pd_rpc(c, &h, NULL, 0, &rh, (uint8_t *)out, &e)) CHECK_FAIL_("STATS %s: %s", addr, e.msg);
    pd_conn_destroy(c);
}

/* A transport that records what passes through another (for the replay
 * tests): out = what this side wrote, in = what it read. */
typedef struct rp_recorder {
    pd_conn *inner;
    uint8_t out[4096], in[4096];
    size_t nout, nin;
} rp_recorder;

static inline void rp_rec_append(uint8_t *to, size_t *n, const struct iovec *iov, int cnt,
                                 ssize_t k) {
    for (int i = 0; i < cnt && k > 0; i++) {
        size_t m = iov[i].iov_len < (size_t)k ? iov[i].iov_len : (size_t)k;
        CHECK(*n + m <= 4096);
        memcpy(to + *n, iov[i].iov_base, m);
        *n += m, k -= (ssize_t)m;
    }
}
static inline ssize_t rp_rec_readv(pd_conn *c, const struct iovec *iov, int cnt) {
    rp_recorder *r = c->impl;
    ssize_t k = r->inner->ops->readv(r->inner, iov, cnt);
    rp_rec_append(r->in, &r->nin, iov, cnt, k);
    return k;
}
static inline ssize_t rp_rec_writev(pd_conn *c, const struct iovec *iov, int cnt) {
    rp_recorder *r = c->impl;
    ssize_t k = r->inner->ops->writev(r->inner, iov, cnt);
    rp_rec_append(r->out, &r->nout, iov, cnt, k);
    return k;
}
static inline void rp_rec_shutdown(pd_conn *c) {
    pd_conn_shutdown(((rp_recorder *)c->impl)->inner);
}
static inline void rp_rec_destroy(pd_conn *c) {
    pd_conn_destroy(((rp_recorder *)c->impl)->inner);
    free(c);
}
static inline void rp_rec_timeo(pd_conn *c, int ms) {
    pd_conn_set_rcvtimeo(((rp_recorder *)c->impl)->inner, ms);
}
static inline pd_conn *rp_record(pd_conn *inner, rp_recorder *r) {
    static const pd_transport_ops ops = {.name = "rp_recorder", .readv = rp_rec_readv,
                                         .writev = rp_rec_writev, .shutdown = rp_rec_shutdown,
                                         .destroy = rp_rec_destroy, .set_rcvtimeo = rp_rec_timeo};
    pd_conn *c = calloc(1, sizeof *c);
    CHECK(c != NULL);
    memset(r, 0, sizeof *r);
    r->inner = inner;
    c->ops = &ops;
    c->fd = inner->fd;
    c->impl = r;
    snprintf(c->peer, sizeof c->peer, "%s", inner->peer);
    return c;
}

#endif
