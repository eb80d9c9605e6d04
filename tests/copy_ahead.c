/*
 * copy_ahead.c - batches copied before their turn (runtime/copy_ahead.c;
 * runtime/desc_ring.h, DR8): a ticket's waiter copies its own queued
 * batch, and an owner whose queue's front another thread is copying copies
 * the batches behind it; each completes what it copied when every earlier
 * batch of that (sequence, layer) has completed, and leaves the rest to
 * the owner, in order.
 *
 * What they pin down, for the ring and for the bench's mutex queue alike,
 * with the workers paused (a test seam: they take nothing) so that only
 * the waiter can copy:
 *  - a store queued behind 8 others completes inside tkv_wait, the rows
 *    read back as stored, and the owner later only takes it out;
 *  - a store behind an earlier, uncompleted one of its layer is copied by
 *    its waiter but completed by the owner, in order;
 *  - a store near the front of its queue is left to the owner, and so is
 *    every store with tkv_config.wait_copy = TKV_WAIT_SLEEP; but while the
 *    owner sleeps a store at the very front is its waiter's;
 *  - a ticket whose queue position names another store's slot copies
 *    nothing (the slot goes back to its owner) and waits as before.
 * With the front slot held by the test (as a preempted copier would hold
 * it), the owner copies and completes the other sequences' batches behind
 * it, copies but does not complete the held batch's successor, and takes
 * the held one back in order once it is given back.
 * A waiter held after it took its batch whole (a test seam) shows that
 * the evictor's copies_pending counts the batch until it completes, that
 * with TKV_WAIT_COPY_ALL a second waiter copies meanwhile, and that with
 * the bound at one it sleeps.
 * And with engine threads storing and waiting at once, every row reads
 * back as stored and the workers' and waiters' layer-tokens add up to the
 * stored ones.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/copy_batch.h"
#include "runtime/runtime.h"
#include "tests/kv_pattern.h"
#include "tests/two_workers.h"
#include "tierkv.h"

enum { BATCH = 16, AHEAD = 8, TOKENS = 256 };

static uint64_t worker_batches(tkv_runtime *rt)
{
	tkv_stats st = stats(rt);
	uint64_t n = 0;
	for (uint32_t i = 0; i < st.n_workers; i++)
		n += st.workers[i].batches;
	return n;
}

/* Pattern rows 0..TOKENS of (seq, layer 0): K then V. */
typedef struct rows {
	unsigned char *k, *v;
} rows;

static rows pattern(const tkv_config *c, uint64_t seq)
{
	size_t rb = row_bytes(c);
	rows r = {malloc(TOKENS * rb), malloc(TOKENS * rb)};
	cr_assert(r.k && r.v);
	kvp_fill(r.k, seq, 0, 0, TOKENS, rb, 0);
	kvp_fill(r.v, seq, 0, 0, TOKENS, rb, 1);
	return r;
}

static tkv_ticket store(tkv_runtime *rt, const tkv_config *c, const rows *r, uint64_t seq,
			uint64_t pos, uint32_t n)
{
	size_t rb = row_bytes(c);
	tkv_ticket t;
	cr_assert_eq(tkv_store(rt, seq, 0, pos, n, r->k + pos * rb, r->v + pos * rb, 0, &t), 0,
		     "%s", tkv_last_error());
	return t;
}

static void expect_rows(tkv_runtime *rt, const tkv_config *c, uint64_t seq, uint32_t n)
{
	size_t rb = row_bytes(c);
	unsigned char *k = malloc(n * rb), *v = malloc(n * rb), *scratch = malloc(rb);
	cr_assert(k && v && scratch);
	cr_assert_eq(tkv_read(rt, seq, 0, 0, n, k, v), 0, "%s", tkv_last_error());
	cr_assert_eq(kvp_check(k, seq, 0, 0, n, rb, 0, scratch), -1, "seq %llu: K rows differ",
		     (unsigned long long)seq);
	cr_assert_eq(kvp_check(v, seq, 0, 0, n, rb, 1, scratch), -1, "seq %llu: V rows differ",
		     (unsigned long long)seq);
	free(k);
	free(v);
	free(scratch);
}

typedef struct fixture {
	tkv_config c;
	tkv_runtime *rt;
	rows ahead, own; /* sequence 2 (queued first), sequence 1 */
	tkv_ticket ahead_last;
} fixture;

/* Opens a runtime, pauses its workers, and queues AHEAD batches of
 * sequence 2 on layer 0's worker. */
static void setup(fixture *f, tkv__queue_kind queue, bool waiters_sleep)
{
	f->c = small_config();
	f->c.wait_copy = waiters_sleep ? TKV_WAIT_SLEEP : TKV_WAIT_COPY_OWN;
	tkv__open_opts opts = {.queue = queue};
	cr_assert_eq(tkv__open_ex(&f->c, &opts, &f->rt), 0, "%s", tkv_last_error());
	f->ahead = pattern(&f->c, 2);
	f->own = pattern(&f->c, 1);
	cr_assert_eq(tkv_seq_open(f->rt, 1), 0);
	cr_assert_eq(tkv_seq_open(f->rt, 2), 0);
	tkv__test_pause(f->rt, true);
	for (uint32_t i = 0; i < AHEAD; i++)
		f->ahead_last = store(f->rt, &f->c, &f->ahead, 2, (uint64_t)i * BATCH, BATCH);
}

/* Resumes the workers and checks that everything completes intact. */
static void finish(fixture *f, uint32_t own_tokens)
{
	tkv__test_pause(f->rt, false);
	cr_assert_eq(tkv_wait(f->rt, &f->ahead_last), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_seq_sync(f->rt, 1), 0);
	expect_rows(f->rt, &f->c, 2, AHEAD * BATCH);
	expect_rows(f->rt, &f->c, 1, own_tokens);
	cr_assert_eq(tkv_seq_close(f->rt, 1), 0);
	cr_assert_eq(tkv_seq_close(f->rt, 2), 0);
	cr_assert_eq(stats(f->rt).hot_bytes_used, 0, "every block freed");
	tkv_close(f->rt);
	free(f->ahead.k);
	free(f->ahead.v);
	free(f->own.k);
	free(f->own.v);
}

typedef struct waiter {
	tkv_runtime *rt;
	tkv_ticket t;
	int rc;
} waiter;

static void *wait_thread(void *arg)
{
	waiter *w = arg;
	w->rc = tkv_wait(w->rt, &w->t);
	return NULL;
}

/* Waits (up to 10 s) until the runtime counts `want` waiter copies. */
static void wait_waiter_batches(tkv_runtime *rt, uint64_t want)
{
	for (int i = 0; i < 10000 && stats(rt).waiter_batches < want; i++)
		usleep(1000);
	cr_assert_eq(stats(rt).waiter_batches, want);
}

static void completes_inside_the_wait(tkv__queue_kind queue)
{
	fixture f;
	setup(&f, queue, false);
	tkv_ticket t = store(f.rt, &f.c, &f.own, 1, 0, BATCH);
	/* the workers are paused: only this thread can copy it */
	cr_assert_eq(tkv_wait(f.rt, &t), 0, "%s", tkv_last_error());
	tkv_stats st = stats(f.rt);
	cr_assert_eq(st.waiter_batches, 1);
	cr_assert_eq(st.waiter_tokens_stored, BATCH);
	cr_assert_eq(st.waiter_bytes_stored, 2ull * BATCH * row_bytes(&f.c));
	cr_assert_eq(worker_batches(f.rt), 0);
	cr_assert_not(tkv_ticket_done(f.rt, &f.ahead_last), "only its own batch completed");
	expect_rows(f.rt, &f.c, 1, BATCH); /* readable while the workers still pause */
	finish(&f, BATCH);
	/* the owner took it out without copying it again */
}

Test(copy_ahead, ring_a_waiter_completes_its_own_batch, .timeout = 60)
{
	completes_inside_the_wait(TKV__QUEUE_RING);
}

Test(copy_ahead, mutex_queue_a_waiter_completes_its_own_batch, .timeout = 60)
{
	completes_inside_the_wait(TKV__QUEUE_MUTEX);
}

static void owner_completes_behind_an_earlier_batch(tkv__queue_kind queue)
{
	fixture f;
	setup(&f, queue, false);
	store(f.rt, &f.c, &f.own, 1, 0, BATCH);
	waiter w = {f.rt, store(f.rt, &f.c, &f.own, 1, BATCH, BATCH), -1};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, wait_thread, &w), 0);
	wait_waiter_batches(f.rt, 1); /* it copied the second batch */
	cr_assert_not(tkv_ticket_done(f.rt, &w.t), "completed before the batch before it");
	usleep(20000);
	cr_assert_not(tkv_ticket_done(f.rt, &w.t), "completed before the batch before it");
	tkv__test_pause(f.rt, false);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(w.rc, 0, "%s", tkv_last_error());
	cr_assert_eq(worker_batches(f.rt), AHEAD + 1, "the owner copied all but the waiter's");
	cr_assert_eq(stats(f.rt).waiter_batches, 1);
	finish(&f, 2 * BATCH);
}

Test(copy_ahead, ring_the_owner_completes_behind_an_earlier_batch, .timeout = 60)
{
	owner_completes_behind_an_earlier_batch(TKV__QUEUE_RING);
}

Test(copy_ahead, mutex_queue_the_owner_completes_behind_an_earlier_batch, .timeout = 60)
{
	owner_completes_behind_an_earlier_batch(TKV__QUEUE_MUTEX);
}

/* The wait sleeps: nothing is copied while the workers pause; then the
 * owner copies the store. */
static void left_to_the_owner(fixture *f, tkv_ticket t)
{
	waiter w = {f->rt, t, -1};
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, wait_thread, &w), 0);
	usleep(50000);
	cr_assert_eq(stats(f->rt).waiter_batches, 0);
	cr_assert_not(tkv_ticket_done(f->rt, &t));
	tkv__test_pause(f->rt, false);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(w.rc, 0, "%s", tkv_last_error());
	cr_assert_eq(stats(f->rt).waiter_batches, 0);
}

Test(copy_ahead, a_store_near_the_front_is_left_to_its_owner, .timeout = 60)
{
	tkv_config c = small_config();
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	rows own = pattern(&c, 1);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	tkv__test_pause(rt, true);
	tkv_ticket t = {0};
	for (uint32_t i = 0; i < AHEAD; i++) /* the last has AHEAD - 1 ahead */
		t = store(rt, &c, &own, 1, (uint64_t)i * BATCH, BATCH);
	fixture f = {.c = c, .rt = rt};
	left_to_the_owner(&f, t);
	cr_assert_eq(worker_batches(rt), AHEAD);
	expect_rows(rt, &c, 1, AHEAD * BATCH);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	tkv_close(rt);
	free(own.k);
	free(own.v);
}

/* Closes sequences 1..n (rows r[1..n]) and the runtime, every block freed. */
static void close_all(tkv_runtime *rt, rows *r, uint64_t n)
{
	for (uint64_t q = 1; q <= n; q++) {
		cr_assert_eq(tkv_seq_close(rt, q), 0);
		free(r[q].k);
		free(r[q].v);
	}
	cr_assert_eq(stats(rt).hot_bytes_used, 0, "every block freed");
	tkv_close(rt);
}

/* Waits (up to 10 s) until a ticket waiter sleeps on layer 0 of seq. */
static void wait_asleep(tkv_runtime *rt, uint64_t seq)
{
	tkv__seq *s = tkv__seq_get(&rt->seqs, seq);
	cr_assert_not_null(s);
	tkv__wake *done = &s->layers[0].done_wake;
	for (int i = 0; i < 10000 && ck_pr_load_32(&done->waiters) == 0; i++)
		usleep(1000);
	cr_assert_neq(ck_pr_load_32(&done->waiters), 0, "a waiter sleeps on seq %llu",
		      (unsigned long long)seq);
	tkv__seq_put(s);
}

/* A runtime whose workers are paused, with sequence 1 open (its rows in
 * r[1]) and worker 0 announced on its idle event count as if it slept
 * (the test's doing: the paused worker is not); the caller resumes. */
static tkv__worker *open_owner_asleep(tkv__queue_kind queue, tkv_config *c, tkv_runtime **rt,
				      rows r[2])
{
	*c = small_config();
	tkv__open_opts opts = {.queue = queue};
	cr_assert_eq(tkv__open_ex(c, &opts, rt), 0, "%s", tkv_last_error());
	r[0] = (rows){0};
	r[1] = pattern(c, 1);
	cr_assert_eq(tkv_seq_open(*rt, 1), 0);
	tkv__test_pause(*rt, true);
	tkv__worker *w0 = tkv__worker_of(*rt, 0);
	ck_pr_store_32(&w0->idle.waiters, 1);
	return w0;
}

/* While the owner sleeps a store at the very front is its waiter's to
 * copy: the owner is not about to take it. */
static void front_store_while_the_owner_sleeps(tkv__queue_kind queue)
{
	tkv_config c;
	tkv_runtime *rt;
	rows r[2];
	tkv__worker *w0 = open_owner_asleep(queue, &c, &rt, r);
	waiter w = {rt, store(rt, &c, &r[1], 1, 0, BATCH), -1}; /* position 0 */
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, wait_thread, &w), 0);
	wait_waiter_batches(rt, 1);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(w.rc, 0, "%s", tkv_last_error());
	ck_pr_store_32(&w0->idle.waiters, 0);
	cr_assert_eq(worker_batches(rt), 0);
	expect_rows(rt, &c, 1, BATCH);
	tkv__test_pause(rt, false);
	close_all(rt, r, 1);
}

Test(copy_ahead, ring_a_front_store_is_its_waiters_while_the_owner_sleeps, .timeout = 60)
{
	front_store_while_the_owner_sleeps(TKV__QUEUE_RING);
}

Test(copy_ahead, mutex_queue_a_front_store_is_its_waiters_while_the_owner_sleeps, .timeout = 60)
{
	front_store_while_the_owner_sleeps(TKV__QUEUE_MUTEX);
}

/* Near the front, a batch its waiter could copy but not complete (an
 * earlier batch of its layer is still queued) stays the owner's even while
 * the owner sleeps: held by a waiter, the front would stop the queue. */
static void near_batch_behind_its_layer_stays_the_owners(tkv__queue_kind queue)
{
	tkv_config c;
	tkv_runtime *rt;
	rows r[2];
	tkv__worker *w0 = open_owner_asleep(queue, &c, &rt, r);
	store(rt, &c, &r[1], 1, 0, BATCH);                         /* position 0 */
	waiter w = {rt, store(rt, &c, &r[1], 1, BATCH, BATCH), -1}; /* 1 */
	pthread_t th;
	cr_assert_eq(pthread_create(&th, NULL, wait_thread, &w), 0);
	wait_asleep(rt, 1);
	cr_assert_eq(stats(rt).waiter_batches, 0, "the waiter left it to the owner");
	cr_assert_not(tkv_ticket_done(rt, &w.t));
	ck_pr_store_32(&w0->idle.waiters, 0);
	tkv__test_pause(rt, false);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(w.rc, 0, "%s", tkv_last_error());
	cr_assert_eq(worker_batches(rt), 2);
	expect_rows(rt, &c, 1, 2 * BATCH);
	close_all(rt, r, 1);
}

Test(copy_ahead, ring_a_near_batch_behind_its_layer_stays_the_owners, .timeout = 60)
{
	near_batch_behind_its_layer_stays_the_owners(TKV__QUEUE_RING);
}

Test(copy_ahead, mutex_queue_a_near_batch_behind_its_layer_stays_the_owners, .timeout = 60)
{
	near_batch_behind_its_layer_stays_the_owners(TKV__QUEUE_MUTEX);
}

Test(copy_ahead, with_wait_sleep_the_owner_copies_every_store, .timeout = 60)
{
	fixture f;
	setup(&f, TKV__QUEUE_RING, true);
	left_to_the_owner(&f, store(f.rt, &f.c, &f.own, 1, 0, BATCH));
	cr_assert_eq(worker_batches(f.rt), AHEAD + 1);
	finish(&f, BATCH);
}

/* The bound on waiters copying at once: COPY_OWN allows the CPUs beyond
 * one per worker, at least one; COPY_ALL any number. With the bound
 * reached (the count set by the test, as if that many were copying) a
 * waiter sleeps and the owner copies its store. */
Test(copy_ahead, a_waiter_past_the_bound_sleeps, .timeout = 60)
{
	fixture f;
	setup(&f, TKV__QUEUE_RING, false);
	uint32_t spin = f.rt->wait_spin_cpus;
	cr_assert_eq(f.rt->waiter_copy_max, spin > 1 ? spin : 1);
	ck_pr_store_32(&f.rt->waiters_copying, f.rt->waiter_copy_max);
	left_to_the_owner(&f, store(f.rt, &f.c, &f.own, 1, 0, BATCH));
	cr_assert_eq(ck_pr_load_32(&f.rt->waiters_copying), f.rt->waiter_copy_max,
		     "a waiter that did not copy took no slot");
	ck_pr_store_32(&f.rt->waiters_copying, 0);
	finish(&f, BATCH);

	tkv_config c = small_config();
	c.wait_copy = TKV_WAIT_COPY_ALL;
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	cr_assert_eq(rt->waiter_copy_max, UINT32_MAX);
	tkv_close(rt);
}

Test(copy_ahead, a_ticket_naming_another_stores_slot_copies_nothing, .timeout = 60)
{
	fixture f;
	setup(&f, TKV__QUEUE_RING, false);
	store(f.rt, &f.c, &f.ahead, 2, AHEAD * BATCH, BATCH); /* position AHEAD: copyable */
	tkv_ticket t = store(f.rt, &f.c, &f.own, 1, 0, BATCH);
	t.queue_pos = AHEAD + 1; /* names sequence 2's last store */
	left_to_the_owner(&f, t);
	cr_assert_eq(worker_batches(f.rt), AHEAD + 2, "the slot went back to its owner");
	expect_rows(f.rt, &f.c, 2, (AHEAD + 1) * BATCH);
	finish(&f, BATCH);
}

/* Polls (up to 10 s) until t completes. */
static void wait_done(tkv_runtime *rt, const tkv_ticket *t)
{
	for (int i = 0; i < 10000 && !tkv_ticket_done(rt, t); i++)
		usleep(1000);
	cr_assert(tkv_ticket_done(rt, t));
}

static void owner_copies_past_a_held_front(tkv__queue_kind queue)
{
	tkv_config c = small_config();
	tkv__open_opts opts = {.queue = queue};
	tkv_runtime *rt;
	cr_assert_eq(tkv__open_ex(&c, &opts, &rt), 0, "%s", tkv_last_error());
	rows r[4] = {{0}, pattern(&c, 1), pattern(&c, 2), pattern(&c, 3)};
	for (uint64_t q = 1; q <= 3; q++)
		cr_assert_eq(tkv_seq_open(rt, q), 0);
	tkv__test_pause(rt, true);
	for (uint32_t i = 0; i < 4; i++) /* positions 0-3 */
		store(rt, &c, &r[2], 2, (uint64_t)i * BATCH, BATCH);
	tkv_ticket held = store(rt, &c, &r[1], 1, 0, BATCH);      /* position 4 */
	tkv_ticket next = store(rt, &c, &r[1], 1, BATCH, BATCH);  /* 5: same layer */
	tkv_ticket last = {0};
	for (uint32_t i = 0; i < 3; i++) /* positions 6-8 */
		last = store(rt, &c, &r[3], 3, (uint64_t)i * BATCH, BATCH);
	tkv__worker *w0 = tkv__worker_of(rt, 0);
	tkv__desc d;
	cr_assert(queue == TKV__QUEUE_MUTEX ? tkv__mq_steal(w0, 4, &d)
					    : tkv__dring_steal(&w0->ring, 4, &d));
	cr_assert_eq(d.pos + d.n_tokens, held.end_pos, "the held slot is sequence 1's first");
	tkv__test_pause(rt, false);

	wait_done(rt, &last); /* sequence 3 completes past the held front */
	cr_assert_not(tkv_ticket_done(rt, &held));
	usleep(20000);
	cr_assert_not(tkv_ticket_done(rt, &next), "completed before the held batch before it");
	tkv_stats st = stats(rt);
	cr_assert_eq(st.batches_copied_ahead, 4, "sequence 3's three and the held one's successor");
	cr_assert_eq(worker_batches(rt), 4 + 4);

	queue == TKV__QUEUE_MUTEX ? tkv__mq_return(w0, 4) : tkv__dring_return(&w0->ring, 4);
	tkv__worker_kick(w0);
	cr_assert_eq(tkv_wait(rt, &next), 0, "%s", tkv_last_error());
	cr_assert_eq(worker_batches(rt), 4 + 4 + 1, "the owner copied the held one, once");
	expect_rows(rt, &c, 1, 2 * BATCH);
	expect_rows(rt, &c, 2, 4 * BATCH);
	expect_rows(rt, &c, 3, 3 * BATCH);
	close_all(rt, r, 3);
}

Test(copy_ahead, ring_the_owner_copies_past_a_held_front, .timeout = 60)
{
	owner_copies_past_a_held_front(TKV__QUEUE_RING);
}

Test(copy_ahead, mutex_queue_the_owner_copies_past_a_held_front, .timeout = 60)
{
	owner_copies_past_a_held_front(TKV__QUEUE_MUTEX);
}

/* A batch a waiter took (its slot marked DONE before the copy, the layer's
 * taken_end set) lets the owner pass its slot at once; the owner completes
 * the other sequence's batches behind it, and stops at the next batch of
 * the taken one's layer until that completes. The test thread plays the
 * waiter preempted mid-copy, then does its copy. */
Test(copy_ahead, the_owner_passes_a_taken_slot_and_waits_only_for_its_layer, .timeout = 60)
{
	tkv_config c = small_config();
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	rows r[3] = {{0}, pattern(&c, 1), pattern(&c, 2)};
	for (uint64_t q = 1; q <= 2; q++)
		cr_assert_eq(tkv_seq_open(rt, q), 0);
	tkv__test_pause(rt, true);
	tkv_ticket taken = store(rt, &c, &r[1], 1, 0, BATCH); /* position 0 */
	tkv_ticket other = {0};
	for (uint32_t i = 0; i < 3; i++) /* positions 1-3 */
		other = store(rt, &c, &r[2], 2, (uint64_t)i * BATCH, BATCH);
	tkv_ticket next = store(rt, &c, &r[1], 1, BATCH, BATCH); /* 4: same layer */
	tkv__worker *w0 = tkv__worker_of(rt, 0);
	tkv__desc d;
	cr_assert(tkv__dring_steal(&w0->ring, 0, &d));
	tkv__seq *s = d.seq;
	ck_pr_store_64(&s->layers[0].taken_end, taken.end_pos);
	tkv__dring_mark_done(&w0->ring, 0);
	tkv__test_pause(rt, false);

	wait_done(rt, &other); /* the owner passed the taken slot */
	usleep(20000);
	cr_assert_not(tkv_ticket_done(rt, &next), "completed before the taken batch");
	cr_assert_not(tkv_ticket_done(rt, &taken));

	tkv__batch_prepare(rt, &d, false); /* the waiter's copy, late */
	tkv__batch_copy(rt, &d);
	if (rt->hot_streams)
		tkv__stream_fence();
	tkv__layer_complete(&s->layers[0], taken.end_pos);
	cr_assert_eq(tkv_wait(rt, &next), 0, "%s", tkv_last_error());
	cr_assert_eq(worker_batches(rt), 4, "the owner copied all but the taken one");
	expect_rows(rt, &c, 1, 2 * BATCH);
	expect_rows(rt, &c, 2, 3 * BATCH);
	close_all(rt, r, 2);
}

/* A waiter held after it took its batch whole (runtime.h,
 * test_taken_hook): the first call is held until the test lets it go,
 * later ones pass. */
static struct {
	uint32_t calls, held, go;
} hold;

static void hold_first_taker(tkv_runtime *rt)
{
	(void)rt;
	if (__atomic_fetch_add(&hold.calls, 1, __ATOMIC_SEQ_CST) != 0)
		return;
	__atomic_store_n(&hold.held, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&hold.go, __ATOMIC_SEQ_CST))
		usleep(1000);
}

/* Starts a waiter on a store of sequence 1 that it will take whole, and
 * returns once that waiter is held before its copy. */
static void start_held_taker(fixture *f, waiter *w, pthread_t *th)
{
	hold.calls = hold.held = hold.go = 0;
	f->rt->test_taken_hook = hold_first_taker;
	*w = (waiter){f->rt, store(f->rt, &f->c, &f->own, 1, 0, BATCH), -1};
	cr_assert_eq(pthread_create(th, NULL, wait_thread, w), 0);
	for (int i = 0; i < 10000 && !__atomic_load_n(&hold.held, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	cr_assert(__atomic_load_n(&hold.held, __ATOMIC_SEQ_CST), "the waiter took its batch");
}

static void release_held_taker(fixture *f, waiter *w, pthread_t th)
{
	__atomic_store_n(&hold.go, 1, __ATOMIC_SEQ_CST);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(w->rc, 0, "%s", tkv_last_error());
	f->rt->test_taken_hook = NULL;
}

/* The evictor's copies_pending stays true for a batch a waiter took while
 * it copies, after its owner took the slot out and counted it completed
 * (runtime.c: waiters_open); false once the waiter completed it. */
Test(copy_ahead, copies_pending_counts_a_taken_batch_until_it_completes, .timeout = 60)
{
	fixture f;
	setup(&f, TKV__QUEUE_RING, false);
	waiter w;
	pthread_t th;
	start_held_taker(&f, &w, &th);
	tkv__test_pause(f.rt, false);
	cr_assert_eq(tkv_wait(f.rt, &f.ahead_last), 0, "%s", tkv_last_error());
	tkv__worker *w0 = tkv__worker_of(f.rt, 0);
	for (int i = 0; i < 10000 && ck_pr_load_64(&w0->completed) != tkv__dring_claimed(&w0->ring);
	     i++)
		usleep(1000);
	cr_assert_eq(ck_pr_load_64(&w0->completed), tkv__dring_claimed(&w0->ring),
		     "the owner took every slot out, the taken one included");
	cr_assert_not(tkv_ticket_done(f.rt, &w.t), "held before its copy");
	cr_assert(tkv__copies_pending(f.rt), "a taken batch is still to be copied");
	release_held_taker(&f, &w, th);
	cr_assert_not(tkv__copies_pending(f.rt));
	cr_assert_eq(stats(f.rt).waiter_batches, 1);
	finish(&f, BATCH);
}

/* Two waiters copy at once with TKV_WAIT_COPY_ALL: while the first is held
 * mid-take (the workers paused), a second completes its own store inside
 * its wait. With the bound at one (COPY_OWN on a machine with no CPU
 * beyond the workers') the second sleeps until the first is done. */
static void second_waiter(bool copy_all)
{
	fixture f;
	setup(&f, TKV__QUEUE_RING, false);
	if (copy_all)
		f.rt->waiter_copy_max = UINT32_MAX; /* what TKV_WAIT_COPY_ALL sets */
	else
		f.rt->waiter_copy_max = 1;
	rows third = pattern(&f.c, 3);
	cr_assert_eq(tkv_seq_open(f.rt, 3), 0);
	waiter w1, w2;
	pthread_t th1, th2;
	start_held_taker(&f, &w1, &th1);
	w2 = (waiter){f.rt, store(f.rt, &f.c, &third, 3, 0, BATCH), -1};
	cr_assert_eq(pthread_create(&th2, NULL, wait_thread, &w2), 0);
	if (copy_all) {
		wait_waiter_batches(f.rt, 1); /* the second's, while the first is held */
		cr_assert_eq(pthread_join(th2, NULL), 0, "it returned while the first copies");
		cr_assert_eq(w2.rc, 0, "%s", tkv_last_error());
		cr_assert_eq(ck_pr_load_32(&f.rt->waiters_copying), 1, "the first still copies");
		cr_assert_eq(stats(f.rt).waiter_batches, 1);
		cr_assert_not(tkv_ticket_done(f.rt, &w1.t));
	} else {
		wait_asleep(f.rt, 3); /* it met the bound and went to sleep */
		cr_assert_not(tkv_ticket_done(f.rt, &w2.t), "past the bound: it sleeps");
		cr_assert_eq(stats(f.rt).waiter_batches, 0);
	}
	release_held_taker(&f, &w1, th1);
	if (!copy_all) {
		tkv__test_pause(f.rt, false);
		cr_assert_eq(pthread_join(th2, NULL), 0);
		cr_assert_eq(w2.rc, 0, "%s", tkv_last_error());
	}
	cr_assert_eq(stats(f.rt).waiter_batches, copy_all ? 2 : 1);
	expect_rows(f.rt, &f.c, 3, BATCH);
	cr_assert_eq(tkv_seq_close(f.rt, 3), 0);
	free(third.k);
	free(third.v);
	finish(&f, BATCH);
}

Test(copy_ahead, with_copy_all_two_waiters_copy_at_once, .timeout = 60)
{
	second_waiter(true);
}

Test(copy_ahead, with_the_bound_at_one_a_second_waiter_sleeps_while_one_copies, .timeout = 60)
{
	second_waiter(false);
}

/* Engine threads store and wait at once (1-16-token batches, both layers):
 * every row reads back as stored, and the layer-tokens the workers and the
 * waiters copied add up to the stored ones. */
typedef struct engine {
	tkv_runtime *rt;
	const tkv_config *c;
	uint64_t seq;
	const char *failed; /* what went wrong, or NULL: asserted by the main thread */
} engine;

static void *engine_thread(void *arg)
{
	engine *e = arg;
	size_t rb = row_bytes(e->c);
	unsigned char *k[2], *v[2];
	unsigned char *got = malloc(TOKENS * rb), *got_v = malloc(TOKENS * rb),
		      *scratch = malloc(rb);
	for (uint32_t l = 0; l < 2; l++) {
		k[l] = malloc(TOKENS * rb);
		v[l] = malloc(TOKENS * rb);
		kvp_fill(k[l], e->seq, l, 0, TOKENS, rb, 0);
		kvp_fill(v[l], e->seq, l, 0, TOKENS, rb, 1);
	}
	if (tkv_seq_open(e->rt, e->seq))
		e->failed = "seq_open";
	for (uint32_t pos = 0, n = (uint32_t)e->seq % 16 + 1; pos < TOKENS && !e->failed;
	     n = n % 16 + 1) {
		if (n > TOKENS - pos)
			n = TOKENS - pos;
		tkv_ticket t[2];
		for (uint32_t l = 0; l < 2 && !e->failed; l++)
			if (tkv_store(e->rt, e->seq, l, pos, n, k[l] + pos * rb, v[l] + pos * rb, 0,
				      &t[l]))
				e->failed = "store";
		for (uint32_t l = 0; l < 2 && !e->failed; l++)
			if (tkv_wait(e->rt, &t[l]))
				e->failed = "wait";
		pos += n;
	}
	for (uint32_t l = 0; l < 2 && !e->failed; l++) {
		if (tkv_read(e->rt, e->seq, l, 0, TOKENS, got, got_v))
			e->failed = "read";
		else if (kvp_check(got, e->seq, l, 0, TOKENS, rb, 0, scratch) != -1 ||
			 kvp_check(got_v, e->seq, l, 0, TOKENS, rb, 1, scratch) != -1)
			e->failed = "rows differ";
	}
	for (uint32_t l = 0; l < 2; l++) {
		free(k[l]);
		free(v[l]);
	}
	free(got);
	free(got_v);
	free(scratch);
	return NULL;
}

Test(copy_ahead, engine_threads_storing_and_waiting_read_back_every_row, .timeout = 120)
{
	enum { ENGINES = 16 };
	tkv_config c = small_config();
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	pthread_t th[ENGINES];
	engine e[ENGINES];
	for (uint32_t i = 0; i < ENGINES; i++) {
		e[i] = (engine){rt, &c, i + 1, NULL};
		cr_assert_eq(pthread_create(&th[i], NULL, engine_thread, &e[i]), 0);
	}
	for (uint32_t i = 0; i < ENGINES; i++) {
		cr_assert_eq(pthread_join(th[i], NULL), 0);
		cr_assert_null(e[i].failed, "engine %u: %s", i, e[i].failed);
	}
	tkv_stats st = stats(rt);
	uint64_t copied = st.waiter_tokens_stored;
	for (uint32_t i = 0; i < st.n_workers; i++)
		copied += st.workers[i].tokens_stored;
	cr_assert_eq(copied, (uint64_t)ENGINES * 2 * TOKENS, "%llu layer-tokens copied",
		     (unsigned long long)copied);
	for (uint32_t i = 0; i < ENGINES; i++)
		cr_assert_eq(tkv_seq_close(rt, i + 1), 0);
	tkv_close(rt);
}
