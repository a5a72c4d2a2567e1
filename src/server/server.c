/*
 * server.c - the paramd server: accepts worker connections, validates every
 * frame, and hands pushes and pulls to the table shards (shard.c).
 *
 * Design.  One thread per connection, blocking I/O.  A worker keeps one
 * connection to each server, and a server answers the requests of one
 * connection in order, so replies need no reordering on the client and a
 * sync pull that must wait for its clock blocks only the connection of the
 * worker that asked.  Payloads of pushes are read into the connection's
 * own buffer (grown to the largest chunk seen, never per request) and
 * applied under the shard's lock; pulls copy out under its values' read
 * lock and send what did not fit after releasing it.
 *
 * Threads and what they own:
 *   main (pd_server_run)  the accept loop; starts connection threads
 *   coordinator watcher   reads the coordinator connection: SHUTDOWN or
 *                         its loss stops the server
 *   connection threads    one per accepted connection; own that pd_conn
 *                         and its buffers
 * Lock order: server.mu before a shard's mu (never the other way).
 * server.mu guards: tables[], sparse[], conns list, nthreads, stopping.
 *
 * Batches.  A BATCH frame carries many small requests (docs/protocol.md):
 * on_batch reads it whole, validates every inner header, runs each inner
 * request through the same handler as above with sc->io pointing at a
 * memory connection over the batch (net/mem.c), and sends the collected
 * replies as one frame.  Handlers therefore do their I/O on sc->io, never
 * on sc->conn; sc->conn is the socket (or ring) itself, which other
 * threads may shut down.
 *
 * Bad input.  A frame whose header is bad (magic, version, type, length
 * over the limit) gets an error reply and the connection is closed, since
 * the stream can no longer be trusted; so does a malformed BATCH (a bad
 * inner header, an inner length past its end, a forbidden inner type,
 * trailing bytes), before any of its requests runs.  A well-framed request
 * that is wrong (unknown table, range outside the shard, duplicate push),
 * inside a batch or not, gets an error reply, its payload is skipped, and
 * the connection stays open.  In every case nothing in any table changes.
 * A peer that stalls in the middle of a frame for PD_FRAME_STALL_MS is
 * disconnected.
 */
#include "server/server.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include "common/pool.h"
#include "net/conn.h"
#include "net/fault.h"
#include "server/shard.h"
#include "server/sparse.h"
#include "wire/wire.h"

#define PD_FRAME_STALL_MS 30000

/* ==== Types ============================================================= */

typedef struct srv_conn {
    struct srv_conn *next;
    pd_conn *conn;       /* NULL until a shared-memory handshake is done */
    pd_conn *io;         /* where the request being handled is read from and
                          * answered: conn, or during a BATCH the memory
                          * connection over its inner frames (connection
                          * thread only; others use conn) */
    int shm_fd;          /* accepted on the shm socket: handshake first */
    struct pd_server *srv;
    int32_t rank;        /* worker rank, -1 for tools */
    uint32_t role;
    uint8_t *buf;        /* payload buffer, grown on demand */
    size_t cap;
    pd_err ioerr;        /* why the connection broke, for the log */
    uint64_t pull_room;  /* bytes of values a pull may still ask for:
                          * UINT64_MAX, or in a BATCH what is left of
                          * PD_MAX_BATCH */
    uint8_t *bin;        /* a BATCH's payload, grown on demand */
    size_t bin_cap;
    pd_batch_item *items; /* its inner requests, grown on demand */
    size_t items_cap;
    pd_buf bout;         /* its inner replies; emptied, not freed, between
                          * batches */
    uint32_t gen;        /* worker: wgen[rank] when it connected */
    struct srv_region *regions; /* the worker's shared buffers mapped here */
    uint32_t nregions, regions_cap;
    uint8_t ctrl[PD_MAX_CTRL_PAYLOAD + 1];
} srv_conn;

/* A worker's shared buffer (paramd_alloc) mapped into this server:
 * connection thread only ("Shared buffers" below). */
typedef struct srv_region {
    uint64_t id;
    uint8_t *base;
    uint64_t bytes;
} srv_region;

struct pd_server {
    pd_server_opts o;
    char bound[PD_MAX_ADDR + 1];
    int lfd;
    int shm_lfd;                   /* -1: shared memory not offered */
    char shm_name[PD_MAX_ADDR + 1]; /* "@paramd-..." or "" */
    pthread_t shm_thread;
    int shm_thread_started;
    pd_conn *coord;
    pd_pool *pool;        /* apply threads (o.apply_threads), NULL: inline;
                           * shared by every dense shard, freed last */
    int32_t index, S, W;
    pthread_t coord_thread;
    int coord_thread_started;

    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t cv;    /* nthreads reached 0 */
    pd_shard *tables[PD_MAX_TABLES];
    pd_sparse *sparse[PD_MAX_TABLES]; /* a table id is dense or sparse */
    uint8_t *gone;        /* W: workers the coordinator said are gone */
    int64_t *jfrom;       /* W: clock a joined worker counts from; -1 */
    uint32_t *wgen;       /* W: incarnation of each rank (bumped on gone
                           * and join: older connections may not push) */
    int32_t *inflight;    /* W: pushes of each rank inside a table now */
    srv_conn *conns;
    int nthreads;
    int stopping;
    int lost_coordinator;
    uint64_t batches;     /* atomic: BATCH frames executed */
    uint64_t batched;     /* atomic: inner requests they held */
    uint64_t regions;     /* atomic: shared buffers mapped now */
    uint64_t region_bytes; /* atomic: their bytes */
    uint64_t region_pushes, region_pulls; /* atomic: requests served so */
};

/* ==== Helpers =========================================================== */

static int send_ok(srv_conn *sc, const pd_hdr *req, const void *p, size_t n,
                   const void *p2, size_t n2) {
    pd_hdr h = {0};
    h.type = req->type | PD_REPLY;
    h.id = req->id;
    h.table = req->table;
    h.clock = req->clock;
    return pd_send_frame(sc->io, &h, p, n, p2, n2, NULL, 0, NULL);
}

static int reply_err(srv_conn *sc, const pd_hdr *req, const pd_err *e) {
    pd_log(PD_LOG_INFO, "rejected %s from %s (rank %d): %s",
           pd_msg_name(req->type), sc->conn->peer, sc->rank, e->msg);
    return pd_send_error(sc->io, req, e->code, e->msg);
}

static pd_shard *table_get(pd_server *s, uint32_t id) {
    if (id == 0 || id >= PD_MAX_TABLES) return NULL;
    pthread_mutex_lock(&s->mu);
    pd_shard *t = s->tables[id];
    pthread_mutex_unlock(&s->mu);
    return t;
}

static int ensure_buf(srv_conn *sc, size_t n) {
    if (n <= sc->cap) return 0;
    uint8_t *p = pd_realloc(sc->buf, n);
    if (!p) return -1;
    sc->buf = p;
    sc->cap = n;
    return 0;
}

/* ==== Request handlers ==================================================
 * Each returns 0 to keep the connection, or an error to close it. */

static pd_sparse *sparse_get(pd_server *s, uint32_t id);
static int push_begin(srv_conn *sc, pd_err *e);
static void push_end(srv_conn *sc);
static int on_sparse_create(srv_conn *sc, const pd_hdr *h,
                            const pd_table_def *d);

static int on_table_create(srv_conn *sc, const pd_hdr *h) {
    pd_server *s = sc->srv;
    pd_err e = {0};
    pd_table_def d;
    int rc = pd_recv_payload(sc->io, h, sc->ctrl, &sc->ioerr);
    if (rc) return rc;
    if (pd_table_def_decode(sc->ctrl, (size_t)h->len, &d, &e) != 0)
        return reply_err(sc, h, &e);
    if (h->table == 0 || h->table >= PD_MAX_TABLES) {
        pd_seterr(&e, PARAMD_ENOTABLE, "table id %u outside 1..%d", h->table,
                  PD_MAX_TABLES - 1);
        return reply_err(sc, h, &e);
    }
    if (d.kind == PD_TABLE_SPARSE) return on_sparse_create(sc, h, &d);
    pthread_mutex_lock(&s->mu);
    pd_shard *t = s->tables[h->table];
    if ((t && !pd_shard_same_def(t, &d)) || s->sparse[h->table]) {
        pthread_mutex_unlock(&s->mu);
        pd_seterr(&e, PARAMD_ESPEC,
                  "table %u exists on this server with another definition",
                  h->table);
        return reply_err(sc, h, &e);
    }
    if (!t) {
        t = pd_shard_create(h->table, &d, s->W, s->pool, &e);
        if (!t) {
            pthread_mutex_unlock(&s->mu);
            return reply_err(sc, h, &e);
        }
        for (int32_t w = 0; w < s->W; w++)
            if (s->gone[w]) pd_shard_worker_gone(t, w);
            else if (s->jfrom[w] >= 0) pd_shard_join_at(t, w, s->jfrom[w]);
        s->tables[h->table] = t;
        pd_log(PD_LOG_DEBUG, "table %u: shard [%llu, %llu) of %llu", h->table,
               (unsigned long long)d.lo, (unsigned long long)d.hi,
               (unsigned long long)d.n);
    }
    pthread_mutex_unlock(&s->mu);
    return send_ok(sc, h, NULL, 0, NULL, 0);
}

/* SET and PUSH: u64 offset, then floats. */
static int on_write(srv_conn *sc, const pd_hdr *h) {
    pd_err e = {0};
    uint8_t pre[PD_RANGE_PREFIX];
    if (h->len < PD_RANGE_PREFIX || (h->len - PD_RANGE_PREFIX) % 4 != 0) {
        int rc = pd_conn_skip(sc->io, h->len, &sc->ioerr);
        if (rc) return rc;
        pd_seterr(&e, PARAMD_EPROTO,
                  "%s payload of %llu bytes is not an offset plus floats",
                  pd_msg_name(h->type), (unsigned long long)h->len);
        return reply_err(sc, h, &e);
    }
    int rc = pd_conn_read(sc->io, pre, sizeof pre, 0, &sc->ioerr);
    if (rc) return rc;
    pd_rd r;
    uint64_t off;
    pd_rd_init(&r, pre, sizeof pre);
    pd_get_u64(&r, &off);
    uint64_t count = (h->len - PD_RANGE_PREFIX) / 4;
    uint64_t nbytes = h->len - PD_RANGE_PREFIX;
    pd_shard *t = table_get(sc->srv, h->table);
    if (!t) {
        pd_seterr(&e, PARAMD_ENOTABLE, "no table %u on this server", h->table);
    } else if (pd_shard_check_range(t, off, count, &e) == 0 &&
               h->type == PD_MSG_PUSH && sc->role != PD_ROLE_WORKER) {
        pd_seterr(&e, PARAMD_EWORKER, "only workers push");
    } else if (e.code == 0 && ensure_buf(sc, (size_t)nbytes) != 0) {
        pd_seterr(&e, PARAMD_ENOMEM, "out of memory for a %llu-byte payload",
                  (unsigned long long)nbytes);
    }
    if (e.code) {
        rc = pd_conn_skip(sc->io, nbytes, &sc->ioerr);
        if (rc) return rc;
        return reply_err(sc, h, &e);
    }
    /* Zero-copy where the transport allows it (shared memory): the rule
     * reads the gradient where the worker wrote it. */
    const void *in_place = NULL;
    int peeked = pd_conn_peek(sc->io, (size_t)nbytes, &in_place, &sc->ioerr);
    if (peeked < 0) return peeked;
    if (!peeked) {
        rc = pd_conn_read(sc->io, sc->buf, (size_t)nbytes, 0, &sc->ioerr);
        if (rc) return rc;
    }
    const float *v = peeked ? in_place : (const float *)(void *)sc->buf;
    if (h->type == PD_MSG_SET)
        rc = pd_shard_set(t, off, count, v, &e);
    else if ((rc = push_begin(sc, &e)) == 0) {
        rc = pd_shard_push(t, sc->rank, h->clock, off, count, v, &e);
        push_end(sc);
    }
    if (peeked) pd_conn_consume(sc->io, (size_t)nbytes);
    if (rc) return reply_err(sc, h, &e);
    return send_ok(sc, h, NULL, 0, NULL, 0);
}

/* A pull reply sent from under the shard's values lock: as much of the frame as
 * the transport takes without blocking goes straight from the values; the
 * rest is copied to the connection's buffer and sent after the lock is
 * released, so a slow worker never holds a shard. */
typedef struct pull_emit {
    srv_conn *sc;
    const pd_hdr *req;
    uint8_t hb[PD_HDR_SIZE];
    size_t hb_left;     /* header bytes not yet sent (at the end of hb) */
    uint64_t rest;      /* value bytes not yet sent, copied to sc->buf */
    int failed;
} pull_emit;

static void pull_emit_fn(void *arg, const float *v, uint64_t count,
                         int64_t applied) {
    pull_emit *pe = arg;
    pd_hdr rh = {0};
    rh.magic = PD_MAGIC;
    rh.version = PD_PROTO_VERSION;
    rh.type = pe->req->type | PD_REPLY;
    rh.id = pe->req->id;
    rh.table = pe->req->table;
    /* The reply's clock is the table's applied clock: a worker behind it
     * (a backup worker's straggler) can jump ahead. */
    rh.clock = applied;
    rh.len = count * 4;
    pd_hdr_encode(&rh, pe->hb);
    struct iovec iov[2] = {{pe->hb, PD_HDR_SIZE}, {(void *)v, (size_t)count * 4}};
    struct iovec *p = iov;
    int cnt = 2;
    if (pd_conn_try_writev(pe->sc->io, &p, &cnt, &pe->sc->ioerr) < 0) {
        pe->failed = 1;
        return;
    }
    pe->hb_left = cnt == 2 ? iov[0].iov_len : 0;
    pe->rest = cnt > 0 ? p[cnt - 1].iov_len : 0;
    if (pe->rest) memcpy(pe->sc->buf, p[cnt - 1].iov_base, (size_t)pe->rest);
}

static int on_pull(srv_conn *sc, const pd_hdr *h) {
    pd_err e = {0};
    uint8_t p[PD_PULL_PAYLOAD];
    if (h->len != PD_PULL_PAYLOAD) {
        int rc = pd_conn_skip(sc->io, h->len, &sc->ioerr);
        if (rc) return rc;
        pd_seterr(&e, PARAMD_EPROTO, "PULL payload of %llu bytes, expected %d",
                  (unsigned long long)h->len, PD_PULL_PAYLOAD);
        return reply_err(sc, h, &e);
    }
    int rc = pd_conn_read(sc->io, p, sizeof p, 0, &sc->ioerr);
    if (rc) return rc;
    pd_rd r;
    uint64_t off, count;
    pd_rd_init(&r, p, sizeof p);
    pd_get_u64(&r, &off);
    pd_get_u64(&r, &count);
    pd_shard *t = table_get(sc->srv, h->table);
    if (!t)
        pd_seterr(&e, PARAMD_ENOTABLE, "no table %u on this server", h->table);
    else if (pd_shard_check_range(t, off, count, &e) != 0)
        ;
    else if (count > sc->srv->o.max_frame / 4)
        pd_seterr(&e, PARAMD_ETOOBIG,
                  "pull of %llu floats exceeds the frame limit of %llu bytes",
                  (unsigned long long)count,
                  (unsigned long long)sc->srv->o.max_frame);
    else if (count * 4 > sc->pull_room)
        pd_seterr(&e, PARAMD_ETOOBIG,
                  "pull of %llu floats in a BATCH whose pulls already ask for "
                  "%llu of the %u bytes of values a batch may return: send it "
                  "alone",
                  (unsigned long long)count,
                  (unsigned long long)(PD_MAX_BATCH - sc->pull_room), PD_MAX_BATCH);
    else if (ensure_buf(sc, (size_t)count * 4) != 0)
        pd_seterr(&e, PARAMD_ENOMEM, "out of memory for a pull reply");
    if (e.code) return reply_err(sc, h, &e);
    if (sc->pull_room != UINT64_MAX) sc->pull_room -= count * 4;
    pull_emit pe = {sc, h, {0}, 0, 0, 0};
    rc = pd_shard_pull_emit(t, sc->rank, h->clock, off, count, pull_emit_fn,
                            &pe, &e);
    if (rc) return reply_err(sc, h, &e);
    if (pe.failed) return PARAMD_EIO;
    struct iovec iov[2];
    int cnt = 0;
    if (pe.hb_left) iov[cnt++] = (struct iovec){pe.hb + PD_HDR_SIZE - pe.hb_left, pe.hb_left};
    if (pe.rest) iov[cnt++] = (struct iovec){sc->buf, (size_t)pe.rest};
    return cnt ? pd_conn_writev(sc->io, iov, cnt, &sc->ioerr) : 0;
}

/* ==== Shared buffers =====================================================
 * A worker on the shared-memory transport may map buffers of its own
 * (paramd_alloc) into this server: REGION_MAP passes the buffer's memfd
 * beside the rings, and PUSH_REGION / PULL_REGION then name a range of it
 * instead of carrying the floats.  The rule reads the gradient where the
 * worker wrote it, and a pull copies the values straight into the
 * worker's buffer, on the apply threads: one copy each way, nothing
 * through the rings.
 *
 * Trust.  The worker can write its buffer at any time, so only floats are
 * read from it (a float changed meanwhile changes only its own values, as
 * on the zero-copy ring path).  The memfd must be sealed against
 * shrinking (so the mapping can never raise SIGBUS) and be at least as
 * large as the worker says; region ids, offsets and lengths are checked
 * against the server's own record before any access.  Mappings belong to
 * the connection (connection thread only) and go with it. */

static srv_region *region_find(srv_conn *sc, uint64_t id) {
    for (uint32_t i = 0; i < sc->nregions; i++)
        if (sc->regions[i].id == id) return &sc->regions[i];
    return NULL;
}

static void region_drop(srv_conn *sc, srv_region *r) {
    pd_server *s = sc->srv;
    munmap(r->base, (size_t)r->bytes);
    __atomic_sub_fetch(&s->regions, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&s->region_bytes, r->bytes, __ATOMIC_RELAXED);
    *r = sc->regions[--sc->nregions];
}

/* Room for one more mapping: 0 or -1 (out of memory). */
static int regions_room(srv_conn *sc) {
    if (sc->nregions < sc->regions_cap) return 0;
    uint32_t cap = sc->regions_cap ? sc->regions_cap * 2 : 8;
    srv_region *g = pd_realloc(sc->regions, cap * sizeof *g);
    if (!g) return -1;
    sc->regions = g;
    sc->regions_cap = cap;
    return 0;
}

/* Read a control payload of exactly `want` bytes into sc->ctrl; a payload
 * of another size is skipped and answered with an error.  0 read, 1
 * answered (the handler returns *rc), else an error that closes. */
static int read_fixed(srv_conn *sc, const pd_hdr *h, size_t want, int *rc) {
    if (h->len != want) {
        pd_err e = {0};
        if ((*rc = pd_conn_skip(sc->io, h->len, &sc->ioerr))) return 1;
        pd_seterr(&e, PARAMD_EPROTO, "%s payload of %llu bytes, expected %zu",
                  pd_msg_name(h->type), (unsigned long long)h->len, want);
        *rc = reply_err(sc, h, &e);
        return 1;
    }
    *rc = pd_conn_read(sc->io, sc->ctrl, want, 0, &sc->ioerr);
    return *rc != 0;
}

static int on_region_map(srv_conn *sc, const pd_hdr *h) {
    pd_server *s = sc->srv;
    pd_err e = {0};
    int rc;
    /* The descriptor was passed before the frame, so it is there now.
     * Take it first, whatever the frame says, so that descriptors and
     * frames stay paired for the next REGION_MAP. */
    uint64_t tag = 0;
    int fd = pd_conn_recv_fd(sc->io, &tag);
    int fd_errno = errno;
    if (read_fixed(sc, h, PD_REGION_MAP_PAYLOAD, &rc)) {
        if (fd >= 0) close(fd);
        return rc;
    }
    pd_rd r;
    uint64_t id, bytes;
    pd_rd_init(&r, sc->ctrl, PD_REGION_MAP_PAYLOAD);
    pd_get_u64(&r, &id);
    pd_get_u64(&r, &bytes);
    int seals = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
    struct stat st;
    void *base = MAP_FAILED;
    if (fd < 0)
        pd_seterr(&e, PARAMD_EPROTO,
                  "REGION_MAP of region %llu without its descriptor (%s): shared "
                  "buffers need the shared-memory transport",
                  (unsigned long long)id,
                  fd_errno == EAGAIN ? "none was passed" : strerror(fd_errno));
    else if (tag != id)
        pd_seterr(&e, PARAMD_EPROTO,
                  "REGION_MAP of region %llu came with the descriptor of region %llu",
                  (unsigned long long)id, (unsigned long long)tag);
    else if (sc->role != PD_ROLE_WORKER)
        pd_seterr(&e, PARAMD_EWORKER, "only workers map shared buffers");
    else if (region_find(sc, id))
        pd_seterr(&e, PARAMD_EINVAL, "region %llu is already mapped",
                  (unsigned long long)id);
    else if (sc->nregions >= PD_MAX_REGIONS)
        pd_seterr(&e, PARAMD_ETOOBIG,
                  "%u shared buffers are mapped on this connection, the most "
                  "allowed: free some (paramd_free)", PD_MAX_REGIONS);
    else if (bytes == 0 || bytes > PD_MAX_REGION_BYTES || bytes % 4)
        pd_seterr(&e, PARAMD_EINVAL,
                  "region %llu of %llu bytes: a shared buffer holds 4 to %llu "
                  "bytes, a multiple of 4",
                  (unsigned long long)id, (unsigned long long)bytes,
                  PD_MAX_REGION_BYTES);
    else if (seals < 0 || !(seals & F_SEAL_SHRINK))
        pd_seterr(&e, PARAMD_EPROTO,
                  "region %llu is not a memfd sealed against shrinking",
                  (unsigned long long)id);
    else if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < bytes)
        pd_seterr(&e, PARAMD_EPROTO, "region %llu is smaller than the %llu bytes "
                  "announced", (unsigned long long)id, (unsigned long long)bytes);
    else if (regions_room(sc) != 0)
        pd_seterr(&e, PARAMD_ENOMEM, "out of memory");
    else if ((base = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                          fd, 0)) == MAP_FAILED)
        pd_seterr(&e, PARAMD_ENOMEM, "cannot map region %llu of %llu bytes: %s",
                  (unsigned long long)id, (unsigned long long)bytes, strerror(errno));
    if (fd >= 0) close(fd);
    if (e.code) return reply_err(sc, h, &e);
    sc->regions[sc->nregions++] = (srv_region){id, base, bytes};
    __atomic_add_fetch(&s->regions, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->region_bytes, bytes, __ATOMIC_RELAXED);
    return send_ok(sc, h, NULL, 0, NULL, 0);
}

static int on_region_unmap(srv_conn *sc, const pd_hdr *h) {
    pd_err e = {0};
    int rc;
    if (read_fixed(sc, h, 8, &rc)) return rc;
    pd_rd r;
    uint64_t id;
    pd_rd_init(&r, sc->ctrl, 8);
    pd_get_u64(&r, &id);
    srv_region *g = region_find(sc, id);
    if (!g) {
        pd_seterr(&e, PARAMD_EINVAL, "no region %llu is mapped", (unsigned long long)id);
        return reply_err(sc, h, &e);
    }
    region_drop(sc, g);
    return send_ok(sc, h, NULL, 0, NULL, 0);
}

/* PUSH_REGION, PULL_REGION: the table's range and where its floats are.
 * 0 with *t, *off, *count, *v set; 1 answered or failed (return *rc). */
static int region_ref(srv_conn *sc, const pd_hdr *h, pd_shard **t, uint64_t *off,
                      uint64_t *count, float **v, int *rc) {
    pd_err e = {0};
    if (read_fixed(sc, h, PD_REGION_REF_PAYLOAD, rc)) return 1;
    pd_rd r;
    uint64_t id, at;
    pd_rd_init(&r, sc->ctrl, PD_REGION_REF_PAYLOAD);
    pd_get_u64(&r, off);
    pd_get_u64(&r, count);
    pd_get_u64(&r, &id);
    pd_get_u64(&r, &at);
    srv_region *g = region_find(sc, id);
    *t = table_get(sc->srv, h->table);
    if (!*t)
        pd_seterr(&e, PARAMD_ENOTABLE, "no table %u on this server", h->table);
    else if (pd_shard_check_range(*t, *off, *count, &e) != 0)
        ;
    else if (!g)
        pd_seterr(&e, PARAMD_EINVAL, "no region %llu is mapped", (unsigned long long)id);
    else if (at % 4 || at > g->bytes || *count > (g->bytes - at) / 4)
        pd_seterr(&e, PARAMD_ERANGE,
                  "%llu floats at byte %llu of region %llu pass its end (%llu bytes) "
                  "or are not aligned",
                  (unsigned long long)*count, (unsigned long long)at,
                  (unsigned long long)id, (unsigned long long)g->bytes);
    if (e.code) {
        *rc = reply_err(sc, h, &e);
        return 1;
    }
    *v = (float *)(void *)(g->base + at);
    return 0;
}

static int on_push_region(srv_conn *sc, const pd_hdr *h) {
    pd_err e = {0};
    pd_shard *t;
    uint64_t off, count;
    float *v;
    int rc;
    if (region_ref(sc, h, &t, &off, &count, &v, &rc)) return rc;
    if (sc->role != PD_ROLE_WORKER) {
        pd_seterr(&e, PARAMD_EWORKER, "only workers push");
        return reply_err(sc, h, &e);
    }
    if ((rc = push_begin(sc, &e)) == 0) {
        rc = pd_shard_push(t, sc->rank, h->clock, off, count, v, &e);
        push_end(sc);
    }
    if (rc) return reply_err(sc, h, &e);
    __atomic_add_fetch(&sc->srv->region_pushes, 1, __ATOMIC_RELAXED);
    return send_ok(sc, h, NULL, 0, NULL, 0);
}

/* A pull into a shared buffer: the values are copied under the shard's
 * read lock, on the apply threads. */
typedef struct region_emit {
    pd_pool *pool;
    float *dst;
    const float *src;
    int64_t applied;
} region_emit;

static void region_copy_part(void *arg, uint64_t lo, uint64_t hi) {
    region_emit *re = arg;
    memcpy(re->dst + lo, re->src + lo, (size_t)(hi - lo) * sizeof(float));
}

static void region_emit_fn(void *arg, const float *v, uint64_t count, int64_t applied) {
    region_emit *re = arg;
    re->src = v;
    re->applied = applied;
    pd_pool_for(re->pool, count, PD_APPLY_GRAIN, region_copy_part, re);
}

static int on_pull_region(srv_conn *sc, const pd_hdr *h) {
    pd_shard *t;
    uint64_t off, count;
    float *v;
    int rc;
    pd_err e = {0};
    if (region_ref(sc, h, &t, &off, &count, &v, &rc)) return rc;
    region_emit re = {sc->srv->pool, v, NULL, 0};
    rc = pd_shard_pull_emit(t, sc->rank, h->clock, off, count, region_emit_fn, &re, &e);
    if (rc) return reply_err(sc, h, &e);
    __atomic_add_fetch(&sc->srv->region_pulls, 1, __ATOMIC_RELAXED);
    pd_hdr rh = {0};
    rh.type = h->type | PD_REPLY;
    rh.id = h->id;
    rh.table = h->table;
    rh.clock = re.applied; /* as a PULL reply: the table's applied clock */
    return pd_send_frame(sc->io, &rh, NULL, 0, NULL, 0, NULL, 0, &sc->ioerr);
}

static int on_stats(srv_conn *sc, const pd_hdr *h) {
    pd_server *s = sc->srv;
    int rc = pd_conn_skip(sc->io, h->len, &sc->ioerr);
    if (rc) return rc;
    char text[8192];
    size_t off = 0;
    int ntcp = 0, nshm = 0;
    pthread_mutex_lock(&s->mu);
    for (srv_conn *c = s->conns; c; c = c->next)
        if (c->conn && c->rank >= 0) {
            if (c->shm_fd >= 0) nshm++;
            else ntcp++;
        }
    pthread_mutex_unlock(&s->mu);
    off += (size_t)snprintf(text, sizeof text,
                            "server %d of %d, %d workers, worker connections "
                            "tcp %d shm %d batches %llu batched %llu\n",
                            s->index, s->S, s->W, ntcp, nshm,
                            (unsigned long long)__atomic_load_n(&s->batches, __ATOMIC_RELAXED),
                            (unsigned long long)__atomic_load_n(&s->batched, __ATOMIC_RELAXED));
    for (uint32_t id = 1; id < PD_MAX_TABLES && off < sizeof text - 256; id++) {
        if (h->table && id != h->table) continue; /* STATS of one table */
        pd_sparse *sp = sparse_get(s, id);
        if (sp) {
            int n = pd_sparse_stats_line(sp, text + off, sizeof text - off);
            if (n < 0) continue;
            if ((size_t)n >= sizeof text - off) { /* truncated: stop here */
                off = strlen(text);
                break;
            }
            off += (size_t)n;
            continue;
        }
        pd_shard *t = table_get(s, id);
        if (!t) continue;
        pthread_mutex_lock(&t->mu);
        off += (size_t)snprintf(
            text + off, sizeof text - off,
            "table %u floats %llu bytes %llu pushes %llu pulls %llu "
            "bytes_in %llu bytes_out %llu rejected %llu dropped %llu "
            "clock %lld max_ahead %lld\n",
            id, (unsigned long long)t->len,
            (unsigned long long)(t->len * 4 *
                                 (1 + pd_rule_state_floats(&t->rule))),
            (unsigned long long)t->stats.pushes,
            (unsigned long long)t->stats.pulls,
            (unsigned long long)t->stats.bytes_in,
            (unsigned long long)t->stats.bytes_out,
            (unsigned long long)t->stats.rejected,
            (unsigned long long)t->stats.dropped, (long long)t->applied,
            (long long)t->stats.max_ahead);
        pthread_mutex_unlock(&t->mu);
    }
    if (off < sizeof text) {
        uint64_t par, busy;
        pd_pool_counts(s->pool, &par, &busy);
        off += (size_t)snprintf(text + off, sizeof text - off,
                                "apply threads %d updates in parallel %llu "
                                "inline because busy %llu\n",
                                pd_pool_threads(s->pool), (unsigned long long)par,
                                (unsigned long long)busy);
    }
    if (off < sizeof text) {
        off += (size_t)snprintf(
            text + off, sizeof text - off,
            "shared buffers mapped %llu bytes %llu pushes %llu pulls %llu\n",
            (unsigned long long)__atomic_load_n(&s->regions, __ATOMIC_RELAXED),
            (unsigned long long)__atomic_load_n(&s->region_bytes, __ATOMIC_RELAXED),
            (unsigned long long)__atomic_load_n(&s->region_pushes, __ATOMIC_RELAXED),
            (unsigned long long)__atomic_load_n(&s->region_pulls, __ATOMIC_RELAXED));
        if (off > sizeof text - 1) off = sizeof text - 1;
    }
    return send_ok(sc, h, text, off, NULL, 0);
}

/* ==== Sparse tables ======================================================
 * TABLE_CREATE of a sparse definition, SPARSE_PUSH and SPARSE_PULL; the
 * tables themselves are in sparse.c.  Same rules as above: a wrong request
 * is answered with an error and changes nothing. */

static pd_sparse *sparse_get(pd_server *s, uint32_t id) {
    if (id == 0 || id >= PD_MAX_TABLES) return NULL;
    pthread_mutex_lock(&s->mu);
    pd_sparse *t = s->sparse[id];
    pthread_mutex_unlock(&s->mu);
    return t;
}

static int on_sparse_create(srv_conn *sc, const pd_hdr *h,
                            const pd_table_def *d) {
    pd_server *s = sc->srv;
    pd_err e = {0};
    pthread_mutex_lock(&s->mu);
    pd_sparse *t = s->sparse[h->table];
    if ((t && !pd_sparse_same_def(t, d)) || s->tables[h->table]) {
        pthread_mutex_unlock(&s->mu);
        pd_seterr(&e, PARAMD_ESPEC,
                  "table %u exists on this server with another definition",
                  h->table);
        return reply_err(sc, h, &e);
    }
    if (!t) {
        t = pd_sparse_create(h->table, d, s->W, s->index, s->S, s->pool, &e);
        if (!t) {
            pthread_mutex_unlock(&s->mu);
            return reply_err(sc, h, &e);
        }
        for (int32_t w = 0; w < s->W; w++)
            if (s->gone[w]) pd_sparse_worker_gone(t, w);
            else if (s->jfrom[w] >= 0) pd_sparse_join_at(t, w, s->jfrom[w]);
        s->sparse[h->table] = t;
        pd_log(PD_LOG_DEBUG, "table %u: sparse, dim %llu", h->table,
               (unsigned long long)d->n);
    }
    pthread_mutex_unlock(&s->mu);
    return send_ok(sc, h, NULL, 0, NULL, 0);
}

/* SPARSE_PUSH: u64 nkeys, keys, nkeys*dim floats.  SPARSE_PULL: u64 nkeys,
 * keys; reply nkeys*dim floats.  The length must match nkeys exactly: a
 * count that lies, or rows of another dim, is refused before anything is
 * read into the table. */
static int on_sparse(srv_conn *sc, const pd_hdr *h) {
    pd_err e = {0};
    int push = h->type == PD_MSG_SPARSE_PUSH;
    uint8_t pre[PD_SPARSE_PREFIX];
    uint64_t nkeys = 0, left = h->len;
    int rc;
    if (h->len < PD_SPARSE_PREFIX) {
        pd_seterr(&e, PARAMD_EPROTO, "%s payload of %llu bytes has no key count",
                  pd_msg_name(h->type), (unsigned long long)h->len);
        goto reject;
    }
    if ((rc = pd_conn_read(sc->io, pre, sizeof pre, 0, &sc->ioerr))) return rc;
    left -= PD_SPARSE_PREFIX;
    for (int i = 7; i >= 0; i--) nkeys = (nkeys << 8) | pre[i];
    pd_sparse *t = sparse_get(sc->srv, h->table);
    uint64_t dim = t ? t->dim : 0;
    /* bytes per key: 8 (the key) + dim*4 (its row) for a push; nkeys is
     * bounded by the payload first, so nothing below overflows. */
    uint64_t per = push ? 8 + dim * 4 : 8;
    if (!t) {
        pd_seterr(&e, PARAMD_ENOTABLE, "no sparse table %u on this server",
                  h->table);
    } else if (nkeys > left / per) {
        pd_seterr(&e, PARAMD_EPROTO,
                  "%s of %llu keys for table %u (dim %llu): the frame has only "
                  "%llu payload bytes after the count",
                  pd_msg_name(h->type), (unsigned long long)nkeys, h->table,
                  (unsigned long long)dim, (unsigned long long)left);
    } else if (nkeys * per != left) {
        pd_seterr(&e, PARAMD_EPROTO,
                  "%s of %llu keys for table %u (dim %llu) needs %llu payload "
                  "bytes after the count, the frame has %llu",
                  pd_msg_name(h->type), (unsigned long long)nkeys, h->table,
                  (unsigned long long)dim, (unsigned long long)(nkeys * per),
                  (unsigned long long)left);
    } else if (push && sc->role != PD_ROLE_WORKER) {
        pd_seterr(&e, PARAMD_EWORKER, "only workers push");
    } else if (!push && nkeys > sc->srv->o.max_frame / 4 / dim) {
        pd_seterr(&e, PARAMD_ETOOBIG,
                  "pull of %llu rows of %llu floats exceeds the frame limit of "
                  "%llu bytes",
                  (unsigned long long)nkeys, (unsigned long long)dim,
                  (unsigned long long)sc->srv->o.max_frame);
    } else if (!push && nkeys * dim * 4 > sc->pull_room) {
        pd_seterr(&e, PARAMD_ETOOBIG,
                  "pull of %llu rows of %llu floats in a BATCH whose pulls "
                  "already ask for %llu of the %u bytes of values a batch may "
                  "return: send it alone",
                  (unsigned long long)nkeys, (unsigned long long)dim,
                  (unsigned long long)(PD_MAX_BATCH - sc->pull_room), PD_MAX_BATCH);
    } else if (ensure_buf(sc, (size_t)(left + (push ? 0 : nkeys * dim * 4))) != 0) {
        pd_seterr(&e, PARAMD_ENOMEM, "out of memory for a %llu-byte payload",
                  (unsigned long long)left);
    }
    if (e.code) goto reject;
    if (!push && sc->pull_room != UINT64_MAX) sc->pull_room -= nkeys * dim * 4;
    if ((rc = pd_conn_read(sc->io, sc->buf, (size_t)left, 0, &sc->ioerr))) return rc;
    /* Keys are little-endian u64 and floats little-endian IEEE-754, like
     * the host (wire.h); the buffer is malloc-aligned. */
    const uint64_t *keys = (const uint64_t *)(void *)sc->buf;
    float *rows = (float *)(void *)(sc->buf + nkeys * 8);
    if (push && (rc = push_begin(sc, &e)) == 0) {
        rc = pd_sparse_push(t, sc->rank, h->clock, keys, nkeys, rows, &e);
        push_end(sc);
    } else if (!push)
        rc = pd_sparse_pull(t, sc->rank, h->clock, keys, nkeys, rows, &e);
    if (rc) return reply_err(sc, h, &e);
    pd_hdr rh = *h; /* a pull's reply carries the applied clock, as PULL's */
    if (!push) {
        pthread_mutex_lock(&t->mu);
        rh.clock = t->def.consistency != PD_CONS_ASYNC ? t->applied : 0;
        pthread_mutex_unlock(&t->mu);
    }
    return send_ok(sc, &rh, push ? NULL : rows, push ? 0 : (size_t)(nkeys * dim * 4),
                   NULL, 0);
reject:
    if ((rc = pd_conn_skip(sc->io, left, &sc->ioerr))) return rc;
    return reply_err(sc, h, &e);
}

/* ==== Batches ============================================================
 * A BATCH carries whole request frames (docs/protocol.md, "Batches").  Its
 * payload is read in one read into the connection's own buffer, every
 * inner header is validated before any inner request runs (so a malformed
 * batch changes nothing), then each inner frame goes through the ordinary
 * handler with sc->io pointing at a memory connection over its payload
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
 * and at most an error text. */

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

/* Run one validated inner request through its handler (sc->io is the
 * memory connection over its payload).  As a handler: 0, or an error that
 * closes the connection. */
static int batch_inner(srv_conn *sc, const pd_hdr *h) {
    switch (h->type) {
    case PD_MSG_SET:
    case PD_MSG_PUSH: return on_write(sc, h);
    case PD_MSG_PULL: return on_pull(sc, h);
    case PD_MSG_SPARSE_PUSH:
    case PD_MSG_SPARSE_PULL: return on_sparse(sc, h);
    }
    return PARAMD_EINTERNAL; /* pd_batch_parse admits only the types above */
}

static int on_batch(srv_conn *sc, const pd_hdr *h) {
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
        rc = batch_inner(sc, &sc->items[i].h);
    }
    if (peeked) pd_conn_consume(sc->conn, len);
    sc->io = sc->conn;
    sc->pull_room = UINT64_MAX;
    if (rc) return rc; /* the replies could not be built: out of memory */
    __atomic_add_fetch(&s->batches, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->batched, n, __ATOMIC_RELAXED);
    pd_hdr rh = {0};
    rh.type = PD_MSG_BATCH | PD_REPLY;
    rh.id = h->id;
    return pd_send_frame(sc->conn, &rh, sc->bout.p, sc->bout.len, NULL, 0, NULL,
                         0, &sc->ioerr);
}

/* ==== Connection thread ================================================= */

static int conn_hello(srv_conn *sc) {
    pd_server *s = sc->srv;
    pd_err e = {0};
    pd_hdr h;
    pd_hello hello;
    int rc = pd_recv_hdr(sc->conn, &h, PD_MAX_CTRL_PAYLOAD, &e);
    if (rc == 0 && h.type != PD_MSG_HELLO)
        rc = pd_seterr(&e, PARAMD_EPROTO, "first frame is %s, not HELLO",
                       pd_msg_name(h.type));
    if (rc == 0) rc = pd_recv_payload(sc->conn, &h, sc->ctrl, &e);
    if (rc == 0) rc = pd_hello_decode(sc->ctrl, (size_t)h.len, &hello, &e);
    if (rc == 0 && hello.role == PD_ROLE_WORKER &&
        (hello.rank < 0 || hello.rank >= s->W))
        rc = pd_seterr(&e, PARAMD_EWORKER,
                       "worker rank %d is not in 0..%d of this cluster",
                       hello.rank, s->W - 1);
    if (rc == 0 && hello.role == PD_ROLE_SERVER)
        rc = pd_seterr(&e, PARAMD_EPROTO, "a server does not connect to a server");
    if (rc) {
        if (rc != PARAMD_ECLOSED) {
            pd_log(PD_LOG_WARN, "closing connection from %s: %s",
                   sc->conn->peer, e.msg);
            pd_send_error(sc->conn, &h, rc, e.msg);
        }
        return rc;
    }
    pthread_mutex_lock(&s->mu); /* read by STATS on other threads */
    sc->role = hello.role;
    sc->rank = hello.role == PD_ROLE_WORKER ? hello.rank : -1;
    pthread_mutex_unlock(&s->mu);
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u32(&b, (uint32_t)s->index);
    pd_put_u32(&b, (uint32_t)s->S);
    pd_put_u32(&b, (uint32_t)s->W);
    /* Where a worker on this host can reach the shared-memory transport
     * (empty: not offered, or already on it). */
    pd_put_str(&b, sc->shm_fd >= 0 ? "" : s->shm_name);
    pd_put_u32(&b, PD_FEAT_REGIONS); /* features (optional for readers) */
    rc = b.oom ? PARAMD_ENOMEM : send_ok(sc, &h, b.p, b.len, NULL, 0);
    pd_buf_free(&b);
    return rc;
}

static void conn_bind_rank(srv_conn *sc);

static void *conn_main(void *arg) {
    srv_conn *sc = arg;
    pd_server *s = sc->srv;
    int rc = 0;
    if (sc->shm_fd >= 0) {
        pd_err e = {0};
        pd_conn *c = pd_shm_server_handshake(sc->shm_fd, 5000, &e);
        if (c && s->o.fault) c = pd_fault_wrap(c, s->o.fault, &e); /* tests */
        pthread_mutex_lock(&s->mu);
        sc->conn = c; /* visible to the stop path from here on */
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (!c) pd_log(PD_LOG_WARN, "shared-memory connection refused: %s", e.msg);
        if (c && stopping) pd_conn_shutdown(c);
        if (!c) rc = PARAMD_EPROTO;
    }
    if (rc == 0) {
        sc->io = sc->conn;
        pd_conn_set_rcvtimeo(sc->conn, PD_FRAME_STALL_MS);
        rc = conn_hello(sc);
    }
    if (rc == 0) conn_bind_rank(sc);
    while (rc == 0) {
        pd_err e = {0};
        pd_hdr h;
        rc = pd_recv_hdr(sc->conn, &h, s->o.max_frame, &e);
        if (rc == PARAMD_ECLOSED) break;
        if (rc) {
            pthread_mutex_lock(&s->mu);
            int stopping = s->stopping;
            pthread_mutex_unlock(&s->mu);
            if (!stopping) {
                pd_log(PD_LOG_WARN, "closing connection from %s (rank %d): %s",
                       sc->conn->peer, sc->rank, e.msg);
                if (rc != PARAMD_EIO) pd_send_error(sc->conn, &h, rc, e.msg);
            }
            break;
        }
        switch (h.type) {
        case PD_MSG_TABLE_CREATE: rc = on_table_create(sc, &h); break;
        case PD_MSG_SET:
        case PD_MSG_PUSH: rc = on_write(sc, &h); break;
        case PD_MSG_PULL: rc = on_pull(sc, &h); break;
        case PD_MSG_STATS: rc = on_stats(sc, &h); break;
        case PD_MSG_SPARSE_PUSH:
        case PD_MSG_SPARSE_PULL: rc = on_sparse(sc, &h); break;
        case PD_MSG_BATCH: rc = on_batch(sc, &h); break;
        case PD_MSG_REGION_MAP: rc = on_region_map(sc, &h); break;
        case PD_MSG_REGION_UNMAP: rc = on_region_unmap(sc, &h); break;
        case PD_MSG_PUSH_REGION: rc = on_push_region(sc, &h); break;
        case PD_MSG_PULL_REGION: rc = on_pull_region(sc, &h); break;
        default:
            pd_seterr(&e, PARAMD_EPROTO, "unexpected %s on a server connection",
                      pd_msg_name(h.type));
            pd_log(PD_LOG_WARN, "closing connection from %s: %s",
                   sc->conn->peer, e.msg);
            pd_send_error(sc->conn, &h, e.code, e.msg);
            rc = e.code;
        }
        if (rc && rc != PARAMD_ECLOSED) {
            pthread_mutex_lock(&s->mu);
            int stopping = s->stopping;
            pthread_mutex_unlock(&s->mu);
            if (!stopping && rc != PARAMD_EPROTO)
                pd_log(PD_LOG_WARN, "connection from %s (rank %d) ended: %s",
                       sc->conn->peer, sc->rank,
                       sc->ioerr.code ? sc->ioerr.msg : paramd_strerror(rc));
        }
    }
    /* unlink and free */
    pthread_mutex_lock(&s->mu);
    for (srv_conn **pp = &s->conns; *pp; pp = &(*pp)->next)
        if (*pp == sc) {
            *pp = sc->next;
            break;
        }
    while (sc->nregions) region_drop(sc, &sc->regions[0]);
    pd_free(sc->regions);
    pd_conn_destroy(sc->conn);
    pd_free(sc->buf);
    pd_free(sc->bin);
    pd_free(sc->items);
    pd_buf_free(&sc->bout);
    pd_free(sc);
    if (--s->nthreads == 0) pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ==== Membership: workers gone and joined ===============================
 * The coordinator watcher calls these (WORKER_GONE, WORKER_JOIN); the
 * tables do the clock arithmetic (shard.h, "Joins").  Each rank has an
 * incarnation, wgen[rank], bumped when it is gone and when it joins: a
 * connection remembers the incarnation it was opened in (conn_bind_rank)
 * and may push only while it is current, and a bump waits until the
 * pushes already inside a table are done (inflight).  So no push of a
 * dead worker's connection still in a socket buffer can ever count for
 * the worker that takes its rank.  Called with nothing locked. */

static void conn_bind_rank(srv_conn *sc) {
    if (sc->rank < 0) return;
    pthread_mutex_lock(&sc->srv->mu);
    sc->gen = sc->srv->wgen[sc->rank];
    pthread_mutex_unlock(&sc->srv->mu);
}

/* 0 and the push may go into a table (then push_end), or PARAMD_EWORKER. */
static int push_begin(srv_conn *sc, pd_err *e) {
    pd_server *s = sc->srv;
    if (sc->rank < 0) return 0; /* the table refuses it */
    pthread_mutex_lock(&s->mu);
    int ok = sc->gen == s->wgen[sc->rank];
    if (ok) s->inflight[sc->rank]++;
    pthread_mutex_unlock(&s->mu);
    if (ok) return 0;
    return pd_seterr(e, PARAMD_EWORKER,
                     "worker %d was removed from the cluster (or its rank was "
                     "given to a new worker): this connection may not push",
                     sc->rank);
}

static void push_end(srv_conn *sc) {
    pd_server *s = sc->srv;
    if (sc->rank < 0) return;
    pthread_mutex_lock(&s->mu);
    if (--s->inflight[sc->rank] == 0) pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* With s->mu held: a new incarnation of rank w; returns once no push of an
 * older one is inside a table.  Pushes never wait inside a table, so this
 * is short.  Connections of the old incarnation are shut down (a stopped
 * worker that resumes gets errors, not silence). */
static void new_incarnation(pd_server *s, uint32_t w) {
    s->wgen[w]++;
    for (srv_conn *sc = s->conns; sc; sc = sc->next)
        if (sc->rank == (int32_t)w && sc->gen != s->wgen[w])
            pd_conn_shutdown(sc->conn);
    while (s->inflight[w] > 0) pthread_cond_wait(&s->cv, &s->mu);
}

static void on_worker_gone(pd_server *s, const pd_hdr *h, const uint8_t *buf) {
    pd_rd r;
    uint32_t w, clean = 0;
    pd_rd_init(&r, buf, (size_t)h->len);
    pd_get_u32(&r, &w);
    pd_get_u32(&r, &clean);
    if (!pd_rd_done(&r) || w >= (uint32_t)s->W) {
        pd_log(PD_LOG_WARN, "ignoring a malformed WORKER_GONE");
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->gone[w] = 1;
    new_incarnation(s, w);
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
        if (s->sparse[id]) pd_sparse_worker_gone(s->sparse[id], (int32_t)w);
        pd_shard *t = s->tables[id];
        if (!t) continue;
        pthread_mutex_lock(&t->mu);
        int64_t at = t->applied;
        pthread_mutex_unlock(&t->mu);
        pd_shard_worker_gone(t, (int32_t)w);
        if (t->def.consistency != PD_CONS_ASYNC)
            pd_log(clean ? PD_LOG_DEBUG : PD_LOG_WARN, "worker %u removed: table %u goes on at "
                   "clock %lld without it", w, id, (long long)at);
    }
    pthread_mutex_unlock(&s->mu);
}

/* WORKER_JOIN: u32 rank, u32 phase, i64 clock.  PREPARE is answered with
 * this server's frontier (i64: the largest of its tables', 0 if none);
 * COMMIT (clock J) is not answered. */
static void on_worker_join(pd_server *s, const pd_hdr *h, const uint8_t *buf) {
    pd_rd r;
    uint32_t w, phase;
    uint64_t J;
    pd_rd_init(&r, buf, (size_t)h->len);
    pd_get_u32(&r, &w);
    pd_get_u32(&r, &phase);
    pd_get_u64(&r, &J);
    if (!pd_rd_done(&r) || w >= (uint32_t)s->W ||
        (phase != PD_JOIN_PREPARE && phase != PD_JOIN_COMMIT) ||
        J > (uint64_t)INT64_MAX) {
        pd_log(PD_LOG_WARN, "ignoring a malformed WORKER_JOIN");
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (phase == PD_JOIN_PREPARE) {
        int64_t F = 0;
        s->gone[w] = 0;
        new_incarnation(s, w);
        for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
            int64_t f = s->tables[id] ? pd_shard_join_begin(s->tables[id], (int32_t)w)
                        : s->sparse[id] ? pd_sparse_join_begin(s->sparse[id], (int32_t)w)
                                        : -1;
            if (f > F) F = f;
        }
        s->jfrom[w] = F;
        pthread_mutex_unlock(&s->mu);
        uint8_t p[8];
        for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)F >> (8 * i));
        pd_hdr rh = *h;
        rh.type = PD_MSG_WORKER_JOIN | PD_REPLY;
        rh.len = 0;
        /* Only this thread writes to the coordinator after start-up. */
        pd_send_frame(s->coord, &rh, p, sizeof p, NULL, 0, NULL, 0, NULL);
        pd_log(PD_LOG_DEBUG, "worker %u joining: this server's frontier is clock %lld",
               w, (long long)F);
        return;
    }
    s->jfrom[w] = (int64_t)J;
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
        const pd_table_def *d = s->tables[id]   ? &s->tables[id]->def
                                : s->sparse[id] ? &s->sparse[id]->def
                                                : NULL;
        if (!d) continue;
        if (s->tables[id]) pd_shard_join_at(s->tables[id], (int32_t)w, (int64_t)J);
        else pd_sparse_join_at(s->sparse[id], (int32_t)w, (int64_t)J);
        if (!d->elastic)
            pd_log(PD_LOG_INFO, "worker %u joined: table %u does not take it "
                   "(elastic=no)", w, id);
        else if (d->consistency != PD_CONS_ASYNC)
            pd_log(PD_LOG_INFO, "worker %u joined: table %u counts it from "
                   "clock %lld", w, id, (long long)J);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ==== Coordinator watcher ============================================== */

static void *coord_main(void *arg) {
    pd_server *s = arg;
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    for (;;) {
        pd_err e = {0};
        pd_hdr h;
        int rc = pd_recv_hdr(s->coord, &h, PD_MAX_CTRL_PAYLOAD, &e);
        if (rc == 0 && buf) rc = pd_recv_payload(s->coord, &h, buf, &e);
        if (rc == 0 && h.type == PD_MSG_SHUTDOWN) {
            pd_log(PD_LOG_DEBUG, "coordinator says shutdown");
            break;
        }
        if (rc == 0 && h.type == PD_MSG_WORKER_GONE) {
            on_worker_gone(s, &h, buf);
            continue;
        }
        if (rc == 0 && h.type == PD_MSG_WORKER_JOIN) {
            on_worker_join(s, &h, buf);
            continue;
        }
        if (rc) {
            pthread_mutex_lock(&s->mu);
            int stopping = s->stopping;
            if (!stopping) s->lost_coordinator = 1;
            pthread_mutex_unlock(&s->mu);
            if (!stopping)
                pd_log(PD_LOG_ERROR, "lost the coordinator: %s", e.msg);
            break;
        }
    }
    pd_free(buf);
    pd_server_stop(s);
    return NULL;
}

/* ==== Public ============================================================ */

pd_server *pd_server_start(const pd_server_opts *o, pd_err *e) {
    pd_server *s = pd_calloc(1, sizeof *s);
    if (!s) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory");
        return NULL;
    }
    s->o = *o;
    if (!s->o.listen) s->o.listen = "127.0.0.1:0";
    if (!s->o.max_frame) s->o.max_frame = PD_MAX_FRAME_DEFAULT;
    if (!s->o.timeout_ms) s->o.timeout_ms = 30000;
    s->lfd = -1;
    s->shm_lfd = -1;
    if (s->o.apply_threads > 1) {
        s->pool = pd_pool_create(s->o.apply_threads);
        if (!s->pool)
            pd_log(PD_LOG_WARN, "cannot start %d apply threads; updates run on "
                   "the connection threads alone", s->o.apply_threads);
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    char host[PD_MAX_ADDR + 1];
    uint16_t port;
    if (pd_parse_hostport(s->o.listen, host, sizeof host, &port) != 0) {
        pd_seterr(e, PARAMD_EINVAL, "--listen '%s' is not HOST:PORT",
                  s->o.listen);
        goto fail;
    }
    if (pd_tcp_listen(host, port, &s->lfd, s->bound, sizeof s->bound, e))
        goto fail;
    if (!s->o.no_shm) {
        pd_err se = {0};
        if (pd_shm_listen(&s->shm_lfd, s->shm_name, sizeof s->shm_name, &se) != 0)
            pd_log(PD_LOG_WARN, "no shared-memory transport (%s); workers on "
                   "this host will use TCP", se.msg);
    }
    s->coord = pd_tcp_connect(s->o.coordinator, s->o.timeout_ms, e);
    if (!s->coord) goto fail;

    uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];
    pd_hdr h = {0}, rh;
    pd_buf b;
    pd_buf_init(&b);
    pd_hello hello = {PD_ROLE_SERVER, -1};
    pd_hello_encode(&b, &hello);
    h.type = PD_MSG_HELLO;
    h.id = 1;
    int rc = pd_rpc(s->coord, &h, b.p, b.len, &rh, buf, e);
    pd_buf_free(&b);
    if (rc) goto fail;
    pd_buf_init(&b);
    pd_put_str(&b, s->o.advertise ? s->o.advertise : s->bound);
    h = (pd_hdr){0};
    h.type = PD_MSG_REG_SERVER;
    h.id = 2;
    rc = pd_rpc(s->coord, &h, b.p, b.len, &rh, buf, e);
    pd_buf_free(&b);
    if (rc) goto fail;
    pd_rd r;
    uint32_t idx, S, W, M;
    pd_rd_init(&r, buf, (size_t)rh.len);
    pd_get_u32(&r, &idx);
    pd_get_u32(&r, &S);
    pd_get_u32(&r, &W);
    pd_get_u32(&r, &M);
    if (!pd_rd_done(&r) || S == 0 || idx >= S || W == 0 || M < W ||
        M > PD_MAX_WORKERS) {
        pd_seterr(e, PARAMD_EPROTO, "malformed REG_SERVER reply");
        goto fail;
    }
    s->index = (int32_t)idx;
    s->S = (int32_t)S;
    s->W = (int32_t)M; /* worker slots: ranks 0..M-1 */
    s->gone = pd_calloc(M, 1);
    s->jfrom = pd_malloc(M * sizeof *s->jfrom);
    s->wgen = pd_calloc(M, sizeof *s->wgen);
    s->inflight = pd_calloc(M, sizeof *s->inflight);
    if (!s->gone || !s->jfrom || !s->wgen || !s->inflight) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory");
        goto fail;
    }
    /* Slots beyond the W workers the cluster starts with are vacant until
     * a worker joins them: clocks do not wait for them. */
    for (uint32_t w = 0; w < M; w++) s->gone[w] = w >= W, s->jfrom[w] = -1;
    return s;
fail:
    pd_server_free(s);
    return NULL;
}

/* Start a connection thread for c (TCP) or for the accepted shared-memory
 * socket shm_fd (the thread does the handshake). */
static void start_conn(pd_server *s, pd_conn *c, int shm_fd) {
    srv_conn *sc = pd_calloc(1, sizeof *sc);
    if (!sc) {
        pd_conn_destroy(c);
        if (shm_fd >= 0) close(shm_fd);
        return;
    }
    sc->conn = c;
    sc->shm_fd = shm_fd;
    sc->srv = s;
    sc->rank = -1;
    sc->pull_room = UINT64_MAX;
    pd_buf_init(&sc->bout);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&s->mu);
    sc->next = s->conns;
    s->conns = sc;
    s->nthreads++;
    pthread_t tid;
    if (pthread_create(&tid, &attr, conn_main, sc) != 0) {
        s->conns = sc->next;
        s->nthreads--;
        pd_conn_destroy(c);
        if (shm_fd >= 0) close(shm_fd);
        pd_free(sc);
        pd_log(PD_LOG_WARN, "cannot start a connection thread");
    }
    pthread_mutex_unlock(&s->mu);
    pthread_attr_destroy(&attr);
}

static int is_stopping(pd_server *s) {
    pthread_mutex_lock(&s->mu);
    int stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stopping;
}

/* The shared-memory acceptor: same as the TCP loop of pd_server_run, for
 * the abstract Unix socket. */
static void *shm_accept_main(void *arg) {
    pd_server *s = arg;
    for (;;) {
        int fd = pd_shm_accept(s->shm_lfd);
        if (is_stopping(s)) {
            if (fd >= 0) close(fd);
            break;
        }
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
                pd_log(PD_LOG_WARN, "accept (shm): %s", strerror(errno));
            continue;
        }
        start_conn(s, NULL, fd);
    }
    return NULL;
}

int pd_server_run(pd_server *s) {
    if (pthread_create(&s->coord_thread, NULL, coord_main, s) != 0) {
        pd_log(PD_LOG_ERROR, "cannot start a thread");
        return PARAMD_ENOMEM;
    }
    s->coord_thread_started = 1;
    if (s->shm_lfd >= 0) {
        if (pthread_create(&s->shm_thread, NULL, shm_accept_main, s) != 0)
            pd_log(PD_LOG_WARN, "cannot start the shared-memory acceptor; "
                   "workers will use TCP");
        else
            s->shm_thread_started = 1;
    }
    for (;;) {
        pd_conn *c = pd_tcp_accept(s->lfd);
        if (is_stopping(s)) {
            pd_conn_destroy(c);
            break;
        }
        if (!c) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
                pd_log(PD_LOG_WARN, "accept: %s", strerror(errno));
            continue;
        }
        if (c && s->o.fault) c = pd_fault_wrap(c, s->o.fault, NULL); /* tests */
        if (c) start_conn(s, c, -1);
    }
    if (s->shm_thread_started) {
        pthread_join(s->shm_thread, NULL);
        s->shm_thread_started = 0;
    }
    /* Stopping: wake every connection thread and wait for them. */
    pthread_mutex_lock(&s->mu);
    for (srv_conn *sc = s->conns; sc; sc = sc->next) pd_conn_shutdown(sc->conn);
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++)
        if (s->tables[id]) pd_shard_stop(s->tables[id]);
        else if (s->sparse[id]) pd_sparse_stop(s->sparse[id]);
    while (s->nthreads > 0) pthread_cond_wait(&s->cv, &s->mu);
    int lost = s->lost_coordinator;
    pthread_mutex_unlock(&s->mu);
    pd_conn_shutdown(s->coord);
    pthread_join(s->coord_thread, NULL);
    s->coord_thread_started = 0;
    return lost ? PARAMD_ECLOSED : 0;
}

void pd_server_stop(pd_server *s) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mu);
    if (s->lfd >= 0) shutdown(s->lfd, SHUT_RDWR); /* wakes accept() */
    if (s->shm_lfd >= 0) shutdown(s->shm_lfd, SHUT_RDWR);
}

void pd_server_free(pd_server *s) {
    if (!s) return;
    if (s->coord_thread_started) {
        pd_conn_shutdown(s->coord);
        pthread_join(s->coord_thread, NULL);
    }
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++) {
        pd_shard_destroy(s->tables[id]);
        pd_sparse_destroy(s->sparse[id]);
    }
    pd_pool_destroy(s->pool); /* no connection thread is left to use it */
    pd_conn_destroy(s->coord);
    pd_free(s->gone);
    pd_free(s->jfrom);
    pd_free(s->wgen);
    pd_free(s->inflight);
    if (s->lfd >= 0) close(s->lfd);
    if (s->shm_lfd >= 0) close(s->shm_lfd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pd_free(s);
}

int pd_server_index(const pd_server *s) { return s->index; }
const char *pd_server_address(const pd_server *s) { return s->bound; }
