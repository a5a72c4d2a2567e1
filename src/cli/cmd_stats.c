/*
 * cmd_stats.c - `paramd stats`: the counters of every table on every server
 * of a running cluster, and their totals.
 *
 *   paramd stats --coordinator HOST:PORT [--table ID]
 *
 * It is a tool, not a worker: it connects with the client library as one
 * (paramd_connect with role=tool: HELLO as a tool, the cluster map from
 * the coordinator's MAP, no rank, no heartbeats, no BYE), then asks each
 * server for its STATS text (paramd_server_stats: one line per table,
 * "table ID name value name value ...") and prints it, followed by one
 * total line per table: counters summed over servers, except dim (the
 * same everywhere), clock (the smallest: what every server has applied)
 * and max_ahead (the largest), and the servers' BATCH counters (frames
 * that carried many small requests, and the requests they held) summed.
 * It changes nothing in the cluster, and a worker never waits for it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/secret.h"
#include "common/common.h"
#include "paramd.h"
#include "wire/wire.h"

#define MAX_FIELDS 32

/* ==== Totals ============================================================ */

typedef struct tot {
    uint32_t id;
    int nf;
    char name[MAX_FIELDS][24];
    char text[MAX_FIELDS][24]; /* non-numeric values (kind) */
    uint64_t val[MAX_FIELDS];
    int numeric[MAX_FIELDS];
} tot;

typedef struct totals {
    tot *t;
    size_t n, cap;
} totals;

static tot *tot_get(totals *ts, uint32_t id) {
    for (size_t i = 0; i < ts->n; i++)
        if (ts->t[i].id == id) return &ts->t[i];
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 16;
        tot *p = realloc(ts->t, cap * sizeof *p);
        if (!p) return NULL;
        ts->t = p;
        ts->cap = cap;
    }
    tot *t = &ts->t[ts->n++];
    memset(t, 0, sizeof *t);
    t->id = id;
    return t;
}

/* Add one STATS line ("table ID k v k v ...") into the totals. */
static void tot_add_line(totals *ts, const char *line) {
    unsigned id;
    int at = 0;
    if (sscanf(line, "table %u %n", &id, &at) != 1 || at <= 0) return;
    tot *t = tot_get(ts, id);
    if (!t) return;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", line + at);
    char *save = NULL;
    for (char *k = strtok_r(buf, " \n", &save); k; k = strtok_r(NULL, " \n", &save)) {
        char *v = strtok_r(NULL, " \n", &save);
        if (!v) break;
        int f = 0;
        while (f < t->nf && strcmp(t->name[f], k) != 0) f++;
        if (f == t->nf) {
            if (t->nf == MAX_FIELDS) continue;
            t->nf++;
            snprintf(t->name[f], sizeof t->name[f], "%s", k);
            snprintf(t->text[f], sizeof t->text[f], "%s", v);
            t->numeric[f] = pd_parse_u64(v, &t->val[f]) == 0;
            continue;
        }
        uint64_t x;
        if (!t->numeric[f] || pd_parse_u64(v, &x) != 0) continue;
        if (!strcmp(k, "dim") || !strcmp(k, "slowest_worker"))
            ; /* the same everywhere / a rank, not a count */
        else if (!strcmp(k, "clock") || !strcmp(k, "slowest_clock"))
            t->val[f] = x < t->val[f] ? x : t->val[f];
        else if (!strcmp(k, "max_ahead") || !strcmp(k, "staleness_max") ||
                 !strcmp(k, "frontier"))
            t->val[f] = x > t->val[f] ? x : t->val[f];
        else
            t->val[f] += x;
    }
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: paramd stats --coordinator HOST:PORT [--table ID]\n"
            "\n"
            "Prints the counters of every table on every server of a running\n"
            "cluster, then their totals over the servers.  Sparse tables show\n"
            "rows (keys held), bytes (memory held), pushes, pulls, keys_pushed,\n"
            "keys_pulled, bytes_in, bytes_out, rejected, dropped, clock and\n"
            "push_cpu_ns (CPU time spent applying pushes); dense tables show\n"
            "floats, bytes, pushes, pulls, ...  (docs/sparse.md).  Per server: worker\n"
            "connections by transport, then each worker's connection (shm, or tcp\n"
            "and where from), and BATCH frames (many small requests sent as one\n"
            "frame) with the requests they held (docs/protocol.md).\n"
            "\n"
            "  --coordinator HOST:PORT  the coordinator [$PARAMD_COORDINATOR]\n"
            "  --secret-file FILE       the cluster secret [$PARAMD_SECRET_FILE]\n"
            "  --table ID               only the table with this id\n");
}

int cmd_stats(int argc, char **argv) {
    static const struct option opts[] = {{"coordinator", required_argument, 0, 'c'},
                                         {"table", required_argument, 0, 't'},
                                         {"secret-file", required_argument, 0, 'S'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *coord = NULL;
    uint32_t table = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': coord = optarg; break;
        case 't': {
            uint64_t id;
            if (pd_parse_u64(optarg, &id) || id == 0 || id >= PD_MAX_TABLES) {
                fprintf(stderr, "paramd stats: --table '%s' is not a table id (1..%d)\n",
                        optarg, PD_MAX_TABLES - 1);
                return 2;
            }
            table = (uint32_t)id;
            break;
        }
        case 'S':
            if (cli_set_secret_file("paramd stats", optarg)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!coord) coord = getenv("PARAMD_COORDINATOR");
    if (optind < argc || !coord) {
        fprintf(stderr, "paramd stats: %s\n\n",
                optind < argc ? "unexpected argument"
                              : "--coordinator HOST:PORT is required (or set PARAMD_COORDINATOR)");
        usage(stderr);
        return 2;
    }
    char conn_opts[PD_MAX_ADDR + 64];
    snprintf(conn_opts, sizeof conn_opts, "role=tool timeout_ms=10000 coordinator=%s", coord);
    paramd_client *c;
    if (paramd_connect(&c, conn_opts) != 0) {
        fprintf(stderr, "paramd stats: %s\n", paramd_last_error(NULL));
        return 1;
    }
    uint32_t S = (uint32_t)paramd_num_servers(c), W = (uint32_t)paramd_num_workers(c);
    printf("cluster at %s: %u servers, %u workers, map epoch %llu\n", coord, S, W,
           (unsigned long long)paramd_map_epoch(c));
    static char buf[PARAMD_STATS_MAX + 1];
    totals ts = {0};
    int failed = 0;
    unsigned long long batches = 0, batched = 0; /* summed over servers */
    for (uint32_t k = 0; k < S; k++) {
        const char *addr = paramd_server_address(c, (int32_t)k);
        if (paramd_server_stats(c, (int32_t)k, table, buf, sizeof buf) != 0) {
            printf("server %u at %s: %s\n", k, addr, paramd_last_error(c));
            failed = 1;
            continue;
        }
        printf("server %u at %s:\n", k, addr);
        for (char *line = buf; *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = '\0';
            if (!strncmp(line, "table ", 6)) {
                printf("  %s\n", line);
                tot_add_line(&ts, line);
            } else if (strstr(line, "worker connections")) {
                printf("  %s\n", strstr(line, "worker connections"));
                unsigned long long x, y;
                const char *bp = strstr(line, " batches ");
                if (bp && sscanf(bp, " batches %llu batched %llu", &x, &y) == 2)
                    batches += x, batched += y;
            } else if (!strncmp(line, "apply threads", 13) ||
                       !strncmp(line, "shared buffers", 14)) {
                printf("  %s\n", line);
            } else if (!strncmp(line, "conn ", 5)) {
                /* "conn R transport T peer P": which transport each
                 * worker got, and from where */
                int rank;
                char tr[8], peer[128];
                if (sscanf(line, "conn %d transport %7s peer %127s", &rank, tr, peer) == 3) {
                    if (!strcmp(tr, "shm")) printf("  connection worker %d shm\n", rank);
                    else printf("  connection worker %d %s from %s\n", rank, tr, peer);
                }
            }
            if (!nl) break;
            line = nl + 1;
        }
    }
    printf("total over %u servers:\n", S);
    for (size_t i = 0; i < ts.n; i++) {
        tot *t = &ts.t[i];
        printf("  table %u", t->id);
        for (int f = 0; f < t->nf; f++) {
            if (t->numeric[f])
                printf(" %s %llu", t->name[f], (unsigned long long)t->val[f]);
            else
                printf(" %s %s", t->name[f], t->text[f]);
        }
        printf("\n");
    }
    /* BATCH frames (many small requests in one frame) and the requests
     * they held: docs/protocol.md, "Batches". */
    printf("  batches %llu batched %llu (all servers)\n", batches, batched);
    free(ts.t);
    paramd_close(c);
    return failed;
}
