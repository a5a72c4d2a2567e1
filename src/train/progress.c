/*
 * progress.c - the training progress reporter (see progress.h).
 *
 * Design: update() only stores the newest state and asks "is it time to
 * show it?"; showing is a separate step (draw_tty or log_line) so that
 * note() and finish() can show the stored state again whatever the rate
 * limit.  The clock is a function pointer so tests need no sleeps.
 *
 * On a terminal the line is redrawn as '\r' + text + enough spaces to
 * cover the previous, longer text: no escape sequences, so it behaves the
 * same on any terminal (and in Emacs' shell).  The line is kept under 100
 * columns.
 */
#include "train/progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ==== Constants ========================================================= */

enum {
    BAR_WIDTH = 20,
    LINE_MAX = 160,
    NOTE_MAX = 1024,
};

/* ==== Types ============================================================= */

struct pd_progress {
    FILE *out; /* borrowed */
    int64_t total;
    int tty;
    double every_s, every_frac; /* non-terminal mode only */
    double (*now)(void *ctx);
    void *ctx;

    int started;        /* an update has been seen */
    double t_first;     /* clock at the first update */
    int64_t step_first; /* its step: the ETA pace counts from here */

    /* The newest state, and whether it is on the screen / in the log. */
    int64_t step;
    double epoch, loss, sps;
    int shown;

    double last_show;    /* clock when something was last shown */
    int64_t last_bucket; /* non-tty: last fraction bucket logged */
    int64_t last_step_shown; /* step of the last state shown, or -1 */
    size_t last_len;     /* tty: length of the line on screen, 0 if none */
};

/* ==== Helpers =========================================================== */

static double monotonic_now(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 18.2k, 950, 1.25M, or "-" if unknown. */
static void fmt_rate(char *buf, size_t len, double v) {
    if (!isfinite(v) || v < 0) snprintf(buf, len, "-");
    else if (v < 1e3) snprintf(buf, len, "%.0f", v);
    else if (v < 1e6) snprintf(buf, len, "%.1fk", v / 1e3);
    else snprintf(buf, len, "%.2fM", v / 1e6);
}

static void fmt_loss(char *buf, size_t len, double v) {
    if (isnan(v)) snprintf(buf, len, "-");
    else snprintf(buf, len, "%.4f", v);
}

/* printf at buf[*n], keeping buf NUL-terminated and *n its length. */
__attribute__((format(printf, 4, 5))) static void
appendf(char *buf, size_t len, size_t *n, const char *fmt, ...) {
    if (*n + 1 >= len) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *n, len - *n, fmt, ap);
    va_end(ap);
    if (w > 0) *n += (size_t)w < len - *n ? (size_t)w : len - *n - 1;
}

/* Seconds left at the pace since the first update, or NAN. */
static double eta_seconds(const pd_progress *p, double now) {
    int64_t done = p->step - p->step_first;
    if (p->total <= 0 || done <= 0 || now <= p->t_first) return NAN;
    int64_t left = p->total - p->step;
    if (left <= 0) return 0;
    return (now - p->t_first) / (double)done * (double)left;
}

/* The status text of the stored state, without '\r' or '\n'. */
static void format_status(const pd_progress *p, double now, char *buf,
                          size_t len) {
    char loss[32], rate[32], eta[32];
    fmt_loss(loss, sizeof loss, p->loss);
    fmt_rate(rate, sizeof rate, p->sps);
    pd_progress_format_eta(eta_seconds(p, now), eta, sizeof eta);
    size_t n = 0;
    buf[0] = '\0';
    double frac = p->total > 0 ? (double)p->step / (double)p->total : 0;
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    if (p->tty) {
        if (p->total > 0) {
            char bar[BAR_WIDTH + 1];
            int fill = (int)(frac * BAR_WIDTH);
            for (int i = 0; i < BAR_WIDTH; i++)
                bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
            if (fill >= BAR_WIDTH) bar[BAR_WIDTH - 1] = '=';
            bar[BAR_WIDTH] = '\0';
            appendf(buf, len, &n, "[%s] %lld/%lld", bar, (long long)p->step,
                    (long long)p->total);
        } else {
            appendf(buf, len, &n, "step %lld", (long long)p->step);
        }
        appendf(buf, len, &n, "  ep %.2f", p->epoch);
    } else {
        if (p->total > 0)
            appendf(buf, len, &n, "step %lld/%lld (%d%%)", (long long)p->step,
                    (long long)p->total, (int)(frac * 100));
        else
            appendf(buf, len, &n, "step %lld", (long long)p->step);
        appendf(buf, len, &n, "  epoch %.2f", p->epoch);
    }
    appendf(buf, len, &n, "  loss %s  %s samples/s", loss, rate);
    if (p->total > 0) appendf(buf, len, &n, "  ETA %s", eta);
}

/* Terminal: redraw the status line in place. */
static void draw_tty(pd_progress *p, double now) {
    char line[LINE_MAX];
    format_status(p, now, line, sizeof line);
    size_t n = strlen(line);
    fputc('\r', p->out);
    fputs(line, p->out);
    for (size_t i = n; i < p->last_len; i++) fputc(' ', p->out);
    fflush(p->out);
    p->last_len = n;
    p->shown = 1;
    p->last_show = now;
    p->last_step_shown = p->step;
}

/* Not a terminal: one log line. */
static void log_line(pd_progress *p, double now) {
    char line[LINE_MAX];
    format_status(p, now, line, sizeof line);
    fprintf(p->out, "%s\n", line);
    fflush(p->out);
    p->shown = 1;
    p->last_show = now;
    p->last_step_shown = p->step;
}

/* The fraction bucket a step falls in (non-terminal logging), or -1 when
 * logging by fraction is off. */
static int64_t bucket_of(const pd_progress *p, int64_t step) {
    if (p->total <= 0 || !(p->every_frac > 0)) return -1;
    double per = p->every_frac * (double)p->total;
    if (per < 1) per = 1;
    return (int64_t)floor((double)step / per);
}

/* ==== Public ============================================================ */

pd_progress *pd_progress_new(FILE *out, int64_t total_steps, int is_tty) {
    pd_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->out = out;
    p->total = total_steps;
    p->tty = is_tty != 0;
    p->every_s = PD_PROGRESS_LOG_EVERY_S;
    p->every_frac = PD_PROGRESS_LOG_EVERY_FRAC;
    p->now = monotonic_now;
    p->loss = NAN;
    p->sps = NAN;
    p->last_bucket = -1;
    p->last_step_shown = -1;
    return p;
}

void pd_progress_set_log_every(pd_progress *p, double seconds,
                               double fraction) {
    p->every_s = seconds;
    p->every_frac = fraction;
}

void pd_progress_set_clock(pd_progress *p, double (*now)(void *ctx),
                           void *ctx) {
    p->now = now ? now : monotonic_now;
    p->ctx = now ? ctx : NULL;
}

void pd_progress_update(pd_progress *p, int64_t step, double epoch,
                        double loss, double samples_per_s) {
    double now = p->now(p->ctx);
    int first = !p->started;
    if (first) {
        p->started = 1;
        p->t_first = now;
        p->step_first = step;
    }
    p->step = step;
    p->epoch = epoch;
    p->loss = loss;
    p->sps = samples_per_s;
    p->shown = 0;
    /* The last step is always shown, once. */
    int last = p->total > 0 && step >= p->total && step != p->last_step_shown;

    if (p->tty) {
        if (first || last || now - p->last_show >= 1.0 / PD_PROGRESS_TTY_HZ)
            draw_tty(p, now);
        return;
    }
    int64_t b = bucket_of(p, step);
    int due = first || last || (b > p->last_bucket && b >= 0) ||
              (p->every_s > 0 && now - p->last_show >= p->every_s);
    if (due) {
        log_line(p, now);
        if (b > p->last_bucket) p->last_bucket = b;
    }
}

void pd_progress_note(pd_progress *p, const char *fmt, ...) {
    char msg[NOTE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';

    if (p->tty && p->last_len > 0) {
        /* Wipe the status line, print the note, put the status back under
         * it so the bar stays at the bottom. */
        fputc('\r', p->out);
        for (size_t i = 0; i < p->last_len; i++) fputc(' ', p->out);
        fputc('\r', p->out);
        fprintf(p->out, "%s\n", msg);
        p->last_len = 0;
        draw_tty(p, p->now(p->ctx));
        return;
    }
    fprintf(p->out, "%s\n", msg);
    fflush(p->out);
}

void pd_progress_finish(pd_progress *p) {
    if (!p) return;
    if (p->started && !p->shown) {
        double now = p->now(p->ctx);
        if (p->tty) draw_tty(p, now);
        else log_line(p, now);
    }
    if (p->tty && p->last_len > 0) {
        fputc('\n', p->out);
        fflush(p->out);
    }
    free(p);
}

char *pd_progress_format_eta(double seconds, char *buf, size_t len) {
    if (!isfinite(seconds) || seconds < 0 || seconds >= 9999.0 * 3600) {
        snprintf(buf, len, "--:--:--");
        return buf;
    }
    long long s = (long long)(seconds + 0.5);
    snprintf(buf, len, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
    return buf;
}
