/*
 * stealing.c - a worker with nothing of its own copies another worker's
 * queued batches, and their owner completes them (runtime/worker.c,
 * "Stealing"; runtime/desc_ring.h, DR5-DR7).
 *
 * What they pin down, for the ring and for the bench's mutex queue alike:
 * with worker 0 held (a test seam: it takes and steals nothing), worker 1
 * copies every batch queued for worker 0, yet none of them completes until
 * worker 0 runs again, and then every row reads back as stored: a thief
 * that completed, completed out of order, or wrote the wrong rows fails.
 * Batches of 1-5 tokens in 16-token blocks make the thief and the owner
 * write rows of the same blocks and allocate them at the same time
 * (prepare_blocks' CAS). With a cold tier, every block the thief filled is
 * evicted and read back intact: a full block is handed on at its owner's
 * completion, after every row of it is there.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "tests/kv_pattern.h"
#include "tierkv.h"

enum { TOKENS = 250, LAYERS = 2 };

static tkv_config small_config(void)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = LAYERS;
	c.n_kv_heads = 2;
	c.head_dim = 8;
	c.dtype = TKV_DTYPE_F32;
	c.block_tokens = 16;
	c.hot_bytes = 16ull << 20;
	c.n_workers = 2;
	return c;
}

static size_t row_bytes(const tkv_config *c)
{
	return (size_t)c->n_kv_heads * c->head_dim * tkv_dtype_size(c->dtype);
}

static tkv_stats stats(tkv_runtime *rt)
{
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	return st;
}

/* Waits (up to 10 s) until `want` batches were stolen. */
static void wait_stolen(tkv_runtime *rt, uint64_t want)
{
	for (int i = 0; i < 10000 && stats(rt).batches_stolen < want; i++)
		usleep(1000);
	tkv_stats st = stats(rt);
	cr_assert_eq(st.batches_stolen, want, "%llu of %llu batches stolen",
		     (unsigned long long)st.batches_stolen, (unsigned long long)want);
}

/* Stores TOKENS of layer 0 (worker 0's) of sequence 1 in batches of 1-5
 * tokens while the workers are paused; returns the batch count and the last
 * ticket. k and v hold the pattern of all TOKENS rows. */
static uint64_t queue_layer(tkv_runtime *rt, const tkv_config *c, uint32_t layer,
			    const unsigned char *k, const unsigned char *v, tkv_ticket *last)
{
	size_t rb = row_bytes(c);
	uint64_t batches = 0;
	for (uint32_t pos = 0, n = 1; pos < TOKENS; pos += n, n = n % 5 + 1, batches++) {
		if (n > TOKENS - pos)
			n = TOKENS - pos;
		cr_assert_eq(tkv_store(rt, 1, layer, pos, n, k + pos * rb, v + pos * rb, 0, last),
			     0, "%s", tkv_last_error());
	}
	return batches;
}

static uint64_t queue_for_worker0(tkv_runtime *rt, const tkv_config *c, const unsigned char *k,
				  const unsigned char *v, tkv_ticket *last)
{
	return queue_layer(rt, c, 0, k, v, last);
}

static void expect_rows(tkv_runtime *rt, const tkv_config *c, uint32_t layer)
{
	size_t rb = row_bytes(c);
	unsigned char *k = malloc(TOKENS * rb), *v = malloc(TOKENS * rb), *scratch = malloc(rb);
	cr_assert(k && v && scratch);
	cr_assert_eq(tkv_read(rt, 1, layer, 0, TOKENS, k, v), 0, "%s", tkv_last_error());
	cr_assert_eq(kvp_check(k, 1, layer, 0, TOKENS, rb, 0, scratch), -1, "layer %u: K rows differ",
		     layer);
	cr_assert_eq(kvp_check(v, 1, layer, 0, TOKENS, rb, 1, scratch), -1, "layer %u: V rows differ",
		     layer);
	free(k);
	free(v);
	free(scratch);
}

static void thief_copies_owner_completes(tkv__queue_kind queue)
{
	tkv_config c = small_config();
	tkv__open_opts opts = {.queue = queue};
	tkv_runtime *rt;
	cr_assert_eq(tkv__open_ex(&c, &opts, &rt), 0, "%s", tkv_last_error());
	size_t rb = row_bytes(&c);
	unsigned char *k = malloc(TOKENS * rb), *v = malloc(TOKENS * rb);
	cr_assert(k && v);
	kvp_fill(k, 1, 0, 0, TOKENS, rb, 0);
	kvp_fill(v, 1, 0, 0, TOKENS, rb, 1);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);

	tkv__test_pause(rt, true);
	tkv_ticket last, first = {1, 1, 0, 0};
	uint64_t batches = queue_for_worker0(rt, &c, k, v, &last);
	tkv__test_hold(rt, 0, true);
	tkv__test_pause(rt, false);
	wait_stolen(rt, batches); /* worker 1 copied all of them */
	tkv_stats st = stats(rt);
	cr_assert_eq(st.workers[1].batches, batches);
	cr_assert_eq(st.workers[0].batches, 0);
	cr_assert_not(tkv_ticket_done(rt, &first), "a thief completed a batch");
	usleep(20000); /* and still none after a while */
	cr_assert_not(tkv_ticket_done(rt, &first), "a thief completed a batch");

	tkv__test_hold(rt, 0, false);
	cr_assert_eq(tkv_wait(rt, &last), 0, "%s", tkv_last_error());
	expect_rows(rt, &c, 0);
	st = stats(rt);
	cr_assert_eq(st.workers[0].batches, 0, "the owner copied nothing again");
	cr_assert_eq(st.hot_blocks_used, (TOKENS + 15) / 16, "one block per 16 tokens, no leak");
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	tkv_close(rt);
	free(k);
	free(v);
}

Test(stealing, ring_thief_copies_owner_completes, .timeout = 60)
{
	thief_copies_owner_completes(TKV__QUEUE_RING);
}

Test(stealing, mutex_queue_thief_copies_owner_completes, .timeout = 60)
{
	thief_copies_owner_completes(TKV__QUEUE_MUTEX);
}

/* The blocks a thief filled go to the evictor only once their owner
 * completed them: evicted with every row and read back intact. */
Test(stealing, stolen_blocks_are_evicted_whole, .timeout = 60)
{
	char dir[] = "/tmp/tierkv-steal-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	tkv_config c = small_config();
	c.cold_dir = dir;
	c.cold_bytes = 64ull << 20;
	/* room for every block queued while paused (a store waits for room
	 * the evictor cannot make while no block is complete), and the
	 * evictor busy as soon as the owner completes them */
	c.hot_bytes = 2 * 20 * 2 * 16 * row_bytes(&c);
	c.hot_high_pct = 40;
	c.hot_low_pct = 20;
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	size_t rb = row_bytes(&c);
	unsigned char *k[LAYERS], *v[LAYERS];
	for (uint32_t l = 0; l < LAYERS; l++) {
		k[l] = malloc(TOKENS * rb);
		v[l] = malloc(TOKENS * rb);
		cr_assert(k[l] && v[l]);
		kvp_fill(k[l], 1, l, 0, TOKENS, rb, 0);
		kvp_fill(v[l], 1, l, 0, TOKENS, rb, 1);
	}
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	tkv__test_pause(rt, true);
	tkv_ticket last, own;
	/* worker 1 copies its own layer 1, then steals all of layer 0 */
	queue_layer(rt, &c, 1, k[1], v[1], &own);
	uint64_t batches = queue_for_worker0(rt, &c, k[0], v[0], &last);
	tkv__test_hold(rt, 0, true);
	tkv__test_pause(rt, false);
	wait_stolen(rt, batches);
	usleep(20000);
	cr_assert_eq(stats(rt).evicted_blocks, 0, "blocks evicted before their owner completed them");
	cr_assert(tkv_ticket_done(rt, &own));
	tkv__test_hold(rt, 0, false);
	cr_assert_eq(tkv_wait(rt, &last), 0, "%s", tkv_last_error());
	for (int i = 0; i < 10000 && stats(rt).evicted_blocks == 0; i++)
		usleep(1000);
	tkv_stats st = stats(rt);
	cr_assert_gt(st.evicted_blocks, 0, "the evictor wrote none of the full blocks");
	for (uint32_t l = 0; l < LAYERS; l++)
		expect_rows(rt, &c, l); /* promotes the evicted ones, checks every row */
	st = stats(rt);
	cr_assert_gt(st.promoted_blocks, 0);
	cr_assert_eq(st.corrupt_records, 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	tkv_close(rt);
	for (uint32_t l = 0; l < LAYERS; l++) {
		free(k[l]);
		free(v[l]);
	}
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
