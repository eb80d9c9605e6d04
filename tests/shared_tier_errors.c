/*
 * shared_tier_errors.c - the shared tier (tiers/shared_tier.c) when the
 * server answers with an error, and when its write queue is full; no real
 * Redis needed, so these run without the fixture:
 *   - TRYAGAIN, LOADING, CLUSTERDOWN and OOM replies to GET are misses and
 *     to SET NX failed writes, each counted by kind (err_busy, err_oom); an
 *     error reply is an answer, so the connection stays open and the node
 *     up, and nothing is handed out as data;
 *   - the write queue's bound: buffers reserve queue room, the one that
 *     does not fit is refused and counted in writes_dropped, and room given
 *     back (a buffer unused, a block written) is taken again;
 *   - key names keep their format.
 *
 * The server is tests/fake_redis.h's, answering every GET and SET with one
 * fixed reply.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "tests/fake_redis.h"
#include "tiers/shared_tier.h"

TestSuite(shared_tier_errors, .timeout = 60);

/* ---- a shared tier on it ------------------------------------------------ */

enum { BT = 16, N = 3 };

/* A tier of 1 layer x 1 head x 64 f32 (a 12 KiB record) on f's port;
 * queue_records records of write queue. */
static tkv__shared_tier *open_tier(const fake_server *f, char seeds[64], uint64_t queue_records)
{
	snprintf(seeds, 64, "127.0.0.1:%d", f->port);
	tkv__cold_layout lay;
	cr_assert_eq(tkv__cold_layout_init(&lay, 1, 1, 64, TKV_DTYPE_F32, BT, 0), 0);
	tkv__shared_tier_cfg cfg = {
		.client = {.seeds = seeds, .connect_timeout_ms = 1000, .op_timeout_ms = 1000},
		.ns = {0x1234, 0x5678},
		.layout = lay,
		.crc = tkv__kernels_get(TKV_ISA_AUTO)->crc32c,
		.queue_bytes = queue_records * lay.record_bytes,
	};
	tkv__shared_tier *st;
	cr_assert_eq(tkv__shared_tier_open(&cfg, &st), 0);
	return st;
}

static void keys_tokens(tkv__key keys[N], uint32_t tokens[N * BT])
{
	for (uint32_t i = 0; i < N; i++) {
		keys[i] = (tkv__key){0xabc0 + i, 0xdef0 + i};
		for (uint32_t t = 0; t < BT; t++)
			tokens[i * BT + t] = 100 * i + t;
	}
}

static void stats(tkv__shared_tier *st, tkv__shared_tier_stats *s)
{
	tkv__shared_tier_stats_get(st, s);
}

/* Waits (up to 10 s) until the writer settled every queued block and gave
 * its room back (the test fails if it does not), then takes the stats once
 * more. A snapshot is not a consistent cut (tkv_stats_get): the writer
 * counts a block settled before it returns the block's room, and the one
 * snapshot that first saw the last block settled could still miss the
 * client's count of the same reply or the room (both seen once each under
 * TSan in 25 runs); everything is in the next one. */
static void settle(tkv__shared_tier *st, tkv__shared_tier_stats *s)
{
	for (int i = 0; i < 10000; i++) {
		stats(st, s);
		if (s->writes_stored + s->writes_existed + s->writes_failed >= s->writes_queued &&
		    s->queue_bytes == 0) {
			stats(st, s);
			return;
		}
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	cr_assert_fail("the writer did not settle its blocks and give their room back in 10 s "
		       "(%llu of %llu settled, %llu bytes queued)",
		       (unsigned long long)(s->writes_stored + s->writes_existed + s->writes_failed),
		       (unsigned long long)s->writes_queued, (unsigned long long)s->queue_bytes);
}

/* Every GET and SET NX answered with `answer`: fetches hit nothing and
 * count one miss (a fetch stops at its first), writes fail; the client
 * counts each op under its kind; the connection and the node stay. */
static void error_reply(const char *answer, bool busy)
{
	fake_server f = {.answer = answer};
	fake_start(&f);
	char seeds[64];
	tkv__shared_tier *st = open_tier(&f, seeds, 8);
	tkv__key keys[N];
	uint32_t tokens[N * BT];
	keys_tokens(keys, tokens);

	void *bufs[N];
	for (int i = 0; i < N; i++) {
		cr_assert_not_null(bufs[i] = tkv__shared_tier_buf_raw(st));
		memset(bufs[i], 0x5a, tkv__shared_tier_record_bytes(st));
	}
	cr_assert_eq(tkv__shared_tier_fetch(st, keys, tokens, N, bufs), 0, "%s: a hit", answer);
	tkv__shared_tier_stats s;
	stats(st, &s);
	cr_assert_eq(s.fetch_blocks, N);
	cr_assert_eq(s.fetch_hits, 0);
	cr_assert_eq(s.fetch_misses, 1, "%s: misses %llu", answer, (unsigned long long)s.fetch_misses);
	cr_assert_eq(s.fetch_corrupt, 0);
	cr_assert_eq(s.client.gets, N);
	cr_assert_eq(s.client.get_hits + s.client.get_misses, 0);
	cr_assert_eq(busy ? s.client.err_busy : s.client.err_oom, N, "%s", answer);
	for (int i = 0; i < N; i++)
		tkv__shared_tier_buf_free(st, bufs[i]);

	for (int i = 0; i < N; i++) {
		void *b = tkv__shared_tier_buf(st);
		cr_assert_not_null(b);
		memset(b, i, tkv__shared_tier_record_bytes(st));
		tkv__shared_tier_put(st, keys[i], tokens + i * BT, b);
	}
	settle(st, &s);
	cr_assert_eq(s.writes_queued, N);
	cr_assert_eq(s.writes_failed, N, "%s: failed writes %llu", answer,
		     (unsigned long long)s.writes_failed);
	cr_assert_eq(s.writes_stored + s.writes_existed + s.writes_dropped, 0);
	cr_assert_eq(s.client.sets, N);
	cr_assert_eq(busy ? s.client.err_busy : s.client.err_oom, 2 * N,
		     "%s: busy %llu oom %llu timeout %llu conn %llu proto %llu", answer,
		     (unsigned long long)s.client.err_busy, (unsigned long long)s.client.err_oom,
		     (unsigned long long)s.client.err_timeout, (unsigned long long)s.client.err_conn,
		     (unsigned long long)s.client.err_proto);
	/* (settle saw the failed writes give their room back) */
	/* an error reply is an answer: nothing closed, nothing down */
	cr_assert_eq(s.client.conns_closed_on_error, 0, "%s closed a connection", answer);
	cr_assert_eq(s.client.err_conn + s.client.err_timeout + s.client.err_proto, 0);
	cr_assert_eq(s.client.nodes_down, 0);
	cr_assert_eq(s.client.nodes_up, 1);
	cr_assert_eq(__atomic_load_n(&f.commands, __ATOMIC_RELAXED), 2 * N);
	tkv__shared_tier_close(st);
	fake_stop(&f);
}

Test(shared_tier_errors, tryagain_is_a_miss_and_a_failed_write)
{
	error_reply("-TRYAGAIN Multiple keys request during rehashing of slot\r\n", true);
}

Test(shared_tier_errors, loading_is_a_miss_and_a_failed_write)
{
	error_reply("-LOADING Redis is loading the dataset in memory\r\n", true);
}

Test(shared_tier_errors, clusterdown_is_a_miss_and_a_failed_write)
{
	error_reply("-CLUSTERDOWN The cluster is down\r\n", true);
}

Test(shared_tier_errors, oom_is_a_miss_and_a_failed_write)
{
	error_reply("-OOM command not allowed when used memory > 'maxmemory'.\r\n", false);
}

/* The queue holds two records: a third buffer is refused and counted; a
 * buffer given back unused, or a block written, makes room again. */
Test(shared_tier_errors, a_full_write_queue_drops_and_counts)
{
	fake_server f = {.answer = "+OK\r\n"};
	fake_start(&f);
	char seeds[64];
	tkv__shared_tier *st = open_tier(&f, seeds, 2);
	const uint64_t rec = tkv__shared_tier_record_bytes(st);
	tkv__key keys[N];
	uint32_t tokens[N * BT];
	keys_tokens(keys, tokens);

	void *a = tkv__shared_tier_buf(st), *b = tkv__shared_tier_buf(st);
	cr_assert(a && b);
	tkv__shared_tier_stats s;
	stats(st, &s);
	cr_assert_eq(s.queue_bytes, 2 * rec);
	cr_assert_null(tkv__shared_tier_buf(st), "a third record in a two-record queue");
	cr_assert_null(tkv__shared_tier_buf(st));
	stats(st, &s);
	cr_assert_eq(s.writes_dropped, 2);
	cr_assert_eq(s.queue_bytes, 2 * rec, "a refused buffer holds no room");

	tkv__shared_tier_buf_unused(st, a);
	stats(st, &s);
	cr_assert_eq(s.queue_bytes, rec);
	void *c = tkv__shared_tier_buf(st);
	cr_assert_not_null(c, "room given back is taken again");
	memset(b, 1, rec);
	memset(c, 2, rec);
	tkv__shared_tier_put(st, keys[0], tokens, b);
	tkv__shared_tier_put(st, keys[1], tokens + BT, c);
	settle(st, &s);
	cr_assert_eq(s.writes_queued, 2);
	cr_assert_eq(s.writes_stored, 2);
	cr_assert_eq(s.writes_dropped, 2, "only the refused buffers are dropped writes");
	/* written blocks gave their room back (settle waited for it): the
	 * queue takes two again */
	a = tkv__shared_tier_buf(st), b = tkv__shared_tier_buf(st);
	cr_assert(a && b);
	cr_assert_null(tkv__shared_tier_buf(st));
	stats(st, &s);
	cr_assert_eq(s.writes_dropped, 3);
	tkv__shared_tier_buf_unused(st, a);
	tkv__shared_tier_buf_unused(st, b);
	tkv__shared_tier_close(st);
	fake_stop(&f);
}

/* Key names are written by hand (no snprintf on the op path); they must
 * stay what docs/ARCHITECTURE.md ("Values") says, the format other nodes
 * (and earlier versions) use: tkv1:<ns hi><ns lo>:<key hi><key lo>, in
 * 16-digit lowercase hex each. */
Test(shared_tier_errors, key_names_keep_their_format)
{
	fake_server f = {.answer = "+OK\r\n"};
	fake_start(&f);
	char seeds[64];
	tkv__shared_tier *st = open_tier(&f, seeds, 2); /* ns {0x1234, 0x5678} */
	const tkv__key keys[] = {{0, 0}, {0xabc0, 0xdef0}, {UINT64_MAX, 1}, {0x0123456789abcdefull, 0xfedcba9876543210ull}};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char want[80], got[80];
		snprintf(want, sizeof(want), "tkv1:%016llx%016llx:%016llx%016llx", 0x1234ull, 0x5678ull,
			 (unsigned long long)keys[i].hi, (unsigned long long)keys[i].lo);
		cr_assert_eq(tkv__shared_tier_key_name(st, keys[i], got, sizeof(got)), strlen(want));
		cr_assert_str_eq(got, want);
		char cut[10];
		tkv__shared_tier_key_name(st, keys[i], cut, sizeof(cut)); /* NUL-terminated, cut */
		cr_assert_eq(strncmp(cut, want, sizeof(cut) - 1), 0);
		cr_assert_eq(cut[sizeof(cut) - 1], '\0');
	}
	tkv__shared_tier_close(st);
	fake_stop(&f);
}
