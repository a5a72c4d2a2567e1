/*
 * fuzz_server.c - libFuzzer harness: every request a server decodes, as
 * its handlers decode them.  The input is the byte stream of one
 * connection after its handshake; it runs through the server's own loop
 * (pd_recv_hdr, then srv_dispatch: the one dispatch of plain and batched
 * frames, server/session.c) on a server made in memory, so TABLE_CREATE
 * definitions, SET/PUSH/PULL ranges, sparse keys and rows, BATCH frames,
 * REGION_MAP/UNMAP and region references, and STATS are all parsed by the
 * code that parses them in production.
 *
 * The first byte picks the peer: worker 0, worker 1, a tool, or a shard's
 * primary feeding this server as its copy (--replicas: REPL frames, each
 * a worker's update run through the same dispatch as that worker, and
 * SEED parts; server/replica.c).  The
 * connection is a memory connection (net/mem.c) whose descriptor passing
 * hands out a sealed 64 KiB memfd tagged 1, so REGION_MAP of region 1
 * maps real memory.  There is no other connection, so nothing may wait
 * for another peer: of the two worker slots only the peer's own counts
 * (the other is gone), so a sync pull that would wait for a push of its
 * own that never came is refused (EDEADLOCK); a tool's pull, which would
 * wait for the workers, finds every table stopped (ESHUTDOWN) after the
 * frame that created it.  Limits are small (frames of 1 MiB, tables of
 * 16 MiB, 8 tables) so that an input cannot exhaust memory.
 *
 * Properties: no memory error or undefined behaviour, no crash, every
 * input ends (the loop stops at the first error that closes the
 * connection, or at the end of the input), and nothing leaks.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../check.h"
#include "server/server_impl.h"

#define REGION_BYTES (64u << 10)

static int memfd = -1;
static pd_transport_ops ops; /* the memory connection's, with recv_fd */

static int fuzz_recv_fd(pd_conn *c, uint64_t *tag) {
    (void)c;
    *tag = 1;
    return dup(memfd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    pd_log_set_level(PD_LOG_ERROR - 1); /* quiet: every input is an attack */
    memfd = memfd_create("fuzz-region", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    CHECK(memfd >= 0);
    CHECK(ftruncate(memfd, REGION_BYTES) == 0);
    CHECK(fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    return 0;
}

static pd_server *server_new(int live, int copy) {
    pd_server *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    s->o.max_frame = 1u << 20;
    s->o.max_tables = 8;
    s->o.max_table_bytes = 16u << 20;
    s->lfd = s->shm_lfd = -1;
    s->index = 0, s->S = 1, s->W = 2;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->gone = calloc(2, 1);
    s->jfrom = malloc(2 * sizeof *s->jfrom);
    s->wgen = calloc(2, sizeof *s->wgen);
    s->inflight = calloc(2, sizeof *s->inflight);
    CHECK(s->gone && s->jfrom && s->wgen && s->inflight);
    s->gone[!live] = 1; /* only worker `live` counts */
    s->jfrom[0] = s->jfrom[1] = -1;
    s->holder = calloc(2, sizeof *s->holder);
    s->wconns = calloc(2, sizeof *s->wconns);
    CHECK(s->holder && s->wconns);
    pthread_mutex_init(&s->repl_mu, NULL);
    pthread_cond_init(&s->repl_cv, NULL);
    pthread_mutex_init(&s->ack_mu, NULL);
    pthread_cond_init(&s->ack_cv, NULL);
    s->replicas = 1;
    if (copy) { /* copy 1 of slot 0, fed by the input */
        s->replicas = 2;
        s->copy = 1;
        s->dedup = calloc(2, sizeof *s->dedup);
        CHECK(s->dedup != NULL);
    }
    return s;
}

static void server_free(pd_server *s) {
    for (uint32_t id = 1; id < PD_MAX_TABLES; id++) pd_table_destroy(s->tables[id]);
    free(s->gone), free(s->jfrom), free(s->wgen), free(s->inflight);
    free(s->holder), free(s->wconns);
    for (int w = 0; s->dedup && w < 2; w++) pd_free(s->dedup[w].id);
    free(s->dedup);
    pthread_mutex_destroy(&s->repl_mu);
    pthread_cond_destroy(&s->repl_cv);
    pthread_mutex_destroy(&s->ack_mu);
    pthread_cond_destroy(&s->ack_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int who = data[0] % 4;
    pd_server *s = server_new(who == 1, who == 3);
    pd_buf out;
    pd_buf_init(&out);
    pd_mem_conn m;
    pd_mem_init(&m, data + 1, size - 1, &out, "fuzz");
    ops = *m.conn.ops;
    ops.recv_fd = fuzz_recv_fd;
    m.conn.ops = &ops;
    srv_conn *sc = calloc(1, sizeof *sc);
    CHECK(sc != NULL);
    sc->conn = sc->io = &m.conn;
    sc->shm_fd = -1;
    sc->srv = s;
    sc->role = who == 3 ? PD_ROLE_SERVER : who == 2 ? PD_ROLE_TOOL : PD_ROLE_WORKER;
    sc->rank = who >= 2 ? -1 : who;
    sc->seed_fd = -1;
    sc->pull_room = UINT64_MAX;
    pd_buf_init(&sc->bout);
    srv_bind_rank(sc);
    for (int frames = 0; frames < 4096; frames++) {
        pd_hdr h;
        pd_err e = {0};
        if (pd_recv_hdr(sc->conn, &h, s->o.max_frame, &e) != 0) break;
        int rc = srv_dispatch(sc, &h);
        if (who == 2)
            for (uint32_t id = 1; id < PD_MAX_TABLES; id++)
                if (s->tables[id]) pd_table_stop(s->tables[id]);
        if (rc != 0) break;
        out.len = 0; /* replies are not kept */
    }
    srv_regions_drop_all(sc);
    if (sc->seed_fd >= 0) {
        close(sc->seed_fd);
        unlink(sc->seed_path);
    }
    pd_free(sc->buf), pd_free(sc->bin), pd_free(sc->items), pd_free(sc->fwd);
    pd_buf_free(&sc->bout);
    free(sc);
    pd_buf_free(&out);
    server_free(s);
    return 0;
}
