/*
 * cache.h - the prefix cache: full blocks of KV keyed by the token prefix
 * that produced them (tiers/block_key.h, docs/KEY_FORMAT.md), shared
 * zero-copy by every sequence with that prefix, kept while unreferenced as
 * long as space allows, dropped (never refused) when space runs out.
 *
 * Entries. A cache entry is a published unit (block_store.h) plus its key,
 * its block_tokens token ids and its parent (tkv__cache_ent). The index maps
 * key -> entries (a chain: different blocks share a key only by a hash
 * collision). A match compares the key, the token ids AND the parent: for
 * block 0 the identity of the tenant salt (tkv__key_salt_id, a real hash
 * even when tests force keys to collide), for block i > 0 the entry id of
 * the entry matched for block i - 1. So block i matches only a block that
 * followed exactly the same chain of entries, i.e. the same token prefix,
 * whatever the keys do. Entry ids come from a counter that is never reused
 * (recovered from the records at open), so a dropped parent's id is never
 * taken by another block. The namespace (model id) is exact too: a cold
 * directory remembers the model id its cache records belong to
 * (runtime/runtime.c) and a runtime with another one drops them. Entries live in every
 * tier like any unit: hot blocks, a cold record named (TKV__CACHE_SEQ,
 * entry id) carrying key and tokens (cold_record.h), both, or (on a miss
 * in both) nowhere, and then they are gone.
 *
 * Publishing. A block of a sequence is published when (W) every layer of
 * it is stored (the worker completing the last layer) and (P) its token
 * ids are known (the producer, at open or append). Whichever side makes
 * the second condition true publishes; both may see both (they store then
 * load across full fences: P1 in units.c, P2 in cache.c) and a CAS on the
 * unit's claim lets one of them do it. A block whose key and tokens are
 * already cached is not published again (deduplicated, counted): the
 * sequence keeps its own copy until it closes, the cache keeps one.
 *
 * Dropping. Entries form a tree: each follows its parent entry (pent), and
 * counts the entries (and deduplicated copies) that follow it (children).
 * Only an entry nothing follows may be dropped: a block whose parent is
 * gone can never match again (entry ids are never reused), so dropping a
 * chain's start first would leave the rest holding space for nothing. The
 * replay of the Mooncake trace measured that: with the least recently
 * unreferenced entry dropped first, hot and cold dropping independently,
 * up to 32% of the capacity held such orphans (bench/README.md).
 *
 * Which of the droppable entries goes is the configured policy's choice
 * (S3-FIFO by default, or LRU; tiers/policy.h), in a policy of its own
 * holding exactly the entries nothing follows: an entry enters it when
 * published, leaves it when an entry follows it, and comes back when the
 * last one that followed it is dropped, at the eviction end (insert_old)
 * unless a lookup used it after that follower's newest use: so a chain
 * nobody uses goes in one run from its end, as in an LRU where a prefix
 * is always touched with its continuation. Lookups that attach count as
 * uses (access). S3-FIFO's small queue gets 60% here instead of 10%: each
 * node stands for a chain's end, not one block (measured, cache.c).
 *
 * Space is made by dropping the policy's victims: ones holding hot blocks
 * when the hot tier is full and the evictor cannot help
 * (tkv__cache_reclaim_hot), any when the cold tier refuses a write for
 * space (tkv__cache_reclaim_cold: the tiers hold one cache, a cache block
 * at rest in RAM or on SSD, tiers/promote.c), or all of them
 * (tkv__cache_drop_all, leaves first, then what they followed). A drop
 * takes the unit's refs from 0 to DEAD by CAS (in the policy's eligible(),
 * under its lock), so an entry being attached (refs 0 -> 1 under the index
 * lock) is never dropped, and a dropped one is never attached. Referenced
 * entries are never dropped.
 *
 * Locks: index stripes, then the tree lock (pent, children, in_pol and
 * policy membership), then the drop policy's lock (a leaf). Publishing
 * takes the stripe, and for a deduplicated block the tree lock inside it;
 * a drop picks (policy lock), then unlinks the entry (stripe lock), then
 * frees it with no cache lock held, taking the tree lock to let go of its
 * parent (which may re-enter the policy).
 */
#ifndef TKV_TIERS_CACHE_H
#define TKV_TIERS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "tiers/block_key.h"
#include "tiers/block_store.h"
#include "tiers/cold.h"
#include "tiers/units.h"

/* Cold records of cache blocks are named (TKV__CACHE_SEQ, entry id); the
 * runtime reserves this sequence id. */
#define TKV__CACHE_SEQ UINT64_MAX

typedef struct tkv__cache tkv__cache;

typedef struct tkv__cache_ent {
	tkv__policy_node pnode;              /* first: the drop policy's node */
	tkv__key key;
	tkv__key parent;                     /* see "Entries" */
	struct tkv__cache_ent *hnext;        /* index chain (stripe lock) */
	/* The drop tree (tree lock): the entry this one follows (NULL for
	 * block 0, or a recovered entry whose parent record is gone), how many
	 * entries and deduplicated copies follow this one, and whether it is
	 * in the drop policy (iff children == 0, unless the policy was out of
	 * memory). */
	struct tkv__cache_ent *pent;
	uint32_t children;
	bool in_pol;
	uint64_t last_use; /* atomic: tick of the newest lookup that attached it */
	bool in_shared;                      /* known to be in the shared tier */
	tkv__unit *unit;
	uint32_t tokens[];                   /* block_tokens ids */
} tkv__cache_ent;

/* What a lookup found: matched full blocks, and of those how many are hot
 * (every layer in RAM) and how many only cold. */
typedef struct tkv__cache_match {
	uint64_t blocks, hot, cold;
} tkv__cache_match;

typedef struct tkv__cache_stats {
	uint64_t lookups, lookup_blocks, hit_blocks_hot, hit_blocks_cold;
	uint64_t published, deduplicated, publish_skipped;
	uint64_t entries_hot, entries_cold, entries_hot_cold, bytes_hot, bytes_cold;
	uint64_t dropped_hot, dropped_cold, dropped_other, recovered;
	uint64_t undroppable; /* entries the drop policy could not take (ENOMEM) */
	uint64_t hit_blocks_shared; /* blocks attached from the shared tier */
	uint64_t offered_shared;    /* blocks handed to the shared tier's writer */
} tkv__cache_stats;

/* A cache over the runtime's tiers (t must outlive it) for the namespace
 * ns (block_key.h). block_bytes: one layer's block. 0 or -ENOMEM. */
int tkv__cache_open(const tkv__tiers *t, tkv__key ns, uint32_t n_layers, uint32_t block_tokens,
		    size_t block_bytes, const tkv__policy_ops *policy, size_t expected_entries,
		    tkv__cache **out);
/* Frees every entry; every sequence must be gone. NULL: no-op. */
void tkv__cache_close(tkv__cache *c);
/* Rebuilds the index from the cold tier's cache records (a restart):
 * unreferenced, cold-only entries. Records that do not read back as cache
 * blocks are removed and counted as dropped. 0 or -ENOMEM. */
int tkv__cache_recover(tkv__cache *c, tkv__cold *cold);

struct tkv__shared_tier;
/* Gives the cache a shared tier below its local tiers (before any sequence
 * exists; st outlives the cache): blocks dropped for space are written
 * there, or, with write_through, every block when it is published. */
void tkv__cache_set_shared(tkv__cache *c, struct tkv__shared_tier *st, bool write_through);

/*
 * Makes a cache entry of block i of a chain fetched from the shared tier:
 * u is a new unit (every layer in RAM and counted in the hot tier,
 * layers_full = n_layers, in no table), key and tokens the block's, parent
 * the entry the lookup matched for block i - 1 (or the salt's identity for
 * block 0) and prev that entry's unit (NULL for block 0; the caller holds
 * a reference on it), which the new entry follows in the drop tree.
 * Returns the entry's unit with a reference for the caller: u, now
 * published and evictable, or, if an equal entry appeared meanwhile
 * (another sequence fetched or computed it), that one, and u is freed.
 * NULL: out of memory (u freed).
 */
tkv__unit *tkv__cache_adopt(tkv__cache *c, tkv__unit *u, tkv__key key, tkv__key parent,
			    tkv__unit *prev, const uint32_t *tokens);

/* The namespace key every chain starts from. */
tkv__key tkv__cache_ns(const tkv__cache *c);

/* Looks blocks 0.. of a chain up (keys[i] and the ids of block i at
 * tokens + i * block_tokens, after the salt with identity salt_id), stopping
 * at the first miss. With out, takes
 * a reference on each matched unit into out[i]; without, only counts.
 * Counts the lookup in the stats when `count`. Returns the blocks matched. */
size_t tkv__cache_lookup(tkv__cache *c, const tkv__key *keys, const uint32_t *tokens,
			 size_t n_blocks, tkv__key salt_id, tkv__unit **out, tkv__cache_match *m,
			 bool count);

/* Producer: the tokens of s now cover blocks [first, end) with keys; each
 * of them whose unit is complete is published (the P side). */
void tkv__cache_tokens_known(tkv__cache *c, tkv__seq *s, uint64_t first, uint64_t end);

/* Drops every unreferenced entry, in every tier; returns how many. */
uint64_t tkv__cache_drop_all(tkv__cache *c);
/* Drops unreferenced entries holding hot blocks, oldest first, until
 * `blocks` hot blocks were freed or none is left; returns blocks freed. */
uint64_t tkv__cache_reclaim_hot(tkv__cache *c, uint64_t blocks);
/* Drops up to n unreferenced entries holding a cold record (their slots
 * come back through the cold tier's housekeeping); returns how many. */
uint64_t tkv__cache_reclaim_cold(tkv__cache *c, uint64_t n);

void tkv__cache_stats_get(tkv__cache *c, tkv__cache_stats *st);
/* Diagnostic (the replay bench): entries whose parent entry is gone, which
 * no lookup can ever match again (their chain is broken for good: entry ids
 * are never reused). O(entries), allocates; not for the serving path. */
uint64_t tkv__cache_orphans(tkv__cache *c);

/* Makes cold directory `dir` remember that its cache records belong to
 * model_id (a file cache-model, replaced atomically); *same says whether
 * it already did. When it did not, the caller drops the cache records
 * there: they belong to another model (or to none known), and comparing
 * the model id exactly here is what keeps namespaces apart even if two
 * namespace digests collided. 0 or a negative errno with a message. */
int tkv__cache_bind_dir(const char *dir, const char *model_id, bool *same);
/* After the cold tier closed cleanly (every removal durable): marks the
 * directory's cache records as model_id's and trustworthy. Until then a
 * directory whose model changed stays marked "dirty", and a crash makes
 * the next run drop every cache record it finds. */
int tkv__cache_seal_dir(const char *dir, const char *model_id);
/* Counts n entries dropped outside the cache's own paths (cache_dropped_other). */
void tkv__cache_count_dropped(tkv__cache *c, int64_t n);

/* For the evictor: the key and tokens a cache block's record carries. */
static inline tkv__cold_ext tkv__cache_ext(const tkv__unit *u)
{
	return (tkv__cold_ext){u->ce->key.hi, u->ce->key.lo, u->ce->parent.hi, u->ce->parent.lo,
			       u->ce->tokens};
}

/* Hooks from units.c (see there). */
/* Frees u's entry (if any) and lets go of the entries u or its entry
 * followed (c may be NULL when u has neither). */
void tkv__cache_ent_free(tkv__cache *c, tkv__unit *u);
/* Drops a reference to a published unit; the last one makes it an
 * unreferenced entry, atomically with respect to drops (lru lock). */
void tkv__cache_put(tkv__cache *c, tkv__unit *u);
void tkv__cache_unit_full(tkv__cache *c, tkv__seq *s, tkv__unit *u, uint64_t b);

/* The producer's side of a sequence's tokens (block_store.h tkv__seq_tokens):
 * appends n ids and keys the full blocks they complete (block 0 with the
 * sequence's salt). 0 or -ENOMEM (nothing changed). */
int tkv__seq_tokens_append(tkv__cache *c, tkv__seq *s, const uint32_t *tokens, size_t n);
/* Token ids [pos, pos + n) of s (known ones only) into out. */
void tkv__seq_tokens_copy(const tkv__seq *s, uint32_t block_tokens, uint64_t pos, size_t n,
			  uint32_t *out);
/* Key of full block b of s (b < s->tok.keyed). */
tkv__key tkv__seq_key(const tkv__seq *s, uint64_t b);

#endif
