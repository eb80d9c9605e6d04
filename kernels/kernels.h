/*
 * kernels.h - the copy and checksum kernels the runtime calls, one table per
 * instruction-set level, chosen once per process.
 *
 * A table holds a regular-store copy, a non-temporal ("streaming") copy and a
 * CRC32C for one level (scalar, AVX2, AVX-512, NEON). tkv__copy() picks the
 * streaming copy at or above the table's stream_threshold: streaming stores
 * skip the read-for-ownership of the destination and keep a large copy from
 * evicting the rest of the cache, which wins once the destination is not going
 * to be read again soon; below the threshold regular stores win. The default
 * threshold is the crossover measured by `tierkv-bench kernels` (see
 * kernels/cpu_x86.c); the environment variable TKV_STREAM_THRESHOLD (bytes,
 * optional K/M/G suffix) overrides it for every table.
 *
 * Contracts every table keeps:
 *  - copy and copy_stream accept any n (0 included) and any alignment of src
 *    and dst; they write exactly dst[0, n) and read exactly src[0, n); the two
 *    ranges must not overlap.
 *  - copy_stream returns with its stores ordered exactly like a regular
 *    copy's, so the caller publishes the data the same way after either (a
 *    release store or a lock): on x86 it ends with sfence, because
 *    non-temporal stores may otherwise pass later stores, even the release;
 *    on aarch64 STNP stores already obey the normal ordering rules.
 *  - copy_stream_unfenced writes the same bytes as copy_stream but leaves
 *    out that fence: a caller that streams several ranges before one
 *    publication calls tkv__stream_fence() once, after the last copy and
 *    before the publishing store. The fence waits until the write-combining
 *    buffers have reached memory: one after every 4 KiB K or V copy held
 *    the hot tier's batch-1 stores near half the copy limit
 *    (runtime/worker.c, docs/MEASUREMENTS.md).
 *  - crc32c(crc, buf, n) follows zlib's chaining convention: crc32c(0, buf, n)
 *    is the final CRC32C (Castagnoli) of buf, and
 *    crc32c(crc32c(0, a, na), b, nb) == crc32c(0, a||b, na + nb).
 *  - Tables are immutable once returned and the functions are thread-safe.
 */
#ifndef TKV_KERNELS_KERNELS_H
#define TKV_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "tierkv.h"

typedef void (*tkv__copy_fn)(void *restrict dst, const void *restrict src, size_t n);
typedef uint32_t (*tkv__crc_fn)(uint32_t crc, const void *buf, size_t n);

typedef struct tkv__kernels {
	tkv_isa isa;               /* the level this table implements */
	tkv__copy_fn copy;         /* regular stores, any size/alignment */
	tkv__copy_fn copy_stream;  /* non-temporal stores where the ISA has them; fenced before return */
	tkv__copy_fn copy_stream_unfenced; /* the same, not fenced: tkv__stream_fence() before publishing */
	tkv__crc_fn crc32c;
	size_t stream_threshold;   /* tkv__copy() uses copy_stream at or above this many bytes */
} tkv__kernels;

/* The table for the level tkv_isa_select(cap) picks; never NULL; thread-safe. */
const tkv__kernels *tkv__kernels_get(tkv_isa cap);

/* The table of exactly `isa`, or NULL when the build or CPU lacks it (tests iterate all levels). */
const tkv__kernels *tkv__kernels_for(tkv_isa isa);

static inline void tkv__copy(const tkv__kernels *k, void *restrict dst, const void *restrict src, size_t n)
{ (n >= k->stream_threshold ? k->copy_stream : k->copy)(dst, src, n); }

/* Orders every store of copy_stream_unfenced (of any table) before the
 * stores after it, like the fence copy_stream ends with. */
static inline void tkv__stream_fence(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_sfence();
#else
	/* aarch64: STNP stores obey the normal ordering rules, so the caller's
	 * release orders them; only the compiler must not move stores across. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

/* What the environment knobs (TKV_MAX_ISA, TKV_STREAM_THRESHOLD) had that
 * was ignored as invalid, or NULL: the library never prints it itself. */
const char *tkv__kernels_env_note(void);

#endif
