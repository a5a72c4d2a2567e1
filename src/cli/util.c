/*
 * util.c - helpers the subcommands share (util.h): the signal thread that
 * stops a long-running role, the path of this executable, and the
 * environment options of paramd local and paramd train.
 *
 * The signal thread.  A stop function takes locks, so it cannot run in a
 * signal handler; and blocking the signals in our threads to sigwait()
 * for them is not enough, because threads we did not start never blocked
 * them: OpenBLAS starts its pool from a constructor, before main, and a
 * SIGTERM the kernel gave to one of those killed the process the default
 * way, skipping the clean stop.  So SIGINT and SIGTERM get a handler that
 * only writes the signal number into a pipe (the self-pipe trick), on
 * whichever thread takes it; our own threads keep them blocked (no EINTR
 * in their system calls) except the signal thread, which waits on the
 * pipe and calls the stop function.
 *
 * Who may stop what, and when it may be freed.  The signal thread's state
 * (sigstop below) is static: it outlives every object whose stop function
 * it calls, and the thread is never joined.  What it calls is guarded by
 * sigstop.mu: the thread holds it while it calls stop(arg), and
 * cli_stop_disarm() takes it to clear the state.  So once
 * cli_stop_disarm() returned, no stop(arg) is running or can start, and
 * the caller may free arg.  (The first ThreadSanitizer run found this
 * broken: a SIGTERM that came after pd_server_run returned called
 * pd_server_stop on a freed server.)  Before arming there is nothing to
 * stop cleanly, so a signal then ends the process the default way.
 */
#include "cli/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "paramd.h"

/* ==== Signals =========================================================== */

/* SIG_DONE: a signal's stop ran; SIG_DISARMED: disarmed with none (a
 * later signal is ignored, until cli_stop_unarm). */
enum { SIG_UNARMED, SIG_ARMED, SIG_DONE, SIG_DISARMED };

static struct {
    pthread_mutex_t mu; /* guards state, stop, arg; held while stop runs */
    int state;          /* SIG_UNARMED, then SIG_ARMED, then SIG_DONE */
    void (*stop)(void *);
    void *arg;
    sigset_t set;       /* SIGINT, SIGTERM: written before the thread starts */
    int pipe[2];        /* the handler writes the signal number into [1] */
} sigstop = {.mu = PTHREAD_MUTEX_INITIALIZER, .pipe = {-1, -1}};

/* The only code that runs in a handler: one write(), async-signal-safe. */
static void on_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(sigstop.pipe[1], &b, 1);
    (void)n; /* full pipe: a signal is already waiting to be read */
    errno = saved;
}

static void *signal_thread(void *p) {
    (void)p;
    /* The one thread of ours that takes the signals: its handler runs
     * here (or on a library's thread that never blocked them). */
    pthread_sigmask(SIG_UNBLOCK, &sigstop.set, NULL);
    for (;;) {
        unsigned char b;
        ssize_t n;
        do n = read(sigstop.pipe[0], &b, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1) return NULL;
        int sig = b;
        pthread_mutex_lock(&sigstop.mu);
        int state = sigstop.state;
        if (state == SIG_ARMED) {
            pd_log(PD_LOG_DEBUG, "signal %d: stopping", sig);
            sigstop.stop(sigstop.arg);
            sigstop.state = SIG_DONE;
        } else if (state == SIG_DISARMED) {
            sigstop.state = SIG_DONE; /* nothing to stop: cli_stop_signaled says so */
        }
        pthread_mutex_unlock(&sigstop.mu);
        if (state == SIG_UNARMED) {
            /* Nothing to stop yet: die of it, as without this thread. */
            signal(sig, SIG_DFL);
            raise(sig);
        }
    }
}

void cli_stop_signals(void) {
    sigemptyset(&sigstop.set);
    sigaddset(&sigstop.set, SIGINT);
    sigaddset(&sigstop.set, SIGTERM);
    if (pipe2(sigstop.pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        pd_log(PD_LOG_WARN, "cannot watch for signals (pipe: %s); SIGINT and "
               "SIGTERM will end the process at once", strerror(errno));
        return;
    }
    /* The read end blocks (the signal thread waits on it); the handler's
     * write end never does. */
    fcntl(sigstop.pipe[0], F_SETFL, 0);
    pthread_sigmask(SIG_BLOCK, &sigstop.set, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    for (int i = 0; i < 2; i++) {
        int sig = i ? SIGTERM : SIGINT;
        /* An inherited SIG_IGN stays (a script's background job ignores
         * SIGINT, nohup...): whoever started us asked for it. */
        struct sigaction old;
        if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(sig, &sa, NULL);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, signal_thread, NULL) == 0) pthread_detach(t);
}

void cli_stop_on_signal(void (*stop)(void *), void *arg) {
    pthread_mutex_lock(&sigstop.mu);
    sigstop.stop = stop;
    sigstop.arg = arg;
    sigstop.state = SIG_ARMED;
    pthread_mutex_unlock(&sigstop.mu);
}

void cli_stop_disarm(void) {
    pthread_mutex_lock(&sigstop.mu); /* waits for a stop() in progress */
    if (sigstop.state != SIG_DONE) sigstop.state = SIG_DISARMED;
    sigstop.stop = NULL;
    sigstop.arg = NULL;
    pthread_mutex_unlock(&sigstop.mu);
}

int cli_stop_signaled(void) {
    pthread_mutex_lock(&sigstop.mu);
    int s = sigstop.state == SIG_DONE;
    pthread_mutex_unlock(&sigstop.mu);
    return s;
}

void cli_stop_unarm(void) {
    pthread_mutex_lock(&sigstop.mu);
    if (sigstop.state == SIG_DISARMED) sigstop.state = SIG_UNARMED;
    pthread_mutex_unlock(&sigstop.mu);
}

/* ==== Tools ============================================================= */

paramd_client *cli_tool_connect(const char *cmd, const char *coord) {
    char options[400];
    snprintf(options, sizeof options, "role=tool coordinator=%s", coord);
    paramd_client *cl;
    if (paramd_connect(&cl, options)) {
        fprintf(stderr, "%s: %s\n", cmd, paramd_last_error(NULL));
        return NULL;
    }
    return cl;
}

/* ==== Paths and options ================================================= */

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

int cli_set_plugin_dir(const char *cmd, const char *dir) {
    char real[PATH_MAX];
    struct stat st;
    errno = 0;
    if (!realpath(dir, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: --plugin-dir %s is not a directory%s%s\n", cmd, dir,
                errno ? ": " : "", errno ? strerror(errno) : "");
        return -1;
    }
    setenv("PARAMD_PLUGIN_DIR", real, 1);
    return 0;
}
