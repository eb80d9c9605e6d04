/*
 * cold_record.c - encoding and checking of cold-tier record headers (format:
 * cold_record.h). Pure functions of their arguments: no I/O, no state.
 *
 * Fields are accessed through memcpy at fixed offsets rather than through a
 * packed struct, so the format is exactly the table in the header and no
 * compiler padding or alignment assumption can creep in.
 */
#include "tiers/cold_record.h"

#include <errno.h>
#include <string.h>

#include "base/error.h"

enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 8,
	OFF_HCRC = 12,
	OFF_HBYTES = 16,
	OFF_LAYERS = 20,
	OFF_HEADS = 24,
	OFF_HDIM = 28,
	OFF_DTYPE = 32,
	OFF_BTOK = 36,
	OFF_BBYTES = 40,
	OFF_STRIDE = 48,
	OFF_PAYLOAD = 56,
	OFF_STORE = 64,
	OFF_SEQNO = 72,
	OFF_SEQ = 80,
	OFF_BLOCK = 88,
	OFF_NTOK = 96,
	OFF_FLAGS = 100,
	OFF_TABLE = TKV__COLD_REC_FIXED,
};
_Static_assert(OFF_FLAGS + 4 == OFF_TABLE, "header fields and table must be contiguous");

/* Offsets past the CRC table (the cache extension) and the CRC'd length. */
static size_t off_key(const tkv__cold_layout *l)
{
	return OFF_TABLE + 4u * (size_t)l->n_layers;
}

static size_t off_parent(const tkv__cold_layout *l)
{
	return off_key(l) + 16;
}

static size_t off_tokens(const tkv__cold_layout *l)
{
	return off_parent(l) + 16;
}

static size_t header_used(const tkv__cold_layout *l)
{
	return off_tokens(l) + 4u * (size_t)l->block_tokens;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static void put32(void *h, size_t off, uint32_t v) { memcpy((char *)h + off, &v, 4); }
static void put64(void *h, size_t off, uint64_t v) { memcpy((char *)h + off, &v, 8); }
static uint32_t get32(const void *h, size_t off)
{
	uint32_t v;
	memcpy(&v, (const char *)h + off, 4);
	return v;
}
static uint64_t get64(const void *h, size_t off)
{
	uint64_t v;
	memcpy(&v, (const char *)h + off, 8);
	return v;
}

int tkv__cold_layout_init(tkv__cold_layout *l, uint32_t n_layers, uint32_t n_kv_heads,
			  uint32_t head_dim, tkv_dtype dtype, uint32_t block_tokens,
			  uint64_t block_bytes)
{
	size_t elem = tkv_dtype_size(dtype);
	uint64_t derived, rec;
	if (!n_layers || n_layers > TKV__COLD_MAX_LAYERS || !n_kv_heads || n_kv_heads > 1024 ||
	    !head_dim || head_dim > 4096 || !block_tokens || block_tokens > 4096 || !elem)
		return tkv__fail(-EINVAL,
				 "cold: geometry out of range (layers=%u kv_heads=%u head_dim=%u "
				 "dtype=%d block_tokens=%u)",
				 n_layers, n_kv_heads, head_dim, (int)dtype, block_tokens);
	/* All factors are bounded above (<= 2^12 each), so no overflow in 64 bits. */
	derived = 2ull * block_tokens * n_kv_heads * head_dim * elem;
	if (block_bytes && block_bytes != derived)
		return tkv__fail(-EINVAL,
				 "cold config.block_bytes: %llu does not match the geometry "
				 "(2 * %u tokens * %u heads * %u dim * %zu bytes = %llu)",
				 (unsigned long long)block_bytes, block_tokens, n_kv_heads, head_dim,
				 elem, (unsigned long long)derived);
	l->n_layers = n_layers;
	l->n_kv_heads = n_kv_heads;
	l->head_dim = head_dim;
	l->block_tokens = block_tokens;
	l->dtype = dtype;
	l->block_bytes = derived;
	l->slice_stride = round_up(derived, TKV__COLD_ALIGN);
	l->header_bytes = round_up(TKV__COLD_REC_FIXED + 4ull * n_layers + 32 + 4ull * block_tokens,
				   TKV__COLD_ALIGN);
	l->payload_bytes = derived * n_layers;
	rec = l->header_bytes + l->slice_stride * n_layers;
	if (rec > TKV__COLD_MAX_RECORD)
		return tkv__fail(-EINVAL,
				 "cold: a record of this geometry is %llu bytes; the cold tier "
				 "supports at most %llu (use smaller block_tokens)",
				 (unsigned long long)rec, (unsigned long long)TKV__COLD_MAX_RECORD);
	l->record_bytes = rec;
	return 0;
}

/* CRC of the used part of a header with its own CRC field skipped. */
static uint32_t header_crc(const tkv__cold_layout *l, tkv__crc_fn crc, const void *h)
{
	const unsigned char *p = h;
	size_t used = header_used(l);
	uint32_t c = crc(0, p, OFF_HCRC);
	return crc(c, p + OFF_HCRC + 4, used - OFF_HCRC - 4);
}

void tkv__cold_record_seal(const tkv__cold_layout *l, tkv__crc_fn crc, const tkv__cold_rec_id *id,
			   void *rec, const uint32_t *known, uint32_t *out)
{
	unsigned char *h = rec;
	memset(h, 0, l->header_bytes);
	memcpy(h + OFF_MAGIC, TKV__COLD_REC_MAGIC, 8);
	put32(h, OFF_VERSION, TKV__COLD_REC_VERSION);
	put32(h, OFF_HBYTES, (uint32_t)l->header_bytes);
	put32(h, OFF_LAYERS, l->n_layers);
	put32(h, OFF_HEADS, l->n_kv_heads);
	put32(h, OFF_HDIM, l->head_dim);
	put32(h, OFF_DTYPE, (uint32_t)l->dtype);
	put32(h, OFF_BTOK, l->block_tokens);
	put64(h, OFF_BBYTES, l->block_bytes);
	put64(h, OFF_STRIDE, l->slice_stride);
	put64(h, OFF_PAYLOAD, l->payload_bytes);
	put64(h, OFF_STORE, id->store_id);
	put64(h, OFF_SEQNO, id->seqno);
	put64(h, OFF_SEQ, id->seq);
	put64(h, OFF_BLOCK, id->block);
	put32(h, OFF_NTOK, id->n_tokens);
	put32(h, OFF_FLAGS, id->flags);
	if (id->flags & TKV__COLD_REC_CACHE) {
		put64(h, off_key(l), id->key_hi);
		put64(h, off_key(l) + 8, id->key_lo);
		put64(h, off_parent(l), id->parent_hi);
		put64(h, off_parent(l) + 8, id->parent_lo);
		for (uint32_t t = 0; id->tokens && t < l->block_tokens; t++)
			put32(h, off_tokens(l) + 4u * t, id->tokens[t]);
	}
	for (uint32_t i = 0; i < l->n_layers; i++) {
		uint32_t c = known ? known[i] : crc(0, tkv__cold_record_layer(l, rec, i), l->block_bytes);
		put32(h, OFF_TABLE + 4u * i, c);
		if (out)
			out[i] = c;
	}
	put32(h, OFF_HCRC, header_crc(l, crc, h));
}

static bool same_geometry(const tkv__cold_layout *l, const void *h)
{
	return get32(h, OFF_LAYERS) == l->n_layers && get32(h, OFF_HEADS) == l->n_kv_heads &&
	       get32(h, OFF_HDIM) == l->head_dim && get32(h, OFF_DTYPE) == (uint32_t)l->dtype &&
	       get32(h, OFF_BTOK) == l->block_tokens;
}

int tkv__cold_record_check(const tkv__cold_layout *l, tkv__crc_fn crc, const void *hdr,
			   uint64_t store_id, tkv__cold_rec_id *id, uint32_t *layer_crc)
{
	uint32_t ntok;
	if (memcmp((const char *)hdr + OFF_MAGIC, TKV__COLD_REC_MAGIC, 8) != 0)
		return -ENOENT;
	if (get32(hdr, OFF_VERSION) != TKV__COLD_REC_VERSION)
		return -TKV_ECORRUPT;
	if (!same_geometry(l, hdr))
		/* Can't CRC-check a table of another length safely: report the
		 * geometry, which is what a caller acts on. */
		return -EMEDIUMTYPE;
	if (get32(hdr, OFF_HCRC) != header_crc(l, crc, hdr))
		return -TKV_ECORRUPT;
	ntok = get32(hdr, OFF_NTOK);
	if (get32(hdr, OFF_HBYTES) != l->header_bytes || get64(hdr, OFF_BBYTES) != l->block_bytes ||
	    get64(hdr, OFF_STRIDE) != l->slice_stride ||
	    get64(hdr, OFF_PAYLOAD) != l->payload_bytes || ntok == 0 || ntok > l->block_tokens ||
	    (get32(hdr, OFF_FLAGS) & ~TKV__COLD_REC_CACHE) != 0)
		return -TKV_ECORRUPT; /* CRC-valid but inconsistent: a writer bug */
	if (get64(hdr, OFF_STORE) != store_id)
		return -ESTALE;
	if (id) {
		id->store_id = store_id;
		id->seqno = get64(hdr, OFF_SEQNO);
		id->seq = get64(hdr, OFF_SEQ);
		id->block = get64(hdr, OFF_BLOCK);
		id->n_tokens = ntok;
		id->flags = get32(hdr, OFF_FLAGS);
		id->key_hi = get64(hdr, off_key(l));
		id->key_lo = get64(hdr, off_key(l) + 8);
		id->parent_hi = get64(hdr, off_parent(l));
		id->parent_lo = get64(hdr, off_parent(l) + 8);
		id->tokens = NULL;
	}
	if (layer_crc)
		for (uint32_t i = 0; i < l->n_layers; i++)
			layer_crc[i] = get32(hdr, OFF_TABLE + 4u * i);
	return 0;
}

void tkv__cold_record_tokens(const tkv__cold_layout *l, const void *hdr, uint32_t *out)
{
	for (uint32_t t = 0; t < l->block_tokens; t++)
		out[t] = get32(hdr, off_tokens(l) + 4u * t);
}
