/*
 * copy_x86.h - small-copy helper shared by the x86 copy kernels
 * (copy_avx2.c, copy_avx512.c); each includes it under its own -m flags, so
 * it needs at least AVX and must not be included anywhere else.
 */
#ifndef TKV_KERNELS_COPY_X86_H
#define TKV_KERNELS_COPY_X86_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/*
 * Copies exactly n <= 64 bytes with at most two loads and two stores: the
 * first and the last W bytes for the largest W <= n, which overlap in the
 * middle when n < 2W. Branches on size classes instead of looping, because
 * heads and tails of every large copy land here.
 */
static inline void tkv__copy_le64(uint8_t *d, const uint8_t *s, size_t n)
{
	if (n >= 32) {
		__m256i a = _mm256_loadu_si256((const __m256i_u *)s);
		__m256i b = _mm256_loadu_si256((const __m256i_u *)(s + n - 32));
		_mm256_storeu_si256((__m256i_u *)d, a);
		_mm256_storeu_si256((__m256i_u *)(d + n - 32), b);
	} else if (n >= 16) {
		__m128i a = _mm_loadu_si128((const __m128i_u *)s);
		__m128i b = _mm_loadu_si128((const __m128i_u *)(s + n - 16));
		_mm_storeu_si128((__m128i_u *)d, a);
		_mm_storeu_si128((__m128i_u *)(d + n - 16), b);
	} else if (n >= 8) {
		uint64_t a, b;
		memcpy(&a, s, 8);
		memcpy(&b, s + n - 8, 8);
		memcpy(d, &a, 8);
		memcpy(d + n - 8, &b, 8);
	} else if (n >= 4) {
		uint32_t a, b;
		memcpy(&a, s, 4);
		memcpy(&b, s + n - 4, 4);
		memcpy(d, &a, 4);
		memcpy(d + n - 4, &b, 4);
	} else if (n >= 2) {
		uint16_t a, b;
		memcpy(&a, s, 2);
		memcpy(&b, s + n - 2, 2);
		memcpy(d, &a, 2);
		memcpy(d + n - 2, &b, 2);
	} else if (n) {
		*d = *s;
	}
}

#endif
