/*
 * client.c - libparamd, the worker side: connect to a cluster, open tables,
 * and push and pull ranges that are split by shard, cut into chunks, sent
 * to every server in parallel and reassembled in place.  This file is the
 * map of the library, and holds the probes the tests read
 * (client_internal.h).  The work is done in:
 *
 *   connect.c      options, connect and close, the HELLO handshake and the
 *                  cluster map, tool clients (role=tool), heartbeats,
 *                  barrier, clock, coordinator RPC, the last-error text
 *   request.c      a request: its sub-requests, completion, wait
 *   rx.c           a link's FIFO of pending sub-requests, and reading the
 *                  replies (BATCH replies too); failing a broken link
 *   reader.c       who reads a link: the read role (leader/follower) and
 *                  the receiver threads
 *   outbox.c       sending a sub-request, and coalescing small ones into
 *                  BATCH frames (the outbox)
 *   dense.c        opening a table; dense tables: sharding, push and pull
 *   region.c       shared buffers (paramd_alloc)
 *   sparse.c       sparse tables
 *   stats.c        the servers' counters: STATS text, table counters
 *   client_impl.h  the types they share and their cross-file functions
 *
 * Design.  A client keeps one connection to the coordinator (control
 * requests, one at a time under coord_mu) and one connection ("link") to
 * each server.  Requests on a link are written by the calling thread under
 * the link's send lock and answered by the server in order, so each link
 * has a FIFO of pending sub-requests, and whoever reads the link reads the
 * replies in that order: a pull reply's floats are read from the socket
 * straight into the caller's buffer.  A paramd_request counts its
 * outstanding sub-requests; the reader completes them; paramd_wait returns
 * when the count is zero.  At most one thread reads a link at a time, the
 * holder of its read role: a caller waiting for its own request when
 * nobody else reads (so a blocking call wakes no other thread), else the
 * link's receiver thread (reader.c).  Small frames wait in their link's
 * outbox and go out together as one BATCH frame (outbox.c).
 *
 * Threads and what they own:
 *   caller threads     write requests and flush outboxes (pd_link.send_mu),
 *                      wait on requests; read a link while they hold its
 *                      read role
 *   receiver, 1/link   reads replies while it holds its link's read role,
 *                      sleeps otherwise
 *   heartbeat          tells the coordinator, on its own connection, that
 *                      this worker is alive, and which servers' links are
 *                      broken in a cluster that replaces lost servers
 *                      (connect.c; it peeks at each link's socket under a
 *                      trylock of its send_mu)
 * The holder of a link's read role owns the read side of its connection,
 * the reply buffers (msgbuf, rxbuf) and the FIFO's head: only it pops
 * entries or fails the link.
 * Locks: coord_mu (coordinator connection); pd_link.send_mu (the write
 * side of the link, next_id, the outbox) then pd_link.q_mu (the FIFO, the
 * read role, the followers; never the other way); request.mu (leaf; also
 * taken under q_mu to hand the role to a follower); err_mu (leaf).  A
 * waiter takes the send_mu of each link whose outbox is not empty before
 * it waits, holding nothing.  Shared buffers: map_mu, held through one
 * buffer's mapping on every link, then reg_mu (a leaf: the list).
 * recover_mu (one lost link reconnected at a time: cl_recover_link) comes
 * before coord_mu, map_mu and a link's send_mu and q_mu, which it takes
 * to swap the link's connection once the FIFO is empty and nobody holds
 * the read role; hb_mu is a leaf (taken after q_mu is released, to wake
 * the heartbeat).
 *
 * Failure.  If a link breaks (server died, protocol error), its reader (a
 * caller or the receiver thread) fails every pending sub-request with the
 * reason and marks the link dead; later requests to that server fail at
 * once, and frames still in its outbox fail when it is next flushed (at
 * the latest by their waiter).  A link that breaks while nothing is
 * pending is noticed by the next request's reader.  Nothing aborts the
 * caller.  In a cluster that replaces lost servers (the map's replace_ms,
 * coord/replace.c) a request whose only errors were broken links is not
 * failed: its waiter asks the coordinator for the replacement
 * (SERVER_WAIT), connects the link to it, and issues the request's parts
 * for that server again (request.c, req_retry), from the caller's buffers
 * (valid until the call returns or is waited for).
 */
#include <pthread.h>
#include <stdio.h>

#include "client/client_impl.h"
#include "client/client_internal.h"
#include "common/common.h"
#include "table/spec.h"

/* ==== Probes for tests (client_internal.h) ============================== */

void pd_client_reads_get(paramd_client *c, pd_client_reads *out) {
    out->by_caller = __atomic_load_n(&c->n_by_caller, __ATOMIC_RELAXED);
    out->by_rx = __atomic_load_n(&c->n_by_rx, __ATOMIC_RELAXED);
    out->rx_wakes = __atomic_load_n(&c->n_rx_wakes, __ATOMIC_RELAXED);
    out->handoffs = __atomic_load_n(&c->n_handoffs, __ATOMIC_RELAXED);
}

int pd_client_link_reader(paramd_client *c, int32_t k, int *followers) {
    pd_link *l = &c->links[k];
    pthread_mutex_lock(&l->q_mu);
    int who = rd_get(l) == RD_RX ? PD_READER_RX
              : rd_get(l) == RD_CALLER ? PD_READER_CALLER : PD_READER_NONE;
    int n = 0;
    for (rd_waiter *w = l->wq; w; w = w->next) n++;
    pthread_mutex_unlock(&l->q_mu);
    if (followers) *followers = n;
    return who;
}

int pd_request_done(paramd_request *r) { return !req_pending(r); }

int pd_client_table_attach(paramd_client *c, uint32_t id, uint64_t n, int sparse,
                           paramd_table **out) {
    *out = NULL;
    pd_err e = {0};
    if (id == 0 || id >= PD_MAX_TABLES || n == 0 ||
        (sparse && n > PD_MAX_SPARSE_DIM))
        return PARAMD_EINVAL;
    paramd_table *t = pd_calloc(1, sizeof *t);
    if (!t) return PARAMD_ENOMEM;
    t->c = c;
    t->id = id;
    t->n = n;
    t->def.kind = sparse ? PD_TABLE_SPARSE : PD_TABLE_DENSE;
    if (pd_spec_parse("", &t->def, &e) != 0) { /* the defaults */
        pd_free(t);
        return PARAMD_EINVAL;
    }
    t->def.n = n;
    snprintf(t->name, sizeof t->name, "#%u", id);
    t->next = c->tables;
    c->tables = t;
    *out = t;
    return 0;
}
