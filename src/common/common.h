/*
 * common.h - small pieces every part of paramd uses: error codes with a
 * detail message, logging, monotonic time, checked allocation, and parsing
 * of addresses and numbers.
 *
 * Nothing here keeps global state except the log level, which is set once by
 * a program's main() before threads start and only read afterwards.
 */
#ifndef PARAMD_COMMON_H
#define PARAMD_COMMON_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "paramd.h"

/* ==== Errors with a detail message ===================================== */

#define PD_ERRMSG_MAX 512

/* An error code plus its detail; functions that can fail in several ways
 * fill one of these and return the code. */
typedef struct pd_err {
    int code;
    char msg[PD_ERRMSG_MAX];
} pd_err;

/* Set e (if not NULL) to code and a printf-style detail; returns code. */
int pd_seterr(pd_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ==== Logging =========================================================== */

enum { PD_LOG_ERROR = 0, PD_LOG_WARN, PD_LOG_INFO, PD_LOG_DEBUG };

/* Set once, before threads start, by a program's main(). */
void pd_log_set_level(int level);
void pd_log_set_name(const char *name); /* "server 1", "coordinator" */
int pd_log_level(void);
/* PARAMD_LOG's values: "error", "warning" (or "warn"), "info", "debug";
 * the level, or -1 for anything else. */
int pd_log_parse_level(const char *s);
/* The current time as RFC 3339 with milliseconds, UTC
 * ("2025-03-01T12:00:05.123Z"); what snprintf returns (24 with room). */
int pd_log_stamp(char *out, size_t len);
/* One line to stderr: "TIME NAME: LEVEL: message" (TIME as pd_log_stamp,
 * NAME the role and rank: "server 1").  Thread-safe (one write(2) per
 * line). */
void pd_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ==== Time ============================================================== */

double pd_now(void);        /* monotonic seconds */
int64_t pd_now_ms(void);    /* monotonic milliseconds */
/* pthread_cond_timedwait for up to ms milliseconds from now (mu held;
 * returns with it held, on a signal or at the time, as the call does). */
void pd_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

/* Waiters that spin a little before sleeping (the shm rings, the client's
 * req_finish) yield the CPU between checks, because a futex wake-up of a
 * sleeper lands on a halted vCPU, which on a virtual machine costs many
 * round trips.  On a loaded machine, though, a yield can hand the rest of
 * the time slice to a busy process and cost a whole slice (figures in
 * bench/README.md).  So:
 *   pd_yield_ok()  1 if this wait may spin-yield; 0 while the thread is
 *                  in a no-yield period (each call counts one wait of it);
 *   pd_yield()     sched_yield(); -1 if it took longer than 200 us (the
 *                  CPU was lost: the machine is loaded), which starts a
 *                  no-yield period of this thread's next 1000 waits, and
 *                  the caller should go to sleep now; else 0.
 * Per thread (thread-local), no lock. */
int pd_yield_ok(void);
int pd_yield(void);

/* ==== Allocation ======================================================== */

/* All allocation goes through these so a test build can fail the k-th one.
 * They return NULL on failure like malloc; callers handle it. */
void *pd_malloc(size_t n);
void *pd_calloc(size_t count, size_t size);
void *pd_realloc(void *p, size_t n);
void pd_free(void *p);
char *pd_strdup(const char *s);
/* Ask the kernel to back [p, p+n) with transparent huge pages (a hint,
 * for large arrays read at random: sparse rows, hash maps).  Does nothing
 * for blocks under 8 MiB or where the kernel does not do it. */
void pd_advise_hugepages(void *p, size_t n);
/* Test hook: make the k-th allocation from now fail (0 disables). */
void pd_alloc_fail_after(long k);

/* ==== Parsing =========================================================== */

/* Split "host:port" (host may be "[v6]" or empty for any).  0 or -1. */
int pd_parse_hostport(const char *s, char *host, size_t hostlen,
                      uint16_t *port);
/* Strict decimal parsing of the whole string; 0 or -1. */
int pd_parse_i64(const char *s, int64_t *out);
int pd_parse_u64(const char *s, uint64_t *out);
int pd_parse_double(const char *s, double *out);

/* Environment lookups in one place: the first set, non-empty variable of
 * the NULL-terminated list, or NULL. */
const char *pd_env_first(const char *const *names);

#endif
