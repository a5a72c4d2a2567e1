/*
 * pool.h - a small pool of threads that run one loop over a range in
 * parallel ("parallel for"): the server's apply threads.
 *
 * A server applies updates (sums of gradients, the update rule) to shards
 * of millions of floats.  One connection thread doing that alone uses one
 * core while, in sync training, every worker waits for the result.  With a
 * pool the range is cut into parts and the parts are run by the pool's
 * threads and the caller together, so an update to one shard uses every
 * core the server was given (`paramd server --apply-threads N`).
 *
 * Contract of pd_pool_for(p, n, grain, fn, arg):
 *   - fn(arg, lo, hi) is called for disjoint [lo, hi) that together cover
 *     [0, n) exactly once; each part has at least `grain` elements except
 *     when n < grain (then one call covers all of it);
 *   - it returns after every call has returned; the caller runs parts too;
 *   - fn must not call pd_pool_for on the same pool (it would run inline,
 *     which is correct but serial);
 *   - with p == NULL, or when the pool is already running another loop
 *     (another connection thread's update), the whole loop runs inline on
 *     the caller: a caller never waits for somebody else's loop.
 * So the results are the same, bit for bit, whatever the number of
 * threads, as long as fn computes each element independently of how the
 * range was cut (every rule in rules.h does).
 *
 * Threads: pd_pool_for may be called from any number of threads at once.
 * The pool's own threads sleep on a condition variable between loops.
 * Locks: pool.mu guards the job slot and the generation counter; a part
 * is claimed with an atomic counter, so parts run without any lock.  It
 * is a leaf lock: callers may hold a shard's lock (they do: an update is
 * applied under it) and nothing is locked inside fn by the pool.
 */
#ifndef PARAMD_COMMON_POOL_H
#define PARAMD_COMMON_POOL_H

#include <stdint.h>

typedef struct pd_pool pd_pool;

typedef void (*pd_pool_fn)(void *arg, uint64_t lo, uint64_t hi);

/* A pool that runs loops on `threads` threads in all: the caller plus
 * threads-1 of its own.  threads <= 1 returns NULL, which pd_pool_for
 * accepts (everything inline); NULL also if a thread cannot be started
 * (the server then applies inline and says so). */
pd_pool *pd_pool_create(int threads);
/* Stops and joins the threads.  No loop may be running.  NULL-safe. */
void pd_pool_destroy(pd_pool *p);
/* Threads a loop may use (1 for NULL). */
int pd_pool_threads(const pd_pool *p);
/* Run fn over [0, n) as described above. */
void pd_pool_for(pd_pool *p, uint64_t n, uint64_t grain, pd_pool_fn fn,
                 void *arg);
/* Loops that ran on more than one thread, and loops that found the pool
 * busy and ran inline (for STATS). */
void pd_pool_counts(pd_pool *p, uint64_t *parallel, uint64_t *inline_busy);

#endif
