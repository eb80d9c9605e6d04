/*
 * main.c - the tierkv-bench command: `tierkv-bench [SCENARIO] [OPTIONS]`
 * runs one scenario (the default one when no name is given), plus the
 * helpers of bench.h every scenario shares.
 *
 * To add a scenario: write `int bench_<name>_main(int argc, char **argv)`
 * in bench/<name>.c, declare it in bench.h, add a line to `scenarios` below
 * (and point DEFAULT_SCENARIO at it if it should run by default).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/internals.h"

typedef struct scenario {
	const char *name;
	const char *summary;
	int (*main)(int argc, char **argv);
} scenario;

static const scenario scenarios[] = {
	{"default", "pipeline sweep + baselines + copy limits, the producers scenario (96 "
		    "sequences), the eviction scenario, then a prefix-cache replay slice; "
		    "table, JSON, CSV and PNG plots (the README's main job)",
	 bench_default_main},
	{"pipeline", "the hot-tier pipeline sweep only (workers x batch x dtype) with its "
		     "naive and mutex-queue baselines",
	 bench_pipeline_main},
	{"evict", "eviction and promotion GB/s vs same-run raw O_DIRECT write/read, and store "
		  "latency p50/p99/p999 with and without eviction",
	 bench_evict_main},
	{"producers", "1..64 engine threads storing the same total work (RAM only): aggregate "
		      "throughput, ratio to 1 thread, store/wait p50/p99, CPU s per GB, ring vs "
		      "mutex queue",
	 bench_producers_main},
	{"ring", "ns per descriptor through ck_ring SPSC vs MPSC (why the runtime uses MPSC)",
	 bench_ring_main},
	{"cache", "prefix cache: ns per block to attach a cached prefix of 1..4096 blocks, "
		  "and of a miss, vs hashing the prompt",
	 bench_cache_main},
	{"replay", "replay a Mooncake/Azure serving trace (FILE): prefix-cache hit ratio vs "
		   "capacity against the trace's ideal and an exact LRU, every reused byte checked",
	 bench_replay_main},
	{"shared", "shared tier (--seeds HOST:PORT of a Redis Cluster): put/get GB/s vs same-run "
		   "raw pipelined hiredis SET/GET of equal values",
	 bench_shared_main},
	{"kernels", "GB/s of every copy kernel (regular and streaming) and of glibc memcpy, "
		    "4 KiB..64 MiB, 1 and 2 threads; measures the stream threshold",
	 bench_kernels_main},
};
#define N_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* Run when the first argument is not a scenario name. */
#define DEFAULT_SCENARIO "default"

static void usage(FILE *f)
{
	fprintf(f, "usage: tierkv-bench [SCENARIO] [OPTIONS]   (default scenario: %s)\n"
		   "       tierkv-bench SCENARIO --help\n\nscenarios:\n",
		DEFAULT_SCENARIO);
	for (size_t i = 0; i < N_SCENARIOS; i++)
		fprintf(f, "  %-10s %s\n", scenarios[i].name, scenarios[i].summary);
}

static const scenario *find(const char *name)
{
	for (size_t i = 0; i < N_SCENARIOS; i++)
		if (strcmp(scenarios[i].name, name) == 0)
			return &scenarios[i];
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc > 1 && argv[1][0] != '-') {
		const scenario *s = find(argv[1]);
		if (!s) {
			fprintf(stderr, "tierkv-bench: unknown scenario '%s'\n", argv[1]);
			usage(stderr);
			return 2;
		}
		return s->main(argc - 1, argv + 1);
	}
	/* No scenario named: the default one gets all the options; its argv[0]
	 * is its name, as if it had been typed. */
	argv[0] = (char *)DEFAULT_SCENARIO;
	return find(DEFAULT_SCENARIO)->main(argc, argv);
}

int bench_parse_bytes(const char *s, size_t *out)
{
	return tkv__parse_bytes(s, out);
}

int bench_parse_dtype(const char *s, tkv_dtype *out)
{
	if (!strcmp(s, "f32"))
		*out = TKV_DTYPE_F32;
	else if (!strcmp(s, "bf16"))
		*out = TKV_DTYPE_BF16;
	else if (!strcmp(s, "f16"))
		*out = TKV_DTYPE_F16;
	else
		return -EINVAL;
	return 0;
}

int bench_opt_u64(const char *who, const char *opt, const char *s, uint64_t min, uint64_t max,
		  uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
	if (!s || *s < '0' || *s > '9' || *end || errno || v < min || v > max) {
		fprintf(stderr, "tierkv-bench %s: %s takes an integer in [%llu, %llu], got '%s'\n",
			who, opt, (unsigned long long)min, (unsigned long long)max, s ? s : "");
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int bench_opt_u32(const char *who, const char *opt, const char *s, uint32_t min, uint32_t max,
		  uint32_t *out)
{
	uint64_t v;
	int rc = bench_opt_u64(who, opt, s, min, max, &v);
	if (!rc)
		*out = (uint32_t)v;
	return rc;
}

int bench_opt_int(const char *who, const char *opt, const char *s, int min, int max, int *out)
{
	char *end = NULL;
	errno = 0;
	long long v = s && ((*s >= '0' && *s <= '9') || *s == '-') ? strtoll(s, &end, 10) : 0;
	if (!end || end == s || *end || errno || v < min || v > max) {
		fprintf(stderr, "tierkv-bench %s: %s takes an integer in [%d, %d], got '%s'\n", who,
			opt, min, max, s ? s : "");
		return -EINVAL;
	}
	*out = (int)v;
	return 0;
}

int bench_opt_double(const char *who, const char *opt, const char *s, double min, double max,
		     double *out)
{
	char *end = NULL;
	errno = 0;
	/* a plain decimal: no leading blanks, sign or hex (strtod takes them) */
	bool plain = s && ((*s >= '0' && *s <= '9') || *s == '.' || (*s == '-' && min < 0));
	double v = plain && strchr(s, 'x') == NULL && strchr(s, 'X') == NULL ? strtod(s, &end) : 0;
	if (!end || end == s || *end || errno || !(v >= min && v <= max)) {
		fprintf(stderr, "tierkv-bench %s: %s takes a number in [%g, %g], got '%s'\n", who,
			opt, min, max, s ? s : "");
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int bench_opt_choice(const char *who, const char *opt, const char *s, const char *const *names,
		     int n, int *out)
{
	for (int i = 0; i < n; i++)
		if (s && !strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
	fprintf(stderr, "tierkv-bench %s: %s takes", who, opt);
	for (int i = 0; i < n; i++)
		fprintf(stderr, "%s %s", i ? (i == n - 1 ? " or" : ",") : "", names[i]);
	fprintf(stderr, ", got '%s'\n", s ? s : "");
	return -EINVAL;
}

double bench_steal_ms(void)
{
	FILE *f = fopen("/proc/stat", "r");
	unsigned long long v[8];
	long hz = sysconf(_SC_CLK_TCK);
	int n = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			   &v[3], &v[4], &v[5], &v[6], &v[7])
		  : 0;
	if (f)
		fclose(f);
	return n == 8 && hz > 0 ? (double)v[7] * 1000.0 / (double)hz : -1;
}

double bench_cpu_seconds(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
	       (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

const char *bench_fmt_bytes(size_t n, char buf[24])
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;
	while (u < 4 && n >= 1024 && n % 1024 == 0) {
		n /= 1024;
		u++;
	}
	snprintf(buf, 24, "%zu %s", n, units[u]);
	return buf;
}
