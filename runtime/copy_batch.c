/*
 * copy_batch.c - what copying one batch into the hot tier takes, whoever
 * copies it: its owner worker, a thief worker (worker.c, Stealing) or the
 * engine thread waiting on its ticket (copy_ahead.c). Allocating the
 * blocks it starts, copying its rows, and handing on the blocks it fills.
 * Publishing it (done_pos) is the completer's: completion.c.
 */
#include <errno.h>

#include <ck_pr.h>

#include "runtime/copy_batch.h"
#include "runtime/runtime.h"

/*
 * The hot blocks a descriptor writes are allocated before any copy of its
 * group (tkv__batch_prepare), not as each copy reaches them. An arena
 * allocation takes its pool's mutex, and a locked instruction flushes the
 * write-combining buffers (Intel SDM vol. 3, 11.3.1): one taken right
 * after a streamed copy waited for that copy's stores to reach memory, a
 * second drain beside the run's fence at every new block (at batch 16,
 * every descriptor). perf, 1 worker: tkv__arena_alloc and the mutex
 * unlock were 3.6% of the worker's samples (docs/MEASUREMENTS.md). Taken
 * after the previous run's fence, the locks find nothing to drain.
 */
/* d's layer lost a block (tkv__batch_copy): nothing more is allocated, copied
 * by a thief, or handed on for it. */
bool tkv__batch_layer_failed(const tkv__desc *d)
{
	return ck_pr_load_32((uint32_t *)&d->seq->layers[d->layer].error) != 0;
}

void tkv__batch_prepare(struct tkv_runtime *rt, const tkv__desc *d, bool thief)
{
	const uint32_t bt = rt->cfg.block_tokens;
	/* A layer that lost a block allocates no more: the blocks after it
	 * had reservations that tkv__batch_copy gave back (see there). */
	if (tkv__batch_layer_failed(d))
		return;
	/* A thief allocates only the blocks that start in its batch (whose
	 * reservations the batch made): one that starts in an earlier batch
	 * is that batch's to allocate, or to give back if it cannot. The
	 * owner gets here only after every earlier batch of its queue. */
	const uint64_t last = (d->pos + d->n_tokens - 1) / bt;
	for (uint64_t b = thief ? tkv__blocks_for(d->pos, bt) : d->pos / bt; b <= last; b++) {
		tkv__unit *u = tkv__seq_unit_make(d->seq, b);
		if (!u)
			return;
		tkv__block *blk = &u->blocks[d->layer];
		if (ck_pr_load_ptr(&blk->mem))
			continue;
		void *mem = tkv__hot_alloc(&rt->hot, d->layer);
		if (!mem)
			return; /* tkv__batch_copy reports it */
		/* Readers get it with the done_pos release. One CAS: the owner
		 * and a thief never both allocate one block (only the batch it
		 * starts in does), but a lost race must not leak a block. */
		if (!ck_pr_cas_ptr(&blk->mem, NULL, mem))
			tkv__hot_free(&rt->hot, d->layer, mem);
	}
}

void tkv__batch_copy(struct tkv_runtime *rt, const tkv__desc *d)
{
	tkv__layer *l = &d->seq->layers[d->layer];
	const size_t row = rt->geo.row_bytes;
	const uint32_t bt = rt->cfg.block_tokens;
	uint64_t pos = d->pos;
	uint32_t left = d->n_tokens;
	const unsigned char *k = d->k, *v = d->v;

	while (left) {
		uint64_t b = pos / bt;
		uint32_t off = (uint32_t)(pos % bt);
		uint32_t m = bt - off < left ? bt - off : left;
		tkv__unit *u = tkv__seq_unit_make(d->seq, b);
		tkv__block *blk = u ? &u->blocks[d->layer] : NULL;
		unsigned char *dst = blk ? ck_pr_load_ptr(&blk->mem) : NULL; /* tkv__batch_prepare's */
		if (!dst) {
			/* Space was reserved at store time, so this is a real
			 * out-of-memory: make the layer report it rather than
			 * pretend the tokens are there, and give back the
			 * reservations this batch made (the blocks that start
			 * in it, from b on; block b's is an earlier batch's
			 * when the batch starts inside it) of the blocks that
			 * will never exist: none is allocated after the error
			 * (tkv__batch_prepare). Only a layer's owner gets here in
			 * order; a thief gives such a batch back (steal_group). */
			ck_pr_store_32((uint32_t *)&l->error, (uint32_t)-ENOMEM);
			uint64_t first = off ? b + 1 : b, end = tkv__blocks_for(pos + left, bt);
			if (end > first)
				tkv__hot_release(&rt->hot, end - first);
			return;
		}
		rt->hot_copy(dst + (size_t)off * row, k, (size_t)m * row);
		rt->hot_copy(dst + ((size_t)bt + off) * row, v, (size_t)m * row);
		k += (size_t)m * row;
		v += (size_t)m * row;
		pos += m;
		left -= m;
	}
}

/* Whether every block d writes is there (tkv__batch_prepare got them all) and
 * its layer has not failed. */
bool tkv__batch_blocks_ready(struct tkv_runtime *rt, const tkv__desc *d)
{
	const uint32_t bt = rt->cfg.block_tokens;
	if (tkv__batch_layer_failed(d))
		return false;
	for (uint64_t b = d->pos / bt; b <= (d->pos + d->n_tokens - 1) / bt; b++) {
		tkv__unit *u = tkv__seq_unit(d->seq, b);
		if (!u || !ck_pr_load_ptr(&u->blocks[d->layer].mem))
			return false;
	}
	return true;
}

/* The blocks whose last row d wrote go to the evictor and the prefix
 * cache, which read them from other threads. At completion, in order, and
 * after the run's fence: a thief may have written the block's last rows
 * before its owner wrote the first ones (Stealing). */
void tkv__batch_hand_on(struct tkv_runtime *rt, const tkv__desc *d)
{
	if (!rt->ev && !rt->tiers.cache)
		return;
	/* a layer that lost a block may have others with rows never written */
	if (tkv__batch_layer_failed(d))
		return;
	const uint32_t bt = rt->cfg.block_tokens;
	const uint64_t end = d->pos + d->n_tokens;
	for (uint64_t b = d->pos / bt; (b + 1) * bt <= end; b++) {
		tkv__unit *u = tkv__seq_unit(d->seq, b);
		if (u && ck_pr_load_ptr(&u->blocks[d->layer].mem))
			tkv__unit_block_full(&rt->tiers, d->seq, u, b);
	}
}
