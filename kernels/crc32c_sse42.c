/*
 * crc32c_sse42.c - CRC32C with the SSE4.2 crc32 instruction (x86_64 only;
 * compiled with -msse4.2 and reached only when CPUID reports SSE4.2). The
 * instruction implements exactly the Castagnoli polynomial, reflected, without
 * the pre/post complement, which the wrapper adds (zlib convention, see
 * kernels.h).
 */
#include <nmmintrin.h>

#define TKV__HW_REG uint64_t
#define TKV__HW_CRC8(reg, byte) _mm_crc32_u8((reg), (byte))
#define TKV__HW_CRC64(reg, word) _mm_crc32_u64((reg), (word))
#include "kernels/crc32c_hw.h"

uint32_t tkv__crc32c_sse42(uint32_t crc, const void *buf, size_t n)
{
	return ~tkv__crc32c_hw_run(~crc, buf, n);
}
