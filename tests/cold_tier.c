/* cold_tier.c - the cold tier storage layer end to end on real files in
 * /tmp: round trips, capacity, removal, recovery, geometry checks, locking,
 * concurrency. Faults: cold_faults.c; a real small filesystem filled to the
 * brim: cold_brim.c. */
#include "cold_helpers.h"

#include "kernels/kernels.h"

#include <fcntl.h>

#define LAYERS 4

static char *dir;
static void setup(void) { dir = cold_tmpdir(); }
static void teardown(void) { cold_rmdir(dir); dir = NULL; }
TestSuite(cold_tier, .init = setup, .fini = teardown, .timeout = 120);

/* Closes c and starts an empty directory, for a test's next backend. */
static void close_for_next_backend(tkv__cold *c)
{
	tkv__cold_close(c);
	cold_rmdir(dir);
	dir = cold_tmpdir();
}

static tkv__cold *open_small(uint64_t n_records, bool force_pwrite)
{
	tkv__cold_config cfg;
	tkv__cold *c;
	cold_small_cfg(&cfg, dir, n_records);
	cfg.force_pwrite = force_pwrite;
	cr_assert_eq(tkv__cold_open(&cfg, &c), 0, "open: %s", tkv_last_error());
	return c;
}

/* Writes (seq, block) for seq in [0, n_seq), block in [0, n_blk), n_tokens
 * block % 16 + 1, pipelined with queue_depth writes in flight. */
static void write_many(tkv__cold *c, uint64_t n_seq, uint64_t n_blk, uint32_t version)
{
	enum { Q = 16 };
	void *bufs[Q];
	int free_n = Q, n_done = 0, total = (int)(n_seq * n_blk);
	tkv__cold_done d[Q];
	for (int i = 0; i < Q; i++)
		cr_assert_not_null(bufs[i] = tkv__cold_buf_alloc(c));
	for (int i = 0; i < total || n_done < total;) {
		if (i < total && free_n > 0) {
			void *b = bufs[--free_n];
			uint64_t s = (uint64_t)i / n_blk, k = (uint64_t)i % n_blk;
			cold_fill(c, b, LAYERS, s, k, version);
			int rc = tkv__cold_write_submit(c, s, k, (uint32_t)(k % 16) + 1, b, b);
			cr_assert_eq(rc, 0, "submit %d: %d", i, rc);
			i++;
			continue;
		}
		int n = tkv__cold_write_reap(c, d, Q, true);
		for (int j = 0; j < n; j++) {
			cr_assert_eq(d[j].status, 0, "write status %d", d[j].status);
			bufs[free_n++] = d[j].user;
		}
		n_done += n;
	}
	for (int i = 0; i < Q; i++)
		tkv__cold_buf_free(c, bufs[i]);
}

static void check_all(tkv__cold *c, uint64_t n_seq, uint64_t n_blk, uint32_t version)
{
	size_t bb = tkv__cold_block_bytes(c);
	unsigned char *dst = aligned_alloc(4096, bb + 4096);
	void *rec = tkv__cold_buf_alloc(c);
	for (uint64_t s = 0; s < n_seq; s++)
		for (uint64_t k = 0; k < n_blk; k++) {
			uint32_t nt = 0;
			for (uint32_t l = 0; l < LAYERS; l++) {
				/* alternate aligned and unaligned destinations */
				unsigned char *p = dst + ((s + k + l) % 2 ? 8 : 0);
				cr_assert_eq(tkv__cold_read_layer(c, s, k, l, p, &nt), 0,
					     "read %lu/%lu/%u: %s", s, k, l, tkv_last_error());
				cr_assert(cold_layer_is(c, p, s, k, l, version), "data %lu/%lu/%u", s, k, l);
				cr_assert_eq(nt, k % 16 + 1);
			}
			memset(rec, 0, tkv__cold_record_bytes(c));
			cr_assert_eq(tkv__cold_read_record(c, s, k, rec, &nt), 0);
			for (uint32_t l = 0; l < LAYERS; l++)
				cr_assert(cold_layer_is(c, tkv__cold_layer_ptr(c, rec, l), s, k, l, version));
		}
	free(dst);
	tkv__cold_buf_free(c, rec);
}

Test(cold_tier, round_trip_many_records_both_backends)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_small(256, pw);
		tkv__cold_stats st;
		write_many(c, 10, 20, 1);
		check_all(c, 10, 20, 1);
		tkv__cold_stats_get(c, &st);
		cr_assert_eq(st.io_uring, !pw, "%s", st.io_note);
		cr_assert(st.direct_io, "O_DIRECT expected on /tmp: %s", st.fs_note);
		cr_assert_eq(st.records_written, 200);
		cr_assert_eq(st.bytes_written, 200 * st.record_bytes);
		cr_assert_eq(st.records_live, 200);
		cr_assert_eq(st.bytes_used, 200 * st.record_bytes);
		cr_assert_eq(st.bytes_capacity, 256 * st.record_bytes);
		cr_assert_eq(st.reads, 200 * (LAYERS + 1));
		cr_assert_gt(st.syncs, 0);
		cr_assert_lt(st.syncs, 200 * 2, "one sync per batch, not per record");
		cr_assert_gt(st.write_busy_ns, 0);
		cr_assert_eq(st.writes_in_flight, 0);
		cr_assert_eq(st.corrupt + st.write_eio + st.write_short + st.write_enospc, 0);
		close_for_next_backend(c);
	}
}

/* What a verifying thread gets: reads reaped unverified by another. */
typedef struct rio_batch {
	tkv__cold *c;
	tkv__cold_rio *r;
	int n, ok;
	uint32_t tokens;
} rio_batch;

static void *finish_all(void *arg)
{
	rio_batch *b = arg;
	for (int i = 0; i < b->n; i++) {
		uint32_t t = 0;
		if (tkv__cold_read_finish(b->c, &b->r[i], &t) == 0 && t == b->tokens)
			b->ok++;
	}
	return NULL;
}

/* read_reap_io hands reads out unverified, frees their slots at once (the
 * prefetch thread submits read_depth more before any is verified), keeps
 * the records pinned (a removal waits for the slot), and read_finish on
 * another thread verifies and counts them; queued reads go to the device
 * at the reap, without a flush. */
Test(cold_tier, unverified_reads_finish_on_another_thread)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_small(64, pw);
		size_t bb = tkv__cold_block_bytes(c);
		enum { N = 64 }; /* the default read_depth */
		unsigned char *dst = aligned_alloc(4096, 2 * N * bb);
		tkv__cold_rio r[2 * N];
		write_many(c, 2, 3, 7);
		int n = 0;
		for (int round = 0; round < 2; round++) {
			for (int i = 0; i < N; i++) {
				int k = round * N + i;
				cr_assert_eq(tkv__cold_read_submit(c, 1, 2, (uint32_t)(k % LAYERS),
								   dst + (size_t)k * bb, (void *)(uintptr_t)k),
					     0, "round %d read %d", round, i);
			}
			cr_assert_eq(tkv__cold_read_submit(c, 1, 2, 0, dst, NULL), -EAGAIN);
			/* this round's reads come out; the previous round's are
			 * still unverified and their slots already reused */
			for (int got = 0; got < N;) {
				int k = tkv__cold_read_reap_io(c, r + n, 2 * N - n, true);
				cr_assert_gt(k, 0);
				got += k;
				n += k;
			}
		}
		cr_assert_eq(n, 2 * N);
		tkv__cold_stats st;
		tkv__cold_stats_get(c, &st);
		cr_assert_eq(st.reads, 0, "nothing counted before it is verified");
		cr_assert_eq(st.reads_in_flight, 0);
		cr_assert_eq(tkv__cold_remove(c, 1, 2), 0);
		/* verified on two other threads */
		rio_batch b[2] = {{c, r, N, 0, 3}, {c, r + N, N, 0, 3}};
		pthread_t t[2];
		for (int i = 0; i < 2; i++)
			pthread_create(&t[i], NULL, finish_all, &b[i]);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		cr_assert_eq(b[0].ok + b[1].ok, 2 * N, "the pins kept the removed record readable");
		for (int i = 0; i < 2 * N; i++) {
			int k = (int)(uintptr_t)r[i].user;
			cr_assert(cold_layer_is(c, dst + (size_t)k * bb, 1, 2, (uint32_t)(k % LAYERS), 7));
		}
		tkv__cold_stats_get(c, &st);
		cr_assert_eq(st.reads, 2 * N);
		cr_assert_eq(st.corrupt, 0);
		free(dst);
		close_for_next_backend(c);
	}
}

Test(cold_tier, async_reads_per_layer_and_record)
{
	tkv__cold *c = open_small(64, false);
	size_t bb = tkv__cold_block_bytes(c);
	unsigned char *lay[LAYERS];
	void *rec = tkv__cold_buf_alloc(c);
	tkv__cold_done d[8];
	int got = 0, seen_mask = 0;
	write_many(c, 2, 3, 7);
	for (uint32_t l = 0; l < LAYERS; l++) {
		lay[l] = malloc(bb + 1) ;
		cr_assert_eq(tkv__cold_read_submit(c, 1, 2, l, lay[l] + (l & 1), (void *)(uintptr_t)(l + 1)), 0);
	}
	cr_assert_eq(tkv__cold_read_submit(c, 0, 1, TKV__COLD_ALL_LAYERS, rec, (void *)100), 0);
	cr_assert_eq(tkv__cold_read_submit(c, 5, 5, 0, lay[0], NULL), -ENOENT);
	cr_assert_eq(tkv__cold_read_submit(c, 0, 1, LAYERS, lay[0], NULL), -EINVAL);
	while (got < LAYERS + 1) {
		int n = tkv__cold_read_reap(c, d, 8, true);
		cr_assert_gt(n, 0);
		for (int i = 0; i < n; i++) {
			uintptr_t u = (uintptr_t)d[i].user;
			cr_assert_eq(d[i].status, 0);
			if (u == 100) {
				cr_assert_eq(d[i].n_tokens, 2);
				for (uint32_t l = 0; l < LAYERS; l++)
					cr_assert(cold_layer_is(c, tkv__cold_layer_ptr(c, rec, l), 0, 1, l, 7));
			} else {
				cr_assert_eq(d[i].n_tokens, 3);
				cr_assert(cold_layer_is(c, lay[u - 1] + ((u - 1) & 1), 1, 2, (uint32_t)u - 1, 7));
			}
			seen_mask |= 1 << (u == 100 ? LAYERS : u - 1);
		}
		got += n;
	}
	cr_assert_eq(seen_mask, (1 << (LAYERS + 1)) - 1);
	cr_assert_eq(tkv__cold_read_reap(c, d, 8, true), 0, "nothing outstanding: returns at once");
	for (uint32_t l = 0; l < LAYERS; l++)
		free(lay[l]);
	tkv__cold_buf_free(c, rec);
	tkv__cold_close(c);
}

Test(cold_tier, unaligned_geometry_round_trip)
{
	/* 384-byte blocks: every layer read goes through a bounce buffer */
	tkv__cold_config cfg;
	tkv__cold *c;
	tkv__cold_config_default(&cfg);
	cfg.dir = dir;
	cfg.n_layers = 3;
	cfg.n_kv_heads = 1;
	cfg.head_dim = 24;
	cfg.dtype = TKV_DTYPE_BF16;
	cfg.block_tokens = 4;
	cfg.capacity_bytes = 1 << 20;
	cr_assert_eq(tkv__cold_open(&cfg, &c), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv__cold_block_bytes(c), 384);
	void *buf = tkv__cold_buf_alloc(c);
	unsigned char out[384 + 1];
	for (uint64_t k = 0; k < 20; k++) {
		cold_fill(c, buf, 3, 42, k, 0);
		cr_assert_eq(cold_write_sync(c, 42, k, 4, buf), 0);
	}
	for (uint64_t k = 0; k < 20; k++)
		for (uint32_t l = 0; l < 3; l++) {
			cr_assert_eq(tkv__cold_read_layer(c, 42, k, l, out + 1, NULL), 0);
			cr_assert(cold_layer_is(c, out + 1, 42, k, l, 0));
		}
	tkv__cold_buf_free(c, buf);
	tkv__cold_close(c);
}

/* A record written from its blocks where they are (tiers/cold.h, direct
 * writes: one vectored write, header first) is the record a staged write
 * makes: every layer and the whole record read back, and a restart
 * recovers it. Both backends. */
Test(cold_tier, records_written_from_their_blocks_read_back_and_recover)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_small(64, pw);
		cr_assert(tkv__cold_direct_geometry(c));
		void *hdr = tkv__cold_header_alloc(c);
		cr_assert_not_null(hdr);
		for (uint64_t s = 0; s < 3; s++)
			for (uint64_t k = 0; k < 7; k++) {
				void **b = cold_blocks_alloc(c, LAYERS, s, k, 5);
				cr_assert_eq(cold_write_blocks_sync(c, s, k, (uint32_t)(k % 16) + 1, hdr,
								    b),
					     0, "%s", tkv_last_error());
				cold_blocks_free(b, LAYERS);
			}
		check_all(c, 3, 7, 5);
		tkv__cold_close(c);
		c = open_small(64, pw);
		tkv__cold_stats st;
		tkv__cold_stats_get(c, &st);
		cr_assert_eq(st.recovered, 21, "backend %d", pw);
		cr_assert_eq(st.recovery_torn, 0);
		check_all(c, 3, 7, 5);
		tkv__cold_buf_free(c, hdr);
		close_for_next_backend(c);
	}
}

/* What O_DIRECT cannot take is refused before anything happens: -EINVAL
 * with a message, no completion, no slot, and the next good write works.
 * A geometry whose blocks are not 4 KiB multiples has no direct writes. */
Test(cold_tier, direct_writes_refuse_what_odirect_cannot_take)
{
	tkv__cold *c = open_small(16, false);
	void *hdr = tkv__cold_header_alloc(c);
	void **b = cold_blocks_alloc(c, LAYERS, 1, 1, 0);
	unsigned char *big = aligned_alloc(4096, tkv__cold_block_bytes(c) + 4096);
	void *saved = b[2];
	tkv__cold_done d;
	b[2] = big + 512; /* not 4 KiB aligned */
	cr_assert_not(tkv__cold_direct_ok(c, (const void *const *)b));
	cr_assert_eq(tkv__cold_write_submit_layers(c, 1, 1, 16, hdr, (const void *const *)b, NULL,
						   NULL, NULL),
		     -EINVAL);
	cr_assert(strstr(tkv_last_error(), "4 KiB aligned"), "%s", tkv_last_error());
	b[2] = saved;
	cr_assert_eq(tkv__cold_write_submit_layers(c, 1, 1, 16, (char *)hdr + 64,
						   (const void *const *)b, NULL, NULL, NULL),
		     -EINVAL);
	cr_assert_eq(tkv__cold_write_submit_layers(c, 1, 1, 16, hdr, NULL, NULL, NULL, NULL),
		     -EINVAL);
	cr_assert_eq(tkv__cold_write_submit_layers(c, 1, 1, 0, hdr, (const void *const *)b, NULL,
						   NULL, NULL),
		     -EINVAL);
	tkv__cold_stats st;
	tkv__cold_stats_get(c, &st);
	cr_assert_eq(st.writes_in_flight + st.bytes_used + st.records_written, 0);
	cr_assert_eq(tkv__cold_write_reap(c, &d, 1, false), 0, "no completion for a refusal");
	cr_assert_not(tkv__cold_lookup(c, 1, 1, NULL));
	cr_assert_eq(cold_write_blocks_sync(c, 1, 1, 16, hdr, b), 0);
	cr_assert(tkv__cold_lookup(c, 1, 1, NULL));
	cold_blocks_free(b, LAYERS);
	free(big);
	tkv__cold_buf_free(c, hdr);
	tkv__cold_close(c);

	/* 6 KiB blocks (1 head x 48 dim f32 x 16 tokens x K,V) */
	tkv__cold_config cfg;
	cold_small_cfg(&cfg, dir, 16);
	cfg.n_kv_heads = 1;
	cfg.head_dim = 48;
	char *odd = cold_tmpdir();
	cfg.dir = odd;
	cfg.capacity_bytes = 16 * (4096 + 4 * 8192);
	cfg.segment_bytes = 0;
	cr_assert_eq(tkv__cold_open(&cfg, &c), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv__cold_block_bytes(c), 6144);
	cr_assert_not(tkv__cold_direct_geometry(c));
	hdr = tkv__cold_header_alloc(c);
	b = cold_blocks_alloc(c, LAYERS, 1, 1, 0);
	cr_assert_not(tkv__cold_direct_ok(c, (const void *const *)b));
	cr_assert_eq(tkv__cold_write_submit_layers(c, 1, 1, 16, hdr, (const void *const *)b, NULL,
						   NULL, NULL),
		     -EINVAL);
	cr_assert(strstr(tkv_last_error(), "staging buffer"), "%s", tkv_last_error());
	cold_blocks_free(b, LAYERS);
	tkv__cold_buf_free(c, hdr);
	tkv__cold_close(c);
	cold_rmdir(odd);
}

/* Removed records' headers are zeroed in groups of up to queue_depth
 * writes in flight (tkv__cold_drain_dead): with more than two groups'
 * worth removed at once, every slot is free at the writer's next call and
 * none of the records comes back after a restart. Both backends. */
Test(cold_tier, many_removals_zero_their_headers_in_groups)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_small(256, pw);
		tkv__cold_stats st;
		write_many(c, 2, 80, 1); /* sequences 0 and 1, 80 blocks each */
		cr_assert_eq(tkv__cold_remove_seq(c, 0), 80);
		(void)tkv__cold_write_reap(c, NULL, 0, false);
		tkv__cold_stats_get(c, &st);
		cr_assert_eq(st.records_live, 80, "backend %d", pw);
		cr_assert_eq(st.bytes_used, 80 * st.record_bytes, "every removed slot is free");
		cr_assert_eq(st.invalidate_errors, 0);
		tkv__cold_close(c);
		c = open_small(256, pw);
		tkv__cold_stats_get(c, &st);
		cr_assert_eq(st.recovered, 80, "backend %d: removed records came back", pw);
		unsigned char *dst = aligned_alloc(4096, tkv__cold_block_bytes(c));
		for (uint64_t k = 0; k < 80; k++) {
			cr_assert_not(tkv__cold_lookup(c, 0, k, NULL), "block %lu", k);
			cr_assert_eq(tkv__cold_read_layer(c, 1, k, 2, dst, NULL), 0);
			cr_assert(cold_layer_is(c, dst, 1, k, 2, 1));
		}
		free(dst);
		close_for_next_backend(c);
	}
}

/* A record removed with drop_if (a cache block dropped for space) frees its
 * slot without the header-zeroing write: the next open finds it again,
 * intact. One removed with remove_if does not come back. */
Test(cold_tier, drop_if_frees_the_slot_and_keeps_the_header)
{
	tkv__cold *c = open_small(4, false);
	void *buf = tkv__cold_buf_alloc(c);
	tkv__cold_stats st;
	for (uint64_t k = 0; k < 4; k++) {
		cold_fill(c, buf, LAYERS, 7, k, 0);
		cr_assert_eq(cold_write_sync(c, 7, k, 16, buf), 0);
	}
	cr_assert_eq(tkv__cold_drop_if(c, 7, 1, 0), 0);
	cr_assert_eq(tkv__cold_drop_if(c, 7, 1, 0), -ENOENT);
	cr_assert_eq(tkv__cold_remove_if(c, 7, 2, 0), 0);
	cr_assert_not(tkv__cold_lookup(c, 7, 1, NULL), "dropped: gone from the index");
	(void)tkv__cold_write_reap(c, NULL, 0, false); /* the writer frees both slots */
	tkv__cold_stats_get(c, &st);
	cr_assert_eq(st.records_live, 2);
	cr_assert_eq(st.bytes_used, 2 * st.record_bytes, "both slots free again");
	tkv__cold_close(c);
	c = open_small(4, false);
	cr_assert(tkv__cold_lookup(c, 7, 1, NULL), "drop_if zeroed the header");
	cr_assert_not(tkv__cold_lookup(c, 7, 2, NULL), "remove_if left the header");
	unsigned char *dst = aligned_alloc(4096, tkv__cold_block_bytes(c));
	cr_assert_eq(tkv__cold_read_layer(c, 7, 1, 1, dst, NULL), 0, "%s", tkv_last_error());
	cr_assert(cold_layer_is(c, dst, 7, 1, 1, 0));
	/* a full tier reuses a dropped slot: the new record replaces it */
	cr_assert_eq(tkv__cold_drop_if(c, 7, 1, 0), 0);
	cold_fill(c, buf, LAYERS, 8, 0, 1);
	cr_assert_eq(cold_write_sync(c, 8, 0, 16, buf), 0);
	cold_fill(c, buf, LAYERS, 8, 1, 1);
	cr_assert_eq(cold_write_sync(c, 8, 1, 16, buf), 0);
	tkv__cold_close(c);
	c = open_small(4, false);
	cr_assert_not(tkv__cold_lookup(c, 7, 1, NULL), "overwritten by a new record");
	cr_assert(tkv__cold_lookup(c, 8, 1, NULL));
	free(dst);
	tkv__cold_buf_free(c, buf);
	tkv__cold_close(c);
}

Test(cold_tier, lookup_list_overwrite_remove)
{
	tkv__cold *c = open_small(64, false);
	void *buf = tkv__cold_buf_alloc(c);
	tkv__cold_block_info info[8];
	uint64_t seqs[8];
	uint32_t nt = 0;
	tkv__cold_stats st;
	unsigned char *dst = aligned_alloc(4096, tkv__cold_block_bytes(c));
	for (uint64_t k = 5; k > 0; k--) { /* out of order */
		cold_fill(c, buf, LAYERS, 9, k, 0);
		cr_assert_eq(cold_write_sync(c, 9, k, (uint32_t)k, buf), 0);
	}
	cold_fill(c, buf, LAYERS, 3, 0, 0);
	cr_assert_eq(cold_write_sync(c, 3, 0, 16, buf), 0);
	cr_assert(tkv__cold_lookup(c, 9, 4, &nt));
	cr_assert_eq(nt, 4);
	cr_assert_not(tkv__cold_lookup(c, 9, 0, NULL));
	cr_assert_eq(tkv__cold_list_seq(c, 9, info, 8), 5);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(info[i].block, (uint64_t)i + 1, "sorted by block");
	cr_assert_eq(tkv__cold_list_seq(c, 9, info, 2), 5, "count beyond max");
	cr_assert_eq(tkv__cold_list_seqs(c, seqs, 8), 2);
	/* overwrite: newer version wins, old slot freed */
	cold_fill(c, buf, LAYERS, 9, 3, 1);
	cr_assert_eq(cold_write_sync(c, 9, 3, 16, buf), 0);
	cr_assert_eq(tkv__cold_read_layer(c, 9, 3, 2, dst, &nt), 0);
	cr_assert(cold_layer_is(c, dst, 9, 3, 2, 1));
	cr_assert_eq(nt, 16);
	(void)tkv__cold_write_reap(c, NULL, 0, false); /* lets the writer retire the old slot */
	tkv__cold_stats_get(c, &st);
	cr_assert_eq(st.records_live, 6);
	cr_assert_eq(st.bytes_used, 6 * st.record_bytes);
	/* remove one, then a sequence */
	cr_assert_eq(tkv__cold_remove(c, 9, 3), 0);
	cr_assert_eq(tkv__cold_remove(c, 9, 3), -ENOENT);
	cr_assert_eq(tkv__cold_read_layer(c, 9, 3, 0, dst, NULL), -ENOENT);
	cr_assert_eq(tkv__cold_remove_seq(c, 9), 4);
	cr_assert_eq(tkv__cold_list_seq(c, 9, info, 8), 0);
	cr_assert_eq(tkv__cold_list_seqs(c, seqs, 8), 1);
	cr_assert_eq(seqs[0], 3);
	(void)tkv__cold_write_reap(c, NULL, 0, false);
	tkv__cold_stats_get(c, &st);
	cr_assert_eq(st.records_live, 1);
	cr_assert_eq(st.bytes_used, st.record_bytes);
	/* bad arguments */
	cr_assert_eq(tkv__cold_read_layer(c, 3, 0, LAYERS, dst, NULL), -EINVAL);
	cr_assert_eq(tkv__cold_read_layer(c, 3, 0, 0, NULL, NULL), -EINVAL);
	cr_assert_eq(tkv__cold_write_submit(c, 1, 1, 0, buf, NULL), -EINVAL);
	cr_assert_eq(tkv__cold_write_submit(c, 1, 1, 17, buf, NULL), -EINVAL);
	cr_assert_eq(tkv__cold_write_submit(c, 1, 1, 1, (char *)buf + 8, NULL), -EINVAL);
	free(dst);
	tkv__cold_buf_free(c, buf);
	tkv__cold_close(c);
}

Test(cold_tier, write_with_given_layer_crcs)
{
	tkv__cold *c = open_small(16, false);
	void *buf = tkv__cold_buf_alloc(c);
	unsigned char *dst = aligned_alloc(4096, tkv__cold_block_bytes(c));
	uint32_t crcs[LAYERS];
	tkv__cold_done d;
	tkv__cold_stats st;
	tkv__crc_fn crc = tkv__kernels_get(TKV_ISA_AUTO)->crc32c;
	cold_fill(c, buf, LAYERS, 1, 0, 0);
	for (uint32_t l = 0; l < LAYERS; l++)
		crcs[l] = crc(0, tkv__cold_layer_ptr(c, buf, l), tkv__cold_block_bytes(c));
	cr_assert_eq(tkv__cold_write_submit_crc(c, 1, 0, 16, buf, crcs, buf), 0);
	cr_assert_eq(tkv__cold_write_reap(c, &d, 1, true), 1);
	cr_assert_eq(d.status, 0);
	for (uint32_t l = 0; l < LAYERS; l++) {
		cr_assert_eq(tkv__cold_read_layer(c, 1, 0, l, dst, NULL), 0);
		cr_assert(cold_layer_is(c, dst, 1, 0, l, 0));
	}
	/* a caller's wrong CRC: stored, and that layer reads back as corrupt */
	crcs[1] ^= 0x100;
	cr_assert_eq(tkv__cold_write_submit_crc(c, 1, 1, 16, buf, crcs, buf), 0);
	cr_assert_eq(tkv__cold_write_reap(c, &d, 1, true), 1);
	cr_assert_eq(d.status, 0);
	cr_assert_eq(tkv__cold_read_layer(c, 1, 1, 0, dst, NULL), 0);
	cr_assert_eq(tkv__cold_read_layer(c, 1, 1, 1, dst, NULL), -TKV_ECORRUPT);
	tkv__cold_stats_get(c, &st);
	cr_assert_eq(st.corrupt, 1);
	free(dst);
	tkv__cold_buf_free(c, buf);
	tkv__cold_close(c);
}

Test(cold_tier, fill_to_capacity_then_remove_frees_space)
{
	for (int pw = 0; pw < 2; pw++) {
		tkv__cold *c = open_small(40, pw); /* 3 segments: 16 + 16 + 8 */
		void *buf = tkv__cold_buf_alloc(c);
		tkv__cold_stats st;
		write_many(c, 4, 10, 0);
		cold_fill(c, buf, LAYERS, 99, 0, 0);
		cr_assert_eq(cold_write_sync(c, 99, 0, 1, buf), -ENOSPC);
		cr_assert_eq(cold_write_sync(c, 99, 0, 1, buf), -ENOSPC);
		tkv__cold_stats_get(c, &st);
		cr_assert_eq(st.write_full, 2);
		cr_assert_eq(st.bytes_used, st.bytes_capacity);
		cr_assert_not(tkv__cold_lookup(c, 99, 0, NULL));
		cr_assert_eq(tkv__cold_remove(c, 2, 5), 0);
		cr_assert_eq(cold_write_sync(c, 99, 0, 1, buf), 0);
		check_all(c, 2, 10, 0);
		cr_assert_eq(cold_write_sync(c, 98, 0, 1, buf), -ENOSPC);
		tkv__cold_buf_free(c, buf);
		close_for_next_backend(c);
	}
}

Test(cold_tier, queue_full_is_eagain)
{
	tkv__cold_config cfg;
	tkv__cold *c;
	void *b[3];
	tkv__cold_done d[3];
	int got = 0;
	cold_small_cfg(&cfg, dir, 16);
	cfg.queue_depth = 2;
	cr_assert_eq(tkv__cold_open(&cfg, &c), 0);
	for (int i = 0; i < 3; i++)
		b[i] = tkv__cold_buf_alloc(c);
	cr_assert_eq(tkv__cold_write_submit(c, 1, 0, 1, b[0], b[0]), 0);
	cr_assert_eq(tkv__cold_write_submit(c, 1, 1, 1, b[1], b[1]), 0);
	cr_assert_eq(tkv__cold_write_submit(c, 1, 2, 1, b[2], b[2]), -EAGAIN);
	while (got < 2)
		got += tkv__cold_write_reap(c, d + got, 3, true);
	cr_assert_eq(tkv__cold_write_submit(c, 1, 2, 1, b[2], b[2]), 0);
	cr_assert_eq(tkv__cold_write_reap(c, d, 3, true), 1);
	for (int i = 0; i < 3; i++)
		tkv__cold_buf_free(c, b[i]);
	tkv__cold_close(c);
}

Test(cold_tier, durability_none_mode)
{
	tkv__cold_config cfg;
	tkv__cold *c;
	tkv__cold_stats st;
	cold_small_cfg(&cfg, dir, 64);
	cfg.durability = TKV__COLD_DURABLE_NONE;
	cr_assert_eq(tkv__cold_open(&cfg, &c), 0);
	write_many(c, 2, 10, 0);
	tkv__cold_stats_get(c, &st);
	cr_assert_eq(st.durability, TKV__COLD_DURABLE_NONE);
	cr_assert_eq(st.syncs, 0);
	cr_assert_eq(st.records_written, 20);
	check_all(c, 2, 10, 0);
	tkv__cold_close(c);
	cfg.durability = 7;
	cr_assert_eq(tkv__cold_open(&cfg, &c), -EINVAL);
	cr_assert(strstr(tkv_last_error(), "durability"));
}

Test(cold_tier, recovery_after_close)
{
	tkv__cold *c = open_small(128, false);
	tkv__cold_stats st;
	tkv__cold_block_info info[32];
	void *buf;
	write_many(c, 5, 12, 3);
	cr_assert_eq(tkv__cold_remove(c, 4, 0), 0);
	cr_assert_eq(tkv__cold_remove_seq(c, 3), 12);
	tkv__cold_close(c);

	c = open_small(128, false);
	tkv__cold_stats_get(c, &st);
	cr_assert_eq(st.recovered, 3 * 12 + 11, "removed records must not come back");
	cr_assert_eq(st.records_live, 3 * 12 + 11);
	cr_assert_eq(st.recovery_torn + st.recovery_dups + st.recovery_stale, 0);
	cr_assert_eq(st.bytes_used, (3 * 12 + 11) * st.record_bytes);
	check_all(c, 3, 12, 3);
	cr_assert_eq(tkv__cold_list_seq(c, 4, info, 32), 11);
	cr_assert_eq(info[0].block, 1);
	cr_assert_eq(info[0].n_tokens, 2);
	cr_assert_not(tkv__cold_lookup(c, 3, 0, NULL));
	/* new writes after recovery beat the recovered ones (seqno resumes) */
	buf = tkv__cold_buf_alloc(c);
	cold_fill(c, buf, LAYERS, 0, 0, 9);
	cr_assert_eq(cold_write_sync(c, 0, 0, 1, buf), 0);
	tkv__cold_close(c);
	c = open_small(128, false);
	unsigned char *dst = aligned_alloc(4096, tkv__cold_block_bytes(c));
	cr_assert_eq(tkv__cold_read_layer(c, 0, 0, 1, dst, NULL), 0);
	cr_assert(cold_layer_is(c, dst, 0, 0, 1, 9));
	free(dst);
	tkv__cold_buf_free(c, buf);
	tkv__cold_close(c);
}

static void seg_path(char *p, size_t n, int seg)
{
	snprintf(p, n, "%s/seg-%05d", dir, seg);
}

static void clobber(int seg, uint64_t off, size_t len, unsigned char byte)
{
	char p[512];
	unsigned char *b = malloc(len);
	int fd;
	seg_path(p, sizeof(p), seg);
	memset(b, byte, len);
	cr_assert_geq(fd = open(p, O_WRONLY), 0);
	cr_assert_eq(pwrite(fd, b, len, (off_t)off), (ssize_t)len);
	close(fd);
	free(b);
}

Test(cold_tier, recovery_with_torn_and_garbage_slots)
{
	tkv__cold *c = open_small(48, false); /* segments of 16: 0,1,2 */
	tkv__cold_stats st;
	uint64_t rec;
	char p[512];
	write_many(c, 3, 16, 0); /* (s, k) lands in segment s, slot k */
	tkv__cold_stats_get(c, &st);
	rec = st.record_bytes;
	tkv__cold_close(c);
	/* garbage after the magic of (0, 3), a torn header of (1, 7) (part of
	 * its CRC table zeroed), garbage with no magic over (1, 9) (an empty
	 * slot, not counted as torn), a payload tear in (1, 8), and a
	 * truncated tail: segment 2 cut in the middle of slot 10 */
	clobber(0, 3 * rec + 8, 4088, 0xa5);
	clobber(1, 7 * rec + 100, 16, 0);
	clobber(1, 9 * rec, 4096, 0xa5);
	clobber(1, 8 * rec + 4096 + 100, 64, 0x5a);
	seg_path(p, sizeof(p), 2);
	cr_assert_eq(truncate(p, (off_t)(10 * rec + rec / 2)), 0);

	c = open_small(48, false);
	tkv__cold_stats_get(c, &st);
	cr_assert_eq(st.recovery_torn, 2, "torn %lu", st.recovery_torn);
	cr_assert_eq(st.recovered, 48 - 3 - 5, "slots 11..15 of segment 2 are gone");
	cr_assert_not(tkv__cold_lookup(c, 1, 9, NULL));
	cr_assert_not(tkv__cold_lookup(c, 0, 3, NULL));
	cr_assert_not(tkv__cold_lookup(c, 1, 7, NULL));
	cr_assert_not(tkv__cold_lookup(c, 2, 12, NULL));
	cr_assert(tkv__cold_lookup(c, 2, 9, NULL));
	/* the torn payload is caught at read time, never returned */
	unsigned char *dst = aligned_alloc(4096, tkv__cold_block_bytes(c));
	cr_assert_eq(tkv__cold_read_layer(c, 1, 8, 1, dst, NULL), 0, "other layers fine");
	cr_assert_eq(tkv__cold_read_layer(c, 1, 8, 0, dst, NULL), -TKV_ECORRUPT);
	cr_assert_not(tkv__cold_lookup(c, 1, 8, NULL));
	/* slot 10 of segment 2 kept its header but lost the end of its payload */
	cr_assert_eq(tkv__cold_read_layer(c, 2, 10, 0, dst, NULL), 0);
	cr_assert_eq(tkv__cold_read_layer(c, 2, 10, 3, dst, NULL), -TKV_ECORRUPT);
	cr_assert_eq(tkv__cold_read_layer(c, 2, 10, 0, dst, NULL), -ENOENT, "dropped as a whole");
	/* skipped slots are free again: the store fills back to capacity */
	void *buf = tkv__cold_buf_alloc(c);
	int ok = 0;
	for (uint64_t k = 0; k < 20; k++) {
		cold_fill(c, buf, LAYERS, 7, k, 0);
		int rc = cold_write_sync(c, 7, k, 1, buf);
		cr_assert(rc == 0 || rc == -ENOSPC);
		ok += rc == 0;
	}
	cr_assert_eq(ok, 10, "3 skipped + 5 truncated + 2 corrupt slots reusable, got %d", ok);
	free(dst);
	tkv__cold_buf_free(c, buf);
	tkv__cold_close(c);
}

Test(cold_tier, recovery_duplicates_newest_seqno_wins)
{
	tkv__cold *c = open_small(32, false);
	void *buf = tkv__cold_buf_alloc(c), *old;
	tkv__cold_stats st;
	char p[512];
	int fd;
	cold_fill(c, buf, LAYERS, 5, 5, 1);
	cr_assert_eq(cold_write_sync(c, 5, 5, 16, buf), 0); /* segment 0, slot 0 */
	tkv__cold_stats_get(c, &st);
	tkv__cold_close(c);
	/* save v1's slot as it is on disk */
	old = aligned_alloc(4096, st.record_bytes);
	seg_path(p, sizeof(p), 0);
	cr_assert_geq(fd = open(p, O_RDWR), 0);
	cr_assert_eq(pread(fd, old, st.record_bytes, 0), (ssize_t)st.record_bytes);

	c = open_small(32, false);
	cold_fill(c, buf, LAYERS, 5, 5, 2);
	cr_assert_eq(cold_write_sync(c, 5, 5, 16, buf), 0); /* slot 1; slot 0 zeroed */
	tkv__cold_close(c);
	/* a crash before the zeroing reached the disk: v1 is back in slot 0 */
	cr_assert_eq(pwrite(fd, old, st.record_bytes, 0), (ssize_t)st.record_bytes);
	close(fd);

	c = open_small(32, false);
	tkv__cold_stats_get(c, &st);
	cr_assert_eq(st.recovered, 2);
	cr_assert_eq(st.recovery_dups, 1);
	cr_assert_eq(st.records_live, 1);
	unsigned char *dst = aligned_alloc(4096, tkv__cold_block_bytes(c));
	cr_assert_eq(tkv__cold_read_layer(c, 5, 5, 3, dst, NULL), 0);
	cr_assert(cold_layer_is(c, dst, 5, 5, 3, 2), "the newer record must win");
	tkv__cold_close(c);
	/* the loser was zeroed at close: a further reopen sees one record */
	c = open_small(32, false);
	tkv__cold_stats_get(c, &st);
	cr_assert_eq(st.recovered, 1);
	tkv__cold_close(c);
	free(dst);
	free(old);
	tkv__cold_buf_free(NULL, buf);
}

Test(cold_tier, geometry_mismatch_is_emediumtype)
{
	tkv__cold_config cfg;
	tkv__cold *c = open_small(32, false);
	tkv__cold_close(c);
	cold_small_cfg(&cfg, dir, 32);
	cfg.dtype = TKV_DTYPE_BF16;
	cr_assert_eq(tkv__cold_open(&cfg, &c), -EMEDIUMTYPE);
	cr_assert_null(c);
	cr_assert(strstr(tkv_last_error(), "geometry"), "%s", tkv_last_error());
	cr_assert(strstr(tkv_last_error(), "bf16"), "%s", tkv_last_error());
	cold_small_cfg(&cfg, dir, 32);
	cfg.n_layers = 5;
	cr_assert_eq(tkv__cold_open(&cfg, &c), -EMEDIUMTYPE);
	cold_small_cfg(&cfg, dir, 48);
	cr_assert_eq(tkv__cold_open(&cfg, &c), -EINVAL, "capacity change");
	cr_assert(strstr(tkv_last_error(), "capacity"), "%s", tkv_last_error());
	/* a damaged manifest is reported, not guessed at */
	char p[512];
	snprintf(p, sizeof(p), "%s/manifest", dir);
	FILE *f = fopen(p, "r+");
	cr_assert_not_null(f);
	fseek(f, 20, SEEK_SET);
	fputc(0x77, f);
	fclose(f);
	cold_small_cfg(&cfg, dir, 32);
	cr_assert_eq(tkv__cold_open(&cfg, &c), -TKV_ECORRUPT);
	cr_assert(strstr(tkv_last_error(), "manifest"));
}

Test(cold_tier, two_opens_of_one_dir)
{
	tkv__cold_config cfg;
	tkv__cold *c = open_small(32, false), *c2 = (tkv__cold *)1;
	cold_small_cfg(&cfg, dir, 32);
	cr_assert_eq(tkv__cold_open(&cfg, &c2), -EBUSY);
	cr_assert_null(c2);
	cr_assert(strstr(tkv_last_error(), "in use"), "%s", tkv_last_error());
	tkv__cold_close(c);
	cr_assert_eq(tkv__cold_open(&cfg, &c2), 0, "lock released by close");
	tkv__cold_close(c2);
	tkv__cold_close(NULL);
}

Test(cold_tier, bad_config)
{
	tkv__cold_config cfg;
	tkv__cold *c;
	cold_small_cfg(&cfg, dir, 32);
	cfg.capacity_bytes = 1000;
	cr_assert_eq(tkv__cold_open(&cfg, &c), -EINVAL);
	cr_assert(strstr(tkv_last_error(), "capacity_bytes"));
	cold_small_cfg(&cfg, dir, 32);
	cfg.block_bytes = 100;
	cr_assert_eq(tkv__cold_open(&cfg, &c), -EINVAL);
	cr_assert(strstr(tkv_last_error(), "block_bytes"));
	cold_small_cfg(&cfg, dir, 32);
	cfg.queue_depth = 0;
	cr_assert_eq(tkv__cold_open(&cfg, &c), -EINVAL);
	cold_small_cfg(&cfg, NULL, 32);
	cr_assert_eq(tkv__cold_open(&cfg, &c), -EINVAL);
	cr_assert_eq(tkv__cold_open(NULL, &c), -EINVAL);
}

/* ---- concurrency: one writer, readers and a remover ---- */

typedef struct conc {
	tkv__cold *c;
	int stop;
	int wrong;
	int good; /* reads that returned data */
} conc;

#define CONC_KEYS 24

/* Not rand_r: the TSan build interposes it (tests/tsan/boxfort_arena.c). */
static uint32_t xrand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void *conc_reader(void *arg)
{
	conc *x = arg;
	size_t bb = tkv__cold_block_bytes(x->c);
	unsigned char *dst = aligned_alloc(4096, bb);
	uint32_t seed = (uint32_t)(uintptr_t)&dst | 1;
	while (!__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE)) {
		uint64_t k = xrand(&seed) % CONC_KEYS;
		uint32_t l = xrand(&seed) % LAYERS, nt = 0;
		int rc = tkv__cold_read_layer(x->c, 1, k, l, dst, &nt);
		if (rc == 0) {
			/* any version is fine; the bytes must be exactly one of them */
			bool ok = false;
			for (uint32_t v = 0; v < 64 && !ok; v++)
				ok = nt == v % 16 + 1 && cold_layer_is(x->c, dst, 1, k, l, v);
			__atomic_add_fetch(ok ? &x->good : &x->wrong, 1, __ATOMIC_RELAXED);
		} else if (rc != -ENOENT) {
			__atomic_add_fetch(&x->wrong, 1000, __ATOMIC_RELAXED);
		}
	}
	free(dst);
	return NULL;
}

static void *conc_remover(void *arg)
{
	conc *x = arg;
	uint32_t seed = 7;
	tkv__cold_block_info info[CONC_KEYS];
	while (!__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE)) {
		(void)tkv__cold_remove(x->c, 1, xrand(&seed) % CONC_KEYS);
		(void)tkv__cold_list_seq(x->c, 1, info, CONC_KEYS);
		if (xrand(&seed) % 64 == 0)
			(void)tkv__cold_remove_seq(x->c, 1);
		usleep(200);
	}
	return NULL;
}

Test(cold_tier, concurrent_writer_readers_remover)
{
	conc x = {open_small(40, false), 0, 0, 0};
	pthread_t rd[2], rm;
	enum { Q = 8 };
	void *bufs[Q];
	tkv__cold_done d[Q];
	int free_n = Q, out = 0;
	for (int i = 0; i < Q; i++)
		bufs[i] = tkv__cold_buf_alloc(x.c);
	for (int i = 0; i < 2; i++)
		pthread_create(&rd[i], NULL, conc_reader, &x);
	pthread_create(&rm, NULL, conc_remover, &x);
	for (uint32_t i = 0; i < 600 || out > 0;) {
		if (i < 600 && free_n > 0) {
			uint64_t k = i % CONC_KEYS;
			uint32_t v = (i / CONC_KEYS) % 64;
			void *b = bufs[--free_n];
			cold_fill(x.c, b, LAYERS, 1, k, v);
			cr_assert_eq(tkv__cold_write_submit(x.c, 1, k, v % 16 + 1, b, b), 0);
			out++;
			i++;
			continue;
		}
		int n = tkv__cold_write_reap(x.c, d, Q, true);
		for (int j = 0; j < n; j++) {
			cr_assert(d[j].status == 0 || d[j].status == -ECANCELED ||
				  d[j].status == -ENOSPC, "status %d", d[j].status);
			bufs[free_n++] = d[j].user;
		}
		out -= n;
	}
	__atomic_store_n(&x.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(rd[i], NULL);
	pthread_join(rm, NULL);
	cr_assert_eq(x.wrong, 0, "readers saw wrong data or errors: %d", x.wrong);
	cr_assert_gt(x.good, 0, "readers never found a record");
	tkv__cold_stats st;
	tkv__cold_stats_get(x.c, &st);
	cr_assert_eq(st.corrupt, 0);
	for (int i = 0; i < Q; i++)
		tkv__cold_buf_free(x.c, bufs[i]);
	tkv__cold_close(x.c);
}
