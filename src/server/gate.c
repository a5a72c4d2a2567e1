/*
 * gate.c - the clock gate (see gate.h for the rules it keeps): admission
 * of pushes, per-clock slots, the order clocks are applied in, pull waits,
 * gone and joining workers, stop.
 *
 * Everything here is bookkeeping on a few integers per worker and per
 * clock; the float work of applying a clock is the store's, called back
 * through pd_gate_store.apply with the lock held.
 */
#include "server/gate.h"

#include <string.h>

/* ==== Set-up ============================================================ */

int pd_gate_init(pd_gate *g, uint32_t id, const pd_table_def *d, int32_t W,
                 const pd_gate_store *st, const char *pull_hint, pd_err *e) {
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->id = id;
    g->clocked = d->consistency != PD_CONS_ASYNC;
    g->staleness = d->staleness;
    g->backup = d->backup;
    g->W = W;
    g->window = (int32_t)d->staleness + PD_SYNC_WINDOW;
    g->st = *st;
    g->pull_hint = pull_hint;
    g->slots = pd_calloc((size_t)g->window, sizeof *g->slots);
    g->last = pd_malloc((size_t)W * sizeof *g->last);
    g->done = pd_malloc((size_t)W * sizeof *g->done);
    int mok = pd_members_init(&g->mem, W, (int)d->elastic) == 0;
    if (!g->slots || !g->last || !g->done || !mok)
        return pd_seterr(e, PARAMD_ENOMEM, "out of memory for table %u", id);
    for (int32_t w = 0; w < W; w++) g->last[w] = g->done[w] = -1;
    return 0;
}

void pd_gate_fini(pd_gate *g) {
    if (g->slots)
        for (int32_t i = 0; i < g->window; i++) pd_free(g->slots[i].who);
    pd_free(g->slots);
    pd_free(g->last);
    pd_free(g->done);
    pd_members_free(&g->mem);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

/* ==== Admission ========================================================= */

int pd_gate_check_worker(const pd_gate *g, int32_t w, pd_err *e) {
    if (w < 0 || w >= g->W)
        return pd_seterr(e, PARAMD_EWORKER,
                         "push from worker %d, but the cluster has %d workers",
                         w, g->W);
    return 0;
}

int pd_gate_admit(pd_gate *g, int32_t w, int64_t c, int *dropped, pd_err *e) {
    *dropped = 0;
    if (g->mem.st[w] == PD_MEM_REFUSED)
        return pd_seterr(e, PARAMD_EWORKER,
                         "table %u does not take workers that join a running "
                         "cluster (elastic=no in its spec), and worker %d "
                         "joined late",
                         g->id, w);
    if (g->mem.st[w] != PD_MEM_LIVE)
        return pd_seterr(e, PARAMD_EWORKER,
                         "table %u: worker %d was removed from the cluster "
                         "(it left, died or missed its heartbeats)",
                         g->id, w);
    if (g->clocked && c < g->mem.from[w])
        return pd_seterr(e, PARAMD_ESTALE,
                         "table %u: worker %d joined the cluster at clock %lld "
                         "and pushed for clock %lld (a joiner starts at the "
                         "clock paramd_get_clock gives after connecting)",
                         g->id, w, (long long)g->mem.from[w], (long long)c);
    if (c < g->last[w])
        return pd_seterr(e, PARAMD_ESTALE,
                         "table %u: worker %d pushed for clock %lld after "
                         "pushing for clock %lld",
                         g->id, w, (long long)c, (long long)g->last[w]);
    if (!g->clocked) return 0;
    if (c < g->applied) {
        if (!g->backup)
            return pd_seterr(e, PARAMD_ESTALE,
                             "table %u: worker %d pushed for clock %lld, "
                             "which was already applied (next clock is "
                             "%lld)",
                             g->id, w, (long long)c, (long long)g->applied);
        *dropped = 1; /* a backup worker's late push: count, drop */
        return 0;
    }
    if (c >= g->applied + g->window)
        return pd_seterr(e, PARAMD_EAHEAD,
                         "table %u: worker %d pushed for clock %lld but the "
                         "table is at clock %lld (window %d)",
                         g->id, w, (long long)c, (long long)g->applied, g->window);
    return 0;
}

void pd_gate_pushed(pd_gate *g, int32_t w, int64_t c, int complete, int dropped) {
    if (c > g->last[w]) g->last[w] = c;
    if (complete) g->done[w] = c;
    if (!dropped && c >= g->top) g->top = c + 1;
}

/* ==== Clocks ============================================================ */

pd_gate_slot *pd_gate_slot_for(pd_gate *g, int64_t c, pd_err *e) {
    pd_gate_slot *sl = &g->slots[c % g->window];
    if (pd_members_who_reserve(&sl->who, &sl->whocap, sl->active ? sl->ndone : 0)) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory for clock sums");
        return NULL;
    }
    return sl;
}

int pd_gate_open(pd_gate *g, pd_gate_slot *sl, int64_t c) {
    (void)g;
    if (sl->active) return 0;
    sl->active = 1;
    sl->clock = c;
    sl->ndone = 0;
    sl->ncount = 0;
    return 1;
}

int pd_gate_ready(const pd_gate *g, const pd_gate_slot *sl, int more) {
    return sl->active && sl->clock == g->applied &&
           sl->ncount + more >= pd_members_need(&g->mem, g->applied, g->backup);
}

void pd_gate_count(pd_gate *g, pd_gate_slot *sl, int32_t w) {
    (void)g;
    sl->who[sl->ndone++] = w;
    sl->ncount++;
}

void pd_gate_advance(pd_gate *g, pd_gate_slot *sl) {
    sl->active = 0;
    g->applied++;
    pthread_cond_broadcast(&g->cv);
}

void pd_gate_apply_ready(pd_gate *g) {
    for (;;) {
        pd_gate_slot *sl = &g->slots[g->applied % g->window];
        if (!pd_gate_ready(g, sl, 0)) return;
        g->st.apply(g->st.store, sl);
        pd_gate_advance(g, sl);
    }
}

/* ==== Pulls ============================================================= */

/* 1 if clock c cannot apply without w's push: w counts for it, and the
 * other workers that count are fewer than it needs (always, without
 * backup workers; with them, once too few are left). */
static int needs(const pd_gate *g, int32_t w, int64_t c) {
    if (!pd_members_counts(&g->mem, w, c)) return 0;
    if (!g->backup) return 1;
    return pd_members_need(&g->mem, c, 0) - 1 < pd_members_need(&g->mem, c, g->backup);
}

/* The first clock in [g->applied, upto] that cannot apply without w and
 * that w has not completed a push for, or -1.  (Checking only its last
 * completed clock missed a clock it skipped: a worker that pushed clock 1
 * but never 0 and then pulled at clock 2 waited forever; and a table with
 * backup workers was never checked, though with too few others left it
 * waits for the puller all the same; fuzz_server found both.)  Pushes
 * beyond the window are refused, so a clock past it was not pushed. */
static int64_t first_owed(const pd_gate *g, int32_t w, int64_t upto) {
    int64_t end = g->applied + g->window; /* slots hold [applied, end) */
    for (int64_t c = g->applied; c <= upto && c < end; c++) {
        if (!needs(g, w, c)) continue;
        const pd_gate_slot *sl = &g->slots[c % g->window];
        int done = 0;
        if (sl->active && sl->clock == c)
            for (int32_t i = 0; i < sl->ndone && !done; i++) done = sl->who[i] == w;
        if (!done) return c;
    }
    if (upto >= end && needs(g, w, upto)) return upto;
    return -1;
}

int pd_gate_pull_wait(pd_gate *g, int32_t w, int64_t clock, pd_err *e) {
    if (!g->clocked) return 0;
    /* A pull at clock c needs clocks up to c - s - 1 applied. */
    int64_t need = clock - (int64_t)g->staleness;
    int64_t owed = -1;
    if (g->applied < need && w >= 0 && w < g->W) owed = first_owed(g, w, need - 1);
    if (owed >= 0)
        return pd_seterr(e, PARAMD_EDEADLOCK,
                         "table %u: pull at clock %lld waits for clock %lld "
                         "to be applied, but worker %d has not pushed %s "
                         "(clock %lld)",
                         g->id, (long long)clock, (long long)(need - 1), w,
                         g->pull_hint, (long long)owed);
    while (g->applied < need && !g->stop) pthread_cond_wait(&g->cv, &g->mu);
    if (g->applied < need)
        return pd_seterr(e, PARAMD_ESHUTDOWN,
                         "table %u: server stopping while a pull waited "
                         "for clock %lld",
                         g->id, (long long)need - 1);
    if (clock - g->applied > g->max_ahead) g->max_ahead = clock - g->applied;
    return 0;
}

/* ==== Membership and stop =============================================== */

void pd_gate_worker_gone(pd_gate *g, int32_t w) {
    if (w < 0 || w >= g->W) return;
    pthread_mutex_lock(&g->mu);
    if (pd_members_gone(&g->mem, w)) {
        for (int32_t i = 0; i < g->window; i++)
            if (g->slots[i].active)
                g->slots[i].ncount -= pd_members_who_forget(g->slots[i].who,
                                                            g->slots[i].ndone, w);
        if (g->clocked) pd_gate_apply_ready(g);
        pthread_cond_broadcast(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
}

int64_t pd_gate_join_begin(pd_gate *g, int32_t w) {
    if (w < 0 || w >= g->W) return -1;
    pthread_mutex_lock(&g->mu);
    /* a predecessor's record: not the joiner's */
    g->last[w] = g->done[w] = -1;
    if (g->st.forget) g->st.forget(g->st.store, w);
    int64_t F = -1;
    if (!g->clocked) {
        pd_members_join(&g->mem, w, 0);
    } else {
        int64_t f = g->applied > g->top ? g->applied : g->top;
        if (pd_members_join(&g->mem, w, f)) F = f;
    }
    pthread_mutex_unlock(&g->mu);
    return F;
}

void pd_gate_join_at(pd_gate *g, int32_t w, int64_t J) {
    if (w < 0 || w >= g->W) return;
    pthread_mutex_lock(&g->mu);
    pd_members_join(&g->mem, w, g->clocked ? J : 0);
    if (g->clocked) pd_gate_apply_ready(g);
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void pd_gate_stop(pd_gate *g) {
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}
