/*
 * manifest.h - what a checkpoint is: the clock it was cut at, the
 * servers' files (names, sizes, checksums) and the coordinator's table
 * registry (name, size, spec of every table, by id).  The coordinator
 * writes it (a checkpoint file of kind PD_CK_MANIFEST, ckfile.h) only
 * after every server's file is in place, so a checkpoint directory with a
 * MANIFEST is complete, and one without it is not a checkpoint.  The
 * checkpoint root's LATEST names the newest complete one.
 *
 *   body  u64 seq, i64 clock, u32 S (servers that wrote it), u32 W, u32 M,
 *         u32 nfiles, nfiles x (str name, u64 bytes, u32 crc),
 *         u32 ntables, ntables x (u32 id, u32 dropped, str name, u64 n,
 *         str spec)
 *   and, in the manifest of an incremental checkpoint (kind
 *   PD_CK_MANIFEST_DELTA; a full one is PD_CK_MANIFEST, with the body
 *   above and nothing more, as before deltas existed):
 *         u64 base seq, str base (its directory's name, a sibling of this
 *         one), u32 base crc (the CRC-32 of the base's MANIFEST file),
 *         u32 depth (1 for a delta of a full checkpoint, base's depth + 1
 *         for a delta of a delta)
 *
 * The chain.  An incremental checkpoint holds, for sparse tables, only the
 * rows changed since its base (dense tables whole); restoring it means
 * restoring its base first, and so on back to a full checkpoint.
 * pd_ck_chain reads and checks the whole chain before anything is loaded:
 * each base must exist, be complete, and be exactly the checkpoint its
 * successor names (its manifest's checksum, its number, its servers).
 *
 * Layout of a checkpoint root:
 *   ROOT/LATEST                     "ckpt-000007\n"
 *   ROOT/ckpt-000007/MANIFEST
 *   ROOT/ckpt-000007/server-0-of-2.pdck, server-1-of-2.pdck
 */
#ifndef PARAMD_DURABLE_MANIFEST_H
#define PARAMD_DURABLE_MANIFEST_H

#include <stdint.h>

#include "common/common.h"
#include "durable/ckfile.h"
#include "table/def.h"
#include "wire/wire.h"

#define PD_CK_MAX_FILES 4096
#define PD_CK_NAME_MAX 255

typedef struct pd_ck_file {
    char name[PD_CK_NAME_MAX + 1];
    uint64_t bytes;
    uint32_t crc;
} pd_ck_file;

typedef struct pd_ck_table {
    uint32_t id;
    uint32_t dropped;  /* 1: its creator left before it was ready */
    char name[PD_CK_NAME_MAX + 1];
    uint64_t n;
    char spec[PD_MAX_SPEC + 1];
} pd_ck_table;

typedef struct pd_manifest {
    uint64_t seq;
    int64_t clock;
    uint32_t S, W, M;
    uint32_t nfiles, ntables;
    pd_ck_file *files;
    pd_ck_table *tables;
    /* An incremental checkpoint (delta = 1): what it is a delta of. */
    uint32_t delta;
    uint64_t base_seq;
    char base[PD_CK_NAME_MAX + 1];
    uint32_t base_crc;
    uint32_t depth;
    uint32_t crc;      /* set by pd_manifest_read: the file's own CRC-32 */
} pd_manifest;

/* The longest chain of deltas restored (a manifest naming a deeper one
 * is refused: not a manifest paramd wrote, whose --checkpoint-full-every
 * is at most this).  It bounds what reading a chain allocates. */
#define PD_CK_MAX_DEPTH 1000

/* Write m as DIR/MANIFEST (kind PD_CK_MANIFEST_DELTA if m->delta).  0
 * with the file's CRC-32 in *crc (may be NULL), or the error. */
int pd_manifest_write(const char *dir, const pd_manifest *m, uint32_t *crc, pd_err *e);
/* Read DIR/MANIFEST (allocating m's arrays: pd_manifest_free).  0, or
 * PARAMD_EIO / PARAMD_EPROTO naming the file and what is wrong. */
int pd_manifest_read(const char *dir, pd_manifest *m, pd_err *e);
void pd_manifest_free(pd_manifest *m);

/* A checkpoint and the ones it depends on, oldest (the full one) first. */
typedef struct pd_ck_chain {
    uint32_t n;          /* links: 1 for a full checkpoint */
    pd_manifest *m;      /* n manifests; m[n-1] is the one asked for */
    char (*dir)[4096];   /* n directories */
} pd_ck_chain;

/* Read the manifest in dir and those of its bases back to a full one,
 * checking each base is the one named (see above).  0, or PARAMD_EIO /
 * PARAMD_EPROTO naming the file and what is wrong (then c holds nothing).
 * Server files are not opened here. */
int pd_ck_chain_read(const char *dir, pd_ck_chain *c, pd_err *e);
void pd_ck_chain_free(pd_ck_chain *c);

/* The directory of the checkpoint to restore from `path`: path itself if
 * it holds a MANIFEST, else ROOT/<what ROOT/LATEST names>.  0 with out
 * set, or PARAMD_EIO saying what was looked for. */
int pd_ck_resolve(const char *path, char *out, size_t outlen, pd_err *e);
/* "server-K-of-S.pdck" */
void pd_ck_server_file(char *out, size_t len, int32_t k, int32_t S);

#endif
