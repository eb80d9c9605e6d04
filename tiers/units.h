/*
 * units.h - a unit's life across the tiers: what happens when a unit's last
 * reference goes, and when one becomes complete (block_store.h explains
 * units and their references).
 *
 * The tiers a runtime has, in one struct the runtime owns and the evictor
 * and the cache see: the hot tier always; the cold tier (its evictor) and
 * the prefix cache when configured.
 */
#ifndef TKV_TIERS_UNITS_H
#define TKV_TIERS_UNITS_H

#include "tiers/block_store.h"
#include "tiers/hot.h"

struct tkv__evictor;
struct tkv__cache;

typedef struct tkv__tiers {
	tkv__hot *hot;
	struct tkv__evictor *ev;  /* NULL without a cold tier */
	struct tkv__cache *cache; /* NULL without the prefix cache */
} tkv__tiers;

/* Drops a reference. The last reference of an unpublished unit frees it in
 * every tier (tkv__unit_destroy); of a published one, leaves an
 * unreferenced cache entry for the cache to keep or drop. Any thread. */
void tkv__unit_put(const tkv__tiers *t, tkv__unit *u);

/* Frees a unit no one references, in every tier: out of the eviction
 * policy, its cold record removed, its hot blocks freed (and their
 * reservations released), its cache data freed, then the unit. */
void tkv__unit_destroy(const tkv__tiers *t, tkv__unit *u);

/* Worker: layer block b (unit u) of sequence s is now full. When every
 * layer's is, the unit becomes evictable and, if its tokens are known,
 * is published to the cache. */
void tkv__unit_block_full(const tkv__tiers *t, tkv__seq *s, tkv__unit *u, uint64_t b);

#endif
