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
 *     back (a buffer unused, a block written) is taken again.
 *
 * The server is fake_server below: a thread on a loopback port that
 * parses RESP commands and answers every GET/SET/EXISTS with one fixed
 * reply, and CLUSTER with "cluster support disabled" (a standalone server,
 * as the client's map refresh expects).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "tiers/shared_tier.h"

TestSuite(shared_tier_errors, .timeout = 60);

/* ---- a fake server ------------------------------------------------------ */

enum { MAX_CLIENTS = 16, CLIENT_BUF = 1 << 20 };

typedef struct fake_client {
	int fd;
	char *buf;
	size_t len;
} fake_client;

typedef struct fake_server {
	int listen_fd, port;
	const char *answer; /* to GET, SET, EXISTS: a whole RESP reply */
	int stop;           /* __atomic: set by the test, read by the thread */
	uint64_t commands;  /* __atomic: data commands answered */
	int bad;            /* __atomic: bytes that were no RESP command */
	pthread_t thread;
	fake_client c[MAX_CLIENTS];
} fake_server;

/* Reads "<prefix><n>\r\n" at p (of have bytes): its length, 0 when
 * incomplete, -1 when it is something else; *n the number. (No Criterion
 * assertion in this thread: they belong to the test's own thread.) */
static long read_line_num(const char *p, size_t have, char prefix, long *n)
{
	const char *nl = memchr(p, '\n', have);
	if (!nl)
		return 0;
	if (p[0] != prefix)
		return -1;
	*n = strtol(p + 1, NULL, 10);
	return (long)(nl - p) + 1;
}

/* One whole command at p: its length (0: incomplete, -1: not RESP);
 * *name its first argument (up to 15 bytes, NUL-terminated). */
static long parse_command(const char *p, size_t have, char name[16])
{
	long argc, len, k = read_line_num(p, have, '*', &argc);
	if (k <= 0)
		return k;
	size_t at = (size_t)k;
	for (long i = 0; i < argc; i++) {
		if ((k = read_line_num(p + at, have - at, '$', &len)) <= 0)
			return k;
		at += (size_t)k;
		if (len < 0 || have - at < (size_t)len + 2)
			return len < 0 ? -1 : 0;
		if (i == 0) {
			size_t m = (size_t)len < 15 ? (size_t)len : 15;
			memcpy(name, p + at, m);
			name[m] = '\0';
		}
		at += (size_t)len + 2;
	}
	return (long)at;
}

static void send_str(int fd, const char *s)
{
	size_t n = strlen(s);
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* the client went away */
		s += w, n -= (size_t)w;
	}
}

/* Answers every whole command in c's buffer; false when c closed. */
static bool serve(fake_server *f, fake_client *c)
{
	ssize_t r = recv(c->fd, c->buf + c->len, CLIENT_BUF - c->len, 0);
	if (r <= 0)
		return false;
	c->len += (size_t)r;
	size_t at = 0;
	long k;
	char name[16];
	while ((k = parse_command(c->buf + at, c->len - at, name)) > 0) {
		at += (size_t)k;
		if (!strcasecmp(name, "CLUSTER")) {
			send_str(c->fd, "-ERR This instance has cluster support disabled\r\n");
		} else {
			send_str(c->fd, f->answer);
			__atomic_add_fetch(&f->commands, 1, __ATOMIC_RELAXED);
		}
	}
	memmove(c->buf, c->buf + at, c->len - at);
	c->len -= at;
	if (k < 0 || c->len == CLIENT_BUF) { /* not RESP, or larger than the buffer */
		__atomic_store_n(&f->bad, 1, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

static void *fake_main(void *arg)
{
	fake_server *f = arg;
	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p[MAX_CLIENTS + 1] = {{.fd = f->listen_fd, .events = POLLIN}};
		for (int i = 0; i < MAX_CLIENTS; i++)
			p[i + 1] = (struct pollfd){.fd = f->c[i].fd, .events = POLLIN};
		if (poll(p, MAX_CLIENTS + 1, 20) <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			int fd = accept(f->listen_fd, NULL, NULL);
			for (int i = 0; fd >= 0 && i < MAX_CLIENTS; i++)
				if (f->c[i].fd < 0) {
					f->c[i] = (fake_client){fd, f->c[i].buf, 0};
					fd = -1;
				}
			if (fd >= 0)
				close(fd); /* full */
		}
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (f->c[i].fd >= 0 && (p[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !serve(f, &f->c[i])) {
				close(f->c[i].fd);
				f->c[i].fd = -1;
			}
	}
	return NULL;
}

static void fake_start(fake_server *f, const char *answer)
{
	*f = (fake_server){.answer = answer};
	f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(f->listen_fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(f->listen_fd, 16), 0);
	socklen_t len = sizeof(a);
	cr_assert_eq(getsockname(f->listen_fd, (struct sockaddr *)&a, &len), 0);
	f->port = ntohs(a.sin_port);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		f->c[i].fd = -1;
		cr_assert_not_null(f->c[i].buf = malloc(CLIENT_BUF));
	}
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake_server *f)
{
	__atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
	pthread_join(f->thread, NULL);
	cr_assert_eq(f->bad, 0, "the fake server got bytes that were no RESP command");
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (f->c[i].fd >= 0)
			close(f->c[i].fd);
		free(f->c[i].buf);
	}
	close(f->listen_fd);
}

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

/* Waits (up to 10 s) until the writer settled every queued block. */
static void settle(tkv__shared_tier *st, tkv__shared_tier_stats *s)
{
	for (int i = 0; i < 10000; i++) {
		stats(st, s);
		if (s->writes_stored + s->writes_existed + s->writes_failed >= s->writes_queued)
			return;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	cr_assert_fail("the writer did not settle its blocks in 10 s");
}

/* Every GET and SET NX answered with `answer`: fetches hit nothing and
 * count one miss (a fetch stops at its first), writes fail; the client
 * counts each op under its kind; the connection and the node stay. */
static void error_reply(const char *answer, bool busy)
{
	fake_server f;
	fake_start(&f, answer);
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
	cr_assert_eq(busy ? s.client.err_busy : s.client.err_oom, 2 * N, "%s", answer);
	cr_assert_eq(s.queue_bytes, 0, "the failed writes gave their room back");
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
	fake_server f;
	fake_start(&f, "+OK\r\n");
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
	cr_assert_eq(s.queue_bytes, 0);
	/* written blocks gave their room back: the queue takes two again */
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
