/* cold_faults.c - faults injected through the cold tier's I/O seam
 * (tkv__cold_io): ENOSPC, EIO, short writes, failed fdatasync, bit flips on
 * read, slow I/O, io_uring and O_DIRECT unavailable, failed preallocation.
 * Every write fault must leave the record not durable, its slot free, the
 * error counted by kind and reported in the completion; every read fault
 * must return an error, never wrong data. A failed fdatasync fails exactly
 * the records of its batch in its segment, and every other record is
 * durable (it reads back after a reopen).
 *
 * Every test runs on both backends (io_uring, then pwrite with
 * force_pwrite), except io_uring_unavailable_falls_back_to_pwrite, which is
 * about reaching the pwrite backend when io_uring cannot start. The seam
 * injects each fault where a request is issued, so both backends see the
 * same faults. */
#include "cold_helpers.h"

#include <time.h>

#define LAYERS 4
#define REC (4096 + LAYERS * 16384)

static char *dir;
static cold_faults fs;
static void setup(void)
{
	dir = cold_tmpdir();
	cold_faults_init(&fs);
}
static void teardown(void)
{
	cold_rmdir(dir);
	dir = NULL;
}
TestSuite(cold_faults, .init = setup, .fini = teardown, .timeout = 120);

static tkv__cold *open_f(uint64_t n_records, bool force_pwrite)
{
	tkv__cold_config cfg;
	tkv__cold *c;
	cold_small_cfg(&cfg, dir, n_records);
	cfg.force_pwrite = force_pwrite;
	cfg.io = &fs.io;
	cr_assert_eq(tkv__cold_open(&cfg, &c), 0, "open: %s", tkv_last_error());
	return c;
}

static void reopen_dir(tkv__cold **c)
{
	tkv__cold_close(*c);
	*c = NULL;
	cold_rmdir(dir);
	dir = cold_tmpdir();
	cold_faults_clear(&fs);
}

/* A new empty directory and no fault rules, for the next backend. */
static void fresh_dir(void)
{
	cold_rmdir(dir);
	dir = cold_tmpdir();
	cold_faults_clear(&fs);
}

static tkv__cold_stats stats(tkv__cold *c)
{
	tkv__cold_stats st;
	(void)tkv__cold_write_reap(c, NULL, 0, false); /* let the writer free dead slots */
	tkv__cold_stats_get(c, &st);
	return st;
}

/* One record, staged or written from its blocks (tiers/cold.h). */
typedef struct rec_src {
	bool from_blocks;
	void *buf;     /* the staging buffer, or the header buffer */
	void **blocks; /* from_blocks: the layers */
} rec_src;

static rec_src src_make(tkv__cold *c, bool from_blocks)
{
	rec_src r = {from_blocks, NULL, NULL};
	if (from_blocks) {
		r.buf = tkv__cold_header_alloc(c);
		r.blocks = cold_blocks_alloc(c, LAYERS, 1, 1, 0);
	} else {
		r.buf = tkv__cold_buf_alloc(c);
		cold_fill(c, r.buf, LAYERS, 1, 1, 0);
	}
	cr_assert_not_null(r.buf);
	return r;
}

static int src_write(tkv__cold *c, const rec_src *r)
{
	return r->from_blocks ? cold_write_blocks_sync(c, 1, 1, 16, r->buf, r->blocks)
			      : cold_write_sync(c, 1, 1, 16, r->buf);
}

static void src_free(tkv__cold *c, rec_src *r)
{
	tkv__cold_buf_free(c, r->buf);
	if (r->blocks)
		cold_blocks_free(r->blocks, LAYERS);
}

/* A write fault: status, counter, nothing stored, slot free, retry works;
 * on both backends, for a staged record and for one written from its
 * blocks (a vectored write: a short one is cut inside its pieces). */
static void write_fault_case(tkv__cold_fault f, int want_status, size_t off_counter)
{
	for (int pw = 0; pw < 2; pw++)
		for (int direct = 0; direct < 2; direct++) {
			tkv__cold *c = open_f(16, pw);
			rec_src src = src_make(c, direct);
			tkv__cold_stats st;
			cold_rule *r = cold_faults_add(&fs, TKV__COLD_OP_WRITE, REC, 0, 1, f);
			cr_assert_eq(src_write(c, &src), want_status, "backend %d, direct %d", pw,
				     direct);
			cr_assert_eq(cold_rule_hits(&fs, r), 1);
			st = stats(c);
			cr_assert_eq(*(uint64_t *)((char *)&st + off_counter), 1, "counted by kind");
			cr_assert_eq(st.records_written, 0);
			cr_assert_eq(st.bytes_used, 0, "slot freed");
			cr_assert_eq(st.writes_in_flight, 0);
			cr_assert_not(tkv__cold_lookup(c, 1, 1, NULL), "not durable, not visible");
			/* the evictor retries: works now, and reads back whole */
			cr_assert_eq(src_write(c, &src), 0);
			cr_assert(tkv__cold_lookup(c, 1, 1, NULL));
			void *dst = aligned_alloc(4096, tkv__cold_block_bytes(c));
			for (uint32_t l = 0; l < LAYERS; l++) {
				cr_assert_eq(tkv__cold_read_layer(c, 1, 1, l, dst, NULL), 0, "%s",
					     tkv_last_error());
				cr_assert(cold_layer_is(c, dst, 1, 1, l, 0), "layer %u", l);
			}
			free(dst);
			src_free(c, &src);
			reopen_dir(&c);
			/* and the failed attempt left nothing a restart would pick up */
		}
}

Test(cold_faults, write_enospc)
{
	write_fault_case((tkv__cold_fault){.err = ENOSPC}, -ENOSPC,
			 offsetof(tkv__cold_stats, write_enospc));
}

Test(cold_faults, write_eio)
{
	write_fault_case((tkv__cold_fault){.err = EIO}, -EIO, offsetof(tkv__cold_stats, write_eio));
}

Test(cold_faults, write_short)
{
	/* half the record reaches the disk, header included */
	write_fault_case((tkv__cold_fault){.short_len = REC / 2}, -EIO,
			 offsetof(tkv__cold_stats, write_short));
}

Test(cold_faults, write_short_to_nothing)
{
	write_fault_case((tkv__cold_fault){.short_len = 100}, -EIO,
			 offsetof(tkv__cold_stats, write_short));
}

Test(cold_faults, short_write_is_not_recovered)
{
	/* A short write that got the header out must not come back after a
	 * restart: its slot's header is zeroed when the slot is freed. */
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_f(16, pw);
		void *buf = tkv__cold_buf_alloc(c);
		tkv__cold_stats st;
		cold_fill(c, buf, LAYERS, 1, 1, 0);
		cold_faults_add(&fs, TKV__COLD_OP_WRITE, REC, 0, 1,
				(tkv__cold_fault){.short_len = 8192});
		cr_assert_eq(cold_write_sync(c, 1, 1, 16, buf), -EIO, "backend %d", pw);
		tkv__cold_close(c);
		c = open_f(16, pw);
		st = stats(c);
		cr_assert_eq(st.recovered + st.recovery_torn, 0, "backend %d", pw);
		tkv__cold_buf_free(c, buf);
		reopen_dir(&c);
	}
}

/* Submits records (seq, first..first+n-1) together, so that they complete
 * as one sync batch (n <= sync_batch: a batch closes only when no write of
 * it is in flight), and reaps them into st_by_block[block]. */
static void write_batch(tkv__cold *c, uint64_t seq, uint64_t first, int n, void **bufs,
			int *status_by_block)
{
	tkv__cold_done d[16];
	int got = 0;
	cr_assert_leq(n, 16);
	for (int i = 0; i < n; i++) {
		cold_fill(c, bufs[i], LAYERS, seq, first + (uint64_t)i, 0);
		cr_assert_eq(tkv__cold_write_submit(c, seq, first + (uint64_t)i, 16, bufs[i],
						    (void *)(uintptr_t)(first + (uint64_t)i)), 0);
	}
	while (got < n)
		got += tkv__cold_write_reap(c, d + got, n - got, true);
	for (int i = 0; i < n; i++)
		status_by_block[(uintptr_t)d[i].user] = d[i].status;
}

/* Record (seq, block) is durable: visible, reads back, and (after a reopen)
 * recovered. */
static void expect_durable(tkv__cold *c, uint64_t seq, uint64_t block, bool durable, int pw)
{
	unsigned char *dst = aligned_alloc(4096, 16384);
	cr_assert_eq(tkv__cold_lookup(c, seq, block, NULL), durable, "block %lu backend %d",
		     (unsigned long)block, pw);
	cr_assert_eq(tkv__cold_read_layer(c, seq, block, 1, dst, NULL), durable ? 0 : -ENOENT,
		     "block %lu backend %d", (unsigned long)block, pw);
	if (durable)
		cr_assert(cold_layer_is(c, dst, seq, block, 1, 0));
	free(dst);
}

/*
 * One failed fdatasync fails every record of its batch, and only those:
 * record 0 was durable before (its own batch), records 1-3 form the batch
 * whose sync fails, records 4-5 come after it. All in segment 0. A library
 * that failed only some records of the failed batch (and called the others
 * durable), or that issued no fdatasync at all (the injected failure would
 * then never happen), fails here.
 */
Test(cold_faults, fdatasync_failure_fails_the_batch)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_f(48, pw);
		void *b[3];
		int status[6];
		tkv__cold_stats st;
		cold_rule *r;
		for (int i = 0; i < 3; i++)
			b[i] = tkv__cold_buf_alloc(c);
		write_batch(c, 2, 0, 1, b, status);
		cr_assert_eq(status[0], 0, "backend %d", pw);
		r = cold_faults_add(&fs, TKV__COLD_OP_SYNC, 0, 0, 1, (tkv__cold_fault){.err = EIO});
		write_batch(c, 2, 1, 3, b, status);
		cr_assert_eq(cold_rule_hits(&fs, r), 1, "one fdatasync for the batch");
		for (int i = 1; i <= 3; i++)
			cr_assert_eq(status[i], -EIO, "record %d of the failed batch: %d, backend %d",
				     i, status[i], pw);
		write_batch(c, 2, 4, 2, b, status);
		cr_assert_eq(status[4], 0, "backend %d", pw);
		cr_assert_eq(status[5], 0, "backend %d", pw);
		st = stats(c);
		cr_assert_eq(st.syncs, 3, "one fdatasync per batch (one segment)");
		cr_assert_eq(st.records_written, 3);
		cr_assert_eq(st.write_eio, 3);
		cr_assert_eq(st.records_live, 3);
		cr_assert_eq(st.bytes_used, 3 * REC);
		for (uint64_t k = 0; k < 6; k++)
			expect_durable(c, 2, k, k == 0 || k >= 4, pw);
		tkv__cold_close(c);
		/* and a restart finds exactly the durable ones */
		c = open_f(48, pw);
		st = stats(c);
		cr_assert_eq(st.recovered, 3, "backend %d", pw);
		for (uint64_t k = 0; k < 6; k++)
			expect_durable(c, 2, k, k == 0 || k >= 4, pw);
		for (int i = 0; i < 3; i++)
			tkv__cold_buf_free(c, b[i]);
		reopen_dir(&c);
	}
}

/*
 * One batch of 8 records over 2 segments (4 records a segment; a new store
 * fills segment 0's slots first, so records 0-3 go to segment 0 and 4-7 to
 * segment 1), whose first fdatasync (segment 0's: segments sync in order)
 * fails: exactly segment 0's records fail, segment 1's are durable.
 */
Test(cold_faults, sync_failure_only_fails_its_segment)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold_config cfg;
		tkv__cold *c;
		tkv__cold_stats st;
		void *b[8];
		int status[8];
		cold_rule *r;
		cold_small_cfg(&cfg, dir, 32);
		cfg.segment_bytes = 4 * REC;
		cfg.queue_depth = 8;
		cfg.sync_batch = 8; /* all 8 in one batch, whatever the timing */
		cfg.force_pwrite = pw;
		cfg.io = &fs.io;
		cr_assert_eq(tkv__cold_open(&cfg, &c), 0);
		r = cold_faults_add(&fs, TKV__COLD_OP_SYNC, 0, 0, 1, (tkv__cold_fault){.err = EIO});
		for (int i = 0; i < 8; i++)
			b[i] = tkv__cold_buf_alloc(c);
		write_batch(c, 3, 0, 8, b, status);
		cr_assert_eq(cold_rule_hits(&fs, r), 1);
		cr_assert_eq(cold_rule_seg(&fs, r), 0, "segment 0 syncs first");
		for (int i = 0; i < 8; i++)
			cr_assert_eq(status[i], i < 4 ? -EIO : 0, "record %d: %d, backend %d", i,
				     status[i], pw);
		st = stats(c);
		cr_assert_eq(st.syncs, 2, "one batch, two segments");
		cr_assert_eq(st.write_eio, 4);
		cr_assert_eq(st.records_written, 4);
		for (uint64_t k = 0; k < 8; k++)
			expect_durable(c, 3, k, k >= 4, pw);
		tkv__cold_close(c);
		cr_assert_eq(tkv__cold_open(&cfg, &c), 0);
		st = stats(c);
		cr_assert_eq(st.recovered, 4, "backend %d", pw);
		for (uint64_t k = 0; k < 8; k++)
			expect_durable(c, 3, k, k >= 4, pw);
		for (int i = 0; i < 8; i++)
			tkv__cold_buf_free(c, b[i]);
		tkv__cold_close(c);
		fresh_dir();
	}
}

typedef struct finish_job {
	tkv__cold *c;
	tkv__cold_rio r;
	int rc;
} finish_job;

static void *finish_on_thread(void *arg)
{
	finish_job *f = arg;
	f->rc = tkv__cold_read_finish(f->c, &f->r, NULL);
	return NULL;
}

/* async: 0 synchronous read, 1 read_reap, 2 read_reap_io then read_finish
 * on another thread. */
static void flip_case(int async, bool record, bool pw)
{
	tkv__cold *c = open_f(16, pw);
	void *buf = tkv__cold_buf_alloc(c), *rec = tkv__cold_buf_alloc(c);
	unsigned char *dst = aligned_alloc(4096, 16384);
	tkv__cold_stats st;
	int rc;
	cold_fill(c, buf, LAYERS, 4, 0, 0);
	cr_assert_eq(cold_write_sync(c, 4, 0, 16, buf), 0);
	cold_fill(c, buf, LAYERS, 4, 1, 0);
	cr_assert_eq(cold_write_sync(c, 4, 1, 16, buf), 0);
	cold_faults_add(&fs, TKV__COLD_OP_READ, 0, 0, 1, (tkv__cold_fault){.flip_bit = 1 + 8 * (4096 + 777) + 3});
	memset(dst, 0, 16384);
	if (async == 2) {
		finish_job f = {c, {0}, 0};
		pthread_t t;
		cr_assert_eq(tkv__cold_read_submit(c, 4, 0, record ? TKV__COLD_ALL_LAYERS : 2,
						   record ? rec : (void *)dst, dst), 0);
		cr_assert_eq(tkv__cold_read_reap_io(c, &f.r, 1, true), 1);
		cr_assert_eq(f.r.user, dst);
		cr_assert(tkv__cold_lookup(c, 4, 0, NULL), "not verified yet: not dropped yet");
		pthread_create(&t, NULL, finish_on_thread, &f);
		pthread_join(t, NULL);
		rc = f.rc;
	} else if (async) {
		tkv__cold_done d;
		cr_assert_eq(tkv__cold_read_submit(c, 4, 0, record ? TKV__COLD_ALL_LAYERS : 2,
						   record ? rec : (void *)dst, dst), 0);
		cr_assert_eq(tkv__cold_read_reap(c, &d, 1, true), 1);
		cr_assert_eq(d.user, dst);
		rc = d.status;
	} else {
		rc = record ? tkv__cold_read_record(c, 4, 0, rec, NULL)
			    : tkv__cold_read_layer(c, 4, 0, 2, dst, NULL);
	}
	cr_assert_eq(rc, -TKV_ECORRUPT, "async %d record %d backend %d", async, record, pw);
	st = stats(c);
	cr_assert_eq(st.corrupt, 1);
	cr_assert_not(tkv__cold_lookup(c, 4, 0, NULL), "corrupt record leaves the index");
	cr_assert_eq(tkv__cold_read_layer(c, 4, 0, 2, dst, NULL), -ENOENT);
	cr_assert_eq(st.records_live, 1);
	cr_assert_eq(st.bytes_used, REC, "its slot is freed");
	/* the neighbour is untouched */
	cr_assert_eq(tkv__cold_read_layer(c, 4, 1, 2, dst, NULL), 0);
	cr_assert(cold_layer_is(c, dst, 4, 1, 2, 0));
	free(dst);
	tkv__cold_buf_free(c, buf);
	tkv__cold_buf_free(c, rec);
	reopen_dir(&c);
}

Test(cold_faults, bit_flip_on_read_is_corrupt)
{
	for (int pw = 0; pw < 2; pw++)
		for (int async = 0; async < 3; async++)
			for (int record = 0; record < 2; record++)
				flip_case(async, record, pw);
}

Test(cold_faults, read_eio_and_short_read_keep_the_record)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_f(16, pw);
		void *buf = tkv__cold_buf_alloc(c);
		unsigned char *dst = aligned_alloc(4096, 16384);
		tkv__cold_stats st;
		tkv__cold_done d;
		cold_fill(c, buf, LAYERS, 5, 0, 0);
		cr_assert_eq(cold_write_sync(c, 5, 0, 16, buf), 0);
		cold_faults_add(&fs, TKV__COLD_OP_READ, 0, 0, 1, (tkv__cold_fault){.err = EIO});
		cold_faults_add(&fs, TKV__COLD_OP_READ, 0, 0, 1, (tkv__cold_fault){.short_len = 4096});
		cr_assert_eq(tkv__cold_read_layer(c, 5, 0, 0, dst, NULL), -EIO);
		cr_assert_eq(tkv__cold_read_submit(c, 5, 0, 1, dst, NULL), 0);
		cr_assert_eq(tkv__cold_read_reap(c, &d, 1, true), 1);
		cr_assert_eq(d.status, -EIO);
		st = stats(c);
		cr_assert_eq(st.read_eio, 1);
		cr_assert_eq(st.read_short, 1);
		cr_assert_eq(st.corrupt, 0);
		cr_assert(tkv__cold_lookup(c, 5, 0, NULL), "an I/O error is not corruption");
		cr_assert_eq(tkv__cold_read_layer(c, 5, 0, 0, dst, NULL), 0);
		cr_assert(cold_layer_is(c, dst, 5, 0, 0, 0));
		free(dst);
		tkv__cold_buf_free(c, buf);
		reopen_dir(&c);
	}
}

static uint64_t ms_since(uint64_t t0)
{
	return (tkv__cold_now_ns() - t0) / 1000000;
}

Test(cold_faults, slow_write_does_not_block_reads_or_reap)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_f(16, pw);
		void *buf = tkv__cold_buf_alloc(c), *buf2 = tkv__cold_buf_alloc(c);
		unsigned char *dst = aligned_alloc(4096, 16384);
		tkv__cold_done d;
		tkv__cold_stats st;
		uint64_t t0;
		cold_fill(c, buf, LAYERS, 6, 0, 0);
		cr_assert_eq(cold_write_sync(c, 6, 0, 16, buf), 0);
		cold_faults_add(&fs, TKV__COLD_OP_WRITE, REC, 0, 1, (tkv__cold_fault){.delay_us = 800000});
		cold_fill(c, buf2, LAYERS, 6, 1, 0);
		t0 = tkv__cold_now_ns();
		cr_assert_eq(tkv__cold_write_submit(c, 6, 1, 16, buf2, buf2), 0);
		cr_assert_eq(tkv__cold_write_reap(c, &d, 1, false), 0, "not done yet");
		st = stats(c);
		cr_assert_eq(st.writes_in_flight, 1);
		/* readers are not held up by the slow write */
		cr_assert_eq(tkv__cold_read_layer(c, 6, 0, 1, dst, NULL), 0);
		cr_assert_not(tkv__cold_lookup(c, 6, 1, NULL), "not visible before durable");
		cr_assert_lt(ms_since(t0), 500, "submit + read took %lu ms", ms_since(t0));
		cr_assert_eq(tkv__cold_write_reap(c, &d, 1, true), 1);
		cr_assert_eq(d.status, 0);
		cr_assert_geq(ms_since(t0), 790);
		cr_assert(tkv__cold_lookup(c, 6, 1, NULL));
		free(dst);
		tkv__cold_buf_free(c, buf);
		tkv__cold_buf_free(c, buf2);
		reopen_dir(&c);
	}
}

Test(cold_faults, slow_async_read)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_f(16, pw);
		void *buf = tkv__cold_buf_alloc(c);
		unsigned char *dst = aligned_alloc(4096, 2 * 16384);
		tkv__cold_done d[2];
		uint64_t t0;
		cold_fill(c, buf, LAYERS, 7, 0, 0);
		cr_assert_eq(cold_write_sync(c, 7, 0, 16, buf), 0);
		cold_faults_add(&fs, TKV__COLD_OP_READ, 0, 0, 1, (tkv__cold_fault){.delay_us = 600000});
		t0 = tkv__cold_now_ns();
		cr_assert_eq(tkv__cold_read_submit(c, 7, 0, 0, dst, (void *)1), 0); /* slow */
		cr_assert_eq(tkv__cold_read_submit(c, 7, 0, 1, dst + 16384, (void *)2), 0);
		/* layer 1 completes first: a view of it does not wait for the slow one */
		cr_assert_eq(tkv__cold_read_reap(c, d, 2, true), 1);
		cr_assert_eq(d[0].user, (void *)2);
		cr_assert_lt(ms_since(t0), 400, "the fast layer waited %lu ms", ms_since(t0));
		cr_assert_eq(tkv__cold_read_reap(c, d, 2, false), 0);
		cr_assert_eq(tkv__cold_read_reap(c, d, 2, true), 1);
		cr_assert_eq(d[0].user, (void *)1);
		cr_assert_eq(d[0].status, 0);
		cr_assert_geq(ms_since(t0), 590);
		cr_assert(cold_layer_is(c, dst, 7, 0, 0, 0));
		cr_assert(cold_layer_is(c, dst + 16384, 7, 0, 1, 0));
		free(dst);
		tkv__cold_buf_free(c, buf);
		tkv__cold_close(c);
		fresh_dir();
	}
}

/* pwrite only, by nature: this is how the pwrite backend is reached when
 * io_uring cannot start (force_pwrite would skip io_uring_queue_init). */
Test(cold_faults, io_uring_unavailable_falls_back_to_pwrite)
{
	tkv__cold *c;
	tkv__cold_stats st;
	void *buf;
	unsigned char *dst = aligned_alloc(4096, 16384);
	cold_faults_add(&fs, TKV__COLD_OP_RING_INIT, 0, 0, -1, (tkv__cold_fault){.err = ENOSYS});
	c = open_f(16, false);
	tkv__cold_stats_get(c, &st);
	cr_assert_not(st.io_uring);
	cr_assert(strstr(st.io_note, "pwrite") && strstr(st.io_note, "io_uring_queue_init"), "%s",
		  st.io_note);
	buf = tkv__cold_buf_alloc(c);
	cold_fill(c, buf, LAYERS, 8, 0, 0);
	cr_assert_eq(cold_write_sync(c, 8, 0, 16, buf), 0);
	cr_assert_eq(tkv__cold_read_layer(c, 8, 0, 3, dst, NULL), 0);
	cr_assert(cold_layer_is(c, dst, 8, 0, 3, 0));
	free(dst);
	tkv__cold_buf_free(c, buf);
	tkv__cold_close(c);
}

Test(cold_faults, no_o_direct_falls_back_to_buffered)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c;
		tkv__cold_stats st;
		void *buf;
		unsigned char *dst = malloc(16384 + 3);
		cold_faults_add(&fs, TKV__COLD_OP_OPEN_DIRECT, 0, 0, -1, (tkv__cold_fault){.err = EINVAL});
		c = open_f(16, pw);
		tkv__cold_stats_get(c, &st);
		cr_assert_not(st.direct_io);
		cr_assert(strstr(st.fs_note, "O_DIRECT"), "%s", st.fs_note);
		buf = tkv__cold_buf_alloc(c);
		for (uint64_t k = 0; k < 5; k++) {
			cold_fill(c, buf, LAYERS, 9, k, 0);
			cr_assert_eq(cold_write_sync(c, 9, k, 16, buf), 0);
		}
		for (uint64_t k = 0; k < 5; k++) {
			cr_assert_eq(tkv__cold_read_layer(c, 9, k, 2, dst + 3, NULL), 0);
			cr_assert(cold_layer_is(c, dst + 3, 9, k, 2, 0));
		}
		tkv__cold_close(c);
		/* and a buffered store recovers like any other */
		c = open_f(16, pw);
		tkv__cold_stats_get(c, &st);
		cr_assert_eq(st.recovered, 5);
		free(dst);
		tkv__cold_buf_free(c, buf);
		tkv__cold_close(c);
		fresh_dir();
	}
}

Test(cold_faults, fallocate_enospc_at_open)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold_config cfg;
		tkv__cold *c;
		char p[512];
		cold_small_cfg(&cfg, dir, 48);
		cfg.io = &fs.io;
		cfg.force_pwrite = pw;
		cold_faults_add(&fs, TKV__COLD_OP_FALLOCATE, 0, 2, 1, (tkv__cold_fault){.err = ENOSPC});
		cr_assert_eq(tkv__cold_open(&cfg, &c), -ENOSPC);
		cr_assert(strstr(tkv_last_error(), "no space"), "%s", tkv_last_error());
		snprintf(p, sizeof(p), "%s/seg-00000", dir);
		cr_assert_neq(access(p, F_OK), 0, "a failed create leaves no segments");
		snprintf(p, sizeof(p), "%s/manifest", dir);
		cr_assert_neq(access(p, F_OK), 0);
		cr_assert_eq(tkv__cold_open(&cfg, &c), 0, "fine once there is room: %s", tkv_last_error());
		tkv__cold_close(c);
		fresh_dir();
	}
}

Test(cold_faults, failed_invalidation_is_counted_and_slot_reused)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_f(1, pw);
		void *buf = tkv__cold_buf_alloc(c);
		tkv__cold_stats st;
		cold_fill(c, buf, LAYERS, 10, 0, 0);
		cr_assert_eq(cold_write_sync(c, 10, 0, 16, buf), 0);
		cold_faults_add(&fs, TKV__COLD_OP_INVALIDATE, 0, 0, 1, (tkv__cold_fault){.err = EIO});
		cr_assert_eq(tkv__cold_remove(c, 10, 0), 0);
		cr_assert_eq(cold_write_sync(c, 10, 1, 16, buf), 0, "the only slot is reusable");
		st = stats(c);
		cr_assert_eq(st.invalidate_errors, 1);
		tkv__cold_buf_free(c, buf);
		tkv__cold_close(c);
		fresh_dir();
	}
}

Test(cold_faults, remove_while_write_in_flight_cancels)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_f(16, pw);
		void *buf = tkv__cold_buf_alloc(c);
		tkv__cold_done d;
		tkv__cold_stats st;
		cold_fill(c, buf, LAYERS, 11, 0, 0);
		cold_faults_add(&fs, TKV__COLD_OP_WRITE, REC, 0, 1, (tkv__cold_fault){.delay_us = 50000});
		cr_assert_eq(tkv__cold_write_submit(c, 11, 0, 16, buf, buf), 0);
		cr_assert_eq(tkv__cold_remove_seq(c, 11), 0, "nothing durable to remove yet");
		cr_assert_eq(tkv__cold_write_reap(c, &d, 1, true), 1);
		cr_assert_eq(d.status, -ECANCELED);
		st = stats(c);
		cr_assert_eq(st.write_cancelled, 1);
		cr_assert_eq(st.bytes_used, 0);
		cr_assert_not(tkv__cold_lookup(c, 11, 0, NULL));
		tkv__cold_close(c);
		/* the cancelled record was zeroed: not resurrected */
		c = open_f(16, pw);
		st = stats(c);
		cr_assert_eq(st.recovered, 0);
		tkv__cold_buf_free(c, buf);
		reopen_dir(&c);
	}
}
