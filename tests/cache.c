/*
 * cache.c - the prefix cache's promises one at a time (tierkv.h, "Prefix
 * cache"): attach, append and publish, close and re-attach, exact matches
 * only (forced hash collisions), namespace and salt isolation, dedup,
 * truncate and fork never writing a shared block, the cache surviving a
 * restart, and a format-1 cold directory being refused.
 *
 * KV bytes are a function of (layer, position, token id there, the token id
 * before it): two sequences with the same tokens store the same bytes, and
 * a block attached to the wrong prompt reads back different bytes.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ck_pr.h>

#include "tierkv.h"
#include "runtime/runtime.h"  /* rt->cache */
#include "tiers/block_key.h" /* tkv__key_set_test_hash */
#include "tiers/cache.h"     /* tkv__cache_orphans */

enum { LAYERS = 2, HEADS = 1, DIM = 8, BT = 4, ROW = HEADS * DIM * 4 };

static char dir[64];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/tkv-cache-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static tkv_config config(const char *model, bool cold)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = LAYERS;
	c.n_kv_heads = HEADS;
	c.head_dim = DIM;
	c.block_tokens = BT;
	c.hot_bytes = 1 << 20;
	c.n_workers = 2;
	c.pin_workers = false;
	c.model_id = model;
	if (cold) {
		c.cold_dir = dir;
		c.cold_bytes = 4 << 20;
	}
	return c;
}

/* A hot tier of 12 blocks with a cold tier, evicting everything it can once
 * 80% full: a test's first blocks reach the SSD after a few stores. */
static tkv_config small_hot_config(const char *model)
{
	tkv_config c = config(model, true);
	c.hot_bytes = 12 * LAYERS * BT * ROW * 2;
	c.hot_high_pct = 80;
	c.hot_low_pct = 1;
	return c;
}

static tkv_runtime *open_rt(const tkv_config *c)
{
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(c, &rt), 0, "%s", tkv_last_error());
	return rt;
}

static float kv_value(uint32_t layer, uint64_t pos, const uint32_t *tok, bool is_v, uint32_t i)
{
	uint32_t prev = pos ? tok[pos - 1] : 0x9e3779b9u;
	uint32_t x = tok[pos] * 2654435761u ^ prev * 40503u ^ layer * 97u ^ (uint32_t)pos * 31u;
	return (float)((x ^ (is_v ? 0x55u : 0) ^ i) & 0xffffu);
}

static void fill_rows(uint32_t layer, uint64_t pos, uint32_t n, const uint32_t *tok, float *k,
		      float *v)
{
	for (uint32_t t = 0; t < n; t++)
		for (uint32_t i = 0; i < HEADS * DIM; i++) {
			k[t * HEADS * DIM + i] = kv_value(layer, pos + t, tok, false, i);
			v[t * HEADS * DIM + i] = kv_value(layer, pos + t, tok, true, i);
		}
}

/* Stores tokens [from, to) of every layer, in batches of 3. */
static void store(tkv_runtime *rt, uint64_t id, const uint32_t *tok, uint64_t from, uint64_t to)
{
	float k[3 * HEADS * DIM], v[3 * HEADS * DIM];
	for (uint32_t l = 0; l < LAYERS; l++)
		for (uint64_t p = from; p < to;) {
			uint32_t n = to - p < 3 ? (uint32_t)(to - p) : 3;
			fill_rows(l, p, n, tok, k, v);
			cr_assert_eq(tkv_store(rt, id, l, p, n, k, v, 0, NULL), 0, "%s",
				     tkv_last_error());
			cr_assert_eq(tkv_seq_sync(rt, id), 0); /* k, v are reused */
			p += n;
		}
}

/* Every byte of tokens [0, n) of every layer, by read and by view. */
static void check(tkv_runtime *rt, uint64_t id, const uint32_t *tok, uint64_t n)
{
	float *k = malloc(n * ROW), *v = malloc(n * ROW), *ek = malloc(n * ROW), *ev = malloc(n * ROW);
	for (uint32_t l = 0; l < LAYERS; l++) {
		fill_rows(l, 0, (uint32_t)n, tok, ek, ev);
		cr_assert_eq(tkv_read(rt, id, l, 0, (uint32_t)n, k, v), 0, "%s", tkv_last_error());
		cr_assert_eq(memcmp(k, ek, n * ROW), 0, "seq %llu layer %u: K differs",
			     (unsigned long long)id, l);
		cr_assert_eq(memcmp(v, ev, n * ROW), 0, "seq %llu layer %u: V differs",
			     (unsigned long long)id, l);
		tkv_view_block blocks[64];
		tkv_view vw = {.struct_size = sizeof(vw), .blocks = blocks, .max_blocks = 64};
		cr_assert_eq(tkv_view_acquire(rt, id, l, 0, (uint32_t)n, &vw), 0, "%s",
			     tkv_last_error());
		for (uint32_t b = 0; b < vw.n_blocks; b++)
			cr_assert_eq(memcmp(blocks[b].k, ek + blocks[b].first_pos * HEADS * DIM,
					    blocks[b].n_tokens * ROW), 0, "view block %u", b);
		cr_assert_eq(tkv_view_release(rt, &vw), 0);
	}
	free(k);
	free(v);
	free(ek);
	free(ev);
}

static tkv_stats stats(tkv_runtime *rt)
{
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	return st;
}

/* Opens id with tok[0, n), stores what is not cached, checks every byte;
 * returns the tokens that were attached. */
static uint64_t serve(tkv_runtime *rt, uint64_t id, const uint32_t *tok, uint64_t n,
		      const tkv_seq_opts *opts)
{
	uint64_t cached = ~0ull;
	cr_assert_eq(tkv_seq_open_tokens(rt, id, tok, n, opts, &cached), 0, "%s", tkv_last_error());
	cr_assert_eq(cached % BT, 0);
	cr_assert_leq(cached, n);
	store(rt, id, tok, cached, n);
	check(rt, id, tok, n);
	return cached;
}

static const uint32_t P1[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
static const uint32_t P2[] = {1, 2, 3, 4, 5, 6, 7, 8, 90, 91, 92, 93, 94};

Test(cache, attach_publish_close_reattach)
{
	tkv_config c = config("model-a", false);
	tkv_runtime *rt = open_rt(&c);
	cr_assert_eq(serve(rt, 1, P1, 14, NULL), 0, "empty cache");
	tkv_stats st = stats(rt);
	cr_assert_eq(st.cache_published, 3, "three full blocks of 14 tokens");
	cr_assert_eq(st.cache_lookups, 1);
	cr_assert_eq(st.cache_lookup_blocks, 3);
	/* a live sequence's blocks are shared right away */
	cr_assert_eq(serve(rt, 2, P1, 14, NULL), 12);
	cr_assert_eq(stats(rt).cache_hit_blocks_hot, 3);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	/* closed: the published blocks stay as entries */
	st = stats(rt);
	cr_assert_eq(st.cache_entries_hot, 3);
	cr_assert_eq(st.open_sequences, 0);
	/* a prompt sharing two blocks gets exactly those */
	cr_assert_eq(serve(rt, 3, P2, 13, NULL), 8);
	cr_assert_eq(tkv_seq_close(rt, 3), 0);
	tkv_close(rt);
}

Test(cache, append_tokens_publishes_generated_blocks)
{
	tkv_config c = config("model-a", false);
	tkv_runtime *rt = open_rt(&c);
	/* prompt of 6 tokens, then 6 generated: KV stored before the ids */
	cr_assert_eq(serve(rt, 1, P1, 6, NULL), 0);
	cr_assert_eq(stats(rt).cache_published, 1);
	store(rt, 1, P1, 6, 12);
	cr_assert_eq(stats(rt).cache_published, 1, "ids of tokens 6..11 not known yet");
	cr_assert_eq(tkv_seq_append_tokens(rt, 1, P1 + 6, 6), 0);
	cr_assert_eq(stats(rt).cache_published, 3, "the producer side published both");
	cr_assert_eq(serve(rt, 2, P1, 14, NULL), 12);
	tkv_close(rt);
}

Test(cache, no_publish_flag_and_plain_open)
{
	tkv_config c = config("model-a", false);
	tkv_runtime *rt = open_rt(&c);
	tkv_seq_opts o = {.struct_size = sizeof(o), .flags = TKV_SEQ_NO_PUBLISH};
	cr_assert_eq(serve(rt, 1, P1, 14, &o), 0);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	store(rt, 2, P1, 0, 14);
	cr_assert_eq(stats(rt).cache_published, 0);
	cr_assert_eq(serve(rt, 3, P1, 14, NULL), 0, "nothing was published");
	cr_assert_eq(serve(rt, 4, P1, 14, &o), 12, "an opted-out sequence still attaches");
	tkv_close(rt);
}

Test(cache, salt_isolates_tenants)
{
	tkv_config c = config("model-a", false);
	tkv_runtime *rt = open_rt(&c);
	tkv_seq_opts a = {.struct_size = sizeof(a), .salt = "tenant-a", .salt_len = 8};
	tkv_seq_opts b = {.struct_size = sizeof(b), .salt = "tenant-b", .salt_len = 8};
	cr_assert_eq(serve(rt, 1, P1, 14, &a), 0);
	cr_assert_eq(serve(rt, 2, P1, 14, NULL), 0, "no salt never matches a salt");
	cr_assert_eq(serve(rt, 3, P1, 14, &b), 0, "another salt never matches");
	cr_assert_eq(serve(rt, 4, P1, 14, &a), 12, "the same salt matches");
	tkv_close(rt);
}

Test(cache, lookup_has_no_side_effects)
{
	tkv_config c = config("model-a", false);
	tkv_runtime *rt = open_rt(&c);
	serve(rt, 1, P1, 14, NULL);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	tkv_cache_match m = {.struct_size = sizeof(m)};
	cr_assert_eq(tkv_cache_lookup(rt, P2, 13, NULL, &m), 0);
	cr_assert_eq(m.tokens, 8);
	cr_assert_eq(m.hot_blocks, 2);
	cr_assert_eq(m.cold_blocks, 0);
	tkv_stats st = stats(rt);
	cr_assert_eq(st.open_sequences, 0);
	cr_assert_eq(st.cache_entries_hot, 3);
	tkv_close(rt);
	tkv_config nc = config(NULL, false);
	rt = open_rt(&nc);
	cr_assert_eq(tkv_cache_lookup(rt, P1, 14, NULL, &m), -EINVAL, "no model_id, no cache");
	tkv_close(rt);
}

/* Every key is the same: only the token ids tell blocks apart. */
static tkv__key constant_hash(const void *bytes, size_t len)
{
	(void)bytes;
	(void)len;
	return (tkv__key){42, 42};
}

Test(cache, forced_collisions_never_hit_another_prompt)
{
	tkv__key_set_test_hash(constant_hash);
	tkv_config c = config("model-a", false);
	tkv_runtime *rt = open_rt(&c);
	static const uint32_t Q[] = {100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200};
	cr_assert_eq(serve(rt, 1, P1, 12, NULL), 0);
	cr_assert_eq(serve(rt, 2, Q, 12, NULL), 0, "same keys, other tokens: a miss");
	cr_assert_eq(stats(rt).cache_published, 6, "both chains are entries");
	cr_assert_eq(serve(rt, 3, Q, 12, NULL), 12);
	cr_assert_eq(serve(rt, 4, P1, 12, NULL), 12);
	tkv_close(rt);
	tkv__key_set_test_hash(NULL);
}

Test(cache, same_block_computed_twice_is_kept_once)
{
	tkv_config c = config("model-a", false);
	tkv_runtime *rt = open_rt(&c);
	uint64_t cached;
	cr_assert_eq(tkv_seq_open_tokens(rt, 1, P1, 12, NULL, &cached), 0);
	cr_assert_eq(tkv_seq_open_tokens(rt, 2, P1, 12, NULL, &cached), 0);
	cr_assert_eq(cached, 0, "nothing published yet");
	store(rt, 1, P1, 0, 12);
	store(rt, 2, P1, 0, 12);
	tkv_stats st = stats(rt);
	cr_assert_eq(st.cache_published, 3);
	cr_assert_eq(st.cache_deduplicated, 3);
	check(rt, 1, P1, 12);
	check(rt, 2, P1, 12);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	cr_assert_eq(stats(rt).cache_entries_hot, 3, "one copy stays");
	cr_assert_eq(stats(rt).hot_blocks_used, 3 * LAYERS, "the duplicate was freed");
	tkv_close(rt);
}

Test(cache, drop_keeps_referenced_blocks)
{
	tkv_config c = config("model-a", false);
	tkv_runtime *rt = open_rt(&c);
	serve(rt, 1, P1, 14, NULL);
	serve(rt, 2, P2, 13, NULL); /* shares 2 blocks with 1, publishes 1 */
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	/* block 2 of P1 is unreferenced now; blocks 0-1 are P2's too */
	cr_assert_eq(tkv_cache_drop(rt), 1);
	check(rt, 2, P2, 13);
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	cr_assert_eq(tkv_cache_drop(rt), 3);
	tkv_stats st = stats(rt);
	cr_assert_eq(st.cache_entries_hot, 0);
	cr_assert_eq(st.cache_dropped_other, 4);
	cr_assert_eq(st.hot_blocks_used, 0);
	tkv_close(rt);
}

Test(cache, full_ram_drops_unreferenced_instead_of_refusing)
{
	tkv_config c = config("model-a", false);
	c.hot_bytes = 16 * LAYERS * BT * ROW * 2; /* 16 blocks of all layers */
	tkv_runtime *rt = open_rt(&c);
	uint32_t tok[32];
	for (uint64_t id = 1; id <= 10; id++) {
		for (uint32_t i = 0; i < 32; i++)
			tok[i] = (uint32_t)(id * 1000 + i);
		cr_assert_eq(serve(rt, id, tok, 32, NULL), 0);
		cr_assert_eq(tkv_seq_close(rt, id), 0);
	}
	tkv_stats st = stats(rt);
	cr_assert_gt(st.cache_dropped_hot, 0);
	cr_assert_eq(st.enospc_events, 0);
	/* the most recent prompt is still cached */
	cr_assert_eq(serve(rt, 11, tok, 32, NULL), 32);
	tkv_close(rt);
}

Test(cache, truncate_copies_a_shared_block)
{
	tkv_config c = config("model-a", false);
	tkv_runtime *rt = open_rt(&c);
	serve(rt, 1, P1, 12, NULL);
	cr_assert_eq(serve(rt, 2, P1, 12, NULL), 12);
	/* speculative decoding rejects tokens 6..11 of sequence 2 */
	cr_assert_eq(tkv_seq_truncate(rt, 2, 6), 0);
	uint32_t other[12];
	memcpy(other, P1, sizeof(other));
	for (int i = 6; i < 12; i++)
		other[i] = 7000 + (uint32_t)i;
	cr_assert_eq(tkv_seq_append_tokens(rt, 2, other + 6, 6), 0);
	store(rt, 2, other, 6, 12);
	check(rt, 2, other, 12);
	check(rt, 1, P1, 12); /* the shared blocks were never written */
	cr_assert_eq(serve(rt, 3, P1, 12, NULL), 12, "the cache still has P1");
	cr_assert_eq(tkv_seq_truncate(rt, 2, 13), -EINVAL);
	tkv_close(rt);
}

/* A cut that lands in a block only the cold tier holds: the block comes
 * back as the sequence's own copy, what was past the cut is forgotten and
 * stored anew, and every byte reads back. What a restart re-attaches
 * holds the rows stored after the cut, never the ones it dropped. */
Test(cache, truncate_into_a_cold_block, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = small_hot_config(NULL);
	tkv_runtime *rt = open_rt(&c);
	uint32_t tok[64], other[64];
	for (uint32_t i = 0; i < 64; i++) {
		tok[i] = 300 + i;
		other[i] = i < 6 ? tok[i] : 4000 + i;
	}
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	store(rt, 1, tok, 0, 64); /* 16 blocks into a hot tier of 12 */
	cr_assert_gt(stats(rt).evicted_blocks, 0);
	uint64_t promoted = stats(rt).promoted_blocks, tokens = 0;
	cr_assert_eq(tkv_seq_truncate(rt, 1, 6), 0, "%s", tkv_last_error());
	cr_assert_gt(stats(rt).promoted_blocks, promoted,
		     "the block the cut lands in was read back from SSD");
	cr_assert_eq(tkv_seq_info(rt, 1, NULL, &tokens), 0);
	cr_assert_eq(tokens, 6);
	check(rt, 1, tok, 6);
	store(rt, 1, other, 6, 20);
	check(rt, 1, other, 20);
	tkv_close(rt); /* sequence 1 left open: its records stay */
	rt = open_rt(&c);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(tkv_seq_info(rt, 1, NULL, &tokens), 0);
	cr_assert_leq(tokens, 20);
	cr_assert_eq(tokens % BT, 0);
	if (tokens) /* 4 today: the copy's name stops the restart after block 0 */
		check(rt, 1, other, tokens);
	store(rt, 1, other, tokens, 20);
	check(rt, 1, other, 20);
	tkv_close(rt);
}

/* A reader of a truncated sequence (E1/E2, docs/ARCHITECTURE.md): a read,
 * view or prefetch running while another thread truncates either finishes
 * before the cut, with the right bytes, or is refused with -EBUSY. The
 * rows it reads, [0, 6), hold the same bytes through every cut at 6, which
 * lands in their second block: each cut swaps that block for a copy. */
enum { RACE_ROWS = 6 };

typedef struct {
	tkv_runtime *rt;
	const uint32_t *tok;
	int stop; /* ck_pr */
	int bad;  /* ck_pr: the first unexpected result, 1 for wrong bytes */
	uint64_t done, refused;
} trunc_race;

static int view_matches(tkv_runtime *rt, uint32_t l, const float *ek, const float *ev)
{
	tkv_view_block vb[4];
	tkv_view vw = {.struct_size = sizeof(vw), .blocks = vb, .max_blocks = 4};
	int rc = tkv_view_acquire(rt, 1, l, 0, RACE_ROWS, &vw);
	if (rc)
		return rc;
	uint64_t rows = 0;
	for (uint32_t b = 0; b < vw.n_blocks; b++) {
		size_t off = vb[b].first_pos * HEADS * DIM, len = vb[b].n_tokens * ROW;
		if (memcmp(vb[b].k, ek + off, len) || memcmp(vb[b].v, ev + off, len))
			rc = 1;
		rows += vb[b].n_tokens;
	}
	if (rows != RACE_ROWS)
		rc = 1;
	if (tkv_view_release(rt, &vw) && !rc)
		rc = -EFAULT;
	return rc;
}

static void *read_while_truncated(void *arg)
{
	trunc_race *r = arg;
	enum { N = RACE_ROWS * HEADS * DIM };
	float k[N], v[N], ek[N], ev[N];
	while (!ck_pr_load_int(&r->stop) && !ck_pr_load_int(&r->bad)) {
		for (uint32_t l = 0; l < LAYERS; l++) {
			fill_rows(l, 0, RACE_ROWS, r->tok, ek, ev);
			int rc = tkv_read(r->rt, 1, l, 0, RACE_ROWS, k, v);
			if (rc == 0 && (memcmp(k, ek, sizeof(k)) || memcmp(v, ev, sizeof(v))))
				rc = 1;
			if (rc == 0)
				rc = view_matches(r->rt, l, ek, ev);
			if (rc == -EBUSY) {
				r->refused++;
			} else if (rc) {
				ck_pr_store_int(&r->bad, rc);
				return NULL;
			} else {
				r->done++;
			}
		}
		int rc = tkv_prefetch(r->rt, 1, 0, RACE_ROWS);
		if (rc && rc != -EBUSY && rc != -EAGAIN) {
			ck_pr_store_int(&r->bad, rc);
			return NULL;
		}
	}
	return NULL;
}

Test(cache, truncate_races_reads_views_and_prefetches, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = small_hot_config(NULL);
	tkv_runtime *rt = open_rt(&c);
	uint32_t tok[64];
	for (uint32_t i = 0; i < 64; i++)
		tok[i] = 200 + i;
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	store(rt, 1, tok, 0, RACE_ROWS);
	trunc_race r = {.rt = rt, .tok = tok};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, read_while_truncated, &r), 0);
	for (int round = 0; round < 40 && !ck_pr_load_int(&r.bad); round++) {
		store(rt, 1, tok, RACE_ROWS, 64); /* past the hot tier: evicts */
		int rc;
		while ((rc = tkv_seq_truncate(rt, 1, RACE_ROWS)) == -EBUSY)
			sched_yield(); /* a view is held */
		cr_assert_eq(rc, 0, "%s", tkv_last_error());
	}
	ck_pr_store_int(&r.stop, 1);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(r.bad, 0, "a read, view or prefetch returned %d (1: wrong bytes)", r.bad);
	cr_assert_gt(r.done, 0, "some reads ran");
	cr_assert_gt(r.refused, 0, "some ran into a truncate");
	cr_assert_gt(stats(rt).evicted_blocks, 0);
	store(rt, 1, tok, RACE_ROWS, 64);
	check(rt, 1, tok, 64);
	tkv_close(rt);
}

/* Truncate's refusals change nothing. */
Test(cache, truncate_refusals)
{
	tkv_config c = config(NULL, false);
	tkv_runtime *rt = open_rt(&c);
	cr_assert_eq(tkv_seq_truncate(rt, 5, 0), -ENOENT);
	cr_assert_eq(tkv_seq_open(rt, 5), 0);
	store(rt, 5, P1, 0, 10);
	cr_assert_eq(tkv_seq_truncate(rt, 5, 11), -EINVAL, "past what was stored");
	tkv_view_block vb[8];
	tkv_view vw = {.struct_size = sizeof(vw), .blocks = vb, .max_blocks = 8};
	cr_assert_eq(tkv_view_acquire(rt, 5, 0, 0, 10, &vw), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_seq_truncate(rt, 5, 3), -EBUSY, "a view is held");
	cr_assert_eq(tkv_view_release(rt, &vw), 0);
	uint64_t tokens = 0;
	cr_assert_eq(tkv_seq_info(rt, 5, NULL, &tokens), 0);
	cr_assert_eq(tokens, 10, "the refusals changed nothing");
	check(rt, 5, P1, 10);
	cr_assert_eq(tkv_seq_truncate(rt, 5, 3), 0);
	cr_assert_eq(tkv_seq_info(rt, 5, NULL, &tokens), 0);
	cr_assert_eq(tokens, 3);
	check(rt, 5, P1, 3);
	tkv_close(rt);
}

/* Run 1 of the tests below: sequence 7 stores a[0, 64) into a hot tier of
 * 12 blocks and is left open at close, so its evicted records stay. */
static tkv_config leave_records_of_7(const char *model, const uint32_t *a)
{
	tkv_config c = small_hot_config(model);
	tkv_runtime *rt = open_rt(&c);
	cr_assert_eq(tkv_seq_open(rt, 7), 0);
	store(rt, 7, a, 0, 64);
	cr_assert_gt(stats(rt).evicted_blocks, 0);
	tkv_close(rt);
	return c;
}

/* The last run: what re-opening 7 re-attaches holds rows of b[0, n), the
 * history stored under 7 after run 1, never run 1's. */
static void reopen_7_reads(const tkv_config *c, const uint32_t *b, uint64_t n)
{
	tkv_runtime *rt = open_rt(c);
	cr_assert_eq(tkv_seq_open(rt, 7), 0);
	uint64_t tokens = 0;
	cr_assert_eq(tkv_seq_info(rt, 7, NULL, &tokens), 0);
	cr_assert_leq(tokens, n, "%llu tokens re-attached: run 1's history came back",
		      (unsigned long long)tokens);
	if (tokens)
		check(rt, 7, b, tokens);
	tkv_close(rt);
}

/* tkv_seq_open_tokens does not re-attach the records a previous run left
 * under its id; the sequence stores another history there, and a later
 * re-open must never read the older one's rows. */
Test(cache, open_tokens_over_a_previous_runs_records, .init = make_dir, .fini = remove_dir)
{
	uint32_t a[64], b[64];
	for (uint32_t i = 0; i < 64; i++) {
		a[i] = 100 + i;
		b[i] = 5000 + i;
	}
	tkv_config c = leave_records_of_7("model-a", a);
	tkv_runtime *rt = open_rt(&c);
	uint64_t cached = 1;
	cr_assert_eq(tkv_seq_open_tokens(rt, 7, b, 8, NULL, &cached), 0);
	cr_assert_eq(cached, 0);
	store(rt, 7, b, 0, 8);
	check(rt, 7, b, 8);
	tkv_close(rt);
	reopen_7_reads(&c, b, 8);
}

/* The same for a fork's new id. */
Test(cache, fork_onto_a_previous_runs_records, .init = make_dir, .fini = remove_dir)
{
	uint32_t a[64], b[64];
	for (uint32_t i = 0; i < 64; i++) {
		a[i] = 100 + i;
		b[i] = 5000 + i;
	}
	tkv_config c = leave_records_of_7(NULL, a);
	tkv_runtime *rt = open_rt(&c);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	store(rt, 1, b, 0, 10);
	cr_assert_eq(tkv_seq_fork(rt, 1, 7), 0);
	check(rt, 7, b, 10);
	tkv_close(rt);
	reopen_7_reads(&c, b, 10);
}

/* Opening an id that is already open, or forking onto it, fails and
 * changes nothing, also when the open sequence holds a previous run's
 * records. */
Test(cache, reopening_an_open_id_keeps_its_records, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = small_hot_config(NULL);
	uint32_t a[64];
	for (uint32_t i = 0; i < 64; i++)
		a[i] = 100 + i;
	tkv_runtime *rt = open_rt(&c);
	cr_assert_eq(tkv_seq_open(rt, 7), 0);
	store(rt, 7, a, 0, 64);
	cr_assert_gt(stats(rt).evicted_blocks, 0);
	tkv_close(rt); /* sequence 7 left open: its records stay */
	rt = open_rt(&c);
	cr_assert_eq(tkv_seq_open(rt, 7), 0);
	uint64_t tokens = 0;
	cr_assert_eq(tkv_seq_info(rt, 7, NULL, &tokens), 0);
	cr_assert_gt(tokens, 0);
	cr_assert_eq(tkv_seq_open(rt, 7), -EEXIST);
	cr_assert_eq(tkv_seq_open_tokens(rt, 7, a, 8, NULL, NULL), -EEXIST);
	cr_assert_eq(tkv_seq_fork(rt, 7, 7), -EEXIST);
	cr_assert_eq(tkv_seq_open(rt, 8), 0);
	store(rt, 8, a, 0, 8);
	cr_assert_eq(tkv_seq_fork(rt, 8, 7), -EEXIST);
	check(rt, 7, a, tokens);
	tkv_close(rt);
}

Test(cache, fork_shares_full_blocks_and_copies_the_last)
{
	tkv_config c = config("model-a", false);
	tkv_runtime *rt = open_rt(&c);
	serve(rt, 1, P1, 10, NULL);
	uint64_t before = stats(rt).hot_blocks_used;
	cr_assert_eq(tkv_seq_fork(rt, 1, 2), 0);
	cr_assert_eq(stats(rt).hot_blocks_used, before + LAYERS, "only the partial block copied");
	cr_assert_eq(tkv_seq_open(rt, UINT64_MAX), -EINVAL, "reserved");
	check(rt, 2, P1, 10);
	/* the two samples diverge */
	uint32_t a[14], b[14];
	memcpy(a, P1, sizeof(a));
	memcpy(b, P1, sizeof(b));
	for (int i = 10; i < 14; i++) {
		a[i] = 8000 + (uint32_t)i;
		b[i] = 9000 + (uint32_t)i;
	}
	cr_assert_eq(tkv_seq_append_tokens(rt, 1, a + 10, 4), 0);
	cr_assert_eq(tkv_seq_append_tokens(rt, 2, b + 10, 4), 0);
	store(rt, 1, a, 10, 14);
	store(rt, 2, b, 10, 14);
	check(rt, 1, a, 14);
	check(rt, 2, b, 14);
	cr_assert_eq(tkv_seq_fork(rt, 1, 2), -EEXIST);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	check(rt, 2, b, 14);
	tkv_close(rt);
}

/* RAM full of one cached prompt's chain: the chain is dropped from its end,
 * so what stays still matches (a dropped first block would leave the rest
 * unmatchable, holding RAM for nothing: an entry whose parent is gone). */
Test(cache, drops_a_chain_from_its_end)
{
	tkv_config c = config("model-a", false);
	c.hot_bytes = 16 * LAYERS * BT * ROW * 2; /* 16 blocks of all layers */
	tkv_runtime *rt = open_rt(&c);
	uint32_t a[32], b[40];
	for (uint32_t i = 0; i < 32; i++)
		a[i] = 5000 + i;
	for (uint32_t i = 0; i < 40; i++)
		b[i] = 9000 + i;
	cr_assert_eq(serve(rt, 1, a, 32, NULL), 0); /* 8 blocks */
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	cr_assert_eq(serve(rt, 2, b, 40, NULL), 0); /* 10 more: 2+ of a's go */
	cr_assert_gt(stats(rt).cache_dropped_hot, 0);
	cr_assert_eq(tkv__cache_orphans(rt->cache), 0, "an entry outlived its parent");
	tkv_cache_match m = {.struct_size = sizeof(m)};
	cr_assert_eq(tkv_cache_lookup(rt, a, 32, NULL, &m), 0);
	cr_assert_geq(m.tokens, 4 * BT, "a's first blocks were dropped");
	cr_assert_lt(m.tokens, 32);
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	/* a's first blocks serve it again, byte-identical */
	cr_assert_eq(serve(rt, 3, a, 32, NULL), m.tokens);
	cr_assert_eq(tkv__cache_orphans(rt->cache), 0);
	tkv_close(rt);
}

/* Publishes the 4 blocks of prompt p (16 tokens) and lets the evictor
 * move them all to the cold tier; returns the config, closed. */
static tkv_config four_cold_blocks(uint32_t p[16])
{
	tkv_config c = config("model-a", true);
	c.hot_bytes = 16 * LAYERS * BT * ROW * 2; /* 16 blocks of all layers */
	c.hot_high_pct = 2; /* the evictor moves every complete block */
	c.hot_low_pct = 1;
	tkv_runtime *rt = open_rt(&c);
	for (uint32_t i = 0; i < 16; i++)
		p[i] = 300 + i;
	cr_assert_eq(serve(rt, 1, p, 16, NULL), 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	for (int i = 0; i < 20000 && (stats(rt).cache_entries_cold < 4 ||
				      stats(rt).cache_entries_hot > 0); i++)
		usleep(1000);
	cr_assert_eq(stats(rt).cache_entries_cold, 4);
	tkv_close(rt);
	return c;
}

/* A cache block that came back to RAM whole gives up its cold record when
 * its last holder lets go (exclusive tiers: one slot per block, not two);
 * when it is evicted again a new record is written, and every byte reads
 * back. */
Test(cache, promoted_block_gives_up_its_record, .init = make_dir, .fini = remove_dir)
{
	uint32_t p[16];
	tkv_config c = four_cold_blocks(p);
	/* a hot tier that never evicts: the 4 recovered blocks come back to
	 * RAM when read, and give up their records at the close */
	c.hot_bytes = 1 << 20;
	c.hot_high_pct = 80;
	c.hot_low_pct = 60;
	tkv_runtime *rt = open_rt(&c);
	tkv_stats st = stats(rt);
	cr_assert_eq(st.cache_recovered, 4);
	cr_assert_eq(serve(rt, 2, p, 16, NULL), 16); /* reads every layer: promotes */
	st = stats(rt);
	cr_assert_eq(st.cache_entries_hot_cold, 4, "held by seq 2: both copies");
	cr_assert_eq(st.cache_records_released, 0);
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	st = stats(rt);
	cr_assert_eq(st.cache_records_released, 4, "promoted blocks kept their records");
	cr_assert_eq(st.cache_entries_hot_cold, 0);
	cr_assert_eq(st.cache_entries_cold, 0);
	cr_assert_eq(st.cache_entries_hot, 4);
	cr_assert_eq(serve(rt, 3, p, 16, NULL), 16);
	cr_assert_eq(tkv_seq_close(rt, 3), 0);
	tkv_close(rt);
}

/* What the evictor may do between release_record's first look and its
 * claim: free a layer whose record stands (free_unit, no write) and set
 * the unit HOT again. Here it takes layer 0's memory away (kept aside, put
 * back by the test). */
static void *taken_mem[8];
static tkv__unit *taken_unit[8];
static int n_taken;

static void take_layer0(tkv__unit *u)
{
	cr_assert_lt(n_taken, 8);
	taken_unit[n_taken] = u;
	taken_mem[n_taken++] = ck_pr_load_ptr(&u->blocks[0].mem);
	ck_pr_store_ptr(&u->blocks[0].mem, NULL);
}

/* A promoted cache block keeps its record if the evictor freed one of its
 * layers after release_record looked and before it claimed the unit: the
 * record is then that layer's only copy (a lookup would attach the block
 * and its read fail with -ENOENT). Put back, the layers read as stored,
 * and the next close gives the records up. */
Test(cache, a_layer_freed_during_release_keeps_the_record, .init = make_dir,
     .fini = remove_dir)
{
	uint32_t p[16];
	tkv_config c = four_cold_blocks(p);
	c.hot_bytes = 1 << 20; /* never evicts: reads promote, nothing leaves */
	c.hot_high_pct = 80;
	c.hot_low_pct = 60;
	tkv_runtime *rt = open_rt(&c);
	cr_assert_eq(serve(rt, 2, p, 16, NULL), 16); /* promotes every layer */
	n_taken = 0;
	rt->ev->release_race = take_layer0;
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	rt->ev->release_race = NULL;
	cr_assert_eq(n_taken, 4, "release_record ran for each block");
	cr_assert_eq(stats(rt).cache_records_released, 0, "a record dropped under a freed layer");
	for (int i = 0; i < n_taken; i++)
		ck_pr_store_ptr(&taken_unit[i]->blocks[0].mem, taken_mem[i]);
	cr_assert_eq(stats(rt).cache_entries_hot_cold, 4, "both copies kept");
	cr_assert_eq(serve(rt, 3, p, 16, NULL), 16);
	cr_assert_eq(tkv_seq_close(rt, 3), 0);
	cr_assert_eq(stats(rt).cache_records_released, 4);
	tkv_close(rt);
}

Test(cache, restart_keeps_the_cache, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = config("model-a", true);
	c.hot_high_pct = 80;
	c.hot_low_pct = 1; /* evict everything the evictor is asked for */
	tkv_runtime *rt = open_rt(&c);
	serve(rt, 1, P1, 14, NULL);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	cr_assert_eq(stats(rt).evicted_blocks, 0, "the hot tier never filled");
	tkv_close(rt); /* writes the cache blocks only RAM held */
	rt = open_rt(&c);
	cr_assert_eq(stats(rt).cache_recovered, 14 / BT);
	cr_assert_eq(serve(rt, 2, P1, 14, NULL), 14 / BT * BT, "all full blocks, checked");
	cr_assert_eq(stats(rt).cache_hit_blocks_cold, 14 / BT);
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	/* fill the hot tier past its high watermark so the blocks go cold */
	c.hot_bytes = 8 * LAYERS * BT * ROW * 2;
	tkv_close(rt);
	rt = open_rt(&c);
	uint32_t tok[40];
	for (uint64_t id = 1; id <= 4; id++) {
		for (uint32_t i = 0; i < 40; i++)
			tok[i] = (uint32_t)(id * 100 + i);
		serve(rt, id, tok, 40, NULL);
		cr_assert_eq(tkv_seq_close(rt, id), 0);
	}
	tkv_stats st = stats(rt);
	cr_assert_gt(st.cache_entries_cold, 0, "evicted cache blocks");
	tkv_close(rt);
	rt = open_rt(&c);
	st = stats(rt);
	cr_assert_gt(st.cache_recovered, 0);
	/* some prompt's first blocks are back, from the cold tier */
	uint64_t hits = 0;
	for (uint64_t id = 1; id <= 4; id++) {
		for (uint32_t i = 0; i < 40; i++)
			tok[i] = (uint32_t)(id * 100 + i);
		hits += serve(rt, 10 + id, tok, 40, NULL);
	}
	cr_assert_gt(hits, 0);
	cr_assert_gt(stats(rt).cache_hit_blocks_cold, 0);
	tkv_close(rt);
	/* another model on the same directory matches nothing */
	tkv_config other = c;
	other.model_id = "model-b";
	rt = open_rt(&other);
	for (uint32_t i = 0; i < 40; i++)
		tok[i] = (uint32_t)(100 + i);
	cr_assert_eq(serve(rt, 1, tok, 40, NULL), 0);
	tkv_close(rt);
}

Test(cache, reserved_id_and_bad_arguments)
{
	tkv_config c = config("model-a", false);
	tkv_runtime *rt = open_rt(&c);
	cr_assert_eq(tkv_seq_open(rt, UINT64_MAX), -EINVAL);
	cr_assert_eq(tkv_seq_open_tokens(rt, 1, NULL, 3, NULL, NULL), -EINVAL);
	tkv_seq_opts o = {.struct_size = sizeof(o), .salt = NULL, .salt_len = 4};
	cr_assert_eq(tkv_seq_open_tokens(rt, 1, P1, 3, &o, NULL), -EINVAL);
	o = (tkv_seq_opts){.struct_size = sizeof(o), .flags = 0x80};
	cr_assert_eq(tkv_seq_open_tokens(rt, 1, P1, 3, &o, NULL), -EINVAL);
	cr_assert_eq(stats(rt).open_sequences, 0, "nothing changed");
	tkv_close(rt);
	c.model_id = "";
	tkv_runtime *bad = NULL;
	cr_assert_eq(tkv_open(&c, &bad), -EINVAL);
	cr_assert(strstr(tkv_last_error(), "model_id"));
}

/* A cold directory written before the cache (format 1) is refused with a
 * message, not misread (its records have no key, and a smaller header). */
Test(cache, format_1_cold_directory_is_refused, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = config(NULL, true);
	tkv_runtime *rt = open_rt(&c);
	tkv_close(rt);
	char path[128];
	snprintf(path, sizeof(path), "%s/manifest", dir);
	FILE *f = fopen(path, "r+b");
	cr_assert_not_null(f);
	uint32_t v1 = 1;
	cr_assert_eq(fseek(f, 8, SEEK_SET), 0);
	cr_assert_eq(fwrite(&v1, 4, 1, f), 1);
	fclose(f);
	rt = (tkv_runtime *)&c;
	cr_assert_eq(tkv_open(&c, &rt), -EPROTONOSUPPORT);
	cr_assert_null(rt);
	cr_assert(strstr(tkv_last_error(), "format 1"), "%s", tkv_last_error());
}

/* Without the cache, full blocks are private: a fork shares them anyway
 * (zero-copy), and closing either sequence first leaves the other whole,
 * even with its shared blocks evicted to the cold tier. */
Test(cache, fork_shares_private_blocks_across_close, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = small_hot_config(NULL);
	tkv_runtime *rt = open_rt(&c);
	uint32_t tok[40];
	for (uint32_t i = 0; i < 40; i++)
		tok[i] = 500 + i;
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	store(rt, 1, tok, 0, 18);
	uint64_t before = stats(rt).hot_blocks_used;
	cr_assert_eq(tkv_seq_fork(rt, 1, 2), 0);
	cr_assert_eq(stats(rt).hot_blocks_used, before + LAYERS, "4 full blocks shared");
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	/* push the shared blocks out to the cold tier */
	cr_assert_eq(tkv_seq_open(rt, 3), 0);
	store(rt, 3, tok, 0, 40);
	cr_assert_gt(stats(rt).evicted_blocks, 0);
	check(rt, 2, tok, 18);
	cr_assert_eq(tkv_seq_fork(rt, 2, 4), 0);
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	check(rt, 4, tok, 18);
	tkv_close(rt);
}

/* The anonymous names of the blocks a fork shares (1 << 63 | n) are not
 * entry ids: a restart removes their records and must not move the next
 * entry id past them, or the blocks published after it would be named in
 * the anonymous range (docs/ARCHITECTURE.md, "Units, references and record
 * names"). */
Test(cache, restart_entry_ids_skip_the_anonymous_records_of_forks, .init = make_dir,
     .fini = remove_dir)
{
	tkv_config c = small_hot_config("model-a");
	tkv_runtime *rt = open_rt(&c);
	uint32_t tok[40];
	for (uint32_t i = 0; i < 40; i++)
		tok[i] = 700 + i;
	cr_assert_eq(tkv_seq_open(rt, 1), 0); /* no tokens: its blocks are private */
	store(rt, 1, tok, 0, 18);
	cr_assert_eq(tkv_seq_fork(rt, 1, 2), 0); /* its 4 full blocks get anonymous names */
	cr_assert_eq(tkv_seq_open(rt, 3), 0);    /* pushes them out to the cold tier */
	store(rt, 3, tok, 0, 40);
	cr_assert_gt(stats(rt).evicted_blocks, 0);
	tkv_close(rt); /* sequences 1-3 left open: their records stay */
	rt = open_rt(&c);
	cr_assert_gt(stats(rt).cache_dropped_other, 0,
		     "the fork's anonymous records were found at open and removed");
	for (uint32_t i = 0; i < 40; i++)
		tok[i] = 900 + i;
	cr_assert_eq(serve(rt, 4, tok, 16, NULL), 0);
	tkv__seq *s = tkv__seq_get(&rt->seqs, 4);
	cr_assert_not_null(s);
	for (uint64_t b = 0; b < 16 / BT; b++) {
		tkv__unit *u = tkv__seq_unit(s, b);
		cr_assert_not_null(u);
		cr_assert_eq(ck_pr_load_32(&u->published), TKV__PUB_YES);
		cr_assert_eq(u->rec_seq, TKV__CACHE_SEQ);
		cr_assert_lt(u->rec_block, 1ull << 62, "block %llu published as entry id %#llx",
			     (unsigned long long)b, (unsigned long long)u->rec_block);
	}
	tkv__seq_put(s);
	tkv_close(rt);
}

/* A run that switched the directory to another model and did not close
 * cleanly leaves cache-model "dirty": the next run trusts none of the cache
 * records (the old model's removals may not have reached the disk). */
Test(cache, dirty_model_file_drops_every_cache_record, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = config("model-a", true);
	c.hot_bytes = 8 * LAYERS * BT * ROW * 2;
	c.hot_high_pct = 80;
	c.hot_low_pct = 1;
	tkv_runtime *rt = open_rt(&c);
	uint32_t tok[40];
	for (uint64_t id = 1; id <= 3; id++) {
		for (uint32_t i = 0; i < 40; i++)
			tok[i] = (uint32_t)(id * 100 + i);
		serve(rt, id, tok, 40, NULL);
		cr_assert_eq(tkv_seq_close(rt, id), 0);
	}
	cr_assert_gt(stats(rt).cache_entries_cold, 0);
	tkv_close(rt); /* the evictor may write more before it stops */
	char path[128];
	snprintf(path, sizeof(path), "%s/cache-model", dir);
	FILE *f = fopen(path, "r");
	char buf[64] = "";
	cr_assert_not_null(f);
	cr_assert_gt(fread(buf, 1, sizeof(buf) - 1, f), 0);
	fclose(f);
	cr_assert_str_eq(buf, "clean\nmodel-a", "a clean close seals the directory");
	rt = open_rt(&c);
	uint64_t cold = stats(rt).cache_recovered;
	cr_assert_gt(cold, 0, "a clean directory's records are recovered");
	tkv_close(rt);
	f = fopen(path, "w");
	fputs("dirty\nmodel-a", f);
	fclose(f);
	rt = open_rt(&c);
	tkv_stats st = stats(rt);
	cr_assert_eq(st.cache_recovered, 0);
	cr_assert_eq(st.cache_dropped_other, cold);
	tkv_close(rt);
}

/* A runtime without model_id removes the cache records a previous run left
 * (README, cold tier): nothing could match or drop them. */
Test(cache, cacheless_run_removes_cache_records, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = config("model-a", true);
	c.hot_bytes = 8 * LAYERS * BT * ROW * 2;
	c.hot_high_pct = 80;
	c.hot_low_pct = 1;
	tkv_runtime *rt = open_rt(&c);
	uint32_t tok[40];
	for (uint64_t id = 1; id <= 3; id++) {
		for (uint32_t i = 0; i < 40; i++)
			tok[i] = (uint32_t)(id * 100 + i);
		serve(rt, id, tok, 40, NULL);
		cr_assert_eq(tkv_seq_close(rt, id), 0);
	}
	tkv_close(rt);
	rt = open_rt(&c);
	cr_assert_gt(stats(rt).cache_recovered, 0);
	tkv_close(rt);
	tkv_config plain = config(NULL, true);
	plain.hot_bytes = c.hot_bytes;
	rt = open_rt(&plain);
	tkv_close(rt);
	rt = open_rt(&c);
	cr_assert_eq(stats(rt).cache_recovered, 0, "the cache-less run left cache records");
	tkv_close(rt);
}

/* What a prompt of 8 tokens (2 blocks) with this id matches now. */
static uint64_t matched(tkv_runtime *rt, uint32_t id)
{
	uint32_t tok[8];
	for (uint32_t i = 0; i < 8; i++)
		tok[i] = id * 1000 + i;
	tkv_cache_match m = {.struct_size = sizeof(m)};
	cr_assert_eq(tkv_cache_lookup(rt, tok, 8, NULL, &m), 0, "%s", tkv_last_error());
	return m.tokens;
}

static void serve_ids(tkv_runtime *rt, uint32_t first, uint32_t n)
{
	uint32_t tok[8];
	for (uint32_t id = first; id < first + n; id++) {
		for (uint32_t i = 0; i < 8; i++)
			tok[i] = id * 1000 + i;
		serve(rt, id, tok, 8, NULL);
		cr_assert_eq(tkv_seq_close(rt, id), 0);
	}
}

/* tkv_close writes the cache blocks only RAM holds while the cold tier has
 * free slots, and never drops a record for them: a second close with the
 * cold tier full keeps exactly the prompts the first one wrote. */
Test(cache, close_keeps_ram_blocks_without_dropping_records, .init = make_dir,
     .fini = remove_dir)
{
	enum { N = 64 };
	tkv_config c = config("model-a", true);
	c.cold_bytes = 64 << 10; /* a few records: fewer than 2 x N blocks */
	tkv_runtime *rt = open_rt(&c);
	serve_ids(rt, 1, N);
	cr_assert_eq(stats(rt).evicted_blocks, 0, "the hot tier never filled");
	tkv_close(rt);

	rt = open_rt(&c);
	uint64_t recovered = stats(rt).cache_recovered;
	cr_assert_gt(recovered, 0);
	cr_assert_lt(recovered, 2 * N, "the cold tier filled up");
	bool kept[N + 1] = {false};
	uint32_t n_kept = 0;
	for (uint32_t id = 1; id <= N; id++) {
		uint64_t t = matched(rt, id);
		cr_assert(t == 0 || t == 4 || t == 8, "%llu", (unsigned long long)t);
		kept[id] = t == 8;
		n_kept += kept[id];
	}
	cr_assert_gt(n_kept, 0);
	serve_ids(rt, 1000, N); /* RAM-only blocks, and no free slot */
	tkv_close(rt);

	rt = open_rt(&c);
	cr_assert_eq(stats(rt).cache_recovered, recovered);
	for (uint32_t id = 1; id <= N; id++)
		if (kept[id])
			cr_assert_eq(matched(rt, id), 8, "prompt %u lost its record", id);
	for (uint32_t id = 1000; id < 1000 + N; id++)
		cr_assert_eq(matched(rt, id), 0, "prompt %u took a slot", id);
	tkv_close(rt);
}

/* With fewer free cold slots than RAM-only cache blocks, close keeps the
 * ones the policy would have kept longest: the prompt served last is
 * recovered whole, the one served first is not. */
Test(cache, close_keeps_the_most_recent_blocks_first, .init = make_dir, .fini = remove_dir)
{
	enum { N = 64 };
	tkv_config c = config("model-a", true);
	c.cold_bytes = 64 << 10; /* a few records: fewer than 2 x N blocks */
	tkv_runtime *rt = open_rt(&c);
	serve_ids(rt, 1, N);
	tkv_close(rt);
	rt = open_rt(&c);
	cr_assert_lt(stats(rt).cache_recovered, 2 * N, "the cold tier filled up");
	cr_assert_eq(matched(rt, N), 8, "the last prompt served is kept");
	cr_assert_eq(matched(rt, 1), 0, "the first prompt served is not");
	tkv_close(rt);
}
