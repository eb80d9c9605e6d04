/*
 * geometry.h - the sizes every tier derives from a model's geometry
 * (n_layers, n_kv_heads, head_dim, dtype), computed once by the runtime from
 * a validated config and handed to the tiers. A layer-token is one token's
 * K and V rows of one layer; a block is block_tokens consecutive tokens of
 * one sequence, stored per layer in RAM (block_bytes) and as one record of
 * all layers on SSD.
 */
#ifndef TKV_TIERS_GEOMETRY_H
#define TKV_TIERS_GEOMETRY_H

#include <stddef.h>
#include <stdint.h>

/* Sizes derived once from a validated config; all fit in size_t. */
typedef struct tkv__geometry {
	size_t elem_bytes;        /* bytes per element of dtype */
	size_t kv_dim;            /* n_kv_heads * head_dim */
	size_t row_bytes;         /* one token's K (or V) of one layer */
	size_t layer_token_bytes; /* 2 * row_bytes */
	size_t block_bytes;       /* one block of one layer: K rows then V rows */
	uint64_t hot_blocks;      /* hot_bytes / block_bytes */
} tkv__geometry;

#endif
