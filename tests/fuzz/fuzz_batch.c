/*
 * fuzz_batch.c - libFuzzer harness: BATCH payloads (pd_batch_parse and
 * pd_batch_next, wire.c), as a request and as a reply.  Properties: the
 * parser reads only the payload; an accepted request batch is a sequence
 * of inner frames of allowed types that covers the payload exactly, each
 * header re-decoding to what the item says.
 */
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > PD_MAX_BATCH) return 0;
    pd_batch_item *items = malloc((size / PD_HDR_SIZE + 1) * sizeof *items);
    CHECK(items != NULL);
    size_t n = 0;
    pd_err e = {0};
    if (pd_batch_parse(data, size, items, &n, &e) == 0) {
        CHECK(n >= 1 && n <= size / PD_HDR_SIZE);
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            CHECK(items[i].off == at + PD_HDR_SIZE);
            CHECK(pd_batch_allowed(items[i].h.type) && !(items[i].h.type & PD_REPLY));
            pd_hdr h;
            CHECK(pd_hdr_decode(data + at, &h, UINT64_MAX, &e) == 0);
            CHECK(h.len == items[i].h.len && h.type == items[i].h.type);
            at = items[i].off + (size_t)items[i].h.len;
        }
        CHECK(at == size);
    } else {
        CHECK(e.code != 0 && e.msg[0]);
    }
    /* As a reply: walk it frame by frame. */
    size_t off = 0;
    for (size_t i = 0; off < size; i++) {
        pd_hdr h;
        size_t before = off;
        if (pd_batch_next(data, size, &off, i, 1, &h, &e) != 0) {
            CHECK(off == before);
            break;
        }
        CHECK(off > before && off <= size && (h.type & PD_REPLY));
    }
    free(items);
    return 0;
}
