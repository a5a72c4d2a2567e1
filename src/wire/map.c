/*
 * map.c - the cluster map's codec (see map.h).
 */
#include "wire/map.h"

#include <string.h>

void pd_map_encode(pd_buf *b, const pd_map *m) {
    pd_put_u32(b, (uint32_t)m->rank); /* -1: UINT32_MAX */
    pd_put_u32(b, m->W);
    pd_put_u32(b, m->S);
    pd_put_u64(b, m->epoch);
    for (uint32_t i = 0; i < m->S; i++) pd_put_str(b, m->addr[i]);
    if (m->rank < 0) return;
    pd_put_u32(b, m->heartbeat_ms);
    pd_put_u32(b, m->M);
    pd_put_u64(b, (uint64_t)m->start);
    if (!m->has_ticket) return;
    pd_put_u32(b, m->ticket_gen);
    pd_put_bytes(b, m->ticket, PD_MAP_TICKET_BYTES);
    pd_put_u64(b, m->barriers);
    pd_put_u32(b, m->rejoin_ms);
    pd_put_u32(b, m->replace_ms);
    pd_put_u32(b, m->replicas);
}

int pd_map_decode(const void *p, size_t len, pd_map *m, pd_err *e) {
    pd_rd r;
    uint32_t rank;
    memset(m, 0, sizeof *m);
    pd_rd_init(&r, p, len);
    pd_get_u32(&r, &rank);
    pd_get_u32(&r, &m->W);
    pd_get_u32(&r, &m->S);
    pd_get_u64(&r, &m->epoch);
    m->rank = (int32_t)rank;
    if (r.bad || m->W == 0 || m->S == 0 || m->S > PD_MAX_SERVERS ||
        (m->rank < 0 && m->rank != -1))
        goto bad;
    /* Each address takes at least its 2-byte length: a count that lies is
     * caught before anything is allocated for it. */
    if (m->S > (r.len - r.off) / 2) goto bad;
    m->addr = pd_calloc(m->S, sizeof *m->addr);
    if (!m->addr) return pd_seterr(e, PARAMD_ENOMEM, "out of memory for the cluster map");
    for (uint32_t i = 0; i < m->S; i++)
        if (pd_get_str(&r, m->addr[i], PD_MAX_ADDR)) goto bad;
    if (m->rank >= 0) {
        uint64_t start = 0;
        pd_get_u32(&r, &m->heartbeat_ms);
        pd_get_u32(&r, &m->M);
        pd_get_u64(&r, &start);
        if (r.bad || m->heartbeat_ms > 86400000 || m->M < m->W ||
            (uint32_t)m->rank >= m->M || m->M > PD_MAX_WORKERS || start > (uint64_t)INT64_MAX)
            goto bad;
        m->start = (int64_t)start;
        if (r.off < r.len) {
            m->has_ticket = 1;
            pd_get_u32(&r, &m->ticket_gen);
            pd_get_bytes(&r, m->ticket, PD_MAP_TICKET_BYTES);
            if (!r.bad && r.off < r.len) pd_get_u64(&r, &m->barriers);
            if (!r.bad && r.off < r.len) pd_get_u32(&r, &m->rejoin_ms);
            if (!r.bad && r.off < r.len) pd_get_u32(&r, &m->replace_ms);
            if (!r.bad && r.off < r.len) pd_get_u32(&r, &m->replicas);
            if (m->rejoin_ms > 86400000 || m->replace_ms > 86400000 ||
                m->replicas > PD_MAX_REPLICAS)
                goto bad;
        }
    }
    if (!pd_rd_done(&r)) goto bad;
    return 0;
bad:
    pd_map_free(m);
    return pd_seterr(e, PARAMD_EPROTO, "malformed cluster map from the coordinator "
                     "(%zu bytes)", len);
}

void pd_map_free(pd_map *m) {
    if (!m) return;
    pd_free(m->addr);
    m->addr = NULL;
}
