/*
 * train_check.c - checks `paramd train` makes before starting anything
 * (see train_check.h).  Why here: a run that trains for an hour and then
 * cannot write its weights, or a machine that starts swapping at the
 * thousandth worker, should fail in the first second with the reason.
 */
#include "train/train_check.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train/data.h"

/* ==== Output paths ====================================================== */

/* dir part of path ("." if none) into out. */
static void dir_of(const char *path, char *out, size_t n) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, n, ".");
    else if (slash == path) snprintf(out, n, "/");
    else snprintf(out, n, "%.*s", (int)(slash - path), path);
}

/* The nearest existing ancestor of path (path itself if it exists). */
static void nearest_existing(const char *path, char *out, size_t n) {
    snprintf(out, n, "%s", path);
    struct stat st;
    while (stat(out, &st) != 0) {
        char *slash = strrchr(out, '/');
        if (!slash) {
            snprintf(out, n, ".");
            return;
        }
        if (slash == out) {
            out[1] = '\0';
            return;
        }
        *slash = '\0';
    }
}

static int writable_dir(const char *dir, const char *what, const char *given, char *err,
                        size_t errlen) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s %s: %s is not a directory", what, given, dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "%s %s: cannot write in %s: %s; give another path", what,
                 given, dir, strerror(errno));
        return -1;
    }
    return 0;
}

int pd_train_check_outputs(const pd_train_cfg *cfg, char *err, size_t errlen) {
    char dir[4096];
    struct stat st;
    if (cfg->out && cfg->out[0]) {
        if (stat(cfg->out, &st) == 0 && !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "--out %s exists and is not a directory", cfg->out);
            return -1;
        }
        nearest_existing(cfg->out, dir, sizeof dir);
        if (writable_dir(dir, "--out", cfg->out, err, errlen)) return -1;
    }
    if (cfg->save_params) {
        const char *p = cfg->save_params;
        if (!p[0] || p[strlen(p) - 1] == '/') {
            snprintf(err, errlen, "--save-params '%s' is not a file name", p);
            return -1;
        }
        if (stat(p, &st) == 0) {
            if (!S_ISREG(st.st_mode)) {
                snprintf(err, errlen, "--save-params %s exists and is not a regular file", p);
                return -1;
            }
            if (access(p, W_OK) != 0) {
                snprintf(err, errlen, "--save-params %s: cannot write it: %s; give another "
                         "path", p, strerror(errno));
                return -1;
            }
        } else {
            dir_of(p, dir, sizeof dir);
            if (writable_dir(dir, "--save-params", p, err, errlen)) return -1;
        }
    }
    return 0;
}

/* ==== Memory ============================================================ */

uint64_t pd_mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb << 10;
}

static void fmt_gb(uint64_t b, char *out, size_t n) {
    if (b >= (1ull << 30)) snprintf(out, n, "%.1f GiB", (double)b / (1ull << 30));
    else snprintf(out, n, "%.0f MiB", (double)b / (1ull << 20));
}

int pd_train_check_memory(const pd_train_cfg *cfg, int W, char *err, size_t errlen) {
    if (strcmp(cfg->model, "mlp") && strcmp(cfg->model, "cnn")) return 0;
    int32_t n, rows, cols;
    char why[512];
    if (pd_dataset_header(cfg->data, "train", &n, &rows, &cols, why, sizeof why) != 0)
        return 0; /* the workers will say what is wrong with the data */
    uint64_t data = (uint64_t)n * (uint64_t)rows * (uint64_t)cols * sizeof(float) + (uint64_t)n;
    uint64_t per = data + PD_TRAIN_WORKER_OVERHEAD;
    uint64_t need = per * (uint64_t)W;
    uint64_t avail = pd_mem_available();
    if (!avail || need <= avail) return 0;
    char a[32], b[32], c[32];
    fmt_gb(need, a, sizeof a);
    fmt_gb(data, b, sizeof b);
    fmt_gb(avail, c, sizeof c);
    uint64_t fit = avail / per;
    snprintf(err, errlen,
             "--workers %d need about %s (each worker holds the %d training images "
             "as floats, %s, and about %llu MiB of its own), more than the %s this "
             "machine has available: use --workers %llu or fewer here, or spread "
             "the workers over machines (--coordinator)",
             W, a, n, b, (unsigned long long)(PD_TRAIN_WORKER_OVERHEAD >> 20), c,
             (unsigned long long)(fit ? fit : 1));
    return -1;
}
