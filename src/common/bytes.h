/*
 * bytes.h - little-endian integers in memory: a growable output buffer
 * (pd_buf) for building payloads, and a bounds-checked reader (pd_rd) for
 * parsing what a peer sent.
 *
 * The reader never trusts a length: every get fails once a read would
 * pass the end of the bytes actually received, and a decoder checks the
 * reader's `bad` flag once at the end.  The buffer's puts never fail one
 * by one: a put that cannot grow sets `oom`, later puts do nothing, and
 * the builder checks oom once.  Neither knows what the bytes mean (the
 * frame format is wire/wire.h); transports use pd_buf as a plain byte
 * sink (net/mem.c).
 */
#ifndef PARAMD_COMMON_BYTES_H
#define PARAMD_COMMON_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* Store and load little-endian integers at p (any alignment). */
static inline void pd_le16_put(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void pd_le32_put(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void pd_le64_put(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t pd_le16_get(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t pd_le32_get(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t pd_le64_get(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A growable output buffer (for control payloads; data payloads are sent
 * from where they lie). */
typedef struct pd_buf {
    uint8_t *p;
    size_t len, cap;
    int oom; /* set if a put failed to grow; checked once at the end */
} pd_buf;

void pd_buf_init(pd_buf *b);
void pd_buf_free(pd_buf *b);
void pd_put_u16(pd_buf *b, uint16_t v);
void pd_put_u32(pd_buf *b, uint32_t v);
void pd_put_u64(pd_buf *b, uint64_t v);
void pd_put_f64(pd_buf *b, double v);
void pd_put_bytes(pd_buf *b, const void *p, size_t n);
/* u16 length + bytes */
void pd_put_str(pd_buf *b, const char *s);

/* A bounds-checked reader over received bytes.  Every get fails (returns
 * -1 and sets bad) once a read would pass the end; a decoder checks bad
 * once.  Nothing is read outside [p, p+len). */
typedef struct pd_rd {
    const uint8_t *p;
    size_t len, off;
    int bad;
} pd_rd;

void pd_rd_init(pd_rd *r, const void *p, size_t len);
int pd_get_u16(pd_rd *r, uint16_t *v);
int pd_get_u32(pd_rd *r, uint32_t *v);
int pd_get_u64(pd_rd *r, uint64_t *v);
int pd_get_f64(pd_rd *r, double *v);
/* exactly n raw bytes into out */
int pd_get_bytes(pd_rd *r, void *out, size_t n);
/* u16 length + bytes into out (NUL-terminated); fails if the length is
 * > maxlen or the bytes contain NUL. */
int pd_get_str(pd_rd *r, char *out, size_t maxlen);
/* 1 if every byte was consumed and nothing went wrong. */
int pd_rd_done(const pd_rd *r);

#endif
