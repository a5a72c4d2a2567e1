/*
 * keymap.h - an open-addressing hash map from uint64 keys to uint32
 * values, for the sparse tables (key -> row on a server, key -> slot while
 * aggregating a clock, key -> first position while summing duplicates in
 * a client's request).
 *
 * Design.  One array of 16-byte slots {key, value}, a power of two long,
 * linear probing from pd_mix64(key) (keys are user data, often small
 * consecutive integers, so they are mixed first).  A probe reads one cache
 * line in the common case.  The value PD_KEYMAP_NONE marks a free slot, so
 * every 64-bit key is allowed (0 and UINT64_MAX too) and values are
 * 0 .. PD_KEYMAP_NONE-1.  The load factor stays at or under 3/4; the map
 * doubles when an insertion would pass it.  Nothing is ever removed (rows
 * of a sparse table live as long as the table); pd_keymap_clear empties the
 * whole map at once and keeps its memory.
 *
 * Failure.  Only growth allocates.  pd_keymap_reserve grows ahead of a
 * batch so that the batch's insertions cannot fail (and the caller can
 * refuse a request before changing anything); pd_keymap_put grows by
 * itself if the caller did not reserve, and reports an allocation failure.
 *
 * Threads: none of its own; the owner locks.
 */
#ifndef PARAMD_COMMON_KEYMAP_H
#define PARAMD_COMMON_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/hash.h"

#define PD_KEYMAP_NONE UINT32_MAX
/* Slot hashes use another mixing than the one that places keys on servers:
 * keys that share a server must not share low bits of their slot hash. */
#define PD_KEYMAP_SALT 0xa0761d6478bd642full

typedef struct pd_keymap_slot {
    uint64_t key;
    uint32_t val; /* PD_KEYMAP_NONE: free */
    uint32_t pad_;
} pd_keymap_slot;

typedef struct pd_keymap {
    pd_keymap_slot *slots; /* cap, or NULL */
    size_t cap;            /* 0 or a power of two */
    size_t count;          /* keys held */
} pd_keymap;

void pd_keymap_init(pd_keymap *m);
void pd_keymap_free(pd_keymap *m); /* back to the empty state; NULL-safe */
/* Make room for `n` keys in total, so that inserting up to n - count new
 * keys allocates nothing.  0, or -1 (out of memory; m unchanged). */
int pd_keymap_reserve(pd_keymap *m, size_t n);
/* The value of `key`, or PD_KEYMAP_NONE. */
uint32_t pd_keymap_get(const pd_keymap *m, uint64_t key);
/* The value of `key` if present (*added = 0); else insert it with value
 * `val` (< PD_KEYMAP_NONE) and return val (*added = 1).  Grows if needed;
 * PD_KEYMAP_NONE if that growth failed (m unchanged). */
uint32_t pd_keymap_put(pd_keymap *m, uint64_t key, uint32_t val, int *added);
/* Start loading the slot where a probe for `key` begins (a hint, for
 * loops over many keys: a table much larger than the caches costs a cache
 * miss per key, and prefetching a few keys ahead overlaps them). */
static inline void pd_keymap_prefetch(const pd_keymap *m, uint64_t key) {
    if (m->cap)
        __builtin_prefetch(&m->slots[pd_mix64(key ^ PD_KEYMAP_SALT) & (m->cap - 1)]);
}
/* Forget every key; keep the memory. */
void pd_keymap_clear(pd_keymap *m);
/* Bytes held. */
size_t pd_keymap_bytes(const pd_keymap *m);

#endif
