/*
 * policy_ghost.h - S3-FIFO's ghost queue: a bounded FIFO of the keys of units
 * recently evicted from the small queue, with O(1) membership.
 *
 * Keys are the 64-bit hashes the runtime puts in tkv__policy_node.key; only
 * keys are kept, never node pointers, so a unit may be freed while its key
 * is still here. Once `cap` keys have been added since a key's latest add,
 * that key is forgotten (FIFO order). A collision between two units' hashes
 * only sends a unit to the main queue instead of the small one.
 *
 * Layout: a ring of the last `cap` keys in insertion order, and an open
 * addressing table (linear probing, power-of-two size >= 2 * cap, deletion by
 * backward shift, so no tombstones) mapping each remembered key to the
 * sequence number of its latest add. A ring entry whose sequence number is no
 * longer its key's latest (re-added, or taken) is simply skipped when the ring
 * overwrites it. Not thread-safe: the S3-FIFO lock guards it. Memory: 40 to
 * 72 bytes per remembered key, allocated once by tkv__ghost_init.
 */
#ifndef TKV_TIERS_POLICY_GHOST_H
#define TKV_TIERS_POLICY_GHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tkv__ghost_entry {
	uint64_t key;
	uint64_t seq1; /* sequence number of the latest add + 1; 0 = empty */
} tkv__ghost_entry;

typedef struct tkv__ghost {
	uint64_t *ring;           /* key of add number s at ring[s % cap] */
	size_t cap;               /* keys remembered at most */
	uint64_t seq;             /* adds so far */
	tkv__ghost_entry *table;  /* mask + 1 entries */
	size_t mask;
} tkv__ghost;

/* 0, or -ENOMEM with a message. cap >= 1. */
int tkv__ghost_init(tkv__ghost *g, size_t cap);
void tkv__ghost_fini(tkv__ghost *g);
/* Remembers key as the newest; forgets the oldest key if cap are held. */
void tkv__ghost_add(tkv__ghost *g, uint64_t key);
/* If key is remembered, forgets it and returns true. */
bool tkv__ghost_take(tkv__ghost *g, uint64_t key);

#endif
