/*
 * train_check.h - what `paramd train` checks before it starts any process
 * (train_check.c): that its output paths can be written, and that the
 * machine can hold the workers asked for.  Each returns 0, or -1 with a
 * one-line message (what, the numbers, what to do) in err.
 */
#ifndef PARAMD_TRAIN_TRAIN_CHECK_H
#define PARAMD_TRAIN_TRAIN_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "train/trainer.h"

/* --out DIR (created later if missing: its nearest existing parent must
 * be a writable directory) and --save-params FILE (a writable file, or a
 * new one in a writable directory). */
int pd_train_check_outputs(const pd_train_cfg *cfg, char *err, size_t errlen);

/* W local workers of a dense model each hold the training set as floats
 * plus their own working memory (PD_TRAIN_WORKER_OVERHEAD): refused when
 * that passes the memory available now (MemAvailable).  A data set that
 * cannot be read is not refused here (the workers say why). */
int pd_train_check_memory(const pd_train_cfg *cfg, int W, char *err, size_t errlen);

/* What one worker needs, in bytes, beside its data set (its model,
 * buffers, the BLAS threads' scratch, the library): measured, see
 * docs/limits.md. */
#define PD_TRAIN_WORKER_OVERHEAD (40ull << 20)

/* Bytes of memory available on this machine now (MemAvailable), or 0 if
 * unknown. */
uint64_t pd_mem_available(void);

#endif
