/*
 * bench_stats.h - the small statistics the benchmark programs share.
 *
 * Benchmarks here repeat a measurement in rounds and report an order
 * statistic of the rounds (a median, a quartile) rather than a mean: on a
 * shared machine one round in several is disturbed by another process, and
 * an order statistic ignores it where a mean would not.  Static inline so
 * that each bench stays one .c file built as a program of its own
 * (CMakeLists.txt builds every .c file in bench/ so); no state.
 */
#ifndef PARAMD_BENCH_STATS_H
#define PARAMD_BENCH_STATS_H

#include <stddef.h>
#include <stdlib.h>

/* qsort comparator for doubles, ascending (no subtraction: no overflow,
 * no rounding to 0 of a tiny difference). */
static inline int bench_cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v[0..n) ascending, in place. */
static inline void bench_sort(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmpd);
}

/* The median of v[0..n), n >= 1: the middle value, or the mean of the two
 * middle ones when n is even.  Sorts v in place. */
static inline double bench_median(double *v, int n) {
    bench_sort(v, n);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
