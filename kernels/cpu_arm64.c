/*
 * cpu_arm64.c - which kernel levels this aarch64 CPU can run (aarch64 builds
 * only). NEON is part of the base architecture; the CRC32 instructions are
 * optional before ARMv8.1, so they are taken only when the kernel reports
 * HWCAP_CRC32, else the NEON table uses the table CRC.
 */
#include <stdint.h>
#include <sys/auxv.h>

#include "kernels/kernels_impl.h"

/*
 * Default stream threshold for the NEON table: SIZE_MAX, i.e. tkv__copy()
 * never picks the STNP kernel by itself. Not measured: this project has no
 * aarch64 hardware (only qemu, whose timings mean nothing), and whether STNP
 * beats regular stores varies between cores. Measure on the target with
 *     build/release/bench/tierkv-bench kernels
 * and set TKV_STREAM_THRESHOLD (or change this default) from its crossover.
 */
#define TKV__ARM64_STREAM_THRESHOLD SIZE_MAX

#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1ul << 7) /* arch/arm64/include/uapi/asm/hwcap.h */
#endif

void tkv__arch_kernels(tkv__kernels tab[TKV__ISA_COUNT])
{
	unsigned long hw = getauxval(AT_HWCAP);

	tab[TKV_ISA_NEON] = (tkv__kernels){
		.copy = tkv__copy_neon,
		.copy_stream = tkv__copy_stream_neon,
		.copy_stream_unfenced = tkv__copy_stream_neon, /* it has no fence to leave out */
		.crc32c = (hw & HWCAP_CRC32) ? tkv__crc32c_armv8 : tkv__crc32c_ref,
		.stream_threshold = TKV__ARM64_STREAM_THRESHOLD,
	};
}
