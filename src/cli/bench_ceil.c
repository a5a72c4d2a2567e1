/*
 * bench_ceil.c - the ceilings of `paramd bench`: what the machine allows,
 * measured in the same run as the figures they bound (bench.h lists the
 * files of the command).
 *
 *   - per value size, first: raw TCP stream throughput between two
 *     processes over loopback (one writes, cycling over a buffer of the
 *     value's size in calls of up to 1 MiB; the other reads into one
 *     cache-resident buffer, the cheapest receiver there is), and memcpy
 *     of that size;
 *   - with shared memory asked for, two more per size: memcpy into a
 *     shared (memfd) mapping, and the raw shared-memory transport
 *     streaming between two processes;
 *   - in each worker (bench_worker.c), in alternation with its latency
 *     loop (blocks of LAT_BLOCK requests each): raw TCP ping-pong of the
 *     exact frames of a 4 KiB pull (56-byte request, 4136-byte answer) and
 *     of a 4 KiB push (4144-byte request, 40-byte answer) with a peer
 *     process the worker forked at its start (peer_start, pingpong_peer
 *     here).  Interleaved because on a virtual machine a round trip
 *     differs ten-fold between an idle moment (a halted vCPU is woken
 *     through the hypervisor) and a busy one: a latency is compared with
 *     raw round trips of the same moments, from the same thread.  Latency
 *     is always set against this raw TCP ping-pong, whatever the transport.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/bench.h"
#include "common/common.h"
#include "net/conn.h"
#include "wire/wire.h"

/* ==== Ceilings ============================================================
 * Raw TCP between this process and a forked peer over loopback, and
 * memcpy.  The driver forks its peers before any cluster starts, a worker
 * before it connects: no thread of ours exists yet, so no lock of ours
 * can be held in the child (OpenBLAS's idle pool threads may exist; glibc
 * keeps malloc usable in a forked child). */

pid_t peer_start(int *fd, peer_fn fn, const void *arg) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {0};
    socklen_t al = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 1) ||
        getsockname(lfd, (struct sockaddr *)&a, &al)) {
        fprintf(stderr, "paramd bench: loopback socket: %s\n", strerror(errno));
        if (lfd >= 0) close(lfd);
        return -1;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "paramd bench: fork: %s\n", strerror(errno));
        close(lfd);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        close(lfd);
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a)) _exit(1);
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fn(s, arg);
        _exit(0);
    }
    int s;
    do s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    while (s < 0 && errno == EINTR);
    close(lfd);
    if (s < 0) {
        fprintf(stderr, "paramd bench: accept: %s\n", strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *fd = s;
    return pid;
}

void peer_finish(int fd, pid_t pid) {
    close(fd);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
}

/* The raw stream's buffer (bytes) and bytes per write or read call. */
static size_t stream_io(size_t size) { return size < CEIL_IO ? size : CEIL_IO; }

/* Stream writer: writes of stream_io(size) bytes cycling over a buffer of
 * `size` bytes, until the reader closes. */
static void stream_writer(int fd, const void *arg) {
    size_t size = *(const size_t *)arg, io = stream_io(size);
    char *buf = malloc(size);
    if (!buf) return;
    memset(buf, 1, size);
    for (size_t off = 0;; off = (off + io) % size)
        if (write_full(fd, buf + off, io)) break;
    free(buf);
}

size_t pp_request(int k) {
    return k == 0 ? PD_HDR_SIZE + PD_PULL_PAYLOAD : PD_HDR_SIZE + PD_RANGE_PREFIX + LAT_SIZE;
}
size_t pp_reply(int k) { return k == 0 ? PD_HDR_SIZE + LAT_SIZE : PD_HDR_SIZE; }

/* Raw ping-pong peer: answers pull-shaped and push-shaped requests with
 * replies of the same sizes as paramd's.  The first byte of a request says
 * which (0 pull, 1 push); the first pp_request(0) bytes are read at once,
 * the rest of a push after. */
void pingpong_peer(int fd, const void *arg) {
    (void)arg;
    char *req = calloc(1, pp_request(1)), *rep = calloc(1, pp_reply(0));
    while (req && rep && read_full(fd, req, pp_request(0)) == 0) {
        int k = req[0] == 1;
        if (k && read_full(fd, req + pp_request(0), pp_request(1) - pp_request(0))) break;
        if (write_full(fd, rep, pp_reply(k))) break;
    }
    free(req);
    free(rep);
}

/* One raw round trip of kind k over fd; 0 or -1. */
int pingpong_once(int fd, int k, char *req, char *rep) {
    req[0] = (char)k;
    if (write_full(fd, req, pp_request(k))) return -1;
    return read_full(fd, rep, pp_reply(k));
}

/* Raw stream of value size `size` (index i).  The writer cycles over a
 * buffer of `size` bytes (as cold, for large sizes, as a worker's values);
 * the reader reads calls of stream_io(size) bytes into one buffer of that
 * many bytes, which stays in cache: the cheapest receiver there is, so
 * that the figure is a ceiling. */
static int ceil_tcp_stream(ceilings *c, int i, size_t size, double seconds) {
    int fd;
    size_t io = stream_io(size);
    char *buf = malloc(io);
    if (!buf) return -1;
    memset(buf, 0, io);
    pid_t pid = peer_start(&fd, stream_writer, &size);
    if (pid < 0) {
        free(buf);
        return -1;
    }
    /* Warm-up: at least a whole buffer, so that page faults on both sides
     * are behind us. */
    int rc = 0;
    for (size_t w = 0; w < size || w < (4u << 20); w += io)
        if ((rc = read_full(fd, buf, io))) break;
    uint64_t bytes = 0;
    double t0 = pd_now(), t = t0;
    while (rc == 0 && t - t0 < seconds) {
        ssize_t r = read(fd, buf, io);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            rc = -1;
            break;
        }
        bytes += (uint64_t)r;
        t = pd_now();
    }
    peer_finish(fd, pid);
    free(buf);
    if (rc) {
        fprintf(stderr, "paramd bench: raw TCP stream: the writer stopped early\n");
        return -1;
    }
    c->tcp_bytes[i] = bytes;
    c->tcp_secs[i] = t - t0;
    c->tcp_bps[i] = (double)bytes / (t - t0);
    return 0;
}

/* memcpy of `size` bytes between two buffers of that size, repeated. */
static int ceil_memcpy(ceilings *c, int i, size_t size, double seconds) {
    char *src = malloc(size), *dst = malloc(size);
    if (!src || !dst) {
        free(src), free(dst);
        return -1;
    }
    memset(src, 1, size);
    memset(dst, 2, size);
    memcpy(dst, src, size);
    volatile char sink = 0;
    uint64_t reps = 0;
    double t0 = pd_now(), t;
    do {
        memcpy(dst, src, size);
        sink = (char)(sink + dst[reps % size]);
        reps++;
        t = pd_now();
    } while (t - t0 < seconds);
    free(src), free(dst);
    c->memcpy_reps[i] = reps;
    c->memcpy_secs[i] = t - t0;
    c->memcpy_bps[i] = (double)reps * (double)size / (t - t0);
    return 0;
}

/* memcpy of `size` bytes from private memory into a shared mapping (a
 * memfd, MAP_SHARED, as the transport's rings), repeated. */
static int ceil_shm_copy(ceilings *c, int i, size_t size, double seconds) {
    int fd = memfd_create("paramd-bench", MFD_CLOEXEC);
    char *src = malloc(size);
    char *dst = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, (off_t)size) == 0)
        dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd >= 0) close(fd);
    if (!src || dst == MAP_FAILED) {
        free(src);
        if (dst != MAP_FAILED) munmap(dst, size);
        fprintf(stderr, "paramd bench: cannot map %zu shared bytes\n", size);
        return -1;
    }
    memset(src, 1, size);
    memcpy(dst, src, size);
    uint64_t reps = 0;
    double t0 = pd_now(), t;
    do {
        memcpy(dst, src, size);
        reps++;
        t = pd_now();
    } while (t - t0 < seconds);
    free(src);
    munmap(dst, size);
    c->shmcopy_bps[i] = (double)reps * (double)size / (t - t0);
    return 0;
}

/* Raw shared-memory stream: a forked writer cycling over a buffer of
 * `size` bytes in writes of stream_io(size), into our reads of that many
 * bytes (one cache-resident buffer), through the transport itself. */
static int ceil_shm_stream(ceilings *c, int i, size_t size, double seconds) {
    pd_err e = {0};
    char name[PD_MAX_ADDR + 1];
    int lfd;
    if (pd_shm_listen(&lfd, name, sizeof name, &e)) {
        fprintf(stderr, "paramd bench: %s\n", e.msg);
        return -1;
    }
    fflush(NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        close(lfd);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        close(lfd);
        pd_conn *w = pd_shm_connect(name, PD_SHM_RING_DEFAULT, 10000, &e);
        size_t io = stream_io(size);
        char *buf = malloc(size);
        if (!w || !buf) _exit(1);
        memset(buf, 1, size);
        for (size_t off = 0;; off = (off + io) % size) {
            struct iovec v = {buf + off, io};
            if (pd_conn_writev(w, &v, 1, &e)) break;
        }
        _exit(0);
    }
    /* A writer that fails to connect exits: never wait forever for it. */
    struct pollfd pl = {lfd, POLLIN, 0};
    int fd = poll(&pl, 1, 10000) == 1 ? pd_shm_accept(lfd) : -1;
    close(lfd);
    pd_conn *r = fd >= 0 ? pd_shm_server_handshake(fd, 10000, &e) : NULL;
    if (!r && !e.msg[0]) snprintf(e.msg, sizeof e.msg, "the writer never connected");
    size_t io = stream_io(size);
    char *buf = malloc(io);
    int rc = r && buf ? 0 : -1;
    for (size_t w = 0; rc == 0 && (w < size || w < (4u << 20)); w += io)
        rc = pd_conn_read(r, buf, io, 0, &e);
    uint64_t bytes = 0;
    double t0 = pd_now(), t = t0;
    while (rc == 0 && t - t0 < seconds) {
        rc = pd_conn_read(r, buf, io, 0, &e);
        bytes += io;
        t = pd_now();
    }
    pd_conn_destroy(r); /* the writer's next write fails: it exits */
    free(buf);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (rc) {
        fprintf(stderr, "paramd bench: raw shared-memory stream failed: %s\n", e.msg);
        return -1;
    }
    c->shm_bytes[i] = bytes;
    c->shm_secs[i] = t - t0;
    c->shm_bps[i] = (double)bytes / (t - t0);
    return 0;
}

int bench_measure_ceilings(ceilings *c, const bench_opts *o) {
    memset(c, 0, sizeof *c);
    fprintf(stderr, "paramd bench: measuring ceilings (raw TCP over loopback, memcpy%s)\n",
            o->shm ? ", shared-memory copy and stream" : "");
    for (int i = 0; i < o->nsizes; i++) {
        if (ceil_memcpy(c, i, (size_t)o->sizes[i], o->seconds)) return -1;
        if (ceil_tcp_stream(c, i, (size_t)o->sizes[i], o->seconds)) return -1;
        if (o->shm && ceil_shm_copy(c, i, (size_t)o->sizes[i], o->seconds)) return -1;
        if (o->shm && ceil_shm_stream(c, i, (size_t)o->sizes[i], o->seconds)) return -1;
    }
    return 0;
}

void bench_print_ceilings(const ceilings *c, const bench_opts *o, FILE *out) {
    rec r;
    for (int i = 0; i < o->nsizes; i++) {
        rec_begin(&r, out, o->json, "ceiling");
        rec_str(&r, "what", "tcp_stream");
        rec_int(&r, "size", (long long)o->sizes[i]);
        rec_int(&r, "io_bytes", (long long)stream_io((size_t)o->sizes[i]));
        rec_int(&r, "bytes", (long long)c->tcp_bytes[i]);
        rec_num(&r, "seconds", c->tcp_secs[i]);
        rec_num(&r, "bytes_per_s", c->tcp_bps[i]);
        rec_end(&r);
        rec_begin(&r, out, o->json, "ceiling");
        rec_str(&r, "what", "memcpy");
        rec_int(&r, "size", (long long)o->sizes[i]);
        rec_int(&r, "reps", (long long)c->memcpy_reps[i]);
        rec_num(&r, "seconds", c->memcpy_secs[i]);
        rec_num(&r, "bytes_per_s", c->memcpy_bps[i]);
        rec_end(&r);
        if (!o->shm) continue;
        rec_begin(&r, out, o->json, "ceiling");
        rec_str(&r, "what", "shm_copy");
        rec_int(&r, "size", (long long)o->sizes[i]);
        rec_num(&r, "bytes_per_s", c->shmcopy_bps[i]);
        rec_end(&r);
        rec_begin(&r, out, o->json, "ceiling");
        rec_str(&r, "what", "shm_stream");
        rec_int(&r, "size", (long long)o->sizes[i]);
        rec_int(&r, "io_bytes", (long long)stream_io((size_t)o->sizes[i]));
        rec_int(&r, "bytes", (long long)c->shm_bytes[i]);
        rec_num(&r, "seconds", c->shm_secs[i]);
        rec_num(&r, "bytes_per_s", c->shm_bps[i]);
        rec_end(&r);
    }
}
