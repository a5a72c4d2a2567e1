/*
 * host.c - host identity and this host's addresses (host.h has the why).
 *
 * The identity is read from the kernel each time it is asked for
 * (gethostname, /proc/sys/kernel/random/boot_id, /proc/self/ns/net): a
 * few system calls, done once per process start and per connect.  A part
 * that cannot be read is "?" rather than an error, so that an unusual
 * system still gets an identity; two processes that both fail to read
 * their boot id still differ by host name or namespace, and the worst
 * case is TCP where shared memory would have worked.
 */
#include "net/host.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ==== Identity ========================================================== */

/* The boot id without its dashes (32 hex digits), or "?". */
static void boot_id(char *out, size_t n) {
    char raw[64] = "";
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    ssize_t r = fd >= 0 ? read(fd, raw, sizeof raw - 1) : -1;
    if (fd >= 0) close(fd);
    size_t k = 0;
    for (ssize_t i = 0; i < r && k + 1 < n; i++)
        if (isxdigit((unsigned char)raw[i])) out[k++] = raw[i];
    if (k == 0 && n > 1) out[k++] = '?';
    if (n) out[k] = '\0';
}

/* The inode of this process's network namespace ("4026531833"), or "?". */
static void netns_inode(char *out, size_t n) {
    char link[64];
    ssize_t r = readlink("/proc/self/ns/net", link, sizeof link - 1);
    const char *lb = NULL, *rb = NULL;
    if (r > 0) {
        link[r] = '\0';
        lb = strchr(link, '[');
        rb = lb ? strchr(lb, ']') : NULL;
    }
    if (lb && rb && rb > lb + 1)
        snprintf(out, n, "%.*s", (int)(rb - lb - 1), lb + 1);
    else
        snprintf(out, n, "?");
}

int pd_host_id(const char *given, char *out, size_t n, pd_err *e) {
    if (given && *given) {
        size_t len = strlen(given);
        for (size_t i = 0; i < len; i++)
            if (!isgraph((unsigned char)given[i]))
                return pd_seterr(e, PARAMD_EINVAL,
                                 "host id '%s' has a space or an unprintable "
                                 "character: give 1..%d printable characters",
                                 given, PD_HOST_ID_MAX);
        if (len > PD_HOST_ID_MAX || len >= n)
            return pd_seterr(e, PARAMD_EINVAL, "host id '%.40s...' is longer "
                             "than %d bytes", given, PD_HOST_ID_MAX);
        memcpy(out, given, len + 1);
        return 0;
    }
    char host[65] = "", boot[40], ns[32];
    if (gethostname(host, sizeof host - 1) != 0 || !host[0]) snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++) /* an identity is one word */
        if (!isgraph((unsigned char)*p) || *p == '/') *p = '_';
    boot_id(boot, sizeof boot);
    netns_inode(ns, sizeof ns);
    snprintf(out, n, "%s/%s/%s", host, boot, ns);
    return 0;
}

void pd_host_name_of(const char *id, char *out, size_t n) {
    const char *slash = strchr(id, '/');
    size_t len = slash ? (size_t)(slash - id) : strlen(id);
    snprintf(out, n, "%.*s", (int)len, id);
}

/* ==== Addresses ========================================================= */

static void sa_text(const struct sockaddr *sa, char *out, size_t n) {
    const void *a = sa->sa_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!inet_ntop(sa->sa_family, a, out, (socklen_t)n)) snprintf(out, n, "?");
}

static int sa_is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

int pd_addr_is_loopback(const char *addr) {
    struct sockaddr_in s4 = {0};
    struct sockaddr_in6 s6 = {0};
    if (inet_pton(AF_INET, addr, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        return sa_is_loopback((struct sockaddr *)&s4);
    }
    if (inet_pton(AF_INET6, addr, &s6.sin6_addr) == 1) {
        s6.sin6_family = AF_INET6;
        return sa_is_loopback((struct sockaddr *)&s6);
    }
    return strcmp(addr, "localhost") == 0;
}

int pd_route_source(const char *host, char *out, size_t n, pd_err *e) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    int gai = getaddrinfo(host, "9", &hints, &res);
    if (gai)
        return pd_seterr(e, PARAMD_ECONNECT, "cannot resolve '%s': %s", host,
                         gai_strerror(gai));
    int err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        /* A connected UDP socket has a source address and sends nothing. */
        int s = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
            err = errno;
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0 &&
            getsockname(s, (struct sockaddr *)&ss, &sl) == 0) {
            close(s);
            freeaddrinfo(res);
            sa_text((struct sockaddr *)&ss, out, n);
            return 0;
        }
        err = errno;
        close(s);
    }
    freeaddrinfo(res);
    return pd_seterr(e, PARAMD_ECONNECT, "no route from this host to %s: %s", host,
                     strerror(err));
}

/* "A.B.C.D/LEN" or "X::/LEN" into family, address bytes and prefix. */
static int parse_cidr(const char *spec, int *fam, uint8_t addr[16], int *len) {
    char buf[80];
    const char *slash = strchr(spec, '/');
    if (!slash || (size_t)(slash - spec) >= sizeof buf) return -1;
    snprintf(buf, sizeof buf, "%.*s", (int)(slash - spec), spec);
    int64_t l;
    if (pd_parse_i64(slash + 1, &l)) return -1;
    if (inet_pton(AF_INET, buf, addr) == 1 && l >= 0 && l <= 32) *fam = AF_INET;
    else if (inet_pton(AF_INET6, buf, addr) == 1 && l >= 0 && l <= 128) *fam = AF_INET6;
    else return -1;
    *len = (int)l;
    return 0;
}

static int in_cidr(const struct sockaddr *sa, int fam, const uint8_t net[16], int len) {
    if (sa->sa_family != fam) return 0;
    const uint8_t *a = fam == AF_INET
                           ? (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr
                           : ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    for (int bit = 0; bit < len; bit++) {
        int m = 0x80 >> (bit % 8);
        if ((a[bit / 8] & m) != (net[bit / 8] & m)) return 0;
    }
    return 1;
}

int pd_iface_addr(const char *spec, char *out, size_t n, pd_err *e) {
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return pd_seterr(e, PARAMD_ECONFIG, "cannot list interfaces: %s", strerror(errno));
    int fam = 0, len = 0;
    uint8_t net[16] = {0};
    int cidr = parse_cidr(spec, &fam, net, &len) == 0;
    char have[256] = "";
    size_t off = 0;
    for (int pass = 0; pass < 2; pass++) /* IPv4 first, then IPv6 */
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
            if (!i->ifa_addr || !(i->ifa_flags & IFF_UP)) continue;
            int f = i->ifa_addr->sa_family;
            if (f != (pass == 0 ? AF_INET : AF_INET6)) continue;
            char a[INET6_ADDRSTRLEN];
            sa_text(i->ifa_addr, a, sizeof a);
            if (cidr ? in_cidr(i->ifa_addr, fam, net, len) : strcmp(i->ifa_name, spec) == 0) {
                if (f == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(
                                         &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
                    continue; /* needs a scope: not an address to advertise */
                snprintf(out, n, "%s", a);
                freeifaddrs(ifa);
                return 0;
            }
            if (off < sizeof have - 1)
                off += (size_t)snprintf(have + off, sizeof have - off, "%s%s %s",
                                        off ? ", " : "", i->ifa_name, a);
        }
    freeifaddrs(ifa);
    return pd_seterr(e, PARAMD_ECONFIG,
                     "no address of this host is %s '%s' (it has: %s)",
                     cidr ? "inside the subnet" : "on an interface called", spec,
                     off ? have : "none");
}

int pd_host_is_local(const char *host, pd_err *e) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai) {
        pd_seterr(e, PARAMD_ECONNECT, "cannot resolve '%s': %s", host, gai_strerror(gai));
        return -1;
    }
    struct ifaddrs *ifa = NULL;
    int local = 0;
    if (getifaddrs(&ifa) == 0) {
        for (struct addrinfo *ai = res; ai && !local; ai = ai->ai_next) {
            if (sa_is_loopback(ai->ai_addr)) local = 1;
            for (struct ifaddrs *i = ifa; i && !local; i = i->ifa_next) {
                if (!i->ifa_addr || i->ifa_addr->sa_family != ai->ai_family) continue;
                char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
                sa_text(i->ifa_addr, a, sizeof a);
                sa_text(ai->ai_addr, b, sizeof b);
                local = strcmp(a, b) == 0;
            }
        }
        freeifaddrs(ifa);
    }
    freeaddrinfo(res);
    return local;
}

int pd_host_first_addr(char *out, size_t n, pd_err *e) {
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return pd_seterr(e, PARAMD_ECONFIG, "cannot list interfaces: %s", strerror(errno));
    for (int pass = 0; pass < 2; pass++)
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
            if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
                continue;
            if (i->ifa_addr->sa_family != (pass == 0 ? AF_INET : AF_INET6)) continue;
            if (pass == 1) {
                const struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
                if (IN6_IS_ADDR_LINKLOCAL(a) || sa_is_loopback(i->ifa_addr)) continue;
            }
            sa_text(i->ifa_addr, out, n);
            freeifaddrs(ifa);
            return 0;
        }
    freeifaddrs(ifa);
    return pd_seterr(e, PARAMD_ECONFIG,
                     "this host has no address but loopback: the other hosts "
                     "could not reach it");
}
