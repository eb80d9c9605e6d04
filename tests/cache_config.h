/*
 * cache_config.h - the small geometry of the prefix-cache tests and its
 * config (2 layers of 1 head x 16 f32, blocks of 16 tokens: a unit is
 * 4 KiB), without Criterion: tests/cache_small.h builds on it, and so does
 * tests/shared_node_main.c, a plain program that must store the same KV.
 */
#ifndef TKV_TESTS_CACHE_CONFIG_H
#define TKV_TESTS_CACHE_CONFIG_H

#include <stdint.h>

#include "tierkv.h"

enum { LAYERS = 2, HEADS = 1, DIM = 16, BT = 16 };
enum { ROW = HEADS * DIM * 4 /* f32 */, UNIT_BYTES = LAYERS * 2 * BT * ROW };

/* RAM only, a hot tier of `units` whole blocks (all layers). */
static inline tkv_config cache_config(const char *model, uint64_t units)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = LAYERS;
	c.n_kv_heads = HEADS;
	c.head_dim = DIM;
	c.dtype = TKV_DTYPE_F32;
	c.block_tokens = BT;
	c.hot_bytes = units * UNIT_BYTES;
	c.n_workers = 2;
	c.pin_workers = false;
	c.model_id = model;
	return c;
}

#endif
