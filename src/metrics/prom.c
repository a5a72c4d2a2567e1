/*
 * prom.c - the Prometheus text format and lock-free histograms (prom.h).
 */
#include "metrics/prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ==== Histograms ======================================================== */

void pd_hist_init(pd_hist *h, const double *le, int nb) {
    memset(h, 0, sizeof *h);
    if (nb > PD_HIST_MAX_BUCKETS) nb = PD_HIST_MAX_BUCKETS;
    h->nb = nb;
    memcpy(h->le, le, (size_t)nb * sizeof *le);
}

void pd_hist_init_latency(pd_hist *h) {
    static const double le[] = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3,
                                10e-3, 25e-3,  50e-3,  100e-3, 250e-3, 500e-3, 1,
                                2.5,   5,      10};
    pd_hist_init(h, le, (int)(sizeof le / sizeof le[0]));
}

void pd_hist_init_clocks(pd_hist *h) {
    static const double le[] = {0, 1, 2, 4, 8, 16, 32, 64, 128, 256};
    pd_hist_init(h, le, (int)(sizeof le / sizeof le[0]));
}

void pd_hist_observe(pd_hist *h, double v) {
    int i = 0;
    while (i < h->nb && v > h->le[i]) i++;
    __atomic_add_fetch(&h->n[i], 1, __ATOMIC_RELAXED);
    /* a double has no atomic add: compare-and-swap its bits */
    double cur, want;
    __atomic_load(&h->sum, &cur, __ATOMIC_RELAXED);
    do {
        want = cur + v;
    } while (!__atomic_compare_exchange(&h->sum, &cur, &want, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED));
    __atomic_add_fetch(&h->count, 1, __ATOMIC_RELAXED);
}

/* ==== Writing =========================================================== */

static void put_text(pd_buf *b, const char *s) { pd_put_bytes(b, s, strlen(s)); }

static void put_fmt(pd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(pd_buf *b, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0) pd_put_bytes(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void pd_prom_family(pd_buf *b, const char *name, int type, const char *help) {
    static const char *const types[] = {"counter", "gauge", "histogram"};
    put_fmt(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, types[type]);
}

/* A float as Prometheus reads it: integers exactly, others with 17
 * significant digits, and NaN / infinities by name. */
static void fmt_value(char *out, size_t len, double v) {
    if (isnan(v)) snprintf(out, len, "NaN");
    else if (isinf(v)) snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9e15) snprintf(out, len, "%.0f", v);
    else snprintf(out, len, "%.17g", v);
}

void pd_prom_sample(pd_buf *b, const char *name, const char *labels, double v) {
    char val[64];
    fmt_value(val, sizeof val, v);
    if (labels && *labels) put_fmt(b, "%s{%s} %s\n", name, labels, val);
    else put_fmt(b, "%s %s\n", name, val);
}

void pd_prom_sample_u64(pd_buf *b, const char *name, const char *labels, uint64_t v) {
    if (labels && *labels) put_fmt(b, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
    else put_fmt(b, "%s %llu\n", name, (unsigned long long)v);
}

void pd_prom_hist(pd_buf *b, const char *name, const char *labels, const pd_hist *h) {
    uint64_t cum = 0;
    const char *sep = labels && *labels ? "," : "";
    for (int i = 0; i <= h->nb; i++) {
        cum += __atomic_load_n(&h->n[i], __ATOMIC_RELAXED);
        char le[64];
        if (i == h->nb) snprintf(le, sizeof le, "+Inf");
        else snprintf(le, sizeof le, "%.10g", h->le[i]); /* "5e-05", not 17 digits */
        put_fmt(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels ? labels : "", sep, le,
                (unsigned long long)cum);
    }
    double sum;
    __atomic_load(&h->sum, &sum, __ATOMIC_RELAXED);
    char val[64];
    fmt_value(val, sizeof val, sum);
    if (labels && *labels) {
        put_fmt(b, "%s_sum{%s} %s\n", name, labels, val);
        put_fmt(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
    } else {
        put_fmt(b, "%s_sum %s\n", name, val);
        put_fmt(b, "%s_count %llu\n", name, (unsigned long long)cum);
    }
    (void)put_text;
}

void pd_prom_label(char *labels, size_t len, const char *key, const char *value) {
    size_t o = strlen(labels);
    int n = snprintf(labels + o, len - o, "%s%s=\"", o ? "," : "", key);
    if (n < 0 || (size_t)n >= len - o) return;
    o += (size_t)n;
    for (const char *p = value; *p && o + 4 < len; p++) {
        if (*p == '\\' || *p == '"') labels[o++] = '\\', labels[o++] = *p;
        else if (*p == '\n') labels[o++] = '\\', labels[o++] = 'n';
        else labels[o++] = *p;
    }
    if (o + 1 < len) labels[o++] = '"';
    labels[o] = '\0';
}
