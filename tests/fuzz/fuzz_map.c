/*
 * fuzz_map.c - libFuzzer harness: the cluster map codec (wire/map.c).
 * Properties: decode reads only the payload and allocates no more than
 * the payload can describe (each address takes at least its 2-byte
 * length); an accepted map is in range and survives encode and decode
 * unchanged; on failure nothing is left allocated (LeakSanitizer).
 */
#include <string.h>

#include "../check.h"
#include "wire/map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pd_map m, m2;
    pd_err e = {0};
    if (pd_map_decode(data, size, &m, &e) != 0) {
        CHECK(m.addr == NULL);
        return 0;
    }
    CHECK(m.S >= 1 && m.S <= PD_MAX_SERVERS && m.W >= 1 && m.S <= size / 2);
    if (m.rank >= 0) CHECK(m.M >= m.W && (uint32_t)m.rank < m.M && m.start >= 0);
    pd_buf b;
    pd_buf_init(&b);
    pd_map_encode(&b, &m);
    CHECK(!b.oom);
    CHECK(pd_map_decode(b.p, b.len, &m2, &e) == 0);
    CHECK(m2.rank == m.rank && m2.W == m.W && m2.S == m.S && m2.epoch == m.epoch);
    for (uint32_t i = 0; i < m.S; i++) CHECK(strcmp(m.addr[i], m2.addr[i]) == 0);
    if (m.rank >= 0)
        CHECK(m2.heartbeat_ms == m.heartbeat_ms && m2.M == m.M && m2.start == m.start &&
              m2.has_ticket == m.has_ticket && m2.barriers == m.barriers);
    pd_buf_free(&b);
    pd_map_free(&m);
    pd_map_free(&m2);
    return 0;
}
