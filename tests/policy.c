/*
 * policy.c - the cold tier's eviction policies (tiers/policy.h): LRU order
 * against a reference model, S3-FIFO's small/main/ghost behaviour, pinned
 * (ineligible) nodes never chosen and kept, remove from every queue, hits
 * from 4 threads racing with insert/pick/remove (run under TSan), and a
 * replay of the Mooncake trace comparing hit ratios.
 */
#include <ck_pr.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tiers/policy.h"
#include "tiers/policy_ghost.h"
#include "tiers/policy_impl.h"
#include "tierkv.h"
#include "tests/trace_file.h"

static const tkv__policy_ops *const all_policies[] = {&tkv__policy_lru, &tkv__policy_s3fifo};
#define N_POLICIES (sizeof(all_policies) / sizeof(all_policies[0]))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static bool always(void *ctx, tkv__policy_node *n)
{
	(void)ctx;
	(void)n;
	return true;
}

/* Eligibility from a per-node "pinned" array, as the evictor would check a
 * unit's pin count. */
typedef struct pin_set {
	tkv__policy_node *base;
	const bool *pinned;
	size_t yes;                  /* answers "eligible" so far */
	tkv__policy_node *last_yes;
} pin_set;

static bool not_pinned(void *ctx, tkv__policy_node *n)
{
	pin_set *ps = ctx;
	if (ps->pinned[n - ps->base])
		return false;
	ps->yes++;
	ps->last_yes = n;
	return true;
}

static void init_nodes(tkv__policy_node *n, size_t count)
{
	for (size_t i = 0; i < count; i++)
		tkv__policy_node_init(&n[i], 0x1000 + i);
}

static tkv__policy *make(const tkv__policy_ops *ops, size_t expected)
{
	tkv__policy *p = ops->create(expected);
	cr_assert_not_null(p, "%s: create: %s", ops->name, tkv_last_error());
	return p;
}

static void insert_all(const tkv__policy_ops *ops, tkv__policy *p, tkv__policy_node *n,
		       size_t count)
{
	for (size_t i = 0; i < count; i++)
		cr_assert_eq(ops->insert(p, &n[i]), 0, "%s: insert %zu: %s", ops->name, i,
			     tkv_last_error());
}

/* Picks until NULL; returns how many came out, each index once in `out`. */
static size_t drain(const tkv__policy_ops *ops, tkv__policy *p, tkv__policy_node *base,
		    size_t count, bool *out)
{
	size_t got = 0;
	tkv__policy_node *v;
	while ((v = ops->pick(p, always, NULL)) != NULL) {
		size_t i = (size_t)(v - base);
		cr_assert_lt(i, count, "%s: pick returned a foreign node", ops->name);
		cr_assert_not(out[i], "%s: node %zu picked twice", ops->name, i);
		cr_assert_eq(v->where, TKV__PQ_NONE, "%s: picked node still marked in", ops->name);
		out[i] = true;
		got++;
	}
	return got;
}

/* ---- registry and common rules ---------------------------------------- */

Test(policy, find_by_name)
{
	cr_assert_eq(tkv__policy_find("lru"), &tkv__policy_lru);
	cr_assert_eq(tkv__policy_find("s3fifo"), &tkv__policy_s3fifo);
	cr_assert_null(tkv__policy_find("arc"));
	cr_assert_null(tkv__policy_find(""));
	cr_assert_null(tkv__policy_find(NULL));
	for (size_t k = 0; k < N_POLICIES; k++)
		all_policies[k]->destroy(NULL);
}

Test(policy, double_insert_is_eexist_and_remove_of_absent_is_noop)
{
	for (size_t k = 0; k < N_POLICIES; k++) {
		const tkv__policy_ops *ops = all_policies[k];
		tkv__policy_node n[2];
		init_nodes(n, 2);
		tkv__policy *p = make(ops, 4);
		ops->remove(p, &n[0]); /* never inserted */
		cr_assert_eq(ops->insert(p, &n[0]), 0);
		cr_assert_eq(ops->insert(p, &n[0]), -EEXIST, "%s", ops->name);
		cr_assert(strstr(tkv_last_error(), "already"), "%s", tkv_last_error());
		ops->remove(p, &n[0]);
		ops->remove(p, &n[0]);
		ops->access(p, &n[1]); /* hits on a node not in are allowed */
		cr_assert_null(ops->pick(p, always, NULL), "%s: empty policy picked", ops->name);
		cr_assert_eq(ops->insert(p, &n[0]), 0, "%s: re-insert after remove", ops->name);
		cr_assert_eq(ops->pick(p, always, NULL), &n[0]);
		ops->destroy(p);
	}
}

/* insert_old: the next pick meets the node first and takes it, unless it
 * was used (S3-FIFO: it moves to M instead; LRU: its own last access says
 * where it goes). The prefix cache relies on it to drop a chain from its
 * end in one go (tiers/cache.c). */
Test(policy, insert_old_is_picked_next_unless_used)
{
	for (size_t k = 0; k < N_POLICIES; k++) {
		const tkv__policy_ops *ops = all_policies[k];
		tkv__policy_node n[6];
		init_nodes(n, 6);
		tkv__policy *p = make(ops, 6);
		insert_all(ops, p, n, 4);
		cr_assert_eq(ops->insert_old(p, &n[4], false), 0);
		cr_assert_eq(ops->insert_old(p, &n[4], false), -EEXIST, "%s", ops->name);
		cr_assert_eq(ops->pick(p, always, NULL), &n[4], "%s: not next", ops->name);
		ops->destroy(p);
	}
	/* S3-FIFO: a used one survives the next pick (to M), an unused one not */
	tkv__policy_node n[6];
	init_nodes(n, 6);
	tkv__policy *p = make(&tkv__policy_s3fifo, 6);
	insert_all(&tkv__policy_s3fifo, p, n, 4);
	cr_assert_eq(tkv__policy_s3fifo.insert_old(p, &n[4], true), 0);
	tkv__policy_node *v = tkv__policy_s3fifo.pick(p, always, NULL);
	cr_assert_neq(v, &n[4], "a used node was picked first");
	cr_assert_eq(n[4].where, TKV__PQ_MAIN);
	tkv__policy_s3fifo.destroy(p);
	/* LRU: keyed by its own last access, not a new tick */
	init_nodes(n, 6);
	p = make(&tkv__policy_lru, 6);
	tkv__policy_lru.access(p, &n[5]); /* n[5] used before anything else */
	insert_all(&tkv__policy_lru, p, n, 4);
	tkv__policy_lru.access(p, &n[4]); /* n[4] used after every insert */
	cr_assert_eq(tkv__policy_lru.insert_old(p, &n[5], true), 0);
	cr_assert_eq(tkv__policy_lru.insert_old(p, &n[4], true), 0);
	cr_assert_eq(tkv__policy_lru.pick(p, always, NULL), &n[5]);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(tkv__policy_lru.pick(p, always, NULL), &n[i], "pick %d", i);
	cr_assert_eq(tkv__policy_lru.pick(p, always, NULL), &n[4]);
	tkv__policy_lru.destroy(p);
}

Test(policy, destroy_releases_nodes_for_another_policy)
{
	tkv__policy_node n[10];
	init_nodes(n, 10);
	tkv__policy *a = make(&tkv__policy_s3fifo, 10);
	insert_all(&tkv__policy_s3fifo, a, n, 10);
	tkv__policy_s3fifo.destroy(a);
	tkv__policy *b = make(&tkv__policy_lru, 10);
	insert_all(&tkv__policy_lru, b, n, 10);
	tkv__policy_lru.destroy(b);
	for (size_t i = 0; i < 10; i++)
		cr_assert_eq(n[i].where, TKV__PQ_NONE);
}

/* ---- LRU ----------------------------------------------------------------- */

Test(policy, lru_evicts_least_recently_accessed)
{
	const tkv__policy_ops *ops = &tkv__policy_lru;
	tkv__policy_node n[8];
	init_nodes(n, 8);
	tkv__policy *p = make(ops, 2); /* grows past its expected size */
	insert_all(ops, p, n, 8);
	const size_t hits[] = {3, 1, 5, 0, 3};
	for (size_t i = 0; i < ARRAY_LEN(hits); i++)
		ops->access(p, &n[hits[i]]);
	const size_t want[] = {2, 4, 6, 7, 1, 5, 0, 3};
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		tkv__policy_node *v = ops->pick(p, always, NULL);
		cr_assert_not_null(v);
		cr_assert_eq((size_t)(v - n), want[i], "pick %zu: got %td, want %zu", i, v - n,
			     want[i]);
	}
	cr_assert_null(ops->pick(p, always, NULL));
	ops->destroy(p);
}

/* The reference LRU: the in-policy, unpinned node with the oldest use. */
typedef struct lru_model {
	bool in[64], pinned[64];
	uint64_t used[64], now;
} lru_model;

static long model_victim(const lru_model *m)
{
	long best = -1;
	for (long i = 0; i < 64; i++)
		if (m->in[i] && !m->pinned[i] && (best < 0 || m->used[i] < m->used[best]))
			best = i;
	return best;
}

static void model_step(lru_model *m, tkv__policy *p, tkv__policy_node *n, unsigned *seed)
{
	const tkv__policy_ops *ops = &tkv__policy_lru;
	long i = rand_r(seed) % 64;
	int op = rand_r(seed) % 10;
	if (op < 4) { /* hit */
		ops->access(p, &n[i]);
		m->used[i] = ++m->now;
	} else if (op < 6 && !m->in[i]) {
		cr_assert_eq(ops->insert(p, &n[i]), 0);
		m->in[i] = true;
		m->used[i] = ++m->now;
	} else if (op < 7) {
		ops->remove(p, &n[i]);
		m->in[i] = false;
	} else if (op < 8) {
		m->pinned[i] = !m->pinned[i];
	} else {
		pin_set ps = {n, m->pinned, 0, NULL};
		tkv__policy_node *v = ops->pick(p, not_pinned, &ps);
		cr_assert_eq(ps.yes, v != NULL, "eligible() yes count %zu", ps.yes);
		long want = model_victim(m);
		cr_assert_eq(v == NULL ? -1 : v - n, want, "picked %td, model says %ld",
			     v == NULL ? -1 : v - n, want);
		if (want >= 0)
			m->in[want] = false;
	}
}

Test(policy, lru_matches_reference_model)
{
	tkv__policy_node n[64];
	init_nodes(n, 64);
	tkv__policy *p = make(&tkv__policy_lru, 16);
	lru_model m = {0};
	unsigned seed = 12345;
	for (int step = 0; step < 50000; step++)
		model_step(&m, p, n, &seed);
	tkv__policy_lru.destroy(p);
}

/* ---- S3-FIFO ------------------------------------------------------------- */

Test(policy, s3fifo_one_hit_wonders_leave_from_small_first)
{
	const tkv__policy_ops *ops = &tkv__policy_s3fifo;
	tkv__policy_node n[30];
	init_nodes(n, 30);
	tkv__policy *p = make(ops, 30);
	/* 9 reused units and one one-hit wonder, all in S. */
	insert_all(ops, p, n, 10);
	for (size_t i = 0; i < 9; i++)
		ops->access(p, &n[i]);
	/* S's tail holds the reused units: they move to M, the wonder goes. */
	cr_assert_eq(ops->pick(p, always, NULL), &n[9]);
	for (size_t i = 0; i < 9; i++)
		cr_assert_eq(n[i].where, TKV__PQ_MAIN, "unit %zu", i);
	/* 20 newer one-time units: all leave before any older reused one. */
	insert_all(ops, p, n + 10, 20);
	for (size_t i = 10; i < 30; i++) {
		tkv__policy_node *v = ops->pick(p, always, NULL);
		cr_assert_eq(v, &n[i], "pick: got %td, want %zu", v - n, i);
	}
	cr_assert_eq(ops->pick(p, always, NULL), &n[0], "then M, in FIFO order");
	ops->destroy(p);
}

/* Fills a cache of `cap` units with a scan of one-time units, evicting at
 * capacity; returns how many of the `hot` first nodes are still in. */
static size_t survivors_of_scan(const tkv__policy_ops *ops, tkv__policy_node *n, size_t hot,
				size_t total, size_t cap)
{
	tkv__policy *p = make(ops, cap);
	bool *in = calloc(total, sizeof(*in));
	size_t count = 0, alive = 0;
	for (size_t i = 0; i < total; i++) {
		if (count == cap) {
			tkv__policy_node *v = ops->pick(p, always, NULL);
			cr_assert_not_null(v);
			in[v - n] = false;
			count--;
		}
		cr_assert_eq(ops->insert(p, &n[i]), 0);
		in[i] = true;
		count++;
		for (int rep = 0; i < hot && rep < 3; rep++)
			ops->access(p, &n[i]); /* hot: used 3 times, then never in the scan */
	}
	for (size_t i = 0; i < hot; i++)
		alive += in[i];
	free(in);
	ops->destroy(p);
	return alive;
}

Test(policy, s3fifo_frequent_units_survive_a_scan)
{
	enum { HOT = 20, TOTAL = 1020, CAP = 100 };
	static tkv__policy_node n[TOTAL];
	init_nodes(n, TOTAL);
	size_t s3 = survivors_of_scan(&tkv__policy_s3fifo, n, HOT, TOTAL, CAP);
	init_nodes(n, TOTAL);
	size_t lru = survivors_of_scan(&tkv__policy_lru, n, HOT, TOTAL, CAP);
	cr_log_info("hot units left after a %d-unit scan: s3fifo %zu/%d, lru %zu/%d", TOTAL - HOT,
		    s3, HOT, lru, HOT);
	cr_assert_eq(s3, HOT, "S3-FIFO lost hot units to a scan");
	cr_assert_eq(lru, 0, "LRU is expected to lose them (the test's premise)");
}

Test(policy, s3fifo_ghost_hit_enters_main_and_ghost_is_bounded)
{
	const tkv__policy_ops *ops = &tkv__policy_s3fifo;
	enum { EXPECTED = 40, GHOST = EXPECTED * 9 / 10 }; /* 90% of the units */
	static tkv__policy_node n[EXPECTED + 2];
	init_nodes(n, EXPECTED + 2);
	tkv__policy *p = make(ops, EXPECTED);
	cr_assert_eq(ops->insert(p, &n[0]), 0);
	cr_assert_eq(ops->pick(p, always, NULL), &n[0]); /* evicted from S: key in G */
	cr_assert_eq(ops->insert(p, &n[0]), 0);
	cr_assert_eq(n[0].where, TKV__PQ_MAIN, "a ghost hit must enter M");
	ops->remove(p, &n[0]);
	cr_assert_eq(ops->insert(p, &n[0]), 0);
	cr_assert_eq(n[0].where, TKV__PQ_SMALL, "the ghost entry is used up by the hit");
	cr_assert_eq(ops->pick(p, always, NULL), &n[0]);
	/* GHOST - 1 more keys: n[0]'s key is still remembered... */
	for (size_t i = 1; i < GHOST; i++) {
		cr_assert_eq(ops->insert(p, &n[i]), 0);
		cr_assert_eq(ops->pick(p, always, NULL), &n[i]);
	}
	cr_assert_eq(ops->insert(p, &n[0]), 0);
	cr_assert_eq(n[0].where, TKV__PQ_MAIN);
	cr_assert_eq(ops->pick(p, always, NULL), &n[0]);
	/* ...and after GHOST newer keys, it is forgotten. */
	for (size_t i = 1; i <= GHOST; i++) {
		cr_assert_eq(ops->insert(p, &n[i]), 0);
		cr_assert_eq(ops->pick(p, always, NULL), &n[i]);
	}
	cr_assert_eq(ops->insert(p, &n[0]), 0);
	cr_assert_eq(n[0].where, TKV__PQ_SMALL, "ghost must forget its oldest key");
	ops->destroy(p);
}

/* The ghost's table against a plain model: a key is remembered iff its
 * latest add is among the last `cap` adds and it was not taken since. */
Test(policy, ghost_matches_reference_model)
{
	enum { CAP = 37, KEYS = 97 };
	tkv__ghost g;
	cr_assert_eq(tkv__ghost_init(&g, CAP), 0);
	long latest[KEYS];
	for (int k = 0; k < KEYS; k++)
		latest[k] = -1;
	long seq = 0;
	unsigned seed = 7;
	for (int step = 0; step < 200000; step++) {
		int k = rand_r(&seed) % KEYS;
		uint64_t key = (uint64_t)k << 16; /* low bits all 0: the ghost must mix */
		if (rand_r(&seed) % 3 != 0) {
			tkv__ghost_add(&g, key);
			latest[k] = seq++;
			continue;
		}
		bool want = latest[k] >= 0 && latest[k] >= seq - CAP;
		cr_assert_eq(tkv__ghost_take(&g, key), want, "step %d key %d", step, k);
		latest[k] = -1;
	}
	tkv__ghost_fini(&g);
}

/* ---- both policies: pins, remove ----------------------------------------- */

Test(policy, pick_skips_pinned_nodes_and_keeps_them)
{
	enum { N = 16 };
	for (size_t k = 0; k < N_POLICIES; k++) {
		const tkv__policy_ops *ops = all_policies[k];
		tkv__policy_node n[N];
		bool pinned[N] = {0}, out[N] = {0};
		init_nodes(n, N);
		tkv__policy *p = make(ops, N);
		insert_all(ops, p, n, N);
		for (size_t i = 4; i < 12; i++) /* some hits: S3-FIFO moves these to M */
			for (size_t rep = 0; rep <= i % 3; rep++)
				ops->access(p, &n[i]);
		const size_t pins[] = {0, 5, 9, 15}; /* oldest, in M, in M, newest */
		for (size_t i = 0; i < ARRAY_LEN(pins); i++)
			pinned[pins[i]] = true;
		pin_set ps = {n, pinned, 0, NULL};
		size_t got = 0;
		tkv__policy_node *v;
		while ((v = ops->pick(p, not_pinned, &ps)) != NULL) {
			cr_assert_not(pinned[v - n], "%s: picked pinned %td", ops->name, v - n);
			/* A yes claims the unit: it must be the one returned. */
			cr_assert_eq(ps.yes, got + 1, "%s: eligible() said yes twice", ops->name);
			cr_assert_eq(ps.last_yes, v, "%s: a yes was not returned", ops->name);
			cr_assert_not(out[v - n]);
			out[v - n] = true;
			got++;
		}
		cr_assert_eq(got, N - ARRAY_LEN(pins), "%s: %zu unpinned picked", ops->name, got);
		cr_assert_eq(ps.yes, got, "%s: a yes without a victim", ops->name);
		/* The pinned ones are all still there. */
		cr_assert_eq(drain(ops, p, n, N, out), ARRAY_LEN(pins), "%s", ops->name);
		ops->destroy(p);
	}
}

/* Removes `gone` (from whatever queue or heap position), then checks every
 * other node still comes out exactly once and the removed ones never do. */
static void remove_and_check(const tkv__policy_ops *ops, tkv__policy *p, tkv__policy_node *n,
			     size_t count, const size_t *gone, size_t n_gone)
{
	bool out[64] = {0};
	for (size_t i = 0; i < n_gone; i++) {
		ops->remove(p, &n[gone[i]]);
		cr_assert_eq(n[gone[i]].where, TKV__PQ_NONE);
		ops->remove(p, &n[gone[i]]); /* no longer in: a no-op */
	}
	cr_assert_eq(drain(ops, p, n, count, out), count - n_gone, "%s", ops->name);
	for (size_t i = 0; i < n_gone; i++)
		cr_assert_not(out[gone[i]], "%s: removed node %zu picked", ops->name, gone[i]);
}

Test(policy, s3fifo_remove_from_small_and_main)
{
	const tkv__policy_ops *ops = &tkv__policy_s3fifo;
	enum { N = 20 };
	tkv__policy_node n[N];
	init_nodes(n, N);
	tkv__policy *p = make(ops, N);
	insert_all(ops, p, n, 10);
	for (size_t i = 0; i < 9; i++)
		ops->access(p, &n[i]);
	cr_assert_eq(ops->pick(p, always, NULL), &n[9]); /* 0..8 now in M */
	cr_assert_eq(ops->insert(p, &n[9]), 0);           /* ghost hit: M's head */
	insert_all(ops, p, n + 10, 10);                   /* 10..19 in S */
	cr_assert_eq(n[4].where, TKV__PQ_MAIN);
	cr_assert_eq(n[9].where, TKV__PQ_MAIN);
	cr_assert_eq(n[15].where, TKV__PQ_SMALL);
	/* M: tail, middle, head; S: tail, middle, head. */
	const size_t gone[] = {0, 4, 9, 10, 15, 19};
	remove_and_check(ops, p, n, N, gone, ARRAY_LEN(gone));
	ops->destroy(p);
}

Test(policy, lru_remove_from_any_heap_position)
{
	const tkv__policy_ops *ops = &tkv__policy_lru;
	enum { N = 40 };
	tkv__policy_node n[N];
	init_nodes(n, N);
	tkv__policy *p = make(ops, N);
	insert_all(ops, p, n, N);
	for (size_t i = 0; i < N; i += 3)
		ops->access(p, &n[i]);
	const size_t gone[] = {1, 0, 39, 17, 18, 36}; /* root, leaves, inner nodes */
	remove_and_check(ops, p, n, N, gone, ARRAY_LEN(gone));
	ops->destroy(p);
}

/* ---- concurrency: hits from 4 threads while others insert/pick/remove ---- */

enum { CC_NODES = 512, CC_READERS = 4, CC_PINNED = 16, CC_OPS = 60000 };

typedef struct cc_state {
	const tkv__policy_ops *ops;
	tkv__policy *p;
	tkv__policy_node nodes[CC_NODES];
	uint32_t pins[CC_NODES]; /* atomic */
	uint32_t stop;           /* atomic */
	uint32_t closer_errors;  /* atomic: Criterion asserts only on the test's thread */
} cc_state;

/* An engine thread: pin, hit, unpin units at random. */
static void *cc_reader(void *arg)
{
	cc_state *s = arg;
	unsigned seed = (unsigned)(uintptr_t)&seed;
	/* Ordering: stop only ends the loop; join orders everything else. */
	while (!ck_pr_load_32(&s->stop)) {
		size_t i = (size_t)rand_r(&seed) % CC_NODES;
		ck_pr_inc_32(&s->pins[i]); /* Ordering: counter only, see cc_eligible */
		s->ops->access(s->p, &s->nodes[i]);
		ck_pr_dec_32(&s->pins[i]);
	}
	return NULL;
}

/* The evictor's check. Nodes below CC_PINNED are pinned for the whole test,
 * so they must never be picked; other pins race with the pick, as in the
 * runtime, which settles that race with its own unit state. */
static bool cc_eligible(void *ctx, tkv__policy_node *n)
{
	cc_state *s = ctx;
	/* Ordering: none; only the count matters, as for a unit's pin count. */
	return ck_pr_load_32(&s->pins[n - s->nodes]) == 0;
}

/* A sequence-close thread: inserts and removes the odd nodes. */
static void *cc_closer(void *arg)
{
	cc_state *s = arg;
	for (int round = 0; round < CC_OPS / 256; round++)
		for (size_t i = CC_PINNED + 1; i < CC_NODES; i += 2) {
			if (s->ops->insert(s->p, &s->nodes[i]) != 0)
				ck_pr_inc_32(&s->closer_errors); /* Ordering: join */
			s->ops->remove(s->p, &s->nodes[i]);
		}
	return NULL;
}

/* The evictor: inserts and picks even nodes (and removes some), checking
 * the picks against what it knows is in. */
static void cc_evictor(cc_state *s, bool *in)
{
	unsigned seed = 99;
	for (int op = 0; op < CC_OPS; op++) {
		size_t i = ((size_t)rand_r(&seed) % (CC_NODES / 2)) * 2;
		if (op % 3 == 2) {
			tkv__policy_node *v = s->ops->pick(s->p, cc_eligible, s);
			if (v != NULL) {
				cr_assert_geq(v - s->nodes, CC_PINNED, "pinned node picked");
				in[v - s->nodes] = false;
			}
		} else if (!in[i]) {
			cr_assert_eq(s->ops->insert(s->p, &s->nodes[i]), 0);
			in[i] = true;
		} else if (op % 7 == 0) {
			s->ops->remove(s->p, &s->nodes[i]);
			in[i] = false;
		}
	}
}

static void run_concurrent(const tkv__policy_ops *ops)
{
	static cc_state s;
	bool in[CC_NODES] = {0};
	memset(&s, 0, sizeof(s));
	s.ops = ops;
	s.p = make(ops, CC_NODES / 2);
	init_nodes(s.nodes, CC_NODES);
	for (size_t i = 0; i < CC_PINNED; i++)
		s.pins[i] = 1;
	pthread_t t[CC_READERS + 1];
	for (int i = 0; i < CC_READERS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, cc_reader, &s), 0);
	cr_assert_eq(pthread_create(&t[CC_READERS], NULL, cc_closer, &s), 0);
	cc_evictor(&s, in);
	pthread_join(t[CC_READERS], NULL);
	/* Ordering: the join above orders the closer's increments before this. */
	cr_assert_eq(ck_pr_load_32(&s.closer_errors), 0, "%s: closer inserts failed", ops->name);
	ck_pr_store_32(&s.stop, 1); /* Ordering: see cc_reader */
	for (int i = 0; i < CC_READERS; i++)
		pthread_join(t[i], NULL);
	bool out[CC_NODES] = {0};
	drain(ops, s.p, s.nodes, CC_NODES, out);
	for (size_t i = 0; i < CC_NODES; i += 2)
		cr_assert_eq(out[i], in[i], "%s: node %zu in=%d out=%d", ops->name, i, in[i],
			     out[i]);
	ops->destroy(s.p);
}

Test(policy, lru_hits_from_4_threads_race_with_insert_pick_remove)
{
	run_concurrent(&tkv__policy_lru);
}

Test(policy, s3fifo_hits_from_4_threads_race_with_insert_pick_remove)
{
	run_concurrent(&tkv__policy_s3fifo);
}

/* ---- Mooncake trace replay ------------------------------------------------ */

#define TRACE_NAME "mooncake_synthetic_trace.jsonl"
#define REPLAY_CAP 16384 /* units (512-token blocks) */

typedef struct trace {
	uint32_t *ids;     /* block ids, request after request */
	uint32_t *tokens;  /* tokens of each block (the last one may be short) */
	size_t n_refs, n_requests;
	uint32_t max_id;
	bool whole; /* every request read (no TKV_POLICY_REPLAY_REQUESTS cut) */
} trace;

static FILE *open_trace(char *path, size_t size)
{
	return trace_open(TRACE_NAME, path, size);
}

static void trace_push(trace *t, size_t *cap, uint32_t id, uint32_t tokens)
{
	if (t->n_refs == *cap) {
		*cap = *cap ? *cap * 2 : 1 << 16;
		t->ids = realloc(t->ids, *cap * sizeof(*t->ids));
		t->tokens = realloc(t->tokens, *cap * sizeof(*t->tokens));
		cr_assert(t->ids && t->tokens);
	}
	t->ids[t->n_refs] = id;
	t->tokens[t->n_refs++] = tokens;
	if (id > t->max_id)
		t->max_id = id;
}

/* One JSON line: "input_length": N ... "hash_ids": [a, b, ...]. One id per
 * 512-token block; the last block holds the remainder of input_length. */
static void trace_parse_line(trace *t, size_t *cap, const char *line)
{
	const char *len = strstr(line, "\"input_length\":");
	const char *ids = strstr(line, "\"hash_ids\":");
	cr_assert(len && ids, "bad trace line: %.80s", line);
	unsigned long input = strtoul(len + strlen("\"input_length\":"), NULL, 10);
	const char *s = strchr(ids, '[') + 1;
	for (unsigned long done = 0;;) {
		char *end;
		unsigned long id = strtoul(s, &end, 10);
		if (end == s)
			break;
		cr_assert_lt(id, 1ul << 24, "block id %lu: the replay indexes ids directly", id);
		uint32_t tok = input - done > 512 ? 512 : (uint32_t)(input - done);
		trace_push(t, cap, (uint32_t)id, tok);
		done += tok;
		s = end + strspn(end, ", ");
	}
	t->n_requests++;
}

/* All requests by default: the whole replay takes ~10 ms optimized and well
 * under a second under TSan. TKV_POLICY_REPLAY_REQUESTS=N replays only the
 * first N (the 53% check then does not apply). */
static size_t replay_limit(void)
{
	const char *env = getenv("TKV_POLICY_REPLAY_REQUESTS");
	return env != NULL ? strtoul(env, NULL, 10) : 0;
}

static bool trace_load(trace *t, char *path, size_t path_size)
{
	FILE *f = open_trace(path, path_size);
	if (f == NULL)
		return false;
	size_t cap = 0, limit = replay_limit(), n = 0;
	char *line = NULL;
	while ((limit == 0 || t->n_requests < limit) && getline(&line, &n, f) > 0)
		trace_parse_line(t, &cap, line);
	t->whole = feof(f);
	free(line);
	fclose(f);
	return true;
}

typedef struct replay_result {
	double block_hits, token_hits; /* ratios */
	double seconds;
} replay_result;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A hot tier of REPLAY_CAP units: each referenced block is a hit if in,
 * else it is inserted, the policy evicting one unit first when full. */
static replay_result replay(const tkv__policy_ops *ops, const trace *t)
{
	size_t n_nodes = (size_t)t->max_id + 1, count = 0, hits = 0;
	uint64_t tokens = 0, token_hits = 0;
	tkv__policy_node *nodes = malloc(n_nodes * sizeof(*nodes));
	bool *in = calloc(n_nodes, sizeof(*in));
	cr_assert(nodes && in);
	for (size_t i = 0; i < n_nodes; i++)
		tkv__policy_node_init(&nodes[i], i); /* the block id is its identity */
	double t0 = now_s();
	tkv__policy *p = make(ops, REPLAY_CAP);
	for (size_t r = 0; r < t->n_refs; r++) {
		uint32_t id = t->ids[r];
		tokens += t->tokens[r];
		if (in[id]) {
			hits++;
			token_hits += t->tokens[r];
			ops->access(p, &nodes[id]);
			continue;
		}
		if (count == REPLAY_CAP) {
			tkv__policy_node *v = ops->pick(p, always, NULL);
			cr_assert_not_null(v);
			in[v - nodes] = false;
			count--;
		}
		cr_assert_eq(ops->insert(p, &nodes[id]), 0);
		in[id] = true;
		count++;
	}
	ops->destroy(p);
	replay_result res = {(double)hits / t->n_refs, (double)token_hits / tokens, now_s() - t0};
	free(nodes);
	free(in);
	return res;
}

Test(policy, mooncake_trace_replay)
{
	char path[PATH_MAX];
	trace t = {0};
	if (!trace_load(&t, path, sizeof(path)))
		cr_skip_test("trace not found (%s, nor shared/traces/ above the working "
			     "directory): the replay needs the shared/ folder beside the repo",
			     TRACE_NAME);
	cr_assert_gt(t.n_refs, 0, "empty trace %s", path);
	replay_result lru = replay(&tkv__policy_lru, &t);
	replay_result s3 = replay(&tkv__policy_s3fifo, &t);
	cr_log_info("%zu requests, %zu block refs, %d-unit cache: block hits lru %.2f%% s3fifo "
		    "%.2f%%; token hits lru %.2f%% s3fifo %.2f%%; replay %.3f s + %.3f s",
		    t.n_requests, t.n_refs, REPLAY_CAP, 100 * lru.block_hits,
		    100 * s3.block_hits, 100 * lru.token_hits, 100 * s3.token_hits, lru.seconds,
		    s3.seconds);
	cr_assert_geq(s3.block_hits, lru.block_hits, "S3-FIFO should serve at least LRU's hits");
	if (t.whole) /* the trace's provenance note: "an LRU cache of 16k blocks 53%" */
		cr_assert(lru.block_hits > 0.50 && lru.block_hits < 0.56,
			  "LRU of 16k blocks should serve about 53%%, got %.2f%%",
			  100 * lru.block_hits);
	free(t.ids);
	free(t.tokens);
}
