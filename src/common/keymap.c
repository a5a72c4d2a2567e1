/*
 * keymap.c - open-addressing uint64 -> uint32 map (see keymap.h).
 *
 * Invariant: count <= cap * 3/4 whenever cap > 0, so a probe for an absent
 * key always meets a free slot and terminates.
 */
#include "common/keymap.h"

#include <string.h>

#include "common/common.h"

static size_t home(const pd_keymap *m, uint64_t key) {
    return (size_t)pd_mix64(key ^ PD_KEYMAP_SALT) & (m->cap - 1);
}

static int fits(size_t cap, size_t n) { return n <= cap / 4 * 3; }

void pd_keymap_init(pd_keymap *m) { memset(m, 0, sizeof *m); }

void pd_keymap_free(pd_keymap *m) {
    if (!m) return;
    pd_free(m->slots);
    pd_keymap_init(m);
}

static void fill_free(pd_keymap_slot *s, size_t n) {
    for (size_t i = 0; i < n; i++) s[i].val = PD_KEYMAP_NONE;
}

/* Rehash into a table of `cap` slots (a power of two that fits count). */
static int rehash(pd_keymap *m, size_t cap) {
    if (cap > SIZE_MAX / sizeof(pd_keymap_slot)) return -1;
    pd_keymap_slot *ns = pd_malloc(cap * sizeof *ns);
    if (!ns) return -1;
    pd_advise_hugepages(ns, cap * sizeof *ns); /* probes land anywhere */
    fill_free(ns, cap);
    pd_keymap_slot *old = m->slots;
    size_t ocap = m->cap;
    m->slots = ns;
    m->cap = cap;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].val == PD_KEYMAP_NONE) continue;
        size_t j = home(m, old[i].key);
        while (ns[j].val != PD_KEYMAP_NONE) j = (j + 1) & (cap - 1);
        ns[j] = old[i];
    }
    pd_free(old);
    return 0;
}

int pd_keymap_reserve(pd_keymap *m, size_t n) {
    if (m->cap && fits(m->cap, n)) return 0;
    size_t cap = m->cap ? m->cap : 16;
    while (!fits(cap, n)) {
        if (cap > SIZE_MAX / 4) return -1;
        cap *= 2;
    }
    return rehash(m, cap);
}

uint32_t pd_keymap_get(const pd_keymap *m, uint64_t key) {
    if (!m->cap) return PD_KEYMAP_NONE;
    size_t mask = m->cap - 1;
    for (size_t j = home(m, key);; j = (j + 1) & mask) {
        const pd_keymap_slot *s = &m->slots[j];
        if (s->val == PD_KEYMAP_NONE) return PD_KEYMAP_NONE;
        if (s->key == key) return s->val;
    }
}

uint32_t pd_keymap_put(pd_keymap *m, uint64_t key, uint32_t val, int *added) {
    *added = 0;
    if (!m->cap || !fits(m->cap, m->count + 1)) {
        /* Grow only if the key is really new. */
        uint32_t v = pd_keymap_get(m, key);
        if (v != PD_KEYMAP_NONE) return v;
        if (pd_keymap_reserve(m, m->count + 1) != 0) return PD_KEYMAP_NONE;
    }
    size_t mask = m->cap - 1;
    for (size_t j = home(m, key);; j = (j + 1) & mask) {
        pd_keymap_slot *s = &m->slots[j];
        if (s->val == PD_KEYMAP_NONE) {
            s->key = key;
            s->val = val;
            m->count++;
            *added = 1;
            return val;
        }
        if (s->key == key) return s->val;
    }
}

void pd_keymap_clear(pd_keymap *m) {
    if (m->cap) fill_free(m->slots, m->cap);
    m->count = 0;
}

size_t pd_keymap_bytes(const pd_keymap *m) {
    return m->cap * sizeof(pd_keymap_slot);
}
