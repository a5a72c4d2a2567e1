/*
 * admit.h - who gets in: the connection limits of a listening role (a
 * server, the coordinator), the queue of connections still in their
 * handshake, and accepting when file descriptors run out.  Both roles
 * use it the same way (docs/limits.md, docs/threading.md "Admission").
 *
 * Design.  Every accepted connection still gets its own thread (the
 * roles are written with blocking I/O), but a connection that has not
 * finished its handshake is *pending*, and pending connections are cheap
 * to lose and bounded twice:
 *
 *   - in time: the handshake must be over within a deadline
 *     (pd_conn.deadline_ms, set by the role's connection thread);
 *   - in number: at most max_pending at once.  A new connection beyond
 *     that evicts the oldest pending one (its connection is shut down, its
 *     thread ends), and so does running out of descriptors.
 *
 * Eviction, not refusal, is what keeps real peers served: a worker says
 * HELLO within microseconds of connecting, so only max_pending newer
 * connections arriving in that window could push it out, while a flood of
 * idle sockets only ever pushes out its own.  Connections that finished
 * the handshake count against max_conns with the pending ones; a new
 * connection beyond it evicts a pending one if there is one, else it is
 * refused with an error frame that names the limit (PARAMD_ELIMIT).
 *
 * Descriptors.  When accept fails for want of descriptors (EMFILE,
 * ENFILE) or memory, the connection stays in the kernel's backlog: the
 * accept loop evicts the pending connections older than
 * PD_EVICT_AGE_MS (else the oldest one), which frees descriptors for the
 * real peers waiting behind them, logs once per episode, and sleeps with
 * a backoff up to PD_ACCEPT_BACKOFF_MAX_MS instead of spinning.  The
 * first accept that succeeds ends the episode, with a line saying how
 * long it lasted and how many accepts failed.  Episodes that follow
 * within 10 s of a logged one (a flood that keeps the descriptors short)
 * are not logged again.
 *
 * Threads.  pd_admit.mu (a leaf: taken with no other lock held, or under
 * the role's own mutex; nothing is called under it but shutdown and the
 * log) guards the counts, the pending list and the episode.  A slot belongs to its connection's thread; another thread
 * touches it only under mu (eviction shuts its connection down, never
 * frees it), and the thread leaves (pd_admit_leave) before it destroys
 * the connection, so an eviction never reaches a destroyed one.  The
 * accept-loop calls (pd_admit_accept_*) may come from several accepting
 * threads (a server accepts TCP and shared memory): the episode is
 * shared, under mu.
 */
#ifndef PARAMD_FRAME_ADMIT_H
#define PARAMD_FRAME_ADMIT_H

#include <pthread.h>
#include <stdint.h>

#include "frame/frame.h"

/* Defaults (docs/limits.md). */
#define PD_HANDSHAKE_MS_DEFAULT 5000  /* accept to welcome */
#define PD_FRAME_MS_DEFAULT 30000     /* first byte of a frame to its last */
#define PD_MAX_PENDING_DEFAULT 64     /* connections in their handshake */
#define PD_ACCEPT_BACKOFF_MAX_MS 250  /* sleep between failed accepts */
#define PD_EVICT_AGE_MS 200           /* out of descriptors: pending this
                                       * long is not a peer about to speak */

enum { PD_SLOT_FREE = 0, PD_SLOT_PENDING, PD_SLOT_IN, PD_SLOT_EVICTED };

typedef struct pd_admit_slot {
    struct pd_admit_slot *prev, *next; /* the pending list (mu) */
    pd_conn *conn;  /* what eviction shuts down; NULL: not evictable yet
                     * (a shared-memory socket before its handshake) */
    int state;      /* PD_SLOT_* (mu) */
    int64_t since_ms; /* when it was accepted */
} pd_admit_slot;

typedef struct pd_admit {
    const char *who;     /* "server", "coordinator": for messages */
    int max_conns;       /* pending + in; > 0 */
    int max_pending;     /* > 0 */
    pthread_mutex_t mu;  /* guards what follows */
    int nconns, npending;
    pd_admit_slot *head, *tail; /* pending, oldest first */
    uint64_t evicted, refused;  /* since the last log line about them */
    int64_t logged_ms;          /* when that line was written */
    int64_t window_ms;          /* start of what it counts */
    /* Descriptor exhaustion: one episode for every accepting thread. */
    int starved, starved_logged;
    int64_t starved_since_ms, starved_log_ms;
    uint64_t starved_fails;
    int backoff_ms;
} pd_admit;

void pd_admit_init(pd_admit *a, const char *who, int max_conns, int max_pending);
void pd_admit_destroy(pd_admit *a);
/* Change the limits (the server learns its worker slots after start). */
void pd_admit_set_limits(pd_admit *a, int max_conns, int max_pending);

/* A connection was accepted: 0, and s is pending (conn may be NULL: then
 * it cannot be evicted until pd_admit_set_conn); or PARAMD_ELIMIT when
 * every one of max_conns is past its handshake: the caller refuses it
 * (pd_admit_refuse) and must not call pd_admit_leave. */
int pd_admit_enter(pd_admit *a, pd_admit_slot *s, pd_conn *conn);
/* s's connection is now conn (after a shared-memory handshake). */
void pd_admit_set_conn(pd_admit *a, pd_admit_slot *s, pd_conn *conn);
/* The handshake succeeded: s no longer pending.  0, or PARAMD_ECLOSED if
 * it was evicted meanwhile (its connection is shut down: end it). */
int pd_admit_welcomed(pd_admit *a, pd_admit_slot *s);
/* The connection's thread ends: s leaves the counts.  Call before the
 * connection is destroyed. */
void pd_admit_leave(pd_admit *a, pd_admit_slot *s);
/* Tell a refused peer why (an error reply to its HELLO, written without
 * blocking) and destroy c. */
void pd_admit_refuse(pd_admit *a, pd_conn *c);

/* The accept loop: an accept failed with errno err.  Logs (once per
 * episode of descriptor or memory exhaustion), evicts the oldest pending
 * connection to free a descriptor, and sleeps the backoff.  Other errors
 * are logged at debug level and return at once. */
void pd_admit_accept_failed(pd_admit *a, int err);
/* The accept loop: an accept succeeded (ends an episode, with a line). */
void pd_admit_accept_ok(pd_admit *a);

/* Counts for STATS and tests: connections in all, pending. */
void pd_admit_counts(pd_admit *a, int *nconns, int *npending);

#endif
