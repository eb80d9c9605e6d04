/*
 * bench.h - what the tierkv-bench scenarios share: their entry points (main.c
 * dispatches `tierkv-bench [SCENARIO] [OPTIONS]` to them) and small helpers.
 *
 * A scenario is `int bench_<name>_main(int argc, char **argv)`: argv[0] is the
 * scenario name, the rest its options; it returns a process exit status.
 * Adding one = writing that function in bench/<name>.c and one line in the
 * table of main.c.
 */
#ifndef TKV_BENCH_BENCH_H
#define TKV_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tierkv.h" /* tkv_dtype */

/* ---- scenarios ---- */
int bench_kernels_main(int argc, char **argv);
int bench_pipeline_main(int argc, char **argv);
int bench_ring_main(int argc, char **argv);
int bench_default_main(int argc, char **argv); /* run.c: the README's main job */
int bench_evict_main(int argc, char **argv);   /* evict.c: eviction/promotion vs raw O_DIRECT */
int bench_cache_main(int argc, char **argv);   /* cache_attach.c: prefix attach cost */
int bench_replay_main(int argc, char **argv);  /* replay.c: a serving trace through the cache */
int bench_shared_main(int argc, char **argv);  /* shared.c: shared tier vs raw hiredis */
int bench_producers_main(int argc, char **argv); /* producers.c: 1..64 engine threads */

/* ---- helpers (main.c) ---- */

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* "4096", "64K", "1M", "2G" (binary multiples) -> bytes; 0 or -EINVAL. */
int bench_parse_bytes(const char *s, size_t *out);

/* "f32", "bf16", "f16" -> the dtype; -EINVAL for anything else (a typo
 * must not quietly measure f32). */
int bench_parse_dtype(const char *s, tkv_dtype *out);

/* Option values, for every scenario's parser: the whole of s must be a
 * decimal number in [min, max]; otherwise "tierkv-bench WHO: OPT takes ...,
 * got 'S'" on stderr and -EINVAL, *out unchanged (a typo must not run a
 * different bench than the one asked for). */
int bench_opt_u32(const char *who, const char *opt, const char *s, uint32_t min, uint32_t max,
		  uint32_t *out);
int bench_opt_u64(const char *who, const char *opt, const char *s, uint64_t min, uint64_t max,
		  uint64_t *out);
int bench_opt_int(const char *who, const char *opt, const char *s, int min, int max, int *out);
int bench_opt_double(const char *who, const char *opt, const char *s, double min, double max,
		     double *out);
/* s must be one of names[0..n-1]; *out gets its index. Same message rule. */
int bench_opt_choice(const char *who, const char *opt, const char *s, const char *const *names,
		     int n, int *out);

/* CPU time, all CPUs summed, that the hypervisor ran something else while
 * this VM wanted to run ("steal" in /proc/stat), in ms since boot; -1 where
 * the kernel does not say. A point measured while it grew is not a
 * measurement of the runtime alone. */
double bench_steal_ms(void);

/* Process CPU seconds so far, every thread, user + system (getrusage). */
double bench_cpu_seconds(void);

/* "4 KiB", "64 MiB", "1000 B": exact binary units where possible. */
const char *bench_fmt_bytes(size_t n, char buf[24]);

#endif
