/*
 * copy_ahead.c - copying a queued batch before its turn, and completing it
 * then when its layer allows: by a ticket's waiter (its own batch), and by
 * a worker whose queue is blocked at a batch someone else is copying.
 *
 * Why a waiter copies its own batch. A worker copies its queue in
 * acceptance order, so a waited-on batch waits for every batch queued
 * ahead of it, whatever their size. With many engine threads that is the
 * common case: in the held-out style program (issue 11; 64 engine threads
 * on 2 cores, batches of 1-64 tokens, each thread waiting on its tickets)
 * the threads with the most small-batch round trips queued each of them
 * behind other threads' large batches and finished last
 * (docs/MEASUREMENTS.md, "The held-out style program at 96 sequences";
 * its 64-thread throughput figures there read high, the program's clock
 * starting late: "The held-out style program's clock, corrected"). The
 * waiter has nothing else to
 * do, and its core is as good as a worker's for a copy: so when its store
 * is still queued, far enough from the front that the owner is not about
 * to take it, the waiter claims it the way a thief worker does
 * (desc_ring.h), copies it, and completes it. Its round trip is then its
 * own copy, not the queue's.
 *
 * Why the owner copies ahead. A claimed slot stops its owner (completions
 * go in claim order), and an engine thread, unlike a pinned worker, is
 * often preempted for a whole time slice, mid-copy: the owner would idle
 * behind that one slot. So an owner blocked at a claimed slot claims the
 * published slots behind it, up to a group, and copies and completes them
 * the same way; its pops later only take them out. (It cannot free the
 * slots behind the held one; a waiter that is its layer's next completer
 * does not hold its slot at all: take_and_complete.)
 *
 * Order. A layer's batches still complete in acceptance order, one
 * completer at a time: a batch copied ahead is completed by its copier only
 * when its layer's retired_pos has reached the batch's first position (the
 * last completion of the layer, done_pos and its wake-ups included, has
 * finished; exactly one batch starts there, and its copier holds it
 * claimed). Otherwise the slot is marked copied and the owner completes it
 * when its turn comes, as a thief's. A batch whose blocks cannot all be
 * had goes back to its owner uncopied (the owner meets failures in order,
 * worker.c).
 */
#include <sched.h>

#include <ck_pr.h>

#include "base/trace.h"
#include "runtime/copy_batch.h"
#include "runtime/runtime.h"

/* A waiter leaves its owner the next WAITER_LEAVE queued descriptors: the
 * owner is about to take them, and would only wait at a claimed slot. An
 * owner copies at most AHEAD_GROUP descriptors ahead per call (then looks
 * at its queue's front again), looking at most AHEAD_PROBES slots. */
enum { WAITER_LEAVE = 8, AHEAD_GROUP = 16, AHEAD_PROBES = 64 };

/* How a copier lets go of its claimed slot. */
enum give { RETURN, COPIED, DONE };

static void release(tkv_runtime *rt, tkv__worker *w, uint64_t pos, enum give how)
{
	if (rt->queue == TKV__QUEUE_MUTEX)
		how == RETURN ? tkv__mq_return(w, pos)
		: how == COPIED ? tkv__mq_mark_copied(w, pos)
				: tkv__mq_mark_done(w, pos);
	else
		how == RETURN ? tkv__dring_return(&w->ring, pos)
		: how == COPIED ? tkv__dring_mark_copied(&w->ring, pos)
				: tkv__dring_mark_done(&w->ring, pos);
}

/* d's rows into its blocks, traced, fenced when streamed (before COPIED
 * or done_pos). */
static void copy_traced(tkv_runtime *rt, const tkv__desc *d, tkv__trace_buf *tb)
{
	uint64_t t0 = tkv__trace_begin(tb);
	tkv__batch_copy(rt, d);
	tkv__trace_end(tb, TKV__TRACE_COPY, t0, d->layer,
		       (uint64_t)d->n_tokens * rt->geo.layer_token_bytes);
	if (rt->hot_streams)
		tkv__stream_fence();
}

/* Completes d as its layer's completer (retired_pos is at d->pos): full
 * blocks handed on, then done_pos and retired_pos. d->seq may be closed
 * and freed afterwards, unless the caller holds a reference (a waiter
 * does). */
static void complete(tkv_runtime *rt, const tkv__desc *d, tkv__trace_buf *tb)
{
	const uint64_t end = d->pos + d->n_tokens;
	tkv__batch_hand_on(rt, d);
	tkv__trace_instant(tb, TKV__TRACE_TICKET_DONE, (uint32_t)d->seq->id, end);
	tkv__layer_complete(&d->seq->layers[d->layer], end);
}

/* Copies d, claimed at position pos of w's queue, and completes it if its
 * layer has retired up to it (DONE), else leaves it to the owner (COPIED);
 * RETURN when its blocks are not all there. */
static enum give copy_claimed(tkv_runtime *rt, tkv__worker *w, uint64_t pos, const tkv__desc *d,
			      tkv__trace_buf *tb)
{
	tkv__batch_prepare(rt, d, true);
	if (!tkv__batch_blocks_ready(rt, d)) {
		release(rt, w, pos, RETURN);
		return RETURN;
	}
	copy_traced(rt, d, tb);
	if (ck_pr_load_64(&d->seq->layers[d->layer].retired_pos) != d->pos) {
		release(rt, w, pos, COPIED); /* the owner completes it in order */
		return COPIED;
	}
	ck_pr_fence_acquire(); /* the last completer's writes to the layer (C3) */
	complete(rt, d, tb);
	release(rt, w, pos, DONE);
	return DONE;
}

/*
 * How many waiters copy at once. A waiter that copies is one more thread
 * that wants a CPU, next to the pinned workers and the storing threads.
 * Where the workers take every CPU (2 workers on 2 cores here), every
 * waiter copying at once (TKV_WAIT_COPY_ALL), in `tierkv-bench producers`
 * at 4-16 engine threads, cut the median batch wait from 176-915 us to
 * 76-117 us but made the p99 2-3 times longer (2.1-6.5 ms against
 * 0.7-3.5: a waiter preempted in the middle of its own copies). One at a
 * time kept the wait p99 at the sleeping waiters' and most of the gain
 * in the held-out style program's tierkv share (+7-8% at 64 threads,
 * docs/MEASUREMENTS.md, "Waiters copy their own batches" and "The
 * held-out style program's clock, corrected"). So by default
 * (TKV_WAIT_COPY_OWN) at most as many waiters copy at once as there are
 * CPUs beyond one per worker (rt->wait_spin_cpus, the same CPUs waiters
 * may spin on), and at least one; the others sleep as before.
 */
static bool copy_slot_claim(tkv_runtime *rt)
{
	uint32_t n = ck_pr_load_32(&rt->waiters_copying);
	while (n < rt->waiter_copy_max)
		if (ck_pr_cas_32_value(&rt->waiters_copying, n, n + 1, &n))
			return true;
	return false;
}

/*
 * An owner that is asleep (announced on its idle event count, worker.c
 * idle_sleep) is not about to take its front: the store that woke it ran
 * a moment ago, and the woken worker needs tens of microseconds on this
 * VM to run. A waiter whose store is at the front then copies it itself
 * rather than sleep until the owner has copied it and woken it back: an
 * engine that stores one layer and waits on it at once (1 engine thread,
 * round trip per layer) otherwise pays two cross-thread wake-ups per
 * batch. Only a batch it can take whole (its layer's next to complete):
 * one it could copy but not complete would hold the front slot while the
 * waiter copies, and a preempted waiter would stop the owner's queue.
 * Racy by design: an owner that wakes first wins the claim.
 */
static bool owner_asleep(tkv__worker *w)
{
	return ck_pr_load_32(&w->idle.waiters) != 0;
}

/* Claims position lo (low 32 bits) of w's queue if it is unclaimed and
 * queued at least WAITER_LEAVE behind the front, or nearer while the
 * owner sleeps (owner_asleep; then *near); *pos is its full position. */
static bool waiter_claim(tkv_runtime *rt, tkv__worker *w, uint32_t lo, uint64_t *pos,
			 tkv__desc *d, bool *near)
{
	if (rt->queue == TKV__QUEUE_MUTEX) {
		*pos = lo;
		*near = false;
		if (tkv__mq_claim_queued(w, lo, WAITER_LEAVE, d))
			return true;
		*near = owner_asleep(w);
		return *near && tkv__mq_claim_queued(w, lo, 0, d);
	}
	if (!tkv__dring_queued_pos(&w->ring, lo, pos))
		return false;
	*near = *pos - tkv__dring_tail(&w->ring) < WAITER_LEAVE;
	return (!*near || owner_asleep(w)) && tkv__dring_steal(&w->ring, *pos, d);
}

/*
 * A waiter whose batch is its layer's next to complete (retired_pos is at
 * its first position) takes it whole: it marks the slot DONE before it
 * copies, so the owner takes the slot out at once and its queue never
 * stops behind a waiter that is preempted mid-copy (a slot held at the
 * front keeps every slot behind it from being reused). The
 * waiter then does what the owner would have done, in order, failures
 * included (tkv__batch_prepare as the owner, tkv__batch_copy reports a
 * missing block), and completes it. taken_end tells the owner to copy and
 * complete no later batch of the layer before that (tkv__wait_taken);
 * waiters_open keeps copies_pending true meanwhile (runtime.c).
 */
static void take_and_complete(tkv_runtime *rt, tkv__worker *w, uint64_t pos, const tkv__desc *d,
			      tkv__trace_buf *tb)
{
	ck_pr_inc_32(&rt->waiters_open);
	ck_pr_store_64(&d->seq->layers[d->layer].taken_end, d->pos + d->n_tokens);
	release(rt, w, pos, DONE); /* DR8: taken_end and the count before DONE */
	tkv__wake_signal(&w->idle);
	if (CK_CC_UNLIKELY(rt->test_taken_hook != NULL))
		rt->test_taken_hook(rt);
	tkv__batch_prepare(rt, d, false);
	copy_traced(rt, d, tb);
	complete(rt, d, tb);
	ck_pr_fence_release(); /* the completion before the count drops */
	ck_pr_dec_32(&rt->waiters_open);
}

bool tkv__taken_pending(const tkv__desc *d)
{
	const tkv__layer *l = &d->seq->layers[d->layer];
	uint64_t te = ck_pr_load_64((uint64_t *)&l->taken_end);
	/* te > d->pos: a later batch, or none (0 is below every end) */
	return te != 0 && te <= d->pos && ck_pr_load_64((uint64_t *)&l->retired_pos) < te;
}

void tkv__wait_taken(const tkv__desc *d)
{
	/* the waiter is copying, unless it was preempted: spin a little, then
	 * give the core away (it may be the waiter's) */
	for (unsigned spins = 0; tkv__taken_pending(d); spins++) {
		if (spins < 64)
			ck_pr_stall();
		else
			sched_yield();
	}
	ck_pr_fence_acquire(); /* the waiter's rows, blocks and failure (C3) */
}

bool tkv__waiter_copy(tkv_runtime *rt, tkv__seq *s, uint32_t layer, uint64_t end,
		      uint32_t queue_pos)
{
	if (!rt->waiter_copies || !queue_pos)
		return false;
	tkv__worker *w = tkv__worker_of(rt, layer);
	uint64_t pos;
	tkv__desc d;
	bool near;
	if (!copy_slot_claim(rt))
		return false;
	if (!waiter_claim(rt, w, queue_pos - 1, &pos, &d, &near)) {
		ck_pr_dec_32(&rt->waiters_copying);
		return false;
	}
	enum give how = RETURN;
	tkv__trace_buf *tb = tkv__tracer_thread(rt->tracer, NULL);
	/* 32 bits of a position name one queued descriptor, but a ticket kept
	 * for 2^32 stores of its worker could name another one's */
	if (d.seq != s || d.layer != layer || d.pos + d.n_tokens != end) {
		release(rt, w, pos, RETURN);
	} else if (ck_pr_load_64(&s->layers[layer].retired_pos) == d.pos) {
		ck_pr_fence_acquire(); /* the last completer's writes (C3) */
		take_and_complete(rt, w, pos, &d, tb);
		how = DONE;
	} else if (near) {
		/* a copy it could not complete would hold the front, and the
		 * owner could free no slot behind it: the owner's, in order */
		release(rt, w, pos, RETURN);
	} else {
		how = copy_claimed(rt, w, pos, &d, tb);
	}
	ck_pr_dec_32(&rt->waiters_copying);
	if (how != DONE) /* take_and_complete woke it at once */
		tkv__wake_signal(&w->idle); /* the owner may wait at this slot */
	if (how == RETURN)
		return false;
	ck_pr_faa_64(&rt->waiter_batches, 1);
	ck_pr_faa_64(&rt->waiter_tokens, d.n_tokens);
	ck_pr_faa_64(&rt->waiter_bytes, (uint64_t)d.n_tokens * rt->geo.layer_token_bytes);
	return how == DONE;
}

/* The owner: whether its queue's front is a slot another thread has
 * claimed (a thief's or a waiter's copy), with published slots behind. */
static bool blocked_at_claim(tkv__worker *w, uint64_t *front, uint64_t *back)
{
	if (w->rt->queue == TKV__QUEUE_MUTEX) {
		if (!tkv__mq_front_claimed(w))
			return false;
		tkv__mq_span(w, front, back);
	} else {
		if (!tkv__dring_front_claimed(&w->ring))
			return false;
		*front = tkv__dring_tail(&w->ring);
		*back = tkv__dring_claimed(&w->ring);
	}
	return *back - *front > 1;
}

uint32_t tkv__owner_copy_ahead(tkv__worker *w)
{
	tkv_runtime *rt = w->rt;
	uint64_t front, back;
	if (!blocked_at_claim(w, &front, &back))
		return 0;
	uint32_t n = 0;
	for (uint64_t p = front + 1, probes = 0; p < back && n < AHEAD_GROUP && probes < AHEAD_PROBES;
	     p++, probes++) {
		tkv__desc d;
		bool got = rt->queue == TKV__QUEUE_MUTEX ? tkv__mq_steal(w, p, &d)
							 : tkv__dring_steal(&w->ring, p, &d);
		if (!got)
			continue; /* claimed, given back, or not published yet */
		/* before the copy: d's sequence may go once it is completed */
		const uint32_t tokens = d.n_tokens;
		if (copy_claimed(rt, w, p, &d, w->tb) == RETURN)
			continue;
		const uint64_t bytes = (uint64_t)tokens * rt->geo.layer_token_bytes;
		ck_pr_store_64(&w->tokens, w->tokens + tokens);
		ck_pr_store_64(&w->bytes, w->bytes + bytes);
		ck_pr_store_64(&w->batches, w->batches + 1);
		ck_pr_store_64(&w->copied_ahead, w->copied_ahead + 1);
		n++;
	}
	return n;
}
