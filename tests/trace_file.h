/*
 * trace_file.h - finding a real serving trace for the tests that replay one
 * (tests/policy.c, tests/cache_trace.c): tests/data/ first (the copy kept
 * with the tests, PROVENANCE.md there), then the shared/ folder beside the
 * repository, then shared/traces/ up from the working directory (ctest runs
 * in build/<preset>/tests).
 */
#ifndef TKV_TESTS_TRACE_FILE_H
#define TKV_TESTS_TRACE_FILE_H

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Opens dir[0, dir_len)/suffix if the path fits. */
static inline FILE *trace_open_in(char *path, size_t size, const char *dir, int dir_len,
				  const char *suffix)
{
	int n = snprintf(path, size, "%.*s%s", dir_len, dir, suffix);
	return n > 0 && (size_t)n < size ? fopen(path, "r") : NULL;
}

/* The trace `name` (e.g. "mooncake_synthetic_trace.jsonl"), its path in
 * path[size]; NULL if none of the places has it. */
static inline FILE *trace_open(const char *name, char *path, size_t size)
{
	char suffix[256];
	const char *here = __FILE__; /* .../repo/tests/trace_file.h */
	const char *slash = strrchr(here, '/');
	FILE *f = NULL;
	snprintf(suffix, sizeof(suffix), "/data/%s", name);
	if (slash != NULL)
		f = trace_open_in(path, size, here, (int)(slash - here), suffix);
	snprintf(suffix, sizeof(suffix), "/../../shared/traces/%s", name);
	if (f == NULL && slash != NULL)
		f = trace_open_in(path, size, here, (int)(slash - here), suffix);
	char dir[PATH_MAX];
	if (f != NULL || getcwd(dir, sizeof(dir)) == NULL)
		return f;
	snprintf(suffix, sizeof(suffix), "/shared/traces/%s", name);
	for (int up = 0; up < 8 && f == NULL; up++) {
		f = trace_open_in(path, size, dir, (int)strlen(dir), suffix);
		char *s = strrchr(dir, '/');
		if (s == NULL || s == dir)
			break;
		*s = '\0';
	}
	return f;
}

#endif
