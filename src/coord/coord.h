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

/* The default of --checkpoint-full-every: a full checkpoint, then seven
 * deltas (docs/durability.md). */
#define PD_CKPT_FULL_EVERY 8

typedef struct pd_coord_opts {
    const char *listen; /* "host:port"; default "127.0.0.1:0" */
    int listen_fd;      /* > 0: serve on this listening TCP socket instead
                         * (inherited from a supervisor that keeps the
                         * address across restarts: paramd local); it is
                         * closed by pd_coord_free; 0: bind `listen` */
    int32_t servers;    /* S >= 1 */
    int32_t workers;    /* W >= 1: workers expected at start */
    int32_t max_workers; /* M >= W worker slots (ranks 0..M-1) that can be
                          * live at once; 0: M = W.  Slots W..M-1 start
                          * vacant; a vacant slot, or the rank of a worker
                          * that left or died, can be joined later */
    int persist;        /* keep running after every worker left */
    int heartbeat_ms;   /* remove a worker silent this long; 0: never;
                         * <0: the default (10000) */
    const char *checkpoint_dir; /* where checkpoints go (an absolute path
                                 * every server can write); NULL: none */
    double checkpoint_every_s;  /* take one this often; 0: only on request */
    int64_t checkpoint_every_clocks; /* ...or when the slowest worker
                                      * passed the last one by this; 0: no */
    int32_t checkpoint_full_every; /* every Kth checkpoint is full, those
                                    * between are incremental (deltas of
                                    * sparse tables); 1: all full; 0: the
                                    * default (PD_CKPT_FULL_EVERY) */
    const char *restore;        /* start from this checkpoint's registry
                                 * and clock; NULL: a fresh cluster */
    const char *metrics; /* serve Prometheus metrics on this HOST:PORT
                          * (metrics/http.h); NULL: no endpoint */
    int startup_ms;     /* give up (end the cluster with an error) when
                         * the S servers and W workers have not all
                         * registered this long after start; 0: never;
                         * <0: the default (300000) (startup.c) */
    int rejoin_ms;      /* told to servers and workers: when this
                         * coordinator is lost, they keep running this long,
                         * reconnecting to its address, so that a coordinator
                         * started again there takes the cluster back
                         * (takeover.c); 0: they stop at once; <0: the
                         * default (60000) */
    int replace_ms;     /* a server lost while workers run: wait this long
                         * for a replacement server (paramd server) that
                         * restores the lost shard from the newest
                         * checkpoint, the workers waiting (replace.c);
                         * 0: the workers' requests to it fail at once */
    int expect_rejoin;  /* started again to take a running cluster back
                         * (paramd local --restarts): a server that
                         * registers afresh before the cluster's servers
                         * rejoined is held until they did (it then
                         * becomes a copy), for up to rejoin_ms */
    int replicas;       /* copies of each shard, on different servers
                         * (copies.c); <= 1: none */
    int elastic;        /* servers may join (paramd server --join: a
                         * standby) and shards move to them (paramd
                         * drain) while workers train (copies.c) */
    int report_ms;      /* until then, say who is missing after this long
                         * and at doubling intervals; <= 0: 5000 */
    /* Limits (docs/limits.md; 0: the default). */
    int max_conns;      /* connections at once, handshakes included;
                         * default 2 x worker slots + servers + 256 */
    int max_pending;    /* in their handshake at once [64] */
    int handshake_ms;   /* accept to welcome [5000] */
    int frame_ms;       /* a frame's first byte to its last [30000] */
    int max_tables;     /* tables in the registry [PD_MAX_TABLES - 1] */
    const char *secret_file; /* the cluster secret (frame/auth.h), created
                              * when missing; NULL: none, and then listen
                              * must be loopback */
} pd_coord_opts;

typedef struct pd_coord pd_coord;

/* Load (or create) the secret, then bind the listening socket: refused
 * beyond loopback without a secret.  NULL with the reason in e. */
pd_coord *pd_coord_start(const pd_coord_opts *o, pd_err *e);
/* The bound "host:port" (port 0 resolved). */
const char *pd_coord_address(const pd_coord *c);
/* The metrics endpoint's bound "host:port", or NULL without one. */
const char *pd_coord_metrics_address(const pd_coord *c);
/* After run returned PARAMD_ETIMEDOUT: why the cluster was ended. */
const char *pd_coord_failure(const pd_coord *c);
/* Serve until every worker has left (and servers were told to shut down),
 * or pd_coord_stop().  0 if every worker said goodbye and no server was
 * lost, PARAMD_ECLOSED if some worker disconnected without it or a server
 * disconnected before the end (pd_coord_failures says how many),
 * PARAMD_ETIMEDOUT if the cluster did not assemble in time (startup_ms;
 * the reason was logged and told to every process: pd_coord_failure).
 * Call once, from one thread. */
int pd_coord_run(pd_coord *c);
/* Ask the coordinator to stop: pd_coord_run returns once its connection
 * threads are gone.  Thread-safe, idempotent, returns at once (it takes
 * mu for a moment and shuts the listening socket down); may be called
 * before or during run, from any thread.  Lifetime: c must still be
 * allocated.  Every caller must have returned, and be unable to call
 * again, before pd_coord_free begins: the CLI disarms its signal thread
 * first (cli_stop_disarm, src/cli/util.h; docs/threading.md, "Stopping"). */
void pd_coord_stop(pd_coord *c);
/* After run returned: workers that died (disconnected or fell silent
 * without saying goodbye) and servers lost while the cluster ran. */
void pd_coord_failures(pd_coord *c, int *workers_died, int *servers_lost);
/* How many lost servers a replacement took the place of (replace.c). */
int pd_coord_servers_replaced(pd_coord *co);
/* Lost servers whose copy took their place (--replicas): not counted by
 * pd_coord_failures, since nothing acknowledged was lost. */
int pd_coord_promotions(pd_coord *co);
/* After run returned and no pd_coord_stop can be running or come (above).
 * NULL-safe. */
void pd_coord_free(pd_coord *c);

#endif
