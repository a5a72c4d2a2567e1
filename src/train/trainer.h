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
 *
 * Communication off (comm = 0, `--comm off`): the same loop with the pull
 * and the push taken out, to measure what the parameter server costs.
 * Every worker keeps its own copy of the weights and applies its own
 * gradient to it with the same update rule the servers run
 * (src/table/rules.c) and the unscaled learning rate (it is one process
 * of batch B).  Same batches, same model math, same BLAS threads, same
 * evaluation schedule (worker 0 evaluates its own weights).  The workers
 * still join the cluster: the coordinator gives them ranks and the barriers
 * that start and end the timed part, as with communication on; no table is
 * created, so the servers receive nothing.
 *
 * lr decay (lr_decay = F < 1, `--lr-decay F`): during epoch e (0-based,
 * e = step / steps-per-epoch) the gradient is multiplied by F^e before it
 * is pushed (or applied locally).  For sgd that is exactly lr * F^e; for
 * momentum it is the schedule inside the velocity (v = m*v + F^e*g); the
 * adaptive rules (adagrad, adam, ftrl) undo a gradient scale, so
 * pd_train_check refuses them.  The servers' lr stays what the table was
 * created with: there is no call that changes a table's rule mid-run.
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
    const char *plugin_dir;  /* --comm off with plugin=NAME: where NAME.so
                              * is (--plugin-dir); NULL: no plugins */
    int epochs;
    int64_t steps;           /* > 0: exactly this many steps per worker */
    int batch;               /* per worker */
    double lr;               /* before scaling */
    int lr_scaling;          /* lr *= W (the seed's linear scaling rule) */
    double lr_decay;         /* lr factor per epoch, in (0, 1]; 1: constant */
    int comm;                /* 1: pull and push (default); 0: --comm off */
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

/* Check the combinations of cfg that only trainer.c knows to be wrong
 * (--comm off or --lr-decay with a sparse model, --comm off with --backup,
 * --lr-decay with an adaptive rule).  0, or -1 with a message that names
 * the options and a way out in err.  Call before starting any process. */
int pd_train_check(const pd_train_cfg *cfg, char *err, size_t errlen);

/* The factor the gradient of step `step` is multiplied by:
 * lr_decay^(step / steps_per_epoch). */
double pd_train_lr_factor(double lr_decay, int64_t step, int64_t steps_per_epoch);

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
