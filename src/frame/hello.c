/*
 * hello.c - the connection handshake (see hello.h): HELLO, challenge and
 * welcome codecs, the dialer's exchange and the answerer's checks.  The
 * MACs and the secret are auth.c's.
 */
#include "frame/hello.h"

#include <string.h>

/* The labels of the two proofs: each side's proof is over a label the
 * other side never uses, so neither can be reflected back. */
#define LABEL_ANSWER "paramd v1 handshake: answerer"
#define LABEL_DIAL "paramd v1 handshake: dialer"

/* ==== Codecs ============================================================ */

void pd_hello_encode(pd_buf *b, const pd_hello *h) {
    uint32_t flags = (h->challenge ? PD_AUTH_CHALLENGE : 0) | (h->has_ticket ? PD_AUTH_TICKET : 0);
    pd_put_u32(b, h->role);
    pd_put_u32(b, (uint32_t)h->rank);
    if (!flags) {
        pd_put_u32(b, 0); /* auth_len */
    } else {
        pd_put_u32(b, 4 + (h->challenge ? PD_NONCE_BYTES : 0) +
                          (h->has_ticket ? 4 + PD_MAC_BYTES : 0));
        pd_put_u32(b, flags);
        if (h->challenge) pd_put_bytes(b, h->nonce, PD_NONCE_BYTES);
        if (h->has_ticket) {
            pd_put_u32(b, h->ticket.gen);
            pd_put_bytes(b, h->ticket.mac, PD_MAC_BYTES);
        }
    }
    /* only when set: an older answerer refuses bytes it does not know */
    if (h->op_timeout_ms) pd_put_u32(b, h->op_timeout_ms);
}

int pd_hello_decode(const void *p, size_t len, pd_hello *h, pd_err *e) {
    pd_rd r;
    uint32_t rank, auth, flags = 0;
    memset(h, 0, sizeof *h);
    pd_rd_init(&r, p, len);
    pd_get_u32(&r, &h->role);
    pd_get_u32(&r, &rank);
    pd_get_u32(&r, &auth);
    if (!r.bad && auth > 0) {
        pd_get_u32(&r, &flags);
        size_t want = 4 + ((flags & PD_AUTH_CHALLENGE) ? PD_NONCE_BYTES : 0) +
                      ((flags & PD_AUTH_TICKET) ? 4 + PD_MAC_BYTES : 0);
        if (r.bad || (flags & ~(PD_AUTH_CHALLENGE | PD_AUTH_TICKET)) || flags == 0 ||
            auth != want)
            return pd_seterr(e, PARAMD_EPROTO, "malformed HELLO (auth field of %u bytes, "
                             "flags 0x%x)", auth, flags);
        h->challenge = (flags & PD_AUTH_CHALLENGE) != 0;
        h->has_ticket = (flags & PD_AUTH_TICKET) != 0;
        if (h->challenge) pd_get_bytes(&r, h->nonce, PD_NONCE_BYTES);
        if (h->has_ticket) {
            pd_get_u32(&r, &h->ticket.gen);
            pd_get_bytes(&r, h->ticket.mac, PD_MAC_BYTES);
        }
    }
    if (!r.bad && r.off < r.len) {
        pd_get_u32(&r, &h->op_timeout_ms);
        if (!r.bad && (h->op_timeout_ms == 0 || h->op_timeout_ms > PD_OP_TIMEOUT_MAX))
            return pd_seterr(e, PARAMD_EPROTO, "HELLO with a deadline of %u ms (1..%u)",
                             h->op_timeout_ms, PD_OP_TIMEOUT_MAX);
    }
    if (!pd_rd_done(&r))
        return pd_seterr(e, PARAMD_EPROTO, "malformed HELLO (%zu bytes)", len);
    h->rank = (int32_t)rank;
    if (h->role < PD_ROLE_WORKER || h->role > PD_ROLE_TOOL)
        return pd_seterr(e, PARAMD_EPROTO, "HELLO with unknown role %u", h->role);
    if (h->rank < -1 || h->rank >= PD_MAX_WORKERS)
        return pd_seterr(e, PARAMD_EPROTO, "HELLO with bad rank %d", h->rank);
    return 0;
}

void pd_welcome_encode(pd_buf *b, const pd_welcome *w) {
    if (!w || !w->server) return;
    pd_put_u32(b, w->index);
    pd_put_u32(b, w->S);
    pd_put_u32(b, w->W);
    pd_put_str(b, w->shm);
    pd_put_u32(b, w->features);
    pd_put_str(b, w->host);
}

int pd_welcome_decode(const void *p, size_t len, pd_welcome *w, pd_err *e) {
    memset(w, 0, sizeof *w);
    if (len == 0) return 0; /* the coordinator's */
    pd_rd r;
    pd_rd_init(&r, p, len);
    pd_get_u32(&r, &w->index);
    pd_get_u32(&r, &w->S);
    pd_get_u32(&r, &w->W);
    /* The shared-memory address and the features came later: optional. */
    if (!r.bad && r.off < r.len) pd_get_str(&r, w->shm, PD_MAX_ADDR);
    if (!r.bad && r.off < r.len) pd_get_u32(&r, &w->features);
    if (!r.bad && r.off < r.len) pd_get_str(&r, w->host, PD_MAX_ADDR);
    if (!r.bad) r.off = r.len; /* fields added later: not ours to read */
    if (!pd_rd_done(&r) || w->S == 0 || w->index >= w->S || w->W == 0)
        return pd_seterr(e, PARAMD_EPROTO, "malformed HELLO reply (%zu bytes)", len);
    w->server = 1;
    return 0;
}

/* ==== The exchange ====================================================== */

static const char *role_name(uint32_t role) {
    return role == PD_ROLE_WORKER ? "worker" : role == PD_ROLE_SERVER ? "server" : "tool";
}

int pd_handshake_dial(pd_conn *c, const pd_hello *me, const pd_key *key, pd_welcome *w,
                      pd_err *e) {
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    pd_hello h = *me;
    pd_buf b;
    pd_hdr q = {0}, rh;
    h.challenge = key != NULL;
    if (key) pd_random_bytes(h.nonce, sizeof h.nonce);
    pd_buf_init(&b);
    pd_hello_encode(&b, &h);
    q.type = PD_MSG_HELLO;
    q.id = 1;
    int rc = !buf || b.oom ? pd_seterr(e, PARAMD_ENOMEM, "out of memory")
                           : pd_rpc(c, &q, b.p, b.len, &rh, buf, e);
    if (rc == 0 && key) {
        /* The answerer's challenge: its nonce and its proof over ours. */
        uint8_t proof[PD_MAC_BYTES];
        pd_rd r;
        uint32_t flags = 0;
        pd_rd_init(&r, buf, (size_t)rh.len);
        pd_get_u32(&r, &flags);
        uint8_t nonce_s[PD_NONCE_BYTES], proof_s[PD_MAC_BYTES];
        pd_get_bytes(&r, nonce_s, sizeof nonce_s);
        pd_get_bytes(&r, proof_s, sizeof proof_s);
        if (!pd_rd_done(&r) || flags != 1) {
            rc = pd_seterr(e, PARAMD_EAUTH,
                           "the peer answered HELLO without authenticating itself: it "
                           "runs without a cluster secret (no --secret-file?) or is not "
                           "a paramd of this cluster; not talking to it");
        } else {
            pd_mac(key, LABEL_ANSWER, b.p, b.len, nonce_s, sizeof nonce_s, NULL, 0, proof);
            if (!pd_mac_equal(proof, proof_s))
                rc = pd_seterr(e, PARAMD_EAUTH,
                               "the peer did not prove it knows the cluster secret (its "
                               "secret file is not this one, or it is not a paramd of "
                               "this cluster); not talking to it");
        }
        if (rc == 0) {
            pd_mac(key, LABEL_DIAL, b.p, b.len, nonce_s, sizeof nonce_s, proof_s,
                   sizeof proof_s, proof);
            q = (pd_hdr){0};
            q.type = PD_MSG_AUTH;
            q.id = 2;
            rc = pd_rpc(c, &q, proof, sizeof proof, &rh, buf, e);
        }
    }
    pd_buf_free(&b);
    pd_welcome ignored;
    if (rc == 0) rc = pd_welcome_decode(buf, (size_t)rh.len, w ? w : &ignored, e);
    pd_free(buf);
    return rc;
}

/* The secret's half of the answerer: challenge, then the dialer's proof
 * on the next frame (whose header goes to *last, for the reply).  hello
 * is the HELLO payload as received; *sent says the challenge went out. */
static int answer_challenge(pd_conn *c, const pd_hello_rules *rules, const pd_hello *peer,
                            const uint8_t *hello, size_t hello_len, pd_hdr *last,
                            uint8_t *buf, int *sent, pd_err *e) {
    if (!peer->challenge)
        return pd_seterr(e, PARAMD_EAUTH,
                         "this %s requires the cluster secret, and the peer gave none: "
                         "give it the coordinator's secret file (--secret-file FILE or "
                         "PARAMD_SECRET_FILE; a program on libparamd: secret_file=FILE)",
                         rules->who);
    uint8_t ch[PD_CHALLENGE_BYTES];
    uint8_t *nonce_s = ch + 4, *proof_s = ch + 4 + PD_NONCE_BYTES;
    pd_le32_put(ch, 1);
    pd_random_bytes(nonce_s, PD_NONCE_BYTES);
    pd_mac(rules->key, LABEL_ANSWER, hello, hello_len, nonce_s, PD_NONCE_BYTES, NULL, 0,
           proof_s);
    pd_hdr rh = {0};
    rh.type = PD_MSG_HELLO | PD_REPLY;
    rh.id = last->id;
    int rc = pd_send_frame(c, &rh, ch, sizeof ch, NULL, 0, NULL, 0, e);
    if (rc) return rc;
    *sent = 1;
    if ((rc = pd_recv_hdr(c, last, PD_MAX_CTRL_PAYLOAD, e))) return rc;
    if (last->type != PD_MSG_AUTH)
        return pd_seterr(e, PARAMD_EPROTO, "%s after HELLO, not AUTH", pd_msg_name(last->type));
    if ((rc = pd_recv_payload(c, last, buf, e))) return rc;
    uint8_t want[PD_MAC_BYTES];
    pd_mac(rules->key, LABEL_DIAL, hello, hello_len, nonce_s, PD_NONCE_BYTES, proof_s,
           PD_MAC_BYTES, want);
    if (last->len != PD_MAC_BYTES || !pd_mac_equal(want, buf))
        return pd_seterr(e, PARAMD_EAUTH,
                         "authentication failed: the peer does not know the cluster "
                         "secret (another secret file, or a replayed handshake)");
    return 0;
}

int pd_handshake_accept(pd_conn *c, const pd_hello_rules *rules,
                        const pd_welcome *w, pd_hello *peer, pd_err *e) {
    /* (Deadline hook: a limit on the whole handshake goes here.) */
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    uint8_t hello[PD_HDR_SIZE + 12 + PD_AUTH_MAX];
    size_t hello_len = 0;
    int challenged = 0;
    pd_hdr h = {0};
    int rc = buf ? pd_recv_hdr(c, &h, PD_MAX_CTRL_PAYLOAD, e)
                 : pd_seterr(e, PARAMD_ENOMEM, "out of memory");
    if (rc == 0 && h.type != PD_MSG_HELLO)
        rc = pd_seterr(e, PARAMD_EPROTO, "first frame is %s, not HELLO",
                       pd_msg_name(h.type));
    if (rc == 0) rc = pd_recv_payload(c, &h, buf, e);
    if (rc == 0) rc = pd_hello_decode(buf, (size_t)h.len, peer, e);
    if (rc == 0) { /* decoded: at most 12 + PD_AUTH_MAX bytes */
        hello_len = (size_t)h.len;
        memcpy(hello, buf, hello_len);
    }
    if (rc == 0 && rules->key)
        rc = answer_challenge(c, rules, peer, hello, hello_len, &h, buf, &challenged, e);
    else if (rc == 0 && peer->challenge)
        rc = pd_seterr(e, PARAMD_EAUTH,
                       "this %s runs without a cluster secret (no --secret-file), but "
                       "the peer has one: start every process of the cluster with the "
                       "same secret file",
                       rules->who);
    if (rc == 0 && !(rules->roles & PD_ROLE_BIT(peer->role)))
        rc = pd_seterr(e, PARAMD_EPROTO, "a %s does not take connections from a %s",
                       rules->who, role_name(peer->role));
    if (rc == 0 && peer->role == PD_ROLE_WORKER && rules->workers > 0 &&
        (peer->rank < 0 || peer->rank >= rules->workers))
        rc = pd_seterr(e, PARAMD_EWORKER, "worker rank %d is not in 0..%d of this cluster",
                       peer->rank, rules->workers - 1);
    if (rc == 0 && peer->has_ticket && rules->grant &&
        (peer->role != PD_ROLE_WORKER || peer->rank < 0 ||
         !pd_ticket_ok(rules->grant, peer->rank, &peer->ticket)))
        rc = pd_seterr(e, PARAMD_EWORKER,
                       "the ticket shown for rank %d is not one this cluster's "
                       "coordinator gave", peer->rank);
    if (rc == 0 && rules->need_ticket && peer->role == PD_ROLE_WORKER &&
        (!peer->has_ticket || !rules->grant))
        rc = pd_seterr(e, PARAMD_EWORKER,
                       "a worker's connection to a %s must show the ticket the "
                       "coordinator gave it for rank %d (register with the "
                       "coordinator first: paramd_connect does)",
                       rules->who, peer->rank);
    if (rc == 0 && rules->claim) rc = rules->claim(rules->claim_arg, peer, e);
    pd_wipe(hello, sizeof hello);
    pd_free(buf);
    if (rc) {
        /* A refused peer is logged once, with its address.  A peer that
         * leaves between our challenge and its proof is one too: a dialer
         * with another secret finds our proof wrong and closes without a
         * word (so that a fake answerer learns nothing), and that is the
         * only trace of it here; unless this side shut the connection
         * (evicted, stopping: frame/admit.h counts those).  Nothing
         * secret-derived is logged. */
        int peer_left = (rc == PARAMD_ECLOSED || rc == PARAMD_EIO) &&
                        !__atomic_load_n(&c->shut, __ATOMIC_ACQUIRE);
        if (challenged && peer_left)
            pd_log(PD_LOG_WARN, "closing connection from %s: it %s during authentication, "
                   "before proving it knows the cluster secret (a peer with another "
                   "secret file does that when it checks this %s's proof)",
                   c->peer, rc == PARAMD_ECLOSED ? "closed the connection" : "broke off",
                   rules->who);
        else if (rc != PARAMD_ECLOSED)
            pd_log(PD_LOG_WARN, "closing connection from %s: %s", c->peer, e->msg);
        if (rc != PARAMD_ECLOSED && rc != PARAMD_EIO) pd_send_error(c, &h, rc, e->msg);
        return rc;
    }
    pd_buf b;
    pd_buf_init(&b);
    pd_welcome_encode(&b, w);
    pd_hdr rh = {0};
    rh.type = h.type | PD_REPLY; /* HELLO's, or with a secret AUTH's */
    rh.id = h.id;
    rc = b.oom ? pd_seterr(e, PARAMD_ENOMEM, "out of memory")
               : pd_send_frame(c, &rh, b.p, b.len, NULL, 0, NULL, 0, e);
    pd_buf_free(&b);
    return rc;
}
