/*
 * hot.c - the hot tier's capacity and pools (design in hot.h).
 */
#include "tiers/hot.h"

#include <errno.h>
#include <stdlib.h>

#include <ck_pr.h>

#include "base/error.h"

/* Pool i serves the layers l with l % n_pools == i: its share of the
 * capacity, rounded up. */
static uint64_t pool_share(uint64_t capacity, uint32_t n_layers, uint32_t n_pools, uint32_t i)
{
	uint64_t layers = n_layers / n_pools + (i < n_layers % n_pools);
	return capacity / n_layers * layers + ((capacity % n_layers) * layers + n_layers - 1) / n_layers;
}

int tkv__hot_open(tkv__hot *h, uint64_t capacity_blocks, size_t block_bytes, uint32_t n_pools)
{
	*h = (tkv__hot){.capacity = capacity_blocks, .block_bytes = block_bytes};
	h->pools = calloc(n_pools, sizeof(*h->pools));
	if (!h->pools)
		return tkv__fail(-ENOMEM, "open: hot tier pools");
	for (uint32_t i = 0; i < n_pools; i++) {
		int rc = tkv__arena_create(&h->pools[i], block_bytes);
		if (rc) {
			tkv__hot_close(h);
			return rc;
		}
		h->n_pools = i + 1;
	}
	return 0;
}

int tkv__hot_populate_pool(tkv__hot *h, uint32_t i, uint32_t n_layers, uint64_t *share)
{
	*share = pool_share(h->capacity, n_layers, h->n_pools, i);
	return tkv__arena_populate(&h->pools[i], *share);
}

void tkv__hot_close(tkv__hot *h)
{
	for (uint32_t i = 0; i < h->n_pools; i++)
		tkv__arena_destroy(&h->pools[i]);
	free(h->pools);
	h->pools = NULL;
	h->n_pools = 0;
}

bool tkv__hot_reserve(tkv__hot *h, uint64_t blocks)
{
	uint64_t cur = ck_pr_load_64(&h->used);
	do {
		if (cur + blocks > h->capacity)
			return false;
	} while (!ck_pr_cas_64_value(&h->used, cur, cur + blocks, &cur));
	return true;
}

void tkv__hot_release(tkv__hot *h, uint64_t blocks)
{
	if (!blocks)
		return;
	ck_pr_sub_64(&h->used, blocks);
	tkv__wake_signal(&h->space);
}

void *tkv__hot_alloc(tkv__hot *h, uint32_t layer)
{
	return tkv__arena_alloc(&h->pools[layer % h->n_pools]);
}

void tkv__hot_free(tkv__hot *h, uint32_t layer, void *mem)
{
	if (mem)
		tkv__arena_free(&h->pools[layer % h->n_pools], mem);
}
