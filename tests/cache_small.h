/*
 * cache_small.h - the small runtime of the prefix-cache unit suites
 * (tests/cache_api.c, tests/cache_collisions.c): 2 layers of 1 head x 16
 * f32, blocks of 16 tokens (a unit is 4 KiB), a cache named by model_id,
 * RAM only or with a cold tier in a temporary directory; prompts run
 * through tkv_seq_open_tokens and stored from what was cached.
 */
#ifndef TKV_TESTS_CACHE_SMALL_H
#define TKV_TESTS_CACHE_SMALL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/cache_config.h"
#include "tests/cache_helpers.h"
#include "tierkv.h"

static char dir[64]; /* the cold tier of a test (.init make_dir) */

static inline void make_dir(void)
{
	strcpy(dir, "/tmp/tierkv-cache-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static inline void remove_dir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static inline tkv_runtime *open_rt(const tkv_config *c)
{
	tkv_runtime *rt = NULL;
	cr_assert_eq(tkv_open(c, &rt), 0, "open: %s", tkv_last_error());
	return rt;
}

/* Tokens of a prompt of n ids: first, first + 1, ... (distinct prompts get
 * distinct `first`). */
static inline uint32_t *tokens_from(uint32_t first, size_t n)
{
	uint32_t *t = malloc(n * sizeof(*t));
	for (size_t i = 0; i < n; i++)
		t[i] = first + (uint32_t)i;
	return t;
}

/* Opens seq with the prompt, stores what is not cached, syncs; returns
 * cached_tokens. The expected KV `e` is made from (tokens, seed). */
static inline uint64_t run_prompt(tkv_runtime *rt, uint64_t seq, const uint32_t *tokens, size_t n,
			   const tkv_seq_opts *opts, uint64_t seed, ckv_expect *e)
{
	uint64_t cached = ~0ull;
	ckv_expect_make(e, tokens, n, seed, LAYERS, ROW);
	cr_assert_eq(tkv_seq_open_tokens(rt, seq, tokens, n, opts, &cached), 0, "open %llu: %s",
		     (unsigned long long)seq, tkv_last_error());
	cr_assert_eq(cached % BT, 0);
	cr_assert_leq(cached, n);
	if (cached < n)
		cr_assert_eq(ckv_store(rt, seq, e, cached, 7), 0, "store: %s", tkv_last_error());
	cr_assert_eq(tkv_seq_sync(rt, seq), 0);
	return cached;
}

/* Waits (up to ~20 s) until the cache has at least n entries in the cold
 * tier and none with every layer hot. */
static inline void wait_all_cold(tkv_runtime *rt, uint64_t n)
{
	for (int i = 0; i < 20000; i++) {
		tkv_stats st = ckv_stats(rt);
		if (st.cache_entries_cold >= n && st.cache_entries_hot == 0)
			return;
		usleep(1000);
	}
	tkv_stats st = ckv_stats(rt);
	cr_assert_fail("cache entries not evicted: cold %llu (want %llu), hot %llu",
		       (unsigned long long)st.cache_entries_cold, (unsigned long long)n,
		       (unsigned long long)st.cache_entries_hot);
}

/* A cold tier in dir, and watermarks so low that the evictor moves every
 * complete unit out (so the cache's records are on disk at close). */
static inline tkv_config cold_cache_config(const char *model)
{
	tkv_config c = cache_config(model, 64);
	c.cold_dir = dir;
	c.cold_bytes = 16ull << 20;
	c.hot_high_pct = 2;
	c.hot_low_pct = 1;
	return c;
}

#endif
