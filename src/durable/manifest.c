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

int pd_manifest_write(const char *dir, const pd_manifest *m, pd_err *e) {
    pd_ckw w;
    int rc = pd_ckw_open(&w, dir, "MANIFEST", PD_CK_MANIFEST, e);
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
    return pd_ckw_commit(&w, NULL, NULL, e);
}

int pd_manifest_read(const char *dir, pd_manifest *m, pd_err *e) {
    char path[4200];
    pd_ckr r;
    memset(m, 0, sizeof *m);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    int rc = pd_ckr_open(&r, path, PD_CK_MANIFEST, e);
    if (rc) return rc;
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
