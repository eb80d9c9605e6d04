/*
 * consumer.c - a program an embedder would write, built by tests/install/run.sh
 * against the INSTALLED tierkv (pkg-config and find_package, shared and
 * static) to prove the installed header, libraries and package files work.
 * Uses only <tierkv.h>. Prints the version and exits non-zero on a mismatch.
 */
#include <stdio.h>
#include <string.h>
#include <tierkv.h>

static int failures;

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "consumer: FAILED: %s\n", what);
		failures++;
	}
}

int main(void)
{
	char header_version[32];
	tkv_config cfg;

	snprintf(header_version, sizeof(header_version), "%d.%d.%d", TKV_VERSION_MAJOR,
		 TKV_VERSION_MINOR, TKV_VERSION_PATCH);
	printf("consumer: tierkv %s (header %s)\n", tkv_version_string(), header_version);
	/* The library found at run time must be the one the header describes. */
	expect(tkv_version() == TKV_VERSION_HEX, "tkv_version() == TKV_VERSION_HEX");
	expect(strcmp(tkv_version_string(), header_version) == 0,
	       "tkv_version_string() matches the header");

	tkv_config_default(&cfg);
	expect(cfg.struct_size == sizeof(cfg), "tkv_config_default sets struct_size");
	expect(tkv_config_validate(&cfg) == 0, "default config validates");

	cfg.block_tokens = 12; /* not a power of two */
	int rc = tkv_config_validate(&cfg);
	expect(rc == -EINVAL, "block_tokens = 12 is rejected with -EINVAL");
	expect(strstr(tkv_last_error(), "block_tokens") != NULL,
	       "tkv_last_error() names block_tokens");
	printf("consumer: block_tokens = 12 -> %s: %s\n", tkv_strerror(rc), tkv_last_error());

	printf("consumer: %s\n", failures ? "FAILED" : "OK");
	return failures ? 1 : 0;
}
