/*
 * block_key.c - the portable block key (tiers/block_key.h): every vector in
 * docs/KEY_FORMAT.md, read from the doc at test time (so the doc and the
 * code cannot drift; tests/key_vectors.py checks the same table in Python),
 * and a doc with one altered digit is caught; the byte strings against a
 * buffer built here from the doc's tables, across the one-shot/streamed
 * boundary; namespace, salt and chain isolation; the test-hash override.
 */
#include <xxhash.h>

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiers/block_key.h"

#ifndef TKV_KEY_FORMAT_DOC
#error "tests/CMakeLists.txt defines TKV_KEY_FORMAT_DOC (the path of docs/KEY_FORMAT.md)"
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LLAMA "meta-llama/Meta-Llama-3-8B"

static void key_hex(tkv__key k, char out[33])
{
	snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, k.hi, k.lo);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	long size = ftell(f);
	cr_assert_geq(size, 0);
	rewind(f);
	char *text = malloc((size_t)size + 1);
	cr_assert_not_null(text);
	cr_assert_eq(fread(text, 1, (size_t)size, f), (size_t)size);
	text[size] = '\0';
	fclose(f);
	return text;
}

/* ---- the vector table: `name` | `op arg=value ...` | `key` ---- */

enum { MAX_WORDS = 16, MAX_NS = 16 };

typedef struct doc_ns {
	char name[64];
	tkv__key key;
	uint32_t block_tokens;
} doc_ns;

typedef struct doc_check {
	doc_ns ns[MAX_NS];
	size_t n_ns;
	size_t rows, mismatches;
	bool quiet; /* no log line per mismatch (a deliberately altered doc) */
} doc_check;

/* Copies the next `...` span after *p into out; false when there is none. */
static bool next_code(const char **p, char *out, size_t size)
{
	const char *a = strchr(*p, '`');
	const char *b = a != NULL ? strchr(a + 1, '`') : NULL;
	const char *eol = strchr(*p, '\n');
	if (b == NULL || (eol != NULL && b > eol) || (size_t)(b - a - 1) >= size)
		return false;
	memcpy(out, a + 1, (size_t)(b - a - 1));
	out[b - a - 1] = '\0';
	*p = b + 1;
	return true;
}

static const char *arg(char **words, int n, const char *key)
{
	size_t len = strlen(key);
	for (int i = 1; i < n; i++)
		if (strncmp(words[i], key, len) == 0 && words[i][len] == '=')
			return words[i] + len + 1;
	return NULL;
}

static uint32_t parse_u32(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	cr_assert(end != s && v <= UINT32_MAX, "bad u32 '%s'", s);
	return (uint32_t)v;
}

/* "a..b" (inclusive, up or down) or "a,b,c"; returns a malloc'd array. */
static uint32_t *parse_tokens(const char *spec, size_t *n)
{
	const char *dots = strstr(spec, "..");
	if (dots != NULL) {
		uint32_t a = parse_u32(spec), b = parse_u32(dots + 2);
		*n = (size_t)(a <= b ? b - a : a - b) + 1;
		uint32_t *t = malloc(*n * sizeof(*t));
		cr_assert_not_null(t);
		for (size_t i = 0; i < *n; i++)
			t[i] = a <= b ? a + (uint32_t)i : a - (uint32_t)i;
		return t;
	}
	*n = 1;
	for (const char *c = spec; *c; c++)
		*n += *c == ',';
	uint32_t *t = malloc(*n * sizeof(*t));
	cr_assert_not_null(t);
	const char *c = spec;
	for (size_t i = 0; i < *n; i++, c = strchr(c, ',') + 1)
		t[i] = parse_u32(c);
	return t;
}

static tkv_dtype parse_dtype(const char *s)
{
	cr_assert_not_null(s);
	if (strcmp(s, "f32") == 0)
		return TKV_DTYPE_F32;
	if (strcmp(s, "f16") == 0)
		return TKV_DTYPE_F16;
	cr_assert_str_eq(s, "bf16", "unknown dtype");
	return TKV_DTYPE_BF16;
}

static tkv__key row_ns(doc_check *c, const char *name, char **w, int n)
{
	const char *need[] = {"model", "layers", "kv_heads", "head_dim", "dtype", "block_tokens"};
	for (size_t i = 0; i < ARRAY_LEN(need); i++)
		cr_assert_not_null(arg(w, n, need[i]), "%s: ns without %s", name, need[i]);
	cr_assert_lt(c->n_ns, MAX_NS);
	doc_ns *ns = &c->ns[c->n_ns++];
	snprintf(ns->name, sizeof(ns->name), "%s", name);
	ns->block_tokens = parse_u32(arg(w, n, "block_tokens"));
	ns->key = tkv__key_namespace(arg(w, n, "model"), parse_u32(arg(w, n, "layers")),
				     parse_u32(arg(w, n, "kv_heads")), parse_u32(arg(w, n, "head_dim")),
				     parse_dtype(arg(w, n, "dtype")), ns->block_tokens);
	return ns->key;
}

/* key_i through tkv__key_chain, which must agree with first + next. */
static tkv__key row_chain(doc_check *c, const char *name, char **w, int n)
{
	const char *ns_name = arg(w, n, "ns"), *salt = arg(w, n, "salt");
	cr_assert(ns_name && arg(w, n, "tokens") && arg(w, n, "block"), "%s: bad chain", name);
	const doc_ns *ns = NULL;
	for (size_t i = 0; i < c->n_ns; i++)
		if (strcmp(c->ns[i].name, ns_name) == 0)
			ns = &c->ns[i];
	cr_assert_not_null(ns, "%s: no ns row '%s' above it", name, ns_name);
	size_t n_tok, block = parse_u32(arg(w, n, "block")), bt = ns->block_tokens;
	uint32_t *tokens = parse_tokens(arg(w, n, "tokens"), &n_tok);
	cr_assert(bt > 0 && n_tok % bt == 0 && block < n_tok / bt, "%s: not whole blocks", name);
	size_t n_blocks = n_tok / bt, salt_len = salt != NULL ? strlen(salt) : 0;
	tkv__key *out = malloc(n_blocks * sizeof(*out));
	cr_assert_not_null(out);
	tkv__key_chain(ns->key, salt, salt_len, tokens, (uint32_t)bt, n_blocks, out);
	tkv__key k = tkv__key_first(ns->key, salt, salt_len, tokens, (uint32_t)bt);
	for (size_t i = 0; i < n_blocks; i++) {
		if (i > 0)
			k = tkv__key_next(k, tokens + i * bt, (uint32_t)bt);
		cr_assert(tkv__key_eq(k, out[i]), "%s: chain and first/next differ at %zu", name, i);
	}
	k = out[block];
	free(out);
	free(tokens);
	return k;
}

static void check_row(doc_check *c, int line, const char *name, char *inputs, const char *want)
{
	char *w[MAX_WORDS], *save = NULL;
	int n = 0;
	for (char *t = strtok_r(inputs, " ", &save); t && n < MAX_WORDS; t = strtok_r(NULL, " ", &save))
		w[n++] = t;
	cr_assert_gt(n, 0, "line %d: empty inputs", line);
	tkv__key k;
	if (strcmp(w[0], "ns") == 0)
		k = row_ns(c, name, w, n);
	else if (strcmp(w[0], "chain") == 0)
		k = row_chain(c, name, w, n);
	else
		cr_assert_fail("line %d: unknown op '%s'", line, w[0]);
	char got[33];
	key_hex(k, got);
	c->rows++;
	if (strcmp(got, want) == 0)
		return;
	c->mismatches++;
	if (!c->quiet)
		cr_log_warn("KEY_FORMAT.md:%d: %s: the doc says %s, the code gives %s", line, name,
			    want, got);
}

/* Checks every row between the markers of text. */
static doc_check check_doc(const char *text, bool quiet)
{
	doc_check c = {.quiet = quiet};
	const char *begin = strstr(text, "<!-- key-vectors:begin -->");
	const char *end = begin != NULL ? strstr(begin, "<!-- key-vectors:end -->") : NULL;
	cr_assert(begin && end, "no key-vectors section in the doc");
	int line = 1;
	for (const char *p = text; p < begin; p++)
		line += *p == '\n';
	for (const char *p = begin; p < end; line++) {
		const char *eol = strchr(p, '\n');
		const char *q = p;
		char name[64], inputs[512], hex[64];
		if (strncmp(p, "| `", 3) == 0 && next_code(&q, name, sizeof(name)) &&
		    next_code(&q, inputs, sizeof(inputs)) && next_code(&q, hex, sizeof(hex)))
			check_row(&c, line, name, inputs, hex);
		p = eol + 1;
	}
	return c;
}

Test(block_key, doc_vectors)
{
	char *text = read_file(TKV_KEY_FORMAT_DOC);
	doc_check c = check_doc(text, false);
	cr_assert_geq(c.rows, 10, "only %zu vectors in the doc", c.rows);
	cr_assert_eq(c.mismatches, 0, "%zu of %zu vectors differ (see the log)", c.mismatches, c.rows);
	free(text);
}

/* The same check fails when one digit of one vector in the doc changes. */
Test(block_key, altered_doc_vector_is_caught)
{
	char *text = read_file(TKV_KEY_FORMAT_DOC);
	char *row = strstr(text, "| `ns_llama` |");
	cr_assert_not_null(row);
	char *close = strchr(row, '\n');
	while (*close != '`') /* back to the key's closing backtick */
		close--;
	close[-1] = close[-1] == '0' ? '1' : '0';
	doc_check c = check_doc(text, true);
	cr_assert_eq(c.mismatches, 1, "an altered vector was not caught");
	free(text);
}

/* ---- the byte strings, built here from the doc's tables ---- */

typedef struct byte_buf {
	uint8_t *b;
	size_t len;
} byte_buf;

static void put(byte_buf *x, const void *p, size_t n)
{
	x->b = realloc(x->b, x->len + n + 1);
	cr_assert_not_null(x->b);
	if (n > 0)
		memcpy(x->b + x->len, p, n);
	x->len += n;
}

static void put_le(byte_buf *x, uint64_t v, int size)
{
	uint8_t b[8];
	for (int i = 0; i < size; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put(x, b, (size_t)size);
}

/* key16: hi then lo, each most significant byte first. */
static void put_key(byte_buf *x, tkv__key k)
{
	uint8_t b[16];
	for (int i = 0; i < 8; i++) {
		b[i] = (uint8_t)(k.hi >> (56 - 8 * i));
		b[8 + i] = (uint8_t)(k.lo >> (56 - 8 * i));
	}
	put(x, b, sizeof(b));
}

static tkv__key h_of(byte_buf *x)
{
	XXH128_hash_t h = XXH3_128bits(x->b, x->len);
	free(x->b);
	*x = (byte_buf){NULL, 0};
	return (tkv__key){.hi = h.high64, .lo = h.low64};
}

static void put_tokens(byte_buf *x, const uint32_t *t, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		put_le(x, t[i], 4);
}

Test(block_key, h_anchors)
{
	char hex[33];
	XXH128_hash_t h = XXH3_128bits("", 0);
	key_hex((tkv__key){h.high64, h.low64}, hex);
	cr_assert_str_eq(hex, "99aa06d3014798d86001c324468d497f"); /* xxHash's own tests */
	uint8_t probe[16] = {1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0};
	h = XXH3_128bits(probe, sizeof(probe));
	key_hex((tkv__key){h.high64, h.low64}, hex);
	cr_assert_str_eq(hex, "903ce79ac359c3eb2de5421794dd19f0");
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, h);
	for (int i = 0; i < 16; i++) /* key16 = the printed digits */
		cr_assert_eq(c.digest[i], (uint8_t)strtoul((char[3]){hex[2 * i], hex[2 * i + 1], 0}, NULL, 16));
}

Test(block_key, namespace_bytes)
{
	byte_buf x = {NULL, 0};
	const char *id = LLAMA;
	put(&x, "tierkv/ns/v1", 12);
	put_le(&x, strlen(id), 8);
	put(&x, id, strlen(id));
	uint32_t fields[] = {80, 8, 128, TKV_DTYPE_F16, 16};
	for (size_t i = 0; i < ARRAY_LEN(fields); i++)
		put_le(&x, fields[i], 4);
	cr_assert_eq(x.len, 40 + strlen(id));
	tkv__key want = h_of(&x);
	cr_assert(tkv__key_eq(tkv__key_namespace(id, 80, 8, 128, TKV_DTYPE_F16, 16), want));
}

/* Salt and block lengths around and past the 1 KiB one-shot buffer: the
 * streamed path must hash the same bytes. */
Test(block_key, first_and_next_bytes_across_the_buffer)
{
	static uint32_t tokens[2048];
	static uint8_t salt[3000];
	for (size_t i = 0; i < ARRAY_LEN(tokens); i++)
		tokens[i] = (uint32_t)(i * 2654435761u);
	for (size_t i = 0; i < sizeof(salt); i++)
		salt[i] = (uint8_t)(i * 7 + 1);
	tkv__key ns = tkv__key_namespace(LLAMA, 32, 8, 128, TKV_DTYPE_BF16, 16);
	const size_t salt_lens[] = {0, 1, 7, 100, 900, 984, 987, 988, 989, 1000, 1024, 1500, 3000};
	const uint32_t n_toks[] = {0, 1, 4, 16, 230, 237, 238, 239, 240, 241, 256, 1024, 2048};
	for (size_t i = 0; i < ARRAY_LEN(salt_lens); i++) {
		for (size_t j = 0; j < ARRAY_LEN(n_toks); j++) {
			byte_buf x = {NULL, 0};
			put(&x, "tierkv/k0/v1", 12);
			put_key(&x, ns);
			put_le(&x, salt_lens[i], 8);
			put(&x, salt, salt_lens[i]);
			put_tokens(&x, tokens, n_toks[j]);
			cr_assert_eq(x.len, 36 + salt_lens[i] + 4 * n_toks[j]);
			tkv__key want = h_of(&x);
			tkv__key got = tkv__key_first(ns, salt, salt_lens[i], tokens, n_toks[j]);
			cr_assert(tkv__key_eq(got, want), "salt %zu, %u tokens", salt_lens[i], n_toks[j]);
		}
	}
	for (uint32_t n = 0; n <= 300; n++) { /* 28 + 4n crosses 1024 at n = 249 */
		byte_buf x = {NULL, 0};
		put(&x, "tierkv/kn/v1", 12);
		put_key(&x, ns);
		put_tokens(&x, tokens + 5, n);
		tkv__key want = h_of(&x);
		cr_assert(tkv__key_eq(tkv__key_next(ns, tokens + 5, n), want), "%u tokens", n);
	}
}

/* ---- isolation and chaining ---- */

Test(block_key, namespace_isolation)
{
	tkv__key k[] = {
	    tkv__key_namespace(LLAMA, 32, 8, 128, TKV_DTYPE_BF16, 16),
	    tkv__key_namespace(LLAMA "@rev2", 32, 8, 128, TKV_DTYPE_BF16, 16),
	    tkv__key_namespace("mistralai/Mistral-7B-v0.1", 32, 8, 128, TKV_DTYPE_BF16, 16),
	    tkv__key_namespace(LLAMA, 80, 8, 128, TKV_DTYPE_BF16, 16),
	    tkv__key_namespace(LLAMA, 32, 4, 128, TKV_DTYPE_BF16, 16),
	    tkv__key_namespace(LLAMA, 32, 8, 64, TKV_DTYPE_BF16, 16),
	    tkv__key_namespace(LLAMA, 32, 8, 128, TKV_DTYPE_F16, 16),
	    tkv__key_namespace(LLAMA, 32, 8, 128, TKV_DTYPE_F32, 16),
	    tkv__key_namespace(LLAMA, 32, 8, 128, TKV_DTYPE_BF16, 32),
	    tkv__key_namespace(LLAMA, 8, 32, 128, TKV_DTYPE_BF16, 16), /* fields swapped */
	};
	for (size_t i = 0; i < ARRAY_LEN(k); i++)
		for (size_t j = i + 1; j < ARRAY_LEN(k); j++)
			cr_assert(!tkv__key_eq(k[i], k[j]), "namespaces %zu and %zu are equal", i, j);
	/* and so is every block key under them */
	uint32_t t[16] = {1, 2, 3};
	for (size_t i = 1; i < ARRAY_LEN(k); i++)
		cr_assert(!tkv__key_eq(tkv__key_first(k[0], NULL, 0, t, 16),
				       tkv__key_first(k[i], NULL, 0, t, 16)));
	/* Same inputs, same key: nothing per call or per process. */
	cr_assert(tkv__key_eq(k[0], tkv__key_namespace(LLAMA, 32, 8, 128, TKV_DTYPE_BF16, 16)));
	cr_assert(tkv__key_eq(tkv__key_namespace(NULL, 1, 1, 1, TKV_DTYPE_F32, 1),
			      tkv__key_namespace("", 1, 1, 1, TKV_DTYPE_F32, 1)));
}

Test(block_key, salt_isolation)
{
	tkv__key ns = tkv__key_namespace(LLAMA, 32, 8, 128, TKV_DTYPE_BF16, 4);
	uint32_t t[5] = {0, 1, 2, 3, 4};
	tkv__key none = tkv__key_first(ns, NULL, 0, t, 4);
	/* Every spelling of "no salt" is the same. */
	cr_assert(tkv__key_eq(none, tkv__key_first(ns, "x", 0, t, 4)));
	cr_assert(tkv__key_eq(none, tkv__key_first(ns, NULL, 5, t, 4)));
	tkv__key k[] = {
	    none,
	    tkv__key_first(ns, "tenant-a", 8, t, 4),
	    tkv__key_first(ns, "tenant-b", 8, t, 4),
	    tkv__key_first(ns, "a", 1, t, 4),
	    tkv__key_first(ns, "a\0", 2, t, 4),  /* a trailing NUL counts */
	    /* salt le32(0) + tokens 1..4 would be the bytes of no salt + tokens
	     * 0..4 without the salt's length prefix */
	    tkv__key_first(ns, "\0\0\0\0", 4, t + 1, 4),
	    tkv__key_first(ns, NULL, 0, t, 5),
	    tkv__key_first(ns, "\0\0\0\0", 4, t, 4),
	};
	for (size_t i = 0; i < ARRAY_LEN(k); i++)
		for (size_t j = i + 1; j < ARRAY_LEN(k); j++)
			cr_assert(!tkv__key_eq(k[i], k[j]), "salted keys %zu and %zu are equal", i, j);
	/* A different salt changes every later key of the chain too. */
	uint32_t toks[40];
	for (uint32_t i = 0; i < 40; i++)
		toks[i] = i;
	tkv__key a[10], b[10];
	tkv__key_chain(ns, "tenant-a", 8, toks, 4, 10, a);
	tkv__key_chain(ns, "tenant-b", 8, toks, 4, 10, b);
	for (int i = 0; i < 10; i++)
		cr_assert(!tkv__key_eq(a[i], b[i]), "block %d", i);
}

Test(block_key, chaining)
{
	enum { B = 4, N = 16 };
	uint32_t t[B * N];
	for (uint32_t i = 0; i < B * N; i++)
		t[i] = 1000 + i;
	tkv__key ns = tkv__key_namespace(LLAMA, 32, 8, 128, TKV_DTYPE_BF16, B);
	tkv__key base[N], k[N];
	tkv__key_chain(ns, NULL, 0, t, B, N, base);
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			cr_assert(!tkv__key_eq(base[i], base[j]));
	t[0] ^= 1; /* block 0 changes: every key changes */
	tkv__key_chain(ns, NULL, 0, t, B, N, k);
	for (int i = 0; i < N; i++)
		cr_assert(!tkv__key_eq(base[i], k[i]), "block %d kept its key", i);
	t[0] ^= 1;
	t[5 * B + 3] = 0xffffffffu; /* block 5 changes: 0..4 keep theirs */
	tkv__key_chain(ns, NULL, 0, t, B, N, k);
	for (int i = 0; i < N; i++)
		cr_assert_eq(tkv__key_eq(base[i], k[i]), i < 5, "block %d", i);
	/* Same tokens split into other blocks: other keys. */
	tkv__key_chain(ns, NULL, 0, t, 2 * B, N / 2, k);
	cr_assert(!tkv__key_eq(k[0], base[0]));
	k[0] = base[0];
	tkv__key_chain(ns, NULL, 0, t, B, 0, k); /* n_blocks 0 writes nothing */
	cr_assert(tkv__key_eq(k[0], base[0]));
}

/* ---- the test-hash override ---- */

static tkv__key constant_hash(const void *bytes, size_t len)
{
	(void)bytes;
	(void)len;
	return (tkv__key){.hi = 0x1234, .lo = 0x5678};
}

static size_t seen_len;

static tkv__key recording_hash(const void *b, size_t len)
{
	seen_len = len;
	XXH128_hash_t h = XXH3_128bits(b, len);
	return (tkv__key){.hi = h.high64, .lo = h.low64};
}

Test(block_key, test_hash_override)
{
	static uint32_t t[2048];
	for (uint32_t i = 0; i < 2048; i++)
		t[i] = i;
	tkv__key ns = tkv__key_namespace(LLAMA, 32, 8, 128, TKV_DTYPE_BF16, 1024);
	tkv__key real[2], k[2];
	tkv__key_chain(ns, "s", 1, t, 1024, 2, real);

	tkv__key_set_test_hash(constant_hash);
	tkv__key c = constant_hash(NULL, 0);
	cr_assert(tkv__key_eq(tkv__key_namespace("a", 1, 2, 3, TKV_DTYPE_F32, 4), c));
	cr_assert(tkv__key_eq(tkv__key_namespace("b", 5, 6, 7, TKV_DTYPE_F16, 8), c));
	cr_assert(tkv__key_eq(tkv__key_first(ns, "s", 1, t, 4), c));
	cr_assert(tkv__key_eq(tkv__key_first(ns, NULL, 0, t + 9, 4), c));
	cr_assert(tkv__key_eq(tkv__key_next(ns, t, 2048), c));
	tkv__key_chain(ns, "s", 1, t, 1024, 2, k);
	cr_assert(tkv__key_eq(k[0], c) && tkv__key_eq(k[1], c));

	/* The hook sees the doc's exact byte strings, whole, even past the
	 * stack buffer. */
	tkv__key_set_test_hash(recording_hash);
	tkv__key_chain(ns, "s", 1, t, 1024, 2, k);
	cr_assert_eq(seen_len, 28 + 4 * 1024);
	cr_assert(tkv__key_eq(k[0], real[0]) && tkv__key_eq(k[1], real[1]));
	cr_assert(tkv__key_eq(tkv__key_first(ns, "s", 1, t, 1024), real[0]));
	cr_assert_eq(seen_len, 36 + 1 + 4 * 1024);

	tkv__key_set_test_hash(NULL);
	tkv__key_chain(ns, "s", 1, t, 1024, 2, k);
	cr_assert(tkv__key_eq(k[0], real[0]) && tkv__key_eq(k[1], real[1]));
}
