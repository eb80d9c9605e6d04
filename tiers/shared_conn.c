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
 * The reading side keeps hiredis's reader for everything but a GET's value
 * (read_bulk_direct): at a reply boundary, a "$<len>" bulk string that fits
 * the op's buffer is received straight into it (what the reader already
 * buffered is copied), instead of 16 KiB at a time into a staging buffer,
 * appended to the reader's buffer, then copied out. Any other reply goes
 * through hiredis, whose createString is replaced so that a GET's value is
 * still copied only once, into the op's buffer (never into a reply object
 * the caller would copy again), and a value longer than that buffer is not
 * copied at all. The reader keeps its buffer between replies (maxbuf 0).
 *
 * Both directions use the socket timeouts set by redisSetTimeout
 * (SO_RCVTIMEO/SO_SNDTIMEO = op_timeout_ms), so no single read or write
 * waits longer; after any error the caller closes the link, so a reply that
 * arrives late is never read as the answer to a later command.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <hiredis/sds.h>

#include "base/array.h"
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
	if (redisSetTimeout(ctx, tv_of_ns(s->op_timeout_ns)) != REDIS_OK) {
		redisFree(ctx);
		return -ECONNRESET;
	}
	/* Keep the reader's buffer between replies: by default hiredis frees it
	 * whenever it is empty with more than 16 KiB unused, i.e. after every
	 * large value, and grows it again (page faults, reallocs) for the next:
	 * measured (bench shared) as a large share of a multi-MiB GET's time. */
	ctx->reader->maxbuf = 0;
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

static int put_fmt(tkv__shared_link *l, char kind, size_t n)
{
	char b[32];
	int k = snprintf(b, sizeof(b), "%c%zu\r\n", kind, n);
	return put_hdr(l, b, (size_t)k);
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

/* Sends iov[0..n), all of it, advancing the array past what was sent. */
static int send_all(int fd, struct iovec *iov, size_t n)
{
	while (n) {
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = n < IOV_MAX ? n : IOV_MAX};
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -ECONNRESET;
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

int tkv__shared_link_flush(tkv__shared_link *l)
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
	int rc = send_all(l->ctx->fd, iov, n);
	free(iov);
	l->hdr_len = l->n_segs = 0;
	return rc;
}

/* Appends what the socket has (up to 16 KiB, at least one byte) to the
 * reader's buffer, as redisBufferRead does. */
static int feed(tkv__shared_link *l)
{
	char tmp[16384];
	ssize_t k;
	do
		k = recv(l->ctx->fd, tmp, sizeof(tmp), 0);
	while (k < 0 && errno == EINTR);
	if (k <= 0)
		return k == 0 ? -ECONNRESET
		       : errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -ECONNRESET;
	return redisReaderFeed(l->ctx->reader, tmp, (size_t)k) == REDIS_OK ? 0 : -ENOMEM;
}

/* "$<len>\r\n" at the reader's cursor: 1 and *len, or 0 when it is
 * something else (nil, an error, another type: hiredis's job). */
static int bulk_header(const redisReader *r, const char *nl, size_t *len)
{
	const char *h = r->buf + r->pos;
	if (nl - h < 3 || h[0] != '$' || nl[-1] != '\r')
		return 0;
	size_t v = 0;
	for (const char *d = h + 1; d < nl - 1; d++) {
		if (*d < '0' || *d > '9' || v > (SIZE_MAX - 9) / 10)
			return 0;
		v = v * 10 + (size_t)(*d - '0');
	}
	*len = v;
	return 1;
}

/*
 * Receives the rest of a value (n bytes to p) and of its "\r\n" (crlf,
 * `have` bytes of it already there) with a third iovec for whatever follows
 * on the socket (the next replies), which goes to the reader: as few recvs
 * as hiredis's 16 KiB reads (an exact-length recv per value would double
 * them for values of a few 16 KiB), and none of the value's bytes staged.
 * 0, -ETIMEDOUT (SO_RCVTIMEO), -ECONNRESET or -ENOMEM.
 */
static int recv_rest(tkv__shared_link *l, char *p, size_t n, char *crlf, size_t have)
{
	char tail[16384];
	while (n || have < 2) {
		struct iovec iov[3] = {{p, n}, {crlf + have, 2 - have}, {tail, sizeof(tail)}};
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};
		ssize_t k = recvmsg(l->ctx->fd, &m, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k == 0 ? -ECONNRESET
			       : errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -ECONNRESET;
		size_t got = (size_t)k, a = got < n ? got : n;
		p += a, n -= a, got -= a;
		size_t b = got < 2 - have ? got : 2 - have;
		have += b, got -= b;
		/* the kernel fills the iovecs in order: bytes in tail means the
		 * value and its CRLF are complete */
		if (got && redisReaderFeed(l->ctx->reader, tail, got) != REDIS_OK)
			return -ENOMEM;
	}
	return 0;
}

/*
 * A GET's value straight into the op's buffer: what the reader already
 * holds is copied, the rest is received into place, so a multi-MiB value
 * is not copied from a 16 KiB staging buffer into the reader's (grown)
 * buffer and from there into the op's, as hiredis would (measured with
 * bench shared: those two copies were most of a fetch's CPU time besides
 * the CRC). Only for a plain bulk string that fits, at a reply boundary;
 * anything else (nil, an error reply, a value too long) is left to
 * hiredis. 1: done (*reply is the hit mark); 0: not handled, nothing
 * consumed; < 0: the link failed (the caller closes it).
 */
static int read_bulk_direct(tkv__shared_link *l, tkv__shared_op *op, void **reply)
{
	redisReader *r = l->ctx->reader;
	const char *nl;
	while (!(r->len > r->pos && (nl = memchr(r->buf + r->pos, '\n', r->len - r->pos)))) {
		if (r->err || r->ridx != -1 || r->len - r->pos > 32)
			return 0; /* mid-reply, or not a header line */
		int rc = feed(l);
		if (rc)
			return rc;
	}
	size_t vlen;
	if (r->err || r->ridx != -1 || !bulk_header(r, nl, &vlen) || vlen > op->cap)
		return 0;
	size_t start = (size_t)(nl + 1 - r->buf), avail = r->len - start;
	size_t take = avail < vlen + 2 ? avail : vlen + 2, pay = take < vlen ? take : vlen;
	char crlf[2];
	memcpy(op->buf, r->buf + start, pay);
	memcpy(crlf, r->buf + start + pay, take - pay);
	/* consumed: drop it from the reader's buffer as hiredis does */
	sdsrange(r->buf, (int)(start + take), -1);
	r->pos = 0;
	r->len = sdslen(r->buf);
	int rc = recv_rest(l, (char *)op->buf + pay, vlen - pay, crlf, take - pay);
	if (rc)
		return rc;
	if (crlf[0] != '\r' || crlf[1] != '\n')
		return -EPROTO;
	op->len = vlen;
	*reply = &tkv__shared_hit_mark;
	return 1;
}

int tkv__shared_link_read(tkv__shared_link *l, tkv__shared_op *sink, void **reply)
{
	*reply = NULL;
	if (sink) {
		int rc = read_bulk_direct(l, sink, reply);
		if (rc)
			return rc > 0 ? 0 : rc;
	}
	l->sink = sink;
	int rc = redisGetReply(l->ctx, reply);
	int e = errno;
	l->sink = NULL;
	if (rc == REDIS_OK && *reply)
		return 0;
	switch (l->ctx->err) {
	case REDIS_ERR_IO:
		return e == EAGAIN || e == EWOULDBLOCK ? -ETIMEDOUT : -ECONNRESET;
	case REDIS_ERR_EOF:
		return -ECONNRESET;
	case REDIS_ERR_OOM:
		return -ENOMEM;
	default:
		return -EPROTO;
	}
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
	if (tkv__shared_link_add(&l, argc, argv, lens, -1) != 0 || tkv__shared_link_flush(&l) != 0 ||
	    tkv__shared_link_read(&l, NULL, &r) != 0) {
		tkv__shared_reply_free(r);
		r = NULL;
	}
out:
	tkv__shared_link_free(&l);
	return r;
}
