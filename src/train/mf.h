/*
 * mf.h - `paramd train --model mf`: matrix factorization for
 * recommendation on two sparse tables (see mf.c for the design).
 */
#ifndef PARAMD_TRAIN_MF_H
#define PARAMD_TRAIN_MF_H

#include <stddef.h>

#include "paramd.h"
#include "train/trainer.h"

/* Run one mf worker on a connected client.  Data: cfg->data, a CSV of
 * user,item,rating[,ignored...] lines (an optional header), or, with NULL,
 * a planted low-rank set drawn from cfg->seed (users x items, rank, noise).
 * Every worker loads the same set and trains on its own share of the
 * training ratings; worker 0 reports held-out RMSE.  0, or -1 with a
 * message in err. */
int pd_mf_worker(const pd_train_cfg *cfg, paramd_client *c, char *err,
                 size_t errlen);

#endif
