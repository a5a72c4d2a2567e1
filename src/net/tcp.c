/*
 * tcp.c - the TCP transport: listen, accept, connect, and the transport
 * table for a connected socket.
 *
 * Sockets get TCP_NODELAY (requests are whole frames written at once, so
 * Nagle only adds latency) and MSG_NOSIGNAL on every send (a dead peer is
 * an error return, never a SIGPIPE that kills the caller's process);
 * accepted ones also get keepalive probes (pd_tcp_accept).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/conn.h"

/* ==== Transport table =================================================== */

static ssize_t tcp_readv(pd_conn *c, const struct iovec *iov, int cnt) {
    return readv(c->fd, iov, cnt);
}

static ssize_t tcp_writev(pd_conn *c, const struct iovec *iov, int cnt) {
    struct msghdr m = {0};
    m.msg_iov = (struct iovec *)iov;
    m.msg_iovlen = (size_t)cnt;
    return sendmsg(c->fd, &m, MSG_NOSIGNAL);
}

static ssize_t tcp_try_writev(pd_conn *c, const struct iovec *iov, int cnt) {
    struct msghdr m = {0};
    m.msg_iov = (struct iovec *)iov;
    m.msg_iovlen = (size_t)cnt;
    ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return w;
}

static int tcp_readable(pd_conn *c) {
    struct pollfd p = {c->fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

static void tcp_shutdown(pd_conn *c) { shutdown(c->fd, SHUT_RDWR); }

static void tcp_destroy(pd_conn *c) {
    close(c->fd);
    pd_free(c);
}

static const pd_transport_ops tcp_ops = {"tcp", tcp_readv, tcp_writev,
                                         tcp_shutdown, tcp_destroy, NULL,
                                         tcp_try_writev, NULL, NULL,
                                         NULL, NULL, tcp_readable};

/* ==== Helpers =========================================================== */

static void addr_text(const struct sockaddr *sa, char *out, size_t outlen) {
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)sa;
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        port = ntohs(s->sin_port);
        snprintf(out, outlen, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)sa;
        inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
        port = ntohs(s->sin6_port);
        snprintf(out, outlen, "[%s]:%u", host, port);
    } else {
        snprintf(out, outlen, "?");
    }
}

static pd_conn *conn_wrap(int fd) {
    pd_conn *c = pd_calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->ops = &tcp_ops;
    c->fd = fd;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        addr_text((struct sockaddr *)&ss, c->peer, sizeof c->peer);
    else
        snprintf(c->peer, sizeof c->peer, "?");
    return c;
}

/* ==== Public ============================================================ */

int pd_tcp_listen(const char *host, uint16_t port, int *fd, char *bound,
                  size_t boundlen, pd_err *e) {
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[8];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof portstr, "%u", port);
    int gai = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
    if (gai)
        return pd_seterr(e, PARAMD_ECONNECT, "cannot resolve '%s': %s",
                         host ? host : "", gai_strerror(gai));
    int s = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        freeaddrinfo(res);
        return pd_seterr(e, PARAMD_ECONNECT, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, res->ai_addr, res->ai_addrlen) != 0 || listen(s, 128) != 0) {
        int err = errno;
        freeaddrinfo(res);
        close(s);
        return pd_seterr(e, PARAMD_ECONNECT, "cannot listen on %s:%u: %s",
                         host ? host : "", port, strerror(err));
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(s, (struct sockaddr *)&ss, &sl);
    addr_text((struct sockaddr *)&ss, bound, boundlen);
    *fd = s;
    return 0;
}

pd_conn *pd_tcp_accept(int lfd) {
    int fd;
    do fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return NULL;
    /* Keepalive probes find a peer that vanished without closing (a
     * half-open connection) in about 90 s instead of never: an idle
     * connection between frames has no deadline of its own. */
    int one = 1, idle = 60, intvl = 10, cnt = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    return conn_wrap(fd);
}

pd_conn *pd_tcp_connect(const char *hostport, int timeout_ms, pd_err *e) {
    char host[256]; /* a "host:port" argument is at most 255 bytes */
    uint16_t port;
    if (pd_parse_hostport(hostport, host, sizeof host, &port) != 0 || !port) {
        pd_seterr(e, PARAMD_EINVAL, "'%s' is not HOST:PORT", hostport);
        return NULL;
    }
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[8];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(portstr, sizeof portstr, "%u", port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai) {
        pd_seterr(e, PARAMD_ECONNECT, "cannot resolve '%s': %s", host,
                  gai_strerror(gai));
        return NULL;
    }
    int64_t deadline = pd_now_ms() + timeout_ms;
    int delay_ms = 5, err = 0;
    for (;;) {
        int s = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
            err = errno;
            break;
        }
        if (connect(s, res->ai_addr, res->ai_addrlen) == 0) {
            freeaddrinfo(res);
            return conn_wrap(s);
        }
        err = errno;
        close(s);
        if (err != ECONNREFUSED || pd_now_ms() >= deadline) break;
        /* The peer is not listening yet (a launcher starts everyone at
         * once): back off and retry until the deadline. */
        struct timespec ts = {0, (long)delay_ms * 1000000L};
        nanosleep(&ts, NULL);
        if (delay_ms < 200) delay_ms *= 2;
    }
    freeaddrinfo(res);
    pd_seterr(e, PARAMD_ECONNECT, "cannot connect to %s: %s", hostport,
              strerror(err));
    return NULL;
}

void pd_tcp_set_rcvtimeo(pd_conn *c, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}
