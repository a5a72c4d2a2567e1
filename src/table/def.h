/*
 * def.h - what a table is, as every part of paramd sees it: its kind,
 * size, update rule and hyper-parameters, consistency, and where its
 * parameters live among the servers (the partition formulas).
 *
 * A pd_table_def is what a worker's spec string (table/spec.h) parses
 * into, what travels to servers in TABLE_CREATE (wire/wire.h encodes and
 * decodes it) and what a server's table keeps (server/table.h).  Nothing
 * here does I/O or knows the frame format.
 */
#ifndef PARAMD_TABLE_DEF_H
#define PARAMD_TABLE_DEF_H

#include <stdint.h>

#include "common/hash.h"

#define PD_MAX_SPEC 1023        /* canonical spec bytes */
#define PD_MAX_PLUGIN_PATH 255  /* plugin= bytes (a name: table/rules.h) */
#define PD_MAX_HYPER 16         /* hyper-parameters a definition carries */
#define PD_MAX_WORKERS 65536    /* worker slots of a cluster */
#define PD_TABLE_NAME_MAX 255   /* a table's name (wire.h's PD_MAX_NAME) */

/* Consistency and aggregation in a table spec. */
enum { PD_CONS_ASYNC = 0, PD_CONS_SYNC = 1, PD_CONS_SSP = 2 };
#define PD_MAX_STALENESS 1000 /* each clock of slack costs a sum buffer */
enum { PD_AGG_MEAN = 0, PD_AGG_SUM = 1 };

/* Table kinds, and how a sparse table initialises a row it has never seen
 * (docs/sparse.md). */
enum { PD_TABLE_DENSE = 0, PD_TABLE_SPARSE = 1 };
enum { PD_INIT_ZEROS = 0, PD_INIT_UNIFORM = 1, PD_INIT_NORMAL = 2 };
#define PD_MAX_SPARSE_DIM 65536 /* floats per row of a sparse table */

typedef struct pd_table_def {
    uint64_t n, lo, hi;
    uint32_t rule, consistency, aggregate;
    uint32_t staleness; /* ssp: s */
    uint32_t backup;    /* sync: apply a clock without the last `backup` */
    double hyper[PD_MAX_HYPER];
    uint32_t nhyper;
    char plugin[PD_MAX_PLUGIN_PATH + 1];
    uint32_t kind;      /* PD_TABLE_DENSE or PD_TABLE_SPARSE */
    uint32_t init;      /* sparse: PD_INIT_* */
    double init_param;  /* sparse: uniform's a, normal's s; 0 for zeros */
    uint64_t seed;      /* sparse: seeds every row's initial values */
    int seed_given;     /* pd_spec_parse: seed= was in the spec (not sent) */
    uint32_t elastic;   /* 1: workers may join a running cluster and count
                         * in this table (spec elastic=yes, the default);
                         * sent as the flag PD_DEF_FIXED when 0 */
    char name[PD_TABLE_NAME_MAX + 1]; /* the registry's name, for servers'
                         * messages and metrics ("" if the creator sent
                         * none); not part of what makes two definitions
                         * the same */
} pd_table_def;

/* Dense partitioning: server k of S holds floats [lo(k), lo(k+1)) of a
 * table of n, lo(k) = floor(n*k/S): contiguous, covering, and balanced
 * (sizes differ by at most one).  Clients and tests use this one formula. */
static inline uint64_t pd_partition_lo(uint64_t n, uint32_t S, uint32_t k) {
    return (uint64_t)(((unsigned __int128)n * k) / S);
}

/* Sparse partitioning: the server of S that holds `key`.  Jump
 * consistent hash of the mixed key: balanced, and a cluster of S+1 servers
 * moves only the keys that the new server takes.  Clients, servers (which
 * refuse keys that are not theirs) and tests use this one formula. */
static inline uint32_t pd_sparse_server(uint64_t key, uint32_t S) {
    return S <= 1 ? 0 : pd_jump_hash(pd_mix64(key), S);
}

#endif
