/* cold_record.c - the cold record format: layout sizes, seal/check round
 * trip, and that every corruption of a header or a layer is detected. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tiers/cold_record.h"

static tkv__crc_fn crc(void)
{
	return tkv__kernels_get(TKV_ISA_AUTO)->crc32c;
}

Test(cold_record, crc_is_crc32c)
{
	cr_assert_eq(crc()(0, "123456789", 9), 0xE3069283u);
	/* chaining, which the header CRC (skipping its own field) relies on */
	cr_assert_eq(crc()(crc()(0, "1234", 4), "56789", 5), 0xE3069283u);
}

Test(cold_record, layout_llama3_8b_f32)
{
	tkv__cold_layout l;
	cr_assert_eq(tkv__cold_layout_init(&l, 32, 8, 128, TKV_DTYPE_F32, 16, 0), 0);
	cr_assert_eq(l.block_bytes, 128 * 1024);
	cr_assert_eq(l.slice_stride, 128 * 1024);
	cr_assert_eq(l.header_bytes, 4096);
	cr_assert_eq(l.record_bytes, 4096 + 32 * 128 * 1024);
	cr_assert_eq(l.payload_bytes, 32ull * 128 * 1024);
	/* matching block_bytes accepted, another refused and named */
	cr_assert_eq(tkv__cold_layout_init(&l, 32, 8, 128, TKV_DTYPE_F32, 16, 128 * 1024), 0);
	cr_assert_eq(tkv__cold_layout_init(&l, 32, 8, 128, TKV_DTYPE_F32, 16, 4096), -EINVAL);
	cr_assert(strstr(tkv_last_error(), "block_bytes"));
}

Test(cold_record, layout_edges)
{
	tkv__cold_layout l;
	/* 1024 layers: the CRC table spills into a second header page */
	cr_assert_eq(tkv__cold_layout_init(&l, 1024, 1, 64, TKV_DTYPE_BF16, 1, 0), 0);
	cr_assert_eq(l.header_bytes, 8192);
	/* a block smaller than 4 KiB is padded to a 4 KiB slice */
	cr_assert_eq(tkv__cold_layout_init(&l, 3, 1, 24, TKV_DTYPE_BF16, 4, 0), 0);
	cr_assert_eq(l.block_bytes, 2 * 4 * 24 * 2);
	cr_assert_eq(l.slice_stride, 4096);
	cr_assert_eq(l.record_bytes % 4096, 0);
	/* too large for one I/O, bad geometry */
	cr_assert_eq(tkv__cold_layout_init(&l, 1024, 8, 128, TKV_DTYPE_F32, 256, 0), -EINVAL);
	cr_assert_eq(tkv__cold_layout_init(&l, 0, 8, 128, TKV_DTYPE_F32, 16, 0), -EINVAL);
	cr_assert_eq(tkv__cold_layout_init(&l, 4, 8, 128, (tkv_dtype)9, 16, 0), -EINVAL);
}

typedef struct fixture {
	tkv__cold_layout l;
	unsigned char *rec;
	tkv__cold_rec_id id;
	uint32_t crcs[8];
} fixture;

static void make(fixture *f, uint32_t layers)
{
	cr_assert_eq(tkv__cold_layout_init(&f->l, layers, 2, 40, TKV_DTYPE_F16, 8, 0), 0);
	cr_assert_eq(posix_memalign((void **)&f->rec, 4096, f->l.record_bytes), 0);
	memset(f->rec, 0, f->l.record_bytes);
	for (uint32_t i = 0; i < layers; i++) {
		unsigned char *p = tkv__cold_record_layer(&f->l, f->rec, i);
		for (size_t b = 0; b < f->l.block_bytes; b++)
			p[b] = (unsigned char)(b * 31 + i * 7 + 1);
	}
	f->id = (tkv__cold_rec_id){0xabcdef01, 77, 0x1122334455667788ull, 9, 5, 0, 0, 0, 0, 0, NULL};
	tkv__cold_record_seal(&f->l, crc(), &f->id, f->rec, NULL, f->crcs);
}

Test(cold_record, seal_check_round_trip)
{
	fixture f;
	tkv__cold_rec_id got;
	uint32_t crcs[8];
	make(&f, 5);
	cr_assert_eq(memcmp(f.rec, "TKVCREC1", 8), 0);
	cr_assert_eq(tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id, &got, crcs), 0);
	cr_assert_eq(got.seq, f.id.seq);
	cr_assert_eq(got.block, f.id.block);
	cr_assert_eq(got.seqno, f.id.seqno);
	cr_assert_eq(got.n_tokens, f.id.n_tokens);
	for (uint32_t i = 0; i < 5; i++) {
		cr_assert_eq(crcs[i], f.crcs[i]);
		cr_assert(tkv__cold_layer_ok(&f.l, crc(), tkv__cold_record_layer(&f.l, f.rec, i), crcs[i]));
	}
	free(f.rec);
}

Test(cold_record, every_header_bit_flip_is_caught)
{
	fixture f;
	size_t used = TKV__COLD_REC_FIXED + 4 * 5;
	make(&f, 5);
	for (size_t bit = 0; bit < used * 8; bit++) {
		f.rec[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		int rc = tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id, NULL, NULL);
		cr_assert_neq(rc, 0, "flip of header bit %zu not detected", bit);
		f.rec[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	cr_assert_eq(tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id, NULL, NULL), 0);
	free(f.rec);
}

Test(cold_record, payload_flip_fails_only_its_layer)
{
	fixture f;
	make(&f, 5);
	unsigned char *p = tkv__cold_record_layer(&f.l, f.rec, 3);
	p[f.l.block_bytes - 1] ^= 0x10;
	for (uint32_t i = 0; i < 5; i++)
		cr_assert_eq(tkv__cold_layer_ok(&f.l, crc(), tkv__cold_record_layer(&f.l, f.rec, i),
						f.crcs[i]),
			     i != 3, "layer %u", i);
	/* the header itself still checks: layer damage is found per layer */
	cr_assert_eq(tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id, NULL, NULL), 0);
	free(f.rec);
}

Test(cold_record, empty_stale_and_foreign)
{
	fixture f;
	tkv__cold_layout other;
	make(&f, 5);
	cr_assert_eq(tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id + 2, NULL, NULL), -ESTALE);
	cr_assert_eq(tkv__cold_layout_init(&other, 5, 2, 40, TKV_DTYPE_BF16, 8, 0), 0);
	cr_assert_eq(tkv__cold_record_check(&other, crc(), f.rec, f.id.store_id, NULL, NULL),
		     -EMEDIUMTYPE);
	memset(f.rec, 0, f.l.header_bytes);
	cr_assert_eq(tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id, NULL, NULL), -ENOENT);
	/* garbage with the magic but nothing else right */
	for (size_t i = 8; i < f.l.header_bytes; i++)
		f.rec[i] = (unsigned char)(i * 13);
	memcpy(f.rec, "TKVCREC1", 8);
	cr_assert_neq(tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id, NULL, NULL), 0);
	free(f.rec);
}

Test(cold_record, known_layer_crcs_are_used_as_given)
{
	fixture f;
	uint32_t given[5], got[5];
	make(&f, 5);
	memcpy(given, f.crcs, sizeof(given));
	tkv__cold_record_seal(&f.l, crc(), &f.id, f.rec, given, got);
	cr_assert_eq(memcmp(got, f.crcs, sizeof(got)), 0);
	cr_assert_eq(tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id, NULL, got), 0);
	/* a wrong given CRC is stored as is: that layer will read as corrupt */
	given[2] ^= 1;
	tkv__cold_record_seal(&f.l, crc(), &f.id, f.rec, given, got);
	cr_assert_eq(tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id, NULL, got), 0);
	cr_assert_not(tkv__cold_layer_ok(&f.l, crc(), tkv__cold_record_layer(&f.l, f.rec, 2), got[2]));
	free(f.rec);
}

/* Format 2: a cache block's key and token ids round-trip, and every bit of
 * them is under the header CRC (a record is matched to a prompt by them). */
Test(cold_record, cache_key_and_tokens_round_trip_and_are_checked)
{
	fixture f;
	make(&f, 3);
	uint32_t tok[8] = {1, 2, 3, 0xffffffffu, 5, 6, 7, 8}, back[8];
	f.id.flags = TKV__COLD_REC_CACHE;
	f.id.key_hi = 0x0123456789abcdefull;
	f.id.key_lo = 0xfedcba9876543210ull;
	f.id.parent_hi = 0x1111222233334444ull;
	f.id.parent_lo = 0x5555666677778888ull;
	f.id.tokens = tok;
	tkv__cold_record_seal(&f.l, crc(), &f.id, f.rec, NULL, f.crcs);
	tkv__cold_rec_id got;
	cr_assert_eq(tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id, &got, NULL), 0);
	cr_assert_eq(got.flags, TKV__COLD_REC_CACHE);
	cr_assert_eq(got.key_hi, f.id.key_hi);
	cr_assert_eq(got.key_lo, f.id.key_lo);
	cr_assert_eq(got.parent_hi, f.id.parent_hi);
	cr_assert_eq(got.parent_lo, f.id.parent_lo);
	tkv__cold_record_tokens(&f.l, f.rec, back);
	cr_assert_eq(memcmp(back, tok, sizeof(tok)), 0);
	size_t ext = TKV__COLD_REC_FIXED + 4 * 3, end = ext + 32 + 4 * 8;
	for (size_t bit = ext * 8; bit < end * 8; bit++) {
		f.rec[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		cr_assert_eq(tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id, NULL, NULL),
			     -TKV_ECORRUPT, "bit %zu of key/tokens not covered", bit);
		f.rec[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	/* an unknown flag is a writer bug, not a record */
	f.id.flags = 2;
	tkv__cold_record_seal(&f.l, crc(), &f.id, f.rec, NULL, f.crcs);
	cr_assert_eq(tkv__cold_record_check(&f.l, crc(), f.rec, f.id.store_id, NULL, NULL),
		     -TKV_ECORRUPT);
	free(f.rec);
}
