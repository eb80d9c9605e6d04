/*
 * racy_selftest.c - deliberately racy program proving the TSan build is not a
 * no-op: built and run only in the TSan configuration, where ctest expects
 * each racy case to be reported (see ../expect_report.sh and CMakeLists.txt).
 *
 *   plain    two threads increment one plain int: the textbook data race.
 *   ring     a producer publishes a pointer through a ck_ring and only then
 *            writes the data it points to; the consumer reads that data.
 *            The ring's release/acquire orders what was written before the
 *            enqueue, not after, so this is a real race that TSan must still
 *            see with ck's atomics made visible (runtime/ck-tsan.cmake).
 *   ring-ok  the same program with the write before the enqueue: must run
 *            clean, so the "ring" report cannot come from ck itself.
 */
#include <ck_ring.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TKV_CK_TSAN
#error "built without the generated ck_pr.h (runtime/ck-tsan.cmake)"
#endif

#define N_ITEMS 2000
#define RING_SLOTS 16

static int counter; /* the plain race: no lock, no atomics */

static void *plain_worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100000; i++)
		counter++;
	return NULL;
}

static int run_plain(void)
{
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, plain_worker, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("plain: counter = %d (racy)\n", counter);
	return 0;
}

typedef struct payload {
	unsigned value;
} payload;

static ck_ring_t ring;
static ck_ring_buffer_t slots[RING_SLOTS];
static payload items[N_ITEMS];
static int write_after_publish; /* 1: the injected bug */

static void *ring_producer(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < N_ITEMS; i++) {
		if (!write_after_publish)
			items[i].value = i + 1;
		while (!ck_ring_enqueue_spsc(&ring, slots, &items[i]))
			sched_yield();
		if (write_after_publish)
			items[i].value = i + 1; /* BUG on purpose: after publication */
	}
	return NULL;
}

static void *ring_consumer(void *arg)
{
	unsigned long *sum = arg;

	for (unsigned got = 0; got < N_ITEMS;) {
		payload *p;

		if (!ck_ring_dequeue_spsc(&ring, slots, &p)) {
			sched_yield();
			continue;
		}
		*sum += p->value;
		got++;
	}
	return NULL;
}

static int run_ring(int buggy)
{
	pthread_t prod, cons;
	unsigned long sum = 0;

	write_after_publish = buggy;
	ck_ring_init(&ring, RING_SLOTS);
	pthread_create(&cons, NULL, ring_consumer, &sum);
	pthread_create(&prod, NULL, ring_producer, NULL);
	pthread_join(prod, NULL);
	pthread_join(cons, NULL);
	printf("%s: sum = %lu (expected %lu without the bug)\n", buggy ? "ring" : "ring-ok",
	       sum, (unsigned long)N_ITEMS * (N_ITEMS + 1) / 2);
	return buggy || sum == (unsigned long)N_ITEMS * (N_ITEMS + 1) / 2 ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *c = argc > 1 ? argv[1] : "";

	if (strcmp(c, "plain") == 0)
		return run_plain();
	if (strcmp(c, "ring") == 0)
		return run_ring(1);
	if (strcmp(c, "ring-ok") == 0)
		return run_ring(0);
	fprintf(stderr, "usage: %s plain|ring|ring-ok\n", argv[0]);
	return 2;
}
