/*
 * mf.c - matrix factorization for recommendation as a paramd workload.
 *
 * Model.  rating(u, i) ~ mu + b_u + b_i + p_u . q_i with p_u, q_i of D
 * factors.  Two sparse tables of dim D+1: "mf_user" (key: user) holds
 * [p_u, b_u] and "mf_item" (key: item) holds [q_i, b_i], both initialised
 * normal with sd 0.1 (biases included: harmless, and it keeps one init
 * spec).  mu is the mean training rating, computed by every worker.
 *
 * Data.  Either a CSV of user,item,rating lines (more fields are ignored,
 * a first line whose rating is not a number is a header; ids that are
 * decimal integers are the keys, other ids are hashed with FNV-1a), or a
 * planted set drawn from the seed: P (users, rank) and Q (items, rank)
 * with N(0, rank^-1/2) entries (so p.q has variance 1),
 *     rating = 3 + p_u . q_i + N(0, sigma^2),
 * each (u, i) observed with probability min(1, 40 rank (U+I) / (U I)).
 * One rating in ten (chosen by a hash of the seed and its index) is held
 * out for testing; every worker loads the same set, and the training
 * ratings are dealt round-robin to the ranks.
 *
 * A step (B = batch): B ratings of this worker's share (its own
 * permutation per epoch, pd_train_batch); pull the distinct users' rows
 * U (nu, D+1) and items' rows I (ni, D+1); with e = prediction - rating,
 *     grad p_u += e q_i + l2 p_u,  grad q_i += e p_u + l2 q_i,
 *     grad b_u += e,               grad b_i += e
 * (the gradient of 0.5 e^2 + 0.5 l2 (|p_u|^2 + |q_i|^2) per rating);
 * push once per table; clock++.  sync uses aggregate=sum: a step is one
 * step on the union of the W batches.
 *
 * Worker 0 reports the held-out RMSE about 20 times a run and at the end,
 * with the RMSE of predicting mu and, for a planted set, the noise floor
 * sigma (the RMSE of the true model).
 */
#include "train/mf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/common.h"
#include "common/hash.h"
#include "common/keymap.h"
#include "train/data.h"
#include "train/metrics.h"
#include "table/spec.h"

#define MF_EVAL_CHUNK 8192

/* ==== Data =============================================================== */

typedef struct ratings {
    uint64_t *user, *item; /* n keys */
    float *r;              /* n ratings */
    int64_t n, cap;
} ratings;

static int add_rating(ratings *R, uint64_t u, uint64_t i, float r) {
    if (R->n == R->cap) {
        int64_t nc = R->cap ? R->cap * 2 : 1 << 14;
        uint64_t *pu = realloc(R->user, (size_t)nc * sizeof *pu);
        if (pu) R->user = pu;
        uint64_t *pi = realloc(R->item, (size_t)nc * sizeof *pi);
        if (pi) R->item = pi;
        float *pr = realloc(R->r, (size_t)nc * sizeof *pr);
        if (pr) R->r = pr;
        if (!pu || !pi || !pr) return -1;
        R->cap = nc;
    }
    R->user[R->n] = u, R->item[R->n] = i, R->r[R->n] = r, R->n++;
    return 0;
}

static void free_ratings(ratings *R) { free(R->user), free(R->item), free(R->r); }

static uint64_t rng_next(uint64_t *s) {
    *s += PD_GOLDEN64;
    return pd_mix64(*s);
}
static double rng_unit(uint64_t *s) { return ((double)(rng_next(s) >> 11) + 0.5) * 0x1p-53; }
static double rng_normal(uint64_t *s) { /* Box-Muller */
    return sqrt(-2 * log(rng_unit(s))) * cos(6.283185307179586 * rng_unit(s));
}

static int planted(ratings *R, int U, int I, int r, double sigma, uint64_t seed) {
    uint64_t rng = pd_mix64(seed ^ 0x6d66706c616e74ull); /* "mfplant" */
    double *P = malloc((size_t)U * r * sizeof *P), *Q = malloc((size_t)I * r * sizeof *Q);
    if (!P || !Q) {
        free(P), free(Q);
        return -1;
    }
    double sd = pow((double)r, -0.25);
    for (int64_t k = 0; k < (int64_t)U * r; k++) P[k] = sd * rng_normal(&rng);
    for (int64_t k = 0; k < (int64_t)I * r; k++) Q[k] = sd * rng_normal(&rng);
    double dens = 40.0 * r * (U + I) / ((double)U * I);
    for (int u = 0; u < U; u++)
        for (int i = 0; i < I; i++) {
            if (dens < 1 && rng_unit(&rng) >= dens) continue;
            double y = 3 + sigma * rng_normal(&rng);
            for (int k = 0; k < r; k++) y += P[(size_t)u * r + k] * Q[(size_t)i * r + k];
            if (add_rating(R, (uint64_t)u, (uint64_t)i, (float)y)) {
                free(P), free(Q);
                return -1;
            }
        }
    free(P), free(Q);
    return 0;
}

/* An id: a decimal integer is its own key, anything else is hashed. */
static uint64_t id_key(const char *s, size_t n) {
    uint64_t v = 0;
    size_t k = 0;
    while (k < n && k < 19 && s[k] >= '0' && s[k] <= '9') v = v * 10 + (uint64_t)(s[k++] - '0');
    if (k == n && n > 0) return v;
    uint64_t h = 0xcbf29ce484222325ull;
    for (k = 0; k < n; k++) h = (h ^ (uint8_t)s[k]) * 0x100000001b3ull;
    return h;
}

static void trim(char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t' || **s == '"')) (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '"' ||
                  (*s)[*n - 1] == '\r'))
        (*n)--;
}

/* Read user,item,rating[,...] lines (plain or gzip). */
static int read_csv(ratings *R, const char *path, char *err, size_t errlen) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : ENOENT));
        return -1;
    }
    char line[4096];
    int64_t ln = 0;
    int rc = 0;
    while (gzgets(f, line, sizeof line)) {
        ln++;
        size_t L = strlen(line);
        if (L == sizeof line - 1 && line[L - 1] != '\n') {
            snprintf(err, errlen, "%s:%lld: line longer than %zu bytes", path, (long long)ln,
                     sizeof line - 2);
            rc = -1;
            break;
        }
        while (L && (line[L - 1] == '\n' || line[L - 1] == '\r')) line[--L] = '\0';
        if (L == 0 || line[0] == '#') continue;
        char *fld[3];
        size_t fl[3];
        int nf = 0;
        char *p = line;
        while (nf < 3) {
            char *q = strchr(p, ',');
            fld[nf] = p, fl[nf] = q ? (size_t)(q - p) : strlen(p);
            trim(&fld[nf], &fl[nf]);
            nf++;
            if (!q) break;
            p = q + 1;
        }
        char num[64];
        double v;
        int numok = 0;
        if (nf == 3 && fl[2] < sizeof num) {
            memcpy(num, fld[2], fl[2]), num[fl[2]] = '\0';
            numok = pd_parse_double(num, &v) == 0 && isfinite(v);
        }
        if (!numok && ln == 1 && nf == 3) continue; /* a header */
        if (nf < 3 || !numok || fl[0] == 0 || fl[1] == 0) {
            snprintf(err, errlen, "%s:%lld: expected user,item,rating (a number), found '%.60s'",
                     path, (long long)ln, line);
            rc = -1;
            break;
        }
        if (add_rating(R, id_key(fld[0], fl[0]), id_key(fld[1], fl[1]), (float)v)) {
            snprintf(err, errlen, "out of memory reading %s", path);
            rc = -1;
            break;
        }
    }
    int zerr;
    const char *zmsg = gzerror(f, &zerr);
    if (rc == 0 && zerr < 0 && zerr != Z_BUF_ERROR) {
        snprintf(err, errlen, "%s: cannot read: %s", path, zmsg);
        rc = -1;
    }
    gzclose(f);
    if (rc == 0 && R->n < 2) {
        snprintf(err, errlen, "%s: %lld ratings: too few to train on", path, (long long)R->n);
        rc = -1;
    }
    return rc;
}

/* ==== Batches ============================================================ */

/* Distinct keys of a batch: the slot of `key` in keys[0..*n). */
static uint32_t key_slot(pd_keymap *m, uint64_t *keys, uint32_t *n, uint64_t key) {
    int added;
    uint32_t s = pd_keymap_put(m, key, *n, &added);
    if (s != PD_KEYMAP_NONE && added) keys[(*n)++] = key;
    return s;
}

/* Held-out RMSE of the ratings idx[0..n) with the tables' current rows:
 * pulled in chunks, keys repeated as they come. */
static int rmse(paramd_table *tu, paramd_table *ti, const ratings *R, const int64_t *idx,
                int64_t n, int D, double mu, uint64_t *ku, uint64_t *ki, float *U, float *I,
                double *out) {
    double se = 0;
    int E = D + 1;
    for (int64_t s = 0; s < n; s += MF_EVAL_CHUNK) {
        int64_t m = n - s < MF_EVAL_CHUNK ? n - s : MF_EVAL_CHUNK;
        for (int64_t k = 0; k < m; k++) ku[k] = R->user[idx[s + k]], ki[k] = R->item[idx[s + k]];
        if (paramd_sparse_pull(tu, ku, (uint64_t)m, U) || paramd_sparse_pull(ti, ki, (uint64_t)m, I))
            return -1;
        for (int64_t k = 0; k < m; k++) {
            const float *p = U + k * E, *q = I + k * E;
            double y = mu + p[D] + q[D];
            for (int j = 0; j < D; j++) y += (double)p[j] * q[j];
            double e = y - R->r[idx[s + k]];
            se += e * e;
        }
    }
    *out = n ? sqrt(se / n) : NAN;
    return 0;
}

/* ==== The worker ========================================================= */

int pd_mf_worker(const pd_train_cfg *cfg, paramd_client *c, char *err, size_t errlen) {
    int rank = paramd_rank(c), W = paramd_num_workers(c), S = paramd_num_servers(c);
    int nu_ = cfg->users > 0 ? cfg->users : 2000, ni_ = cfg->items > 0 ? cfg->items : 1000;
    int r = cfg->rank > 0 ? cfg->rank : 8;
    double sigma = cfg->noise > 0 ? cfg->noise : 0.1;
    int D = cfg->dim > 0 ? cfg->dim : (cfg->data ? 16 : r), E = D + 1;
    double l2 = cfg->l2 == 0 ? 0.01 : cfg->l2 < 0 ? 0 : cfg->l2;
    int B = cfg->batch;
    int rc = -1;
    ratings R = {0};
    int64_t *train = NULL, *test = NULL, *mine = NULL;
    uint32_t *perm = NULL, *bidx = NULL;
    uint64_t *ku = NULL, *ki = NULL;
    float *U = NULL, *I = NULL, *GU = NULL, *GI = NULL;
    uint32_t *su = NULL, *si = NULL;
    pd_keymap mu_map, mi_map;
    pd_metrics *metrics = NULL;
    paramd_table *tu, *ti;
    pd_keymap_init(&mu_map), pd_keymap_init(&mi_map);

    if (cfg->data) {
        if (read_csv(&R, cfg->data, err, errlen) != 0) goto out;
    } else if (planted(&R, nu_, ni_, r, sigma, cfg->seed) != 0) {
        snprintf(err, errlen, "out of memory for the planted ratings");
        goto out;
    }
    /* split: 1 in 10 held out; the rest dealt round-robin to the ranks */
    train = malloc((size_t)R.n * sizeof *train);
    test = malloc((size_t)R.n * sizeof *test);
    if (!train || !test) goto oom;
    int64_t ntrain = 0, ntest = 0;
    double mu = 0;
    for (int64_t k = 0; k < R.n; k++) {
        if (pd_mix64(cfg->seed * 0x9e3779b97f4a7c15ull ^ pd_mix64((uint64_t)k)) % 10 == 0)
            test[ntest++] = k;
        else
            train[ntrain++] = k, mu += R.r[k];
    }
    if (ntrain < W || ntest == 0) {
        snprintf(err, errlen, "%lld ratings: too few to split into training and test sets "
                 "for %d workers", (long long)R.n, W);
        goto out;
    }
    mu /= (double)ntrain;
    int64_t nmine = 0;
    mine = malloc((size_t)(ntrain / W + 1) * sizeof *mine);
    if (!mine) goto oom;
    for (int64_t k = rank; k < ntrain; k += W) mine[nmine++] = train[k];
    perm = malloc((size_t)nmine * sizeof *perm);
    bidx = malloc((size_t)B * sizeof *bidx);
    size_t rows = (size_t)(B > MF_EVAL_CHUNK ? B : MF_EVAL_CHUNK);
    ku = malloc(rows * sizeof *ku), ki = malloc(rows * sizeof *ki);
    U = malloc(rows * E * sizeof *U), I = malloc(rows * E * sizeof *I);
    GU = malloc((size_t)B * E * sizeof *GU), GI = malloc((size_t)B * E * sizeof *GI);
    su = malloc((size_t)B * sizeof *su), si = malloc((size_t)B * sizeof *si);
    if (!perm || !bidx || !ku || !ki || !U || !I || !GU || !GI || !su || !si ||
        pd_keymap_reserve(&mu_map, (size_t)B) || pd_keymap_reserve(&mi_map, (size_t)B))
        goto oom;

    char spec[700], lrs[64] = "";
    {
        pd_table_def d;
        char rs[600];
        snprintf(rs, sizeof rs, "rule=%s", cfg->rule);
        if (pd_spec_parse(rs, &d, NULL) == 0 && pd_rule_uses_hyper((pd_rule_kind)d.rule, "lr"))
            snprintf(lrs, sizeof lrs, "lr=%.9g ", cfg->lr);
    }
    snprintf(spec, sizeof spec, "%srule=%s consistency=%s aggregate=sum backup=%d "
             "init=normal:0.1 seed=%llu", lrs, cfg->rule, cfg->consistency, cfg->backup,
             (unsigned long long)cfg->seed);
    if (paramd_sparse_open(c, "mf_user", (uint32_t)E, spec, &tu) ||
        paramd_sparse_open(c, "mf_item", (uint32_t)E, spec, &ti)) {
        snprintf(err, errlen, "cannot open the mf tables: %s", paramd_last_error(c));
        goto out;
    }
    /* the baseline: predict mu for every held-out rating */
    double base = 0;
    for (int64_t k = 0; k < ntest; k++) base += (R.r[test[k]] - mu) * (R.r[test[k]] - mu);
    base = sqrt(base / ntest);

    int64_t spe = (ntrain + (int64_t)W * B - 1) / ((int64_t)W * B);
    int64_t total = cfg->steps > 0 ? cfg->steps : spe * cfg->epochs;
    int64_t every = cfg->eval_every > 0 ? cfg->eval_every : (total / 20 > 0 ? total / 20 : 1);
    if (rank == 0) {
        printf("paramd train: mf, %d factors + biases, l2 %g, %s, %d worker%s x batch %d, "
               "%d server%s, rule %s lr %.4g\n",
               D, l2, cfg->consistency, W, W > 1 ? "s" : "", B, S, S > 1 ? "s" : "",
               cfg->rule, cfg->lr);
        if (cfg->data)
            printf("data: %s: %lld ratings (%lld training, %lld held out), mean %.4f; ",
                   cfg->data, (long long)R.n, (long long)ntrain, (long long)ntest, mu);
        else
            printf("data: planted %d users x %d items, rank %d, noise sigma %g: %lld ratings "
                   "(%lld training, %lld held out); ", nu_, ni_, r, sigma, (long long)R.n,
                   (long long)ntrain, (long long)ntest);
        printf("%lld steps per worker (%.2f epochs)\n", (long long)total, (double)total / spe);
        fflush(stdout);
        if (cfg->out && pd_metrics_open(&metrics, cfg->out, err, errlen) != 0) goto out;
    }

    double t0 = pd_now(), se_sum = 0, eval_s = 0;
    int64_t se_n = 0, perm_epoch = -1;
    for (int64_t step = 0; step < total; step++) {
        pd_train_batch(cfg->seed, rank, step, spe, (uint32_t)nmine, B, perm, &perm_epoch, bidx);
        uint32_t nu = 0, ni = 0;
        pd_keymap_clear(&mu_map), pd_keymap_clear(&mi_map);
        for (int b = 0; b < B; b++) {
            int64_t k = mine[bidx[b]];
            su[b] = key_slot(&mu_map, ku, &nu, R.user[k]);
            si[b] = key_slot(&mi_map, ki, &ni, R.item[k]);
        }
        if (paramd_sparse_pull(tu, ku, nu, U) || paramd_sparse_pull(ti, ki, ni, I)) {
            snprintf(err, errlen, "pull at step %lld: %s", (long long)step, paramd_last_error(c));
            goto out;
        }
        memset(GU, 0, (size_t)nu * E * sizeof *GU);
        memset(GI, 0, (size_t)ni * E * sizeof *GI);
        for (int b = 0; b < B; b++) {
            const float *p = U + (size_t)su[b] * E, *q = I + (size_t)si[b] * E;
            float *gp = GU + (size_t)su[b] * E, *gq = GI + (size_t)si[b] * E;
            double y = mu + p[D] + q[D];
            for (int j = 0; j < D; j++) y += (double)p[j] * q[j];
            float e = (float)(y - R.r[mine[bidx[b]]]);
            for (int j = 0; j < D; j++) {
                gp[j] += e * q[j] + (float)l2 * p[j];
                gq[j] += e * p[j] + (float)l2 * q[j];
            }
            gp[D] += e, gq[D] += e;
            se_sum += (double)e * e, se_n++;
        }
        if (paramd_sparse_push(tu, ku, nu, GU) || paramd_sparse_push(ti, ki, ni, GI)) {
            snprintf(err, errlen, "push at step %lld: %s", (long long)step, paramd_last_error(c));
            goto out;
        }
        paramd_clock(c);
        if (rank == 0 && (step + 1) % every == 0 && step + 1 < total) {
            double te = pd_now(), tr = sqrt(se_sum / (se_n ? se_n : 1)), ts;
            if (rmse(tu, ti, &R, test, ntest, D, mu, ku, ki, U, I, &ts)) {
                snprintf(err, errlen, "evaluation pull: %s", paramd_last_error(c));
                goto out;
            }
            eval_s += pd_now() - te;
            pd_metric_row row = {pd_now() - t0, step + 1, (double)(step + 1) / spe,
                                 (step + 1) * W * (int64_t)B, tr, ts, NAN, 0, 0};
            if (metrics && pd_metrics_append(metrics, &row) != 0) {
                snprintf(err, errlen, "%s", pd_metrics_last_error(metrics));
                goto out;
            }
            if (!cfg->quiet)
                printf("step %lld  epoch %.2f  train rmse %.4f  test rmse %.4f\n",
                       (long long)(step + 1), row.epoch, tr, ts);
            fflush(stdout);
            se_sum = 0, se_n = 0;
        }
    }
    if (paramd_barrier(c)) {
        snprintf(err, errlen, "final barrier: %s", paramd_last_error(c));
        goto out;
    }
    if (rank == 0) {
        double wall = pd_now() - t0, ts;
        if (rmse(tu, ti, &R, test, ntest, D, mu, ku, ki, U, I, &ts)) {
            snprintf(err, errlen, "final evaluation pull: %s", paramd_last_error(c));
            goto out;
        }
        double tr = se_n ? sqrt(se_sum / se_n) : NAN;
        pd_metric_row row = {wall, total, (double)total / spe, total * W * (int64_t)B, tr,
                             ts, NAN, 0, 1};
        if (metrics && pd_metrics_append(metrics, &row) != 0) {
            snprintf(err, errlen, "%s", pd_metrics_last_error(metrics));
            goto out;
        }
        char floor[64] = "unknown (real data)";
        if (!cfg->data) snprintf(floor, sizeof floor, "%.4f", sigma);
        double train_s = wall - eval_s > 0 ? wall - eval_s : wall;
        printf("final: test RMSE %.4f  noise floor (sigma) %s  predicting the mean %.4f  "
               "wall %.1f s  %.0f ratings/s\n",
               ts, floor, base, wall, train_s > 0 ? (double)total * W * B / train_s : 0);
        if (cfg->out) {
            char json[1024];
            snprintf(json, sizeof json,
                     "{\"label\": \"mf %s W=%d\", \"model\": \"mf\", \"consistency\": \"%s\", "
                     "\"workers\": %d, \"servers\": %d, \"batch\": %d, \"dim\": %d, "
                     "\"rule\": \"%s\", \"lr\": %.9g, \"l2\": %.9g, \"steps\": %lld, "
                     "\"ratings\": %lld, \"test_rmse\": %.6f, \"mean_rmse\": %.6f, "
                     "\"noise\": %.9g, \"wall_s\": %.3f}\n",
                     cfg->consistency, W, cfg->consistency, W, S, B, D, cfg->rule, cfg->lr, l2,
                     (long long)total, (long long)R.n, ts, base, cfg->data ? 0.0 : sigma, wall);
            if (pd_metrics_finish_run(&metrics, cfg->out, json, err, errlen) != 0) goto out;
        }
        fflush(stdout);
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    pd_metrics_close(metrics);
    free_ratings(&R);
    free(train), free(test), free(mine), free(perm), free(bidx), free(ku), free(ki);
    free(U), free(I), free(GU), free(GI), free(su), free(si);
    pd_keymap_free(&mu_map), pd_keymap_free(&mi_map);
    return rc;
}
