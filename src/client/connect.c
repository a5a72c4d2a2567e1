/*
 * connect.c - a client's life: its options (and the environment variables
 * that fill their defaults, all in parse_options), connecting to the
 * coordinator and to every server (the HELLO handshake and the cluster
 * map), heartbeats, barriers, the clock, the coordinator RPC, the
 * last-error text, and close.
 *
 * Connect.  HELLO to the coordinator, then REG_WORKER, whose reply is the
 * cluster map: this worker's rank, W, S, the map's epoch, the S server
 * addresses, the heartbeat period, the worker slots and the clock this
 * worker starts at.  Then one link per server: TCP first and HELLO, whose
 * reply (the server's index, S and slots, checked against the map) also
 * says where the server's shared-memory transport is and which host the
 * server is on; then, unless transport=tcp, that transport if the server
 * is on this host (its host identity is ours: net/host.h); then the
 * link's receiver thread (reader.c).  Every TCP connection gets the peer
 * timeout (a host cut off is noticed, net/conn.h).  A rank taken from a
 * launcher's variable whose world size is set too is checked first
 * against the cluster's worker count (check_world_size: MAP before
 * REG_WORKER, so that a wrong launch takes no slot).  If anything fails, everything done
 * so far is undone (paramd_close) and the detail is in the thread's
 * connect error (paramd_last_error(NULL)).
 *
 * Tools (role=tool).  A program that only reads the cluster (paramd
 * stats) says HELLO as PD_ROLE_TOOL and asks the coordinator for the map
 * with MAP instead of registering: it has no rank, takes no worker slot,
 * sends no heartbeats and no BYE, and opens every link over TCP.  A
 * server it cannot reach leaves that link dead from the start (its calls
 * fail with the reason) instead of failing the connect, so a tool reports
 * what it can.  What only workers may do is refused before anything is
 * sent, with PARAMD_EWORKER and a message that says why: opening a table
 * (table_open, dense.c), pushing (table_check_push), barriers (here); the
 * coordinator and the servers would refuse them too, less clearly.
 *
 * Threads.  The heartbeat thread (heartbeat_main) has its own connection,
 * so that a long barrier or a blocked pull never delays a heartbeat; it
 * reads the clock atomically and hb_stop under hb_mu.  The clock is
 * written only by the program (paramd_clock, paramd_clock_to), atomically.
 * coord_rpc sends one control request at a time, under coord_mu.
 * cl_err writes a client's last-error text under err_mu (a leaf), from
 * any thread (the heartbeat thread too); paramd_last_error copies it,
 * under the same lock, into storage of the calling thread, so the text it
 * returns cannot change while the caller reads it.  paramd_close
 * stops and joins the heartbeat and receiver threads before it frees
 * anything.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "client/client_impl.h"
#include "common/common.h"
#include "frame/hello.h"
#include "wire/map.h"
#include "net/conn.h"
#include "net/fault.h"
#include "net/host.h"
#include "paramd.h"
#include "wire/wire.h"

#define PD_CHUNK_BYTES_DEFAULT (1u << 20)
/* how many replacements of one lost server a worker tries in a row before
 * it reports the last one it could not reach */
#define CL_REPLACEMENT_TRIES 8
_Static_assert(PD_MAP_TICKET_BYTES == PD_MAC_BYTES, "a map's ticket is a MAC");

/* ==== Errors ============================================================ */

/* The detail of a failed paramd_connect, per thread (there is no client
 * to hang it on), written and read by that thread only. */
static __thread char connect_errmsg[PD_ERRMSG_MAX];
/* What paramd_last_error returns for a client: this thread's copy of the
 * client's text, taken under err_mu.  A failure on another thread then
 * rewrites the client's text, never the copy this thread is reading. */
static __thread char last_error_copy[PD_ERRMSG_MAX];

/* Set the client's last-error text (c NULL: the thread's connect error)
 * and return code, so that callers can write return cl_err(...). */
int cl_err(paramd_client *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (c) {
        pthread_mutex_lock(&c->err_mu);
        vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
        pthread_mutex_unlock(&c->err_mu);
    } else {
        vsnprintf(connect_errmsg, sizeof connect_errmsg, fmt, ap);
    }
    va_end(ap);
    return code;
}

const char *paramd_last_error(const paramd_client *c) {
    if (!c) return connect_errmsg;
    /* the lock is not part of the client's value: locking it from a
     * const handle is sound */
    pthread_mutex_t *mu = (pthread_mutex_t *)&c->err_mu;
    pthread_mutex_lock(mu);
    memcpy(last_error_copy, c->errmsg, sizeof last_error_copy);
    pthread_mutex_unlock(mu);
    return last_error_copy;
}

/* ==== Coordinator RPC =================================================== */

static int hello(paramd_client *c, pd_conn *conn, pd_welcome *w, pd_err *e);

/* 1 if rc is the loss of the connection itself (not an answer). */
static int conn_lost(int rc) { return rc == PARAMD_EIO || rc == PARAMD_ECLOSED; }

void coord_creating(paramd_client *c, uint32_t id, const char *name, uint64_t n,
                    const char *spec) {
    pthread_mutex_lock(&c->coord_mu);
    c->creating = id;
    if (id) {
        snprintf(c->creating_name, sizeof c->creating_name, "%s", name);
        c->creating_n = n;
        snprintf(c->creating_spec, sizeof c->creating_spec, "%s", spec);
    }
    pthread_mutex_unlock(&c->coord_mu);
}

/* coord_mu held: the coordinator was lost (why); for the rejoin window,
 * connect to its address again and rejoin there (WORKER_REJOIN, answered
 * once a coordinator started again took the cluster back: coord/takeover.c).
 * 0 with c->coord the new connection, else the error (e). */
static int coord_rejoin(paramd_client *c, const char *why, pd_err *e) {
    int64_t end = pd_now_ms() + c->rejoin_ms;
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    if (!buf) return pd_seterr(e, PARAMD_ENOMEM, "out of memory");
    char last[PD_ERRMSG_MAX];
    snprintf(last, sizeof last, "%s", why);
    int rc = PARAMD_EIO;
    while (pd_now_ms() < end) {
        int64_t left = end - pd_now_ms();
        pd_err ce = {0};
        pd_conn *conn = pd_tcp_connect(c->coord_addr, left < c->timeout_ms ? (int)left
                                                                            : c->timeout_ms, &ce);
        rc = conn ? 0 : ce.code ? ce.code : PARAMD_EIO;
        if (conn) {
            pd_tcp_set_peer_timeout(conn, c->peer_timeout_ms);
            rc = hello(c, conn, NULL, &ce);
        }
        int answered = 0;
        if (rc == 0) {
            pd_buf b;
            pd_buf_init(&b);
            pd_put_u32(&b, (uint32_t)c->rank);
            pd_put_u64(&b, __atomic_load_n(&c->barriers, __ATOMIC_RELAXED));
            pd_put_u32(&b, c->creating);
            if (c->creating) {
                pd_put_str(&b, c->creating_name);
                pd_put_u64(&b, c->creating_n);
                pd_put_str(&b, c->creating_spec);
            }
            pd_hdr h = {0}, rh;
            h.type = PD_MSG_WORKER_REJOIN;
            h.id = ++c->coord_id;
            h.clock = paramd_get_clock(c);
            rc = b.oom ? pd_seterr(&ce, PARAMD_ENOMEM, "out of memory")
                       : pd_rpc(conn, &h, b.p, b.len, &rh, buf, &ce);
            answered = rc != 0 && !conn_lost(rc);
            pd_buf_free(&b);
        }
        if (rc == 0) {
            pd_conn_destroy(c->coord);
            c->coord = conn;
            pd_free(buf);
            return 0;
        }
        pd_conn_destroy(conn);
        snprintf(last, sizeof last, "%s", ce.msg);
        /* The coordinator's answer to the rejoin is final.  A failed
         * connect or handshake is tried again: none listens yet, or it
         * does not know this cluster's ticket key until a server rejoined. */
        if (answered) {
            pd_free(buf);
            return pd_seterr(e, rc, "the coordinator at %s would not take this worker "
                             "back: %s", c->coord_addr, last);
        }
        struct timespec ts = {0, 100000000}; /* a tenth of a second, then again */
        nanosleep(&ts, NULL);
    }
    pd_free(buf);
    return pd_seterr(e, rc ? rc : PARAMD_EIO, "lost the coordinator %s, and none took the "
                     "cluster back there within %.0f s (the last try: %s)",
                     c->coord_addr, c->rejoin_ms / 1000.0, last);
}

int coord_rpc(paramd_client *c, uint16_t type, uint32_t table,
              pd_buf *b, uint8_t *reply, size_t *replylen) {
    pd_err e = {0};
    pd_hdr h = {0}, rh;
    if (b && b->oom) return cl_err(c, PARAMD_ENOMEM, "out of memory");
    cl_wait cw; /* a barrier that lasts is logged (waits.c) */
    cw.server = -1;
    snprintf(cw.what, sizeof cw.what, "a %s at the coordinator", pd_msg_name(type));
    cl_wait_begin(c, &cw);
    pthread_mutex_lock(&c->coord_mu);
    int rc;
    for (;;) {
        h = (pd_hdr){0};
        h.type = type;
        h.id = ++c->coord_id;
        h.table = table;
        h.clock = paramd_get_clock(c);
        rc = pd_rpc(c->coord, &h, b ? b->p : NULL, b ? b->len : 0, &rh, reply, &e);
        /* The coordinator was lost: a worker of a cluster with a rejoin
         * window waits for one started again to take it back, then asks
         * again (every request to it can be asked twice: coord/takeover.c). */
        if (!conn_lost(rc) || !c->rejoin_ms || c->tool || !c->has_ticket) break;
        char why[PD_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", e.msg);
        if ((rc = coord_rejoin(c, why, &e))) break;
    }
    pthread_mutex_unlock(&c->coord_mu);
    cl_wait_end(c, &cw);
    if (rc) return cl_err(c, rc, "coordinator %s: %s", c->coord_addr, e.msg);
    if (replylen) *replylen = (size_t)rh.len;
    return 0;
}

/* ==== Connect and close ================================================= */

static int parse_options(paramd_client *c, const char *options) {
    char buf[1024];
    const char *coord = NULL, *rank = NULL, *transport = NULL, *host_id = NULL;
    const char *secret = NULL;
    char coordbuf[PD_MAX_ADDR + 1], rankbuf[32], trbuf[16], hostbuf[PD_MAX_ADDR + 1];
    char secretbuf[1024];
    int op_timeout_set = 0;
    c->timeout_ms = 30000;
    c->peer_timeout_ms = -1;
    c->chunk_bytes = PD_CHUNK_BYTES_DEFAULT;
    c->coalesce_bytes = PD_COALESCE_DEFAULT;
    c->shm_ring = PD_SHM_RING_DEFAULT;
    c->shared_buffers = 1;
    snprintf(buf, sizeof buf, "%s", options ? options : "");
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t\n", &save); tok;
         tok = strtok_r(NULL, " \t\n", &save)) {
        char *eq = strchr(tok, '=');
        int64_t v;
        if (!eq) return cl_err(NULL, PARAMD_EINVAL, "option '%s' is not key=value", tok);
        *eq = '\0';
        const char *val = eq + 1;
        if (strcmp(tok, "coordinator") == 0) {
            snprintf(coordbuf, sizeof coordbuf, "%s", val);
            coord = coordbuf;
        } else if (strcmp(tok, "rank") == 0) {
            snprintf(rankbuf, sizeof rankbuf, "%s", val);
            rank = rankbuf;
        } else if (strcmp(tok, "timeout_ms") == 0) {
            if (pd_parse_i64(val, &v) || v <= 0 || v > 3600000)
                return cl_err(NULL, PARAMD_EINVAL, "timeout_ms=%s is not 1..3600000", val);
            c->timeout_ms = (int)v;
        } else if (strcmp(tok, "peer_timeout_ms") == 0) {
            if (pd_parse_i64(val, &v) || v < 0 || v > 3600000)
                return cl_err(NULL, PARAMD_EINVAL,
                              "peer_timeout_ms=%s is not 0 (the system's TCP "
                              "timeouts) or 1..3600000", val);
            c->peer_timeout_ms = (int)v;
        } else if (strcmp(tok, "op_timeout_ms") == 0) {
            if (pd_parse_i64(val, &v) || v < 0 || v > PD_OP_TIMEOUT_MAX)
                return cl_err(NULL, PARAMD_EINVAL,
                              "op_timeout_ms=%s is not 0 (off: waits for the "
                              "cluster never end on their own) or 1..%u", val,
                              PD_OP_TIMEOUT_MAX);
            c->op_timeout_ms = (uint32_t)v;
            op_timeout_set = 1;
        } else if (strcmp(tok, "chunk_bytes") == 0) {
            if (pd_parse_i64(val, &v) || v < 4096 || v > (1 << 30))
                return cl_err(NULL, PARAMD_EINVAL, "chunk_bytes=%s is not 4096..2^30", val);
            c->chunk_bytes = (uint64_t)v & ~3ull;
        } else if (strcmp(tok, "coalesce_bytes") == 0) {
            if (pd_parse_i64(val, &v) || (v != 0 && (v < PD_COALESCE_MIN || v > PD_COALESCE_MAX)))
                return cl_err(NULL, PARAMD_EINVAL,
                              "coalesce_bytes=%s is not 0 (off) or %d..%d: "
                              "requests of up to that many bytes are sent "
                              "together (default %d)",
                              val, PD_COALESCE_MIN, PD_COALESCE_MAX, PD_COALESCE_DEFAULT);
            c->coalesce_bytes = (uint64_t)v;
        } else if (strcmp(tok, "fault") == 0) { /* a testing aid: net/fault.h */
            pd_fault_spec fs;
            pd_err fe = {0};
            if (pd_fault_parse(val, &fs, &fe))
                return cl_err(NULL, PARAMD_EINVAL, "fault=: %s", fe.msg);
            snprintf(c->fault, sizeof c->fault, "%s", val);
        } else if (strcmp(tok, "transport") == 0) {
            snprintf(trbuf, sizeof trbuf, "%s", val);
            transport = trbuf;
        } else if (strcmp(tok, "host_id") == 0) {
            snprintf(hostbuf, sizeof hostbuf, "%s", val);
            host_id = hostbuf;
        } else if (strcmp(tok, "role") == 0) {
            if (strcmp(val, "worker") != 0 && strcmp(val, "tool") != 0)
                return cl_err(NULL, PARAMD_EINVAL,
                              "role=%s is not worker (the default) or tool (a "
                              "program that only reads the cluster's map and "
                              "counters, like paramd stats)", val);
            c->tool = strcmp(val, "tool") == 0;
        } else if (strcmp(tok, "shared_buffers") == 0) {
            if (strcmp(val, "yes") != 0 && strcmp(val, "no") != 0)
                return cl_err(NULL, PARAMD_EINVAL,
                              "shared_buffers=%s is not yes or no", val);
            c->shared_buffers = strcmp(val, "yes") == 0;
        } else if (strcmp(tok, "secret_file") == 0) {
            snprintf(secretbuf, sizeof secretbuf, "%s", val);
            secret = secretbuf;
        } else if (strcmp(tok, "shm_ring_bytes") == 0) {
            if (pd_parse_i64(val, &v) || !pd_shm_valid_ring((uint64_t)v))
                return cl_err(NULL, PARAMD_EINVAL,
                              "shm_ring_bytes=%s is not a power of two in %u..%u",
                              val, PD_SHM_RING_MIN, PD_SHM_RING_MAX);
            c->shm_ring = (uint64_t)v;
        } else {
            return cl_err(NULL, PARAMD_EINVAL,
                          "unknown option '%s' (coordinator, rank, role, "
                          "secret_file, timeout_ms, peer_timeout_ms, op_timeout_ms, "
                          "chunk_bytes, "
                          "coalesce_bytes, transport, host_id, shm_ring_bytes, "
                          "shared_buffers, fault)",
                          tok);
        }
    }
    /* Environment defaults, in one place. */
    static const char *const coord_env[] = {"PARAMD_COORDINATOR", NULL};
    /* A launcher's rank, each with the world size that goes with it (NULL:
     * none to check): Open MPI, MPICH/PMI, PMIx, Slurm, torchrun (LOCAL_RANK
     * last: single-host launchers that set only it). */
    static const char *const rank_env[][2] = {
        {"PARAMD_RANK", NULL},
        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
        {"PMI_RANK", "PMI_SIZE"},
        {"PMIX_RANK", NULL},
        {"SLURM_PROCID", "SLURM_NTASKS"},
        {"RANK", "WORLD_SIZE"},
        {"LOCAL_RANK", "LOCAL_WORLD_SIZE"}};
    static const char *const transport_env[] = {"PARAMD_TRANSPORT", NULL};
    static const char *const host_env[] = {"PARAMD_HOST_ID", NULL};
    static const char *const secret_env[] = {"PARAMD_SECRET_FILE", NULL};
    if (c->tool && rank)
        return cl_err(NULL, PARAMD_EINVAL,
                      "rank=%s with role=tool: a tool is not a worker and has "
                      "no rank; drop one of them", rank);
    if (!coord) coord = pd_env_first(coord_env);
    /* A tool ignores the workers' variables: it has no rank, and its few
     * small requests go over TCP. */
    for (size_t k = 0; !rank && !c->tool && k < sizeof rank_env / sizeof rank_env[0]; k++) {
        const char *v = getenv(rank_env[k][0]);
        if (!v || !*v) continue;
        rank = v;
        const char *size = rank_env[k][1] ? getenv(rank_env[k][1]) : NULL;
        if (size && *size) {
            int64_t n;
            if (pd_parse_i64(size, &n) || n < 1 || n > PD_MAX_WORKERS)
                return cl_err(NULL, PARAMD_ECONFIG,
                              "%s=%s (the launcher's world size, with the rank "
                              "from %s) is not a number in 1..%d",
                              rank_env[k][1], size, rank_env[k][0], PD_MAX_WORKERS);
            c->size_var = rank_env[k][1];
            c->launch_size = n;
        }
    }
    if (!transport && !c->tool) transport = pd_env_first(transport_env);
    if (!host_id) host_id = pd_env_first(host_env);
    if (c->peer_timeout_ms < 0) {
        static const char *const pt_env[] = {"PARAMD_PEER_TIMEOUT_MS", NULL};
        const char *pt = pd_env_first(pt_env);
        int64_t v = PD_PEER_TIMEOUT_DEFAULT;
        if (pt && (pd_parse_i64(pt, &v) || v < 0 || v > 3600000))
            return cl_err(NULL, PARAMD_EINVAL,
                          "PARAMD_PEER_TIMEOUT_MS=%s is not 0 (the system's TCP "
                          "timeouts) or 1..3600000", pt);
        c->peer_timeout_ms = (int)v;
    }
    if (!op_timeout_set) {
        static const char *const ot_env[] = {"PARAMD_OP_TIMEOUT_MS", NULL};
        const char *ot = pd_env_first(ot_env);
        int64_t v = 0;
        if (ot && (pd_parse_i64(ot, &v) || v < 0 || v > PD_OP_TIMEOUT_MAX))
            return cl_err(NULL, PARAMD_EINVAL,
                          "PARAMD_OP_TIMEOUT_MS=%s is not 0 (off) or 1..%u", ot,
                          PD_OP_TIMEOUT_MAX);
        c->op_timeout_ms = (uint32_t)v;
    }
    pd_err he = {0};
    if (pd_host_id(host_id, c->host_id, sizeof c->host_id, &he))
        return cl_err(NULL, PARAMD_EINVAL, "host_id= or PARAMD_HOST_ID: %s", he.msg);
    if (!transport || strcmp(transport, "auto") == 0) c->transport = TR_AUTO;
    else if (strcmp(transport, "tcp") == 0) c->transport = TR_TCP;
    else if (strcmp(transport, "shm") == 0) c->transport = TR_SHM;
    else
        return cl_err(NULL, PARAMD_EINVAL,
                      "transport '%s' is not auto, tcp or shm (from the "
                      "transport= option or PARAMD_TRANSPORT)", transport);
    if (c->tool && c->transport == TR_SHM)
        return cl_err(NULL, PARAMD_EINVAL,
                      "transport=shm with role=tool: a tool's links are TCP "
                      "only; drop transport=");
    if (c->tool) c->transport = TR_TCP;
    if (!coord)
        return cl_err(NULL, PARAMD_ECONFIG,
                      "no coordinator: set PARAMD_COORDINATOR=HOST:PORT or pass "
                      "coordinator=HOST:PORT (paramd local sets it for you)");
    snprintf(c->coord_addr, sizeof c->coord_addr, "%s", coord);
    /* The cluster secret: its path only, here; the key stays in c. */
    if (!secret) secret = pd_env_first(secret_env);
    if (secret && secret[0]) {
        pd_err e = {0};
        if (pd_secret_load(secret, &c->key, &e) != 0)
            return cl_err(NULL, e.code, "%s (from the secret_file= option or "
                          "PARAMD_SECRET_FILE)", e.msg);
        c->has_key = 1;
    }
    c->rank = -1;
    if (rank) {
        int64_t r;
        if (pd_parse_i64(rank, &r) || r < 0 || r >= PD_MAX_WORKERS)
            return cl_err(NULL, PARAMD_ECONFIG, "worker rank '%s' is not a number in 0..%d",
                          rank, PD_MAX_WORKERS - 1);
        c->rank = (int32_t)r;
    }
    return 0;
}

/* The handshake (frame/hello.h) as this client: a worker (with its rank's
 * ticket once it registered), or a tool; with the cluster secret if it
 * has one; with its deadline (op_timeout_ms) if it has one, so that every
 * wait held for it ends there, on the side that holds it, with an error
 * reply: the connection stays in step. */
static int hello(paramd_client *c, pd_conn *conn, pd_welcome *w, pd_err *e) {
    pd_hello me = {.role = c->tool ? PD_ROLE_TOOL : PD_ROLE_WORKER, .rank = c->rank,
                   .op_timeout_ms = c->op_timeout_ms};
    if (c->has_ticket) me.has_ticket = 1, me.ticket = c->ticket;
    return pd_handshake_dial(conn, &me, c->has_key ? &c->key : NULL, w, e);
}

/* Say HELLO on conn and check the server's welcome against the map; *w
 * says whether it offers shared memory, and its features. */
static int link_hello(paramd_client *c, pd_link *l, pd_conn *conn, pd_welcome *w) {
    pd_err e = {0};
    /* A server that accepted but does not answer (stopped, hung) fails the
     * handshake at timeout_ms instead of holding this call forever; the
     * reads wake every second to look at the deadline. */
    conn->deadline_ms = pd_now_ms() + c->timeout_ms;
    pd_conn_set_rcvtimeo(conn, c->timeout_ms < 1000 ? c->timeout_ms : 1000);
    int rc = hello(c, conn, w, &e);
    conn->deadline_ms = 0;
    pd_conn_set_rcvtimeo(conn, 0);
    if (rc == PARAMD_ETIMEDOUT)
        return cl_err(NULL, rc, "server %d (%s) accepted the connection but did not "
                      "answer its handshake within %d ms (timeout_ms): is it stopped "
                      "or hung?  (paramd status names silent servers)",
                      l->index, l->addr, c->timeout_ms);
    if (rc)
        return cl_err(NULL, rc, "server %d (%s): %s", l->index, l->addr, e.msg);
    /* (a tool's map, from MAP, has no worker slots to check) */
    if (!w->server || w->index != (uint32_t)l->index || w->S != (uint32_t)c->S ||
        (!c->tool && w->W != (uint32_t)c->slots))
        return cl_err(NULL, PARAMD_EPROTO,
                      "server at %s says it is server %u of %u with %u "
                      "worker slots; the coordinator's map says server %d of "
                      "%d with %d",
                      l->addr, w->index, w->S, w->W, l->index, c->S, c->slots);
    return 0;
}

/* Connect link l: TCP first (the HELLO reply says whether the server offers
 * shared memory, and which host it is on), then, unless transport=tcp, the
 * shared-memory transport if the server is on this host: its host
 * identity is ours (net/host.h; a server that sends none is tried), and
 * its socket is reachable from here.  With transport=shm a server that
 * cannot be reached so is an error. */
static int link_open(paramd_client *c, pd_link *l) {
    pd_err e = {0};
    pd_welcome w;
    l->conn = pd_tcp_connect(l->addr, c->timeout_ms, &e);
    if (l->conn) pd_tcp_set_peer_timeout(l->conn, c->peer_timeout_ms);
    if (l->conn && c->fault[0]) /* option fault=: tests only */
        l->conn = pd_fault_wrap(l->conn, c->fault, &e);
    if (!l->conn) return cl_err(NULL, e.code, "server %d: %s", l->index, e.msg);
    int rc = link_hello(c, l, l->conn, &w);
    if (rc == 0) pd_host_name_of(w.host, l->host, sizeof l->host);
    if (rc || c->transport == TR_TCP) return rc;
    if (w.host[0] && strcmp(w.host, c->host_id) != 0) {
        if (c->transport == TR_AUTO) return 0; /* another host: TCP */
        return cl_err(NULL, PARAMD_ECONNECT,
                      "server %d (%s) is on another host (host id %s; this "
                      "worker's is %s): transport=shm needs every server on "
                      "this host; use transport=auto", l->index, l->addr,
                      w.host, c->host_id);
    }
    if (!w.shm[0]) {
        if (c->transport == TR_AUTO) return 0;
        return cl_err(NULL, PARAMD_ECONNECT,
                      "server %d (%s) offers no shared-memory transport "
                      "(started with --transport tcp?); use transport=auto "
                      "or tcp", l->index, l->addr);
    }
    pd_conn *sc = pd_shm_connect(w.shm, c->shm_ring, c->timeout_ms, &e);
    if (sc && c->fault[0]) sc = pd_fault_wrap(sc, c->fault, &e);
    if (!sc) {
        if (c->transport == TR_AUTO) return 0; /* another host: TCP it is */
        return cl_err(NULL, e.code,
                      "server %d (%s): transport=shm but %s; use "
                      "transport=auto to fall back to TCP", l->index, l->addr,
                      e.msg);
    }
    if ((rc = link_hello(c, l, sc, &w))) {
        pd_conn_destroy(sc);
        return rc;
    }
    pd_conn_destroy(l->conn);
    l->conn = sc;
    l->regions_ok = c->shared_buffers && (w.features & PD_FEAT_REGIONS);
    snprintf(sc->peer, sizeof sc->peer, "%.80s (shm)", l->addr);
    return 0;
}

static void *heartbeat_main(void *arg);

/* ==== A lost server's replacement ======================================= */

int cl_recover_link(paramd_client *c, int32_t k) {
    pd_link *l = &c->links[k];
    pthread_mutex_lock(&c->recover_mu);
    if (!__atomic_load_n(&l->dead, __ATOMIC_ACQUIRE)) { /* another thread did it */
        pthread_mutex_unlock(&c->recover_mu);
        return 0;
    }
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    if (!buf) {
        pthread_mutex_unlock(&c->recover_mu);
        return cl_err(c, PARAMD_ENOMEM, "out of memory");
    }
    char was[PD_ERRMSG_MAX];
    pthread_mutex_lock(&l->q_mu);
    snprintf(was, sizeof was, "%s", l->dead_msg);
    pthread_mutex_unlock(&l->q_mu);
    /* Held at the coordinator until a replacement serves, newer than the
     * map this link's address came from (l->epoch: written only here,
     * under recover_mu, and at connect).  A replacement that dies before
     * we reach it (a promoted copy killed with its primary) is asked
     * about again, newer than its own epoch: the coordinator then names
     * the next one or says why there is none. */
    uint64_t since = l->epoch, epoch = 0;
    pd_link nl = {0};
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        pd_buf b;
        pd_buf_init(&b);
        pd_put_u32(&b, (uint32_t)k);
        pd_put_u64(&b, since);
        size_t rlen = 0;
        rc = coord_rpc(c, PD_MSG_SERVER_WAIT, 0, &b, buf, &rlen);
        pd_buf_free(&b);
        memset(&nl, 0, sizeof nl);
        nl.c = c;
        nl.index = k;
        if (rc == 0) {
            pd_rd r;
            pd_rd_init(&r, buf, rlen);
            pd_get_u64(&r, &epoch);
            pd_get_str(&r, nl.addr, PD_MAX_ADDR);
            if (!pd_rd_done(&r) || !nl.addr[0])
                rc = cl_err(c, PARAMD_EPROTO, "malformed SERVER_WAIT reply");
        } else {
            char why[PD_ERRMSG_MAX];
            snprintf(why, sizeof why, "%s", c->errmsg);
            /* the call fails as it would have without a replacement
             * window: its server's connection closed (the reason follows) */
            rc = cl_err(c, PARAMD_ECLOSED, "%s; and then %s", was, why);
            break;
        }
        if (rc || (rc = link_open(c, &nl)) == 0) break;
        char why[PD_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", connect_errmsg);
        pd_conn_destroy(nl.conn);
        nl.conn = NULL;
        if (attempt + 1 >= CL_REPLACEMENT_TRIES || epoch <= since) {
            rc = cl_err(c, rc, "server %d's replacement at %s: %s", k, nl.addr, why);
            break;
        }
        pd_log(PD_LOG_WARN, "server %d's replacement at %s: %s; asking the "
               "coordinator for the next one", k, nl.addr, why);
        since = epoch;
    }
    pd_free(buf);
    if (rc) {
        pd_conn_destroy(nl.conn);
        pthread_mutex_unlock(&c->recover_mu);
        return rc;
    }
    /* Buffers mapped in the lost server are not in its replacement: their
     * pushes and pulls carry the floats (region.c). */
    pthread_mutex_lock(&c->reg_mu);
    for (region *g = c->regions; g; g = g->next) __atomic_store_n(&g->on[k], 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&c->reg_mu);
    /* The link is quiet: it is dead, so every sub-request queued on it has
     * failed and no sender queues more while we hold send_mu; whoever
     * still holds its read role gives it up at once, the FIFO being empty. */
    pthread_mutex_lock(&l->send_mu);
    for (;;) {
        pthread_mutex_lock(&l->q_mu);
        if (l->qlen == 0 && rd_get(l) == RD_NONE) break;
        pthread_mutex_unlock(&l->q_mu);
        pd_yield();
    }
    pd_conn *old = l->conn;
    l->conn = nl.conn;
    snprintf(l->addr, sizeof l->addr, "%s", nl.addr);
    snprintf(l->host, sizeof l->host, "%s", nl.host);
    l->regions_ok = nl.regions_ok;
    l->epoch = epoch;
    l->dead_msg[0] = '\0';
    __atomic_store_n(&l->dead, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&l->q_mu);
    pthread_mutex_unlock(&l->send_mu);
    pd_conn_destroy(old);
    if (epoch > __atomic_load_n(&c->epoch, __ATOMIC_RELAXED))
        __atomic_store_n(&c->epoch, epoch, __ATOMIC_RELAXED);
    region_remap(c, k); /* (its floats go as frames until then) */
    pthread_mutex_unlock(&c->recover_mu);
    return 0;
}

/* The rank came from a launcher's variable whose world size is also set
 * (OMPI_COMM_WORLD_SIZE, PMI_SIZE, SLURM_NTASKS, WORLD_SIZE, ...): it
 * must be the cluster's number of workers, else ranks would be missing or
 * left over.  Asked with MAP before registering, so that a wrong launch
 * takes no worker slot.  0, or PARAMD_ECONFIG saying both numbers. */
static int check_world_size(paramd_client *c, uint8_t *buf) {
    size_t rlen;
    pd_map m;
    pd_err e = {0};
    int rc = coord_rpc(c, PD_MSG_MAP, 0, NULL, buf, &rlen);
    if (rc) return cl_err(NULL, rc, "%s", c->errmsg);
    if ((rc = pd_map_decode(buf, rlen, &m, &e))) return cl_err(NULL, rc, "%s", e.msg);
    uint32_t W = m.W;
    pd_map_free(&m);
    if ((int64_t)W == c->launch_size) return 0;
    return cl_err(NULL, PARAMD_ECONFIG,
                  "%s=%lld (the launcher's world size) but the cluster at %s "
                  "has %u workers (its coordinator's --workers): start %u "
                  "worker processes, or give each its rank with PARAMD_RANK "
                  "or rank= (then no world size is checked); to start the "
                  "coordinator and servers from the same launch, use paramd "
                  "launch", c->size_var, (long long)c->launch_size, c->coord_addr,
                  W, W);
}

int paramd_connect(paramd_client **out, const char *options) {
    *out = NULL;
    paramd_client *c = pd_calloc(1, sizeof *c);
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    pd_err e = {0};
    int rc;
    if (!c || !buf) {
        pd_free(c);
        pd_free(buf);
        return cl_err(NULL, PARAMD_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&c->coord_mu, NULL);
    pthread_mutex_init(&c->reg_mu, NULL);
    pthread_mutex_init(&c->map_mu, NULL);
    pthread_mutex_init(&c->err_mu, NULL);
    pthread_mutex_init(&c->wait_mu, NULL);
    pthread_mutex_init(&c->hb_mu, NULL);
    pthread_mutex_init(&c->recover_mu, NULL);
    pthread_cond_init(&c->hb_cv, NULL);
    if ((rc = parse_options(c, options))) goto fail_early;
    c->coord = pd_tcp_connect(c->coord_addr, c->timeout_ms, &e);
    if (!c->coord) {
        rc = cl_err(NULL, e.code, "coordinator: %s", e.msg);
        goto fail_early;
    }
    pd_tcp_set_peer_timeout(c->coord, c->peer_timeout_ms);
    if ((rc = hello(c, c->coord, NULL, &e))) {
        cl_err(NULL, rc, "coordinator %s: %s", c->coord_addr, e.msg);
        goto fail_early;
    }
    if (c->size_var && (rc = check_world_size(c, buf))) goto fail_early;
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u32(&b, (uint32_t)c->rank);
    size_t rlen;
    /* A tool asks for the map alone (MAP): it does not register. */
    rc = c->tool ? coord_rpc(c, PD_MSG_MAP, 0, NULL, buf, &rlen)
                 : coord_rpc(c, PD_MSG_REG_WORKER, 0, &b, buf, &rlen);
    pd_buf_free(&b);
    if (rc) {
        cl_err(NULL, rc, "%s", c->errmsg);
        goto fail_early;
    }
    pd_map m;
    if ((rc = pd_map_decode(buf, rlen, &m, &e)) || (m.rank < 0) != (c->tool != 0)) {
        if (!rc) pd_map_free(&m);
        rc = cl_err(NULL, PARAMD_EPROTO, "%s",
                    rc ? e.msg : "the coordinator's map is not for this kind of client");
        goto fail_early;
    }
    c->epoch = m.epoch;
    c->rank = m.rank; /* -1 for a tool */
    if (m.has_ticket) {
        c->has_ticket = 1;
        c->ticket.gen = m.ticket_gen;
        memcpy(c->ticket.mac, m.ticket, sizeof c->ticket.mac);
    }
    c->W = (int32_t)m.W;
    c->S = (int32_t)m.S;
    c->links = pd_calloc(m.S, sizeof *c->links);
    if (!c->links) {
        pd_map_free(&m);
        rc = cl_err(NULL, PARAMD_ENOMEM, "out of memory");
        goto fail_early;
    }
    for (uint32_t i = 0; i < m.S; i++) {
        pd_link *l = &c->links[i];
        l->c = c;
        l->index = (int)i;
        pthread_mutex_init(&l->send_mu, NULL);
        pthread_mutex_init(&l->q_mu, NULL);
        pthread_cond_init(&l->rx_cv, NULL);
        l->ob_niov = 1;
        l->epoch = m.epoch;
        snprintf(l->addr, sizeof l->addr, "%s", m.addr[i]);
    }
    /* heartbeat period; worker slots M (ranks 0..M-1, W of them expected at
     * start); the clock this worker starts at (> 0 when it joined a running
     * cluster: its loop starts there, docs/consistency.md).  A MAP reply
     * (a tool's) ends with the addresses: all 0. */
    uint32_t hb_ms = m.heartbeat_ms, M = m.M, S = m.S;
    uint64_t start = (uint64_t)m.start;
    c->barriers = m.barriers;
    c->rejoin_ms = m.rejoin_ms;
    c->replace_ms = c->tool ? 0 : m.replace_ms;
    c->replicas = m.replicas;
    pd_map_free(&m);
    c->heartbeat_ms = (int)hb_ms;
    c->clock = (int64_t)start;
    c->slots = (int32_t)M;
    for (uint32_t i = 0; i < S; i++) {
        pd_link *l = &c->links[i];
        if (c->tool && !strcmp(l->addr, "-")) { /* a lost server (coord/replace.c) */
            snprintf(l->dead_msg, sizeof l->dead_msg, "server %u was lost: the coordinator "
                     "has no address for it (paramd status says whether it is replaced)", i);
            __atomic_store_n(&l->dead, 1, __ATOMIC_RELEASE);
            continue;
        }
        if ((rc = link_open(c, l)) && c->tool) {
            /* A tool works with the servers it can reach: this link is
             * dead from the start, and its calls fail with the reason. */
            snprintf(l->dead_msg, sizeof l->dead_msg, "%s", connect_errmsg);
            __atomic_store_n(&l->dead, 1, __ATOMIC_RELEASE);
            pd_conn_destroy(l->conn);
            l->conn = NULL;
            connect_errmsg[0] = '\0';
            rc = 0;
            continue;
        }
        if (rc) goto fail;
        if (!(l->msgbuf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1))) {
            rc = cl_err(NULL, PARAMD_ENOMEM, "out of memory");
            goto fail;
        }
        if (pthread_create(&l->rx, NULL, link_rx, l) != 0) {
            rc = cl_err(NULL, PARAMD_ENOMEM, "cannot start a receiver thread");
            goto fail;
        }
        l->rx_started = 1;
    }
    if (c->heartbeat_ms > 0) {
        if (pthread_create(&c->hb, NULL, heartbeat_main, c) != 0) {
            rc = cl_err(NULL, PARAMD_ENOMEM, "cannot start the heartbeat thread");
            goto fail;
        }
        c->hb_started = 1;
    }
    pd_free(buf);
    *out = c;
    return 0;
fail_early:
fail:
    pd_free(buf);
    {
        char keep[PD_ERRMSG_MAX];
        snprintf(keep, sizeof keep, "%s", connect_errmsg);
        paramd_close(c);
        snprintf(connect_errmsg, sizeof connect_errmsg, "%s", keep);
    }
    return rc;
}

int paramd_close(paramd_client *c) {
    if (!c) return 0;
    int rc = 0;
    __atomic_store_n(&c->closing, 1, __ATOMIC_RELEASE);
    if (c->hb_started) {
        pthread_mutex_lock(&c->hb_mu);
        c->hb_stop = 1;
        pthread_cond_broadcast(&c->hb_cv);
        pthread_mutex_unlock(&c->hb_mu);
        pthread_join(c->hb, NULL);
    }
    client_flush(c, NULL); /* what waits in the outboxes is sent */
    if (c->coord && c->links && !c->tool) { /* a tool never registered */
        uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
        if (buf) rc = coord_rpc(c, PD_MSG_BYE, 0, NULL, buf, NULL);
        pd_free(buf);
    }
    if (c->links) {
        for (int32_t i = 0; i < c->S; i++) {
            pd_link *l = &c->links[i];
            /* The receiver thread ends: at once if it sleeps, else once
             * the shut-down connection fails its read. */
            pthread_mutex_lock(&l->q_mu);
            __atomic_store_n(&l->rx_stop, 1, __ATOMIC_RELAXED); /* peeked at */
            pthread_cond_broadcast(&l->rx_cv);
            pthread_mutex_unlock(&l->q_mu);
            if (l->conn) pd_conn_shutdown(l->conn);
            if (l->rx_started) pthread_join(l->rx, NULL);
            /* Nobody reads any more: what is still due fails (requests
             * issued and never waited for). */
            if (l->qlen > 0) link_fail_all(l, PARAMD_ECLOSED, "the client was closed");
            pd_conn_destroy(l->conn);
            pd_free(l->q);
            pd_free(l->ob_bytes);
            pd_free(l->ob_ents);
            pd_free(l->msgbuf);
            pd_free(l->rxbuf);
            pthread_mutex_destroy(&l->send_mu);
            pthread_mutex_destroy(&l->q_mu);
            pthread_cond_destroy(&l->rx_cv);
        }
        pd_free(c->links);
    }
    pd_conn_destroy(c->coord);
    while (c->tables) {
        paramd_table *t = c->tables;
        c->tables = t->next;
        pd_free(t);
    }
    while (c->regions) { /* buffers the program did not free */
        region *g = c->regions;
        c->regions = g->next;
        munmap(g->base, g->bytes);
        pd_close_fd(g->fd);
        pd_free(g->on);
        pd_free(g);
    }
    pthread_mutex_destroy(&c->reg_mu);
    pthread_mutex_destroy(&c->map_mu);
    pthread_mutex_destroy(&c->coord_mu);
    pthread_mutex_destroy(&c->err_mu);
    pthread_mutex_destroy(&c->wait_mu);
    pthread_mutex_destroy(&c->hb_mu);
    pthread_mutex_destroy(&c->recover_mu);
    pthread_cond_destroy(&c->hb_cv);
    pd_wipe(&c->key, sizeof c->key);
    pd_free(c);
    return rc;
}

/* ==== The cluster, the clock, barriers ================================== */

int32_t paramd_rank(const paramd_client *c) { return c->rank; }
int32_t paramd_num_workers(const paramd_client *c) { return c->W; }
int32_t paramd_num_servers(const paramd_client *c) { return c->S; }
uint64_t paramd_map_epoch(const paramd_client *c) { return __atomic_load_n(&c->epoch, __ATOMIC_RELAXED); }
const char *paramd_server_address(const paramd_client *c, int32_t server) {
    return server >= 0 && server < c->S ? c->links[server].addr : NULL;
}
/* The clock is read by the heartbeat thread too: atomic accesses.  The
 * outboxes are flushed first: a sync table's clock waits for this
 * worker's pushes, which must not sit in an outbox while it computes. */
int64_t paramd_clock(paramd_client *c) {
    client_flush(c, NULL);
    return __atomic_add_fetch(&c->clock, 1, __ATOMIC_RELAXED);
}
int64_t paramd_get_clock(const paramd_client *c) {
    return __atomic_load_n(&c->clock, __ATOMIC_RELAXED);
}
int64_t paramd_clock_to(paramd_client *c, int64_t clock) {
    client_flush(c, NULL);
    int64_t cur = __atomic_load_n(&c->clock, __ATOMIC_RELAXED);
    while (clock > cur &&
           !__atomic_compare_exchange_n(&c->clock, &cur, clock, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
    return paramd_get_clock(c);
}

int paramd_barrier(paramd_client *c) {
    if (c->tool)
        return cl_err(c, PARAMD_EWORKER,
                      "paramd_barrier: this client is a tool (role=tool), and "
                      "only workers take part in barriers");
    client_flush(c, NULL);
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    if (!buf) return cl_err(c, PARAMD_ENOMEM, "out of memory");
    /* Its number: asked again of a coordinator that took the cluster back
     * after releasing it, it is answered at once (coord/takeover.c). */
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u64(&b, __atomic_load_n(&c->barriers, __ATOMIC_RELAXED));
    int rc = coord_rpc(c, PD_MSG_BARRIER, 0, &b, buf, NULL);
    pd_buf_free(&b);
    pd_free(buf);
    if (rc == 0) __atomic_add_fetch(&c->barriers, 1, __ATOMIC_RELAXED);
    return rc;
}

uint64_t paramd_barrier_count(const paramd_client *c) {
    return c ? __atomic_load_n(&c->barriers, __ATOMIC_RELAXED) : 0;
}

/* ==== Heartbeats ======================================================== */

/* Tell the coordinator, every heartbeat_ms/4, that this worker is alive
 * and at which clock.  Its own connection, so that a long barrier or a
 * blocked pull never delays a heartbeat. */
/* In a cluster that replaces lost servers, the servers whose links are
 * broken (bit k: server k, up to 63): marked dead, or closed by the
 * server though nobody read the end yet (this worker's caller may be
 * held reading another link meanwhile, by a sync clock that waits for a
 * worker that waits for the replacement).  A peek: a link being written
 * to (send_mu held) is looked at next time. */
static uint64_t links_lost(paramd_client *c) {
    uint64_t lost = 0;
    for (int32_t k = 0; c->replace_ms && k < c->S && k < 64; k++) {
        pd_link *l = &c->links[k];
        int gone = __atomic_load_n(&l->dead, __ATOMIC_ACQUIRE);
        if (!gone && pthread_mutex_trylock(&l->send_mu) == 0) {
            gone = pd_conn_peer_gone(l->conn); /* (send_mu: the conn stays) */
            pthread_mutex_unlock(&l->send_mu);
        }
        if (gone) lost |= 1ull << k;
    }
    return lost;
}

static void *heartbeat_main(void *arg) {
    paramd_client *c = arg;
    pd_err e = {0};
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    pd_conn *conn = buf ? pd_tcp_connect(c->coord_addr, c->timeout_ms, &e) : NULL;
    if (conn) pd_tcp_set_peer_timeout(conn, c->peer_timeout_ms);
    int ok = conn && hello(c, conn, NULL, &e) == 0;
    int64_t lost_until = 0; /* > 0: the coordinator is lost; reconnecting
                             * until then (the rejoin window) */
    uint64_t id = 1;
    pthread_mutex_lock(&c->hb_mu);
    while (ok && !c->hb_stop) {
        pthread_mutex_unlock(&c->hb_mu);
        pd_hdr h = {0}, rh;
        uint8_t p[12] = {(uint8_t)c->rank, (uint8_t)(c->rank >> 8),
                         (uint8_t)(c->rank >> 16), (uint8_t)(c->rank >> 24)};
        /* the servers whose links are broken, waiting for a replacement
         * (coord/replace.c), if any: after the rank */
        uint64_t lost = links_lost(c);
        put_le64(p + 4, lost);
        size_t plen = lost ? 12 : 4;
        h.type = PD_MSG_HEARTBEAT;
        h.id = ++id;
        h.clock = paramd_get_clock(c);
        int rc = conn ? pd_rpc(conn, &h, p, plen, &rh, buf, &e) : PARAMD_ECLOSED;
        if (rc && c->rejoin_ms && (!conn || conn_lost(rc))) {
            /* The coordinator was lost: connect again until the rejoin
             * window ends (a heartbeat to one that took the cluster back
             * keeps this worker from being removed while it is away). */
            if (!lost_until) lost_until = pd_now_ms() + c->rejoin_ms;
            pd_conn_destroy(conn);
            conn = NULL;
            if (pd_now_ms() < lost_until) {
                pd_err ce = {0};
                conn = pd_tcp_connect(c->coord_addr, c->timeout_ms, &ce);
                if (conn) pd_tcp_set_peer_timeout(conn, c->peer_timeout_ms);
                int hr = conn ? hello(c, conn, NULL, &ce) : PARAMD_EIO;
                if (hr == 0 && (hr = pd_rpc(conn, &h, p, plen, &rh, buf, &ce)) != 0 &&
                    !conn_lost(hr)) {
                    e = ce; /* its answer (removed while away): final */
                    lost_until = pd_now_ms();
                }
                if (hr) {
                    pd_conn_destroy(conn);
                    conn = NULL;
                }
                rc = hr;
                ok = 1;
            } else {
                ok = 0;
            }
        } else {
            ok = rc == 0;
        }
        if (rc == 0 && lost_until) {
            lost_until = 0;
            /* back: if no call of the program's rejoined the request
             * connection yet (none is using it), do it now, so that this
             * worker is not left away */
            if (pthread_mutex_trylock(&c->coord_mu) == 0) {
                pd_err re = {0};
                if (pd_conn_peer_gone(c->coord) &&
                    coord_rejoin(c, "the coordinator closed the connection", &re) != 0)
                    cl_err(c, re.code, "%s", re.msg);
                pthread_mutex_unlock(&c->coord_mu);
            }
        }
        /* Until the next heartbeat (sooner while the coordinator is lost),
         * wake every second to log the waits that last (waits.c). */
        int64_t due = pd_now_ms() + (lost_until ? 100 : c->heartbeat_ms / 4 + 1);
        pthread_mutex_lock(&c->hb_mu);
        while (!c->hb_stop && !c->hb_kick && pd_now_ms() < due) {
            int64_t step = due - pd_now_ms();
            pd_cond_wait_ms(&c->hb_cv, &c->hb_mu, step > 1000 ? 1000 : step);
            if (c->hb_stop) break;
            pthread_mutex_unlock(&c->hb_mu);
            cl_wait_check(c);
            /* a coordinator that closed its end is tried again now, not
             * at the next beat (the rejoin window runs from here); a
             * server lost since the last beat is said now */
            int gone = (conn && c->rejoin_ms && pd_conn_peer_gone(conn)) ||
                       links_lost(c) & ~lost;
            pthread_mutex_lock(&c->hb_mu);
            if (gone) break;
        }
        c->hb_kick = 0; /* (the next beat says which links are broken) */
    }
    int stopping = c->hb_stop;
    pthread_mutex_unlock(&c->hb_mu);
    if (!ok && !stopping)
        cl_err(c, e.code ? e.code : PARAMD_ECLOSED, "heartbeats to the coordinator stopped: %s",
               e.msg);
    pd_conn_destroy(conn);
    pd_free(buf);
    return NULL;
}
