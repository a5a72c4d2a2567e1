/*
 * trainer.c - the worker loop of `paramd train` (see trainer.h).
 *
 * Shape of a run (W workers, batch B, n training samples):
 *   steps per epoch  T = ceil(n / (W*B))   (an epoch is n samples consumed
 *                                           by all workers together)
 *   per step         pull n_params floats, forward+backward on B samples,
 *                    push n_params floats, clock++
 * Worker 0 also evaluates every eval_every steps on the first
 * eval_samples test images (with the weights it pulled at that step),
 * shows progress, appends metrics, and at the end evaluates the final
 * weights on the whole test set, writes run.json and the plot.
 *
 * The reporter at the end.  Every worker marks the report table (below)
 * before the final barrier; after it, each reads the marks, and the lowest
 * rank that marked is the one that writes the results: worker 0, unless
 * it died or was removed on the way (paramd train goes on without a lost
 * worker), when the next one loads the test set, goes on with worker 0's
 * metrics.csv (pd_metrics_reopen) and writes the final row, run.json, the
 * plot and --save-params, so no death of one worker throws the run away.
 *
 * The timed part runs from a barrier after setup (data loaded, table
 * open) to the barrier after the last push, on worker 0's clock; its
 * periodic evaluations are subtracted.  With communication off (trainer.h)
 * only the pull, the push and the table are left out, and the worker
 * applies the rule itself:
 *
 *   comm on    pull -> [eval] -> grad -> scale -> push -> clock++
 *   comm off          [eval] -> grad -> scale -> pd_rule_apply(own weights)
 *
 * so the ratio of the two samples/s is what the parameter server costs
 * (transfers, the servers' work and, for sync, waiting for the slowest).
 */
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "train/metrics.h"
#include "train/model.h"
#include "train/plot.h"
#include "train/progress.h"
#include "table/rules.h"
#include "table/spec.h"

/* ==== Defaults and batches ============================================== */

void pd_train_defaults(pd_train_cfg *c) {
    memset(c, 0, sizeof *c);
    c->model = "mlp";
    c->consistency = "sync";
    c->rule = "sgd";
    c->epochs = 10;
    c->batch = 64;
    c->lr = 0.05;
    c->lr_scaling = 1;
    c->lr_decay = 1;
    c->comm = 1;
    c->seed = 1;
    c->dropout = 1;
    c->eval_samples = 2000;
}

static int is_sparse_model(const char *model) {
    return !strcmp(model, "word2vec") || !strcmp(model, "mf");
}

int pd_train_check(const pd_train_cfg *cfg, char *err, size_t errlen) {
    if (!cfg->comm && is_sparse_model(cfg->model)) {
        snprintf(err, errlen, "--comm off is for the dense models (mlp, cnn), not %s",
                 cfg->model);
        return -1;
    }
    if (!cfg->comm && cfg->backup) {
        snprintf(err, errlen, "--comm off has no step to wait for: drop --backup");
        return -1;
    }
    if (cfg->lr_decay != 1) {
        if (is_sparse_model(cfg->model)) {
            snprintf(err, errlen, "--lr-decay is for the dense models (mlp, cnn), not %s",
                     cfg->model);
            return -1;
        }
        char rs[600];
        pd_table_def d;
        snprintf(rs, sizeof rs, "rule=%s", cfg->rule);
        if (pd_spec_parse(rs, &d, NULL) == 0 && d.rule != PD_RULE_SGD &&
            d.rule != PD_RULE_MOMENTUM && d.rule != PD_RULE_ADD) {
            const char *name = pd_rule_name((pd_rule_kind)d.rule);
            snprintf(err, errlen, "--lr-decay scales the gradient, which rule %s undoes; "
                     "use --rule sgd or momentum, or drop --lr-decay",
                     name ? name : "plugin");
            return -1;
        }
    }
    return 0;
}

double pd_train_lr_factor(double lr_decay, int64_t step, int64_t spe) {
    if (lr_decay == 1 || spe <= 0) return 1;
    return pow(lr_decay, (double)(step / spe));
}

int64_t pd_train_steps_per_epoch(int64_t n, int W, int B) {
    int64_t per = (int64_t)W * B;
    return (n + per - 1) / per;
}

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void pd_train_batch(uint64_t seed, int rank, int64_t step, int64_t spe,
                    uint32_t n, int B, uint32_t *perm, int64_t *perm_epoch,
                    uint32_t *idx) {
    int64_t epoch = step / spe, pos = (step % spe) * B;
    if (*perm_epoch != epoch) {
        pd_shuffle(perm, n, mix64(seed ^ mix64((uint64_t)rank * 1000003u + (uint64_t)epoch)));
        *perm_epoch = epoch;
    }
    for (int i = 0; i < B; i++) idx[i] = perm[(uint64_t)(pos + i) % n];
}

uint64_t pd_train_dropout_seed(uint64_t seed, int rank, int64_t step) {
    return mix64(seed * 31 + mix64((uint64_t)rank << 40 ^ (uint64_t)step));
}

/* ==== Reporting (worker 0) ============================================== */

typedef struct report {
    pd_progress *prog;
    pd_metrics *metrics;
    double t0;
    double loss_sum;
    int64_t loss_n;
    double eval_s; /* time worker 0 spent evaluating, not training */
} report;

static void fmt_bytes(double b, char *out, size_t n) {
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000 && i < 4) b /= 1000, i++;
    snprintf(out, n, "%.1f %s", b, u[i]);
}

static void write_plot(const char *dir, const char *title) {
    pd_metric_row *rows = NULL;
    size_t nrows = 0;
    char label[256], err[512], path[4096];
    if (pd_metrics_read(dir, &rows, &nrows, label, sizeof label, err, sizeof err) != 0) {
        fprintf(stderr, "paramd train: cannot read back metrics: %s\n", err);
        return;
    }
    pd_plot_series s = {label, rows, nrows};
    snprintf(path, sizeof path, "%s/plot.svg", dir);
    if (pd_plot_svg(path, title, &s, 1, err, sizeof err) != 0)
        fprintf(stderr, "paramd train: cannot draw the plot: %s\n", err);
    else
        printf("plot: %s   (compare runs: paramd plot RUN_DIR...)\n", path);
    free(rows);
}

/* ==== The worker loop =================================================== */

int pd_train_worker(const pd_train_cfg *cfg, paramd_client *c, char *err,
                    size_t errlen) {
    int rank = paramd_rank(c), W = paramd_num_workers(c), S = paramd_num_servers(c);
    int rc = -1;
    pd_dataset train = {0}, test = {0};
    pd_model *m = NULL;
    float *params = NULL, *grad = NULL, *x = NULL;
    uint8_t *y = NULL;
    uint32_t *perm = NULL, *idx = NULL;
    float *state = NULL; /* --comm off: the rule's state for our own weights */
    float *all = NULL;   /* the report table, pulled at the end */
    pd_rule rule = {0};
    report R = {0};
    paramd_table *t = NULL;
    const int comm = cfg->comm;

    int threads = cfg->threads;
    if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > W ? (int)(cores / W) : 1;
    }
    pd_blas_set_threads(threads);
    /* The models take 28x28 images (PD_MODEL_INPUT floats): any other
     * size is refused before anything is allocated for it. */
    if (pd_dataset_load_shape(cfg->data, "train", PD_MODEL_SIDE, PD_MODEL_SIDE, &train, err,
                              errlen) != 0)
        goto out;
    if (rank == 0 && pd_dataset_load_shape(cfg->data, "test", PD_MODEL_SIDE, PD_MODEL_SIDE,
                                           &test, err, errlen) != 0)
        goto out;
    uint32_t n = (uint32_t)train.n;
    if (cfg->limit > 0 && cfg->limit < n) n = (uint32_t)cfg->limit;
    int eval_n = test.n;
    if (cfg->eval_samples > 0 && cfg->eval_samples < eval_n) eval_n = cfg->eval_samples;
    int max_batch = cfg->batch > 250 ? cfg->batch : 250;
    if (pd_model_create(cfg->model, cfg->hidden, max_batch, &m, err, errlen) != 0) goto out;
    uint64_t np = pd_model_num_params(m);
    /* Shared buffers: over shared memory the servers read the gradient
     * and write the pulled weights in place (paramd_alloc).  The same
     * memory with communication off, so both runs compute alike. */
    params = paramd_alloc(c, np * sizeof(float));
    grad = paramd_alloc(c, np * sizeof(float));
    x = malloc((size_t)cfg->batch * PD_MODEL_INPUT * sizeof(float));
    y = malloc((size_t)cfg->batch);
    perm = malloc((size_t)n * sizeof *perm);
    idx = malloc((size_t)cfg->batch * sizeof *idx);
    if (!params || !grad || !x || !y || !perm || !idx) {
        snprintf(err, errlen, "out of memory for a %llu-parameter model",
                 (unsigned long long)np);
        goto out;
    }

    /* Every worker computes the same initial weights; whichever creates
     * the table writes them. */
    double lr = cfg->lr * (cfg->lr_scaling ? W : 1);
    /* --lr goes first so that an lr inside --rule wins; rules without a
     * learning rate (add) get none. */
    char spec[700], lrs[64] = "";
    {
        pd_table_def d;
        char rs[600];
        snprintf(rs, sizeof rs, "rule=%s", cfg->rule);
        if (pd_spec_parse(rs, &d, NULL) == 0 &&
            pd_rule_uses_hyper((pd_rule_kind)d.rule, "lr"))
            snprintf(lrs, sizeof lrs, "lr=%.9g ", lr);
    }
    snprintf(spec, sizeof spec, "%srule=%s consistency=%s aggregate=mean backup=%d", lrs,
             cfg->rule, cfg->consistency, cfg->backup);
    pd_model_init_params(m, params, cfg->seed);
    if (comm) {
        if (paramd_table_open(c, "model", np, spec, params, &t)) {
            snprintf(err, errlen, "cannot open the model table: %s", paramd_last_error(c));
            goto out;
        }
    } else {
        /* The rule the servers would run, on our own weights, with the
         * learning rate of one process of batch B. */
        pd_table_def d;
        pd_err pe = {0};
        lr = cfg->lr;
        if (lrs[0]) snprintf(spec, sizeof spec, "lr=%.9g rule=%s", lr, cfg->rule);
        else snprintf(spec, sizeof spec, "rule=%s", cfg->rule);
        if (pd_spec_parse(spec, &d, &pe) != 0) {
            snprintf(err, errlen, "--rule: %s", pe.msg);
            goto out;
        }
        rule.kind = (pd_rule_kind)d.rule;
        pd_spec_hyper(&d, &rule.hyper);
        char ppath[PD_MAX_PLUGIN_FILE];
        if (rule.kind == PD_RULE_PLUGIN &&
            (pd_rule_plugin_path(cfg->plugin_dir, d.plugin, ppath, sizeof ppath, err,
                                 errlen) != 0 ||
             pd_rule_load_plugin(&rule, ppath, err, errlen) != 0))
            goto out;
        size_t sf = pd_rule_state_floats(&rule);
        if (sf) {
            state = malloc(sf * np * sizeof(float));
            if (!state) {
                snprintf(err, errlen, "out of memory for the rule's state (%zu x %llu floats)",
                         sf, (unsigned long long)np);
                goto out;
            }
            pd_rule_init_state(&rule, state, np);
        }
    }
    /* What each worker did, summed at the end (by the reporter): [r] its
     * steps, [W + r] the steps it skipped (a backup worker that fell
     * behind jumps to the applied clock), [2W + r] 1: it reached the end. */
    paramd_table *rep = NULL;
    if (comm && paramd_table_open(c, "train.report", 3 * (uint64_t)W,
                                  "rule=add consistency=async", NULL, &rep)) {
        snprintf(err, errlen, "cannot open the report table: %s", paramd_last_error(c));
        goto out;
    }
    int64_t steps_done = 0, steps_skipped = 0;
    int64_t spe = pd_train_steps_per_epoch(n, W, cfg->batch);
    int64_t total = cfg->steps > 0 ? cfg->steps : spe * cfg->epochs;
    int64_t eval_every = cfg->eval_every > 0 ? cfg->eval_every : (total / 20 > 0 ? total / 20 : 1);
    int train_mode = cfg->dropout && strcmp(cfg->model, "cnn") == 0;

    /* A replacement for a dead worker (paramd train --replace-workers)
     * joins the running cluster at its clock; a cluster paramd train
     * started again from its checkpoint (--restarts) starts at the
     * checkpoint's.  Worker 0 then goes on with the run's metrics.csv
     * (rows up to that clock kept), its times counted from the run's
     * start. */
    const char *rv = getenv("PARAMD_REPLACEMENT"), *rs = getenv("PARAMD_TRAIN_RESTART");
    int replacement = rv && !strcmp(rv, "1"), restarted = rs && !strcmp(rs, "1");
    double t_before = 0;   /* the run's time before this worker started */
    int64_t last_row = -1; /* the step of metrics.csv's last row kept */
    if (rank == 0 && (replacement || restarted)) {
        int64_t at = paramd_get_clock(c);
        if (replacement)
            printf("paramd train: a new worker 0 joins the run at step %lld\n", (long long)at);
        else
            printf("paramd train: the run goes on from its checkpoint at step %lld\n",
                   (long long)at);
        fflush(stdout);
        if (cfg->out) {
            if (pd_metrics_reopen(&R.metrics, cfg->out, replacement ? INT64_MAX : at,
                                  &t_before, &last_row, err, errlen) != 0)
                goto out;
        }
        if (!cfg->quiet) R.prog = pd_progress_new(stdout, total, isatty(1));
    } else if (rank == 0) {
        if (comm)
            printf("paramd train: %s (%llu parameters), %s, %d worker%s x batch %d, "
                   "%d server%s, rule %s lr %.4g%s",
                   cfg->model, (unsigned long long)np, cfg->consistency, W, W > 1 ? "s" : "",
                   cfg->batch, S, S > 1 ? "s" : "", cfg->rule, lr,
                   cfg->lr_scaling && W > 1 ? " (scaled by W)" : "");
        else
            printf("paramd train: %s (%llu parameters), COMMUNICATION OFF: %d worker%s x "
                   "batch %d, each training its own weights (no pull, no push, no server "
                   "used), rule %s lr %.4g (not scaled)",
                   cfg->model, (unsigned long long)np, W, W > 1 ? "s" : "", cfg->batch,
                   cfg->rule, lr);
        if (cfg->lr_decay != 1) printf(", lr x %g per epoch", cfg->lr_decay);
        if (cfg->backup)
            printf(", backup %d (a step applies the first %d gradients; late ones are "
                   "dropped)", cfg->backup, W - cfg->backup);
        if (cfg->straggle_factor > 1)
            printf(", straggler: worker %d's steps x %g", cfg->straggle_rank,
                   cfg->straggle_factor);
        printf("\n");
        printf("data: %u training and %d test images; %lld steps per worker (%.2f epochs); "
               "BLAS: %s\n",
               n, test.n, (long long)total, (double)total / spe, pd_blas_info());
        fflush(stdout);
        if (cfg->out && pd_metrics_open(&R.metrics, cfg->out, err, errlen) != 0) goto out;
        if (!cfg->quiet) R.prog = pd_progress_new(stdout, total, isatty(1));
    }
    /* Time from the moment every worker is ready (the same for comm on and
     * off; worker 0, which also loads the test set, is usually last). */
    /* (A worker that joined after the others passed it, a replacement for
     * a dead one, does not wait for it: they never reach it again.) */
    if (paramd_barrier_count(c) == 0 && paramd_barrier(c)) {
        snprintf(err, errlen, "start barrier: %s", paramd_last_error(c));
        goto out;
    }
    R.t0 = pd_now() - t_before;
    int64_t perm_epoch = -1;
    uint64_t bytes_per_op = np * 4;
    /* evaluations at multiples of eval_every, from wherever this worker
     * starts (a resumed run, a replacement) */
    int64_t next_eval = (paramd_get_clock(c) / eval_every + 1) * eval_every;
    if (paramd_get_clock(c) % eval_every == 0 && paramd_get_clock(c) > 0)
        next_eval = paramd_get_clock(c);
    if (next_eval <= last_row) next_eval = (last_row / eval_every + 1) * eval_every;
    int straggler = cfg->straggle_factor > 1 && rank == cfg->straggle_rank;
    /* where this worker's time goes (reported by worker 0): waiting for
     * and receiving the pull, the model's forward and backward pass, and
     * sending the push (or, communication off, applying the rule) */
    double t_pull = 0, t_comp = 0, t_push = 0;
    /* A worker that joined a running cluster starts at the clock it was
     * given (paramd_get_clock); the others at 0. */
    for (int64_t step = paramd_get_clock(c); step < total; step++) {
        double t_phase = pd_now();
        if (comm && paramd_pull(t, 0, np, params)) {
            snprintf(err, errlen, "pull at step %lld: %s", (long long)step, paramd_last_error(c));
            goto out;
        }
        t_pull += pd_now() - t_phase;
        if (comm && cfg->backup > 0 && paramd_table_clock(t) > step) {
            /* Fallen behind the clock the others applied without us: jump
             * to it (the weights just pulled are that clock's). */
            int64_t to = paramd_clock_to(c, paramd_table_clock(t));
            steps_skipped += (to < total ? to : total) - step;
            step = to;
            if (step >= total) break;
        }
        if (rank == 0 && step >= next_eval) {
            next_eval = step + eval_every;
            double tl, ta, te = pd_now();
            pd_model_eval(m, params, test.x, test.y, eval_n, &tl, &ta);
            double el = pd_now() - R.t0;
            R.eval_s += pd_now() - te;
            pd_metric_row row = {el, step, (double)step / spe,
                                 step * W * (int64_t)cfg->batch,
                                 R.loss_n ? R.loss_sum / R.loss_n : NAN, tl, ta, eval_n, 0};
            if (R.metrics && pd_metrics_append(R.metrics, &row) != 0) {
                snprintf(err, errlen, "%s", pd_metrics_last_error(R.metrics));
                goto out;
            }
            if (R.prog)
                pd_progress_note(R.prog, "step %lld  epoch %.2f  lr %.4g  train loss %.4f  "
                                 "test loss %.4f  test acc %.2f%% (%d images)",
                                 (long long)step, row.epoch,
                                 lr * pd_train_lr_factor(cfg->lr_decay, step, spe),
                                 row.train_loss, tl, 100 * ta, eval_n);
            R.loss_sum = 0, R.loss_n = 0;
        }
        pd_train_batch(cfg->seed, rank, step, spe, n, cfg->batch, perm, &perm_epoch, idx);
        pd_dataset_gather(&train, idx, cfg->batch, x, y);
        double t_grad = pd_now();
        float loss = pd_model_grad(m, params, x, y, cfg->batch, grad, train_mode,
                                   pd_train_dropout_seed(cfg->seed, rank, step));
        if (straggler) {
            /* --straggle RANK:FACTOR: this worker's steps take FACTOR times
             * as long (an experiment, not synchronisation) */
            double d = (pd_now() - t_grad) * (cfg->straggle_factor - 1);
            struct timespec ts = {(time_t)d, (long)((d - (time_t)d) * 1e9)};
            nanosleep(&ts, NULL);
        }
        if (!isfinite(loss)) {
            snprintf(err, errlen, "loss is %g at step %lld: the run diverged; lower --lr",
                     loss, (long long)step);
            goto out;
        }
        double f = pd_train_lr_factor(cfg->lr_decay, step, spe);
        t_comp += pd_now() - t_grad;
        t_phase = pd_now();
        if (f != 1)
            for (uint64_t i = 0; i < np; i++) grad[i] *= (float)f;
        if (!comm) {
            pd_rule_apply(&rule, params, state, grad, np, step + 1);
        } else {
            if (paramd_push(t, 0, np, grad)) {
                snprintf(err, errlen, "push at step %lld: %s", (long long)step,
                         paramd_last_error(c));
                goto out;
            }
            paramd_clock(c);
        }
        t_push += pd_now() - t_phase;
        steps_done++;
        R.loss_sum += loss, R.loss_n++;
        if (R.prog) {
            double el = pd_now() - R.t0;
            pd_progress_update(R.prog, step + 1, (double)(step + 1) / spe, loss,
                               el > 0 ? (double)(step + 1) * W * cfg->batch / el : NAN);
        }
    }
    if (rep) { /* this worker's steps, before the barrier that ends the run */
        float *mine = calloc(3 * (size_t)W, sizeof *mine);
        if (!mine) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        mine[rank] = (float)steps_done; /* exact below 2^24 steps */
        mine[W + rank] = (float)steps_skipped;
        mine[2 * W + rank] = 1;
        int prc = paramd_push(rep, 0, 3 * (uint64_t)W, mine);
        free(mine);
        if (prc) {
            snprintf(err, errlen, "report push: %s", paramd_last_error(c));
            goto out;
        }
    }
    /* Everyone has pushed every step: the last clock is applied. */
    if (paramd_barrier(c)) {
        snprintf(err, errlen, "final barrier: %s", paramd_last_error(c));
        goto out;
    }
    double wall = pd_now() - R.t0;
    /* samples/s of training: worker 0's periodic evaluations (which hold
     * the others up only in sync mode) are reported apart */
    double train_s = wall - R.eval_s > 0 ? wall - R.eval_s : wall;
    /* What every worker did (steps, skipped, reached the end): its report,
     * pushed before the barrier; and who writes the results. */
    int reporter = rank == 0;
    if (rep) {
        all = calloc(3 * (size_t)W, sizeof *all);
        if (!all || paramd_pull(rep, 0, 3 * (uint64_t)W, all)) {
            snprintf(err, errlen, "report pull: %s", paramd_last_error(c));
            goto out;
        }
        int first = 0;
        while (first < W && all[2 * W + first] == 0) first++;
        reporter = first == rank;
    }
    if (reporter && rank != 0) {
        fprintf(stderr, "paramd train: worker 0 was lost; worker %d evaluates the final "
                "weights and writes the results\n", rank);
        if (pd_dataset_load_shape(cfg->data, "test", PD_MODEL_SIDE, PD_MODEL_SIDE, &test, err,
                                  errlen) != 0)
            goto out;
        double ignored;
        int64_t ignored_step;
        if (cfg->out && pd_metrics_reopen(&R.metrics, cfg->out, INT64_MAX, &ignored,
                                          &ignored_step, err, errlen) != 0)
            goto out;
    }
    if (reporter) {
        if (comm && paramd_pull(t, 0, np, params)) {
            snprintf(err, errlen, "final pull: %s", paramd_last_error(c));
            goto out;
        }
        pd_progress_finish(R.prog);
        R.prog = NULL;
        int64_t steps_all = total * W;
        if (rep) {
            steps_all = 0;
            for (int r = 0; r < W; r++) steps_all += (int64_t)all[r];
        }
        double tl, ta;
        pd_model_eval(m, params, test.x, test.y, test.n, &tl, &ta);
        int64_t samples = steps_all * (int64_t)cfg->batch;
        pd_metric_row row = {wall, total, (double)total / spe, samples,
                             R.loss_n ? R.loss_sum / R.loss_n : NAN, tl, ta, test.n, 1};
        if (R.metrics && pd_metrics_append(R.metrics, &row) != 0) {
            snprintf(err, errlen, "%s", pd_metrics_last_error(R.metrics));
            goto out;
        }
        double pushed = comm ? (double)bytes_per_op * steps_all : 0;
        double pulled = comm ? pushed + (double)bytes_per_op * W : 0;
        double lr_final = lr * pd_train_lr_factor(cfg->lr_decay, total - 1, spe);
        char pb[32], lb[32];
        fmt_bytes(pushed, pb, sizeof pb);
        fmt_bytes(pulled, lb, sizeof lb);
        if (comm)
            printf("final: test accuracy %.2f%%  test loss %.4f  wall %.1f s  %.0f samples/s  "
                   "pushed %s  pulled %s\n",
                   100 * ta, tl, wall, samples / train_s, pb, lb);
        else
            printf("final (communication off; worker 0's own weights): test accuracy %.2f%%  "
                   "test loss %.4f  wall %.1f s  %.0f samples/s  nothing pushed or pulled\n",
                   100 * ta, tl, wall, samples / train_s);
        if (cfg->lr_decay != 1) printf("lr at the last step: %.4g\n", lr_final);
        /* What every worker did and what the servers measured. */
        char wsteps[8192] = "", wlost[2048] = "";
        size_t ol = 0;
        uint64_t dropped = 0, st_n = 0, st_sum = 0, st_max = 0;
        int64_t skipped_all = 0;
        if (rep) {
            size_t o = 0;
            for (int r = 0; r < W && o < sizeof wsteps - 32; r++) {
                o += (size_t)snprintf(wsteps + o, sizeof wsteps - o, "%s%lld", r ? ", " : "",
                                      (long long)all[r]);
                /* a worker reports at its end: none from one that died
                 * or was removed (the run went on without it) */
                if (all[2 * W + r] == 0 && ol < sizeof wlost - 16)
                    ol += (size_t)snprintf(wlost + ol, sizeof wlost - ol, "%s%d",
                                           ol ? ", " : "", r);
                skipped_all += (int64_t)all[W + r];
            }
            paramd_table_stat(t, -1, "dropped", &dropped);
            paramd_table_stat(t, -1, "staleness_count", &st_n);
            paramd_table_stat(t, -1, "staleness_sum", &st_sum);
            for (int k = 0; k < S; k++) {
                uint64_t mx = 0;
                if (paramd_table_stat(t, k, "staleness_max", &mx) == 0 && mx > st_max)
                    st_max = mx;
            }
            printf("steps per worker: %s; late gradients dropped: %llu; steps skipped: %lld\n",
                   wsteps, (unsigned long long)dropped, (long long)skipped_all);
            if (wlost[0])
                printf("workers lost: %s (no report: died or removed; the run went on "
                       "without them)\n", wlost);
            printf("staleness of the gradients applied: mean %.2f, max %llu clocks (over %llu "
                   "pushes)\n",
                   st_n ? (double)st_sum / (double)st_n : 0, (unsigned long long)st_max,
                   (unsigned long long)st_n);
        }
        printf("(samples/s count training time only: %.1f s of the wall time went to "
               "evaluations)\n", R.eval_s);
        printf("worker %d's time: %s %.2f s, forward+backward %.2f s, %s %.2f s\n", rank,
               comm ? "pull (waiting included)" : "no pull", t_pull, t_comp,
               comm ? "push" : "applying the rule", t_push);
        if (cfg->save_params) {
            FILE *f = fopen(cfg->save_params, "wb");
            int ok = f && fwrite(params, 4, np, f) == np;
            int saved = errno;
            if (f && fclose(f) != 0 && ok) ok = 0, saved = errno;
            if (!ok) {
                snprintf(err, errlen, "cannot write %s: %s", cfg->save_params,
                         strerror(saved));
                goto out;
            }
        }
        if (cfg->out) {
            char json[16384], label[128], strag[64] = "null";
            if (cfg->straggle_factor > 1)
                snprintf(strag, sizeof strag, "\"%d:%g\"", cfg->straggle_rank,
                         cfg->straggle_factor);
            snprintf(label, sizeof label, "%s %s W=%d%s", cfg->model, cfg->consistency, W,
                     comm ? "" : " comm off");
            snprintf(json, sizeof json,
                     "{\"label\": \"%s\", \"model\": \"%s\", \"consistency\": \"%s\", "
                     "\"workers\": %d, \"servers\": %d, \"batch\": %d, \"lr\": %.9g, "
                     "\"lr_scaled\": %.9g, \"lr_decay\": %.9g, \"lr_final\": %.9g, "
                     "\"comm\": \"%s\", \"rule\": \"%s\", \"epochs\": %.4f, "
                     "\"steps\": %lld, \"seed\": %llu, \"train_samples\": %u, "
                     "\"test_acc\": %.6f, \"test_loss\": %.6f, \"wall_s\": %.3f, "
                     "\"samples_per_s\": %.1f, \"eval_s\": %.3f, \"bytes_pushed\": %.0f, "
                     "\"bytes_pulled\": %.0f, \"time_pull_s\": %.3f, \"time_compute_s\": %.3f, "
                     "\"time_push_s\": %.3f, \"blas\": \"%s\", \"backup\": %d, "
                     "\"straggle\": %s, \"dropped_late\": %llu, \"steps_skipped\": %lld, "
                     "\"worker_steps\": [%s], \"workers_lost\": [%s], \"staleness_mean\": %.4f, "
                     "\"staleness_max\": %llu}\n",
                     label, cfg->model, cfg->consistency, W, comm ? S : 0, cfg->batch, cfg->lr,
                     lr, cfg->lr_decay, lr_final, comm ? "on" : "off", cfg->rule, (double)total / spe, (long long)total,
                     (unsigned long long)cfg->seed, n, ta, tl, wall, samples / train_s, R.eval_s,
                     pushed, pulled, t_pull, t_comp, t_push, pd_blas_info(), cfg->backup,
                     strag, (unsigned long long)dropped, (long long)skipped_all, wsteps, wlost,
                     st_n ? (double)st_sum / (double)st_n : 0, (unsigned long long)st_max);
            if (pd_metrics_finish_run(&R.metrics, cfg->out, json, err, errlen) != 0) goto out;
            write_plot(cfg->out, label);
        }
        fflush(stdout);
    }
    rc = 0;
out:
    free(all);
    pd_progress_finish(R.prog);
    pd_metrics_close(R.metrics);
    pd_dataset_free(&train);
    pd_dataset_free(&test);
    pd_model_free(m);
    pd_rule_release(&rule);
    paramd_free(c, params), paramd_free(c, grad);
    free(x), free(y), free(perm), free(idx), free(state);
    return rc;
}
