/*
 * copy_avx512.c - AVX-512 copy kernels (x86_64 only; compiled with
 * -mavx512f and reached only when CPUID reports AVX-512F and XGETBV says the
 * OS saves the opmask and ZMM state). Only AVX-512F instructions are used
 * (full 64-byte loads and stores, no byte masks), so BW is not required.
 *
 * Same shape as copy_avx2.c with one 64-byte vector per cache line:
 * tkv__copy_avx512 stores the first line unaligned, loops on a 64-byte
 * aligned destination and stores the last 256 bytes from the end;
 * tkv__copy_stream_avx512 streams whole aligned lines (vmovntdq zmm) with
 * regular stores on exactly the head and tail bytes, then fences;
 * tkv__copy_stream_unfenced_avx512 is the same without the fence (kernels.h).
 * Copies of at most 64 bytes share the AVX2 ladder (copy_x86.h).
 */
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels/copy_x86.h"
#include "kernels/kernels_impl.h"

/* Below this, aligning for the stream loop and fencing cost more than the
 * few lines streamed could save. */
#define TKV__AVX512_STREAM_MIN 512

static inline __m512i ld(const uint8_t *p)
{
	return _mm512_loadu_si512((const void *)p);
}

static inline void copy_body(uint8_t *d, const uint8_t *s, size_t n)
{
	if (n <= 64) {
		tkv__copy_le64(d, s, n);
		return;
	}
	if (n <= 128) {
		__m512i a = ld(s), b = ld(s + n - 64);
		_mm512_storeu_si512((void *)d, a);
		_mm512_storeu_si512((void *)(d + n - 64), b);
		return;
	}
	if (n <= 256) {
		__m512i a = ld(s), b = ld(s + 64), c = ld(s + n - 128), e = ld(s + n - 64);
		_mm512_storeu_si512((void *)d, a);
		_mm512_storeu_si512((void *)(d + 64), b);
		_mm512_storeu_si512((void *)(d + n - 128), c);
		_mm512_storeu_si512((void *)(d + n - 64), e);
		return;
	}

	/* n > 256. The end pointers stay fixed while d, s and n advance. */
	uint8_t *const d_end = d + n;
	const uint8_t *const s_end = s + n;
	_mm512_storeu_si512((void *)d, ld(s));
	size_t adv = 64 - ((uintptr_t)d & 63); /* 1..64: next aligned line */
	d += adv;
	s += adv;
	n -= adv;
	while (n > 256) {
		__m512i a = ld(s), b = ld(s + 64), c = ld(s + 128), e = ld(s + 192);
		_mm512_store_si512((void *)d, a);
		_mm512_store_si512((void *)(d + 64), b);
		_mm512_store_si512((void *)(d + 128), c);
		_mm512_store_si512((void *)(d + 192), e);
		d += 256;
		s += 256;
		n -= 256;
	}
	/* 1..256 bytes left; the original n > 256, so d_end - 256 is still
	 * inside the destination. */
	__m512i a = ld(s_end - 256), b = ld(s_end - 192), c = ld(s_end - 128), e = ld(s_end - 64);
	_mm512_storeu_si512((void *)(d_end - 256), a);
	_mm512_storeu_si512((void *)(d_end - 192), b);
	_mm512_storeu_si512((void *)(d_end - 128), c);
	_mm512_storeu_si512((void *)(d_end - 64), e);
}

void tkv__copy_avx512(void *restrict dst, const void *restrict src, size_t n)
{
	TKV__SAN_RANGES(dst, src, n);
	copy_body(dst, src, n);
}

/* The streaming copy without its fence; false when n was too small to
 * stream (then it was the regular copy, with nothing to fence). */
static bool stream_body(uint8_t *d, const uint8_t *s, size_t n)
{
	if (n < TKV__AVX512_STREAM_MIN) {
		copy_body(d, s, n);
		return false;
	}
	/* Stream whole 64-byte lines only (one zmm store fills a line). */
	size_t head = (size_t)(-(uintptr_t)d & 63);
	tkv__copy_le64(d, s, head);
	d += head;
	s += head;
	n -= head;
	while (n >= 256) {
		__m512i a = ld(s), b = ld(s + 64), c = ld(s + 128), e = ld(s + 192);
		_mm512_stream_si512((void *)d, a);
		_mm512_stream_si512((void *)(d + 64), b);
		_mm512_stream_si512((void *)(d + 128), c);
		_mm512_stream_si512((void *)(d + 192), e);
		d += 256;
		s += 256;
		n -= 256;
	}
	while (n >= 64) {
		_mm512_stream_si512((void *)d, ld(s));
		d += 64;
		s += 64;
		n -= 64;
	}
	tkv__copy_le64(d, s, n);
	return true;
}

void tkv__copy_stream_unfenced_avx512(void *restrict dst, const void *restrict src, size_t n)
{
	TKV__SAN_RANGES(dst, src, n);
	(void)stream_body(dst, src, n);
}

void tkv__copy_stream_avx512(void *restrict dst, const void *restrict src, size_t n)
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
