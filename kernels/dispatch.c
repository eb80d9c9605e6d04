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
 * Invalid values are ignored (this code cannot fail a call: it runs inside
 * functions without an error return) and the library never prints: the
 * last ignored value is described by tkv__kernels_env_note(), which the
 * runtime reports as tkv_stats.env_warning.
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

#include "base/size.h"
#include "kernels/kernels_impl.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static tkv__kernels tables[TKV__ISA_COUNT]; /* copy == NULL: not available */
static char env_note[160];                  /* "" unless a knob was ignored */
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

/* "65536", "64K", "1M", "2g" (base/size.h), or "off" (never stream). */
static int parse_threshold(const char *s, size_t *out)
{
	if (strcasecmp(s, "off") == 0) {
		*out = SIZE_MAX;
		return 0;
	}
	return tkv__parse_bytes(s, out);
}

static void init(void)
{
	tkv__crc32c_init();
	tables[TKV_ISA_SCALAR] = (tkv__kernels){
		.copy = tkv__copy_ref,
		.copy_stream = tkv__copy_ref, /* plain C has no streaming store */
		.copy_stream_unfenced = tkv__copy_ref,
		.crc32c = tkv__crc32c_ref,
		.stream_threshold = SIZE_MAX,
	};
	tkv__arch_kernels(tables);
	for (unsigned i = 0; i < TKV__ISA_COUNT; i++)
		tables[i].isa = (tkv_isa)i;

	const char *v = getenv("TKV_MAX_ISA");
	if (v && *v && parse_isa(v, &env_cap) != 0)
		snprintf(env_note, sizeof(env_note),
			 "ignored TKV_MAX_ISA=\"%.40s\": expected auto, scalar, avx2, avx512 or neon",
			 v);

	v = getenv("TKV_STREAM_THRESHOLD");
	size_t thr;
	if (v && *v) {
		if (parse_threshold(v, &thr) == 0) {
			for (unsigned i = 0; i < TKV__ISA_COUNT; i++)
				tables[i].stream_threshold = thr;
		} else {
			snprintf(env_note, sizeof(env_note),
				 "ignored TKV_STREAM_THRESHOLD=\"%.40s\": expected bytes with an "
				 "optional K, M or G suffix, or \"off\"",
				 v);
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

const char *tkv__kernels_env_note(void)
{
	pthread_once(&once, init);
	return env_note[0] ? env_note : NULL;
}
