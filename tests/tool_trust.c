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
 *       coordinator --max-tables 2, servers --max-tables 3) while the
 *       holder has rank VICTIM, each refused with its reason:
 *       - to every server, a worker HELLO as VICTIM without a ticket, and
 *         with this process's own (genuine) ticket of another rank; a
 *         HELLO as a server;
 *       - to the coordinator, REG_WORKER for VICTIM, and for any rank (all
 *         are live), a HEARTBEAT for VICTIM, REG_SERVER after the servers
 *         registered (the map stays the real servers'), TABLE_OPEN from a
 *         tool;
 *       - as a tool, to every server: TABLE_CREATE, SET, PUSH (each
 *         answered with an error, the connection answering the next
 *         request), the values of "h" pulled back as a worker unchanged;
 *       - tables beyond the coordinator's and a server's --max-tables;
 *       - on every server's shared-memory socket (the setup is anyone's,
 *         the name is no secret): HELLO without the secret, with another
 *         one, a request before HELLO, as VICTIM without a ticket, and
 *         TABLE_CREATE as a tool;
 *       - over TCP, HELLO without the secret and with another one, to
 *         every server and to the coordinator.
 *       The test checks each answerer's log for its one line per refusal.
 *
 * Prints "trust ok: MODE" and exits 0, else a message and 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "paramd.h"
#include "rawpeer.h"
#include "table/spec.h"

#define TID 99 /* a table id nobody opened */

static paramd_client *c;
static uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];

/* One raw request and its reply's status (its message into msg). */
static int raw(pd_conn *k, uint16_t type, uint32_t table, const void *p, size_t n, char *msg,
               size_t msglen) {
    pd_hdr h = {0}, rh;
    pd_err e = {0};
    static uint64_t id = 100;
    h.type = type, h.id = ++id, h.table = table;
    msg[0] = '\0';
    if (pd_send_frame(k, &h, p, n, NULL, 0, NULL, 0, &e)) return e.code;
    int rc = pd_recv_hdr(k, &rh, 1u << 30, &e);
    if (rc) return rc;
    if (rh.len > PD_MAX_CTRL_PAYLOAD) CHECK_FAIL_("reply of %llu bytes", (unsigned long long)rh.len);
    if ((rc = pd_recv_payload(k, &rh, buf, &e))) return rc;
    if (rh.status < 0) snprintf(msg, msglen, "%.*s", (int)rh.len, (char *)buf);
    return rh.status;
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
        pd_map after;
        rp_map(coord, &after);
        if (after.S != m.S || after.epoch != m.epoch)
            CHECK_FAIL_("the map changed: %u servers, epoch %llu", after.S,
                        (unsigned long long)after.epoch);
        for (uint32_t j = 0; j < S; j++)
            if (strcmp(after.addr[j], m.addr[j]))
                CHECK_FAIL_("server %u is now %s, was %s", j, after.addr[j], m.addr[j]);
        pd_map_free(&after);
        printf("ok: the map still names the %u real servers only\n", S);
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
        pd_conn_destroy(tk);
    }
    check_all(t, 1.0f, "after the tool's writes");
    printf("ok: h is still 1 everywhere (pulled as a worker)\n");

    /* -- quotas ----------------------------------------------------------- */
    {
        paramd_table *q;
        if (paramd_table_open(c, "q1", HN, HSPEC, NULL, &q))
            CHECK_FAIL_("open q1: %s", paramd_last_error(c));
        int rc = paramd_table_open(c, "q2", HN, HSPEC, NULL, &q);
        snprintf(msg, sizeof msg, "%s", rc ? paramd_last_error(c) : "");
        expect("coordinator, a third table", rc, msg, PARAMD_ELIMIT,
               "the coordinator's limit (--max-tables 2)");
        /* Past the coordinator, raw: each server holds h and q1; its limit
         * is 3. */
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
            if (rc) CHECK_FAIL_("server %u: a third table: %s %s", k, paramd_err_name(rc), msg);
            rc = raw(w, PD_MSG_TABLE_CREATE, 61, b.p, b.len, msg, sizeof msg);
            pd_buf_free(&b);
            snprintf(what, sizeof what, "server %u, a fourth table (raw, as a worker)", k);
            expect(what, rc, msg, PARAMD_ELIMIT, "holds 3 tables, its limit (paramd server "
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
    pd_map_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tool_trust plugin PATH | holder FIFO | impostor RANK\n");
        return 2;
    }
    if (paramd_connect(&c, NULL)) CHECK_FAIL_("connect: %s", paramd_last_error(NULL));
    int rc = 2;
    if (!strcmp(argv[1], "plugin") && argc == 3) rc = plugin(argv[2]);
    if (!strcmp(argv[1], "holder") && argc == 3) rc = holder(argv[2]);
    if (!strcmp(argv[1], "impostor") && argc == 3) rc = impostor(atoi(argv[2]));
    if (paramd_close(c) && rc == 0) CHECK_FAIL_("close: %s", paramd_last_error(c));
    if (rc == 0) printf("trust ok: %s\n", argv[1]);
    return rc;
}
