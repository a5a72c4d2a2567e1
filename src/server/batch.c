/*
 * batch.c - BATCH frames: many small requests in one (docs/protocol.md,
 * "Batches").
 *
 * A BATCH carries whole request frames.  Its payload is read in one read into the connection's own buffer, every
 * inner header is validated before any inner request runs (so a malformed
 * batch changes nothing), then each inner frame goes through the one
 * dispatch (srv_dispatch, session.c), as a frame from the socket does, with
 * sc->io pointing at a memory connection over its payload
 * (net/mem.c): the handler's reads come from the batch, its peek points
 * into it, its reply (error replies included) is appended to sc->bout.
 * The replies go back as one BATCH reply, in one write.
 *
 * Over shared memory the batch is used in place in the ring (pd_conn_peek,
 * when it lies contiguous there), saving a copy of up to PD_MAX_BATCH
 * bytes.  The worker can write the ring at any time, so nothing checked
 * may be read twice: the inner headers are decoded once into sc->items
 * and only those copies are used afterwards, and each handler reads each
 * byte of its payload once (an offset, a count, keys into sc->buf) and
 * checks what it read, as it does for a frame read from the ring.  Floats
 * that change while they are applied change only their own values, as
 * with the zero-copy push path.
 *
 * Memory: bin, items and bout belong to the connection and only grow (to
 * PD_MAX_BATCH, PD_MAX_BATCH / PD_HDR_SIZE items, and the largest reply);
 * nothing is allocated per batch.  The reply is bounded: its pulls may ask
 * for PD_MAX_BATCH bytes of values in all (sc->pull_room; a pull past that
 * is refused with PARAMD_ETOOBIG), and every other inner reply is a header
 * and at most an error text.
 */
#include "server/server_impl.h"

/* Grow the connection's batch buffers for a payload of len bytes.  0 or
 * -1 (out of memory; nothing changed but what grew). */
static int batch_room(srv_conn *sc, size_t len) {
    size_t nitems = len / PD_HDR_SIZE;
    if (len > sc->bin_cap) {
        uint8_t *p = pd_realloc(sc->bin, len);
        if (!p) return -1;
        sc->bin = p;
        sc->bin_cap = len;
    }
    if (nitems > sc->items_cap) {
        pd_batch_item *it = pd_realloc(sc->items, nitems * sizeof *it);
        if (!it) return -1;
        sc->items = it;
        sc->items_cap = nitems;
    }
    return 0;
}

int srv_on_batch(srv_conn *sc, const pd_hdr *h) {
    pd_server *s = sc->srv;
    pd_err e = {0};
    size_t len = (size_t)h->len; /* <= PD_MAX_BATCH: pd_hdr_decode */
    int rc;
    if (batch_room(sc, len) != 0) {
        /* A refused BATCH always ends its connection (the client fails
         * the whole link on it), as a malformed one does below. */
        pd_seterr(&e, PARAMD_ENOMEM, "out of memory for a %zu-byte BATCH", len);
        pd_log(PD_LOG_WARN, "closing connection from %s (rank %d): %s",
               sc->conn->peer, sc->rank, e.msg);
        pd_send_error(sc->conn, h, e.code, e.msg);
        return PARAMD_ENOMEM;
    }
    /* In place where the transport allows it (shared memory), else into
     * the connection's buffer: one read either way. */
    const void *pv = NULL;
    int peeked = pd_conn_peek(sc->conn, len, &pv, &sc->ioerr);
    if (peeked < 0) return peeked;
    if (!peeked && (rc = pd_conn_read(sc->conn, sc->bin, len, 0, &sc->ioerr))) return rc;
    const uint8_t *in = peeked ? pv : sc->bin;
    size_t n = 0;
    if (h->table != 0 || h->clock != 0 || h->status != 0)
        rc = pd_seterr(&e, PARAMD_EPROTO,
                       "BATCH header with table %u, clock %lld, status %d "
                       "(all must be 0)",
                       h->table, (long long)h->clock, h->status);
    else
        rc = pd_batch_parse(in, len, sc->items, &n, &e);
    if (peeked && rc) pd_conn_consume(sc->conn, len);
    if (rc) {
        /* The stream itself is fine, but a peer that sends this is broken:
         * answer, then close, as for a bad header.  Nothing ran. */
        pd_log(PD_LOG_WARN, "closing connection from %s (rank %d): malformed BATCH "
               "of %zu bytes: %s", sc->conn->peer, sc->rank, len, e.msg);
        pd_send_error(sc->conn, h, rc, e.msg);
        return PARAMD_EPROTO;
    }
    pd_mem_conn mem;
    sc->bout.len = 0;
    sc->bout.oom = 0;
    pd_mem_init(&mem, NULL, 0, &sc->bout, sc->conn->peer);
    sc->io = &mem.conn;
    sc->pull_room = PD_MAX_BATCH;
    for (size_t i = 0; i < n && rc == 0; i++) {
        pd_mem_reset(&mem, in + sc->items[i].off, (size_t)sc->items[i].h.len);
        rc = srv_dispatch(sc, &sc->items[i].h); /* as from the socket */
    }
    if (peeked) pd_conn_consume(sc->conn, len);
    sc->io = sc->conn;
    sc->pull_room = UINT64_MAX;
    if (rc) return rc; /* the replies could not be built: out of memory */
    __atomic_add_fetch(&s->batches, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->batched, n, __ATOMIC_RELAXED);
    if ((rc = srv_repl_wait(sc))) return rc; /* its updates are on every copy */
    pd_hdr rh = {0};
    rh.type = PD_MSG_BATCH | PD_REPLY;
    rh.id = h->id;
    return pd_send_frame(sc->conn, &rh, sc->bout.p, sc->bout.len, NULL, 0, NULL,
                         0, &sc->ioerr);
}

