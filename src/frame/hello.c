/*
 * hello.c - the connection handshake (see hello.h): HELLO and welcome
 * codecs, the dialer's exchange and the answerer's checks.
 */
#include "frame/hello.h"

#include <string.h>

/* ==== Codecs ============================================================ */

void pd_hello_encode(pd_buf *b, const pd_hello *h) {
    pd_put_u32(b, h->role);
    pd_put_u32(b, (uint32_t)h->rank);
    pd_put_u32(b, 0); /* auth_len: no authentication in version 1 */
}

int pd_hello_decode(const void *p, size_t len, pd_hello *h, pd_err *e) {
    pd_rd r;
    uint32_t rank, auth;
    pd_rd_init(&r, p, len);
    pd_get_u32(&r, &h->role);
    pd_get_u32(&r, &rank);
    pd_get_u32(&r, &auth);
    if (!pd_rd_done(&r) || auth != 0)
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

int pd_handshake_dial(pd_conn *c, const pd_hello *me, pd_welcome *w, pd_err *e) {
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    pd_buf b;
    pd_hdr h = {0}, rh;
    pd_buf_init(&b);
    pd_hello_encode(&b, me);
    h.type = PD_MSG_HELLO;
    h.id = 1;
    int rc = !buf || b.oom ? pd_seterr(e, PARAMD_ENOMEM, "out of memory")
                           : pd_rpc(c, &h, b.p, b.len, &rh, buf, e);
    pd_buf_free(&b);
    /* (Authentication: the dialer's half of the challenge goes here.) */
    pd_welcome ignored;
    if (rc == 0) rc = pd_welcome_decode(buf, (size_t)rh.len, w ? w : &ignored, e);
    pd_free(buf);
    return rc;
}

int pd_handshake_accept(pd_conn *c, const pd_hello_rules *rules,
                        const pd_welcome *w, pd_hello *peer, pd_err *e) {
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    pd_hdr h = {0};
    int rc = buf ? pd_recv_hdr(c, &h, PD_MAX_CTRL_PAYLOAD, e)
                 : pd_seterr(e, PARAMD_ENOMEM, "out of memory");
    if (rc == 0 && h.type != PD_MSG_HELLO)
        rc = pd_seterr(e, PARAMD_EPROTO, "first frame is %s, not HELLO",
                       pd_msg_name(h.type));
    if (rc == 0) rc = pd_recv_payload(c, &h, buf, e);
    if (rc == 0) rc = pd_hello_decode(buf, (size_t)h.len, peer, e);
    if (rc == 0 && !(rules->roles & PD_ROLE_BIT(peer->role)))
        rc = pd_seterr(e, PARAMD_EPROTO, "a %s does not take connections from a %s",
                       rules->who,
                       peer->role == PD_ROLE_WORKER   ? "worker"
                       : peer->role == PD_ROLE_SERVER ? "server"
                                                      : "tool");
    if (rc == 0 && peer->role == PD_ROLE_WORKER && rules->workers > 0 &&
        (peer->rank < 0 || peer->rank >= rules->workers))
        rc = pd_seterr(e, PARAMD_EWORKER, "worker rank %d is not in 0..%d of this cluster",
                       peer->rank, rules->workers - 1);
    /* (Authentication: the answerer's half of the challenge goes here,
     * before the welcome tells the peer anything.) */
    pd_free(buf);
    if (rc) {
        if (rc != PARAMD_ECLOSED) {
            pd_log(PD_LOG_WARN, "closing connection from %s: %s", c->peer, e->msg);
            if (rc != PARAMD_EIO) pd_send_error(c, &h, rc, e->msg);
        }
        return rc;
    }
    pd_buf b;
    pd_buf_init(&b);
    pd_welcome_encode(&b, w);
    pd_hdr rh = {0};
    rh.type = PD_MSG_HELLO | PD_REPLY;
    rh.id = h.id;
    rc = b.oom ? pd_seterr(e, PARAMD_ENOMEM, "out of memory")
               : pd_send_frame(c, &rh, b.p, b.len, NULL, 0, NULL, 0, e);
    pd_buf_free(&b);
    return rc;
}
