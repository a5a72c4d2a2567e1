/*
 * moves.c - elastic servers at the coordinator (--elastic;
 * docs/durability.md "Servers that join and leave").
 *
 * A server started with `paramd server --join` against a cluster that has
 * its servers (and, with --replicas, every copy it needs) is a standby:
 * its REG_SERVER waits here, unanswered, until a shard is given to it.
 * Shards are given two ways, both moves:
 *
 *   - the join balances hosts: if some host (the servers' host identity,
 *     net/host.h) serves at least two shards more than the standby's
 *     host, one of them moves to the standby at once (the coordinator's
 *     own move, mv_auto), and its old server stops: a machine that joins
 *     takes a shard of every table from the busiest one;
 *   - `paramd drain --server K` (DRAIN from a tool) moves server K's
 *     shard to a standby, and K stops.
 *
 * A move, while workers train, with the replication of copies.c:
 *
 *   1. The standby takes slot K's last copy entry (K * RS + RS - 1, kept
 *      free for moves) and is answered as that copy; the primary is sent
 *      REPLICA_ADD and seeds it (server/replica.c: a cut, the tables and
 *      the update ids, then every update forwarded, each acknowledged by
 *      the standby before the worker's reply).
 *   2. Once it is live (the primary's REPLICA_ADD answer), the old server
 *      is sent RETIRE and stops; its connection ends and the standby is
 *      promoted, as a copy whose primary was lost is (copies.c): the map
 *      epoch goes up, workers reconnect to the new address and send again
 *      what had no answer, with the ids it had, and the new server, which
 *      remembers the ids of what it applied, applies nothing twice.
 *   3. The DRAIN answer says what moved where, and how long it took.
 *
 * One move at a time, never during a checkpoint (they wait for each
 * other).  A move that fails (the standby or the old server lost, the
 * seed refused) leaves the shard where it was, or as a lost server's
 * would be; the DRAIN answer says why.
 *
 * Everything here runs on connection threads, under mu.
 */
#include <stdio.h>
#include <string.h>

#include "coord/coord_impl.h"

int co_copy_wanted(const pd_coord *co) {
    for (int32_t k = 0; k < co->o.servers; k++)
        for (int32_t j = 1; j < co->o.replicas; j++)
            if (co->cp_state[k * co->RS + j] == CS_NONE && co->server_conn[k] &&
                co->sdown[k] == SD_UP)
                return 1;
    return 0;
}

static void standby_remove(pd_coord *co, int32_t i) {
    co->nstandby--;
    for (; i < co->nstandby; i++) {
        co->standby[i] = co->standby[i + 1];
        memcpy(co->standby_addr[i], co->standby_addr[i + 1], sizeof co->standby_addr[i]);
    }
    pthread_cond_broadcast(&co->cv);
}

void co_standby_gone(pd_coord *co, co_conn *cc) {
    for (int32_t i = 0; i < co->nstandby; i++)
        if (co->standby[i] == cc) {
            pd_log(PD_LOG_INFO, "the standby at %s left", co->standby_addr[i]);
            standby_remove(co, i);
            return;
        }
}

/* mu held: the move ends (done or failed): its DRAIN waits for this; the
 * coordinator's own ends here. */
static void move_end(pd_coord *co, int state, const char *msg) {
    co->mv_state = state;
    snprintf(co->mv_msg, sizeof co->mv_msg, "%s", msg);
    if (co->mv_auto) {
        co->mv_auto = 0;
        co->mv_slot = -1;
        co->mv_state = MV_NONE;
    }
    pthread_cond_broadcast(&co->cv);
}

/* mu held: standby sb takes slot k's shard (k is up, no move runs). */
static void move_begin(pd_coord *co, co_conn *sb, int32_t k, int automatic) {
    for (int32_t i = 0; i < co->nstandby; i++)
        if (co->standby[i] == sb) {
            standby_remove(co, i);
            break;
        }
    sb->standby_at = k * co->RS + co->RS - 1;
    co->mv_slot = k;
    co->mv_state = MV_SEEDING;
    co->mv_auto = automatic;
    co->mv_t0 = pd_now();
    co->mv_msg[0] = '\0';
    snprintf(co->mv_from, sizeof co->mv_from, "%s", co->server_addr[k]);
    pthread_cond_broadcast(&co->cv);
}

/* mu held: the shards the servers of host `host` serve. */
static int32_t host_shards(const pd_coord *co, const char *host) {
    int32_t n = 0;
    for (int32_t k = 0; k < co->o.servers; k++)
        n += co->server_conn[k] && co->sdown[k] == SD_UP &&
             !strcmp(co->server_conn[k]->host, host);
    return n;
}

/* mu held: a slot whose shard should move to a standby on host `host`
 * (its host serves at least two more shards than `host`), or -1. */
static int32_t donor_slot(const pd_coord *co, const char *host) {
    int32_t best = -1, most = host_shards(co, host) + 1;
    for (int32_t k = 0; k < co->o.servers; k++) {
        if (!co->server_conn[k] || co->sdown[k] != SD_UP) continue;
        int32_t n = host_shards(co, co->server_conn[k]->host);
        if (n > most) most = n, best = k;
    }
    return best;
}

int co_reg_standby(co_conn *cc, const pd_hdr *h, const char *addr) {
    pd_coord *co = cc->co;
    char msg[PD_ERRMSG_MAX];
    if (!co->o.elastic) {
        snprintf(msg, sizeof msg, "this cluster (%d servers) was not started with "
                 "--elastic: no server can join it (start the coordinator, paramd local "
                 "or paramd train with --elastic)", co->o.servers);
        pthread_mutex_unlock(&co->mu);
        co_reply_err(cc, h, PARAMD_ECONFIG, msg);
        return PARAMD_ECONFIG;
    }
    if (co->nstandby >= PD_MAX_STANDBYS) {
        snprintf(msg, sizeof msg, "%d standbys wait already (at most %d)", co->nstandby,
                 PD_MAX_STANDBYS);
        pthread_mutex_unlock(&co->mu);
        co_reply_err(cc, h, PARAMD_ECONFIG, msg);
        return PARAMD_ECONFIG;
    }
    co->standby[co->nstandby] = cc;
    snprintf(co->standby_addr[co->nstandby], PD_MAX_ADDR + 1, "%s", addr);
    co->nstandby++;
    cc->standby_at = -1;
    pd_tcp_set_peer_timeout(cc->conn, PD_PEER_TIMEOUT_DEFAULT);
    pd_log(PD_LOG_INFO, "server at %s joined as a standby (%d waiting): `paramd drain "
           "--server K` moves server K's shard to it", addr, co->nstandby);
    pthread_cond_broadcast(&co->cv);
    int said = 0;
    while (cc->standby_at == -1 && !co->stopping) {
        /* A host with fewer shards takes one from the busiest (when no
         * other move, checkpoint or join runs). */
        if (co->mv_slot < 0 && !co->ck_busy && !co->joining && co->standby[0] == cc &&
            co_servers_ready(co)) {
            int32_t k = donor_slot(co, cc->host);
            if (k >= 0) {
                pd_log(PD_LOG_INFO, "the standby at %s (host %s) takes server %d's shard: "
                       "server %d's host %s serves %d shards, this one's %d", addr,
                       cc->host, k, k, co->server_conn[k]->host,
                       host_shards(co, co->server_conn[k]->host), host_shards(co, cc->host));
                move_begin(co, cc, k, 1);
                break;
            }
            if (!said++)
                pd_log(PD_LOG_INFO, "the standby at %s waits: no host serves two shards "
                       "more than its host %s (%d)", addr, cc->host[0] ? cc->host : "-",
                       host_shards(co, cc->host));
        }
        pd_cond_wait_ms(&co->cv, &co->mu, 1000);
    }
    if (cc->standby_at < 0) {
        co_standby_gone(co, cc);
        cc->standby_at = -2;
        snprintf(msg, sizeof msg, "the cluster ended before this standby was given a "
                 "shard (%s)", co_stop_reason(co, "every worker left"));
        pthread_mutex_unlock(&co->mu);
        co_reply_err(cc, h, PARAMD_ESHUTDOWN, msg);
        return PARAMD_ESHUTDOWN;
    }
    int32_t at = cc->standby_at;
    pd_log(PD_LOG_INFO, "the standby at %s takes server %d's shard: its server (%s) seeds "
           "it", addr, at / co->RS, co->server_addr[at / co->RS]);
    int rc = co_copy_assign(cc, h, at, addr);
    pthread_mutex_unlock(&co->mu);
    return rc;
}

void co_move_failed(pd_coord *co, const char *why) {
    if (co->mv_slot < 0 || (co->mv_state != MV_SEEDING && co->mv_state != MV_HANDOVER))
        return;
    char msg[PD_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "server %d's shard did not move to %s: %s", co->mv_slot,
             co->cp_addr[co->mv_slot * co->RS + co->RS - 1], why);
    pd_log(PD_LOG_ERROR, "%s", msg);
    move_end(co, MV_FAILED, msg);
}

void co_move_handover(pd_coord *co) {
    int32_t k = co->mv_slot;
    co->mv_state = MV_HANDOVER;
    co->mv_live_t = pd_now();
    const char *to = co->cp_addr[k * co->RS + co->RS - 1];
    pd_log(PD_LOG_INFO, "server %d's shard is on %s (seeded in %.0f ms): server %d (%s) "
           "retires", k, to, (co->mv_live_t - co->mv_t0) * 1000, k, co->server_addr[k]);
    char why[PD_ERRMSG_MAX];
    snprintf(why, sizeof why, "%s: server %d's shard moved to %s",
             co->mv_auto ? "retired (a server joined from a host with fewer shards)"
                         : "drained (paramd drain)", k, to);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_str(&b, why);
    pd_hdr h = {0};
    h.type = PD_MSG_RETIRE;
    if (co->server_conn[k] && !b.oom)
        pd_send_frame(co->server_conn[k]->conn, &h, b.p, b.len, NULL, 0, NULL, 0, NULL);
    pd_buf_free(&b);
}

void co_move_done(pd_coord *co, const char *old) {
    int32_t k = co->mv_slot;
    double now = pd_now();
    co->moves++;
    char msg[PD_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "server %d's shard moved from %s to %s%s in %.0f ms (seeding "
             "%.0f ms, handover %.0f ms; map epoch %llu); no update was lost", k, old,
             co->server_addr[k], co->mv_auto ? ", which joined from a host with fewer shards," : "",
             (now - co->mv_t0) * 1000, (co->mv_live_t - co->mv_t0) * 1000,
             (now - co->mv_live_t) * 1000, (unsigned long long)co->epoch);
    pd_log(PD_LOG_WARN, "%s", msg);
    move_end(co, MV_DONE, msg);
}

/* mu held: why server k's shard cannot move now ("" if it can), after
 * waiting for a checkpoint or a join in progress. */
static void cannot_move(pd_coord *co, uint32_t k, char *why, size_t len) {
    why[0] = '\0';
    if (!co->o.elastic) {
        snprintf(why, len, "this cluster was not started with --elastic: its shards "
                 "cannot move (start the coordinator, paramd local or paramd train with "
                 "--elastic)");
        return;
    }
    if (k >= (uint32_t)co->o.servers) {
        snprintf(why, len, "there is no server %u: the cluster has %d (0..%d)", k,
                 co->o.servers, co->o.servers - 1);
        return;
    }
    while ((co->ck_busy || co->joining || co->mv_slot >= 0) && !co->stopping)
        pd_cond_wait_ms(&co->cv, &co->mu, 1000);
    if (co->stopping) {
        snprintf(why, len, "%s", co_stop_reason(co, "the cluster is stopping"));
        return;
    }
    if (co->nservers < co->o.servers || !co_servers_ready(co)) {
        snprintf(why, len, "the cluster is still starting (%d of %d servers)", co->nservers,
                 co->o.servers);
        return;
    }
    if (co->sdown[k] != SD_UP || !co->server_conn[k]) {
        snprintf(why, len, "server %u is not up (it was lost: its shard can move only once "
                 "it is served again)", k);
        return;
    }
    /* A standby that left while it waited is noticed now. */
    for (int32_t i = 0; i < co->nstandby;)
        if (pd_conn_peer_gone(co->standby[i]->conn)) {
            pd_log(PD_LOG_INFO, "the standby at %s left", co->standby_addr[i]);
            co->standby[i]->standby_at = -2;
            standby_remove(co, i);
        } else {
            i++;
        }
    if (co->nstandby == 0)
        snprintf(why, len, "no standby to take server %u's shard: start `paramd server "
                 "--join --coordinator ADDR` first (paramd status lists the standbys)", k);
}

int co_on_drain(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pd_rd r;
    uint32_t k = 0;
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_u32(&r, &k);
    if (!pd_rd_done(&r) || cc->role != PD_ROLE_TOOL)
        return co_reply_err(cc, h, PARAMD_EPROTO, "malformed DRAIN, or not from a tool "
                            "(paramd drain)");
    char why[PD_ERRMSG_MAX];
    pthread_mutex_lock(&co->mu);
    cannot_move(co, k, why, sizeof why);
    if (why[0]) {
        pthread_mutex_unlock(&co->mu);
        return co_reply_err(cc, h, PARAMD_ECONFIG, why);
    }
    pd_log(PD_LOG_INFO, "draining server %u (%s): its shard moves to the standby at %s, "
           "seeded while the workers train", k, co->server_addr[k], co->standby_addr[0]);
    move_begin(co, co->standby[0], (int32_t)k, 0);
    while ((co->mv_state == MV_SEEDING || co->mv_state == MV_HANDOVER) && !co->stopping)
        pd_cond_wait_ms(&co->cv, &co->mu, 1000);
    int state = co->mv_state;
    if (state != MV_DONE && state != MV_FAILED)
        snprintf(co->mv_msg, sizeof co->mv_msg, "server %u's shard did not move: %s", k,
                 co_stop_reason(co, "the cluster is stopping"));
    snprintf(why, sizeof why, "%s", co->mv_msg);
    co->mv_slot = -1;
    co->mv_state = MV_NONE;
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    if (state != MV_DONE) return co_reply_err(cc, h, PARAMD_ECONFIG, why);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_str(&b, why);
    int rc = co_reply(cc, h, &b);
    pd_buf_free(&b);
    return rc;
}
