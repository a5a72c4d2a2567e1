/*
 * status.c - key-value status lines and the one wait record (status.h).
 */
#include "wire/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

/* ==== Key-value lines =================================================== */

void pd_kv_escape(const char *s, char *out, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (len == 0) return;
    if (!*s) {
        snprintf(out, len, "-");
        return;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int esc = c <= ' ' || c == '%' || c == 0x7f || (c == '-' && o == 0 && !s[1]);
        size_t need = esc ? 3 : 1;
        if (o + need >= len) break;
        if (esc) {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void pd_kv_unescape(const char *s, char *out, size_t len) {
    size_t o = 0;
    if (len == 0) return;
    if (!strcmp(s, "-")) s = "";
    for (; *s && o + 1 < len; s++) {
        int a, b;
        if (s[0] == '%' && (a = hexval(s[1])) >= 0 && (b = hexval(s[2])) >= 0) {
            out[o++] = (char)(a * 16 + b);
            s += 2;
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

int pd_kv_parse(char *line, pd_kv_line *kv) {
    memset(kv, 0, sizeof *kv);
    kv->id = "";
    char *save = NULL;
    char *w = strtok_r(line, " \t\r\n", &save);
    if (!w) return -1;
    kv->kind = w;
    if ((w = strtok_r(NULL, " \t\r\n", &save))) kv->id = w;
    while (kv->n < PD_KV_MAX && (w = strtok_r(NULL, " \t\r\n", &save))) {
        char *v = strtok_r(NULL, " \t\r\n", &save);
        if (!v) break;
        kv->key[kv->n] = w;
        kv->val[kv->n] = v;
        kv->n++;
    }
    return 0;
}

const char *pd_kv_get(const pd_kv_line *kv, const char *key) {
    for (int i = 0; i < kv->n; i++)
        if (!strcmp(kv->key[i], key)) return kv->val[i];
    return NULL;
}

int64_t pd_kv_int(const pd_kv_line *kv, const char *key, int64_t def) {
    const char *v = pd_kv_get(kv, key);
    int64_t x;
    if (!v || pd_parse_i64(v, &x) != 0) return def;
    return x;
}

/* ==== Waits ============================================================= */

/* "40 s", "2.5 s", "3 min 20 s" */
static void fmt_ago(int64_t ms, char *out, size_t len) {
    if (ms < 10000)
        snprintf(out, len, "%.1f s", (double)ms / 1000);
    else if (ms < 120000)
        snprintf(out, len, "%lld s", (long long)(ms / 1000));
    else
        snprintf(out, len, "%lld min %lld s", (long long)(ms / 60000),
                 (long long)(ms / 1000 % 60));
}

int pd_wait_format(const pd_wait *w, char *out, size_t len) {
    char ago[48] = "", more[48] = "";
    if (w->ago_ms >= 0) fmt_ago(w->ago_ms, ago, sizeof ago);
    if (w->others > 0) snprintf(more, sizeof more, " and %d more", w->others);
    const char *conn = w->conn == PD_CONN_ALIVE  ? "; connection alive"
                       : w->conn == PD_CONN_NONE ? "; no connection"
                                                 : "";
    switch (w->kind) {
    case PD_WAIT_PULL: {
        char who[64], last[96];
        if (w->table[0])
            snprintf(who, sizeof who, "table '%.40s'", w->table);
        else
            snprintf(who, sizeof who, "table %u", w->table_id);
        if (w->last_clock < 0)
            snprintf(last, sizeof last, "no push yet");
        else if (w->ago_ms >= 0)
            snprintf(last, sizeof last, "last push at clock %lld, %s ago",
                     (long long)w->last_clock, ago);
        else
            snprintf(last, sizeof last, "last push at clock %lld", (long long)w->last_clock);
        return snprintf(out, len, "%s clock %lld: waiting for worker %d (%s%s)%s", who,
                        (long long)w->clock, w->worker, last, conn, more);
    }
    case PD_WAIT_BARRIER:
        if (w->last_clock < 0)
            return snprintf(out, len, "barrier %lld: waiting for worker %d (never "
                            "registered)%s", (long long)w->clock, w->worker, more);
        return snprintf(out, len, "barrier %lld: waiting for worker %d (at clock %lld, "
                        "last heard %s ago)%s", (long long)w->clock, w->worker,
                        (long long)w->last_clock, ago[0] ? ago : "?", more);
    case PD_WAIT_JOIN:
        if (w->server < 0)
            return snprintf(out, len, "join of worker %lld: waiting for %d server%s to "
                            "answer", (long long)w->clock, w->others + 1,
                            w->others ? "s" : "");
        return snprintf(out, len, "join of worker %lld: waiting for server %d to answer%s",
                        (long long)w->clock, w->server, more);
    case PD_WAIT_TABLE:
        return snprintf(out, len, "table '%.40s': waiting for worker %d to create it "
                        "(last heard %s ago)", w->table, w->worker, ago[0] ? ago : "?");
    }
    return snprintf(out, len, "waiting");
}

static const char *const kind_names[] = {"", "pull", "barrier", "join", "table"};

int pd_wait_kv(const pd_wait *w, char *out, size_t len) {
    char name[3 * 256];
    pd_kv_escape(w->table, name, sizeof name);
    int k = w->kind >= 1 && w->kind <= 4 ? w->kind : 1;
    return snprintf(out, len,
                    "wait %s table %s table_id %u clock %lld worker %d server %d "
                    "last_clock %lld ago_ms %lld conn %d waiting_ms %lld others %d",
                    kind_names[k], name, w->table_id, (long long)w->clock, w->worker,
                    w->server, (long long)w->last_clock, (long long)w->ago_ms, w->conn,
                    (long long)w->waiting_ms, w->others);
}

int pd_wait_from_kv(const pd_kv_line *kv, pd_wait *w) {
    memset(w, 0, sizeof *w);
    if (strcmp(kv->kind, "wait") != 0) return -1;
    w->kind = 0;
    for (int k = 1; k <= 4; k++)
        if (!strcmp(kv->id, kind_names[k])) w->kind = k;
    if (!w->kind) return -1;
    const char *t = pd_kv_get(kv, "table");
    if (t) pd_kv_unescape(t, w->table, sizeof w->table);
    w->table_id = (uint32_t)pd_kv_int(kv, "table_id", 0);
    w->clock = pd_kv_int(kv, "clock", 0);
    w->worker = (int32_t)pd_kv_int(kv, "worker", -1);
    w->server = (int32_t)pd_kv_int(kv, "server", -1);
    w->last_clock = pd_kv_int(kv, "last_clock", -1);
    w->ago_ms = pd_kv_int(kv, "ago_ms", -1);
    w->conn = (int)pd_kv_int(kv, "conn", 0);
    w->waiting_ms = pd_kv_int(kv, "waiting_ms", 0);
    w->others = (int32_t)pd_kv_int(kv, "others", 0);
    return 0;
}

int64_t pd_wait_next_log(int64_t last) {
    if (last <= 0) return PD_WAIT_LOG_FIRST_MS;
    int64_t next = last * 2;
    if (next - last > PD_WAIT_LOG_MAX_MS) next = last + PD_WAIT_LOG_MAX_MS;
    return next;
}
