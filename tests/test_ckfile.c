/*
 * test_ckfile.c - checkpoint files and what the stores write into them:
 * the frame round-trips; every truncation, a flipped byte anywhere, a
 * foreign magic, another version or kind are refused with a message that
 * names the file; a failed write leaves no file under the final name; the
 * manifest round-trips and LATEST resolves; and a dense table (adam, its
 * state planes) and a sparse table (rows, per-row steps) written from one
 * partition and read into another (1 <-> 3 servers) hold exactly the same
 * values, and then take the same next update bit for bit.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "durable/manifest.h"
#include "server/dense.h"
#include "server/sparse.h"
#include "table/spec.h"
#include "wire/wire.h"

static char dir[256];

static void slurp(const char *path, uint8_t **p, size_t *n) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *p = malloc(*n);
    CHECK(fread(*p, 1, *n, f) == *n);
    fclose(f);
}

static void spill(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}

/* ==== The frame ========================================================= */

static void test_frame(void) {
    pd_ckw w;
    pd_err e = {0};
    CHECK_OK(pd_ckw_open(&w, dir, "a.pdck", PD_CK_SERVER, &e));
    float v[1000];
    for (int i = 0; i < 1000; i++) v[i] = (float)i * 0.25f;
    pd_ckw_u32(&w, 7);
    pd_ckw_u64(&w, 1ull << 40);
    pd_ckw_floats(&w, v, 1000);
    uint64_t bytes;
    uint32_t crc;
    CHECK_OK(pd_ckw_commit(&w, &bytes, &crc, &e));
    char path[512];
    snprintf(path, sizeof path, "%s/a.pdck", dir);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_INT_EQ(st.st_size, bytes);
    snprintf(path, sizeof path, "%s/a.pdck.tmp", dir);
    CHECK(stat(path, &st) != 0); /* renamed away */
    snprintf(path, sizeof path, "%s/a.pdck", dir);
    pd_ckr r;
    CHECK_OK(pd_ckr_open(&r, path, PD_CK_SERVER, &e));
    CHECK_INT_EQ(r.crc, crc);
    uint32_t a;
    uint64_t b;
    float back[1000];
    pd_get_u32(&r.body, &a);
    pd_get_u64(&r.body, &b);
    CHECK_OK(pd_ckr_floats(&r, back, 1000));
    CHECK(pd_rd_done(&r.body));
    CHECK_INT_EQ(a, 7);
    CHECK_INT_EQ(b, 1ull << 40);
    CHECK(memcmp(v, back, sizeof v) == 0);
    CHECK(pd_ckr_floats(&r, back, 1) == -1); /* past the end */
    pd_ckr_close(&r);
    pd_ckr_close(&r); /* harmless twice */
    CHECK_INT_EQ(pd_ckr_open(&r, path, PD_CK_MANIFEST, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "kind"));

    /* every truncation, and a flipped byte at many places */
    uint8_t *p;
    size_t n;
    slurp(path, &p, &n);
    char bad[512];
    snprintf(bad, sizeof bad, "%s/bad.pdck", dir);
    for (size_t k = 0; k < n; k += (k < 64 ? 1 : 97)) {
        spill(bad, p, k);
        CHECK(pd_ckr_open(&r, bad, 0, &e) != 0);
        CHECK(strstr(e.msg, bad));
    }
    for (size_t k = 0; k < n; k += (k < 64 ? 1 : 61)) {
        p[k] ^= 0x10;
        spill(bad, p, n);
        CHECK(pd_ckr_open(&r, bad, 0, &e) != 0);
        CHECK(strstr(e.msg, bad));
        p[k] ^= 0x10;
    }
    spill(bad, p, n);
    CHECK_OK(pd_ckr_open(&r, bad, 0, &e)); /* restored: accepted again */
    pd_ckr_close(&r);
    /* another version: refused by name, before the checksum */
    p[8] = 9;
    spill(bad, p, n);
    CHECK_INT_EQ(pd_ckr_open(&r, bad, 0, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "format version 9"));
    p[8] = 1;
    memcpy(p, "NOTPARAM", 8);
    spill(bad, p, n);
    CHECK_INT_EQ(pd_ckr_open(&r, bad, 0, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "bad magic"));
    /* appended to */
    free(p);
    slurp(path, &p, &n);
    p = realloc(p, n + 1);
    p[n] = 0;
    spill(bad, p, n + 1);
    CHECK_INT_EQ(pd_ckr_open(&r, bad, 0, &e), PARAMD_EPROTO);
    free(p);
    CHECK_INT_EQ(pd_ckr_open(&r, "/nonexistent/x.pdck", 0, &e), PARAMD_EIO);
    CHECK(strstr(e.msg, "/nonexistent/x.pdck"));

    /* a writer that cannot write leaves nothing behind under the name */
    CHECK(pd_ckw_open(&w, "/nonexistent-dir", "x", PD_CK_SERVER, &e) == PARAMD_EIO);
    CHECK_OK(pd_ckw_open(&w, dir, "gone.pdck", PD_CK_SERVER, &e));
    pd_ckw_u32(&w, 1);
    pd_ckw_abort(&w);
    snprintf(path, sizeof path, "%s/gone.pdck.tmp", dir);
    CHECK(stat(path, &st) != 0);
    snprintf(path, sizeof path, "%s/gone.pdck", dir);
    CHECK(stat(path, &st) != 0);
}

/* ==== The manifest ====================================================== */

static void test_manifest(void) {
    pd_err e = {0};
    char cdir[300];
    snprintf(cdir, sizeof cdir, "%s/ckpt-000004", dir);
    CHECK_OK(pd_mkdirs(cdir, &e));
    pd_ck_file files[2] = {{"server-0-of-2.pdck", 100, 0xabcdef01u},
                           {"server-1-of-2.pdck", 200, 0x12345678u}};
    pd_ck_table tables[2] = {{1, 0, "model", 1000, "rule=adam consistency=sync"},
                             {2, 1, "gone", 5, "rule=add"}};
    pd_manifest m = {.seq = 4, .clock = 812, .S = 2, .W = 2, .M = 3, .nfiles = 2,
                     .ntables = 2, .files = files, .tables = tables}, d;
    CHECK_OK(pd_manifest_write(cdir, &m, NULL, &e));
    CHECK_OK(pd_manifest_read(cdir, &d, &e));
    CHECK_INT_EQ(d.seq, 4);
    CHECK_INT_EQ(d.clock, 812);
    CHECK_INT_EQ(d.S, 2);
    CHECK_INT_EQ(d.M, 3);
    CHECK_STR_EQ(d.files[1].name, "server-1-of-2.pdck");
    CHECK_INT_EQ(d.files[1].crc, 0x12345678u);
    CHECK_STR_EQ(d.tables[0].spec, "rule=adam consistency=sync");
    CHECK_INT_EQ(d.tables[1].dropped, 1);
    pd_manifest_free(&d);
    /* LATEST, and what pd_ck_resolve says when there is none */
    char out[512];
    CHECK_INT_EQ(pd_ck_resolve(dir, out, sizeof out, &e), PARAMD_EIO);
    CHECK(strstr(e.msg, "holds no checkpoint"));
    CHECK_OK(pd_write_atomic(dir, "LATEST", "ckpt-000004\n", &e));
    CHECK_OK(pd_ck_resolve(dir, out, sizeof out, &e));
    CHECK_STR_EQ(out, cdir);
    CHECK_OK(pd_ck_resolve(cdir, out, sizeof out, &e));
    CHECK_STR_EQ(out, cdir);
    CHECK_OK(pd_write_atomic(dir, "LATEST", "../../etc\n", &e));
    CHECK_INT_EQ(pd_ck_resolve(dir, out, sizeof out, &e), PARAMD_EPROTO);
    /* a file name that leaves the directory is refused */
    snprintf(files[0].name, sizeof files[0].name, "../x");
    CHECK_OK(pd_manifest_write(cdir, &m, NULL, &e));
    CHECK_INT_EQ(pd_manifest_read(cdir, &d, &e), PARAMD_EPROTO);
}

/* ==== Chains of incremental checkpoints ================================= */

/* root/ckpt-N's manifest: full (base 0) or a delta of base. */
static uint32_t put_manifest(const char *root, uint64_t seq, uint64_t base, uint32_t base_crc,
                             uint32_t depth) {
    pd_err e = {0};
    char cdir[400];
    snprintf(cdir, sizeof cdir, "%s/ckpt-%06llu", root, (unsigned long long)seq);
    CHECK_OK(pd_mkdirs(cdir, &e));
    pd_ck_file files[1] = {{"server-0-of-1.pdck", 100, 1}};
    pd_manifest m = {.seq = seq, .clock = (int64_t)seq * 10, .S = 1, .W = 1, .M = 1,
                     .nfiles = 1, .files = files, .tables = NULL};
    if (base) {
        m.delta = 1;
        m.base_seq = base;
        snprintf(m.base, sizeof m.base, "ckpt-%06llu", (unsigned long long)base);
        m.base_crc = base_crc;
        m.depth = depth;
    }
    uint32_t crc = 0;
    CHECK_OK(pd_manifest_write(cdir, &m, &crc, &e));
    return crc;
}

static void test_chain(void) {
    pd_err e = {0};
    char root[300], top[400];
    snprintf(root, sizeof root, "%s/chain", dir);
    uint32_t c1 = put_manifest(root, 1, 0, 0, 0);
    uint32_t c2 = put_manifest(root, 2, 1, c1, 1);
    put_manifest(root, 3, 2, c2, 2);
    snprintf(top, sizeof top, "%s/ckpt-000003", root);
    pd_ck_chain c;
    CHECK_OK(pd_ck_chain_read(top, &c, &e));
    CHECK_INT_EQ(c.n, 3);
    CHECK_INT_EQ(c.m[0].seq, 1);
    CHECK_INT_EQ(c.m[0].delta, 0);
    CHECK_INT_EQ(c.m[1].seq, 2);
    CHECK_INT_EQ(c.m[2].seq, 3);
    CHECK_INT_EQ(c.m[2].depth, 2);
    CHECK(strstr(c.dir[0], "chain/ckpt-000001") != NULL);
    pd_ck_chain_free(&c);
    /* a full one is a chain of one */
    snprintf(top, sizeof top, "%s/ckpt-000001", root);
    CHECK_OK(pd_ck_chain_read(top, &c, &e));
    CHECK_INT_EQ(c.n, 1);
    pd_ck_chain_free(&c);
    /* the base written over by another checkpoint: its checksum differs */
    put_manifest(root, 2, 1, c1 ^ 1, 1);
    snprintf(top, sizeof top, "%s/ckpt-000003", root);
    CHECK_INT_EQ(pd_ck_chain_read(top, &c, &e), PARAMD_EPROTO);
    CHECK(strstr(e.msg, "ckpt-000002/MANIFEST is checkpoint 2") != NULL);
    CHECK(strstr(e.msg, "not its base") != NULL);
    CHECK_INT_EQ(c.n, 0);
    /* a missing base, named */
    char p[500];
    snprintf(p, sizeof p, "%s/ckpt-000001/MANIFEST", root);
    CHECK_INT_EQ(unlink(p), 0);
    snprintf(top, sizeof top, "%s/ckpt-000002", root);
    CHECK(pd_ck_chain_read(top, &c, &e) != 0);
    CHECK(strstr(e.msg, "ckpt-000002/MANIFEST is an incremental checkpoint of") != NULL);
    CHECK(strstr(e.msg, "ckpt-000001") != NULL);
    /* a delta whose depth does not lead to a full one */
    uint32_t f1 = put_manifest(root, 1, 0, 0, 0);
    put_manifest(root, 2, 1, f1, 2);
    CHECK_INT_EQ(pd_ck_chain_read(top, &c, &e), PARAMD_EPROTO);
}

/* ==== Tables: written from one partition, read into another ============ */

static pd_table *mk(const char *spec, int sparse, uint64_t n, int32_t k, int32_t S) {
    pd_table_def d = {0};
    pd_err e = {0};
    d.kind = sparse ? PD_TABLE_SPARSE : PD_TABLE_DENSE;
    CHECK_OK(pd_spec_parse(spec, &d, &e));
    d.n = n;
    d.lo = sparse ? 0 : pd_partition_lo(n, (uint32_t)S, (uint32_t)k);
    d.hi = sparse ? n : pd_partition_lo(n, (uint32_t)S, (uint32_t)k + 1);
    pd_table_env env = {2, k, S, NULL, 0, NULL};
    pd_table *t = pd_table_create(3, &d, &env, &e);
    if (!t) CHECK_FAIL_("%s", e.msg);
    return t;
}

static void noemit(void *a, const float *v, uint64_t c, int64_t ap) { (void)a, (void)v, (void)c, (void)ap; }
static void copyemit(void *a, const float *v, uint64_t c, int64_t ap) {
    (void)ap;
    memcpy(a, v, c * sizeof(float));
}

/* A push of both workers at clock c to every part, dense or sparse. */
static void step(pd_table **t, int nt, int sparse, uint64_t n, int64_t c) {
    pd_err e = {0};
    for (int32_t w = 0; w < 2; w++)
        for (int i = 0; i < nt; i++) {
            pd_table_req rq = {0};
            rq.worker = w, rq.clock = c;
            if (sparse) {
                uint64_t keys[64];
                float g[64 * 4];
                uint64_t m = 0;
                for (uint64_t key = 0; key < 64; key++)
                    if (nt == 1 || pd_sparse_server(key * 7919, (uint32_t)nt) == (uint32_t)i) {
                        keys[m] = key * 7919;
                        for (int j = 0; j < 4; j++)
                            g[m * 4 + j] = (float)((key + 1) * (j + 1) * (w + 1)) * 0.01f + (float)c;
                        m++;
                    }
                rq.keyed = 1, rq.keys = keys, rq.nkeys = m, rq.io = g;
                CHECK_OK(pd_table_push(t[i], &rq, &e));
            } else {
                float *g = malloc(n * sizeof(float));
                for (uint64_t x = 0; x < n; x++) g[x] = (float)((x * 31 + (uint64_t)w) % 17) * 0.1f - (float)c * 0.01f;
                rq.off = t[i]->def.lo, rq.count = t[i]->def.hi - t[i]->def.lo;
                rq.in = g + t[i]->def.lo;
                CHECK_OK(pd_table_push(t[i], &rq, &e));
                free(g);
            }
        }
}

/* Every value of the parts, in table order (dense) or for 64 keys (sparse). */
static void values(pd_table **t, int nt, int sparse, uint64_t n, int64_t c, float *out) {
    pd_err e = {0};
    for (int i = 0; i < nt; i++) {
        pd_table_req rq = {0};
        rq.worker = -1, rq.clock = c;
        if (sparse) {
            for (uint64_t key = 0; key < 64; key++)
                if (nt == 1 || pd_sparse_server(key * 7919, (uint32_t)nt) == (uint32_t)i) {
                    uint64_t k = key * 7919;
                    rq.keyed = 1, rq.keys = &k, rq.nkeys = 1, rq.io = out + key * 4;
                    CHECK_OK(pd_table_pull(t[i], &rq, noemit, NULL, &e));
                }
        } else {
            rq.off = t[i]->def.lo, rq.count = t[i]->def.hi - t[i]->def.lo;
            CHECK_OK(pd_table_pull(t[i], &rq, copyemit, out + t[i]->def.lo, &e));
        }
    }
    (void)n;
}

/* Write parts a[0..na) as server files, read them into nb new parts. */
static void roundtrip(pd_table **a, int na, pd_table **b, int nb, const char *spec, int sparse,
                      uint64_t n, int64_t C) {
    pd_err e = {0};
    for (int i = 0; i < na; i++) {
        pd_ckw w;
        char name[64];
        pd_ck_server_file(name, sizeof name, i, na);
        CHECK_OK(pd_ckw_open(&w, dir, name, PD_CK_SERVER, &e));
        pd_table_save(a[i], &w, &(pd_ck_save){1, 0});
        CHECK_OK(pd_ckw_commit(&w, NULL, NULL, &e));
    }
    for (int j = 0; j < nb; j++) {
        b[j] = mk(spec, sparse, n, j, nb);
        for (int i = 0; i < na; i++) {
            char name[64], path[512];
            pd_ck_server_file(name, sizeof name, i, na);
            snprintf(path, sizeof path, "%s/%s", dir, name);
            pd_ckr r;
            CHECK_OK(pd_ckr_open(&r, path, PD_CK_SERVER, &e));
            uint32_t id, dlen;
            pd_get_u32(&r.body, &id);
            pd_get_u32(&r.body, &dlen);
            pd_table_def from;
            CHECK_OK(pd_table_def_decode(r.body.p + r.body.off, dlen, &from, &e));
            r.body.off += dlen;
            CHECK_INT_EQ(id, 3);
            if (b[j]->ops->load(b[j], &r, &from, &e)) CHECK_FAIL_("%s", e.msg);
            CHECK(pd_rd_done(&r.body));
            pd_ckr_close(&r);
        }
        pd_gate_restore(&b[j]->gate, C);
    }
}

static void test_tables(int sparse, int na, int nb) {
    const char *spec = sparse ? "rule=adam lr=0.01 consistency=sync init=uniform:0.1 seed=5"
                              : "rule=adam lr=0.01 consistency=sync";
    uint64_t n = sparse ? 4 : 1001;
    size_t nv = sparse ? 64 * 4 : n;
    pd_table *a[3], *b[3];
    for (int i = 0; i < na; i++) a[i] = mk(spec, sparse, n, i, na);
    for (int64_t c = 0; c < 3; c++) step(a, na, sparse, n, c);
    float *va = malloc(nv * sizeof(float)), *vb = malloc(nv * sizeof(float));
    values(a, na, sparse, n, 3, va);
    roundtrip(a, na, b, nb, spec, sparse, n, 3);
    values(b, nb, sparse, n, 3, vb);
    CHECK(memcmp(va, vb, nv * sizeof(float)) == 0);
    /* the next update, on the restored optimizer state, is the same */
    step(a, na, sparse, n, 3);
    step(b, nb, sparse, n, 3);
    values(a, na, sparse, n, 4, va);
    values(b, nb, sparse, n, 4, vb);
    for (size_t x = 0; x < nv; x++)
        if (memcmp(&va[x], &vb[x], sizeof(float)) != 0)
            CHECK_FAIL_("%s %d->%d servers: value %zu is %.9g on the restored table, %.9g "
                        "on the original", sparse ? "sparse" : "dense", na, nb, x, vb[x], va[x]);
    for (int i = 0; i < na; i++) pd_table_destroy(a[i]);
    for (int j = 0; j < nb; j++) pd_table_destroy(b[j]);
    free(va);
    free(vb);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/paramd-test-ckfile.XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    test_frame();
    test_manifest();
    test_chain();
    test_tables(0, 3, 1);
    test_tables(0, 1, 3);
    test_tables(0, 3, 2);
    test_tables(1, 3, 1);
    test_tables(1, 1, 3);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    puts("test_ckfile: ok");
    return 0;
}
