/*
 * crc32c_hw.h - the CRC32C loop shared by the hardware kernels
 * (crc32c_sse42.c, crc32c_armv8.c). Not a normal header: a file includes it
 * once, after defining how its CPU feeds the register one byte and one
 * 64-bit little-endian word:
 *     #define TKV__HW_CRC8(reg, byte)   ...
 *     #define TKV__HW_CRC64(reg, word)  ...
 * so the same loop is compiled with each ISA's flags in that ISA's file.
 *
 * Why three streams: the CRC instruction has a latency of about three cycles
 * but can start every cycle, and each step depends on the previous register.
 * Running three independent registers over three adjacent lanes of
 * TKV__CRC32C_LANE bytes keeps the unit busy (about 3x one stream on large
 * buffers); the lanes are merged with the linearity of CRCs:
 *     run(r, A||B) = shift_|B|(run(r, A)) ^ run(0, B)
 * where shift_L advances a register over L zero bytes (a table lookup, see
 * crc32c_ref.c). Buffers shorter than three lanes take the single stream.
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

/* Runs the (complemented) register r over p[0, n). */
static inline uint32_t tkv__crc32c_hw_run(uint32_t r, const uint8_t *p, size_t n)
{
	/* Word loads that straddle a cache line cost two; align them. */
	while (n && ((uintptr_t)p & 7)) {
		r = TKV__HW_CRC8(r, *p);
		p++;
		n--;
	}
	while (n >= 3 * (size_t)TKV__CRC32C_LANE) {
		const uint8_t *pb = p + TKV__CRC32C_LANE, *pc = p + 2 * TKV__CRC32C_LANE;
		uint32_t a = r, b = 0, c = 0;
		for (size_t i = 0; i < TKV__CRC32C_LANE; i += 8) {
			a = TKV__HW_CRC64(a, tkv__load64(p + i));
			b = TKV__HW_CRC64(b, tkv__load64(pb + i));
			c = TKV__HW_CRC64(c, tkv__load64(pc + i));
		}
		r = tkv__crc32c_shift_lane(a) ^ b;
		r = tkv__crc32c_shift_lane(r) ^ c;
		p += 3 * TKV__CRC32C_LANE;
		n -= 3 * TKV__CRC32C_LANE;
	}
	while (n >= 8) {
		r = TKV__HW_CRC64(r, tkv__load64(p));
		p += 8;
		n -= 8;
	}
	while (n) {
		r = TKV__HW_CRC8(r, *p);
		p++;
		n--;
	}
	return r;
}

#endif
