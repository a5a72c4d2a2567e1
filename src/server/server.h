/*
 * server.h - a paramd server process: holds one shard of every table and
 * answers workers' pushes and pulls.
 */
#ifndef PARAMD_SERVER_SERVER_H
#define PARAMD_SERVER_SERVER_H

#include <stdint.h>

#include "common/common.h"

typedef struct pd_server_opts {
    const char *coordinator; /* "host:port" */
    const char *listen;      /* "host:port"; default "127.0.0.1:0" */
    const char *advertise;   /* address workers should use; default: bound */
    const char *advertise_host; /* or only its host part, with the bound
                              * port (paramd launch, --advertise-host) */
    const char *host_id;     /* this host's identity for the shared-memory
                              * transport (net/host.h); NULL: computed */
    uint64_t max_frame;      /* payload limit; 0: PD_MAX_FRAME_DEFAULT */
    int timeout_ms;          /* connecting to the coordinator; 0: 30000 */
    int no_shm;              /* do not offer the shared-memory transport */
    int apply_threads;       /* threads an update may use (pool.h); <= 1:
                              * the connection thread alone */
    int join;                /* --join: a running cluster that has its servers
                              * takes this one as a standby (coord/moves.c) */
    int place;               /* a place of paramd server --shards N: a slot if
                              * one is free, else a standby (with --elastic) */
    const char *restore;     /* a checkpoint (root or ckpt-* directory) to
                              * start from, or NULL (docs/durability.md) */
    const char *fault;       /* tests only: wrap each accepted connection in
                              * net/fault.h with this spec; NULL: off */
    const char *coord_fault; /* tests only: wrap the first connection to the
                              * coordinator so (a link that breaks); NULL: off */
    const char *metrics;     /* serve Prometheus metrics on this HOST:PORT
                              * (metrics/http.h); NULL: no endpoint */
    /* Limits (docs/limits.md; 0: the default). */
    int max_conns;           /* connections at once, handshakes included;
                              * default 2 x worker slots + 256 */
    int max_pending;         /* in their handshake at once [64] */
    int handshake_ms;        /* accept to welcome [5000] */
    int frame_ms;            /* a frame's first byte to its last [30000] */
    int copy_timeout_ms;     /* a copy of this server's shard that has not
                              * taken or acknowledged an update this long
                              * is dropped (replica.c) [10000] */
    int max_tables;          /* tables on this server [PD_MAX_TABLES - 1] */
    uint64_t max_table_bytes; /* one table's part on this server: values,
                              * rule state and clock sums [half the
                              * machine's memory] */
    const char *secret_file; /* the cluster secret (the coordinator's
                              * file, frame/auth.h); NULL: none, and then
                              * listen must be loopback */
    const char *plugin_dir;  /* the only place update-rule plugins are
                              * loaded from (plugin=NAME is DIR/NAME.so);
                              * NULL: none are.  Checked at start: a
                              * directory nobody else may write to */
} pd_server_opts;

typedef struct pd_server pd_server;

/* Bind the listening socket and register with the coordinator.  NULL with
 * the reason in e. */
pd_server *pd_server_start(const pd_server_opts *o, pd_err *e);
/* Serve until the coordinator says shutdown, its connection is lost, or
 * pd_server_stop() is called.  Returns 0 on a clean shutdown, else an error
 * code after logging the reason.  Call once, from one thread. */
int pd_server_run(pd_server *s);
/* Ask the server to stop: pd_server_run returns soon after.  Thread-safe,
 * idempotent, returns at once (it takes server.mu for a moment and shuts
 * the listening sockets down); may be called before or during run, from
 * any thread (the CLI's signal thread, the server's coordinator watcher).
 * Lifetime: s must still be allocated.  Every caller outside the server
 * must have returned, and be unable to call again, before pd_server_free
 * begins: the CLI disarms its signal thread first (cli_stop_disarm,
 * src/cli/util.h; docs/threading.md, "Stopping"). */
void pd_server_stop(pd_server *s);
/* Free a server after run returned, once no pd_server_stop can be
 * running or come (above).  NULL-safe. */
void pd_server_free(pd_server *s);
/* The server's index and bound address (valid after start). */
int pd_server_index(const pd_server *s);
/* 0 if the server serves its slot (pd_server_index), j > 0 if it
 * registered as copy j of that slot (--replicas), as it was after start. */
int pd_server_copy(const pd_server *s);
/* After pd_server_run returned: 0 if the server did not retire; 1 if its
 * shard moved away (RETIRE) and it should stop; 2 if it moved away and a
 * server of `paramd server --shards N` should wait as a standby for
 * another (the coordinator's PD_RETIRE_STAY). */
int pd_server_retired(pd_server *s);
const char *pd_server_address(const pd_server *s);
/* The metrics endpoint's bound "host:port", or NULL without one. */
const char *pd_server_metrics_address(const pd_server *s);
/* The address registered for workers to dial, and this host's identity
 * (valid after start). */
const char *pd_server_advertised(const pd_server *s);
const char *pd_server_host_id(const pd_server *s);

#endif
