/*
 * consumer.c - a program an embedder would write, built by tests/install/run.sh
 * against the INSTALLED tierkv (pkg-config and find_package, shared and
 * static) to prove the installed header, libraries and package files work.
 * Uses only <tierkv.h>: prints the version, checks config validation, then
 * runs the runtime as an engine would - several producer threads storing
 * their own sequences, every layer, in uneven batches - and reads every byte
 * back. Exits non-zero on any mismatch.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tierkv.h>

enum { PRODUCERS = 3, SEQS_PER = 4, TOKENS = 70, LAYERS = 4, ROW = 2 * 32 * 4 /* f32 */ };

static tkv_runtime *rt;

static unsigned char pattern(uint64_t seq, uint32_t layer, uint64_t pos, size_t i, int kv)
{
	uint64_t x = seq * 0x9e3779b97f4a7c15ull ^ (pos << 20) ^ ((uint64_t)layer << 40) ^ i ^
		     ((uint64_t)kv << 63);
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	return (unsigned char)(x >> 56);
}

static void fill(unsigned char *b, uint64_t seq, uint32_t layer, uint64_t pos, uint32_t n, int kv)
{
	for (uint32_t t = 0; t < n; t++)
		for (size_t i = 0; i < ROW; i++)
			b[(size_t)t * ROW + i] = pattern(seq, layer, pos + t, i, kv);
}

/* Stores its sequences in batches of 1..9 tokens; 0 or the failed rc. */
static void *producer(void *arg)
{
	uintptr_t id = (uintptr_t)arg, rc = 0;
	static _Thread_local unsigned char k[9 * ROW], v[9 * ROW];
	for (uint64_t s = id * 100; s < id * 100 + SEQS_PER && !rc; s++) {
		rc = (uintptr_t)-tkv_seq_open(rt, s);
		for (uint64_t pos = 0, n; pos < TOKENS && !rc; pos += n) {
			n = 1 + (pos * 7 + s) % 9;
			n = n < TOKENS - pos ? n : TOKENS - pos;
			for (uint32_t l = 0; l < LAYERS && !rc; l++) {
				tkv_ticket t;
				fill(k, s, l, pos, (uint32_t)n, 0);
				fill(v, s, l, pos, (uint32_t)n, 1);
				rc = (uintptr_t)-tkv_store(rt, s, l, pos, (uint32_t)n, k, v, 0, &t);
				if (!rc) /* k and v are reused: wait before refilling */
					rc = (uintptr_t)-tkv_wait(rt, &t);
			}
		}
	}
	return (void *)rc;
}

/* Every byte of every sequence, read back on this thread. */
static int read_back(void)
{
	static unsigned char k[TOKENS * ROW], v[TOKENS * ROW], want[TOKENS * ROW];
	for (uintptr_t p = 0; p < PRODUCERS; p++)
		for (uint64_t s = p * 100; s < p * 100 + SEQS_PER; s++)
			for (uint32_t l = 0; l < LAYERS; l++) {
				if (tkv_read(rt, s, l, 0, TOKENS, k, v))
					return -1;
				fill(want, s, l, 0, TOKENS, 0);
				if (memcmp(k, want, sizeof(k)))
					return -2;
				fill(want, s, l, 0, TOKENS, 1);
				if (memcmp(v, want, sizeof(v)))
					return -3;
			}
	return 0;
}

static int run_runtime(void)
{
	tkv_config cfg;
	tkv_config_default(&cfg);
	cfg.n_layers = LAYERS;
	cfg.n_kv_heads = 2;
	cfg.head_dim = 32;
	cfg.hot_bytes = 16u << 20;
	if (tkv_open(&cfg, &rt)) {
		fprintf(stderr, "consumer: tkv_open: %s\n", tkv_last_error());
		return -1;
	}
	pthread_t th[PRODUCERS];
	int rc = 0;
	for (uintptr_t p = 0; p < PRODUCERS; p++)
		pthread_create(&th[p], NULL, producer, (void *)p);
	for (int p = 0; p < PRODUCERS; p++) {
		void *r;
		pthread_join(th[p], &r);
		if (r)
			rc = -1;
	}
	if (!rc)
		rc = read_back();
	tkv_close(rt);
	return rc;
}

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

	int rr = run_runtime();
	expect(rr == 0, "3 producer threads x 4 sequences x 4 layers read back byte-exact");
	if (!rr)
		printf("consumer: %d producers stored %d sequences, all bytes read back\n", PRODUCERS,
		       PRODUCERS * SEQS_PER);

	printf("consumer: %s\n", failures ? "FAILED" : "OK");
	return failures ? 1 : 0;
}
