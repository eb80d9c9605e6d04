/*
 * policy_ghost.c - S3-FIFO's bounded ghost queue of evicted keys. Layout and
 * invariants: policy_ghost.h. Invariant: every table entry's add number is
 * one of the last `cap` adds, so the table holds at most cap of its >= 2 * cap
 * entries and a probe always reaches an empty entry.
 */
#include "tiers/policy_ghost.h"

#include <errno.h>
#include <stdlib.h>

#include "base/error.h"
#include "base/hash.h"

#define GHOST_NOT_FOUND SIZE_MAX

/* The runtime's keys are hashes already, but tests and simple runtimes may
 * pass small counters: mix so the low bits index the table well. */
static size_t home_of(const tkv__ghost *g, uint64_t key)
{
	return (size_t)tkv__mix64(key) & g->mask;
}

static size_t find(const tkv__ghost *g, uint64_t key)
{
	for (size_t i = home_of(g, key); g->table[i].seq1 != 0; i = (i + 1) & g->mask)
		if (g->table[i].key == key)
			return i;
	return GHOST_NOT_FOUND;
}

/* Empties entry i, then moves back each later entry of the probe run whose
 * home is not in the cyclic range (i, j], so every key stays reachable from
 * its home without tombstones. */
static void erase(tkv__ghost *g, size_t i)
{
	size_t j = i;
	for (;;) {
		j = (j + 1) & g->mask;
		if (g->table[j].seq1 == 0)
			break;
		size_t h = home_of(g, g->table[j].key);
		if (((j - h) & g->mask) >= ((j - i) & g->mask)) {
			g->table[i] = g->table[j];
			i = j;
		}
	}
	g->table[i].seq1 = 0;
}

int tkv__ghost_init(tkv__ghost *g, size_t cap)
{
	size_t size = 2;
	if (cap == 0 || cap > SIZE_MAX / 4 / sizeof(tkv__ghost_entry))
		return tkv__fail(-EINVAL, "policy ghost: bad capacity %zu", cap);
	while (size < 2 * cap)
		size *= 2;
	*g = (tkv__ghost){.cap = cap, .mask = size - 1};
	g->ring = malloc(cap * sizeof(*g->ring));
	g->table = calloc(size, sizeof(*g->table));
	if (g->ring == NULL || g->table == NULL) {
		tkv__ghost_fini(g);
		return tkv__fail(-ENOMEM, "policy ghost: no memory for %zu keys", cap);
	}
	return 0;
}

void tkv__ghost_fini(tkv__ghost *g)
{
	free(g->ring);
	free(g->table);
	g->ring = NULL;
	g->table = NULL;
}

/* Forgets the key of add number g->seq - cap unless it was added again
 * since (its entry then names a later add) or taken. */
static void drop_oldest(tkv__ghost *g)
{
	uint64_t old = g->seq - g->cap;
	size_t i = find(g, g->ring[old % g->cap]);
	if (i != GHOST_NOT_FOUND && g->table[i].seq1 == old + 1)
		erase(g, i);
}

void tkv__ghost_add(tkv__ghost *g, uint64_t key)
{
	if (g->seq >= g->cap)
		drop_oldest(g);
	g->ring[g->seq % g->cap] = key;
	size_t i = find(g, key);
	if (i == GHOST_NOT_FOUND) {
		for (i = home_of(g, key); g->table[i].seq1 != 0; i = (i + 1) & g->mask)
			;
		g->table[i].key = key;
	}
	g->table[i].seq1 = ++g->seq;
}

bool tkv__ghost_take(tkv__ghost *g, uint64_t key)
{
	size_t i = find(g, key);
	if (i == GHOST_NOT_FOUND)
		return false;
	erase(g, i);
	return true;
}
