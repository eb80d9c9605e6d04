/*
 * latency.c - percentiles and histograms of duration samples (latency.h).
 */
#include "bench/latency.h"

#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The smallest sample with at least q of all samples at or below it. */
static double nearest_rank(const uint64_t *sorted, uint64_t n, double q)
{
	uint64_t k = (uint64_t)((double)n * q + 0.999999);
	return (double)sorted[(k ? k : 1) - 1];
}

void bench_lat_finish(bench_lat *l, uint64_t *hist)
{
	if (!l->n)
		return;
	if (hist) {
		memset(hist, 0, BENCH_LAT_BUCKETS * sizeof(*hist));
		for (uint64_t i = 0; i < l->n; i++) {
			uint64_t v = l->ns[i];
			unsigned b = v < 2 ? 0 : 63u - (unsigned)__builtin_clzll(v);
			hist[b < BENCH_LAT_BUCKETS ? b : BENCH_LAT_BUCKETS - 1]++;
		}
	}
	qsort(l->ns, l->n, sizeof(*l->ns), cmp_u64);
	l->min = (double)l->ns[0];
	l->p50 = nearest_rank(l->ns, l->n, 0.50);
	l->p99 = nearest_rank(l->ns, l->n, 0.99);
	l->p999 = nearest_rank(l->ns, l->n, 0.999);
	l->max = (double)l->ns[l->n - 1];
}
