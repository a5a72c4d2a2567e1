/*
 * fuzz_hdr.c - libFuzzer harness: the frame header (pd_hdr_decode).
 * Input: a u64 payload limit (little-endian) and then 40 header bytes.
 * Properties: decode never reads past the 40 bytes; a header it accepts
 * has the magic, the version, a known type, a length within the limit of
 * its kind and a clock >= 0; and it encodes back to the same 40 bytes.
 */
#include <string.h>

#include "../check.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 8 + PD_HDR_SIZE) return 0;
    uint64_t lim = pd_le64_get(data);
    uint8_t in[PD_HDR_SIZE], out[PD_HDR_SIZE];
    memcpy(in, data + 8, PD_HDR_SIZE);
    pd_hdr h;
    pd_err e = {0};
    if (pd_hdr_decode(in, &h, lim, &e) != 0) {
        CHECK(e.code != 0 && e.msg[0]);
        return 0;
    }
    CHECK(h.magic == PD_MAGIC && h.version == PD_PROTO_VERSION);
    CHECK(pd_msg_known(h.type) && h.clock >= 0);
    CHECK(h.len <= lim || h.len <= PD_MAX_BATCH_REPLY);
    pd_hdr_encode(&h, out);
    CHECK(memcmp(in, out, PD_HDR_SIZE) == 0);
    return 0;
}
