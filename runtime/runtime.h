/*
 * runtime.h - the runtime object shared by the producer API, the workers and
 * the readers.
 *
 * Ring topology: one MPSC ring per worker (desc_ring.h), any engine thread
 * producing.
 * Why not SPSC rings per registered producer: tickets complete by position
 * (a layer's done_pos), which is only sound if a layer's batches complete
 * in the order they were accepted. The API lets an engine hand a sequence
 * from thread to thread; with one SPSC ring per producer the worker could
 * drain the second thread's ring first and publish a done_pos past a batch
 * still queued in the first ring. One MPSC ring per worker keeps acceptance
 * order = completion order with no per-thread registration. It adds one CAS on
 * the producer index per batch, never per token; `tierkv-bench ring`
 * measured no extra cost over SPSC with one producer (both are dominated by
 * cross-core cache misses), and a clear cost only when two producers
 * contend on one ring (docs/MEASUREMENTS.md). Producers never wait for
 * each other (desc_ring.h: why not ck_ring's MPSC enqueue).
 *
 * Lock order: seq_table shard lock -> nothing (no other lock is taken while
 * one is held, and no lock is held while waiting for a worker or for I/O;
 * every lock of the library: docs/ARCHITECTURE.md, "Locks and lock order").
 */
#ifndef TKV_RUNTIME_RUNTIME_H
#define TKV_RUNTIME_RUNTIME_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/trace.h"
#include "base/wake.h"
#include "runtime/desc_ring.h"
#include "kernels/kernels.h"
#include "runtime/config.h"
#include "runtime/seq_table.h"
#include "tiers/cache.h"
#include "tiers/evictor.h"
#include "tiers/hot.h"
#include "tiers/shared_tier.h"
#include "tiers/units.h"

typedef struct tkv__worker {
	/* Ring (desc_ring.h): head and tail on their own cache lines. */
	tkv__dring ring;
	tkv__dring_slot *slots;

	/* The idle worker sleeps here; producers signal after each push (a
	 * fence and a load unless it sleeps: base/wake.h). */
	tkv__wake idle __attribute__((aligned(64)));

	/* Producers that found the queue full sleep here; the worker signals
	 * once it has drained the queue to half (worker.c, room_check), so a
	 * full queue costs one sleep and one wake-up per half queue. */
	tkv__wake room;
	uint64_t room_next; /* worker only: queue position of the next check */

	/* Written only by the worker; read by tkv_stats_get. What it copied,
	 * from its own ring or stolen from another's (worker.c, Stealing). */
	uint64_t tokens __attribute__((aligned(64)));
	uint64_t bytes;
	uint64_t batches;
	uint64_t stolen;    /* of batches, those copied from another worker's queue */
	uint64_t steal_groups; /* the groups `stolen` came in (steal_group) */
	uint64_t runs;         /* fenced runs completed (worker.c, Groups; tests read it) */
	uint64_t completed; /* descriptors of its own queue completed (copies_pending) */
	uint64_t copied_ahead; /* of batches, its own copied past a claimed front (copy_ahead.c) */

	/* Thief only: the positions it stole last from steal_victim's queue,
	 * skipped when it looks for more there (worker.c, steal_scan). */
	uint32_t steal_victim;
	uint64_t steal_lo, steal_hi;

	/* The bench-only mutex queue (queue_mutex.c); unused with the ring. */
	pthread_mutex_t mq_lock __attribute__((aligned(64)));
	tkv__desc *mq_slots;
	uint32_t *mq_claim; /* per slot: MQ_* of queue_mutex.c (atomic; written under mq_lock) */
	uint32_t mq_head, mq_tail; /* written under mq_lock; tail also read racily */
	bool mq_ready;             /* mq_lock initialized */

	struct tkv_runtime *rt __attribute__((aligned(64)));
	tkv__trace_buf *tb; /* the worker's trace buffer; NULL when off */
	pthread_t thread;
	uint32_t index;
	int32_t pin_cpu; /* the CPU to pin to, or -1 (start_one) */
	int32_t cpu;     /* pinned CPU or -1 (set by the worker before it reports started) */
	uint32_t n_layers_owned;
	bool started;
	uint32_t pause_seen;     /* the pause generation this worker saw (atomic; tests) */
	uint32_t held;           /* test seam: neither takes nor steals (atomic) */
	int32_t populate_rc;    /* the worker's tkv__hot_populate_pool (atomic) */
	uint64_t populate_share; /* blocks of its pool's share (populated, or tried) */
} tkv__worker;

/* Which descriptor queue the workers use. Only the bench picks MUTEX. */
typedef enum tkv__queue_kind {
	TKV__QUEUE_RING = 0,  /* desc_ring.h MPSC, the runtime's queue */
	TKV__QUEUE_MUTEX = 1, /* mutex queue (queue_mutex.c), the bench baseline */
} tkv__queue_kind;

struct tkv_runtime {
	tkv_config cfg;
	tkv__queue_kind queue;
	uint64_t room_nap_ns; /* tkv__open_opts.room_nap_ns, resolved */
	tkv__geometry geo;
	const tkv__kernels *kern;
	tkv__copy_fn hot_copy; /* the copy into hot blocks, chosen at open (runtime.c) */
	bool hot_streams;      /* hot_copy is copy_stream_unfenced: tkv__stream_fence before publishing */

	tkv__worker *workers;
	uint32_t n_workers;
	uint32_t pin_failures; /* atomic: the workers count their own (worker_start) */
	/* Ticket waiters that may spin at once: the CPUs of the opener's
	 * affinity mask that no worker takes (completion.c, "Spinning"). */
	uint32_t wait_spin_cpus;
	uint32_t wait_spinning __attribute__((aligned(64))); /* spinning now (atomic) */
	uint64_t wait_spins; /* slots ever claimed (atomic; tests) */
	/* Workers still starting (pinning themselves, populating their pools;
	 * worker.c); the
	 * opener sleeps on `started` until none is. */
	uint32_t starting;
	tkv__wake started;
	const char *topology_source;

	tkv__seq_table seqs;
	bool seqs_ready;     /* seqs initialized (teardown of a failed open) */
	tkv__tracer *tracer; /* NULL when tracing is off */
	tkv__hot hot;        /* capacity and the workers' block pools */
	tkv__evictor *ev;    /* NULL without a cold tier */
	tkv__cache *cache;   /* NULL without config.model_id */
	tkv__shared_tier *shared; /* NULL without config.shared_enabled */
	char *model_id;      /* the runtime's copy of cfg.model_id */
	bool cache_dir_dirty; /* cold_dir's cache-model to seal at close */
	tkv__tiers tiers;    /* {&hot, ev, cache}: units.h */

	/* Ticket waiters copy their own queued batches (copy_ahead.c):
	 * cfg.wait_copy is not TKV_WAIT_SLEEP; at most waiter_copy_max at
	 * once (COPY_OWN: the CPUs beyond one per worker, at least 1). */
	bool waiter_copies;
	uint32_t waiter_copy_max;
	uint32_t waiters_copying __attribute__((aligned(64))); /* now (atomic) */
	uint32_t waiters_open; /* batches taken by waiters, not yet completed (atomic) */
	/* Test seam: a waiter that took its batch whole calls it after the
	 * slot is DONE, before it copies (tests hold it there); NULL outside
	 * tests. */
	void (*test_taken_hook)(struct tkv_runtime *rt);
	/* What those waiters copied (atomic; tkv_stats). */
	uint64_t waiter_batches __attribute__((aligned(64)));
	uint64_t waiter_tokens;
	uint64_t waiter_bytes;

	uint64_t ring_full_events __attribute__((aligned(64)));
	uint64_t enospc_events;
	uint64_t pinned_blocks;

	uint32_t stop __attribute__((aligned(64)));    /* workers drain and exit */
	uint32_t closing; /* API calls get -EBADF */
	uint32_t paused;  /* test seam: nonzero (pause_gen) while workers stop dequeuing */
	uint32_t pause_gen; /* the test thread's pause count (tkv__test_pause) */
};

static inline tkv__worker *tkv__worker_of(const struct tkv_runtime *rt, uint32_t layer)
{
	return &rt->workers[layer % rt->n_workers];
}

/* A thief never takes the next TKV__STEAL_LEAVE descriptors of a queue
 * (worker.c, Stealing): they are its owner's. */
#define TKV__STEAL_LEAVE 32u

/* Worker thread lifecycle (worker.c). */
int tkv__workers_start(struct tkv_runtime *rt, const int *cpus, int n_cpus);
void tkv__workers_stop(struct tkv_runtime *rt);
/* Frees rings and arenas after stop and after every block was freed. */
void tkv__workers_free(struct tkv_runtime *rt);
/* Wakes the worker if it sleeps; called after each successful push. */
void tkv__worker_kick(tkv__worker *w);

/* A spinning slot for a ticket waiter: true when fewer than
 * rt->wait_spin_cpus waiters spin now (then tkv__spin_release after the
 * spin); false when every such CPU has one (completion.c, "Spinning"). */
bool tkv__spin_claim(struct tkv_runtime *rt);
void tkv__spin_release(struct tkv_runtime *rt);

/* A ticket's waiter: copies its store (queued at low position bits
 * queue_pos - 1 of its layer's worker; 0: unknown) itself if it is still
 * queued and unclaimed, and completes it if every earlier batch of the
 * layer has completed. True when it completed it (copy_ahead.c). */
bool tkv__waiter_copy(struct tkv_runtime *rt, tkv__seq *s, uint32_t layer, uint64_t end,
		      uint32_t queue_pos);
/* The owner, when the front of its queue is a slot another thread copies:
 * claims, copies and (when its layer allows) completes up to a group of
 * the slots behind it. Returns how many it copied (copy_ahead.c). */
uint32_t tkv__owner_copy_ahead(tkv__worker *w);
/* The owner, before it copies or completes d: waits while a ticket's
 * waiter completes an earlier batch of d's layer it took (copy_ahead.c). */
void tkv__wait_taken(const tkv__desc *d);
/* Whether tkv__wait_taken would wait now. */
bool tkv__taken_pending(const tkv__desc *d);

/* Waits until a layer's done_pos reaches end (completion.c). */
void tkv__wait_done(struct tkv_runtime *rt, tkv__layer *l, uint64_t end);
/* The layer's completer (its owner worker, or a waiter that copied its own
 * batch: one at a time, in order): publishes done_pos = end and wakes the
 * waiters it satisfies. */
void tkv__layer_complete(tkv__layer *l, uint64_t end);

/* Waits for every layer of a sequence to finish what it accepted, and for
 * its workers to be done touching it (completion.c). */
void tkv__seq_drain(struct tkv_runtime *rt, tkv__seq *s);

/* Hot capacity for `blocks` (store.c). With a cold tier a full hot tier is
 * waited out while the evictor can free space (-EAGAIN instead with
 * TKV_STORE_NONBLOCK); unreferenced cache blocks are dropped before
 * -ENOSPC, which comes only when nothing can make room. */
int tkv__reserve_hot(struct tkv_runtime *rt, uint64_t blocks, unsigned flags);

/* Blocks covering `tokens` (store.c). */
uint64_t tkv__blocks_for(uint64_t tokens, uint32_t block_tokens);

/* A producer's longest sleep on a full queue by default (store.c). */
#define TKV__ROOM_NAP_NS 1000000ull

/* Internal open options: the bench's mutex-queue baseline and the tests'
 * cold-tier fault seam and full-queue nap. */
/* How copies into hot blocks store (runtime.c, choose_hot_copy). */
typedef enum tkv__hot_copy_mode {
	TKV__HOT_COPY_AUTO = 0, /* streaming when the hot tier exceeds the LLC */
	TKV__HOT_COPY_STREAM,   /* always streaming: tests reach that path with a small hot tier */
	TKV__HOT_COPY_REGULAR,  /* always regular stores */
} tkv__hot_copy_mode;

typedef struct tkv__open_opts {
	tkv__queue_kind queue;
	tkv__hot_copy_mode hot_copy;
	const struct tkv__cold_io *cold_io; /* NULL: real I/O */
	bool cold_force_pwrite;
	/* Longest sleep of a producer on a full queue (store.c); 0: 1 ms.
	 * Tests make it long so that only the worker's wake-up ends it. */
	uint64_t room_nap_ns;
	/* The evictor's policy operations instead of cfg.policy's; NULL in
	 * every runtime but tests' (tkv__tier_env.policy_ops). */
	const struct tkv__policy_ops *evict_policy;
} tkv__open_opts;
int tkv__open_ex(const tkv_config *cfg, const tkv__open_opts *opts, struct tkv_runtime **out);

/* The mutex queue (queue_mutex.c): the same contract as the ring's push,
 * pop, steal and mark_copied (desc_ring.h), behind one mutex. */
int tkv__mq_init(tkv__worker *w);
void tkv__mq_fini(tkv__worker *w);
bool tkv__mq_push(tkv__worker *w, const tkv__desc *d, uint64_t *at);
/* The owner takes up to max descriptors in order under one lock, stopping
 * at one a thief is copying; got[i]: TAKEN (the owner's to copy), COPIED
 * (by a thief) or DONE (by its waiter, completed too). Returns how many. */
uint32_t tkv__mq_pop_batch(tkv__worker *w, tkv__desc *out, tkv__dring_got *got, uint32_t max);
/* A thief claims the queued, unclaimed descriptor at position pos, if it
 * still is one (under the lock); mark_copied when its copy is done. */
bool tkv__mq_steal(tkv__worker *w, uint64_t pos, tkv__desc *out);
void tkv__mq_mark_copied(tkv__worker *w, uint64_t pos);
/* A thief gives it back uncopied: only the owner takes it then. */
void tkv__mq_return(tkv__worker *w, uint64_t pos);
/* A waiter copied and completed it: the owner only takes it out. */
void tkv__mq_mark_done(tkv__worker *w, uint64_t pos);
/* A ticket's waiter claims the descriptor at position lo (the queue's
 * positions are 32 bits) if it is queued, at least `leave` behind the
 * front, and unclaimed: one lock acquisition, as the ring's one CAS. */
bool tkv__mq_claim_queued(tkv__worker *w, uint32_t lo, uint32_t leave, tkv__desc *out);
/* Positions [head, tail) of the queue now (a snapshot). */
void tkv__mq_span(tkv__worker *w, uint64_t *head, uint64_t *tail);
/* Nothing for the owner to take now (empty, or its next one is a thief's). */
bool tkv__mq_idle(tkv__worker *w);
/* Nothing queued at all (the owner's stop check). */
bool tkv__mq_empty(tkv__worker *w);
/* Its next one is queued and a thief's or a waiter's (racy, like mq_idle). */
bool tkv__mq_front_claimed(tkv__worker *w);

/* Test seam: while paused, workers leave their rings alone, so tests can
 * fill a ring deterministically. Pausing returns once every worker has
 * seen the pause at the top of its loop: nothing pushed after it is taken
 * until the pause ends. One test thread at a time; not for production. */
void tkv__test_pause(struct tkv_runtime *rt, bool paused);
/* Test seam: a held worker takes nothing from its queue and steals
 * nothing, so others' stealing can be watched; set it while paused (the
 * worker sees it before the pause ends). Release before tkv_close. */
void tkv__test_hold(struct tkv_runtime *rt, uint32_t worker, bool held);

/* Whether a queued or claimed batch is not yet completed, a batch a waiter
 * took included: the evictor's "copies pending" (false for the mutex
 * queue, which keeps no count). */
bool tkv__copies_pending(struct tkv_runtime *rt);

/* An API call's runtime check: -EINVAL for NULL, -EBADF while closing. */
int tkv__rt_check(const struct tkv_runtime *rt);

/* -EINVAL (with a message naming `what`) for the id the runtime reserves:
 * TKV__CACHE_SEQ (UINT64_MAX), the name of cached and shared blocks' records. */
int tkv__seq_id_check(uint64_t seq_id, const char *what);

/* Makes a sequence visible (runtime.c): inserts it into the table, or
 * frees it and fails (-EEXIST, -ENOMEM) with a message. */
int tkv__seq_insert(struct tkv_runtime *rt, tkv__seq *s);
/* tkv__seq_insert for a sequence that starts empty whatever a previous run
 * left under its id: removes those records once the id is its
 * (tkv__evictor_prior_list). -EEXIST, -ENOMEM. */
int tkv__seq_insert_fresh(struct tkv_runtime *rt, tkv__seq *s, const char *what);
/* -EEXIST (with a message naming `what`) if id is open: checked before an
 * open does anything an open sequence of that id could notice (adopting
 * or copying blocks under its name). The insert still decides a race. */
int tkv__seq_not_open(struct tkv_runtime *rt, uint64_t id, const char *what);
/* Frees a sequence that never became visible, dropping its units. */
void tkv__seq_discard(struct tkv_runtime *rt, tkv__seq *s);

#endif
