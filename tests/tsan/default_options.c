/*
 * default_options.c - TSan defaults built into every TSan test binary, so a
 * binary run by hand behaves like one run by `ctest --preset tsan`.
 *
 * Why each one:
 *  - halt_on_error=1: with TSan's own defaults a race is printed but the
 *    process still exits 0, so a racy test would pass (docs/SANITIZERS.md).
 *  - abort_on_error=1: without it a report ends the process with exit code
 *    66. Criterion runs each test in a child process and looks at how the
 *    child ended only while the test body runs: a report raised afterwards
 *    (a race first seen in .fini or a destructor, a thread leak at exit
 *    from a close that did not join its thread) exits 66 during teardown
 *    and the test still counts as passed. An abort is a crash wherever it
 *    happens. racy_criterion.c proves both cases fail.
 *  - no suppressions: the one race ck tolerates on purpose (its
 *    multi-consumer dequeue) is ignored inside the one test that uses it
 *    (tests/ck_ring.c), so nothing can hide a race in the runtime.
 * TSAN_OPTIONS from the environment is applied after these and wins for the
 * options it names.
 */
/* Read by the TSan runtime before main(); must be visible to libtsan.so. */
__attribute__((visibility("default"), used)) const char *__tsan_default_options(void);

const char *__tsan_default_options(void)
{
	return "halt_on_error=1 abort_on_error=1 second_deadlock_stack=1";
}
