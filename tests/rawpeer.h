/*
 * rawpeer.h - a test tool talking to a live cluster as a raw peer, frame
 * by frame, outside libparamd (tool_badframes.c, tool_region.c,
 * tool_batch.c, tool_sparse.c, tool_worker.c): dial, the handshake
 * (frame/hello.h, the same one every role uses), move onto a server's
 * shared memory, read the cluster map (wire/map.h), ask a server for its
 * STATS text.  Every failure ends the tool through CHECK_FAIL_ (check.h).
 * Header-only: each tool is one program.
 */
#ifndef PARAMD_TESTS_RAWPEER_H
#define PARAMD_TESTS_RAWPEER_H

#include "check.h"
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

/* The handshake as role/rank; the answerer's welcome into *w (may be
 * NULL).  The status (0 or an error code, with the peer's reason in e). */
static inline int rp_hello(pd_conn *c, uint32_t role, int32_t rank, pd_welcome *w,
                           pd_err *e) {
    pd_hello me = {role, rank};
    return pd_handshake_dial(c, &me, w, e);
}

/* A connection to addr that has said HELLO as a tool. */
static inline pd_conn *rp_tool(const char *addr) {
    pd_err e = {0};
    pd_conn *c = rp_dial(addr);
    if (rp_hello(c, PD_ROLE_TOOL, -1, NULL, &e)) CHECK_FAIL_("HELLO %s: %s", addr, e.msg);
    return c;
}

/* The shared-memory connection a server's welcome offers, after a worker
 * HELLO of rank 0 on it; NULL if it offers none. */
static inline pd_conn *rp_shm(const pd_welcome *w) {
    pd_err e = {0};
    if (!w->shm[0]) return NULL;
    pd_conn *s = pd_shm_connect(w->shm, PD_SHM_RING_DEFAULT, 5000, &e);
    if (!s) CHECK_FAIL_("shared memory: %s", e.msg);
    if (rp_hello(s, PD_ROLE_WORKER, 0, NULL, &e)) CHECK_FAIL_("HELLO over shm: %s", e.msg);
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

#endif
