/*
 * replace.c - a lost server replaced: a new server restores only the lost
 * shard from the newest checkpoint while the others keep theirs, and the
 * workers wait for it, then go on (docs/durability.md, "When a server
 * dies: partial recovery").
 *
 * With --replace-s T (replace_ms), when a server's connection ends while
 * the cluster runs, its slot is SD_LOST for up to T: the coordinator waits
 * for a `paramd server` that registers with it and takes the slot.  It
 * can only if a complete checkpoint holds every table of the registry
 * (the newest this coordinator completed, or the one it was restored
 * from); if none does, the slot is SD_GONE at once, with the reason, as
 * is a slot whose wait ended.
 *
 * Each worker whose request to the lost server failed says so at once in
 * a heartbeat (the servers whose links broke, its clock in the header),
 * and asks SERVER_WAIT once the rest of that request is answered; it is
 * held there.  A worker counts as waiting from the first of the two (its
 * request may be held meanwhile on a surviving server, by a sync clock
 * that waits for another worker's push, which waits for the
 * replacement), or while any request of its is held here (a barrier, a
 * table another worker is creating).  The replacement's REG_SERVER (the slot
 * is SD_RESTORING) is held until every worker in the cluster waits: then
 * nobody has a push on its way to any server, and the clock the new shard
 * goes on at is decided once:
 *
 *   A = max(the checkpoint's clock, the largest clock a waiting worker
 *           reported, plus one for a worker that said so only in a
 *           heartbeat or waits for another lost slot: it may still
 *           finish the request it was making).
 *
 * A sync or ssp worker that waits at clock c has pushed for every clock
 * below c (the lost server may have taken some of those pushes and
 * applied them, or not); so clocks below A are never awaited on the new
 * shard again (pushes for them that a worker sends again are dropped,
 * as a backup worker's late push is), a pull at any clock up to A is
 * answered at once, and every worker's next push, for its clock >= its
 * c, is taken.  What the shard lost: its updates of the clocks from the
 * checkpoint's to A, logged in one line.  The survivors keep their state.
 *
 * The reply names the checkpoint to restore from, A, and which worker
 * slots are members (a replacement never saw the departures and joins).
 * The server restores its shard, sets its clocks and says SERVER_READY:
 * the slot is up again, the map's epoch goes up, and the waiting workers
 * get the new address, reconnect and send again what the lost server had
 * not answered.  A replacement that disconnects before it is ready puts
 * the slot back to SD_LOST (the wait's end stays where it was).
 *
 * Everything here runs on connection threads, under mu.
 */
#include <stdio.h>
#include <string.h>

#include "coord/coord_impl.h"

#define REP_LOG_MS 5000 /* a held replacement names whom it waits for */

/* mu held: the checkpoint a replacement restores from, into dir; its
 * clock; 0 if there is none (why says so). */
static int rep_source(const pd_coord *co, char *dir, size_t len, int64_t *clock,
                      char *why, size_t wlen) {
    if (co->ck_base > 0 && co->o.checkpoint_dir) {
        snprintf(dir, len, "%s/ckpt-%06llu", co->o.checkpoint_dir,
                 (unsigned long long)co->ck_base);
        *clock = co->ck_last_clock;
    } else if (co->o.restore) {
        snprintf(dir, len, "%s", co->o.restore);
        *clock = co->restore_clock;
    } else {
        snprintf(why, wlen, "no checkpoint has completed yet to restore its shard from "
                 "(%s)", co->o.checkpoint_dir ? "the first is still to come: "
                 "--checkpoint-every, --checkpoint-every-clocks or paramd checkpoint"
                 : "this coordinator has no --checkpoint-dir");
        return 0;
    }
    for (uint32_t i = co->ck_ntables; i < co->ntables; i++)
        if (co->tables[i].ready && !co->tables[i].dropped) {
            snprintf(why, wlen, "table '%s' was created after the newest checkpoint (%s), "
                     "which cannot restore it", co->tables[i].name, dir);
            return 0;
        }
    return 1;
}

void co_server_down(pd_coord *co, int32_t k) {
    if (co->o.replace_ms <= 0 || co->stopping) return;
    char dir[4200], why[PD_ERRMSG_MAX];
    int64_t C = 0;
    co->sdown_t0[k] = pd_now();
    if (co->sdown[k] == SD_RESTORING) { /* its replacement went too */
        co->sdown[k] = SD_LOST;
        pd_log(PD_LOG_WARN, "the replacement of server %d disconnected before its shard "
               "was restored; still waiting for one", k);
        pthread_cond_broadcast(&co->cv);
        return;
    }
    if (!rep_source(co, dir, sizeof dir, &C, why, sizeof why)) {
        co->sdown[k] = SD_GONE;
        snprintf(co->sdown_why[k], sizeof co->sdown_why[k],
                 "server %d was lost and cannot be replaced: %s", k, why);
        pd_log(PD_LOG_ERROR, "%s", co->sdown_why[k]);
        pthread_cond_broadcast(&co->cv);
        return;
    }
    co->sdown[k] = SD_LOST;
    co->sdown_until[k] = pd_now_ms() + co->o.replace_ms;
    pd_log(PD_LOG_WARN, "server %d (%s) lost; waiting up to %.0f s (--replace-s) for a "
           "replacement (paramd server --coordinator %s) to restore its shard from %s "
           "(clock %lld); the workers wait, the other servers keep their state",
           k, co->server_addr[k], co->o.replace_ms / 1000.0, co->bound, dir, (long long)C);
    pthread_cond_broadcast(&co->cv);
}

int32_t co_replace_slot(const pd_coord *co) {
    if (!co->sdown) return -1;
    for (int32_t k = 0; k < co->o.servers; k++)
        if (co->sdown[k] == SD_LOST) return k;
    return -1;
}

/* mu held: the wait for slot k's replacement has ended (SD_LOST past its
 * deadline): the slot is gone for good.  1 if it just ended. */
static int rep_expired(pd_coord *co, int32_t k) {
    if (co->sdown[k] != SD_LOST || pd_now_ms() < co->sdown_until[k]) return 0;
    co->sdown[k] = SD_GONE;
    snprintf(co->sdown_why[k], sizeof co->sdown_why[k],
             "server %d was lost and no replacement registered within %.0f s "
             "(--replace-s)", k, co->o.replace_ms / 1000.0);
    pd_log(PD_LOG_ERROR, "%s", co->sdown_why[k]);
    pthread_cond_broadcast(&co->cv);
    return 1;
}

/* mu held: whether worker w is held by this coordinator, a request of its
 * being answered: 0 no; 1 a SERVER_WAIT for another slot than k (the
 * request it retries may yet complete, if slot k's lost server had
 * answered its part: then it goes on one clock further); 2 a SERVER_WAIT
 * for slot k, or another request (a barrier, a table being created): its
 * clock is the one that request carries until it is answered. */
static int held_here(const pd_coord *co, int32_t w, int32_t k) {
    int held = 0;
    for (const co_conn *cc = co->conns; cc; cc = cc->next)
        if (cc->rank == w && !cc->heartbeat && cc->in_call && cc->gen == co->wgen[w]) {
            int h = cc->wait_slot < 0 || cc->wait_slot == k ? 2 : 1;
            if (h > held) held = h;
        }
    return held;
}

/* mu held: workers of the cluster that neither said they wait for a
 * replacement nor are held by this coordinator, named into who; how many. */
static int not_waiting(const pd_coord *co, char *who, size_t len) {
    int n = 0;
    size_t off = 0;
    who[0] = '\0';
    for (int32_t w = 0; w < co->o.max_workers; w++) {
        int st = co->wstate[w];
        if (st != W_NEW && st != W_LIVE && st != W_AWAY) continue;
        if (co->wwait[w] || held_here(co, w, -1)) continue;
        if (off < len)
            off += (size_t)snprintf(who + off, len - off, "%s%d", n ? ", " : "", w);
        n++;
    }
    return n;
}

int co_reg_replacement(co_conn *cc, const pd_hdr *h, int32_t k, const char *addr) {
    pd_coord *co = cc->co;
    co->sdown[k] = SD_RESTORING;
    pd_tcp_set_peer_timeout(cc->conn, PD_PEER_TIMEOUT_DEFAULT);
    co->server_conn[k] = cc;
    cc->server = k;
    co->sseen_ms[k] = pd_now_ms();
    pd_log(PD_LOG_INFO, "server %d: a replacement registered from %s; it restores the "
           "shard once every worker waits for it", k, addr);
    pthread_cond_broadcast(&co->cv);
    char who[256], why[PD_ERRMSG_MAX] = "";
    int64_t next_log = pd_now_ms() + REP_LOG_MS;
    while (!co->stopping && co->sdown[k] == SD_RESTORING && not_waiting(co, who, sizeof who)) {
        int64_t now = pd_now_ms();
        if (now >= co->sdown_until[k]) {
            snprintf(why, sizeof why, "server %d's replacement: workers %s did not stop "
                     "for it within --replace-s (they neither wait for server %d nor for "
                     "this coordinator)", k, who, k);
            break;
        }
        if (now >= next_log) {
            pd_log(PD_LOG_INFO, "server %d's replacement waits for workers %s to wait for "
                   "it", k, who);
            next_log = now + REP_LOG_MS;
        }
        int64_t until = co->sdown_until[k] < next_log ? co->sdown_until[k] : next_log;
        pd_cond_wait_ms(&co->cv, &co->mu, (int)(until - now));
    }
    if (!why[0] && (co->stopping || co->sdown[k] != SD_RESTORING))
        snprintf(why, sizeof why, "%s", co_stop_reason(co, "the slot is no longer waiting "
                                                           "for a replacement"));
    if (why[0]) {
        if (co->sdown[k] == SD_RESTORING) {
            co->sdown[k] = SD_GONE;
            snprintf(co->sdown_why[k], sizeof co->sdown_why[k], "%s", why);
            pd_log(PD_LOG_ERROR, "%s", why);
        }
        co->server_conn[k] = NULL;
        cc->server = -1;
        pthread_cond_broadcast(&co->cv);
        pthread_mutex_unlock(&co->mu);
        return co_reply_err(cc, h, PARAMD_ECONFIG, why);
    }
    char dir[4200];
    int64_t C = 0;
    rep_source(co, dir, sizeof dir, &C, why, sizeof why);
    /* A worker held here for slot k (or at a barrier) is at the clock its
     * request carries; one that only said in a heartbeat that it lost a
     * link, or waits for another lost slot, may still finish the request
     * it was making if this slot's lost server had answered its part
     * before dying, and so be one clock further. */
    int64_t A = C;
    for (int32_t w = 0; w < co->o.max_workers; w++) {
        int st = co->wstate[w];
        if (st != W_LIVE && st != W_AWAY) continue;
        int64_t a = co->wclock[w] + (held_here(co, w, k) == 2 ? 0 : 1);
        if (a > A) A = a;
    }
    co->srep_clock[k] = A;
    co->srep_from[k] = C;
    snprintf(co->server_addr[k], PD_MAX_ADDR + 1, "%s", addr);
    pd_buf b;
    pd_buf_init(&b);
    co_put_reg_server(co, &b, k, 0);
    /* What a replacement gets: the checkpoint, its clock, the clock to go
     * on at, and a byte per worker slot: 1 if it is in the cluster. */
    pd_put_str(&b, dir);
    pd_put_u64(&b, (uint64_t)C);
    pd_put_u64(&b, (uint64_t)A);
    for (int32_t w = 0; w < co->o.max_workers; w++) {
        int st = co->wstate[w];
        uint8_t in = st == W_NEW || st == W_LIVE || st == W_AWAY;
        pd_put_bytes(&b, &in, 1);
    }
    /* (under mu: before any frame another thread sends server_conn[k]) */
    int rc = co_reply(cc, h, &b);
    pthread_mutex_unlock(&co->mu);
    pd_wipe(b.p, b.len);
    pd_buf_free(&b);
    return rc;
}

int co_on_server_ready(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pthread_mutex_lock(&co->mu);
    int32_t k = cc->server;
    if (k < 0 || !co->sdown || co->sdown[k] != SD_RESTORING || h->len != 0) {
        pthread_mutex_unlock(&co->mu);
        return co_reply_err(cc, h, PARAMD_EPROTO, "SERVER_READY from a server that is "
                            "not restoring a lost shard");
    }
    /* The answer goes first, under mu: once the slot is up a checkpoint
     * may send this server CKPT_HOLD (under mu), and the server reads its
     * answer before anything else. */
    int rc = co_reply(cc, h, NULL);
    if (rc) {
        pthread_mutex_unlock(&co->mu);
        return rc; /* (its connection ends: the slot waits for another) */
    }
    co->sdown[k] = SD_UP;
    co->sepoch[k] = ++co->epoch;
    co->servers_replaced++;
    co->ck_full_next = 1;
    char dir[4200], why[PD_ERRMSG_MAX];
    int64_t C = 0;
    rep_source(co, dir, sizeof dir, &C, why, sizeof why);
    C = co->srep_from[k];
    int64_t A = co->srep_clock[k];
    pd_log(PD_LOG_WARN, "server %d replaced by %s after %.1f s: its shard was restored "
           "from %s (clock %lld) and goes on at clock %lld, so it lost %lld clocks of "
           "updates (%lld..%lld); the other servers kept theirs", k, co->server_addr[k],
           pd_now() - co->sdown_t0[k], dir, (long long)C, (long long)A,
           (long long)(A - C), (long long)C, (long long)A);
    for (int32_t w = 0; w < co->o.max_workers; w++) co->wwait[w] = 0;
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    return 0;
}

void co_worker_lost(pd_coord *co, int32_t rank, uint64_t lost) {
    for (int32_t k = 0; lost && k < co->o.servers && k < 64; k++)
        if ((lost >> k & 1) && co->sdown[k] != SD_UP && co->sdown[k] != SD_GONE &&
            !co->wwait[rank]) {
            co->wwait[rank] = 1;
            pthread_cond_broadcast(&co->cv);
        }
}

int co_on_server_wait(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pd_rd r;
    uint32_t k;
    uint64_t epoch; /* the map epoch its link to server k is from */
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_u32(&r, &k);
    pd_get_u64(&r, &epoch);
    if (!pd_rd_done(&r) || cc->rank < 0 || cc->heartbeat || k >= (uint32_t)co->o.servers)
        return co_reply_err(cc, h, PARAMD_EPROTO, "malformed SERVER_WAIT, or not from a "
                            "registered worker");
    pthread_mutex_lock(&co->mu);
    cc->wait_slot = (int32_t)k;
    char why[PD_ERRMSG_MAX] = "";
    int rc = 0;
    /* The worker may see its link break before this coordinator sees the
     * server's: give the server's own connection this long to end too. */
    int64_t notice_until = pd_now_ms() + 2 * PD_PEER_TIMEOUT_DEFAULT;
    int saw_down = 0;
    for (;;) {
        if (co->stopping) {
            snprintf(why, sizeof why, "%s", co_stop_reason(co, "the cluster is stopping"));
            rc = PARAMD_ESHUTDOWN;
            break;
        }
        int st = co->sdown[k];
        if (st == SD_GONE) {
            snprintf(why, sizeof why, "%s", co->sdown_why[k]);
            rc = PARAMD_ECONFIG; /* (not ECLOSED: the worker would take it for us lost) */
            break;
        }
        if (st == SD_UP && co->sepoch[k] > epoch) break; /* replaced since */
        if (st == SD_UP && saw_down) { /* its own server came back (takeover.c) */
            snprintf(why, sizeof why, "server %d's connection to the coordinator broke and "
                     "came back; this worker's broke too, and what it sent there may have "
                     "been applied: its request is not sent again", k);
            rc = PARAMD_ECONFIG;
            break;
        }
        if (st != SD_UP) saw_down = 1;
        if (st == SD_UP && pd_now_ms() >= notice_until) {
            snprintf(why, sizeof why, "the connection to server %d broke, but the "
                     "coordinator still has it", k);
            rc = PARAMD_ECONFIG;
            break;
        }
        if (st == SD_LOST && rep_expired(co, (int32_t)k)) continue;
        co->wwait[cc->rank] = 1;
        pthread_cond_broadcast(&co->cv);
        int64_t now = pd_now_ms(), until = st == SD_UP ? notice_until : co->sdown_until[k];
        if (st == SD_RESTORING || st == SD_PROMOTING) until = now + 1000; /* its own
                                                                           * wait ends it */
        pd_cond_wait_ms(&co->cv, &co->mu, (int)(until > now ? until - now : 1));
    }
    co->wwait[cc->rank] = 0;
    cc->wait_slot = -1;
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u64(&b, co->epoch);
    pd_put_str(&b, co->server_addr[k]);
    pthread_mutex_unlock(&co->mu);
    if (rc) {
        pd_buf_free(&b);
        return co_reply_err(cc, h, rc, why);
    }
    rc = co_reply(cc, h, &b);
    pd_buf_free(&b);
    return rc;
}
