/*
 * workers.c - the coordinator's membership: servers registering, workers
 * registering (a normal start or a join, with its two phases), the
 * cluster map they get, barriers, heartbeats and the monitor that removes
 * silent workers, and workers leaving.  coord.c's essay ("Membership",
 * "Joins") says how it works; everything here runs with or takes the
 * coordinator's mu.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "coord/coord_impl.h"
#include "frame/auth.h"
#include "net/conn.h"
#include "wire/map.h"

/* Called with mu held: release the barrier if every worker still in the
 * cluster (NEW or LIVE: not those who left or died) has arrived. */
void co_barrier_check(pd_coord *co) {
    if (co->barrier_arrived > 0 && co->barrier_arrived >= co->nmembers) {
        co->barrier_arrived = 0;
        co->barrier_gen++;
        pthread_cond_broadcast(&co->cv);
    }
}

/* Called with mu held: a worker is gone (BYE, disconnect, or silence).
 * Servers are told, so that sync clocks stop waiting for it. */
void co_worker_departed(pd_coord *co, int32_t rank, int clean,
                            const char *why) {
    if (co->wstate[rank] == W_AWAY) co_away_settled(co, rank);
    co->wstate[rank] = clean ? W_LEFT : W_DIED;
    co->departed++;
    co->nmembers--;
    if (co->wbar[rank] == co->barrier_gen + 1) {
        /* It had arrived at the barrier still open: no longer counted, or
         * its arrival would stand in for one of the workers still coming. */
        co->wbar[rank] = 0;
        co->barrier_arrived--;
    }
    co_barrier_check(co);
    if (!clean && !co->fail_msg[0]) { /* (after co_fail: expected) */
        co->died++;
        pd_log(PD_LOG_WARN, "worker %d %s at clock %lld; removed from the "
               "cluster, the others go on",
               rank, why, (long long)co->wclock[rank]);
    }
    for (int32_t i = 0; i < co->o.servers; i++) {
        co_conn *sc = co->server_conn[i];
        if (!sc) continue;
        pd_hdr h = {0};
        uint8_t p[8] = {(uint8_t)rank, (uint8_t)(rank >> 8), (uint8_t)(rank >> 16),
                        (uint8_t)(rank >> 24), (uint8_t)clean, 0, 0, 0};
        h.type = PD_MSG_WORKER_GONE;
        pd_send_frame(sc->conn, &h, p, 8, NULL, 0, NULL, 0, NULL);
    }
    pthread_cond_broadcast(&co->cv);
    co_end_if_empty(co);
}

void co_end_if_empty(pd_coord *co) {
    if (co->nmembers == 0 && !co->o.persist && !co->stopping) {
        pd_log(PD_LOG_DEBUG, "every worker has left: shutting the cluster down");
        for (int32_t i = 0; i < co->o.servers; i++) {
            co_conn *sc = co->server_conn[i];
            if (!sc) continue;
            pd_hdr h = {0};
            h.type = PD_MSG_SHUTDOWN;
            pd_send_frame(sc->conn, &h, NULL, 0, NULL, 0, NULL, 0, NULL);
        }
        co_stop_copies(co, NULL);
        co->stopping = 1;
        pthread_cond_broadcast(&co->cv);
        if (co->lfd >= 0) shutdown(co->lfd, SHUT_RDWR);
    }
}

void co_put_reg_server(const pd_coord *co, pd_buf *b, int32_t idx, uint32_t copy) {
    pd_put_u32(b, (uint32_t)idx);
    pd_put_u32(b, (uint32_t)co->o.servers);
    pd_put_u32(b, (uint32_t)co->o.workers);
    pd_put_u32(b, (uint32_t)co->o.max_workers);
    /* What only servers get: the key that checks workers' rank tickets. */
    pd_put_bytes(b, co->grant.k, sizeof co->grant.k);
    pd_put_u32(b, (uint32_t)co->o.rejoin_ms); /* (a reader takes it if present) */
    pd_put_u32(b, (uint32_t)co->RS); /* copy entries of each shard (copies.c) */
    pd_put_u32(b, copy);                      /* 0: the slot's primary; j: copy j */
}

int co_on_reg_server(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    char addr[PD_MAX_ADDR + 1];
    pd_rd r;
    uint32_t flags = 0; /* PD_REG_JOIN: paramd server --join (optional) */
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_str(&r, addr, PD_MAX_ADDR);
    if (!r.bad && r.off < r.len) { /* (optional: flags, then its host) */
        pd_get_u32(&r, &flags);
        pd_get_str(&r, cc->host, PD_MAX_ADDR);
    }
    if (!pd_rd_done(&r) || cc->role != PD_ROLE_SERVER || cc->server >= 0 ||
        cc->copy_of >= 0 || cc->standby_at != -2 || (flags & ~(uint32_t)(PD_REG_JOIN | PD_REG_PLACE)))
        return co_reply_err(cc, h, PARAMD_EPROTO, "malformed or repeated REG_SERVER");
    pthread_mutex_lock(&co->mu);
    /* A coordinator started again to take a running cluster back: a new
     * server (a copy started while the coordinator was away) must not
     * found a new cluster before the running one's servers rejoin. */
    for (int64_t until = pd_now_ms() + co->o.rejoin_ms;
         co->o.expect_rejoin && !co->whole_again && !co->stopping && co->nservers == 0 &&
         pd_now_ms() < until;)
        pd_cond_wait_ms(&co->cv, &co->mu, 100);
    if (co->takeover && co->whole_again && co->o.replicas > 1 &&
        co->nservers >= co->o.servers && co_replace_slot(co) < 0)
        return co_reg_copy(cc, h, addr); /* a new copy of a cluster taken back */
    if (co->takeover) {
        pthread_mutex_unlock(&co->mu);
        co_reply_err(cc, h, PARAMD_ECONFIG,
                     "this coordinator is taking a running cluster back (its servers "
                     "rejoin): a new server cannot register with it");
        return PARAMD_ECONFIG;
    }
    /* A server that joins waits for the cluster to have its servers: it
     * never takes the place of one that the cluster starts with (paramd
     * local's, paramd train's). */
    if ((flags & PD_REG_JOIN) && co->nservers < co->o.servers)
        return co_reg_standby(cc, h, addr); /* (unlocks) */
    if (co->nservers >= co->o.servers) {
        int32_t k = co_replace_slot(co);
        if (k >= 0) return co_reg_replacement(cc, h, k, addr); /* (unlocks) */
        if (co->o.replicas > 1 && (!(flags & PD_REG_JOIN) || co_copy_wanted(co)))
            return co_reg_copy(cc, h, addr); /* (unlocks) */
        if (flags & (PD_REG_JOIN | PD_REG_PLACE))
            return co_reg_standby(cc, h, addr); /* (unlocks) */
        char msg[PD_ERRMSG_MAX + 64];
        snprintf(msg, sizeof msg,
                 "the cluster already has its %d servers (--servers)%s",
                 co->o.servers, co->o.elastic ? "; to wait as a standby that "
                 "`paramd drain` moves a shard to, start it with --join" : "");
        for (int32_t i = 0; i < co->o.servers; i++)
            if (co->sdown[i] == SD_GONE)
                snprintf(msg, sizeof msg, "%s (it cannot take server %d's place: %s)",
                         "this cluster takes no replacement server", i, co->sdown_why[i]);
        pthread_mutex_unlock(&co->mu);
        co_reply_err(cc, h, PARAMD_ECONFIG, msg);
        return PARAMD_ECONFIG;
    }
    int32_t idx = co->nservers++;
    /* a server whose host is cut off is noticed (net/conn.h) */
    pd_tcp_set_peer_timeout(cc->conn, PD_PEER_TIMEOUT_DEFAULT);
    snprintf(co->server_addr[idx], PD_MAX_ADDR + 1, "%s", addr);
    co->server_conn[idx] = cc;
    co->sseen_ms[idx] = pd_now_ms();
    cc->server = idx;
    pthread_cond_broadcast(&co->cv);
    pd_log(PD_LOG_DEBUG, "server %d registered at %s", idx, addr);
    /* The answer goes under mu, before any frame other threads send this
     * server under mu now that server_conn[idx] is set (WORKER_GONE, a
     * join's, a checkpoint's): the server reads its answer first. */
    pd_buf b;
    pd_buf_init(&b);
    co_put_reg_server(co, &b, idx, 0);
    int rc = co_reply(cc, h, &b);
    pthread_mutex_unlock(&co->mu);
    pd_wipe(b.p, b.len);
    pd_buf_free(&b);
    return rc;
}

/* Called with mu held: send WORKER_JOIN (or, with phase 0, WORKER_GONE to
 * undo a prepared join) for `rank` to every registered server. */
static void send_join(pd_coord *co, int32_t rank, uint32_t phase, int64_t J) {
    for (int32_t i = 0; i < co->o.servers; i++) {
        co_conn *sc = co->server_conn[i];
        if (!sc) continue;
        pd_hdr h = {0};
        pd_buf b;
        pd_buf_init(&b);
        pd_put_u32(&b, (uint32_t)rank);
        if (phase) {
            pd_put_u32(&b, phase);
            pd_put_u64(&b, (uint64_t)J);
            h.type = PD_MSG_WORKER_JOIN;
            h.id = co->join_id;
        } else {
            pd_put_u32(&b, 1); /* clean: nothing went wrong with the worker */
            h.type = PD_MSG_WORKER_GONE;
        }
        if (!b.oom) pd_send_frame(sc->conn, &h, b.p, b.len, NULL, 0, NULL, 0, NULL);
        pd_buf_free(&b);
    }
}

/* Called with mu held (released while waiting): the two phases of a join
 * of `rank` (see the top of this file).  0 with the start clock in *J, or
 * PARAMD_ESHUTDOWN, or PARAMD_ETIMEDOUT with the wait's line in why after
 * limit ms (> 0), both once the servers were told to forget the join. */
static int run_join(pd_coord *co, int32_t rank, int64_t limit, int64_t *J, char *why,
                    size_t whylen) {
    while ((co->joining || co->ck_busy) && !co->stopping) pthread_cond_wait(&co->cv, &co->mu);
    if (co->stopping) return PARAMD_ESHUTDOWN;
    co->joining = 1;
    co->join_id++;
    co->join_replies = 0;
    co->join_max = 0;
    co->join_failed = 0;
    for (int32_t i = 0; i < co->o.servers; i++)
        if (!co->server_conn[i]) co->join_failed = 1;
    if (!co->join_failed) send_join(co, rank, PD_JOIN_PREPARE, 0);
    int timed = co_join_wait(co, rank, limit, why, whylen);
    /* a join that timed out is undone as one that failed */
    int ok = !timed && co->join_replies == co->o.servers && !co->join_failed;
    /* Any J >= every frontier is safe; the live workers' clocks raise it
     * so that a joiner of async tables (no frontier) starts near them. */
    for (int32_t w = 0; w < co->o.max_workers; w++)
        if (co->wstate[w] == W_LIVE && co->wclock[w] > co->join_max)
            co->join_max = co->wclock[w];
    if (ok) send_join(co, rank, PD_JOIN_COMMIT, co->join_max);
    else send_join(co, rank, 0, 0);
    *J = co->join_max;
    co->joining = 0;
    pthread_cond_broadcast(&co->cv);
    return ok ? 0 : timed ? timed : PARAMD_ESHUTDOWN;
}

/* A server's answer to PREPARE: i64 frontier (status 0). */
int co_on_join_reply(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pd_rd r;
    uint64_t F = 0;
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_u64(&r, &F);
    int bad = !pd_rd_done(&r) || h->status != 0 || F > (uint64_t)INT64_MAX;
    pthread_mutex_lock(&co->mu);
    if (cc->server >= 0 && co->joining && h->id == co->join_id) {
        if (bad) {
            co->join_failed = 1;
            pd_log(PD_LOG_ERROR, "server %d answered a join badly", cc->server);
        } else {
            co->join_replies++;
            if ((int64_t)F > co->join_max) co->join_max = (int64_t)F;
        }
        pthread_cond_broadcast(&co->cv);
    }
    pthread_mutex_unlock(&co->mu);
    return 0;
}

/* Called with mu held: a rank for a worker that asked for any (-1): one
 * expected at start, else the rank of a worker that died, a spare slot,
 * the rank of a worker that left.  -1 if every slot is taken. */
static int32_t pick_rank(const pd_coord *co) {
    static const int order[] = {W_NEW, W_DIED, W_FREE, W_LEFT};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        for (int32_t i = 0; i < co->o.max_workers; i++)
            if (co->wstate[i] == order[k]) return i;
    return -1;
}

int co_on_reg_worker(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    uint32_t want_u;
    pd_rd r;
    char msg[256];
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_u32(&r, &want_u);
    int32_t want = (int32_t)want_u;
    if (!pd_rd_done(&r) || cc->role != PD_ROLE_WORKER || cc->rank >= 0)
        return co_reply_err(cc, h, PARAMD_EPROTO, "malformed or repeated REG_WORKER");
    pthread_mutex_lock(&co->mu);
    /* ranks are picked from the states the rejoined servers settled */
    while (co->takeover && !co->whole_again && !co->stopping)
        pthread_cond_wait(&co->cv, &co->mu);
    int32_t W = co->o.workers, M = co->o.max_workers;
    if (want < -1 || want >= M) {
        pthread_mutex_unlock(&co->mu);
        snprintf(msg, sizeof msg,
                 "rank %d is outside 0..%d: the cluster has %d worker slots "
                 "(--workers %d, --max-workers %d)",
                 want, M - 1, M, W, M);
        return co_reply_err(cc, h, PARAMD_EWORKER, msg);
    }
    if (want == -1) want = pick_rank(co);
    /* (an away rank is its worker's until it rejoins or is removed) */
    if (want < 0 || co->wstate[want] == W_LIVE || co->wstate[want] == W_JOINING ||
        co->wstate[want] == W_AWAY) {
        pthread_mutex_unlock(&co->mu);
        if (want < 0)
            snprintf(msg, sizeof msg,
                     "all %d worker slots are taken by live workers: no rank "
                     "for another one (start the cluster with a larger "
                     "--max-workers)",
                     M);
        else
            snprintf(msg, sizeof msg,
                     "rank %d is taken by a live worker (a rank can be taken "
                     "again once its worker left or died; check PARAMD_RANK)",
                     want);
        return co_reply_err(cc, h, PARAMD_EWORKER, msg);
    }
    int was = co->wstate[want];
    int join = was != W_NEW;
    co->wstate[want] = join ? W_JOINING : W_LIVE;
    co->wgen[want]++;
    cc->gen = co->wgen[want];
    cc->rank = want;
    co->wseen_ms[want] = pd_now_ms();
    while (!co_servers_ready(co) && !co->stopping)
        pthread_cond_wait(&co->cv, &co->mu);
    int64_t start = co->restore_clock; /* 0, or a restored cluster's clock */
    int rc = 0;
    char why[PD_ERRMSG_MAX] = "";
    if (co->stopping) {
        rc = PARAMD_ESHUTDOWN;
    } else if (cc->bumped) {
        rc = PARAMD_EWORKER;
        snprintf(why, sizeof why,
                 "rank %d belongs to a worker of the running cluster that this "
                 "coordinator took back while this worker waited: connect again for "
                 "another rank", want);
    } else if (join) {
        rc = run_join(co, want, cc->hello.op_timeout_ms, &start, why, sizeof why);
        if (rc == 0 && !co->stopping) {
            co->wstate[want] = W_LIVE;
            co->wstart[want] = start;
            co->wclock[want] = start;
            co->nmembers++;
            static const char *const how[] = {
                [W_LEFT] = "left", [W_DIED] = "died", [W_FREE] = "spare"};
            pd_log(PD_LOG_INFO, "worker %d joined at clock %lld (%s slot; %d "
                   "workers in the cluster)",
                   want, (long long)start, how[was], co->nmembers);
            co_barrier_check(co);
        } else if (rc != PARAMD_ETIMEDOUT) {
            rc = PARAMD_ESHUTDOWN;
        }
    } else {
        co->wstart[want] = -1;
    }
    if (rc) { /* the slot is vacant again */
        if (co->wstate[want] == W_JOINING) co->wstate[want] = was;
        cc->rank = -1;
    }
    pd_buf b;
    pd_buf_init(&b);
    pd_map m = {want, (uint32_t)W, (uint32_t)co->o.servers, co->epoch, co->server_addr,
                (uint32_t)co->o.heartbeat_ms, (uint32_t)M, start, 1, 0, {0}, 0, 0, 0, 0};
    m.barriers = co->barrier_gen; /* (a joiner knows which it missed) */
    m.rejoin_ms = (uint32_t)co->o.rejoin_ms;
    m.replace_ms = (uint32_t)co->o.replace_ms;
    /* With copies, a request to a lost primary waits for its promotion. */
    if (co->RS > 1 && m.replace_ms < PD_COPY_WAIT_MS) m.replace_ms = PD_COPY_WAIT_MS;
    /* (with --elastic too: a request keeps its ids, a moved shard's new
     * server recognises what its old one applied) */
    m.replicas = (uint32_t)co->RS;
    /* The rank is this connection's: the ticket proves it to the servers
     * and on the heartbeat connection (frame/auth.h). */
    pd_ticket tk;
    pd_ticket_make(&co->grant, want, cc->gen, &tk);
    m.ticket_gen = tk.gen;
    memcpy(m.ticket, tk.mac, sizeof m.ticket);
    pd_map_encode(&b, &m);
    co->wseen_ms[want] = pd_now_ms(); /* waiting for servers is not silence */
    pthread_mutex_unlock(&co->mu);
    if (rc == PARAMD_ETIMEDOUT || rc == PARAMD_EWORKER) {
        pd_buf_free(&b);
        return co_reply_err(cc, h, rc, why);
    }
    if (rc) {
        pd_buf_free(&b);
        return co_reply_err(cc, h, PARAMD_ESHUTDOWN,
                         co_stop_reason(co, join ? "the cluster is stopping or lost "
                                                   "a server while this worker joined"
                                                 : "cluster is stopping"));
    }
    rc = co_reply(cc, h, &b);
    pd_buf_free(&b);
    return rc;
}

/* MAP: the cluster map for tools (paramd stats, tests): rank -1, W, S,
 * epoch, addresses; answered once every server registered. */
int co_on_map(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pthread_mutex_lock(&co->mu);
    while (!co_servers_ready(co) && !co->stopping)
        pthread_cond_wait(&co->cv, &co->mu);
    pd_buf b;
    pd_buf_init(&b);
    /* a lost server's slot (replace.c) has no address to give: "-" */
    char(*addr)[PD_MAX_ADDR + 1] = pd_calloc((size_t)co->o.servers, sizeof *addr);
    for (int32_t k = 0; addr && k < co->o.servers; k++)
        snprintf(addr[k], sizeof addr[k], "%s", co->sdown[k] == SD_UP ? co->server_addr[k] : "-");
    pd_map m = {-1, (uint32_t)co->o.workers, (uint32_t)co->o.servers, co->epoch,
                addr ? addr : co->server_addr, 0, 0, 0, 0, 0, {0}, 0, 0, 0, 0};
    pd_map_encode(&b, &m);
    pthread_mutex_unlock(&co->mu);
    pd_free(addr);
    int rc = co_reply(cc, h, &b);
    pd_buf_free(&b);
    return rc;
}

int co_on_barrier(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    if (cc->rank < 0) return co_reply_err(cc, h, PARAMD_EPROTO, "BARRIER before REG_WORKER");
    /* u64: the barrier's number, how many the worker passed (optional) */
    uint64_t num = UINT64_MAX;
    pd_rd r;
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    if (h->len) pd_get_u64(&r, &num);
    if (!pd_rd_done(&r)) return co_reply_err(cc, h, PARAMD_EPROTO, "malformed BARRIER");
    pthread_mutex_lock(&co->mu);
    if (num < co->barrier_gen) {
        /* released already: a worker that asked again after the coordinator
         * it asked first was lost (takeover.c) */
        pthread_mutex_unlock(&co->mu);
        return co_reply(cc, h, NULL);
    }
    uint64_t gen = co->barrier_gen;
    co->wbar[cc->rank] = gen + 1; /* for whom it waits (status.c) */
    co->barrier_arrived++;
    pd_log(PD_LOG_DEBUG, "worker %d arrived at barrier %llu (%d of %d)", cc->rank,
           (unsigned long long)gen, co->barrier_arrived, co->nmembers);
    co_barrier_check(co);
    char why[PD_ERRMSG_MAX];
    int timed = co_barrier_wait(co, gen, cc->hello.op_timeout_ms, why, sizeof why);
    int ok = co->barrier_gen != gen;
    if (timed && !ok && co->wbar[cc->rank] == gen + 1 && cc->gen == co->wgen[cc->rank]) {
        /* it gave up: the barrier goes on without it (unless its departure
         * took its arrival back already) */
        co->wbar[cc->rank] = 0;
        co->barrier_arrived--;
    }
    pthread_mutex_unlock(&co->mu);
    if (timed && !ok) return co_reply_err(cc, h, PARAMD_ETIMEDOUT, why);
    if (!ok)
        return co_reply_err(cc, h, PARAMD_ESHUTDOWN,
                         co_stop_reason(co, "the cluster is stopping"));
    return co_reply(cc, h, NULL);
}

/* HEARTBEAT on a worker's second connection: u32 rank; clock in header. */
/* A server's heartbeat (empty, unsolicited: no reply) says it is alive:
 * one that falls silent is reported by the monitor, and said again here
 * when it speaks again. */
static int server_heartbeat(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pthread_mutex_lock(&co->mu);
    int copy = cc->copy_of >= 0; /* a copy's: its connection is what counts */
    pthread_mutex_unlock(&co->mu);
    if (h->len == 0 && copy) return 0;
    if (h->len != 0 || cc->server < 0)
        return co_reply_err(cc, h, PARAMD_EPROTO, "malformed HEARTBEAT from a server");
    pthread_mutex_lock(&co->mu);
    int32_t k = cc->server;
    int64_t now = pd_now_ms(), silent = now - co->sseen_ms[k];
    if (co->ssilent[k])
        pd_log(PD_LOG_INFO, "server %d (%s) speaks again after %.1f s of silence", k,
               co->server_addr[k], (double)silent / 1000.0);
    co->sseen_ms[k] = now;
    co->ssilent[k] = 0;
    pthread_mutex_unlock(&co->mu);
    return 0;
}

int co_on_heartbeat(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    if (cc->role == PD_ROLE_SERVER) return server_heartbeat(cc, h);
    pd_rd r;
    uint32_t rank;
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_u32(&r, &rank);
    uint64_t lost = 0; /* servers it lost, waiting for a replacement (replace.c) */
    if (!r.bad && r.off < r.len) pd_get_u64(&r, &lost);
    if (!pd_rd_done(&r) || cc->role != PD_ROLE_WORKER || rank >= (uint32_t)co->o.max_workers)
        return co_reply_err(cc, h, PARAMD_EPROTO, "malformed HEARTBEAT");
    pthread_mutex_lock(&co->mu);
    /* (a heartbeat of a worker of a cluster being taken back: until
     * every server rejoined) */
    while (!co->whole_again && !(co->nservers == co->o.servers && !co->takeover) &&
           !co->stopping)
        pthread_cond_wait(&co->cv, &co->mu);
    int st = co->wstate[rank];
    if (co->takeover && cc->hello.has_ticket && cc->hello.rank == (int32_t)rank &&
        cc->hello.ticket.gen >= co->wgen[rank] &&
        pd_ticket_ok(&co->grant, (int32_t)rank, &cc->hello.ticket) &&
        (st == W_NEW || st == W_AWAY || st == W_FREE)) {
        /* A worker of the cluster taken back, not rejoined yet (the
         * handshake checked its ticket): it is away, and alive. */
        if (st != W_AWAY) co->naway++;
        if (st == W_FREE) co->nmembers++;
        co->wstate[rank] = W_AWAY;
        co->wgen[rank] = cc->hello.ticket.gen;
    }
    /* A heartbeat keeps a rank alive, so only its holder may send it: the
     * connection must have shown that rank's current ticket in HELLO. */
    if (!cc->hello.has_ticket || cc->hello.rank != (int32_t)rank ||
        cc->hello.ticket.gen != co->wgen[rank] ||
        !pd_ticket_ok(&co->grant, (int32_t)rank, &cc->hello.ticket)) {
        pthread_mutex_unlock(&co->mu);
        char msg[200];
        snprintf(msg, sizeof msg,
                 "HEARTBEAT for rank %u from a connection that did not show the "
                 "ticket of that rank's current worker", rank);
        pd_log(PD_LOG_WARN, "closing connection from %s: %s", cc->conn->peer, msg);
        pd_send_error(cc->conn, h, PARAMD_EWORKER, msg);
        return PARAMD_EWORKER;
    }
    cc->heartbeat = 1;
    cc->hb_rank = (int32_t)rank;
    int live = co->wstate[rank] == W_LIVE || co->wstate[rank] == W_AWAY;
    if (live) {
        co->wseen_ms[rank] = pd_now_ms();
        co->wclock[rank] = h->clock;
        co_worker_lost(co, (int32_t)rank, lost);
    }
    pthread_mutex_unlock(&co->mu);
    if (!live) {
        co_reply_err(cc, h, PARAMD_EWORKER, "this worker was removed from the cluster");
        return PARAMD_EWORKER;
    }
    return co_reply(cc, h, NULL);
}

/* The heartbeat monitor: removes workers silent for heartbeat_ms (a
 * stopped or hung process keeps its sockets open, so only silence tells). */
void *co_monitor_main(void *arg) {
    pd_coord *co = arg;
    pthread_mutex_lock(&co->mu);
    while (!co->stopping) {
        int64_t now = pd_now_ms();
        for (int32_t w = 0; w < co->o.max_workers; w++)
            if ((co->wstate[w] == W_LIVE || co->wstate[w] == W_AWAY) &&
                now - co->wseen_ms[w] > co->o.heartbeat_ms) {
                char why[128];
                snprintf(why, sizeof why, "%s for %.1f s",
                         co->wstate[w] == W_AWAY ? "did not come back to the coordinator "
                                                   "that took the cluster back: no heartbeat"
                                                 : "sent no heartbeat",
                         (now - co->wseen_ms[w]) / 1000.0);
                co_worker_departed(co, w, 0, why);
                /* close its connections: a resumed process gets errors */
                for (co_conn *cc = co->conns; cc; cc = cc->next)
                    if (cc->rank == w || (cc->heartbeat && cc->hb_rank == w))
                        pd_conn_shutdown(cc->conn);
            }
        /* A server is not removed (its shard has no other home): it is
         * named, so that the workers' waits on it have a cause. */
        for (int32_t k = 0; k < co->nservers; k++)
            if (co->server_conn[k] && !co->ssilent[k] &&
                now - co->sseen_ms[k] > co->o.heartbeat_ms) {
                co->ssilent[k] = 1;
                pd_log(PD_LOG_WARN, "server %d (%s) has sent no heartbeat for %.1f s: "
                       "stopped or hung?  Workers waiting on it wait too; its process "
                       "is still connected", k, co->server_addr[k],
                       (double)(now - co->sseen_ms[k]) / 1000.0);
            }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (int64_t)(co->o.heartbeat_ms / 4 + 1) * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&co->cv, &co->mu, &ts);
    }
    pthread_mutex_unlock(&co->mu);
    return NULL;
}

int co_on_bye(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    if (cc->rank < 0) return co_reply_err(cc, h, PARAMD_EPROTO, "BYE before REG_WORKER");
    /* (before the reply: the worker closes this connection on it, and
     * its heartbeat connection's end must not take that for a death) */
    pthread_mutex_lock(&co->mu);
    cc->bye = 1;
    pthread_mutex_unlock(&co->mu);
    int rc = co_reply(cc, h, NULL);
    pthread_mutex_lock(&co->mu);
    if (co->wstate[cc->rank] == W_LIVE && cc->gen == co->wgen[cc->rank])
        co_worker_departed(co, cc->rank, 1, "left");
    pthread_mutex_unlock(&co->mu);
    return rc ? rc : PARAMD_ECLOSED; /* the worker is done with us */
}

