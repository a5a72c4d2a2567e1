/*
 * cmd_drain.c - `paramd drain`: move a running cluster's server's shard
 * to a standby (a server started with --join), then stop that server.
 *
 *   paramd drain --coordinator HOST:PORT --server K
 *   paramd drain --coordinator HOST:PORT --host H
 *
 * A tool client (role=tool) calls paramd_drain; the coordinator
 * (coord/moves.c) has the standby seeded by server K while workers train,
 * retires K, and answers once the standby serves the shard.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/secret.h"
#include "cli/util.h"
#include "common/common.h"
#include "wire/wire.h"
#include "paramd.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: paramd drain --coordinator HOST:PORT --server K | --host H\n"
            "\n"
            "Moves server K's shard of every table to a standby (a server started\n"
            "with `paramd server --join` against the cluster; one on another host\n"
            "than K's if one waits) while the workers train, then stops server K (a\n"
            "server of `paramd server --shards N` waits as a standby instead); no\n"
            "update is lost.  With --host, every shard of host H moves to standbys\n"
            "of other hosts and H's servers and standbys stop.  The coordinator must\n"
            "have been started with --elastic.  Prints what moved where and how long\n"
            "it took (docs/durability.md, \"Servers that join and leave\").\n"
            "\n"
            "  --coordinator HOST:PORT  the cluster [$PARAMD_COORDINATOR]\n"
            "  --server K               the server whose shard moves (paramd status\n"
            "                           numbers them)\n"
            "  --host H                 every shard of this host (its host identity or\n"
            "                           host name, as paramd status shows)\n"
            "  --secret-file FILE       the cluster secret [$PARAMD_SECRET_FILE]\n");
}

int cmd_drain(int argc, char **argv) {
    static const struct option opts[] = {{"coordinator", required_argument, 0, 'c'},
                                         {"server", required_argument, 0, 'k'},
                                         {"host", required_argument, 0, 'H'},
                                         {"secret-file", required_argument, 0, 'S'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *coord = NULL, *host = NULL;
    int64_t k = -1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': coord = optarg; break;
        case 'k':
            if (pd_parse_i64(optarg, &k) || k < 0 || k >= PD_MAX_SERVERS) {
                fprintf(stderr, "paramd drain: --server '%s' is not a server number "
                        "(0..%d)\n", optarg, PD_MAX_SERVERS - 1);
                return 2;
            }
            break;
        case 'H':
            if (!optarg[0] || strlen(optarg) > PD_MAX_ADDR) {
                fprintf(stderr, "paramd drain: --host '%s' is not a host (1..%d characters)\n",
                        optarg, PD_MAX_ADDR);
                return 2;
            }
            host = optarg;
            break;
        case 'S':
            if (cli_set_secret_file("paramd drain", optarg)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!coord) coord = getenv("PARAMD_COORDINATOR");
    if (optind < argc || !coord || (k < 0) == !host) {
        fprintf(stderr, "paramd drain: %s\n\n",
                optind < argc ? "unexpected argument"
                : !coord      ? "--coordinator HOST:PORT is required (or set PARAMD_COORDINATOR)"
                : host        ? "--server K and --host H are two drains: give one"
                              : "--server K or --host H is required");
        usage(stderr);
        return 2;
    }
    paramd_client *cl = cli_tool_connect("paramd drain", coord);
    if (!cl) return 1;
    int rc;
    char msg[PD_ERRMSG_MAX];
    rc = host ? paramd_drain_host(cl, host, msg, sizeof msg)
              : paramd_drain(cl, (int32_t)k, msg, sizeof msg);
    if (rc) fprintf(stderr, "paramd drain: %s\n", paramd_last_error(cl));
    else printf("%s\n", msg);
    paramd_close(cl);
    return rc ? 1 : 0;
}
