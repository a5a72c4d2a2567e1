/*
 * cmd_train.c - `paramd train`: data-parallel training of a model on
 * Fashion-MNIST with a paramd cluster.
 *
 * Two ways to run:
 *   - by default it starts its own cluster on this machine (like
 *     ray.init()): a coordinator, --servers servers and --workers copies of
 *     itself as workers (`paramd train --join ...`), and waits for them;
 *   - with --coordinator HOST:PORT it is one worker of an existing cluster
 *     (start W of them with mpirun or srun; each takes its rank from the
 *     launcher's environment).
 * The worker loop is src/train/trainer.c.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/ckpt_opts.h"
#include "cli/cli.h"
#include "cli/local.h"
#include "cli/secret.h"
#include "cli/util.h"
#include "common/common.h"
#include "train/mf.h"
#include "train/model.h"
#include "train/trainer.h"
#include "train/w2v.h"
#include "table/spec.h"
#include "train/train_check.h"

static void train_usage(FILE *f) {
    pd_train_cfg d;
    pd_train_defaults(&d);
    fprintf(f,
"usage: paramd train [options]\n"
"\n"
"Trains a model on Fashion-MNIST with a parameter-server cluster: every\n"
"worker pulls the weights, computes a gradient on its own batches, pushes\n"
"it; the servers apply it (sync: the mean of the W gradients of a step,\n"
"once; async: each on arrival).  Shows progress, evaluates on the test set,\n"
"writes metrics and a plot.\n"
"\n"
"Model and data:\n"
"  --model mlp|cnn        mlp: 784-256-10; cnn: the Ray example's SimpleCNN [%s]\n"
"  --hidden N             width of the hidden layer (mlp) or fc1 (cnn)\n"
"  --data DIR             directory with the four IDX files (.gz or plain) of\n"
"                         Fashion-MNIST or MNIST [/usr/share/datasets/fashion-mnist,\n"
"                         from the Debian package dataset-fashion-mnist]\n"
"  --limit N              train on the first N training images only\n"
"  --no-dropout           train the cnn without dropout\n"
"\n"
"Sparse models (docs/training.md; defaults: --rule adagrad, no lr scaling,\n"
"sync adds the W gradients of a step):\n"
"  --model word2vec       skip-gram with negative sampling; --data FILE|DIR of\n"
"                         UTF-8 text, plain or gzip [/usr/share/games/fortunes,\n"
"                         from the Debian package fortunes]; lr 0.2, batch 256,\n"
"                         5 epochs\n"
"  --dim D                embedding dim [word2vec 64; mf: --rank, or 16 with --data]\n"
"  --window N             word2vec: context words on each side [5]\n"
"  --negatives K          word2vec: negative samples per pair [5]\n"
"  --min-count N          word2vec: drop rarer words [5]\n"
"  --subsample T          word2vec: frequent-word threshold, 0 for none [1e-3]\n"
"  --neighbours W1,W2     word2vec: words whose nearest neighbours are printed\n"
"  --model mf             matrix factorization; --data FILE of user,item,rating\n"
"                         lines, else a planted set; lr 0.1, batch 256, 20 epochs\n"
"  --users N --items N --rank R --noise SIGMA   the planted set [2000 1000 8 0.1]\n"
"  --l2 X                 mf: L2 penalty on the factors, 0 for none [0.01]\n"
"\n"
"Training:\n"
"  --consistency sync|async|ssp:S   ssp:S lets a worker run S clocks ahead\n"
"                         of the slowest (sync is ssp:0)              [%s]\n"
"  --backup K             sync: apply each step with the first W-K gradients;\n"
"                         late ones are dropped and their worker catches up\n"
"  --straggle RANK:FACTOR make worker RANK's steps FACTOR times slower (for\n"
"                         experiments with stragglers)\n"
"  --epochs E             passes over the training set, all workers together [%d]\n"
"  --steps N              exactly N steps per worker instead of --epochs\n"
"  --batch B              samples per worker per step [%d]\n"
"  --lr LR                learning rate, multiplied by W unless --no-lr-scaling [%g]\n"
"  --no-lr-scaling        do not scale the learning rate by the number of workers\n"
"  --lr-decay F           multiply the lr by F (0 < F <= 1) after every epoch\n"
"                         (rules sgd and momentum) [1: constant]\n"
"  --comm on|off          off: the same loop without pull and push, to measure\n"
"                         what the servers cost: each worker applies its own\n"
"                         gradient to its own weights (lr not scaled) [on]\n"
"  --rule SPEC            the server's update rule: sgd, momentum, adam, ... with\n"
"                         optional key=value hyper-parameters after a comma,\n"
"                         e.g. 'adam' or 'momentum,momentum=0.9' [%s]\n"
"  --seed N               initial weights, shuffling, dropout [%llu]\n"
"  --threads T            BLAS threads per worker [cores / workers]\n"
"\n"
"Cluster:\n"
"  --servers S            servers of the local cluster [1]\n"
"  --workers W            workers of the local cluster [2]\n"
"  --transport T          auto, tcp or shm: how workers reach servers [auto:\n"
"                         shared memory on this host]\n"
"  --apply-threads N      threads each server may use for one update [cores]\n"
"  --secret-file FILE     the cluster secret (a local cluster: created if\n"
"                         missing; else a private one) [$PARAMD_SECRET_FILE]\n"
"  --plugin-dir DIR       where servers (and --comm off) load update-rule\n"
"                         plugins from: --rule with plugin=NAME is DIR/NAME.so\n"
"                         [$PARAMD_PLUGIN_DIR; none: no plugins]\n"
"  --max-workers M        worker slots (M >= W): workers started later with\n"
"                         --join --coordinator ADDR join the running cluster [W]\n"
"  --restarts N           when a server dies, start the cluster again from\n"
"                         the newest checkpoint (needs --checkpoint-dir); when\n"
"                         the coordinator dies, start it alone again (the\n"
"                         running cluster rejoins it); up to N times in all [0]\n"
"  --replace-servers N    when a server dies, start a new one that restores\n"
"                         only its shard from the newest checkpoint (needs\n"
"                         --checkpoint-dir), the other servers keeping theirs;\n"
"                         the workers wait, then go on; up to N times [0]\n"
"  --replicas R           keep R copies of every shard (R x S servers): when\n"
"                         a server dies its copy serves at once, nothing\n"
"                         acknowledged is lost, and a new copy is seeded\n"
"                         while training goes on [1: none; 2..8]\n"
"  --elastic              servers may join (paramd server --join) and shards\n"
"                         move to them (paramd drain) while training goes on\n"
"  --replace-workers N    start a new worker in the place of one that dies\n"
"                         (it joins at the first clock nobody pushed for),\n"
"                         up to N times in the run [0: go on without it]\n"
"  --coordinator HOST:PORT  join an existing cluster as one worker instead\n"
"                         (rank from PARAMD_RANK or the launcher's variables)\n"
"%s"
"\n"
"Output:\n"
"  --out DIR              write metrics.csv, run.json and plot.svg into DIR\n"
"                         [runs/MODEL-CONSISTENCY-wW, + -commoff with --comm off]\n"
"  --eval-every N         evaluate every N steps [about 20 times per run]\n"
"  --eval-samples N       test images per periodic evaluation [%d]; the final\n"
"                         evaluation uses the whole test set\n"
"  --save-params FILE     write the final weights (raw float32) to FILE\n"
"  --quiet                no progress display\n"
"\n"
"A worker that dies or is removed (no heartbeat) does not end the run: the\n"
"others finish and the outputs are written (mlp, cnn: by the lowest-ranked\n"
"worker that finished when worker 0 is lost; word2vec and mf end with\n"
"worker 0).  Exit status: 0; 3 when the run finished without some workers\n"
"or not in one go (workers replaced, the cluster restarted); 1 when it\n"
"failed; 2 for bad arguments.\n"
"\n"
"Example: paramd train --model cnn --consistency async --workers 4 --epochs 1\n",
            d.model, d.consistency, d.epochs, d.batch, d.lr, d.rule,
            (unsigned long long)d.seed, cli_ckpt_help, d.eval_samples);
}

static int bad(const char *opt, const char *v, const char *want) {
    fprintf(stderr, "paramd train: %s '%s' is not %s\n", opt, v, want);
    return 2;
}

int cmd_train(int argc, char **argv) {
    enum { O_MODEL = 1000, O_HIDDEN, O_DATA, O_LIMIT, O_NODROP, O_CONS, O_EPOCHS,
           O_STEPS, O_BATCH, O_LR, O_NOSCALE, O_RULE, O_SEED, O_THREADS, O_SERVERS,
           O_WORKERS, O_COORD, O_JOIN, O_OUT, O_EVERY, O_EVALN, O_SAVE, O_QUIET,
           O_BACKUP, O_STRAGGLE, O_HB, O_DIM, O_WINDOW, O_NEG, O_MINC, O_SUBS, O_NEIGH,
           O_USERS, O_ITEMS, O_RANK, O_NOISE, O_L2, O_TRANSPORT, O_MAXW, O_COMM,
           O_DECAY, O_APPLY, O_CKPT, O_PLUGINS, O_SECRET, O_REPLACE, O_RESTARTS,
           O_REPLACE_SERVERS, O_REPLICAS, O_ELASTIC };
    static const struct option opts[] = {
        {"model", 1, 0, O_MODEL}, {"hidden", 1, 0, O_HIDDEN}, {"data", 1, 0, O_DATA},
        {"limit", 1, 0, O_LIMIT}, {"no-dropout", 0, 0, O_NODROP},
        {"consistency", 1, 0, O_CONS}, {"epochs", 1, 0, O_EPOCHS}, {"steps", 1, 0, O_STEPS},
        {"batch", 1, 0, O_BATCH}, {"lr", 1, 0, O_LR}, {"no-lr-scaling", 0, 0, O_NOSCALE},
        {"rule", 1, 0, O_RULE}, {"seed", 1, 0, O_SEED}, {"threads", 1, 0, O_THREADS},
        {"servers", 1, 0, O_SERVERS}, {"workers", 1, 0, O_WORKERS},
        {"max-workers", 1, 0, O_MAXW}, {"replace-workers", 1, 0, O_REPLACE},
        {"restarts", 1, 0, O_RESTARTS},
        {"replace-servers", 1, 0, O_REPLACE_SERVERS}, {"replicas", 1, 0, O_REPLICAS},
        {"elastic", 0, 0, O_ELASTIC},
        {"coordinator", 1, 0, O_COORD}, {"join", 0, 0, O_JOIN}, {"out", 1, 0, O_OUT},
        {"eval-every", 1, 0, O_EVERY}, {"eval-samples", 1, 0, O_EVALN},
        {"save-params", 1, 0, O_SAVE}, {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, 'h'},
        {"backup", 1, 0, O_BACKUP}, {"straggle", 1, 0, O_STRAGGLE},
        {"dim", 1, 0, O_DIM}, {"window", 1, 0, O_WINDOW}, {"negatives", 1, 0, O_NEG},
        {"min-count", 1, 0, O_MINC}, {"subsample", 1, 0, O_SUBS},
        {"neighbours", 1, 0, O_NEIGH}, {"users", 1, 0, O_USERS}, {"items", 1, 0, O_ITEMS},
        {"rank", 1, 0, O_RANK}, {"noise", 1, 0, O_NOISE}, {"l2", 1, 0, O_L2},
        {"transport", 1, 0, O_TRANSPORT},
        {"comm", 1, 0, O_COMM}, {"lr-decay", 1, 0, O_DECAY},
        {"apply-threads", 1, 0, O_APPLY}, {"plugin-dir", 1, 0, O_PLUGINS},
        {"secret-file", 1, 0, O_SECRET},
        {"checkpoint-dir", 1, 0, O_CKPT}, {"checkpoint-every", 1, 0, O_CKPT},
        {"checkpoint-every-clocks", 1, 0, O_CKPT}, {"checkpoint-full-every", 1, 0, O_CKPT},
        {"resume", 1, 0, O_CKPT},
        {0, 0, 0, 0}};
    cli_ckpt_opts ck = {0};
    /* OpenBLAS falls back to generic kernels (several times slower) on CPUs newer
     * than its release; it reads OPENBLAS_CORETYPE only at load time, so
     * set it and start again (once; a value the user set is kept). */
    const char *core = pd_blas_suggest_core();
    if (core && !getenv("OPENBLAS_CORETYPE")) {
        setenv("OPENBLAS_CORETYPE", core, 1);
        char **full = argv - 1; /* main's argv: "paramd", "train", ... */
        execv(cli_self_path(), full);
        pd_log(PD_LOG_WARN, "could not restart with OPENBLAS_CORETYPE=%s", core);
    }
    pd_train_cfg cfg;
    pd_train_defaults(&cfg);
    int64_t S = 1, W = 2, M = 0, replace = 0, restarts = 0, replace_servers = 0, v;
    int64_t replicas = 1;
    int elastic = 0;
    double dv;
    const char *coord = NULL;
    int join = 0, out_given = 0, rule_given = 0, lr_given = 0, batch_given = 0,
        epochs_given = 0;
    static char rule[512], outdir[512];
    int c, li = 0;
    pd_log_set_name("paramd train");
    while ((c = getopt_long(argc, argv, "h", opts, &li)) != -1) {
        switch (c) {
        case O_MODEL:
            if (strcmp(optarg, "mlp") && strcmp(optarg, "cnn") && strcmp(optarg, "word2vec") &&
                strcmp(optarg, "mf"))
                return bad("--model", optarg, "mlp, cnn, word2vec or mf");
            cfg.model = optarg;
            break;
        case O_HIDDEN:
            if (pd_parse_i64(optarg, &v) || v < 1 || v > 65536) return bad("--hidden", optarg, "1..65536");
            cfg.hidden = (int)v;
            break;
        case O_DATA: cfg.data = optarg; break;
        case O_LIMIT:
            if (pd_parse_i64(optarg, &v) || v < 1) return bad("--limit", optarg, "a positive count");
            cfg.limit = v;
            break;
        case O_NODROP: cfg.dropout = 0; break;
        case O_CONS:
            if (strcmp(optarg, "sync") && strcmp(optarg, "async") &&
                (strncmp(optarg, "ssp:", 4) || pd_parse_i64(optarg + 4, &v) || v < 0 || v > 1000))
                return bad("--consistency", optarg, "sync, async or ssp:S (0 <= S <= 1000)");
            cfg.consistency = optarg;
            break;
        case O_BACKUP:
            if (pd_parse_i64(optarg, &v) || v < 0 || v > 1023) return bad("--backup", optarg, "0..1023");
            cfg.backup = (int)v;
            break;
        case O_STRAGGLE: {
            char *colon = strchr(optarg, ':');
            int64_t rk;
            if (!colon) return bad("--straggle", optarg, "RANK:FACTOR");
            *colon = '\0';
            int okr = pd_parse_i64(optarg, &rk) == 0 && rk >= 0 && rk < 65536;
            *colon = ':';
            if (!okr || pd_parse_double(colon + 1, &dv) || dv < 1 || dv > 1000)
                return bad("--straggle", optarg,
                           "RANK:FACTOR with RANK in 0..65535 and FACTOR in 1..1000");
            cfg.straggle_rank = (int)rk;
            cfg.straggle_factor = dv;
            break;
        }
        case O_EPOCHS:
            if (pd_parse_i64(optarg, &v) || v < 1 || v > 10000) return bad("--epochs", optarg, "1..10000");
            cfg.epochs = (int)v, epochs_given = 1;
            break;
        case O_STEPS:
            if (pd_parse_i64(optarg, &v) || v < 1) return bad("--steps", optarg, "a positive count");
            cfg.steps = v;
            break;
        case O_BATCH:
            if (pd_parse_i64(optarg, &v) || v < 1 || v > 4096) return bad("--batch", optarg, "1..4096");
            cfg.batch = (int)v, batch_given = 1;
            break;
        case O_LR:
            if (pd_parse_double(optarg, &dv) || dv <= 0) return bad("--lr", optarg, "a positive number");
            cfg.lr = dv, lr_given = 1;
            break;
        case O_NOSCALE: cfg.lr_scaling = 0; break;
        case O_COMM:
            if (strcmp(optarg, "on") && strcmp(optarg, "off")) return bad("--comm", optarg, "on or off");
            cfg.comm = !strcmp(optarg, "on");
            break;
        case O_DECAY:
            if (pd_parse_double(optarg, &dv) || !(dv > 0 && dv <= 1))
                return bad("--lr-decay", optarg, "a factor F with 0 < F <= 1");
            cfg.lr_decay = dv;
            break;
        case O_RULE: {
            /* "adam,beta1=0.9" -> "adam beta1=0.9" */
            snprintf(rule, sizeof rule, "%s", optarg);
            for (char *p = rule; *p; p++) if (*p == ',') *p = ' ';
            cfg.rule = rule, rule_given = 1;
            break;
        }
        case O_SEED:
            if (pd_parse_i64(optarg, &v) || v < 0) return bad("--seed", optarg, "a non-negative number");
            cfg.seed = (uint64_t)v;
            break;
        case O_THREADS:
            if (pd_parse_i64(optarg, &v) || v < 1 || v > 256) return bad("--threads", optarg, "1..256");
            cfg.threads = (int)v;
            break;
        case O_SERVERS:
            if (pd_parse_i64(optarg, &S) || S < 1 || S > 256) return bad("--servers", optarg, "1..256");
            break;
        case O_WORKERS:
            if (pd_parse_i64(optarg, &W) || W < 1 || W > 1024) return bad("--workers", optarg, "1..1024");
            break;
        case O_RESTARTS:
            if (pd_parse_i64(optarg, &restarts) || restarts < 0 || restarts > 1000)
                return bad("--restarts", optarg, "0..1000");
            break;
        case O_REPLACE_SERVERS:
            if (pd_parse_i64(optarg, &replace_servers) || replace_servers < 0 ||
                replace_servers > 1000)
                return bad("--replace-servers", optarg, "0..1000");
            break;
        case O_REPLICAS:
            if (pd_parse_i64(optarg, &replicas) || replicas < 1 || replicas > 8)
                return bad("--replicas", optarg, "1..8");
            break;
        case O_ELASTIC: elastic = 1; break;
        case O_REPLACE:
            if (pd_parse_i64(optarg, &replace) || replace < 0 || replace > 1000)
                return bad("--replace-workers", optarg, "0..1000");
            break;
        case O_MAXW:
            if (pd_parse_i64(optarg, &M) || M < 1 || M > 65536) return bad("--max-workers", optarg, "1..65536");
            break;
        case O_COORD: coord = optarg; break;
        case O_JOIN: join = 1; break;
        case O_OUT: cfg.out = optarg; out_given = 1; break;
        case O_EVERY:
            if (pd_parse_i64(optarg, &v) || v < 1 || v > INT_MAX)
                return bad("--eval-every", optarg, "a step count in 1..2147483647");
            cfg.eval_every = (int)v;
            break;
        case O_EVALN:
            if (pd_parse_i64(optarg, &v) || v < 1 || v > INT_MAX)
                return bad("--eval-samples", optarg, "a count in 1..2147483647");
            cfg.eval_samples = (int)v;
            break;
        case O_SAVE: cfg.save_params = optarg; break;
        case O_QUIET: cfg.quiet = 1; break;
        case O_DIM: case O_WINDOW: case O_NEG: case O_MINC: case O_USERS: case O_ITEMS:
        case O_RANK: {
            int *f = c == O_DIM ? &cfg.dim : c == O_WINDOW ? &cfg.window
                   : c == O_NEG ? &cfg.negatives : c == O_MINC ? &cfg.min_count
                   : c == O_USERS ? &cfg.users : c == O_ITEMS ? &cfg.items : &cfg.rank;
            if (pd_parse_i64(optarg, &v) || v < 1 || v > 10000000) {
                char o[32];
                for (int k = 0; opts[k].name; k++)
                    if (opts[k].val == c) snprintf(o, sizeof o, "--%s", opts[k].name);
                return bad(o, optarg, "1..10000000");
            }
            *f = (int)v;
            break;
        }
        case O_SUBS: case O_NOISE: case O_L2:
            if (pd_parse_double(optarg, &dv) || dv < 0 || !(dv < 1e6))
                return bad(c == O_SUBS ? "--subsample" : c == O_NOISE ? "--noise" : "--l2", optarg,
                           "a number >= 0");
            if (c == O_SUBS) cfg.subsample = dv > 0 ? dv : -1;
            else if (c == O_NOISE) cfg.noise = dv > 0 ? dv : 1e-9;
            else cfg.l2 = dv > 0 ? dv : -1;
            break;
        case O_NEIGH: cfg.neighbours = optarg; break;
        case O_TRANSPORT:
            if (cli_set_transport("paramd train", optarg)) return 2;
            break;
        case O_APPLY:
            if (cli_set_apply_threads("paramd train", optarg)) return 2;
            break;
        case O_CKPT:
            if (cli_ckpt_option("paramd train", opts[li].name, optarg, &ck)) return 2;
            break;
        case O_PLUGINS:
            if (cli_set_plugin_dir("paramd train", optarg)) return 2;
            break;
        case O_SECRET:
            if (cli_set_secret_file("paramd train", optarg)) return 2;
            break;
        case 'h': train_usage(stdout); return 0;
        default: train_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "paramd train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    cfg.plugin_dir = getenv("PARAMD_PLUGIN_DIR"); /* --plugin-dir put it there */
    /* the sparse models' own defaults (docs/training.md) */
    int sparse_model = !strcmp(cfg.model, "word2vec") || !strcmp(cfg.model, "mf");
    if (sparse_model) {
        int w2v = !strcmp(cfg.model, "word2vec");
        if (!rule_given) cfg.rule = "adagrad";
        if (!lr_given) cfg.lr = w2v ? 0.2 : 0.1;
        if (!batch_given) cfg.batch = 256;
        if (!epochs_given) cfg.epochs = w2v ? 5 : 20;
        cfg.lr_scaling = 0;
    }
    {
        char msg[300];
        if (pd_train_check(&cfg, msg, sizeof msg)) {
            fprintf(stderr, "paramd train: %s\n", msg);
            return 2;
        }
    }
    if (!cfg.comm) S = 1; /* no table: one idle server, as a cluster needs one */
    if (cfg.backup && strcmp(cfg.consistency, "sync")) {
        fprintf(stderr, "paramd train: --backup needs --consistency sync\n");
        return 2;
    }
    if (cfg.backup >= W && !join && !coord) {
        fprintf(stderr, "paramd train: --backup %d leaves no worker to wait for (--workers %d)\n",
                cfg.backup, (int)W);
        return 2;
    }
    if (M && M < W) {
        fprintf(stderr, "paramd train: --max-workers %d is below --workers %d\n", (int)M, (int)W);
        return 2;
    }
    /* The rule must parse before any process starts. */
    {
        char spec[600];
        pd_table_def d;
        pd_err e = {0};
        snprintf(spec, sizeof spec, "rule=%s", cfg.rule);
        if (pd_spec_parse(spec, &d, &e) != 0) {
            fprintf(stderr, "paramd train: --rule: %s\n", e.msg);
            return 2;
        }
    }
    if (!out_given && !join && !coord) {
        snprintf(outdir, sizeof outdir, "runs/%s-%s-w%d%s", cfg.model, cfg.consistency, (int)W,
                 cfg.comm ? "" : "-commoff");
        cfg.out = outdir;
    }
    /* Output paths and the machine's memory are checked before any
     * process starts, not found wanting after the run (train_check.c). */
    if (!join) {
        char msg[600];
        if (pd_train_check_outputs(&cfg, msg, sizeof msg) != 0 ||
            (!coord && pd_train_check_memory(&cfg, (int)W, msg, sizeof msg) != 0)) {
            fprintf(stderr, "paramd train: %s\n", msg);
            return 2;
        }
    }

    if (join || coord) {
        /* A worker: its log lines say so, with its rank when the launcher
         * gave one (before any thread starts: the name is read by all). */
        const char *rk = getenv("PARAMD_RANK");
        char lname[48];
        snprintf(lname, sizeof lname, rk && *rk ? "worker %.16s" : "worker", rk);
        pd_log_set_name(lname);
        paramd_client *cl;
        char opt[600] = "";
        if (coord) snprintf(opt, sizeof opt, "coordinator=%s", coord);
        if (paramd_connect(&cl, opt)) {
            fprintf(stderr, "paramd train: cannot join the cluster: %s\n", paramd_last_error(NULL));
            return 1;
        }
        char err[1024];
        int rc = !strcmp(cfg.model, "word2vec") ? pd_w2v_worker(&cfg, cl, err, sizeof err)
                 : !strcmp(cfg.model, "mf")     ? pd_mf_worker(&cfg, cl, err, sizeof err)
                                                : pd_train_worker(&cfg, cl, err, sizeof err);
        if (rc) fprintf(stderr, "paramd train (worker %d): %s\n", paramd_rank(cl), err);
        paramd_close(cl);
        return rc ? 1 : 0;
    }

    /* The driver: a local cluster whose workers are this command with
     * --join (every other option passed through). */
    char **wargv = calloc((size_t)argc + 3, sizeof *wargv);
    if (!wargv) return 1;
    int k = 0;
    wargv[k++] = (char *)cli_self_path();
    wargv[k++] = "train";
    wargv[k++] = "--join";
    for (int i = 1; i < argc; i++) wargv[k++] = argv[i];
    if (!out_given) {
        wargv = realloc(wargv, sizeof *wargv * ((size_t)k + 3));
        wargv[k++] = "--out";
        wargv[k++] = outdir;
    }
    wargv[k] = NULL;
    if ((ck.every_s > 0 || ck.every_clocks > 0) && !ck.dir) {
        fprintf(stderr, "paramd train: --checkpoint-every needs --checkpoint-dir\n");
        free(wargv);
        return 2;
    }
    if (replace_servers && !ck.dir) {
        fprintf(stderr, "paramd train: --replace-servers needs --checkpoint-dir (a "
                "replacement restores the lost shard from the newest checkpoint there)\n");
        free(wargv);
        return 2;
    }
    if (restarts && !ck.dir) {
        fprintf(stderr, "paramd train: --restarts needs --checkpoint-dir (a restart goes on "
                "from the newest checkpoint there)\n");
        free(wargv);
        return 2;
    }
    cli_ckpt_to_env(&ck); /* the coordinator and servers read it */
    pd_local *L;
    char why[300];
    /* The image models hand worker 0's part on when it is lost
     * (trainer.c); word2vec and mf end with worker 0. */
    int any = strcmp(cfg.model, "word2vec") != 0 && strcmp(cfg.model, "mf") != 0;
    if (replace && !any) {
        fprintf(stderr, "paramd train: --replace-workers is for --model mlp and cnn (a "
                "%s worker does not join a running cluster)\n", cfg.model);
        free(wargv);
        return 2;
    }
    /* --restarts: a server or the coordinator that dies ends this
     * cluster; a new one goes on from the newest checkpoint (a sync run
     * ends as if nothing had happened: docs/durability.md). */
    char *restart_env[] = {"PARAMD_TRAIN_RESTART=1", NULL};
    char first[300] = ""; /* what the first restart was for */
    int rc;
    int64_t attempt;
    for (attempt = 0;; attempt++) {
        pd_local_start(&L, (int32_t)S, (int32_t)W, (int32_t)M, "127.0.0.1", wargv,
                       attempt ? restart_env : NULL,
                       PD_LOCAL_RANK0_STDOUT | PD_LOCAL_KEEP_GOING |
                           (any ? PD_LOCAL_ANY_WORKER : 0) |
                           (replace_servers ? PD_LOCAL_REPLACE_SERVERS : 0) |
                           (elastic ? PD_LOCAL_ELASTIC : 0) |
                           PD_LOCAL_REPLICAS((int)replicas));
        if (!L) {
            fprintf(stderr, "paramd train: out of memory\n");
            return 1;
        }
        pd_local_replace(L, (int)replace);
        /* a coordinator that dies is started again alone: the running
         * cluster rejoins it, no checkpoint is read */
        pd_local_coord_restarts(L, (int)(restarts - attempt));
        pd_local_server_restarts(L, (int)replace_servers);
        rc = pd_local_wait(L, why, sizeof why);
        attempt += pd_local_coord_restarted(L);
        int infra = rc == 1 && pd_local_infra_failed(L);
        pd_local_free(L);
        if (!infra || attempt >= restarts) break;
        char latest[4096];
        snprintf(latest, sizeof latest, "%s/LATEST", ck.dir);
        if (access(latest, F_OK) != 0) {
            fprintf(stderr, "paramd train: %s; no checkpoint in %s yet to restart from\n",
                    why, ck.dir);
            break;
        }
        fprintf(stderr, "paramd train: %s; starting the cluster again from the newest "
                "checkpoint in %s (restart %lld of %lld)\n",
                why, ck.dir, (long long)attempt + 1, (long long)restarts);
        if (!first[0]) snprintf(first, sizeof first, "%s", why);
        ck.restore = ck.dir;
        cli_ckpt_to_env(&ck);
    }
    if (rc == 0 && attempt > 0) { /* finished, but not in one go */
        rc = 3;
        snprintf(why, sizeof why, "%.200s; the run went on from its checkpoint and finished",
                 first);
    }
    free(wargv);
    if (rc) fprintf(stderr, "paramd train: %s\n", why);
    return rc;
}
