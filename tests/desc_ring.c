/*
 * desc_ring.c - tests of the worker's descriptor ring (runtime/desc_ring.h):
 * capacity, order, and many producers at once, more of them than cores.
 *
 * What they pin down: the ring holds slots - 1 descriptors (the documented
 * `ring_slots` capacity); one producer's descriptors come out in its push
 * order and every one exactly once, with the fields the producer wrote
 * (DR1/DR2; under ThreadSanitizer the descriptor is plain memory, so a
 * missing release/acquire is reported); a producer reuses a slot only after
 * the consumer has read it (DR3/DR4: a lost or torn descriptor fails the
 * check). With 8 producers on a 2-core machine a producer is preempted
 * between its claim and its publication again and again; the test finishing
 * at all is the point (with ck_ring's MPSC enqueue, the one this ring
 * replaced, such a test took minutes under TSan: tests/ck_ring.c header).
 *
 * Environment: TKV_DRING_ITEMS sets the items per producer (default 20000).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/desc_ring.h"

typedef struct dr_test {
	tkv__dring ring;
	uint64_t items;
	uint32_t producers;
	uint32_t go;
} dr_test;

typedef struct dr_producer {
	dr_test *t;
	uint32_t id;
	pthread_t th;
} dr_producer;

/* A descriptor that encodes (producer, index) in every field. */
static tkv__desc make(uint32_t id, uint64_t i)
{
	return (tkv__desc){(void *)(uintptr_t)(i * 7 + 1), (const unsigned char *)(uintptr_t)id,
			   (const unsigned char *)(uintptr_t)(i ^ 0x5a5a), i, id, (uint32_t)i * 3};
}

static bool check(const tkv__desc *d, uint32_t *id, uint64_t *i)
{
	*id = d->n_tokens;
	*i = d->pos;
	tkv__desc want = make(*id, *i);
	return !memcmp(d, &want, sizeof(want));
}

static void *producer_main(void *arg)
{
	dr_producer *p = arg;
	while (!ck_pr_load_32(&p->t->go))
		sched_yield();
	for (uint64_t i = 0; i < p->t->items; i++) {
		tkv__desc d = make(p->id, i);
		while (!tkv__dring_push_mp(&p->t->ring, &d))
			sched_yield(); /* full: let the consumer run */
	}
	return NULL;
}

static tkv__dring_slot *new_slots(uint32_t n)
{
	tkv__dring_slot *s = aligned_alloc(64, n * sizeof(*s));
	cr_assert(s);
	memset(s, 0, n * sizeof(*s));
	return s;
}

static uint64_t items_from_env(void)
{
	const char *e = getenv("TKV_DRING_ITEMS");
	return e ? strtoull(e, NULL, 10) : 20000;
}

static void run_producers(uint32_t n_producers, uint32_t slots)
{
	dr_test t = {.items = items_from_env(), .producers = n_producers};
	tkv__dring_slot *s = new_slots(slots);
	tkv__dring_init(&t.ring, s, slots);
	dr_producer *p = calloc(n_producers, sizeof(*p));
	uint64_t *next = calloc(n_producers, sizeof(*next));
	for (uint32_t i = 0; i < n_producers; i++) {
		p[i] = (dr_producer){&t, i, 0};
		cr_assert_eq(pthread_create(&p[i].th, NULL, producer_main, &p[i]), 0);
	}
	ck_pr_store_32(&t.go, 1);
	uint64_t total = t.items * n_producers;
	for (uint64_t got = 0; got < total;) {
		tkv__desc d;
		if (!tkv__dring_pop_sc(&t.ring, &d)) {
			sched_yield(); /* empty, or a claimed slot not yet published */
			continue;
		}
		uint32_t id;
		uint64_t i;
		cr_assert(check(&d, &id, &i), "descriptor %llu fields torn",
			  (unsigned long long)got);
		cr_assert_lt(id, n_producers);
		cr_assert_eq(i, next[id], "producer %u: got %llu, expected %llu", id,
			     (unsigned long long)i, (unsigned long long)next[id]);
		next[id]++;
		got++;
	}
	for (uint32_t i = 0; i < n_producers; i++)
		pthread_join(p[i].th, NULL);
	cr_assert(tkv__dring_idle(&t.ring));
	cr_assert_eq(tkv__dring_size(&t.ring), 0);
	free(next);
	free(p);
	free(s);
}

Test(desc_ring, holds_slots_minus_one_in_order)
{
	tkv__dring r;
	tkv__dring_slot *s = new_slots(4);
	tkv__dring_init(&r, s, 4);
	cr_assert(tkv__dring_idle(&r));
	for (uint32_t lap = 0; lap < 3; lap++) {
		for (uint64_t i = 0; i < 3; i++) {
			tkv__desc d = make(lap, i);
			cr_assert(tkv__dring_push_mp(&r, &d), "lap %u push %llu", lap,
				  (unsigned long long)i);
		}
		tkv__desc d = make(9, 9);
		cr_assert_not(tkv__dring_push_mp(&r, &d), "a ring of 4 holds 3");
		cr_assert_eq(tkv__dring_size(&r), 3);
		for (uint64_t i = 0; i < 3; i++) {
			uint32_t id;
			uint64_t got;
			cr_assert(tkv__dring_pop_sc(&r, &d));
			cr_assert(check(&d, &id, &got));
			cr_assert_eq(id, lap);
			cr_assert_eq(got, i);
		}
		cr_assert_not(tkv__dring_pop_sc(&r, &d));
		cr_assert(tkv__dring_idle(&r));
	}
	cr_assert_eq(tkv__dring_claimed(&r), 9);
	free(s);
}

/* A claimed slot whose producer has not published yet stops the consumer
 * there, even if later slots are published: claim order is copy order. */
Test(desc_ring, unpublished_claim_holds_back_later_slots)
{
	tkv__dring r;
	tkv__dring_slot *s = new_slots(8);
	tkv__dring_init(&r, s, 8);
	tkv__desc d = make(0, 0);
	cr_assert(tkv__dring_push_mp(&r, &d));
	/* a producer that claimed position 1 and was preempted: */
	cr_assert(ck_pr_cas_64(&r.head, 1, 2));
	d = make(0, 2);
	cr_assert(tkv__dring_push_mp(&r, &d));
	cr_assert(tkv__dring_pop_sc(&r, &d));
	cr_assert_eq(d.pos, 0);
	cr_assert_not(tkv__dring_pop_sc(&r, &d), "position 1 is not published");
	cr_assert(tkv__dring_idle(&r));
	s[1].d = make(0, 1); /* ... and now it publishes */
	ck_pr_store_64(&s[1].ready, 2);
	for (uint64_t i = 1; i < 3; i++) {
		cr_assert(tkv__dring_pop_sc(&r, &d));
		cr_assert_eq(d.pos, i);
	}
	free(s);
}

Test(desc_ring, two_producers)
{
	run_producers(2, 64);
}

Test(desc_ring, eight_producers_more_than_cores)
{
	run_producers(8, 16);
}

/* Stealing (DR5-DR7): a thief claims a published slot the owner has not
 * taken, at most once; the owner stops at it until the thief marks it
 * copied, then takes it as copied, or until the thief gives it back, then
 * takes it as its own; a stale position (taken by the owner, or reused by
 * a later lap) is refused. Three laps of a 4-slot ring, so the claim words
 * of earlier laps are still in the slots; position 0 is stealable. */
Test(desc_ring, a_stolen_slot_waits_for_its_copy_and_comes_back_copied)
{
	tkv__dring r;
	tkv__dring_slot *s = new_slots(4);
	tkv__dring_init(&r, s, 4);
	for (uint32_t lap = 0; lap < 3; lap++) {
		uint64_t base = lap * 3;
		for (uint64_t i = 0; i < 3; i++) {
			tkv__desc d = make(lap, i);
			cr_assert(tkv__dring_push_mp(&r, &d));
		}
		tkv__desc d;
		uint32_t id;
		uint64_t i;
		if (lap)
			cr_assert_not(tkv__dring_steal(&r, base - 1, &d), "a reused slot's old position");
		cr_assert_not(tkv__dring_steal(&r, base + 3, &d), "not pushed yet");
		cr_assert(tkv__dring_steal(&r, base + 2, &d), "lap %u", lap);
		cr_assert(check(&d, &id, &i) && id == lap && i == 2);
		cr_assert_not(tkv__dring_steal(&r, base + 2, &d), "claimed twice");
		cr_assert_eq(tkv__dring_pop_shared(&r, &d), TKV__DRING_TAKEN);
		cr_assert(check(&d, &id, &i) && id == lap && i == 0);
		cr_assert_not(tkv__dring_steal(&r, base, &d), "the owner took it");
		cr_assert(tkv__dring_steal(&r, base + 1, &d), "lap %u", lap);
		cr_assert_eq(tkv__dring_pop_shared(&r, &d), TKV__DRING_NONE, "a thief copies it");
		cr_assert(tkv__dring_idle(&r));
		tkv__dring_mark_copied(&r, base + 1);
		cr_assert_not(tkv__dring_idle(&r));
		cr_assert_eq(tkv__dring_pop_shared(&r, &d), TKV__DRING_COPIED);
		cr_assert(check(&d, &id, &i) && id == lap && i == 1);
		cr_assert_eq(tkv__dring_pop_shared(&r, &d), TKV__DRING_NONE, "in claim order");
		tkv__dring_return(&r, base + 2); /* given back uncopied */
		cr_assert_not(tkv__dring_steal(&r, base + 2, &d), "stolen again once given back");
		cr_assert_not(tkv__dring_idle(&r));
		cr_assert_eq(tkv__dring_pop_shared(&r, &d), TKV__DRING_TAKEN);
		cr_assert(check(&d, &id, &i) && id == lap && i == 2);
		cr_assert_eq(tkv__dring_size(&r), 0);
	}
	free(s);
}

/* A fresh ring's first position is stealable: a zeroed claim word is
 * unclaimed, not given back. */
Test(desc_ring, the_first_position_can_be_stolen)
{
	tkv__dring r;
	tkv__dring_slot *s = new_slots(4);
	tkv__dring_init(&r, s, 4);
	tkv__desc d = make(1, 0);
	cr_assert(tkv__dring_push_mp(&r, &d));
	cr_assert(tkv__dring_steal(&r, 0, &d));
	tkv__dring_mark_copied(&r, 0);
	cr_assert_eq(tkv__dring_pop_shared(&r, &d), TKV__DRING_COPIED);
	free(s);
}

/* A waiter's slot (DR8): marked done, the owner takes it as DONE, in
 * claim order; the position a push reports finds its slot again from its
 * low 32 bits while it is queued, and no longer once taken. Over three
 * laps of a 4-slot ring, so the claim words of earlier laps are there. */
Test(desc_ring, a_waiters_slot_comes_back_done_and_its_position_is_found)
{
	tkv__dring r;
	tkv__dring_slot *s = new_slots(4);
	tkv__dring_init(&r, s, 4);
	for (uint32_t lap = 0; lap < 3; lap++) {
		uint64_t at[3], pos;
		for (uint64_t i = 0; i < 3; i++) {
			tkv__desc d = make(lap, i);
			cr_assert(tkv__dring_push_mp_at(&r, &d, &at[i]));
			cr_assert_eq(at[i], lap * 3 + i, "positions in claim order");
		}
		tkv__desc d;
		uint32_t id;
		uint64_t i;
		cr_assert(tkv__dring_queued_pos(&r, (uint32_t)at[1], &pos));
		cr_assert_eq(pos, at[1]);
		cr_assert(tkv__dring_steal(&r, pos, &d));
		cr_assert(check(&d, &id, &i) && id == lap && i == 1);
		tkv__dring_mark_done(&r, pos);
		cr_assert_not(tkv__dring_steal(&r, pos, &d), "a done slot is not stolen");
		cr_assert_eq(tkv__dring_pop_shared(&r, &d), TKV__DRING_TAKEN);
		cr_assert_not(tkv__dring_queued_pos(&r, (uint32_t)at[0], &pos), "taken");
		cr_assert_eq(tkv__dring_pop_shared(&r, &d), TKV__DRING_DONE);
		cr_assert(check(&d, &id, &i) && id == lap && i == 1);
		cr_assert_eq(tkv__dring_pop_shared(&r, &d), TKV__DRING_TAKEN);
		cr_assert_not(tkv__dring_queued_pos(&r, (uint32_t)(at[2] + 1), &pos),
			      "never pushed");
		cr_assert_eq(tkv__dring_size(&r), 0);
	}
	free(s);
}

/* Positions past 2^32: the low 32 bits a ticket keeps still find the
 * queued slot (the ring starts just below 2^32, as after 4 G stores). */
Test(desc_ring, a_position_is_found_from_its_low_bits_across_2_to_the_32)
{
	tkv__dring r;
	tkv__dring_slot *s = new_slots(4);
	tkv__dring_init(&r, s, 4);
	r.head = r.tail = (1ull << 32) - 1;
	uint64_t at[3], pos;
	for (uint64_t i = 0; i < 3; i++) {
		tkv__desc d = make(7, i);
		cr_assert(tkv__dring_push_mp_at(&r, &d, &at[i]));
	}
	cr_assert_eq(at[2], (1ull << 32) + 1);
	for (uint64_t i = 0; i < 3; i++) {
		cr_assert(tkv__dring_queued_pos(&r, (uint32_t)at[i], &pos));
		cr_assert_eq(pos, at[i]);
	}
	free(s);
}

/* Producers, an owner and a thief at once. Every descriptor is handled
 * once, by the owner or by the thief; the owner still takes each
 * producer's in push order; for a stolen one it finds the thief's
 * plain-memory note (written before mark_copied: DR5/DR6 under TSan), and
 * producers rewrite the slots the thief read (DR7). The owner's "copy"
 * is slow on purpose, so work queues up for the thief. */
typedef struct steal_test {
	dr_test t;
	uint8_t *noted; /* [producer * items + i]: the thief copied it (plain) */
	uint32_t done;
	uint64_t stolen;
} steal_test;

static void *thief_main(void *arg)
{
	steal_test *st = arg;
	tkv__dring *r = &st->t.ring;
	while (!ck_pr_load_32(&st->done)) {
		uint64_t tail = tkv__dring_tail(r), head = tkv__dring_claimed(r);
		bool got = false;
		for (uint64_t p = head; p > tail && !got;) {
			tkv__desc d;
			if (!tkv__dring_steal(r, --p, &d))
				continue;
			uint32_t id;
			uint64_t i;
			cr_assert(check(&d, &id, &i), "stolen descriptor torn");
			st->noted[id * st->t.items + i] = 1;
			tkv__dring_mark_copied(r, p);
			st->stolen++;
			got = true;
		}
		if (!got)
			sched_yield();
	}
	return NULL;
}

Test(desc_ring, owner_and_thief_handle_each_once_in_order)
{
	steal_test st = {.t = {.items = items_from_env() / 4, .producers = 2}};
	const uint32_t n_producers = 2, slots = 64;
	tkv__dring_slot *s = new_slots(slots);
	tkv__dring_init(&st.t.ring, s, slots);
	st.noted = calloc(n_producers * st.t.items, 1);
	dr_producer p[2];
	uint64_t next[2] = {0}, own = 0, copied = 0;
	for (uint32_t i = 0; i < n_producers; i++) {
		p[i] = (dr_producer){&st.t, i, 0};
		cr_assert_eq(pthread_create(&p[i].th, NULL, producer_main, &p[i]), 0);
	}
	pthread_t thief;
	cr_assert_eq(pthread_create(&thief, NULL, thief_main, &st), 0);
	ck_pr_store_32(&st.t.go, 1);
	for (uint64_t got = 0; got < st.t.items * n_producers;) {
		tkv__desc d;
		tkv__dring_got g = tkv__dring_pop_shared(&st.t.ring, &d);
		if (g == TKV__DRING_NONE) {
			sched_yield();
			continue;
		}
		uint32_t id;
		uint64_t i;
		cr_assert(check(&d, &id, &i), "descriptor %llu torn", (unsigned long long)got);
		cr_assert_eq(i, next[id], "producer %u: got %llu, expected %llu", id,
			     (unsigned long long)i, (unsigned long long)next[id]);
		uint8_t noted = st.noted[id * st.t.items + i];
		if (g == TKV__DRING_COPIED) {
			cr_assert_eq(noted, 1, "copied, but the thief's note is not there");
			copied++;
		} else {
			cr_assert_eq(noted, 0, "the owner took one the thief copied");
			for (volatile int spin = 0; spin < 2000; spin++)
				; /* a copy takes a while */
			own++;
		}
		next[id]++;
		got++;
	}
	ck_pr_store_32(&st.done, 1);
	pthread_join(thief, NULL);
	for (uint32_t i = 0; i < n_producers; i++)
		pthread_join(p[i].th, NULL);
	cr_assert_eq(copied, st.stolen, "every stolen one came back copied");
	cr_assert_eq(own + copied, st.t.items * n_producers);
	cr_assert_gt(copied, 0, "the thief never stole (owner took all %llu)",
		     (unsigned long long)own);
	free(st.noted);
	free(s);
}
