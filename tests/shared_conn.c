/*
 * shared_conn.c - the shared tier's reply reading (tiers/shared_conn.c)
 * when replies arrive cut at awkward places, against tests/fake_redis.h
 * (no real Redis: it sends its replies in pieces where the test says).
 * GET values are received straight into their buffers, several per
 * recvmsg when they are there (ahead entries, each taken only when the
 * next reply starts with exactly "$<buffer size>\r\n"); a cut in a value,
 * in its CRLF, in the next header or right at a boundary must never put a
 * byte in another op's buffer or lose the pipeline's step.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fake_redis.h"
#include "tiers/shared_client.h"

TestSuite(shared_conn, .timeout = 60);

enum { N = 6, LEN = 20000, REPLY = 8 + LEN + 2 /* "$20000\r\n" value "\r\n" */ };

/* N GETs of LEN-byte values into buffers of `cap`, the replies cut at
 * `cuts`: every op a hit with its own key's bytes, nothing closed. */
static void cut_replies(size_t cap, const size_t *cuts, size_t n_cuts)
{
	fake_server f = {.value_len = LEN, .n_cuts = n_cuts};
	memcpy(f.cuts, cuts, n_cuts * sizeof(*cuts));
	fake_start(&f);
	char seeds[64];
	snprintf(seeds, sizeof(seeds), "127.0.0.1:%d", f.port);
	tkv__shared_cfg cfg = {.seeds = seeds, .op_timeout_ms = 2000};
	tkv__shared *s;
	cr_assert_eq(tkv__shared_open(&cfg, &s), 0);
	tkv__shared_conn *c = tkv__shared_conn_new(s);
	char keys[N][16];
	unsigned char *b[N], want[LEN];
	tkv__shared_op ops[N];
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		cr_assert_not_null(b[i] = malloc(cap));
		memset(b[i], 0xee, cap);
		ops[i] = (tkv__shared_op){.key = keys[i], .key_len = strlen(keys[i]), .buf = b[i],
					  .cap = cap};
	}
	cr_assert_eq(tkv__shared_get(c, ops, N), N);
	for (int i = 0; i < N; i++) {
		fake_value(want, LEN, keys[i], strlen(keys[i]));
		cr_assert_eq(ops[i].status, 0, "op %d: %d", i, ops[i].status);
		cr_assert_eq(ops[i].len, LEN, "op %d", i);
		cr_assert(memcmp(b[i], want, LEN) == 0, "op %d: not its own bytes", i);
	}
	tkv__shared_stats st;
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.conns_closed_on_error, 0);
	cr_assert_eq(st.get_hits, N);
	for (int i = 0; i < N; i++)
		free(b[i]);
	tkv__shared_conn_free(c);
	tkv__shared_close(s);
	fake_stop(&f);
}

/* In a value; between its CR and LF; in the next header; right after a
 * value's last byte; right after a CRLF; in the last value. */
static const size_t awkward[] = {5000,
				 REPLY - 1,
				 REPLY + 3,
				 2 * REPLY + 8 + LEN,
				 4 * REPLY,
				 5 * REPLY + 100};

Test(shared_conn, values_received_ahead_survive_every_cut)
{
	/* buffers of exactly the value's size: every header is the expected
	 * one, so values are received ahead */
	cut_replies(LEN, awkward, sizeof(awkward) / sizeof(awkward[0]));
}

Test(shared_conn, a_header_other_than_expected_goes_to_the_reader_at_every_cut)
{
	/* buffers one byte larger: no header is the expected one, so each
	 * lookahead ends at the header and the reader takes over from there */
	cut_replies(LEN + 1, awkward, sizeof(awkward) / sizeof(awkward[0]));
}

Test(shared_conn, a_cut_at_every_offset_of_a_header)
{
	/* one cut at each byte of the second reply's boundary region: the
	 * first value's end, its CRLF, the second header */
	for (size_t at = REPLY - 3; at <= REPLY + 9; at++) {
		size_t cut[1] = {at};
		cut_replies(LEN, cut, 1);
	}
}
