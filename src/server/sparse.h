/*
 * sparse.h - the sparse store: the part of one sparse table that one
 * server holds, behind the table interface (table.h): the rows of the
 * keys that hash to this server (pd_sparse_server), created on first
 * touch, their update-rule state, and the per-clock sums of sync and ssp
 * tables.  No I/O here: the server's handlers call in.
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
 * Consistency: the clock gate's (gate.h), as for dense tables, with one
 * push per worker per clock instead of one cover of the range:
 *   async   each push is applied on arrival: duplicates in it summed, then
 *           the rule applied once per distinct key;
 *   sync    every worker sends exactly one SPARSE_PUSH per server per clock
 *   ssp:s   (possibly with no keys).  The pushes of clock c are summed per
 *           key into the sums of c's gate slot; once the gate finds the
 *           clock complete, the mean (or sum) of each key is applied once,
 *           clocks in order.  A second push of a worker for one clock is
 *           PARAMD_EDUP.
 *
 * Incremental checkpoints.  meta[r].mod is the checkpoint epoch in which
 * row r last changed (was created, updated or loaded): ck_epoch, which
 * starts at 1 and is advanced by every checkpoint's save of the table,
 * under the table's lock, right after it read the rows.  So a save
 * records (its checkpoint's seq, the epoch it closed) in cuts[], and a
 * later delta of checkpoint B writes exactly the rows with mod > B's
 * epoch: every row changed since B was written, whatever checkpoints
 * failed in between (a failed checkpoint is never a base, so what it
 * would have carried is still newer than the base).  A delta of a
 * checkpoint this table has no record of (created since, or the record
 * dropped after PD_SPARSE_CUTS saves) writes every row: more than needed,
 * never less.  The hot path pays one store per updated row (mod beside
 * steps, in the same cache line).
 *
 * All or nothing: every function that can fail checks and reserves memory
 * before it changes anything, so an error leaves the table exactly as it
 * was (no row created, no state touched).
 *
 * Threads: the table's lock (the gate's mutex) guards everything that
 * changes; a pull that waits for its clock sleeps in the gate.  Lock
 * order: server.mu before a table's mu.
 */
#ifndef PARAMD_SERVER_SPARSE_H
#define PARAMD_SERVER_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/keymap.h"
#include "server/table.h"

/* Row indices are uint32 (PD_KEYMAP_NONE is reserved). */
#define PD_SPARSE_MAX_ROWS (UINT32_MAX - 1u)

typedef struct pd_sparse_meta {
    uint64_t key;   /* the row's key */
    uint64_t steps; /* updates applied to this row */
    uint32_t mark;  /* scratch: generation of the last push that touched it */
    uint32_t pos;   /* scratch: its first position in that push */
    uint64_t mod;   /* the checkpoint epoch it last changed in (above) */
} pd_sparse_meta;

/* Saves remembered for deltas: a delta's base is the newest complete
 * checkpoint, and only a run of failed checkpoints pushes it back. */
#define PD_SPARSE_CUTS 16

typedef struct pd_sparse_cut {
    uint64_t seq;   /* the checkpoint that wrote the table */
    uint64_t epoch; /* rows with mod <= epoch were in it */
} pd_sparse_cut;

/* The sums of one clock being aggregated (sync, ssp), beside the gate's
 * slot of the same index. */
typedef struct pd_sparse_sums {
    pd_keymap map;    /* row -> entry */
    uint32_t *row;    /* entry -> row */
    float *sum;       /* entry e's summed gradient at sum + e*dim */
    size_t nent, cap; /* entries used and allocated */
} pd_sparse_sums;

typedef struct pd_sparse_stats {
    uint64_t pushes, pulls;       /* requests answered */
    uint64_t keys_pushed, keys_pulled;
    uint64_t bytes_in, bytes_out; /* gradient and row bytes */
    uint64_t rejected, dropped;   /* refused pushes; late backup pushes */
    uint64_t push_cpu_ns;         /* CPU time of pushes, lock held */
} pd_sparse_stats;

typedef struct pd_sparse {
    pd_table base;      /* first: a pd_sparse is a pd_table; base.def.n is
                         * the dim */
    uint32_t dim;
    size_t k;           /* state planes per row */
    size_t rowfloats;   /* dim * (1 + k) */
    size_t max_rows;    /* rows allowed (env.max_bytes; PD_SPARSE_MAX_ROWS) */
    uint64_t max_bytes; /* env.max_bytes, for the message; 0: none */
    int32_t index, S;   /* this server, of S: the keys it holds */

    pd_keymap map;        /* key -> row */
    float *rows;          /* rowcap * rowfloats */
    pd_sparse_meta *meta; /* rowcap */
    size_t nrows, rowcap;
    uint32_t gen;         /* generation of the current push (never 0) */
    uint32_t *ridx;       /* scratch: the rows of a request's keys */
    size_t ridx_cap;

    uint64_t ck_epoch;    /* the current checkpoint epoch (>= 1) */
    pd_sparse_cut cuts[PD_SPARSE_CUTS]; /* the last saves, oldest first */
    uint32_t ncuts;

    pd_sparse_sums **sums; /* gate.window, each allocated on first use */
    pd_sparse_stats stats;
} pd_sparse;

/* Bytes of memory held (arena, meta, map, scratch, clock sums).  Take the
 * table's lock around it if other threads run. */
size_t pd_sparse_bytes(const pd_sparse *t);

/* The initial parameters of the row of `key` (d->n floats) under d's
 * initializer and seed: zeros, uniform in [-a, a) or normal(0, s) from
 * the stream pd_row_rand(seed, key, j) (normal: Box-Muller on pairs of
 * numbers).  Element j is the same whatever the dim. */
void pd_sparse_init_row(const pd_table_def *d, uint64_t key, float *row);

#endif
