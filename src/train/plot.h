/*
 * plot.h - one SVG picture that compares training runs.
 *
 * pd_plot_svg draws four panels in a 2x2 grid:
 *
 *     Test accuracy vs time    Test accuracy vs step
 *     Test loss vs time        Test loss vs step
 *
 * with one colour (and one marker shape) per run, the same in every panel,
 * and a legend under the title that names each run with its final test
 * accuracy.  Axes get "nice" ticks (1, 2 or 5 times a power of ten) with
 * labels and grid lines; the time and step axes start at 0.
 *
 * Input it survives, because real runs produce it: a run with one row (a
 * lone marker), NaN or infinite values (those points are skipped), a panel
 * where no run has a finite point ("no data"), a constant series (the range
 * is padded), a run with no rows at all (legend only).  Every coordinate
 * written is finite, so the file never holds "nan" or "inf".
 *
 * The SVG is plain text written here (no dependency), viewable in any
 * browser, and written atomically (temporary file + rename) so a viewer
 * that reloads on change never sees half a picture.
 *
 * Thread safety: pd_plot_svg shares no state; it is thread-safe.
 */
#ifndef PARAMD_TRAIN_PLOT_H
#define PARAMD_TRAIN_PLOT_H

#include <stddef.h>

#include "train/metrics.h"

/* One run: its legend label and its rows (borrowed, not copied). */
typedef struct pd_plot_series {
    const char *label;
    const pd_metric_row *rows;
    size_t nrows;
} pd_plot_series;

/* Largest number of series one picture takes (colours repeat after 10,
 * with dashes to tell them apart). */
#define PD_PLOT_MAX_SERIES 64

/*
 * Write the picture of `nseries` runs (1..PD_PLOT_MAX_SERIES) to out_path.
 * `title` may be NULL (no title line).  0 on success; -1 and a message in
 * err on failure, with out_path untouched.
 */
int pd_plot_svg(const char *out_path, const char *title,
                const pd_plot_series *series, size_t nseries, char *err,
                size_t errlen);

#endif
