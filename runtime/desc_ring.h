/*
 * desc_ring.h - the worker's descriptor ring: bounded, multi-producer,
 * single-consumer, descriptors stored by value, and no producer ever waits
 * for another one.
 *
 * Why not ck_ring's MPSC enqueue (used until issue 11): after its CAS on
 * p_head a ck producer copies its entry, then spins until p_tail reaches
 * its claimed position, i.e. until every earlier producer has committed.
 * With more storing threads than cores a producer preempted between claim
 * and commit leaves every later producer of that ring spinning for whole
 * time slices, and those spinners take the CPU the preempted one needs:
 * `tierkv-bench producers` measured 16 engine threads on 2 cores at 0.005
 * of the 1-thread throughput in one run in three (docs/MEASUREMENTS.md).
 *
 * Here each slot carries its own `ready` word: a producer claims a position
 * with one CAS on `head`, copies its descriptor, and publishes the slot by
 * storing ready = pos + 1. It never looks at other producers' slots. The
 * consumer takes positions in claim order and treats a claimed but
 * unpublished slot like an empty ring: it goes idle (spin, then sleep on
 * its event count), and the late producer's kick after publishing wakes it.
 * A preempted producer so delays only its own worker's later batches, and
 * burns no CPU while it waits to run. Claim order is acceptance order, so a
 * layer's batches still complete in the order they were accepted
 * (runtime.h says why that matters).
 *
 * Capacity is slots - 1, as with ck_ring (the documented `ring_slots`):
 * a position is claimed only while head - tail < slots - 1.
 *
 * Memory ordering (names for grep):
 *   DR1 producer: descriptor stores, then release store of slot.ready
 *       (tkv__dring_push_mp) / DR2 consumer: load of slot.ready, acquire
 *       fence, then descriptor loads (tkv__dring_pop_sc). DR1 -> DR2: the
 *       consumer reads the whole descriptor the producer wrote.
 *   DR3 consumer: descriptor loads, then release store of tail / DR4
 *       producer: load of tail, acquire fence before its CAS and its
 *       descriptor stores. DR3 -> DR4: a producer reuses a slot only after
 *       the consumer has finished reading it.
 *
 * Stealing (runtime with more than one worker; worker.c says why). Another
 * worker may copy a published descriptor of this ring, but only its owner
 * takes it out and completes it, so completions stay in claim order. Each
 * slot has a `claim` word, whose values for position pos are above any a
 * slot held for an earlier lap: RETURNED(pos) a thief gave it back
 * uncopied; OWNED(pos) the owner took it; STOLEN(pos) a thief is copying
 * it; COPIED(pos) the thief's copy is done. The owner and a thief race
 * with one CAS from an unclaimed value; the owner waits (treats the ring
 * as empty) at a STOLEN slot, takes a COPIED one as already copied and a
 * RETURNED one as its own to copy (a thief never takes a RETURNED one
 * again). A thief reads the descriptor only after its CAS won, so the slot
 * cannot be reused under it: the tail passes pos only after the owner saw
 * COPIED or RETURNED.
 *   DR5 thief: its copy's stores (and their fence), then release store of
 *       COPIED / DR6 owner: load of COPIED, acquire fence, then completion.
 *       DR5 -> DR6: the rows are in the blocks before done_pos says so.
 *   DR7 the thief's reads of the slot come before DR5 (or the release store
 *       of RETURNED), and the owner moves the tail (DR3) only after DR6: a
 *       producer reuses a stolen slot only after the thief has read it.
 *
 * A ticket's waiter (copy_ahead.c) steals like a thief, but only the one
 * position its store was accepted at, and may then complete the batch
 * itself: DONE(pos) tells the owner that its waiter completes it (or has),
 * and the owner only takes such a slot out (TKV__DRING_DONE), never
 * touching its descriptor's sequence again (the waiter's completion may
 * have let the sequence close).
 *   DR8 waiter: either its completion (done_pos, retired_pos), or, taking
 *       the batch whole, the layer's taken_end; then release store of
 *       DONE / the owner's load of DONE, acquire fence, then the tail
 *       (DR3): the slot is reused only after the waiter has read it, and
 *       the owner sees taken_end before any later batch of the layer.
 *
 * Thread safety: push from any number of threads; pop, empty check and
 * init from the one consumer (init before any push); steal, mark_copied,
 * mark_done and return from any other thread.
 */
#ifndef TKV_RUNTIME_DESC_RING_H
#define TKV_RUNTIME_DESC_RING_H

#include <stdbool.h>
#include <stdint.h>

#include <ck_pr.h>

/* What a producer pushes: a description of the batch, never its data. */
struct tkv__seq;
typedef struct tkv__desc {
	struct tkv__seq *seq;
	const unsigned char *k;
	const unsigned char *v;
	uint64_t pos;
	uint32_t n_tokens;
	uint32_t layer;
} tkv__desc;

/* One slot per cache line: neighbouring producers publish without sharing
 * a line, and the consumer's read of one slot pulls in nothing else. */
typedef struct tkv__dring_slot {
	uint64_t ready; /* pos + 1 once the descriptor of pos is in `d` */
	uint64_t claim; /* with stealing: RETURNED/OWNED/STOLEN/COPIED of pos, or older */
	tkv__desc d;
} __attribute__((aligned(64))) tkv__dring_slot;

/* Claim values of position pos; anything below RETURNED(pos) is unclaimed:
 * every value of an earlier lap is (at most DONE(pos - slots)), and so is
 * a zeroed slot. RETURNED: a thief gave it back uncopied (its blocks could
 * not all be had); only the owner takes it, and copies it itself. DONE: a
 * ticket's waiter copied and completed it; the owner only takes it out. */
#define TKV__DRING_RETURNED(pos) (8 * (uint64_t)(pos) + 1)
#define TKV__DRING_OWNED(pos) (8 * (uint64_t)(pos) + 2)
#define TKV__DRING_STOLEN(pos) (8 * (uint64_t)(pos) + 3)
#define TKV__DRING_COPIED(pos) (8 * (uint64_t)(pos) + 4)
#define TKV__DRING_DONE(pos) (8 * (uint64_t)(pos) + 5)

/* What the owner's pop found (tkv__dring_pop_shared). */
typedef enum tkv__dring_got {
	TKV__DRING_NONE = 0, /* nothing to take now */
	TKV__DRING_TAKEN,    /* a descriptor for the owner to copy */
	TKV__DRING_COPIED,   /* a descriptor another worker copied: complete it only */
	TKV__DRING_DONE,     /* a descriptor its waiter copied and completed: nothing to do */
} tkv__dring_got;

typedef struct tkv__dring {
	uint64_t head __attribute__((aligned(64))); /* next position to claim (producers) */
	uint64_t tail __attribute__((aligned(64))); /* next position to take (consumer) */
	tkv__dring_slot *slots;
	uint64_t mask;
} tkv__dring;

/* slots: a power of two >= 4, zeroed memory (ready 0: nothing published;
 * position 0 needs ready 1, so a zeroed slot never looks published). */
static inline void tkv__dring_init(tkv__dring *r, tkv__dring_slot *slots, uint32_t n)
{
	r->head = r->tail = 0;
	r->slots = slots;
	r->mask = n - 1;
}

/* Claims a position and publishes d in it (*at: the position); false when
 * the ring is full. */
static inline bool tkv__dring_push_mp_at(tkv__dring *r, const tkv__desc *d, uint64_t *at)
{
	uint64_t pos = ck_pr_load_64(&r->head);
	for (;;) {
		uint64_t tail = ck_pr_load_64(&r->tail);
		ck_pr_fence_acquire(); /* DR4: pairs with DR3 */
		if (pos - tail >= r->mask)
			return false; /* full: slots - 1 descriptors not yet taken */
		if (ck_pr_cas_64_value(&r->head, pos, pos + 1, &pos))
			break;
	}
	tkv__dring_slot *s = &r->slots[pos & r->mask];
	s->d = *d;
	ck_pr_fence_release(); /* DR1: the descriptor before ready */
	ck_pr_store_64(&s->ready, pos + 1);
	*at = pos;
	return true;
}

static inline bool tkv__dring_push_mp(tkv__dring *r, const tkv__desc *d)
{
	uint64_t at;
	return tkv__dring_push_mp_at(r, d, &at);
}

/* Takes the next descriptor in claim order; false when it is not published
 * yet (the ring is empty, or its producer has claimed and not yet written). */
static inline bool tkv__dring_pop_sc(tkv__dring *r, tkv__desc *out)
{
	uint64_t pos = ck_pr_load_64(&r->tail); /* only we write it; atomic for other readers */
	tkv__dring_slot *s = &r->slots[pos & r->mask];
	if (ck_pr_load_64(&s->ready) != pos + 1)
		return false;
	ck_pr_fence_acquire(); /* DR2: pairs with DR1 */
	*out = s->d;
	ck_pr_fence_release(); /* DR3: our reads of the slot before the tail moves */
	ck_pr_store_64(&r->tail, pos + 1);
	return true;
}

/* The owner's pop when other workers may steal: the next descriptor in
 * claim order, taken as the owner's to copy or as already copied. NONE
 * also at a slot a thief is still copying (its mark_copied wakes us). */
static inline tkv__dring_got tkv__dring_pop_shared(tkv__dring *r, tkv__desc *out)
{
	uint64_t pos = ck_pr_load_64(&r->tail);
	tkv__dring_slot *s = &r->slots[pos & r->mask];
	if (ck_pr_load_64(&s->ready) != pos + 1)
		return TKV__DRING_NONE;
	ck_pr_fence_acquire(); /* DR2 */
	uint64_t c = ck_pr_load_64(&s->claim);
	tkv__dring_got got = TKV__DRING_TAKEN;
	if (c < TKV__DRING_OWNED(pos) &&
	    ck_pr_cas_64_value(&s->claim, c, TKV__DRING_OWNED(pos), &c)) {
		ck_pr_fence_acquire(); /* DR7: a returning thief's reads first */
	} else {
		/* a thief's: only the thief moves STOLEN on */
		if (c != TKV__DRING_COPIED(pos) && c != TKV__DRING_DONE(pos))
			return TKV__DRING_NONE;
		ck_pr_fence_acquire(); /* DR6: pairs with DR5 (DR8 for DONE) */
		got = c == TKV__DRING_DONE(pos) ? TKV__DRING_DONE : TKV__DRING_COPIED;
	}
	*out = s->d;
	ck_pr_fence_release(); /* DR3 */
	ck_pr_store_64(&r->tail, pos + 1);
	return got;
}

/* A thief: claims position pos for its own copy if it is published and
 * neither the owner nor another thief has it; then *out is its descriptor.
 * pos may be stale (taken, even reused since): that is a refusal. */
static inline bool tkv__dring_steal(tkv__dring *r, uint64_t pos, tkv__desc *out)
{
	tkv__dring_slot *s = &r->slots[pos & r->mask];
	if (ck_pr_load_64(&s->ready) != pos + 1)
		return false;
	ck_pr_fence_acquire(); /* DR2 */
	uint64_t c = ck_pr_load_64(&s->claim);
	if (c >= TKV__DRING_RETURNED(pos) ||
	    !ck_pr_cas_64(&s->claim, c, TKV__DRING_STOLEN(pos)))
		return false;
	*out = s->d; /* the CAS won: the tail is at or below pos (DR7) */
	return true;
}

/* A thief: its copy of stolen position pos is done (after its fence). */
static inline void tkv__dring_mark_copied(tkv__dring *r, uint64_t pos)
{
	ck_pr_fence_release(); /* DR5, DR7 */
	ck_pr_store_64(&r->slots[pos & r->mask].claim, TKV__DRING_COPIED(pos));
}

/* A waiter: it copied and completed stolen position pos (DR8). */
static inline void tkv__dring_mark_done(tkv__dring *r, uint64_t pos)
{
	ck_pr_fence_release(); /* DR8 */
	ck_pr_store_64(&r->slots[pos & r->mask].claim, TKV__DRING_DONE(pos));
}

/* A thief: gives stolen position pos back uncopied, for its owner to copy
 * (and to meet whatever failure stopped the thief, in order). */
static inline void tkv__dring_return(tkv__dring *r, uint64_t pos)
{
	ck_pr_fence_release(); /* DR7 */
	ck_pr_store_64(&r->slots[pos & r->mask].claim, TKV__DRING_RETURNED(pos));
}

/* Any thread: the next position to take (a snapshot). */
static inline uint64_t tkv__dring_tail(const tkv__dring *r)
{
	return ck_pr_load_64((uint64_t *)&r->tail);
}

/* Consumer: whether pop would find nothing now. */
static inline bool tkv__dring_idle(const tkv__dring *r)
{
	uint64_t pos = ck_pr_load_64((uint64_t *)&r->tail);
	const tkv__dring_slot *s = &r->slots[pos & r->mask];
	if (ck_pr_load_64((uint64_t *)&s->ready) != pos + 1)
		return true;
	return ck_pr_load_64((uint64_t *)&s->claim) == TKV__DRING_STOLEN(pos);
}

/* Consumer: whether the next position is published and another thread
 * has claimed it (a thief or a waiter copying it). */
static inline bool tkv__dring_front_claimed(const tkv__dring *r)
{
	uint64_t pos = ck_pr_load_64((uint64_t *)&r->tail);
	const tkv__dring_slot *s = &r->slots[pos & r->mask];
	return ck_pr_load_64((uint64_t *)&s->ready) == pos + 1 &&
	       ck_pr_load_64((uint64_t *)&s->claim) == TKV__DRING_STOLEN(pos);
}

/* Positions claimed so far (any thread): every claimed descriptor is
 * published soon and then copied, so claimed - copied counts the copies
 * still to come. */
static inline uint64_t tkv__dring_claimed(const tkv__dring *r)
{
	return ck_pr_load_64((uint64_t *)&r->head);
}

/* Descriptors claimed and not yet taken (any thread; a snapshot). */
static inline uint64_t tkv__dring_size(const tkv__dring *r)
{
	return tkv__dring_claimed(r) - ck_pr_load_64((uint64_t *)&r->tail);
}

/* The full position whose low 32 bits are lo, if it is still queued (at or
 * after the tail, before the head); false otherwise. Tickets carry 32 bits
 * of their store's position: a queue never holds 2^32 descriptors, so
 * those bits name one queued position at most. */
static inline bool tkv__dring_queued_pos(const tkv__dring *r, uint32_t lo, uint64_t *pos)
{
	uint64_t tail = tkv__dring_tail(r);
	uint64_t p = tail + (uint32_t)(lo - (uint32_t)tail);
	if (p >= ck_pr_load_64((uint64_t *)&r->head))
		return false;
	*pos = p;
	return true;
}

#endif
