/*
 * queue_mutex.c - a mutex-protected descriptor queue, used in place of the
 * lock-free ring only by the benchmark's "mutex-queue" baseline (see
 * tkv__open_ex). It exists so the bench can show what the lock-free ring
 * buys inside the very same pipeline; the runtime never picks it by itself.
 *
 * To isolate the queue, everything around it is the ring's: the same
 * capacity (slots - 1), the same producer backoff when full and -EAGAIN for
 * non-blocking stores (store.c), the same worker idle policy (spin, yield,
 * then sleep on the worker's event count; worker.c), the same kick after
 * a push and the same groups of copies per fence (worker.c). The one
 * difference is the hand-off: a push takes the mutex, and the worker
 * drains up to a group of descriptors per lock acquisition, as a mutex
 * queue would be used by anyone who cared about its speed. Until
 * issue 11 this baseline slept on a condition variable at once while the
 * ring's worker spun first, so the comparison measured spin versus sleep
 * as much as ring versus mutex. Stealing too is the ring's (worker.c,
 * Stealing): a thief marks a slot it copies, the owner stops at a marked
 * slot until the thief's copy is done and then only completes it; here
 * the marks are read and written under the owner's mutex.
 */
#include <errno.h>
#include <stdlib.h>

#include <ck_pr.h>

#include "base/error.h"
#include "runtime/runtime.h"

/* A slot's claim (mq_claim): queued for its owner, a thief copying it,
 * copied by a thief and waiting for its owner to complete it, given back
 * uncopied (only its owner takes it), or copied and completed by its
 * ticket's waiter (the owner only takes it out). */
enum { MQ_QUEUED = 0, MQ_STOLEN, MQ_COPIED, MQ_RETURNED, MQ_DONE };

/* The mutex is initialized with the worker (worker.c, mq_ready), whatever
 * its queue; this allocates the slots of a mutex-queue runtime. */
int tkv__mq_init(tkv__worker *w)
{
	w->mq_head = w->mq_tail = 0;
	w->mq_slots = calloc(w->rt->cfg.ring_slots, sizeof(*w->mq_slots));
	w->mq_claim = calloc(w->rt->cfg.ring_slots, sizeof(*w->mq_claim));
	return w->mq_slots && w->mq_claim ? 0 : -ENOMEM;
}

void tkv__mq_fini(tkv__worker *w)
{
	pthread_mutex_destroy(&w->mq_lock);
	free(w->mq_slots);
	free(w->mq_claim);
	w->mq_slots = NULL;
	w->mq_claim = NULL;
}

bool tkv__mq_push(tkv__worker *w, const tkv__desc *d, uint64_t *at)
{
	const uint32_t slots = w->rt->cfg.ring_slots;
	pthread_mutex_lock(&w->mq_lock);
	bool room = w->mq_tail - w->mq_head < slots - 1;
	if (room) {
		*at = w->mq_tail;
		w->mq_slots[w->mq_tail & (slots - 1)] = *d;
		/* an atomic store: tkv__mq_idle reads it without the lock */
		ck_pr_store_32(&w->mq_tail, w->mq_tail + 1);
	}
	pthread_mutex_unlock(&w->mq_lock);
	return room;
}

uint32_t tkv__mq_pop_batch(tkv__worker *w, tkv__desc *out, tkv__dring_got *got, uint32_t max)
{
	const uint32_t mask = w->rt->cfg.ring_slots - 1;
	uint32_t n = 0;
	pthread_mutex_lock(&w->mq_lock);
	for (; n < max && w->mq_head != w->mq_tail; n++) {
		uint32_t i = w->mq_head & mask, c = w->mq_claim[i];
		if (c == MQ_STOLEN)
			break; /* its thief's mark_copied kicks us */
		out[n] = w->mq_slots[i];
		got[n] = c == MQ_COPIED ? TKV__DRING_COPIED
			 : c == MQ_DONE ? TKV__DRING_DONE
					: TKV__DRING_TAKEN;
		ck_pr_store_32(&w->mq_claim[i], MQ_QUEUED);
		w->mq_head++;
	}
	pthread_mutex_unlock(&w->mq_lock);
	return n;
}

bool tkv__mq_steal(tkv__worker *w, uint64_t pos, tkv__desc *out)
{
	const uint32_t mask = w->rt->cfg.ring_slots - 1, p = (uint32_t)pos;
	pthread_mutex_lock(&w->mq_lock);
	/* still queued: at or after head, before tail (wrapping counters) */
	bool ok = p - w->mq_head < w->mq_tail - w->mq_head &&
		  w->mq_claim[p & mask] == MQ_QUEUED;
	if (ok) {
		ck_pr_store_32(&w->mq_claim[p & mask], MQ_STOLEN);
		*out = w->mq_slots[p & mask];
	}
	pthread_mutex_unlock(&w->mq_lock);
	return ok;
}

static void set_claim(tkv__worker *w, uint64_t pos, uint32_t claim)
{
	pthread_mutex_lock(&w->mq_lock);
	ck_pr_store_32(&w->mq_claim[(uint32_t)pos & (w->rt->cfg.ring_slots - 1)], claim);
	pthread_mutex_unlock(&w->mq_lock);
}

void tkv__mq_mark_copied(tkv__worker *w, uint64_t pos)
{
	set_claim(w, pos, MQ_COPIED);
}

void tkv__mq_return(tkv__worker *w, uint64_t pos)
{
	set_claim(w, pos, MQ_RETURNED);
}

void tkv__mq_mark_done(tkv__worker *w, uint64_t pos)
{
	set_claim(w, pos, MQ_DONE);
}

bool tkv__mq_claim_queued(tkv__worker *w, uint32_t lo, uint32_t leave, tkv__desc *out)
{
	const uint32_t mask = w->rt->cfg.ring_slots - 1;
	pthread_mutex_lock(&w->mq_lock);
	/* queued (wrapping counters), leave or more behind the front, unclaimed */
	bool ok = lo - w->mq_head < w->mq_tail - w->mq_head && lo - w->mq_head >= leave &&
		  w->mq_claim[lo & mask] == MQ_QUEUED;
	if (ok) {
		ck_pr_store_32(&w->mq_claim[lo & mask], MQ_STOLEN);
		*out = w->mq_slots[lo & mask];
	}
	pthread_mutex_unlock(&w->mq_lock);
	return ok;
}

void tkv__mq_span(tkv__worker *w, uint64_t *head, uint64_t *tail)
{
	pthread_mutex_lock(&w->mq_lock);
	*head = w->mq_head;
	*tail = *head + (uint32_t)(w->mq_tail - w->mq_head);
	pthread_mutex_unlock(&w->mq_lock);
}

/* The worker's idle checks, without the lock: only the worker moves head,
 * and a tail or a claim it reads stale is caught by the event count's
 * re-check after the producer's or the thief's kick (base/wake.h). */
bool tkv__mq_idle(tkv__worker *w)
{
	return ck_pr_load_32(&w->mq_tail) == w->mq_head ||
	       ck_pr_load_32(&w->mq_claim[w->mq_head & (w->rt->cfg.ring_slots - 1)]) ==
		       MQ_STOLEN;
}

bool tkv__mq_front_claimed(tkv__worker *w)
{
	return ck_pr_load_32(&w->mq_tail) != w->mq_head &&
	       ck_pr_load_32(&w->mq_claim[w->mq_head & (w->rt->cfg.ring_slots - 1)]) ==
		       MQ_STOLEN;
}

bool tkv__mq_empty(tkv__worker *w)
{
	return ck_pr_load_32(&w->mq_tail) == w->mq_head;
}
