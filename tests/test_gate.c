/*
 * test_gate.c - the clock gate alone (server/gate.h), with a store that
 * only records which clocks it was asked to apply: the order of the
 * admission checks and their codes, clocks applied once, in order, when
 * complete (backup workers, gone workers), the pull wait (deadlock check,
 * deadline, stop), joins in two phases, and async tables.  test_shard.c and
 * test_sparse.c test the same rules through the two stores.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "server/gate.h"
#include "table/spec.h"

typedef struct rec {
    int64_t applied[64]; /* clocks, in the order the store applied them */
    int32_t ndone[64];   /* workers counted for each */
    int n;
    int forgot;          /* forget calls */
} rec;

static void rec_apply(void *store, pd_gate_slot *sl) {
    rec *r = store;
    CHECK(r->n < 64);
    r->ndone[r->n] = sl->ndone;
    r->applied[r->n++] = sl->clock;
}

static void rec_forget(void *store, int32_t w) {
    (void)w;
    ((rec *)store)->forgot++;
}

static void mk(pd_gate *g, rec *r, const char *spec, int32_t W) {
    pd_table_def d = {0};
    pd_err e = {0};
    CHECK_OK(pd_spec_parse(spec, &d, &e));
    d.n = 4, d.lo = 0, d.hi = 4;
    memset(r, 0, sizeof *r);
    pd_gate_store st = {rec_apply, rec_forget, r};
    CHECK_OK(pd_gate_init(g, 7, &d, W, &st, "everything", &e));
}

/* A whole contribution of worker w for clock c, as a store does it:
 * admit, reserve, open, count, apply what is ready.  Returns the code. */
static int push(pd_gate *g, int32_t w, int64_t c, pd_err *e) {
    int dropped = 0;
    pthread_mutex_lock(&g->mu);
    int rc = pd_gate_admit(g, w, c, &dropped, e);
    if (rc == 0 && g->clocked && !dropped) {
        pd_gate_slot *sl = pd_gate_slot_for(g, c, e);
        CHECK(sl != NULL);
        pd_gate_pushed(g, w, c, 1, 0);
        pd_gate_open(g, sl, c);
        pd_gate_count(g, sl, w);
        pd_gate_apply_ready(g);
    } else if (rc == 0) {
        pd_gate_pushed(g, w, c, 1, dropped);
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static int pull_within(pd_gate *g, int32_t w, int64_t c, int64_t limit_ms, pd_err *e) {
    pthread_mutex_lock(&g->mu);
    int rc = pd_gate_pull_wait(g, w, c, limit_ms, e);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static int pull(pd_gate *g, int32_t w, int64_t c, pd_err *e) {
    pthread_mutex_lock(&g->mu);
    int rc = pd_gate_pull_wait(g, w, c, 0, e);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static void test_sync_order_and_rejections(void) {
    pd_gate g;
    rec r;
    pd_err e = {0};
    mk(&g, &r, "consistency=sync", 2);
    CHECK_INT_EQ(g.window, PD_SYNC_WINDOW);
    /* clock 1 complete before clock 0: applied only after 0, in order */
    CHECK_OK(push(&g, 0, 0, &e));
    CHECK_OK(push(&g, 0, 1, &e));
    CHECK_OK(push(&g, 1, 1, &e));
    CHECK_INT_EQ(r.n, 0);
    /* worker 1 goes back to clock 0: it already pushed for 1 */
    CHECK_INT_EQ(push(&g, 1, 0, &e), PARAMD_ESTALE);
    CHECK(strstr(e.msg, "after pushing for clock 1"));
    CHECK_INT_EQ(r.n, 0);
    pd_gate_fini(&g);

    mk(&g, &r, "consistency=sync", 2);
    CHECK_OK(push(&g, 0, 0, &e));
    CHECK_OK(push(&g, 0, 1, &e));
    CHECK_OK(push(&g, 1, 0, &e));
    CHECK_INT_EQ(r.n, 1);
    CHECK_INT_EQ(r.applied[0], 0);
    CHECK_INT_EQ(r.ndone[0], 2);
    CHECK_OK(push(&g, 1, 1, &e));
    CHECK_INT_EQ(r.n, 2);
    CHECK_INT_EQ(r.applied[1], 1);
    CHECK_INT_EQ(g.applied, 2);
    /* stale: clock 0 is applied (worker 1 never pushed 2 yet) */
    CHECK_OK(push(&g, 0, 2, &e));
    g.last[1] = -1; /* as a joiner's reset record would be: only the clock counts */
    CHECK_INT_EQ(push(&g, 1, 0, &e), PARAMD_ESTALE);
    CHECK(strstr(e.msg, "already applied"));
    /* too far ahead: the window is applied .. applied + 3 */
    CHECK_INT_EQ(push(&g, 1, 2 + PD_SYNC_WINDOW, &e), PARAMD_EAHEAD);
    CHECK(strstr(e.msg, "window 4"));
    CHECK_OK(push(&g, 1, 1 + PD_SYNC_WINDOW, &e));
    CHECK_INT_EQ(pd_gate_check_worker(&g, 2, &e), PARAMD_EWORKER);
    CHECK_INT_EQ(pd_gate_check_worker(&g, -1, &e), PARAMD_EWORKER);
    CHECK_OK(pd_gate_check_worker(&g, 1, &e));
    pd_gate_fini(&g);
}

static void test_backup_and_gone(void) {
    pd_gate g;
    rec r;
    pd_err e = {0};
    mk(&g, &r, "consistency=sync backup=1", 3);
    CHECK_OK(push(&g, 0, 0, &e));
    CHECK_INT_EQ(r.n, 0);
    CHECK_OK(push(&g, 2, 0, &e)); /* 2 of 3: enough with one backup */
    CHECK_INT_EQ(r.n, 1);
    CHECK_INT_EQ(r.ndone[0], 2);
    int dropped = 0;
    pthread_mutex_lock(&g.mu);
    CHECK_OK(pd_gate_admit(&g, 1, 0, &dropped, &e)); /* the straggler */
    pthread_mutex_unlock(&g.mu);
    CHECK_INT_EQ(dropped, 1);
    CHECK_OK(push(&g, 1, 0, &e)); /* dropped: nothing applied again */
    CHECK_INT_EQ(r.n, 1);
    CHECK_INT_EQ(g.done[1], 0);   /* but it counts as done for its pulls */
    CHECK_INT_EQ(g.top, 1);       /* and moves no frontier */
    pd_gate_fini(&g);

    /* A worker that dies after counting stays in the mean, but never
     * stands in for a live one; once gone, clocks stop waiting for it. */
    mk(&g, &r, "consistency=sync", 3);
    CHECK_OK(push(&g, 0, 0, &e));
    CHECK_OK(push(&g, 1, 0, &e));
    pd_gate_worker_gone(&g, 1);
    CHECK_INT_EQ(r.n, 0); /* needs 2 live workers: 0 and 2; only 0 counts */
    pd_gate_worker_gone(&g, 1); /* idempotent */
    CHECK_OK(push(&g, 0, 1, &e)); /* any count re-checks clock 0 */
    CHECK_INT_EQ(r.n, 0);         /* the dead worker did not stand in */
    CHECK_OK(push(&g, 2, 0, &e));
    CHECK_INT_EQ(r.n, 1);
    CHECK_INT_EQ(r.ndone[0], 3); /* worker 1's push is in the mean */
    CHECK_INT_EQ(push(&g, 1, 1, &e), PARAMD_EWORKER);
    CHECK(strstr(e.msg, "removed from the cluster"));
    pd_gate_worker_gone(&g, 2); /* clock 1 now waits for worker 0 alone, */
    CHECK_INT_EQ(r.n, 2);       /* which pushed: applied at once */
    CHECK_INT_EQ(r.applied[1], 1);
    pd_gate_fini(&g);
}

static void test_pull_wait(void) {
    pd_gate g;
    rec r;
    pd_err e = {0};
    mk(&g, &r, "consistency=sync", 2);
    CHECK_OK(pull(&g, 0, 0, &e)); /* clock 0 needs nothing */
    CHECK_INT_EQ(pull(&g, 0, 1, &e), PARAMD_EDEADLOCK); /* its own push */
    CHECK(strstr(e.msg, "worker 0 has not pushed everything"));
    CHECK_OK(push(&g, 0, 0, &e));
    CHECK_OK(push(&g, 1, 0, &e));
    CHECK_OK(pull(&g, 0, 1, &e));
    CHECK_OK(pull(&g, -1, 1, &e)); /* a tool */
    CHECK_INT_EQ(g.max_ahead, 0);
    pd_gate_fini(&g);

    /* ssp:1: a pull at clock 2 needs clock 0 only */
    mk(&g, &r, "consistency=ssp:1", 2);
    CHECK_OK(pull(&g, 0, 1, &e));
    CHECK_OK(push(&g, 0, 0, &e));
    CHECK_OK(push(&g, 1, 0, &e));
    CHECK_OK(push(&g, 0, 1, &e));
    CHECK_OK(pull(&g, 0, 2, &e));
    CHECK_INT_EQ(g.max_ahead, 1);
    pd_gate_fini(&g);
}

/* A pull's deadline (limit_ms): the wait ends with PARAMD_ETIMEDOUT and
 * the wait's own line (whom, which clock); a spent one (< 0) fails at
 * once, but only if the pull would wait; nothing in the gate changes. */
static void *deadline_waiter(void *arg) {
    pd_gate *g = arg;
    pd_err e = {0};
    static int rc;
    rc = pull_within(g, 1, 1, 3600000, &e); /* released by worker 0's push */
    return &rc;
}

static void test_pull_deadline(void) {
    pd_gate g;
    rec r;
    pd_err e = {0};
    mk(&g, &r, "consistency=sync", 2);
    snprintf(g.name, sizeof g.name, "model");
    CHECK_OK(push(&g, 1, 0, &e));
    int64_t t0 = pd_now_ms();
    CHECK_INT_EQ(pull_within(&g, 1, 1, 50, &e), PARAMD_ETIMEDOUT);
    CHECK(pd_now_ms() - t0 >= 50); /* it did wait its deadline */
    CHECK(strstr(e.msg, "table 'model' clock 0: waiting for worker 0 (no push yet"));
    CHECK(strstr(e.msg, "gave up after 50 ms (op_timeout_ms)"));
    CHECK_INT_EQ(g.nwait, 0);
    CHECK_INT_EQ(r.n, 0);
    CHECK_INT_EQ(g.applied, 0);
    /* spent: at once, with the same line */
    CHECK_INT_EQ(pull_within(&g, 1, 1, -1, &e), PARAMD_ETIMEDOUT);
    CHECK(strstr(e.msg, "clock 0: waiting for worker 0"));
    CHECK(strstr(e.msg, "an earlier part of this pull"));
    CHECK_OK(pull_within(&g, 1, 0, -1, &e)); /* clock 0 waits for nothing */
    /* the deadline does not end a wait that ends in time */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, deadline_waiter, &g) == 0);
    CHECK_OK(push(&g, 0, 0, &e));
    void *res;
    pthread_join(t, &res);
    CHECK_INT_EQ(*(int *)res, 0);
    CHECK_INT_EQ(r.n, 1);
    CHECK_OK(pull_within(&g, 0, 1, -1, &e)); /* applied: no wait, no error */
    pd_gate_fini(&g);
}

static void *waiter(void *arg) {
    pd_gate *g = arg;
    pd_err e = {0};
    static int rc;
    rc = pull(g, 1, 1, &e); /* waits for worker 0's clock 0 */
    return &rc;
}

static void test_stop_wakes_pulls(void) {
    pd_gate g;
    rec r;
    pd_err e = {0};
    mk(&g, &r, "consistency=sync", 2);
    CHECK_OK(push(&g, 1, 0, &e));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, waiter, &g) == 0);
    /* Whether the pull is already asleep or not: stop makes it fail. */
    pd_gate_stop(&g);
    void *res;
    pthread_join(t, &res);
    CHECK_INT_EQ(*(int *)res, PARAMD_ESHUTDOWN);
    CHECK_INT_EQ(pull(&g, 1, 1, &e), PARAMD_ESHUTDOWN);
    CHECK(strstr(e.msg, "server stopping"));
    pd_gate_fini(&g);
}

static void test_join(void) {
    pd_gate g;
    rec r;
    pd_err e = {0};
    mk(&g, &r, "consistency=sync", 3);
    pd_gate_worker_gone(&g, 2); /* a vacant slot */
    CHECK_OK(push(&g, 0, 0, &e));
    CHECK_OK(push(&g, 1, 0, &e));
    CHECK_OK(push(&g, 0, 1, &e)); /* clock 1 in progress, top 2 */
    CHECK_INT_EQ(r.n, 1);
    int64_t F = pd_gate_join_begin(&g, 2);
    CHECK_INT_EQ(F, 2);
    CHECK_INT_EQ(r.forgot, 1);
    CHECK_INT_EQ(g.last[2], -1);
    CHECK_OK(push(&g, 1, 1, &e)); /* clock 1 never waits for the joiner */
    CHECK_INT_EQ(r.n, 2);
    /* clock 2 waits for it between the phases */
    CHECK_OK(push(&g, 0, 2, &e));
    CHECK_OK(push(&g, 1, 2, &e));
    CHECK_INT_EQ(r.n, 2);
    pd_gate_join_at(&g, 2, 3); /* J = 3 (another server's frontier) */
    CHECK_INT_EQ(r.n, 3);      /* clock 2 applies without it */
    CHECK_INT_EQ(r.ndone[2], 2);
    CHECK_INT_EQ(push(&g, 2, 2, &e), PARAMD_ESTALE); /* before its clock */
    CHECK(strstr(e.msg, "joined the cluster at clock 3"));
    CHECK_OK(push(&g, 0, 3, &e));
    CHECK_OK(push(&g, 1, 3, &e));
    CHECK_INT_EQ(r.n, 3); /* clock 3 waits for the joiner */
    CHECK_OK(pull(&g, 2, 3, &e)); /* its first pull: clocks it is not in */
    CHECK_OK(push(&g, 2, 3, &e));
    CHECK_INT_EQ(r.n, 4);
    CHECK_INT_EQ(r.ndone[3], 3);
    pd_gate_fini(&g);

    /* elastic=no: the joiner is kept out */
    mk(&g, &r, "consistency=sync elastic=no", 2);
    pd_gate_worker_gone(&g, 1);
    CHECK_INT_EQ(pd_gate_join_begin(&g, 1), -1);
    pd_gate_join_at(&g, 1, 0);
    CHECK_INT_EQ(push(&g, 1, 0, &e), PARAMD_EWORKER);
    CHECK(strstr(e.msg, "elastic=no"));
    CHECK_OK(push(&g, 0, 0, &e));
    CHECK_INT_EQ(r.n, 1);
    pd_gate_fini(&g);
}

static void test_async(void) {
    pd_gate g;
    rec r;
    pd_err e = {0};
    mk(&g, &r, "consistency=async", 2);
    CHECK_INT_EQ(g.clocked, 0);
    /* no window, no slots: any clock, in order per worker */
    CHECK_OK(push(&g, 0, 100, &e));
    CHECK_OK(push(&g, 0, 100, &e)); /* the store decides about duplicates */
    CHECK_INT_EQ(push(&g, 0, 99, &e), PARAMD_ESTALE);
    CHECK_OK(pull(&g, 1, 1000, &e));
    CHECK_INT_EQ(pd_gate_join_begin(&g, 1), -1); /* no frontier */
    CHECK_INT_EQ(r.n, 0);
    CHECK_INT_EQ(pd_gate_reply_clock(&g), 0);
    pd_gate_fini(&g);
}

/* A pull that would wait for a clock only the puller can complete is
 * refused, naming the clock: one it skipped (pushed clock 1, never 0),
 * and, with backup workers, once too few others are left (fuzz_server's
 * two hangs, tests/fuzz/crashes/server). */
static void test_pull_own_missing(void) {
    pd_gate g;
    rec r;
    pd_err e = {0};
    mk(&g, &r, "consistency=sync", 1);
    CHECK_OK(push(&g, 0, 1, &e)); /* clock 0 skipped */
    CHECK_INT_EQ(pull(&g, 0, 2, &e), PARAMD_EDEADLOCK);
    CHECK(strstr(e.msg, "(clock 0)"));
    /* and it never could: clock 0 can no longer be pushed (the wait was
     * forever) */
    CHECK_INT_EQ(push(&g, 0, 0, &e), PARAMD_ESTALE);
    CHECK_INT_EQ(r.n, 0);
    pd_gate_fini(&g);

    /* backup=1 of 2 workers: clock 0 applies with one push, anyone's, so
     * worker 0 may wait for worker 1; once 1 is gone, only 0 can. */
    mk(&g, &r, "consistency=sync backup=1", 2);
    pd_gate_worker_gone(&g, 1);
    CHECK_INT_EQ(pull(&g, 0, 1, &e), PARAMD_EDEADLOCK);
    CHECK(strstr(e.msg, "(clock 0)"));
    CHECK_OK(push(&g, 0, 0, &e));
    CHECK_INT_EQ(r.n, 1);
    CHECK_OK(pull(&g, 0, 1, &e));
    pd_gate_fini(&g);
    puts("ok: a pull waiting on the puller's own missing push is refused");
}

int main(void) {
    test_pull_own_missing();
    test_sync_order_and_rejections();
    test_backup_and_gone();
    test_pull_wait();
    test_pull_deadline();
    test_stop_wakes_pulls();
    test_join();
    test_async();
    puts("test_gate: ok");
    return 0;
}
