/*
 * map.h - the cluster map: which servers a cluster has and where they
 * listen, with an epoch that names this version of the map.  The
 * coordinator encodes it (REG_WORKER reply for a worker, MAP reply for a
 * tool); workers and tools decode it with this one codec.
 *
 *   i32 rank (-1 for a tool), u32 W (workers the cluster starts with),
 *   u32 S, u64 epoch, S x str server address, and for a worker only:
 *   u32 heartbeat timeout in ms (0: none), u32 M (worker slots, ranks
 *   0..M-1), i64 start clock (0, or the clock a joiner starts at), and
 *   (optional: a map without it has no ticket) the worker's rank ticket,
 *   u32 incarnation and PD_MAP_TICKET_BYTES of the coordinator's MAC
 *   (frame/auth.h: what the worker shows in its later HELLOs), then
 *   (optional: 0 without it) u64 barriers: how many barriers the cluster
 *   had released when the worker got its rank (a worker that joins a
 *   running cluster knows which barriers it missed), then (optional: 0
 *   without it) u32 rejoin ms: how long the worker keeps running without
 *   a coordinator, reconnecting to its address (docs/durability.md).
 *
 * The epoch is 1 for the map a cluster starts with.  It is the place for
 * maps that change (servers added, replaced or drained): a later map gets
 * a higher epoch, and a server can tell a client that its map is stale.
 */
#ifndef PARAMD_WIRE_MAP_H
#define PARAMD_WIRE_MAP_H

#include <stdint.h>

#include "wire/wire.h"

typedef struct pd_map {
    int32_t rank;        /* the worker's rank; -1: a tool's map */
    uint32_t W, S;
    uint64_t epoch;
    char (*addr)[PD_MAX_ADDR + 1]; /* S addresses; decode allocates them */
    /* A worker's map only (rank >= 0): */
    uint32_t heartbeat_ms;
    uint32_t M;          /* worker slots */
    int64_t start;       /* the clock this worker starts at */
    int has_ticket;      /* the worker's rank ticket follows */
    uint32_t ticket_gen;
    uint8_t ticket[32];  /* PD_MAP_TICKET_BYTES */
    uint64_t barriers;   /* barriers released before this rank was given */
    uint32_t rejoin_ms;  /* keep running this long without a coordinator,
                          * reconnecting (0: fail at once) */
    uint32_t replace_ms; /* wait this long for a lost server's replacement
                          * (SERVER_WAIT) before failing (0: fail at once) */
    uint32_t replicas;   /* copies of each shard (1: none): a request sent
                          * again after a failover keeps its ids */
} pd_map;
#define PD_MAP_TICKET_BYTES 32

/* Encode m (m->addr holds m->S addresses). */
void pd_map_encode(pd_buf *b, const pd_map *m);
/* Decode and check a map: 1..PD_MAX_SERVERS servers, W >= 1, and for a
 * worker's map M >= W, rank < M, a heartbeat period up to a day and a
 * start clock >= 0.  0 with m->addr allocated (pd_map_free), or
 * PARAMD_EPROTO / PARAMD_ENOMEM with nothing allocated. */
int pd_map_decode(const void *p, size_t len, pd_map *m, pd_err *e);
void pd_map_free(pd_map *m); /* frees addr; NULL-safe */

#endif
