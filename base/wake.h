/*
 * wake.h - the one sleep/wake primitive: an event count over a futex.
 *
 * Every place a thread sleeps until another thread makes something true (an
 * idle worker until a store arrives, a ticket until its layer is copied, the
 * evictor until the hot tier passes its watermark, a store until hot space is
 * freed, a reader until a promotion publishes its block) uses it the same way:
 *
 *   waiter                                  signaler
 *   for (;;) {                              make the condition true
 *     if (cond) break;                      tkv__wake_signal(&w)
 *     t = tkv__wake_prepare(&w);     (W1)     (S1: full fence, then load
 *     if (cond) { tkv__wake_cancel(&w);            the waiter count)
 *                 break; }
 *     tkv__wake_wait(&w, t, timeout);
 *   }
 *
 * W1 announces the waiter (count + 1) and issues a full fence before the
 * waiter re-checks its condition; S1 issues a full fence after the signaler
 * made the condition true and before it reads the count. Of two threads each
 * storing then loading across a full fence, at least one sees the other's
 * store: either the waiter sees the condition, or the signaler sees the
 * waiter and bumps `seq`, which makes the waiter's futex wait return (the
 * kernel compares `seq` with the ticket atomically with going to sleep).
 *
 * A signal with no announced waiter costs a fence and one load: no atomic
 * read-modify-write, no system call. That is what the hot paths need: a
 * worker signals after every batch it copies and a producer after every
 * push, and almost always nobody sleeps.
 *
 * W2/S2, the arm: `seq` is odd while some waiter may sleep on its value and
 * even once a signal has taken that value. prepare makes an even seq odd
 * (one CAS; a waiter finding it odd shares the value) before W1's fence,
 * and that odd value is the ticket; a thread sleeps in the kernel only
 * while seq equals its odd ticket. A signal that sees waiters but an even
 * seq returns: a waiter that armed before the last signal was (or is being)
 * woken by it and has only not run yet (its futex wait returns at once if
 * it has not slept); one announced but not yet armed arms after our read
 * of seq and then re-checks, so by the same fence argument it sees the
 * condition. The signal whose CAS takes seq from odd to even makes the
 * system call, then records that even value in `woken` (S3). A signal
 * that finds seq even skips the call only if `woken` holds that value:
 * otherwise the winner may have been preempted between its CAS and its
 * call (with more threads than cores that can last a time slice, while
 * every producer's kick found nothing to do and the worker slept on), so
 * it wakes the sleepers itself. Every redundant call this saves is one
 * made after the winner's call returned, which is the common case. Why:
 * a woken thread stays announced until it runs, tens of microseconds on
 * this VM, and a producer pushing 16 layers to a worker in that time made
 * a FUTEX_WAKE for each: the held-out style program made 11 futex calls
 * per engine batch at 1 engine thread, 3.0-4.4 with the arm
 * (docs/MEASUREMENTS.md, "One wake-up system call per sleep").
 *
 * Users: worker idle (runtime/worker.c), ticket completion (one per layer,
 * runtime/completion.c), the evictor (tiers/evictor.c), hot-tier space
 * (tiers/hot.c), promotion waiters and the idle prefetch thread
 * (tiers/promote.c), producers on a full worker queue until it is back to
 * half (runtime/store.c, runtime/worker.c), tkv_open until every worker
 * has started and populated its pool (runtime/worker.c). The bench-only mutex queue
 * (runtime/queue_mutex.c) sleeps here too, so the baseline shares the
 * ring's idle policy. One mutex
 * + condition variable pair remains on purpose: the trace writer thread
 * (base/trace.c), which naps flush_ms between passes whatever happens.
 *
 * Wake-ups are for everyone announced on that event count; a protocol that
 * wants fewer wake-ups uses more event counts (one per layer for tickets,
 * runtime/completion.c) or a target (the layer's lowest awaited position).
 *
 * Why not ck_ec (Concurrency Kit's event count, made for this): its
 * single-producer fast path increments the counter with inline assembly
 * (`incl`/`xaddl`) that ThreadSanitizer cannot see, so our TSan builds, which
 * rewrite ck_pr's loads and stores into __atomic builtins (runtime/
 * ck-tsan.cmake), would report every wake as a race; and every ck_ec signal
 * is an atomic add on the counter even with no waiter, where ours is a load.
 *
 * The futex word carries no data: whatever the waiter acts on is published
 * with its own release/acquire (or the fences above), so TSan sees the
 * ordering through those atomics and not through the system call.
 */
#ifndef TKV_BASE_WAKE_H
#define TKV_BASE_WAKE_H

#include <stdint.h>

typedef struct tkv__wake {
	uint32_t seq;     /* futex word: odd while armed (W2), made even by a signal (S2) */
	uint32_t waiters; /* announced waiters (prepare .. wait/cancel) */
	uint32_t woken;   /* the even seq whose FUTEX_WAKE has returned (S3) */
} tkv__wake;

/* Announces a waiter; returns the ticket to pass to tkv__wake_wait. The
 * caller must re-check its condition after this (see above). */
uint32_t tkv__wake_prepare(tkv__wake *w);
/* Sleeps until a signal after the prepare that returned `ticket`, or
 * timeout_ns (0: no limit), or a spurious wake-up; withdraws the waiter. */
void tkv__wake_wait(tkv__wake *w, uint32_t ticket, uint64_t timeout_ns);
/* Withdraws a prepared waiter that found its condition true. */
void tkv__wake_cancel(tkv__wake *w);
/* Wakes every announced waiter; a fence and a load when there is none. */
void tkv__wake_signal(tkv__wake *w);

#endif
