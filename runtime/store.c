/*
 * store.c - the producer side: tkv_store and tkv_batch_hint.
 *
 * Per batch, never per token: one sequence lookup, one position check, at
 * most one hot-capacity reservation (only when the batch opens new blocks),
 * one ring push, and one look at whether the worker sleeps. The caller's K
 * and V are not touched here; the worker copies them.
 */
#include <errno.h>
#include <time.h>

#include <ck_pr.h>

#include "base/clock.h"
#include "base/error.h"
#include "runtime/runtime.h"

/* Queue full: spin this long, then sleep until the worker has drained half
 * the queue (worker.c, room_check). Sleeps are bounded (rt->room_nap_ns,
 * TKV__ROOM_NAP_NS unless a test asks otherwise) so a closing runtime is
 * noticed without a wake-up of its own. Before, the producer napped 1 us,
 * 2 us, ... 1 ms and retried: every retry was a wake-up that preempted the
 * worker sharing its core, and a push as soon as one slot was free (2
 * workers, batch 16: the engine waited on a full ring half of the time,
 * and copies ran at half speed: docs/MEASUREMENTS.md). */
enum { FULL_SPIN_NS = 2000 };

uint64_t tkv__blocks_for(uint64_t tokens, uint32_t block_tokens)
{
	return (tokens + block_tokens - 1) / block_tokens;
}

int tkv__rt_check(const tkv_runtime *rt)
{
	if (!rt)
		return tkv__fail(-EINVAL, "runtime: NULL");
	if (ck_pr_load_32((uint32_t *)&rt->closing))
		return tkv__fail(-EBADF, "runtime: closing");
	return 0;
}

static int check_store(const tkv_runtime *rt, uint32_t layer, uint32_t n, const void *k,
		       const void *v)
{
	if (layer >= rt->cfg.n_layers)
		return tkv__fail(-EINVAL, "store: layer %u out of range (n_layers %u)", layer,
				 rt->cfg.n_layers);
	if (n == 0)
		return tkv__fail(-EINVAL, "store: n_tokens is 0");
	if (!k || !v)
		return tkv__fail(-EINVAL, "store: NULL %s buffer", !k ? "K" : "V");
	size_t bytes;
	if (__builtin_mul_overflow((size_t)n, rt->geo.row_bytes, &bytes) ||
	    bytes > (SIZE_MAX >> 1))
		return tkv__fail(-EOVERFLOW, "store: %u tokens overflow a buffer size", n);
	return 0;
}

/* One attempt; false when the worker's queue is full. The bench's mutex
 * queue goes through the same backoff below, so the baseline differs from
 * the ring only in the hand-off itself (queue_mutex.c). *at: the queue
 * position d got. */
static bool try_push(tkv_runtime *rt, tkv__worker *w, const tkv__desc *d, uint64_t *at)
{
	if (CK_CC_UNLIKELY(rt->queue == TKV__QUEUE_MUTEX))
		return tkv__mq_push(w, d, at);
	return tkv__dring_push_mp_at(&w->ring, d, at);
}

/* Pushes d; on a full queue either -EAGAIN or bounded backoff. */
static int push(tkv_runtime *rt, tkv__worker *w, tkv__desc *d, unsigned flags, uint64_t *at)
{
	if (try_push(rt, w, d, at))
		return 0;
	ck_pr_inc_64(&rt->ring_full_events);
	if (flags & TKV_STORE_NONBLOCK)
		return tkv__fail(-EAGAIN, "store: worker %u ring full", w->index);
	tkv__trace_buf *tb = tkv__tracer_thread(rt->tracer, NULL);
	uint64_t t0 = tkv__now_ns(), tt = tkv__trace_begin(tb), attempts = 1;
	for (;; attempts++) {
		if (try_push(rt, w, d, at))
			break;
		if (ck_pr_load_32(&rt->closing))
			return tkv__fail(-EBADF, "store: runtime closing");
		if (tkv__now_ns() - t0 < FULL_SPIN_NS) {
			ck_pr_stall();
			continue;
		}
		uint32_t t = tkv__wake_prepare(&w->room);
		if (try_push(rt, w, d, at)) {
			tkv__wake_cancel(&w->room);
			break;
		}
		tkv__wake_wait(&w->room, t, rt->room_nap_ns);
	}
	tkv__trace_end(tb, TKV__TRACE_RING_WAIT, tt, w->index, attempts);
	return 0;
}

/* Hot capacity for a batch. With a cold tier a full hot tier is waited out
 * while the evictor can free space (-EAGAIN instead when non-blocking);
 * -ENOSPC only when the evictor cannot, or there is no cold tier. */
int tkv__reserve_hot(tkv_runtime *rt, uint64_t blocks, unsigned flags)
{
	tkv__space_wait w = {.blocks = blocks};
	if (blocks > rt->geo.hot_blocks) {
		ck_pr_inc_64(&rt->enospc_events);
		return tkv__fail(-ENOSPC, "store: %llu blocks of one layer are more than the whole "
				 "hot tier (%llu blocks): store fewer tokens per call",
				 (unsigned long long)blocks, (unsigned long long)rt->geo.hot_blocks);
	}
	while (!tkv__hot_reserve(&rt->hot, blocks)) {
		if (rt->ev && (flags & TKV_STORE_NONBLOCK)) {
			tkv__evictor_want(rt->ev, blocks); /* the retry finds room */
			return tkv__fail(-EAGAIN, "store: hot tier full, evictor behind");
		}
		if (!rt->ev || tkv__evictor_wait_space(rt->ev, &w)) {
			tkv__evictor_wait_end(rt->ev, &w);
			/* the evictor cannot make room: unreferenced cache
			 * blocks in RAM go before a store is refused */
			if (rt->cache && tkv__cache_reclaim_hot(rt->cache, blocks) > 0) {
				w = (tkv__space_wait){.blocks = blocks};
				continue;
			}
			ck_pr_inc_64(&rt->enospc_events);
			return tkv__fail(-ENOSPC, "store: hot tier full (%llu blocks)%s",
					 (unsigned long long)rt->geo.hot_blocks,
					 rt->ev ? " and nothing more can be evicted" : "");
		}
	}
	if (rt->ev) {
		if (w.t0) /* the common store never waited: no call for it */
			tkv__evictor_wait_end(rt->ev, &w);
		tkv__evictor_note_usage(rt->ev, tkv__hot_used(&rt->hot));
	}
	return 0;
}

static int store_locked(tkv_runtime *rt, tkv__seq *s, uint32_t layer, uint64_t pos,
			uint32_t n, const void *k, const void *v, unsigned flags, uint64_t *at)
{
	int rc;
	tkv__layer *l = &s->layers[layer];
	const uint32_t bt = rt->cfg.block_tokens;
	uint64_t next = l->next_pos; /* ours: one producer per sequence */
	if (pos != next)
		return tkv__fail(-EINVAL,
				 "store: sequence %llu layer %u: position %llu is not "
				 "contiguous (next expected %llu: %s)",
				 (unsigned long long)s->id, layer, (unsigned long long)pos,
				 (unsigned long long)next, pos > next ? "gap" : "overlap");
	uint64_t end;
	if (__builtin_add_overflow(pos, (uint64_t)n, &end))
		return tkv__fail(-EOVERFLOW, "store: position overflows");
	uint64_t new_blocks = tkv__blocks_for(end, bt) - tkv__blocks_for(pos, bt);
	if (new_blocks && (rc = tkv__reserve_hot(rt, new_blocks, flags)))
		return rc;
	tkv__desc d = {s, k, v, pos, n, layer};
	tkv__worker *w = tkv__worker_of(rt, layer);
	rc = push(rt, w, &d, flags, at);
	if (rc) {
		tkv__hot_release(&rt->hot, new_blocks);
		return rc;
	}
	/* Readers on other threads check ranges against next_pos. */
	ck_pr_store_64(&l->next_pos, end);
	tkv__worker_kick(w);
	return 0;
}

int tkv_store(tkv_runtime *rt, uint64_t seq_id, uint32_t layer, uint64_t pos, uint32_t n_tokens,
	      const void *k, const void *v, unsigned flags, tkv_ticket *ticket)
{
	int rc = tkv__rt_check(rt);
	if (rc || (rc = check_store(rt, layer, n_tokens, k, v)))
		return rc;
	tkv__trace_buf *tb = tkv__tracer_thread(rt->tracer, NULL);
	uint64_t t0 = tkv__trace_begin(tb);
	tkv__seq *s = tkv__seq_get(&rt->seqs, seq_id);
	if (!s)
		return tkv__fail(-ENOENT, "store: sequence %llu is not open",
				 (unsigned long long)seq_id);
	uint64_t at = 0;
	rc = store_locked(rt, s, layer, pos, n_tokens, k, v, flags, &at);
	tkv__seq_put(s);
	tkv__trace_end(tb, TKV__TRACE_STORE, t0, (uint32_t)seq_id, n_tokens);
	/* The queue position, for a waiter that copies the batch itself
	 * (copy_ahead.c): 32 bits plus one, 0 meaning none. */
	if (rc == 0 && ticket)
		*ticket = (tkv_ticket){seq_id, pos + n_tokens, layer, (uint32_t)at + 1};
	return rc;
}

int64_t tkv_batch_hint(tkv_runtime *rt, uint64_t seq_id, uint32_t layer, uint32_t cap)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	if (layer >= rt->cfg.n_layers)
		return tkv__fail(-EINVAL, "batch_hint: layer %u out of range", layer);
	tkv__seq *s = tkv__seq_get(&rt->seqs, seq_id);
	if (!s)
		return tkv__fail(-ENOENT, "batch_hint: sequence %llu is not open",
				 (unsigned long long)seq_id);
	uint32_t bt = rt->cfg.block_tokens;
	uint64_t next = ck_pr_load_64(&s->layers[layer].next_pos);
	tkv__seq_put(s);
	int64_t left = bt - (int64_t)(next % bt);
	return (cap && cap < left) ? cap : left;
}
