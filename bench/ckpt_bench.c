/*
 * ckpt_bench.c - how fast a server writes a checkpoint and reads it back,
 * next to what the disk allows, measured in the same run, interleaved.
 *
 *   build/bench/ckpt_bench [DIR] [MB] [ROUNDS]      (defaults: /tmp, 256, 3)
 *
 * Each round, on DIR's filesystem:
 *   ceiling write  as many bytes as the checkpoint file, in 1 MiB
 *                  write()s, then fdatasync: what `dd bs=1M
 *                  conv=fdatasync` measures
 *   checkpoint     a dense table of MB of float values (rule adam: values
 *                  and two state planes, 3 x MB in all) written as a
 *                  server writes it (pd_table_save into a pd_ckw: CRC-32,
 *                  fsync, rename, fsync of the directory), rate counted on
 *                  the file's bytes
 *   ceiling read   the checkpoint file read with 1 MiB read()s
 *   restore        the file mapped and checked whole (pd_ckr_open: the
 *                  CRC of every byte) and loaded into a new table
 * Both reads come from the page cache when the file is still in it (a
 * machine with room), so the read ratio compares two cached reads; the
 * write ratio is against the disk.  One line per figure, then the median
 * ratios.  A benchmark, not a test: it asserts nothing but that the
 * restored values equal the written ones.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_stats.h"
#include "common/common.h"
#include "durable/ckfile.h"
#include "server/dense.h"
#include "table/spec.h"
#include "wire/wire.h"

static double now(void) { return pd_now(); }

static pd_table *mk(uint64_t n) {
    pd_table_def d = {0};
    pd_err e = {0};
    if (pd_spec_parse("rule=adam consistency=sync", &d, &e)) exit(1);
    d.n = n, d.lo = 0, d.hi = n;
    pd_table_env env = {1, 0, 1, NULL, 0, NULL};
    pd_table *t = pd_table_create(1, &d, &env, &e);
    if (!t) {
        fprintf(stderr, "ckpt_bench: %s\n", e.msg);
        exit(1);
    }
    return t;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    int mb = argc > 2 ? atoi(argv[2]) : 256;
    int rounds = argc > 3 ? atoi(argv[3]) : 3;
    if (mb < 1 || rounds < 1 || rounds > 50) {
        fprintf(stderr, "usage: ckpt_bench [DIR] [MB] [ROUNDS]\n");
        return 2;
    }
    uint64_t n = (uint64_t)mb << 18; /* floats */
    pd_table *t = mk(n);
    pd_dense *s = (pd_dense *)(void *)t;
    for (uint64_t i = 0; i < n; i++) s->params[i] = (float)(i % 1000) * 0.001f;
    size_t bytes1 = (size_t)mb << 20;
    char *buf = malloc(1u << 20);
    memset(buf, 0x5a, 1u << 20);
    char path[4200], cpath[4200];
    snprintf(path, sizeof path, "%s/ckpt_bench.ceiling", dir);
    snprintf(cpath, sizeof cpath, "%s/ckpt_bench.pdck", dir);
    double rw[50], rr[50];
    printf("# ckpt_bench: %s, table of %d MB of values (%d MB with adam's state), %d rounds\n",
           dir, mb, 3 * mb, rounds);
    size_t fsize = 3 * bytes1 + 4096; /* about the checkpoint file's size */
    for (int r = 0; r < rounds; r++) {
        /* ceiling write: as many bytes as the checkpoint file */
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        double t0 = now();
        for (size_t off = 0; off < fsize; off += 1u << 20)
            if (write(fd, buf, 1u << 20) != 1 << 20) return 1;
        fdatasync(fd);
        double cw = (double)((fsize + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1)) / (now() - t0);
        close(fd);
        unlink(path);
        /* checkpoint write */
        pd_ckw w;
        pd_err e = {0};
        uint64_t fbytes;
        t0 = now();
        if (pd_ckw_open(&w, dir, "ckpt_bench.pdck", PD_CK_SERVER, &e)) {
            fprintf(stderr, "ckpt_bench: %s\n", e.msg);
            return 1;
        }
        pd_table_save(t, &w, &(pd_ck_save){1, 0});
        if (pd_ckw_commit(&w, &fbytes, NULL, &e)) {
            fprintf(stderr, "ckpt_bench: %s\n", e.msg);
            return 1;
        }
        double kw = (double)fbytes / (now() - t0);
        /* ceiling read of the same file */
        fd = open(cpath, O_RDONLY);
        t0 = now();
        size_t got = 0;
        ssize_t k;
        while ((k = read(fd, buf, 1u << 20)) > 0) got += (size_t)k;
        double cr = (double)got / (now() - t0);
        close(fd);
        /* restore */
        pd_table *b = mk(n);
        t0 = now();
        pd_ckr rd;
        if (pd_ckr_open(&rd, cpath, PD_CK_SERVER, &e)) {
            fprintf(stderr, "ckpt_bench: %s\n", e.msg);
            return 1;
        }
        uint32_t id, dlen;
        pd_get_u32(&rd.body, &id);
        pd_get_u32(&rd.body, &dlen);
        pd_table_def from;
        pd_table_def_decode(rd.body.p + rd.body.off, dlen, &from, &e);
        rd.body.off += dlen;
        if (b->ops->load(b, &rd, &from, &e)) {
            fprintf(stderr, "ckpt_bench: %s\n", e.msg);
            return 1;
        }
        pd_ckr_close(&rd);
        double kr = (double)fbytes / (now() - t0);
        if (memcmp(((pd_dense *)(void *)b)->params, s->params, n * sizeof(float))) {
            fprintf(stderr, "ckpt_bench: the restored values differ\n");
            return 1;
        }
        pd_table_destroy(b);
        unlink(cpath);
        rw[r] = kw / cw;
        rr[r] = kr / cr;
        printf("round %d  write: ceiling %.0f MB/s  checkpoint %.0f MB/s (%.2f)   "
               "read: ceiling %.0f MB/s  restore %.0f MB/s (%.2f)\n",
               r + 1, cw / 1e6, kw / 1e6, rw[r], cr / 1e6, kr / 1e6, rr[r]);
        fflush(stdout);
    }
    printf("median ratio: checkpoint write %.2f of the disk's write, restore %.2f of a read\n",
           bench_median(rw, rounds), bench_median(rr, rounds));
    pd_table_destroy(t);
    free(buf);
    return 0;
}
