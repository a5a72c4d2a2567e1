/*
 * fuzz_table_def.c - libFuzzer harness: the TABLE_CREATE payload codec
 * (pd_table_def_decode, wire.c).  Properties: decode reads only the bytes
 * given; a definition it accepts has sizes and fields in range, and
 * encodes to bytes that decode to the same definition (and encode to the
 * same bytes again: the canonical encoding).
 */
#include <math.h>
#include <string.h>

#include "../check.h"
#include "common/bytes.h"
#include "wire/wire.h"

static void same_def(const pd_table_def *a, const pd_table_def *b) {
    CHECK(a->n == b->n && a->lo == b->lo && a->hi == b->hi);
    CHECK(a->rule == b->rule && a->consistency == b->consistency);
    CHECK(a->aggregate == b->aggregate && a->staleness == b->staleness);
    CHECK(a->backup == b->backup && a->nhyper == b->nhyper);
    for (uint32_t i = 0; i < a->nhyper; i++) CHECK(a->hyper[i] == b->hyper[i]);
    CHECK(strcmp(a->plugin, b->plugin) == 0 && a->kind == b->kind);
    CHECK(a->elastic == b->elastic);
    if (a->kind == PD_TABLE_SPARSE)
        CHECK(a->init == b->init && a->init_param == b->init_param && a->seed == b->seed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pd_table_def d, d2;
    pd_err e = {0};
    if (pd_table_def_decode(data, size, &d, &e) != 0) {
        CHECK(e.code == PARAMD_EPROTO && e.msg[0]);
        return 0;
    }
    CHECK(d.n >= 1 && d.lo <= d.hi && d.hi <= d.n && d.nhyper <= PD_MAX_HYPER);
    for (uint32_t i = 0; i < d.nhyper; i++) CHECK(isfinite(d.hyper[i]));
    CHECK(strlen(d.plugin) <= PD_MAX_PLUGIN_PATH);
    pd_buf b, b2;
    pd_buf_init(&b);
    pd_buf_init(&b2);
    pd_table_def_encode(&b, &d);
    CHECK(!b.oom);
    if (pd_table_def_decode(b.p, b.len, &d2, &e) != 0)
        CHECK_FAIL_("a definition that decoded does not decode once encoded: %s", e.msg);
    same_def(&d, &d2);
    pd_table_def_encode(&b2, &d2);
    CHECK(b2.len == b.len && memcmp(b.p, b2.p, b.len) == 0);
    pd_buf_free(&b);
    pd_buf_free(&b2);
    return 0;
}
