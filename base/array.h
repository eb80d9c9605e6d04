/*
 * array.h - the one growable array: capacity doubling for arrays that only
 * grow (slab tables, heaps, retire lists, parse buffers).
 *
 *     void *t = tkv__array_grow(x->items, &x->cap, need, sizeof(*x->items));
 *     if (!t)
 *             return -ENOMEM;   // x->items and x->cap are unchanged
 *     x->items = t;
 *
 * Returns `items` itself when it already holds `need`, else a reallocation
 * to max(need, 2 * cap, min) elements with *cap updated; NULL (and nothing
 * changed) when the size overflows or memory runs out. Elements past the old
 * capacity are uninitialized.
 */
#ifndef TKV_BASE_ARRAY_H
#define TKV_BASE_ARRAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

enum { TKV__ARRAY_MIN = 16 };

static inline void *tkv__array_grow(void *items, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap && items)
		return items;
	size_t n = *cap > SIZE_MAX / 2 ? SIZE_MAX : *cap * 2;
	if (n < need)
		n = need;
	if (n < TKV__ARRAY_MIN)
		n = TKV__ARRAY_MIN;
	size_t bytes;
	if (__builtin_mul_overflow(n, elem, &bytes))
		return NULL;
	void *p = realloc(items, bytes);
	if (p)
		*cap = n;
	return p;
}

#endif
