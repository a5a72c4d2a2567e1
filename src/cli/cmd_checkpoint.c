/*
 * cmd_checkpoint.c - `paramd checkpoint`: ask a running cluster's
 * coordinator to take a checkpoint now, and say where it went.
 *
 *   paramd checkpoint --coordinator HOST:PORT
 *
 * A tool client (role=tool: no rank, no worker slot) calls
 * paramd_checkpoint.  The files go where the coordinator's operator said
 * (its --checkpoint-dir): a client never chooses where servers write.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/secret.h"
#include "cli/util.h"
#include "paramd.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: paramd checkpoint --coordinator HOST:PORT\n"
            "\n"
            "Takes a checkpoint of every table of a running cluster now: sync and\n"
            "ssp tables are cut at one clock on every server (training pauses for\n"
            "about as long as writing takes), into the coordinator's\n"
            "--checkpoint-dir.  Prints the clock and the checkpoint's directory.\n"
            "Restore with `paramd coordinator|server --restore DIR` or\n"
            "`paramd local|train --resume DIR` (docs/durability.md).\n"
            "\n"
            "  --coordinator HOST:PORT  the cluster [$PARAMD_COORDINATOR]\n"
            "  --secret-file FILE       the cluster secret [$PARAMD_SECRET_FILE]\n");
}

int cmd_checkpoint(int argc, char **argv) {
    static const struct option opts[] = {{"coordinator", required_argument, 0, 'c'},
                                         {"secret-file", required_argument, 0, 'S'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *coord = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': coord = optarg; break;
        case 'S':
            if (cli_set_secret_file("paramd checkpoint", optarg)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!coord) coord = getenv("PARAMD_COORDINATOR");
    if (optind < argc || !coord) {
        fprintf(stderr, "paramd checkpoint: %s\n\n",
                optind < argc ? "unexpected argument"
                              : "--coordinator HOST:PORT is required (or set PARAMD_COORDINATOR)");
        usage(stderr);
        return 2;
    }
    paramd_client *cl = cli_tool_connect("paramd checkpoint", coord);
    if (!cl) return 1;
    int rc;
    int64_t clock = 0;
    char dir[4096];
    rc = paramd_checkpoint(cl, &clock, dir, sizeof dir);
    if (rc) fprintf(stderr, "paramd checkpoint: %s\n", paramd_last_error(cl));
    else printf("checkpoint at clock %lld: %s\n", (long long)clock, dir);
    paramd_close(cl);
    return rc ? 1 : 0;
}
