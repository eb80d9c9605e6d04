/*
 * cache_collisions.c - forced hash collisions (issue 9, item 2: "even a hash
 * collision can never hand one prompt's KV to another"). The block-key hash
 * is replaced by a constant through tkv__key_set_test_hash
 * (tiers/block_key.h), so every key of every block is equal, and the only
 * thing that can tell blocks apart is what a match compares besides the key.
 *
 *  - other_tokens_never_hit: prompts with different tokens never match.
 *  - chain_never_crosses_prefixes, salt_still_isolates,
 *    model_id_still_isolates_after_restart: a block with the same tokens
 *    but another prefix, tenant or model must not match either. (They
 *    failed when an entry kept only its own block's token ids; a match now
 *    also compares the entry's parent, tiers/cache.h "Entries".)
 *
 * Every read-back is byte-exact (tests/cache_helpers.h): a wrong hit reads
 * another prompt's bytes.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tests/cache_small.h"
#include "tiers/block_key.h"
#include "tierkv.h"

static tkv__key const_hash(const void *bytes, size_t len)
{
	(void)bytes;
	(void)len;
	return (tkv__key){0x1234, 0x5678};
}

/* Every key equal: prompts with other tokens never hit, and the prompt
 * itself still does (its tokens match exactly). */
Test(cache_collisions, other_tokens_never_hit)
{
	tkv__key_set_test_hash(const_hash);
	tkv_config c = cache_config("collide", 64);
	tkv_runtime *rt = open_rt(&c);
	const size_t n = 3 * BT + 3;
	uint32_t *x = tokens_from(100, n), *y = tokens_from(5000, n);
	ckv_expect ex, ey, ex2, ey2;

	cr_assert_eq(run_prompt(rt, 1, x, n, NULL, 0, &ex), 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	/* y: same keys, other tokens: nothing attached */
	tkv_cache_match m = {.struct_size = sizeof(m)};
	cr_assert_eq(tkv_cache_lookup(rt, y, n, NULL, &m), 0);
	cr_assert_eq(m.tokens, 0);
	cr_assert_eq(run_prompt(rt, 2, y, n, NULL, 0, &ey), 0, "a collision was a hit");
	cr_assert_eq(ckv_check_all(rt, 2, &ey, BT), 0, "y's bytes are its own");
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	/* x again: its exact tokens match */
	cr_assert_eq(run_prompt(rt, 3, x, n, NULL, 0, &ex2), 3 * BT);
	cr_assert_eq(ckv_check_all(rt, 3, &ex, BT), 0);
	/* and y again too: both chains live under one key */
	cr_assert_eq(tkv_seq_close(rt, 3), 0);
	cr_assert_eq(run_prompt(rt, 4, y, n, NULL, 0, &ey2), 3 * BT);
	cr_assert_eq(ckv_check_all(rt, 4, &ey, BT), 0);
	cr_assert_eq(tkv_seq_close(rt, 4), 0);
	tkv_stats st = ckv_stats(rt);
	cr_assert_eq(st.cache_published, 6);
	tkv_close(rt);
	tkv__key_set_test_hash(NULL);
	ckv_expect_free(&ex);
	ckv_expect_free(&ey);
	ckv_expect_free(&ex2);
	ckv_expect_free(&ey2);
	free(x);
	free(y);
}

/*
 * LIBRARY BUG PROBE (see the report): a match compares the block's own token
 * ids but nothing that ties it to the prefix before it. With colliding keys,
 * x = [A C] and z = [B D] cached, y = [B C] attaches z's block 0 (right: same
 * tokens, same position) and then x's block 1 (wrong: C after A, not after
 * B), so y reads x's KV for its block 1.
 */
Test(cache_collisions, chain_never_crosses_prefixes)
{
	tkv__key_set_test_hash(const_hash);
	tkv_config c = cache_config("collide-chain", 64);
	tkv_runtime *rt = open_rt(&c);
	uint32_t *A = tokens_from(100, BT), *B = tokens_from(200, BT), *C = tokens_from(300, BT),
		 *D = tokens_from(400, BT);
	uint32_t x[2 * BT], z[2 * BT], y[2 * BT];
	memcpy(x, A, sizeof(*A) * BT), memcpy(x + BT, C, sizeof(*C) * BT);
	memcpy(z, B, sizeof(*B) * BT), memcpy(z + BT, D, sizeof(*D) * BT);
	memcpy(y, B, sizeof(*B) * BT), memcpy(y + BT, C, sizeof(*C) * BT);
	ckv_expect ex, ez, ey;
	cr_assert_eq(run_prompt(rt, 1, x, 2 * BT, NULL, 0, &ex), 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	cr_assert_eq(run_prompt(rt, 2, z, 2 * BT, NULL, 0, &ez), 0);
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	uint64_t cached = run_prompt(rt, 3, y, 2 * BT, NULL, 0, &ey);
	int bytes = ckv_check_all(rt, 3, &ey, BT);
	cr_assert_eq(tkv_seq_close(rt, 3), 0);
	tkv_close(rt);
	tkv__key_set_test_hash(NULL);
	cr_expect_leq(cached, BT, "y = [B C] attached %llu tokens: block 1 came from x = [A C]",
		      (unsigned long long)cached);
	cr_expect_eq(bytes, 0, "y read another prompt's KV");
	ckv_expect_free(&ex);
	ckv_expect_free(&ez);
	ckv_expect_free(&ey);
	free(A), free(B), free(C), free(D);
}

/* LIBRARY BUG PROBE (see the report): the salt is in key_0 only; an entry
 * keeps no salt, so with colliding keys another tenant's block 0 (same
 * tokens) matches. */
Test(cache_collisions, salt_still_isolates)
{
	tkv__key_set_test_hash(const_hash);
	tkv_config c = cache_config("collide-salt", 64);
	tkv_runtime *rt = open_rt(&c);
	const size_t n = 2 * BT;
	uint32_t *t = tokens_from(100, n);
	tkv_seq_opts a = {sizeof(a), "tenant-a", 8, 0}, b = {sizeof(b), "tenant-b", 8, 0};
	ckv_expect ea, eb;
	cr_assert_eq(run_prompt(rt, 1, t, n, &a, 'a', &ea), 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	uint64_t cached = run_prompt(rt, 2, t, n, &b, 'b', &eb);
	int bytes = ckv_check_all(rt, 2, &eb, BT);
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	tkv_close(rt);
	tkv__key_set_test_hash(NULL);
	cr_expect_eq(cached, 0, "tenant b attached %llu tokens of tenant a's",
		     (unsigned long long)cached);
	cr_expect_eq(bytes, 0, "tenant b read tenant a's KV");
	ckv_expect_free(&ea);
	ckv_expect_free(&eb);
	free(t);
}


/* LIBRARY BUG PROBE (see the report): the namespace (model_id) is in key_0
 * only and a cold record keeps no namespace, so with colliding keys a
 * restarted runtime with another model_id attaches the old model's block 0
 * (same tokens) from the cold tier. */
Test(cache_collisions, model_id_still_isolates_after_restart, .init = make_dir,
     .fini = remove_dir)
{
	tkv__key_set_test_hash(const_hash);
	const size_t n = 2 * BT;
	uint32_t *t = tokens_from(100, n);
	ckv_expect ea, eb;
	tkv_config ca = cold_cache_config("model-A");
	tkv_runtime *rt = open_rt(&ca);
	cr_assert_eq(run_prompt(rt, 1, t, n, NULL, 'A', &ea), 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	wait_all_cold(rt, 2);
	tkv_close(rt);
	tkv_config cb = cold_cache_config("model-B");
	rt = open_rt(&cb);
	/* the directory remembered model A: model B drops A's records */
	cr_assert_eq(ckv_stats(rt).cache_recovered, 0);
	cr_assert_eq(ckv_stats(rt).cache_dropped_other, 2);
	uint64_t cached = run_prompt(rt, 1, t, n, NULL, 'B', &eb);
	int bytes = ckv_check_all(rt, 1, &eb, BT);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	tkv_close(rt);
	tkv__key_set_test_hash(NULL);
	cr_expect_eq(cached, 0, "model B attached %llu tokens of model A's",
		     (unsigned long long)cached);
	cr_expect_eq(bytes, 0, "model B read model A's KV");
	ckv_expect_free(&ea);
	ckv_expect_free(&eb);
	free(t);
}
