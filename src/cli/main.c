/*
 * main.c - the paramd program: one binary, one subcommand per role.
 *
 *   paramd coordinator --listen HOST:PORT --servers S --workers W
 *   paramd server --coordinator HOST:PORT [--listen HOST:PORT]
 *   paramd local --servers S --workers W -- PROGRAM [ARGS]
 *   paramd launch --servers S [--port P] -- PROGRAM [ARGS]   (under mpirun...)
 *   paramd train ...        (trains a model; see paramd train --help)
 *   paramd plot RUN_DIR...  (plots runs)
 *   paramd status --coordinator HOST:PORT  (a live view of a cluster)
 *
 * main only picks the subcommand (cli.h); the helpers the subcommands
 * share are in util.c, so no subcommand calls back into this file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/common.h"

static void usage(FILE *f) {
    fprintf(f,
            "paramd %s - a parameter server for distributed training\n"
            "\n"
            "usage: paramd COMMAND [OPTIONS]\n"
            "\n"
            "commands:\n"
            "  local        start a whole cluster on this machine and run W copies\n"
            "               of a worker program in it\n"
            "  train        train a model on Fashion-MNIST (starts its own cluster)\n"
            "  plot         draw test accuracy and loss of one or more runs\n"
            "  bench        measure push/pull throughput and latency against raw TCP\n"
            "  coordinator  run the coordinator of a cluster\n"
            "  server       run one parameter server of a cluster\n"
            "  launch       one process of a cluster started whole by mpirun, srun,\n"
            "               torchrun...: its role (coordinator, server, worker)\n"
            "               from its rank\n"
            "  stats        counters of every table on every server of a cluster\n"
            "  checkpoint   take a checkpoint of a running cluster now\n"
            "  drain        move a server's shard to a standby (--join), then stop it\n"
            "  status       a live view of a running cluster: workers, servers, tables,\n"
            "               and whom any wait is waiting for\n"
            "  version      print the version\n"
            "\n"
            "Run 'paramd COMMAND --help' for the options of a command.\n",
            paramd_version_string());
}

/* ==== main ============================================================== */

int main(int argc, char **argv) {
    const char *lvl = getenv("PARAMD_LOG");
    if (lvl && *lvl) {
        int level = pd_log_parse_level(lvl);
        if (level >= 0)
            pd_log_set_level(level);
        else
            pd_log(PD_LOG_WARN, "PARAMD_LOG='%s' is not a log level: use error, "
                   "warning, info or debug (going on with info)", lvl);
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    argc--, argv++;
    if (!strcmp(cmd, "coordinator")) return cmd_coordinator(argc, argv);
    if (!strcmp(cmd, "server")) return cmd_server(argc, argv);
    if (!strcmp(cmd, "local")) return cmd_local(argc, argv);
    if (!strcmp(cmd, "train")) return cmd_train(argc, argv);
    if (!strcmp(cmd, "plot")) return cmd_plot(argc, argv);
    if (!strcmp(cmd, "stats")) return cmd_stats(argc, argv);
    if (!strcmp(cmd, "checkpoint")) return cmd_checkpoint(argc, argv);
    if (!strcmp(cmd, "drain")) return cmd_drain(argc, argv);
    if (!strcmp(cmd, "status")) return cmd_status(argc, argv);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc, argv);
    if (!strcmp(cmd, "launch")) return cmd_launch(argc, argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("paramd %s\n", paramd_version_string());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "paramd: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
