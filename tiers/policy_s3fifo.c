/*
 * policy_s3fifo.c - S3-FIFO (Yang et al., SOSP'23): small FIFO S, main FIFO
 * M, ghost FIFO G of keys evicted from S, and a per-node hit counter 0..3
 * bumped lock-free by access(). Why this policy: policy.h.
 *
 * Invariants (lock held): a node is in S iff where == SMALL, in M iff where ==
 * MAIN; G holds keys only. Promotion and re-insertion happen only at pick
 * time ("lazy promotion"), so a hit never moves a node.
 *
 * The cache size the 10% rule refers to is the number of evictable units the
 * policy holds (|S| + |M|): the evictor, not the policy, decides how many
 * units stay hot, by when it calls pick().
 */
#include <ck_pr.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "base/error.h"
#include "tiers/policy_ghost.h"
#include "tiers/policy_impl.h"

#define S3_FREQ_MAX 3       /* 2-bit counter */
#define S3_SMALL_PERCENT 10 /* S's share of the units (default) */
#define S3_GHOST_PERCENT 90 /* G remembers as many keys as M holds units */
#define S3_GHOST_MIN 16

typedef struct s3 {
	tkv__policy base;
	pthread_mutex_t lock;
	tkv__plist small, main; /* lock */
	tkv__ghost ghost;       /* lock */
	unsigned small_pct;     /* S's share of the units, percent */
} s3;

static s3 *s3_of(tkv__policy *p)
{
	return (s3 *)p;
}

static tkv__plist *queue_of(s3 *s, uint32_t where)
{
	return where == TKV__PQ_SMALL ? &s->small : &s->main;
}

static tkv__policy *s3_create(size_t expected_units)
{
	size_t ghost = expected_units / 100 * S3_GHOST_PERCENT +
		       expected_units % 100 * S3_GHOST_PERCENT / 100;
	s3 *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		tkv__fail(-ENOMEM, "policy s3fifo: no memory");
		return NULL;
	}
	if (tkv__ghost_init(&s->ghost, ghost < S3_GHOST_MIN ? S3_GHOST_MIN : ghost) != 0) {
		free(s);
		return NULL;
	}
	s->base.ops = &tkv__policy_s3fifo;
	s->small_pct = S3_SMALL_PERCENT;
	pthread_mutex_init(&s->lock, NULL);
	return &s->base;
}

static void forget_all(tkv__plist *l)
{
	while (l->tail != NULL) {
		tkv__policy_node *n = l->tail;
		tkv__plist_unlink(l, n);
		n->where = TKV__PQ_NONE;
	}
}

static void s3_destroy(tkv__policy *p)
{
	if (p == NULL)
		return;
	s3 *s = s3_of(p);
	forget_all(&s->small);
	forget_all(&s->main);
	tkv__ghost_fini(&s->ghost);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* A unit evicted from S not long ago is back (promoted, or re-completed):
 * it goes straight to M. */
static int s3_insert(tkv__policy *p, tkv__policy_node *n)
{
	s3 *s = s3_of(p);
	int err = 0;
	pthread_mutex_lock(&s->lock);
	if (n->where != TKV__PQ_NONE) {
		err = tkv__fail(-EEXIST, "policy s3fifo: node already in a policy");
	} else {
		/* Ordering: none needed; counts only hits from now on. */
		ck_pr_store_32(&n->freq, 0);
		n->where = tkv__ghost_take(&s->ghost, n->key) ? TKV__PQ_MAIN : TKV__PQ_SMALL;
		tkv__plist_push_head(queue_of(s, n->where), n);
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* S's tail: a used node moves to M at the next pick, another is that
 * pick's victim. */
static int s3_insert_old(tkv__policy *p, tkv__policy_node *n, bool used)
{
	s3 *s = s3_of(p);
	int err = 0;
	pthread_mutex_lock(&s->lock);
	if (n->where != TKV__PQ_NONE) {
		err = tkv__fail(-EEXIST, "policy s3fifo: node already in a policy");
	} else {
		/* Ordering: none needed (a hint, see s3_access). */
		ck_pr_store_32(&n->freq, used ? 1 : 0);
		n->where = TKV__PQ_SMALL;
		tkv__plist_push_tail(&s->small, n);
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

static void s3_remove(tkv__policy *p, tkv__policy_node *n)
{
	s3 *s = s3_of(p);
	pthread_mutex_lock(&s->lock);
	if (n->where == TKV__PQ_SMALL || n->where == TKV__PQ_MAIN) {
		tkv__plist_unlink(queue_of(s, n->where), n);
		n->where = TKV__PQ_NONE;
	}
	pthread_mutex_unlock(&s->lock);
}

/* Ordering: none needed; the counter publishes no data and pick() reads it
 * only as a hint. A saturated counter (hot units) is only read, so repeated
 * hits do not keep writing the node's cache line; a lost CAS race loses one
 * count, which S3-FIFO tolerates. */
static void s3_access(tkv__policy *p, tkv__policy_node *n)
{
	(void)p;
	uint32_t f = ck_pr_load_32(&n->freq);
	if (f < S3_FREQ_MAX)
		ck_pr_cas_32(&n->freq, f, f + 1);
}

static tkv__policy_node *take(tkv__plist *l, tkv__policy_node *n)
{
	tkv__plist_unlink(l, n);
	n->where = TKV__PQ_NONE;
	return n;
}

/* S's tail: hit since insertion -> M (counter restarts: M keeps units for
 * their hits while in M); else the victim, remembered in G. Ineligible tails
 * without hits are skipped and stay. `budget` bounds the moves (see pick). */
static tkv__policy_node *evict_small(s3 *s, tkv__policy_eligible_fn eligible, void *ctx,
				     size_t *budget)
{
	tkv__policy_node *n = s->small.tail;
	while (n != NULL) {
		tkv__policy_node *newer = n->prev;
		/* Ordering: none needed (a hint, see s3_access). */
		if (ck_pr_load_32(&n->freq) > 0 && *budget > 0) {
			(*budget)--;
			tkv__plist_unlink(&s->small, n);
			/* Ordering: none; a hit racing with this reset is lost,
			 * which costs at most one extra trip round M. */
			ck_pr_store_32(&n->freq, 0);
			n->where = TKV__PQ_MAIN;
			tkv__plist_push_head(&s->main, n);
		} else if (eligible(ctx, n)) {
			tkv__ghost_add(&s->ghost, n->key);
			return take(&s->small, n);
		}
		n = newer;
	}
	return NULL;
}

/* M's tail: hit -> back to M's head with one hit fewer (a CLOCK with a 2-bit
 * counter); else the victim. A node moved to the head is met again when the
 * walk gets there, so the walk goes on until an eligible node has no hits
 * left, or reaches the head with none. */
static tkv__policy_node *evict_main(s3 *s, tkv__policy_eligible_fn eligible, void *ctx,
				    size_t *budget)
{
	tkv__policy_node *n = s->main.tail;
	while (n != NULL) {
		tkv__policy_node *newer = n->prev;
		/* Ordering: none needed (a hint, see s3_access); only this
		 * thread decrements, under the lock, so it stays >= 0. */
		if (ck_pr_load_32(&n->freq) > 0 && *budget > 0) {
			(*budget)--;
			ck_pr_dec_32(&n->freq);
			tkv__plist_unlink(&s->main, n);
			tkv__plist_push_head(&s->main, n);
			n = newer != NULL ? newer : n;
			continue;
		}
		if (eligible(ctx, n))
			return take(&s->main, n);
		n = newer;
	}
	return NULL;
}

/*
 * From S while S holds >= 10% of the units, else from M; the other queue if
 * the first has no eligible node. S before M guarantees a victim if any node
 * is eligible (M's walk sees what S's walk moved), so M-first tries M again
 * after S. Each node's counter is at most 3 and only hits raise it, so without
 * racing hits the moves stay under 4 per node: past that budget (hits racing
 * with the walk), the next eligible node is taken whatever its count.
 */
static tkv__policy_node *s3_pick(tkv__policy *p, tkv__policy_eligible_fn eligible, void *ctx)
{
	s3 *s = s3_of(p);
	tkv__policy_node *victim = NULL;
	pthread_mutex_lock(&s->lock);
	size_t units = s->small.len + s->main.len;
	size_t budget = 4 * units + 4;
	if (s->small.len * 100 < units * s->small_pct)
		victim = evict_main(s, eligible, ctx, &budget);
	if (victim == NULL)
		victim = evict_small(s, eligible, ctx, &budget);
	if (victim == NULL)
		victim = evict_main(s, eligible, ctx, &budget);
	pthread_mutex_unlock(&s->lock);
	return victim;
}

void tkv__policy_s3fifo_small_share(tkv__policy *p, unsigned percent)
{
	s3 *s = s3_of(p);
	pthread_mutex_lock(&s->lock);
	s->small_pct = percent < 1 ? 1 : percent > 99 ? 99 : percent;
	pthread_mutex_unlock(&s->lock);
}

const tkv__policy_ops tkv__policy_s3fifo = {
	.name = "s3fifo",
	.create = s3_create,
	.destroy = s3_destroy,
	.insert = s3_insert,
	.insert_old = s3_insert_old,
	.remove = s3_remove,
	.access = s3_access,
	.pick = s3_pick,
};
