/*
 * startup.c - the coordinator's start-up watch: the cluster is not whole
 * until its S servers and the W workers expected at start have
 * registered, and until then nothing useful happens (workers wait for
 * servers; sync clocks and barriers wait for workers).  A process that
 * never comes (it failed to start, its host is down, it dialled the wrong
 * address) would leave the others waiting in silence forever.  So:
 *
 *   - after report_ms (5 s by default) and then at doubling intervals up
 *     to a minute, the coordinator logs who it still waits for: how many
 *     servers are missing (and which registered, from where), and which
 *     worker ranks;
 *   - after startup_ms (--startup-timeout-ms, 5 minutes by default; 0:
 *     never) it gives up: it logs the same list as an error, ends the
 *     cluster with that text as the reason (co_fail: SHUTDOWN with the
 *     reason to every server, whose run then fails; every request waiting
 *     at the coordinator answered with it), and pd_coord_run returns
 *     PARAMD_ETIMEDOUT.
 *
 * Joins are not start-up: slots beyond W (--max-workers) and slots whose
 * worker left or died are not waited for.  The watch ends for good once
 * the cluster was whole.  Its thread sleeps on the coordinator's cv (any
 * registration wakes it) with a timeout at the next report or the
 * deadline; everything it reads is under mu.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "coord/coord_impl.h"

/* mu held: 1 once every server and every worker expected at start has
 * registered. */
static int whole(const pd_coord *co) {
    if (!co_servers_ready(co)) return 0;
    for (int32_t w = 0; w < co->o.workers; w++)
        if (co->wstate[w] == W_NEW) return 0;
    return 1;
}

/* mu held: "1 of 2 servers (registered: 0 at ADDR) and workers 2, 4-6 of
 * 8" into out: who is missing. */
static void missing_text(const pd_coord *co, char *out, size_t n) {
    size_t off = 0;
#define ADD(...)                                                               \
    do {                                                                       \
        if (off < n) off += (size_t)snprintf(out + off, n - off, __VA_ARGS__); \
    } while (0)
    int32_t S = co->o.servers, ms = S - co->nservers;
    if (ms > 0) {
        ADD("%d of %d server%s", ms, S, S == 1 ? "" : "s");
        if (co->nservers > 0) {
            ADD(" (registered:");
            for (int32_t i = 0; i < co->nservers && i < 8; i++)
                ADD("%s %d at %s", i ? "," : "", i, co->server_addr[i]);
            ADD("%s)", co->nservers > 8 ? ", ..." : "");
        }
    }
    if (ms <= 0 && co->o.replicas > 1 && !co->copies_ready) {
        int32_t R = co->o.replicas, mc = 0;
        for (int32_t k = 0; k < S; k++)
            for (int32_t j = 1; j < R; j++) mc += co->cp_state[k * co->RS + j] != CS_LIVE;
        ADD("%d of %d copies of the shards (--replicas %d: start %d more paramd server%s)",
            mc, S * (R - 1), R, mc, mc == 1 ? "" : "s");
        ms = mc;
    }
    int32_t nw = 0, W = co->o.workers;
    for (int32_t w = 0; w < W; w++) nw += co->wstate[w] == W_NEW;
    if (nw > 0) {
        ADD("%sworker%s", ms > 0 ? " and " : "", nw == 1 ? "" : "s");
        int shown = 0;
        for (int32_t w = 0; w < W && shown < 32; w++) {
            if (co->wstate[w] != W_NEW) continue;
            int32_t end = w;
            while (end + 1 < W && co->wstate[end + 1] == W_NEW) end++;
            if (end > w) ADD("%s %d-%d", shown ? "," : "", w, end);
            else ADD("%s %d", shown ? "," : "", w);
            shown++;
            w = end;
        }
        ADD("%s of %d", shown == 32 ? ", ..." : "", W);
    }
#undef ADD
    if (off >= n && n > 4) memcpy(out + n - 4, "...", 4);
}

/* mu held: wait on cv until the monotonic ms `until` (or a broadcast). */
static void wait_until(pd_coord *co, int64_t until) {
    int64_t left = until - pd_now_ms();
    if (left > 0) pd_cond_wait_ms(&co->cv, &co->mu, left);
}

void co_fail(pd_coord *co, const char *why) {
    if (co->stopping) return;
    snprintf(co->fail_msg, sizeof co->fail_msg, "%s", why);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_str(&b, co->fail_msg);
    for (int32_t i = 0; i < co->o.servers; i++) {
        co_conn *sc = co->server_conn[i];
        if (!sc || b.oom) continue;
        pd_hdr h = {0};
        h.type = PD_MSG_SHUTDOWN;
        pd_send_frame(sc->conn, &h, b.p, b.len, NULL, 0, NULL, 0, NULL);
    }
    pd_buf_free(&b);
    co_stop_copies(co, co->fail_msg);
    co->stopping = 1;
    pthread_cond_broadcast(&co->cv);
    if (co->lfd >= 0) shutdown(co->lfd, SHUT_RDWR);
}

const char *co_stop_reason(const pd_coord *co, const char *otherwise) {
    return co->fail_msg[0] ? co->fail_msg : otherwise;
}

void *co_startup_main(void *arg) {
    pd_coord *co = arg;
    char missing[600], why[PD_ERRMSG_MAX];
    pthread_mutex_lock(&co->mu);
    int64_t t0 = pd_now_ms(), every = co->o.report_ms;
    int64_t next = t0 + every;
    int64_t deadline = co->o.startup_ms > 0 ? t0 + co->o.startup_ms : INT64_MAX;
    int said = 0;
    while (!co->stopping && !whole(co)) {
        int64_t now = pd_now_ms();
        if (now >= deadline) {
            missing_text(co, missing, sizeof missing);
            snprintf(why, sizeof why,
                     "the cluster did not assemble within %.1f s "
                     "(--startup-timeout-ms): %s never registered; stopping it",
                     (double)co->o.startup_ms / 1000.0, missing);
            pd_log(PD_LOG_ERROR, "%s", why);
            co_fail(co, why);
            break;
        }
        if (now >= next) {
            missing_text(co, missing, sizeof missing);
            if (deadline == INT64_MAX)
                pd_log(PD_LOG_WARN, "after %.1f s still waiting for %s to register",
                       (double)(now - t0) / 1000.0, missing);
            else
                pd_log(PD_LOG_WARN, "after %.1f s still waiting for %s to register "
                       "(giving up in %.0f s)", (double)(now - t0) / 1000.0, missing,
                       (double)(deadline - now) / 1000.0);
            said = 1;
            every = every * 2 > 60000 ? 60000 : every * 2;
            next = now + every;
        }
        wait_until(co, next < deadline ? next : deadline);
    }
    if (said && !co->stopping) /* the end of what was reported */
        pd_log(PD_LOG_INFO, "all %d servers and %d workers registered after %.1f s",
               co->o.servers, co->o.workers, (double)(pd_now_ms() - t0) / 1000.0);
    pthread_mutex_unlock(&co->mu);
    return NULL;
}
