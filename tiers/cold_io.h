/*
 * cold_io.h - the cold tier's I/O layer: an asynchronous queue with two
 * backends (io_uring, or synchronous pread/pwrite emulating completions), the
 * synchronous helpers, and the fault-injection seam the tests use.
 *
 * Why one seam for both backends: faults are injected where a request is
 * issued (before io_uring_submit or pwrite), so a test gets the same fault,
 * deterministically, whichever backend runs; and the layers above see a
 * failed, short, slow or bit-flipped I/O exactly as a real one would look
 * (an error or a short count in the completion, a late completion, bad
 * bytes in the buffer). Nothing above this file knows about the seam.
 *
 * Thread safety: a tkv__cold_ioq is single-threaded (one submitter/reaper,
 * which is how io_uring rings are meant to be used). The synchronous helpers
 * are thread-safe. The inject hook is called from whichever thread issues
 * the I/O and must be thread-safe itself.
 */
#ifndef TKV_TIERS_COLD_IO_H
#define TKV_TIERS_COLD_IO_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* What an I/O is, as the fault hook sees it. */
typedef enum tkv__cold_op {
	TKV__COLD_OP_WRITE = 0,   /* a record write (len == record size) */
	TKV__COLD_OP_READ,        /* a data read: one layer, a record, or a header scan */
	TKV__COLD_OP_SYNC,        /* fdatasync of one segment */
	TKV__COLD_OP_INVALIDATE,  /* zeroing a freed slot's header (see cold.h, "remove") */
	TKV__COLD_OP_OPEN_DIRECT, /* opening a segment with O_DIRECT; err=EINVAL mimics tmpfs-like fs */
	TKV__COLD_OP_RING_INIT,   /* io_uring_queue_init; any err forces the pwrite backend */
	TKV__COLD_OP_FALLOCATE,   /* preallocating a segment file */
} tkv__cold_op;

/* A fault to inject; the hook receives it zeroed (= no fault). */
typedef struct tkv__cold_fault {
	int err;          /* > 0: the operation fails with -err and is not issued */
	size_t short_len; /* READ/WRITE/INVALIDATE, if > 0 and < len: only the first
			   * round_down(short_len, 4 KiB) bytes are issued (nothing if
			   * that is 0), so the completion reports a short count */
	uint32_t delay_us; /* the completion becomes visible this much later (a slow
			    * device); synchronous calls sleep that long */
	uint64_t flip_bit; /* READ: 1 + index of a bit to flip in the bytes read
			    * (modulo their count); 0: none */
} tkv__cold_fault;

/* The seam. Pass NULL (tkv__cold_config.io) for real I/O with no faults. */
typedef struct tkv__cold_io {
	/* Called before each operation; `seg` is the segment number (UINT32_MAX
	 * for ring init), `off`/`len` the byte range (0 for non-data ops). */
	void (*inject)(void *ctx, tkv__cold_op op, uint32_t seg, uint64_t off, size_t len,
		       tkv__cold_fault *f);
	void *ctx;
} tkv__cold_io;

/* One queued I/O. The owner embeds it and finds itself back by container. */
typedef struct tkv__cold_ioreq {
	tkv__cold_op op; /* READ, WRITE, INVALIDATE or SYNC */
	int fd;
	uint32_t seg;
	void *buf;
	/* WRITE only, n_iov > 0: the bytes are these pieces, in order (len
	 * is their total; buf is ignored). Each piece 4 KiB aligned in address
	 * and length, as O_DIRECT wants. The array is the requester's and must
	 * live until the completion; a short-write fault trims it in place. */
	struct iovec *iov;
	int n_iov;
	uint64_t off;
	size_t len;
	int64_t res;       /* on completion: bytes transferred, or -errno */
	uint64_t due_ns;   /* completion not visible before this (slow-I/O fault) */
	uint64_t flip_bit; /* from the fault, applied on completion */
	struct tkv__cold_ioreq *next;
} tkv__cold_ioreq;

typedef struct tkv__cold_ioq {
	struct io_uring ring;
	bool uring;         /* false: pwrite/pread backend */
	unsigned depth;     /* ring entries (SQ) */
	unsigned in_ring;   /* submitted to the ring, CQE not seen yet */
	unsigned unflushed; /* prepared SQEs not yet submitted */
	const tkv__cold_io *hooks;
	tkv__cold_ioreq *ready; /* completed, sorted by due_ns */
	char note[112];     /* "io_uring" or why not */
} tkv__cold_ioq;

/* Monotonic clock in nanoseconds. */
uint64_t tkv__cold_now_ns(void);

/* Sets up a queue of `depth` entries. Uses io_uring unless force_pwrite or
 * io_uring_queue_init fails (the reason goes to q->note); never fails for
 * that reason. 0, or -ENOMEM. */
int tkv__cold_ioq_init(tkv__cold_ioq *q, unsigned depth, bool force_pwrite,
		       const tkv__cold_io *hooks);
/* Frees the ring; every request must have been reaped. */
void tkv__cold_ioq_exit(tkv__cold_ioq *q);

/* Issues r (op, fd, seg, buf, off, len set). The caller keeps at most
 * `depth` requests outstanding. With io_uring the SQE is prepared and sent at
 * the next flush (or by the next reap); the pwrite backend performs it now. */
void tkv__cold_ioq_submit(tkv__cold_ioq *q, tkv__cold_ioreq *r);
/* Sends prepared SQEs to the kernel. */
void tkv__cold_ioq_flush(tkv__cold_ioq *q);
/* One completed request, or NULL if none is ready; with wait, blocks until
 * one is (NULL at once if nothing is outstanding). */
tkv__cold_ioreq *tkv__cold_ioq_reap(tkv__cold_ioq *q, bool wait);
/* true if requests are outstanding (in the ring or completed, not reaped). */
bool tkv__cold_ioq_busy(const tkv__cold_ioq *q);

/* Synchronous pread/pwrite of [off, off+len) through the seam (op READ,
 * WRITE or INVALIDATE): bytes transferred (short counts possible), or
 * -errno. EINTR is retried. Thread-safe. */
ssize_t tkv__cold_io_rw(const tkv__cold_io *hooks, tkv__cold_op op, int fd, uint32_t seg,
			void *buf, size_t len, uint64_t off);
/* fdatasync through the seam: 0 or -errno. */
int tkv__cold_io_sync(const tkv__cold_io *hooks, int fd, uint32_t seg);
/* Asks the hook about a non-data operation: 0, or the -errno to fail with. */
int tkv__cold_io_check(const tkv__cold_io *hooks, tkv__cold_op op, uint32_t seg);

#endif
