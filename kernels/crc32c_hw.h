/*
 * crc32c_hw.h - the CRC32C loop shared by the hardware kernels
 * (crc32c_sse42.c, crc32c_armv8.c). Not a normal header: a file includes it
 * once, after defining how its CPU feeds the register one byte and one
 * 64-bit little-endian word:
 *     #define TKV__HW_REG               the register's C type
 *     #define TKV__HW_CRC8(reg, byte)   ...
 *     #define TKV__HW_CRC64(reg, word)  ...
 * so the same loop is compiled with each ISA's flags in that ISA's file.
 * TKV__HW_REG is what the 64-bit step takes and gives without a
 * conversion: x86's crc32q works on a 64-bit register, and a uint32_t
 * register made gcc zero-extend the result (`mov %eax,%eax`) inside every
 * stream's dependency chain: 4 cycles per step instead of 3 (a cached
 * 64 KiB buffer: ~14 GB/s against 19-21, EPYC VM, gcc 12 -O3).
 *
 * Why three streams: the CRC instruction has a latency of about three cycles
 * but can start every cycle, and each step depends on the previous register.
 * Running three independent registers over three adjacent lanes of
 * TKV__CRC32C_LANE bytes keeps the unit busy (about 3x one stream on large
 * buffers); the lanes are merged with the linearity of CRCs:
 *     run(r, A||B) = shift_|B|(run(r, A)) ^ run(0, B)
 * where shift_L advances a register over L zero bytes (a table lookup, see
 * crc32c_ref.c). What is left after the 1 KiB lanes runs on three lanes of
 * TKV__CRC32C_LANE_SMALL bytes, and only the last few hundred bytes take
 * the single stream.
 */
#ifndef TKV_KERNELS_CRC32C_HW_H
#define TKV_KERNELS_CRC32C_HW_H

#include <stdint.h>
#include <string.h>

#include "kernels/kernels_impl.h"

static inline uint64_t tkv__load64(const uint8_t *p)
{
	uint64_t w;
	memcpy(&w, p, 8); /* unaligned-safe; both targets are little-endian */
	return w;
}

/* Runs r over *p in blocks of three lanes of `lane` bytes (a constant at
 * each call, so the loop is unrolled for it) while *n holds one; `tab`
 * shifts a register over `lane` zero bytes. Advances *p and *n.
 *
 * Each stream asks for its line of the next block (3 * lane ahead) as it
 * starts a line: on a buffer that is not in cache (a record sealed long
 * after it was filled, a value read back from memory) the hardware
 * prefetcher alone kept three interleaved streams at 4.3-4.8 GB/s, with
 * this 6.5-7.5; on a cached buffer it costs nothing measurable (EPYC VM).
 * A prefetch past the buffer's end does not fault (lanes are whole
 * 64-byte lines: kernels_impl.h). */
static inline uint32_t tkv__crc32c_hw_3way(uint32_t r, const uint8_t **pp, size_t *n, size_t lane,
					   const uint32_t tab[4][256])
{
	const uint8_t *p = *pp;
	while (*n >= 3 * lane) {
		const uint8_t *pb = p + lane, *pc = p + 2 * lane;
		TKV__HW_REG a = r, b = 0, c = 0;
		for (size_t i = 0; i < lane; i += 64) {
			uintptr_t ahead = (uintptr_t)p + 3 * lane + i; /* maybe past the end: no pointer */
			__builtin_prefetch((const void *)ahead);
			__builtin_prefetch((const void *)(ahead + lane));
			__builtin_prefetch((const void *)(ahead + 2 * lane));
			for (size_t j = i; j < i + 64; j += 8) {
				a = TKV__HW_CRC64(a, tkv__load64(p + j));
				b = TKV__HW_CRC64(b, tkv__load64(pb + j));
				c = TKV__HW_CRC64(c, tkv__load64(pc + j));
			}
		}
		r = tkv__crc32c_shift_by(tab, (uint32_t)a) ^ (uint32_t)b;
		r = tkv__crc32c_shift_by(tab, r) ^ (uint32_t)c;
		p += 3 * lane;
		*n -= 3 * lane;
	}
	*pp = p;
	return r;
}

/* Runs the (complemented) register r over p[0, n). */
static inline uint32_t tkv__crc32c_hw_run(uint32_t r, const uint8_t *p, size_t n)
{
	/* Word loads that straddle a cache line cost two; align them. */
	while (n && ((uintptr_t)p & 7)) {
		r = TKV__HW_CRC8(r, *p);
		p++;
		n--;
	}
	r = tkv__crc32c_hw_3way(r, &p, &n, TKV__CRC32C_LANE, tkv__crc32c_shift);
	r = tkv__crc32c_hw_3way(r, &p, &n, TKV__CRC32C_LANE_SMALL, tkv__crc32c_shift_small);
	TKV__HW_REG w = r;
	while (n >= 8) {
		w = TKV__HW_CRC64(w, tkv__load64(p));
		p += 8;
		n -= 8;
	}
	r = (uint32_t)w;
	while (n) {
		r = TKV__HW_CRC8(r, *p);
		p++;
		n--;
	}
	return r;
}

#endif
