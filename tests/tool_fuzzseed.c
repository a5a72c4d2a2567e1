/*
 * tool_fuzzseed.c - writes the seed inputs of the fuzz harnesses
 * (tests/fuzz/corpus/NAME/seed-*), made with paramd's own encoders so that
 * they are valid by construction: `tool_fuzzseed tests/fuzz/corpus`.
 * Run it again after a format change; the files are committed (small).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "check.h"
#include "frame/hello.h"
#include "table/spec.h"
#include "wire/map.h"
#include "wire/rejoin.h"
#include "wire/wire.h"

static const char *root;

static void save(const char *name, int k, const void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, name);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/seed-%02d", root, name, k);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) CHECK_FAIL_("cannot write %s", path);
}

static void put_f32(pd_buf *b, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    pd_put_u32(b, u);
}

/* A frame: header + payload appended to b. */
static void frame(pd_buf *b, uint16_t type, uint32_t table, int64_t clock, const void *p,
                  size_t n) {
    static uint64_t id = 1;
    pd_hdr h = {0};
    uint8_t hb[PD_HDR_SIZE];
    h.magic = PD_MAGIC, h.version = PD_PROTO_VERSION, h.type = type;
    h.id = ++id, h.table = table, h.clock = clock, h.len = n;
    pd_hdr_encode(&h, hb);
    pd_put_bytes(b, hb, PD_HDR_SIZE);
    if (n) pd_put_bytes(b, p, n);
}

static pd_table_def def(const char *spec, uint32_t kind, uint64_t n) {
    pd_table_def d = {0};
    pd_err e = {0};
    d.kind = kind;
    if (pd_spec_parse(spec, &d, &e)) CHECK_FAIL_("%s: %s", spec, e.msg);
    d.n = n, d.lo = 0, d.hi = n;
    return d;
}

static void create(pd_buf *b, uint32_t table, const char *spec, uint32_t kind, uint64_t n) {
    pd_table_def d = def(spec, kind, n);
    pd_buf p;
    pd_buf_init(&p);
    pd_table_def_encode(&p, &d);
    frame(b, PD_MSG_TABLE_CREATE, table, 0, p.p, p.len);
    pd_buf_free(&p);
}

/* PUSH/SET: offset then count floats. */
static void dense_write(pd_buf *b, uint16_t type, uint32_t table, int64_t clock, uint64_t off,
                        uint32_t count) {
    pd_buf p;
    pd_buf_init(&p);
    pd_put_u64(&p, off);
    for (uint32_t i = 0; i < count; i++) put_f32(&p, 0.5f + (float)i);
    frame(b, type, table, clock, p.p, p.len);
    pd_buf_free(&p);
}

static void pull(pd_buf *b, uint32_t table, int64_t clock, uint64_t off, uint64_t count) {
    pd_buf p;
    pd_buf_init(&p);
    pd_put_u64(&p, off);
    pd_put_u64(&p, count);
    frame(b, PD_MSG_PULL, table, clock, p.p, p.len);
    pd_buf_free(&p);
}

static void sparse(pd_buf *b, uint16_t type, uint32_t table, int64_t clock, uint32_t nkeys,
                   uint32_t dim) {
    pd_buf p;
    pd_buf_init(&p);
    pd_put_u64(&p, nkeys);
    for (uint32_t i = 0; i < nkeys; i++) pd_put_u64(&p, 1000 + i * 7);
    if (type == PD_MSG_SPARSE_PUSH)
        for (uint32_t i = 0; i < nkeys * dim; i++) put_f32(&p, 0.25f);
    frame(b, type, table, clock, p.p, p.len);
    pd_buf_free(&p);
}

static void save_buf(const char *name, int k, uint8_t first, pd_buf *b) {
    uint8_t *p = malloc(b->len + 1);
    CHECK(p != NULL);
    p[0] = first;
    memcpy(p + 1, b->p, b->len);
    save(name, k, p, b->len + 1);
    free(p);
}

/* A REPL frame carrying the frame(s) in `in` as rank's (in emptied). */
static void repl(pd_buf *b, int rank, pd_buf *in) {
    pd_buf p;
    pd_buf_init(&p);
    pd_put_u32(&p, (uint32_t)rank);
    pd_put_bytes(&p, in->p, in->len);
    frame(b, PD_MSG_REPL, 0, 0, p.p, p.len);
    pd_buf_free(&p);
    in->len = 0;
}

static void seeds_server(void) {
    pd_buf b;
    int k = 0;
    /* dense async: create, set, push, pull, stats */
    pd_buf_init(&b);
    create(&b, 1, "rule=sgd lr=0.1", PD_TABLE_DENSE, 64);
    dense_write(&b, PD_MSG_SET, 1, 0, 0, 64);
    dense_write(&b, PD_MSG_PUSH, 1, 0, 8, 16);
    pull(&b, 1, 0, 0, 64);
    frame(&b, PD_MSG_STATS, 0, 0, NULL, 0);
    save_buf("server", k++, 0, &b);
    pd_buf_free(&b);
    /* dense sync with clocks, adam; and a bad range */
    pd_buf_init(&b);
    create(&b, 2, "rule=adam consistency=sync", PD_TABLE_DENSE, 32);
    for (int c = 0; c < 3; c++) {
        dense_write(&b, PD_MSG_PUSH, 2, c, 0, 32);
        pull(&b, 2, c + 1, 0, 32);
    }
    pull(&b, 2, 0, 30, 10);
    save_buf("server", k++, 0, &b);
    pd_buf_free(&b);
    /* sparse async and sync */
    pd_buf_init(&b);
    create(&b, 3, "rule=adagrad init=uniform:0.1 seed=3", PD_TABLE_SPARSE, 4);
    sparse(&b, PD_MSG_SPARSE_PUSH, 3, 0, 5, 4);
    sparse(&b, PD_MSG_SPARSE_PULL, 3, 0, 5, 4);
    create(&b, 4, "rule=sgd consistency=ssp:1", PD_TABLE_SPARSE, 2);
    sparse(&b, PD_MSG_SPARSE_PUSH, 4, 0, 3, 2);
    sparse(&b, PD_MSG_SPARSE_PULL, 4, 1, 3, 2);
    save_buf("server", k++, 0, &b);
    pd_buf_free(&b);
    /* a BATCH of small requests */
    pd_buf_init(&b);
    create(&b, 1, "rule=momentum", PD_TABLE_DENSE, 16);
    pd_buf in;
    pd_buf_init(&in);
    dense_write(&in, PD_MSG_PUSH, 1, 0, 0, 4);
    pull(&in, 1, 0, 0, 16);
    dense_write(&in, PD_MSG_SET, 1, 0, 4, 4);
    frame(&b, PD_MSG_BATCH, 0, 0, in.p, in.len);
    pd_buf_free(&in);
    save_buf("server", k++, 0, &b);
    pd_buf_free(&b);
    /* shared buffers: map region 1, push and pull through it, unmap */
    pd_buf_init(&b);
    create(&b, 1, "rule=sgd", PD_TABLE_DENSE, 256);
    pd_buf p;
    pd_buf_init(&p);
    pd_put_u64(&p, 1), pd_put_u64(&p, 4096);
    frame(&b, PD_MSG_REGION_MAP, 0, 0, p.p, p.len);
    p.len = 0;
    pd_put_u64(&p, 0), pd_put_u64(&p, 256), pd_put_u64(&p, 1), pd_put_u64(&p, 0);
    frame(&b, PD_MSG_PUSH_REGION, 1, 0, p.p, p.len);
    frame(&b, PD_MSG_PULL_REGION, 1, 0, p.p, p.len);
    p.len = 0;
    pd_put_u64(&p, 1);
    frame(&b, PD_MSG_REGION_UNMAP, 0, 0, p.p, p.len);
    pd_buf_free(&p);
    save_buf("server", k++, 0, &b);
    pd_buf_free(&b);
    /* a tool's view: stats and a pull */
    pd_buf_init(&b);
    create(&b, 5, "rule=add", PD_TABLE_DENSE, 8);
    pull(&b, 5, 0, 0, 8);
    frame(&b, PD_MSG_STATS, 5, 0, NULL, 0);
    save_buf("server", k++, 2, &b);
    pd_buf_free(&b);
}

/* A copy's feed (fuzz_server's fourth peer), the server seeds' k-th;
 * written last, so that the other seeds keep their frames' ids. */
static void seeds_copy_feed(int k) {
    /* a copy's feed (replica.c): REPL frames of worker 0's and worker 1's
     * updates and the coordinator's membership, then a SEED that is no
     * seed file */
    pd_buf b, in;
    pd_buf_init(&b);
    pd_buf_init(&in);
    create(&in, 1, "rule=adam", PD_TABLE_DENSE, 32);
    repl(&b, 0, &in);
    create(&in, 2, "rule=sgd consistency=sync", PD_TABLE_SPARSE, 4);
    repl(&b, 1, &in);
    dense_write(&in, PD_MSG_SET, 1, 0, 0, 32);
    repl(&b, 0, &in);
    dense_write(&in, PD_MSG_PUSH, 1, 0, 8, 8);
    pd_buf again;
    pd_buf_init(&again);
    pd_put_bytes(&again, in.p, in.len);
    repl(&b, 1, &in);
    repl(&b, 1, &again); /* the same id again: applied once */
    pd_buf_free(&again);
    sparse(&in, PD_MSG_SPARSE_PUSH, 2, 0, 5, 4);
    repl(&b, 0, &in);
    pd_buf m;
    pd_buf_init(&m);
    pd_put_u32(&m, 1), pd_put_u32(&m, 1), pd_put_u64(&m, 0); /* WORKER_JOIN prepare */
    frame(&in, PD_MSG_WORKER_JOIN, 0, 0, m.p, m.len);
    repl(&b, -1, &in);
    m.len = 0;
    pd_put_u32(&m, 1), pd_put_u32(&m, 2), pd_put_u64(&m, 3); /* commit at 3 */
    frame(&in, PD_MSG_WORKER_JOIN, 0, 0, m.p, m.len);
    repl(&b, -1, &in);
    m.len = 0;
    pd_put_u32(&m, 1), pd_put_u32(&m, 0); /* WORKER_GONE */
    frame(&in, PD_MSG_WORKER_GONE, 0, 0, m.p, m.len);
    repl(&b, -1, &in);
    frame(&b, PD_MSG_SEED, 0, 1, "PRMDCKPT", 8);
    pd_buf_free(&m);
    pd_buf_free(&in);
    save_buf("server", k, 3, &b);
    pd_buf_free(&b);
}

static void seeds_wire(void) {
    /* headers: limit, then a header */
    static const uint16_t types[] = {PD_MSG_HELLO, PD_MSG_PUSH, PD_MSG_PULL, PD_MSG_BATCH,
                                     PD_MSG_TABLE_CREATE, PD_MSG_SPARSE_PUSH,
                                     PD_MSG_HELLO | PD_REPLY, PD_MSG_BATCH | PD_REPLY};
    for (int i = 0; i < (int)(sizeof types / sizeof types[0]); i++) {
        pd_buf b;
        pd_buf_init(&b);
        pd_put_u64(&b, 1u << 20);
        frame(&b, types[i], 1, i, NULL, 0);
        /* give it a length */
        pd_le64_put(b.p + 8 + 32, 100u * (unsigned)i);
        save("hdr", i, b.p, b.len);
        pd_buf_free(&b);
    }
    /* table definitions */
    static const struct { const char *spec; uint32_t kind; uint64_t n; } defs[] = {
        {"rule=sgd lr=0.1", PD_TABLE_DENSE, 1000},
        {"rule=adam consistency=sync backup=1", PD_TABLE_DENSE, 10},
        {"rule=ftrl l1=0.1 consistency=ssp:2 elastic=no", PD_TABLE_DENSE, 7},
        {"rule=adagrad init=normal:0.01 seed=9", PD_TABLE_SPARSE, 16},
        {"rule=momentum aggregate=sum", PD_TABLE_SPARSE, 3},
        {"plugin=clip_sgd", PD_TABLE_DENSE, 5},
    };
    for (int i = 0; i < (int)(sizeof defs / sizeof defs[0]); i++) {
        pd_table_def d = def(defs[i].spec, defs[i].kind, defs[i].n);
        pd_buf b;
        pd_buf_init(&b);
        pd_table_def_encode(&b, &d);
        save("table_def", i, b.p, b.len);
        pd_buf_free(&b);
    }
    /* batches: a request, a reply */
    pd_buf b;
    pd_buf_init(&b);
    dense_write(&b, PD_MSG_PUSH, 1, 0, 0, 4);
    pull(&b, 1, 0, 0, 4);
    sparse(&b, PD_MSG_SPARSE_PULL, 2, 0, 2, 0);
    save("batch", 0, b.p, b.len);
    b.len = 0;
    frame(&b, PD_MSG_PUSH | PD_REPLY, 1, 0, NULL, 0);
    frame(&b, PD_MSG_PULL | PD_REPLY, 1, 0, "\0\0\0\0\0\0\0\0", 8);
    save("batch", 1, b.p, b.len);
    pd_buf_free(&b);
    /* HELLO (first byte odd) and welcomes (even) */
    pd_hello hs[] = {{.role = PD_ROLE_WORKER, .rank = 0},
                     {.role = PD_ROLE_SERVER, .rank = -1},
                     {.role = PD_ROLE_TOOL, .rank = -1},
                     /* with the secret's challenge, and a worker's ticket */
                     {.role = PD_ROLE_WORKER, .rank = 3, .has_ticket = 1,
                      .ticket = {.gen = 2, .mac = {1, 2, 3}}, .challenge = 1,
                      .nonce = {9, 8, 7}}};
    for (int i = 0; i < 4; i++) {
        pd_buf_init(&b);
        pd_hello_encode(&b, &hs[i]);
        save_buf("hello", i, 1, &b);
        pd_buf_free(&b);
    }
    pd_welcome w = {1, 1, 2, 4, "@paramd-0123abcd", PD_FEAT_REGIONS, "host-a"};
    pd_buf_init(&b);
    pd_welcome_encode(&b, &w);
    save_buf("hello", 4, 0, &b);
    b.len = 0;
    save_buf("hello", 5, 0, &b); /* the coordinator's empty welcome */
    pd_buf_free(&b);
    /* maps: a worker's, a tool's */
    char addrs[2][PD_MAX_ADDR + 1] = {"127.0.0.1:4000", "10.0.0.2:4001"};
    pd_map m = {3, 4, 2, 1, addrs, 10000, 6, 12, 1, 5, {0xaa, 0xbb}, 2, 60000, 30000, 2};
    pd_buf_init(&b);
    pd_map_encode(&b, &m);
    save("map", 0, b.p, b.len);
    b.len = 0;
    m.rank = -1;
    pd_map_encode(&b, &m);
    save("map", 1, b.p, b.len);
    pd_buf_free(&b);
}

static void seeds_spec(void) {
    static const char *const specs[] = {
        "\x00rule=sgd lr=0.1 consistency=sync",
        "\x00rule=adam beta1=0.8 beta2=0.99 eps=1e-7 consistency=ssp:3",
        "\x00rule=ftrl l1=0.1 l2=0.01 beta=1 aggregate=sum",
        "\x00rule=momentum momentum=0.95 backup=1 consistency=sync elastic=no",
        "\x00plugin=clip_sgd lr=0.5",
        "\x01rule=adagrad init=uniform:0.1 seed=7 init_acc=0.2",
        "\x01rule=sgd init=normal:0.001 seed=18446744073709551615",
        "\x00lr=0.30000000000000004 rule=sgd",
    };
    for (int i = 0; i < (int)(sizeof specs / sizeof specs[0]); i++)
        save("spec", i, specs[i], 1 + strlen(specs[i] + 1));
}

/* An IDX pair: flags, u32 length of the images file, images, labels. */
/* SERVER_REJOIN records (fuzz_rejoin): a head alone; a server of 2 with
 * two tables and three ranks; the same with a trailing byte naming where
 * the harness cuts it into two parts. */
static void seeds_rejoin(void) {
    uint8_t key[PD_REJOIN_KEY_BYTES];
    memset(key, 0x5a, sizeof key);
    pd_buf b;
    pd_buf_init(&b);
    pd_rejoin_put_head(&b, 0, 1, 1, 1, key, "127.0.0.1:7000");
    save("rejoin", 0, b.p, b.len);
    pd_buf_free(&b);
    pd_buf_init(&b);
    pd_rejoin_put_head(&b, 1, 2, 2, 4, key, "127.0.0.1:7001");
    pd_rejoin_put_table(&b, 1, "weights", 784, "rule=adam consistency=sync aggregate=mean "
                        "lr=0.001 beta1=0.9 beta2=0.999 eps=1e-08");
    pd_rejoin_put_table(&b, 2, "emb", 16, "rule=sgd consistency=async aggregate=mean lr=0.1 "
                        "init=zeros seed=7");
    pd_rejoin_put_rank(&b, 0, 1, 0);
    pd_rejoin_put_rank(&b, 1, 2, 1);
    pd_rejoin_put_rank(&b, 3, 0, 1);
    save("rejoin", 1, b.p, b.len);
    uint8_t at = 40;
    pd_put_bytes(&b, &at, 1);
    save("rejoin", 2, b.p, b.len);
    pd_buf_free(&b);
}

static void idx_seed(int k, uint8_t flags, uint32_t n, uint32_t rows, uint32_t cols) {
    pd_buf img, lab, b;
    pd_buf_init(&img), pd_buf_init(&lab), pd_buf_init(&b);
    uint32_t hdr[4] = {0x00000803u, n, rows, cols};
    for (int i = 0; i < 4; i++) {
        uint8_t be[4] = {(uint8_t)(hdr[i] >> 24), (uint8_t)(hdr[i] >> 16), (uint8_t)(hdr[i] >> 8),
                         (uint8_t)hdr[i]};
        pd_put_bytes(&img, be, 4);
    }
    for (uint32_t i = 0; i < n * rows * cols; i++) {
        uint8_t v = (uint8_t)(i * 37);
        pd_put_bytes(&img, &v, 1);
    }
    uint8_t lh[8] = {0, 0, 8, 1, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                     (uint8_t)n};
    pd_put_bytes(&lab, lh, 8);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t v = (uint8_t)(i % 10);
        pd_put_bytes(&lab, &v, 1);
    }
    pd_put_bytes(&b, &flags, 1);
    uint8_t L[4] = {(uint8_t)img.len, (uint8_t)(img.len >> 8), (uint8_t)(img.len >> 16),
                    (uint8_t)(img.len >> 24)};
    pd_put_bytes(&b, L, 4);
    pd_put_bytes(&b, img.p, img.len);
    pd_put_bytes(&b, lab.p, lab.len);
    save("idx", k, b.p, b.len);
    pd_buf_free(&img), pd_buf_free(&lab), pd_buf_free(&b);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tool_fuzzseed CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];
    mkdir(root, 0755);
    seeds_server();
    seeds_wire();
    seeds_spec();
    seeds_rejoin();
    idx_seed(0, 1, 2, 28, 28);  /* what the models take */
    idx_seed(1, 0, 3, 3, 2);    /* another size, any size asked */
    idx_seed(2, 1, 1, 32, 32);  /* another size, 28x28 asked: refused */
    idx_seed(3, 2, 2, 4, 4);    /* gzip'd */
    seeds_copy_feed(6); /* (after the server seeds 0-5: last, keeping their ids) */
    printf("seeds written under %s\n", root);
    return 0;
}
