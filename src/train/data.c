/*
 * data.c - the IDX reader, the shuffle and batch gathering (see data.h).
 *
 * The IDX format (LeCun's MNIST files, and Fashion-MNIST's) is a big-endian
 * header followed by raw bytes:
 *
 *   images: u32 magic 0x00000803 | u32 n | u32 rows | u32 cols | n*rows*cols u8
 *   labels: u32 magic 0x00000801 | u32 n | n u8
 *
 * (magic = 0x00 0x00, type 0x08 = unsigned byte, number of dimensions.)
 * The files are usually gzip'd; zlib's gzread reads gzip and plain files
 * alike, so one code path serves both.
 *
 * Order of checks, and why: the header is read and every field is checked
 * against PD_DATASET_MAX_* before anything is allocated, so a corrupt or
 * hostile header cannot make us allocate gigabytes.  Then the payload is
 * read in chunks; a short read is reported as "truncated" with both byte
 * counts (zlib says Z_BUF_ERROR when a gzip stream ends early, Z_OK when a
 * plain file does), any other zlib error with zlib's own message.  A last
 * one-byte read must find end of file: it catches trailing bytes (a file of
 * another shape) and makes zlib verify the gzip CRC.
 *
 * Pixels are converted to float while reading, through a 64 KiB buffer,
 * so a split never holds its bytes and its floats at once.
 *
 * Not done here, on purpose: normalisation beyond /255 (mean/std), data
 * augmentation, memory mapping.  The whole test and train splits fit in
 * memory comfortably and a step only copies B rows.
 */
#include "train/data.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* ==== Constants ======================================================== */

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define READ_CHUNK (64 * 1024)
#define NUM_CLASSES 10

#define INSTALL_HINT                                                           \
    "install the Debian package dataset-fashion-mnist "                        \
    "(apt-get install dataset-fashion-mnist) or pass --data DIR"

/* ==== Errors =========================================================== */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ==== Reading IDX files ================================================ */

/* One open IDX file: the handle and the path it was found at (for
 * messages). */
typedef struct idx_file {
    gzFile f;
    char path[4096];
} idx_file;

/*
 * Open DIR/NAME.gz, else DIR/NAME.  Returns 0, or -1 with a message.
 * `hint` adds the install hint to a "not found".
 */
static int idx_open(idx_file *fi, const char *dir, const char *name, int hint,
                    char *err, size_t errlen) {
    static const char *const suffix[2] = {".gz", ""};
    for (int i = 0; i < 2; i++) {
        int len = snprintf(fi->path, sizeof fi->path, "%s/%s%s", dir, name,
                           suffix[i]);
        if (len < 0 || (size_t)len >= sizeof fi->path) {
            set_err(err, errlen, "%s/%s: path too long", dir, name);
            return -1;
        }
        errno = 0;
        fi->f = gzopen(fi->path, "rb");
        if (fi->f) {
            gzbuffer(fi->f, 128 * 1024);
            return 0;
        }
        if (errno != ENOENT) {
            set_err(err, errlen, "%s: cannot open: %s", fi->path,
                    errno ? strerror(errno) : "out of memory");
            return -1;
        }
    }
    set_err(err, errlen, "%s/%s: not found (looked for %s.gz and %s)%s%s", dir,
            name, name, name, hint ? "; " : "", hint ? INSTALL_HINT : "");
    return -1;
}

/*
 * Read exactly len bytes.  Returns 0, or -1 with a message: "truncated"
 * when the file (or its gzip stream) ends first, zlib's message for a
 * corrupt stream.  `what` names the part being read, `done` how many bytes
 * of it came before this call (for the message).
 */
static int idx_read(idx_file *fi, void *buf, size_t len, const char *what,
                    uint64_t done, uint64_t total, char *err, size_t errlen) {
    size_t got = 0;
    while (got < len) {
        size_t want = len - got;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(fi->f, (char *)buf + got, (unsigned)want);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        int zerr = Z_OK;
        const char *zmsg = gzerror(fi->f, &zerr);
        if (r == 0 || zerr == Z_BUF_ERROR) {
            set_err(err, errlen, "%s: truncated at byte %llu of %llu (%s)",
                    fi->path, (unsigned long long)(done + got),
                    (unsigned long long)total, what);
        } else {
            set_err(err, errlen, "%s: read error in %s: %s", fi->path, what,
                    zerr == Z_ERRNO ? strerror(errno) : zmsg);
        }
        return -1;
    }
    return 0;
}

/* After the payload, the file must end (this also makes zlib check the
 * gzip trailer's CRC and length). */
static int idx_expect_eof(idx_file *fi, uint32_t count, const char *noun,
                          char *err, size_t errlen) {
    unsigned char extra;
    int r = gzread(fi->f, &extra, 1);
    if (r == 0) return 0;
    if (r > 0) {
        set_err(err, errlen,
                "%s: extra bytes after the %u %s the header announces",
                fi->path, count, noun);
    } else {
        int zerr = Z_OK;
        const char *zmsg = gzerror(fi->f, &zerr);
        set_err(err, errlen, "%s: read error at end of file: %s", fi->path,
                zerr == Z_ERRNO ? strerror(errno) : zmsg);
    }
    return -1;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

/*
 * Read an images file.  On success *x is (n, rows*cols) floats in [0,1]
 * (the caller frees it) and n, rows, cols are set.
 */
/* A plain file (not gzip'd: gzdirect) must be exactly `want` bytes long;
 * a gzip'd one is checked as it is read.  0, or -1 with a message. */
static int idx_check_size(idx_file *fi, uint64_t want, const char *what,
                          char *err, size_t errlen) {
    struct stat st;
    if (!gzdirect(fi->f) || stat(fi->path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    if ((uint64_t)st.st_size == want) return 0;
    set_err(err, errlen, "%s: %s: the header announces %s (%llu bytes) but the "
            "file has %llu bytes",
            fi->path, (uint64_t)st.st_size < want ? "truncated" : "extra bytes",
            what, (unsigned long long)want, (unsigned long long)st.st_size);
    return -1;
}

static int read_images(idx_file *fi, int32_t want_rows, int32_t want_cols,
                       float **x, int32_t *n, int32_t *rows,
                       int32_t *cols, char *err, size_t errlen) {
    unsigned char h[16];
    if (idx_read(fi, h, sizeof h, "16-byte header", 0, 16, err, errlen))
        return -1;
    uint32_t magic = be32(h), hn = be32(h + 4), hr = be32(h + 8),
             hc = be32(h + 12);
    if (magic != IDX_MAGIC_IMAGES) {
        set_err(err, errlen,
                "%s: bad magic 0x%08x (expected 0x%08x: IDX images, unsigned "
                "bytes, 3 dimensions)",
                fi->path, magic, IDX_MAGIC_IMAGES);
        return -1;
    }
    if (hn == 0 || hn > PD_DATASET_MAX_N || hr == 0 ||
        hr > PD_DATASET_MAX_SIDE || hc == 0 || hc > PD_DATASET_MAX_SIDE ||
        (uint64_t)hn * hr * hc > PD_DATASET_MAX_PIXELS) {
        set_err(err, errlen,
                "%s: absurd header: %u images of %ux%u (limits: 1..%u images, "
                "sides 1..%u, %llu pixels in all)",
                fi->path, hn, hr, hc, (unsigned)PD_DATASET_MAX_N,
                (unsigned)PD_DATASET_MAX_SIDE,
                (unsigned long long)PD_DATASET_MAX_PIXELS);
        return -1;
    }
    if ((want_rows && hr != (uint32_t)want_rows) || (want_cols && hc != (uint32_t)want_cols)) {
        set_err(err, errlen,
                "%s: images are %ux%u, but the model takes %dx%d images "
                "(Fashion-MNIST's and MNIST's size): give --data a directory "
                "with images of that size",
                fi->path, hr, hc, want_rows, want_cols);
        return -1;
    }
    uint64_t total = (uint64_t)hn * hr * hc;
    char shape[96];
    snprintf(shape, sizeof shape, "%u images of %ux%u", hn, hr, hc);
    if (idx_check_size(fi, 16 + total, shape, err, errlen)) return -1;
    float *buf = malloc(total * sizeof *buf);
    unsigned char *chunk = malloc(READ_CHUNK);
    if (!buf || !chunk) {
        free(buf);
        free(chunk);
        set_err(err, errlen, "%s: out of memory for %u images of %ux%u",
                fi->path, hn, hr, hc);
        return -1;
    }
    float lut[256];
    for (int i = 0; i < 256; i++) lut[i] = (float)i / 255.0f;
    char what[96];
    snprintf(what, sizeof what, "header + %u images of %ux%u", hn, hr, hc);
    for (uint64_t done = 0; done < total;) {
        size_t len = total - done < READ_CHUNK ? (size_t)(total - done)
                                               : (size_t)READ_CHUNK;
        if (idx_read(fi, chunk, len, what, 16 + done, 16 + total, err,
                     errlen)) {
            free(buf);
            free(chunk);
            return -1;
        }
        for (size_t i = 0; i < len; i++) buf[done + i] = lut[chunk[i]];
        done += len;
    }
    free(chunk);
    if (idx_expect_eof(fi, hn, "images", err, errlen)) {
        free(buf);
        return -1;
    }
    *x = buf;
    *n = (int32_t)hn;
    *rows = (int32_t)hr;
    *cols = (int32_t)hc;
    return 0;
}

/* Read a labels file that must hold exactly `want_n` labels 0..9. */
static int read_labels(idx_file *fi, int32_t want_n, const char *images_path,
                       uint8_t **y, char *err, size_t errlen) {
    unsigned char h[8];
    if (idx_read(fi, h, sizeof h, "8-byte header", 0, 8, err, errlen))
        return -1;
    uint32_t magic = be32(h), hn = be32(h + 4);
    if (magic != IDX_MAGIC_LABELS) {
        set_err(err, errlen,
                "%s: bad magic 0x%08x (expected 0x%08x: IDX labels, unsigned "
                "bytes, 1 dimension)",
                fi->path, magic, IDX_MAGIC_LABELS);
        return -1;
    }
    if (hn != (uint32_t)want_n) {
        set_err(err, errlen, "%s: holds %u labels but %s holds %d images",
                fi->path, hn, images_path, want_n);
        return -1;
    }
    char what_n[48];
    snprintf(what_n, sizeof what_n, "%u labels", hn);
    if (idx_check_size(fi, 8 + (uint64_t)hn, what_n, err, errlen)) return -1;
    uint8_t *buf = malloc(hn);
    if (!buf) {
        set_err(err, errlen, "%s: out of memory for %u labels", fi->path, hn);
        return -1;
    }
    char what[64];
    snprintf(what, sizeof what, "header + %u labels", hn);
    if (idx_read(fi, buf, hn, what, 8, 8 + (uint64_t)hn, err, errlen) ||
        idx_expect_eof(fi, hn, "labels", err, errlen)) {
        free(buf);
        return -1;
    }
    for (uint32_t i = 0; i < hn; i++) {
        if (buf[i] >= NUM_CLASSES) {
            set_err(err, errlen, "%s: label %u at index %u is not in 0..%d",
                    fi->path, buf[i], i, NUM_CLASSES - 1);
            free(buf);
            return -1;
        }
    }
    *y = buf;
    return 0;
}

/* ==== Public: loading ================================================== */

int pd_dataset_load(const char *dir, const char *split, pd_dataset *out,
                    char *err, size_t errlen) {
    return pd_dataset_load_shape(dir, split, 0, 0, out, err, errlen);
}

int pd_dataset_load_shape(const char *dir, const char *split, int32_t want_rows,
                          int32_t want_cols, pd_dataset *out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!out) {
        set_err(err, errlen, "pd_dataset_load: out is NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    int is_default = dir == NULL;
    if (is_default) dir = PD_DATASET_DEFAULT_DIR;

    const char *prefix;
    if (split && strcmp(split, "train") == 0) {
        prefix = "train";
    } else if (split && strcmp(split, "test") == 0) {
        prefix = "t10k";
    } else {
        set_err(err, errlen, "unknown split '%s' (expected train or test)",
                split ? split : "(null)");
        return -1;
    }

    struct stat st;
    int st_rc = stat(dir, &st);
    if (st_rc != 0 || !S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s: %s%s%s", dir,
                st_rc != 0 ? "no such directory" : "not a directory",
                is_default ? "; " : "", is_default ? INSTALL_HINT : "");
        return -1;
    }

    char images_name[64], labels_name[64];
    snprintf(images_name, sizeof images_name, "%s-images-idx3-ubyte", prefix);
    snprintf(labels_name, sizeof labels_name, "%s-labels-idx1-ubyte", prefix);

    pd_dataset d = {0};
    idx_file fi;
    if (idx_open(&fi, dir, images_name, is_default, err, errlen)) return -1;
    char images_path[sizeof fi.path];
    memcpy(images_path, fi.path, sizeof images_path);
    int rc = read_images(&fi, want_rows, want_cols, &d.x, &d.n, &d.rows, &d.cols, err, errlen);
    gzclose(fi.f);
    if (rc) return -1;

    if (idx_open(&fi, dir, labels_name, is_default, err, errlen)) {
        free(d.x);
        return -1;
    }
    rc = read_labels(&fi, d.n, images_path, &d.y, err, errlen);
    gzclose(fi.f);
    if (rc) {
        free(d.x);
        return -1;
    }
    *out = d;
    return 0;
}

int pd_dataset_header(const char *dir, const char *split, int32_t *n, int32_t *rows,
                      int32_t *cols, char *err, size_t errlen) {
    const char *prefix = split && strcmp(split, "test") == 0 ? "t10k" : "train";
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    idx_file fi;
    if (idx_open(&fi, dir ? dir : PD_DATASET_DEFAULT_DIR, name, dir == NULL, err, errlen))
        return -1;
    unsigned char h[16];
    int rc = idx_read(&fi, h, sizeof h, "16-byte header", 0, 16, err, errlen);
    gzclose(fi.f);
    if (rc) return -1;
    if (be32(h) != IDX_MAGIC_IMAGES || be32(h + 4) > PD_DATASET_MAX_N ||
        be32(h + 8) > PD_DATASET_MAX_SIDE || be32(h + 12) > PD_DATASET_MAX_SIDE) {
        set_err(err, errlen, "%s: not an IDX images header", fi.path);
        return -1;
    }
    *n = (int32_t)be32(h + 4), *rows = (int32_t)be32(h + 8), *cols = (int32_t)be32(h + 12);
    return 0;
}

void pd_dataset_free(pd_dataset *d) {
    if (!d) return;
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

/* ==== Public: shuffle and gather ======================================= */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman and Vigna), state seeded through splitmix64 so
 * that any seed, 0 included, gives a good state. */
static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, range), range >= 1, without modulo bias (Lemire's
 * multiply-and-reject). */
static uint32_t bounded(uint64_t s[4], uint32_t range) {
    uint64_t m = (xoshiro_next(s) >> 32) * (uint64_t)range;
    uint32_t low = (uint32_t)m;
    if (low < range) {
        uint32_t threshold = (uint32_t)(-range) % range;
        while (low < threshold) {
            m = (xoshiro_next(s) >> 32) * (uint64_t)range;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void pd_shuffle(uint32_t *idx, uint32_t n, uint64_t seed) {
    uint64_t sm = seed, s[4];
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&sm);
    for (uint32_t i = 0; i < n; i++) idx[i] = i;
    /* Fisher-Yates, from the top: swap i with a uniform j in [0, i]. */
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = bounded(s, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* x_out (B, D) <- d->x rows idx[0..B), D = rows*cols. */
void pd_dataset_gather(const pd_dataset *d, const uint32_t *idx, int B,
                       float *x_out, uint8_t *y_out) {
    size_t D = (size_t)d->rows * (size_t)d->cols;
    for (int b = 0; b < B; b++) {
        assert(idx[b] < (uint32_t)d->n);
        if (x_out)
            memcpy(x_out + (size_t)b * D, d->x + (size_t)idx[b] * D,
                   D * sizeof *x_out);
        if (y_out) y_out[b] = d->y[idx[b]];
    }
}
