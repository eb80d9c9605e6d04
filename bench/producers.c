/*
 * producers.c - `tierkv-bench producers`: many engine threads storing at
 * once, RAM only, the same total work at every thread count.
 *
 * An engine with more request threads than cores is the normal case; this
 * scenario asks whether the pipeline's aggregate throughput holds when the
 * storing threads outnumber the cores (the workers are pinned, one per core,
 * and share those cores with every engine thread).
 *
 * What one run does: T threads start together (a barrier); thread t owns
 * the sequences t, t + T, ... of S (default 128), one open at a time. Each
 * sequence is 64 tokens stored as a decode-like schedule of batches
 * {32, 16, 8, 4, 2, 1, 1}; per batch the thread stores every layer (one
 * tkv_store per layer, as a forward pass produces them), then waits on the
 * batch's tickets before it reuses its K/V buffers (an engine's buffers are
 * per step), and closes the sequence after its last batch. The run's time
 * runs from the barrier to the last thread's exit. Total work is S x 64
 * tokens x n_layers, whatever T (S is raised to T when T > S).
 *
 * Figures per (queue, T): aggregate layer-tokens/s and GB/s (median and
 * spread over the repetitions), ratio_to_1 (the median over the 1-thread
 * median of the same queue), the duration of each tkv_store call and of each
 * batch's ticket wait (p50/p99 pooled over the repetitions), process CPU
 * seconds (getrusage: user + system, every thread) per GB stored, and the
 * ratio to the copy limit (the median GB/s over the median of the runs'
 * limits; each run's limit is the better of the timings taken before and
 * after its T's pair of runs). Each figure also comes with its spread:
 * its lowest and highest over the repetitions, each repetition's own
 * (print_spreads).
 *
 * Both queues run on a warm runtime of their own (opened once, one untimed
 * warm-up run at the largest T so every arena page is faulted), and the
 * points are interleaved (rep, T, queue) so slow drift on a shared machine
 * falls on all points alike; within a repetition the two queues run back
 * to back at each T (the mutex queue first in every second one), and the
 * ring's points also report the per-repetition ratio of the two
 * (print_pairs). --cold instead opens a fresh runtime for every
 * timed run (open and close untimed) and warms nothing up: the first pass
 * of a new user's program, where T sequences open at once need T times the
 * hot blocks of one, so with --hot-populate on-use every new page is
 * faulted inside the timed stores (docs/MEASUREMENTS.md, "Populating the
 * hot tier at open"). The mutex queue is the baseline of
 * runtime/queue_mutex.c: same pipeline, same copy, same idle policy; only
 * the hand-off differs (bench/README.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/internals.h"
#include "bench/latency.h"
#include "bench/limits.h"
#include "bench/paired.h"
#include "bench/report.h"

enum { SEQ_TOKENS = 64, MAX_T = 1024, SRC_BYTES = 64 << 20 };
static const uint32_t schedule[] = {32, 16, 8, 4, 2, 1, 1}; /* sums to SEQ_TOKENS */
enum { N_STEPS = sizeof(schedule) / sizeof(schedule[0]) };
static const uint32_t default_threads[] = {1, 2, 4, 8, 16, 32, 64};

typedef bench_producers_opts prod_options;

/* --waiters, in tkv_wait_copy order */
static const char *const wait_copy_names[] = {"copy", "sleep", "all"};

/* One run's shared state. */
typedef struct prod_run {
	tkv_runtime *rt;
	const prod_options *o;
	uint32_t T, seqs, n_layers;
	size_t row;
	const unsigned char *src;
	pthread_barrier_t start;
	uint64_t *store_ns, *wait_ns; /* per thread: a slice of each */
	uint64_t store_per_thread, wait_per_thread;
	uint64_t *n_store, *n_wait; /* samples taken per thread */
	int error;
} prod_run;

typedef struct prod_thread {
	prod_run *r;
	uint32_t t;
	pthread_t tid;
} prod_thread;

static int store_seq(prod_run *r, uint32_t t, uint64_t id, tkv_ticket *tk)
{
	uint64_t *ss = r->store_ns + t * r->store_per_thread, *ws = r->wait_ns + t * r->wait_per_thread;
	size_t off = ((size_t)id * 7919 * r->row * 2) % (SRC_BYTES / 2);
	uint64_t pos = 0;
	int rc = tkv_seq_open(r->rt, id);
	for (uint32_t st = 0; st < N_STEPS && !rc; st++) {
		const uint32_t n = schedule[st];
		for (uint32_t l = 0; l < r->n_layers && !rc; l++) {
			const unsigned char *k = r->src + off, *v = r->src + off + n * r->row;
			off = (off + 2 * n * r->row) % (SRC_BYTES / 2);
			uint64_t t0 = bench_now_ns();
			rc = tkv_store(r->rt, id, l, pos, n, k, v, 0, &tk[l]);
			ss[r->n_store[t]++] = bench_now_ns() - t0;
			if (r->o->wait_each_layer && !rc) {
				t0 = bench_now_ns();
				rc = tkv_wait(r->rt, &tk[l]);
				ws[r->n_wait[t]++] = bench_now_ns() - t0;
			}
		}
		if (!r->o->wait_each_layer) {
			uint64_t t0 = bench_now_ns();
			for (uint32_t l = 0; l < r->n_layers && !rc; l++)
				rc = tkv_wait(r->rt, &tk[l]);
			ws[r->n_wait[t]++] = bench_now_ns() - t0;
		}
		pos += n;
	}
	int rc2 = tkv_seq_close(r->rt, id);
	return rc ? rc : rc2;
}

static void *thread_main(void *arg)
{
	prod_thread *p = arg;
	prod_run *r = p->r;
	tkv_ticket *tk = calloc(r->n_layers, sizeof(*tk));
	pthread_barrier_wait(&r->start);
	int rc = tk ? 0 : -ENOMEM;
	for (uint32_t s = p->t; s < r->seqs && !rc; s += r->T)
		rc = store_seq(r, p->t, (uint64_t)s + 1, tk);
	/* the first error wins (read after the joins) */
	if (rc && __atomic_exchange_n(&r->error, rc, __ATOMIC_RELAXED) == 0)
		fprintf(stderr, "tierkv-bench producers: %s\n", tkv_last_error());
	free(tk);
	return NULL;
}

/* One timed run of T threads; returns wall ns (0 on error), adds the CPU
 * seconds to *cpu and appends the latency samples to the pools. */
static uint64_t run_once(prod_run *r, double *cpu, bench_lat *st, bench_lat *wt)
{
	prod_thread *th = calloc(r->T, sizeof(*th));
	if (!th)
		return 0;
	memset(r->n_store, 0, r->T * sizeof(uint64_t));
	memset(r->n_wait, 0, r->T * sizeof(uint64_t));
	r->error = 0;
	pthread_barrier_init(&r->start, NULL, r->T + 1);
	uint32_t started = 0;
	for (; started < r->T; started++) {
		th[started] = (prod_thread){r, started, 0};
		if (pthread_create(&th[started].tid, NULL, thread_main, &th[started]))
			break;
	}
	if (started < r->T) { /* cannot start them all: nothing is timed */
		fprintf(stderr, "tierkv-bench producers: cannot start %u threads\n", r->T);
		exit(1);
	}
	double c0 = bench_cpu_seconds();
	uint64_t t0 = bench_now_ns();
	pthread_barrier_wait(&r->start);
	for (uint32_t i = 0; i < r->T; i++)
		pthread_join(th[i].tid, NULL);
	uint64_t ns = bench_now_ns() - t0;
	*cpu += bench_cpu_seconds() - c0;
	pthread_barrier_destroy(&r->start);
	free(th);
	for (uint32_t t = 0; st && t < r->T; t++) {
		memcpy(st->ns + st->n, r->store_ns + t * r->store_per_thread, r->n_store[t] * 8);
		st->n += r->n_store[t];
		memcpy(wt->ns + wt->n, r->wait_ns + t * r->wait_per_thread, r->n_wait[t] * 8);
		wt->n += r->n_wait[t];
	}
	return r->error ? 0 : (ns ? ns : 1);
}

/* Per (queue, T) accumulators over the repetitions (at most 64, --reps). */
typedef struct prod_point {
	uint32_t T;
	tkv__queue_kind q;
	double rate[64]; /* layer-tokens/s per rep, in rep order */
	double cpu[64];  /* CPU seconds per GB stored per rep, in rep order */
	uint64_t ns[64]; /* wall time per rep */
	double lim[64];  /* the copy limit bracketing each rep's run (GB/s) */
	double st50[64], st99[64], wt50[64], wt99[64]; /* each rep's own percentiles */
	int n;
	uint64_t layer_tokens; /* per run: the same at every T */
	double cpu_s, bytes;
	bench_lat st, wt; /* every rep's samples, pooled */
} prod_point;

/* p50 and p99 of one run's n samples at s. Sorts them in place: they are
 * a slice of the point's pool, which is only ever sorted whole later. */
static void rep_percentiles(uint64_t *s, uint64_t n, double *p50, double *p99)
{
	bench_lat l = {.ns = s, .n = n};
	bench_lat_finish(&l, NULL);
	*p50 = l.p50;
	*p99 = l.p99;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint32_t max_threads(const prod_options *o)
{
	uint32_t m = 1;
	for (uint32_t i = 0; i < o->n_threads; i++)
		m = o->threads[i] > m ? o->threads[i] : m;
	return m;
}

static int open_rt(const prod_options *o, tkv__queue_kind q, uint64_t hot, tkv_runtime **rt)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = o->geo->n_layers;
	c.n_kv_heads = o->geo->n_kv_heads;
	c.head_dim = o->geo->head_dim;
	c.dtype = o->dtype;
	c.hot_bytes = hot;
	c.n_workers = o->workers;
	c.hot_populate = o->populate;
	/* --trace: the ring runtime only (one file; tierkv-trace reads it) */
	c.trace_path = o->trace && q == TKV__QUEUE_RING ? o->trace : "";
	c.wait_copy = o->wait_copy;
	tkv__open_opts opts = {.queue = q};
	int rc = tkv__open_ex(&c, &opts, rt);
	if (rc)
		fprintf(stderr, "tierkv-bench producers: open: %s\n", tkv_last_error());
	return rc;
}

static void print_point(const prod_point *p, double base, double lt_bytes)
{
	double v[64];
	memcpy(v, p->rate, sizeof(double) * (size_t)p->n);
	double med = median(v, p->n);
	printf("%-7s %7u %12.0f %7.2f %6.2f-%-6.2f %6.3f %9.2f %9.2f %10.1f %10.1f %8.3f\n",
	       p->q == TKV__QUEUE_RING ? "ring" : "mutex", p->T, med, med * lt_bytes / 1e9,
	       v[0] * lt_bytes / 1e9, v[p->n - 1] * lt_bytes / 1e9, med / base, p->st.p50 / 1e3,
	       p->st.p99 / 1e3, p->wt.p50 / 1e3, p->wt.p99 / 1e3, p->cpu_s / (p->bytes / 1e9));
}

/* Ring over mutex queue at one T, repetition by repetition: each
 * repetition ran both queues back to back at this T (in alternating
 * order), so a drift of the machine between repetitions cancels in the
 * ratio, while the medians of the two columns compare runs minutes apart. */
typedef struct paired {
	double speed, speed_lo, speed_hi; /* ring / mutex layer-tokens/s */
	double cpu, cpu_lo, cpu_hi;       /* ring / mutex CPU seconds per GB */
} paired;

static bool pair_points(const prod_point *ring, const prod_point *mq, paired *out)
{
	bench_ratio_spread sp, cp;
	if (!ring || !mq || ring->n != mq->n ||
	    !bench_paired_ratio(ring->rate, mq->rate, ring->n, &sp) ||
	    !bench_paired_ratio(ring->cpu, mq->cpu, ring->n, &cp))
		return false;
	*out = (paired){sp.median, sp.lo, sp.hi, cp.median, cp.lo, cp.hi};
	return true;
}

static void print_pairs(const prod_point *pts, uint32_t n_threads)
{
	printf("# ring / mutex queue, paired by repetition (the two ran back to back at\n"
	       "# each T in every repetition): median (min-max) over the repetitions.\n"
	       "%7s %-31s %s\n", "threads", "layer-tok/s", "CPU s/GB");
	for (uint32_t i = 0; i < n_threads; i++) {
		paired pr;
		if (!pair_points(&pts[2 * i], &pts[2 * i + 1], &pr))
			continue;
		printf("%7u %6.3f (%5.3f-%5.3f) %-10s %6.3f (%5.3f-%5.3f) %s\n", pts[2 * i].T,
		       pr.speed, pr.speed_lo, pr.speed_hi,
		       bench_paired_verdict(pts[2 * i].n, pr.speed_lo, pr.speed_hi, "faster",
					    "slower"),
		       pr.cpu, pr.cpu_lo, pr.cpu_hi,
		       bench_paired_verdict(pts[2 * i].n, pr.cpu_lo, pr.cpu_hi, "more CPU",
					    "less CPU"));
	}
}

/* The point's bench result (its JSON object and its row of spreads). */
static bench_result point_result(const prod_options *o, const prod_point *p, double base,
				 double lt_bytes, const prod_point *mq)
{
	double v[64];
	memcpy(v, p->rate, sizeof(double) * (size_t)p->n);
	double med = median(v, p->n);
	bench_result r = {.scenario = "producers", .geometry = o->geo->name, .dtype = o->dtype,
			  .workers = o->workers, .batch = schedule[0], /* the largest */ .tokens_per_s = med,
			  .gbps = med * lt_bytes / 1e9, .threads = p->T, .ratio_to_1 = med / base,
			  .queue = p->q == TKV__QUEUE_RING ? "ring" : "mutex",
			  .waiters = wait_copy_names[o->wait_copy],
			  .wait_each = o->wait_each_layer ? "layer" : "step",
			  .gbps_lo = v[0] * lt_bytes / 1e9, .gbps_hi = v[p->n - 1] * lt_bytes / 1e9,
			  .reps = p->n, .store_p50_ns = p->st.p50, .store_p99_ns = p->st.p99,
			  .wait_p50_ns = p->wt.p50, .wait_p99_ns = p->wt.p99,
			  .cpu_s_per_gb = p->cpu_s / (p->bytes / 1e9),
			  .store_p50_span = bench_span_of(p->st50, p->n),
			  .store_p99_span = bench_span_of(p->st99, p->n),
			  .wait_p50_span = bench_span_of(p->wt50, p->n),
			  .wait_p99_span = bench_span_of(p->wt99, p->n),
			  .cpu_span = bench_span_of(p->cpu, p->n)};
	/* The ratio to the copy limit: the point's GB/s (the median run's) over
	 * the median of its runs' limits, the same repeat policy on both
	 * sides; its spread is each run's GB/s over its own limit. */
	double lim[64], own[64];
	for (int i = 0; i < p->n; i++) {
		lim[i] = p->lim[i];
		own[i] = p->rate[i] * lt_bytes / 1e9 / p->lim[i];
	}
	r.limit_gbps = median(lim, p->n);
	r.ratio = r.gbps / r.limit_gbps;
	bench_span rs = bench_span_of(own, p->n);
	r.ratio_lo = rs.lo;
	r.ratio_hi = rs.hi;
	paired pr;
	if (p->q == TKV__QUEUE_RING && pair_points(p, mq, &pr)) {
		r.versus = "mutex";
		r.vs_mutex = pr.speed;
		r.vs_mutex_lo = pr.speed_lo;
		r.vs_mutex_hi = pr.speed_hi;
		r.cpu_vs_mutex = pr.cpu;
		r.cpu_vs_mutex_lo = pr.cpu_lo;
		r.cpu_vs_mutex_hi = pr.cpu_hi;
	}
	return r;
}

/* The spread of each figure of the main table over the repetitions: each
 * repetition's own value, lowest-highest (the main table pools the
 * latency samples of all of them and sums their CPU time). */
static void print_spreads(const bench_result *res, uint32_t n)
{
	printf("# spread over the repetitions (each one's own figure, min-max): ratio to the\n"
	       "# copy limit timed around its T's runs (the point's), store/wait us\n"
	       "%-7s %7s %-21s %-13s %-13s %-15s %-15s %s\n", "queue", "threads",
	       "ratio to limit", "store p50", "store p99", "wait p50", "wait p99", "CPUs/GB");
	for (uint32_t i = 0; i < n; i++) {
		const bench_result *r = &res[i];
		printf("%-7s %7u %.3f (%.3f-%.3f) %5.2f-%-7.2f %5.2f-%-7.2f %6.1f-%-8.1f "
		       "%6.1f-%-8.1f %.3f-%.3f\n",
		       r->queue, r->threads, r->ratio, r->ratio_lo, r->ratio_hi,
		       r->store_p50_span.lo / 1e3, r->store_p50_span.hi / 1e3,
		       r->store_p99_span.lo / 1e3, r->store_p99_span.hi / 1e3,
		       r->wait_p50_span.lo / 1e3, r->wait_p50_span.hi / 1e3, r->wait_p99_span.lo / 1e3,
		       r->wait_p99_span.hi / 1e3, r->cpu_span.lo, r->cpu_span.hi);
	}
}

/* Per-thread sample slices for T threads out of the run's arrays (sized
 * for all samples of one run). */
static void set_stride(prod_run *r, uint32_t T)
{
	uint64_t per_t = (r->seqs + T - 1) / T;
	r->T = T;
	r->store_per_thread = per_t * N_STEPS * r->n_layers;
	r->wait_per_thread = per_t * N_STEPS * (r->o->wait_each_layer ? r->n_layers : 1);
}

/* The copy limit (GB/s) into the hot tier's footprint with as many
 * threads as workers, the best of LIMIT_TIMINGS timings of each kernel
 * (a fixed count: it runs 1 + reps x thread counts times); 0 on failure. */
enum { LIMIT_TIMINGS = 3 };
static double limit_now(unsigned char *dst, const unsigned char *src, uint64_t hot,
			const prod_options *o)
{
	return bench_point_limit_gbps(dst, src, SRC_BYTES, hot, o->workers, LIMIT_TIMINGS,
				      BENCH_BRACKET_SECONDS);
}

static int producers_run(const prod_options *o, bench_report *rep)
{
	const uint32_t maxT = max_threads(o);
	const uint32_t seqs = o->seqs > maxT ? o->seqs : maxT;
	const size_t row = (size_t)o->geo->n_kv_heads * o->geo->head_dim * tkv_dtype_size(o->dtype);
	const double lt_bytes = 2.0 * (double)row;
	/* Hot tier: every thread's open sequence at once, plus a quarter. */
	const uint64_t seq_bytes = (uint64_t)SEQ_TOKENS * o->geo->n_layers * 2 * row;
	const uint64_t hot = (uint64_t)(maxT < seqs ? maxT : seqs) * seq_bytes * 5 / 4;
	unsigned char *src = bench_source_buffer(SRC_BYTES);
	prod_run r = {.o = o, .seqs = seqs, .n_layers = o->geo->n_layers, .row = row, .src = src};
	uint64_t all_store = (uint64_t)(seqs + maxT) * N_STEPS * o->geo->n_layers;
	const uint64_t waits_per_step = o->wait_each_layer ? o->geo->n_layers : 1;
	uint64_t all_wait = (uint64_t)(seqs + maxT) * N_STEPS * waits_per_step;
	r.store_ns = malloc(all_store * sizeof(uint64_t));
	r.wait_ns = malloc(all_wait * sizeof(uint64_t));
	r.n_store = calloc(maxT, sizeof(uint64_t));
	r.n_wait = calloc(maxT, sizeof(uint64_t));
	prod_point *pts = calloc((size_t)o->n_threads * 2, sizeof(*pts));
	tkv_runtime *rts[2] = {NULL, NULL};
	int rc = src && r.store_ns && r.wait_ns && r.n_store && r.n_wait && pts ? 0 : -ENOMEM;
	for (uint32_t i = 0; i < o->n_threads * 2 && !rc; i++) {
		prod_point *p = &pts[i];
		p->T = o->threads[i / 2];
		p->q = i % 2 ? TKV__QUEUE_MUTEX : TKV__QUEUE_RING;
		uint64_t n = (uint64_t)o->reps * (seqs + p->T) * N_STEPS;
		p->st.ns = malloc(n * o->geo->n_layers * sizeof(uint64_t));
		p->wt.ns = malloc(n * waits_per_step * sizeof(uint64_t));
		if (!p->st.ns || !p->wt.ns)
			rc = -ENOMEM;
	}
	for (int q = 0; q < 2 && !rc && !o->cold; q++) {
		if ((q == 0 && !o->ring) || (q == 1 && !o->mutex))
			continue;
		if ((rc = open_rt(o, q ? TKV__QUEUE_MUTEX : TKV__QUEUE_RING, hot, &rts[q])))
			break;
		r.rt = rts[q]; /* warm-up: fault every arena page the largest T uses */
		set_stride(&r, maxT);
		double cpu = 0;
		if (!run_once(&r, &cpu, NULL, NULL))
			rc = -EIO;
	}
	/* The copy limit with as many threads as workers, for the `ratio`
	 * every bench result carries (this scenario's own figure is
	 * ratio_to_1): timed before the first T and after each T's pair of
	 * runs (ring and mutex queue), so both runs of a pair are bracketed
	 * by the same two timings, and each keeps the better one (a drift
	 * lowers its ratio, never raises it), as the naive baseline's limit
	 * does (pipeline.c). */
	unsigned char *ldst = rc ? NULL : bench_huge_buffer(hot);
	if (!rc && !ldst)
		rc = -ENOMEM;
	double before = rc ? 0 : limit_now(ldst, src, hot, o);
	if (!rc && before <= 0)
		rc = -EIO;
	printf("# tierkv-bench producers: %s %s, %u workers, hot tier %llu MiB, RAM only;\n"
	       "# %u sequences x %u tokens x %u layers per run (same work at every T), batches\n"
	       "# {32,16,8,4,2,1,1}, %s; median of %d interleaved runs\n"
	       "# (GB/s spread min-max); store/wait us: p50/p99 of every call/%s wait.\n"
	       "# %s; hot tier populated %s; ticket waiters %s.\n",
	       o->geo->name, bench_dtype_name(o->dtype), o->workers, (unsigned long long)(hot >> 20),
	       seqs, SEQ_TOKENS, o->geo->n_layers,
	       o->wait_each_layer ? "each ticket waited right after its store (--wait-each layer)"
				  : "tickets waited per batch",
	       o->reps, o->wait_each_layer ? "ticket" : "batch",
	       o->cold ? "cold: a fresh runtime per timed run, no warm-up"
		       : "warm: one runtime per queue, warmed up at the largest T",
	       o->populate == TKV_HOT_POPULATE_ON_USE ? "on use" : "at open",
	       o->wait_copy == TKV_WAIT_SLEEP	 ? "only sleep (--waiters sleep)"
	       : o->wait_copy == TKV_WAIT_COPY_ALL ? "all copy their own queued batches (--waiters all)"
						   : "copy their own queued batches, as many at once as "
						     "CPUs beyond the workers (at least 1)");
	fflush(stdout);
	const double lt = (double)seqs * SEQ_TOKENS * o->geo->n_layers;
	for (int rep_i = 0; rep_i < o->reps && !rc; rep_i++)
		for (uint32_t i = 0; i < o->n_threads && !rc; i++) {
			prod_point *ran[2] = {NULL, NULL};
			for (uint32_t k = 0; k < 2 && !rc; k++) {
				/* Every second repetition runs the mutex queue
				 * first at each T, so neither queue always follows
				 * the other (print_pairs). */
				prod_point *p = &pts[2 * i + (rep_i % 2 ? 1 - k : k)];
				if ((p->q == TKV__QUEUE_RING && !o->ring) ||
				    (p->q == TKV__QUEUE_MUTEX && !o->mutex))
					continue;
				if (o->cold && (rc = open_rt(o, p->q, hot, &rts[p->q])))
					break;
				r.rt = rts[p->q];
				set_stride(&r, p->T);
				double cpu = 0;
				const uint64_t n0 = p->st.n, w0 = p->wt.n;
				uint64_t ns = run_once(&r, &cpu, &p->st, &p->wt);
				if (o->cold) {
					tkv_close(rts[p->q]);
					rts[p->q] = NULL;
				}
				if (!ns) {
					rc = -EIO;
					break;
				}
				rep_percentiles(p->st.ns + n0, p->st.n - n0, &p->st50[p->n],
						&p->st99[p->n]);
				rep_percentiles(p->wt.ns + w0, p->wt.n - w0, &p->wt50[p->n],
						&p->wt99[p->n]);
				p->layer_tokens = (uint64_t)lt;
				p->cpu[p->n] = cpu / (lt * lt_bytes / 1e9);
				p->ns[p->n] = ns;
				p->rate[p->n++] = lt / ((double)ns / 1e9);
				p->cpu_s += cpu;
				p->bytes += lt * lt_bytes;
				ran[k] = p;
			}
			double after = rc ? 0 : limit_now(ldst, src, hot, o);
			if (!rc && after <= 0)
				rc = -EIO;
			for (uint32_t k = 0; k < 2 && !rc; k++)
				if (ran[k])
					ran[k]->lim[ran[k]->n - 1] = after > before ? after : before;
			before = after;
		}
	for (int q = 0; q < 2; q++)
		tkv_close(rts[q]);
	free(ldst);
	if (!rc) {
		printf("%-7s %7s %12s %7s %13s %6s %9s %9s %10s %10s %8s\n", "queue", "threads",
		       "layer-tok/s", "GB/s", "GB/s min-max", "vs T1", "store p50", "store p99",
		       "wait p50", "wait p99", "CPUs/GB");
		bench_result res[2 * 32];
		uint32_t n_res = 0;
		for (int q = 0; q < 2; q++) {
			double base = 0;
			for (uint32_t i = q; i < o->n_threads * 2; i += 2) {
				prod_point *p = &pts[i];
				if (!p->n)
					continue;
				bench_lat_finish(&p->st, NULL);
				bench_lat_finish(&p->wt, NULL);
				double v[64];
				memcpy(v, p->rate, sizeof(double) * (size_t)p->n);
				if (!base)
					base = median(v, p->n);
				print_point(p, base, lt_bytes);
				res[n_res] = point_result(o, p, base, lt_bytes,
							  q == 0 && pts[i + 1].n ? &pts[i + 1] : NULL);
				if (rep)
					bench_report_add(rep, &res[n_res]);
				n_res++;
			}
		}
		print_spreads(res, n_res);
		if (o->ring && o->mutex)
			print_pairs(pts, o->n_threads);
	}
	for (uint32_t i = 0; pts && i < o->n_threads * 2; i++) {
		free(pts[i].st.ns);
		free(pts[i].wt.ns);
	}
	free(pts);
	free(r.store_ns);
	free(r.wait_ns);
	free(r.n_store);
	free(r.n_wait);
	free(src);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tierkv-bench producers [--threads LIST] [--seqs N] [--reps N]\n"
		"                              [--workers N] [--queue ring|mutex|both]\n"
		"                              [--geometry NAME] [--dtype f32|bf16] [--json FILE]\n"
		"                              [--trace FILE] [--cold] [--hot-populate at-open|on-use]\n"
		"                              [--waiters copy|all|sleep] [--wait-each step|layer]\n"
		"  T engine threads (default 1,2,4,8,16,32,64) store the same total work\n"
		"  (--seqs sequences, default 128, of 64 tokens, every layer) into a RAM-only\n"
		"  runtime and wait on their tickets per batch: aggregate throughput, ratio to\n"
		"  1 thread, store-call and ticket-wait p50/p99, CPU seconds per GB, for the\n"
		"  ring pipeline and the mutex-queue baseline. --reps: median of N (3).\n"
		"  --trace FILE traces the ring runtime (tools/trace/tierkv-trace FILE).\n"
		"  --cold: a fresh runtime per timed run, no warm-up (a new program's first\n"
		"  pass); --hot-populate: the runtimes' tkv_config.hot_populate (at-open).\n"
		"  --waiters: tkv_config.wait_copy, copy (TKV_WAIT_COPY_OWN, the default),\n"
		"  all (TKV_WAIT_COPY_ALL) or sleep (TKV_WAIT_SLEEP).\n"
		"  --wait-each: step (default: every layer of a batch stored, then its\n"
		"  tickets waited) or layer (each ticket waited right after its store: a\n"
		"  round trip per layer, as an engine that reuses one buffer per layer).\n");
}

static int parse_list(const char *s, prod_options *o)
{
	o->n_threads = 0;
	for (char *end; *s && o->n_threads < 32; s = *end ? end + 1 : end) {
		unsigned long v = strtoul(s, &end, 10);
		if (end == s || v < 1 || v > MAX_T || (*end && *end != ','))
			return -1;
		o->threads[o->n_threads++] = (uint32_t)v;
	}
	return o->n_threads ? 0 : -1;
}

void bench_producers_defaults(bench_producers_opts *o)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	memset(o, 0, sizeof(*o));
	o->geo = bench_geometry_find("llama3-8b");
	o->dtype = TKV_DTYPE_BF16;
	memcpy(o->threads, default_threads, sizeof(default_threads));
	o->n_threads = sizeof(default_threads) / sizeof(default_threads[0]);
	o->seqs = 128;
	o->workers = ncpu > 0 ? (uint32_t)ncpu : 1;
	o->reps = 3;
	o->ring = o->mutex = true;
	o->populate = TKV_HOT_POPULATE_AT_OPEN;
}

static int parse(int argc, char **argv, prod_options *o)
{
	static const struct option opts[] = {
		{"threads", required_argument, NULL, 't'}, {"seqs", required_argument, NULL, 's'},
		{"reps", required_argument, NULL, 'r'},    {"workers", required_argument, NULL, 'w'},
		{"queue", required_argument, NULL, 'q'},   {"geometry", required_argument, NULL, 'g'},
		{"dtype", required_argument, NULL, 'd'},   {"json", required_argument, NULL, 'j'},
		{"trace", required_argument, NULL, 'T'},   {"help", no_argument, NULL, 'h'},
		{"cold", no_argument, NULL, 'c'},          {"hot-populate", required_argument, NULL, 'p'},
		{"waiters", required_argument, NULL, 'W'},
		{"wait-each", required_argument, NULL, 'E'},
		{NULL, 0, NULL, 0},
	};
	bench_producers_defaults(o);
	for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		switch (c) {
		case 't':
			if (parse_list(optarg, o))
				return fprintf(stderr, "tierkv-bench: bad --threads '%s'\n", optarg), -1;
			break;
		case 's':
			if (bench_opt_u32("producers", "--seqs", optarg, 1, 1u << 20, &o->seqs))
				return -1;
			break;
		case 'r':
			if (bench_opt_int("producers", "--reps", optarg, 1, 64, &o->reps))
				return -1;
			break;
		case 'w':
			if (bench_opt_u32("producers", "--workers", optarg, 1, TKV_STATS_MAX_WORKERS,
					  &o->workers))
				return -1;
			break;
		case 'q': {
			static const char *const queues[] = {"both", "ring", "mutex"};
			int q;
			if (bench_opt_choice("producers", "--queue", optarg, queues, 3, &q))
				return -1;
			o->ring = q != 2;
			o->mutex = q != 1;
			break;
		}
		case 'g':
			if (!(o->geo = bench_geometry_find(optarg)))
				return fprintf(stderr, "tierkv-bench: unknown geometry '%s'\n", optarg), -1;
			break;
		case 'd':
			if (bench_parse_dtype(optarg, &o->dtype) || o->dtype == TKV_DTYPE_F16)
				return fprintf(stderr, "tierkv-bench producers: --dtype f32 or bf16\n"), -1;
			break;
		case 'j': o->json = optarg; break;
		case 'T': o->trace = optarg; break;
		case 'c': o->cold = true; break;
		case 'p': {
			static const char *const modes[] = {"at-open", "on-use"};
			int m;
			if (bench_opt_choice("producers", "--hot-populate", optarg, modes, 2, &m))
				return -1;
			o->populate = m ? TKV_HOT_POPULATE_ON_USE : TKV_HOT_POPULATE_AT_OPEN;
			break;
		}
		case 'W': {
			int m;
			if (bench_opt_choice("producers", "--waiters", optarg, wait_copy_names, 3, &m))
				return -1;
			o->wait_copy = (tkv_wait_copy)m;
			break;
		}
		case 'E': {
			static const char *const each[] = {"step", "layer"};
			int m;
			if (bench_opt_choice("producers", "--wait-each", optarg, each, 2, &m))
				return -1;
			o->wait_each_layer = m == 1;
			break;
		}
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (o->cold && o->trace)
		return fprintf(stderr, "tierkv-bench producers: --trace with --cold would keep only "
				       "the last run's runtime (one per run): trace a warm run\n"), -1;
	if (o->reps < 1 || o->reps > 64 || o->seqs < 1 || o->workers < 1 ||
	    o->workers > TKV_STATS_MAX_WORKERS)
		return fprintf(stderr, "tierkv-bench: --reps 1..64, --seqs >= 1, --workers 1..%d\n",
			       TKV_STATS_MAX_WORKERS), -1;
	return 0;
}

int bench_producers(const bench_producers_opts *o, bench_report *rep)
{
	return producers_run(o, rep);
}

int bench_producers_main(int argc, char **argv)
{
	prod_options o;
	if (parse(argc, argv, &o))
		return 2;
	bench_report rep;
	bench_report_init(&rep, 0);
	int rc = producers_run(&o, &rep);
	if (!rc && o.json)
		rc = bench_report_json(&rep, o.json);
	bench_report_free(&rep);
	return rc ? 1 : 0;
}
