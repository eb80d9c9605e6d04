/*
 * metrics.c - tkv_stats in the Prometheus text exposition format, so an
 * engine can publish the runtime's counters from its own /metrics endpoint
 * without knowing their names.
 */
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/error.h"
#include "runtime/runtime.h"

/* Appends to a bounded buffer, counting what would have been written. */
typedef struct out {
	char *buf;
	size_t len, used;
} out;

__attribute__((format(printf, 2, 3))) static void put(out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = o->used < o->len ? o->len - o->used : 0;
	int n = vsnprintf(room ? o->buf + o->used : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->used += (size_t)n;
}

static void head(out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP tierkv_%s %s\n# TYPE tierkv_%s %s\n", name, help, name, type);
}

static void one(out *o, const char *name, const char *type, const char *help, uint64_t v)
{
	head(o, name, type, help);
	put(o, "tierkv_%s %llu\n", name, (unsigned long long)v);
}

/* A counter of nanoseconds, exposed in seconds as Prometheus expects. */
static void one_seconds(out *o, const char *name, const char *help, uint64_t ns)
{
	head(o, name, "counter", help);
	put(o, "tierkv_%s %llu.%09llu\n", name, (unsigned long long)(ns / 1000000000u),
	    (unsigned long long)(ns % 1000000000u));
}

typedef uint64_t (*worker_field)(const tkv_worker_stats *w);
static uint64_t w_tokens(const tkv_worker_stats *w) { return w->tokens_stored; }
static uint64_t w_bytes(const tkv_worker_stats *w) { return w->bytes_stored; }
static uint64_t w_batches(const tkv_worker_stats *w) { return w->batches; }

static void per_worker(out *o, const tkv_stats *st, const char *name, const char *help,
		       worker_field f)
{
	head(o, name, "counter", help);
	for (uint32_t i = 0; i < st->n_workers && i < TKV_STATS_MAX_WORKERS; i++)
		put(o, "tierkv_%s{worker=\"%u\"} %llu\n", name, i,
		    (unsigned long long)f(&st->workers[i]));
}

/* The cold tier's counters (all 0 without one) and the silent drops. */
static void cold_tier(out *o, const tkv_stats *st)
{
	one(o, "evicted_blocks_total", "counter", "Block positions (all layers) evicted to the cold tier.",
	    st->evicted_blocks);
	one(o, "evicted_bytes_total", "counter", "Bytes of cold records written.", st->evicted_bytes);
	one(o, "promoted_blocks_total", "counter", "Layer blocks read back into the hot tier.",
	    st->promoted_blocks);
	one(o, "promoted_bytes_total", "counter", "Bytes read back into the hot tier.",
	    st->promoted_bytes);
	one(o, "promote_verified_by_readers_total", "counter",
	    "Prefetched layer blocks whose checksum a waiting reader verified.",
	    st->promote_verified_by_readers);
	one_seconds(o, "evictor_cpu_seconds_total",
		    "CPU time of the evictor thread (one thread: near 1 s/s it limits eviction).",
		    st->evictor_cpu_ns);
	one_seconds(o, "prefetch_cpu_seconds_total",
		    "CPU time of the prefetch thread (one thread: near 1 s/s it limits prefetching).",
		    st->prefetch_cpu_ns);
	one(o, "evict_records_staged_total", "counter",
	    "Records copied into a staging buffer before their write (blocks not writable in place).",
	    st->evict_records_staged);
	one(o, "cold_enospc_total", "counter", "Record writes refused: disk or segments full.",
	    st->io_errors_enospc);
	one(o, "cold_eio_total", "counter", "Record writes or reads that failed.", st->io_errors_eio);
	one(o, "cold_short_io_total", "counter", "Short record writes or reads.", st->io_errors_short);
	one(o, "cold_corrupt_records_total", "counter", "Records that failed their checksum (dropped).",
	    st->corrupt_records);
	one(o, "cold_bytes_used", "gauge", "Bytes of cold-tier records.", st->cold_bytes_used);
	one(o, "cold_bytes_capacity", "gauge", "Cold-tier capacity in bytes.", st->cold_bytes_capacity);
	one(o, "evictor_queue_depth", "gauge", "Record writes in flight.", st->evictor_queue_depth);
	one(o, "hot_space_waits_total", "counter",
	    "Stores and promotions that waited for the evictor to make room.", st->hot_space_waits);
	one_seconds(o, "hot_space_wait_seconds_total", "Time they waited.", st->hot_space_wait_ns);
	one(o, "units_unevictable_total", "counter",
	    "Complete units that could not be made evictable (out of memory).", st->units_unevictable);
	one(o, "cold_slots_leaked_total", "counter",
	    "Removed records whose slot could not be queued for reuse (out of memory).",
	    st->cold_slots_leaked);
	one(o, "cold_invalidate_errors_total", "counter",
	    "Header-zeroing writes of removed records that failed.", st->cold_invalidate_errors);
}

/* A uint64_t field of tkv_stats exposed as one sample. */
typedef struct metric_def {
	const char *name, *type, *help;
	size_t off;
} metric_def;
#define M(n, t, h, f) {n, t, h, offsetof(tkv_stats, f)}

static void table(out *o, const tkv_stats *st, const metric_def *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		one(o, m[i].name, m[i].type, m[i].help,
		    *(const uint64_t *)((const char *)st + m[i].off));
}

/* The prefix cache's counters and gauges (all 0 without one). */
static void prefix_cache(out *o, const tkv_stats *st)
{
	static const metric_def m[] = {
		M("cache_lookups_total", "counter", "Prompts looked up in the prefix cache.",
		  cache_lookups),
		M("cache_lookup_blocks_total", "counter", "Full blocks of the prompts looked up.",
		  cache_lookup_blocks),
		M("cache_hit_blocks_hot_total", "counter", "Matched blocks found in RAM.",
		  cache_hit_blocks_hot),
		M("cache_hit_blocks_cold_total", "counter", "Matched blocks found only on SSD.",
		  cache_hit_blocks_cold),
		M("cache_published_total", "counter", "Blocks that became cache entries.",
		  cache_published),
		M("cache_deduplicated_total", "counter", "Blocks already cached, not kept twice.",
		  cache_deduplicated),
		M("cache_publish_skipped_total", "counter", "Blocks that could not be published.",
		  cache_publish_skipped),
		M("cache_entries_hot", "gauge", "Cache entries with every layer in RAM.",
		  cache_entries_hot),
		M("cache_entries_cold", "gauge", "Cache entries with a cold record.",
		  cache_entries_cold),
		M("cache_bytes_hot", "gauge", "Bytes of cache entries in RAM.", cache_bytes_hot),
		M("cache_bytes_cold", "gauge", "Bytes of cache entries on SSD.", cache_bytes_cold),
		M("cache_dropped_hot_total", "counter", "Unreferenced entries dropped for RAM.",
		  cache_dropped_hot),
		M("cache_dropped_cold_total", "counter", "Unreferenced entries dropped for SSD space.",
		  cache_dropped_cold),
		M("cache_dropped_other_total", "counter",
		  "Entries dropped by tkv_cache_drop or unreadable at recovery.", cache_dropped_other),
		M("cache_recovered_total", "counter", "Entries rebuilt from the cold tier at open.",
		  cache_recovered),
	};
	table(o, st, m, sizeof(m) / sizeof(m[0]));
}

/* The shared tier's counters and gauges (all 0 without one). */
static void shared_tier(out *o, const tkv_stats *st)
{
	static const metric_def m[] = {
		M("cache_hit_blocks_shared_total", "counter",
		  "Blocks attached from the shared tier.", cache_hit_blocks_shared),
		M("shared_fetch_blocks_total", "counter", "Blocks asked of the shared tier.",
		  shared_fetch_blocks),
		M("shared_fetch_hits_total", "counter", "Blocks fetched and verified.",
		  shared_fetch_hits),
		M("shared_fetch_misses_total", "counter",
		  "Fetches that found no block or failed (see the error counters).",
		  shared_fetch_misses),
		M("shared_fetch_corrupt_total", "counter",
		  "Fetched values that failed verification (never used).", shared_fetch_corrupt),
		M("shared_writes_queued_total", "counter", "Blocks handed to the shared-tier writer.",
		  shared_writes_queued),
		M("shared_writes_stored_total", "counter", "Blocks the shared tier stored.",
		  shared_writes_stored),
		M("shared_writes_existed_total", "counter", "Blocks the shared tier already held.",
		  shared_writes_existed),
		M("shared_writes_failed_total", "counter", "Writes the shared tier failed.",
		  shared_writes_failed),
		M("shared_writes_dropped_total", "counter",
		  "Blocks not written: queue full or out of memory.", shared_writes_dropped),
		M("shared_bytes_sent_total", "counter", "Value bytes sent to the shared tier.",
		  shared_bytes_sent),
		M("shared_bytes_received_total", "counter", "Value bytes received from the shared tier.",
		  shared_bytes_received),
		M("shared_errors_timeout_total", "counter", "Shared-tier commands that timed out.",
		  shared_err_timeout),
		M("shared_errors_connection_total", "counter",
		  "Shared-tier connections refused, reset or lost.", shared_err_conn),
		M("shared_errors_node_down_total", "counter",
		  "Shared-tier commands skipped: node marked down.", shared_err_down),
		M("shared_errors_busy_total", "counter", "TRYAGAIN, LOADING or CLUSTERDOWN replies.",
		  shared_err_busy),
		M("shared_errors_oom_total", "counter", "OOM replies (server full).", shared_err_oom),
		M("shared_errors_other_total", "counter",
		  "Other error replies, redirection limit, values too big.", shared_err_other),
		M("shared_moved_total", "counter", "MOVED redirections followed.", shared_moved),
		M("shared_ask_total", "counter", "ASK redirections followed.", shared_ask),
		M("shared_map_refreshes_total", "counter", "Slot map refreshes.",
		  shared_map_refreshes),
	};
	table(o, st, m, sizeof(m) / sizeof(m[0]));
	one(o, "shared_nodes_up", "gauge", "Shared-tier nodes reachable.", st->shared_nodes_up);
	one(o, "shared_nodes_down", "gauge", "Shared-tier nodes marked down.", st->shared_nodes_down);
}
#undef M

int64_t tkv_metrics_prometheus(tkv_runtime *rt, char *buf, size_t len)
{
	tkv_stats *st = malloc(sizeof(*st)); /* ~8 KiB: not on the caller's stack */
	if (!st)
		return tkv__fail(-ENOMEM, "metrics: out of memory");
	st->struct_size = sizeof(*st);
	int rc = tkv_stats_get(rt, st);
	if (rc) {
		free(st);
		return rc;
	}
	out o = {buf, buf ? len : 0, 0};
	per_worker(&o, st, "tokens_stored_total", "Layer-tokens copied into the hot tier.", w_tokens);
	per_worker(&o, st, "bytes_stored_total", "Bytes of K and V copied into the hot tier.", w_bytes);
	per_worker(&o, st, "batches_total", "Store batches copied by each worker.", w_batches);
	one(&o, "ring_full_total", "counter", "Stores that found their worker's ring full.",
	    st->ring_full_events);
	one(&o, "hot_full_total", "counter", "Stores refused because the hot tier was full.",
	    st->enospc_events);
	one(&o, "hot_bytes_used", "gauge", "Bytes of hot-tier blocks in use.", st->hot_bytes_used);
	one(&o, "hot_bytes_capacity", "gauge", "Hot-tier capacity in bytes.", st->hot_bytes_capacity);
	one(&o, "pinned_blocks", "gauge", "Hot blocks pinned by views.", st->pinned_blocks);
	one(&o, "open_sequences", "gauge", "Sequences open.", st->open_sequences);
	one(&o, "workers", "gauge", "Worker threads.", st->n_workers);
	one(&o, "worker_pin_failures", "gauge", "Workers that could not be pinned to a core.",
	    st->pin_failures);
	one(&o, "batches_stolen_total", "counter",
	    "Batches a worker copied from another worker's queue (its own was empty).",
	    st->batches_stolen);
	one(&o, "steal_groups_total", "counter",
	    "Groups those stolen batches were taken in (at most 16 batches or 256 KiB each).",
	    st->steal_groups);
	one(&o, "waiter_batches_total", "counter",
	    "Store batches copied by the engine thread waiting on their ticket.",
	    st->waiter_batches);
	one(&o, "waiter_tokens_stored_total", "counter",
	    "Layer-tokens those waiters copied (in no worker's tokens_stored).",
	    st->waiter_tokens_stored);
	one(&o, "waiter_bytes_stored_total", "counter",
	    "Bytes of K and V those waiters copied.", st->waiter_bytes_stored);
	one(&o, "batches_copied_ahead_total", "counter",
	    "Batches a worker copied past the front of its queue while another thread copied that one.",
	    st->batches_copied_ahead);
	cold_tier(&o, st);
	prefix_cache(&o, st);
	shared_tier(&o, st);
	free(st);
	if (buf && len)
		buf[o.used < len ? o.used : len - 1] = '\0';
	return (int64_t)o.used;
}
