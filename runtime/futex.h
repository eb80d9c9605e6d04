/*
 * futex.h - sleeping and waking on a 32-bit word, for idle workers and for
 * threads waiting on tickets (invariant 6: idle threads sleep).
 *
 * The futex carries no data: every value a sleeper acts on is published with
 * ck_pr release/acquire (or a full fence) before the wake, so ThreadSanitizer
 * sees the ordering through those atomics and not through the syscall.
 */
#ifndef TKV_RUNTIME_FUTEX_H
#define TKV_RUNTIME_FUTEX_H

#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *word == expected, at most timeout_ns (0: no limit). Spurious
 * returns are allowed: callers re-check their condition in a loop. */
static inline void tkv__futex_wait(uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
	struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, timeout_ns ? &ts : NULL, NULL, 0);
}

static inline void tkv__futex_wake_all(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

static inline void tkv__futex_wake_one(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static inline uint64_t tkv__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
