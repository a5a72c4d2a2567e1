/*
 * status.c - the coordinator's view of the cluster for tools
 * (paramd_cluster_status: the STATUS request, what `paramd status`
 * reads).  The servers' side is stats.c.
 */
#include <string.h>

#include "client/client_impl.h"
#include "common/common.h"
#include "paramd.h"
#include "wire/wire.h"

int paramd_cluster_status(paramd_client *c, char *buf, uint64_t len) {
    if (!c) return PARAMD_EINVAL;
    if (!buf || len == 0)
        return cl_err(c, PARAMD_EINVAL,
                      "paramd_cluster_status: NULL or empty buffer (give it "
                      "PARAMD_STATS_MAX + 1 bytes)");
    buf[0] = '\0';
    uint8_t *reply = pd_malloc(PD_MAX_CTRL_PAYLOAD + 1);
    if (!reply) return cl_err(c, PARAMD_ENOMEM, "out of memory");
    size_t n = 0;
    int rc = coord_rpc(c, PD_MSG_STATUS, 0, NULL, reply, &n);
    if (!rc) {
        size_t keep = n < len ? n : (size_t)len - 1;
        memcpy(buf, reply, keep);
        buf[keep] = '\0';
        if (n >= len)
            rc = cl_err(c, PARAMD_ETOOBIG,
                        "the coordinator's STATUS text has %zu bytes, the buffer room "
                        "for %llu: it is cut there", n, (unsigned long long)(len - 1));
    }
    pd_free(reply);
    return rc;
}
