/*
 * sparse.c - sparse tables: push and pull of keyed rows.
 *
 * A sparse request is a list of keys (and, for a push, one row of dim
 * floats per key).  The client groups the keys by server (pd_sparse_server,
 * the same formula the servers check), sends each server its part, in
 * chunks of about chunk_bytes round-robin over the servers (async tables;
 * a sync or ssp push is exactly one frame per server, empty or not, since
 * the server counts one push per worker and clock), and the receivers put
 * the pulled rows back in the caller's order.
 *
 * Copies: with one server, keys and rows go straight from and into the
 * caller's buffers.  With several, keys and gradients are first grouped by
 * server into memory the request owns, and pulled rows are read into it
 * and scattered by the receiver thread.  An async push that has to be cut
 * into several frames first sums its duplicated keys, so that each key is
 * still applied once, after summing, as a single frame would be. */
#include <stdio.h>
#include <string.h>

#include "client/client_impl.h"
#include "common/common.h"
#include "common/keymap.h"
#include "paramd.h"
#include "wire/wire.h"

#define PD_SPARSE_MAX_KEYS (UINT32_MAX - 1ull) /* per call */

typedef struct sparse_plan {
    int push;
    uint64_t n;            /* keys to send (after summing duplicates) */
    const uint64_t *keys;  /* server k's keys are [off[k], off[k+1]) */
    const float *vals;     /* push: key i's row at vals + i*dim */
    float *dst;            /* pull: where key i's row is read, + i*dim */
    const uint64_t *pos;   /* pull, several servers: key i's request index */
    float *out;            /* pull: the caller's rows */
    uint64_t *off, *cur;   /* S+1, S */
    uint64_t off1[2], cur1[1];
    void *block;           /* what the plan allocated; the request owns it */
} sparse_plan;

static int sparse_check(paramd_table *t, const uint64_t *keys, uint64_t n,
                        const void *buf) {
    if (t->def.kind != PD_TABLE_SPARSE)
        return cl_err(t->c, PARAMD_EINVAL,
                      "table '%s' is dense: use paramd_pull and paramd_push",
                      t->name);
    if (n && (!keys || !buf))
        return cl_err(t->c, PARAMD_EINVAL, "table '%s': NULL keys or rows",
                      t->name);
    if (n > PD_SPARSE_MAX_KEYS)
        return cl_err(t->c, PARAMD_EINVAL,
                      "table '%s': %llu keys in one call (at most %llu)",
                      t->name, (unsigned long long)n,
                      (unsigned long long)PD_SPARSE_MAX_KEYS);
    return 0;
}

/* Sum duplicated keys: uk[0..*nu) are the distinct keys in order of first
 * appearance and ug their rows summed in request order (what a server does
 * with duplicates in one push).  0, or -1 out of memory. */
static int sum_duplicates(const uint64_t *keys, uint64_t n, const float *g,
                          uint32_t dim, uint64_t *uk, float *ug, uint64_t *nu) {
    pd_keymap m;
    pd_keymap_init(&m);
    if (pd_keymap_reserve(&m, n) != 0) return -1;
    uint64_t u = 0;
    for (uint64_t i = 0; i < n; i++) {
        int added;
        uint32_t at = pd_keymap_put(&m, keys[i], (uint32_t)u, &added);
        const float *src = g + i * dim;
        if (added) {
            uk[u] = keys[i];
            memcpy(ug + u * dim, src, dim * sizeof(float));
            u++;
        } else {
            float *dst = ug + (size_t)at * dim;
            for (uint32_t j = 0; j < dim; j++) dst[j] += src[j];
        }
    }
    pd_keymap_free(&m);
    *nu = u;
    return 0;
}

/* Keys per frame: about chunk_bytes of rows, at least one. */
static uint64_t sparse_chunk(const paramd_client *c, int push, uint32_t dim) {
    uint64_t per = (uint64_t)dim * 4 + (push ? 8 : 0);
    uint64_t k = c->chunk_bytes / per;
    return k ? k : 1;
}

/* Build what goes to each server.  Nothing is sent; on failure nothing is
 * allocated.  0 or a PARAMD_E* code (with the client's error set). */
static int sparse_plan_make(paramd_table *t, sparse_plan *p, int push,
                            const uint64_t *keys, uint64_t n,
                            const float *grads, float *rows) {
    paramd_client *c = t->c;
    uint32_t S = (uint32_t)c->S, dim = (uint32_t)t->n;
    int clocked = t->def.consistency != PD_CONS_ASYNC;
    int dedupe = push && !clocked && n > sparse_chunk(c, 1, dim);
    size_t rowb = (size_t)dim * sizeof(float);
    memset(p, 0, sizeof *p);
    p->push = push;
    p->n = n;
    p->keys = keys;
    p->vals = grads;
    p->dst = rows;
    p->out = rows;
    p->off = p->off1, p->cur = p->cur1;
    p->off1[1] = n;
    if (!dedupe && S == 1) return 0; /* straight from and into the caller */
    /* One block: u64 arrays, then float arrays, then the u32 one. */
    size_t nd = dedupe ? n : 0, ng = S > 1 ? n : 0;
    size_t bytes = (S > 1 ? (2 * (size_t)S + 1) * 8 : 0) + nd * 8 + ng * 8 +
                   (!push ? ng * 8 : 0) + nd * rowb + ng * rowb + ng * 4;
    uint8_t *b = pd_malloc(bytes ? bytes : 1);
    if (!b) return cl_err(c, PARAMD_ENOMEM, "out of memory for %zu bytes", bytes);
    p->block = b;
    uint64_t *off = NULL, *cur = NULL, *uk = NULL, *gk = NULL, *pos = NULL;
    if (S > 1) off = (uint64_t *)(void *)b, b += (S + 1) * 8;
    if (S > 1) cur = (uint64_t *)(void *)b, b += (size_t)S * 8;
    if (nd) uk = (uint64_t *)(void *)b, b += nd * 8;
    if (ng) gk = (uint64_t *)(void *)b, b += ng * 8;
    if (ng && !push) pos = (uint64_t *)(void *)b, b += ng * 8;
    float *ug = nd ? (float *)(void *)b : NULL;
    b += nd * rowb;
    float *gv = ng ? (float *)(void *)b : NULL; /* push: rows; pull: replies */
    b += ng * rowb;
    uint32_t *srv = ng ? (uint32_t *)(void *)b : NULL;
    if (dedupe) {
        if (sum_duplicates(keys, n, grads, dim, uk, ug, &p->n) != 0) {
            pd_free(p->block);
            p->block = NULL;
            return cl_err(c, PARAMD_ENOMEM, "out of memory");
        }
        p->keys = uk;
        p->vals = ug;
        p->off1[1] = p->n;
    }
    if (S == 1) return 0;
    /* Counting sort by server: stable, so each server sees its keys in
     * request order. */
    uint64_t N = p->n;
    const uint64_t *K = p->keys;
    const float *V = p->vals;
    memset(off, 0, (S + 1) * 8);
    for (uint64_t i = 0; i < N; i++) {
        srv[i] = pd_sparse_server(K[i], S);
        off[srv[i] + 1]++;
    }
    for (uint32_t k = 0; k < S; k++) off[k + 1] += off[k];
    memcpy(cur, off, (size_t)S * 8);
    for (uint64_t i = 0; i < N; i++) {
        uint64_t j = cur[srv[i]]++;
        gk[j] = K[i];
        if (push)
            memcpy(gv + j * dim, V + i * dim, rowb);
        else
            pos[j] = i;
    }
    p->keys = gk;
    p->vals = push ? gv : NULL;
    p->dst = push ? NULL : gv;
    p->pos = pos;
    p->off = off;
    p->cur = cur;
    return 0;
}

/* Send the plan's frames as sub-requests of r. */
static void sparse_send(paramd_table *t, paramd_request *r, sparse_plan *p, int64_t clock,
                        int32_t only) {
    paramd_client *c = t->c;
    uint32_t S = (uint32_t)c->S, dim = (uint32_t)t->n;
    int clocked = t->def.consistency != PD_CONS_ASYNC;
    /* With a deadline a sync/ssp pull goes as one frame per server too,
     * so that each server's part waits for its clock (op_timeout_ms) once */
    uint64_t chunk = clocked && (p->push || c->op_timeout_ms) ? UINT64_MAX
                                                              : sparse_chunk(c, p->push, dim);
    uint16_t type = p->push ? PD_MSG_SPARSE_PUSH : PD_MSG_SPARSE_PULL;
    int can_batch = batchable(t, type);
    memcpy(p->cur, p->off, (size_t)S * 8);
    for (int more = 1, first = 1; more; first = 0) {
        more = 0;
        for (uint32_t k = 0; k < S; k++) {
            if (only >= 0 && k != (uint32_t)only) continue;
            uint64_t a = p->cur[k], end = p->off[k + 1];
            /* a sync/ssp push goes to every server, with no keys too */
            if (a >= end && !(first && clocked && p->push)) continue;
            uint64_t m = end - a < chunk ? end - a : chunk;
            p->cur[k] += m;
            if (p->cur[k] < end) more = 1;
            uint8_t pre[PD_SPARSE_PREFIX];
            for (int i = 0; i < 8; i++) pre[i] = (uint8_t)(m >> (8 * i));
            pending pt = {0};
            pt.type = type;
            /* (an empty sync push may have no arrays at all: no NULL + 0) */
            const uint64_t *keys = m ? p->keys + a : NULL;
            if (p->push) {
                link_send_ex(&c->links[k], r, &pt, can_batch, t->id, clock, pre, sizeof pre,
                             keys, m * 8, m ? p->vals + a * dim : NULL,
                             m * dim * sizeof(float));
            } else {
                pt.dst = p->dst + a * dim;
                pt.count = m * dim;
                pt.pos = p->pos ? p->pos + a : NULL;
                pt.out = p->out;
                pt.dim = dim;
                link_send_ex(&c->links[k], r, &pt, can_batch, t->id, clock, pre,
                             sizeof pre, keys, m * 8, NULL, 0);
            }
        }
    }
}

/* r's part for one server again, to a lost server's replacement
 * (request.c, req_retry). */
static void reissue_sparse(paramd_request *r, int32_t server) {
    sparse_send(r->table, r, r->op_plan, r->op_clock, server);
}

static int sparse_start(paramd_table *t, int push, const uint64_t *keys,
                        uint64_t n, const float *grads, float *rows,
                        paramd_request *r) {
    int rc = sparse_check(t, keys, n, push ? (const void *)grads : (const void *)rows);
    if (!rc && push) rc = table_check_push(t);
    if (rc) return rc;
    /* on the heap: the request keeps it to send a part again (its off and
     * cur may point into it) */
    sparse_plan *pp = pd_malloc(sizeof *pp);
    if (!pp) return cl_err(t->c, PARAMD_ENOMEM, "out of memory");
    if ((rc = sparse_plan_make(t, pp, push, keys, n, grads, rows))) {
        pd_free(pp);
        return rc;
    }
    if (push && t->def.consistency != PD_CONS_ASYNC) {
        /* One frame per server: check them all before sending any, so a
         * refused push never leaves a clock half pushed. */
        for (int32_t k = 0; k < t->c->S; k++) {
            uint64_t m = pp->off[k + 1] - pp->off[k];
            if (m > (PD_MAX_FRAME_DEFAULT - PD_SPARSE_PREFIX) / (8 + t->n * 4)) {
                pd_free(pp->block);
                pd_free(pp);
                return cl_err(t->c, PARAMD_ETOOBIG,
                              "table '%s': %llu keys for server %d in one "
                              "sync push exceed the frame limit of %llu bytes "
                              "(sync sparse pushes are one frame per server "
                              "and clock)",
                              t->name, (unsigned long long)m, k,
                              (unsigned long long)PD_MAX_FRAME_DEFAULT);
            }
        }
    }
    req_init(r, t->c);
    r->owned = pp->block;
    r->op_plan = pp;
    r->reissue = reissue_sparse;
    r->op_clock = paramd_get_clock(t->c);
    r->table = t;
    sparse_send(t, r, pp, r->op_clock, -1);
    req_done(r, 0, ""); /* drop the issuer's guard */
    return 0;
}

int paramd_sparse_open(paramd_client *c, const char *name, uint32_t dim,
                       const char *spec, paramd_table **out) {
    return table_open(c, name, dim, PD_TABLE_SPARSE, spec, NULL, out);
}

uint32_t paramd_table_dim(const paramd_table *t) {
    return t->def.kind == PD_TABLE_SPARSE ? (uint32_t)t->n : 0;
}

int paramd_sparse_pull(paramd_table *t, const uint64_t *keys, uint64_t nkeys,
                       float *rows) {
    paramd_request r;
    int rc = sparse_start(t, 0, keys, nkeys, NULL, rows, &r);
    return rc ? rc : req_finish(&r);
}

int paramd_sparse_push(paramd_table *t, const uint64_t *keys, uint64_t nkeys,
                       const float *grads) {
    paramd_request r;
    int rc = sparse_start(t, 1, keys, nkeys, grads, NULL, &r);
    return rc ? rc : req_finish(&r);
}

static int sparse_async(paramd_table *t, int push, const uint64_t *keys,
                        uint64_t n, const float *grads, float *rows,
                        paramd_request **req) {
    *req = NULL;
    paramd_request *r = pd_malloc(sizeof *r);
    if (!r) return cl_err(t->c, PARAMD_ENOMEM, "out of memory");
    int rc = sparse_start(t, push, keys, n, grads, rows, r);
    if (rc) {
        pd_free(r);
        return rc;
    }
    req_kick(r); /* read in the background until it is waited for */
    r->heap = 1;
    *req = r;
    return 0;
}

int paramd_sparse_pull_async(paramd_table *t, const uint64_t *keys,
                             uint64_t nkeys, float *rows, paramd_request **req) {
    return sparse_async(t, 0, keys, nkeys, NULL, rows, req);
}

int paramd_sparse_push_async(paramd_table *t, const uint64_t *keys,
                             uint64_t nkeys, const float *grads,
                             paramd_request **req) {
    return sparse_async(t, 1, keys, nkeys, grads, NULL, req);
}
