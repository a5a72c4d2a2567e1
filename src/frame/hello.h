/*
 * hello.h - the connection handshake: the one place where HELLO is
 * encoded, decoded and checked, and where a connection is authenticated,
 * for every role and every connection (worker to coordinator and to each
 * server, a worker's heartbeat connection, server to coordinator, tools,
 * the shared-memory upgrade, the raw-peer test tools).
 *
 * The exchange.  The side that connects (the dialer) sends HELLO first:
 *
 *     HELLO payload   u32 role (PD_ROLE_*), i32 rank (-1: none yet),
 *                     u32 auth_len, auth_len bytes of auth:
 *                     nothing (auth_len 0), or u32 flags, then
 *                       PD_AUTH_CHALLENGE: 32-byte nonce (the dialer's)
 *                       PD_AUTH_TICKET:    u32 gen, 32-byte MAC (the
 *                                          worker's rank ticket, auth.h)
 *                     then, optional, u32 op_timeout_ms (the dialer's
 *                     deadline for waits held for it, 1..PD_OP_TIMEOUT_MAX;
 *                     sent only when set, so a HELLO without one is what
 *                     it was before the field came)
 *
 * and nothing else until the answer.  The side that accepted (the
 * answerer) reads exactly that one frame first.  With a cluster secret
 * (both sides must have one, or neither) the exchange then goes on, so
 * that each side proves it knows the secret before the other tells it
 * anything:
 *
 *     answerer -> HELLO reply:  u32 flags (1), 32-byte nonce_s,
 *                               proof_s = MAC(K, "answer", HELLO, nonce_s)
 *     dialer checks proof_s (a fake server or coordinator stops here),
 *            -> AUTH:           proof_d = MAC(K, "dial", HELLO, nonce_s,
 *                                             proof_s)
 *     answerer checks proof_d, then everything below, then
 *            -> AUTH reply:     the welcome
 *
 * Without a secret the HELLO reply is the welcome itself.  Both nonces are
 * fresh random bytes, so a captured handshake replayed in either direction
 * fails: its proof covers a nonce the other side never sent again.
 *
 * The answerer's checks, in this order, all before the welcome: the
 * secret as above; a known role it takes; a worker rank inside the
 * cluster; the rank ticket (rules->grant: a ticket shown must be the
 * coordinator's; rules->need_ticket: a worker must show one); then the
 * caller's own check (rules->claim: a server refuses a ticket older than
 * the newest it saw for that rank).  Any refusal is an error reply, one
 * line logged with the peer's address, and the connection is the
 * caller's to close.  The welcome:
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
 * Nothing else in paramd reads a frame from a connection before these
 * functions return 0.  What is not done here: the connection is
 * authenticated once, not encrypted or integrity-protected after the
 * handshake (docs/security.md, "Across a network").
 *
 * Deadline.  The exchange reads at most two frames; the caller bounds the
 * whole of it by the connection's deadline_ms (the server's and the
 * coordinator's --handshake-timeout-ms, frame/admit.h, docs/limits.md),
 * so a peer that trickles its handshake in is dropped in time.
 *
 * Neither function keeps state or locks anything (rules->claim may): each
 * runs on one connection, on the thread that owns it.
 */
#ifndef PARAMD_FRAME_HELLO_H
#define PARAMD_FRAME_HELLO_H

#include <stdint.h>

#include "frame/auth.h"
#include "frame/frame.h"

/* HELLO auth flags. */
#define PD_AUTH_CHALLENGE 1u /* a 32-byte nonce follows: the secret is in use */
#define PD_AUTH_TICKET 2u    /* a rank ticket follows */
#define PD_AUTH_MAX (4 + PD_NONCE_BYTES + 4 + PD_MAC_BYTES) /* auth_len */
/* The answerer's challenge (its HELLO reply with a secret). */
#define PD_CHALLENGE_BYTES (4 + PD_NONCE_BYTES + PD_MAC_BYTES)

/* The largest deadline a HELLO may carry (the client's op_timeout_ms). */
#define PD_OP_TIMEOUT_MAX 3600000u

typedef struct pd_hello {
    uint32_t role;  /* PD_ROLE_* */
    int32_t rank;   /* a worker's rank, -1 for none */
    int has_ticket; /* PD_AUTH_TICKET: ticket below */
    pd_ticket ticket;
    int challenge;  /* PD_AUTH_CHALLENGE: nonce below (set by the dial) */
    uint8_t nonce[PD_NONCE_BYTES];
    uint32_t op_timeout_ms; /* 0: none; else a wait held for this peer (a
                             * sync pull, a barrier, a table or a join)
                             * ends after this long with PARAMD_ETIMEDOUT */
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
/* 0, or PARAMD_EPROTO with the reason: wrong length, unknown auth flags
 * or an auth field of the wrong size, an unknown role, a rank out of
 * range, a deadline of 0 or over PD_OP_TIMEOUT_MAX. */
int pd_hello_decode(const void *p, size_t len, pd_hello *h, pd_err *e);
/* w->server selects the form: a server's fields, or nothing. */
void pd_welcome_encode(pd_buf *b, const pd_welcome *w);
/* An empty payload is the coordinator's welcome (server = 0); else a
 * server's, checked for its length and fields.  0 or PARAMD_EPROTO. */
int pd_welcome_decode(const void *p, size_t len, pd_welcome *w, pd_err *e);

/* Dial side: say HELLO as `me` (role, rank and, for a worker that
 * registered, its ticket) on a fresh connection, prove knowledge of `key`
 * (NULL: no secret) and check the answerer's proof, and read the welcome
 * into *w (may be NULL).  0; PARAMD_EAUTH if the answerer did not prove
 * the same secret (or wants one this side lacks); the answerer's error
 * with its message in e (e.g. PARAMD_EWORKER for a rank outside the
 * cluster); or an I/O or protocol error. */
int pd_handshake_dial(pd_conn *c, const pd_hello *me, const pd_key *key, pd_welcome *w,
                      pd_err *e);

/* Answer side's rules. */
typedef struct pd_hello_rules {
    const char *who;  /* "server", "coordinator": for messages */
    uint32_t roles;   /* PD_ROLE_BIT(...) of the roles accepted */
    int32_t workers;  /* a worker's rank must be in 0..workers-1 (0: any
                       * rank HELLO allows; the coordinator checks ranks
                       * at REG_WORKER) */
    const pd_key *key;    /* the cluster secret; NULL: none */
    const pd_key *grant;  /* checks rank tickets; NULL: tickets ignored */
    int need_ticket;      /* a worker must show a valid ticket */
    /* Called last, before the welcome: 0 to accept, else an error code
     * with the reason in e (then refused like any other check). */
    int (*claim)(void *arg, const pd_hello *peer, pd_err *e);
    void *claim_arg;
} pd_hello_rules;
#define PD_ROLE_BIT(role) (1u << (role))

/* Answer side: read the first frame of a fresh connection, which must be
 * a HELLO that `rules` accept (the secret's exchange included); reply with
 * `w` (NULL: an empty welcome) and put the peer in *peer.  On refusal the
 * peer gets an error reply, one line is logged naming its address, and
 * the code is returned with the reason in e; PARAMD_ECLOSED (nothing
 * logged or sent) if the peer closed before saying anything. */
int pd_handshake_accept(pd_conn *c, const pd_hello_rules *rules,
                        const pd_welcome *w, pd_hello *peer, pd_err *e);

#endif
