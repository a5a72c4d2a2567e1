/*
 * fuzz_spec.c - libFuzzer harness: table specs (table/spec.c).  The first
 * byte picks the table kind (bit 0: sparse), the rest is the spec text.
 * Properties:
 *   - parse-print-parse: a spec that parses has a canonical text that
 *     parses back to the same definition, whose canonical text is the
 *     same (a fixed point);
 *   - order does not matter: the same tokens in reverse order parse to the
 *     same canonical text, or fail alike, unless a key is repeated (its
 *     last value wins, by design: paramd train puts --lr first so that an
 *     lr inside --rule overrides it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "table/spec.h"

static void same_spec(const pd_table_def *a, const pd_table_def *b) {
    CHECK(a->rule == b->rule && a->consistency == b->consistency);
    CHECK(a->aggregate == b->aggregate && a->staleness == b->staleness);
    CHECK(a->backup == b->backup && a->elastic == b->elastic);
    CHECK(strcmp(a->plugin, b->plugin) == 0);
    for (int i = 0; i < PD_HYPER_COUNT; i++)
        if (pd_rule_uses_hyper((pd_rule_kind)a->rule, pd_hyper_names[i]))
            CHECK(a->hyper[i] == b->hyper[i]);
    if (a->kind == PD_TABLE_SPARSE)
        CHECK(a->init == b->init && a->init_param == b->init_param && a->seed == b->seed);
}

/* The tokens of spec (as the parser splits them) into tok[], reversed
 * into out; 1 if some key appears twice. */
static int reversed(const char *spec, char *out, size_t outlen) {
    char buf[2 * PD_MAX_SPEC + 2];
    char *tok[PD_MAX_SPEC];
    int n = 0, dup = 0;
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *t = strtok_r(buf, " \t\n,", &save); t && n < PD_MAX_SPEC;
         t = strtok_r(NULL, " \t\n,", &save))
        tok[n++] = t;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) {
            size_t ki = strcspn(tok[i], "="), kj = strcspn(tok[j], "=");
            if (ki == kj && strncmp(tok[i], tok[j], ki) == 0) dup = 1;
        }
    size_t off = 0;
    out[0] = '\0';
    for (int i = n - 1; i >= 0 && off < outlen; i--)
        off += (size_t)snprintf(out + off, outlen - off, "%s%s", tok[i], i ? " " : "");
    return dup;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > PD_MAX_SPEC + 2) return 0;
    char spec[PD_MAX_SPEC + 2], c1[2 * PD_MAX_SPEC], c2[2 * PD_MAX_SPEC];
    memcpy(spec, data + 1, size - 1);
    spec[size - 1] = '\0';
    uint32_t kind = data[0] & 1 ? PD_TABLE_SPARSE : PD_TABLE_DENSE;
    pd_table_def d1 = {0}, d2 = {0}, d3 = {0};
    d1.kind = d2.kind = d3.kind = kind;
    pd_err e = {0};
    int rc = pd_spec_parse(spec, &d1, &e);
    if (rc == 0) {
        pd_spec_canonical(&d1, c1, sizeof c1);
        if (pd_spec_parse(c1, &d2, &e) != 0)
            CHECK_FAIL_("spec '%s' has canonical form '%s', which does not parse: %s",
                        spec, c1, e.msg);
        same_spec(&d1, &d2);
        pd_spec_canonical(&d2, c2, sizeof c2);
        if (strcmp(c1, c2) != 0)
            CHECK_FAIL_("canonical '%s' of spec '%s' is not a fixed point: '%s'", c1, spec, c2);
    } else {
        CHECK(rc == PARAMD_EINVAL && e.msg[0]);
    }
    char rev[2 * PD_MAX_SPEC + 2];
    if (!reversed(spec, rev, sizeof rev)) {
        pd_err e3 = {0};
        int rc3 = pd_spec_parse(rev, &d3, &e3);
        if ((rc == 0) != (rc3 == 0))
            CHECK_FAIL_("'%s' %s but the same keys reversed, '%s', %s", spec,
                        rc ? "fails" : "parses", rev, rc3 ? e3.msg : "parse");
        if (rc == 0) {
            pd_spec_canonical(&d3, c2, sizeof c2);
            if (strcmp(c1, c2) != 0)
                CHECK_FAIL_("'%s' means '%s' but reversed, '%s', means '%s'", spec, c1, rev, c2);
        }
    }
    return 0;
}
