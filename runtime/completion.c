/*
 * completion.c - waiting for stores: tickets, sequence sync, and the wait a
 * read or view does for pending stores it covers.
 *
 * A ticket is (sequence, layer, end position): a layer's batches are copied
 * in acceptance order (runtime.h), so "done_pos >= end" means this store and
 * every earlier one to the layer are readable. Nothing is allocated per
 * store. Waiters spin a little where a CPU is free of workers (a batch of a
 * few tokens finishes within microseconds; see Spinning), then sleep on
 * their layer's event count (base/wake.h); a ticket's waiter first on a
 * later layer of the same worker (see "Where a ticket's waiter sleeps").
 * A waiter also
 * lowers the layer's wait_min to the position it needs, and the worker
 * signals only when done_pos reaches it: a thread waiting for the end of a
 * long prefill is not woken by every batch of it, nor by other layers.
 */
#include <errno.h>
#include <sched.h>

#include <ck_pr.h>

#include "base/error.h"
#include "base/fence.h"
#include "runtime/runtime.h"

/*
 * Spinning. A waiter polls WAIT_SPINS times (~4 us) before it sleeps, but
 * only on a CPU no worker needs: at most rt->wait_spin_cpus waiters spin at
 * once, the CPUs of the opener's affinity mask beyond one per worker
 * (runtime.c). Where the workers take every CPU (2 workers on 2 cores
 * here) a spinning waiter can only run on a worker's core, and every pause
 * it spends there is copy time the worker loses: `tierkv-bench producers`
 * stored 8.1-8.8 GB/s at 1 engine thread with that spin and 9.5-11.7
 * without, 3 alternated runs each (docs/MEASUREMENTS.md, "Waiters spin
 * only on free CPUs"). A ticket's wait is usually a copy of tens to
 * hundreds of KiB, longer than a sleep and wake-up, so the spin is short
 * even where it is allowed: 2048 pauses (~60 us, before issue 11) cost
 * 0.58-0.72 CPU s per GB at 1 thread, 128 cost 0.35.
 */
enum { WAIT_SPINS = 128 };

bool tkv__spin_claim(tkv_runtime *rt)
{
	uint32_t n = ck_pr_load_32(&rt->wait_spinning);
	while (n < rt->wait_spin_cpus)
		if (ck_pr_cas_32_value(&rt->wait_spinning, n, n + 1, &n)) {
			ck_pr_inc_64(&rt->wait_spins);
			return true;
		}
	return false;
}

void tkv__spin_release(tkv_runtime *rt)
{
	ck_pr_dec_32(&rt->wait_spinning);
}

static bool reached(const tkv__layer *l, uint64_t end)
{
	bool ok = ck_pr_load_64((uint64_t *)&l->done_pos) >= end;
	/* Acquire: pairs with the worker's release before done_pos, so the
	 * caller may now read the rows and table entries below end. */
	ck_pr_fence_acquire();
	return ok;
}

/* Lowers l->wait_min to end (a CAS loop: waiters on one layer race). */
static void lower_wait_min(tkv__layer *l, uint64_t end)
{
	uint64_t cur = ck_pr_load_64(&l->wait_min);
	while (end < cur && !ck_pr_cas_64_value(&l->wait_min, cur, end, &cur))
		;
}

/*
 * The pairs, for grep:
 *   C1 (waiter: wait_min lowered, full fence, done_pos loaded) pairs with
 *   C2 (worker: done_pos stored, full fence, waiters and wait_min loaded):
 *   either the waiter sees its position reached, or the worker sees the
 *   waiter and a wait_min it has reached, and signals.
 * The ticket is read (in prepare) before wait_min is lowered: a worker that
 * resets wait_min after our lowering signals after it too, which moves the
 * count off our ticket (base/wake.h, S2), so our sleep returns at once and
 * we lower it again.
 */
/* Sleeps until l reaches end (the C1/C2 protocol above). A layer already
 * there costs one load: no announcement, and no wait_min lowered for the
 * worker to act on later (tkv_wait checks its own layer after the proxy,
 * which has usually finished it). */
static void sleep_until(tkv__layer *l, uint64_t end)
{
	while (!reached(l, end)) {
		uint32_t t = tkv__wake_prepare(&l->done_wake);
		lower_wait_min(l, end);
		tkv__fence_full(); /* C1 */
		if (reached(l, end)) {
			tkv__wake_cancel(&l->done_wake);
			return;
		}
		tkv__wake_wait(&l->done_wake, t, 0);
	}
}

/* Spins on l if a spinning slot is free (see Spinning); true if l got
 * there meanwhile. */
static bool spin_until(tkv_runtime *rt, const tkv__layer *l, uint64_t end)
{
	if (reached(l, end))
		return true;
	if (!rt->wait_spin_cpus || !tkv__spin_claim(rt))
		return false;
	bool done = false;
	for (int i = 0; i < WAIT_SPINS && !done; i++) {
		ck_pr_stall();
		done = reached(l, end);
	}
	tkv__spin_release(rt);
	return done;
}

void tkv__wait_done(tkv_runtime *rt, tkv__layer *l, uint64_t end)
{
	if (!spin_until(rt, l, end))
		sleep_until(l, end);
}

/*
 * Where a ticket's waiter sleeps. An engine stores every layer of a step
 * and then waits on each ticket in layer order; a worker copies its layers'
 * batches in acceptance order. Woken as soon as its own layer is done, the
 * waiter of layer 0 would find layer 2 still being copied and sleep again,
 * once per layer of the worker: up to n_layers / n_workers futex wake-ups
 * per step, each paid by the worker between two copies (and with more
 * engine threads than cores, often a preemption of the worker by the
 * thread it woke). So a waiter that has to sleep sleeps on the last layer
 * of the same worker whose store reaching `end` is already accepted: when
 * that one is done, so is every earlier one accepted before it, and the
 * engine's next waits return at once. It then checks its own layer (done,
 * unless the later one was accepted first) and waits on it as usual. The
 * ticket completes later than its own copy by the copies queued behind it
 * that the same engine already asked for and will wait for next, and by
 * whatever other sequences queued on that worker in between.
 */
static const tkv__layer *sleep_proxy(const tkv_runtime *rt, const tkv__seq *s, uint32_t layer,
				     uint64_t end)
{
	const tkv__layer *p = &s->layers[layer];
	for (uint32_t l = layer + rt->n_workers; l < s->n_layers; l += rt->n_workers)
		if (ck_pr_load_64((uint64_t *)&s->layers[l].next_pos) >= end)
			p = &s->layers[l];
	return p;
}

void tkv__layer_complete(tkv__layer *l, uint64_t end)
{
	/* Release: the copied rows and block-table entries happen before any
	 * reader's acquire of done_pos. */
	ck_pr_fence_release();
	ck_pr_store_64(&l->done_pos, end);
	tkv__fence_full(); /* C2 */
	if (ck_pr_load_32(&l->done_wake.waiters) && end >= ck_pr_load_64(&l->wait_min)) {
		ck_pr_store_64(&l->wait_min, UINT64_MAX);
		ck_pr_store_32(&l->signals, l->signals + 1); /* one completer at a time */
		tkv__wake_signal(&l->done_wake);
	}
	/* Release (C3): the last access of this batch to the sequence; the
	 * closer acquires retired_pos before freeing it (tkv__seq_drain). */
	ck_pr_fence_release();
	ck_pr_store_64(&l->retired_pos, end);
}

static int layer_status(const tkv__layer *l)
{
	return (int)ck_pr_load_32((uint32_t *)&l->error);
}

int tkv_wait(tkv_runtime *rt, const tkv_ticket *t)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	if (!t)
		return tkv__fail(-EINVAL, "wait: NULL ticket");
	if (t->layer >= rt->cfg.n_layers)
		return tkv__fail(-EINVAL, "wait: ticket layer %u out of range", t->layer);
	tkv__seq *s = tkv__seq_get(&rt->seqs, t->seq_id);
	if (!s)
		return tkv__fail(-ENOENT, "wait: sequence %llu is not open",
				 (unsigned long long)t->seq_id);
	tkv__layer *l = &s->layers[t->layer];
	if (!spin_until(rt, l, t->end_pos) &&
	    !tkv__waiter_copy(rt, s, t->layer, t->end_pos, t->queue_pos)) {
		tkv__layer *p = (tkv__layer *)sleep_proxy(rt, s, t->layer, t->end_pos);
		if (p != l)
			sleep_until(p, t->end_pos);
		sleep_until(l, t->end_pos);
	}
	rc = layer_status(l);
	tkv__seq_put(s);
	return rc ? tkv__fail(rc, "wait: layer %u lost tokens: out of memory", t->layer) : 0;
}

bool tkv_ticket_done(tkv_runtime *rt, const tkv_ticket *t)
{
	if (tkv__rt_check(rt) || !t || t->layer >= rt->cfg.n_layers)
		return true; /* nothing left to wait for */
	tkv__seq *s = tkv__seq_get(&rt->seqs, t->seq_id);
	if (!s)
		return true;
	bool done = reached(&s->layers[t->layer], t->end_pos);
	tkv__seq_put(s);
	return done;
}

/* Waits for every layer of s to reach what was accepted so far, the last
 * layer first: an engine stores layers in forward order and each
 * worker copies its queue in order, so once the last layer is done the
 * others mostly are too and the sync sleeps about once per worker. In
 * layer order it slept and was woken once per layer, a futex wake-up on
 * the worker's time between two copies (16 us median here, a fifth of the
 * worker's time at batch 64: docs/MEASUREMENTS.md). */
void tkv__seq_drain(tkv_runtime *rt, tkv__seq *s)
{
	for (uint32_t i = s->n_layers; i-- > 0;) {
		tkv__layer *l = &s->layers[i];
		uint64_t end = ck_pr_load_64(&l->next_pos);
		tkv__wait_done(rt, l, end);
		/* The worker is a few instructions from C3 now, unless it was
		 * preempted there (more engine threads than cores): after a
		 * short spin, give the core away instead of spinning a slice. */
		for (unsigned spins = 0; ck_pr_load_64(&l->retired_pos) < end; spins++) {
			if (spins < 64)
				ck_pr_stall();
			else
				sched_yield();
		}
		ck_pr_fence_acquire(); /* pairs with C3 */
	}
}

int tkv_seq_sync(tkv_runtime *rt, uint64_t seq_id)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	tkv__seq *s = tkv__seq_get(&rt->seqs, seq_id);
	if (!s)
		return tkv__fail(-ENOENT, "seq_sync: sequence %llu is not open",
				 (unsigned long long)seq_id);
	tkv__seq_drain(rt, s);
	for (uint32_t i = 0; i < s->n_layers && !rc; i++)
		rc = layer_status(&s->layers[i]);
	tkv__seq_put(s);
	return rc ? tkv__fail(rc, "seq_sync: a layer lost tokens: out of memory") : 0;
}
