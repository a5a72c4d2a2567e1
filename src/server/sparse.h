/*
 * sparse.h - the part of one sparse table that one server holds: the rows
 * of the keys that hash to this server (pd_sparse_server), created on
 * first touch, their update-rule state, and the per-clock aggregation of
 * sync and ssp tables.  No I/O here: server.c's connection threads call in.
 *
 * Storage.  Rows live in one growable arena, row r at rows + r*rowfloats:
 *
 *     [ params: dim floats | state plane 0: dim floats | ... plane k-1 ]
 *
 * (rowfloats = dim * (1 + k), k = pd_rule_state_floats), so one call
 * pd_rule_apply(rule, row, row + dim, g, dim, step) updates a row and its
 * state.  Beside the arena, meta[r] holds the row's key and its step count
 * (updates applied to that row: adam's bias correction is per row, since a
 * row is only updated when a push touches it).  A key -> row hash map
 * (common/keymap.h) finds rows.  Rows are never removed or moved to
 * another index, so the arena and meta, nrows long, are the whole state
 * of the shard and can be written out as they are (checkpoints).
 *
 * New rows.  A key never seen before gets, on its first push or pull, the
 * row pd_sparse_init_row computes from the table's initializer and seed and
 * the key alone, and the rule's initial state.  So a pull of an untouched
 * key returns the same values on every server count, in every run.
 *
 * Consistency (the same rules as dense shards, shard.h, one push per
 * worker per clock instead of one cover of the range):
 *   async   each push is applied on arrival: duplicates in it summed, then
 *           the rule applied once per distinct key;
 *   sync    every worker sends exactly one SPARSE_PUSH per server per clock
 *   ssp:s   (possibly with no keys).  The pushes of clock c are summed per
 *           key into slot c; once (live workers - backup) of them are in,
 *           the mean (or sum) of each key is applied once, clocks in order.
 *           A pull at clock c waits until clocks up to c-s-1 are applied.
 *           A push for an applied clock is PARAMD_ESTALE (dropped and
 *           counted with backup workers); a second push of a worker for
 *           one clock is PARAMD_EDUP.
 *   joins   exactly as dense shards (shard.h, "Joins"): the frontier is
 *           max(applied, top), top = 1 + the highest clock pushed for.
 *
 * All or nothing: every function that can fail checks and reserves memory
 * before it changes anything, so an error leaves the table exactly as it
 * was (no row created, no state touched).
 *
 * Threads: one mutex per table guards everything that changes; a pull that
 * waits for its clock sleeps on the condition variable.  Lock order:
 * server.mu before a table's mu.
 */
#ifndef PARAMD_SERVER_SPARSE_H
#define PARAMD_SERVER_SPARSE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/keymap.h"
#include "common/pool.h"
#include "server/members.h"
#include "table/rules.h"
#include "wire/wire.h"

/* Row indices are uint32 (PD_KEYMAP_NONE is reserved). */
#define PD_SPARSE_MAX_ROWS (UINT32_MAX - 1u)

typedef struct pd_sparse_meta {
    uint64_t key;   /* the row's key */
    uint64_t steps; /* updates applied to this row */
    uint32_t mark;  /* scratch: generation of the last push that touched it */
    uint32_t pos;   /* scratch: its first position in that push */
} pd_sparse_meta;

/* One clock being aggregated (sync, ssp). */
typedef struct pd_sparse_slot {
    int active;
    int64_t clock;
    int32_t ndone;    /* workers whose push for `clock` is in the sums */
    int32_t *who;     /* ndone: their ranks; -1 once one is gone */
    int32_t whocap;
    int32_t ncount;   /* of them, still counted (as in shard.h) */
    pd_keymap map;    /* row -> entry */
    uint32_t *row;    /* entry -> row */
    float *sum;       /* entry e's summed gradient at sum + e*dim */
    size_t nent, cap; /* entries used and allocated */
} pd_sparse_slot;

typedef struct pd_sparse_stats {
    uint64_t pushes, pulls;       /* requests answered */
    uint64_t keys_pushed, keys_pulled;
    uint64_t bytes_in, bytes_out; /* gradient and row bytes */
    uint64_t rejected, dropped;   /* refused pushes; late backup pushes */
    uint64_t push_cpu_ns;         /* CPU time of pushes, lock held */
} pd_sparse_stats;

typedef struct pd_sparse {
    pthread_mutex_t mu; /* guards every field below that changes */
    pthread_cond_t cv;  /* signalled when `applied` grows or on stop */
    uint32_t id;
    pd_pool *pool;      /* the server's apply threads (NULL: inline); not
                         * owned */
    pd_table_def def;   /* immutable after create; def.n is the dim */
    pd_rule rule;       /* immutable after create */
    uint32_t dim;
    size_t k;           /* state planes per row */
    size_t rowfloats;   /* dim * (1 + k) */
    int32_t W, index, S;

    pd_keymap map;        /* key -> row */
    float *rows;          /* rowcap * rowfloats */
    pd_sparse_meta *meta; /* rowcap */
    size_t nrows, rowcap;
    uint32_t gen;         /* generation of the current push (never 0) */
    uint32_t *ridx;       /* scratch: the rows of a request's keys */
    size_t ridx_cap;

    int64_t applied;        /* sync/ssp: clocks applied */
    int32_t window;         /* sync/ssp: staleness + PD_SYNC_WINDOW */
    pd_sparse_slot **slots; /* window, each allocated on first use */
    int64_t *wclock;        /* W: latest clock each worker pushed; -1 */
    pd_members mem;         /* which workers each clock waits for */
    int64_t top;            /* 1 + highest clock a push was accepted for */
    int stop;
    pd_sparse_stats stats;
} pd_sparse;

/* Create this server's part (server `index` of S) of sparse table `id`
 * with W workers; the rows of a push or a clock are applied on `pool`
 * (NULL: on the calling thread).  NULL with the reason in e (PARAMD_ENOMEM, PARAMD_EINVAL
 * for a bad definition, rule or plugin). */
pd_sparse *pd_sparse_create(uint32_t id, const pd_table_def *def, int32_t W,
                            int32_t index, int32_t S,
                            pd_pool *pool, pd_err *e);
void pd_sparse_destroy(pd_sparse *t); /* NULL-safe */
/* 1 if def describes the same table (for an idempotent TABLE_CREATE). */
int pd_sparse_same_def(const pd_sparse *t, const pd_table_def *def);

/*
 * Push the gradients g (n rows of dim floats, row i for keys[i]) from
 * `worker` at `clock`.  Every key must belong to this server.  Duplicated
 * keys are summed (into g, which this call may modify) and each distinct
 * key's row is updated once.  0, or a PARAMD_E* code with the reason in e
 * and the table unchanged.
 */
int pd_sparse_push(pd_sparse *t, int32_t worker, int64_t clock,
                   const uint64_t *keys, uint64_t n, float *g, pd_err *e);
/* Copy the rows of keys[0..n) (dim floats each, in order) into out,
 * creating rows never seen; in sync/ssp mode first wait as a dense pull
 * does.  worker is -1 for tools.  0 or a PARAMD_E* code (table unchanged). */
int pd_sparse_pull(pd_sparse *t, int32_t worker, int64_t clock,
                   const uint64_t *keys, uint64_t n, float *out, pd_err *e);
/* Worker `w` left or died: clocks no longer wait for it and its later
 * pushes are refused.  Idempotent. */
void pd_sparse_worker_gone(pd_sparse *t, int32_t w);
/* Worker `w` joins: as pd_shard_join_begin and pd_shard_join_at. */
int64_t pd_sparse_join_begin(pd_sparse *t, int32_t w);
void pd_sparse_join_at(pd_sparse *t, int32_t w, int64_t J);
/* Wake every waiting pull and make further waits fail. */
void pd_sparse_stop(pd_sparse *t);

/* Rows held, and bytes of memory held (arena, meta, map, scratch, clock
 * sums).  Take t->mu around them if other threads run. */
size_t pd_sparse_bytes(const pd_sparse *t);
/* The table's STATS line ("table 3 kind sparse dim 16 rows ...\n"), locking
 * the table.  Returns what snprintf returns. */
int pd_sparse_stats_line(pd_sparse *t, char *out, size_t outlen);

/* The initial parameters of the row of `key` (d->n floats) under d's
 * initializer and seed: zeros, uniform in [-a, a) or normal(0, s) from
 * the stream pd_row_rand(seed, key, j) (normal: Box-Muller on pairs of
 * numbers).  Element j is the same whatever the dim. */
void pd_sparse_init_row(const pd_table_def *d, uint64_t key, float *row);

#endif
