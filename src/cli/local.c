/*
 * local.c - a cluster of child processes on this machine (local.h): a
 * coordinator, S servers and W copies of a worker program, each a child
 * process with its output prefixed by its role and rank.  `paramd local`
 * (cmd_local.c), `paramd train` and `paramd bench` start their clusters
 * with it.
 *
 * Lifetime rules (the point of this file):
 *   - every child gets PR_SET_PDEATHSIG=SIGKILL, so even a SIGKILL of the
 *     supervising process itself leaves no child behind;
 *   - when every worker exits 0, the coordinator tells the servers to exit
 *     and exits itself; pd_local_wait waits for them (then, after a grace
 *     period, terminates them) and returns 0;
 *   - when any child fails (a worker exits non-zero or by a signal, or a
 *     server or the coordinator exits while workers run), every other child
 *     gets SIGTERM, then SIGKILL after a grace period, and pd_local_wait
 *     returns 1 naming the failed child; so it does, without terminating
 *     anyone, when the coordinator or a server exits non-zero after the
 *     workers finished (the coordinator's 3: a worker died or a server was
 *     lost on the way);
 *   - with PD_LOCAL_KEEP_GOING, a worker other than worker 0 that fails
 *     while others run is reported and the cluster goes on without it (the
 *     coordinator notices its connections close and tells the servers, so
 *     sync clocks stop waiting for it); the coordinator's 3 after the
 *     workers is then expected, and pd_local_wait returns 3 naming the
 *     workers lost.  Worker 0 failing still ends everything, unless
 *     PD_LOCAL_ANY_WORKER says another worker takes its part (paramd
 *     train: the next worker writes the results);
 *   - SIGINT / SIGTERM / SIGHUP to the supervisor terminate every child the
 *     same way and pd_local_wait returns 128+signal.
 *   - with pd_local_coord_restarts, a coordinator that exits while
 *     workers run is started again alone; the running servers and
 *     workers rejoin it.  Its listening socket is ours (each coordinator
 *     gets it as fd 3, --listen-fd), so the address survives the restart.
 * The cluster secret (cli/secret.h): the one in PARAMD_SECRET_FILE, or a
 * private one made for this cluster and removed by pd_local_free.
 * One thread: a poll loop over the children's output pipes and a signalfd
 * (SIGCHLD and the terminating signals), so no signal handler runs code.
 * Its messages still say "paramd local", whichever command started it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/local.h"
#include "cli/secret.h"
#include "cli/util.h"
#include "common/common.h"
#include "net/conn.h"

/* ==== Types ============================================================= */

enum { ROLE_COORD, ROLE_SERVER, ROLE_WORKER };

typedef struct stream {
    int fd;            /* -1 once at EOF */
    FILE *to;          /* our stdout or stderr */
    char buf[4096];
    size_t len;
} stream;

typedef struct child {
    int role, rank;
    char label[32];
    pid_t pid;
    int running;
    int status;        /* wait status once exited */
    stream out, err;
} child;

struct pd_local {
    child *ch;
    int n;
    int sfd;                 /* signalfd */
    int failed;              /* a child failed */
    char why[256];
    int flags;               /* PD_LOCAL_* */
    int lost;                /* workers that failed, gone on without */
    int infra;               /* a server or the coordinator failed first */
    int cap;                 /* ch[] slots */
    int32_t W, S;
    char *const *wargv, *const *wenv; /* the workers' program (the caller's) */
    int replace_left;        /* replacements still allowed */
    int replaced;            /* workers replaced so far */
    char replaced_why[256];  /* the first of them, and how */
    int32_t pending[64];     /* ranks to start again (reap -> supervise) */
    int npending;
    double coord_gone;       /* when the coordinator exited 3 (KEEP_GOING) */
    char lost_why[256];      /* the first of them, and how */
    int signalled;           /* terminating signal received */
    double term_deadline;    /* 0: not terminating */
    int killed;
    sigset_t oldmask;
    char coord_env[340];     /* PARAMD_COORDINATOR=ADDR, for every worker */
    char coord_addr[300];    /* the coordinator's bound address */
    int coord_lfd;           /* its listening socket, ours (-1: none) */
    char sarg[16], warg[16], marg[16], rarg[16]; /* its --servers, --workers,
                                                  * --max-workers, --replicas */
    int coord_left;          /* coordinator restarts still allowed */
    int coord_restarts;      /* done so far */
    int coord_pending;       /* reap -> supervise: start it again */
    char coord_why[256];     /* the first, and how it exited */
    int server_left;         /* server replacements still allowed */
    int server_restarts;     /* done so far */
    int32_t server_pending[64]; /* reap -> supervise: indexes to replace */
    int nserver_pending;
    char server_why[256];    /* the first, and how it exited */
    int replicas;            /* copies of each shard (PD_LOCAL_REPLICAS) */
    int copy_left;           /* servers still to start as new copies */
    int copies_started;      /* done so far */
    int32_t nservers;        /* servers started (their labels' numbers) */
    char secret_dir[4096];   /* the cluster's private secret, if we made one
                              * (secret.h): removed by pd_local_free */
};

/* ==== Output ============================================================ */

static void emit(child *c, stream *s, int final) {
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->buf[i] != '\n') continue;
        fprintf(s->to, "[%s] %.*s\n", c->label, (int)(i - start), s->buf + start);
        start = i + 1;
    }
    if (start == 0 && s->len == sizeof s->buf) { /* a very long line */
        fprintf(s->to, "[%s] %.*s\n", c->label, (int)s->len, s->buf);
        start = s->len;
    }
    if (final && start < s->len) {
        fprintf(s->to, "[%s] %.*s\n", c->label, (int)(s->len - start), s->buf + start);
        start = s->len;
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
    fflush(s->to);
}

static void drain(child *c, stream *s) {
    if (s->fd < 0) return;
    ssize_t r = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
    if (r > 0) {
        s->len += (size_t)r;
        emit(c, s, 0);
        return;
    }
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
    emit(c, s, 1);
    close(s->fd);
    s->fd = -1;
}

/* ==== Children ========================================================== */

/* Start argv as a child labelled `label`; fd3 and fd4 (or -1) become its
 * descriptors 3 and 4.  env: NULL-terminated "K=V" list added to our
 * environment. */
/* The coordinator's optional arguments, from argv[n] on (argv has room
 * for 5 more and its NULL). */
static void coord_flags(const pd_local *L, char **argv, int n) {
    if (L->flags & PD_LOCAL_ELASTIC) argv[n++] = "--elastic";
    if (L->flags & PD_LOCAL_REPLACE_SERVERS) {
        argv[n++] = "--replace-s";
        argv[n++] = "60";
    }
    argv[n] = NULL;
}

static int spawn(pd_local *L, int role, int rank, char *const *argv,
                 char *const *env, int fd3, int fd4, int inherit_stdout) {
    if (L->n == L->cap) { /* a replacement: one more child */
        child *more = realloc(L->ch, sizeof *more * (size_t)(L->cap + 8));
        if (!more) {
            fprintf(stderr, "paramd local: out of memory\n");
            return -1;
        }
        L->ch = more;
        L->cap += 8;
    }
    child *c = &L->ch[L->n];
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) {
        fprintf(stderr, "paramd local: pipe: %s\n", strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "paramd local: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127); /* the parent died already */
        sigprocmask(SIG_SETMASK, &L->oldmask, NULL);
        signal(SIGPIPE, SIG_DFL); /* we ignore it; the child should not */
        if (!inherit_stdout) dup2(po[1], 1);
        dup2(pe[1], 2);
        /* Each to its place, whatever numbers they had: one already in
         * place only loses its close-on-exec; fd4's source is moved out
         * of 3's way first. */
        if (fd4 == 3) fd4 = fcntl(fd4, F_DUPFD, 5);
        if (fd3 == 3) fcntl(3, F_SETFD, 0);
        else if (fd3 >= 0) dup2(fd3, 3);
        if (fd4 == 4) fcntl(4, F_SETFD, 0);
        else if (fd4 >= 0) dup2(fd4, 4);
        for (char *const *e = env; e && *e; e++) putenv(*e);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    memset(c, 0, sizeof *c);
    c->role = role;
    c->rank = rank;
    snprintf(c->label, sizeof c->label, "%s",
             role == ROLE_COORD ? "coordinator" : role == ROLE_SERVER ? "server" : "worker");
    if (role != ROLE_COORD)
        snprintf(c->label + strlen(c->label), sizeof c->label - strlen(c->label), " %d", rank);
    c->pid = pid;
    c->running = 1;
    c->out = (stream){.fd = po[0], .to = stdout};
    if (inherit_stdout) {
        close(po[0]);
        c->out.fd = -1;
    }
    c->err = (stream){.fd = pe[0], .to = stderr};
    L->n++;
    return 0;
}

/* Start worker r; a replacement (for a worker of rank r that died) is
 * told so in PARAMD_REPLACEMENT=1 (its program may care: paramd train's
 * worker 0 then goes on with the run's metrics instead of starting them). */
static int spawn_worker(pd_local *L, int32_t r, int replacement) {
    /* putenv keeps the pointers: give each worker its own strings. */
    char **env = calloc(8 + 64, sizeof *env);
    if (!env) return -1;
    int ne = 0;
    env[ne++] = L->coord_env;
    env[ne] = malloc(32);
    snprintf(env[ne++], 32, "PARAMD_RANK=%d", r);
    env[ne] = malloc(32);
    snprintf(env[ne++], 32, "PARAMD_WORKERS=%d", L->W);
    env[ne] = malloc(32);
    snprintf(env[ne++], 32, "PARAMD_SERVERS=%d", L->S);
    if (replacement) env[ne++] = "PARAMD_REPLACEMENT=1";
    for (char *const *e = L->wenv; e && *e && ne < 70; e++) env[ne++] = *e;
    int rc = spawn(L, ROLE_WORKER, r, L->wargv, env, -1, -1,
                   r == 0 && (L->flags & PD_LOCAL_RANK0_STDOUT));
    for (int i = 1; i < 4; i++) free(env[i]);
    free(env);
    return rc;
}

static void terminate_all(pd_local *L) {
    if (L->term_deadline) return;
    L->term_deadline = pd_now() + 5.0;
    for (int i = 0; i < L->n; i++)
        if (L->ch[i].running) kill(L->ch[i].pid, SIGTERM);
}

static int workers_running(const pd_local *L) {
    for (int i = 0; i < L->n; i++)
        if (L->ch[i].role == ROLE_WORKER && L->ch[i].running) return 1;
    return 0;
}

static int any_running(const pd_local *L) {
    for (int i = 0; i < L->n; i++)
        if (L->ch[i].running) return 1;
    return 0;
}

static void describe_status(int st, char *out, size_t n) {
    if (WIFEXITED(st))
        snprintf(out, n, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, n, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(out, n, "status 0x%x", st);
}

/* A replacement server restores from the newest complete checkpoint of
 * the cluster's directory (the coordinator's, PARAMD_CHECKPOINT_DIR):
 * 1 if there is one yet. */
static int have_checkpoint(void) {
    const char *dir = getenv("PARAMD_CHECKPOINT_DIR");
    if (!dir || !*dir) return 0;
    char latest[4200];
    snprintf(latest, sizeof latest, "%s/LATEST", dir);
    return access(latest, F_OK) == 0;
}

static void reap(pd_local *L) {
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) return;
        for (int i = 0; i < L->n; i++) {
            child *c = &L->ch[i];
            if (c->pid != pid) continue;
            c->running = 0;
            c->status = st;
            int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
            char how[96];
            describe_status(st, how, sizeof how);
            if (c->role == ROLE_COORD && !ok && L->coord_left > 0 && workers_running(L) &&
                !L->failed && !L->term_deadline && !(WIFEXITED(st) && WEXITSTATUS(st) == 3)) {
                /* started again by supervise() on the same address: the
                 * servers and workers, still running, rejoin it and the
                 * run goes on (docs/durability.md) */
                L->coord_left--;
                if (!L->coord_restarts++)
                    snprintf(L->coord_why, sizeof L->coord_why, "the coordinator exited (%s)",
                             how);
                L->coord_pending = 1;
                fprintf(stderr, "paramd local: the coordinator exited (%s) while workers "
                        "were running; starting it again on %s, where the servers and "
                        "workers rejoin it (%d more allowed)\n", how, L->coord_addr,
                        L->coord_left);
                break;
            }
            if (c->role == ROLE_SERVER && !ok && L->replicas > 1 && L->copy_left > 0 &&
                workers_running(L) && !L->failed && !L->term_deadline &&
                L->nserver_pending < (int)(sizeof L->server_pending / sizeof L->server_pending[0])) {
                /* Replicated shards: a copy takes a lost primary's place
                 * (or a copy was lost, or stopped to be seeded anew); a
                 * new server becomes a copy again (docs/durability.md) */
                L->copy_left--;
                L->copies_started++;
                L->server_pending[L->nserver_pending++] = -1;
                fprintf(stderr, "paramd local: %s exited (%s) while workers were running; "
                        "the shards have copies (--replicas %d): starting a new server, "
                        "which becomes a copy seeded while training goes on (%d more "
                        "allowed)\n", c->label, how, L->replicas, L->copy_left);
                break;
            }
            if (c->role == ROLE_SERVER && !ok && L->server_left > 0 && have_checkpoint() &&
                (L->flags & PD_LOCAL_REPLACE_SERVERS) && workers_running(L) && !L->failed &&
                !L->term_deadline &&
                L->nserver_pending < (int)(sizeof L->server_pending / sizeof L->server_pending[0])) {
                /* replaced by supervise(): the coordinator gives the new
                 * server the lost slot, and it restores that shard alone
                 * from the newest checkpoint (docs/durability.md) */
                L->server_left--;
                if (!L->server_restarts++)
                    snprintf(L->server_why, sizeof L->server_why, "%s exited (%s)", c->label,
                             how);
                L->server_pending[L->nserver_pending++] = c->rank;
                fprintf(stderr, "paramd local: %s exited (%s) while workers were running; "
                        "starting a replacement, which restores that shard from the newest "
                        "checkpoint while the other servers keep theirs (%d more allowed)\n",
                        c->label, how, L->server_left);
                break;
            }
            /* A server or the coordinator killed from outside (we send
             * SIGTERM first) is what failed, even when workers that lost
             * it were reaped before it and started the termination. */
            if (c->role != ROLE_WORKER && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL &&
                !L->killed && !L->infra && !L->signalled) {
                L->infra = 1;
                if (L->failed)
                    snprintf(L->why, sizeof L->why, "%s exited (%s) while workers were running",
                             c->label, how);
            }
            /* After we started terminating, exits are expected. */
            if (L->term_deadline) break;
            if (c->role == ROLE_WORKER && !ok && L->replace_left > 0 &&
                L->npending < (int)(sizeof L->pending / sizeof L->pending[0]) &&
                workers_running(L) && !L->failed) {
                /* started again by supervise(): it joins at the first clock
                 * nobody pushed for, with the same rank */
                L->replace_left--;
                if (!L->replaced++)
                    snprintf(L->replaced_why, sizeof L->replaced_why, "%s failed (%s)",
                             c->label, how);
                L->pending[L->npending++] = c->rank;
                fprintf(stderr, "paramd local: %s failed (%s); starting a replacement (%d "
                        "more allowed)\n", c->label, how, L->replace_left);
            } else if (c->role == ROLE_WORKER && !ok && (L->flags & PD_LOCAL_KEEP_GOING) &&
                (c->rank != 0 || (L->flags & PD_LOCAL_ANY_WORKER)) && workers_running(L) &&
                !L->failed) {
                if (!L->lost++)
                    snprintf(L->lost_why, sizeof L->lost_why, "%s failed (%s)", c->label,
                             how);
                fprintf(stderr, "paramd local: %s failed (%s); the others go on without "
                        "it\n", c->label, how);
            } else if (c->role == ROLE_WORKER && !ok) {
                L->failed = 1;
                snprintf(L->why, sizeof L->why, "%s failed (%s)", c->label, how);
                terminate_all(L);
            } else if (c->role == ROLE_COORD &&
                       (L->flags & PD_LOCAL_KEEP_GOING || L->replaced || L->server_restarts) &&
                       !L->failed && WIFEXITED(st) && WEXITSTATUS(st) == 3) {
                /* Its "a worker died": the ones we went on without, or
                 * ones it removed (hung or stopped past their heartbeat)
                 * that still run: supervise() gives those settle time to
                 * exit after their BYE, then stops them.  The others may
                 * still be exiting after their BYE too. */
                L->coord_gone = pd_now();
            } else if (c->role != ROLE_WORKER && !ok && workers_running(L)) {
                /* A clean exit is expected: the coordinator ends the
                 * cluster once every worker said goodbye, which can be
                 * before the last worker process has exited. */
                L->failed = 1;
                L->infra = 1;
                snprintf(L->why, sizeof L->why,
                         "%s exited (%s) while workers were running", c->label, how);
                terminate_all(L);
            } else if (c->role != ROLE_WORKER && !ok && !L->failed) {
                /* After the workers: the coordinator's status says whether
                 * any worker died or server was lost on the way (3). */
                L->failed = 1;
                snprintf(L->why, sizeof L->why, "%s exited (%s) after the workers "
                         "finished: see its log", c->label, how);
            }
            break;
        }
    }
}

/* Run the poll loop until every child has exited. */
static void supervise(pd_local *L, double settle_s) {
    double settle_deadline = 0;
    for (;;) {
        struct pollfd pf[1 + 2 * 4200];
        int np = 0;
        pf[np++] = (struct pollfd){L->sfd, POLLIN, 0};
        for (int i = 0; i < L->n && np + 2 < (int)(sizeof pf / sizeof pf[0]); i++) {
            if (L->ch[i].out.fd >= 0) pf[np++] = (struct pollfd){L->ch[i].out.fd, POLLIN, 0};
            if (L->ch[i].err.fd >= 0) pf[np++] = (struct pollfd){L->ch[i].err.fd, POLLIN, 0};
        }
        if (!any_running(L) && np == 1) break;
        int timeout = 200;
        poll(pf, (nfds_t)np, timeout);
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(L->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo != SIGCHLD) {
                    if (!L->signalled)
                        fprintf(stderr, "paramd local: %s: stopping the cluster\n",
                                strsignal((int)si.ssi_signo));
                    L->signalled = (int)si.ssi_signo;
                    terminate_all(L);
                }
            }
        }
        for (int i = 0; i < L->n; i++) {
            drain(&L->ch[i], &L->ch[i].out);
            drain(&L->ch[i], &L->ch[i].err);
        }
        reap(L);
        for (int k = 0; k < L->npending; k++)
            if (!L->term_deadline && spawn_worker(L, L->pending[k], 1) != 0) {
                L->failed = 1;
                snprintf(L->why, sizeof L->why, "could not start a replacement for worker %d",
                         L->pending[k]);
                terminate_all(L);
            }
        L->npending = 0;
        for (int k = 0; k < L->nserver_pending; k++) {
            char *sv[] = {(char *)cli_self_path(), "server", "--coordinator", L->coord_addr,
                          NULL};
            int32_t label = L->server_pending[k] >= 0 ? L->server_pending[k] : L->nservers++;
            if (!L->term_deadline && spawn(L, ROLE_SERVER, label, sv, NULL, -1, -1, 0) != 0) {
                L->failed = 1;
                L->infra = 1;
                snprintf(L->why, sizeof L->why, "could not start a replacement for server %d",
                         label);
                terminate_all(L);
            }
        }
        L->nserver_pending = 0;
        if (L->coord_pending && !L->term_deadline) {
            L->coord_pending = 0;
            char *cargv[20] = {(char *)cli_self_path(), "coordinator", "--listen-fd", "3",
                               "--servers", L->sarg, "--workers", L->warg, "--max-workers",
                               L->marg, "--replicas", L->rarg, "--expect-rejoin"};
            coord_flags(L, cargv, 13);
            /* (no --restore: it takes the running cluster back) */
            char *cenv[] = {"PARAMD_RESTORE=", NULL};
            if (spawn(L, ROLE_COORD, 0, cargv, cenv, L->coord_lfd, -1, 0) != 0) {
                L->failed = 1;
                L->infra = 1;
                snprintf(L->why, sizeof L->why, "could not start the coordinator again");
                terminate_all(L);
            }
        }
        double now = pd_now();
        /* Workers all done and fine: the coordinator and servers exit by
         * themselves; give them settle_s, then terminate. */
        if (!workers_running(L) && !L->term_deadline && any_running(L)) {
            if (!settle_deadline) settle_deadline = now + settle_s;
            else if (now > settle_deadline) {
                pd_log(PD_LOG_WARN, "cluster did not exit by itself; terminating it");
                terminate_all(L);
            }
        }
        /* The coordinator ended the cluster without some workers that
         * still run (removed for silence: stopped or hung). */
        if (L->coord_gone && !L->term_deadline && workers_running(L) &&
            now > L->coord_gone + settle_s) {
            for (int i = 0; i < L->n; i++) {
                child *c = &L->ch[i];
                if (c->role != ROLE_WORKER || !c->running) continue;
                char msg[160];
                snprintf(msg, sizeof msg, "%s was removed by the coordinator (no heartbeat) "
                         "and had not exited", c->label);
                fprintf(stderr, "paramd local: %s: stopping it\n", msg);
                if (c->rank == 0 && !(L->flags & PD_LOCAL_ANY_WORKER) &&
                    !L->failed) { /* it had the results to write */
                    L->failed = 1;
                    snprintf(L->why, sizeof L->why, "%s", msg);
                } else if (!L->lost++) {
                    snprintf(L->lost_why, sizeof L->lost_why, "%s", msg);
                }
            }
            terminate_all(L);
        }
        if (L->term_deadline && now > L->term_deadline && !L->killed) {
            L->killed = 1;
            for (int i = 0; i < L->n; i++)
                if (L->ch[i].running) kill(L->ch[i].pid, SIGKILL);
        }
    }
}

/* ==== Public ============================================================ */

int pd_local_start(pd_local **out, int32_t S, int32_t W, int32_t M, const char *host,
                   char *const *worker_argv, char *const *worker_env, int flags) {
    *out = NULL;
    pd_local *L = calloc(1, sizeof *L);
    if (!L) return -1;
    L->ch = calloc((size_t)(S * 8 + W + 1), sizeof *L->ch);
    if (!L->ch) {
        free(L);
        return -1;
    }
    L->cap = S * 8 + W + 1; /* (up to 8 copies of each shard) */
    L->coord_lfd = -1;
    L->W = W, L->S = S;
    L->wargv = worker_argv, L->wenv = worker_env;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &L->oldmask);
    /* A closed stdout (a pager quit, a pipe closed) must not kill the
     * supervisor and so orphan the cluster. */
    signal(SIGPIPE, SIG_IGN);
    L->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    *out = L;
    L->flags = flags;

    /* The cluster secret: the coordinator creates the file, every child
     * finds its path in PARAMD_SECRET_FILE (never the secret itself). */
    if (cli_secret_for_cluster(L->secret_dir, sizeof L->secret_dir)) goto fail;
    /* The coordinator's listening socket is ours: the coordinator serves
     * on it (fd 3, --listen-fd), and one started again after a death
     * serves on the same one, so its address never changes hands (no
     * other process can take the port meanwhile) and a server or worker
     * reconnecting meanwhile waits in its backlog. */
    pd_err le = {0};
    char addr[300] = "";
    if (pd_tcp_listen(host, 0, &L->coord_lfd, addr, sizeof addr, &le) != 0) {
        snprintf(L->why, sizeof L->why, "the coordinator cannot listen: %s", le.msg);
        goto fail;
    }
    snprintf(L->sarg, sizeof L->sarg, "%d", S);
    snprintf(L->warg, sizeof L->warg, "%d", W);
    snprintf(L->marg, sizeof L->marg, "%d", M > W ? M : W);
    L->replicas = PD_LOCAL_REPLICAS_OF(flags) > 1 ? PD_LOCAL_REPLICAS_OF(flags) : 1;
    snprintf(L->rarg, sizeof L->rarg, "%d", L->replicas);
    /* new copies for lost servers: a few per server, so that a server
     * that keeps failing does not go on for ever */
    L->copy_left = L->replicas > 1 ? 4 * S * L->replicas : 0;
    const char *self = cli_self_path();
    char *cargv[20] = {(char *)self, "coordinator", "--listen-fd", "3", "--servers", L->sarg,
                       "--workers", L->warg, "--max-workers", L->marg, "--ready-fd", "4",
                       "--replicas", L->rarg};
    coord_flags(L, cargv, 14);
    /* Its ready line (fd 4) says it runs, the cluster secret made: only
     * then may servers and workers start. */
    int rp[2];
    if (pipe2(rp, O_CLOEXEC)) goto fail;
    if (spawn(L, ROLE_COORD, 0, cargv, NULL, L->coord_lfd, rp[1], 0)) {
        close(rp[0]);
        close(rp[1]);
        goto fail;
    }
    close(rp[1]);
    char ready[300] = "";
    size_t rlen = 0;
    double deadline = pd_now() + 30;
    while (pd_now() < deadline && rlen < sizeof ready - 1 && !strchr(ready, '\n')) {
        struct pollfd pf = {rp[0], POLLIN, 0};
        if (poll(&pf, 1, 200) > 0) {
            ssize_t r = read(rp[0], ready + rlen, sizeof ready - 1 - rlen);
            if (r <= 0) break;
            rlen += (size_t)r;
            ready[rlen] = '\0';
        }
        drain(&L->ch[0], &L->ch[0].out);
        drain(&L->ch[0], &L->ch[0].err);
    }
    close(rp[0]);
    if (!strchr(ready, '\n')) {
        snprintf(L->why, sizeof L->why, "the coordinator did not start");
        goto fail;
    }
    snprintf(L->coord_env, sizeof L->coord_env, "PARAMD_COORDINATOR=%s", addr);
    snprintf(L->coord_addr, sizeof L->coord_addr, "%s", addr);

    for (int32_t k = 0; k < S * L->replicas; k++) {
        char *sv[] = {(char *)self, "server", "--coordinator", addr, NULL};
        if (spawn(L, ROLE_SERVER, L->nservers++, sv, NULL, -1, -1, 0)) goto fail;
    }
    for (int32_t r = 0; r < W; r++)
        if (spawn_worker(L, r, 0)) goto fail;
    return 0;
fail:
    L->failed = 1;
    if (!L->why[0]) snprintf(L->why, sizeof L->why, "could not start the cluster");
    terminate_all(L);
    return -1;
}

int pd_local_infra_failed(const pd_local *L) { return L && L->infra; }

void pd_local_replace(pd_local *L, int n) {
    if (L) L->replace_left = n > 0 ? n : 0;
}

void pd_local_coord_restarts(pd_local *L, int n) {
    if (L) L->coord_left = n > 0 ? n : 0;
}

int pd_local_coord_restarted(const pd_local *L) { return L ? L->coord_restarts : 0; }

void pd_local_server_restarts(pd_local *L, int n) {
    if (L) L->server_left = n > 0 ? n : 0;
}

int pd_local_servers_replaced(const pd_local *L) { return L ? L->server_restarts : 0; }

int pd_local_wait(pd_local *L, char *why, size_t whylen) {
    supervise(L, 10.0);
    int rc = 0;
    if (L->copies_started && !L->failed && !L->signalled)
        fprintf(stderr, "paramd local: %d server%s exited during the run; with --replicas %d "
                "no acknowledged update was lost, and %s new cop%s seeded\n",
                L->copies_started, L->copies_started == 1 ? "" : "s", L->replicas,
                L->copies_started == 1 ? "a" : "as many", L->copies_started == 1 ? "y was" : "ies were");
    if (L->signalled) {
        rc = 128 + L->signalled;
        snprintf(why, whylen, "stopped by %s", strsignal(L->signalled));
    } else if (L->failed) {
        rc = 1;
        snprintf(why, whylen, "%s", L->why);
    } else if (L->lost) {
        rc = 3;
        snprintf(why, whylen, "%s%s; the others finished", L->lost_why,
                 L->lost > 1 ? ", and more workers after it" : "");
    } else if (L->server_restarts) {
        rc = 3;
        snprintf(why, whylen, "%s%s; %s restored %s from the newest checkpoint, the other "
                 "servers keeping theirs, and the run finished", L->server_why,
                 L->server_restarts > 1 ? ", and more servers after it" : "",
                 L->server_restarts > 1 ? "replacements" : "a replacement",
                 L->server_restarts > 1 ? "their shards" : "its shard");
    } else if (L->coord_restarts) {
        rc = 3;
        snprintf(why, whylen, "%s%s; %s took the running cluster back and the run "
                 "finished", L->coord_why, L->coord_restarts > 1 ? ", and again later" : "",
                 L->coord_restarts > 1 ? "coordinators started again" : "a coordinator "
                 "started again");
    } else if (L->replaced) {
        rc = 3;
        snprintf(why, whylen, "%s%s; %s finished in %s", L->replaced_why,
                 L->replaced > 1 ? ", and more workers after it" : "",
                 L->replaced > 1 ? "replacements" : "a replacement",
                 L->replaced > 1 ? "their places" : "its place");
    } else {
        why[0] = '\0';
    }
    return rc;
}

void pd_local_free(pd_local *L) {
    if (!L) return;
    if (L->secret_dir[0]) { /* ours: gone with the cluster */
        cli_secret_remove(L->secret_dir);
        unsetenv("PARAMD_SECRET_FILE");
    }
    if (L->sfd >= 0) close(L->sfd);
    if (L->coord_lfd >= 0) close(L->coord_lfd);
    sigprocmask(SIG_SETMASK, &L->oldmask, NULL);
    free(L->ch);
    free(L);
}
