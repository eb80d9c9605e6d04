/*
 * block_store.h - the tiers' block store: sequences (one request's KV each),
 * their block tables, and the units those tables point to.
 *
 * A unit is one block position (B tokens) across all layers: the hot tier
 * keeps it as one block per layer (blocks[l].mem), the cold tier as one
 * record, the prefix cache as one entry. Units are refcounted objects of
 * their own, so one unit can sit in the tables of several sequences (a
 * cached prefix attached zero-copy, a fork) and outlive them all (a cache
 * entry). A unit is mutable only while exactly one sequence holds it and it
 * is not published; shared units are full and immutable (writers copy:
 * runtime/seq_edit.c).
 *
 * Who writes what (the concurrency contract of a sequence):
 *  - next_pos of a layer: the producer thread storing to the sequence (one at
 *    a time, by the API contract); it is the end of what was accepted.
 *  - the unit table: any worker installs a missing unit by CAS (the first
 *    layer to reach a block makes it); the producer installs units only
 *    while no store is pending (attach at open, fork, truncate).
 *  - blocks[l] of a unit: only the worker owning layer l, in ring order.
 *  - done_pos of a layer: the owning worker, with a release store, after the
 *    copy and the table update of a batch. Readers (read, view, wait)
 *    acquire done_pos and only then touch units and block memory below it,
 *    so they never see a half-written block or table chunk.
 *  - pins: any thread holding a view, atomically.
 *  - retired_pos of a layer: the owning worker, with a release store, as its
 *    last access to the sequence for a batch (after done_pos and the wake of
 *    its waiters, runtime/completion.c).
 * So once every layer's retired_pos reaches its next_pos no worker holds a
 * reference and the sequence can be freed.
 *
 * Unit references (refs): one per table that holds the unit, plus one per
 * thread holding it across I/O without a table (the evictor while it
 * writes; prefetch and readers hold a sequence reference instead, whose
 * table holds the unit). The last reference of an unpublished unit frees it in every
 * tier (tiers/units.h); a published unit with no reference stays, as an
 * unreferenced cache entry, until the cache drops it (refs := DEAD, only
 * from 0). tkv__unit_tryref refuses both a dead unit and an unpublished one
 * whose refs reached 0 (it is being freed).
 *
 * Tables are segmented (chunk k holds 64 << k entries) so a table grows
 * without moving entries a concurrent reader may be looking at.
 */
#ifndef TKV_TIERS_BLOCK_STORE_H
#define TKV_TIERS_BLOCK_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <ck_pr.h>

#include "base/fence.h"
#include "base/wake.h"
#include "tierkv.h"
#include "tiers/policy.h"

#define TKV__CHUNK0 64u
#define TKV__NCHUNKS 26 /* 64 * (2^26 - 1) blocks: far beyond any context */

typedef struct tkv__block {
	void *mem;        /* K rows [block_tokens][kv_dim], then V rows; NULL
			   * while the block lives only in the cold tier */
	uint32_t pins;    /* readers and views using mem now (atomic) */
	uint32_t loading; /* 1 while a promotion fills it (atomic) */
} tkv__block;

/*
 * Unit state: the handshake between the evictor and readers
 * (tiers/evictor.c):
 *   HOT      readers use the layer blocks' mem (NULL ones are promoted)
 *   WRITING  the evictor is writing the record; mem stays valid and readable
 *   FREEING  the evictor is freeing mem after the record became durable;
 *            readers back off. It first publishes FREEING and then checks
 *            every layer's pins; readers first pin and then check the state
 *            (full fences on both sides), so a pinned block is never freed.
 *   PUBLISHING  the cache is naming it (tiers/cache.c); not evictable
 */
enum {
	TKV__UNIT_HOT = 0,
	TKV__UNIT_WRITING = 1,
	TKV__UNIT_FREEING = 2,
	TKV__UNIT_PUBLISHING = 3,
};
#define TKV__UNIT_DEAD 0x80000000u /* refs of a cache entry being dropped */
/* published: NONE -> CLAIMED (someone is publishing it) -> YES (a cache
 * entry), or stays CLAIMED when publishing was skipped or deduplicated (it
 * then lives and dies as a plain unit). */
enum { TKV__PUB_NONE = 0, TKV__PUB_YES = 1, TKV__PUB_CLAIMED = 2 };

struct tkv__cache_ent;

typedef struct tkv__unit {
	tkv__policy_node node; /* first member: node <-> unit by cast */
	uint64_t rec_seq, rec_block; /* the name of its cold record */
	uint64_t rec_seqno;   /* the seqno of its durable record (0: none yet):
			       * it removes only that one, never a newer
			       * record under the same name (tiers/units.c) */
	uint32_t refs;        /* see above (atomic) */
	uint32_t layers_full; /* layers whose block is complete (atomic) */
	uint32_t state;       /* TKV__UNIT_* (atomic) */
	uint32_t cold;        /* a durable record holds every layer (atomic) */
	uint32_t in_policy;   /* claimed to insert, or in the policy; cleared when
			       * picked or removed (atomic; evictor.c) */
	uint32_t lost;        /* its record failed a checksum and was dropped:
			       * cold layers are gone for good (atomic) */
	uint32_t published;   /* TKV__PUB_* (atomic) */
	uint32_t n_layers;
	struct tkv__cache_ent *ce; /* key, tokens, index links once published */
	uint64_t dup_of;      /* deduplicated: the entry id of the cached block
			       * it equals (the parent of its successors) */
	struct tkv__cache_ent *dup_ce; /* that entry: it follows it, so the
			       * entry is not dropped while this unit lives */
	tkv__block blocks[];  /* n_layers */
} tkv__unit;

typedef struct tkv__layer {
	uint64_t next_pos; /* producer-owned; atomic for readers' range checks */
	char pad0[56];
	uint64_t done_pos; /* worker release, readers acquire */
	int32_t error;     /* sticky: a block could not be allocated (atomic) */
	uint32_t signals;  /* times the worker signalled done_wake (atomic; tests) */
	/* Completion waiters (runtime/completion.c): they sleep on done_wake
	 * and lower wait_min to the position they need; the worker signals
	 * only once done_pos reaches wait_min, then resets it to UINT64_MAX. */
	tkv__wake done_wake;
	uint64_t wait_min;    /* atomic */
	uint64_t retired_pos; /* worker release, closer acquires */
	/* End of the last batch a ticket's waiter took to complete itself
	 * (runtime/copy_ahead.c): the owner copies or completes no later batch
	 * of the layer before retired_pos reaches it. Waiter release, the
	 * owner acquires (through the slot's DONE). */
	uint64_t taken_end;
	char pad1[8];
} tkv__layer;

/* The token ids and block keys a sequence knows (the prefix cache's view of
 * it; tiers/cache.h). Producer-owned and segmented like the unit table, so
 * a worker publishing block b reads tokens that never move. */
typedef struct tkv__seq_tokens {
	uint64_t known;     /* token ids known: [0, known) (producer release) */
	uint32_t *chunks[TKV__NCHUNKS]; /* chunk k: (64 << k) * block_tokens ids */
	void *keys[TKV__NCHUNKS];       /* chunk k: (64 << k) keys of 16 bytes */
	uint64_t keyed;     /* full blocks with a key: [0, keyed) (producer
			     * release; workers acquire before publishing) */
	void *salt;         /* the tenant salt of key_0, copied; may be NULL */
	size_t salt_len;
	uint64_t salt_id_hi, salt_id_lo; /* tkv__key_salt_id(salt): block 0's
					  * parent in the cache (cache.h) */
	bool cache;         /* blocks of this sequence may be published */
} tkv__seq_tokens;

/* Chunk k of a segmented table holds entries [64 * (2^k - 1), 64 *
 * (2^(k+1) - 1)): where entry b is; false past the last chunk. */
static inline bool tkv__chunk_locate(uint64_t b, unsigned *chunk, uint64_t *off)
{
	uint64_t q = b / TKV__CHUNK0 + 1;
	unsigned k = 63u - (unsigned)__builtin_clzll(q);
	*chunk = k;
	*off = b - (uint64_t)TKV__CHUNK0 * ((1ull << k) - 1);
	return k < TKV__NCHUNKS;
}

typedef struct tkv__seq {
	uint64_t id;
	struct tkv__seq *next; /* hash chain, under the shard lock */
	uint32_t refs;         /* API calls using it now (atomic) */
	uint32_t pins;         /* blocks pinned by views, all layers (atomic) */
	uint32_t closing;      /* 1 while seq_close runs (atomic; see tkv__seq_pin) */
	uint32_t editing;      /* 1 while truncate swaps units (atomic): readers
				* and prefetch back off (runtime/seq_edit.c) */
	uint32_t n_layers;
	tkv__layer *layers;    /* n_layers, cache-line aligned */
	tkv__unit **units[TKV__NCHUNKS]; /* chunk k: 64 << k unit pointers,
					  * installed by CAS (any worker) */
	tkv__seq_tokens tok;
} tkv__seq;

tkv__seq *tkv__seq_new(uint64_t id, uint32_t n_layers);

/* A new unit with one reference, named (rec_seq, rec_block) for the cold
 * tier; NULL on ENOMEM. */
tkv__unit *tkv__unit_new(uint32_t n_layers, uint64_t rec_seq, uint64_t rec_block);
/* Takes a reference unless the unit is dead or an unpublished unit at 0. */
bool tkv__unit_tryref(tkv__unit *u);
/* Takes a reference; the caller already holds one (directly or through a
 * table it holds). */
void tkv__unit_ref(tkv__unit *u);
/* Drops a reference; true if it was the last (the caller then frees an
 * unpublished unit: tiers/units.h). */
bool tkv__unit_unref(tkv__unit *u);
/* Frees the struct only (memory of the tiers must be gone). */
void tkv__unit_free(tkv__unit *u);

/* The unit of block b, or NULL if none. */
tkv__unit *tkv__seq_unit(const tkv__seq *s, uint64_t b);
/* The unit of block b, making it (named (s->id, b)) if missing; any
 * thread; NULL on ENOMEM. */
tkv__unit *tkv__seq_unit_make(tkv__seq *s, uint64_t b);
/* Puts u (a reference the caller gives away) at block b, whose entry must
 * be empty. 0 or -ENOMEM. Producer only, no store pending. */
int tkv__seq_unit_set(tkv__seq *s, uint64_t b, tkv__unit *u);
/* Empties block b's entry and returns its unit (the caller now owns that
 * reference), or NULL. Producer only, no store pending, no view held. */
tkv__unit *tkv__seq_unit_take(tkv__seq *s, uint64_t b);

/* Layer l's block of block b, or NULL if the unit does not exist. Readers
 * call it only for blocks below an acquired done_pos. */
static inline tkv__block *tkv__seq_block(const tkv__seq *s, uint32_t layer, uint64_t b)
{
	tkv__unit *u = tkv__seq_unit(s, b);
	return u ? &u->blocks[layer] : NULL;
}

/* Drops a reference taken by a lookup (runtime/seq_table.h) or by a thread
 * that holds the sequence across I/O. */
void tkv__seq_put(tkv__seq *s);

/* After taking a reference: true if truncate is swapping the sequence's
 * units, and the caller must let go. E1 (a full fence after the reference)
 * pairs with E2 in runtime/seq_edit.c (editing set, full fence, references
 * counted): either truncate waits for this reference, or this sees
 * `editing`. */
static inline bool tkv__seq_editing(tkv__seq *s)
{
	tkv__fence_full(); /* E1 */
	return ck_pr_load_32(&s->editing) != 0;
}

/* Adds n pins for a view; false (and no pins) if the sequence is closing. */
bool tkv__seq_pin(tkv__seq *s, uint32_t n);
void tkv__seq_unpin(tkv__seq *s, uint32_t n);

/* Hands every unit of the table to put (which drops the table's
 * reference), then frees the sequence. */
void tkv__seq_free(tkv__seq *s, void (*put)(void *ctx, tkv__unit *u), void *ctx);

#endif
