/*
 * rules.h - server-side update rules: what a server does with an aggregated
 * gradient.
 *
 * A rule updates a run of parameters w[0..n) given the gradient g[0..n) and
 * its per-parameter state (moments, accumulators) kept beside the
 * parameters.  The same function serves dense tables (one call per pushed
 * range) and sparse tables (one call per touched row), and it is the single
 * apply path a replica will run too.
 *
 * Layout of state: pd_rule_state_floats(rule) floats per parameter, stored
 * as consecutive planes of n floats: state[k*n + i] is plane k of
 * parameter i (for adam: plane 0 = m, plane 1 = v).  pd_rule_init_state
 * sets the planes' starting values.  Planes (not interleaved k-tuples) keep
 * every kernel a run of unit-stride loops that the compiler vectorizes, and
 * let a checkpoint write a plane as one block.
 *
 * A shard that keeps the planes of its whole range [0, len) and applies a
 * push to a sub-range [a, a+count) uses the _strided variants: plane k of
 * parameter i is state[k*stride + i] with stride = len, so the call gets
 * state + a, stride len, n count.  (pd_rule_apply(..., state, g, n, ...) is
 * the strided call with stride = n.)
 *
 * `step` is the 1-based count of updates applied to these parameters,
 * counting this one (adam's bias correction uses it; values < 1 are taken
 * as 1).
 *
 * The rules, their state planes and defaults (formulas exactly as
 * implemented are in docs/update-rules.md):
 *
 *   rule      state planes      hyper-parameters (default)
 *   add       -                 -                       w += g
 *   sgd       -                 lr (0.01)               w -= lr*g
 *   momentum  0: v              lr (0.01), momentum (0.9)
 *                               v = momentum*v + g;  w -= lr*v
 *   adagrad   0: acc            lr (0.01), init_acc (0.1), eps (1e-10)
 *                               acc += g*g;  w -= lr*g / (sqrt(acc) + eps)
 *   adam      0: m, 1: v        lr (0.001), beta1 (0.9), beta2 (0.999),
 *                               eps (1e-8); bias-corrected with `step`
 *   ftrl      0: z, 1: n        lr = alpha (0.05), beta (1.0), l1 (0),
 *                               l2 (0); FTRL-proximal, McMahan et al. 2013
 *   plugin    as the plugin     all of them, in PARAMD_RULE_HYPER_* order
 *                               (include/paramd_rule.h)
 *
 * Ranges pd_rule_set_hyper and pd_rule_check enforce: lr finite > 0;
 * momentum, beta1, beta2 in [0, 1); eps finite > 0; init_acc, l1, l2, beta
 * finite >= 0.
 *
 * Threads: every function here is reentrant.  pd_rule_apply may run on
 * several threads at once for the same rule as long as the (w, state, g)
 * ranges of concurrent calls do not overlap; nothing here keeps global
 * state.  pd_rule_load_plugin / pd_rule_release on one pd_rule must not
 * race with anything else on that pd_rule.
 *
 * A pd_rule that holds a plugin owns it: copy the struct by value only if
 * exactly one copy is released, and only after the others are done.
 */
#ifndef PARAMD_TABLE_RULES_H
#define PARAMD_TABLE_RULES_H

#include <stddef.h>
#include <stdint.h>

typedef enum pd_rule_kind {
    PD_RULE_ADD = 0, /* w += g */
    PD_RULE_SGD,     /* w -= lr * g */
    PD_RULE_MOMENTUM,
    PD_RULE_ADAGRAD,
    PD_RULE_ADAM,
    PD_RULE_FTRL,
    PD_RULE_PLUGIN,
    PD_RULE_COUNT_
} pd_rule_kind;

/* Hyper-parameters.  pd_rule_defaults fills the defaults of a rule.  The
 * field order is the order of PARAMD_RULE_HYPER_* in paramd_rule.h (the
 * array a plugin receives) and of the table spec's hyper array. */
typedef struct pd_rule_hyper {
    double lr;
    double momentum;
    double beta1, beta2, eps;
    double init_acc;
    double l1, l2, beta;
} pd_rule_hyper;

typedef struct pd_rule_plugin pd_rule_plugin; /* a loaded shared object */

typedef struct pd_rule {
    pd_rule_kind kind;
    pd_rule_hyper hyper;
    pd_rule_plugin *plugin; /* PD_RULE_PLUGIN only; owned */
} pd_rule;

/* ==== Names and hyper-parameters ======================================== */

/* "add", "sgd", ... ; NULL for an unknown kind. */
const char *pd_rule_name(pd_rule_kind kind);
/* 0 and *out set if `name` is a built-in rule, -1 otherwise. */
int pd_rule_from_name(const char *name, pd_rule_kind *out);
/* Fill `h` with the defaults of `kind` (every field, also those the rule
 * does not read, so two default structs compare equal with memcmp).  For
 * PD_RULE_PLUGIN: lr 0.01 and the other fields as for their built-in
 * rules (momentum 0.9, beta1 0.9, beta2 0.999, eps 1e-8, init_acc 0.1,
 * l1 0, l2 0, beta 1). */
void pd_rule_defaults(pd_rule_kind kind, pd_rule_hyper *h);
/* Set a hyper-parameter by name ("lr", "momentum", "beta1", "beta2",
 * "eps", "init_acc", "l1", "l2", "beta").  0 on success, -1 if the name is
 * unknown or the value out of range (message in err, which may be NULL;
 * `h` is then untouched). */
int pd_rule_set_hyper(pd_rule_hyper *h, const char *key, double value,
                      char *err, size_t errlen);
/* 1 if rule `kind` reads hyper-parameter `key`, else 0 (a plugin reads them
 * all).  Lets a spec parser reject "rule=sgd momentum=0.9" as a mistake. */
int pd_rule_uses_hyper(pd_rule_kind kind, const char *key);
/* Validate a whole rule before first use (for instance one decoded from a
 * frame): a known kind, every hyper-parameter in range, a loaded plugin
 * for PD_RULE_PLUGIN, and the plugin's own paramd_rule_check if it has
 * one.  0, or -1 with the reason in err (may be NULL). */
int pd_rule_check(const pd_rule *r, char *err, size_t errlen);
/* "adam lr=0.001 beta1=0.9 beta2=0.999 eps=1e-08" (the hypers the rule
 * reads; for a plugin, "plugin PATH lr=..." with all of them), for logs.
 * Always NUL-terminated, truncated to len. */
void pd_rule_format(const pd_rule *r, char *buf, size_t len);

/* ==== State and apply =================================================== */

/* State floats per parameter for this rule (0 for add and sgd; for a
 * plugin, what it declared; 0 for a plugin rule with no plugin loaded). */
size_t pd_rule_state_floats(const pd_rule *r);
/* Set the starting values of the state of n parameters. */
void pd_rule_init_state(const pd_rule *r, float *state, size_t n);
/* The same for parameters whose plane k is state[k*stride + i], i < n,
 * stride >= n. */
void pd_rule_init_state_strided(const pd_rule *r, float *state,
                                size_t stride, size_t n);
/* Apply one aggregated gradient to n parameters (see the essay above).
 * w, state and g must not overlap.  Never fails; a PD_RULE_PLUGIN rule
 * without a loaded plugin, or an unknown kind, leaves everything
 * untouched. */
void pd_rule_apply(const pd_rule *r, float *w, float *state, const float *g,
                   size_t n, int64_t step);
/* The same with plane k of parameter i at state[k*stride + i], stride >= n
 * (a sub-range of a shard whose planes have `stride` floats each). */
void pd_rule_apply_strided(const pd_rule *r, float *w, float *state,
                           size_t stride, const float *g, size_t n,
                           int64_t step);

/* ==== Plugins =========================================================== */

/*
 * Load the update rule of the shared object at `path` (the ABI of
 * include/paramd_rule.h): dlopen(RTLD_NOW | RTLD_LOCAL), look up the
 * symbols, check paramd_rule_abi_version() == PARAMD_RULE_ABI_VERSION and
 * paramd_rule_state_floats() <= PARAMD_RULE_MAX_STATE_FLOATS.  `path` is
 * a file the caller chose (pd_rule_plugin_path below turns a spec's
 * plugin name into one): never a string a peer sent.
 *
 * On success: 0, r->kind = PD_RULE_PLUGIN, r->plugin set (a plugin r held
 * before is released), r->hyper untouched.  On failure: -1, r untouched,
 * and err names the path and what is wrong (cannot open, which symbol is
 * missing, which ABI version it has), e.g.
 *   rule plugin '/x/clip.so': missing symbol 'paramd_rule_apply' (...)
 * Never crashes on a bad file; it does run the object's constructors, so
 * load only code you trust.
 */
int pd_rule_load_plugin(pd_rule *r, const char *path, char *err,
                        size_t errlen);
/* Unload r's plugin (dlclose) and set r->plugin to NULL; r->kind is left
 * as it was.  NULL r, or a rule without a plugin, is harmless. */
void pd_rule_release(pd_rule *r);

/*
 * Plugins are named, never given by path: a table spec says plugin=NAME
 * and each process that runs the rule (a server; a worker that replays
 * it, paramd train --comm off) loads the file NAME.so of a directory its
 * own operator gave it (--plugin-dir, PARAMD_PLUGIN_DIR).  Loading a
 * library runs its code, so a name that came over the wire must never be
 * able to reach any other file: a name is 1..PD_RULE_PLUGIN_NAME_MAX
 * letters, digits, '_' or '-' (no '/', no '.'), and it resolves only
 * inside that directory.
 */
#define PD_RULE_PLUGIN_NAME_MAX 64
#define PD_MAX_PLUGIN_FILE 4096 /* bytes of the resolved path, with its NUL */
/* 1 if `name` is a valid plugin name, else 0. */
int pd_rule_plugin_name_ok(const char *name);
/* The file a plugin name resolves to: dir/NAME.so into out.  0 if that
 * file exists; else -1 and err says why and what to do: a bad name (a
 * path, most likely), no plugin directory (dir NULL or ""), or no such
 * file in it.  Opens nothing; only checks that the file is there. */
int pd_rule_plugin_path(const char *dir, const char *name, char *out, size_t outlen,
                        char *err, size_t errlen);

#endif
