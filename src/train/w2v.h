/*
 * w2v.h - `paramd train --model word2vec`: skip-gram with negative
 * sampling on two sparse tables (see w2v.c for the design).
 */
#ifndef PARAMD_TRAIN_W2V_H
#define PARAMD_TRAIN_W2V_H

#include <stddef.h>

#include "paramd.h"
#include "train/trainer.h"

/* Default corpus: the Debian package `fortunes` (plain English text). */
#define PD_W2V_DEFAULT_DATA "/usr/share/games/fortunes"

/* Run one word2vec worker on a connected client: every worker reads the
 * whole corpus (cfg->data: a UTF-8 text file, plain or gzip, or a directory
 * of them) and builds the same vocabulary, then trains on its own share of
 * the token stream.  Worker 0 prints progress, the final loss and the
 * nearest neighbours of a few words.  0, or -1 with a message in err. */
int pd_w2v_worker(const pd_train_cfg *cfg, paramd_client *c, char *err,
                  size_t errlen);

#endif
