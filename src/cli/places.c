/*
 * places.c - the parent of `paramd server --shards N` (places.h).
 *
 * One process per place rather than N servers in one process: a server
 * is a process with its own listening socket, connections, apply threads
 * and exit (what the coordinator, the tests and the operator already know
 * one server to be), so a place's failure is one server's, and the parent
 * holds nothing but the children's pids.
 *
 * Threads: none; the parent waits in sigwait for SIGCHLD, SIGINT, SIGTERM
 * and SIGHUP, which it blocks before forking (the children unblock them).
 */
#include "cli/places.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/common.h"

int cli_run_places(int n, int (*place)(int i, void *arg), void *arg) {
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    pid_t *pid = pd_calloc((size_t)n, sizeof *pid);
    if (!pid) {
        fprintf(stderr, "paramd server: out of memory\n");
        return 1;
    }
    int live = 0, failed = 0;
    fflush(NULL); /* (nothing buffered is written twice) */
    pid_t parent = getpid();
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) {
            /* The parent's death (SIGKILL, which it cannot pass on) stops
             * this place cleanly rather than leaving it behind. */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) _exit(1); /* (the parent was gone already) */
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            int rc = place(i, arg);
            fflush(NULL);
            _exit(rc);
        }
        if (p < 0) {
            fprintf(stderr, "paramd server: cannot start place %d of %d: %s\n", i, n,
                    strerror(errno));
            failed = 1;
            break;
        }
        pid[i] = p;
        live++;
    }
    int told = 0;
    if (failed) /* the places started stop: a host serves all N or none */
        for (int i = 0; i < n; i++)
            if (pid[i] > 0) kill(pid[i], SIGTERM), told = 1;
    while (live > 0) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig != SIGCHLD) {
            if (!told)
                for (int i = 0; i < n; i++)
                    if (pid[i] > 0) kill(pid[i], SIGTERM);
            told = 1;
            continue;
        }
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0)
            for (int i = 0; i < n; i++) {
                if (pid[i] != p) continue;
                pid[i] = 0;
                live--;
                if (WIFEXITED(st) && WEXITSTATUS(st) == 0) break;
                if (told && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM) break; /* asked */
                failed = 1;
                if (WIFSIGNALED(st))
                    fprintf(stderr, "paramd server: place %d of %d (pid %d) was killed by "
                            "signal %d; the others go on\n", i, n, (int)p, WTERMSIG(st));
                else
                    fprintf(stderr, "paramd server: place %d of %d (pid %d) exited %d; "
                            "the others go on\n", i, n, (int)p, WEXITSTATUS(st));
                break;
            }
    }
    pd_free(pid);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return failed ? 1 : 0;
}
