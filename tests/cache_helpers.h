/*
 * cache_helpers.h - what the prefix-cache suites (tests/cache_*.c) share:
 * KV bytes that are a function of the token prefix that produced them, and
 * whole-prompt store and read-back (by copy and by view) helpers.
 *
 * The data. Row p (one token of one layer, K or V) of a sequence is a
 * deterministic function of (hash of tokens[0..p], p, layer, K/V, seed):
 * two sequences with the same token prefix store identical bytes at every
 * position of it (so whoever publishes a block, every sequence attaching it
 * reads what it would have stored), and a block attached from a sequence
 * with another prefix (a wrong hit) reads back as wrong bytes. `seed` lets a
 * test make the KV of another model or tenant differ too. The prefix hash is
 * this file's own (splitmix-style), independent of the library's keys.
 */
#ifndef TKV_TESTS_CACHE_HELPERS_H
#define TKV_TESTS_CACHE_HELPERS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/kv_pattern.h"
#include "tierkv.h"

/* hashes[p] = hash of (seed, tokens[0..p]) for p < n. */
static inline void ckv_prefix_hashes(const uint32_t *tokens, size_t n, uint64_t seed,
				     uint64_t *hashes)
{
	uint64_t h = kvp_mix(seed ^ 0x5eed5eed5eedull);
	for (size_t p = 0; p < n; p++) {
		h = kvp_mix(h ^ ((uint64_t)tokens[p] * 0x9e3779b97f4a7c15ull) ^ p);
		hashes[p] = h;
	}
}

/* One row of `row_bytes` for (prefix hash, layer, K/V). */
static inline void ckv_row(unsigned char *dst, uint64_t prefix_hash, uint32_t layer, int kv,
			   size_t row_bytes)
{
	uint64_t base = kvp_mix(prefix_hash ^ ((uint64_t)layer << 40) ^ ((uint64_t)kv << 63));
	for (size_t j = 0; j < row_bytes; j += 8) {
		uint64_t w = kvp_mix(base + j);
		size_t m = row_bytes - j < 8 ? row_bytes - j : 8;
		memcpy(dst + j, &w, m);
	}
}

/* The expected K and V of one layer for positions [0, n): k and v of n rows. */
static inline void ckv_fill_layer(unsigned char *k, unsigned char *v, const uint64_t *hashes,
				  size_t n, uint32_t layer, size_t row_bytes)
{
	for (size_t p = 0; p < n; p++) {
		ckv_row(k + p * row_bytes, hashes[p], layer, 0, row_bytes);
		ckv_row(v + p * row_bytes, hashes[p], layer, 1, row_bytes);
	}
}

/* A prompt's expected KV, every layer: k[l], v[l] of n rows each. */
typedef struct ckv_expect {
	uint32_t n_layers;
	size_t n, row;
	unsigned char **k, **v;
} ckv_expect;

static inline void ckv_expect_make(ckv_expect *e, const uint32_t *tokens, size_t n,
				   uint64_t seed, uint32_t n_layers, size_t row_bytes)
{
	uint64_t *h = malloc((n ? n : 1) * sizeof(*h));
	ckv_prefix_hashes(tokens, n, seed, h);
	e->n_layers = n_layers;
	e->n = n;
	e->row = row_bytes;
	e->k = calloc(n_layers, sizeof(*e->k));
	e->v = calloc(n_layers, sizeof(*e->v));
	for (uint32_t l = 0; l < n_layers; l++) {
		e->k[l] = malloc((n ? n : 1) * row_bytes);
		e->v[l] = malloc((n ? n : 1) * row_bytes);
		ckv_fill_layer(e->k[l], e->v[l], h, n, l, row_bytes);
	}
	free(h);
}

static inline void ckv_expect_free(ckv_expect *e)
{
	for (uint32_t l = 0; l < e->n_layers; l++) {
		free(e->k[l]);
		free(e->v[l]);
	}
	free(e->k);
	free(e->v);
	memset(e, 0, sizeof(*e));
}

/* Stores positions [from, e->n) of every layer, in batches of `batch`
 * tokens (0: one batch per layer), layer after layer, straight from the
 * expected buffers (valid until the caller's sync). 0 or the first error. */
static inline int ckv_store(tkv_runtime *rt, uint64_t seq, const ckv_expect *e, size_t from,
			    uint32_t batch)
{
	for (uint32_t l = 0; l < e->n_layers; l++)
		for (size_t p = from; p < e->n;) {
			uint32_t m = batch && e->n - p > batch ? batch : (uint32_t)(e->n - p);
			int rc = tkv_store(rt, seq, l, p, m, e->k[l] + p * e->row,
					   e->v[l] + p * e->row, 0, NULL);
			if (rc)
				return rc;
			p += m;
		}
	return 0;
}

/* Reads positions [from, to) of one layer by copy; 0 if every byte matches,
 * the read's error, or 1 on a mismatch. */
static inline int ckv_check_read(tkv_runtime *rt, uint64_t seq, const ckv_expect *e,
				 uint32_t layer, size_t from, size_t to)
{
	size_t n = to - from;
	unsigned char *k = malloc(n * e->row), *v = malloc(n * e->row);
	int rc = tkv_read(rt, seq, layer, from, (uint32_t)n, k, v);
	if (rc == 0)
		rc = memcmp(k, e->k[layer] + from * e->row, n * e->row) ||
		     memcmp(v, e->v[layer] + from * e->row, n * e->row);
	free(k);
	free(v);
	return rc;
}

/* The same through a view (every block, every row); 0, an error, or 1. */
static inline int ckv_check_view(tkv_runtime *rt, uint64_t seq, const ckv_expect *e,
				 uint32_t layer, size_t from, size_t to, uint32_t block_tokens)
{
	uint32_t max = (uint32_t)((to - from) / block_tokens + 2);
	tkv_view_block *b = calloc(max, sizeof(*b));
	tkv_view vw = {.struct_size = sizeof(vw), .blocks = b, .max_blocks = max};
	int rc = tkv_view_acquire(rt, seq, layer, from, (uint32_t)(to - from), &vw);
	if (rc == 0) {
		uint64_t p = from;
		for (uint32_t i = 0; i < vw.n_blocks && rc == 0; i++) {
			size_t len = (size_t)b[i].n_tokens * e->row;
			rc = b[i].first_pos != p || memcmp(b[i].k, e->k[layer] + p * e->row, len) ||
			     memcmp(b[i].v, e->v[layer] + p * e->row, len);
			p += b[i].n_tokens;
		}
		if (rc == 0 && p != to)
			rc = 1;
		int rr = tkv_view_release(rt, &vw);
		if (rc == 0)
			rc = rr;
	}
	free(b);
	return rc;
}

/* Every layer, [0, e->n), by copy and by view. 0 or the first failure. */
static inline int ckv_check_all(tkv_runtime *rt, uint64_t seq, const ckv_expect *e,
				uint32_t block_tokens)
{
	for (uint32_t l = 0; l < e->n_layers; l++) {
		int rc = ckv_check_read(rt, seq, e, l, 0, e->n);
		if (rc == 0)
			rc = ckv_check_view(rt, seq, e, l, 0, e->n, block_tokens);
		if (rc)
			return rc;
	}
	return 0;
}

static inline tkv_stats ckv_stats(tkv_runtime *rt)
{
	tkv_stats st;
	memset(&st, 0, sizeof(st));
	st.struct_size = sizeof(st);
	tkv_stats_get(rt, &st);
	return st;
}

#endif
