/*
 * manifest.c - the manifest of a checkpoint (see manifest.h).
 */
#include "durable/manifest.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void put_str(pd_ckw *w, const char *s) {
    size_t n = strlen(s);
    uint8_t b[2];
    pd_le16_put(b, (uint16_t)n);
    pd_ckw_bytes(w, b, 2);
    pd_ckw_bytes(w, s, n);
}

int pd_manifest_write(const char *dir, const pd_manifest *m, uint32_t *crc, pd_err *e) {
    pd_ckw w;
    int rc = pd_ckw_open(&w, dir, "MANIFEST", m->delta ? PD_CK_MANIFEST_DELTA : PD_CK_MANIFEST,
                         e);
    if (rc) return rc;
    pd_ckw_u64(&w, m->seq);
    pd_ckw_u64(&w, (uint64_t)m->clock);
    pd_ckw_u32(&w, m->S);
    pd_ckw_u32(&w, m->W);
    pd_ckw_u32(&w, m->M);
    pd_ckw_u32(&w, m->nfiles);
    for (uint32_t i = 0; i < m->nfiles; i++) {
        put_str(&w, m->files[i].name);
        pd_ckw_u64(&w, m->files[i].bytes);
        pd_ckw_u32(&w, m->files[i].crc);
    }
    pd_ckw_u32(&w, m->ntables);
    for (uint32_t i = 0; i < m->ntables; i++) {
        pd_ckw_u32(&w, m->tables[i].id);
        pd_ckw_u32(&w, m->tables[i].dropped);
        put_str(&w, m->tables[i].name);
        pd_ckw_u64(&w, m->tables[i].n);
        put_str(&w, m->tables[i].spec);
    }
    if (m->delta) {
        pd_ckw_u64(&w, m->base_seq);
        put_str(&w, m->base);
        pd_ckw_u32(&w, m->base_crc);
        pd_ckw_u32(&w, m->depth);
    }
    return pd_ckw_commit(&w, NULL, crc, e);
}

int pd_manifest_read(const char *dir, pd_manifest *m, pd_err *e) {
    char path[4200];
    pd_ckr r;
    memset(m, 0, sizeof *m);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    int rc = pd_ckr_open(&r, path, 0, e);
    if (rc) return rc;
    if (r.kind != PD_CK_MANIFEST && r.kind != PD_CK_MANIFEST_DELTA) {
        rc = pd_seterr(e, PARAMD_EPROTO, "%s holds a checkpoint part of kind %u, not a "
                       "manifest (%u or %u)", path, r.kind, PD_CK_MANIFEST,
                       PD_CK_MANIFEST_DELTA);
        pd_ckr_close(&r);
        return rc;
    }
    m->crc = r.crc;
    m->delta = r.kind == PD_CK_MANIFEST_DELTA;
    pd_rd *b = &r.body;
    uint64_t clock;
    pd_get_u64(b, &m->seq);
    pd_get_u64(b, &clock);
    pd_get_u32(b, &m->S);
    pd_get_u32(b, &m->W);
    pd_get_u32(b, &m->M);
    pd_get_u32(b, &m->nfiles);
    m->clock = (int64_t)clock;
    if (b->bad || m->S == 0 || m->nfiles == 0 || m->nfiles > PD_CK_MAX_FILES ||
        m->W == 0 || m->M < m->W || m->clock < 0)
        goto bad;
    m->files = pd_calloc(m->nfiles, sizeof *m->files);
    if (!m->files) goto oom;
    for (uint32_t i = 0; i < m->nfiles; i++) {
        pd_get_str(b, m->files[i].name, PD_CK_NAME_MAX);
        pd_get_u64(b, &m->files[i].bytes);
        pd_get_u32(b, &m->files[i].crc);
        /* a file name, never a path out of the directory */
        if (b->bad || !m->files[i].name[0] || strchr(m->files[i].name, '/')) goto bad;
    }
    pd_get_u32(b, &m->ntables);
    if (b->bad || m->ntables >= PD_MAX_TABLES) goto bad;
    m->tables = pd_calloc(m->ntables ? m->ntables : 1, sizeof *m->tables);
    if (!m->tables) goto oom;
    for (uint32_t i = 0; i < m->ntables; i++) {
        pd_get_u32(b, &m->tables[i].id);
        pd_get_u32(b, &m->tables[i].dropped);
        pd_get_str(b, m->tables[i].name, PD_CK_NAME_MAX);
        pd_get_u64(b, &m->tables[i].n);
        pd_get_str(b, m->tables[i].spec, PD_MAX_SPEC);
        if (b->bad || m->tables[i].id != i + 1 || m->tables[i].dropped > 1) goto bad;
    }
    if (m->delta) {
        pd_get_u64(b, &m->base_seq);
        pd_get_str(b, m->base, PD_CK_NAME_MAX);
        pd_get_u32(b, &m->base_crc);
        pd_get_u32(b, &m->depth);
        if (b->bad || !m->base[0] || strchr(m->base, '/') || !strcmp(m->base, ".") ||
            !strcmp(m->base, "..") || m->base_seq == 0 || m->base_seq >= m->seq ||
            m->depth == 0 || m->depth > PD_CK_MAX_DEPTH)
            goto bad;
    }
    if (!pd_rd_done(b)) goto bad;
    pd_ckr_close(&r);
    return 0;
bad:
    rc = pd_seterr(e, PARAMD_EPROTO, "%s: malformed manifest", path);
    goto out;
oom:
    rc = pd_seterr(e, PARAMD_ENOMEM, "out of memory reading %s", path);
out:
    pd_ckr_close(&r);
    pd_manifest_free(m);
    return rc;
}

void pd_manifest_free(pd_manifest *m) {
    pd_free(m->files);
    pd_free(m->tables);
    m->files = NULL;
    m->tables = NULL;
}

int pd_ck_resolve(const char *path, char *out, size_t outlen, pd_err *e) {
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/MANIFEST", path);
    if (stat(p, &st) == 0) {
        snprintf(out, outlen, "%s", path);
        return 0;
    }
    snprintf(p, sizeof p, "%s/LATEST", path);
    FILE *f = fopen(p, "r");
    if (!f)
        return pd_seterr(e, PARAMD_EIO,
                         "%s holds no checkpoint: neither %s/MANIFEST nor %s/LATEST "
                         "exists (give a checkpoint root or one ckpt-* directory in it)",
                         path, path, path);
    char name[PD_CK_NAME_MAX + 2] = "";
    int ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\n")] = '\0';
    if (!ok || !name[0] || strchr(name, '/'))
        return pd_seterr(e, PARAMD_EPROTO, "%s does not name a checkpoint directory", p);
    snprintf(out, outlen, "%s/%s", path, name);
    snprintf(p, sizeof p, "%s/MANIFEST", out);
    if (stat(p, &st) != 0)
        return pd_seterr(e, PARAMD_EIO, "%s/LATEST names %s, which has no MANIFEST", path, name);
    return 0;
}

void pd_ck_server_file(char *out, size_t len, int32_t k, int32_t S) {
    snprintf(out, len, "server-%d-of-%d.pdck", k, S);
}

/* ==== The chain ========================================================= */

/* The directory holding dir (its checkpoint root). */
static void parent_of(const char *dir, char *out, size_t len) {
    snprintf(out, len, "%s", dir);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') out[--n] = '\0';
    char *slash = strrchr(out, '/');
    if (!slash) snprintf(out, len, ".");
    else if (slash == out) out[1] = '\0';
    else *slash = '\0';
}

void pd_ck_chain_free(pd_ck_chain *c) {
    for (uint32_t i = 0; i < c->n; i++) pd_manifest_free(&c->m[i]);
    pd_free(c->m);
    pd_free(c->dir);
    memset(c, 0, sizeof *c);
}

int pd_ck_chain_read(const char *dir, pd_ck_chain *c, pd_err *e) {
    memset(c, 0, sizeof *c);
    pd_manifest top;
    int rc = pd_manifest_read(dir, &top, e);
    if (rc) return rc;
    uint32_t n = top.delta ? top.depth + 1 : 1;
    c->m = pd_calloc(n, sizeof *c->m);
    c->dir = pd_calloc(n, sizeof *c->dir);
    if (!c->m || !c->dir) {
        pd_manifest_free(&top);
        pd_ck_chain_free(c);
        return pd_seterr(e, PARAMD_ENOMEM, "out of memory reading the chain of %s", dir);
    }
    /* Filled from the newest (index n-1) back to the full one (0). */
    c->n = n;
    c->m[n - 1] = top;
    snprintf(c->dir[n - 1], sizeof c->dir[0], "%s", dir);
    char root[4096];
    parent_of(dir, root, sizeof root);
    for (uint32_t i = n - 1; i > 0; i--) {
        const pd_manifest *d = &c->m[i];
        snprintf(c->dir[i - 1], sizeof c->dir[0], "%s/%s", root, d->base);
        pd_err be = {0};
        pd_manifest *b = &c->m[i - 1];
        if (pd_manifest_read(c->dir[i - 1], b, &be) != 0) {
            rc = pd_seterr(e, be.code == PARAMD_EIO ? PARAMD_EIO : PARAMD_EPROTO,
                           "%s/MANIFEST is an incremental checkpoint of %s, which "
                           "cannot be restored: %s (an incremental checkpoint needs "
                           "every checkpoint of its chain back to a full one)",
                           c->dir[i], c->dir[i - 1], be.msg);
            goto fail;
        }
        if (b->crc != d->base_crc || b->seq != d->base_seq || b->S != d->S ||
            b->clock > d->clock || (b->delta ? b->depth + 1 : 1) != d->depth) {
            rc = pd_seterr(e, PARAMD_EPROTO,
                           "%s/MANIFEST is an incremental checkpoint of checkpoint %llu "
                           "(manifest checksum %08x, depth %u), but %s/MANIFEST is "
                           "checkpoint %llu (checksum %08x, depth %u, %u servers): not "
                           "its base (written over, or copied from another run?)",
                           c->dir[i], (unsigned long long)d->base_seq, d->base_crc,
                           d->depth - 1, c->dir[i - 1], (unsigned long long)b->seq, b->crc,
                           b->delta ? b->depth : 0, b->S);
            goto fail;
        }
        if (i == 1 && b->delta) { /* depth said a full one comes here */
            rc = pd_seterr(e, PARAMD_EPROTO, "%s/MANIFEST: the chain does not end at a "
                           "full checkpoint", c->dir[0]);
            goto fail;
        }
    }
    return 0;
fail:
    pd_ck_chain_free(c);
    return rc;
}
