/*
 * cache.h - the prefix cache: full blocks of KV keyed by the token prefix
 * that produced them, shared zero-copy by every sequence with that prefix,
 * kept while unreferenced as long as space allows, dropped (never refused)
 * when space runs out.
 */
#ifndef TKV_TIERS_CACHE_H
#define TKV_TIERS_CACHE_H

#include "tiers/block_store.h"

struct tkv__cache;

/* Frees a unit's cache data (key, tokens); a no-op for a unit never
 * published. Only from tkv__unit_destroy. */
void tkv__cache_ent_free(tkv__unit *u);
/* A published unit lost its last reference: it is now an unreferenced
 * cache entry, first in line to be dropped (LRU). */
void tkv__cache_unreferenced(struct tkv__cache *c, tkv__unit *u);
/* Worker: unit u (block b of s) became complete; publishes it if its
 * tokens are known (the other half of the handshake is the producer's). */
void tkv__cache_unit_full(struct tkv__cache *c, tkv__seq *s, tkv__unit *u, uint64_t b);

#endif
