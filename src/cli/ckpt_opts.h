/*
 * ckpt_opts.h - the checkpoint options of the paramd program (ckpt_opts.c;
 * docs/durability.md), shared by paramd coordinator, server, local and
 * train.
 *
 * paramd local and paramd train start their coordinator and servers
 * themselves, so they hand these options down as environment variables,
 * which the roles read as their defaults (as --apply-threads goes down as
 * PARAMD_APPLY_THREADS):
 *
 *   PARAMD_CHECKPOINT_DIR           --checkpoint-dir (coordinator)
 *   PARAMD_CHECKPOINT_EVERY         --checkpoint-every SECONDS
 *   PARAMD_CHECKPOINT_EVERY_CLOCKS  --checkpoint-every-clocks N
 *   PARAMD_CHECKPOINT_FULL_EVERY    --checkpoint-full-every K (coordinator)
 *   PARAMD_RESTORE                  --restore DIR (coordinator, servers)
 *
 * Paths are made absolute here: the coordinator tells servers where to
 * write, and the processes need not share a working directory.
 */
#ifndef PARAMD_CLI_CKPT_OPTS_H
#define PARAMD_CLI_CKPT_OPTS_H

#include <stdint.h>

typedef struct cli_ckpt_opts {
    const char *dir;          /* absolute, or NULL */
    double every_s;           /* 0: not on a timer */
    int64_t every_clocks;     /* 0: not on clocks */
    int32_t full_every;       /* every Kth is full; 0: the default (8) */
    const char *restore;      /* absolute, or NULL */
} cli_ckpt_opts;

/* Defaults from the environment (above).  0, or -1 after printing why
 * (cmd names the command). */
int cli_ckpt_from_env(const char *cmd, cli_ckpt_opts *o);
/* One option (name without "--": checkpoint-dir, checkpoint-every,
 * checkpoint-every-clocks, checkpoint-full-every, restore, resume) with its value: 0, 1 if the
 * name is not one of them, -1 after printing why the value is wrong. */
int cli_ckpt_option(const char *cmd, const char *name, const char *val, cli_ckpt_opts *o);
/* Put o in the environment for the children of paramd local / train. */
void cli_ckpt_to_env(const cli_ckpt_opts *o);
/* The lines of --help that describe them (for local and train). */
extern const char cli_ckpt_help[];

#endif
