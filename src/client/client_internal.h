/*
 * client_internal.h - what the tests may see of client.c beyond
 * include/paramd.h: who read the replies, and a peek at a link's read
 * role (client.c, "Links: who reads").
 *
 * Not API.  These names are not exported from libparamd.so (the library
 * is built with -fvisibility=hidden and they carry no PARAMD_API); only
 * programs linked with the static core library, the tests, reach them.
 * Thread-safe: every value is read atomically or under the link's lock,
 * and may be stale by the time the caller looks at it.
 */
#ifndef PARAMD_CLIENT_INTERNAL_H
#define PARAMD_CLIENT_INTERNAL_H

#include <stdint.h>

#include "paramd.h"

/* Counters of a client, since paramd_connect.  Replies are counted per
 * sub-request (each inner reply of a BATCH too), not per frame. */
typedef struct pd_client_reads {
    uint64_t by_caller; /* replies read by a caller waiting on its request */
    uint64_t by_rx;     /* replies read by the links' receiver threads */
    uint64_t rx_wakes;  /* times a receiver thread was given the read role */
    uint64_t handoffs;  /* times the role went from a reader to a follower */
} pd_client_reads;

void pd_client_reads_get(paramd_client *c, pd_client_reads *out);

/* Who holds the read role of link k (0..S-1) now: one of these, and in
 * *followers (if not NULL) how many callers are queued on it. */
enum { PD_READER_NONE = 0, PD_READER_RX = 1, PD_READER_CALLER = 2 };
int pd_client_link_reader(paramd_client *c, int32_t k, int *followers);

/* 1 if every sub-request of r has completed (paramd_wait would return at
 * once), else 0.  Does not wait, flush or free. */
int pd_request_done(paramd_request *r);

#endif
