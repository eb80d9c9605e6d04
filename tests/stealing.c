/*
 * stealing.c - a worker with nothing of its own copies another worker's
 * queued batches, and their owner completes them (runtime/worker.c,
 * "Stealing"; runtime/desc_ring.h, DR5-DR7).
 *
 * What they pin down, for the ring and for the bench's mutex queue alike:
 * with worker 0 held (a test seam: it takes and steals nothing), worker 1
 * copies the batches queued for worker 0, yet none of them completes until
 * worker 0 runs again, and then every row reads back as stored: a thief
 * that completed, completed out of order, or wrote the wrong rows fails.
 * Batches of 1-5 tokens in 16-token blocks make the thief and the owner
 * write rows of the same blocks; a thief allocates only the blocks that
 * start in its batches and gives back the batches whose blocks are not
 * there. Allocation failures with a thief in play: each reservation comes
 * back once. With a cold tier, every block the thief filled is evicted
 * and read back intact: a full block is handed on at its owner's
 * completion, after every row of it is there. A thief's group stops at
 * 256 KiB and at 16 batches (steal_groups counts them).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "tiers/hot_arena.h" /* tkv__arena_test_fail_allocs */
#include "tests/kv_pattern.h"
#include "tests/two_workers.h"
#include "tierkv.h"

/* 650 tokens: 41 batches of 16, 9 more than a thief leaves its owner */
enum { TOKENS = 650, LAYERS = 2 }; /* LAYERS: two_workers.h's n_layers */

/* Waits (up to 10 s) until `want` batches were stolen. */
static void wait_stolen(tkv_runtime *rt, uint64_t want)
{
	for (int i = 0; i < 10000 && stats(rt).batches_stolen < want; i++)
		usleep(1000);
	tkv_stats st = stats(rt);
	cr_assert_eq(st.batches_stolen, want, "%llu of %llu batches stolen",
		     (unsigned long long)st.batches_stolen, (unsigned long long)want);
}

/* Waits until the thief has stolen something and then nothing more for
 * 100 ms (up to 10 s); returns how many it stole. */
static uint64_t wait_thief_done(tkv_runtime *rt)
{
	uint64_t last = 0;
	for (int i = 0, still = 0; i < 10000 && (last == 0 || still < 100); i++) {
		usleep(1000);
		uint64_t now = stats(rt).batches_stolen;
		still = now == last ? still + 1 : 0;
		last = now;
	}
	cr_assert_gt(last, 0, "nothing stolen");
	return last;
}

/* Stores TOKENS of (sequence 1, layer) while the workers are paused, in
 * batches of `batch` tokens (of block_tokens: each starts its own block),
 * or with batch 0 of 1-5 tokens in turn (several batches share a 16-token
 * block); returns the batch count and the last ticket. k and v hold the
 * pattern of all TOKENS rows. */
static uint64_t queue_layer(tkv_runtime *rt, const tkv_config *c, uint32_t layer, uint32_t batch,
			    const unsigned char *k, const unsigned char *v, tkv_ticket *last)
{
	size_t rb = row_bytes(c);
	uint64_t batches = 0;
	for (uint32_t pos = 0, n = batch ? batch : 1; pos < TOKENS;
	     pos += n, n = batch ? batch : n % 5 + 1, batches++) {
		if (n > TOKENS - pos)
			n = TOKENS - pos;
		cr_assert_eq(tkv_store(rt, 1, layer, pos, n, k + pos * rb, v + pos * rb, 0, last),
			     0, "%s", tkv_last_error());
	}
	return batches;
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

/* Pattern rows of TOKENS for (sequence 1, layer); the caller frees them. */
static void pattern(const tkv_config *c, uint32_t layer, unsigned char **k, unsigned char **v)
{
	size_t rb = row_bytes(c);
	*k = malloc(TOKENS * rb);
	*v = malloc(TOKENS * rb);
	cr_assert(*k && *v);
	kvp_fill(*k, 1, layer, 0, TOKENS, rb, 0);
	kvp_fill(*v, 1, layer, 0, TOKENS, rb, 1);
}

/* Worker 0 held, worker 1 steals layer 0's batches past the owner's next
 * TKV__STEAL_LEAVE: with 16-token batches all of those; with 1-5-token
 * ones those whose blocks start in them or are there already (the others
 * go back to the owner). None completes
 * before the owner runs again; then every row is as stored. */
static void thief_copies_owner_completes(tkv__queue_kind queue, bool mixed)
{
	tkv_config c = small_config();
	tkv__open_opts opts = {.queue = queue};
	tkv_runtime *rt;
	cr_assert_eq(tkv__open_ex(&c, &opts, &rt), 0, "%s", tkv_last_error());
	unsigned char *k, *v;
	pattern(&c, 0, &k, &v);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);

	tkv__test_pause(rt, true);
	tkv_ticket last, first = {1, 1, 0, 0};
	uint64_t batches = queue_layer(rt, &c, 0, mixed ? 0 : 16, k, v, &last);
	tkv__test_hold(rt, 0, true);
	tkv__test_pause(rt, false);
	uint64_t stolen = batches - TKV__STEAL_LEAVE; /* the owner's next ones stay */
	if (mixed)
		stolen = wait_thief_done(rt);
	else
		wait_stolen(rt, stolen);
	tkv_stats st = stats(rt);
	cr_assert_eq(st.workers[1].batches, stolen);
	cr_assert_eq(st.workers[0].batches, 0);
	cr_assert_not(tkv_ticket_done(rt, &first), "a thief completed a batch");
	usleep(20000); /* and still none after a while */
	cr_assert_not(tkv_ticket_done(rt, &first), "a thief completed a batch");

	tkv__test_hold(rt, 0, false);
	cr_assert_eq(tkv_wait(rt, &last), 0, "%s", tkv_last_error());
	expect_rows(rt, &c, 0);
	st = stats(rt);
	cr_assert_eq(st.batches_stolen, stolen);
	cr_assert_eq(st.workers[0].batches, batches - stolen, "the owner copied only the rest");
	cr_assert_eq(st.hot_blocks_used, (TOKENS + 15) / 16, "one block per 16 tokens, no leak");
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	cr_assert_eq(stats(rt).hot_bytes_used, 0);
	tkv_close(rt);
	free(k);
	free(v);
}

Test(stealing, ring_thief_copies_owner_completes, .timeout = 60)
{
	thief_copies_owner_completes(TKV__QUEUE_RING, false);
}

Test(stealing, mutex_queue_thief_copies_owner_completes, .timeout = 60)
{
	thief_copies_owner_completes(TKV__QUEUE_MUTEX, false);
}

Test(stealing, ring_batches_sharing_blocks, .timeout = 60)
{
	thief_copies_owner_completes(TKV__QUEUE_RING, true);
}

Test(stealing, mutex_queue_batches_sharing_blocks, .timeout = 60)
{
	thief_copies_owner_completes(TKV__QUEUE_MUTEX, true);
}

/* Opens c's runtime, sequence 1 and the pattern of layer 0, workers
 * paused. */
static tkv_runtime *open_paused(const tkv_config *c, unsigned char **k, unsigned char **v)
{
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(c, &rt), 0, "%s", tkv_last_error());
	pattern(c, 0, k, v);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	tkv__test_pause(rt, true);
	return rt;
}

/* Queues layer 0 of c in batches of `batch` tokens with worker 0 held and
 * waits until worker 1 has stolen every batch past the owner's next
 * TKV__STEAL_LEAVE (*stolen); then lets worker 0 complete them and checks
 * every row. Returns the groups the thief took them in. */
static uint64_t steal_groups_for(tkv_config c, uint32_t batch, uint64_t *stolen)
{
	unsigned char *k, *v;
	tkv_runtime *rt = open_paused(&c, &k, &v);
	tkv_ticket last;
	*stolen = queue_layer(rt, &c, 0, batch, k, v, &last) - TKV__STEAL_LEAVE;
	tkv__test_hold(rt, 0, true);
	tkv__test_pause(rt, false);
	wait_stolen(rt, *stolen);
	uint64_t groups = stats(rt).steal_groups;
	tkv__test_hold(rt, 0, false);
	cr_assert_eq(tkv_wait(rt, &last), 0, "%s", tkv_last_error());
	expect_rows(rt, &c, 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	tkv_close(rt);
	free(k);
	free(v);
	return groups;
}

/* A thief's group stops at 256 KiB of K+V (worker.c, STEAL_GROUP_BYTES):
 * with rows of 4 KiB a 16-token batch is 128 KiB, so a group holds at most
 * 3 batches (the one that passes 256 KiB ends it; the queue's last batch
 * is a short one), and the 9 batches past the owner's next 32 come in at
 * least 3 groups, where a thief capped only at 16 batches takes them in
 * one. Every row still reads back as stored. */
Test(stealing, a_thiefs_group_stops_at_256_KiB, .timeout = 60)
{
	tkv_config c = small_config();
	c.n_kv_heads = 8;
	c.head_dim = 128;
	c.hot_bytes = 64ull << 20;
	cr_assert_eq(2 * 16 * row_bytes(&c), 128u << 10);
	uint64_t stolen, groups = steal_groups_for(c, 16, &stolen);
	cr_assert_eq(stolen, 9);
	cr_assert_geq(groups, 3, "%llu batches of 128 KiB stolen in %llu groups",
		      (unsigned long long)stolen, (unsigned long long)groups);
	cr_assert_leq(groups, stolen);
}

/* A thief's group stops at 16 batches (worker.c, GROUP_MAX), however
 * small they are: with one-token blocks and batches of 64 B rows, the 618
 * batches past the owner's next 32 are 77 KiB in all, under the 256 KiB
 * cap, so only the batch cap splits them, into at least 39 groups (with
 * a cap of 32 batches there would be about 20). */
Test(stealing, a_thiefs_group_stops_at_16_batches, .timeout = 60)
{
	tkv_config c = small_config();
	c.block_tokens = 1;
	cr_assert_lt((TOKENS - TKV__STEAL_LEAVE) * 2 * row_bytes(&c), 256u << 10);
	uint64_t stolen, groups = steal_groups_for(c, 1, &stolen);
	cr_assert_eq(stolen, TOKENS - TKV__STEAL_LEAVE);
	cr_assert_geq(groups, (stolen + 15) / 16, "%llu batches stolen in %llu groups",
		      (unsigned long long)stolen, (unsigned long long)groups);
}

/* A short queue is left to its owner (TKV__STEAL_LEAVE): an engine that
 * waits for each step's tickets would otherwise wait for the thief. */
Test(stealing, a_short_queue_is_not_stolen_from, .timeout = 60)
{
	tkv_config c = small_config();
	unsigned char *k, *v;
	tkv_runtime *rt = open_paused(&c, &k, &v);
	tkv_ticket t;
	for (uint32_t pos = 0; pos < 8 * 16; pos += 16)
		cr_assert_eq(tkv_store(rt, 1, 0, pos, 16, k, v, 0, &t), 0, "%s", tkv_last_error());
	tkv__test_hold(rt, 0, true);
	tkv__test_pause(rt, false);
	usleep(50000);
	cr_assert_eq(stats(rt).batches_stolen, 0);
	tkv__test_hold(rt, 0, false);
	cr_assert_eq(tkv_wait(rt, &t), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	tkv_close(rt);
	free(k);
	free(v);
}

/* Allocation failures while a thief takes part. Sequences 2-5 have block
 * 0 of layer 0 already; 60 one-token batches into those (no allocation)
 * make the queue long enough to steal from past the owner's next 32, then batches [0,8) and [8,40) of
 * sequence 1, all for worker 0, which is held: the thief takes them
 * newest first. With one failing allocation the thief cannot have block 1
 * for [8,40) and gives it back; its owner copies it later, and everything
 * reads back. With four, both go back (two failures) and the owner's
 * allocations for both fail too: the layer reports -ENOMEM and every
 * reservation comes back exactly once (a thief that gave back the
 * reservation of a block an earlier batch made took the used count below
 * zero). */
static void failures_with_a_thief(uint32_t failures)
{
	tkv_config c = small_config();
	c.hot_populate = TKV_HOT_POPULATE_ON_USE;
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	size_t rb = row_bytes(&c);
	unsigned char *k, *v;
	pattern(&c, 0, &k, &v);
	tkv_ticket t;
	for (uint64_t seq = 1; seq <= 5; seq++)
		cr_assert_eq(tkv_seq_open(rt, seq), 0);
	for (uint64_t seq = 2; seq <= 5; seq++) {
		cr_assert_eq(tkv_store(rt, seq, 0, 0, 1, k, v, 0, &t), 0, "%s", tkv_last_error());
		cr_assert_eq(tkv_wait(rt, &t), 0);
	}
	/* A waiter may have copied those itself (its owner asleep); their
	 * slots stay queued until the owner takes them out, and would count
	 * among the owner's next 32 below. */
	tkv__worker *w0 = tkv__worker_of(rt, 0);
	for (int i = 0; i < 10000 && tkv__dring_size(&w0->ring) != 0; i++)
		usleep(1000);
	cr_assert_eq(tkv__dring_size(&w0->ring), 0);
	tkv__test_pause(rt, true);
	for (uint64_t seq = 2; seq <= 5; seq++)
		for (uint32_t pos = 1; pos < 16; pos++) /* into block 0: nothing to allocate */
			cr_assert_eq(tkv_store(rt, seq, 0, pos, 1, k, v, 0, &t), 0, "%s",
				     tkv_last_error());
	cr_assert_eq(tkv_store(rt, 1, 0, 0, 8, k, v, 0, &t), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_store(rt, 1, 0, 8, 32, k + 8 * rb, v + 8 * rb, 0, &t), 0, "%s",
		     tkv_last_error());
	tkv__test_hold(rt, 0, true);
	tkv__arena_test_fail_allocs(failures);
	tkv__test_pause(rt, false);
	usleep(100000); /* the thief has had its go */
	tkv__test_hold(rt, 0, false);
	int rc = tkv_wait(rt, &t);
	for (uint64_t seq = 2; seq <= 5; seq++)
		cr_assert_eq(tkv_seq_sync(rt, seq), 0);
	tkv_stats st = stats(rt);
	if (failures == 1) {
		cr_assert_eq(rc, 0, "%s", tkv_last_error());
		/* 62 queued, the owner's next 32 left: [8,40) given back, 29 */
		cr_assert_eq(st.batches_stolen, 29, "all but [8,40) stolen, got %llu",
			     (unsigned long long)st.batches_stolen);
		cr_assert_eq(st.hot_blocks_used, 7);
		unsigned char *gk = malloc(40 * rb), *gv = malloc(40 * rb), *scratch = malloc(rb);
		cr_assert_eq(tkv_read(rt, 1, 0, 0, 40, gk, gv), 0, "%s", tkv_last_error());
		cr_assert_eq(kvp_check(gk, 1, 0, 0, 40, rb, 0, scratch), -1);
		cr_assert_eq(kvp_check(gv, 1, 0, 0, 40, rb, 1, scratch), -1);
		free(gk);
		free(gv);
		free(scratch);
	} else {
		cr_assert_eq(rc, -ENOMEM);
		cr_assert_eq(st.batches_stolen, 28, "only the one-token batches stolen, got %llu",
			     (unsigned long long)st.batches_stolen);
		cr_assert_eq(st.hot_blocks_used, 4, "%llu blocks used, sequences 2-5 have one each",
			     (unsigned long long)st.hot_blocks_used);
	}
	for (uint64_t seq = 1; seq <= 5; seq++)
		cr_assert_eq(tkv_seq_close(rt, seq), 0);
	st = stats(rt);
	cr_assert_eq(st.hot_bytes_used, 0, "used %llu bytes after close",
		     (unsigned long long)st.hot_bytes_used);
	tkv_close(rt);
	tkv__arena_test_fail_allocs(0);
	free(k);
	free(v);
}

Test(stealing, a_block_the_thief_cannot_have_goes_back_to_its_owner, .timeout = 60)
{
	failures_with_a_thief(1);
}

Test(stealing, failures_are_met_by_the_owner_and_give_back_each_reservation_once,
     .timeout = 60)
{
	failures_with_a_thief(4);
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
	c.hot_bytes = 2 * 60 * 2 * 16 * row_bytes(&c);
	c.hot_high_pct = 60;
	c.hot_low_pct = 30;
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	unsigned char *k[LAYERS], *v[LAYERS];
	for (uint32_t l = 0; l < LAYERS; l++)
		pattern(&c, l, &k[l], &v[l]);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	tkv__test_pause(rt, true);
	tkv_ticket last, own;
	/* worker 1 copies its own layer 1, then steals all of layer 0 */
	queue_layer(rt, &c, 1, 0, k[1], v[1], &own);
	uint64_t batches = queue_layer(rt, &c, 0, 16, k[0], v[0], &last);
	tkv__test_hold(rt, 0, true);
	tkv__test_pause(rt, false);
	wait_stolen(rt, batches - TKV__STEAL_LEAVE);
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
