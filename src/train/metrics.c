/*
 * metrics.c - the run directory's metrics.csv and run.json: writing them
 * during training, reading them back for `paramd plot` (see metrics.h for
 * the file formats).
 *
 * Design:
 *   - The writer holds one FILE and flushes after every row.  Rows are rare
 *     (one per evaluation), so a flush per row costs nothing and lets
 *     `paramd plot` read a live run.  It does not fsync: losing the last
 *     rows on a power cut is fine, and fsync per row would not be.
 *   - run.json is small and written once, so it gets the full atomic
 *     treatment (replace_file): temporary file in the same directory,
 *     fsync, rename over the old name, fsync of the directory.  A writer
 *     that goes on with metrics.csv but keeps only its rows up to a step
 *     (pd_metrics_reopen) rewrites it the same way, then opens the new
 *     file for append: a crash in between leaves the old file or the new
 *     one, never a truncated one.  Cutting a torn last line (a writer died
 *     inside it) is done in place: it loses only that part of a row.
 *   - The reader slurps the file (bounded by PD_METRICS_MAX_FILE) and
 *     parses it in place; each field must be consumed whole by strtod or
 *     strtoll, so "0.5x" or "1e" is an error and not a silent 0.5.
 *   - The JSON scanner walks the top-level object token by token: strings
 *     are decoded with every escape (\" \\ \/ \b \f \n \r \t \uXXXX with
 *     surrogate pairs), nested objects and arrays are skipped with their
 *     strings honoured, so a "label" inside "summary" or inside a string
 *     value is never mistaken for the top-level one.  Nesting is bounded
 *     (PD_JSON_MAX_DEPTH) so hostile input cannot exhaust the stack.
 *
 * Not done on purpose: column reordering or extra columns in metrics.csv
 * (the header is one fixed line; a new column means a new header, which
 * old readers then reject with a clear message instead of misreading).
 */
#include "train/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ==== Constants ========================================================= */

enum {
    PD_METRICS_NFIELDS = 9,
    PD_METRICS_NFIELDS_V1 = 7,
    PD_JSON_MAX_DEPTH = 64,
    PD_METRICS_ERRLEN = 256,
    PD_METRICS_ROW_MAX = 256, /* a row's line is under 200 bytes */
};

/* Refuse to slurp more than this: a metrics.csv this large is not ours. */
#define PD_METRICS_MAX_FILE ((size_t)256 << 20)
/* run.json is a page of text; anything larger is not ours either. */
#define PD_RUN_JSON_MAX_FILE ((size_t)1 << 20)

static const char *const field_names[PD_METRICS_NFIELDS] = {
    "time_s", "worker_step", "epoch", "samples", "train_loss", "test_loss",
    "test_acc", "test_images", "final"};

/* ==== Types ============================================================= */

struct pd_metrics {
    FILE *f;
    char *path; /* run_dir/metrics.csv, for messages */
    char err[PD_METRICS_ERRLEN];
};

/* ==== Small helpers ===================================================== */

/* "dir/name" in a new string, or NULL when out of memory. */
static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + 1 + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t n = a;
    if (n == 0 || p[n - 1] != '/') p[n++] = '/';
    memcpy(p + n, name, b + 1);
    return p;
}

/* mkdir -p.  0, or -1 with errno set (ENOTDIR if a component is a file). */
static int mkdir_p(const char *dir) {
    size_t n = strlen(dir);
    char *tmp = malloc(n + 1);
    if (!tmp) return -1;
    memcpy(tmp, dir, n + 1);
    int rc = 0;
    /* Create every prefix that ends before a '/', then the whole path. */
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0') continue;
        char saved = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) rc = -1;
        tmp[i] = saved;
    }
    if (rc == 0) {
        struct stat st;
        if (stat(dir, &st) != 0) rc = -1;
        else if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            rc = -1;
        }
    }
    int saved_errno = errno;
    free(tmp);
    errno = saved_errno;
    return rc;
}

/* Append a double as %.9g, with NaN always spelled "nan" (glibc may print
 * "-nan") and -0 as "0". */
static void fmt_double(char *buf, size_t len, double v) {
    if (isnan(v)) snprintf(buf, len, "nan");
    else if (v == 0) snprintf(buf, len, "0");
    else snprintf(buf, len, "%.9g", v);
}

/* Read a whole file into a new NUL-terminated buffer.  0 on success; -1
 * with errno set (EFBIG if larger than `max`). */
static int slurp(const char *path, size_t max, char **out, size_t *outlen) {
    *out = NULL;
    *outlen = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        errno = ENOMEM;
        return -1;
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max) {
                free(buf);
                fclose(f);
                errno = EFBIG;
                return -1;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    int saved_errno = errno;
    fclose(f);
    if (bad) {
        free(buf);
        errno = saved_errno ? saved_errno : EIO;
        return -1;
    }
    if (len > max) {
        free(buf);
        errno = EFBIG;
        return -1;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

/* Copy `src` into out[0..outlen) NUL-terminated, cutting at a UTF-8
 * character boundary if it does not fit. */
static void copy_utf8(char *out, size_t outlen, const char *src) {
    if (outlen == 0) return;
    size_t n = strlen(src);
    if (n >= outlen) {
        n = outlen - 1;
        /* Back off continuation bytes (10xxxxxx) so no character is cut. */
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    memcpy(out, src, n);
    out[n] = '\0';
}

/* write(2) all of buf[0..len), again after EINTR and short writes.  0, or
 * -1 with errno set (ENOSPC for a write that wrote nothing). */
static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = ENOSPC;
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/*
 * Replace dir/name by text[0..len) (file mode `mode`), atomically: the text
 * goes to a new temporary file dir/.NAME.XXXXXX, which is fsynced and
 * renamed over dir/name, and then dir is fsynced so that the rename is on
 * the disk too.  0 on success.  -1 and a message in err naming the file
 * and the step that failed; dir/name is then untouched and the temporary
 * file removed, except when only the last fsync (of the directory) failed:
 * the rename was made, and may or may not survive a crash.
 */
static int replace_file(const char *dir, const char *name, const char *text, size_t len,
                        mode_t mode, char *err, size_t errlen) {
    char *final = path_join(dir, name);
    size_t nl = strlen(name);
    char *base = malloc(nl + 9);
    char *tmp = NULL;
    if (base) {
        snprintf(base, nl + 9, ".%s.XXXXXX", name);
        tmp = path_join(dir, base);
    }
    free(base);
    if (!final || !tmp) {
        free(final);
        free(tmp);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1, dfd;
    const char *what = "write";
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a temporary file in %s for %s: %s", dir, name,
                 strerror(errno));
        goto out;
    }
    /* mkstemp makes the file 0600: give it the mode the old one had. */
    if (fchmod(fd, mode) != 0) {
        what = "set the mode of";
        goto failed;
    }
    if (write_all(fd, text, len) != 0) goto failed;
    if (fsync(fd) != 0) {
        what = "fsync";
        goto failed;
    }
    what = "close";
    int closed = close(fd);
    fd = -1;
    if (closed != 0) goto failed;
    if (rename(tmp, final) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s (%s is as it was)", tmp, final,
                 strerror(errno), final);
        unlink(tmp);
        goto out;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        snprintf(err, errlen, "cannot fsync directory %s after renaming the new %s into it: %s",
                 dir, name, strerror(errno));
        if (dfd >= 0) close(dfd);
        goto out;
    }
    close(dfd);
    rc = 0;
    goto out;

failed:
    snprintf(err, errlen, "cannot %s %s (the new %s; %s is as it was): %s", what, tmp, name,
             final, strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp);
out:
    free(final);
    free(tmp);
    return rc;
}

/* ==== Writer ============================================================ */

/* Row r as one line of metrics.csv (with its newline) into line[0..len);
 * the line's length. */
static int format_row(char *line, size_t len, const pd_metric_row *r) {
    char t[32], e[32], trl[32], tel[32], acc[32];
    fmt_double(t, sizeof t, r->time_s);
    fmt_double(e, sizeof e, r->epoch);
    fmt_double(trl, sizeof trl, r->train_loss);
    fmt_double(tel, sizeof tel, r->test_loss);
    fmt_double(acc, sizeof acc, r->test_acc);
    return snprintf(line, len, "%s,%lld,%s,%lld,%s,%s,%s,%lld,%d\n", t, (long long)r->step, e,
                    (long long)r->samples, trl, tel, acc, (long long)r->test_images,
                    r->final ? 1 : 0);
}

/* A writer appending to the existing file at `path` (taken over: freed
 * with the writer, or on failure).  0 and *out, or -1 and err. */
static int open_append(pd_metrics **out, char *path, char *err, size_t errlen) {
    pd_metrics *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        free(path);
        return -1;
    }
    if (!(m->f = fopen(path, "a"))) {
        snprintf(err, errlen, "cannot open %s for append: %s", path, strerror(errno));
        free(path);
        free(m);
        return -1;
    }
    m->path = path;
    *out = m;
    return 0;
}

/* Replace run_dir/metrics.csv by the header and rows[0..n), atomically
 * (replace_file), with file mode `mode`.  0, or -1 and err. */
static int rewrite_rows(const char *run_dir, const pd_metric_row *rows, size_t n, mode_t mode,
                        char *err, size_t errlen) {
    size_t cap = sizeof PD_METRICS_HEADER + 1 + n * PD_METRICS_ROW_MAX, len = 0;
    char *text = malloc(cap);
    if (!text) {
        snprintf(err, errlen, "out of memory for the %zu rows of %s/%s kept", n, run_dir,
                 PD_METRICS_FILE);
        return -1;
    }
    len = (size_t)snprintf(text, cap, "%s\n", PD_METRICS_HEADER);
    for (size_t i = 0; i < n; i++)
        len += (size_t)format_row(text + len, PD_METRICS_ROW_MAX, &rows[i]);
    int rc = replace_file(run_dir, PD_METRICS_FILE, text, len, mode, err, errlen);
    free(text);
    return rc;
}

int pd_metrics_open(pd_metrics **out, const char *run_dir, char *err,
                    size_t errlen) {
    *out = NULL;
    if (mkdir_p(run_dir) != 0) {
        snprintf(err, errlen, "cannot create run directory %s: %s", run_dir,
                 strerror(errno));
        return -1;
    }
    pd_metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->path = path_join(run_dir, PD_METRICS_FILE))) {
        free(m);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->f = fopen(m->path, "w");
    if (!m->f) {
        snprintf(err, errlen, "cannot create %s: %s", m->path, strerror(errno));
        free(m->path);
        free(m);
        return -1;
    }
    if (fputs(PD_METRICS_HEADER "\n", m->f) == EOF || fflush(m->f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", m->path, strerror(errno));
        fclose(m->f);
        free(m->path);
        free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int pd_metrics_reopen(pd_metrics **out, const char *run_dir, int64_t upto, double *elapsed,
                      int64_t *last_step, char *err, size_t errlen) {
    *out = NULL;
    *elapsed = 0;
    *last_step = -1;
    char *path = path_join(run_dir, PD_METRICS_FILE);
    if (!path) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    FILE *f = fopen(path, "r+");
    if (!f) {
        int saved = errno;
        if (saved != ENOENT)
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(saved));
        free(path);
        return saved == ENOENT ? pd_metrics_open(out, run_dir, err, errlen) : -1;
    }
    /* The run's time so far: its last row's, plus the time since that row
     * was written (the file's mtime, before anything is cut). */
    struct stat st;
    int have_mtime = fstat(fileno(f), &st) == 0;
    /* Back to just after the last newline (whole rows only). */
    int fd = fileno(f);
    off_t end = lseek(fd, 0, SEEK_END), keep = 0;
    char buf[4096];
    for (off_t at = end; at > 0 && !keep;) {
        off_t from = at > (off_t)sizeof buf ? at - (off_t)sizeof buf : 0;
        ssize_t r = pread(fd, buf, (size_t)(at - from), from);
        if (r <= 0) break;
        for (ssize_t i = r - 1; i >= 0; i--)
            if (buf[i] == '\n') {
                keep = from + i + 1;
                break;
            }
        at = from;
    }
    if (end < 0 || (keep < end && ftruncate(fd, keep) != 0)) {
        snprintf(err, errlen, "cannot cut the torn last row of %s: %s", path,
                 strerror(errno));
        fclose(f);
        free(path);
        return -1;
    }
    fclose(f);
    pd_metric_row *rows = NULL;
    size_t n = 0;
    char label[8];
    if (keep == 0 || pd_metrics_read(run_dir, &rows, &n, label, sizeof label, err, errlen) != 0) {
        /* nothing whole in it, or not a metrics file we can go on with:
         * start it again */
        free(path);
        return pd_metrics_open(out, run_dir, err, errlen);
    }
    if (n > 0 && have_mtime) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        double since = (double)(now.tv_sec - st.st_mtim.tv_sec) +
                       (double)(now.tv_nsec - st.st_mtim.tv_nsec) / 1e9;
        *elapsed = rows[n - 1].time_s + (since > 0 ? since : 0);
    }
    size_t kept = 0;
    while (kept < n && !rows[kept].final && rows[kept].step <= upto) kept++;
    if (kept) *last_step = rows[kept - 1].step;
    /* Rows after the step the run goes on from (or a final row): the file
     * again with the rows before, replacing the old one only once it is
     * whole on the disk. */
    mode_t mode = have_mtime ? (st.st_mode & 07777) : 0644;
    int rc = 0;
    if (kept < n && rewrite_rows(run_dir, rows, kept, mode, err, errlen) != 0) rc = -1;
    free(rows);
    if (rc != 0) {
        free(path);
        return -1;
    }
    return open_append(out, path, err, errlen);
}

int pd_metrics_append(pd_metrics *m, const pd_metric_row *r) {
    char line[PD_METRICS_ROW_MAX];
    if (m->err[0]) return -1; /* the file stopped at its last whole row */
    /* One write(2) of the whole line (the header went through stdio and
     * was flushed, so nothing is buffered there): a concurrent reader sees
     * whole lines, and a write that stops short (the disk filled, a file
     * size limit) is cut back to where the line began, so the file never
     * ends in a torn row.  After a failure nothing more is written. */
    int n = format_row(line, sizeof line, r);
    int fd = fileno(m->f);
    off_t at = lseek(fd, 0, SEEK_END);
    size_t done = 0;
    int err = 0;
    while (done < (size_t)n) {
        ssize_t w = write(fd, line + done, (size_t)n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            err = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    if (!err) return 0;
    int cut = done > 0 && at >= 0 && ftruncate(fd, at) == 0;
    snprintf(m->err, sizeof m->err,
             "cannot write %s: %s; the row of step %lld is not in it%s, every "
             "row before it is", m->path, strerror(err), (long long)r->step,
             done > 0 ? (cut ? " (its part was cut off)" : " (a part of it is left at the end)") : "");
    return -1;
}

const char *pd_metrics_last_error(const pd_metrics *m) { return m->err; }

void pd_metrics_close(pd_metrics *m) {
    if (!m) return;
    fclose(m->f);
    free(m->path);
    free(m);
}

int pd_metrics_write_run_json(const char *run_dir, const char *json_object_text,
                              char *err, size_t errlen) {
    const char *p = json_object_text;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p != '{') {
        snprintf(err, errlen, "run.json text is not a JSON object");
        return -1;
    }
    if (mkdir_p(run_dir) != 0) {
        snprintf(err, errlen, "cannot create run directory %s: %s", run_dir,
                 strerror(errno));
        return -1;
    }
    /* run.json ends with a newline, whether the text has one or not */
    size_t len = strlen(json_object_text);
    int need_nl = len == 0 || json_object_text[len - 1] != '\n';
    char *text = malloc(len + 2);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(text, json_object_text, len);
    if (need_nl) text[len++] = '\n';
    /* as public as metrics.csv */
    int rc = replace_file(run_dir, PD_RUN_JSON_FILE, text, len, 0644, err, errlen);
    free(text);
    return rc;
}

int pd_metrics_finish_run(pd_metrics **m, const char *run_dir,
                          const char *json_object_text, char *err, size_t errlen) {
    pd_metrics_close(*m);
    *m = NULL;
    if (pd_metrics_write_run_json(run_dir, json_object_text, err, errlen) != 0) return -1;
    printf("metrics: %s/metrics.csv, %s/%s\n", run_dir, run_dir, PD_RUN_JSON_FILE);
    return 0;
}

/* ==== JSON top-level field scanner ===================================== */

typedef struct jcur {
    const char *p;
} jcur;

static void j_ws(jcur *c) {
    while (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')
        c->p++;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Output sink for a decoded string: bytes beyond the room are dropped, and
 * a multi-byte character is written whole or not at all. */
typedef struct jout {
    char *buf;
    size_t cap; /* bytes usable including the NUL; 0 means "discard" */
    size_t len;
    int full;
} jout;

static void jout_put(jout *o, const char *bytes, size_t n) {
    if (o->cap == 0 || o->full) return;
    if (o->len + n + 1 > o->cap) {
        o->full = 1;
        return;
    }
    memcpy(o->buf + o->len, bytes, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void jout_cp(jout *o, unsigned cp) {
    char b[4];
    if (cp < 0x80) {
        b[0] = (char)cp;
        jout_put(o, b, 1);
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        jout_put(o, b, 2);
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        jout_put(o, b, 3);
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        jout_put(o, b, 4);
    }
}

/* Parse the string at c->p (which must be '"') into o.  0, or -1 if
 * malformed (unterminated, bad escape, raw control character). */
static int j_string(jcur *c, jout *o) {
    if (*c->p != '"') return -1;
    c->p++;
    for (;;) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '\0' || ch < 0x20) return -1;
        if (ch == '"') {
            c->p++;
            return 0;
        }
        if (ch != '\\') {
            /* Copy a whole UTF-8 sequence at once so truncation never
             * splits one. */
            size_t n = 1;
            while ((((unsigned char)c->p[n]) & 0xC0) == 0x80 && n < 4) n++;
            jout_put(o, c->p, n);
            c->p += n;
            continue;
        }
        c->p++;
        char esc = *c->p++;
        switch (esc) {
        case '"': jout_put(o, "\"", 1); break;
        case '\\': jout_put(o, "\\", 1); break;
        case '/': jout_put(o, "/", 1); break;
        case 'b': jout_put(o, "\b", 1); break;
        case 'f': jout_put(o, "\f", 1); break;
        case 'n': jout_put(o, "\n", 1); break;
        case 'r': jout_put(o, "\r", 1); break;
        case 't': jout_put(o, "\t", 1); break;
        case 'u': {
            unsigned cp;
            if (hex4(c->p, &cp) != 0) return -1;
            c->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && c->p[0] == '\\' &&
                c->p[1] == 'u') {
                unsigned lo;
                if (hex4(c->p + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    c->p += 6;
                }
            }
            if ((cp >= 0xD800 && cp < 0xE000) || cp == 0)
                cp = 0xFFFD; /* lone surrogate or NUL: replacement char */
            jout_cp(o, cp);
            break;
        }
        default: return -1;
        }
    }
}

/* Skip one value of any kind at c->p.  0, or -1 if malformed. */
static int j_skip(jcur *c, int depth) {
    if (depth > PD_JSON_MAX_DEPTH) return -1;
    j_ws(c);
    char ch = *c->p;
    if (ch == '"') {
        jout discard = {0};
        return j_string(c, &discard);
    }
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        j_ws(c);
        if (*c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (ch == '{') {
                j_ws(c);
                jout discard = {0};
                if (j_string(c, &discard) != 0) return -1;
                j_ws(c);
                if (*c->p++ != ':') return -1;
            }
            if (j_skip(c, depth + 1) != 0) return -1;
            j_ws(c);
            if (*c->p == ',') {
                c->p++;
                continue;
            }
            if (*c->p == close) {
                c->p++;
                return 0;
            }
            return -1;
        }
    }
    /* A number or a literal: a run of the characters they are made of. */
    const char *start = c->p;
    while (*c->p && strchr("+-.0123456789eEtruefalsn", *c->p)) c->p++;
    return c->p == start ? -1 : 0;
}

int pd_json_top_field(const char *json, const char *key, char *out,
                      size_t outlen) {
    if (outlen > 0) out[0] = '\0';
    jcur c = {json};
    j_ws(&c);
    if (*c.p++ != '{') return -1;
    j_ws(&c);
    if (*c.p == '}') return 0;
    size_t keylen = strlen(key);
    for (;;) {
        char kbuf[128];
        jout k = {kbuf, sizeof kbuf, 0, 0};
        kbuf[0] = '\0';
        j_ws(&c);
        if (j_string(&c, &k) != 0) return -1;
        j_ws(&c);
        if (*c.p++ != ':') return -1;
        j_ws(&c);
        int match =
            !k.full && k.len == keylen && memcmp(kbuf, key, keylen) == 0;
        if (match) {
            if (*c.p == '"') {
                jout o = {out, outlen, 0, 0};
                return j_string(&c, &o) == 0 ? 1 : -1;
            }
            if (*c.p == '{' || *c.p == '[') return 3;
            const char *start = c.p;
            if (j_skip(&c, 0) != 0) return -1;
            size_t n = (size_t)(c.p - start);
            if (outlen > 0) {
                if (n >= outlen) n = outlen - 1;
                memcpy(out, start, n);
                out[n] = '\0';
            }
            return 2;
        }
        if (j_skip(&c, 0) != 0) return -1;
        j_ws(&c);
        if (*c.p == ',') {
            c.p++;
            continue;
        }
        if (*c.p == '}') return 0;
        return -1;
    }
}

/* ==== Label ============================================================= */

/* The last path component of run_dir, trailing slashes ignored; "." and
 * ".." are resolved so that `paramd plot .` shows a real name. */
static void dir_name(const char *run_dir, char *out, size_t outlen) {
    char *real = NULL;
    size_t n = strlen(run_dir);
    while (n > 1 && run_dir[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && run_dir[s - 1] != '/') s--;
    const char *base = run_dir + s;
    size_t blen = n - s;
    if (blen == 0 || (blen == 1 && base[0] == '.') ||
        (blen == 2 && base[0] == '.' && base[1] == '.')) {
        real = realpath(run_dir, NULL);
        if (real) {
            char *slash = strrchr(real, '/');
            base = slash && slash[1] ? slash + 1 : real;
            blen = strlen(base);
        }
    }
    char tmp[256];
    if (blen >= sizeof tmp) blen = sizeof tmp - 1;
    memcpy(tmp, base, blen);
    tmp[blen] = '\0';
    copy_utf8(out, outlen, tmp);
    free(real);
}

void pd_metrics_label(const char *run_json, const char *run_dir, char *label,
                      size_t labellen) {
    if (labellen == 0) return;
    label[0] = '\0';
    if (run_json) {
        char v[256];
        if (pd_json_top_field(run_json, "label", v, sizeof v) == 1 && v[0]) {
            copy_utf8(label, labellen, v);
            return;
        }
        /* "mlp sync W=4" from whichever fields exist. */
        static const char *const keys[] = {"model", "consistency", "workers"};
        char built[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            int kind = pd_json_top_field(run_json, keys[i], v, sizeof v);
            if ((kind != 1 && kind != 2) || v[0] == '\0') continue;
            int w = snprintf(built + used, sizeof built - used, "%s%s%s",
                             used ? " " : "", i == 2 ? "W=" : "", v);
            if (w < 0 || (size_t)w >= sizeof built - used) break;
            used += (size_t)w;
        }
        if (used > 0) {
            copy_utf8(label, labellen, built);
            return;
        }
    }
    dir_name(run_dir, label, labellen);
}

/* ==== Reader ============================================================ */

/* Trim spaces and tabs at both ends of [*b, *e). */
static void trim(const char **b, const char **e) {
    while (*b < *e && (**b == ' ' || **b == '\t')) (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t')) (*e)--;
}

/* Parse the field [b, e) as column `col` into row r.  0, or -1 with a
 * message. */
static int parse_field(const char *b, const char *e, int col, int v1, pd_metric_row *r,
                       const char *path, size_t lineno, char *err,
                       size_t errlen) {
    trim(&b, &e);
    char buf[64];
    size_t n = (size_t)(e - b);
    int is_int = col == 1 || col == 3 || col == 7 || col == 8;
    if (n == 0 && !is_int) {
        buf[0] = '\0';
    } else if (n == 0 || n >= sizeof buf) {
        goto bad;
    } else {
        memcpy(buf, b, n);
        buf[n] = '\0';
    }
    if (is_int) {
        char *end;
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (*end != '\0' || errno == ERANGE) goto bad;
        if (col == 1) r->step = v;
        else if (col == 3) r->samples = v;
        else if (col == 7) r->test_images = v;
        else if (v == 0 || v == 1) r->final = (int)v;
        else goto bad;
    } else {
        double v = NAN;
        if (n > 0) {
            char *end;
            v = strtod(buf, &end);
            if (*end != '\0') goto bad;
        }
        switch (col) {
        case 0: r->time_s = v; break;
        case 2: r->epoch = v; break;
        case 4: r->train_loss = v; break;
        case 5: r->test_loss = v; break;
        default: r->test_acc = v; break;
        }
    }
    return 0;
bad:
    snprintf(err, errlen, "%s:%zu: field %d (%s) is not %s: '%.*s%s'", path,
             lineno, col + 1, v1 && col == 1 ? "step" : field_names[col],
             col == 8 ? "0 or 1" : is_int ? "an integer" : "a number", (int)(n > 32 ? 32 : n), b,
             n > 32 ? "..." : "");
    return -1;
}

/* Parse the whole metrics.csv text.  0, or -1 with a message. */
static int parse_csv(char *text, size_t len, const char *path,
                     pd_metric_row **rows_out, size_t *nrows_out, char *err,
                     size_t errlen) {
    pd_metric_row *rows = NULL;
    size_t nrows = 0, cap = 0;
    int nfields = PD_METRICS_NFIELDS;
    const char *p = text, *end = text + len;
    /* A byte-order mark, as a spreadsheet may add when it saves. */
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    if (p == end) {
        snprintf(err, errlen, "%s: empty file (expected the header line '%s')",
                 path, PD_METRICS_HEADER);
        return -1;
    }
    for (size_t lineno = 1; p < end; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (le > p && le[-1] == '\r') le--;
        const char *lb = p;
        p = next;
        if (memchr(lb, '\0', (size_t)(le - lb))) {
            snprintf(err, errlen, "%s:%zu: NUL byte in a text file", path,
                     lineno);
            goto fail;
        }
        if (lineno == 1) {
            const char *hb = lb, *he = le;
            trim(&hb, &he);
            size_t hl = (size_t)(he - hb);
            if (hl == strlen(PD_METRICS_HEADER_V1) &&
                memcmp(hb, PD_METRICS_HEADER_V1, hl) == 0) {
                nfields = PD_METRICS_NFIELDS_V1; /* an earlier version's file */
                continue;
            }
            if (hl != strlen(PD_METRICS_HEADER) ||
                memcmp(hb, PD_METRICS_HEADER, hl) != 0) {
                snprintf(err, errlen,
                         "%s:1: header is '%.*s%s', expected '%s' (is this a "
                         "paramd metrics file?)",
                         path, (int)(hl > 80 ? 80 : hl), hb,
                         hl > 80 ? "..." : "", PD_METRICS_HEADER);
                goto fail;
            }
            continue;
        }
        const char *tb = lb, *te = le;
        trim(&tb, &te);
        if (tb == te) continue; /* blank line: harmless */
        const char *fb[PD_METRICS_NFIELDS], *fe[PD_METRICS_NFIELDS];
        int nf = 0;
        const char *q = lb;
        for (;;) {
            const char *comma = memchr(q, ',', (size_t)(le - q));
            const char *fend = comma ? comma : le;
            if (nf < PD_METRICS_NFIELDS) {
                fb[nf] = q;
                fe[nf] = fend;
            }
            nf++;
            if (!comma) break;
            q = comma + 1;
        }
        if (nf != nfields) {
            snprintf(err, errlen,
                     "%s:%zu: expected %d comma-separated fields (%s), "
                     "found %d",
                     path, lineno, nfields,
                     nfields == PD_METRICS_NFIELDS ? PD_METRICS_HEADER : PD_METRICS_HEADER_V1, nf);
            goto fail;
        }
        pd_metric_row r;
        memset(&r, 0, sizeof r);
        for (int i = 0; i < nfields; i++)
            if (parse_field(fb[i], fe[i], i, nfields == PD_METRICS_NFIELDS_V1, &r, path, lineno,
                            err, errlen))
                goto fail;
        if (nrows == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            pd_metric_row *nr = realloc(rows, ncap * sizeof *rows);
            if (!nr) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            rows = nr;
            cap = ncap;
        }
        rows[nrows++] = r;
    }
    /* an earlier version's file: its last row was the final evaluation */
    if (nfields == PD_METRICS_NFIELDS_V1 && nrows > 0) rows[nrows - 1].final = 1;
    *rows_out = rows;
    *nrows_out = nrows;
    return 0;
fail:
    free(rows);
    return -1;
}

int pd_metrics_read(const char *run_dir, pd_metric_row **rows, size_t *nrows,
                    char *label, size_t labellen, char *err, size_t errlen) {
    *rows = NULL;
    *nrows = 0;
    if (labellen > 0) label[0] = '\0';
    struct stat st;
    if (stat(run_dir, &st) != 0) {
        snprintf(err, errlen, "%s: %s", run_dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory", run_dir);
        return -1;
    }
    char *path = path_join(run_dir, PD_METRICS_FILE);
    char *jpath = path_join(run_dir, PD_RUN_JSON_FILE);
    char *text = NULL, *json = NULL;
    size_t len = 0, jlen = 0;
    int rc = -1;
    if (!path || !jpath) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (slurp(path, PD_METRICS_MAX_FILE, &text, &len) != 0) {
        if (errno == ENOENT)
            snprintf(err, errlen, "%s: no %s in this directory", run_dir,
                     PD_METRICS_FILE);
        else if (errno == EFBIG)
            snprintf(err, errlen, "%s: larger than %zu MiB, not a metrics file",
                     path, PD_METRICS_MAX_FILE >> 20);
        else
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (parse_csv(text, len, path, rows, nrows, err, errlen) != 0) goto out;
    /* run.json is optional (a live run has none yet); unreadable means
     * "use the directory name". */
    if (slurp(jpath, PD_RUN_JSON_MAX_FILE, &json, &jlen) != 0) json = NULL;
    pd_metrics_label(json, run_dir, label, labellen);
    rc = 0;
out:
    free(text);
    free(json);
    free(path);
    free(jpath);
    return rc;
}
