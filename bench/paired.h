/*
 * paired.h - a pipeline point's figures from its timed repetitions, each
 * paired with the copy-limit timings taken between its passes
 * (bench/pipeline.c, bench/README.md "Copy limit of a pipeline point").
 */
#ifndef TKV_BENCH_PAIRED_H
#define TKV_BENCH_PAIRED_H

#include <stdint.h>

#include "bench/report.h"

/* Repetition i (0 <= i < n) stored layer_tokens layer-tokens (`bytes` of
 * K+V) in ns[i] nanoseconds, and lim[i] GB/s is the copy limit timed
 * between its passes. Sets r's tokens_per_s, gbps, limit_gbps and ratio
 * from the repetition with the median ratio (the lower middle one for an
 * even n), and ratio_lo/ratio_hi from all of them. */
void bench_finish_paired(bench_result *r, const uint64_t *ns, const double *lim, int n,
			 uint64_t layer_tokens, double bytes);

#endif
