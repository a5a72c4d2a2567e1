/*
 * ckpt_opts.c - checkpoint options and their environment variables (see
 * ckpt_opts.h).
 */
#include "cli/ckpt_opts.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "durable/ckfile.h"
#include "durable/manifest.h"

const char cli_ckpt_help[] =
    "  --checkpoint-dir DIR   write checkpoints of every table there\n"
    "                         (docs/durability.md); with no --checkpoint-every*,\n"
    "                         only when `paramd checkpoint` asks\n"
    "  --checkpoint-every S   ...every S seconds\n"
    "  --checkpoint-every-clocks N  ...whenever the slowest worker passed the\n"
    "                         last checkpoint by N clocks\n"
    "  --checkpoint-full-every K  every Kth checkpoint is full, those between\n"
    "                         incremental (sparse tables: only the rows changed\n"
    "                         since the previous one) [8; 1: every one full]\n"
    "  --resume DIR           start from the newest checkpoint in DIR (or from\n"
    "                         the ckpt-* directory DIR): tables, optimizer\n"
    "                         state and the clock\n";

/* An absolute form of path (it need not exist); static storage per slot. */
static const char *absolute(const char *path, int slot) {
    static char buf[2][4096];
    if (path[0] == '/') {
        snprintf(buf[slot], sizeof buf[slot], "%s", path);
    } else {
        char cwd[2048];
        if (!getcwd(cwd, sizeof cwd)) return NULL;
        snprintf(buf[slot], sizeof buf[slot], "%s/%s", cwd, path);
    }
    size_t n = strlen(buf[slot]);
    while (n > 1 && buf[slot][n - 1] == '/') buf[slot][--n] = '\0';
    return buf[slot];
}

int cli_ckpt_option(const char *cmd, const char *name, const char *val, cli_ckpt_opts *o) {
    if (!strcmp(name, "checkpoint-dir")) {
        pd_err e = {0};
        const char *p = absolute(val, 0);
        if (!p || pd_mkdirs(p, &e) != 0) {
            fprintf(stderr, "%s: --checkpoint-dir %s: %s\n", cmd, val,
                    p ? e.msg : strerror(errno));
            return -1;
        }
        if (access(p, W_OK) != 0) {
            fprintf(stderr, "%s: --checkpoint-dir %s is not writable: %s\n", cmd, p,
                    strerror(errno));
            return -1;
        }
        o->dir = p;
        return 0;
    }
    if (!strcmp(name, "checkpoint-every")) {
        double s;
        if (pd_parse_double(val, &s) || !isfinite(s) || s <= 0 || s > 86400 * 365) {
            fprintf(stderr, "%s: --checkpoint-every '%s' is not a number of seconds > 0\n",
                    cmd, val);
            return -1;
        }
        o->every_s = s;
        return 0;
    }
    if (!strcmp(name, "checkpoint-every-clocks")) {
        int64_t n;
        if (pd_parse_i64(val, &n) || n < 1) {
            fprintf(stderr, "%s: --checkpoint-every-clocks '%s' is not a number of clocks "
                    ">= 1\n", cmd, val);
            return -1;
        }
        o->every_clocks = n;
        return 0;
    }
    if (!strcmp(name, "checkpoint-full-every")) {
        int64_t k;
        if (pd_parse_i64(val, &k) || k < 1 || k > PD_CK_MAX_DEPTH) {
            fprintf(stderr, "%s: --checkpoint-full-every '%s' is not a count of checkpoints "
                    "1..%d (1: every checkpoint is full)\n", cmd, val, PD_CK_MAX_DEPTH);
            return -1;
        }
        o->full_every = (int32_t)k;
        return 0;
    }
    if (!strcmp(name, "restore") || !strcmp(name, "resume")) {
        const char *p = absolute(val, 1);
        if (!p || access(p, R_OK) != 0) {
            fprintf(stderr, "%s: --%s %s: %s\n", cmd, name, val, strerror(errno));
            return -1;
        }
        o->restore = p;
        return 0;
    }
    return 1;
}

int cli_ckpt_from_env(const char *cmd, cli_ckpt_opts *o) {
    static const struct { const char *env, *opt; } map[] = {
        {"PARAMD_CHECKPOINT_DIR", "checkpoint-dir"},
        {"PARAMD_CHECKPOINT_EVERY", "checkpoint-every"},
        {"PARAMD_CHECKPOINT_EVERY_CLOCKS", "checkpoint-every-clocks"},
        {"PARAMD_CHECKPOINT_FULL_EVERY", "checkpoint-full-every"},
        {"PARAMD_RESTORE", "restore"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *v = getenv(map[i].env);
        if (v && v[0] && cli_ckpt_option(cmd, map[i].opt, v, o) != 0) {
            fprintf(stderr, "%s: (from %s)\n", cmd, map[i].env);
            return -1;
        }
    }
    return 0;
}

void cli_ckpt_to_env(const cli_ckpt_opts *o) {
    char b[64];
    if (o->dir) setenv("PARAMD_CHECKPOINT_DIR", o->dir, 1);
    if (o->every_s > 0) {
        snprintf(b, sizeof b, "%.17g", o->every_s);
        setenv("PARAMD_CHECKPOINT_EVERY", b, 1);
    }
    if (o->every_clocks > 0) {
        snprintf(b, sizeof b, "%lld", (long long)o->every_clocks);
        setenv("PARAMD_CHECKPOINT_EVERY_CLOCKS", b, 1);
    }
    if (o->full_every > 0) {
        snprintf(b, sizeof b, "%d", o->full_every);
        setenv("PARAMD_CHECKPOINT_FULL_EVERY", b, 1);
    }
    if (o->restore) setenv("PARAMD_RESTORE", o->restore, 1);
}
