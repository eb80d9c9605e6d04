/*
 * runtime.c - the runtime's promises one at a time: open/close, sequences,
 * store/read/view round trips, append-only positions, tickets, backpressure
 * (ring full, hot tier full), pins, errors on unknown or closed sequences,
 * stats, and idle workers sleeping.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <criterion/criterion.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "runtime/runtime.h"
#include "tiers/hot_arena.h" /* tkv__arena_test_fail_allocs */
#include "tests/kv_pattern.h"
#include "tests/refuse_syscall.h"
#include "tools/trace/trace_read.h"
#include "tierkv.h"

/* A small geometry keeps sanitizer runs fast: 4 layers, rows of 64 bytes. */
static tkv_config small_config(void)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = 4;
	c.n_kv_heads = 2;
	c.head_dim = 8;
	c.dtype = TKV_DTYPE_F32;
	c.block_tokens = 16;
	c.hot_bytes = 64ull << 20;
	c.n_workers = 2;
	return c;
}

static size_t row_bytes(const tkv_config *c)
{
	return (size_t)c->n_kv_heads * c->head_dim * tkv_dtype_size(c->dtype);
}

static tkv_runtime *open_small(tkv_config *c)
{
	tkv_runtime *rt = NULL;
	int rc = tkv_open(c, &rt);
	cr_assert_eq(rc, 0, "tkv_open: %s", tkv_last_error());
	cr_assert_not_null(rt);
	return rt;
}

/* Stores [pos, pos+n) of (seq, layer) with pattern data; returns the rc. The
 * buffers are freed after waiting, as the header's lifetime rule demands. */
static int store_pattern(tkv_runtime *rt, const tkv_config *c, uint64_t seq, uint32_t layer,
			 uint64_t pos, uint32_t n, unsigned flags)
{
	size_t rb = row_bytes(c);
	unsigned char *k = malloc(n * rb), *v = malloc(n * rb);
	kvp_fill(k, seq, layer, pos, n, rb, 0);
	kvp_fill(v, seq, layer, pos, n, rb, 1);
	tkv_ticket t;
	int rc = tkv_store(rt, seq, layer, pos, n, k, v, flags, &t);
	if (rc == 0)
		cr_assert_eq(tkv_wait(rt, &t), 0, "%s", tkv_last_error());
	free(k);
	free(v);
	return rc;
}

static void expect_read(tkv_runtime *rt, const tkv_config *c, uint64_t seq, uint32_t layer,
			uint64_t pos, uint32_t n)
{
	size_t rb = row_bytes(c);
	unsigned char *k = malloc(n * rb), *v = malloc(n * rb), *scratch = malloc(rb);
	cr_assert_eq(tkv_read(rt, seq, layer, pos, n, k, v), 0, "%s", tkv_last_error());
	cr_assert_eq(kvp_check(k, seq, layer, pos, n, rb, 0, scratch), -1, "K mismatch");
	cr_assert_eq(kvp_check(v, seq, layer, pos, n, rb, 1, scratch), -1, "V mismatch");
	free(k);
	free(v);
	free(scratch);
}

/* Allocates K and V buffers of n rows and fills them with the pattern of
 * (seq, layer, pos..); the caller frees both. */
static void pattern_rows(const tkv_config *c, uint64_t seq, uint32_t layer, uint64_t pos,
			 uint32_t n, unsigned char **k, unsigned char **v)
{
	size_t rb = row_bytes(c);
	*k = malloc(n * rb);
	*v = malloc(n * rb);
	cr_assert(*k && *v);
	kvp_fill(*k, seq, layer, pos, n, rb, 0);
	kvp_fill(*v, seq, layer, pos, n, rb, 1);
}

Test(runtime, open_close_and_null)
{
	tkv_close(NULL);
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_eq(st.n_workers, 2);
	cr_assert_eq(st.hot_bytes_used, 0);
	cr_assert_gt(st.hot_bytes_capacity, 0);
	cr_assert_not_null(st.topology_source);
	tkv_close(rt);
	cr_assert_eq(tkv_open(&c, NULL), -EINVAL);
}

Test(runtime, bad_config_changes_nothing)
{
	tkv_config c = small_config();
	c.block_tokens = 3;
	tkv_runtime *rt = (tkv_runtime *)0x1;
	cr_assert_eq(tkv_open(&c, &rt), -EINVAL);
	cr_assert_null(rt);
	cr_assert(strstr(tkv_last_error(), "block_tokens"), "%s", tkv_last_error());
}

Test(runtime, store_read_round_trip_across_blocks)
{
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	cr_assert_eq(tkv_seq_open(rt, 42), 0);
	uint32_t sizes[] = {1, 15, 16, 17, 3, 40, 1};
	for (uint32_t layer = 0; layer < c.n_layers; layer++) {
		uint64_t pos = 0;
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			cr_assert_eq(store_pattern(rt, &c, 42, layer, pos, sizes[i], 0), 0, "%s",
				     tkv_last_error());
			pos += sizes[i];
		}
		expect_read(rt, &c, 42, layer, 0, (uint32_t)pos);
		expect_read(rt, &c, 42, layer, 13, 20); /* straddles blocks */
		expect_read(rt, &c, 42, layer, pos - 1, 1);
	}
	uint64_t blocks, tokens;
	cr_assert_eq(tkv_seq_info(rt, 42, &blocks, &tokens), 0);
	cr_assert_eq(tokens, 93);
	cr_assert_eq(blocks, 6 * c.n_layers); /* ceil(93 / 16) per layer */
	cr_assert_eq(tkv_seq_close(rt, 42), 0);
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_eq(st.hot_blocks_used, 0, "closing a sequence frees its blocks");
	tkv_close(rt);
}

Test(runtime, positions_are_append_only)
{
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(store_pattern(rt, &c, 1, 0, 0, 10, 0), 0);
	cr_assert_eq(store_pattern(rt, &c, 1, 0, 11, 5, 0), -EINVAL, "gap");
	cr_assert(strstr(tkv_last_error(), "gap"), "%s", tkv_last_error());
	cr_assert_eq(store_pattern(rt, &c, 1, 0, 5, 5, 0), -EINVAL, "overlap");
	cr_assert(strstr(tkv_last_error(), "overlap"), "%s", tkv_last_error());
	cr_assert_eq(store_pattern(rt, &c, 1, 1, 3, 1, 0), -EINVAL, "other layer starts at 0");
	/* nothing changed: the next contiguous store still works */
	cr_assert_eq(store_pattern(rt, &c, 1, 0, 10, 6, 0), 0);
	expect_read(rt, &c, 1, 0, 0, 16);
	tkv_close(rt);
}

Test(runtime, bad_arguments)
{
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	unsigned char buf[64 * 4];
	cr_assert_eq(tkv_seq_open(rt, 7), 0);
	cr_assert_eq(tkv_seq_open(rt, 7), -EEXIST);
	cr_assert_eq(tkv_store(rt, 7, 4, 0, 1, buf, buf, 0, NULL), -EINVAL, "layer");
	cr_assert(strstr(tkv_last_error(), "layer"));
	cr_assert_eq(tkv_store(rt, 7, 0, 0, 0, buf, buf, 0, NULL), -EINVAL, "n_tokens");
	cr_assert_eq(tkv_store(rt, 7, 0, 0, 1, NULL, buf, 0, NULL), -EINVAL, "NULL K");
	cr_assert_eq(tkv_store(rt, 7, 0, 0, 1, buf, NULL, 0, NULL), -EINVAL, "NULL V");
	cr_assert_eq(tkv_store(rt, 7, 0, 0, UINT32_MAX, buf, buf, 0, NULL), -ENOSPC,
		     "more tokens than the hot tier holds");
	cr_assert_eq(tkv_store(NULL, 7, 0, 0, 1, buf, buf, 0, NULL), -EINVAL);
	cr_assert_eq(tkv_read(rt, 7, 0, 0, 1, buf, buf), -ENOENT, "nothing stored yet");
	cr_assert_eq(tkv_read(rt, 7, 0, UINT64_MAX, 2, buf, buf), -EOVERFLOW);
	cr_assert_eq(tkv_read(rt, 7, 9, 0, 1, buf, buf), -EINVAL);
	cr_assert_eq(tkv_wait(rt, NULL), -EINVAL);
	tkv_ticket bad_layer = {.seq_id = 7, .end_pos = 1, .layer = 9};
	cr_assert_eq(tkv_wait(rt, &bad_layer), -EINVAL, "layer out of range");
	cr_assert_eq(tkv_wait(NULL, &bad_layer), -EINVAL, "NULL runtime");
	cr_assert_eq(tkv_batch_hint(rt, 7, 99, 0), -EINVAL);
	tkv_close(rt);
}

Test(runtime, unknown_and_closed_sequences)
{
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	unsigned char buf[64 * 4];
	cr_assert_eq(tkv_store(rt, 99, 0, 0, 1, buf, buf, 0, NULL), -ENOENT);
	cr_assert(strstr(tkv_last_error(), "99"), "%s", tkv_last_error());
	cr_assert_eq(tkv_seq_close(rt, 99), -ENOENT);
	cr_assert_eq(tkv_seq_open(rt, 5), 0);
	cr_assert_eq(store_pattern(rt, &c, 5, 0, 0, 4, 0), 0);
	tkv_ticket t = {5, 4, 0, 0};
	cr_assert_eq(tkv_seq_close(rt, 5), 0);
	/* use after close: every call on the sequence is refused */
	cr_assert_eq(tkv_store(rt, 5, 0, 4, 1, buf, buf, 0, NULL), -ENOENT);
	cr_assert_eq(tkv_read(rt, 5, 0, 0, 1, buf, buf), -ENOENT);
	cr_assert_eq(tkv_wait(rt, &t), -ENOENT);
	cr_assert(tkv_ticket_done(rt, &t));
	cr_assert_eq(tkv_seq_sync(rt, 5), -ENOENT);
	cr_assert_eq(tkv_seq_close(rt, 5), -ENOENT);
	cr_assert_eq(tkv_batch_hint(rt, 5, 0, 0), -ENOENT);
	uint64_t blocks;
	cr_assert_eq(tkv_seq_info(rt, 5, &blocks, NULL), -ENOENT);
	/* the id can be reused, starting empty */
	cr_assert_eq(tkv_seq_open(rt, 5), 0);
	cr_assert_eq(store_pattern(rt, &c, 5, 0, 0, 2, 0), 0);
	expect_read(rt, &c, 5, 0, 0, 2);
	tkv_close(rt);
}

Test(runtime, batch_hint_reaches_block_end)
{
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	cr_assert_eq(tkv_seq_open(rt, 3), 0);
	cr_assert_eq(tkv_batch_hint(rt, 3, 0, 0), 16);
	cr_assert_eq(tkv_batch_hint(rt, 3, 0, 8), 8);
	cr_assert_eq(store_pattern(rt, &c, 3, 0, 0, 5, 0), 0);
	cr_assert_eq(tkv_batch_hint(rt, 3, 0, 0), 11);
	cr_assert_eq(tkv_batch_hint(rt, 3, 0, 4), 4);
	cr_assert_eq(tkv_batch_hint(rt, 3, 1, 0), 16, "per layer");
	cr_assert_eq(store_pattern(rt, &c, 3, 0, 5, 11, 0), 0);
	cr_assert_eq(tkv_batch_hint(rt, 3, 0, 0), 16);
	tkv_close(rt);
}

Test(runtime, view_pins_until_release)
{
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	size_t rb = row_bytes(&c);
	cr_assert_eq(tkv_seq_open(rt, 8), 0);
	cr_assert_eq(store_pattern(rt, &c, 8, 2, 0, 40, 0), 0);
	tkv_view_block blocks[4];
	tkv_view v = {.struct_size = sizeof(v), .blocks = blocks, .max_blocks = 1};
	cr_assert_eq(tkv_view_acquire(rt, 8, 2, 10, 25, &v), -ERANGE);
	cr_assert_eq(v.n_blocks, 3, "says how many blocks are needed");
	v.max_blocks = 4;
	cr_assert_eq(tkv_view_acquire(rt, 8, 2, 10, 25, &v), 0, "%s", tkv_last_error());
	cr_assert_eq(v.n_blocks, 3);
	uint32_t expect_n[] = {6, 16, 3};
	uint64_t expect_pos[] = {10, 16, 32};
	unsigned char *scratch = malloc(rb);
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert_eq(blocks[i].n_tokens, expect_n[i]);
		cr_assert_eq(blocks[i].first_pos, expect_pos[i]);
		cr_assert_eq((uintptr_t)blocks[i].k % 64, (i == 0 ? 10 * rb : 0) % 64);
		cr_assert_eq(kvp_check(blocks[i].k, 8, 2, blocks[i].first_pos, blocks[i].n_tokens,
				       rb, 0, scratch), -1);
		cr_assert_eq(kvp_check(blocks[i].v, 8, 2, blocks[i].first_pos, blocks[i].n_tokens,
				       rb, 1, scratch), -1);
	}
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_eq(st.pinned_blocks, 3);
	cr_assert_eq(tkv_seq_close(rt, 8), -EBUSY, "a viewed sequence cannot be closed");
	/* still intact after the refused close */
	cr_assert_eq(kvp_check(blocks[1].k, 8, 2, 16, 16, rb, 0, scratch), -1);
	cr_assert_eq(tkv_view_release(rt, &v), 0);
	cr_assert_eq(tkv_view_release(rt, &v), -EINVAL, "double release");
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_eq(st.pinned_blocks, 0);
	cr_assert_eq(tkv_seq_close(rt, 8), 0);
	free(scratch);
	tkv_close(rt);
}

Test(runtime, hot_tier_full_is_enospc_and_overwrites_nothing)
{
	tkv_config c = small_config();
	size_t block = 2 * 16 * row_bytes(&c);
	c.hot_bytes = block * c.n_layers * 2; /* two blocks per layer */
	tkv_runtime *rt = open_small(&c);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	for (uint32_t l = 0; l < c.n_layers; l++)
		cr_assert_eq(store_pattern(rt, &c, 1, l, 0, 32, 0), 0, "%s", tkv_last_error());
	cr_assert_eq(store_pattern(rt, &c, 2, 0, 0, 1, 0), -ENOSPC);
	cr_assert(strstr(tkv_last_error(), "hot tier full"), "%s", tkv_last_error());
	cr_assert_eq(store_pattern(rt, &c, 1, 0, 32, 1, 0), -ENOSPC);
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_eq(st.enospc_events, 2);
	cr_assert_eq(st.hot_bytes_used, st.hot_bytes_capacity);
	for (uint32_t l = 0; l < c.n_layers; l++)
		expect_read(rt, &c, 1, l, 0, 32);
	/* a refused store changed nothing: sequence 2 can still start at 0
	 * once space is freed */
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	cr_assert_eq(store_pattern(rt, &c, 2, 0, 0, 1, 0), 0);
	expect_read(rt, &c, 2, 0, 0, 1);
	tkv_close(rt);
}

struct blocked_store {
	tkv_runtime *rt;
	const unsigned char *k;
	int rc;
};

static void *blocked_store_main(void *arg)
{
	struct blocked_store *b = arg;
	b->rc = tkv_store(b->rt, 1, 0, 3, 1, b->k, b->k, 0, NULL);
	return NULL;
}

Test(runtime, full_ring_eagain_or_backoff)
{
	tkv_config c = small_config();
	c.ring_slots = 4; /* holds 3 */
	c.n_workers = 1;
	tkv_runtime *rt = open_small(&c);
	size_t rb = row_bytes(&c);
	unsigned char *k = malloc(8 * rb);
	kvp_fill(k, 1, 0, 0, 8, rb, 0);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	tkv__test_pause(rt, true);
	for (uint64_t p = 0; p < 3; p++)
		cr_assert_eq(tkv_store(rt, 1, 0, p, 1, k + p * rb, k + p * rb, TKV_STORE_NONBLOCK,
				       NULL), 0);
	cr_assert_eq(tkv_store(rt, 1, 0, 3, 1, k, k, TKV_STORE_NONBLOCK, NULL), -EAGAIN);
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_eq(st.ring_full_events, 1);
	/* a blocking store waits (backs off) until the worker makes room */
	struct blocked_store b = {rt, k + 3 * rb, 1};
	pthread_t th;
	pthread_create(&th, NULL, blocked_store_main, &b);
	usleep(20000);
	tkv__test_pause(rt, false);
	pthread_join(th, NULL);
	cr_assert_eq(b.rc, 0, "%s", tkv_strerror(b.rc));
	cr_assert_eq(tkv_seq_sync(rt, 1), 0);
	unsigned char *out = malloc(4 * rb), *scratch = malloc(rb);
	cr_assert_eq(tkv_read(rt, 1, 0, 0, 4, out, out), 0);
	cr_assert_eq(memcmp(out, k, 4 * rb), 0);
	free(out);
	free(scratch);
	free(k);
	tkv_close(rt);
}

/* The default ring holds one round of 64 engine threads storing every layer
 * of a 32-layer model, on one worker or two (tierkv.h, ring_slots): with the
 * workers paused no such store finds its ring full. */
Test(runtime, default_ring_holds_64_threads_round)
{
	for (uint32_t workers = 1; workers <= 2; workers++) {
		tkv_config c = small_config();
		c.n_layers = 32;
		c.n_workers = workers;
		c.pin_workers = false;
		cr_assert_eq(c.ring_slots, 4096, "the documented default");
		tkv_runtime *rt = open_small(&c);
		size_t rb = row_bytes(&c);
		unsigned char *k = malloc(64 * 32 * rb), *v = malloc(64 * 32 * rb);
		tkv__test_pause(rt, true);
		for (uint64_t s = 1; s <= 64; s++) {
			cr_assert_eq(tkv_seq_open(rt, s), 0);
			for (uint32_t l = 0; l < 32; l++) {
				unsigned char *rk = k + ((s - 1) * 32 + l) * rb;
				unsigned char *rv = v + ((s - 1) * 32 + l) * rb;
				kvp_fill(rk, s, l, 0, 1, rb, 0);
				kvp_fill(rv, s, l, 0, 1, rb, 1);
				cr_assert_eq(tkv_store(rt, s, l, 0, 1, rk, rv, TKV_STORE_NONBLOCK, NULL),
					     0, "%u workers, seq %llu layer %u: %s", workers,
					     (unsigned long long)s, l, tkv_last_error());
			}
		}
		tkv_stats st = {.struct_size = sizeof(st)};
		cr_assert_eq(tkv_stats_get(rt, &st), 0);
		cr_assert_eq(st.ring_full_events, 0);
		tkv__test_pause(rt, false);
		for (uint64_t s = 1; s <= 64; s++) {
			cr_assert_eq(tkv_seq_sync(rt, s), 0);
			for (uint32_t l = 0; l < 32; l += 31)
				expect_read(rt, &c, s, l, 0, 1);
		}
		free(k);
		free(v);
		tkv_close(rt);
	}
}

/* Producers of tiny_ring_producers_all_arrive: seq `seq`, every layer, one
 * token per store, each synced before its buffers are reused; four of them
 * on a ring that holds three keep it full. */
enum { TINY_RING_TOKENS = 96, TINY_RING_PRODUCERS = 4 };
struct ring_producer {
	tkv_runtime *rt;
	const tkv_config *c;
	uint64_t seq;
	int rc;
};

static void *ring_producer_main(void *arg)
{
	struct ring_producer *p = arg;
	size_t rb = row_bytes(p->c);
	unsigned char *k = malloc(rb), *v = malloc(rb);
	for (uint32_t pos = 0; pos < TINY_RING_TOKENS && !p->rc; pos++)
		for (uint32_t l = 0; l < p->c->n_layers && !p->rc; l++) {
			kvp_fill(k, p->seq, l, pos, 1, rb, 0);
			kvp_fill(v, p->seq, l, pos, 1, rb, 1);
			p->rc = tkv_store(p->rt, p->seq, l, pos, 1, k, v, 0, NULL);
			if (!p->rc) /* the buffers are reused: wait as the header says */
				p->rc = tkv_seq_sync(p->rt, p->seq);
		}
	free(k);
	free(v);
	return NULL;
}

/*
 * Producers that find the queue full sleep until the worker has drained it
 * to half (runtime/store.c, runtime/worker.c). Their sleep is made a minute
 * long here, so only the worker's wake-up can end it in time: several
 * producers on a ring of 4 slots (the smallest; every descriptor is a check
 * point) behind one worker, paused until a producer has met the full queue.
 * Each store must complete, in order, with its bytes intact. The same for
 * the bench's mutex queue, which drains 16 descriptors per lock: a queue
 * of 4 goes from full to empty in one pop.
 */
static void tiny_queue_producers(tkv__queue_kind queue)
{
	tkv_config c = small_config();
	c.ring_slots = 4;
	c.n_workers = 1;
	tkv__open_opts opts = {.queue = queue, .room_nap_ns = 60ull * 1000 * 1000 * 1000};
	tkv_runtime *rt = NULL;
	cr_assert_eq(tkv__open_ex(&c, &opts, &rt), 0, "%s", tkv_last_error());
	struct ring_producer p[TINY_RING_PRODUCERS];
	pthread_t th[TINY_RING_PRODUCERS];
	tkv__test_pause(rt, true);
	for (int i = 0; i < TINY_RING_PRODUCERS; i++) {
		p[i] = (struct ring_producer){rt, &c, (uint64_t)i + 1, 0};
		cr_assert_eq(tkv_seq_open(rt, p[i].seq), 0);
		cr_assert_eq(pthread_create(&th[i], NULL, ring_producer_main, &p[i]), 0);
	}
	tkv_stats st = {.struct_size = sizeof(st)};
	do { /* a producer found the queue full, and spins or sleeps now */
		usleep(1000);
		cr_assert_eq(tkv_stats_get(rt, &st), 0);
	} while (st.ring_full_events == 0);
	tkv__test_pause(rt, false);
	for (int i = 0; i < TINY_RING_PRODUCERS; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(p[i].rc, 0, "producer %d: %s", i, tkv_strerror(p[i].rc));
	}
	for (int i = 0; i < TINY_RING_PRODUCERS; i++)
		for (uint32_t l = 0; l < c.n_layers; l++)
			expect_read(rt, &c, p[i].seq, l, 0, TINY_RING_TOKENS);
	tkv_close(rt);
}

/* A lost wake-up shows as the Criterion timeout, well before a sleep ends. */
Test(runtime, tiny_ring_producers_all_arrive, .timeout = 30)
{
	tiny_queue_producers(TKV__QUEUE_RING);
}

Test(runtime, tiny_mutex_queue_producers_all_arrive, .timeout = 30)
{
	tiny_queue_producers(TKV__QUEUE_MUTEX);
}

/*
 * Stores accepted while the workers are paused are still in the rings when
 * tkv_close runs: close must copy every one before it returns. The trace,
 * written by close after the workers joined, must show one copy of each
 * store's bytes and its completion at the layer's end position; a close
 * that dropped what was queued leaves them out. (ASan and LeakSanitizer
 * also check nothing is touched after free or leaked.)
 */
Test(runtime, close_drains_pending_stores)
{
	char path[] = "/tmp/tierkv-trace-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	tkv_config c = small_config();
	c.trace_path = path;
	tkv_runtime *rt = open_small(&c);
	size_t rb = row_bytes(&c);
	unsigned char *k = calloc(64, rb);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	tkv__test_pause(rt, true);
	for (uint32_t l = 0; l < c.n_layers; l++)
		for (uint32_t b = 0; b < 4; b++) /* 4 batches of 16 tokens a layer */
			cr_assert_eq(tkv_store(rt, 1, l, 16 * b, 16, k, k, 0, NULL), 0);
	tkv_close(rt); /* unpauses, drains every accepted store, then frees */
	free(k);

	tkv__trace_file *f;
	cr_assert_eq(tkv__trace_load(path, &f), 0, "%s", tkv_last_error());
	size_t copies[4] = {0}, ends = 0; /* small_config: 4 layers */
	for (size_t i = 0; i < f->n_events; i++) {
		const tkv__trace_event *e = &f->events[i];
		if (e->kind == TKV__TRACE_COPY && e->a < 4 && e->b == 16 * 2 * rb)
			copies[e->a]++;
		if (e->kind == TKV__TRACE_TICKET_DONE && e->a == 1 && e->b == 64)
			ends++; /* a layer's last batch completed */
	}
	for (uint32_t l = 0; l < c.n_layers; l++)
		cr_assert_eq(copies[l], 4, "layer %u: %zu of 4 queued stores copied by close", l,
			     copies[l]);
	cr_assert_eq(ends, c.n_layers, "every layer completed up to position 64");
	cr_assert_eq(f->dropped, 0);
	tkv__trace_file_free(f);
	unlink(path);
}

static double process_cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(runtime, idle_runtime_sleeps)
{
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(store_pattern(rt, &c, 1, 0, 0, 16, 0), 0); /* wake the workers once */
	usleep(50000); /* let them reach their sleep */
	double t0 = process_cpu_seconds();
	sleep(1);
	double used = process_cpu_seconds() - t0;
	cr_assert_lt(used, 0.02, "idle runtime used %.1f%% of a core", used * 100);
	tkv_close(rt);
}

Test(runtime, trace_records_pipeline_events)
{
	char path[] = "/tmp/tierkv-trace-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	tkv_config c = small_config();
	c.trace_path = path;
	tkv_runtime *rt = open_small(&c);
	cr_assert_eq(tkv_seq_open(rt, 77), 0);
	for (uint32_t l = 0; l < c.n_layers; l++)
		cr_assert_eq(store_pattern(rt, &c, 77, l, 0, 20, 0), 0);
	tkv_close(rt);

	tkv__trace_file *f;
	cr_assert_eq(tkv__trace_load(path, &f), 0, "%s", tkv_last_error());
	size_t stores = 0, copies = 0, done = 0, workers = 0;
	for (size_t i = 0; i < f->n_events; i++) {
		const tkv__trace_event *e = &f->events[i];
		stores += e->kind == TKV__TRACE_STORE && e->a == 77 && e->b == 20;
		copies += e->kind == TKV__TRACE_COPY && e->b == 20 * 2 * row_bytes(&c);
		done += e->kind == TKV__TRACE_TICKET_DONE && e->a == 77 && e->b == 20;
	}
	for (size_t i = 0; i < f->n_threads; i++)
		workers += f->threads[i].name.len >= 7 && !memcmp(f->threads[i].name.p, "worker-", 7);
	cr_assert_eq(stores, c.n_layers);
	cr_assert_eq(copies, c.n_layers);
	cr_assert_eq(done, c.n_layers);
	cr_assert_eq(workers, 2, "one named track per worker");
	cr_assert_eq(f->dropped, 0);
	tkv__trace_file_free(f);
	unlink(path);
}

Test(runtime, workers_follow_topology_and_pinning)
{
	/* an empty sysfs tree: no rule applies, so the affinity mask decides */
	char root[] = "/tmp/tierkv-sysfs-XXXXXX";
	cr_assert_not_null(mkdtemp(root));
	tkv_config c = small_config();
	c.n_workers = 0; /* one per performance core */
	c.sysfs_root = root;
	tkv_runtime *rt = open_small(&c);
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cpu_set_t set;
	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	uint32_t cpus = (uint32_t)CPU_COUNT(&set);
	cr_assert_eq(st.n_workers, cpus < c.n_layers ? cpus : c.n_layers);
	cr_assert_str_eq(st.topology_source, "affinity");
	for (uint32_t i = 0; i < st.n_workers; i++)
		cr_assert(st.workers[i].cpu >= 0 || st.pin_failures > 0, "worker %u unpinned", i);
	tkv_close(rt);

	c.pin_workers = false;
	rt = open_small(&c);
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	for (uint32_t i = 0; i < st.n_workers; i++)
		cr_assert_eq(st.workers[i].cpu, -1, "pin_workers = false leaves worker %u free", i);
	tkv_close(rt);
	rmdir(root);
}

/* Ticket waiters spin only on CPUs no worker takes (completion.c,
 * "Spinning"): the budget is the opener's affinity mask minus one CPU per
 * worker, and none at all once the workers take every CPU. */
Test(runtime, waiters_may_spin_only_on_cpus_no_worker_takes)
{
	cpu_set_t set;
	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	uint32_t cpus = (uint32_t)CPU_COUNT(&set);
	tkv_config c = small_config();
	for (uint32_t w = 1; w <= 3; w++) {
		c.n_workers = w;
		tkv_runtime *rt = open_small(&c);
		cr_assert_eq(rt->wait_spin_cpus, cpus > w ? cpus - w : 0, "%u workers on %u CPUs", w,
			     cpus);
		tkv_close(rt);
	}
	/* one CPU left to the process: a lone worker takes it */
	int first = -1;
	for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
		if (CPU_ISSET(i, &set))
			first = i;
	CPU_ZERO(&set);
	CPU_SET(first, &set);
	cr_assert_eq(sched_setaffinity(0, sizeof(set), &set), 0);
	c.n_workers = 1;
	tkv_runtime *rt = open_small(&c);
	cr_assert_eq(rt->wait_spin_cpus, 0);
	tkv_close(rt);
}

typedef struct spin_waiter {
	tkv_runtime *rt;
	const tkv_config *c;
	uint64_t seq;
} spin_waiter;

static void *spin_waiter_main(void *arg)
{
	spin_waiter *sw = arg;
	cr_assert_eq(tkv_seq_open(sw->rt, sw->seq), 0);
	for (uint32_t pos = 0; pos < 64; pos += 4)
		for (uint32_t l = 0; l < sw->c->n_layers; l++)
			cr_assert_eq(store_pattern(sw->rt, sw->c, sw->seq, l, pos, 4, 0), 0);
	for (uint32_t l = 0; l < sw->c->n_layers; l++)
		expect_read(sw->rt, sw->c, sw->seq, l, 0, 64);
	cr_assert_eq(tkv_seq_close(sw->rt, sw->seq), 0);
	return NULL;
}

/* The budget is a count of slots: claims succeed until every slot is
 * taken, and a released slot can be claimed again. */
Test(runtime, spinning_slots_are_claimed_up_to_the_budget)
{
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	rt->wait_spin_cpus = 2; /* whatever this machine has */
	cr_assert(tkv__spin_claim(rt));
	cr_assert(tkv__spin_claim(rt));
	cr_assert_not(tkv__spin_claim(rt), "a third waiter spins on a budget of 2");
	tkv__spin_release(rt);
	cr_assert(tkv__spin_claim(rt), "a released slot cannot be claimed again");
	tkv__spin_release(rt);
	tkv__spin_release(rt);
	rt->wait_spin_cpus = 0;
	cr_assert_not(tkv__spin_claim(rt), "a waiter spins with no budget");
	tkv_close(rt);
}

/* Many threads waiting at once with a budget to spin on: waiters do spin
 * (the worker is paused while they start, so their first waits cannot be
 * satisfied at once), every one that spun gives its slot back (the count
 * is 0 once they are done), and their stores read back. */
Test(runtime, spinning_waiters_give_their_slots_back)
{
	tkv_config c = small_config();
	c.n_workers = 1;
	tkv_runtime *rt = open_small(&c);
	rt->wait_spin_cpus = 1; /* on any machine, even one CPU */
	enum { WAITERS = 8 };
	spin_waiter sw[WAITERS];
	pthread_t th[WAITERS];
	tkv__test_pause(rt, true);
	for (int i = 0; i < WAITERS; i++) {
		sw[i] = (spin_waiter){rt, &c, (uint64_t)i + 1};
		cr_assert_eq(pthread_create(&th[i], NULL, spin_waiter_main, &sw[i]), 0);
	}
	usleep(20 * 1000);
	tkv__test_pause(rt, false);
	for (int i = 0; i < WAITERS; i++)
		pthread_join(th[i], NULL);
	cr_assert_gt(__atomic_load_n(&rt->wait_spins, __ATOMIC_RELAXED), 0, "no waiter spun");
	cr_assert_eq(__atomic_load_n(&rt->wait_spinning, __ATOMIC_RELAXED), 0,
		     "spinning slots were not given back");
	tkv_close(rt);
}

typedef struct ticket_waiter {
	tkv_runtime *rt;
	tkv_ticket t;
	int rc;
	int returned; /* atomic */
} ticket_waiter;

static void *ticket_waiter_main(void *arg)
{
	ticket_waiter *tw = arg;
	tw->rc = tkv_wait(tw->rt, &tw->t);
	__atomic_store_n(&tw->returned, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Polls until layer l of seq has a waiter announced and wait_min lowered to
 * end (it lowers after announcing); false after ~5 s. */
static bool sleeper_on(tkv_runtime *rt, uint64_t seq, uint32_t l, uint64_t end)
{
	tkv__seq *s = tkv__seq_get(&rt->seqs, seq);
	cr_assert_not_null(s);
	bool seen = false;
	for (int i = 0; i < 5000 && !seen; i++) {
		seen = __atomic_load_n(&s->layers[l].done_wake.waiters, __ATOMIC_ACQUIRE) > 0 &&
		       __atomic_load_n(&s->layers[l].wait_min, __ATOMIC_ACQUIRE) == end;
		if (!seen)
			usleep(1000);
	}
	tkv__seq_put(s);
	return seen;
}

/* An engine stores every layer of a step, then waits on each ticket: the
 * waiter of layer 0 that has to sleep sleeps on the last layer of its
 * worker already stored (layer 2 of 4 with 2 workers), so the worker wakes
 * it once, not once per layer (completion.c, "Where a ticket's waiter
 * sleeps"); it returns with its own layer done. */
Test(runtime, a_sleeping_ticket_waiter_sleeps_on_its_workers_last_stored_layer)
{
	tkv_config c = small_config(); /* 4 layers, 2 workers: 0 and 2 on worker 0 */
	tkv_runtime *rt = open_small(&c);
	rt->wait_spin_cpus = 0; /* sleep at once, whatever this machine has */
	size_t rb = row_bytes(&c);
	unsigned char *k = malloc(4 * 4 * rb), *v = malloc(4 * 4 * rb);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	tkv__test_pause(rt, true);
	ticket_waiter tw = {.rt = rt};
	for (uint32_t l = 0; l < 4; l++) {
		kvp_fill(k + l * 4 * rb, 1, l, 0, 4, rb, 0);
		kvp_fill(v + l * 4 * rb, 1, l, 0, 4, rb, 1);
		tkv_ticket t;
		cr_assert_eq(tkv_store(rt, 1, l, 0, 4, k + l * 4 * rb, v + l * 4 * rb, 0, &t), 0);
		if (l == 0)
			tw.t = t;
	}
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, ticket_waiter_main, &tw), 0);
	cr_assert_not(tkv_ticket_done(rt, &tw.t), "a paused worker copied");
	cr_assert(sleeper_on(rt, 1, 2, 4), "the waiter of layer 0 does not sleep on layer 2");
	tkv__seq *s = tkv__seq_get(&rt->seqs, 1);
	cr_assert_eq(__atomic_load_n(&s->layers[0].done_wake.waiters, __ATOMIC_RELAXED), 0);
	cr_assert_eq(__atomic_load_n(&s->layers[2].wait_min, __ATOMIC_RELAXED), 4);
	tkv__seq_put(s);
	tkv__test_pause(rt, false);
	pthread_join(th, NULL);
	cr_assert_eq(tw.rc, 0, "%s", tkv_last_error());
	cr_assert(tkv_ticket_done(rt, &tw.t));
	for (uint32_t l = 0; l < 4; l++)
		expect_read(rt, &c, 1, l, 0, 4);
	tkv_close(rt);
	free(k);
	free(v);
}

/* Calls that start while tkv_close runs get -EBADF and change nothing
 * (tierkv.h, tkv_close): the flag close raises first, set by hand so the
 * calls cannot race the free. */
Test(runtime, calls_while_closing_get_ebadf_and_change_nothing)
{
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	unsigned char *k, *v;
	pattern_rows(&c, 1, 0, 0, 4, &k, &v);
	tkv_ticket t;
	cr_assert_eq(tkv_store(rt, 1, 0, 0, 4, k, v, 0, &t), 0);
	cr_assert_eq(tkv_wait(rt, &t), 0);
	__atomic_store_n(&rt->closing, 1, __ATOMIC_SEQ_CST);
	cr_assert_eq(tkv_wait(rt, &t), -EBADF);
	cr_assert_eq(tkv_store(rt, 1, 0, 4, 4, k, v, 0, &t), -EBADF);
	cr_assert_eq(tkv_seq_open(rt, 2), -EBADF);
	cr_assert_eq(tkv_read(rt, 1, 0, 0, 4, k, v), -EBADF);
	cr_assert_eq(tkv_seq_close(rt, 1), -EBADF);
	__atomic_store_n(&rt->closing, 0, __ATOMIC_SEQ_CST);
	cr_assert_eq(tkv_seq_open(rt, 2), 0, "the refused open opened it");
	cr_assert_eq(tkv_store(rt, 1, 0, 4, 4, k, v, 0, &t), 0, "the refused store moved the position");
	cr_assert_eq(tkv_wait(rt, &t), 0);
	expect_read(rt, &c, 1, 0, 0, 4);
	tkv_close(rt);
	free(k);
	free(v);
}

/* A hot block that cannot be allocated when its first tokens are copied
 * (space is reserved at store time, so only the kernel running out of
 * memory does this): the store was accepted, so its ticket reports -ENOMEM
 * and the layer's lost tokens, a read or view of them returns no data, the
 * reservation comes back, and other layers are untouched. */
Test(runtime, a_block_that_cannot_be_allocated_is_reported_not_read)
{
	tkv_config c = small_config();
	c.hot_populate = TKV_HOT_POPULATE_ON_USE; /* the pools grow at the first store */
	/* one worker: an idle second one could steal the batch, meet the
	 * failure, give the batch back, and its owner get the block */
	c.n_workers = 1;
	tkv_runtime *rt = open_small(&c);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	const uint32_t n = c.block_tokens;
	unsigned char *k, *v;
	pattern_rows(&c, 1, 0, 0, n, &k, &v);
	tkv__arena_test_fail_allocs(1);
	tkv_ticket t;
	cr_assert_eq(tkv_store(rt, 1, 0, 0, n, k, v, 0, &t), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_wait(rt, &t), -ENOMEM);
	cr_assert(strstr(tkv_last_error(), "lost tokens"), "%s", tkv_last_error());
	memset(k, 0xa5, n * row_bytes(&c));
	cr_assert_eq(tkv_read(rt, 1, 0, 0, n, k, v), -ENOMEM);
	tkv_view_block blocks[1];
	tkv_view view = {.struct_size = sizeof(view), .blocks = blocks, .max_blocks = 1};
	cr_assert_eq(tkv_view_acquire(rt, 1, 0, 0, n, &view), -ENOMEM, "%s", tkv_last_error());
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_eq(st.hot_bytes_used, 0, "the lost block's reservation was not given back");
	cr_assert_eq(store_pattern(rt, &c, 1, 1, 0, n, 0), 0); /* another layer */
	expect_read(rt, &c, 1, 1, 0, n);
	cr_assert_eq(tkv_seq_close(rt, 1), 0, "%s", tkv_last_error());
	tkv_close(rt);
	free(k);
	free(v);
}

/* With streaming stores a worker fences once per run of copies and
 * completes the run's tickets after it; a run stops before it would pass
 * 1 MiB of K+V (worker.c, Groups), so a ticket waits behind at most that
 * much of other copies. 16 stores of 128 KiB queued behind a paused
 * worker are one group (GROUP_MAX) and complete in exactly two runs of
 * 8: one run would be a bound of 2 MiB, eight a bound of 256 KiB. */
Test(runtime, a_streaming_worker_completes_in_runs_of_at_most_1_MiB)
{
	tkv_config c = small_config();
	c.n_kv_heads = 8;
	c.head_dim = 128;
	c.n_workers = 1;
	enum { STORES = 16, N = 16 };
	const size_t rb = row_bytes(&c);
	cr_assert_eq(2 * N * rb, 128u << 10);
	tkv__open_opts opts = {.queue = TKV__QUEUE_RING, .hot_copy = TKV__HOT_COPY_STREAM};
	tkv_runtime *rt = NULL;
	cr_assert_eq(tkv__open_ex(&c, &opts, &rt), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	unsigned char *k, *v;
	pattern_rows(&c, 1, 0, 0, STORES * N, &k, &v);
	tkv__test_pause(rt, true);
	for (uint32_t b = 0; b < STORES; b++)
		cr_assert_eq(tkv_store(rt, 1, 0, b * N, N, k + b * N * rb, v + b * N * rb, 0, NULL),
			     0, "%s", tkv_last_error());
	uint64_t runs0 = __atomic_load_n(&rt->workers[0].runs, __ATOMIC_ACQUIRE);
	tkv__test_pause(rt, false);
	cr_assert_eq(tkv_seq_sync(rt, 1), 0, "%s", tkv_last_error());
	uint64_t runs = __atomic_load_n(&rt->workers[0].runs, __ATOMIC_ACQUIRE) - runs0;
	cr_assert_eq(runs, 2, "%llu runs for 16 stores of 128 KiB", (unsigned long long)runs);
	expect_read(rt, &c, 1, 0, 0, STORES * N);
	tkv_close(rt);
	free(k);
	free(v);
}

/* A waiter is woken when its layer reaches its position, not by every batch
 * copied before it (completion.c, wait_min): eight batches of one layer
 * queued behind paused workers, a waiter sleeping on the last one's
 * ticket; the layer's event count moves once while the worker copies all
 * eight. */
Test(runtime, a_sleeping_waiter_is_woken_at_its_position_not_by_every_batch)
{
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	rt->wait_spin_cpus = 0;
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	size_t rb = row_bytes(&c);
	enum { BATCHES = 8, N = 2 };
	unsigned char *k, *v;
	pattern_rows(&c, 1, 0, 0, BATCHES * N, &k, &v);
	tkv__test_pause(rt, true);
	ticket_waiter tw = {.rt = rt};
	for (uint32_t b = 0; b < BATCHES; b++)
		cr_assert_eq(tkv_store(rt, 1, 0, b * N, N, k + b * N * rb, v + b * N * rb, 0,
				       &tw.t),
			     0, "%s", tkv_last_error());
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, ticket_waiter_main, &tw), 0);
	cr_assert(sleeper_on(rt, 1, 0, BATCHES * N), "the waiter does not sleep on layer 0");
	tkv__seq *s = tkv__seq_get(&rt->seqs, 1);
	uint32_t before = __atomic_load_n(&s->layers[0].done_wake.seq, __ATOMIC_ACQUIRE);
	uint32_t signals0 = __atomic_load_n(&s->layers[0].signals, __ATOMIC_ACQUIRE);
	tkv__test_pause(rt, false);
	pthread_join(th, NULL);
	cr_assert_eq(tw.rc, 0, "%s", tkv_last_error());
	/* Counted where the worker signals: the event count itself moves
	 * once for any number of signals before the woken waiter runs
	 * (base/wake.h, S2), so it cannot tell one signal from eight. */
	uint32_t signals = __atomic_load_n(&s->layers[0].signals, __ATOMIC_ACQUIRE) - signals0;
	cr_assert_eq(signals, 1, "%u wake-ups for one waiter across %d batches", signals, BATCHES);
	/* and the sleeper was woken once: armed (odd), one signal made it
	 * even, and no early return re-armed it */
	cr_assert(before & 1, "the sleeping waiter armed the count");
	uint32_t moves = __atomic_load_n(&s->layers[0].done_wake.seq, __ATOMIC_ACQUIRE) - before;
	cr_assert_eq(moves, 1, "the event count moved %u times", moves);
	tkv__seq_put(s);
	expect_read(rt, &c, 1, 0, 0, BATCHES * N);
	tkv_close(rt);
	free(k);
	free(v);
}

/* The later layer a waiter sleeps on may have been stored, and copied,
 * before its own: the wait still lasts until its own layer is done. Layer
 * 2 is stored and completed first, then layer 0 with the workers paused:
 * the waiter of layer 0 finds layer 2 done and must keep waiting. */
Test(runtime, a_ticket_waiter_still_waits_for_its_own_layer)
{
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	rt->wait_spin_cpus = 0;
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(store_pattern(rt, &c, 1, 2, 0, 4, 0), 0); /* stored and waited */
	size_t rb = row_bytes(&c);
	unsigned char *k = malloc(4 * rb), *v = malloc(4 * rb);
	kvp_fill(k, 1, 0, 0, 4, rb, 0);
	kvp_fill(v, 1, 0, 0, 4, rb, 1);
	tkv__test_pause(rt, true);
	ticket_waiter tw = {.rt = rt};
	cr_assert_eq(tkv_store(rt, 1, 0, 0, 4, k, v, 0, &tw.t), 0);
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, ticket_waiter_main, &tw), 0);
	cr_assert(sleeper_on(rt, 1, 0, 4), "the waiter of layer 0 does not sleep on it");
	cr_assert_not(__atomic_load_n(&tw.returned, __ATOMIC_ACQUIRE),
		      "the wait returned before its layer was copied");
	cr_assert_not(tkv_ticket_done(rt, &tw.t));
	tkv__test_pause(rt, false);
	pthread_join(th, NULL);
	cr_assert_eq(tw.rc, 0, "%s", tkv_last_error());
	expect_read(rt, &c, 1, 0, 0, 4);
	tkv_close(rt);
	free(k);
	free(v);
}

/* A pin is best effort (tierkv.h): when the kernel refuses the worker's
 * CPU (EINVAL: it left the cpuset) or a sandbox refuses sched_setaffinity
 * (EPERM), the workers start unpinned, counted in pin_failures, and the
 * runtime works. Before issue 11's last session an EPERM failed the open. */
static void refused_pins_start_unpinned(int err)
{
	refuse_syscall(__NR_sched_setaffinity, -1, 0, err);
	cpu_set_t set;
	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	errno = 0;
	cr_assert_eq(sched_setaffinity(0, sizeof(set), &set), -1, "the filter is not in place");
	cr_assert_eq(errno, err);
	tkv_config c = small_config();
	cr_assert(c.pin_workers, "pinning is the default");
	tkv_runtime *rt = open_small(&c);
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_eq(st.n_workers, 2);
	cr_assert_eq(st.pin_failures, 2);
	for (uint32_t i = 0; i < st.n_workers; i++)
		cr_assert_eq(st.workers[i].cpu, -1, "worker %u claims a CPU", i);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	for (uint32_t l = 0; l < c.n_layers; l++)
		cr_assert_eq(store_pattern(rt, &c, 1, l, 0, 20, 0), 0);
	for (uint32_t l = 0; l < c.n_layers; l++)
		expect_read(rt, &c, 1, l, 0, 20);
	tkv_close(rt);
}

Test(runtime, cpu_the_kernel_refuses_starts_workers_unpinned)
{
	refused_pins_start_unpinned(EINVAL);
}

Test(runtime, pinning_a_sandbox_refuses_starts_workers_unpinned)
{
	refused_pins_start_unpinned(EPERM);
}

/* The library never prints (tierkv.h): an environment knob it ignores is
 * reported in tkv_stats.env_warning (each test is its own process, so the
 * knob is read fresh here), and a valid one leaves it NULL. */
Test(runtime, ignored_env_knob_is_in_stats)
{
	setenv("TKV_MAX_ISA", "sse9", 1);
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_not_null(st.env_warning);
	cr_assert(strstr(st.env_warning, "TKV_MAX_ISA=\"sse9\""), "%s", st.env_warning);
	tkv_close(rt);
}

Test(runtime, valid_env_knob_leaves_no_warning)
{
	setenv("TKV_MAX_ISA", "scalar", 1);
	tkv_config c = small_config();
	tkv_runtime *rt = open_small(&c);
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_null(st.env_warning);
	tkv_close(rt);
}

/* tkv_close cannot fail; a trace it could not finish writing is left in
 * tkv_last_error() (tierkv.h). The file is capped at its size after open
 * (RLIMIT_FSIZE, SIGXFSZ ignored), so every later write of it fails. */
Test(runtime, unwritable_trace_is_reported_by_close)
{
	char path[] = "/tmp/tierkv-trace-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	tkv_config c = small_config();
	c.trace_path = path;
	tkv_runtime *rt = open_small(&c);
	struct stat sb;
	cr_assert_eq(stat(path, &sb), 0);
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit lim = {(rlim_t)sb.st_size, (rlim_t)sb.st_size};
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	unsigned char k[64 * 4] = {0};
	for (uint32_t l = 0; l < c.n_layers; l++)
		cr_assert_eq(tkv_store(rt, 1, l, 0, 1, k, k, 0, NULL), 0);
	cr_assert_eq(tkv_seq_sync(rt, 1), 0);
	tkv__clear_error();
	tkv_close(rt);
	cr_assert(strstr(tkv_last_error(), "trace"), "close left no message for the lost trace: "
		  "'%s'", tkv_last_error());
	unlink(path);
}

/* Slabs of every pool, in blocks (0 in sanitizer builds, which allocate
 * blocks one by one). */
static uint64_t pooled_blocks(const tkv_runtime *rt)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < rt->hot.n_pools; i++)
		n += rt->hot.pools[i].n_slabs * rt->hot.pools[i].blocks_per_slab;
	return n;
}

/* The default populates every pool with its share of the hot tier at open
 * (each worker its own: runtime/worker.c, tiers/hot.c); on-use populates
 * nothing until a store needs a block. */
Test(runtime, hot_tier_populated_at_open_unless_on_use)
{
	tkv_config c = small_config();
	c.n_layers = 5; /* 3 + 2 layers over 2 pools: uneven shares */
	tkv_runtime *rt = open_small(&c);
	if (rt->hot.pools[0].pooled) {
		uint64_t cap = rt->hot.capacity;
		for (uint32_t i = 0; i < rt->hot.n_pools; i++) {
			const tkv__arena *a = &rt->hot.pools[i];
			uint64_t share = (cap * (i == 0 ? 3 : 2) + 4) / 5;
			cr_assert_geq(a->n_slabs * a->blocks_per_slab, share, "pool %u", i);
			cr_assert_lt((a->n_slabs - 1) * a->blocks_per_slab, share,
				     "pool %u holds a slab more than its share", i);
		}
	} else {
		cr_assert_eq(pooled_blocks(rt), 0);
	}
	tkv_close(rt);

	c.hot_populate = TKV_HOT_POPULATE_ON_USE;
	rt = open_small(&c);
	cr_assert_eq(pooled_blocks(rt), 0, "on-use: nothing populated at open");
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(store_pattern(rt, &c, 1, 0, 0, 16, 0), 0);
	if (rt->hot.pools[0].pooled)
		cr_assert_eq(pooled_blocks(rt), rt->hot.pools[0].blocks_per_slab,
			     "one store: one slab of the layer's pool");
	tkv_close(rt);
}

/* Populating a hot tier the address space cannot hold fails tkv_open with
 * -ENOMEM and a message naming hot_populate, and the same tier faulted on
 * use still opens. One worker: with two, the second one's start (its
 * ring, its thread) could itself meet the limit while the first one
 * populates. Sanitizer builds populate nothing: there the test stops after
 * its first open. */
Test(runtime, hot_tier_populate_failure_is_enomem)
{
	tkv_config c = small_config();
	c.n_workers = 1;
	struct rlimit lim;
	cr_assert_eq(getrlimit(RLIMIT_AS, &lim), 0);
	tkv_runtime *rt = open_small(&c); /* does this build pool (and populate)? */
	bool pooled = rt->hot.pools[0].pooled;
	tkv_close(rt);
	c.hot_bytes = 1ull << 30;
	if (!pooled)
		return; /* sanitizer build: nothing to populate, nothing to fail */
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	cr_assert(f && fscanf(f, "%lu", &pages) == 1);
	fclose(f);
	/* room for everything but most of the 1 GiB */
	lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256ull << 20);
	if (lim.rlim_max != RLIM_INFINITY && lim.rlim_cur > lim.rlim_max)
		lim.rlim_cur = lim.rlim_max; /* lower still: the 1 GiB fits even less */
	cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);
	rt = NULL;
	cr_assert_eq(tkv_open(&c, &rt), -ENOMEM);
	cr_assert_null(rt);
	cr_assert(strstr(tkv_last_error(), "hot_populate"), "message: %s", tkv_last_error());
	c.hot_populate = TKV_HOT_POPULATE_ON_USE; /* the same tier, faulted on use, opens */
	rt = open_small(&c);
	tkv_close(rt);
}
