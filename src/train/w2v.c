/*
 * w2v.c - word2vec (skip-gram with negative sampling) as a paramd workload.
 *
 * Tables.  Two sparse tables keyed by word id (the word's rank in the
 * vocabulary, most frequent first): "w2v_in" holds the input vectors
 * (init uniform in [-0.5/D, 0.5/D), as word2vec does) and "w2v_out" the
 * output vectors (init zeros).  The server applies the update rule
 * (adagrad by default) with its per-row state.
 *
 * Data.  Every worker reads the whole corpus (a file or a directory of
 * files, plain or gzip) and builds the same vocabulary from it: words are
 * runs of ASCII letters and digits, apostrophes and any byte >= 0x80 (so
 * UTF-8 words stay whole), ASCII lowercased; a line end ends a sentence
 * (context windows never cross it); words seen fewer than min_count times
 * are dropped.  The token stream is cut into W contiguous shares, one per
 * rank.
 *
 * A step, on each worker (B = batch center positions of its share):
 *   for each center c (kept by frequent-word subsampling, decided by a hash
 *   of (seed, epoch, position) so that a token is kept or dropped the same
 *   way as a center and as a context), a window b in [1, window]; every
 *   kept context o within b positions in the same sentence gives a pair:
 *       loss = -log s(u_o . v_c) - sum_k log s(-u_nk . v_c)
 *   with K negatives n_k drawn from unigram^0.75.  Shapes: v_c, u_o are
 *   (D); the batch's distinct input keys (nin) and output keys (nout) are
 *   pulled once each: vin (nin, D), uout (nout, D); gradients gin, gout of
 *   the same shapes are summed over the batch's pairs and pushed once per
 *   table; then clock++.
 * sync uses aggregate=sum, so a step is one step on the union of the W
 * batches; the learning rate is not scaled by W.
 *
 * At the end worker 0 pulls the input vectors of the most frequent words
 * (up to 20,000) and prints the cosine nearest neighbours of a few words.
 *
 * Cost per step: about B * 2 * window * (K + 1) dot products of D, and two
 * pulls and two pushes of at most B * window * (K + 1) rows.
 */
#include "train/w2v.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/common.h"
#include "common/hash.h"
#include "common/keymap.h"
#include "train/metrics.h"
#include "table/spec.h"

#define W2V_MAX_WORD 64         /* longer runs are cut (still one word) */
#define W2V_BREAK UINT32_MAX    /* sentence end in the token stream */
#define W2V_NN_WORDS 20000      /* neighbours are searched among these */
#define W2V_NN_SHOW 5

/* ==== Vocabulary and corpus ============================================= */

typedef struct vocab {
    char **word;      /* nwords, owned */
    int64_t *count;   /* nwords */
    uint32_t n, cap;
    pd_keymap map;    /* FNV-1a hash of the word -> index */
} vocab;

typedef struct corpus {
    vocab v;
    uint32_t *tok;    /* word ids and W2V_BREAK */
    int64_t ntok, cap;
    int64_t nwords;   /* tokens that are words (not breaks) */
} corpus;

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}

static int push_tok(corpus *C, uint32_t t) {
    if (t == W2V_BREAK && (C->ntok == 0 || C->tok[C->ntok - 1] == W2V_BREAK)) return 0;
    if (C->ntok == C->cap) {
        int64_t nc = C->cap ? C->cap * 2 : 1 << 16;
        uint32_t *p = realloc(C->tok, (size_t)nc * sizeof *p);
        if (!p) return -1;
        C->tok = p, C->cap = nc;
    }
    C->tok[C->ntok++] = t;
    if (t != W2V_BREAK) C->nwords++;
    return 0;
}

static int add_word(corpus *C, const char *w, size_t n) {
    vocab *v = &C->v;
    int added;
    uint32_t id = pd_keymap_put(&v->map, fnv1a(w, n), v->n, &added);
    if (id == PD_KEYMAP_NONE) return -1;
    if (added) {
        if (v->n == v->cap) {
            uint32_t nc = v->cap ? v->cap * 2 : 4096;
            char **pw = realloc(v->word, nc * sizeof *pw);
            if (!pw) return -1;
            v->word = pw;
            int64_t *pc = realloc(v->count, nc * sizeof *pc);
            if (!pc) return -1;
            v->count = pc, v->cap = nc;
        }
        char *s = malloc(n + 1);
        if (!s) return -1;
        memcpy(s, w, n), s[n] = '\0';
        v->word[v->n] = s, v->count[v->n] = 0, v->n++;
    }
    v->count[id]++;
    return push_tok(C, id);
}

static int is_word_byte(unsigned char b) {
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
           b == '\'' || b >= 0x80;
}

/* Tokenize one file (plain or gzip: zlib reads both) into C. */
static int read_text(corpus *C, const char *path, char *err, size_t errlen) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : ENOENT));
        return -1;
    }
    char buf[1 << 16], w[W2V_MAX_WORD];
    size_t wn = 0;
    int n, rc = 0;
    while (rc == 0 && (n = gzread(f, buf, sizeof buf)) > 0) {
        for (int i = 0; i < n && rc == 0; i++) {
            unsigned char b = (unsigned char)buf[i];
            if (is_word_byte(b)) {
                if (wn < sizeof w) w[wn++] = (char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
                continue;
            }
            /* trim apostrophes: "'tis" -> "tis", "dogs'" -> "dogs" */
            size_t s = 0;
            while (s < wn && w[s] == '\'') s++;
            while (wn > s && w[wn - 1] == '\'') wn--;
            if (wn > s) rc = add_word(C, w + s, wn - s);
            wn = 0;
            if (rc == 0 && b == '\n') rc = push_tok(C, W2V_BREAK);
        }
    }
    int zerr;
    const char *zmsg = gzerror(f, &zerr);
    if (rc == 0 && n < 0) {
        snprintf(err, errlen, "%s: cannot read: %s", path, zmsg);
        rc = -1;
    } else if (rc == 0 && wn > 0) {
        rc = add_word(C, w, wn);
    } else if (rc) {
        snprintf(err, errlen, "out of memory reading %s", path);
    }
    gzclose(f);
    if (rc == 0) rc = push_tok(C, W2V_BREAK);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read a file, or every regular file of a directory (sorted by name;
 * hidden files and fortune's .dat index files skipped). */
static int read_corpus(corpus *C, const char *path, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s%s", path, strerror(errno),
                 strcmp(path, PD_W2V_DEFAULT_DATA) == 0
                     ? " (apt-get install fortunes, or give --data FILE)" : "");
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) return read_text(C, path, err, errlen);
    DIR *d = opendir(path);
    if (!d) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || (l > 4 && strcmp(e->d_name + l - 4, ".dat") == 0)) continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (lstat(full, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) { rc = -1; break; }
            names = p;
        }
        if (!(names[nn] = strdup(full))) rc = -1;
        else nn++;
    }
    closedir(d);
    if (rc) snprintf(err, errlen, "out of memory listing %s", path);
    if (rc == 0 && nn == 0) {
        snprintf(err, errlen, "%s: no text files in this directory", path);
        rc = -1;
    }
    if (nn) qsort(names, nn, sizeof *names, cmp_str);
    for (size_t i = 0; i < nn && rc == 0; i++) rc = read_text(C, names[i], err, errlen);
    for (size_t i = 0; i < nn; i++) free(names[i]);
    free(names);
    return rc;
}

static const vocab *sort_vocab_;
static int cmp_ids(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    const vocab *v = sort_vocab_;
    if (v->count[x] != v->count[y]) return v->count[x] > v->count[y] ? -1 : 1;
    return strcmp(v->word[x], v->word[y]);
}

/* Renumber words by falling count (ties by bytes), drop those under
 * min_count, rewrite the token stream.  Deterministic: every worker gets
 * the same ids. */
static int prune_vocab(corpus *C, int64_t min_count) {
    vocab *v = &C->v;
    uint32_t *order = malloc((size_t)v->n * sizeof *order + 1);
    uint32_t *newid = malloc((size_t)v->n * sizeof *newid + 1);
    if (!order || !newid) {
        free(order), free(newid);
        return -1;
    }
    for (uint32_t i = 0; i < v->n; i++) order[i] = i;
    sort_vocab_ = v; /* qsort has no context argument; single-threaded here */
    qsort(order, v->n, sizeof *order, cmp_ids);
    uint32_t kept = 0;
    while (kept < v->n && v->count[order[kept]] >= min_count) kept++;
    for (uint32_t i = 0; i < v->n; i++) newid[order[i]] = i < kept ? i : W2V_BREAK;
    char **w = malloc(((size_t)kept + 1) * sizeof *w);
    int64_t *cnt = malloc(((size_t)kept + 1) * sizeof *cnt);
    if (!w || !cnt) {
        free(order), free(newid), free(w), free(cnt);
        return -1;
    }
    for (uint32_t i = 0; i < v->n; i++) {
        if (i < kept) w[i] = v->word[order[i]], cnt[i] = v->count[order[i]];
        else free(v->word[order[i]]);
    }
    free(v->word), free(v->count);
    v->word = w, v->count = cnt, v->n = v->cap = kept;
    /* dropped words vanish from the stream (their neighbours close up, as
     * in word2vec); breaks stay */
    int64_t j = 0;
    C->nwords = 0;
    for (int64_t i = 0; i < C->ntok; i++) {
        uint32_t t = C->tok[i];
        if (t != W2V_BREAK) {
            t = newid[t];
            if (t == W2V_BREAK) continue;
            C->nwords++;
        } else if (j == 0 || C->tok[j - 1] == W2V_BREAK) {
            continue;
        }
        C->tok[j++] = t;
    }
    C->ntok = j;
    pd_keymap_free(&v->map); /* ids changed; lookups below go by string */
    free(order), free(newid);
    return 0;
}

static void free_corpus(corpus *C) {
    for (uint32_t i = 0; i < C->v.n; i++) free(C->v.word[i]);
    free(C->v.word), free(C->v.count), free(C->tok);
    pd_keymap_free(&C->v.map);
}

/* ==== Sampling =========================================================== */

static uint64_t rng_next(uint64_t *s) {
    *s += PD_GOLDEN64;
    return pd_mix64(*s);
}
static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1p-53; }

/* Negative sampling: cumulative unigram^0.75 over the vocabulary. */
static uint32_t draw_negative(const double *cum, uint32_t n, uint64_t *rng) {
    double r = rng_unit(rng) * cum[n - 1];
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > r) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* Subsampling of frequent words (word2vec's formula with threshold t):
 * is the token at `pos` kept in `epoch`? */
static int kept(const float *keep, const uint32_t *tok, int64_t pos, uint64_t seed,
                int64_t epoch) {
    float p = keep[tok[pos]];
    if (p >= 1) return 1;
    uint64_t h = pd_mix64(seed ^ pd_mix64((uint64_t)pos * 0x9e3779b1u + (uint64_t)epoch));
    return (float)((double)(h >> 11) * 0x1p-53) < p;
}

/* Distinct keys of a batch: slot of each key in the pulled rows. */
static uint32_t key_slot(pd_keymap *m, uint64_t **keys, uint32_t *n, uint32_t *cap,
                         uint64_t key) {
    int added;
    uint32_t s = pd_keymap_put(m, key, *n, &added);
    if (s == PD_KEYMAP_NONE) return s;
    if (added) {
        if (*n == *cap) {
            uint32_t nc = *cap ? *cap * 2 : 1024;
            uint64_t *p = realloc(*keys, nc * sizeof *p);
            if (!p) return PD_KEYMAP_NONE;
            *keys = p, *cap = nc;
        }
        (*keys)[(*n)++] = key;
    }
    return s;
}

static float sigmoidf(float x) {
    if (x > 30) return 1;
    if (x < -30) return 0;
    return 1 / (1 + expf(-x));
}

/* ==== Neighbours (worker 0, at the end) ================================== */

static int print_neighbours(const pd_train_cfg *cfg, paramd_table *tin, const corpus *C,
                            int D, char *err, size_t errlen) {
    uint32_t n = C->v.n < W2V_NN_WORDS ? C->v.n : W2V_NN_WORDS;
    float *E = malloc((size_t)n * D * sizeof *E + 1);
    uint64_t *keys = malloc((size_t)n * sizeof *keys + 1);
    if (!E || !keys) {
        free(E), free(keys);
        snprintf(err, errlen, "out of memory for the neighbours");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) keys[i] = i;
    for (uint32_t i = 0; i < n; i += 4096) {
        uint32_t k = n - i < 4096 ? n - i : 4096;
        if (paramd_sparse_pull(tin, keys + i, k, E + (size_t)i * D)) {
            snprintf(err, errlen, "pull of the final vectors failed");
            free(E), free(keys);
            return -1;
        }
    }
    for (uint32_t i = 0; i < n; i++) { /* E (n, D) rows normalised */
        double s = 0;
        for (int j = 0; j < D; j++) s += (double)E[(size_t)i * D + j] * E[(size_t)i * D + j];
        float inv = s > 0 ? (float)(1 / sqrt(s)) : 0;
        for (int j = 0; j < D; j++) E[(size_t)i * D + j] *= inv;
    }
    /* the queries: --neighbours, else common words the corpus has, else
     * its most frequent words past the first 20 */
    static const char *dflt[] = {"man", "love", "time", "life", "god", "world", "money",
                                 "computer", "woman", "war"};
    char buf[1024];
    const char *q[16];
    int nq = 0;
    if (cfg->neighbours) {
        snprintf(buf, sizeof buf, "%s", cfg->neighbours);
        for (char *t = strtok(buf, ", "); t && nq < 16; t = strtok(NULL, ", ")) q[nq++] = t;
    } else {
        for (size_t i = 0; i < sizeof dflt / sizeof *dflt && nq < 6; i++)
            for (uint32_t j = 0; j < n; j++)
                if (strcmp(C->v.word[j], dflt[i]) == 0) { q[nq++] = dflt[i]; break; }
        for (uint32_t j = 20; nq < 4 && j < n; j += 7) q[nq++] = C->v.word[j];
    }
    for (int a = 0; a < nq; a++) {
        uint32_t w = UINT32_MAX;
        for (uint32_t j = 0; j < n; j++)
            if (strcmp(C->v.word[j], q[a]) == 0) { w = j; break; }
        if (w == UINT32_MAX) {
            printf("neighbours of '%s': not among the %u most frequent words\n", q[a], n);
            continue;
        }
        uint32_t best[W2V_NN_SHOW];
        float bs[W2V_NN_SHOW];
        int nb = 0;
        for (uint32_t j = 0; j < n; j++) {
            if (j == w) continue;
            float s = 0;
            for (int k = 0; k < D; k++) s += E[(size_t)w * D + k] * E[(size_t)j * D + k];
            if (nb == W2V_NN_SHOW && s <= bs[nb - 1]) continue;
            int p = nb < W2V_NN_SHOW ? nb++ : nb - 1;
            while (p > 0 && bs[p - 1] < s) bs[p] = bs[p - 1], best[p] = best[p - 1], p--;
            bs[p] = s, best[p] = j;
        }
        printf("neighbours of '%s':", q[a]);
        for (int k = 0; k < nb; k++) printf(" %s %.3f%s", C->v.word[best[k]], bs[k], k + 1 < nb ? "," : "");
        printf("\n");
    }
    free(E), free(keys);
    return 0;
}

/* ==== The worker ========================================================= */

int pd_w2v_worker(const pd_train_cfg *cfg, paramd_client *c, char *err, size_t errlen) {
    int rank = paramd_rank(c), W = paramd_num_workers(c), S = paramd_num_servers(c);
    int D = cfg->dim > 0 ? cfg->dim : 64;
    int win = cfg->window > 0 ? cfg->window : 5;
    int K = cfg->negatives > 0 ? cfg->negatives : 5;
    int64_t min_count = cfg->min_count > 0 ? cfg->min_count : 5;
    double t_sub = cfg->subsample == 0 ? 1e-3 : cfg->subsample;
    const char *path = cfg->data ? cfg->data : PD_W2V_DEFAULT_DATA;
    int B = cfg->batch;
    int rc = -1;
    corpus C = {0};
    double *cum = NULL;
    float *keep = NULL, *vin = NULL, *uout = NULL, *gin = NULL, *gout = NULL;
    uint64_t *kin = NULL, *kout = NULL;
    uint32_t nin = 0, nout = 0, capin = 0, capout = 0;
    uint32_t *pairs = NULL; /* (center slot, context word) */
    pd_keymap min_, mout;
    pd_metrics *metrics = NULL;
    paramd_table *tin, *tout;
    pd_keymap_init(&min_), pd_keymap_init(&mout);
    pd_keymap_init(&C.v.map);

    double t_load = pd_now();
    if (read_corpus(&C, path, err, errlen) != 0) goto out;
    if (prune_vocab(&C, min_count) != 0) {
        snprintf(err, errlen, "out of memory for the vocabulary");
        goto out;
    }
    if (C.v.n < 2 || C.nwords < 2) {
        snprintf(err, errlen, "%s: %u words seen at least %lld times: too few to train on "
                 "(lower --min-count or give more text)", path, C.v.n, (long long)min_count);
        goto out;
    }
    uint32_t V = C.v.n;
    cum = malloc((size_t)V * sizeof *cum);
    keep = malloc((size_t)V * sizeof *keep);
    size_t maxpairs = (size_t)B * 2 * win;
    pairs = malloc(maxpairs * 2 * sizeof *pairs);
    if (!cum || !keep || !pairs) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    double acc = 0;
    for (uint32_t i = 0; i < V; i++) {
        acc += pow((double)C.v.count[i], 0.75);
        cum[i] = acc;
        double f = (double)C.v.count[i] / (double)C.nwords;
        keep[i] = t_sub > 0 ? (float)((sqrt(f / t_sub) + 1) * t_sub / f) : 1.0f;
    }

    /* --lr goes first so that an lr inside --rule wins (as in trainer.c) */
    char spec[700], lrs[64] = "";
    {
        pd_table_def d;
        char rs[600];
        snprintf(rs, sizeof rs, "rule=%s", cfg->rule);
        if (pd_spec_parse(rs, &d, NULL) == 0 && pd_rule_uses_hyper((pd_rule_kind)d.rule, "lr"))
            snprintf(lrs, sizeof lrs, "lr=%.9g ", cfg->lr);
    }
    snprintf(spec, sizeof spec, "%srule=%s consistency=%s aggregate=sum backup=%d "
             "init=uniform:%.9g seed=%llu", lrs, cfg->rule, cfg->consistency,
             cfg->backup, 0.5 / D, (unsigned long long)cfg->seed);
    if (paramd_sparse_open(c, "w2v_in", (uint32_t)D, spec, &tin)) {
        snprintf(err, errlen, "cannot open table w2v_in: %s", paramd_last_error(c));
        goto out;
    }
    snprintf(spec, sizeof spec, "%srule=%s consistency=%s aggregate=sum backup=%d "
             "init=zeros seed=%llu", lrs, cfg->rule, cfg->consistency, cfg->backup,
             (unsigned long long)cfg->seed);
    if (paramd_sparse_open(c, "w2v_out", (uint32_t)D, spec, &tout)) {
        snprintf(err, errlen, "cannot open table w2v_out: %s", paramd_last_error(c));
        goto out;
    }

    /* this rank's share of the stream: [lo, hi) */
    int64_t lo = C.ntok * rank / W, hi = C.ntok * (rank + 1) / W;
    int64_t share = hi - lo > 0 ? hi - lo : 1;
    int64_t spe = (C.ntok + (int64_t)W * B - 1) / ((int64_t)W * B);
    int64_t total = cfg->steps > 0 ? cfg->steps : spe * cfg->epochs;
    int64_t every = cfg->eval_every > 0 ? cfg->eval_every : (total / 20 > 0 ? total / 20 : 1);
    if (rank == 0) {
        printf("paramd train: word2vec skip-gram, dim %d, window %d, %d negatives, %s, "
               "%d worker%s x batch %d, %d server%s, rule %s lr %.4g\n",
               D, win, K, cfg->consistency, W, W > 1 ? "s" : "", B, S, S > 1 ? "s" : "",
               cfg->rule, cfg->lr);
        printf("data: %s: %lld words, vocabulary %u (min count %lld), subsample %g; "
               "%lld steps per worker (%.2f epochs); read in %.1f s\n",
               path, (long long)C.nwords, V, (long long)min_count, t_sub > 0 ? t_sub : 0,
               (long long)total, (double)total / spe, pd_now() - t_load);
        fflush(stdout);
        if (cfg->out && pd_metrics_open(&metrics, cfg->out, err, errlen) != 0) goto out;
    }

    uint64_t rng = pd_mix64(cfg->seed * 0x2545f4914f6cdd1dull + (uint64_t)rank + 1);
    double t0 = pd_now(), loss_sum = 0, loss_all = 0;
    int64_t loss_n = 0, pairs_all = 0;
    for (int64_t step = 0; step < total; step++) {
        int64_t epoch = step / spe;
        /* 1. the batch's pairs and distinct keys */
        size_t np = 0;
        nin = nout = 0;
        pd_keymap_clear(&min_), pd_keymap_clear(&mout);
        for (int b = 0; b < B; b++) {
            int64_t pos = lo + (int64_t)(((step % spe) * B + b) % share);
            if (pos >= C.ntok) continue;
            uint32_t w = C.tok[pos];
            if (w == W2V_BREAK || !kept(keep, C.tok, pos, cfg->seed, epoch)) continue;
            int wb = 1 + (int)(rng_next(&rng) % (uint64_t)win);
            uint32_t sc = PD_KEYMAP_NONE;
            for (int dir = -1; dir <= 1; dir += 2)
                for (int d = 1; d <= wb; d++) {
                    int64_t p = pos + dir * d;
                    if (p < 0 || p >= C.ntok || C.tok[p] == W2V_BREAK) break;
                    if (!kept(keep, C.tok, p, cfg->seed, epoch)) continue;
                    if (sc == PD_KEYMAP_NONE)
                        sc = key_slot(&min_, &kin, &nin, &capin, w);
                    if (sc == PD_KEYMAP_NONE) goto oom;
                    pairs[2 * np] = sc, pairs[2 * np + 1] = C.tok[p];
                    np++;
                }
        }
        /* output keys: the contexts and K negatives per pair, slots in
         * negs (np, K+1): column 0 the context, then the negatives */
        uint32_t *slots = malloc(np * (size_t)(K + 1) * sizeof *slots + 1);
        if (!slots) goto oom;
        for (size_t i = 0; i < np; i++) {
            uint32_t o = pairs[2 * i + 1];
            slots[i * (K + 1)] = key_slot(&mout, &kout, &nout, &capout, o);
            for (int k = 1; k <= K; k++) {
                uint32_t ng = draw_negative(cum, V, &rng);
                slots[i * (K + 1) + k] = ng == o ? PD_KEYMAP_NONE - 1
                                                 : key_slot(&mout, &kout, &nout, &capout, ng);
            }
            for (int k = 0; k <= K; k++)
                if (slots[i * (K + 1) + k] == PD_KEYMAP_NONE) {
                    free(slots);
                    goto oom;
                }
        }
        float *p1 = realloc(vin, ((size_t)nin * D + 1) * sizeof *vin);
        if (p1) vin = p1;
        float *p2 = realloc(gin, ((size_t)nin * D + 1) * sizeof *gin);
        if (p2) gin = p2;
        float *p3 = realloc(uout, ((size_t)nout * D + 1) * sizeof *uout);
        if (p3) uout = p3;
        float *p4 = realloc(gout, ((size_t)nout * D + 1) * sizeof *gout);
        if (p4) gout = p4;
        if (!p1 || !p2 || !p3 || !p4) {
            free(slots);
            goto oom;
        }
        /* 2. pull, 3. gradients, 4. push */
        if (paramd_sparse_pull(tin, kin, nin, vin) || paramd_sparse_pull(tout, kout, nout, uout)) {
            snprintf(err, errlen, "pull at step %lld: %s", (long long)step, paramd_last_error(c));
            free(slots);
            goto out;
        }
        memset(gin, 0, (size_t)nin * D * sizeof *gin);
        memset(gout, 0, (size_t)nout * D * sizeof *gout);
        double loss = 0;
        for (size_t i = 0; i < np; i++) {
            const float *v = vin + (size_t)pairs[2 * i] * D;
            float *gv = gin + (size_t)pairs[2 * i] * D;
            for (int k = 0; k <= K; k++) {
                uint32_t s = slots[i * (K + 1) + k];
                if (s == PD_KEYMAP_NONE - 1) continue; /* negative == context */
                const float *u = uout + (size_t)s * D;
                float *gu = gout + (size_t)s * D, dot = 0;
                for (int j = 0; j < D; j++) dot += u[j] * v[j];
                float sg = sigmoidf(dot), g = sg - (k == 0 ? 1.0f : 0.0f);
                loss -= log(fmax(k == 0 ? sg : 1 - sg, 1e-7));
                for (int j = 0; j < D; j++) gv[j] += g * u[j], gu[j] += g * v[j];
            }
        }
        free(slots);
        if (paramd_sparse_push(tin, kin, nin, gin) || paramd_sparse_push(tout, kout, nout, gout)) {
            snprintf(err, errlen, "push at step %lld: %s", (long long)step, paramd_last_error(c));
            goto out;
        }
        paramd_clock(c);
        if (np) {
            loss_sum += loss / np, loss_n++;
            loss_all += loss, pairs_all += (int64_t)np;
        }
        if (rank == 0 && ((step + 1) % every == 0 || step + 1 == total)) {
            double el = pd_now() - t0, lm = loss_n ? loss_sum / loss_n : NAN;
            pd_metric_row row = {el, step + 1, (double)(step + 1) / spe,
                                 (step + 1) * W * (int64_t)B, lm, NAN, NAN, 0, 0};
            if (metrics && pd_metrics_append(metrics, &row) != 0) {
                snprintf(err, errlen, "%s", pd_metrics_last_error(metrics));
                goto out;
            }
            if (!cfg->quiet)
                printf("step %lld  epoch %.2f  loss %.4f  %.0f words/s\n", (long long)(step + 1),
                       row.epoch, lm, el > 0 ? row.samples / el : 0);
            fflush(stdout);
            loss_sum = 0, loss_n = 0;
        }
    }
    if (paramd_barrier(c)) {
        snprintf(err, errlen, "final barrier: %s", paramd_last_error(c));
        goto out;
    }
    if (rank == 0) {
        double wall = pd_now() - t0;
        printf("final: loss %.4f (worker 0, per pair, whole run)  wall %.1f s  %.0f words/s  "
               "%lld pairs on worker 0\n",
               pairs_all ? loss_all / pairs_all : NAN, wall,
               wall > 0 ? (double)total * W * B / wall : 0, (long long)pairs_all);
        if (print_neighbours(cfg, tin, &C, D, err, errlen) != 0) goto out;
        if (cfg->out) {
            char json[1024];
            snprintf(json, sizeof json,
                     "{\"label\": \"word2vec %s W=%d\", \"model\": \"word2vec\", "
                     "\"consistency\": \"%s\", \"workers\": %d, \"servers\": %d, "
                     "\"batch\": %d, \"dim\": %d, \"window\": %d, \"negatives\": %d, "
                     "\"rule\": \"%s\", \"lr\": %.9g, \"steps\": %lld, \"vocab\": %u, "
                     "\"words\": %lld, \"loss\": %.6f, \"wall_s\": %.3f}\n",
                     cfg->consistency, W, cfg->consistency, W, S, B, D, win, K, cfg->rule,
                     cfg->lr, (long long)total, V, (long long)C.nwords,
                     pairs_all ? loss_all / pairs_all : 0.0, wall);
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
    free_corpus(&C);
    pd_keymap_free(&min_), pd_keymap_free(&mout);
    free(cum), free(keep), free(pairs), free(vin), free(uout), free(gin), free(gout);
    free(kin), free(kout);
    return rc;
}
