/*
 * prom.h - metrics in the Prometheus text exposition format (version
 * 0.0.4, what every Prometheus server scrapes), and the lock-free
 * histograms the roles count latencies and staleness in.
 *
 * Design.  The roles (server, coordinator) count as they work: plain
 * atomic counters in their own structures, and pd_hist for distributions.
 * Nothing is formatted until a scrape: the endpoint (http.h) calls the
 * role's render function, which reads its counters and writes each family
 * with pd_prom_family and pd_prom_* into a pd_buf.  So counting costs a
 * few relaxed atomic adds per request and nothing else; a scrape costs
 * its own thread's time and a short look under the locks the render
 * function takes (never held while the reply is sent).
 *
 * Format rules kept here (promtool check metrics checks them): every
 * family has one HELP and one TYPE line before its samples, and its
 * samples are contiguous; names match [a-zA-Z_:][a-zA-Z0-9_:]*, label
 * values are escaped (\\, \", \n); counters end in _total; histograms
 * have cumulative _bucket{le=...} series ending in le="+Inf" equal to
 * _count, and a _sum.  Units are base units (seconds, bytes).
 */
#ifndef PARAMD_METRICS_PROM_H
#define PARAMD_METRICS_PROM_H

#include <stdint.h>

#include "common/bytes.h"

/* ==== Histograms ========================================================
 * Fixed upper bounds chosen by the owner; counts per bucket (not
 * cumulative: each observation adds to one bucket), the sum and the count,
 * all relaxed atomics: any thread may observe, a scrape reads them with
 * no lock (a scrape may see an observation's bucket without its sum for a
 * moment, which Prometheus tolerates). */
#define PD_HIST_MAX_BUCKETS 24
typedef struct pd_hist {
    int nb;                            /* upper bounds in `le` */
    double le[PD_HIST_MAX_BUCKETS];    /* increasing; +Inf is implicit */
    uint64_t n[PD_HIST_MAX_BUCKETS + 1]; /* per bucket, the last is +Inf */
    double sum;                        /* guarded by nothing: atomics */
    uint64_t count;
} pd_hist;

/* nb bounds (<= PD_HIST_MAX_BUCKETS), increasing. */
void pd_hist_init(pd_hist *h, const double *le, int nb);
/* Bounds for request latencies in seconds: 50 us .. 10 s, and for clocks
 * of staleness: 0, 1, 2, 4, ... 256. */
void pd_hist_init_latency(pd_hist *h);
void pd_hist_init_clocks(pd_hist *h);
/* Thread-safe, lock-free. */
void pd_hist_observe(pd_hist *h, double v);

/* ==== Writing =========================================================== */

enum { PD_PROM_COUNTER, PD_PROM_GAUGE, PD_PROM_HISTOGRAM };

/* HELP and TYPE of family `name` (help: one line, no backslashes). */
void pd_prom_family(pd_buf *b, const char *name, int type, const char *help);
/* One sample: name{labels} value.  labels is "" or already formatted
 * ('table="model",id="1"': pd_prom_label builds them). */
void pd_prom_sample(pd_buf *b, const char *name, const char *labels, double v);
void pd_prom_sample_u64(pd_buf *b, const char *name, const char *labels, uint64_t v);
/* A histogram's samples (_bucket with le, _sum, _count), with labels. */
void pd_prom_hist(pd_buf *b, const char *name, const char *labels, const pd_hist *h);
/* Append key="value" (value escaped) to labels[0..len), with a comma if
 * labels is not empty. */
void pd_prom_label(char *labels, size_t len, const char *key, const char *value);

#endif
