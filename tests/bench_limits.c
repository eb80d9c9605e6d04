/*
 * bench_limits.c - the copy-limit engine of tierkv-bench (bench/limits.c):
 * which source bytes each thread reads. A limit's threads must read what the
 * runtime's workers read (bench/README.md, "Copy limit of a pipeline
 * point"): every worker takes batches from anywhere in the engine's buffer,
 * so with whole_source every thread cycles through all of the source, each
 * starting at its own slice; without it (the kernel tables) each keeps to
 * its slice.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench/limits.h"

enum { CHUNK = 4096, CHUNKS = 8, MAX_THREADS = 4 };

static unsigned char src[CHUNKS * CHUNK], dst[CHUNKS * CHUNK];

/* What one thread read: the source chunks it touched, and its first. */
typedef struct seen {
	pthread_t tid;
	unsigned touched; /* bit c: source chunk c */
	int first;
} seen;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static seen threads_seen[MAX_THREADS];
static int n_seen;

static void record(void *restrict d, const void *restrict s, size_t n)
{
	(void)d;
	cr_assert_eq(n, CHUNK);
	int c = (int)(((const unsigned char *)s - src) / CHUNK);
	pthread_mutex_lock(&lock);
	int i = 0;
	while (i < n_seen && !pthread_equal(threads_seen[i].tid, pthread_self()))
		i++;
	if (i == n_seen) {
		cr_assert_lt(n_seen, MAX_THREADS);
		threads_seen[n_seen++] = (seen){pthread_self(), 0, c};
	}
	threads_seen[i].touched |= 1u << c;
	pthread_mutex_unlock(&lock);
}

static void run(uint32_t threads, bool whole)
{
	n_seen = 0;
	bench_copy_job j = {.fn = record, .src = src, .src_bytes = sizeof(src), .dst = dst,
			    .footprint = sizeof(dst), .chunk = CHUNK, .threads = threads,
			    .seconds = 0.01, .reps = 1, .whole_source = whole};
	cr_assert_gt(bench_copy_gbps(&j), 0);
	cr_assert_eq(n_seen, (int)threads);
}

Test(bench_limits, whole_source_threads_each_read_all_of_it_from_their_own_start)
{
	run(2, true);
	int firsts = 0;
	for (int i = 0; i < n_seen; i++) {
		cr_assert_eq(threads_seen[i].touched, (1u << CHUNKS) - 1, "thread %d read %#x", i,
			     threads_seen[i].touched);
		cr_assert(threads_seen[i].first == 0 || threads_seen[i].first == CHUNKS / 2);
		firsts |= 1 << threads_seen[i].first;
	}
	cr_assert_eq(firsts, 1 | 1 << (CHUNKS / 2), "the threads start at their own slices");
}

Test(bench_limits, sliced_threads_each_keep_to_their_slice)
{
	run(2, false);
	unsigned all = 0;
	for (int i = 0; i < n_seen; i++) {
		unsigned t = threads_seen[i].touched;
		cr_assert(t == 0x0fu || t == 0xf0u, "thread %d read %#x", i, t);
		all |= t;
	}
	cr_assert_eq(all, 0xffu);
}
