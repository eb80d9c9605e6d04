/*
 * units.c - a unit's life across the tiers (units.h).
 */
#include "tiers/units.h"

#include <ck_pr.h>

#include "base/fence.h"
#include "tiers/cache.h"
#include "tiers/evictor.h"

void tkv__unit_destroy(const tkv__tiers *t, tkv__unit *u)
{
	if (t->ev)
		tkv__evictor_forget(t->ev, u);
	uint64_t freed = 0;
	for (uint32_t l = 0; l < u->n_layers; l++) {
		void *mem = u->blocks[l].mem;
		if (mem) {
			tkv__hot_free(t->hot, l, mem);
			freed++;
		}
	}
	tkv__hot_release(t->hot, freed);
	tkv__cache_ent_free(t->cache, u);
	tkv__unit_free(u);
}

void tkv__unit_put(const tkv__tiers *t, tkv__unit *u)
{
	/* A published unit stays published (YES is final), so this is read
	 * while our reference keeps it alive. Its last reference is dropped
	 * under the cache's list lock: a drop (refs 0 -> DEAD under the same
	 * lock) cannot free it between our decrement and its relinking. */
	if (ck_pr_load_32(&u->published) == TKV__PUB_YES)
		tkv__cache_put(t->cache, u);
	else if (tkv__unit_unref(u))
		tkv__unit_destroy(t, u);
}

void tkv__unit_block_full(const tkv__tiers *t, tkv__seq *s, tkv__unit *u, uint64_t b)
{
	/* This worker's copy of block b before its count: the worker whose
	 * fetch-and-add completes the count (after every other one) then
	 * inserts the unit for the evictor's gather and the cache, and
	 * tkv__cache_tokens_known acquires after it sees the count complete.
	 * A release of its own, since ck's fetch-and-add is not a barrier on
	 * aarch64. */
	ck_pr_fence_release();
	if (ck_pr_faa_32(&u->layers_full, 1) + 1 != u->n_layers)
		return;
	/* P1: the completed unit before the cache's load of the sequence's
	 * keyed count (cache.c, P2 is the producer's mirror image). A full
	 * fence: ck's fetch-and-add is not one on every architecture. It is
	 * also the acquire that pairs with the other workers' releases above,
	 * before this thread hands the unit on. */
	tkv__fence_full();
	/* Publish first: a unit the evictor has not seen yet cannot be in the
	 * middle of a write, so its record will be a cache record. */
	if (t->cache)
		tkv__cache_unit_full(t->cache, s, u, b);
	if (t->ev)
		tkv__evictor_unit_full(t->ev, u);
}
