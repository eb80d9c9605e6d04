/*
 * crc32c_armv8.c - CRC32C with the ARMv8 CRC32 extension (crc32cb/crc32cx;
 * aarch64 only, compiled with -march=armv8-a+crc and reached only when
 * AT_HWCAP reports HWCAP_CRC32: the extension is optional before ARMv8.1).
 * The instructions implement the reflected Castagnoli polynomial without the
 * pre/post complement, which the wrapper adds (zlib convention, see kernels.h).
 */
#include <arm_acle.h>

#define TKV__HW_REG uint32_t
#define TKV__HW_CRC8(reg, byte) __crc32cb((reg), (byte))
#define TKV__HW_CRC64(reg, word) __crc32cd((reg), (word))
#include "kernels/crc32c_hw.h"

uint32_t tkv__crc32c_armv8(uint32_t crc, const void *buf, size_t n)
{
	return ~tkv__crc32c_hw_run(~crc, buf, n);
}
