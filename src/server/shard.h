/*
 * shard.h - the part of one dense table that one server holds, and the
 * consistency rules that decide when a push is applied and when a pull is
 * answered.  No I/O here: the connection threads of server.c call in.
 *
 * A shard holds floats [lo, hi) of a table of n floats: its values, the
 * update rule's state beside them, and (sync tables) the per-clock sums
 * being aggregated.  Everything in a shard is guarded by its mutex; pulls
 * that must wait for a clock sleep on its condition variable.
 *
 * Invariants (sync):
 *   - `applied` clocks have been applied: clocks 0..applied-1.
 *   - a push for clock c is accepted only if applied <= c < applied+WINDOW,
 *     and the worker has not pushed any of those elements for c before;
 *   - clock c is applied, once, when W workers each covered every element
 *     of the shard for c, in order of c;
 *   - a pull at clock c is answered once applied >= c.
 * Async: every accepted push is applied at once; a worker may push each
 * element once per clock.
 */
#ifndef PARAMD_SERVER_SHARD_H
#define PARAMD_SERVER_SHARD_H

#include <pthread.h>
#include <stdint.h>

#include "server/rules.h"
#include "wire/wire.h"

/* How many clocks past the last applied one a sync push may be for. */
#define PD_SYNC_WINDOW 4

typedef struct pd_ivl {
    uint64_t a, b; /* [a, b) relative to lo */
} pd_ivl;

/* What one worker pushed for its latest clock. */
typedef struct pd_wtrack {
    int64_t clock;      /* latest clock pushed; -1 none */
    int64_t done_clock; /* latest clock fully covered; -1 none */
    pd_ivl *iv;         /* sorted, disjoint, merged */
    int niv, cap;
    uint64_t covered;   /* elements covered for `clock` */
} pd_wtrack;

typedef struct pd_slot {
    int active;
    int64_t clock;
    float *sum;        /* len floats, allocated on first use */
    uint64_t received; /* elements summed for `clock`, all workers */
} pd_slot;

typedef struct pd_shard_stats {
    uint64_t pushes, pulls, sets, bytes_in, bytes_out, rejected;
} pd_shard_stats;

typedef struct pd_shard {
    pthread_mutex_t mu; /* guards every field below that changes */
    pthread_cond_t cv;  /* signalled when `applied` grows or on stop */
    uint32_t id;
    pd_table_def def;   /* immutable after create */
    pd_rule rule;       /* immutable after create */
    uint64_t len;       /* hi - lo */
    int32_t W;
    float *params;      /* len */
    float *state;       /* len * pd_rule_state_floats */
    int64_t applied;    /* sync: clocks applied */
    int64_t steps;      /* updates applied (rule's step counter) */
    pd_slot slots[PD_SYNC_WINDOW];
    pd_wtrack *wt;      /* W */
    int stop;           /* set on shutdown: waiting pulls give up */
    pd_shard_stats stats;
} pd_shard;

/* Create a shard for `def` (its lo/hi) with W workers.  NULL with the
 * reason in e (PARAMD_ENOMEM, PARAMD_EINVAL for a bad rule or plugin). */
pd_shard *pd_shard_create(uint32_t id, const pd_table_def *def, int32_t W,
                          pd_err *e);
void pd_shard_destroy(pd_shard *s);
/* 1 if def describes the same table (for an idempotent TABLE_CREATE). */
int pd_shard_same_def(const pd_shard *s, const pd_table_def *def);

/* Each returns 0 or a PARAMD_E* code with the reason in e; on error
 * nothing in the shard changed.  Offsets are table offsets (not relative
 * to lo). */
int pd_shard_check_range(const pd_shard *s, uint64_t off, uint64_t count,
                         pd_err *e);
int pd_shard_set(pd_shard *s, uint64_t off, uint64_t count, const float *v,
                 pd_err *e);
int pd_shard_push(pd_shard *s, int32_t worker, int64_t clock, uint64_t off,
                  uint64_t count, const float *g, pd_err *e);
/* Copy [off, off+count) into dst, waiting in sync mode until clock
 * `clock`-1 is applied.  PARAMD_EDEADLOCK if that waits on this worker's
 * own missing push; PARAMD_ESHUTDOWN if the shard is stopped meanwhile. */
int pd_shard_pull(pd_shard *s, int32_t worker, int64_t clock, uint64_t off,
                  uint64_t count, float *dst, pd_err *e);
/* Wake every waiting pull and make further waits fail. */
void pd_shard_stop(pd_shard *s);

#endif
