/*
 * table.c - what every table kind shares (see table.h): creation by kind,
 * the update rule's set-up, definition comparison, and the calls that go
 * the same way for every store.
 */
#include "server/table.h"

#include <string.h>

#include "table/spec.h"
#include "wire/wire.h"

pd_table *pd_table_create(uint32_t id, const pd_table_def *d,
                          const pd_table_env *env, pd_err *e) {
    if (d->kind == PD_TABLE_SPARSE) return pd_sparse_create(id, d, env, e);
    if (d->kind == PD_TABLE_DENSE) return pd_dense_create(id, d, env, e);
    pd_seterr(e, PARAMD_EINVAL, "table %u: unknown kind %u", id, d->kind);
    return NULL;
}

void pd_table_destroy(pd_table *t) {
    if (t) t->ops->destroy(t);
}

int pd_table_init(pd_table *t, const pd_table_ops *ops, uint32_t id,
                  const pd_table_def *d, const pd_table_env *env,
                  const pd_gate_store *gs, const char *pull_hint, pd_err *e) {
    t->ops = ops;
    t->id = id;
    t->def = *d;
    t->pool = env->pool;
    t->W = env->W;
    t->rule.kind = (pd_rule_kind)d->rule;
    pd_spec_hyper(d, &t->rule.hyper);
    int rc = pd_gate_init(&t->gate, id, d, env->W, gs, pull_hint, e);
    if (rc) return rc;
    char msg[PD_ERRMSG_MAX], path[PD_MAX_PLUGIN_FILE];
    /* The plugin's name came over the wire: it resolves only inside this
     * server's own directory, and nothing else is ever opened. */
    if (d->rule == PD_RULE_PLUGIN &&
        (pd_rule_plugin_path(env->plugin_dir, d->plugin, path, sizeof path, msg,
                             sizeof msg) != 0 ||
         pd_rule_load_plugin(&t->rule, path, msg, sizeof msg) != 0))
        return pd_seterr(e, PARAMD_EINVAL, "table %u: %s", id, msg);
    /* Hyper-parameters arrive over the wire: check them like a spec. */
    if (pd_rule_check(&t->rule, msg, sizeof msg) != 0)
        return pd_seterr(e, PARAMD_EINVAL, "table %u: %s", id, msg);
    return 0;
}

void pd_table_fini(pd_table *t) {
    pd_rule_release(&t->rule);
    pd_gate_fini(&t->gate);
}

int pd_table_same_def(const pd_table *t, const pd_table_def *d) {
    const pd_table_def *a = &t->def;
    if (a->kind != d->kind || a->n != d->n || a->lo != d->lo || a->hi != d->hi ||
        a->rule != d->rule || a->consistency != d->consistency ||
        a->aggregate != d->aggregate || a->staleness != d->staleness ||
        a->backup != d->backup || a->nhyper != d->nhyper || a->elastic != d->elastic ||
        a->init != d->init || a->init_param != d->init_param || a->seed != d->seed ||
        strcmp(a->plugin, d->plugin) != 0)
        return 0;
    return memcmp(a->hyper, d->hyper, sizeof(double) * a->nhyper) == 0;
}

int pd_table_set(pd_table *t, const pd_table_req *rq, pd_err *e) {
    if (!t->ops->set)
        return pd_seterr(e, PARAMD_EINVAL,
                         "table %u is %s: its initial values come from its "
                         "spec's init= (SET is for dense tables)",
                         t->id, t->ops->kind);
    return t->ops->set(t, rq, e);
}

int64_t pd_table_applied(pd_table *t) {
    pthread_mutex_lock(&t->gate.mu);
    int64_t a = t->gate.applied;
    pthread_mutex_unlock(&t->gate.mu);
    return a;
}

void pd_table_save(pd_table *t, pd_ckw *w, const pd_ck_save *how) {
    pd_buf b;
    pd_buf_init(&b);
    pd_table_def_encode(&b, &t->def);
    if (b.oom) {
        pd_seterr(&w->err, PARAMD_ENOMEM, "out of memory writing table %u", t->id);
        pd_buf_free(&b);
        return;
    }
    pd_ckw_u32(w, t->id);
    pd_ckw_u32(w, (uint32_t)b.len);
    pd_ckw_bytes(w, b.p, b.len);
    pd_buf_free(&b);
    t->ops->save(t, w, how);
}

void pd_table_put_gate(pd_table *t, pd_ckw *w) {
    pd_ckw_u64(w, (uint64_t)t->gate.applied);
    pd_ckw_u64(w, (uint64_t)t->gate.top);
}
