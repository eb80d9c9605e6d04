/*
 * pipeline.c - the default `tierkv-bench` run: store-to-completion
 * throughput of the hot-tier pipeline, swept over workers x batch x dtype for
 * one model geometry, beside its two baselines and the copy limits measured
 * in the same run.
 *
 * What one point measures: one engine thread stores every layer of S
 * sequences, batch tokens at a time (for each position step: each sequence,
 * each layer, as a forward pass produces them), then syncs every sequence:
 * one pass, timed from the first store to the last completion. A timed
 * repetition is as many passes as store MIN_REP_BYTES, their times summed
 * (the close and reopen of the sequences between passes untimed). The
 * runtime stays open between repetitions, so the arenas' pages are warm,
 * as in a serving engine that has been running for a while; one discarded
 * pass warms up.
 *
 * The limit a point is compared with is the better of glibc memcpy and the
 * runtime's streaming copy, copying the same source buffer (each thread all
 * of it, as each worker reads from all of it) into a huge-page destination
 * as large as the hot tier (the hot slabs are huge-page advised too), with
 * as many threads as the point has workers.
 * It is interleaved with the passes: after each timed pass (the runtime
 * then idle), one timing of each kernel as long as that pass took; a
 * repetition's limit is each kernel's rate over the timings after its
 * passes, the better kernel's kept, and the point is the repetition with
 * the median ratio, with the ratios' extremes as its spread
 * (bench/paired.c). On this VM the copy bandwidth itself moves by tens of
 * percent within seconds (a 2-thread limit read 24-48 GB/s in one sweep),
 * so a ratio of the best repetition to the best of six limit timings taken
 * seconds away from it measured which side caught a quiet moment, and a
 * repetition's ratio to the better of two 0.1 s timings around it (until
 * 2026-12-03, fourth session) divided one sample by the larger of two
 * (docs/MEASUREMENTS.md, "Limits interleaved with passes" and "Limits
 * paired with repetitions"). The naive baseline keeps the best of its
 * repetitions against limits bracketing it (bench_point_limit_gbps), into
 * a destination of 4 KiB pages like its malloc'd blocks (a huge-page one
 * would divide it by a copy its memory cannot do).
 *
 * The mutex-queue baseline runs beside the ring at each point: both
 * runtimes open, their repetitions alternating, so the ring's vs_mutex is
 * a median over pairs of repetitions a second apart (run_ring_and_mutex).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <getopt.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/internals.h"
#include "bench/latency.h"
#include "bench/limits.h"
#include "bench/paired.h"
#include "bench/report.h"

enum { N_SEQS = 16, SRC_BYTES = 64 << 20 };

/* A timed repetition stores at least this much (passes over the point's
 * sequences, their close and reopen untimed): a pass over 90% of a 512 MiB
 * hot tier at batch 64 is ~10 ms with 2 workers here, short enough that
 * one scheduling hiccup decided a point (docs/MEASUREMENTS.md). */
#define MIN_REP_BYTES (2ull << 30)

/* Passes per timed repetition for passes of pass_bytes. */
static uint32_t passes_for(uint64_t pass_bytes)
{
	return pass_bytes ? (uint32_t)((MIN_REP_BYTES + pass_bytes - 1) / pass_bytes) : 1;
}

typedef struct point_run {
	const bench_geometry *geo;
	tkv_dtype dtype;
	uint32_t workers, batch;
	uint64_t hot_bytes;
	const unsigned char *src;
	tkv__queue_kind queue;
	const char *trace_path; /* NULL: tracing off */
	uint32_t n_seqs;        /* set by run_point / run_naive */
} point_run;

static tkv_config point_config(const point_run *p)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = p->geo->n_layers;
	c.n_kv_heads = p->geo->n_kv_heads;
	c.head_dim = p->geo->head_dim;
	c.dtype = p->dtype;
	c.hot_bytes = p->hot_bytes;
	c.n_workers = p->workers;
	c.trace_path = p->trace_path ? p->trace_path : "";
	return c;
}

/* Sequences per point: N_SEQS, or fewer when a small hot tier (or a deep
 * model) cannot hold N_SEQS sequences of one batch each; 0 if not even one. */
static uint32_t seqs_per_point(const tkv_config *c, size_t layer_token_bytes, uint32_t batch)
{
	uint64_t blocks = c->hot_bytes / (layer_token_bytes * c->block_tokens) * 9 / 10;
	uint64_t per_seq = (uint64_t)c->n_layers * ((batch + c->block_tokens - 1) / c->block_tokens);
	uint64_t n = blocks / per_seq;
	return (uint32_t)(n < N_SEQS ? n : N_SEQS);
}

/* Tokens per sequence so all sequences fill ~90% of the hot tier, rounded
 * down to whole blocks and to whole batches (at least one batch). */
static uint32_t tokens_per_seq(const tkv_config *c, size_t layer_token_bytes, uint32_t batch,
			       uint32_t n_seqs)
{
	uint64_t per_layer = c->hot_bytes / layer_token_bytes / c->n_layers;
	uint64_t t = per_layer * 9 / 10 / n_seqs;
	t -= t % c->block_tokens;
	t -= t % batch;
	return (uint32_t)(t ? t : batch);
}

/* Where a point measures its copy limit (see "interleaved" in the header). */
typedef struct limit_ctx {
	unsigned char *dst; /* bench_huge_buffer(o->hot_bytes), kept faulted in */
	const unsigned char *src;
	uint64_t footprint;
	uint32_t threads;
} limit_ctx;

/* The limit is timed after every pass, each kernel for as long as the pass
 * took (at least LIMIT_MIN_SECONDS); a repetition's limit is each kernel's
 * rate over the timings after its passes, the better kernel's
 * (bench_limit_sum, paired.h). The warm-up pass is followed by one too,
 * not counted, so the first timed pass starts after limit copies like
 * every other. */
#define LIMIT_MIN_SECONDS 0.01

static int limit_after_pass(const limit_ctx *lc, uint64_t pass_ns, bench_limit_sum *sum)
{
	double secs = (double)pass_ns / 1e9;
	if (secs < LIMIT_MIN_SECONDS)
		secs = LIMIT_MIN_SECONDS;
	bench_copy_limits l;
	int rc = bench_point_limits(lc->dst, lc->src, SRC_BYTES, lc->footprint, lc->threads, 1, secs,
				    &l);
	if (!rc)
		bench_limit_sum_add(sum, l.memcpy_gbps, l.stream_gbps, secs);
	return rc;
}

/* A point's figures from its timed repetitions: the slowest and fastest
 * are its spread, and the best is the point's unless bench_finish_paired already
 * chose one (paired); steal since steal0 (just before the first timed
 * repetition). Sorts times. */
static void finish_times(bench_result *r, bench_lat *times, uint64_t layer_tokens, size_t row,
			 double steal0, bool paired)
{
	double steal1 = bench_steal_ms();
	bench_lat_finish(times, NULL);
	const double bytes = (double)layer_tokens * 2 * (double)row;
	if (!paired) {
		r->tokens_per_s = (double)layer_tokens / (times->min / 1e9);
		r->gbps = bytes / times->min;
	}
	r->gbps_lo = bytes / times->max;
	r->gbps_hi = bytes / times->min;
	r->reps = (int)times->n;
	r->steal_ms = steal0 >= 0 && steal1 >= 0 ? steal1 - steal0 : -1;
}

/* One timed pass: returns nanoseconds, or 0 on error. */
static uint64_t run_once(tkv_runtime *rt, const tkv_config *c, const point_run *p, uint32_t tokens,
		       size_t row)
{
	const size_t batch_bytes = (size_t)p->batch * row;
	size_t off = 0;
	for (uint64_t s = 0; s < p->n_seqs; s++)
		if (tkv_seq_open(rt, s + 1))
			return 0;
	uint64_t t0 = bench_now_ns();
	for (uint32_t pos = 0; pos < tokens; pos += p->batch) {
		for (uint64_t s = 0; s < p->n_seqs; s++) {
			for (uint32_t l = 0; l < c->n_layers; l++) {
				const unsigned char *k = p->src + off;
				const unsigned char *v = p->src + off + batch_bytes;
				off = (off + 2 * batch_bytes) % (SRC_BYTES - 2 * batch_bytes);
				int rc = tkv_store(rt, s + 1, l, pos, p->batch, k, v, 0, NULL);
				if (rc) {
					fprintf(stderr, "tierkv-bench: store: %s\n", tkv_last_error());
					return 0;
				}
			}
		}
	}
	for (uint64_t s = 0; s < p->n_seqs; s++)
		tkv_seq_sync(rt, s + 1);
	uint64_t ns = bench_now_ns() - t0;
	for (uint64_t s = 0; s < p->n_seqs; s++)
		tkv_seq_close(rt, s + 1);
	return ns ? ns : 1;
}

/* A point under measurement: its runtime stays open across its warm-up
 * and its timed repetitions, so two points (the ring and the mutex queue)
 * can take turns repetition by repetition. */
typedef struct point_state {
	point_run p; /* p.n_seqs set */
	tkv_config c;
	tkv_runtime *rt;
	size_t row;
	uint32_t tokens, passes;
	uint64_t pass_tokens;
	bench_lat times; /* ns of each timed repetition, in order */
	double *lim;     /* with a limit_ctx: GB/s timed between its passes */
	double *cpu;     /* CPU seconds per GB of each repetition's passes */
	double steal0;
} point_state;

static void point_free(point_state *s)
{
	if (s->rt)
		tkv_close(s->rt);
	s->rt = NULL;
	free(s->times.ns);
	free(s->lim);
	free(s->cpu);
}

/* `passes` passes (one repetition), each followed by a limit timing with lc;
 * *ns their summed time, *cpu the process CPU seconds during them (the
 * limit timings excluded, so only this point's runtime and engine thread
 * count: another point's idle runtime sleeps). */
static int run_passes(point_state *s, uint32_t passes, const limit_ctx *lc, bench_limit_sum *sum,
		      uint64_t *ns, double *cpu)
{
	*ns = 0;
	*cpu = 0;
	for (uint32_t k = 0; k < passes; k++) {
		double c0 = bench_cpu_seconds();
		uint64_t t = run_once(s->rt, &s->c, &s->p, s->tokens, s->row);
		*cpu += bench_cpu_seconds() - c0;
		if (!t)
			return -EIO;
		*ns += t;
		int rc = lc ? limit_after_pass(lc, t, sum) : 0;
		if (rc)
			return rc;
	}
	return 0;
}

/* Opens p's runtime and runs its warm-up pass (with a limit timing after
 * it, not counted, when lc is set). */
static int point_open(const point_run *p, int reps, const limit_ctx *lc, point_state *s)
{
	*s = (point_state){.p = *p, .c = point_config(p)};
	s->times.ns = calloc((size_t)reps, sizeof(uint64_t));
	s->lim = calloc((size_t)reps, sizeof(double));
	s->cpu = calloc((size_t)reps, sizeof(double));
	tkv__open_opts opts = {.queue = p->queue};
	int rc = s->times.ns && s->lim && s->cpu ? 0 : -ENOMEM;
	if (!rc && (rc = tkv__open_ex(&s->c, &opts, &s->rt))) {
		fprintf(stderr, "tierkv-bench: open: %s\n", tkv_last_error());
		s->rt = NULL;
	}
	if (rc) {
		point_free(s);
		return rc;
	}
	s->row = (size_t)s->c.n_kv_heads * s->c.head_dim * tkv_dtype_size(s->c.dtype);
	s->p.n_seqs = seqs_per_point(&s->c, 2 * s->row, p->batch);
	if (!s->p.n_seqs) {
		point_free(s);
		fprintf(stderr, "tierkv-bench: hot tier too small for one sequence at batch %u\n",
			p->batch);
		return -ENOSPC;
	}
	s->tokens = tokens_per_seq(&s->c, 2 * s->row, p->batch, s->p.n_seqs);
	s->pass_tokens = (uint64_t)s->p.n_seqs * s->tokens * s->c.n_layers;
	s->passes = passes_for(s->pass_tokens * 2 * s->row);
	bench_limit_sum sum = {0};
	uint64_t ns;
	double cpu;
	if ((rc = run_passes(s, 1, lc, &sum, &ns, &cpu)))
		point_free(s);
	s->steal0 = bench_steal_ms();
	return rc;
}

/* One timed repetition of an open point. */
static int point_rep(point_state *s, const limit_ctx *lc)
{
	bench_limit_sum sum = {0};
	uint64_t ns;
	double cpu;
	int rc = run_passes(s, s->passes, lc, &sum, &ns, &cpu);
	if (rc)
		return rc;
	if (lc && !(s->lim[s->times.n] = bench_limit_sum_rate(&sum)))
		return -EIO;
	const double lt = (double)s->pass_tokens * s->passes;
	s->cpu[s->times.n] = cpu / (lt * 2 * (double)s->row / 1e9);
	s->times.ns[s->times.n++] = ns;
	return 0;
}

/* Closes the point and fills r's rates and spread from its repetitions;
 * with lc, also r's ratio from the limits between its passes
 * (bench/paired.c), else the caller divides. */
static void point_finish(point_state *s, const limit_ctx *lc, bench_result *r)
{
	tkv_close(s->rt);
	s->rt = NULL;
	const uint64_t lt = s->pass_tokens * s->passes;
	if (lc) /* before finish_times sorts the repetitions */
		bench_finish_paired(r, s->times.ns, s->lim, (int)s->times.n, lt,
				    (double)lt * 2 * (double)s->row);
	double cpu = 0; /* every repetition stores the same bytes: the mean is the total's rate */
	for (size_t i = 0; i < s->times.n; i++)
		cpu += s->cpu[i] / (double)s->times.n;
	r->cpu_s_per_gb = cpu;
	r->cpu_span = bench_span_of(s->cpu, (int)s->times.n);
	finish_times(r, &s->times, lt, s->row, s->steal0, lc != NULL);
}

/* `reps` timed repetitions after one warm-up (point_open .. point_finish). */
static int run_point(const point_run *p, int reps, const limit_ctx *lc, bench_result *r)
{
	point_state s;
	int rc = point_open(p, reps, lc, &s);
	for (int i = 0; i < reps && !rc; i++)
		rc = point_rep(&s, lc);
	if (!rc)
		point_finish(&s, lc, r);
	point_free(&s);
	return rc;
}

/* The ring and its baseline (the mutex queue, or with --versus ring a
 * second ring runtime) at one point, paired: both runtimes open at once,
 * their repetitions alternating (the baseline first in every second one),
 * so each pair ran within a second of each other and r's vs_mutex (ring
 * over baseline, median and extremes over the pairs) does not carry the
 * drift between two points measured one after the other. */
static int run_ring_and_mutex(const point_run *p, int reps, const limit_ctx *lc,
			      tkv__queue_kind baseline, bench_result *r, bench_result *mq)
{
	point_run pr = *p, pm = *p;
	pr.queue = TKV__QUEUE_RING;
	pm.queue = baseline;
	point_state s[2];
	int rc = point_open(&pr, reps, lc, &s[0]);
	if (rc)
		return rc;
	if ((rc = point_open(&pm, reps, lc, &s[1]))) {
		point_free(&s[0]);
		return rc;
	}
	for (int i = 0; i < reps && !rc; i++)
		for (int j = 0; j < 2 && !rc; j++)
			rc = point_rep(&s[(i + j) % 2], lc);
	if (!rc) {
		/* the same work each: ring over mutex rate is mutex over ring time
		 * (taken before point_finish sorts the times) */
		double inv[2][reps];
		for (int k = 0; k < 2; k++)
			for (int i = 0; i < reps; i++)
				inv[k][i] = 1.0 / (double)s[k].times.ns[i];
		bench_ratio_spread sp, cp;
		if (bench_paired_ratio(inv[0], inv[1], reps, &sp) &&
		    bench_paired_ratio(s[0].cpu, s[1].cpu, reps, &cp)) {
			r->vs_mutex = sp.median;
			r->vs_mutex_lo = sp.lo;
			r->vs_mutex_hi = sp.hi;
			r->cpu_vs_mutex = cp.median;
			r->cpu_vs_mutex_lo = cp.lo;
			r->cpu_vs_mutex_hi = cp.hi;
		}
		point_finish(&s[0], lc, r);
		point_finish(&s[1], lc, mq);
	}
	point_free(&s[0]);
	point_free(&s[1]);
	return rc;
}

/* The seed's design: every token of every layer is one call that takes a
 * global mutex, finds the block and memcpys the K and V rows. Its blocks
 * are malloc'd and faulted in before the first timed run and kept across
 * runs, as tierkv's arenas stay warm between repetitions: until issue 11
 * they were malloc'd inside the timed loop and freed after each run, so
 * every run first-touched ~460 MiB of fresh pages and "speedup over
 * naive" mostly counted page faults. */
typedef struct naive_store {
	pthread_mutex_t lock;
	unsigned char **blocks; /* [seq][layer][block] */
	uint32_t n_layers, blocks_per_layer;
	size_t row, block_bytes;
} naive_store;

static void naive_put(naive_store *n, uint32_t seq, uint32_t layer, uint32_t pos,
		      const unsigned char *k, const unsigned char *v)
{
	pthread_mutex_lock(&n->lock);
	size_t idx = ((size_t)seq * n->n_layers + layer) * n->blocks_per_layer + pos / 16;
	unsigned char *b = n->blocks[idx];
	memcpy(b + (pos % 16) * n->row, k, n->row);
	memcpy(b + (16 + pos % 16) * n->row, v, n->row);
	pthread_mutex_unlock(&n->lock);
}

static int run_naive(const point_run *p, int reps, bench_result *r)
{
	tkv_config c = point_config(p);
	const size_t row = (size_t)c.n_kv_heads * c.head_dim * tkv_dtype_size(c.dtype);
	const uint32_t n_seqs = seqs_per_point(&c, 2 * row, 16);
	if (!n_seqs)
		return -ENOSPC;
	const uint32_t tokens = tokens_per_seq(&c, 2 * row, 16, n_seqs);
	naive_store n = {.n_layers = c.n_layers, .blocks_per_layer = tokens / 16 + 1, .row = row};
	n.block_bytes = 32 * row;
	size_t nblocks = (size_t)n_seqs * c.n_layers * n.blocks_per_layer;
	n.blocks = calloc(nblocks, sizeof(*n.blocks));
	bench_lat times = {.ns = calloc((size_t)reps, sizeof(uint64_t))};
	if (!n.blocks || !times.ns) {
		free(n.blocks);
		free(times.ns);
		return -ENOMEM;
	}
	for (size_t b = 0; b < nblocks; b++) {
		if (!(n.blocks[b] = malloc(n.block_bytes))) {
			while (b--)
				free(n.blocks[b]);
			free(n.blocks);
			free(times.ns);
			return -ENOMEM;
		}
		memset(n.blocks[b], 0, n.block_bytes); /* faulted in, untimed */
	}
	pthread_mutex_init(&n.lock, NULL);
	double steal0 = 0;
	const uint64_t pass_tokens = (uint64_t)n_seqs * tokens * c.n_layers;
	const uint32_t passes = passes_for(pass_tokens * 2 * row);
	for (int i = 0; i <= reps; i++) {
		size_t off = 0;
		uint64_t t0 = bench_now_ns();
		for (uint32_t k = 0; k < (i ? passes : 1); k++) /* the same passes as a point */
			for (uint32_t pos = 0; pos < tokens; pos++)
				for (uint32_t s = 0; s < n_seqs; s++)
					for (uint32_t l = 0; l < c.n_layers; l++) {
						naive_put(&n, s, l, pos, p->src + off,
							  p->src + off + row);
						off = (off + 2 * row) % (SRC_BYTES - 2 * row);
					}
		uint64_t ns = bench_now_ns() - t0;
		if (i > 0) /* the first one is the warm-up */
			times.ns[times.n++] = ns ? ns : 1;
		if (i == 0)
			steal0 = bench_steal_ms();
	}
	for (size_t b = 0; b < nblocks; b++)
		free(n.blocks[b]);
	free(n.blocks);
	pthread_mutex_destroy(&n.lock);
	finish_times(r, &times, pass_tokens * passes, row, steal0, false);
	free(times.ns);
	return 0;
}

static void fill_common(bench_result *r, const char *scenario, const point_run *p,
			double limit)
{
	r->scenario = scenario;
	r->geometry = p->geo->name;
	r->dtype = p->dtype;
	r->workers = p->workers;
	r->batch = p->batch;
	if (limit > 0) { /* else run_point paired its repetitions with limits */
		r->limit_gbps = limit;
		r->ratio = r->gbps / limit;
	}
}


static const uint32_t batches[] = {1, 4, 16, 32, 64};
static const tkv_dtype dtypes[] = {TKV_DTYPE_F32, TKV_DTYPE_BF16};
enum { N_BATCHES = sizeof(batches) / sizeof(batches[0]), N_DTYPES = 2 };

size_t bench_pipeline_planned(const pipeline_options *o)
{
	return N_DTYPES * (1 + 2 * (size_t)o->max_workers * N_BATCHES);
}

int bench_pipeline_point(const bench_geometry *geo, tkv_dtype dtype, uint32_t workers,
			 uint32_t batch, uint64_t hot_bytes, int reps, const char *trace_path,
			 bench_result *r)
{
	unsigned char *src = bench_source_buffer(SRC_BYTES);
	if (!src)
		return -ENOMEM;
	point_run p = {geo, dtype, workers, batch, hot_bytes, src, TKV__QUEUE_RING, trace_path, 0};
	double limit = bench_copy_limit_gbps(src, SRC_BYTES, hot_bytes, workers);
	int rc = limit > 0 ? run_point(&p, reps, NULL, r) : -EIO;
	if (!rc)
		fill_common(r, "pipeline", &p, limit);
	free(src);
	return rc;
}

/* A limit that brackets a point: measured before it (*prev) and after it
 * (returned through *prev for the next point); the better of the two is the
 * point's, so a drift during the point lowers its ratio, never raises it. */
static double bracket_limit(unsigned char *dst, const unsigned char *src, const pipeline_options *o,
			    uint32_t w, double *prev)
{
	double after = bench_point_limit_gbps(dst, src, SRC_BYTES, o->hot_bytes, w, o->reps,
					      BENCH_BRACKET_SECONDS);
	double lim = after > *prev ? after : *prev;
	*prev = after;
	return after > 0 ? lim : 0;
}

int bench_pipeline_sweep(const pipeline_options *o, bench_report *rep)
{
	unsigned char *src = bench_source_buffer(SRC_BYTES);
	unsigned char *dst = bench_huge_buffer(o->hot_bytes);
	/* the naive baseline's limit: its blocks are malloc'd, 4 KiB pages */
	unsigned char *dst_small = bench_small_page_buffer(o->hot_bytes);
	int rc = src && dst && dst_small ? 0 : -ENOMEM;
	const tkv__queue_kind baseline = o->versus_ring ? TKV__QUEUE_RING : TKV__QUEUE_MUTEX;
	const char *base_name = o->versus_ring ? "ring-again" : "mutex-queue";
	for (size_t d = 0; d < N_DTYPES && !rc; d++) {
		point_run p = {o->geometry, dtypes[d], 1, 1, o->hot_bytes, src, TKV__QUEUE_RING, NULL, 0};
		bench_result naive = {0};
		double prev = bench_point_limit_gbps(dst_small, src, SRC_BYTES, o->hot_bytes, 1,
						     o->reps, BENCH_BRACKET_SECONDS);
		if ((rc = run_naive(&p, o->reps, &naive)))
			break;
		double lim = bracket_limit(dst_small, src, o, 1, &prev);
		if (lim <= 0 && (rc = -EIO))
			break;
		fill_common(&naive, "naive", &p, lim);
		naive.ratio_lo = naive.gbps_lo / lim;
		naive.ratio_hi = naive.gbps_hi / lim;
		naive.speedup = 1.0;
		bench_report_add(rep, &naive);
		bench_progress(rep, "naive baseline");
		for (uint32_t w = 1; w <= o->max_workers && !rc; w++) {
			const limit_ctx lc = {dst, src, o->hot_bytes, w};
			for (size_t b = 0; b < N_BATCHES && !rc; b++) {
				p.workers = w;
				p.batch = batches[b];
				bench_result r = {0}, mq = {0};
				if ((rc = run_ring_and_mutex(&p, o->reps, &lc, baseline, &r, &mq)))
					break;
				p.queue = TKV__QUEUE_RING;
				fill_common(&r, "pipeline", &p, 0);
				r.speedup = r.tokens_per_s / naive.tokens_per_s;
				r.versus = base_name;
				bench_report_add(rep, &r);
				p.queue = baseline;
				fill_common(&mq, base_name, &p, 0);
				mq.speedup = mq.tokens_per_s / naive.tokens_per_s;
				bench_report_add(rep, &mq);
				bench_progress(rep, "pipeline sweep");
			}
		}
	}
	free(dst_small);
	free(dst);
	free(src);
	return rc;
}

void bench_pipeline_print_method(const pipeline_options *o)
{
	printf("# one engine thread stores up to %d sequences, every layer, batch tokens per call;\n"
	       "# %d timed repetitions of >= 2 GiB after a warm-up. limit = better of glibc memcpy\n"
	       "# and the runtime's streaming copy (same source, huge-page destination as large as\n"
	       "# the hot tier, as many threads as workers), each timed after every pass for as\n"
	       "# long as the pass took; a repetition's ratio is to the better kernel's rate over\n"
	       "# its passes, and a point is its median-ratio repetition (ratio min-max: all of\n"
	       "# them). naive: best repetition, limits before and after into 4 KiB pages like\n"
	       "# its malloc'd blocks. CPUs/GB: mean over the repetitions (min-max).\n"
	       "# GB/s = 1e9 B of K+V/s.\n",
	       N_SEQS, o->reps);
	if (o->versus_ring)
		printf("# --versus ring: the baseline rows (ring-again) are a second ring runtime,\n"
		       "# paired with the first exactly as the mutex queue is: an A/A comparison.\n");
}

static void pipeline_usage(FILE *f)
{
	fprintf(f,
		"usage: tierkv-bench [pipeline] [--geometry NAME] [--max-workers N] [--reps N]\n"
		"                    [--hot-bytes SIZE] [--versus mutex|ring] [--json FILE]\n"
		"                    [--csv FILE]\n"
		"  Store-to-completion throughput of the hot-tier pipeline, swept over\n"
		"  workers 1..N x batch {1,4,16,32,64} x dtype {f32,bf16}, beside the naive\n"
		"  and mutex-queue baselines and the same-run copy limit.\n"
		"  --geometry     llama3-8b (default), llama3-70b, mistral-7b, qwen2.5-7b\n"
		"  --max-workers  default: online CPUs\n"
		"  --reps         timed repetitions per point, each paired with copy limits;\n"
		"                 the median-ratio one kept (naive: the best) (default 3)\n"
		"  --hot-bytes    hot tier and limit footprint (default 512M)\n"
		"  --versus       the runtime the ring is paired with at each point: the\n"
		"                 mutex queue (default), or a second ring runtime (an A/A\n"
		"                 run: how often a queue 'beats' itself here)\n");
}

static int parse(int argc, char **argv, pipeline_options *o)
{
	static const struct option opts[] = {
		{"geometry", required_argument, NULL, 'g'}, {"max-workers", required_argument, NULL, 'w'},
		{"reps", required_argument, NULL, 'r'},     {"hot-bytes", required_argument, NULL, 'b'},
		{"json", required_argument, NULL, 'j'},     {"csv", required_argument, NULL, 'c'},
		{"versus", required_argument, NULL, 'v'},   {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	*o = (pipeline_options){bench_geometry_find("llama3-8b"), ncpu > 0 ? (uint32_t)ncpu : 1, 3,
				512ull << 20, NULL, NULL, false};
	size_t bytes;
	for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		switch (c) {
		case 'g':
			if (!(o->geometry = bench_geometry_find(optarg)))
				return fprintf(stderr, "tierkv-bench: unknown geometry '%s'\n", optarg), -1;
			break;
		case 'w':
			if (bench_opt_u32("pipeline", "--max-workers", optarg, 1,
					  TKV_STATS_MAX_WORKERS, &o->max_workers))
				return -1;
			break;
		case 'r':
			if (bench_opt_int("pipeline", "--reps", optarg, 1, 1000, &o->reps))
				return -1;
			break;
		case 'b':
			if (bench_parse_bytes(optarg, &bytes))
				return fprintf(stderr, "tierkv-bench: bad size '%s'\n", optarg), -1;
			o->hot_bytes = bytes;
			break;
		case 'j': o->json = optarg; break;
		case 'c': o->csv = optarg; break;
		case 'v': {
			static const char *const kinds[] = {"mutex", "ring"};
			int k;
			if (bench_opt_choice("pipeline", "--versus", optarg, kinds, 2, &k))
				return -1;
			o->versus_ring = k == 1;
			break;
		}
		case 'h': pipeline_usage(stdout); exit(0);
		default: pipeline_usage(stderr); return -1;
		}
	}
	if (o->max_workers < 1 || o->max_workers > TKV_STATS_MAX_WORKERS || o->reps < 1)
		return fprintf(stderr, "tierkv-bench: --max-workers and --reps must be >= 1\n"), -1;
	return 0;
}

int bench_pipeline_main(int argc, char **argv)
{
	pipeline_options o;
	if (parse(argc, argv, &o))
		return 2;
	bench_report rep;
	bench_report_init(&rep, bench_pipeline_planned(&o));
	printf("# tierkv-bench pipeline: %s (%u layers x %u KV heads x %u dims), hot tier %llu MiB;\n",
	       o.geometry->name, o.geometry->n_layers, o.geometry->n_kv_heads, o.geometry->head_dim,
	       (unsigned long long)(o.hot_bytes >> 20));
	bench_pipeline_print_method(&o);
	fflush(stdout);
	int rc = bench_pipeline_sweep(&o, &rep);
	bench_report_table(&rep, stdout);
	if (!rc && o.json)
		rc = bench_report_json(&rep, o.json);
	if (!rc && o.csv)
		rc = bench_report_csv(&rep, o.csv);
	bench_report_free(&rep);
	return rc ? 1 : 0;
}
