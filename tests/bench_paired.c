/*
 * bench_paired.c - a pipeline point's figures from repetitions paired with
 * copy limits (bench/paired.c): each repetition's ratio is to the limit
 * timed between its passes, the point is the repetition with the median
 * ratio (the lower middle one for an even count), and the spread is every
 * repetition's ratio. bench_smoke runs one repetition; these run several.
 * Also the ring-over-mutex comparison, pair by pair (bench_paired_ratio),
 * and the spread of a figure over its repetitions (bench_span_of).
 */
#include <criterion/criterion.h>
#include <stdbool.h>

#include "bench/paired.h"

/* 1e9 bytes per repetition: a repetition of ns[i] nanoseconds ran at
 * 1e9 / ns[i] GB/s. */
static const double BYTES = 1e9;

static bool near(double a, double b)
{
	double d = a > b ? a - b : b - a;
	return d <= 1e-9 * (b > 0 ? b : -b);
}

Test(bench_paired, the_point_is_the_median_ratio_each_to_its_own_limit)
{
	/* rates 10, 20, 8 GB/s against limits 40, 40, 20: ratios 0.25, 0.5,
	 * 0.4 */
	const uint64_t ns[] = {100000000, 50000000, 125000000};
	const double lim[] = {40, 40, 20};
	bench_result r = {0};
	bench_finish_paired(&r, ns, lim, 3, 1000, BYTES);
	cr_assert(near(r.ratio, 0.4), "%f", r.ratio);
	cr_assert(near(r.gbps, 8), "%f", r.gbps);
	cr_assert(near(r.limit_gbps, 20));
	cr_assert(near(r.tokens_per_s, 1000 / 0.125), "%f", r.tokens_per_s);
	cr_assert(near(r.ratio_lo, 0.25));
	cr_assert(near(r.ratio_hi, 0.5));
	/* not the fastest repetition (20 GB/s), not the best limit's */
	cr_assert_neq(r.gbps, 20);
}

Test(bench_paired, an_even_count_takes_the_lower_middle)
{
	/* ratios 0.9, 0.6, 0.7, 0.8 (limit 10 throughout): lower middle 0.7 */
	const uint64_t ns[] = {111111111, 166666667, 142857143, 125000000};
	const double lim[] = {10, 10, 10, 10};
	bench_result r = {0};
	bench_finish_paired(&r, ns, lim, 4, 1, BYTES);
	cr_assert(near(r.ratio, 1e9 / 142857143.0 / 10), "%f", r.ratio);
	cr_assert(r.ratio_lo < 0.61 && r.ratio_lo > 0.59, "%f", r.ratio_lo);
	cr_assert(r.ratio_hi < 0.91 && r.ratio_hi > 0.89, "%f", r.ratio_hi);
}

Test(bench_paired, one_repetition_is_its_own_point_and_spread)
{
	const uint64_t ns[] = {200000000};
	const double lim[] = {10};
	bench_result r = {0};
	bench_finish_paired(&r, ns, lim, 1, 7, BYTES);
	cr_assert(near(r.ratio, 0.5));
	cr_assert_eq(r.ratio_lo, r.ratio);
	cr_assert_eq(r.ratio_hi, r.ratio);
	cr_assert(near(r.limit_gbps, 10));
}

Test(bench_paired, a_repetitions_limit_is_the_better_kernel_over_all_its_timings)
{
	/* 0.1 s: memcpy 10 GB/s, streaming 20; 0.3 s: memcpy 30, streaming
	 * 10. memcpy copied 1 + 9 GB in 0.4 s (25 GB/s), streaming 2 + 3
	 * (12.5): the limit is 25, not 27.5 (each timing's better kernel) nor
	 * 20 (the mean of the two timings' memcpy rates) */
	bench_limit_sum s = {0};
	bench_limit_sum_add(&s, 10, 20, 0.1);
	bench_limit_sum_add(&s, 30, 10, 0.3);
	cr_assert(near(bench_limit_sum_rate(&s), 25), "%f", bench_limit_sum_rate(&s));
	bench_limit_sum_add(&s, 0, 100, 0.4); /* streaming: 5 + 40 GB in 0.8 s */
	cr_assert(near(bench_limit_sum_rate(&s), 45 / 0.8), "%f", bench_limit_sum_rate(&s));
}

Test(bench_paired, no_limit_timing_is_no_limit)
{
	bench_limit_sum s = {0};
	cr_assert_eq(bench_limit_sum_rate(&s), 0);
}

Test(bench_paired, a_paired_ratio_is_the_median_of_each_pairs_ratio)
{
	/* pairs 10/8, 12/12, 9/10: 1.25, 1, 0.9. The ratio of the medians
	 * (10 / 10 = 1) would differ: each pair is divided first. */
	const double a[] = {10, 12, 9}, b[] = {8, 12, 10};
	bench_ratio_spread sp = {0};
	cr_assert(bench_paired_ratio(a, b, 3, &sp));
	cr_assert(near(sp.median, 1.0), "%f", sp.median);
	cr_assert(near(sp.lo, 0.9), "%f", sp.lo);
	cr_assert(near(sp.hi, 1.25), "%f", sp.hi);
	/* the lower middle for an even count, as bench_finish_paired */
	const double c[] = {3, 1, 4, 2}, one[] = {1, 1, 1, 1};
	cr_assert(bench_paired_ratio(c, one, 4, &sp));
	cr_assert(near(sp.median, 2), "%f", sp.median);
}

Test(bench_paired, a_pair_without_a_positive_finite_rate_is_no_ratio)
{
	const double ok[] = {1, 2, 3}, zero[] = {1, 0, 3}, inf[] = {1, 1.0 / 0.0, 3};
	bench_ratio_spread sp = {7, 7, 7};
	cr_assert_not(bench_paired_ratio(ok, zero, 3, &sp));
	cr_assert_not(bench_paired_ratio(zero, ok, 3, &sp));
	cr_assert_not(bench_paired_ratio(inf, ok, 3, &sp));
	cr_assert_not(bench_paired_ratio(ok, ok, 0, &sp));
	cr_assert(sp.median == 7 && sp.lo == 7 && sp.hi == 7, "nothing set on refusal");
}

Test(bench_paired, a_verdict_needs_every_pair_and_three_of_them)
{
	cr_assert_str_eq(bench_paired_verdict(3, 1.01, 1.2, "faster", "slower"), "faster");
	cr_assert_str_eq(bench_paired_verdict(3, 0.8, 0.99, "faster", "slower"), "slower");
	cr_assert_str_eq(bench_paired_verdict(5, 0.99, 1.2, "faster", "slower"), "mixed");
	cr_assert_str_eq(bench_paired_verdict(2, 1.1, 1.2, "faster", "slower"), "n/a");
}

Test(bench_paired, a_span_is_the_lowest_and_highest_repetition)
{
	const double v[] = {0.12, 0.09, 0.15, 0.11};
	bench_span s = bench_span_of(v, 4);
	cr_assert(s.lo == 0.09 && s.hi == 0.15, "lo %g hi %g", s.lo, s.hi);
	s = bench_span_of(v + 2, 1);
	cr_assert(s.lo == 0.15 && s.hi == 0.15, "one repetition spans itself");
	s = bench_span_of(v, 0);
	cr_assert(s.lo == 0 && s.hi == 0, "no repetition: no span");
}
