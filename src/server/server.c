/*
 * server.c - a paramd server process: start (bind, register with the
 * coordinator), the accept loops, stop and free.  What happens on each
 * connection is session.c's; server_impl.h lists the files of the server,
 * its threads and its locks.
 */
#include "server/server.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame/hello.h"
#include "net/fault.h"
#include "net/host.h"
#include "server/server_impl.h"

/* The address registered with the coordinator, for workers to dial:
 * --advertise as given; else --advertise-host with the bound port; else
 * the bound address, except that a wildcard one (0.0.0.0, ::) is no
 * address to dial: then the address this host reaches the coordinator
 * from, which the coordinator's other peers can most likely reach too
 * (and which is loopback only when the coordinator is on loopback). */
static int advertise_addr(pd_server *s, pd_err *e) {
    char host[PD_MAX_ADDR + 1], chost[PD_MAX_ADDR + 1], src[PD_HOST_ADDR_MAX + 1];
    uint16_t port, cport;
    if (s->o.advertise) {
        snprintf(s->advertised, sizeof s->advertised, "%s", s->o.advertise);
        return 0;
    }
    if (pd_parse_hostport(s->bound, host, sizeof host, &port) != 0)
        return pd_seterr(e, PARAMD_EINTERNAL, "bound address '%s'", s->bound);
    const char *h = s->o.advertise_host;
    if (!h && (!strcmp(host, "0.0.0.0") || !strcmp(host, "::"))) {
        if (pd_parse_hostport(s->o.coordinator, chost, sizeof chost, &cport) != 0 ||
            pd_route_source(chost, src, sizeof src, e) != 0)
            return e->code ? e->code : pd_seterr(e, PARAMD_EINVAL, "coordinator '%s'",
                                                 s->o.coordinator);
        h = src;
    }
    if (!h) h = host;
    snprintf(s->advertised, sizeof s->advertised, strchr(h, ':') ? "[%s]:%u" : "%s:%u",
             h, port);
    return 0;
}

/* --plugin-dir: an existing directory, made absolute.  Loading a plugin
 * runs its code as this server, so a directory that other users may write
 * into would let them run code here: refused. */
static int plugin_dir_check(const char *dir, char *out, size_t outlen, pd_err *e) {
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(dir, real) || stat(real, &st) != 0)
        return pd_seterr(e, PARAMD_EINVAL, "--plugin-dir %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return pd_seterr(e, PARAMD_EINVAL, "--plugin-dir %s is not a directory", dir);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return pd_seterr(e, PARAMD_EINVAL,
                         "--plugin-dir %s can be written by other users (mode %04o), "
                         "and every plugin in it runs as this server: chmod go-w it",
                         dir, (unsigned)(st.st_mode & 07777));
    if (strlen(real) + 1 + PD_RULE_PLUGIN_NAME_MAX + 4 > outlen)
        return pd_seterr(e, PARAMD_EINVAL, "--plugin-dir %s: path too long", dir);
    snprintf(out, outlen, "%s", real);
    return 0;
}

pd_server *pd_server_start(const pd_server_opts *o, pd_err *e) {
    pd_server *s = pd_calloc(1, sizeof *s);
    if (!s) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory");
        return NULL;
    }
    s->o = *o;
    if (!s->o.listen) s->o.listen = "127.0.0.1:0";
    if (!s->o.max_frame) s->o.max_frame = PD_MAX_FRAME_DEFAULT;
    if (!s->o.timeout_ms) s->o.timeout_ms = 30000;
    if (s->o.handshake_ms <= 0) s->o.handshake_ms = PD_HANDSHAKE_MS_DEFAULT;
    if (s->o.frame_ms <= 0) s->o.frame_ms = PD_FRAME_MS_DEFAULT;
    if (s->o.copy_timeout_ms <= 0) s->o.copy_timeout_ms = 10000;
    if (s->o.max_tables <= 0 || s->o.max_tables > PD_MAX_TABLES - 1)
        s->o.max_tables = PD_MAX_TABLES - 1;
    if (!s->o.max_table_bytes) {
        /* Half this machine's memory: one table (or one peer) cannot take
         * all of it. */
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        s->o.max_table_bytes = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / 2 : 0;
    }
    /* The connection limit is final once the worker slots are known. */
    pd_admit_init(&s->admit, "server", s->o.max_conns > 0 ? s->o.max_conns : 256,
                  s->o.max_pending);
    s->lfd = -1;
    s->shm_lfd = -1;
    if (s->o.apply_threads > 1) {
        s->pool = pd_pool_create(s->o.apply_threads);
        if (!s->pool)
            pd_log(PD_LOG_WARN, "cannot start %d apply threads; updates run on "
                   "the connection threads alone", s->o.apply_threads);
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->coord_send_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_init(&s->repl_mu, NULL);
    pthread_cond_init(&s->repl_cv, NULL);
    pthread_mutex_init(&s->ack_mu, NULL);
    pthread_cond_init(&s->ack_cv, NULL);
    s->replicas = 1;
    if (s->o.plugin_dir && plugin_dir_check(s->o.plugin_dir, s->plugin_dir,
                                            sizeof s->plugin_dir, e) != 0)
        goto fail;
    char host[PD_MAX_ADDR + 1];
    uint16_t port;
    if (pd_parse_hostport(s->o.listen, host, sizeof host, &port) != 0) {
        pd_seterr(e, PARAMD_EINVAL, "--listen '%s' is not HOST:PORT",
                  s->o.listen);
        goto fail;
    }
    /* The secret first: beyond loopback nothing is bound without it. */
    if (s->o.secret_file) {
        if (pd_secret_load(s->o.secret_file, &s->key, e) != 0) goto fail;
        s->has_key = 1;
    }
    if (pd_listen_check("paramd server", host, s->has_key, e) != 0 ||
        pd_tcp_listen(host, port, &s->lfd, s->bound, sizeof s->bound, e))
        goto fail;
    if (pd_host_id(s->o.host_id, s->host_id, sizeof s->host_id, e) ||
        advertise_addr(s, e))
        goto fail;
    if (!s->has_key)
        pd_log(PD_LOG_WARN, "no cluster secret (--secret-file): any process on this "
               "host can connect to %s (docs/security.md)", s->bound);
    if (!s->o.no_shm) {
        pd_err se = {0};
        if (pd_shm_listen(&s->shm_lfd, s->shm_name, sizeof s->shm_name, &se) != 0)
            pd_log(PD_LOG_WARN, "no shared-memory transport (%s); workers on "
                   "this host will use TCP", se.msg);
    }
    s->coord = pd_tcp_connect(s->o.coordinator, s->o.timeout_ms, e);
    if (s->coord && s->o.coord_fault) s->coord = pd_fault_wrap(s->coord, s->o.coord_fault, e);
    if (!s->coord) goto fail;
    /* a coordinator whose host is cut off is noticed, and stops us */
    pd_tcp_set_peer_timeout(s->coord, PD_PEER_TIMEOUT_DEFAULT);

    uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];
    pd_hdr h = {0}, rh;
    pd_buf b;
    pd_hello hello = {.role = PD_ROLE_SERVER, .rank = -1};
    int rc = pd_handshake_dial(s->coord, &hello, s->has_key ? &s->key : NULL, NULL, e);
    if (rc) {
        char why[PD_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", e->msg);
        pd_seterr(e, rc, "coordinator %s: %s", s->o.coordinator, why);
        goto fail;
    }
    pd_buf_init(&b);
    pd_put_str(&b, s->advertised);
    pd_put_u32(&b, (s->o.join ? PD_REG_JOIN : 0) | (s->o.place ? PD_REG_PLACE : 0));
    pd_put_str(&b, s->host_id); /* (the coordinator balances shards by host) */
    if (s->o.join)
        pd_log(PD_LOG_INFO, "joining the cluster at %s: once it has its servers, this one "
               "takes a shard from the host with the most, or waits as a standby until "
               "`paramd drain` moves one here", s->o.coordinator);
    h = (pd_hdr){0};
    h.type = PD_MSG_REG_SERVER;
    h.id = 2;
    rc = pd_rpc(s->coord, &h, b.p, b.len, &rh, buf, e);
    pd_buf_free(&b);
    if (rc) goto fail;
    pd_rd r;
    uint32_t idx, S, W, M;
    pd_rd_init(&r, buf, (size_t)rh.len);
    pd_get_u32(&r, &idx);
    pd_get_u32(&r, &S);
    pd_get_u32(&r, &W);
    pd_get_u32(&r, &M);
    pd_get_bytes(&r, s->grant.k, sizeof s->grant.k);
    uint32_t rejoin_ms = 0, replicas = 1, copy = 0;
    if (!r.bad && r.off < r.len) pd_get_u32(&r, &rejoin_ms); /* (optional) */
    /* The cluster's copies of each shard, and which this server is (0:
     * the slot's primary; replica.c). */
    if (!r.bad && r.off < r.len) {
        pd_get_u32(&r, &replicas);
        pd_get_u32(&r, &copy);
    }
    /* A replacement of a lost server (coord/replace.c): the checkpoint to
     * restore its shard from, that checkpoint's clock, the clock to go on
     * at, and which worker slots are members. */
    char rep_dir[4200] = "";
    uint64_t rep_C = 0, rep_A = 0;
    uint8_t *member = NULL;
    int replacing = !r.bad && r.off < r.len;
    if (replacing) {
        pd_get_str(&r, rep_dir, sizeof rep_dir - 1);
        pd_get_u64(&r, &rep_C);
        pd_get_u64(&r, &rep_A);
        if (!r.bad && M <= PD_MAX_WORKERS && r.len - r.off == M) {
            member = pd_malloc(M ? M : 1);
            if (member) pd_get_bytes(&r, member, M);
        }
    }
    pd_wipe(buf, sizeof buf);
    if (!pd_rd_done(&r) || S == 0 || idx >= S || W == 0 || M < W ||
        M > PD_MAX_WORKERS || replicas < 1 || replicas > PD_MAX_REPLICAS ||
        copy >= replicas || (replacing && copy) || (replacing && (!member || !rep_dir[0] || rep_A < rep_C ||
                                             rep_A > (uint64_t)INT64_MAX))) {
        pd_free(member);
        pd_seterr(e, PARAMD_EPROTO, "malformed REG_SERVER reply");
        goto fail;
    }
    s->index = (int32_t)idx;
    s->S = (int32_t)S;
    s->W = (int32_t)M; /* worker slots: ranks 0..M-1 */
    s->W_start = (int32_t)W;
    s->rejoin_ms = rejoin_ms > 86400000 ? 86400000 : rejoin_ms;
    s->replicas = replicas;
    __atomic_store_n(&s->copy, (int32_t)copy, __ATOMIC_RELEASE);
    s->join_pending = -1;
    s->gone = pd_calloc(M, 1);
    s->jfrom = pd_malloc(M * sizeof *s->jfrom);
    s->wgen = pd_calloc(M, sizeof *s->wgen);
    s->inflight = pd_calloc(M, sizeof *s->inflight);
    s->wconns = pd_calloc(M, sizeof *s->wconns);
    s->holder = pd_calloc(M, sizeof *s->holder);
    if (replicas > 1) s->dedup = pd_calloc(M, sizeof *s->dedup);
    if (!s->gone || !s->jfrom || !s->wgen || !s->inflight || !s->wconns || !s->holder ||
        (replicas > 1 && !s->dedup)) {
        pd_free(member);
        pd_seterr(e, PARAMD_ENOMEM, "out of memory");
        goto fail;
    }
    /* Slots beyond the W workers the cluster starts with are vacant until
     * a worker joins them: clocks do not wait for them. */
    for (uint32_t w = 0; w < M; w++) s->gone[w] = w >= W, s->jfrom[w] = -1;
    /* Each worker keeps a connection or two here (TCP, then shared
     * memory), and tools come and go. */
    if (s->o.max_conns <= 0) s->o.max_conns = 2 * (int)M + 256;
    pd_admit_set_limits(&s->admit, s->o.max_conns, s->o.max_pending);
    if (replacing) {
        int rc2 = srv_replace(s, rep_dir, (int64_t)rep_C, (int64_t)rep_A, member, e);
        pd_free(member);
        if (rc2) goto fail;
    } else if (s->o.restore && copy > 0) {
        pd_log(PD_LOG_INFO, "copy %u of slot %u: its primary's seed brings the shard "
               "(not --restore %s)", copy, idx, s->o.restore);
    } else if (s->o.restore) {
        if (srv_restore(s, e)) goto fail;
        for (uint32_t id = 1; id < PD_MAX_TABLES; id++)
            for (uint32_t w = 0; s->tables[id] && w < M; w++)
                if (s->gone[w]) pd_table_worker_gone(s->tables[id], (int32_t)w);
    }
    srv_metrics_init(s);
    if (s->o.metrics && !(s->http = pd_http_start(s->o.metrics, srv_metrics_render, s, e)))
        goto fail;
    return s;
fail:
    pd_server_free(s);
    return NULL;
}

/* The shared-memory acceptor: same as the TCP loop of pd_server_run, for
 * the abstract Unix socket. */
static void *shm_accept_main(void *arg) {
    pd_server *s = arg;
    for (;;) {
        int fd = pd_shm_accept(s->shm_lfd);
        if (srv_stopping(s)) {
            if (fd >= 0) close(fd);
            break;
        }
        if (fd < 0) {
            pd_admit_accept_failed(&s->admit, errno); /* backs off */
            continue;
        }
        pd_admit_accept_ok(&s->admit);
        srv_start_conn(s, NULL, fd);
    }
    return NULL;
}

int pd_server_run(pd_server *s) {
    if (pthread_create(&s->coord_thread, NULL, srv_coord_main, s) != 0) {
        pd_log(PD_LOG_ERROR, "cannot start a thread");
        return PARAMD_ENOMEM;
    }
    s->coord_thread_started = 1;
    if (pthread_create(&s->hb_thread, NULL, srv_heartbeat_main, s) == 0)
        s->hb_thread_started = 1;
    else
        pd_log(PD_LOG_WARN, "cannot start the heartbeat thread: the coordinator will "
               "report this server as silent");
    if (s->shm_lfd >= 0) {
        if (pthread_create(&s->shm_thread, NULL, shm_accept_main, s) != 0)
            pd_log(PD_LOG_WARN, "cannot start the shared-memory acceptor; "
                   "workers will use TCP");
        else
            s->shm_thread_started = 1;
    }
    for (;;) {
        pd_conn *c = pd_tcp_accept(s->lfd);
        if (srv_stopping(s)) {
            pd_conn_destroy(c);
            break;
        }
        if (!c) {
            /* Out of descriptors: no spinning, one line per episode
             * (frame/admit.h). */
            pd_admit_accept_failed(&s->admit, errno);
            continue;
        }
        pd_admit_accept_ok(&s->admit);
        if (c && s->o.fault) c = pd_fault_wrap(c, s->o.fault, NULL); /* tests */
        if (c) srv_start_conn(s, c, -1);
    }
    if (s->shm_thread_started) {
        pthread_join(s->shm_thread, NULL);
        s->shm_thread_started = 0;
    }
    /* Stopping: wake every connection thread and wait for them. */
    pthread_mutex_lock(&s->mu);
    for (srv_conn *sc = s->conns; sc; sc = sc->next) pd_conn_shutdown(sc->conn);
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++)
        if (s->tables[id]) pd_table_stop(s->tables[id]);
    while (s->nthreads > 0) pthread_cond_wait(&s->cv, &s->mu);
    int lost = s->lost_coordinator;
    pthread_mutex_unlock(&s->mu);
    /* (the watcher may be replacing the connection: membership.c) */
    pthread_mutex_lock(&s->coord_send_mu);
    pd_conn_shutdown(s->coord);
    pthread_mutex_unlock(&s->coord_send_mu);
    pthread_join(s->coord_thread, NULL);
    s->coord_thread_started = 0;
    if (s->hb_thread_started) { /* stopping is set: it is leaving */
        pthread_join(s->hb_thread, NULL);
        s->hb_thread_started = 0;
    }
    srv_ckpt_join(s); /* its waits failed when the tables stopped */
    srv_repl_stop(s);
    return lost ? PARAMD_ECLOSED : 0;
}

void pd_server_stop(pd_server *s) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv); /* the heartbeat thread */
    pthread_mutex_unlock(&s->mu);
    if (s->lfd >= 0) shutdown(s->lfd, SHUT_RDWR); /* wakes accept() */
    if (s->shm_lfd >= 0) shutdown(s->shm_lfd, SHUT_RDWR);
}

void pd_server_free(pd_server *s) {
    if (!s) return;
    pd_http_stop(s->http); /* first: it reads the tables */
    if (s->hb_thread_started) {
        pd_server_stop(s);
        pthread_join(s->hb_thread, NULL);
    }
    if (s->coord_thread_started) {
        pd_server_stop(s); /* a watcher reconnecting gives up */
        pthread_mutex_lock(&s->coord_send_mu);
        pd_conn_shutdown(s->coord);
        pthread_mutex_unlock(&s->coord_send_mu);
        pthread_join(s->coord_thread, NULL);
    }
    srv_ckpt_join(s);
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++) pd_table_destroy(s->tables[id]);
    pd_pool_destroy(s->pool); /* no connection thread is left to use it */
    pd_conn_destroy(s->coord);
    pd_free(s->gone);
    pd_free(s->jfrom);
    pd_free(s->wgen);
    pd_free(s->inflight);
    pd_free(s->wconns);
    pd_free(s->holder);
    for (int32_t w = 0; s->dedup && w < s->W; w++) pd_free(s->dedup[w].id);
    pd_free(s->dedup);
    pd_wipe(&s->key, sizeof s->key);
    pd_wipe(&s->grant, sizeof s->grant);
    if (s->lfd >= 0) close(s->lfd);
    if (s->shm_lfd >= 0) close(s->shm_lfd);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->coord_send_mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->repl_mu);
    pthread_cond_destroy(&s->repl_cv);
    pthread_mutex_destroy(&s->ack_mu);
    pthread_cond_destroy(&s->ack_cv);
    pd_admit_destroy(&s->admit);
    pd_free(s);
}

int pd_server_index(const pd_server *s) { return s->index; }
int pd_server_copy(const pd_server *s) { return __atomic_load_n(&s->copy, __ATOMIC_ACQUIRE); }
int pd_server_retired(pd_server *s) {
    pthread_mutex_lock(&s->mu);
    int r = s->retired;
    pthread_mutex_unlock(&s->mu);
    return r;
}
const char *pd_server_address(const pd_server *s) { return s->bound; }
const char *pd_server_metrics_address(const pd_server *s) {
    return s->http ? pd_http_address(s->http) : NULL;
}
const char *pd_server_advertised(const pd_server *s) { return s->advertised; }
const char *pd_server_host_id(const pd_server *s) { return s->host_id; }
