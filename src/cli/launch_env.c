/*
 * launch_env.c - what `paramd launch` learns from its environment
 * (launch.h): its rank and the world's size from the launcher's variables
 * (the first family that sets them: --rank/--world, Open MPI, MPICH/PMI,
 * PMIx, Slurm, torchrun; their local sizes and host lists say whether the
 * world spans hosts and which host is first; their job ids name the
 * rendezvous file), and the two files the processes of a launch meet
 * through: the rendezvous file rank 0 writes its address into, and the
 * cluster's secret file rank 0 creates.  Waiting for either is a loop
 * with a doubling delay up to 200 ms, bounded by --connect-timeout-ms,
 * saying once after 5 s that it is still waiting.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/launch.h"
#include "common/common.h"
#include "wire/wire.h"

/* ==== Where this process is in the world =============================== */

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
int launch_find_world(launch_world *w, int64_t rank, int64_t size) {
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

/* ==== Meeting =========================================================== */

/* Wait for the rendezvous file of this job: its "HOST:PORT JOB" into
 * addr.  0, or -1 after printing why (deadline). */
int launch_read_rendezvous(const char *file, const char *job, int ms, char *addr, size_t n) {
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
int launch_write_rendezvous(const char *file, const char *addr, const char *job) {
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
int launch_wait_secret(const char *file, int ms) {
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
