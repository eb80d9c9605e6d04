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
 * Running three independent registers over three adjacent lanes keeps the
 * unit busy (about 3x one stream on large buffers); the lanes are merged
 * with the linearity of CRCs:
 *     run(r, A||B) = shift_|B|(run(r, A)) ^ run(0, B)
 * where shift_L advances a register over L zero bytes (table lookups, one
 * per lane unit, see crc32c_ref.c). What is left after the 1 KiB-unit lanes
 * runs on three lanes of TKV__CRC32C_LANE_SMALL bytes, and only the last
 * few hundred bytes take the single stream.
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

/* Runs r over *p in blocks of three lanes of up to `max_units` units of
 * `unit` bytes each (constants at each call, so the loop is specialized)
 * while *n holds one unit per lane; `tab` shifts a register over one unit
 * of zero bytes; each stream prefetches `ahead` bytes ahead of itself.
 * Advances *p and *n. A prefetch past the buffer's end does not fault
 * (computed as an integer: no out-of-bounds pointer; lanes are whole
 * 64-byte lines, kernels_impl.h). */
static inline uint32_t tkv__crc32c_hw_3way(uint32_t r, const uint8_t **pp, size_t *n,
					   size_t unit, size_t max_units, size_t ahead,
					   const uint32_t tab[4][256])
{
	const uint8_t *p = *pp;
	while (*n >= 3 * unit) {
		size_t m = *n / (3 * unit);
		m = m > max_units ? max_units : m;
		const size_t lane = m * unit;
		const uint8_t *pb = p + lane, *pc = p + 2 * lane;
		TKV__HW_REG a = r, b = 0, c = 0;
		for (size_t i = 0; i < lane; i += 64) {
			uintptr_t x = (uintptr_t)p + i + ahead;
			__builtin_prefetch((const void *)x);
			__builtin_prefetch((const void *)(x + lane));
			__builtin_prefetch((const void *)(x + 2 * lane));
			for (size_t j = i; j < i + 64; j += 8) {
				a = TKV__HW_CRC64(a, tkv__load64(p + j));
				b = TKV__HW_CRC64(b, tkv__load64(pb + j));
				c = TKV__HW_CRC64(c, tkv__load64(pc + j));
			}
		}
		/* The merge costs 2m table shifts per 3m units: the same per
		 * byte whatever m is. */
		uint32_t s = (uint32_t)a;
		for (size_t k = 0; k < m; k++)
			s = tkv__crc32c_shift_by(tab, s);
		s ^= (uint32_t)b;
		for (size_t k = 0; k < m; k++)
			s = tkv__crc32c_shift_by(tab, s);
		r = s ^ (uint32_t)c;
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
	r = tkv__crc32c_hw_3way(r, &p, &n, TKV__CRC32C_LANE, TKV__CRC32C_MAX_LANES,
				TKV__CRC32C_PREFETCH, tkv__crc32c_shift);
	/* the small lanes' next block: each stream's part of it */
	r = tkv__crc32c_hw_3way(r, &p, &n, TKV__CRC32C_LANE_SMALL, 1, 3 * TKV__CRC32C_LANE_SMALL,
				tkv__crc32c_shift_small);
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
