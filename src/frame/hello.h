/*
 * hello.h - the connection handshake: the one place where HELLO is
 * encoded, decoded and checked, for every role and every connection
 * (worker to coordinator and to each server, a worker's heartbeat
 * connection, server to coordinator, tools, the raw-peer test tools).
 *
 * The exchange.  The side that connects (the dialer) sends HELLO first:
 *
 *     HELLO payload   u32 role (PD_ROLE_*), i32 rank (-1: none yet),
 *                     u32 auth_len, auth_len bytes (0 in version 1)
 *
 * and nothing else until the answer.  The side that accepted (the
 * answerer) reads exactly one frame before anything else, checks it
 * against its rules (a known role it takes, a worker rank inside the
 * cluster), and replies either with an error (then closes) or with its
 * welcome:
 *
 *     from a server   u32 index, u32 S, u32 worker slots, str shm address
 *                     ("" if none or already on shared memory), u32
 *                     features (PD_FEAT_*), str host identity (net/host.h;
 *                     the last three optional for readers, and a reader
 *                     ignores bytes after the fields it knows: fields are
 *                     only ever added at the end within version 1)
 *     from the        empty
 *     coordinator
 *
 * Authentication goes here.  A cluster secret proven by challenge and
 * response belongs between the HELLO and the welcome, on both sides, in
 * pd_handshake_dial and pd_handshake_accept: nothing else in paramd reads
 * a frame from a connection before these return 0.  HELLO's auth_len
 * field is the room left for it in version 1 of the protocol (today it
 * must be 0).
 *
 * Neither function keeps state or locks anything: each runs on one
 * connection, on the thread that owns it.
 */
#ifndef PARAMD_FRAME_HELLO_H
#define PARAMD_FRAME_HELLO_H

#include <stdint.h>

#include "frame/frame.h"

typedef struct pd_hello {
    uint32_t role; /* PD_ROLE_* */
    int32_t rank;  /* a worker's rank, -1 for none */
} pd_hello;

/* What the answerer says about itself (a server; the coordinator's
 * welcome is empty: server = 0). */
typedef struct pd_welcome {
    int server;             /* 1: the fields below were sent */
    uint32_t index, S, W;   /* W: worker slots (ranks 0..W-1) */
    char shm[PD_MAX_ADDR + 1];
    uint32_t features;      /* PD_FEAT_* */
    char host[PD_MAX_ADDR + 1]; /* the server's host identity; "" if not
                                 * sent (an older server) */
} pd_welcome;

void pd_hello_encode(pd_buf *b, const pd_hello *h);
/* 0, or PARAMD_EPROTO with the reason: wrong length, authentication data
 * (not in version 1), an unknown role, a rank out of range. */
int pd_hello_decode(const void *p, size_t len, pd_hello *h, pd_err *e);
/* w->server selects the form: a server's fields, or nothing. */
void pd_welcome_encode(pd_buf *b, const pd_welcome *w);
/* An empty payload is the coordinator's welcome (server = 0); else a
 * server's, checked for its length and fields.  0 or PARAMD_EPROTO. */
int pd_welcome_decode(const void *p, size_t len, pd_welcome *w, pd_err *e);

/* Dial side: say HELLO as `me` on a fresh connection and read the answer
 * into *w (may be NULL).  0; the answerer's error with its message in e
 * (e.g. PARAMD_EWORKER for a rank outside the cluster); or an I/O or
 * protocol error. */
int pd_handshake_dial(pd_conn *c, const pd_hello *me, pd_welcome *w, pd_err *e);

/* Answer side's rules. */
typedef struct pd_hello_rules {
    const char *who;  /* "server", "coordinator": for messages */
    uint32_t roles;   /* PD_ROLE_BIT(...) of the roles accepted */
    int32_t workers;  /* a worker's rank must be in 0..workers-1 (0: any
                       * rank HELLO allows; the coordinator checks ranks
                       * at REG_WORKER) */
} pd_hello_rules;
#define PD_ROLE_BIT(role) (1u << (role))

/* Answer side: read the first frame of a fresh connection, which must be
 * a HELLO that `rules` accept; reply with `w` (NULL: an empty welcome)
 * and put the peer in *peer.  On refusal the peer gets an error reply,
 * one line is logged naming its address, and the code is returned with
 * the reason in e; PARAMD_ECLOSED (nothing logged or sent) if the peer
 * closed before saying anything. */
int pd_handshake_accept(pd_conn *c, const pd_hello_rules *rules,
                        const pd_welcome *w, pd_hello *peer, pd_err *e);

#endif
