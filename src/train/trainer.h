/*
 * trainer.h - the worker side of `paramd train`: the loop of the seed
 * (pull the weights, compute a gradient on your own batch, push it) on a
 * paramd cluster, with evaluation and reporting on worker 0.
 *
 * All parameters of the model are one dense table, "model", on the
 * servers; the server applies the update rule (sgd by default), so a
 * worker pushes raw gradients.  Sync: every worker pulls the same weights
 * at clock t (the servers answer once clock t-1 is applied), so the step
 * equals one SGD step on the union of the W batches.  Async: the same loop,
 * but pulls never wait.
 */
#ifndef PARAMD_TRAIN_TRAINER_H
#define PARAMD_TRAIN_TRAINER_H

#include <stdint.h>

#include "paramd.h"
#include "train/data.h"

typedef struct pd_train_cfg {
    const char *model;       /* "mlp" | "cnn" | "word2vec" | "mf" */
    int hidden;              /* 0: the model's default */
    const char *consistency; /* "sync" | "async" | "ssp:S" */
    int backup;              /* sync: backup workers (not waited for) */
    int straggle_rank;       /* with straggle_factor > 1: this worker's */
    double straggle_factor;  /* steps take this many times as long */
    const char *rule;        /* server update rule spec, e.g. "sgd" */
    int epochs;
    int64_t steps;           /* > 0: exactly this many steps per worker */
    int batch;               /* per worker */
    double lr;               /* before scaling */
    int lr_scaling;          /* lr *= W (the seed's linear scaling rule) */
    uint64_t seed;
    const char *data;        /* dataset dir, NULL: the Debian package's */
    int64_t limit;           /* > 0: use the first `limit` training samples */
    int dropout;             /* cnn: dropout in training */
    int eval_every;          /* steps between evaluations; 0: ~20 per run */
    int eval_samples;        /* test samples per periodic evaluation */
    const char *out;         /* run directory, NULL: none */
    const char *save_params; /* write final params (raw float32) here */
    int threads;             /* BLAS threads, 0: cores / W */
    int quiet;               /* no progress display */
    /* Sparse models (word2vec, mf; 0 means the model's default): */
    int dim;                 /* embedding dim (mf: factors) */
    int window;              /* word2vec: max context distance */
    int negatives;           /* word2vec: negative samples per pair */
    int min_count;           /* word2vec: rarer words are dropped */
    double subsample;        /* word2vec: frequent-word threshold; < 0: off */
    const char *neighbours;  /* word2vec: comma-separated query words */
    int users, items, rank;  /* mf: the planted ratings set */
    double noise;            /* mf: planted Gaussian noise sigma */
    double l2;               /* mf: L2 penalty on the factors; < 0: none */
} pd_train_cfg;

/* Fill cfg with the defaults of `paramd train`. */
void pd_train_defaults(pd_train_cfg *cfg);

/* Steps per epoch for W workers of batch B on n samples: ceil(n/(W*B)). */
int64_t pd_train_steps_per_epoch(int64_t n, int W, int B);

/*
 * The samples worker `rank` uses at step `step` (0-based): B indices into
 * the training set of n samples.  Each worker walks its own permutation of
 * the whole set, drawn from (seed, rank, epoch) as the seed's workers do
 * with seed=worker_index; `perm` is scratch of n entries that the caller
 * keeps between calls (*perm_epoch caches which epoch it holds; start at
 * -1).  Deterministic: the test of sync == big batch rebuilds the batches
 * with it.
 */
void pd_train_batch(uint64_t seed, int rank, int64_t step, int64_t steps_per_epoch,
                    uint32_t n, int B, uint32_t *perm, int64_t *perm_epoch,
                    uint32_t *idx_out);

/* The dropout mask seed of worker `rank` at `step`. */
uint64_t pd_train_dropout_seed(uint64_t seed, int rank, int64_t step);

/* Run the worker loop on a connected client.  0, or -1 with a message in
 * err (the run's data is kept as far as it got). */
int pd_train_worker(const pd_train_cfg *cfg, paramd_client *c, char *err,
                    size_t errlen);

#endif
