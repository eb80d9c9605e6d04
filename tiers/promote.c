/*
 * promote.c - getting blocks back into the hot tier: the pin every reader
 * takes on a block (and the promotion it triggers when the block is cold),
 * and the prefetch thread behind tkv_prefetch (design in evictor.h; the API
 * call itself is in runtime/prefetch.c).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include <ck_pr.h>

#include "tiers/evictor.h"
#include "tiers/cache.h"

#include "base/clock.h"
#include "base/error.h"
#include "base/fence.h"
#include "base/thread_name.h"

/*
 * PF_QUEUE: queued prefetch requests. PF_BATCH: completions taken per reap
 * (the cold tier's default read_depth), so one pass collects everything the
 * device finished. Reaping used to verify each completion on the prefetch
 * thread before the next was looked at, one at a time: a CRC of ~20-40 us
 * per 128 KiB block, serial, which held promotion to what one thread could
 * checksum (perf: 57% of that thread's time in the CRC; docs/MEASUREMENTS.md).
 * Now reaping only moves reads to the verify list, and verification runs on
 * the prefetch thread and on every waiting reader (evictor.h, "Promotion").
 */
enum { PF_QUEUE = 256, PF_BATCH = 64 };

static bool pf_help(tkv__evictor *ev);

/* Every layer in RAM and none pinned (pinned: the evictor just kept it hot
 * for a reader, free_unit; its record is the one it just wrote, and it
 * will free the unit soon). */
static bool whole_and_unpinned(const tkv__unit *u)
{
	for (uint32_t l = 0; l < u->n_layers; l++)
		if (!ck_pr_load_ptr((void **)&u->blocks[l].mem) ||
		    ck_pr_load_32((uint32_t *)&u->blocks[l].pins))
			return false;
	return true;
}

/*
 * Exclusive tiers for cache blocks: a published unit whose every layer is
 * back in RAM gives up its cold record when its last holder lets go
 * (tkv__cache_put), so the block holds one slot of the total capacity
 * instead of two (a hot copy and a cold copy). The replay bench measured
 * the cost of keeping both: up to 12% of the capacity (bench/README.md).
 * When the evictor picks the unit again it writes a new record (KV is
 * immutable once published, so the content is the same). Not at
 * promotion: while a sequence reads the block layer by layer, the record
 * lets the evictor free the unit without a write between two layers' views
 * (a hot tier smaller than one layer's view of a sequence depends on it:
 * cache.cacheless_run_removes_cache_records under TSan). Plain units keep
 * their record: freeing them again costs no write, and their capacity is
 * not the cache's to optimize.
 *
 * Ownership: the PUBLISHING state (CAS from HOT) keeps the evictor out
 * (its eligible() CASes HOT -> WRITING) while `cold` changes, exactly as
 * the cache's publish() does. All layers in RAM means no reader is loading
 * any of them from the record; that is checked once the unit is owned
 * (the look before the CAS only saves the CAS), as publish() does. The
 * record goes with tkv__cold_drop_if: no header-zeroing write, since
 * finding this block again at a restart would be correct.
 */
void tkv__evictor_release_record(tkv__evictor *ev, tkv__unit *u)
{
	if (ck_pr_load_32(&u->published) != TKV__PUB_YES || !ck_pr_load_32(&u->cold))
		return;
	if (!whole_and_unpinned(u))
		return;
	if (CK_CC_UNLIKELY(ev->release_race != NULL))
		ev->release_race(u);
	if (!ck_pr_cas_32(&u->state, TKV__UNIT_HOT, TKV__UNIT_PUBLISHING))
		return; /* the evictor (or another layer's promotion) has it */
	/* The look above was only a filter: between it and the CAS the
	 * evictor may have taken the unit (HOT -> WRITING), freed its layers
	 * without a write (the record stands: write_unit) and set it HOT
	 * again; dropping the record then would lose the block while the
	 * cache still lists it (cache_stress under TSan, once in ~70 runs).
	 * Owned now, no layer's memory can go: look again. Acquire: pairs
	 * with free_unit's release before its store of HOT. */
	ck_pr_fence_acquire();
	if (!whole_and_unpinned(u)) {
		ck_pr_store_32(&u->state, TKV__UNIT_HOT);
		return;
	}
	if (ck_pr_load_32(&u->cold)) {
		tkv__cold_drop_if(ev->cold, u->rec_seq, u->rec_block, u->rec_seqno);
		u->rec_seqno = 0;
		ck_pr_store_32(&u->cold, 0);
		ck_pr_inc_64(&ev->records_released);
	}
	/* Release: cold = 0 before the evictor's CAS from HOT (it would
	 * otherwise free the blocks without writing a record). */
	ck_pr_fence_release();
	ck_pr_store_32(&u->state, TKV__UNIT_HOT);
}

static void publish(tkv__evictor *ev, tkv__unit *u, tkv__block *blk, void *mem)
{
	/* Release: the verified rows before the pointer readers acquire. */
	ck_pr_fence_release();
	ck_pr_store_ptr(&blk->mem, mem);
	ck_pr_store_32(&blk->loading, 0);
	/* the unit can be evicted again (by just freeing: its record stands) */
	tkv__evictor_policy_insert(ev, u);
	ck_pr_inc_64(&ev->promoted_blocks);
	ck_pr_add_64(&ev->promoted_bytes, ev->env.geo->block_bytes);
	tkv__wake_signal(&ev->loaded);
}

static void unclaim(tkv__evictor *ev, tkv__block *blk)
{
	ck_pr_store_32(&blk->loading, 0);
	tkv__wake_signal(&ev->loaded);
}

/* Reserves one hot block for a promotion, waiting for the evictor if the
 * hot tier is full. */
static int reserve_one(tkv__evictor *ev)
{
	tkv__space_wait w = {.blocks = 1};
	while (!tkv__hot_reserve(ev->env.hot, 1)) {
		if (!tkv__evictor_wait_space(ev, &w))
			continue;
		tkv__evictor_wait_end(ev, &w);
		/* unreferenced cache blocks in RAM go before a read fails */
		tkv__cache *cache = ev->env.tiers->cache;
		if (cache && tkv__cache_reclaim_hot(cache, 1) > 0) {
			w = (tkv__space_wait){.blocks = 1};
			continue;
		}
		return tkv__fail(-ENOSPC, "promote: hot tier full and nothing evictable");
	}
	tkv__evictor_wait_end(ev, &w);
	tkv__evictor_note_usage(ev, tkv__hot_used(ev->env.hot));
	return 0;
}

/* Synchronous promotion of one layer block, by the thread that claimed it. */
static int promote_now(tkv__evictor *ev, tkv__unit *u, uint32_t layer, tkv__block *blk)
{
	int rc = reserve_one(ev);
	if (rc) {
		unclaim(ev, blk);
		return rc;
	}
	tkv__hot *hot = ev->env.hot;
	void *mem = tkv__hot_alloc(hot, layer);
	tkv__trace_buf *tb = tkv__tracer_thread(ev->env.tracer, NULL);
	uint64_t t0 = tkv__now_ns(), tt = tkv__trace_begin(tb);
	rc = mem ? tkv__cold_read_layer(ev->cold, u->rec_seq, u->rec_block, layer, mem, NULL)
		 : -ENOMEM;
	tkv__trace_end(tb, TKV__TRACE_PROMOTE, tt, (uint32_t)u->rec_seq, ev->env.geo->block_bytes);
	if (rc) {
		tkv__hot_free(hot, layer, mem);
		tkv__hot_release(hot, 1);
		unclaim(ev, blk);
		/* A checksum failure drops the whole record: the unit's other
		 * cold layers are lost too, and say so rather than "not found". */
		if (rc == -TKV_ECORRUPT)
			ck_pr_store_32(&u->lost, 1);
		else if (rc == -ENOENT && ck_pr_load_32(&u->lost))
			rc = -TKV_ECORRUPT;
		return tkv__fail(rc, "promote: record %llu/%llu layer %u: %s",
				 (unsigned long long)u->rec_seq, (unsigned long long)u->rec_block, layer,
				 rc == -TKV_ECORRUPT ? "cold record failed its checksum and was "
						       "dropped; this block is lost"
						     : tkv_strerror(rc));
	}
	ck_pr_add_64(&ev->promote_ns, tkv__now_ns() - t0);
	publish(ev, u, blk, mem);
	return 0;
}

/* Waits while someone else loads blk (or the evictor frees its unit). A
 * reaped prefetch read waiting for its CRC (perhaps blk's) is verified here
 * first: a waiting reader is a free verifier. */
static void wait_loaded(tkv__evictor *ev, const tkv__block *blk)
{
	if (pf_help(ev))
		return;
	uint32_t t = tkv__wake_prepare(&ev->loaded);
	/* the condition: blk still loading and nothing to verify (the
	 * prefetch thread signals `loaded` after it adds to the list) */
	if (ck_pr_load_32((uint32_t *)&blk->loading) && !ck_pr_load_32(&ev->pf_ver_n)) {
		tkv__wake_wait(&ev->loaded, t, 1000 * 1000);
		return;
	}
	tkv__wake_cancel(&ev->loaded);
	if (!ck_pr_load_32((uint32_t *)&blk->loading))
		sched_yield(); /* FREEING: the evictor is a few frees away */
}

int tkv__block_pin(tkv__evictor *ev, tkv__seq *s, uint32_t layer, uint64_t b,
		   const unsigned char **mem)
{
	tkv__unit *u = tkv__seq_unit(s, b);
	if (!u)
		return tkv__fail(-ENOENT, "block %llu of layer %u is not stored",
				 (unsigned long long)b, layer);
	tkv__block *blk = &u->blocks[layer];
	for (;;) {
		ck_pr_inc_32(&blk->pins);
		/* Dekker with the evictor's free_unit: pin before state load.
		 * Without a cold tier nothing frees a block under a reader
		 * (close waits for references), so no fence is needed. */
		if (ev)
			tkv__fence_full();
		uint32_t st = ev ? ck_pr_load_32(&u->state) : TKV__UNIT_HOT;
		const unsigned char *m = ck_pr_load_ptr(&blk->mem);
		ck_pr_fence_acquire(); /* the rows behind m */
		if (st != TKV__UNIT_FREEING && m) {
			if (ev)
				ev->pol_ops->access(ev->pol, &u->node);
			*mem = m;
			return 0;
		}
		ck_pr_dec_32(&blk->pins);
		if (!ev)
			return tkv__fail(-ENOENT, "block %llu of layer %u has no memory",
					 (unsigned long long)b, layer);
		if (st == TKV__UNIT_FREEING || !ck_pr_cas_32(&blk->loading, 0, 1)) {
			wait_loaded(ev, blk);
			continue;
		}
		/* claimed: re-check, the block may have been loaded meanwhile */
		if (ck_pr_load_ptr(&blk->mem)) {
			unclaim(ev, blk);
			continue;
		}
		int rc = promote_now(ev, u, layer, blk);
		if (rc)
			return rc;
	}
}

void tkv__block_unpin(tkv__seq *s, uint32_t layer, uint64_t b)
{
	/* Release: our reads of the rows before the evictor may free them. */
	ck_pr_fence_release();
	ck_pr_dec_32(&tkv__seq_block(s, layer, b)->pins);
}

/* ---- prefetch ----------------------------------------------------------- */

/* One prefetched layer block, from its claim to its publish (or unclaim). */
typedef struct tkv__pf_job {
	tkv__seq *seq; /* referenced until the read is finished (its table
			* holds the unit) */
	tkv__unit *unit;
	uint32_t layer;
	tkv__block *blk;
	void *mem;
	uint64_t t0;
	tkv__cold_rio rio;         /* the read, once reaped */
	struct tkv__pf_job *next;  /* on the verify list */
} pf_job;

/* Appends the chain first..last (n jobs) to the verify list. Prefetch
 * thread. */
static void pf_ver_push(tkv__evictor *ev, pf_job *first, pf_job *last, uint32_t n)
{
	pthread_mutex_lock(&ev->pf_ver_lock);
	if (ev->pf_ver_tail)
		ev->pf_ver_tail->next = first;
	else
		ev->pf_ver_head = first;
	ev->pf_ver_tail = last;
	ck_pr_add_32(&ev->pf_ver_n, n);
	pthread_mutex_unlock(&ev->pf_ver_lock);
}

/* The oldest job on the verify list, or NULL. Any thread. */
static pf_job *pf_ver_pop(tkv__evictor *ev)
{
	if (!ck_pr_load_32(&ev->pf_ver_n)) /* the common case for readers */
		return NULL;
	pthread_mutex_lock(&ev->pf_ver_lock);
	pf_job *j = ev->pf_ver_head;
	if (j) {
		ev->pf_ver_head = j->next;
		if (!ev->pf_ver_head)
			ev->pf_ver_tail = NULL;
		ck_pr_dec_32(&ev->pf_ver_n);
	}
	pthread_mutex_unlock(&ev->pf_ver_lock);
	return j;
}

/* Verifies a reaped read and publishes its block, or gives the block up
 * (a reader will retry synchronously and report the error). Any thread;
 * tb is that thread's trace buffer. */
static void pf_finish(tkv__evictor *ev, pf_job *j, tkv__trace_buf *tb)
{
	int rc = tkv__cold_read_finish(ev->cold, &j->rio, NULL);
	if (rc == 0) {
		ck_pr_add_64(&ev->promote_ns, tkv__now_ns() - j->t0);
		publish(ev, j->unit, j->blk, j->mem);
	} else {
		/* the record is gone: the unit's other cold layers say so
		 * (promote_now) rather than "not found" */
		if (rc == -TKV_ECORRUPT)
			ck_pr_store_32(&j->unit->lost, 1);
		tkv__hot_free(ev->env.hot, j->layer, j->mem);
		tkv__hot_release(ev->env.hot, 1);
		unclaim(ev, j->blk);
	}
	tkv__trace_end(tb, TKV__TRACE_PROMOTE, j->t0, (uint32_t)j->unit->rec_seq,
		       ev->env.geo->block_bytes);
	tkv__seq_put(j->seq);
	free(j);
}

/* A reader with nothing to do but wait verifies one reaped read. */
static bool pf_help(tkv__evictor *ev)
{
	pf_job *j = pf_ver_pop(ev);
	if (!j)
		return false;
	pf_finish(ev, j, tkv__tracer_thread(ev->env.tracer, NULL));
	ck_pr_inc_64(&ev->pf_helped);
	return true;
}

/* Moves the reads the device finished to the verify list and wakes the
 * readers waiting for blocks, who help verify them. Prefetch thread. */
static int pf_harvest(tkv__evictor *ev, bool wait)
{
	tkv__cold_rio rio[PF_BATCH];
	int n = tkv__cold_read_reap_io(ev->cold, rio, PF_BATCH, wait);
	if (n <= 0)
		return 0;
	pf_job *first = NULL, *last = NULL;
	for (int i = 0; i < n; i++) {
		pf_job *j = rio[i].user;
		j->rio = rio[i];
		j->next = NULL;
		if (last)
			last->next = j;
		else
			first = j;
		last = j;
	}
	ev->pf_inflight -= (uint32_t)n;
	pf_ver_push(ev, first, last, (uint32_t)n);
	tkv__wake_signal(&ev->loaded);
	return n;
}

/* One step of work while reads are at the device or waiting for their
 * CRC: send queued reads, collect finished ones, then verify the oldest;
 * with nothing to verify, wait for the device. Prefetch thread. */
static void pf_progress(tkv__evictor *ev)
{
	tkv__cold_read_flush(ev->cold);
	pf_harvest(ev, false);
	pf_job *j = ck_pr_load_32(&ev->pf_hold_verify) ? NULL : pf_ver_pop(ev);
	if (j)
		pf_finish(ev, j, ev->pf_tb);
	else if (ev->pf_inflight)
		pf_harvest(ev, true);
	else if (ck_pr_load_32(&ev->pf_ver_n))
		sched_yield(); /* held for readers (tests) */
}

/* Reads at the device or reaped and not verified. Only the prefetch thread
 * adds to either, so once this is false it stays false until it submits
 * again (readers may still be finishing jobs they took: they need nothing
 * from this thread). */
static bool pf_busy(tkv__evictor *ev)
{
	return ev->pf_inflight || ck_pr_load_32(&ev->pf_ver_n);
}

/* Reserves a hot block for a prefetch read. With the hot tier full, first
 * finishes this thread's own outstanding reads: their blocks become
 * evictable once published, while unverified ones would sit on their
 * reservations as the evictor is asked for room they hold. */
static int pf_reserve(tkv__evictor *ev)
{
	while (pf_busy(ev)) {
		if (tkv__hot_reserve(ev->env.hot, 1)) {
			tkv__evictor_note_usage(ev, tkv__hot_used(ev->env.hot));
			return 0;
		}
		pf_progress(ev);
	}
	return reserve_one(ev);
}

/* Queues the read of one layer block if it is cold and unclaimed. */
static void pf_block(tkv__evictor *ev, tkv__seq *s, uint32_t layer, uint64_t b)
{
	tkv__unit *u = tkv__seq_unit(s, b);
	tkv__block *blk = u ? &u->blocks[layer] : NULL;
	if (!blk || ck_pr_load_ptr(&blk->mem) || !ck_pr_cas_32(&blk->loading, 0, 1))
		return;
	pf_job *j = malloc(sizeof(*j));
	if (!j || ck_pr_load_ptr(&blk->mem) || pf_reserve(ev)) {
		free(j);
		unclaim(ev, blk);
		return;
	}
	*j = (pf_job){.seq = s, .unit = u, .layer = layer, .blk = blk, .t0 = tkv__now_ns()};
	j->mem = tkv__hot_alloc(ev->env.hot, layer);
	int rc = j->mem ? -EAGAIN : -ENOMEM;
	/* At most PF_BATCH reads wait for their CRC (plus read_depth at the
	 * device): reading far ahead of verification would hold hot blocks
	 * nobody can use yet. Each step verifies one. */
	while (j->mem && ck_pr_load_32(&ev->pf_ver_n) >= PF_BATCH)
		pf_progress(ev);
	/* read_depth reads outstanding: make progress (verifying reaped
	 * reads while the device works on the rest) until a slot frees */
	while (j->mem && (rc = tkv__cold_read_submit(ev->cold, u->rec_seq, u->rec_block, layer,
							  j->mem, j)) == -EAGAIN)
		pf_progress(ev);
	if (rc) {
		tkv__hot_free(ev->env.hot, layer, j->mem);
		tkv__hot_release(ev->env.hot, 1);
		unclaim(ev, blk);
		free(j);
		return;
	}
	ck_pr_inc_32(&s->refs);
	ev->pf_inflight++;
}

/* Close: queued requests are hints nobody will use; reads in flight are
 * still harvested. */
static bool pf_stopping(tkv__evictor *ev)
{
	pthread_mutex_lock(&ev->pf_lock);
	bool stop = ev->pf_stop;
	pthread_mutex_unlock(&ev->pf_lock);
	return stop;
}

/* Layer by layer, so layer 0's blocks are read first. */
static void pf_request(tkv__evictor *ev, const tkv__prefetch_req *r)
{
	tkv__seq *s = ev->env.seq_get(ev->env.ctx, r->seq_id);
	if (!s)
		return;
	for (uint32_t l = 0; l < s->n_layers && !ck_pr_load_32(&s->closing) && !pf_stopping(ev);
	     l++) {
		/* per block too: a block that finds no room may wait for the
		 * evictor, and close waits for this loop */
		for (uint64_t b = r->first_block; b < r->first_block + r->n_blocks &&
						  !ck_pr_load_32(&s->closing) && !pf_stopping(ev);
		     b++)
			pf_block(ev, s, l, b);
		/* this layer's reads go to the device now, in one batch */
		tkv__cold_read_flush(ev->cold);
		pf_harvest(ev, false);
	}
	tkv__seq_put(s);
}

static bool pf_take(tkv__evictor *ev, tkv__prefetch_req *r)
{
	pthread_mutex_lock(&ev->pf_lock);
	bool got = ev->pf_head != ev->pf_tail && !ev->pf_stop;
	if (got)
		*r = ev->pf_q[ev->pf_head++ % ev->pf_cap];
	pthread_mutex_unlock(&ev->pf_lock);
	return got;
}

static bool pf_idle(tkv__evictor *ev)
{
	pthread_mutex_lock(&ev->pf_lock);
	bool idle = ev->pf_head == ev->pf_tail && !ev->pf_stop;
	pthread_mutex_unlock(&ev->pf_lock);
	return idle;
}

/* Takes a request; with `idle` (no read in flight or waiting for its CRC),
 * sleeps on pf_wake until one is queued or stop is set (base/wake.h: the
 * queue and the stop flag are the condition, re-checked after announcing
 * ourselves). */
static bool pf_pop(tkv__evictor *ev, tkv__prefetch_req *r, bool idle)
{
	for (;;) {
		if (pf_take(ev, r))
			return true;
		if (!idle || !pf_idle(ev))
			return false;
		uint32_t t = tkv__wake_prepare(&ev->pf_wake);
		if (pf_idle(ev))
			tkv__wake_wait(&ev->pf_wake, t, 0);
		else
			tkv__wake_cancel(&ev->pf_wake);
	}
}

static void *prefetch_main(void *arg)
{
	tkv__evictor *ev = arg;
	ev->pf_tb = tkv__tracer_thread(ev->env.tracer, "prefetch");
	tkv__prefetch_req r;
	for (;;) {
		/* Sleep on the queue only when idle; otherwise keep the reads
		 * moving, taking new requests between steps. */
		if (pf_pop(ev, &r, !pf_busy(ev)))
			pf_request(ev, &r);
		else if (pf_busy(ev))
			pf_progress(ev);
		else
			break; /* stopped, queue empty, nothing outstanding */
	}
	return NULL;
}

int tkv__prefetch_start(tkv__evictor *ev)
{
	ev->pf_cap = PF_QUEUE;
	ev->pf_q = calloc(ev->pf_cap, sizeof(*ev->pf_q));
	if (!ev->pf_q)
		return tkv__fail(-ENOMEM, "open: prefetch queue");
	pthread_mutex_init(&ev->pf_lock, NULL);
	pthread_mutex_init(&ev->pf_ver_lock, NULL);
	int rc = pthread_create(&ev->pf_thread, NULL, prefetch_main, ev);
	if (rc)
		return tkv__fail(-rc, "open: cannot start the prefetch thread");
	tkv__thread_name(ev->pf_thread, "tkv-prefetch");
	ev->pf_started = true;
	return 0;
}

void tkv__prefetch_stop(tkv__evictor *ev)
{
	if (!ev->pf_q)
		return;
	if (ev->pf_started) {
		pthread_mutex_lock(&ev->pf_lock);
		ev->pf_stop = true;
		pthread_mutex_unlock(&ev->pf_lock);
		tkv__wake_signal(&ev->pf_wake);
		pthread_join(ev->pf_thread, NULL);
	}
	pthread_mutex_destroy(&ev->pf_lock);
	pthread_mutex_destroy(&ev->pf_ver_lock);
	free(ev->pf_q);
	ev->pf_q = NULL;
}

int tkv__prefetch_enqueue(tkv__evictor *ev, uint64_t seq_id, uint64_t first, uint64_t n)
{
	tkv__prefetch_req r = {seq_id, first, n};
	pthread_mutex_lock(&ev->pf_lock);
	bool full = ev->pf_tail - ev->pf_head >= ev->pf_cap;
	if (!full)
		ev->pf_q[ev->pf_tail++ % ev->pf_cap] = r;
	pthread_mutex_unlock(&ev->pf_lock);
	if (!full)
		tkv__wake_signal(&ev->pf_wake);
	return full ? tkv__fail(-EAGAIN, "prefetch: queue full (%u requests)", ev->pf_cap) : 0;
}
