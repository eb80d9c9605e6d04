/*
 * dispatch.c - chooses the kernel level once per process and hands out the
 * tables: tkv_isa_name(), tkv_isa_select(), tkv__kernels_get/for().
 *
 * The first call of any of them runs init() under pthread_once: build the
 * CRC tables, fill the scalar table, let the architecture file
 * (cpu_<arch>.c) fill the levels this CPU supports, then read the two
 * environment knobs:
 *   TKV_MAX_ISA=auto|scalar|avx2|avx512|neon   caps every selection
 *   TKV_STREAM_THRESHOLD=<bytes>[K|M|G]|off     overrides every table's
 *                                               stream_threshold
 * Invalid values are reported once on stderr and ignored (this code cannot
 * fail a call: it runs inside functions without an error return).
 *
 * Invariant: after pthread_once returns, `tables` and `env_cap` are never
 * written again; pthread_once makes init()'s writes visible to every thread
 * that returns from it, so the lookups below need no further synchronization.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "kernels/kernels_impl.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static tkv__kernels tables[TKV__ISA_COUNT]; /* copy == NULL: not available */
static tkv_isa env_cap = TKV_ISA_AUTO;

static const char *const isa_names[TKV__ISA_COUNT] = {
	[TKV_ISA_AUTO] = "auto",     [TKV_ISA_SCALAR] = "scalar", [TKV_ISA_AVX2] = "avx2",
	[TKV_ISA_AVX512] = "avx512", [TKV_ISA_NEON] = "neon",
};

const char *tkv_isa_name(tkv_isa isa)
{
	if ((unsigned)isa >= TKV__ISA_COUNT)
		return NULL;
	return isa_names[isa];
}

static int parse_isa(const char *s, tkv_isa *out)
{
	for (unsigned i = 0; i < TKV__ISA_COUNT; i++)
		if (strcasecmp(s, isa_names[i]) == 0) {
			*out = (tkv_isa)i;
			return 0;
		}
	return -EINVAL;
}

/* "65536", "64K", "1M", "2g", "off" (never stream). Binary multiples. */
static int parse_bytes(const char *s, size_t *out)
{
	if (strcasecmp(s, "off") == 0) {
		*out = SIZE_MAX;
		return 0;
	}
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end != '\0' || v > (SIZE_MAX >> shift))
		return -EINVAL;
	*out = (size_t)v << shift;
	return 0;
}

static void init(void)
{
	tkv__crc32c_init();
	tables[TKV_ISA_SCALAR] = (tkv__kernels){
		.copy = tkv__copy_ref,
		.copy_stream = tkv__copy_ref, /* plain C has no streaming store */
		.crc32c = tkv__crc32c_ref,
		.stream_threshold = SIZE_MAX,
	};
	tkv__arch_kernels(tables);
	for (unsigned i = 0; i < TKV__ISA_COUNT; i++)
		tables[i].isa = (tkv_isa)i;

	const char *v = getenv("TKV_MAX_ISA");
	if (v && *v && parse_isa(v, &env_cap) != 0)
		fprintf(stderr, "tierkv: ignoring TKV_MAX_ISA=\"%s\": expected auto, "
				"scalar, avx2, avx512 or neon\n", v);

	v = getenv("TKV_STREAM_THRESHOLD");
	size_t thr;
	if (v && *v) {
		if (parse_bytes(v, &thr) == 0) {
			for (unsigned i = 0; i < TKV__ISA_COUNT; i++)
				tables[i].stream_threshold = thr;
		} else {
			fprintf(stderr, "tierkv: ignoring TKV_STREAM_THRESHOLD=\"%s\": "
					"expected bytes with an optional K, M or G "
					"suffix, or \"off\"\n", v);
		}
	}
}

/*
 * Levels are compared by their enum values, as the header promises ("the
 * highest level <= cap"): on x86 a cap of neon allows everything, and on
 * aarch64 a cap of avx2 or avx512 leaves only scalar. A cap that is not a
 * tkv_isa value at all counts as no cap (config validation rejects it
 * earlier; this function has no error return).
 */
tkv_isa tkv_isa_select(tkv_isa cap)
{
	pthread_once(&once, init);
	unsigned c = (unsigned)cap;
	if (c == TKV_ISA_AUTO || c >= TKV__ISA_COUNT)
		c = TKV__ISA_COUNT - 1;
	if (env_cap != TKV_ISA_AUTO && (unsigned)env_cap < c)
		c = (unsigned)env_cap;
	for (; c > TKV_ISA_SCALAR; c--)
		if (tables[c].copy)
			return (tkv_isa)c;
	return TKV_ISA_SCALAR;
}

const tkv__kernels *tkv__kernels_get(tkv_isa cap)
{
	return &tables[tkv_isa_select(cap)];
}

const tkv__kernels *tkv__kernels_for(tkv_isa isa)
{
	pthread_once(&once, init);
	if ((unsigned)isa >= TKV__ISA_COUNT || !tables[isa].copy)
		return NULL;
	return &tables[isa];
}
