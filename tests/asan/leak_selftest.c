/*
 * leak_selftest.c - a leak must fail the Criterion run in the ASan build,
 * however the binary is started (no ASAN_OPTIONS needed: default_options.c).
 * LeakSanitizer only looks at exit, after the test body has returned, which
 * Criterion ignores unless the child aborts. ctest expects the leak to be
 * caught (../expect_report.sh).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void leak_some_bytes(void)
{
	char *volatile p = malloc(4096);
	memset(p, 1, 4096);
	p = NULL; /* the only pointer is gone: a direct leak */
}

Test(leak, in_test_body)
{
	leak_some_bytes();
}
