/*
 * cold_runtime.h - what the runtime-level cold-tier tests share: one small
 * geometry (blocks of 8 KiB, so records stay 4 KiB-aligned and a hot tier of
 * 16 units is 512 KiB), a runtime config with a cold tier in `dir`, and the
 * cold-tier config tkv_open derives from it (tiers/evictor.c), for tests
 * that open the directory directly after a runtime closed or died.
 */
#ifndef TKV_TESTS_COLD_RUNTIME_H
#define TKV_TESTS_COLD_RUNTIME_H

#include "tierkv.h"
#include "tiers/cold.h"

enum { LAYERS = 4, HEADS = 2, DIM = 64, BT = 16, ROW = HEADS * DIM * 2 /* bf16 */ };
enum { BLOCK = 2 * BT * ROW, HOT_UNITS = 16 };

static inline tkv_config cold_runtime_config(const char *dir, uint64_t cold_bytes)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = LAYERS;
	c.n_kv_heads = HEADS;
	c.head_dim = DIM;
	c.dtype = TKV_DTYPE_BF16;
	c.block_tokens = BT;
	c.hot_bytes = (uint64_t)HOT_UNITS * LAYERS * BLOCK;
	c.n_workers = 2;
	c.cold_dir = dir;
	c.cold_bytes = cold_bytes;
	return c;
}

static inline void cold_config_of(const tkv_config *c, tkv__cold_config *cc)
{
	tkv__cold_config_default(cc);
	cc->dir = c->cold_dir;
	cc->capacity_bytes = c->cold_bytes;
	cc->n_layers = c->n_layers;
	cc->n_kv_heads = c->n_kv_heads;
	cc->head_dim = c->head_dim;
	cc->block_tokens = c->block_tokens;
	cc->dtype = c->dtype;
}

#endif
