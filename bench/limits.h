/*
 * limits.h - the physical anchors every tierkv-bench figure is divided by:
 * how fast this machine copies memory, measured in the same run.
 *
 * Two levels:
 *  - bench_copy_gbps(): the timing engine. N pinned threads call one copy
 *    function on fixed-size chunks, each thread walking its own slice of a
 *    source and of a destination buffer, for a fixed time; best of reps.
 *    The destination footprint decides what is measured: a footprint of one
 *    chunk per thread re-copies the same (cache-hot, when small) buffer; a
 *    footprint well beyond the last-level cache makes every copy land on
 *    memory that is not in cache, like the hot tier's block writes.
 *  - bench_measure_copy_limits() / bench_copy_limit_gbps(): the limit a benchmark
 *    reports against: glibc memcpy and the best streaming (non-temporal)
 *    kernel, with N threads, over a given destination footprint.
 *
 * Unit everywhere: GB/s = 1e9 bytes COPIED per second (bytes written to the
 * destination; memory traffic is at least twice that), summed over threads.
 */
#ifndef TKV_BENCH_LIMITS_H
#define TKV_BENCH_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierkv.h"

typedef void (*bench_copy_fn)(void *restrict dst, const void *restrict src, size_t n);

/* glibc's memcpy behind a bench_copy_fn (an out-of-line call, as the runtime
 * would make it). */
void bench_libc_memcpy(void *restrict dst, const void *restrict src, size_t n);

typedef struct bench_copy_job {
	bench_copy_fn fn;
	/* Thread t reads chunks from the t-th of `threads` equal slices of
	 * src[0, src_bytes) (with whole_source: from all of it, starting at
	 * the t-th slice) and writes them to the t-th slice of
	 * dst[0, footprint), one chunk after the other, wrapping around at the
	 * end. Each slice must hold at least one chunk. */
	const unsigned char *src;
	size_t src_bytes;
	unsigned char *dst;
	size_t footprint;
	size_t chunk;     /* bytes per call */
	uint32_t threads; /* >= 1; thread t is pinned to the t-th allowed CPU (mod count) */
	double seconds;   /* timed length of one repetition */
	int reps;         /* best of this many (>= 1) */
	/* Each thread cycles through the whole source, as each of the
	 * runtime's workers reads batches from anywhere in the engine's
	 * buffer (bench/README.md, "Copy limit of a pipeline point"): a thread
	 * with a slice of its own re-reads fewer bytes, which a cache may
	 * hold. The limits set it; the kernel tables measure cache regimes
	 * with slices. */
	bool whole_source;
} bench_copy_job;

/* GB/s of the job (see the unit above), best of its repetitions; a negative
 * errno if the job is malformed or threads cannot be started. */
double bench_copy_gbps(const bench_copy_job *job);

typedef struct bench_copy_limits {
	double memcpy_gbps; /* glibc memcpy */
	double stream_gbps; /* best copy_stream over the available kernel levels; 0 if none */
	tkv_isa stream_isa; /* the level that gave stream_gbps (TKV_ISA_AUTO if none) */
	double best_gbps;   /* max of the two: the limit to report ratios against */
} bench_copy_limits;

/* Chunk used by bench_copy_limit_gbps(): large enough that per-call costs
 * vanish, so the figure is the memory system's. */
#define BENCH_LIMIT_CHUNK ((size_t)1 << 20)

/*
 * Measures memcpy and every streaming kernel copying `chunk`-byte pieces of
 * src[0, src_bytes) (every thread all of it: whole_source) into a
 * destination footprint of `footprint` bytes (split between the threads; allocated here with bench_huge_buffer, huge pages
 * like the hot tier's, pre-faulted so page faults are not timed) with
 * `threads` threads, `seconds` per repetition, best of `reps`. 0, or a negative errno (-ENOMEM, -EINVAL: a slice smaller than a
 * chunk).
 */
int bench_measure_copy_limits(const unsigned char *src, size_t src_bytes, size_t footprint,
			      uint32_t threads, size_t chunk, double seconds, int reps,
			      bench_copy_limits *out);

/* The one number most reports need: best_gbps of bench_measure_copy_limits() with
 * BENCH_LIMIT_CHUNK chunks, 0.1 s x 3 repetitions. 0 on failure (and a
 * message on stderr). */
double bench_copy_limit_gbps(const unsigned char *src, size_t src_bytes, size_t footprint,
			     uint32_t threads);

/* Each timing of a limit that brackets a measurement (the naive baseline,
 * the producers scenario): best of `reps` of this many seconds. */
#define BENCH_BRACKET_SECONDS 0.05

/* A limit measured next to what it divides (the naive baseline's and the
 * producers scenario's brackets): the max of glibc
 * memcpy and the streaming kernel the runtime picks (tkv__kernels_get:
 * the one its workers use for a hot tier past the stream threshold), each
 * best of `reps` timings of `seconds` each, `threads` threads,
 * into dst[0, footprint): a bench_huge_buffer, huge pages like the hot
 * tier's slabs, kept across points so it stays faulted in. 0 on failure. */
double bench_point_limit_gbps(unsigned char *dst, const unsigned char *src, size_t src_bytes,
			      size_t footprint, uint32_t threads, int reps,
			      double seconds);

/* The same measurement with both kernels' figures in *out: a pipeline
 * point's limit, timed after each of its passes (bench/pipeline.c). 0, or
 * a negative errno (and a message on stderr). */
int bench_point_limits(unsigned char *dst, const unsigned char *src, size_t src_bytes,
		       size_t footprint, uint32_t threads, int reps, double seconds,
		       bench_copy_limits *out);

/* `bytes` rounded up to 2 MiB, 2 MiB-aligned, MADV_HUGEPAGE before the
 * first touch (as tiers/hot_arena.c does for the hot tier's slabs), then
 * zeroed so every page is faulted in; free() it. NULL when out of memory. */
unsigned char *bench_huge_buffer(size_t bytes);

/* The same with 4 KiB pages (MADV_NOHUGEPAGE before the first touch): the
 * limit of a copy into malloc'd blocks, the naive baseline's. */
unsigned char *bench_small_page_buffer(size_t bytes);

/* A source buffer of `bytes` filled with non-zero, non-repeating data
 * (page-faulted in), 4096-byte aligned; free() it. NULL when out of memory. */
unsigned char *bench_source_buffer(size_t bytes);

#endif
