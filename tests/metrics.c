/*
 * metrics.c - the Prometheus exposition text: every sample line parses as
 * `name{labels} value`, is tierkv_-prefixed, follows its own HELP and TYPE
 * lines, counters end in _total, and every sample's value is the tkv_stats
 * field it exposes (and there is no sample the table below does not name).
 * The run makes those fields non-zero and different from one another, so a
 * metric that showed the wrong field would not match by chance.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h" /* tkv__test_pause */
#include "tierkv.h"

/* Parses one sample line; returns 0 and the name (without labels). */
static int parse_sample(const char *line, char *name, size_t nlen, unsigned long long *value)
{
	size_t i = 0;
	while (line[i] && (isalnum((unsigned char)line[i]) || line[i] == '_') && i + 1 < nlen) {
		name[i] = line[i];
		i++;
	}
	name[i] = '\0';
	if (i == 0)
		return -1;
	const char *p = line + i;
	if (*p == '{') {
		const char *close = strchr(p, '}');
		if (!close || !strstr(p, "=\""))
			return -1;
		p = close + 1;
	}
	if (*p != ' ')
		return -1;
	char *end;
	*value = strtoull(p + 1, &end, 10);
	if (end == p + 1)
		return -1;
	if (*end == '.') { /* seconds: whole seconds in *value */
		const char *frac = ++end;
		while (*end >= '0' && *end <= '9')
			end++;
		if (end == frac)
			return -1;
	}
	return *end != '\0' ? -1 : 0;
}

static void check_text(char *text)
{
	char help_for[128] = "", type_for[128] = "", type[16] = "";
	int samples = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (sscanf(line, "# HELP %127s", help_for) == 1)
			continue;
		if (sscanf(line, "# TYPE %127s %15s", type_for, type) == 2) {
			cr_assert_str_eq(type_for, help_for, "TYPE follows its HELP");
			cr_assert(!strcmp(type, "counter") || !strcmp(type, "gauge"), "%s", type);
			continue;
		}
		char name[128];
		unsigned long long v;
		cr_assert_eq(parse_sample(line, name, sizeof(name), &v), 0, "bad line '%s'", line);
		cr_assert_str_eq(name, type_for, "sample %s under TYPE %s", name, type_for);
		cr_assert(!strncmp(name, "tierkv_", 7));
		if (!strcmp(type, "counter"))
			cr_assert(strstr(name, "_total"), "counter %s must end in _total", name);
		samples++;
	}
	cr_assert_gt(samples, 10);
}

/* One expected sample: its name with labels, and the stats value. */
typedef struct want {
	char key[96];
	unsigned long long value;
	bool seen;
} want;

/* Room for the table below; add fails the test rather than write past it. */
enum { MAX_WANT = 128 };

static int add(want *w, int n, unsigned long long value, const char *fmt, unsigned worker)
{
	cr_assert_lt(n, MAX_WANT, "the expected-metrics table needs more than %d rows", MAX_WANT);
	snprintf(w[n].key, sizeof(w[n].key), fmt, worker);
	w[n].value = value;
	w[n].seen = false;
	return n + 1;
}

/* The table: every metric and the tkv_stats field it exposes. */
static int expected(const tkv_stats *st, want *w)
{
	int n = 0;
	for (unsigned i = 0; i < st->n_workers; i++) {
		n = add(w, n, st->workers[i].tokens_stored, "tierkv_tokens_stored_total{worker=\"%u\"}", i);
		n = add(w, n, st->workers[i].bytes_stored, "tierkv_bytes_stored_total{worker=\"%u\"}", i);
		n = add(w, n, st->workers[i].batches, "tierkv_batches_total{worker=\"%u\"}", i);
	}
	n = add(w, n, st->ring_full_events, "tierkv_ring_full_total", 0);
	n = add(w, n, st->enospc_events, "tierkv_hot_full_total", 0);
	n = add(w, n, st->hot_bytes_used, "tierkv_hot_bytes_used", 0);
	n = add(w, n, st->hot_bytes_capacity, "tierkv_hot_bytes_capacity", 0);
	n = add(w, n, st->pinned_blocks, "tierkv_pinned_blocks", 0);
	n = add(w, n, st->open_sequences, "tierkv_open_sequences", 0);
	n = add(w, n, st->n_workers, "tierkv_workers", 0);
	n = add(w, n, st->pin_failures, "tierkv_worker_pin_failures", 0);
	n = add(w, n, st->batches_stolen, "tierkv_batches_stolen_total", 0);
	n = add(w, n, st->steal_groups, "tierkv_steal_groups_total", 0);
	n = add(w, n, st->waiter_batches, "tierkv_waiter_batches_total", 0);
	n = add(w, n, st->waiter_tokens_stored, "tierkv_waiter_tokens_stored_total", 0);
	n = add(w, n, st->waiter_bytes_stored, "tierkv_waiter_bytes_stored_total", 0);
	n = add(w, n, st->batches_copied_ahead, "tierkv_batches_copied_ahead_total", 0);
	/* cold tier and silent drops (runtime/metrics.c cold_tier) */
	n = add(w, n, st->evicted_blocks, "tierkv_evicted_blocks_total", 0);
	n = add(w, n, st->evicted_bytes, "tierkv_evicted_bytes_total", 0);
	n = add(w, n, st->promoted_blocks, "tierkv_promoted_blocks_total", 0);
	n = add(w, n, st->promoted_bytes, "tierkv_promoted_bytes_total", 0);
	n = add(w, n, st->promote_verified_by_readers, "tierkv_promote_verified_by_readers_total", 0);
	n = add(w, n, st->evict_records_staged, "tierkv_evict_records_staged_total", 0);
	/* seconds: whole ones compared, as below (a thread's CPU clock moves
	 * between the two snapshots, by far less than a second here) */
	n = add(w, n, st->evictor_cpu_ns / 1000000000u, "tierkv_evictor_cpu_seconds_total", 0);
	n = add(w, n, st->prefetch_cpu_ns / 1000000000u, "tierkv_prefetch_cpu_seconds_total", 0);
	n = add(w, n, st->io_errors_enospc, "tierkv_cold_enospc_total", 0);
	n = add(w, n, st->io_errors_eio, "tierkv_cold_eio_total", 0);
	n = add(w, n, st->io_errors_short, "tierkv_cold_short_io_total", 0);
	n = add(w, n, st->corrupt_records, "tierkv_cold_corrupt_records_total", 0);
	n = add(w, n, st->cold_bytes_used, "tierkv_cold_bytes_used", 0);
	n = add(w, n, st->cold_bytes_capacity, "tierkv_cold_bytes_capacity", 0);
	n = add(w, n, st->evictor_queue_depth, "tierkv_evictor_queue_depth", 0);
	n = add(w, n, st->hot_space_waits, "tierkv_hot_space_waits_total", 0);
	/* seconds with 9 decimals: the parse below keeps the whole seconds */
	n = add(w, n, st->hot_space_wait_ns / 1000000000u, "tierkv_hot_space_wait_seconds_total", 0);
	n = add(w, n, st->units_unevictable, "tierkv_units_unevictable_total", 0);
	n = add(w, n, st->cold_slots_leaked, "tierkv_cold_slots_leaked_total", 0);
	n = add(w, n, st->cold_invalidate_errors, "tierkv_cold_invalidate_errors_total", 0);
	/* prefix cache (runtime/metrics.c prefix_cache) */
	n = add(w, n, st->cache_lookups, "tierkv_cache_lookups_total", 0);
	n = add(w, n, st->cache_lookup_blocks, "tierkv_cache_lookup_blocks_total", 0);
	n = add(w, n, st->cache_hit_blocks_hot, "tierkv_cache_hit_blocks_hot_total", 0);
	n = add(w, n, st->cache_hit_blocks_cold, "tierkv_cache_hit_blocks_cold_total", 0);
	n = add(w, n, st->cache_published, "tierkv_cache_published_total", 0);
	n = add(w, n, st->cache_deduplicated, "tierkv_cache_deduplicated_total", 0);
	n = add(w, n, st->cache_publish_skipped, "tierkv_cache_publish_skipped_total", 0);
	n = add(w, n, st->cache_entries_hot, "tierkv_cache_entries_hot", 0);
	n = add(w, n, st->cache_entries_cold, "tierkv_cache_entries_cold", 0);
	n = add(w, n, st->cache_bytes_hot, "tierkv_cache_bytes_hot", 0);
	n = add(w, n, st->cache_bytes_cold, "tierkv_cache_bytes_cold", 0);
	n = add(w, n, st->cache_dropped_hot, "tierkv_cache_dropped_hot_total", 0);
	n = add(w, n, st->cache_dropped_cold, "tierkv_cache_dropped_cold_total", 0);
	n = add(w, n, st->cache_dropped_other, "tierkv_cache_dropped_other_total", 0);
	n = add(w, n, st->cache_recovered, "tierkv_cache_recovered_total", 0);
	/* shared tier (runtime/metrics.c shared_tier; all 0 here: no cluster,
	 * tests/shared_tier.c checks values from a real one) */
	n = add(w, n, st->cache_hit_blocks_shared, "tierkv_cache_hit_blocks_shared_total", 0);
	n = add(w, n, st->shared_fetch_blocks, "tierkv_shared_fetch_blocks_total", 0);
	n = add(w, n, st->shared_fetch_hits, "tierkv_shared_fetch_hits_total", 0);
	n = add(w, n, st->shared_fetch_misses, "tierkv_shared_fetch_misses_total", 0);
	n = add(w, n, st->shared_fetch_corrupt, "tierkv_shared_fetch_corrupt_total", 0);
	n = add(w, n, st->shared_writes_queued, "tierkv_shared_writes_queued_total", 0);
	n = add(w, n, st->shared_writes_stored, "tierkv_shared_writes_stored_total", 0);
	n = add(w, n, st->shared_writes_existed, "tierkv_shared_writes_existed_total", 0);
	n = add(w, n, st->shared_writes_failed, "tierkv_shared_writes_failed_total", 0);
	n = add(w, n, st->shared_writes_dropped, "tierkv_shared_writes_dropped_total", 0);
	n = add(w, n, st->shared_bytes_sent, "tierkv_shared_bytes_sent_total", 0);
	n = add(w, n, st->shared_bytes_received, "tierkv_shared_bytes_received_total", 0);
	n = add(w, n, st->shared_err_timeout, "tierkv_shared_errors_timeout_total", 0);
	n = add(w, n, st->shared_err_conn, "tierkv_shared_errors_connection_total", 0);
	n = add(w, n, st->shared_err_down, "tierkv_shared_errors_node_down_total", 0);
	n = add(w, n, st->shared_err_busy, "tierkv_shared_errors_busy_total", 0);
	n = add(w, n, st->shared_err_oom, "tierkv_shared_errors_oom_total", 0);
	n = add(w, n, st->shared_err_other, "tierkv_shared_errors_other_total", 0);
	n = add(w, n, st->shared_moved, "tierkv_shared_moved_total", 0);
	n = add(w, n, st->shared_ask, "tierkv_shared_ask_total", 0);
	n = add(w, n, st->shared_map_refreshes, "tierkv_shared_map_refreshes_total", 0);
	n = add(w, n, st->shared_nodes_up, "tierkv_shared_nodes_up", 0);
	n = add(w, n, st->shared_nodes_down, "tierkv_shared_nodes_down", 0);
	return n;
}

/* Every sample line of text is in w with the same value, and every entry
 * of w has its sample. */
static void expect_samples_match(const char *text, want *w, int n)
{
	char *copy = strdup(text), *save = NULL;
	int samples = 0;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		char *sp = strrchr(line, ' ');
		cr_assert_not_null(sp, "bad line '%s'", line);
		*sp = '\0';
		unsigned long long v = strtoull(sp + 1, NULL, 10);
		int i = 0;
		while (i < n && strcmp(w[i].key, line) != 0)
			i++;
		cr_assert_lt(i, n, "sample %s exposes no known tkv_stats field", line);
		cr_assert_not(w[i].seen, "sample %s twice", line);
		cr_assert_eq(v, w[i].value, "%s is %llu, tkv_stats says %llu", line, v, w[i].value);
		w[i].seen = true;
		samples++;
	}
	for (int i = 0; i < n; i++)
		cr_assert(w[i].seen, "no sample %s", w[i].key);
	cr_assert_eq(samples, n);
	free(copy);
}

/* Fills the counters with different non-zero values: the workers copy
 * different amounts (worker 0 owns layers 0 and 2, worker 1 layers 1 and 3),
 * 3 stores find the ring full, 5 find the hot tier full, 1 block is pinned,
 * 4 sequences are open. */
static void make_counters_differ(tkv_runtime *rt, const tkv_config *c, tkv_view *view)
{
	size_t row = (size_t)c->n_kv_heads * c->head_dim * sizeof(float);
	uint64_t hot_blocks = c->hot_bytes / (2 * c->block_tokens * row);
	uint32_t huge = (uint32_t)((hot_blocks + 1) * c->block_tokens);
	float *kv = calloc(huge, row);
	int ring_full = 0;
	for (uint64_t s = 1; s <= 4; s++)
		cr_assert_eq(tkv_seq_open(rt, s), 0);
	cr_assert_eq(tkv_store(rt, 1, 0, 0, 3, kv, kv, 0, NULL), 0);
	cr_assert_eq(tkv_store(rt, 1, 0, 3, 5, kv, kv, 0, NULL), 0);
	cr_assert_eq(tkv_store(rt, 1, 1, 0, 7, kv, kv, 0, NULL), 0);
	cr_assert_eq(tkv_store(rt, 1, 2, 0, 1, kv, kv, 0, NULL), 0);
	cr_assert_eq(tkv_seq_sync(rt, 1), 0);
	/* ring_slots 4 holds 3 stores while the workers are paused */
	tkv__test_pause(rt, true);
	for (uint64_t pos = 0; ring_full < 3;) {
		int rc = tkv_store(rt, 2, 3, pos, 2, kv, kv, TKV_STORE_NONBLOCK, NULL);
		cr_assert(rc == 0 || rc == -EAGAIN, "%d", rc);
		if (rc == 0)
			pos += 2;
		else
			ring_full++;
	}
	tkv__test_pause(rt, false);
	cr_assert_eq(tkv_seq_sync(rt, 2), 0);
	for (int i = 0; i < 5; i++) /* one block more than the whole hot tier */
		cr_assert_eq(tkv_store(rt, 3, 0, 0, huge, kv, kv, 0, NULL), -ENOSPC);
	free(kv);
	cr_assert_eq(tkv_view_acquire(rt, 1, 0, 0, 8, view), 0);
}

Test(metrics, prometheus_text_parses_and_matches_stats)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = 4;
	c.n_kv_heads = 1;
	c.head_dim = 16;
	c.dtype = TKV_DTYPE_F32;
	c.hot_bytes = 1 << 20;
	c.n_workers = 2;
	c.ring_slots = 4;
	c.pin_workers = false;
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	tkv_view_block blocks[4];
	tkv_view view = {.struct_size = sizeof(view), .blocks = blocks, .max_blocks = 4};
	make_counters_differ(rt, &c, &view);

	int64_t need = tkv_metrics_prometheus(rt, NULL, 0);
	cr_assert_gt(need, 0);
	char small[32];
	cr_assert_eq(tkv_metrics_prometheus(rt, small, sizeof(small)), need, "size is reported");
	cr_assert_eq(strlen(small), sizeof(small) - 1, "cut short, still terminated");
	char *text = malloc((size_t)need + 1);
	cr_assert_eq(tkv_metrics_prometheus(rt, text, (size_t)need + 1), need);

	/* nothing runs now: the stats are the values the text was made from */
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_eq(st.ring_full_events, 3);
	cr_assert_eq(st.enospc_events, 5);
	cr_assert_eq(st.pinned_blocks, 1);
	cr_assert_eq(st.open_sequences, 4);
	cr_assert_neq(st.workers[0].tokens_stored, st.workers[1].tokens_stored);
	cr_assert_neq(st.workers[0].batches, st.workers[1].batches);
	cr_assert(st.hot_bytes_used > 0 && st.hot_bytes_used < st.hot_bytes_capacity);
	want w[MAX_WANT];
	int n = expected(&st, w);
	expect_samples_match(text, w, n);
	check_text(text);
	free(text);
	cr_assert_eq(tkv_metrics_prometheus(NULL, NULL, 0), -EINVAL);
	cr_assert_eq(tkv_view_release(rt, &view), 0);
	tkv_close(rt);
}
