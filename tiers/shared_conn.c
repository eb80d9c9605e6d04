/*
 * shared_conn.c - one connection to one node (a "link"), owned by one
 * thread: connect with a timeout, send pipelined commands, read replies.
 *
 * hiredis parses the replies; the sending is ours, for two reasons:
 *   - SIGPIPE: hiredis writes with write(2), so a node that closed the
 *     connection would kill an embedder that did not ignore SIGPIPE; a
 *     library must not touch the process's signal handling, and
 *     sendmsg(MSG_NOSIGNAL) avoids the signal instead.
 *   - copies: redisAppendCommandArgv formats the command (one copy of the
 *     value) and appends it to the output buffer (a second), and every
 *     partial write moves the rest of that buffer down (sdsrange); a SET of
 *     a 4 MiB value would be copied several times. Here a value is sent
 *     straight from the caller's memory by an iovec.
 * The reading side keeps hiredis's reader for every reply but one kind: a
 * GET's value (a bulk string that fits the op's buffer, when that buffer
 * is at least TKV__SHARED_DIRECT_MIN) is read from the socket straight into
 * the op's buffer, after a small read for its header; a raw hiredis GET
 * copies it three times (a 16 KiB stack buffer, the reader's buffer, a
 * reply object). Other replies go through the reader, whose createString
 * we replace so a small GET value is copied once, from the reader's buffer
 * into the op's buffer, and a value longer than the buffer not at all.
 *
 * Deadlines, not socket timeouts: the socket is non-blocking (hiredis's
 * REDIS_BLOCK flag cleared, so its read treats EAGAIN as "no data yet"),
 * and this file polls with the time left until the caller's deadline only
 * when nothing can be sent or read. SO_RCVTIMEO/SO_SNDTIMEO (redisSetTimeout)
 * restart on every partial transfer, so a 64 MiB SET to a stopped server
 * waited twice its timeout; a deadline holds whatever trickles. After any
 * error the caller closes the link, so a reply that arrives late is never
 * read as the answer to a later command.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/array.h"
#include "base/clock.h"
#include "tiers/shared_impl.h"

struct tkv__shared_seg {
	const void *ext; /* NULL: bytes at hdr + off */
	size_t off, len;
};

char tkv__shared_hit_mark, tkv__shared_toobig_mark;

static bool is_mark(const void *p)
{
	return p == &tkv__shared_hit_mark || p == &tkv__shared_toobig_mark;
}

/* hiredis gives every task the reader's privdata: the link. */
static void *create_string(const redisReadTask *task, char *str, size_t len)
{
	tkv__shared_link *l = task->privdata;
	tkv__shared_op *op = l->sink;
	if (!op || task->parent || task->type != REDIS_REPLY_STRING)
		return l->orig->createString(task, str, len);
	op->len = len;
	if (len > op->cap)
		return &tkv__shared_toobig_mark;
	if (len)
		memcpy(op->buf, str, len);
	return &tkv__shared_hit_mark;
}

void tkv__shared_reply_free(void *reply)
{
	if (reply && !is_mark(reply))
		freeReplyObject(reply);
}

static struct timeval tv_of_ns(uint64_t ns)
{
	return (struct timeval){(time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000u)};
}

int tkv__shared_link_open(tkv__shared *s, tkv__shared_link *l, uint16_t node)
{
	const tkv__shared_node *n = &s->nodes[node];
	redisContext *ctx = redisConnectWithTimeout(n->host, n->port, tv_of_ns(s->connect_timeout_ns));
	if (!ctx)
		return -ENOMEM;
	if (ctx->err) {
		int err = ctx->err == REDIS_ERR_IO && errno == ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
		redisFree(ctx);
		return err;
	}
	int fl = fcntl(ctx->fd, F_GETFL);
	if (fl < 0 || fcntl(ctx->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		redisFree(ctx);
		return -ECONNRESET;
	}
	ctx->flags &= ~REDIS_BLOCK;
	l->orig = ctx->reader->fn;
	l->fns = *l->orig;
	l->fns.createString = create_string;
	l->fns.freeObject = tkv__shared_reply_free;
	ctx->reader->fn = &l->fns;
	ctx->reader->privdata = l;
	l->ctx = ctx;
	l->sink = NULL;
	l->hdr_len = l->n_segs = 0;
	TKV__SHARED_COUNT(s, conns_opened, 1);
	return 0;
}

void tkv__shared_link_close(tkv__shared *s, tkv__shared_link *l, bool on_error)
{
	if (!l->ctx)
		return;
	redisFree(l->ctx);
	l->ctx = NULL;
	l->hdr_len = l->n_segs = 0;
	if (on_error)
		TKV__SHARED_COUNT(s, conns_closed_on_error, 1);
}

void tkv__shared_link_free(tkv__shared_link *l)
{
	if (l->ctx)
		redisFree(l->ctx);
	free(l->hdr);
	free(l->segs);
	free(l->rbuf);
	memset(l, 0, sizeof(*l));
}

static int put_seg(tkv__shared_link *l, const void *ext, size_t off, size_t len)
{
	void *t = tkv__array_grow(l->segs, &l->segs_cap, l->n_segs + 1, sizeof(*l->segs));
	if (!t)
		return -ENOMEM;
	l->segs = t;
	struct tkv__shared_seg *last = l->n_segs ? &l->segs[l->n_segs - 1] : NULL;
	if (!ext && last && !last->ext && last->off + last->len == off) {
		last->len += len; /* consecutive header bytes: one iovec */
		return 0;
	}
	l->segs[l->n_segs++] = (struct tkv__shared_seg){ext, off, len};
	return 0;
}

static int put_hdr(tkv__shared_link *l, const void *p, size_t n)
{
	void *t = tkv__array_grow(l->hdr, &l->hdr_cap, l->hdr_len + n, 1);
	if (!t)
		return -ENOMEM;
	l->hdr = t;
	memcpy(l->hdr + l->hdr_len, p, n);
	l->hdr_len += n;
	return put_seg(l, NULL, l->hdr_len - n, n);
}

/* "<kind><n>\r\n", by hand: snprintf here (three calls per GET) and in
 * the key names was ~6% of a 20 KiB get's samples. */
static int put_fmt(tkv__shared_link *l, char kind, size_t n)
{
	char b[24];
	size_t k = sizeof(b);
	b[--k] = '\n';
	b[--k] = '\r';
	do
		b[--k] = (char)('0' + n % 10);
	while ((n /= 10) != 0);
	b[--k] = kind;
	return put_hdr(l, b + k, sizeof(b) - k);
}

int tkv__shared_link_add(tkv__shared_link *l, int argc, const char *const *argv,
			 const size_t *lens, int ext)
{
	int rc = put_fmt(l, '*', (size_t)argc);
	for (int i = 0; i < argc && rc == 0; i++) {
		rc = put_fmt(l, '$', lens[i]);
		if (rc == 0 && lens[i])
			rc = i == ext ? put_seg(l, argv[i], 0, lens[i]) : put_hdr(l, argv[i], lens[i]);
		if (rc == 0)
			rc = put_hdr(l, "\r\n", 2);
	}
	return rc;
}

/* Waits until fd is ready for events or deadline passes: 0 or -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = tkv__now_ns();
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = events};
		int ms = (int)((deadline_ns - now + 999999) / 1000000);
		int rc = poll(&p, 1, ms);
		if (rc > 0)
			return 0; /* ready, or an error the next call reports */
		if (rc == 0 || errno != EINTR)
			return rc == 0 ? -ETIMEDOUT : -ECONNRESET;
	}
}

/* Sends iov[0..n), all of it, advancing the array past what was sent. */
static int send_all(int fd, struct iovec *iov, size_t n, uint64_t deadline_ns)
{
	while (n) {
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = n < IOV_MAX ? n : IOV_MAX};
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			int rc = 0;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				rc = wait_fd(fd, POLLOUT, deadline_ns);
			else if (errno != EINTR)
				rc = -ECONNRESET;
			if (rc)
				return rc;
			continue;
		}
		while (n && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++, n--;
		}
		if (n) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int tkv__shared_link_flush(tkv__shared_link *l, uint64_t deadline_ns)
{
	size_t n = l->n_segs;
	if (n == 0)
		return 0;
	struct iovec *iov = malloc(n * sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct tkv__shared_seg *g = &l->segs[i];
		iov[i].iov_base = g->ext ? (void *)g->ext : l->hdr + g->off;
		iov[i].iov_len = g->len;
	}
	int rc = send_all(l->ctx->fd, iov, n, deadline_ns);
	free(iov);
	l->hdr_len = l->n_segs = 0;
	return rc;
}

static int ctx_error(const redisContext *ctx)
{
	switch (ctx->err) {
	case REDIS_ERR_IO:
	case REDIS_ERR_EOF:
		return -ECONNRESET;
	case REDIS_ERR_OOM:
		return -ENOMEM;
	default:
		return -EPROTO;
	}
}

/* Feeds the reader with up to max bytes of what the socket holds: 1 read,
 * 0 nothing yet (EAGAIN), or negative errno. hiredis's own redisBufferRead
 * reads 16 KiB at a time: a 4 MiB value would cost 256 reads. */
static int feed(tkv__shared_link *l, size_t max)
{
	if (!l->rbuf && !(l->rbuf = malloc(TKV__SHARED_RBUF)))
		return -ENOMEM;
	ssize_t n;
	do
		n = read(l->ctx->fd, l->rbuf, max < TKV__SHARED_RBUF ? max : TKV__SHARED_RBUF);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -ECONNRESET;
	if (n == 0)
		return -ECONNRESET; /* the server closed the connection */
	return redisReaderFeed(l->ctx->reader, l->rbuf, (size_t)n) == REDIS_OK ? 1 : -ENOMEM;
}

/* feed, then wait when nothing came: 0 or negative errno. */
static int feed_or_wait(tkv__shared_link *l, size_t max, uint64_t deadline_ns)
{
	int rc = feed(l, max);
	if (rc == 0)
		rc = wait_fd(l->ctx->fd, POLLIN, deadline_ns);
	return rc < 0 ? rc : 0;
}

/* Between two replies: nothing of the next one parsed yet. (After a
 * reply ends exactly at the end of the buffer, hiredis has already set up
 * its first task, with no type read.) */
static bool at_reply_start(const redisReader *r)
{
	return r->ridx == -1 || (r->ridx == 0 && r->rstack[0].type < 0);
}

/* The "$<len>\r\n" header at the reader's position: 1 and *len, or 0 when
 * the reply is anything else (hiredis then parses it), or negative errno. */
static int bulk_header(tkv__shared_link *l, size_t *len, size_t *hdr, uint64_t deadline_ns)
{
	redisReader *r = l->ctx->reader;
	for (;;) {
		const char *p = r->buf + r->pos;
		size_t have = r->len - r->pos;
		const char *nl = have ? memchr(p, '\n', have) : NULL;
		if (have && p[0] != '$')
			return 0;
		if (nl) {
			size_t v = 0, i = 1;
			for (; p + i < nl - 1 && p[i] >= '0' && p[i] <= '9' && i < 20; i++)
				v = v * 10 + (size_t)(p[i] - '0');
			if (i == 1 || p + i != nl - 1 || *(nl - 1) != '\r')
				return 0; /* $-1 (nil) or malformed: hiredis decides */
			*len = v, *hdr = (size_t)(nl - p) + 1;
			return 1;
		}
		if (have > 24)
			return 0;
		/* A small read: the header, and as little of the value as may
		 * be, so the value goes from the socket to the op's buffer. */
		int rc = feed_or_wait(l, 64, deadline_ns);
		if (rc)
			return rc;
	}
}

/* Reads a GET's bulk string straight into op->buf, bypassing the reader's
 * buffer: 1 done (*reply is the hit mark), 0 not a bulk string that fits
 * (hiredis parses it), or negative errno (the link is then unusable). */
static int read_direct(tkv__shared_link *l, tkv__shared_op *op, void **reply, uint64_t deadline_ns)
{
	redisReader *r = l->ctx->reader;
	size_t len = 0, hdr = 0;
	if (!at_reply_start(r))
		return 0;
	int rc = bulk_header(l, &len, &hdr, deadline_ns);
	if (rc <= 0)
		return rc;
	if (len > op->cap)
		return 0; /* hiredis reads it past and marks it too long */
	size_t inbuf = r->len - r->pos - hdr, got = inbuf < len ? inbuf : len;
	memcpy(op->buf, r->buf + r->pos + hdr, got);
	r->pos += hdr + got;
	rc = 0;
	/* The rest of the value into place, and in the same recvmsg whatever
	 * follows it (its CRLF, the next replies) into a tail for the reader:
	 * one system call per value where a value fits the socket buffer, not
	 * one for the value and one for the next header (at 20 KiB values the
	 * extra call made the tier's GET cost 1.3-1.5x raw hiredis's CPU). */
	if (got < len && !l->rbuf && !(l->rbuf = malloc(TKV__SHARED_RBUF)))
		return -ENOMEM;
	while (got < len) {
		/* a short tail: the CRLF and the next reply's header, not the
		 * next values (those go to their own buffers directly) */
		struct iovec iov[2] = {{(char *)op->buf + got, len - got}, {l->rbuf, 64}};
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
		ssize_t n = recvmsg(l->ctx->fd, &m, 0);
		if (n > 0) {
			size_t k = (size_t)n, in_value = k < len - got ? k : len - got;
			got += in_value;
			/* the kernel fills the iovecs in order: a tail byte means
			 * the value is complete */
			if (k > in_value &&
			    redisReaderFeed(l->ctx->reader, l->rbuf, k - in_value) != REDIS_OK)
				return -ENOMEM;
		} else if (n == 0) {
			return -ECONNRESET;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			rc = wait_fd(l->ctx->fd, POLLIN, deadline_ns);
		} else if (errno != EINTR) {
			return -ECONNRESET;
		}
		if (rc)
			return rc;
	}
	/* The CRLF after the value, with the next reply's header if it came. */
	while (r->len - r->pos < 2)
		if ((rc = feed_or_wait(l, 64, deadline_ns)) != 0)
			return rc;
	if (r->buf[r->pos] != '\r' || r->buf[r->pos + 1] != '\n')
		return -EPROTO;
	r->pos += 2;
	/* hiredis drops consumed bytes only when it parses a reply; replies
	 * read here would grow its buffer by every header. */
	if (r->pos >= 1024) {
		sdsrange(r->buf, (int)r->pos, -1);
		r->pos = 0;
		r->len = sdslen(r->buf);
	}
	op->len = len;
	*reply = &tkv__shared_hit_mark;
	return 1;
}

int tkv__shared_link_read(tkv__shared_link *l, tkv__shared_op *sink, void **reply,
			  uint64_t deadline_ns)
{
	redisContext *ctx = l->ctx;
	int rc = 0;
	*reply = NULL;
	if (sink && sink->cap >= TKV__SHARED_DIRECT_MIN) {
		rc = read_direct(l, sink, reply, deadline_ns);
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
	l->sink = sink;
	for (;;) {
		if (redisGetReplyFromReader(ctx, reply) != REDIS_OK) {
			rc = ctx_error(ctx);
			break;
		}
		if (*reply || (rc = feed_or_wait(l, TKV__SHARED_RBUF, deadline_ns)) != 0)
			break;
	}
	l->sink = NULL;
	return rc;
}

redisReply *tkv__shared_query(tkv__shared *s, uint16_t node, int argc, const char *const *argv)
{
	tkv__shared_link l = {0};
	size_t lens[8];
	void *r = NULL;
	if (argc > 8 || tkv__shared_link_open(s, &l, node) != 0)
		goto out;
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	uint64_t deadline = tkv__now_ns() + s->op_timeout_ns;
	if (tkv__shared_link_add(&l, argc, argv, lens, -1) != 0 ||
	    tkv__shared_link_flush(&l, deadline) != 0 || tkv__shared_link_read(&l, NULL, &r, deadline) != 0) {
		tkv__shared_reply_free(r);
		r = NULL;
	}
out:
	tkv__shared_link_free(&l);
	return r;
}
