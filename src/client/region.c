/*
 * region.c - shared buffers: paramd_alloc, paramd_free, and the lookup a
 * push or pull makes to see whether its buffer is one.
 *
 * paramd_alloc gives the program memory that same-host servers can map:
 * a memfd, sealed against shrinking and growing, mapped here and passed to
 * every server on a shared-memory link that offers it (PD_FEAT_REGIONS),
 * beside the rings (pd_conn_send_fd), with a REGION_MAP frame.  A push
 * from it or a pull into it then sends the server a reference (region id
 * and offset) instead of the floats: the server's rule reads the gradient
 * where the program wrote it, and a pull's values are copied by the
 * server straight into it (docs/transports.md).  Everything else - TCP
 * links, servers on other hosts, a server that refused the mapping, parts
 * under PD_REGION_MIN_BYTES - moves the floats as usual, so the memory
 * works with every call and every cluster.  Mapping and unmapping are
 * rare and hold map_mu throughout (one buffer's descriptors and frames at
 * a time); reg_mu guards only the list, so a push or pull that looks its
 * buffer up never waits behind a mapping's round trips. */

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "client/client_impl.h"
#include "common/common.h"
#include "net/conn.h"
#include "paramd.h"
#include "wire/wire.h"

/* The shared buffer holding [p, p+n), copied into *g (its `on` stays
 * valid while the buffer is allocated, which the caller's request
 * requires): 1, or 0 if p is not in one. */
int region_lookup(paramd_client *c, const void *p, uint64_t n, region *g) {
    if (!__atomic_load_n(&c->nregions, __ATOMIC_RELAXED)) return 0; /* a peek */
    uintptr_t a = (uintptr_t)p;
    int found = 0;
    pthread_mutex_lock(&c->reg_mu);
    for (region *x = c->regions; x && !found; x = x->next) {
        uintptr_t b = (uintptr_t)x->base;
        if (a >= b && a - b <= x->bytes && n <= x->bytes - (a - b)) {
            *g = *x;
            found = 1;
        }
    }
    pthread_mutex_unlock(&c->reg_mu);
    return found;
}

/* One small request to link l, waited for: 0 or its error (detail in the
 * client's last error). */
static int link_call(pd_link *l, uint16_t type, const void *payload, size_t n) {
    paramd_request r;
    req_init(&r, l->c);
    link_send(l, &r, type, 0, 0, 0, payload, n, NULL, 0, NULL, 0);
    req_done(&r, 0, "");
    return req_finish(&r);
}

void *paramd_alloc(paramd_client *c, size_t bytes) {
    if (!c) return NULL;
    if (bytes == 0 || bytes > PD_MAX_REGION_BYTES) {
        cl_err(c, PARAMD_EINVAL, "paramd_alloc of %zu bytes: ask for 1 to %llu", bytes,
               PD_MAX_REGION_BYTES);
        return NULL;
    }
    size_t len = 0;
    void *p = NULL;
    int fd = pd_shm_buffer(bytes, &p, &len);
    region *g = pd_calloc(1, sizeof *g);
    uint8_t *on = pd_calloc((size_t)c->S, 1);
    if (!g || !on || !p) {
        int err = errno;
        if (p) munmap(p, len);
        pd_close_fd(fd);
        pd_free(g);
        pd_free(on);
        cl_err(c, PARAMD_ENOMEM, "paramd_alloc: cannot map %zu bytes: %s", bytes,
               strerror(p ? ENOMEM : err));
        return NULL;
    }
    g->base = p;
    g->bytes = len;
    g->on = on;
    g->fd = fd;
    pthread_mutex_lock(&c->map_mu);
    g->id = ++c->next_region;
    for (int32_t k = 0; fd >= 0 && k < c->S; k++) {
        pd_link *l = &c->links[k];
        if (!l->regions_ok || __atomic_load_n(&l->dead, __ATOMIC_ACQUIRE)) continue;
        uint8_t pl[PD_REGION_MAP_PAYLOAD];
        put_le64(pl, g->id);
        put_le64(pl + 8, len);
        /* The descriptor first: the server takes it when the frame comes.
         * A server that refuses just gets the floats, as over TCP. */
        if (pd_conn_send_fd(l->conn, fd, g->id) == 0 &&
            link_call(l, PD_MSG_REGION_MAP, pl, sizeof pl) == 0)
            __atomic_store_n(&on[k], 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_lock(&c->reg_mu);
    g->next = c->regions;
    c->regions = g;
    __atomic_add_fetch(&c->nregions, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&c->reg_mu);
    pthread_mutex_unlock(&c->map_mu);
    return p; /* (the memfd is kept for a replacement server: region_remap) */
}

void region_remap(paramd_client *c, int32_t k) {
    pd_link *l = &c->links[k];
    pthread_mutex_lock(&c->map_mu); /* a paramd_free waits: every g stays */
    size_t n = 0;
    pthread_mutex_lock(&c->reg_mu);
    for (region *g = c->regions; g; g = g->next) n++;
    region **all = pd_malloc((n ? n : 1) * sizeof *all);
    n = 0;
    for (region *g = c->regions; all && g; g = g->next) all[n++] = g;
    pthread_mutex_unlock(&c->reg_mu);
    for (size_t i = 0; all && i < n && l->regions_ok; i++) {
        region *g = all[i];
        uint8_t pl[PD_REGION_MAP_PAYLOAD];
        put_le64(pl, g->id);
        put_le64(pl + 8, g->bytes);
        if (g->fd >= 0 && pd_conn_send_fd(l->conn, g->fd, g->id) == 0 &&
            link_call(l, PD_MSG_REGION_MAP, pl, sizeof pl) == 0)
            __atomic_store_n(&g->on[k], 1, __ATOMIC_RELAXED);
    }
    pd_free(all);
    pthread_mutex_unlock(&c->map_mu);
}

int paramd_free(paramd_client *c, void *p) {
    if (!c || !p) return 0;
    pthread_mutex_lock(&c->reg_mu);
    region **pp = &c->regions;
    while (*pp && (*pp)->base != p) pp = &(*pp)->next;
    region *g = *pp;
    if (!g) {
        pthread_mutex_unlock(&c->reg_mu);
        return cl_err(c, PARAMD_EINVAL,
                      "paramd_free of %p, which paramd_alloc did not return "
                      "(or was freed already)", p);
    }
    *pp = g->next;
    __atomic_sub_fetch(&c->nregions, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&c->reg_mu);
    int rc = 0;
    pthread_mutex_lock(&c->map_mu);
    for (int32_t k = 0; k < c->S; k++) {
        if (!__atomic_load_n(&g->on[k], __ATOMIC_RELAXED)) continue;
        uint8_t pl[8];
        put_le64(pl, g->id);
        int e = link_call(&c->links[k], PD_MSG_REGION_UNMAP, pl, sizeof pl);
        /* a link that broke has dropped its mappings with it */
        if (e && e != PARAMD_ECLOSED && e != PARAMD_EIO && !rc) rc = e;
    }
    pthread_mutex_unlock(&c->map_mu);
    munmap(g->base, g->bytes);
    pd_close_fd(g->fd);
    pd_free(g->on);
    pd_free(g);
    return rc;
}
