/*
 * evictor.c - the cold tier seen through the runtime: eviction under
 * pressure, promotion by read, view and prefetch, pins that hold, restart
 * recovery, geometry checks, and faults (ENOSPC, EIO, short writes, bit
 * flips) injected through the cold tier's I/O seam: acknowledged data is
 * never lost and corrupt data is never returned.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>

#include "runtime/runtime.h"
#include "tests/cold_runtime.h"
#include "tests/kv_pattern.h"
#include "tiers/cold.h"
#include "tiers/evictor.h" /* the buffer pool */
#include "tierkv.h"


static char dir[64];

/* A geometry with real-sized layer blocks (Llama-3-8B's 8 x 128 f32, 128
 * KiB), where a checksum takes long enough to be shared. */
enum { BIG_HEADS = 8, BIG_DIM = 128, BIG_ROW = BIG_HEADS * BIG_DIM * 4 };
enum { BIG_BLOCK = 2 * BT * BIG_ROW };

static void make_dir(void)
{
	strcpy(dir, "/tmp/tierkv-evictor-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static tkv_config cold_config(void)
{
	return cold_runtime_config(dir, 8ull << 20);
}

/* ---- fault seam ---------------------------------------------------------- */

typedef struct faults {
	int write_err;      /* errno for every record write, 0: none */
	size_t write_short; /* short length for every record write, 0: none */
	uint32_t flip_reads;/* flip a bit in this many next data reads */
	uint32_t writes_seen;
	uint32_t read_delay_us; /* every promotion read completes this late */
	size_t block;           /* promotion reads' length; 0: BLOCK */
} faults;

static void inject(void *ctx, tkv__cold_op op, uint32_t seg, uint64_t off, size_t len,
		   tkv__cold_fault *f)
{
	faults *x = ctx;
	(void)seg;
	(void)off;
	if (op == TKV__COLD_OP_WRITE) {
		ck_pr_inc_32(&x->writes_seen);
		f->err = ck_pr_load_int(&x->write_err);
		size_t s = ck_pr_load_64((uint64_t *)&x->write_short);
		if (s && s < len)
			f->short_len = s;
	}
	size_t block = x->block ? x->block : BLOCK;
	if (op == TKV__COLD_OP_READ && len <= block) { /* promotion reads, not scans */
		uint32_t n = ck_pr_load_32(&x->flip_reads);
		while (n && !ck_pr_cas_32_value(&x->flip_reads, n, n - 1, &n))
			;
		if (n)
			f->flip_bit = 1 + 12345;
	}
	if (op == TKV__COLD_OP_READ && len <= block)
		f->delay_us = ck_pr_load_32(&x->read_delay_us);
}

static tkv_runtime *open_with(tkv_config *c, faults *fx)
{
	static tkv__cold_io io;
	io = (tkv__cold_io){inject, fx};
	tkv__open_opts o = {.queue = TKV__QUEUE_RING, .cold_io = fx ? &io : NULL};
	tkv_runtime *rt = NULL;
	int rc = tkv__open_ex(c, &o, &rt);
	cr_assert_eq(rc, 0, "open: %s", tkv_last_error());
	return rt;
}

/* ---- policy seam --------------------------------------------------------- */

/* The default policy's operations with insert watched (open_watched). */
static tkv__policy_ops watched;
static uint32_t inserts, unflagged;

static int watched_insert(tkv__policy *p, tkv__policy_node *n)
{
	const tkv__unit *u = (const tkv__unit *)n; /* the node is the unit's first member */
	ck_pr_inc_32(&inserts);
	if (ck_pr_load_32(&u->in_policy) != 1)
		ck_pr_inc_32(&unflagged);
	return tkv__policy_s3fifo.insert(p, n);
}

static tkv_runtime *open_watched(tkv_config *c)
{
	watched = tkv__policy_s3fifo;
	watched.insert = watched_insert;
	ck_pr_store_32(&inserts, 0);
	ck_pr_store_32(&unflagged, 0);
	tkv__open_opts o = {.queue = TKV__QUEUE_RING, .evict_policy = &watched};
	tkv_runtime *rt = NULL;
	int rc = tkv__open_ex(c, &o, &rt);
	cr_assert_eq(rc, 0, "open: %s", tkv_last_error());
	return rt;
}

/* ---- data ---------------------------------------------------------------- */

/* Stores tokens [from, to) of every layer of seq in blocks of BT, rows of
 * `row` bytes. */
static int store_rows(tkv_runtime *rt, uint64_t seq, uint64_t from, uint64_t to, size_t row)
{
	unsigned char *k = malloc(BT * row), *v = malloc(BT * row);
	cr_assert(k && v);
	int rc = 0;
	for (uint64_t p = from; !rc && p < to; p += BT) {
		for (uint32_t l = 0; !rc && l < LAYERS; l++) {
			kvp_fill(k, seq, l, p, BT, row, 0);
			kvp_fill(v, seq, l, p, BT, row, 1);
			tkv_ticket t;
			rc = tkv_store(rt, seq, l, p, BT, k, v, 0, &t);
			/* the buffers are reused: wait before refilling them */
			if (!rc)
				cr_assert_eq(tkv_wait(rt, &t), 0);
		}
	}
	free(k);
	free(v);
	return rc;
}

static int check_rows(tkv_runtime *rt, uint64_t seq, uint64_t from, uint64_t to, size_t row)
{
	unsigned char *k = malloc(BT * row), *v = malloc(BT * row), *scratch = malloc(row);
	cr_assert(k && v && scratch);
	int rc = 0;
	for (uint64_t p = from; !rc && p < to; p += BT) {
		for (uint32_t l = 0; !rc && l < LAYERS; l++) {
			rc = tkv_read(rt, seq, l, p, BT, k, v);
			if (!rc && (kvp_check(k, seq, l, p, BT, row, 0, scratch) != -1 ||
				    kvp_check(v, seq, l, p, BT, row, 1, scratch) != -1))
				rc = -99;
		}
	}
	free(k);
	free(v);
	free(scratch);
	return rc;
}

static int store_range(tkv_runtime *rt, uint64_t seq, uint64_t from, uint64_t to)
{
	return store_rows(rt, seq, from, to, ROW);
}

static int check_range(tkv_runtime *rt, uint64_t seq, uint64_t from, uint64_t to)
{
	return check_rows(rt, seq, from, to, ROW);
}

static tkv_stats stats(tkv_runtime *rt)
{
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	return st;
}

/* ---- tests --------------------------------------------------------------- */

/* tkv_open with a cold tier fills the evictor's buffer pool (include/
 * tierkv.h, cold_dir), so the first eviction burst does not allocate and
 * first-touch its buffers: the pool is full before anything is stored.
 * (This geometry's records are written from the hot blocks, so these are
 * header buffers; evictor.c, "Buffers".) */
Test(evictor, open_fills_the_buffer_pool, .init = make_dir, .fini = remove_dir)
{
	/* 8 KiB blocks: header buffers; 6 KiB blocks (head_dim 48): every
	 * record is staged, so whole-record staging buffers */
	const uint32_t dims[2] = {DIM, 48};
	for (int i = 0; i < 2; i++) {
		tkv_config c = cold_config();
		c.head_dim = dims[i];
		tkv_runtime *rt = open_with(&c, NULL);
		cr_assert_not_null(rt->ev);
		cr_assert_eq(rt->ev->direct, i == 0, "head_dim %u", dims[i]);
		cr_assert_gt(rt->ev->depth, 0);
		cr_assert_eq(rt->ev->n_bufs, rt->ev->depth, "%u of %u buffers at open",
			     rt->ev->n_bufs, rt->ev->depth);
		tkv_close(rt);
		remove_dir();
		make_dir();
	}
}

/* How many of this process's threads are named `name`
 * (/proc/self/task/TID/comm). */
static int threads_named(const char *name)
{
	DIR *d = opendir("/proc/self/task");
	cr_assert_not_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char path[300], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* ended meanwhile */
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
		n += !strcmp(comm, name);
	}
	closedir(d);
	return n;
}

/* The runtime names its threads (tierkv.h, "Threads"), once each, and they
 * are gone after close. A joined thread may still be listed in
 * /proc/self/task for a moment (pthread_join returns when the kernel
 * clears its tid, before it leaves the thread group), so the check after
 * close waits up to 2 s for the names to go. */
Test(evictor, the_runtime_names_its_threads, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = cold_config();
	tkv_runtime *rt = open_with(&c, NULL);
	const char *const names[] = {"tkv-worker-0", "tkv-worker-1", "tkv-evictor", "tkv-prefetch"};
	const size_t n = sizeof(names) / sizeof(names[0]);
	cr_assert_eq(rt->n_workers, 2);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(threads_named(names[i]), 1, "%s", names[i]);
	cr_assert_eq(threads_named("tkv-worker-2"), 0);
	tkv_close(rt);
	for (size_t i = 0; i < n; i++) {
		int left = threads_named(names[i]);
		for (int ms = 0; left && ms < 2000; ms++) {
			usleep(1000);
			left = threads_named(names[i]);
		}
		cr_assert_eq(left, 0, "%s 2 s after close", names[i]);
	}
}

Test(evictor, working_set_four_times_hot_reads_back, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = cold_config();
	tkv_runtime *rt = open_with(&c, NULL);
	const uint64_t tokens = 16 * BT; /* 4 sequences x 16 units = 4x the hot tier */
	for (uint64_t s = 1; s <= 4; s++)
		cr_assert_eq(tkv_seq_open(rt, s), 0);
	for (uint64_t s = 1; s <= 4; s++)
		cr_assert_eq(store_range(rt, s, 0, tokens), 0, "%s", tkv_last_error());
	tkv_stats st = stats(rt);
	cr_assert_gt(st.evicted_blocks, 0);
	cr_assert_leq(st.hot_bytes_used, st.hot_bytes_capacity);
	cr_assert_gt(st.cold_bytes_used, 0);
	for (uint64_t s = 1; s <= 4; s++)
		cr_assert_eq(check_range(rt, s, 0, tokens), 0, "sequence %llu: %s",
			     (unsigned long long)s, tkv_last_error());
	st = stats(rt);
	cr_assert_gt(st.promoted_blocks, 0, "reading evicted blocks promotes them");
	cr_assert_eq(st.corrupt_records, 0);
	/* closing a sequence deletes its records too */
	uint64_t used = st.cold_bytes_used;
	for (uint64_t s = 1; s <= 4; s++)
		cr_assert_eq(tkv_seq_close(rt, s), 0);
	/* slots come back through the evictor's housekeeping: wait for it */
	for (int i = 0; i < 2000 && stats(rt).cold_bytes_used >= used; i++)
		usleep(1000);
	cr_assert_lt(stats(rt).cold_bytes_used, used);
	cr_assert_eq(stats(rt).hot_bytes_used, 0);
	tkv_close(rt);
}

/* A unit is flagged in_policy before the policy gets it, both when it
 * becomes complete and when a promotion puts it back: the evictor may pick
 * it the moment it is in a queue and clears the flag then, so a flag set
 * after the insert could land after such a pick and leave the unit flagged
 * and in no queue, never evicted again (evictor.c,
 * tkv__evictor_policy_insert; found by a soak as a store refused with
 * "hot tier full", about 1 run in 300). Here the policy itself looks at
 * the flag of every unit it is handed, so the order is checked on every
 * insert, not only when the evictor happens to pick in between. */
Test(evictor, a_unit_is_flagged_before_the_policy_gets_it, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = cold_config();
	tkv_runtime *rt = open_watched(&c);
	const uint64_t tokens = 16 * BT; /* 4 sequences x 16 units = 4x the hot tier */
	for (uint64_t s = 1; s <= 4; s++) {
		cr_assert_eq(tkv_seq_open(rt, s), 0);
		cr_assert_eq(store_range(rt, s, 0, tokens), 0, "%s", tkv_last_error());
	}
	uint32_t at_full = ck_pr_load_32(&inserts);
	uint64_t promoted0 = stats(rt).promoted_blocks;
	for (uint64_t s = 1; s <= 4; s++)
		cr_assert_eq(check_range(rt, s, 0, tokens), 0, "sequence %llu: %s",
			     (unsigned long long)s, tkv_last_error());
	tkv_stats st = stats(rt);
	cr_assert_gt(st.evicted_blocks, 0);
	cr_assert_gt(st.promoted_blocks, promoted0, "the reads promoted evicted blocks");
	cr_assert_geq(at_full, 64, "every complete unit was inserted (%u)", at_full);
	/* nothing is stored during the reads: their inserts are units put
	 * back after a promotion (or after a pick that found them in use) */
	cr_assert_gt(ck_pr_load_32(&inserts), at_full, "units put back during the reads (%u inserts)",
		     ck_pr_load_32(&inserts));
	cr_assert_eq(ck_pr_load_32(&unflagged), 0, "%u of %u inserts of an unflagged unit",
		     ck_pr_load_32(&unflagged), ck_pr_load_32(&inserts));
	tkv_close(rt);
}

/* Evicts a working set of 4x the hot tier in the geometry of c (rows of
 * `row` bytes), reads it all back, and returns the stats after. */
static tkv_stats evict_and_read_back(tkv_config *c, size_t row)
{
	tkv_runtime *rt = open_with(c, NULL);
	const uint64_t tokens = 16 * BT;
	for (uint64_t s = 1; s <= 4; s++) {
		cr_assert_eq(tkv_seq_open(rt, s), 0);
		cr_assert_eq(store_rows(rt, s, 0, tokens, row), 0, "%s", tkv_last_error());
	}
	for (uint64_t s = 1; s <= 4; s++)
		cr_assert_eq(check_rows(rt, s, 0, tokens, row), 0, "sequence %llu: %s",
			     (unsigned long long)s, tkv_last_error());
	tkv_stats st = stats(rt);
	tkv_close(rt);
	cr_assert_gt(st.evicted_blocks, 0);
	cr_assert_gt(st.promoted_blocks, 0);
	cr_assert_eq(st.corrupt_records, 0);
	return st;
}

/* Blocks of a 4 KiB multiple go to the SSD from where they are (tiers/
 * cold.h, direct writes): no record is staged, and every byte reads back. */
Test(evictor, records_are_written_from_the_hot_blocks, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = cold_config();
	cr_assert_eq(BLOCK % 4096, 0);
	tkv_stats st = evict_and_read_back(&c, ROW);
	cr_assert_eq(st.evict_records_staged, 0, "%llu of %llu records staged",
		     (unsigned long long)st.evict_records_staged,
		     (unsigned long long)st.evicted_blocks);
}

/* A block that is not a 4 KiB multiple cannot be an O_DIRECT piece of its
 * own: every record is staged (and counted), and reads back the same. */
Test(evictor, records_of_odd_sized_blocks_are_staged, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = cold_config();
	c.head_dim = 48; /* rows of 192 bytes: 6 KiB blocks */
	const size_t row = (size_t)HEADS * 48 * 2;
	cr_assert_neq((2 * BT * row) % 4096, 0);
	tkv_stats st = evict_and_read_back(&c, row);
	cr_assert_eq(st.evict_records_staged, st.evicted_blocks, "%llu of %llu records staged",
		     (unsigned long long)st.evict_records_staged,
		     (unsigned long long)st.evicted_blocks);
}

Test(evictor, pinned_view_survives_pressure, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = cold_config();
	tkv_runtime *rt = open_with(&c, NULL);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	cr_assert_eq(store_range(rt, 1, 0, 4 * BT), 0);
	tkv_view_block b[4];
	tkv_view vw = {.struct_size = sizeof(vw), .blocks = b, .max_blocks = 4};
	cr_assert_eq(tkv_view_acquire(rt, 1, 3, 0, 4 * BT, &vw), 0, "%s", tkv_last_error());
	/* push 3x the hot tier through another sequence */
	cr_assert_eq(store_range(rt, 2, 0, 3 * HOT_UNITS * BT), 0, "%s", tkv_last_error());
	cr_assert_gt(stats(rt).evicted_blocks, 0);
	unsigned char scratch[ROW];
	for (uint32_t i = 0; i < vw.n_blocks; i++) {
		cr_assert_eq(kvp_check(b[i].k, 1, 3, b[i].first_pos, BT, ROW, 0, scratch), -1);
		cr_assert_eq(kvp_check(b[i].v, 1, 3, b[i].first_pos, BT, ROW, 1, scratch), -1);
	}
	cr_assert_eq(tkv_view_release(rt, &vw), 0);
	/* sequence 1 was evicted around its pinned layer; a new view of an
	 * evicted layer promotes it */
	cr_assert_eq(tkv_view_acquire(rt, 1, 0, 0, 4 * BT, &vw), 0, "%s", tkv_last_error());
	for (uint32_t i = 0; i < vw.n_blocks; i++)
		cr_assert_eq(kvp_check(b[i].k, 1, 0, b[i].first_pos, BT, ROW, 0, scratch), -1);
	cr_assert_eq(tkv_view_release(rt, &vw), 0);
	cr_assert_eq(check_range(rt, 2, 0, 3 * HOT_UNITS * BT), 0);
	tkv_close(rt);
}

Test(evictor, prefetch_promotes_layer_by_layer, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = cold_config();
	tkv_runtime *rt = open_with(&c, NULL);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	cr_assert_eq(store_range(rt, 1, 0, 8 * BT), 0);
	cr_assert_eq(store_range(rt, 2, 0, 2 * HOT_UNITS * BT), 0); /* pushes 1 out */
	uint64_t before = stats(rt).promoted_blocks;
	cr_assert_eq(tkv_prefetch(rt, 1, 0, 4 * BT), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_prefetch(rt, 1, 0, 0), -EINVAL);
	cr_assert_eq(tkv_prefetch(rt, 1, 0, 100 * BT), -EINVAL);
	cr_assert_eq(tkv_prefetch(rt, 99, 0, 1), -ENOENT);
	/* wait (no time limit asserted) until the prefetch thread promoted
	 * something, then views must see correct data whatever is still cold */
	for (int i = 0; i < 5000 && stats(rt).promoted_blocks == before; i++)
		usleep(1000);
	cr_assert_gt(stats(rt).promoted_blocks, before);
	cr_assert_eq(check_range(rt, 1, 0, 8 * BT), 0);
	tkv_close(rt);
}

static tkv_config big_config(void)
{
	tkv_config c = cold_runtime_config(dir, 128ull << 20);
	c.n_kv_heads = BIG_HEADS;
	c.head_dim = BIG_DIM;
	c.dtype = TKV_DTYPE_F32;
	c.hot_bytes = (uint64_t)HOT_UNITS * LAYERS * BIG_BLOCK;
	return c;
}

/* Stores (big geometry) tokens [0, n_blocks * BT) of every layer of seq. */
static void big_store(tkv_runtime *rt, uint64_t seq, uint64_t n_blocks)
{
	static unsigned char k[BT * BIG_ROW], v[BT * BIG_ROW];
	for (uint64_t p = 0; p < n_blocks * BT; p += BT)
		for (uint32_t l = 0; l < LAYERS; l++) {
			kvp_fill(k, seq, l, p, BT, BIG_ROW, 0);
			kvp_fill(v, seq, l, p, BT, BIG_ROW, 1);
			tkv_ticket t;
			cr_assert_eq(tkv_store(rt, seq, l, p, BT, k, v, 0, &t), 0, "%s",
				     tkv_last_error());
			cr_assert_eq(tkv_wait(rt, &t), 0);
		}
}

/* Reads every layer block of seq back: 0 if all are right, -TKV_ECORRUPT
 * counted in *corrupt, any other failure returned. */
static int big_check(tkv_runtime *rt, uint64_t seq, uint64_t n_blocks, int *corrupt)
{
	static unsigned char k[BT * BIG_ROW], v[BT * BIG_ROW], scratch[BIG_ROW];
	for (uint32_t l = 0; l < LAYERS; l++)
		for (uint64_t p = 0; p < n_blocks * BT; p += BT) {
			int rc = tkv_read(rt, seq, l, p, BT, k, v);
			if (rc == -TKV_ECORRUPT && corrupt) {
				(*corrupt)++;
				continue;
			}
			if (rc)
				return rc;
			if (kvp_check(k, seq, l, p, BT, BIG_ROW, 0, scratch) != -1 ||
			    kvp_check(v, seq, l, p, BT, BIG_ROW, 1, scratch) != -1)
				return -99;
		}
	return 0;
}

/* Reads the prefetch thread reaped are verified by readers waiting for
 * blocks (tkv_stats.promote_verified_by_readers), with the right bytes.
 * Which thread takes which read is a race the prefetch thread usually
 * wins (on a loaded machine it won all 16 sequences in 2 of 8 runs), so
 * it is held off verifying (pf_hold_verify) while the reader reads. */
Test(evictor, waiting_readers_verify_prefetched_blocks, .init = make_dir, .fini = remove_dir)
{
	enum { SEQS = 16, BLOCKS = 8 };
	faults fx = {.block = BIG_BLOCK};
	tkv_config c = big_config();
	tkv_runtime *rt = open_with(&c, &fx);
	for (uint64_t s = 1; s <= SEQS; s++) {
		cr_assert_eq(tkv_seq_open(rt, s), 0);
		big_store(rt, s, BLOCKS);
	}
	cr_assert_eq(tkv_seq_open(rt, 99), 0);
	big_store(rt, 99, 2 * HOT_UNITS); /* pushes 1..SEQS out */
	ck_pr_store_32(&fx.read_delay_us, 20000);
	uint64_t s = 1;
	for (; s <= SEQS && stats(rt).promote_verified_by_readers == 0; s++) {
		ck_pr_store_32(&rt->ev->pf_hold_verify, 1);
		cr_assert_eq(tkv_prefetch(rt, s, 0, BLOCKS * BT), 0, "%s", tkv_last_error());
		usleep(2000); /* the prefetch thread claims and submits */
		cr_assert_eq(big_check(rt, s, BLOCKS, NULL), 0, "%s", tkv_last_error());
		ck_pr_store_32(&rt->ev->pf_hold_verify, 0);
		cr_assert_eq(tkv_seq_close(rt, s), 0);
	}
	tkv_stats st = stats(rt);
	cr_assert_gt(st.promote_verified_by_readers, 0, "no reader verified in %llu sequences",
		     (unsigned long long)(s - 1));
	cr_assert_leq(st.promote_verified_by_readers, st.promoted_blocks);
	cr_assert_eq(st.corrupt_records, 0);
	tkv_close(rt);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* tkv_stats reports the CPU time of the evictor and the prefetch thread
 * (tierkv.h): 0 without a cold tier; with one, each grows when its thread
 * works (eviction, then a prefetch) and never exceeds the wall time since
 * open (one thread each, in nanoseconds). */
Test(evictor, background_threads_report_their_cpu_time, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = big_config();
	c.cold_dir = NULL;
	tkv_runtime *rt = NULL;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	tkv_stats st = stats(rt);
	cr_assert_eq(st.evictor_cpu_ns, 0);
	cr_assert_eq(st.prefetch_cpu_ns, 0);
	tkv_close(rt);

	enum { BLOCKS = 8 };
	c = big_config();
	const uint64_t t0 = mono_ns();
	rt = open_with(&c, NULL);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	big_store(rt, 1, BLOCKS);
	const tkv_stats before = stats(rt);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	big_store(rt, 2, 2 * HOT_UNITS); /* pushes 1 out */
	for (int i = 0; i < 5000 && stats(rt).evicted_blocks == 0; i++)
		usleep(1000);
	const tkv_stats evicted = stats(rt);
	cr_assert_gt(evicted.evicted_blocks, 0);
	cr_assert_gt(evicted.evictor_cpu_ns, before.evictor_cpu_ns);
	cr_assert_eq(tkv_prefetch(rt, 1, 0, BLOCKS * BT), 0, "%s", tkv_last_error());
	for (int i = 0; i < 5000 && stats(rt).promoted_blocks == evicted.promoted_blocks; i++)
		usleep(1000);
	cr_assert_eq(big_check(rt, 1, BLOCKS, NULL), 0, "%s", tkv_last_error());
	st = stats(rt);
	cr_assert_gt(st.promoted_blocks, evicted.promoted_blocks);
	cr_assert_gt(st.prefetch_cpu_ns, evicted.prefetch_cpu_ns);
	const uint64_t wall = mono_ns() - t0;
	cr_assert_leq(st.evictor_cpu_ns, wall);
	cr_assert_leq(st.prefetch_cpu_ns, wall);
	tkv_close(rt);
}

/* A prefetched read whose checksum fails is never published: every read of
 * that record's layers reports -TKV_ECORRUPT ("lost"), the others return
 * the right bytes. */
Test(evictor, prefetch_corrupt_read_is_reported, .init = make_dir, .fini = remove_dir)
{
	enum { BLOCKS = 4 };
	faults fx = {.block = BIG_BLOCK};
	tkv_config c = big_config();
	tkv_runtime *rt = open_with(&c, &fx);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	big_store(rt, 1, BLOCKS);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	big_store(rt, 2, 2 * HOT_UNITS);
	ck_pr_store_32(&fx.flip_reads, 1);
	uint64_t before = stats(rt).promoted_blocks;
	cr_assert_eq(tkv_prefetch(rt, 1, 0, BLOCKS * BT), 0, "%s", tkv_last_error());
	/* let the prefetch thread finish (no time limit asserted) */
	for (int i = 0; i < 5000 && (stats(rt).promoted_blocks - before < LAYERS * BLOCKS - LAYERS ||
				     stats(rt).corrupt_records == 0);
	     i++)
		usleep(1000);
	cr_assert_eq(stats(rt).corrupt_records, 1, "the flipped prefetch read failed its CRC");
	int corrupt = 0;
	cr_assert_eq(big_check(rt, 1, BLOCKS, &corrupt), 0, "%s", tkv_last_error());
	cr_assert_geq(corrupt, 1, "the corrupt block is reported, not returned");
	cr_assert_leq(corrupt, LAYERS, "only the layers of one record are lost");
	cr_assert_eq(stats(rt).corrupt_records, 1);
	tkv_close(rt);
}

Test(evictor, restart_recovers_records, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = cold_config();
	tkv_runtime *rt = open_with(&c, NULL);
	cr_assert_eq(tkv_seq_open(rt, 9), 0);
	cr_assert_eq(store_range(rt, 9, 0, 4 * HOT_UNITS * BT), 0);
	cr_assert_gt(stats(rt).evicted_blocks, 0);
	tkv_close(rt); /* sequence 9 left open: its records stay */

	rt = open_with(&c, NULL);
	cr_assert_eq(tkv_seq_open(rt, 9), 0);
	uint64_t tokens = 0;
	cr_assert_eq(tkv_seq_info(rt, 9, NULL, &tokens), 0);
	cr_assert_gt(tokens, 0, "evicted prefix is readable again");
	cr_assert_eq(tokens % BT, 0);
	cr_assert_eq(check_range(rt, 9, 0, tokens), 0, "%s", tkv_last_error());
	/* and the sequence goes on from there */
	cr_assert_eq(store_range(rt, 9, tokens, tokens + 2 * BT), 0, "%s", tkv_last_error());
	cr_assert_eq(check_range(rt, 9, 0, tokens + 2 * BT), 0);
	tkv_close(rt);

	c.head_dim = 32;
	tkv_runtime *other = NULL;
	cr_assert_eq(tkv_open(&c, &other), -EMEDIUMTYPE);
	cr_assert_null(other);
	cr_assert(strstr(tkv_last_error(), "geometry"), "%s", tkv_last_error());
}

static void write_fault_keeps_data(int err, size_t short_len)
{
	make_dir();
	faults fx = {.write_err = err, .write_short = short_len};
	tkv_config c = cold_config();
	tkv_runtime *rt = open_with(&c, &fx);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	/* every write fails: the hot tier fills and then stores get -ENOSPC,
	 * nothing acknowledged is dropped */
	uint64_t p = 0;
	int rc = 0;
	while (p < 8 * HOT_UNITS * BT && !(rc = store_range(rt, 1, p, p + BT)))
		p += BT;
	cr_assert_eq(rc, -ENOSPC, "%s", tkv_strerror(rc));
	/* non-blocking, the same full hot tier is "try again", not final */
	static unsigned char one[ROW];
	cr_assert_eq(tkv_store(rt, 1, 0, p, 1, one, one, TKV_STORE_NONBLOCK, NULL), -EAGAIN);
	tkv_stats st = stats(rt);
	cr_assert_eq(st.evicted_blocks, 0);
	cr_assert_gt(ck_pr_load_32(&fx.writes_seen), 0);
	cr_assert_gt(st.io_errors_enospc + st.io_errors_eio + st.io_errors_short, 0);
	if (err == ENOSPC)
		cr_assert_gt(st.io_errors_enospc, 0);
	else if (err == EIO)
		cr_assert_gt(st.io_errors_eio, 0);
	else
		cr_assert_gt(st.io_errors_short, 0);
	cr_assert_eq(check_range(rt, 1, 0, p), 0, "acknowledged data is still there");
	/* the fault clears: eviction retries and stores go on */
	ck_pr_store_int(&fx.write_err, 0);
	ck_pr_store_64((uint64_t *)&fx.write_short, 0);
	cr_assert_eq(store_range(rt, 1, p, p + 2 * HOT_UNITS * BT), 0, "%s", tkv_last_error());
	cr_assert_gt(stats(rt).evicted_blocks, 0);
	cr_assert_eq(check_range(rt, 1, 0, p + 2 * HOT_UNITS * BT), 0);
	tkv_close(rt);
	remove_dir();
}

Test(evictor, enospc_on_write_keeps_blocks_hot)
{
	write_fault_keeps_data(ENOSPC, 0);
}

Test(evictor, eio_on_write_keeps_blocks_hot)
{
	write_fault_keeps_data(EIO, 0);
}

Test(evictor, short_write_keeps_blocks_hot)
{
	write_fault_keeps_data(0, 4096);
}

Test(evictor, corrupt_record_is_never_returned, .init = make_dir, .fini = remove_dir)
{
	faults fx = {0};
	tkv_config c = cold_config();
	tkv_runtime *rt = open_with(&c, &fx);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	cr_assert_eq(store_range(rt, 1, 0, 4 * BT), 0);
	cr_assert_eq(store_range(rt, 2, 0, 2 * HOT_UNITS * BT), 0);
	/* find a block of sequence 1 that is cold, and corrupt its next read */
	ck_pr_store_32(&fx.flip_reads, 1);
	unsigned char k[BT * ROW], v[BT * ROW], scratch[ROW];
	int corrupt = 0;
	for (uint64_t p = 0; p < 4 * BT; p += BT) {
		for (uint32_t l = 0; l < LAYERS; l++) {
			int rc = tkv_read(rt, 1, l, p, BT, k, v);
			if (rc == -TKV_ECORRUPT) {
				/* the flipped read, or another layer of its record
				 * (a checksum failure drops the whole record) */
				corrupt += strstr(tkv_last_error(), "lost") != NULL;
				cr_assert_eq(tkv_read(rt, 1, l, p, BT, k, v), -TKV_ECORRUPT,
					     "never data afterwards either");
			} else {
				cr_assert_eq(rc, 0, "%s", tkv_last_error());
				cr_assert_eq(kvp_check(k, 1, l, p, BT, ROW, 0, scratch), -1);
				cr_assert_eq(kvp_check(v, 1, l, p, BT, ROW, 1, scratch), -1);
			}
		}
	}
	cr_assert_geq(corrupt, 1, "the flipped read fails");
	cr_assert_leq(corrupt, LAYERS, "only the layers of one record are lost");
	cr_assert_eq(stats(rt).corrupt_records, 1);
	tkv_close(rt);
}

/* Opens the cold directory directly, as tkv_open would (tiers/evictor.c). */
static tkv__cold *open_cold_direct(const tkv_config *c)
{
	tkv__cold_config cc;
	cold_config_of(c, &cc);
	tkv__cold *cold = NULL;
	cr_assert_eq(tkv__cold_open(&cc, &cold), 0, "%s", tkv_last_error());
	return cold;
}

Test(evictor, records_past_a_gap_are_deleted_on_reopen, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = cold_config();
	tkv_runtime *rt = open_with(&c, NULL);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	cr_assert_eq(store_range(rt, 1, 0, 3 * BT), 0);
	cr_assert_eq(store_range(rt, 2, 0, 3 * HOT_UNITS * BT), 0); /* evicts 1 */
	tkv_close(rt);

	/* a record lost in a crash: block 1 of sequence 1 */
	tkv__cold *cold = open_cold_direct(&c);
	cr_assert(tkv__cold_lookup(cold, 1, 0, NULL) && tkv__cold_lookup(cold, 1, 2, NULL),
		  "blocks 0 and 2 of sequence 1 were evicted");
	cr_assert_eq(tkv__cold_remove(cold, 1, 1), 0);
	tkv__cold_close(cold);

	rt = open_with(&c, NULL);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	uint64_t tokens = 0;
	cr_assert_eq(tkv_seq_info(rt, 1, NULL, &tokens), 0);
	cr_assert_eq(tokens, BT, "only the prefix before the gap");
	tkv_close(rt);

	/* block 2 belonged to a history the sequence no longer has: gone */
	cold = open_cold_direct(&c);
	cr_assert(tkv__cold_lookup(cold, 1, 0, NULL));
	cr_assert_not(tkv__cold_lookup(cold, 1, 2, NULL), "stale record past the gap survived");
	tkv__cold_close(cold);
}

Test(evictor, close_with_pending_stores_under_eviction, .init = make_dir, .fini = remove_dir)
{
	tkv_config c = cold_config();
	tkv_runtime *rt = open_with(&c, NULL);
	static unsigned char k[4 * BT * ROW], v[4 * BT * ROW];
	kvp_fill(k, 3, 0, 0, 4 * BT, ROW, 0);
	kvp_fill(v, 3, 0, 0, 4 * BT, ROW, 1);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	uint64_t p2 = 0;
	for (int round = 0; round < 20; round++) {
		/* keep the hot tier over its high watermark: the evictor is busy */
		cr_assert_eq(store_range(rt, 2, p2, p2 + HOT_UNITS * BT / 2), 0, "%s",
			     tkv_last_error());
		p2 += HOT_UNITS * BT / 2;
		/* a sequence whose units complete while it is being closed */
		cr_assert_eq(tkv_seq_open(rt, 3), 0);
		tkv__test_pause(rt, true);
		for (uint32_t l = 0; l < LAYERS; l++)
			cr_assert_eq(tkv_store(rt, 3, l, 0, 4 * BT, k, v, 0, NULL), 0);
		tkv__test_pause(rt, false);
		cr_assert_eq(tkv_seq_close(rt, 3), 0, "%s", tkv_last_error());
	}
	cr_assert_eq(check_range(rt, 2, 0, p2), 0);
	tkv_close(rt);
}

/* ---- regressions of bugs the evict bench once worked around ---------------- */

/* A hot-tier copy that naps on its first call after slow_copy_armed is set,
 * so a worker can be caught holding a dequeued descriptor it has not copied
 * yet: the ring is empty, but the units of that descriptor are about to
 * become evictable. */
static uint32_t slow_copy_armed;
static tkv__copy_fn real_hot_copy;

static void slow_hot_copy(void *restrict dst, const void *restrict src, size_t n)
{
	if (ck_pr_load_32(&slow_copy_armed) && ck_pr_fas_32(&slow_copy_armed, 0))
		usleep(300 * 1000);
	real_hot_copy(dst, src, n);
}

/* A blocking store on a full hot tier must wait while accepted stores are
 * still being copied: those copies complete units the evictor can then
 * write out. It once got -ENOSPC ("nothing more can be evicted") as soon as
 * the workers' rings were empty, although a worker was still copying the
 * last descriptor it had taken (the bench retried such stores). */
Test(evictor, full_hot_tier_waits_for_copies_in_progress, .init = make_dir,
     .fini = remove_dir)
{
	tkv_config c = cold_config();
	tkv_runtime *rt = open_with(&c, NULL);
	enum { UNITS = HOT_UNITS, TOK = UNITS * BT };
	static unsigned char k[TOK * ROW], v[TOK * ROW];
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	/* every layer but the last: 3/4 of the hot tier, no unit complete */
	for (uint32_t l = 0; l + 1 < LAYERS; l++) {
		kvp_fill(k, 1, l, 0, TOK, ROW, 0);
		kvp_fill(v, 1, l, 0, TOK, ROW, 1);
		cr_assert_eq(tkv_store(rt, 1, l, 0, TOK, k, v, 0, NULL), 0, "%s", tkv_last_error());
		cr_assert_eq(tkv_seq_sync(rt, 1), 0);
	}
	/* The last layer in one descriptor fills the hot tier to the brim; its
	 * worker takes it off the ring and naps in the first copy, before any
	 * unit is complete. Set before the store: the ring's release/acquire
	 * publishes it to the worker. */
	real_hot_copy = rt->hot_copy;
	rt->hot_copy = slow_hot_copy;
	ck_pr_store_32(&slow_copy_armed, 1);
	kvp_fill(k, 1, LAYERS - 1, 0, TOK, ROW, 0);
	kvp_fill(v, 1, LAYERS - 1, 0, TOK, ROW, 1);
	cr_assert_eq(tkv_store(rt, 1, LAYERS - 1, 0, TOK, k, v, 0, NULL), 0, "%s",
		     tkv_last_error());
	tkv__worker *w = &rt->workers[(LAYERS - 1) % rt->n_workers];
	while (tkv__dring_size(&w->ring) || ck_pr_load_32(&slow_copy_armed))
		usleep(100);
	/* full, nothing evictable yet, rings empty, a copy in progress */
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	static unsigned char k2[BT * ROW], v2[BT * ROW];
	kvp_fill(k2, 2, 0, 0, BT, ROW, 0);
	kvp_fill(v2, 2, 0, 0, BT, ROW, 1);
	int rc = tkv_store(rt, 2, 0, 0, BT, k2, v2, 0, NULL);
	cr_assert_eq(rc, 0, "a store got %s while a copy was in progress: %s", tkv_strerror(rc),
		     tkv_last_error());
	cr_assert_eq(tkv_seq_sync(rt, 1), 0);
	cr_assert_eq(check_range(rt, 1, 0, TOK), 0);
	tkv_close(rt);
}

/* ---- room made on demand: a hot tier kept full (100/99) ---------------- */

enum { FILLED = HOT_UNITS - 1, BATCH = 8, STUCK_BATCH = 50 };

static tkv_runtime *open_full_tier(void)
{
	tkv_config c = cold_config();
	c.hot_high_pct = 100;
	c.hot_low_pct = 99;
	return open_with(&c, NULL);
}

/* Sequence 1: FILLED complete units (60 of 64 blocks, all evictable). */
static void fill_complete(tkv_runtime *rt)
{
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(store_range(rt, 1, 0, FILLED * BT), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_seq_sync(rt, 1), 0);
}

/* Sequence 1: layer 0 only of FILLED units: none complete, none evictable;
 * 49 blocks stay free, one short of STUCK_BATCH. */
static void fill_incomplete(tkv_runtime *rt)
{
	enum { TOK = FILLED * BT };
	static unsigned char k[TOK * ROW], v[TOK * ROW];
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	kvp_fill(k, 1, 0, 0, TOK, ROW, 0);
	kvp_fill(v, 1, 0, 0, TOK, ROW, 1);
	cr_assert_eq(tkv_store(rt, 1, 0, 0, TOK, k, v, 0, NULL), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_seq_sync(rt, 1), 0);
}

/* BATCH blocks of layer 0 of sequence 2, as one store with flags. */
static int store_batch(tkv_runtime *rt, unsigned flags)
{
	static unsigned char k[BATCH * BT * ROW], v[BATCH * BT * ROW];
	kvp_fill(k, 2, 0, 0, BATCH * BT, ROW, 0);
	kvp_fill(v, 2, 0, 0, BATCH * BT, ROW, 1);
	return tkv_store(rt, 2, 0, 0, BATCH * BT, k, v, flags, NULL);
}

static void check_batch(tkv_runtime *rt)
{
	static unsigned char k[BATCH * BT * ROW], v[BATCH * BT * ROW];
	unsigned char scratch[ROW];
	cr_assert_eq(tkv_read(rt, 2, 0, 0, BATCH * BT, k, v), 0, "%s", tkv_last_error());
	cr_assert_eq(kvp_check(k, 2, 0, 0, BATCH * BT, ROW, 0, scratch), -1);
	cr_assert_eq(kvp_check(v, 2, 0, 0, BATCH * BT, ROW, 1, scratch), -1);
}

/* STUCK_BATCH blocks of layer 1 of sequence 2 (more than is free). */
static int store_stuck_batch(tkv_runtime *rt, unsigned flags)
{
	static unsigned char k[STUCK_BATCH * BT * ROW], v[STUCK_BATCH * BT * ROW];
	return tkv_store(rt, 2, 1, 0, STUCK_BATCH * BT, k, v, flags, NULL);
}

/* A batch larger than the free space, with the hot tier under its high
 * watermark: the evictor must make room for it. It once slept (nothing past
 * the mark) while the store re-checked "any room?" and spun, until the 2 s
 * bound failed the store with -ENOSPC although every block was evictable. */
Test(evictor, batch_larger_than_free_space_below_high_watermark, .init = make_dir,
     .fini = remove_dir)
{
	tkv_runtime *rt = open_full_tier();
	fill_complete(rt);
	tkv_stats st = stats(rt);
	cr_assert_eq(st.evicted_blocks, 0, "nothing evicted under a 100%% watermark");
	cr_assert_eq(st.hot_bytes_used, (uint64_t)FILLED * LAYERS * BLOCK);
	/* 8 blocks of one layer; 4 free, and 60 of 64 is under the mark */
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	int rc = store_batch(rt, 0);
	cr_assert_eq(rc, 0, "store got %s: %s", tkv_strerror(rc), tkv_last_error());
	cr_assert_eq(tkv_seq_sync(rt, 2), 0);
	st = stats(rt);
	cr_assert_gt(st.evicted_blocks, 0, "room made by eviction, not by luck");
	cr_assert_eq(st.hot_space_waits, 1, "the store waited once for its room");
	cr_assert_gt(st.hot_space_wait_ns, 0);
	cr_assert_eq(check_range(rt, 1, 0, FILLED * BT), 0, "%s", tkv_last_error());
	check_batch(rt);
	tkv_close(rt);
}

/* The same batch from a non-blocking store: -EAGAIN, but the evictor makes
 * the room, so a retry succeeds (it once returned -EAGAIN for ever: only a
 * waiting store asked for room under the high watermark). */
Test(evictor, nonblocking_batch_larger_than_free_space_gets_room, .init = make_dir,
     .fini = remove_dir)
{
	tkv_runtime *rt = open_full_tier();
	fill_complete(rt);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	int rc, tries = 0;
	while ((rc = store_batch(rt, TKV_STORE_NONBLOCK)) == -EAGAIN && ++tries < 10000)
		usleep(1000);
	cr_assert_eq(rc, 0, "store got %s after %d tries: %s", tkv_strerror(rc), tries,
		     tkv_last_error());
	cr_assert_gt(tries, 0, "the first try found no room");
	cr_assert_eq(tkv_seq_sync(rt, 2), 0);
	cr_assert_gt(stats(rt).evicted_blocks, 0);
	check_batch(rt);
	tkv_close(rt);
}

/* More blocks of one layer than the whole hot tier: refused at once,
 * without evicting anything for it. */
Test(evictor, store_larger_than_the_hot_tier_is_refused_at_once, .init = make_dir,
     .fini = remove_dir)
{
	tkv_config c = cold_config();
	tkv_runtime *rt = open_with(&c, NULL);
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	cr_assert_eq(store_range(rt, 1, 0, 4 * BT), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_seq_sync(rt, 1), 0);
	enum { TOO_MANY = HOT_UNITS * LAYERS + 1 };
	unsigned char *kv = calloc(TOO_MANY * BT, ROW);
	cr_assert_not_null(kv);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	int rc = tkv_store(rt, 2, 0, 0, TOO_MANY * BT, kv, kv, 0, NULL);
	cr_assert_eq(rc, -ENOSPC);
	cr_assert_not_null(strstr(tkv_last_error(), "more than the whole hot tier"), "%s",
			   tkv_last_error());
	cr_assert_eq(stats(rt).evicted_blocks, 0, "nothing evicted for a store that cannot fit");
	cr_assert_eq(check_range(rt, 1, 0, 4 * BT), 0, "%s", tkv_last_error());
	free(kv);
	tkv_close(rt);
}

/* A store that cannot fit while nothing is evictable (every unit is
 * incomplete) waits, bounded, without the evictor running a pass for each
 * of its 1 ms re-checks: the waiter's kick ended every back-off of the
 * stuck evictor, ~150,000 passes in the 2 s. */
Test(evictor, waiting_on_a_stuck_evictor_does_not_spin, .init = make_dir, .fini = remove_dir)
{
	tkv_runtime *rt = open_full_tier();
	fill_incomplete(rt);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	uint32_t passes0 = ck_pr_load_32(&rt->ev->passes);
	int rc = store_stuck_batch(rt, 0);
	uint32_t passes = ck_pr_load_32(&rt->ev->passes) - passes0;
	cr_assert_eq(rc, -ENOSPC, "%s", tkv_strerror(rc));
	cr_assert_lt(passes, 1000, "%u evictor passes while one store waited", passes);
	cr_assert_eq(stats(rt).evicted_blocks, 0);
	tkv_close(rt);
}

/* Non-blocking stores polling a stuck evictor (nothing evictable): each
 * -EAGAIN publishes the demand but does not end the evictor's back-off,
 * so the polling drives a bounded number of passes (it drove one per
 * call: 5947 for 5947 tries in a second). */
Test(evictor, nonblocking_polling_does_not_spin_a_stuck_evictor, .init = make_dir,
     .fini = remove_dir)
{
	tkv_runtime *rt = open_full_tier();
	fill_incomplete(rt);
	cr_assert_eq(tkv_seq_open(rt, 2), 0);
	/* let the evictor find itself stuck once */
	cr_assert_eq(store_stuck_batch(rt, TKV_STORE_NONBLOCK), -EAGAIN);
	usleep(50000);
	uint32_t passes0 = ck_pr_load_32(&rt->ev->passes);
	for (int i = 0; i < 2000; i++) { /* ~0.5 s of polling, as an engine would */
		cr_assert_eq(store_stuck_batch(rt, TKV_STORE_NONBLOCK), -EAGAIN);
		usleep(200);
	}
	uint32_t passes = ck_pr_load_32(&rt->ev->passes) - passes0;
	cr_assert_lt(passes, 1000, "%u evictor passes for 2000 polls", passes);
	tkv_close(rt);
}
