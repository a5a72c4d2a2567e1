/*
 * secret.c - which secret file each process of a cluster gets (secret.h).
 *
 * Design.  A secret file must reach every process, and its contents must
 * reach none of their command lines or environments (ps and
 * /proc/PID/environ show those to other users or to any later child).  So
 * the program passes the path: in PARAMD_SECRET_FILE for children it
 * starts, and the coordinator, which creates a missing file, runs first.
 * A local cluster without a secret file of the user's own gets a private
 * one, in a directory only this user can enter, removed with the cluster;
 * a cluster that others must join (paramd local --max-workers, paramd
 * train --max-workers with --join from elsewhere) takes --secret-file so
 * that the joiners can be given the same file.
 */
#include "cli/secret.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cli_secret_file_env(void) {
    const char *p = getenv("PARAMD_SECRET_FILE");
    return p && p[0] ? p : NULL;
}

int cli_set_secret_file(const char *cmd, const char *path) {
    char abs[PATH_MAX];
    if (!path[0]) {
        fprintf(stderr, "%s: --secret-file needs a file name\n", cmd);
        return -1;
    }
    if (path[0] == '/') {
        snprintf(abs, sizeof abs, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd) ||
            snprintf(abs, sizeof abs, "%s/%s", cwd, path) >= (int)sizeof abs) {
            fprintf(stderr, "%s: --secret-file %s: cannot make the path absolute\n", cmd,
                    path);
            return -1;
        }
    }
    setenv("PARAMD_SECRET_FILE", abs, 1);
    return 0;
}

int cli_secret_for_cluster(char *dir, size_t dirlen) {
    dir[0] = '\0';
    if (cli_secret_file_env()) return 0;
    const char *tmp = getenv("TMPDIR");
    char tmpl[PATH_MAX], file[PATH_MAX + 16];
    snprintf(tmpl, sizeof tmpl, "%s/paramd-secret.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(tmpl)) { /* mode 0700 */
        fprintf(stderr, "paramd: cannot make a private directory for the cluster secret "
                "(%s): %s; give --secret-file FILE instead\n", tmpl, strerror(errno));
        return -1;
    }
    snprintf(dir, dirlen, "%s", tmpl);
    snprintf(file, sizeof file, "%s/secret", tmpl);
    setenv("PARAMD_SECRET_FILE", file, 1);
    return 0;
}

void cli_secret_remove(const char *dir) {
    if (!dir || !dir[0]) return;
    char file[PATH_MAX + 16];
    snprintf(file, sizeof file, "%s/secret", dir);
    unlink(file);
    rmdir(dir);
}
