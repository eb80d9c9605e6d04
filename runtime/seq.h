/*
 * seq.h - a sequence (one request's KV) and its per-layer block tables.
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
 * The release store of done_pos is the worker's last access to the sequence
 * for a batch, so once every layer's done_pos reaches its next_pos no worker
 * holds a reference and the sequence can be freed.
 *
 * Block tables are segmented (chunk k holds 64 << k entries) so a table grows
 * without moving entries a concurrent reader may be looking at, and a short
 * sequence costs a few hundred bytes per layer.
 */
#ifndef TKV_RUNTIME_SEQ_H
#define TKV_RUNTIME_SEQ_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/config.h"

#define TKV__CHUNK0 64u
#define TKV__NCHUNKS 26 /* 64 * (2^26 - 1) blocks: far beyond any context */

typedef struct tkv__block {
	void *mem;     /* K rows [block_tokens][kv_dim], then V rows */
	uint32_t pins; /* views holding it (atomic) */
	uint32_t pad;
} tkv__block;

typedef struct tkv__layer {
	uint64_t next_pos; /* producer-owned; atomic for readers' range checks */
	char pad0[56];
	uint64_t done_pos; /* worker release, readers acquire */
	int32_t error;     /* sticky: a block could not be allocated (atomic) */
	uint32_t pad_e;
	tkv__block *chunks[TKV__NCHUNKS];
	char pad1[64 - (16 + 8 * TKV__NCHUNKS) % 64];
} tkv__layer;

typedef struct tkv__seq {
	uint64_t id;
	struct tkv__seq *next; /* hash chain, under the shard lock */
	uint32_t refs;         /* API calls using it now (atomic) */
	uint32_t pins;         /* blocks pinned by views, all layers (atomic) */
	uint32_t closing;      /* 1 while seq_close runs (atomic; see tkv__seq_pin) */
	uint32_t n_layers;
	tkv__layer *layers;    /* n_layers, cache-line aligned */
} tkv__seq;

tkv__seq *tkv__seq_new(uint64_t id, uint32_t n_layers);
/* Adds n pins for a view; false (and no pins) if the sequence is closing. */
bool tkv__seq_pin(tkv__seq *s, uint32_t n);
void tkv__seq_unpin(tkv__seq *s, uint32_t n);

/* Frees the tables and, through free_block, every block's memory. */
void tkv__seq_free(tkv__seq *s, void (*free_block)(void *ctx, uint32_t layer, void *mem),
		   void *ctx);

/* The entry of block b of a layer, or NULL if its chunk is not allocated.
 * Readers call it only for blocks below an acquired done_pos. */
tkv__block *tkv__seq_block(const tkv__layer *l, uint64_t b);
/* The entry of block b, allocating its chunk (worker only). NULL on ENOMEM. */
tkv__block *tkv__seq_block_make(tkv__layer *l, uint64_t b);

#endif
