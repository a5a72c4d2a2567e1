/*
 * coord.h - the coordinator: rendezvous and control of one cluster.
 * Membership: W workers expected at start, up to M worker slots; workers
 * that join a running cluster get a vacant rank and the clock to start at
 * (coord.c, "Joins").
 */
#ifndef PARAMD_COORD_COORD_H
#define PARAMD_COORD_COORD_H

#include <stdint.h>

#include "common/common.h"

typedef struct pd_coord_opts {
    const char *listen; /* "host:port"; default "127.0.0.1:0" */
    int32_t servers;    /* S >= 1 */
    int32_t workers;    /* W >= 1: workers expected at start */
    int32_t max_workers; /* M >= W worker slots (ranks 0..M-1) that can be
                          * live at once; 0: M = W.  Slots W..M-1 start
                          * vacant; a vacant slot, or the rank of a worker
                          * that left or died, can be joined later */
    int persist;        /* keep running after every worker left */
    int heartbeat_ms;   /* remove a worker silent this long; 0: never;
                         * <0: the default (10000) */
    const char *secret_file; /* the cluster secret (frame/auth.h), created
                              * when missing; NULL: none, and then listen
                              * must be loopback */
    uint32_t max_tables;     /* tables the cluster may hold; 0: the
                              * protocol's limit, PD_MAX_TABLES - 1 */
    uint64_t max_table_bytes; /* bytes of one dense table's values; 0:
                               * PD_COORD_MAX_TABLE_BYTES */
} pd_coord_opts;

/* Default of max_table_bytes: 4 GiB (2^30 floats). */
#define PD_COORD_MAX_TABLE_BYTES (4ull << 30)

typedef struct pd_coord pd_coord;

/* Load (or create) the secret, then bind the listening socket: refused
 * beyond loopback without a secret.  NULL with the reason in e. */
pd_coord *pd_coord_start(const pd_coord_opts *o, pd_err *e);
/* The bound "host:port" (port 0 resolved). */
const char *pd_coord_address(const pd_coord *c);
/* Serve until every worker has left (and servers were told to shut down),
 * or pd_coord_stop().  0 if every worker said goodbye, PARAMD_ECLOSED if
 * some worker disconnected without it.  Call once, from one thread. */
int pd_coord_run(pd_coord *c);
/* Ask the coordinator to stop: pd_coord_run returns once its connection
 * threads are gone.  Thread-safe, idempotent, returns at once (it takes
 * mu for a moment and shuts the listening socket down); may be called
 * before or during run, from any thread.  Lifetime: c must still be
 * allocated.  Every caller must have returned, and be unable to call
 * again, before pd_coord_free begins: the CLI disarms its signal thread
 * first (cli_stop_disarm, src/cli/util.h; docs/threading.md, "Stopping"). */
void pd_coord_stop(pd_coord *c);
/* After run returned and no pd_coord_stop can be running or come (above).
 * NULL-safe. */
void pd_coord_free(pd_coord *c);

#endif
