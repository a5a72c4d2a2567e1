/*
 * shard.h - the part of one dense table that one server holds, and the
 * consistency rules that decide when a push is applied and when a pull is
 * answered.  No I/O here: the connection threads of server.c call in.
 *
 * A shard holds floats [lo, hi) of a table of n floats: its values, the
 * update rule's state beside them, and (sync tables) the per-clock sums
 * being aggregated.  Everything in a shard is guarded by its mutex; the
 * contents of the values and rule state are also guarded by a read-write
 * lock (vrw), which writers take inside the mutex and a pull's copy takes
 * alone, so that pulls copy out in parallel.  Pulls that must wait for a
 * clock sleep on the condition variable.
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
 *   - clock c is applied, once, in order, when (live workers counted for
 *     c - backup) of them have counted for it: the mean (or sum) of the
 *     gradients in its sum goes through the update rule (a worker that
 *     died after its whole push for c stays in that mean, but never
 *     stands in for a live worker);
 *   - a pull at clock c is answered once applied >= c - s (sync: c).
 * Workers leave the set a clock waits for when the coordinator says they
 * are gone (pd_shard_worker_gone); their later pushes are refused.
 *
 * Joins (elastic workers).  Which workers clock c waits for is kept in a
 * pd_members (members.h): every worker counts from a clock `from`, 0 for
 * the workers the cluster started with; clock c needs the whole pushes of
 * the live workers with from <= c (minus backup).  A worker that joins a
 * running cluster (a replacement for a dead rank, or a spare slot) is
 * given one clock J, the same on every table of every server, in two
 * phases driven by the coordinator (WORKER_JOIN, docs/protocol.md):
 *   1. prepare (pd_shard_join_begin): the shard's frontier is
 *        F = max(applied, top),  top = 1 + the highest clock any push was
 *                                accepted for (0: none),
 *      the first clock nobody has pushed for.  The joiner counts from F at
 *      once: clocks >= F (none of which holds a push yet, none applied)
 *      now wait for it; clocks < F, those being aggregated, never do.
 *   2. commit (pd_shard_join_at): J = the largest F of every shard of
 *      every server.  The joiner's from moves up to J >= F.  Clocks >= F
 *      could not be applied in between (they waited for the joiner), so J
 *      is not applied; clocks in [F, J) stop waiting for it and may apply
 *      at once, and clocks >= J wait for it, whoever pushed for them
 *      before.
 * So for every clock of every table the set of contributions is decided
 * by the clock alone: the joiner is in it iff c >= J.  The joiner's
 * pushes must be for clocks >= J (PARAMD_ESTALE below it); its pull at
 * clock J waits, as anyone's, for clock J-s-1: clocks it is not counted
 * for, so it never deadlocks on itself; the pull's result is the state it
 * computes its first gradient on.  Its old per-worker record (a dead
 * predecessor on that rank) is reset at prepare; a predecessor's whole
 * pushes already in a clock's sum stay there.  Async tables have no
 * frontier: the joiner is live at once.  A table with elastic=no keeps
 * the joiner out (REFUSED): its clocks never wait for it and its pushes
 * are refused with PARAMD_EWORKER.
 *
 * Async: every accepted push is applied at once; a worker may push each
 * element once per clock.
 */
#ifndef PARAMD_SERVER_SHARD_H
#define PARAMD_SERVER_SHARD_H

#include <pthread.h>
#include <stdint.h>

#include "common/pool.h"
#include "server/members.h"
#include "table/rules.h"
#include "wire/wire.h"

/* The smallest part of an update (or of a pull into a shared buffer) that
 * the apply threads split off, in floats: 1 MiB at least (a 1 MiB chunk
 * runs inline: waking a thread for it costs more than it saves on a busy
 * machine). */
#define PD_APPLY_GRAIN (256u << 10)

/* How many clocks past the last applied one a sync push may be for. */
#define PD_SYNC_WINDOW 4

typedef struct pd_ivl {
    uint64_t a, b; /* [a, b) relative to lo */
} pd_ivl;

/* What one worker pushed for its latest clock. */
typedef struct pd_wtrack {
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
    int32_t *who;      /* ndone: their ranks; -1 once one is gone */
    int32_t whocap;
    int32_t ncount;    /* of them, still counted: a clock is complete when
                        * ncount reaches need (a gone worker's push stays in
                        * the sum but never stands in for a live one) */
} pd_slot;

typedef struct pd_shard_stats {
    uint64_t pushes, pulls, sets, bytes_in, bytes_out, rejected;
    uint64_t dropped;   /* late worker-clocks dropped (backup workers) */
    int64_t max_ahead;  /* largest (pull clock - applied) served */
} pd_shard_stats;

typedef struct pd_shard {
    pthread_mutex_t mu; /* guards every field below that changes */
    pthread_cond_t cv;  /* signalled when `applied` grows or on stop */
    pthread_rwlock_t vrw; /* the contents of params and state: written
                         * with mu held and vrw write-locked; a pull's
                         * copy holds only the read lock (order: mu, vrw) */
    uint32_t id;
    pd_pool *pool;      /* the server's apply threads (NULL: inline);
                         * not owned, outlives the shard */
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
    pd_members mem;     /* which workers each clock waits for */
    int64_t top;        /* 1 + highest clock a push was accepted for */
    int stop;           /* set on shutdown: waiting pulls give up */
    pd_shard_stats stats;
} pd_shard;

/* Create a shard for `def` (its lo/hi) with W workers, whose updates run
 * on `pool` (NULL: on the calling thread alone).  NULL with the reason in
 * e (PARAMD_ENOMEM, PARAMD_EINVAL for a bad rule or plugin). */
pd_shard *pd_shard_create(uint32_t id, const pd_table_def *def, int32_t W,
                          pd_pool *pool, pd_err *e);
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
 * values' read lock (not the shard's mutex) with a pointer to the values
 * themselves (and the applied
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
/* Worker `w` joins (phase 1 above): its push record is reset and, on a
 * sync/ssp elastic table, it counts from the shard's frontier F at once.
 * Returns F, or -1 when the table puts no bound on the join clock (async,
 * or elastic=no: then w is kept out and its pushes are refused). */
int64_t pd_shard_join_begin(pd_shard *s, int32_t w);
/* Worker `w` counts from clock J (phase 2; J >= what join_begin returned,
 * or any J >= 0 on a table nobody pushed to yet).  Applies the clocks that
 * no longer wait for it. */
void pd_shard_join_at(pd_shard *s, int32_t w, int64_t J);

/* Wake every waiting pull and make further waits fail. */
void pd_shard_stop(pd_shard *s);

#endif
