/*
 * http.h - the metrics endpoint: a minimal HTTP/1.x server that answers
 * GET /metrics with the Prometheus text of its owner (a server or the
 * coordinator), on an address of its own (--metrics HOST:PORT).
 *
 * Design.  One thread and one poll loop over non-blocking sockets, apart
 * from every thread that trains: whatever a peer sends or fails to read,
 * the training threads never wait for it.  A connection gets
 * PD_HTTP_READ_MS to send its request head (at most PD_HTTP_MAX_HEAD
 * bytes) and PD_HTTP_WRITE_MS to read the reply; it is closed at either
 * deadline, after one reply, or on anything that is not a GET of
 * /metrics (400, 404, 405 first).  At most PD_HTTP_MAX_CONNS are open;
 * more are accepted and closed at once, so a flood costs this thread
 * only.  The body is rendered by the owner's function on this thread
 * into a fresh buffer (the owner takes its locks only while it reads its
 * counters).  No keep-alive, no chunking, no TLS: a Prometheus server
 * scrapes every few seconds, one request per connection is plenty.
 */
#ifndef PARAMD_METRICS_HTTP_H
#define PARAMD_METRICS_HTTP_H

#include "common/bytes.h"
#include "common/common.h"

#define PD_HTTP_MAX_CONNS 32
#define PD_HTTP_MAX_HEAD 8192
#define PD_HTTP_READ_MS 5000
#define PD_HTTP_WRITE_MS 10000

/* Write the metrics text into b (the caller frees it). */
typedef void (*pd_http_render_fn)(void *arg, pd_buf *b);

typedef struct pd_http pd_http;

/* Listen on `addr` ("HOST:PORT", ":PORT" or "PORT": host 127.0.0.1) and
 * serve render's text on a new thread.  NULL with the reason in e. */
pd_http *pd_http_start(const char *addr, pd_http_render_fn render, void *arg, pd_err *e);
/* The bound "host:port". */
const char *pd_http_address(const pd_http *h);
/* Stop the thread, close every connection, free.  NULL-safe.  After it
 * returns render is never called again. */
void pd_http_stop(pd_http *h);

#endif
