/*
 * limits.c - what a table may cost a server (docs/limits.md,
 * --max-table-mb).  A dense table's memory is known from its definition,
 * so an oversized TABLE_CREATE is refused before anything is allocated
 * (and once more after create, when a plugin's state planes are known);
 * a sparse table's grows with its rows and is bounded as it grows
 * (sparse.c, reserve).
 */
#include <stdio.h>

#include "server/server_impl.h"

/* Floats per element of a dense part: values, the rule's state planes,
 * and for sync and ssp tables a sum per clock of the window and a
 * staging copy. */
static uint64_t planes(const pd_table_def *d, size_t state) {
    uint64_t p = 1 + state;
    if (d->consistency != PD_CONS_ASYNC) p += (uint64_t)d->staleness + PD_SYNC_WINDOW + 1;
    return p;
}

uint64_t srv_table_max_bytes(const pd_table *t) {
    if (t->def.kind != PD_TABLE_DENSE) return 0;
    return (t->def.hi - t->def.lo) * sizeof(float) *
           planes(&t->def, pd_rule_state_floats(&t->rule));
}

/* The limit's message for a part of `len` floats needing `need` bytes. */
static int too_big(uint32_t id, uint64_t len, uint64_t need, uint64_t max_bytes, pd_err *e) {
    return pd_seterr(e, PARAMD_ELIMIT,
                     "table %u: its part on this server, %llu floats, may take "
                     "%llu MiB (values, rule state and clock sums), more than "
                     "the %llu MiB one table may take here (paramd server "
                     "--max-table-mb)",
                     id, (unsigned long long)len,
                     (unsigned long long)((need + (1 << 20) - 1) >> 20),
                     (unsigned long long)(max_bytes >> 20));
}

int srv_def_within_limit(uint32_t id, const pd_table_def *d, uint64_t max_bytes, pd_err *e) {
    if (!max_bytes || d->kind != PD_TABLE_DENSE) return 0;
    /* A plugin's state is known once it is loaded: counted after create. */
    pd_rule r = {0};
    r.kind = (pd_rule_kind)d->rule;
    uint64_t len = d->hi - d->lo, per = sizeof(float) * planes(d, pd_rule_state_floats(&r));
    if (len <= max_bytes / per) return 0;
    return too_big(id, len, len > UINT64_MAX / per ? UINT64_MAX : len * per, max_bytes, e);
}

int srv_table_within_limit(const pd_table *t, uint64_t max_bytes, pd_err *e) {
    if (!max_bytes || t->def.kind != PD_TABLE_DENSE) return 0;
    uint64_t need = srv_table_max_bytes(t);
    if (need <= max_bytes) return 0;
    return too_big(t->id, t->def.hi - t->def.lo, need, max_bytes, e);
}
