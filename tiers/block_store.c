/*
 * block_store.c - sequence objects and their segmented block tables (see block_store.h for
 * who writes what).
 */
#include "tiers/block_store.h"

#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>

#include "base/hash.h"

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
	for (uint32_t i = 0; i < n_layers; i++)
		s->layers[i].wait_min = UINT64_MAX;
	s->id = id;
	s->n_layers = n_layers;
	return s;
}

/* Chunk and offset of entry b; false past the last chunk. */
static bool chunk_locate(uint64_t b, unsigned *chunk, uint64_t *off)
{
	/* chunk k starts at block 64 * (2^k - 1) */
	uint64_t q = b / TKV__CHUNK0 + 1;
	unsigned k = 63u - (unsigned)__builtin_clzll(q);
	*chunk = k;
	*off = b - (uint64_t)TKV__CHUNK0 * ((1ull << k) - 1);
	return k < TKV__NCHUNKS;
}

tkv__block *tkv__seq_block(const tkv__layer *l, uint64_t b)
{
	unsigned k;
	uint64_t off;
	if (!chunk_locate(b, &k, &off))
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
	if (!chunk_locate(b, &k, &off))
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

uint64_t tkv__seq_free(tkv__seq *s, void (*free_block)(void *ctx, uint32_t layer, void *mem),
		       void *ctx)
{
	uint64_t freed = 0;
	if (!s)
		return 0;
	for (uint32_t li = 0; li < s->n_layers; li++) {
		tkv__layer *l = &s->layers[li];
		for (unsigned k = 0; k < TKV__NCHUNKS; k++) {
			tkv__block *c = l->chunks[k];
			if (!c)
				continue;
			for (size_t i = 0; i < ((size_t)TKV__CHUNK0 << k); i++)
				if (c[i].mem) {
					free_block(ctx, li, c[i].mem);
					freed++;
				}
			free(c);
		}
	}
	for (unsigned k = 0; k < TKV__NCHUNKS; k++)
		free(s->units[k]);
	free(s->layers);
	free(s);
	return freed;
}

tkv__unit *tkv__seq_unit(const tkv__seq *s, uint64_t b)
{
	unsigned k;
	uint64_t off;
	if (!chunk_locate(b, &k, &off))
		return NULL;
	/* Acquire: the chunk's initialized contents before the pointer. */
	tkv__unit *c = ck_pr_load_ptr(&s->units[k]);
	ck_pr_fence_acquire();
	return c ? &c[off] : NULL;
}

/* A fresh chunk: every unit knows its sequence and block, not in a policy. */
static tkv__unit *unit_chunk_new(tkv__seq *s, unsigned k)
{
	size_t n = (size_t)TKV__CHUNK0 << k;
	tkv__unit *c = calloc(n, sizeof(*c));
	if (!c)
		return NULL;
	uint64_t first = (uint64_t)TKV__CHUNK0 * ((1ull << k) - 1);
	for (size_t i = 0; i < n; i++) {
		c[i].seq = s;
		c[i].block = first + i;
		tkv__policy_node_init(&c[i].node, tkv__mix_pair(s->id, first + i));
	}
	return c;
}

tkv__unit *tkv__seq_unit_make(tkv__seq *s, uint64_t b)
{
	unsigned k;
	uint64_t off;
	if (!chunk_locate(b, &k, &off))
		return NULL;
	tkv__unit *c = ck_pr_load_ptr(&s->units[k]);
	ck_pr_fence_acquire();
	if (!c) {
		tkv__unit *fresh = unit_chunk_new(s, k);
		if (!fresh)
			return NULL;
		/* Release: the initialized chunk before its pointer. Two workers
		 * may race here; the loser frees its chunk and uses the winner's. */
		ck_pr_fence_release();
		if (ck_pr_cas_ptr_value(&s->units[k], NULL, fresh, &c)) {
			c = fresh;
		} else {
			free(fresh);
			ck_pr_fence_acquire();
		}
	}
	return &c[off];
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

void tkv__seq_put(tkv__seq *s)
{
	/* Release: everything this caller did with the sequence happens before
	 * the closer's acquire of refs == 0 and the free that follows. */
	ck_pr_fence_release();
	ck_pr_dec_32(&s->refs);
}
