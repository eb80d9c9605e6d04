/*
 * hot_arena.c - per-worker jemalloc arenas for hot-tier blocks (see
 * hot_arena.h for why one arena per worker and why sanitizer builds differ).
 */

#include "tiers/hot_arena.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <jemalloc/jemalloc.h>

#include "runtime/error.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define TKV_SANITIZER_ALLOC 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define TKV_SANITIZER_ALLOC 1
#endif
#endif

enum { BLOCK_ALIGN = 64 };

#ifdef TKV_SANITIZER_ALLOC

int tkv__arena_create(tkv__arena *a)
{
	a->index = 0;
	a->flags = 0;
	a->created = true;
	return 0;
}

void tkv__arena_destroy(tkv__arena *a)
{
	a->created = false;
}

void *tkv__arena_alloc(const tkv__arena *a, size_t size)
{
	(void)a;
	/* aligned_alloc wants a multiple of the alignment */
	return aligned_alloc(BLOCK_ALIGN, (size + BLOCK_ALIGN - 1) & ~(size_t)(BLOCK_ALIGN - 1));
}

void tkv__arena_free(const tkv__arena *a, void *p, size_t size)
{
	(void)a;
	(void)size;
	free(p);
}

const char *tkv__arena_backend(void)
{
	return "aligned_alloc (sanitizer build)";
}

#else

int tkv__arena_create(tkv__arena *a)
{
	unsigned idx;
	size_t len = sizeof(idx);
	int rc = mallctl("arenas.create", &idx, &len, NULL, 0);
	if (rc)
		return tkv__fail(-ENOMEM, "hot tier: jemalloc arenas.create failed: %d", rc);
	a->index = idx;
	a->flags = (int)(MALLOCX_ARENA(idx) | MALLOCX_ALIGN(BLOCK_ALIGN) | MALLOCX_TCACHE_NONE);
	a->created = true;
	return 0;
}

void tkv__arena_destroy(tkv__arena *a)
{
	char name[64];
	if (!a->created)
		return;
	/* Returns the arena's pages to the OS and its index to jemalloc, so
	 * repeated open/close in one process does not pile up arenas. */
	snprintf(name, sizeof(name), "arena.%u.destroy", a->index);
	(void)mallctl(name, NULL, NULL, NULL, 0);
	a->created = false;
}

void *tkv__arena_alloc(const tkv__arena *a, size_t size)
{
	return mallocx(size, a->flags);
}

void tkv__arena_free(const tkv__arena *a, void *p, size_t size)
{
	if (p)
		sdallocx(p, size, a->flags);
}

const char *tkv__arena_backend(void)
{
	return "jemalloc";
}

#endif
