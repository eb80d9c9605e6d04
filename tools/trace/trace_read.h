/*
 * trace_read.h - reading trace files (FORMAT.md) and turning them into a
 * per-stage summary or Chrome Trace Event JSON; the library half of the
 * `tierkv-trace` command, callable in-process by tests.
 *
 * The parser treats its input as hostile: every length and count is checked
 * against the bytes that remain before use, so a truncated or corrupted file
 * gives -TKV_ECORRUPT (or -EPROTONOSUPPORT for another major version) with
 * tkv_last_error() naming the offset and what was wrong, never an overread.
 * A successful parse is internally consistent (every event's thread exists,
 * t0 + dur does not overflow), so the summary and JSON writers need no
 * checks of their own.
 *
 * Percentiles are nearest-rank: the p-th percentile of n sorted durations is
 * the one at 1-based rank ceil(p * n / 100). p50 of {1..10} is 5, p99 of
 * {1..10} is 10, p99 of {1..200} is 198. Every reported figure is a value that
 * occurred.
 */
#ifndef TKV_TOOLS_TRACE_READ_H
#define TKV_TOOLS_TRACE_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/trace.h"

/* Bytes from the file; not NUL-terminated and may hold any byte value. */
typedef struct tkv__trace_str {
	const char *p;
	uint32_t len;
} tkv__trace_str;

typedef struct tkv__trace_thread_info {
	uint16_t index;
	tkv__trace_str name;
	uint64_t dropped;
	uint64_t n_events;
} tkv__trace_thread_info;

typedef struct tkv__trace_kind_info {
	uint16_t kind;
	uint8_t shape;     /* enum tkv__trace_shape; span if not in the table */
	bool in_table;     /* false: only seen in events; named "kind_<N>" */
	tkv__trace_str name, arg_a, arg_b;
} tkv__trace_kind_info;

typedef struct tkv__trace_file {
	uint16_t version_major, version_minor;
	uint64_t open_mono_ns, open_realtime_ns;
	uint64_t base_ns;  /* min(open_mono_ns, earliest t0): JSON time zero */
	size_t n_threads;  /* sorted by index */
	tkv__trace_thread_info *threads;
	size_t n_kinds;    /* sorted by kind */
	tkv__trace_kind_info *kinds;
	size_t n_events;   /* in file order */
	tkv__trace_event *events;
	uint64_t dropped;  /* total over threads */
	uint32_t untraced; /* threads whose registration failed */
	char *names;       /* storage of the strings above */
} tkv__trace_file;

/* Parses len bytes of a trace file. Returns 0 and *out (free with
 * tkv__trace_file_free), -TKV_ECORRUPT, -EPROTONOSUPPORT or -ENOMEM. */
int tkv__trace_parse(const void *data, size_t len, tkv__trace_file **out);

/* Reads and parses the file at path; also -errno for a file it cannot read. */
int tkv__trace_load(const char *path, tkv__trace_file **out);

void tkv__trace_file_free(tkv__trace_file *f);

/* The thread with that index, or NULL. */
const tkv__trace_thread_info *tkv__trace_thread_at(const tkv__trace_file *f,
						   uint16_t index);
/* The kind entry (always present for a kind that occurs in an event). */
const tkv__trace_kind_info *tkv__trace_kind_at(const tkv__trace_file *f,
					       uint16_t kind);

/* One summary row: a kind on all threads (all_threads) or on one thread.
 * Durations in ns. For instants only count is meaningful (the rest are 0). */
typedef struct tkv__trace_stat {
	uint16_t kind;
	bool all_threads;
	uint16_t thread;
	uint64_t count, p50, p99, max, total;
} tkv__trace_stat;

/* Computes the rows: first one per kind over all threads (by kind), then one
 * per (thread, kind) pair that occurs (by thread index, then kind). Returns 0
 * and *rows (free()) / *n_rows, or -ENOMEM. */
int tkv__trace_summarize(const tkv__trace_file *f, tkv__trace_stat **rows,
			 size_t *n_rows);

/* The nearest-rank percentile (0 < p <= 100) of n >= 1 sorted values. */
uint64_t tkv__trace_percentile(const uint64_t *sorted, size_t n, unsigned p);

/* Prints the summary as text (dropped events first). Returns 0, -ENOMEM,
 * or -EIO if writing to out failed. */
int tkv__trace_print_summary(const tkv__trace_file *f, FILE *out);

/* Writes Chrome Trace Event JSON ({"traceEvents": [...]}): one track per
 * thread named by "M" events, spans as "X", instants as "i", async kinds as
 * "b"/"e" pairs; times in microseconds from base_ns. Returns 0 or -EIO. */
int tkv__trace_write_json(const tkv__trace_file *f, FILE *out);

#endif
