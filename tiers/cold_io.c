/*
 * cold_io.c - io_uring and pread/pwrite backends behind one queue, plus the
 * fault seam (see cold_io.h for the contract).
 *
 * Completions leave the queue in due_ns order through q->ready; a request
 * with no injected delay is due at once, so the list is normally one element
 * deep and the ordering costs nothing. The pwrite backend performs each
 * request inside submit and parks it on the same list, so callers cannot tell
 * the backends apart except by throughput.
 */
#include "tiers/cold_io.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tiers/cold_record.h"

uint64_t tkv__cold_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t due_ns)
{
	uint64_t now = tkv__cold_now_ns();
	if (due_ns > now) {
		uint64_t d = due_ns - now;
		struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
}

static void ask(const tkv__cold_io *hooks, tkv__cold_op op, uint32_t seg, uint64_t off,
		size_t len, tkv__cold_fault *f)
{
	memset(f, 0, sizeof(*f));
	if (hooks && hooks->inject)
		hooks->inject(hooks->ctx, op, seg, off, len, f);
}

/* The length actually issued under a short-I/O fault. */
static size_t issued_len(const tkv__cold_fault *f, size_t len)
{
	if (f->short_len == 0 || f->short_len >= len)
		return len;
	return f->short_len / TKV__COLD_ALIGN * TKV__COLD_ALIGN;
}

static void flip(void *buf, int64_t res, uint64_t flip_bit)
{
	if (flip_bit && res > 0) {
		uint64_t bit = (flip_bit - 1) % ((uint64_t)res * 8);
		((unsigned char *)buf)[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
}

static ssize_t raw_rw(tkv__cold_op op, int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n;
	if (len == 0)
		return 0;
	do
		n = op == TKV__COLD_OP_READ ? pread(fd, buf, len, (off_t)off)
					     : pwrite(fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* A vectored write of what raw_rw would write from one buffer. */
static ssize_t raw_writev(int fd, const struct iovec *iov, int n_iov, uint64_t off)
{
	ssize_t n;
	if (n_iov == 0)
		return 0;
	do
		n = pwritev(fd, iov, n_iov, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* Keeps the first len bytes of iov (len a multiple of the pieces' 4 KiB
 * alignment, so the cut piece stays aligned); the pieces left. */
static int trim_iov(struct iovec *iov, int n_iov, size_t len)
{
	int i = 0;
	for (; i < n_iov && len; i++) {
		if (iov[i].iov_len >= len) {
			iov[i].iov_len = len;
			return i + 1;
		}
		len -= iov[i].iov_len;
	}
	return i;
}

static int raw_sync(int fd)
{
	int rc;
	do
		rc = fdatasync(fd);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -errno : 0;
}

ssize_t tkv__cold_io_rw(const tkv__cold_io *hooks, tkv__cold_op op, int fd, uint32_t seg,
			void *buf, size_t len, uint64_t off)
{
	tkv__cold_fault f;
	ssize_t n;
	ask(hooks, op, seg, off, len, &f);
	if (f.delay_us)
		sleep_until(tkv__cold_now_ns() + f.delay_us * 1000ull);
	if (f.err > 0)
		return -f.err;
	n = raw_rw(op, fd, buf, issued_len(&f, len), off);
	if (op == TKV__COLD_OP_READ)
		flip(buf, n, f.flip_bit);
	return n;
}

int tkv__cold_io_sync(const tkv__cold_io *hooks, int fd, uint32_t seg)
{
	tkv__cold_fault f;
	ask(hooks, TKV__COLD_OP_SYNC, seg, 0, 0, &f);
	if (f.delay_us)
		sleep_until(tkv__cold_now_ns() + f.delay_us * 1000ull);
	if (f.err > 0)
		return -f.err;
	return raw_sync(fd);
}

int tkv__cold_io_check(const tkv__cold_io *hooks, tkv__cold_op op, uint32_t seg)
{
	tkv__cold_fault f;
	ask(hooks, op, seg, 0, 0, &f);
	return f.err > 0 ? -f.err : 0;
}

int tkv__cold_ioq_init(tkv__cold_ioq *q, unsigned depth, bool force_pwrite,
		       const tkv__cold_io *hooks)
{
	int rc;
	memset(q, 0, sizeof(*q));
	q->depth = depth;
	q->hooks = hooks;
	if (force_pwrite) {
		snprintf(q->note, sizeof(q->note), "pwrite (forced by config)");
		return 0;
	}
	rc = tkv__cold_io_check(hooks, TKV__COLD_OP_RING_INIT, UINT32_MAX);
	if (rc == 0)
		rc = io_uring_queue_init(depth, &q->ring, 0);
	if (rc < 0) {
		snprintf(q->note, sizeof(q->note), "pwrite (io_uring_queue_init failed: %s)",
			 strerror(-rc));
		return 0;
	}
	q->uring = true;
	snprintf(q->note, sizeof(q->note), "io_uring");
	return 0;
}

void tkv__cold_ioq_exit(tkv__cold_ioq *q)
{
	if (q->uring)
		io_uring_queue_exit(&q->ring);
	q->uring = false;
}

/* Inserts r into the ready list, keeping it sorted by due_ns (stable). */
static void park(tkv__cold_ioq *q, tkv__cold_ioreq *r)
{
	tkv__cold_ioreq **p = &q->ready;
	while (*p && (*p)->due_ns <= r->due_ns)
		p = &(*p)->next;
	r->next = *p;
	*p = r;
}

static void prep_sqe(tkv__cold_ioq *q, tkv__cold_ioreq *r, size_t len)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	if (!sqe) { /* SQ full of unflushed entries: flush and retry once */
		tkv__cold_ioq_flush(q);
		sqe = io_uring_get_sqe(&q->ring);
	}
	if (!sqe) { /* cannot happen while callers respect depth; fail, don't hang */
		r->res = -EAGAIN;
		park(q, r);
		return;
	}
	if (r->op == TKV__COLD_OP_SYNC)
		io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
	else if (r->n_iov)
		io_uring_prep_writev(sqe, r->fd, r->iov, (unsigned)r->n_iov, r->off);
	else if (r->op == TKV__COLD_OP_READ)
		io_uring_prep_read(sqe, r->fd, r->buf, (unsigned)len, r->off);
	else
		io_uring_prep_write(sqe, r->fd, r->buf, (unsigned)len, r->off);
	io_uring_sqe_set_data(sqe, r);
	q->in_ring++;
	q->unflushed++;
}

void tkv__cold_ioq_submit(tkv__cold_ioq *q, tkv__cold_ioreq *r)
{
	tkv__cold_fault f;
	size_t len;
	ask(q->hooks, r->op, r->seg, r->off, r->len, &f);
	r->due_ns = f.delay_us ? tkv__cold_now_ns() + f.delay_us * 1000ull : 0;
	r->flip_bit = f.flip_bit;
	r->next = NULL;
	len = issued_len(&f, r->len);
	if (r->n_iov && len < r->len)
		r->n_iov = trim_iov(r->iov, r->n_iov, len);
	if (f.err > 0 || (len == 0 && r->op != TKV__COLD_OP_SYNC)) {
		r->res = f.err > 0 ? -f.err : 0; /* failed or fully short: never issued */
		park(q, r);
		return;
	}
	if (q->uring) {
		prep_sqe(q, r, len);
		return;
	}
	if (r->op == TKV__COLD_OP_SYNC)
		r->res = raw_sync(r->fd);
	else if (r->n_iov)
		r->res = raw_writev(r->fd, r->iov, r->n_iov, r->off);
	else
		r->res = raw_rw(r->op, r->fd, r->buf, len, r->off);
	if (r->op == TKV__COLD_OP_READ)
		flip(r->buf, r->res, r->flip_bit);
	park(q, r);
}

void tkv__cold_ioq_flush(tkv__cold_ioq *q)
{
	if (q->uring && q->unflushed) {
		int rc = io_uring_submit(&q->ring);
		/* Entries the kernel did not take stay in the SQ and go with the
		 * next submit; io_uring_submit only fails for ring-level errors
		 * (-EBUSY when the CQ would overflow), which the next call retries. */
		if (rc > 0)
			q->unflushed -= (unsigned)rc > q->unflushed ? q->unflushed : (unsigned)rc;
	}
}

/* Moves every available CQE to the ready list. */
static void drain_cq(tkv__cold_ioq *q)
{
	struct io_uring_cqe *cqe;
	while (q->in_ring && io_uring_peek_cqe(&q->ring, &cqe) == 0 && cqe) {
		tkv__cold_ioreq *r = io_uring_cqe_get_data(cqe);
		r->res = cqe->res;
		io_uring_cqe_seen(&q->ring, cqe);
		q->in_ring--;
		if (r->op == TKV__COLD_OP_READ)
			flip(r->buf, r->res, r->flip_bit);
		park(q, r);
	}
}

/* Blocks until a CQE arrives or `due_ns` (0: no limit) passes. */
static void wait_cq(tkv__cold_ioq *q, uint64_t due_ns)
{
	struct io_uring_cqe *cqe;
	if (!q->uring || !q->in_ring) {
		if (due_ns)
			sleep_until(due_ns);
		return;
	}
	if (!due_ns) {
		(void)io_uring_wait_cqe(&q->ring, &cqe); /* consumed by drain_cq */
		return;
	}
	uint64_t now = tkv__cold_now_ns();
	if (due_ns > now) {
		uint64_t d = due_ns - now;
		struct __kernel_timespec ts = {(long long)(d / 1000000000ull),
					       (long long)(d % 1000000000ull)};
		(void)io_uring_wait_cqe_timeout(&q->ring, &cqe, &ts);
	}
}

tkv__cold_ioreq *tkv__cold_ioq_reap(tkv__cold_ioq *q, bool wait)
{
	for (;;) {
		tkv__cold_ioreq *r;
		tkv__cold_ioq_flush(q);
		if (q->uring)
			drain_cq(q);
		r = q->ready;
		if (r && r->due_ns <= tkv__cold_now_ns()) {
			q->ready = r->next;
			r->next = NULL;
			return r;
		}
		if (!wait || (!r && !q->in_ring))
			return NULL;
		wait_cq(q, r ? r->due_ns : 0);
	}
}

bool tkv__cold_ioq_busy(const tkv__cold_ioq *q)
{
	return q->in_ring || q->ready;
}
