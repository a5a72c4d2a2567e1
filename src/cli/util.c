/*
 * util.c - helpers the subcommands share (util.h): the signal thread that
 * stops a long-running role, the path of this executable, and the
 * environment options of paramd local and paramd train.  They lived in
 * main.c, which the subcommands then called back into while it called
 * them.
 */
#include "cli/util.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

/* ==== Signals =========================================================== */

typedef struct sigstop {
    void (*stop)(void *);
    void *arg;
    sigset_t set;
} sigstop;

static void *signal_thread(void *p) {
    sigstop *s = p;
    int sig;
    if (sigwait(&s->set, &sig) == 0) {
        pd_log(PD_LOG_DEBUG, "signal %d: stopping", sig);
        s->stop(s->arg);
    }
    return NULL;
}

void cli_stop_on_signal(void (*stop)(void *), void *arg) {
    static sigstop s; /* lives as long as the process */
    s.stop = stop;
    s.arg = arg;
    sigemptyset(&s.set);
    sigaddset(&s.set, SIGINT);
    sigaddset(&s.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &s.set, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, signal_thread, &s) == 0) pthread_detach(t);
}

const char *cli_self_path(void) {
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return "paramd";
    path[n] = '\0';
    return path;
}

int cli_set_transport(const char *cmd, const char *t) {
    if (strcmp(t, "auto") && strcmp(t, "tcp") && strcmp(t, "shm")) {
        fprintf(stderr, "%s: --transport '%s' is not auto, tcp or shm\n", cmd, t);
        return -1;
    }
    setenv("PARAMD_TRANSPORT", t, 1);
    return 0;
}

int cli_set_apply_threads(const char *cmd, const char *n) {
    int64_t v;
    if (pd_parse_i64(n, &v) || v < 1 || v > 64) {
        fprintf(stderr, "%s: --apply-threads '%s' is not a number in 1..64\n", cmd, n);
        return -1;
    }
    setenv("PARAMD_APPLY_THREADS", n, 1);
    return 0;
}
