/*
 * default_options.c - TSan defaults built into every TSan test binary, so a
 * binary run by hand behaves like one run by `ctest --preset tsan`.
 *
 * Why each one:
 *  - halt_on_error=1: with TSan's own defaults a race is printed but the
 *    process still exits 0, so a racy test would pass (shared/FACTS.md).
 *  - abort_on_error=1: without it a report ends the process with exit code
 *    66. Criterion runs each test in a child process and looks at how the
 *    child ended only while the test body runs: a report raised afterwards
 *    (a race first seen in .fini or a destructor, a thread leak at exit
 *    from a close that did not join its thread) exits 66 during teardown
 *    and the test still counts as passed. An abort is a crash wherever it
 *    happens. racy_criterion.c proves both cases fail.
 *  - the suppressions file holds the one race ck tolerates on purpose.
 * TSAN_OPTIONS from the environment is applied after these and wins for the
 * options it names.
 */
#ifndef TKV_TSAN_SUPPRESSIONS
#error "TKV_TSAN_SUPPRESSIONS must name tests/tsan/suppressions.txt"
#endif

/* Read by the TSan runtime before main(); must be visible to libtsan.so. */
__attribute__((visibility("default"), used)) const char *__tsan_default_options(void);

const char *__tsan_default_options(void)
{
	return "halt_on_error=1 abort_on_error=1 second_deadlock_stack=1 suppressions=" TKV_TSAN_SUPPRESSIONS;
}
