/*
 * thread_name.h - names the runtime's own threads ("tkv-worker-0",
 * "tkv-evictor", ...) so that top -H, perf --sort comm, gdb and
 * /proc/PID/task/TID/comm tell them apart from the engine's threads.
 */
#ifndef TKV_BASE_THREAD_NAME_H
#define TKV_BASE_THREAD_NAME_H

#include <pthread.h>

/* Best effort: a name the kernel refuses leaves the thread as it was (its
 * name is a diagnostic, never a reason to fail an open). Longer names are
 * cut to the kernel's 15 bytes. */
void tkv__thread_name(pthread_t t, const char *name);

#endif
