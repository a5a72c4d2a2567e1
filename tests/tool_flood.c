/*
 * tool_flood.c - hostile peers for tests/it_limits.sh: idle sockets,
 * half-sent handshakes, a one-byte-at-a-time sender, connections up to a
 * limit.  Each mode prints one result line and exits 0 when the peer (a
 * server or the coordinator) behaved as docs/limits.md says, else fails
 * through check.h.  Nothing here waits on a clock to decide: a mode waits
 * for the peer's close (bounded by a generous safety timeout) and checks
 * what happened before it.
 *
 *   idle ADDR N        open N TCP connections that never say anything,
 *                      print "idle N open", then hold them until stdin
 *                      ends (the test closes it when done)
 *   silent ADDR        one connection that says nothing: the peer closes
 *                      it (the handshake deadline)
 *   half ADDR          one that sends 20 bytes of a HELLO header and
 *                      stops: the peer closes it
 *   trickle ADDR MS    a tool connection (HELLO done) that sends a STATS
 *                      frame one byte every MS ms: the peer drops it
 *                      before the frame is whole (the frame deadline)
 *   addr COORD         print server 0's address (from the cluster map)
 *   die COORD          register as worker 0, then exit without a goodbye
 *   tables COORD       as worker 0 of a cluster whose server has
 *                      --max-table-mb 1 and whose coordinator has
 *                      --max-tables 3: a dense table of 1M floats and a
 *                      sparse table grown past 1 MiB are refused with
 *                      PARAMD_ELIMIT naming the option, small ones work,
 *                      and the 4th table is refused by the coordinator
 *   full COORD N       N tool connections that said HELLO (and had a MAP
 *                      answered), then one more: it must be refused with
 *                      PARAMD_ELIMIT and a message naming the limit
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "paramd.h"
#include "rawpeer.h"

/* Wait until the peer closes c (read returns 0 or an error), up to
 * safety_ms: 1 closed, 0 still open. */
static int wait_closed(pd_conn *c, int safety_ms) {
    struct pollfd p = {c->fd, POLLIN, 0};
    int64_t end = pd_now_ms() + safety_ms;
    for (;;) {
        int64_t left = end - pd_now_ms();
        if (left <= 0) return 0;
        if (poll(&p, 1, (int)left) <= 0) continue;
        char b[256];
        ssize_t r = read(c->fd, b, sizeof b);
        if (r <= 0) return 1;
        /* an error reply before the close is fine: keep reading */
    }
}

static void raise_nofile(rlim_t want) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void msleep(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tool_flood idle|silent|half|trickle|full ADDR [N|MS]\n");
        return 2;
    }
    const char *mode = argv[1], *addr = argv[2];
    if (strcmp(mode, "addr") == 0) {
        pd_map m;
        rp_map(addr, &m);
        printf("%s\n", m.addr[0]);
        pd_map_free(&m);
        return 0;
    }
    if (strcmp(mode, "idle") == 0) {
        int n = argc > 3 ? atoi(argv[3]) : 100;
        raise_nofile((rlim_t)n + 64);
        pd_conn **cs = calloc((size_t)n, sizeof *cs);
        CHECK(cs != NULL);
        int opened = 0;
        for (int i = 0; i < n; i++) {
            pd_err e = {0};
            cs[i] = pd_tcp_connect(addr, 5000, &e);
            if (cs[i]) opened++;
        }
        printf("idle %d open\n", opened);
        fflush(stdout);
        char b[64];
        while (read(0, b, sizeof b) > 0) {}
        for (int i = 0; i < n; i++) pd_conn_destroy(cs[i]);
        free(cs);
        return 0;
    }
    if (strcmp(mode, "silent") == 0 || strcmp(mode, "half") == 0) {
        pd_conn *c = rp_dial(addr);
        if (mode[0] == 'h') {
            uint8_t hb[PD_HDR_SIZE];
            pd_hdr h = {0};
            h.magic = PD_MAGIC, h.version = PD_PROTO_VERSION, h.type = PD_MSG_HELLO;
            h.id = 1, h.len = 12;
            pd_hdr_encode(&h, hb);
            CHECK(write(c->fd, hb, 20) == 20);
        }
        CHECK(wait_closed(c, 60000));
        printf("%s: closed by the peer\n", mode);
        pd_conn_destroy(c);
        return 0;
    }
    if (strcmp(mode, "trickle") == 0) {
        int ms = argc > 3 ? atoi(argv[3]) : 1000;
        pd_conn *c = rp_tool(addr);
        uint8_t hb[PD_HDR_SIZE];
        pd_hdr h = {0};
        h.magic = PD_MAGIC, h.version = PD_PROTO_VERSION, h.type = PD_MSG_STATS;
        h.id = 2;
        pd_hdr_encode(&h, hb);
        int sent = 0;
        for (; sent < PD_HDR_SIZE; sent++) {
            struct pollfd p = {c->fd, POLLIN, 0};
            if (poll(&p, 1, 0) > 0) break; /* closed (or told why) */
            if (send(c->fd, hb + sent, 1, MSG_NOSIGNAL) != 1) break;
            msleep(ms);
        }
        CHECK(sent < PD_HDR_SIZE); /* dropped before the frame was whole */
        CHECK(wait_closed(c, 60000));
        printf("trickle: dropped after %d of %d bytes\n", sent, PD_HDR_SIZE);
        pd_conn_destroy(c);
        return 0;
    }
    if (strcmp(mode, "die") == 0) {
        paramd_client *c;
        char opt[300];
        snprintf(opt, sizeof opt, "coordinator=%s rank=0", addr);
        CHECK_OK(paramd_connect(&c, opt));
        printf("die: registered as worker %d, exiting without a goodbye\n", paramd_rank(c));
        fflush(stdout);
        _exit(0);
    }
    if (strcmp(mode, "tables") == 0) {
        paramd_client *c;
        paramd_table *t;
        char opt[300];
        snprintf(opt, sizeof opt, "coordinator=%s rank=0", addr);
        CHECK_OK(paramd_connect(&c, opt));
        int rc = paramd_table_open(c, "big", 1u << 20, "rule=adam", NULL, &t);
        CHECK_INT_EQ(rc, PARAMD_ELIMIT);
        CHECK(strstr(paramd_last_error(c), "--max-table-mb") != NULL);
        printf("tables: dense refused: %s\n", paramd_last_error(c));
        CHECK_OK(paramd_table_open(c, "small", 1000, "rule=sgd", NULL, &t));
        CHECK_OK(paramd_sparse_open(c, "rows", 64, "rule=sgd", &t));
        static uint64_t keys[1024];
        static float g[1024 * 64];
        uint64_t next = 0;
        for (;;) {
            for (int i = 0; i < 1024; i++) keys[i] = next + (uint64_t)i;
            rc = paramd_sparse_push(t, keys, 1024, g);
            if (rc) break;
            next += 1024;
            CHECK(next < (1u << 20)); /* the limit must come first */
        }
        CHECK_INT_EQ(rc, PARAMD_ELIMIT);
        CHECK(strstr(paramd_last_error(c), "--max-table-mb") != NULL);
        printf("tables: sparse refused after %llu rows: %s\n", (unsigned long long)next,
               paramd_last_error(c));
        rc = paramd_table_open(c, "fourth", 10, "rule=sgd", NULL, &t);
        CHECK_INT_EQ(rc, PARAMD_ELIMIT);
        CHECK(strstr(paramd_last_error(c), "--max-tables") != NULL);
        printf("tables: 4th refused: %s\n", paramd_last_error(c));
        CHECK_OK(paramd_close(c));
        return 0;
    }
    if (strcmp(mode, "full") == 0) {
        int n = argc > 3 ? atoi(argv[3]) : 8;
        pd_conn **cs = calloc((size_t)n, sizeof *cs);
        CHECK(cs != NULL);
        static uint8_t buf[PD_MAX_CTRL_PAYLOAD + 1];
        for (int i = 0; i < n; i++) {
            cs[i] = rp_tool(addr);
            /* One request answered: its handshake is over on both sides
             * (a connection still in it could be evicted for the next). */
            pd_err e = {0};
            pd_hdr h = {0}, rh;
            h.type = PD_MSG_MAP;
            h.id = 2;
            if (pd_rpc(cs[i], &h, NULL, 0, &rh, buf, &e)) CHECK_FAIL_("MAP: %s", e.msg);
        }
        pd_err e = {0};
        pd_conn *extra = rp_dial(addr);
        int rc = rp_hello(extra, PD_ROLE_TOOL, -1, NULL, &e);
        CHECK_INT_EQ(rc, PARAMD_ELIMIT);
        CHECK(strstr(e.msg, "--max-connections") != NULL);
        printf("full: connection %d refused: %s\n", n + 1, e.msg);
        pd_conn_destroy(extra);
        for (int i = 0; i < n; i++) pd_conn_destroy(cs[i]);
        free(cs);
        return 0;
    }
    fprintf(stderr, "tool_flood: unknown mode '%s'\n", mode);
    return 2;
}
