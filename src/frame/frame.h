/*
 * frame.h - paramd frames over a connection: send one frame with a gathered
 * write, send an error reply, receive and validate a header, read a
 * control payload, and one request-reply exchange for control messages.
 *
 * This layer sits between the frame format (wire/wire.h: what a header and
 * a payload are, and how they are checked) and the transports
 * (net/conn.h: bytes and descriptors only).  Every role uses it: workers,
 * servers, the coordinator and the tools.  The one connection handshake
 * (HELLO) is built on it in frame/hello.h.
 */
#ifndef PARAMD_FRAME_FRAME_H
#define PARAMD_FRAME_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "net/conn.h"
#include "wire/wire.h"

/* Send one frame: the header (h->len is set from the parts) and up to
 * three payload parts, with one gathered write. */
int pd_send_frame(pd_conn *c, pd_hdr *h, const void *p1, size_t n1,
                  const void *p2, size_t n2, const void *p3, size_t n3,
                  pd_err *e);
/* Send an error reply for request `req`: status code, message payload. */
int pd_send_error(pd_conn *c, const pd_hdr *req, int code, const char *msg);
/* Receive and validate a header (pd_hdr_decode).  PARAMD_ECLOSED on a
 * clean close between frames. */
int pd_recv_hdr(pd_conn *c, pd_hdr *h, uint64_t max_payload, pd_err *e);
/* Read a control payload of h->len (<= PD_MAX_CTRL_PAYLOAD) into buf,
 * which must have room for PD_MAX_CTRL_PAYLOAD + 1 bytes; NUL-terminates. */
int pd_recv_payload(pd_conn *c, const pd_hdr *h, uint8_t *buf, pd_err *e);
/* One request-reply exchange for control messages (the caller serialises
 * use of the connection).  On success the reply header is in *rh and its
 * payload (NUL-terminated) in buf (PD_MAX_CTRL_PAYLOAD + 1 bytes).  An
 * error reply returns its status with the peer's message in e. */
int pd_rpc(pd_conn *c, pd_hdr *h, const void *payload, size_t len,
           pd_hdr *rh, uint8_t *buf, pd_err *e);

#endif
