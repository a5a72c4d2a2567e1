/*
 * cmd_launch.c - `paramd launch`: one process of a cluster that a launcher
 * started whole, its role chosen by its rank.
 *
 *   mpirun -np N paramd launch --servers S [how to meet] -- PROGRAM ARGS
 *   srun -n N    paramd launch --servers S [how to meet] -- PROGRAM ARGS
 *
 * Every one of the N processes runs this.  Rank 0 is the coordinator,
 * ranks 1..S the servers, ranks S+1..N-1 the workers 0..N-S-2, each of
 * which becomes PROGRAM (exec, with PARAMD_COORDINATOR and PARAMD_RANK
 * set, so the program is a plain libparamd worker and the launcher sees
 * its exit status).
 *
 * Rank and world size.  Taken from the first of: --rank/--world; Open
 * MPI (OMPI_COMM_WORLD_RANK/SIZE); MPICH and other PMI launchers
 * (PMI_RANK/PMI_SIZE); PMIx (PMIX_RANK, the size from --world); Slurm
 * (SLURM_PROCID/SLURM_NTASKS); torchrun (RANK/WORLD_SIZE).  The world must
 * hold a coordinator, S servers and at least one worker, and exactly W
 * workers when --workers says so: anything else fails at once, in every
 * process, naming the numbers and where they came from.
 *
 * Meeting.  The coordinator's address must reach everyone with nothing
 * typed per host, by one of (docs/multihost.md):
 *   --coordinator HOST:PORT  rank 0 must run on HOST (checked);
 *   --port PORT              the host is --coordinator-host, else the
 *                            first host of the allocation (Slurm's node
 *                            list; torchrun's MASTER_ADDR); rank 0 must
 *                            run there (checked);
 *   --rendezvous FILE        rank 0 listens (on --port or any free port)
 *                            and writes "HOST:PORT JOB" into FILE, on a
 *                            filesystem every host sees; the others wait
 *                            for it (a file from another job, by the
 *                            launcher's job id, is not taken);
 * and, when every rank is on this host and the launcher names the job, a
 * rendezvous file in $TMPDIR without asking.  Servers and workers keep
 * trying an unreachable coordinator with backoff for --connect-timeout-ms.
 *
 * Addresses.  The coordinator and servers listen on --listen-host
 * (default every interface, 0.0.0.0; loopback when every rank is on this
 * host), or on the address of --interface NAME|CIDR.  What they tell the
 * others: --advertise-host, else the --interface address, else for a
 * server the address it reaches the coordinator from (server.c) and for
 * the coordinator the address its host name resolves to (when that is an
 * address of this host), or its first address that is not loopback:
 * numeric, so that every host dials the same address.  Loopback is never advertised to a
 * world that spans hosts.  Every process prints its role and where it
 * listens.
 *
 * launch_env.c reads the launcher's variables and waits for the files the
 * processes meet through (launch.h); this file decides the roles.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/launch.h"
#include "cli/util.h"
#include "common/common.h"
#include "coord/coord.h"
#include "frame/auth.h"
#include "net/host.h"
#include "server/server.h"
#include "wire/wire.h"

/* ==== Options =========================================================== */

typedef struct launch_opts {
    int32_t servers, workers, max_workers;
    int32_t replicas;      /* copies of each shard (1: none) */
    int elastic;           /* servers may join and shards move (paramd drain) */
    int64_t rank, world;
    const char *coordinator, *coord_host, *rendezvous;
    int64_t port;          /* -1: none */
    int64_t server_ports;  /* server k listens on this + k; -1: any */
    const char *listen_host, *advertise_host, *iface, *host_id, *transport;
    int startup_ms, report_ms, heartbeat_ms, connect_ms;
    const char *apply_threads;
    const char *secret_file; /* --secret-file, else $PARAMD_SECRET_FILE */
    int dry_run;
    char **prog;
} launch_opts;

static void usage(FILE *f) {
    fprintf(f,
"usage: paramd launch --servers S [options] -- PROGRAM [ARGS]\n"
"\n"
"One process of a cluster that a launcher starts whole: run N copies of it\n"
"(mpirun -np N, srun -n N, torchrun, or by hand with --rank/--world).  Rank 0\n"
"is the coordinator, ranks 1..S*R the servers (R: --replicas), the others\n"
"the workers 0..N-S*R-2, which run PROGRAM with PARAMD_COORDINATOR and PARAMD_RANK set.\n"
"The rank and world size come from the launcher (Open MPI, MPICH/PMI, PMIx,\n"
"Slurm, torchrun); a world that does not fit the cluster fails at once.\n"
"\n"
"Cluster:\n"
"  --servers S              servers (required)\n"
"  --replicas R             keep R copies of every shard, each in its own\n"
"                           server process: ranks 1..S*R are servers, the\n"
"                           first S to register serve, the others are copies,\n"
"                           put on another host than their slot's server\n"
"                           where one can be (docs/durability.md) [1]\n"
"  --elastic                servers may join (paramd server --join) and shards\n"
"                           move to them (paramd drain) while workers train\n"
"  --workers W              check that the world is 1 + S*R + W processes\n"
"  --max-workers M          worker slots, for workers that join later [W]\n"
"  --rank R --world N       this process's rank and the world size, when no\n"
"                           launcher says (both or neither)\n"
"How everyone finds the coordinator (one of; docs/multihost.md):\n"
"  --coordinator HOST:PORT  rank 0 listens on PORT and must run on HOST\n"
"  --port PORT              the same, HOST being --coordinator-host, else the\n"
"                           first host of the allocation (SLURM_STEP_NODELIST,\n"
"                           SLURM_JOB_NODELIST, torchrun's MASTER_ADDR)\n"
"  --coordinator-host HOST\n"
"  --rendezvous FILE        rank 0 writes its address into FILE (on a file\n"
"                           system every host sees); the others wait for it.\n"
"                           With --port it listens there, else on any port\n"
"  (none: when every rank is on this host and the launcher names the job, a\n"
"  rendezvous file in $TMPDIR or /tmp)\n"
"Addresses:\n"
"  --listen-host HOST       where the coordinator and servers listen\n"
"                           [0.0.0.0; 127.0.0.1 when every rank is on this host]\n"
"  --interface NAME|CIDR    listen on, and advertise, this host's address on\n"
"                           that interface (eth0) or in that subnet (10.0.0.0/8)\n"
"  --server-ports BASE      server rank k+1 listens on port BASE+k, so that a\n"
"                           firewall can let BASE..BASE+S*R-1 through [any free]\n"
"  --advertise-host HOST    the address the others should dial for this\n"
"                           process [a server: the one it reaches the\n"
"                           coordinator from; the coordinator: its host name's\n"
"                           address, else its first one that is not loopback]\n"
"  --host-id ID             this host's identity for the shared-memory transport\n"
"                           [$PARAMD_HOST_ID, else hostname/boot id/namespace]\n"
"Security (docs/security.md):\n"
"  --secret-file FILE       the cluster secret, on a file system every host\n"
"                           sees (or copied to each host): rank 0 creates it\n"
"                           when missing, the others wait for it; required to\n"
"                           listen beyond loopback [$PARAMD_SECRET_FILE]\n"
"Time:\n"
"  --connect-timeout-ms N   how long servers and workers keep trying to reach\n"
"                           the coordinator (and wait for the rendezvous file)\n"
"                           [60000]\n"
"  --startup-timeout-ms N   the coordinator ends the cluster with an error when\n"
"                           not every process registered after N ms [300000;\n"
"                           0: never]; it says who is missing after --report-ms\n"
"  --report-ms N            [5000]\n"
"  --heartbeat-timeout-ms N  as paramd coordinator [10000]\n"
"Other:\n"
"  --transport auto|tcp     auto: shared memory between processes of one host\n"
"  --apply-threads N        the servers' apply threads [$PARAMD_APPLY_THREADS,\n"
"                           else the cores]\n"
"  --dry-run                print what this rank would do, and exit\n");
}

static int num_opt(const char *opt, const char *v, int64_t lo, int64_t hi, int64_t *out) {
    if (pd_parse_i64(v, out) || *out < lo || *out > hi) {
        fprintf(stderr, "paramd launch: %s '%s' is not a number in %lld..%lld\n", opt, v,
                (long long)lo, (long long)hi);
        return -1;
    }
    return 0;
}

static int parse(int argc, char **argv, launch_opts *o) {
    enum { O_SERVERS = 1000, O_WORKERS, O_MAXW, O_RANK, O_WORLD, O_COORD, O_PORT,
           O_CHOST, O_RDV, O_LISTEN, O_IFACE, O_ADV, O_HOSTID, O_CONNECT, O_STARTUP,
           O_REPORT, O_HB, O_TRANSPORT, O_APPLY, O_DRY, O_SPORTS, O_SECRET, O_REPLICAS,
           O_ELASTIC };
    static const struct option opts[] = {
        {"servers", 1, 0, O_SERVERS}, {"workers", 1, 0, O_WORKERS},
        {"max-workers", 1, 0, O_MAXW}, {"rank", 1, 0, O_RANK}, {"world", 1, 0, O_WORLD},
        {"coordinator", 1, 0, O_COORD}, {"port", 1, 0, O_PORT},
        {"coordinator-host", 1, 0, O_CHOST}, {"rendezvous", 1, 0, O_RDV},
        {"listen-host", 1, 0, O_LISTEN}, {"interface", 1, 0, O_IFACE},
        {"advertise-host", 1, 0, O_ADV}, {"host-id", 1, 0, O_HOSTID},
        {"connect-timeout-ms", 1, 0, O_CONNECT}, {"startup-timeout-ms", 1, 0, O_STARTUP},
        {"report-ms", 1, 0, O_REPORT}, {"heartbeat-timeout-ms", 1, 0, O_HB},
        {"transport", 1, 0, O_TRANSPORT}, {"apply-threads", 1, 0, O_APPLY},
        {"server-ports", 1, 0, O_SPORTS}, {"secret-file", 1, 0, O_SECRET},
        {"replicas", 1, 0, O_REPLICAS}, {"elastic", 0, 0, O_ELASTIC},
        {"dry-run", 0, 0, O_DRY}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->rank = o->world = o->port = o->server_ports = -1;
    o->startup_ms = o->heartbeat_ms = -1;
    o->connect_ms = 60000;
    o->replicas = 1;
    o->secret_file = getenv("PARAMD_SECRET_FILE");
    if (o->secret_file && !o->secret_file[0]) o->secret_file = NULL;
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case O_SERVERS: if (num_opt("--servers", optarg, 1, PD_MAX_SERVERS, &v)) return -1;
                        o->servers = (int32_t)v; break;
        case O_WORKERS: if (num_opt("--workers", optarg, 1, PD_MAX_WORKERS, &v)) return -1;
                        o->workers = (int32_t)v; break;
        case O_MAXW: if (num_opt("--max-workers", optarg, 1, PD_MAX_WORKERS, &v)) return -1;
                     o->max_workers = (int32_t)v; break;
        case O_RANK: if (num_opt("--rank", optarg, 0, 1 << 24, &o->rank)) return -1; break;
        case O_WORLD: if (num_opt("--world", optarg, 1, 1 << 24, &o->world)) return -1; break;
        case O_COORD: o->coordinator = optarg; break;
        case O_PORT: if (num_opt("--port", optarg, 0, 65535, &o->port)) return -1; break;
        case O_CHOST: o->coord_host = optarg; break;
        case O_RDV: o->rendezvous = optarg; break;
        case O_LISTEN: o->listen_host = optarg; break;
        case O_IFACE: o->iface = optarg; break;
        case O_ADV: o->advertise_host = optarg; break;
        case O_HOSTID: o->host_id = optarg; break;
        case O_CONNECT: if (num_opt("--connect-timeout-ms", optarg, 1, 3600000, &v)) return -1;
                        o->connect_ms = (int)v; break;
        case O_STARTUP: if (num_opt("--startup-timeout-ms", optarg, 0, 86400000, &v)) return -1;
                        o->startup_ms = (int)v; break;
        case O_REPORT: if (num_opt("--report-ms", optarg, 1, 86400000, &v)) return -1;
                       o->report_ms = (int)v; break;
        case O_HB: if (num_opt("--heartbeat-timeout-ms", optarg, 0, 86400000, &v)) return -1;
                   o->heartbeat_ms = (int)v; break;
        case O_TRANSPORT:
            if (strcmp(optarg, "auto") && strcmp(optarg, "tcp")) {
                fprintf(stderr, "paramd launch: --transport '%s' is not auto or tcp\n", optarg);
                return -1;
            }
            o->transport = optarg;
            break;
        case O_APPLY: if (num_opt("--apply-threads", optarg, 1, 64, &v)) return -1;
                      o->apply_threads = optarg; break;
        case O_REPLICAS: if (num_opt("--replicas", optarg, 1, PD_MAX_REPLICAS, &v)) return -1;
                         o->replicas = (int32_t)v; break;
        case O_ELASTIC: o->elastic = 1; break;
        case O_DRY: o->dry_run = 1; break;
        case O_SECRET: o->secret_file = optarg; break;
        case O_SPORTS: if (num_opt("--server-ports", optarg, 1, 65535, &o->server_ports)) return -1;
                       break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc && !strcmp(argv[optind], "--")) optind++;
    o->prog = argv + optind;
    const char *bad = !o->servers ? "--servers S is required"
                      : !o->prog[0] ? "no PROGRAM to run as the workers (after --)"
                      : o->rank >= 0 && o->world < 0
                          ? "--rank needs --world"
                      : o->coordinator && (o->port >= 0 || o->coord_host)
                          ? "--coordinator HOST:PORT already says host and port: "
                            "drop --port / --coordinator-host"
                      : o->coordinator && o->rendezvous
                          ? "--coordinator and --rendezvous are two ways to meet: give one"
                      : o->coord_host && o->port < 0
                          ? "--coordinator-host needs --port"
                      : o->iface && o->listen_host
                          ? "--interface already says where to listen: drop --listen-host"
                      : o->max_workers && o->workers && o->max_workers < o->workers
                          ? "--max-workers is below --workers"
                          : NULL;
    if (bad) {
        fprintf(stderr, "paramd launch: %s\n\n", bad);
        usage(stderr);
        return -1;
    }
    if (o->elastic && o->replicas > PD_MAX_REPLICAS - 1) {
        fprintf(stderr, "paramd launch: --replicas %d: at most %d copies of a shard with "
                "--elastic (a shard moving in takes one more)\n", o->replicas,
                PD_MAX_REPLICAS - 1);
        return -1;
    }
    return 0;
}

/* ==== Addresses ========================================================= */

/* The address the coordinator tells the others, into out. */
static int coord_advertise(const launch_opts *o, int all_local, const char *listen_host,
                           char *out, size_t n) {
    pd_err e = {0};
    if (o->advertise_host) {
        snprintf(out, n, "%s", o->advertise_host);
        return 0;
    }
    if (strcmp(listen_host, "0.0.0.0") && strcmp(listen_host, "::")) {
        snprintf(out, n, "%s", listen_host); /* --listen-host, --interface */
        return 0;
    }
    if (all_local) {
        snprintf(out, n, "127.0.0.1");
        return 0;
    }
    char name[256] = "", a[PD_HOST_ADDR_MAX + 1];
    if (gethostname(name, sizeof name - 1) == 0 && name[0] &&
        pd_route_source(name, a, sizeof a, &e) == 0 && !pd_addr_is_loopback(a) &&
        pd_host_is_local(a, &e) == 1) {
        snprintf(out, n, "%s", a); /* its name's address, which is this host's */
        return 0;
    }
    if (pd_host_first_addr(a, sizeof a, &e)) {
        fprintf(stderr, "paramd launch: %s\n", e.msg);
        return -1;
    }
    snprintf(out, n, "%s", a);
    return 0;
}

/* ==== The roles ========================================================= */

static void stop_coord(void *p) { pd_coord_stop(p); }
static void stop_server(void *p) { pd_server_stop(p); }

static int run_coordinator(const launch_opts *o, const launch_world *w, int32_t W,
                           const char *listen_host, int64_t port, const char *rdv,
                           const char *where, int all_local) {
    pd_coord_opts co = {0};
    char listen[PD_MAX_ADDR + 1], adv[PD_MAX_ADDR + 1], addr[PD_MAX_ADDR + 1];
    snprintf(listen, sizeof listen, strchr(listen_host, ':') ? "[%s]:%lld" : "%s:%lld",
             listen_host, (long long)(port < 0 ? 0 : port));
    co.listen = listen;
    co.servers = o->servers;
    co.replicas = o->replicas;
    co.elastic = o->elastic;
    co.workers = W;
    co.max_workers = o->max_workers;
    co.heartbeat_ms = o->heartbeat_ms;
    co.startup_ms = o->startup_ms;
    co.report_ms = o->report_ms;
    co.secret_file = o->secret_file;
    if (rdv && coord_advertise(o, all_local, listen_host, adv, sizeof adv)) return 1;
    pd_log_set_name("coordinator");
    cli_stop_signals();
    pd_err e = {0};
    pd_coord *c = pd_coord_start(&co, &e);
    if (!c) {
        fprintf(stderr, "paramd launch: rank 0, the coordinator: %s\n", e.msg);
        return 1;
    }
    cli_stop_on_signal(stop_coord, c);
    const char *bound = pd_coord_address(c);
    if (rdv) {
        char h[PD_MAX_ADDR + 1];
        uint16_t p;
        pd_parse_hostport(bound, h, sizeof h, &p);
        snprintf(addr, sizeof addr, strchr(adv, ':') ? "[%s]:%u" : "%s:%u", adv, p);
    } else {
        snprintf(addr, sizeof addr, "%s", where);
    }
    char extra[96] = "";
    if (o->replicas > 1)
        snprintf(extra, sizeof extra, " x %d copies", o->replicas);
    printf("paramd launch: rank 0 of %lld (%s): coordinator of %d servers%s and %d "
           "workers%s, listening on %s, reachable at %s\n",
           (long long)w->size, w->who, o->servers, extra, W,
           o->elastic ? " (elastic)" : "", bound, addr);
    fflush(stdout);
    if (rdv && launch_write_rendezvous(rdv, addr, w->job)) {
        cli_stop_disarm();
        pd_coord_stop(c);
        pd_coord_free(c);
        return 1;
    }
    int rc = pd_coord_run(c);
    cli_stop_disarm();
    pd_coord_free(c);
    if (rdv) unlink(rdv); /* the next job must not find our address */
    return rc == PARAMD_ETIMEDOUT ? 1 : 0;
}

static int run_server(const launch_opts *o, const launch_world *w, const char *caddr,
                      const char *listen_host, const char *adv_host) {
    pd_server_opts so = {0};
    char listen[PD_MAX_ADDR + 1], name[32];
    int64_t port = o->server_ports < 0 ? 0 : o->server_ports + w->rank - 1;
    if (port > 65535) {
        fprintf(stderr, "paramd launch: --server-ports %lld leaves rank %lld no port\n",
                (long long)o->server_ports, (long long)w->rank);
        return 2;
    }
    snprintf(listen, sizeof listen, strchr(listen_host, ':') ? "[%s]:%lld" : "%s:%lld",
             listen_host, (long long)port);
    so.coordinator = caddr;
    so.listen = listen;
    so.advertise_host = adv_host;
    so.timeout_ms = o->connect_ms;
    so.secret_file = o->secret_file;
    so.no_shm = o->transport && !strcmp(o->transport, "tcp");
    so.host_id = o->host_id ? o->host_id : getenv("PARAMD_HOST_ID");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *at = o->apply_threads ? o->apply_threads : getenv("PARAMD_APPLY_THREADS");
    int64_t n = 0;
    if (at && num_opt("--apply-threads or PARAMD_APPLY_THREADS", at, 1, 64, &n)) return 2;
    so.apply_threads = n ? (int)n : cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
    pd_log_set_name("server");
    cli_stop_signals();
    pd_err e = {0};
    pd_server *s = pd_server_start(&so, &e);
    if (!s) {
        fprintf(stderr, "paramd launch: rank %lld, a server: %s\n", (long long)w->rank, e.msg);
        return 1;
    }
    snprintf(name, sizeof name, "server %d", pd_server_index(s));
    pd_log_set_name(name);
    cli_stop_on_signal(stop_server, s);
    char hn[64], role[48];
    pd_host_name_of(pd_server_host_id(s), hn, sizeof hn);
    if (pd_server_copy(s))
        snprintf(role, sizeof role, "copy %d of server %d", pd_server_copy(s),
                 pd_server_index(s));
    else
        snprintf(role, sizeof role, "server %d", pd_server_index(s));
    printf("paramd launch: rank %lld of %lld (%s) on host %s: %s, listening on "
           "%s, advertised as %s\n",
           (long long)w->rank, (long long)w->size, w->who, hn, role,
           pd_server_address(s), pd_server_advertised(s));
    fflush(stdout);
    int rc = pd_server_run(s);
    cli_stop_disarm();
    pd_server_free(s);
    return rc ? 1 : 0;
}

static int run_worker(const launch_opts *o, const launch_world *w, int32_t r, int32_t W,
                      const char *caddr) {
    char v[32];
    setenv("PARAMD_COORDINATOR", caddr, 1);
    snprintf(v, sizeof v, "%d", r);
    setenv("PARAMD_RANK", v, 1);
    snprintf(v, sizeof v, "%d", W);
    setenv("PARAMD_WORKERS", v, 1);
    snprintf(v, sizeof v, "%d", o->servers);
    setenv("PARAMD_SERVERS", v, 1);
    if (o->host_id) setenv("PARAMD_HOST_ID", o->host_id, 1);
    if (o->transport) setenv("PARAMD_TRANSPORT", o->transport, 1);
    if (o->secret_file) setenv("PARAMD_SECRET_FILE", o->secret_file, 1); /* its path */
    char host[65] = "?";
    gethostname(host, sizeof host - 1);
    fprintf(stderr, "paramd launch: rank %lld of %lld (%s) on host %s: worker %d of %d, "
            "coordinator at %s\n",
            (long long)w->rank, (long long)w->size, w->who, host, r, W, caddr);
    fflush(stderr);
    execvp(o->prog[0], o->prog);
    fprintf(stderr, "paramd launch: rank %lld (worker %d): cannot run %s: %s\n",
            (long long)w->rank, r, o->prog[0], strerror(errno));
    return 127;
}

/* ==== The command ======================================================= */

int cmd_launch(int argc, char **argv) {
    launch_opts o;
    launch_world w;
    pd_log_set_name("paramd launch");
    if (parse(argc, argv, &o) || launch_find_world(&w, o.rank, o.world)) return 2;
    int64_t N = w.size, S = o.servers, NS = S * o.replicas; /* server ranks 1..NS */
    char ss[96]; /* how the server ranks are counted, for the messages */
    if (o.replicas > 1)
        snprintf(ss, sizeof ss, "%lld servers (--servers %lld x --replicas %d)",
                 (long long)NS, (long long)S, o.replicas);
    else
        snprintf(ss, sizeof ss, "%lld servers (--servers)", (long long)S);
    if (N < NS + 2) {
        fprintf(stderr,
                "paramd launch: a world of %lld (%s) is too small for 1 coordinator + "
                "%s + at least 1 worker: start at least %lld processes\n",
                (long long)N, w.size_var, ss, (long long)(NS + 2));
        return 2;
    }
    int32_t W = (int32_t)(N - 1 - NS);
    if (o.workers && o.workers != W) {
        fprintf(stderr,
                "paramd launch: a world of %lld (%s) is not 1 coordinator + %lld "
                "servers + %d workers (--servers%s, --workers) = %lld: start %lld "
                "processes, or change --servers or --workers\n",
                (long long)N, w.size_var, (long long)NS, o.workers,
                o.replicas > 1 ? " x --replicas" : "", (long long)(1 + NS + o.workers),
                (long long)(1 + NS + o.workers));
        return 2;
    }
    if (W > PD_MAX_WORKERS || (o.max_workers && o.max_workers < W)) {
        fprintf(stderr, "paramd launch: %d workers%s: too many\n", W,
                o.max_workers ? " is more than --max-workers" : "");
        return 2;
    }
    int all_local = w.spans == 0;

    /* How to meet: the coordinator's address, or the rendezvous file. */
    char where[PD_MAX_ADDR + 1] = "", rdv_buf[4096], hbuf[PD_MAX_ADDR + 1];
    const char *rdv = o.rendezvous, *chost = NULL;
    int64_t port = o.port;
    if (o.coordinator) {
        uint16_t p;
        if (pd_parse_hostport(o.coordinator, hbuf, sizeof hbuf, &p) || !p) {
            fprintf(stderr, "paramd launch: --coordinator '%s' is not HOST:PORT (with a "
                    "port that is not 0)\n", o.coordinator);
            return 2;
        }
        snprintf(where, sizeof where, "%s", o.coordinator);
        chost = hbuf;
        port = p;
    } else if (!rdv && port > 0) {
        chost = o.coord_host ? o.coord_host : w.first_host[0] ? w.first_host : NULL;
        if (!chost) {
            fprintf(stderr,
                    "paramd launch: --port %lld but on which host? %s tells no host "
                    "list: give --coordinator-host HOST (where rank 0 runs: the first "
                    "host of the hostfile, with mpirun's default mapping) or "
                    "--rendezvous FILE\n",
                    (long long)port, w.who);
            return 2;
        }
        snprintf(where, sizeof where, strchr(chost, ':') ? "[%s]:%lld" : "%s:%lld", chost,
                 (long long)port);
    } else if (!rdv && port == 0) {
        fprintf(stderr, "paramd launch: --port 0 says any port, which the others cannot "
                "know: give a port, or --rendezvous FILE\n");
        return 2;
    } else if (!rdv) {
        if (!all_local || !w.job[0]) {
            if (w.first_host[0])
                fprintf(stderr,
                        "paramd launch: how do the processes find the coordinator?  Give "
                        "--port PORT (rank 0 listens there, on %s, the first host of "
                        "the allocation), --coordinator HOST:PORT, or --rendezvous FILE "
                        "on a file system every host sees (docs/multihost.md)\n",
                        w.first_host);
            else
                fprintf(stderr,
                        "paramd launch: how do the processes find the coordinator?  Give "
                        "--port PORT with --coordinator-host HOST (where rank 0 runs), "
                        "--coordinator HOST:PORT, or --rendezvous FILE on a file system "
                        "every host sees (docs/multihost.md)\n");
            return 2;
        }
        const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(rdv_buf, sizeof rdv_buf, "%s/paramd-launch-%d-%s", tmp, (int)getuid(), w.job);
        rdv = rdv_buf;
    }
    if (chost && (!strcmp(chost, "0.0.0.0") || !strcmp(chost, "::"))) {
        fprintf(stderr, "paramd launch: %s is no address to dial: name the coordinator's "
                "host\n", chost);
        return 2;
    }

    /* Where to listen, and what to advertise. */
    char ifaddr[PD_HOST_ADDR_MAX + 1] = "";
    pd_err e = {0};
    if (o.iface && pd_iface_addr(o.iface, ifaddr, sizeof ifaddr, &e)) {
        fprintf(stderr, "paramd launch: --interface: %s\n", e.msg);
        return 2;
    }
    const char *listen_host = o.iface ? ifaddr : o.listen_host ? o.listen_host
                              : all_local ? "127.0.0.1" : "0.0.0.0";
    const char *adv_host = o.advertise_host ? o.advertise_host : o.iface ? ifaddr : NULL;
    const char *told = adv_host ? adv_host : listen_host;
    if (pd_addr_is_loopback(told) && w.spans > 0) { /* it reaches no other host */
        fprintf(stderr, "paramd launch: %s %s, a loopback address, in a world that "
                "spans hosts: give --interface, --listen-host or --advertise-host\n",
                adv_host ? "advertising" : "listening on", told);
        return 2;
    }

    /* Beyond loopback, only with the secret (frame/auth.h): said here, in
     * every rank at once, rather than by rank 0 alone while the others
     * wait for it. */
    if (!o.secret_file && !pd_host_is_loopback(listen_host)) {
        fprintf(stderr,
                "paramd launch: listening on %s, which other machines reach, without a "
                "cluster secret: anyone who reaches it could join the cluster and read or "
                "overwrite its parameters.  Give --secret-file FILE (or "
                "PARAMD_SECRET_FILE) on a file system every host sees (rank 0 creates "
                "it), or --listen-host 127.0.0.1 when every rank is on this host "
                "(docs/security.md)\n",
                listen_host);
        return 2;
    }

    int64_t rank = w.rank;
    const char *role = rank == 0 ? "coordinator" : rank <= NS ? "server" : "worker";
    if (o.dry_run) {
        printf("rank %lld of %lld (%s, %s): %s", (long long)rank, (long long)N, w.who,
               w.rank_var, role);
        if (rank > NS) printf(" %lld of %d", (long long)(rank - NS - 1), W);
        printf("; %d servers", o.servers);
        if (o.replicas > 1) printf(" x %d copies", o.replicas);
        printf(", %d workers%s; coordinator ", W, o.elastic ? ", elastic" : "");
        if (rdv) printf("by rendezvous file %s", rdv);
        else printf("at %s", where);
        printf("%s%s; listen on %s\n", w.job[0] ? "; job " : "", w.job, listen_host);
        return 0;
    }
    if (rank == 0) {
        if (chost && !o.advertise_host) { /* rank 0 must be where the others dial */
            int local = pd_host_is_local(chost, &e);
            char me[65] = "?";
            gethostname(me, sizeof me - 1);
            if (local != 1) {
                fprintf(stderr,
                        "paramd launch: rank 0 (the coordinator) runs on host %s, but "
                        "the others will dial %s%s%s%s, %s: %s\n",
                        me, where, w.first_from && !o.coordinator && !o.coord_host ? " (from " : "",
                        w.first_from && !o.coordinator && !o.coord_host ? w.first_from : "",
                        w.first_from && !o.coordinator && !o.coord_host ? ")" : "",
                        local < 0 ? "which does not resolve here" : "which is not this host",
                        local < 0 ? e.msg
                                  : "start rank 0 there, name its host, or use --rendezvous "
                                    "FILE");
                return 2;
            }
        }
        return run_coordinator(&o, &w, W, listen_host, port, rdv, where, all_local);
    }
    char caddr[PD_MAX_ADDR + 1];
    if (rdv) {
        if (launch_read_rendezvous(rdv, w.job, o.connect_ms, caddr, sizeof caddr)) return 1;
    } else {
        snprintf(caddr, sizeof caddr, "%s", where);
    }
    if (o.secret_file && launch_wait_secret(o.secret_file, o.connect_ms)) return 1;
    if (rank <= NS) return run_server(&o, &w, caddr, listen_host, adv_host);
    return run_worker(&o, &w, (int32_t)(rank - NS - 1), W, caddr);
}
