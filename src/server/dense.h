/*
 * dense.h - the dense store: the part [lo, hi) of a table of n floats that
 * one server holds, behind the table interface (table.h) and its clock
 * gate (gate.h, which has the consistency rules).
 *
 * A dense table holds its values, the update rule's state beside them
 * (pd_rule_state_floats planes of len floats), and (sync, ssp) the
 * per-clock sums being aggregated, one per gate slot.  A worker's push
 * for a clock may come in several pieces (the client cuts large ranges
 * into chunks): the worker counts for the clock once its pieces covered
 * every element of the shard exactly once.  Partial pushes are staged in
 * a per-worker buffer, so an incomplete contribution is never mixed into
 * the sum.  Async: every admitted piece is applied at once through the
 * rule; a worker may push each element once per clock.
 *
 * Locks: the gate's mutex (the table's lock) guards every field that
 * changes; the contents of the values and rule state are also guarded by
 * a read-write lock (vrw), which writers take inside the mutex and a
 * pull's copy takes alone, so that pulls copy out in parallel (order: mu,
 * vrw).
 */
#ifndef PARAMD_SERVER_DENSE_H
#define PARAMD_SERVER_DENSE_H

#include <pthread.h>
#include <stdint.h>

#include "server/table.h"

typedef struct pd_ivl {
    uint64_t a, b; /* [a, b) relative to lo */
} pd_ivl;

/* What one worker pushed for its latest clock (the gate's last[w]). */
typedef struct pd_wtrack {
    float *stage;       /* len floats: a partial push, or NULL */
    pd_ivl *iv;         /* sorted, disjoint, merged */
    int niv, cap;
    uint64_t covered;   /* elements covered for the latest clock */
} pd_wtrack;

typedef struct pd_dense_stats {
    uint64_t pushes, pulls, sets, bytes_in, bytes_out, rejected;
    uint64_t dropped;   /* late worker-clocks dropped (backup workers) */
} pd_dense_stats;

typedef struct pd_dense {
    pd_table base;      /* first: a pd_dense is a pd_table */
    pthread_rwlock_t vrw; /* the contents of params and state (see above) */
    uint64_t len;       /* hi - lo */
    float *params;      /* len */
    float *state;       /* len * pd_rule_state_floats */
    int64_t steps;      /* updates applied (the rule's step counter) */
    float **sums;       /* gate.window: each slot's sum, len floats,
                         * allocated on first use */
    pd_wtrack *wt;      /* W */
    pd_dense_stats stats;
} pd_dense;

#endif
