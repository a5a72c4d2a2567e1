/*
 * replay.c - the driver that makes a libFuzzer harness an ordinary test
 * when the build is not clang's libFuzzer build (tests/fuzz/README.md):
 * every file named on the command line, or found in a directory named
 * there, is fed once to the harness's LLVMFuzzerTestOneInput.  A harness
 * checks its own properties (it aborts through check.h on a violation),
 * and the ASan/UBSan build turns a memory error into a failure, so a
 * corpus that replays cleanly is a test that passed.  Prints how many
 * inputs ran; fails if none did (a corpus that went missing must not pass
 * silently).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    /* An exact-size copy, so that a read past the end is caught. */
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 1;
}

static int run_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0; /* a crashes/ directory may not exist */
    if (!S_ISDIR(st.st_mode)) return run_file(path);
    DIR *d = opendir(path);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        n += run_path(p);
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    int n = 0;
    for (int i = 1; i < argc; i++) n += run_path(argv[i]);
    printf("%s: %d inputs replayed\n", argc > 0 ? argv[0] : "replay", n);
    return n > 0 ? 0 : 1;
}
