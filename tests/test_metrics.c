/*
 * test_metrics.c - src/train/metrics.c: metrics.csv and run.json written by
 * a run and read back by `paramd plot`.
 *
 * Every case works in its own directory under one mkdtemp directory, which
 * is removed at the end (also on success only: a failing test leaves it for
 * a look).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "train/metrics.h"

/* ==== Helpers =========================================================== */

static char root[] = "/tmp/paramd_test_metrics_XXXXXX";

/* root/name in a static buffer (one at a time is enough here). */
static const char *at(const char *name) {
    static char buf[2][512];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", root, name);
    return buf[k];
}

static void write_file(const char *dir, const char *name, const char *text) {
    char path[600];
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(text, 1, strlen(text), f) == strlen(text));
    CHECK(fclose(f) == 0);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Read a run that must fail; returns the message. */
static const char *read_fails(const char *dir) {
    static char err[512];
    pd_metric_row *rows = (pd_metric_row *)1;
    size_t n = 99;
    char label[64];
    err[0] = '\0';
    CHECK_INT_EQ(pd_metrics_read(dir, &rows, &n, label, sizeof label, err,
                                 sizeof err),
                 -1);
    CHECK(rows == NULL);
    CHECK_INT_EQ(n, 0);
    CHECK(err[0] != '\0');
    return err;
}

#define CHECK_CONTAINS(hay, needle)                                            \
    do {                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                \
        if (!strstr(h_, n_))                                                   \
            CHECK_FAIL_("\"%s\" contains \"%s\"", h_, n_);                     \
    } while (0)

/* dir holds exactly one entry besides . and .., `name` (no temporary file
 * beside it). */
static void check_only(const char *dir, const char *name) {
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        CHECK_STR_EQ(e->d_name, name);
        files++;
    }
    closedir(d);
    CHECK_INT_EQ(files, 1);
}

/* ==== Cases ============================================================= */

/* Rows written by the writer come back equal to the printed precision. */
static void test_round_trip(void) {
    const char *dir = at("deep/er/run1"); /* parents made like mkdir -p */
    char err[256];
    pd_metrics *m = NULL;
    CHECK_OK(pd_metrics_open(&m, dir, err, sizeof err));
    CHECK(m != NULL);

    enum { N = 50 };
    pd_metric_row in[N];
    for (int i = 0; i < N; i++) {
        in[i].time_s = 0.1234567891 * i + 1e-7;
        in[i].step = (int64_t)i * 1000 + 7;
        in[i].epoch = i / 3.0;
        in[i].samples = (int64_t)i * 64000 + ((int64_t)1 << 40);
        in[i].train_loss = 2.302585093 * exp(-0.1 * i);
        in[i].test_loss = i == 0 ? NAN : 1.0 / (i + 1);
        in[i].test_acc = (float)(0.1 + 0.8 * i / (N - 1)); /* float-valued */
        in[i].test_images = i == N - 1 ? 10000 : 2000;
        in[i].final = i == N - 1;
        CHECK_OK(pd_metrics_append(m, &in[i]));
    }
    CHECK_STR_EQ(pd_metrics_last_error(m), "");
    pd_metrics_close(m);
    pd_metrics_close(NULL); /* harmless */

    /* The header is the first line, the file ends with a newline. */
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    const char *text = read_text(path);
    CHECK(strncmp(text, PD_METRICS_HEADER "\n", strlen(PD_METRICS_HEADER) + 1)
          == 0);
    CHECK(text[strlen(text) - 1] == '\n');
    CHECK(strstr(text, "-nan") == NULL);

    pd_metric_row *out = NULL;
    size_t n = 0;
    char label[64];
    CHECK_OK(pd_metrics_read(dir, &out, &n, label, sizeof label, err,
                             sizeof err));
    CHECK_INT_EQ(n, N);
    for (int i = 0; i < N; i++) {
        CHECK_NEAR(out[i].time_s, in[i].time_s, 5e-9);
        CHECK_INT_EQ(out[i].step, in[i].step);
        CHECK_NEAR(out[i].epoch, in[i].epoch, 5e-9);
        CHECK_INT_EQ(out[i].samples, in[i].samples);
        CHECK_INT_EQ(out[i].test_images, in[i].test_images);
        CHECK_INT_EQ(out[i].final, in[i].final);
        CHECK_NEAR(out[i].train_loss, in[i].train_loss, 5e-9);
        if (i == 0) CHECK(isnan(out[i].test_loss));
        else CHECK_NEAR(out[i].test_loss, in[i].test_loss, 5e-9);
        /* %.9g brings a float back bit-exact. */
        CHECK((float)out[i].test_acc == (float)in[i].test_acc);
    }
    free(out);
    /* No run.json: the label is the directory's name. */
    CHECK_STR_EQ(label, "run1");
}

/* A header-only file is a run with no rows yet, not an error. */
static void test_header_only(void) {
    const char *dir = at("fresh");
    char err[256];
    pd_metrics *m;
    CHECK_OK(pd_metrics_open(&m, dir, err, sizeof err));
    pd_metrics_close(m);
    pd_metric_row *rows = (pd_metric_row *)1;
    size_t n = 99;
    char label[64];
    CHECK_OK(pd_metrics_read(dir, &rows, &n, label, sizeof label, err,
                             sizeof err));
    CHECK_INT_EQ(n, 0);
    CHECK(rows == NULL);
}

/* Hand-written files: what the reader tolerates. */
static void test_tolerant(void) {
    const char *dir = at("tolerant");
    /* CRLF, spaces around fields, a blank line, empty and "nan" doubles,
     * no newline at the end. */
    write_file(dir, "metrics.csv",
               PD_METRICS_HEADER_V1 "\r\n"
               "1.5, 10 ,0.5,640,2.25,,0.125\r\n"
               "\r\n"
               "3,20,1,1280,nan,1.75,0.5");
    pd_metric_row *rows = NULL;
    size_t n = 0;
    char label[64], err[256];
    CHECK_OK(pd_metrics_read(dir, &rows, &n, label, sizeof label, err,
                             sizeof err));
    CHECK_INT_EQ(n, 2);
    CHECK_NEAR(rows[0].time_s, 1.5, 0);
    CHECK_INT_EQ(rows[0].step, 10);
    CHECK_INT_EQ(rows[0].samples, 640);
    CHECK(isnan(rows[0].test_loss));
    CHECK_NEAR(rows[0].test_acc, 0.125, 0);
    CHECK(isnan(rows[1].train_loss));
    CHECK_NEAR(rows[1].test_loss, 1.75, 0);
    CHECK_NEAR(rows[1].test_acc, 0.5, 0);
    /* an earlier version's file: its last row is the final evaluation */
    CHECK_INT_EQ(rows[0].final, 0);
    CHECK_INT_EQ(rows[1].final, 1);
    CHECK_INT_EQ(rows[1].test_images, 0);
    free(rows);
    /* the current header: final is 0 or 1, nothing else */
    write_file(dir, "metrics.csv", PD_METRICS_HEADER "\n1,2,3,4,5,6,0.5,2000,2\n");
    CHECK(pd_metrics_read(dir, &rows, &n, label, sizeof label, err, sizeof err) == -1);
    CHECK(strstr(err, "final") != NULL);

    /* A byte-order mark before the header. */
    const char *bom = at("bom");
    write_file(bom, "metrics.csv",
               "\xEF\xBB\xBF" PD_METRICS_HEADER_V1 "\n1,2,3,4,5,6,0.7\n");
    CHECK_OK(pd_metrics_read(bom, &rows, &n, label, sizeof label, err,
                             sizeof err));
    CHECK_INT_EQ(n, 1);
    CHECK_INT_EQ(rows[0].samples, 4);
    free(rows);
}

/* Malformed files fail with a message naming file:line. */
static void test_malformed(void) {
    char expect[600];
    const char *d;

    d = at("bad_header");
    write_file(d, "metrics.csv", "time,step\n1,2\n");
    snprintf(expect, sizeof expect, "%s/metrics.csv:1: header is 'time,step'",
             d);
    CHECK_CONTAINS(read_fails(d), expect);

    d = at("few_fields");
    write_file(d, "metrics.csv",
               PD_METRICS_HEADER_V1 "\n1,2,3,4,5,6,7\n1,2,3,4,5\n");
    snprintf(expect, sizeof expect, "%s/metrics.csv:3: expected 7", d);
    CHECK_CONTAINS(read_fails(d), expect);
    CHECK_CONTAINS(read_fails(d), "found 5");

    d = at("many_fields");
    write_file(d, "metrics.csv", PD_METRICS_HEADER_V1 "\n1,2,3,4,5,6,7,8");
    snprintf(expect, sizeof expect, "%s/metrics.csv:2: expected 7", d);
    CHECK_CONTAINS(read_fails(d), expect);

    d = at("bad_number");
    write_file(d, "metrics.csv",
               PD_METRICS_HEADER_V1 "\n1,2,3,4,5,6,0.5x\n");
    snprintf(expect, sizeof expect,
             "%s/metrics.csv:2: field 7 (test_acc) is not a number: '0.5x'", d);
    CHECK_CONTAINS(read_fails(d), expect);

    d = at("bad_int");
    write_file(d, "metrics.csv",
               PD_METRICS_HEADER_V1 "\n1,2,3,4,5,6,7\n\n1,2.5,3,4,5,6,7\n");
    snprintf(expect, sizeof expect,
             "%s/metrics.csv:4: field 2 (step) is not an integer: '2.5'", d);
    CHECK_CONTAINS(read_fails(d), expect);

    d = at("empty_int");
    write_file(d, "metrics.csv", PD_METRICS_HEADER_V1 "\n1,2,3,,5,6,7\n");
    CHECK_CONTAINS(read_fails(d), "field 4 (samples) is not an integer");

    d = at("empty_file");
    write_file(d, "metrics.csv", "");
    CHECK_CONTAINS(read_fails(d), "empty file");

    d = at("no_csv");
    mkdir(d, 0777);
    CHECK_CONTAINS(read_fails(d), "no metrics.csv");

    CHECK_CONTAINS(read_fails(at("does_not_exist")), "No such file");

    d = at("a_file");
    write_file(root, "a_file", "x");
    CHECK_CONTAINS(read_fails(d), "not a directory");
}

/* run.json: written atomically, and the label rules. */
static void test_run_json(void) {
    const char *dir = at("json/run");
    char err[256], label[64];
    const char *json =
        "{\n  \"model\": \"mlp\", \"consistency\": \"sync\",\n"
        "  \"summary\": {\"label\": \"not me\", \"workers\": 9},\n"
        "  \"workers\" : 4, \"servers\": 2, \"lr\": 0.1\n}";
    CHECK_OK(pd_metrics_write_run_json(dir, json, err, sizeof err));
    char path[600];
    snprintf(path, sizeof path, "%s/run.json", dir);
    const char *text = read_text(path);
    CHECK(strncmp(text, json, strlen(json)) == 0);
    CHECK_STR_EQ(text + strlen(json), "\n"); /* newline added */

    /* Nothing but run.json is left behind (no temporary file). */
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' || strncmp(e->d_name, ".run", 4) == 0) {
            CHECK_STR_EQ(e->d_name, "run.json");
            files++;
        }
    closedir(d);
    CHECK_INT_EQ(files, 1);

    /* Built from model / consistency / workers, the nested one ignored. */
    pd_metrics_label(json, dir, label, sizeof label);
    CHECK_STR_EQ(label, "mlp sync W=4");

    /* Read together with metrics.csv. */
    pd_metrics *m;
    CHECK_OK(pd_metrics_open(&m, dir, err, sizeof err));
    pd_metric_row r = {1, 2, 3, 4, 5, 6, 0.75, 10000, 1};
    CHECK_OK(pd_metrics_append(m, &r));
    pd_metrics_close(m);
    pd_metric_row *rows;
    size_t n;
    CHECK_OK(pd_metrics_read(dir, &rows, &n, label, sizeof label, err,
                             sizeof err));
    CHECK_INT_EQ(n, 1);
    CHECK_STR_EQ(label, "mlp sync W=4");
    free(rows);

    /* Replacing it is atomic too and leaves the new text. */
    CHECK_OK(pd_metrics_write_run_json(
        dir, "{\"label\" : \"cnn \\\"fast\\\" \\\\ W=2\", \"model\":\"cnn\"}\n",
        err, sizeof err));
    CHECK_OK(pd_metrics_read(dir, &rows, &n, label, sizeof label, err,
                             sizeof err));
    CHECK_STR_EQ(label, "cnn \"fast\" \\ W=2");
    free(rows);

    /* Not an object: refused, run.json untouched. */
    CHECK_INT_EQ(pd_metrics_write_run_json(dir, "[1,2]", err, sizeof err), -1);
    CHECK_CONTAINS(err, "not a JSON object");
    CHECK_CONTAINS(read_text(path), "cnn");

    /* Only some fields; none; malformed; an empty label. */
    pd_metrics_label("{\"consistency\":\"async\"}", dir, label, sizeof label);
    CHECK_STR_EQ(label, "async");
    pd_metrics_label("{\"seed\": 1}", "runs/x/", label, sizeof label);
    CHECK_STR_EQ(label, "x");
    pd_metrics_label("{\"model\": \"mlp", "runs/y", label, sizeof label);
    CHECK_STR_EQ(label, "y");
    pd_metrics_label("{\"label\":\"\",\"model\":\"cnn\"}", "z", label,
                     sizeof label);
    CHECK_STR_EQ(label, "cnn");
    pd_metrics_label(NULL, "/", label, sizeof label);
    CHECK_STR_EQ(label, "/");

    /* A long label is cut at a character boundary. */
    char small[6];
    pd_metrics_label("{\"label\":\"ab\\u00e9\\u00e9\"}", "d", small,
                     sizeof small);
    CHECK_STR_EQ(small, "ab\xC3\xA9"); /* "abé" + no half of the next é */
}

/* The JSON field scanner on its own. */
static void test_json_field(void) {
    char v[64];
    const char *j =
        " { \"a\\\"b\" : \"x\", "
        "\"s\": \"q\\\"\\\\\\/\\n\\u00e9\\ud83d\\ude00\","
        "\"arr\": [1, {\"s\": \"no\"}, \"]\"], \"num\": -1.5e3,"
        " \"t\": true, \"obj\": {}, \"n\": null } ";
    CHECK_INT_EQ(pd_json_top_field(j, "s", v, sizeof v), 1);
    CHECK_STR_EQ(v, "q\"\\/\n\xC3\xA9\xF0\x9F\x98\x80");
    CHECK_INT_EQ(pd_json_top_field(j, "a\"b", v, sizeof v), 1);
    CHECK_STR_EQ(v, "x");
    CHECK_INT_EQ(pd_json_top_field(j, "num", v, sizeof v), 2);
    CHECK_STR_EQ(v, "-1.5e3");
    CHECK_INT_EQ(pd_json_top_field(j, "t", v, sizeof v), 2);
    CHECK_STR_EQ(v, "true");
    CHECK_INT_EQ(pd_json_top_field(j, "n", v, sizeof v), 2);
    CHECK_STR_EQ(v, "null");
    CHECK_INT_EQ(pd_json_top_field(j, "arr", v, sizeof v), 3);
    CHECK_INT_EQ(pd_json_top_field(j, "obj", v, sizeof v), 3);
    CHECK_INT_EQ(pd_json_top_field(j, "missing", v, sizeof v), 0);
    CHECK_INT_EQ(pd_json_top_field("{}", "a", v, sizeof v), 0);
    CHECK_INT_EQ(pd_json_top_field("[]", "a", v, sizeof v), -1);
    CHECK_INT_EQ(pd_json_top_field("", "a", v, sizeof v), -1);
    CHECK_INT_EQ(pd_json_top_field("{\"a\" 1}", "a", v, sizeof v), -1);
    CHECK_INT_EQ(pd_json_top_field("{\"b\":\"\\x\",\"a\":1}", "a", v, sizeof v),
                 -1);
    /* A field after the wanted one may be broken: not looked at. */
    CHECK_INT_EQ(pd_json_top_field("{\"a\":\"ok\", garbage", "a", v, sizeof v),
                 1);
    /* Deep nesting is refused, not a stack overflow. */
    char deep[4096] = "{\"x\":";
    for (int i = 0; i < 1000; i++) strcat(deep, "[");
    CHECK_INT_EQ(pd_json_top_field(deep, "y", v, sizeof v), -1);
}

/* Another writer goes on with a file whose writer died: whole rows kept,
 * a torn last line cut off, rows after the step it goes on from removed,
 * a missing file created with its header. */
static void test_reopen(void) {
    const char *dir = at("reopen");
    char err[256], path[600], lab[128];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    pd_metrics *m = NULL;
    pd_metric_row r = {1.5, 100, 0.5, 6400, 0.75, 0.5, 0.875, 2000, 0};
    CHECK_OK(pd_metrics_open(&m, dir, err, sizeof err));
    CHECK_OK(pd_metrics_append(m, &r));
    pd_metrics_close(m);
    /* the dead writer's torn line */
    FILE *f = fopen(path, "ab");
    CHECK(f != NULL);
    CHECK(fputs("2.5,200,1,12", f) >= 0);
    CHECK(fclose(f) == 0);
    double el = 0;
    int64_t last = 0;
    CHECK_OK(pd_metrics_reopen(&m, dir, INT64_MAX, &el, &last, err, sizeof err));
    CHECK(el >= 1.5); /* the last row's time, and the time since */
    CHECK_INT_EQ(last, 100);
    pd_metric_row fin = {3.0, 300, 1.5, 19200, 0.25, 0.375, 0.9375, 10000, 1};
    CHECK_OK(pd_metrics_append(m, &fin));
    pd_metrics_close(m);
    pd_metric_row *rows = NULL;
    size_t n = 0;
    CHECK_OK(pd_metrics_read(dir, &rows, &n, lab, sizeof lab, err, sizeof err));
    CHECK_INT_EQ(n, 2);
    CHECK_INT_EQ(rows[0].step, 100);
    CHECK_INT_EQ(rows[1].step, 300);
    CHECK_INT_EQ(rows[1].final, 1);
    free(rows);
    CHECK(strstr(read_text(path), "2.5,200") == NULL);
    /* going on from step 50 (a restart from a checkpoint): the rows after
     * it and the final row go; from step 100: that row stays */
    CHECK_OK(pd_metrics_reopen(&m, dir, 100, &el, &last, err, sizeof err));
    CHECK_INT_EQ(last, 100);
    pd_metrics_close(m);
    CHECK_OK(pd_metrics_read(dir, &rows, &n, lab, sizeof lab, err, sizeof err));
    CHECK_INT_EQ(n, 1);
    free(rows);
    CHECK_OK(pd_metrics_reopen(&m, dir, 50, &el, &last, err, sizeof err));
    CHECK_INT_EQ(last, -1);
    CHECK_OK(pd_metrics_append(m, &r));
    pd_metrics_close(m);
    CHECK_OK(pd_metrics_read(dir, &rows, &n, lab, sizeof lab, err, sizeof err));
    CHECK_INT_EQ(n, 1);
    CHECK_INT_EQ(rows[0].step, 100);
    free(rows);
    /* no file yet: created, with the header */
    const char *fresh = at("reopen-fresh");
    CHECK_OK(pd_metrics_reopen(&m, fresh, INT64_MAX, &el, &last, err, sizeof err));
    CHECK(el == 0 && last == -1);
    CHECK_OK(pd_metrics_append(m, &fin));
    pd_metrics_close(m);
    CHECK_OK(pd_metrics_read(fresh, &rows, &n, lab, sizeof lab, err, sizeof err));
    CHECK_INT_EQ(n, 1);
    free(rows);
}

/* Going on from an earlier step rewrites metrics.csv as a new file renamed
 * over the old one (its mode kept, no temporary file left); when that
 * fails, the old file is as it was and the message says what failed on
 * which file. */
static void test_reopen_replaces(void) {
    const char *dir = at("reopen-replace");
    char err[512], path[600], lab[128], before[4096];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    pd_metrics *m = NULL;
    CHECK_OK(pd_metrics_open(&m, dir, err, sizeof err));
    for (int64_t s = 100; s <= 400; s += 100) {
        pd_metric_row r = {(double)s / 100, s, 0.25, s * 64, 0.5, 0.375, 0.75, 2000, 0};
        CHECK_OK(pd_metrics_append(m, &r));
    }
    pd_metrics_close(m);
    CHECK(chmod(path, 0640) == 0);
    struct stat st0, st1;
    CHECK(stat(path, &st0) == 0);

    double el = 0;
    int64_t last = 0;
    CHECK_OK(pd_metrics_reopen(&m, dir, 300, &el, &last, err, sizeof err));
    CHECK_INT_EQ(last, 300);
    CHECK(el >= 4); /* the time of the last row in the file, step 400's */
    pd_metric_row more = {3.5, 350, 0.75, 22400, 0.25, 0.25, 0.875, 2000, 0};
    CHECK_OK(pd_metrics_append(m, &more)); /* the writer appends to the new file */
    pd_metrics_close(m);
    check_only(dir, "metrics.csv");
    CHECK(stat(path, &st1) == 0);
    CHECK(st1.st_ino != st0.st_ino); /* a new file, not the old one cut */
    CHECK_INT_EQ(st1.st_mode & 07777, 0640);
    pd_metric_row *rows = NULL;
    size_t n = 0;
    CHECK_OK(pd_metrics_read(dir, &rows, &n, lab, sizeof lab, err, sizeof err));
    CHECK_INT_EQ(n, 4);
    CHECK_INT_EQ(rows[0].step, 100);
    CHECK_INT_EQ(rows[1].step, 200);
    CHECK_INT_EQ(rows[2].step, 300);
    CHECK_NEAR(rows[2].test_acc, 0.75, 0);
    CHECK_INT_EQ(rows[2].samples, 300 * 64);
    CHECK_INT_EQ(rows[3].step, 350);
    free(rows);

    /* The new file cannot be written: a file size limit (the tests run as
     * root, so permissions would not stop it) below the header's length.
     * Going on from step 100 would drop rows: it fails, and nothing of the
     * old file is lost. */
    snprintf(before, sizeof before, "%s", read_text(path));
    CHECK(stat(path, &st0) == 0);
    struct rlimit old;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    struct rlimit small = {16, old.rlim_max};
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    m = (pd_metrics *)1;
    err[0] = '\0';
    int rc = pd_metrics_reopen(&m, dir, 100, &el, &last, err, sizeof err);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, was);
    CHECK_INT_EQ(rc, -1);
    CHECK(m == NULL);
    CHECK_CONTAINS(err, "cannot write");
    CHECK_CONTAINS(err, "/.metrics.csv."); /* the temporary file */
    CHECK_CONTAINS(err, path);             /* and the one it was for */
    CHECK_CONTAINS(err, strerror(EFBIG));
    CHECK_STR_EQ(read_text(path), before);
    CHECK(stat(path, &st1) == 0);
    CHECK(st1.st_ino == st0.st_ino);
    check_only(dir, "metrics.csv");

    /* The run directory is a file: said, and the file left alone. */
    const char *notdir = at("reopen-notdir");
    write_file(root, "reopen-notdir", "not a directory\n");
    m = (pd_metrics *)1;
    CHECK_INT_EQ(pd_metrics_reopen(&m, notdir, 100, &el, &last, err, sizeof err), -1);
    CHECK(m == NULL);
    CHECK_CONTAINS(err, "reopen-notdir/metrics.csv");
    CHECK_CONTAINS(err, strerror(ENOTDIR));
    CHECK_STR_EQ(read_text(notdir), "not a directory\n");
}

int main(void) {
    CHECK(mkdtemp(root) != NULL);
    test_reopen();
    test_reopen_replaces();
    test_round_trip();
    test_header_only();
    test_tolerant();
    test_malformed();
    test_run_json();
    test_json_field();
    rm_rf(root);
    printf("test_metrics: ok\n");
    return 0;
}
