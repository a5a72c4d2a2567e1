/*
 * util.h - helpers the subcommands of the paramd program share (util.c):
 * stopping on SIGINT/SIGTERM, the path of this executable, and the
 * options that paramd local and paramd train pass to their children
 * through the environment.  util.c calls no subcommand.
 */
#ifndef PARAMD_CLI_UTIL_H
#define PARAMD_CLI_UTIL_H

/* Block SIGINT/SIGTERM in every thread and start a thread that calls
 * stop(arg) when one arrives.  Call before starting other threads. */
void cli_stop_on_signal(void (*stop)(void *), void *arg);

/* The path of this executable (for paramd local to start its roles). */
const char *cli_self_path(void);

/* --transport of paramd local / train: check T (auto, tcp, shm) and put
 * it in PARAMD_TRANSPORT, which the workers started later inherit (and
 * paramd_connect reads).  0, or -1 after printing why (cmd names us). */
int cli_set_transport(const char *cmd, const char *t);
/* --apply-threads N of paramd local and train: check N (1..64) and set
 * PARAMD_APPLY_THREADS, the servers' default for --apply-threads.  0, or
 * -1 after printing why. */
int cli_set_apply_threads(const char *cmd, const char *n);

#endif
