/*
 * shared_helpers.h - what the shared-tier tests share: the servers of the
 * redis fixture (tests/redis/servers.sh, started by the ctest entry
 * redis_servers_start, stopped by redis_servers_stop even when a test
 * fails), private servers for the tests that stop or kill one, redis-cli,
 * and values that tell keys apart.
 *
 * TKV_REDIS_DIR (the fixture's folder) and TKV_REDIS_SCRIPT come from
 * tests/CMakeLists.txt. Private servers live in TKV_REDIS_DIR/private-NAME,
 * so the fixture's cleanup stops them too when a test crashes before its
 * own stop.
 */
#ifndef TKV_TESTS_SHARED_HELPERS_H
#define TKV_TESTS_SHARED_HELPERS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "tierkv.h"
#include "tiers/shared_client.h"

static inline char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	static char buf[4096];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return strdup(buf);
}

/* The fixture's "cluster" or "standalone" seeds (caller frees). Skips,
 * naming why, when the fixture found no redis-server. */
static inline char *fixture_seeds(const char *which)
{
	char *why = read_text(TKV_REDIS_DIR "/unavailable");
	if (why)
		cr_skip_test("redis servers unavailable: %s", why);
	char path[512];
	snprintf(path, sizeof(path), "%s/%s/seeds", TKV_REDIS_DIR, which);
	char *seeds = read_text(path);
	cr_assert_not_null(seeds, "%s missing: run through ctest (fixture redis_servers_start) "
				  "or `bash %s setup %s` first", path, TKV_REDIS_SCRIPT, TKV_REDIS_DIR);
	return seeds;
}

static inline int first_port(const char *seeds)
{
	return atoi(strchr(seeds, ':') + 1);
}

/* Runs a shell command; its trimmed stdout (static, overwritten). */
__attribute__((format(printf, 1, 2))) static inline const char *sh(const char *fmt, ...)
{
	static char out[65536];
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p, "popen %s", cmd);
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	int rc = pclose(p);
	cr_assert_eq(rc, 0, "`%s` failed (%d): %.*s", cmd, rc, (int)n, out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		n--;
	out[n] = '\0';
	return out;
}

/* Private servers in TKV_REDIS_DIR/private-NAME: cmd is "cluster" or
 * "standalone", args what follows the folder on servers.sh's command line.
 * Returns their seeds (caller frees). */
static inline char *private_start(const char *name, const char *cmd, const char *args)
{
	char *why = read_text(TKV_REDIS_DIR "/unavailable");
	if (why)
		cr_skip_test("redis servers unavailable: %s", why);
	sh("bash %s %s %s/private-%s %s >/dev/null", TKV_REDIS_SCRIPT, cmd, TKV_REDIS_DIR, name, args);
	char path[512];
	snprintf(path, sizeof(path), "%s/private-%s/seeds", TKV_REDIS_DIR, name);
	char *seeds = read_text(path);
	cr_assert_not_null(seeds, "%s missing", path);
	return seeds;
}

static inline void private_stop(const char *name)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "bash %s stop %s/private-%s", TKV_REDIS_SCRIPT, TKV_REDIS_DIR, name);
	if (system(cmd) != 0)
		fprintf(stderr, "shared tests: `%s` failed\n", cmd);
}

/* The pid of the server listening on port (from its INFO). */
static inline pid_t server_pid(int port)
{
	return (pid_t)atol(sh("redis-cli -p %d info server | tr -d '\\r' | sed -n 's/^process_id://p'", port));
}

/* A value that names its key and its length: a GET answered with another
 * key's value, or a truncated one, cannot compare equal. */
static inline void fill_value(unsigned char *v, size_t len, const char *key, uint32_t salt)
{
	uint64_t x = 0x9e3779b97f4a7c15ull ^ salt;
	for (const char *k = key; *k; k++)
		x = (x ^ (unsigned char)*k) * 0x100000001b3ull;
	x ^= len;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		v[i] = (unsigned char)x;
	}
}

static inline tkv__shared *open_client(const char *seeds, uint32_t op_timeout_ms)
{
	tkv__shared_cfg cfg = {.seeds = seeds, .op_timeout_ms = op_timeout_ms};
	tkv__shared *s;
	cr_assert_eq(tkv__shared_open(&cfg, &s), 0, "open %s: %s", seeds, tkv_last_error());
	return s;
}

static inline tkv__shared_op key_op(const char *key)
{
	return (tkv__shared_op){.key = key, .key_len = strlen(key)};
}

#endif
