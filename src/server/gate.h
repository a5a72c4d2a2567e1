/*
 * gate.h - the clock gate: the consistency engine every table kind uses.
 * It decides which pushes a table takes, when a clock's aggregate is
 * applied, when a pull may be answered, and which workers each clock waits
 * for; the store (dense.c, sparse.c) holds the values and does the float
 * work.  No I/O and no float arithmetic here.
 *
 * Locking.  The gate's mutex is the table's lock: it guards the gate and
 * everything in the store that changes (a store may add locks of its own
 * inside it, as the dense store's values lock).  Every pd_gate_* call
 * below that does not lock says "mu held".  Pulls that must wait sleep on
 * the gate's condition variable.
 *
 * Consistency.  sync and ssp:s aggregate per clock; async applies each
 * push on arrival.  sync is ssp:0.  For sync and ssp:s:
 *   - `applied` clocks have been applied: clocks 0..applied-1;
 *   - a push for clock c is admitted if applied <= c < applied + window
 *     (window = s + PD_SYNC_WINDOW); a push for an applied clock is stale,
 *     except with backup workers, where it is dropped and counted;
 *   - a worker counts for clock c once its whole contribution is in
 *     (the store says when: the dense store when the worker covered every
 *     element of the shard, the sparse store at its one push per clock);
 *   - clock c is applied, once, in order, when (live workers counted for
 *     c - backup) of them have counted for it: the store's apply function
 *     runs the mean (or sum) through the update rule (a worker that died
 *     after counting for c stays in that mean, but never stands in for a
 *     live worker);
 *   - a pull at clock c is answered once applied >= c - s (sync: c).
 * Workers leave the set a clock waits for when the coordinator says they
 * are gone (pd_gate_worker_gone); their later pushes are refused.
 *
 * Admission (pd_gate_admit), in this order: a worker refused by an
 * elastic=no table, a worker removed from the cluster, a joiner's push for
 * a clock before its join clock, a push for a clock before one this worker
 * already pushed for, then (sync, ssp) a push for an applied clock (stale,
 * or dropped with backup workers) and one too far ahead of the window.
 * What a duplicate is depends on the store (an overlap of ranges, a second
 * push of a clock), so the store checks that after admission.
 *
 * Joins (elastic workers).  Which workers clock c waits for is kept in a
 * pd_members (members.h): every worker counts from a clock `from`, 0 for
 * the workers the cluster started with; clock c needs the whole pushes of
 * the live workers with from <= c (minus backup).  A worker that joins a
 * running cluster (a replacement for a dead rank, or a spare slot) is
 * given one clock J, the same on every table of every server, in two
 * phases driven by the coordinator (WORKER_JOIN, docs/protocol.md):
 *   1. prepare (pd_gate_join_begin): the table's frontier is
 *        F = max(applied, top),  top = 1 + the highest clock any push was
 *                                admitted for (0: none),
 *      the first clock nobody has pushed for.  The joiner counts from F at
 *      once: clocks >= F (none of which holds a push yet, none applied)
 *      now wait for it; clocks < F, those being aggregated, never do.
 *   2. commit (pd_gate_join_at): J = the largest F of every table of
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
 * predecessor on that rank) is reset at prepare, in the gate and in the
 * store (the store's forget function); a predecessor's whole pushes
 * already in a clock's aggregate stay there.  Async tables have no
 * frontier: the joiner is live at once.  A table with elastic=no keeps
 * the joiner out (REFUSED): its clocks never wait for it and its pushes
 * are refused with PARAMD_EWORKER.
 *
 * Watching (what `paramd status` and the metrics show; no rule depends on
 * it).  Each push taken is measured for staleness: how many clocks it is
 * behind the newest clock any push was taken for (top - 1 - c, at least
 * 0), once per whole contribution, in a histogram; for async and ssp
 * tables that is how stale the gradients the rule applied were.  A pull
 * that waits longer than PD_WAIT_LOG_FIRST_MS logs one line naming the
 * workers the clock waits for (pd_gate_wait_describe), again at a
 * growing interval (wire/status.h), one line per interval however many
 * pulls wait.
 *
 * Deadlines.  A worker may give its connections a deadline (the client's
 * op_timeout_ms, sent in HELLO): a pull that has waited that long for its
 * clock ends with PARAMD_ETIMEDOUT, and its error is the same line the
 * log would show (pd_wait_format), so the worker learns whom it waited
 * for.  The server ends the wait itself and answers the pull, so the
 * connection stays in step and the worker may go on (retry, or give up).
 * A timed-out pull changes nothing: it never took part in any clock.
 */
#ifndef PARAMD_SERVER_GATE_H
#define PARAMD_SERVER_GATE_H

#include <pthread.h>
#include <stdint.h>

#include "common/common.h"
#include "metrics/prom.h"
#include "server/members.h"
#include "table/def.h"
#include "wire/status.h"

/* How many clocks past the last applied one a sync push may be for. */
#define PD_SYNC_WINDOW 4

/* One clock being aggregated (sync, ssp): who has counted for it.  The
 * store keeps its aggregate beside it, at the same index of its own array
 * (pd_gate_slot_index). */
typedef struct pd_gate_slot {
    int active;
    int64_t clock;
    int32_t ndone;    /* workers whose whole contribution is in */
    int32_t *who;     /* ndone: their ranks; -1 once one is gone */
    int32_t whocap;
    int32_t ncount;   /* of them, still counted: a clock is complete when
                       * ncount reaches need (a gone worker's contribution
                       * stays in, but never stands in for a live one) */
} pd_gate_slot;

typedef struct pd_gate pd_gate;

/* The store's half: apply the complete clock of slot sl (the gate then
 * marks it applied), and forget worker w's per-worker record when w
 * joins.  Both are called with mu held. */
typedef struct pd_gate_store {
    void (*apply)(void *store, pd_gate_slot *sl);
    void (*forget)(void *store, int32_t w);
    void *store;
} pd_gate_store;

struct pd_gate {
    pthread_mutex_t mu; /* the table's lock: the gate and the store */
    pthread_cond_t cv;  /* signalled when `applied` grows, on joins, gone
                         * workers and stop */
    uint32_t id;        /* the table's, for messages */
    int clocked;        /* sync or ssp */
    uint32_t staleness, backup;
    int32_t W;          /* worker slots */
    int32_t window;     /* sync/ssp: staleness + PD_SYNC_WINDOW */
    int64_t applied;    /* sync/ssp: clocks applied */
    int64_t top;        /* 1 + highest clock a push was admitted for */
    int64_t *last;      /* W: latest clock each worker pushed for; -1 */
    int64_t *done;      /* W: latest clock it counted for (or, dropped,
                         * would have); -1 */
    pd_gate_slot *slots; /* window */
    pd_members mem;     /* which workers each clock waits for */
    int stop;           /* set on shutdown: waiting pulls give up */
    int64_t max_ahead;  /* largest (pull clock - applied) served */
    int64_t drop_below; /* a replacement's shard (coord/replace.c): pushes
                         * for clocks below this one that were applied are
                         * dropped and counted, not refused; 0: none */
    int64_t hold;       /* checkpoints: no clock at or past this one is
                         * applied (applied stops at hold); -1: none */
    const char *pull_hint; /* what a worker must push before its next pull
                            * (for the deadlock message) */
    pd_gate_store st;
    /* Watching (see "Watching" above): */
    char name[PD_TABLE_NAME_MAX + 1]; /* the table's name, "" if unknown */
    int64_t *last_ms;   /* W: when (pd_now_ms) its last push was taken */
    pd_hist stale;      /* staleness of the pushes taken, in clocks */
    int64_t stale_max;
    int32_t nwait;      /* pulls waiting now */
    int64_t wait_since; /* pd_now_ms when the oldest of them began */
    int64_t log_clock, log_mark; /* the wait last logged: its clock and the
                         * interval (ms into the wait) it was logged at */
    /* Set by the server after create (NULL: unknown): 1 if worker w has
     * a connection to this server.  Called with mu held; must not lock
     * anything the server holds while it takes a table's lock. */
    int (*alive)(void *arg, int32_t w);
    void *alive_arg;
};

/* Set up g for table `id` of definition d with W worker slots, all LIVE
 * from clock 0.  0, or PARAMD_ENOMEM with the reason in e (g then holds
 * nothing to free but what pd_gate_fini frees).  pull_hint completes "worker
 * N has not pushed ..." in the deadlock message. */
int pd_gate_init(pd_gate *g, uint32_t id, const pd_table_def *d, int32_t W,
                 const pd_gate_store *st, const char *pull_hint, pd_err *e);
void pd_gate_fini(pd_gate *g);

/* Outside the lock: PARAMD_EWORKER unless 0 <= w < W. */
int pd_gate_check_worker(const pd_gate *g, int32_t w, pd_err *e);
/* mu held.  Admit a push of worker w for clock c (see "Admission"):
 * 0 and *dropped = 1 for a backup worker's late push (count it, drop
 * it), 0 and *dropped = 0 to take it, or PARAMD_EWORKER / PARAMD_ESTALE /
 * PARAMD_EAHEAD with the reason in e.  Changes nothing. */
int pd_gate_admit(pd_gate *g, int32_t w, int64_t c, int *dropped, pd_err *e);
/* mu held.  Record that worker w's push for clock c was taken (complete:
 * its whole contribution for c is in, or would be if dropped).  Moves
 * last, done and (unless dropped) top. */
void pd_gate_pushed(pd_gate *g, int32_t w, int64_t c, int complete, int dropped);

/* mu held.  The slot of clock c (admitted, not dropped), with room to
 * record one more worker in it; NULL and PARAMD_ENOMEM if there is none
 * (nothing changed but capacity).  Then pd_gate_open(g, sl, c) once
 * nothing else can fail: it returns 1 if it opened the slot for c (the
 * store resets its aggregate), 0 if it was open for c already. */
pd_gate_slot *pd_gate_slot_for(pd_gate *g, int64_t c, pd_err *e);
int pd_gate_open(pd_gate *g, pd_gate_slot *sl, int64_t c);
static inline int pd_gate_slot_index(const pd_gate *g, const pd_gate_slot *sl) {
    return (int)(sl - g->slots);
}
/* mu held.  1 if sl is the next clock to apply and complete with `more`
 * more workers counted. */
int pd_gate_ready(const pd_gate *g, const pd_gate_slot *sl, int more);
/* mu held.  Worker w counts for sl's clock (room was reserved by
 * pd_gate_slot_for). */
void pd_gate_count(pd_gate *g, pd_gate_slot *sl, int32_t w);
/* mu held.  The store applied sl's clock: mark it applied, wake pulls. */
void pd_gate_advance(pd_gate *g, pd_gate_slot *sl);
/* mu held.  Apply every complete clock in order (the store's apply, then
 * pd_gate_advance, for each). */
void pd_gate_apply_ready(pd_gate *g);

/* mu held.  Before a pull at `clock` by worker w (-1: a tool) is answered:
 * in sync/ssp wait until clocks up to clock-s-1 are applied.  0 (mu still
 * held); PARAMD_EDEADLOCK at once if that waits on w's own missing push;
 * PARAMD_ESHUTDOWN if the table is stopped meanwhile.  limit_ms is the
 * requester's deadline (see "Deadlines" above): 0 none; > 0 wait at most
 * that long, then PARAMD_ETIMEDOUT; < 0 spent already: PARAMD_ETIMEDOUT at
 * once if the pull would wait at all.  The error's text is the wait's line
 * (whom it waits for, which clock) and what ended it; nothing in the
 * table changed. */
int pd_gate_pull_wait(pd_gate *g, int32_t w, int64_t clock, int64_t limit_ms, pd_err *e);
/* mu held.  The clock a pull's reply carries: applied (0 for async). */
static inline int64_t pd_gate_reply_clock(const pd_gate *g) {
    return g->clocked ? g->applied : 0;
}

/* Each locks mu.  Worker w left or died: clocks no longer wait for it,
 * its later pushes are refused (idempotent).  Join phase 1 (returns F,
 * or -1 when the table puts no bound on the join clock: async, or
 * elastic=no, which keeps w out) and phase 2 (w counts from J; applies
 * the clocks that no longer wait for it).  Stop: wake every waiting pull
 * and make further waits fail. */
void pd_gate_worker_gone(pd_gate *g, int32_t w);
/* mu held.  Who the next clock to apply (sync, ssp) waits for: the first
 * such worker in w (others: how many more), with its last push and its
 * connection.  Returns how many it waits for (0: nobody, or async).  If
 * out is not NULL, up to max of them, one pd_wait each. */
int pd_gate_wait_describe(pd_gate *g, pd_wait *w, pd_wait *out, int max);
/* Lock mu and append the gate's counters to a STATS line (" staleness_count
 * N ... frontier F slowest_worker W slowest_clock C waiting_pulls P",
 * no newline) at buf[*off..len), then one "wait pull ..." line per
 * worker a waiting pull waits for (each line "\n"-terminated, the first
 * ending the STATS line). */
void pd_gate_stats(pd_gate *g, char *buf, size_t len, size_t *off);
int64_t pd_gate_join_begin(pd_gate *g, int32_t w);
void pd_gate_join_at(pd_gate *g, int32_t w, int64_t J);
void pd_gate_stop(pd_gate *g);

/* Checkpoints (server/checkpoint.c): a consistent cut needs every table of
 * every server stopped at the same clock C.  pd_gate_hold(g, at) lets the
 * table apply clocks below `at` only (at -1: the clock it is at now),
 * applies those that are ready, and returns its applied clock; pd_gate_wait_applied waits until applied
 * reaches C (0), or the table stops (PARAMD_ESHUTDOWN) or ms pass
 * (PARAMD_ETIMEDOUT); pd_gate_release lifts the hold and applies what
 * became ready meanwhile.  Each locks mu.  Pushes are still admitted
 * while a table is held: they wait in the clock's slot, as they wait for
 * a slow worker. */
int64_t pd_gate_hold(pd_gate *g, int64_t at);
int pd_gate_wait_applied(pd_gate *g, int64_t C, int ms);
void pd_gate_release(pd_gate *g);
/* Restore: the table continues from clock C (clocked tables; async ones
 * keep 0), with no worker's push on record.  mu held or no other thread. */
void pd_gate_restore(pd_gate *g, int64_t C);

#endif
