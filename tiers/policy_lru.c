/*
 * policy_lru.c - exact LRU: a binary min-heap of (last-seen hit tick, node)
 * under the policy lock, with lock-free hits that only raise the node's
 * atomic tick. Why a lazily re-keyed heap is exact: policy.h.
 *
 * Invariant (lock held): for every node in the heap, heap[node->slot].node is
 * the node, and its key <= node->last_access (ticks only grow).
 */
#include <ck_pr.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "base/array.h"
#include "base/error.h"
#include "tiers/policy_impl.h"

#define LRU_MIN_CAP 64

typedef struct lru_slot {
	uint64_t key; /* the node's last_access when the heap last looked */
	tkv__policy_node *node;
} lru_slot;

typedef struct lru {
	tkv__policy base;
	pthread_mutex_t lock;
	lru_slot *heap; /* lock: min-heap on key */
	size_t n, cap;  /* lock */
	/* The last tick handed out. Bumped by every hit from every engine
	 * thread, so it gets its own cache line, away from the lock. */
	uint64_t clock __attribute__((aligned(64)));
} lru;

static lru *lru_of(tkv__policy *p)
{
	return (lru *)p;
}

/* A tick later than every tick taken before. Ordering: none needed; the tick
 * only has to be unique and increasing, it publishes no other data. */
static uint64_t lru_tick(lru *l)
{
	return ck_pr_faa_64(&l->clock, 1) + 1;
}

/* last_access = max(last_access, t). Ordering: none beyond atomicity (pick
 * only compares the value, under the lock). The CAS keeps it from going back
 * when two hits on one node race, which the heap's lower bound relies on. */
static void raise_tick(tkv__policy_node *n, uint64_t t)
{
	uint64_t old = ck_pr_load_64(&n->last_access);
	while (old < t && !ck_pr_cas_64_value(&n->last_access, old, t, &old))
		;
}

static void heap_set(lru *l, size_t i, lru_slot s)
{
	l->heap[i] = s;
	s.node->slot = (uint32_t)i;
}

static void sift_up(lru *l, size_t i)
{
	lru_slot s = l->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (l->heap[parent].key <= s.key)
			break;
		heap_set(l, i, l->heap[parent]);
		i = parent;
	}
	heap_set(l, i, s);
}

static void sift_down(lru *l, size_t i)
{
	lru_slot s = l->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->n)
			break;
		if (c + 1 < l->n && l->heap[c + 1].key < l->heap[c].key)
			c++;
		if (l->heap[c].key >= s.key)
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, s);
}

/* Needs room (n < cap). */
static void heap_push(lru *l, uint64_t key, tkv__policy_node *node)
{
	l->heap[l->n] = (lru_slot){key, node};
	node->slot = (uint32_t)l->n;
	l->n++;
	sift_up(l, l->n - 1);
}

static void heap_delete(lru *l, size_t i)
{
	lru_slot last = l->heap[--l->n];
	if (i == l->n)
		return;
	heap_set(l, i, last);
	if (i > 0 && l->heap[(i - 1) / 2].key > last.key)
		sift_up(l, i);
	else
		sift_down(l, i);
}

/* Slots are uint32_t in the node, so the heap stops at UINT32_MAX entries. */
static int heap_grow(lru *l)
{
	size_t old = l->cap;
	lru_slot *h = old < UINT32_MAX ? tkv__array_grow(l->heap, &l->cap, old + 1, sizeof(*h))
				       : NULL;
	if (h == NULL)
		return tkv__fail(-ENOMEM, "policy lru: cannot grow the heap past %zu units", old);
	l->heap = h;
	if (l->cap > UINT32_MAX)
		l->cap = UINT32_MAX; /* the rest stays unused */
	return 0;
}

static tkv__policy *lru_create(size_t expected_units)
{
	size_t cap = expected_units < LRU_MIN_CAP ? LRU_MIN_CAP : expected_units;
	if (cap > UINT32_MAX)
		cap = UINT32_MAX;
	lru *l = aligned_alloc(64, sizeof(*l));
	lru_slot *heap = malloc(cap * sizeof(*heap));
	if (l == NULL || heap == NULL) {
		free(l);
		free(heap);
		tkv__fail(-ENOMEM, "policy lru: no memory for %zu units", cap);
		return NULL;
	}
	*l = (lru){.base = {&tkv__policy_lru}, .heap = heap, .cap = cap};
	pthread_mutex_init(&l->lock, NULL);
	return &l->base;
}

static void lru_destroy(tkv__policy *p)
{
	if (p == NULL)
		return;
	lru *l = lru_of(p);
	for (size_t i = 0; i < l->n; i++)
		l->heap[i].node->where = TKV__PQ_NONE;
	pthread_mutex_destroy(&l->lock);
	free(l->heap);
	free(l);
}

/* Into the heap. fresh: entering counts as a use (the unit was just
 * completed or read back), keyed by a new tick, <= last_access after;
 * else keyed by the node's own last access: no tick, so it goes before
 * every node used since (insert_old). */
static int lru_enter(tkv__policy *p, tkv__policy_node *n, bool fresh)
{
	lru *l = lru_of(p);
	int err = 0;
	pthread_mutex_lock(&l->lock);
	if (n->where != TKV__PQ_NONE)
		err = tkv__fail(-EEXIST, "policy lru: node already in a policy");
	else if (l->n == l->cap)
		err = heap_grow(l);
	if (err == 0) {
		uint64_t key;
		if (fresh) {
			key = lru_tick(l);
			raise_tick(n, key);
		} else {
			key = ck_pr_load_64(&n->last_access);
		}
		heap_push(l, key, n);
		n->where = TKV__PQ_LRU;
	}
	pthread_mutex_unlock(&l->lock);
	return err;
}

static int lru_insert(tkv__policy *p, tkv__policy_node *n)
{
	return lru_enter(p, n, true);
}

static int lru_insert_old(tkv__policy *p, tkv__policy_node *n, bool used)
{
	(void)used; /* its last access says it */
	return lru_enter(p, n, false);
}

static void lru_remove(tkv__policy *p, tkv__policy_node *n)
{
	lru *l = lru_of(p);
	pthread_mutex_lock(&l->lock);
	if (n->where == TKV__PQ_LRU) {
		heap_delete(l, n->slot);
		n->where = TKV__PQ_NONE;
	}
	pthread_mutex_unlock(&l->lock);
}

static void lru_access(tkv__policy *p, tkv__policy_node *n)
{
	raise_tick(n, lru_tick(lru_of(p)));
}

/* Puts back the nodes pick() set aside (chained through ->next); they were
 * popped during this pick, so there is room. */
static void unskip(lru *l, tkv__policy_node *skipped)
{
	while (skipped != NULL) {
		tkv__policy_node *n = skipped;
		skipped = n->next;
		n->next = NULL;
		/* Ordering: none needed; any value read is a valid lower bound. */
		heap_push(l, ck_pr_load_64(&n->last_access), n);
	}
}

static tkv__policy_node *lru_pick(tkv__policy *p, tkv__policy_eligible_fn eligible, void *ctx)
{
	lru *l = lru_of(p);
	tkv__policy_node *victim = NULL, *skipped = NULL;
	pthread_mutex_lock(&l->lock);
	/* Ordering: none needed; every tick <= start was taken before here. */
	uint64_t start = ck_pr_load_64(&l->clock);
	while (victim == NULL && l->n > 0) {
		lru_slot *top = &l->heap[0];
		tkv__policy_node *n = top->node;
		/* Ordering: none needed; only the value is compared (raise_tick). */
		uint64_t now = ck_pr_load_64(&n->last_access);
		if (now > top->key && top->key <= start) {
			/* Hit since the heap looked: re-key, re-place, retry. A
			 * key past start was set during this pick and is not
			 * re-checked, so racing hits cannot stall the loop. */
			top->key = now;
			sift_down(l, 0);
			continue;
		}
		heap_delete(l, 0);
		if (eligible(ctx, n)) {
			n->where = TKV__PQ_NONE;
			victim = n;
		} else {
			n->next = skipped;
			skipped = n;
		}
	}
	unskip(l, skipped);
	pthread_mutex_unlock(&l->lock);
	return victim;
}

const tkv__policy_ops tkv__policy_lru = {
	.name = "lru",
	.create = lru_create,
	.destroy = lru_destroy,
	.insert = lru_insert,
	.insert_old = lru_insert_old,
	.remove = lru_remove,
	.access = lru_access,
	.pick = lru_pick,
};
