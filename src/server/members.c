/*
 * members.c - the set of workers a table's clocks wait for (members.h).
 */
#include "server/members.h"

#include "common/common.h"

int pd_members_init(pd_members *m, int32_t W, int elastic) {
    m->W = W;
    m->nlive = W;
    m->elastic = elastic;
    m->maxfrom = 0;
    m->st = pd_malloc((size_t)W);
    m->from = pd_calloc((size_t)W, sizeof *m->from);
    if (!m->st || !m->from) {
        pd_members_free(m);
        return -1;
    }
    for (int32_t w = 0; w < W; w++) m->st[w] = PD_MEM_LIVE;
    return 0;
}

void pd_members_free(pd_members *m) {
    pd_free(m->st);
    pd_free(m->from);
    m->st = NULL;
    m->from = NULL;
}

int32_t pd_members_need(const pd_members *m, int64_t c, uint32_t backup) {
    int32_t n = m->nlive;
    if (c < m->maxfrom) /* some joiner may not count yet for c */
        for (int32_t w = 0; w < m->W; w++)
            if (m->st[w] == PD_MEM_LIVE && m->from[w] > c) n--;
    n -= (int32_t)backup;
    return n < 1 ? 1 : n;
}

int pd_members_counts(const pd_members *m, int32_t w, int64_t c) {
    return w >= 0 && w < m->W && m->st[w] == PD_MEM_LIVE && m->from[w] <= c;
}

int pd_members_gone(pd_members *m, int32_t w) {
    if (w < 0 || w >= m->W) return 0;
    int was = m->st[w] == PD_MEM_LIVE;
    if (was) m->nlive--;
    m->st[w] = PD_MEM_OUT;
    return was;
}

int pd_members_join(pd_members *m, int32_t w, int64_t from) {
    if (w < 0 || w >= m->W) return 0;
    if (!m->elastic) {
        if (m->st[w] == PD_MEM_LIVE) m->nlive--;
        m->st[w] = PD_MEM_REFUSED;
        return 0;
    }
    if (m->st[w] != PD_MEM_LIVE) m->nlive++;
    m->st[w] = PD_MEM_LIVE;
    m->from[w] = from < 0 ? 0 : from;
    if (m->from[w] > m->maxfrom) m->maxfrom = m->from[w];
    return 1;
}

int pd_members_who_reserve(int32_t **who, int32_t *cap, int32_t n) {
    if (n < *cap) return 0;
    int32_t c = *cap ? *cap * 2 : 4;
    int32_t *p = pd_realloc(*who, sizeof *p * (size_t)c);
    if (!p) return -1;
    *who = p;
    *cap = c;
    return 0;
}

int32_t pd_members_who_forget(int32_t *who, int32_t n, int32_t w) {
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++)
        if (who[i] == w) who[i] = -1, k++;
    return k;
}
