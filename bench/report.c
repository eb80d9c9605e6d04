/*
 * report.c - table, JSON and CSV output of bench results, and the progress
 * line (see report.h).
 */
#include "bench/report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/internals.h"

const bench_geometry bench_geometries[] = {
	{"llama3-8b", 32, 8, 128},
	{"llama3-70b", 80, 8, 128},
	{"mistral-7b", 32, 8, 128},
	{"qwen2.5-7b", 28, 4, 128},
	{NULL, 0, 0, 0},
};

const bench_geometry *bench_geometry_find(const char *name)
{
	for (const bench_geometry *g = bench_geometries; g->name; g++)
		if (!strcmp(g->name, name))
			return g;
	return NULL;
}

const char *bench_dtype_name(tkv_dtype d)
{
	return d == TKV_DTYPE_F32 ? "f32" : d == TKV_DTYPE_F16 ? "f16" : "bf16";
}

void bench_report_init(bench_report *r, size_t planned)
{
	memset(r, 0, sizeof(*r));
	r->planned = planned;
	r->t0_ns = bench_now_ns();
	r->progress = isatty(STDERR_FILENO);
}

void bench_report_free(bench_report *r)
{
	free(r->results);
	memset(r, 0, sizeof(*r));
}

void bench_report_add(bench_report *r, const bench_result *res)
{
	bench_result *n = tkv__array_grow(r->results, &r->cap, r->n + 1, sizeof(*n));
	if (!n) {
		fprintf(stderr, "tierkv-bench: out of memory keeping results\n");
		return;
	}
	r->results = n;
	r->results[r->n++] = *res;
}

void bench_progress(bench_report *r, const char *what)
{
	if (!r->progress || !r->planned)
		return;
	double el = (double)(bench_now_ns() - r->t0_ns) / 1e9;
	double eta = r->n ? el / (double)r->n * (double)(r->planned - (r->n < r->planned ? r->n : r->planned)) : 0;
	fprintf(stderr, "\r\033[K[%zu/%zu] %s  elapsed %.0fs  ETA %.0fs", r->n, r->planned, what, el,
		eta);
	if (r->n >= r->planned)
		fputc('\n', stderr);
	fflush(stderr);
}

/* The ring's paired column names what it was paired with. */
static const char *versus_header(const bench_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->results[i].versus && !strcmp(r->results[i].versus, "ring-again"))
			return "ring/ring-again (min-max)";
	return "ring/mutex (min-max)";
}

void bench_report_table(const bench_report *r, FILE *f)
{
	fprintf(f, "%-12s %-10s %-5s %7s %5s %14s %8s %8s %7s %9s %13s %13s %8s %-19s %-22s\n",
		"scenario", "geometry", "dtype", "workers", "batch", "layer-tok/s", "GB/s", "limit",
		"ratio", "vs naive", "GB/s min-max", "ratio min-max", "steal ms",
		"CPUs/GB (min-max)", versus_header(r));
	for (size_t i = 0; i < r->n; i++) {
		const bench_result *x = &r->results[i];
		if (!strcmp(x->scenario, "producers"))
			continue; /* its own table (producers.c) */
		char speedup[16] = "        -", spread[32] = "-", rspread[32] = "-", steal[16] = "-",
		     cpu[48] = "-", vs[48] = "-";
		if (x->speedup > 0)
			snprintf(speedup, sizeof(speedup), "%8.1fx", x->speedup);
		if (x->gbps_hi > 0) /* the pipeline sweep's points */
			snprintf(spread, sizeof(spread), "%.2f-%.2f", x->gbps_lo, x->gbps_hi);
		if (x->ratio_hi > 0) /* repetitions paired with limits */
			snprintf(rspread, sizeof(rspread), "%.3f-%.3f", x->ratio_lo, x->ratio_hi);
		if (x->gbps_hi > 0 && x->steal_ms >= 0)
			snprintf(steal, sizeof(steal), "%.0f", x->steal_ms);
		if (x->cpu_s_per_gb > 0 && x->cpu_span.hi > 0)
			snprintf(cpu, sizeof(cpu), "%.3f (%.3f-%.3f)", x->cpu_s_per_gb, x->cpu_span.lo,
				 x->cpu_span.hi);
		else if (x->cpu_s_per_gb > 0)
			snprintf(cpu, sizeof(cpu), "%.3f", x->cpu_s_per_gb);
		if (x->vs_mutex > 0) /* the ring's points, paired with the mutex queue's */
			snprintf(vs, sizeof(vs), "%.3f (%.3f-%.3f)", x->vs_mutex, x->vs_mutex_lo,
				 x->vs_mutex_hi);
		fprintf(f, "%-12s %-10s %-5s %7u %5u %14.0f %8.2f %8.2f %7.3f %s %13s %13s %8s %-19s %s\n",
			x->scenario, x->geometry, bench_dtype_name(x->dtype), x->workers, x->batch,
			x->tokens_per_s, x->gbps, x->limit_gbps, x->ratio, speedup, spread, rspread,
			steal, cpu, vs);
	}
}

int bench_report_json(const bench_report *r, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "tierkv-bench: cannot write %s: %s\n", path, strerror(errno));
		return -errno;
	}
	fputs("[\n", f);
	for (size_t i = 0; i < r->n; i++) {
		const bench_result *x = &r->results[i];
		fprintf(f,
			"  {\"scenario\": \"%s\", \"geometry\": \"%s\", \"dtype\": \"%s\", "
			"\"workers\": %u, \"batch\": %u, \"tokens_per_s\": %.1f, \"gbps\": %.4f, "
			"\"limit_gbps\": %.4f, \"ratio\": %.4f, \"speedup_vs_naive\": %.3f",
			x->scenario, x->geometry, bench_dtype_name(x->dtype), x->workers, x->batch,
			x->tokens_per_s, x->gbps, x->limit_gbps, x->ratio, x->speedup);
		if (!strcmp(x->scenario, "evict"))
			fprintf(f,
				", \"evict_gbps\": %.4f, \"raw_write_gbps\": %.4f, \"write_ratio\": %.4f"
				", \"promote_gbps\": %.4f, \"raw_read_gbps\": %.4f, \"read_ratio\": %.4f"
				", \"raw_read_crc_gbps\": %.4f, \"read_crc_ratio\": %.4f"
				", \"promote_cpu_s_per_gb\": %.4f, \"prefetch_cpu_s_per_gb\": %.4f"
				", \"viewer_cpu_s_per_gb\": %.4f, \"promote_cpu_bound_gbps\": %.3f"
				", \"promote_cpu_bound_gbps_min\": %.3f, \"promote_cpu_bound_gbps_max\": %.3f"
				", \"evictor_cpu_s_per_gb\": %.4f"
				", \"evictor_cpu_s_per_gb_min\": %.4f, \"evictor_cpu_s_per_gb_max\": %.4f"
				", \"p50_ns\": %.0f, \"p99_ns\": %.0f, \"p999_ns\": %.0f"
				", \"p50_ns_no_evict\": %.0f, \"p99_ns_no_evict\": %.0f"
				", \"p999_ns_no_evict\": %.0f, \"p99_ratio\": %.4f"
				", \"blocked_stores\": %llu, \"blocked_stores_no_evict\": %llu",
				x->evict_gbps, x->raw_write_gbps, x->write_ratio, x->promote_gbps,
				x->raw_read_gbps, x->read_ratio, x->raw_read_crc_gbps, x->read_crc_ratio,
				x->promote_cpu_s_per_gb, x->prefetch_cpu_s_per_gb,
				x->viewer_cpu_s_per_gb, x->promote_cpu_bound_gbps,
				x->promote_cpu_bound_span.lo, x->promote_cpu_bound_span.hi,
				x->evictor_cpu_s_per_gb, x->evictor_cpu_span.lo, x->evictor_cpu_span.hi,
				x->p50_ns, x->p99_ns, x->p999_ns,
				x->p50_ns_no_evict, x->p99_ns_no_evict, x->p999_ns_no_evict, x->p99_ratio,
				(unsigned long long)x->blocked_stores,
				(unsigned long long)x->blocked_stores_no_evict);
		if (!strcmp(x->scenario, "evict") && x->p99_span.hi > 0)
			fprintf(f,
				", \"p50_ns_min\": %.0f, \"p50_ns_max\": %.0f"
				", \"p99_ns_min\": %.0f, \"p99_ns_max\": %.0f"
				", \"p999_ns_min\": %.0f, \"p999_ns_max\": %.0f"
				", \"p50_ns_no_evict_min\": %.0f, \"p50_ns_no_evict_max\": %.0f"
				", \"p99_ns_no_evict_min\": %.0f, \"p99_ns_no_evict_max\": %.0f"
				", \"p999_ns_no_evict_min\": %.0f, \"p999_ns_no_evict_max\": %.0f"
				", \"p99_ratio_min\": %.4f, \"p99_ratio_max\": %.4f",
				x->p50_span.lo, x->p50_span.hi, x->p99_span.lo, x->p99_span.hi,
				x->p999_span.lo, x->p999_span.hi, x->p50_span_no_evict.lo,
				x->p50_span_no_evict.hi, x->p99_span_no_evict.lo, x->p99_span_no_evict.hi,
				x->p999_span_no_evict.lo, x->p999_span_no_evict.hi, x->p99_ratio_span.lo,
				x->p99_ratio_span.hi);
		if (x->gbps_hi > 0 && strcmp(x->scenario, "producers"))
			fprintf(f, ", \"gbps_min\": %.4f, \"gbps_max\": %.4f, \"reps\": %d, \"steal_ms\": %.0f",
				x->gbps_lo, x->gbps_hi, x->reps, x->steal_ms);
		if (x->ratio_hi > 0)
			fprintf(f, ", \"ratio_min\": %.4f, \"ratio_max\": %.4f", x->ratio_lo,
				x->ratio_hi);
		if (!strcmp(x->scenario, "producers"))
			fprintf(f,
				", \"threads\": %u, \"queue\": \"%s\", \"ratio_to_1\": %.4f"
				", \"gbps_min\": %.4f, \"gbps_max\": %.4f, \"reps\": %d"
				", \"store_p50_ns\": %.0f, \"store_p99_ns\": %.0f"
				", \"wait_p50_ns\": %.0f, \"wait_p99_ns\": %.0f, \"cpu_s_per_gb\": %.4f",
				x->threads, x->queue, x->ratio_to_1, x->gbps_lo, x->gbps_hi, x->reps,
				x->store_p50_ns, x->store_p99_ns, x->wait_p50_ns, x->wait_p99_ns,
				x->cpu_s_per_gb);
		if (!strcmp(x->scenario, "producers") && x->store_p50_span.hi > 0)
			fprintf(f,
				", \"store_p50_ns_min\": %.0f, \"store_p50_ns_max\": %.0f"
				", \"store_p99_ns_min\": %.0f, \"store_p99_ns_max\": %.0f"
				", \"wait_p50_ns_min\": %.0f, \"wait_p50_ns_max\": %.0f"
				", \"wait_p99_ns_min\": %.0f, \"wait_p99_ns_max\": %.0f",
				x->store_p50_span.lo, x->store_p50_span.hi, x->store_p99_span.lo,
				x->store_p99_span.hi, x->wait_p50_span.lo, x->wait_p50_span.hi,
				x->wait_p99_span.lo, x->wait_p99_span.hi);
		if (strcmp(x->scenario, "producers") && x->cpu_s_per_gb > 0)
			fprintf(f, ", \"cpu_s_per_gb\": %.4f", x->cpu_s_per_gb);
		if (x->cpu_span.hi > 0)
			fprintf(f, ", \"cpu_s_per_gb_min\": %.4f, \"cpu_s_per_gb_max\": %.4f",
				x->cpu_span.lo, x->cpu_span.hi);
		if (x->waiters)
			fprintf(f, ", \"waiters\": \"%s\"", x->waiters);
		if (x->wait_each)
			fprintf(f, ", \"wait_each\": \"%s\"", x->wait_each);
		if (x->vs_mutex > 0 && x->versus)
			fprintf(f, ", \"versus\": \"%s\"", x->versus);
		if (x->vs_mutex > 0)
			fprintf(f,
				", \"vs_mutex\": %.4f, \"vs_mutex_min\": %.4f, \"vs_mutex_max\": %.4f"
				", \"cpu_vs_mutex\": %.4f, \"cpu_vs_mutex_min\": %.4f"
				", \"cpu_vs_mutex_max\": %.4f",
				x->vs_mutex, x->vs_mutex_lo, x->vs_mutex_hi, x->cpu_vs_mutex,
				x->cpu_vs_mutex_lo, x->cpu_vs_mutex_hi);
		fprintf(f, "}%s\n", i + 1 < r->n ? "," : "");
	}
	fputs("]\n", f);
	return fclose(f) ? -errno : 0;
}

int bench_report_csv(const bench_report *r, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "tierkv-bench: cannot write %s: %s\n", path, strerror(errno));
		return -errno;
	}
	/* the spread columns are empty where a result has none (the evict
	 * scenario's figures are in the JSON) */
	fputs("scenario,geometry,dtype,workers,batch,tokens_per_s,gbps,limit_gbps,ratio,"
	      "speedup_vs_naive,reps,gbps_min,gbps_max,ratio_min,ratio_max\n", f);
	for (size_t i = 0; i < r->n; i++) {
		const bench_result *x = &r->results[i];
		char spread[96] = ",,", rspread[48] = ",";
		if (x->gbps_hi > 0)
			snprintf(spread, sizeof(spread), "%d,%.4f,%.4f", x->reps, x->gbps_lo, x->gbps_hi);
		if (x->ratio_hi > 0)
			snprintf(rspread, sizeof(rspread), "%.4f,%.4f", x->ratio_lo, x->ratio_hi);
		fprintf(f, "%s,%s,%s,%u,%u,%.1f,%.4f,%.4f,%.4f,%.3f,%s,%s\n", x->scenario, x->geometry,
			bench_dtype_name(x->dtype), x->workers, x->batch, x->tokens_per_s, x->gbps,
			x->limit_gbps, x->ratio, x->speedup, spread, rspread);
	}
	return fclose(f) ? -errno : 0;
}
