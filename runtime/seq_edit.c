/*
 * seq_edit.c - tkv_seq_truncate and tkv_seq_fork: the two calls that change
 * a sequence other than by appending. Both wait for the sequence's pending
 * stores first, and neither ever writes a block another sequence or the
 * cache may see: a block they would write into is copied (copy-on-write)
 * into a fresh unit of the sequence's own.
 *
 * Names. A unit's cold record is named by the unit (block_store.h); a
 * sequence's own blocks are named (id, b). A unit truncate lets go of may
 * live on a little (the evictor may be writing it) while the sequence
 * stores that block again under the same name: the newer record wins (the
 * larger seqno), and the old unit removes only its own record when it dies
 * (rec_seqno), never the new one. The copy of the block the cut lands in is
 * named (id, TKV__COW_BLOCK | n), n a process-wide counter, so that it never
 * shares a name with the unit it replaces while both live: never a real
 * block index, so a restarted runtime re-attaching the sequence's records
 * stops before it (tkv_seq_open recovers blocks 0.. up to the first gap).
 * A fork shares every full block; a block two sequences share gets an
 * anonymous name (make_shareable). The fork's copy of the partial last
 * block belongs to the new id: (new_id, b).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>

#include "base/error.h"
#include "base/fence.h"
#include "runtime/runtime.h"

#define TKV__COW_BLOCK (1ull << 62)

static uint64_t cow_counter; /* names of truncate's copies (atomic; process-wide) */
static uint64_t anon_counter; /* names of shared private blocks (atomic) */

/* Anonymous names live beside the cache's records: never a cache entry id
 * (those count up from 1), listed and removed with them at open when they
 * are not cache records (a restarted runtime has no sequence to give them
 * to), and never removed by a sequence's close. */
#define TKV__ANON_SEQ TKV__CACHE_SEQ
#define TKV__ANON_BLOCK (1ull << 63)


/* Every layer's stored length if they agree, else UINT64_MAX. */
static uint64_t common_length(const tkv__seq *s)
{
	uint64_t len = ck_pr_load_64((uint64_t *)&s->layers[0].next_pos);
	for (uint32_t l = 1; l < s->n_layers; l++)
		if (ck_pr_load_64((uint64_t *)&s->layers[l].next_pos) != len)
			return UINT64_MAX;
	return len;
}

static uint64_t min_length(const tkv__seq *s)
{
	uint64_t len = UINT64_MAX;
	for (uint32_t l = 0; l < s->n_layers; l++) {
		uint64_t n = ck_pr_load_64((uint64_t *)&s->layers[l].next_pos);
		len = n < len ? n : len;
	}
	return len;
}

/*
 * A private copy of block b of s (every layer, promoted from the cold tier
 * if needed), named (rec_seq, rec_block), holding hot reservations of its
 * own. `full` says whether the copy is a complete block (then it is
 * evictable at once) or a block the sequence will go on writing.
 */
static int copy_unit(tkv_runtime *rt, tkv__seq *s, uint64_t b, uint64_t rec_seq,
		     uint64_t rec_block, bool full, tkv__unit **out)
{
	const uint32_t nl = rt->cfg.n_layers;
	int rc = tkv__reserve_hot(rt, nl, 0);
	if (rc)
		return rc;
	tkv__unit *nu = tkv__unit_new(nl, rec_seq, rec_block);
	if (!nu) {
		tkv__hot_release(&rt->hot, nl);
		return tkv__fail(-ENOMEM, "copy of block %llu: out of memory", (unsigned long long)b);
	}
	uint32_t got = 0;
	for (uint32_t l = 0; l < nl && !rc; l++) {
		const unsigned char *src;
		void *dst = tkv__hot_alloc(&rt->hot, l);
		if (!dst) {
			rc = tkv__fail(-ENOMEM, "copy of block %llu: out of memory",
				       (unsigned long long)b);
			break;
		}
		nu->blocks[l].mem = dst;
		got++;
		if ((rc = tkv__block_pin(rt->ev, s, l, b, &src)))
			break;
		rt->kern->copy(dst, src, rt->geo.block_bytes);
		tkv__block_unpin(s, l, b);
	}
	tkv__hot_release(&rt->hot, nl - got); /* blocks never allocated */
	if (rc) {
		tkv__unit_destroy(&rt->tiers, nu); /* frees what it got */
		return rc;
	}
	if (full) {
		nu->layers_full = nl;
		if (rt->ev)
			tkv__evictor_unit_full(rt->ev, nu);
	}
	*out = nu;
	return 0;
}

/* Every layer of s now ends at n: nothing of it is pending (drained).
 * Atomic stores: tkv_prefetch checks its range against next_pos without
 * E1 (a stale length only queues blocks the prefetch thread then skips). */
static void set_length(tkv__seq *s, uint64_t n)
{
	for (uint32_t l = 0; l < s->n_layers; l++) {
		ck_pr_store_64(&s->layers[l].next_pos, n);
		ck_pr_store_64(&s->layers[l].done_pos, n);
		ck_pr_store_64(&s->layers[l].retired_pos, n);
	}
}

/* Drops the table's reference to a unit truncate removed (see "Names"). */
static void let_go(tkv_runtime *rt, tkv__unit *u)
{
	if (u)
		tkv__unit_put(&rt->tiers, u);
}

static int truncate_locked(tkv_runtime *rt, tkv__seq *s, uint64_t n)
{
	const uint32_t bt = rt->cfg.block_tokens;
	uint64_t stored = min_length(s), longest = 0;
	if (n > stored)
		return tkv__fail(-EINVAL, "seq_truncate: %llu tokens, but only %llu are stored in "
				 "every layer", (unsigned long long)n, (unsigned long long)stored);
	if (ck_pr_load_32(&s->pins))
		return tkv__fail(-EBUSY, "seq_truncate: sequence %llu has views held",
				 (unsigned long long)s->id);
	for (uint32_t l = 0; l < s->n_layers; l++) {
		uint64_t next = ck_pr_load_64(&s->layers[l].next_pos);
		longest = next > longest ? next : longest;
	}
	uint64_t keep = tkv__blocks_for(n, bt);
	if (n % bt) {
		/* the cut lands inside block n / bt: the sequence will write
		 * into it again, so it gets a copy of its own */
		uint64_t pb = n / bt;
		tkv__unit *nu;
		int rc = copy_unit(rt, s, pb, s->id,
				   TKV__COW_BLOCK | ck_pr_faa_64(&cow_counter, 1), false, &nu);
		if (rc)
			return rc;
		let_go(rt, tkv__seq_unit_take(s, pb));
		tkv__seq_unit_set(s, pb, nu); /* the entry exists: cannot fail */
	}
	for (uint64_t b = keep; b < tkv__blocks_for(longest, bt); b++)
		let_go(rt, tkv__seq_unit_take(s, b));
	set_length(s, n);
	if (s->tok.known > n)
		s->tok.known = n;
	if (s->tok.keyed > n / bt)
		s->tok.keyed = n / bt;
	return 0;
}

int tkv_seq_truncate(tkv_runtime *rt, uint64_t seq_id, uint64_t n_tokens)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	tkv__seq *s = tkv__seq_get(&rt->seqs, seq_id);
	if (!s)
		return tkv__fail(-ENOENT, "seq_truncate: sequence %llu is not open",
				 (unsigned long long)seq_id);
	tkv__seq_drain(rt, s);
	/* E2: readers and prefetch of s back off from here on; wait for the
	 * ones in progress (their references) to finish. Ours is the one
	 * left. */
	ck_pr_store_32(&s->editing, 1);
	tkv__fence_full();
	while (ck_pr_load_32(&s->refs) > 1)
		sched_yield();
	ck_pr_fence_acquire(); /* their accesses before our swaps */
	rc = truncate_locked(rt, s, n_tokens);
	ck_pr_fence_release(); /* the swapped table before readers return */
	ck_pr_store_32(&s->editing, 0);
	tkv__seq_put(s);
	return rc;
}

/* The fork's token ids and keys: the source's, with its salt. */
static int copy_tokens(tkv_runtime *rt, const tkv__seq *s, tkv__seq *y)
{
	y->tok.cache = s->tok.cache;
	y->tok.salt_id_hi = s->tok.salt_id_hi;
	y->tok.salt_id_lo = s->tok.salt_id_lo;
	if (!rt->cache || !s->tok.known)
		return 0;
	if (s->tok.salt_len) {
		if (!(y->tok.salt = malloc(s->tok.salt_len)))
			return -ENOMEM;
		memcpy(y->tok.salt, s->tok.salt, s->tok.salt_len);
		y->tok.salt_len = s->tok.salt_len;
	}
	uint32_t *ids = malloc(s->tok.known * sizeof(uint32_t));
	if (!ids)
		return -ENOMEM;
	tkv__seq_tokens_copy(s, rt->cfg.block_tokens, 0, s->tok.known, ids);
	int rc = tkv__seq_tokens_append(rt->cache, y, ids, s->tok.known);
	free(ids);
	return rc;
}

static bool all_layers_hot(const tkv__unit *u)
{
	for (uint32_t l = 0; l < u->n_layers; l++)
		if (!ck_pr_load_ptr((void **)&u->blocks[l].mem))
			return false;
	return true;
}

/*
 * A full block two sequences share must not be named after either of them
 * (closing one removes every record named after its id): a private one gets
 * an anonymous name, (TKV__ANON_SEQ, TKV__ANON_BLOCK | n), first. Cache
 * entries have names of their own already. Done under the PUBLISHING state
 * so the evictor cannot be writing it meanwhile; false (the caller copies
 * the block instead) when the evictor has it, or when its only copy of some
 * layer is a record under the old name.
 */
static bool make_shareable(tkv_runtime *rt, tkv__unit *u)
{
	if (ck_pr_load_32(&u->published) == TKV__PUB_YES || u->rec_seq == TKV__ANON_SEQ)
		return true;
	if (!ck_pr_cas_32(&u->state, TKV__UNIT_HOT, TKV__UNIT_PUBLISHING))
		return false;
	bool ok = true;
	if (ck_pr_load_32(&u->cold)) {
		ok = rt->ev && all_layers_hot(u);
		if (ok) {
			tkv__evictor_forget_record(rt->ev, u);
			ck_pr_store_32(&u->cold, 0);
		}
	}
	if (ok) {
		u->rec_seq = TKV__ANON_SEQ;
		u->rec_block = TKV__ANON_BLOCK | ck_pr_faa_64(&anon_counter, 1);
		u->rec_seqno = 0;
	}
	ck_pr_fence_release(); /* the new name before the evictor's CAS */
	ck_pr_store_32(&u->state, TKV__UNIT_HOT);
	return ok;
}

/* Fills y's table from s: every full block shared (a reference each; made
 * shareable first), the partial last block copied. */
static int fill_fork(tkv_runtime *rt, tkv__seq *s, tkv__seq *y, uint64_t len)
{
	const uint32_t bt = rt->cfg.block_tokens;
	for (uint64_t b = 0; b < tkv__blocks_for(len, bt); b++) {
		tkv__unit *u = tkv__seq_unit(s, b), *nu;
		bool full = (b + 1) * bt <= len;
		int rc;
		if (full && u && make_shareable(rt, u)) {
			tkv__unit_ref(u); /* s's table holds it: it cannot go */
			nu = u;
		} else if ((rc = copy_unit(rt, s, b, y->id, b, full, &nu))) {
			return rc;
		}
		if ((rc = tkv__seq_unit_set(y, b, nu))) {
			tkv__unit_put(&rt->tiers, nu);
			return tkv__fail(rc, "seq_fork: out of memory");
		}
	}
	set_length(y, len);
	return 0;
}

int tkv_seq_fork(tkv_runtime *rt, uint64_t seq_id, uint64_t new_id)
{
	int rc = tkv__rt_check(rt);
	/* an open new_id (seq_id itself included) is refused before its name
	 * is given to copies the evictor could write over its records */
	if (rc || (rc = tkv__seq_id_check(new_id, "seq_fork")) ||
	    (rc = tkv__seq_not_open(rt, new_id, "seq_fork")))
		return rc;
	tkv__seq *s = tkv__seq_get(&rt->seqs, seq_id);
	if (!s)
		return tkv__fail(-ENOENT, "seq_fork: sequence %llu is not open",
				 (unsigned long long)seq_id);
	tkv__seq_drain(rt, s);
	uint64_t len = common_length(s);
	tkv__seq *y = NULL;
	if (len == UINT64_MAX)
		rc = tkv__fail(-EINVAL, "seq_fork: sequence %llu has layers of different lengths",
			       (unsigned long long)seq_id);
	else if (!(y = tkv__seq_new(new_id, rt->cfg.n_layers)))
		rc = tkv__fail(-ENOMEM, "seq_fork: out of memory");
	else if (copy_tokens(rt, s, y))
		rc = tkv__fail(-ENOMEM, "seq_fork: out of memory");
	else
		rc = fill_fork(rt, s, y, len);
	tkv__seq_put(s);
	if (rc) {
		if (y)
			tkv__seq_discard(rt, y);
		return rc;
	}
	return tkv__seq_insert_fresh(rt, y, "seq_fork");
}
