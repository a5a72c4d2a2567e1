/*
 * cmd_local.c - `paramd local`: a whole cluster on this machine, like
 * ray.init() does: a coordinator, S servers and W copies of a worker
 * program.  This file parses the options and hands them to the local
 * cluster supervisor (local.c), whose essay gives the lifetime rules: no
 * child is ever left behind, the first failure stops everything, and the
 * exit status says what happened (0, 1 naming the failed child, or
 * 128+signal).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/ckpt_opts.h"
#include "cli/cli.h"
#include "cli/local.h"
#include "cli/secret.h"
#include "cli/util.h"
#include "common/common.h"

/* ==== paramd local ====================================================== */

static void local_usage(FILE *f) {
    fprintf(f,
            "usage: paramd local --servers S --workers W [options] -- PROGRAM [ARGS]\n"
            "\n"
            "Starts a whole cluster on this machine: a coordinator, S servers and W\n"
            "copies of PROGRAM (a worker linking libparamd), each with\n"
            "PARAMD_COORDINATOR, PARAMD_RANK, PARAMD_WORKERS and PARAMD_SERVERS in\n"
            "its environment.  Every line a child prints is prefixed with its role\n"
            "and rank.  Exits 0 when every worker exited 0; exits 1, stopping\n"
            "everything, as soon as any child fails (with --keep-going, a worker\n"
            "other than worker 0 that fails is reported and the others go on; then\n"
            "exits 3); Ctrl-C stops everything.  No process is left behind in any\n"
            "case.\n"
            "\n"
            "  --servers S       number of servers [1]\n"
            "  --workers W       number of workers [1]\n"
            "  --max-workers M   worker slots, M >= W: more workers can join the\n"
            "                    running cluster (at PARAMD_COORDINATOR) [W]\n"
            "  --host HOST       address the cluster listens on [127.0.0.1]\n"
            "  --transport T     auto, tcp or shm: how workers reach servers (sets\n"
            "                    PARAMD_TRANSPORT for them) [auto: shared memory\n"
            "                    on this host]\n"
            "  --apply-threads N threads each server may use for one update (paramd\n"
            "                    server --apply-threads) [cores]\n"
            "  --secret-file FILE  the cluster secret (created if missing); workers\n"
            "                    started later to join need the same file [a private\n"
            "                    one, removed at exit; $PARAMD_SECRET_FILE]\n"
            "  --keep-going      a worker (other than worker 0) that dies or is removed\n"
            "                    does not end the cluster: the others finish without\n"
            "                    it (sync clocks stop waiting for it); exit status 3\n"
            "  --replace-workers N  a worker (worker 0 too) that dies while others\n"
            "                    run is started again, up to N times: the new one\n"
            "                    has the same PARAMD_RANK and PARAMD_REPLACEMENT=1,\n"
            "                    and joins at the first clock nobody pushed for\n"
            "                    (paramd_get_clock; paramd_barrier_count says which\n"
            "                    barriers it missed); exit status 3\n"
            "  --replace-servers N  a server that dies while workers run is replaced,\n"
            "                    up to N times: the new server restores only that\n"
            "                    shard from the newest checkpoint (--checkpoint-dir\n"
            "                    and --checkpoint-every are needed), the other\n"
            "                    servers keep theirs, the workers wait for it and\n"
            "                    go on; the shard loses its updates since that\n"
            "                    checkpoint (docs/durability.md); exit status 3\n"
            "  --replicas R      keep R copies of every shard (R x S servers): a server\n"
            "                    that dies is replaced by its copy at once, no\n"
            "                    acknowledged update lost, and a new server is\n"
            "                    started to be a copy again (docs/durability.md)\n"
            "                    [1: none; 2..8]\n"
            "  --elastic         servers may join (paramd server --join) and shards\n"
            "                    move to them (paramd drain) while the workers run\n"
            "                    (docs/durability.md; export PARAMD_SECRET_FILE to\n"
            "                    reach the cluster from outside)\n"
            "  --restarts N      the coordinator exiting while workers run is started\n"
            "                    again on its address, up to N times: the servers and\n"
            "                    workers, which keep running, rejoin it and the run\n"
            "                    goes on (docs/durability.md); exit status 3\n"
            "  --plugin-dir DIR  where the servers load update-rule plugins from\n"
            "                    (plugin=NAME is DIR/NAME.so); also in the workers'\n"
            "                    PARAMD_PLUGIN_DIR [none: no plugins]\n"
            "%s", cli_ckpt_help);
}

int cmd_local(int argc, char **argv) {
    static const struct option opts[] = {
        {"servers", required_argument, 0, 's'},
        {"workers", required_argument, 0, 'w'},
        {"max-workers", required_argument, 0, 'm'},
        {"host", required_argument, 0, 'H'},
        {"transport", required_argument, 0, 'T'},
        {"apply-threads", required_argument, 0, 'A'},
        {"checkpoint-dir", required_argument, 0, 'K'},
        {"checkpoint-every", required_argument, 0, 'K'},
        {"checkpoint-every-clocks", required_argument, 0, 'K'},
        {"checkpoint-full-every", required_argument, 0, 'K'},
        {"resume", required_argument, 0, 'K'},
        {"plugin-dir", required_argument, 0, 'P'},
        {"keep-going", no_argument, 0, 'k'},
        {"replace-workers", required_argument, 0, 'R'},
        {"restarts", required_argument, 0, 'X'},
        {"replace-servers", required_argument, 0, 'Y'},
        {"replicas", required_argument, 0, 'y'},
        {"elastic", no_argument, 0, 'e'},
        {"secret-file", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int64_t S = 1, W = 1, M = 0, replace = 0, restarts = 0, replace_servers = 0, replicas = 1;
    const char *host = "127.0.0.1";
    int c, li = 0, keep_going = 0, elastic = 0;
    cli_ckpt_opts ck = {0};
    pd_log_set_name("paramd local");
    while ((c = getopt_long(argc, argv, "+h", opts, &li)) != -1) {
        switch (c) {
        case 'K':
            if (cli_ckpt_option("paramd local", opts[li].name, optarg, &ck)) return 2;
            break;
        case 's':
            if (pd_parse_i64(optarg, &S) || S < 1 || S > 256) {
                fprintf(stderr, "paramd local: --servers '%s' is not 1..256\n", optarg);
                return 2;
            }
            break;
        case 'w':
            if (pd_parse_i64(optarg, &W) || W < 1 || W > 1024) {
                fprintf(stderr, "paramd local: --workers '%s' is not 1..1024\n", optarg);
                return 2;
            }
            break;
        case 'm':
            if (pd_parse_i64(optarg, &M) || M < 1 || M > 65536) {
                fprintf(stderr, "paramd local: --max-workers '%s' is not 1..65536\n", optarg);
                return 2;
            }
            break;
        case 'H': host = optarg; break;
        case 'T':
            if (cli_set_transport("paramd local", optarg)) return 2;
            break;
        case 'A':
            if (cli_set_apply_threads("paramd local", optarg)) return 2;
            break;
        case 'P':
            if (cli_set_plugin_dir("paramd local", optarg)) return 2;
            break;
        case 'k': keep_going = 1; break;
        case 'R':
            if (pd_parse_i64(optarg, &replace) || replace < 0 || replace > 1000) {
                fprintf(stderr, "paramd local: --replace-workers '%s' is not 0..1000\n",
                        optarg);
                return 2;
            }
            break;
        case 'X':
        case 'Y': {
            int64_t *v = c == 'X' ? &restarts : &replace_servers;
            if (pd_parse_i64(optarg, v) || *v < 0 || *v > 1000) {
                fprintf(stderr, "paramd local: --%s '%s' is not 0..1000\n",
                        c == 'X' ? "restarts" : "replace-servers", optarg);
                return 2;
            }
            break;
        }
        case 'y':
            if (pd_parse_i64(optarg, &replicas) || replicas < 1 || replicas > 8) {
                fprintf(stderr, "paramd local: --replicas '%s' is not 1..8 (copies of each "
                        "shard)\n", optarg);
                return 2;
            }
            break;
        case 'e': elastic = 1; break;
        case 'S':
            if (cli_set_secret_file("paramd local", optarg)) return 2;
            break;
        case 'h': local_usage(stdout); return 0;
        default: local_usage(stderr); return 2;
        }
    }
    if ((ck.every_s > 0 || ck.every_clocks > 0) && !ck.dir) {
        fprintf(stderr, "paramd local: --checkpoint-every needs --checkpoint-dir\n");
        return 2;
    }
    if (replace_servers && !ck.dir) {
        fprintf(stderr, "paramd local: --replace-servers needs --checkpoint-dir (and "
                "--checkpoint-every or --checkpoint-every-clocks): a replacement restores "
                "the lost shard from the newest checkpoint\n");
        return 2;
    }
    cli_ckpt_to_env(&ck); /* the coordinator and servers read it */
    if (M && M < W) {
        fprintf(stderr, "paramd local: --max-workers %lld is below --workers %lld\n",
                (long long)M, (long long)W);
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "paramd local: no worker program given (put it after --)\n\n");
        local_usage(stderr);
        return 2;
    }
    pd_local *L;
    char why[300];
    if (pd_local_start(&L, (int32_t)S, (int32_t)W, (int32_t)M, host, argv + optind, NULL,
                       (keep_going ? PD_LOCAL_KEEP_GOING : 0) |
                           (replace_servers ? PD_LOCAL_REPLACE_SERVERS : 0) |
                           (elastic ? PD_LOCAL_ELASTIC : 0) |
                           PD_LOCAL_REPLICAS((int)replicas)) != 0) {
        if (!L) {
            fprintf(stderr, "paramd local: out of memory\n");
            return 1;
        }
    }
    pd_local_replace(L, (int)replace);
    pd_local_coord_restarts(L, (int)restarts);
    pd_local_server_restarts(L, (int)replace_servers);
    int rc = pd_local_wait(L, why, sizeof why);
    if (rc) fprintf(stderr, "paramd local: %s\n", why);
    pd_local_free(L);
    return rc;
}
