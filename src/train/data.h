/*
 * data.h - image data sets for the training programs: the IDX reader
 * (MNIST, Fashion-MNIST), a deterministic shuffle, and batch gathering.
 *
 * A data set is read whole into memory at start-up, as floats in [0,1]:
 * Fashion-MNIST's 60000 training images take 188 MB, its 10000 test images
 * 31 MB.  That is the simple choice and the fast one (a step only copies B
 * rows); a worker that owns a slice of the data can gather from its slice.
 *
 * The reader trusts nothing in a file: every header field is checked
 * against limits before anything is allocated, the two files of a split
 * must agree on the number of samples, labels must be 0..9, and a file
 * that ends early says "truncated" with the byte counts.  Every failure
 * names the file and what was wrong in one line, so a program can print it
 * as is.
 *
 * Nothing here has global state; every function is thread-safe on distinct
 * objects, and pd_dataset_gather may run from many threads on one data set.
 */
#ifndef PARAMD_TRAIN_DATA_H
#define PARAMD_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

/* Where Debian's package dataset-fashion-mnist puts the four files. */
#define PD_DATASET_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

/* Limits on what a header may claim (anything larger is "absurd"): at most
 * PD_DATASET_MAX_N samples, each side at most PD_DATASET_MAX_SIDE pixels,
 * and at most PD_DATASET_MAX_PIXELS pixels in all (1 GiB of floats). */
#define PD_DATASET_MAX_N 100000000
#define PD_DATASET_MAX_SIDE 4096
#define PD_DATASET_MAX_PIXELS (1ull << 28)

typedef struct pd_dataset {
    int32_t n, rows, cols; /* n images of rows x cols */
    float *x;              /* (n, rows*cols) row-major, pixel/255 in [0,1] */
    uint8_t *y;            /* (n) labels 0..9 */
} pd_dataset;

/*
 * Load the split "train" (files train-images-idx3-ubyte and
 * train-labels-idx1-ubyte) or "test" (t10k-...) from `dir`.  Each file is
 * looked for as NAME.gz, then NAME; zlib reads both gzip and plain files.
 * dir NULL means PD_DATASET_DEFAULT_DIR.
 *
 * Returns 0 and fills *out (free it with pd_dataset_free), or -1 with a
 * one-line message in err (always NUL-terminated when errlen > 0) naming
 * the file and the problem: not found, bad magic (images 0x00000803,
 * labels 0x00000801), absurd dimensions, truncated, trailing bytes,
 * label out of range, image and label counts that differ, a gzip error.
 * When the default directory is missing, the message says how to install
 * it.  On failure *out is all zeros and nothing is left allocated.
 */
int pd_dataset_load(const char *dir, const char *split, pd_dataset *out,
                    char *err, size_t errlen);

/*
 * The same, for a consumer that takes images of one size only (the
 * models: 28x28): images of any other size are refused from the header,
 * before anything is allocated, with a message naming both sizes.  rows
 * or cols 0: any.  A plain (not gzip'd) file whose size is not what its
 * header announces is refused from the header too ("truncated" or "extra
 * bytes", with both sizes).
 */
int pd_dataset_load_shape(const char *dir, const char *split, int32_t rows,
                          int32_t cols, pd_dataset *out, char *err, size_t errlen);

/*
 * Read only the images header of a split (to size things before loading
 * it): 0 with the count and sides, or -1 with a message as above.
 */
int pd_dataset_header(const char *dir, const char *split, int32_t *n, int32_t *rows,
                      int32_t *cols, char *err, size_t errlen);

/* Free the arrays and zero *d.  NULL-safe and idempotent. */
void pd_dataset_free(pd_dataset *d);

/*
 * Fill idx[0..n) with a permutation of 0..n-1 drawn from `seed` (Fisher-
 * Yates driven by xoshiro256** seeded through splitmix64; unbiased bounded
 * draws).  The same (n, seed) gives the same order on every machine.
 */
void pd_shuffle(uint32_t *idx, uint32_t n, uint64_t seed);

/*
 * Gather a batch: x_out (B, rows*cols) and y_out (B) from the samples
 * idx[0..B).  Every idx[i] must be < d->n (the caller's invariant; checked
 * with assert only).  x_out or y_out may be NULL to skip it.
 */
void pd_dataset_gather(const pd_dataset *d, const uint32_t *idx, int B,
                       float *x_out, uint8_t *y_out);

#endif
