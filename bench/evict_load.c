/*
 * evict_load.c - the evict scenario's load on one runtime, as an engine
 * would drive it: stores in engine order, waiting for the evictor, and
 * reading everything back in promotion rounds (evict.h; method in
 * bench/README.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/bench.h"
#include "bench/evict.h"

/* no eviction for this long, nothing in flight: the evictor is done */
#define IDLE_QUIET_NS (200ull * 1000 * 1000)

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
	nanosleep(&ts, NULL);
}

/* K of store (step, seq, layer) inside the source buffer; V follows it.
 * Distinct stores get distinct data, so the read-back check means something. */
static const unsigned char *src_of(const evict_plan *p, uint32_t step, uint32_t seq,
				   uint32_t layer)
{
	uint64_t idx = ((uint64_t)step * p->n_seqs + seq) * p->lay.n_layers + layer;
	uint64_t span = 2 * (uint64_t)p->batch_bytes;
	return p->src + (idx * span) % (EVICT_SRC_BYTES - span);
}

tkv_config evict_config(const evict_plan *p, uint64_t hot, const char *cold_dir,
			uint64_t cold_bytes, uint32_t low_pct)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = p->o->geo->n_layers;
	c.n_kv_heads = p->o->geo->n_kv_heads;
	c.head_dim = p->o->geo->head_dim;
	c.dtype = p->o->dtype;
	c.block_tokens = EVICT_BATCH;
	c.hot_bytes = hot;
	c.cold_dir = cold_dir;
	c.cold_bytes = cold_bytes;
	tkv_config_watermarks(&c, &c.hot_high_pct, &c.hot_low_pct); /* the defaults */
	if (low_pct && low_pct < c.hot_high_pct)
		c.hot_low_pct = low_pct;
	c.durability = p->o->durable ? TKV_DURABLE_SYNC : TKV_DURABLE_NONE;
	c.trace_path = "";
	return c;
}

int evict_open(const tkv_config *c, tkv_runtime **rt)
{
	int rc = tkv_open(c, rt);
	if (rc)
		fprintf(stderr, "tierkv-bench evict: open: %s\n", tkv_last_error());
	return rc;
}

int evict_stats(tkv_runtime *rt, tkv_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->struct_size = sizeof(*st);
	return tkv_stats_get(rt, st);
}

int evict_open_seqs(tkv_runtime *rt, const evict_plan *p)
{
	for (uint32_t s = 0; s < p->n_seqs; s++) {
		int rc = tkv_seq_open(rt, s + 1);
		if (rc) {
			fprintf(stderr, "tierkv-bench evict: seq_open: %s\n", tkv_last_error());
			return rc;
		}
	}
	return 0;
}

/* Sequences [from, to) of the plan (ids from + 1 ...). tkv_seq_close waits
 * for their pending stores itself. */
void evict_close_seqs(tkv_runtime *rt, const evict_plan *p, uint32_t from, uint32_t to)
{
	(void)p;
	for (uint32_t s = from; s < to; s++)
		tkv_seq_close(rt, s + 1);
}

/* What the runtime says when a store fails: enough to tell a stuck evictor
 * from a cold tier that refuses writes. */
static void store_failed(tkv_runtime *rt, uint32_t step, uint32_t seq, uint32_t layer,
			 uint64_t i)
{
	tkv_stats st;
	if (evict_stats(rt, &st))
		return;
	fprintf(stderr,
		"  at store %llu (step %u, sequence %u, layer %u): hot %llu/%llu bytes, evicted "
		"%llu records, write errors eio %llu short %llu enospc %llu, writes in flight %u, "
		"cold used %llu/%llu bytes\n",
		(unsigned long long)i, step, seq + 1, layer, (unsigned long long)st.hot_bytes_used,
		(unsigned long long)st.hot_bytes_capacity, (unsigned long long)st.evicted_blocks,
		(unsigned long long)st.io_errors_eio, (unsigned long long)st.io_errors_short,
		(unsigned long long)st.io_errors_enospc, st.evictor_queue_depth,
		(unsigned long long)st.cold_bytes_used, (unsigned long long)st.cold_bytes_capacity);
}

uint64_t evict_units_below_high(const evict_plan *p, uint64_t hot)
{
	uint64_t u = hot / p->lay.block_bytes * p->high_pct / 100 / p->lay.n_layers;
	return u > 1 ? u - 1 : 0;
}

/* Stores `units` units into throw-away sequences, then closes them: the hot
 * tier's block pool then holds that many blocks with their pages faulted
 * in, as in a runtime that has been serving for a while (and as the
 * evicting runs' recycled blocks are). Untimed. */
int evict_warm_up(tkv_runtime *rt, const evict_plan *p, uint64_t units)
{
	const uint64_t id0 = 1000000;
	uint64_t done = 0;
	int rc = 0;
	for (uint32_t s = 0; s < p->n_seqs && !rc; s++)
		rc = tkv_seq_open(rt, id0 + s);
	for (uint32_t step = 0; !rc && done < units; step++)
		for (uint32_t s = 0; s < p->n_seqs && done < units && !rc; s++, done++)
			for (uint32_t l = 0; l < p->lay.n_layers && !rc; l++) {
				const unsigned char *k = src_of(p, step % p->blocks_per_seq, s, l);
				rc = tkv_store(rt, id0 + s, l, (uint64_t)step * EVICT_BATCH,
					       EVICT_BATCH, k, k + p->batch_bytes, 0, NULL);
			}
	if (rc)
		fprintf(stderr, "tierkv-bench evict: warm-up: %s\n", tkv_last_error());
	for (uint32_t s = 0; s < p->n_seqs; s++)
		tkv_seq_close(rt, id0 + s);
	return rc;
}

/* Open loop: sleeps until the next unit's slot; a late unit does not shift
 * the schedule. */
static void pace(uint64_t *deadline, uint64_t interval_ns)
{
	*deadline += interval_ns;
	struct timespec ts = {(time_t)(*deadline / 1000000000u), (long)(*deadline % 1000000000u)};
	if (bench_now_ns() < *deadline)
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Every store of the working set, in engine order (for each position step,
 * each sequence, each layer); one unit per interval_ns when paced. Each
 * store's duration is a latency sample. high_blocks: the hot blocks at which
 * the evictor starts; pause_at_high: stop one block under it and let the
 * workers finish, so the eviction window starts with the hot tier full of
 * complete, evictable units. */
int evict_store_all(tkv_runtime *rt, const evict_plan *p, uint64_t interval_ns,
		    uint64_t high_blocks, bool pause_at_high, evict_store_run *sr)
{
	const uint32_t L = p->lay.n_layers;
	uint64_t i = 0, deadline;
	sr->t0 = deadline = bench_now_ns();
	sr->t_high = 0;
	sr->blocked_ns_after_high = 0;
	sr->blocked_stores = 0;
	uint64_t unit = 0;
	for (uint32_t step = 0; step < p->blocks_per_seq; step++) {
		for (uint32_t s = 0; s < p->n_seqs; s++, unit++) {
			if (sr->max_units && unit >= sr->max_units)
				goto done;
			if (interval_ns)
				pace(&deadline, interval_ns);
			for (uint32_t l = 0; l < L; l++, i++) {
				const unsigned char *k = src_of(p, step, s, l);
				uint64_t a = bench_now_ns();
				int rc = -EAGAIN;
				if (sr->count_blocked &&
				    (rc = tkv_store(rt, s + 1, l, (uint64_t)step * EVICT_BATCH,
						    EVICT_BATCH, k, k + p->batch_bytes,
						    TKV_STORE_NONBLOCK, NULL)) == -EAGAIN)
					sr->blocked_stores++;
				if (rc == -EAGAIN)
					rc = tkv_store(rt, s + 1, l, (uint64_t)step * EVICT_BATCH,
						       EVICT_BATCH, k, k + p->batch_bytes, 0, NULL);
				uint64_t b = bench_now_ns();
				if (rc) {
					fprintf(stderr, "tierkv-bench evict: store: %s\n",
						tkv_last_error());
					store_failed(rt, step, s, l, i);
					return rc;
				}
				sr->lat.ns[i] = b - a;
				if (sr->t_high) {
					sr->blocked_ns_after_high += b - a;
				} else if (pause_at_high && i + 2 == high_blocks) {
					for (uint32_t q = 0; q < p->n_seqs; q++)
						tkv_seq_sync(rt, q + 1);
					sr->t_high = bench_now_ns();
				} else if (!pause_at_high && i + 1 >= high_blocks) {
					sr->t_high = b; /* this store's reservation crossed it */
				}
			}
		}
	}
done:
	sr->lat.n = i;
	sr->t_end = bench_now_ns();
	for (uint32_t s = 0; s < p->n_seqs; s++)
		tkv_seq_sync(rt, s + 1);
	return 0;
}

/* Waits until the evictor is done: no record write outstanding, and either
 * the hot tier at or under low_blocks or no record evicted for IDLE_QUIET_NS
 * (with watermark hysteresis an evictor that reached the low mark during
 * the stores is rightly idle when usage then settles under the high mark).
 * Returns the time of the last eviction seen (the end of the work), 0 on
 * timeout. */
uint64_t evict_wait_idle(tkv_runtime *rt, uint64_t low_blocks, uint64_t block_bytes)
{
	uint64_t t0 = bench_now_ns(), t_change = t0, last = UINT64_MAX;
	tkv_stats st;
	for (;;) {
		uint64_t now = bench_now_ns();
		if (evict_stats(rt, &st) == 0) {
			if (st.evicted_blocks != last || st.evictor_queue_depth) {
				last = st.evicted_blocks;
				t_change = now;
			}
			if (st.evictor_queue_depth == 0 &&
			    (st.hot_bytes_used / block_bytes <= low_blocks ||
			     now - t_change > IDLE_QUIET_NS))
				return t_change;
		}
		if (now - t0 > EVICT_IDLE_TIMEOUT_NS) {
			fprintf(stderr,
				"  evictor not idle: hot %llu/%llu bytes (low watermark %llu blocks), "
				"evicted %llu records, writes in flight %u, write errors eio %llu "
				"enospc %llu\n",
				(unsigned long long)st.hot_bytes_used,
				(unsigned long long)st.hot_bytes_capacity, (unsigned long long)low_blocks,
				(unsigned long long)st.evicted_blocks, st.evictor_queue_depth,
				(unsigned long long)st.io_errors_eio,
				(unsigned long long)st.io_errors_enospc);
			return 0;
		}
		sleep_ns(EVICT_POLL_NS);
	}
}

/* Lets the evictor's housekeeping (zeroing the headers of removed records)
 * finish so it does not overlap the next timed round. */
static void wait_cold_settled(tkv_runtime *rt)
{
	tkv_stats st;
	uint64_t last = UINT64_MAX, t0 = bench_now_ns();
	int same = 0;
	while (same < 3 && bench_now_ns() - t0 < 1000000000ull) {
		if (evict_stats(rt, &st))
			return;
		same = st.cold_bytes_used == last && st.evictor_queue_depth == 0 ? same + 1 : 0;
		last = st.cold_bytes_used;
		sleep_ns(1000 * 1000);
	}
}

/* Compares every block of one layer of a sequence with what was stored. */
static int verify_layer(tkv_runtime *rt, const evict_plan *p, uint32_t s, uint32_t l,
			tkv_view_block *blocks, uint64_t *bad)
{
	tkv_view v = {.struct_size = sizeof(v), .blocks = blocks, .max_blocks = p->blocks_per_seq};
	int rc = tkv_view_acquire(rt, s + 1, l, 0, p->tokens_per_seq, &v);
	if (rc)
		return rc;
	for (uint32_t b = 0; b < v.n_blocks; b++) {
		const unsigned char *k = src_of(p, b, s, l);
		if (memcmp(v.blocks[b].k, k, p->batch_bytes) ||
		    memcmp(v.blocks[b].v, k + p->batch_bytes, p->batch_bytes))
			(*bad)++;
	}
	return tkv_view_release(rt, &v);
}

/* CPU time so far: the process's user and system time, the prefetch
 * thread's (tkv_stats) and the calling thread's (ns; 0 where unreadable). */
typedef struct promote_cpu {
	uint64_t user, sys, prefetch, viewer;
} promote_cpu;

static uint64_t tv_ns(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	return clock_gettime(id, &ts) ? 0 : (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t evict_evictor_cpu_ns(tkv_runtime *rt)
{
	tkv_stats st;
	return evict_stats(rt, &st) ? 0 : st.evictor_cpu_ns;
}

static promote_cpu promote_cpu_now(tkv_runtime *rt)
{
	promote_cpu c = {0};
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		c.user = tv_ns(ru.ru_utime);
		c.sys = tv_ns(ru.ru_stime);
	}
	tkv_stats st;
	if (evict_stats(rt, &st) == 0)
		c.prefetch = st.prefetch_cpu_ns;
	c.viewer = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	return c;
}

/* One timed round: prefetch sequences [from, to), then view every layer of
 * them (a view waits for its layer's blocks, or promotes them itself if the
 * prefetch thread has not reached them). */
static int promote_round(tkv_runtime *rt, const evict_plan *p, uint32_t from, uint32_t to,
			 tkv_view_block *blocks)
{
	int rc = 0;
	for (uint32_t s = from; s < to && !rc; s++) {
		while ((rc = tkv_prefetch(rt, s + 1, 0, p->tokens_per_seq)) == -EAGAIN)
			sleep_ns(EVICT_POLL_NS);
	}
	for (uint32_t s = from; s < to && !rc; s++) {
		for (uint32_t l = 0; l < p->lay.n_layers && !rc; l++) {
			tkv_view v = {.struct_size = sizeof(v), .blocks = blocks,
				      .max_blocks = p->blocks_per_seq};
			rc = tkv_view_acquire(rt, s + 1, l, 0, p->tokens_per_seq, &v);
			if (!rc)
				rc = tkv_view_release(rt, &v);
		}
	}
	return rc;
}

uint32_t evict_round_seqs(const evict_plan *p, uint64_t hot_blocks, uint64_t used_blocks)
{
	const uint64_t high = hot_blocks * p->high_pct / 100, L = p->lay.n_layers;
	const uint64_t room = high > used_blocks + L ? high - used_blocks - L : 0; /* a unit of margin */
	const uint64_t k = room / ((uint64_t)p->blocks_per_seq * L);
	return k < 1 ? 1 : k > p->n_seqs ? p->n_seqs : (uint32_t)k;
}

/* Reads every cold block back in rounds that fit under the high watermark
 * (so no eviction runs during a round), verifies (untimed), closes the
 * round's sequences to make room. Closes all sequences. */
int evict_promote_all(tkv_runtime *rt, const evict_plan *p, evict_promote_run *pr)
{
	const uint32_t L = p->lay.n_layers;
	tkv_view_block *blocks = calloc(p->blocks_per_seq, sizeof(*blocks));
	tkv_stats st;
	int rc = blocks ? evict_stats(rt, &st) : -ENOMEM;
	if (rc) {
		free(blocks);
		return rc;
	}
	const uint64_t hot_blocks = st.hot_bytes_capacity / p->lay.block_bytes;
	const uint64_t b0 = st.promoted_bytes, n0 = st.promoted_blocks;
	const uint64_t h0 = st.promote_verified_by_readers;
	uint32_t next = 0;
	*pr = (evict_promote_run){.beside_round = pr->beside_round, .ctx = pr->ctx};
	while (!rc && next < p->n_seqs) {
		if ((rc = evict_stats(rt, &st)))
			break;
		uint32_t k = evict_round_seqs(p, hot_blocks, st.hot_bytes_used / p->lay.block_bytes);
		k = k > p->n_seqs - next ? p->n_seqs - next : k;
		const uint64_t round_blocks = (uint64_t)k * p->blocks_per_seq * L;
		if (pr->beside_round &&
		    (rc = pr->beside_round(pr->ctx, pr->rounds, round_blocks, false)))
			break;
		const promote_cpu c0 = promote_cpu_now(rt);
		uint64_t t0 = bench_now_ns();
		rc = promote_round(rt, p, next, next + k, blocks);
		pr->ns += bench_now_ns() - t0;
		const promote_cpu c1 = promote_cpu_now(rt);
		pr->cpu_user_ns += c1.user - c0.user;
		pr->cpu_sys_ns += c1.sys - c0.sys;
		pr->prefetch_cpu_ns += c1.prefetch - c0.prefetch;
		pr->viewer_cpu_ns += c1.viewer - c0.viewer;
		if (round_blocks > pr->max_round_blocks)
			pr->max_round_blocks = round_blocks;
		if (rc) {
			fprintf(stderr, "tierkv-bench evict: promotion: %s\n", tkv_last_error());
			break;
		}
		if (pr->beside_round &&
		    (rc = pr->beside_round(pr->ctx, pr->rounds, round_blocks, true)))
			break;
		pr->rounds++;
		for (uint32_t s = next; s < next + k && !rc; s++)
			for (uint32_t l = 0; l < L && !rc; l++) {
				rc = verify_layer(rt, p, s, l, blocks, &pr->bad_blocks);
				pr->verified_blocks += p->blocks_per_seq;
			}
		if (rc)
			fprintf(stderr, "tierkv-bench evict: verify: %s\n", tkv_last_error());
		evict_close_seqs(rt, p, next, next + k);
		next += k;
		wait_cold_settled(rt);
	}
	evict_close_seqs(rt, p, next, p->n_seqs);
	if (evict_stats(rt, &st) == 0) {
		pr->bytes = st.promoted_bytes - b0;
		pr->blocks = st.promoted_blocks - n0;
		pr->reader_verified = st.promote_verified_by_readers - h0;
	}
	free(blocks);
	return rc;
}
