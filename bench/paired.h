/*
 * paired.h - a pipeline point's figures from its timed repetitions, each
 * paired with the copy-limit timings taken between its passes
 * (bench/pipeline.c, bench/README.md "Copy limit of a pipeline point").
 */
#ifndef TKV_BENCH_PAIRED_H
#define TKV_BENCH_PAIRED_H

#include <stdbool.h>
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

/* Two things measured back to back in each of n repetitions (a[i] and b[i],
 * rates, same units): the median of a[i] / b[i] (the lower middle one for
 * an even n) and its extremes. false, and nothing set, if n < 1 or any
 * a[i] or b[i] is not finite and positive (a ratio would be 0, inf or
 * NaN). Pairing by repetition cancels the drift this VM's speed shows
 * between runs seconds apart, which two medians taken minutes apart keep. */
typedef struct bench_ratio_spread {
	double median, lo, hi;
} bench_ratio_spread;

bool bench_paired_ratio(const double *a, const double *b, int n, bench_ratio_spread *out);

/* The lowest and highest of v[0..n); {0, 0} if n < 1. */
bench_span bench_span_of(const double *v, int n);

/* `above` only when a beat b in every repetition (lo > 1), `below` only
 * when it lost every one (hi < 1), "mixed" otherwise: inside this
 * machine's noise. Fewer than 3 repetitions say too little: "n/a". */
const char *bench_paired_verdict(int reps, double lo, double hi, const char *above,
				 const char *below);

#endif
