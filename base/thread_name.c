/*
 * thread_name.c - names the runtime's threads (thread_name.h).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <string.h>

#include "base/thread_name.h"

void tkv__thread_name(pthread_t t, const char *name)
{
	char cut[16]; /* the kernel's TASK_COMM_LEN, terminator included */
	size_t n = strlen(name);
	n = n < sizeof(cut) - 1 ? n : sizeof(cut) - 1;
	memcpy(cut, name, n);
	cut[n] = '\0';
	(void)pthread_setname_np(t, cut);
}
