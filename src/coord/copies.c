/*
 * copies.c - replicated shards at the coordinator (--replicas R;
 * server/replica.c says how a primary feeds its copies and why that
 * design, docs/durability.md "Replicated shards" what users see).
 *
 * Each slot k has its primary (server_conn[k], what workers reach) and up
 * to R-1 copies, entry k * RS + j for copy j (1..R-1) of cp_conn, cp_addr,
 * cp_state.  RS is R, or R + 1 with --elastic: entry k * RS + R is for a
 * shard moving to a standby (moves.c).  A server that registers once the S primaries are there takes
 * the first free copy entry of a slot whose primary is up: its REG_SERVER
 * reply says which copy it is, and the primary is sent REPLICA_ADD (the
 * copy's number and address).  The primary seeds the copy and answers
 * REPLICA_ADD once the copy has its state: the copy is CS_LIVE.  Only a
 * live copy is ever promoted.
 *
 *   - A copy's connection ends, or its primary says REPLICA_DROP (its feed
 *     broke): the entry is free again (a dropped copy is told to stop, so
 *     that it never serves a stale shard), and the next server to
 *     register takes it.
 *   - A primary's connection ends: if a copy of its slot is live, the slot
 *     is SD_PROMOTING and that copy gets PROMOTE; its reply makes it the
 *     slot's server (the map's address and epoch change, SERVER_WAIT
 *     answers).  The slot's other copies are told to stop: the new
 *     primary cannot know which updates they have, so copies are seeded
 *     anew.  With no live copy the slot is lost as without replicas
 *     (replace.c: a replacement restores it from a checkpoint, if one
 *     can).
 *
 * Workers register once every copy was live once (a cluster starts with
 * its copies); afterwards copies come and go while workers train.
 *
 * Everything here runs on connection threads, under mu.
 */
#include <stdio.h>
#include <string.h>

#include "coord/coord_impl.h"
#include "net/host.h"

#define ADD_ID_BASE 0x7d00000000ull     /* REPLICA_ADD ids: + entry */
#define PROMOTE_ID_BASE 0x7c00000000ull /* PROMOTE ids: + slot */

static const char *const cs_names[] = {"none", "seeding", "live"};

const char *co_copy_state_name(int st) { return cs_names[st]; }

int co_servers_ready(const pd_coord *co) {
    return co->nservers >= co->o.servers && (co->o.replicas <= 1 || co->copies_ready);
}

/* mu held: tell a copy to stop, saying why (a SHUTDOWN with a reason). */
static void stop_copy(co_conn *cc, const char *why) {
    pd_buf b;
    pd_buf_init(&b);
    pd_put_str(&b, why);
    pd_hdr h = {0};
    h.type = PD_MSG_SHUTDOWN;
    if (!b.oom) pd_send_frame(cc->conn, &h, b.p, b.len, NULL, 0, NULL, 0, NULL);
    pd_buf_free(&b);
}

/* mu held: free entry i (its copy stopped or left). */
static void entry_free(pd_coord *co, int32_t i, const char *why) {
    co_conn *cc = co->cp_conn[i];
    if (cc) {
        cc->copy_of = -1;
        if (why) stop_copy(cc, why);
    }
    co->cp_conn[i] = NULL;
    co->cp_state[i] = CS_NONE;
    pthread_cond_broadcast(&co->cv);
}

/* mu held: whether every copy entry is live (start-up). */
static void check_ready(pd_coord *co) {
    if (co->copies_ready) return;
    int32_t R = co->o.replicas;
    for (int32_t k = 0; k < co->o.servers; k++)
        for (int32_t j = 1; j < R; j++)
            if (co->cp_state[k * co->RS + j] != CS_LIVE) return;
    co->copies_ready = 1;
    pd_log(PD_LOG_INFO, "every shard has its %d copies", R);
    pthread_cond_broadcast(&co->cv);
}

/* mu held: whether slot k has its primary or a copy on host `host`. */
static int slot_on_host(const pd_coord *co, int32_t k, const char *host) {
    if (!host[0]) return 0; /* a server that said no host: nowhere in particular */
    if (co->server_conn[k] && !strcmp(co->server_conn[k]->host, host)) return 1;
    for (int32_t j = 1; j < co->o.replicas; j++) {
        const co_conn *c = co->cp_conn[k * co->RS + j];
        if (c && !strcmp(c->host, host)) return 1;
    }
    return 0;
}

/* mu held: the copy entry a server of host `host` should take, or -1: a
 * free entry of a slot that is up, the first (copy 1 of every slot, then
 * copy 2, ...) of a slot with no server on that host yet if there is one,
 * else the first; so that one host's death takes no slot's every copy
 * where the servers' hosts allow it. */
static int32_t free_entry(const pd_coord *co, const char *host) {
    int32_t R = co->o.replicas, RS = co->RS, S = co->o.servers, any = -1;
    for (int32_t j = 1; j < R; j++)
        for (int32_t k = 0; k < S; k++) {
            if (co->cp_state[k * RS + j] != CS_NONE || !co->server_conn[k] ||
                co->sdown[k] != SD_UP)
                continue;
            if (!slot_on_host(co, k, host)) return k * RS + j;
            if (any < 0) any = k * RS + j;
        }
    return any;
}

int co_reg_copy(co_conn *cc, const pd_hdr *h, const char *addr) {
    pd_coord *co = cc->co;
    int32_t R = co->o.replicas, RS = co->RS, S = co->o.servers, at = -1;
    /* (a slot being promoted frees its copy's entry in a moment: wait) */
    for (int64_t until = pd_now_ms() + 10000;;) {
        int promoting = 0;
        at = free_entry(co, cc->host);
        for (int32_t k = 0; k < S; k++) promoting |= co->sdown[k] == SD_PROMOTING;
        if (at >= 0 || !promoting || co->stopping || pd_now_ms() >= until) break;
        pd_cond_wait_ms(&co->cv, &co->mu, 100);
    }
    if (at < 0) {
        pthread_mutex_unlock(&co->mu);
        char msg[160];
        snprintf(msg, sizeof msg, "the cluster already has its %d servers and %d copies of "
                 "each (--servers, --replicas)", S, R - 1);
        co_reply_err(cc, h, PARAMD_ECONFIG, msg);
        return PARAMD_ECONFIG;
    }
    char hn[64], phn[64];
    pd_host_name_of(cc->host, hn, sizeof hn);
    pd_host_name_of(co->server_conn[at / RS]->host, phn, sizeof phn);
    pd_log(PD_LOG_INFO, "server at %s registered as copy %d of slot %d; its primary (%s) "
           "seeds it (hosts %s and %s)", addr, at % RS, at / RS, co->server_addr[at / RS],
           hn, phn);
    int rc = co_copy_assign(cc, h, at, addr);
    pthread_mutex_unlock(&co->mu);
    return rc;
}

int co_copy_assign(co_conn *cc, const pd_hdr *h, int32_t at, const char *addr) {
    pd_coord *co = cc->co;
    int32_t k = at / co->RS, j = at % co->RS;
    pd_tcp_set_peer_timeout(cc->conn, PD_PEER_TIMEOUT_DEFAULT);
    co->cp_conn[at] = cc;
    co->cp_state[at] = CS_SEEDING;
    snprintf(co->cp_addr[at], PD_MAX_ADDR + 1, "%s", addr);
    cc->copy_of = at;
    pd_buf b;
    pd_buf_init(&b);
    co_put_reg_server(co, &b, k, (uint32_t)j);
    int rc = co_reply(cc, h, &b);
    pd_wipe(b.p, b.len);
    pd_buf_free(&b);
    /* (after the reply: the copy listens for its primary by then) */
    pd_buf_init(&b);
    pd_put_u32(&b, (uint32_t)j);
    pd_put_str(&b, addr);
    pd_hdr ah = {0};
    ah.type = PD_MSG_REPLICA_ADD;
    ah.id = ADD_ID_BASE + (uint64_t)at;
    if (co->cp_conn[at] == cc && co->server_conn[k] && !b.oom)
        pd_send_frame(co->server_conn[k]->conn, &ah, b.p, b.len, NULL, 0, NULL, 0, NULL);
    pd_buf_free(&b);
    return rc;
}

int co_on_replica_added(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pthread_mutex_lock(&co->mu);
    int32_t R = co->RS;
    uint64_t at = h->id - ADD_ID_BASE;
    if (h->id < ADD_ID_BASE || at >= (uint64_t)co->o.servers * (uint64_t)R ||
        cc->server != (int32_t)(at / (uint64_t)R) || !co->cp_conn[at] ||
        co->cp_state[at] != CS_SEEDING) {
        pthread_mutex_unlock(&co->mu);
        return 0; /* (a copy that left meanwhile) */
    }
    int32_t k = (int32_t)(at / (uint64_t)R), j = (int32_t)(at % (uint64_t)R);
    int moving = co->mv_slot == k && co->mv_state == MV_SEEDING && j == R - 1 &&
                 co->o.elastic;
    if (h->status) {
        char why[PD_MAX_ERRTEXT + 1];
        snprintf(why, sizeof why, "%.*s", (int)h->len, (const char *)cc->buf);
        pd_log(PD_LOG_ERROR, "copy %d of slot %d (%s) could not be seeded by its primary: "
               "%s", j, k, co->cp_addr[at], why);
        char msg[PD_MAX_ERRTEXT + 128];
        snprintf(msg, sizeof msg, "this copy of slot %d could not be seeded: %s", k, why);
        entry_free(co, (int32_t)at, msg);
        if (moving) co_move_failed(co, msg);
    } else {
        co->cp_state[at] = CS_LIVE;
        pd_log(PD_LOG_INFO, "copy %d of slot %d (%s) is live", j, k, co->cp_addr[at]);
        if (moving) co_move_handover(co);
        else check_ready(co);
        pthread_cond_broadcast(&co->cv);
    }
    pthread_mutex_unlock(&co->mu);
    return 0;
}

int co_on_replica_drop(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pd_rd r;
    uint32_t j = 0;
    char why[PD_ERRMSG_MAX] = "";
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_u32(&r, &j);
    pd_get_str(&r, why, sizeof why - 1);
    pthread_mutex_lock(&co->mu);
    int32_t k = cc->server, R = co->RS;
    if (!pd_rd_done(&r) || k < 0 || j == 0 || (int32_t)j >= R) {
        pthread_mutex_unlock(&co->mu);
        return co_reply_err(cc, h, PARAMD_EPROTO, "malformed REPLICA_DROP, or not from a "
                            "primary");
    }
    int32_t at = k * R + (int32_t)j;
    if (co->cp_conn[at]) {
        pd_log(PD_LOG_WARN, "slot %d's primary dropped copy %u (%s): %s", k, j,
               co->cp_addr[at], why);
        char msg[PD_ERRMSG_MAX + 64];
        snprintf(msg, sizeof msg, "the primary of slot %d dropped this copy: %s", k, why);
        entry_free(co, at, msg);
        co->copies_lost++;
        if (co->mv_slot == k && co->mv_state == MV_SEEDING && (int32_t)j == R - 1 &&
            co->o.elastic)
            co_move_failed(co, msg);
    }
    pthread_mutex_unlock(&co->mu);
    return co_reply(cc, h, NULL);
}

/* mu held: promote a live copy of slot k, whose primary was lost.  1 if
 * one was asked. */
static int promote(pd_coord *co, int32_t k) {
    int32_t R = co->RS;
    for (int32_t j = R - 1; j >= 1; j--) { /* (a shard moving in first) */
        int32_t at = k * R + j;
        if (co->cp_state[at] != CS_LIVE || !co->cp_conn[at]) continue;
        pd_hdr h = {0};
        h.type = PD_MSG_PROMOTE;
        h.id = PROMOTE_ID_BASE + (uint64_t)k;
        if (pd_send_frame(co->cp_conn[at]->conn, &h, NULL, 0, NULL, 0, NULL, 0, NULL) != 0)
            continue;
        co->sdown[k] = SD_PROMOTING;
        co->cp_promoting[k] = at;
        pthread_cond_broadcast(&co->cv);
        return 1;
    }
    return 0;
}

void co_primary_lost(pd_coord *co, int32_t k) {
    co->sdown_t0[k] = pd_now();
    int planned = co->mv_slot == k && co->mv_state == MV_HANDOVER;
    if (promote(co, k)) {
        if (!planned)
            pd_log(PD_LOG_WARN, "server %d (%s) lost; promoting its copy at %s", k,
                   co->server_addr[k], co->cp_addr[co->cp_promoting[k]]);
        return;
    }
    if (co->mv_slot == k) co_move_failed(co, "no live copy could take the slot");
    if (co->o.replace_ms > 0) {
        pd_log(PD_LOG_ERROR, "server %d (%s) lost with no live copy", k, co->server_addr[k]);
        co_server_down(co, k);
        return;
    }
    co->sdown[k] = SD_GONE;
    snprintf(co->sdown_why[k], sizeof co->sdown_why[k],
             "server %d was lost and no copy of its shard was live to take its place "
             "(--replicas %d)", k, co->o.replicas);
    pd_log(PD_LOG_ERROR, "%s", co->sdown_why[k]);
    pthread_cond_broadcast(&co->cv);
}

void co_copy_gone(pd_coord *co, co_conn *cc) {
    int32_t at = cc->copy_of, R = co->RS;
    if (at < 0 || co->cp_conn[at] != cc) return;
    int32_t k = at / R, j = at % R;
    int was_live = co->cp_state[at] == CS_LIVE;
    entry_free(co, at, NULL);
    if (co->stopping) return;
    co->copies_lost++;
    if (co->mv_slot == k && co->mv_state == MV_SEEDING && j == R - 1 && co->o.elastic)
        co_move_failed(co, "the standby's connection ended before it had the shard");
    pd_log(PD_LOG_WARN, "copy %d of slot %d (%s) disconnected%s", j, k, co->cp_addr[at],
           was_live ? "" : " before it was seeded");
    if (co->sdown[k] == SD_PROMOTING && co->cp_promoting[k] == at) {
        /* it went before it took the slot: another, or the slot is lost */
        co_primary_lost(co, k);
    }
}

int co_on_promoted(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pthread_mutex_lock(&co->mu);
    int32_t at = cc->copy_of, R = co->RS;
    int32_t k = at >= 0 ? at / R : -1;
    if (at < 0 || h->id != PROMOTE_ID_BASE + (uint64_t)k || co->sdown[k] != SD_PROMOTING ||
        co->cp_promoting[k] != at) {
        pthread_mutex_unlock(&co->mu);
        return 0;
    }
    if (h->status) {
        pd_log(PD_LOG_ERROR, "copy %d of slot %d refused its promotion: %.*s", at % R, k,
               (int)h->len, (const char *)cc->buf);
        entry_free(co, at, "this copy refused its promotion");
        co_primary_lost(co, k);
        pthread_mutex_unlock(&co->mu);
        return 0;
    }
    char old[PD_MAX_ADDR + 1];
    snprintf(old, sizeof old, "%s", co->server_addr[k]);
    snprintf(co->server_addr[k], PD_MAX_ADDR + 1, "%s", co->cp_addr[at]);
    co->cp_conn[at] = NULL;
    co->cp_state[at] = CS_NONE;
    cc->copy_of = -1;
    cc->server = k;
    co->server_conn[k] = cc;
    co->sseen_ms[k] = pd_now_ms();
    co->ssilent[k] = 0;
    co->sdown[k] = SD_UP;
    co->sepoch[k] = ++co->epoch;
    if (co->mv_slot == k && co->mv_state == MV_HANDOVER) {
        co_move_done(co, old);
    } else {
        co->promotions++;
        pd_log(PD_LOG_WARN, "server %d lost (%s): its copy at %s serves the slot after "
               "%.0f ms (map epoch %llu); no acknowledged update was lost", k, old,
               co->server_addr[k], (pd_now() - co->sdown_t0[k]) * 1000,
               (unsigned long long)co->epoch);
        if (co->mv_slot == k) co_move_failed(co, "its server was lost meanwhile");
    }
    /* The other copies may lack what this one had: seeded anew. */
    for (int32_t j = 1; j < R; j++)
        if (co->cp_conn[k * R + j]) {
            pd_log(PD_LOG_INFO, "copy %d of slot %d (%s) is stopped: the new primary seeds "
                   "new copies", j, k, co->cp_addr[k * R + j]);
            entry_free(co, k * R + j, "the slot's primary changed: a new copy is seeded "
                       "from the new one (start another paramd server)");
        }
    for (int32_t w = 0; w < co->o.max_workers; w++) co->wwait[w] = 0;
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    return 0;
}

void co_stop_copies(pd_coord *co, const char *why) {
    int32_t n = co->o.servers * co->RS;
    for (int32_t i = 0; co->cp_conn && i < n; i++) {
        co_conn *cc = co->cp_conn[i];
        if (!cc) continue;
        pd_buf b;
        pd_buf_init(&b);
        if (why) pd_put_str(&b, why);
        pd_hdr h = {0};
        h.type = PD_MSG_SHUTDOWN;
        if (!b.oom) pd_send_frame(cc->conn, &h, b.p, b.len, NULL, 0, NULL, 0, NULL);
        pd_buf_free(&b);
    }
}
