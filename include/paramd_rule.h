/*
 * paramd_rule.h - the C ABI of an update-rule plugin: a shared object that
 * a paramd server loads to apply gradients with a rule of your own.
 *
 * A server applies updates with a rule: add, sgd, momentum, adagrad, adam,
 * ftrl are built in.  A table whose spec names a plugin instead has its
 * updates applied by the shared object's paramd_rule_apply.  The object is
 * opened with dlopen(RTLD_NOW | RTLD_LOCAL) and these symbols are looked up
 * by name:
 *
 *   symbol                       required  what
 *   paramd_rule_abi_version      yes       PARAMD_RULE_ABI_VERSION it was
 *                                          built against
 *   paramd_rule_state_floats     yes       state floats per parameter, k
 *   paramd_rule_apply            yes       the update
 *   paramd_rule_init_state       no        starting state (default: zeros)
 *   paramd_rule_check            no        validate hyper-parameters
 *
 * Any missing required symbol, or an ABI version other than the server's,
 * makes the table fail to open with a message naming the file and the
 * symbol; the server does not crash.  examples/plugins/clip_sgd.c is a
 * complete plugin; build one with
 *
 *   cc -O2 -shared -fPIC -I include -o clip_sgd.so examples/plugins/clip_sgd.c
 *
 * Data layout.  One call updates a run of n parameters: w[0..n) (float32),
 * the gradient g[0..n) (for a synchronous table the mean, or sum, of the
 * workers' gradients of one clock), and k = paramd_rule_state_floats()
 * state planes of n floats: state[j][i] is state float j of parameter i.
 * For a dense table a run is (part of) a pushed range; for a sparse table
 * it is one row of `dim` floats.  The planes are separate pointers because
 * a run is often a slice of a longer plane.  w, g and every plane are
 * distinct, non-overlapping memory (hence restrict), aligned only as
 * float; n may be 0.  With k = 0, state is NULL.
 *
 * `step` is the 1-based number of updates these parameters have received,
 * counting this one (always >= 1).  In asynchronous mode different rows or
 * ranges have different step counts.
 *
 * Hyper-parameters arrive as an array of doubles, indexed by the
 * PARAMD_RULE_HYPER_* constants below; they are the table spec's values
 * (lr=..., l1=..., ...) or their defaults.  `nhyper` is the length of the
 * array: a later server may append entries (without changing the ABI
 * version), so read index i only if i < nhyper.  A plugin is free to give
 * a hyper-parameter its own meaning (clip_sgd.c reads l1 as its clipping
 * threshold); say so in its documentation.
 *
 * Threads: the server calls paramd_rule_apply and paramd_rule_init_state
 * from several threads at once, on non-overlapping runs of the same table
 * and on different tables.  A plugin therefore must not keep writable
 * global state (or must guard it itself), must not keep the pointers after
 * returning, and should be fast: it runs with the shard's lock held.
 * paramd_rule_abi_version, paramd_rule_state_floats and paramd_rule_check
 * may be called at any time from any thread and must be pure.  No
 * function may fail, exit, longjmp or throw; apply is called only with
 * hyper-parameters that paramd_rule_check (if present) accepted.
 *
 * Versioning: PARAMD_RULE_ABI_VERSION changes when a signature or a
 * meaning here changes; a server loads only plugins that report exactly
 * its version.  New optional symbols and new hyper-parameters at the end
 * of the array do not change it.
 */
#ifndef PARAMD_RULE_H
#define PARAMD_RULE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define PARAMD_RULE_RESTRICT __restrict
#else
#define PARAMD_RULE_RESTRICT restrict
#endif

/* Export a symbol even from an object built with -fvisibility=hidden. */
#if defined(__GNUC__)
#define PARAMD_RULE_EXPORT __attribute__((visibility("default")))
#else
#define PARAMD_RULE_EXPORT
#endif

/* ==== Constants ========================================================== */

#define PARAMD_RULE_ABI_VERSION 1u

/* Index of each hyper-parameter in the `hyper` array (the spec's names). */
#define PARAMD_RULE_HYPER_LR 0       /* learning rate (ftrl: alpha) */
#define PARAMD_RULE_HYPER_MOMENTUM 1 /* momentum coefficient */
#define PARAMD_RULE_HYPER_BETA1 2    /* adam: decay of the first moment */
#define PARAMD_RULE_HYPER_BETA2 3    /* adam: decay of the second moment */
#define PARAMD_RULE_HYPER_EPS 4      /* adagrad, adam: denominator guard */
#define PARAMD_RULE_HYPER_INIT_ACC 5 /* adagrad: starting accumulator */
#define PARAMD_RULE_HYPER_L1 6       /* ftrl: L1 strength */
#define PARAMD_RULE_HYPER_L2 7       /* ftrl: L2 strength */
#define PARAMD_RULE_HYPER_BETA 8     /* ftrl: beta of the per-coordinate rate */
#define PARAMD_RULE_NHYPER 9         /* entries in this version's array */

/* The most state floats per parameter a plugin may ask for. */
#define PARAMD_RULE_MAX_STATE_FLOATS 16

/* ==== The functions a plugin defines ===================================== */

/* Return PARAMD_RULE_ABI_VERSION (write PARAMD_RULE_DEFINE_ABI_VERSION()
 * once in the plugin to define it). */
typedef uint32_t paramd_rule_abi_version_fn(void);
/* Return k, the state floats per parameter (0 .. MAX_STATE_FLOATS).  Asked
 * once, when the plugin is loaded. */
typedef size_t paramd_rule_state_floats_fn(void);
/* Optional.  Set the starting state of n parameters: state[j] points at n
 * floats for j < k.  Without it the state starts at zero. */
typedef void paramd_rule_init_state_fn(float *const *state, size_t n,
                                       const double *hyper, size_t nhyper);
/* Apply gradient g to parameters w and their state (see the layout
 * above). */
typedef void paramd_rule_apply_fn(float *PARAMD_RULE_RESTRICT w,
                                  float *const *state,
                                  const float *PARAMD_RULE_RESTRICT g,
                                  size_t n, int64_t step, const double *hyper,
                                  size_t nhyper);
/* Optional.  Return 0 if the hyper-parameters suit this rule; otherwise
 * write a one-line reason into err (errlen bytes, NUL-terminated; err may
 * be NULL when errlen is 0) and return nonzero.  The server calls it when
 * a table is opened and refuses the table if it fails. */
typedef int paramd_rule_check_fn(const double *hyper, size_t nhyper,
                                 char *err, size_t errlen);

PARAMD_RULE_EXPORT paramd_rule_abi_version_fn paramd_rule_abi_version;
PARAMD_RULE_EXPORT paramd_rule_state_floats_fn paramd_rule_state_floats;
PARAMD_RULE_EXPORT paramd_rule_init_state_fn paramd_rule_init_state;
PARAMD_RULE_EXPORT paramd_rule_apply_fn paramd_rule_apply;
PARAMD_RULE_EXPORT paramd_rule_check_fn paramd_rule_check;

/* Defines paramd_rule_abi_version() returning the version this plugin was
 * compiled against. */
#define PARAMD_RULE_DEFINE_ABI_VERSION()                                       \
    PARAMD_RULE_EXPORT uint32_t paramd_rule_abi_version(void) {                \
        return PARAMD_RULE_ABI_VERSION;                                        \
    }

#ifdef __cplusplus
}
#endif

#endif
