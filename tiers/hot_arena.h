/*
 * hot_arena.h - the hot tier's memory: one jemalloc arena per worker, 64-byte
 * aligned blocks.
 *
 * Each worker allocates the blocks of the layers it owns from its own arena,
 * so workers never contend on an allocator lock and a block's pages stay on
 * the worker's side of the machine. Blocks may be freed from any thread
 * (sequence close runs on an engine thread); jemalloc returns them to the
 * owning arena. The thread cache is bypassed (MALLOCX_TCACHE_NONE) so a block
 * freed by an engine thread is not kept in that thread's cache, where the
 * worker could never reuse it.
 *
 * Sanitizer builds route to aligned_alloc/free instead: FACTS.md measured
 * that ASan cannot see overflows inside mallocx memory, and that is exactly
 * the memory the tests must check.
 */
#ifndef TKV_TIERS_HOT_ARENA_H
#define TKV_TIERS_HOT_ARENA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tkv__arena {
	unsigned index; /* jemalloc arena index; unused in sanitizer builds */
	int flags;      /* mallocx flags for this arena */
	bool created;
} tkv__arena;

/* Creates an arena. 0 or -ENOMEM with a message. */
int tkv__arena_create(tkv__arena *a);
/* Destroys an arena whose blocks have all been freed. */
void tkv__arena_destroy(tkv__arena *a);
/* A 64-byte aligned block of `size` bytes, or NULL. */
void *tkv__arena_alloc(const tkv__arena *a, size_t size);
/* Frees a block from tkv__arena_alloc with the same size; any thread. */
void tkv__arena_free(const tkv__arena *a, void *p, size_t size);
/* "jemalloc" or "aligned_alloc (sanitizer build)". */
const char *tkv__arena_backend(void);

#endif
