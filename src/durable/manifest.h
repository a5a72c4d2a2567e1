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
} pd_manifest;

/* Write m as DIR/MANIFEST.  0 or the error. */
int pd_manifest_write(const char *dir, const pd_manifest *m, pd_err *e);
/* Read DIR/MANIFEST (allocating m's arrays: pd_manifest_free).  0, or
 * PARAMD_EIO / PARAMD_EPROTO naming the file and what is wrong. */
int pd_manifest_read(const char *dir, pd_manifest *m, pd_err *e);
void pd_manifest_free(pd_manifest *m);

/* The directory of the checkpoint to restore from `path`: path itself if
 * it holds a MANIFEST, else ROOT/<what ROOT/LATEST names>.  0 with out
 * set, or PARAMD_EIO saying what was looked for. */
int pd_ck_resolve(const char *path, char *out, size_t outlen, pd_err *e);
/* "server-K-of-S.pdck" */
void pd_ck_server_file(char *out, size_t len, int32_t k, int32_t S);

#endif
