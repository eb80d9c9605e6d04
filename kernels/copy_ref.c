/*
 * copy_ref.c - the portable reference copy: the scalar level's copy and
 * copy_stream (plain C has no non-temporal store), and the fallback on any CPU.
 *
 * Word-at-a-time with the destination aligned to 8 bytes; unaligned source
 * words are read with memcpy, which compiles to one load where the CPU allows
 * it and is never undefined behaviour. kernels/CMakeLists.txt compiles this
 * file with -fno-tree-loop-distribute-patterns (or gcc turns the loop back
 * into a call to memcpy) and -fno-tree-vectorize (so "scalar" in the bench
 * really is scalar code).
 */
#include <stdint.h>
#include <string.h>

#include "kernels/kernels_impl.h"

static inline void put_bytes(uint8_t *d, const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		d[i] = s[i];
}

void tkv__copy_ref(void *restrict dst, const void *restrict src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	if (n < 16) {
		put_bytes(d, s, n);
		return;
	}
	/* Align the destination: a store that straddles two cache lines costs
	 * two, and the source is the side we can read unaligned for free. */
	size_t head = (size_t)(-(uintptr_t)d & 7);
	put_bytes(d, s, head);
	d += head;
	s += head;
	n -= head;

	while (n >= 32) {
		uint64_t w0, w1, w2, w3;
		memcpy(&w0, s, 8);
		memcpy(&w1, s + 8, 8);
		memcpy(&w2, s + 16, 8);
		memcpy(&w3, s + 24, 8);
		memcpy(d, &w0, 8);
		memcpy(d + 8, &w1, 8);
		memcpy(d + 16, &w2, 8);
		memcpy(d + 24, &w3, 8);
		d += 32;
		s += 32;
		n -= 32;
	}
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		memcpy(d, &w, 8);
		d += 8;
		s += 8;
		n -= 8;
	}
	put_bytes(d, s, n);
}
