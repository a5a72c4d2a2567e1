/*
 * tool_idx.c - writes small IDX data sets for tests/it_badinput.sh (not a
 * test by itself): `tool_idx DIR SPLIT N ROWS COLS MODE` writes
 * DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] with N images of
 * ROWS x COLS (pixels and labels from a fixed pattern, so a model can
 * learn something) and N labels.  MODE:
 *   plain  the two files, uncompressed
 *   gz     the images gzip'd (as Debian ships them)
 *   cut    plain, then the images file cut 100 bytes short
 *   gzcut  gzip'd, then the compressed file cut to half
 *   huge   an images header claiming 2^28 images (the file is small)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static void be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: tool_idx DIR train|test N ROWS COLS plain|gz|cut|gzcut|huge\n");
        return 2;
    }
    const char *dir = argv[1], *split = strcmp(argv[2], "test") == 0 ? "t10k" : "train";
    uint32_t n = (uint32_t)atol(argv[3]), r = (uint32_t)atol(argv[4]), c = (uint32_t)atol(argv[5]);
    const char *mode = argv[6];
    int gz = !strcmp(mode, "gz") || !strcmp(mode, "gzcut");
    mkdir(dir, 0755);
    size_t len = 16 + (size_t)n * r * c;
    unsigned char *img = malloc(len);
    if (!img) return 1;
    be32(img, 0x803), be32(img + 4, strcmp(mode, "huge") ? n : (uint32_t)1 << 28);
    be32(img + 8, r), be32(img + 12, c);
    for (size_t i = 0; i < (size_t)n * r * c; i++) img[16 + i] = (unsigned char)((i * 7 + i / (r * c) * 31) & 0xff);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, split, gz ? ".gz" : "");
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f || gzwrite(f, img, (unsigned)len) != (int)len || gzclose(f) != Z_OK) return 1;
        if (!strcmp(mode, "gzcut")) {
            FILE *g = fopen(path, "rb");
            fseek(g, 0, SEEK_END);
            long sz = ftell(g);
            fclose(g);
            if (truncate(path, sz / 2) != 0) return 1;
        }
    } else {
        FILE *f = fopen(path, "wb");
        size_t w = !strcmp(mode, "cut") ? len - 100 : len;
        if (!f || fwrite(img, 1, w, f) != w || fclose(f) != 0) return 1;
    }
    unsigned char *lab = malloc(8 + n);
    if (!lab) return 1;
    be32(lab, 0x801), be32(lab + 4, n);
    for (uint32_t i = 0; i < n; i++) lab[8 + i] = (unsigned char)(i % 10);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, split);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(lab, 1, 8 + n, f) != 8 + n || fclose(f) != 0) return 1;
    free(img), free(lab);
    return 0;
}
