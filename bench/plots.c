/*
 * plots.c - PNG plots of a bench run, drawn by gnuplot (Debian's gnuplot-nox,
 * installed by tools/install-deps.sh): we write the data and a script into
 * the output directory, so a person can re-draw or restyle them by hand with
 * `gnuplot DIR/plots.gp`.
 *
 *  throughput.png  GB/s against batch size, one panel per dtype: tierkv's
 *                  pipeline and the mutex-queue baseline for each worker
 *                  count, the naive baseline, and the same-run copy limit
 *                  for each worker count as a horizontal line.
 *  latency.png     the distribution of producer store latency with eviction
 *                  running and without (from the evict scenario), log2
 *                  buckets.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bench/report.h"

/* Worker counts present in the report, ascending (at most 16). */
static size_t worker_counts(const bench_report *r, uint32_t *out)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++) {
		uint32_t w = r->results[i].workers;
		if (strcmp(r->results[i].scenario, "pipeline"))
			continue;
		size_t j = 0;
		while (j < n && out[j] != w)
			j++;
		if (j == n && n < 16)
			out[n++] = w;
	}
	for (size_t i = 1; i < n; i++) /* insertion sort: tiny */
		for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
			uint32_t t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

/* One data block per (dtype, scenario, workers): "batch gbps limit". */
static int write_throughput_data(const bench_report *r, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	static const char *const scen[] = {"pipeline", "mutex-queue", "naive"};
	uint32_t ws[16];
	size_t nw = worker_counts(r, ws);
	for (int d = 0; d < 2; d++) {
		tkv_dtype dt = d ? TKV_DTYPE_BF16 : TKV_DTYPE_F32;
		for (size_t s = 0; s < 3; s++) {
			for (size_t w = 0; w < nw; w++) {
				fprintf(f, "# %s %s workers=%u\n", bench_dtype_name(dt), scen[s], ws[w]);
				for (size_t i = 0; i < r->n; i++) {
					const bench_result *x = &r->results[i];
					if (x->dtype == dt && !strcmp(x->scenario, scen[s]) &&
					    (s == 2 || x->workers == ws[w]))
						fprintf(f, "%u %.4f %.4f\n", x->batch, x->gbps,
							x->limit_gbps);
				}
				fputs("\n\n", f); /* gnuplot index separator */
			}
		}
	}
	return fclose(f) ? -errno : 0;
}

static int write_latency_data(const bench_result *e, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	uint64_t tot[2] = {0, 0};
	for (uint32_t b = 0; b < e->lat_buckets; b++) {
		tot[0] += e->lat_hist[b];
		tot[1] += e->lat_hist_no_evict[b];
	}
	/* only the populated range, one empty bucket either side */
	uint32_t lo = e->lat_buckets, hi = 0;
	for (uint32_t b = 0; b < e->lat_buckets; b++)
		if (e->lat_hist[b] || e->lat_hist_no_evict[b]) {
			lo = b < lo ? b : lo;
			hi = b;
		}
	lo = lo > 0 && lo < e->lat_buckets ? lo - 1 : 0;
	hi = hi + 1 < e->lat_buckets ? hi + 1 : hi;
	fputs("# bucket_lo_ns fraction_with_eviction fraction_without\n", f);
	for (uint32_t b = lo; b <= hi; b++)
		fprintf(f, "%llu %.6f %.6f\n", 1ull << b,
			tot[0] ? (double)e->lat_hist[b] / (double)tot[0] : 0.0,
			tot[1] ? (double)e->lat_hist_no_evict[b] / (double)tot[1] : 0.0);
	return fclose(f) ? -errno : 0;
}

static const bench_result *evict_result(const bench_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->results[i].scenario, "evict") && r->results[i].lat_hist)
			return &r->results[i];
	return NULL;
}

static void throughput_script(FILE *g, const bench_report *r, const char *dir)
{
	uint32_t ws[16];
	size_t nw = worker_counts(r, ws);
	const char *geo = r->n ? r->results[0].geometry : "";
	fprintf(g, "set terminal pngcairo size 1400,560 noenhanced\n"
		   "set output '%s/throughput.png'\n"
		   "set multiplot layout 1,2 title 'tierkv-bench: store-to-completion throughput, %s'\n"
		   "set logscale x 2\nset xlabel 'batch (tokens per store)'\n"
		   "set ylabel 'GB/s of K+V copied'\nset key bottom right\nset grid\n"
		   "set yrange [0:*]\n",
		dir, geo);
	for (int d = 0; d < 2; d++) {
		fprintf(g, "set title '%s'\nplot ", d ? "bf16" : "f32");
		size_t base = (size_t)d * 3 * nw; /* index of this dtype's first block */
		for (size_t w = 0; w < nw; w++) {
			fprintf(g,
				"'%s/throughput.dat' index %zu using 1:2 with linespoints lw 2 "
				"lc %zu title 'tierkv, %u workers', "
				"'' index %zu using 1:2 with linespoints dt 2 lc %zu "
				"title 'mutex-queue, %u workers', "
				"'' index %zu using 1:3 with lines dt 3 lw 2 lc %zu "
				"title 'copy limit, %u threads', ",
				dir, base + w, w + 1, ws[w], base + nw + w, w + 1, ws[w], base + w,
				w + 1, ws[w]);
		}
		fprintf(g, "'%s/throughput.dat' index %zu using 1:2 with points pt 7 ps 1.5 lc "
			   "rgb 'black' title 'naive (seed design)'\n",
			dir, base + 2 * nw);
	}
	fputs("unset multiplot\n", g);
}

static void latency_script(FILE *g, const char *dir)
{
	fprintf(g, "reset\nset terminal pngcairo size 900,560 noenhanced\n"
		   "set output '%s/latency.png'\n"
		   "set title 'producer store latency (tkv_store call), evict scenario'\n"
		   "set logscale x 2\nset format x '%%.0s%%c'\n"
		   "set xlabel 'latency (ns; log2 buckets; k = 1e3, M = 1e6)'\n"
		   "set ylabel 'fraction of stores'\nset grid\nset key top right\n"
		   "plot '%s/latency.dat' using 1:2 with steps lw 2 title 'with eviction', "
		   "'' using 1:3 with steps lw 2 dt 2 title 'no eviction'\n",
		dir, dir);
}

int bench_plots(const bench_report *r, const char *dir)
{
	char path[4096];
	int rc;
	snprintf(path, sizeof(path), "%s/throughput.dat", dir);
	if ((rc = write_throughput_data(r, path)))
		goto fail;
	const bench_result *e = evict_result(r);
	snprintf(path, sizeof(path), "%s/latency.dat", dir);
	if (e && (rc = write_latency_data(e, path)))
		goto fail;
	snprintf(path, sizeof(path), "%s/plots.gp", dir);
	FILE *g = fopen(path, "w");
	if (!g) {
		rc = -errno;
		goto fail;
	}
	throughput_script(g, r, dir);
	if (e)
		latency_script(g, dir);
	if (fclose(g)) {
		rc = -errno;
		goto fail;
	}
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "gnuplot '%s'", path);
	int st = system(cmd);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "tierkv-bench: gnuplot failed on %s (is gnuplot installed? "
				"tools/install-deps.sh installs it)\n", path);
		return -EIO;
	}
	return 0;
fail:
	fprintf(stderr, "tierkv-bench: cannot write %s: %s\n", path, strerror(-rc));
	return rc;
}
