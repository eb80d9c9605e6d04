/*
 * kernel_checks.h - the checks of the copy and CRC32C kernels, shared by the
 * Criterion suite (tests/kernels.c) and the plain driver that runs them in
 * the aarch64 cross build under qemu (tests/kernels_qemu_main.c).
 *
 * Every check is `static bool kc_<name>(kc_why *why)`: true on success, or
 * false with the first failure described in why->msg. KC_CHECKS lists them
 * all once (X-macro), so both runners run exactly the same set. Checks marked
 * `fresh` set an environment variable that is read once per process, so
 * they must run in a process that has not called into the kernels yet
 * (Criterion gives every test its own process; the driver forks).
 *
 * What is checked, against oracles that share no code with the kernels:
 *  - every copy variant (copy, copy_stream and copy_stream_unfenced, the
 *    last followed by tkv__stream_fence, of every level the build and CPU
 *    have): every length 0..4099 at a few misalignment pairs, every pair
 *    of source and destination misalignments 0..63 at a set of lengths, and a
 *    copy beyond the last-level cache (64 MiB); the bytes before and after
 *    the destination stay untouched, and every destination byte is written;
 *  - tkv__copy() around each table's stream threshold;
 *  - CRC32C: the check value, zero-length calls, every variant against a
 *    bit-at-a-time oracle and the scalar table on random data, lengths and
 *    offsets, and chaining across random splits and across variants;
 *  - tkv_isa_name(), tkv_isa_select() with config caps, TKV_MAX_ISA and
 *    TKV_STREAM_THRESHOLD.
 */
#ifndef TKV_TESTS_KERNEL_CHECKS_H
#define TKV_TESTS_KERNEL_CHECKS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h" /* white-box: which CRC entry a table uses */
#include "tierkv.h"

#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1ul << 7)
#endif
#endif

/*       name                      fresh process */
#define KC_CHECKS(X)                                 \
	X(copy_every_length, false)                  \
	X(copy_every_misalignment, false)            \
	X(copy_beyond_cache, false)                  \
	X(copy_dispatch_threshold, false)            \
	X(crc32c_check_value, false)                 \
	X(crc32c_random_vs_reference, false)         \
	X(crc32c_lane_boundaries, false)             \
	X(crc32c_chaining, false)                    \
	X(isa_names, false)                          \
	X(isa_select_caps, false)                    \
	X(isa_detection, false)                      \
	X(env_max_isa_scalar, true)                  \
	X(env_max_isa_each_level, true)              \
	X(env_max_isa_invalid_ignored, true)         \
	X(env_stream_threshold, true)                \
	X(env_stream_threshold_off, true)            \
	X(env_stream_threshold_invalid_ignored, true) \
	X(env_valid_leaves_no_note, true)

typedef struct kc_why {
	char msg[512];
} kc_why;

__attribute__((format(printf, 2, 3))) static bool kc_fail(kc_why *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
	va_end(ap);
	return false;
}

/* ---- deterministic random data (splitmix64) ---- */

static uint64_t kc_rng_state = 0x7b1e4b5d2c3a9f01ull;

static uint64_t kc_rand(void)
{
	uint64_t z = (kc_rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Destination bytes are pre-filled with KC_POISON and source bytes never
 * take that value, so a byte the kernel skipped, or wrote outside
 * [dst, dst + n), shows up as a difference. */
#define KC_POISON 0xEE

static void kc_fill_source(uint8_t *p, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t r = kc_rand();
		memcpy(p + i, &r, 8);
	}
	for (; i < n; i++)
		p[i] = (uint8_t)kc_rand();
	for (i = 0; i < n; i++)
		if (p[i] == KC_POISON)
			p[i] = 0x11;
}

/* ---- the variants under test ---- */

typedef enum kc_kind { KC_COPY, KC_STREAM, KC_STREAM_UNFENCED, KC_KINDS } kc_kind;

typedef struct kc_variant {
	const tkv__kernels *k;
	kc_kind kind;
	char name[40];
} kc_variant;

#define KC_MAX_VARIANTS (KC_KINDS * TKV__ISA_COUNT)

/* Every copy variant the build and CPU have; returns how many. */
static int kc_variants(kc_variant v[KC_MAX_VARIANTS])
{
	int n = 0;
	for (int isa = TKV_ISA_SCALAR; isa <= TKV_ISA_NEON; isa++) {
		const tkv__kernels *k = tkv__kernels_for((tkv_isa)isa);
		if (!k)
			continue;
		static const char *const kind_names[KC_KINDS] = {"copy", "copy_stream",
								 "copy_stream_unfenced"};
		for (int kind = 0; kind < KC_KINDS; kind++) {
			v[n].k = k;
			v[n].kind = (kc_kind)kind;
			snprintf(v[n].name, sizeof(v[n].name), "%s.%s", tkv_isa_name((tkv_isa)isa),
				 kind_names[kind]);
			n++;
		}
	}
	return n;
}

static tkv__copy_fn kc_fn(const kc_variant *v)
{
	return v->kind == KC_STREAM ? v->k->copy_stream
	       : v->kind == KC_STREAM_UNFENCED ? v->k->copy_stream_unfenced
					       : v->k->copy;
}

/* ---- one guarded copy ---- */

#define KC_GUARD 256   /* untouched bytes checked on each side */
#define KC_MAX_LEN 4099
#define KC_MAX_MIS 63

typedef struct kc_bufs {
	uint8_t *src;  /* KC_MAX_MIS + len bytes of source data */
	uint8_t *dall; /* guard + KC_MAX_MIS + len + guard */
	size_t len;
} kc_bufs;

static bool kc_bufs_open(kc_bufs *b, size_t len, kc_why *w)
{
	b->len = len;
	/* 64-byte aligned bases, so misalignment m really is m mod 64. */
	if (posix_memalign((void **)&b->src, 64, KC_MAX_MIS + len + 64) ||
	    posix_memalign((void **)&b->dall, 64, 2 * KC_GUARD + KC_MAX_MIS + len + 64))
		return kc_fail(w, "out of memory for %zu-byte buffers", len);
	kc_fill_source(b->src, KC_MAX_MIS + len);
	memset(b->dall, KC_POISON, 2 * KC_GUARD + KC_MAX_MIS + len);
	return true;
}

static void kc_bufs_close(kc_bufs *b)
{
	free(b->src);
	free(b->dall);
}

/* First byte of p[0, n) that is not c, or n. */
static size_t kc_find_not(const uint8_t *p, size_t n, uint8_t c)
{
	static const uint8_t ref[1024] = {[0 ... 1023] = KC_POISON};
	size_t off = 0;
	while (off < n) {
		size_t chunk = n - off < sizeof(ref) ? n - off : sizeof(ref);
		if (c != KC_POISON || memcmp(p + off, ref, chunk) != 0) {
			for (size_t i = 0; i < chunk; i++)
				if (p[off + i] != c)
					return off + i;
		}
		off += chunk;
	}
	return n;
}

/*
 * Copies n bytes from src + sa to dst + da with `fn` (or tkv__copy with `k`
 * when fn is NULL), then checks the destination and KC_GUARD bytes each side.
 * Leaves the destination area poisoned again for the next call.
 */
static bool kc_copy_one(const char *name, tkv__copy_fn fn, const tkv__kernels *k,
			kc_bufs *b, size_t sa, size_t da, size_t n, kc_why *w)
{
	const uint8_t *s = b->src + sa;
	uint8_t *d = b->dall + KC_GUARD + da;
	bool ok = true;

	if (fn)
		fn(d, s, n);
	else
		tkv__copy(k, d, s, n);
	tkv__stream_fence(); /* what a copy_stream_unfenced caller owes; harmless after the others */

	if (memcmp(d, s, n) != 0) {
		size_t i = 0;
		while (d[i] == s[i])
			i++;
		ok = kc_fail(w, "%s: n=%zu src+%zu dst+%zu: dst[%zu] = 0x%02x, expected 0x%02x%s",
			     name, n, sa, da, i, d[i], s[i],
			     d[i] == KC_POISON ? " (never written)" : "");
	} else {
		size_t i = kc_find_not(d - KC_GUARD, KC_GUARD, KC_POISON);
		size_t j = kc_find_not(d + n, KC_GUARD, KC_POISON);
		if (i < KC_GUARD)
			ok = kc_fail(w, "%s: n=%zu src+%zu dst+%zu: wrote %zu bytes before dst",
				     name, n, sa, da, KC_GUARD - i);
		else if (j < KC_GUARD)
			ok = kc_fail(w, "%s: n=%zu src+%zu dst+%zu: wrote dst[%zu], past the end",
				     name, n, sa, da, n + j);
	}
	memset(d - KC_GUARD, KC_POISON, n + 2 * KC_GUARD);
	return ok;
}

/* ---- copy checks ---- */

static bool kc_copy_every_length(kc_why *w)
{
	/* Aligned, one side off by one, both odd, both at the end of a line. */
	static const size_t mis[][2] = {{0, 0}, {1, 0}, {0, 1}, {13, 50}, {33, 31}, {63, 63}};
	kc_variant v[KC_MAX_VARIANTS];
	int nv = kc_variants(v);
	kc_bufs b;
	bool ok = kc_bufs_open(&b, KC_MAX_LEN, w);

	for (int i = 0; ok && i < nv; i++)
		for (size_t m = 0; ok && m < sizeof(mis) / sizeof(mis[0]); m++)
			for (size_t n = 0; ok && n <= KC_MAX_LEN; n++)
				ok = kc_copy_one(v[i].name, kc_fn(&v[i]), NULL, &b, mis[m][0],
						 mis[m][1], n, w);
	kc_bufs_close(&b);
	return ok;
}

static bool kc_copy_every_misalignment(kc_why *w)
{
	/* Around every size class and loop boundary of the kernels (16, 32, 64,
	 * 128, 256, the stream minimums 256/512) and a few odd large ones. */
	static const size_t lens[] = {1,   3,   15,  31,  33,  63,  64,  65,   127,
				      129, 255, 257, 383, 511, 513, 777, 1025, 4099};
	kc_variant v[KC_MAX_VARIANTS];
	int nv = kc_variants(v);
	kc_bufs b;
	bool ok = kc_bufs_open(&b, KC_MAX_LEN, w);

	for (int i = 0; ok && i < nv; i++)
		for (size_t sa = 0; ok && sa <= KC_MAX_MIS; sa++)
			for (size_t da = 0; ok && da <= KC_MAX_MIS; da++)
				for (size_t l = 0; ok && l < sizeof(lens) / sizeof(lens[0]); l++)
					ok = kc_copy_one(v[i].name, kc_fn(&v[i]), NULL, &b, sa, da,
							 lens[l], w);
	kc_bufs_close(&b);
	return ok;
}

/* 64 MiB: twice the largest last-level cache we run on, so streaming stores
 * really go to memory; odd length and offsets exercise head and tail. */
#define KC_BIG ((size_t)64 << 20)

static bool kc_copy_beyond_cache(kc_why *w)
{
	kc_variant v[KC_MAX_VARIANTS];
	int nv = kc_variants(v);
	kc_bufs b;
	bool ok = kc_bufs_open(&b, KC_BIG + 77, w);

	for (int i = 0; ok && i < nv; i++) {
		ok = kc_copy_one(v[i].name, kc_fn(&v[i]), NULL, &b, 5, 37, KC_BIG + 77, w) &&
		     kc_copy_one(v[i].name, kc_fn(&v[i]), NULL, &b, 0, 0, KC_BIG, w);
	}
	kc_bufs_close(&b);
	return ok;
}

static bool kc_copy_dispatch_threshold(kc_why *w)
{
	kc_bufs b;
	bool ok = kc_bufs_open(&b, (size_t)1 << 20, w);

	for (int isa = TKV_ISA_SCALAR; ok && isa <= TKV_ISA_NEON; isa++) {
		const tkv__kernels *k = tkv__kernels_for((tkv_isa)isa);
		if (!k)
			continue;
		char name[48];
		snprintf(name, sizeof(name), "tkv__copy(%s, threshold %zu)",
			 tkv_isa_name((tkv_isa)isa), k->stream_threshold);
		size_t t = k->stream_threshold;
		size_t ns[] = {t - 1, t, t + 1, 4096, 65536 + 3};
		for (size_t j = 0; ok && j < sizeof(ns) / sizeof(ns[0]); j++)
			if (ns[j] <= b.len)
				ok = kc_copy_one(name, NULL, k, &b, 3, 9, ns[j], w);
	}
	kc_bufs_close(&b);
	return ok;
}

/* ---- CRC32C checks ---- */

/* The definition, one bit at a time: the oracle for everything else. */
static uint32_t kc_crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
	uint32_t r = ~crc;
	while (n--) {
		r ^= *p++;
		for (int k = 0; k < 8; k++)
			r = (r & 1) ? (r >> 1) ^ 0x82F63B78u : r >> 1;
	}
	return ~r;
}

typedef struct kc_crc {
	const char *name;
	tkv__crc_fn fn;
} kc_crc;

/* The distinct CRC functions in the available tables (levels share one). */
static int kc_crcs(kc_crc c[TKV__ISA_COUNT])
{
	int n = 0;
	for (int isa = TKV_ISA_SCALAR; isa <= TKV_ISA_NEON; isa++) {
		const tkv__kernels *k = tkv__kernels_for((tkv_isa)isa);
		if (!k)
			continue;
		bool seen = false;
		for (int j = 0; j < n; j++)
			seen |= c[j].fn == k->crc32c;
		if (!seen)
			c[n++] = (kc_crc){tkv_isa_name((tkv_isa)isa), k->crc32c};
	}
	return n;
}

static bool kc_crc32c_check_value(kc_why *w)
{
	kc_crc c[TKV__ISA_COUNT];
	int nc = kc_crcs(c);
	static const uint8_t zeros[32];

	if (kc_crc32c_bitwise(0, (const uint8_t *)"123456789", 9) != 0xE3069283u)
		return kc_fail(w, "the bitwise oracle itself is wrong");
	for (int i = 0; i < nc; i++) {
		uint32_t v = c[i].fn(0, "123456789", 9);
		if (v != 0xE3069283u)
			return kc_fail(w, "%s: crc32c(0, \"123456789\") = 0x%08X, expected 0xE3069283",
				       c[i].name, v);
		if (c[i].fn(0x12345678u, "x", 0) != 0x12345678u || c[i].fn(0, NULL, 0) != 0)
			return kc_fail(w, "%s: a zero-length call changed the CRC", c[i].name);
		/* iSCSI (RFC 3720 B.4) test vector: 32 zero bytes. */
		if ((v = c[i].fn(0, zeros, 32)) != 0x8A9136AAu)
			return kc_fail(w, "%s: crc32c(32 zero bytes) = 0x%08X, expected 0x8A9136AA",
				       c[i].name, v);
	}
	return true;
}

static bool kc_crc32c_random_vs_reference(kc_why *w)
{
	kc_crc c[TKV__ISA_COUNT];
	int nc = kc_crcs(c);
	const tkv__crc_fn ref = tkv__kernels_for(TKV_ISA_SCALAR)->crc32c;
	const size_t max = 100000;
	uint8_t *buf = malloc(max + 64);
	if (!buf)
		return kc_fail(w, "out of memory");
	kc_fill_source(buf, max + 64);
	/* Byte values other than KC_POISON matter here too. */
	for (size_t i = 0; i < max + 64; i += 97)
		buf[i] = KC_POISON;

	bool ok = true;
	for (int t = 0; ok && t < 400; t++) {
		size_t off = kc_rand() % 64;
		size_t len = t < 200 ? kc_rand() % 2048 : kc_rand() % max;
		uint32_t seed = t % 3 ? (uint32_t)kc_rand() : 0;
		uint32_t want = ref(seed, buf + off, len);
		if (len <= 8192) {
			uint32_t bit = kc_crc32c_bitwise(seed, buf + off, len);
			if (bit != want) {
				ok = kc_fail(w, "scalar: len=%zu off=%zu crc=0x%08X: 0x%08X, oracle 0x%08X",
					     len, off, seed, want, bit);
				break;
			}
		}
		for (int i = 0; ok && i < nc; i++) {
			uint32_t got = c[i].fn(seed, buf + off, len);
			if (got != want)
				ok = kc_fail(w, "%s: len=%zu off=%zu crc=0x%08X: 0x%08X, reference 0x%08X",
					     c[i].name, len, off, seed, got, want);
		}
	}
	free(buf);
	return ok;
}

/* Lengths around multiples of the three-lane blocks of the hardware loops
 * (one-unit lanes, the long lanes of up to TKV__CRC32C_MAX_LANES units in
 * several chunks and the shorter chunk after, the small lanes, and large
 * blocks followed by small ones) and of the word size, at every offset
 * within a word: up to three blocks against the bitwise oracle, longer ones
 * against the scalar reference, which the other checks hold to the oracle. */
static bool kc_crc32c_lane_boundaries(kc_why *w)
{
	kc_crc c[TKV__ISA_COUNT];
	int nc = kc_crcs(c);
	const tkv__crc_fn ref = tkv__kernels_for(TKV_ISA_SCALAR)->crc32c;
	const size_t block = 3 * (size_t)TKV__CRC32C_LANE, big = TKV__CRC32C_MAX_LANES;
	const size_t small = 3 * (size_t)TKV__CRC32C_LANE_SMALL;
	const size_t at[] = {block,	      2 * block,	   3 * block,
			     small,	      2 * small,	   block + small,
			     block + 2 * small, 2 * block + 3 * small, (big - 1) * block,
			     big * block,     (big + 1) * block,   (2 * big + 5) * block};
	const size_t max = (2 * big + 5) * block + 64;
	uint8_t *buf = malloc(max);
	if (!buf)
		return kc_fail(w, "out of memory");
	kc_fill_source(buf, max);

	bool ok = true;
	for (size_t m = 0; ok && m < sizeof(at) / sizeof(at[0]); m++) {
		bool oracle = at[m] <= 3 * block;
		size_t d = oracle ? 9 : 3;
		for (size_t len = at[m] - d; ok && len <= at[m] + d; len++)
			for (size_t off = 0; ok && off < 9; off++) {
				uint32_t want = oracle ? kc_crc32c_bitwise(0, buf + off, len)
						       : ref(0, buf + off, len);
				for (int i = 0; ok && i < nc; i++) {
					uint32_t got = c[i].fn(0, buf + off, len);
					if (got != want)
						ok = kc_fail(w, "%s: len=%zu off=%zu: 0x%08X, %s 0x%08X",
							     c[i].name, len, off, got,
							     oracle ? "oracle" : "reference", want);
				}
			}
	}
	free(buf);
	return ok;
}

static bool kc_crc32c_chaining(kc_why *w)
{
	kc_crc c[TKV__ISA_COUNT];
	int nc = kc_crcs(c);
	const size_t max = 50000;
	uint8_t *buf = malloc(max);
	if (!buf)
		return kc_fail(w, "out of memory");
	kc_fill_source(buf, max);

	bool ok = true;
	for (int t = 0; ok && t < 300; t++) {
		size_t len = kc_rand() % max;
		size_t a = len ? kc_rand() % (len + 1) : 0;
		size_t b = a + (len - a ? kc_rand() % (len - a + 1) : 0);
		for (int i = 0; ok && i < nc; i++) {
			/* Pieces by this variant, and the middle piece by another one:
			 * the convention is the same for all. */
			const kc_crc *o = &c[(i + 1) % nc];
			tkv__crc_fn f = c[i].fn;
			uint32_t whole = f(0, buf, len);
			uint32_t x = f(f(f(0, buf, a), buf + a, b - a), buf + b, len - b);
			uint32_t y = f(o->fn(f(0, buf, a), buf + a, b - a), buf + b, len - b);
			if (x != whole || y != whole)
				ok = kc_fail(w, "%s: len=%zu split at %zu,%zu: whole 0x%08X, "
					     "chained 0x%08X, chained via %s 0x%08X",
					     c[i].name, len, a, b, whole, x, o->name, y);
		}
	}
	free(buf);
	return ok;
}

/* ---- ISA selection ---- */

static bool kc_isa_names(kc_why *w)
{
	static const char *const want[] = {"auto", "scalar", "avx2", "avx512", "neon"};
	for (int i = 0; i <= TKV_ISA_NEON; i++) {
		const char *got = tkv_isa_name((tkv_isa)i);
		if (!got || strcmp(got, want[i]) != 0)
			return kc_fail(w, "tkv_isa_name(%d) = %s, expected %s", i, got ? got : "NULL",
				       want[i]);
	}
	if (tkv_isa_name((tkv_isa)5) || tkv_isa_name((tkv_isa)-1) || tkv_isa_name((tkv_isa)99))
		return kc_fail(w, "tkv_isa_name of an unknown value is not NULL");
	return true;
}

/* The level select(cap) must pick, from the availability tkv__kernels_for
 * reports (which no cap affects). */
static tkv_isa kc_expected(int cap)
{
	if (cap <= TKV_ISA_AUTO || cap > TKV_ISA_NEON)
		cap = TKV_ISA_NEON;
	for (int i = cap; i > TKV_ISA_SCALAR; i--)
		if (tkv__kernels_for((tkv_isa)i))
			return (tkv_isa)i;
	return TKV_ISA_SCALAR;
}

static bool kc_select_matches(int cap, int env_cap, kc_why *w)
{
	int eff = cap <= TKV_ISA_AUTO || cap > TKV_ISA_NEON ? TKV_ISA_NEON : cap;
	if (env_cap > TKV_ISA_AUTO && env_cap < eff)
		eff = env_cap;
	tkv_isa want = kc_expected(eff);
	tkv_isa got = tkv_isa_select((tkv_isa)cap);
	const tkv__kernels *k = tkv__kernels_get((tkv_isa)cap);
	if (got != want)
		return kc_fail(w, "tkv_isa_select(%d) with TKV_MAX_ISA=%s: %s, expected %s", cap,
			       getenv("TKV_MAX_ISA") ? getenv("TKV_MAX_ISA") : "(unset)",
			       tkv_isa_name(got), tkv_isa_name(want));
	if (!k || k->isa != want || k != tkv__kernels_for(want))
		return kc_fail(w, "tkv__kernels_get(%d) is not the %s table", cap, tkv_isa_name(want));
	return true;
}

static bool kc_isa_select_caps(kc_why *w)
{
	if (!tkv__kernels_for(TKV_ISA_SCALAR))
		return kc_fail(w, "no scalar table");
	if (tkv__kernels_for(TKV_ISA_AUTO) || tkv__kernels_for((tkv_isa)5) ||
	    tkv__kernels_for((tkv_isa)-1))
		return kc_fail(w, "tkv__kernels_for(auto or unknown) is not NULL");
	for (int isa = TKV_ISA_SCALAR; isa <= TKV_ISA_NEON; isa++) {
		const tkv__kernels *k = tkv__kernels_for((tkv_isa)isa);
		if (k && (k->isa != (tkv_isa)isa || !k->copy || !k->copy_stream ||
			  !k->copy_stream_unfenced || !k->crc32c))
			return kc_fail(w, "the %s table is incomplete", tkv_isa_name((tkv_isa)isa));
	}
	/* Unknown caps count as no cap. */
	static const int caps[] = {TKV_ISA_AUTO, TKV_ISA_SCALAR, TKV_ISA_AVX2, TKV_ISA_AVX512,
				   TKV_ISA_NEON, 99, -3};
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (!kc_select_matches(caps[i], TKV_ISA_AUTO, w))
			return false;
	if (tkv_isa_select(TKV_ISA_SCALAR) != TKV_ISA_SCALAR)
		return kc_fail(w, "a scalar cap did not give scalar");
	return true;
}

/* Cross-checks the dispatcher's CPU detection with the compiler's own, and
 * that the hardware CRC is used where the CPU has it. */
static bool kc_isa_detection(kc_why *w)
{
	const tkv__kernels *best = tkv__kernels_get(TKV_ISA_AUTO);
#if defined(__x86_64__)
	__builtin_cpu_init();
	bool avx2 = __builtin_cpu_supports("avx2"), avx512 = __builtin_cpu_supports("avx512f");
	if (avx2 != (tkv__kernels_for(TKV_ISA_AVX2) != NULL) ||
	    avx512 != (tkv__kernels_for(TKV_ISA_AVX512) != NULL))
		return kc_fail(w, "gcc says avx2=%d avx512f=%d, the dispatcher disagrees", avx2,
			       avx512);
	if (tkv__kernels_for(TKV_ISA_NEON))
		return kc_fail(w, "a NEON table on x86");
	if (best->isa != TKV_ISA_SCALAR && __builtin_cpu_supports("sse4.2") &&
	    best->crc32c != tkv__crc32c_sse42)
		return kc_fail(w, "%s table does not use the SSE4.2 CRC", tkv_isa_name(best->isa));
#elif defined(__aarch64__)
	if (best->isa != TKV_ISA_NEON)
		return kc_fail(w, "aarch64 picked %s, not neon", tkv_isa_name(best->isa));
	bool crc = getauxval(AT_HWCAP) & HWCAP_CRC32;
	if (crc != (best->crc32c == tkv__crc32c_armv8))
		return kc_fail(w, "HWCAP_CRC32=%d but the NEON table %s the ARMv8 CRC", crc,
			       crc ? "does not use" : "uses");
#endif
	if (tkv__kernels_for(TKV_ISA_SCALAR)->crc32c != tkv__crc32c_ref ||
	    tkv__kernels_for(TKV_ISA_SCALAR)->copy != tkv__copy_ref)
		return kc_fail(w, "the scalar table is not the reference code");
	return true;
}

/* ---- environment (each runs in a fresh process) ---- */

static bool kc_env_max_isa_scalar(kc_why *w)
{
	setenv("TKV_MAX_ISA", "scalar", 1);
	if (tkv_isa_select(TKV_ISA_AUTO) != TKV_ISA_SCALAR ||
	    tkv__kernels_get(TKV_ISA_AUTO)->isa != TKV_ISA_SCALAR)
		return kc_fail(w, "TKV_MAX_ISA=scalar did not force scalar");
	/* The cap limits selection only: every table stays reachable. */
	for (int isa = TKV_ISA_AVX2; isa <= TKV_ISA_NEON; isa++)
		if (tkv__kernels_for((tkv_isa)isa) && !kc_select_matches(isa, TKV_ISA_SCALAR, w))
			return false;
	return true;
}

/* Each level name in turn, in forked children: the variable is read once. */
static bool kc_env_max_isa_each_level(kc_why *w)
{
	static const char *const vals[] = {"auto", "scalar", "avx2", "AVX512", "neon"};
	for (int e = 0; e <= TKV_ISA_NEON; e++) {
		pid_t pid = fork();
		if (pid < 0)
			return kc_fail(w, "fork failed");
		if (pid == 0) {
			kc_why cw;
			setenv("TKV_MAX_ISA", vals[e], 1);
			bool ok = true;
			for (int cap = TKV_ISA_AUTO; ok && cap <= TKV_ISA_NEON; cap++)
				ok = kc_select_matches(cap, e, &cw);
			if (!ok)
				fprintf(stderr, "%s\n", cw.msg);
			fflush(stderr);
			_exit(ok ? 0 : 1);
		}
		int st;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			return kc_fail(w, "TKV_MAX_ISA=%s: selection did not follow the cap "
				       "(child printed why)", vals[e]);
	}
	return true;
}

static bool kc_env_max_isa_invalid_ignored(kc_why *w)
{
	setenv("TKV_MAX_ISA", "sse9", 1);
	if (!kc_select_matches(TKV_ISA_AUTO, TKV_ISA_AUTO, w))
		return false;
	/* ignored, and said so through the note (the library never prints) */
	const char *note = tkv__kernels_env_note();
	if (!note || !strstr(note, "TKV_MAX_ISA=\"sse9\""))
		return kc_fail(w, "invalid TKV_MAX_ISA: env note is \"%s\"", note ? note : "(null)");
	return true;
}

static bool kc_env_stream_threshold_invalid_ignored(kc_why *w)
{
	setenv("TKV_STREAM_THRESHOLD", "12Q", 1);
	const tkv__kernels *k = tkv__kernels_get(TKV_ISA_AUTO);
	if (k->stream_threshold == 12)
		return kc_fail(w, "TKV_STREAM_THRESHOLD=12Q was not ignored");
	const char *note = tkv__kernels_env_note();
	if (!note || !strstr(note, "TKV_STREAM_THRESHOLD=\"12Q\""))
		return kc_fail(w, "invalid TKV_STREAM_THRESHOLD: env note is \"%s\"",
			       note ? note : "(null)");
	return true;
}

static bool kc_env_valid_leaves_no_note(kc_why *w)
{
	setenv("TKV_MAX_ISA", "scalar", 1);
	setenv("TKV_STREAM_THRESHOLD", "1M", 1);
	const char *note = tkv__kernels_env_note();
	return note ? kc_fail(w, "valid knobs gave a note: %s", note) : true;
}

static bool kc_env_stream_threshold(kc_why *w)
{
	setenv("TKV_STREAM_THRESHOLD", "48K", 1);
	for (int isa = TKV_ISA_SCALAR; isa <= TKV_ISA_NEON; isa++) {
		const tkv__kernels *k = tkv__kernels_for((tkv_isa)isa);
		if (k && k->stream_threshold != 48 * 1024)
			return kc_fail(w, "TKV_STREAM_THRESHOLD=48K: %s threshold is %zu",
				       tkv_isa_name((tkv_isa)isa), k->stream_threshold);
	}
	return kc_copy_dispatch_threshold(w);
}

static bool kc_env_stream_threshold_off(kc_why *w)
{
	setenv("TKV_STREAM_THRESHOLD", "off", 1);
	const tkv__kernels *k = tkv__kernels_get(TKV_ISA_AUTO);
	if (k->stream_threshold != SIZE_MAX)
		return kc_fail(w, "TKV_STREAM_THRESHOLD=off: threshold is %zu", k->stream_threshold);
	return true;
}

#endif
