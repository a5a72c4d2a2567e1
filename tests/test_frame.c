/*
 * test_frame.c - the frame layer's handshake and the cluster map's codec:
 * HELLO and welcome round trips and refusals, the map with and without a
 * worker's part (and maps that lie about their counts), and the whole
 * handshake over a real loopback TCP connection: accepted, a rank outside
 * the cluster, a role the answerer does not take, a first frame that is
 * not HELLO, a peer that closes before saying anything.
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "frame/hello.h"
#include "wire/map.h"

/* ==== Codecs ============================================================ */

static void test_hello_codec(void) {
    pd_buf b;
    pd_buf_init(&b);
    pd_hello h = {PD_ROLE_WORKER, 3}, d;
    pd_hello_encode(&b, &h);
    pd_err e = {0};
    CHECK_OK(pd_hello_decode(b.p, b.len, &d, &e));
    CHECK_INT_EQ(d.role, PD_ROLE_WORKER);
    CHECK_INT_EQ(d.rank, 3);
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len - 1, &d, &e), PARAMD_EPROTO);
    b.p[8] = 1; /* authentication data: not in version 1 */
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    b.p[8] = 0;
    b.p[0] = 77; /* unknown role */
    CHECK_INT_EQ(pd_hello_decode(b.p, b.len, &d, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "unknown role 77"));
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
    pd_map m = {1, 2, 3, 5, addr, 4000, 4, 17}, d;
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
    pd_map_free(&d);
    pd_map_free(&d); /* harmless twice */
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

/* Start an answerer taking `roles` with `workers` ranks; *addr gets its
 * address. */
static void answer_start(answerer *a, pthread_t *t, uint32_t roles, int32_t workers,
                         char *addr) {
    pd_err e = {0};
    memset(a, 0, sizeof *a);
    CHECK_OK(pd_tcp_listen("127.0.0.1", 0, &a->lfd, addr, PD_MAX_ADDR + 1, &e));
    a->rules = (pd_hello_rules){"server", roles, workers};
    a->w = (pd_welcome){1, 0, 1, (uint32_t)workers, "", 0, ""};
    CHECK(pthread_create(t, NULL, answer_main, a) == 0);
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
    pd_hello me = {PD_ROLE_WORKER, 3};
    CHECK_OK(pd_handshake_dial(c, &me, &w, &e));
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
    CHECK_INT_EQ(pd_handshake_dial(c, &me, &w, &e), PARAMD_EWORKER);
    CHECK(strstr(e.msg, "worker rank 4 is not in 0..3"));
    pd_conn_destroy(c);
    answer_end(&a, t);
    CHECK_INT_EQ(a.rc, PARAMD_EWORKER);

    /* a role this answerer does not take */
    answer_start(&a, &t, workers_tools, 4, addr);
    c = pd_tcp_connect(addr, 5000, &e);
    me = (pd_hello){PD_ROLE_SERVER, -1};
    CHECK_INT_EQ(pd_handshake_dial(c, &me, &w, &e), PARAMD_EPROTO);
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

int main(void) {
    test_hello_codec();
    test_welcome_codec();
    test_map_codec();
    test_handshake();
    puts("test_frame: ok");
    return 0;
}
