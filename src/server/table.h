/*
 * table.h - one table's part on this server, whatever its kind: the one
 * interface the server's handlers, its membership code and its stats use.
 *
 * A table is a store (its values and the update rule's state: dense.c for
 * contiguous ranges, sparse.c for rows created on first touch) behind a
 * clock gate (gate.h: which pushes are taken, when clocks apply, when
 * pulls are answered, which workers count).  The parts every kind shares
 * are in struct pd_table, which each store embeds as its first member; the
 * parts that differ are the functions of pd_table_ops.  So the server
 * keeps one array of tables and never asks which kind a table is, except
 * where a frame names a kind (PUSH is for dense tables, SPARSE_PUSH for
 * sparse ones: pd_table_req says which, and a store refuses the other).
 *
 * Threads: the gate's mutex is the table's lock (gate.h); every function
 * here takes it itself.  def, rule, ops and id never change after create,
 * so they are read without it.  Lock order: the server's mu before a
 * table's.
 *
 * On error nothing in the table changed: every push, pull and set checks
 * and reserves what it needs before it changes anything.
 */
#ifndef PARAMD_SERVER_TABLE_H
#define PARAMD_SERVER_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "common/pool.h"
#include "durable/ckfile.h"
#include "server/gate.h"
#include "table/def.h"
#include "table/rules.h"

/* The smallest part of an update (or of a pull into a shared buffer) that
 * the apply threads split off, in floats (pool.h): waking a thread for
 * less costs more than it saves on a busy machine. */
#define PD_APPLY_GRAIN (256u << 10)

typedef struct pd_table pd_table;

/* One request, as a handler decoded it from a frame. */
typedef struct pd_table_req {
    int32_t worker;        /* the requester's rank; -1 for a tool */
    int64_t clock;         /* the frame's clock */
    int64_t wait_ms;       /* a pull's deadline (pd_gate_pull_wait's
                            * limit_ms): 0 none, < 0 already spent */
    /* A dense request: the range [off, off + count) in table offsets. */
    uint64_t off, count;
    /* A sparse request (keyed = 1): nkeys keys. */
    int keyed;
    const uint64_t *keys;
    uint64_t nkeys;
    /* Dense SET and PUSH read their values from `in` (which may be a view
     * into a shared-memory ring or a worker's shared buffer: read, never
     * written).  A sparse push's gradients are in `io`, which it may
     * change (duplicate keys are summed in place); a sparse pull writes
     * its rows there (nkeys * dim floats). */
    const float *in;
    float *io;
} pd_table_req;

/* How a pull hands its values out: emit(arg, values, count, applied) is
 * called once, with no table lock held but the values' own (a dense
 * table's values read lock), with the values themselves (dense) or the
 * rows copied into req->io (sparse), and the clock the reply carries
 * (the table's applied clock; 0 for async tables).  It may copy them or
 * hand them to a non-blocking send, and must not block or call into the
 * table. */
typedef void (*pd_emit_fn)(void *arg, const float *v, uint64_t count, int64_t applied);

/* What a checkpoint writes (server/checkpoint.c): a full one, or an
 * incremental one, a delta of checkpoint `base`.  In a delta a sparse
 * table writes only the rows changed since it wrote `base` (all of them
 * if it did not write that one: created since, or the record gone); a
 * dense table writes itself whole either way. */
typedef struct pd_ck_save {
    uint64_t seq;   /* the checkpoint being written */
    uint64_t base;  /* 0: full; else the checkpoint it is a delta of */
} pd_ck_save;

typedef struct pd_table_ops {
    const char *kind; /* "dense", "sparse" */
    /* Checks that need no lock, before a handler reads the payload:
     * the range or the keys belong to this server's part.  0 or an error
     * (PARAMD_ERANGE, or the kind's refusal of the other kind's frame). */
    int (*check)(pd_table *t, const pd_table_req *rq, pd_err *e);
    int (*set)(pd_table *t, const pd_table_req *rq, pd_err *e);
    int (*push)(pd_table *t, const pd_table_req *rq, pd_err *e);
    int (*pull)(pd_table *t, const pd_table_req *rq, pd_emit_fn emit, void *arg,
                pd_err *e);
    /* The table's STATS line ("table 3 ...\n"); what snprintf returns. */
    int (*stats_line)(pd_table *t, char *out, size_t len);
    void (*destroy)(pd_table *t);
    /* Checkpoints (server/checkpoint.c).  save writes the table's whole
     * state (or, for a sparse table in a delta, its changed rows: see
     * pd_ck_save): the gate's clocks (pd_table_put_gate) and the store's
     * values, rule state and per-row counters, as one consistent snapshot
     * (it takes the locks it needs; failures are kept in the writer).
     * load reads exactly one section that save wrote on a server whose
     * part was `from` (this server's or another's, of this partition or
     * another), keeping what belongs to this server's part and
     * overwriting what an earlier section (a delta's base) loaded; 0, or
     * an error naming what does not fit. */
    void (*save)(pd_table *t, pd_ckw *w, const pd_ck_save *how);
    int (*load)(pd_table *t, pd_ckr *r, const pd_table_def *from, pd_err *e);
} pd_table_ops;

/* What every kind shares.  A store embeds it first. */
struct pd_table {
    const pd_table_ops *ops;
    uint32_t id;
    pd_table_def def;  /* immutable after create */
    pd_rule rule;      /* immutable after create */
    pd_pool *pool;     /* the server's apply threads (NULL: inline); not
                        * owned, outlives the table */
    int32_t W;         /* worker slots */
    pd_gate gate;      /* its mu is the table's lock */
};

/* Where a server's tables live: what every table it creates is given. */
typedef struct pd_table_env {
    int32_t W;         /* worker slots of the cluster */
    int32_t index, S;  /* this server, of S (sparse tables: key ownership) */
    pd_pool *pool;     /* apply threads, or NULL */
    uint64_t max_bytes; /* what one table may take here (values, rule
                        * state, clock sums); 0: no limit.  A dense table
                        * is checked when created (srv_on_table_create),
                        * a sparse one as its rows grow (PARAMD_ELIMIT) */
    const char *plugin_dir; /* where plugin=NAME is looked up (NAME.so);
                             * NULL: this server loads no plugins */
} pd_table_env;

/* Create this server's part of table `id` (dense or sparse by d->kind).
 * NULL with the reason in e: PARAMD_ENOMEM, PARAMD_EINVAL for a bad
 * definition, rule or plugin. */
pd_table *pd_table_create(uint32_t id, const pd_table_def *d,
                          const pd_table_env *env, pd_err *e);
void pd_table_destroy(pd_table *t); /* NULL-safe */
/* 1 if d describes the same table (an idempotent TABLE_CREATE). */
int pd_table_same_def(const pd_table *t, const pd_table_def *d);

static inline int pd_table_check(pd_table *t, const pd_table_req *rq, pd_err *e) {
    return t->ops->check(t, rq, e);
}
/* Write values (initial values: dense tables only). */
int pd_table_set(pd_table *t, const pd_table_req *rq, pd_err *e);
/* A worker's gradient: admitted by the gate, aggregated or applied. */
static inline int pd_table_push(pd_table *t, const pd_table_req *rq, pd_err *e) {
    return t->ops->push(t, rq, e);
}
/* Values, once the gate lets the pull's clock through (see pd_emit_fn).
 * PARAMD_EDEADLOCK if that waits on the caller's own missing push,
 * PARAMD_ESHUTDOWN if the table is stopped meanwhile. */
static inline int pd_table_pull(pd_table *t, const pd_table_req *rq, pd_emit_fn emit,
                                void *arg, pd_err *e) {
    return t->ops->pull(t, rq, emit, arg, e);
}
static inline int pd_table_stats_line(pd_table *t, char *out, size_t len) {
    return t->ops->stats_line(t, out, len);
}
/* A section of a checkpoint file: the table's id and definition, then
 * its state (ops.save). */
void pd_table_save(pd_table *t, pd_ckw *w, const pd_ck_save *how);
/* The gate's part of a section (mu held): applied, top. */
void pd_table_put_gate(pd_table *t, pd_ckw *w);

/* Membership and stop: the gate's (gate.h). */
static inline void pd_table_worker_gone(pd_table *t, int32_t w) {
    pd_gate_worker_gone(&t->gate, w);
}
static inline int64_t pd_table_join_begin(pd_table *t, int32_t w) {
    return pd_gate_join_begin(&t->gate, w);
}
static inline void pd_table_join_at(pd_table *t, int32_t w, int64_t J) {
    pd_gate_join_at(&t->gate, w, J);
}
static inline void pd_table_stop(pd_table *t) { pd_gate_stop(&t->gate); }
/* The clock every worker's pushes have been applied up to (sync, ssp) or
 * 0 (async), read under the lock. */
int64_t pd_table_applied(pd_table *t);

/* ==== For the stores (dense.c, sparse.c) ================================= */

/* The shared half of create: t's fields, the rule (its plugin resolved by
 * name in env->plugin_dir and loaded, never a path from the wire; its
 * hyper-parameters checked: they came over the wire) and the gate.
 * 0, or the error with the reason in e; then pd_table_fini frees what was
 * set up. */
int pd_table_init(pd_table *t, const pd_table_ops *ops, uint32_t id,
                  const pd_table_def *d, const pd_table_env *env,
                  const pd_gate_store *gs, const char *pull_hint, pd_err *e);
void pd_table_fini(pd_table *t);

/* The stores' constructors (pd_table_create picks one). */
pd_table *pd_dense_create(uint32_t id, const pd_table_def *d,
                          const pd_table_env *env, pd_err *e);
pd_table *pd_sparse_create(uint32_t id, const pd_table_def *d,
                           const pd_table_env *env, pd_err *e);

#endif
