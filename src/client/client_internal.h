/*
 * client_internal.h - what the tests may see of the client library
 * (src/client/) beyond include/paramd.h: who read the replies, a peek at
 * a link's read role (reader.c), and a table handle for a tool client.
 *
 * Not API.  These names are not exported from libparamd.so (the library
 * is built with -fvisibility=hidden and they carry no PARAMD_API); only
 * programs linked with the static core library, the tests, reach them.
 * Thread-safe (but pd_client_table_attach): every value is read
 * atomically or under the link's lock, and may be stale by the time the
 * caller looks at it.
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

/* A handle on the existing table `id` without asking the coordinator: a
 * dense table of n floats, or (sparse) a sparse table with rows of n
 * floats, as if opened with an empty spec (async).  It lets a test give a
 * tool client (role=tool, which cannot open tables) a table, to check
 * that its pushes are refused before anything is sent and that its pulls
 * work.  0, or PARAMD_EINVAL / PARAMD_ENOMEM; paramd_close frees it.  Not
 * thread-safe with other calls on c (as paramd_table_open). */
int pd_client_table_attach(paramd_client *c, uint32_t id, uint64_t n, int sparse,
                           paramd_table **out);

#endif
