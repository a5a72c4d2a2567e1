/*
 * stats.c - the servers' counters: one server's STATS text
 * (paramd_server_stats, what paramd stats prints) and one counter of a
 * table on one server or summed over all of them (paramd_table_stat).
 *
 * A STATS frame always goes alone (never in an outbox), and a server
 * answers a link's frames in order, so the answer follows every request
 * this client sent that server before it.
 */
#include <stdio.h>
#include <string.h>

#include "client/client_impl.h"
#include "common/common.h"
#include "paramd.h"
#include "wire/wire.h"

/* Find counter `name` in the STATS line of table `id` in text.  0 with
 * *v set, PARAMD_ENOTABLE (no line), PARAMD_EINVAL (no such counter),
 * PARAMD_EPROTO (not a number). */
static int stat_from_text(const char *text, uint32_t id, const char *name,
                          uint64_t *v) {
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        unsigned tid;
        int at = 0;
        if (sscanf(line, "table %u %n", &tid, &at) == 1 && tid == id && at > 0) {
            char buf[1024];
            snprintf(buf, sizeof buf, "%.*s", (int)(len - (size_t)at), line + at);
            char *save = NULL;
            for (char *k = strtok_r(buf, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
                char *val = strtok_r(NULL, " ", &save);
                if (!val) break;
                if (strcmp(k, name) != 0) continue;
                return pd_parse_u64(val, v) == 0 ? 0 : PARAMD_EPROTO;
            }
            return PARAMD_EINVAL;
        }
        line = nl ? nl + 1 : NULL;
    }
    return PARAMD_ENOTABLE;
}

_Static_assert(PARAMD_STATS_MAX == PD_MAX_CTRL_PAYLOAD,
               "paramd.h's bound on a STATS text is the protocol's");

/* Ask servers k0..k1-1 for their STATS text (of table `table`; 0: every
 * table) and wait for it: server k's text, NUL-terminated, lands at
 * texts + (k - k0) * each, which must have PD_MAX_CTRL_PAYLOAD + 1 bytes.
 * 0 or the first error (detail in the client's last error). */
static int stats_fetch(paramd_client *c, int32_t k0, int32_t k1, uint32_t table,
                       char *texts, size_t each) {
    paramd_request r;
    req_init(&r, c);
    for (int32_t k = k0; k < k1; k++) {
        pending pt = {0};
        pt.type = PD_MSG_STATS;
        pt.text = texts + (size_t)(k - k0) * each;
        link_send_ex(&c->links[k], &r, &pt, 0, table, 0, NULL, 0, NULL, 0, NULL, 0);
    }
    req_done(&r, 0, "");
    return req_finish(&r);
}

int paramd_server_stats(paramd_client *c, int32_t server, uint32_t table,
                        char *buf, uint64_t len) {
    if (!c) return PARAMD_EINVAL;
    if (!buf || len == 0)
        return cl_err(c, PARAMD_EINVAL,
                      "paramd_server_stats: NULL or empty buffer (give it "
                      "PARAMD_STATS_MAX + 1 bytes)");
    buf[0] = '\0';
    if (server < 0 || server >= c->S)
        return cl_err(c, PARAMD_EINVAL, "paramd_server_stats: server %d is not 0..%d",
                      server, c->S - 1);
    if (table >= PD_MAX_TABLES)
        return cl_err(c, PARAMD_EINVAL,
                      "paramd_server_stats: table %u is not 0 (every table) or a "
                      "table id 1..%d", table, PD_MAX_TABLES - 1);
    /* Straight into the caller's buffer if any text fits it. */
    char *text = len > PARAMD_STATS_MAX ? buf : pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    if (!text) return cl_err(c, PARAMD_ENOMEM, "out of memory");
    text[0] = '\0';
    int rc = stats_fetch(c, server, server + 1, table, text, 0);
    if (text != buf) {
        size_t n = strlen(text), keep = n < len ? n : (size_t)len - 1;
        memcpy(buf, text, keep);
        buf[keep] = '\0';
        if (!rc && n >= len)
            rc = cl_err(c, PARAMD_ETOOBIG,
                        "server %d's STATS text has %zu bytes, the buffer room for "
                        "%llu: it is cut there (PARAMD_STATS_MAX + 1 bytes always "
                        "suffice)", server, n, (unsigned long long)(len - 1));
        pd_free(text);
    }
    return rc;
}

int paramd_table_stat(paramd_table *t, int32_t server, const char *name,
                      uint64_t *value) {
    paramd_client *c = t->c;
    if (!name || !value || server < -1 || server >= c->S)
        return cl_err(c, PARAMD_EINVAL,
                      "table '%s': bad counter name or server %d (0..%d, or "
                      "-1 for all)",
                      t->name, server, c->S - 1);
    int32_t k0 = server < 0 ? 0 : server, k1 = server < 0 ? c->S : server + 1;
    size_t each = PD_MAX_CTRL_PAYLOAD + 1;
    char *texts = pd_calloc((size_t)(k1 - k0), each);
    if (!texts) return cl_err(c, PARAMD_ENOMEM, "out of memory");
    int rc = stats_fetch(c, k0, k1, t->id, texts, each);
    uint64_t total = 0;
    for (int32_t k = k0; k < k1 && !rc; k++) {
        uint64_t v;
        rc = stat_from_text(texts + (size_t)(k - k0) * each, t->id, name, &v);
        if (rc == PARAMD_ENOTABLE)
            cl_err(c, rc, "server %d has no counters for table '%s'", k, t->name);
        else if (rc == PARAMD_EPROTO)
            rc = cl_err(c, PARAMD_EINVAL, "table '%s': counter '%s' is not a number",
                        t->name, name);
        else if (rc)
            cl_err(c, rc, "table '%s' has no counter '%s' on server %d", t->name,
                   name, k);
        else if (!strcmp(name, "dim"))
            total = v; /* the same on every server */
        else if (!strcmp(name, "clock"))
            total = k == k0 || v < total ? v : total; /* applied everywhere */
        else
            total += v;
    }
    pd_free(texts);
    if (!rc) *value = total;
    return rc;
}
