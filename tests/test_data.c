/*
 * test_data.c - tests of src/train/data.c: the IDX reader, the shuffle and
 * batch gathering.
 *
 * The reader is tested on small IDX files this test writes itself into a
 * fresh directory under /tmp (mkdtemp): gzip'd and plain, good ones and
 * broken ones (truncated in the plain payload and inside a gzip stream,
 * bad magic, counts that differ, absurd dimensions, labels out of range,
 * trailing bytes, a missing file).  Every broken one must give -1, a
 * zeroed pd_dataset and a message naming the file.  If Debian's
 * dataset-fashion-mnist is installed, its test split is loaded too.
 */
#include "check.h"
#include "train/data.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ==== Helpers: writing IDX files ======================================= */

static char g_dir[64];

static void path_of(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", g_dir, name);
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Write bytes to g_dir/name, gzip'd when name ends in ".gz". */
static void write_file(const char *name, const unsigned char *bytes,
                       size_t len) {
    char path[256];
    path_of(path, sizeof path, name);
    size_t nl = strlen(name);
    if (nl > 3 && strcmp(name + nl - 3, ".gz") == 0) {
        gzFile f = gzopen(path, "wb");
        CHECK(f != NULL);
        CHECK_INT_EQ(gzwrite(f, bytes, (unsigned)len), (int)len);
        CHECK_INT_EQ(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        CHECK_INT_EQ(fwrite(bytes, 1, len, f), len);
        CHECK_INT_EQ(fclose(f), 0);
    }
}

static void remove_file(const char *name) {
    char path[256];
    path_of(path, sizeof path, name);
    unlink(path);
}

static void remove_all(void) {
    static const char *const prefixes[2] = {"train", "t10k"};
    static const char *const kinds[2] = {"images-idx3-ubyte",
                                         "labels-idx1-ubyte"};
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 2; k++)
            for (int gz = 0; gz < 2; gz++) {
                char name[96];
                snprintf(name, sizeof name, "%s-%s%s", prefixes[p], kinds[k],
                         gz ? ".gz" : "");
                remove_file(name);
            }
}

/* An images file of n images rows x cols, pixel (i, k) = (7*i + k) % 256,
 * in a malloc'd buffer; *len its size. */
static unsigned char *make_images(uint32_t magic, uint32_t n, uint32_t rows,
                                  uint32_t cols, size_t *len) {
    size_t pix = (size_t)n * rows * cols;
    unsigned char *b = malloc(16 + pix);
    CHECK(b != NULL);
    put_be32(b, magic);
    put_be32(b + 4, n);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < (size_t)rows * cols; k++)
            b[16 + i * rows * cols + k] = (unsigned char)((7 * i + k) % 256);
    *len = 16 + pix;
    return b;
}

/* A labels file of n labels, label i = (3*i) % 10. */
static unsigned char *make_labels(uint32_t magic, uint32_t n, size_t *len) {
    unsigned char *b = malloc(8 + n);
    CHECK(b != NULL);
    put_be32(b, magic);
    put_be32(b + 4, n);
    for (uint32_t i = 0; i < n; i++) b[8 + i] = (unsigned char)((3 * i) % 10);
    *len = 8 + n;
    return b;
}

/* Write a good split: prefix "train" or "t10k", gzip'd or plain. */
static void write_split(const char *prefix, int gz, uint32_t n, uint32_t rows,
                        uint32_t cols) {
    char name[96];
    size_t len;
    unsigned char *b = make_images(0x803, n, rows, cols, &len);
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix,
             gz ? ".gz" : "");
    write_file(name, b, len);
    free(b);
    b = make_labels(0x801, n, &len);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix,
             gz ? ".gz" : "");
    write_file(name, b, len);
    free(b);
}

static int is_zeroed(const pd_dataset *d) {
    return d->n == 0 && d->rows == 0 && d->cols == 0 && d->x == NULL &&
           d->y == NULL;
}

/* Load `split` from g_dir expecting failure; the message must contain
 * both `want1` and `want2`. */
static void expect_fail(const char *split, const char *want1,
                        const char *want2) {
    pd_dataset d;
    memset(&d, 0xab, sizeof d); /* must come back zeroed */
    char err[512];
    int rc = pd_dataset_load(g_dir, split, &d, err, sizeof err);
    if (rc != -1 || !strstr(err, want1) || !strstr(err, want2))
        CHECK_FAIL_("load %s: rc %d, err \"%s\", wanted \"%s\" and \"%s\"",
                    split, rc, err, want1, want2);
    CHECK(is_zeroed(&d));
    printf("  ok: %s\n", err);
}

/* ==== Tests: good files ================================================ */

static void check_values(const pd_dataset *d, int n, int rows, int cols) {
    CHECK_INT_EQ(d->n, n);
    CHECK_INT_EQ(d->rows, rows);
    CHECK_INT_EQ(d->cols, cols);
    for (int i = 0; i < n; i++) {
        CHECK_INT_EQ(d->y[i], (3 * i) % 10);
        for (int k = 0; k < rows * cols; k++) {
            float want = (float)((7 * i + k) % 256) / 255.0f;
            CHECK(d->x[(size_t)i * rows * cols + k] == want);
        }
    }
}

static void test_load_gzip_and_plain(void) {
    char err[512];
    pd_dataset d;

    remove_all();
    write_split("train", 1, 37, 5, 3); /* gzip'd */
    write_split("t10k", 0, 21, 4, 6);  /* plain */

    CHECK_OK(pd_dataset_load(g_dir, "train", &d, err, sizeof err));
    check_values(&d, 37, 5, 3);
    pd_dataset_free(&d);
    CHECK(is_zeroed(&d));
    pd_dataset_free(&d); /* idempotent */
    pd_dataset_free(NULL);

    CHECK_OK(pd_dataset_load(g_dir, "test", &d, err, sizeof err));
    check_values(&d, 21, 4, 6);

    /* gather: rows and labels of idx, in that order */
    uint32_t idx[3] = {20, 0, 7};
    float xb[3 * 24];
    uint8_t yb[3];
    pd_dataset_gather(&d, idx, 3, xb, yb);
    for (int b = 0; b < 3; b++) {
        CHECK_INT_EQ(yb[b], d.y[idx[b]]);
        CHECK(memcmp(xb + b * 24, d.x + idx[b] * 24, 24 * sizeof(float)) == 0);
    }
    pd_dataset_free(&d);

    /* .gz is preferred when both exist: write a plain t10k with other
     * dimensions beside a gzip'd one */
    write_split("t10k", 1, 9, 2, 2);
    CHECK_OK(pd_dataset_load(g_dir, "test", &d, err, sizeof err));
    check_values(&d, 9, 2, 2);
    pd_dataset_free(&d);
    printf("test_load_gzip_and_plain: ok\n");
}

/* ==== Tests: broken files ============================================== */

static void test_broken_files(void) {
    size_t len;
    unsigned char *b;

    /* missing labels file */
    remove_all();
    write_split("t10k", 0, 10, 3, 3);
    remove_file("t10k-labels-idx1-ubyte");
    expect_fail("test", "t10k-labels-idx1-ubyte", "not found");

    /* missing images file */
    remove_all();
    write_split("train", 1, 10, 3, 3);
    remove_file("train-images-idx3-ubyte.gz");
    expect_fail("train", "train-images-idx3-ubyte", "not found");

    /* truncated plain images: the payload ends 5 bytes early */
    remove_all();
    write_split("t10k", 0, 10, 3, 3);
    b = make_images(0x803, 10, 3, 3, &len);
    write_file("t10k-images-idx3-ubyte", b, len - 5);
    expect_fail("test", "t10k-images-idx3-ubyte", "truncated");
    /* ... and inside the header */
    write_file("t10k-images-idx3-ubyte", b, 10);
    expect_fail("test", "t10k-images-idx3-ubyte", "truncated");
    free(b);

    /* truncated gzip stream: cut a good .gz file in the middle */
    remove_all();
    write_split("train", 1, 200, 8, 8);
    {
        char path[256];
        path_of(path, sizeof path, "train-images-idx3-ubyte.gz");
        struct stat st;
        CHECK(stat(path, &st) == 0);
        CHECK(truncate(path, st.st_size / 2) == 0);
    }
    expect_fail("train", "train-images-idx3-ubyte.gz", "truncated");

    /* truncated labels */
    remove_all();
    write_split("t10k", 0, 10, 3, 3);
    b = make_labels(0x801, 10, &len);
    write_file("t10k-labels-idx1-ubyte", b, len - 1);
    free(b);
    expect_fail("test", "t10k-labels-idx1-ubyte", "truncated");

    /* bad magic: the labels file given as images, and a wrong labels
     * magic */
    remove_all();
    write_split("t10k", 0, 10, 3, 3);
    b = make_images(0x801, 10, 3, 3, &len);
    write_file("t10k-images-idx3-ubyte", b, len);
    free(b);
    expect_fail("test", "t10k-images-idx3-ubyte", "bad magic 0x00000801");
    remove_all();
    write_split("t10k", 1, 10, 3, 3);
    b = make_labels(0x12345678, 10, &len);
    write_file("t10k-labels-idx1-ubyte.gz", b, len);
    free(b);
    expect_fail("test", "t10k-labels-idx1-ubyte.gz", "bad magic");

    /* counts differ: 10 images, 9 labels */
    remove_all();
    write_split("t10k", 0, 10, 3, 3);
    b = make_labels(0x801, 9, &len);
    write_file("t10k-labels-idx1-ubyte", b, len);
    free(b);
    expect_fail("test", "t10k-labels-idx1-ubyte", "holds 9 labels");

    /* absurd dimensions (checked before allocating) */
    remove_all();
    write_split("t10k", 0, 10, 3, 3);
    {
        unsigned char h[16];
        put_be32(h, 0x803);
        put_be32(h + 4, 10);
        put_be32(h + 8, 100000);
        put_be32(h + 12, 3);
        write_file("t10k-images-idx3-ubyte", h, sizeof h);
        expect_fail("test", "t10k-images-idx3-ubyte", "absurd");
        put_be32(h + 4, 0xffffffffu);
        put_be32(h + 8, 28);
        put_be32(h + 12, 28);
        write_file("t10k-images-idx3-ubyte", h, sizeof h);
        expect_fail("test", "t10k-images-idx3-ubyte", "absurd");
        put_be32(h + 4, 0);
        write_file("t10k-images-idx3-ubyte", h, sizeof h);
        expect_fail("test", "t10k-images-idx3-ubyte", "absurd");
    }

    /* a label out of range */
    remove_all();
    write_split("t10k", 0, 10, 3, 3);
    b = make_labels(0x801, 10, &len);
    b[8 + 4] = 10;
    write_file("t10k-labels-idx1-ubyte", b, len);
    free(b);
    expect_fail("test", "t10k-labels-idx1-ubyte", "label 10 at index 4");

    /* trailing bytes after the images */
    remove_all();
    write_split("t10k", 0, 10, 3, 3);
    b = make_images(0x803, 10, 3, 3, &len);
    b = realloc(b, len + 9);
    CHECK(b != NULL);
    memset(b + len, 0, 9);
    write_file("t10k-images-idx3-ubyte", b, len + 9);
    free(b);
    expect_fail("test", "t10k-images-idx3-ubyte", "extra bytes");

    /* a directory that does not exist, an unknown split */
    {
        char missing[128];
        snprintf(missing, sizeof missing, "%s/nope", g_dir);
        pd_dataset d;
        char err[512];
        CHECK_INT_EQ(pd_dataset_load(missing, "test", &d, err, sizeof err), -1);
        CHECK(strstr(err, missing) && strstr(err, "no such directory"));
        CHECK(is_zeroed(&d));
        expect_fail("validation", "unknown split", "validation");
    }
    remove_all();
    printf("test_broken_files: ok\n");
}

/* ==== Tests: the real data set ========================================= */

static void test_fashion_mnist(void) {
    struct stat st;
    if (stat(PD_DATASET_DEFAULT_DIR, &st) != 0) {
        printf("test_fashion_mnist: skipped (%s absent; apt-get install "
               "dataset-fashion-mnist)\n",
               PD_DATASET_DEFAULT_DIR);
        return;
    }
    pd_dataset d;
    char err[512];
    int rc = pd_dataset_load(NULL, "test", &d, err, sizeof err);
    if (rc != 0) CHECK_FAIL_("loading the test split: %s", err);
    CHECK_INT_EQ(d.n, 10000);
    CHECK_INT_EQ(d.rows, 28);
    CHECK_INT_EQ(d.cols, 28);
    int count[10] = {0};
    for (int i = 0; i < d.n; i++) {
        CHECK(d.y[i] <= 9);
        count[d.y[i]]++;
    }
    for (int c = 0; c < 10; c++) CHECK_INT_EQ(count[c], 1000); /* balanced */
    double sum = 0;
    float lo = 1, hi = 0;
    for (size_t i = 0; i < (size_t)d.n * 784; i++) {
        sum += d.x[i];
        lo = d.x[i] < lo ? d.x[i] : lo;
        hi = d.x[i] > hi ? d.x[i] : hi;
    }
    CHECK(lo == 0.0f && hi == 1.0f);
    double mean = sum / ((double)d.n * 784);
    CHECK(mean > 0.2 && mean < 0.4); /* Fashion-MNIST's mean is 0.286 */
    pd_dataset_free(&d);
    printf("test_fashion_mnist: ok (mean pixel %.4f)\n", mean);
}

/* ==== Tests: shuffle =================================================== */

static void test_shuffle(void) {
    enum { N = 1000 };
    static uint32_t a[N], b[N], c[N];
    static uint8_t seen[N];
    pd_shuffle(a, N, 42);
    pd_shuffle(b, N, 42);
    pd_shuffle(c, N, 43);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        CHECK(a[i] < N);
        CHECK(!seen[a[i]]);
        seen[a[i]] = 1;
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    int same = 0, fixed = 0;
    for (int i = 0; i < N; i++) {
        same += a[i] == c[i];
        fixed += a[i] == (uint32_t)i;
    }
    CHECK(same < 20); /* ~1 expected for independent permutations */
    CHECK(fixed < 20);

    /* every position gets every value about equally often (n = 4) */
    int hist[4][4] = {{0}};
    for (uint64_t s = 0; s < 4000; s++) {
        uint32_t p[4];
        pd_shuffle(p, 4, s);
        for (int i = 0; i < 4; i++) hist[i][p[i]]++;
    }
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < 4; v++)
            CHECK(hist[i][v] > 850 && hist[i][v] < 1150);

    pd_shuffle(a, 0, 1); /* harmless */
    pd_shuffle(a, 1, 1);
    CHECK_INT_EQ(a[0], 0);
    printf("test_shuffle: ok\n");
}

/* ==== Main ============================================================= */

/* Runs at exit, on success and after a failed CHECK alike. */
static void cleanup(void) {
    remove_all();
    rmdir(g_dir);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/paramd_test_data.XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL);
    atexit(cleanup);
    test_load_gzip_and_plain();
    test_broken_files();
    test_shuffle();
    test_fashion_mnist();
    return 0;
}
