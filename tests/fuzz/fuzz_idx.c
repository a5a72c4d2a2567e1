/*
 * fuzz_idx.c - libFuzzer harness: the IDX reader (src/train/data.c), on
 * real files.  Input: a flags byte (bit 0: ask for 28x28 images, as the
 * models do; bit 1: write the images gzip'd), a u32 length L
 * (little-endian), L bytes of images file, then the labels file.  Both
 * are written into a private directory and loaded as the "train" split.
 * Properties: no memory error whatever the files hold; a failure leaves
 * nothing allocated and says what was wrong; a success has the header's
 * shape (28x28 when asked), labels 0..9 and pixels in [0, 1].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../check.h"
#include "train/data.h"

static char dir[64];
static char img_path[128], lab_path[128];

static void cleanup(void) {
    unlink(img_path);
    unlink(lab_path);
    char gz[160];
    snprintf(gz, sizeof gz, "%s.gz", img_path);
    unlink(gz);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    snprintf(dir, sizeof dir, "/tmp/paramd-fuzz-idx.XXXXXX");
    if (!mkdtemp(dir)) CHECK_FAIL_("mkdtemp");
    snprintf(img_path, sizeof img_path, "%s/train-images-idx3-ubyte", dir);
    snprintf(lab_path, sizeof lab_path, "%s/train-labels-idx1-ubyte", dir);
    atexit(cleanup);
    return 0;
}

static void put(const char *path, const uint8_t *p, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb1");
        CHECK(f != NULL);
        if (n) CHECK(gzwrite(f, p, (unsigned)n) == (int)n);
        gzclose(f);
        return;
    }
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (n) CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    int shape = data[0] & 1, gz = data[0] & 2;
    uint32_t L = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 |
                 (uint32_t)data[4] << 24;
    const uint8_t *p = data + 5;
    size_t left = size - 5;
    if (L > left) L = (uint32_t)left;
    char gzpath[160];
    snprintf(gzpath, sizeof gzpath, "%s.gz", img_path);
    unlink(gzpath);
    unlink(img_path);
    put(gz ? gzpath : img_path, p, L, gz);
    put(lab_path, p + L, left - L, 0);
    pd_dataset d;
    char err[512];
    int rc = shape ? pd_dataset_load_shape(dir, "train", 28, 28, &d, err, sizeof err)
                   : pd_dataset_load(dir, "train", &d, err, sizeof err);
    if (rc != 0) {
        CHECK(d.x == NULL && d.y == NULL && d.n == 0);
        CHECK(err[0] != '\0');
        return 0;
    }
    CHECK(d.n >= 1 && d.rows >= 1 && d.cols >= 1);
    if (shape) CHECK(d.rows == 28 && d.cols == 28);
    for (int32_t i = 0; i < d.n; i++) CHECK(d.y[i] <= 9);
    size_t px = (size_t)d.n * (size_t)d.rows * (size_t)d.cols;
    for (size_t i = 0; i < px; i++) CHECK(d.x[i] >= 0 && d.x[i] <= 1);
    pd_dataset_free(&d);
    return 0;
}
