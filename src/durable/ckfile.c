/*
 * ckfile.c - checkpoint files written atomically and read back checked
 * (see ckfile.h).  The CRC is zlib's crc32: the body's is summed while it
 * streams out, and joined to the header's (whose length field is known
 * only at the end) with crc32_combine, so nothing is read back to check
 * it.
 */
#include "durable/ckfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CK_MAGIC "PRMDCKPT"
#define WBUF (1u << 20)

/* ==== Writing =========================================================== */

static void w_fail(pd_ckw *w, const char *what) {
    if (w->err.code) return;
    pd_seterr(&w->err, PARAMD_EIO, "checkpoint file %s: %s: %s", w->path, what,
              strerror(errno ? errno : EIO));
}

/* Start writing what is in the page cache to the disk now, without
 * waiting: the disk works while the next part is summed and copied, and
 * the final fsync has less left to do. */
static void w_start_writeback(pd_ckw *w) {
    off_t end = lseek(w->fd, 0, SEEK_CUR);
    if (end > w->synced) {
        sync_file_range(w->fd, w->synced, end - w->synced, SYNC_FILE_RANGE_WRITE);
        w->synced = end;
    }
}

static void w_flush(pd_ckw *w) {
    size_t off = 0;
    while (off < w->used && !w->err.code) {
        ssize_t n = write(w->fd, w->buf + off, w->used - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            w_fail(w, "write");
            break;
        }
        off += (size_t)n;
    }
    w->used = 0;
}

int pd_ckw_open(pd_ckw *w, const char *dir, const char *name, uint32_t kind, pd_err *e) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
    snprintf(w->path, sizeof w->path, "%s/%s", dir, name);
    snprintf(w->tmp, sizeof w->tmp, "%s/%s.tmp", dir, name);
    w->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    w->buf = pd_malloc(WBUF);
    if (!w->buf) return pd_seterr(e, PARAMD_ENOMEM, "out of memory for a checkpoint writer");
    w->fd = open(w->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int rc = pd_seterr(e, PARAMD_EIO, "cannot create %s: %s", w->tmp, strerror(errno));
        pd_free(w->buf);
        w->buf = NULL;
        return rc;
    }
    /* The header, its length patched at commit (and summed then). */
    uint8_t h[PD_CK_HDR] = {0};
    memcpy(h, CK_MAGIC, 8);
    pd_le32_put(h + 8, PD_CK_VERSION);
    pd_le32_put(h + 12, kind);
    memcpy(w->buf, h, sizeof h);
    w->used = sizeof h;
    return 0;
}

void pd_ckw_bytes(pd_ckw *w, const void *p, size_t n) {
    const uint8_t *s = p;
    if (w->err.code || n == 0) return;
    if (n >= WBUF) {
        /* large runs (a table's values) go straight from where they lie */
        w_flush(w);
        w->body += n;
        while (n > 0 && !w->err.code) {
            size_t k = n > (64u << 20) ? (64u << 20) : n;
            w->crc = (uint32_t)crc32(w->crc, s, (uInt)k);
            size_t off = 0;
            while (off < k && !w->err.code) {
                ssize_t m = write(w->fd, s + off, k - off);
                if (m < 0 && errno == EINTR) continue;
                if (m <= 0) w_fail(w, "write");
                else off += (size_t)m;
            }
            s += k, n -= k;
            if (!w->nosync) w_start_writeback(w);
        }
        return;
    }
    while (n > 0 && !w->err.code) {
        size_t k = WBUF - w->used < n ? WBUF - w->used : n;
        memcpy(w->buf + w->used, s, k);
        /* zlib takes uInt lengths: k <= 1 MiB fits */
        w->crc = (uint32_t)crc32(w->crc, s, (uInt)k);
        w->used += k, w->body += k, s += k, n -= k;
        if (w->used == WBUF) w_flush(w);
    }
}

void pd_ckw_u32(pd_ckw *w, uint32_t v) {
    uint8_t b[4];
    pd_le32_put(b, v);
    pd_ckw_bytes(w, b, 4);
}

void pd_ckw_u64(pd_ckw *w, uint64_t v) {
    uint8_t b[8];
    pd_le64_put(b, v);
    pd_ckw_bytes(w, b, 8);
}

void pd_ckw_floats(pd_ckw *w, const float *v, uint64_t n) {
    /* IEEE-754 little-endian, as the host (paramd runs on x86-64 and other
     * little-endian machines only: wire.h) */
    pd_ckw_bytes(w, v, (size_t)n * sizeof(float));
}

static void w_sync_dir(pd_ckw *w) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", w->path);
    char *slash = strrchr(dir, '/');
    if (!slash) return;
    *slash = '\0';
    int fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return w_fail(w, "open its directory");
    if (fsync(fd) != 0) w_fail(w, "fsync its directory");
    close(fd);
}

int pd_ckw_commit(pd_ckw *w, uint64_t *bytes, uint32_t *crc, pd_err *e) {
    if (w->fd < 0) return pd_seterr(e, PARAMD_EINVAL, "checkpoint writer not open");
    /* The body was summed from byte PD_CK_HDR on; the header's own bytes
     * (with the length) are summed now and joined in front. */
    uint8_t h[PD_CK_HDR];
    w_flush(w);
    uint32_t all = 0;
    if (!w->err.code) {
        if (pread(w->fd, h, sizeof h, 0) != (ssize_t)sizeof h) w_fail(w, "read its header");
        pd_le64_put(h + 16, w->body);
        if (!w->err.code && pwrite(w->fd, h + 16, 8, 16) != 8) w_fail(w, "write its length");
        uint32_t hc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), h, sizeof h);
        all = (uint32_t)crc32_combine(hc, w->crc, (z_off_t)w->body);
        uint8_t t[4];
        pd_le32_put(t, all);
        if (!w->err.code && pwrite(w->fd, t, 4, (off_t)(PD_CK_HDR + w->body)) != 4)
            w_fail(w, "write its checksum");
    }
    if (!w->err.code && !w->nosync && fsync(w->fd) != 0) w_fail(w, "fsync");
    if (close(w->fd) != 0) w_fail(w, "close");
    w->fd = -1;
    if (!w->err.code && rename(w->tmp, w->path) != 0) w_fail(w, "rename into place");
    if (!w->err.code && !w->nosync) w_sync_dir(w);
    pd_free(w->buf);
    w->buf = NULL;
    if (w->err.code) {
        unlink(w->tmp);
        if (e) *e = w->err;
        return w->err.code;
    }
    if (bytes) *bytes = PD_CK_HDR + w->body + 4;
    if (crc) *crc = all;
    return 0;
}

void pd_ckw_abort(pd_ckw *w) {
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
        unlink(w->tmp);
    }
    pd_free(w->buf);
    w->buf = NULL;
}

/* ==== Reading =========================================================== */

int pd_ckr_open(pd_ckr *r, const char *path, uint32_t want_kind, pd_err *e) {
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pd_seterr(e, PARAMD_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pd_seterr(e, PARAMD_EIO, "%s is not a regular file", path);
    }
    r->size = (size_t)st.st_size;
    if (r->size < PD_CK_HDR + 4) {
        close(fd);
        return pd_seterr(e, PARAMD_EPROTO,
                         "%s is not a paramd checkpoint file: %zu bytes, shorter than "
                         "a header and a checksum (truncated?)",
                         path, r->size);
    }
    void *m = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return pd_seterr(e, PARAMD_EIO, "cannot map %s: %s", path, strerror(errno));
    r->map = m;
    const uint8_t *h = r->map;
    int rc = 0;
    uint32_t ver = pd_le32_get(h + 8);
    uint64_t body = pd_le64_get(h + 16);
    r->kind = pd_le32_get(h + 12);
    if (memcmp(h, CK_MAGIC, 8) != 0)
        rc = pd_seterr(e, PARAMD_EPROTO, "%s is not a paramd checkpoint file (bad magic)", path);
    else if (ver != PD_CK_VERSION)
        rc = pd_seterr(e, PARAMD_EPROTO,
                       "%s is a checkpoint of format version %u; this paramd reads "
                       "version %u (restore it with the paramd that wrote it)",
                       path, ver, PD_CK_VERSION);
    else if (want_kind && r->kind != want_kind)
        rc = pd_seterr(e, PARAMD_EPROTO, "%s holds a checkpoint part of kind %u, not %u",
                       path, r->kind, want_kind);
    else if (body != r->size - PD_CK_HDR - 4)
        rc = pd_seterr(e, PARAMD_EPROTO,
                       "%s says it holds %llu bytes but has %zu (truncated or "
                       "appended to)",
                       path, (unsigned long long)body, r->size - PD_CK_HDR - 4);
    if (!rc) {
        uint32_t want = pd_le32_get(h + r->size - 4);
        uLong c = crc32(0L, Z_NULL, 0);
        size_t off = 0, n = r->size - 4;
        while (off < n) { /* zlib takes uInt lengths */
            size_t k = n - off > (1u << 30) ? (1u << 30) : n - off;
            c = crc32(c, h + off, (uInt)k);
            off += k;
        }
        if ((uint32_t)c != want)
            rc = pd_seterr(e, PARAMD_EPROTO,
                           "%s is corrupt: its checksum is %08x, its contents sum to %08x",
                           path, want, (uint32_t)c);
        r->crc = want;
    }
    if (rc) {
        pd_ckr_close(r);
        return rc;
    }
    pd_rd_init(&r->body, h + PD_CK_HDR, (size_t)body);
    return 0;
}

void pd_ckr_close(pd_ckr *r) {
    if (r->map) munmap((void *)r->map, r->size);
    r->map = NULL;
}

int pd_ckr_floats(pd_ckr *r, float *dst, uint64_t n) {
    pd_rd *b = &r->body;
    if (b->bad || n > (b->len - b->off) / sizeof(float)) {
        b->bad = 1;
        return -1;
    }
    if (dst) memcpy(dst, b->p + b->off, (size_t)n * sizeof(float));
    b->off += (size_t)n * sizeof(float);
    return 0;
}

/* ==== Directories ======================================================= */

int pd_mkdirs(const char *dir, pd_err *e) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return pd_seterr(e, PARAMD_EIO, "cannot create directory %s: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return pd_seterr(e, PARAMD_EIO, "cannot create directory %s: %s", p, strerror(errno));
    return 0;
}

int pd_write_atomic(const char *dir, const char *name, const char *text, pd_err *e) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return pd_seterr(e, PARAMD_EIO, "cannot create %s: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) {
        int rc = pd_seterr(e, PARAMD_EIO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return rc;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
