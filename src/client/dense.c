/*
 * dense.c - opening a table (of either kind), and the dense tables: how a
 * range is split over the servers, push and pull.
 *
 * Opening.  table_open asks the coordinator (TABLE_OPEN) for the table's
 * id.  The worker that created it then defines the table's shard on
 * every server (TABLE_CREATE), writes the initial values (SET), and tells
 * the coordinator the table is ready (TABLE_READY), so that every other
 * worker's open returns only once the table exists everywhere.
 *
 * Sharding.  Server k holds [floor(n*k/S), floor(n*(k+1)/S)) of a table
 * of n floats (pd_partition_lo, the formula the servers check).  A range
 * is split by server and cut into chunks of chunk_bytes, sent round-robin
 * over the servers so that all of them work at once (issue_range); the
 * replies are read straight into the caller's buffer (rx.c), so the whole
 * range is reassembled in place.  From or into a shared buffer that a
 * server has mapped (region.c), that server gets one small PUSH_REGION or
 * PULL_REGION frame for its whole part instead.
 *
 * Threads: a push or pull touches only its request and the links
 * (outbox.c), so any thread may issue them.  table_open adds to the
 * client's list of tables without a lock: it must not race with another
 * open or with paramd_close (paramd.h).
 */
#include <stdio.h>
#include <string.h>

#include "client/client_impl.h"
#include "common/common.h"
#include "paramd.h"
#include "table/spec.h"
#include "wire/wire.h"

/* Parts of a push or pull from or into a shared buffer (paramd_alloc)
 * smaller than this go through the rings as usual (and may be coalesced):
 * a reference saves copies only once there is something to copy. */
#define PD_REGION_MIN_BYTES (64u << 10)

/* ==== Sharding ========================================================== */

static uint64_t shard_lo(uint64_t n, int32_t S, int32_t k) {
    return pd_partition_lo(n, (uint32_t)S, (uint32_t)k);
}

/* Issue sub-requests for [off, off+count) of t: per server, in chunks,
 * round-robin over servers so that all of them work at once.  From or into
 * a shared buffer (paramd_alloc) mapped in a server, that server gets one
 * small PUSH_REGION or PULL_REGION frame for its whole part instead
 * (parts of at least PD_REGION_MIN_BYTES; smaller ones go as usual). */
static void issue_range(paramd_table *t, paramd_request *r, uint16_t type,
                        uint64_t off, uint64_t count, const float *src,
                        float *dst, int64_t clock, int32_t only) {
    paramd_client *c = t->c;
    uint64_t end = off + count;
    uint64_t chunk = c->chunk_bytes / 4;
    int can_batch = batchable(t, type);
    region g = {0}; /* read only when the lookup found it; zeroed for -O1 builds, where GCC cannot see that */
    const float *buf = type == PD_MSG_PULL ? dst : src;
    int in_region = (type == PD_MSG_PUSH || type == PD_MSG_PULL) &&
                    region_lookup(c, buf, count * 4, &g);
    uint64_t pos[PD_MAX_SERVERS > 64 ? 64 : PD_MAX_SERVERS];
    int32_t first = -1, nsv = 0;
    /* The servers this range touches are consecutive: find them. */
    for (int32_t k = 0; k < c->S; k++) {
        uint64_t lo = shard_lo(t->n, c->S, k), hi = shard_lo(t->n, c->S, k + 1);
        if (hi <= off || lo >= end || lo == hi || (only >= 0 && k != only)) continue;
        if (first < 0) first = k;
        nsv = k - first + 1;
    }
    for (int32_t base = 0; base < nsv; base += 64) {
        int32_t m = nsv - base < 64 ? nsv - base : 64;
        for (int32_t j = 0; j < m; j++) {
            uint64_t lo = shard_lo(t->n, c->S, first + base + j);
            pos[j] = lo > off ? lo : off;
        }
        for (int more = 1; more;) {
            more = 0;
            for (int32_t j = 0; j < m; j++) {
                int32_t k = first + base + j;
                uint64_t hi = shard_lo(t->n, c->S, k + 1);
                if (hi > end) hi = end;
                if (pos[j] >= hi) continue;
                uint64_t a = pos[j], len = hi - a < chunk ? hi - a : chunk;
                if (in_region && __atomic_load_n(&g.on[k], __ATOMIC_RELAXED) &&
                    (hi - a) * 4 >= PD_REGION_MIN_BYTES) {
                    uint8_t ref[PD_REGION_REF_PAYLOAD];
                    pending pt = {0};
                    pt.type = type == PD_MSG_PULL ? PD_MSG_PULL_REGION : PD_MSG_PUSH_REGION;
                    pt.count = hi - a;
                    put_le64(ref, a);
                    put_le64(ref + 8, hi - a);
                    put_le64(ref + 16, g.id);
                    put_le64(ref + 24, (uint64_t)((const uint8_t *)(buf + (a - off)) - g.base));
                    pos[j] = hi;
                    link_send_ex(&c->links[k], r, &pt, 0, t->id, clock, ref,
                                 sizeof ref, NULL, 0, NULL, 0);
                    continue;
                }
                /* a later chunk of this pull to the same server says so
                 * (PD_PULL_MORE), so that a deadline its first chunk spent
                 * waiting for the clock is not waited again by each chunk
                 * (sent only with a deadline: to a server that knows) */
                uint64_t lo = shard_lo(t->n, c->S, k);
                int later = pos[j] > (lo > off ? lo : off);
                pos[j] += len;
                if (pos[j] < hi) more = 1;
                uint8_t pre[PD_PULL_FLAGS_PAYLOAD];
                put_le64(pre, a);
                put_le64(pre + 8, len);
                size_t plen = PD_PULL_PAYLOAD;
                if (later && c->op_timeout_ms && t->def.consistency != PD_CONS_ASYNC) {
                    put_le32(pre + PD_PULL_PAYLOAD, PD_PULL_MORE);
                    plen = PD_PULL_FLAGS_PAYLOAD;
                }
                if (type == PD_MSG_PULL)
                    link_send(&c->links[k], r, type, can_batch, t->id, clock,
                              pre, plen, NULL, 0, dst + (a - off), len);
                else
                    link_send(&c->links[k], r, type, can_batch, t->id, clock,
                              pre, PD_RANGE_PREFIX, src + (a - off), len * 4, NULL, 0);
            }
        }
    }
}

/* 0, or PARAMD_EWORKER if t's client is a tool (role=tool, connect.c):
 * its pushes are refused before anything is sent. */
int table_check_push(paramd_table *t) {
    if (!t->c->tool) return 0;
    return cl_err(t->c, PARAMD_EWORKER,
                  "table '%s': this client is a tool (role=tool), and tools do "
                  "not push; connect as a worker to push", t->name);
}

static int check_range(paramd_table *t, uint64_t off, uint64_t count,
                       const void *buf) {
    if (t->def.kind == PD_TABLE_SPARSE)
        return cl_err(t->c, PARAMD_EINVAL,
                      "table '%s' is sparse: use paramd_sparse_pull and "
                      "paramd_sparse_push",
                      t->name);
    if (!buf && count)
        return cl_err(t->c, PARAMD_EINVAL, "table '%s': NULL buffer", t->name);
    if (count == 0 || off > t->n || count > t->n - off)
        return cl_err(t->c, PARAMD_ERANGE,
                      "table '%s' has %llu floats; range [%llu, %llu) is "
                      "outside it",
                      t->name, (unsigned long long)t->n, (unsigned long long)off,
                      (unsigned long long)(off + count));
    return 0;
}

/* r's part for one server again, to a lost server's replacement
 * (request.c, req_retry). */
static void reissue_range(paramd_request *r, int32_t server) {
    issue_range(r->table, r, r->op_type, r->op_off, r->op_count, r->op_src, r->op_dst,
                r->op_clock, server);
}

static int start_op(paramd_table *t, uint16_t type, uint64_t off,
                    uint64_t count, const float *src, float *dst,
                    paramd_request *r) {
    req_init(r, t->c);
    r->table = t;
    r->reissue = reissue_range;
    r->op_type = type;
    r->op_off = off, r->op_count = count;
    r->op_src = src, r->op_dst = dst;
    r->op_clock = paramd_get_clock(t->c); /* atomic: paramd_clock writes it */
    issue_range(t, r, type, off, count, src, dst, r->op_clock, -1);
    req_done(r, 0, ""); /* drop the issuer's guard */
    return 0;
}

/* ==== Opening a table =================================================== */

/* A sparse table's default seed: FNV-1a (64-bit) of its name, so that two
 * tables differ and a table starts the same in every run. */
static uint64_t name_seed(const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

/* Open (creating if needed) a dense table of n floats or a sparse table of
 * rows of n floats. */
int table_open(paramd_client *c, const char *name, uint64_t n,
               uint32_t kind, const char *spec, const float *init,
               paramd_table **out) {
    *out = NULL;
    pd_err e = {0};
    if (c->tool)
        return cl_err(c, PARAMD_EWORKER,
                      "table '%s': this client is a tool (role=tool), and only "
                      "workers open tables", name ? name : "(null)");
    if (!name || !*name || strlen(name) > PD_MAX_NAME)
        return cl_err(c, PARAMD_EINVAL, "table name must be 1..%d bytes", PD_MAX_NAME);
    if (kind == PD_TABLE_SPARSE && (n == 0 || n > PD_MAX_SPARSE_DIM))
        return cl_err(c, PARAMD_EINVAL, "sparse table '%s': dim %llu is not 1..%d",
                      name, (unsigned long long)n, PD_MAX_SPARSE_DIM);
    if (n == 0 || n > (1ull << 40))
        return cl_err(c, PARAMD_EINVAL, "table '%s': size %llu is not 1..2^40",
                      name, (unsigned long long)n);
    paramd_table *t = pd_calloc(1, sizeof *t);
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    if (!t || !buf) {
        pd_free(t);
        pd_free(buf);
        return cl_err(c, PARAMD_ENOMEM, "out of memory");
    }
    int rc;
    t->c = c;
    t->n = n;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->def.kind = kind;
    if ((rc = pd_spec_parse(spec, &t->def, &e))) {
        cl_err(c, rc, "table '%s': %s", name, e.msg);
        goto fail;
    }
    t->def.n = n;
    snprintf(t->def.name, sizeof t->def.name, "%s", name); /* for servers' messages */
    if (kind == PD_TABLE_SPARSE) {
        t->def.lo = 0, t->def.hi = n;
        if (!t->def.seed_given) t->def.seed = name_seed(name);
    }
    char canon[PD_MAX_SPEC + 1];
    pd_spec_canonical(&t->def, canon, sizeof canon);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_str(&b, name);
    pd_put_u64(&b, n);
    pd_put_str(&b, canon);
    size_t rlen;
    rc = coord_rpc(c, PD_MSG_TABLE_OPEN, 0, &b, buf, &rlen);
    pd_buf_free(&b);
    if (rc) goto fail;
    pd_rd r;
    uint32_t id, created;
    pd_rd_init(&r, buf, rlen);
    pd_get_u32(&r, &id);
    pd_get_u32(&r, &created);
    if (!pd_rd_done(&r) || id == 0 || id >= PD_MAX_TABLES) {
        rc = cl_err(c, PARAMD_EPROTO, "malformed TABLE_OPEN reply");
        goto fail;
    }
    t->id = id;
    if (created) {
        /* (said in a rejoin, should the coordinator be lost meanwhile) */
        coord_creating(c, id, name, n, canon);
        /* Define the shard on every server, then write initial values. */
        paramd_request req;
        req_init(&req, c);
        for (int32_t k = 0; k < c->S; k++) {
            pd_table_def d = t->def;
            if (kind == PD_TABLE_DENSE) {
                d.lo = shard_lo(n, c->S, k);
                d.hi = shard_lo(n, c->S, k + 1);
            }
            pd_buf_init(&b);
            pd_table_def_encode(&b, &d);
            if (b.oom)
                req_done(&req, 0, ""), rc = cl_err(c, PARAMD_ENOMEM, "out of memory");
            else
                link_send(&c->links[k], &req, PD_MSG_TABLE_CREATE, 0, id, 0, b.p,
                          b.len, NULL, 0, NULL, 0);
            pd_buf_free(&b);
            if (rc) break;
        }
        if (!rc) req_done(&req, 0, "");
        int rc2 = req_finish(&req);
        if (rc || rc2) {
            rc = rc ? rc : rc2;
            goto fail;
        }
        if (init) {
            start_op(t, PD_MSG_SET, 0, n, init, NULL, &req);
            if ((rc = req_finish(&req))) goto fail;
        }
        rc = coord_rpc(c, PD_MSG_TABLE_READY, id, NULL, buf, NULL);
        coord_creating(c, 0, NULL, 0, NULL);
        if (rc) goto fail;
    }
    pd_free(buf);
    t->next = c->tables;
    c->tables = t;
    *out = t;
    return 0;
fail:
    if (t->id) coord_creating(c, 0, NULL, 0, NULL);
    pd_free(buf);
    pd_free(t);
    return rc;
}

int paramd_table_open(paramd_client *c, const char *name, uint64_t n,
                      const char *spec, const float *init, paramd_table **out) {
    return table_open(c, name, n, PD_TABLE_DENSE, spec, init, out);
}

uint64_t paramd_table_size(const paramd_table *t) {
    return t->def.kind == PD_TABLE_SPARSE ? 0 : t->n;
}

int64_t paramd_table_clock(const paramd_table *t) {
    return __atomic_load_n(&t->clock_seen, __ATOMIC_RELAXED);
}

/* ==== Push and pull ===================================================== */

int paramd_pull(paramd_table *t, uint64_t off, uint64_t count, float *dst) {
    paramd_request r;
    int rc = check_range(t, off, count, dst);
    if (rc) return rc;
    start_op(t, PD_MSG_PULL, off, count, NULL, dst, &r);
    return req_finish(&r);
}

int paramd_push(paramd_table *t, uint64_t off, uint64_t count,
                const float *grad) {
    paramd_request r;
    int rc = check_range(t, off, count, grad);
    if (!rc) rc = table_check_push(t);
    if (rc) return rc;
    start_op(t, PD_MSG_PUSH, off, count, grad, NULL, &r);
    return req_finish(&r);
}

static int start_async(paramd_table *t, uint16_t type, uint64_t off,
                       uint64_t count, const float *src, float *dst,
                       paramd_request **req) {
    *req = NULL;
    int rc = check_range(t, off, count, type == PD_MSG_PULL ? (void *)dst : (void *)src);
    if (!rc && type == PD_MSG_PUSH) rc = table_check_push(t);
    if (rc) return rc;
    paramd_request *r = pd_malloc(sizeof *r);
    if (!r) return cl_err(t->c, PARAMD_ENOMEM, "out of memory");
    start_op(t, type, off, count, src, dst, r);
    req_kick(r); /* read in the background until it is waited for */
    r->heap = 1;
    *req = r;
    return 0;
}

int paramd_pull_async(paramd_table *t, uint64_t off, uint64_t count,
                      float *dst, paramd_request **req) {
    return start_async(t, PD_MSG_PULL, off, count, NULL, dst, req);
}

int paramd_push_async(paramd_table *t, uint64_t off, uint64_t count,
                      const float *grad, paramd_request **req) {
    return start_async(t, PD_MSG_PUSH, off, count, grad, NULL, req);
}
