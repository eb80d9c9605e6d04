/*
 * queue_mutex.c - a mutex + condition-variable descriptor queue, used in
 * place of the ck ring only by the benchmark's "mutex-queue" baseline (see
 * tkv__open_ex). It exists so the bench can show what the lock-free ring buys
 * inside the very same pipeline; the runtime never picks it by itself.
 */
#include <errno.h>

#include "base/error.h"
#include "runtime/runtime.h"

void tkv__mq_init(tkv__worker *w)
{
	pthread_mutex_init(&w->mq_lock, NULL);
	pthread_cond_init(&w->mq_not_empty, NULL);
	pthread_cond_init(&w->mq_not_full, NULL);
	w->mq_head = w->mq_tail = 0;
}

void tkv__mq_fini(tkv__worker *w)
{
	pthread_mutex_destroy(&w->mq_lock);
	pthread_cond_destroy(&w->mq_not_empty);
	pthread_cond_destroy(&w->mq_not_full);
}

/* Same capacity as the ring it replaces: slots - 1. */
static bool mq_full(const tkv__worker *w, uint32_t slots)
{
	return w->mq_tail - w->mq_head >= slots - 1;
}

int tkv__mq_push(tkv__worker *w, const tkv__desc *d, bool nonblock, uint64_t *full_events)
{
	const uint32_t slots = w->rt->cfg.ring_slots;
	pthread_mutex_lock(&w->mq_lock);
	if (mq_full(w, slots)) {
		(*full_events)++;
		if (nonblock) {
			pthread_mutex_unlock(&w->mq_lock);
			return tkv__fail(-EAGAIN, "store: worker %u queue full", w->index);
		}
		while (mq_full(w, slots))
			pthread_cond_wait(&w->mq_not_full, &w->mq_lock);
	}
	w->slots[w->mq_tail++ & (slots - 1)] = *d;
	pthread_cond_signal(&w->mq_not_empty);
	pthread_mutex_unlock(&w->mq_lock);
	return 0;
}

bool tkv__mq_pop(tkv__worker *w, tkv__desc *d)
{
	const uint32_t slots = w->rt->cfg.ring_slots;
	pthread_mutex_lock(&w->mq_lock);
	while (w->mq_head == w->mq_tail && !w->mq_stop)
		pthread_cond_wait(&w->mq_not_empty, &w->mq_lock);
	bool got = w->mq_head != w->mq_tail; /* stop drains what is queued */
	if (got) {
		*d = w->slots[w->mq_head++ & (slots - 1)];
		pthread_cond_signal(&w->mq_not_full);
	}
	pthread_mutex_unlock(&w->mq_lock);
	return got;
}

void tkv__mq_stop(tkv__worker *w)
{
	pthread_mutex_lock(&w->mq_lock);
	w->mq_stop = true;
	pthread_cond_broadcast(&w->mq_not_empty);
	pthread_mutex_unlock(&w->mq_lock);
}
