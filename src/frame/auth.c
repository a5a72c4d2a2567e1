/*
 * auth.c - the cluster secret, MACs and rank tickets (see auth.h), on
 * libsodium: its CSPRNG (randombytes_buf), HMAC-SHA256
 * (crypto_auth_hmacsha256_*), BLAKE2b (crypto_generichash) to turn a
 * secret file into a key, constant-time comparison (sodium_memcmp) and
 * wiping (sodium_memzero).  Nothing cryptographic is written here.
 *
 * Why libsodium: Debian packages it (libsodium-dev), it is small, it has
 * exactly these primitives with misuse-resistant interfaces, and its
 * randombytes reads the kernel's getrandom().  OpenSSL's libcrypto would
 * do the same with a far larger surface.
 */
#include "frame/auth.h"

#include "wire/wire.h" /* PD_MAX_ADDR */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ==== Helpers =========================================================== */

static void sodium_ready(void) {
    /* Idempotent and thread-safe; fails only without a random source, and
     * then nothing here could be trusted: that is our own invariant. */
    if (sodium_init() < 0) {
        pd_log(PD_LOG_ERROR, "libsodium cannot initialise (no random source?)");
        abort();
    }
}

void pd_random_bytes(void *p, size_t n) {
    sodium_ready();
    randombytes_buf(p, n);
}

void pd_key_random(pd_key *k) { pd_random_bytes(k->k, sizeof k->k); }

void pd_wipe(void *p, size_t n) { sodium_memzero(p, n); }

/* The key of a secret: BLAKE2b-256 of the file's bytes, personalised so
 * that the same bytes used as a secret elsewhere give another key. */
static void derive_key(const uint8_t *secret, size_t n, pd_key *key) {
    static const uint8_t personal[crypto_generichash_blake2b_PERSONALBYTES] = "paramd secret v1";
    sodium_ready();
    crypto_generichash_blake2b_salt_personal(key->k, sizeof key->k, secret, n, NULL, 0, NULL,
                                             personal);
}

/* ==== The secret file =================================================== */

int pd_secret_load(const char *path, pd_key *key, pd_err *e) {
    if (!path || !path[0])
        return pd_seterr(e, PARAMD_ECONFIG, "no secret file given");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return pd_seterr(e, PARAMD_ECONFIG,
                             "secret file %s does not exist: the coordinator "
                             "creates it (paramd coordinator --secret-file %s); "
                             "give every process of the cluster that file",
                             path, path);
        return pd_seterr(e, PARAMD_ECONFIG, "secret file %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pd_seterr(e, PARAMD_ECONFIG, "secret file %s is not a regular file", path);
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        return pd_seterr(e, PARAMD_ECONFIG,
                         "secret file %s can be read or written by other users "
                         "(mode %04o): anyone who reads it can join the cluster; "
                         "chmod 600 it",
                         path, (unsigned)(st.st_mode & 07777));
    }
    uint8_t buf[PD_SECRET_MAX + 1];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            pd_wipe(buf, sizeof buf);
            return pd_seterr(e, PARAMD_ECONFIG, "secret file %s: %s", path, strerror(err));
        }
        if (r == 0 || (n += (size_t)r) == sizeof buf) break;
    }
    close(fd);
    int too_long = n == sizeof buf;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                     buf[n - 1] == '\t'))
        n--;
    int rc = 0;
    if (too_long || n > PD_SECRET_MAX)
        rc = pd_seterr(e, PARAMD_ECONFIG, "secret file %s is longer than %d bytes", path,
                       PD_SECRET_MAX);
    else if (n < PD_SECRET_MIN)
        rc = pd_seterr(e, PARAMD_ECONFIG,
                       "secret file %s holds %zu bytes, fewer than %d: too easy to "
                       "guess; delete it and let paramd coordinator --secret-file "
                       "create a random one",
                       path, n, PD_SECRET_MIN);
    else
        derive_key(buf, n, key);
    pd_wipe(buf, sizeof buf);
    return rc;
}

int pd_secret_load_or_create(const char *path, pd_key *key, int *created, pd_err *e) {
    *created = 0;
    if (!path || !path[0]) return pd_seterr(e, PARAMD_ECONFIG, "no secret file given");
    if (access(path, F_OK) == 0) return pd_secret_load(path, key, e);
    /* Written whole under a private name, then linked to its own: another
     * process (a server or worker started at the same moment, waiting for
     * the file on a shared filesystem) sees no file or the whole of it,
     * and of two creators only one wins (link fails with EEXIST). */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return pd_seterr(e, PARAMD_ECONFIG, "cannot create secret file %s: %s", path,
                         strerror(errno));
    uint8_t raw[32];
    char hex[2 * sizeof raw + 2];
    pd_random_bytes(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    size_t n = strlen(hex);
    hex[n++] = '\n';
    ssize_t w = write(fd, hex, n);
    int err = w < 0 ? errno : EIO;
    int ok = w == (ssize_t)n && fsync(fd) == 0;
    if (w == (ssize_t)n && !ok) err = errno;
    close(fd);
    pd_wipe(raw, sizeof raw);
    pd_wipe(hex, sizeof hex);
    if (ok && link(tmp, path) != 0) {
        ok = errno == EEXIST; /* another process made it first: theirs counts */
        err = errno;
        if (ok) {
            unlink(tmp);
            return pd_secret_load(path, key, e);
        }
    }
    unlink(tmp);
    if (!ok)
        return pd_seterr(e, PARAMD_ECONFIG, "cannot write secret file %s: %s", path,
                         strerror(err));
    *created = 1;
    return pd_secret_load(path, key, e);
}

/* ==== MACs and tickets ================================================== */

void pd_mac(const pd_key *k, const char *label, const void *a, size_t an, const void *b,
            size_t bn, const void *c, size_t cn, uint8_t out[PD_MAC_BYTES]) {
    crypto_auth_hmacsha256_state st;
    sodium_ready();
    crypto_auth_hmacsha256_init(&st, k->k, sizeof k->k);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)label, strlen(label) + 1);
    if (an) crypto_auth_hmacsha256_update(&st, a, an);
    if (bn) crypto_auth_hmacsha256_update(&st, b, bn);
    if (cn) crypto_auth_hmacsha256_update(&st, c, cn);
    crypto_auth_hmacsha256_final(&st, out);
    pd_wipe(&st, sizeof st);
}

int pd_mac_equal(const uint8_t a[PD_MAC_BYTES], const uint8_t b[PD_MAC_BYTES]) {
    return sodium_memcmp(a, b, PD_MAC_BYTES) == 0;
}

static void ticket_mac(const pd_key *grant, int32_t rank, uint32_t gen, uint8_t *out) {
    uint8_t p[8];
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)((uint32_t)rank >> (8 * i));
        p[4 + i] = (uint8_t)(gen >> (8 * i));
    }
    pd_mac(grant, "paramd v1 rank ticket", p, sizeof p, NULL, 0, NULL, 0, out);
}

void pd_ticket_make(const pd_key *grant, int32_t rank, uint32_t gen, pd_ticket *t) {
    t->gen = gen;
    ticket_mac(grant, rank, gen, t->mac);
}

int pd_ticket_ok(const pd_key *grant, int32_t rank, const pd_ticket *t) {
    uint8_t want[PD_MAC_BYTES];
    ticket_mac(grant, rank, t->gen, want);
    return pd_mac_equal(want, t->mac);
}

/* ==== Where a role may listen =========================================== */

int pd_host_is_loopback(const char *host) {
    if (!host) return 0;
    char h[PD_MAX_ADDR + 1];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof h) {
        memcpy(h, host + 1, n - 2);
        h[n - 2] = '\0';
    } else {
        snprintf(h, sizeof h, "%s", host);
    }
    if (strcmp(h, "localhost") == 0) return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, h, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, h, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) ||
               (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return 0;
}

int pd_listen_check(const char *who, const char *host, int has_secret, pd_err *e) {
    if (has_secret || pd_host_is_loopback(host)) return 0;
    return pd_seterr(e, PARAMD_ECONFIG,
                     "%s: --listen %s is reachable from other machines, and without "
                     "a cluster secret anyone who reaches it could join the cluster, "
                     "read and overwrite its parameters: give --secret-file FILE "
                     "(paramd coordinator creates it; every server and worker reads "
                     "the same file), or listen on 127.0.0.1 (docs/security.md)",
                     who, host);
}
