/*
 * regions.c - a worker's shared buffers mapped into this server
 * (paramd_alloc; docs/transports.md, docs/protocol.md "Shared buffers").
 *
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
 * the connection (connection thread only) and go with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/server_impl.h"

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

int srv_on_region_map(srv_conn *sc, const pd_hdr *h) {
    pd_server *s = sc->srv;
    pd_err e = {0};
    int rc;
    /* The descriptor was passed before the frame, so it is there now.
     * Take it first, whatever the frame says, so that descriptors and
     * frames stay paired for the next REGION_MAP. */
    uint64_t tag = 0;
    int fd = pd_conn_recv_fd(sc->io, &tag);
    int fd_errno = errno;
    if (srv_read_fixed(sc, h, PD_REGION_MAP_PAYLOAD, &rc)) {
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
    if (e.code) return srv_reply_err(sc, h, &e);
    sc->regions[sc->nregions++] = (srv_region){id, base, bytes};
    __atomic_add_fetch(&s->regions, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->region_bytes, bytes, __ATOMIC_RELAXED);
    return srv_send_ok(sc, h, NULL, 0, NULL, 0);
}

int srv_on_region_unmap(srv_conn *sc, const pd_hdr *h) {
    pd_err e = {0};
    int rc;
    if (srv_read_fixed(sc, h, 8, &rc)) return rc;
    pd_rd r;
    uint64_t id;
    pd_rd_init(&r, sc->ctrl, 8);
    pd_get_u64(&r, &id);
    srv_region *g = region_find(sc, id);
    if (!g) {
        pd_seterr(&e, PARAMD_EINVAL, "no region %llu is mapped", (unsigned long long)id);
        return srv_reply_err(sc, h, &e);
    }
    region_drop(sc, g);
    return srv_send_ok(sc, h, NULL, 0, NULL, 0);
}

/* PUSH_REGION, PULL_REGION: the table's range and where its floats are.
 * 0 with *t and rq's range set and *v pointing into the region; 1
 * answered or failed (return *rc). */
static int region_ref(srv_conn *sc, const pd_hdr *h, pd_table **t, pd_table_req *rq,
                      float **v, int *rc) {
    pd_err e = {0};
    if (srv_read_fixed(sc, h, PD_REGION_REF_PAYLOAD, rc)) return 1;
    const uint8_t *p = sc->ctrl;
    uint64_t id = pd_le64_get(p + 16), at = pd_le64_get(p + 24);
    rq->worker = sc->rank;
    rq->clock = h->clock;
    rq->wait_ms = h->type == PD_MSG_PULL_REGION ? srv_pull_deadline(sc, h, 0) : 0;
    rq->off = pd_le64_get(p);
    rq->count = pd_le64_get(p + 8);
    uint64_t count = rq->count;
    srv_region *g = region_find(sc, id);
    *t = srv_table(sc->srv, h->table);
    if (!*t)
        pd_seterr(&e, PARAMD_ENOTABLE, "no table %u on this server", h->table);
    else if (pd_table_check(*t, rq, &e) != 0)
        ;
    else if (!g)
        pd_seterr(&e, PARAMD_EINVAL, "no region %llu is mapped", (unsigned long long)id);
    else if (at % 4 || at > g->bytes || count > (g->bytes - at) / 4)
        pd_seterr(&e, PARAMD_ERANGE,
                  "%llu floats at byte %llu of region %llu pass its end (%llu bytes) "
                  "or are not aligned",
                  (unsigned long long)count, (unsigned long long)at,
                  (unsigned long long)id, (unsigned long long)g->bytes);
    if (e.code) {
        *rc = srv_reply_err(sc, h, &e);
        return 1;
    }
    *v = (float *)(void *)(g->base + at);
    return 0;
}

int srv_on_push_region(srv_conn *sc, const pd_hdr *h) {
    pd_err e = {0};
    pd_table *t;
    pd_table_req rq = {0};
    float *v;
    int rc;
    if (region_ref(sc, h, &t, &rq, &v, &rc)) return rc;
    if (sc->role != PD_ROLE_WORKER) {
        pd_seterr(&e, PARAMD_EWORKER, "only workers push");
        return srv_reply_err(sc, h, &e);
    }
    rq.in = v;
    if (srv_mut_begin(sc, h, t)) /* sent again after a failover: applied already */
        return srv_send_ok(sc, h, NULL, 0, NULL, 0);
    rc = srv_push(sc, t, &rq, &e);
    uint8_t off[8]; /* forwarded as the PUSH it stands for */
    pd_le64_put(off, rq.off);
    srv_mut_end(sc, h, rc, PD_MSG_PUSH, off, sizeof off, v, (size_t)rq.count * 4);
    if (rc) return srv_reply_err(sc, h, &e);
    __atomic_add_fetch(&sc->srv->region_pushes, 1, __ATOMIC_RELAXED);
    return srv_send_ok(sc, h, NULL, 0, NULL, 0);
}

/* A pull into a shared buffer: the values are copied under the table's
 * values read lock, on the apply threads. */
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

int srv_on_pull_region(srv_conn *sc, const pd_hdr *h) {
    pd_table *t;
    pd_table_req rq = {0};
    float *v;
    int rc;
    pd_err e = {0};
    if (region_ref(sc, h, &t, &rq, &v, &rc)) return rc;
    region_emit re = {sc->srv->pool, v, NULL, 0};
    rc = pd_table_pull(t, &rq, region_emit_fn, &re, &e);
    srv_pull_spent(sc, h, rc);
    if (rc) return srv_reply_err(sc, h, &e);
    __atomic_add_fetch(&sc->srv->region_pulls, 1, __ATOMIC_RELAXED);
    pd_hdr rh = {0};
    rh.type = h->type | PD_REPLY;
    rh.id = h->id;
    rh.table = h->table;
    rh.clock = re.applied; /* as a PULL reply: the table's applied clock */
    return pd_send_frame(sc->io, &rh, NULL, 0, NULL, 0, NULL, 0, &sc->ioerr);
}

void srv_regions_drop_all(srv_conn *sc) {
    while (sc->nregions) region_drop(sc, &sc->regions[0]);
    pd_free(sc->regions);
    sc->regions = NULL;
    sc->regions_cap = 0;
}
