/*
 * cli.h - the subcommands of the paramd program.  Each takes the argv that
 * starts at its own name and returns the process exit status.
 */
#ifndef PARAMD_CLI_H
#define PARAMD_CLI_H

int cmd_coordinator(int argc, char **argv);
int cmd_server(int argc, char **argv);
int cmd_local(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_bench(int argc, char **argv);

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
