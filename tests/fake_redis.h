/*
 * fake_redis.h - a fake Redis server for the shared-tier tests that need a
 * server to answer in a way a real one will not on demand: a thread on a
 * loopback port that parses RESP commands and answers
 *   - CLUSTER ... with "cluster support disabled" (a standalone server, as
 *     the client's map refresh expects);
 *   - every other command with `answer` (a whole RESP reply), or, when
 *     `answer` is NULL, a GET with a bulk string of `value_len` bytes
 *     (fake_value of the key) and anything else with +OK; the replies to
 *     the commands of one read are sent together, cut at the offsets in
 *     `cuts` (bytes into that stream) with a pause after each piece, so a
 *     client meets them split where the test wants.
 * No Criterion assertion runs in the server's thread (they belong to the
 * test's thread): what it could not parse is counted in `bad`, which
 * fake_stop checks.
 */
#ifndef TKV_TESTS_FAKE_REDIS_H
#define TKV_TESTS_FAKE_REDIS_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { FAKE_CLIENTS = 16, FAKE_BUF = 1 << 20, FAKE_CUTS = 16 };

typedef struct fake_client {
	int fd;
	char *buf;
	size_t len;
} fake_client;

typedef struct fake_server {
	int listen_fd, port;
	const char *answer; /* a whole RESP reply to every command; NULL: see above */
	size_t value_len;   /* NULL answer: GET's value length */
	size_t cuts[FAKE_CUTS], n_cuts; /* NULL answer: where replies are cut */
	int stop;           /* __atomic: set by the test, read by the thread */
	uint64_t commands;  /* __atomic: data commands answered */
	int bad;            /* __atomic: bytes that were no RESP command */
	pthread_t thread;
	fake_client c[FAKE_CLIENTS];
} fake_server;

/* Reads "<prefix><n>\r\n" at p (of have bytes): its length, 0 when
 * incomplete, -1 when it is something else; *n the number. (No Criterion
 * assertion in this thread: they belong to the test's own thread.) */
static inline long read_line_num(const char *p, size_t have, char prefix, long *n)
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
static inline long parse_command(const char *p, size_t have, char name[16], const char **arg1,
				 size_t *arg1_len)
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
		} else if (i == 1) {
			*arg1 = p + at, *arg1_len = (size_t)len;
		}
		at += (size_t)len + 2;
	}
	return (long)at;
}

/* The value a NULL-answer server gives key (len bytes): the key's bytes
 * and their position, so a value landing in another op's buffer shows. */
static inline void fake_value(unsigned char *v, size_t len, const char *key, size_t key_len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < key_len; i++)
		h = (h ^ (unsigned char)key[i]) * 16777619u;
	for (size_t i = 0; i < len; i++)
		v[i] = (unsigned char)(h >> (8 * (i % 4))) ^ (unsigned char)(i * 31);
}

static inline void send_bytes(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* the client went away */
		s += w, n -= (size_t)w;
	}
}

/* Appends n bytes to the growing *out. */
static inline void fake_put(char **out, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (*len + n > *cap) {
		*cap = (*len + n) * 2;
		*out = realloc(*out, *cap);
	}
	memcpy(*out + *len, p, n);
	*len += n;
}

/* One command's reply, appended to out. */
static inline void fake_reply(fake_server *f, const char *name, const char *key, size_t key_len,
			      char **out, size_t *len, size_t *cap)
{
	static const char disabled[] = "-ERR This instance has cluster support disabled\r\n";
	if (!strcasecmp(name, "CLUSTER")) {
		fake_put(out, len, cap, disabled, sizeof(disabled) - 1);
		return;
	}
	__atomic_add_fetch(&f->commands, 1, __ATOMIC_RELAXED);
	if (f->answer) {
		fake_put(out, len, cap, f->answer, strlen(f->answer));
	} else if (!strcasecmp(name, "GET")) {
		char h[32];
		int k = snprintf(h, sizeof(h), "$%zu\r\n", f->value_len);
		fake_put(out, len, cap, h, (size_t)k);
		if (*len + f->value_len + 2 > *cap) {
			*cap = (*len + f->value_len + 2) * 2;
			*out = realloc(*out, *cap);
		}
		fake_value((unsigned char *)*out + *len, f->value_len, key, key_len);
		*len += f->value_len;
		fake_put(out, len, cap, "\r\n", 2);
	} else {
		fake_put(out, len, cap, "+OK\r\n", 5);
	}
}

/* Answers every whole command in c's buffer (their replies sent together,
 * cut at f->cuts with a pause after each piece); false when c closed. */
static inline bool serve(fake_server *f, fake_client *c)
{
	ssize_t r = recv(c->fd, c->buf + c->len, FAKE_BUF - c->len, 0);
	if (r <= 0)
		return false;
	c->len += (size_t)r;
	size_t at = 0, len = 0, cap = 0, key_len = 0;
	char *out = NULL, name[16];
	const char *key = NULL;
	long k;
	while ((k = parse_command(c->buf + at, c->len - at, name, &key, &key_len)) > 0) {
		fake_reply(f, name, key, key_len, &out, &len, &cap);
		at += (size_t)k;
	}
	size_t sent = 0;
	for (size_t i = 0; i < f->n_cuts && f->cuts[i] < len; i++) {
		send_bytes(c->fd, out + sent, f->cuts[i] - sent);
		sent = f->cuts[i];
		nanosleep(&(struct timespec){0, 30000000}, NULL); /* the client reads what came */
	}
	send_bytes(c->fd, out + sent, len - sent);
	free(out);
	memmove(c->buf, c->buf + at, c->len - at);
	c->len -= at;
	if (k < 0 || c->len == FAKE_BUF) { /* not RESP, or larger than the buffer */
		__atomic_store_n(&f->bad, 1, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

static inline void *fake_main(void *arg)
{
	fake_server *f = arg;
	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p[FAKE_CLIENTS + 1] = {{.fd = f->listen_fd, .events = POLLIN}};
		for (int i = 0; i < FAKE_CLIENTS; i++)
			p[i + 1] = (struct pollfd){.fd = f->c[i].fd, .events = POLLIN};
		if (poll(p, FAKE_CLIENTS + 1, 20) <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			int fd = accept(f->listen_fd, NULL, NULL);
			for (int i = 0; fd >= 0 && i < FAKE_CLIENTS; i++)
				if (f->c[i].fd < 0) {
					f->c[i] = (fake_client){fd, f->c[i].buf, 0};
					fd = -1;
				}
			if (fd >= 0)
				close(fd); /* full */
		}
		for (int i = 0; i < FAKE_CLIENTS; i++)
			if (f->c[i].fd >= 0 && (p[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !serve(f, &f->c[i])) {
				close(f->c[i].fd);
				f->c[i].fd = -1;
			}
	}
	return NULL;
}

/* Starts f (its fields set by the caller: answer, value_len, cuts). */
static inline void fake_start(fake_server *f)
{
	f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(f->listen_fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(f->listen_fd, 16), 0);
	socklen_t len = sizeof(a);
	cr_assert_eq(getsockname(f->listen_fd, (struct sockaddr *)&a, &len), 0);
	f->port = ntohs(a.sin_port);
	for (int i = 0; i < FAKE_CLIENTS; i++) {
		f->c[i].fd = -1;
		cr_assert_not_null(f->c[i].buf = malloc(FAKE_BUF));
	}
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static inline void fake_stop(fake_server *f)
{
	__atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
	pthread_join(f->thread, NULL);
	cr_assert_eq(f->bad, 0, "the fake server got bytes that were no RESP command");
	for (int i = 0; i < FAKE_CLIENTS; i++) {
		if (f->c[i].fd >= 0)
			close(f->c[i].fd);
		free(f->c[i].buf);
	}
	close(f->listen_fd);
}

#endif
