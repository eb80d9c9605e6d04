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
 * Running three independent registers over three adjacent lanes keeps the
 * unit busy (about 3x one stream on large buffers); the lanes are merged
 * with the linearity of CRCs:
 *     run(r, A||B) = shift_|B|(run(r, A)) ^ run(0, B)
 * where shift_L advances a register over L zero bytes (table lookups, one
 * per TKV__CRC32C_LANE bytes, see crc32c_ref.c). Buffers shorter than three
 * lanes take the single stream.
 *
 * Why long lanes and a prefetch: a block the cold tier verifies was just
 * written to memory by the device (O_DIRECT), so none of it is in cache.
 * With three 1 KiB lanes the loads hop between three points 1 KiB apart,
 * each short run too short for the hardware prefetcher; the loop then waits
 * on memory and ran at ~3 GB/s on cold 128 KiB blocks here, against ~14
 * GB/s in cache. A lane of up to TKV__CRC32C_MAX_LANES x 1 KiB (a third of
 * the buffer) gives the prefetcher three long sequential streams, and an
 * explicit prefetch TKV__CRC32C_PREFETCH bytes ahead in each covers its
 * start-up (docs/MEASUREMENTS.md).
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

/* Advances a register over m lanes of zero bytes. */
static inline uint32_t tkv__crc32c_shift_lanes(uint32_t r, size_t m)
{
	while (m--)
		r = tkv__crc32c_shift_lane(r);
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
	while (n >= 3 * (size_t)TKV__CRC32C_LANE) {
		size_t m = n / (3 * (size_t)TKV__CRC32C_LANE);
		m = m > TKV__CRC32C_MAX_LANES ? TKV__CRC32C_MAX_LANES : m;
		const size_t lane = m * TKV__CRC32C_LANE;
		const uint8_t *pb = p + lane, *pc = p + 2 * lane;
		uint32_t a = r, b = 0, c = 0;
		for (size_t i = 0; i < lane; i += 64) {
			/* Past the end of a lane or the buffer a prefetch is a
			 * hint that cannot fault. */
			__builtin_prefetch(p + i + TKV__CRC32C_PREFETCH);
			__builtin_prefetch(pb + i + TKV__CRC32C_PREFETCH);
			__builtin_prefetch(pc + i + TKV__CRC32C_PREFETCH);
			for (size_t j = i; j < i + 64; j += 8) {
				a = TKV__HW_CRC64(a, tkv__load64(p + j));
				b = TKV__HW_CRC64(b, tkv__load64(pb + j));
				c = TKV__HW_CRC64(c, tkv__load64(pc + j));
			}
		}
		/* The merge costs 2m table shifts per 3m lanes: the same per
		 * byte whatever m is. */
		r = tkv__crc32c_shift_lanes(a, m) ^ b;
		r = tkv__crc32c_shift_lanes(r, m) ^ c;
		p += 3 * lane;
		n -= 3 * lane;
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
