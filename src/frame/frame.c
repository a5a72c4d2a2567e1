/*
 * frame.c - frames over a connection (see frame.h).
 *
 * Frames are written with one gathered write of header + payload parts, so
 * a frame is never interleaved with another on the same connection as long
 * as writers hold the connection's send lock (the client does).
 */
#include "frame/frame.h"

#include <string.h>

int pd_send_frame(pd_conn *c, pd_hdr *h, const void *p1, size_t n1,
                  const void *p2, size_t n2, const void *p3, size_t n3,
                  pd_err *e) {
    uint8_t hb[PD_HDR_SIZE];
    struct iovec iov[4];
    int cnt = 0;
    h->magic = PD_MAGIC;
    h->version = PD_PROTO_VERSION;
    h->len = n1 + n2 + n3;
    pd_hdr_encode(h, hb);
    iov[cnt++] = (struct iovec){hb, PD_HDR_SIZE};
    if (n1) iov[cnt++] = (struct iovec){(void *)p1, n1};
    if (n2) iov[cnt++] = (struct iovec){(void *)p2, n2};
    if (n3) iov[cnt++] = (struct iovec){(void *)p3, n3};
    return pd_conn_writev(c, iov, cnt, e);
}

int pd_send_error(pd_conn *c, const pd_hdr *req, int code, const char *msg) {
    pd_hdr h = {0};
    h.type = (uint16_t)((req ? req->type : 0) | PD_REPLY);
    if (!pd_msg_known(h.type)) h.type = PD_MSG_HELLO | PD_REPLY;
    h.id = req ? req->id : 0;
    h.table = req ? req->table : 0;
    h.clock = req && req->clock >= 0 ? req->clock : 0;
    h.status = code;
    size_t n = strlen(msg);
    if (n > PD_MAX_ERRTEXT) n = PD_MAX_ERRTEXT;
    return pd_send_frame(c, &h, msg, n, NULL, 0, NULL, 0, NULL);
}

int pd_recv_hdr(pd_conn *c, pd_hdr *h, uint64_t max_payload, pd_err *e) {
    uint8_t hb[PD_HDR_SIZE];
    int rc = pd_conn_read(c, hb, PD_HDR_SIZE, 1, e);
    if (rc) return rc;
    return pd_hdr_decode(hb, h, max_payload, e);
}

int pd_recv_payload(pd_conn *c, const pd_hdr *h, uint8_t *buf, pd_err *e) {
    if (h->len > PD_MAX_CTRL_PAYLOAD)
        return pd_seterr(e, PARAMD_ETOOBIG, "control payload too large");
    int rc = pd_conn_read(c, buf, (size_t)h->len, 0, e);
    if (rc) return rc;
    buf[h->len] = '\0';
    return 0;
}

int pd_rpc(pd_conn *c, pd_hdr *h, const void *payload, size_t len,
           pd_hdr *rh, uint8_t *buf, pd_err *e) {
    int rc = pd_send_frame(c, h, payload, len, NULL, 0, NULL, 0, e);
    if (rc) return rc;
    rc = pd_recv_hdr(c, rh, PD_MAX_CTRL_PAYLOAD, e);
    if (rc == PARAMD_ECLOSED)
        return pd_seterr(e, PARAMD_ECLOSED, "%s closed the connection "
                         "while a %s was pending", c->peer, pd_msg_name(h->type));
    if (rc) return rc;
    rc = pd_recv_payload(c, rh, buf, e);
    if (rc) return rc;
    if (rh->type != (h->type | PD_REPLY) || rh->id != h->id)
        return pd_seterr(e, PARAMD_EPROTO,
                         "%s answered %s id %llu to %s id %llu", c->peer,
                         pd_msg_name(rh->type), (unsigned long long)rh->id,
                         pd_msg_name(h->type), (unsigned long long)h->id);
    if (rh->status < 0)
        return pd_seterr(e, rh->status, "%s", (const char *)buf);
    return 0;
}
