/*
 * kv_pattern.h - the deterministic test data: every byte of every K and V row
 * is a function of (sequence, layer, position, byte index, K or V), so a
 * read-back can be checked without keeping a copy of what was stored, and a
 * row landing at the wrong position, layer or sequence is caught.
 */
#ifndef TKV_TESTS_KV_PATTERN_H
#define TKV_TESTS_KV_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The same finalizer as base/hash.h, kept separate on purpose: the test data
 * must not change (or degrade) when the library's mixer does. */
static inline uint64_t kvp_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Fills n rows of row_bytes for positions pos.. of (seq, layer, kv). */
static inline void kvp_fill(unsigned char *dst, uint64_t seq, uint32_t layer, uint64_t pos,
			    uint32_t n, size_t row_bytes, int kv)
{
	for (uint32_t t = 0; t < n; t++) {
		uint64_t base = kvp_mix(seq * 0x9e3779b97f4a7c15ull ^ ((uint64_t)layer << 48) ^
					((pos + t) << 1) ^ (uint64_t)kv);
		for (size_t j = 0; j < row_bytes; j += 8) {
			uint64_t w = kvp_mix(base + j);
			size_t m = row_bytes - j < 8 ? row_bytes - j : 8;
			memcpy(dst + (size_t)t * row_bytes + j, &w, m);
		}
	}
}

/* Returns the index of the first row that differs, or -1. */
static inline long kvp_check(const unsigned char *got, uint64_t seq, uint32_t layer,
			     uint64_t pos, uint32_t n, size_t row_bytes, int kv,
			     unsigned char *scratch)
{
	for (uint32_t t = 0; t < n; t++) {
		kvp_fill(scratch, seq, layer, pos + t, 1, row_bytes, kv);
		if (memcmp(got + (size_t)t * row_bytes, scratch, row_bytes))
			return (long)t;
	}
	return -1;
}

#endif
