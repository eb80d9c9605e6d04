/*
 * clock.h - the one clock every layer measures with: CLOCK_MONOTONIC in
 * nanoseconds (immune to wall-clock steps; vDSO, no system call).
 */
#ifndef TKV_BASE_CLOCK_H
#define TKV_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t tkv__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
