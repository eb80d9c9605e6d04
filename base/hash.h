/*
 * hash.h - the one integer mixer, for hash tables keyed by ids the caller
 * chooses (request ids are often 0, 1, 2...; the low bits must come out
 * uniform for shard and bucket indexes). MurmurHash3's 64-bit finalizer:
 * a bijection, so distinct ids never collide before the table's mask.
 * Not for content keys (a digest of block contents needs a real hash).
 */
#ifndef TKV_BASE_HASH_H
#define TKV_BASE_HASH_H

#include <stdint.h>

static inline uint64_t tkv__mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* A key for a pair (sequence id, block index): the golden-ratio multiply
 * spreads a's bits over the word before b is mixed in, so (a, b) and
 * (b, a) differ. */
static inline uint64_t tkv__mix_pair(uint64_t a, uint64_t b)
{
	return tkv__mix64(a * 0x9e3779b97f4a7c15ull ^ b);
}

#endif
