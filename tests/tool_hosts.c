/*
 * tool_hosts.c - a worker program for the it_hosts_* tests (not a test by
 * itself): which transport did each of this worker's links get?
 *
 *   tool_hosts links
 *       Waits at a barrier (so every worker is connected), then asks every
 *       server for its STATS and prints, for each, the line the server
 *       keeps about this worker's connection:
 *           rank R server K shm
 *           rank R server K tcp from HOST:PORT
 *       then a second barrier (the
 *       servers still know every worker while the others ask) and close.
 *       Exits 1 if a server has no such line.
 */
#include <stdio.h>
#include <string.h>

#include "paramd.h"

int main(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "links") != 0) {
        fprintf(stderr, "usage: tool_hosts links\n");
        return 2;
    }
    paramd_client *c;
    if (paramd_connect(&c, NULL)) {
        fprintf(stderr, "FAIL connect: %s\n", paramd_last_error(NULL));
        return 1;
    }
    int rc = 0;
    if (paramd_barrier(c)) {
        fprintf(stderr, "FAIL barrier: %s\n", paramd_last_error(c));
        return 1;
    }
    static char text[PARAMD_STATS_MAX + 1];
    char want[64];
    int32_t r = paramd_rank(c);
    snprintf(want, sizeof want, "conn %d transport ", r);
    for (int32_t k = 0; k < paramd_num_servers(c); k++) {
        if (paramd_server_stats(c, k, 0, text, sizeof text)) {
            fprintf(stderr, "FAIL stats of server %d: %s\n", k, paramd_last_error(c));
            rc = 1;
            continue;
        }
        const char *line = strstr(text, want);
        if (!line) {
            fprintf(stderr, "FAIL server %d has no line for worker %d:\n%s", k, r, text);
            rc = 1;
            continue;
        }
        /* "conn R transport T peer P": printed as "shm" or "tcp from P" */
        char tr[8] = "", peer[128] = "";
        sscanf(line + strlen(want), "%7s peer %127s", tr, peer);
        if (!strcmp(tr, "shm")) printf("rank %d server %d shm\n", r, k);
        else printf("rank %d server %d %s from %s\n", r, k, tr, peer);
    }
    fflush(stdout);
    if (paramd_barrier(c)) {
        fprintf(stderr, "FAIL barrier: %s\n", paramd_last_error(c));
        rc = 1;
    }
    if (paramd_close(c)) rc = 1;
    return rc;
}
