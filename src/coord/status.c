/*
 * status.c - what the coordinator tells operators: the STATUS reply that
 * `paramd status` reads, its Prometheus text (--metrics), and the waits
 * it holds (a barrier, a join, a table being created), which log whom
 * they wait for once they last a few seconds and again at a growing
 * interval (wire/status.h), and end with PARAMD_ETIMEDOUT and that same
 * line once they last the waiting worker's deadline (its op_timeout_ms,
 * sent in HELLO), if it gave one.  Everything here reads the cluster's state
 * under mu; nothing changes it.
 *
 * STATUS reply: lines of words (wire/status.h), in this order:
 *   cluster 0 servers S workers W slots M epoch E registered R members N
 *           departed D died X barriers B barrier_arrived A uptime_ms U
 *           metrics ADDR|-
 *   server K address A connected 0|1 silent_ms S slot up|lost|restoring|gone
 *          (one per server; S: how long a silent server has been so, else
 *          0; slot: lost, waiting for a replacement; restoring, one is
 *          restoring its shard; gone, lost for good: replace.c)
 *   worker R state new|live|joining|left|died|free clock C seen_ms_ago T
 *          host H start J at_barrier 0|1                  (one per slot)
 *   table ID name NAME n N ready 0|1 spec SPEC            (one per table)
 *   wait barrier ... | wait table ...                     (waits held now)
 * docs/operations.md describes the fields.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "coord/coord_impl.h"
#include "metrics/prom.h"
#include "wire/status.h"

static const char *const state_names[] = {
    [W_NEW] = "new", [W_LIVE] = "live", [W_LEFT] = "left",
    [W_DIED] = "died", [W_FREE] = "free", [W_JOINING] = "joining",
    [W_AWAY] = "away"};

/* A server slot's state (replace.c). */
static const char *const slot_names[] = {
    [SD_UP] = "up", [SD_LOST] = "lost", [SD_RESTORING] = "restoring", [SD_GONE] = "gone",
    [SD_PROMOTING] = "promoting"};

/* ==== Waits ============================================================= */

/* mu held: the workers barrier `gen` waits for, up to max into out (NULL:
 * count only); the number of them. */
static int barrier_missing(pd_coord *co, uint64_t gen, pd_wait *out, int max) {
    int n = 0;
    int64_t now = pd_now_ms();
    for (int32_t r = 0; r < co->o.max_workers; r++) {
        int st = co->wstate[r];
        if ((st != W_NEW && st != W_LIVE && st != W_AWAY) || co->wbar[r] == gen + 1)
            continue;
        if (out && n < max) {
            pd_wait *w = &out[n];
            memset(w, 0, sizeof *w);
            w->kind = PD_WAIT_BARRIER;
            w->clock = (int64_t)gen;
            w->worker = r;
            w->server = -1;
            w->last_clock = st == W_NEW ? -1 : co->wclock[r];
            w->ago_ms = st == W_NEW ? -1 : now - co->wseen_ms[r];
            w->waiting_ms = now - co->bar_since;
        }
        n++;
    }
    return n;
}

/* A realtime deadline ms from now, for pthread_cond_timedwait on co->cv
 * (a default, realtime condition variable, as the monitor's). */
static struct timespec deadline_in(int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}

/* How long to sleep before the next thing a wait must do: log at
 * t0 + next (ms into the wait, on the monotonic clock), or give up at
 * t0 + limit (limit > 0).  Sets *deadline when giving up comes first. */
static int64_t sleep_for(int64_t t0, int64_t next, int64_t limit, int *deadline) {
    int64_t at = t0 + next;
    *deadline = limit > 0 && t0 + limit <= at;
    if (*deadline) at = t0 + limit;
    int64_t left = at - pd_now_ms();
    return left > 0 ? left : 0;
}

/* The text a deadline's error carries: the wait's line and what ended it. */
static int gave_up(const char *line, const char *what, int64_t limit, char *why, size_t len) {
    snprintf(why, len, "%s; the %s gave up after %lld ms (op_timeout_ms)", line, what,
             (long long)limit);
    return PARAMD_ETIMEDOUT;
}

/* mu held: the line of barrier gen's wait, as logged; 0 if it waits for
 * nobody (about to be released). */
static int barrier_line(pd_coord *co, uint64_t gen, char *line, size_t len) {
    pd_wait w;
    int n = barrier_missing(co, gen, &w, 1);
    if (n <= 0) return 0;
    w.others = n - 1;
    pd_wait_format(&w, line, len);
    return 1;
}

int co_barrier_wait(pd_coord *co, uint64_t gen, int64_t limit, char *why, size_t whylen) {
    int64_t t0 = pd_now_ms();
    if (co->barrier_arrived == 1) co->bar_since = t0, co->bar_log_mark = 0;
    t0++; /* the deadline's start, rounded up: it never ends early */
    while (co->barrier_gen == gen && !co->stopping) {
        int64_t next = pd_wait_next_log(co->bar_log_mark);
        int deadline;
        /* the log's timer runs from the barrier's first arrival, the
         * deadline from this worker's */
        int64_t left = sleep_for(co->bar_since, next, limit > 0 ? t0 + limit - co->bar_since : 0,
                                 &deadline);
        struct timespec ts = deadline_in(left);
        pthread_cond_timedwait(&co->cv, &co->mu, &ts);
        if (co->barrier_gen != gen || co->stopping) break;
        if (deadline && pd_now_ms() - t0 >= limit) {
            char line[512];
            if (!barrier_line(co, gen, line, sizeof line))
                snprintf(line, sizeof line, "barrier %llu", (unsigned long long)gen);
            return gave_up(line, "barrier", limit, why, whylen);
        }
        if (pd_now_ms() - co->bar_since < next || co->bar_log_mark >= next) continue;
        co->bar_log_mark = next; /* one line per interval, whoever logs it */
        char line[512];
        if (barrier_line(co, gen, line, sizeof line))
            pd_log(PD_LOG_WARN, "%s; %d of %d workers arrived %.0f s ago", line,
                   co->barrier_arrived, co->nmembers,
                   (double)(pd_now_ms() - co->bar_since) / 1000);
    }
    return 0;
}

/* mu held: the line of the join of rank, as logged. */
static void join_line(pd_coord *co, int32_t rank, char *line, size_t len) {
    /* Which servers answered is not kept: name how many are missing. */
    pd_wait w = {0};
    w.kind = PD_WAIT_JOIN;
    w.clock = rank;
    w.worker = -1;
    w.server = -1;
    w.others = co->o.servers - co->join_replies - 1;
    pd_wait_format(&w, line, len);
}

int co_join_wait(pd_coord *co, int32_t rank, int64_t limit, char *why, size_t whylen) {
    int64_t t0 = pd_now_ms() + 1, mark = 0; /* rounded up: a deadline never ends early */
    while (co->join_replies < co->o.servers && !co->join_failed && !co->stopping) {
        int64_t next = pd_wait_next_log(mark);
        int deadline;
        struct timespec ts = deadline_in(sleep_for(t0, next, limit, &deadline));
        pthread_cond_timedwait(&co->cv, &co->mu, &ts);
        if (co->join_replies >= co->o.servers || co->join_failed || co->stopping) break;
        char line[512];
        if (deadline && pd_now_ms() - t0 >= limit) {
            join_line(co, rank, line, sizeof line);
            return gave_up(line, "join", limit, why, whylen);
        }
        if (pd_now_ms() - t0 < next) continue;
        mark = next;
        join_line(co, rank, line, sizeof line);
        pd_log(PD_LOG_WARN, "%s (%d of %d answered in %.0f s)", line, co->join_replies,
               co->o.servers, (double)(pd_now_ms() - t0) / 1000);
    }
    return 0;
}

/* mu held: the line of the wait for table id, as logged. */
static void table_line(pd_coord *co, uint32_t id, char *line, size_t len) {
    co_table *t = &co->tables[id - 1];
    co_conn *cr = t->creator;
    pd_wait w = {0};
    w.kind = PD_WAIT_TABLE;
    snprintf(w.table, sizeof w.table, "%s", t->name);
    w.worker = cr ? cr->rank : -1;
    w.ago_ms = cr && cr->rank >= 0 ? pd_now_ms() - co->wseen_ms[cr->rank] : -1;
    pd_wait_format(&w, line, len);
}

int co_table_wait(pd_coord *co, uint32_t id, int64_t limit, char *why, size_t whylen) {
    int64_t t0 = pd_now_ms() + 1, mark = 0; /* rounded up: a deadline never ends early */
    while (!co->tables[id - 1].ready && !co->tables[id - 1].dropped && !co->stopping) {
        int64_t next = pd_wait_next_log(mark);
        int deadline;
        struct timespec ts = deadline_in(sleep_for(t0, next, limit, &deadline));
        pthread_cond_timedwait(&co->cv, &co->mu, &ts);
        co_table *t = &co->tables[id - 1];
        if (t->ready || t->dropped || co->stopping) break;
        char line[512];
        if (deadline && pd_now_ms() - t0 >= limit) {
            table_line(co, id, line, sizeof line);
            return gave_up(line, "open", limit, why, whylen);
        }
        if (pd_now_ms() - t0 < next) continue;
        mark = next;
        table_line(co, id, line, sizeof line);
        pd_log(PD_LOG_WARN, "%s", line);
    }
    return 0;
}

/* ==== STATUS ============================================================ */

int co_on_status(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pd_buf b;
    pd_buf_init(&b);
    char line[2048], esc[3 * (PD_MAX_SPEC + 1)];
#define LINE(...)                                                              \
    do {                                                                       \
        int n_ = snprintf(line, sizeof line, __VA_ARGS__);                     \
        if (n_ > 0) pd_put_bytes(&b, line, (size_t)n_ < sizeof line ? (size_t)n_ : sizeof line - 1); \
    } while (0)
    const char *maddr = pd_coord_metrics_address(co);
    pthread_mutex_lock(&co->mu);
    int64_t now = pd_now_ms();
    LINE("cluster 0 servers %d workers %d slots %d epoch %llu registered %d members %d "
         "departed %d died %d barriers %llu barrier_arrived %d uptime_ms %lld metrics %s\n",
         co->o.servers, co->o.workers, co->o.max_workers, (unsigned long long)co->epoch,
         co->nservers, co->nmembers, co->departed, co->died,
         (unsigned long long)co->barrier_gen, co->barrier_arrived,
         (long long)((pd_now() - co->started) * 1000), maddr ? maddr : "-");
    int64_t now_ms = pd_now_ms();
    for (int32_t k = 0; k < co->o.servers; k++)
        LINE("server %d address %s connected %d silent_ms %lld slot %s\n", k,
             k < co->nservers && co->server_addr[k][0] ? co->server_addr[k] : "-",
             co->server_conn[k] != NULL,
             co->ssilent[k] ? (long long)(now_ms - co->sseen_ms[k]) : 0LL,
             slot_names[co->sdown[k]]);
    /* Replicated shards (copies.c): one line per copy entry in use; a
     * shard moving to a standby (moves.c) is its last entry. */
    for (int32_t i = 0; co->RS > 1 && i < co->o.servers * co->RS; i++)
        if (co->cp_conn[i])
            LINE("copy %d of %d address %s state %s\n", i % co->RS, i / co->RS,
                 co->cp_addr[i],
                 co->o.elastic && i % co->RS == co->RS - 1 ? "moving-in"
                                                           : co_copy_state_name(co->cp_state[i]));
    for (int32_t i = 0; i < co->nstandby; i++)
        LINE("standby %d address %s\n", i, co->standby_addr[i]);
    for (int32_t r = 0; r < co->o.max_workers; r++) {
        int st = co->wstate[r];
        const char *host = "-";
        for (co_conn *c = co->conns; c; c = c->next)
            if (c->rank == r && !c->heartbeat && c->gen == co->wgen[r]) host = c->conn->peer;
        int seen = st == W_LIVE || st == W_LEFT || st == W_DIED || st == W_JOINING ||
                   st == W_AWAY;
        LINE("worker %d state %s clock %lld seen_ms_ago %lld host %s start %lld "
             "at_barrier %d\n",
             r, state_names[st], (long long)co->wclock[r],
             (long long)(seen ? now - co->wseen_ms[r] : -1), host,
             (long long)(co->wstart[r] >= 0 ? co->wstart[r] : 0),
             co->barrier_arrived > 0 && co->wbar[r] == co->barrier_gen + 1);
    }
    for (uint32_t i = 0; i < co->ntables; i++) {
        co_table *t = &co->tables[i];
        if (t->dropped) continue;
        char name[3 * (PD_MAX_NAME + 1)];
        pd_kv_escape(t->name, name, sizeof name);
        pd_kv_escape(t->spec, esc, sizeof esc);
        LINE("table %u name %s n %llu ready %d spec %s\n", i + 1, name,
             (unsigned long long)t->n, t->ready, esc);
    }
    if (co->barrier_arrived > 0) {
        pd_wait ws[64];
        int n = barrier_missing(co, co->barrier_gen, ws, 64);
        for (int i = 0; i < n && i < 64; i++) {
            if (i == 63 && n > 64) ws[i].others = n - 64;
            pd_wait_kv(&ws[i], line, sizeof line - 1);
            strcat(line, "\n");
            pd_put_bytes(&b, line, strlen(line));
        }
    }
    pthread_mutex_unlock(&co->mu);
#undef LINE
    if (b.len > PD_MAX_CTRL_PAYLOAD) b.len = PD_MAX_CTRL_PAYLOAD; /* a huge cluster: cut */
    int rc = co_reply(cc, h, &b);
    pd_buf_free(&b);
    return rc;
}

/* ==== Metrics =========================================================== */

void co_metrics_render(void *coord, pd_buf *b) {
    pd_coord *co = coord;
    char lab[128];
    pthread_mutex_lock(&co->mu);
    int32_t M = co->o.max_workers;
    pd_prom_family(b, "paramd_coordinator_up", PD_PROM_GAUGE, "1: the coordinator is running");
    lab[0] = '\0';
    pd_prom_label(lab, sizeof lab, "address", co->bound);
    pd_prom_sample(b, "paramd_coordinator_up", lab, 1);
    pd_prom_family(b, "paramd_coordinator_uptime_seconds", PD_PROM_GAUGE,
                   "seconds since the coordinator started");
    pd_prom_sample(b, "paramd_coordinator_uptime_seconds", "", pd_now() - co->started);
    pd_prom_family(b, "paramd_servers_registered", PD_PROM_GAUGE, "servers registered, of --servers");
    pd_prom_sample(b, "paramd_servers_registered", "", co->nservers);
    pd_prom_family(b, "paramd_servers_expected", PD_PROM_GAUGE, "--servers");
    pd_prom_sample(b, "paramd_servers_expected", "", co->o.servers);
    pd_prom_family(b, "paramd_server_slots", PD_PROM_GAUGE,
                   "server slots by state: up, lost (waiting for a replacement), restoring "
                   "(a replacement restores the shard), gone (lost for good)");
    for (int st = SD_UP; st <= SD_PROMOTING; st++) {
        int n = 0;
        for (int32_t k = 0; k < co->o.servers; k++) n += co->sdown[k] == st;
        lab[0] = '\0';
        pd_prom_label(lab, sizeof lab, "state", slot_names[st]);
        pd_prom_sample(b, "paramd_server_slots", lab, n);
    }
    pd_prom_family(b, "paramd_servers_lost_total", PD_PROM_COUNTER,
                   "servers whose connection ended while the cluster ran");
    pd_prom_sample(b, "paramd_servers_lost_total", "", co->servers_lost);
    pd_prom_family(b, "paramd_servers_replaced_total", PD_PROM_COUNTER,
                   "lost servers whose shard a replacement restored from a checkpoint");
    pd_prom_sample(b, "paramd_servers_replaced_total", "", co->servers_replaced);
    pd_prom_family(b, "paramd_server_copies", PD_PROM_GAUGE,
                   "copies of the shards (--replicas) by state: seeding (being seeded by "
                   "their primary) or live (fed every update)");
    for (int st = CS_SEEDING; st <= CS_LIVE; st++) {
        int n = 0;
        for (int32_t k = 0; k < co->o.servers; k++)
            for (int32_t j = 1; j < co->o.replicas; j++)
                n += co->cp_conn[k * co->RS + j] && co->cp_state[k * co->RS + j] == st;
        lab[0] = '\0';
        pd_prom_label(lab, sizeof lab, "state", co_copy_state_name(st));
        pd_prom_sample(b, "paramd_server_copies", lab, n);
    }
    pd_prom_family(b, "paramd_server_promotions_total", PD_PROM_COUNTER,
                   "copies that took the place of their lost primary");
    pd_prom_sample(b, "paramd_server_promotions_total", "", co->promotions);
    pd_prom_family(b, "paramd_server_copies_lost_total", PD_PROM_COUNTER,
                   "copies that disconnected or that their primary dropped");
    pd_prom_sample(b, "paramd_server_copies_lost_total", "", co->copies_lost);
    pd_prom_family(b, "paramd_server_standbys", PD_PROM_GAUGE,
                   "servers that joined (paramd server --join) and wait for a shard");
    pd_prom_sample(b, "paramd_server_standbys", "", co->nstandby);
    pd_prom_family(b, "paramd_server_moves_total", PD_PROM_COUNTER,
                   "shards moved to a standby (paramd drain)");
    pd_prom_sample(b, "paramd_server_moves_total", "", co->moves);
    pd_prom_family(b, "paramd_workers", PD_PROM_GAUGE, "worker slots by state");
    for (int st = W_NEW; st <= W_AWAY; st++) {
        int n = 0;
        for (int32_t r = 0; r < M; r++) n += co->wstate[r] == st;
        lab[0] = '\0';
        pd_prom_label(lab, sizeof lab, "state", state_names[st]);
        pd_prom_sample(b, "paramd_workers", lab, n);
    }
    int64_t now = pd_now_ms();
    pd_prom_family(b, "paramd_worker_clock", PD_PROM_GAUGE,
                   "the latest clock each live worker reported");
    for (int32_t r = 0; r < M; r++) {
        if (co->wstate[r] != W_LIVE) continue;
        char rs[16];
        snprintf(rs, sizeof rs, "%d", r);
        lab[0] = '\0';
        pd_prom_label(lab, sizeof lab, "worker", rs);
        pd_prom_sample(b, "paramd_worker_clock", lab, (double)co->wclock[r]);
    }
    pd_prom_family(b, "paramd_worker_last_seen_seconds", PD_PROM_GAUGE,
                   "seconds since each live worker's last heartbeat or request");
    for (int32_t r = 0; r < M; r++) {
        if (co->wstate[r] != W_LIVE) continue;
        char rs[16];
        snprintf(rs, sizeof rs, "%d", r);
        lab[0] = '\0';
        pd_prom_label(lab, sizeof lab, "worker", rs);
        pd_prom_sample(b, "paramd_worker_last_seen_seconds", lab,
                       (double)(now - co->wseen_ms[r]) / 1000);
    }
    pd_prom_family(b, "paramd_worker_departures_total", PD_PROM_COUNTER,
                   "workers that left (BYE) or died (lost, silent)");
    pd_prom_sample(b, "paramd_worker_departures_total", "how=\"left\"", co->departed - co->died);
    pd_prom_sample(b, "paramd_worker_departures_total", "how=\"died\"", co->died);
    pd_prom_family(b, "paramd_barriers_total", PD_PROM_COUNTER, "barriers released");
    pd_prom_sample_u64(b, "paramd_barriers_total", "", co->barrier_gen);
    pd_prom_family(b, "paramd_barrier_waiting_workers", PD_PROM_GAUGE,
                   "workers waiting at the barrier now");
    pd_prom_sample(b, "paramd_barrier_waiting_workers", "", co->barrier_arrived);
    pd_prom_family(b, "paramd_barrier_missing_workers", PD_PROM_GAUGE,
                   "workers the barrier being held waits for (0: none held)");
    pd_prom_sample(b, "paramd_barrier_missing_workers", "",
                   co->barrier_arrived > 0 ? barrier_missing(co, co->barrier_gen, NULL, 0) : 0);
    pd_prom_family(b, "paramd_tables", PD_PROM_GAUGE, "tables in the registry");
    int nt = 0;
    for (uint32_t i = 0; i < co->ntables; i++) nt += !co->tables[i].dropped;
    pd_prom_sample(b, "paramd_tables", "", nt);
    pd_prom_family(b, "paramd_map_epoch", PD_PROM_GAUGE, "the cluster map's epoch");
    pd_prom_sample_u64(b, "paramd_map_epoch", "", co->epoch);
    pd_prom_family(b, "paramd_coordinator_connections", PD_PROM_GAUGE,
                   "open connections (workers, their heartbeats, servers, tools)");
    pd_prom_sample(b, "paramd_coordinator_connections", "", co->nthreads);
    pthread_mutex_unlock(&co->mu);
}
