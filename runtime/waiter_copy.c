/*
 * waiter_copy.c - a ticket's waiter copies its own batch instead of
 * sleeping behind the batches queued before it.
 *
 * Why. A worker copies its queue in acceptance order, so a waited-on batch
 * waits for every batch queued ahead of it, whatever their size. With many
 * engine threads that is the common case: in the held-out style program
 * (issue 11; 64 engine threads on 2 cores, batches of 1-64 tokens, each
 * thread waiting on its tickets) the threads with the most small-batch
 * round trips queued each of them behind other threads' large batches and
 * finished last, at 64 threads 0.57-0.81 of the 1-thread throughput
 * (docs/MEASUREMENTS.md, "The held-out style program at 96 sequences").
 * The waiter has nothing else to do, and its core is as good as a
 * worker's for a copy: so when its store is still queued, far enough from
 * the front that the owner is not about to take it, the waiter claims it
 * the way a thief worker does (desc_ring.h), copies it, and, when every
 * earlier batch of its layer has completed, completes it itself. Its
 * round trip is then its own copy, not the queue's.
 *
 * Order. A layer's batches still complete in acceptance order: the waiter
 * completes only when the layer's retired_pos has reached its batch (the
 * last completion of the layer, done_pos and its wake-ups included, has
 * finished), and while it holds the slot claimed the owner cannot pass it
 * to complete a later batch of the layer. Otherwise it marks the slot
 * copied and the owner completes it in order, as a thief's. A batch whose
 * blocks cannot all be had goes back to its owner uncopied (the owner meets
 * failures in order, worker.c).
 */
#include <ck_pr.h>

#include "base/trace.h"
#include "runtime/copy_batch.h"
#include "runtime/runtime.h"

/* A waiter leaves its owner the next WAITER_LEAVE queued descriptors: the
 * owner is about to take them, and would only wait at a claimed slot. */
enum { WAITER_LEAVE = 8 };

/* Claims position lo (low 32 bits) of w's queue if it is queued at least
 * WAITER_LEAVE behind the front and unclaimed; *pos is its full position. */
static bool claim(tkv_runtime *rt, tkv__worker *w, uint32_t lo, uint64_t *pos, tkv__desc *d)
{
	if (rt->queue == TKV__QUEUE_MUTEX) {
		*pos = lo;
		return tkv__mq_claim_queued(w, lo, WAITER_LEAVE, d);
	}
	return tkv__dring_queued_pos(&w->ring, lo, pos) &&
	       *pos - tkv__dring_tail(&w->ring) >= WAITER_LEAVE &&
	       tkv__dring_steal(&w->ring, *pos, d);
}

/* How a waiter lets go of its claimed slot. */
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
	tkv__wake_signal(&w->idle); /* the owner may wait at this slot */
}

bool tkv__waiter_copy(tkv_runtime *rt, tkv__seq *s, uint32_t layer, uint64_t end,
		      uint32_t queue_pos)
{
	if (!rt->waiter_copies || !queue_pos)
		return false;
	tkv__worker *w = tkv__worker_of(rt, layer);
	uint64_t pos;
	tkv__desc d;
	if (!claim(rt, w, queue_pos - 1, &pos, &d))
		return false;
	/* 32 bits of a position name one queued descriptor, but a ticket kept
	 * for 2^32 stores of its worker could name another one's */
	if (d.seq != s || d.layer != layer || d.pos + d.n_tokens != end) {
		release(rt, w, pos, RETURN);
		return false;
	}
	tkv__batch_prepare(rt, &d, true);
	if (!tkv__batch_blocks_ready(rt, &d)) {
		release(rt, w, pos, RETURN);
		return false;
	}
	const uint64_t bytes = (uint64_t)d.n_tokens * rt->geo.layer_token_bytes;
	tkv__trace_buf *tb = tkv__tracer_thread(rt->tracer, NULL);
	uint64_t t0 = tkv__trace_begin(tb);
	tkv__batch_copy(rt, &d);
	tkv__trace_end(tb, TKV__TRACE_COPY, t0, layer, bytes);
	if (rt->hot_streams)
		tkv__stream_fence(); /* the rows before COPIED or done_pos */
	ck_pr_faa_64(&rt->waiter_batches, 1);
	ck_pr_faa_64(&rt->waiter_tokens, d.n_tokens);
	ck_pr_faa_64(&rt->waiter_bytes, bytes);
	tkv__layer *l = &s->layers[layer];
	if (ck_pr_load_64(&l->retired_pos) != d.pos) {
		release(rt, w, pos, COPIED); /* the owner completes it in order */
		return false;
	}
	ck_pr_fence_acquire(); /* the last completer's writes to the layer (C3) */
	tkv__batch_hand_on(rt, &d);
	tkv__trace_instant(tb, TKV__TRACE_TICKET_DONE, (uint32_t)s->id, end);
	tkv__layer_complete(l, end);
	release(rt, w, pos, DONE);
	return true;
}
