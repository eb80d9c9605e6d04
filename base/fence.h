/*
 * fence.h - the full (store-load) memory fence every Dekker-style pairing
 * in tierkv uses (wake.h W1/S1, completion C1/C2, seq pins and edits, the
 * cache's and the evictor's claims).
 *
 * Why not ck_pr_fence_memory: on x86_64 ck emits `mfence`, which on this
 * project's AMD EPYC VM costs about 21 ns, against about 2.3 ns for
 * a locked read-modify-write of the thread's own stack line (`lock or $0,
 * (%rsp)`, what gcc emits for a sequentially consistent fence;
 * docs/MEASUREMENTS.md, "A locked instruction for the full fence"). The
 * hot path takes one per store (the kick's S1) and one per completion
 * (C2); readers take E1 per lookup. A locked instruction orders every
 * earlier load and store of write-back memory before every later one,
 * which is all these pairings need (Intel SDM vol. 3, 8.2.2; AMD APM
 * vol. 2, on memory ordering). What it does not replace is the `sfence`
 * that makes a streamed copy's non-temporal stores visible (kernels/,
 * tkv__stream_fence), which stays where it was.
 *
 * Written as assembly, not __atomic_thread_fence: clang emits `mfence` for
 * that, and under ThreadSanitizer gcc warns that it does not model it.
 * Elsewhere (aarch64: `dmb ish`; TSan builds, where ck's fences are the
 * compiler's, docs/SANITIZERS.md) it is ck's full fence, as before.
 */
#ifndef TKV_BASE_FENCE_H
#define TKV_BASE_FENCE_H

#include <ck_pr.h>

static inline void tkv__fence_full(void)
{
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
	/* (%rsp) is this thread's own line; the value is unchanged */
	__asm__ __volatile__("lock; orq $0, (%%rsp)" ::: "memory", "cc");
#else
	ck_pr_fence_memory();
#endif
}

#endif
