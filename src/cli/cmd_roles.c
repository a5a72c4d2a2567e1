/*
 * cmd_roles.c - `paramd coordinator` and `paramd server`: the two
 * long-running roles of a cluster, started by hand, by a launcher (mpirun,
 * srun), or by `paramd local`.
 *
 * Stopping.  SIGINT/SIGTERM stop a role cleanly through the signal thread
 * of util.h: signals are blocked before the role starts any thread, the
 * stop function is armed once the role's object exists, and disarmed
 * after its run returned and before it is freed, so a signal that comes
 * late never touches a freed coordinator or server.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/secret.h"
#include "cli/util.h"
#include "common/common.h"
#include "coord/coord.h"
#include "net/fault.h"
#include "server/server.h"

/* ==== coordinator ======================================================= */

static void coord_usage(FILE *f) {
    fprintf(f,
            "usage: paramd coordinator --servers S --workers W [options]\n"
            "\n"
            "Runs the coordinator of a cluster: hands out worker ranks and the\n"
            "cluster map, keeps the table registry, runs barriers.  Exits when\n"
            "every worker has left (after telling the servers to exit).\n"
            "\n"
            "  --listen HOST:PORT  address to listen on [127.0.0.1:0, any free port]\n"
            "                      (give 0.0.0.0:PORT to accept other machines)\n"
            "  --servers S         number of servers in the cluster (required)\n"
            "  --workers W         number of workers in the cluster (required)\n"
            "  --max-workers M     worker slots (M >= W): W workers are expected at\n"
            "                      start, up to M can be live; a worker started later\n"
            "                      joins a vacant slot (a spare one, or the rank of a\n"
            "                      worker that left or died) at the current clock [W]\n"
            "  --persist           keep running after every worker left\n"
            "  --heartbeat-timeout-ms N  remove a worker that sent no heartbeat for\n"
            "                      N ms (a hung or stopped process); sync clocks then\n"
            "                      stop waiting for it [10000; 0: never]\n"
            "  --ready-fd N        write the bound HOST:PORT and a newline to file\n"
            "                      descriptor N once listening, then close it\n"
            "  --secret-file FILE  the cluster secret: every connection proves it knows\n"
            "                      it; FILE is created (mode 0600, a random secret) when\n"
            "                      missing; give servers and workers the same file\n"
            "                      [$PARAMD_SECRET_FILE; none: loopback only]\n"
            "  --max-tables N      tables the cluster may hold [4095]\n"
            "  --max-table-mb N    the largest dense table, in MiB of values [4096]\n"
            "\n"
            "The bound address is also printed on standard output.  Security:\n"
            "docs/security.md.\n");
}

static void stop_coord(void *p) { pd_coord_stop(p); }

static int parse_count(const char *opt, const char *v, int32_t max, int32_t *out) {
    int64_t x;
    if (pd_parse_i64(v, &x) || x < 1 || x > max) {
        fprintf(stderr, "paramd: %s '%s' is not a number in 1..%d\n", opt, v, max);
        return -1;
    }
    *out = (int32_t)x;
    return 0;
}

int cmd_coordinator(int argc, char **argv) {
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"servers", required_argument, 0, 's'},
        {"workers", required_argument, 0, 'w'},
        {"max-workers", required_argument, 0, 'm'},
        {"persist", no_argument, 0, 'p'},
        {"heartbeat-timeout-ms", required_argument, 0, 'b'},
        {"ready-fd", required_argument, 0, 'r'},
        {"secret-file", required_argument, 0, 'S'},
        {"max-tables", required_argument, 0, 'T'},
        {"max-table-mb", required_argument, 0, 'B'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    pd_coord_opts o = {0};
    o.heartbeat_ms = -1;
    o.secret_file = cli_secret_file_env();
    int ready_fd = -1, c;
    pd_log_set_name("coordinator");
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': o.listen = optarg; break;
        case 's': if (parse_count("--servers", optarg, 4096, &o.servers)) return 2; break;
        case 'w': if (parse_count("--workers", optarg, 65536, &o.workers)) return 2; break;
        case 'm': if (parse_count("--max-workers", optarg, 65536, &o.max_workers)) return 2; break;
        case 'p': o.persist = 1; break;
        case 'b': {
            int64_t ms;
            if (pd_parse_i64(optarg, &ms) || ms < 0 || ms > 86400000) {
                fprintf(stderr, "paramd: --heartbeat-timeout-ms '%s' is not 0..86400000\n", optarg);
                return 2;
            }
            o.heartbeat_ms = (int)ms;
            break;
        }
        case 'r': {
            int64_t fd;
            if (pd_parse_i64(optarg, &fd) || fd < 0 || fd > 1 << 20) {
                fprintf(stderr, "paramd: --ready-fd '%s' is not a descriptor\n", optarg);
                return 2;
            }
            ready_fd = (int)fd;
            break;
        }
        case 'S': o.secret_file = optarg; break;
        case 'T': {
            int32_t n;
            if (parse_count("--max-tables", optarg, 4095, &n)) return 2;
            o.max_tables = (uint32_t)n;
            break;
        }
        case 'B': {
            int32_t mb;
            if (parse_count("--max-table-mb", optarg, 1 << 24, &mb)) return 2;
            o.max_table_bytes = (uint64_t)mb << 20;
            break;
        }
        case 'h': coord_usage(stdout); return 0;
        default: coord_usage(stderr); return 2;
        }
    }
    if (optind < argc || !o.servers || !o.workers) {
        fprintf(stderr, "paramd coordinator: %s\n\n",
                optind < argc ? "unexpected argument" : "--servers and --workers are required");
        coord_usage(stderr);
        return 2;
    }
    cli_stop_signals();
    pd_err e = {0};
    pd_coord *co = pd_coord_start(&o, &e);
    if (!co) {
        fprintf(stderr, "paramd coordinator: %s\n", e.msg);
        return 1;
    }
    cli_stop_on_signal(stop_coord, co);
    printf("coordinator listening on %s (%d servers, %d workers)\n",
           pd_coord_address(co), o.servers, o.workers);
    fflush(stdout);
    if (ready_fd >= 0) {
        char line[PD_ERRMSG_MAX];
        int n = snprintf(line, sizeof line, "%s\n", pd_coord_address(co));
        if (write(ready_fd, line, (size_t)n) != n)
            pd_log(PD_LOG_WARN, "could not write to --ready-fd %d", ready_fd);
        close(ready_fd);
    }
    int rc = pd_coord_run(co);
    cli_stop_disarm(); /* before the free: no stop_coord on a freed co */
    pd_coord_free(co);
    if (rc) pd_log(PD_LOG_WARN, "some workers disconnected without saying goodbye");
    return 0;
}

/* ==== server ============================================================ */

static void server_usage(FILE *f) {
    fprintf(f,
            "usage: paramd server --coordinator HOST:PORT [options]\n"
            "\n"
            "Runs one parameter server: registers with the coordinator, holds one\n"
            "shard of every table, applies pushes, answers pulls.  Exits when the\n"
            "coordinator says the cluster is done, or on SIGINT/SIGTERM.\n"
            "\n"
            "  --coordinator HOST:PORT  the coordinator [$PARAMD_COORDINATOR]\n"
            "  --listen HOST:PORT       address to listen on [127.0.0.1:0]; binding\n"
            "                           anything but loopback must be asked for\n"
            "  --advertise HOST:PORT    address workers should use, when it differs\n"
            "                           from the bound one (NAT, 0.0.0.0)\n"
            "  --max-frame-mb N         largest request payload accepted [256]\n"
            "  --transport auto|tcp     auto: also offer shared memory to workers on\n"
            "                           this host (they pick it unless told\n"
            "                           transport=tcp); tcp: TCP only [auto]\n"
            "  --apply-threads N        threads one update may use: a sum of\n"
            "                           gradients or the update rule over a large\n"
            "                           range is cut into parts run in parallel\n"
            "                           (docs/threading.md); 1: the connection's\n"
            "                           own thread only [$PARAMD_APPLY_THREADS, or\n"
            "                           this machine's cores]\n"
            "  --secret-file FILE       the cluster secret (the coordinator's file)\n"
            "                           [$PARAMD_SECRET_FILE; none: loopback only]\n"
            "  --plugin-dir DIR         the only directory update-rule plugins are\n"
            "                           loaded from: a table spec's plugin=NAME is\n"
            "                           DIR/NAME.so; without it no plugin is loaded\n"
            "                           [$PARAMD_PLUGIN_DIR] (docs/update-rules.md)\n"
            "  --fault SPEC             TESTING AID: wrap every accepted connection\n"
            "                           in the fault-injecting transport, e.g.\n"
            "                           short=7 or recv_fail=20 (docs/testing.md)\n");
}

static void stop_server(void *p) { pd_server_stop(p); }

int cmd_server(int argc, char **argv) {
    static const struct option opts[] = {
        {"coordinator", required_argument, 0, 'c'},
        {"listen", required_argument, 0, 'l'},
        {"advertise", required_argument, 0, 'a'},
        {"max-frame-mb", required_argument, 0, 'm'},
        {"transport", required_argument, 0, 't'},
        {"fault", required_argument, 0, 'f'},
        {"apply-threads", required_argument, 0, 'A'},
        {"plugin-dir", required_argument, 0, 'P'},
        {"secret-file", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    pd_server_opts o = {0};
    o.secret_file = cli_secret_file_env();
    o.plugin_dir = getenv("PARAMD_PLUGIN_DIR"); /* paramd local, train */
    if (o.plugin_dir && !o.plugin_dir[0]) o.plugin_dir = NULL;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    o.apply_threads = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
    const char *at = getenv("PARAMD_APPLY_THREADS"); /* paramd local, train */
    if (at && parse_count("PARAMD_APPLY_THREADS", at, 64, &o.apply_threads)) return 2;
    int c;
    pd_log_set_name("server");
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.coordinator = optarg; break;
        case 'l': o.listen = optarg; break;
        case 'a': o.advertise = optarg; break;
        case 'm': {
            int32_t mb;
            if (parse_count("--max-frame-mb", optarg, 4096, &mb)) return 2;
            o.max_frame = (uint64_t)mb << 20;
            break;
        }
        case 't':
            if (strcmp(optarg, "tcp") == 0) o.no_shm = 1;
            else if (strcmp(optarg, "auto") == 0 || strcmp(optarg, "shm") == 0) o.no_shm = 0;
            else {
                fprintf(stderr, "paramd server: --transport '%s' is not auto or tcp\n",
                        optarg);
                return 2;
            }
            break;
        case 'f': {
            pd_fault_spec fs;
            pd_err fe = {0};
            if (pd_fault_parse(optarg, &fs, &fe)) {
                fprintf(stderr, "paramd: --fault: %s\n", fe.msg);
                return 2;
            }
            o.fault = optarg;
            break;
        }
        case 'A':
            if (parse_count("--apply-threads", optarg, 64, &o.apply_threads)) return 2;
            break;
        case 'P': o.plugin_dir = optarg; break;
        case 'S': o.secret_file = optarg; break;
        case 'h': server_usage(stdout); return 0;
        default: server_usage(stderr); return 2;
        }
    }
    if (!o.coordinator) o.coordinator = getenv("PARAMD_COORDINATOR");
    if (optind < argc || !o.coordinator) {
        fprintf(stderr, "paramd server: %s\n\n",
                optind < argc ? "unexpected argument"
                              : "--coordinator HOST:PORT is required (or set PARAMD_COORDINATOR)");
        server_usage(stderr);
        return 2;
    }
    cli_stop_signals(); /* before pd_server_start starts the apply threads */
    pd_err e = {0};
    pd_server *s = pd_server_start(&o, &e);
    if (!s) {
        fprintf(stderr, "paramd server: %s\n", e.msg);
        return 1;
    }
    char name[32];
    snprintf(name, sizeof name, "server %d", pd_server_index(s));
    pd_log_set_name(name);
    cli_stop_on_signal(stop_server, s);
    pd_log(PD_LOG_DEBUG, "listening on %s", pd_server_address(s));
    int rc = pd_server_run(s);
    cli_stop_disarm(); /* before the free: no stop_server on a freed s */
    pd_server_free(s);
    return rc ? 1 : 0;
}
