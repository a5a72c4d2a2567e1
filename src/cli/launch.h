/*
 * launch.h - what `paramd launch` (cmd_launch.c) learns from its
 * environment (launch_env.c): where this process is in the world its
 * launcher started (rank, size, hosts, job), and how the processes meet
 * (the rendezvous file, the secret file rank 0 creates).  Every function
 * prints why it failed, as "paramd launch: ...", before returning -1.
 */
#ifndef PARAMD_CLI_LAUNCH_H
#define PARAMD_CLI_LAUNCH_H

#include <stddef.h>
#include <stdint.h>

typedef struct launch_world {
    const char *who;       /* "Open MPI", ..., "--rank/--world" */
    const char *rank_var, *size_var;
    int64_t rank, size;
    int64_t local_size;    /* ranks on this host; -1: unknown */
    int spans;             /* the world spans hosts: 1 yes, 0 no, -1 unknown */
    char first_host[256];  /* first host of the allocation, or "" */
    const char *first_from; /* the variable it came from */
    char job[128];         /* the launcher's job id, or "" */
} launch_world;

/* Fill w from the launcher's variables (an explicit --rank/--world, given
 * as rank/size >= 0, first): Open MPI, MPICH/PMI, PMIx, Slurm, torchrun.
 * 0, or -1 after printing why. */
int launch_find_world(launch_world *w, int64_t rank, int64_t size);

/* Wait up to ms for the rendezvous file of this job (job "" takes any):
 * its "HOST:PORT JOB" line's address into addr.  0, or -1 after printing
 * why (deadline). */
int launch_read_rendezvous(const char *file, const char *job, int ms, char *addr, size_t n);
/* Write "addr job" into file atomically (a reader never sees half).  0,
 * or -1 after printing why. */
int launch_write_rendezvous(const char *file, const char *addr, const char *job);
/* A server or worker waits up to ms for the secret file that rank 0
 * creates.  0 once it exists, or -1 after printing why. */
int launch_wait_secret(const char *file, int ms);

#endif
