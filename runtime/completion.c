/*
 * completion.c - waiting for stores: tickets, sequence sync, and the wait a
 * read or view does for pending stores it covers.
 *
 * A ticket is (sequence, layer, end position): a layer's batches are copied
 * in acceptance order (runtime.h), so "done_pos >= end" means this store and
 * every earlier one to the layer are readable. Nothing is allocated per
 * store. Waiters spin a little (most batches finish within microseconds),
 * then sleep on the owning worker's completion futex.
 */
#include <errno.h>

#include <ck_pr.h>

#include "runtime/error.h"
#include "runtime/futex.h"
#include "runtime/runtime.h"

enum { WAIT_SPINS = 2048 };

static bool reached(const tkv__layer *l, uint64_t end)
{
	bool ok = ck_pr_load_64((uint64_t *)&l->done_pos) >= end;
	/* Acquire: pairs with the worker's release before done_pos, so the
	 * caller may now read the rows and table entries below end. */
	ck_pr_fence_acquire();
	return ok;
}

void tkv__wait_done(tkv__worker *w, const tkv__layer *l, uint64_t end)
{
	for (int i = 0; i < WAIT_SPINS; i++) {
		if (reached(l, end))
			return;
		ck_pr_stall();
	}
	for (;;) {
		ck_pr_inc_32(&w->waiters);
		/* Full fence: our waiters count before our done_pos load; the
		 * worker stores done_pos, fences, then loads waiters. */
		ck_pr_fence_memory();
		uint32_t e = ck_pr_load_32(&w->epoch);
		if (reached(l, end)) {
			ck_pr_dec_32(&w->waiters);
			return;
		}
		tkv__futex_wait(&w->epoch, e, 0);
		ck_pr_dec_32(&w->waiters);
	}
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
	tkv__wait_done(tkv__worker_of(rt, t->layer), l, t->end_pos);
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

/* Waits for every layer of s to reach what was accepted so far. */
void tkv__seq_drain(tkv_runtime *rt, tkv__seq *s)
{
	for (uint32_t i = 0; i < s->n_layers; i++) {
		tkv__layer *l = &s->layers[i];
		tkv__wait_done(tkv__worker_of(rt, i), l, ck_pr_load_64(&l->next_pos));
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
