/*
 * util.h - helpers the subcommands of the paramd program share (util.c):
 * stopping on SIGINT/SIGTERM, the path of this executable, and the
 * options that paramd local and paramd train pass to their children
 * through the environment.  util.c calls no subcommand.
 */
#ifndef PARAMD_CLI_UTIL_H
#define PARAMD_CLI_UTIL_H

/* ---- Stopping on a signal -----------------------------------------------
 * A long-running role (paramd coordinator, paramd server) stops cleanly
 * on SIGINT/SIGTERM: a signal thread, not a handler, calls its stop
 * function.  The rule that makes this safe: the stop function and its
 * argument belong to the caller, who arms them once the object exists
 * and disarms them before freeing it; the signal thread's own state lives
 * as long as the process.  Three calls, in this order:
 *
 *   cli_stop_signals();            first, before any thread is started
 *   obj = start(...);
 *   cli_stop_on_signal(stop, obj); a signal now calls stop(obj)
 *   run(obj);
 *   cli_stop_disarm();             stop(obj) is over and never comes again
 *   free(obj);
 */

/* Start the signal thread and give SIGINT and SIGTERM a handler that
 * wakes it (whichever thread takes them: threads a library started
 * before main never blocked them), and block them in the calling thread
 * and so in every thread it starts later (apply pools, connection
 * threads: no EINTR in their calls).  Until cli_stop_on_signal, such a
 * signal ends the process as it would by default: there is nothing to
 * stop cleanly yet.  Call once, first, before starting any thread. */
void cli_stop_signals(void);
/* Arm: the first SIGINT/SIGTERM from now on calls stop(arg) once, on the
 * signal thread (later ones are ignored).  stop must be thread-safe and
 * not block for long (pd_server_stop, pd_coord_stop).  arg must stay
 * valid until cli_stop_disarm() has returned. */
void cli_stop_on_signal(void (*stop)(void *), void *arg);
/* Disarm: when this returns, a stop(arg) that was running has returned
 * and no other will start, so arg may be freed.  A signal that arrives
 * later is ignored (the process is on its way out).  Harmless when
 * never armed. */
void cli_stop_disarm(void);
/* After cli_stop_disarm: 1 if a signal's stop(arg) ran (the process was
 * asked to end), else 0. */
int cli_stop_signaled(void);
/* After cli_stop_disarm with no signal: back to before cli_stop_on_signal
 * (a signal ends the process the default way until the next arming), for
 * a process that starts another object to stop (paramd server --shards:
 * a server that waits for another shard). */
void cli_stop_unarm(void);

/* A tool's connection (role=tool: no rank, no worker slot) to the
 * coordinator at coord, for the commands that ask it something (paramd
 * checkpoint, paramd drain); NULL after printing "CMD: why". */
struct paramd_client *cli_tool_connect(const char *cmd, const char *coord);

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
/* --plugin-dir DIR of paramd local and train: check that DIR is a
 * directory and put its absolute path in PARAMD_PLUGIN_DIR, the servers'
 * default for --plugin-dir (and where a worker that replays a rule itself
 * finds the plugin).  0, or -1 after printing why. */
int cli_set_plugin_dir(const char *cmd, const char *dir);

#endif
