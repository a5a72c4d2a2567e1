/*
 * ckfile.h - checkpoint files: written atomically, read back only whole
 * and checked.  The format of what is inside belongs to the writers (the
 * stores: server/dense.c, server/sparse.c; the manifest: manifest.h);
 * this layer gives every file the same frame and the same guarantees.
 *
 *   off  size  field
 *    0    8    magic "PRMDCKPT"
 *    8    4    u32 format version (PD_CK_VERSION)
 *   12    4    u32 kind (PD_CK_SERVER, PD_CK_MANIFEST, and for incremental
 *                  checkpoints PD_CK_SERVER_DELTA, PD_CK_MANIFEST_DELTA)
 *   16    8    u64 body bytes (n)
 *   24    n    body
 *   24+n  4    u32 CRC-32 (zlib's) of bytes [0, 24 + n)
 *
 * Writing.  pd_ckw_open creates DIR/NAME.tmp; writes are buffered and
 * summed into the CRC; pd_ckw_commit writes the trailer, patches the body
 * length, fsyncs the file, renames it to DIR/NAME and fsyncs DIR, so a
 * file under its final name is always whole, and a crash (or a full disk)
 * leaves at most a .tmp file behind.  Any failure is kept in the writer
 * and reported once by commit (which then removes the .tmp), so writers
 * need not check every put.
 *
 * Reading.  pd_ckr_open maps a whole file read-only and checks its frame
 * before anything is read from it: magic, version, kind, the length
 * against the file's size, and the CRC.  A truncated, corrupt, foreign or
 * wrong-version file is refused with a message that names the file and
 * what is wrong.  The body is then read with the bounds-checked pd_rd
 * (common/bytes.h): nothing outside the file is ever read.
 *
 * Not thread-safe: one writer or reader per thread.
 */
#ifndef PARAMD_DURABLE_CKFILE_H
#define PARAMD_DURABLE_CKFILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "common/common.h"

#define PD_CK_VERSION 1
#define PD_CK_HDR 24
/* A full checkpoint's files are of kinds 1 and 2, as they were before
 * incremental checkpoints existed (so either paramd reads them); an
 * incremental checkpoint's are of kinds 3 and 4, which a paramd that
 * knows no deltas refuses by kind rather than misreading. */
enum { PD_CK_SERVER = 1, PD_CK_MANIFEST = 2, PD_CK_SERVER_DELTA = 3, PD_CK_MANIFEST_DELTA = 4 };
/* A shard's whole state as a primary sends it to a new copy of itself
 * (server/replica.c): never a checkpoint, never kept. */
enum { PD_CK_SEED = 5 };

typedef struct pd_ckw {
    int fd;
    char path[4096];     /* the final name */
    char tmp[4096];      /* where it is written */
    uint32_t crc;
    uint64_t body;       /* body bytes written */
    uint8_t *buf;        /* write buffer */
    size_t used;
    int64_t synced;      /* bytes already handed to writeback */
    pd_err err;          /* the first failure; code 0 while all went well */
    int nosync;          /* set after open: a scratch file (a seed), not
                          * made durable (no fsync, no writeback) */
} pd_ckw;

/* Start DIR/NAME (as DIR/NAME.tmp) of the given kind.  0, or an error
 * (PARAMD_EIO with the path and the reason). */
int pd_ckw_open(pd_ckw *w, const char *dir, const char *name, uint32_t kind, pd_err *e);
/* Append bytes / little-endian integers / floats to the body.  Failures
 * are kept in w->err. */
void pd_ckw_bytes(pd_ckw *w, const void *p, size_t n);
void pd_ckw_u32(pd_ckw *w, uint32_t v);
void pd_ckw_u64(pd_ckw *w, uint64_t v);
void pd_ckw_floats(pd_ckw *w, const float *v, uint64_t n);
/* Finish: trailer, fsync, rename, fsync of the directory.  0 and *bytes,
 * *crc of the whole file (either may be NULL); or the first error of the
 * writer's life (the .tmp removed). */
int pd_ckw_commit(pd_ckw *w, uint64_t *bytes, uint32_t *crc, pd_err *e);
/* Give up: close and remove the .tmp.  Harmless after commit. */
void pd_ckw_abort(pd_ckw *w);

typedef struct pd_ckr {
    const uint8_t *map;  /* the whole file, read-only */
    size_t size;
    uint32_t kind;
    uint32_t crc;        /* the file's own CRC (its trailer) */
    pd_rd body;          /* a reader over the body */
    char path[4096];
} pd_ckr;

/* Map and check path (see above); want_kind 0 takes any kind.  0, or
 * PARAMD_EIO (cannot open or map) / PARAMD_EPROTO (not a whole paramd
 * checkpoint file of this version) with the path in the message. */
int pd_ckr_open(pd_ckr *r, const char *path, uint32_t want_kind, pd_err *e);
void pd_ckr_close(pd_ckr *r); /* harmless twice */

/* Little-endian floats out of a body at r->body's position (n floats),
 * into dst (may be NULL: skip).  0, or -1 past the end (r->body.bad). */
int pd_ckr_floats(pd_ckr *r, float *dst, uint64_t n);

/* Make dir and its parents (mode 0755).  0 or PARAMD_EIO. */
int pd_mkdirs(const char *dir, pd_err *e);
/* Write `text` to DIR/NAME atomically (as a checkpoint file is), for the
 * pointer to the latest checkpoint.  0 or PARAMD_EIO. */
int pd_write_atomic(const char *dir, const char *name, const char *text, pd_err *e);

#endif
