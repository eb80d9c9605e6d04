/*
 * ck_ring.c - stress tests of the ck_ring variants the runtime builds on
 * (SPSC, MPSC, MPMC), with 2 to 4 threads passing pointers to items that
 * carry a producer id, a sequence number and a check value.
 *
 * What they pin down: every item arrives exactly once, in each producer's
 * order, and the item's fields written before the enqueue are what the
 * consumer reads. Under ThreadSanitizer these tests are also the proof that
 * the ck fix (runtime/ck-tsan.cmake) leaves no false report: the item fields
 * are plain memory, so only the ring's own release/acquire orders them.
 * (tests/tsan/racy_selftest.c shows a real race through a ring is still
 * reported.)
 *
 * Environment: TKV_RING_ITEMS sets the items per producer (default 20000),
 * TKV_RING_PRODUCERS the MPSC producers (1-3, default 2).
 *
 * Thread counts stay near the core count on purpose: ck's multi-producer
 * enqueue spins (no yield) until the producers before it commit, so with more
 * spinning producers than cores a preempted producer stalls the others for
 * whole time slices. Under TSan, whose window between claim and commit is
 * wide, 3 producers + 1 consumer on 2 cores took from 0.2 s to over 120 s.
 * Consumer threads never call cr_assert (Criterion asserts belong to the test
 * thread): they record the first problem and the test thread reports it.
 */
#include <criterion/criterion.h>
#include <ck_pr.h>
#include <ck_ring.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_THREAD__) && !defined(TKV_CK_TSAN)
#error "TSan build without the generated ck_pr.h (runtime/ck-tsan.cmake): false races"
#endif

#define MAX_THREADS 4

typedef struct ring_item {
	uint32_t producer;
	uint32_t seq;
	uint64_t check; /* item_check(producer, seq), written before enqueue */
	unsigned seen;  /* consumer's count; the item's one consumer writes it */
} ring_item;

/* One ring flavour: the enqueue and dequeue of a ck_ring variant. */
typedef struct ring_ops {
	const char *name;
	bool (*enqueue)(ck_ring_t *, ck_ring_buffer_t *, const void *);
	bool (*dequeue)(ck_ring_t *, const ck_ring_buffer_t *, void *);
	bool strict_order; /* one consumer: each producer's items arrive seq+1 */
} ring_ops;

typedef struct ring_test {
	const ring_ops *ops;
	ck_ring_t ring;
	ck_ring_buffer_t *slots;
	unsigned n_producers, n_consumers;
	uint32_t per_producer;
	ring_item *items[MAX_THREADS]; /* items[p][seq] */
	unsigned consumed;             /* all consumers; ck_pr atomics */
} ring_test;

typedef struct consumer_ctx {
	ring_test *t;
	char error[200]; /* first problem seen, empty if none */
} consumer_ctx;

typedef struct producer_ctx {
	ring_test *t;
	uint32_t id;
} producer_ctx;

static uint64_t item_check(uint32_t producer, uint32_t seq)
{
	return ((uint64_t)producer << 32 | seq) * 0x9e3779b97f4a7c15ull;
}

/* A positive integer from the environment, or `def` if unset or invalid. */
static uint32_t env_count(const char *name, uint32_t def, uint32_t max)
{
	const char *s = getenv(name);
	long n = s ? strtol(s, NULL, 10) : 0;

	return n > 0 && n <= (long)max ? (uint32_t)n : def;
}

static void *producer_main(void *arg)
{
	producer_ctx *pc = arg;
	ring_test *t = pc->t;

	for (uint32_t seq = 0; seq < t->per_producer; seq++) {
		ring_item *it = &t->items[pc->id][seq];

		/* Plain writes: the enqueue's release store must publish them. */
		it->producer = pc->id;
		it->seq = seq;
		it->check = item_check(pc->id, seq);
		while (!t->ops->enqueue(&t->ring, t->slots, it))
			sched_yield(); /* full: let the consumer run (2 cores here) */
	}
	return NULL;
}

/* Checks one dequeued item against what this consumer saw before from the
 * same producer; 0 or -1 with cc->error filled. */
static int check_item(consumer_ctx *cc, const ring_item *it, int64_t *last_seq)
{
	ring_test *t = cc->t;

	if (it->producer >= t->n_producers || it->seq >= t->per_producer) {
		snprintf(cc->error, sizeof(cc->error), "item with producer %u seq %u out of range",
			 it->producer, it->seq);
		return -1;
	}
	if (it->check != item_check(it->producer, it->seq)) {
		snprintf(cc->error, sizeof(cc->error), "producer %u seq %u: check value not visible",
			 it->producer, it->seq);
		return -1;
	}
	int64_t want = last_seq[it->producer] + 1;
	if (t->ops->strict_order ? it->seq != want : it->seq < want) {
		snprintf(cc->error, sizeof(cc->error),
			 "producer %u: seq %u arrived after seq %lld (per-producer order broken)",
			 it->producer, it->seq, (long long)last_seq[it->producer]);
		return -1;
	}
	last_seq[it->producer] = it->seq;
	return 0;
}

static void *consumer_main(void *arg)
{
	consumer_ctx *cc = arg;
	ring_test *t = cc->t;
	const unsigned total = t->n_producers * t->per_producer;
	int64_t last_seq[MAX_THREADS];

	for (unsigned p = 0; p < MAX_THREADS; p++)
		last_seq[p] = -1;
	while (ck_pr_load_uint(&t->consumed) < total) {
		ring_item *it;

		if (!t->ops->dequeue(&t->ring, t->slots, &it)) {
			sched_yield(); /* empty: let the producers run */
			continue;
		}
		it->seen++;
		ck_pr_inc_uint(&t->consumed);
		if (!cc->error[0])
			check_item(cc, it, last_seq);
	}
	return NULL;
}

static void run_ring_test(const ring_ops *ops, unsigned ring_slots, unsigned n_producers,
			  unsigned n_consumers)
{
	ring_test t = {.ops = ops, .n_producers = n_producers, .n_consumers = n_consumers};
	producer_ctx pcs[MAX_THREADS];
	consumer_ctx ccs[MAX_THREADS];
	pthread_t pt[MAX_THREADS], ct[MAX_THREADS];

	cr_assert(n_producers + n_consumers <= MAX_THREADS);
	t.per_producer = env_count("TKV_RING_ITEMS", 20000, 1u << 24);
	t.slots = calloc(ring_slots, sizeof(*t.slots));
	cr_assert_not_null(t.slots);
	ck_ring_init(&t.ring, ring_slots);
	for (unsigned p = 0; p < n_producers; p++) {
		t.items[p] = calloc(t.per_producer, sizeof(ring_item));
		cr_assert_not_null(t.items[p]);
	}

	for (unsigned c = 0; c < n_consumers; c++) {
		ccs[c] = (consumer_ctx){.t = &t};
		cr_assert_eq(pthread_create(&ct[c], NULL, consumer_main, &ccs[c]), 0);
	}
	for (unsigned p = 0; p < n_producers; p++) {
		pcs[p] = (producer_ctx){.t = &t, .id = p};
		cr_assert_eq(pthread_create(&pt[p], NULL, producer_main, &pcs[p]), 0);
	}
	for (unsigned p = 0; p < n_producers; p++)
		pthread_join(pt[p], NULL);
	for (unsigned c = 0; c < n_consumers; c++)
		pthread_join(ct[c], NULL);

	for (unsigned c = 0; c < n_consumers; c++)
		cr_expect_str_empty(ccs[c].error, "%s consumer %u: %s", ops->name, c, ccs[c].error);
	for (unsigned p = 0; p < n_producers; p++) {
		for (uint32_t s = 0; s < t.per_producer; s++)
			cr_assert_eq(t.items[p][s].seen, 1, "%s: producer %u seq %u arrived %u times",
				     ops->name, p, s, t.items[p][s].seen);
		free(t.items[p]);
	}
	cr_assert_eq(ck_ring_size(&t.ring), 0, "%s: ring not empty at the end", ops->name);
	free(t.slots);
}

static const ring_ops spsc = {"spsc", ck_ring_enqueue_spsc, ck_ring_dequeue_spsc, true};
static const ring_ops mpsc = {"mpsc", ck_ring_enqueue_mpsc, ck_ring_dequeue_mpsc, true};
#ifdef __SANITIZE_THREAD__
/* TSan's dynamic annotations (libtsan). */
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);

/*
 * The one race ck tolerates on purpose: its multi-consumer dequeue copies the
 * slot before the CAS on c_head that claims it; when the CAS fails (another
 * consumer won) the copy is thrown away, so a producer overwriting the slot
 * meanwhile is harmless by design. TSan would report that copy, so this
 * test, the only user of a multi-consumer dequeue, ignores the plain reads
 * of this one call. Its atomics (the acquire of the producer index, the CAS)
 * still synchronize, and everything the consumer reads after the call is
 * checked. Scoped here rather than as a suppression, so it can never hide a
 * race anywhere else (the runtime's rings are single-consumer).
 */
static bool dequeue_mpmc_tsan(ck_ring_t *r, const ck_ring_buffer_t *b, void *out)
{
	AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
	bool ok = ck_ring_dequeue_mpmc(r, b, out);
	AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
	return ok;
}
#define MPMC_DEQUEUE dequeue_mpmc_tsan
#else
#define MPMC_DEQUEUE ck_ring_dequeue_mpmc
#endif

static const ring_ops mpmc = {"mpmc", ck_ring_enqueue_mpmc, MPMC_DEQUEUE, false};

/* Small rings so the producers keep hitting "full" and the indices wrap many
 * times. */
Test(ck_ring, spsc_one_producer_one_consumer, .timeout = 120)
{
	run_ring_test(&spsc, 16, 1, 1);
}

Test(ck_ring, mpsc_producers_one_consumer, .timeout = 120)
{
	run_ring_test(&mpsc, 32, env_count("TKV_RING_PRODUCERS", 2, MAX_THREADS - 1), 1);
}

/* Two consumers: order is checked per consumer (increasing, not
 * consecutive); exercises ck's tolerated slot read (dequeue_mpmc_tsan). */
Test(ck_ring, mpmc_two_producers_two_consumers, .timeout = 120)
{
	run_ring_test(&mpmc, 8, 2, 2);
}

/* One slot is always kept empty: a ring of N slots holds N - 1 items. */
Test(ck_ring, holds_one_less_than_its_size)
{
	ck_ring_buffer_t slots[64];
	ck_ring_t ring;
	int dummy;
	unsigned n = 0;

	ck_ring_init(&ring, 64);
	while (ck_ring_enqueue_spsc(&ring, slots, &dummy))
		n++;
	cr_assert_eq(n, 63);
	cr_assert_eq(ck_ring_capacity(&ring), 64);
	cr_assert_eq(ck_ring_size(&ring), 63);
}
