/*
 * tierkv.h - the whole public API of tierkv, a tiered KV-cache runtime for LLM
 * serving engines.
 *
 * Conventions (every function below follows them unless its comment says
 * otherwise):
 *  - Functions return 0 on success or a negative errno (see "Errors").
 *    A failed call changes nothing and leaves a message for the calling thread
 *    in tkv_last_error().
 *  - Structs that cross the API (tkv_config, tkv_view, tkv_stats) start with
 *    a size field (`struct_size`) set by the caller to sizeof(the struct it
 *    was compiled against), so a struct can grow without breaking older
 *    callers. One rule for all of them: any struct_size from the struct's
 *    first released layout upward is accepted (smaller: -EINVAL). Fields the
 *    caller's layout lacks are defaults (inputs) or not written (outputs).
 *    Bytes past the library's own layout, from a newer caller: in a struct
 *    the library only reads (tkv_config) they must be zero, or the call
 *    fails with -E2BIG rather than ignore a setting it cannot honour; in a
 *    struct it only fills (tkv_stats) they are zeroed; tkv_view, which it
 *    both reads and fills, leaves them untouched. The *_default()
 *    functions set struct_size.
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
 *   -E2BIG    a struct from a newer caller sets a field this library lacks
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

/* How the evictor chooses which hot blocks go to the cold tier. */
typedef enum tkv_policy {
	/* S3-FIFO (default): recency plus frequency with FIFO queues. A block
	 * read once (a one-off prompt) leaves through the small queue without
	 * pushing out prefixes that requests keep reusing, and recording a hit
	 * is one atomic increment, no lock. */
	TKV_POLICY_S3FIFO = 0,
	/* Exact least-recently-used. */
	TKV_POLICY_LRU = 1,
} tkv_policy;

/* When blocks are written to the shared tier (tkv_config.shared_write). */
typedef enum tkv_shared_write {
	TKV_SHARED_WRITE_ON_DROP = 0, /* when dropped from the last local tier */
	TKV_SHARED_WRITE_THROUGH = 1, /* when published */
} tkv_shared_write;

/* When the hot tier's pages are faulted in (tkv_config.hot_populate). */
typedef enum tkv_hot_populate {
	TKV_HOT_POPULATE_AT_OPEN = 0, /* all of hot_bytes, by tkv_open (default) */
	TKV_HOT_POPULATE_ON_USE = 1,  /* by the first store that needs a page */
} tkv_hot_populate;

/* What a thread blocked in tkv_wait does while its store is still queued. */
typedef enum tkv_wait_copy {
	TKV_WAIT_COPY_OWN = 0, /* copies its own store itself (default; tkv_wait) */
	TKV_WAIT_SLEEP = 1,    /* only sleeps: the workers copy every store */
	TKV_WAIT_COPY_ALL = 2, /* as COPY_OWN, with no bound on how many at once */
} tkv_wait_copy;

/* When a cold record counts as written (and its hot block may be freed). */
typedef enum tkv_durability {
	/* fdatasync once per batch of records (default): a record reported
	 * durable survives a crash or power loss. */
	TKV_DURABLE_SYNC = 0,
	/* No fdatasync: the page cache may still hold records when the hot
	 * block is freed; a crash can lose them. For benchmarks. */
	TKV_DURABLE_NONE = 1,
} tkv_durability;

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

	/* Worker threads, each owning layers w, w + n_workers, ...; 0 (default)
	 * means one per performance core, at most n_layers. [0, 256]. */
	uint32_t n_workers;

	/* Slots of each worker's descriptor ring, a power of two in [4, 1<<20];
	 * default 4096 (64 bytes each). One slot is never used (a ring of 4096
	 * holds 4095). A store that finds its ring full waits for room
	 * (tkv_stats.ring_full_events): size it to hold one round of every
	 * engine thread, engine threads x layers per worker. The default holds
	 * 64 threads x 32 layers on one worker; 1024 did not hold 64 threads on
	 * two workers, and with copying waiters (wait_copy) their stores'
	 * p99 was ~1 ms (docs/MEASUREMENTS.md). */
	uint32_t ring_slots;

	/* Pin each worker to one performance core (default true). A pin that
	 * fails is counted in tkv_stats.pin_failures, not fatal. */
	bool pin_workers;

	/* Root of the sysfs tree used to find performance cores; NULL (default)
	 * means "/sys". Tests point it at a fake tree. Read only during open. */
	const char *sysfs_root;

	/* Event trace output file (tools/trace/FORMAT.md; read it with
	 * tierkv-trace). NULL (default): the environment variable TKV_TRACE,
	 * and if that is unset or empty, tracing is off (one predictable branch
	 * per event). Read only during open. */
	const char *trace_path;

	/* Cold tier: a directory on local SSD (created if missing; one runtime
	 * at a time), NULL (default) for RAM only. It holds preallocated
	 * segment files of cold_bytes in total and a manifest of the geometry:
	 * opening it with another geometry fails with -EMEDIUMTYPE. Records of
	 * sequences left open at tkv_close (or at a crash) stay, and re-opening
	 * such a sequence id makes them readable again. With a cold tier,
	 * the evictor writes records straight from the hot blocks when a
	 * layer's block is a multiple of 4 KiB (e.g. Llama-3-8B at 16 tokens
	 * per block); other geometries are copied into staging buffers first,
	 * and tkv_open allocates and touches those (up to 32 records of
	 * n_layers x block bytes + 4 KiB) so that the first eviction burst
	 * does not pay for their first touch. */
	const char *cold_dir;
	uint64_t cold_bytes; /* default 4 GiB; at least one record */

	/* Hot-tier watermarks, percent of hot_bytes: the evictor starts when
	 * usage passes hot_high_pct and stops at hot_low_pct (lower when a
	 * waiting store needs more room than that). 1 <= low < high <= 100;
	 * 0 (default) is automatic, see tkv_config_watermarks. */
	uint32_t hot_high_pct;
	uint32_t hot_low_pct;

	tkv_policy policy;         /* default TKV_POLICY_S3FIFO */
	tkv_durability durability; /* default TKV_DURABLE_SYNC */

	/* Added after the first released layout. */

	/* The prefix cache (tkv_seq_open_tokens): the caller's name for the
	 * model and everything that changes its KV (weights revision, RoPE
	 * scaling, quantization...). NULL (default): no cache, and every
	 * sequence is private as before. When set (non-empty, at most 1024
	 * bytes, copied at open), full blocks of sequences opened with their
	 * tokens are published, keyed by this id, the geometry, dtype,
	 * block_tokens, an optional per-sequence salt and the exact token
	 * prefix (docs/KEY_FORMAT.md), and reused by every later sequence with
	 * the same prefix, across restarts when the cold tier keeps them. */
	const char *model_id;

	/*
	 * The shared tier: cached blocks in a Redis Cluster (or one standalone
	 * Redis/Valkey server) that many serving nodes share, below the cold
	 * tier. Off unless shared_enabled; then model_id and shared_seeds are
	 * required (-EINVAL). Only published cache blocks go there, one key per
	 * block ("tkv1:<namespace>:<block key>", spread over every master);
	 * a value is a self-checking record (geometry, key, token ids, CRC32C
	 * per layer) and anything fetched is verified before use: a nil, a
	 * wrong length, a failed CRC or other token ids is a miss, counted
	 * (tkv_stats.shared_*), never data. The cluster never makes a call
	 * fail: a node down, a timeout, CLUSTERDOWN, TRYAGAIN, LOADING or OOM
	 * is a miss or a dropped write, counted, and a call waits for it at
	 * most shared_timeout_ms per network round (redirections add rounds,
	 * at most 5). Unreachable seeds at open are not an error.
	 *
	 * Reads: tkv_seq_open_tokens continues a prefix that ends locally in
	 * the shared tier (pipelined, stopping at the first missing block) and
	 * attaches what it fetched like a local hit; tkv_cache_lookup counts
	 * the blocks the cluster holds (EXISTS, unverified).
	 * Writes (asynchronous, SET NX so a block already there is not sent
	 * again as a replacement, at most 64 MiB queued; beyond that a block
	 * is not written, counted in shared_writes_dropped):
	 * TKV_SHARED_WRITE_ON_DROP (default) when a block leaves this node's
	 * last local tier for space; TKV_SHARED_WRITE_THROUGH when it is
	 * published (every block, at once: more traffic, and each publish
	 * copies the block once more).
	 */
	bool shared_enabled;
	/* "host:port[,host:port...]", read at open; a host name is resolved
	 * at each connect within shared_connect_timeout_ms (IPv4 first) */
	const char *shared_seeds;
	uint32_t shared_timeout_ms;         /* per network round; 0: 500, at most 60000 */
	uint32_t shared_connect_timeout_ms; /* 0: 200, at most 60000 */
	tkv_shared_write shared_write;      /* default TKV_SHARED_WRITE_ON_DROP */

	/* Unused. It fills what was the tail padding of the layout that ended
	 * at shared_write, so the next field starts past that layout's size
	 * and struct_size tells the two apart; a caller built against that
	 * layout may have left anything here. */
	uint32_t reserved0;

	/* Added after the layout that ended at shared_write. */

	/* When the hot tier's memory is faulted in. TKV_HOT_POPULATE_AT_OPEN
	 * (default, also for callers built before this field): tkv_open
	 * allocates and faults in all of hot_bytes: each worker its own
	 * pool's share by the layers it owns, rounded up to whole slabs of
	 * 2 MiB huge pages (a little more than hot_bytes in all), on its own
	 * core when pinned (so from that core's NUMA node; workers on distinct
	 * cores at once). A store then does not wait for the kernel to supply
	 * fresh zeroed pages while its pool stays within that share.
	 * Without it, an engine whose open sequences grow past any earlier peak
	 * pays that inside its stores: on the project's VM first touch ran at
	 * ~0.45 GB/s, and 64 engine threads storing into a fresh runtime
	 * reached 0.06 of one thread's throughput in a standalone program and
	 * 0.20-0.27 in `tierkv-bench producers --cold --hot-populate on-use`
	 * (docs/MEASUREMENTS.md, "Populating the hot tier at open").
	 * It costs tkv_open the first touch of hot_bytes (an estimate of
	 * 0.1 s per GiB where pages are zeroed at ~10 GB/s; on the project's
	 * VM, whose host backs guest memory on first touch, 0.15 s per GiB
	 * once backed and up to 2.3 s after the VM sat idle) and keeps
	 * hot_bytes resident from open. tkv_open fails with -ENOMEM when the kernel refuses the memory
	 * (Linux >= 5.14 reports it; with overcommit an older kernel may kill
	 * the process instead, as any first write to memory it cannot supply).
	 * TKV_HOT_POPULATE_ON_USE: pages are faulted by the first store that
	 * needs them. Either way a pool keeps its slabs until tkv_close, so it
	 * holds the most blocks its layers ever had in use at once (populated:
	 * at least its share); all pools together stay near hot_bytes while
	 * every layer is used alike, as a model's forward pass does, and can
	 * reach up to n_workers x hot_bytes if the busiest layers change over
	 * time. Builds with a sanitizer allocate every block on its own and
	 * populate nothing. */
	tkv_hot_populate hot_populate;

	/* Unused: the tail padding of the layout that ended at hot_populate
	 * (see reserved0). */
	uint32_t reserved1;

	/* Added after the layout that ended at hot_populate. */

	/* TKV_WAIT_COPY_OWN (default, also for callers built before this
	 * field): a thread blocked in tkv_wait copies its own store when no
	 * worker has reached it (tkv_wait says when), so a small batch does
	 * not wait for every larger one queued ahead of it; at most as many
	 * waiters copy at once as the opener's affinity mask has CPUs beyond
	 * one per worker, and at least one: the others sleep. A copying
	 * waiter competes for the CPU with the workers. TKV_WAIT_COPY_ALL:
	 * every such waiter copies, however many at once. TKV_WAIT_SLEEP:
	 * waiting threads only sleep, and only the workers copy. On the
	 * project's 2-core VM (2 workers, so one waiter at a time by default;
	 * docs/MEASUREMENTS.md, "Waiters copy their own batches" and what
	 * follows it): a program of 64 engine threads whose waits are
	 * unequal (batches of 1-64 tokens, buffers kept) ran 7-8% faster with
	 * COPY_OWN and 8-9% with COPY_ALL than with SLEEP; one engine thread
	 * that waits on each layer right after storing it, 2x faster
	 * (copying while the worker sleeps); `tierkv-bench producers` (equal
	 * batches) ran as fast with each; COPY_ALL cut its median batch wait
	 * at 4-64 threads 2-35 times and made its p99 at 4-16 threads 2-3
	 * times longer; COPY_OWN kept the p99 wait at SLEEP's. */
	tkv_wait_copy wait_copy;
} tkv_config;

/* Fills *cfg with the defaults above (Llama-3-8B geometry in f32, blocks of
 * 16 tokens, 512 MiB hot tier) and sets cfg->struct_size. */
TKV_API void tkv_config_default(tkv_config *cfg);

/* Checks every field with overflow-safe arithmetic. Returns 0, or -EINVAL
 * with tkv_last_error() naming the first bad field and its value. */
TKV_API int tkv_config_validate(const tkv_config *cfg);

/* The watermarks a runtime opened with cfg uses: cfg's own, or for a 0
 * (the default) the automatic value: 80/60 without a prefix cache (the
 * headroom lets bursts of stores proceed while records are written:
 * `tierkv-bench evict`) and 100/99 with one (model_id set: RAM is cache
 * capacity, so it stays full and the evictor makes room as stores need it;
 * a store into a full hot tier may wait for a record write). When only one
 * is set the other is its automatic value, moved to just past the one set
 * if they would cross (only hot_low_pct = 90 without a cache: 91/90). cfg
 * is not validated. */
TKV_API void tkv_config_watermarks(const tkv_config *cfg, uint32_t *high_pct,
				   uint32_t *low_pct);

/* ---- Runtime ------------------------------------------------------------ */

/*
 * A runtime owns the worker threads, their rings and the hot tier. All
 * functions taking a tkv_runtime * are thread-safe unless noted; the
 * per-sequence rule is: stores to one sequence come from one thread at a time
 * (the engine may hand a sequence from thread to thread, as long as the
 * hand-off itself synchronizes, e.g. through a mutex or queue). Reads, views
 * and stats may come from any thread at any time.
 *
 * Threads: the runtime's own threads carry names for top -H, perf and gdb:
 * "tkv-worker-N" (one per worker), and with a cold tier "tkv-evictor" and
 * "tkv-prefetch"; with a shared tier "tkv-shared-put"; "tkv-trace" while
 * tracing. tkv_close joins them all. A shared tier that looks up a host
 * name does so on a detached "tkv-resolve" thread, which ends when its
 * lookup does (at most one per name; tiers/shared_resolve.c).
 */
typedef struct tkv_runtime tkv_runtime;

/* Validates cfg (see tkv_config_validate), starts the workers and allocates
 * their arenas. On success *out is the runtime; on failure *out is NULL,
 * nothing leaks, and the error names the cause. cfg is not kept. */
TKV_API int tkv_open(const tkv_config *cfg, tkv_runtime **out);

/* Drains queued stores (their tickets complete), joins the workers, the
 * prefetch thread (reads in flight complete; queued tkv_prefetch requests
 * are dropped) and the evictor (record writes in flight complete first),
 * and frees every sequence and hot block. Cold records of sequences still
 * open stay on disk: re-opening those ids after the next tkv_open reads them
 * back (tkv_seq_close deletes a sequence's records). With a prefix cache and
 * a cold tier, the cache blocks only RAM holds are written to the cold tier
 * while it has free slots (never dropping a record for them), so the next
 * run recovers them: close then takes up to one write of the hot tier at
 * disk speed. Views must have been
 * released, and no other call on rt may run concurrently or follow (a call
 * that starts while close runs gets -EBADF, but rt is freed when close
 * returns). tkv_close(NULL) is a no-op. Close cannot fail; the one thing it
 * can report, a trace file (trace_path) that could not be fully written, is
 * left in tkv_last_error() of the calling thread. */
TKV_API void tkv_close(tkv_runtime *rt);

/* ---- Sequences ---------------------------------------------------------- */

/* Opens sequence `seq_id` (the engine's request id; any 64-bit value but
 * UINT64_MAX, which names the records of cached and shared blocks) with no
 * tokens; with a cold tier, a previous run's records of the id come back
 * (see tkv_close). -EEXIST if it is already open (changing nothing),
 * -EINVAL for UINT64_MAX, -ENOMEM. */
TKV_API int tkv_seq_open(tkv_runtime *rt, uint64_t seq_id);

/* Waits for the sequence's pending stores, then lets go of its blocks:
 * blocks only it holds are freed in every tier (with their cold records);
 * blocks it shares or published to the prefix cache stay (a cache entry
 * lives on until dropped for space). -ENOENT if not open; -EBUSY (and
 * nothing changes) while a view of it is held. Must not race with a store
 * to the same sequence, nor with an open or fork that reuses its id (the
 * id is free once close returns: records the new sequence wrote meanwhile
 * could be deleted with the old one's). */
TKV_API int tkv_seq_close(tkv_runtime *rt, uint64_t seq_id);

/* ---- Prefix cache -------------------------------------------------------
 *
 * With config.model_id set, KV is also a cache keyed by the tokens that
 * produced it. A sequence opened with its prompt's token ids starts with
 * the longest cached prefix of full blocks attached: zero-copy, shared with
 * every other sequence using them, in whatever tier they are (reads and
 * views promote cold ones as for any block). Its own full blocks are
 * published once every layer of a block is stored and the block's token
 * ids are known (from the prompt, or tkv_seq_append_tokens for generated
 * tokens). A match compares the exact token ids, never the key alone, so a
 * hash collision is a miss, never another prompt's KV. Shared blocks are
 * immutable: truncate and fork copy the block they would write into.
 * Unreferenced cache blocks go hot -> cold under the eviction policy and are
 * dropped (counted in tkv_stats) when space runs out; a store gets -ENOSPC
 * only when everything in both tiers is referenced. Blocks stored before
 * their token ids are known and evicted meanwhile stay private (counted as
 * cache_publish_skipped).
 */

/* Per-sequence options of the prefix cache. */
typedef struct tkv_seq_opts {
	size_t struct_size;  /* sizeof(tkv_seq_opts), set by the caller */
	const void *salt;    /* isolates tenants: keys with another salt (or
			      * none) never match; copied */
	size_t salt_len;     /* 0: no salt; at most 1024 */
	unsigned flags;      /* TKV_SEQ_NO_PUBLISH */
} tkv_seq_opts;
/* Attach cached blocks, but never publish this sequence's own. */
#define TKV_SEQ_NO_PUBLISH 0x1u

/* Opens sequence `seq_id` knowing its first n_tokens token ids (the prompt;
 * copied) and attaches the longest cached prefix of full blocks of them;
 * *cached_tokens (may be NULL) gets how many tokens are already stored (a
 * multiple of block_tokens, <= n_tokens): the engine stores from there, for
 * every layer. opts may be NULL. Without config.model_id this is
 * tkv_seq_open without the token ids (nothing is kept, attached or
 * published). Unlike tkv_seq_open it does not re-attach cold records a
 * previous run left under this id: it deletes them, since the sequence
 * stores another history there. -EEXIST, -EINVAL (NULL tokens with n_tokens > 0, bad
 * opts, reserved id), -ENOMEM. */
TKV_API int tkv_seq_open_tokens(tkv_runtime *rt, uint64_t seq_id, const uint32_t *tokens,
				size_t n_tokens, const tkv_seq_opts *opts,
				uint64_t *cached_tokens);

/* Appends token ids after those the sequence knows (generated tokens, or
 * the rest of a prompt), so the blocks they complete can be published.
 * Ids may run ahead of stored KV and KV ahead of ids. Same thread rule as
 * tkv_store. -ENOENT, -EINVAL, -ENOMEM. */
TKV_API int tkv_seq_append_tokens(tkv_runtime *rt, uint64_t seq_id, const uint32_t *tokens,
				  size_t n_tokens);

/* What the cache holds for a prompt, without attaching or changing
 * anything (for a router or a scheduler). */
typedef struct tkv_cache_match {
	size_t struct_size;   /* sizeof(tkv_cache_match), set by the caller */
	uint64_t tokens;      /* out: matched tokens (whole blocks) */
	uint64_t hot_blocks;  /* out: of the matched blocks, those in RAM */
	uint64_t cold_blocks; /* out: those only on SSD */
	/* Added after the first released layout. */
	uint64_t shared_blocks; /* out: blocks after the local ones that the
				 * shared tier holds (unverified; in tokens) */
} tkv_cache_match;
/* Looks the prompt up like tkv_seq_open_tokens would. -EINVAL (no
 * model_id, NULL arguments). Any thread. */
TKV_API int tkv_cache_lookup(tkv_runtime *rt, const uint32_t *tokens, size_t n_tokens,
			     const tkv_seq_opts *opts, tkv_cache_match *out);

/* Drops every cache block no sequence references, in every tier (e.g. the
 * model's weights were reloaded). Returns how many blocks, or a negative
 * errno. Blocks that sequences hold are kept. Any thread. */
TKV_API int64_t tkv_cache_drop(tkv_runtime *rt);

/* Cuts a sequence back to its first n_tokens tokens (speculative decoding
 * rejecting drafted tokens): positions and known token ids past n_tokens
 * are forgotten, blocks wholly past it let go. The block the cut lands in
 * (if any) is copied into a block of the sequence's own first, so no shared
 * block is ever written. Waits for the sequence's pending stores and for
 * reads and prefetches of it in progress; reads and views that start
 * meanwhile fail with -EBUSY. -ENOENT, -EINVAL (n_tokens past what every
 * layer stored), -EBUSY (a view is held), -ENOMEM, -ENOSPC. Same thread
 * rule as tkv_store. */
TKV_API int tkv_seq_truncate(tkv_runtime *rt, uint64_t seq_id, uint64_t n_tokens);

/* Opens new_id as a copy of seq_id (parallel sampling; cold records a
 * previous run left under new_id are deleted): every full block
 * is shared zero-copy (a full block the evictor is writing at that moment,
 * or whose only copy of a layer is on SSD under seq_id's name, is copied
 * instead); the partial last block is copied; token ids are copied. Waits
 * for seq_id's pending stores. -ENOENT, -EEXIST, -EINVAL (layers at
 * different lengths), -ENOMEM, -ENOSPC. Same thread rule as tkv_store for
 * seq_id. */
TKV_API int tkv_seq_fork(tkv_runtime *rt, uint64_t seq_id, uint64_t new_id);

/* ---- Store -------------------------------------------------------------- */

/* A store's completion handle: plain data, no allocation, copyable. */
typedef struct tkv_ticket {
	uint64_t seq_id;
	uint64_t end_pos; /* the store covered positions below this */
	uint32_t layer;
	uint32_t queue_pos; /* the runtime's: where the store was queued (keep as filled) */
} tkv_ticket;

/* Return -EAGAIN instead of waiting when the worker's ring is full. */
#define TKV_STORE_NONBLOCK 0x1u

/*
 * Stores n_tokens tokens of one layer of a sequence, at positions
 * [pos, pos + n_tokens). k and v point to n_tokens rows of kv_dim elements of
 * the configured dtype each (row-major, [n_tokens][kv_dim]); they need no
 * particular alignment.
 *
 * Zero-copy on the way in: the call checks the arguments and hot-tier space,
 * pushes one descriptor to the worker owning `layer`, fills *ticket and
 * returns. THE CALLER'S k AND v BUFFERS MUST STAY VALID AND UNCHANGED UNTIL
 * THE TICKET COMPLETES (tkv_wait/tkv_seq_sync/tkv_ticket_done).
 *
 * Positions are append-only per (sequence, layer): pos must equal the number
 * of tokens already stored for that layer, else -EINVAL (gap or overlap).
 * Errors (nothing is stored, nothing changes): -ENOENT unknown sequence;
 * -EINVAL bad layer, NULL buffer, n_tokens == 0, or position not contiguous;
 * -EOVERFLOW sizes overflow; -EAGAIN with TKV_STORE_NONBLOCK when the
 * worker's ring is full, or the hot tier is full and a cold tier exists
 * (without the flag the call spins briefly and then sleeps: on a full ring
 * until it has room, with no time limit (woken when the worker has drained
 * it to half, and retrying every 1 ms); on a full hot tier until the
 * evictor makes room, for at most ~2 s);
 * -ENOSPC hot tier full and nothing can be evicted (or no cold tier);
 * -EBADF runtime closing.
 * Thread-safe, with the per-sequence rule above. ticket may be NULL.
 */
TKV_API int tkv_store(tkv_runtime *rt, uint64_t seq_id, uint32_t layer, uint64_t pos,
		      uint32_t n_tokens, const void *k, const void *v, unsigned flags,
		      tkv_ticket *ticket);

/* How many tokens the engine should put in its next store to this
 * (sequence, layer): the tokens left to the end of the current block, at
 * most `cap` (0: no cap beyond the block). Never 0 for an open sequence.
 * Returns the count, or a negative errno (-ENOENT, -EINVAL). */
TKV_API int64_t tkv_batch_hint(tkv_runtime *rt, uint64_t seq_id, uint32_t layer,
			       uint32_t cap);

/* ---- Completion --------------------------------------------------------- */

/* Blocks until the store behind *ticket is in the hot tier and readable
 * (spinning a few microseconds first only while fewer waiters spin than
 * the opening thread's affinity mask has CPUs beyond one per worker).
 * With config.wait_copy = TKV_WAIT_COPY_OWN (the default), if the store is
 * then still queued, with at least 8 others ahead of it on its worker (or
 * fewer while that worker sleeps and every earlier store to its layer has
 * completed) and no one copying it yet, the CALLING THREAD COPIES IT
 * into the hot tier itself, and completes it when every earlier store to
 * that (sequence, layer) has completed: the wait is the copy's own time,
 * on the caller's CPU, not the time of every copy queued before it (other
 * threads' large batches before a small one). Else it sleeps. A wait that
 * sleeps is woken only once the last store
 * of this sequence, to a later layer of the same worker, that reaches the
 * same position and was already accepted when the wait began is done (the
 * worker copies in acceptance order, so every store queued before it is
 * done too); then it checks its own. An engine that stores every layer of
 * a step and then waits on each ticket is so woken once per worker, not
 * once per layer. The cost: such a ticket returns after everything queued
 * on that worker up to that later store, other sequences' copies
 * included, rather than right after its own copy.
 * 0; -EINVAL for a NULL runtime or ticket or a layer out of range; -EBADF
 * while the runtime is closing; -ENOENT if the sequence was closed; -ENOMEM
 * if the layer lost tokens (a hot block could not be allocated). */
TKV_API int tkv_wait(tkv_runtime *rt, const tkv_ticket *ticket);

/* True when the store behind *ticket has completed (or its sequence is
 * gone); never blocks. */
TKV_API bool tkv_ticket_done(tkv_runtime *rt, const tkv_ticket *ticket);

/* Blocks until every store made so far to the sequence, all layers, has
 * completed. 0 or -ENOENT. */
TKV_API int tkv_seq_sync(tkv_runtime *rt, uint64_t seq_id);

/* ---- Read and view ------------------------------------------------------ */

/* Copies tokens [pos, pos + n_tokens) of one layer into k and v (each
 * n_tokens * kv_dim elements), first waiting for pending stores that cover
 * them. Blocks in the cold tier are promoted (read back, checksum-verified,
 * made hot again) first. -ENOENT if the sequence is unknown or the range was
 * never stored; -EINVAL bad layer/NULL buffer/n_tokens == 0; -ENOMEM if
 * the layer lost tokens (see tkv_wait: no data is returned); from the cold
 * tier: -TKV_ECORRUPT (a record failed its checksum: it is dropped and its
 * blocks are lost, no data is returned), -EIO, -ENOSPC (no hot space to
 * promote into and nothing evictable). On error the buffers' contents are
 * unspecified. Any thread. */
TKV_API int tkv_read(tkv_runtime *rt, uint64_t seq_id, uint32_t layer, uint64_t pos,
		     uint32_t n_tokens, void *k, void *v);

/* One block of a view: k and v each point to n_tokens rows of kv_dim
 * elements; first_pos is the position of row 0. */
typedef struct tkv_view_block {
	const void *k;
	const void *v;
	uint64_t first_pos;
	uint32_t n_tokens;
} tkv_view_block;

/* A zero-copy view of a token range of one layer. The caller provides the
 * blocks array; the runtime fills n_blocks entries and keeps what it needs to
 * release the view in the opaque fields. */
typedef struct tkv_view {
	size_t struct_size;     /* sizeof(tkv_view), set by the caller */
	tkv_view_block *blocks; /* caller's array of max_blocks entries */
	uint32_t max_blocks;
	uint32_t n_blocks;      /* out */
	uint64_t opaque[4];     /* runtime's; do not touch */
} tkv_view;

/* Fills view->blocks with the blocks holding tokens [pos, pos + n_tokens) of
 * one layer (the first and last may be partial: n_tokens says how many of
 * their rows are in the range, first_pos where they start) after waiting for
 * pending stores that cover them and promoting cold blocks, and PINS those
 * blocks: their memory stays valid and unchanged, and they are never
 * evicted, moved or freed, until tkv_view_release(). Only this layer's
 * blocks are read from the cold tier (a view of layer L never waits for
 * layer L+1). A pinned sequence cannot be closed (-EBUSY). -ERANGE if max_blocks is too small (n_blocks then says
 * how many are needed); other errors as tkv_read.
 * A view racing with tkv_seq_close of the same sequence may fail with -ENOENT. */
TKV_API int tkv_view_acquire(tkv_runtime *rt, uint64_t seq_id, uint32_t layer, uint64_t pos,
		     uint32_t n_tokens, tkv_view *view);

/* Unpins the blocks of a view obtained from tkv_view_acquire; the pointers in it
 * must not be used afterwards. Releasing twice is -EINVAL. */
TKV_API int tkv_view_release(tkv_runtime *rt, tkv_view *view);

/* ---- Cold tier ---------------------------------------------------------- */

/* Starts reading tokens [pos, pos + n_tokens) of every layer back from the
 * cold tier into the hot tier, layer 0 first, without waiting: an engine
 * calls it before the forward pass that needs the range, and each view of
 * layer L then waits only for layer L's blocks. Blocks already hot are
 * skipped. 0 (queued), -ENOENT, -EINVAL (range not stored), -EAGAIN (the
 * prefetch queue is full). Without a cold tier it is a no-op returning 0. */
TKV_API int tkv_prefetch(tkv_runtime *rt, uint64_t seq_id, uint64_t pos, uint32_t n_tokens);

/* ---- Stats -------------------------------------------------------------- */

#define TKV_STATS_MAX_WORKERS 256

typedef struct tkv_worker_stats {
	uint64_t tokens_stored;  /* layer-tokens copied into the hot tier */
	uint64_t bytes_stored;
	uint64_t batches;
	int32_t cpu;             /* CPU it is pinned to, -1 if unpinned */
	uint32_t layers;         /* layers it owns */
} tkv_worker_stats;

typedef struct tkv_stats {
	size_t struct_size;       /* sizeof(tkv_stats), set by the caller */
	uint32_t n_workers;
	uint32_t pin_failures;    /* workers that could not be pinned */
	uint64_t ring_full_events;/* stores that found their ring full */
	uint64_t enospc_events;   /* stores refused for a full hot tier */
	uint64_t hot_bytes_used;  /* bytes of allocated blocks */
	uint64_t hot_bytes_capacity;
	uint64_t hot_blocks_used;
	uint64_t pinned_blocks;   /* blocks held by views now */
	uint64_t open_sequences;
	const char *topology_source; /* which rule found the performance cores */
	tkv_isa isa;              /* the kernel level in use */

	/* Cold tier (all 0 without one). Bandwidth = bytes / busy ns. */
	uint64_t evicted_blocks;     /* block positions (all layers) moved out */
	uint64_t evicted_bytes;      /* bytes written to records */
	uint64_t evict_write_ns;     /* time with a record write in flight */
	uint64_t promoted_blocks;    /* layer blocks read back into the hot tier */
	uint64_t promoted_bytes;
	uint64_t promote_read_ns;    /* sum of promotion read latencies */
	uint64_t io_errors_enospc;   /* record writes refused: disk/segments full */
	uint64_t io_errors_eio;      /* record writes or reads that failed */
	uint64_t io_errors_short;    /* short writes or reads */
	uint64_t corrupt_records;    /* checksum failures (records dropped) */
	uint64_t cold_bytes_used;
	uint64_t cold_bytes_capacity;
	uint32_t evictor_queue_depth;/* record writes in flight */
	bool cold_io_uring;          /* false: pwrite fallback (see README) */
	bool cold_direct_io;         /* false: the filesystem refused O_DIRECT */
	tkv_worker_stats workers[TKV_STATS_MAX_WORKERS];

	/* Added after the first released layout, which ends at workers[]: a
	 * caller compiled against that one gets none of these written. */
	/* Something the library ignored rather than fail a call for: an
	 * invalid TKV_MAX_ISA or TKV_STREAM_THRESHOLD value; NULL if none.
	 * The library never prints. Static storage. */
	const char *env_warning;
	/* Silent drops, counted: complete units that could not be made
	 * evictable for lack of memory (they stay hot until their sequence
	 * closes; cache blocks that could not be made droppable stay until
	 * tkv_close); removed cold records whose slot could not be queued for
	 * reuse for lack of memory (the slot stays taken until a restart);
	 * header-zeroing writes of removed records that failed (the slot is
	 * reused anyway; recovery tells records apart by their seqno). */
	uint64_t units_unevictable;
	uint64_t cold_slots_leaked;
	uint64_t cold_invalidate_errors;

	/* Prefix cache (all 0 without config.model_id). Blocks are whole
	 * blocks of all layers. */
	uint64_t cache_lookups;          /* prompts looked up (open, lookup) */
	uint64_t cache_lookup_blocks;    /* full blocks those prompts had */
	uint64_t cache_hit_blocks_hot;   /* matched blocks found in RAM */
	uint64_t cache_hit_blocks_cold;  /* matched blocks found only on SSD */
	uint64_t cache_published;        /* blocks that became cache entries */
	uint64_t cache_deduplicated;     /* blocks already cached: not kept twice */
	uint64_t cache_publish_skipped;  /* blocks that could not be published */
	uint64_t cache_entries_hot;      /* entries now with every layer in RAM */
	uint64_t cache_entries_cold;     /* entries now with a cold record */
	uint64_t cache_bytes_hot;
	uint64_t cache_bytes_cold;
	uint64_t cache_dropped_hot;      /* unreferenced entries dropped for RAM */
	uint64_t cache_dropped_cold;     /* ... for SSD space */
	uint64_t cache_dropped_other;    /* tkv_cache_drop, unreadable records */
	uint64_t cache_recovered;        /* entries rebuilt from the cold tier */
	/* Entries with every layer in RAM AND a cold record (counted in both
	 * cache_entries_hot and cache_entries_cold): copies that hold the
	 * space of two blocks for one. */
	uint64_t cache_entries_hot_cold;
	/* Cache records given up when their block came back to RAM whole:
	 * the tiers hold a cache block once, not twice (not a drop: the
	 * block stays cached, in RAM). */
	uint64_t cache_records_released;

	/* Shared tier (all 0 without one). Blocks are whole blocks. */
	uint64_t cache_hit_blocks_shared; /* blocks attached from the shared tier */
	uint64_t shared_fetch_blocks;     /* blocks asked of the cluster */
	uint64_t shared_fetch_hits;       /* fetched and verified */
	uint64_t shared_fetch_misses;     /* absent, or the cluster failed */
	uint64_t shared_fetch_corrupt;    /* present but failed verification */
	uint64_t shared_writes_queued;    /* blocks handed to the writer */
	uint64_t shared_writes_stored;    /* SET NX stored them */
	uint64_t shared_writes_existed;   /* the cluster had them already */
	uint64_t shared_writes_failed;    /* the cluster failed the write */
	uint64_t shared_writes_dropped;   /* not written: queue full or no memory */
	uint64_t shared_bytes_sent;       /* values */
	uint64_t shared_bytes_received;
	uint64_t shared_err_timeout;      /* commands that timed out */
	uint64_t shared_err_conn;         /* connection refused, reset, lost */
	uint64_t shared_err_down;         /* skipped: node marked down */
	uint64_t shared_err_busy;         /* TRYAGAIN, LOADING, CLUSTERDOWN */
	uint64_t shared_err_oom;          /* OOM (server full, noeviction) */
	uint64_t shared_err_other;        /* other error replies, redirect limit, too big */
	uint64_t shared_moved;            /* -MOVED redirections followed */
	uint64_t shared_ask;              /* -ASK redirections followed */
	uint64_t shared_map_refreshes;
	uint32_t shared_nodes_up;
	uint32_t shared_nodes_down;

	/* Stores and promotions that found the hot tier too full and waited
	 * for the evictor to write records (with a prefix cache the automatic
	 * watermarks keep RAM full, so this is how often its room was made on
	 * demand: tkv_config_watermarks), and their total wait. */
	uint64_t hot_space_waits;
	uint64_t hot_space_wait_ns;

	/* Of promoted_blocks, those read by tkv_prefetch whose checksum a
	 * thread waiting for a block (in a view or read) verified instead of
	 * sleeping; the prefetch thread verified the rest of the prefetched
	 * ones itself. */
	uint64_t promote_verified_by_readers;

	/* Of the records the evictor wrote (or tried to), those it copied into
	 * a staging buffer first because their blocks could not be written
	 * where they are: a geometry whose layer block is not a multiple of
	 * 4 KiB, or a block not 4 KiB aligned. The others went to the SSD
	 * straight from RAM; a staged record costs the evictor a copy of it. */
	uint64_t evict_records_staged;

	/* Batches a worker copied out of another worker's queue because its
	 * own was empty (their owner completed them, in order): how much the
	 * workers' shares of the CPU differed. Counted in the thief's
	 * workers[].batches. */
	uint64_t batches_stolen;

	/* The groups those were taken in: a thief takes at most 16 batches or
	 * 256 KiB of K+V at once (the first batch past 256 KiB ends the
	 * group), so the owner, which may be busy only for a moment, is left
	 * the rest. batches_stolen / steal_groups is the mean group. */
	uint64_t steal_groups;

	/* Stores copied by the engine thread waiting on their ticket (tkv_wait)
	 * rather than by a worker: counted in no workers[] entry, so the
	 * layer-tokens copied in all are the workers' tokens_stored plus
	 * waiter_tokens_stored. */
	uint64_t waiter_batches;
	uint64_t waiter_tokens_stored;
	uint64_t waiter_bytes_stored;

	/* Batches a worker copied from its own queue ahead of their turn,
	 * because the batch at the front was being copied by another thread
	 * (a thief worker or a waiter); completed then if their (sequence,
	 * layer) allowed it, else in order. Counted in the worker's own
	 * workers[].batches. */
	uint64_t batches_copied_ahead;

	/* CPU time the evictor and the prefetch thread have used since open
	 * (each thread's CPU clock; 0 without a cold tier). Each is one
	 * thread, so a rate near 1 s per second means that thread is what
	 * limits eviction or tkv_prefetch, e.g. on an SSD faster than its
	 * checksums and submits keep up with. Divided by evicted_bytes or
	 * promoted_bytes: the CPU cost per byte (tierkv-bench evict). */
	uint64_t evictor_cpu_ns;
	uint64_t prefetch_cpu_ns;
} tkv_stats;

/* A snapshot of the counters (each read atomically; not a consistent cut
 * across counters). Any thread. */
TKV_API int tkv_stats_get(tkv_runtime *rt, tkv_stats *out);

/* Blocks currently held by a sequence across all layers, and its tokens per
 * layer (the minimum over layers of what completed). -ENOENT if unknown. */
TKV_API int tkv_seq_info(tkv_runtime *rt, uint64_t seq_id, uint64_t *blocks,
			 uint64_t *tokens);

/* ---- Metrics ------------------------------------------------------------ */

/*
 * Formats the runtime's stats in the Prometheus text exposition format
 * (version 0.0.4): `tierkv_`-prefixed counters (ending in _total) and gauges,
 * each with HELP and TYPE lines, per-worker series labelled worker="N". An
 * engine serves the text from its own /metrics endpoint.
 * Writes at most len bytes including the terminating NUL. Returns the length
 * of the text (without the NUL); if that is >= len the text was cut short
 * and the call should be repeated with a buffer of at least the returned
 * length + 1 (so `tkv_metrics_prometheus(rt, NULL, 0)` sizes it). Negative
 * errno on error. Any thread.
 */
TKV_API int64_t tkv_metrics_prometheus(tkv_runtime *rt, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* TIERKV_H */
