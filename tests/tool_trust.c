/*
 * tool_trust.c - raw probes of a cluster's trust boundary for the
 * integration tests (not a test by itself; docs/security.md says what
 * each refusal protects).  It talks to live servers and a coordinator
 * frame by frame (tests/rawpeer.h) where a real client never would, and
 * checks every answer.
 *
 *   tool_trust plugin PATH      (a worker of paramd local)
 *       Bypasses the client's spec parser: a raw TABLE_CREATE to every
 *       server whose definition names the plugin by PATH (then "../x", a
 *       name with a dot): every server refuses it with PARAMD_EINVAL
 *       ("is not a plugin name"), and no table was created (a PULL of it
 *       is PARAMD_ENOTABLE).  Whether the library at PATH ran is the
 *       caller's check (it writes a file when loaded).
 *
 *   tool_trust holder FIFO      (a worker, PARAMD_RANK given)
 *       The real holder of a rank: opens table "h" (8 floats, add,
 *       async), pushes ones, checks the pull, prints "holding rank R",
 *       then keeps its connections open until a line arrives on FIFO
 *       (60 s at most);
 *       then checks that nothing changed the values while it waited,
 *       pushes ones again and checks the values are exactly 2.
 *
 *   tool_trust impostor VICTIM  (a worker with the cluster secret)
 *       Everything a member holding the secret but not the coordinator's
 *       grant might try against a cluster (2 servers, 2 worker slots,
 *       coordinator --max-tables 3, servers --max-tables 4) while the
 *       holder has rank VICTIM, each refused with its reason:
 *       - to every server, a worker HELLO as VICTIM without a ticket, and
 *         with this process's own (genuine) ticket of another rank; a
 *         HELLO as a server;
 *       - to every server, as a worker VICTIM without a ticket, a
 *         SPARSE_PUSH and a BATCH holding a PUSH written right behind the
 *         handshake's last frame, without waiting for its answer: the
 *         handshake is refused and the connection closed unanswered;
 *       - to the coordinator, REG_WORKER for VICTIM, and for any rank (all
 *         are live), a HEARTBEAT for VICTIM, REG_SERVER after the servers
 *         registered (the map stays the real servers'), TABLE_OPEN from a
 *         tool;
 *       - as a tool, to every server: TABLE_CREATE, SET, PUSH, SPARSE_PUSH
 *         and a BATCH holding a PUSH and a SPARSE_PUSH (each answered with
 *         an error, the connection answering the next request), the values
 *         of "h" and of the rows of sparse table "s" pulled back as a
 *         worker unchanged;
 *       - tables beyond the coordinator's and a server's --max-tables
 *         (3 and 4: "h", "s" and "q1" fit);
 *       - on every server's shared-memory socket (the setup is anyone's,
 *         the name is no secret): HELLO without the secret, with another
 *         one, a request before HELLO, as VICTIM without a ticket; as a
 *         tool TABLE_CREATE, REGION_MAP of a sealed memfd, and PUSH_REGION
 *         naming the region a raw worker connection of this process
 *         mapped (regions belong to the connection that mapped them);
 *       - over TCP, HELLO without the secret and with another one, to
 *         every server and to the coordinator.
 *       The test checks each answerer's log for its one line per refusal.
 *
 *   tool_trust copy ADDR K      (a worker of a cluster with --replicas)
 *       Against ADDR, a live copy of slot K (server/replica.c), each
 *       refused with its reason: a worker's HELLO with this process's
 *       genuine ticket (workers reach the primary); a HELLO as a server
 *       feeding another slot, and as slot K's primary (the copy was fed
 *       already); as a tool, REPL and SEED (only a primary's feed sends
 *       them), the connection answering the next request; and to the
 *       coordinator, REPLICA_DROP from a tool.
 *
 * Prints "trust ok: MODE" and exits 0, else a message and 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "paramd.h"
#include "rawpeer.h"
#include "table/def.h"
#include "table/spec.h"
#include "wire/rejoin.h"

#define TID 99 /* a table id nobody opened */

static paramd_client *c;
static uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];

/* One raw request at a clock and its reply's status (its message into
 * msg). */
static int raw_at(pd_conn *k, uint16_t type, uint32_t table, int64_t clock, const void *p,
                  size_t n, char *msg, size_t msglen) {
    pd_hdr h = {0}, rh;
    pd_err e = {0};
    static uint64_t id = 100;
    h.type = type, h.id = ++id, h.table = table, h.clock = clock;
    msg[0] = '\0';
    if (pd_send_frame(k, &h, p, n, NULL, 0, NULL, 0, &e)) return e.code;
    int rc = pd_recv_hdr(k, &rh, 1u << 30, &e);
    if (rc) return rc;
    if (rh.len > PD_MAX_CTRL_PAYLOAD) CHECK_FAIL_("reply of %llu bytes", (unsigned long long)rh.len);
    if ((rc = pd_recv_payload(k, &rh, buf, &e))) return rc;
    if (rh.status < 0) snprintf(msg, msglen, "%.*s", (int)rh.len, (char *)buf);
    return rh.status;
}

/* The same at clock 0. */
static int raw(pd_conn *k, uint16_t type, uint32_t table, const void *p, size_t n, char *msg,
               size_t msglen) {
    return raw_at(k, type, table, 0, p, n, msg, msglen);
}

/* The coordinator's map still names the S servers of m, at m's epoch. */
static void map_unchanged(const char *coord, const pd_map *m) {
    pd_map after;
    rp_map(coord, &after);
    if (after.S != m->S || after.epoch != m->epoch)
        CHECK_FAIL_("the map changed: %u servers, epoch %llu", after.S,
                    (unsigned long long)after.epoch);
    for (uint32_t j = 0; j < m->S; j++)
        if (strcmp(after.addr[j], m->addr[j]))
            CHECK_FAIL_("server %u is now %s, was %s", j, after.addr[j], m->addr[j]);
    pd_map_free(&after);
    printf("ok: the map still names the %u real servers only\n", m->S);
}

/* ==== plugin ============================================================ */

static int plugin(const char *path) {
    pd_map m;
    rp_map(getenv("PARAMD_COORDINATOR"), &m);
    rp_speak_for(c);
    const char *names[] = {path, "../probe", "probe.so"};
    char msg[PD_MAX_ERRTEXT + 1];
    for (uint32_t k = 0; k < m.S; k++) {
        pd_err e = {0};
        pd_conn *w = rp_dial(m.addr[k]);
        if (rp_hello(w, PD_ROLE_WORKER, paramd_rank(c), NULL, &e))
            CHECK_FAIL_("HELLO server %u: %s", k, e.msg);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            pd_table_def d = {0};
            CHECK_OK(pd_spec_parse("rule=add", &d, &e));
            d.rule = PD_RULE_PLUGIN;
            snprintf(d.plugin, sizeof d.plugin, "%s", names[i]);
            d.n = 16, d.lo = 0, d.hi = 16;
            pd_buf b;
            pd_buf_init(&b);
            pd_table_def_encode(&b, &d);
            int rc = raw(w, PD_MSG_TABLE_CREATE, TID, b.p, b.len, msg, sizeof msg);
            pd_buf_free(&b);
            if (rc != PARAMD_EINVAL || !strstr(msg, "is not a plugin name"))
                CHECK_FAIL_("server %u, plugin '%s': %s '%s', expected PARAMD_EINVAL "
                            "naming a bad plugin name", k, names[i], paramd_err_name(rc), msg);
            printf("ok: server %u refuses plugin '%s': %s\n", k, names[i], msg);
        }
        uint8_t q[16] = {0};
        q[8] = 1; /* count 1 */
        int rc = raw(w, PD_MSG_PULL, TID, q, sizeof q, msg, sizeof msg);
        if (rc != PARAMD_ENOTABLE) CHECK_FAIL_("server %u: table %d exists (%s)", k, TID,
                                               paramd_err_name(rc));
        pd_conn_destroy(w);
    }
    pd_map_free(&m);
    return 0;
}

/* ==== holder ============================================================ */

#define HN 8 /* floats of table "h" */
#define HSPEC "rule=add consistency=async"

/* Pull all of t and check every value is exactly want. */
static void check_all(paramd_table *t, float want, const char *when) {
    float v[HN];
    if (paramd_pull(t, 0, HN, v)) CHECK_FAIL_("pull: %s", paramd_last_error(c));
    for (int i = 0; i < HN; i++)
        if (v[i] != want) CHECK_FAIL_("%s: h[%d] = %g, expected %g", when, i, v[i], want);
}

#define SDIM 4 /* floats of a row of sparse table "s" */
#define NSK 8  /* keys of "s" the impostor trains */

/* The rows of keys[0..n) of sparse table t equal want[0..n*SDIM) exactly. */
static void check_rows(paramd_table *t, const uint64_t *keys, uint64_t n, const float *want,
                       const char *when) {
    float v[NSK * SDIM];
    if (paramd_sparse_pull(t, keys, n, v)) CHECK_FAIL_("sparse pull: %s", paramd_last_error(c));
    for (uint64_t i = 0; i < n * SDIM; i++)
        if (v[i] != want[i])
            CHECK_FAIL_("%s: row of key %llu, element %llu = %g, expected %g", when,
                        (unsigned long long)keys[i / SDIM], (unsigned long long)(i % SDIM),
                        v[i], want[i]);
}

static int holder(const char *fifo) {
    paramd_table *t;
    float ones[HN];
    for (int i = 0; i < HN; i++) ones[i] = 1.0f;
    if (paramd_table_open(c, "h", HN, HSPEC, NULL, &t))
        CHECK_FAIL_("open h: %s", paramd_last_error(c));
    if (paramd_push(t, 0, HN, ones)) CHECK_FAIL_("push: %s", paramd_last_error(c));
    check_all(t, 1.0f, "after the first push");
    /* Open for reading and writing: never blocks, and the test's writer
     * finds a reader however late this process reaches the read. */
    int fd = open(fifo, O_RDWR);
    if (fd < 0) CHECK_FAIL_("%s: %s", fifo, strerror(errno));
    printf("holding rank %d\n", paramd_rank(c));
    fflush(stdout);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    char line[64];
    if (poll(&pf, 1, 60000) != 1 || read(fd, line, sizeof line) <= 0)
        CHECK_FAIL_("no line on %s within 60 s", fifo);
    close(fd);
    check_all(t, 1.0f, "after the impostor's attempts");
    paramd_clock(c); /* one push per element per clock */
    if (paramd_push(t, 0, HN, ones)) CHECK_FAIL_("second push: %s", paramd_last_error(c));
    check_all(t, 2.0f, "after the second push");
    printf("holder ok: rank %d kept its connections; h is 2 everywhere\n", paramd_rank(c));
    return 0;
}

/* ==== impostor ========================================================== */

/* Expect status `want` with a message containing `has`. */
static void expect(const char *what, int rc, const char *msg, int want, const char *has) {
    if (rc != want || !strstr(msg, has))
        CHECK_FAIL_("%s: %s '%s', expected %s with '%s'", what, paramd_err_name(rc), msg,
                    paramd_err_name(want), has);
    printf("ok: %s: refused: %s\n", what, msg);
}

/* A handshake as role/rank with ticket tk (NULL: none) under key; the
 * refusal's status and message. */
static int hello_as(pd_conn *k, uint32_t role, int32_t rank, const pd_ticket *tk,
                    const pd_key *key, pd_welcome *w, pd_err *e) {
    pd_hello me = {.role = role, .rank = rank};
    if (tk) me.has_ticket = 1, me.ticket = *tk;
    return pd_handshake_dial(k, &me, key, w, e);
}

/* A handshake that must be refused with `want` and `has`; the connection
 * is closed. */
static void refused_hello(const char *what, pd_conn *k, uint32_t role, int32_t rank,
                          const pd_ticket *tk, const pd_key *key, int want,
                          const char *has) {
    pd_err e = {0};
    int rc = hello_as(k, role, rank, tk, key, NULL, &e);
    expect(what, rc, e.msg, want, has);
    pd_conn_destroy(k);
}

/* A SPARSE_PUSH payload: u64 count, the keys, a row of `value`s per key. */
static void sparse_payload(pd_buf *b, const uint64_t *keys, uint64_t n, float value) {
    pd_buf_init(b);
    pd_put_u64(b, n);
    for (uint64_t i = 0; i < n; i++) pd_put_u64(b, keys[i]);
    for (uint64_t i = 0; i < n * SDIM; i++) pd_put_bytes(b, &value, 4);
}

/* One whole frame (header and payload) appended to b: an inner frame of a
 * BATCH, or a frame written raw behind another. */
static void put_frame(pd_buf *b, uint16_t type, uint64_t id, uint32_t table, const void *p,
                      size_t n) {
    pd_hdr h = {PD_MAGIC, PD_PROTO_VERSION, type, id, table, 0, 0, n};
    uint8_t hb[PD_HDR_SIZE];
    pd_hdr_encode(&h, hb);
    pd_put_bytes(b, hb, sizeof hb);
    if (n) pd_put_bytes(b, p, n);
}

/* A BATCH of the frames in `in`: the BATCH reply must be status 0, and
 * each of its `n` inner replies the refusal `want` with `has`. */
static void refused_batch(const char *what, pd_conn *k, const pd_buf *in, size_t n, int want,
                          const char *has) {
    pd_err e = {0};
    pd_hdr h = {0}, rh;
    h.type = PD_MSG_BATCH, h.id = 77;
    if (pd_send_frame(k, &h, in->p, in->len, NULL, 0, NULL, 0, &e))
        CHECK_FAIL_("%s: sending: %s", what, e.msg);
    int rc = pd_recv_hdr(k, &rh, 1u << 30, &e);
    if (rc) CHECK_FAIL_("%s: no reply: %s", what, e.msg);
    if (rh.type != (PD_MSG_BATCH | PD_REPLY) || rh.len > PD_MAX_CTRL_PAYLOAD)
        CHECK_FAIL_("%s: answered with %s of %llu bytes", what, pd_msg_name(rh.type),
                    (unsigned long long)rh.len);
    if ((rc = pd_recv_payload(k, &rh, buf, &e))) CHECK_FAIL_("%s: reply: %s", what, e.msg);
    if (rh.status != 0)
        CHECK_FAIL_("%s: the BATCH itself was refused: %s %.*s", what,
                    paramd_err_name(rh.status), (int)rh.len, (char *)buf);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        pd_hdr ih;
        char msg[PD_MAX_ERRTEXT + 1];
        if (pd_batch_next(buf, (size_t)rh.len, &off, i, 1, &ih, &e))
            CHECK_FAIL_("%s: inner reply %zu: %s", what, i, e.msg);
        snprintf(msg, sizeof msg, "%.*s", ih.status < 0 ? (int)ih.len : 0,
                 (const char *)buf + off - ih.len);
        char w[200];
        snprintf(w, sizeof w, "%s, inner %s", what, pd_msg_name(ih.type & ~PD_REPLY));
        expect(w, ih.status, msg, want, has);
    }
    if (off != rh.len) CHECK_FAIL_("%s: %zu inner replies expected, more came", what, n);
}

/* ---- a dialer that does not wait for the answer ------------------------ */

/* A transport around a connection that writes `extra` right behind the
 * first frame it writes after it has read something: with a secret, the
 * handshake's AUTH (proof_d), sent once the answerer's challenge is read.
 * So the requests in `extra` are on the wire before the answerer has
 * decided about the handshake, as a peer that pipelines behind it would
 * send them. */
typedef struct eager {
    pd_conn *inner;
    const uint8_t *extra;
    size_t nextra;
    int read_some, sent;
} eager;

static ssize_t eager_readv(pd_conn *c, const struct iovec *iov, int cnt) {
    eager *g = c->impl;
    ssize_t k = g->inner->ops->readv(g->inner, iov, cnt);
    if (k > 0) g->read_some = 1;
    return k;
}

static ssize_t eager_writev(pd_conn *c, const struct iovec *iov, int cnt) {
    eager *g = c->impl;
    if (!g->read_some || g->sent || cnt >= 16) return g->inner->ops->writev(g->inner, iov, cnt);
    struct iovec all[17];
    size_t want = 0;
    for (int i = 0; i < cnt; i++) all[i] = iov[i], want += iov[i].iov_len;
    all[cnt].iov_base = (void *)g->extra, all[cnt].iov_len = g->nextra;
    ssize_t k = g->inner->ops->writev(g->inner, all, cnt + 1);
    if (k < 0 || (size_t)k < want) return k; /* the frame's rest comes again */
    g->sent = 1;
    /* The rest of extra, if the socket took only a part (a write error
     * here means the answerer has closed already: nothing more to send). */
    for (size_t done = (size_t)k - want; done < g->nextra;) {
        struct iovec v = {(void *)(g->extra + done), g->nextra - done};
        ssize_t w = g->inner->ops->writev(g->inner, &v, 1);
        if (w <= 0) break;
        done += (size_t)w;
    }
    return (ssize_t)want;
}

static void eager_shutdown(pd_conn *c) { pd_conn_shutdown(((eager *)c->impl)->inner); }
static void eager_destroy(pd_conn *c) {
    pd_conn_destroy(((eager *)c->impl)->inner);
    free(c);
}
static void eager_timeo(pd_conn *c, int ms) {
    pd_conn_set_rcvtimeo(((eager *)c->impl)->inner, ms);
}

static pd_conn *eager_wrap(pd_conn *inner, eager *g, const pd_buf *extra) {
    static const pd_transport_ops ops = {.name = "eager", .readv = eager_readv,
                                         .writev = eager_writev, .shutdown = eager_shutdown,
                                         .destroy = eager_destroy, .set_rcvtimeo = eager_timeo};
    pd_conn *c = calloc(1, sizeof *c);
    CHECK(c != NULL);
    memset(g, 0, sizeof *g);
    g->inner = inner, g->extra = extra->p, g->nextra = extra->len;
    c->ops = &ops;
    c->fd = inner->fd;
    c->impl = g;
    snprintf(c->peer, sizeof c->peer, "%s", inner->peer);
    return c;
}

/* The connection still answers: STATS, status 0. */
static void answers(pd_conn *k, const char *after) {
    char msg[PD_MAX_ERRTEXT + 1];
    int rc = raw(k, PD_MSG_STATS, 0, NULL, 0, msg, sizeof msg);
    if (rc) CHECK_FAIL_("after %s the connection did not answer STATS: %s %s", after,
                        paramd_err_name(rc), msg);
}

/* A TABLE_CREATE payload for a dense add table of n floats, part [lo, hi). */
static void def_payload(pd_buf *b, uint64_t n, uint64_t lo, uint64_t hi) {
    pd_err e = {0};
    pd_table_def d = {0};
    CHECK_OK(pd_spec_parse(HSPEC, &d, &e));
    d.n = n, d.lo = lo, d.hi = hi;
    pd_buf_init(b);
    pd_table_def_encode(b, &d);
}

static int impostor(int32_t victim) {
    const char *coord = getenv("PARAMD_COORDINATOR");
    int32_t me = paramd_rank(c);
    uint32_t S = (uint32_t)paramd_num_servers(c);
    char msg[PD_MAX_ERRTEXT + 1], what[160];
    CHECK(victim != me);
    pd_key other;
    pd_key_random(&other); /* another cluster's secret */

    /* The map as tools see it, before: the servers this worker talks to. */
    pd_map m;
    rp_map(coord, &m);
    CHECK(m.S == S);
    for (uint32_t k = 0; k < S; k++) CHECK(!strcmp(m.addr[k], paramd_server_address(c, k)));
    paramd_table *t;
    if (paramd_table_open(c, "h", HN, HSPEC, NULL, &t))
        CHECK_FAIL_("open h: %s", paramd_last_error(c));
    /* Sparse table "s": NSK keys, the first ones of 1, 2, ... that each
     * server holds at least one of, trained once; their rows as pulled. */
    paramd_table *ts;
    if (paramd_sparse_open(c, "s", SDIM, HSPEC, &ts))
        CHECK_FAIL_("open s: %s", paramd_last_error(c));
    uint64_t skeys[NSK];
    float sones[NSK * SDIM], srows[NSK * SDIM];
    for (uint64_t i = 0; i < NSK; i++) skeys[i] = i + 1;
    for (uint32_t k = 0; k < S; k++) {
        int held = 0;
        for (uint64_t i = 0; i < NSK; i++) held |= pd_sparse_server(skeys[i], S) == k;
        if (!held) CHECK_FAIL_("server %u holds none of keys 1..%d: take more keys", k, NSK);
    }
    for (int i = 0; i < NSK * SDIM; i++) sones[i] = 1.0f;
    if (paramd_sparse_push(ts, skeys, NSK, sones))
        CHECK_FAIL_("sparse push: %s", paramd_last_error(c));
    if (paramd_sparse_pull(ts, skeys, NSK, srows))
        CHECK_FAIL_("sparse pull: %s", paramd_last_error(c));
    for (int i = 0; i < NSK * SDIM; i++) sones[i] = 777.0f; /* what the probes push */

    /* -- claiming the holder's rank at the servers ----------------------- */
    for (uint32_t k = 0; k < S; k++) {
        snprintf(what, sizeof what, "server %u, HELLO as worker %d without a ticket", k, victim);
        refused_hello(what, rp_dial(m.addr[k]), PD_ROLE_WORKER, victim, NULL, rp_key(),
                      PARAMD_EWORKER, "must show the ticket the coordinator gave it");
        snprintf(what, sizeof what, "server %u, HELLO as worker %d with worker %d's ticket", k,
                 victim, me);
        refused_hello(what, rp_dial(m.addr[k]), PD_ROLE_WORKER, victim, &c->ticket, rp_key(),
                      PARAMD_EWORKER, "is not one this cluster's coordinator gave");
        pd_ticket newer = c->ticket;
        newer.gen++;
        snprintf(what, sizeof what, "server %u, HELLO as worker %d with a made-up incarnation "
                 "of its ticket", k, me);
        refused_hello(what, rp_dial(m.addr[k]), PD_ROLE_WORKER, me, &newer, rp_key(),
                      PARAMD_EWORKER, "is not one this cluster's coordinator gave");
        snprintf(what, sizeof what, "server %u, HELLO as a server", k);
        refused_hello(what, rp_dial(m.addr[k]), PD_ROLE_SERVER, -1, NULL, rp_key(),
                      PARAMD_EPROTO, "a server does not take connections from a server");
    }

    /* -- requests written behind a refused handshake ----------------------
     * A worker HELLO as the holder's rank without a ticket, and right
     * behind its AUTH, before the answer: a SPARSE_PUSH of every key of
     * "s" and a BATCH holding a PUSH of all of "h".  The handshake is
     * refused, and the server closes the connection without reading
     * (answering, applying) either. */
    for (uint32_t k = 0; k < S; k++) {
        pd_buf extra, sp, inner, hp;
        sparse_payload(&sp, skeys, NSK, 777.0f);
        pd_buf_init(&hp);
        pd_put_u64(&hp, 0);
        for (int i = 0; i < HN; i++) pd_put_bytes(&hp, &sones[i], 4);
        pd_buf_init(&inner);
        put_frame(&inner, PD_MSG_PUSH, 1, t->id, hp.p, hp.len);
        pd_buf_init(&extra);
        put_frame(&extra, PD_MSG_SPARSE_PUSH, 501, ts->id, sp.p, sp.len);
        put_frame(&extra, PD_MSG_BATCH, 502, 0, inner.p, inner.len);
        eager g;
        pd_conn *ek = eager_wrap(rp_dial(m.addr[k]), &g, &extra);
        pd_err e = {0};
        int rc = hello_as(ek, PD_ROLE_WORKER, victim, NULL, rp_key(), NULL, &e);
        snprintf(what, sizeof what, "server %u, HELLO as worker %d without a ticket, a "
                 "SPARSE_PUSH and a BATCH of a PUSH behind it", k, victim);
        if (!g.sent) CHECK_FAIL_("%s: the handshake ended before its AUTH frame (%s): is the "
                                 "cluster without a secret?", what, e.msg);
        expect(what, rc, e.msg, PARAMD_EWORKER, "must show the ticket the coordinator gave it");
        pd_conn_set_rcvtimeo(ek, 20000);
        uint8_t tmp[64];
        struct iovec v = {tmp, sizeof tmp};
        ssize_t got = ek->ops->readv(ek, &v, 1);
        if (got != 0 && !(got < 0 && errno == ECONNRESET))
            CHECK_FAIL_("%s: the server answered the requests behind it (%zd bytes%s)", what,
                        got, got < 0 ? ", or never closed" : "");
        printf("ok: %s: closed, unanswered\n", what);
        pd_conn_destroy(ek);
        pd_buf_free(&extra), pd_buf_free(&sp), pd_buf_free(&inner), pd_buf_free(&hp);
    }
    check_all(t, 1.0f, "after the requests behind a refused handshake");
    check_rows(ts, skeys, NSK, srows, "after the requests behind a refused handshake");

    /* -- claiming it at the coordinator ---------------------------------- */
    {
        pd_err e = {0};
        pd_conn *k = rp_dial(coord);
        if (hello_as(k, PD_ROLE_WORKER, victim, NULL, rp_key(), NULL, &e))
            CHECK_FAIL_("HELLO coordinator: %s", e.msg);
        uint8_t p[4];
        pd_le32_put(p, (uint32_t)victim);
        int rc = raw(k, PD_MSG_REG_WORKER, 0, p, sizeof p, msg, sizeof msg);
        snprintf(what, sizeof what, "coordinator, REG_WORKER for rank %d (live)", victim);
        expect(what, rc, msg, PARAMD_EWORKER, "is taken by a live worker");
        pd_le32_put(p, UINT32_MAX); /* -1: any rank */
        rc = raw(k, PD_MSG_REG_WORKER, 0, p, sizeof p, msg, sizeof msg);
        expect("coordinator, REG_WORKER for any rank", rc, msg, PARAMD_EWORKER,
               "worker slots are taken by live workers");
        pd_le32_put(p, (uint32_t)victim);
        rc = raw(k, PD_MSG_HEARTBEAT, 0, p, sizeof p, msg, sizeof msg);
        snprintf(what, sizeof what, "coordinator, HEARTBEAT for rank %d", victim);
        expect(what, rc, msg, PARAMD_EWORKER, "did not show the ticket of that rank's current");
        pd_conn_destroy(k);
    }

    /* -- a fake server ---------------------------------------------------- */
    {
        pd_err e = {0};
        pd_conn *k = rp_dial(coord);
        if (hello_as(k, PD_ROLE_SERVER, -1, NULL, rp_key(), NULL, &e))
            CHECK_FAIL_("HELLO coordinator as a server: %s", e.msg);
        pd_buf b;
        pd_buf_init(&b);
        pd_put_str(&b, "127.0.0.1:9");
        int rc = raw(k, PD_MSG_REG_SERVER, 0, b.p, b.len, msg, sizeof msg);
        pd_buf_free(&b);
        expect("coordinator, REG_SERVER after the servers registered", rc, msg,
               PARAMD_ECONFIG, "already has its");
        pd_conn_destroy(k);
        map_unchanged(coord, &m);
        k = rp_tool(coord);
        pd_buf_init(&b);
        pd_put_str(&b, "t2");
        pd_put_u64(&b, HN);
        pd_put_str(&b, HSPEC);
        rc = raw(k, PD_MSG_TABLE_OPEN, 0, b.p, b.len, msg, sizeof msg);
        pd_buf_free(&b);
        expect("coordinator, TABLE_OPEN from a tool", rc, msg, PARAMD_EWORKER,
               "only registered workers open tables");
        pd_conn_destroy(k);
    }

    /* -- rejoins, to a coordinator that took no cluster back -------------
     * (coord/takeover.c): a server's records from a tool, and from a
     * "server" with another cluster's key; broken records; a worker's
     * rejoin with its own genuine ticket, and naming the holder's rank. */
    {
        pd_err e = {0};
        uint8_t key[PD_REJOIN_KEY_BYTES];
        memset(key, 0x77, sizeof key);
        pd_buf b;
        pd_buf_init(&b);
        pd_rejoin_put_head(&b, 0, S, (uint32_t)paramd_num_workers(c), (uint32_t)c->slots, key,
                           "127.0.0.1:9");
        pd_rejoin_put_rank(&b, (uint32_t)victim, 99, 0);
        pd_conn *k = rp_tool(coord);
        int rc = raw_at(k, PD_MSG_SERVER_REJOIN, 0, 1, b.p, b.len, msg, sizeof msg);
        expect("coordinator, SERVER_REJOIN from a tool", rc, msg, PARAMD_EPROTO,
               "not an unregistered server");
        pd_conn_destroy(k);
        k = rp_dial(coord);
        if (hello_as(k, PD_ROLE_SERVER, -1, NULL, rp_key(), NULL, &e))
            CHECK_FAIL_("HELLO coordinator as a server: %s", e.msg);
        rc = raw_at(k, PD_MSG_SERVER_REJOIN, 0, 1, b.p, b.len, msg, sizeof msg);
        expect("coordinator, SERVER_REJOIN to a running cluster", rc, msg, PARAMD_ECONFIG,
               "started a new cluster");
        pd_conn_destroy(k);
        pd_buf_free(&b);
        k = rp_dial(coord);
        if (hello_as(k, PD_ROLE_SERVER, -1, NULL, rp_key(), NULL, &e))
            CHECK_FAIL_("HELLO coordinator as a server: %s", e.msg);
        const uint8_t junk[] = {'R', 0, 0, 0, 0, 1, 0, 0, 0, 0};
        rc = raw_at(k, PD_MSG_SERVER_REJOIN, 0, 1, junk, sizeof junk, msg, sizeof msg);
        expect("coordinator, SERVER_REJOIN with a rank before its head", rc, msg,
               PARAMD_EPROTO, "malformed SERVER_REJOIN: no head before");
        pd_conn_destroy(k);
        for (int who = 0; who < 2; who++) {
            k = rp_dial(coord);
            if (hello_as(k, PD_ROLE_WORKER, me, &c->ticket, rp_key(), NULL, &e))
                CHECK_FAIL_("HELLO coordinator with this worker's ticket: %s", e.msg);
            pd_buf_init(&b);
            pd_put_u32(&b, (uint32_t)(who ? victim : me));
            pd_put_u64(&b, 0);
            pd_put_u32(&b, 0);
            rc = raw(k, PD_MSG_WORKER_REJOIN, 0, b.p, b.len, msg, sizeof msg);
            pd_buf_free(&b);
            snprintf(what, sizeof what, "coordinator, WORKER_REJOIN as rank %d with worker %d's "
                     "ticket", who ? victim : me, me);
            expect(what, rc, msg, PARAMD_EWORKER,
                   who ? "did not show that rank's ticket" : "did not take back the cluster");
            pd_conn_destroy(k);
        }
        map_unchanged(coord, &m);
    }

    /* -- a lost server's replacement (coord/replace.c): SERVER_WAIT from a
     * tool, from a server, naming a server out of range; SERVER_READY from
     * a tool and from a registered server that restores nothing --------- */
    {
        pd_err e = {0};
        pd_buf b;
        pd_buf_init(&b);
        pd_put_u32(&b, 0);
        pd_put_u64(&b, 0);
        pd_conn *k = rp_tool(coord);
        int rc = raw(k, PD_MSG_SERVER_WAIT, 0, b.p, b.len, msg, sizeof msg);
        expect("coordinator, SERVER_WAIT from a tool", rc, msg, PARAMD_EPROTO,
               "not from a registered worker");
        rc = raw(k, PD_MSG_SERVER_READY, 0, NULL, 0, msg, sizeof msg);
        expect("coordinator, SERVER_READY from a tool", rc, msg, PARAMD_EPROTO,
               "not restoring a lost shard");
        pd_conn_destroy(k);
        k = rp_dial(coord);
        if (hello_as(k, PD_ROLE_SERVER, -1, NULL, rp_key(), NULL, &e))
            CHECK_FAIL_("HELLO coordinator as a server: %s", e.msg);
        rc = raw(k, PD_MSG_SERVER_READY, 0, NULL, 0, msg, sizeof msg);
        expect("coordinator, SERVER_READY from an unregistered server", rc, msg, PARAMD_EPROTO,
               "not restoring a lost shard");
        rc = raw(k, PD_MSG_SERVER_WAIT, 0, b.p, b.len, msg, sizeof msg);
        expect("coordinator, SERVER_WAIT from a server", rc, msg, PARAMD_EPROTO,
               "not from a registered worker");
        pd_conn_destroy(k);
        pd_buf_free(&b);
        pd_buf_init(&b);
        pd_put_u32(&b, S + 7);
        pd_put_u64(&b, 0);
        k = rp_tool(coord);
        rc = raw(k, PD_MSG_SERVER_WAIT, 0, b.p, b.len, msg, sizeof msg);
        expect("coordinator, SERVER_WAIT naming a server out of range", rc, msg, PARAMD_EPROTO,
               "malformed SERVER_WAIT");
        pd_conn_destroy(k);
        pd_buf_free(&b);
        map_unchanged(coord, &m);
    }

    /* -- a tool writing tables ------------------------------------------- */
    for (uint32_t k = 0; k < S; k++) {
        pd_conn *tk = rp_tool(m.addr[k]);
        uint64_t lo = pd_partition_lo(HN, S, k), hi = pd_partition_lo(HN, S, k + 1);
        uint32_t ids[] = {t->id, TID};
        for (size_t i = 0; i < 2; i++) {
            pd_buf b;
            def_payload(&b, HN, lo, hi);
            int rc = raw(tk, PD_MSG_TABLE_CREATE, ids[i], b.p, b.len, msg, sizeof msg);
            pd_buf_free(&b);
            snprintf(what, sizeof what, "server %u, TABLE_CREATE of table %u by a tool", k,
                     ids[i]);
            expect(what, rc, msg, PARAMD_EWORKER, "only workers define tables");
            answers(tk, what);
        }
        uint8_t p[8 + 4];
        float bad = 777.0f;
        pd_le64_put(p, lo);
        memcpy(p + 8, &bad, 4);
        int rc = raw(tk, PD_MSG_SET, t->id, p, sizeof p, msg, sizeof msg);
        snprintf(what, sizeof what, "server %u, SET by a tool", k);
        expect(what, rc, msg, PARAMD_EWORKER, "only workers write values");
        answers(tk, what);
        rc = raw(tk, PD_MSG_PUSH, t->id, p, sizeof p, msg, sizeof msg);
        snprintf(what, sizeof what, "server %u, PUSH by a tool", k);
        expect(what, rc, msg, PARAMD_EWORKER, "only workers push");
        answers(tk, what);
        /* the keys of "s" this server holds */
        uint64_t mine[NSK], nm = 0;
        for (uint64_t i = 0; i < NSK; i++)
            if (pd_sparse_server(skeys[i], S) == k) mine[nm++] = skeys[i];
        pd_buf sp;
        sparse_payload(&sp, mine, nm, 777.0f);
        rc = raw(tk, PD_MSG_SPARSE_PUSH, ts->id, sp.p, sp.len, msg, sizeof msg);
        snprintf(what, sizeof what, "server %u, SPARSE_PUSH of %llu keys by a tool", k,
                 (unsigned long long)nm);
        expect(what, rc, msg, PARAMD_EWORKER, "only workers push");
        answers(tk, what);
        pd_buf in;
        pd_buf_init(&in);
        put_frame(&in, PD_MSG_PUSH, 1, t->id, p, sizeof p);
        put_frame(&in, PD_MSG_SPARSE_PUSH, 2, ts->id, sp.p, sp.len);
        snprintf(what, sizeof what, "server %u, BATCH of a PUSH and a SPARSE_PUSH by a tool", k);
        refused_batch(what, tk, &in, 2, PARAMD_EWORKER, "only workers push");
        answers(tk, what);
        pd_buf_free(&in), pd_buf_free(&sp);
        pd_conn_destroy(tk);
    }
    check_all(t, 1.0f, "after the tool's writes");
    check_rows(ts, skeys, NSK, srows, "after the tool's writes");
    printf("ok: h is still 1 everywhere, the rows of s as they were (pulled as a worker)\n");

    /* -- quotas ----------------------------------------------------------- */
    {
        paramd_table *q;
        if (paramd_table_open(c, "q1", HN, HSPEC, NULL, &q))
            CHECK_FAIL_("open q1: %s", paramd_last_error(c));
        int rc = paramd_table_open(c, "q2", HN, HSPEC, NULL, &q);
        snprintf(msg, sizeof msg, "%s", rc ? paramd_last_error(c) : "");
        expect("coordinator, a fourth table", rc, msg, PARAMD_ELIMIT,
               "the coordinator's limit (--max-tables 3)");
        /* Past the coordinator, raw: each server holds h, s and q1; its
         * limit is 4. */
        rp_speak_for(c);
        for (uint32_t k = 0; k < S; k++) {
            pd_err e = {0};
            pd_conn *w = rp_dial(m.addr[k]);
            if (rp_hello(w, PD_ROLE_WORKER, me, NULL, &e))
                CHECK_FAIL_("HELLO server %u as worker %d: %s", k, me, e.msg);
            uint64_t lo = pd_partition_lo(HN, S, k), hi = pd_partition_lo(HN, S, k + 1);
            pd_buf b;
            def_payload(&b, HN, lo, hi);
            rc = raw(w, PD_MSG_TABLE_CREATE, 60, b.p, b.len, msg, sizeof msg);
            if (rc) CHECK_FAIL_("server %u: a fourth table: %s %s", k, paramd_err_name(rc), msg);
            rc = raw(w, PD_MSG_TABLE_CREATE, 61, b.p, b.len, msg, sizeof msg);
            pd_buf_free(&b);
            snprintf(what, sizeof what, "server %u, a fifth table (raw, as a worker)", k);
            expect(what, rc, msg, PARAMD_ELIMIT, "holds 4 tables, its limit (paramd server "
                   "--max-tables)");
            answers(w, what);
            pd_conn_destroy(w);
        }
    }

    /* -- the shared-memory socket ----------------------------------------- */
    for (uint32_t k = 0; k < S; k++) {
        pd_err e = {0};
        pd_welcome w;
        pd_conn *tk = rp_dial(m.addr[k]);
        if (rp_hello(tk, PD_ROLE_TOOL, -1, &w, &e)) CHECK_FAIL_("HELLO server %u: %s", k, e.msg);
        pd_conn_destroy(tk);
        if (!w.shm[0]) CHECK_FAIL_("server %u offers no shared memory", k);
#define SHM_DIAL() pd_shm_connect(w.shm, PD_SHM_RING_MIN, 5000, &e)
        pd_conn *s;
        if (!(s = SHM_DIAL())) CHECK_FAIL_("shared memory of server %u: %s", k, e.msg);
        snprintf(what, sizeof what, "server %u shm, HELLO without the secret", k);
        refused_hello(what, s, PD_ROLE_WORKER, me, &c->ticket, NULL, PARAMD_EAUTH,
                      "requires the cluster secret, and the peer gave none");
        if (!(s = SHM_DIAL())) CHECK_FAIL_("shared memory of server %u: %s", k, e.msg);
        snprintf(what, sizeof what, "server %u shm, HELLO with another secret", k);
        refused_hello(what, s, PD_ROLE_WORKER, me, &c->ticket, &other, PARAMD_EAUTH,
                      "did not prove it knows the cluster secret");
        if (!(s = SHM_DIAL())) CHECK_FAIL_("shared memory of server %u: %s", k, e.msg);
        uint8_t p[8 + 4] = {0};
        int rc = raw(s, PD_MSG_SET, t->id, p, sizeof p, msg, sizeof msg);
        snprintf(what, sizeof what, "server %u shm, SET before HELLO", k);
        expect(what, rc, msg, PARAMD_EPROTO, "first frame is SET, not HELLO");
        pd_conn_destroy(s);
        if (!(s = SHM_DIAL())) CHECK_FAIL_("shared memory of server %u: %s", k, e.msg);
        snprintf(what, sizeof what, "server %u shm, HELLO as worker %d without a ticket", k,
                 victim);
        refused_hello(what, s, PD_ROLE_WORKER, victim, NULL, rp_key(), PARAMD_EWORKER,
                      "must show the ticket the coordinator gave it");
        if (!(s = SHM_DIAL())) CHECK_FAIL_("shared memory of server %u: %s", k, e.msg);
        if (hello_as(s, PD_ROLE_TOOL, -1, NULL, rp_key(), NULL, &e))
            CHECK_FAIL_("HELLO as a tool over shm: %s", e.msg);
        uint64_t lo = pd_partition_lo(HN, S, k), hi = pd_partition_lo(HN, S, k + 1);
        pd_buf b;
        def_payload(&b, HN, lo, hi);
        rc = raw(s, PD_MSG_TABLE_CREATE, TID, b.p, b.len, msg, sizeof msg);
        pd_buf_free(&b);
        snprintf(what, sizeof what, "server %u shm, TABLE_CREATE by a tool", k);
        expect(what, rc, msg, PARAMD_EWORKER, "only workers define tables");
        answers(s, what);
        /* A shared buffer of 777s, mapped as region RID by a raw worker
         * connection of this process (with its ticket): the tool can
         * neither map it nor push from it. */
        enum { RID = 7 };
        void *mem;
        size_t memlen;
        int fd = pd_shm_buffer(4096, &mem, &memlen);
        if (fd < 0) CHECK_FAIL_("no sealed memfd for a shared buffer: %s", strerror(errno));
        for (size_t i = 0; i < memlen / 4; i++) ((float *)mem)[i] = 777.0f;
        pd_conn *ws = rp_shm(&w);
        uint8_t mp[PD_REGION_MAP_PAYLOAD];
        pd_le64_put(mp, RID);
        pd_le64_put(mp + 8, memlen);
        if (pd_conn_send_fd(ws, fd, RID) != 0)
            CHECK_FAIL_("passing a descriptor: %s", strerror(errno));
        rc = raw(ws, PD_MSG_REGION_MAP, 0, mp, sizeof mp, msg, sizeof msg);
        if (rc) CHECK_FAIL_("server %u shm: REGION_MAP as worker %d: %s %s", k, me,
                            paramd_err_name(rc), msg);
        if (pd_conn_send_fd(s, fd, RID) != 0)
            CHECK_FAIL_("passing a descriptor: %s", strerror(errno));
        rc = raw(s, PD_MSG_REGION_MAP, 0, mp, sizeof mp, msg, sizeof msg);
        snprintf(what, sizeof what, "server %u shm, REGION_MAP of a sealed memfd by a tool", k);
        expect(what, rc, msg, PARAMD_EWORKER, "only workers map shared buffers");
        answers(s, what);
        uint8_t rp[PD_REGION_REF_PAYLOAD];
        pd_le64_put(rp, lo);
        pd_le64_put(rp + 8, hi - lo);
        pd_le64_put(rp + 16, RID);
        pd_le64_put(rp + 24, 0);
        rc = raw(s, PD_MSG_PUSH_REGION, t->id, rp, sizeof rp, msg, sizeof msg);
        snprintf(what, sizeof what, "server %u shm, PUSH_REGION by a tool of the region a "
                 "worker connection mapped", k);
        expect(what, rc, msg, PARAMD_EINVAL, "no region 7 is mapped");
        answers(s, what);
        pd_conn_destroy(ws);
        pd_close_fd(fd);
        munmap(mem, memlen);
        pd_conn_destroy(s);
#undef SHM_DIAL
    }

    /* -- no secret, another secret, over TCP ------------------------------ */
    for (uint32_t k = 0; k <= S; k++) {
        const char *addr = k < S ? m.addr[k] : coord;
        const char *who = k < S ? "server" : "coordinator";
        snprintf(what, sizeof what, "%s %s, HELLO without the secret", who, addr);
        refused_hello(what, rp_dial(addr), PD_ROLE_WORKER, me, &c->ticket, NULL, PARAMD_EAUTH,
                      "requires the cluster secret, and the peer gave none");
        snprintf(what, sizeof what, "%s %s, HELLO with another secret", who, addr);
        refused_hello(what, rp_dial(addr), PD_ROLE_WORKER, me, &c->ticket, &other,
                      PARAMD_EAUTH, "did not prove it knows the cluster secret");
    }
    check_all(t, 1.0f, "at the end");
    check_rows(ts, skeys, NSK, srows, "at the end");
    pd_map_free(&m);
    return 0;
}

/* ==== copy ============================================================== */

static int copy_probe(const char *addr, int32_t k) {
    char msg[PD_MAX_ERRTEXT + 1], what[160];
    rp_speak_for(c);
    int32_t me = paramd_rank(c);
    refused_hello("copy, a worker's HELLO with its own ticket", rp_dial(addr), PD_ROLE_WORKER,
                  me, &c->ticket, rp_key(), PARAMD_EWORKER, "workers reach the primary");
    snprintf(what, sizeof what, "is a copy of slot %d, not of slot %d", k, k + 1);
    refused_hello("copy, a HELLO as the server of another slot", rp_dial(addr),
                  PD_ROLE_SERVER, k + 1, NULL, rp_key(), PARAMD_EPROTO, what);
    refused_hello("copy, a HELLO as its own slot's primary", rp_dial(addr), PD_ROLE_SERVER, k,
                  NULL, rp_key(), PARAMD_EPROTO, "a copy is seeded once");
    pd_conn *t = rp_tool(addr);
    uint8_t junk[4 + PD_HDR_SIZE] = {0};
    int rc = raw(t, PD_MSG_REPL, 0, junk, sizeof junk, msg, sizeof msg);
    expect("copy, REPL from a tool", rc, msg, PARAMD_EPROTO,
           "comes only from a shard's primary to its copy");
    answers(t, "REPL from a tool");
    rc = raw_at(t, PD_MSG_SEED, 0, 1, junk, sizeof junk, msg, sizeof msg);
    expect("copy, SEED from a tool", rc, msg, PARAMD_EPROTO,
           "comes only from a shard's primary to its copy");
    answers(t, "SEED from a tool");
    pd_conn_destroy(t);
    t = rp_tool(getenv("PARAMD_COORDINATOR"));
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u32(&b, 1);
    pd_put_str(&b, "a tool says so");
    rc = raw(t, PD_MSG_REPLICA_DROP, 0, b.p, b.len, msg, sizeof msg);
    pd_buf_free(&b);
    expect("coordinator, REPLICA_DROP from a tool", rc, msg, PARAMD_EPROTO,
           "not from a primary");
    pd_conn_destroy(t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tool_trust plugin PATH | holder FIFO | impostor RANK | copy "
                "ADDR K\n");
        return 2;
    }
    if (paramd_connect(&c, NULL)) CHECK_FAIL_("connect: %s", paramd_last_error(NULL));
    int rc = 2;
    if (!strcmp(argv[1], "plugin") && argc == 3) rc = plugin(argv[2]);
    if (!strcmp(argv[1], "holder") && argc == 3) rc = holder(argv[2]);
    if (!strcmp(argv[1], "impostor") && argc == 3) rc = impostor(atoi(argv[2]));
    if (!strcmp(argv[1], "copy") && argc == 4) rc = copy_probe(argv[2], atoi(argv[3]));
    if (paramd_close(c) && rc == 0) CHECK_FAIL_("close: %s", paramd_last_error(c));
    if (rc == 0) printf("trust ok: %s\n", argv[1]);
    return rc;
}
