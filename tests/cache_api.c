/*
 * cache_api.c - the prefix cache through the public API, one property per
 * test (issue 9): salt isolation; model_id namespaces on one cold directory
 * and hits from the cold tier after a restart;
 * tkv_cache_lookup counting without attaching; tkv_cache_drop dropping only
 * unreferenced blocks; a RAM-only hot tier full of unreferenced cache blocks
 * still taking stores; a full cold tier dropping unreferenced cache records
 * while a live sequence keeps every byte.
 *
 * Every read-back is byte-exact against tests/cache_helpers.h: KV bytes are
 * a function of the token prefix, so a wrong hit reads back as wrong bytes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/cache_small.h"
#include "tierkv.h"

/* ---- salt --------------------------------------------------------------- */

Test(cache_api, salt_isolates_tenants)
{
	tkv_config c = cache_config("salt-model", 64);
	tkv_runtime *rt = open_rt(&c);
	const size_t n = 4 * BT + 5;
	uint32_t *t = tokens_from(1000, n);
	tkv_seq_opts a = {sizeof(a), "tenant-a", 8, 0}, b = {sizeof(b), "tenant-b", 8, 0};
	ckv_expect ea, eb, ea2, en;

	cr_assert_eq(run_prompt(rt, 1, t, n, &a, 'a', &ea), 0);
	cr_assert_eq(ckv_check_all(rt, 1, &ea, BT), 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);

	tkv_cache_match m = {.struct_size = sizeof(m)};
	cr_assert_eq(tkv_cache_lookup(rt, t, n, &b, &m), 0);
	cr_assert_eq(m.tokens, 0, "another salt matched %llu tokens", (unsigned long long)m.tokens);
	cr_assert_eq(tkv_cache_lookup(rt, t, n, NULL, &m), 0);
	cr_assert_eq(m.tokens, 0, "no salt matched a salted prefix");
	cr_assert_eq(tkv_cache_lookup(rt, t, n, &a, &m), 0);
	cr_assert_eq(m.tokens, 4 * BT);

	/* another tenant, same tokens: nothing attached, its own bytes */
	cr_assert_eq(run_prompt(rt, 2, t, n, &b, 'b', &eb), 0);
	cr_assert_eq(ckv_check_all(rt, 2, &eb, BT), 0);
	/* no salt at all is a tenant of its own */
	cr_assert_eq(run_prompt(rt, 3, t, n, NULL, 'n', &en), 0);
	cr_assert_eq(ckv_check_all(rt, 3, &en, BT), 0);
	/* the same tenant again: every full block attached, tenant a's bytes */
	cr_assert_eq(run_prompt(rt, 4, t, n, &a, 'a', &ea2), 4 * BT);
	cr_assert_eq(ckv_check_all(rt, 4, &ea, BT), 0);

	tkv_stats st = ckv_stats(rt);
	cr_assert_eq(st.cache_published, 3 * 4, "4 full blocks for each of 3 tenants");
	cr_assert_eq(st.cache_deduplicated, 0);
	for (uint64_t s = 2; s <= 4; s++)
		cr_assert_eq(tkv_seq_close(rt, s), 0);
	ckv_expect_free(&ea);
	ckv_expect_free(&eb);
	ckv_expect_free(&ea2);
	ckv_expect_free(&en);
	free(t);
	tkv_close(rt);
}

/* ---- namespaces and restart --------------------------------------------- */

Test(cache_api, model_id_namespaces_one_cold_dir_and_restart, .init = make_dir,
     .fini = remove_dir)
{
	const size_t n = 4 * BT;
	uint32_t *t = tokens_from(7000, n);
	ckv_expect ea, eb, ea2;
	tkv_cache_match m = {.struct_size = sizeof(m)};

	/* model A computes the prompt; its cache blocks go cold, then close */
	tkv_config ca = cold_cache_config("model-A");
	tkv_runtime *rt = open_rt(&ca);
	cr_assert_eq(run_prompt(rt, 1, t, n, NULL, 'A', &ea), 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	wait_all_cold(rt, 4);
	tkv_close(rt);

	/* model B on the same directory: the directory remembers model A
	 * (cache-model), so B drops A's records (counted) and computes its own */
	tkv_config cb = cold_cache_config("model-B");
	rt = open_rt(&cb);
	tkv_stats st = ckv_stats(rt);
	cr_assert_eq(st.cache_recovered, 0);
	cr_assert_eq(st.cache_dropped_other, 4);
	cr_assert_eq(tkv_cache_lookup(rt, t, n, NULL, &m), 0);
	cr_assert_eq(m.tokens, 0, "model B matched model A's KV");
	cr_assert_eq(run_prompt(rt, 1, t, n, NULL, 'B', &eb), 0);
	cr_assert_eq(ckv_check_all(rt, 1, &eb, BT), 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	wait_all_cold(rt, 4); /* B's own 4: A's were dropped */
	st = ckv_stats(rt);
	cr_assert_eq(st.cache_hit_blocks_hot + st.cache_hit_blocks_cold, 0);
	tkv_close(rt);

	/* model B restarted: its own records come back; it hits all of them,
	 * from the cold tier, byte-identical to what it stored */
	rt = open_rt(&cb);
	st = ckv_stats(rt);
	cr_assert_eq(st.cache_recovered, 4);
	cr_assert_eq(st.cache_entries_cold, 4);
	cr_assert_eq(tkv_cache_lookup(rt, t, n, NULL, &m), 0);
	cr_assert_eq(m.tokens, n);
	cr_assert_eq(m.cold_blocks, 4);
	cr_assert_eq(m.hot_blocks, 0);
	cr_assert_eq(run_prompt(rt, 1, t, n, NULL, 'B', &ea2), n);
	st = ckv_stats(rt);
	cr_assert_eq(st.cache_hit_blocks_cold, 8, "4 by the lookup, 4 by the open");
	cr_assert_eq(st.cache_hit_blocks_hot, 0);
	cr_assert_eq(ckv_check_all(rt, 1, &eb, BT), 0, "model B's bytes after the restart");
	cr_assert_gt(ckv_stats(rt).promoted_blocks, 0);
	cr_assert_eq(ckv_stats(rt).corrupt_records, 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	tkv_close(rt);

	/* model A again: B's records go; A's were dropped when B came */
	rt = open_rt(&ca);
	cr_assert_eq(ckv_stats(rt).cache_recovered, 0);
	cr_assert_eq(tkv_cache_lookup(rt, t, n, NULL, &m), 0);
	cr_assert_eq(m.tokens, 0, "model A matched model B's KV");
	tkv_close(rt);
	ckv_expect_free(&ea);
	ckv_expect_free(&eb);
	ckv_expect_free(&ea2);
	free(t);
}

/* ---- lookup ------------------------------------------------------------- */

Test(cache_api, lookup_counts_without_attaching, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = cold_cache_config("lookup");
	tkv_runtime *rt = open_rt(&c);
	const size_t n = 5 * BT;
	uint32_t *t = tokens_from(42, n + 3 * BT);
	ckv_expect e;
	tkv_cache_match m = {.struct_size = sizeof(m)};
	cr_assert_eq(tkv_cache_lookup(rt, t, n, NULL, &m), 0);
	cr_assert_eq(m.tokens + m.hot_blocks + m.cold_blocks, 0, "empty cache");

	cr_assert_eq(run_prompt(rt, 1, t, n, NULL, 0, &e), 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	wait_all_cold(rt, 5);
	/* bring blocks 0 and 1 back to RAM through a reader holding them */
	ckv_expect e2;
	cr_assert_eq(run_prompt(rt, 2, t, 2 * BT, NULL, 0, &e2), 2 * BT);
	cr_assert_eq(ckv_check_all(rt, 2, &e2, BT), 0);
	/* and keep them there: views of both layers pin blocks 0 and 1 */
	tkv_view_block vb[2][4];
	tkv_view vw[2];
	for (uint32_t l = 0; l < LAYERS; l++) {
		vw[l] = (tkv_view){.struct_size = sizeof(vw[l]), .blocks = vb[l], .max_blocks = 4};
		cr_assert_eq(tkv_view_acquire(rt, 2, l, 0, 2 * BT, &vw[l]), 0, "%s", tkv_last_error());
	}

	tkv_stats before = ckv_stats(rt);
	/* the prompt plus 3 more blocks and a partial one: the 5 cached ones */
	cr_assert_eq(tkv_cache_lookup(rt, t, n + 3 * BT - 1, NULL, &m), 0);
	tkv_stats after = ckv_stats(rt);
	cr_assert_eq(m.tokens, n);
	cr_assert_eq(m.hot_blocks, 2, "blocks 0 and 1, pinned in RAM");
	cr_assert_eq(m.cold_blocks, 3, "blocks 2..4, only on SSD");
	cr_assert_eq(after.open_sequences, before.open_sequences);
	cr_assert_eq(after.pinned_blocks, before.pinned_blocks);
	cr_assert_eq(after.hot_blocks_used, before.hot_blocks_used);
	cr_assert_eq(after.promoted_blocks, before.promoted_blocks, "a lookup reads nothing");
	cr_assert_eq(after.cache_lookups, before.cache_lookups + 1);
	cr_assert_eq(after.cache_lookup_blocks, before.cache_lookup_blocks + 7);
	cr_assert_eq(after.cache_hit_blocks_hot + after.cache_hit_blocks_cold,
		     before.cache_hit_blocks_hot + before.cache_hit_blocks_cold + 5);
	for (uint32_t l = 0; l < LAYERS; l++)
		cr_assert_eq(tkv_view_release(rt, &vw[l]), 0);
	/* nothing was referenced by the lookup: only seq 2's 2 blocks are held */
	cr_assert_eq(tkv_cache_drop(rt), 3);
	cr_assert_eq(tkv_cache_lookup(rt, t, n, NULL, &m), 0);
	cr_assert_eq(m.tokens, 2 * BT);
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	/* blocks 0 and 1 may have come back to RAM whole and given up their
	 * records at the close (tiers/promote.c); with these watermarks the
	 * evictor writes them again, and a block it holds for that write is
	 * not dropped: wait */
	wait_all_cold(rt, 2);
	cr_assert_eq(tkv_cache_drop(rt), 2);
	cr_assert_eq(tkv_cache_lookup(rt, t, n, NULL, &m), 0);
	cr_assert_eq(m.tokens, 0);
	tkv_stats st = ckv_stats(rt);
	cr_assert_eq(st.cache_entries_hot + st.cache_entries_cold, 0);
	cr_assert_eq(st.cache_dropped_other, 5);
	tkv_close(rt);
	ckv_expect_free(&e);
	ckv_expect_free(&e2);
	free(t);
}

Test(cache_api, lookup_rejects_bad_arguments)
{
	tkv_config c = cache_config(NULL, 16);
	tkv_runtime *rt = open_rt(&c);
	uint32_t t[BT] = {0};
	tkv_cache_match m = {.struct_size = sizeof(m)};
	cr_assert_eq(tkv_cache_lookup(rt, t, BT, NULL, &m), -EINVAL, "no model_id, no cache");
	cr_assert_eq(tkv_cache_drop(rt), 0);
	tkv_close(rt);
	c = cache_config("m", 16);
	rt = open_rt(&c);
	cr_assert_eq(tkv_cache_lookup(rt, NULL, BT, NULL, &m), -EINVAL);
	cr_assert_eq(tkv_cache_lookup(rt, t, BT, NULL, NULL), -EINVAL);
	tkv_seq_opts bad = {sizeof(bad), NULL, 4, 0};
	cr_assert_eq(tkv_cache_lookup(rt, t, BT, &bad, &m), -EINVAL);
	cr_assert_eq(tkv_seq_open_tokens(rt, UINT64_MAX, t, BT, NULL, NULL), -EINVAL,
		     "the cache's reserved id");
	tkv_close(rt);
}

/* ---- drop --------------------------------------------------------------- */

Test(cache_api, drop_spares_blocks_live_sequences_hold)
{
	tkv_config c = cache_config("drop", 64);
	tkv_runtime *rt = open_rt(&c);
	const size_t n = 4 * BT, m2 = 6 * BT + 9;
	uint32_t *p = tokens_from(10, m2), *q = tokens_from(90000, 3 * BT);
	ckv_expect ep, eq, elive;
	/* p's 4 blocks cached, then held by a live sequence that extends p */
	cr_assert_eq(run_prompt(rt, 1, p, n, NULL, 0, &ep), 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	cr_assert_eq(run_prompt(rt, 2, p, m2, NULL, 0, &elive), n);
	/* q's 3 blocks cached, unreferenced */
	cr_assert_eq(run_prompt(rt, 3, q, 3 * BT, NULL, 0, &eq), 0);
	cr_assert_eq(tkv_seq_close(rt, 3), 0);
	uint64_t blocks_before, tok;
	cr_assert_eq(tkv_seq_info(rt, 2, &blocks_before, &tok), 0);

	cr_assert_eq(tkv_cache_drop(rt), 3, "only q's blocks are unreferenced");
	tkv_cache_match mm = {.struct_size = sizeof(mm)};
	cr_assert_eq(tkv_cache_lookup(rt, q, 3 * BT, NULL, &mm), 0);
	cr_assert_eq(mm.tokens, 0);
	cr_assert_eq(tkv_cache_lookup(rt, p, m2, NULL, &mm), 0);
	cr_assert_eq(mm.tokens, 6 * BT, "the live sequence's 6 full blocks stay cached");
	uint64_t blocks_after;
	cr_assert_eq(tkv_seq_info(rt, 2, &blocks_after, &tok), 0);
	cr_assert_eq(blocks_after, blocks_before);
	cr_assert_eq(ckv_check_all(rt, 2, &elive, BT), 0, "the live sequence after the drop");
	cr_assert_eq(tkv_cache_drop(rt), 0, "nothing else to drop");
	cr_assert_eq(ckv_check_all(rt, 2, &elive, BT), 0);

	/* closed: its 6 published blocks become droppable (the partial 7th
	 * was never published) */
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	cr_assert_eq(tkv_cache_drop(rt), 6);
	tkv_stats st = ckv_stats(rt);
	cr_assert_eq(st.cache_dropped_other, 9);
	cr_assert_eq(st.hot_blocks_used, 0, "every block is freed");
	cr_assert_eq(st.cache_entries_hot, 0);
	tkv_close(rt);
	ckv_expect_free(&ep);
	ckv_expect_free(&eq);
	ckv_expect_free(&elive);
	free(p);
	free(q);
}

/* ---- space -------------------------------------------------------------- */

/* RAM only: a hot tier of 8 units, a live sequence holding 2, and 20
 * prompts of 2 blocks each passing through: the hot tier fills with
 * unreferenced cache blocks, which are dropped for the next stores. */
Test(cache_api, ram_only_full_of_cache_blocks_still_stores)
{
	tkv_config c = cache_config("ram-full", 8);
	tkv_runtime *rt = open_rt(&c);
	uint32_t *live = tokens_from(1, 2 * BT);
	ckv_expect el;
	cr_assert_eq(run_prompt(rt, 1, live, 2 * BT, NULL, 0, &el), 0);
	for (uint32_t i = 0; i < 20; i++) {
		uint32_t *t = tokens_from(1000 + 100 * i, 2 * BT);
		ckv_expect e;
		cr_assert_eq(run_prompt(rt, 10 + i, t, 2 * BT, NULL, 0, &e), 0);
		cr_assert_eq(ckv_check_all(rt, 10 + i, &e, BT), 0);
		cr_assert_eq(tkv_seq_close(rt, 10 + i), 0);
		ckv_expect_free(&e);
		free(t);
	}
	tkv_stats st = ckv_stats(rt);
	cr_log_info("published %llu, dropped hot %llu, entries hot %llu",
		    (unsigned long long)st.cache_published,
		    (unsigned long long)st.cache_dropped_hot,
		    (unsigned long long)st.cache_entries_hot);
	cr_assert_eq(st.cache_published, 42);
	cr_assert_gt(st.cache_dropped_hot, 0);
	cr_assert_eq(st.enospc_events, 0);
	cr_assert_leq(st.cache_entries_hot, 8);
	cr_assert_eq(st.cache_published - st.cache_dropped_hot, st.cache_entries_hot);
	cr_assert_eq(ckv_check_all(rt, 1, &el, BT), 0, "the live sequence kept its blocks");
	/* the most recent prompt is still cached */
	tkv_cache_match m = {.struct_size = sizeof(m)};
	uint32_t *last = tokens_from(1000 + 100 * 19, 2 * BT);
	cr_assert_eq(tkv_cache_lookup(rt, last, 2 * BT, NULL, &m), 0);
	cr_assert_eq(m.tokens, 2 * BT);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	tkv_close(rt);
	ckv_expect_free(&el);
	free(live);
	free(last);
}

/* A hot tier of 8 units and a cold tier of a few records: a live sequence
 * of 3 blocks (published, so cache blocks too) and 30 prompts passing
 * through. Unreferenced cache blocks go cold and are dropped from the cold
 * tier when it refuses a write; the live sequence's are never dropped. */
Test(cache_api, cold_full_drops_unreferenced_keeps_live, .init = make_dir, .fini = remove_dir,
     .timeout = 120)
{
	tkv_config c = cache_config("cold-full", 8);
	c.cold_dir = dir;
	/* about 10 records (a record: a 4 KiB header and each layer's block
	 * padded to 4 KiB); the tier rounds to whole records */
	c.cold_bytes = 10 * (4096 + LAYERS * 4096);
	tkv_runtime *rt = open_rt(&c);
	tkv_stats st = ckv_stats(rt);
	cr_log_info("cold capacity %llu bytes", (unsigned long long)st.cold_bytes_capacity);
	uint32_t *live = tokens_from(1, 3 * BT + 4);
	ckv_expect el;
	cr_assert_eq(run_prompt(rt, 1, live, 3 * BT + 4, NULL, 0, &el), 0);
	for (uint32_t i = 0; i < 30; i++) {
		uint32_t *t = tokens_from(1000 + 100 * i, 2 * BT);
		ckv_expect e;
		cr_assert_eq(run_prompt(rt, 10 + i, t, 2 * BT, NULL, 0, &e), 0);
		cr_assert_eq(ckv_check_all(rt, 10 + i, &e, BT), 0, "prompt %u: %s", i,
			     tkv_last_error());
		cr_assert_eq(tkv_seq_close(rt, 10 + i), 0);
		ckv_expect_free(&e);
		free(t);
	}
	st = ckv_stats(rt);
	cr_log_info("published %llu evicted %llu dropped cold %llu hot %llu, entries hot %llu "
		    "cold %llu, cold used %llu",
		    (unsigned long long)st.cache_published, (unsigned long long)st.evicted_blocks,
		    (unsigned long long)st.cache_dropped_cold, (unsigned long long)st.cache_dropped_hot,
		    (unsigned long long)st.cache_entries_hot, (unsigned long long)st.cache_entries_cold,
		    (unsigned long long)st.cold_bytes_used);
	cr_assert_gt(st.evicted_blocks, 0);
	cr_assert_gt(st.cache_dropped_cold, 0);
	cr_assert_eq(st.enospc_events, 0);
	cr_assert_eq(st.corrupt_records, 0);
	cr_assert_eq(ckv_check_all(rt, 1, &el, BT), 0, "the live sequence: %s", tkv_last_error());
	uint64_t blocks, tok;
	cr_assert_eq(tkv_seq_info(rt, 1, &blocks, &tok), 0);
	cr_assert_eq(tok, 3 * BT + 4);
	/* its 3 full blocks are still cache entries */
	tkv_cache_match m = {.struct_size = sizeof(m)};
	cr_assert_eq(tkv_cache_lookup(rt, live, 3 * BT + 4, NULL, &m), 0);
	cr_assert_eq(m.tokens, 3 * BT);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	tkv_close(rt);
	ckv_expect_free(&el);
	free(live);
}
