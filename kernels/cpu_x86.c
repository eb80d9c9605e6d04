/*
 * cpu_x86.c - which kernel levels this x86_64 CPU can run, and the measured
 * default stream threshold (x86_64 builds only).
 *
 * A vector level needs two things: the CPU implements the instructions
 * (CPUID) and the operating system saves and restores the registers on a
 * context switch (OSXSAVE set and the state bits enabled in XCR0, read with
 * XGETBV). Checking CPUID alone would run AVX code on a kernel that does not
 * preserve YMM/ZMM state and silently corrupt registers.
 */
#include <cpuid.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels_impl.h"

/*
 * Default TKV_STREAM_THRESHOLD for the AVX2 and AVX-512 tables: 16 KiB,
 * the crossover MEASURED (not guessed) with `tierkv-bench kernels` in its
 * "cold" regime, where each copy's destination is memory not in cache (what
 * the hot tier's block writes look like): from 16 KiB up the best streaming
 * kernel beat glibc memcpy at every size, below it lost or tied. Figures,
 * commands and machine: docs/MEASUREMENTS.md.
 * Below the crossover the sfence and the partial lines at both ends cost
 * more than skipping the destination reads saves. When the destination is
 * re-read at once (the "hot" regime: same buffers every call) regular
 * stores win until source and destination outgrow the caches; the
 * runtime's hot-tier writes are not re-read soon, so the cold crossover is
 * the one that applies. Other machines differ: re-measure and set
 * TKV_STREAM_THRESHOLD.
 */
#define TKV__X86_STREAM_THRESHOLD ((size_t)16 << 10)

/* CPUID.1:ECX */
#define ECX1_SSE42 (1u << 20)
#define ECX1_OSXSAVE (1u << 27)
#define ECX1_AVX (1u << 28)
/* CPUID.(7,0):EBX */
#define EBX7_AVX2 (1u << 5)
#define EBX7_AVX512F (1u << 16)
/* XCR0: x87, SSE and AVX (YMM upper halves) state */
#define XCR0_YMM 0x6u
/* XCR0: opmask, ZMM upper halves of 0-15, ZMM 16-31 */
#define XCR0_ZMM 0xe0u

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;
	/* Encoded directly so the file needs no -mxsave. */
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

void tkv__arch_kernels(tkv__kernels tab[TKV__ISA_COUNT])
{
	unsigned a, b, c, d;
	bool sse42 = false, avx2 = false, avx512 = false;

	if (__get_cpuid(1, &a, &b, &c, &d)) {
		sse42 = c & ECX1_SSE42;
		bool os_avx = (c & ECX1_OSXSAVE) && (c & ECX1_AVX);
		uint64_t xcr0 = os_avx ? xgetbv0() : 0;
		bool ymm = os_avx && (xcr0 & XCR0_YMM) == XCR0_YMM;
		bool zmm = ymm && (xcr0 & XCR0_ZMM) == XCR0_ZMM;
		if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
			avx2 = ymm && (b & EBX7_AVX2);
			avx512 = zmm && (b & EBX7_AVX512F);
		}
	}

	/* Every AVX2 CPU has SSE4.2, but it costs nothing to ask. The scalar
	 * level keeps the table CRC: it is the portable reference. */
	tkv__crc_fn crc = sse42 ? tkv__crc32c_sse42 : tkv__crc32c_ref;
	if (avx2)
		tab[TKV_ISA_AVX2] = (tkv__kernels){
			.copy = tkv__copy_avx2,
			.copy_stream = tkv__copy_stream_avx2,
			.copy_stream_unfenced = tkv__copy_stream_unfenced_avx2,
			.crc32c = crc,
			.stream_threshold = TKV__X86_STREAM_THRESHOLD,
		};
	if (avx512)
		tab[TKV_ISA_AVX512] = (tkv__kernels){
			.copy = tkv__copy_avx512,
			.copy_stream = tkv__copy_stream_avx512,
			.copy_stream_unfenced = tkv__copy_stream_unfenced_avx512,
			.crc32c = crc,
			.stream_threshold = TKV__X86_STREAM_THRESHOLD,
		};
}
