/*
 * progress.h - the training progress reporter: one redrawn line on a
 * terminal, occasional plain log lines anywhere else.
 *
 * On a terminal (is_tty != 0) every update may redraw one status line in
 * place with '\r':
 *
 *   [=========>          ] 4500/10000  ep 2.40  loss 0.4123  18.2k samples/s  ETA 0:01:23
 *
 * at most PD_PROGRESS_TTY_HZ times a second (rate-limited by a monotonic
 * clock, so a fast loop costs one clock read per step and the terminal is
 * not flooded).  Anywhere else (a log file, a pipe, CI) '\r' would make a
 * mess, so it prints whole lines, never '\r':
 *
 *   step 4500/10000 (45%)  epoch 2.40  loss 0.4123  18.2k samples/s  ETA 0:01:23
 *
 * at the first update, then whenever `log_every_s` seconds have passed or
 * the run has crossed another `log_every_frac` of total_steps (defaults 30 s
 * and 10%; pd_progress_set_log_every changes them), and at the last step.
 *
 * ETA is the time left at the average pace since the first update
 * (elapsed / steps done * steps left), shown as h:mm:ss; "--:--:--" until
 * there is a pace to go by.  total_steps <= 0 means unknown: no bar, no
 * percentage, no ETA.
 *
 * pd_progress_note prints a line of its own (an evaluation result, a
 * warning) without tearing the status line: on a terminal it clears the
 * line, prints the note, and redraws the status line under it.
 *
 * Thread safety: a reporter belongs to one thread (the training loop); it
 * is not thread-safe.  Reporters share nothing, so several may coexist.
 */
#ifndef PARAMD_TRAIN_PROGRESS_H
#define PARAMD_TRAIN_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#define PD_PROGRESS_TTY_HZ 10
#define PD_PROGRESS_LOG_EVERY_S 30.0
#define PD_PROGRESS_LOG_EVERY_FRAC 0.10

typedef struct pd_progress pd_progress;

/* A reporter writing to `out` (borrowed; not closed) for a run of
 * total_steps steps.  is_tty selects the mode; a caller usually passes
 * isatty(fileno(out)).  NULL when out of memory. */
pd_progress *pd_progress_new(FILE *out, int64_t total_steps, int is_tty);

/* Non-terminal mode: log every `seconds` (<= 0: never by time) and every
 * `fraction` of total_steps (<= 0: never by fraction). */
void pd_progress_set_log_every(pd_progress *p, double seconds, double fraction);

/* Replace the clock (seconds, monotonic) with now(ctx): tests drive time
 * by hand.  now NULL restores the monotonic clock. */
void pd_progress_set_clock(pd_progress *p, double (*now)(void *ctx),
                           void *ctx);

/* Report the state after `step` steps (1-based count of steps done).
 * loss or samples_per_s may be NaN (not known yet: shown as "-"). */
void pd_progress_update(pd_progress *p, int64_t step, double epoch,
                        double loss, double samples_per_s);

/* Print one line of text (no newline needed) without tearing the status
 * line. */
void pd_progress_note(pd_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Show the last state once more (whatever the rate limit), end the status
 * line, and free the reporter.  NULL is harmless. */
void pd_progress_finish(pd_progress *p);

/* seconds as h:mm:ss ("0:01:23", "27:46:40"); "--:--:--" if negative, not
 * finite or beyond 9999 hours.  Returns buf. */
char *pd_progress_format_eta(double seconds, char *buf, size_t len);

#endif
