/*
 * status.h - the texts servers and the coordinator answer about
 * themselves (a server's STATS reply, the coordinator's STATUS reply), and
 * the one record of a wait that every role prints the same way.
 *
 * Lines of words.  Both replies are lines "KIND ID key value key value
 * ...", one record per line: what `paramd stats` prints as it is, and what
 * `paramd status` and the tests parse.  A value never holds a space, a
 * '%' or a control character: pd_kv_escape writes those as %XX (a table
 * name "my model" is "my%20model"), pd_kv_unescape undoes it.  A reader
 * skips lines of kinds and keys it does not know, so new ones can be
 * added within protocol version 1.
 *
 * Waits.  A pull of a sync or ssp table waits in a server for a clock; a
 * barrier or a join waits in the coordinator for workers.  Whatever holds
 * the wait describes it with a pd_wait and pd_wait_format turns it into
 * the line the logs, `paramd status` and a deadline's error share:
 *   table 'model' clock 812: waiting for worker 3 (last push at clock 811,
 *   40 s ago; connection alive)
 *   barrier 4: waiting for worker 1 (at clock 90, last heard 12 s ago)
 * No I/O and no locks here.
 */
#ifndef PARAMD_WIRE_STATUS_H
#define PARAMD_WIRE_STATUS_H

#include <stddef.h>
#include <stdint.h>

/* ==== Key-value lines =================================================== */

/* Write s into out[0..len) with ' ', '%', '\n' and control bytes as %XX
 * ("" as "%00" would be ambiguous: an empty string is written "-").
 * Always NUL-terminates; what does not fit is cut at a whole escape. */
void pd_kv_escape(const char *s, char *out, size_t len);
/* Undo pd_kv_escape ("-" is ""); a bad escape is kept as it is. */
void pd_kv_unescape(const char *s, char *out, size_t len);

/* A parsed line: its kind, id and up to PD_KV_MAX pairs, pointing into
 * the line (which pd_kv_parse cuts in place). */
#define PD_KV_MAX 64
typedef struct pd_kv_line {
    const char *kind;
    const char *id; /* the second word, "" if none */
    int n;
    const char *key[PD_KV_MAX], *val[PD_KV_MAX];
} pd_kv_line;
/* Parse one line (no newline) in place: 0, or -1 if it has no words. */
int pd_kv_parse(char *line, pd_kv_line *kv);
/* The value of key, or NULL. */
const char *pd_kv_get(const pd_kv_line *kv, const char *key);
/* The value of key as an integer, or def when absent or not a number. */
int64_t pd_kv_int(const pd_kv_line *kv, const char *key, int64_t def);

/* ==== Waits ============================================================= */

enum { PD_WAIT_PULL = 1, PD_WAIT_BARRIER = 2, PD_WAIT_JOIN = 3, PD_WAIT_TABLE = 4 };
/* What a waited-for worker's connection is doing. */
enum { PD_CONN_UNKNOWN = 0, PD_CONN_ALIVE = 1, PD_CONN_NONE = 2 };

typedef struct pd_wait {
    int kind;          /* PD_WAIT_* */
    char table[256];   /* PULL, TABLE: the table's name ("" if unknown) */
    uint32_t table_id; /* PULL */
    int64_t clock;     /* PULL: the clock waited for; BARRIER: its number;
                        * JOIN: the joiner's rank */
    int32_t worker;    /* the worker waited for; -1: a server (JOIN) */
    int32_t server;    /* JOIN: the server waited for */
    int64_t last_clock; /* PULL: its last push (-1: none); BARRIER: its
                         * reported clock (-1: never registered) */
    int64_t ago_ms;    /* since that push (PULL) or since it was last heard
                        * from (BARRIER); -1: unknown */
    int conn;          /* PD_CONN_* */
    int64_t waiting_ms; /* how long the wait has lasted */
    int32_t others;    /* further workers waited for, not named */
} pd_wait;

/* The wait's line (see the top of this file) into out; what snprintf
 * returns. */
int pd_wait_format(const pd_wait *w, char *out, size_t len);
/* The wait as one "wait" line of words (no newline), and back: 0, or -1
 * if the line is not a wait. */
int pd_wait_kv(const pd_wait *w, char *out, size_t len);
int pd_wait_from_kv(const pd_kv_line *kv, pd_wait *w);

/* Log waits at a growing interval: first after PD_WAIT_LOG_FIRST_MS, then
 * each interval twice the last, up to PD_WAIT_LOG_MAX_MS.  Given the time
 * the wait has lasted and the last interval logged at (0: none yet),
 * the next time to log at. */
#define PD_WAIT_LOG_FIRST_MS 5000
#define PD_WAIT_LOG_MAX_MS 300000
int64_t pd_wait_next_log(int64_t last_logged_ms);

#endif
