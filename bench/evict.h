/*
 * evict.h - what the files of the evict scenario share (method:
 * bench/README.md, "The evict scenario"): the options, the plan of the load,
 * and the engine-like steps evict_load.c runs on a runtime.
 *
 * evict.c        the scenario: plan, the five phases, figures and output, CLI
 * evict_load.c   the load on one runtime: warm-up, stores, waiting for the
 *                evictor, promotion rounds with verification
 */
#ifndef TKV_BENCH_EVICT_H
#define TKV_BENCH_EVICT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench/internals.h"
#include "bench/latency.h"
#include "bench/report.h"

enum {
	EVICT_N_SEQS = 16,
	EVICT_BATCH = 16, /* tokens per store = block_tokens: one hot block per store */
	EVICT_SRC_BYTES = 64 << 20,
	EVICT_POLL_NS = 100 * 1000,
};

typedef struct evict_opts {
	const bench_geometry *geo;
	tkv_dtype dtype;
	const char *dir;
	uint64_t hot_bytes;
	double pace;   /* fraction of raw write bandwidth; 0: unpaced */
	unsigned reps; /* paced runs of each kind */
	bool durable;  /* TKV_DURABLE_SYNC (and raw fdatasync) */
	const char *json;
	bool no_latency; /* phases 1-3' only: the bandwidth figures */
} evict_opts;

/* Everything a phase needs to know about the load. */
typedef struct evict_plan {
	const evict_opts *o;
	tkv__cold_layout lay; /* the record: its size is the evictor's write size */
	size_t row;           /* bytes of one token's K (or V) of one layer */
	size_t batch_bytes;   /* EVICT_BATCH rows */
	uint64_t hot_bytes;
	uint32_t n_seqs, blocks_per_seq, tokens_per_seq;
	uint64_t units, n_stores; /* unit = one block position, all layers = one record */
	uint64_t cold_bytes;
	unsigned wq_depth, sync_every, rq_depth; /* the runtime's, for the raw baseline */
	uint32_t high_pct, low_pct;              /* the runtime's default watermarks */
	const unsigned char *src;
	char root[PATH_MAX];
} evict_plan;

/* What the store loop saw. */
typedef struct evict_store_run {
	/* inputs: stop after max_units units (0: the whole working set); try
	 * every store with TKV_STORE_NONBLOCK first and count the -EAGAINs
	 * (then store blocking; the sample covers both calls) */
	uint64_t max_units;
	bool count_blocked;
	uint64_t blocked_stores; /* stores that had to wait (hot tier or ring full) */
	bench_lat lat;
	uint64_t t0, t_high, t_end;     /* t_high: 0 if never past the watermark */
	uint64_t blocked_ns_after_high; /* sum of store times after t_high */
} evict_store_run;

typedef struct evict_promote_run {
	/* input: called right before (after = false) and right after each
	 * timed round with the round's index and layer blocks (NULL: not
	 * called); a nonzero return ends the run with it */
	int (*beside_round)(void *ctx, uint32_t round, uint64_t blocks, bool after);
	void *ctx;
	uint64_t bytes, ns, blocks;
	uint64_t reader_verified; /* blocks whose CRC a waiting view checked */
	uint32_t rounds;
	uint64_t max_round_blocks; /* layer blocks of the largest round */
	uint64_t verified_blocks, bad_blocks;
	/* CPU time over the timed rounds (ns): the whole process, user and
	 * system; the runtime's prefetch thread; the thread that prefetches and
	 * views (this bench's one reader, which verifies the CRCs it reaches
	 * first) */
	uint64_t cpu_user_ns, cpu_sys_ns, prefetch_cpu_ns, viewer_cpu_ns;
} evict_promote_run;

/* ---- evict_load.c ---- */

/* The runtime of a phase: the plan's geometry, block_tokens = EVICT_BATCH,
 * default policy, depths and watermarks but low_pct (0: the default). */
tkv_config evict_config(const evict_plan *p, uint64_t hot, const char *cold_dir,
			uint64_t cold_bytes, uint32_t low_pct);
int evict_open(const tkv_config *c, tkv_runtime **rt);
int evict_stats(tkv_runtime *rt, tkv_stats *st);
int evict_open_seqs(tkv_runtime *rt, const evict_plan *p);
void evict_close_seqs(tkv_runtime *rt, const evict_plan *p, uint32_t from, uint32_t to);
/* Units that fit under the high watermark of a hot tier of hot bytes, less
 * one for margin. */
uint64_t evict_units_below_high(const evict_plan *p, uint64_t hot);
int evict_warm_up(tkv_runtime *rt, const evict_plan *p, uint64_t units);
int evict_store_all(tkv_runtime *rt, const evict_plan *p, uint64_t interval_ns,
		    uint64_t high_blocks, bool pause_at_high, evict_store_run *sr);
uint64_t evict_wait_idle(tkv_runtime *rt, uint64_t low_blocks, uint64_t block_bytes);
/* Sequences one promotion round reads back (at least 1, at most n_seqs):
 * as many as fit between used_blocks and the high watermark of a hot tier
 * of hot_blocks, less a unit of margin, so no eviction runs in a round. */
uint32_t evict_round_seqs(const evict_plan *p, uint64_t hot_blocks, uint64_t used_blocks);
int evict_promote_all(tkv_runtime *rt, const evict_plan *p, evict_promote_run *pr);
/* CPU time the runtime's evictor thread has used so far (tkv_stats; 0
 * without a cold tier). */
uint64_t evict_evictor_cpu_ns(tkv_runtime *rt);

#define EVICT_IDLE_TIMEOUT_NS (20ull * 1000 * 1000 * 1000)

#endif
