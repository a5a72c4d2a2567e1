/*
 * check.h - the assertions every C test uses.
 *
 * Each CHECK prints both sides and the place on failure and exits the test
 * process with status 1 (ctest runs every test in its own process, with a
 * timeout, so one failing test cannot hide another).  No test sleeps to
 * synchronise; no test asserts a timing.
 */
#ifndef PARAMD_TESTS_CHECK_H
#define PARAMD_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_FAIL_(...)                                                       \
    do {                                                                       \
        fprintf(stderr, "%s:%d: CHECK failed: ", __FILE__, __LINE__);          \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        exit(1);                                                               \
    } while (0)

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) CHECK_FAIL_("%s", #cond);                                 \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                     \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ != b_) CHECK_FAIL_("%s == %s (%lld != %lld)", #a, #b, a_, b_);  \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                     \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        if (strcmp(a_, b_) != 0)                                               \
            CHECK_FAIL_("%s == %s (\"%s\" != \"%s\")", #a, #b, a_, b_);        \
    } while (0)

/* |a - b| <= tol * max(1, |a|, |b|) */
#define CHECK_NEAR(a, b, tol)                                                  \
    do {                                                                       \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);         \
        double s_ = fmax(1.0, fmax(fabs(a_), fabs(b_)));                       \
        if (!(fabs(a_ - b_) <= t_ * s_))                                       \
            CHECK_FAIL_("%s ~= %s (%.9g vs %.9g, tol %g)", #a, #b, a_, b_, t_); \
    } while (0)

/* A call that returns a paramd error code must succeed. */
#define CHECK_OK(call)                                                         \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ != 0) CHECK_FAIL_("%s returned %d", #call, rc_);               \
    } while (0)

#endif
