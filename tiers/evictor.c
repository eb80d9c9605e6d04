/*
 * evictor.c - the evictor thread and the cold tier's life in the runtime
 * (design in evictor.h): watermarks, victim choice through the policy,
 * record writes, freeing hot blocks once records are durable, and the
 * sequence open/close hooks that recover and delete records.
 */
#include "tiers/evictor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ck_pr.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/fence.h"
#include "base/thread_name.h"
#include "tiers/cache.h"
#include "tiers/units.h"

enum {
	REAP_MAX = 64,
	RECLAIM_COLD = 4, /* cache records dropped per write refused for space */
	RETRY_NS = 20 * 1000 * 1000,     /* back-off after a failed write */
	SPACE_WAIT_NS = 2000 * 1000 * 1000ull, /* a store waits at most this for space */
};

/* One record write in flight: the unit, its buffer (a header buffer when
 * the record is written from the hot blocks, else a staging buffer with
 * every layer copied in), its start. */
typedef struct evict_job {
	tkv__unit *unit;
	void *buf;
	bool own_buf; /* a staging buffer for this record only: freed, not pooled */
	uint64_t t_submit;
} evict_job;

/*
 * Buffers, reused (evictor thread only, so no lock). A record is written
 * from the hot blocks themselves (tkv__cold_write_submit_layers) whenever
 * the geometry and the blocks allow (tkv__cold_direct_ok), so the pool
 * holds header buffers (4 KiB each). A geometry whose blocks cannot be
 * written in place stages every record: its pool holds whole-record
 * buffers, as allocating (and zeroing) a multi-MiB buffer per eviction
 * costs as much as the gather itself. A block the direct path cannot take
 * in a direct geometry (not 4 KiB aligned: never from the arenas' pools,
 * hot_arena.c) is staged in a buffer of its own.
 */
static void *buf_new(tkv__evictor *ev)
{
	return ev->direct ? tkv__cold_header_alloc(ev->cold) : tkv__cold_buf_alloc(ev->cold);
}

static void *buf_get(tkv__evictor *ev)
{
	return ev->n_bufs ? ev->bufs[--ev->n_bufs] : buf_new(ev);
}

static void buf_put(tkv__evictor *ev, void *buf)
{
	if (buf && ev->n_bufs < TKV__EVICT_BUFS)
		ev->bufs[ev->n_bufs++] = buf;
	else
		tkv__cold_buf_free(ev->cold, buf);
}

/* Open fills the pool, before the evictor thread starts: the first touch
 * of a fresh record buffer (the kernel zeroing its huge pages) cost more
 * than the gather and the checksum together, and it fell on the first
 * eviction burst, i.e. when the hot tier first fills under peak load; done
 * in the evictor thread instead, it overlapped the first stores and slowed
 * both (perf, bench evict: docs/MEASUREMENTS.md). Best effort: a buffer
 * that cannot be had now is allocated when needed. */
static void bufs_prepare(tkv__evictor *ev)
{
	void *buf;
	while (ev->n_bufs < ev->depth && (buf = buf_new(ev)) != NULL)
		ev->bufs[ev->n_bufs++] = buf;
}

static tkv__unit *unit_of(tkv__policy_node *n)
{
	return (tkv__unit *)n; /* node is the unit's first member */
}

/*
 * in_policy is claimed before the insert, not set after it: the evictor
 * may pick the unit the moment it is in a queue, and eligible() clears the
 * flag under the policy lock. Set after the insert, the flag could land
 * after such a pick and leave a unit flagged but in no queue: never picked
 * again, and never re-inserted by a promotion (which inserts only unflagged
 * units), so its RAM stayed taken for good (cache.cacheless_run_removes_
 * cache_records under TSan, about 1 run in 300; docs/MEASUREMENTS.md). A
 * claim that fails means another thread is putting it there. A unit the
 * policy cannot take (out of memory growing it) stays hot until its
 * holders let go: counted, never silent.
 */
void tkv__evictor_policy_insert(tkv__evictor *ev, tkv__unit *u)
{
	if (!ck_pr_cas_32(&u->in_policy, 0, 1))
		return;
	if (ev->pol_ops->insert(ev->pol, &u->node) != 0) {
		ck_pr_store_32(&u->in_policy, 0);
		ck_pr_inc_64(&ev->unit_nomem);
	}
}

/* Asks the evictor thread for a pass even below the high watermark. */
static void kick(tkv__evictor *ev)
{
	ck_pr_inc_32(&ev->asks);
	tkv__wake_signal(&ev->wake);
}

void tkv__evictor_unit_full(tkv__evictor *ev, tkv__unit *u)
{
	tkv__evictor_policy_insert(ev, u);
	/* a new victim while the evictor backs off for lack of one */
	if (ck_pr_load_32(&ev->stuck))
		kick(ev);
}

void tkv__evictor_forget_record(tkv__evictor *ev, tkv__unit *u)
{
	tkv__cold_remove_if(ev->cold, u->rec_seq, u->rec_block, u->rec_seqno);
	kick(ev); /* housekeeping frees the slot */
}

void tkv__evictor_forget_seq(tkv__evictor *ev, uint64_t seq_id)
{
	tkv__cold_remove_seq(ev->cold, seq_id);
	kick(ev); /* housekeeping frees the slots */
}

void tkv__evictor_forget(tkv__evictor *ev, tkv__unit *u)
{
	if (ck_pr_load_32(&u->in_policy)) {
		ev->pol_ops->remove(ev->pol, &u->node);
		ck_pr_store_32(&u->in_policy, 0);
	}
	if (ck_pr_load_32(&u->cold)) {
		/* only its own record: a newer unit may hold the name now. A
		 * dropped cache block's record is immutable and harmless if a
		 * restart finds it again: no header-zeroing write for it. */
		if (ck_pr_load_32(&u->published) == TKV__PUB_YES)
			tkv__cold_drop_if(ev->cold, u->rec_seq, u->rec_block, u->rec_seqno);
		else
			tkv__cold_remove_if(ev->cold, u->rec_seq, u->rec_block, u->rec_seqno);
		/* the slot is freed by the writer thread's housekeeping: wake it
		 * so the space comes back now rather than at the next eviction */
		kick(ev);
	}
}

void tkv__evictor_note_usage(tkv__evictor *ev, uint64_t used_blocks)
{
	/* no ask needed: past the high watermark is itself a reason to run */
	if (used_blocks >= ev->high_blocks)
		tkv__wake_signal(&ev->wake);
}

/* Publishes a reservation of `blocks` that did not fit (a CAS max: the
 * evictor's next pass makes room for the largest one). */
static void want_space(tkv__evictor *ev, uint64_t blocks)
{
	uint64_t want = blocks ? blocks : 1, cur;
	while ((cur = ck_pr_load_64(&ev->space_wanted)) < want &&
	       !ck_pr_cas_64(&ev->space_wanted, cur, want))
		;
}

void tkv__evictor_want(tkv__evictor *ev, uint64_t blocks)
{
	want_space(ev, blocks);
	/* not a stuck one: see tkv__evictor_wait_space (a caller polling
	 * with non-blocking stores drove one pass per call) */
	if (!ck_pr_load_32(&ev->stuck))
		kick(ev);
}

int tkv__evictor_wait_space(tkv__evictor *ev, tkv__space_wait *w)
{
	/* closing: the evictor thread is gone or going, nothing frees room */
	if (!ev || ck_pr_load_32(&ev->stop))
		return -ENOSPC;
	uint64_t now = tkv__now_ns();
	if (!w->t0) {
		w->t0 = now;
		w->pass0 = ck_pr_load_32(&ev->passes);
	}
	/* Give up only on the word of a pass that started after we asked, or
	 * after a bounded wait: never on a stale "stuck". */
	if (now - w->t0 > SPACE_WAIT_NS ||
	    (ck_pr_load_32(&ev->passes) - w->pass0 >= 2 && ck_pr_load_32(&ev->stuck_settled) &&
	     !ev->env.copies_pending(ev->env.ctx)))
		return -ENOSPC;
	tkv__hot *hot = ev->env.hot;
	uint32_t t = tkv__wake_prepare(&hot->space);
	uint64_t want = w->blocks ? w->blocks : 1;
	want_space(ev, want);
	/* A stuck evictor (nothing evictable, or the cold tier refusing)
	 * retries on its own after its back-off, and sooner when a victim
	 * appears (tkv__evictor_unit_full): a kick from every re-check here
	 * would end each back-off at once, and the two threads would spin for
	 * the whole wait. */
	if (!ck_pr_load_32(&ev->stuck))
		kick(ev);
	if (tkv__hot_used(hot) + want <= hot->capacity) {
		tkv__wake_cancel(&hot->space); /* room appeared: retry now */
		/* ours is served: no pass for a demand nobody has any more */
		ck_pr_cas_64(&ev->space_wanted, want, 0);
		return 0;
	}
	tkv__wake_wait(&hot->space, t, 1000 * 1000); /* re-check every ms */
	return 0;
}

void tkv__evictor_wait_end(tkv__evictor *ev, const tkv__space_wait *w)
{
	if (!ev || !w->t0)
		return;
	ck_pr_inc_64(&ev->space_waits);
	ck_pr_add_64(&ev->space_wait_ns, tkv__now_ns() - w->t0);
}

/* Under the policy lock: may this unit go now? Takes a unit reference for
 * the evictor when it says yes (so the unit outlives the sequences that
 * hold it while its record is written). */
static bool eligible(void *ctx, tkv__policy_node *n)
{
	(void)ctx;
	tkv__unit *u = unit_of(n);
	for (uint32_t l = 0; l < u->n_layers; l++) {
		tkv__block *blk = &u->blocks[l];
		if (ck_pr_load_32(&blk->pins) || ck_pr_load_32(&blk->loading))
			return false;
	}
	if (!ck_pr_cas_32(&u->state, TKV__UNIT_HOT, TKV__UNIT_WRITING))
		return false; /* being freed, or the cache is naming it */
	if (!tkv__unit_tryref(u)) {
		ck_pr_store_32(&u->state, TKV__UNIT_HOT); /* its last holder left */
		return false;
	}
	ck_pr_store_32(&u->in_policy, 0);
	return true;
}

/* After the record is durable: free every hot layer block unless a reader
 * pinned one meanwhile. Returns the blocks freed. */
static uint64_t free_unit(tkv__evictor *ev, tkv__unit *u)
{
	ck_pr_store_32(&u->state, TKV__UNIT_FREEING);
	/* Dekker with tkv__block_pin: FREEING before our pins loads. */
	tkv__fence_full();
	for (uint32_t l = 0; l < u->n_layers; l++) {
		if (ck_pr_load_32(&u->blocks[l].pins)) {
			ck_pr_store_32(&u->state, TKV__UNIT_HOT);
			tkv__evictor_policy_insert(ev, u); /* in use: keep it hot for now */
			return 0;
		}
	}
	uint64_t freed = 0;
	for (uint32_t l = 0; l < u->n_layers; l++) {
		tkv__block *blk = &u->blocks[l];
		void *mem = ck_pr_load_ptr(&blk->mem);
		if (mem) {
			ck_pr_store_ptr(&blk->mem, NULL);
			tkv__hot_free(ev->env.hot, l, mem);
			freed++;
		}
	}
	/* Release: mem == NULL is visible before readers may pin again. */
	ck_pr_fence_release();
	ck_pr_store_32(&u->state, TKV__UNIT_HOT);
	tkv__hot_release(ev->env.hot, freed); /* wakes stores waiting for space */
	return freed;
}

static void gather(tkv__evictor *ev, void *buf)
{
	for (uint32_t l = 0; l < ev->env.cfg->n_layers; l++)
		ev->env.copy(tkv__cold_layer_ptr(ev->cold, buf, l), ev->layers[l],
			     ev->env.geo->block_bytes);
}

/* Submits u's record: from its hot blocks when it can, else staged. The
 * blocks stay in place and unchanged until the completion: u is WRITING
 * (no reader frees it, finish() does) and a full unit is never written
 * again (truncate and fork copy a block before they change it). */
static int submit_record(tkv__evictor *ev, tkv__unit *u, evict_job *job)
{
	for (uint32_t l = 0; l < u->n_layers; l++)
		ev->layers[l] = ck_pr_load_ptr(&u->blocks[l].mem);
	tkv__cold_ext ext;
	bool cached = ck_pr_load_32(&u->published) == TKV__PUB_YES;
	if (cached) /* a cache block's record carries its key and tokens */
		ext = tkv__cache_ext(u);
	const uint32_t bt = ev->env.cfg->block_tokens;
	if (ev->direct && tkv__cold_direct_ok(ev->cold, (const void *const *)ev->layers)) {
		if (!(job->buf = buf_get(ev)))
			return -ENOMEM;
		return tkv__cold_write_submit_layers(ev->cold, u->rec_seq, u->rec_block, bt, job->buf,
						     (const void *const *)ev->layers, NULL,
						     cached ? &ext : NULL, job);
	}
	job->own_buf = ev->direct;
	job->buf = job->own_buf ? tkv__cold_buf_alloc(ev->cold) : buf_get(ev);
	if (!job->buf)
		return -ENOMEM;
	gather(ev, job->buf);
	ck_pr_inc_64(&ev->staged_records);
	return tkv__cold_write_submit_ext(ev->cold, u->rec_seq, u->rec_block, bt, job->buf, NULL,
					  cached ? &ext : NULL, job);
}

static void job_free(tkv__evictor *ev, evict_job *job)
{
	if (job->own_buf)
		tkv__cold_buf_free(ev->cold, job->buf);
	else
		buf_put(ev, job->buf);
	free(job);
}

/* Starts evicting one victim the policy offers and `ok` accepts. 1 if a
 * write was submitted or a unit freed, 0 if nothing is eligible, negative
 * errno if the cold tier refused. */
static int write_unit(tkv__evictor *ev, tkv__unit *u);

static int evict_one(tkv__evictor *ev, bool (*ok)(void *, tkv__policy_node *))
{
	tkv__policy_node *n = ev->pol_ops->pick(ev->pol, ok, NULL);
	return n ? write_unit(ev, unit_of(n)) : 0;
}

/* Starts writing out u, which eligible() took (WRITING, the evictor's
 * reference): 1 if a write was submitted or u freed (its record still
 * durable), negative errno if the cold tier refused (u back in the
 * policy, the reference dropped). */
static int write_unit(tkv__evictor *ev, tkv__unit *u)
{
	if (ck_pr_load_32(&u->cold)) { /* record still durable: just free */
		free_unit(ev, u);
		tkv__unit_put(ev->env.tiers, u);
		return 1;
	}
	evict_job *job = malloc(sizeof(*job));
	int rc = -ENOMEM;
	if (job) {
		*job = (evict_job){.unit = u, .t_submit = tkv__now_ns()};
		rc = submit_record(ev, u, job);
	}
	if (rc) {
		if (job)
			job_free(ev, job);
		ck_pr_store_32(&u->state, TKV__UNIT_HOT);
		tkv__evictor_policy_insert(ev, u);
		tkv__unit_put(ev->env.tiers, u);
		return rc;
	}
	ck_pr_inc_32(&ev->inflight);
	return 1;
}

/* A write finished: durable -> free the hot blocks; failed -> stay hot. */
static int finish(tkv__evictor *ev, const tkv__cold_done *d)
{
	evict_job *job = d->user;
	tkv__unit *u = job->unit;
	if (d->status == 0) {
		u->rec_seqno = d->seqno; /* published to others by cold = 1 */
		ck_pr_fence_release();
		ck_pr_store_32(&u->cold, 1);
		ck_pr_inc_64(&ev->evicted_blocks);
		ck_pr_add_64(&ev->evicted_bytes, tkv__cold_record_bytes(ev->cold));
		free_unit(ev, u);
	} else {
		ck_pr_store_32(&u->state, TKV__UNIT_HOT);
		if (d->status != -ECANCELED)
			tkv__evictor_policy_insert(ev, u);
		tkv__trace_instant(ev->tb, TKV__TRACE_IO_ERROR, (uint32_t)-d->status, u->rec_block);
	}
	tkv__trace_end(ev->tb, TKV__TRACE_COLD_WRITE, job->t_submit, (uint32_t)u->rec_seq,
		       tkv__cold_record_bytes(ev->cold));
	job_free(ev, job);
	ck_pr_dec_32(&ev->inflight);
	tkv__unit_put(ev->env.tiers, u);
	/* A full cold tier makes room by dropping unreferenced cache blocks
	 * (their slots come back with the housekeeping of the next submit):
	 * then this was not a failure, the unit is retried in this pass. */
	if (d->status == -ENOSPC && ev->env.tiers->cache && !ev->keeping &&
	    tkv__cache_reclaim_cold(ev->env.tiers->cache, RECLAIM_COLD) > 0)
		return 0;
	return d->status;
}

static int reap(tkv__evictor *ev, bool wait)
{
	tkv__cold_done done[REAP_MAX];
	int n = tkv__cold_write_reap(ev->cold, done, REAP_MAX, wait), failed = 0;
	for (int i = 0; i < n; i++)
		failed |= finish(ev, &done[i]) != 0 && done[i].status != -ECANCELED;
	return failed;
}

static bool over(tkv__evictor *ev, uint64_t limit)
{
	return tkv__hot_used(ev->env.hot) > limit;
}

/* Where a pass stops: the low watermark, or lower if a waiting store
 * needs more room than that leaves. */
static uint64_t pass_target(tkv__evictor *ev)
{
	uint64_t cap = ev->env.hot->capacity, want = ck_pr_load_64(&ev->space_wanted);
	want = want < cap ? want : cap;
	return cap - want < ev->low_blocks ? cap - want : ev->low_blocks;
}

/* At or past the high watermark (>= so that a 100% watermark still fires
 * when the hot tier is exactly full), or too full for a waiting store. */
static bool need_evict(tkv__evictor *ev)
{
	uint64_t used = tkv__hot_used(ev->env.hot);
	return used >= ev->high_blocks ||
	       used + ck_pr_load_64(&ev->space_wanted) > ev->env.hot->capacity;
}

/* One pass: evict down to the low watermark. Returns true if it had to stop
 * for a reason other than reaching the watermark (nothing eligible, cold
 * tier refusing), so the caller backs off. */
static bool evict_pass(tkv__evictor *ev, unsigned depth)
{
	bool stuck = false;
	uint64_t t0 = tkv__trace_begin(ev->tb), chosen = 0;
	/* records in flight free their blocks when durable: count them as
	 * gone, or the pass overshoots the low watermark by a queue's worth */
	const uint64_t target = pass_target(ev);
	while (!stuck && !ck_pr_load_32(&ev->stop) &&
	       tkv__hot_used(ev->env.hot) >
		       target + (uint64_t)ck_pr_load_32(&ev->inflight) * ev->env.cfg->n_layers) {
		if (ck_pr_load_32(&ev->inflight) >= depth) {
			stuck |= reap(ev, true);
			continue;
		}
		int rc = evict_one(ev, eligible);
		chosen += rc > 0;
		if (rc <= 0)
			stuck = ck_pr_load_32(&ev->inflight) == 0 || rc < 0;
		if (rc <= 0 && !stuck)
			stuck |= reap(ev, true); /* wait for writes to free memory */
		else
			stuck |= reap(ev, false);
	}
	while (ck_pr_load_32(&ev->inflight))
		stuck |= reap(ev, true);
	tkv__trace_end(ev->tb, TKV__TRACE_EVICT_SELECT, t0, (uint32_t)chosen,
		       chosen * tkv__cold_record_bytes(ev->cold));
	/* the waiters that asked retry now; one still short asks again */
	ck_pr_store_64(&ev->space_wanted, 0);
	return stuck && over(ev, target);
}

/* Sleeps until a pass is needed (high watermark, an ask, stop), or for
 * timeout_ns when backing off (an ask still ends the nap). */
static void sleep_until_needed(tkv__evictor *ev, uint64_t timeout_ns)
{
	uint32_t t = tkv__wake_prepare(&ev->wake);
	bool idle = ck_pr_load_32(&ev->asks) == ev->asks_seen && !ck_pr_load_32(&ev->stop);
	if (idle && (timeout_ns || !need_evict(ev)))
		tkv__wake_wait(&ev->wake, t, timeout_ns);
	else
		tkv__wake_cancel(&ev->wake);
}

static void *evictor_main(void *arg)
{
	tkv__evictor *ev = arg;
	ev->tb = tkv__tracer_thread(ev->env.tracer, "evictor");
	unsigned depth = ev->depth;
	bool active = false; /* triggered at the high watermark, until the low */
	while (!ck_pr_load_32(&ev->stop)) {
		uint64_t backoff = 0;
		uint32_t asks = ck_pr_load_32(&ev->asks);
		bool asked = asks != ev->asks_seen;
		ev->asks_seen = asks;
		active |= need_evict(ev);
		if (active || asked) {
			/* A copy finishing during the pass may complete a unit
			 * after the pass looked: only a pass that began with no
			 * copy pending may tell producers to give up. */
			bool settled = !ev->env.copies_pending(ev->env.ctx);
			/* Under the high mark a pass only serves a waiting batch
			 * (space_wanted): finding nothing to evict then does not
			 * end the wait, as other sequences may still complete
			 * units; the waiter's 2 s bound does. */
			bool past_high = tkv__hot_used(ev->env.hot) >= ev->high_blocks;
			bool stuck = active && evict_pass(ev, depth);
			active = stuck; /* a pass that was not stuck reached the low mark */
			ck_pr_store_32(&ev->stuck, stuck);
			ck_pr_store_32(&ev->stuck_settled, stuck && settled && past_high);
			ck_pr_inc_32(&ev->passes); /* after stuck: waiters read both */
			/* wake producers either way: they retry or give up */
			tkv__wake_signal(&ev->env.hot->space);
			backoff = stuck ? RETRY_NS : 0;
		}
		tkv__cold_write_reap(ev->cold, NULL, 0, false); /* housekeeping */
		sleep_until_needed(ev, backoff);
	}
	return NULL;
}

/* ---- open / close ------------------------------------------------------- */

static int open_cold(tkv__evictor *ev)
{
	const tkv_config *cfg = ev->env.cfg;
	tkv__cold_config cc;
	tkv__cold_config_default(&cc);
	cc.dir = cfg->cold_dir;
	cc.capacity_bytes = cfg->cold_bytes;
	cc.n_layers = cfg->n_layers;
	cc.n_kv_heads = cfg->n_kv_heads;
	cc.head_dim = cfg->head_dim;
	cc.block_tokens = cfg->block_tokens;
	cc.dtype = cfg->dtype;
	cc.block_bytes = ev->env.geo->block_bytes;
	cc.durability = cfg->durability == TKV_DURABLE_NONE ? TKV__COLD_DURABLE_NONE
							    : TKV__COLD_DURABLE_BATCH;
	cc.io = ev->env.cold_io;
	cc.force_pwrite = ev->env.cold_force_pwrite;
	/* as many records in flight as the cold tier takes (its default keeps
	 * half of them writing while the other half waits for fdatasync) */
	ev->depth = cc.queue_depth < TKV__EVICT_BUFS ? cc.queue_depth : TKV__EVICT_BUFS;
	int rc = tkv__cold_open(&cc, &ev->cold);
	if (rc)
		return rc;
	ev->direct = tkv__cold_direct_geometry(ev->cold);
	ev->layers = calloc(cfg->n_layers, sizeof(*ev->layers));
	return ev->layers ? 0 : tkv__fail(-ENOMEM, "open: evictor");
}

int tkv__evictor_open(const tkv__tier_env *env, tkv__evictor **out)
{
	*out = NULL;
	tkv__evictor *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return tkv__fail(-ENOMEM, "open: evictor");
	ev->env = *env;
	const uint64_t hot_blocks = env->hot->capacity;
	ev->high_blocks = hot_blocks * env->cfg->hot_high_pct / 100;
	ev->low_blocks = hot_blocks * env->cfg->hot_low_pct / 100;
	ev->pol_ops = env->policy_ops ? env->policy_ops
		    : env->cfg->policy == TKV_POLICY_LRU ? &tkv__policy_lru
							 : &tkv__policy_s3fifo;
	int rc = open_cold(ev);
	if (rc)
		goto fail;
	bufs_prepare(ev);
	ev->pol = ev->pol_ops->create(hot_blocks / env->cfg->n_layers + 1);
	if (!ev->pol) {
		rc = tkv__fail(-ENOMEM, "open: eviction policy");
		goto fail;
	}
	if ((rc = tkv__prefetch_start(ev)))
		goto fail;
	if ((rc = pthread_create(&ev->thread, NULL, evictor_main, ev))) {
		rc = tkv__fail(-rc, "open: cannot start the evictor thread");
		goto fail;
	}
	tkv__thread_name(ev->thread, "tkv-evictor");
	ev->started = true;
	*out = ev;
	return 0;
fail:
	tkv__evictor_close(ev);
	return rc;
}

/* Under the policy lock: a cache block whose only copy is in RAM. */
static bool eligible_to_keep(void *ctx, tkv__policy_node *n)
{
	tkv__unit *u = unit_of(n);
	if (ck_pr_load_32(&u->published) != TKV__PUB_YES || ck_pr_load_32(&u->cold))
		return false;
	return eligible(ctx, n);
}

/* Gives back a unit eligible() took and nobody will write. */
static void unpick(tkv__evictor *ev, tkv__unit *u)
{
	ck_pr_store_32(&u->state, TKV__UNIT_HOT);
	tkv__unit_put(ev->env.tiers, u);
}

/*
 * At close, with a prefix cache: the cache blocks only RAM holds are written
 * to the cold tier while it has free slots, so the next run recovers them
 * (the automatic watermarks keep RAM full of them: without this a restart
 * lost a whole hot tier of cache). It never drops a record to make room:
 * what the cold tier holds was chosen by the drop policy. All candidates
 * are taken first, in the policy's eviction order, and written last to
 * first: when there are fewer free slots than candidates, the blocks kept
 * are the ones the policy would have kept longest. The first write that
 * fails (a full cold tier, an I/O error) ends it; the blocks it did not
 * write are lost as before. The closing thread runs it after the evictor
 * and prefetch threads stopped, so it is the evictor now.
 */
static void keep_cache_blocks(tkv__evictor *ev)
{
	size_t n = 0, cap = 0;
	tkv__unit **us = NULL;
	tkv__policy_node *p;
	while ((p = ev->pol_ops->pick(ev->pol, eligible_to_keep, NULL))) {
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 256;
			tkv__unit **g = realloc(us, nc * sizeof(*g));
			if (!g) { /* keep what was taken so far */
				unpick(ev, unit_of(p));
				break;
			}
			us = g, cap = nc;
		}
		us[n++] = unit_of(p);
	}
	ev->keeping = true;
	bool done = false;
	while (n || ck_pr_load_32(&ev->inflight)) {
		while (!done && n && ck_pr_load_32(&ev->inflight) < ev->depth)
			done = write_unit(ev, us[--n]) < 0;
		if (done)
			while (n)
				unpick(ev, us[--n]);
		if (ck_pr_load_32(&ev->inflight) && reap(ev, true))
			done = true;
	}
	free(us);
}

/* The owner stops its workers first: nothing marks blocks full any more. */
void tkv__evictor_close(tkv__evictor *ev)
{
	if (!ev)
		return;
	/* Prefetch first, while the evictor can still make room for the reads
	 * it has in flight (its queued requests are dropped: hints). */
	tkv__prefetch_stop(ev);
	ck_pr_store_32(&ev->stop, 1);
	if (ev->started) {
		tkv__wake_signal(&ev->wake);
		pthread_join(ev->thread, NULL);
	}
	if (ev->started && ev->env.tiers->cache)
		keep_cache_blocks(ev);
	if (ev->pol)
		ev->pol_ops->destroy(ev->pol);
	while (ev->n_bufs)
		tkv__cold_buf_free(ev->cold, ev->bufs[--ev->n_bufs]);
	tkv__cold_close(ev->cold);
	free(ev->layers);
	free(ev);
}

/* ---- sequences ---------------------------------------------------------- */

/* The records a previous run left for id, in block order. Records this
 * run wrote are left out: they belong to units that live on (a closed
 * sequence's blocks the evictor is still writing, blocks shared with other
 * sequences) and would get two owners. -ENOMEM. */
static int prior_records(tkv__evictor *ev, uint64_t id, tkv__prior_records *p)
{
	*p = (tkv__prior_records){0};
	/* The evictor may commit more records of id between counting and
	 * listing (a fork's copies are in its policy before their sequence
	 * is inserted): list until the count fits. */
	size_t n = tkv__cold_list_seq(ev->cold, id, NULL, 0), cap = 0;
	while (n > cap) {
		free(p->info);
		cap = n;
		if (!(p->info = calloc(cap, sizeof(*p->info))))
			return -ENOMEM;
		n = tkv__cold_list_seq(ev->cold, id, p->info, cap);
	}
	const uint64_t run = tkv__cold_run_seqno(ev->cold);
	for (size_t i = 0; i < n; i++)
		if (p->info[i].seqno < run)
			p->info[p->n++] = p->info[i];
	return 0;
}

int tkv__evictor_prior_list(tkv__evictor *ev, uint64_t id, tkv__prior_records *p,
			    const char *what)
{
	if (prior_records(ev, id, p))
		return tkv__fail(-ENOMEM, "%s: listing the records a previous run left for "
				 "sequence %llu", what, (unsigned long long)id);
	return 0;
}

void tkv__evictor_prior_drop(tkv__evictor *ev, uint64_t id, tkv__prior_records *p)
{
	for (size_t i = 0; i < p->n; i++)
		tkv__cold_remove_if(ev->cold, id, p->info[i].block, p->info[i].seqno);
	if (p->n)
		kick(ev); /* the slots come back at the writer's housekeeping */
	tkv__evictor_prior_free(p);
}

void tkv__evictor_prior_free(tkv__prior_records *p)
{
	free(p->info);
	*p = (tkv__prior_records){0};
}

static void disown(tkv__seq *s, uint64_t n_blocks)
{
	for (uint64_t b = 0; b < n_blocks; b++) {
		tkv__unit *u = tkv__seq_unit(s, b);
		if (u)
			ck_pr_store_32(&u->cold, 0);
	}
}

void tkv__evictor_seq_disown(tkv__evictor *ev, tkv__seq *s)
{
	disown(s, s->layers[0].next_pos / ev->env.cfg->block_tokens);
}

int tkv__evictor_seq_open(tkv__evictor *ev, tkv__seq *s)
{
	tkv__prior_records prior;
	if (tkv__evictor_prior_list(ev, s->id, &prior, "seq_open"))
		return -ENOMEM;
	tkv__cold_block_info *info = prior.info;
	const size_t n_info = prior.n;
	/* the records that come back: the contiguous run from block 0 (all
	 * full blocks; only complete units are ever evicted) */
	uint64_t nb = 0;
	while (nb < n_info && info[nb].block == nb &&
	       info[nb].n_tokens == ev->env.cfg->block_tokens)
		nb++;
	for (uint64_t b = 0; b < nb; b++) {
		tkv__unit *u = tkv__seq_unit_make(s, b);
		if (!u) {
			free(info);
			disown(s, b); /* the records stay for the next try */
			return tkv__fail(-ENOMEM, "seq_open: cold blocks of %llu",
					 (unsigned long long)s->id);
		}
		u->layers_full = s->n_layers;
		u->rec_seqno = info[b].seqno;
		u->cold = 1;
	}
	/* Records past the first gap (a write lost in a crash, a record dropped
	 * as corrupt) can never be part of this sequence again: new stores will
	 * refill the gap with another history. Delete them now, or a later
	 * re-open would splice the old blocks after the new ones. */
	for (size_t i = nb; i < n_info; i++)
		tkv__cold_remove_if(ev->cold, s->id, info[i].block, info[i].seqno);
	free(info);
	uint64_t tokens = nb * ev->env.cfg->block_tokens;
	for (uint32_t l = 0; l < s->n_layers; l++) {
		s->layers[l].next_pos = tokens;
		s->layers[l].done_pos = tokens;
		s->layers[l].retired_pos = tokens;
	}
	return 0;
}

/* ---- stats -------------------------------------------------------------- */

/* A live thread's CPU time (0 where its clock is unreadable). */
static uint64_t thread_cpu_ns(pthread_t t)
{
	clockid_t id;
	struct timespec ts;
	if (pthread_getcpuclockid(t, &id) || clock_gettime(id, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tkv__evictor_stats(tkv__evictor *ev, tkv_stats *st)
{
	tkv__cold_stats cs;
	tkv__cold_stats_get(ev->cold, &cs);
	st->evicted_blocks = ck_pr_load_64(&ev->evicted_blocks);
	st->evicted_bytes = ck_pr_load_64(&ev->evicted_bytes);
	st->evict_write_ns = cs.write_busy_ns;
	st->promoted_blocks = ck_pr_load_64(&ev->promoted_blocks);
	st->promoted_bytes = ck_pr_load_64(&ev->promoted_bytes);
	st->promote_read_ns = ck_pr_load_64(&ev->promote_ns);
	st->io_errors_enospc = cs.write_enospc + cs.write_full;
	st->io_errors_eio = cs.write_eio + cs.read_eio;
	st->io_errors_short = cs.write_short + cs.read_short;
	st->corrupt_records = cs.corrupt;
	st->cold_bytes_used = cs.bytes_used;
	st->cold_bytes_capacity = cs.bytes_capacity;
	st->evictor_queue_depth = cs.writes_in_flight;
	st->cold_io_uring = cs.io_uring;
	st->cold_direct_io = cs.direct_io;
	st->units_unevictable = ck_pr_load_64(&ev->unit_nomem);
	st->cache_records_released = ck_pr_load_64(&ev->records_released);
	st->hot_space_waits = ck_pr_load_64(&ev->space_waits);
	st->hot_space_wait_ns = ck_pr_load_64(&ev->space_wait_ns);
	st->promote_verified_by_readers = ck_pr_load_64(&ev->pf_helped);
	st->evictor_cpu_ns = ev->started ? thread_cpu_ns(ev->thread) : 0;
	st->prefetch_cpu_ns = ev->pf_started ? thread_cpu_ns(ev->pf_thread) : 0;
	st->evict_records_staged = ck_pr_load_64(&ev->staged_records);
	st->cold_slots_leaked = cs.retire_dropped;
	st->cold_invalidate_errors = cs.invalidate_errors;
}
