/*
 * waits.c - a worker that waits long says so: every blocking call (a
 * request's wait in req_finish, a coordinator request such as a barrier
 * in coord_rpc) registers itself here while it waits, and the heartbeat
 * thread, which wakes at least once a second, logs each one that has
 * lasted PD_WAIT_LOG_FIRST_MS, then again at a growing interval
 * (wire/status.h): "worker 0: a pull of table 's' at clock 7 from server
 * 0 has waited 5 s ...".  Whom the wait is for is known where it is held
 * (the server's or coordinator's log and `paramd status` name the worker
 * and clock); the line says where to look.
 *
 * The registered waits are a list on the waiters' stacks, guarded by
 * wait_mu (a leaf lock: taken with nothing else held, never held while
 * waiting).  A client without heartbeats (the coordinator's
 * --heartbeat-timeout-ms 0) logs nothing.
 */
#include <stdio.h>
#include <string.h>

#include "client/client_impl.h"
#include "common/common.h"
#include "wire/status.h"

void cl_wait_begin(paramd_client *c, cl_wait *w) {
    w->since = pd_now_ms();
    w->mark = 0;
    pthread_mutex_lock(&c->wait_mu);
    w->prev = NULL;
    w->next = c->waits;
    if (c->waits) c->waits->prev = w;
    c->waits = w;
    pthread_mutex_unlock(&c->wait_mu);
}

void cl_wait_end(paramd_client *c, cl_wait *w) {
    pthread_mutex_lock(&c->wait_mu);
    if (w->prev) w->prev->next = w->next;
    else c->waits = w->next;
    if (w->next) w->next->prev = w->prev;
    pthread_mutex_unlock(&c->wait_mu);
}

void cl_wait_check(paramd_client *c) {
    int64_t now = pd_now_ms();
    pthread_mutex_lock(&c->wait_mu);
    for (cl_wait *w = c->waits; w; w = w->next) {
        int64_t next = pd_wait_next_log(w->mark);
        if (now - w->since < next) continue;
        w->mark = next;
        pd_log(PD_LOG_WARN, "worker %d: %s has waited %.0f s (%s; paramd status "
               "--coordinator %s shows whom it waits for)",
               c->rank, w->what, (double)(now - w->since) / 1000,
               w->server >= 0 ? "that server's log names whom it waits for"
                              : "the coordinator's log names whom it waits for",
               c->coord_addr);
    }
    pthread_mutex_unlock(&c->wait_mu);
}
