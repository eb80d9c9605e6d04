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
 * as much as ring versus mutex.
 */
#include <errno.h>
#include <stdlib.h>

#include <ck_pr.h>

#include "base/error.h"
#include "runtime/runtime.h"

/* The mutex is initialized with the worker (worker.c, mq_ready), whatever
 * its queue; this allocates the slots of a mutex-queue runtime. */
int tkv__mq_init(tkv__worker *w)
{
	w->mq_head = w->mq_tail = 0;
	w->mq_slots = calloc(w->rt->cfg.ring_slots, sizeof(*w->mq_slots));
	return w->mq_slots ? 0 : -ENOMEM;
}

void tkv__mq_fini(tkv__worker *w)
{
	pthread_mutex_destroy(&w->mq_lock);
	free(w->mq_slots);
	w->mq_slots = NULL;
}

bool tkv__mq_push(tkv__worker *w, const tkv__desc *d)
{
	const uint32_t slots = w->rt->cfg.ring_slots;
	pthread_mutex_lock(&w->mq_lock);
	bool room = w->mq_tail - w->mq_head < slots - 1;
	if (room) {
		w->mq_slots[w->mq_tail & (slots - 1)] = *d;
		/* an atomic store: tkv__mq_idle reads it without the lock */
		ck_pr_store_32(&w->mq_tail, w->mq_tail + 1);
	}
	pthread_mutex_unlock(&w->mq_lock);
	return room;
}

uint32_t tkv__mq_pop_batch(tkv__worker *w, tkv__desc *out, uint32_t max)
{
	const uint32_t slots = w->rt->cfg.ring_slots;
	uint32_t n = 0;
	pthread_mutex_lock(&w->mq_lock);
	for (; n < max && w->mq_head != w->mq_tail; n++)
		out[n] = w->mq_slots[w->mq_head++ & (slots - 1)];
	pthread_mutex_unlock(&w->mq_lock);
	return n;
}

/* The worker's idle check, without the lock: only the worker moves head,
 * and a tail it reads stale is caught by the event count's re-check after
 * the producer's kick (base/wake.h). */
bool tkv__mq_idle(tkv__worker *w)
{
	return ck_pr_load_32(&w->mq_tail) == w->mq_head;
}
