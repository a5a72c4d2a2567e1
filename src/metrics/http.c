/*
 * http.c - the metrics endpoint (http.h): one poll loop, non-blocking
 * sockets, deadlines on every connection.
 */
#include "metrics/http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/conn.h"
#include "wire/wire.h"

/* ==== Types ============================================================= */

typedef struct hconn {
    int fd;             /* -1: free slot */
    int64_t deadline;   /* monotonic ms */
    char head[PD_HTTP_MAX_HEAD + 1];
    size_t hlen;
    pd_buf out;         /* the reply, once the head is in */
    size_t sent;
    int writing;
} hconn;

struct pd_http {
    int lfd;
    int wake[2];        /* a pipe: pd_http_stop writes a byte */
    char bound[PD_MAX_ADDR + 1];
    pd_http_render_fn render;
    void *arg;
    pthread_t th;
    hconn c[PD_HTTP_MAX_CONNS];
};

/* ==== Replies =========================================================== */

static void reply(hconn *hc, int code, const char *reason, const char *ctype,
                  const uint8_t *body, size_t n) {
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      code, reason, ctype, n);
    pd_buf_init(&hc->out);
    pd_put_bytes(&hc->out, head, (size_t)hn);
    pd_put_bytes(&hc->out, body, n);
    hc->writing = 1;
    hc->sent = 0;
    hc->deadline = pd_now_ms() + PD_HTTP_WRITE_MS;
}

static void reply_text(hconn *hc, int code, const char *reason, const char *text) {
    reply(hc, code, reason, "text/plain; charset=utf-8", (const uint8_t *)text, strlen(text));
}

/* The head is complete: answer it. */
static void answer(pd_http *h, hconn *hc) {
    char method[16] = "", path[256] = "", version[16] = "";
    hc->head[hc->hlen] = '\0';
    if (sscanf(hc->head, "%15s %255s %15s", method, path, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        reply_text(hc, 400, "Bad Request", "paramd: not an HTTP/1.x request; GET /metrics\n");
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        reply_text(hc, 405, "Method Not Allowed", "paramd: only GET /metrics\n");
        return;
    }
    char *q = strchr(path, '?'); /* Prometheus may add parameters */
    if (q) *q = '\0';
    if (strcmp(path, "/metrics") != 0 && strcmp(path, "/") != 0) {
        reply_text(hc, 404, "Not Found", "paramd: the metrics are at /metrics\n");
        return;
    }
    pd_buf body;
    pd_buf_init(&body);
    h->render(h->arg, &body);
    if (body.oom) {
        pd_buf_free(&body);
        reply_text(hc, 500, "Internal Server Error", "paramd: out of memory\n");
        return;
    }
    reply(hc, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body.p,
          strcmp(method, "HEAD") == 0 ? 0 : body.len);
    pd_buf_free(&body);
}

static void conn_close(hconn *hc) {
    if (hc->fd >= 0) close(hc->fd);
    hc->fd = -1;
    pd_buf_free(&hc->out);
    hc->hlen = hc->sent = 0;
    hc->writing = 0;
}

/* Readable: take what came; answer once the head is whole. */
static void on_read(pd_http *h, hconn *hc) {
    for (;;) {
        ssize_t n = recv(hc->fd, hc->head + hc->hlen, PD_HTTP_MAX_HEAD - hc->hlen, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(hc);
            return;
        }
        if (n < 0) return;
        hc->hlen += (size_t)n;
        hc->head[hc->hlen] = '\0';
        if (strstr(hc->head, "\r\n\r\n") || strstr(hc->head, "\n\n")) {
            answer(h, hc);
            return;
        }
        if (hc->hlen == PD_HTTP_MAX_HEAD) {
            reply_text(hc, 431, "Request Header Fields Too Large",
                       "paramd: request head over 8 KiB\n");
            return;
        }
    }
}

static void on_write(hconn *hc) {
    while (hc->sent < hc->out.len) {
        ssize_t n = send(hc->fd, hc->out.p + hc->sent, hc->out.len - hc->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) break;
        hc->sent += (size_t)n;
    }
    conn_close(hc);
}

/* ==== The loop ========================================================== */

static void *http_main(void *arg) {
    pd_http *h = arg;
    struct pollfd pf[PD_HTTP_MAX_CONNS + 2];
    int idx[PD_HTTP_MAX_CONNS + 2];
    for (;;) {
        int n = 0;
        pf[n++] = (struct pollfd){h->wake[0], POLLIN, 0};
        pf[n++] = (struct pollfd){h->lfd, POLLIN, 0};
        int64_t now = pd_now_ms(), next = now + 1000;
        for (int i = 0; i < PD_HTTP_MAX_CONNS; i++) {
            hconn *hc = &h->c[i];
            if (hc->fd < 0) continue;
            if (now >= hc->deadline) { /* a peer too slow to send or to read */
                conn_close(hc);
                continue;
            }
            if (hc->deadline < next) next = hc->deadline;
            idx[n] = i;
            pf[n++] = (struct pollfd){hc->fd, hc->writing ? POLLOUT : POLLIN, 0};
        }
        int rc = poll(pf, (nfds_t)n, (int)(next - now));
        if (rc < 0 && errno != EINTR) break;
        if (pf[0].revents) break; /* stop */
        if (pf[1].revents & POLLIN) {
            for (;;) {
                int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) break;
                int slot = -1;
                for (int i = 0; i < PD_HTTP_MAX_CONNS && slot < 0; i++)
                    if (h->c[i].fd < 0) slot = i;
                if (slot < 0) { /* full: this one is turned away */
                    close(fd);
                    continue;
                }
                h->c[slot].fd = fd;
                h->c[slot].hlen = 0;
                h->c[slot].writing = 0;
                h->c[slot].deadline = pd_now_ms() + PD_HTTP_READ_MS;
            }
        }
        for (int k = 2; k < n; k++) {
            hconn *hc = &h->c[idx[k]];
            if (!pf[k].revents || hc->fd < 0) continue;
            if (hc->writing) on_write(hc);
            else on_read(h, hc);
            if (hc->fd >= 0 && hc->writing && hc->sent == 0) on_write(hc);
        }
    }
    return NULL;
}

/* ==== Public ============================================================ */

pd_http *pd_http_start(const char *addr, pd_http_render_fn render, void *arg, pd_err *e) {
    char host[PD_MAX_ADDR + 1] = "127.0.0.1", full[PD_MAX_ADDR + 16];
    uint16_t port;
    /* "PORT" and ":PORT" mean loopback: metrics are not for the world
     * unless asked for */
    if (!strchr(addr, ':')) snprintf(full, sizeof full, "127.0.0.1:%s", addr);
    else if (addr[0] == ':') snprintf(full, sizeof full, "127.0.0.1%s", addr);
    else snprintf(full, sizeof full, "%s", addr);
    if (pd_parse_hostport(full, host, sizeof host, &port) != 0) {
        pd_seterr(e, PARAMD_EINVAL, "--metrics '%s' is not HOST:PORT (or PORT: on 127.0.0.1)",
                  addr);
        return NULL;
    }
    pd_http *h = pd_calloc(1, sizeof *h);
    if (!h) {
        pd_seterr(e, PARAMD_ENOMEM, "out of memory");
        return NULL;
    }
    h->lfd = -1;
    h->wake[0] = h->wake[1] = -1;
    for (int i = 0; i < PD_HTTP_MAX_CONNS; i++) h->c[i].fd = -1;
    h->render = render;
    h->arg = arg;
    if (pd_tcp_listen(host, port, &h->lfd, h->bound, sizeof h->bound, e) != 0) goto fail;
    if (fcntl(h->lfd, F_SETFL, fcntl(h->lfd, F_GETFL) | O_NONBLOCK) != 0 ||
        pipe2(h->wake, O_CLOEXEC) != 0) {
        pd_seterr(e, PARAMD_ENOMEM, "metrics endpoint: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&h->th, NULL, http_main, h) != 0) {
        pd_seterr(e, PARAMD_ENOMEM, "metrics endpoint: cannot start a thread");
        goto fail;
    }
    return h;
fail:
    if (h->lfd >= 0) close(h->lfd);
    if (h->wake[0] >= 0) close(h->wake[0]), close(h->wake[1]);
    pd_free(h);
    return NULL;
}

const char *pd_http_address(const pd_http *h) { return h->bound; }

void pd_http_stop(pd_http *h) {
    if (!h) return;
    ssize_t w = write(h->wake[1], "x", 1);
    (void)w;
    pthread_join(h->th, NULL);
    for (int i = 0; i < PD_HTTP_MAX_CONNS; i++) conn_close(&h->c[i]);
    close(h->lfd);
    close(h->wake[0]);
    close(h->wake[1]);
    pd_free(h);
}
