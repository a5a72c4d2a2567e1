/*
 * bytes.c - growable little-endian output buffers and bounds-checked
 * readers (see bytes.h).
 */
#include "common/bytes.h"

#include <string.h>

#include "common/common.h"

/* ==== Buffers =========================================================== */

void pd_buf_init(pd_buf *b) { memset(b, 0, sizeof *b); }
void pd_buf_free(pd_buf *b) {
    pd_free(b->p);
    pd_buf_init(b);
}

static uint8_t *buf_grow(pd_buf *b, size_t n) {
    if (b->oom) return NULL;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = pd_realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    uint8_t *at = b->p + b->len;
    b->len += n;
    return at;
}

void pd_put_u16(pd_buf *b, uint16_t v) { uint8_t *p = buf_grow(b, 2); if (p) pd_le16_put(p, v); }
void pd_put_u32(pd_buf *b, uint32_t v) { uint8_t *p = buf_grow(b, 4); if (p) pd_le32_put(p, v); }
void pd_put_u64(pd_buf *b, uint64_t v) { uint8_t *p = buf_grow(b, 8); if (p) pd_le64_put(p, v); }
void pd_put_f64(pd_buf *b, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    pd_put_u64(b, u);
}
void pd_put_bytes(pd_buf *b, const void *src, size_t n) {
    uint8_t *p = buf_grow(b, n);
    if (p && n) memcpy(p, src, n);
}
void pd_put_str(pd_buf *b, const char *s) {
    size_t n = strlen(s);
    if (n > 0xffff) n = 0xffff;
    pd_put_u16(b, (uint16_t)n);
    pd_put_bytes(b, s, n);
}

/* ==== Reader ============================================================ */

void pd_rd_init(pd_rd *r, const void *p, size_t len) {
    r->p = p;
    r->len = len;
    r->off = 0;
    r->bad = 0;
}

static const uint8_t *rd_take(pd_rd *r, size_t n) {
    if (r->bad || n > r->len - r->off) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *at = r->p + r->off;
    r->off += n;
    return at;
}

int pd_get_u16(pd_rd *r, uint16_t *v) {
    const uint8_t *p = rd_take(r, 2);
    if (!p) return -1;
    *v = pd_le16_get(p);
    return 0;
}
int pd_get_u32(pd_rd *r, uint32_t *v) {
    const uint8_t *p = rd_take(r, 4);
    if (!p) return -1;
    *v = pd_le32_get(p);
    return 0;
}
int pd_get_u64(pd_rd *r, uint64_t *v) {
    const uint8_t *p = rd_take(r, 8);
    if (!p) return -1;
    *v = pd_le64_get(p);
    return 0;
}
int pd_get_bytes(pd_rd *r, void *out, size_t n) {
    const uint8_t *p = rd_take(r, n);
    if (!p) return -1;
    memcpy(out, p, n);
    return 0;
}
int pd_get_f64(pd_rd *r, double *v) {
    uint64_t u;
    if (pd_get_u64(r, &u)) return -1;
    memcpy(v, &u, 8);
    return 0;
}
int pd_get_str(pd_rd *r, char *out, size_t maxlen) {
    uint16_t n;
    if (pd_get_u16(r, &n)) return -1;
    if (n > maxlen) {
        r->bad = 1;
        return -1;
    }
    const uint8_t *p = rd_take(r, n);
    if (!p) return -1;
    if (memchr(p, 0, n)) {
        r->bad = 1;
        return -1;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}
int pd_rd_done(const pd_rd *r) { return !r->bad && r->off == r->len; }

