/*
 * runtime.c - tkv_open/tkv_close and sequence open/close: building and
 * tearing down everything the other runtime files share (runtime.h).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ck_pr.h>

#include "base/error.h"
#include "runtime/runtime.h"
#include "runtime/topology.h"

/* The last-level cache size from sysfs (index3), else glibc's figure, else
 * 32 MiB. sysfs first: under some hypervisors glibc reports an L3 several
 * times the real one (docs/MEASUREMENTS.md). */
static uint64_t llc_bytes(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
	unsigned long long kib = 0;
	if (f) {
		if (fscanf(f, "%lluK", &kib) != 1)
			kib = 0;
		fclose(f);
	}
	if (kib)
		return kib << 10;
	long l = sysconf(_SC_LEVEL3_CACHE_SIZE);
	return l > 0 ? (uint64_t)l : 32ull << 20;
}

/*
 * Copies into hot blocks use non-temporal stores, whatever their size, when
 * the hot tier is larger than the last-level cache: what decides it is the
 * destination footprint (blocks are written once and read much later, after
 * many other blocks), not the size of one copy. `tierkv-bench pipeline`
 * measured small batches clearly faster this way than with the kernels'
 * size threshold (which was measured on isolated copy loops), and large
 * batches the same (docs/MEASUREMENTS.md). A hot tier that fits in cache
 * keeps regular stores, so a read right after a store hits the cache.
 * The streaming copy is the unfenced one: the worker fences once per run
 * of descriptors before it completes them, and before it hands a full
 * block on (worker.c, "Groups").
 */
static void choose_hot_copy(tkv_runtime *rt, tkv__hot_copy_mode mode)
{
	rt->hot_streams = mode == TKV__HOT_COPY_AUTO ? rt->cfg.hot_bytes > llc_bytes()
						      : mode == TKV__HOT_COPY_STREAM;
	rt->hot_copy = rt->hot_streams ? rt->kern->copy_stream_unfenced : rt->kern->copy;
}

static uint32_t choose_workers(const tkv_config *c, const tkv__topology *topo)
{
	uint32_t n = c->n_workers ? c->n_workers : (uint32_t)topo->n_cpus;
	if (n > c->n_layers)
		n = c->n_layers; /* a worker without layers would only sleep */
	return n ? n : 1;
}

static void put_unit(void *ctx, tkv__unit *u)
{
	tkv_runtime *rt = ctx;
	tkv__unit_put(&rt->tiers, u);
}

/* Frees a sequence no one references any more: its table's references go
 * (units.h: an unshared, unpublished unit is freed in every tier). */
static void drop_seq(void *ctx, tkv__seq *s)
{
	tkv__seq_free(s, put_unit, ctx);
}

/* tkv__tier_env callbacks: what only the runtime knows. */

/* Stores accepted but not yet copied hold hot reservations for blocks of
 * units that are not complete yet: while any are pending, the evictor will
 * get victims soon, so a full hot tier is not final. A descriptor a worker
 * has dequeued but is still copying counts too (an empty ring is not
 * enough: tests/evictor.c full_hot_tier_waits_for_copies_in_progress), so
 * compare what producers have claimed (the ring's head, a running count
 * that includes a claim whose descriptor is still being written) with
 * what its owner has completed (`completed`, bumped after the copy,
 * whoever made it, and the tkv__unit_block_full of its full blocks). The
 * mutex queue (a bench baseline) keeps no such count: it never reports
 * copies pending. */
bool tkv__copies_pending(tkv_runtime *rt)
{
	if (rt->queue != TKV__QUEUE_RING)
		return false;
	for (uint32_t i = 0; i < rt->n_workers; i++) {
		tkv__worker *w = &rt->workers[i];
		if (tkv__dring_claimed(&w->ring) != ck_pr_load_64(&w->completed))
			return true;
	}
	/* A batch a waiter took counts in its owner's `completed` once the
	 * owner took its slot out, before the waiter completes it; the waiter
	 * counts itself in before that (copy_ahead.c). */
	ck_pr_fence_acquire();
	return ck_pr_load_32(&rt->waiters_open) != 0;
}

static bool copies_pending(void *ctx)
{
	return tkv__copies_pending(ctx);
}

static tkv__seq *seq_lookup(void *ctx, uint64_t id)
{
	tkv_runtime *rt = ctx;
	tkv__seq *s = tkv__seq_get(&rt->seqs, id);
	if (s && tkv__seq_editing(s)) {
		tkv__seq_put(s); /* its units are being swapped: skip it */
		return NULL;
	}
	return s;
}

static int open_cold_tier(tkv_runtime *rt, const tkv__open_opts *opts)
{
	tkv__tier_env env = {
		.cfg = &rt->cfg,
		.geo = &rt->geo,
		.hot = &rt->hot,
		.copy = rt->kern->copy,
		.tracer = rt->tracer,
		.tiers = &rt->tiers,
		.cold_io = opts->cold_io,
		.cold_force_pwrite = opts->cold_force_pwrite,
		.policy_ops = opts->evict_policy,
		.copies_pending = copies_pending,
		.seq_get = seq_lookup,
		.ctx = rt,
	};
	int rc = tkv__evictor_open(&env, &rt->ev);
	rt->tiers.ev = rt->ev;
	/* A runtime without the prefix cache keeps no cache records a
	 * previous run left: nothing could ever match or drop them. */
	if (!rc && !rt->cfg.model_id)
		tkv__cold_remove_seq(rt->ev->cold, TKV__CACHE_SEQ);
	return rc;
}

/* The prefix cache, and what a previous run left of it in the cold tier. */
static int open_cache(tkv_runtime *rt)
{
	const tkv_config *c = &rt->cfg;
	tkv__key ns = tkv__key_namespace(c->model_id, c->n_layers, c->n_kv_heads, c->head_dim,
					 c->dtype, c->block_tokens);
	/* The drop policy is the configured one; it is sized (ghost) for the
	 * blocks both tiers hold. */
	size_t unit_bytes = (size_t)c->n_layers * rt->geo.block_bytes;
	size_t expected = (size_t)(c->hot_bytes / unit_bytes) +
			  (size_t)(c->cold_dir ? c->cold_bytes / unit_bytes : 0);
	int rc = tkv__cache_open(&rt->tiers, ns, c->n_layers, c->block_tokens,
				 rt->geo.block_bytes,
				 c->policy == TKV_POLICY_LRU ? &tkv__policy_lru : &tkv__policy_s3fifo,
				 expected, &rt->cache);
	rt->tiers.cache = rt->cache;
	bool same = false;
	if (!rc && rt->ev && !(rc = tkv__cache_bind_dir(c->cold_dir, c->model_id, &same))) {
		if (!same) /* another model's (or unsure) records: drop them */
			tkv__cache_count_dropped(rt->cache,
						 tkv__cold_remove_seq(rt->ev->cold, TKV__CACHE_SEQ));
		rt->cache_dir_dirty = !same;
		rc = tkv__cache_recover(rt->cache, rt->ev->cold);
	}
	return rc;
}

/* The shared tier below the cache (needs the cache: config checked that). */
static int open_shared(tkv_runtime *rt)
{
	const tkv_config *c = &rt->cfg;
	tkv__shared_tier_cfg sc = {
		.client = {.seeds = c->shared_seeds,
			   .connect_timeout_ms = c->shared_connect_timeout_ms,
			   .op_timeout_ms = c->shared_timeout_ms},
		.ns = tkv__cache_ns(rt->cache),
		.crc = rt->kern->crc32c,
	};
	int rc = tkv__cold_layout_init(&sc.layout, c->n_layers, c->n_kv_heads, c->head_dim,
				       c->dtype, c->block_tokens, rt->geo.block_bytes);
	if (rc || (rc = tkv__shared_tier_open(&sc, &rt->shared)))
		return rc;
	tkv__cache_set_shared(rt->cache, rt->shared, c->shared_write == TKV_SHARED_WRITE_THROUGH);
	return 0;
}

static int open_workers(tkv_runtime *rt)
{
	tkv__topology *t = calloc(1, sizeof(*t)); /* ~4 KiB: not on the stack */
	if (!t)
		return tkv__fail(-ENOMEM, "open: topology");
	int rc = tkv__topology_detect(rt->cfg.sysfs_root, t);
	if (rc) {
		free(t);
		return rc;
	}
	rt->topology_source = t->source;
	rt->n_workers = choose_workers(&rt->cfg, t);
	/* one block pool per worker, before any worker can allocate */
	rc = tkv__hot_open(&rt->hot, rt->geo.hot_blocks, rt->geo.block_bytes, rt->n_workers);
	rt->tiers.hot = &rt->hot;
	if (!rc)
		rc = tkv__workers_start(rt, t->cpus, t->n_cpus);
	/* Each worker takes a CPU, pinned or not; ticket waiters may spin on
	 * the rest of the mask (completion.c, "Spinning"). */
	uint32_t allowed = t->n_allowed > 0 ? (uint32_t)t->n_allowed : 0;
	rt->wait_spin_cpus = allowed > rt->n_workers ? allowed - rt->n_workers : 0;
	/* and copy their own stores: one at a time at least (copy_ahead.c,
	 * "How many waiters copy at once") */
	rt->waiter_copy_max = rt->cfg.wait_copy == TKV_WAIT_COPY_ALL ? UINT32_MAX
			      : rt->wait_spin_cpus > 1			    ? rt->wait_spin_cpus
										    : 1;
	free(t);
	return rc;
}

int tkv_open(const tkv_config *cfg, tkv_runtime **out)
{
	return tkv__open_ex(cfg, NULL, out);
}

/* Undoes whatever part of tkv__open_ex succeeded, in reverse order; each
 * step is a no-op on what was never opened (the runtime starts zeroed). */
static void teardown(tkv_runtime *rt)
{
	/* Workers drain their rings before exiting, so every accepted store
	 * completes before its blocks are freed below. */
	tkv__workers_stop(rt);
	/* Records of sequences still open stay in the cold tier for a restart;
	 * their hot blocks are freed with the sequences below. */
	bool had_cold = rt->ev != NULL;
	tkv__evictor_close(rt->ev);
	rt->ev = NULL;
	rt->tiers.ev = NULL;
	/* every removal of the other model's cache records is durable now */
	if (had_cold && rt->cache && rt->cache_dir_dirty)
		(void)tkv__cache_seal_dir(rt->cfg.cold_dir, rt->cfg.model_id);
	if (rt->seqs_ready)
		tkv__seq_table_fini(&rt->seqs, drop_seq, rt);
	/* Without the evictor, freeing units leaves cold records alone: the
	 * cache's records stay for the next run to recover. */
	tkv__cache_close(rt->cache);
	rt->cache = NULL;
	rt->tiers.cache = NULL;
	/* after the cache: blocks dropped until now may still be queued for it */
	tkv__shared_tier_close(rt->shared);
	rt->shared = NULL;
	tkv__workers_free(rt);
	tkv__hot_close(&rt->hot);
}

int tkv__open_ex(const tkv_config *cfg, const tkv__open_opts *opts, tkv_runtime **out)
{
	static const tkv__open_opts defaults = {.queue = TKV__QUEUE_RING};
	if (!opts)
		opts = &defaults;
	if (!out)
		return tkv__fail(-EINVAL, "open: NULL out");
	*out = NULL;
	tkv_runtime *rt = aligned_alloc(64, sizeof(*rt));
	if (!rt)
		return tkv__fail(-ENOMEM, "open: runtime");
	memset(rt, 0, sizeof(*rt));
	rt->queue = opts->queue;
	rt->room_nap_ns = opts->room_nap_ns ? opts->room_nap_ns : TKV__ROOM_NAP_NS;
	int rc = tkv__config_load(cfg, &rt->cfg, &rt->geo);
	if (rc)
		goto fail;
	rt->waiter_copies = rt->cfg.wait_copy != TKV_WAIT_SLEEP;
	rt->kern = tkv__kernels_get(rt->cfg.max_isa);
	choose_hot_copy(rt, opts->hot_copy);
	if ((rc = tkv__tracer_open(rt->cfg.trace_path, NULL, &rt->tracer)))
		goto fail;
	if ((rc = tkv__seq_table_init(&rt->seqs))) {
		rc = tkv__fail(rc, "open: sequence table");
		goto fail;
	}
	rt->seqs_ready = true;
	if ((rc = open_workers(rt)))
		goto fail;
	if (rt->cfg.cold_dir && (rc = open_cold_tier(rt, opts)))
		goto fail;
	if (rt->cfg.model_id) {
		/* the caller's string is read during open only: keep a copy */
		if (!(rt->model_id = strdup(rt->cfg.model_id))) {
			rc = tkv__fail(-ENOMEM, "open: model_id");
			goto fail;
		}
		rt->cfg.model_id = rt->model_id;
		if ((rc = open_cache(rt)))
			goto fail;
		if (rt->cfg.shared_enabled && (rc = open_shared(rt)))
			goto fail;
	}
	*out = rt;
	return 0;
fail:
	teardown(rt);
	tkv__tracer_close(rt->tracer); /* NULL-safe; rc already names the failure */
	free(rt->model_id);
	free(rt);
	return rc;
}

void tkv_close(tkv_runtime *rt)
{
	if (!rt)
		return;
	ck_pr_store_32(&rt->closing, 1);
	ck_pr_store_32(&rt->paused, 0);
	teardown(rt);
	/* After the workers joined: close reads their last partial chunks. A
	 * trace that cannot be fully written leaves its message in
	 * tkv_last_error() (tierkv.h, tkv_close); the library never prints. */
	tkv__tracer_close(rt->tracer);
	free(rt->model_id);
	free(rt);
}

int tkv__seq_id_check(uint64_t seq_id, const char *what)
{
	if (seq_id == TKV__CACHE_SEQ)
		return tkv__fail(-EINVAL, "%s: sequence id %llu is reserved (it names the "
				 "records of cached and shared blocks)",
				 what, (unsigned long long)seq_id);
	return 0;
}

void tkv__seq_discard(tkv_runtime *rt, tkv__seq *s)
{
	tkv__seq_free(s, put_unit, rt);
}

/* The table refused s (rc): frees it, with the reason. */
static int insert_failed(tkv_runtime *rt, tkv__seq *s, int rc)
{
	uint64_t id = s->id;
	tkv__seq_discard(rt, s);
	return tkv__fail(rc, "seq_open: sequence %llu %s", (unsigned long long)id,
			 rc == -EEXIST ? "is already open" : "cannot be added");
}

int tkv__seq_insert(tkv_runtime *rt, tkv__seq *s)
{
	int rc = tkv__seq_table_insert(&rt->seqs, s);
	return rc ? insert_failed(rt, s, rc) : 0;
}

int tkv__seq_insert_fresh(tkv_runtime *rt, tkv__seq *s, const char *what)
{
	tkv__prior_records prior = {0};
	int rc = rt->ev ? tkv__evictor_prior_list(rt->ev, s->id, &prior, what) : 0;
	if (rc) {
		tkv__seq_discard(rt, s);
		return rc;
	}
	uint64_t id = s->id;
	if ((rc = tkv__seq_insert(rt, s))) {
		tkv__evictor_prior_free(&prior);
		return rc;
	}
	if (rt->ev)
		tkv__evictor_prior_drop(rt->ev, id, &prior);
	return 0;
}

int tkv__seq_not_open(tkv_runtime *rt, uint64_t id, const char *what)
{
	tkv__seq *s = tkv__seq_get(&rt->seqs, id);
	if (!s)
		return 0;
	tkv__seq_put(s);
	return tkv__fail(-EEXIST, "%s: sequence %llu is already open", what,
			 (unsigned long long)id);
}

int tkv_seq_open(tkv_runtime *rt, uint64_t seq_id)
{
	int rc = tkv__rt_check(rt);
	if (rc || (rc = tkv__seq_id_check(seq_id, "seq_open")) ||
	    (rc = tkv__seq_not_open(rt, seq_id, "seq_open")))
		return rc;
	tkv__seq *s = tkv__seq_new(seq_id, rt->cfg.n_layers);
	if (!s)
		return tkv__fail(-ENOMEM, "seq_open: sequence %llu", (unsigned long long)seq_id);
	/* a re-opened id gets its cold records back before anyone sees it */
	if (rt->ev && (rc = tkv__evictor_seq_open(rt->ev, s))) {
		tkv__seq_discard(rt, s);
		return rc;
	}
	if ((rc = tkv__seq_table_insert(&rt->seqs, s)) && rt->ev) {
		/* opened meanwhile by another thread: the records it re-attached
		 * are its units', not these */
		tkv__evictor_seq_disown(rt->ev, s);
	}
	return rc ? insert_failed(rt, s, rc) : 0;
}

int tkv_seq_close(tkv_runtime *rt, uint64_t seq_id)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	tkv__seq *s = tkv__seq_table_remove(&rt->seqs, seq_id, &rc);
	if (!s)
		return tkv__fail(rc, "seq_close: sequence %llu %s", (unsigned long long)seq_id,
				 rc == -EBUSY ? "has views held" : "is not open");
	/* Out of the table, marked closing: no new reference can be taken.
	 * Wait for the workers' pending copies, then for every reference (API
	 * calls, prefetch reads); then the table's unit references go. A unit
	 * the evictor is writing holds its own reference and is freed when
	 * that write finishes. */
	tkv__seq_drain(rt, s);
	while (ck_pr_load_32(&s->refs))
		sched_yield();
	ck_pr_fence_acquire(); /* pairs with tkv__seq_put's release */
	drop_seq(rt, s);
	/* Records named after this id go now, writes in flight included:
	 * units the evictor still holds die with it, and none can leave a
	 * record that a re-opened id's blocks would collide with. Cache
	 * blocks have names of their own and stay. */
	if (rt->ev)
		tkv__evictor_forget_seq(rt->ev, seq_id);
	return 0;
}
