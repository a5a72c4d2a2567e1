/*
 * cli.h - the subcommands of the paramd program.  Each takes the argv that
 * starts at its own name and returns the process exit status.  main.c
 * calls them; they call each other's files only through util.h (shared
 * helpers), local.h (the local cluster) and bench.h (paramd bench's parts).
 */
#ifndef PARAMD_CLI_H
#define PARAMD_CLI_H

int cmd_coordinator(int argc, char **argv);
int cmd_server(int argc, char **argv);
int cmd_local(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_drain(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_launch(int argc, char **argv);

#endif
