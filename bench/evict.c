/*
 * evict.c - the "evict" scenario: the cold tier against the disk it sits on.
 * Eviction bandwidth against a raw O_DIRECT write, promotion bandwidth
 * against a raw O_DIRECT read, both measured in the same run and directory,
 * and store latency with and without eviction under the same paced load.
 * The method, and why each choice, is in bench/README.md; this file runs its
 * phases in order and reports:
 *
 *   1. raw write #1 (a limit) + whole-file raw reads #1 (information)
 *   2. saturated eviction; the file of promotion's in-step raw reads,
 *      written untimed (bench/disk_limits.c); then promotion, in one
 *      runtime (#1), with a raw read next to each promotion round
 *      (promotion's limit)
 *   3. raw write #2 + whole-file raw reads #2
 *   2'. phase 2 again (#2): each side is the better of two
 *   3'. raw write #3 (eviction's limit is the better of the two passes
 *      around the run kept), a raw write from 4 KiB-page buffers and a raw
 *      read into 64 reused buffers (information)
 *   4, 5. paced runs with eviction (working set 4x hot) and without (all fits
 *      hot), --reps of each, alternating E N N E E N, samples pooled
 *
 * The load itself (stores, waits, promotion rounds) is evict_load.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/disk_limits.h"
#include "bench/evict.h"
#include "bench/limits.h"
#include "bench/paired.h"
#include "bench/scratch.h"

enum {
	SAT_LOW_PCT = 5, /* the saturated run drains to here: see README */
	HIST_SLOTS = 8,
};

#define DEFAULT_HOT (256ull << 20)
#define DEFAULT_PACE 0.5
#define DEFAULT_REPS 3

/* Histograms handed to the report: they must outlive it, so they live here;
 * HIST_SLOTS runs per process keep their own (later ones reuse the oldest). */
static uint64_t lat_hists[HIST_SLOTS][2][BENCH_LAT_BUCKETS];
static unsigned lat_hist_next;

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0.0;
}

static void path_in(const evict_plan *p, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", p->root, name);
}

/* ---- raw baselines --------------------------------------------------------- */

/* Layer blocks a promotion round fills (disk_limits.h, "Where reads land")
 * when the hot tier holds used_pct of its blocks at the round's start. */
static unsigned round_blocks(const evict_plan *p, uint32_t used_pct)
{
	const uint64_t hot_blocks = p->hot_bytes / p->lay.block_bytes;
	return evict_round_seqs(p, hot_blocks, hot_blocks * used_pct / 100) *
	       p->blocks_per_seq * p->lay.n_layers;
}

/* A raw job of the plan's shape: `units` records (the evictor's I/O size
 * and depth) written to path, read back one layer slice per read
 * (promotion's I/O size and depth) into read_buffers distinct buffers (0:
 * the read depth's). huge: huge-page-advised buffers. */
static bench_disk_job raw_job(const evict_plan *p, const char *path, bool huge,
			      unsigned read_buffers)
{
	return (bench_disk_job){
		.path = path,
		.n_writes = p->units,
		.write_bytes = p->lay.record_bytes,
		.write_depth = p->wq_depth,
		.sync_every = p->o->durable ? p->sync_every : 0,
		.n_reads = p->units * p->lay.n_layers,
		.read_bytes = p->lay.slice_stride,
		.read_depth = p->rq_depth,
		.read_buffers = read_buffers,
		.huge = huge,
		.src = p->src,
		.src_bytes = EVICT_SRC_BYTES,
	};
}

/* Writes the job's file to a fresh file in the scratch directory; then, if
 * r, reads it back (and with rcrc, again with a CRC32C of every block). */
static int raw_pass(const evict_plan *p, const char *name, bool huge, unsigned read_buffers,
		    bench_disk_io *w, bench_disk_io *r, bench_disk_io *rcrc)
{
	char path[PATH_MAX + 32];
	path_in(p, name, path, sizeof(path));
	bench_disk_job j = raw_job(p, path, huge, read_buffers);
	j.n_reads = r ? j.n_reads : 0;
	j.crc_read = r ? rcrc : NULL;
	return bench_disk_pass(&j, w, r);
}

/* Promotion's limit, taken in step: next to each promotion round, a raw
 * read of as many blocks into as many distinct buffers (raw_pass's reads,
 * from a file of its own), before even rounds and after odd ones. Rounds
 * are separated by their untimed verification, and this VM's disk answers
 * faster after a pause (bench/README.md, "Promotion's limit"): alternating
 * gives each side the same share of rounds that start after one. */
typedef struct raw_step {
	bench_disk_reader *rd;
	bench_disk_io *into;
} raw_step;

static int raw_step_round(void *ctx, uint32_t round, uint64_t blocks, bool after)
{
	raw_step *st = ctx;
	if (after != (round % 2 == 1))
		return 0;
	return bench_disk_reader_read(st->rd, blocks, st->into);
}

static int raw_step_open(const evict_plan *p, unsigned read_buffers, bench_disk_reader **rd)
{
	char path[PATH_MAX + 32];
	path_in(p, "raw-step", path, sizeof(path));
	bench_disk_job j = raw_job(p, path, true, read_buffers);
	j.sync_every = 0; /* untimed: only its data matters */
	j.read_slices = p->lay.n_layers;
	j.read_group = p->blocks_per_seq;
	return bench_disk_reader_open(&j, rd);
}

/* ---- the phases ------------------------------------------------------------ */

typedef struct sat_result {
	bench_disk_io raw_step; /* the raw reads in step with promotion's rounds */
	evict_store_run sr;
	uint64_t t_idle;
	uint64_t evictor_cpu_ns; /* the evictor thread's, from the stores' start to idle */
	tkv_stats st; /* after eviction, before promotion */
	evict_promote_run pr;
	uint32_t workers;
	bool direct, uring;
} sat_result;

/* Phase 2: the producer outruns the disk; then everything is read back,
 * each round next to the same raw read (raw_step_round) of a file written
 * just before, as the cold records were: this VM's disk reads data written
 * seconds ago faster than data written a minute ago (bench/README.md,
 * "Promotion's limit"). */
static int saturated_run(const evict_plan *p, unsigned step_max, sat_result *out)
{
	bench_disk_reader *rd = NULL;
	char cold[PATH_MAX + 32];
	path_in(p, "cold-saturated", cold, sizeof(cold));
	tkv_config c = evict_config(p, p->hot_bytes, cold, p->cold_bytes, SAT_LOW_PCT);
	tkv_runtime *rt;
	int rc = evict_open(&c, &rt);
	if (rc)
		return rc;
	const uint64_t hot_blocks = c.hot_bytes / p->lay.block_bytes;
	uint64_t evictor_cpu0 = 0; /* after the warm-up, whose closes wake it */
	if (!(rc = evict_warm_up(rt, p, evict_units_below_high(p, c.hot_bytes))) &&
	    !(rc = evict_open_seqs(rt, p))) {
		evictor_cpu0 = evict_evictor_cpu_ns(rt);
		rc = evict_store_all(rt, p, 0, hot_blocks * c.hot_high_pct / 100, true, &out->sr);
	}
	if (!rc) {
		out->t_idle = evict_wait_idle(rt, hot_blocks * c.hot_low_pct / 100, p->lay.block_bytes);
		/* it evicts nothing before the high watermark: this is the window's */
		out->evictor_cpu_ns = evict_evictor_cpu_ns(rt) - evictor_cpu0;
		if (!out->t_idle) {
			fprintf(stderr, "tierkv-bench evict: the evictor did not reach the low "
					"watermark within %llu s\n",
				(unsigned long long)(EVICT_IDLE_TIMEOUT_NS / 1000000000u));
			rc = -ETIMEDOUT;
		}
	}
	if (!rc)
		rc = evict_stats(rt, &out->st);
	if (!rc) {
		out->workers = out->st.n_workers;
		out->direct = out->st.cold_direct_io;
		out->uring = out->st.cold_io_uring;
		rc = raw_step_open(p, step_max, &rd);
	}
	if (!rc) {
		raw_step step = {rd, &out->raw_step};
		out->pr.beside_round = raw_step_round;
		out->pr.ctx = &step;
		rc = evict_promote_all(rt, p, &out->pr);
	} else {
		evict_close_seqs(rt, p, 0, p->n_seqs);
	}
	bench_disk_reader_close(rd);
	tkv_close(rt);
	bench_scratch_remove(cold);
	return rc;
}

static double sat_evict_gbps(const sat_result *s)
{
	return s->t_idle > s->sr.t_high ? gbps(s->st.evicted_bytes, s->t_idle - s->sr.t_high) : 0;
}

static double sat_promote_gbps(const sat_result *s)
{
	return gbps(s->pr.bytes, s->pr.ns);
}

/* Promotion's CPU cost per GB promoted, and the rate those costs alone would
 * allow on this machine's CPUs: the process's cost spread over every CPU, or
 * one thread's (prefetch, viewer) on one CPU, whichever is lower. A disk
 * faster than this VM's would add I/O completions but no copies (DMA); the
 * bound assumes the cost per GB stays the same (bench/README.md). */
static void promote_cpu_figures(const evict_promote_run *pr, bench_result *r)
{
	if (!pr->bytes)
		return;
	const double gb = (double)pr->bytes / 1e9;
	r->promote_cpu_s_per_gb = (double)(pr->cpu_user_ns + pr->cpu_sys_ns) / 1e9 / gb;
	r->prefetch_cpu_s_per_gb = (double)pr->prefetch_cpu_ns / 1e9 / gb;
	r->viewer_cpu_s_per_gb = (double)pr->viewer_cpu_ns / 1e9 / gb;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	double bound = r->promote_cpu_s_per_gb > 0 ? (double)(ncpu > 0 ? ncpu : 1) /
							     r->promote_cpu_s_per_gb
						   : 0;
	if (r->prefetch_cpu_s_per_gb > 0 && 1 / r->prefetch_cpu_s_per_gb < bound)
		bound = 1 / r->prefetch_cpu_s_per_gb;
	if (r->viewer_cpu_s_per_gb > 0 && 1 / r->viewer_cpu_s_per_gb < bound)
		bound = 1 / r->viewer_cpu_s_per_gb;
	r->promote_cpu_bound_gbps = bound;
}

typedef struct paced_result {
	evict_store_run sr;
	tkv_stats st;
} paced_result;

/* Phases 4 and 5: the paced store sequence into a fresh runtime. */
static int paced_run(const evict_plan *p, const char *name, uint64_t hot, uint64_t cold_bytes,
		     uint64_t interval_ns, uint64_t max_units, paced_result *out)
{
	char cold[PATH_MAX + 32];
	path_in(p, name, cold, sizeof(cold));
	tkv_config c = evict_config(p, hot, cold, cold_bytes, 0);
	tkv_runtime *rt;
	int rc = evict_open(&c, &rt);
	if (rc)
		return rc;
	const uint64_t hot_blocks = c.hot_bytes / p->lay.block_bytes;
	uint64_t warm = evict_units_below_high(p, c.hot_bytes);
	if (!(rc = evict_warm_up(rt, p, warm < p->units ? warm : p->units)) &&
	    !(rc = evict_open_seqs(rt, p))) {
		out->sr.max_units = max_units;
		out->sr.count_blocked = true;
		rc = evict_store_all(rt, p, interval_ns, hot_blocks * c.hot_high_pct / 100, false,
				     &out->sr);
	}
	if (!rc)
		rc = evict_stats(rt, &out->st);
	evict_close_seqs(rt, p, 0, p->n_seqs);
	tkv_close(rt);
	bench_scratch_remove(cold);
	return rc;
}

/* ---- planning -------------------------------------------------------------- */

/* The record layout and the depths of the runtime under test, which the raw
 * baseline copies. */
static int make_plan(const evict_opts *o, evict_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->o = o;
	int rc = tkv__cold_layout_init(&p->lay, o->geo->n_layers, o->geo->n_kv_heads,
				       o->geo->head_dim, o->dtype, EVICT_BATCH, 0);
	if (rc) {
		fprintf(stderr, "tierkv-bench evict: %s\n", tkv_last_error());
		return rc;
	}
	tkv__cold_config cc;
	tkv__cold_config_default(&cc);
	p->wq_depth = cc.queue_depth < TKV__EVICT_BUFS ? cc.queue_depth : TKV__EVICT_BUFS;
	p->sync_every = cc.sync_batch ? cc.sync_batch : (cc.queue_depth + 1) / 2;
	p->rq_depth = cc.read_depth;
	tkv_config dc;
	tkv_config_default(&dc);
	tkv_config_watermarks(&dc, &p->high_pct, &p->low_pct);
	p->row = (size_t)o->geo->n_kv_heads * o->geo->head_dim * tkv_dtype_size(o->dtype);
	p->batch_bytes = EVICT_BATCH * p->row;
	return 0;
}

/* Shapes the working set (4x the hot tier) for hot bytes of hot tier. */
static int size_plan(evict_plan *p, uint64_t hot)
{
	const uint64_t unit = p->lay.payload_bytes;
	p->hot_bytes = hot;
	p->units = 4 * hot / unit;
	if (p->units < 4 || hot / p->lay.block_bytes < 2ull * p->lay.n_layers) {
		fprintf(stderr,
			"tierkv-bench evict: hot tier of %llu bytes is too small for %s %s "
			"(a unit is %llu bytes; need at least 2 units)\n",
			(unsigned long long)hot, p->o->geo->name, bench_dtype_name(p->o->dtype),
			(unsigned long long)unit);
		return -EINVAL;
	}
	p->n_seqs = p->units < EVICT_N_SEQS ? (uint32_t)p->units : EVICT_N_SEQS;
	p->blocks_per_seq = (uint32_t)(p->units / p->n_seqs);
	p->units = (uint64_t)p->n_seqs * p->blocks_per_seq;
	p->tokens_per_seq = p->blocks_per_seq * EVICT_BATCH;
	p->n_stores = p->units * p->lay.n_layers;
	p->cold_bytes = (p->units + p->units / 4 + 8) * p->lay.record_bytes;
	return 0;
}

static uint64_t peak_disk_bytes(const evict_plan *p)
{
	return p->cold_bytes + p->units * p->lay.record_bytes + (64ull << 20);
}

/* Sizes the plan for what the scratch directory's filesystem has free:
 * peak disk use is ~2.3x the working set (the cold tier's 1.3x and the raw
 * file read in step with promotion), so the hot tier is halved until
 * it fits. */
static int fit_plan(evict_plan *p, uint64_t hot, uint64_t *avail)
{
	struct statvfs sv;
	int rc;
	*avail = statvfs(p->root, &sv) == 0 ? (uint64_t)sv.f_bavail * sv.f_frsize : UINT64_MAX;
	while (!(rc = size_plan(p, hot)) && peak_disk_bytes(p) > *avail &&
	       hot / 2 / p->lay.payload_bytes >= 1) {
		fprintf(stderr, "tierkv-bench evict: %llu MiB free in %s, not enough for a %llu MiB "
				"hot tier's working set; halving it\n",
			(unsigned long long)(*avail >> 20), p->root, (unsigned long long)(hot >> 20));
		/* in the results too: a smaller hot tier changes every figure */
		printf("# WARNING: %llu MiB free in %s: hot tier halved from %llu MiB (leftover "
		       "scratch directories are listed on stderr)\n",
		       (unsigned long long)(*avail >> 20), p->root, (unsigned long long)(hot >> 20));
		hot /= 2;
	}
	if (!rc && peak_disk_bytes(p) > *avail) {
		fprintf(stderr, "tierkv-bench evict: not enough free space in %s\n", p->root);
		rc = -ENOSPC;
	}
	return rc;
}

/* ---- the scenario ---------------------------------------------------------- */

static void print_lat(const char *what, const bench_lat *l)
{
	printf("  %-34s p50 %8.0f ns  p99 %9.0f ns  p999 %9.0f ns  max %10.0f ns\n", what, l->p50,
	       l->p99, l->p999, l->max);
}

/* Each latency run's own percentiles, per kind, in run order (--reps <= 100). */
typedef struct run_pcts {
	double p50[100], p99[100], p999[100];
	unsigned n;
} run_pcts;

/* Percentiles of one run's samples. Sorts them in place: they are a slice
 * of the kind's pool, which is sorted whole later, so the pool is the same. */
static void add_run_pcts(run_pcts *pc, uint64_t *ns, uint64_t n)
{
	bench_lat one = {.ns = ns, .n = n};
	bench_lat_finish(&one, NULL);
	pc->p50[pc->n] = one.p50;
	pc->p99[pc->n] = one.p99;
	pc->p999[pc->n++] = one.p999;
}

static void print_run_spread(const char *what, const run_pcts *pc)
{
	bench_span a = bench_span_of(pc->p50, (int)pc->n), b = bench_span_of(pc->p99, (int)pc->n),
		   c = bench_span_of(pc->p999, (int)pc->n);
	printf("  %-34s p50 %.0f-%.0f ns  p99 %.0f-%.0f ns  p999 %.0f-%.0f ns\n", what, a.lo,
	       a.hi, b.lo, b.hi, c.lo, c.hi);
}

static int evict_run(const evict_opts *o, bench_report *rep)
{
	evict_plan p;
	int rc = make_plan(o, &p);
	if (rc)
		return rc;
	long fs_type = 0;
	if ((rc = bench_scratch_make("tierkv-bench evict", o->dir, "tierkv-evict", p.root,
				     sizeof(p.root), &fs_type)))
		return rc;
	uint64_t avail;
	rc = fit_plan(&p, o->hot_bytes ? o->hot_bytes : DEFAULT_HOT, &avail);
	unsigned char *src = rc ? NULL : bench_source_buffer(EVICT_SRC_BYTES);
	if (!rc && !src)
		rc = -ENOMEM;
	if (rc) {
		bench_scratch_remove(p.root);
		return rc;
	}
	p.src = src;
	char b1[24], b2[24], b3[24];
	printf("# tierkv-bench evict: %s %s, record %s (%u layers x %s + %s header), hot tier "
	       "%llu MiB,\n# working set %llu MiB = 4x hot (%u sequences x %u tokens, %llu "
	       "records, %llu stores of %u tokens)\n",
	       o->geo->name, bench_dtype_name(o->dtype), bench_fmt_bytes(p.lay.record_bytes, b1),
	       p.lay.n_layers, bench_fmt_bytes(p.lay.block_bytes, b2),
	       bench_fmt_bytes(p.lay.header_bytes, b3), (unsigned long long)(p.hot_bytes >> 20),
	       (unsigned long long)(p.units * p.lay.payload_bytes >> 20), p.n_seqs,
	       p.tokens_per_seq, (unsigned long long)p.units, (unsigned long long)p.n_stores,
	       EVICT_BATCH);
	printf("# directory %s: %s%s, %llu MiB free; durability %s; evictor depth %u, sync "
	       "every %u records; read depth %u; watermarks %u/%u%% (saturated run: %u/%u%%)\n",
	       p.root, bench_fs_name(fs_type), bench_fs_is_ram(fs_type) ? " (RAM: not a disk!)" : "",
	       (unsigned long long)(avail >> 20), o->durable ? "sync" : "none", p.wq_depth,
	       p.sync_every, p.rq_depth, p.high_pct, p.low_pct, p.high_pct,
	       SAT_LOW_PCT < p.high_pct ? (unsigned)SAT_LOW_PCT : p.low_pct);
	fflush(stdout);

	bench_disk_io w1 = {0}, r1 = {0}, w2 = {0}, r2 = {0}, w3 = {0}, c1 = {0}, c2 = {0};
	bench_disk_io w4 = {0}, r4 = {0}, w5 = {0};
	/* the whole-file passes: a round's blocks when the saturated run
	 * leaves the hot tier at its SAT_LOW_PCT watermark (the usual case);
	 * the in-step reader takes as many buffers as each round's blocks,
	 * up to a round into an empty hot tier */
	const unsigned span = round_blocks(&p, SAT_LOW_PCT), step_max = round_blocks(&p, 0);
	sat_result sats[2];
	memset(sats, 0, sizeof(sats));
	const unsigned reps = o->reps;
	uint64_t *lat_mem = calloc((2 + 2 * (size_t)reps) * p.n_stores, sizeof(uint64_t));
	if (!lat_mem)
		rc = -ENOMEM;
	sats[0].sr.lat.ns = lat_mem;
	sats[1].sr.lat.ns = lat_mem + p.n_stores;
	/* the paced runs' samples, pooled over the repetitions */
	bench_lat pe = {.ns = lat_mem + 2 * p.n_stores},
		  pn = {.ns = lat_mem + (2 + reps) * p.n_stores};
	uint64_t pe_evicted = 0, pn_evicted = 0;

	/* Limits and runs alternate, and each side keeps the better of its two:
	 * the same repeat policy for what is divided as for the divisor. */
	if (!rc)
		rc = raw_pass(&p, "raw-1", true, span, &w1, &r1, &c1);
	if (!rc)
		rc = saturated_run(&p, step_max, &sats[0]);
	if (!rc)
		rc = raw_pass(&p, "raw-2", true, span, &w2, &r2, &c2);
	if (!rc)
		rc = saturated_run(&p, step_max, &sats[1]);
	if (!rc) /* the write limit's pass after run #2 */
		rc = raw_pass(&p, "raw-5", true, 0, &w5, NULL, NULL);
	if (!rc) /* information: the same transfers from 4 KiB pages */
		rc = raw_pass(&p, "raw-3", false, 0, &w3, NULL, NULL);
	if (!rc) /* information: reads into a few cache-resident buffers */
		rc = raw_pass(&p, "raw-4", true, 0, &w4, &r4, NULL);
	const int ev_best = sat_evict_gbps(&sats[1]) > sat_evict_gbps(&sats[0]);
	const int pr_best = sat_promote_gbps(&sats[1]) > sat_promote_gbps(&sats[0]);
	const sat_result *ps = &sats[pr_best]; /* promotion's figures */
	sat_result sat = sats[ev_best];        /* eviction's, the pacing's */
	/* Eviction's limit: the passes right before and after the run kept
	 * for eviction (#1: 1 and 2; #2: 2 and 3, the raw-5 file), the better
	 * of the two, so a drift during the run lowers its ratio, never raises
	 * it. (The better of all passes compared a run with a moment seconds
	 * away: a fast first pass before a slow phase set the limit of a run
	 * made in that phase.) */
	const double wg[3] = {bench_disk_gbps(&w1), bench_disk_gbps(&w2), bench_disk_gbps(&w5)};
	const double around[2] = {wg[0] > wg[1] ? wg[0] : wg[1], wg[1] > wg[2] ? wg[1] : wg[2]};
	double raw_w = around[ev_best];
	/* promotion's limit: the better of the two runs' in-step raw reads */
	const double step1 = bench_disk_gbps(&sats[0].raw_step),
		     step2 = bench_disk_gbps(&sats[1].raw_step);
	double raw_r = step1 > step2 ? step1 : step2;
	double raw_rc = bench_disk_gbps(&c1) > bench_disk_gbps(&c2) ? bench_disk_gbps(&c1)
								  : bench_disk_gbps(&c2);
	/* Paced against what the evictor drained in phase 2 (its window
	 * rate), not the raw write: pacing past the evictor's rate measures
	 * backpressure, not interference. */
	const uint64_t sat_window = sat.t_idle > sat.sr.t_high ? sat.t_idle - sat.sr.t_high : 0;
	const double ev_rate = gbps(sat.st.evicted_bytes, sat_window);
	uint64_t interval = 0;
	if (!rc && o->pace > 0 && ev_rate > 0)
		interval = (uint64_t)((double)p.lay.record_bytes / (o->pace * ev_rate));
	/* No eviction: the same hot tier (so the same copy kernel and the same
	 * warm block pool), and only the units that fit under its high
	 * watermark after the warm-up's: the first part of the same store
	 * sequence. */
	uint64_t fit = evict_units_below_high(&p, p.hot_bytes);
	uint64_t noevict_units = fit > 1 ? fit - 1 : 1;
	uint64_t blocked_e = 0, blocked_n = 0;
	run_pcts pce = {0}, pcn = {0};
	/* alternating which goes first, so a drift does not favour one side */
	for (unsigned k = 0; k < 2 * reps && !rc && !o->no_latency; k++) {
		bool evicting = (k % 2) == ((k / 2) % 2);
		paced_result pr;
		memset(&pr, 0, sizeof(pr));
		bench_lat *into = evicting ? &pe : &pn;
		pr.sr.lat.ns = into->ns + into->n;
		rc = evicting ? paced_run(&p, "cold-paced", p.hot_bytes, p.cold_bytes, interval, 0, &pr)
			      : paced_run(&p, "cold-noevict", p.hot_bytes, p.cold_bytes, interval,
					  noevict_units, &pr);
		into->n += pr.sr.lat.n;
		if (!rc && pr.sr.lat.n)
			add_run_pcts(evicting ? &pce : &pcn, pr.sr.lat.ns, pr.sr.lat.n);
		*(evicting ? &blocked_e : &blocked_n) += pr.sr.blocked_stores;
		*(evicting ? &pe_evicted : &pn_evicted) += pr.st.evicted_blocks;
	}
	bench_scratch_remove(p.root);
	free(src);
	if (rc) {
		free(lat_mem);
		fprintf(stderr, "tierkv-bench evict: failed: %s\n", tkv_strerror(rc));
		return rc;
	}

	/* eviction */
	const tkv_stats *es = &sat.st;
	uint64_t window = sat.t_idle - sat.sr.t_high;
	double ev_wall = gbps(es->evicted_bytes, window);
	double ev_busy = gbps(es->evicted_bytes, es->evict_write_ns);
	double blocked = sat.sr.t_end > sat.sr.t_high
				 ? (double)sat.sr.blocked_ns_after_high /
					   (double)(sat.sr.t_end - sat.sr.t_high)
				 : 0.0;
	double prom = sat_promote_gbps(ps);

	/* latency */
	unsigned slot = lat_hist_next++ % HIST_SLOTS;
	bench_lat_finish(&sat.sr.lat, NULL);
	bench_lat_finish(&pe, lat_hists[slot][0]);
	bench_lat_finish(&pn, lat_hists[slot][1]);

	bench_result r = {0};
	r.scenario = "evict";
	r.geometry = o->geo->name;
	r.dtype = o->dtype;
	r.workers = sat.workers;
	r.batch = EVICT_BATCH;
	r.evict_gbps = ev_wall;
	r.raw_write_gbps = raw_w;
	r.write_ratio = raw_w > 0 ? ev_wall / raw_w : 0;
	r.promote_gbps = prom;
	r.raw_read_gbps = raw_r;
	r.read_ratio = raw_r > 0 ? prom / raw_r : 0;
	r.raw_read_crc_gbps = raw_rc;
	r.read_crc_ratio = raw_rc > 0 ? prom / raw_rc : 0;
	/* each run's, for the spread; the figures are the kept run's */
	bench_result cpu_of[2] = {{0}, {0}};
	for (int k = 0; k < 2; k++) {
		promote_cpu_figures(&sats[k].pr, &cpu_of[k]);
		if (sats[k].st.evicted_bytes)
			cpu_of[k].evictor_cpu_s_per_gb =
				(double)sats[k].evictor_cpu_ns / (double)sats[k].st.evicted_bytes;
	}
	promote_cpu_figures(&ps->pr, &r);
	r.evictor_cpu_s_per_gb = cpu_of[ev_best].evictor_cpu_s_per_gb;
	r.promote_cpu_bound_span = bench_span_of((double[]){cpu_of[0].promote_cpu_bound_gbps,
							    cpu_of[1].promote_cpu_bound_gbps}, 2);
	r.evictor_cpu_span = bench_span_of((double[]){cpu_of[0].evictor_cpu_s_per_gb,
						      cpu_of[1].evictor_cpu_s_per_gb}, 2);
	r.p50_ns = pe.p50;
	r.p99_ns = pe.p99;
	r.p999_ns = pe.p999;
	r.p50_ns_no_evict = pn.p50;
	r.p99_ns_no_evict = pn.p99;
	r.p999_ns_no_evict = pn.p999;
	r.p50_span = bench_span_of(pce.p50, (int)pce.n);
	r.p99_span = bench_span_of(pce.p99, (int)pce.n);
	r.p999_span = bench_span_of(pce.p999, (int)pce.n);
	r.p50_span_no_evict = bench_span_of(pcn.p50, (int)pcn.n);
	r.p99_span_no_evict = bench_span_of(pcn.p99, (int)pcn.n);
	r.p999_span_no_evict = bench_span_of(pcn.p999, (int)pcn.n);
	/* round i ran the i-th run of each kind, back to back */
	double round_ratio[100];
	unsigned rounds = 0;
	for (unsigned i = 0; i < pce.n && i < pcn.n; i++)
		if (pcn.p99[i] > 0)
			round_ratio[rounds++] = pce.p99[i] / pcn.p99[i];
	r.p99_ratio_span = bench_span_of(round_ratio, (int)rounds);
	r.p99_ratio = pn.p99 > 0 ? pe.p99 / pn.p99 : 0;
	r.blocked_stores = blocked_e;
	r.blocked_stores_no_evict = blocked_n;
	r.lat_hist = lat_hists[slot][0];
	r.lat_hist_no_evict = lat_hists[slot][1];
	r.lat_buckets = BENCH_LAT_BUCKETS;
	/* the generic columns: eviction, as layer-tokens and GB/s against raw write */
	r.gbps = ev_wall;
	r.limit_gbps = raw_w;
	r.ratio = r.write_ratio;
	r.tokens_per_s = window ? (double)es->evicted_blocks * p.lay.n_layers * EVICT_BATCH /
					  ((double)window / 1e9)
				: 0;
	bench_report_add(rep, &r);

	printf("# cold tier: O_DIRECT %s, io_uring %s; raw baseline: O_DIRECT %s, io_uring %s; "
	       "%u workers\n",
	       sat.direct ? "yes" : "NO (buffered)", sat.uring ? "yes" : "NO (pwrite)",
	       w1.direct && r1.direct && ps->raw_step.direct ? "yes" : "NO",
	       w1.uring && r1.uring && ps->raw_step.uring ? "yes" : "NO",
	       sat.workers);
	if (sat.direct != (w1.direct && r1.direct && ps->raw_step.direct) ||
	    sat.uring != (w1.uring && r1.uring && ps->raw_step.uring))
		printf("# WARNING: the cold tier and the raw baseline do not use the same I/O "
		       "path: the ratios do not compare like with like\n");
	printf("raw write (%u in flight, %s):\n  before run #1 %6.2f GB/s, between the runs %6.2f "
	       "GB/s, after run #2 %6.2f GB/s\n  -> limit %6.2f GB/s (the better of the two "
	       "around run #%d, kept for eviction)\n",
	       p.wq_depth, o->durable ? "fdatasync per batch" : "no sync", wg[0], wg[1], wg[2],
	       raw_w, ev_best + 1);
	printf("  (the same with 4 KiB-page buffers, for comparison: %.2f GB/s)\n",
	       bench_disk_gbps(&w3));
	printf("raw read  (%u in flight, %s/read):\n"
	       "  next to each promotion round (before even rounds, after odd ones), as many "
	       "blocks\n  in the round's order into as many buffers (up to %u):\n"
	       "                                  #1 %6.2f GB/s  #2 %6.2f GB/s  -> limit %6.2f "
	       "GB/s\n  whole file, sequential, into %u buffers (%llu MiB), before run #1 and "
	       "before run #2:\n"
	       "                                  #1 %6.2f GB/s  #2 %6.2f GB/s\n",
	       p.rq_depth, bench_fmt_bytes(p.lay.slice_stride, b1), step_max, step1, step2, raw_r,
	       span, (unsigned long long)((uint64_t)span * p.lay.slice_stride >> 20),
	       bench_disk_gbps(&r1), bench_disk_gbps(&r2));
	printf("  (the same into %u reused buffers, %llu MiB the caches hold, for comparison: "
	       "%.2f GB/s)\n",
	       p.rq_depth, (unsigned long long)((uint64_t)p.rq_depth * p.lay.slice_stride >> 20),
	       bench_disk_gbps(&r4));
	printf("raw read + CRC32C of every block on the reaping thread (one verifying thread's "
	       "best):\n                                  #1 %6.2f GB/s  #2 %6.2f GB/s  -> %6.2f GB/s\n",
	       bench_disk_gbps(&c1), bench_disk_gbps(&c2), raw_rc);
	printf("eviction (#1 %.2f GB/s, #2 %.2f GB/s; the better):\n", sat_evict_gbps(&sats[0]),
	       sat_evict_gbps(&sats[1]));
	printf("  %llu records (%llu MiB) in %.1f ms from the high watermark to idle: "
	       "%6.2f GB/s  ratio %.3f  (target >= 0.80)\n",
	       (unsigned long long)es->evicted_blocks,
	       (unsigned long long)(es->evicted_bytes >> 20), (double)window / 1e6, ev_wall,
	       r.write_ratio);
	printf("  cross-check, library busy time (>= 1 write outstanding) %.1f ms: %6.2f GB/s "
	       "(ratio %.3f)\n",
	       (double)es->evict_write_ns / 1e6, ev_busy, raw_w > 0 ? ev_busy / raw_w : 0);
	printf("  producer blocked in tkv_store %.0f%% of the time from the watermark to its last "
	       "store%s\n",
	       100.0 * blocked,
	       blocked < 0.5 ? " (LOW: the producer, not the evictor, set the pace; trust the "
			       "busy-time figure)"
			     : "");
	printf("  CPU of the evictor thread (CRCs, submits, reaps): %.3f s per GB evicted (runs "
	       "%.3f-%.3f):\n    alone it would allow %.1f GB/s\n",
	       r.evictor_cpu_s_per_gb, r.evictor_cpu_span.lo, r.evictor_cpu_span.hi,
	       r.evictor_cpu_s_per_gb > 0 ? 1 / r.evictor_cpu_s_per_gb : 0.0);
	printf("promotion (#1 %.2f GB/s, #2 %.2f GB/s; the better):\n",
	       sat_promote_gbps(&sats[0]), sat_promote_gbps(&sats[1]));
	printf("  %llu layer blocks (%llu MiB) in %u rounds of up to %llu blocks, %.1f ms: "
	       "%6.2f GB/s  ratio %.3f  (target >= 0.80)\n",
	       (unsigned long long)ps->pr.blocks, (unsigned long long)(ps->pr.bytes >> 20),
	       ps->pr.rounds, (unsigned long long)ps->pr.max_round_blocks,
	       (double)ps->pr.ns / 1e6, prom, r.read_ratio);
	printf("  ratio to the raw read into reused buffers: %.3f\n",
	       bench_disk_gbps(&r4) > 0 ? prom / bench_disk_gbps(&r4) : 0);
	printf("  ratio to raw read + CRC32C on one thread: %.3f\n", r.read_crc_ratio);
	printf("  checksums verified by the waiting views: %llu of %llu blocks (the prefetch "
	       "thread did the rest)\n",
	       (unsigned long long)ps->pr.reader_verified, (unsigned long long)ps->pr.blocks);
	printf("  CPU while promoting: %.3f s per GB (%.0f%% system; every thread), the prefetch "
	       "thread %.3f,\n    the viewing thread %.3f: these costs alone would allow %.1f GB/s "
	       "on %ld CPUs (runs %.1f-%.1f)\n",
	       r.promote_cpu_s_per_gb,
	       ps->pr.cpu_user_ns + ps->pr.cpu_sys_ns
		       ? 100.0 * (double)ps->pr.cpu_sys_ns /
				 (double)(ps->pr.cpu_user_ns + ps->pr.cpu_sys_ns)
		       : 0.0,
	       r.prefetch_cpu_s_per_gb, r.viewer_cpu_s_per_gb, r.promote_cpu_bound_gbps,
	       sysconf(_SC_NPROCESSORS_ONLN), r.promote_cpu_bound_span.lo,
	       r.promote_cpu_bound_span.hi);
	const uint64_t bad = sats[0].pr.bad_blocks + sats[1].pr.bad_blocks;
	printf("  read back and compared (both runs): %llu blocks, %llu differ%s\n",
	       (unsigned long long)(sats[0].pr.verified_blocks + sats[1].pr.verified_blocks),
	       (unsigned long long)bad, bad ? "  <-- DATA MISMATCH" : "");
	for (int k = 0; k < 2; k++) { /* either run's: the one not kept counts too */
		const tkv_stats *x = &sats[k].st;
		if (x->io_errors_eio || x->io_errors_short || x->io_errors_enospc ||
		    x->corrupt_records)
			printf("  I/O errors, run #%d: eio %llu short %llu enospc %llu corrupt %llu\n",
			       k + 1, (unsigned long long)x->io_errors_eio,
			       (unsigned long long)x->io_errors_short,
			       (unsigned long long)x->io_errors_enospc,
			       (unsigned long long)x->corrupt_records);
	}
	if (o->no_latency) {
		printf("store latency: not measured (--no-latency)\n");
		fflush(stdout);
		free(lat_mem);
		return bad ? -EIO : 0;
	}
	if (interval)
		printf("store latency, paced at %.2f of the evictor's phase-2 rate (one unit = %u "
		       "stores every %.0f us, %.2f GB/s of records); same hot tier both sides, the "
		       "no-eviction runs store the first %llu units (all under the high watermark);\n",
		       o->pace, p.lay.n_layers, (double)interval / 1e3,
		       gbps(p.lay.record_bytes, interval), (unsigned long long)noevict_units);
	else
		printf("store latency, unpaced;\n");
	printf("  %u runs of each kind, alternating, %llu stores pooled per kind:\n", reps,
	       (unsigned long long)pe.n);
	print_lat("with eviction (4x hot)", &pe);
	print_lat("without eviction (fits hot)", &pn);
	printf("  each run's own, min-max over the runs of its kind:\n");
	print_run_spread("with eviction", &pce);
	print_run_spread("without eviction", &pcn);
	printf("  stores that had to wait (TKV_STORE_NONBLOCK got -EAGAIN first): with eviction "
	       "%llu of %llu, without %llu of %llu\n",
	       (unsigned long long)blocked_e, (unsigned long long)pe.n,
	       (unsigned long long)blocked_n, (unsigned long long)pn.n);
	printf("  p99 ratio %.2f, per round %.2f-%.2f  (target <= 1.5); the eviction runs "
	       "evicted %llu records, the others %llu\n",
	       r.p99_ratio, r.p99_ratio_span.lo, r.p99_ratio_span.hi,
	       (unsigned long long)pe_evicted, (unsigned long long)pn_evicted);
	print_lat("unpaced, saturated (phase 2; info)", &sat.sr.lat);
	if (pn_evicted)
		printf("# WARNING: the no-eviction run evicted: its hot tier was too small\n");
	fflush(stdout);
	free(lat_mem); /* the report keeps pointers to the static histograms only */
	return bad ? -EIO : 0; /* read back differently: a failure */
}

int bench_evict_run(const bench_geometry *geo, tkv_dtype dtype, const char *dir,
		    uint64_t hot_bytes, bench_report *rep)
{
	evict_opts o = {geo ? geo : bench_geometry_find("llama3-8b"), dtype, dir, hot_bytes,
			DEFAULT_PACE, DEFAULT_REPS, true, NULL, false};
	return evict_run(&o, rep);
}

static void evict_usage(FILE *f)
{
	fprintf(f,
		"usage: tierkv-bench evict [--geometry NAME] [--dtype f32|bf16] [--dir DIR]\n"
		"                          [--hot-bytes SIZE] [--pace FRACTION]\n"
		"                          [--durability sync|none] [--reps N] [--no-latency]\n"
		"                          [--json FILE]\n"
		"  Eviction with a working set 4x the hot tier, then promotion of everything\n"
		"  evicted, against a raw O_DIRECT write/read of the same size in the same\n"
		"  directory, measured in the same run; producer store latency with and without\n"
		"  eviction under the same paced load. Method: bench/README.md.\n"
		"  --geometry    llama3-8b (default), llama3-70b, mistral-7b, qwen2.5-7b\n"
		"  --dtype       f32 (default) or bf16\n"
		"  --dir         where to create the scratch directory (default: /var/tmp, else .)\n"
		"  --hot-bytes   hot tier (default 256M); the working set is 4x\n"
		"  --pace        latency runs' rate as a fraction of the evictor's own rate\n"
		"                (default 0.5; 0: unpaced)\n"
		"  --durability  sync (default: fdatasync per batch, both sides) or none\n"
		"  --reps        latency runs of each kind, alternating, samples pooled (default 3)\n"
		"  --no-latency  skip the latency runs (phases 4, 5): eviction and promotion\n"
		"                against their raw limits only\n");
}

int bench_evict_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"geometry", required_argument, NULL, 'g'}, {"dtype", required_argument, NULL, 't'},
		{"dir", required_argument, NULL, 'd'},      {"hot-bytes", required_argument, NULL, 'b'},
		{"pace", required_argument, NULL, 'p'},     {"durability", required_argument, NULL, 'D'},
		{"json", required_argument, NULL, 'j'},     {"reps", required_argument, NULL, 'r'},
		{"no-latency", no_argument, NULL, 'L'},     {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
	};
	evict_opts o = {bench_geometry_find("llama3-8b"), TKV_DTYPE_F32, NULL, DEFAULT_HOT,
			DEFAULT_PACE, DEFAULT_REPS, true, NULL, false};
	size_t bytes;
	for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		switch (c) {
		case 'g':
			if (!(o.geo = bench_geometry_find(optarg)))
				return fprintf(stderr, "tierkv-bench: unknown geometry '%s'\n", optarg), 2;
			break;
		case 't':
			if (bench_parse_dtype(optarg, &o.dtype) || o.dtype == TKV_DTYPE_F16)
				return fprintf(stderr, "tierkv-bench: --dtype f32 or bf16\n"), 2;
			break;
		case 'd': o.dir = optarg; break;
		case 'b':
			if (bench_parse_bytes(optarg, &bytes) || !bytes)
				return fprintf(stderr, "tierkv-bench: bad size '%s'\n", optarg), 2;
			o.hot_bytes = bytes;
			break;
		case 'p':
			if (bench_opt_double("evict", "--pace", optarg, 0, 10, &o.pace))
				return 2;
			break;
		case 'D':
			if (strcmp(optarg, "sync") && strcmp(optarg, "none"))
				return fprintf(stderr, "tierkv-bench: --durability sync or none\n"), 2;
			o.durable = !strcmp(optarg, "sync");
			break;
		case 'j': o.json = optarg; break;
		case 'r':
			if (bench_opt_u32("evict", "--reps", optarg, 1, 100, &o.reps))
				return 2;
			break;
		case 'L': o.no_latency = true; break;
		case 'h': evict_usage(stdout); return 0;
		default: evict_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tierkv-bench evict: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	bench_report rep;
	bench_report_init(&rep, 1);
	int rc = evict_run(&o, &rep);
	if (rep.n) {
		const bench_result *x = &rep.results[0];
		printf("\n%-10s %-5s %7s | %9s %9s %6s | %9s %9s %6s | %9s %9s %6s\n", "geometry",
		       "dtype", "workers", "evict", "raw wr", "ratio", "promote", "raw rd", "ratio",
		       "p99 ns", "no-evict", "ratio");
		printf("%-10s %-5s %7u | %9.2f %9.2f %6.3f | %9.2f %9.2f %6.3f | %9.0f %9.0f %6.2f\n",
		       x->geometry, bench_dtype_name(x->dtype), x->workers, x->evict_gbps,
		       x->raw_write_gbps, x->write_ratio, x->promote_gbps, x->raw_read_gbps,
		       x->read_ratio, x->p99_ns, x->p99_ns_no_evict, x->p99_ratio);
	}
	if (!rc && o.json)
		rc = bench_report_json(&rep, o.json);
	bench_report_free(&rep);
	return rc ? 1 : 0;
}
