/*
 * default_options.c - ASan, LeakSanitizer and UBSan defaults built into every
 * ASan+UBSan test binary, so `ctest --test-dir build/asan` or a binary run
 * by hand fails exactly as `ctest --preset asan` does (its ASAN_OPTIONS and
 * UBSAN_OPTIONS repeat these).
 *
 * Why each one:
 *  - detect_leaks=1: a leak fails the run (LeakSanitizer checks at exit).
 *  - abort_on_error=1: without it a report ends the process with an exit
 *    code (23 for a leak). Criterion runs each test in a child process and
 *    looks at how the child ended only while the test body runs, so a leak,
 *    found at exit, would count as passed. An abort is a crash wherever it
 *    happens. leak_selftest.c proves a leak fails.
 *  - UBSan: halt on the first report with a stack, aborting for the same
 *    reason (the build also has -fno-sanitize-recover=undefined).
 * ASAN_OPTIONS / UBSAN_OPTIONS from the environment are applied after these
 * and win for the options they name.
 * Run a suite by hand with --jobs=1, as ctest does: with parallel jobs the
 * runner process can exit before Criterion's bundled BoxFort frees the
 * last cancelled per-test timeout (.timeout = N; its detached killer
 * thread frees them), and LeakSanitizer reports those 48 bytes (seen with
 * tests/copy_ahead.c at the default --jobs, never in 24 runs at --jobs=1).
 */

/* Read by the sanitizer runtimes before main(); must be visible to them. */
#define TKV_SANITIZER_HOOK __attribute__((visibility("default"), used))

TKV_SANITIZER_HOOK const char *__asan_default_options(void);
TKV_SANITIZER_HOOK const char *__ubsan_default_options(void);

const char *__asan_default_options(void)
{
	return "detect_leaks=1:abort_on_error=1";
}

const char *__ubsan_default_options(void)
{
	return "print_stacktrace=1:halt_on_error=1:abort_on_error=1";
}
