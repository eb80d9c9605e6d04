/*
 * block_key.c - chained XXH3-128 block keys (block_key.h); the byte strings
 * are defined in docs/KEY_FORMAT.md, and this file must match it byte for
 * byte (tests/block_key.c and tests/key_vectors.py check the vectors).
 *
 * Each key's input is written through a small sink: bytes gather in a stack
 * buffer and are hashed in one XXH3_128bits call when they fit (the common
 * case, and 2.7x faster than streaming for a 16-token block); past that the
 * sink streams them into an XXH3 state on the stack, which gives the same
 * digest (XXH3 of the concatenation) without allocating.
 *
 * XXH3_state_t is declared only under XXH_STATIC_LINKING_ONLY: its layout
 * is the one of the header we compile with, and upstream warns that another
 * libxxhash version's could differ. Debian ships the header and the library
 * from one source package (0.8.1 here); the alternative, XXH3_createState,
 * would give these functions a failure path that their callers do not have.
 * Only inputs over KEY_STACK_BYTES ever touch the state.
 */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <stdlib.h>
#include <string.h>

#include "tiers/block_key.h"

/* Domain tags, one per kind of input, each 12 bytes (no NUL). */
#define TAG_LEN 12
static const char tag_ns[TAG_LEN] = "tierkv/ns/v1";
static const char tag_first[TAG_LEN] = "tierkv/k0/v1";
static const char tag_next[TAG_LEN] = "tierkv/kn/v1";

/* Inputs up to this many bytes are hashed in one call: 16 tokens take 92
 * bytes, 240 tokens about 1 KiB. */
enum { KEY_STACK_BYTES = 1024 };

/* Only written while no thread hashes (see tkv__key_set_test_hash), so a
 * plain load in sink_init is enough. */
static tkv__key (*key_test_hash)(const void *bytes, size_t len);

typedef struct key_sink {
	tkv__key (*hook)(const void *bytes, size_t len); /* test hash, or NULL */
	uint8_t *buf;   /* stack, or (test hash only) a heap buffer */
	size_t len;     /* bytes in buf not yet hashed */
	size_t cap;     /* bytes buf holds */
	bool streaming; /* st holds every byte before buf[0] */
	XXH3_state_t st;
	uint8_t stack[KEY_STACK_BYTES];
} key_sink;

static void sink_init(key_sink *s)
{
	s->hook = key_test_hash;
	s->buf = s->stack;
	s->len = 0;
	s->cap = sizeof(s->stack);
	s->streaming = false;
}

/* A test hash needs the whole input in one piece. Aborting on a failed
 * allocation is acceptable only because nothing but a test installs one.
 * An input takes at most a dozen puts, so growing to the exact size is fine
 * (tkv__array_grow's doubling to SIZE_MAX trips gcc's alloc-size check with
 * one-byte elements). */
static void sink_grow_heap(key_sink *s, size_t need)
{
	bool on_stack = s->buf == s->stack;
	uint8_t *p = realloc(on_stack ? NULL : s->buf, need);
	if (p == NULL)
		abort();
	if (on_stack)
		memcpy(p, s->stack, s->len);
	s->buf = p;
	s->cap = need;
}

static void sink_put(key_sink *s, const void *p, size_t n)
{
	if (n == 0) /* p may be NULL; memcpy would not allow it */
		return;
	if (n > s->cap - s->len) {
		if (s->hook != NULL) {
			sink_grow_heap(s, s->len + n);
		} else {
			if (!s->streaming)
				XXH3_128bits_reset(&s->st);
			s->streaming = true;
			XXH3_128bits_update(&s->st, s->buf, s->len);
			s->len = 0;
			if (n >= s->cap) { /* no point copying it first */
				XXH3_128bits_update(&s->st, p, n);
				return;
			}
		}
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

static void sink_put_le32(key_sink *s, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	sink_put(s, b, sizeof(b));
}

static void sink_put_le64(key_sink *s, uint64_t v)
{
	sink_put_le32(s, (uint32_t)v);
	sink_put_le32(s, (uint32_t)(v >> 32));
}

/* 16 bytes: hi then lo, each big-endian (XXH3's canonical form). */
static void sink_put_key(key_sink *s, tkv__key k)
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, (XXH128_hash_t){.low64 = k.lo, .high64 = k.hi});
	sink_put(s, c.digest, sizeof(c.digest));
}

/* Token ids as little-endian u32: on little-endian hosts (x86_64, aarch64)
 * that is their memory image. */
static void sink_put_tokens(key_sink *s, const uint32_t *tokens, uint32_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	sink_put(s, tokens, (size_t)n * sizeof(*tokens));
#else
	for (uint32_t i = 0; i < n; i++)
		sink_put_le32(s, tokens[i]);
#endif
}

static tkv__key sink_digest(key_sink *s)
{
	if (s->hook != NULL) {
		tkv__key k = s->hook(s->buf, s->len);
		if (s->buf != s->stack)
			free(s->buf);
		return k;
	}
	XXH128_hash_t h;
	if (s->streaming) {
		XXH3_128bits_update(&s->st, s->buf, s->len);
		h = XXH3_128bits_digest(&s->st);
	} else {
		h = XXH3_128bits(s->buf, s->len);
	}
	return (tkv__key){.hi = h.high64, .lo = h.low64};
}

tkv__key tkv__key_salt_id(const void *salt, size_t salt_len)
{
	if (salt == NULL || salt_len == 0)
		return (tkv__key){0, 0};
	XXH3_state_t st;
	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, "tierkv/salt/v1", 14);
	XXH3_128bits_update(&st, salt, salt_len);
	XXH128_hash_t h = XXH3_128bits_digest(&st);
	return (tkv__key){.hi = h.high64, .lo = h.low64 | 1}; /* never {0, 0} */
}

tkv__key tkv__key_namespace(const char *model_id, uint32_t n_layers, uint32_t n_kv_heads,
			    uint32_t head_dim, tkv_dtype dtype, uint32_t block_tokens)
{
	size_t id_len = model_id != NULL ? strlen(model_id) : 0;
	key_sink s;
	sink_init(&s);
	sink_put(&s, tag_ns, TAG_LEN);
	sink_put_le64(&s, id_len);
	sink_put(&s, model_id, id_len);
	sink_put_le32(&s, n_layers);
	sink_put_le32(&s, n_kv_heads);
	sink_put_le32(&s, head_dim);
	sink_put_le32(&s, (uint32_t)dtype);
	sink_put_le32(&s, block_tokens);
	return sink_digest(&s);
}

tkv__key tkv__key_first(tkv__key ns, const void *salt, size_t salt_len, const uint32_t *tokens,
			uint32_t n_tokens)
{
	if (salt == NULL)
		salt_len = 0;
	key_sink s;
	sink_init(&s);
	sink_put(&s, tag_first, TAG_LEN);
	sink_put_key(&s, ns);
	sink_put_le64(&s, salt_len);
	sink_put(&s, salt, salt_len);
	sink_put_tokens(&s, tokens, n_tokens);
	return sink_digest(&s);
}

tkv__key tkv__key_next(tkv__key prev, const uint32_t *tokens, uint32_t n_tokens)
{
	key_sink s;
	sink_init(&s);
	sink_put(&s, tag_next, TAG_LEN);
	sink_put_key(&s, prev);
	sink_put_tokens(&s, tokens, n_tokens);
	return sink_digest(&s);
}

void tkv__key_chain(tkv__key ns, const void *salt, size_t salt_len, const uint32_t *tokens,
		    uint32_t block_tokens, size_t n_blocks, tkv__key *out)
{
	if (n_blocks == 0)
		return;
	out[0] = tkv__key_first(ns, salt, salt_len, tokens, block_tokens);
	for (size_t i = 1; i < n_blocks; i++)
		out[i] = tkv__key_next(out[i - 1], tokens + i * block_tokens, block_tokens);
}

void tkv__key_set_test_hash(tkv__key (*fn)(const void *bytes, size_t len))
{
	key_test_hash = fn;
}
