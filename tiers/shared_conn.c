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
 * reply object). The recvmsg that ends a value also offers the buffers of
 * the GETs behind it (up to TKV__SHARED_AHEAD values and
 * TKV__SHARED_AHEAD_BYTES), each after a slot for the exact bytes that
 * must separate them ("\r\n$<cap>\r\n"): when the servers are ahead,
 * one call receives several values; when a separator is anything else (a
 * nil, an error, another length, or cut short), that call's bytes from
 * there on go to the reader, which parses them as ever. Each value is
 * still handed to its op (and checked by on_hit) in reply order. At 20
 * KiB values this cut the kernel's per-call work in the tier's GET from
 * about as much as raw hiredis's (16 KiB reads) to half of it (perf, bench
 * shared); larger values are not read ahead (TKV__SHARED_AHEAD_BYTES).
 * Other replies go through the reader, whose createString we replace so a
 * small GET value is copied once, from the reader's buffer
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
	/* hiredis would resolve a name without any deadline */
	char addr[TKV__SHARED_HOST_MAX];
	uint64_t t0 = tkv__now_ns();
	int rc = tkv__shared_resolve(n->host, s->connect_timeout_ns, addr, sizeof(addr));
	if (rc)
		return rc;
	uint64_t spent = tkv__now_ns() - t0;
	uint64_t left = spent < s->connect_timeout_ns ? s->connect_timeout_ns - spent : 1000000u;
	redisContext *ctx = redisConnectWithTimeout(addr, n->port, tv_of_ns(left));
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
	l->n_ahead = 0;
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
	l->n_ahead = 0; /* what was received ahead is lost with the link */
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

/* "<kind><n>\r\n" at the end of b[24]: its length (at most 23). By hand:
 * snprintf here (three calls per GET) and in the key names was ~6% of a
 * 20 KiB get's samples. */
static size_t fmt_num(char b[24], char kind, size_t n)
{
	size_t k = 24;
	b[--k] = '\n';
	b[--k] = '\r';
	do
		b[--k] = (char)('0' + n % 10);
	while ((n /= 10) != 0);
	b[--k] = kind;
	return 24 - k;
}

static int put_fmt(tkv__shared_link *l, char kind, size_t n)
{
	char b[24];
	size_t k = fmt_num(b, kind, n);
	return put_hdr(l, b + 24 - k, k);
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

/* The value of the reply at the reader's position, if it is a bulk string
 * that fits op: its header consumed and the part of it the reader holds
 * copied to op->buf. 1 and *got, 0 not such a reply (hiredis parses it),
 * or negative errno. */
static int direct_start(tkv__shared_link *l, tkv__shared_op *op, size_t *got, uint64_t deadline_ns)
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
	size_t inbuf = r->len - r->pos - hdr;
	*got = inbuf < len ? inbuf : len;
	memcpy(op->buf, r->buf + r->pos + hdr, *got);
	r->pos += hdr + *got;
	op->len = len;
	return 1;
}

/* One recvmsg's plan: the rest of the value being read, then for each GET
 * that follows, the bytes expected between the two values (the CRLF
 * ending the previous one and "$<cap>\r\n") and that GET's whole buffer,
 * then a short tail for the reader (the CRLF and the next reply's
 * header when no GET follows). */
struct plan {
	struct iovec iov[2 + 2 * TKV__SHARED_AHEAD];
	size_t n_iov, n_next;
	char want[TKV__SHARED_AHEAD][26], got[TKV__SHARED_AHEAD][26];
	size_t want_len[TKV__SHARED_AHEAD];
};

static void plan_make(struct plan *p, tkv__shared_link *l, tkv__shared_op *op, size_t done,
		      tkv__shared_op *const *next, size_t n_next)
{
	p->iov[0] = (struct iovec){(char *)op->buf + done, op->len - done};
	p->n_iov = 1, p->n_next = 0;
	size_t bytes = 0;
	for (size_t j = 0; j < n_next && next[j]->cap >= TKV__SHARED_DIRECT_MIN &&
			   (bytes += next[j]->cap) <= TKV__SHARED_AHEAD_BYTES; j++) {
		char num[24];
		size_t k = fmt_num(num, '$', next[j]->cap);
		memcpy(p->want[j], "\r\n", 2);
		memcpy(p->want[j] + 2, num + 24 - k, k);
		p->want_len[j] = 2 + k;
		p->iov[p->n_iov++] = (struct iovec){p->got[j], 2 + k};
		p->iov[p->n_iov++] = (struct iovec){next[j]->buf, next[j]->cap};
		p->n_next++;
	}
	p->iov[p->n_iov++] = (struct iovec){l->rbuf, 64};
}

/* Feeds the reader the k received bytes of iov[from..] (in order). */
static int spill(tkv__shared_link *l, const struct iovec *iov, size_t from, size_t n_iov, size_t k)
{
	for (size_t i = from; i < n_iov && k; i++) {
		size_t n = iov[i].iov_len < k ? iov[i].iov_len : k;
		if (redisReaderFeed(l->ctx->reader, iov[i].iov_base, n) != REDIS_OK)
			return -ENOMEM;
		k -= n;
	}
	return 0;
}

/* Accounts for k bytes a recvmsg put after the value being read (at
 * iov[1..]): GETs whose expected header came whole become ahead entries;
 * from the first that did not (another reply: a nil, an error, another
 * length; or a header cut short), every byte goes to the reader.
 * *crlf: the value being read had its CRLF. 0 or negative errno. */
static int plan_settle(tkv__shared_link *l, struct plan *p, size_t k, tkv__shared_op *const *next,
		       bool *crlf)
{
	bool *prev_crlf = crlf;
	for (size_t j = 0; j < p->n_next && k; j++) {
		size_t s = k < p->want_len[j] ? k : p->want_len[j], ok = 0;
		while (ok < s && p->got[j][ok] == p->want[j][ok])
			ok++;
		if (ok < s && ok < 2)
			return -EPROTO; /* the previous value is not followed by CRLF */
		size_t from = s >= 2 ? 2 : 0;
		*prev_crlf = s >= 2;
		if (ok < p->want_len[j]) {
			/* not the expected header: the reader parses from here */
			int rc = redisReaderFeed(l->ctx->reader, p->got[j] + from, s - from) == REDIS_OK
					 ? spill(l, p->iov, 2 + 2 * j, p->n_iov, k - s)
					 : -ENOMEM;
			return rc;
		}
		k -= s;
		size_t in = k < next[j]->cap ? k : next[j]->cap;
		next[j]->len = next[j]->cap;
		l->ahead[l->n_ahead++] = (struct tkv__shared_ahead){next[j], in, false};
		prev_crlf = &l->ahead[l->n_ahead - 1].crlf;
		k -= in;
	}
	/* whatever is left reached the tail: every value before it is whole */
	if (k && redisReaderFeed(l->ctx->reader, l->rbuf, k) != REDIS_OK)
		return -ENOMEM;
	return 0;
}

/* Receives the rest of op's value (*got of op->len bytes are in place) and,
 * in the same recvmsg, whatever follows that is already there: the next
 * GETs' values into their buffers (ahead entries) while each comes with the
 * expected header, else the bytes into the reader. One system call for
 * several values when the servers are ahead of this thread; one per value
 * at least (two per value, value and next header, made the tier's GET cost
 * 1.3-1.5x raw hiredis's CPU at 20 KiB). */
static int direct_rest(tkv__shared_link *l, tkv__shared_op *op, size_t got, tkv__shared_op *const *next,
		       size_t n_next, bool *crlf, uint64_t deadline_ns)
{
	if (got < op->len && !l->rbuf && !(l->rbuf = malloc(TKV__SHARED_RBUF)))
		return -ENOMEM;
	struct plan p;
	int rc = 0;
	while (got < op->len && rc == 0) {
		plan_make(&p, l, op, got, next, l->n_ahead ? 0 : n_next);
		struct msghdr m = {.msg_iov = p.iov, .msg_iovlen = p.n_iov};
		ssize_t n = recvmsg(l->ctx->fd, &m, 0);
		if (n > 0) {
			size_t k = (size_t)n, in_value = k < op->len - got ? k : op->len - got;
			got += in_value;
			/* the kernel fills the iovecs in order: bytes past the
			 * value mean the value is complete */
			if (k > in_value)
				rc = plan_settle(l, &p, k - in_value, next, crlf);
		} else if (n == 0) {
			rc = -ECONNRESET;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			rc = wait_fd(l->ctx->fd, POLLIN, deadline_ns);
		} else if (errno != EINTR) {
			rc = -ECONNRESET;
		}
	}
	return rc;
}

/* Reads a GET's bulk string straight into op->buf, bypassing the reader's
 * buffer (or takes it from the ahead entries, where a previous read put
 * it): 1 done (*reply is the hit mark), 0 not a bulk string that fits
 * (hiredis parses it), or negative errno (the link is then unusable). */
static int read_direct(tkv__shared_link *l, tkv__shared_op *op, tkv__shared_op *const *next,
		       size_t n_next, void **reply, uint64_t deadline_ns)
{
	redisReader *r = l->ctx->reader;
	size_t got = 0;
	bool crlf = false;
	int rc;
	if (l->n_ahead) {
		if (l->ahead[0].op != op)
			return -EPROTO; /* not read in the order promised */
		got = l->ahead[0].got, crlf = l->ahead[0].crlf;
		/* (if more entries follow, this value is whole and no recvmsg
		 * is made for it) */
		memmove(l->ahead, l->ahead + 1, --l->n_ahead * sizeof(l->ahead[0]));
	} else if ((rc = direct_start(l, op, &got, deadline_ns)) <= 0) {
		return rc;
	}
	if ((rc = direct_rest(l, op, got, next, n_next, &crlf, deadline_ns)) != 0)
		return rc;
	/* The CRLF after the value, with the next reply's header if it came. */
	while (!crlf && r->len - r->pos < 2)
		if ((rc = feed_or_wait(l, 64, deadline_ns)) != 0)
			return rc;
	if (!crlf && (r->buf[r->pos] != '\r' || r->buf[r->pos + 1] != '\n'))
		return -EPROTO;
	r->pos += crlf ? 0 : 2;
	/* hiredis drops consumed bytes only when it parses a reply; replies
	 * read here would grow its buffer by every header. */
	if (r->pos >= 1024) {
		sdsrange(r->buf, (int)r->pos, -1);
		r->pos = 0;
		r->len = sdslen(r->buf);
	}
	*reply = &tkv__shared_hit_mark;
	return 1;
}

int tkv__shared_link_read(tkv__shared_link *l, tkv__shared_op *sink, tkv__shared_op *const *next,
			  size_t n_next, void **reply, uint64_t deadline_ns)
{
	redisContext *ctx = l->ctx;
	int rc = 0;
	*reply = NULL;
	if (sink && sink->cap >= TKV__SHARED_DIRECT_MIN) {
		rc = read_direct(l, sink, next, n_next, reply, deadline_ns);
		if (rc != 0)
			return rc < 0 ? rc : 0;
	} else if (l->n_ahead) {
		return -EPROTO; /* an ahead value's read must come first */
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
	    tkv__shared_link_flush(&l, deadline) != 0 || tkv__shared_link_read(&l, NULL, NULL, 0, &r, deadline) != 0) {
		tkv__shared_reply_free(r);
		r = NULL;
	}
out:
	tkv__shared_link_free(&l);
	return r;
}
