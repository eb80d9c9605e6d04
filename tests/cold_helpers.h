/*
 * cold_helpers.h - shared by the cold-tier suites (tests/cold_*.c): temporary
 * directories, small geometries, deterministic payloads, a synchronous write
 * helper and a programmable fault hook for the I/O seam.
 */
#ifndef TKV_TESTS_COLD_HELPERS_H
#define TKV_TESTS_COLD_HELPERS_H

#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tiers/cold.h"

/* 4 layers x 16 KiB blocks (2 heads x 64 dim, f32, 16 tokens): 68 KiB records. */
static inline void cold_small_cfg(tkv__cold_config *c, const char *dir, uint64_t n_records)
{
	tkv__cold_config_default(c);
	c->dir = dir;
	c->n_layers = 4;
	c->n_kv_heads = 2;
	c->head_dim = 64;
	c->block_tokens = 16;
	c->dtype = TKV_DTYPE_F32;
	c->capacity_bytes = n_records * (4096 + 4 * 16384);
	c->segment_bytes = 16 * (4096 + 4 * 16384); /* 16 records a segment */
}

static inline char *cold_tmpdir(void)
{
	char *d = strdup("/tmp/tkv-cold-XXXXXX");
	cr_assert(d && mkdtemp(d), "mkdtemp: %s", strerror(errno));
	return d;
}

static inline void cold_rmdir(char *d)
{
	DIR *dir;
	struct dirent *e;
	char p[4096];
	if (!d)
		return;
	if ((dir = opendir(d))) {
		while ((e = readdir(dir)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
				snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
				unlink(p);
			}
		closedir(dir);
	}
	rmdir(d);
	free(d);
}

/* Deterministic bytes for (seq, block, layer, version). */
static inline void cold_pattern(void *dst, size_t n, uint64_t seq, uint64_t block, uint32_t layer,
				uint32_t version)
{
	uint64_t x = seq * 0x9e3779b97f4a7c15ull ^ block * 0xc2b2ae3d27d4eb4full ^
		     (uint64_t)layer << 40 ^ (uint64_t)version << 56 ^ 0x1234567;
	unsigned char *p = dst;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

static inline void cold_fill(tkv__cold *c, void *buf, uint32_t n_layers, uint64_t seq,
			     uint64_t block, uint32_t version)
{
	for (uint32_t l = 0; l < n_layers; l++)
		cold_pattern(tkv__cold_layer_ptr(c, buf, l), tkv__cold_block_bytes(c), seq, block, l,
			     version);
}

/* true if dst holds layer `layer` of (seq, block, version). */
static inline bool cold_layer_is(tkv__cold *c, const void *dst, uint64_t seq, uint64_t block,
				 uint32_t layer, uint32_t version)
{
	size_t n = tkv__cold_block_bytes(c);
	unsigned char *want = malloc(n);
	bool ok;
	cold_pattern(want, n, seq, block, layer, version);
	ok = memcmp(want, dst, n) == 0;
	free(want);
	return ok;
}

/* Waits for the completion of the one write in flight, submitted with
 * `user`; returns its status. */
static inline int cold_write_status(tkv__cold *c, void *user)
{
	tkv__cold_done d;
	for (;;) {
		int n = tkv__cold_write_reap(c, &d, 1, true);
		cr_assert_geq(n, 0);
		if (n == 1) {
			cr_assert_eq(d.user, user);
			return d.status;
		}
	}
}

/* Submits one write and waits for its completion; returns its status. */
static inline int cold_write_sync(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t n_tokens,
				  void *buf)
{
	int rc = tkv__cold_write_submit(c, seq, block, n_tokens, buf, buf);
	return rc < 0 ? rc : cold_write_status(c, buf);
}

/* n_layers blocks, each an allocation of its own (4 KiB aligned, as the
 * hot tier's are), holding what cold_fill puts in a staging buffer. */
static inline void **cold_blocks_alloc(tkv__cold *c, uint32_t n_layers, uint64_t seq,
				       uint64_t block, uint32_t version)
{
	size_t n = tkv__cold_block_bytes(c);
	void **b = calloc(n_layers, sizeof(*b));
	cr_assert_not_null(b);
	for (uint32_t l = 0; l < n_layers; l++) {
		/* C11: the size a multiple of the alignment */
		cr_assert_not_null(b[l] = aligned_alloc(4096, (n + 4095) / 4096 * 4096));
		cold_pattern(b[l], n, seq, block, l, version);
	}
	return b;
}

static inline void cold_blocks_free(void **b, uint32_t n_layers)
{
	for (uint32_t l = 0; l < n_layers; l++)
		free(b[l]);
	free(b);
}

/* As cold_write_sync, written from the blocks (hdr: a header buffer). */
static inline int cold_write_blocks_sync(tkv__cold *c, uint64_t seq, uint64_t block,
					 uint32_t n_tokens, void *hdr, void **blocks)
{
	int rc = tkv__cold_write_submit_layers(c, seq, block, n_tokens, hdr,
					       (const void *const *)blocks, NULL, NULL, hdr);
	return rc < 0 ? rc : cold_write_status(c, hdr);
}

/* ---- programmable fault hook ---- */

typedef struct cold_rule {
	tkv__cold_op op;
	size_t len;        /* 0: any length; else only ops of this length */
	int skip;          /* let this many matching ops through first */
	int count;         /* then apply to this many (-1: forever) */
	tkv__cold_fault f; /* what to inject */
	int hits;          /* how many times applied */
	uint32_t seg;      /* the segment of the last op it was applied to */
} cold_rule;

typedef struct cold_faults {
	pthread_mutex_t lock;
	cold_rule rules[8];
	int n_rules;
	tkv__cold_io io;
} cold_faults;

static void cold_inject(void *ctx, tkv__cold_op op, uint32_t seg, uint64_t off, size_t len,
			tkv__cold_fault *f)
{
	cold_faults *fs = ctx;
	(void)off;
	pthread_mutex_lock(&fs->lock);
	for (int i = 0; i < fs->n_rules; i++) {
		cold_rule *r = &fs->rules[i];
		if (r->op != op || (r->len && r->len != len))
			continue;
		if (r->skip > 0) {
			r->skip--;
			continue;
		}
		if (r->count == 0)
			continue;
		if (r->count > 0)
			r->count--;
		r->hits++;
		r->seg = seg;
		*f = r->f;
		break;
	}
	pthread_mutex_unlock(&fs->lock);
}

static inline void cold_faults_init(cold_faults *fs)
{
	memset(fs, 0, sizeof(*fs));
	pthread_mutex_init(&fs->lock, NULL);
	fs->io.inject = cold_inject;
	fs->io.ctx = fs;
}

static inline cold_rule *cold_faults_add(cold_faults *fs, tkv__cold_op op, size_t len, int skip,
					 int count, tkv__cold_fault f)
{
	cold_rule *r;
	pthread_mutex_lock(&fs->lock);
	r = &fs->rules[fs->n_rules++];
	*r = (cold_rule){.op = op, .len = len, .skip = skip, .count = count, .f = f};
	pthread_mutex_unlock(&fs->lock);
	return r;
}

static inline int cold_rule_hits(cold_faults *fs, cold_rule *r)
{
	int h;
	pthread_mutex_lock(&fs->lock);
	h = r->hits;
	pthread_mutex_unlock(&fs->lock);
	return h;
}

static inline uint32_t cold_rule_seg(cold_faults *fs, cold_rule *r)
{
	uint32_t s;
	pthread_mutex_lock(&fs->lock);
	s = r->seg;
	pthread_mutex_unlock(&fs->lock);
	return s;
}

static inline void cold_faults_clear(cold_faults *fs)
{
	pthread_mutex_lock(&fs->lock);
	fs->n_rules = 0;
	pthread_mutex_unlock(&fs->lock);
}

#endif
