/*
 * spec.c - parse and print table specifications (see spec.h).
 *
 * Two properties the fuzz harness (tests/fuzz/fuzz_spec.c) checks, and
 * which an earlier version broke: (1) a spec's meaning does not depend on
 * the order of its keys (only a repeated key's last value wins): rule= and
 * plugin= used to override each other in order, so "plugin=P rule=sgd"
 * was an sgd table carrying a plugin path; now the two together are
 * refused unless the rule is "plugin".  (2) The canonical text parses
 * back to the same spec: it used to print rule=plugin, which the parser
 * refused, and numbers with 10 significant digits, which changed values
 * that needed more; now rule=plugin parses (with plugin=) and numbers are
 * printed with the fewest digits that read back exactly.
 */
#include "table/spec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const pd_hyper_names[PD_HYPER_COUNT] = {
    "lr", "momentum", "beta1", "beta2", "eps", "init_acc", "l1", "l2", "beta"};

static void hyper_to_array(const pd_rule_hyper *h, double *a) {
    a[0] = h->lr, a[1] = h->momentum, a[2] = h->beta1, a[3] = h->beta2;
    a[4] = h->eps, a[5] = h->init_acc, a[6] = h->l1, a[7] = h->l2;
    a[8] = h->beta;
}

/* "zeros", "uniform:A", "normal:S" (A, S finite > 0).  0 or -1. */
static int parse_init(const char *val, uint32_t *kind, double *param) {
    const char *colon = strchr(val, ':');
    if (strcmp(val, "zeros") == 0) {
        *kind = PD_INIT_ZEROS;
        *param = 0;
        return 0;
    }
    if (!colon) return -1;
    size_t n = (size_t)(colon - val);
    double v;
    if (pd_parse_double(colon + 1, &v) != 0 || !isfinite(v) || !(v > 0)) return -1;
    if (n == 7 && strncmp(val, "uniform", 7) == 0)
        *kind = PD_INIT_UNIFORM;
    else if (n == 6 && strncmp(val, "normal", 6) == 0)
        *kind = PD_INIT_NORMAL;
    else
        return -1;
    *param = v;
    return 0;
}

void pd_spec_hyper(const pd_table_def *d, pd_rule_hyper *h) {
    double a[PD_HYPER_COUNT] = {0};
    for (uint32_t i = 0; i < d->nhyper && i < PD_HYPER_COUNT; i++)
        a[i] = d->hyper[i];
    h->lr = a[0], h->momentum = a[1], h->beta1 = a[2], h->beta2 = a[3];
    h->eps = a[4], h->init_acc = a[5], h->l1 = a[6], h->l2 = a[7];
    h->beta = a[8];
}

int pd_spec_parse(const char *spec, pd_table_def *d, pd_err *e) {
    char buf[PD_MAX_SPEC + 1];
    pd_rule_kind kind = PD_RULE_ADD;
    pd_rule_kind named = PD_RULE_COUNT_; /* rule=, if given */
    pd_rule_hyper h;
    /* Two passes: the rule first (its defaults), then everything else. */
    if (!spec) spec = "";
    if (strlen(spec) > PD_MAX_SPEC)
        return pd_seterr(e, PARAMD_EINVAL, "table spec longer than %d bytes",
                         PD_MAX_SPEC);
    d->consistency = PD_CONS_ASYNC;
    d->aggregate = PD_AGG_MEAN;
    d->staleness = 0;
    d->backup = 0;
    d->plugin[0] = '\0';
    d->init = PD_INIT_ZEROS;
    d->init_param = 0;
    d->seed = 0;
    d->seed_given = 0;
    d->elastic = 1;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            /* The rule, from rule= and plugin= whatever their order. */
            if (d->plugin[0] && named != PD_RULE_COUNT_ && named != PD_RULE_PLUGIN)
                return pd_seterr(e, PARAMD_EINVAL,
                                 "table spec: rule=%s and plugin=%s name two "
                                 "update rules: give one of them",
                                 pd_rule_name(named), d->plugin);
            if (!d->plugin[0] && named == PD_RULE_PLUGIN)
                return pd_seterr(e, PARAMD_EINVAL,
                                 "table spec: rule=plugin needs plugin=NAME");
            kind = d->plugin[0] ? PD_RULE_PLUGIN
                   : named != PD_RULE_COUNT_ ? named : PD_RULE_ADD;
            pd_rule_defaults(kind, &h);
        }
        snprintf(buf, sizeof buf, "%s", spec);
        char *save = NULL;
        for (char *tok = strtok_r(buf, " \t\n,", &save); tok;
             tok = strtok_r(NULL, " \t\n,", &save)) {
            char *eq = strchr(tok, '=');
            if (!eq || eq == tok || !eq[1])
                return pd_seterr(e, PARAMD_EINVAL,
                                 "table spec: '%s' is not key=value", tok);
            *eq = '\0';
            const char *key = tok, *val = eq + 1;
            if (strcmp(key, "rule") == 0) {
                /* (rule= and plugin= are resolved after pass 0, in any
                 * order: see the essay.) */
                if (pass == 0 && strcmp(val, "plugin") == 0)
                    named = PD_RULE_PLUGIN;
                else if (pass == 0 && pd_rule_from_name(val, &named) != 0)
                    return pd_seterr(e, PARAMD_EINVAL,
                                     "table spec: unknown rule '%s' (add, sgd, "
                                     "momentum, adagrad, adam, ftrl)",
                                     val);
            } else if (strcmp(key, "plugin") == 0) {
                /* A name, never a path: loading a library runs its code,
                 * and each server loads only files of its own
                 * --plugin-dir (table/rules.h, "Plugins are named"). */
                if (strchr(val, '/'))
                    return pd_seterr(e, PARAMD_EINVAL,
                                     "table spec: plugin=%s is a path, and a "
                                     "spec names a plugin instead: plugin=NAME, "
                                     "which every server loads as NAME.so from "
                                     "its own --plugin-dir (docs/update-rules.md)",
                                     val);
                if (!pd_rule_plugin_name_ok(val))
                    return pd_seterr(e, PARAMD_EINVAL,
                                     "table spec: plugin=%s is not a plugin name "
                                     "(1..%d letters, digits, '_' or '-'; the "
                                     "file is NAME.so in the servers' --plugin-dir)",
                                     val, PD_RULE_PLUGIN_NAME_MAX);
                if (pass == 0) snprintf(d->plugin, sizeof d->plugin, "%s", val);
            } else if (strcmp(key, "consistency") == 0) {
                int64_t st;
                /* A later consistency= replaces an earlier one whole,
                 * its staleness too (a bound kept from ssp:S under sync
                 * would not survive the canonical text). */
                if (strcmp(val, "sync") == 0) {
                    d->consistency = PD_CONS_SYNC;
                    d->staleness = 0;
                } else if (strcmp(val, "async") == 0) {
                    d->consistency = PD_CONS_ASYNC;
                    d->staleness = 0;
                } else if (strncmp(val, "ssp:", 4) == 0 &&
                         pd_parse_i64(val + 4, &st) == 0 && st >= 0 &&
                         st <= PD_MAX_STALENESS) {
                    d->consistency = PD_CONS_SSP;
                    d->staleness = (uint32_t)st;
                } else
                    return pd_seterr(e, PARAMD_EINVAL,
                                     "table spec: consistency '%s' is not "
                                     "sync, async or ssp:S (S >= 0 clocks)",
                                     val);
            } else if (strcmp(key, "backup") == 0) {
                int64_t k;
                if (pd_parse_i64(val, &k) != 0 || k < 0 || k >= PD_MAX_WORKERS)
                    return pd_seterr(e, PARAMD_EINVAL,
                                     "table spec: backup=%s is not a worker "
                                     "count",
                                     val);
                d->backup = (uint32_t)k;
            } else if (strcmp(key, "init") == 0 || strcmp(key, "seed") == 0) {
                if (d->kind != PD_TABLE_SPARSE)
                    return pd_seterr(e, PARAMD_EINVAL,
                                     "table spec: %s= is for sparse tables "
                                     "(a dense table's initial values are "
                                     "paramd_table_open's init)",
                                     key);
                if (key[0] == 'i' && parse_init(val, &d->init, &d->init_param))
                    return pd_seterr(e, PARAMD_EINVAL,
                                     "table spec: init=%s is not zeros, "
                                     "uniform:A or normal:S (A, S > 0)",
                                     val);
                if (key[0] == 's') {
                    if (pd_parse_u64(val, &d->seed) != 0)
                        return pd_seterr(e, PARAMD_EINVAL,
                                         "table spec: seed=%s is not an "
                                         "unsigned 64-bit integer",
                                         val);
                    d->seed_given = 1;
                }
            } else if (strcmp(key, "elastic") == 0) {
                if (strcmp(val, "yes") == 0)
                    d->elastic = 1;
                else if (strcmp(val, "no") == 0)
                    d->elastic = 0;
                else
                    return pd_seterr(e, PARAMD_EINVAL,
                                     "table spec: elastic '%s' is not yes or "
                                     "no",
                                     val);
            } else if (strcmp(key, "aggregate") == 0) {
                if (strcmp(val, "mean") == 0)
                    d->aggregate = PD_AGG_MEAN;
                else if (strcmp(val, "sum") == 0)
                    d->aggregate = PD_AGG_SUM;
                else
                    return pd_seterr(e, PARAMD_EINVAL,
                                     "table spec: aggregate '%s' is not mean "
                                     "or sum",
                                     val);
            } else if (pass == 1) {
                double v;
                char msg[256];
                if (pd_parse_double(val, &v) != 0)
                    return pd_seterr(e, PARAMD_EINVAL,
                                     "table spec: %s=%s is not a number", key,
                                     val);
                if (!pd_rule_uses_hyper(kind, key)) {
                    int known = 0;
                    for (int i = 0; i < PD_HYPER_COUNT; i++)
                        known |= strcmp(key, pd_hyper_names[i]) == 0;
                    if (!known)
                        return pd_seterr(e, PARAMD_EINVAL,
                                         "table spec: unknown key '%s'", key);
                    return pd_seterr(e, PARAMD_EINVAL,
                                     "table spec: rule %s does not use %s",
                                     pd_rule_name(kind), key);
                }
                if (pd_rule_set_hyper(&h, key, v, msg, sizeof msg) != 0)
                    return pd_seterr(e, PARAMD_EINVAL, "table spec: %s", msg);
            }
        }
    }
    if (d->backup && d->consistency != PD_CONS_SYNC)
        return pd_seterr(e, PARAMD_EINVAL,
                         "table spec: backup=%u needs consistency=sync",
                         d->backup);
    d->rule = (uint32_t)kind;
    d->nhyper = PD_HYPER_COUNT;
    hyper_to_array(&h, d->hyper);
    return 0;
}

/* v with the fewest significant digits (up to 17) that read back as v. */
static void fmt_exact(char *out, size_t n, double v) {
    for (int prec = 10; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        double back;
        if (pd_parse_double(out, &back) == 0 && back == v) return;
    }
}

void pd_spec_canonical(const pd_table_def *d, char *out, size_t outlen) {
    const char *rule = pd_rule_name((pd_rule_kind)d->rule);
    char cons[32];
    if (d->consistency == PD_CONS_SSP)
        snprintf(cons, sizeof cons, "ssp:%u", d->staleness);
    else
        snprintf(cons, sizeof cons, "%s",
                 d->consistency == PD_CONS_SYNC ? "sync" : "async");
    int off = snprintf(out, outlen, "rule=%s consistency=%s aggregate=%s",
                       rule ? rule : "?", cons,
                       d->aggregate == PD_AGG_SUM ? "sum" : "mean");
    if (d->backup && off >= 0 && (size_t)off < outlen)
        off += snprintf(out + off, outlen - (size_t)off, " backup=%u", d->backup);
    if (!d->elastic && off >= 0 && (size_t)off < outlen)
        off += snprintf(out + off, outlen - (size_t)off, " elastic=no");
    for (uint32_t i = 0; i < d->nhyper && i < PD_HYPER_COUNT; i++) {
        if (off < 0 || (size_t)off >= outlen) return;
        if (!pd_rule_uses_hyper((pd_rule_kind)d->rule, pd_hyper_names[i])) continue;
        char num[40];
        fmt_exact(num, sizeof num, d->hyper[i]);
        off += snprintf(out + off, outlen - (size_t)off, " %s=%s",
                        pd_hyper_names[i], num);
    }
    if (d->plugin[0] && off >= 0 && (size_t)off < outlen)
        off += snprintf(out + off, outlen - (size_t)off, " plugin=%s", d->plugin);
    if (d->kind == PD_TABLE_SPARSE && off >= 0 && (size_t)off < outlen) {
        static const char *const inits[] = {"zeros", "uniform", "normal"};
        const char *in = d->init <= PD_INIT_NORMAL ? inits[d->init] : "?";
        if (d->init == PD_INIT_ZEROS)
            snprintf(out + off, outlen - (size_t)off, " init=zeros seed=%llu",
                     (unsigned long long)d->seed);
        else {
            char num[40];
            fmt_exact(num, sizeof num, d->init_param);
            snprintf(out + off, outlen - (size_t)off, " init=%s:%s seed=%llu",
                     in, num, (unsigned long long)d->seed);
        }
    }
}

int pd_spec_elastic(const char *canonical) {
    const char *p = canonical;
    while ((p = strstr(p, "elastic=")) != NULL) {
        int start = p == canonical || p[-1] == ' ';
        p += 8;
        if (start && strncmp(p, "no", 2) == 0 && (p[2] == ' ' || !p[2])) return 0;
    }
    return 1;
}
