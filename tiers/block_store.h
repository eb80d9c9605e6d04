/*
 * block_store.h - a sequence (one request's KV) and its per-layer block tables.
 *
 * Who writes what (the whole concurrency contract of a sequence):
 *  - next_pos of a layer: the producer thread storing to the sequence (one at
 *    a time, by the API contract); it is the end of what was accepted.
 *  - the block table and block memory of a layer: only the worker owning the
 *    layer, in ring order.
 *  - done_pos of a layer: the owning worker, with a release store, after the
 *    copy and the block-table update of a batch. Readers (read, view, wait)
 *    acquire done_pos and only then touch table entries and block memory
 *    below it, so they never see a half-written block or table chunk.
 *  - pins: any thread holding a view, atomically.
 *  - retired_pos of a layer: the owning worker, with a release store, as its
 *    last access to the sequence for a batch (after done_pos and the wake of
 *    its waiters, runtime/completion.c).
 * So once every layer's retired_pos reaches its next_pos no worker
 * holds a reference and the sequence can be freed.
 *
 * Block tables are segmented (chunk k holds 64 << k entries) so a table grows
 * without moving entries a concurrent reader may be looking at, and a short
 * sequence costs a few hundred bytes per layer.
 */
#ifndef TKV_TIERS_BLOCK_STORE_H
#define TKV_TIERS_BLOCK_STORE_H

#include <stdbool.h>
#include <stdint.h>

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
 * A unit is one block position of a sequence across all layers: what the
 * evictor moves as one cold record. Its state is the handshake between the
 * evictor and readers (tiers/evictor.c):
 *   HOT      readers use the layer blocks' mem (NULL ones are promoted)
 *   WRITING  the evictor is writing the record; mem stays valid and readable
 *   FREEING  the evictor is freeing mem after the record became durable;
 *            readers back off. It first publishes FREEING and then checks
 *            every layer's pins; readers first pin and then check the state
 *            (full fences on both sides), so a pinned block is never freed.
 */
enum { TKV__UNIT_HOT = 0, TKV__UNIT_WRITING = 1, TKV__UNIT_FREEING = 2 };

typedef struct tkv__unit {
	tkv__policy_node node; /* first member: node <-> unit by cast */
	struct tkv__seq *seq;
	uint64_t block;
	uint32_t layers_full; /* layers whose block is complete (atomic) */
	uint32_t state;       /* TKV__UNIT_* (atomic) */
	uint32_t cold;        /* a durable record holds every layer (atomic) */
	uint32_t in_policy;   /* inserted and not yet picked/removed (atomic) */
	uint32_t lost;        /* its record failed a checksum and was dropped:
			       * cold layers are gone for good (atomic) */
	uint32_t pad;
} tkv__unit;

typedef struct tkv__layer {
	uint64_t next_pos; /* producer-owned; atomic for readers' range checks */
	char pad0[56];
	uint64_t done_pos; /* worker release, readers acquire */
	int32_t error;     /* sticky: a block could not be allocated (atomic) */
	uint32_t pad_e;
	/* Completion waiters (runtime/completion.c): they sleep on done_wake
	 * and lower wait_min to the position they need; the worker signals
	 * only once done_pos reaches wait_min, then resets it to UINT64_MAX. */
	tkv__wake done_wake;
	uint64_t wait_min;    /* atomic */
	uint64_t retired_pos; /* worker release, closer acquires */
	tkv__block *chunks[TKV__NCHUNKS];
	char pad1[64 - (40 + 8 * TKV__NCHUNKS) % 64];
} tkv__layer;

typedef struct tkv__seq {
	uint64_t id;
	struct tkv__seq *next; /* hash chain, under the shard lock */
	uint32_t refs;         /* API calls using it now (atomic) */
	uint32_t pins;         /* blocks pinned by views, all layers (atomic) */
	uint32_t closing;      /* 1 while seq_close runs (atomic; see tkv__seq_pin) */
	uint32_t n_layers;
	tkv__layer *layers;    /* n_layers, cache-line aligned */
	tkv__unit *units[TKV__NCHUNKS]; /* segmented like the block tables;
					 * chunks installed by CAS (any worker) */
} tkv__seq;

tkv__seq *tkv__seq_new(uint64_t id, uint32_t n_layers);
/* The unit of block b, or NULL if never made. */
tkv__unit *tkv__seq_unit(const tkv__seq *s, uint64_t b);
/* The unit of block b, making its chunk if needed (any thread); NULL on
 * ENOMEM. */
tkv__unit *tkv__seq_unit_make(tkv__seq *s, uint64_t b);

/* Drops a reference taken by a lookup (runtime/seq_table.h) or by a thread
 * that holds the sequence across I/O (the evictor, prefetch). */
void tkv__seq_put(tkv__seq *s);

/* Adds n pins for a view; false (and no pins) if the sequence is closing. */
bool tkv__seq_pin(tkv__seq *s, uint32_t n);
void tkv__seq_unpin(tkv__seq *s, uint32_t n);

/* Frees the tables and, through free_block, every block's memory; returns
 * the number of blocks freed (those with mem). */
uint64_t tkv__seq_free(tkv__seq *s, void (*free_block)(void *ctx, uint32_t layer, void *mem),
		   void *ctx);

/* The entry of block b of a layer, or NULL if its chunk is not allocated.
 * Readers call it only for blocks below an acquired done_pos. */
tkv__block *tkv__seq_block(const tkv__layer *l, uint64_t b);
/* The entry of block b, allocating its chunk (worker only). NULL on ENOMEM. */
tkv__block *tkv__seq_block_make(tkv__layer *l, uint64_t b);

#endif
