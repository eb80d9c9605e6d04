/*
 * two_workers.h - the small runtime the stealing and copy_ahead suites
 * share: 2 layers over 2 workers, 64-byte f32 rows, 16-token blocks, a
 * 16 MiB hot tier, so that layer 0 and layer 1 each have a worker and
 * batches of a few tokens share blocks.
 */
#ifndef TKV_TESTS_TWO_WORKERS_H
#define TKV_TESTS_TWO_WORKERS_H

#include <criterion/criterion.h>

#include "tierkv.h"

static inline tkv_config small_config(void)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = 2;
	c.n_kv_heads = 2;
	c.head_dim = 8;
	c.dtype = TKV_DTYPE_F32;
	c.block_tokens = 16;
	c.hot_bytes = 16ull << 20;
	c.n_workers = 2;
	return c;
}

static inline size_t row_bytes(const tkv_config *c)
{
	return (size_t)c->n_kv_heads * c->head_dim * tkv_dtype_size(c->dtype);
}

static inline tkv_stats stats(tkv_runtime *rt)
{
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	return st;
}

#endif
