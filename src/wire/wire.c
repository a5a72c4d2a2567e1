/*
 * wire.c - encode, decode and validate paramd frames (see wire.h and
 * docs/protocol.md).
 *
 * The decoders never trust a length: every read goes through pd_rd, which
 * refuses to pass the end of the bytes actually received, and every count
 * is checked against a named limit before it is used to size anything.
 */
#include "wire/wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ==== Header ============================================================ */

const char *pd_msg_name(uint16_t type) {
    static const char *const reply_names[] = {
#define PD_X_(name, val) [val] = #name "|REPLY",
        PD_MSG_LIST(PD_X_)
#undef PD_X_
    };
    static const char *const names[] = {
#define PD_X_(name, val) [val] = #name,
        PD_MSG_LIST(PD_X_)
#undef PD_X_
    };
    uint16_t base = type & (uint16_t)~PD_REPLY;
    if (base >= sizeof names / sizeof names[0] || !names[base]) return "UNKNOWN";
    return (type & PD_REPLY) ? reply_names[base] : names[base];
}

int pd_msg_known(uint16_t type) {
    switch (type & (uint16_t)~PD_REPLY) {
#define PD_X_(name, val) case val:
        PD_MSG_LIST(PD_X_)
#undef PD_X_
        return 1;
    }
    return 0;
}

void pd_hdr_encode(const pd_hdr *h, uint8_t out[PD_HDR_SIZE]) {
    pd_le32_put(out + 0, h->magic);
    pd_le16_put(out + 4, h->version);
    pd_le16_put(out + 6, h->type);
    pd_le64_put(out + 8, h->id);
    pd_le32_put(out + 16, h->table);
    pd_le32_put(out + 20, (uint32_t)h->status);
    pd_le64_put(out + 24, (uint64_t)h->clock);
    pd_le64_put(out + 32, h->len);
}

/* Data messages may carry up to the receiver's limit; everything else is
 * small. */
static int is_data_msg(uint16_t type) {
    uint16_t t = type & (uint16_t)~PD_REPLY;
    return t == PD_MSG_SET || t == PD_MSG_PUSH || t == PD_MSG_PULL ||
           t == PD_MSG_SPARSE_PUSH || t == PD_MSG_SPARSE_PULL || t == PD_MSG_REPL ||
           t == PD_MSG_SEED;
}

int pd_hdr_decode(const uint8_t in[PD_HDR_SIZE], pd_hdr *h,
                  uint64_t max_payload, pd_err *e) {
    h->magic = pd_le32_get(in + 0);
    h->version = pd_le16_get(in + 4);
    h->type = pd_le16_get(in + 6);
    h->id = pd_le64_get(in + 8);
    h->table = pd_le32_get(in + 16);
    h->status = (int32_t)pd_le32_get(in + 20);
    h->clock = (int64_t)pd_le64_get(in + 24);
    h->len = pd_le64_get(in + 32);
    if (h->magic != PD_MAGIC)
        return pd_seterr(e, PARAMD_EPROTO,
                         "bad magic 0x%08x (expected 0x%08x): not a paramd peer",
                         h->magic, PD_MAGIC);
    if (h->version != PD_PROTO_VERSION)
        return pd_seterr(e, PARAMD_EVERSION,
                         "protocol version %u, this build speaks %u: run the "
                         "same paramd version everywhere",
                         h->version, PD_PROTO_VERSION);
    if (!pd_msg_known(h->type))
        return pd_seterr(e, PARAMD_EPROTO, "unknown message type %u", h->type);
    uint64_t lim = is_data_msg(h->type)              ? max_payload
                   : h->type == PD_MSG_BATCH             ? PD_MAX_BATCH
                   : h->type == (PD_MSG_BATCH | PD_REPLY) ? PD_MAX_BATCH_REPLY
                                                          : PD_MAX_CTRL_PAYLOAD;
    if (h->len > lim)
        return pd_seterr(e, PARAMD_ETOOBIG,
                         "%s payload of %llu bytes exceeds the limit of %llu",
                         pd_msg_name(h->type), (unsigned long long)h->len,
                         (unsigned long long)lim);
    if (h->clock < 0)
        return pd_seterr(e, PARAMD_EPROTO, "negative clock %lld",
                         (long long)h->clock);
    return 0;
}

/* ==== Payloads ========================================================== */

void pd_table_def_encode(pd_buf *b, const pd_table_def *d) {
    pd_put_u64(b, d->n);
    pd_put_u64(b, d->lo);
    pd_put_u64(b, d->hi);
    pd_put_u32(b, d->rule);
    pd_put_u32(b, d->consistency);
    pd_put_u32(b, d->aggregate);
    pd_put_u32(b, d->staleness);
    pd_put_u32(b, d->backup);
    pd_put_u32(b, d->nhyper);
    for (uint32_t i = 0; i < d->nhyper && i < PD_MAX_HYPER; i++)
        pd_put_f64(b, d->hyper[i]);
    pd_put_str(b, d->plugin);
    uint32_t flags = d->elastic ? 0 : PD_DEF_FIXED;
    int named = d->name[0] != '\0';
    if (d->kind == PD_TABLE_SPARSE || flags || named) pd_put_u32(b, d->kind);
    if (d->kind == PD_TABLE_SPARSE) {
        pd_put_u32(b, d->init);
        pd_put_f64(b, d->init_param);
        pd_put_u64(b, d->seed);
    }
    if (flags || named) pd_put_u32(b, flags);
    if (named) pd_put_str(b, d->name);
}

_Static_assert(PD_TABLE_NAME_MAX == PD_MAX_NAME, "a definition holds any registry name");

/* The sparse extension of a table definition: its fields and their
 * ranges.  0 or PARAMD_EPROTO. */
static int sparse_def_check(const pd_table_def *d, pd_err *e) {
    if (d->kind != PD_TABLE_SPARSE)
        return pd_seterr(e, PARAMD_EPROTO, "TABLE_CREATE with unknown kind %u",
                         d->kind);
    if (d->n > PD_MAX_SPARSE_DIM || d->lo != 0 || d->hi != d->n)
        return pd_seterr(e, PARAMD_EPROTO,
                         "sparse TABLE_CREATE with dim %llu (1..%d) and range "
                         "[%llu,%llu) (must be [0,dim))",
                         (unsigned long long)d->n, PD_MAX_SPARSE_DIM,
                         (unsigned long long)d->lo, (unsigned long long)d->hi);
    if (d->init > PD_INIT_NORMAL || !isfinite(d->init_param) ||
        (d->init == PD_INIT_ZEROS ? d->init_param != 0 : !(d->init_param > 0)))
        return pd_seterr(e, PARAMD_EPROTO,
                         "sparse TABLE_CREATE with bad initializer %u (%g)",
                         d->init, d->init_param);
    return 0;
}

int pd_table_def_decode(const void *p, size_t len, pd_table_def *d,
                        pd_err *e) {
    pd_rd r;
    memset(d, 0, sizeof *d);
    pd_rd_init(&r, p, len);
    pd_get_u64(&r, &d->n);
    pd_get_u64(&r, &d->lo);
    pd_get_u64(&r, &d->hi);
    pd_get_u32(&r, &d->rule);
    pd_get_u32(&r, &d->consistency);
    pd_get_u32(&r, &d->aggregate);
    pd_get_u32(&r, &d->staleness);
    pd_get_u32(&r, &d->backup);
    pd_get_u32(&r, &d->nhyper);
    if (r.bad || d->nhyper > PD_MAX_HYPER)
        return pd_seterr(e, PARAMD_EPROTO, "malformed TABLE_CREATE");
    for (uint32_t i = 0; i < d->nhyper; i++) pd_get_f64(&r, &d->hyper[i]);
    pd_get_str(&r, d->plugin, PD_MAX_PLUGIN_PATH);
    int ext = !r.bad && r.off < r.len;
    uint32_t flags = 0;
    if (ext) {
        pd_get_u32(&r, &d->kind);
        if (d->kind != PD_TABLE_DENSE) {
            pd_get_u32(&r, &d->init);
            pd_get_f64(&r, &d->init_param);
            pd_get_u64(&r, &d->seed);
        }
        if (!r.bad && r.off < r.len) pd_get_u32(&r, &flags);
        if (!r.bad && r.off < r.len) pd_get_str(&r, d->name, PD_MAX_NAME);
    }
    if (!pd_rd_done(&r))
        return pd_seterr(e, PARAMD_EPROTO, "malformed TABLE_CREATE");
    if (flags & ~PD_DEF_FIXED)
        return pd_seterr(e, PARAMD_EPROTO, "TABLE_CREATE with unknown flags 0x%x",
                         flags);
    d->elastic = !(flags & PD_DEF_FIXED);
    int sparse = d->kind != PD_TABLE_DENSE;
    if (d->n == 0 || d->n > (1ull << 40) || d->lo > d->hi || d->hi > d->n)
        return pd_seterr(e, PARAMD_EPROTO,
                         "TABLE_CREATE with bad sizes n=%llu range [%llu,%llu)",
                         (unsigned long long)d->n, (unsigned long long)d->lo,
                         (unsigned long long)d->hi);
    if (d->consistency > PD_CONS_SSP || d->aggregate > PD_AGG_SUM ||
        d->staleness > PD_MAX_STALENESS || d->backup > PD_MAX_WORKERS ||
        (d->backup && d->consistency != PD_CONS_SYNC))
        return pd_seterr(e, PARAMD_EPROTO,
                         "TABLE_CREATE with unknown consistency or aggregate");
    for (uint32_t i = 0; i < d->nhyper; i++)
        if (!isfinite(d->hyper[i]))
            return pd_seterr(e, PARAMD_EPROTO,
                             "TABLE_CREATE with a non-finite hyper-parameter");
    if (sparse) return sparse_def_check(d, e);
    return 0;
}

/* ==== Batches =========================================================== */

int pd_batch_allowed(uint16_t type) {
    return is_data_msg(type);
}

int pd_batch_next(const uint8_t *p, size_t len, size_t *off, size_t index,
                  int reply, pd_hdr *h, pd_err *e) {
    size_t at = *off, left = at <= len ? len - at : 0;
    if (left < PD_HDR_SIZE)
        return pd_seterr(e, PARAMD_EPROTO,
                         "%zu bytes at byte %zu of the batch, where inner frame "
                         "%zu would start, are not a whole %d-byte header",
                         left, at, index, PD_HDR_SIZE);
    pd_err he = {0};
    /* No payload limit here: what is left in the batch bounds it below. */
    int rc = pd_hdr_decode(p + at, h, UINT64_MAX, &he);
    if (rc == 0 || rc == PARAMD_ETOOBIG) { /* the type is known: is it allowed? */
        int is_reply = (h->type & PD_REPLY) != 0;
        if (!pd_batch_allowed(h->type) || is_reply != (reply != 0))
            return pd_seterr(e, PARAMD_EPROTO,
                             "inner frame %zu (byte %zu) is a %s: a BATCH %s "
                             "holds only PUSH, PULL, SET, SPARSE_PUSH and "
                             "SPARSE_PULL %s",
                             index, at, pd_msg_name(h->type),
                             reply ? "reply" : "request",
                             reply ? "replies" : "requests");
    }
    if (rc)
        return pd_seterr(e, rc, "inner frame %zu (byte %zu): %s", index, at,
                         he.msg);
    if (!reply && h->status != 0)
        return pd_seterr(e, PARAMD_EPROTO,
                         "inner frame %zu (byte %zu) is a request with status "
                         "%d (must be 0)",
                         index, at, h->status);
    if (h->len > left - PD_HDR_SIZE)
        return pd_seterr(e, PARAMD_EPROTO,
                         "inner frame %zu (byte %zu), a %s, announces %llu "
                         "payload bytes but the batch has only %zu left",
                         index, at, pd_msg_name(h->type),
                         (unsigned long long)h->len, left - PD_HDR_SIZE);
    *off = at + PD_HDR_SIZE + (size_t)h->len;
    return 0;
}

int pd_batch_parse(const uint8_t *p, size_t len, pd_batch_item *items,
                   size_t *n, pd_err *e) {
    size_t off = 0, k = 0;
    *n = 0;
    if (len == 0)
        return pd_seterr(e, PARAMD_EPROTO, "a BATCH with no inner frames");
    while (off < len) {
        pd_hdr h;
        int rc = pd_batch_next(p, len, &off, k, 0, &h, e);
        if (rc) return rc;
        /* k < len / PD_HDR_SIZE: every frame took PD_HDR_SIZE bytes or
         * more, this one included, so items has room (and is touched only
         * here: it may be NULL when len < PD_HDR_SIZE). */
        items[k].h = h;
        items[k].off = off - (size_t)h.len;
        k++;
    }
    *n = k;
    return 0;
}
