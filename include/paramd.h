/*
 * paramd.h - the whole public API of paramd for worker programs.
 *
 * paramd is a parameter server: a sharded store of model parameters. A worker
 * program links libparamd, connects to a cluster (one coordinator, S servers),
 * opens tables, and loops: pull parameters, compute a gradient, push it,
 * advance its clock. What is not in this header is not API.
 *
 * Conventions (they hold for every function below):
 *   - Functions return 0 on success and a negative PARAMD_E* code on failure.
 *     paramd_strerror() names the code; paramd_last_error() gives the detail
 *     of the last failure on a client ("server 1: table 'w' has 10 floats,
 *     request ends at 12").  Nothing in the library exits or aborts the
 *     caller's process on a caller's or a peer's mistake.
 *   - Objects are opaque and created and destroyed by name.  Destroying NULL
 *     is harmless.
 *   - Arguments are opaque pointers, fixed-width integers, float buffers and
 *     C strings only, so that a ctypes binding needs no struct layouts.
 *   - The caller owns every buffer it passes.  Blocking calls are done with
 *     the buffer when they return; asynchronous calls say in their comment
 *     how long the buffer must stay untouched.
 *   - Thread safety is stated at each function.  A client may be used from
 *     several threads for pull/push/wait; open/clock/barrier/close must not
 *     race with each other.
 */
#ifndef PARAMD_H
#define PARAMD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PARAMD_API __attribute__((visibility("default")))
#else
#define PARAMD_API
#endif

/* ==== Version ========================================================== */

#define PARAMD_VERSION_MAJOR 0
#define PARAMD_VERSION_MINOR 1
#define PARAMD_VERSION_PATCH 0
#define PARAMD_VERSION_HEX                                                     \
    ((PARAMD_VERSION_MAJOR << 16) | (PARAMD_VERSION_MINOR << 8) |              \
     PARAMD_VERSION_PATCH)

/* The version of the library linked at run time, as PARAMD_VERSION_HEX. */
PARAMD_API uint32_t paramd_version(void);
/* The same as "MAJOR.MINOR.PATCH".  Static storage. */
PARAMD_API const char *paramd_version_string(void);

/* ==== Errors =========================================================== */

/* X-macro list: the single definition of every error code. */
#define PARAMD_ERRNO_MAP(X)                                                    \
    X(EINVAL, -1, "invalid argument")                                          \
    X(ENOMEM, -2, "out of memory")                                             \
    X(EIO, -3, "I/O error on a connection")                                    \
    X(ECONNECT, -4, "cannot connect")                                          \
    X(ECLOSED, -5, "connection closed by peer")                                \
    X(EPROTO, -6, "protocol error (malformed or unexpected frame)")            \
    X(EVERSION, -7, "protocol version mismatch")                               \
    X(ENOTABLE, -8, "no such table")                                           \
    X(ERANGE, -9, "range outside the table")                                   \
    X(ESPEC, -10, "table exists with a different specification")              \
    X(ESTALE, -11, "push for a clock that was already applied")               \
    X(EDUP, -12, "duplicate push for this clock")                              \
    X(EWORKER, -13, "unknown worker rank")                                     \
    X(EAHEAD, -14, "clock too far ahead of the table")                         \
    X(EDEADLOCK, -15, "pull would wait on the caller's own missing push")     \
    X(ETOOBIG, -16, "request larger than the configured maximum")             \
    X(ESHUTDOWN, -17, "cluster is shutting down")                              \
    X(ETIMEDOUT, -18, "timed out")                                             \
    X(ECONFIG, -19, "bad cluster configuration or environment")               \
    X(EINTERNAL, -20, "internal error")

enum {
    PARAMD_OK = 0,
#define PARAMD_X_(name, code, msg) PARAMD_##name = (code),
    PARAMD_ERRNO_MAP(PARAMD_X_)
#undef PARAMD_X_
};

/* Short text for an error code ("range outside the table").  Static
 * storage; unknown codes give "unknown error".  Thread-safe. */
PARAMD_API const char *paramd_strerror(int err);
/* The code's name ("PARAMD_ERANGE").  Static storage.  Thread-safe. */
PARAMD_API const char *paramd_err_name(int err);

/* ==== Client =========================================================== */

typedef struct paramd_client paramd_client;
typedef struct paramd_table paramd_table;
typedef struct paramd_request paramd_request;

/*
 * Connect to a cluster.  `options` is NULL or a space-separated list of
 * key=value pairs; anything not given comes from the environment:
 *
 *   coordinator=HOST:PORT   else $PARAMD_COORDINATOR (required one way)
 *   rank=N                  else $PARAMD_RANK, else the launcher's rank
 *                           ($OMPI_COMM_WORLD_RANK, $PMI_RANK,
 *                           $SLURM_PROCID), else assigned by the
 *                           coordinator in order of arrival
 *   timeout_ms=N            connect/rendezvous timeout (default 30000)
 *   chunk_bytes=N           large requests are cut into frames of N bytes
 *                           (4096..2^30, default 1 MiB)
 *   coalesce_bytes=N        small requests to one server are sent together
 *                           as one frame (a BATCH): a frame of at most N
 *                           bytes, or a pull of at most N bytes of values,
 *                           waits in its server's outbox until the outbox
 *                           is full (64 KiB), a larger request goes to
 *                           that server, or anything waits (paramd_wait,
 *                           every blocking call, paramd_clock,
 *                           paramd_barrier, paramd_close); pulls of sync
 *                           and ssp tables always go at once.  0 turns it
 *                           off; else 64..65536 (default 16384).  See the
 *                           asynchronous variants below for what it means
 *                           to a program.
 *   transport=T             else $PARAMD_TRANSPORT, else auto: shared
 *                           memory to servers on this host, TCP to the
 *                           others; tcp: TCP only; shm: shared memory to
 *                           every server or fail (docs/transports.md)
 *   shm_ring_bytes=N        bytes per direction of a shared-memory link, a
 *                           power of two, 64 KiB..1 GiB (default 4 MiB)
 *   shared_buffers=yes|no   map paramd_alloc's memory into the servers on
 *                           this host (default yes; see paramd_alloc)
 *   fault=SPEC              TESTING AID, never for production: wrap every
 *                           server link in the fault-injecting transport.
 *                           SPEC is comma-separated: send_fail=K (the K-th
 *                           send call on a link fails and breaks it),
 *                           recv_fail=K (the same for receives), short=N
 *                           (each send/receive call moves 1..N bytes),
 *                           seed=S; e.g. fault=short=7,seed=2 (see
 *                           docs/testing.md)
 *
 * On success *out is a connected client that knows the cluster map.  On
 * failure *out is NULL and the message is in paramd_last_error(NULL)
 * (thread-local for that case).  Thread-safe.
 */
PARAMD_API int paramd_connect(paramd_client **out, const char *options);

/* Say goodbye to the cluster, close every connection, free everything,
 * including tables and shared buffers (paramd_alloc).  A request handle
 * of an _async call that was never waited for is not freed: wait for
 * every such request before closing.  NULL is harmless.  Returns the
 * first error met while closing (the client is freed in every case). */
PARAMD_API int paramd_close(paramd_client *c);

/*
 * Shared buffers.  paramd_alloc returns `bytes` of zeroed memory (rounded
 * up to whole pages) that servers on this host can map: a push from it or
 * a pull into it, over the shared-memory transport, moves no floats
 * through the connection - the server's rule reads the gradient where the
 * program wrote it, and pulled values are copied by the server straight
 * into it (one copy instead of three; docs/transports.md).  Use it for
 * the parameter and gradient buffers of a training loop.  It is ordinary
 * memory for everything else: TCP links, servers on other hosts, and any
 * other use, so a program that uses it runs anywhere.  As with every
 * buffer, do not touch a range while a request on it is in flight.
 * NULL (detail in paramd_last_error) if the memory cannot be had.
 * Option shared_buffers=no (paramd_connect) keeps the memory private.
 * Thread-safe.
 *
 * paramd_free releases such memory (no request on it may be in flight);
 * PARAMD_EINVAL for a pointer paramd_alloc did not return.  paramd_close
 * releases whatever is left, so no pointer from paramd_alloc may be used
 * after it.
 */
PARAMD_API void *paramd_alloc(paramd_client *c, size_t bytes);
PARAMD_API int paramd_free(paramd_client *c, void *p);

/* The detail of the last failure on this client, in whichever thread it
 * happened (a heartbeat thread's lost connection too), or, with NULL, of
 * the last failed paramd_connect in this thread.  Never NULL; "" if none.
 * The string is a copy in storage of the calling thread: it stays valid
 * and unchanged until this thread's next call into paramd (another
 * paramd_last_error overwrites it), whatever other threads do; copy it to
 * keep it.  Thread-safe: yes, because the client's text is copied under
 * the client's error lock, so a failure on another thread cannot change
 * it half-way through. */
PARAMD_API const char *paramd_last_error(const paramd_client *c);

/* This worker's rank (0..W-1), the number of workers W and of servers S. */
PARAMD_API int32_t paramd_rank(const paramd_client *c);
PARAMD_API int32_t paramd_num_workers(const paramd_client *c);
PARAMD_API int32_t paramd_num_servers(const paramd_client *c);

/* ==== Tables =========================================================== */

/*
 * Create, or open if it exists, the dense table `name` of `n` float32.
 *
 * `spec` is NULL or space-separated key=value pairs (defaults in brackets):
 *   rule=add|sgd          update rule [add]:  add: p += g,  sgd: p -= lr*g
 *   lr=X                  learning rate of sgd [0.01]
 *   consistency=sync|async                                  [async]
 *   aggregate=mean|sum    how sync combines the W pushes of a clock [mean]
 *
 * `init` is NULL (zeros) or n floats: the initial values, used only by the
 * worker that creates the table.  Every worker opening the same name must
 * give the same n and spec, else PARAMD_ESPEC.  The call returns once the
 * table exists on every server with its initial values, so a pull right
 * after it sees them.  Not thread-safe with other calls on the client.
 */
PARAMD_API int paramd_table_open(paramd_client *c, const char *name,
                                 uint64_t n, const char *spec,
                                 const float *init, paramd_table **out);

/* Number of floats in a dense table; 0 for a sparse table. */
PARAMD_API uint64_t paramd_table_size(const paramd_table *t);

/* sync/ssp tables: the newest applied clock a finished pull of this table
 * has seen (every clock below it is applied on some server).  A worker
 * behind it - the straggler of a sync table with backup workers - can move
 * its clock there with paramd_clock_to and go on.  0 for async tables.
 * Thread-safe. */
PARAMD_API int64_t paramd_table_clock(const paramd_table *t);

/*
 * Pull floats [offset, offset+count) into dst.  With consistency=sync the
 * pull answers only once the clock before the client's current clock has
 * been applied on every server (the caller's own push for that clock must
 * have been sent, else PARAMD_EDEADLOCK).  Thread-safe.
 */
PARAMD_API int paramd_pull(paramd_table *t, uint64_t offset, uint64_t count,
                           float *dst);

/*
 * Push a gradient for floats [offset, offset+count), tagged with the
 * client's current clock.  Each element may be pushed once per clock
 * (PARAMD_EDUP otherwise).  In sync mode every worker pushes every element
 * once per clock, in one or several calls.  Thread-safe.
 */
PARAMD_API int paramd_push(paramd_table *t, uint64_t offset, uint64_t count,
                           const float *grad);

/*
 * Asynchronous variants.  They issue the request and return a handle in
 * *req; paramd_wait() completes it.  For pull, dst must stay valid and
 * untouched until paramd_wait returns.  For push, grad must stay valid and
 * untouched until paramd_wait returns.  If the call fails, *req is NULL and
 * nothing is pending.  Thread-safe.
 *
 * A small request (see coalesce_bytes= in paramd_connect) is not sent at
 * once: it waits in its server's outbox, so that a window of small
 * requests goes out in a few frames, and it is sent at the latest when
 * this client next waits for anything (paramd_wait on any handle, any
 * blocking call), or calls paramd_clock, paramd_barrier or paramd_close.
 * So a program that issues small async requests and then computes before
 * waiting overlaps nothing with them unless it calls paramd_flush() after
 * issuing them (or connects with coalesce_bytes=0).  Requests to
 * one server still reach it in the order they were issued, and each one's
 * result (an error too) is its own, exactly as without coalescing.
 */
PARAMD_API int paramd_pull_async(paramd_table *t, uint64_t offset,
                                 uint64_t count, float *dst,
                                 paramd_request **req);
PARAMD_API int paramd_push_async(paramd_table *t, uint64_t offset,
                                 uint64_t count, const float *grad,
                                 paramd_request **req);

/* Wait for a request to finish, free it, and return its result.  Every
 * handle must be waited exactly once.  Small requests of this client still
 * in an outbox (of any thread, to any server) are sent first.
 * Thread-safe. */
PARAMD_API int paramd_wait(paramd_request *req);

/* Send now every small request of this client still waiting in an outbox
 * (of any thread, to any server), as few frames as possible, without
 * waiting for any reply: call it after issuing a window of small async
 * requests to overlap them with computation.  Errors of the requests
 * sent are reported by their paramd_wait.  NULL is harmless.
 * Thread-safe. */
PARAMD_API void paramd_flush(paramd_client *c);

/* ==== Sparse tables ===================================================== */

/*
 * Create, or open if it exists, the sparse table `name`: uint64 keys, each
 * with a row of `dim` float32 (1..65536).  Any key may be used; a row
 * exists from the first pull or push that touches it and takes memory on
 * one server from then on.  Rows are spread over the servers by a
 * consistent hash of the key.  (docs/sparse.md has the details.)
 *
 * `spec` takes the keys of paramd_table_open (rule and its
 * hyper-parameters, consistency, aggregate, backup) and two more:
 *   init=zeros|uniform:A|normal:S   a new row's values: zeros, uniform in
 *                                   [-A, A), or normal with mean 0 and
 *                                   standard deviation S             [zeros]
 *   seed=N                          seeds every new row; a key's initial
 *                                   row depends only on (seed, key), never
 *                                   on the server count or the order of
 *                                   requests      [FNV-1a hash of the name]
 * The update rule's state (momentum, adagrad's accumulator, ...) is kept
 * beside each row and updated only for the rows a push touches.
 *
 * Every worker opening the same name must give the same dim and spec, else
 * PARAMD_ESPEC.  Not thread-safe with other calls on the client.
 */
PARAMD_API int paramd_sparse_open(paramd_client *c, const char *name,
                                  uint32_t dim, const char *spec,
                                  paramd_table **out);

/* The dim of a sparse table's rows; 0 for a dense table. */
PARAMD_API uint32_t paramd_table_dim(const paramd_table *t);

/*
 * Pull the rows of keys[0..nkeys) into rows (nkeys * dim floats): row i
 * (for keys[i]) at rows + i*dim.  Keys may repeat.  A key never touched
 * before gets its initial row.  With consistency=sync (or ssp) the pull
 * waits for the clock as paramd_pull does.  nkeys may be 0.  Thread-safe.
 */
PARAMD_API int paramd_sparse_pull(paramd_table *t, const uint64_t *keys,
                                  uint64_t nkeys, float *rows);

/*
 * Push gradients for the rows of keys[0..nkeys): grads holds nkeys * dim
 * floats, row i for keys[i].  Duplicated keys are summed, then each
 * distinct key's row goes through the update rule once.
 *
 * consistency=async: applied on arrival; call it as often as you like.
 * consistency=sync or ssp:S: call it exactly once per clock (a second call
 * in one clock is PARAMD_EDUP), also with nkeys = 0 when this worker has
 * nothing for the table: every server waits for every worker's push of
 * the clock, then applies the mean (or sum) of each key once.  A sync push
 * is one frame per server, so it must fit the 256 MiB frame limit
 * (PARAMD_ETOOBIG otherwise, before anything is sent).  Thread-safe.
 */
PARAMD_API int paramd_sparse_push(paramd_table *t, const uint64_t *keys,
                                  uint64_t nkeys, const float *grads);

/* Asynchronous variants, with the rules of paramd_pull_async: keys and
 * rows (or grads) must stay valid and untouched until paramd_wait returns;
 * if the call fails, *req is NULL and nothing is pending.  Thread-safe. */
PARAMD_API int paramd_sparse_pull_async(paramd_table *t, const uint64_t *keys,
                                        uint64_t nkeys, float *rows,
                                        paramd_request **req);
PARAMD_API int paramd_sparse_push_async(paramd_table *t, const uint64_t *keys,
                                        uint64_t nkeys, const float *grads,
                                        paramd_request **req);

/*
 * Read one counter of table t on server `server` (0..S-1), or summed over
 * every server with -1.  Names are those of `paramd stats` lines; for a
 * sparse table: "rows" (keys held), "bytes" (memory held), "pushes",
 * "pulls", "keys_pushed", "keys_pulled", "bytes_in", "bytes_out",
 * "rejected", "dropped", "push_cpu_ns", "clock" (the smallest over servers
 * with -1) and "dim"; for a dense table: "floats", "bytes", "pushes",
 * "pulls", ...  The answer follows every request this client sent to
 * that server before.  PARAMD_EINVAL for an unknown name.  Thread-safe.
 */
PARAMD_API int paramd_table_stat(paramd_table *t, int32_t server,
                                 const char *name, uint64_t *value);

/* ==== Tools: the cluster's map and counters =========================== */

/* The epoch of the cluster map this client got at connect (the
 * coordinator's; a later version will refresh it).  Thread-safe: yes, it
 * does not change after paramd_connect. */
PARAMD_API uint64_t paramd_map_epoch(const paramd_client *c);

/* The address ("host:port") of server `server` (0..S-1) in the cluster
 * map, NULL for another index.  The string belongs to the client and
 * stays valid until paramd_close.  Thread-safe: yes, the map does not
 * change after paramd_connect. */
PARAMD_API const char *paramd_server_address(const paramd_client *c,
                                             int32_t server);

/* The longest STATS text a server sends, in bytes (without the NUL). */
#define PARAMD_STATS_MAX 65536

/*
 * The counters of server `server` (0..S-1), as text: what `paramd stats`
 * prints for it.  table 0 asks for every table, a table id for that one
 * only.  Lines (each ends in a newline):
 *   server K of S, W workers, worker connections tcp N shm N batches N batched N
 *   table ID floats N bytes N pushes N pulls N ...      (a dense table)
 *   table ID kind sparse dim N rows N bytes N ...       (a sparse table)
 *   apply threads N updates in parallel N inline because busy N
 *   shared buffers mapped N bytes N pushes N pulls N
 * (docs/sparse.md and docs/protocol.md name the counters; a line may gain
 * counters at its end).  The text is written to buf, NUL-terminated; len
 * is buf's size in bytes, and PARAMD_STATS_MAX + 1 always suffices.  A
 * text longer than len - 1 is cut there and the call returns
 * PARAMD_ETOOBIG.  On other errors buf holds "".  The answer follows every
 * request this client sent that server before.  Any client may call it: a
 * worker, or a tool (role=tool in paramd_connect).  Thread-safe: yes, it
 * is a request like a pull, and its buffer is the caller's.
 */
PARAMD_API int paramd_server_stats(paramd_client *c, int32_t server,
                                   uint32_t table, char *buf, uint64_t len);

/* ==== Clocks and barriers ============================================= */

/* Advance the client's clock by one and return the new clock (>= 1).  The
 * clock starts at 0.  Small requests still in an outbox are sent first.
 * Not thread-safe with push/pull on the same client. */
PARAMD_API int64_t paramd_clock(paramd_client *c);
/* Move the client's clock forward to `clock` (never back); returns the
 * new clock.  Not thread-safe with push/pull on the same client. */
PARAMD_API int64_t paramd_clock_to(paramd_client *c, int64_t clock);
/* The client's current clock. */
PARAMD_API int64_t paramd_get_clock(const paramd_client *c);

/* Block until every worker still in the cluster has called paramd_barrier
 * the same number of times.  Workers that left (paramd_close) or died are
 * not waited for; workers that have not joined yet are.  Returns
 * PARAMD_ESHUTDOWN if the cluster stops meanwhile. */
PARAMD_API int paramd_barrier(paramd_client *c);

#ifdef __cplusplus
}
#endif
#endif /* PARAMD_H */
