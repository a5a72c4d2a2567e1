/*
 * auth.h - the cluster secret and what is built on it: the secret file,
 * the keyed MACs of the connection handshake (frame/hello.c) and the rank
 * tickets the coordinator hands out (docs/security.md has the whole
 * threat model; docs/protocol.md, "Authentication", the bytes).
 *
 * The secret.  A cluster has one secret, kept in a file that every process
 * of the cluster reads (--secret-file FILE, PARAMD_SECRET_FILE, the
 * client option secret_file=).  `paramd coordinator` creates the file when
 * it is missing: 32 random bytes written as 64 hex digits, mode 0600.
 * Any file of PD_SECRET_MIN..PD_SECRET_MAX bytes (trailing white space
 * ignored) that only its owner can read is accepted, so an operator may
 * write one by hand; the 32-byte key is the BLAKE2b hash of its contents.
 * Only the path ever travels (in argv and environment variables): the
 * contents and the key appear in no message, log line or argument, and
 * the buffers that held them are wiped.
 *
 * The MACs are HMAC-SHA256 (libsodium's crypto_auth_hmacsha256), over a
 * label that says which step of which exchange it is, then the exchange's
 * bytes: so no proof made for one step is valid for another, and a proof
 * is only as old as the nonces it covers.
 *
 * Rank tickets.  A ticket is the coordinator's MAC, under a key of its own
 * (the grant key: random at each start, handed to servers in the
 * REG_SERVER reply, never to workers), over a worker's rank and its
 * incarnation (the coordinator's count of registrations of that rank).
 * A worker gets its ticket in the REG_WORKER reply and shows it in every
 * later HELLO (to each server, on its heartbeat connection); a server and
 * the coordinator check it, so a rank can be claimed only by the process
 * the coordinator gave it to, and a newer incarnation's ticket supersedes
 * an older one's.  Tickets work with or without a cluster secret; without
 * one they only keep out mistakes and peers that did not register.
 *
 * Every function here is thread-safe and keeps no state but libsodium's
 * (initialised on first use: sodium_init is idempotent and thread-safe).
 */
#ifndef PARAMD_FRAME_AUTH_H
#define PARAMD_FRAME_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define PD_KEY_BYTES 32
#define PD_NONCE_BYTES 32
#define PD_MAC_BYTES 32
#define PD_SECRET_MIN 16   /* bytes of a secret file, white space trimmed */
#define PD_SECRET_MAX 4096

typedef struct pd_key {
    uint8_t k[PD_KEY_BYTES];
} pd_key;

/* What a worker shows for its rank: the incarnation the coordinator gave
 * it and the coordinator's MAC over both. */
typedef struct pd_ticket {
    uint32_t gen;
    uint8_t mac[PD_MAC_BYTES];
} pd_ticket;

/* ==== The secret file =================================================== */

/* The key of the secret file at path.  0, or PARAMD_ECONFIG with a message
 * that names the file and what is wrong with it (missing, unreadable, not
 * a regular file, readable by other users, too short or too long) and what
 * to do; never its contents. */
int pd_secret_load(const char *path, pd_key *key, pd_err *e);
/* The same, but a missing file is first created with a fresh secret (mode
 * 0600, never replacing a file that exists: O_EXCL); *created says so. */
int pd_secret_load_or_create(const char *path, pd_key *key, int *created, pd_err *e);

/* ==== Randomness, MACs, tickets ========================================= */

/* n bytes from the system's CSPRNG. */
void pd_random_bytes(void *p, size_t n);
/* A fresh random key (the coordinator's grant key). */
void pd_key_random(pd_key *k);
/* Overwrite a key (or any secret buffer) so that no copy lingers. */
void pd_wipe(void *p, size_t n);

/* HMAC-SHA256 under k of label (its NUL-free bytes, then one 0 byte) and
 * up to three parts (NULL, 0 for none). */
void pd_mac(const pd_key *k, const char *label, const void *a, size_t an, const void *b,
            size_t bn, const void *c, size_t cn, uint8_t out[PD_MAC_BYTES]);
/* 1 if the two MACs are equal, in constant time; else 0. */
int pd_mac_equal(const uint8_t a[PD_MAC_BYTES], const uint8_t b[PD_MAC_BYTES]);

/* The ticket for (rank, gen) under the grant key, and its check (1: it is
 * the coordinator's). */
void pd_ticket_make(const pd_key *grant, int32_t rank, uint32_t gen, pd_ticket *t);
int pd_ticket_ok(const pd_key *grant, int32_t rank, const pd_ticket *t);

/* ==== Where a role may listen =========================================== */

/* 1 if host (as in --listen HOST:PORT) is a loopback address: localhost,
 * 127.0.0.0/8, ::1.  Anything else, 0.0.0.0 and names included, is not. */
int pd_host_is_loopback(const char *host);
/* A role listening beyond loopback must have a secret: 0, or
 * PARAMD_ECONFIG with the reason (who: "paramd coordinator", ...).
 * Checked before anything is bound. */
int pd_listen_check(const char *who, const char *host, int has_secret, pd_err *e);

#endif
