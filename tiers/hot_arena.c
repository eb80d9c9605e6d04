/*
 * hot_arena.c - per-worker block pools for the hot tier (why, in
 * hot_arena.h).
 */
#include "tiers/hot_arena.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include <ck_pr.h>
#include <jemalloc/jemalloc.h>

#include "base/array.h"
#include "base/error.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define TKV_SANITIZER_ALLOC 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define TKV_SANITIZER_ALLOC 1
#endif
#endif

enum { BLOCK_ALIGN = 64 };
#define HUGE_BYTES ((size_t)2 << 20) /* slabs are whole huge pages */
enum { MAX_HUGE_PER_SLAB = 16, WASTE_DIVISOR = 32 };

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels say EINVAL */
#endif

static size_t round_block(size_t n)
{
	return (n + BLOCK_ALIGN - 1) & ~(size_t)(BLOCK_ALIGN - 1);
}

/* Sanitizer builds give each block its own allocation (hot_arena.h), unless
 * a test asked for the pool; other builds always pool. */
#ifdef TKV_SANITIZER_ALLOC
#define PER_BLOCK(a) (!(a)->pooled)
#else
#define PER_BLOCK(a) false
#endif

/* A block of its own is aligned as a pooled one would be: a pool's blocks
 * of a 4 KiB multiple sit at 4 KiB multiples in their 2 MiB-aligned slab,
 * which lets the evictor write them to the SSD in place (tiers/cold.h,
 * direct writes); sanitizer builds then test that path too. */
static size_t per_block_align(const tkv__arena *a)
{
	return a->block_bytes % 4096 == 0 ? 4096 : BLOCK_ALIGN;
}

int tkv__arena_create(tkv__arena *a, size_t block_bytes)
{
#ifdef TKV_SANITIZER_ALLOC
	memset(a, 0, sizeof(*a));
	a->block_bytes = round_block(block_bytes);
	a->created = true;
	return 0;
#else
	return tkv__arena_create_pool(a, block_bytes);
#endif
}

/*
 * A slab is a whole number of huge pages, so every byte of it can be backed
 * by them (a slab of 52 blocks of 40000 bytes, not a multiple of 2 MiB, got
 * none). The fewest huge pages whose tail after the last whole block is at
 * most 1/WASTE_DIVISOR of the slab, else the least wasteful of up to
 * MAX_HUGE_PER_SLAB: blocks that divide 2 MiB (the usual power-of-two
 * geometries) waste nothing; 768 KiB blocks take 6 MiB slabs of 8.
 */
static void slab_geometry(size_t block_bytes, size_t *slab_bytes, size_t *per_slab)
{
	size_t best = 0, best_waste = SIZE_MAX;
	for (size_t m = 1; m <= MAX_HUGE_PER_SLAB; m++) {
		size_t bytes = m * HUGE_BYTES, n = bytes / block_bytes;
		if (!n)
			continue;
		size_t waste = bytes - n * block_bytes;
		if (!best || waste * best < best_waste * bytes) { /* waste/bytes smaller */
			best = bytes;
			best_waste = waste;
		}
		if (waste <= bytes / WASTE_DIVISOR)
			break;
	}
	if (!best) /* a block larger than MAX_HUGE_PER_SLAB huge pages */
		best = (block_bytes + HUGE_BYTES - 1) / HUGE_BYTES * HUGE_BYTES;
	*slab_bytes = best;
	*per_slab = best / block_bytes;
}

int tkv__arena_create_pool(tkv__arena *a, size_t block_bytes)
{
	unsigned idx;
	size_t len = sizeof(idx);
	memset(a, 0, sizeof(*a));
	int rc = mallctl("arenas.create", &idx, &len, NULL, 0);
	if (rc)
		return tkv__fail(-ENOMEM, "hot tier: jemalloc arenas.create failed: %d", rc);
	a->index = idx;
	/* slabs aligned to 2 MiB so transparent huge pages can back them */
	a->flags = (int)(MALLOCX_ARENA(idx) | MALLOCX_ALIGN(HUGE_BYTES) | MALLOCX_TCACHE_NONE);
	a->block_bytes = round_block(block_bytes);
	slab_geometry(a->block_bytes, &a->slab_bytes, &a->blocks_per_slab);
	pthread_mutex_init(&a->lock, NULL);
	a->pooled = true;
	a->created = true;
	return 0;
}

void tkv__arena_destroy(tkv__arena *a)
{
	char name[64];
	if (!a->created)
		return;
	if (!a->pooled) {
		a->created = false;
		return;
	}
	for (size_t i = 0; i < a->n_slabs; i++)
		sdallocx(a->slabs[i], a->slab_bytes, a->flags);
	free(a->slabs);
	free(a->free_blocks);
	pthread_mutex_destroy(&a->lock);
	/* Returns the arena's pages to the OS and its index to jemalloc, so
	 * repeated open/close in one process does not pile up arenas. */
	snprintf(name, sizeof(name), "arena.%u.destroy", a->index);
	(void)mallctl(name, NULL, NULL, NULL, 0);
	a->created = false;
}

/* Faults in every page of a slab. MADV_POPULATE_WRITE reports memory the
 * kernel cannot supply as ENOMEM (with overcommit, a plain first write
 * would rather get the process killed); where it is missing or refused,
 * one write per 4 KiB (a whole huge page at its first). The contents do
 * not matter: blocks are written before use. */
static int populate_slab(unsigned char *slab, size_t bytes)
{
	if (madvise(slab, bytes, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno == ENOMEM)
		return -ENOMEM;
	/* EINVAL (no such advice), or a sandbox refusing the call: write. */
	for (size_t off = 0; off < bytes; off += 4096)
		((volatile unsigned char *)slab)[off] = 0;
	return 0;
}

static uint32_t test_failing_allocs; /* atomic; tkv__arena_test_fail_allocs */

void tkv__arena_test_fail_allocs(uint32_t n)
{
	ck_pr_store_32(&test_failing_allocs, n);
}

/* One of the failures a test asked for, if any is left. */
static bool test_fail_one(void)
{
	uint32_t n = ck_pr_load_32(&test_failing_allocs);
	while (n && !ck_pr_cas_32_value(&test_failing_allocs, n, n - 1, &n))
		;
	return n != 0;
}

/* Called with the lock held: one more slab, its blocks on the free list;
 * populate: every page of it faulted in now. */
static int grow(tkv__arena *a, bool populate)
{
	if (populate && test_fail_one()) /* tkv__arena_alloc checks its own */
		return -ENOMEM;
	void **s = tkv__array_grow(a->slabs, &a->cap_slabs, a->n_slabs + 1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	a->slabs = s;
	void **f = tkv__array_grow(a->free_blocks, &a->cap_free,
				   (a->n_slabs + 1) * a->blocks_per_slab, sizeof(*f));
	if (!f)
		return -ENOMEM;
	a->free_blocks = f;
	unsigned char *slab = mallocx(a->slab_bytes, a->flags);
	if (!slab)
		return -ENOMEM;
	/* 2 MiB-aligned slabs of whole huge pages can be backed by them:
	 * streaming block writes then miss the TLB far less (THP is often
	 * "madvise" only). */
	(void)madvise(slab, a->slab_bytes, MADV_HUGEPAGE);
	if (populate && populate_slab(slab, a->slab_bytes)) {
		sdallocx(slab, a->slab_bytes, a->flags);
		return -ENOMEM;
	}
	a->slabs[a->n_slabs++] = slab;
	for (size_t i = a->blocks_per_slab; i-- > 0;) /* taken lowest address first */
		a->free_blocks[a->n_free++] = slab + i * a->block_bytes;
	return 0;
}

void *tkv__arena_alloc(tkv__arena *a)
{
	if (test_fail_one())
		return NULL;
	if (PER_BLOCK(a))
		return aligned_alloc(per_block_align(a), a->block_bytes);
	void *b = NULL;
	pthread_mutex_lock(&a->lock);
	if (a->n_free || grow(a, false) == 0)
		b = a->free_blocks[--a->n_free];
	pthread_mutex_unlock(&a->lock);
	return b;
}

void tkv__arena_free(tkv__arena *a, void *p)
{
	if (!p)
		return;
	if (PER_BLOCK(a)) {
		free(p);
		return;
	}
	pthread_mutex_lock(&a->lock);
	a->free_blocks[a->n_free++] = p; /* room: every slab's blocks have a place */
	pthread_mutex_unlock(&a->lock);
}

int tkv__arena_populate(tkv__arena *a, size_t blocks)
{
	if (PER_BLOCK(a))
		return 0;
	int rc = 0;
	pthread_mutex_lock(&a->lock);
	while (!rc && a->n_slabs * a->blocks_per_slab < blocks)
		rc = grow(a, true);
	pthread_mutex_unlock(&a->lock);
	return rc;
}
