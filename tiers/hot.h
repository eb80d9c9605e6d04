/*
 * hot.h - the hot tier: a fixed capacity of blocks in RAM, and where they
 * come from.
 *
 * Capacity. `used` counts blocks reserved, not blocks allocated: a producer
 * reserves every block a batch will open before pushing it (one CAS per
 * batch, never per token), so a worker never finds the tier full halfway
 * through a copy, and a store that cannot fit fails or waits before anything
 * is queued. Whoever frees a block releases its reservation.
 *
 * Memory. One block pool per worker (hot_arena.h says why pools). The blocks
 * of layer l always come from pool l % n_pools, the pool of the worker that
 * owns layer l, so workers never contend on one allocator; any thread may
 * free a block back to its layer's pool (the evictor, a closing sequence).
 *
 * Space. Threads that need space (a store past the capacity, a promotion)
 * sleep on `space`, signaled whenever blocks are released (base/wake.h).
 *
 * The hot tier knows nothing of sequences, the evictor or the runtime.
 */
#ifndef TKV_TIERS_HOT_H
#define TKV_TIERS_HOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_pr.h>

#include "base/wake.h"
#include "tiers/hot_arena.h"

typedef struct tkv__hot {
	uint64_t used __attribute__((aligned(64))); /* reserved blocks (atomic) */
	tkv__wake space __attribute__((aligned(64)));
	uint64_t capacity; /* blocks */
	size_t block_bytes;
	tkv__arena *pools;
	uint32_t n_pools;
} tkv__hot;

/* Makes n_pools pools of block_bytes blocks and a capacity of
 * capacity_blocks. 0 or -ENOMEM with a message; on failure nothing is left
 * to close. */
int tkv__hot_open(tkv__hot *h, uint64_t capacity_blocks, size_t block_bytes, uint32_t n_pools);
/* Allocates and faults in pool i's share of the capacity (pool i serves the
 * layers l of n_layers with l % n_pools == i), its block count in *share.
 * 0, or -ENOMEM (no message: the caller knows what it was opening). Any
 * thread; the runtime calls it on the pool's own worker, so the pages come
 * from that worker's NUMA node. */
int tkv__hot_populate_pool(tkv__hot *h, uint32_t i, uint32_t n_layers, uint64_t *share);
/* Returns every pool's memory; every block must have been freed (or be
 * abandoned). Idempotent, and safe on a zeroed or half-opened tier. */
void tkv__hot_close(tkv__hot *h);

/* Takes `blocks` of capacity if they fit; false (nothing taken) otherwise. */
bool tkv__hot_reserve(tkv__hot *h, uint64_t blocks);
/* Gives back `blocks` of capacity and wakes threads waiting for space. */
void tkv__hot_release(tkv__hot *h, uint64_t blocks);
/* Blocks reserved now (a snapshot). */
static inline uint64_t tkv__hot_used(const tkv__hot *h)
{
	return ck_pr_load_64((uint64_t *)&h->used);
}

/* A block for layer l from its pool, or NULL (out of memory). The caller
 * holds a reservation for it. Any thread. */
void *tkv__hot_alloc(tkv__hot *h, uint32_t layer);
/* Gives a block of layer l back to its pool (not its reservation: see
 * tkv__hot_release). NULL is ignored. Any thread. */
void tkv__hot_free(tkv__hot *h, uint32_t layer, void *mem);

#endif
