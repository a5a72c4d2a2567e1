/*
 * tool_ckincr.c - a worker and a checkpoint reader for
 * tests/it_ckpt_incr.sh (not a test by itself): incremental checkpoints
 * of sparse tables.  Exits 0 when everything it did worked, 1 with a
 * message otherwise.
 *
 *   tool_ckincr work ROOT PHASES FAIL OUT
 *       The only worker of a sync cluster with a sparse table "emb" (dim
 *       8, adam: two state planes and a step count per row) and a dense
 *       table "bias" (16 floats).  Phase 0 trains every one of NKEYS keys
 *       for 2 clocks; phase p = 1..PHASES-1 trains 40 keys of its own
 *       (1% of the rows) for 3 clocks.  After each phase it waits until
 *       every server applied its last clock (a sync pull of every key)
 *       and asks for a checkpoint through a tool client, printing
 *       "phase P checkpoint DIR clock C".  Phase FAIL's checkpoint is made
 *       to fail on server 1 (its file's .tmp name is taken by a directory
 *       first: the open fails, as on a full disk), which the tool checks
 *       and prints as "phase P checkpoint failed: MESSAGE".  The keys each
 *       phase trained go to OUT/keys.P, sorted, one a line.  Gradients are
 *       a function of the key, the clock and the element: two runs of the
 *       same phases are bit-identical at every clock.
 *   tool_ckincr dump DIR
 *       Every row of the checkpoint in DIR, one a line, unsorted: "s ID KEY
 *       STEPS BITS..." for a sparse row (its floats as the arena holds
 *       them, params then rule state, as hex bits), "d ID OFFSET STEPS
 *       BITS..." for a dense element (its value and rule state).  Read with
 *       a decoder of its own (not the server's load), so that it checks
 *       restore independently.  DIR must be a full checkpoint.
 *   tool_ckincr keys DIR
 *       The keys of the sparse rows in DIR's files (full or delta), one a
 *       line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "durable/ckfile.h"
#include "durable/manifest.h"
#include "paramd.h"
#include "table/def.h"
#include "wire/wire.h"

#define NKEYS 4000u
#define DIM 8u
#define NDENSE 16u
#define PHASE_KEYS 40u
#define SPEC "rule=adam lr=0.01 consistency=sync"

static paramd_client *c;

#define MUST(call)                                                             \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_)                                                               \
            CHECK_FAIL_("%s -> %s: %s", #call, paramd_err_name(rc_),           \
                        paramd_last_error(c));                                 \
    } while (0)

/* ==== The worker ========================================================= */

static float grad_of(uint64_t key, int64_t clock, uint32_t j) {
    return (float)((int)((key * 7 + (uint64_t)clock * 3 + j) % 17) - 8) / 16.0f;
}

/* One clock: pull the keys' rows, push their gradients, the same for the
 * dense table, then advance the clock. */
static void step(paramd_table *emb, paramd_table *bias, const uint64_t *keys, uint32_t n) {
    static float rows[NKEYS * DIM], g[NKEYS * DIM], d[NDENSE];
    int64_t clock = paramd_get_clock(c);
    MUST(paramd_sparse_pull(emb, keys, n, rows));
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < DIM; j++) g[i * DIM + j] = grad_of(keys[i], clock, j);
    MUST(paramd_sparse_push(emb, keys, n, g));
    MUST(paramd_pull(bias, 0, NDENSE, d));
    for (uint32_t j = 0; j < NDENSE; j++) d[j] = grad_of(j, clock, 0);
    MUST(paramd_push(bias, 0, NDENSE, d));
    paramd_clock(c);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int work(const char *root, int phases, int fail_phase, const char *out) {
    static uint64_t all[NKEYS], keys[PHASE_KEYS];
    static float rows[NKEYS * DIM];
    paramd_client *tool = NULL;
    paramd_table *emb, *bias;
    uint64_t last_seq = 0;
    MUST(paramd_sparse_open(c, "emb", DIM, SPEC, &emb));
    MUST(paramd_table_open(c, "bias", NDENSE, SPEC, NULL, &bias));
    if (paramd_connect(&tool, "role=tool"))
        CHECK_FAIL_("tool connect: %s", paramd_last_error(NULL));
    for (uint32_t i = 0; i < NKEYS; i++) all[i] = i;
    for (int p = 0; p < phases; p++) {
        const uint64_t *k = all;
        uint32_t n = NKEYS, clocks = 2;
        if (p > 0) { /* 97 is prime to NKEYS: 40 distinct keys */
            for (uint32_t i = 0; i < PHASE_KEYS; i++)
                keys[i] = ((uint64_t)p * 7919u + i * 97u) % NKEYS;
            k = keys, n = PHASE_KEYS, clocks = 3;
        }
        for (uint32_t s = 0; s < clocks; s++) step(emb, bias, k, n);
        char path[4200];
        snprintf(path, sizeof path, "%s/keys.%d", out, p);
        FILE *f = fopen(path, "w");
        if (!f) CHECK_FAIL_("%s: %s", path, strerror(errno));
        uint64_t sorted[NKEYS];
        memcpy(sorted, k, n * sizeof *k);
        qsort(sorted, n, sizeof *sorted, cmp_u64);
        for (uint32_t i = 0; i < n; i++) fprintf(f, "%llu\n", (unsigned long long)sorted[i]);
        fclose(f);
        /* every server has applied the phase's last clock once a sync pull
         * of every key (on every server) at the next clock returns */
        MUST(paramd_sparse_pull(emb, all, NKEYS, rows));
        char trap[4400] = "", tdir[4300] = "";
        if (p == fail_phase) {
            snprintf(tdir, sizeof tdir, "%s/ckpt-%06llu", root,
                     (unsigned long long)last_seq + 1);
            snprintf(trap, sizeof trap, "%s/server-1-of-2.pdck.tmp", tdir);
            if ((mkdir(tdir, 0755) && errno != EEXIST) || mkdir(trap, 0755))
                CHECK_FAIL_("mkdir %s: %s", trap, strerror(errno));
        }
        int64_t clock = -1;
        char dir[4096] = "";
        int rc = paramd_checkpoint(tool, &clock, dir, sizeof dir);
        if (p == fail_phase) {
            if (rc == 0)
                CHECK_FAIL_("phase %d: the checkpoint meant to fail succeeded (%s)", p, dir);
            printf("phase %d checkpoint failed: %s\n", p, paramd_last_error(tool));
            rmdir(trap);
            last_seq++;
        } else {
            if (rc)
                CHECK_FAIL_("phase %d: checkpoint: %s: %s", p, paramd_err_name(rc),
                            paramd_last_error(tool));
            const char *b = strrchr(dir, '/');
            unsigned long long seq;
            if (!b || sscanf(b + 1, "ckpt-%llu", &seq) != 1)
                CHECK_FAIL_("checkpoint dir '%s'", dir);
            last_seq = seq;
            printf("phase %d checkpoint %s clock %lld\n", p, dir, (long long)clock);
        }
        fflush(stdout);
    }
    paramd_close(tool);
    return 0;
}

/* ==== Reading checkpoint files =========================================== */

static void print_bits(const float *v, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &v[i], 4);
        printf(" %08x", b);
    }
}

/* Every row of one server file; keys_only: "KEY" lines of sparse rows. */
static void read_file(const char *path, int keys_only) {
    pd_ckr r;
    pd_err e = {0};
    if (pd_ckr_open(&r, path, 0, &e)) CHECK_FAIL_("%s", e.msg);
    pd_rd *b = &r.body;
    uint32_t index, S, n;
    uint64_t C, base;
    pd_get_u32(b, &index);
    pd_get_u32(b, &S);
    pd_get_u64(b, &C);
    if (r.kind == PD_CK_SERVER_DELTA) pd_get_u64(b, &base);
    else if (r.kind != PD_CK_SERVER) CHECK_FAIL_("%s: kind %u", path, r.kind);
    pd_get_u32(b, &n);
    for (uint32_t t = 0; t < n; t++) {
        uint32_t id, dlen;
        pd_table_def d;
        uint64_t applied, top;
        pd_get_u32(b, &id);
        pd_get_u32(b, &dlen);
        if (b->bad || dlen > b->len - b->off || pd_table_def_decode(b->p + b->off, dlen, &d, &e))
            CHECK_FAIL_("%s: table section %u", path, t);
        b->off += dlen;
        pd_get_u64(b, &applied);
        pd_get_u64(b, &top);
        if (d.kind == PD_TABLE_SPARSE) {
            uint32_t dim, k;
            uint64_t rows;
            pd_get_u32(b, &dim);
            pd_get_u32(b, &k);
            pd_get_u64(b, &rows);
            uint64_t nf = (uint64_t)dim * (1 + k);
            float *v = malloc(nf * sizeof *v);
            if (!v) CHECK_FAIL_("oom");
            for (uint64_t i = 0; i < rows; i++) {
                uint64_t key, steps;
                pd_get_u64(b, &key);
                pd_get_u64(b, &steps);
                if (pd_ckr_floats(&r, v, nf)) CHECK_FAIL_("%s: rows end early", path);
                if (keys_only) {
                    printf("%llu\n", (unsigned long long)key);
                } else {
                    printf("s %u %llu %llu", id, (unsigned long long)key,
                           (unsigned long long)steps);
                    print_bits(v, nf);
                    printf("\n");
                }
            }
            free(v);
        } else {
            uint64_t len, steps;
            uint32_t sf;
            pd_get_u64(b, &len);
            pd_get_u64(b, &steps);
            pd_get_u32(b, &sf);
            if (b->bad || len != d.hi - d.lo) CHECK_FAIL_("%s: dense section", path);
            float *v = malloc(len * (1 + sf) * sizeof *v);
            if (!v || pd_ckr_floats(&r, v, len * (1 + sf))) CHECK_FAIL_("%s: dense values", path);
            for (uint64_t i = 0; i < len && !keys_only; i++) {
                printf("d %u %llu %llu", id, (unsigned long long)(d.lo + i),
                       (unsigned long long)steps);
                for (uint32_t p = 0; p <= sf; p++) print_bits(&v[p * len + i], 1);
                printf("\n");
            }
            free(v);
        }
    }
    if (!pd_rd_done(b)) CHECK_FAIL_("%s: bytes left over", path);
    pd_ckr_close(&r);
}

static int read_dir(const char *dir, int keys_only) {
    pd_manifest m;
    pd_err e = {0};
    if (pd_manifest_read(dir, &m, &e)) CHECK_FAIL_("%s", e.msg);
    if (!keys_only && m.delta) CHECK_FAIL_("%s is incremental: dump reads full checkpoints", dir);
    for (uint32_t i = 0; i < m.nfiles; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, m.files[i].name);
        read_file(path, keys_only);
    }
    pd_manifest_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    if (argc == 6 && !strcmp(argv[1], "work")) {
        if (paramd_connect(&c, NULL)) CHECK_FAIL_("connect: %s", paramd_last_error(NULL));
        int rc = work(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5]);
        int rc2 = paramd_close(c);
        if (rc == 0 && rc2) CHECK_FAIL_("close: %s", paramd_err_name(rc2));
        return rc;
    }
    if (argc == 3 && !strcmp(argv[1], "dump")) return read_dir(argv[2], 0);
    if (argc == 3 && !strcmp(argv[1], "keys")) return read_dir(argv[2], 1);
    fprintf(stderr, "usage: tool_ckincr work ROOT PHASES FAIL OUT | dump DIR | keys DIR\n");
    return 2;
}
