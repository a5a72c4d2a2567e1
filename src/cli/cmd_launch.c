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
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/util.h"
#include "common/common.h"
#include "coord/coord.h"
#include "frame/auth.h"
#include "net/host.h"
#include "server/server.h"
#include "wire/wire.h"

/* ==== Where this process is in the world =============================== */

typedef struct world {
    const char *who;       /* "Open MPI", ..., "--rank/--world" */
    const char *rank_var, *size_var;
    int64_t rank, size;
    int64_t local_size;    /* ranks on this host; -1: unknown */
    int spans;             /* the world spans hosts: 1 yes, 0 no, -1 unknown */
    char first_host[256];  /* first host of the allocation, or "" */
    const char *first_from; /* the variable it came from */
    char job[128];         /* the launcher's job id, or "" */
} world;

/* The first host of a Slurm host list: "h[1-3],gpu5" -> "h1",
 * "rack[1-2]-n[07,09]" -> "rack1-n07". */
static void first_of_hostlist(const char *list, char *out, size_t n) {
    size_t k = 0;
    int depth = 0, skip = 0;
    for (const char *p = list; *p && k + 1 < n; p++) {
        if (*p == '[') { depth = 1; skip = 0; continue; }
        if (depth) {
            if (*p == ']') depth = 0;
            else if (*p == ',' || *p == '-') skip = 1;
            else if (!skip) out[k++] = *p;
            continue;
        }
        if (*p == ',') break;
        out[k++] = *p;
    }
    out[k] = '\0';
}

static const char *env(const char *k) {
    const char *v = getenv(k);
    return v && *v ? v : NULL;
}

/* Read `var` as a number >= min into *out: 0, 1 unset, -1 bad (printed). */
static int env_num(const char *var, int64_t min, int64_t *out) {
    const char *v = env(var);
    if (!v) return 1;
    if (pd_parse_i64(v, out) || *out < min || *out > (1 << 24)) {
        fprintf(stderr, "paramd launch: %s='%s' is not a number >= %lld\n", var, v,
                (long long)min);
        return -1;
    }
    return 0;
}

/* Fill w from the launcher's variables (explicit --rank/--world first).
 * 0, or -1 after printing why. */
static int find_world(world *w, int64_t rank, int64_t size) {
    static const struct {
        const char *who, *rank, *size, *local;
    } fam[] = {{"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                "OMPI_COMM_WORLD_LOCAL_SIZE"},
               {"MPICH/PMI", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"},
               {"PMIx", "PMIX_RANK", NULL, NULL},
               {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", NULL},
               {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"}};
    memset(w, 0, sizeof *w);
    w->local_size = -1;
    if (rank >= 0) {
        w->who = "--rank/--world";
        w->rank_var = "--rank";
        w->size_var = "--world";
        w->rank = rank;
        w->size = size;
    } else {
        for (size_t k = 0; k < sizeof fam / sizeof fam[0] && !w->who; k++) {
            int r = env_num(fam[k].rank, 0, &w->rank);
            if (r < 0) return -1;
            if (r > 0) continue;
            w->who = fam[k].who;
            w->rank_var = fam[k].rank;
            w->size_var = fam[k].size;
            r = fam[k].size ? env_num(fam[k].size, 1, &w->size) : 1;
            if (r == 1 && !strcmp(fam[k].who, "Slurm")) {
                w->size_var = "SLURM_NPROCS";
                r = env_num("SLURM_NPROCS", 1, &w->size);
            }
            if (r < 0) return -1;
            if (r > 0 && size > 0) {
                w->size = size;
                w->size_var = "--world";
            } else if (r > 0) {
                fprintf(stderr,
                        "paramd launch: %s gives this process's rank (%s=%lld) but "
                        "not the world size%s%s: give it with --world N\n",
                        fam[k].who, fam[k].rank, (long long)w->rank,
                        fam[k].size ? ": " : "", fam[k].size ? fam[k].size : "");
                return -1;
            }
            if (fam[k].local && env_num(fam[k].local, 1, &w->local_size) < 0) return -1;
        }
        if (!w->who) {
            fprintf(stderr,
                    "paramd launch: no rank: run it under a launcher (mpirun, srun, "
                    "torchrun, or any that sets OMPI_COMM_WORLD_RANK, PMI_RANK, "
                    "PMIX_RANK, SLURM_PROCID or RANK), or give --rank R --world N\n");
            return -1;
        }
    }
    if (size > 0 && w->size != size) {
        fprintf(stderr, "paramd launch: --world %lld but %s says %s=%lld\n",
                (long long)size, w->who, w->size_var, (long long)w->size);
        return -1;
    }
    int64_t nodes;
    if (w->local_size > 0) w->spans = w->local_size < w->size;
    else if (!strcmp(w->who, "Slurm") && env_num("SLURM_STEP_NUM_NODES", 1, &nodes) == 0)
        w->spans = nodes > 1;
    else if (w->size == 1) w->spans = 0;
    else w->spans = -1;
    if (w->rank >= w->size) {
        fprintf(stderr, "paramd launch: rank %lld (%s) is outside a world of %lld (%s)\n",
                (long long)w->rank, w->rank_var, (long long)w->size, w->size_var);
        return -1;
    }
    /* The allocation's first host, and the job's id (for rendezvous). */
    const char *nl = env("SLURM_STEP_NODELIST") ? "SLURM_STEP_NODELIST" : "SLURM_JOB_NODELIST";
    if (env(nl)) {
        first_of_hostlist(env(nl), w->first_host, sizeof w->first_host);
        w->first_from = nl;
    } else if (env("MASTER_ADDR")) {
        snprintf(w->first_host, sizeof w->first_host, "%s", env("MASTER_ADDR"));
        w->first_from = "MASTER_ADDR";
    }
    if (env("SLURM_JOB_ID") && !strcmp(w->who, "Slurm"))
        snprintf(w->job, sizeof w->job, "slurm-%s.%s", env("SLURM_JOB_ID"),
                 env("SLURM_STEP_ID") ? env("SLURM_STEP_ID") : "0");
    else if (env("PMIX_NAMESPACE"))
        snprintf(w->job, sizeof w->job, "pmix-%s", env("PMIX_NAMESPACE"));
    else if (env("OMPI_MCA_ess_base_jobid"))
        snprintf(w->job, sizeof w->job, "ompi-%s", env("OMPI_MCA_ess_base_jobid"));
    else if (env("TORCHELASTIC_RUN_ID"))
        snprintf(w->job, sizeof w->job, "torch-%s", env("TORCHELASTIC_RUN_ID"));
    for (char *p = w->job; *p; p++) /* one word, safe in a file name */
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            *p = '_';
    return 0;
}

/* ==== Options =========================================================== */

typedef struct launch_opts {
    int32_t servers, workers, max_workers;
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
"is the coordinator, ranks 1..S the servers, ranks S+1..N-1 the workers\n"
"0..N-S-2, which run PROGRAM with PARAMD_COORDINATOR and PARAMD_RANK set.\n"
"The rank and world size come from the launcher (Open MPI, MPICH/PMI, PMIx,\n"
"Slurm, torchrun); a world that does not fit the cluster fails at once.\n"
"\n"
"Cluster:\n"
"  --servers S              servers (required)\n"
"  --workers W              check that the world is 1 + S + W processes\n"
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
"  --server-ports BASE      server k (rank k+1) listens on port BASE+k, so that a\n"
"                           firewall can let BASE..BASE+S-1 through [any free]\n"
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
           O_REPORT, O_HB, O_TRANSPORT, O_APPLY, O_DRY, O_SPORTS, O_SECRET };
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
        {"dry-run", 0, 0, O_DRY}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->rank = o->world = o->port = o->server_ports = -1;
    o->startup_ms = o->heartbeat_ms = -1;
    o->connect_ms = 60000;
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
    return 0;
}

/* ==== Meeting =========================================================== */

/* Wait for the rendezvous file of this job: its "HOST:PORT JOB" into
 * addr.  0, or -1 after printing why (deadline). */
static int read_rendezvous(const char *file, const char *job, int ms, char *addr, size_t n) {
    int64_t start = pd_now_ms(), said = 0;
    int delay = 10;
    char other[160] = "";
    for (;;) {
        FILE *f = fopen(file, "r");
        if (f) {
            char line[512], a[PD_MAX_ADDR + 1] = "", j[160] = "";
            int got = fgets(line, sizeof line, f) != NULL;
            fclose(f);
            if (got && sscanf(line, "%255s %159s", a, j) >= 1) {
                if (!job[0] || !strcmp(j, job)) {
                    snprintf(addr, n, "%s", a);
                    return 0;
                }
                snprintf(other, sizeof other, "%s", j); /* another job's: wait */
            }
        }
        int64_t now = pd_now_ms();
        if (now - start >= ms) break;
        if (!said && now - start >= 5000) {
            said = 1;
            pd_log(PD_LOG_INFO, "still waiting for the coordinator's address in %s%s%s",
                   file, other[0] ? " (it holds another job's: " : "",
                   other[0] ? other : "");
        }
        struct timespec ts = {0, (long)delay * 1000000L};
        nanosleep(&ts, NULL);
        if (delay < 200) delay *= 2;
    }
    fprintf(stderr,
            "paramd launch: no coordinator address in %s after %.1f s%s%s%s: is rank "
            "0 running, and is the file on a file system every host sees?\n",
            file, (double)ms / 1000.0, other[0] ? " (it holds job " : "",
            other[0] ? other : "", other[0] ? "'s, not this job's)" : "");
    return -1;
}

/* Write "addr job" into file atomically (a reader never sees half). */
static int write_rendezvous(const char *file, const char *addr, const char *job) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", file, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%s %s\n", addr, job[0] ? job : "-") < 0 || fclose(f) != 0 ||
        rename(tmp, file) != 0) {
        fprintf(stderr, "paramd launch: cannot write the rendezvous file %s: %s\n", file,
                strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* A server or worker waits (up to ms) for the secret file that rank 0
 * creates, on a file system every host sees.  0 once it exists (whether
 * it is fit to use, frame/auth.c says when it is read), or -1 after
 * printing why. */
static int wait_secret(const char *file, int ms) {
    int64_t start = pd_now_ms();
    int delay = 10, said = 0;
    while (access(file, F_OK) != 0) {
        int64_t now = pd_now_ms();
        if (errno != ENOENT || now - start >= ms) {
            char why[160];
            if (errno == ENOENT)
                snprintf(why, sizeof why, "did not appear within %.1f s (--connect-timeout-ms)",
                         (double)ms / 1000.0);
            else
                snprintf(why, sizeof why, "cannot be looked at: %s", strerror(errno));
            fprintf(stderr,
                    "paramd launch: the secret file %s %s: rank 0 creates it; put it on a "
                    "file system every host sees, or copy it to every host first\n",
                    file, why);
            return -1;
        }
        if (!said && now - start >= 5000) {
            said = 1;
            pd_log(PD_LOG_INFO, "still waiting for the secret file %s (rank 0 creates it)",
                   file);
        }
        struct timespec ts = {0, (long)delay * 1000000L};
        nanosleep(&ts, NULL);
        if (delay < 200) delay *= 2;
    }
    return 0;
}

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

static int run_coordinator(const launch_opts *o, const world *w, int32_t W,
                           const char *listen_host, int64_t port, const char *rdv,
                           const char *where, int all_local) {
    pd_coord_opts co = {0};
    char listen[PD_MAX_ADDR + 1], adv[PD_MAX_ADDR + 1], addr[PD_MAX_ADDR + 1];
    snprintf(listen, sizeof listen, strchr(listen_host, ':') ? "[%s]:%lld" : "%s:%lld",
             listen_host, (long long)(port < 0 ? 0 : port));
    co.listen = listen;
    co.servers = o->servers;
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
    printf("paramd launch: rank 0 of %lld (%s): coordinator of %d servers and %d "
           "workers, listening on %s, reachable at %s\n",
           (long long)w->size, w->who, o->servers, W, bound, addr);
    fflush(stdout);
    if (rdv && write_rendezvous(rdv, addr, w->job)) {
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

static int run_server(const launch_opts *o, const world *w, const char *caddr,
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
    char hn[64];
    pd_host_name_of(pd_server_host_id(s), hn, sizeof hn);
    printf("paramd launch: rank %lld of %lld (%s) on host %s: server %d, listening on "
           "%s, advertised as %s\n",
           (long long)w->rank, (long long)w->size, w->who, hn, pd_server_index(s),
           pd_server_address(s), pd_server_advertised(s));
    fflush(stdout);
    int rc = pd_server_run(s);
    cli_stop_disarm();
    pd_server_free(s);
    return rc ? 1 : 0;
}

static int run_worker(const launch_opts *o, const world *w, int32_t r, int32_t W,
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
    world w;
    pd_log_set_name("paramd launch");
    if (parse(argc, argv, &o) || find_world(&w, o.rank, o.world)) return 2;
    int64_t N = w.size, S = o.servers;
    if (N < S + 2) {
        fprintf(stderr,
                "paramd launch: a world of %lld (%s) is too small for 1 coordinator + "
                "%lld servers (--servers) + at least 1 worker: start at least %lld "
                "processes\n",
                (long long)N, w.size_var, (long long)S, (long long)(S + 2));
        return 2;
    }
    int32_t W = (int32_t)(N - 1 - S);
    if (o.workers && o.workers != W) {
        fprintf(stderr,
                "paramd launch: a world of %lld (%s) is not 1 coordinator + %lld "
                "servers + %d workers (--servers, --workers) = %lld: start %lld "
                "processes, or change --servers or --workers\n",
                (long long)N, w.size_var, (long long)S, o.workers,
                (long long)(1 + S + o.workers), (long long)(1 + S + o.workers));
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
    const char *role = rank == 0 ? "coordinator" : rank <= S ? "server" : "worker";
    if (o.dry_run) {
        printf("rank %lld of %lld (%s, %s): %s", (long long)rank, (long long)N, w.who,
               w.rank_var, role);
        if (rank > S) printf(" %lld of %d", (long long)(rank - S - 1), W);
        printf("; %d servers, %d workers; coordinator ", o.servers, W);
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
        if (read_rendezvous(rdv, w.job, o.connect_ms, caddr, sizeof caddr)) return 1;
    } else {
        snprintf(caddr, sizeof caddr, "%s", where);
    }
    if (o.secret_file && wait_secret(o.secret_file, o.connect_ms)) return 1;
    if (rank <= S) return run_server(&o, &w, caddr, listen_host, adv_host);
    return run_worker(&o, &w, (int32_t)(rank - S - 1), W, caddr);
}
