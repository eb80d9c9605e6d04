/*
 * report.h - the results of a tierkv-bench run and their three outputs: the
 * table on stdout, a JSON array (--json FILE) and a CSV (--csv FILE), one
 * object/row per result. Every result carries the limit it is divided by,
 * measured in the same run (bench/limits.h).
 */
#ifndef TKV_BENCH_REPORT_H
#define TKV_BENCH_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tierkv.h"

/* A named model geometry. */
typedef struct bench_geometry {
	const char *name;
	uint32_t n_layers, n_kv_heads, head_dim;
} bench_geometry;

/* NULL if unknown; the names of bench_geometries: llama3-8b, llama3-70b,
 * mistral-7b, qwen2.5-7b. */
const bench_geometry *bench_geometry_find(const char *name);
extern const bench_geometry bench_geometries[];

/* The lowest and highest of one figure over the repetitions behind it,
 * each repetition's own value (0, 0: not measured per repetition). */
typedef struct bench_span {
	double lo, hi;
} bench_span;

typedef struct bench_result {
	const char *scenario; /* "pipeline", "naive", "mutex-queue" */
	const char *geometry;
	tkv_dtype dtype;
	uint32_t workers, batch;
	double tokens_per_s; /* layer-tokens per second */
	double gbps;         /* 1e9 bytes of K+V copied per second */
	double limit_gbps;   /* same-run copy limit for `workers` threads */
	double ratio;        /* gbps / limit_gbps */
	double ratio_lo, ratio_hi; /* pipeline, mutex-queue and producers points: the
				    * lowest and highest ratio of their repetitions,
				    * each to the limit timed next to it; naive: its
				    * slowest and fastest repetition over its limit
				    * (0 elsewhere) */
	double speedup;      /* tokens_per_s / the naive baseline's */
	double steal_ms;     /* pipeline points: CPU time the hypervisor took from this
			      * machine during the timed repetitions (/proc/stat steal,
			      * all CPUs); -1 where unknown */

	/* scenario "evict" only (0 elsewhere): eviction and promotion
	 * bandwidth against raw O_DIRECT I/O of the same total size on the
	 * same directory, measured in the same run (raw_write_gbps: the better
	 * of the two write passes around the run kept for eviction;
	 * raw_read_gbps: the better run's raw reads next to its promotion
	 * rounds; bench/README.md, "The evict scenario"); and the
	 * producer's store latency with eviction running against the same load
	 * with everything fitting in the hot tier. */
	double evict_gbps, raw_write_gbps, write_ratio;
	double promote_gbps, raw_read_gbps, read_ratio;
	/* the second promotion reference: raw read + CRC32C on one thread */
	double raw_read_crc_gbps, read_crc_ratio;
	/* promotion's CPU cost, for a disk faster than this one: CPU seconds
	 * per GB promoted over the timed rounds (the whole process, user +
	 * system; the prefetch thread; the one viewing thread), and the rate
	 * those costs alone would allow: the lowest of CPUs / process cost,
	 * 1 / prefetch thread's, 1 / viewer's (bench/README.md) */
	double promote_cpu_s_per_gb, prefetch_cpu_s_per_gb, viewer_cpu_s_per_gb;
	double promote_cpu_bound_gbps;
	/* the evictor thread's CPU seconds per GB evicted in the saturated run
	 * kept (it computes the records' CRCs and submits and reaps writes) */
	double evictor_cpu_s_per_gb;
	bench_span promote_cpu_bound_span, evictor_cpu_span; /* over the two runs */
	double p50_ns, p99_ns, p999_ns;
	double p50_ns_no_evict, p99_ns_no_evict, p999_ns_no_evict;
	double p99_ratio; /* p99_ns / p99_ns_no_evict */
	/* each latency run's own percentiles (the figures above pool the
	 * runs' samples), and each round's p99 ratio (one run of each kind) */
	bench_span p50_span, p99_span, p999_span;
	bench_span p50_span_no_evict, p99_span_no_evict, p999_span_no_evict;
	bench_span p99_ratio_span;
	uint64_t blocked_stores, blocked_stores_no_evict; /* stores that had to wait */
	/* scenario "producers" only: engine threads, the queue ("ring" or
	 * "mutex"), median throughput over the 1-thread median of the same
	 * queue, the GB/s spread over `reps` runs, store-call and per-batch
	 * ticket-wait percentiles, process CPU seconds per GB stored */
	uint32_t threads;
	const char *queue;
	double ratio_to_1, gbps_lo, gbps_hi; /* pipeline points too: the slowest and
					      * fastest of their timed repetitions */
	int reps;
	double store_p50_ns, store_p99_ns, wait_p50_ns, wait_p99_ns, cpu_s_per_gb;
	/* producers: each repetition's own store and wait percentiles (the
	 * figures above pool every repetition's samples) */
	bench_span store_p50_span, store_p99_span, wait_p50_span, wait_p99_span;
	bench_span cpu_span; /* cpu_s_per_gb of each repetition (where set) */
	/* producers and pipeline, the ring's points only (0 elsewhere): ring
	 * over mutex queue per repetition (both queues ran back to back at
	 * this T or point in each), throughput and CPU seconds per GB, median
	 * and extremes. cpu_s_per_gb is set for pipeline and mutex-queue
	 * points too: process CPU seconds during their timed passes per GB. */
	double vs_mutex, vs_mutex_lo, vs_mutex_hi;
	double cpu_vs_mutex, cpu_vs_mutex_lo, cpu_vs_mutex_hi;
	const char *versus; /* what vs_mutex compares with: the pipeline's
			     * "mutex-queue" or "ring-again" rows (--versus
			     * ring), producers' "mutex" queue */
	/* producers: config.wait_copy, "copy" (TKV_WAIT_COPY_OWN, the
	 * default), "all" (TKV_WAIT_COPY_ALL) or "sleep" (TKV_WAIT_SLEEP) */
	const char *waiters;
	/* producers: when tickets are waited, "step" (every layer stored,
	 * then the step's tickets) or "layer" (each right after its store) */
	const char *wait_each;
	/* latency histograms for plots (log2 ns buckets); NULL if none */
	const uint64_t *lat_hist, *lat_hist_no_evict;
	uint32_t lat_buckets;
} bench_result;

typedef struct bench_report {
	bench_result *results;
	size_t n, cap;
	size_t planned; /* results the run will produce, for the progress line */
	uint64_t t0_ns;
	bool progress;  /* stderr is a terminal */
} bench_report;

void bench_report_init(bench_report *r, size_t planned);
void bench_report_free(bench_report *r);
void bench_report_add(bench_report *r, const bench_result *res);
/* One "\r[n/planned] ... ETA" line on stderr when it is a terminal. */
void bench_progress(bench_report *r, const char *what);
void bench_report_table(const bench_report *r, FILE *f);
/* 0 or a negative errno (message on stderr). */
int bench_report_json(const bench_report *r, const char *path);
int bench_report_csv(const bench_report *r, const char *path);

const char *bench_dtype_name(tkv_dtype d);

/* ---- the pipeline sweep (pipeline.c), shared with the default run ---- */
typedef struct pipeline_options {
	const bench_geometry *geometry;
	uint32_t max_workers;
	int reps;
	uint64_t hot_bytes;
	const char *json, *csv;
	/* --versus ring: pair the ring with a second ring runtime instead of
	 * the mutex queue (an A/A run: how often the same queue "wins" a
	 * point on this machine) */
	bool versus_ring;
} pipeline_options;

/* Results the sweep adds (for the progress line). */
size_t bench_pipeline_planned(const pipeline_options *o);
/* workers 1..max x batch {1,4,16,32,64} x dtype {f32,bf16}, with the naive
 * and mutex-queue baselines; 0 or negative errno. */
int bench_pipeline_sweep(const pipeline_options *o, bench_report *rep);
/* Prints how the sweep measures (after the caller's title line): the
 * repetitions, the paired copy limit, the units. */
void bench_pipeline_print_method(const pipeline_options *o);
/* One pipeline point, optionally traced to trace_path; fills r. */
int bench_pipeline_point(const bench_geometry *geo, tkv_dtype dtype, uint32_t workers,
			 uint32_t batch, uint64_t hot_bytes, int reps, const char *trace_path,
			 bench_result *r);

/* ---- many engine threads (producers.c) ---- */
typedef struct bench_producers_opts {
	const bench_geometry *geo;
	tkv_dtype dtype;
	uint32_t threads[32], n_threads; /* engine thread counts, in run order */
	uint32_t seqs, workers;          /* total sequences per run; runtime workers */
	int reps;                        /* interleaved runs per point, median kept */
	bool ring, mutex;                /* which queues */
	bool cold;                       /* a fresh runtime per timed run, no warm-up */
	tkv_wait_copy wait_copy;         /* --waiters copy|all|sleep: config.wait_copy (A/B) */
	bool wait_each_layer;            /* --wait-each layer: wait right after each store */
	tkv_hot_populate populate;       /* the runtimes' hot_populate */
	const char *json;
	const char *trace; /* NULL: untraced; else the ring runtime's trace file */
} bench_producers_opts;
/* The defaults of `tierkv-bench producers`. */
void bench_producers_defaults(bench_producers_opts *o);
/* Runs the scenario, prints its table, adds one result per (queue, T). */
int bench_producers(const bench_producers_opts *o, bench_report *rep);

/* ---- plots (plots.c) ---- */
/* Writes DIR/throughput.png (GB/s vs batch per worker count, dtype, with
 * the copy limit as a line) and, if the report has an evict result,
 * DIR/latency.png (store latency distribution with and without eviction),
 * through gnuplot. 0 or negative errno (message on stderr). */
int bench_plots(const bench_report *r, const char *dir);

/* ---- evict scenario (evict.c) ---- */
int bench_evict_run(const bench_geometry *geo, tkv_dtype dtype, const char *dir,
		    uint64_t hot_bytes, bench_report *rep);

#endif
