/*
 * paired.c - a pipeline point's ratio from repetitions paired with copy
 * limits (paired.h).
 */
#include "bench/paired.h"

#include <math.h>

void bench_limit_sum_add(bench_limit_sum *s, double memcpy_gbps, double stream_gbps,
			 double seconds)
{
	s->memcpy_bytes += memcpy_gbps * seconds;
	s->stream_bytes += stream_gbps * seconds;
	s->seconds += seconds;
}

double bench_limit_sum_rate(const bench_limit_sum *s)
{
	double best = s->memcpy_bytes > s->stream_bytes ? s->memcpy_bytes : s->stream_bytes;
	return s->seconds > 0 ? best / s->seconds : 0;
}

void bench_finish_paired(bench_result *r, const uint64_t *ns, const double *lim, int n,
			 uint64_t layer_tokens, double bytes)
{
	double ratio[n];
	int order[n];
	for (int i = 0; i < n; i++) {
		ratio[i] = lim[i] > 0 ? bytes / (double)ns[i] / lim[i] : 0;
		order[i] = i;
	}
	for (int i = 1; i < n; i++) /* insertion sort by ratio: n is --reps */
		for (int j = i; j > 0 && ratio[order[j]] < ratio[order[j - 1]]; j--) {
			int t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	int m = order[(n - 1) / 2];
	r->tokens_per_s = (double)layer_tokens / ((double)ns[m] / 1e9);
	r->gbps = bytes / (double)ns[m];
	r->limit_gbps = lim[m];
	r->ratio = ratio[m];
	r->ratio_lo = ratio[order[0]];
	r->ratio_hi = ratio[order[n - 1]];
}

bool bench_paired_ratio(const double *a, const double *b, int n, bench_ratio_spread *out)
{
	if (n < 1)
		return false;
	double q[n];
	for (int i = 0; i < n; i++) {
		if (!(isfinite(a[i]) && a[i] > 0 && isfinite(b[i]) && b[i] > 0))
			return false;
		q[i] = a[i] / b[i];
	}
	for (int i = 1; i < n; i++) /* insertion sort: n is --reps */
		for (int j = i; j > 0 && q[j] < q[j - 1]; j--) {
			double t = q[j];
			q[j] = q[j - 1];
			q[j - 1] = t;
		}
	out->median = q[(n - 1) / 2];
	out->lo = q[0];
	out->hi = q[n - 1];
	return true;
}

bench_span bench_span_of(const double *v, int n)
{
	bench_span s = {0, 0};
	for (int i = 0; i < n; i++) {
		if (i == 0 || v[i] < s.lo)
			s.lo = v[i];
		if (i == 0 || v[i] > s.hi)
			s.hi = v[i];
	}
	return s;
}

const char *bench_paired_verdict(int reps, double lo, double hi, const char *above,
				 const char *below)
{
	if (reps < 3)
		return "n/a";
	return lo > 1 ? above : hi < 1 ? below : "mixed";
}
