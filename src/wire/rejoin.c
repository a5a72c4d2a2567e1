/*
 * rejoin.c - SERVER_REJOIN's records (see rejoin.h).
 */
#include "wire/rejoin.h"

#include <string.h>

void pd_rejoin_put_head(pd_buf *b, uint32_t idx, uint32_t S, uint32_t W, uint32_t M,
                        const uint8_t key[PD_REJOIN_KEY_BYTES], const char *addr) {
    uint8_t kind = 'S';
    pd_put_bytes(b, &kind, 1);
    pd_put_u32(b, idx);
    pd_put_u32(b, S);
    pd_put_u32(b, W);
    pd_put_u32(b, M);
    pd_put_bytes(b, key, PD_REJOIN_KEY_BYTES);
    pd_put_str(b, addr);
}

void pd_rejoin_put_table(pd_buf *b, uint32_t id, const char *name, uint64_t n,
                         const char *spec) {
    uint8_t kind = 'T';
    pd_put_bytes(b, &kind, 1);
    pd_put_u32(b, id);
    pd_put_str(b, name);
    pd_put_u64(b, n);
    pd_put_str(b, spec);
}

void pd_rejoin_put_rank(pd_buf *b, uint32_t rank, uint32_t gen, int gone) {
    uint8_t kind = 'R', g = gone ? 1 : 0;
    pd_put_bytes(b, &kind, 1);
    pd_put_u32(b, rank);
    pd_put_u32(b, gen);
    pd_put_bytes(b, &g, 1);
}

static int head(pd_rejoin *rj, pd_rd *r, pd_err *e) {
    pd_get_u32(r, &rj->idx);
    pd_get_u32(r, &rj->S);
    pd_get_u32(r, &rj->W);
    pd_get_u32(r, &rj->M);
    pd_get_bytes(r, rj->key, sizeof rj->key);
    pd_get_str(r, rj->addr, PD_MAX_ADDR);
    if (r->bad || rj->have_head || rj->S == 0 || rj->S > PD_MAX_SERVERS || rj->idx >= rj->S ||
        rj->W == 0 || rj->M < rj->W || rj->M > PD_REJOIN_MAX_SLOTS)
        return pd_seterr(e, PARAMD_EPROTO, "malformed SERVER_REJOIN: a bad or repeated head");
    rj->gen = pd_calloc(rj->M, sizeof *rj->gen);
    rj->gone = pd_calloc(rj->M, 1);
    if (!rj->gen || !rj->gone) return pd_seterr(e, PARAMD_ENOMEM, "out of memory");
    rj->have_head = 1;
    return 0;
}

static int table(pd_rejoin *rj, pd_rd *r, pd_err *e) {
    if (rj->nt == rj->tcap) {
        uint32_t cap = rj->tcap ? rj->tcap * 2 : 8;
        if (cap > PD_REJOIN_MAX_TABLES) cap = PD_REJOIN_MAX_TABLES;
        pd_rejoin_table *t = cap > rj->tcap ? pd_realloc(rj->t, cap * sizeof *t) : NULL;
        if (!t)
            return pd_seterr(e, rj->tcap == PD_REJOIN_MAX_TABLES ? PARAMD_EPROTO : PARAMD_ENOMEM,
                             "SERVER_REJOIN: more than %d tables, or out of memory",
                             PD_REJOIN_MAX_TABLES);
        rj->t = t;
        rj->tcap = cap;
    }
    pd_rejoin_table *t = &rj->t[rj->nt];
    pd_get_u32(r, &t->id);
    pd_get_str(r, t->name, PD_MAX_NAME);
    pd_get_u64(r, &t->n);
    pd_get_str(r, t->spec, PD_REJOIN_MAX_SPEC);
    if (r->bad || t->id == 0 || t->id > PD_REJOIN_MAX_TABLES || !t->name[0])
        return pd_seterr(e, PARAMD_EPROTO, "malformed SERVER_REJOIN: a bad table");
    rj->nt++;
    return 0;
}

static int rank(pd_rejoin *rj, pd_rd *r, pd_err *e) {
    uint32_t w = 0, gen = 0;
    uint8_t gone = 0;
    pd_get_u32(r, &w);
    pd_get_u32(r, &gen);
    pd_get_bytes(r, &gone, 1);
    if (r->bad || w >= rj->M || gone > 1)
        return pd_seterr(e, PARAMD_EPROTO, "malformed SERVER_REJOIN: a bad rank");
    rj->gen[w] = gen;
    rj->gone[w] = gone;
    return 0;
}

int pd_rejoin_read(pd_rejoin *rj, const void *p, size_t len, pd_err *e) {
    pd_rd r;
    pd_rd_init(&r, p, len);
    while (r.off < r.len) {
        uint8_t kind = 0;
        pd_get_bytes(&r, &kind, 1);
        int rc;
        if (kind == 'S') rc = head(rj, &r, e);
        else if (kind == 'T' && rj->have_head) rc = table(rj, &r, e);
        else if (kind == 'R' && rj->have_head) rc = rank(rj, &r, e);
        else rc = pd_seterr(e, PARAMD_EPROTO, "malformed SERVER_REJOIN: %s record %u",
                            rj->have_head ? "an unknown" : "no head before", kind);
        if (rc) return rc;
    }
    return 0;
}

void pd_rejoin_free(pd_rejoin *rj) {
    pd_free(rj->t);
    pd_free(rj->gen);
    pd_free(rj->gone);
    memset(rj, 0, sizeof *rj); /* (a caller that kept the key wipes it first) */
}
