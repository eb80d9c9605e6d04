/*
 * kernels.c - `tierkv-bench kernels`: GB/s of every copy kernel (regular and
 * streaming stores, every level this CPU has) beside glibc memcpy, in the
 * same run, for copy sizes 4 KiB..64 MiB with 1 and 2 threads; the crossover
 * size from which streaming wins (what the default stream threshold in
 * kernels/cpu_x86.c comes from); and CRC32C GB/s per variant.
 *
 * Two destination regimes, because which store wins depends on whether the
 * destination is in cache, not only on the copy size:
 *   hot   every call copies the same source chunk to the same destination
 *         chunk: both stay cached while they fit, the best case for regular
 *         stores (a buffer that is re-read at once);
 *   cold  the destination walks through a footprint far larger than the
 *         last-level cache (default 128 MiB per thread), so every copy
 *         writes lines that are not cached: the hot tier's case, where
 *         blocks are written once and not read again soon.
 * The source chunk is the same every call in both (a just-produced KV
 * row). All timing goes through bench/limits.c (pinned threads, best of
 * repetitions); GB/s = 1e9 bytes copied per second, summed over threads.
 *
 * Options: --json FILE, --threads 1,2, --min-size 4K, --max-size 64M,
 * --step 4 (size factor: 2 or 4), --ms 25 (per repetition), --reps 5,
 * --regime hot|cold|both, --footprint 128M (cold, per thread).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/limits.h"
#include "bench/internals.h"

#define MAX_THREADS_LIST 8
#define MAX_SIZES 32
#define MAX_VARIANTS (1 + 2 * 5)

typedef struct kopts {
	const char *json;
	uint32_t threads[MAX_THREADS_LIST];
	int n_threads;
	size_t min_size, max_size, footprint;
	unsigned step;
	double seconds;
	int reps;
	bool regime[2]; /* [0] hot, [1] cold */
} kopts;

static const char *const regime_name[2] = {"hot", "cold"};

typedef struct variant {
	char name[16];
	bench_copy_fn fn;
	bool stream; /* non-temporal stores */
} variant;

typedef struct results {
	size_t sizes[MAX_SIZES];
	int n_sizes;
	variant v[MAX_VARIANTS];
	int n_v;
	/* [regime][thread index][size][variant] GB/s */
	double gbps[2][MAX_THREADS_LIST][MAX_SIZES][MAX_VARIANTS];
	size_t crossover[2][MAX_THREADS_LIST]; /* 0: streaming never wins at the largest size */
} results;

static void kusage(FILE *f)
{
	fprintf(f, "usage: tierkv-bench kernels [--json FILE] [--threads 1,2] [--min-size 4K]\n"
		   "         [--max-size 64M] [--step 4] [--ms 25] [--reps 5]\n"
		   "         [--regime hot|cold|both] [--footprint 128M]\n");
}

static int parse_threads(const char *s, kopts *o)
{
	o->n_threads = 0;
	while (*s) {
		char *end;
		unsigned long t = strtoul(s, &end, 10);
		if (end == s || t == 0 || t > 1024 || o->n_threads == MAX_THREADS_LIST)
			return -EINVAL;
		o->threads[o->n_threads++] = (uint32_t)t;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -EINVAL;
	}
	return o->n_threads ? 0 : -EINVAL;
}

static int parse_opts(int argc, char **argv, kopts *o)
{
	*o = (kopts){
		.threads = {1, 2},
		.n_threads = 2,
		.min_size = 4 << 10,
		.max_size = 64 << 20,
		.footprint = 128 << 20,
		.step = 4,
		.seconds = 0.025,
		.reps = 5,
		.regime = {true, true},
	};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int rc = 0;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			kusage(stdout);
			exit(0);
		}
		if (!v) {
			rc = -EINVAL;
		} else if (strcmp(a, "--json") == 0) {
			o->json = v;
		} else if (strcmp(a, "--threads") == 0) {
			rc = parse_threads(v, o);
		} else if (strcmp(a, "--min-size") == 0) {
			rc = bench_parse_bytes(v, &o->min_size);
		} else if (strcmp(a, "--max-size") == 0) {
			rc = bench_parse_bytes(v, &o->max_size);
		} else if (strcmp(a, "--footprint") == 0) {
			rc = bench_parse_bytes(v, &o->footprint);
		} else if (strcmp(a, "--step") == 0) {
			static const char *const steps[] = {"2", "4"};
			int k;
			rc = bench_opt_choice("kernels", a, v, steps, 2, &k);
			if (!rc)
				o->step = k ? 4 : 2;
		} else if (strcmp(a, "--ms") == 0) {
			double ms;
			rc = bench_opt_double("kernels", a, v, 0.001, 1e6, &ms);
			if (!rc)
				o->seconds = ms / 1000;
		} else if (strcmp(a, "--reps") == 0) {
			rc = bench_opt_int("kernels", a, v, 1, 100000, &o->reps);
		} else if (strcmp(a, "--regime") == 0) {
			o->regime[0] = strcmp(v, "hot") == 0 || strcmp(v, "both") == 0;
			o->regime[1] = strcmp(v, "cold") == 0 || strcmp(v, "both") == 0;
			rc = o->regime[0] || o->regime[1] ? 0 : -EINVAL;
		} else {
			rc = -EINVAL;
		}
		if (rc) {
			fprintf(stderr, "tierkv-bench kernels: bad option '%s%s%s'\n", a, v ? " " : "",
				v ? v : "");
			kusage(stderr);
			return rc;
		}
		i++;
	}
	if (o->min_size == 0 || o->min_size > o->max_size) {
		fprintf(stderr, "tierkv-bench kernels: need 0 < --min-size <= --max-size\n");
		return -EINVAL;
	}
	return 0;
}

static void collect_variants(results *r)
{
	r->n_v = 0;
	r->v[r->n_v++] = (variant){"memcpy", bench_libc_memcpy, false};
	for (int isa = TKV_ISA_SCALAR; isa <= TKV_ISA_NEON; isa++) {
		const tkv__kernels *k = tkv__kernels_for((tkv_isa)isa);
		if (!k)
			continue;
		variant *v = &r->v[r->n_v++];
		*v = (variant){.fn = k->copy, .stream = false};
		snprintf(v->name, sizeof(v->name), "%s", tkv_isa_name((tkv_isa)isa));
		if (k->copy_stream != k->copy) { /* scalar has no streaming store */
			v = &r->v[r->n_v++];
			*v = (variant){.fn = k->copy_stream, .stream = true};
			snprintf(v->name, sizeof(v->name), "%s-nt", tkv_isa_name((tkv_isa)isa));
		}
	}
}

/* Best streaming and best regular (memcpy included) figure of one row. */
static void row_best(const results *r, const double *row, double *stream, double *regular,
		     int *best_v)
{
	*stream = *regular = 0;
	*best_v = 0;
	for (int v = 0; v < r->n_v; v++) {
		double *slot = r->v[v].stream ? stream : regular;
		if (row[v] > *slot)
			*slot = row[v];
		if (row[v] > row[*best_v])
			*best_v = v;
	}
}

/* Streaming "does not lose" at a size when it is within this factor of the
 * best regular copy: differences under 2% are below the run-to-run noise
 * here, and a tie costs nothing while streaming keeps the cache for others. */
#define TIE 0.98

/* Smallest size from which streaming does not lose to memcpy or any regular
 * kernel, there and at every larger measured size; 0 if it loses at the
 * largest. */
static size_t find_crossover(const results *r, double (*rows)[MAX_VARIANTS])
{
	size_t cross = 0;
	for (int s = r->n_sizes - 1; s >= 0; s--) {
		double st, reg;
		int bv;
		row_best(r, rows[s], &st, &reg, &bv);
		if (st < TIE * reg)
			break;
		cross = r->sizes[s];
	}
	return cross;
}

static void print_table(const kopts *o, results *r, int g, int ti)
{
	char b[24], b2[24];
	uint32_t threads = o->threads[ti];
	if (g == 0)
		printf("\n== hot: same source and destination chunk every call; %u thread%s ==\n",
		       threads, threads > 1 ? "s" : "");
	else
		printf("\n== cold: destination walks %s per thread (not in cache); %u thread%s ==\n",
		       bench_fmt_bytes(o->footprint, b), threads, threads > 1 ? "s" : "");
	printf("GB/s = 1e9 bytes copied per second, summed over threads; best of %d x %.0f ms\n",
	       o->reps, o->seconds * 1e3);
	printf("%9s", "size");
	for (int v = 0; v < r->n_v; v++)
		printf(" %9s", r->v[v].name);
	printf("  | %-9s %8s\n", "best", "x memcpy");
	for (int s = 0; s < r->n_sizes; s++) {
		const double *row = r->gbps[g][ti][s];
		double st, reg;
		int bv;
		row_best(r, row, &st, &reg, &bv);
		printf("%9s", bench_fmt_bytes(r->sizes[s], b));
		for (int v = 0; v < r->n_v; v++)
			printf(" %9.2f", row[v]);
		printf("  | %-9s %8.2f\n", r->v[bv].name, row[bv] / row[0]);
	}
	size_t c = r->crossover[g][ti];
	int ci = 0;
	while (ci < r->n_sizes && r->sizes[ci] != c)
		ci++;
	if (!c)
		printf("crossover: streaming loses at %s: never use it here\n",
		       bench_fmt_bytes(r->sizes[r->n_sizes - 1], b));
	else if (ci == 0)
		printf("crossover: streaming does not lose at any measured size (<= %s)\n",
		       bench_fmt_bytes(c, b));
	else
		printf("crossover: streaming matches or beats memcpy and every regular kernel "
		       "from %s up (not at %s)\n", bench_fmt_bytes(c, b),
		       bench_fmt_bytes(r->sizes[ci - 1], b2));
}

static int measure(const kopts *o, results *r, unsigned char *src, unsigned char *dst)
{
	for (int g = 0; g < 2; g++) {
		if (!o->regime[g])
			continue;
		for (int ti = 0; ti < o->n_threads; ti++) {
			uint32_t t = o->threads[ti];
			for (int s = 0; s < r->n_sizes; s++) {
				size_t chunk = r->sizes[s];
				size_t fp = g == 0 ? chunk : (o->footprint > chunk ? o->footprint : chunk);
				bench_copy_job job = {
					.src = src,
					.src_bytes = chunk * t,
					.dst = dst,
					.footprint = fp * t,
					.chunk = chunk,
					.threads = t,
					.seconds = o->seconds,
					.reps = 1,
				};
				/* Repetitions outermost: a burst of load from elsewhere
				 * then hits one repetition of every variant, not all
				 * repetitions of one, and best-of discards it. */
				double *row = r->gbps[g][ti][s];
				for (int rep = 0; rep < o->reps; rep++)
					for (int v = 0; v < r->n_v; v++) {
						job.fn = r->v[v].fn;
						double gb = bench_copy_gbps(&job);
						if (gb < 0) {
							fprintf(stderr, "tierkv-bench kernels: %s: %s\n",
								r->v[v].name, strerror((int)-gb));
							return (int)gb;
						}
						if (gb > row[v])
							row[v] = gb;
					}
			}
			r->crossover[g][ti] = find_crossover(r, r->gbps[g][ti]);
			print_table(o, r, g, ti);
			fflush(stdout);
		}
	}
	return 0;
}

/* ---- CRC32C ---- */

typedef struct crc_variant {
	char name[32];
	tkv__crc_fn fn;
} crc_variant;

static const size_t crc_sizes[] = {4 << 10, 64 << 10, 1 << 20};
#define N_CRC_SIZES (sizeof(crc_sizes) / sizeof(crc_sizes[0]))

static int collect_crcs(crc_variant *c)
{
	int n = 0;
	for (int isa = TKV_ISA_SCALAR; isa <= TKV_ISA_NEON; isa++) {
		const tkv__kernels *k = tkv__kernels_for((tkv_isa)isa);
		if (!k)
			continue;
		int j = 0;
		while (j < n && c[j].fn != k->crc32c)
			j++;
		if (j == n) {
			c[n].fn = k->crc32c;
			snprintf(c[n++].name, sizeof(c[0].name), "%s", tkv_isa_name((tkv_isa)isa));
		} else { /* levels sharing one CRC: name it "avx2/avx512" */
			size_t len = strlen(c[j].name);
			snprintf(c[j].name + len, sizeof(c[0].name) - len, "/%s",
				 tkv_isa_name((tkv_isa)isa));
		}
	}
	return n;
}

static double crc_gbps(tkv__crc_fn fn, const unsigned char *buf, size_t n, const kopts *o)
{
	double best = 0;
	volatile uint32_t sink = 0; /* keeps the calls from being dropped */
	for (int r = 0; r < o->reps; r++) {
		uint64_t bytes = 0, t0 = bench_now_ns(), now;
		uint32_t c = 0;
		do {
			for (int k = 0; k < 16; k++)
				c = fn(c, buf, n);
			bytes += 16 * n;
			now = bench_now_ns();
		} while (now - t0 < (uint64_t)(o->seconds * 1e9));
		sink = c;
		double g = (double)bytes / (double)(now - t0);
		if (g > best)
			best = g;
	}
	(void)sink;
	return best;
}

/* ---- report ---- */

static void print_machine(void)
{
	char line[256], model[128] = "unknown CPU";
	FILE *f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "model name", 10) == 0) {
			char *p = strchr(line, ':');
			if (p) {
				snprintf(model, sizeof(model), "%s", p + 2);
				model[strcspn(model, "\n")] = '\0';
			}
			break;
		}
	if (f)
		fclose(f);
	/* sysfs, not sysconf(_SC_LEVEL3_CACHE_SIZE): under a hypervisor glibc's
	 * CPUID-based figure can be far off (320 MiB for a 32 MiB L3 here). */
	char l3[32] = "?", load[32] = "?";
	if ((f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r"))) {
		if (fgets(l3, sizeof(l3), f))
			l3[strcspn(l3, "\n")] = '\0';
		fclose(f);
	}
	if ((f = fopen("/proc/loadavg", "r"))) {
		if (fscanf(f, "%31s", load) != 1)
			strcpy(load, "?");
		fclose(f);
	}
	const tkv__kernels *k = tkv__kernels_get(TKV_ISA_AUTO);
	char b[24];
	printf("tierkv-bench kernels: %s, %ld CPUs online, L3 %s, load average %s "
	       "(other load lowers every figure)\n",
	       model, sysconf(_SC_NPROCESSORS_ONLN), l3, load);
	printf("selected ISA %s, stream threshold %s\n", tkv_isa_name(k->isa),
	       k->stream_threshold == SIZE_MAX ? "off" : bench_fmt_bytes(k->stream_threshold, b));
}

static size_t recommended(const kopts *o, const results *r)
{
	/* The cold regime is the hot tier's; the largest crossover over the
	 * thread counts is safe for all of them. */
	size_t thr = 0;
	for (int ti = 0; ti < o->n_threads; ti++) {
		size_t c = r->crossover[1][ti];
		if (!c)
			return SIZE_MAX;
		if (c > thr)
			thr = c;
	}
	return thr;
}

static void write_json(const kopts *o, const results *r, const crc_variant *c, int nc,
		       double crc[][N_CRC_SIZES])
{
	FILE *f = fopen(o->json, "w");
	if (!f) {
		fprintf(stderr, "tierkv-bench kernels: cannot write %s: %s\n", o->json, strerror(errno));
		return;
	}
	fprintf(f, "{\n  \"scenario\": \"kernels\",\n"
		   "  \"unit\": \"GB/s = 1e9 bytes copied per second, summed over threads\",\n"
		   "  \"selected_isa\": \"%s\",\n  \"reps\": %d,\n  \"rep_seconds\": %g,\n"
		   "  \"cold_footprint_per_thread\": %zu,\n  \"copy\": [",
		tkv_isa_name(tkv_isa_select(TKV_ISA_AUTO)), o->reps, o->seconds, o->footprint);
	const char *sep = "\n";
	for (int g = 0; g < 2; g++)
		for (int ti = 0; o->regime[g] && ti < o->n_threads; ti++)
			for (int s = 0; s < r->n_sizes; s++)
				for (int v = 0; v < r->n_v; v++) {
					fprintf(f, "%s    {\"regime\": \"%s\", \"threads\": %u, "
						   "\"bytes\": %zu, \"variant\": \"%s\", \"gbps\": %.3f}",
						sep, regime_name[g], o->threads[ti], r->sizes[s],
						r->v[v].name, r->gbps[g][ti][s][v]);
					sep = ",\n";
				}
	fprintf(f, "\n  ],\n  \"crossover\": [");
	sep = "\n";
	for (int g = 0; g < 2; g++)
		for (int ti = 0; o->regime[g] && ti < o->n_threads; ti++) {
			fprintf(f, "%s    {\"regime\": \"%s\", \"threads\": %u, \"bytes\": %zu}", sep,
				regime_name[g], o->threads[ti], r->crossover[g][ti]);
			sep = ",\n";
		}
	fprintf(f, "\n  ],\n");
	if (o->regime[1]) {
		size_t rec = recommended(o, r);
		if (rec == SIZE_MAX)
			fprintf(f, "  \"stream_threshold\": \"off\",\n");
		else
			fprintf(f, "  \"stream_threshold\": %zu,\n", rec);
	}
	fprintf(f, "  \"crc32c\": [");
	sep = "\n";
	for (int i = 0; i < nc; i++)
		for (size_t s = 0; s < N_CRC_SIZES; s++) {
			fprintf(f, "%s    {\"variant\": \"%s\", \"bytes\": %zu, \"gbps\": %.3f}", sep,
				c[i].name, crc_sizes[s], crc[i][s]);
			sep = ",\n";
		}
	fprintf(f, "\n  ]\n}\n");
	fclose(f);
	printf("\nwrote %s\n", o->json);
}

static void run_crc(const kopts *o, const unsigned char *buf, crc_variant *cv, int nc,
		    double crc[][N_CRC_SIZES])
{
	char b[24];
	printf("\n== CRC32C, 1 thread, same buffer every call (cached); GB/s ==\n%9s", "size");
	for (int i = 0; i < nc; i++)
		printf(" %12s", cv[i].name);
	printf("\n");
	for (size_t s = 0; s < N_CRC_SIZES; s++) {
		printf("%9s", bench_fmt_bytes(crc_sizes[s], b));
		for (int i = 0; i < nc; i++)
			printf(" %12.2f", crc[i][s] = crc_gbps(cv[i].fn, buf, crc_sizes[s], o));
		printf("\n");
	}
}

static void print_summary(const kopts *o, const results *r)
{
	char b[24];
	printf("\nCrossover: the smallest size from which the best streaming kernel is at\n"
	       "least as fast (within %.0f%%, the noise) as memcpy and every regular kernel,\n"
	       "at that size and all larger ones.\n", (1 - TIE) * 100);
	for (int g = 0; g < 2; g++)
		for (int ti = 0; o->regime[g] && ti < o->n_threads; ti++) {
			size_t c = r->crossover[g][ti];
			printf("  %-4s %u thread%s: %s\n", regime_name[g], o->threads[ti],
			       o->threads[ti] > 1 ? "s" : " ",
			       c ? bench_fmt_bytes(c, b) : "never (loses at the largest size)");
		}
	if (o->regime[1]) {
		size_t rec = recommended(o, r);
		printf("Measured stream threshold (cold regime: the hot tier's writes; largest "
		       "over thread counts): %s\n",
		       rec == SIZE_MAX ? "off" : bench_fmt_bytes(rec, b));
	}
}

int bench_kernels_main(int argc, char **argv)
{
	kopts o;
	if (parse_opts(argc, argv, &o))
		return 2;
	results *r = calloc(1, sizeof(*r));
	if (!r)
		return 1;
	for (size_t s = o.min_size; s <= o.max_size && r->n_sizes < MAX_SIZES; s *= o.step)
		r->sizes[r->n_sizes++] = s;
	collect_variants(r);

	/* Thread t copies from src[t * max_size, ...) to
	 * dst[t * per_thread, ...): both allocated once, faulted in up front. */
	uint32_t max_t = 0;
	for (int i = 0; i < o.n_threads; i++)
		max_t = o.threads[i] > max_t ? o.threads[i] : max_t;
	size_t per_thread = o.footprint > o.max_size ? o.footprint : o.max_size;
	unsigned char *src = bench_source_buffer(o.max_size * max_t);
	unsigned char *dst = NULL;
	if (!src || posix_memalign((void **)&dst, 4096, per_thread * max_t) != 0) {
		fprintf(stderr, "tierkv-bench kernels: out of memory\n");
		free(src);
		free(r);
		return 1;
	}
	memset(dst, 0, per_thread * max_t);

	print_machine();
	int rc = measure(&o, r, src, dst);
	if (!rc) {
		crc_variant cv[TKV_ISA_NEON + 1];
		double crc[TKV_ISA_NEON + 1][N_CRC_SIZES];
		int nc = collect_crcs(cv);
		run_crc(&o, src, cv, nc, crc);
		print_summary(&o, r);
		if (o.json)
			write_json(&o, r, cv, nc, crc);
	}
	free(dst);
	free(src);
	free(r);
	return rc ? 1 : 0;
}
