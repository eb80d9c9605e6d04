/*
 * stats.c - tkv_stats_get and tkv_seq_info: snapshots of counters that other
 * threads update; each counter is read atomically on its own.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>

#include "base/error.h"
#include "base/struct_size.h"
#include "runtime/runtime.h"

/* The first released tkv_stats layout (0.1) ends at workers[]. */
#define TKV__STATS_FIRST_SIZE offsetof(tkv_stats, env_warning)

static void cache_stats(tkv__cache *c, tkv_stats *out)
{
	tkv__cache_stats cs;
	tkv__cache_stats_get(c, &cs);
	out->cache_lookups = cs.lookups;
	out->cache_lookup_blocks = cs.lookup_blocks;
	out->cache_hit_blocks_hot = cs.hit_blocks_hot;
	out->cache_hit_blocks_cold = cs.hit_blocks_cold;
	out->cache_published = cs.published;
	out->cache_deduplicated = cs.deduplicated;
	out->cache_publish_skipped = cs.publish_skipped;
	out->cache_entries_hot = cs.entries_hot;
	out->cache_entries_cold = cs.entries_cold;
	out->cache_bytes_hot = cs.bytes_hot;
	out->cache_bytes_cold = cs.bytes_cold;
	out->cache_dropped_hot = cs.dropped_hot;
	out->cache_dropped_cold = cs.dropped_cold;
	out->cache_dropped_other = cs.dropped_other;
	out->cache_recovered = cs.recovered;
	out->cache_entries_hot_cold = cs.entries_hot_cold;
	/* cache entries the drop policy could not take stay until close, as
	 * units the evictor's policy could not take stay hot: one counter */
	out->units_unevictable += cs.undroppable;
	out->cache_hit_blocks_shared = cs.hit_blocks_shared;
}

static void shared_stats(tkv__shared_tier *t, tkv_stats *out)
{
	tkv__shared_tier_stats s;
	tkv__shared_tier_stats_get(t, &s);
	out->shared_fetch_blocks = s.fetch_blocks;
	out->shared_fetch_hits = s.fetch_hits;
	out->shared_fetch_misses = s.fetch_misses;
	out->shared_fetch_corrupt = s.fetch_corrupt;
	out->shared_writes_queued = s.writes_queued;
	out->shared_writes_stored = s.writes_stored;
	out->shared_writes_existed = s.writes_existed;
	out->shared_writes_failed = s.writes_failed;
	out->shared_writes_dropped = s.writes_dropped;
	out->shared_bytes_sent = s.client.bytes_sent;
	out->shared_bytes_received = s.client.bytes_received;
	out->shared_err_timeout = s.client.err_timeout;
	out->shared_err_conn = s.client.err_conn;
	out->shared_err_down = s.client.err_down;
	out->shared_err_busy = s.client.err_busy;
	out->shared_err_oom = s.client.err_oom;
	out->shared_err_other = s.client.err_proto + s.client.err_redirect_limit +
				s.client.err_too_big;
	out->shared_moved = s.client.moved;
	out->shared_ask = s.client.ask;
	out->shared_map_refreshes = s.client.map_refreshes;
	out->shared_nodes_up = s.client.nodes_up;
	out->shared_nodes_down = s.client.nodes_down;
}

static void fill(tkv_runtime *rt, tkv_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->struct_size = sizeof(*out);
	out->n_workers = rt->n_workers;
	out->pin_failures = ck_pr_load_32(&rt->pin_failures);
	out->ring_full_events = ck_pr_load_64(&rt->ring_full_events);
	out->enospc_events = ck_pr_load_64(&rt->enospc_events);
	out->hot_blocks_used = tkv__hot_used(&rt->hot);
	out->hot_bytes_used = out->hot_blocks_used * rt->geo.block_bytes;
	out->hot_bytes_capacity = rt->geo.hot_blocks * rt->geo.block_bytes;
	out->pinned_blocks = ck_pr_load_64(&rt->pinned_blocks);
	out->open_sequences = ck_pr_load_64(&rt->seqs.count);
	out->topology_source = rt->topology_source;
	out->isa = rt->kern->isa;
	if (rt->ev)
		tkv__evictor_stats(rt->ev, out);
	for (uint32_t i = 0; i < rt->n_workers && i < TKV_STATS_MAX_WORKERS; i++) {
		tkv__worker *w = &rt->workers[i];
		out->workers[i] = (tkv_worker_stats){
			.tokens_stored = ck_pr_load_64(&w->tokens),
			.bytes_stored = ck_pr_load_64(&w->bytes),
			.batches = ck_pr_load_64(&w->batches),
			.cpu = (int32_t)ck_pr_load_32((uint32_t *)&w->cpu),
			.layers = w->n_layers_owned,
		};
	}
	for (uint32_t i = 0; i < rt->n_workers; i++) {
		out->batches_stolen += ck_pr_load_64(&rt->workers[i].stolen);
		out->steal_groups += ck_pr_load_64(&rt->workers[i].steal_groups);
		out->batches_copied_ahead += ck_pr_load_64(&rt->workers[i].copied_ahead);
	}
	out->waiter_batches = ck_pr_load_64(&rt->waiter_batches);
	out->waiter_tokens_stored = ck_pr_load_64(&rt->waiter_tokens);
	out->waiter_bytes_stored = ck_pr_load_64(&rt->waiter_bytes);
	out->env_warning = tkv__kernels_env_note();
	if (rt->cache)
		cache_stats(rt->cache, out);
	if (rt->shared)
		shared_stats(rt->shared, out);
}

int tkv_stats_get(tkv_runtime *rt, tkv_stats *out)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	if ((rc = tkv__struct_check(out, TKV__STATS_FIRST_SIZE, sizeof(tkv_stats),
				    TKV__STRUCT_OUT, "tkv_stats")))
		return rc;
	/* Filled in the library's own layout, then copied into the caller's:
	 * an older caller's smaller struct gets only the fields it has. */
	tkv_stats *full = malloc(sizeof(*full)); /* ~8 KiB: not on the stack */
	if (!full)
		return tkv__fail(-ENOMEM, "stats: out of memory");
	fill(rt, full);
	tkv__struct_put(out, full, sizeof(*full));
	free(full);
	return 0;
}

int tkv_seq_info(tkv_runtime *rt, uint64_t seq_id, uint64_t *blocks, uint64_t *tokens)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	tkv__seq *s = tkv__seq_get(&rt->seqs, seq_id);
	if (!s)
		return tkv__fail(-ENOENT, "seq_info: sequence %llu is not open",
				 (unsigned long long)seq_id);
	uint64_t nb = 0, min_done = UINT64_MAX;
	for (uint32_t i = 0; i < s->n_layers; i++) {
		uint64_t done = ck_pr_load_64(&s->layers[i].done_pos);
		nb += tkv__blocks_for(done, rt->cfg.block_tokens);
		if (done < min_done)
			min_done = done;
	}
	tkv__seq_put(s);
	if (blocks)
		*blocks = nb;
	if (tokens)
		*tokens = min_done;
	return 0;
}
