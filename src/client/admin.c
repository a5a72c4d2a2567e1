/*
 * admin.c - what a tool asks the coordinator to do to the whole cluster:
 * take a checkpoint now (paramd_checkpoint), move a server's shard to a
 * standby (paramd_drain; docs/durability.md).
 */
#include <stdio.h>
#include <string.h>

#include "client/client_impl.h"

int paramd_checkpoint(paramd_client *c, int64_t *clock, char *dir, uint64_t dirlen) {
    if (dir && dirlen) dir[0] = '\0';
    if (!c->tool)
        return cl_err(c, PARAMD_EWORKER,
                      "paramd_checkpoint is for tools (role=tool): a worker that "
                      "waited for the cut could hold it up");
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    if (!buf) return cl_err(c, PARAMD_ENOMEM, "out of memory");
    size_t n = 0;
    int rc = coord_rpc(c, PD_MSG_CHECKPOINT, 0, NULL, buf, &n);
    if (rc == 0) {
        pd_rd r;
        uint64_t seq, C;
        char d[PD_MAX_ADDR + 1];
        pd_rd_init(&r, buf, n);
        pd_get_u64(&r, &seq);
        pd_get_u64(&r, &C);
        pd_get_str(&r, d, PD_MAX_ADDR);
        if (!pd_rd_done(&r) || C > (uint64_t)INT64_MAX) {
            rc = cl_err(c, PARAMD_EPROTO, "malformed CHECKPOINT reply from the coordinator");
        } else {
            if (clock) *clock = (int64_t)C;
            if (dir && dirlen) snprintf(dir, (size_t)dirlen, "%s", d);
        }
    }
    pd_free(buf);
    return rc;
}

/* DRAIN with the server number k and, for a host drain, the host. */
static int drain_rpc(paramd_client *c, uint32_t k, const char *host, char *msg,
                     uint64_t msglen) {
    uint8_t *buf = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    if (!buf) return cl_err(c, PARAMD_ENOMEM, "out of memory");
    pd_buf b;
    pd_buf_init(&b);
    pd_put_u32(&b, k);
    if (host) pd_put_str(&b, host);
    size_t n = 0;
    int rc = coord_rpc(c, PD_MSG_DRAIN, 0, &b, buf, &n);
    pd_buf_free(&b);
    if (rc == 0) {
        pd_rd r;
        char m[PD_ERRMSG_MAX];
        pd_rd_init(&r, buf, n);
        pd_get_str(&r, m, sizeof m - 1);
        if (!pd_rd_done(&r))
            rc = cl_err(c, PARAMD_EPROTO, "malformed DRAIN reply from the coordinator");
        else if (msg && msglen)
            snprintf(msg, (size_t)msglen, "%s", m);
    }
    pd_free(buf);
    return rc;
}

int paramd_drain(paramd_client *c, int32_t server, char *msg, uint64_t msglen) {
    if (msg && msglen) msg[0] = '\0';
    if (!c->tool)
        return cl_err(c, PARAMD_EWORKER, "paramd_drain is for tools (role=tool)");
    if (server < 0) return cl_err(c, PARAMD_EINVAL, "server %d: not a server number", server);
    return drain_rpc(c, (uint32_t)server, NULL, msg, msglen);
}

int paramd_drain_host(paramd_client *c, const char *host, char *msg, uint64_t msglen) {
    if (msg && msglen) msg[0] = '\0';
    if (!c->tool)
        return cl_err(c, PARAMD_EWORKER, "paramd_drain_host is for tools (role=tool)");
    if (!host || !host[0] || strlen(host) > PD_MAX_ADDR)
        return cl_err(c, PARAMD_EINVAL, "no host to drain (1..%d characters)", PD_MAX_ADDR);
    return drain_rpc(c, PD_DRAIN_HOST, host, msg, msglen);
}
