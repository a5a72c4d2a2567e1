/*
 * spec.h - a table's specification: the user's "rule=sgd lr=0.1
 * consistency=sync" string, parsed, validated and written back in one
 * canonical form.
 *
 * Workers compare specs through the coordinator by their canonical text, so
 * "lr=0.1 rule=sgd" and "rule=sgd  lr=0.10" open the same table.  The
 * parsed form travels to servers as a pd_table_def (wire.h).
 *
 * elastic=yes|no (default yes): may a worker that joins a running cluster
 * (a replacement for a dead rank, or a spare slot of --max-workers) count
 * in this table's clocks?  Yes by default because a join only happens when
 * an operator starts a worker into a vacant slot, and the table's math is
 * then exactly what it was before that slot emptied: each clock is the
 * mean of the gradients of the workers counted for it, as when a worker
 * dies.  A table whose math needs a fixed set of workers (aggregate=sum
 * with a learning rate tuned for W, data owned per rank) says elastic=no:
 * its clocks never wait for a joiner, and the joiner's TABLE_OPEN and
 * pushes are refused with PARAMD_EWORKER.
 */
#ifndef PARAMD_TABLE_SPEC_H
#define PARAMD_TABLE_SPEC_H

#include "common/common.h"
#include "table/def.h"
#include "table/rules.h"

/* Order of hyper-parameters in pd_table_def.hyper. */
#define PD_HYPER_COUNT 9
extern const char *const pd_hyper_names[PD_HYPER_COUNT];

/* Parse spec (NULL or "" = defaults) into d's rule, consistency, aggregate,
 * hyper and plugin fields, and for a sparse table its init, seed and
 * seed_given (n, lo, hi and kind untouched: set kind first, since init= and
 * seed= are refused for dense tables).  PARAMD_EINVAL with a message naming
 * the bad key or value. */
int pd_spec_parse(const char *spec, pd_table_def *d, pd_err *e);
/* Canonical text of d's spec fields. */
void pd_spec_canonical(const pd_table_def *d, char *out, size_t outlen);
/* 0 if the canonical spec text says elastic=no, else 1 (the default: a
 * worker that joins a running cluster counts in the table).  For the
 * coordinator, which keeps specs as text. */
int pd_spec_elastic(const char *canonical);
/* 1 if the canonical spec text is a sparse table's (it has init=), else
 * 0.  For the coordinator's quotas. */
int pd_spec_sparse(const char *canonical);
/* The hyper array of d as a pd_rule_hyper. */
void pd_spec_hyper(const pd_table_def *d, pd_rule_hyper *h);

#endif
