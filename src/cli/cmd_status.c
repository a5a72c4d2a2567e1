/*
 * cmd_status.c - `paramd status`: a live view of a running cluster.
 *
 *   paramd status --coordinator HOST:PORT [--watch [--interval S]] [--json]
 *
 * A tool (paramd_connect with role=tool): it asks the coordinator for its
 * view (paramd_cluster_status: workers, servers, the table registry, a
 * barrier being held) and every server for its counters
 * (paramd_server_stats: tables, connections, requests, waits), joins them
 * (table names from the registry, each worker's transport from the
 * servers' connections, a table's counters summed over its shards) and
 * prints one view: text for people, or with --json one JSON object (one
 * per line with --watch) whose fields docs/operations.md documents and
 * keeps stable.  With --watch it refreshes every --interval seconds and
 * shows request rates over the last interval (without, the rates are
 * averages since each server started).  It changes nothing in the
 * cluster, and no worker waits for it.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/secret.h"
#include "common/common.h"
#include "paramd.h"
#include "wire/status.h"
#include "wire/wire.h"

#define MAX_WAITS 256

/* ==== The view ========================================================== */

typedef struct wk {
    int rank;
    char state[16], host[128];
    int64_t clock, seen_ms, start;
    int at_barrier, tcp, shm;
} wk;

typedef struct sv {
    int index, connected, ok, tables, tcp, shm;
    int64_t silent_ms; /* the coordinator heard nothing from it this long */
    char slot[16];     /* up, lost, restoring, gone (a replacement: docs/durability.md) */
    char address[PD_MAX_ADDR + 1], metrics[PD_MAX_ADDR + 1], error[PD_ERRMSG_MAX];
    int64_t uptime_ms;
    uint64_t requests, push, pull;
    double request_us, push_us, pull_us;
} sv;

typedef struct tb {
    uint32_t id;
    char name[PD_MAX_NAME + 1], spec[PD_MAX_SPEC + 1], kind[16], consistency[8];
    uint64_t n;
    int ready, shards;
    int64_t clock, frontier, slowest_worker, slowest_clock;
    uint64_t pushes, pulls, bytes, bytes_in, bytes_out, rejected, dropped, rows, floats;
    uint64_t st_count, st_sum;
    int64_t st_max;
} tb;

typedef struct cp { /* a copy of a shard (--replicas) */
    int server, copy;
    char address[PD_MAX_ADDR + 1], state[16];
} cp;

typedef struct wt {
    char where[32];
    pd_wait w;
} wt;

typedef struct view {
    char coord[PD_MAX_ADDR + 1], stamp[40];
    int servers, workers, slots, registered, members, departed, died, barrier_arrived;
    uint64_t epoch, barriers;
    int64_t uptime_ms;
    char metrics[PD_MAX_ADDR + 1];
    wk *w;
    int nw;
    sv *s;
    int ns;
    tb *t;
    int nt, tcap;
    cp *c;
    int nc;
    wt waits[MAX_WAITS];
    int nwait;
} view;

static tb *table_get(view *v, uint32_t id) {
    for (int i = 0; i < v->nt; i++)
        if (v->t[i].id == id) return &v->t[i];
    if (v->nt == v->tcap) {
        int cap = v->tcap ? v->tcap * 2 : 8;
        tb *p = realloc(v->t, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        v->t = p, v->tcap = cap;
    }
    tb *t = &v->t[v->nt++];
    memset(t, 0, sizeof *t);
    t->id = id;
    t->clock = -1;
    t->slowest_worker = -1;
    t->slowest_clock = -1;
    return t;
}

static void add_wait(view *v, const char *where, const pd_wait *w) {
    if (v->nwait >= MAX_WAITS) return;
    snprintf(v->waits[v->nwait].where, sizeof v->waits[v->nwait].where, "%s", where);
    v->waits[v->nwait++].w = *w;
}

static void str_val(const pd_kv_line *kv, const char *key, char *out, size_t len) {
    const char *x = pd_kv_get(kv, key);
    pd_kv_unescape(x ? x : "-", out, len);
}

/* The coordinator's STATUS text into v. */
static void parse_coord(view *v, char *text) {
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        pd_kv_line kv;
        if (pd_kv_parse(line, &kv) != 0) continue;
        if (!strcmp(kv.kind, "cluster")) {
            v->servers = (int)pd_kv_int(&kv, "servers", 0);
            v->workers = (int)pd_kv_int(&kv, "workers", 0);
            v->slots = (int)pd_kv_int(&kv, "slots", 0);
            v->epoch = (uint64_t)pd_kv_int(&kv, "epoch", 0);
            v->registered = (int)pd_kv_int(&kv, "registered", 0);
            v->members = (int)pd_kv_int(&kv, "members", 0);
            v->departed = (int)pd_kv_int(&kv, "departed", 0);
            v->died = (int)pd_kv_int(&kv, "died", 0);
            v->barriers = (uint64_t)pd_kv_int(&kv, "barriers", 0);
            v->barrier_arrived = (int)pd_kv_int(&kv, "barrier_arrived", 0);
            v->uptime_ms = pd_kv_int(&kv, "uptime_ms", 0);
            str_val(&kv, "metrics", v->metrics, sizeof v->metrics);
        } else if (!strcmp(kv.kind, "worker")) {
            wk *p = realloc(v->w, (size_t)(v->nw + 1) * sizeof *p);
            if (!p) continue;
            v->w = p;
            wk *w = &v->w[v->nw++];
            memset(w, 0, sizeof *w);
            w->rank = atoi(kv.id);
            str_val(&kv, "state", w->state, sizeof w->state);
            str_val(&kv, "host", w->host, sizeof w->host);
            w->clock = pd_kv_int(&kv, "clock", 0);
            w->seen_ms = pd_kv_int(&kv, "seen_ms_ago", -1);
            w->start = pd_kv_int(&kv, "start", 0);
            w->at_barrier = (int)pd_kv_int(&kv, "at_barrier", 0);
        } else if (!strcmp(kv.kind, "server")) {
            sv *p = realloc(v->s, (size_t)(v->ns + 1) * sizeof *p);
            if (!p) continue;
            v->s = p;
            sv *s = &v->s[v->ns++];
            memset(s, 0, sizeof *s);
            s->index = atoi(kv.id);
            str_val(&kv, "address", s->address, sizeof s->address);
            s->connected = (int)pd_kv_int(&kv, "connected", 0);
            s->silent_ms = pd_kv_int(&kv, "silent_ms", 0);
            snprintf(s->slot, sizeof s->slot, "up"); /* (an older coordinator: none) */
            if (pd_kv_get(&kv, "slot")) str_val(&kv, "slot", s->slot, sizeof s->slot);
        } else if (!strcmp(kv.kind, "copy") || !strcmp(kv.kind, "standby")) {
            cp *p = realloc(v->c, (size_t)(v->nc + 1) * sizeof *p);
            if (!p) continue;
            v->c = p;
            cp *c = &v->c[v->nc++];
            memset(c, 0, sizeof *c);
            int standby = !strcmp(kv.kind, "standby"); /* (copy -1) */
            c->copy = standby ? -1 : atoi(kv.id);
            c->server = standby ? -1 : (int)pd_kv_int(&kv, "of", 0);
            str_val(&kv, "address", c->address, sizeof c->address);
            if (standby) snprintf(c->state, sizeof c->state, "standby");
            else str_val(&kv, "state", c->state, sizeof c->state);
        } else if (!strcmp(kv.kind, "table")) {
            tb *t = table_get(v, (uint32_t)atoi(kv.id));
            if (!t) continue;
            str_val(&kv, "name", t->name, sizeof t->name);
            str_val(&kv, "spec", t->spec, sizeof t->spec);
            t->n = (uint64_t)pd_kv_int(&kv, "n", 0);
            t->ready = (int)pd_kv_int(&kv, "ready", 0);
        } else if (!strcmp(kv.kind, "wait")) {
            pd_wait w;
            if (pd_wait_from_kv(&kv, &w) == 0) add_wait(v, "coordinator", &w);
        }
    }
}

/* Server k's STATS text into v. */
static void parse_server(view *v, sv *s, char *text) {
    char where[32];
    snprintf(where, sizeof where, "server %d", s->index);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "server ", 7)) {
            int tcp = 0, shm = 0;
            const char *p = strstr(line, "worker connections");
            if (p && sscanf(p, "worker connections tcp %d shm %d", &tcp, &shm) == 2)
                s->tcp = tcp, s->shm = shm;
            continue;
        }
        pd_kv_line kv;
        if (pd_kv_parse(line, &kv) != 0) continue;
        if (!strcmp(kv.kind, "info")) {
            str_val(&kv, "metrics", s->metrics, sizeof s->metrics);
            s->uptime_ms = pd_kv_int(&kv, "uptime_ms", 0);
            s->requests = (uint64_t)pd_kv_int(&kv, "requests", 0);
            s->request_us = (double)pd_kv_int(&kv, "request_us", 0);
            s->push = (uint64_t)pd_kv_int(&kv, "push", 0);
            s->push_us = (double)pd_kv_int(&kv, "push_us", 0);
            s->pull = (uint64_t)pd_kv_int(&kv, "pull", 0);
            s->pull_us = (double)pd_kv_int(&kv, "pull_us", 0);
        } else if (!strcmp(kv.kind, "table")) {
            tb *t = table_get(v, (uint32_t)atoi(kv.id));
            if (!t) continue;
            s->tables++;
            t->shards++;
            const char *k = pd_kv_get(&kv, "kind");
            snprintf(t->kind, sizeof t->kind, "%s", k ? k : "dense");
            int64_t c = pd_kv_int(&kv, "clock", 0), f = pd_kv_int(&kv, "frontier", 0);
            int64_t sc = pd_kv_int(&kv, "slowest_clock", -1);
            if (t->clock < 0 || c < t->clock) t->clock = c; /* applied on every shard */
            if (f > t->frontier) t->frontier = f;
            if (t->shards == 1 || sc < t->slowest_clock) {
                t->slowest_clock = sc;
                t->slowest_worker = pd_kv_int(&kv, "slowest_worker", -1);
            }
            t->pushes += (uint64_t)pd_kv_int(&kv, "pushes", 0);
            t->pulls += (uint64_t)pd_kv_int(&kv, "pulls", 0);
            t->bytes += (uint64_t)pd_kv_int(&kv, "bytes", 0);
            t->bytes_in += (uint64_t)pd_kv_int(&kv, "bytes_in", 0);
            t->bytes_out += (uint64_t)pd_kv_int(&kv, "bytes_out", 0);
            t->rejected += (uint64_t)pd_kv_int(&kv, "rejected", 0);
            t->dropped += (uint64_t)pd_kv_int(&kv, "dropped", 0);
            t->rows += (uint64_t)pd_kv_int(&kv, "rows", 0);
            t->floats += (uint64_t)pd_kv_int(&kv, "floats", 0);
            t->st_count += (uint64_t)pd_kv_int(&kv, "staleness_count", 0);
            t->st_sum += (uint64_t)pd_kv_int(&kv, "staleness_sum", 0);
            int64_t mx = pd_kv_int(&kv, "staleness_max", 0);
            if (mx > t->st_max) t->st_max = mx;
        } else if (!strcmp(kv.kind, "name")) {
            tb *t = table_get(v, (uint32_t)atoi(kv.id));
            if (!t) continue;
            if (!t->name[0]) str_val(&kv, "name", t->name, sizeof t->name);
            str_val(&kv, "consistency", t->consistency, sizeof t->consistency);
        } else if (!strcmp(kv.kind, "conn")) {
            int r = atoi(kv.id);
            const char *tr = pd_kv_get(&kv, "transport");
            for (int i = 0; i < v->nw; i++)
                if (v->w[i].rank == r) {
                    if (tr && !strcmp(tr, "shm")) v->w[i].shm++;
                    else v->w[i].tcp++;
                }
        } else if (!strcmp(kv.kind, "wait")) {
            pd_wait w;
            if (pd_wait_from_kv(&kv, &w) == 0) add_wait(v, where, &w);
        }
    }
}

static void view_free(view *v) {
    free(v->w);
    free(v->s);
    free(v->t);
    free(v->c);
    memset(v, 0, sizeof *v);
}

/* Ask everyone: 0, or -1 if the coordinator cannot be asked. */
static int view_take(paramd_client *c, const char *coord, view *v, char *err, size_t errlen) {
    static char buf[PARAMD_STATS_MAX + 1];
    memset(v, 0, sizeof *v);
    snprintf(v->coord, sizeof v->coord, "%s", coord);
    pd_log_stamp(v->stamp, sizeof v->stamp);
    if (paramd_cluster_status(c, buf, sizeof buf) != 0) {
        snprintf(err, errlen, "%s", paramd_last_error(c));
        return -1;
    }
    parse_coord(v, buf);
    for (int i = 0; i < v->ns; i++) {
        sv *s = &v->s[i];
        if (s->index >= paramd_num_servers(c)) continue;
        if (paramd_server_stats(c, s->index, 0, buf, sizeof buf) != 0) {
            snprintf(s->error, sizeof s->error, "%s", paramd_last_error(c));
            continue;
        }
        s->ok = 1;
        parse_server(v, s, buf);
    }
    return 0;
}

/* ==== Text ============================================================== */

static void fmt_bytes(double b, char *out, size_t n) {
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000 && i < 4) b /= 1000, i++;
    snprintf(out, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static const char *transport_of(const wk *w) {
    return w->shm && w->tcp ? "tcp+shm" : w->shm ? "shm" : w->tcp ? "tcp" : "-";
}

/* requests/s of server s: over the last interval (prev), else since it
 * started */
static double rate(const sv *s, const view *prev, double dt) {
    if (prev && dt > 0)
        for (int i = 0; i < prev->ns; i++)
            if (prev->s[i].index == s->index && prev->s[i].ok)
                return (double)(s->requests - prev->s[i].requests) / dt;
    return s->uptime_ms > 0 ? (double)s->requests * 1000 / (double)s->uptime_ms : 0;
}

static void print_text(const view *v, const view *prev, double dt) {
    printf("cluster at %s (%s): %d server%s, %d worker%s (%d slots), map epoch %llu, up "
           "%.0f s, %llu barriers\n",
           v->coord, v->stamp, v->servers, v->servers == 1 ? "" : "s", v->workers,
           v->workers == 1 ? "" : "s", v->slots, (unsigned long long)v->epoch,
           (double)v->uptime_ms / 1000, (unsigned long long)v->barriers);
    printf("workers: %d in the cluster, %d left or died\n", v->members, v->departed);
    printf("  %-5s %-8s %-8s %-12s %-22s %s\n", "rank", "state", "clock", "last seen", "host",
           "transport");
    for (int i = 0; i < v->nw; i++) {
        const wk *w = &v->w[i];
        if (!strcmp(w->state, "free")) continue;
        char seen[32];
        if (w->seen_ms < 0) snprintf(seen, sizeof seen, "never");
        else snprintf(seen, sizeof seen, "%.1f s ago", (double)w->seen_ms / 1000);
        printf("  %-5d %-8s %-8lld %-12s %-22s %s%s\n", w->rank, w->state,
               (long long)w->clock, seen, w->host, transport_of(w),
               w->at_barrier ? "  (at the barrier)" : "");
    }
    printf("servers:\n");
    for (int i = 0; i < v->ns; i++) {
        const sv *s = &v->s[i];
        if (s->silent_ms > 0)
            printf("  server %d at %s: SILENT for %.1f s (no heartbeat to the coordinator: "
                   "stopped or hung?)\n", s->index, s->address, (double)s->silent_ms / 1000.0);
        if (strcmp(s->slot, "up") != 0) {
            printf("  server %d: %s\n", s->index,
                   !strcmp(s->slot, "lost") ? "LOST: the workers wait for a replacement "
                                              "(paramd server --coordinator ADDR) that "
                                              "restores its shard from the newest checkpoint"
                   : !strcmp(s->slot, "restoring") ? "a replacement is restoring its shard"
                   : !strcmp(s->slot, "promoting") ? "lost: a copy of its shard is taking "
                                                     "its place"
                                                   : "LOST for good: not replaced (the "
                                                     "coordinator's log says why)");
            continue;
        }
        if (!s->ok) {
            printf("  server %d at %s: %s\n", s->index, s->address,
                   s->error[0] ? s->error : "not registered");
            continue;
        }
        printf("  server %d at %s: %d table%s, %.0f requests/s (%llu in all), push %.3f ms, "
               "pull %.3f ms (mean), workers tcp %d shm %d, metrics %s\n",
               s->index, s->address, s->tables, s->tables == 1 ? "" : "s", rate(s, prev, dt),
               (unsigned long long)s->requests, s->push ? s->push_us / 1e3 / (double)s->push : 0,
               s->pull ? s->pull_us / 1e3 / (double)s->pull : 0, s->tcp, s->shm,
               s->metrics[0] ? s->metrics : "-");
    }
    for (int i = 0; i < v->nc; i++)
        if (v->c[i].copy < 0)
            printf("  standby at %s: joined (--join), waits for a shard (paramd drain "
                   "--server N moves server N's here)\n", v->c[i].address);
        else
            printf("  copy %d of server %d at %s: %s\n", v->c[i].copy, v->c[i].server,
                   v->c[i].address,
                   !strcmp(v->c[i].state, "live")
                       ? "live (fed every update; takes the server's place if it is lost)"
                   : !strcmp(v->c[i].state, "moving-in")
                       ? "the server's shard moving here (paramd drain), being seeded"
                       : "being seeded by the server");
    printf("tables:\n");
    for (int i = 0; i < v->nt; i++) {
        const tb *t = &v->t[i];
        char mem[32], in[32], out[32];
        fmt_bytes((double)t->bytes, mem, sizeof mem);
        fmt_bytes((double)t->bytes_in, in, sizeof in);
        fmt_bytes((double)t->bytes_out, out, sizeof out);
        printf("  '%s' (id %u, %s, %s, n %llu%s): clock %lld, frontier %lld, slowest worker ",
               t->name, t->id, t->kind[0] ? t->kind : "?",
               t->consistency[0] ? t->consistency : "?", (unsigned long long)t->n,
               t->ready ? "" : ", being created", (long long)t->clock, (long long)t->frontier);
        if (t->slowest_worker >= 0)
            printf("%lld at clock %lld", (long long)t->slowest_worker, (long long)t->slowest_clock);
        else
            printf("-");
        printf(", staleness mean %.2f max %lld clocks (%llu pushes), dropped late %llu, "
               "rejected %llu; %s held, %s in, %s out\n",
               t->st_count ? (double)t->st_sum / (double)t->st_count : 0, (long long)t->st_max,
               (unsigned long long)t->st_count, (unsigned long long)t->dropped,
               (unsigned long long)t->rejected, mem, in, out);
    }
    if (v->nwait) {
        printf("waiting:\n");
        for (int i = 0; i < v->nwait; i++) {
            char line[512];
            pd_wait_format(&v->waits[i].w, line, sizeof line);
            printf("  %s: %s (for %.0f s)\n", v->waits[i].where, line,
                   (double)v->waits[i].w.waiting_ms / 1000);
        }
    } else {
        printf("waiting: nothing\n");
    }
}

/* ==== JSON ============================================================== */

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void json_str_or_null(const char *s) {
    if (s && *s) json_str(s);
    else printf("null");
}

static void print_json(const view *v, const view *prev, double dt) {
    printf("{\"coordinator\": ");
    json_str(v->coord);
    printf(", \"time\": ");
    json_str(v->stamp);
    printf(", \"cluster\": {\"servers\": %d, \"workers\": %d, \"slots\": %d, \"epoch\": %llu, "
           "\"registered_servers\": %d, \"members\": %d, \"departed\": %d, \"died\": %d, "
           "\"barriers\": %llu, \"barrier_arrived\": %d, \"uptime_s\": %.3f, \"metrics\": ",
           v->servers, v->workers, v->slots, (unsigned long long)v->epoch, v->registered,
           v->members, v->departed, v->died, (unsigned long long)v->barriers, v->barrier_arrived,
           (double)v->uptime_ms / 1000);
    json_str_or_null(v->metrics);
    printf("}, \"workers\": [");
    int first = 1;
    for (int i = 0; i < v->nw; i++) {
        const wk *w = &v->w[i];
        if (!strcmp(w->state, "free")) continue;
        printf("%s{\"rank\": %d, \"state\": ", first ? "" : ", ", w->rank);
        first = 0;
        json_str(w->state);
        printf(", \"clock\": %lld, \"last_seen_s\": ", (long long)w->clock);
        if (w->seen_ms < 0) printf("null");
        else printf("%.3f", (double)w->seen_ms / 1000);
        printf(", \"host\": ");
        json_str_or_null(strcmp(w->host, "-") ? w->host : NULL);
        printf(", \"transport\": ");
        json_str_or_null(strcmp(transport_of(w), "-") ? transport_of(w) : NULL);
        printf(", \"start_clock\": %lld, \"at_barrier\": %s}", (long long)w->start,
               w->at_barrier ? "true" : "false");
    }
    printf("], \"servers\": [");
    for (int i = 0; i < v->ns; i++) {
        const sv *s = &v->s[i];
        printf("%s{\"index\": %d, \"address\": ", i ? ", " : "", s->index);
        json_str_or_null(strcmp(s->address, "-") ? s->address : NULL);
        printf(", \"connected\": %s, \"silent_s\": %.3f, \"slot\": \"%s\", \"error\": ",
               s->connected ? "true" : "false", (double)s->silent_ms / 1000.0, s->slot);
        json_str_or_null(s->ok ? NULL : s->error[0] ? s->error : "not registered");
        printf(", \"metrics\": ");
        json_str_or_null(s->metrics);
        printf(", \"uptime_s\": %.3f, \"tables\": %d, \"requests\": %llu, "
               "\"requests_per_s\": %.1f, \"push_mean_s\": %.6f, \"pull_mean_s\": %.6f, "
               "\"connections\": {\"tcp\": %d, \"shm\": %d}}",
               (double)s->uptime_ms / 1000, s->tables, (unsigned long long)s->requests,
               rate(s, prev, dt), s->push ? s->push_us / 1e6 / (double)s->push : 0,
               s->pull ? s->pull_us / 1e6 / (double)s->pull : 0, s->tcp, s->shm);
    }
    printf("], \"copies\": [");
    for (int i = 0, n = 0; i < v->nc; i++) {
        if (v->c[i].copy < 0) continue;
        printf("%s{\"server\": %d, \"copy\": %d, \"address\": ", n++ ? ", " : "",
               v->c[i].server, v->c[i].copy);
        json_str(v->c[i].address);
        printf(", \"state\": ");
        json_str(v->c[i].state);
        printf("}");
    }
    printf("], \"standbys\": [");
    for (int i = 0, n = 0; i < v->nc; i++) {
        if (v->c[i].copy >= 0) continue;
        printf("%s", n++ ? ", " : "");
        json_str(v->c[i].address);
    }
    printf("], \"tables\": [");
    for (int i = 0; i < v->nt; i++) {
        const tb *t = &v->t[i];
        printf("%s{\"id\": %u, \"name\": ", i ? ", " : "", t->id);
        json_str(t->name);
        printf(", \"kind\": ");
        json_str_or_null(t->kind);
        printf(", \"consistency\": ");
        json_str_or_null(t->consistency);
        printf(", \"spec\": ");
        json_str(t->spec);
        printf(", \"n\": %llu, \"ready\": %s, \"shards\": %d, \"clock\": %lld, \"frontier\": %lld, "
               "\"slowest_worker\": ",
               (unsigned long long)t->n, t->ready ? "true" : "false", t->shards,
               (long long)t->clock, (long long)t->frontier);
        if (t->slowest_worker >= 0) printf("%lld", (long long)t->slowest_worker);
        else printf("null");
        printf(", \"slowest_clock\": %lld, \"staleness\": {\"pushes\": %llu, \"mean\": %.4f, "
               "\"max\": %lld}, \"dropped_late\": %llu, \"rejected\": %llu, \"pushes\": %llu, "
               "\"pulls\": %llu, \"memory_bytes\": %llu, \"bytes_in\": %llu, \"bytes_out\": %llu, "
               "\"rows\": %llu, \"floats\": %llu}",
               (long long)t->slowest_clock, (unsigned long long)t->st_count,
               t->st_count ? (double)t->st_sum / (double)t->st_count : 0, (long long)t->st_max,
               (unsigned long long)t->dropped, (unsigned long long)t->rejected,
               (unsigned long long)t->pushes, (unsigned long long)t->pulls,
               (unsigned long long)t->bytes, (unsigned long long)t->bytes_in,
               (unsigned long long)t->bytes_out, (unsigned long long)t->rows,
               (unsigned long long)t->floats);
    }
    printf("], \"waits\": [");
    static const char *const kinds[] = {"", "pull", "barrier", "join", "table"};
    static const char *const conns[] = {"unknown", "alive", "none"};
    for (int i = 0; i < v->nwait; i++) {
        const pd_wait *w = &v->waits[i].w;
        char line[512];
        pd_wait_format(w, line, sizeof line);
        printf("%s{\"where\": ", i ? ", " : "");
        json_str(v->waits[i].where);
        printf(", \"kind\": \"%s\", \"table\": ", kinds[w->kind]);
        json_str_or_null(w->table);
        printf(", \"clock\": %lld, \"worker\": ", (long long)w->clock);
        if (w->worker >= 0) printf("%d", w->worker);
        else printf("null");
        printf(", \"last_clock\": ");
        if (w->last_clock >= 0) printf("%lld", (long long)w->last_clock);
        else printf("null");
        printf(", \"last_ago_s\": ");
        if (w->ago_ms >= 0) printf("%.3f", (double)w->ago_ms / 1000);
        else printf("null");
        printf(", \"connection\": \"%s\", \"waiting_s\": %.3f, \"others\": %d, \"text\": ",
               conns[w->conn >= 0 && w->conn <= 2 ? w->conn : 0], (double)w->waiting_ms / 1000,
               w->others);
        json_str(line);
        printf("}");
    }
    printf("]}\n");
}

/* ==== The command ======================================================= */

static void usage(FILE *f) {
    fprintf(f,
            "usage: paramd status --coordinator HOST:PORT [--watch [--interval S]] [--json]\n"
            "\n"
            "A live view of a running cluster: workers (rank, state, clock, last seen,\n"
            "host, transport), servers (tables, request rate, push and pull time,\n"
            "connections), tables by name (consistency, clock, frontier, slowest\n"
            "worker, staleness, late pushes dropped) and whatever is being waited on\n"
            "(a sync pull's clock, a barrier), naming whom it waits for.\n"
            "\n"
            "  --coordinator HOST:PORT  the coordinator [$PARAMD_COORDINATOR]\n"
            "  --secret-file FILE       the cluster secret [$PARAMD_SECRET_FILE]\n"
            "  --watch                  refresh until interrupted (rates over the interval)\n"
            "  --interval S             seconds between refreshes [2]\n"
            "  --json                   one JSON object (per refresh, one per line);\n"
            "                           fields in docs/operations.md\n");
}

int cmd_status(int argc, char **argv) {
    static const struct option opts[] = {{"coordinator", required_argument, 0, 'c'},
                                         {"secret-file", required_argument, 0, 'S'},
                                         {"watch", no_argument, 0, 'w'},
                                         {"interval", required_argument, 0, 'i'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *coord = NULL;
    int watch = 0, json = 0, ch;
    double interval = 2;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': coord = optarg; break;
        case 'S':
            if (cli_set_secret_file("paramd status", optarg)) return 2;
            break;
        case 'w': watch = 1; break;
        case 'j': json = 1; break;
        case 'i':
            if (pd_parse_double(optarg, &interval) || interval < 0.1 || interval > 3600) {
                fprintf(stderr, "paramd status: --interval '%s' is not 0.1..3600 seconds\n",
                        optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!coord) coord = getenv("PARAMD_COORDINATOR");
    if (optind < argc || !coord) {
        fprintf(stderr, "paramd status: %s\n\n",
                optind < argc ? "unexpected argument"
                              : "--coordinator HOST:PORT is required (or set PARAMD_COORDINATOR)");
        usage(stderr);
        return 2;
    }
    char conn_opts[PD_MAX_ADDR + 64];
    snprintf(conn_opts, sizeof conn_opts, "role=tool timeout_ms=10000 coordinator=%s", coord);
    paramd_client *c;
    if (paramd_connect(&c, conn_opts) != 0) {
        fprintf(stderr, "paramd status: %s\n", paramd_last_error(NULL));
        return 1;
    }
    view v, prev;
    int have_prev = 0, rc = 0;
    double t_prev = 0;
    char err[PD_ERRMSG_MAX];
    for (;;) {
        if (view_take(c, coord, &v, err, sizeof err) != 0) {
            fprintf(stderr, "paramd status: %s\n", err);
            rc = 1;
            break;
        }
        double now = pd_now(), dt = have_prev ? now - t_prev : 0;
        if (watch && !json && isatty(1)) printf("\033[H\033[2J"); /* a fresh screen */
        if (json) print_json(&v, have_prev ? &prev : NULL, dt);
        else print_text(&v, have_prev ? &prev : NULL, dt);
        fflush(stdout);
        if (have_prev) view_free(&prev);
        prev = v, have_prev = 1, t_prev = now;
        if (!watch) break;
        struct timespec ts = {(time_t)interval, (long)((interval - (time_t)interval) * 1e9)};
        nanosleep(&ts, NULL); /* the refresh period, not synchronisation */
        if (!json) printf("\n");
    }
    if (have_prev) view_free(&prev);
    paramd_close(c);
    return rc;
}
