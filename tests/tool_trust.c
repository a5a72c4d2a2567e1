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
 * Prints "trust ok: MODE" and exits 0, else a message and 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: tool_trust plugin PATH\n");
        return 2;
    }
    if (paramd_connect(&c, NULL)) CHECK_FAIL_("connect: %s", paramd_last_error(NULL));
    int rc = 2;
    if (!strcmp(argv[1], "plugin") && argc == 3) rc = plugin(argv[2]);
    if (paramd_close(c) && rc == 0) CHECK_FAIL_("close: %s", paramd_last_error(c));
    if (rc == 0) printf("trust ok: %s\n", argv[1]);
    return rc;
}
