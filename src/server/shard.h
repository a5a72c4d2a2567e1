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
 * Consistency.  sync and ssp:s aggregate per clock; async applies each
 * push on arrival.  sync is ssp:0.  For sync and ssp:s:
 *   - `applied` clocks have been applied: clocks 0..applied-1;
 *   - a push for clock c is accepted if applied <= c < applied + window
 *     (window = s + PD_SYNC_WINDOW) and the worker has not pushed any of
 *     those elements for c before; a push for an applied clock is stale,
 *     except with backup workers, where it is dropped and counted;
 *   - a worker's push for c counts once it has covered every element of
 *     the shard (in one or several pushes; partial pushes are staged in a
 *     per-worker buffer so that an incomplete contribution is never mixed
 *     into the sum);
 *   - clock c is applied, once, in order, when (live workers - backup)
 *     workers have counted for it: the mean (or sum) of their gradients
 *     goes through the update rule;
 *   - a pull at clock c is answered once applied >= c - s (sync: c).
 * Workers leave the set a clock waits for when the coordinator says they
 * are gone (pd_shard_worker_gone); their later pushes are refused.
 *
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
    int live;           /* still in the set clocks wait for */
    float *stage;       /* len floats: a partial push of `clock`, or NULL */
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
    int32_t ndone;     /* workers whose whole push is in the sum */
} pd_slot;

typedef struct pd_shard_stats {
    uint64_t pushes, pulls, sets, bytes_in, bytes_out, rejected;
    uint64_t dropped;   /* late worker-clocks dropped (backup workers) */
    int64_t max_ahead;  /* largest (pull clock - applied) served */
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
    int64_t applied;    /* sync/ssp: clocks applied */
    int64_t steps;      /* updates applied (rule's step counter) */
    int32_t window;     /* sync/ssp: staleness + PD_SYNC_WINDOW */
    pd_slot *slots;     /* window */
    pd_wtrack *wt;      /* W */
    int32_t nlive;      /* workers still live */
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
/* The same wait, then emit(arg, values, count, applied) is called under the
 * shard's lock with a pointer to the values themselves (and the applied
 * clock, 0 for async tables): it may copy them out or hand them to a
 * non-blocking send, and must not block or call back into the shard. */
typedef void (*pd_emit_fn)(void *arg, const float *v, uint64_t count,
                           int64_t applied);
int pd_shard_pull_emit(pd_shard *s, int32_t worker, int64_t clock,
                       uint64_t off, uint64_t count, pd_emit_fn emit,
                       void *arg, pd_err *e);
/* Worker `w` left or died: clocks no longer wait for it, its later pushes
 * are refused.  Idempotent. */
void pd_shard_worker_gone(pd_shard *s, int32_t w);

/* Wake every waiting pull and make further waits fail. */
void pd_shard_stop(pd_shard *s);

#endif
