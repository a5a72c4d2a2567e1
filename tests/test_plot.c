/*
 * test_plot.c - src/train/plot.c (the SVG picture of runs) and
 * src/train/progress.c (the training progress reporter).
 *
 * The SVG is checked as text: the panels, the legend, one polyline per run
 * per panel, well-formed enough (balanced elements, escaped labels), and no
 * non-finite number anywhere.  The progress reporter runs on a hand-driven
 * clock, so nothing here sleeps or depends on timing.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "train/plot.h"
#include "train/progress.h"

/* ==== Helpers =========================================================== */

static char root[] = "/tmp/paramd_test_plot_XXXXXX";

static const char *at(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", root, name);
    return buf;
}

/* The whole file in a new string. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    CHECK(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    CHECK(buf != NULL);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* What was written to a tmpfile, in a new string. */
static char *stream_text(FILE *f) {
    fflush(f);
    long n = ftell(f);
    CHECK(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    CHECK(buf != NULL);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    return buf;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

#define CHECK_CONTAINS(hay, needle)                                            \
    do {                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                \
        if (!strstr(h_, n_))                                                   \
            CHECK_FAIL_("output contains \"%s\"", n_);                         \
    } while (0)

#define CHECK_STARTS(text, prefix)                                             \
    do {                                                                       \
        const char *t_ = (text), *p_ = (prefix);                               \
        if (strncmp(t_, p_, strlen(p_)) != 0)                                  \
            CHECK_FAIL_("starts with \"%s\" (it is \"%.80s\")", p_, t_);    \
    } while (0)

/* Rows of a plausible run: accuracy climbing from 0.5 to 0.9, loss
 * falling, evaluations every 100 steps. */
static pd_metric_row *make_run(size_t n, double speed) {
    pd_metric_row *r = calloc(n, sizeof *r);
    CHECK(r != NULL);
    for (size_t i = 0; i < n; i++) {
        double u = n > 1 ? (double)i / (double)(n - 1) : 0;
        r[i].time_s = (double)(i + 1) * 1.7 / speed;
        r[i].step = (int64_t)(i + 1) * 100;
        r[i].epoch = (double)(i + 1) * 0.1;
        r[i].samples = r[i].step * 64;
        r[i].train_loss = 1.2 - 0.8 * u;
        r[i].test_loss = 1.3 - 0.9 * u + 0.02 * sin(7.0 * u);
        r[i].test_acc = 0.5 + 0.4 * u;
    }
    return r;
}

/* The checks every picture must pass: a document, balanced elements, no
 * non-finite numbers, the four panels. */
static void check_valid_svg(const char *svg) {
    CHECK(strncmp(svg, "<?xml", 5) == 0);
    CHECK_CONTAINS(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
    size_t len = strlen(svg);
    CHECK(len > 7 && strcmp(svg + len - 7, "</svg>\n") == 0);
    CHECK_INT_EQ(count(svg, "<g"), count(svg, "</g>"));
    CHECK_INT_EQ(count(svg, "<text"), count(svg, "</text>"));
    CHECK_INT_EQ(count(svg, "<tspan"), count(svg, "</tspan>"));
    CHECK_INT_EQ(count(svg, "\""), 2 * (count(svg, "=\"")));
    /* No "nan", "inf", "-nan" anywhere (labels in these tests avoid those
     * letters), so every coordinate is a finite number. */
    for (const char *p = svg; *p; p++) {
        CHECK(strncasecmp(p, "nan", 3) != 0);
        CHECK(strncasecmp(p, "inf", 3) != 0);
    }
    CHECK_INT_EQ(count(svg, "Test accuracy vs time"), 1);
    CHECK_INT_EQ(count(svg, "Test accuracy vs step"), 1);
    CHECK_INT_EQ(count(svg, "Test loss vs time"), 1);
    CHECK_INT_EQ(count(svg, "Test loss vs step"), 1);
    CHECK_INT_EQ(count(svg, "wall time (s)"), 2);
    CHECK_INT_EQ(count(svg, ">step (of one worker)</text>"), 2);
}

/* The points of the k-th polyline (0-based), counted. */
static int polyline_points(const char *svg, int k) {
    const char *p = svg;
    for (int i = 0; i <= k; i++) {
        p = strstr(p, "<polyline");
        CHECK(p != NULL);
        p++;
    }
    p = strstr(p, "points=\"");
    CHECK(p != NULL);
    p += 8;
    int n = 0;
    for (; *p != '"'; p++)
        if (*p == ',') n++;
    return n;
}

/* ==== Plot cases ======================================================== */

static void test_two_runs(void) {
    pd_metric_row *a = make_run(30, 1.0), *b = make_run(30, 3.5);
    pd_plot_series s[2] = {{"mlp sync W=1", a, 30}, {"mlp async W=4", b, 30}};
    char err[256];
    const char *out = at("two.svg");
    CHECK_OK(pd_plot_svg(out, "sync vs async", s, 2, err, sizeof err));
    char *svg = slurp(out);
    check_valid_svg(svg);
    CHECK_CONTAINS(svg, ">mlp sync W=1<");
    CHECK_CONTAINS(svg, ">mlp async W=4<");
    CHECK_CONTAINS(svg, "sync vs async");
    /* One polyline per run per panel, each with every point. */
    CHECK_INT_EQ(count(svg, "<polyline"), 2 * 4);
    for (int k = 0; k < 8; k++) CHECK_INT_EQ(polyline_points(svg, k), 30);
    /* Two colours, one per run, in legend and panels alike. */
    CHECK_INT_EQ(count(svg, "stroke=\"#1f77b4\" stroke-width=\"1.8\""), 4);
    CHECK_INT_EQ(count(svg, "stroke=\"#ff7f0e\" stroke-width=\"1.8\""), 4);
    /* Accuracy 0.5..0.9 gets ticks 0.4, 0.5, ... 1.0 (step 0.1). */
    CHECK_CONTAINS(svg, ">0.4</text>");
    CHECK_CONTAINS(svg, ">1.0</text>");
    /* Steps 100..3000 from 0: whole-number ticks 0, 500, ..., 3000. */
    CHECK_CONTAINS(svg, ">0</text>");
    CHECK_CONTAINS(svg, ">500</text>");
    CHECK_CONTAINS(svg, ">3000</text>");
    /* The legend gives the final accuracy. */
    CHECK_CONTAINS(svg, "final acc 0.9000");
    /* Written atomically: no temporary file left. */
    CHECK(access(at("two.svg.tmp"), F_OK) != 0);
    free(svg);
    free(a);
    free(b);
}

/* One run, one row: one-point polylines and markers, finite everywhere. */
static void test_single_point(void) {
    pd_metric_row *r = make_run(1, 1.0);
    pd_plot_series s = {"only", r, 1};
    char err[256];
    CHECK_OK(pd_plot_svg(at("one.svg"), "one point", &s, 1, err, sizeof err));
    char *svg = slurp(at("one.svg"));
    check_valid_svg(svg);
    CHECK_INT_EQ(count(svg, "<polyline"), 4);
    for (int k = 0; k < 4; k++) CHECK_INT_EQ(polyline_points(svg, k), 1);
    CHECK(strstr(svg, "no data") == NULL);
    free(svg);
    free(r);
}

/* The final evaluation (whole test set) is drawn apart: a ring per panel,
 * not a point of the line, and the legend says so. */
static void test_final(void) {
    enum { N = 6 };
    pd_metric_row *r = make_run(N, 1.0);
    r[N - 1].final = 1;
    pd_plot_series s = {"run", r, N};
    char err[256];
    CHECK_OK(pd_plot_svg(at("final.svg"), "final", &s, 1, err, sizeof err));
    char *svg = slurp(at("final.svg"));
    check_valid_svg(svg);
    CHECK_INT_EQ(count(svg, "class=\"final\""), 4);
    for (int k = 0; k < 4; k++) CHECK_INT_EQ(polyline_points(svg, k), N - 1);
    CHECK_CONTAINS(svg, "on the whole test set: the ring");
    free(svg);
    free(r);
    unlink(at("final.svg"));
}

/* NaN and infinite values are skipped; a panel with nothing says so. */
static void test_nan(void) {
    enum { N = 10 };
    pd_metric_row *all_nan = make_run(N, 1.0), *some = make_run(N, 2.0);
    for (int i = 0; i < N; i++) {
        all_nan[i].test_acc = NAN;
        all_nan[i].test_loss = NAN;
    }
    some[2].test_acc = NAN;
    some[5].test_acc = INFINITY;
    some[7].time_s = NAN;
    some[8].test_loss = -INFINITY;
    char err[256];

    /* Only the all-NaN run: four empty panels, valid picture. */
    pd_plot_series s1 = {"empty y", all_nan, N};
    CHECK_OK(pd_plot_svg(at("nan1.svg"), NULL, &s1, 1, err, sizeof err));
    char *svg = slurp(at("nan1.svg"));
    check_valid_svg(svg);
    CHECK_INT_EQ(count(svg, "<polyline"), 0);
    CHECK_INT_EQ(count(svg, ">no data<"), 4);
    CHECK_CONTAINS(svg, ">empty y<");
    CHECK(strstr(svg, "<title>") == NULL); /* no title given */
    free(svg);

    /* Beside a run with a few bad values, and a run with no rows. */
    pd_plot_series s3[3] = {
        {"empty y", all_nan, N}, {"some bad", some, N}, {"no rows", NULL, 0}};
    CHECK_OK(pd_plot_svg(at("nan3.svg"), "mixed", s3, 3, err, sizeof err));
    svg = slurp(at("nan3.svg"));
    check_valid_svg(svg);
    CHECK_INT_EQ(count(svg, "<polyline"), 4);
    CHECK_INT_EQ(polyline_points(svg, 0), N - 3); /* acc vs time: 2, 5, 7 */
    CHECK_INT_EQ(polyline_points(svg, 1), N - 2); /* acc vs step: 2, 5 */
    CHECK_INT_EQ(polyline_points(svg, 2), N - 2); /* loss vs time: 7, 8 */
    CHECK_INT_EQ(polyline_points(svg, 3), N - 1); /* loss vs step: 8 */
    CHECK_CONTAINS(svg, ">no rows<");
    CHECK_CONTAINS(svg, "(no rows yet)");
    free(svg);
    free(all_nan);
    free(some);
}

/* Constant values: the range is padded around them. */
static void test_constant(void) {
    enum { N = 5 };
    pd_metric_row *r = make_run(N, 1.0);
    for (int i = 0; i < N; i++) {
        r[i].test_acc = 0.85;
        r[i].test_loss = 0;
        r[i].time_s = 0; /* all at time 0 */
    }
    pd_plot_series s = {"flat", r, N};
    char err[256];
    CHECK_OK(pd_plot_svg(at("flat.svg"), "flat", &s, 1, err, sizeof err));
    char *svg = slurp(at("flat.svg"));
    check_valid_svg(svg);
    CHECK_INT_EQ(count(svg, "<polyline"), 4);
    CHECK_CONTAINS(svg, ">0.80</text>"); /* 0.85 padded to 0.80..0.90 */
    CHECK_CONTAINS(svg, ">0.90</text>");
    free(svg);
    free(r);
}

/* Long runs: large step counts get k/M tick labels that fit. */
static void test_large_ticks(void) {
    enum { N = 300 };
    pd_metric_row *r = make_run(N, 1.0);
    for (int i = 0; i < N; i++) {
        r[i].step = (int64_t)(i + 1) * 1563;
        r[i].time_s = (i + 1) * 11.3;
    }
    pd_plot_series s = {"long", r, N};
    char err[256];
    CHECK_OK(pd_plot_svg(at("long.svg"), "long", &s, 1, err, sizeof err));
    char *svg = slurp(at("long.svg"));
    check_valid_svg(svg);
    CHECK_CONTAINS(svg, ">100k</text>");
    CHECK_CONTAINS(svg, ">500k</text>");
    CHECK_CONTAINS(svg, ">4000</text>"); /* seconds stay plain below 1e4 */
    CHECK(strstr(svg, ">100000<") == NULL);
    /* At most about 30 markers per run and panel, not 300. */
    const char *d = strstr(svg, "<path fill=\"#1f77b4\" stroke=\"#fff\" "
                                "stroke-width=\"0.8\" d=\"M");
    CHECK(d != NULL);
    d = strstr(d + 1, "<path fill=\"#1f77b4\""); /* the first panel's */
    CHECK(d != NULL);
    const char *end = strstr(d, "/>");
    int markers = 0;
    for (const char *q = d; q < end; q++) markers += *q == 'M';
    CHECK(markers >= 25 && markers <= 32);
    free(svg);
    free(r);
}

/* Labels are text, not markup; bad UTF-8 cannot break the file. */
static void test_escaping(void) {
    pd_metric_row *r = make_run(3, 1.0);
    pd_plot_series s[2] = {{"a<b & \"c\"", r, 3},
                           {"bad \xFF\xC3 utf8 \xC3\xA9", r, 3}};
    char err[256];
    CHECK_OK(pd_plot_svg(at("esc.svg"), "<T>", s, 2, err, sizeof err));
    char *svg = slurp(at("esc.svg"));
    check_valid_svg(svg);
    CHECK_CONTAINS(svg, "a&lt;b &amp; &quot;c&quot;");
    CHECK_CONTAINS(svg, "bad ?? utf8 \xC3\xA9");
    CHECK_CONTAINS(svg, "&lt;T&gt;");
    free(svg);
    free(r);
}

/* Many runs: colours repeat with dashes, the legend wraps. */
static void test_many(void) {
    enum { R = 13 };
    pd_metric_row *r = make_run(8, 1.0);
    pd_plot_series s[R];
    char labels[R][32];
    for (int i = 0; i < R; i++) {
        snprintf(labels[i], sizeof labels[i], "run number %d", i);
        s[i].label = labels[i];
        s[i].rows = r;
        s[i].nrows = 8;
    }
    char err[256];
    CHECK_OK(pd_plot_svg(at("many.svg"), "many", s, R, err, sizeof err));
    char *svg = slurp(at("many.svg"));
    check_valid_svg(svg);
    CHECK_INT_EQ(count(svg, "<polyline"), R * 4);
    CHECK_INT_EQ(count(svg, "class=\"legend\""), R);
    CHECK_CONTAINS(svg, "stroke-dasharray");
    free(svg);
    free(r);
}

static void test_errors(void) {
    pd_metric_row *r = make_run(3, 1.0);
    pd_plot_series s = {"x", r, 3};
    char err[256];
    CHECK_INT_EQ(pd_plot_svg(at("nodir/p.svg"), "t", &s, 1, err, sizeof err),
                 -1);
    CHECK(strstr(err, "nodir/p.svg") != NULL);
    CHECK_INT_EQ(pd_plot_svg(at("zero.svg"), "t", &s, 0, err, sizeof err), -1);
    CHECK(access(at("zero.svg"), F_OK) != 0);
    free(r);
}

/* ==== Progress cases ==================================================== */

static double fake_now;
static double fake_clock(void *ctx) {
    (void)ctx;
    return fake_now;
}

static void test_eta_format(void) {
    char b[32];
    CHECK_STR_EQ(pd_progress_format_eta(0, b, sizeof b), "0:00:00");
    CHECK_STR_EQ(pd_progress_format_eta(83, b, sizeof b), "0:01:23");
    CHECK_STR_EQ(pd_progress_format_eta(3599.6, b, sizeof b), "1:00:00");
    CHECK_STR_EQ(pd_progress_format_eta(100000, b, sizeof b), "27:46:40");
    CHECK_STR_EQ(pd_progress_format_eta(NAN, b, sizeof b), "--:--:--");
    CHECK_STR_EQ(pd_progress_format_eta(INFINITY, b, sizeof b), "--:--:--");
    CHECK_STR_EQ(pd_progress_format_eta(-1, b, sizeof b), "--:--:--");
}

/* Not a terminal: whole lines, at the first step, every 10%, at the end;
 * never '\r'. */
static void test_progress_log(void) {
    FILE *f = tmpfile();
    CHECK(f != NULL);
    pd_progress *p = pd_progress_new(f, 100, 0);
    CHECK(p != NULL);
    pd_progress_set_clock(p, fake_clock, NULL);
    fake_now = 0;
    for (int s = 1; s <= 100; s++) {
        pd_progress_update(p, s, s / 50.0, 1.0 / s, 12345.0);
        if (s == 50) pd_progress_note(p, "eval: acc %.2f\n", 0.75);
        fake_now += 1.0 / 64; /* exact in binary: no rounding surprises */
    }
    pd_progress_finish(p);
    char *text = stream_text(f);
    fclose(f);
    CHECK(strchr(text, '\r') == NULL);
    /* step 1, 10, 20, ..., 100, and the note */
    CHECK_INT_EQ(count(text, "\n"), 11 + 1);
    CHECK_INT_EQ(count(text, "step "), 11);
    CHECK_STARTS(text, "step 1/100 (1%)  epoch 0.02  loss 1.0000  12.3k "
                       "samples/s  ETA --:--:--\n");
    CHECK_CONTAINS(text, "step 10/100 (10%)");
    CHECK_CONTAINS(text, "step 50/100 (50%)  epoch 1.00  loss 0.0200");
    CHECK_CONTAINS(text, "step 50/100 (50%)  epoch 1.00  loss 0.0200  12.3k "
                         "samples/s  ETA 0:00:01\neval: acc 0.75\n");
    CHECK(strlen(text) > 40);
    CHECK_CONTAINS(text, "step 100/100 (100%)");
    CHECK_CONTAINS(text, "ETA 0:00:00\n");
    free(text);

    /* By time only: total unknown, a line every 5 s. */
    f = tmpfile();
    CHECK(f != NULL);
    p = pd_progress_new(f, 0, 0);
    pd_progress_set_clock(p, fake_clock, NULL);
    pd_progress_set_log_every(p, 5.0, 0.1);
    fake_now = 100;
    for (int s = 1; s <= 20; s++) { /* one step per second, t = 100..119 */
        pd_progress_update(p, s, 0, NAN, NAN);
        fake_now += 1;
    }
    pd_progress_finish(p); /* step 20 not shown yet: shown now */
    text = stream_text(f);
    fclose(f);
    CHECK(strchr(text, '\r') == NULL);
    CHECK(strstr(text, "ETA") == NULL);
    CHECK(strstr(text, "/") == NULL || strstr(text, "samples/s") != NULL);
    /* t = 100 (first), 105, 110, 115, and the finish (step 20) */
    CHECK_INT_EQ(count(text, "\n"), 5);
    CHECK_STARTS(text, "step 1  epoch 0.00  loss -  - samples/s\n");
    CHECK_CONTAINS(text, "step 6  ");
    CHECK_CONTAINS(text, "step 20  ");
    free(text);
}

/* A terminal: one line redrawn with '\r', at most 10 times a second. */
static void test_progress_tty(void) {
    FILE *f = tmpfile();
    CHECK(f != NULL);
    pd_progress *p = pd_progress_new(f, 1000, 1);
    pd_progress_set_clock(p, fake_clock, NULL);
    fake_now = 0;
    /* 1000 steps over 1000/64 = 15.6 s: about 10 redraws a second. */
    for (int s = 1; s <= 1000; s++) {
        pd_progress_update(p, s, s / 100.0, 0.5, 6400.0);
        fake_now += 1.0 / 64;
    }
    char *text = stream_text(f);
    int redraws = count(text, "\r");
    CHECK(redraws >= 100 && redraws <= 160); /* not 1000 */
    CHECK(strchr(text, '\n') == NULL);       /* one line */
    CHECK_CONTAINS(text, "\r[====================] 1000/1000  ep 10.00  "
                         "loss 0.5000  6.4k samples/s  ETA 0:00:00");
    free(text);
    rewind(f);
    CHECK(ftruncate(fileno(f), 0) == 0);

    /* A note clears the bar, prints, and puts the bar back. */
    pd_progress_note(p, "eval: acc %.3f", 0.875);
    pd_progress_finish(p);
    text = stream_text(f);
    fclose(f);
    CHECK_STARTS(text, "\r      ");
    CHECK_CONTAINS(text, " \reval: acc 0.875\n\r[====");
    CHECK(text[strlen(text) - 1] == '\n'); /* finish ends the line */
    free(text);

    /* Half way: the bar is half full, ETA from the pace so far. */
    f = tmpfile();
    p = pd_progress_new(f, 100, 1);
    pd_progress_set_clock(p, fake_clock, NULL);
    fake_now = 10;
    pd_progress_update(p, 10, 0.1, 2.0, NAN);
    fake_now = 20; /* 10 steps in 10 s: 80 steps left = 80 s */
    pd_progress_update(p, 20, 0.2, 1.5, 950);
    fake_now = 60; /* 40 steps in 50 s: 50 left = 62.5 s */
    pd_progress_update(p, 50, 0.5, 1.0, 1.5e6);
    pd_progress_finish(p);
    text = stream_text(f);
    fclose(f);
    CHECK_CONTAINS(text, "\r[==>                 ] 10/100  ep 0.10  loss "
                         "2.0000  - samples/s  ETA --:--:--");
    CHECK_CONTAINS(text, "\r[====>               ] 20/100  ep 0.20  loss "
                         "1.5000  950 samples/s  ETA 0:01:20");
    CHECK_CONTAINS(text, "\r[==========>         ] 50/100  ep 0.50  loss "
                         "1.0000  1.50M samples/s  ETA 0:01:03\n");
    free(text);

    pd_progress_finish(NULL); /* harmless */
}

int main(void) {
    CHECK(mkdtemp(root) != NULL);
    test_two_runs();
    test_single_point();
    test_final();
    test_nan();
    test_constant();
    test_large_ticks();
    test_escaping();
    test_many();
    test_errors();
    const char *files[] = {"two.svg", "one.svg", "nan1.svg", "nan3.svg",
                           "flat.svg", "long.svg", "esc.svg", "many.svg"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(at(files[i]));
    rmdir(root);

    test_eta_format();
    test_progress_log();
    test_progress_tty();
    printf("test_plot: ok\n");
    return 0;
}
