/*
 * wake.c - the event count of wake.h.
 */
#include "base/wake.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>

uint32_t tkv__wake_prepare(tkv__wake *w)
{
	ck_pr_inc_32(&w->waiters);
	/* W1: the announcement before the caller's re-check (wake.h). */
	ck_pr_fence_memory();
	return ck_pr_load_32(&w->seq);
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
	ck_pr_fence_memory();
	if (!ck_pr_load_32(&w->waiters))
		return;
	ck_pr_inc_32(&w->seq);
	syscall(SYS_futex, &w->seq, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}
