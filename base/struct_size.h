/*
 * struct_size.h - the one struct_size rule for every struct that crosses the
 * API (tierkv.h, "Conventions"), so tkv_config, tkv_view and tkv_stats cannot
 * drift apart again: each names its first released size and its direction,
 * and these two functions do the rest.
 */
#ifndef TKV_BASE_STRUCT_SIZE_H
#define TKV_BASE_STRUCT_SIZE_H

#include <stddef.h>

/* How the library treats bytes of a caller's struct past its own layout. */
typedef enum tkv__struct_dir {
	TKV__STRUCT_IN,    /* read only: unknown bytes must be zero (-E2BIG) */
	TKV__STRUCT_OUT,   /* filled only: unknown bytes are zeroed by put */
	TKV__STRUCT_INOUT, /* both: unknown bytes are left alone */
} tkv__struct_dir;

/* Checks a caller's struct that starts with `size_t struct_size`: NULL or
 * smaller than `first` (the first released layout) is -EINVAL; for IN,
 * nonzero bytes in [cur, struct_size) are -E2BIG. `what` names the struct
 * in the message. */
int tkv__struct_check(const void *user, size_t first, size_t cur, tkv__struct_dir dir,
		      const char *what);

/* Copies the library's filled struct `src` (cur bytes, its own layout) into
 * the caller's `dst`, which passed tkv__struct_check: the bytes both layouts
 * have except struct_size, which keeps the caller's value; bytes past cur
 * are zeroed. */
void tkv__struct_put(void *dst, const void *src, size_t cur);

#endif
