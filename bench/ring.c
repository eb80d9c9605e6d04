/*
 * ring.c - `tierkv-bench ring`: what one descriptor hand-off costs through
 * the ring topologies the runtime could use, measured on this machine:
 *  - spsc: one producer, one consumer, ck_ring SPSC (the per-producer design);
 *  - mpsc: one producer, one consumer, ck_ring MPSC (the runtime's choice);
 *  - mpsc-2p: two producers into one MPSC ring (contention on the CAS);
 *  - dring, dring-2p: the runtime's own ring (runtime/desc_ring.h: per-slot
 *    publication, no producer waits for another), one and two producers;
 *  - mutex, mutex-2p: the bench's mutex-queue baseline itself
 *    (runtime/queue_mutex.c: a push per lock, up to 16 taken per lock).
 * Each moves the runtime's own descriptor type by value. Reported: ns per
 * item end to end (producer push to consumer pop, pipelined), which is the
 * per-batch queue cost the runtime pays on top of its copy.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>
#include <ck_ring.h>

#include "bench/bench.h"
#include "bench/internals.h"

CK_RING_PROTOTYPE(tkv__desc, tkv__desc)

typedef enum ring_kind { CK_SPSC, CK_MPSC, DRING, MUTEX } ring_kind;

typedef struct ring_bench {
	ck_ring_t ring;
	tkv__desc *slots;
	tkv__dring dring;
	tkv__dring_slot *dslots;
	tkv__worker *mq; /* MUTEX: a worker with only its queue set up */
	uint64_t items_per_producer;
	uint32_t producers;
	ring_kind kind;
	uint32_t go;
} ring_bench;

static void *producer_main(void *arg)
{
	ring_bench *b = arg;
	tkv__desc d = {0};
	uint64_t at; /* the mutex queue's position, unused here */
	while (!ck_pr_load_32(&b->go))
		ck_pr_stall();
	for (uint64_t i = 0; i < b->items_per_producer; i++) {
		d.pos = i;
		if (b->kind == DRING)
			while (!tkv__dring_push_mp(&b->dring, &d))
				ck_pr_stall();
		else if (b->kind == MUTEX)
			while (!tkv__mq_push(b->mq, &d, &at))
				ck_pr_stall();
		else if (b->kind == CK_MPSC)
			while (!ck_ring_enqueue_mpsc_tkv__desc(&b->ring, b->slots, &d))
				ck_pr_stall();
		else
			while (!ck_ring_enqueue_spsc_tkv__desc(&b->ring, b->slots, &d))
				ck_pr_stall();
	}
	return NULL;
}

/* ns per item, consumer side, for one configuration. */
static double run(ring_kind kind, uint32_t producers, uint64_t items)
{
	ring_bench b = {.items_per_producer = items / producers, .producers = producers, .kind = kind};
	b.slots = calloc(1024, sizeof(*b.slots));
	b.dslots = aligned_alloc(64, 1024 * sizeof(*b.dslots));
	memset(b.dslots, 0, 1024 * sizeof(*b.dslots));
	ck_ring_init(&b.ring, 1024);
	tkv__dring_init(&b.dring, b.dslots, 1024);
	struct tkv_runtime *frt = calloc(1, sizeof(*frt));
	b.mq = aligned_alloc(64, sizeof(*b.mq));
	memset(b.mq, 0, sizeof(*b.mq));
	frt->cfg.ring_slots = 1024;
	b.mq->rt = frt;
	pthread_mutex_init(&b.mq->mq_lock, NULL);
	if (tkv__mq_init(b.mq))
		fprintf(stderr, "tierkv-bench ring: out of memory\n");
	tkv__desc batch[16];
	tkv__dring_got taken[16]; /* no thieves or waiters here: all TAKEN */
	uint32_t in_batch = 0, next_in_batch = 0;
	pthread_t th[2];
	for (uint32_t i = 0; i < producers; i++)
		pthread_create(&th[i], NULL, producer_main, &b);
	uint64_t total = b.items_per_producer * producers, got = 0, sum = 0;
	tkv__desc d;
	uint64_t t0 = bench_now_ns();
	ck_pr_store_32(&b.go, 1);
	while (got < total) {
		if (kind == MUTEX && next_in_batch == in_batch) {
			in_batch = tkv__mq_pop_batch(b.mq, batch, taken, 16);
			next_in_batch = 0;
		}
		bool ok = kind == MUTEX ? (next_in_batch < in_batch ? (d = batch[next_in_batch++], true)
								    : false)
			  : kind == DRING    ? tkv__dring_pop_sc(&b.dring, &d)
			  : kind == CK_MPSC ? ck_ring_dequeue_mpsc_tkv__desc(&b.ring, b.slots, &d)
					    : ck_ring_dequeue_spsc_tkv__desc(&b.ring, b.slots, &d);
		if (ok) {
			sum += d.pos;
			got++;
		} else {
			ck_pr_stall();
		}
	}
	double ns = (double)(bench_now_ns() - t0) / (double)total;
	for (uint32_t i = 0; i < producers; i++)
		pthread_join(th[i], NULL);
	free(b.slots);
	free(b.dslots);
	tkv__mq_fini(b.mq);
	free(b.mq);
	free(frt);
	if (sum == 0)
		fprintf(stderr, "tierkv-bench ring: nothing moved\n");
	return ns;
}

int bench_ring_main(int argc, char **argv)
{
	uint64_t items = 20u * 1000 * 1000;
	int reps = 3;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--items") && i + 1 < argc) {
			if (bench_opt_u64("ring", "--items", argv[++i], 1, 1ull << 40, &items))
				return 2;
		} else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
			if (bench_opt_int("ring", "--reps", argv[++i], 1, 1000, &reps))
				return 2;
		} else {
			fprintf(stderr, "usage: tierkv-bench ring [--items N] [--reps N]\n");
			return 2;
		}
	}
	struct {
		const char *name;
		ring_kind kind;
		uint32_t producers;
	} cases[] = {{"spsc", CK_SPSC, 1}, {"mpsc", CK_MPSC, 1}, {"mpsc-2p", CK_MPSC, 2},
		     {"dring", DRING, 1},  {"dring-2p", DRING, 2}, {"mutex", MUTEX, 1},
		     {"mutex-2p", MUTEX, 2}};
	printf("# tierkv-bench ring: %llu descriptors of %zu bytes through a 1024-slot ring,\n"
	       "# best of %d; ns per item = consumer wall time / items (pipelined)\n",
	       (unsigned long long)items, sizeof(tkv__desc), reps);
	printf("%-10s %10s\n", "topology", "ns/item");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		double best = 0;
		for (int r = 0; r < reps; r++) {
			double ns = run(cases[c].kind, cases[c].producers, items);
			if (best == 0 || ns < best)
				best = ns;
		}
		printf("%-10s %10.1f\n", cases[c].name, best);
	}
	return 0;
}
