/*
 * rawpeer.h - a test tool talking to a live cluster as a raw peer, frame
 * by frame, outside libparamd (tool_badframes.c, tool_region.c): dial,
 * HELLO, move onto a server's shared memory, read the cluster map.  Every
 * failure ends the tool through CHECK_FAIL_ (check.h).  Header-only: each
 * tool is one program.
 */
#ifndef PARAMD_TESTS_RAWPEER_H
#define PARAMD_TESTS_RAWPEER_H

#include "check.h"
#include "frame/hello.h"
#include "net/conn.h"
#include "wire/wire.h"

/* A TCP connection to addr. */
static inline pd_conn *rp_dial(const char *addr) {
    pd_err e = {0};
    pd_conn *c = pd_tcp_connect(addr, 5000, &e);
    if (!c) CHECK_FAIL_("connect %s: %s", addr, e.msg);
    return c;
}

/* HELLO as role/rank; the reply's payload into buf (PD_MAX_CTRL_PAYLOAD +
 * 1 bytes), its length into *len.  The status (0 or an error code). */
static inline int rp_hello(pd_conn *c, uint32_t role, int32_t rank, uint8_t *buf,
                           size_t *len, pd_err *e) {
    pd_buf b;
    pd_hdr h = {0}, rh;
    pd_hello hl = {role, rank};
    pd_buf_init(&b);
    pd_hello_encode(&b, &hl);
    h.type = PD_MSG_HELLO;
    h.id = 1;
    int rc = pd_rpc(c, &h, b.p, b.len, &rh, buf, e);
    pd_buf_free(&b);
    *len = rc ? 0 : (size_t)rh.len;
    return rc;
}

/* The shared-memory connection a server's HELLO reply (reply[0..len))
 * offers, after a worker HELLO of rank 0 on it; NULL if it offers none. */
static inline pd_conn *rp_shm(const uint8_t *reply, size_t len, uint8_t *buf) {
    pd_rd r;
    uint32_t u;
    char name[PD_MAX_ADDR + 1] = "";
    pd_err e = {0};
    pd_rd_init(&r, reply, len);
    pd_get_u32(&r, &u), pd_get_u32(&r, &u), pd_get_u32(&r, &u);
    if (pd_get_str(&r, name, PD_MAX_ADDR) || !name[0]) return NULL;
    pd_conn *s = pd_shm_connect(name, PD_SHM_RING_DEFAULT, 5000, &e);
    if (!s) CHECK_FAIL_("shared memory: %s", e.msg);
    size_t n;
    if (rp_hello(s, PD_ROLE_WORKER, 0, buf, &n, &e)) CHECK_FAIL_("HELLO over shm: %s", e.msg);
    return s;
}

/* The servers' addresses from the coordinator's map: up to max of them
 * into addr; returns S. */
static inline uint32_t rp_map(const char *coord, char (*addr)[PD_MAX_ADDR + 1], uint32_t max,
                              uint8_t *buf) {
    pd_err e = {0};
    size_t n;
    pd_conn *c = rp_dial(coord);
    if (rp_hello(c, PD_ROLE_TOOL, -1, buf, &n, &e)) CHECK_FAIL_("HELLO %s: %s", coord, e.msg);
    pd_hdr h = {0}, rh;
    h.type = PD_MSG_MAP;
    h.id = 2;
    if (pd_rpc(c, &h, NULL, 0, &rh, buf, &e)) CHECK_FAIL_("MAP: %s", e.msg);
    pd_conn_destroy(c);
    pd_rd r;
    uint32_t u32, S;
    uint64_t u64;
    pd_rd_init(&r, buf, rh.len);
    pd_get_u32(&r, &u32), pd_get_u32(&r, &u32), pd_get_u32(&r, &S), pd_get_u64(&r, &u64);
    for (uint32_t k = 0; k < S && k < max; k++)
        if (pd_get_str(&r, addr[k], PD_MAX_ADDR)) CHECK_FAIL_("bad cluster map");
    if (r.bad) CHECK_FAIL_("bad cluster map");
    return S;
}

#endif
