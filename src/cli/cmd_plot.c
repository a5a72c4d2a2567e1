/*
 * cmd_plot.c - `paramd plot`: one SVG picture comparing training runs.
 *
 * Reads each RUN_DIR's metrics.csv and run.json (train/metrics.h), gives
 * every run a distinct label, and draws them with pd_plot_svg
 * (train/plot.h).  All the work is in those two modules; this file is
 * argument handling and messages that say what to do.
 *
 * Every bad run directory is reported (not only the first), then the
 * command exits 2 without writing anything: a picture silently missing a
 * run would be worse than no picture.
 *
 * Exit status: 0 written; 1 the picture could not be written; 2 bad
 * arguments or a run directory that cannot be plotted.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train/metrics.h"
#include "train/plot.h"

/* ==== Constants ========================================================= */

enum {
    LABEL_MAX = 256,
    ERR_MAX = 512,
    TITLE_JOIN_MAX = 90, /* longest default title made of labels */
    TITLE_JOIN_RUNS = 3, /* most runs named in a default title */
};

static const char usage_text[] =
    "usage: paramd plot RUN_DIR... [--out FILE.svg] [--title TEXT]\n"
    "\n"
    "Draw the test accuracy and test loss of training runs against wall time\n"
    "and against steps: one SVG picture, four panels, one colour per run.\n"
    "\n"
    "  RUN_DIR...      one or more directories written by\n"
    "                  `paramd train --out RUN_DIR`: each holds metrics.csv\n"
    "                  (required, one row per evaluation) and run.json\n"
    "                  (optional; its \"label\", else model, consistency and\n"
    "                  workers, name the run in the legend, else the\n"
    "                  directory's name does).  A run still training can be\n"
    "                  plotted.\n"
    "  --out FILE      where to write the SVG.  Default: RUN_DIR/plot.svg for\n"
    "                  one run, ./plot.svg for several.\n"
    "  --title TEXT    title above the legend.  Default: the labels joined\n"
    "                  with \" vs \" (\"N training runs\" if more than 3).\n"
    "  -h, --help      print this help and exit.\n"
    "\n"
    "Example:\n"
    "  paramd plot runs/sync-w4 runs/async-w4 --out cmp.svg\n"
    "\n"
    "Exit status: 0 written, 1 cannot write FILE, 2 bad arguments or a run\n"
    "directory that cannot be plotted.\n";

/* ==== Helpers =========================================================== */

typedef struct run {
    const char *dir;
    pd_metric_row *rows;
    size_t nrows;
    char label[LABEL_MAX];
} run;

/* Load one run, or print why not (with what to do) and return -1. */
static int load_run(run *r) {
    struct stat st;
    if (stat(r->dir, &st) != 0) {
        if (errno == ENOENT)
            fprintf(stderr,
                    "paramd plot: %s: no such directory\n"
                    "  pass a directory written by `paramd train --out "
                    "DIR`\n",
                    r->dir);
        else
            fprintf(stderr, "paramd plot: %s: %s\n", r->dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr,
                "paramd plot: %s: not a directory\n"
                "  pass the run directory (the one holding %s), not a file\n",
                r->dir, PD_METRICS_FILE);
        return -1;
    }
    char err[ERR_MAX];
    if (pd_metrics_read(r->dir, &r->rows, &r->nrows, r->label, sizeof r->label,
                        err, sizeof err) != 0) {
        fprintf(stderr, "paramd plot: %s\n", err);
        if (strstr(err, "no " PD_METRICS_FILE))
            fprintf(stderr,
                    "  is this a run directory?  `paramd train --out %s ...` "
                    "writes one\n",
                    r->dir);
        else if (strstr(err, PD_METRICS_FILE ":"))
            fprintf(stderr,
                    "  the file is not as `paramd train` writes it: fix or "
                    "delete that line\n");
        return -1;
    }
    if (r->nrows == 0) {
        fprintf(stderr,
                "paramd plot: %s/%s has no rows yet\n"
                "  the run has not finished its first evaluation: plot it "
                "again once it has\n",
                r->dir, PD_METRICS_FILE);
        return -1;
    }
    return 0;
}

/* Two runs with one label would be one legend entry twice: add the
 * directory to every label that is not unique. */
static void make_labels_unique(run *runs, size_t n) {
    char *dup = calloc(n ? n : 1, 1);
    if (!dup) return;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(runs[i].label, runs[j].label) == 0) dup[i] = dup[j] = 1;
    for (size_t i = 0; i < n; i++) {
        if (!dup[i]) continue;
        char tmp[LABEL_MAX];
        snprintf(tmp, sizeof tmp, "%s (%s)", runs[i].label, runs[i].dir);
        memcpy(runs[i].label, tmp, sizeof tmp);
    }
    free(dup);
}

/* The default title: "A vs B vs C" for up to three runs when that is
 * short, else "N training runs" (the legend names them all anyway). */
static void default_title(const run *runs, size_t n, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    if (n > TITLE_JOIN_RUNS) {
        snprintf(buf, len, "%zu training runs", n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? " vs " : "",
                         runs[i].label);
        if (w < 0 || (size_t)w >= len - used ||
            used + (size_t)w > TITLE_JOIN_MAX) {
            snprintf(buf, len, "%zu training runs", n);
            return;
        }
        used += (size_t)w;
    }
}

/* The value of option `name` at argv[*i] ("--out X" or "--out=X"): NULL if
 * argv[*i] is not that option, "" with a message if its value is missing.
 * Advances *i past a separate value. */
static const char *option_value(int argc, char **argv, int *i,
                                const char *name, int *missing) {
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n] != '\0') return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return "";
    }
    return argv[++*i];
}

/* ==== Command =========================================================== */

int cmd_plot(int argc, char **argv) {
    const char *out = NULL, *title = NULL;
    run *runs = calloc((size_t)(argc > 0 ? argc : 1), sizeof *runs);
    if (!runs) {
        fprintf(stderr, "paramd plot: out of memory\n");
        return 1;
    }
    size_t nruns = 0;
    int only_dirs = 0, rc = 2;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int missing = 0;
        const char *v;
        if (only_dirs || a[0] != '-' || a[1] == '\0') {
            runs[nruns++].dir = a;
        } else if (strcmp(a, "--") == 0) {
            only_dirs = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            rc = 0;
            goto done;
        } else if ((v = option_value(argc, argv, &i, "--out", &missing))) {
            if (missing || !v[0]) {
                fprintf(stderr, "paramd plot: --out needs a file name\n");
                goto usage;
            }
            out = v;
        } else if ((v = option_value(argc, argv, &i, "--title", &missing))) {
            if (missing) {
                fprintf(stderr, "paramd plot: --title needs a text\n");
                goto usage;
            }
            title = v;
        } else {
            fprintf(stderr, "paramd plot: unknown option '%s'\n", a);
            goto usage;
        }
    }
    if (nruns == 0) {
        fprintf(stderr, "paramd plot: no run directory given\n");
        goto usage;
    }
    if (nruns > PD_PLOT_MAX_SERIES) {
        fprintf(stderr,
                "paramd plot: %zu runs is too many for one picture (at most "
                "%d)\n",
                nruns, PD_PLOT_MAX_SERIES);
        goto done;
    }

    int bad = 0;
    for (size_t i = 0; i < nruns; i++)
        if (load_run(&runs[i]) != 0) bad = 1;
    if (bad) goto done;
    make_labels_unique(runs, nruns);

    char default_out[4096];
    if (!out) {
        if (nruns == 1) {
            size_t dl = strlen(runs[0].dir);
            int slash = dl > 0 && runs[0].dir[dl - 1] == '/';
            int w = snprintf(default_out, sizeof default_out, "%s%splot.svg",
                             runs[0].dir, slash ? "" : "/");
            if (w < 0 || (size_t)w >= sizeof default_out) {
                fprintf(stderr,
                        "paramd plot: run directory name too long; give "
                        "--out FILE\n");
                goto done;
            }
            out = default_out;
        } else {
            out = "plot.svg";
        }
    }
    char title_buf[LABEL_MAX * 2];
    if (!title) {
        default_title(runs, nruns, title_buf, sizeof title_buf);
        title = title_buf;
    }

    pd_plot_series series[PD_PLOT_MAX_SERIES];
    for (size_t i = 0; i < nruns; i++) {
        series[i].label = runs[i].label;
        series[i].rows = runs[i].rows;
        series[i].nrows = runs[i].nrows;
    }
    char err[ERR_MAX];
    if (pd_plot_svg(out, title, series, nruns, err, sizeof err) != 0) {
        fprintf(stderr, "paramd plot: %s\n", err);
        rc = 1;
        goto done;
    }
    printf("wrote %s (%zu run%s)\n", out, nruns, nruns == 1 ? "" : "s");
    rc = 0;
    goto done;

usage:
    fprintf(stderr, "run 'paramd plot --help' for the options\n");
    rc = 2;
done:
    for (size_t i = 0; i < nruns; i++) free(runs[i].rows);
    free(runs);
    return rc;
}
