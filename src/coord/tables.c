/*
 * tables.c - the coordinator's table registry: TABLE_OPEN makes the first
 * caller of a name its creator and makes the others wait until the
 * creator's TABLE_READY (coord.c's essay says why).
 */
#include <stdio.h>
#include <string.h>

#include "coord/coord_impl.h"
#include "table/spec.h"

int co_on_table_open(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    char name[PD_MAX_NAME + 1], spec[PD_MAX_SPEC + 1], msg[PD_MAX_ERRTEXT];
    uint64_t n;
    pd_rd r;
    pd_rd_init(&r, cc->buf, (size_t)h->len);
    pd_get_str(&r, name, PD_MAX_NAME);
    pd_get_u64(&r, &n);
    pd_get_str(&r, spec, PD_MAX_SPEC);
    if (!pd_rd_done(&r) || !name[0])
        return co_reply_err(cc, h, PARAMD_EPROTO, "malformed TABLE_OPEN");
    if (cc->rank < 0) /* a tool, or a worker's connection before REG_WORKER */
        return co_reply_err(cc, h, PARAMD_EWORKER,
                            "TABLE_OPEN from a connection that did not register as a "
                            "worker (REG_WORKER): only registered workers open tables");
    pthread_mutex_lock(&co->mu);
    {
        /* a cluster taken back: its workers first say which tables they
         * were creating (takeover.c) */
        char why[PD_ERRMSG_MAX];
        if (co_takeover_wait(co, cc->hello.op_timeout_ms, why, sizeof why)) {
            pthread_mutex_unlock(&co->mu);
            return co_reply_err(cc, h, PARAMD_ETIMEDOUT, why);
        }
    }
    if (co->wstart[cc->rank] >= 0 && !pd_spec_elastic(spec)) {
        snprintf(msg, sizeof msg,
                 "table '%s' does not take workers that join a running "
                 "cluster (its spec has elastic=no); this worker (rank %d) "
                 "joined at clock %lld",
                 name, cc->rank, (long long)co->wstart[cc->rank]);
        pthread_mutex_unlock(&co->mu);
        return co_reply_err(cc, h, PARAMD_EWORKER, msg);
    }
    uint32_t id = 0;
    for (uint32_t i = 0; i < co->ntables; i++)
        if (!co->tables[i].dropped && strcmp(co->tables[i].name, name) == 0)
            id = i + 1;
    int created = 0;
    if (!id) {
        if (co->ntables >= (uint32_t)co->o.max_tables) {
            pthread_mutex_unlock(&co->mu);
            snprintf(msg, sizeof msg,
                     "table '%s': the cluster has %u tables, the coordinator's "
                     "limit (--max-tables %d)",
                     name, co->ntables, co->o.max_tables);
            return co_reply_err(cc, h, PARAMD_ELIMIT, msg);
        }
        if (co->ntables == co->tcap) {
            uint32_t cap = co->tcap ? co->tcap * 2 : 16;
            co_table *t = pd_realloc(co->tables, sizeof *t * cap);
            if (!t) {
                pthread_mutex_unlock(&co->mu);
                return co_reply_err(cc, h, PARAMD_ENOMEM, "out of memory");
            }
            co->tables = t;
            co->tcap = cap;
        }
        co_table *t = &co->tables[co->ntables++];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", name);
        snprintf(t->spec, sizeof t->spec, "%s", spec);
        t->n = n;
        t->creator = cc;
        id = co->ntables;
        created = 1;
    } else {
        co_table *t = &co->tables[id - 1];
        if (t->n != n || strcmp(t->spec, spec) != 0) {
            snprintf(msg, sizeof msg,
                     "table '%s' exists with n=%llu and spec '%s'; this worker "
                     "asked for n=%llu and spec '%s'",
                     name, (unsigned long long)t->n, t->spec,
                     (unsigned long long)n, spec);
            pthread_mutex_unlock(&co->mu);
            return co_reply_err(cc, h, PARAMD_ESPEC, msg);
        }
        char why[PD_ERRMSG_MAX];
        if (co_table_wait(co, id, cc->hello.op_timeout_ms, why, sizeof why)) {
            pthread_mutex_unlock(&co->mu);
            return co_reply_err(cc, h, PARAMD_ETIMEDOUT, why);
        }
        if (!co->tables[id - 1].ready) {
            pthread_mutex_unlock(&co->mu);
            snprintf(msg, sizeof msg,
                     "table '%s': the worker creating it left before it was "
                     "ready",
                     name);
            return co_reply_err(cc, h, PARAMD_ESHUTDOWN, msg);
        }
    }
    pthread_mutex_unlock(&co->mu);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u32(&b, id);
    pd_put_u32(&b, (uint32_t)created);
    int rc = co_reply(cc, h, &b);
    pd_buf_free(&b);
    return rc;
}

int co_on_table_ready(co_conn *cc, const pd_hdr *h) {
    pd_coord *co = cc->co;
    pthread_mutex_lock(&co->mu);
    uint32_t id = h->table;
    if (id == 0 || id > co->ntables || co->tables[id - 1].creator != cc) {
        pthread_mutex_unlock(&co->mu);
        return co_reply_err(cc, h, PARAMD_ENOTABLE,
                         "TABLE_READY for a table this worker is not creating");
    }
    co->tables[id - 1].ready = 1;
    co->tables[id - 1].creator = NULL;
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    return co_reply(cc, h, NULL);
}

