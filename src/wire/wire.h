/*
 * wire.h - the paramd frame format, mirrored in docs/protocol.md.
 *
 * Every message on every connection is one frame: a fixed 40-byte header
 * followed by `len` payload bytes.  All integers and floats are
 * little-endian.  Replies carry the request's type with PD_REPLY set, the
 * same request id, and a status (0 or a negative PARAMD_E* code; an error
 * reply's payload is the UTF-8 message).
 *
 *   off size field
 *    0   4   magic    "PRMD" (0x444d5250 read as little-endian u32)
 *    4   2   version  PD_PROTO_VERSION
 *    6   2   type     PD_MSG_* (| PD_REPLY in replies)
 *    8   8   id       request id, chosen by the requester, echoed
 *   16   4   table    table id (0 when unused)
 *   20   4   status   i32: 0 in requests; result in replies
 *   24   8   clock    i64: the sender's clock (0 when unused)
 *   32   8   len      u64: payload bytes that follow
 *
 * Decoding is split so that a receiver can validate before it allocates or
 * reads a payload: pd_hdr_decode checks magic, version, type and len against
 * the receiver's limit; each payload decoder checks its lengths against the
 * bytes actually present.
 */
#ifndef PARAMD_WIRE_H
#define PARAMD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "common/common.h"
#include "common/hash.h"
#include "table/def.h"

#define PD_MAGIC 0x444d5250u
#define PD_PROTO_VERSION 1
#define PD_HDR_SIZE 40
#define PD_REPLY 0x8000u

/* Limits (named so docs/protocol.md can cite them). */
#define PD_MAX_FRAME_DEFAULT (256ull << 20) /* payload bytes, per receiver */
#define PD_MAX_CTRL_PAYLOAD 65536u          /* any non-data message */
#define PD_MAX_NAME 255                     /* table name bytes */
#define PD_MAX_ADDR 255                     /* "host:port" bytes */
#define PD_MAX_TABLES 4096                  /* table ids 1..PD_MAX_TABLES-1 */
#define PD_MAX_SERVERS 4096
#define PD_MAX_REPLICAS 8                   /* copies of a shard (--replicas) */
#define PD_REG_JOIN 1u /* REG_SERVER flag: join a running cluster (a standby) */
#define PD_REG_PLACE 2u /* REG_SERVER flag: a place of paramd server --shards N:
                         * a slot if one is free, else (--elastic) a standby */
#define PD_MAX_ERRTEXT 1024                 /* error reply payload */
/* BATCH (docs/protocol.md, "Batches"): the payload of a request, and the
 * bytes of values its pulls may ask for together. */
#define PD_MAX_BATCH (256u << 10)
/* The payload of a BATCH reply: at most one inner reply per 40 bytes of
 * request, each a header plus its values (PD_MAX_BATCH in all) or an error
 * text. */
#define PD_MAX_BATCH_REPLY                                                     \
    ((uint64_t)PD_MAX_BATCH +                                                  \
     (uint64_t)(PD_MAX_BATCH / PD_HDR_SIZE) * (PD_HDR_SIZE + PD_MAX_ERRTEXT))

/* Message types: one list.  X(name, value, payload-kind) */
#define PD_MSG_LIST(X)                                                          \
    X(HELLO, 1)        /* any -> any: role, rank, version; first frame */     \
    X(AUTH, 2)         /* dialer -> answerer: its proof (frame/hello.h) */    \
    X(REG_SERVER, 10)  /* server -> coord: listen address */                  \
    X(REG_WORKER, 11)  /* worker -> coord: wanted rank; reply: cluster map */ \
    X(TABLE_OPEN, 12)  /* worker -> coord: name, n, spec */                   \
    X(TABLE_READY, 13) /* worker -> coord: creator finished initialising */   \
    X(BARRIER, 14)     /* worker -> coord: reply when all W arrive */         \
    X(BYE, 15)         /* worker -> coord: leaving cleanly */                 \
    X(SHUTDOWN, 16)    /* coord -> server: exit (unsolicited, id 0) */        \
    X(MAP, 17)         /* tool -> coord: the cluster map, like REG_WORKER */  \
    X(WORKER_GONE, 18) /* coord -> server: u32 rank, u32 clean (no reply) */  \
    X(HEARTBEAT, 19)   /* worker -> coord: alive, at the header's clock */    \
    X(TABLE_CREATE, 20) /* worker -> server: define a table's shard */        \
    X(SET, 21)         /* worker -> server: write values (initial values) */  \
    X(PUSH, 22)        /* worker -> server: gradient for a range */           \
    X(PULL, 23)        /* worker -> server: read a range */                   \
    X(STATS, 24)       /* any -> server: counters as text */              \
    X(SPARSE_PUSH, 25) /* worker -> server: keys and their rows' gradients */\
    X(SPARSE_PULL, 26) /* worker -> server: keys; reply: their rows */      \
    X(WORKER_JOIN, 27) /* coord -> server: u32 rank, u32 phase, i64 clock */\
    X(BATCH, 28)       /* worker -> server: whole request frames; reply: */  \
                       /* their whole reply frames, in order */             \
    X(REGION_MAP, 29)  /* worker -> server: map a shared buffer (shm only) */\
    X(REGION_UNMAP, 30) /* worker -> server: forget a shared buffer */      \
    X(PUSH_REGION, 31) /* worker -> server: PUSH from a shared buffer */     \
    X(PULL_REGION, 32) /* worker -> server: PULL into a shared buffer */    \
    X(STATUS, 33)      /* tool -> coord: the cluster's state as lines */    \
    X(CHECKPOINT, 34)  /* tool -> coord: take a checkpoint now */          \
    X(CKPT_HOLD, 35)   /* coord -> server: hold clocked tables; i64 reply */\
    X(CKPT_WRITE, 36)  /* coord -> server: u64 seq, i64 clock, str dir, u64 base (0: full) */  \
    X(CKPT_ABORT, 37)  /* coord -> server: lift the holds (no reply) */   \
    X(SERVER_REJOIN, 38) /* server -> new coord: what it holds (takeover) */\
    X(WORKER_REJOIN, 39) /* worker -> new coord: its rank, barriers, clock */\
    X(SERVER_WAIT, 40) /* worker -> coord: u32 server, u64 epoch: wait for */\
                       /* a lost server's replacement; reply u64 epoch, */ \
                       /* str its address */                              \
    X(SERVER_READY, 41) /* replacement server -> coord: its shard is */    \
                        /* restored (empty; empty reply) */             \
    X(REPL, 42)        /* primary -> its copy: u32 rank, one whole frame */ \
    X(SEED, 43)        /* primary -> a new copy: its state, in parts */   \
    X(REPLICA_ADD, 44) /* coord -> primary: u32 copy, str its address */  \
    X(REPLICA_DROP, 45) /* primary -> coord: u32 copy, str why */         \
    X(PROMOTE, 46)     /* coord -> copy: serve the slot (empty) */          \
    X(RETIRE, 47)      /* coord -> server: its shard moved; stop (str why, */ \
                       /* optional u32 PD_RETIRE_* flags) */                \
    X(DRAIN, 48)       /* tool -> coord: u32 server (optional str host:  */  \
                       /* every shard of that host): move its shard to a */ \
                       /* standby (--join); reply: str what moved where */

/* RETIRE flags: a server that serves shards in turn (paramd server
 * --shards N) waits as a standby for another shard (STAY) or stops. */
#define PD_RETIRE_STAY 1u
/* DRAIN: the server number that stands for "every shard of the host". */
#define PD_DRAIN_HOST UINT32_MAX

enum pd_msg_type {
#define PD_X_(name, val) PD_MSG_##name = (val),
    PD_MSG_LIST(PD_X_)
#undef PD_X_
};

/* Roles in HELLO. */
enum { PD_ROLE_WORKER = 1, PD_ROLE_SERVER = 2, PD_ROLE_TOOL = 3 };

typedef struct pd_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint64_t id;
    uint32_t table;
    int32_t status;
    int64_t clock;
    uint64_t len;
} pd_hdr;

/* "PUSH", "PULL|REPLY" style name of a type, for logs. */
const char *pd_msg_name(uint16_t type);
/* 1 if the type (without PD_REPLY) is in PD_MSG_LIST. */
int pd_msg_known(uint16_t type);

void pd_hdr_encode(const pd_hdr *h, uint8_t out[PD_HDR_SIZE]);
/* Decode and validate the fixed fields: magic, version, known type, and
 * len <= max_payload for data messages (SET, PUSH, PULL, SPARSE_PUSH,
 * SPARSE_PULL), <= PD_MAX_BATCH for a BATCH request (PD_MAX_BATCH_REPLY for
 * its reply), <= PD_MAX_CTRL_PAYLOAD for every other message.
 * Returns 0, or PARAMD_EPROTO / PARAMD_EVERSION / PARAMD_ETOOBIG with the
 * reason in e; *h is filled as far as it could be read. */
int pd_hdr_decode(const uint8_t in[PD_HDR_SIZE], pd_hdr *h,
                  uint64_t max_payload, pd_err *e);

/* ==== Message payloads ================================================== */

/* HELLO and its reply: frame/hello.h.  The cluster map: wire/map.h. */

/* TABLE_CREATE payload: a table's definition (table/def.h's pd_table_def).
 *   u64 n, u64 lo, u64 hi, u32 rule, u32 consistency, u32 aggregate,
 *   u32 staleness (ssp's s), u32 backup (sync: workers not waited for),
 *   u32 nhyper, f64 hyper[nhyper] (order: PD_HYPER_ORDER), str plugin path
 * and, for a sparse table only, an extension after the plugin path:
 *   u32 kind (1), u32 init (PD_INIT_*), f64 init_param, u64 seed
 * A definition without the extension is a dense table (so dense frames are
 * byte for byte what they were).  After that an optional u32 flags
 * (PD_DEF_*) may follow; a dense table with flags sends u32 kind (0) and
 * then the flags.  Absent flags are 0.  After the flags an optional str
 * name may follow (the table's name in the registry, for the server's
 * messages and metrics; a definition with a name sends kind and flags,
 * 0 if none).  In a sparse table n is the row's dim and
 * lo = 0, hi = n: rows are spread by key (pd_sparse_server), not by range. */
/* Table definition flags. */
#define PD_DEF_FIXED 1u /* elastic=no: workers that join later are refused */
void pd_table_def_encode(pd_buf *b, const pd_table_def *d);
int pd_table_def_decode(const void *p, size_t len, pd_table_def *d,
                        pd_err *e);

/* WORKER_JOIN phases (docs/protocol.md, server/gate.h): PREPARE asks a
 * server to hold every clock from its frontier on for the joiner and to
 * reply with that frontier (i64); COMMIT tells it the clock J the joiner
 * counts from (the largest frontier of all servers); no reply. */
enum { PD_JOIN_PREPARE = 1, PD_JOIN_COMMIT = 2 };
#define PD_JOIN_PAYLOAD 16

/* SPARSE_PUSH payload: u64 nkeys, nkeys x u64 key, nkeys x dim float32
 * (row i's gradient after row i-1's).  SPARSE_PULL payload: u64 nkeys,
 * nkeys x u64 key; its reply: nkeys x dim float32, in the order of the
 * keys.  The length must match nkeys exactly. */
#define PD_SPARSE_PREFIX 8

/* The range at the start of SET / PUSH (u64 offset, then floats) and the
 * whole PULL payload (u64 offset, u64 count). */
#define PD_RANGE_PREFIX 8
#define PD_PULL_PAYLOAD 16
/* A PULL may end with u32 flags (docs/protocol.md), sent only when one is
 * set: PD_PULL_MORE says the frame is a later part of the same call as
 * the pull before it on the connection (a range cut into chunks), so that
 * a deadline the first part spent is not waited again by each chunk. */
#define PD_PULL_FLAGS_PAYLOAD (PD_PULL_PAYLOAD + 4)
#define PD_PULL_MORE 1u

/* Shared buffers (paramd_alloc; docs/protocol.md, "Shared buffers"), over
 * the shared-memory transport only.  REGION_MAP payload: u64 region id,
 * u64 bytes; the buffer's memfd comes beside the stream with the id as its
 * tag (pd_conn_send_fd), before the frame.  REGION_UNMAP: u64 region id.
 * PUSH_REGION and PULL_REGION: u64 offset, u64 count (the table's range,
 * as PULL), u64 region id, u64 byte offset of the floats in the region
 * (a multiple of 4); the values move through the region, so both replies
 * are empty (a PULL_REGION reply's clock is the table's applied clock, as
 * a PULL reply's). */
#define PD_REGION_MAP_PAYLOAD 16
#define PD_REGION_REF_PAYLOAD 32
#define PD_MAX_REGIONS 1024               /* mapped at once per connection */
#define PD_MAX_REGION_BYTES (1ull << 40)
/* Feature bits at the end of a server's HELLO reply (u32, optional). */
#define PD_FEAT_REGIONS 1u

/* ==== Batches =========================================================== */

/* A BATCH request's payload is whole request frames (header and payload
 * each) back to back; its reply's payload is their whole reply frames, in
 * the same order (docs/protocol.md, "Batches").  The header of a BATCH
 * request has table 0, clock 0 and status 0. */

/* 1 if a frame of this type (PD_REPLY cleared) may be inside a BATCH:
 * PUSH, PULL, SET, SPARSE_PUSH, SPARSE_PULL. */
int pd_batch_allowed(uint16_t type);

/* Decode the inner frame that starts at byte *off of a BATCH payload
 * p[0..len): its header must decode (pd_hdr_decode), be of an allowed type
 * (a request with status 0, or with `reply` set a reply of an allowed
 * type) and announce no more payload than the batch has left.  On success
 * *h is the header, the inner payload is p[*off - h->len .. *off) and *off
 * has moved past the frame.  Otherwise PARAMD_EPROTO (or the header's own
 * error code) with a message naming inner frame `index` and its byte
 * offset, and *off unchanged.  Reads nothing outside p[0..len). */
int pd_batch_next(const uint8_t *p, size_t len, size_t *off, size_t index,
                  int reply, pd_hdr *h, pd_err *e);

/* One inner request of a validated BATCH: its header, and where its
 * payload starts in the batch (h.len bytes). */
typedef struct pd_batch_item {
    pd_hdr h;
    size_t off;
} pd_batch_item;

/* Validate a whole BATCH request payload p[0..len) before any of it is
 * used: at least one inner frame, every one valid (pd_batch_next), and no
 * bytes after the last.  items must have room for len / PD_HDR_SIZE
 * entries; on success items[0..*n) describe the inner requests in order.
 * On failure PARAMD_EPROTO (or an inner header's error code) with the
 * reason in e, and nothing in items is to be used. */
int pd_batch_parse(const uint8_t *p, size_t len, pd_batch_item *items,
                   size_t *n, pd_err *e);

#endif
