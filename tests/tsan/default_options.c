/*
 * default_options.c - TSan defaults built into every TSan test binary, so a
 * binary run by hand behaves like one run by `ctest --preset tsan`.
 *
 * Why: with TSan's own defaults a race is printed but the process still exits
 * 0, so a racy test would pass (docs/SANITIZERS.md). halt_on_error=1 makes the
 * first report end the process with a non-zero status. The suppressions file
 * holds the one race ck tolerates on purpose. TSAN_OPTIONS from the
 * environment is applied after these and wins.
 */
#ifndef TKV_TSAN_SUPPRESSIONS
#error "TKV_TSAN_SUPPRESSIONS must name tests/tsan/suppressions.txt"
#endif

/* Read by the TSan runtime before main(); must be visible to libtsan.so. */
__attribute__((visibility("default"), used)) const char *__tsan_default_options(void);

const char *__tsan_default_options(void)
{
	return "halt_on_error=1 second_deadlock_stack=1 suppressions=" TKV_TSAN_SUPPRESSIONS;
}
