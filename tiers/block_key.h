/*
 * block_key.h - the portable key of a cached KV block (issue 9, item 1).
 *
 * A full block (block_tokens tokens, all layers) is keyed by the token
 * prefix that produced it, as a chain of 128-bit digests:
 *
 *     ns    = H("tierkv/ns/v1" || model id || geometry || dtype || block_tokens)
 *     key_0 = H("tierkv/k0/v1" || ns || salt || tokens[0..B))
 *     key_i = H("tierkv/kn/v1" || key_{i-1} || tokens[iB..(i+1)B))
 *
 * H is XXH3-128 with no seed and no secret (XXH3_128bits of libxxhash).
 * docs/KEY_FORMAT.md defines every byte fed to H, with test vectors that
 * tests/block_key.c (this code) and tests/key_vectors.py (an independent
 * Python implementation) both recompute from the doc.
 *
 * Invariants:
 * - No seed, no per-process state: the same inputs give the same key in
 *   every process, on every machine, in every release that keeps the "v1"
 *   tags (a change to any byte string moves its tag to v2).
 * - Each input starts with its own 12-byte tag, and every variable-length
 *   field but the trailing tokens is length-prefixed, so no input of one
 *   kind is also a valid input of another, and no two different argument
 *   lists give the same byte string.
 * - A key is a digest, never proof of equal content: a cache compares the
 *   block's token ids too (issue 9, item 2), so a collision costs a miss,
 *   never another prompt's KV.
 *
 * Cost: inputs up to 1 KiB (block_tokens up to about 240) are gathered on
 * the stack and hashed in one call (one-shot is much faster than streaming
 * for short inputs); longer ones are streamed, which is as fast past 1 KiB
 * (figures: docs/MEASUREMENTS.md, "Block keys"). Nothing allocates and
 * nothing can fail.
 *
 * Thread safety: every function is pure and may run on any number of
 * threads at once, except tkv__key_set_test_hash (see there).
 */
#ifndef TKV_TIERS_BLOCK_KEY_H
#define TKV_TIERS_BLOCK_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierkv.h"

/* A 128-bit key: XXH128_hash_t's high64 and low64. Printed (and fed to the
 * next hash) as 32 hex digits / 16 bytes, hi then lo, each big-endian:
 * XXH128_canonicalFromHash, the same bytes as Python's xxh3_128_digest(). */
typedef struct tkv__key {
	uint64_t hi, lo;
} tkv__key;

/*
 * Digest of everything that makes KV of one model or layout incompatible
 * with another: model_id (the caller's string, e.g. a model name and
 * revision; required and non-empty: config validation refuses an empty one,
 * and NULL is hashed as empty rather than crashing), the geometry, dtype and
 * block_tokens. Computed once per runtime; every key_0 starts from it.
 */
tkv__key tkv__key_namespace(const char *model_id, uint32_t n_layers, uint32_t n_kv_heads,
			    uint32_t head_dim, tkv_dtype dtype, uint32_t block_tokens);

/*
 * key_0 = H(namespace || salt || tokens[0..n_tokens)). The salt (a tenant's
 * isolation bytes) is optional: salt == NULL or salt_len == 0 means no salt,
 * which differs from every non-empty salt (the salt is length-prefixed).
 * Neither buffer is kept after the call.
 */
tkv__key tkv__key_first(tkv__key ns, const void *salt, size_t salt_len, const uint32_t *tokens,
			uint32_t n_tokens);

/* key_i = H(key_{i-1} || tokens[0..n_tokens)), tokens being block i's. */
tkv__key tkv__key_next(tkv__key prev, const uint32_t *tokens, uint32_t n_tokens);

/*
 * Keys of the first n_blocks full blocks of tokens (which must hold
 * n_blocks * block_tokens ids) into out[0..n_blocks): key_first for block 0,
 * then key_next. block_tokens must be the one hashed into ns (a digest
 * cannot be checked); n_blocks == 0 writes nothing.
 */
void tkv__key_chain(tkv__key ns, const void *salt, size_t salt_len, const uint32_t *tokens,
		    uint32_t block_tokens, size_t n_blocks, tkv__key *out);

/*
 * The identity of a tenant salt for the prefix cache's exact match (not a
 * block key): {0, 0} for no salt, else XXH3-128 of "tierkv/salt/v1" || salt
 * with the low bit set. It never goes through the test hash: a test that
 * forces every block key to collide still sees tenants apart. Not part of
 * docs/KEY_FORMAT.md (it never leaves the process except inside a cold
 * record's parent field, tiers/cold_record.h).
 */
tkv__key tkv__key_salt_id(const void *salt, size_t salt_len);

static inline bool tkv__key_eq(tkv__key a, tkv__key b)
{
	return ((a.hi ^ b.hi) | (a.lo ^ b.lo)) == 0;
}

/*
 * TEST ONLY: replaces H (XXH3-128 of a byte string) by fn, e.g. a constant
 * to force collisions; NULL restores XXH3-128. fn sees the exact byte
 * strings of docs/KEY_FORMAT.md, contiguous (gathered in a heap buffer when
 * longer than the stack one; if that allocation fails the process aborts,
 * which only a test can reach). Only safe when no thread is hashing: tests
 * set it before opening a runtime and restore it after closing it.
 */
void tkv__key_set_test_hash(tkv__key (*fn)(const void *bytes, size_t len));

#endif
