/*
 * rejoin.h - SERVER_REJOIN's records: what a server tells a coordinator
 * started again, so that it takes the running cluster back
 * (coord/takeover.c).  The server encodes them (server/membership.c), the
 * coordinator decodes them, with this one codec.
 *
 * A rejoin is a sequence of records, sent in one or more frames of up to
 * PD_MAX_CTRL_PAYLOAD that are cut between records (the header's clock is
 * 1 on the last frame):
 *
 *   'S' u32 index, u32 S, u32 W, u32 M, 32 bytes grant key, str address
 *       the head: first, once
 *   'T' u32 table id, str name, u64 n, str canonical spec
 *       one per table the server holds
 *   'R' u32 rank, u32 newest ticket incarnation seen, u8 gone (0 or 1)
 *       one per rank the server saw or was told is gone
 *
 * Ranks are < M, tables 1..PD_MAX_TABLES-1 (at most PD_MAX_TABLES - 1 of
 * them), S 1..PD_MAX_SERVERS with index < S, 1 <= W <= M <= 65536.
 */
#ifndef PARAMD_WIRE_REJOIN_H
#define PARAMD_WIRE_REJOIN_H

#include <stddef.h>
#include <stdint.h>

#include "wire/wire.h"

#define PD_REJOIN_KEY_BYTES 32
#define PD_REJOIN_MAX_SPEC 1023 /* table/def.h's PD_MAX_SPEC */
#define PD_REJOIN_MAX_TABLES 4095
#define PD_REJOIN_MAX_SLOTS 65536

typedef struct pd_rejoin_table {
    uint32_t id;
    char name[PD_MAX_NAME + 1];
    uint64_t n;
    char spec[PD_REJOIN_MAX_SPEC + 1];
} pd_rejoin_table;

/* What the records read so far said (zeroed to start). */
typedef struct pd_rejoin {
    int have_head;
    uint32_t idx, S, W, M;
    uint8_t key[PD_REJOIN_KEY_BYTES];
    char addr[PD_MAX_ADDR + 1];
    pd_rejoin_table *t;
    uint32_t nt, tcap;
    uint32_t *gen;  /* M, after the head */
    uint8_t *gone;  /* M */
} pd_rejoin;

/* Records, appended to b.  The head first. */
void pd_rejoin_put_head(pd_buf *b, uint32_t idx, uint32_t S, uint32_t W, uint32_t M,
                        const uint8_t key[PD_REJOIN_KEY_BYTES], const char *addr);
void pd_rejoin_put_table(pd_buf *b, uint32_t id, const char *name, uint64_t n,
                         const char *spec);
void pd_rejoin_put_rank(pd_buf *b, uint32_t rank, uint32_t gen, int gone);

/* Read one frame's records into rj (the parts in order).  0, or
 * PARAMD_EPROTO / PARAMD_ENOMEM with the reason in e: rj may then hold
 * part of what was read, and is to be freed. */
int pd_rejoin_read(pd_rejoin *rj, const void *p, size_t len, pd_err *e);
/* Frees what rj holds and zeroes it (wipe the key first where it is a
 * secret: pd_wipe, frame/auth.h). */
void pd_rejoin_free(pd_rejoin *rj);

#endif
