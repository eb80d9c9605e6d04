/*
 * replay_content.h - the synthetic content of a replay (bench/replay.c):
 * token ids and KV rows that are functions of what the trace says, so equal
 * prefixes give equal bytes and every attached block can be checked without
 * keeping a copy. The bench's own definition (it must not include tests/):
 * the mixer is the library's one (base/hash.h, through bench/internals.h).
 */
#ifndef TKV_BENCH_REPLAY_CONTENT_H
#define TKV_BENCH_REPLAY_CONTENT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bench/internals.h"
#include "tierkv.h"

/* One row of row_bytes for (prefix hash, layer, K = 0 / V = 1). */
static inline void replay_row(unsigned char *dst, uint64_t prefix_hash, uint32_t layer, int kv,
			      size_t row_bytes)
{
	uint64_t base = tkv__mix64(prefix_hash ^ ((uint64_t)layer << 40) ^ ((uint64_t)kv << 63));
	for (size_t j = 0; j < row_bytes; j += 8) {
		uint64_t w = tkv__mix64(base + j);
		size_t m = row_bytes - j < 8 ? row_bytes - j : 8;
		memcpy(dst + j, &w, m);
	}
}

static inline tkv_stats replay_stats(tkv_runtime *rt)
{
	tkv_stats st;
	memset(&st, 0, sizeof(st));
	st.struct_size = sizeof(st);
	tkv_stats_get(rt, &st);
	return st;
}

#endif
