/*
 * copy_avx2.c - AVX2 copy kernels (x86_64 only; compiled with -mavx2 and
 * reached only when CPUID and XGETBV say the CPU has AVX2 and the OS saves
 * YMM state).
 *
 * tkv__copy_avx2: 32-byte loads and stores. Up to 128 bytes it is straight
 * line code with overlapping first/last vectors; above, the first 32 bytes
 * are stored unaligned, the loop runs on a 32-byte aligned destination (the
 * source is loaded unaligned: we can align only one side, and split stores
 * cost more than split loads), and the last 128 bytes are stored from the
 * end, overlapping what the loop already wrote (same bytes, same values).
 *
 * tkv__copy_stream_avx2: the same with non-temporal stores (vmovntdq) for
 * the 64-byte aligned middle: they bypass the cache and skip reading the
 * destination lines first, so a large copy costs one pass over memory
 * instead of two and does not evict the working set. Head and tail (< 64
 * bytes each) use regular stores on exactly their bytes, never overlapping
 * the streamed lines, so no line is both streamed and cached. Below
 * TKV__AVX2_STREAM_MIN it is the regular copy. It ends with sfence;
 * tkv__copy_stream_unfenced_avx2 is the same without it (kernels.h).
 */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels/copy_x86.h"
#include "kernels/kernels_impl.h"

/* Below this, aligning for the stream loop and fencing cost more than the
 * few lines streamed could save. */
#define TKV__AVX2_STREAM_MIN 256

static inline void copy_body(uint8_t *d, const uint8_t *s, size_t n)
{
	if (n <= 64) {
		tkv__copy_le64(d, s, n);
		return;
	}
	if (n <= 128) {
		__m256i a = _mm256_loadu_si256((const __m256i_u *)s);
		__m256i b = _mm256_loadu_si256((const __m256i_u *)(s + 32));
		__m256i c = _mm256_loadu_si256((const __m256i_u *)(s + n - 64));
		__m256i e = _mm256_loadu_si256((const __m256i_u *)(s + n - 32));
		_mm256_storeu_si256((__m256i_u *)d, a);
		_mm256_storeu_si256((__m256i_u *)(d + 32), b);
		_mm256_storeu_si256((__m256i_u *)(d + n - 64), c);
		_mm256_storeu_si256((__m256i_u *)(d + n - 32), e);
		return;
	}

	/* n > 128. The end pointers stay fixed while d, s and n advance. */
	uint8_t *const d_end = d + n;
	const uint8_t *const s_end = s + n;
	_mm256_storeu_si256((__m256i_u *)d, _mm256_loadu_si256((const __m256i_u *)s));
	size_t adv = 32 - ((uintptr_t)d & 31); /* 1..32: next aligned byte */
	d += adv;
	s += adv;
	n -= adv;
	while (n > 128) {
		__m256i a = _mm256_loadu_si256((const __m256i_u *)s);
		__m256i b = _mm256_loadu_si256((const __m256i_u *)(s + 32));
		__m256i c = _mm256_loadu_si256((const __m256i_u *)(s + 64));
		__m256i e = _mm256_loadu_si256((const __m256i_u *)(s + 96));
		_mm256_store_si256((__m256i *)d, a);
		_mm256_store_si256((__m256i *)(d + 32), b);
		_mm256_store_si256((__m256i *)(d + 64), c);
		_mm256_store_si256((__m256i *)(d + 96), e);
		d += 128;
		s += 128;
		n -= 128;
	}
	/* 1..128 bytes left; the original n > 128, so d_end - 128 is still
	 * inside the destination. */
	__m256i a = _mm256_loadu_si256((const __m256i_u *)(s_end - 128));
	__m256i b = _mm256_loadu_si256((const __m256i_u *)(s_end - 96));
	__m256i c = _mm256_loadu_si256((const __m256i_u *)(s_end - 64));
	__m256i e = _mm256_loadu_si256((const __m256i_u *)(s_end - 32));
	_mm256_storeu_si256((__m256i_u *)(d_end - 128), a);
	_mm256_storeu_si256((__m256i_u *)(d_end - 96), b);
	_mm256_storeu_si256((__m256i_u *)(d_end - 64), c);
	_mm256_storeu_si256((__m256i_u *)(d_end - 32), e);
}

void tkv__copy_avx2(void *restrict dst, const void *restrict src, size_t n)
{
	TKV__SAN_RANGES(dst, src, n);
	copy_body(dst, src, n);
}

/* The streaming copy without its fence; false when n was too small to
 * stream (then it was the regular copy, with nothing to fence). */
static bool stream_body(uint8_t *d, const uint8_t *s, size_t n)
{
	if (n < TKV__AVX2_STREAM_MIN) {
		copy_body(d, s, n);
		return false;
	}
	/* Stream whole 64-byte lines only: a line written entirely by the
	 * write-combining buffer goes to memory in one burst. */
	size_t head = (size_t)(-(uintptr_t)d & 63);
	tkv__copy_le64(d, s, head);
	d += head;
	s += head;
	n -= head;
	while (n >= 128) {
		__m256i a = _mm256_loadu_si256((const __m256i_u *)s);
		__m256i b = _mm256_loadu_si256((const __m256i_u *)(s + 32));
		__m256i c = _mm256_loadu_si256((const __m256i_u *)(s + 64));
		__m256i e = _mm256_loadu_si256((const __m256i_u *)(s + 96));
		_mm256_stream_si256((__m256i *)d, a);
		_mm256_stream_si256((__m256i *)(d + 32), b);
		_mm256_stream_si256((__m256i *)(d + 64), c);
		_mm256_stream_si256((__m256i *)(d + 96), e);
		d += 128;
		s += 128;
		n -= 128;
	}
	if (n >= 64) {
		__m256i a = _mm256_loadu_si256((const __m256i_u *)s);
		__m256i b = _mm256_loadu_si256((const __m256i_u *)(s + 32));
		_mm256_stream_si256((__m256i *)d, a);
		_mm256_stream_si256((__m256i *)(d + 32), b);
		d += 64;
		s += 64;
		n -= 64;
	}
	tkv__copy_le64(d, s, n);
	return true;
}

void tkv__copy_stream_unfenced_avx2(void *restrict dst, const void *restrict src, size_t n)
{
	TKV__SAN_RANGES(dst, src, n);
	(void)stream_body(dst, src, n);
}

void tkv__copy_stream_avx2(void *restrict dst, const void *restrict src, size_t n)
{
	TKV__SAN_RANGES(dst, src, n);
	if (!stream_body(dst, src, n))
		return;
	/* Non-temporal stores are weakly ordered: without this, a later
	 * regular store (the caller publishing the block, completing a ticket)
	 * could become visible to another core before the streamed data. The
	 * sfence orders every streamed store before any store after it. */
	_mm_sfence();
}
