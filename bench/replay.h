/*
 * replay.h - the "replay" scenario (tierkv-bench replay FILE): a serving
 * trace replayed through the public API, its hit ratio measured against the
 * trace's ideal and an exact LRU of the same capacity, every reused byte
 * checked. Method: bench/replay.c; the trace side: bench/replay_trace.c;
 * outputs: bench/replay_out.c.
 */
#ifndef TKV_BENCH_REPLAY_H
#define TKV_BENCH_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Scaling: one trace block (512 tokens; Azure prompts are cut into 512-token
 * blocks the same way) is ONE cache block of REPLAY_BT tokens, the last
 * partial trace block a full cache block too: token counts are scaled down
 * REPLAY_SCALE = 512 / REPLAY_BT times (output lengths: ceil(len / 32)). */
enum { REPLAY_MAX_NODES = 8 }; /* runtimes sharing a cluster in one run */
enum { REPLAY_TRACE_BLOCK = 512, REPLAY_BT = 16, REPLAY_SCALE = REPLAY_TRACE_BLOCK / REPLAY_BT };

typedef enum replay_format { REPLAY_MOONCAKE, REPLAY_AZURE } replay_format;

typedef struct replay_request {
	double t_ms;        /* trace clock, ms from the first request */
	size_t first;       /* blocks[first .. first + n_blocks) */
	uint32_t n_blocks;  /* prompt blocks (cache blocks of REPLAY_BT tokens) */
	uint32_t out_tokens;/* scaled output tokens */
	uint32_t ideal_hits;/* blocks an unlimited cache holds (prefix order) */
	uint32_t out_node;  /* first node of the output's blocks (unique) */
	uint64_t in_len, out_len; /* the trace's own token counts */
} replay_request;

typedef struct replay_trace {
	replay_format format;
	const char *path;
	replay_request *req;
	size_t n_req;
	uint64_t *ids;     /* per prompt block: the trace's hash id (Azure: unique) */
	uint32_t *nodes;   /* per prompt block: its exact prefix chain, numbered */
	size_t n_blocks;   /* prompt block references */
	uint32_t n_nodes;  /* distinct prompt prefixes + output blocks */
	uint32_t prompt_nodes;   /* distinct prompt prefixes */
	uint64_t output_full_blocks; /* output blocks that fill up (published) */
	uint64_t ideal_hits;
	size_t malformed;  /* lines skipped */
	uint32_t max_blocks, max_out;
} replay_trace;

/* Reads FILE (format from its content), sorts by timestamp (stable),
 * numbers prefix chains and computes the ideal. Malformed lines are named
 * on stderr with their number and skipped. limit > 0: first `limit`
 * requests only. 0 or -errno. */
int replay_trace_load(replay_trace *t, const char *path, size_t limit);
void replay_trace_free(replay_trace *t);

/* Exact LRU of `capacity` blocks over the same block references (prompt
 * blocks, then the request's output blocks that fill up); returns hit
 * blocks (prefix order: a prompt's hits stop at its first missing block).
 * With every > 0, *held_mean is the mean of the blocks it held after each
 * every-th request, over capacity (sampled as the run samples tierkv). */
uint64_t replay_lru_hits(const replay_trace *t, uint64_t capacity, uint32_t every,
			 double *held_mean);

/* Token i of a prompt block with this id, and of a request's output. */
uint32_t replay_prompt_token(uint64_t id, uint32_t i);
uint32_t replay_output_token(size_t request, uint32_t i);

/* One measured point (a capacity, hot-only or split), for the outputs. */
typedef struct replay_point {
	const char *trace, *geometry;
	double capacity_frac, hot_frac; /* hot_frac 1: hot only */
	uint64_t hot_bytes, cold_bytes, capacity_blocks;
	uint64_t lookup_blocks, hit_hot, hit_cold;
	double hit_ratio, hot_hit_ratio, cold_hit_ratio, ideal_hit_ratio, lru_hit_ratio;
	uint64_t wrong_bytes, checked_bytes, errors, requests, prefill_tokens_saved,
		prompt_tokens, dropped, recovered;
	uint64_t dropped_hot, dropped_cold, evicted_blocks, promoted_blocks, enospc, io_enospc;
	uint64_t space_waits, space_wait_ns; /* tkv_stats hot_space_waits, _wait_ns */
	double seconds, requests_per_s, layer_tokens_per_s, open_p50_ns, open_p99_ns;
	double restart_at;
	/* Cache entries held (hot, cold or both: distinct blocks), mean and
	 * max over the run, and entries in both tiers, as fractions of
	 * capacity_blocks (the LRU reference holds capacity_blocks once full). */
	double held_mean, held_max, both_mean, lru_held_mean;
	double orphan_mean; /* entries whose parent entry is gone (same scale) */
	uint32_t threads;
	/* shared runs (nodes > 1): the trace split round-robin over nodes, each
	 * with hot_bytes and cold_bytes, sharing one cluster */
	uint32_t nodes;
	int shared_write; /* tkv_shared_write of a shared run */
	uint64_t hit_shared, shared_corrupt, shared_write_failures;
	double shared_hit_ratio;
	double node_hit_ratio[REPLAY_MAX_NODES], node_shared_hit_ratio[REPLAY_MAX_NODES];
	double one_node_hit_ratio; /* same capacity, one node, no cluster; -1: n/a */
} replay_point;

void replay_table_header(void);
void replay_table_row(const replay_point *p);
int replay_write_json(const replay_point *p, size_t n, const char *path);
int replay_write_csv(const replay_point *p, size_t n, const char *path);
/* DIR/replay.png (hit ratio vs capacity, ideal and LRU lines) via gnuplot. */
int replay_plot(const replay_point *p, size_t n, const char *dir);

#endif
