/*
 * plot.c - the SVG picture of training runs (see plot.h for what it shows).
 *
 * Design: the picture is computed in two passes per panel.  The first pass
 * collects the finite (x, y) points of every run and their extent; the
 * axis is then fitted to the extent (padded, widened to nice ticks), and
 * the second pass maps the points to pixels and writes them.  Everything
 * is written with fprintf to a temporary file beside the output, renamed
 * over it at the end.
 *
 * Layout (pixels, y down), for a W x H picture:
 *
 *     title                      (only if there is one)
 *     legend, wrapped into rows  (one entry per run)
 *     +-- panel 0 --+ +-- panel 1 --+     panel: title on top, tick labels
 *     |  acc / time | |  acc / step |     and axis titles outside the
 *     +-------------+ +-------------+     framed plot area
 *     +-- panel 2 --+ +-- panel 3 --+
 *     | loss / time | | loss / step |
 *     +-------------+ +-------------+
 *
 * Invariants that keep the file valid:
 *   - a point is drawn only if x and y are finite and no larger than
 *     PD_PLOT_MAX_ABS, so axis ranges and pixel coordinates are finite;
 *   - an axis range is never empty (a constant series is padded, a panel
 *     without points gets 0..1), so no division by zero;
 *   - text from run.json (labels, title) goes through xml_text, which
 *     escapes markup and replaces invalid UTF-8 and control characters.
 *
 * Not done on purpose: log scales, smoothing, per-panel legends, raster
 * output.  Convert with any SVG tool (rsvg-convert plot.svg > plot.png).
 */
#include "train/plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ==== Constants ========================================================= */

/* Points beyond this magnitude are treated like NaN: ranges stay finite. */
#define PD_PLOT_MAX_ABS 1e300

enum {
    FIG_W = 1000,       /* picture width */
    MARGIN = 20,        /* outer margin */
    PANEL_GAP_X = 24,   /* between the two panel columns */
    PANEL_GAP_Y = 14,   /* between the two panel rows */
    PANEL_H = 340,      /* one panel, titles and tick labels included */
    PLOT_LEFT = 66,     /* panel edge to plot area: y tick labels, y title */
    PLOT_RIGHT = 14,    /* plot area to panel edge */
    PLOT_TOP = 30,      /* panel edge to plot area: panel title */
    PLOT_BOTTOM = 46,   /* plot area to panel edge: x tick labels, x title */
    LEGEND_ROW_H = 22,  /* one row of legend entries */
    LEGEND_SWATCH = 28, /* the line sample in a legend entry */
    MARKER_BUDGET = 30, /* at most about this many markers per run and panel */
    X_TICKS = 6,        /* wanted tick intervals on an x axis */
    Y_TICKS = 5,        /* wanted tick intervals on a y axis */
};

/* Tableau 10: distinct, readable on white, kind to colour-blind readers
 * when paired with the marker shapes. */
static const char *const palette[10] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
/* After ten runs the colours repeat with a dash pattern. */
static const char *const dashes[4] = {NULL, "7 4", "2 3", "9 3 2 3"};

enum { M_CIRCLE, M_SQUARE, M_TRIANGLE, M_DIAMOND, M_COUNT };

/* What each panel draws. */
enum { X_TIME, X_STEP };
enum { Y_ACC, Y_LOSS };
static const struct panel_def {
    const char *title;
    int xkind, ykind;
} panels[4] = {
    {"Test accuracy vs time", X_TIME, Y_ACC},
    {"Test accuracy vs step", X_STEP, Y_ACC},
    {"Test loss vs time", X_TIME, Y_LOSS},
    {"Test loss vs step", X_STEP, Y_LOSS},
};
static const char *const x_titles[2] = {"wall time (s)", "step (of one worker)"};
static const char *const y_titles[2] = {"test accuracy", "test loss"};

/* ==== Types ============================================================= */

/* A fitted axis: data lo..hi maps onto the pixel span; ticks at
 * lo + i*step for i in 0..nticks-1. */
typedef struct axis {
    double lo, hi, step;
    int nticks;
} axis;

typedef struct pt {
    double x, y;
    int final; /* the final evaluation (whole test set): drawn apart */
} pt;

/* ==== Text ============================================================== */

/* Write s as XML character data: markup escaped, invalid UTF-8 and
 * characters XML forbids replaced by '?', so the file always parses. */
static void xml_text(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        if (c < 0x80) {
            switch (c) {
            case '&': fputs("&amp;", f); break;
            case '<': fputs("&lt;", f); break;
            case '>': fputs("&gt;", f); break;
            case '"': fputs("&quot;", f); break;
            case '\'': fputs("&apos;", f); break;
            default: fputc(c < 0x20 ? ' ' : (int)c, f); break;
            }
            p++;
            continue;
        }
        /* Decode one sequence; accept only shortest forms of scalar values
         * that XML allows. */
        int n = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        if (c >= 0xF5) n = 0;
        unsigned cp = n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
        int ok = n > 0;
        for (int i = 1; ok && i < n; i++) {
            if ((p[i] & 0xC0) != 0x80) ok = 0;
            else cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (ok) {
            if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
                cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000) ||
                cp == 0xFFFE || cp == 0xFFFF)
                ok = 0;
        }
        if (ok) {
            fwrite(p, 1, (size_t)n, f);
            p += n;
        } else {
            fputc('?', f);
            p++;
        }
    }
}

/* Characters in a UTF-8 string (for width estimates). */
static size_t utf8_len(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

/* Rough width of text in a sans-serif font of size px: good enough to lay
 * out a legend, which is all it is used for. */
static double text_width(const char *s, double px) {
    return (double)utf8_len(s) * px * 0.56;
}

/* ==== Axes ============================================================== */

/* The nice step (1, 2 or 5 times a power of ten) that cuts `range` into at
 * most about `target` intervals. */
static double nice_step(double range, int target) {
    double raw = range / target;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    double nice = f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0;
    return nice * mag;
}

/*
 * Fit an axis to data in [dmin, dmax] (have == 0: no data, use 0..1).
 * zero_anchor: start at 0 when the data are all >= 0 (time, steps).
 * integer: never a step below 1 (steps are whole).
 */
static void axis_fit(axis *a, double dmin, double dmax, int have,
                     int zero_anchor, int integer, int target) {
    if (!have) {
        dmin = 0;
        dmax = 1;
    }
    if (zero_anchor && dmin >= 0) dmin = 0;
    double span = dmax - dmin;
    if (span <= 1e-12 * fmax(1.0, fmax(fabs(dmin), fabs(dmax)))) {
        /* A constant: pad it so it sits in the middle of a real range. */
        double pad = dmax == 0 ? 1.0 : fabs(dmax) * 0.05;
        if (zero_anchor && dmin >= 0) {
            dmax += dmax == 0 ? 1.0 : pad;
        } else {
            dmin -= pad;
            dmax += pad;
        }
    } else if (!zero_anchor) {
        /* Keep curves off the frame. */
        dmin -= 0.03 * span;
        dmax += 0.03 * span;
    }
    double step = nice_step(dmax - dmin, target);
    if (integer && step < 1.0) step = 1.0;
    double lo = floor(dmin / step) * step;
    double hi = ceil(dmax / step) * step;
    if (!(hi > lo)) hi = lo + step;
    a->lo = lo;
    a->hi = hi;
    a->step = step;
    a->nticks = (int)floor((hi - lo) / step + 0.5) + 1;
}

/* Pixel position of v on an axis drawn from p0 (at lo) to p1 (at hi). */
static double axis_map(const axis *a, double v, double p0, double p1) {
    return p0 + (v - a->lo) / (a->hi - a->lo) * (p1 - p0);
}

/* The value of tick i, with -0 and rounding noise near 0 removed. */
static double axis_tick(const axis *a, int i) {
    double v = a->lo + i * a->step;
    if (fabs(v) < a->step * 1e-9) v = 0;
    return v;
}

/* The label of tick value v: decimals as the step needs them; large
 * values with a k or M suffix ("250k", "1.5M") so they fit under a tick. */
static void tick_label(const axis *a, double v, char *buf, size_t len) {
    double top = fmax(fabs(a->lo), fabs(a->hi));
    double unit = 1;
    const char *suffix = "";
    if (top >= 1e6 && a->step >= 1e5) {
        unit = 1e6;
        suffix = "M";
    } else if (top >= 1e4 && a->step >= 1e3) {
        unit = 1e3;
        suffix = "k";
    }
    double step = a->step / unit;
    int ndec = step >= 1.0 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (v == 0) suffix = "";
    snprintf(buf, len, "%.*f%s", ndec, v / unit, suffix);
}

/* ==== Drawing =========================================================== */

/* A coordinate as written: one decimal, and never a non-finite number
 * (the invariants above make that impossible; this is the last guard). */
static double fin(double v) { return isfinite(v) ? v : 0.0; }

static const char *series_color(size_t i) { return palette[i % 10]; }
static const char *series_dash(size_t i) { return dashes[(i / 10) % 4]; }

/* Append one marker of shape `shape` at (x, y) to a path's d attribute. */
static void marker_path(FILE *f, int shape, double x, double y) {
    x = fin(x);
    y = fin(y);
    switch (shape) {
    case M_CIRCLE:
        fprintf(f, "M%.1f %.1fa3 3 0 1 0 6 0a3 3 0 1 0 -6 0Z", x - 3, y);
        break;
    case M_SQUARE:
        fprintf(f, "M%.1f %.1fh5.2v5.2h-5.2Z", x - 2.6, y - 2.6);
        break;
    case M_TRIANGLE:
        fprintf(f, "M%.1f %.1fl3.3 5.7h-6.6Z", x, y - 3.6);
        break;
    default:
        fprintf(f, "M%.1f %.1fl3.6 3.6l-3.6 3.6l-3.6 -3.6Z", x, y - 3.6);
        break;
    }
}

/* The finite points of one run for one panel, into pts (room for nrows).
 * Returns how many. */
static size_t panel_points(const pd_plot_series *s, const struct panel_def *d,
                           pt *pts) {
    size_t n = 0;
    for (size_t i = 0; i < s->nrows; i++) {
        const pd_metric_row *r = &s->rows[i];
        double x = d->xkind == X_TIME ? r->time_s : (double)r->step;
        double y = d->ykind == Y_ACC ? r->test_acc : r->test_loss;
        if (!isfinite(x) || !isfinite(y) || fabs(x) > PD_PLOT_MAX_ABS ||
            fabs(y) > PD_PLOT_MAX_ABS)
            continue;
        pts[n].x = x;
        pts[n].y = y;
        pts[n].final = r->final;
        n++;
    }
    return n;
}

/* One panel with its top-left corner at (px, py) and width pw. */
static int draw_panel(FILE *f, const struct panel_def *d, double px, double py,
                      double pw, const pd_plot_series *series, size_t nseries,
                      pt *pts) {
    double L = px + PLOT_LEFT, R = px + pw - PLOT_RIGHT;
    double T = py + PLOT_TOP, B = py + PANEL_H - PLOT_BOTTOM;

    /* Pass 1: extent of every finite point of every run. */
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    size_t total = 0;
    for (size_t s = 0; s < nseries; s++) {
        size_t n = panel_points(&series[s], d, pts);
        for (size_t i = 0; i < n; i++) {
            xmin = fmin(xmin, pts[i].x);
            xmax = fmax(xmax, pts[i].x);
            ymin = fmin(ymin, pts[i].y);
            ymax = fmax(ymax, pts[i].y);
        }
        total += n;
    }
    axis ax, ay;
    axis_fit(&ax, xmin, xmax, total > 0, 1, d->xkind == X_STEP, X_TICKS);
    axis_fit(&ay, ymin, ymax, total > 0, 0, 0, Y_TICKS);

    fprintf(f, "<g class=\"panel\">\n");
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
            "font-size=\"14\" font-weight=\"bold\" fill=\"#222\">%s</text>\n",
            (L + R) / 2, py + 18, d->title);

    /* Grid and frame, crisp. */
    fprintf(f, "<g shape-rendering=\"crispEdges\" stroke-width=\"1\">\n");
    for (int i = 0; i < ax.nticks; i++) {
        double x = axis_map(&ax, axis_tick(&ax, i), L, R);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#e8e8e8\"/>"
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#888\"/>\n",
                fin(x), T, fin(x), B, fin(x), B, fin(x), B + 4);
    }
    for (int i = 0; i < ay.nticks; i++) {
        double y = axis_map(&ay, axis_tick(&ay, i), B, T);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#e8e8e8\"/>"
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#888\"/>\n",
                L, fin(y), R, fin(y), L - 4, fin(y), L, fin(y));
    }
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"none\" stroke=\"#888\"/>\n</g>\n",
            L, T, R - L, B - T);

    /* Tick labels and axis titles. */
    fprintf(f, "<g font-size=\"11\" fill=\"#444\">\n");
    char lab[48];
    for (int i = 0; i < ax.nticks; i++) {
        double v = axis_tick(&ax, i);
        tick_label(&ax, v, lab, sizeof lab);
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s"
                "</text>\n",
                fin(axis_map(&ax, v, L, R)), B + 16, lab);
    }
    for (int i = 0; i < ay.nticks; i++) {
        double v = axis_tick(&ay, i);
        tick_label(&ay, v, lab, sizeof lab);
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                L - 7, fin(axis_map(&ay, v, B, T)) + 4, lab);
    }
    fprintf(f, "</g>\n");
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
            "font-size=\"12\" fill=\"#333\">%s</text>\n",
            (L + R) / 2, B + 36, x_titles[d->xkind]);
    fprintf(f,
            "<text transform=\"translate(%.1f %.1f) rotate(-90)\" "
            "text-anchor=\"middle\" font-size=\"12\" fill=\"#333\">%s</text>\n",
            px + 14, (T + B) / 2, y_titles[d->ykind]);
    if (total == 0)
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                "font-size=\"13\" fill=\"#999\">no data</text>\n",
                (L + R) / 2, (T + B) / 2);

    /* Pass 2: one polyline and one marker path per run that has points. */
    for (size_t s = 0; s < nseries; s++) {
        size_t n = panel_points(&series[s], d, pts);
        if (n == 0) continue;
        const char *color = series_color(s);
        const char *dash = series_dash(s);
        fprintf(f,
                "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" "
                "stroke-linejoin=\"round\" stroke-linecap=\"round\"",
                color);
        if (dash) fprintf(f, " stroke-dasharray=\"%s\"", dash);
        fprintf(f, " points=\"");
        /* The line joins the periodic evaluations only: the final one is
         * on another (the whole) test set, and is drawn apart below. */
        int firstpt = 1;
        for (size_t i = 0; i < n; i++) {
            if (pts[i].final) continue;
            fprintf(f, "%s%.1f,%.1f", firstpt ? "" : " ",
                    fin(axis_map(&ax, pts[i].x, L, R)),
                    fin(axis_map(&ay, pts[i].y, B, T)));
            firstpt = 0;
        }
        fprintf(f, "\"/>\n");
        /* Markers: every point of a short run, about MARKER_BUDGET evenly
         * spaced ones of a long run, always the last. */
        size_t stride = (n + MARKER_BUDGET - 1) / MARKER_BUDGET;
        fprintf(f,
                "<path fill=\"%s\" stroke=\"#fff\" stroke-width=\"0.8\" d=\"",
                color);
        for (size_t i = 0; i < n; i++) {
            if (pts[i].final || (i % stride != 0 && i != n - 1)) continue;
            marker_path(f, (int)(s % M_COUNT), axis_map(&ax, pts[i].x, L, R),
                        axis_map(&ay, pts[i].y, B, T));
        }
        fprintf(f, "\"/>\n");
        for (size_t i = 0; i < n; i++) { /* the final evaluation: a ring */
            if (!pts[i].final) continue;
            double x = fin(axis_map(&ax, pts[i].x, L, R)), y = fin(axis_map(&ay, pts[i].y, B, T));
            fprintf(f,
                    "<circle class=\"final\" cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"#fff\" "
                    "stroke=\"%s\" stroke-width=\"2\"><title>final: whole test set</title>"
                    "</circle>\n",
                    x, y, color);
        }
    }
    fprintf(f, "</g>\n");
    return 0;
}

/* The legend note of a run: "(final acc 0.873, 56.7 s)", "(no rows yet)". */
static void legend_note(const pd_plot_series *s, char *buf, size_t len) {
    if (s->nrows == 0) {
        snprintf(buf, len, "(no rows yet)");
        return;
    }
    double acc = NAN, t = NAN;
    int whole = 0; /* acc is the final evaluation's, on the whole test set */
    for (size_t i = s->nrows; i-- > 0;)
        if (isfinite(s->rows[i].test_acc)) {
            acc = s->rows[i].test_acc;
            whole = s->rows[i].final;
            break;
        }
    for (size_t i = s->nrows; i-- > 0;)
        if (isfinite(s->rows[i].time_s)) {
            t = s->rows[i].time_s;
            break;
        }
    if (isfinite(acc) && isfinite(t) && whole)
        snprintf(buf, len, "(final acc %.4f on the whole test set: the ring; %.1f s)", acc, t);
    else if (isfinite(acc) && isfinite(t))
        snprintf(buf, len, "(final acc %.4f, %.1f s)", acc, t);
    else if (isfinite(acc))
        snprintf(buf, len, "(final acc %.4f)", acc);
    else if (isfinite(t))
        snprintf(buf, len, "(%.1f s)", t);
    else
        buf[0] = '\0';
}

/* Lay out the legend from y0: entries flow left to right and wrap.  With
 * f NULL it only measures.  Returns the number of rows. */
static int draw_legend(FILE *f, double y0, const pd_plot_series *series,
                       size_t nseries) {
    double x = MARGIN, right = FIG_W - MARGIN;
    int row = 0;
    for (size_t s = 0; s < nseries; s++) {
        const char *label = series[s].label ? series[s].label : "";
        char note[96];
        legend_note(&series[s], note, sizeof note);
        double w = LEGEND_SWATCH + 6 + text_width(label, 12) +
                   (note[0] ? 6 + text_width(note, 11) : 0) + 22;
        if (x > MARGIN && x + w > right) {
            row++;
            x = MARGIN;
        }
        if (f) {
            double y = y0 + row * LEGEND_ROW_H + LEGEND_ROW_H / 2.0;
            const char *color = series_color(s);
            const char *dash = series_dash(s);
            fprintf(f,
                    "<g class=\"legend\"><line x1=\"%.1f\" y1=\"%.1f\" "
                    "x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"",
                    x, y, x + LEGEND_SWATCH, y, color);
            if (dash) fprintf(f, " stroke-dasharray=\"%s\"", dash);
            fprintf(f, "/><path fill=\"%s\" stroke=\"#fff\" "
                       "stroke-width=\"0.8\" d=\"",
                    color);
            marker_path(f, (int)(s % M_COUNT), x + LEGEND_SWATCH / 2.0, y);
            fprintf(f, "\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" "
                       "fill=\"#222\">",
                    x + LEGEND_SWATCH + 6, y + 4);
            xml_text(f, label);
            if (note[0]) {
                fprintf(f, "<tspan dx=\"6\" font-size=\"11\" fill=\"#777\">");
                xml_text(f, note);
                fprintf(f, "</tspan>");
            }
            fprintf(f, "</text></g>\n");
        }
        x += w;
    }
    return nseries ? row + 1 : 0;
}

/* The whole picture to f.  0, or -1 on a write error (ferror(f)). */
static int write_svg(FILE *f, const char *title, const pd_plot_series *series,
                     size_t nseries, pt *pts) {
    double top = MARGIN;
    double title_h = title && title[0] ? 30 : 0;
    int legend_rows = draw_legend(NULL, 0, series, nseries);
    double legend_y = top + title_h;
    double panels_y = legend_y + legend_rows * LEGEND_ROW_H + 10;
    double pw = (FIG_W - 2 * MARGIN - PANEL_GAP_X) / 2.0;
    double fig_h = panels_y + 2 * PANEL_H + PANEL_GAP_Y + MARGIN / 2.0;

    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%.0f\" viewBox=\"0 0 %d %.0f\" "
            "font-family=\"Helvetica, Arial, sans-serif\">\n",
            FIG_W, fig_h, FIG_W, fig_h);
    if (title_h > 0) {
        fprintf(f, "<title>");
        xml_text(f, title);
        fprintf(f, "</title>\n");
    }
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n");
    if (title_h > 0) {
        fprintf(f,
                "<text x=\"%d\" y=\"%.1f\" font-size=\"18\" "
                "font-weight=\"bold\" fill=\"#111\">",
                MARGIN, top + 18);
        xml_text(f, title);
        fprintf(f, "</text>\n");
    }
    draw_legend(f, legend_y, series, nseries);
    for (int k = 0; k < 4; k++) {
        double px = MARGIN + (k % 2) * (pw + PANEL_GAP_X);
        double py = panels_y + (k / 2) * (PANEL_H + PANEL_GAP_Y);
        draw_panel(f, &panels[k], px, py, pw, series, nseries, pts);
    }
    fprintf(f, "</svg>\n");
    return ferror(f) ? -1 : 0;
}

/* ==== Public ============================================================ */

int pd_plot_svg(const char *out_path, const char *title,
                const pd_plot_series *series, size_t nseries, char *err,
                size_t errlen) {
    if (nseries == 0 || nseries > PD_PLOT_MAX_SERIES) {
        snprintf(err, errlen, "cannot plot %zu runs (1 to %d)", nseries,
                 PD_PLOT_MAX_SERIES);
        return -1;
    }
    size_t maxrows = 1;
    for (size_t s = 0; s < nseries; s++) {
        if (series[s].nrows > 0 && !series[s].rows) {
            snprintf(err, errlen, "run %zu has %zu rows but no row array", s,
                     series[s].nrows);
            return -1;
        }
        if (series[s].nrows > maxrows) maxrows = series[s].nrows;
    }
    pt *pts = malloc(maxrows * sizeof *pts);
    size_t plen = strlen(out_path);
    char *tmp = malloc(plen + sizeof ".tmpXXXXXX");
    if (!pts || !tmp) {
        free(pts);
        free(tmp);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(tmp, out_path, plen);
    memcpy(tmp + plen, ".tmpXXXXXX", sizeof ".tmpXXXXXX");

    int rc = -1;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", out_path,
                 strerror(errno));
        goto out;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; a picture is public */
    FILE *f = fdopen(fd, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write %s: %s", out_path, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    int werr = write_svg(f, title, series, nseries, pts);
    int saved_errno = errno;
    if (fclose(f) != 0 && werr == 0) {
        werr = -1;
        saved_errno = errno;
    }
    if (werr != 0) {
        snprintf(err, errlen, "cannot write %s: %s", out_path,
                 strerror(saved_errno ? saved_errno : EIO));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, out_path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", out_path,
                 strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    free(pts);
    free(tmp);
    return rc;
}
