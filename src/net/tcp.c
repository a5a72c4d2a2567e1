/*
 * tcp.c - the TCP transport: listen, accept, connect, and the transport
 * table for a connected socket.
 *
 * Sockets get TCP_NODELAY (requests are whole frames written at once, so
 * Nagle only adds latency) and MSG_NOSIGNAL on every send (a dead peer is
 * an error return, never a SIGPIPE that kills the caller's process);
 * accepted ones also get keepalive probes (pd_tcp_accept).
 *
 * Connecting across machines.  Processes of one cluster start at once
 * (a launcher starts them all), so the peer may not be listening yet, its
 * host may not be up, or its name may not resolve yet (a Kubernetes
 * headless service publishes a pod's name once it runs).  pd_tcp_connect
 * therefore retries every such failure with backoff (5 ms doubling to 1 s)
 * until its deadline, bounds each attempt by what is left of it (a SYN to
 * a host that is down would otherwise wait minutes), says once after a few
 * seconds that it is still trying, and fails with the last reason and how
 * long it tried.
 *
 * A peer that vanishes.  A host cut off (cable, link, power) sends no RST:
 * a connection to it would wait for TCP's own give-up, about a quarter of
 * an hour.  pd_tcp_set_peer_timeout bounds that: data unacknowledged for
 * that long, or an idle connection whose keepalive probes go unanswered,
 * fails the connection with ETIMEDOUT.  A peer that is only slow or
 * stopped (SIGSTOP) still acknowledges at the TCP level, so it is never
 * taken for dead this way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

int pd_tcp_bound(int fd, char *bound, size_t boundlen, pd_err *e) {
    int acc = 0;
    socklen_t al = sizeof acc;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) != 0 || !acc ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return pd_seterr(e, PARAMD_EINVAL, "descriptor %d is not a listening TCP socket", fd);
    addr_text((struct sockaddr *)&ss, bound, boundlen);
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

/* Failures worth another attempt: the peer is not up (yet). */
static int retryable(int err) {
    return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH ||
           err == ETIMEDOUT || err == ECONNRESET || err == ECONNABORTED ||
           err == EAGAIN || err == EINTR;
}

/* One connect to ai, waiting at most ms: the socket, or -1 with errno. */
static int connect_once(const struct addrinfo *ai, int64_t ms) {
    int s = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) return -1;
    int err = 0;
    if (connect(s, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = {s, POLLOUT, 0};
            int r;
            do r = poll(&p, 1, (int)(ms < 1 ? 1 : ms > 1000000 ? 1000000 : ms));
            while (r < 0 && errno == EINTR);
            socklen_t el = sizeof err;
            if (r == 0) err = ETIMEDOUT;
            else if (r < 0 || getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
                err = errno;
        }
    }
    if (err) {
        close(s);
        errno = err;
        return -1;
    }
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
    return s;
}

pd_conn *pd_tcp_connect(const char *hostport, int timeout_ms, pd_err *e) {
    char host[256]; /* a "host:port" argument is at most 255 bytes */
    uint16_t port;
    if (pd_parse_hostport(hostport, host, sizeof host, &port) != 0 || !port) {
        pd_seterr(e, PARAMD_EINVAL, "'%s' is not HOST:PORT", hostport);
        return NULL;
    }
    struct addrinfo hints = {0};
    char portstr[8];
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(portstr, sizeof portstr, "%u", port);
    int64_t start = pd_now_ms(), deadline = start + timeout_ms;
    int delay_ms = 5, attempts = 0, said = 0;
    char why[160] = "";
    for (;;) {
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(host, portstr, &hints, &res);
        int again = 0;
        attempts++;
        if (gai) {
            snprintf(why, sizeof why, "cannot resolve '%s': %s", host, gai_strerror(gai));
            /* EAI_NONAME too: a name published once its host is up */
            again = gai == EAI_AGAIN || gai == EAI_NONAME;
        } else {
            for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                int s = connect_once(ai, deadline - pd_now_ms());
                if (s >= 0) {
                    freeaddrinfo(res);
                    return conn_wrap(s);
                }
                int err = errno;
                snprintf(why, sizeof why, "%s", strerror(err));
                again = again || retryable(err);
            }
            freeaddrinfo(res);
        }
        int64_t now = pd_now_ms();
        if (!again || now >= deadline) break;
        if (attempts == 1)
            pd_log(PD_LOG_DEBUG, "%s is not reachable yet (%s); retrying for up to %.1f s",
                   hostport, why, (double)(deadline - now) / 1000.0);
        if (!said && now - start >= 5000) {
            said = 1;
            pd_log(PD_LOG_INFO, "still trying to reach %s (%s); giving up in %.0f s",
                   hostport, why, (double)(deadline - now) / 1000.0);
        }
        /* Not up yet: back off and retry until the deadline. */
        int64_t wait = delay_ms < deadline - now ? delay_ms : deadline - now;
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (delay_ms < 1000) delay_ms = delay_ms * 2 > 1000 ? 1000 : delay_ms * 2;
    }
    double secs = (double)(pd_now_ms() - start) / 1000.0;
    if (attempts > 1)
        pd_seterr(e, PARAMD_ECONNECT,
                  "cannot connect to %s: %s (tried %d times in %.1f s: is it "
                  "running, on that address, and is the port open?)",
                  hostport, why, attempts, secs);
    else
        pd_seterr(e, PARAMD_ECONNECT, "cannot connect to %s: %s", hostport, why);
    return NULL;
}

void pd_tcp_set_peer_timeout(pd_conn *c, int ms) {
    if (ms <= 0) return;
    unsigned int ut = (unsigned int)ms;
    int one = 1, idle = ms / 2000, intvl = ms / 6000, cnt = 3;
    if (idle < 1) idle = 1;
    if (intvl < 1) intvl = 1;
    /* Keepalive probes an idle connection; the user timeout ends one whose
     * data or probes stay unanswered for ms (it also bounds keepalive,
     * whatever the count). */
    setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(c->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof ut);
}

void pd_tcp_set_rcvtimeo(pd_conn *c, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}
