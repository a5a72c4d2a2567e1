/*
 * common.c - errors, logging, time, allocation and parsing helpers (see
 * common.h).
 *
 * The error strings come from the single X-macro list in paramd.h, so a
 * code and its text can never drift apart.
 *
 * Log lines are "TIME NAME: LEVEL: message": TIME in RFC 3339 with
 * milliseconds, in UTC ("2025-03-01T12:00:05.123Z": sortable, and the same
 * on every host of a cluster whatever their time zones), NAME the role and
 * rank ("server 1", "worker 3", "coordinator").
 */
#include "common/common.h"

#include <sched.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ==== Version and error names ========================================== */

uint32_t paramd_version(void) { return PARAMD_VERSION_HEX; }

const char *paramd_version_string(void) {
#define PD_STR2_(x) #x
#define PD_STR_(x) PD_STR2_(x)
    return PD_STR_(PARAMD_VERSION_MAJOR) "." PD_STR_(
        PARAMD_VERSION_MINOR) "." PD_STR_(PARAMD_VERSION_PATCH);
}

const char *paramd_strerror(int err) {
    if (err == 0) return "success";
    switch (err) {
#define PD_X_(name, code, msg)                                                 \
    case code: return msg;
        PARAMD_ERRNO_MAP(PD_X_)
#undef PD_X_
    }
    return "unknown error";
}

const char *paramd_err_name(int err) {
    if (err == 0) return "PARAMD_OK";
    switch (err) {
#define PD_X_(name, code, msg)                                                 \
    case code: return "PARAMD_" #name;
        PARAMD_ERRNO_MAP(PD_X_)
#undef PD_X_
    }
    return "PARAMD_UNKNOWN";
}

int pd_seterr(pd_err *e, int code, const char *fmt, ...) {
    if (!e) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* ==== Logging =========================================================== */

/* Written by main() before any thread starts; read-only afterwards. */
static int log_level = PD_LOG_INFO;
static char log_name[64] = "paramd";

static const char *const log_names[] = {"error", "warning", "info", "debug"};

void pd_log_set_level(int level) { log_level = level; }
int pd_log_level(void) { return log_level; }
void pd_log_set_name(const char *name) {
    snprintf(log_name, sizeof log_name, "%s", name);
}

int pd_log_parse_level(const char *s) {
    /* "warn" is the spelling paramd always took; "warning" is what lines say */
    static const char *const extra[] = {"warn", NULL};
    if (!s) return -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, log_names[i])) return i;
    if (!strcmp(s, extra[0])) return PD_LOG_WARN;
    return -1;
}

int pd_log_stamp(char *out, size_t len) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    return snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    ts.tv_nsec / 1000000);
}

void pd_log(int level, const char *fmt, ...) {
    if (level > log_level) return;
    char line[1024];
    int off = pd_log_stamp(line, 40);
    off += snprintf(line + off, sizeof line - (size_t)off, " %s: %s: ", log_name,
                    log_names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + off, sizeof line - (size_t)off - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)off + (n < 0 ? 0 : (size_t)n);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len); /* one write: lines never interleave */
    (void)w;
}

/* ==== Time ============================================================== */

#define PD_YIELD_LOST_NS 200000 /* a yield this long lost the CPU */
#define PD_YIELD_SKIP_WAITS 1000 /* waits without yielding after that */

static __thread uint32_t yield_skip; /* waits of this thread left without yielding */

int pd_yield_ok(void) {
    if (yield_skip == 0) return 1;
    yield_skip--;
    return 0;
}

int pd_yield(void) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    sched_yield();
    clock_gettime(CLOCK_MONOTONIC, &b);
    int64_t ns = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
    if (ns <= PD_YIELD_LOST_NS) return 0;
    yield_skip = PD_YIELD_SKIP_WAITS;
    return -1;
}

double pd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t pd_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pd_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (ms > 0 ? ms % 1000 : 0) * 1000000;
    ts.tv_sec += (time_t)((ms > 0 ? ms / 1000 : 0) + ns / 1000000000);
    ts.tv_nsec = ns % 1000000000;
    pthread_cond_timedwait(cv, mu, &ts);
}

/* ==== Allocation ======================================================== */

/* Test hook only; tests set it from their single main thread. */
static long alloc_fail_countdown = 0;

static int alloc_should_fail(void) {
    if (alloc_fail_countdown <= 0) return 0;
    return --alloc_fail_countdown == 0;
}

void pd_alloc_fail_after(long k) { alloc_fail_countdown = k; }
void *pd_malloc(size_t n) { return alloc_should_fail() ? NULL : malloc(n ? n : 1); }
void *pd_calloc(size_t c, size_t s) {
    return alloc_should_fail() ? NULL : calloc(c ? c : 1, s ? s : 1);
}
void *pd_realloc(void *p, size_t n) {
    return alloc_should_fail() ? NULL : realloc(p, n ? n : 1);
}
void pd_free(void *p) { free(p); }
char *pd_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = pd_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void pd_advise_hugepages(void *p, size_t n) {
    if (n < (8u << 20)) return;
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
    uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)4095;
    if (b > a) madvise((void *)a, b - a, MADV_HUGEPAGE); /* a hint: ignore errors */
}

/* ==== Parsing =========================================================== */

int pd_parse_hostport(const char *s, char *host, size_t hostlen,
                      uint16_t *port) {
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':') return -1;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return -1;
        hl = (size_t)(colon - s);
    }
    if (hl >= hostlen) return -1;
    int64_t p;
    if (pd_parse_i64(colon + 1, &p) != 0 || p < 0 || p > 65535) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int pd_parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int pd_parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int pd_parse_double(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

const char *pd_env_first(const char *const *names) {
    for (; *names; names++) {
        const char *v = getenv(*names);
        if (v && *v) return v;
    }
    return NULL;
}
