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

/* NULL if unknown; names as in FACTS.md: llama3-8b, llama3-70b, mistral-7b,
 * qwen2.5-7b. */
const bench_geometry *bench_geometry_find(const char *name);
extern const bench_geometry bench_geometries[];

typedef struct bench_result {
	const char *scenario; /* "pipeline", "naive", "mutex-queue" */
	const char *geometry;
	tkv_dtype dtype;
	uint32_t workers, batch;
	double tokens_per_s; /* layer-tokens per second */
	double gbps;         /* 1e9 bytes of K+V copied per second */
	double limit_gbps;   /* same-run copy limit for `workers` threads */
	double ratio;        /* gbps / limit_gbps */
	double speedup;      /* tokens_per_s / the naive baseline's */
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

#endif
