/*
 * fuzz_rejoin.c - libFuzzer harness: SERVER_REJOIN's records
 * (wire/rejoin.c), which a coordinator reads from a server that rejoins it.
 * The input is read as one part, and again cut in two at a place its last
 * byte names (a rejoin comes in parts, each read on top of the last).
 * Properties: an accepted rejoin is in range (rejoin.h); encoding what was
 * read and reading that gives the same; nothing is left allocated
 * (LeakSanitizer), accepted or not.
 */
#include <string.h>

#include "../check.h"
#include "wire/rejoin.h"

static void check_in_range(const pd_rejoin *r) {
    if (!r->have_head) {
        CHECK(r->nt == 0 && r->gen == NULL);
        return;
    }
    CHECK(r->S >= 1 && r->S <= PD_MAX_SERVERS && r->idx < r->S);
    CHECK(r->W >= 1 && r->W <= r->M && r->M <= PD_REJOIN_MAX_SLOTS);
    CHECK(r->nt <= PD_REJOIN_MAX_TABLES);
    for (uint32_t i = 0; i < r->nt; i++)
        CHECK(r->t[i].id >= 1 && r->t[i].id <= PD_REJOIN_MAX_TABLES && r->t[i].name[0]);
    for (uint32_t w = 0; w < r->M; w++) CHECK(r->gone[w] <= 1);
}

/* Encode what r holds and read it back: the same. */
static void round_trip(const pd_rejoin *r) {
    if (!r->have_head) return;
    pd_buf b;
    pd_buf_init(&b);
    pd_rejoin_put_head(&b, r->idx, r->S, r->W, r->M, r->key, r->addr);
    for (uint32_t i = 0; i < r->nt; i++)
        pd_rejoin_put_table(&b, r->t[i].id, r->t[i].name, r->t[i].n, r->t[i].spec);
    for (uint32_t w = 0; w < r->M; w++)
        if (r->gen[w] || r->gone[w]) pd_rejoin_put_rank(&b, w, r->gen[w], r->gone[w]);
    CHECK(!b.oom);
    pd_rejoin q;
    memset(&q, 0, sizeof q);
    pd_err e = {0};
    CHECK(pd_rejoin_read(&q, b.p, b.len, &e) == 0);
    CHECK(q.idx == r->idx && q.S == r->S && q.W == r->W && q.M == r->M && q.nt == r->nt);
    CHECK(memcmp(q.key, r->key, sizeof q.key) == 0 && strcmp(q.addr, r->addr) == 0);
    for (uint32_t i = 0; i < q.nt; i++)
        CHECK(q.t[i].id == r->t[i].id && q.t[i].n == r->t[i].n &&
              strcmp(q.t[i].name, r->t[i].name) == 0 && strcmp(q.t[i].spec, r->t[i].spec) == 0);
    CHECK(memcmp(q.gen, r->gen, r->M * sizeof *q.gen) == 0 &&
          memcmp(q.gone, r->gone, r->M) == 0);
    pd_rejoin_free(&q);
    pd_buf_free(&b);
}

static void one(const uint8_t *data, size_t size, size_t cut) {
    pd_rejoin r;
    memset(&r, 0, sizeof r);
    pd_err e = {0};
    int rc = pd_rejoin_read(&r, data, cut, &e);
    if (rc == 0) rc = pd_rejoin_read(&r, data + cut, size - cut, &e);
    if (rc == 0) {
        check_in_range(&r);
        round_trip(&r);
    } else {
        CHECK(rc == PARAMD_EPROTO || rc == PARAMD_ENOMEM);
        CHECK(strstr(e.msg, "SERVER_REJOIN") || rc == PARAMD_ENOMEM);
    }
    pd_rejoin_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one(data, size, 0);
    if (size > 1) one(data, size - 1, data[size - 1] % size);
    return 0;
}
