/*
 * limits.c - measures how fast this machine copies memory (see limits.h):
 * the timing engine every copy figure of tierkv-bench goes through, and the
 * memcpy / streaming-copy limit the other benchmarks divide by.
 *
 * Method: the threads start together when a gate opens, each pinned to its own
 * CPU so the scheduler cannot stack them; each copies for a fixed time,
 * reading the clock only every ~256 KiB so the clock costs under 1% even
 * for small chunks, and its rate is its bytes over its own elapsed time; the
 * job's figure is the sum of the rates, best of the repetitions (the best
 * is the least disturbed by other load on the machine).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setaffinity_np, sched_getaffinity */
#endif
#include "bench/limits.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench/bench.h"
#include "bench/internals.h"

void bench_libc_memcpy(void *restrict dst, const void *restrict src, size_t n)
{
	memcpy(dst, src, n);
}

/* Opened once every thread exists, so they start timing together; aborted
 * (threads return at once) if one of them cannot be created. */
typedef struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int state; /* 0 closed, 1 open, -1 aborted */
} gate;

typedef struct copy_thread {
	const bench_copy_job *job;
	gate *start;
	const unsigned char *src; /* this thread's slices */
	unsigned char *dst;
	size_t src_slots, dst_slots; /* whole chunks in each slice */
	size_t src_first;            /* the source chunk it starts at */
	int cpu;                     /* -1: not pinned */
	double gbps;
	pthread_t tid;
} copy_thread;

static void *copy_thread_main(void *arg)
{
	copy_thread *t = arg;
	const bench_copy_job *j = t->job;
	const size_t chunk = j->chunk;
	const size_t batch = chunk >= ((size_t)256 << 10) ? 1 : ((size_t)256 << 10) / chunk;
	const bench_copy_fn fn = j->fn;
	size_t is = t->src_first, id = 0;
	uint64_t bytes = 0;

	if (t->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(t->cpu, &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */
	}
	pthread_mutex_lock(&t->start->lock);
	while (t->start->state == 0)
		pthread_cond_wait(&t->start->cond, &t->start->lock);
	int state = t->start->state;
	pthread_mutex_unlock(&t->start->lock);
	if (state < 0)
		return NULL;
	const uint64_t t0 = bench_now_ns(), limit = (uint64_t)(j->seconds * 1e9);
	uint64_t now;
	do {
		for (size_t k = 0; k < batch; k++) {
			fn(t->dst + id * chunk, t->src + is * chunk, chunk);
			if (++id == t->dst_slots)
				id = 0;
			if (++is == t->src_slots)
				is = 0;
		}
		bytes += batch * chunk;
		now = bench_now_ns();
	} while (now - t0 < limit);
	t->gbps = (double)bytes / (double)(now - t0); /* bytes per ns == GB/s */
	return NULL;
}

/* The CPUs this process may run on, in order; returns how many (>= 1 on
 * success, 0 if unknown: threads then stay unpinned). */
static int allowed_cpus(int *cpus, int max)
{
	cpu_set_t set;
	int n = 0;
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 0;
	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	return n;
}

static void gate_set(gate *g, int state)
{
	pthread_mutex_lock(&g->lock);
	g->state = state;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* One repetition: the summed GB/s, or -EAGAIN if threads could not start. */
static double run_once(const bench_copy_job *j, copy_thread *th)
{
	gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	uint32_t started = 0;
	double sum = 0;
	for (; started < j->threads; started++) {
		th[started].start = &g;
		if (pthread_create(&th[started].tid, NULL, copy_thread_main, &th[started]) != 0)
			break;
	}
	gate_set(&g, started == j->threads ? 1 : -1);
	for (uint32_t i = 0; i < started; i++) {
		pthread_join(th[i].tid, NULL);
		sum += th[i].gbps;
	}
	pthread_cond_destroy(&g.cond);
	pthread_mutex_destroy(&g.lock);
	return started == j->threads ? sum : -EAGAIN;
}

double bench_copy_gbps(const bench_copy_job *j)
{
	if (!j || !j->fn || !j->src || !j->dst || j->threads == 0 || j->chunk == 0 || j->reps < 1 ||
	    j->seconds <= 0)
		return -EINVAL;
	/* Whole chunks per slice, so slices keep the buffers' alignment. */
	const size_t src_slice = j->src_bytes / j->threads / j->chunk * j->chunk;
	const size_t dst_slice = j->footprint / j->threads / j->chunk * j->chunk;
	if (src_slice < j->chunk || dst_slice < j->chunk)
		return -EINVAL;

	copy_thread *th = calloc(j->threads, sizeof(*th));
	int *cpus = calloc(j->threads, sizeof(*cpus));
	if (!th || !cpus) {
		free(th);
		free(cpus);
		return -ENOMEM;
	}
	int ncpu = allowed_cpus(cpus, (int)j->threads);
	const size_t per = src_slice / j->chunk;
	for (uint32_t i = 0; i < j->threads; i++) {
		th[i] = (copy_thread){
			.job = j,
			.src = j->whole_source ? j->src : j->src + i * src_slice,
			.dst = j->dst + i * dst_slice,
			.src_slots = j->whole_source ? per * j->threads : per,
			.src_first = j->whole_source ? per * i : 0,
			.dst_slots = dst_slice / j->chunk,
			.cpu = ncpu ? cpus[i % (uint32_t)ncpu] : -1,
		};
	}
	double best = 0;
	for (int r = 0; r < j->reps && best >= 0; r++) {
		double g = run_once(j, th);
		if (g < 0 || g > best)
			best = g;
	}
	free(th);
	free(cpus);
	return best;
}

unsigned char *bench_source_buffer(size_t bytes)
{
	unsigned char *p;
	if (posix_memalign((void **)&p, 4096, bytes ? bytes : 1) != 0)
		return NULL;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < bytes; i += 8) {
		x ^= x << 13; /* xorshift64: cheap, never repeats within 2^64 */
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t w = x | 0x0101010101010101ull; /* no zero byte */
		memcpy(p + i, &w, bytes - i < 8 ? bytes - i : 8);
	}
	return p;
}

/* bytes rounded up to `align` and aligned to it, given `advice` before
 * the first touch (so the page size is chosen from the start), then
 * zeroed so every page is faulted in before timing. */
static unsigned char *advised_buffer(size_t bytes, size_t align, int advice)
{
	size_t len = (bytes + align - 1) / align * align;
	unsigned char *p;
	if (!len || posix_memalign((void **)&p, align, len) != 0)
		return NULL;
	(void)madvise(p, len, advice);
	memset(p, 0, len);
	return p;
}

unsigned char *bench_huge_buffer(size_t bytes)
{
	/* like the hot tier's slabs (tiers/hot_arena.c) */
	return advised_buffer(bytes, (size_t)2 << 20, MADV_HUGEPAGE);
}

unsigned char *bench_small_page_buffer(size_t bytes)
{
	/* like the naive baseline's malloc'd blocks, even where transparent
	 * huge pages are on for every mapping */
	return advised_buffer(bytes, 4096, MADV_NOHUGEPAGE);
}

/* The measurement of bench_measure_copy_limits into a caller's buffer;
 * all_isas false: only the streaming kernel the runtime itself picks. */
static int measure_into(unsigned char *dst, const unsigned char *src, size_t src_bytes,
			size_t footprint, uint32_t threads, size_t chunk, double seconds, int reps,
			bool all_isas, bench_copy_limits *out)
{

	bench_copy_job job = {
		.fn = bench_libc_memcpy,
		.src = src,
		.src_bytes = src_bytes,
		.dst = dst,
		.footprint = footprint,
		.chunk = chunk,
		.threads = threads,
		.seconds = seconds,
		.reps = reps,
		.whole_source = true,
	};
	*out = (bench_copy_limits){.stream_isa = TKV_ISA_AUTO};
	double g = bench_copy_gbps(&job);
	int rc = 0;
	if (g < 0) {
		rc = (int)g;
		goto out;
	}
	out->memcpy_gbps = g;
	for (int isa = TKV_ISA_SCALAR; isa <= TKV_ISA_NEON; isa++) {
		const tkv__kernels *k = tkv__kernels_for((tkv_isa)isa);
		if (!k || k->copy_stream == k->copy) /* no streaming stores at this level */
			continue;
		if (!all_isas && k != tkv__kernels_get(TKV_ISA_AUTO))
			continue;
		job.fn = k->copy_stream;
		if ((g = bench_copy_gbps(&job)) < 0) {
			rc = (int)g;
			goto out;
		}
		if (g > out->stream_gbps) {
			out->stream_gbps = g;
			out->stream_isa = (tkv_isa)isa;
		}
	}
	out->best_gbps = out->memcpy_gbps > out->stream_gbps ? out->memcpy_gbps : out->stream_gbps;
out:
	return rc;
}

int bench_measure_copy_limits(const unsigned char *src, size_t src_bytes, size_t footprint,
			      uint32_t threads, size_t chunk, double seconds, int reps,
			      bench_copy_limits *out)
{
	if (!out || threads == 0)
		return -EINVAL;
	unsigned char *dst = bench_huge_buffer(footprint);
	if (!dst)
		return -ENOMEM;
	int rc = measure_into(dst, src, src_bytes, footprint, threads, chunk, seconds, reps, true,
			      out);
	free(dst);
	return rc;
}

int bench_point_limits(unsigned char *dst, const unsigned char *src, size_t src_bytes,
		       size_t footprint, uint32_t threads, int reps, double seconds,
		       bench_copy_limits *out)
{
	int rc = measure_into(dst, src, src_bytes, footprint, threads, BENCH_LIMIT_CHUNK, seconds, reps,
			      false, out);
	if (rc != 0)
		fprintf(stderr, "tierkv-bench: copy limit (%u threads, %zu-byte footprint): %s\n",
			threads, footprint, tkv_strerror(rc));
	return rc;
}

double bench_point_limit_gbps(unsigned char *dst, const unsigned char *src, size_t src_bytes,
			      size_t footprint, uint32_t threads, int reps, double seconds)
{
	bench_copy_limits l;
	return bench_point_limits(dst, src, src_bytes, footprint, threads, reps, seconds, &l) ? 0
											 : l.best_gbps;
}

double bench_copy_limit_gbps(const unsigned char *src, size_t src_bytes, size_t footprint,
			     uint32_t threads)
{
	bench_copy_limits l;
	int rc = bench_measure_copy_limits(src, src_bytes, footprint, threads, BENCH_LIMIT_CHUNK,
					   0.1, 3, &l);
	if (rc != 0) {
		fprintf(stderr, "tierkv-bench: copy limit (%u threads, %zu-byte footprint): %s\n",
			threads, footprint, tkv_strerror(rc));
		return 0;
	}
	return l.best_gbps;
}
