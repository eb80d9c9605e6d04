/*
 * config.h - loading a caller's tkv_config (of any older or equal size) into
 * the library's own layout, and the derived sizes the rest of the runtime uses.
 */
#ifndef TKV_RUNTIME_CONFIG_H
#define TKV_RUNTIME_CONFIG_H

#include <stdint.h>

#include "tierkv.h"
#include "tiers/geometry.h"

/* Copies the caller's struct over the defaults (fields past its struct_size
 * keep their defaults), then validates. 0 or -EINVAL with a message. */
int tkv__config_load(const tkv_config *user, tkv_config *out, tkv__geometry *geo);

#endif
