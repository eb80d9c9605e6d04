/*
 * cold_record.h - the on-disk format of one cold-tier record: one block (B
 * tokens) of one sequence, all layers, in one fixed-size 4 KiB-aligned slot.
 *
 * Layout of a record (every offset a multiple of 4 KiB, so one O_DIRECT write
 * stores it and one O_DIRECT read fetches any single layer):
 *
 *   [0, header_bytes)                        header (below), zero padded
 *   header_bytes + l * slice_stride          layer l: block_bytes of payload,
 *                                            K rows (block_tokens of them) then
 *                                            V rows, exactly the hot tier's
 *                                            per-layer block; zero padded to
 *                                            slice_stride = round_up(block_bytes,
 *                                            4 KiB)
 *   record_bytes = header_bytes + n_layers * slice_stride
 *
 * Header, little-endian (the format is defined little-endian; the build
 * refuses big-endian hosts rather than byte-swapping untested code):
 *
 *   off  size  field
 *     0     8  magic "TKVCREC1"           (TKV__COLD_REC_MAGIC)
 *     8     4  format version             (TKV__COLD_REC_VERSION)
 *    12     4  header CRC32C: over bytes [0, 104 + 4 * n_layers) of the
 *              header with these 4 bytes skipped, i.e. over every other field
 *              and the whole layer-CRC table
 *    16     4  header_bytes               (round_up(104 + 4 * n_layers, 4 KiB))
 *    20     4  n_layers         \
 *    24     4  n_kv_heads        |  geometry fingerprint: a record is only
 *    28     4  head_dim          |  accepted by a store of the same geometry
 *    32     4  dtype (tkv_dtype) |
 *    36     4  block_tokens     /
 *    40     8  block_bytes      payload bytes per layer (2*B*kv_dim*elem)
 *    48     8  slice_stride     distance between layer slices
 *    56     8  payload_bytes    n_layers * block_bytes (payload length)
 *    64     8  store_id         random id of the cold directory (manifest);
 *                               stale records of an older store are ignored
 *    72     8  record seqno     monotonic per store; recovery keeps, for each
 *                               (seq, block), the record with the largest
 *    80     8  seq id
 *    88     8  block index
 *    96     4  n_tokens         valid tokens in the block, 1..block_tokens
 *   100     4  flags            bit 0: a prefix-cache block (the rest 0)
 *   104  4*L  layer CRC table   CRC32C of layer l's block_bytes of payload
 *   E      16  cache key        E = 104 + 4*L: the block's 128-bit key
 *                               (docs/KEY_FORMAT.md), hi then lo, as
 *                               le64; zero unless flag bit 0
 *   E+16   16  parent           what the block follows (tiers/cache.h): for
 *                               block 0 its salt's identity, else {0, the
 *                               entry id of the cache block before it};
 *                               le64 hi then lo; zero unless flag bit 0
 *   E+32  4*B  token ids        the block's block_tokens token ids (le32);
 *                               zero unless flag bit 0
 *
 * The header CRC covers [0, E + 32 + 4*B) minus its own 4 bytes, so a cache
 * block's key and tokens are as protected as its payload: a record is only
 * ever matched to a prompt by comparing those token ids.
 *
 * Version 2 added flags, key and tokens (version 1 had 4 reserved bytes at
 * 100 and ended at the CRC table). A directory written by version 1 is
 * refused at open with -EPROTONOSUPPORT and a message, never half-read: its
 * manifest says version 1 (tiers/cold_segments.c).
 *
 * Why a per-layer CRC table instead of one CRC over header and payload: a
 * promotion reads and verifies ONE layer (the slice a view of layer L needs)
 * without reading or waiting for the others. The header CRC covers the table,
 * so the chain header CRC -> layer CRC -> payload covers every byte of the
 * record except the zero padding. The in-memory index keeps the table, so a
 * single-layer read needs no header read at all.
 *
 * A torn write (crash in the middle of a record's single write) leaves either
 * a header whose CRC fails (skipped at recovery) or a valid header over stale
 * payload, which fails its layer CRC at read (reported as corrupt, never
 * returned); a record is reported durable only after write + fdatasync.
 */
#ifndef TKV_TIERS_COLD_RECORD_H
#define TKV_TIERS_COLD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "tierkv.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the cold record format is little-endian; big-endian hosts are not supported"
#endif

#define TKV__COLD_ALIGN 4096u
#define TKV__COLD_REC_MAGIC "TKVCREC1" /* 8 bytes, no NUL stored */
#define TKV__COLD_REC_VERSION 2u
#define TKV__COLD_REC_CACHE 1u        /* flags bit 0: a prefix-cache block */
#define TKV__COLD_REC_FIXED 104u      /* header bytes before the CRC table */
#define TKV__COLD_MAX_RECORD (1ull << 30) /* one I/O; io_uring lengths are 32-bit */
#define TKV__COLD_MAX_LAYERS 1024u

/* Sizes of a record for one geometry; derived once, immutable. */
typedef struct tkv__cold_layout {
	uint32_t n_layers, n_kv_heads, head_dim, block_tokens;
	tkv_dtype dtype;
	uint64_t block_bytes;   /* payload per layer */
	uint64_t slice_stride;  /* round_up(block_bytes, 4 KiB) */
	uint64_t header_bytes;  /* round_up(104 + 4 * n_layers, 4 KiB) */
	uint64_t payload_bytes; /* n_layers * block_bytes */
	uint64_t record_bytes;  /* header_bytes + n_layers * slice_stride */
} tkv__cold_layout;

/* Identity of one record (what the header says besides the geometry). */
typedef struct tkv__cold_rec_id {
	uint64_t store_id, seqno, seq, block;
	uint32_t n_tokens;
	uint32_t flags;           /* TKV__COLD_REC_CACHE */
	uint64_t key_hi, key_lo;  /* cache blocks */
	uint64_t parent_hi, parent_lo;
	const uint32_t *tokens;   /* seal: block_tokens ids of a cache block, or
				   * NULL (zeros); check does not set it (use
				   * tkv__cold_record_tokens) */
} tkv__cold_rec_id;

/* Fills *l from the geometry; block_bytes 0 derives it, otherwise it must
 * equal 2 * block_tokens * n_kv_heads * head_dim * elem. 0, or -EINVAL with a
 * message naming the field (also for a record over 1 GiB). */
int tkv__cold_layout_init(tkv__cold_layout *l, uint32_t n_layers, uint32_t n_kv_heads,
			  uint32_t head_dim, tkv_dtype dtype, uint32_t block_tokens,
			  uint64_t block_bytes);

/* Writes the header of the record at `rec` (record_bytes, 4 KiB aligned,
 * payload already in place): takes the layer CRCs from known[] if not NULL
 * (the caller vouches for them; a wrong one makes that layer read as
 * corrupt, never as valid), else computes them; copies them to out[] if not
 * NULL; then computes the header CRC. Pure; thread-safe. */
void tkv__cold_record_seal(const tkv__cold_layout *l, tkv__crc_fn crc, const tkv__cold_rec_id *id,
			   void *rec, const uint32_t *known, uint32_t *out);

/*
 * Checks a header (header_bytes at `hdr`) and extracts its identity and layer
 * CRC table (layer_crc may be NULL). Does not read the payload. Returns
 *   0             valid record of this geometry and store
 *   -ENOENT       no record (no magic): an empty or zeroed slot
 *   -TKV_ECORRUPT magic present but CRC, version or sizes wrong (torn/garbage)
 *   -EMEDIUMTYPE  a valid record of another geometry
 *   -ESTALE       a valid record of another store (an older directory's)
 */
int tkv__cold_record_check(const tkv__cold_layout *l, tkv__crc_fn crc, const void *hdr,
			   uint64_t store_id, tkv__cold_rec_id *id, uint32_t *layer_crc);

/* Copies the block_tokens token ids of a checked header to out. */
void tkv__cold_record_tokens(const tkv__cold_layout *l, const void *hdr, uint32_t *out);

/* The payload slice of layer `layer` inside a record buffer. */
static inline void *tkv__cold_record_layer(const tkv__cold_layout *l, void *rec, uint32_t layer)
{
	return (unsigned char *)rec + l->header_bytes + (uint64_t)layer * l->slice_stride;
}

/* Byte offset of layer `layer`'s slice from the start of the record. */
static inline uint64_t tkv__cold_record_layer_off(const tkv__cold_layout *l, uint32_t layer)
{
	return l->header_bytes + (uint64_t)layer * l->slice_stride;
}

/* true if the block_bytes at `slice` have CRC32C `expect`. */
static inline bool tkv__cold_layer_ok(const tkv__cold_layout *l, tkv__crc_fn crc,
				      const void *slice, uint32_t expect)
{
	return crc(0, slice, l->block_bytes) == expect;
}

#endif
