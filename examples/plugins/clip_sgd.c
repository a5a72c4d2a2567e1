/*
 * clip_sgd.c - an update-rule plugin for paramd: SGD with per-element
 * gradient clipping.
 *
 *   w[i] -= lr * clip(g[i], -c, c)        c = the table's "l1" value
 *
 * paramd has no hyper-parameter named "clip", so this rule reads the l1
 * slot as its threshold (a plugin may give any slot its own meaning; see
 * include/paramd_rule.h).  c must be > 0: paramd_rule_check refuses a
 * table that forgets it, instead of silently clipping every gradient to 0.
 * A NaN gradient stays NaN (and spoils w), as it would with plain sgd.
 *
 * It keeps no state (paramd_rule_state_floats() is 0) and no globals, so
 * the server may call it from several threads at once.
 *
 * Build (from the repository root):
 *   cc -O2 -shared -fPIC -I include -o clip_sgd.so examples/plugins/clip_sgd.c
 * put clip_sgd.so in the servers' --plugin-dir DIR and open a table with the
 * spec "plugin=clip_sgd lr=0.1 l1=1" (see examples/plugins/README.md).
 */
#include <stdio.h>

#include "paramd_rule.h"

PARAMD_RULE_DEFINE_ABI_VERSION()

size_t paramd_rule_state_floats(void) { return 0; }

int paramd_rule_check(const double *hyper, size_t nhyper, char *err,
                      size_t errlen) {
    if (nhyper <= PARAMD_RULE_HYPER_L1 || !(hyper[PARAMD_RULE_HYPER_L1] > 0)) {
        if (errlen)
            snprintf(err, errlen,
                     "clip_sgd needs its clipping threshold: set l1 > 0 "
                     "(l1 is the threshold; got %g)",
                     nhyper > PARAMD_RULE_HYPER_L1 ? hyper[PARAMD_RULE_HYPER_L1]
                                                   : 0.0);
        return -1;
    }
    return 0;
}

/* w, g: (n,).  No branches in the loop: the two conditional expressions
 * are min/max, so the compiler vectorizes it (at -O3, or -O2 -ftree-vectorize
 * -fvect-cost-model=dynamic). */
void paramd_rule_apply(float *restrict w, float *const *state,
                       const float *restrict g, size_t n, int64_t step,
                       const double *hyper, size_t nhyper) {
    (void)state, (void)step, (void)nhyper;
    const float lr = (float)hyper[PARAMD_RULE_HYPER_LR];
    const float c = (float)hyper[PARAMD_RULE_HYPER_L1];
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        gi = gi > c ? c : gi;
        gi = gi < -c ? -c : gi;
        w[i] -= lr * gi;
    }
}
