/*
 * racy_criterion.c - TSan reports raised after a Criterion test body has
 * returned must still fail the run. Built and run only in the TSan
 * configuration; ctest expects each case to be caught (expect_report.sh).
 *
 * Criterion runs a test in a child process and judges the child by its exit:
 * with TSan's halt_on_error=1 alone a late report exits 66 once the body has
 * returned, which Criterion counts as passed. default_options.c adds
 * abort_on_error=1, which turns it into a crash.
 *
 *   late::destructor_race  the body starts a thread that writes `late`; a
 *                          destructor reads it at exit with no
 *                          happens-before: the race is only seen after the
 *                          body and the test's .fini have returned.
 *   late::thread_leak      the body starts a thread and never joins it, as
 *                          a tkv_close that forgot a thread would: TSan
 *                          reports the leak at exit.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int late;        /* the race: written by a thread, read by a destructor */
static int late_armed;  /* only the test that wants it races (not the runner) */
static int late_ready;  /* relaxed atomics only: no happens-before for TSan */

static void *late_writer(void *arg)
{
	(void)arg;
	late = 1;
	__atomic_store_n(&late_ready, 1, __ATOMIC_RELAXED);
	return NULL;
}

__attribute__((destructor)) static void late_reader(void)
{
	if (!late_armed)
		return;
	while (!__atomic_load_n(&late_ready, __ATOMIC_RELAXED))
		sched_yield();
	printf("late = %d\n", late); /* the racy read */
}

Test(late, destructor_race)
{
	pthread_t t;
	late_armed = 1;
	cr_assert_eq(pthread_create(&t, NULL, late_writer, NULL), 0);
	cr_assert_eq(pthread_detach(t), 0); /* detached: no leak report, no join */
}

static pid_t leaked_tid;

static void *leaked_thread(void *arg)
{
	(void)arg;
	__atomic_store_n(&leaked_tid, gettid(), __ATOMIC_RELEASE);
	return NULL;
}

static void start_leaked_thread(void)
{
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, leaked_thread, NULL), 0);
}

Test(late, thread_leak)
{
	char path[64];
	struct stat st;
	start_leaked_thread();
	while (!__atomic_load_n(&leaked_tid, __ATOMIC_ACQUIRE))
		sched_yield();
	/* TSan only reports threads that have finished: wait until the kernel
	 * task is gone, which is after TSan's own thread-exit hook ran. */
	snprintf(path, sizeof(path), "/proc/self/task/%d", (int)leaked_tid);
	while (stat(path, &st) == 0)
		sched_yield();
}
