/*
 * fault.h - the fault-injecting transport: a wrapper around any pd_conn
 * that fails the k-th send or receive and cuts reads and writes short.
 * A testing aid only (see fault.c for the design, docs/testing.md for how
 * tests use it).
 */
#ifndef PARAMD_NET_FAULT_H
#define PARAMD_NET_FAULT_H

#include <stdint.h>

#include "net/conn.h"

/* The longest spec accepted, in bytes. */
#define PD_FAULT_SPEC_MAX 255

/* A parsed spec.  Zero fields mean "off". */
typedef struct pd_fault_spec {
    uint64_t send_fail; /* the send_fail-th writev fails (1-based); 0: never */
    uint64_t recv_fail; /* the recv_fail-th readv fails (1-based); 0: never */
    uint32_t short_max; /* each readv/writev moves at most 1..short_max bytes */
    uint64_t seed;      /* of the short lengths' pseudo-random sequence */
} pd_fault_spec;

/* Parse a spec: comma-separated key=value pairs, each key at most once:
 *
 *   send_fail=K   the K-th writev call (K >= 1) moves nothing and fails
 *                 with EIO; the connection is then shut down like a broken
 *                 link, and every later readv or writev fails with EIO
 *   recv_fail=K   the same for the K-th readv call
 *   short=N       every readv and writev moves at most a pseudo-random
 *                 1..N bytes (N >= 1): short reads and writes
 *   seed=S        seed of that sequence (default 1); the same seed gives
 *                 the same lengths
 *
 * e.g. "short=7", "send_fail=3", "recv_fail=10,short=100,seed=4".  Strict:
 * an empty spec, an unknown or repeated key, or a value that is not a
 * number in range is PARAMD_EINVAL with the reason in e; *out is then
 * untouched.  Thread-safe. */
int pd_fault_parse(const char *spec, pd_fault_spec *out, pd_err *e);

/* Wrap `inner` in a fault-injecting connection that follows `spec`.  The
 * wrapper takes `inner` over in every case: it returns a connection whose
 * fd and peer are inner's (so pd_tcp_set_rcvtimeo and messages work) and
 * whose destroy destroys inner; on failure (bad spec: PARAMD_EINVAL, out of
 * memory: PARAMD_ENOMEM, with the reason in e if e is not NULL) it destroys
 * inner and returns NULL.  Each wrapper counts its own calls: wrapping two
 * connections with "send_fail=3" fails the third send of each.  Same
 * threading rule as every pd_conn: one reader and one writer at a time. */
pd_conn *pd_fault_wrap(pd_conn *inner, const char *spec, pd_err *e);

#endif
