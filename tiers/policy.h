/*
 * policy.h - the cold tier's eviction policies: which evictable unit the
 * evictor moves to SSD next.
 *
 * An evictable unit is one block position of one sequence, all layers. The
 * runtime embeds a tkv__policy_node in each unit, so recording a hit needs
 * no lookup and no lock. Two policies sit behind one ops table:
 *
 * "lru" - exact least-recently-used. access() takes a tick from a per-policy
 *   counter (one atomic fetch-and-add) and raises the node's last_access to
 *   it (a compare-and-swap that only ever increases it); insert() counts as
 *   a use too. Under its lock the policy keeps a binary min-heap of (key,
 *   node), where key is the node's last_access as it was when the heap last
 *   looked. Ticks only grow, so a key is a lower bound of its node's true
 *   tick. pick() looks at the root: if it was hit since (last_access > key),
 *   its key is raised to the true tick and sifted down; otherwise its true
 *   tick is <= every other key <= every other true tick, so it IS the least
 *   recently used node. Ineligible roots are set aside and put back after
 *   the pick. Why a heap and not a list re-sorted at pick time: each node hit
 *   since it was placed must be re-placed by its new tick, a linear walk in a
 *   list and O(log n) in a heap. Exact means: among eligible nodes, pick()
 *   returns the one whose newest hit is oldest, counting every access() that
 *   returned before the pick began; hits racing with the pick may or may not
 *   count (a node re-keyed during this pick to a tick past its start is not
 *   re-checked, so a node hammered by hits cannot stall the pick).
 *
 * "s3fifo" - the adaptive (recency + frequency) policy: S3-FIFO (Yang et al.,
 *   "FIFO queues are all you need for cache eviction", SOSP'23). A small FIFO
 *   S (10% of the units), a main FIFO M, a ghost FIFO G of keys recently
 *   evicted from S, and a 2-bit hit counter per node (0..3). New units enter
 *   S (or M if their key is in G). Eviction takes from S while S holds >= 10%
 *   of the units: an S tail hit at least once moves to M (counter reset),
 *   else it is the victim and its key goes to G. In M, a tail with hits is
 *   re-inserted at the head with its counter decremented; one without is the
 *   victim. Why S3-FIFO rather than ARC or 2Q:
 *   - scan resistance: a long one-off prompt enters S and leaves from S, so
 *     it cannot flush the reused prefixes that live in M (LRU would evict
 *     them all to make room for the scan);
 *   - cheap lock-free hits: access() is one atomic increment of the unit's
 *     own counter, which saturates at 3, so most hits to hot units only read
 *     it; ARC or a list LRU moves the node on every hit, under a lock, and
 *     the exact LRU above bumps one counter shared by all engine threads;
 *   - plain FIFO queues: O(1) insert; evict is amortized O(1) (each hit
 *     buys at most one move, S to M or round M) plus a walk past pinned
 *     units; nothing to tune or adapt;
 *   - it matches prefix reuse in the Mooncake trace: 64% of block references
 *     repeat a block, yet 58% of distinct blocks are used only once (these
 *     one-hit wonders leave quickly from S), while a prefix reused by several
 *     requests climbs to M and stays. Replaying that trace through a
 *     16k-unit hot tier, S3-FIFO serves 56.2% of block references, LRU 53.1%
 *     (tests/policy.c prints both).
 *
 * Threads and locks: access() may be called from any thread at any time the
 * unit exists, and is lock-free. insert, remove and pick take the policy's own
 * mutex and hold it only for list/heap updates (no I/O, no allocation except
 * when the LRU heap grows). pick()'s eligible() callback runs with that mutex
 * held: it may only read the unit's state (pin count, flags); it must not call
 * into the policy nor take a lock that any caller holds while calling into the
 * policy. The policy mutex is therefore a leaf lock, taken last.
 *
 * Lifetime: the runtime owns the nodes; a node is in at most one policy at a
 * time. A node must be removed (remove(), or picked) before its unit is freed,
 * and no thread may call access() on a unit being freed (the runtime's own
 * reference counting guarantees that). pick() and remove() of the same node
 * are serialized by the policy lock: whichever comes second finds the node
 * gone (remove is then a no-op), so a unit the evictor has just picked must
 * stay alive until the evictor is done with it, by the runtime's own state.
 */
#ifndef TKV_TIERS_POLICY_H
#define TKV_TIERS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Intrusive per-unit state, owned by the policy; the runtime only sets key
 * (via tkv__policy_node_init) and otherwise never touches it. */
typedef struct tkv__policy_node {
	struct tkv__policy_node *prev, *next; /* policy lock: S3-FIFO queue links */
	uint64_t key;         /* runtime: hash of (sequence id, block index), for the ghost */
	uint64_t last_access; /* atomic: LRU tick of the newest hit (only grows) */
	uint32_t freq;        /* atomic: S3-FIFO hits, saturating at 3 */
	uint32_t where;       /* policy lock: queue the node is in, 0 if none */
	uint32_t slot;        /* policy lock: LRU heap index */
} tkv__policy_node;

typedef struct tkv__policy tkv__policy;

typedef bool (*tkv__policy_eligible_fn)(void *ctx, tkv__policy_node *n);

typedef struct tkv__policy_ops {
	const char *name; /* "lru", "s3fifo" */
	/* A policy sized for about expected_units nodes (it works with more).
	 * NULL and -ENOMEM in tkv_last_error() if out of memory. */
	tkv__policy *(*create)(size_t expected_units);
	/* Frees the policy; nodes still in it are marked as in none (so they may
	 * be inserted into another policy). NULL is a no-op. */
	void (*destroy)(tkv__policy *p);
	/* The unit became evictable (hot and complete), or a promoted unit
	 * re-enters. 0; -EEXIST if the node is already in; -ENOMEM if the LRU
	 * heap could not grow (the node is then not in: the unit stays hot). */
	int (*insert)(tkv__policy *p, tkv__policy_node *n);
	/* As insert, but n enters at the eviction end: the next pick meets it
	 * first and takes it unless `used` (S3-FIFO: S's tail with one hit,
	 * or none; LRU: keyed by its own last access, no new tick, so `used`
	 * is what its tick says). For the prefix cache, whose drop policy
	 * holds only blocks no other block follows: when the last block
	 * following one is dropped, that one is next in line unless it was
	 * used without it, as in an LRU where a prefix is always touched with
	 * its continuation. */
	int (*insert_old)(tkv__policy *p, tkv__policy_node *n, bool used);
	/* The unit is gone or no longer evictable. No-op if the node is not in. */
	void (*remove)(tkv__policy *p, tkv__policy_node *n);
	/* A hit (read or view of the unit); any thread; lock-free, never blocks.
	 * Allowed whether or not the node is in the policy. */
	void (*access)(tkv__policy *p, tkv__policy_node *n);
	/* Chooses a victim: walks in eviction order, skipping (and keeping)
	 * nodes for which eligible() is false (pinned, being promoted, ...);
	 * the chosen node is removed from the policy. NULL if none is eligible.
	 * eligible() runs under the policy lock (see above). The first node it
	 * says yes to is the one returned, and it is not called again in this
	 * pick, so a yes may claim the unit (take a reference, set its state). */
	tkv__policy_node *(*pick)(tkv__policy *p, tkv__policy_eligible_fn eligible, void *ctx);
} tkv__policy_ops;

extern const tkv__policy_ops tkv__policy_lru, tkv__policy_s3fifo;

/* S3-FIFO only: S's share of the units it holds, in percent (1..99;
 * default 10, the paper's). The prefix cache's drop policy holds one node
 * per chain end rather than one per block, and a chain end must stay long
 * enough for a request to come back to its chain: it uses 60 (cache.c). */
void tkv__policy_s3fifo_small_share(tkv__policy *p, unsigned percent);

/* The policy named `name` ("lru", "s3fifo"); NULL if unknown or NULL. */
const tkv__policy_ops *tkv__policy_find(const char *name);

/* Prepares a node before its first insert: not in any policy, no hits, and
 * the ghost key the runtime derives from (sequence id, block index). */
void tkv__policy_node_init(tkv__policy_node *n, uint64_t key);

#endif
