/*
 * tierkv.h - the whole public API of tierkv, a tiered KV-cache runtime for LLM
 * serving engines.
 *
 * Conventions (every function below follows them unless its comment says
 * otherwise):
 *  - Functions return 0 on success or a negative errno (see "Errors").
 *    A failed call changes nothing and leaves a message for the calling thread
 *    in tkv_last_error().
 *  - Structs that cross the API start with a size field (`struct_size`) set by
 *    the caller to sizeof(the struct it was compiled against), so the struct
 *    can grow without breaking older callers. The *_default() functions set it.
 *  - Opaque handles are created by tkv_X_open() and destroyed by tkv_X_close();
 *    close(NULL) is a no-op.
 */
#ifndef TIERKV_H
#define TIERKV_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TKV_BUILDING)
#define TKV_API __attribute__((visibility("default")))
#else
#define TKV_API
#endif

/* ---- Version ------------------------------------------------------------ */

#define TKV_VERSION_MAJOR 0
#define TKV_VERSION_MINOR 1
#define TKV_VERSION_PATCH 0
/* One integer that compares in release order: 0x00MMmmpp. */
#define TKV_VERSION_HEX \
	((TKV_VERSION_MAJOR << 16) | (TKV_VERSION_MINOR << 8) | TKV_VERSION_PATCH)

/* The version of the library actually loaded (may differ from the header's
 * when linked dynamically); "MAJOR.MINOR.PATCH". Thread-safe. */
TKV_API unsigned tkv_version(void);
TKV_API const char *tkv_version_string(void);

/* ---- Errors ------------------------------------------------------------- */

/*
 * Error codes are negative errno values:
 *   -EINVAL   a bad argument or config field (the message names it)
 *   -EAGAIN   the call would block and a non-blocking flag was given
 *   -ENOSPC   the tier is full
 *   -ENOENT   unknown sequence or position not stored
 *   -ENOMEM   an allocation failed
 *   -EIO      an I/O error
 *   -TKV_ECORRUPT  a record failed its checksum; no data was returned
 *   -EBADF    the runtime is closing or closed
 */
#define TKV_ECORRUPT EBADMSG

/* A short stable name and description of a (negative) error code, e.g.
 * "EINVAL: invalid argument". Never NULL; unknown codes get a generic text.
 * Thread-safe; the string is static. */
TKV_API const char *tkv_strerror(int err);

/* The message left by the last call on this thread that failed, naming what
 * was wrong (e.g. "config.block_tokens: must be a power of two in [1, 4096],
 * got 12"). Empty string if none. Valid until the thread's next tkv_ call. */
TKV_API const char *tkv_last_error(void);

/* ---- Data types and geometry ------------------------------------------- */

typedef enum tkv_dtype {
	TKV_DTYPE_F32 = 0,
	TKV_DTYPE_F16 = 1,
	TKV_DTYPE_BF16 = 2,
} tkv_dtype;

/* Bytes per element of a dtype, or 0 for an unknown value. */
TKV_API size_t tkv_dtype_size(tkv_dtype dtype);

/* Instruction-set levels of the copy and checksum kernels, in increasing
 * order on each architecture. Used to cap the level chosen at runtime. */
typedef enum tkv_isa {
	TKV_ISA_AUTO = 0,   /* the best the CPU supports */
	TKV_ISA_SCALAR = 1, /* portable reference code */
	TKV_ISA_AVX2 = 2,   /* x86-64 */
	TKV_ISA_AVX512 = 3, /* x86-64, AVX-512F/BW */
	TKV_ISA_NEON = 4,   /* aarch64 */
} tkv_isa;

/* "auto", "scalar", "avx2", "avx512", "neon"; NULL for an unknown value. */
TKV_API const char *tkv_isa_name(tkv_isa isa);

/* The kernel level this process uses when capped at `cap` (TKV_ISA_AUTO: no
 * cap): the highest level <= cap that both the build and the CPU support.
 * The environment variable TKV_MAX_ISA (a name as above) caps it further, so
 * tests and benches can force each level. Thread-safe. */
TKV_API tkv_isa tkv_isa_select(tkv_isa cap);

/* ---- Configuration ------------------------------------------------------ */

typedef struct tkv_config {
	size_t struct_size; /* sizeof(tkv_config); set by tkv_config_default() */

	/* Model geometry. A layer-token (one token's K and V of one layer) is
	 * 2 * n_kv_heads * head_dim * tkv_dtype_size(dtype) bytes. */
	uint32_t n_layers;   /* [1, 1024]; default 32 (Llama-3-8B) */
	uint32_t n_kv_heads; /* [1, 1024]; default 8 */
	uint32_t head_dim;   /* [1, 4096]; default 128 */
	tkv_dtype dtype;     /* default TKV_DTYPE_F32 */

	/* Tokens per hot-tier block, a power of two in [1, 4096]; default 16. */
	uint32_t block_tokens;

	/* Hot-tier capacity in bytes, rounded down to whole blocks; must hold at
	 * least one block per layer. Default 512 MiB. */
	uint64_t hot_bytes;

	/* Kernel level cap (TKV_ISA_AUTO: best available). */
	tkv_isa max_isa;
} tkv_config;

/* Fills *cfg with the defaults above (Llama-3-8B geometry in f32, blocks of
 * 16 tokens, 512 MiB hot tier) and sets cfg->struct_size. */
TKV_API void tkv_config_default(tkv_config *cfg);

/* Checks every field with overflow-safe arithmetic. Returns 0, or -EINVAL
 * with tkv_last_error() naming the first bad field and its value. */
TKV_API int tkv_config_validate(const tkv_config *cfg);

#ifdef __cplusplus
}
#endif
#endif /* TIERKV_H */
