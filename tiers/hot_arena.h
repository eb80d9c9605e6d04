/*
 * hot_arena.h - the hot tier's memory: one pool of fixed-size, 64-byte
 * aligned blocks per worker, carved from slabs of that worker's own jemalloc
 * arena.
 *
 * Why a pool on top of jemalloc: the hot tier fills, drains (evictions,
 * closed sequences) and fills again all day. Freeing blocks back to a
 * jemalloc arena (thread cache off, decay disabled) and allocating them
 * again got fresh address ranges every round, so every refill page-faulted
 * the whole footprint and the pipeline ran at a small fraction of the copy
 * limit with most of its time in the kernel (docs/MEASUREMENTS.md). A free
 * list of blocks keeps their pages warm and makes allocation O(1). Slabs are only returned
 * at close. A pool grows on demand to the blocks in use at its peak, which
 * the runtime's capacity check bounds by hot_bytes; by default the runtime
 * also populates each pool with its share of hot_bytes at open
 * (tkv__arena_populate), so stores within that share never wait for
 * first-touch faults. Slabs are whole huge pages (hot_arena.c,
 * slab_geometry), so transparent huge pages can back all of them.
 *
 * Each worker allocates the blocks of the layers it owns from its own arena,
 * so workers never contend on one allocator, and the jemalloc thread cache is
 * bypassed (MALLOCX_TCACHE_NONE). Blocks may be freed from any thread (the
 * evictor, sequence close); the free list has its own short mutex.
 *
 * Sanitizer builds give every block its own aligned_alloc instead (4 KiB
 * aligned when its size is a multiple of 4 KiB, as in a pool): ASan
 * cannot see overflows inside mallocx memory, nor could it inside a slab
 * (docs/SANITIZERS.md), and block bounds are exactly what those tests must
 * check.
 */
#ifndef TKV_TIERS_HOT_ARENA_H
#define TKV_TIERS_HOT_ARENA_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tkv__arena {
	unsigned index; /* jemalloc arena index; unused in sanitizer builds */
	int flags;      /* mallocx flags for this arena's slabs */
	bool created;
	bool pooled;    /* slab pool; false: aligned_alloc per block (sanitizer builds) */
	size_t block_bytes, blocks_per_slab;
	size_t slab_bytes; /* whole huge pages (hot_arena.c, slab_geometry) */
	pthread_mutex_t lock; /* free list and slab table */
	/* Free blocks, a stack of pointers with a place for every block of
	 * every slab. Not a list linked through the blocks' first words: the
	 * allocating worker then read a block nobody had touched since it was
	 * freed, a cache miss that was 1.6% of a worker's samples (perf, 1
	 * worker, f32), on the line its streaming copy then overwrites. */
	void **free_blocks;
	size_t n_free, cap_free;
	void **slabs;
	size_t n_slabs, cap_slabs;
} tkv__arena;

/* Creates a pool of blocks of block_bytes. 0 or -ENOMEM with a message. */
int tkv__arena_create(tkv__arena *a, size_t block_bytes);
/* As tkv__arena_create, but the slab pool in every build, sanitizer builds
 * included: for tests of the pool itself (its lock and free list), which
 * tkv__arena_create replaces there. */
int tkv__arena_create_pool(tkv__arena *a, size_t block_bytes);
/* Returns every slab and destroys the jemalloc arena; all blocks must have
 * been freed (or be abandoned). */
void tkv__arena_destroy(tkv__arena *a);
/* A 64-byte aligned block of block_bytes, or NULL. Any thread. */
void *tkv__arena_alloc(tkv__arena *a);
/* Tests: the next n block allocations of any arena, or slab growths at
 * populate, fail as if the kernel had no memory left (hot-tier blocks are
 * reserved before they are allocated, so that is the only way an
 * allocation fails). Every block allocation checks it, free list or not,
 * so a test can fail one whatever its pool holds (one atomic load per
 * block). */
void tkv__arena_test_fail_allocs(uint32_t n);
/* Gives a block from tkv__arena_alloc back to its pool. Any thread. */
void tkv__arena_free(tkv__arena *a, void *p);

/* Grows the pool until its slabs hold at least `blocks`, every page of the
 * new slabs faulted in (tkv_config.hot_populate). 0, or -ENOMEM when a slab
 * cannot be had (the slabs already added stay). A pool without slabs
 * (sanitizer builds, tkv__arena_create) does nothing and returns 0. */
int tkv__arena_populate(tkv__arena *a, size_t blocks);

#endif
