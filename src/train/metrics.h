/*
 * metrics.h - what a training run leaves in its run directory, and how it is
 * read back.
 *
 * `paramd train --out DIR` writes two files into DIR:
 *
 *   metrics.csv   one row per evaluation, appended (and flushed) as the run
 *                 goes, so that a run can be plotted while it trains and a
 *                 crashed run keeps every row it reached.  The first line is
 *                 exactly PD_METRICS_HEADER; each later line has the nine
 *                 fields of pd_metric_row in that order, comma-separated.
 *                 worker_step counts the steps of one worker (what the
 *                 progress line shows; all workers together took W times
 *                 as many); test_images is how many test images the
 *                 evaluation used; final is 1 on the run's last row, the
 *                 evaluation of the final weights on the whole test set
 *                 (the others use the first --eval-samples images), which
 *                 plots draw apart.  A file with the header of earlier
 *                 versions (PD_METRICS_HEADER_V1: seven fields, its step
 *                 counting all workers together) is still read: its
 *                 test_images are 0 and its last row is the final one.
 *                 Integers are printed in decimal, doubles with 9
 *                 significant digits (%.9g: every float value survives the
 *                 round trip exactly; a double comes back to within
 *                 5e-9 relative).  A value
 *                 that does not exist (no train loss yet, an evaluation that
 *                 was skipped) is written "nan".
 *   run.json      one JSON object describing the run (model, consistency,
 *                 workers, servers, batch, lr, epochs, seed, and the final
 *                 summary), written once at the end and atomically: a
 *                 reader sees the old file or the new one, never a half.
 *
 * The writer (pd_metrics_*) is used by the training loop; the reader
 * (pd_metrics_read) by `paramd plot`.  The reader checks the header, parses
 * every line strictly (a malformed line is an error that names file:line,
 * never a silently skipped row), accepts a last line without its newline,
 * CRLF line ends and an "nan" or empty field for a double.
 *
 * The run's label, used in plot legends, comes from run.json: its top-level
 * "label" string if there is one, else "MODEL CONSISTENCY W=WORKERS" built
 * from whichever of those fields exist, else the run directory's name.  A
 * missing or malformed run.json is not an error for the reader: a run that
 * is still training has none yet.  The JSON reading is a small scanner of
 * the top-level object (strings with every escape, nested values skipped),
 * not a general parser: nothing else here needs one.
 *
 * Numbers are printed and parsed with the C library in the "C" locale,
 * which is what the paramd program runs in (it never calls setlocale).
 *
 * Thread safety: a pd_metrics writer belongs to one thread at a time; the
 * other functions share no state and are thread-safe.
 */
#ifndef PARAMD_TRAIN_METRICS_H
#define PARAMD_TRAIN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define PD_METRICS_FILE "metrics.csv"
#define PD_RUN_JSON_FILE "run.json"
#define PD_METRICS_HEADER                                                      \
    "time_s,worker_step,epoch,samples,train_loss,test_loss,test_acc,test_images,final"
#define PD_METRICS_HEADER_V1                                                   \
    "time_s,step,epoch,samples,train_loss,test_loss,test_acc"

/* One evaluation of a run. */
typedef struct pd_metric_row {
    double time_s;     /* wall time since the run started, seconds */
    int64_t step;      /* steps one worker took so far (a V1 file: all
                        * workers together) */
    double epoch;      /* passes over the training set, fractional */
    int64_t samples;   /* training samples consumed so far (all workers) */
    double train_loss; /* mean training loss since the previous row */
    double test_loss;  /* mean loss on the test set */
    double test_acc;   /* fraction of the test set classified right, 0..1 */
    int64_t test_images; /* test images evaluated (0: not recorded) */
    int final;         /* 1: the final evaluation, on the whole test set */
} pd_metric_row;

/* ==== Writer ============================================================ */

typedef struct pd_metrics pd_metrics;

/*
 * Create `run_dir` (and its parents, like mkdir -p) if needed, then create
 * run_dir/metrics.csv, replacing any file of that name, holding the header
 * line.  0 and *out set on success; -1, *out NULL and a message in err on
 * failure.
 */
int pd_metrics_open(pd_metrics **out, const char *run_dir, char *err,
                    size_t errlen);

/*
 * Go on with the run_dir/metrics.csv another process wrote (paramd train:
 * a worker 0 that replaces a lost one, another worker writing the end for
 * it, a cluster restarted from its checkpoint).  The rows up to step upto
 * (not a final row) are kept, the others removed (INT64_MAX: every row but
 * a final one): when rows go, the kept ones are written to a new file that
 * replaces the old one atomically (as run.json is written, below): a
 * crash leaves the old file or the new one, whole (and perhaps a stray
 * .metrics.csv.XXXXXX beside it); a failure leaves the old one and no
 * temporary file.  A last line without its newline (its writer died inside
 * the line) is cut off in place; a missing, empty or unreadable file is
 * started again with the header, as pd_metrics_open does.  *elapsed: the run's
 * time so far (its last row's time plus the time since the file was last
 * written; 0 without rows), for the rows that follow; *last_step: the
 * step of the last row kept (-1: none).  0 and *out set, or -1 and err.
 */
int pd_metrics_reopen(pd_metrics **out, const char *run_dir, int64_t upto, double *elapsed,
                      int64_t *last_step, char *err, size_t errlen);

/* Append one row as one line, with one write(2).  0 on success, -1 on a
 * write error (pd_metrics_last_error says which, naming the step and the
 * file): the file then ends with the last whole row (a part written before
 * the error is cut off), and later appends fail at once.  The caller
 * should say so at once: a run that goes on loses every later row. */
int pd_metrics_append(pd_metrics *m, const pd_metric_row *r);

/* The message of the last failed pd_metrics_append; "" if none. */
const char *pd_metrics_last_error(const pd_metrics *m);

/* Close the file.  NULL is harmless. */
void pd_metrics_close(pd_metrics *m);

/*
 * Write `json_object_text` (one JSON object; a newline is added if it has
 * none) to run_dir/run.json atomically: into a temporary file in run_dir,
 * flushed to disk, renamed over run.json, then run_dir flushed to disk
 * (the rename with it).  Creates run_dir like
 * pd_metrics_open.  The text is not validated beyond starting with '{'.
 * 0 on success; -1 and a message in err on failure (naming the file and
 * what failed), with run.json as it was and no temporary file left behind
 * (only a failed flush of run_dir comes after the rename).
 */
int pd_metrics_write_run_json(const char *run_dir, const char *json_object_text,
                              char *err, size_t errlen);

/* The end of a training run's output, the same for every model: close
 * *m (and set it to NULL), write run.json as above, and print where the
 * metrics and run.json are.  0, or -1 with the reason in err. */
int pd_metrics_finish_run(pd_metrics **m, const char *run_dir,
                          const char *json_object_text, char *err, size_t errlen);

/* ==== Reader ============================================================ */

/*
 * Read run_dir/metrics.csv into a new array *rows of *nrows rows (the
 * caller frees it with free(); a header-only file gives *nrows == 0 and
 * *rows NULL) and the run's label into label[0..labellen) (always
 * NUL-terminated; truncated at a UTF-8 character boundary if long).
 * 0 on success; -1 and a message in err on failure ("runs/a/metrics.csv:7:
 * expected 7 fields, found 5"), with *rows NULL and *nrows 0.
 */
int pd_metrics_read(const char *run_dir, pd_metric_row **rows, size_t *nrows,
                    char *label, size_t labellen, char *err, size_t errlen);

/*
 * The label rule above, applied to a run.json text (NULL: no run.json) and
 * a run directory (for the fallback).  Exposed for tests and for callers
 * that already hold the text.
 */
void pd_metrics_label(const char *run_json, const char *run_dir, char *label,
                      size_t labellen);

/*
 * Find the top-level field `key` of the JSON object `json`.  Returns 1 if it
 * is a string (decoded into out, escapes resolved, truncated to fit), 2 if
 * it is another scalar (its text copied: "4", "0.01", "true", "null"), 3 if
 * it is an object or array (out set to ""), 0 if the object has no such
 * field, -1 if the text is not a JSON object up to that field.
 */
int pd_json_top_field(const char *json, const char *key, char *out,
                      size_t outlen);

#endif
