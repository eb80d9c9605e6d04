/*
 * wake.c - the event count of wake.h.
 */
#include "base/wake.h"
#include "base/fence.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>

uint32_t tkv__wake_prepare(tkv__wake *w)
{
	ck_pr_inc_32(&w->waiters);
	/* Arm: an even seq means no one has slept on it since the last signal
	 * (W2, wake.h); make it odd, the value we will sleep on. */
	uint32_t s = ck_pr_load_32(&w->seq);
	while (!(s & 1) && !ck_pr_cas_32_value(&w->seq, s, s + 1, &s))
		;
	if (!(s & 1))
		s++; /* our CAS armed it */
	/* W1: the announcement and the arm before the caller's re-check. */
	tkv__fence_full();
	return s;
}

void tkv__wake_cancel(tkv__wake *w)
{
	ck_pr_dec_32(&w->waiters);
}

void tkv__wake_wait(tkv__wake *w, uint32_t ticket, uint64_t timeout_ns)
{
	struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
	syscall(SYS_futex, &w->seq, FUTEX_WAIT_PRIVATE, ticket, timeout_ns ? &ts : NULL, NULL, 0);
	ck_pr_dec_32(&w->waiters);
}

void tkv__wake_signal(tkv__wake *w)
{
	/* S1: the caller's condition store before the waiters load (wake.h). */
	tkv__fence_full();
	if (!ck_pr_load_32(&w->waiters))
		return;
	/* S2: only a waiter that armed seq since the last signal may sleep;
	 * the rest were woken by that signal (wake.h). The CAS fails only if
	 * another signal took the value, or a waiter armed the one after. */
	uint32_t s = ck_pr_load_32(&w->seq);
	while (s & 1) {
		if (ck_pr_cas_32_value(&w->seq, s, s + 1, &s)) {
			syscall(SYS_futex, &w->seq, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
			/* S3: after the call returned */
			ck_pr_fence_release();
			ck_pr_store_32(&w->woken, s + 1);
			return;
		}
	}
	/* Even: skip the call only once the signal that made it so has made
	 * its own (wake.h, S3). */
	if (ck_pr_load_32(&w->woken) != s)
		syscall(SYS_futex, &w->seq, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}
