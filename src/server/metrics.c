/*
 * metrics.c - what a server counts for operators, and its Prometheus text
 * (the --metrics endpoint, metrics/http.h).
 *
 * Counting.  srv_dispatch counts every request (plain, or inside a BATCH:
 * the batch and each of its frames) by kind: how many, their payload
 * bytes, their error replies, and a latency histogram from the header
 * read to the reply sent (a sync pull's includes its wait for the
 * clock).  Relaxed atomics in pd_server; no lock.  Tables count in their
 * stores (the STATS line's counters) and their gate (staleness).
 *
 * Rendering.  On the endpoint's thread: the per-kind counters as they are,
 * and each table's STATS line turned into one family per counter (so a
 * counter a store adds to its line appears in `paramd stats` and here
 * alike: one mechanism).  A table's line is taken under its lock for the
 * moment it is written, the families are written after every lock is
 * released.  Names and units: docs/operations.md.
 */
#include <stdio.h>
#include <string.h>

#include "server/server_impl.h"
#include "wire/status.h"

/* ==== Counting ========================================================== */

void srv_metrics_init(pd_server *s) {
    s->started = pd_now();
    for (int k = 0; k < SRV_KINDS; k++) pd_hist_init_latency(&s->kinds[k].latency);
}

void srv_count_request(pd_server *s, uint16_t type, uint64_t bytes, double secs) {
    if (type >= SRV_KINDS) return;
    srv_kind_stats *k = &s->kinds[type];
    __atomic_add_fetch(&k->count, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&k->bytes, bytes, __ATOMIC_RELAXED);
    pd_hist_observe(&k->latency, secs);
}

void srv_count_error(pd_server *s, uint16_t type) {
    type &= (uint16_t)~PD_REPLY;
    if (type < SRV_KINDS) __atomic_add_fetch(&s->kinds[type].errors, 1, __ATOMIC_RELAXED);
}

int srv_rank_alive(void *server, int32_t w) {
    pd_server *s = server;
    return w >= 0 && w < s->W && __atomic_load_n(&s->wconns[w], __ATOMIC_RELAXED) > 0;
}

/* ==== Rendering ========================================================= */

/* A STATS counter of a table and the family it becomes. */
static const struct tfam {
    const char *key, *name;
    int type;
    double scale;
    const char *help;
} tfams[] = {
    {"floats", "paramd_table_floats", PD_PROM_GAUGE, 1, "floats of a dense table held by this server"},
    {"rows", "paramd_table_rows", PD_PROM_GAUGE, 1, "rows of a sparse table held by this server"},
    {"bytes", "paramd_table_memory_bytes", PD_PROM_GAUGE, 1, "bytes of values and update-rule state held"},
    {"pushes", "paramd_table_pushes_total", PD_PROM_COUNTER, 1, "pushes taken (each frame of a chunked push)"},
    {"pulls", "paramd_table_pulls_total", PD_PROM_COUNTER, 1, "pulls answered"},
    {"keys_pushed", "paramd_table_keys_pushed_total", PD_PROM_COUNTER, 1, "rows pushed to a sparse table"},
    {"keys_pulled", "paramd_table_keys_pulled_total", PD_PROM_COUNTER, 1, "rows pulled from a sparse table"},
    {"bytes_in", "paramd_table_received_bytes_total", PD_PROM_COUNTER, 1, "bytes of values received by pushes and sets"},
    {"bytes_out", "paramd_table_sent_bytes_total", PD_PROM_COUNTER, 1, "bytes of values sent by pulls"},
    {"rejected", "paramd_table_rejected_total", PD_PROM_COUNTER, 1, "pushes refused (stale, ahead, duplicate, removed worker)"},
    {"dropped", "paramd_table_late_pushes_dropped_total", PD_PROM_COUNTER, 1, "late gradients of backup workers dropped (sync, backup=K)"},
    {"clock", "paramd_table_clock", PD_PROM_GAUGE, 1, "clocks applied (sync, ssp; 0 for async)"},
    {"frontier", "paramd_table_frontier_clock", PD_PROM_GAUGE, 1, "1 + the newest clock a push was taken for"},
    {"slowest_clock", "paramd_table_slowest_worker_clock", PD_PROM_GAUGE, 1, "the newest clock the slowest live worker pushed whole (-1: none yet)"},
    {"max_ahead", "paramd_table_max_pull_ahead_clocks", PD_PROM_GAUGE, 1, "largest lead of a pull's clock over the applied clock served"},
    {"waiting_pulls", "paramd_table_waiting_pulls", PD_PROM_GAUGE, 1, "pulls waiting for a clock now"},
    {"push_cpu_ns", "paramd_table_push_cpu_seconds_total", PD_PROM_COUNTER, 1e-9, "CPU time spent applying pushes (sparse)"},
};

typedef struct tsnap {
    pd_table *t;
    char line[4096];
    pd_kv_line kv;
    char labels[512];
} tsnap;

static const char *kind_label(uint16_t type) { return pd_msg_name(type); }

void srv_metrics_render(void *server, pd_buf *b) {
    pd_server *s = server;
    char lab[256], srv[32];
    snprintf(srv, sizeof srv, "%d", s->index);

    pd_prom_family(b, "paramd_server_up", PD_PROM_GAUGE, "1: this server is running");
    lab[0] = '\0';
    pd_prom_label(lab, sizeof lab, "server", srv);
    pd_prom_label(lab, sizeof lab, "address", s->bound);
    pd_prom_sample(b, "paramd_server_up", lab, 1);
    lab[0] = '\0';
    pd_prom_label(lab, sizeof lab, "server", srv);
    pd_prom_family(b, "paramd_server_uptime_seconds", PD_PROM_GAUGE, "seconds since the server started");
    pd_prom_sample(b, "paramd_server_uptime_seconds", lab, pd_now() - s->started);

    /* requests by kind */
    static const struct {
        const char *name, *help;
        int which;
    } kfams[] = {
        {"paramd_requests_total", "requests served, by kind (a BATCH and each frame in it)", 0},
        {"paramd_request_bytes_total", "payload bytes received, by kind", 1},
        {"paramd_request_errors_total", "requests answered with an error, by kind", 2},
    };
    for (size_t f = 0; f < sizeof kfams / sizeof kfams[0]; f++) {
        pd_prom_family(b, kfams[f].name, PD_PROM_COUNTER, kfams[f].help);
        for (uint16_t k = 1; k < SRV_KINDS; k++) {
            if (!pd_msg_known(k)) continue;
            srv_kind_stats *ks = &s->kinds[k];
            uint64_t v = __atomic_load_n(f == 0 ? &ks->count : f == 1 ? &ks->bytes : &ks->errors,
                                         __ATOMIC_RELAXED);
            if (!__atomic_load_n(&ks->count, __ATOMIC_RELAXED) && !v) continue;
            lab[0] = '\0';
            pd_prom_label(lab, sizeof lab, "server", srv);
            pd_prom_label(lab, sizeof lab, "kind", kind_label(k));
            pd_prom_sample_u64(b, kfams[f].name, lab, v);
        }
    }
    pd_prom_family(b, "paramd_request_duration_seconds", PD_PROM_HISTOGRAM,
                   "time from a request's header to its reply, by kind (a sync pull's wait included)");
    for (uint16_t k = 1; k < SRV_KINDS; k++) {
        if (!pd_msg_known(k) || !__atomic_load_n(&s->kinds[k].count, __ATOMIC_RELAXED)) continue;
        lab[0] = '\0';
        pd_prom_label(lab, sizeof lab, "server", srv);
        pd_prom_label(lab, sizeof lab, "kind", kind_label(k));
        pd_prom_hist(b, "paramd_request_duration_seconds", lab, &s->kinds[k].latency);
    }

    /* connections */
    int ntcp = 0, nshm = 0, ntool = 0;
    pthread_mutex_lock(&s->mu);
    for (srv_conn *c = s->conns; c; c = c->next) {
        if (!c->conn) continue;
        if (c->rank < 0) ntool++;
        else if (c->shm_fd >= 0) nshm++;
        else ntcp++;
    }
    pthread_mutex_unlock(&s->mu);
    pd_prom_family(b, "paramd_connections", PD_PROM_GAUGE,
                   "open connections: workers by transport, and tools");
    static const char *const tr[] = {"tcp", "shm", "tool"};
    int nc[] = {ntcp, nshm, ntool};
    for (int i = 0; i < 3; i++) {
        lab[0] = '\0';
        pd_prom_label(lab, sizeof lab, "server", srv);
        pd_prom_label(lab, sizeof lab, "transport", tr[i]);
        pd_prom_sample(b, "paramd_connections", lab, nc[i]);
    }
    lab[0] = '\0';
    pd_prom_label(lab, sizeof lab, "server", srv);
    pd_prom_family(b, "paramd_connections_accepted_total", PD_PROM_COUNTER, "connections accepted");
    pd_prom_sample_u64(b, "paramd_connections_accepted_total", lab,
                       __atomic_load_n(&s->conns_total, __ATOMIC_RELAXED));
    pd_prom_family(b, "paramd_batches_total", PD_PROM_COUNTER, "BATCH frames executed");
    pd_prom_sample_u64(b, "paramd_batches_total", lab, __atomic_load_n(&s->batches, __ATOMIC_RELAXED));
    pd_prom_family(b, "paramd_batched_requests_total", PD_PROM_COUNTER, "requests inside BATCH frames");
    pd_prom_sample_u64(b, "paramd_batched_requests_total", lab, __atomic_load_n(&s->batched, __ATOMIC_RELAXED));

    /* tables: a snapshot of each STATS line, then one family per counter */
    size_t nt = 0, cap = 0;
    tsnap *ts = NULL;
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
        pd_table *t = srv_table(s, id);
        if (!t) continue;
        if (nt == cap) {
            size_t nc2 = cap ? cap * 2 : 8;
            tsnap *p = pd_realloc(ts, nc2 * sizeof *p);
            if (!p) break;
            ts = p, cap = nc2;
        }
        tsnap *x = &ts[nt++];
        x->t = t;
        if (pd_table_stats_line(t, x->line, sizeof x->line) < 0) x->line[0] = '\0';
        pd_kv_parse(x->line, &x->kv);
        char id_s[16];
        snprintf(id_s, sizeof id_s, "%u", id);
        x->labels[0] = '\0';
        pd_prom_label(x->labels, sizeof x->labels, "server", srv);
        pd_prom_label(x->labels, sizeof x->labels, "table", t->def.name[0] ? t->def.name : id_s);
        pd_prom_label(x->labels, sizeof x->labels, "id", id_s);
    }
    for (size_t f = 0; f < sizeof tfams / sizeof tfams[0]; f++) {
        int any = 0;
        for (size_t i = 0; i < nt; i++) {
            const char *v = NULL;
            int64_t num = 0;
            if (!strcmp(tfams[f].key, "frontier") || !strcmp(tfams[f].key, "slowest_clock") ||
                !strcmp(tfams[f].key, "waiting_pulls")) {
                pd_gate *g = &ts[i].t->gate;
                pthread_mutex_lock(&g->mu);
                if (!strcmp(tfams[f].key, "frontier")) num = g->top;
                else if (!strcmp(tfams[f].key, "waiting_pulls")) num = g->nwait;
                else {
                    int32_t slow = -1;
                    for (int32_t r = 0; r < g->W; r++)
                        if (g->mem.st[r] == PD_MEM_LIVE && (slow < 0 || g->done[r] < g->done[slow]))
                            slow = r;
                    num = slow >= 0 ? g->done[slow] : -1;
                }
                pthread_mutex_unlock(&g->mu);
                v = "";
            } else if (!(v = pd_kv_get(&ts[i].kv, tfams[f].key)) || pd_parse_i64(v, &num) != 0) {
                continue;
            }
            if (!any) pd_prom_family(b, tfams[f].name, tfams[f].type, tfams[f].help);
            any = 1;
            pd_prom_sample(b, tfams[f].name, ts[i].labels, (double)num * tfams[f].scale);
        }
    }
    if (nt) {
        pd_prom_family(b, "paramd_table_staleness_clocks", PD_PROM_HISTOGRAM,
                       "how many clocks each push taken was behind the newest one taken");
        for (size_t i = 0; i < nt; i++)
            pd_prom_hist(b, "paramd_table_staleness_clocks", ts[i].labels, &ts[i].t->gate.stale);
    }
    pd_free(ts);
}
