/*
 * replay.c - the "replay" scenario: `tierkv-bench replay FILE` replays a
 * serving trace (Mooncake JSON lines or Azure CSV; bench/replay_trace.c)
 * through the public API as an engine would, and reports what the prefix
 * cache saved against the trace's own ideal and an exact LRU of the same
 * capacity, with every reused byte checked.
 *
 * Per request, in timestamp order: build its prompt (token ids a function
 * of each block's hash id, so equal ids give equal tokens; Azure prompts
 * unique) and the expected KV of every prompt row (a function of the
 * block's exact prefix chain, its layer, row and K/V: tests/cache_helpers.h
 * replay_row); tkv_seq_open_tokens (timed: the open-with-prefix call); store
 * the rest of the prompt, every layer, in prefill batches of
 * --prefill-batch tokens; tkv_seq_sync; read back every attached block of
 * every layer (tkv_read) and compare it byte for byte (wrong_bytes counts
 * the bytes that differ); then the output tokens in decode batches
 * (tkv_seq_append_tokens with their ids, then one store per layer); close.
 *
 * Threads. --threads N engine threads take requests in timestamp order.
 * Opens and prefills are in trace order (request r opens after request
 * r-1's prompt is stored and synced, as one prefill scheduler would run
 * them): so a request finds in the cache everything the trace says it
 * could, and the run is reproducible; the read-back check, the decode and
 * the close of a request overlap with the next requests' prefill.
 * --speed X waits for each request's trace timestamp / X (0, the default:
 * as fast as possible, order kept).
 *
 * Capacity. The working set is every distinct block the replay publishes
 * (distinct prompt prefix chains plus output blocks that fill up), in
 * blocks of block_tokens tokens x every layer. A point of --capacity F
 * gets F x the working set: hot_frac of it as hot_bytes, the rest as
 * cold_bytes in a scratch directory (bench/scratch.h); each F also runs hot
 * only (all of it in RAM). The LRU reference gets the same total in blocks.
 *
 * --restart-at X: after X of the requests, wait for the ones in flight,
 * tkv_close, tkv_open on the same cold directory, go on; the hits after it
 * come from the recovered cold tier (stats are summed over both runtimes).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/internals.h"
#include "bench/replay.h"
#include "bench/report.h"
#include "bench/scratch.h"
#include "bench/replay_content.h"
#include "tierkv.h"

typedef struct ropts {
	const char *file, *json, *csv, *out, *dir;
	uint32_t threads, layers, heads, dim, prefill, decode;
	tkv_dtype dtype;
	const char *geometry;
	double speed, hot_frac, restart_at;
	double caps[16];
	int n_caps;
	bool hot_only, split, sync;
	tkv_policy policy;
	uint32_t high_pct, low_pct; /* 0: the library's defaults */
	size_t limit;
	const char *shared;  /* seeds of a Redis Cluster: also run nodes sharing it */
	uint32_t nodes;      /* serving nodes in the shared runs */
	int shared_write;    /* 0: both policies, else 1 + tkv_shared_write */
} ropts;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tierkv-bench replay FILE [--threads N] [--speed X] [--capacity F,F,..]\n"
		"         [--hot-frac F] [--hot-only | --split-only] [--restart-at F]\n"
		"         [--requests N] [--geometry NAME | --layers N --heads N --dim N]\n"
		"         [--dtype f32|bf16|f16] [--prefill-batch N] [--decode-batch N]\n"
		"         [--watermarks HIGH,LOW] [--policy s3fifo|lru] [--durability none|sync]\n"
		"         [--dir DIR] [--json FILE] [--csv FILE] [--out DIR]\n"
		"         [--shared HOST:PORT[,...] [--nodes N] [--shared-write drop|through]]\n"
		"  FILE: a Mooncake JSON-lines or Azure CSV trace (detected from the content).\n"
		"  Defaults: 2 threads, as fast as possible, capacity 0.1,0.25,0.5,1 of the\n"
		"  working set, hot-frac 0.5 (plus a hot-only run of each), 2 layers x 1 kv\n"
		"  head x head_dim 64 f32, block 16 tokens (one 512-token trace block = one\n"
		"  cache block), prefill batch 256, decode batch 1. --out DIR writes\n"
		"  replay.json, replay.csv and replay.png. Method: bench/replay.c.\n"
		"  --shared: after each capacity's one-node runs, the trace split round-robin\n"
		"  over N runtimes (default 2) of the same per-node sizes that share the Redis\n"
		"  Cluster (or server) at those seeds, once per write policy (default: both).\n");
}

static int parse(int argc, char **argv, ropts *o)
{
	*o = (ropts){.threads = 2, .layers = 2, .heads = 1, .dim = 64, .prefill = 256,
		     .decode = 1, .dtype = TKV_DTYPE_F32, .geometry = "replay-small",
		     .hot_frac = 0.5, .restart_at = -1, .caps = {0.1, 0.25, 0.5, 1}, .n_caps = 4,
		     .hot_only = true, .split = true, .nodes = 2};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (!strcmp(a, name) && v && (i++, 1))
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 1;
		} else if (OPT("--threads")) {
			if (bench_opt_u32("replay", a, v, 1, 256, &o->threads))
				return -1;
		} else if (OPT("--speed")) {
			if (bench_opt_double("replay", a, v, 0, 1e9, &o->speed))
				return -1;
		} else if (OPT("--hot-frac")) {
			if (bench_opt_double("replay", a, v, 1e-6, 1, &o->hot_frac))
				return -1;
		} else if (OPT("--restart-at")) {
			if (bench_opt_double("replay", a, v, 0, 0.999999, &o->restart_at))
				return -1;
		} else if (OPT("--requests")) {
			uint64_t n;
			if (bench_opt_u64("replay", a, v, 0, SIZE_MAX, &n))
				return -1;
			o->limit = (size_t)n;
		} else if (OPT("--layers")) {
			if (bench_opt_u32("replay", a, v, 1, 4096, &o->layers))
				return -1;
		} else if (OPT("--heads")) {
			if (bench_opt_u32("replay", a, v, 1, 1024, &o->heads))
				return -1;
		} else if (OPT("--dim")) {
			if (bench_opt_u32("replay", a, v, 1, 65536, &o->dim))
				return -1;
		} else if (OPT("--prefill-batch")) {
			if (bench_opt_u32("replay", a, v, 1, 1u << 20, &o->prefill))
				return -1;
		} else if (OPT("--decode-batch")) {
			if (bench_opt_u32("replay", a, v, 1, 1u << 20, &o->decode))
				return -1;
		} else if (OPT("--dir")) {
			o->dir = v;
		} else if (OPT("--json")) {
			o->json = v;
		} else if (OPT("--csv")) {
			o->csv = v;
		} else if (OPT("--out")) {
			o->out = v;
		} else if (OPT("--dtype")) {
			if (bench_parse_dtype(v, &o->dtype))
				return fprintf(stderr, "tierkv-bench replay: --dtype f32, bf16 or f16\n"), -1;
		} else if (OPT("--geometry")) {
			const bench_geometry *g = bench_geometry_find(v);
			if (!g) {
				fprintf(stderr, "tierkv-bench replay: unknown geometry %s\n", v);
				return -1;
			}
			o->geometry = g->name;
			o->layers = g->n_layers;
			o->heads = g->n_kv_heads;
			o->dim = g->head_dim;
		} else if (OPT("--capacity")) {
			o->n_caps = 0;
			for (char *s = (char *)v; *s;) {
				char *end;
				double c = strtod(s, &end);
				if (end == s || !(c > 0 && c <= 1000) || (*end && *end != ',') ||
				    o->n_caps == 16) {
					fprintf(stderr, "tierkv-bench replay: --capacity takes up to 16 "
							"numbers in (0, 1000] separated by commas, got "
							"'%s'\n", v);
					return -1;
				}
				o->caps[o->n_caps++] = c;
				s = end + (*end == ',');
			}
		} else if (OPT("--watermarks")) {
			char tail;
			if (sscanf(v, "%u,%u%c", &o->high_pct, &o->low_pct, &tail) != 2 ||
			    o->low_pct > o->high_pct || o->high_pct > 100 || o->low_pct == 0) {
				fprintf(stderr, "tierkv-bench replay: --watermarks takes HIGH,LOW "
						"with 0 < LOW <= HIGH <= 100, got '%s'\n", v);
				return -1;
			}
		} else if (OPT("--durability")) {
			static const char *const durability[] = {"none", "sync"};
			int d;
			if (bench_opt_choice("replay", a, v, durability, 2, &d))
				return -1;
			o->sync = d == 1;
		} else if (OPT("--policy")) {
			static const char *const policies[] = {"s3fifo", "lru"};
			int pol;
			if (bench_opt_choice("replay", a, v, policies, 2, &pol))
				return -1;
			o->policy = pol ? TKV_POLICY_LRU : TKV_POLICY_S3FIFO;
		} else if (OPT("--shared")) {
			o->shared = v;
		} else if (OPT("--nodes")) {
			if (bench_opt_u32("replay", a, v, 1, REPLAY_MAX_NODES, &o->nodes))
				return -1;
		} else if (OPT("--shared-write")) {
			static const char *const writes[] = {"drop", "through"};
			int wr;
			if (bench_opt_choice("replay", a, v, writes, 2, &wr))
				return -1;
			o->shared_write = 1 + (wr ? TKV_SHARED_WRITE_THROUGH : TKV_SHARED_WRITE_ON_DROP);
		} else if (!strcmp(a, "--hot-only")) {
			o->split = false;
		} else if (!strcmp(a, "--split-only")) {
			o->hot_only = false;
		} else if (a[0] != '-' && !o->file) {
			o->file = a;
		} else {
			fprintf(stderr, "tierkv-bench replay: bad option %s\n", a);
			return -1;
		}
#undef OPT
	}
	if (!o->file)
		fprintf(stderr, "tierkv-bench replay: a trace FILE is required\n");
	if (!o->file || o->threads == 0 || o->threads > 256 || o->n_caps == 0 ||
	    o->hot_frac <= 0 || o->hot_frac > 1 || o->prefill == 0 || o->decode == 0 ||
	    o->layers == 0 || o->heads == 0 || o->dim == 0 || o->restart_at >= 1 ||
	    o->nodes < 1 || o->nodes > REPLAY_MAX_NODES || o->shared_write < 0) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* ---- one run ---- */

typedef struct run {
	const replay_trace *t;
	const ropts *o;
	tkv_config cfg;
	size_t row; /* bytes of one K (or V) row */
	tkv_runtime *rt; /* node 0, the only one without the shared tier */
	tkv_runtime *nodes[REPLAY_MAX_NODES]; /* request r goes to nodes[r % n_nodes] */
	uint32_t n_nodes;
	tkv_stats node_st[REPLAY_MAX_NODES];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t next, turn, done, restart;
	uint64_t t0_ns;
	uint64_t *open_ns;
	/* summed by the threads under mu */
	uint64_t wrong_bytes, checked_bytes, errors, saved_tokens, layer_tokens;
	tkv_stats before; /* stats of runtimes closed by a restart */
	/* What the cache held, sampled every SAMPLE_EVERY requests (under mu):
	 * distinct entries (hot, cold or both) and entries in both tiers. */
	uint64_t samples, held_sum, both_sum, held_max, orphan_sum;
	int failed;
} run;

/* Sampling walks the cache index (tkv_stats_get): every 64 requests keeps
 * its cost under 1% of a run while giving ~60 samples for the Mooncake
 * trace. */
enum { SAMPLE_EVERY = 64 };

/* Under R->mu, with the runtime open: one sample of what the cache holds. */
static void sample_held(run *R)
{
	tkv_stats s = replay_stats(R->rt);
	uint64_t held = s.cache_entries_hot + s.cache_entries_cold - s.cache_entries_hot_cold;
	R->samples++;
	R->held_sum += held;
	R->both_sum += s.cache_entries_hot_cold;
	R->held_max = held > R->held_max ? held : R->held_max;
	R->orphan_sum += R->rt->cache ? tkv__cache_orphans(R->rt->cache) : 0;
}

/* Bytes of one cold record of this geometry (header + every layer's slice,
 * 4 KiB aligned): the cold tier is sized in records so that its capacity in
 * blocks is what the point says (a 16 KiB block is a 20 KiB record here). */
static uint64_t replay_record_bytes(const ropts *o)
{
	tkv__cold_layout l;
	if (tkv__cold_layout_init(&l, o->layers, o->heads, o->dim, o->dtype, REPLAY_BT, 0))
		return (uint64_t)o->layers * REPLAY_BT * 2 * o->heads * o->dim *
		       tkv_dtype_size(o->dtype);
	return l.record_bytes;
}

static void add_stats(tkv_stats *acc, const tkv_stats *s)
{
	acc->cache_lookups += s->cache_lookups;
	acc->cache_lookup_blocks += s->cache_lookup_blocks;
	acc->cache_hit_blocks_hot += s->cache_hit_blocks_hot;
	acc->cache_hit_blocks_cold += s->cache_hit_blocks_cold;
	acc->cache_hit_blocks_shared += s->cache_hit_blocks_shared;
	acc->shared_fetch_corrupt += s->shared_fetch_corrupt;
	acc->shared_fetch_misses += s->shared_fetch_misses;
	acc->shared_writes_queued += s->shared_writes_queued;
	acc->shared_writes_stored += s->shared_writes_stored;
	acc->shared_writes_dropped += s->shared_writes_dropped;
	acc->shared_writes_failed += s->shared_writes_failed;
	acc->shared_err_timeout += s->shared_err_timeout;
	acc->shared_err_conn += s->shared_err_conn;
	acc->cache_dropped_hot += s->cache_dropped_hot;
	acc->cache_dropped_cold += s->cache_dropped_cold;
	acc->cache_dropped_other += s->cache_dropped_other;
	acc->cache_recovered += s->cache_recovered;
	acc->cache_published += s->cache_published;
	acc->evicted_blocks += s->evicted_blocks;
	acc->promoted_blocks += s->promoted_blocks;
	acc->enospc_events += s->enospc_events;
	acc->io_errors_enospc += s->io_errors_enospc;
}

/* Rows [0, n) of a block whose chain is `node`, for one layer. */
static void fill_rows(unsigned char *k, unsigned char *v, uint32_t node, uint32_t layer,
		      uint32_t n, size_t row)
{
	for (uint32_t i = 0; i < n; i++) {
		uint64_t h = tkv__mix64((uint64_t)node * REPLAY_BT + i + 1);
		replay_row(k + (size_t)i * row, h, layer, 0, row);
		replay_row(v + (size_t)i * row, h, layer, 1, row);
	}
}

static uint64_t diff_bytes(const unsigned char *a, const unsigned char *b, size_t n)
{
	if (!memcmp(a, b, n))
		return 0;
	uint64_t d = 0;
	for (size_t i = 0; i < n; i++)
		d += a[i] != b[i];
	return d;
}

typedef struct tbuf {
	unsigned char **k, **v; /* expected prompt + output rows, per layer */
	unsigned char *rk, *rv; /* read-back */
	uint32_t *tok;
} tbuf;

static void wait_turn(run *R, size_t r)
{
	pthread_mutex_lock(&R->mu);
	while (R->turn != r)
		pthread_cond_wait(&R->cv, &R->mu);
	pthread_mutex_unlock(&R->mu);
}

static void restart(run *R)
{
	pthread_mutex_lock(&R->mu);
	while (R->done < R->restart)
		pthread_cond_wait(&R->cv, &R->mu);
	tkv_runtime *old = R->rt;
	R->rt = NULL; /* no sample of a runtime being closed */
	pthread_mutex_unlock(&R->mu);
	tkv_stats st = replay_stats(old);
	add_stats(&R->before, &st);
	tkv_close(old);
	tkv_runtime *rt = NULL;
	if (tkv_open(&R->cfg, &rt)) {
		fprintf(stderr, "tierkv-bench replay: reopen after restart: %s\n",
			tkv_last_error());
		rt = NULL;
	}
	pthread_mutex_lock(&R->mu);
	R->rt = rt;
	pthread_mutex_unlock(&R->mu);
}

/*
 * Shared runs: the blocks this node queued for the cluster are written
 * before the next request opens (bounded: 1 s). Replayed as fast as
 * possible, requests follow each other in microseconds, while in the trace
 * they are milliseconds apart, longer than a block write takes: without
 * this the split runs would measure the writer's lag, not the cache.
 */
static void settle_shared(tkv_runtime *rt)
{
	if (!rt->shared)
		return;
	uint64_t until = bench_now_ns() + 1000000000u;
	for (;;) {
		tkv__shared_tier_stats s;
		tkv__shared_tier_stats_get(rt->shared, &s);
		if (s.writes_stored + s.writes_existed + s.writes_failed >= s.writes_queued ||
		    bench_now_ns() > until)
			return;
		struct timespec ts = {0, 20000};
		nanosleep(&ts, NULL);
	}
}

static void request(run *R, tbuf *b, size_t r)
{
	const replay_trace *t = R->t;
	const replay_request *q = &t->req[r];
	const uint32_t L = R->cfg.n_layers;
	const size_t row = R->row, n = (size_t)q->n_blocks * REPLAY_BT;
	const uint64_t seq = 1 + r;
	/* the prompt and its expected KV, before waiting for our turn */
	for (uint32_t j = 0; j < q->n_blocks; j++) {
		for (uint32_t i = 0; i < REPLAY_BT; i++)
			b->tok[j * REPLAY_BT + i] = t->format == REPLAY_MOONCAKE
							    ? replay_prompt_token(t->ids[q->first + j], i)
							    : replay_prompt_token(t->ids[q->first + j] |
										  1ull << 58, i);
		for (uint32_t l = 0; l < L; l++)
			fill_rows(b->k[l] + (size_t)j * REPLAY_BT * row,
				  b->v[l] + (size_t)j * REPLAY_BT * row, t->nodes[q->first + j], l,
				  REPLAY_BT, row);
	}
	for (uint32_t p = 0; p < q->out_tokens; p += REPLAY_BT) {
		uint32_t m = q->out_tokens - p < REPLAY_BT ? q->out_tokens - p : REPLAY_BT;
		for (uint32_t l = 0; l < L; l++)
			fill_rows(b->k[l] + (n + p) * row, b->v[l] + (n + p) * row,
				  q->out_node + p / REPLAY_BT, l, m, row);
	}
	if (R->o->speed > 0) {
		uint64_t at = R->t0_ns + (uint64_t)(q->t_ms * 1e6 / R->o->speed);
		uint64_t now = bench_now_ns();
		if (at > now) {
			struct timespec ts = {(time_t)((at - now) / 1000000000u),
					      (long)((at - now) % 1000000000u)};
			nanosleep(&ts, NULL);
		}
	}
	wait_turn(R, r);
	if (r == R->restart)
		restart(R);
	tkv_runtime *rt = R->n_nodes > 1 ? R->nodes[r % R->n_nodes] : R->rt;
	uint64_t errors = 0, wrong = 0, checked = 0, cached = 0, stored = 0;
	uint64_t t0 = bench_now_ns();
	int rc = rt ? tkv_seq_open_tokens(rt, seq, b->tok, n, NULL, &cached) : -EBADF;
	R->open_ns[r] = bench_now_ns() - t0;
	if (rc) {
		fprintf(stderr, "tierkv-bench replay: request %zu: open: %s\n", r,
			tkv_last_error());
		errors++;
		cached = n;
	}
	for (size_t p = cached; p < n && rc == 0;) {
		uint32_t m = n - p > R->o->prefill ? R->o->prefill : (uint32_t)(n - p);
		for (uint32_t l = 0; l < L && rc == 0; l++)
			rc = tkv_store(rt, seq, l, p, m, b->k[l] + p * row, b->v[l] + p * row, 0,
				       NULL);
		if (rc) {
			fprintf(stderr, "tierkv-bench replay: request %zu: prefill store at %zu: "
					"%s\n", r, p, tkv_last_error());
			errors++;
		}
		stored += (uint64_t)m * L;
		p += m;
	}
	int open_rc = rc;
	if (rc == 0 && tkv_seq_sync(rt, seq))
		errors++;
	if (R->n_nodes > 1)
		settle_shared(rt);
	/* the next request may open now: our prompt blocks are published */
	pthread_mutex_lock(&R->mu);
	R->turn = r + 1;
	pthread_cond_broadcast(&R->cv);
	pthread_mutex_unlock(&R->mu);

	/* every attached block of every layer, every byte */
	for (uint32_t l = 0; l < L && cached > 0 && open_rc == 0; l++) {
		int e = tkv_read(rt, seq, l, 0, (uint32_t)cached, b->rk, b->rv);
		if (e) {
			fprintf(stderr, "tierkv-bench replay: request %zu layer %u: read of %llu "
					"cached tokens: %s\n", r, l, (unsigned long long)cached,
				tkv_last_error());
			errors++;
			continue;
		}
		wrong += diff_bytes(b->rk, b->k[l], cached * row) +
			 diff_bytes(b->rv, b->v[l], cached * row);
		checked += 2 * cached * row;
	}
	/* decode */
	for (uint32_t p = 0; p < q->out_tokens && open_rc == 0;) {
		uint32_t m = q->out_tokens - p > R->o->decode ? R->o->decode : q->out_tokens - p;
		uint32_t ids[64];
		int e = 0;
		for (uint32_t done = 0; done < m && !e;) {
			uint32_t c = m - done > 64 ? 64 : m - done;
			for (uint32_t i = 0; i < c; i++)
				ids[i] = replay_output_token(r, p + done + i);
			e = tkv_seq_append_tokens(rt, seq, ids, c);
			done += c;
		}
		for (uint32_t l = 0; l < L && !e; l++)
			e = tkv_store(rt, seq, l, n + p, m, b->k[l] + (n + p) * row,
				      b->v[l] + (n + p) * row, 0, NULL);
		if (e) {
			fprintf(stderr, "tierkv-bench replay: request %zu: decode at %u: %s\n", r, p,
				tkv_last_error());
			errors++;
			break;
		}
		stored += (uint64_t)m * L;
		p += m;
	}
	if (open_rc == 0 && (tkv_seq_sync(rt, seq) || tkv_seq_close(rt, seq)))
		errors++;
	pthread_mutex_lock(&R->mu);
	R->wrong_bytes += wrong;
	R->checked_bytes += checked;
	R->errors += errors;
	R->saved_tokens += open_rc == 0 ? cached : 0;
	R->layer_tokens += stored;
	R->done++;
	if (R->done % SAMPLE_EVERY == 0 && R->rt)
		sample_held(R);
	pthread_cond_broadcast(&R->cv);
	pthread_mutex_unlock(&R->mu);
}

static void *engine(void *arg)
{
	run *R = arg;
	const replay_trace *t = R->t;
	const uint32_t L = R->cfg.n_layers;
	size_t rows = (size_t)t->max_blocks * REPLAY_BT + t->max_out + 1;
	tbuf b = {calloc(L, sizeof(*b.k)), calloc(L, sizeof(*b.v)), malloc(rows * R->row),
		  malloc(rows * R->row), malloc(rows * sizeof(uint32_t))};
	bool ok = b.k && b.v && b.rk && b.rv && b.tok;
	for (uint32_t l = 0; ok && l < L; l++) {
		b.k[l] = malloc(rows * R->row);
		b.v[l] = malloc(rows * R->row);
		ok = b.k[l] && b.v[l];
	}
	for (;;) {
		pthread_mutex_lock(&R->mu);
		size_t r = R->next++;
		if (!ok)
			R->failed = -ENOMEM;
		pthread_mutex_unlock(&R->mu);
		if (r >= t->n_req)
			break;
		if (ok) {
			request(R, &b, r);
		} else { /* keep the turn moving */
			wait_turn(R, r);
			pthread_mutex_lock(&R->mu);
			R->turn = r + 1;
			R->done++;
			R->errors++;
			pthread_cond_broadcast(&R->cv);
			pthread_mutex_unlock(&R->mu);
		}
	}
	for (uint32_t l = 0; l < L && b.k && b.v; l++) {
		free(b.k[l]);
		free(b.v[l]);
	}
	free(b.k);
	free(b.v);
	free(b.rk);
	free(b.rv);
	free(b.tok);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* One point: hot_blocks in RAM, cold_blocks on SSD under cold_dir (0: none). */
static int run_point(const replay_trace *t, const ropts *o, uint64_t hot_blocks,
		     uint64_t cold_blocks, const char *cold_dir, uint32_t n_nodes,
		     tkv_shared_write policy, const char *model, replay_point *pt)
{
	run R = {.t = t, .o = o, .restart = SIZE_MAX};
	tkv_config_default(&R.cfg);
	R.cfg.n_layers = o->layers;
	R.cfg.n_kv_heads = o->heads;
	R.cfg.head_dim = o->dim;
	R.cfg.dtype = o->dtype;
	R.cfg.block_tokens = REPLAY_BT;
	R.row = (size_t)o->heads * o->dim * tkv_dtype_size(o->dtype);
	uint64_t rec_bytes = replay_record_bytes(o);
	const uint64_t block_bytes = (uint64_t)o->layers * REPLAY_BT * 2 * R.row;
	R.cfg.hot_bytes = hot_blocks * block_bytes;
	R.cfg.n_workers = o->layers < 2 ? o->layers : 2;
	R.cfg.pin_workers = false;
	R.cfg.model_id = "tierkv-bench/replay";
	R.cfg.policy = o->policy;
	if (o->high_pct) {
		R.cfg.hot_high_pct = o->high_pct;
		R.cfg.hot_low_pct = o->low_pct;
	}
	R.cfg.durability = o->sync ? TKV_DURABLE_SYNC : TKV_DURABLE_NONE;
	if (cold_blocks) {
		R.cfg.cold_dir = cold_dir;
		R.cfg.cold_bytes = cold_blocks * rec_bytes; /* records, not payload */
	}
	if (o->restart_at >= 0 && cold_blocks)
		R.restart = (size_t)(o->restart_at * (double)t->n_req);
	R.open_ns = calloc(t->n_req, sizeof(*R.open_ns));
	if (!R.open_ns)
		return -ENOMEM;
	R.n_nodes = n_nodes;
	if (n_nodes > 1) {
		/* a namespace of its own: the cluster outlives this run */
		R.cfg.model_id = model;
		R.cfg.shared_enabled = true;
		R.cfg.shared_seeds = o->shared;
		R.cfg.shared_write = policy;
		R.restart = SIZE_MAX;
	}
	/* the runtime keeps cfg.cold_dir (it seals the directory at close) */
	static char node_dirs[REPLAY_MAX_NODES][4300];
	for (uint32_t i = 0; i < n_nodes; i++) {
		if (cold_blocks && n_nodes > 1) {
			snprintf(node_dirs[i], sizeof(node_dirs[i]), "%s-n%u", cold_dir, i);
			R.cfg.cold_dir = node_dirs[i];
		}
		if (tkv_open(&R.cfg, &R.nodes[i])) {
			fprintf(stderr, "tierkv-bench replay: open (hot %llu blocks, cold %llu%s): "
					"%s\n", (unsigned long long)hot_blocks,
				(unsigned long long)cold_blocks, n_nodes > 1 ? ", shared" : "",
				tkv_last_error());
			for (uint32_t j = 0; j < i; j++)
				tkv_close(R.nodes[j]);
			free(R.open_ns);
			return -EINVAL;
		}
	}
	R.rt = R.nodes[0];
	pthread_mutex_init(&R.mu, NULL);
	pthread_cond_init(&R.cv, NULL);
	pthread_t th[256];
	R.t0_ns = bench_now_ns();
	uint32_t started = 0;
	for (; started < o->threads; started++)
		if (pthread_create(&th[started], NULL, engine, &R))
			break;
	if (started == 0)
		engine(&R);
	for (uint32_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	double secs = (double)(bench_now_ns() - R.t0_ns) / 1e9;
	tkv_stats st = {0};
	if (n_nodes > 1) {
		for (uint32_t i = 0; i < n_nodes; i++) {
			tkv_stats s = replay_stats(R.nodes[i]);
			pt->hot_bytes = s.hot_bytes_capacity; /* per node */
			pt->cold_bytes = s.cold_bytes_capacity;
			add_stats(&st, &s);
			double lb = (double)(s.cache_lookup_blocks ? s.cache_lookup_blocks : 1);
			pt->node_hit_ratio[i] = (double)(s.cache_hit_blocks_hot + s.cache_hit_blocks_cold +
							 s.cache_hit_blocks_shared) / lb;
			pt->node_shared_hit_ratio[i] = (double)s.cache_hit_blocks_shared / lb;
			tkv_close(R.nodes[i]);
			if (cold_blocks)
				bench_scratch_remove(node_dirs[i]);
		}
	} else if (R.rt) {
		tkv_stats s = replay_stats(R.rt);
		pt->hot_bytes = s.hot_bytes_capacity;
		pt->cold_bytes = s.cold_bytes_capacity;
		add_stats(&st, &s);
		tkv_close(R.rt);
	}
	add_stats(&st, &R.before);
	pt->nodes = n_nodes;
	pt->hit_shared = st.cache_hit_blocks_shared;
	pt->shared_corrupt = st.shared_fetch_corrupt;
	pt->shared_write_failures = st.shared_writes_failed + st.shared_writes_dropped;
	pthread_mutex_destroy(&R.mu);
	pthread_cond_destroy(&R.cv);

	uint64_t prompt_tokens = (uint64_t)t->n_blocks * REPLAY_BT;
	pt->lookup_blocks = st.cache_lookup_blocks;
	pt->hit_hot = st.cache_hit_blocks_hot;
	pt->hit_cold = st.cache_hit_blocks_cold;
	double lb = (double)(st.cache_lookup_blocks ? st.cache_lookup_blocks : 1);
	pt->hit_ratio = (double)(pt->hit_hot + pt->hit_cold + pt->hit_shared) / lb;
	pt->hot_hit_ratio = (double)pt->hit_hot / lb;
	pt->cold_hit_ratio = (double)pt->hit_cold / lb;
	pt->shared_hit_ratio = (double)pt->hit_shared / lb;
	pt->wrong_bytes = R.wrong_bytes;
	pt->checked_bytes = R.checked_bytes;
	pt->errors = R.errors + (R.rt ? 0 : 1);
	pt->requests = t->n_req;
	pt->prefill_tokens_saved = R.saved_tokens;
	pt->prompt_tokens = prompt_tokens;
	pt->dropped = st.cache_dropped_hot + st.cache_dropped_cold + st.cache_dropped_other;
	pt->recovered = st.cache_recovered;
	pt->dropped_hot = st.cache_dropped_hot;
	pt->dropped_cold = st.cache_dropped_cold;
	pt->evicted_blocks = st.evicted_blocks;
	pt->promoted_blocks = st.promoted_blocks;
	pt->enospc = st.enospc_events;
	pt->io_enospc = st.io_errors_enospc;
	pt->space_waits = st.hot_space_waits;
	pt->space_wait_ns = st.hot_space_wait_ns;
	pt->seconds = secs;
	pt->requests_per_s = (double)t->n_req / secs;
	pt->layer_tokens_per_s = (double)R.layer_tokens / secs;
	qsort(R.open_ns, t->n_req, sizeof(*R.open_ns), cmp_u64);
	pt->open_p50_ns = (double)R.open_ns[(t->n_req - 1) / 2];
	pt->open_p99_ns = (double)R.open_ns[(size_t)((double)(t->n_req - 1) * 0.99)];
	pt->restart_at = R.restart != SIZE_MAX ? o->restart_at : -1;
	uint64_t ns = R.samples ? R.samples : 1;
	pt->held_mean = (double)R.held_sum / (double)ns / (double)pt->capacity_blocks;
	pt->held_max = (double)R.held_max / (double)pt->capacity_blocks;
	pt->both_mean = (double)R.both_sum / (double)ns / (double)pt->capacity_blocks;
	pt->orphan_mean = (double)R.orphan_sum / (double)ns / (double)pt->capacity_blocks;
	pt->threads = o->threads;
	free(R.open_ns);
	return R.failed;
}

int bench_replay_main(int argc, char **argv)
{
	ropts o;
	int rc = parse(argc, argv, &o);
	if (rc)
		return rc > 0 ? 0 : 2;
	replay_trace t;
	uint64_t t0 = bench_now_ns();
	if ((rc = replay_trace_load(&t, o.file, o.limit)))
		return 1;
	double load_s = (double)(bench_now_ns() - t0) / 1e9;
	const size_t row = (size_t)o.heads * o.dim * tkv_dtype_size(o.dtype);
	const uint64_t token_bytes = (uint64_t)o.layers * 2 * row;
	const uint64_t block_bytes = token_bytes * REPLAY_BT;
	const uint64_t ws = (uint64_t)t.prompt_nodes + t.output_full_blocks;
	const char *base = strrchr(o.file, '/') ? strrchr(o.file, '/') + 1 : o.file;
	char b1[24];
	printf("# tierkv-bench replay %s: %s trace, %zu requests (%zu malformed lines "
	       "skipped), loaded in %.2f s\n",
	       base, t.format == REPLAY_MOONCAKE ? "Mooncake" : "Azure", t.n_req, t.malformed,
	       load_s);
	printf("# scaling: one 512-token trace block = one cache block of %d tokens (token "
	       "counts / %d; output tokens ceil(len / %d)); geometry %s: %u layers x %u kv "
	       "heads x head_dim %u %s = %llu bytes per token (all layers, K+V), %llu per "
	       "block\n",
	       REPLAY_BT, REPLAY_SCALE, REPLAY_SCALE, o.geometry, o.layers, o.heads, o.dim,
	       bench_dtype_name(o.dtype), (unsigned long long)token_bytes,
	       (unsigned long long)block_bytes);
	tkv_config dc;
	tkv_config_default(&dc);
	dc.model_id = "replay"; /* the replay's runtimes have a prefix cache */
	uint32_t auto_high, auto_low;
	tkv_config_watermarks(&dc, &auto_high, &auto_low);
	printf("# sizes: hot = capacity x hot-frac blocks x %llu bytes; cold = the rest in "
	       "cold records of %llu bytes (header + 4 KiB-aligned layer slices); the hot tier "
	       "evicts from %u%% to %u%% of hot_bytes (%s)\n",
	       (unsigned long long)block_bytes, (unsigned long long)replay_record_bytes(&o),
	       o.high_pct ? o.high_pct : auto_high, o.high_pct ? o.low_pct : auto_low,
	       o.high_pct ? "--watermarks" : "library defaults with a prefix cache");
	printf("# working set: %llu blocks = %.1f MiB (%u distinct prompt prefix blocks + %llu "
	       "output blocks that fill up); %zu prompt block references; ideal hit ratio "
	       "%.4f\n",
	       (unsigned long long)ws, (double)ws * (double)block_bytes / 1048576.0,
	       t.prompt_nodes, (unsigned long long)t.output_full_blocks, t.n_blocks,
	       (double)t.ideal_hits / (double)(t.n_blocks ? t.n_blocks : 1));
	printf("# %u engine threads, %s; prefill batch %u, decode batch %u tokens; every "
	       "attached block read back and compared\n",
	       o.threads, o.speed > 0 ? "trace clock scaled" : "as fast as possible (order kept)",
	       o.prefill, o.decode);
	(void)b1;

	char scratch[4096] = "", cold[4200];
	bool need_cold = o.split && o.hot_frac < 1;
	if (need_cold) {
		long fs = 0;
		if ((rc = bench_scratch_make("tierkv-bench replay", o.dir, "tierkv-replay", scratch,
					     sizeof(scratch), &fs))) {
			replay_trace_free(&t);
			return 1;
		}
		printf("# cold tier: %s (%s%s)\n", scratch, bench_fs_name(fs),
		       bench_fs_is_ram(fs) ? ", RAM: not a disk" : "");
	}
	size_t max_pts = (size_t)o.n_caps * 4;
	replay_point *pts = calloc(max_pts, sizeof(*pts));
	size_t n_pts = 0;
	uint64_t wrong = 0, errors = 0;
	replay_table_header();
	for (int c = 0; c < o.n_caps && pts; c++) {
		uint64_t cap = (uint64_t)(o.caps[c] * (double)ws + 0.5);
		cap = cap < 2 ? 2 : cap;
		double ideal = (double)t.ideal_hits / (double)(t.n_blocks ? t.n_blocks : 1);
		double lru_held = 0;
		double lru = (double)replay_lru_hits(&t, cap, SAMPLE_EVERY, &lru_held) /
			     (double)(t.n_blocks ? t.n_blocks : 1);
		double one_node = -1; /* this capacity's one-node hit ratio, for the shared run */
		for (int mode = 0; mode < 4; mode++) {
			/* 0: hot+cold, one node; 1: hot only; 2, 3: nodes sharing a
			 * cluster, writing on drop / through, each with mode 0's sizes
			 * (mode 1's without a cold tier) */
			bool shared = mode >= 2, split = mode == 0 || (shared && need_cold);
			tkv_shared_write policy = mode == 3 ? TKV_SHARED_WRITE_THROUGH
							    : TKV_SHARED_WRITE_ON_DROP;
			if ((mode == 0 && !need_cold) || (mode == 1 && !o.hot_only) ||
			    (shared && (!o.shared || o.nodes < 2 ||
					(o.shared_write && o.shared_write != 1 + (int)policy))))
				continue;
			uint64_t hot = split ? (uint64_t)(o.hot_frac * (double)cap + 0.5) : cap;
			hot = hot < o.layers ? o.layers : hot;
			uint64_t cold_b = split ? cap - (hot < cap ? hot : cap - 1) : 0;
			snprintf(cold, sizeof(cold), "%s/cold-%d", scratch, c);
			replay_point *p = &pts[n_pts];
			p->trace = base;
			p->geometry = o.geometry;
			p->capacity_frac = o.caps[c];
			p->hot_frac = split ? o.hot_frac : 1.0;
			p->capacity_blocks = cap;
			p->ideal_hit_ratio = ideal;
			p->lru_hit_ratio = lru;
			char model[128];
			snprintf(model, sizeof(model), "tierkv-bench/replay/%d-%llu-%d", (int)getpid(),
				 (unsigned long long)bench_now_ns(), c);
			p->one_node_hit_ratio = shared ? one_node : -1;
			p->shared_write = policy;
			p->lru_held_mean = lru_held;
			if ((rc = run_point(&t, &o, hot, cold_b, cold, shared ? o.nodes : 1, policy,
					    model, p)))
				break;
			if (mode == (need_cold ? 0 : 1))
				one_node = p->hit_ratio;
			if (cold_b)
				bench_scratch_remove(cold);
			if (!split || cold_b == 0)
				p->restart_at = -1;
			replay_table_row(p);
			fflush(stdout);
			wrong += p->wrong_bytes;
			errors += p->errors;
			n_pts++;
		}
		if (rc)
			break;
	}
	if (need_cold)
		bench_scratch_remove(scratch);
	printf("wrong_bytes %llu in all runs; errors %llu\n", (unsigned long long)wrong,
	       (unsigned long long)errors);
	char path[4200];
	int orc = 0;
	if (o.json)
		orc |= replay_write_json(pts, n_pts, o.json);
	if (o.csv)
		orc |= replay_write_csv(pts, n_pts, o.csv);
	if (o.out) {
		snprintf(path, sizeof(path), "%s/replay.json", o.out);
		orc |= replay_write_json(pts, n_pts, path);
		snprintf(path, sizeof(path), "%s/replay.csv", o.out);
		orc |= replay_write_csv(pts, n_pts, path);
		orc |= replay_plot(pts, n_pts, o.out);
	}
	free(pts);
	replay_trace_free(&t);
	return rc || orc || wrong || errors ? 1 : 0;
}
