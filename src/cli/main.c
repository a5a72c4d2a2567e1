/*
 * main.c - the paramd program: one binary, one subcommand per role.
 *
 *   paramd coordinator --listen HOST:PORT --servers S --workers W
 *   paramd server --coordinator HOST:PORT [--listen HOST:PORT]
 *   paramd local --servers S --workers W -- PROGRAM [ARGS]
 *   paramd train ...        (trains a model; see paramd train --help)
 *   paramd plot RUN_DIR...  (plots runs)
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/common.h"

static void usage(FILE *f) {
    fprintf(f,
            "paramd %s - a parameter server for distributed training\n"
            "\n"
            "usage: paramd COMMAND [OPTIONS]\n"
            "\n"
            "commands:\n"
            "  local        start a whole cluster on this machine and run W copies\n"
            "               of a worker program in it\n"
            "  train        train a model on Fashion-MNIST (starts its own cluster)\n"
            "  plot         draw test accuracy and loss of one or more runs\n"
            "  bench        measure push/pull throughput and latency against raw TCP\n"
            "  coordinator  run the coordinator of a cluster\n"
            "  server       run one parameter server of a cluster\n"
            "  stats        counters of every table on every server of a cluster\n"
            "  version      print the version\n"
            "\n"
            "Run 'paramd COMMAND --help' for the options of a command.\n",
            paramd_version_string());
}

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

/* ==== main ============================================================== */

int main(int argc, char **argv) {
    const char *lvl = getenv("PARAMD_LOG");
    if (lvl) {
        if (!strcmp(lvl, "debug")) pd_log_set_level(PD_LOG_DEBUG);
        else if (!strcmp(lvl, "warn")) pd_log_set_level(PD_LOG_WARN);
        else if (!strcmp(lvl, "error")) pd_log_set_level(PD_LOG_ERROR);
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    argc--, argv++;
    if (!strcmp(cmd, "coordinator")) return cmd_coordinator(argc, argv);
    if (!strcmp(cmd, "server")) return cmd_server(argc, argv);
    if (!strcmp(cmd, "local")) return cmd_local(argc, argv);
    if (!strcmp(cmd, "train")) return cmd_train(argc, argv);
    if (!strcmp(cmd, "plot")) return cmd_plot(argc, argv);
    if (!strcmp(cmd, "stats")) return cmd_stats(argc, argv);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc, argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("paramd %s\n", paramd_version_string());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "paramd: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
