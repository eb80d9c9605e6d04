/*
 * config.h - loading a caller's tkv_config (of any older or equal size) into
 * the library's own layout, and the derived sizes the rest of the runtime uses.
 */
#ifndef TKV_RUNTIME_CONFIG_H
#define TKV_RUNTIME_CONFIG_H

#include <stdint.h>

#include "tierkv.h"

/* Sizes derived once from a validated config; all fit in size_t. */
typedef struct tkv__geometry {
	size_t elem_bytes;        /* bytes per element of dtype */
	size_t kv_dim;            /* n_kv_heads * head_dim */
	size_t row_bytes;         /* one token's K (or V) of one layer */
	size_t layer_token_bytes; /* 2 * row_bytes */
	size_t block_bytes;       /* one block of one layer: K rows then V rows */
	uint64_t hot_blocks;      /* hot_bytes / block_bytes */
} tkv__geometry;

/* Copies the caller's struct over the defaults (fields past its struct_size
 * keep their defaults), then validates. 0 or -EINVAL with a message. */
int tkv__config_load(const tkv_config *user, tkv_config *out, tkv__geometry *geo);

#endif
