/*
 * local.h - a cluster of child processes on this machine (local.c),
 * used by `paramd local`, `paramd train` and `paramd bench`.
 */
#ifndef PARAMD_CLI_LOCAL_H
#define PARAMD_CLI_LOCAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct pd_local pd_local;

/* Flags: worker 0 writes to our stdout directly (not through a pipe with
 * a prefix), so that it can draw a progress bar on a terminal. */
#define PD_LOCAL_RANK0_STDOUT 1
/* A worker other than worker 0 that fails does not end the cluster: the
 * others go on without it, and pd_local_wait returns 3 (local.c). */
#define PD_LOCAL_KEEP_GOING 2
/* With PD_LOCAL_KEEP_GOING, worker 0 too (paramd train: another worker
 * writes the results when worker 0 is lost). */
#define PD_LOCAL_ANY_WORKER 4
/* The coordinator waits for a lost server's replacement (--replace-s 60):
 * with pd_local_server_restarts, a server that exits while workers run is
 * replaced by a new one, which restores only its shard from the newest
 * checkpoint while the others keep theirs (docs/durability.md). */
#define PD_LOCAL_REPLACE_SERVERS 8
/* R copies of every shard (--replicas R, 2..8; docs/durability.md): S x R
 * servers are started; a server that exits while workers run is not a
 * failure (a copy takes a lost primary's place) and a new server is
 * started, which becomes a copy, seeded while training goes on. */
/* Servers may join (paramd server --join) and shards move to them
 * (paramd drain) while workers train (--elastic; docs/durability.md); a
 * server that exits 0 while workers run is one that was drained. */
#define PD_LOCAL_ELASTIC 16
#define PD_LOCAL_REPLICAS(r) ((r) << 8)
#define PD_LOCAL_REPLICAS_OF(flags) (((flags) >> 8) & 15)

/* Start a coordinator listening on host, S servers and W workers running
 * worker_argv (with worker_env "K=V" strings added); the coordinator has
 * M worker slots (--max-workers; 0: W).  Blocks SIGCHLD,
 * SIGINT, SIGTERM, SIGHUP in the calling thread (call before starting
 * threads).  Returns 0, or -1 after printing why (then *out may be set and
 * must still be waited and freed). */
int pd_local_start(pd_local **out, int32_t S, int32_t W, int32_t M, const char *host,
                   char *const *worker_argv, char *const *worker_env, int flags);
/* Allow up to n replacements (before pd_local_wait): a worker that fails
 * while others run is started again with the same rank (it joins the
 * running cluster at the first clock nobody pushed for, with
 * PARAMD_REPLACEMENT=1 in its environment), worker 0 included; once n
 * were started, failures are handled as without (KEEP_GOING or the end).
 * A worker the coordinator removed for silence is not replaced: its
 * process has not exited. */
void pd_local_replace(pd_local *L, int n);
/* Allow up to n coordinator restarts (before pd_local_wait): a
 * coordinator that exits while workers run is started again on the same
 * address (with the same --servers, --workers, --max-workers, and no
 * --restore); the servers and workers, which keep running through its
 * rejoin window, rejoin it and the run goes on (docs/durability.md).
 * The run then ends with 3, saying so. */
void pd_local_coord_restarts(pd_local *L, int n);
/* Allow up to n server replacements (before pd_local_wait; with
 * PD_LOCAL_REPLACE_SERVERS): a server that exits while workers run is
 * replaced by a new server process, which the coordinator gives the lost
 * slot; the workers wait for it, then go on.  The run then ends with 3,
 * saying so. */
void pd_local_server_restarts(pd_local *L, int n);
/* How many servers were replaced. */
int pd_local_servers_replaced(const pd_local *L);
/* How many times the coordinator was started again. */
int pd_local_coord_restarted(const pd_local *L);
/* After pd_local_wait returned 1: 1 if what failed first was a server or
 * the coordinator exiting while workers ran (paramd train --restarts
 * starts the cluster again from its checkpoint then), else 0. */
int pd_local_infra_failed(const pd_local *L);
/* Supervise until every child exited.  0 if every worker exited 0, else
 * 1 (a child failed), 3 (PD_LOCAL_KEEP_GOING: the cluster finished
 * without the workers that failed; or with replacements for them) or
 * 128+signal, with the reason in why. */
int pd_local_wait(pd_local *L, char *why, size_t whylen);
void pd_local_free(pd_local *L);

#endif
