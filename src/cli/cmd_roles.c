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

#include "cli/ckpt_opts.h"
#include "cli/cli.h"
#include "cli/places.h"
#include "cli/secret.h"
#include "cli/util.h"
#include "common/common.h"
#include "wire/wire.h"
#include "coord/coord.h"
#include "net/fault.h"
#include "server/server.h"
#include "wire/wire.h"

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
            "  --startup-timeout-ms N  end the cluster with an error, everywhere, if\n"
            "                      its S servers and W workers have not all registered\n"
            "                      N ms after start [300000; 0: wait forever]; until\n"
            "                      then say who is missing after --report-ms, and again\n"
            "                      at doubling intervals\n"
            "  --report-ms N       [5000]\n"
            "  --rejoin-s S        when this coordinator is lost, servers and workers\n"
            "                      keep running for S seconds, reconnecting to its\n"
            "                      address: a coordinator started again there with the\n"
            "                      same options takes the cluster back\n"
            "                      (docs/durability.md) [60; 0: they stop at once]\n"
            "  --replace-s S       when a server is lost while workers run, wait S\n"
            "                      seconds for a replacement (paramd server started\n"
            "                      against this coordinator) that restores only the\n"
            "                      lost shard from the newest checkpoint; the workers\n"
            "                      wait, then go on (docs/durability.md) [0: the\n"
"                      workers' requests to it fail at once]\n"
            "  --replicas R        keep R copies of every shard, each on its own\n"
            "                      server: start S x R paramd servers (the first S\n"
            "                      to register serve, the others are copies); when a\n"
            "                      server is lost a copy takes its place and no\n"
            "                      acknowledged update is lost; a server started\n"
            "                      later becomes a new copy, seeded while training\n"
            "                      goes on (docs/durability.md) [1: no copies; at\n"
            "                      most 8]\n"
            "  --elastic           servers may join (paramd server --join: a standby)\n"
            "                      and `paramd drain --server K` moves server K's\n"
            "                      shard to one while workers train, losing no\n"
            "                      update (docs/durability.md); every update is then\n"
            "                      recorded to be recognised if sent again\n"
            "  --expect-rejoin     this coordinator is started again to take a running\n"
            "                      cluster back (paramd local --restarts does it): a\n"
            "                      server that registers afresh before the cluster's\n"
            "                      servers rejoined waits for them (within --rejoin-s)\n"
            "  --listen-fd N       serve on the listening TCP socket inherited as\n"
            "                      descriptor N instead of --listen (a supervisor that\n"
            "                      keeps the address across restarts: paramd local)\n"
            "  --ready-fd N        write the bound HOST:PORT and a newline to file\n"
            "                      descriptor N once listening, then close it\n"
            "  --checkpoint-dir DIR  where checkpoints go (an absolute path every\n"
            "                      server can write: the same machine, or a shared\n"
            "                      filesystem); taken when `paramd checkpoint` asks\n"
            "                      [$PARAMD_CHECKPOINT_DIR]\n"
            "  --checkpoint-every S  ...and every S seconds [$PARAMD_CHECKPOINT_EVERY]\n"
            "  --checkpoint-every-clocks N  ...and whenever the slowest worker passed\n"
            "                      the last one by N clocks\n"
            "                      [$PARAMD_CHECKPOINT_EVERY_CLOCKS]\n"
            "  --checkpoint-full-every K  every Kth checkpoint is full, the others\n"
            "                      incremental: sparse tables write only the rows\n"
            "                      changed since the previous one [8; 1: all full]\n"
            "                      [$PARAMD_CHECKPOINT_FULL_EVERY]\n"
            "  --restore DIR       take the table registry and the clock workers\n"
            "                      start at from a checkpoint (a --checkpoint-dir, or\n"
            "                      one ckpt-* directory in it); start the servers\n"
            "                      with the same --restore [$PARAMD_RESTORE]\n"
            "  --metrics HOST:PORT serve Prometheus metrics at http://HOST:PORT/metrics\n"
            "                      (PORT alone: on 127.0.0.1; 0: any free port)\n"
            "                      (docs/operations.md)\n"
            "  --secret-file FILE  the cluster secret: every connection proves it knows\n"
            "                      it; FILE is created (mode 0600, a random secret) when\n"
            "                      missing; give servers and workers the same file\n"
            "                      [$PARAMD_SECRET_FILE; none: loopback only]\n"
            "                      (docs/security.md)\n"
            "\n"
            "Limits (docs/limits.md):\n"
            "  --max-connections N connections at once [2 x M + S + 256]\n"
            "  --max-tables N      tables in the cluster [4095]\n"
            "  --handshake-timeout-ms N  a connection must finish its handshake\n"
            "                      within N ms [5000]\n"
            "  --frame-timeout-ms N  a frame must arrive whole within N ms of its\n"
            "                      first byte [30000]\n"
            "\n"
            "The bound address is also printed on standard output.  Exit status: 0\n"
            "when every worker said goodbye, 3 when a worker died or a server was\n"
            "lost while the cluster ran, 1 or 2 when it could not start.\n");
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

/* The limit options of both roles (docs/limits.md).  1 if c was one of
 * them (*bad set if its value was refused, after saying why), else 0. */
enum { O_MAXCONN = 1000, O_MAXTABLES, O_HSMS, O_FRMS, O_TABLEMB, O_COPYMS, O_SHARDS };
typedef struct limit_args {
    int32_t maxconn, maxtables, hs, fr, tablemb;
} limit_args;
static int parse_limit(int c, const char *v, limit_args *l, int *bad) {
    switch (c) {
    case O_MAXCONN: *bad = parse_count("--max-connections", v, 1 << 20, &l->maxconn); return 1;
    case O_MAXTABLES: *bad = parse_count("--max-tables", v, PD_MAX_TABLES - 1, &l->maxtables); return 1;
    case O_HSMS: *bad = parse_count("--handshake-timeout-ms", v, 86400000, &l->hs); return 1;
    case O_FRMS: *bad = parse_count("--frame-timeout-ms", v, 86400000, &l->fr); return 1;
    case O_TABLEMB: *bad = parse_count("--max-table-mb", v, 1 << 24, &l->tablemb); return 1;
    }
    return 0;
}
#define LIMIT_OPTS                                                             \
    {"max-connections", required_argument, 0, O_MAXCONN},                      \
    {"max-tables", required_argument, 0, O_MAXTABLES},                         \
    {"handshake-timeout-ms", required_argument, 0, O_HSMS},                    \
    {"frame-timeout-ms", required_argument, 0, O_FRMS}

int cmd_coordinator(int argc, char **argv) {
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"servers", required_argument, 0, 's'},
        {"workers", required_argument, 0, 'w'},
        {"max-workers", required_argument, 0, 'm'},
        {"persist", no_argument, 0, 'p'},
        {"heartbeat-timeout-ms", required_argument, 0, 'b'},
        {"startup-timeout-ms", required_argument, 0, 'u'},
        {"report-ms", required_argument, 0, 'R'},
        {"rejoin-s", required_argument, 0, 'J'},
        {"replace-s", required_argument, 0, 'Q'},
        {"replicas", required_argument, 0, 'y'},
        {"expect-rejoin", no_argument, 0, 'E'},
        {"elastic", no_argument, 0, 'e'},
        {"listen-fd", required_argument, 0, 'L'},
        {"ready-fd", required_argument, 0, 'r'},
        {"checkpoint-dir", required_argument, 0, 'K'},
        {"checkpoint-every", required_argument, 0, 'K'},
        {"checkpoint-every-clocks", required_argument, 0, 'K'},
        {"checkpoint-full-every", required_argument, 0, 'K'},
        {"restore", required_argument, 0, 'K'},
        {"metrics", required_argument, 0, 'M'},
        {"secret-file", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},
        LIMIT_OPTS,
        {0, 0, 0, 0}};
    pd_coord_opts o = {0};
    o.heartbeat_ms = -1;
    int ready_fd = -1, c, li = 0, bad = 0;
    cli_ckpt_opts ck = {0};
    limit_args lim = {0};
    o.startup_ms = -1;
    o.rejoin_ms = -1;
    o.secret_file = cli_secret_file_env();
    pd_log_set_name("coordinator");
    if (cli_ckpt_from_env("paramd coordinator", &ck)) return 2;
    while ((c = getopt_long(argc, argv, "h", opts, &li)) != -1) {
        if (parse_limit(c, optarg, &lim, &bad)) {
            if (bad) return 2;
            continue;
        }
        switch (c) {
        case 'K':
            if (cli_ckpt_option("paramd coordinator", opts[li].name, optarg, &ck)) return 2;
            break;
        case 'l': o.listen = optarg; break;
        case 's': if (parse_count("--servers", optarg, 4096, &o.servers)) return 2; break;
        case 'w': if (parse_count("--workers", optarg, 65536, &o.workers)) return 2; break;
        case 'm': if (parse_count("--max-workers", optarg, 65536, &o.max_workers)) return 2; break;
        case 'p': o.persist = 1; break;
        case 'M': o.metrics = optarg; break;
        case 'b': {
            int64_t ms;
            if (pd_parse_i64(optarg, &ms) || ms < 0 || ms > 86400000) {
                fprintf(stderr, "paramd: --heartbeat-timeout-ms '%s' is not 0..86400000\n", optarg);
                return 2;
            }
            o.heartbeat_ms = (int)ms;
            break;
        }
        case 'u':
        case 'R': {
            int64_t ms;
            if (pd_parse_i64(optarg, &ms) || ms < (c == 'R') || ms > 86400000) {
                fprintf(stderr, "paramd: --%s '%s' is not %d..86400000\n",
                        c == 'u' ? "startup-timeout-ms" : "report-ms", optarg, c == 'R');
                return 2;
            }
            *(c == 'u' ? &o.startup_ms : &o.report_ms) = (int)ms;
            break;
        }
        case 'L': {
            int64_t fd;
            if (pd_parse_i64(optarg, &fd) || fd < 3 || fd > 1 << 20) {
                fprintf(stderr, "paramd: --listen-fd '%s' is not a descriptor above 2\n", optarg);
                return 2;
            }
            o.listen_fd = (int)fd;
            break;
        }
        case 'J':
        case 'Q': {
            int64_t sec;
            if (pd_parse_i64(optarg, &sec) || sec < 0 || sec > 86400) {
                fprintf(stderr, "paramd: --%s '%s' is not 0..86400 (seconds)\n",
                        c == 'J' ? "rejoin-s" : "replace-s", optarg);
                return 2;
            }
            *(c == 'J' ? &o.rejoin_ms : &o.replace_ms) = (int)sec * 1000;
            break;
        }
        case 'E': o.expect_rejoin = 1; break;
        case 'e': o.elastic = 1; break;
        case 'y': {
            int64_t r;
            if (pd_parse_i64(optarg, &r) || r < 1 || r > PD_MAX_REPLICAS) {
                fprintf(stderr, "paramd: --replicas '%s' is not 1..%d (copies of each "
                        "shard)\n", optarg, PD_MAX_REPLICAS);
                return 2;
            }
            o.replicas = (int)r;
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
    if (o.elastic && o.replicas > PD_MAX_REPLICAS - 1) {
        fprintf(stderr, "paramd coordinator: --replicas %d: at most %d copies of a shard "
                "with --elastic (a shard moving in takes one more)\n", o.replicas,
                PD_MAX_REPLICAS - 1);
        return 2;
    }
    if ((ck.every_s > 0 || ck.every_clocks > 0) && !ck.dir) {
        fprintf(stderr, "paramd coordinator: --checkpoint-every needs --checkpoint-dir\n");
        return 2;
    }
    o.checkpoint_dir = ck.dir;
    o.checkpoint_every_s = ck.every_s;
    o.checkpoint_every_clocks = ck.every_clocks;
    o.checkpoint_full_every = ck.full_every;
    o.restore = ck.restore;
    o.max_conns = lim.maxconn, o.max_tables = lim.maxtables;
    o.handshake_ms = lim.hs, o.frame_ms = lim.fr;
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
    if (pd_coord_metrics_address(co))
        printf("metrics at http://%s/metrics\n", pd_coord_metrics_address(co));
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
    int died = 0, lost = 0;
    pd_coord_failures(co, &died, &lost);
    int replaced = pd_coord_servers_replaced(co);
    int promoted = pd_coord_promotions(co);
    pd_coord_free(co);
    if (promoted)
        pd_log(PD_LOG_WARN, "%d server%s lost during the run; %s cop%s took %s place and "
               "nothing acknowledged was lost", promoted, promoted == 1 ? " was" : "s were",
               promoted == 1 ? "its" : "their", promoted == 1 ? "y" : "ies",
               promoted == 1 ? "its" : "their");
    if (rc == PARAMD_ETIMEDOUT) return 1; /* the reason was logged */
    if (rc) {
        /* The exit status says it too: a launcher sees a failed cluster. */
        char rep[96] = "";
        if (replaced)
            snprintf(rep, sizeof rep, " (%d replaced, its shard restored from a checkpoint)",
                     replaced);
        pd_log(PD_LOG_ERROR, "the cluster ended with %d worker%s dead (gone without "
               "saying goodbye) and %d server%s lost%s: exit status 3",
               died, died == 1 ? "" : "s", lost, lost == 1 ? "" : "s", rep);
        return 3;
    }
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
            "                           from the bound one (NAT); a server bound to\n"
            "                           0.0.0.0 advertises the address it reaches\n"
            "                           the coordinator from\n"
            "  --advertise-host HOST    the same with the bound port\n"
            "  --host-id ID             this host's identity: workers with the same\n"
            "                           one use shared memory [$PARAMD_HOST_ID, else\n"
            "                           hostname/boot id/network namespace]\n"
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
            "  --restore DIR            start with this server's part of every table\n"
            "                           of a checkpoint (a --checkpoint-dir, or one\n"
            "                           ckpt-* directory in it), at its clock; the\n"
            "                           cluster may have another number of servers\n"
            "                           [$PARAMD_RESTORE]\n"
            "  --metrics HOST:PORT      serve Prometheus metrics at\n"
            "                           http://HOST:PORT/metrics (PORT alone: on\n"
            "                           127.0.0.1; 0: any free port; docs/operations.md)\n"
            "  --secret-file FILE       the cluster secret (the coordinator's file)\n"
            "                           [$PARAMD_SECRET_FILE; none: loopback only]\n"
            "  --plugin-dir DIR         the only directory update-rule plugins are\n"
            "                           loaded from: a table spec's plugin=NAME is\n"
            "                           DIR/NAME.so; without it no plugin is loaded\n"
            "                           [$PARAMD_PLUGIN_DIR] (docs/update-rules.md)\n"
            "Limits (docs/limits.md):\n"
            "  --max-connections N      connections at once [2 x worker slots + 256]\n"
            "  --max-tables N           tables on this server [4095]\n"
            "  --max-table-mb N         memory one table may take on this server:\n"
            "                           values, rule state, clock sums; a sparse\n"
            "                           table's new rows beyond it are refused\n"
            "                           [half this machine's memory]\n"
            "  --handshake-timeout-ms N a connection must finish its handshake\n"
            "                           within N ms [5000]\n"
            "  --frame-timeout-ms N     a frame must arrive whole within N ms of\n"
            "                           its first byte [30000]\n"
            "  --shards N               serve up to N shards from this host: N server\n"
            "                           processes (ports of --listen and --metrics\n"
            "                           counted up from the given ones), each of\n"
            "                           which waits as a standby for another shard\n"
            "                           when its own moves away (--elastic;\n"
            "                           docs/durability.md)\n"
            "  --join                   join a running cluster (its coordinator has\n"
            "                           --elastic) once it has its servers: take a\n"
            "                           shard of a host serving two more than this\n"
            "                           one's, or wait as a standby until `paramd\n"
            "                           drain --server K` moves server K's shard here\n"
            "                           (docs/durability.md)\n"
            "  --copy-timeout-ms N      with --replicas: a copy of this server's shard\n"
            "                           that has not taken or acknowledged an update\n"
            "                           within N ms is dropped, and the server goes\n"
            "                           on without it [10000]\n"
            "  --fault SPEC             TESTING AID: wrap every accepted connection\n"
            "                           in the fault-injecting transport, e.g.\n"
            "                           short=7 or recv_fail=20 (docs/testing.md)\n"
            "  --coordinator-fault SPEC TESTING AID: the same for this server's first\n"
            "                           connection to the coordinator (e.g. send_fail=6:\n"
            "                           it breaks at the 6th frame sent)\n");
}

static void stop_server(void *p) { pd_server_stop(p); }

/* What each place of `paramd server --shards N` runs (places.h). */
typedef struct server_place {
    const pd_server_opts *o;
    int32_t shards; /* --shards; 0: a plain server */
} server_place;

/* HOST:PORT (or PORT) `hp` with its port counted up by i (a port of 0,
 * any, stays 0) into out; NULL hp stays NULL (*out = '\0').  -1 past 65535. */
static int place_addr(const char *hp, int i, char *out, size_t n) {
    out[0] = '\0';
    if (!hp) return 0;
    const char *colon = strrchr(hp, ':');
    const char *port = colon ? colon + 1 : hp;
    int64_t p;
    if (pd_parse_i64(port, &p) || p < 0 || p > 65535) { /* (the server says what is wrong) */
        snprintf(out, n, "%s", hp);
        return 0;
    }
    if (p && p + i > 65535) return -1;
    snprintf(out, n, "%.*s%lld", (int)(port - hp), hp, (long long)(p ? p + i : 0));
    return 0;
}

/* One server; with --shards, one place: it serves a shard, and when that
 * shard moves away (RETIRE with PD_RETIRE_STAY) it registers again as a
 * standby for another, until the cluster ends, its host is drained or a
 * signal stops it. */
static int run_place(int i, void *arg) {
    const server_place *sp = arg;
    pd_server_opts o = *sp->o;
    o.place = sp->shards > 0;
    char listen[PD_MAX_ADDR + 16], metrics[PD_MAX_ADDR + 16];
    if (place_addr(o.listen, i, listen, sizeof listen) ||
        place_addr(o.metrics, i, metrics, sizeof metrics))
        return 2;
    if (o.listen) o.listen = listen;
    if (o.metrics) o.metrics = metrics;
    cli_stop_signals(); /* before pd_server_start starts the apply threads */
    for (int round = 0;; round++) {
        pd_err e = {0};
        pd_server *s = pd_server_start(&o, &e);
        if (!s && (o.join || o.place) && e.code == PARAMD_ESHUTDOWN) { /* a standby never needed */
            fprintf(stderr, "paramd server: %s\n", e.msg);
            return 0;
        }
        if (!s && round > 0 && (e.code == PARAMD_ECONNECT || e.code == PARAMD_ECLOSED ||
                                e.code == PARAMD_ETIMEDOUT)) {
            fprintf(stderr, "paramd server: the coordinator is gone (%s): the cluster "
                    "ended, and this place with it\n", e.msg);
            return 0;
        }
        if (!s) {
            fprintf(stderr, "paramd server: %s\n", e.msg);
            return 1;
        }
        char name[32];
        snprintf(name, sizeof name, "server %d", pd_server_index(s));
        pd_log_set_name(name);
        cli_stop_on_signal(stop_server, s);
        pd_log(PD_LOG_DEBUG, "listening on %s (advertised as %s, host %s)",
               pd_server_address(s), pd_server_advertised(s), pd_server_host_id(s));
        if (pd_server_metrics_address(s))
            pd_log(PD_LOG_INFO, "metrics at http://%s/metrics", pd_server_metrics_address(s));
        int rc = pd_server_run(s);
        cli_stop_disarm(); /* before the free: no stop_server on a freed s */
        int again = rc == 0 && sp->shards > 0 && pd_server_retired(s) == 2;
        pd_server_free(s);
        if (!again || cli_stop_signaled()) return rc ? 1 : 0;
        cli_stop_unarm();
        pd_log_set_name("server");
        pd_log(PD_LOG_INFO, "place %d of this host's %d (--shards) waits as a standby for "
               "another shard", i, sp->shards);
        o.join = 1;       /* a standby now: its next shard comes by a move */
        o.restore = NULL; /* ...with its state in the seed */
        if (!o.timeout_ms || o.timeout_ms > 5000) o.timeout_ms = 5000;
    }
}


int cmd_server(int argc, char **argv) {
    static const struct option opts[] = {
        {"coordinator", required_argument, 0, 'c'},
        {"listen", required_argument, 0, 'l'},
        {"advertise", required_argument, 0, 'a'},
        {"advertise-host", required_argument, 0, 'H'},
        {"host-id", required_argument, 0, 'I'},
        {"max-frame-mb", required_argument, 0, 'm'},
        {"transport", required_argument, 0, 't'},
        {"fault", required_argument, 0, 'f'},
        {"coordinator-fault", required_argument, 0, 'F'},
        {"apply-threads", required_argument, 0, 'A'},
        {"restore", required_argument, 0, 'R'},
        {"metrics", required_argument, 0, 'M'},
        {"plugin-dir", required_argument, 0, 'P'},
        {"secret-file", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},
        LIMIT_OPTS,
        {"max-table-mb", required_argument, 0, O_TABLEMB},
        {"copy-timeout-ms", required_argument, 0, O_COPYMS},
        {"join", no_argument, 0, 'j'},
        {"shards", required_argument, 0, O_SHARDS},
        {0, 0, 0, 0}};
    pd_server_opts o = {0};
    int32_t shards = 0; /* --shards N; 0: one server, which stops when drained */
    cli_ckpt_opts ck = {0};
    if (cli_ckpt_from_env("paramd server", &ck)) return 2;
    limit_args lim = {0};
    int bad = 0;
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
        if (parse_limit(c, optarg, &lim, &bad)) {
            if (bad) return 2;
            continue;
        }
        switch (c) {
        case 'c': o.coordinator = optarg; break;
        case 'l': o.listen = optarg; break;
        case 'a': o.advertise = optarg; break;
        case 'H': o.advertise_host = optarg; break;
        case 'I': o.host_id = optarg; break;
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
        case 'f':
        case 'F': { /* --fault, --coordinator-fault */
            pd_fault_spec fs;
            pd_err fe = {0};
            if (pd_fault_parse(optarg, &fs, &fe)) {
                fprintf(stderr, "paramd: --%s: %s\n",
                        c == 'f' ? "fault" : "coordinator-fault", fe.msg);
                return 2;
            }
            *(c == 'f' ? &o.fault : &o.coord_fault) = optarg;
            break;
        }
        case O_COPYMS:
            if (parse_count("--copy-timeout-ms", optarg, 3600000, &o.copy_timeout_ms)) return 2;
            break;
        case 'A':
            if (parse_count("--apply-threads", optarg, 64, &o.apply_threads)) return 2;
            break;
        case 'R':
            if (cli_ckpt_option("paramd server", "restore", optarg, &ck)) return 2;
            break;
        case 'M': o.metrics = optarg; break;
        case 'P': o.plugin_dir = optarg; break;
        case 'S': o.secret_file = optarg; break;
        case 'j': o.join = 1; break;
        case O_SHARDS:
            if (parse_count("--shards", optarg, PD_MAX_SERVERS, &shards)) return 2;
            break;
        case 'h': server_usage(stdout); return 0;
        default: server_usage(stderr); return 2;
        }
    }
    if (!o.coordinator) o.coordinator = getenv("PARAMD_COORDINATOR");
    if (!o.host_id) o.host_id = getenv("PARAMD_HOST_ID");
    if (optind < argc || !o.coordinator) {
        fprintf(stderr, "paramd server: %s\n\n",
                optind < argc ? "unexpected argument"
                              : "--coordinator HOST:PORT is required (or set PARAMD_COORDINATOR)");
        server_usage(stderr);
        return 2;
    }
    if (shards > 1 && o.advertise) {
        fprintf(stderr, "paramd server: --advertise HOST:PORT names one address, but "
                "--shards %d starts %d servers: give --advertise-host HOST (each "
                "advertises its own port)\n", shards, shards);
        return 2;
    }
    o.restore = ck.restore;
    o.max_conns = lim.maxconn, o.max_tables = lim.maxtables;
    o.handshake_ms = lim.hs, o.frame_ms = lim.fr;
    o.max_table_bytes = (uint64_t)lim.tablemb << 20;
    server_place sp = {&o, shards};
    if (shards <= 1) return run_place(0, &sp);
    char ports[64];
    if (place_addr(o.listen, shards - 1, ports, sizeof ports) ||
        place_addr(o.metrics, shards - 1, ports, sizeof ports)) {
        fprintf(stderr, "paramd server: --shards %d: the ports counted up from --listen or "
                "--metrics pass 65535\n", shards);
        return 2;
    }
    return cli_run_places(shards, run_place, &sp);
}
