/*
 * secret.h - the cluster secret as the paramd program handles it
 * (secret.c): where each command finds the secret file, and the private
 * one that paramd local, paramd train and paramd bench make for a cluster
 * of their own.  The file's format and checks are frame/auth.h's; this
 * only decides which path every process gets.  Only paths travel, in
 * --secret-file arguments and PARAMD_SECRET_FILE: never the secret.
 */
#ifndef PARAMD_CLI_SECRET_H
#define PARAMD_CLI_SECRET_H

#include <stddef.h>

/* PARAMD_SECRET_FILE, or NULL when unset or empty. */
const char *cli_secret_file_env(void);
/* --secret-file FILE of paramd local, train and stats: put FILE, made
 * absolute, in PARAMD_SECRET_FILE, where the children (and libparamd)
 * find it.  0, or -1 after printing why (cmd names us). */
int cli_set_secret_file(const char *cmd, const char *path);
/* A cluster this process starts gets a secret: if PARAMD_SECRET_FILE is
 * set (--secret-file, or inherited) it is used (the coordinator creates
 * the file if missing); else a private directory (mode 0700) is made in
 * $TMPDIR or /tmp, PARAMD_SECRET_FILE names the file "secret" in it, and
 * its path goes into dir (dirlen bytes) for cli_secret_remove.  dir[0] is
 * '\0' when nothing was made.  0, or -1 after printing why. */
int cli_secret_for_cluster(char *dir, size_t dirlen);
/* Remove what cli_secret_for_cluster made (the file and the directory);
 * harmless for "". */
void cli_secret_remove(const char *dir);

#endif
