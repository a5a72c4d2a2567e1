/*
 * fuzz_hello.c - libFuzzer harness: the handshake's codecs
 * (frame/hello.c): HELLO (with its challenge nonce and rank ticket, when
 * present) and the welcome.  The first byte picks which;
 * the rest is the payload.  Properties: decoders read only the payload;
 * what they accept is in range and survives encode and decode unchanged.
 */
#include <string.h>

#include "../check.h"
#include "frame/hello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    pd_err e = {0};
    pd_buf b;
    pd_buf_init(&b);
    if (data[0] & 1) {
        pd_hello h, h2;
        if (pd_hello_decode(p, n, &h, &e) == 0) {
            CHECK(h.role >= PD_ROLE_WORKER && h.role <= PD_ROLE_TOOL);
            CHECK(h.rank >= -1 && h.rank < PD_MAX_WORKERS);
            pd_hello_encode(&b, &h);
            CHECK(pd_hello_decode(b.p, b.len, &h2, &e) == 0);
            CHECK(h2.role == h.role && h2.rank == h.rank);
            CHECK(h2.has_ticket == h.has_ticket && h2.challenge == h.challenge);
            CHECK(h2.op_timeout_ms == h.op_timeout_ms);
            if (h.has_ticket)
                CHECK(h2.ticket.gen == h.ticket.gen &&
                      !memcmp(h2.ticket.mac, h.ticket.mac, sizeof h.ticket.mac));
            if (h.challenge) CHECK(!memcmp(h2.nonce, h.nonce, sizeof h.nonce));
        }
    } else {
        pd_welcome w, w2;
        if (pd_welcome_decode(p, n, &w, &e) == 0) {
            if (w.server) {
                CHECK(w.S >= 1 && w.index < w.S && w.W >= 1);
                CHECK(strlen(w.shm) <= PD_MAX_ADDR);
            }
            pd_welcome_encode(&b, &w);
            CHECK(pd_welcome_decode(b.p, b.len, &w2, &e) == 0);
            CHECK(w2.server == w.server && w2.index == w.index && w2.S == w.S);
            CHECK(w2.W == w.W && w2.features == w.features && !strcmp(w2.shm, w.shm));
        }
    }
    pd_buf_free(&b);
    return 0;
}
