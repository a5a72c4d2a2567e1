/*
 * places.h - `paramd server --shards N`: N server processes on this host,
 * one per shard it may serve (places.c).
 */
#ifndef PARAMD_CLI_PLACES_H
#define PARAMD_CLI_PLACES_H

/* Run place(i, arg) for i = 0..n-1, each in a child process of its own
 * (forked: call before any thread is started), and wait for them all.
 * SIGINT and SIGTERM are passed on to every child that still runs, and
 * a parent killed outright gives its children SIGTERM (PR_SET_PDEATHSIG); a
 * child that dies does not stop the others (the coordinator sees its
 * server lost, as any).  Returns 0 if every child exited 0, else 1 after
 * saying which did not. */
int cli_run_places(int n, int (*place)(int i, void *arg), void *arg);

#endif
