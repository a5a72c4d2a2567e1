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
 *     shard to a standby (one on another host than K's if one waits), and
 *     K stops;
 *   - `paramd drain --host H` moves every shard that host H's servers
 *     serve to standbys of other hosts, one after the other, then tells
 *     H's standbys to stop: the host can be switched off.
 *
 * A server of `paramd server --shards N` (a host that serves up to N
 * shards, one per process) whose shard moved away waits as a standby for
 * another: RETIRE says so (PD_RETIRE_STAY), except in a host drain.  So
 * shards can be spread over hosts and gathered again: a host that joins
 * with N places takes shards from the busiest hosts until no host serves
 * two more than another, and the places those shards left wait for the
 * shards of a host drained later.
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
#include "net/host.h"

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
static void move_begin(pd_coord *co, co_conn *sb, int32_t k, int automatic, int leave) {
    for (int32_t i = 0; i < co->nstandby; i++)
        if (co->standby[i] == sb) {
            standby_remove(co, i);
            break;
        }
    sb->standby_at = k * co->RS + co->RS - 1;
    co->mv_slot = k;
    co->mv_state = MV_SEEDING;
    co->mv_auto = automatic;
    co->mv_leave = leave;
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

/* Whether host identity `id` is the host a user named: the whole
 * identity, or its host name part (net/host.h). */
static int host_is(const char *id, const char *name) {
    char hn[PD_MAX_ADDR + 1];
    pd_host_name_of(id, hn, sizeof hn);
    return !strcmp(id, name) || !strcmp(hn, name);
}

/* mu held: the first standby not on host `host` (-1: none). */
static int32_t standby_off(const pd_coord *co, const char *host) {
    for (int32_t i = 0; i < co->nstandby; i++)
        if (strcmp(co->standby[i]->host, host)) return i;
    return -1;
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

/* mu held: the first standby whose host serves two shards fewer than
 * another host, or NULL. */
static co_conn *first_taker(const pd_coord *co) {
    for (int32_t i = 0; i < co->nstandby; i++)
        if (donor_slot(co, co->standby[i]->host) >= 0) return co->standby[i];
    return NULL;
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
         * other move, checkpoint or join runs): the first standby in line
         * whose host can take one. */
        if (co->mv_slot < 0 && !co->ck_busy && !co->joining && !co->hd_host[0] &&
            co_servers_ready(co)) {
            int32_t k = donor_slot(co, cc->host);
            if (k >= 0 && first_taker(co) == cc) {
                pd_log(PD_LOG_INFO, "the standby at %s (host %s) takes server %d's shard: "
                       "server %d's host %s serves %d shards, this one's %d", addr,
                       cc->host, k, k, co->server_conn[k]->host,
                       host_shards(co, co->server_conn[k]->host), host_shards(co, cc->host));
                move_begin(co, cc, k, 1, 0);
                break;
            }
            if (k < 0 && !said++)
                pd_log(PD_LOG_INFO, "the standby at %s waits: no host serves two shards "
                       "more than its host %s (%d)", addr, cc->host[0] ? cc->host : "-",
                       host_shards(co, cc->host));
        }
        pd_cond_wait_ms(&co->cv, &co->mu, 1000);
    }
    if (cc->standby_at < 0) {
        int drained = cc->standby_at == -3;
        co_standby_gone(co, cc);
        cc->standby_at = -2;
        if (drained)
            snprintf(msg, sizeof msg, "host %s was drained (paramd drain --host): this "
                     "standby stops", cc->host);
        else
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
             co->mv_auto    ? "retired (a server joined from a host with fewer shards)"
             : co->mv_leave ? "drained (paramd drain --host)"
                            : "drained (paramd drain)", k, to);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_str(&b, why);
    pd_put_u32(&b, co->mv_leave ? 0 : PD_RETIRE_STAY);
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

/* mu held: why no shard can move now ("" if one can), after waiting for
 * a checkpoint, a join or another move in progress; standbys that left
 * while they waited are forgotten. */
static void cannot_move(pd_coord *co, char *why, size_t len) {
    why[0] = '\0';
    if (!co->o.elastic) {
        snprintf(why, len, "this cluster was not started with --elastic: its shards "
                 "cannot move (start the coordinator, paramd local or paramd train with "
                 "--elastic)");
        return;
    }
    while ((co->ck_busy || co->joining || co->mv_slot >= 0 || co->hd_host[0]) &&
           !co->stopping)
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
    for (int32_t i = 0; i < co->nstandby;)
        if (pd_conn_peer_gone(co->standby[i]->conn)) {
            pd_log(PD_LOG_INFO, "the standby at %s left", co->standby_addr[i]);
            co->standby[i]->standby_at = -2;
            standby_remove(co, i);
        } else {
            i++;
        }
}

/* mu held: move slot k's shard to standby i and wait for the end; the
 * move's message (what moved where, or why not) into why.  0 if it moved. */
static int move_wait(pd_coord *co, int32_t k, int32_t i, int leave, char *why, size_t len) {
    move_begin(co, co->standby[i], k, 0, leave);
    while ((co->mv_state == MV_SEEDING || co->mv_state == MV_HANDOVER) && !co->stopping)
        pd_cond_wait_ms(&co->cv, &co->mu, 1000);
    int state = co->mv_state;
    if (state != MV_DONE && state != MV_FAILED)
        snprintf(co->mv_msg, sizeof co->mv_msg, "server %d's shard did not move: %s", k,
                 co_stop_reason(co, "the cluster is stopping"));
    snprintf(why, len, "%s", co->mv_msg);
    co->mv_slot = -1;
    co->mv_state = MV_NONE;
    pthread_cond_broadcast(&co->cv);
    return state == MV_DONE ? 0 : -1;
}

/* mu held: DRAIN of server k.  0 with what moved in why, or -1 with why
 * not. */
static int drain_server(pd_coord *co, uint32_t k, char *why, size_t len) {
    if (co->o.elastic && k >= (uint32_t)co->o.servers) {
        snprintf(why, len, "there is no server %u: the cluster has %d (0..%d)", k,
                 co->o.servers, co->o.servers - 1);
        return -1;
    }
    cannot_move(co, why, len);
    if (why[0]) return -1;
    if (co->sdown[k] != SD_UP || !co->server_conn[k]) {
        snprintf(why, len, "server %u is not up (it was lost: its shard can move only once "
                 "it is served again)", k);
        return -1;
    }
    if (co->nstandby == 0) {
        snprintf(why, len, "no standby to take server %u's shard: start `paramd server "
                 "--join --coordinator ADDR` first (paramd status lists the standbys)", k);
        return -1;
    }
    /* to another host than k's if a standby waits there (a drain takes
     * load off a host; the standby beside k is likely its sibling place) */
    int32_t i = standby_off(co, co->server_conn[k]->host);
    if (i < 0) i = 0;
    pd_log(PD_LOG_INFO, "draining server %u (%s): its shard moves to the standby at %s, "
           "seeded while the workers train", k, co->server_addr[k], co->standby_addr[i]);
    return move_wait(co, (int32_t)k, i, 0, why, len);
}

/* mu held: the first slot up whose server is on host `host`, or -1. */
static int32_t slot_on(const pd_coord *co, const char *host) {
    for (int32_t k = 0; k < co->o.servers; k++)
        if (co->server_conn[k] && co->sdown[k] == SD_UP && host_is(co->server_conn[k]->host, host))
            return k;
    return -1;
}

/* mu held: DRAIN of every shard of host `host`: each moves to a standby of
 * another host, then the host's standbys are told to stop.  0 with what
 * moved in why, or -1 with why not (shards already moved stay moved). */
static int drain_host(pd_coord *co, const char *host, char *why, size_t len) {
    cannot_move(co, why, len);
    if (why[0]) return -1;
    int32_t n = 0, free_off = 0, mine = 0;
    for (int32_t k = 0; k < co->o.servers; k++)
        n += co->server_conn[k] && host_is(co->server_conn[k]->host, host);
    for (int32_t i = 0; i < co->nstandby; i++) {
        int here = host_is(co->standby[i]->host, host);
        mine += here;
        free_off += !here;
    }
    if (n == 0 && mine == 0) {
        snprintf(why, len, "no server or standby of host %s is in this cluster (paramd "
                 "status lists the servers and their hosts)", host);
        return -1;
    }
    for (int32_t k = 0; k < co->o.servers; k++)
        if (co->server_conn[k] && host_is(co->server_conn[k]->host, host) &&
            co->sdown[k] != SD_UP) {
            snprintf(why, len, "server %d of host %s is not up (it was lost: its shard can "
                     "move only once it is served again)", k, host);
            return -1;
        }
    if (free_off < n) {
        snprintf(why, len, "host %s serves %d shard%s but %d standby%s wait%s on other "
                 "hosts: start `paramd server --join --coordinator ADDR` (or with "
                 "--shards N) on another host first", host, n, n == 1 ? "" : "s", free_off,
                 free_off == 1 ? "" : "s", free_off == 1 ? "s" : "");
        return -1;
    }
    snprintf(co->hd_host, sizeof co->hd_host, "%s", host);
    pd_log(PD_LOG_INFO, "draining host %s: its %d shard%s move%s to standbys of other "
           "hosts, seeded while the workers train", host, n, n == 1 ? "" : "s",
           n == 1 ? "s" : "");
    double t0 = pd_now();
    char done[PD_ERRMSG_MAX] = "", one[PD_ERRMSG_MAX];
    int32_t moved = 0, k;
    int rc = 0;
    while (!rc && (k = slot_on(co, host)) >= 0) {
        int32_t i = standby_off(co, host);
        if (i < 0) {
            snprintf(one, sizeof one, "no standby of another host is left for server "
                     "%d's shard", k);
            rc = -1;
            break;
        }
        char to[PD_MAX_ADDR + 1];
        snprintf(to, sizeof to, "%s", co->standby_addr[i]);
        rc = move_wait(co, k, i, 1, one, sizeof one);
        if (!rc) {
            size_t l = strlen(done);
            snprintf(done + l, sizeof done - l, "%sserver %d to %s", moved ? ", " : "", k, to);
            moved++;
        }
    }
    int32_t told = 0;
    if (!rc)
        for (int32_t i = 0; i < co->nstandby; i++)
            if (host_is(co->standby[i]->host, host) && co->standby[i]->standby_at == -1) {
                co->standby[i]->standby_at = -3;
                told++;
            }
    co->hd_host[0] = '\0';
    pthread_cond_broadcast(&co->cv);
    if (rc) {
        snprintf(why, len, "host %s: %d of its %d shards moved%s%s%s; then %s", host, moved,
                 n, moved ? " (" : "", moved ? done : "", moved ? ")" : "", one);
        return -1;
    }
    snprintf(why, len, "host %s's %d shard%s moved to other hosts in %.0f ms (%s; map epoch "
             "%llu); no update was lost; %d standby%s of host %s told to stop", host, n,
             n == 1 ? "" : "s", (pd_now() - t0) * 1000, moved ? done : "none served",
             (unsigned long long)co->epoch, told, told == 1 ? "" : "s", host);
    pd_log(PD_LOG_WARN, "%s", why);
    return 0;
}

int co_on_drain(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pd_rd r;
    uint32_t k = 0;
    char host[PD_MAX_ADDR + 1] = "";
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_u32(&r, &k);
    if (!r.bad && r.off < r.len) pd_get_str(&r, host, PD_MAX_ADDR); /* (optional) */
    if (!pd_rd_done(&r) || cc->role != PD_ROLE_TOOL || (k == PD_DRAIN_HOST) != !!host[0])
        return co_reply_err(cc, h, PARAMD_EPROTO, "malformed DRAIN, or not from a tool "
                            "(paramd drain)");
    char why[PD_ERRMSG_MAX];
    pthread_mutex_lock(&co->mu);
    int rc = host[0] ? drain_host(co, host, why, sizeof why)
                     : drain_server(co, k, why, sizeof why);
    pthread_mutex_unlock(&co->mu);
    if (rc) return co_reply_err(cc, h, PARAMD_ECONFIG, why);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_str(&b, why);
    int src = co_reply(cc, h, &b);
    pd_buf_free(&b);
    return src;
}
