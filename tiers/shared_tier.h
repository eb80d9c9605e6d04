/*
 * shared_tier.h - prefix-cache blocks in a shared Redis Cluster (or one
 * standalone Redis/Valkey server), below the cold tier: what one serving
 * node computed, the others fetch instead of recomputing.
 *
 * What goes there. Published cache blocks only, never a sequence's private
 * blocks: one key per block, "tkv1:<namespace digest>:<block key>" in hex
 * (32 + 32 digits), no hash tag, so blocks spread over every master. The
 * value is a cold-tier record (cold_record.h) of the block, all layers:
 * the geometry, the block key, its block_tokens token ids and the per-layer
 * CRC32C under the header CRC; its store id is the namespace digest's high
 * half, so a value of another model or geometry fails the header check.
 *
 * What is believed. A fetched value is used only if its length is exactly
 * one record, its header checks (magic, version, geometry, CRC, store id),
 * it is a cache block, its key equals the key asked for, its token ids
 * equal the prompt's, and every layer matches its CRC. Anything else is a
 * miss, counted as corrupt, never data. Identity across machines is the
 * 128-bit chained key (namespace, salt and every token id of the prefix:
 * docs/KEY_FORMAT.md) plus the block's own token ids: unlike the local index
 * (tiers/cache.h), there is no entry-id chain shared between nodes, so two
 * different prefixes whose chained keys collide AND whose last blocks have
 * the same token ids would be confused. docs/ARCHITECTURE.md, "Shared tier",
 * says what that costs.
 *
 * Writes are asynchronous: callers hand over a filled record buffer
 * (tkv__shared_tier_put) and a writer thread seals it (CRCs) and sends it
 * with SET NX in pipelined batches, so a block the cluster already holds is
 * not replaced. A bounded queue (queue_bytes): when it is full the block is
 * not written, and that is counted (writes_dropped). Reads are synchronous
 * in the calling thread on a pooled connection, bounded by the client's
 * timeouts (tiers/shared_client.h).
 */
#ifndef TKV_TIERS_SHARED_TIER_H
#define TKV_TIERS_SHARED_TIER_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "tiers/block_key.h"
#include "tiers/cold_record.h"
#include "tiers/shared_client.h"

typedef struct tkv__shared_tier tkv__shared_tier;

/* The shape of the tier's traffic, public so a baseline can copy it
 * (bench/shared.c): the writer sends SET NX in batches of WRITE_BATCH
 * records, a fetch GETs at most FETCH_MAX blocks in one pipelined batch,
 * and every key name is KEY_NAME_LEN bytes. */
enum {
	TKV__SHARED_TIER_WRITE_BATCH = 16,
	TKV__SHARED_TIER_FETCH_MAX = 64,
	TKV__SHARED_TIER_KEY_NAME_LEN = 5 + 32 + 1 + 32, /* "tkv1:" ns ":" key */
};

/* Blocks one fetch asks for when a prefix continues in the cluster: at most
 * 32 MiB of records per round (so a long prompt does not pull hundreds of
 * MiB before the first block is checked), at most FETCH_MAX, at least 1. */
static inline size_t tkv__shared_tier_fetch_window(size_t record_bytes)
{
	size_t w = ((size_t)32 << 20) / record_bytes;
	return w < 1 ? 1 : w > TKV__SHARED_TIER_FETCH_MAX ? TKV__SHARED_TIER_FETCH_MAX : w;
}

typedef struct tkv__shared_tier_cfg {
	tkv__shared_cfg client;
	tkv__key ns;              /* the prefix cache's namespace */
	tkv__cold_layout layout;  /* the record format of this geometry */
	tkv__crc_fn crc;
	uint64_t queue_bytes;     /* records waiting to be written, at most; 0: 64 MiB */
} tkv__shared_tier_cfg;

typedef struct tkv__shared_tier_stats {
	tkv__shared_stats client;
	uint64_t fetch_blocks;    /* blocks asked for by fetches */
	uint64_t fetch_hits;      /* verified and handed out */
	uint64_t fetch_misses;    /* absent, or the server failed (client says which) */
	uint64_t fetch_corrupt;   /* present but not believed (see above) */
	uint64_t writes_queued, writes_dropped, writes_stored, writes_existed, writes_failed;
	uint64_t queue_bytes;     /* now */
} tkv__shared_tier_stats;

/* 0, -EINVAL (bad seeds: message), -ENOMEM; unreachable servers are not an
 * error. Starts the writer thread. */
int tkv__shared_tier_open(const tkv__shared_tier_cfg *cfg, tkv__shared_tier **out);
/* Sends what is queued (bounded by the client's timeouts), stops the
 * writer, frees everything. NULL: no-op. */
void tkv__shared_tier_close(tkv__shared_tier *st);

/* A record buffer (record_bytes, 4 KiB aligned) to fill for a put, or NULL
 * when the write queue is full or memory is short (counted as a dropped
 * write). Any thread. */
void *tkv__shared_tier_buf(tkv__shared_tier *st);
/* A buffer from tkv__shared_tier_buf that will not be put after all. */
void tkv__shared_tier_buf_unused(tkv__shared_tier *st, void *buf);
/* Bytes of one record (a value). */
size_t tkv__shared_tier_record_bytes(const tkv__shared_tier *st);
/* Layer l's block_bytes inside a record buffer. */
void *tkv__shared_tier_layer(const tkv__shared_tier *st, void *buf, uint32_t layer);
/* Queues the block (key, block_tokens token ids) whose layers are in buf
 * (filled at tkv__cold_record_layer) for writing; takes buf. Any thread. */
void tkv__shared_tier_put(tkv__shared_tier *st, tkv__key key, const uint32_t *tokens, void *buf);

/* Fetches blocks keys[0..n) (token ids of block i at tokens + i *
 * block_tokens) into bufs[i] (from tkv__shared_tier_buf_raw), pipelined,
 * and verifies them in order; returns how many leading blocks are verified
 * hits (it stops at the first that is not). Any thread. */
size_t tkv__shared_tier_fetch(tkv__shared_tier *st, const tkv__key *keys, const uint32_t *tokens,
			      size_t n, void **bufs);
/* A record buffer for a fetch (not counted against the write queue), or
 * NULL; freed with tkv__shared_tier_buf_free. */
void *tkv__shared_tier_buf_raw(tkv__shared_tier *st);
void tkv__shared_tier_buf_free(tkv__shared_tier *st, void *buf);
/* How many leading blocks of keys[0..n) the cluster holds (EXISTS,
 * pipelined; not verified). Any thread. */
size_t tkv__shared_tier_present(tkv__shared_tier *st, const tkv__key *keys, size_t n);

void tkv__shared_tier_stats_get(tkv__shared_tier *st, tkv__shared_tier_stats *out);

/* The key a block is stored under (for tests and tools): writes at most
 * cap bytes with a NUL; returns its length. */
size_t tkv__shared_tier_key_name(const tkv__shared_tier *st, tkv__key key, char *out, size_t cap);

#endif
