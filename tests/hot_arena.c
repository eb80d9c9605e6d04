/*
 * hot_arena.c - the per-worker block pool: blocks are 64-byte aligned,
 * distinct and fully writable; freed blocks are reused (in the pooled build,
 * the very same addresses, so their pages stay warm); frees may come from
 * other threads.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "tiers/hot_arena.h"

enum { N = 100, BLOCK = 40000 /* not a power of two: rounded up to 64 */ };

Test(hot_arena, aligned_distinct_writable)
{
	tkv__arena a;
	cr_assert_eq(tkv__arena_create(&a, BLOCK), 0);
	unsigned char *b[N];
	for (int i = 0; i < N; i++) {
		b[i] = tkv__arena_alloc(&a);
		cr_assert_not_null(b[i]);
		cr_assert_eq((uintptr_t)b[i] % 64, 0);
		memset(b[i], i, BLOCK); /* ASan checks the bounds in its build */
	}
	for (int i = 0; i < N; i++)
		for (int j = 0; j < BLOCK; j += 997)
			cr_assert_eq(b[i][j], (unsigned char)i, "blocks overlap");
	for (int i = 0; i < N; i++)
		tkv__arena_free(&a, b[i]);
	tkv__arena_destroy(&a);
}

Test(hot_arena, freed_blocks_are_reused)
{
	tkv__arena a;
	cr_assert_eq(tkv__arena_create(&a, BLOCK), 0);
	void *first[N], *again[N];
	for (int i = 0; i < N; i++)
		first[i] = tkv__arena_alloc(&a);
	for (int i = 0; i < N; i++)
		tkv__arena_free(&a, first[i]);
	for (int i = 0; i < N; i++)
		again[i] = tkv__arena_alloc(&a);
	if (strcmp(tkv__arena_backend(), "jemalloc block pool") == 0) {
		/* every block of the second round is one of the first round */
		for (int i = 0; i < N; i++) {
			bool seen = false;
			for (int j = 0; j < N && !seen; j++)
				seen = again[i] == first[j];
			cr_assert(seen, "block %d came from fresh memory", i);
		}
	}
	for (int i = 0; i < N; i++)
		tkv__arena_free(&a, again[i]);
	tkv__arena_destroy(&a);
}

struct freer {
	tkv__arena *a;
	void **blocks;
	int n;
};

static void *free_all(void *arg)
{
	struct freer *f = arg;
	for (int i = 0; i < f->n; i++)
		tkv__arena_free(f->a, f->blocks[i]);
	return NULL;
}

Test(hot_arena, frees_from_other_threads)
{
	tkv__arena a;
	cr_assert_eq(tkv__arena_create(&a, 4096), 0);
	void *b[4][N];
	for (int t = 0; t < 4; t++)
		for (int i = 0; i < N; i++)
			b[t][i] = tkv__arena_alloc(&a);
	pthread_t th[4];
	struct freer f[4];
	for (int t = 0; t < 4; t++) {
		f[t] = (struct freer){&a, b[t], N};
		pthread_create(&th[t], NULL, free_all, &f[t]);
	}
	for (int i = 0; i < N; i++) /* allocating while they free */
		tkv__arena_free(&a, tkv__arena_alloc(&a));
	for (int t = 0; t < 4; t++)
		pthread_join(th[t], NULL);
	tkv__arena_destroy(&a);
}
