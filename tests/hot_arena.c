/*
 * hot_arena.c - the per-worker block pool: blocks are 64-byte aligned,
 * distinct and fully writable; freed blocks are reused (the very same
 * addresses, so their pages stay warm); allocations and frees may come from
 * several threads at once and leave the pool intact.
 *
 * The pool tests use tkv__arena_create_pool, so they test the pool in every
 * build: sanitizer builds replace it with one aligned_alloc per block in the
 * runtime (tkv__arena_create), and there TSan sees the pool's lock and free
 * list only through these tests. aligned_distinct_writable uses
 * tkv__arena_create, so ASan checks each block's bounds in its build.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "tests/refuse_syscall.h"
#include "tiers/hot_arena.h"

enum { N = 100, BLOCK = 40000 /* not a power of two: rounded up to 64 */ };

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
enum { ROUNDS = 300 }; /* TSan reports an unlocked free list at once */
#else
enum { ROUNDS = 20000 }; /* enough interleavings to lose or duplicate a block */
#endif

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

static int cmp_ptr(const void *x, const void *y)
{
	uintptr_t a = (uintptr_t) * (void *const *)x, b = (uintptr_t) * (void *const *)y;
	return a < b ? -1 : a > b;
}

/*
 * Every block is free: allocating all the pool holds must not grow it (a
 * block lost from the free list would), and must give distinct, aligned
 * blocks each at a block boundary inside one of its slabs (a corrupted list
 * gives a block twice, or garbage). Frees them again.
 */
static void expect_pool_intact(tkv__arena *a)
{
	size_t slabs = a->n_slabs, total = slabs * a->blocks_per_slab;
	size_t slab_bytes = a->blocks_per_slab * a->block_bytes;
	void **all = malloc(total * sizeof(*all));
	cr_assert_not_null(all);
	for (size_t i = 0; i < total; i++) {
		all[i] = tkv__arena_alloc(a);
		cr_assert_not_null(all[i]);
	}
	cr_assert_eq(a->n_slabs, slabs, "%zu blocks were lost: the pool grew", total);
	qsort(all, total, sizeof(*all), cmp_ptr);
	for (size_t i = 0; i < total; i++) {
		bool inside = false;
		cr_assert(i == 0 || all[i] != all[i - 1], "block %p handed out twice", all[i]);
		cr_assert_eq((uintptr_t)all[i] % 64, 0);
		for (size_t s = 0; s < slabs && !inside; s++) {
			uintptr_t base = (uintptr_t)a->slabs[s], p = (uintptr_t)all[i];
			inside = p >= base && p < base + slab_bytes && (p - base) % a->block_bytes == 0;
		}
		cr_assert(inside, "block %p is not one of the pool's", all[i]);
	}
	for (size_t i = 0; i < total; i++)
		tkv__arena_free(a, all[i]);
	free(all);
}

Test(hot_arena, freed_blocks_are_reused)
{
	tkv__arena a;
	cr_assert_eq(tkv__arena_create_pool(&a, BLOCK), 0);
	void *first[N], *again[N];
	for (int i = 0; i < N; i++)
		first[i] = tkv__arena_alloc(&a);
	for (int i = 0; i < N; i++)
		tkv__arena_free(&a, first[i]);
	for (int i = 0; i < N; i++)
		again[i] = tkv__arena_alloc(&a);
	/* every block of the second round is one of the first round */
	for (int i = 0; i < N; i++) {
		bool seen = false;
		for (int j = 0; j < N && !seen; j++)
			seen = again[i] == first[j];
		cr_assert(seen, "block %d came from fresh memory", i);
	}
	for (int i = 0; i < N; i++)
		tkv__arena_free(&a, again[i]);
	expect_pool_intact(&a);
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
	cr_assert_eq(tkv__arena_create_pool(&a, 4096), 0);
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
	expect_pool_intact(&a);
	tkv__arena_destroy(&a);
}

enum { THREADS = 4, HELD = 48, SMALL = 1000 };

static pthread_barrier_t start; /* all threads churn at the same time */

struct churner {
	tkv__arena *a;
	uint64_t tag;     /* this thread's stamp */
	uint64_t clashes; /* blocks whose stamp another thread overwrote */
	uint64_t nulls;
};

/* Each round: take HELD blocks, stamp each with (thread, round, index), check
 * every stamp once all are taken (a block handed to two threads at once
 * carries the other thread's stamp), then give them all back. The stamps
 * fill each block's first cache line and last word. */
static void *churn(void *arg)
{
	struct churner *c = arg;
	uint64_t *held[HELD];
	size_t last = SMALL / sizeof(uint64_t) - 1;
	pthread_barrier_wait(&start);
	for (uint64_t r = 0; r < ROUNDS; r++) {
		for (uint64_t i = 0; i < HELD; i++) {
			uint64_t stamp = c->tag << 48 | r << 8 | i;
			if (!(held[i] = tkv__arena_alloc(c->a))) {
				c->nulls++;
				continue;
			}
			for (int w = 0; w < 8; w++)
				held[i][w] = stamp;
			held[i][last] = stamp;
		}
		for (uint64_t i = 0; i < HELD; i++) {
			uint64_t stamp = c->tag << 48 | r << 8 | i;
			if (held[i] && (held[i][1] != stamp || held[i][7] != stamp || held[i][last] != stamp))
				c->clashes++;
		}
		for (int i = 0; i < HELD; i++)
			tkv__arena_free(c->a, held[i]);
	}
	return NULL;
}

Test(hot_arena, concurrent_alloc_free_keeps_blocks_distinct_and_reused, .timeout = 120)
{
	tkv__arena a;
	pthread_t th[THREADS];
	struct churner c[THREADS];
	cr_assert_eq(tkv__arena_create_pool(&a, SMALL), 0);
	pthread_barrier_init(&start, NULL, THREADS);
	for (int t = 0; t < THREADS; t++) {
		c[t] = (struct churner){&a, (uint64_t)t + 1, 0, 0};
		cr_assert_eq(pthread_create(&th[t], NULL, churn, &c[t]), 0);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&start);
	for (int t = 0; t < THREADS; t++) {
		cr_assert_eq(c[t].nulls, 0, "thread %d got no block", t);
		cr_assert_eq(c[t].clashes, 0, "thread %d: %lu blocks were also another thread's", t,
			     (unsigned long)c[t].clashes);
	}
	/* THREADS * HELD blocks at most were out at once: one slab holds them */
	cr_assert_eq(a.n_slabs, 1, "the pool grew to %zu slabs: freed blocks were lost",
		     a.n_slabs);
	expect_pool_intact(&a);
	tkv__arena_destroy(&a);
}

/* Pages of [p, p + n) the kernel has in memory (mincore). */
static size_t resident_pages(void *p, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = (n + page - 1) / page, in = 0;
	unsigned char *v = malloc(pages);
	cr_assert_not_null(v);
	cr_assert_eq(mincore(p, n, v), 0);
	for (size_t i = 0; i < pages; i++)
		in += v[i] & 1;
	free(v);
	return in;
}

/* Populating grows the pool to the blocks asked for, with every page of
 * its slabs in memory; allocating those blocks then takes no more slabs,
 * and populating less than the pool holds adds nothing. Huge pages are off
 * for this test's process: with them, the free list's first write into a
 * slab brings in all of it, populated or not. */
Test(hot_arena, populate_faults_in_the_share_and_alloc_stays_inside)
{
	cr_assert_eq(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), 0);
	tkv__arena a;
	cr_assert_eq(tkv__arena_create_pool(&a, BLOCK), 0);
	cr_assert_eq(tkv__arena_populate(&a, 0), 0);
	cr_assert_eq(a.n_slabs, 0);
	const size_t want = 3 * a.blocks_per_slab + 1;
	cr_assert_eq(tkv__arena_populate(&a, want), 0);
	cr_assert_eq(a.n_slabs, 4);
	size_t slab_bytes = a.blocks_per_slab * a.block_bytes, page = (size_t)sysconf(_SC_PAGESIZE);
	for (size_t s = 0; s < a.n_slabs; s++)
		cr_assert_eq(resident_pages(a.slabs[s], slab_bytes), (slab_bytes + page - 1) / page,
			     "slab %zu is not all in memory", s);
	cr_assert_eq(tkv__arena_populate(&a, want - 5), 0);
	cr_assert_eq(a.n_slabs, 4, "populating less than the pool holds grew it");
	expect_pool_intact(&a); /* allocates every block: no slab added */
	tkv__arena_destroy(&a);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* madvise(..., MADV_POPULATE_WRITE) fails with err in this process, as on
 * a kernel before 5.14 (EINVAL) or one out of memory (ENOMEM); a direct
 * call proves the filter is in place. */
static void refuse_populate_write(int err)
{
	refuse_syscall(__NR_madvise, 2, MADV_POPULATE_WRITE, err);
	void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(page, MAP_FAILED);
	errno = 0;
	cr_assert_eq(madvise(page, 4096, MADV_POPULATE_WRITE), -1);
	cr_assert_eq(errno, err, "the filter is not in place: errno %d", errno);
	munmap(page, 4096);
}

/* A kernel without MADV_POPULATE_WRITE (before 5.14) answers EINVAL: the
 * pool then writes one byte per page, and every page is in memory all the
 * same. */
Test(hot_arena, populate_writes_the_pages_itself_without_populate_write)
{
	cr_assert_eq(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), 0);
	refuse_populate_write(EINVAL);
	tkv__arena a;
	cr_assert_eq(tkv__arena_create_pool(&a, BLOCK), 0);
	cr_assert_eq(tkv__arena_populate(&a, 2 * a.blocks_per_slab), 0);
	cr_assert_eq(a.n_slabs, 2);
	size_t slab_bytes = a.blocks_per_slab * a.block_bytes, page = (size_t)sysconf(_SC_PAGESIZE);
	for (size_t s = 0; s < a.n_slabs; s++)
		cr_assert_eq(resident_pages(a.slabs[s], slab_bytes), (slab_bytes + page - 1) / page,
			     "slab %zu is not all in memory", s);
	expect_pool_intact(&a);
	tkv__arena_destroy(&a);
}

/* ENOMEM from MADV_POPULATE_WRITE is the kernel refusing the memory: the
 * pool reports it and keeps what it had (no half-faulted slab, no write
 * loop that the OOM killer would end instead). */
Test(hot_arena, populate_reports_the_kernels_enomem_and_keeps_the_pool)
{
	tkv__arena a;
	cr_assert_eq(tkv__arena_create_pool(&a, BLOCK), 0);
	cr_assert_eq(tkv__arena_populate(&a, a.blocks_per_slab), 0);
	cr_assert_eq(a.n_slabs, 1);
	refuse_populate_write(ENOMEM);
	cr_assert_eq(tkv__arena_populate(&a, 3 * a.blocks_per_slab), -ENOMEM);
	cr_assert_eq(a.n_slabs, 1, "a slab the kernel refused stayed in the pool");
	expect_pool_intact(&a); /* the first slab's blocks, all of them */
	tkv__arena_destroy(&a);
}

/* The mode the kernel shows in brackets in a THP setting file, or "". */
static void thp_mode(const char *file, char *out, size_t n)
{
	char line[256] = "";
	FILE *f = fopen(file, "r");
	out[0] = 0;
	if (f && fgets(line, sizeof(line), f)) {
		char *l = strchr(line, '['), *r = l ? strchr(l, ']') : NULL;
		if (l && r && (size_t)(r - l - 1) < n)
			snprintf(out, n, "%.*s", (int)(r - l - 1), l + 1);
	}
	if (f)
		fclose(f);
}

/* kB of huge pages backing the mapping that holds p (/proc/self/smaps). */
static long huge_kb_at(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	long kb = -1;
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* A slab's blocks need not fill 2 MiB (40000-byte blocks: 52 of them); it
 * must get a huge page all the same. It did not while only the blocks'
 * bytes were advised: every huge page then reached past the advised range. */
Test(hot_arena, slabs_get_huge_pages_whatever_the_block_size)
{
	char enabled[32], defrag[32];
	thp_mode("/sys/kernel/mm/transparent_hugepage/enabled", enabled, sizeof(enabled));
	thp_mode("/sys/kernel/mm/transparent_hugepage/defrag", defrag, sizeof(defrag));
	if (strcmp(enabled, "always") && strcmp(enabled, "madvise"))
		cr_skip_test("transparent huge pages are off here (enabled: [%s])", enabled);
	if (strcmp(defrag, "always") && strcmp(defrag, "madvise") && strcmp(defrag, "defer+madvise"))
		cr_skip_test("a madvised fault does not compact for a huge page here (defrag: [%s])",
			     defrag);
	tkv__arena a;
	cr_assert_eq(tkv__arena_create_pool(&a, BLOCK), 0);
	cr_assert_eq(a.slab_bytes, 2u << 20);
	cr_assert_eq(a.blocks_per_slab, 52, "the case needs blocks that leave a tail");
	cr_assert_eq(tkv__arena_populate(&a, 1), 0);
	long kb = huge_kb_at(a.slabs[0]);
	cr_assert_geq(kb, 2048, "the slab's mapping has %ld kB of huge pages", kb);
	tkv__arena_destroy(&a);
}

/* Slabs are whole huge pages with little left over after the last block. */
Test(hot_arena, slab_sizes_are_whole_huge_pages)
{
	static const struct {
		size_t block, slab, per_slab;
	} cases[] = {
		{128 << 10, 2 << 20, 16}, /* Llama-3-8B f32, 16 tokens: no tail */
		{40000, 2 << 20, 52},     /* a 17 KiB tail, under 1/32 */
		{768 << 10, 6 << 20, 8},  /* 2 MiB would leave a quarter, 4 MiB 1/16 */
		{3 << 20, 6 << 20, 2},    /* larger than a huge page */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tkv__arena a;
		cr_assert_eq(tkv__arena_create_pool(&a, cases[i].block), 0);
		cr_assert_eq(a.slab_bytes, cases[i].slab, "block %zu: slab %zu", cases[i].block,
			     a.slab_bytes);
		cr_assert_eq(a.blocks_per_slab, cases[i].per_slab, "block %zu", cases[i].block);
		void *b = tkv__arena_alloc(&a); /* one slab of that size, usable */
		cr_assert_not_null(b);
		memset(b, 0x5a, a.block_bytes);
		tkv__arena_free(&a, b);
		tkv__arena_destroy(&a);
	}
}
