/*
 * limits.c - what a table may cost a server (docs/limits.md,
 * --max-table-mb).  A dense table's memory is known from its definition
 * when it is created, so an oversized TABLE_CREATE is refused at once,
 * before any of its pages is touched (its arrays are allocated zeroed,
 * lazily, by the kernel); a sparse table's grows with its rows and is
 * bounded as it grows (sparse.c, reserve).
 */
#include <stdio.h>

#include "server/server_impl.h"

uint64_t srv_table_max_bytes(const pd_table *t) {
    if (t->def.kind != PD_TABLE_DENSE) return 0;
    uint64_t len = t->def.hi - t->def.lo;
    uint64_t planes = 1 + pd_rule_state_floats(&t->rule); /* values, state */
    if (t->gate.clocked) planes += (uint64_t)t->gate.window + 1; /* sums, stage */
    return len * sizeof(float) * planes;
}

int srv_table_within_limit(const pd_table *t, uint64_t max_bytes, pd_err *e) {
    if (!max_bytes || t->def.kind != PD_TABLE_DENSE) return 0;
    uint64_t need = srv_table_max_bytes(t);
    if (need <= max_bytes) return 0;
    return pd_seterr(e, PARAMD_ELIMIT,
                     "table %u: its part on this server, %llu floats, may take "
                     "%llu MiB (values, rule state and clock sums), more than "
                     "the %llu MiB one table may take here (paramd server "
                     "--max-table-mb)",
                     t->id, (unsigned long long)(t->def.hi - t->def.lo),
                     (unsigned long long)((need + (1 << 20) - 1) >> 20),
                     (unsigned long long)(max_bytes >> 20));
}
