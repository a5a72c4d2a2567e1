/*
 * tool_role.c - a worker for tests/it_sparse.sh (not a test by itself): a
 * tool client (paramd_connect's role=tool) beside a worker, the calls made
 * for tools (paramd_server_stats, paramd_server_address, paramd_map_epoch),
 * and paramd_last_error read from one thread while another fails.
 *
 *   tool_role          (paramd local, 2 servers, 1 worker)
 *     1. The worker opens the dense table "w" (id 1) and the sparse table
 *        "emb" (id 2) and pushes to both.
 *     2. A tool client connects in the same process: rank -1, the
 *        worker's S, W, map epoch and server addresses.
 *     3. paramd_server_stats: each server's text has its header line and
 *        one line per table; table 2 alone leaves table 1 out; the pushes
 *        of table 1 summed over the servers' texts equal
 *        paramd_table_stat's; a small buffer gets a cut, NUL-terminated
 *        text and PARAMD_ETOOBIG; a bad server, table or buffer is
 *        PARAMD_EINVAL.
 *     4. The tool is refused, with PARAMD_EWORKER and a message naming
 *        role=tool: paramd_table_open, paramd_sparse_open, paramd_barrier,
 *        and pushes (blocking, async, sparse) through table handles from
 *        pd_client_table_attach.  Nothing reached the servers: their push
 *        and rejection counters did not move.  A pull through the same
 *        handle returns the worker's values, so the handle works and the
 *        refusal is the library's.
 *     5. Bad options: role=bogus, role=tool with rank=, role=tool with
 *        transport=shm.
 *     6. paramd_close of the tool returns 0: it sent no BYE (the
 *        coordinator answers a BYE from a connection that never
 *        registered with an error); the worker goes on pushing.
 *     7. paramd_last_error: a second thread reads the worker's last error
 *        while this one fails calls with two different messages, over and
 *        over: every text it gets is whole (one of the two), and stays
 *        unchanged while it looks at it.
 *   Prints "role ok" and exits 0, else a message and 1.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "client/client_internal.h"
#include "paramd.h"

#define N 1000 /* floats of table "w" */
#define DIM 8  /* floats of a row of "emb" */

#define MUST(c, call)                                                          \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_) CHECK_FAIL_("%s -> %s: %s", #call, paramd_err_name(rc_),      \
                             paramd_last_error(c));                            \
    } while (0)

/* call must fail with code, and the client's message contain `part`. */
#define MUST_FAIL(c, code, part, call)                                         \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ != (code))                                                     \
            CHECK_FAIL_("%s -> %s, expected %s", #call, paramd_err_name(rc_),  \
                        paramd_err_name(code));                                \
        if (!strstr(paramd_last_error(c), (part)))                             \
            CHECK_FAIL_("%s: message \"%s\" does not say \"%s\"", #call,       \
                        paramd_last_error(c), (part));                         \
    } while (0)

/* Counter `name` of table `id` in a STATS text; exits if it is missing. */
static unsigned long long counter(const char *text, unsigned id, const char *name) {
    char head[32], key[64];
    snprintf(head, sizeof head, "table %u ", id);
    snprintf(key, sizeof key, " %s ", name);
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (!strncmp(line, head, strlen(head))) {
            char buf[2048];
            snprintf(buf, sizeof buf, "%.*s ", (int)len, line);
            const char *at = strstr(buf, key);
            unsigned long long v;
            if (!at || sscanf(at + strlen(key), "%llu", &v) != 1)
                CHECK_FAIL_("no counter '%s' in \"%s\"", name, buf);
            return v;
        }
        line = nl ? nl + 1 : NULL;
    }
    CHECK_FAIL_("no line for table %u in:\n%s", id, text);
}

/* Counter `name` of table `id` summed over every server, from the tool. */
static unsigned long long total(paramd_client *tool, unsigned id, const char *name) {
    static char text[PARAMD_STATS_MAX + 1];
    unsigned long long sum = 0;
    for (int32_t k = 0; k < paramd_num_servers(tool); k++) {
        MUST(tool, paramd_server_stats(tool, k, id, text, sizeof text));
        sum += counter(text, id, name);
    }
    return sum;
}

/* ---- 7: paramd_last_error from another thread -------------------------- */

typedef struct reader_arg {
    paramd_client *c;
    const char *a, *b; /* the two messages the failing thread leaves */
    int stop;          /* atomic */
    long reads;
} reader_arg;

static void *error_reader(void *p) {
    reader_arg *ra = p;
    do {
        const char *s = paramd_last_error(ra->c);
        if (strcmp(s, ra->a) != 0 && strcmp(s, ra->b) != 0)
            CHECK_FAIL_("paramd_last_error gave \"%s\": neither \"%s\" nor \"%s\"", s,
                        ra->a, ra->b);
        char copy[512];
        snprintf(copy, sizeof copy, "%s", s);
        /* The text must not change under us (volatile: read it again each
         * time, as a program printing it would). */
        const volatile char *vs = s;
        for (int i = 0; i < 64; i++)
            for (size_t j = 0; copy[j] || vs[j]; j++)
                if (vs[j] != copy[j])
                    CHECK_FAIL_("the text paramd_last_error returned changed from "
                                "\"%s\" while this thread read it", copy);
        ra->reads++;
    } while (!__atomic_load_n(&ra->stop, __ATOMIC_ACQUIRE));
    return NULL;
}

static void last_error_race(paramd_client *c, paramd_table *t) {
    static float buf[N];
    char a[512], b[512];
    CHECK_INT_EQ(paramd_pull(t, 0, N + 1, buf), PARAMD_ERANGE);
    snprintf(a, sizeof a, "%s", paramd_last_error(c));
    CHECK_INT_EQ(paramd_pull(t, 0, 1, NULL), PARAMD_EINVAL);
    snprintf(b, sizeof b, "%s", paramd_last_error(c));
    CHECK(strcmp(a, b) != 0);
    reader_arg ra = {c, a, b, 0, 0};
    pthread_t th;
    CHECK_INT_EQ(pthread_create(&th, NULL, error_reader, &ra), 0);
    for (int i = 0; i < 20000; i++) {
        CHECK_INT_EQ(paramd_pull(t, 0, N + 1, buf), PARAMD_ERANGE);
        CHECK_INT_EQ(paramd_pull(t, 0, 1, NULL), PARAMD_EINVAL);
    }
    __atomic_store_n(&ra.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    CHECK(ra.reads >= 1);
}

int main(void) {
    static float w[N], g[N], got[N];
    uint64_t keys[3] = {5, 77, 1u << 30};
    float rows[3 * DIM], grads[3 * DIM];

    /* 1. the worker */
    paramd_client *c;
    if (paramd_connect(&c, NULL)) CHECK_FAIL_("connect: %s", paramd_last_error(NULL));
    CHECK_INT_EQ(paramd_num_servers(c), 2);
    paramd_table *tw, *te;
    for (int i = 0; i < N; i++) w[i] = (float)i, g[i] = 1.0f;
    MUST(c, paramd_table_open(c, "w", N, "rule=add", w, &tw));
    MUST(c, paramd_sparse_open(c, "emb", DIM, "rule=add", &te));
    MUST(c, paramd_push(tw, 0, N, g));
    for (int i = 0; i < 3 * DIM; i++) grads[i] = 0.5f;
    MUST(c, paramd_sparse_push(te, keys, 3, grads));

    /* 2. a tool beside it */
    paramd_client *tool;
    if (paramd_connect(&tool, "role=tool"))
        CHECK_FAIL_("tool connect: %s", paramd_last_error(NULL));
    CHECK_INT_EQ(paramd_rank(tool), -1);
    CHECK_INT_EQ(paramd_num_servers(tool), paramd_num_servers(c));
    CHECK_INT_EQ(paramd_num_workers(tool), paramd_num_workers(c));
    CHECK_INT_EQ(paramd_map_epoch(tool), paramd_map_epoch(c));
    for (int32_t k = 0; k < 2; k++) {
        CHECK(paramd_server_address(tool, k) != NULL);
        CHECK_STR_EQ(paramd_server_address(tool, k), paramd_server_address(c, k));
    }
    CHECK(paramd_server_address(tool, 2) == NULL);
    CHECK(paramd_server_address(tool, -1) == NULL);

    /* 3. paramd_server_stats */
    static char text[PARAMD_STATS_MAX + 1];
    for (int32_t k = 0; k < 2; k++) {
        MUST(tool, paramd_server_stats(tool, k, 0, text, sizeof text));
        char head[64];
        snprintf(head, sizeof head, "server %d of 2, 1 workers, worker connections ", k);
        CHECK(strncmp(text, head, strlen(head)) == 0);
        CHECK(strstr(text, "\ntable 1 floats ") != NULL);
        CHECK(strstr(text, "\ntable 2 kind sparse dim 8 ") != NULL);
        CHECK(strstr(text, "\napply threads ") != NULL);
        MUST(tool, paramd_server_stats(tool, k, 2, text, sizeof text));
        CHECK(strstr(text, "\ntable 2 kind sparse") != NULL);
        CHECK(strstr(text, "table 1 ") == NULL);
    }
    uint64_t pushes;
    MUST(c, paramd_table_stat(tw, -1, "pushes", &pushes));
    CHECK_INT_EQ(total(tool, 1, "pushes"), pushes);
    CHECK(pushes >= 2); /* at least one push frame per server */
    char small[8];
    MUST_FAIL(tool, PARAMD_ETOOBIG, "PARAMD_STATS_MAX",
              paramd_server_stats(tool, 0, 0, small, sizeof small));
    CHECK_INT_EQ(strlen(small), sizeof small - 1);
    CHECK(strncmp(small, "server ", 7) == 0);
    MUST_FAIL(tool, PARAMD_EINVAL, "server 2", paramd_server_stats(tool, 2, 0, text, sizeof text));
    MUST_FAIL(tool, PARAMD_EINVAL, "server -1", paramd_server_stats(tool, -1, 0, text, sizeof text));
    MUST_FAIL(tool, PARAMD_EINVAL, "table 70000",
              paramd_server_stats(tool, 0, 70000, text, sizeof text));
    MUST_FAIL(tool, PARAMD_EINVAL, "buffer", paramd_server_stats(tool, 0, 0, NULL, 100));
    MUST_FAIL(tool, PARAMD_EINVAL, "buffer", paramd_server_stats(tool, 0, 0, text, 0));

    /* 4. what a tool may not do, refused before anything is sent */
    unsigned long long p1 = total(tool, 1, "pushes"), p2 = total(tool, 2, "pushes");
    unsigned long long r1 = total(tool, 1, "rejected"), r2 = total(tool, 2, "rejected");
    paramd_table *t = (paramd_table *)1;
    MUST_FAIL(tool, PARAMD_EWORKER, "role=tool", paramd_table_open(tool, "w", N, "rule=add", NULL, &t));
    CHECK(t == NULL);
    t = (paramd_table *)1;
    MUST_FAIL(tool, PARAMD_EWORKER, "role=tool", paramd_sparse_open(tool, "emb", DIM, "rule=add", &t));
    CHECK(t == NULL);
    MUST_FAIL(tool, PARAMD_EWORKER, "role=tool", paramd_barrier(tool));
    paramd_table *aw, *ae;
    CHECK_OK(pd_client_table_attach(tool, 1, N, 0, &aw));
    CHECK_OK(pd_client_table_attach(tool, 2, DIM, 1, &ae));
    MUST_FAIL(tool, PARAMD_EWORKER, "tools do not push", paramd_push(aw, 0, N, g));
    paramd_request *req = (paramd_request *)1;
    MUST_FAIL(tool, PARAMD_EWORKER, "tools do not push", paramd_push_async(aw, 0, 10, g, &req));
    CHECK(req == NULL);
    MUST_FAIL(tool, PARAMD_EWORKER, "tools do not push", paramd_sparse_push(ae, keys, 3, grads));
    req = (paramd_request *)1;
    MUST_FAIL(tool, PARAMD_EWORKER, "tools do not push",
              paramd_sparse_push_async(ae, keys, 3, grads, &req));
    CHECK(req == NULL);
    CHECK_INT_EQ(total(tool, 1, "pushes"), p1);
    CHECK_INT_EQ(total(tool, 2, "pushes"), p2);
    CHECK_INT_EQ(total(tool, 1, "rejected"), r1);
    CHECK_INT_EQ(total(tool, 2, "rejected"), r2);
    MUST(tool, paramd_pull(aw, 0, N, got));
    for (int i = 0; i < N; i++)
        if (got[i] != (float)i + 1.0f) CHECK_FAIL_("w[%d] = %g, expected %d + 1", i, got[i], i);
    MUST(tool, paramd_sparse_pull(ae, keys, 3, rows));
    for (int i = 0; i < 3 * DIM; i++) CHECK(rows[i] == 0.5f);

    /* 5. options a tool may not take */
    paramd_client *bad = (paramd_client *)1;
    CHECK_INT_EQ(paramd_connect(&bad, "role=bogus"), PARAMD_EINVAL);
    CHECK(bad == NULL);
    CHECK(strstr(paramd_last_error(NULL), "role=bogus") != NULL);
    CHECK_INT_EQ(paramd_connect(&bad, "role=tool rank=0"), PARAMD_EINVAL);
    CHECK(strstr(paramd_last_error(NULL), "no rank") != NULL);
    CHECK_INT_EQ(paramd_connect(&bad, "role=tool transport=shm"), PARAMD_EINVAL);
    CHECK(strstr(paramd_last_error(NULL), "TCP only") != NULL);

    /* 6. the tool leaves without a BYE; the worker goes on */
    CHECK_INT_EQ(paramd_close(tool), 0);
    paramd_clock(c); /* each element is pushed once per clock */
    MUST(c, paramd_push(tw, 0, N, g));
    MUST(c, paramd_pull(tw, 0, N, got));
    for (int i = 0; i < N; i++) CHECK(got[i] == (float)i + 2.0f);

    /* 7. */
    last_error_race(c, tw);

    MUST(c, paramd_barrier(c));
    CHECK_INT_EQ(paramd_close(c), 0);
    printf("role ok\n");
    return 0;
}
