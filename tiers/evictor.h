/*
 * evictor.h - moving KV between the hot tier and the cold tier: the evictor
 * thread (hot -> cold), promotion (cold -> hot, on demand and by prefetch),
 * and the block pinning every reader goes through.
 *
 * Eviction. When hot usage passes the high watermark (or a store is waiting
 * for space) the evictor wakes, asks the policy for victims among complete
 * units (one block position of a sequence, all layers) that no reader pins,
 * gathers each victim's layer blocks into a 4 KiB-aligned record buffer and
 * submits it to the cold tier (several in flight). Only when the cold tier
 * reports the record durable does it free the hot blocks (the FREEING
 * handshake of tiers/block_store.h), down to the low watermark. A failed write
 * (ENOSPC, EIO, short) leaves the unit hot and back in the policy; the
 * evictor backs off and retries later. A unit whose record is already
 * durable (it was promoted back and not changed: KV is append-only) is freed
 * without a new write.
 *
 * Promotion. A reader that finds a layer block without memory claims it
 * (block.loading), reserves one hot block, reads that layer's slice of the
 * record (its own CRC: layer L never waits for layer L+1), and publishes the
 * memory; concurrent readers of the same block wait for the claimant. A CRC
 * failure is returned as -TKV_ECORRUPT (the cold tier drops the record) and
 * nothing is published. tkv_prefetch does the same asynchronously, layer by
 * layer: the prefetch thread keeps up to the cold tier's read_depth reads at
 * the device (submitted in batches, completions reaped many at a time) and
 * puts each completed read on a verify list; the CRC check and the publish
 * are done by whichever thread takes the read from that list: the prefetch
 * thread between submissions, or a reader waiting in tkv__block_pin for a
 * block that is being loaded, which verifies instead of sleeping. So on a
 * fast disk the checksums run on every waiting thread, not one; a block is
 * published only after its CRC passed, whoever checked it. A reader takes
 * one read at a time and re-checks its own block after each, so helping
 * delays it by at most one checksum (~20 us for a 128 KiB block here).
 *
 * Environment. The evictor opens from a tkv__tier_env that its owner (the
 * runtime) fills: the config and geometry, the hot tier, the copy kernel for
 * gathering records, the tracer, and two callbacks for what only the owner
 * knows (are stores still queued for copying; find an open sequence by id).
 * It never sees the runtime object, and it has its own stop flag.
 *
 * Threads and locks: the evictor thread alone writes records and frees
 * evicted memory; the prefetch thread alone submits and reaps asynchronous
 * reads; readers promote synchronously on their own thread, and verify and
 * publish reaped prefetch reads while they wait. The policy, the prefetch
 * queue and the verify list have their own mutexes, never held across I/O
 * or a checksum and never while taking another lock. The evictor holds a unit reference from the
 * moment it picks a unit until that unit's write completes, so the unit
 * outlives the sequences that held it (tiers/units.h); tkv_seq_close
 * cancels the closed id's writes in flight (tkv__evictor_forget_seq).
 */
#ifndef TKV_TIERS_EVICTOR_H
#define TKV_TIERS_EVICTOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/trace.h"
#include "base/wake.h"
#include "kernels/kernels.h"
#include "tiers/block_store.h"
#include "tiers/cold.h"
#include "tiers/geometry.h"
#include "tiers/hot.h"
#include "tiers/policy.h"

/* What the evictor and promotion need from their owner; copied at open.
 * Every pointer must stay valid until tkv__evictor_close returns. */
typedef struct tkv__tier_env {
	const tkv_config *cfg;      /* validated: geometry, cold tier, watermarks,
				     * policy, durability */
	const tkv__geometry *geo;
	tkv__hot *hot;
	tkv__copy_fn copy;          /* gathers hot blocks into record buffers */
	tkv__tracer *tracer;        /* NULL when tracing is off */
	const struct tkv__tiers *tiers; /* to drop unit references (units.h) */
	const tkv__cold_io *cold_io; /* NULL: real I/O (tests inject faults) */
	bool cold_force_pwrite;
	/* The eviction policy's operations; NULL: cfg->policy's. Tests wrap
	 * a real policy's to watch what it is handed (tests/evictor.c). */
	const tkv__policy_ops *policy_ops;
	/* Stores accepted but not yet copied hold hot reservations for units
	 * that are not complete yet: while any are queued a full hot tier is
	 * not final. Any thread. */
	bool (*copies_pending)(void *ctx);
	/* The open sequence `id` with a reference (release: tkv__seq_put), or
	 * NULL. The prefetch thread resolves queued requests with it. */
	tkv__seq *(*seq_get)(void *ctx, uint64_t id);
	void *ctx;
} tkv__tier_env;

typedef struct tkv__prefetch_req {
	uint64_t seq_id, first_block, n_blocks;
} tkv__prefetch_req;

typedef struct tkv__evictor {
	tkv__tier_env env;
	tkv__cold *cold;
	const tkv__policy_ops *pol_ops;
	tkv__policy *pol;
	uint64_t high_blocks, low_blocks; /* watermarks in hot blocks */
	/* the largest reservation a waiting store or promotion could not
	 * make (atomic; 0: none): a pass runs for it below the high mark */
	uint64_t space_wanted;

	pthread_t thread;
	bool started;
	uint32_t stop;      /* close: the threads exit (atomic) */
	tkv__wake wake;     /* the evictor thread sleeps here */
	uint32_t asks;      /* bumped by whoever asks for a pass (atomic) */
	uint32_t asks_seen; /* evictor thread only */
	uint32_t stuck;     /* 1: nothing evictable or cold tier refusing */
	uint32_t stuck_settled; /* stuck, in a pass begun with no copy pending */
	uint32_t passes;    /* eviction passes finished (atomic) */
	tkv__trace_buf *tb;

	/* readers waiting for another thread's promotion sleep here;
	 * signaled at each publish or abandoned claim */
	tkv__wake loaded __attribute__((aligned(64)));

	/* prefetch thread and its queue */
	pthread_t pf_thread;
	bool pf_started, pf_stop;
	pthread_mutex_t pf_lock; /* the queue and pf_stop */
	tkv__wake pf_wake;       /* the idle prefetch thread sleeps here */
	tkv__prefetch_req *pf_q;
	uint32_t pf_head, pf_tail, pf_cap;
	uint32_t pf_inflight; /* reads submitted, not reaped (prefetch thread only) */
	tkv__trace_buf *pf_tb;
	/* Reads reaped and not verified yet, oldest first: the prefetch
	 * thread and readers waiting in tkv__block_pin take them from here
	 * (promote.c). pf_ver_lock guards the list; it is a leaf lock, never
	 * held across a verification or while taking another lock. */
	pthread_mutex_t pf_ver_lock;
	struct tkv__pf_job *pf_ver_head, *pf_ver_tail;
	uint32_t pf_ver_n; /* jobs on the list (atomic: peeked without the lock) */

	/* header or staging buffers kept for reuse (evictor thread only;
	 * evictor.c, "Buffers") */
#define TKV__EVICT_BUFS 32
	void *bufs[TKV__EVICT_BUFS];
	uint32_t n_bufs;
	bool direct;  /* the geometry's records can be written from the blocks */
	void **layers; /* n_layers: the unit being submitted (evictor thread) */
	unsigned depth; /* record writes in flight at most */
	bool keeping;   /* close: writing cache blocks out, never dropping */

	/* counters (atomic) */
	uint64_t evicted_blocks __attribute__((aligned(64)));
	uint64_t evicted_bytes, promoted_blocks, promoted_bytes, promote_ns;
	uint64_t unit_nomem; /* units the policy could not take (ENOMEM) */
	uint64_t records_released; /* cache records given up on promotion */
	uint64_t space_waits, space_wait_ns; /* reservations that waited, and how long */
	uint64_t pf_helped; /* prefetch reads verified by waiting readers */
	uint64_t staged_records; /* records copied into a staging buffer first */
	/* Tests only (atomic): while set, the prefetch thread leaves every
	 * reaped read to waiting readers, so that readers' verifying can be
	 * tested without racing a thread that is usually faster. */
	uint32_t pf_hold_verify;
	/* Tests only: called by tkv__evictor_release_record between its first
	 * look at a unit and its claim, where the evictor may free the unit's
	 * layers (tests/cache.c). NULL otherwise. */
	void (*release_race)(tkv__unit *u);
	uint32_t inflight;
} tkv__evictor;

/* Opens the cold tier named in env->cfg (recovering its index), the policy,
 * and starts the evictor and prefetch threads. 0 or negative errno with a
 * message; on failure nothing is left running and *out is NULL. */
int tkv__evictor_open(const tkv__tier_env *env, tkv__evictor **out);
/* Stops the threads (in-flight writes complete or are dropped: their units
 * stay hot) and closes the cold tier. NULL is a no-op. */
void tkv__evictor_close(tkv__evictor *ev);

/* Unit u is complete (every layer's block full): it becomes evictable. */
void tkv__evictor_unit_full(tkv__evictor *ev, tkv__unit *u);

/* Puts u in the eviction policy unless it is there or going there
 * (in_policy claimed first; evictor.c says why). Any thread. */
void tkv__evictor_policy_insert(tkv__evictor *ev, tkv__unit *u);

/* A unit no one references is being freed: out of the policy, and its
 * record removed. */
void tkv__evictor_forget(tkv__evictor *ev, tkv__unit *u);
/* Removes u's record only, cancelling a write of it in flight (the cache
 * renames a unit it publishes; truncate drops units whose names a new
 * unit may take). */
void tkv__evictor_forget_record(tkv__evictor *ev, tkv__unit *u);
/* Removes every record named after seq_id, cancelling writes in flight: at
 * close, so no unit of a closed sequence still being written can leave a
 * record under a name its next incarnation will use. */
void tkv__evictor_forget_seq(tkv__evictor *ev, uint64_t seq_id);
/* Producer: after reserving hot blocks, wake the evictor past the high
 * watermark. Cheap when below it. */
void tkv__evictor_note_usage(tkv__evictor *ev, uint64_t used_blocks);
/* Producer whose reservation of `blocks` failed: wait for the evictor to
 * free that much. w starts as {.blocks = n} and is passed to every retry of
 * one store. 0 when it is worth retrying, -ENOSPC when the evictor cannot
 * free any more (nothing evictable, or the cold tier refuses writes) or
 * after ~2 s. The evictor makes room for `blocks` even below the high
 * watermark: a batch larger than the headroom would otherwise wait for
 * nothing (the hot tier under the mark, yet too full for the batch). */
typedef struct tkv__space_wait {
	uint64_t blocks;
	uint64_t t0;
	uint32_t pass0;
} tkv__space_wait;
int tkv__evictor_wait_space(tkv__evictor *ev, tkv__space_wait *w);
/* A reservation of `blocks` that did not fit and will not wait (a
 * non-blocking store, a fetch): the evictor makes that room in the
 * background, even below the high watermark. */
void tkv__evictor_want(tkv__evictor *ev, uint64_t blocks);
/* After the last tkv__evictor_wait_space of a wait (room found or given up),
 * before w is reset: counts the wait, if there was one, in the stats. */
void tkv__evictor_wait_end(tkv__evictor *ev, const tkv__space_wait *w);

/* Reader: pins layer block b of s and returns its memory, promoting it from
 * the cold tier if needed (ev is NULL without a cold tier). The caller holds
 * a reference on s and has waited for done_pos to cover the block. Release
 * with tkv__block_unpin. */
int tkv__block_pin(tkv__evictor *ev, tkv__seq *s, uint32_t layer, uint64_t b,
		   const unsigned char **mem);
void tkv__block_unpin(tkv__seq *s, uint32_t layer, uint64_t b);

/* Sequence open: make the cold records of a re-opened id readable (tokens
 * of the contiguous prefix of records; records past a gap are deleted).
 * At close a sequence's units just lose the table's reference
 * (tiers/units.h): the last reference of each removes its record. */
int tkv__evictor_seq_open(tkv__evictor *ev, tkv__seq *s);

/* A sequence tkv__evictor_seq_open filled that will not be inserted (its id
 * was open after all): its units are let go without removing the records,
 * which are not theirs to remove. */
void tkv__evictor_seq_disown(tkv__evictor *ev, tkv__seq *s);

/* A sequence that starts empty under an id (tkv_seq_open_tokens, a fork's
 * new id) must not leave a previous run's records under it: they hold
 * another history, which a later tkv_seq_open would re-attach instead of
 * or spliced with this one's. Listed before the sequence is inserted
 * (-ENOMEM, changing nothing), removed once it is (its id is then taken,
 * so no re-open can adopt them meanwhile), or freed if the insert fails
 * (the id was open: the records are that sequence's). */
typedef struct tkv__prior_records {
	tkv__cold_block_info *info; /* block order */
	size_t n;
} tkv__prior_records;
int tkv__evictor_prior_list(tkv__evictor *ev, uint64_t id, tkv__prior_records *p,
			    const char *what);
void tkv__evictor_prior_drop(tkv__evictor *ev, uint64_t id, tkv__prior_records *p);
void tkv__evictor_prior_free(tkv__prior_records *p);

/* The last holder of published unit u is letting go (tiers/cache.c): if
 * every layer is in RAM, its cold record goes (tkv__cold_drop_if), so the
 * block is in one tier, not two; the evictor writes a new one when it
 * picks the unit. The caller still holds its reference. Any thread. */
void tkv__evictor_release_record(tkv__evictor *ev, tkv__unit *u);

/* Fills the cold-tier fields of *st. */
void tkv__evictor_stats(tkv__evictor *ev, tkv_stats *st);

/* The prefetch thread (promote.c). */
int tkv__prefetch_start(tkv__evictor *ev);
void tkv__prefetch_stop(tkv__evictor *ev);
/* Queues the promotion of blocks [first, first + n) of sequence seq_id,
 * layer by layer. 0, or -EAGAIN with a message when the queue is full. */
int tkv__prefetch_enqueue(tkv__evictor *ev, uint64_t seq_id, uint64_t first, uint64_t n);

#endif
