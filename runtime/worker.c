/*
 * worker.c - the worker threads: each drains its ring in order, copies each
 * batch into the hot blocks of the layers it owns, then publishes the layer's
 * done_pos. A worker with nothing of its own copies batches queued for
 * another one (Stealing, below); their owner still completes them in order.
 * Idle workers spin briefly (a store usually follows a store),
 * then yield the CPU a few times, then sleep on their event count
 * (base/wake.h), so an idle runtime uses no CPU (invariant 6).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ck_pr.h>

#include "base/error.h"
#include "base/thread_name.h"
#include "runtime/copy_batch.h"
#include "runtime/runtime.h"
#include "runtime/topology.h"

/*
 * Idle policy, the same for the ring and the bench's mutex queue: IDLE_SPINS
 * empty polls with a pause (~4 us here, a pause being ~30 ns on this Zen 4:
 * covers the gap between an engine's back-to-back stores), then
 * IDLE_YIELDS polls each after sched_yield, then
 * sleep until a producer's kick. The worker is pinned, so the threads it
 * competes with are the engine threads on its own core, the very ones that
 * would give it work: before issue 11 it spun 4096 pauses (~120 us) before
 * sleeping, and with more engine threads than cores those spins, on both
 * cores after every batch, were time the producers did not get. A yield
 * hands the core to a runnable producer at once and returns at once when
 * there is none, so a lone engine thread still finds its worker awake.
 */
enum { IDLE_SPINS = 128, IDLE_YIELDS = 16 };

/*
 * Groups. With a hot tier larger than the LLC the copies use non-temporal
 * stores, and the fence that must come before a ticket completes
 * (kernels.h) waits until the write-combining buffers have reached memory:
 * a fence after each K and each V copy (4 KiB each for one f32 token), as
 * the fenced kernel did, held the 1-worker batch-1 point near 0.5 of the
 * copy limit on this Zen 4 (docs/MEASUREMENTS.md). So a worker takes up to
 * GROUP_MAX descriptors that are queued now (it never waits for more: a
 * lone store completes as soon as it is copied), copies them, and fences
 * once per run of them whose K+V fits in GROUP_BYTES, then completes that
 * run in order. A descriptor that would take a run past GROUP_BYTES starts
 * the next one, so a ticket waits for at most GROUP_BYTES of other copies
 * (~75 us here at 14 GB/s), plus whatever hands the full blocks among them
 * on (tkv__unit_block_full: the cache's publish, a write-through's copy),
 * before it completes; only behind copies already queued when the group
 * was taken, which a worker that did not group would have made first
 * anyway. Why 1 MiB, not 256 KiB: the trace of 1 worker at batch 16 put a
 * mean 0.64 us between two copies where a fence and completions came, and
 * 0.06 us elsewhere; at two 128 KiB descriptors per run that was 3% of the
 * worker's time (docs/MEASUREMENTS.md, "Runs of 1 MiB"). With regular
 * stores there is no fence to share, and every descriptor completes right
 * after its copy. Both queues group the same way (the mutex queue pops its
 * GROUP_MAX at once). A thief's group stops at STEAL_GROUP_BYTES: it takes
 * work the owner would otherwise do itself (Stealing).
 */
enum { GROUP_MAX = 16, GROUP_BYTES = 1 << 20, STEAL_GROUP_BYTES = 256 << 10 };

/*
 * Stealing. Layers are spread over the workers (layer % n_workers), which
 * splits the work evenly, but not the time: an engine thread runs on some
 * core, and the worker pinned there gets what the engine leaves. With
 * 2 workers at batch 16 one worker copied 77% of the time and the other
 * 93%, the faster one's queue ran dry while the engine waited on the slower
 * one's full queue, and at each pass end it idled 2-13 ms while the other
 * drained (docs/MEASUREMENTS.md, "Where 2 workers lose their time"). So a
 * worker that finds its own queue empty copies up to a group of another
 * worker's queued descriptors (newest first: the owner reaches them last,
 * so it rarely waits for the thief), fences, and marks them copied; the
 * owner takes them in queue order like any other and only completes them
 * (desc_ring.h, DR5-DR7). Completion order stays acceptance order, so
 * tickets and done_pos mean what they did; two workers may now write rows
 * of one block at once (distinct rows; a block is allocated by the batch
 * it starts in, tkv__batch_prepare), and a full block is handed on at its
 * completion, in order, not at its copy. A thief gives back, uncopied,
 * a batch whose blocks are not all there (an allocation failure, or a
 * block whose first batch is still queued): failures are met by owners
 * in order (tkv__batch_copy). With one worker there is no one to steal
 * from, and unless ticket waiters copy their own batches (copy_ahead.c)
 * the owner's pop takes no claim (tkv__dring_pop_sc). A thief leaves
 * the owner the next TKV__STEAL_LEAVE queued descriptors: taking batches
 * the owner was about to take (engines that store a step's layers and
 * wait for their tickets keep short queues) made the owner wait for them,
 * often asleep; the held-out style program at 2 engine threads fell from
 * 5.2 to 4.0 M layer-tokens/s at the median (MEASUREMENTS.md). And an
 * idle worker looks at the others' queues when it runs dry, every
 * STEAL_EVERY empty polls and before it sleeps, not at every poll: each
 * look reads two lines the producers and the owner write. A worker asleep
 * is woken by its own queue's kicks only: an engine that stores only
 * another worker's layers for a while gets no stealing then.
 */
enum { STEAL_PROBES = 4 * GROUP_MAX, STEAL_EVERY = 32 };

/* Descriptors still queued (the ring: claimed, not taken; a snapshot). */
static uint64_t queued(tkv__worker *w)
{
	if (w->rt->queue == TKV__QUEUE_MUTEX)
		return (uint32_t)(ck_pr_load_32(&w->mq_tail) - w->mq_head);
	return tkv__dring_size(&w->ring);
}

/*
 * Wakes producers that sleep on a full queue (store.c, push) once at most
 * half of it is left. Looked at every eighth of the queue (every pop of a
 * queue under 8 slots), not after every descriptor: reading the ring's head
 * pulls the producers' cache line, and the signal's fence is not free
 * either. Nor when the worker runs dry: at batch 1 that is after nearly
 * every descriptor, and the fence and the head read there cost the 1-worker
 * batch-1 point ~10% (0.53 -> 0.47 of the copy limit).
 *
 * Why no wake-up is lost. A producer sleeps only after it announced itself
 * and then saw the queue full (base/wake.h, W1), so every check after the
 * worker's next pop sees it (S1). The queue held slots - 1 then, so at
 * least one check comes after that pop. A check that finds more than half
 * queued leaves over slots/2 descriptors to pop, more than the distance to
 * the next check (slots/8, or 1; a group of up to GROUP_MAX only moves
 * the check to the end of the group's pops), so another check always
 * follows one that did not signal, and the checks end only at one that did. While other
 * producers keep every check over half, a sleeper waits out its bounded
 * nap (store.c) though there is room: fairness, not a lost wake-up.
 */
static void room_check(tkv__worker *w, uint64_t taken)
{
	if (taken < w->room_next)
		return;
	const uint32_t slots = w->rt->cfg.ring_slots;
	w->room_next = taken + (slots >= 8 ? slots / 8 : 1);
	if (queued(w) <= slots / 2)
		tkv__wake_signal(&w->room);
}

static uint64_t desc_bytes(const tkv__worker *w, const tkv__desc *d)
{
	return (uint64_t)d->n_tokens * w->rt->geo.layer_token_bytes;
}

/* Copies d (bytes of K+V) into its hot blocks. Not yet readable:
 * complete_run publishes it. */
static void copy_one(tkv__worker *w, const tkv__desc *d, uint64_t bytes)
{
	uint64_t t0 = tkv__trace_begin(w->tb);
	tkv__batch_copy(w->rt, d);
	tkv__trace_end(w->tb, TKV__TRACE_COPY, t0, d->layer, bytes);
	/* Stats before completing: after its completion d's sequence may be
	 * freed, and complete_run reads only what it needs before that. */
	ck_pr_store_64(&w->tokens, w->tokens + d->n_tokens);
	ck_pr_store_64(&w->bytes, w->bytes + bytes);
	ck_pr_store_64(&w->batches, w->batches + 1);
}

/* One fence for the run's streamed stores, then each ticket in copy order
 * (a layer's batches complete in acceptance order, runtime.h). One its
 * waiter completed (DONE) is only counted: its sequence may be gone. */
static void complete_run(tkv__worker *w, const tkv__desc *d, const tkv__dring_got *got,
			 uint32_t n)
{
	if (w->rt->hot_streams) {
		tkv__stream_fence();
		ck_pr_store_64(&w->runs, w->runs + 1);
	}
	for (uint32_t i = 0; i < n; i++) {
		if (got[i] == TKV__DRING_DONE) {
			ck_pr_store_64(&w->completed, w->completed + 1);
			continue;
		}
		tkv__batch_hand_on(w->rt, &d[i]);
		tkv__trace_instant(w->tb, TKV__TRACE_TICKET_DONE, (uint32_t)d[i].seq->id,
				   d[i].pos + d[i].n_tokens);
		tkv__layer_complete(&d[i].seq->layers[d[i].layer], d[i].pos + d[i].n_tokens);
		/* after the hand-on: copies_pending (runtime.c) counts until here */
		ck_pr_store_64(&w->completed, w->completed + 1);
	}
}

/* n descriptors of a group, copied (but those a thief or their waiter
 * copied) and completed in runs (see Groups). */
static void process_span(tkv__worker *w, const tkv__desc *d, const tkv__dring_got *got,
			 uint32_t n)
{
	uint32_t first = 0;
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < n; i++)
		if (got[i] == TKV__DRING_TAKEN)
			tkv__batch_prepare(w->rt, &d[i], false);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t b = got[i] == TKV__DRING_TAKEN ? desc_bytes(w, &d[i]) : 0;
		if (i > first && (!w->rt->hot_streams || bytes + b > GROUP_BYTES)) {
			complete_run(w, d + first, got + first, i - first);
			first = i;
			bytes = 0;
		}
		if (got[i] == TKV__DRING_TAKEN)
			copy_one(w, &d[i], b);
		bytes += b;
	}
	if (n)
		complete_run(w, d + first, got + first, n - first);
}

/* A group, in spans: one that meets a batch whose layer has an earlier
 * batch a ticket's waiter took and is still completing (copy_ahead.c)
 * ends before it, and the next starts once that batch completed, so the
 * descriptors before it are not held up. */
static void process_group(tkv__worker *w, const tkv__desc *d, const tkv__dring_got *got,
			  uint32_t n)
{
	while (n) {
		uint32_t k = n;
		if (w->rt->waiter_copies) {
			if (got[0] != TKV__DRING_DONE)
				tkv__wait_taken(&d[0]);
			for (k = 1; k < n; k++)
				if (got[k] != TKV__DRING_DONE && tkv__taken_pending(&d[k]))
					break;
		}
		process_span(w, d, got, k);
		d += k;
		got += k;
		n -= k;
	}
}

/* Thief: claims up to a group of victim v's queued descriptors, newest
 * first, skipping the positions it stole there last time (the owner has
 * not taken those yet). Returns how many; pos[i] is d[i]'s position. */
static uint32_t steal_scan(tkv__worker *w, tkv__worker *v, tkv__desc *d, uint64_t *pos)
{
	const bool ring = w->rt->queue == TKV__QUEUE_RING;
	uint64_t head, tail;
	if (ring) {
		tail = tkv__dring_tail(&v->ring);
		head = tkv__dring_claimed(&v->ring);
	} else {
		tkv__mq_span(v, &tail, &head);
	}
	if (head - tail <= TKV__STEAL_LEAVE)
		return 0;
	tail += TKV__STEAL_LEAVE; /* the owner's next ones stay its own */
	if (w->steal_victim != v->index || w->steal_hi < tail)
		w->steal_lo = w->steal_hi = UINT64_MAX; /* nothing of ours left there */
	uint32_t n = 0;
	uint64_t bytes = 0;
	for (uint64_t p = head, probes = 0; p > tail && probes < STEAL_PROBES; probes++) {
		p--;
		if (p <= w->steal_hi && p >= w->steal_lo) {
			p = w->steal_lo; /* the loop's p-- goes below */
			continue;
		}
		bool got = ring ? tkv__dring_steal(&v->ring, p, &d[n]) : tkv__mq_steal(v, p, &d[n]);
		if (!got)
			continue;
		pos[n++] = p;
		bytes += desc_bytes(w, &d[n - 1]);
		if (n == GROUP_MAX || bytes >= STEAL_GROUP_BYTES)
			break;
	}
	if (n) {
		uint64_t lo = pos[n - 1], hi = pos[0];
		bool joins = w->steal_victim == v->index && w->steal_lo != UINT64_MAX &&
			     hi + 1 >= w->steal_lo && lo <= w->steal_hi + 1;
		w->steal_victim = v->index;
		w->steal_lo = joins && w->steal_lo < lo ? w->steal_lo : lo;
		w->steal_hi = joins && w->steal_hi > hi ? w->steal_hi : hi;
	}
	return n;
}

/* Thief: copies a group of another worker's descriptors (Stealing) and
 * hands them back copied; false when no other worker has any to spare. A
 * descriptor whose blocks cannot all be had goes back uncopied: what to
 * give back on an allocation failure depends on the batches before it
 * (tkv__batch_copy), so only the owner, in order, meets one. */
static bool steal_group(tkv__worker *w)
{
	struct tkv_runtime *rt = w->rt;
	const bool ring = rt->queue == TKV__QUEUE_RING;
	tkv__desc d[GROUP_MAX];
	uint64_t pos[GROUP_MAX];
	bool ok[GROUP_MAX];
	for (uint32_t k = 1; k < rt->n_workers; k++) {
		tkv__worker *v = &rt->workers[(w->index + k) % rt->n_workers];
		uint32_t n = steal_scan(w, v, d, pos), copied = 0;
		if (!n)
			continue;
		for (uint32_t i = 0; i < n; i++)
			tkv__batch_prepare(rt, &d[i], true);
		for (uint32_t i = 0; i < n; i++)
			if ((ok[i] = tkv__batch_blocks_ready(rt, &d[i]))) {
				copy_one(w, &d[i], desc_bytes(w, &d[i]));
				copied++;
			}
		if (rt->hot_streams)
			tkv__stream_fence(); /* DR5: the rows before COPIED */
		for (uint32_t i = 0; i < n; i++) {
			if (ring)
				ok[i] ? tkv__dring_mark_copied(&v->ring, pos[i])
				      : tkv__dring_return(&v->ring, pos[i]);
			else
				ok[i] ? tkv__mq_mark_copied(v, pos[i]) : tkv__mq_return(v, pos[i]);
		}
		ck_pr_store_64(&w->stolen, w->stolen + copied);
		if (copied)
			ck_pr_store_64(&w->steal_groups, w->steal_groups + 1);
		tkv__wake_signal(&v->idle); /* the owner may wait at one of them */
		return copied > 0;
	}
	return false;
}

/* Nothing to take now: an empty queue, or (ring) a claimed slot whose
 * producer has not published it yet; its kick after publishing wakes us. */
static bool queue_idle(tkv__worker *w)
{
	return w->rt->queue == TKV__QUEUE_MUTEX ? tkv__mq_idle(w) : tkv__dring_idle(&w->ring);
}

/* Sleeps until a producer pushes or stop is set (base/wake.h: the queue
 * and stop are the condition, re-checked after announcing ourselves). */
static void idle_sleep(tkv__worker *w)
{
	uint32_t t = tkv__wake_prepare(&w->idle);
	if (queue_idle(w) && !ck_pr_load_32(&w->rt->stop))
		tkv__wake_wait(&w->idle, t, 0);
	else
		tkv__wake_cancel(&w->idle);
}

/* One step of the idle policy after `idle` empty polls; the next count. */
static unsigned idle_step(tkv__worker *w, unsigned idle)
{
	if (idle < IDLE_SPINS) {
		ck_pr_stall();
		return idle + 1;
	}
	if (idle < IDLE_SPINS + IDLE_YIELDS) {
		sched_yield();
		return idle + 1;
	}
	idle_sleep(w);
	return 0;
}

void tkv__test_pause(struct tkv_runtime *rt, bool paused)
{
	if (!paused) {
		ck_pr_store_32(&rt->paused, 0);
		return;
	}
	/* A generation, so that an acknowledgement of an earlier pause does
	 * not count; each worker is kicked out of its idle sleep to see it. */
	uint32_t gen = ++rt->pause_gen ? rt->pause_gen : ++rt->pause_gen;
	ck_pr_store_32(&rt->paused, gen);
	for (uint32_t i = 0; i < rt->n_workers; i++) {
		tkv__worker *w = &rt->workers[i];
		while (ck_pr_load_32(&w->pause_seen) != gen) {
			tkv__wake_signal(&w->idle);
			sched_yield();
		}
	}
}

void tkv__test_hold(struct tkv_runtime *rt, uint32_t worker, bool held)
{
	ck_pr_store_32(&rt->workers[worker].held, held);
	ck_pr_fence_release(); /* before a tkv__test_pause(rt, false) that follows */
}

void tkv__worker_kick(tkv__worker *w)
{
	tkv__wake_signal(&w->idle); /* after the push: the slot is the condition */
}

/* What a worker does before its loop: its pin (best effort: a refused one
 * is counted in pin_failures), its trace buffer, and with
 * hot_populate at open its own pool's share of the hot tier, faulted in on
 * its own core when it is pinned (so the pages come from that core's NUMA
 * node, as blocks it allocated on first use did; workers on distinct cores
 * populate at once). Then it tells the opener, who waits for every worker
 * (tkv__workers_start). */
static void worker_start(tkv__worker *w)
{
	struct tkv_runtime *rt = w->rt;
	if (w->pin_cpu >= 0) {
		if (tkv__pin_self(w->pin_cpu) == 0)
			ck_pr_store_32((uint32_t *)&w->cpu, (uint32_t)w->pin_cpu);
		else
			ck_pr_inc_32(&rt->pin_failures);
	}
	char name[32];
	snprintf(name, sizeof(name), "worker-%u", w->index);
	w->tb = tkv__tracer_thread(rt->tracer, name);
	if (rt->cfg.hot_populate == TKV_HOT_POPULATE_AT_OPEN) {
		int rc = tkv__hot_populate_pool(&rt->hot, w->index, rt->cfg.n_layers,
						&w->populate_share);
		ck_pr_store_32((uint32_t *)&w->populate_rc, (uint32_t)rc);
	}
	ck_pr_fence_release(); /* our results before the count the opener reads */
	ck_pr_dec_32(&rt->starting);
	tkv__wake_signal(&rt->started);
}

/* Takes a group: up to GROUP_MAX descriptors queued now, in order, and
 * which of them a thief copied or a waiter completed. The bench's mutex
 * queue takes its group under one lock acquisition. */
static uint32_t pop_group(tkv__worker *w, tkv__desc *d, tkv__dring_got *got)
{
	if (w->rt->queue == TKV__QUEUE_MUTEX)
		return tkv__mq_pop_batch(w, d, got, GROUP_MAX);
	uint32_t n = 0;
	if (w->rt->n_workers == 1 && !w->rt->waiter_copies) {
		for (; n < GROUP_MAX && tkv__dring_pop_sc(&w->ring, &d[n]); n++)
			got[n] = TKV__DRING_TAKEN;
		return n;
	}
	for (; n < GROUP_MAX; n++) {
		got[n] = tkv__dring_pop_shared(&w->ring, &d[n]);
		if (got[n] == TKV__DRING_NONE)
			break;
	}
	return n;
}

/* Nothing queued at all, not even descriptors a thief is copying. */
static bool queue_empty(tkv__worker *w)
{
	return w->rt->queue == TKV__QUEUE_MUTEX ? tkv__mq_empty(w)
						: tkv__dring_size(&w->ring) == 0;
}

static void *worker_main(void *arg)
{
	tkv__worker *w = arg;
	tkv__desc d[GROUP_MAX];
	tkv__dring_got got[GROUP_MAX];
	unsigned idle = 0;
	uint64_t taken = 0;
	worker_start(w);
	for (;;) {
		uint32_t pause = ck_pr_load_32(&w->rt->paused);
		ck_pr_fence_acquire(); /* a hold set before the pause ended */
		if (CK_CC_UNLIKELY(pause || ck_pr_load_32(&w->held))) {
			if (pause) /* tkv__test_pause waits for it */
				ck_pr_store_32(&w->pause_seen, pause);
			usleep(100);
			continue;
		}
		uint32_t n = pop_group(w, d, got);
		if (n) {
			taken += n;
			room_check(w, taken); /* the slots are free already */
			process_group(w, d, got, n);
			idle = 0;
			continue;
		}
		/* The front is a thief's or a waiter's copy: copy what is
		 * behind it rather than wait (copy_ahead.c). */
		if (w->rt->queue == TKV__QUEUE_MUTEX || w->rt->n_workers > 1 ||
		    w->rt->waiter_copies) {
			uint32_t ahead = tkv__owner_copy_ahead(w);
			if (ahead) {
				idle = 0;
				continue;
			}
		}
		/* and always right before the idle step that sleeps */
		if (w->rt->n_workers > 1 &&
		    (idle % STEAL_EVERY == 0 || idle >= IDLE_SPINS + IDLE_YIELDS) &&
		    steal_group(w)) {
			idle = 0;
			continue;
		}
		/* Stop only once the queue is drained, the descriptors a thief
		 * copies included: close completes every accepted store. */
		if (ck_pr_load_32(&w->rt->stop) && queue_empty(w))
			break;
		idle = idle_step(w, idle);
	}
	return NULL;
}

/* A worker's queue and identity, before any worker thread runs: a worker
 * may steal from any other's queue as soon as it starts. */
static int init_one(struct tkv_runtime *rt, tkv__worker *w, uint32_t i)
{
	w->rt = rt;
	w->index = i;
	w->cpu = -1;
	w->steal_victim = UINT32_MAX; /* nothing stolen yet (steal_scan) */
	w->steal_lo = w->steal_hi = UINT64_MAX;
	w->slots = aligned_alloc(64, rt->cfg.ring_slots * sizeof(*w->slots));
	if (!w->slots)
		return tkv__fail(-ENOMEM, "open: ring of %u slots", rt->cfg.ring_slots);
	memset(w->slots, 0, rt->cfg.ring_slots * sizeof(*w->slots)); /* nothing published */
	tkv__dring_init(&w->ring, w->slots, rt->cfg.ring_slots);
	pthread_mutex_init(&w->mq_lock, NULL);
	w->mq_ready = true;
	if (rt->queue == TKV__QUEUE_MUTEX && tkv__mq_init(w))
		return tkv__fail(-ENOMEM, "open: queue of %u slots", rt->cfg.ring_slots);
	return 0;
}

static int start_one(tkv__worker *w, uint32_t i, int cpu)
{
	/* The worker pins itself first thing (worker_start), before it
	 * populates its pool. Not through the creation attributes: a pin
	 * refused there (EINVAL for a CPU that left the cpuset, EPERM from a
	 * sandbox) fails pthread_create, and glibc before 2.34 leaked the
	 * half-made thread. A pin is best effort (tierkv.h); only a thread
	 * that cannot be created fails the open. */
	w->pin_cpu = cpu;
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc)
		return tkv__fail(-rc, "open: cannot start worker %u", i);
	char name[24]; /* cut to 15 bytes: "tkv-worker-" and up to 4 digits */
	snprintf(name, sizeof(name), "tkv-worker-%u", i);
	tkv__thread_name(w->thread, name);
	w->started = true;
	return 0;
}

/* Sleeps until every worker has started (worker_start); then the pools'
 * population results. */
static int wait_started(struct tkv_runtime *rt)
{
	while (ck_pr_load_32(&rt->starting)) {
		uint32_t t = tkv__wake_prepare(&rt->started);
		if (!ck_pr_load_32(&rt->starting)) {
			tkv__wake_cancel(&rt->started);
			break;
		}
		tkv__wake_wait(&rt->started, t, 0);
	}
	ck_pr_fence_acquire(); /* the workers' results after their counts */
	for (uint32_t i = 0; i < rt->n_workers; i++) {
		tkv__worker *w = &rt->workers[i];
		if (ck_pr_load_32((uint32_t *)&w->populate_rc))
			return tkv__fail(-ENOMEM, "open: cannot populate the hot tier (worker %u's "
					 "share: %llu blocks of %zu bytes; config.hot_populate)",
					 i, (unsigned long long)w->populate_share,
					 rt->hot.block_bytes);
	}
	return 0;
}

int tkv__workers_start(struct tkv_runtime *rt, const int *cpus, int n_cpus)
{
	rt->workers = aligned_alloc(64, sizeof(tkv__worker) * rt->n_workers);
	if (!rt->workers)
		return tkv__fail(-ENOMEM, "open: workers");
	memset(rt->workers, 0, sizeof(tkv__worker) * rt->n_workers);
	for (uint32_t l = 0; l < rt->cfg.n_layers; l++)
		tkv__worker_of(rt, l)->n_layers_owned++;
	rt->starting = rt->n_workers; /* before any worker runs */
	for (uint32_t i = 0; i < rt->n_workers; i++) {
		int rc = init_one(rt, &rt->workers[i], i);
		if (rc)
			return rc; /* caller runs tkv__workers_stop (and _free) */
	}
	for (uint32_t i = 0; i < rt->n_workers; i++) {
		int cpu = (rt->cfg.pin_workers && n_cpus > 0) ? cpus[i % (uint32_t)n_cpus] : -1;
		int rc = start_one(&rt->workers[i], i, cpu);
		if (rc)
			return rc; /* caller runs tkv__workers_stop */
	}
	return wait_started(rt);
}

void tkv__workers_stop(struct tkv_runtime *rt)
{
	if (!rt->workers)
		return;
	ck_pr_store_32(&rt->stop, 1);
	for (uint32_t i = 0; i < rt->n_workers; i++) {
		tkv__worker *w = &rt->workers[i];
		if (!w->started)
			continue;
		tkv__wake_signal(&w->idle); /* stop is set: the condition */
		pthread_join(w->thread, NULL);
	}
}

void tkv__workers_free(struct tkv_runtime *rt)
{
	if (!rt->workers)
		return;
	for (uint32_t i = 0; i < rt->n_workers; i++) {
		if (rt->workers[i].mq_ready)
			tkv__mq_fini(&rt->workers[i]);
		free(rt->workers[i].slots);
	}
	free(rt->workers);
	rt->workers = NULL;
}
