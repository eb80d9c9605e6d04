/*
 * cache.c - the prefix cache (design in cache.h): the key -> entry index,
 * publishing, lookups, the drop tree and its policy, recovery from the
 * cold tier, and a sequence's token ids and keys.
 */
#include "tiers/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ck_pr.h>

#include "base/array.h"
#include "base/error.h"
#include "base/fence.h"
#include "tiers/evictor.h"
#include "tiers/shared_tier.h"

#define N_STRIPES 64

/* S3-FIFO's small queue share in the drop policy, which holds chain ends
 * only (cache.h, "Dropping"). Measured on the whole Mooncake trace, hot
 * only, hit ratio at 0.1 / 0.25 of the working set (exact LRU: 0.2630 /
 * 0.4447): 10% 0.2262 / 0.4178, 30% 0.2504 / 0.4351, 50% 0.2616 / 0.4517,
 * 60% 0.2662 / 0.4554, 80% 0.2614 / 0.4580 (bench/README.md). */
#define DROP_SMALL_PERCENT 60

typedef struct stripe {
	pthread_mutex_t lock;
	tkv__cache_ent **buckets;
	size_t n_buckets; /* power of two */
	size_t count;
} __attribute__((aligned(64))) stripe;

struct tkv__cache {
	const tkv__tiers *tiers;
	tkv__key ns;
	uint32_t n_layers, block_tokens;
	size_t block_bytes;
	stripe st[N_STRIPES];

	/* Drops (cache.h, "Dropping"): the policy holds the entries no other
	 * entry follows; the tree lock guards every entry's pent, children and
	 * in_pol, and membership changes (it is taken before the policy's). */
	const tkv__policy_ops *pol_ops;
	tkv__policy *pol;
	pthread_mutex_t tree_lock __attribute__((aligned(64)));
	bool closing; /* close: entries are freed without touching others */

	tkv__shared_tier *shared; /* NULL without a shared tier */
	bool write_through;       /* write to it at publish, not at drop */

	uint64_t next_id __attribute__((aligned(64))); /* cold record names */
	/* counters (atomic) */
	uint64_t lookups, lookup_blocks, hit_hot, hit_cold;
	uint64_t published, deduplicated, publish_skipped;
	uint64_t dropped_hot, dropped_cold, dropped_other, recovered;
	uint64_t undroppable; /* entries the drop policy could not take (ENOMEM) */
	uint64_t uses __attribute__((aligned(64))); /* attaching lookups (last_use ticks) */
	uint64_t hit_shared, offered_shared;
};

/* ---- index -------------------------------------------------------------- */

static stripe *stripe_of(tkv__cache *c, tkv__key k)
{
	return &c->st[k.lo % N_STRIPES];
}

static tkv__cache_ent **bucket_of(stripe *s, tkv__key k)
{
	return &s->buckets[(k.hi ^ (k.lo >> 6)) & (s->n_buckets - 1)];
}

/* Doubles a stripe's buckets when chains average over 2; on ENOMEM the
 * chains just get longer. Stripe lock held. */
static void maybe_grow(stripe *s)
{
	if (s->count < 2 * s->n_buckets)
		return;
	size_t n = s->n_buckets * 2;
	tkv__cache_ent **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	tkv__cache_ent **old = s->buckets;
	size_t old_n = s->n_buckets;
	s->buckets = nb;
	s->n_buckets = n;
	for (size_t i = 0; i < old_n; i++)
		for (tkv__cache_ent *e = old[i], *next; e; e = next) {
			next = e->hnext;
			tkv__cache_ent **b = bucket_of(s, e->key);
			e->hnext = *b;
			*b = e;
		}
	free(old);
}

static bool same_tokens(const tkv__cache *c, const tkv__cache_ent *e, const uint32_t *tokens)
{
	return memcmp(e->tokens, tokens, (size_t)c->block_tokens * sizeof(uint32_t)) == 0;
}

/* The live entry with this key, these exact tokens and this parent (see
 * "Entries" in cache.h); stripe lock held. */
static tkv__cache_ent *find(tkv__cache *c, stripe *s, tkv__key k, const uint32_t *tokens,
			    tkv__key parent)
{
	for (tkv__cache_ent *e = *bucket_of(s, k); e; e = e->hnext)
		if (tkv__key_eq(e->key, k) && tkv__key_eq(e->parent, parent) &&
		    same_tokens(c, e, tokens) &&
		    ck_pr_load_32(&e->unit->refs) != TKV__UNIT_DEAD)
			return e;
	return NULL;
}

static void unlink_ent(tkv__cache *c, tkv__cache_ent *e)
{
	stripe *s = stripe_of(c, e->key);
	pthread_mutex_lock(&s->lock);
	for (tkv__cache_ent **p = bucket_of(s, e->key); *p; p = &(*p)->hnext)
		if (*p == e) {
			*p = e->hnext;
			s->count--;
			break;
		}
	pthread_mutex_unlock(&s->lock);
}

int tkv__cache_open(const tkv__tiers *t, tkv__key ns, uint32_t n_layers, uint32_t block_tokens,
		    size_t block_bytes, const tkv__policy_ops *policy, size_t expected_entries,
		    tkv__cache **out)
{
	*out = NULL;
	tkv__cache *c = aligned_alloc(64, sizeof(*c));
	if (!c)
		return tkv__fail(-ENOMEM, "open: prefix cache");
	memset(c, 0, sizeof(*c));
	c->tiers = t;
	c->ns = ns;
	c->n_layers = n_layers;
	c->block_tokens = block_tokens;
	c->block_bytes = block_bytes;
	c->next_id = 1; /* 0 is "no entry" in a parent */
	pthread_mutex_init(&c->tree_lock, NULL);
	c->pol_ops = policy;
	if (!(c->pol = policy->create(expected_entries))) {
		pthread_mutex_destroy(&c->tree_lock);
		free(c);
		return tkv__fail(-ENOMEM, "open: prefix cache drop policy");
	}
	if (policy == &tkv__policy_s3fifo)
		tkv__policy_s3fifo_small_share(c->pol, DROP_SMALL_PERCENT);
	for (int i = 0; i < N_STRIPES; i++) {
		pthread_mutex_init(&c->st[i].lock, NULL);
		c->st[i].n_buckets = 16;
		if (!(c->st[i].buckets = calloc(16, sizeof(tkv__cache_ent *)))) {
			tkv__cache_close(c);
			return tkv__fail(-ENOMEM, "open: prefix cache index");
		}
	}
	*out = c;
	return 0;
}

void tkv__cache_close(tkv__cache *c)
{
	if (!c)
		return;
	tkv__cache_drop_all(c);
	/* Left: entries the policy could not take (out of memory in the LRU
	 * heap, counted) or still referenced by a broken caller; free them
	 * without their followers' bookkeeping. */
	c->closing = true;
	for (int i = 0; i < N_STRIPES; i++) {
		stripe *s = &c->st[i];
		for (size_t b = 0; s->buckets && b < s->n_buckets; b++)
			for (tkv__cache_ent *e = s->buckets[b], *next; e; e = next) {
				next = e->hnext;
				tkv__unit_destroy(c->tiers, e->unit);
			}
		free(s->buckets);
		pthread_mutex_destroy(&s->lock);
	}
	c->pol_ops->destroy(c->pol);
	pthread_mutex_destroy(&c->tree_lock);
	free(c);
}

tkv__key tkv__cache_ns(const tkv__cache *c)
{
	return c->ns;
}

/* ---- entries and the drop tree ------------------------------------------ */

static tkv__cache_ent *ent_new(tkv__cache *c, tkv__key k, tkv__key parent,
			       const uint32_t *tokens)
{
	tkv__cache_ent *e = calloc(1, sizeof(*e) + (size_t)c->block_tokens * sizeof(uint32_t));
	if (!e)
		return NULL;
	tkv__policy_node_init(&e->pnode, k.lo); /* the ghost remembers blocks by key */
	e->key = k;
	e->parent = parent;
	memcpy(e->tokens, tokens, (size_t)c->block_tokens * sizeof(uint32_t));
	return e;
}

static tkv__cache_ent *ent_of(tkv__policy_node *n)
{
	return (tkv__cache_ent *)n; /* pnode is the entry's first member */
}

/* Into the drop policy if no entry follows e (tree lock held). `old`: at
 * the eviction end, next in line unless `used` (its last follower was just
 * dropped; policy.h insert_old); else as a new block. An entry the policy
 * cannot take (the LRU heap out of memory) stays until close: counted. */
static void pol_enter(tkv__cache *c, tkv__cache_ent *e, bool old, bool used)
{
	if (e->in_pol || e->children)
		return;
	int rc = old ? c->pol_ops->insert_old(c->pol, &e->pnode, used)
		     : c->pol_ops->insert(c->pol, &e->pnode);
	if (rc == 0)
		e->in_pol = true;
	else
		ck_pr_inc_64(&c->undroppable);
}

/* Out of the drop policy (tree lock held): a pick can no longer take it. */
static void pol_leave(tkv__cache *c, tkv__cache_ent *e)
{
	if (!e->in_pol)
		return;
	c->pol_ops->remove(c->pol, &e->pnode);
	e->in_pol = false;
}

/* e gains / loses a follower: an entry (or a deduplicated copy) whose
 * parent it is. Tree lock held. */
static void follow(tkv__cache *c, tkv__cache_ent *e)
{
	if (e->children++ == 0)
		pol_leave(c, e);
}

/* `last` is the follower that goes: e was used on its own if a lookup
 * matched it after last's newest match (a prompt that stopped at e). */
static void unfollow(tkv__cache *c, tkv__cache_ent *e, const tkv__cache_ent *last)
{
	if (--e->children == 0)
		pol_enter(c, e, true,
			  ck_pr_load_64(&e->last_use) > ck_pr_load_64((uint64_t *)&last->last_use));
}

void tkv__cache_ent_free(tkv__cache *c, tkv__unit *u)
{
	tkv__cache_ent *e = u->ce, *dup = u->dup_ce;
	if (c && (e || dup) && !c->closing) {
		pthread_mutex_lock(&c->tree_lock);
		if (e) {
			pol_leave(c, e); /* a victim is out already: no-op */
			if (e->pent)
				unfollow(c, e->pent, e);
		}
		if (dup) /* u is no entry: dup was not used "without it" */
			unfollow(c, dup, dup);
		pthread_mutex_unlock(&c->tree_lock);
	}
	free(e);
	u->ce = NULL;
	u->dup_ce = NULL;
}

void tkv__cache_put(tkv__cache *c, tkv__unit *u)
{
	/* The last holder of a block whole in RAM lets its cold copy go
	 * (tiers/promote.c). Our reference keeps the unit alive meanwhile; a
	 * lookup attaching it at the same time only means the record goes
	 * while that sequence reads the block, from RAM. At teardown tiers->ev
	 * is NULL: records stay for the next run. */
	if (c->tiers->ev && ck_pr_load_32(&u->refs) == 1)
		tkv__evictor_release_record(c->tiers->ev, u);
	/* No list to relink: whether an entry may be dropped is decided at
	 * the drop, by its refs (CAS 0 -> DEAD) and its followers. */
	(void)tkv__unit_unref(u);
}

static bool holds_hot(const tkv__unit *u)
{
	for (uint32_t l = 0; l < u->n_layers; l++)
		if (ck_pr_load_ptr((void **)&u->blocks[l].mem))
			return true;
	return false;
}

static bool all_hot(const tkv__unit *u)
{
	for (uint32_t l = 0; l < u->n_layers; l++)
		if (!ck_pr_load_ptr((void **)&u->blocks[l].mem))
			return false;
	return true;
}

enum want { WANT_ANY, WANT_HOT, WANT_COLD };

/* The policy's eligible(), under its lock: may this entry go now? It holds
 * what `want` asks for and nobody references it: refs 0 -> DEAD, so no
 * lookup can take it any more. */
static bool droppable(void *ctx, tkv__policy_node *n)
{
	enum want want = *(const enum want *)ctx;
	tkv__unit *u = ent_of(n)->unit;
	if (want == WANT_HOT && !holds_hot(u))
		return false;
	if (want == WANT_COLD && !ck_pr_load_32(&u->cold))
		return false;
	return ck_pr_cas_32(&u->refs, 0, TKV__UNIT_DEAD);
}

/*
 * Takes up to max victims in the drop policy's order (cache.h, "Dropping"):
 * entries no other entry follows, that hold what `want` asks for and that
 * nobody references; each leaves the index. Returns how many were put into
 * victims[].
 */
static size_t take_victims(tkv__cache *c, enum want want, tkv__unit **victims, size_t max)
{
	size_t n = 0;
	while (n < max) {
		tkv__policy_node *p = c->pol_ops->pick(c->pol, droppable, &want);
		if (!p)
			break;
		unlink_ent(c, ent_of(p));
		victims[n++] = ent_of(p)->unit;
	}
	return n;
}

/*
 * A block leaving this node for space goes to the shared tier, unless it
 * is known to be there (fetched from it, or written at publish). Its bytes
 * come from RAM when every layer is there, else from its cold record (a
 * synchronous read: this runs on the evictor, or on a store that found the
 * hot tier full, which is rare and costs less than losing the block). A
 * block that cannot be read, or finds the write queue full, is not offered:
 * counted by the shared tier, and the drop goes on (a cache never refuses).
 */
static void offer_shared(tkv__cache *c, tkv__unit *u)
{
	if (!c->shared || c->write_through || u->ce->in_shared)
		return;
	void *buf = tkv__shared_tier_buf(c->shared);
	if (!buf)
		return;
	bool ok = all_hot(u);
	tkv__cold *cold = c->tiers->ev ? c->tiers->ev->cold : NULL;
	if (ok) {
		for (uint32_t l = 0; l < c->n_layers; l++)
			memcpy(tkv__shared_tier_layer(c->shared, buf, l), u->blocks[l].mem,
			       c->block_bytes);
	} else if (cold && ck_pr_load_32(&u->cold)) {
		ok = tkv__cold_read_record(cold, u->rec_seq, u->rec_block, buf, NULL) == 0;
	}
	if (!ok) {
		tkv__shared_tier_buf_unused(c->shared, buf);
		return;
	}
	tkv__shared_tier_put(c->shared, u->ce->key, u->ce->tokens, buf);
	ck_pr_inc_64(&c->offered_shared);
}

/* Frees dropped units in every tier; returns the hot blocks they held.
 * for_space: dropped to make room (offered to the shared tier first). */
static uint64_t destroy_victims(tkv__cache *c, tkv__unit **victims, size_t n, uint64_t *ctr,
				bool for_space)
{
	uint64_t hot = 0;
	for (size_t i = 0; i < n; i++) {
		if (for_space)
			offer_shared(c, victims[i]);
		for (uint32_t l = 0; l < victims[i]->n_layers; l++)
			hot += victims[i]->blocks[l].mem != NULL;
		tkv__unit_destroy(c->tiers, victims[i]);
		ck_pr_inc_64(ctr);
	}
	return hot;
}

enum { BATCH = 64 };

uint64_t tkv__cache_drop_all(tkv__cache *c)
{
	tkv__unit *v[BATCH];
	uint64_t total = 0;
	size_t n;
	while ((n = take_victims(c, WANT_ANY, v, BATCH)) > 0) {
		destroy_victims(c, v, n, &c->dropped_other, false);
		total += n;
	}
	return total;
}

uint64_t tkv__cache_reclaim_hot(tkv__cache *c, uint64_t blocks)
{
	uint64_t freed = 0;
	while (freed < blocks) {
		tkv__unit *v[4];
		size_t n = take_victims(c, WANT_HOT, v, 4);
		if (!n)
			break;
		freed += destroy_victims(c, v, n, &c->dropped_hot, true);
	}
	return freed;
}

uint64_t tkv__cache_reclaim_cold(tkv__cache *c, uint64_t n)
{
	/* The policy's victims in whichever tier: hot and cold hold one cache
	 * (a block is in one of them, tiers/promote.c), and a hot victim
	 * spares the evictor the write that needed the space. */
	tkv__unit *v[BATCH];
	size_t got = take_victims(c, WANT_ANY, v, n < BATCH ? n : BATCH);
	destroy_victims(c, v, got, &c->dropped_cold, true);
	return got;
}

/* ---- publishing --------------------------------------------------------- */

/* Write-through: a copy of the block to the shared tier's queue, made while
 * the unit is PUBLISHING (the evictor cannot take its layers away). */
static void write_through(tkv__cache *c, tkv__unit *u)
{
	void *buf = tkv__shared_tier_buf(c->shared);
	if (!buf)
		return; /* queue full: counted there */
	for (uint32_t l = 0; l < c->n_layers; l++)
		memcpy(tkv__shared_tier_layer(c->shared, buf, l), u->blocks[l].mem, c->block_bytes);
	tkv__shared_tier_put(c->shared, u->ce->key, u->ce->tokens, buf);
	u->ce->in_shared = true;
	ck_pr_inc_64(&c->offered_shared);
}

/*
 * The parent of block b of s (cache.h, "Entries"): the salt's identity for
 * block 0; for b > 0 the entry id of the cache entry block b - 1 is or
 * equals, and that entry in *pent (NULL for block 0). false if block b - 1
 * is in no entry (not published, or publishing was skipped). A block b - 1
 * someone is publishing right now (CLAIMED) is waited for: blocks complete
 * in order, so that wait is short. *pent stays alive while s holds block
 * b - 1: its table references that entry's unit, or a deduplicated copy
 * that follows it (dup_ce).
 */
static bool parent_of(const tkv__seq *s, uint64_t b, tkv__key *parent, tkv__cache_ent **pent)
{
	*pent = NULL;
	if (b == 0) {
		*parent = (tkv__key){s->tok.salt_id_hi, s->tok.salt_id_lo};
		return true;
	}
	tkv__unit *pu = tkv__seq_unit(s, b - 1);
	if (!pu)
		return false;
	uint32_t pub;
	for (int spins = 0;
	     (pub = ck_pr_load_32(&pu->published)) == TKV__PUB_CLAIMED &&
	     ck_pr_load_32(&pu->state) == TKV__UNIT_PUBLISHING && spins < 100000;
	     spins++)
		ck_pr_stall();
	ck_pr_fence_acquire(); /* rec_block, ce / dup_of, dup_ce written before */
	if (pub == TKV__PUB_YES) {
		*parent = (tkv__key){0, pu->rec_block};
		*pent = pu->ce;
		return true;
	}
	uint64_t dup = ck_pr_load_64(&pu->dup_of);
	*parent = (tkv__key){0, dup};
	*pent = pu->dup_ce;
	return dup != 0;
}

/*
 * A block computed twice: u equals entry `same` (found under stripe st's
 * lock, which keeps it from being freed: a drop unlinks it first). u
 * follows it, as a child would, so it is not dropped while u lives and u's
 * successors can name it as their parent. false if it is being dropped.
 * Lock order: stripe -> tree -> policy.
 */
static bool follow_copy(tkv__cache *c, tkv__unit *u, tkv__cache_ent *same)
{
	pthread_mutex_lock(&c->tree_lock);
	pol_leave(c, same); /* no pick can take it from here on */
	bool alive = ck_pr_load_32(&same->unit->refs) != TKV__UNIT_DEAD;
	if (alive) {
		follow(c, same);
		u->dup_ce = same;
		u->dup_of = same->unit->rec_block;
	}
	pthread_mutex_unlock(&c->tree_lock);
	return alive;
}

/* A new entry e, following pent (NULL: block 0), joins the drop tree. */
static void tree_add(tkv__cache *c, tkv__cache_ent *e, tkv__cache_ent *pent)
{
	pthread_mutex_lock(&c->tree_lock);
	e->pent = pent;
	if (pent)
		follow(c, pent);
	pol_enter(c, e, false, false);
	pthread_mutex_unlock(&c->tree_lock);
}

/*
 * Publishes unit u (block b of s, complete, tokens and key known), once:
 * the claim CAS on `published` (NONE -> CLAIMED -> YES) settles a
 * race between the worker and the producer. The unit must be HOT (not
 * being written or freed by the evictor), and if it already has a plain
 * record it must still be entirely in RAM: then the record goes and the
 * next eviction writes a cache record. Otherwise publishing is skipped
 * (counted): the block stays the sequence's own.
 */
static void publish(tkv__cache *c, tkv__seq *s, tkv__unit *u, uint64_t b)
{
	if (!ck_pr_cas_32(&u->published, TKV__PUB_NONE, TKV__PUB_CLAIMED))
		return;
	if (!ck_pr_cas_32(&u->state, TKV__UNIT_HOT, TKV__UNIT_PUBLISHING)) {
		ck_pr_inc_64(&c->publish_skipped); /* the evictor has it now */
		return;
	}
	uint32_t tok[c->block_tokens];
	tkv__seq_tokens_copy(s, c->block_tokens, b * c->block_tokens, c->block_tokens, tok);
	tkv__key k = tkv__seq_key(s, b), parent;
	tkv__cache_ent *e = NULL, *pent;
	bool plain_record = ck_pr_load_32(&u->cold);
	if (plain_record && !all_hot(u))
		goto skip; /* its only copy of some layer is the plain record */
	if (!parent_of(s, b, &parent, &pent))
		goto skip; /* the block before it is in no entry: a broken chain */
	if (!(e = ent_new(c, k, parent, tok)))
		goto skip;
	stripe *st = stripe_of(c, k);
	pthread_mutex_lock(&st->lock);
	tkv__cache_ent *same = find(c, st, k, tok, parent);
	if (same) {
		/* its successors' parent (0 and skipped: the copy is dying) */
		bool dup = follow_copy(c, u, same);
		pthread_mutex_unlock(&st->lock);
		free(e);
		ck_pr_inc_64(dup ? &c->deduplicated : &c->publish_skipped);
		ck_pr_fence_release(); /* dup_of, dup_ce before the state others read */
		ck_pr_store_32(&u->state, TKV__UNIT_HOT);
		return;
	}
	if (plain_record) {
		tkv__evictor_forget_record(c->tiers->ev, u);
		ck_pr_store_32(&u->cold, 0);
	}
	e->unit = u;
	u->ce = e;
	u->rec_seq = TKV__CACHE_SEQ;
	u->rec_block = ck_pr_faa_64(&c->next_id, 1);
	u->rec_seqno = 0; /* no record under the new name yet */
	tkv__cache_ent **bk = bucket_of(st, k);
	e->hnext = *bk;
	/* Release: the entry and the unit's new name before lookups see it. */
	ck_pr_fence_release();
	*bk = e;
	st->count++;
	maybe_grow(st);
	ck_pr_store_32(&u->published, TKV__PUB_YES);
	pthread_mutex_unlock(&st->lock);
	tree_add(c, e, pent); /* not droppable before: s references u */
	ck_pr_inc_64(&c->published);
	if (c->write_through)
		write_through(c, u);
	/* Release: the new record name before the evictor's CAS from HOT. */
	ck_pr_fence_release();
	ck_pr_store_32(&u->state, TKV__UNIT_HOT);
	return;
skip:
	ck_pr_inc_64(&c->publish_skipped);
	ck_pr_store_32(&u->state, TKV__UNIT_HOT);
}

/* The W side: called once per unit, when its last layer is stored. */
void tkv__cache_unit_full(tkv__cache *c, tkv__seq *s, tkv__unit *u, uint64_t b)
{
	/* after P1 (units.c); pairs with P2 below. Acquire: the ids and keys
	 * below `keyed` before we read them. */
	uint64_t keyed = ck_pr_load_64(&s->tok.keyed);
	ck_pr_fence_acquire();
	if (s->tok.cache && b < keyed)
		publish(c, s, u, b);
}

void tkv__cache_tokens_known(tkv__cache *c, tkv__seq *s, uint64_t first, uint64_t end)
{
	if (!s->tok.cache)
		return;
	/* P2: keyed (stored by the caller) before the units' layers_full. */
	tkv__fence_full();
	for (uint64_t b = first; b < end; b++) {
		tkv__unit *u = tkv__seq_unit(s, b);
		if (u && ck_pr_load_32(&u->layers_full) == u->n_layers) {
			/* Acquire: every layer's copy (the workers' releases
			 * before their counts, units.c) before publish reads
			 * the block, e.g. the write-through's copy. */
			ck_pr_fence_acquire();
			publish(c, s, u, b);
		}
	}
}

/* ---- lookups ------------------------------------------------------------ */

size_t tkv__cache_lookup(tkv__cache *c, const tkv__key *keys, const uint32_t *tokens,
			 size_t n_blocks, tkv__key salt_id, tkv__unit **out, tkv__cache_match *m,
			 bool count)
{
	size_t i = 0;
	tkv__cache_match got = {0, 0, 0};
	tkv__key parent = salt_id;
	/* one tick per attaching lookup: its matches were used together */
	uint64_t use = out ? ck_pr_faa_64(&c->uses, 1) + 1 : 0;
	for (; i < n_blocks; i++) {
		const uint32_t *tok = tokens + i * c->block_tokens;
		stripe *st = stripe_of(c, keys[i]);
		pthread_mutex_lock(&st->lock);
		tkv__cache_ent *e = find(c, st, keys[i], tok, parent);
		bool hit = e && (!out || tkv__unit_tryref(e->unit));
		if (hit) {
			parent = (tkv__key){0, e->unit->rec_block};
			/* under the lock: a dropped unit leaves the index first */
			if (all_hot(e->unit))
				got.hot++;
			else
				got.cold++;
			if (out) { /* a use: the drop policy counts it */
				out[i] = e->unit;
				c->pol_ops->access(c->pol, &e->pnode);
				ck_pr_store_64(&e->last_use, use);
			}
		}
		pthread_mutex_unlock(&st->lock);
		if (!hit)
			break;
	}
	got.blocks = i;
	if (count) {
		ck_pr_inc_64(&c->lookups);
		ck_pr_add_64(&c->lookup_blocks, n_blocks);
		ck_pr_add_64(&c->hit_hot, got.hot);
		ck_pr_add_64(&c->hit_cold, got.cold);
	}
	if (m)
		*m = got;
	return i;
}

/* ---- blocks from the shared tier --------------------------------------- */

void tkv__cache_set_shared(tkv__cache *c, tkv__shared_tier *st, bool write_through)
{
	c->shared = st;
	c->write_through = st && write_through;
}

tkv__unit *tkv__cache_adopt(tkv__cache *c, tkv__unit *u, tkv__key key, tkv__key parent,
			    tkv__unit *prev, const uint32_t *tokens)
{
	tkv__cache_ent *e = ent_new(c, key, parent, tokens);
	if (!e) {
		tkv__unit_destroy(c->tiers, u);
		return NULL;
	}
	e->in_shared = true;
	/* attached now, like a lookup's hit (the drop policy's "used") */
	uint64_t use = ck_pr_faa_64(&c->uses, 1) + 1;
	stripe *st = stripe_of(c, key);
	pthread_mutex_lock(&st->lock);
	tkv__cache_ent *same = find(c, st, key, tokens, parent);
	if (same && tkv__unit_tryref(same->unit)) {
		tkv__unit *have = same->unit;
		ck_pr_store_64(&same->last_use, use);
		pthread_mutex_unlock(&st->lock);
		free(e);
		tkv__unit_destroy(c->tiers, u);
		ck_pr_inc_64(&c->hit_shared);
		return have;
	}
	e->unit = u;
	e->last_use = use;
	u->ce = e;
	u->rec_seq = TKV__CACHE_SEQ;
	u->rec_block = ck_pr_faa_64(&c->next_id, 1);
	u->rec_seqno = 0;
	u->layers_full = c->n_layers;
	u->refs = 1; /* the caller's */
	u->published = TKV__PUB_YES;
	tkv__cache_ent **bk = bucket_of(st, key);
	e->hnext = *bk;
	ck_pr_fence_release(); /* the entry and the unit before lookups see it */
	*bk = e;
	st->count++;
	maybe_grow(st);
	pthread_mutex_unlock(&st->lock);
	/* it follows prev's entry, which the caller's reference keeps alive */
	tree_add(c, e, prev ? prev->ce : NULL);
	ck_pr_inc_64(&c->hit_shared);
	/* evictable like any full unit: it may go to the cold tier */
	if (c->tiers->ev)
		tkv__evictor_unit_full(c->tiers->ev, u);
	return u;
}

/* ---- a sequence's tokens and keys ------------------------------------- */

static uint32_t *token_slot(const tkv__seq *s, uint32_t bt, uint64_t pos)
{
	unsigned k;
	uint64_t off;
	if (!tkv__chunk_locate(pos / bt, &k, &off) || !s->tok.chunks[k])
		return NULL;
	return s->tok.chunks[k] + off * bt + pos % bt;
}

void tkv__seq_tokens_copy(const tkv__seq *s, uint32_t block_tokens, uint64_t pos, size_t n,
			  uint32_t *out)
{
	for (uint64_t p = pos, end = pos + n; p < end;) {
		uint64_t run = block_tokens - p % block_tokens;
		run = run < end - p ? run : end - p;
		memcpy(out + (p - pos), token_slot(s, block_tokens, p), run * sizeof(uint32_t));
		p += run;
	}
}

tkv__key tkv__seq_key(const tkv__seq *s, uint64_t b)
{
	unsigned k;
	uint64_t off;
	tkv__chunk_locate(b, &k, &off);
	return ((const tkv__key *)s->tok.keys[k])[off];
}

/* Makes the token and key chunks covering block b. Producer only. */
static int reserve_block(tkv__seq *s, uint32_t bt, uint64_t b)
{
	unsigned k;
	uint64_t off;
	if (!tkv__chunk_locate(b, &k, &off))
		return -ENOMEM;
	size_t n = (size_t)TKV__CHUNK0 << k;
	/* Not zeroed: only ids below `known` and keys below `keyed` are read
	 * (zeroing a long prompt's chunks cost more than hashing it). */
	if (!s->tok.chunks[k]) {
		uint32_t *t = malloc(n * bt * sizeof(uint32_t));
		if (!t)
			return -ENOMEM;
		ck_pr_store_ptr(&s->tok.chunks[k], t); /* published by `keyed` */
	}
	if (!s->tok.keys[k]) {
		void *kk = malloc(n * sizeof(tkv__key));
		if (!kk)
			return -ENOMEM;
		ck_pr_store_ptr(&s->tok.keys[k], kk);
	}
	return 0;
}

int tkv__seq_tokens_append(tkv__cache *c, tkv__seq *s, const uint32_t *tokens, size_t n)
{
	const uint32_t bt = c->block_tokens;
	uint64_t known = s->tok.known, end = known + n;
	/* chunks only grow: the ones made before an ENOMEM are kept, unused */
	for (uint64_t b = known / bt; n && b <= (end - 1) / bt; b++)
		if (reserve_block(s, bt, b))
			return -ENOMEM;
	/* a block's ids are contiguous in its chunk: copy block by block */
	for (uint64_t p = known; p < end;) {
		uint64_t run = bt - p % bt < end - p ? bt - p % bt : end - p;
		memcpy(token_slot(s, bt, p), tokens + (p - known), run * sizeof(uint32_t));
		p += run;
	}
	uint64_t keyed = s->tok.keyed, full = end / bt;
	tkv__key prev = keyed ? tkv__seq_key(s, keyed - 1) : (tkv__key){0, 0};
	for (uint64_t b = keyed; b < full; b++) {
		const uint32_t *tok = token_slot(s, bt, b * bt);
		unsigned k;
		uint64_t off;
		tkv__chunk_locate(b, &k, &off);
		prev = b == 0 ? tkv__key_first(c->ns, s->tok.salt, s->tok.salt_len, tok, bt)
			      : tkv__key_next(prev, tok, bt);
		((tkv__key *)s->tok.keys[k])[off] = prev;
	}
	/* Release: the ids and keys before the counts that publish them. */
	ck_pr_fence_release();
	ck_pr_store_64(&s->tok.known, end);
	ck_pr_store_64(&s->tok.keyed, full > keyed ? full : keyed);
	return 0;
}

/* ---- recovery and stats ------------------------------------------------- */

/* One cold cache record -> an unreferenced, cold-only entry (*out; NULL
 * if the record was not a readable cache block). */
static int recover_one(tkv__cache *c, tkv__cold *cold, uint64_t id, uint64_t seqno,
		       tkv__cache_ent **out)
{
	*out = NULL;
	uint32_t tok[c->block_tokens];
	tkv__cold_ext ext = {0, 0, 0, 0, NULL};
	int rc = tkv__cold_read_ext(cold, TKV__CACHE_SEQ, id, &ext, tok);
	tkv__key k = {ext.key_hi, ext.key_lo}, parent = {ext.parent_hi, ext.parent_lo};
	if (rc) {
		tkv__cold_remove_if(cold, TKV__CACHE_SEQ, id, seqno);
		ck_pr_inc_64(&c->dropped_other);
		return rc == -ENOMEM ? rc : 0;
	}
	tkv__unit *u = tkv__unit_new(c->n_layers, TKV__CACHE_SEQ, id);
	tkv__cache_ent *e = u && rc == 0 ? ent_new(c, k, parent, tok) : NULL;
	if (!e) {
		free(u);
		return -ENOMEM;
	}
	u->layers_full = c->n_layers;
	u->rec_seqno = seqno;
	u->cold = 1;
	u->published = TKV__PUB_YES;
	u->refs = 0;
	u->ce = e;
	e->unit = u;
	stripe *st = stripe_of(c, k);
	pthread_mutex_lock(&st->lock);
	tkv__cache_ent **bk = bucket_of(st, k);
	e->hnext = *bk;
	*bk = e;
	st->count++;
	maybe_grow(st);
	pthread_mutex_unlock(&st->lock);
	*out = e;
	ck_pr_inc_64(&c->recovered);
	return 0;
}

/* Block 0's parent is the salt's identity: {0, 0} without a salt, else a
 * hash with its low bit set, never an entry id {0, id >= 1}... except by
 * a 2^-64 chance that only makes an entry look like an orphan. */
static bool is_root(const tkv__cache_ent *e)
{
	return e->parent.hi != 0 || e->parent.lo == 0;
}

static int cmp_ent_id(const void *a, const void *b)
{
	uint64_t x = (*(tkv__cache_ent *const *)a)->unit->rec_block;
	uint64_t y = (*(tkv__cache_ent *const *)b)->unit->rec_block;
	return x < y ? -1 : x > y;
}

/* The entry with this id among ents sorted by id, or NULL. */
static tkv__cache_ent *find_id(tkv__cache_ent **ents, size_t n, uint64_t id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t m = ents[mid]->unit->rec_block;
		if (m == id)
			return ents[mid];
		if (m < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Recovered entries (sorted by id here) find the entries they follow by
 * the parent id their record carries, then the ones nothing follows join
 * the drop policy, oldest id first. An entry whose parent record is gone
 * can never match again: it goes first. */
static void link_recovered(tkv__cache *c, tkv__cache_ent **ents, size_t n)
{
	qsort(ents, n, sizeof(*ents), cmp_ent_id);
	pthread_mutex_lock(&c->tree_lock);
	for (size_t i = 0; i < n; i++) {
		tkv__cache_ent *e = ents[i];
		if (!is_root(e) && (e->pent = find_id(ents, n, e->parent.lo)))
			follow(c, e->pent);
	}
	for (size_t i = 0; i < n; i++)
		pol_enter(c, ents[i], !is_root(ents[i]) && !ents[i]->pent, false);
	pthread_mutex_unlock(&c->tree_lock);
}

int tkv__cache_recover(tkv__cache *c, tkv__cold *cold)
{
	size_t n = tkv__cold_list_seq(cold, TKV__CACHE_SEQ, NULL, 0);
	if (!n)
		return 0;
	tkv__cold_block_info *info = calloc(n, sizeof(*info));
	if (!info)
		return tkv__fail(-ENOMEM, "open: recovering the prefix cache");
	n = tkv__cold_list_seq(cold, TKV__CACHE_SEQ, info, n);
	tkv__cache_ent **ents = calloc(n, sizeof(*ents));
	if (!ents) {
		free(info);
		return tkv__fail(-ENOMEM, "open: recovering the prefix cache");
	}
	int rc = 0;
	size_t m = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		rc = recover_one(c, cold, info[i].block, info[i].seqno, &ents[m]);
		m += ents[m] != NULL;
		/* anonymous names (1 << 63 | n, runtime/seq_edit.c) are not
		 * entry ids: they are removed above and must not move ids */
		if (info[i].block < (1ull << 62) && info[i].block >= c->next_id)
			c->next_id = info[i].block + 1;
	}
	link_recovered(c, ents, m);
	free(ents);
	free(info);
	return rc ? tkv__fail(rc, "open: recovering the prefix cache: out of memory") : 0;
}

void tkv__cache_stats_get(tkv__cache *c, tkv__cache_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->lookups = ck_pr_load_64(&c->lookups);
	st->lookup_blocks = ck_pr_load_64(&c->lookup_blocks);
	st->hit_blocks_hot = ck_pr_load_64(&c->hit_hot);
	st->hit_blocks_cold = ck_pr_load_64(&c->hit_cold);
	st->published = ck_pr_load_64(&c->published);
	st->deduplicated = ck_pr_load_64(&c->deduplicated);
	st->publish_skipped = ck_pr_load_64(&c->publish_skipped);
	st->dropped_hot = ck_pr_load_64(&c->dropped_hot);
	st->dropped_cold = ck_pr_load_64(&c->dropped_cold);
	st->dropped_other = ck_pr_load_64(&c->dropped_other);
	st->recovered = ck_pr_load_64(&c->recovered);
	st->hit_blocks_shared = ck_pr_load_64(&c->hit_shared);
	st->offered_shared = ck_pr_load_64(&c->offered_shared);
	st->undroppable = ck_pr_load_64(&c->undroppable);
	/* Tier occupancy by walking the index: entries cannot be freed while
	 * their stripe is locked (a drop unlinks first). */
	for (int i = 0; i < N_STRIPES; i++) {
		stripe *s = &c->st[i];
		pthread_mutex_lock(&s->lock);
		for (size_t b = 0; b < s->n_buckets; b++)
			for (tkv__cache_ent *e = s->buckets[b]; e; e = e->hnext) {
				const tkv__unit *u = e->unit;
				uint64_t hot = 0;
				for (uint32_t l = 0; l < u->n_layers; l++)
					hot += ck_pr_load_ptr((void **)&u->blocks[l].mem) != NULL;
				st->entries_hot += hot == u->n_layers;
				st->bytes_hot += hot * c->block_bytes;
				if (ck_pr_load_32((uint32_t *)&u->cold)) {
					st->entries_cold++;
					st->entries_hot_cold += hot == u->n_layers;
					st->bytes_cold += c->n_layers * c->block_bytes;
				}
			}
		pthread_mutex_unlock(&s->lock);
	}
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t tkv__cache_orphans(tkv__cache *c)
{
	uint64_t *ids = NULL, orphans = 0;
	size_t n = 0, cap = 0;
	for (int i = 0; i < N_STRIPES; i++) {
		stripe *s = &c->st[i];
		pthread_mutex_lock(&s->lock);
		for (size_t b = 0; b < s->n_buckets; b++)
			for (tkv__cache_ent *e = s->buckets[b]; e; e = e->hnext) {
				uint64_t *t = tkv__array_grow(ids, &cap, n + 1, sizeof(*ids));
				if (!t)
					continue;
				ids = t;
				ids[n++] = e->unit->rec_block;
			}
		pthread_mutex_unlock(&s->lock);
	}
	qsort(ids, n, sizeof(*ids), cmp_id);
	for (int i = 0; i < N_STRIPES && ids; i++) {
		stripe *s = &c->st[i];
		pthread_mutex_lock(&s->lock);
		for (size_t b = 0; b < s->n_buckets; b++)
			for (tkv__cache_ent *e = s->buckets[b]; e; e = e->hnext) {
				uint64_t p = e->parent.lo;
				/* block 0's parent is the salt identity: {0, 0} or hi != 0 */
				orphans += e->parent.hi == 0 && p != 0 &&
					   !bsearch(&p, ids, n, sizeof(*ids), cmp_id);
			}
		pthread_mutex_unlock(&s->lock);
	}
	free(ids);
	return orphans;
}

/* ---- the model a cold directory's cache records belong to -------------- */

/* Reads <dir>/cache-model into buf (NUL-terminated); false if absent or
 * unreadable. */
static bool read_model(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	size_t n = fread(buf, 1, cap - 1, f);
	bool ok = !ferror(f);
	fclose(f);
	buf[n] = '\0';
	return ok;
}

/* Writes "<state>\n<model_id>" to <dir>/cache-model: temp + fsync +
 * rename, so a crash leaves the old file or the new one. */
static int write_model(const char *dir, const char *state, const char *model_id)
{
	char path[4096], tmp[4096];
	if (snprintf(path, sizeof(path), "%s/cache-model", dir) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/cache-model.tmp", dir) >= (int)sizeof(tmp))
		return tkv__fail(-ENAMETOOLONG, "cold_dir path too long");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = fd < 0 ? -errno : 0;
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!rc && !f)
		rc = -errno;
	if (f) {
		if (fprintf(f, "%s\n%s", state, model_id) < 0 || fflush(f) || fsync(fd))
			rc = errno ? -errno : -EIO;
		fclose(f);
	} else if (fd >= 0) {
		close(fd);
	}
	if (!rc && rename(tmp, path))
		rc = -errno;
	return rc ? tkv__fail(rc, "cannot record the cache's model id in %s: %s", path,
			      strerror(-rc))
		  : 0;
}

int tkv__cache_bind_dir(const char *dir, const char *model_id, bool *same)
{
	char path[4096], have[1100], want[1100];
	if (snprintf(path, sizeof(path), "%s/cache-model", dir) >= (int)sizeof(path))
		return tkv__fail(-ENAMETOOLONG, "open: cold_dir path too long");
	snprintf(want, sizeof(want), "clean\n%s", model_id);
	*same = read_model(path, have, sizeof(have)) && strcmp(have, want) == 0;
	if (*same)
		return 0;
	/* Until this run closes cleanly the records of the model before may
	 * still be on disk (a removal is durable only at the cold tier's next
	 * sync): a crash before then must not let them be read as ours. */
	return write_model(dir, "dirty", model_id);
}

int tkv__cache_seal_dir(const char *dir, const char *model_id)
{
	return write_model(dir, "clean", model_id);
}

void tkv__cache_count_dropped(tkv__cache *c, int64_t n)
{
	if (n > 0)
		ck_pr_add_64(&c->dropped_other, (uint64_t)n);
}
