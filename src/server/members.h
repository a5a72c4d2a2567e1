/*
 * members.h - which workers one table's clocks wait for, and from which
 * clock: the membership part of the consistency rules, shared by dense
 * and sparse stores through the clock gate (gate.c).  No locking here: the
 * table's own mutex guards its pd_members.
 *
 * Every worker slot w (0..W-1, W = the cluster's worker slots, i.e.
 * --max-workers) is in one of three states:
 *   OUT      not counted: a slot never joined, or a worker that left or
 *            died (pd_members_gone); its pushes are refused;
 *   LIVE     counted for every clock c >= from[w]: clock c waits for it;
 *   REFUSED  joined the running cluster, but the table is elastic=no: not
 *            counted, and its pushes are refused with a message that says
 *            why.
 * The workers the cluster starts with are LIVE from clock 0.  A joiner is
 * LIVE from the clock J the coordinator chose (gate.h says how J is made
 * safe); clocks below J never wait for it.
 *
 * need(c) = #{w LIVE : from[w] <= c} - backup (at least 1): how many whole
 * contributions apply clock c.  Counting is O(1) except while some LIVE
 * worker's from clock lies ahead (just after a join), when it is O(W).
 */
#ifndef PARAMD_SERVER_MEMBERS_H
#define PARAMD_SERVER_MEMBERS_H

#include <stdint.h>

enum { PD_MEM_OUT = 0, PD_MEM_LIVE = 1, PD_MEM_REFUSED = 2 };

typedef struct pd_members {
    int32_t W;       /* worker slots */
    int32_t nlive;   /* LIVE workers */
    int elastic;     /* 1: joiners become LIVE; 0: REFUSED */
    uint8_t *st;     /* W: PD_MEM_* */
    int64_t *from;   /* W: first clock a LIVE worker counts for */
    int64_t maxfrom; /* >= every LIVE worker's from (a bound, not exact) */
} pd_members;

/* W slots, all LIVE from clock 0.  0, or -1 when out of memory. */
int pd_members_init(pd_members *m, int32_t W, int elastic);
void pd_members_free(pd_members *m);
/* Workers a clock c waits for (see above); backup is the table's. */
int32_t pd_members_need(const pd_members *m, int64_t c, uint32_t backup);
/* 1 if w (in range) is LIVE and counted for clock c. */
int pd_members_counts(const pd_members *m, int32_t w, int64_t c);
/* w leaves: OUT.  1 if it was LIVE (the caller re-checks its clocks). */
int pd_members_gone(pd_members *m, int32_t w);
/* w joins, counted from clock `from` (LIVE), or REFUSED on an elastic=no
 * table.  Called again for a LIVE w it moves its from clock (the commit of
 * a join).  Returns 1 if w is LIVE afterwards. */
int pd_members_join(pd_members *m, int32_t w, int64_t from);

/* Room for one more rank in a slot's list of contributors (*who, *cap,
 * n used).  0, or -1 when out of memory (nothing changed). */
int pd_members_who_reserve(int32_t **who, int32_t *cap, int32_t n);
/* Worker w is gone: its entries in who[0..n) stop counting.  Returns how
 * many did (the slot's ncount drops by that). */
int32_t pd_members_who_forget(int32_t *who, int32_t n, int32_t w);

#endif
