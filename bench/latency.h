/*
 * latency.h - sample sets of durations and what the bench reports of them:
 * exact percentiles by nearest rank over the sorted samples (no
 * interpolation, no sampling: every sample counts), the extremes, and a
 * log2 histogram for the latency plot. Shared by the evict scenario (the
 * duration of every tkv_store call) and the pipeline sweep (the time of each
 * repetition of a point; the best one is its figure).
 */
#ifndef TKV_BENCH_LATENCY_H
#define TKV_BENCH_LATENCY_H

#include <stdint.h>

/* Histogram buckets: bucket b counts samples in [2^b, 2^(b+1)) ns (bucket 0
 * also 0 and 1 ns; the last one everything above). 40 reach ~18 min. */
#define BENCH_LAT_BUCKETS 40

typedef struct bench_lat {
	uint64_t *ns; /* the samples (the caller's memory); sorted by finish */
	uint64_t n;
	double min, p50, p99, p999, max; /* set by bench_lat_finish; 0 if n == 0 */
} bench_lat;

/* Fills hist (BENCH_LAT_BUCKETS entries, if not NULL) from the samples, then
 * sorts them and sets the percentiles and extremes. Nothing when n == 0. */
void bench_lat_finish(bench_lat *l, uint64_t *hist);

#endif
