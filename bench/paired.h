/*
 * paired.h - a pipeline point's figures from its timed repetitions, each
 * paired with the copy-limit timings taken between its passes
 * (bench/pipeline.c, bench/README.md "Copy limit of a pipeline point").
 */
#ifndef TKV_BENCH_PAIRED_H
#define TKV_BENCH_PAIRED_H

#include <stdint.h>

#include "bench/report.h"

/* A repetition's copy limit from the limit timings after its passes: each
 * kernel's rate over all of them (the bytes it copied over the seconds
 * they lasted, each timing weighted by its length), the better kernel's.
 * Not the mean of each timing's better kernel: that would mix two kernels
 * into a speed neither had. */
typedef struct bench_limit_sum {
	double memcpy_bytes, stream_bytes; /* 1e9 bytes each kernel copied */
	double seconds;
} bench_limit_sum;

/* One timing of `seconds` per kernel, at memcpy_gbps and stream_gbps. */
void bench_limit_sum_add(bench_limit_sum *s, double memcpy_gbps, double stream_gbps,
			 double seconds);

/* GB/s of the better kernel over every timing added; 0 if none. */
double bench_limit_sum_rate(const bench_limit_sum *s);

/* Repetition i (0 <= i < n) stored layer_tokens layer-tokens (`bytes` of
 * K+V) in ns[i] nanoseconds, and lim[i] GB/s is the copy limit timed
 * between its passes. Sets r's tokens_per_s, gbps, limit_gbps and ratio
 * from the repetition with the median ratio (the lower middle one for an
 * even n), and ratio_lo/ratio_hi from all of them. */
void bench_finish_paired(bench_result *r, const uint64_t *ns, const double *lim, int n,
			 uint64_t layer_tokens, double bytes);

#endif
