/*
 * seq.c - sequence objects and their segmented block tables (see seq.h for
 * who writes what).
 */
#include "runtime/seq.h"

#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>

_Static_assert(sizeof(tkv__layer) % 64 == 0, "layers must not share cache lines");

tkv__seq *tkv__seq_new(uint64_t id, uint32_t n_layers)
{
	tkv__seq *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->layers = aligned_alloc(64, sizeof(tkv__layer) * n_layers);
	if (!s->layers) {
		free(s);
		return NULL;
	}
	memset(s->layers, 0, sizeof(tkv__layer) * n_layers);
	s->id = id;
	s->n_layers = n_layers;
	return s;
}

static void chunk_locate(uint64_t b, unsigned *chunk, uint64_t *off)
{
	/* chunk k starts at block 64 * (2^k - 1) */
	uint64_t q = b / TKV__CHUNK0 + 1;
	unsigned k = 63u - (unsigned)__builtin_clzll(q);
	*chunk = k;
	*off = b - (uint64_t)TKV__CHUNK0 * ((1ull << k) - 1);
}

tkv__block *tkv__seq_block(const tkv__layer *l, uint64_t b)
{
	unsigned k;
	uint64_t off;
	chunk_locate(b, &k, &off);
	if (k >= TKV__NCHUNKS)
		return NULL;
	/* Plain load is enough: the caller acquired done_pos, which the worker
	 * released after storing this pointer. ck_pr keeps it a single load. */
	tkv__block *c = ck_pr_load_ptr(&l->chunks[k]);
	return c ? &c[off] : NULL;
}

tkv__block *tkv__seq_block_make(tkv__layer *l, uint64_t b)
{
	unsigned k;
	uint64_t off;
	chunk_locate(b, &k, &off);
	if (k >= TKV__NCHUNKS)
		return NULL;
	tkv__block *c = l->chunks[k];
	if (!c) {
		c = calloc((size_t)TKV__CHUNK0 << k, sizeof(*c));
		if (!c)
			return NULL;
		/* Published to readers by the later release of done_pos. */
		ck_pr_store_ptr(&l->chunks[k], c);
	}
	return &c[off];
}

void tkv__seq_free(tkv__seq *s, void (*free_block)(void *ctx, uint32_t layer, void *mem),
		   void *ctx)
{
	if (!s)
		return;
	for (uint32_t li = 0; li < s->n_layers; li++) {
		tkv__layer *l = &s->layers[li];
		for (unsigned k = 0; k < TKV__NCHUNKS; k++) {
			tkv__block *c = l->chunks[k];
			if (!c)
				continue;
			for (size_t i = 0; i < ((size_t)TKV__CHUNK0 << k); i++)
				if (c[i].mem)
					free_block(ctx, li, c[i].mem);
			free(c);
		}
	}
	free(s->layers);
	free(s);
}

bool tkv__seq_pin(tkv__seq *s, uint32_t n)
{
	ck_pr_add_32(&s->pins, n);
	/* Pairs with the fence in tkv__seq_table_remove (see there). */
	ck_pr_fence_memory();
	if (ck_pr_load_32(&s->closing)) {
		ck_pr_sub_32(&s->pins, n);
		return false;
	}
	return true;
}

void tkv__seq_unpin(tkv__seq *s, uint32_t n)
{
	ck_pr_sub_32(&s->pins, n);
}
