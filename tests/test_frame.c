/*
 * test_frame.c - the frame layer's handshake and the cluster map's codec:
 * HELLO and welcome round trips and refusals, the map with and without a
 * worker's part (and maps that lie about their counts), and the whole
 * handshake over a real loopback TCP connection: accepted, a rank outside
 * the cluster, a role the answerer does not take, a first frame that is
 * not HELLO, a peer that closes before saying anything.  Then the cluster
 * secret (frame/auth.h): secret files, where a role may listen, rank
 * tickets, and the authenticated handshake: accepted with the same
 * secret; refused without one, with one on one side only, with another
 * one; a captured dialer's bytes replayed to a fresh answerer, and a fake
 * answerer replaying a captured challenge or skipping it: refused.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "frame/hello.h"
#include "rawpeer.h"
#include "wire/map.h"

/* ==== Codecs ============================================================ */

static void test_hello_codec(void) {
    pd_buf b;
    pd_buf_init(&b);
    pd_hello h = {.role = PD_ROLE_WORKER, .rank = 3}, d;
    pd_hello_encode(&b, &h);
    pd_err e = {0};
    CHECK_OK(pd_hello_decode(b.p, b.len, &d, &e));
    CHECK_INT_EQ(d.role, PD_ROLE_WORKER);
    CHECK_INT_EQ(d.rank, 3);
    CHECK_INT_EQ(d.challenge, 0);
    CHECK_INT_EQ(d.has_ticket, 0);
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len - 1, &d, &e), PARAMD_EPROTO);
    b.p[8] = 1; /* an auth length the payload does not hold */
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    b.p[8] = 0;
    b.p[0] = 77; /* unknown role */
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "unknown role 77"));
    pd_buf_free(&b);

    /* with a nonce and a ticket */
    h.challenge = 1, h.has_ticket = 1, h.ticket.gen = 7;
    for (int i = 0; i < PD_NONCE_BYTES; i++) h.nonce[i] = (uint8_t)i;
    for (int i = 0; i < PD_MAC_BYTES; i++) h.ticket.mac[i] = (uint8_t)(200 - i);
    pd_buf_init(&b);
    pd_hello_encode(&b, &h);
    CHECK_INT_EQ(b.len, 12 + PD_AUTH_MAX);
    CHECK_OK(pd_hello_decode(b.p, b.len, &d, &e));
    CHECK(d.challenge && d.has_ticket && d.ticket.gen == 7);
    CHECK(memcmp(d.nonce, h.nonce, PD_NONCE_BYTES) == 0);
    CHECK(memcmp(d.ticket.mac, h.ticket.mac, PD_MAC_BYTES) == 0);
    for (size_t n = 0; n < b.len; n++) CHECK_INT_EQ(pd_hello_decode(b.p, n, &d, &e), PARAMD_EPROTO);
    b.p[12] |= 4; /* an unknown auth flag */
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    b.p[12] = PD_AUTH_CHALLENGE; /* a flag that does not match the length */
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "auth field"));
    pd_buf_free(&b);

    /* with a deadline: 4 bytes at the end, sent only when set */
    h.challenge = 0, h.has_ticket = 0, h.op_timeout_ms = 1500;
    pd_buf_init(&b);
    pd_hello_encode(&b, &h);
    CHECK_INT_EQ(b.len, 16);
    CHECK_OK(pd_hello_decode(b.p, b.len, &d, &e));
    CHECK_INT_EQ(d.op_timeout_ms, 1500);
    CHECK_INT_EQ(d.rank, 3);
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len - 1, &d, &e), PARAMD_EPROTO);
    memset(b.p + 12, 0, 4); /* 0 is "none": never sent */
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "deadline of 0 ms"));
    b.p[12] = 0x81, b.p[13] = 0xee, b.p[14] = 0x36; /* 3600001 */
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    pd_buf_free(&b);
}

static void test_welcome_codec(void) {
    pd_buf b;
    pd_err e = {0};
    pd_welcome w = {1, 2, 3, 8, "@paramd-x", PD_FEAT_REGIONS, "h2/0123abcd/4026531833"}, d;
    pd_buf_init(&b);
    pd_welcome_encode(&b, &w);
    CHECK_OK(pd_welcome_decode(b.p, b.len, &d, &e));
    CHECK_STR_EQ(d.host, "h2/0123abcd/4026531833");
    /* a server without the host identity (before it was added): "" */
    size_t no_host = b.len - 2 - strlen(w.host);
    CHECK_OK(pd_welcome_decode(b.p, no_host, &d, &e));
    CHECK_STR_EQ(d.host, "");
    CHECK_INT_EQ(d.features, PD_FEAT_REGIONS);
    /* a later server's fields after the ones known here are skipped */
    pd_put_u32(&b, 77);
    pd_put_str(&b, "a field of a later version 1");
    CHECK_OK(pd_welcome_decode(b.p, b.len, &d, &e));
    CHECK_STR_EQ(d.host, "h2/0123abcd/4026531833");
    b.len = no_host + 2 + strlen(w.host);
    CHECK_INT_EQ(d.server, 1);
    CHECK_INT_EQ(d.index, 2);
    CHECK_INT_EQ(d.S, 3);
    CHECK_INT_EQ(d.W, 8);
    CHECK_STR_EQ(d.shm, "@paramd-x");
    CHECK_INT_EQ(d.features, PD_FEAT_REGIONS);
    /* an older server: no shm address, no features */
    CHECK_OK(pd_welcome_decode(b.p, 12, &d, &e));
    CHECK_STR_EQ(d.shm, "");
    CHECK_INT_EQ(d.features, 0);
    CHECK_INT_EQ(pd_welcome_decode(b.p, 11, &d, &e), PARAMD_EPROTO);
    CHECK_INT_EQ(pd_welcome_decode(b.p, b.len - 1, &d, &e), PARAMD_EPROTO);
    pd_buf_free(&b);
    /* index outside S */
    w.index = 3;
    pd_buf_init(&b);
    pd_welcome_encode(&b, &w);
    CHECK_INT_EQ(pd_welcome_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    pd_buf_free(&b);
    /* the coordinator's: empty */
    CHECK_OK(pd_welcome_decode(NULL, 0, &d, &e));
    CHECK_INT_EQ(d.server, 0);
}

static void test_map_codec(void) {
    char addr[3][PD_MAX_ADDR + 1] = {"127.0.0.1:1", "127.0.0.1:22", "[::1]:333"};
    pd_map m = {1, 2, 3, 5, addr, 4000, 4, 17, 0, 0, {0}, 0, 0, 0, 0}, d;
    pd_err e = {0};
    pd_buf b;
    pd_buf_init(&b);
    pd_map_encode(&b, &m);
    CHECK_OK(pd_map_decode(b.p, b.len, &d, &e));
    CHECK_INT_EQ(d.rank, 1);
    CHECK_INT_EQ(d.W, 2);
    CHECK_INT_EQ(d.S, 3);
    CHECK_INT_EQ(d.epoch, 5);
    for (int i = 0; i < 3; i++) CHECK_STR_EQ(d.addr[i], addr[i]);
    CHECK_INT_EQ(d.heartbeat_ms, 4000);
    CHECK_INT_EQ(d.M, 4);
    CHECK_INT_EQ(d.start, 17);
    CHECK_INT_EQ(d.has_ticket, 0);
    pd_map_free(&d);
    pd_map_free(&d); /* harmless twice */
    /* with the worker's ticket, the barriers count and the rejoin window;
     * cut inside any: refused; without the window, or without both (an
     * older coordinator's map): 0; a window over a day: refused */
    {
        pd_buf t;
        pd_buf_init(&t);
        m.has_ticket = 1, m.ticket_gen = 9, m.barriers = 42, m.rejoin_ms = 30000;
        m.replace_ms = 7000, m.replicas = 2;
        memset(m.ticket, 0xab, sizeof m.ticket);
        pd_map_encode(&t, &m);
        CHECK_OK(pd_map_decode(t.p, t.len, &d, &e));
        CHECK(d.has_ticket && d.ticket_gen == 9 && d.ticket[31] == 0xab);
        CHECK_INT_EQ(d.barriers, 42);
        CHECK_INT_EQ(d.rejoin_ms, 30000);
        CHECK_INT_EQ(d.replace_ms, 7000);
        CHECK_INT_EQ(d.replicas, 2);
        pd_map_free(&d);
        /* without the replicas (an older coordinator's map) */
        CHECK_OK(pd_map_decode(t.p, t.len - 4, &d, &e));
        CHECK(d.has_ticket && d.replace_ms == 7000 && d.replicas == 0);
        pd_map_free(&d);
        /* without the replacement window */
        CHECK_OK(pd_map_decode(t.p, t.len - 8, &d, &e));
        CHECK(d.has_ticket && d.rejoin_ms == 30000 && d.replace_ms == 0);
        pd_map_free(&d);
        CHECK_OK(pd_map_decode(t.p, t.len - 12, &d, &e));
        CHECK(d.has_ticket && d.barriers == 42 && d.rejoin_ms == 0);
        pd_map_free(&d);
        CHECK_OK(pd_map_decode(t.p, t.len - 20, &d, &e));
        CHECK(d.has_ticket && d.barriers == 0 && d.rejoin_ms == 0);
        pd_map_free(&d);
        for (size_t n = b.len + 1; n < t.len; n++)
            if (n != t.len - 4 && n != t.len - 8 && n != t.len - 12 && n != t.len - 20)
                CHECK_INT_EQ(pd_map_decode(t.p, n, &d, &e), PARAMD_EPROTO);
        pd_buf_free(&t);
        pd_buf_init(&t);
        m.replicas = PD_MAX_REPLICAS + 1;
        pd_map_encode(&t, &m);
        CHECK_INT_EQ(pd_map_decode(t.p, t.len, &d, &e), PARAMD_EPROTO);
        m.replicas = 0;
        pd_buf_free(&t);
        pd_buf_init(&t);
        m.rejoin_ms = 86400001;
        pd_map_encode(&t, &m);
        CHECK_INT_EQ(pd_map_decode(t.p, t.len, &d, &e), PARAMD_EPROTO);
        pd_buf_free(&t);
        pd_buf_init(&t);
        m.rejoin_ms = 0, m.replace_ms = 86400001;
        pd_map_encode(&t, &m);
        CHECK_INT_EQ(pd_map_decode(t.p, t.len, &d, &e), PARAMD_EPROTO);
        m.replace_ms = 0;
        m.barriers = 0;
        m.has_ticket = 0;
        m.rejoin_ms = 0;
        pd_buf_free(&t);
    }
    /* every truncation is refused, with nothing allocated */
    for (size_t n = 0; n < b.len; n++) {
        CHECK_INT_EQ(pd_map_decode(b.p, n, &d, &e), PARAMD_EPROTO);
        CHECK(d.addr == NULL);
    }
    CHECK(strstr(e.msg, "malformed cluster map"));
    pd_buf_free(&b);
    /* a tool's map stops after the addresses */
    m.rank = -1;
    pd_buf_init(&b);
    pd_map_encode(&b, &m);
    CHECK_OK(pd_map_decode(b.p, b.len, &d, &e));
    CHECK_INT_EQ(d.rank, -1);
    CHECK_INT_EQ(d.M, 0);
    pd_map_free(&d);
    pd_buf_free(&b);
    /* a count of servers the payload cannot hold: refused before any
     * allocation for it */
    uint8_t lie[20] = {0};
    pd_le32_put(lie, 0xffffffffu);
    pd_le32_put(lie + 4, 1);
    pd_le32_put(lie + 8, PD_MAX_SERVERS);
    CHECK_INT_EQ(pd_map_decode(lie, sizeof lie, &d, &e), PARAMD_EPROTO);
    CHECK(d.addr == NULL);
    /* a worker's part that does not hold together: M < W, rank >= M */
    m.rank = 2, m.M = 2;
    pd_buf_init(&b);
    pd_map_encode(&b, &m);
    CHECK_INT_EQ(pd_map_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    pd_buf_free(&b);
    m.rank = 0, m.M = 1;
    pd_buf_init(&b);
    pd_map_encode(&b, &m);
    CHECK_INT_EQ(pd_map_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    pd_buf_free(&b);
}

/* ==== The handshake over loopback ======================================= */

typedef struct answerer {
    int lfd;
    pd_hello_rules rules;
    pd_key key, grant;
    pd_welcome w;
    pd_hello peer;
    int rc;
    char msg[PD_ERRMSG_MAX];
} answerer;

static void *answer_main(void *arg) {
    answerer *a = arg;
    pd_conn *c = pd_tcp_accept(a->lfd);
    CHECK(c != NULL);
    pd_err e = {0};
    a->rc = pd_handshake_accept(c, &a->rules, &a->w, &a->peer, &e);
    snprintf(a->msg, sizeof a->msg, "%s", e.msg);
    pd_conn_destroy(c);
    return NULL;
}

/* Start an answerer taking `roles` with `workers` ranks, with the secret
 * key (NULL: none); *addr gets its address. */
static void answer_start_key(answerer *a, pthread_t *t, uint32_t roles, int32_t workers,
                             const pd_key *key, char *addr) {
    pd_err e = {0};
    memset(a, 0, sizeof *a);
    CHECK_OK(pd_tcp_listen("127.0.0.1", 0, &a->lfd, addr, PD_MAX_ADDR + 1, &e));
    if (key) a->key = *key;
    a->rules = (pd_hello_rules){.who = "server", .roles = roles, .workers = workers,
                                .key = key ? &a->key : NULL};
    a->w = (pd_welcome){1, 0, 1, (uint32_t)workers, "", 0, ""};
    CHECK(pthread_create(t, NULL, answer_main, a) == 0);
}

static void answer_start(answerer *a, pthread_t *t, uint32_t roles, int32_t workers,
                         char *addr) {
    answer_start_key(a, t, roles, workers, NULL, addr);
}

static void answer_end(answerer *a, pthread_t t) {
    pthread_join(t, NULL);
    close(a->lfd);
}

static void test_handshake(void) {
    const uint32_t workers_tools = PD_ROLE_BIT(PD_ROLE_WORKER) | PD_ROLE_BIT(PD_ROLE_TOOL);
    char addr[PD_MAX_ADDR + 1];
    answerer a;
    pthread_t t;
    pd_err e = {0};
    pd_welcome w;

    /* accepted: the dialer learns the welcome, the answerer the peer */
    answer_start(&a, &t, workers_tools, 4, addr);
    pd_conn *c = pd_tcp_connect(addr, 5000, &e);
    CHECK(c != NULL);
    pd_hello me = {.role = PD_ROLE_WORKER, .rank = 3};
    CHECK_OK(pd_handshake_dial(c, &me, NULL, &w, &e));
    CHECK_INT_EQ(w.server, 1);
    CHECK_INT_EQ(w.W, 4);
    pd_conn_destroy(c);
    answer_end(&a, t);
    CHECK_INT_EQ(a.rc, 0);
    CHECK_INT_EQ(a.peer.role, PD_ROLE_WORKER);
    CHECK_INT_EQ(a.peer.rank, 3);

    /* a rank outside the cluster: refused on both sides, with the reason */
    answer_start(&a, &t, workers_tools, 4, addr);
    c = pd_tcp_connect(addr, 5000, &e);
    me.rank = 4;
    CHECK_INT_EQ(pd_handshake_dial(c, &me, NULL, &w, &e), PARAMD_EWORKER);
    CHECK(strstr(e.msg, "worker rank 4 is not in 0..3"));
    pd_conn_destroy(c);
    answer_end(&a, t);
    CHECK_INT_EQ(a.rc, PARAMD_EWORKER);

    /* a role this answerer does not take */
    answer_start(&a, &t, workers_tools, 4, addr);
    c = pd_tcp_connect(addr, 5000, &e);
    me = (pd_hello){.role = PD_ROLE_SERVER, .rank = -1};
    CHECK_INT_EQ(pd_handshake_dial(c, &me, NULL, &w, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "does not take connections from a server"));
    pd_conn_destroy(c);
    answer_end(&a, t);
    CHECK_INT_EQ(a.rc, PARAMD_EPROTO);

    /* a first frame that is not HELLO */
    answer_start(&a, &t, workers_tools, 4, addr);
    c = pd_tcp_connect(addr, 5000, &e);
    pd_hdr h = {0}, rh;
    uint8_t *buf = malloc(PD_MAX_CTRL_PAYLOAD + 1);
    h.type = PD_MSG_STATS;
    h.id = 9;
    CHECK_INT_EQ(pd_rpc(c, &h, NULL, 0, &rh, buf, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "first frame is STATS, not HELLO"));
    free(buf);
    pd_conn_destroy(c);
    answer_end(&a, t);
    CHECK_INT_EQ(a.rc, PARAMD_EPROTO);

    /* a peer that leaves before saying anything */
    answer_start(&a, &t, workers_tools, 4, addr);
    c = pd_tcp_connect(addr, 5000, &e);
    pd_conn_destroy(c);
    answer_end(&a, t);
    CHECK_INT_EQ(a.rc, PARAMD_ECLOSED);
}

/* ==== The cluster secret ================================================ */

static char tmpdir[64];

static void remove_tmp(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

static void write_file(const char *path, const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    CHECK(fclose(f) == 0);
    CHECK(chmod(path, mode) == 0);
}

static void test_secret_file(void) {
    char path[128], text[256];
    pd_key k1, k2;
    pd_err e = {0};
    int created;
    snprintf(path, sizeof path, "%s/secret", tmpdir);
    /* missing: load refuses with what to do; load_or_create makes it */
    CHECK_INT_EQ(pd_secret_load(path, &k1, &e), PARAMD_ECONFIG);
    CHECK(strstr(e.msg, "does not exist: the coordinator creates it"));
    CHECK_OK(pd_secret_load_or_create(path, &k1, &created, &e));
    CHECK_INT_EQ(created, 1);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_INT_EQ(st.st_mode & 0777, 0600);
    CHECK_INT_EQ(st.st_size, 65); /* 64 hex digits and a newline */
    FILE *f = fopen(path, "r");
    CHECK(f && fgets(text, sizeof text, f));
    fclose(f);
    text[64] = '\0';
    /* the same file gives the same key, and is never replaced */
    CHECK_OK(pd_secret_load_or_create(path, &k2, &created, &e));
    CHECK_INT_EQ(created, 0);
    CHECK(memcmp(k1.k, k2.k, sizeof k1.k) == 0);
    CHECK_OK(pd_secret_load(path, &k2, &e));
    CHECK(memcmp(k1.k, k2.k, sizeof k1.k) == 0);
    /* a second secret differs */
    char other[128];
    snprintf(other, sizeof other, "%s/other", tmpdir);
    CHECK_OK(pd_secret_load_or_create(other, &k2, &created, &e));
    CHECK(memcmp(k1.k, k2.k, sizeof k1.k) != 0);
    /* readable by others: refused, and the message holds no secret */
    CHECK(chmod(path, 0644) == 0);
    CHECK_INT_EQ(pd_secret_load(path, &k2, &e), PARAMD_ECONFIG);
    CHECK(strstr(e.msg, "chmod 600") && !strstr(e.msg, text));
    CHECK(chmod(path, 0600) == 0);
    /* a hand-written one: white space at the end is not part of it */
    char hand[128];
    snprintf(hand, sizeof hand, "%s/hand", tmpdir);
    write_file(hand, "correct horse battery staple\n\n", 0600);
    CHECK_OK(pd_secret_load(hand, &k1, &e));
    write_file(hand, "correct horse battery staple", 0400);
    CHECK_OK(pd_secret_load(hand, &k2, &e));
    CHECK(memcmp(k1.k, k2.k, sizeof k1.k) == 0);
    CHECK(chmod(hand, 0600) == 0);
    write_file(hand, "short\n", 0600);
    CHECK_INT_EQ(pd_secret_load(hand, &k1, &e), PARAMD_ECONFIG);
    CHECK(strstr(e.msg, "fewer than 16"));
    CHECK_INT_EQ(pd_secret_load(tmpdir, &k1, &e), PARAMD_ECONFIG); /* a directory */
    printf("ok secret files: created 0600, stable, refused when readable by others or short\n");
}

static void test_loopback(void) {
    static const char *const yes[] = {"127.0.0.1", "127.9.8.7", "localhost", "::1", "[::1]",
                                      "::ffff:127.0.0.1"};
    static const char *const no[] = {"0.0.0.0", "10.0.0.1", "::", "[::]", "example.com", "",
                                     "128.0.0.1", "::ffff:10.0.0.1"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        CHECK_INT_EQ(pd_host_is_loopback(yes[i]), 1);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        CHECK_INT_EQ(pd_host_is_loopback(no[i]), 0);
    pd_err e = {0};
    CHECK_OK(pd_listen_check("paramd server", "127.0.0.1", 0, &e));
    CHECK_OK(pd_listen_check("paramd server", "0.0.0.0", 1, &e));
    CHECK_INT_EQ(pd_listen_check("paramd server", "0.0.0.0", 0, &e), PARAMD_ECONFIG);
    CHECK(strstr(e.msg, "--listen 0.0.0.0 is reachable from other machines") &&
          strstr(e.msg, "--secret-file"));
}

static void test_tickets(void) {
    pd_key g, other;
    pd_key_random(&g);
    pd_key_random(&other);
    pd_ticket t, bad;
    pd_ticket_make(&g, 5, 3, &t);
    CHECK_INT_EQ(t.gen, 3);
    CHECK_INT_EQ(pd_ticket_ok(&g, 5, &t), 1);
    CHECK_INT_EQ(pd_ticket_ok(&g, 4, &t), 0);     /* another rank */
    CHECK_INT_EQ(pd_ticket_ok(&other, 5, &t), 0); /* another coordinator */
    bad = t, bad.gen = 4;                          /* another incarnation */
    CHECK_INT_EQ(pd_ticket_ok(&g, 5, &bad), 0);
    bad = t, bad.mac[31] ^= 1;
    CHECK_INT_EQ(pd_ticket_ok(&g, 5, &bad), 0);
}

/* A fake answerer: reads the dialer's HELLO, answers with canned bytes,
 * then records whether the dialer sent anything more before closing. */
typedef struct faker {
    int lfd;
    const uint8_t *say;
    size_t nsay;
    int sent_more;
} faker;

static void *fake_main(void *arg) {
    faker *f = arg;
    pd_conn *c = pd_tcp_accept(f->lfd);
    CHECK(c != NULL);
    pd_err e = {0};
    pd_hdr h;
    uint8_t *buf = malloc(PD_MAX_CTRL_PAYLOAD + 1);
    CHECK_OK(pd_recv_hdr(c, &h, PD_MAX_CTRL_PAYLOAD, &e));
    CHECK_OK(pd_recv_payload(c, &h, buf, &e));
    struct iovec iov = {(void *)f->say, f->nsay};
    CHECK(pd_conn_writev(c, &iov, 1, &e) == 0);
    f->sent_more = pd_recv_hdr(c, &h, PD_MAX_CTRL_PAYLOAD, &e) != PARAMD_ECLOSED;
    free(buf);
    pd_conn_destroy(c);
    return NULL;
}

static void test_auth_handshake(void) {
    const uint32_t workers = PD_ROLE_BIT(PD_ROLE_WORKER) | PD_ROLE_BIT(PD_ROLE_TOOL);
    char addr[PD_MAX_ADDR + 1];
    answerer a;
    pthread_t t;
    pd_err e = {0};
    pd_welcome w;
    pd_key k, wrong;
    pd_key_random(&k);
    pd_key_random(&wrong);
    pd_hello me = {.role = PD_ROLE_WORKER, .rank = 1};

    /* the same secret on both sides: accepted, the welcome arrives */
    answer_start_key(&a, &t, workers, 4, &k, addr);
    rp_recorder rec;
    pd_conn *c = rp_record(pd_tcp_connect(addr, 5000, &e), &rec);
    CHECK_OK(pd_handshake_dial(c, &me, &k, &w, &e));
    CHECK_INT_EQ(w.server, 1);
    CHECK_INT_EQ(w.W, 4);
    answer_end(&a, t);
    CHECK_INT_EQ(a.rc, 0);
    CHECK_INT_EQ(a.peer.challenge, 1);
    uint8_t said[4096], heard[4096];
    size_t nsaid = rec.nout, nheard = rec.nin;
    memcpy(said, rec.out, nsaid);
    memcpy(heard, rec.in, nheard);
    pd_conn_destroy(c);
    CHECK_INT_EQ(nsaid, 2 * PD_HDR_SIZE + 12 + 4 + PD_NONCE_BYTES + PD_MAC_BYTES);

    /* no secret on the dialer: the answerer refuses before telling it
     * anything, and says how to give one */
    answer_start_key(&a, &t, workers, 4, &k, addr);
    c = pd_tcp_connect(addr, 5000, &e);
    CHECK_INT_EQ(pd_handshake_dial(c, &me, NULL, &w, &e), PARAMD_EAUTH);
    CHECK(strstr(e.msg, "requires the cluster secret") && strstr(e.msg, "--secret-file"));
    pd_conn_destroy(c);
    answer_end(&a, t);
    CHECK_INT_EQ(a.rc, PARAMD_EAUTH);

    /* a secret on the dialer, none on the answerer: no silent downgrade */
    answer_start(&a, &t, workers, 4, addr);
    c = pd_tcp_connect(addr, 5000, &e);
    CHECK_INT_EQ(pd_handshake_dial(c, &me, &k, &w, &e), PARAMD_EAUTH);
    CHECK(strstr(e.msg, "runs without a cluster secret"));
    pd_conn_destroy(c);
    answer_end(&a, t);
    CHECK_INT_EQ(a.rc, PARAMD_EAUTH);

    /* another secret: the dialer finds the answerer's proof wrong and stops
     * (it never sends its own), the answerer sees it leave */
    answer_start_key(&a, &t, workers, 4, &k, addr);
    c = pd_tcp_connect(addr, 5000, &e);
    CHECK_INT_EQ(pd_handshake_dial(c, &me, &wrong, &w, &e), PARAMD_EAUTH);
    CHECK(strstr(e.msg, "did not prove it knows the cluster secret"));
    pd_conn_destroy(c);
    answer_end(&a, t);
    CHECK_INT_EQ(a.rc, PARAMD_ECLOSED);

    /* a captured dialer's bytes replayed to a fresh answerer: its proof
     * covers the old nonce, so it is refused */
    answer_start_key(&a, &t, workers, 4, &k, addr);
    c = pd_tcp_connect(addr, 5000, &e);
    struct iovec iov = {said, nsaid};
    CHECK_OK(pd_conn_writev(c, &iov, 1, &e));
    pd_hdr rh;
    uint8_t *buf = malloc(PD_MAX_CTRL_PAYLOAD + 1);
    CHECK_OK(pd_recv_hdr(c, &rh, PD_MAX_CTRL_PAYLOAD, &e)); /* the fresh challenge */
    CHECK_INT_EQ(rh.status, 0);
    CHECK_OK(pd_recv_payload(c, &rh, buf, &e));
    CHECK_OK(pd_recv_hdr(c, &rh, PD_MAX_CTRL_PAYLOAD, &e)); /* the refusal */
    CHECK_INT_EQ(rh.type, PD_MSG_AUTH | PD_REPLY);
    CHECK_INT_EQ(rh.status, PARAMD_EAUTH);
    pd_conn_destroy(c);
    answer_end(&a, t);
    CHECK_INT_EQ(a.rc, PARAMD_EAUTH);
    CHECK(strstr(a.msg, "authentication failed"));

    /* a fake answerer replaying a captured challenge: the dialer's nonce
     * is fresh, so the proof is wrong; it stops and sends nothing more */
    faker f = {0};
    CHECK_OK(pd_tcp_listen("127.0.0.1", 0, &f.lfd, addr, sizeof addr, &e));
    f.say = heard;
    f.nsay = PD_HDR_SIZE + PD_CHALLENGE_BYTES;
    CHECK(pthread_create(&t, NULL, fake_main, &f) == 0);
    c = pd_tcp_connect(addr, 5000, &e);
    CHECK_INT_EQ(pd_handshake_dial(c, &me, &k, &w, &e), PARAMD_EAUTH);
    pd_conn_destroy(c);
    pthread_join(t, NULL);
    CHECK_INT_EQ(f.sent_more, 0);
    /* and one that answers with a plain welcome, as if it had no secret */
    pd_buf wb;
    pd_buf_init(&wb);
    pd_welcome fw = {1, 0, 1, 4, "", 0, ""};
    pd_welcome_encode(&wb, &fw);
    pd_hdr fh = {PD_MAGIC, PD_PROTO_VERSION, PD_MSG_HELLO | PD_REPLY, 1, 0, 0, 0, wb.len};
    uint8_t canned[256];
    pd_hdr_encode(&fh, canned);
    memcpy(canned + PD_HDR_SIZE, wb.p, wb.len);
    f.say = canned, f.nsay = PD_HDR_SIZE + wb.len;
    CHECK(pthread_create(&t, NULL, fake_main, &f) == 0);
    c = pd_tcp_connect(addr, 5000, &e);
    CHECK_INT_EQ(pd_handshake_dial(c, &me, &k, &w, &e), PARAMD_EAUTH);
    CHECK(strstr(e.msg, "without authenticating itself"));
    pd_conn_destroy(c);
    pthread_join(t, NULL);
    CHECK_INT_EQ(f.sent_more, 0);
    close(f.lfd);
    pd_buf_free(&wb);
    free(buf);
    printf("ok handshake: secret both ways; none, one-sided, wrong and replayed refused\n");
}

static int refuse_claim(void *arg, const pd_hello *peer, pd_err *e) {
    (void)arg;
    return pd_seterr(e, PARAMD_EWORKER, "rank %d is held", peer->rank);
}

static void test_ticket_handshake(void) {
    const uint32_t workers = PD_ROLE_BIT(PD_ROLE_WORKER) | PD_ROLE_BIT(PD_ROLE_TOOL);
    char addr[PD_MAX_ADDR + 1];
    answerer a;
    pthread_t t;
    pd_err e = {0};
    pd_key k, g;
    pd_key_random(&k);
    pd_key_random(&g);
    struct {
        const char *what;
        int ticket, good, claim;
        int want;
    } cases[] = {
        {"no ticket", 0, 0, 0, PARAMD_EWORKER},
        {"a forged ticket", 1, 0, 0, PARAMD_EWORKER},
        {"the coordinator's ticket", 1, 1, 0, 0},
        {"a ticket the claim check refuses", 1, 1, 1, PARAMD_EWORKER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        answer_start_key(&a, &t, workers, 4, &k, addr);
        a.grant = g;
        a.rules.grant = &a.grant;
        a.rules.need_ticket = 1;
        if (cases[i].claim) a.rules.claim = refuse_claim;
        pd_hello me = {.role = PD_ROLE_WORKER, .rank = 2, .has_ticket = cases[i].ticket};
        if (cases[i].good) pd_ticket_make(&g, 2, 5, &me.ticket);
        else memset(me.ticket.mac, 7, sizeof me.ticket.mac);
        pd_conn *c = pd_tcp_connect(addr, 5000, &e);
        int rc = pd_handshake_dial(c, &me, &k, NULL, &e);
        pd_conn_destroy(c);
        answer_end(&a, t);
        if (rc != cases[i].want || a.rc != cases[i].want)
            CHECK_FAIL_("%s: dialer %d, answerer %d (%s), expected %d", cases[i].what, rc,
                        a.rc, a.msg, cases[i].want);
        if (rc == 0) CHECK(a.peer.has_ticket && a.peer.ticket.gen == 5);
        printf("  %s: %s\n", cases[i].what, rc ? a.msg : "accepted");
    }
    printf("ok rank tickets at the handshake\n");
}

int main(void) {
    test_hello_codec();
    test_welcome_codec();
    test_map_codec();
    test_handshake();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/paramd_test_frame.XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    atexit(remove_tmp);
    test_secret_file();
    test_loopback();
    test_tickets();
    test_auth_handshake();
    test_ticket_handshake();
    puts("test_frame: ok");
    return 0;
}
