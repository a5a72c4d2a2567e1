/*
 * stats.c - table counters: one counter of a table on one server, or over
 * all of them (paramd_table_stat), from the servers' STATS text.
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
    paramd_request r;
    req_init(&r, c);
    for (int32_t k = k0; k < k1; k++) {
        pending pt = {0};
        pt.type = PD_MSG_STATS;
        pt.text = texts + (size_t)(k - k0) * each;
        link_send_ex(&c->links[k], &r, &pt, 0, t->id, 0, NULL, 0, NULL, 0, NULL, 0);
    }
    req_done(&r, 0, "");
    int rc = req_finish(&r);
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
