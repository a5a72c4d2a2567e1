/*
 * hash.h - the integer hashing paramd relies on for sparse tables, in one
 * place so that every process agrees on it bit for bit.
 *
 * Three jobs, three functions:
 *
 *   pd_mix64        a bijective 64-bit mixer (the finaliser of splitmix64,
 *                   Steele, Lea & Flood 2014): every input bit flips about
 *                   half of the output bits.  Keys are user data (often
 *                   0, 1, 2, ...), so everything that partitions or places
 *                   keys mixes them first.
 *   pd_jump_hash    jump consistent hash (Lamping & Veach 2014,
 *                   arXiv:1406.2294): maps a 64-bit value to a bucket in
 *                   [0, n) so that buckets are balanced and going from n
 *                   to n+1 buckets moves only the expected 1/(n+1) of the
 *                   values, all of them into the new bucket.  No table, no
 *                   memory, O(ln n) time.
 *   pd_row_rand     the j-th 64-bit pseudo-random number of the stream of
 *                   (seed, key): a splitmix64 stream whose start depends on
 *                   both.  Sparse rows draw their initial values from it,
 *                   so a key's initial row depends on nothing but the
 *                   table's seed and the key.
 *
 * Which server holds a key of a sparse table is pd_sparse_server() in
 * wire/wire.h (it is part of the protocol); it is built from these.
 *
 * Everything here is a pure function on integers (pd_jump_hash uses one
 * IEEE-754 double division per step, exact and identical on every
 * conforming platform), so results never depend on the machine.
 */
#ifndef PARAMD_COMMON_HASH_H
#define PARAMD_COMMON_HASH_H

#include <stdint.h>

#define PD_GOLDEN64 0x9e3779b97f4a7c15ull

/* splitmix64's finaliser: a bijection of the 64-bit integers. */
static inline uint64_t pd_mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* Jump consistent hash: a bucket in [0, n) for `key`; n >= 1.  Feed it a
 * mixed value (pd_mix64), not a raw user key. */
static inline uint32_t pd_jump_hash(uint64_t key, uint32_t n) {
    int64_t b = -1, j = 0;
    while (j < (int64_t)n) {
        b = j;
        key = key * 2862933555777941757ull + 1;
        j = (int64_t)((double)(b + 1) *
                      ((double)(1ll << 31) / (double)((key >> 33) + 1)));
    }
    return (uint32_t)b;
}

/* The j-th number (j = 0, 1, ...) of the random stream of (seed, key). */
static inline uint64_t pd_row_rand(uint64_t seed, uint64_t key, uint64_t j) {
    uint64_t base = pd_mix64(key ^ pd_mix64(seed + PD_GOLDEN64));
    return pd_mix64(base + (j + 1) * PD_GOLDEN64);
}

#endif
