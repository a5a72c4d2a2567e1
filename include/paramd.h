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
 *   - Thread safety is stated at each function ("Thread-safe: yes/no,
 *     because ...").  In short: pulls, pushes, their async variants, waits,
 *     flushes, counters and shared buffers may be used from any number of
 *     threads at once; opening tables, the clock, barriers and close belong
 *     to one thread at a time (the one driving the training loop).
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

/* The version of the library linked at run time, as PARAMD_VERSION_HEX.
 * Thread-safe: yes, a constant. */
PARAMD_API uint32_t paramd_version(void);
/* The same as "MAJOR.MINOR.PATCH".  Static storage.  Thread-safe: yes, a
 * constant. */
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
    X(EINTERNAL, -20, "internal error")                                        \
    X(ELIMIT, -21, "a configured limit was reached (docs/limits.md)")         \
    X(EAUTH, -22, "authentication failed (cluster secret)")

enum {
    PARAMD_OK = 0,
#define PARAMD_X_(name, code, msg) PARAMD_##name = (code),
    PARAMD_ERRNO_MAP(PARAMD_X_)
#undef PARAMD_X_
};

/* Short text for an error code ("range outside the table").  Static
 * storage; unknown codes give "unknown error".  Thread-safe: yes, a
 * constant table. */
PARAMD_API const char *paramd_strerror(int err);
/* The code's name ("PARAMD_ERANGE").  Static storage.  Thread-safe: yes, a
 * constant table. */
PARAMD_API const char *paramd_err_name(int err);

/* ==== Client =========================================================== */

typedef struct paramd_client paramd_client;
typedef struct paramd_table paramd_table;
typedef struct paramd_request paramd_request;

/*
 * Connect to a cluster.  `options` is NULL or a list of key=value pairs
 * separated by spaces (or tabs, newlines; at most 1023 bytes in all).  An
 * unknown key or a bad value is PARAMD_EINVAL with a message naming it.
 * What is not given comes from the environment, read here and nowhere
 * else, or takes its default:
 *
 *   coordinator=HOST:PORT   where the coordinator listens; else
 *                           $PARAMD_COORDINATOR.  Required one way or the
 *                           other (PARAMD_ECONFIG; paramd local sets it).
 *   rank=N                  this worker's rank, 0..65535; else the first of
 *                           $PARAMD_RANK, $OMPI_COMM_WORLD_RANK (mpirun),
 *                           $PMI_RANK, $PMIX_RANK (MPICH, PMIx),
 *                           $SLURM_PROCID (srun), $RANK (torchrun),
 *                           $LOCAL_RANK (single-host launchers that set
 *                           only it) that is set; else the coordinator
 *                           assigns ranks in order of arrival.  A value
 *                           that is not a number in range is
 *                           PARAMD_ECONFIG.  When the rank comes from a
 *                           launcher's variable and that launcher's world
 *                           size is set too ($OMPI_COMM_WORLD_SIZE,
 *                           $PMI_SIZE, $SLURM_NTASKS, $WORLD_SIZE,
 *                           $LOCAL_WORLD_SIZE), it must equal the
 *                           cluster's number of workers (the coordinator's
 *                           --workers), asked before registering: else
 *                           PARAMD_ECONFIG with both numbers, and no
 *                           worker slot is taken.  rank= and $PARAMD_RANK
 *                           are never checked so (paramd launch sets
 *                           PARAMD_RANK: its world holds the coordinator
 *                           and servers too).  docs/multihost.md.
 *   role=worker|tool        [worker].  A tool is a program that only looks
 *                           at the cluster (paramd stats): it says HELLO
 *                           as a tool and gets the cluster map from the
 *                           coordinator without registering, so it takes
 *                           no rank (rank= is PARAMD_EINVAL, the rank
 *                           variables are ignored; paramd_rank is -1) and
 *                           no worker slot, sends no heartbeats, and says
 *                           no goodbye at paramd_close: workers and
 *                           barriers never wait for it.  Its links are TCP
 *                           ($PARAMD_TRANSPORT is ignored, transport=shm is
 *                           PARAMD_EINVAL).  A server it cannot reach does
 *                           not fail the connect: calls to that server fail
 *                           with the reason.  It cannot open tables, push
 *                           or join barriers: those calls fail at once with
 *                           PARAMD_EWORKER, before anything is sent.  What
 *                           it can do: paramd_server_stats,
 *                           paramd_server_address, paramd_map_epoch,
 *                           paramd_num_servers, paramd_num_workers.
 *   timeout_ms=N            how long to keep trying to make each connection
 *                           (to the coordinator, to each server, over TCP
 *                           or shared memory), in ms: 1..3600000 [30000].
 *                           A peer that refuses, is unreachable, does not
 *                           answer or whose name does not resolve yet (it
 *                           may still be starting) is retried with backoff
 *                           until then; the error says how often and how
 *                           long it tried.
 *   peer_timeout_ms=N       a TCP connection whose peer stops answering
 *                           (its host cut off or down: what was sent stays
 *                           unacknowledged, or an idle connection's
 *                           keepalive probes go unanswered) fails after
 *                           about N ms, so calls on it return PARAMD_EIO
 *                           naming the server and its host instead of
 *                           waiting for TCP's own give-up (a quarter of an
 *                           hour); a slow or stopped peer still answers
 *                           and is not affected.  (One case that counts
 *                           too: a server whose connection thread waits
 *                           this long in a sync pull while the program has
 *                           pipelined a large request behind it on the
 *                           same server, so that its receive window stays
 *                           shut: raise N for such programs.)  Else
 *                           $PARAMD_PEER_TIMEOUT_MS; 0: the system's TCP
 *                           timeouts; 1..3600000 [20000]
 *   op_timeout_ms=N         a deadline for every wait the cluster holds
 *                           for this worker: a pull of a sync or ssp table
 *                           that the server holds for its clock, a barrier,
 *                           opening a table another worker is creating,
 *                           and a join to a running cluster (in
 *                           paramd_connect).  Once such a wait has lasted N
 *                           ms, the server or the coordinator that holds it
 *                           ends it and the call fails with
 *                           PARAMD_ETIMEDOUT; paramd_last_error is the line
 *                           that side logs about the wait: whom it waits
 *                           for, which clock, when that worker was last
 *                           heard from ("server 0: table 'w' clock 12:
 *                           waiting for worker 3 (last push at clock 11,
 *                           1.5 s ago; connection alive); the pull gave up
 *                           after 1500 ms (op_timeout_ms)").  Nothing
 *                           changed: a timed-out pull took no part in any
 *                           clock, a timed-out barrier counts as not
 *                           arrived, a timed-out join took no slot.  The
 *                           client stays usable, its connections in step
 *                           (the reply is the wait's end): calling again
 *                           waits again, up to N more ms.  A pull cut into
 *                           several frames per server (chunk_bytes=) spends
 *                           its deadline once per server, not once per
 *                           frame.  Waits for a server that does not answer
 *                           at all are peer_timeout_ms='s.  Else
 *                           $PARAMD_OP_TIMEOUT_MS; 0: off (a wait lasts
 *                           until it ends); 0..3600000 [0].  The servers
 *                           and the coordinator must be of a version that
 *                           knows it (docs/operations.md, "Deadlines").
 *   host_id=ID              this host's identity, else $PARAMD_HOST_ID,
 *                           else HOSTNAME/BOOT_ID/NETNS: shared memory is
 *                           tried only with servers whose identity (sent
 *                           in their HELLO reply) is the same; 1..127
 *                           printable characters, no spaces
 *                           (docs/multihost.md, "Host identity")
 *   secret_file=PATH        the cluster secret: the file the coordinator
 *                           was given (paramd coordinator --secret-file;
 *                           paramd local makes one and sets the variable);
 *                           else $PARAMD_SECRET_FILE; else none.  With it
 *                           every connection proves knowledge of the secret
 *                           and checks that the coordinator and each server
 *                           prove it too (a peer that cannot is refused:
 *                           PARAMD_EAUTH, here or in any later call that
 *                           connects).  A file that cannot be read, or that
 *                           other users may read, is PARAMD_ECONFIG.  A
 *                           cluster with a secret refuses a client without
 *                           it, and the other way round (docs/security.md).
 *   chunk_bytes=N           large requests are cut into frames of about N
 *                           bytes, sent round-robin over the servers so that
 *                           they all work at once: 4096..2^30, rounded down
 *                           to a multiple of 4 [1048576].  Sparse requests
 *                           are cut into frames of about N bytes of rows
 *                           (async tables; a sync or ssp sparse push is one
 *                           frame per server).
 *   coalesce_bytes=N        small requests to one server are sent together
 *                           as one frame (a BATCH): a frame of at most N
 *                           bytes, or a pull of at most N bytes of values,
 *                           waits in its server's outbox until the outbox
 *                           is full (64 KiB), a larger request goes to
 *                           that server, or anything waits (paramd_wait,
 *                           every blocking call, paramd_clock,
 *                           paramd_barrier, paramd_close); pulls of sync
 *                           and ssp tables always go at once.  0 turns it
 *                           off; else 64..65536 [16384].  See the
 *                           asynchronous variants below for what it means
 *                           to a program.
 *   transport=auto|tcp|shm  else $PARAMD_TRANSPORT, else auto: shared
 *                           memory to servers on this host (the same host
 *                           identity, host_id= above), TCP to the others;
 *                           tcp: TCP only; shm: shared memory to every
 *                           server, or fail (PARAMD_ECONNECT, naming a
 *                           server on another host, or the transport's
 *                           error) (docs/transports.md)
 *   shm_ring_bytes=N        bytes per direction of a shared-memory link, a
 *                           power of two, 65536..2^30 [4194304]
 *   shared_buffers=yes|no   map paramd_alloc's memory into the servers on
 *                           this host [yes] (see paramd_alloc)
 *   fault=SPEC              TESTING AID, never for production: wrap every
 *                           server link in the fault-injecting transport.
 *                           SPEC is comma-separated: send_fail=K (the K-th
 *                           send call on a link fails and breaks it),
 *                           recv_fail=K (the same for receives), short=N
 *                           (each send/receive call moves 1..N bytes),
 *                           seed=S; e.g. fault=short=7,seed=2 (see
 *                           docs/testing.md) [off]
 *
 * On success *out is a connected client that knows the cluster map.  On
 * failure *out is NULL and the message is in paramd_last_error(NULL)
 * (thread-local for that case).  Thread-safe: yes, because a client
 * shares nothing with another, and the failure's detail is kept per
 * thread.
 */
PARAMD_API int paramd_connect(paramd_client **out, const char *options);

/* Say goodbye to the cluster (a worker: BYE to the coordinator), close
 * every connection, free everything, including tables and shared buffers
 * (paramd_alloc).  What still waits in an outbox is sent first.  A
 * request handle of an _async call that was never waited for is not
 * freed, and may not be waited for afterwards: wait for every such
 * request before closing.  NULL is harmless.  Returns the first error met
 * while closing (the client is freed in every case).  Thread-safe: no,
 * because it frees the client: no other call on it, from any thread, may
 * run during or after it. */
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
 *
 * paramd_free releases such memory (no request on it may be in flight);
 * PARAMD_EINVAL for a pointer paramd_alloc did not return.  paramd_close
 * releases whatever is left, so no pointer from paramd_alloc may be used
 * after it.
 *
 * Thread-safe: yes, both, because the client's list of buffers has its own
 * lock and mapping one buffer on every server is serialised by another;
 * a push or pull on another thread only looks its buffer up.
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

/* This worker's rank (0..W-1, or up to the worker slots when it joined a
 * running cluster; -1 for a tool), the number of workers W and of servers
 * S.  Thread-safe: yes, because they are set once, by paramd_connect. */
PARAMD_API int32_t paramd_rank(const paramd_client *c);
PARAMD_API int32_t paramd_num_workers(const paramd_client *c);
PARAMD_API int32_t paramd_num_servers(const paramd_client *c);

/* ==== Tables =========================================================== */

/*
 * Create, or open if it exists, the dense table `name` (1..255 bytes) of
 * `n` float32 (1..2^40).  Server k of S holds [floor(n*k/S),
 * floor(n*(k+1)/S)).
 *
 * `spec` is NULL or key=value pairs separated by spaces (or tabs,
 * newlines, commas), at most 1023 bytes; a key given twice takes its last
 * value.  An unknown key, a bad value, or a hyper-parameter the rule does
 * not read ("rule=sgd momentum=0.9") is PARAMD_EINVAL with a message
 * naming it.  Defaults in brackets.
 *
 *   rule=R          the update rule: what a server does with the gradient
 *                   g of parameters w (in sync mode, the aggregate of a
 *                   clock's pushes) [add].  Each rule reads the
 *                   hyper-parameters listed with it [defaults]; formulas
 *                   exactly as implemented are in docs/update-rules.md:
 *     add       w += g
 *     sgd       w -= lr*g                       lr [0.01]
 *     momentum  v = momentum*v + g; w -= lr*v   lr [0.01], momentum [0.9]
 *     adagrad   acc += g*g;                     lr [0.01], init_acc [0.1],
 *               w -= lr*g / (sqrt(acc) + eps)   eps [1e-10]
 *     adam      Kingma & Ba 2015, bias-         lr [0.001], beta1 [0.9],
 *               corrected by the parameter's    beta2 [0.999], eps [1e-8]
 *               count of updates
 *     ftrl      FTRL-proximal (McMahan et al.   lr = alpha [0.05], beta [1],
 *               2013), per coordinate           l1 [0], l2 [0]
 *                   The state of a rule (momentum's v, from 0; adagrad's
 *                   acc, from init_acc; adam's m and v, ftrl's z and n,
 *                   from 0) is kept beside each parameter on its server.
 *                   The hyper-parameters' ranges:
 *   lr=X            learning rate: finite, > 0
 *   momentum=X      momentum's decay: in [0, 1)
 *   beta1=X         adam's first-moment decay: in [0, 1)
 *   beta2=X         adam's second-moment decay: in [0, 1)
 *   eps=X           adagrad's and adam's guard against division by zero:
 *                   finite, > 0
 *   init_acc=X      adagrad's starting accumulator: finite, >= 0
 *   l1=X, l2=X      ftrl's L1 and L2 regularisation: finite, >= 0
 *   beta=X          ftrl's learning-rate offset: finite, >= 0
 *   plugin=NAME     the update rule is the plugin NAME (1..64 letters,
 *                   digits, '_' or '-'; the C ABI of include/paramd_rule.h):
 *                   each server loads NAME.so from its own --plugin-dir and
 *                   from nowhere else, so a server started without one, or
 *                   whose directory lacks NAME.so, refuses the table with a
 *                   message saying how to allow it.  A path (any '/') is
 *                   PARAMD_EINVAL here: a client never chooses the file a
 *                   server loads (docs/update-rules.md).  Instead of rule=.  The
 *                   plugin gets every hyper-parameter above, with the
 *                   defaults lr 0.01, momentum 0.9, beta1 0.9, beta2 0.999,
 *                   eps 1e-8, init_acc 0.1, l1 0, l2 0, beta 1.  A server
 *                   that cannot load it, or whose plugin refuses the
 *                   hyper-parameters, refuses the table: the open fails
 *                   with its message.
 *   consistency=C   when a push is applied and a pull answered
 *                   (docs/consistency.md) [async]:
 *                     async   a push is applied on arrival; a pull is
 *                             answered at once
 *                     sync    the pushes of clock c are aggregated and
 *                             applied once, when every worker has pushed
 *                             its whole part for c; a pull at clock c
 *                             waits until clock c-1 is applied (every
 *                             worker pushes every element once per clock)
 *                     ssp:S   as sync, but a pull at clock c waits only for
 *                             clock c-S-1: a worker may run up to S clocks
 *                             ahead of the slowest (S = 0..1000; ssp:0 is
 *                             sync; each clock of slack costs the server a
 *                             sum buffer of its shard)
 *   aggregate=A     how sync and ssp combine the pushes of one clock:
 *                   mean (their sum divided by how many workers pushed)
 *                   or sum [mean].  Async tables apply each push as it is.
 *   backup=K        sync only (else PARAMD_EINVAL): K backup workers, as
 *                   in "Revisiting Distributed Synchronous SGD": a clock is
 *                   applied with the first W-K workers' pushes for it (at
 *                   least one), and later pushes for it are dropped (they
 *                   succeed, and count in the table's "dropped"); a late
 *                   worker catches up with paramd_table_clock and
 *                   paramd_clock_to.  0..65535 [0]
 *   elastic=yes|no  whether a worker that joins a running cluster (into a
 *                   free or dead worker's slot) may use the table [yes]:
 *                   with no, the table's clocks never wait for a joiner,
 *                   and a joiner's open (and push) fails with
 *                   PARAMD_EWORKER.  Say no when the math needs a fixed
 *                   set of workers (aggregate=sum tuned for W, data owned
 *                   per rank).
 *   init=, seed=    sparse tables only (paramd_sparse_open); here
 *                   PARAMD_EINVAL: a dense table's initial values are
 *                   `init` below.
 *
 * The options of paramd_connect (coalesce_bytes=, shared_buffers=,
 * chunk_bytes=, ...) are the client's, not the table's, and are not spec
 * keys.
 *
 * `init` is NULL (zeros) or n floats: the initial values, used only by the
 * worker that creates the table.  Every worker opening the same name must
 * give the same n and spec, compared with every default filled in
 * ("rule=sgd" and "rule=sgd lr=0.01" are the same), else PARAMD_ESPEC.
 * The call returns once the table exists on every server with its initial
 * values, so a pull right after it sees them.  A tool client (role=tool)
 * gets PARAMD_EWORKER.  Thread-safe: no with another open or paramd_close
 * on the same client, because it adds to the client's list of tables
 * without a lock; yes with pulls, pushes and waits on other threads.
 */
PARAMD_API int paramd_table_open(paramd_client *c, const char *name,
                                 uint64_t n, const char *spec,
                                 const float *init, paramd_table **out);

/* Number of floats in a dense table; 0 for a sparse table.  Thread-safe:
 * yes, because it does not change once the table is open. */
PARAMD_API uint64_t paramd_table_size(const paramd_table *t);

/* sync/ssp tables: the newest applied clock a finished pull of this table
 * has seen (every clock below it is applied on some server).  A worker
 * behind it - the straggler of a sync table with backup workers - can move
 * its clock there with paramd_clock_to and go on.  0 for async tables.
 * Thread-safe: yes, because pulls raise it with an atomic maximum. */
PARAMD_API int64_t paramd_table_clock(const paramd_table *t);

/*
 * Pull floats [offset, offset+count) into dst.  With consistency=sync the
 * pull answers only once the clock before the client's current clock has
 * been applied on every server (the caller's own push for that clock must
 * have been sent, else PARAMD_EDEADLOCK); with op_timeout_ms=N
 * (paramd_connect) a pull that waited N ms for that clock fails with
 * PARAMD_ETIMEDOUT naming the worker it waits for (dst is then partly
 * written; pull again).  Thread-safe: yes, because each
 * call is its own request and every link is locked; each reply goes into
 * its own caller's buffer.
 */
PARAMD_API int paramd_pull(paramd_table *t, uint64_t offset, uint64_t count,
                           float *dst);

/*
 * Push a gradient for floats [offset, offset+count), tagged with the
 * client's current clock.  Each element may be pushed once per clock
 * (PARAMD_EDUP otherwise).  In sync mode every worker pushes every element
 * once per clock, in one or several calls.  A tool client (role=tool) gets
 * PARAMD_EWORKER, before anything is sent.  Thread-safe: yes, as
 * paramd_pull; pushes of one clock from several threads must still cover
 * each element once.
 */
PARAMD_API int paramd_push(paramd_table *t, uint64_t offset, uint64_t count,
                           const float *grad);

/*
 * Asynchronous variants.  They issue the request and return a handle in
 * *req; paramd_wait() completes it.  For pull, dst must stay valid and
 * untouched until paramd_wait returns.  For push, grad must stay valid and
 * untouched until paramd_wait returns.  If the call fails, *req is NULL and
 * nothing is pending.  Thread-safe: yes, as paramd_pull and paramd_push.
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
 * in an outbox (of any thread, to any server) are sent first.  The calling
 * thread may read the replies itself (of other threads' requests too, on
 * the way to its own).  Thread-safe: yes for different handles, because
 * a link is read by one thread at a time and hands each reply to its own
 * request; one handle is waited for by one thread, once. */
PARAMD_API int paramd_wait(paramd_request *req);

/* Send now every small request of this client still waiting in an outbox
 * (of any thread, to any server), as few frames as possible, without
 * waiting for any reply: call it after issuing a window of small async
 * requests to overlap them with computation.  Errors of the requests
 * sent are reported by their paramd_wait.  NULL is harmless.
 * Thread-safe: yes, because each outbox is flushed under its link's send
 * lock. */
PARAMD_API void paramd_flush(paramd_client *c);

/* ==== Sparse tables ===================================================== */

/*
 * Create, or open if it exists, the sparse table `name` (1..255 bytes):
 * uint64 keys, each with a row of `dim` float32 (1..65536).  Any key may
 * be used; a row exists from the first pull or push that touches it and
 * takes memory on one server from then on.  Rows are spread over the
 * servers by a consistent hash of the key.  (docs/sparse.md has the
 * details.)
 *
 * `spec` takes every key of paramd_table_open - rule= and its
 * hyper-parameters (lr, momentum, beta1, beta2, eps, init_acc, l1, l2,
 * beta), plugin=, consistency=sync|async|ssp:S, aggregate=mean|sum,
 * backup=K, elastic=yes|no, with the same values and defaults - and two
 * more:
 *   init=zeros|uniform:A|normal:S   a new row's values: zeros, uniform in
 *                                   [-A, A), or normal with mean 0 and
 *                                   standard deviation S (A, S finite,
 *                                   > 0)                              [zeros]
 *   seed=N                          seeds every new row (an unsigned 64-bit
 *                                   integer); a key's initial row depends
 *                                   only on (seed, key), never on the
 *                                   server count or the order of requests
 *                                                 [FNV-1a hash of the name]
 * The update rule's state (momentum, adagrad's accumulator, ...) is kept
 * beside each row and updated only for the rows a push touches; each
 * row's count of updates (adam's bias correction) is its own.
 *
 * Every worker opening the same name must give the same dim and spec, else
 * PARAMD_ESPEC.  A tool client (role=tool) gets PARAMD_EWORKER.
 * Thread-safe: as paramd_table_open.
 */
PARAMD_API int paramd_sparse_open(paramd_client *c, const char *name,
                                  uint32_t dim, const char *spec,
                                  paramd_table **out);

/* The dim of a sparse table's rows; 0 for a dense table.  Thread-safe:
 * yes, because it does not change once the table is open. */
PARAMD_API uint32_t paramd_table_dim(const paramd_table *t);

/*
 * Pull the rows of keys[0..nkeys) into rows (nkeys * dim floats): row i
 * (for keys[i]) at rows + i*dim.  Keys may repeat.  A key never touched
 * before gets its initial row.  With consistency=sync (or ssp) the pull
 * waits for the clock as paramd_pull does.  nkeys may be 0.  Thread-safe:
 * yes, as paramd_pull.
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
 * (PARAMD_ETOOBIG otherwise, before anything is sent).  A tool client
 * (role=tool) gets PARAMD_EWORKER, before anything is sent.  Thread-safe:
 * yes, as paramd_push (for sync and ssp tables: one call per clock in
 * all, whichever thread makes it).
 */
PARAMD_API int paramd_sparse_push(paramd_table *t, const uint64_t *keys,
                                  uint64_t nkeys, const float *grads);

/* Asynchronous variants, with the rules of paramd_pull_async: keys and
 * rows (or grads) must stay valid and untouched until paramd_wait returns;
 * if the call fails, *req is NULL and nothing is pending.  Thread-safe:
 * yes, as the blocking calls. */
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
 * "pulls", "bytes_in", "bytes_out", "rejected", "dropped", "clock" and
 * "max_ahead" (the largest lead of a pull over the applied clock).  The
 * answer follows every request this client sent to that server before.
 * PARAMD_EINVAL for an unknown name.  Thread-safe: yes, because it is a
 * request like a pull.
 */
PARAMD_API int paramd_table_stat(paramd_table *t, int32_t server,
                                 const char *name, uint64_t *value);

/* ==== Tools: the cluster's map and counters =========================== */

/* The epoch of the cluster map this client got at connect (the
 * coordinator's; a later version will refresh it).  Thread-safe: yes,
 * because it is set once, by paramd_connect. */
PARAMD_API uint64_t paramd_map_epoch(const paramd_client *c);

/* The address ("host:port") of server `server` (0..S-1) in the cluster
 * map, NULL for another index.  The string belongs to the client and
 * stays valid until paramd_close.  Thread-safe: yes, because the map is
 * set once, by paramd_connect. */
PARAMD_API const char *paramd_server_address(const paramd_client *c,
                                             int32_t server);

/* The longest STATS text a server sends, in bytes (without the NUL). */
#define PARAMD_STATS_MAX 65536

/*
 * The counters of server `server` (0..S-1), as text: what `paramd stats`
 * prints for it.  table 0 asks for every table, a table id for that one
 * only (ids are those of the text's lines; a bad one is PARAMD_EINVAL).
 * Lines (each ends in a newline):
 *   server K of S, W workers, worker connections tcp N shm N batches N
 *     batched N                                         (one line)
 *   table ID floats N bytes N pushes N pulls N ...      (a dense table)
 *   table ID kind sparse dim N rows N bytes N ...       (a sparse table)
 *   apply threads N updates in parallel N inline because busy N
 *   shared buffers mapped N bytes N pushes N pulls N
 * and, for paramd status, lines of words (`info`, `name`, `conn`, `wait`:
 * docs/operations.md) that other readers skip
 * (paramd_table_stat, docs/sparse.md and docs/protocol.md name the
 * counters; a line may gain counters at its end).  The text is written to
 * buf, NUL-terminated; len is buf's size in bytes, and PARAMD_STATS_MAX +
 * 1 always suffices.  A text longer than len - 1 is cut there and the
 * call returns PARAMD_ETOOBIG.  On other errors buf holds "".  The answer
 * follows every request this client sent that server before.  Any client
 * may call it: a worker, or a tool (role=tool in paramd_connect).
 * Thread-safe: yes, because it is a request like a pull, into the
 * caller's own buffer.
 */
PARAMD_API int paramd_server_stats(paramd_client *c, int32_t server,
                                   uint32_t table, char *buf, uint64_t len);

/*
 * Ask the coordinator to take a checkpoint of every table now
 * (docs/durability.md): sync and ssp tables are cut at one clock on
 * every server; files go to the coordinator's --checkpoint-dir (a client
 * never chooses where servers write).  Returns once the checkpoint is
 * complete: 0 with its clock in *clock and its directory in dir (dirlen
 * bytes; either may be NULL/0), or the error with the reason in
 * paramd_last_error (PARAMD_EINVAL if the coordinator takes no
 * checkpoints; the previous checkpoint is then kept).  Tools only
 * (role=tool): PARAMD_EWORKER for a worker.  Thread-safe: yes, because
 * it is one coordinator request, serialised with the others.
 */
PARAMD_API int paramd_checkpoint(paramd_client *c, int64_t *clock, char *dir,
                                 uint64_t dirlen);

/*
 * Move server `server`'s shard to a standby (a server started with
 * `paramd server --join`) while workers train, then stop that server
 * (docs/durability.md, "Servers that join and leave"); the cluster's
 * coordinator must have been started with --elastic.  Returns once the
 * standby serves the shard: 0 with a line saying what moved where and how
 * long it took in msg (msglen bytes; may be NULL/0), or the error with the
 * reason in paramd_last_error (no standby, no such server, not elastic, a
 * move that failed: the shard then stays where it was).  Tools only
 * (role=tool): PARAMD_EWORKER for a worker.  Thread-safe: yes (one
 * coordinator request).
 */
PARAMD_API int paramd_drain(paramd_client *c, int32_t server, char *msg, uint64_t msglen);
/*
 * The same for every shard that host `host`'s servers serve (its host
 * identity, or the host name part of it, as paramd status shows): each
 * moves to a standby of another host, one after the other, and the host's
 * standbys are then told to stop, so that nothing of the cluster is left
 * on that host.  Refused before anything moves when fewer standbys wait
 * on other hosts than the host serves shards.  Returns like paramd_drain;
 * on a move that failed, the shards moved before it stay moved (msg of
 * paramd_last_error says which).
 */
PARAMD_API int paramd_drain_host(paramd_client *c, const char *host, char *msg,
                                 uint64_t msglen);

/*
 * The coordinator's view of the cluster, as text: what `paramd status`
 * reads (with every server's paramd_server_stats).  Lines of words
 * ("KIND ID key value ..."; values with spaces are %XX-escaped), each
 * ending in a newline:
 *   cluster 0 servers S workers W slots M epoch E ...   (one line)
 *   server K address A connected 0|1                    (one per server)
 *   worker R state live clock C seen_ms_ago T host H ... (one per slot)
 *   table ID name NAME n N ready 0|1 spec SPEC          (one per table)
 *   wait barrier clock G worker R ...                   (a barrier held)
 * docs/operations.md names every field; lines may gain fields at their
 * end, and new kinds of lines may come.  buf and len as
 * paramd_server_stats (PARAMD_STATS_MAX + 1 bytes always suffice).  Any
 * client may call it.  Thread-safe: yes, because the coordinator's
 * requests of a client go one at a time, under its lock.
 */
PARAMD_API int paramd_cluster_status(paramd_client *c, char *buf, uint64_t len);

/* ==== Clocks and barriers ============================================= */

/* Advance the client's clock by one and return the new clock (>= 1).  The
 * clock starts at 0 (or, for a worker that joined a running cluster, at
 * the clock it joined at).  Small requests still in an outbox are sent
 * first.  Thread-safe: no with pushes or pulls of this client in flight
 * on other threads, because they carry the clock they read, old or new,
 * and a sync table counts a push for that clock (the clock itself is
 * atomic: nothing is torn); call it from the thread that drives the
 * loop, once the step's pushes are issued. */
PARAMD_API int64_t paramd_clock(paramd_client *c);
/* Move the client's clock forward to `clock` (never back); returns the
 * new clock.  Thread-safe: no, as paramd_clock. */
PARAMD_API int64_t paramd_clock_to(paramd_client *c, int64_t clock);
/* The client's current clock.  Thread-safe: yes, because the clock is
 * read and written atomically. */
PARAMD_API int64_t paramd_get_clock(const paramd_client *c);

/* Block until every worker still in the cluster has called paramd_barrier
 * the same number of times.  Workers that left (paramd_close) or died are
 * not waited for (one that died while at the barrier no longer counts as
 * arrived); workers that have not joined yet are.  Returns
 * PARAMD_ESHUTDOWN if the cluster stops meanwhile; with op_timeout_ms=N
 * (paramd_connect) PARAMD_ETIMEDOUT once it waited N ms, naming a worker
 * it waits for, and this call then does not count as one of this
 * worker's barriers (call it again to wait again); a tool client
 * (role=tool) gets PARAMD_EWORKER.  Thread-safe: no, because the
 * coordinator counts each call as one of this worker's barriers, and the
 * call holds the client's coordinator connection while it waits (a
 * paramd_table_open on another thread waits for it). */
PARAMD_API int paramd_barrier(paramd_client *c);

/* How many barriers this worker's cluster has released counting from its
 * start: those released before this worker got its rank (it joined a
 * running cluster: 0 for a worker the cluster started with) plus the
 * paramd_barrier calls this client has passed since.  A program with a
 * barrier at its start skips it when this is already past it (a worker
 * that replaces a dead one: the others passed it long ago, and would
 * never reach it again).  Thread-safe: no, as paramd_barrier. */
PARAMD_API uint64_t paramd_barrier_count(const paramd_client *c);

#ifdef __cplusplus
}
#endif
#endif /* PARAMD_H */
