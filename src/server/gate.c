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

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ==== Set-up ============================================================ */

int pd_gate_init(pd_gate *g, uint32_t id, const pd_table_def *d, int32_t W,
                 const pd_gate_store *st, const char *pull_hint, pd_err *e) {
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    /* pull waits time out to log who they wait for: a monotonic clock,
     * so that a change of the wall clock does not move the deadline */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(g->name, sizeof g->name, "%s", d->name);
    pd_hist_init_clocks(&g->stale);
    g->log_clock = -1;
    g->id = id;
    g->clocked = d->consistency != PD_CONS_ASYNC;
    g->staleness = d->staleness;
    g->backup = d->backup;
    g->W = W;
    g->window = (int32_t)d->staleness + PD_SYNC_WINDOW;
    g->st = *st;
    g->pull_hint = pull_hint;
    g->hold = -1;
    g->slots = pd_calloc((size_t)g->window, sizeof *g->slots);
    g->last = pd_malloc((size_t)W * sizeof *g->last);
    g->done = pd_malloc((size_t)W * sizeof *g->done);
    g->last_ms = pd_calloc((size_t)W, sizeof *g->last_ms);
    int mok = pd_members_init(&g->mem, W, (int)d->elastic) == 0;
    if (!g->slots || !g->last || !g->done || !g->last_ms || !mok)
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
    pd_free(g->last_ms);
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
    if (g->clocked && c < g->drop_below && c < g->applied) {
        *dropped = 1; /* sent again to a replacement, for a clock it lost */
        return 0;
    }
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
    if (complete && !dropped) { /* staleness: behind the newest clock taken */
        int64_t behind = g->top - 1 - c;
        if (behind < 0) behind = 0;
        pd_hist_observe(&g->stale, (double)behind);
        if (behind > g->stale_max) g->stale_max = behind;
    }
    g->last_ms[w] = pd_now_ms();
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
    if (g->hold >= 0 && g->applied >= g->hold) return 0; /* a checkpoint's cut */
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

int pd_gate_wait_describe(pd_gate *g, pd_wait *w, pd_wait *out, int max) {
    int n = 0;
    int64_t c = g->applied, now = pd_now_ms();
    memset(w, 0, sizeof *w);
    if (!g->clocked) return 0;
    for (int32_t r = 0; r < g->W; r++) {
        if (!pd_members_counts(&g->mem, r, c) || g->done[r] >= c) continue;
        pd_wait x = {0};
        x.kind = PD_WAIT_PULL;
        snprintf(x.table, sizeof x.table, "%s", g->name);
        x.table_id = g->id;
        x.clock = c;
        x.worker = r;
        x.server = -1;
        x.last_clock = g->last[r];
        x.ago_ms = g->last[r] >= 0 ? now - g->last_ms[r] : -1;
        x.conn = !g->alive ? PD_CONN_UNKNOWN
                 : g->alive(g->alive_arg, r) ? PD_CONN_ALIVE : PD_CONN_NONE;
        x.waiting_ms = g->nwait > 0 ? now - g->wait_since : 0;
        if (n == 0) *w = x;
        if (out && n < max) out[n] = x;
        n++;
    }
    if (n > 1) w->others = n - 1;
    return n;
}

/* mu held: the wait a pull at the next clock to apply is in, as the
 * line the log and a deadline's error share (wire/status.h); 0 if it
 * waits for nobody (a checkpoint's hold, or async). */
static int wait_line(pd_gate *g, char *line, size_t len) {
    pd_wait w;
    if (pd_gate_wait_describe(g, &w, NULL, 0) <= 0) return 0;
    pd_wait_format(&w, line, len);
    return 1;
}

/* mu held, applied < need: sleep until clock need-1 is applied or the
 * table stops, logging who it waits for at a growing interval (one line
 * per interval for all the pulls waiting on this table), or until
 * limit_ms (> 0) have passed: then PARAMD_ETIMEDOUT with the wait's line
 * in e.  The log's timer and the deadline share the one timed wait, on
 * the monotonic clock the condition variable was made with. */
static int pull_sleep(pd_gate *g, int64_t need, int64_t limit_ms, pd_err *e) {
    int64_t t0 = pd_now_ms(), mark = 0, next = pd_wait_next_log(0);
    int64_t dl = t0 + 1 + limit_ms; /* t0 is rounded down: never end early */
    int rc = 0;
    if (g->nwait++ == 0) g->wait_since = t0;
    while (g->applied < need && !g->stop) {
        int64_t at = t0 + next;
        int deadline = limit_ms > 0 && dl <= at;
        if (deadline) at = dl;
        struct timespec ts = {(time_t)(at / 1000), (long)(at % 1000) * 1000000};
        if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) != ETIMEDOUT) continue;
        if (g->applied >= need || g->stop) break;
        if (deadline) {
            char line[512];
            if (!wait_line(g, line, sizeof line))
                snprintf(line, sizeof line, "table '%s' clock %lld: held for a checkpoint",
                         g->name, (long long)g->applied);
            rc = pd_seterr(e, PARAMD_ETIMEDOUT,
                           "%s; the pull gave up after %lld ms (op_timeout_ms)", line,
                           (long long)limit_ms);
            break;
        }
        mark = next;
        next = pd_wait_next_log(mark);
        if (g->log_clock == g->applied && g->log_mark >= mark) continue; /* logged */
        g->log_clock = g->applied;
        g->log_mark = mark;
        pd_wait w;
        if (pd_gate_wait_describe(g, &w, NULL, 0) > 0) {
            char line[512];
            pd_wait_format(&w, line, sizeof line);
            pd_log(PD_LOG_WARN, "%s; pulls waiting %.0f s", line, (double)w.waiting_ms / 1000);
        }
    }
    g->nwait--;
    return rc;
}

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

int pd_gate_pull_wait(pd_gate *g, int32_t w, int64_t clock, int64_t limit_ms, pd_err *e) {
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
    if (g->applied < need && !g->stop && limit_ms < 0) {
        /* the deadline was spent by an earlier part of the same call */
        char line[512];
        if (!wait_line(g, line, sizeof line))
            snprintf(line, sizeof line, "table '%s' clock %lld: held for a checkpoint",
                     g->name, (long long)g->applied);
        return pd_seterr(e, PARAMD_ETIMEDOUT,
                         "%s; an earlier part of this pull gave up waiting "
                         "(op_timeout_ms)", line);
    }
    if (g->applied < need && !g->stop) {
        int rc = pull_sleep(g, need, limit_ms, e);
        if (rc) return rc;
    }
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

void pd_gate_stats(pd_gate *g, char *buf, size_t len, size_t *off) {
#define PUT(...)                                                               \
    do {                                                                       \
        if (*off < len) {                                                      \
            int n_ = snprintf(buf + *off, len - *off, __VA_ARGS__);            \
            *off += n_ > 0 ? (size_t)n_ : 0;                                   \
            if (*off > len - 1) *off = len - 1;                                \
        }                                                                      \
    } while (0)
    pd_wait ws[16], w;
    pthread_mutex_lock(&g->mu);
    uint64_t cum = 0;
    double ssum;
    __atomic_load(&g->stale.sum, &ssum, __ATOMIC_RELAXED);
    PUT(" staleness_count %llu staleness_sum %.0f staleness_max %lld",
        (unsigned long long)__atomic_load_n(&g->stale.count, __ATOMIC_RELAXED), ssum,
        (long long)g->stale_max);
    for (int i = 0; i < g->stale.nb; i++) { /* cumulative, as Prometheus's */
        cum += __atomic_load_n(&g->stale.n[i], __ATOMIC_RELAXED);
        PUT(" staleness_le_%.0f %llu", g->stale.le[i], (unsigned long long)cum);
    }
    int32_t slow = -1;
    for (int32_t r = 0; r < g->W; r++)
        if (g->mem.st[r] == PD_MEM_LIVE && (slow < 0 || g->done[r] < g->done[slow])) slow = r;
    PUT(" frontier %lld slowest_worker %d slowest_clock %lld waiting_pulls %d\n",
        (long long)g->top, slow, (long long)(slow >= 0 ? g->done[slow] : -1), g->nwait);
    int n = g->nwait > 0 ? pd_gate_wait_describe(g, &w, ws, 16) : 0;
    pthread_mutex_unlock(&g->mu);
    for (int i = 0; i < n && i < 16; i++) {
        char line[1024];
        if (i == 15 && n > 16) ws[i].others = n - 16;
        pd_wait_kv(&ws[i], line, sizeof line);
        PUT("%s\n", line);
    }
#undef PUT
}

void pd_gate_stop(pd_gate *g) {
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* ==== Checkpoints ======================================================= */

int64_t pd_gate_hold(pd_gate *g, int64_t at) {
    pthread_mutex_lock(&g->mu);
    g->hold = at < 0 ? g->applied : at;
    if (g->clocked) pd_gate_apply_ready(g); /* up to the new hold */
    pthread_cond_broadcast(&g->cv);
    int64_t a = g->applied;
    pthread_mutex_unlock(&g->mu);
    return a;
}

int pd_gate_wait_applied(pd_gate *g, int64_t C, int ms) {
    /* the condition variable runs on the monotonic clock (pd_gate_init) */
    int64_t at = pd_now_ms() + ms;
    struct timespec ts = {(time_t)(at / 1000), (long)(at % 1000) * 1000000};
    int rc = 0;
    pthread_mutex_lock(&g->mu);
    while (g->applied < C && !g->stop && rc == 0)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) == ETIMEDOUT) rc = PARAMD_ETIMEDOUT;
    if (g->applied >= C) rc = 0;
    else if (g->stop) rc = PARAMD_ESHUTDOWN;
    pthread_mutex_unlock(&g->mu);
    return rc;
}

void pd_gate_release(pd_gate *g) {
    pthread_mutex_lock(&g->mu);
    g->hold = -1;
    if (g->clocked) pd_gate_apply_ready(g);
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void pd_gate_restore(pd_gate *g, int64_t C) {
    if (!g->clocked) return;
    g->applied = C;
    g->top = C;
    for (int32_t w = 0; w < g->W; w++) g->last[w] = g->done[w] = -1;
}
