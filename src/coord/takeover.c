/*
 * takeover.c - a coordinator started again takes a running cluster back.
 *
 * The coordinator holds no parameters, and everything else it knows the
 * servers and workers know too.  So when it dies, servers keep serving and
 * workers keep training (what needs no coordinator: pushes, pulls, clocks)
 * for the rejoin window it announced (--rejoin-s: the REG_SERVER reply, the
 * worker's map), reconnecting to its address; a coordinator started again
 * there with the same options rebuilds its state from what they say:
 *
 *   SERVER_REJOIN  each server: its index, S, W, M, the grant key (so
 *                  that every rank ticket stays valid), its address, the
 *                  tables it holds (id, name, n, canonical spec), and per
 *                  rank the newest ticket incarnation it saw and whether
 *                  it was told the rank is gone.  Sent in parts (each up
 *                  to PD_MAX_CTRL_PAYLOAD, the header's clock 1 on the
 *                  last), answered once the last arrived.
 *   WORKER_REJOIN  each worker, on its request connection, whose HELLO
 *                  showed its ticket: its rank, the barriers it passed,
 *                  and the table it was creating, if any (id, name, n,
 *                  spec).  Answered once every server rejoined.
 *
 * The first SERVER_REJOIN makes this coordinator take a cluster back
 * (`takeover`): it adopts that server's grant key, and the others must
 * show the same one and the same S, W and M.  Once all S rejoined
 * (`whole_again`) each rank is settled from what they said: a rank some
 * server was told is gone is dead (and the servers that were not told are
 * told now); a rank whose worker a server saw is W_AWAY until that
 * worker rejoins (then W_LIVE) or falls silent for the heartbeat timeout
 * (then it is removed, as a dead worker is); a rank no server saw is W_NEW
 * (its worker may rejoin, or a new one take it).  An away rank counts for
 * barriers, and TABLE_OPEN waits until no rank is away, so that a table
 * whose creator has not rejoined yet is never handed out before its
 * initial values are written (the creator's rejoin makes it pending
 * again, and its TABLE_READY ends that).  Barriers: a worker's rejoin
 * says how many it passed, and the coordinator's count is the largest;
 * a BARRIER carries its number, and one already released is answered at
 * once.
 *
 * Everything here runs with the coordinator's mu, like workers.c.
 */
#include <stdio.h>
#include <string.h>

#include "coord/coord_impl.h"
#include "frame/auth.h"
#include "net/conn.h"
#include "wire/rejoin.h"

_Static_assert(PD_REJOIN_KEY_BYTES == sizeof(((pd_key *)0)->k) &&
                   PD_REJOIN_MAX_SPEC == PD_MAX_SPEC &&
                   PD_REJOIN_MAX_TABLES == PD_MAX_TABLES - 1 &&
                   PD_REJOIN_MAX_SLOTS == PD_MAX_WORKERS,
               "wire/rejoin.h's limits are the coordinator's");

/* A SERVER_REJOIN being read: what its parts said so far. */
typedef struct co_rejoin {
    pd_rejoin r;
} co_rejoin;

void co_rejoin_free(co_conn *cc) {
    co_rejoin *rj = cc->rj;
    if (!rj) return;
    pd_wipe(rj->r.key, sizeof rj->r.key);
    pd_rejoin_free(&rj->r);
    pd_free(rj);
    cc->rj = NULL;
}

/* mu held: the registry's entry for table id, made (and the ids before it
 * made as dropped entries) if the registry is shorter; NULL: no memory. */
static co_table *table_at(pd_coord *co, uint32_t id) {
    while (co->ntables < id) {
        if (co->ntables == co->tcap) {
            uint32_t cap = co->tcap ? co->tcap * 2 : 16;
            co_table *t = pd_realloc(co->tables, sizeof *t * cap);
            if (!t) return NULL;
            co->tables = t;
            co->tcap = cap;
        }
        co_table *t = &co->tables[co->ntables++];
        memset(t, 0, sizeof *t);
        t->dropped = 1;
    }
    return &co->tables[id - 1];
}

/* mu held: every server rejoined; settle each rank from what they said. */
static void settle(pd_coord *co) {
    int32_t W = co->o.workers, M = co->o.max_workers, S = co->o.servers;
    int64_t now = pd_now_ms();
    /* A worker that registered afresh while the servers were missing took
     * a rank from the states a fresh cluster starts with: if the servers
     * know that rank, its registration is refused (co_on_reg_worker). */
    for (co_conn *o = co->conns; o; o = o->next)
        if (o->rank >= 0 && !o->heartbeat &&
            (co->tk_gen[o->rank] || co->tk_gone[o->rank] || o->rank >= W))
            o->bumped = 1;
    int32_t members = 0, away = 0, dead = 0;
    for (int32_t r = 0; r < M; r++) {
        int gone = co->tk_gone[r] > 0;
        int st = co->wstate[r];
        int kept = (st == W_LIVE || st == W_JOINING) && !co->tk_gen[r] && !gone && r < W;
        if (!kept) {
            if (gone) st = !co->tk_gen[r] && r >= W ? W_FREE : W_DIED;
            else st = co->tk_gen[r] || r >= W ? W_AWAY : W_NEW;
            co->wstate[r] = st;
            co->wgen[r] = co->tk_gen[r];
        }
        co->wseen_ms[r] = now;
        members += st == W_NEW || st == W_LIVE || st == W_AWAY;
        away += st == W_AWAY;
        dead += st == W_DIED && co->tk_gen[r];
        if (gone && co->tk_gone[r] < S) {
            /* the old coordinator died while it told the servers: the
             * others are told now (it is idempotent where they knew) */
            for (int32_t i = 0; i < S; i++) {
                co_conn *sc = co->server_conn[i];
                if (!sc) continue;
                pd_hdr h = {0};
                uint8_t p[8] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16),
                                (uint8_t)(r >> 24), 1, 0, 0, 0};
                h.type = PD_MSG_WORKER_GONE;
                pd_send_frame(sc->conn, &h, p, 8, NULL, 0, NULL, 0, NULL);
            }
        }
    }
    co->nmembers = members;
    co->naway = away;
    co->whole_again = 1;
    /* Copies (copies.c) stopped with the lost coordinator: servers started
     * again become new ones, seeded while the cluster runs; nobody waits
     * for them. */
    co->copies_ready = 1;
    pd_log(PD_LOG_INFO, "took the cluster back: all %d servers rejoined after %.1f s, "
           "%u tables; %d worker%s to rejoin, %d gone before",
           S, pd_now() - co->takeover_t0, co->ntables, away, away == 1 ? "" : "s", dead);
}

/* mu held, released: server rj->idx of this very cluster, whose
 * connection to this coordinator broke (this coordinator did not restart),
 * comes back.  It is told of the workers that left or died meanwhile (it
 * missed their WORKER_GONE); nothing else happened without it (a join or
 * a checkpoint needs every server). */
static int reconnect(co_conn *cc, const pd_hdr *h, pd_rejoin *rj) {
    pd_coord *co = cc->co;
    uint32_t k = rj->idx;
    int rc = co_reply(cc, h, NULL); /* first: as in co_on_server_rejoin */
    if (rc) {
        pthread_mutex_unlock(&co->mu);
        co_rejoin_free(cc);
        return rc;
    }
    co_conn *old = co->server_conn[k];
    if (old) {
        /* Its broken connection's thread has not noticed yet: it is
         * detached here (its end then leaves the server alone), and what
         * its end would have failed fails now. */
        old->server = -1;
        if (co->joining) co->join_failed = 1;
        if (co->ck_busy) {
            co->ck_failed = 1;
            snprintf(co->ck_err, sizeof co->ck_err, "server %u's connection broke", k);
        }
    } else if (co->servers_lost > 0) {
        co->servers_lost--; /* counted when it broke: it was not lost after all */
    }
    pd_tcp_set_peer_timeout(cc->conn, PD_PEER_TIMEOUT_DEFAULT);
    co->server_conn[k] = cc;
    co->sseen_ms[k] = pd_now_ms();
    co->ssilent[k] = 0;
    cc->server = (int32_t)k;
    if (co->sdown[k] != SD_UP) { /* back before a replacement took its place */
        co->sdown[k] = SD_UP;
        pd_log(PD_LOG_INFO, "server %u came back before a replacement took its place: its "
               "slot is its own again", k);
        pthread_cond_broadcast(&co->cv);
    }
    int told = 0;
    for (int32_t r = 0; r < co->o.max_workers; r++) {
        int st = co->wstate[r];
        if ((st != W_DIED && st != W_LEFT) || rj->gone[r] || !rj->gen[r]) continue;
        pd_hdr g = {0};
        uint8_t p[8] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24),
                        (uint8_t)(st == W_LEFT), 0, 0, 0};
        g.type = PD_MSG_WORKER_GONE;
        pd_send_frame(cc->conn, &g, p, 8, NULL, 0, NULL, 0, NULL);
        told++;
    }
    pd_log(PD_LOG_INFO, "server %u reconnected from %s after its connection broke%s", k,
           rj->addr, told ? "; told of the workers gone meanwhile" : "");
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    co_rejoin_free(cc);
    return 0;
}

int co_on_server_rejoin(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    char msg[PD_ERRMSG_MAX];
    if (cc->role != PD_ROLE_SERVER || cc->server >= 0)
        return co_reply_err(cc, h, PARAMD_EPROTO, "SERVER_REJOIN from a connection that "
                            "is not an unregistered server");
    if (!cc->rj && !(cc->rj = pd_calloc(1, sizeof *cc->rj)))
        return co_reply_err(cc, h, PARAMD_ENOMEM, "out of memory");
    pd_rejoin *rj = &cc->rj->r;
    pd_err re = {0};
    if (pd_rejoin_read(rj, cc->buf, (size_t)h->len, &re) != 0) {
        co_rejoin_free(cc);
        co_reply_err(cc, h, re.code, re.msg);
        return re.code;
    }
    if (h->clock != 1) return 0; /* more parts follow; the last is answered */
    if (!rj->have_head) {
        co_rejoin_free(cc);
        co_reply_err(cc, h, PARAMD_EPROTO, "malformed SERVER_REJOIN: no head");
        return PARAMD_EPROTO;
    }
    int code = 0;
    pthread_mutex_lock(&co->mu);
    uint32_t k = rj->idx;
    if ((int32_t)rj->S == co->o.servers && (int32_t)rj->W == co->o.workers &&
        (int32_t)rj->M == co->o.max_workers && co->server_addr[k][0] &&
        (!co->server_conn[k] || pd_conn_peer_gone(co->server_conn[k]->conn)) &&
        (co->takeover || co->nservers > 0) &&
        co->sdown[k] != SD_RESTORING && /* (a replacement has its slot: replace.c) */
        memcmp(rj->key, co->grant.k, sizeof co->grant.k) == 0)
        return reconnect(cc, h, rj); /* (unlocks) */
    if (!co->takeover && k < (uint32_t)co->o.servers && co->sdown[k] == SD_RESTORING) {
        code = PARAMD_ECONFIG;
        snprintf(msg, sizeof msg, "server %u was lost, and a replacement is restoring its "
                 "shard from a checkpoint: its slot is taken", k);
    } else if (!co->takeover && co->nservers > 0) {
        code = PARAMD_ECONFIG;
        snprintf(msg, sizeof msg,
                 "this coordinator started a new cluster (%d server%s registered "
                 "afresh): a server of another cluster cannot rejoin it",
                 co->nservers, co->nservers == 1 ? "" : "s");
    } else if ((int32_t)rj->S != co->o.servers || (int32_t)rj->W != co->o.workers ||
               (int32_t)rj->M != co->o.max_workers) {
        code = PARAMD_ECONFIG;
        snprintf(msg, sizeof msg,
                 "server %u belongs to a cluster of --servers %u --workers %u "
                 "--max-workers %u, and this coordinator has --servers %d --workers %d "
                 "--max-workers %d: start it again with the options the cluster had",
                 k, rj->S, rj->W, rj->M, co->o.servers, co->o.workers, co->o.max_workers);
    } else if (co->takeover && memcmp(rj->key, co->grant.k, sizeof co->grant.k) != 0) {
        code = PARAMD_ECONFIG;
        snprintf(msg, sizeof msg,
                 "server %u is of another cluster than the servers that rejoined first "
                 "(its ticket key differs)", k);
    } else if (co->server_conn[k] || co->server_addr[k][0]) {
        code = PARAMD_ECONFIG;
        snprintf(msg, sizeof msg, "server %u rejoined already (from %s)", k,
                 co->server_addr[k]);
    }
    if (code) {
        pthread_mutex_unlock(&co->mu);
        co_rejoin_free(cc);
        co_reply_err(cc, h, code, msg);
        return code;
    }
    /* The answer goes first, under mu: once server_conn[k] is set, other
     * threads send this server frames (under mu: WORKER_GONE, a join's,
     * a checkpoint's), and the server must read its answer before any.
     * Nothing is taken from the rejoin unless the answer went. */
    int rc = co_reply(cc, h, NULL);
    if (rc) {
        pthread_mutex_unlock(&co->mu);
        co_rejoin_free(cc);
        return rc;
    }
    if (!co->takeover) {
        co->takeover = 1;
        co->takeover_t0 = pd_now();
        memcpy(co->grant.k, rj->key, sizeof co->grant.k);
        pd_log(PD_LOG_INFO, "taking a running cluster back: server %u rejoined from %s "
               "(%d servers, %d workers)", k, rj->addr, co->o.servers, co->o.workers);
    } else {
        pd_log(PD_LOG_DEBUG, "server %u rejoined from %s", k, rj->addr);
    }
    for (uint32_t i = 0; i < rj->nt; i++) {
        pd_rejoin_table *t = &rj->t[i];
        if ((int32_t)t->id > co->o.max_tables) continue;
        co_table *e = t->id <= co->ntables ? &co->tables[t->id - 1] : NULL;
        if (e && !e->dropped) {
            if (strcmp(e->name, t->name) != 0 || e->n != t->n || strcmp(e->spec, t->spec) != 0)
                pd_log(PD_LOG_WARN, "server %u holds table %u as '%s' (n=%llu, %s), another "
                       "server as '%s' (n=%llu, %s): keeping the first", k, t->id, t->name,
                       (unsigned long long)t->n, t->spec, e->name,
                       (unsigned long long)e->n, e->spec);
            continue;
        }
        if (!(e = table_at(co, t->id))) continue;
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", t->name);
        snprintf(e->spec, sizeof e->spec, "%s", t->spec);
        e->n = t->n;
        e->ready = 1;
    }
    for (uint32_t w = 0; w < rj->M; w++) {
        if (rj->gen[w] > co->tk_gen[w]) co->tk_gen[w] = rj->gen[w];
        co->tk_gone[w] += rj->gone[w];
    }
    pd_tcp_set_peer_timeout(cc->conn, PD_PEER_TIMEOUT_DEFAULT);
    snprintf(co->server_addr[k], PD_MAX_ADDR + 1, "%s", rj->addr);
    co_rejoin_free(cc);
    co->server_conn[k] = cc;
    co->sseen_ms[k] = pd_now_ms();
    cc->server = (int32_t)k;
    co->nservers++;
    co->rejoined++;
    if (co->rejoined == co->o.servers) {
        settle(co);
        /* every worker had left (the old coordinator died before it told
         * the servers to exit, or kept them with --persist): the cluster
         * ends now */
        co_end_if_empty(co);
    }
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    return 0;
}

void co_away_settled(pd_coord *co, int32_t rank) {
    (void)rank;
    co->naway--;
    pthread_cond_broadcast(&co->cv);
}

int co_takeover_wait(pd_coord *co, int64_t limit, char *why, size_t whylen) {
    int64_t end = limit > 0 ? pd_now_ms() + limit : INT64_MAX;
    while (co->takeover && (!co->whole_again || co->naway > 0) && !co->stopping) {
        int64_t left = end - pd_now_ms();
        if (left <= 0) {
            snprintf(why, whylen,
                     "waited %lld ms for the workers of the cluster this coordinator "
                     "took back to rejoin (%d still away)",
                     (long long)limit, co->naway);
            return PARAMD_ETIMEDOUT;
        }
        pd_cond_wait_ms(&co->cv, &co->mu, left > 1000 ? 1000 : left);
    }
    return 0;
}

int co_on_worker_rejoin(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    char msg[PD_ERRMSG_MAX], name[PD_MAX_NAME + 1] = "", spec[PD_MAX_SPEC + 1] = "";
    uint32_t rank = 0, creating = 0;
    uint64_t barriers = 0, n = 0;
    pd_rd r;
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_u32(&r, &rank);
    pd_get_u64(&r, &barriers);
    pd_get_u32(&r, &creating);
    if (creating) {
        pd_get_str(&r, name, PD_MAX_NAME);
        pd_get_u64(&r, &n);
        pd_get_str(&r, spec, PD_MAX_SPEC);
    }
    if (!pd_rd_done(&r) || cc->role != PD_ROLE_WORKER || cc->rank >= 0 ||
        creating >= PD_MAX_TABLES || h->clock < 0)
        return co_reply_err(cc, h, PARAMD_EPROTO, "malformed or repeated WORKER_REJOIN");
    if (!cc->hello.has_ticket || cc->hello.rank != (int32_t)rank)
        return co_reply_err(cc, h, PARAMD_EWORKER, "WORKER_REJOIN from a connection that "
                            "did not show that rank's ticket in its HELLO");
    pthread_mutex_lock(&co->mu);
    /* Until every server rejoined (or this turned out to be a new
     * cluster: all its servers registered afresh). */
    while (!co->whole_again && !(co->nservers == co->o.servers && !co->takeover) &&
           !co->stopping)
        pthread_cond_wait(&co->cv, &co->mu);
    int code = 0;
    int st = rank < (uint32_t)co->o.max_workers ? co->wstate[rank] : -1;
    uint32_t gen = cc->hello.ticket.gen;
    if (co->stopping) {
        code = PARAMD_ESHUTDOWN;
        snprintf(msg, sizeof msg, "%s", co_stop_reason(co, "the cluster is stopping"));
    } else if (st < 0 || !pd_ticket_ok(&co->grant, (int32_t)rank, &cc->hello.ticket)) {
        code = PARAMD_EWORKER;
        snprintf(msg, sizeof msg, "this coordinator did not take back the cluster rank "
                 "%u belonged to (it started a new one)", rank);
    } else if (st == W_DIED || st == W_LEFT) {
        /* (also a worker this coordinator removed, whose connections it
         * closed, and which tries again) */
        code = PARAMD_EWORKER;
        snprintf(msg, sizeof msg, "worker %u was removed from the cluster (it fell "
                 "silent or its connection broke, or a server was told it was gone): it "
                 "cannot rejoin", rank);
    } else if (!co->takeover) {
        code = PARAMD_EWORKER;
        snprintf(msg, sizeof msg, "this coordinator did not take back the cluster rank "
                 "%u belonged to (it started a new one)", rank);
    } else if (gen < co->wgen[rank] || st == W_JOINING ||
               (st == W_LIVE && gen != co->wgen[rank])) {
        code = PARAMD_EWORKER;
        snprintf(msg, sizeof msg, "rank %u was given to a newer worker (incarnation %u; "
                 "this one's is %u)", rank, co->wgen[rank], gen);
    }
    if (code) {
        pthread_mutex_unlock(&co->mu);
        return co_reply_err(cc, h, code, msg);
    }
    if (st == W_LIVE) {
        /* the same worker again (its first rejoin's connection broke):
         * that connection's end is no death */
        for (co_conn *o = co->conns; o; o = o->next)
            if (o != cc && o->rank == (int32_t)rank && !o->heartbeat) o->rank = -1;
    } else {
        if (st == W_AWAY) co_away_settled(co, (int32_t)rank);
        if (st == W_FREE) co->nmembers++;
        co->wstate[rank] = W_LIVE;
    }
    co->wgen[rank] = gen;
    cc->rank = (int32_t)rank;
    cc->gen = gen;
    co->wclock[rank] = h->clock;
    co->wseen_ms[rank] = pd_now_ms();
    if (barriers > co->barrier_gen) {
        /* it passed barriers that this coordinator's workers so far had
         * not: those waiting at an older one were released */
        co->barrier_gen = barriers;
        co->barrier_arrived = 0;
        memset(co->wbar, 0, (size_t)co->o.max_workers * sizeof *co->wbar);
    }
    if (creating && (int32_t)creating <= co->o.max_tables) {
        co_table *e = creating <= co->ntables ? &co->tables[creating - 1] : NULL;
        if (e && !e->dropped && strcmp(e->name, name) != 0) {
            pd_log(PD_LOG_WARN, "worker %u says it creates table %u '%s', which the "
                   "servers hold as '%s': ignored", rank, creating, name, e->name);
        } else if ((e = e ? e : table_at(co, creating))) {
            if (e->dropped || !e->name[0]) {
                memset(e, 0, sizeof *e);
                snprintf(e->name, sizeof e->name, "%s", name);
                snprintf(e->spec, sizeof e->spec, "%s", spec);
                e->n = n;
            }
            e->dropped = 0;
            e->ready = 0;
            e->creator = cc;
        }
    }
    co_barrier_check(co);
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    pd_log(PD_LOG_INFO, "worker %u rejoined at clock %lld%s", rank, (long long)h->clock,
           creating ? " (creating a table)" : "");
    return co_reply(cc, h, NULL);
}
