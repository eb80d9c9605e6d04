/*
 * copy_neon.c - NEON copy kernels (aarch64 only, where Advanced SIMD is part
 * of the base architecture, so no CPU check is needed).
 *
 * tkv__copy_neon: 16-byte q-register loads and stores, the same shape as the
 * x86 kernels: straight-line overlapping first/last vectors up to 128 bytes;
 * above, the first 16 bytes unaligned, a 64-byte loop on a 16-byte aligned
 * destination, and the last 64 bytes stored from the end.
 *
 * tkv__copy_stream_neon: whole 64-byte aligned lines written with STNP (store
 * pair, non-temporal hint: the core may write the line around the caches),
 * head and tail with regular stores on exactly their bytes. The ARMv8 memory
 * model relaxes ordering only for non-temporal *loads*; STNP stores are
 * ordered like any other store, so the caller's release (which a regular copy
 * needs as well) already orders them and no barrier is added here: the
 * "fenced before return" contract holds without one.
 *
 * Whether STNP beats regular stores depends on the core; no aarch64 hardware
 * was measured, so the default threshold keeps this kernel off (see
 * cpu_arm64.c) until `tierkv-bench kernels` is run on a real machine.
 */
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define TKV__NEON_STREAM_MIN 256

static inline void copy_le64(uint8_t *d, const uint8_t *s, size_t n)
{
	if (n >= 32) {
		uint8x16_t a = vld1q_u8(s), b = vld1q_u8(s + 16);
		uint8x16_t c = vld1q_u8(s + n - 32), e = vld1q_u8(s + n - 16);
		vst1q_u8(d, a);
		vst1q_u8(d + 16, b);
		vst1q_u8(d + n - 32, c);
		vst1q_u8(d + n - 16, e);
	} else if (n >= 16) {
		uint8x16_t a = vld1q_u8(s), b = vld1q_u8(s + n - 16);
		vst1q_u8(d, a);
		vst1q_u8(d + n - 16, b);
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

static inline void copy_body(uint8_t *d, const uint8_t *s, size_t n)
{
	if (n <= 64) {
		copy_le64(d, s, n);
		return;
	}
	if (n <= 128) {
		uint8x16_t a = vld1q_u8(s), b = vld1q_u8(s + 16), c = vld1q_u8(s + 32),
			   e = vld1q_u8(s + 48);
		uint8x16_t f = vld1q_u8(s + n - 64), g = vld1q_u8(s + n - 48),
			   h = vld1q_u8(s + n - 32), i = vld1q_u8(s + n - 16);
		vst1q_u8(d, a);
		vst1q_u8(d + 16, b);
		vst1q_u8(d + 32, c);
		vst1q_u8(d + 48, e);
		vst1q_u8(d + n - 64, f);
		vst1q_u8(d + n - 48, g);
		vst1q_u8(d + n - 32, h);
		vst1q_u8(d + n - 16, i);
		return;
	}

	/* n > 128. The end pointers stay fixed while d, s and n advance. */
	uint8_t *const d_end = d + n;
	const uint8_t *const s_end = s + n;
	vst1q_u8(d, vld1q_u8(s));
	size_t adv = 16 - ((uintptr_t)d & 15); /* 1..16 */
	d += adv;
	s += adv;
	n -= adv;
	while (n > 64) {
		uint8x16_t a = vld1q_u8(s), b = vld1q_u8(s + 16), c = vld1q_u8(s + 32),
			   e = vld1q_u8(s + 48);
		vst1q_u8(d, a);
		vst1q_u8(d + 16, b);
		vst1q_u8(d + 32, c);
		vst1q_u8(d + 48, e);
		d += 64;
		s += 64;
		n -= 64;
	}
	/* 1..64 bytes left; the original n > 128 keeps d_end - 64 inside. */
	uint8x16_t a = vld1q_u8(s_end - 64), b = vld1q_u8(s_end - 48), c = vld1q_u8(s_end - 32),
		   e = vld1q_u8(s_end - 16);
	vst1q_u8(d_end - 64, a);
	vst1q_u8(d_end - 48, b);
	vst1q_u8(d_end - 32, c);
	vst1q_u8(d_end - 16, e);
}

/* Writes 32 bytes at p with one STNP of two q registers. The memory operand
 * ("Q": a base register, no offset) tells the compiler exactly what is
 * written, so no "memory" clobber is needed. */
static inline void stnp32(uint8_t *p, uint8x16_t lo, uint8x16_t hi)
{
	__asm__ volatile("stnp %q1, %q2, %0"
			 : "=Q"(*(uint8_t(*)[32])p)
			 : "w"(lo), "w"(hi));
}

void tkv__copy_neon(void *restrict dst, const void *restrict src, size_t n)
{
	TKV__SAN_RANGES(dst, src, n);
	copy_body(dst, src, n);
}

void tkv__copy_stream_neon(void *restrict dst, const void *restrict src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	TKV__SAN_RANGES(dst, src, n);
	if (n < TKV__NEON_STREAM_MIN) {
		copy_body(d, s, n);
		return;
	}
	size_t head = (size_t)(-(uintptr_t)d & 63);
	copy_le64(d, s, head);
	d += head;
	s += head;
	n -= head;
	while (n >= 64) {
		uint8x16_t a = vld1q_u8(s), b = vld1q_u8(s + 16), c = vld1q_u8(s + 32),
			   e = vld1q_u8(s + 48);
		stnp32(d, a, b);
		stnp32(d + 32, c, e);
		d += 64;
		s += 64;
		n -= 64;
	}
	copy_le64(d, s, n);
	/* No barrier: see the file comment (STNP stores are not reordered
	 * beyond what regular stores are). */
}
