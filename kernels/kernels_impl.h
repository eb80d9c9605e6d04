/*
 * kernels_impl.h - what the files inside kernels/ share and nothing outside
 * should use: the per-ISA entry points, the per-architecture hook that fills
 * the dispatch tables, the CRC32C tables, and sanitizer annotations.
 *
 * Layout (DPDK-style, the build system picks the files, not #ifdefs):
 *   copy_ref.c, crc32c_ref.c      portable reference, every build
 *   dispatch.c                    once-only detection, caps, env, public API
 *   cpu_x86.c + copy_avx2.c, copy_avx512.c, crc32c_sse42.c     x86_64 only
 *   cpu_arm64.c + copy_neon.c, crc32c_armv8.c                   aarch64 only
 *   cpu_generic.c                 any other architecture: scalar only
 * Each ISA file is compiled with its own -m flags (kernels/CMakeLists.txt), so
 * nothing outside it may be inlined into generic code; calls reach it only
 * through a table the CPU check allowed.
 */
#ifndef TKV_KERNELS_IMPL_H
#define TKV_KERNELS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

/* Indexes of the table array: every tkv_isa value. */
#define TKV__ISA_COUNT (TKV_ISA_NEON + 1)

/* ---- entry points (signatures of tkv__copy_fn / tkv__crc_fn) ---- */
void tkv__copy_ref(void *restrict dst, const void *restrict src, size_t n);
uint32_t tkv__crc32c_ref(uint32_t crc, const void *buf, size_t n);

void tkv__copy_avx2(void *restrict dst, const void *restrict src, size_t n);
void tkv__copy_stream_avx2(void *restrict dst, const void *restrict src, size_t n);
void tkv__copy_stream_unfenced_avx2(void *restrict dst, const void *restrict src, size_t n);
void tkv__copy_avx512(void *restrict dst, const void *restrict src, size_t n);
void tkv__copy_stream_avx512(void *restrict dst, const void *restrict src, size_t n);
void tkv__copy_stream_unfenced_avx512(void *restrict dst, const void *restrict src, size_t n);
uint32_t tkv__crc32c_sse42(uint32_t crc, const void *buf, size_t n);

void tkv__copy_neon(void *restrict dst, const void *restrict src, size_t n);
void tkv__copy_stream_neon(void *restrict dst, const void *restrict src, size_t n);
uint32_t tkv__crc32c_armv8(uint32_t crc, const void *buf, size_t n);

/*
 * Per-architecture hook, called once by dispatch.c after the scalar entry is
 * filled: sets copy, copy_stream, copy_stream_unfenced, crc32c and the default stream_threshold of
 * every level this build and this CPU support, and leaves the others zeroed
 * (copy == NULL means "not available"). dispatch.c then sets .isa and applies
 * TKV_STREAM_THRESHOLD.
 */
void tkv__arch_kernels(tkv__kernels tab[TKV__ISA_COUNT]);

/* ---- CRC32C tables (filled once by tkv__crc32c_init, before any use) ---- */

/* Reflected Castagnoli polynomial 0x1EDC6F41. */
#define TKV__CRC32C_POLY 0x82F63B78u

/* Hardware CRC loops run three independent streams of a multiple of this
 * many bytes and merge them (see crc32c_hw.h); shift[k][b] advances a CRC
 * register over TKV__CRC32C_LANE zero bytes for the register value b << 8k. 1024 measured
 * best with `tierkv-bench kernels` (docs/MEASUREMENTS.md): shorter lanes
 * lose to the merges on large buffers, longer ones leave 4 KiB buffers
 * (< 3 lanes) on the single stream. */
#define TKV__CRC32C_LANE 1024
/* Large buffers run three lanes of up to this many TKV__CRC32C_LANE units,
 * each prefetched this many bytes ahead (why: crc32c_hw.h). */
#define TKV__CRC32C_MAX_LANES 32
#define TKV__CRC32C_PREFETCH 1024
/* What is left after the 3 x 1024-byte blocks (up to 3 KiB: an 8 KiB
 * layer leaves 2 KiB) runs three streams of this many bytes before the
 * single stream: the 2 KiB tail of an 8 KiB buffer took a third of its
 * time on one stream. */
#define TKV__CRC32C_LANE_SMALL 128
_Static_assert(TKV__CRC32C_LANE % 64 == 0 && TKV__CRC32C_LANE_SMALL % 64 == 0,
	       "crc32c_hw.h walks a lane a 64-byte line at a time");
extern uint32_t tkv__crc32c_slice[8][256];
extern uint32_t tkv__crc32c_shift[4][256];       /* over TKV__CRC32C_LANE bytes */
extern uint32_t tkv__crc32c_shift_small[4][256]; /* over TKV__CRC32C_LANE_SMALL */
void tkv__crc32c_init(void);

static inline uint32_t tkv__crc32c_shift_by(const uint32_t tab[4][256], uint32_t reg)
{
	return tab[0][reg & 0xff] ^ tab[1][(reg >> 8) & 0xff] ^ tab[2][(reg >> 16) & 0xff] ^
	       tab[3][reg >> 24];
}

/* ---- sanitizer annotations ----
 * Vector intrinsics that compile to builtins (non-temporal stores, inline
 * asm) are invisible to ASan and TSan. Every ISA kernel announces the whole
 * ranges it reads and writes on entry, so an out-of-bounds copy or a race on
 * the copied data is still reported; in other builds these are empty. The
 * prototypes are the ones gcc's sanitizer builtins expect (long, not size_t). */
#if defined(__SANITIZE_ADDRESS__)
#define TKV__ASAN 1
#elif defined(__SANITIZE_THREAD__)
#define TKV__TSAN 1
#elif defined(__has_feature) /* clang spells it this way */
#if __has_feature(address_sanitizer)
#define TKV__ASAN 1
#elif __has_feature(thread_sanitizer)
#define TKV__TSAN 1
#endif
#endif

#if defined(TKV__ASAN)
void __asan_loadN(void *addr, long size);
void __asan_storeN(void *addr, long size);
#define TKV__SAN_RANGES(dst, src, n)                                        \
	do {                                                                \
		if (n) {                                                    \
			__asan_loadN((void *)(src), (long)(n));             \
			__asan_storeN((void *)(dst), (long)(n));            \
		}                                                           \
	} while (0)
#define TKV__SAN_READ(src, n)                                               \
	do {                                                                \
		if (n)                                                      \
			__asan_loadN((void *)(src), (long)(n));             \
	} while (0)
#elif defined(TKV__TSAN)
void __tsan_read_range(void *addr, long size);
void __tsan_write_range(void *addr, long size);
#define TKV__SAN_RANGES(dst, src, n)                                        \
	do {                                                                \
		__tsan_read_range((void *)(src), (long)(n));                \
		__tsan_write_range((void *)(dst), (long)(n));               \
	} while (0)
#define TKV__SAN_READ(src, n) __tsan_read_range((void *)(src), (long)(n))
#else
#define TKV__SAN_RANGES(dst, src, n) ((void)(dst), (void)(src), (void)(n))
#define TKV__SAN_READ(src, n) ((void)(src), (void)(n))
#endif

#endif
