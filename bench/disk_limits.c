/*
 * disk_limits.c - raw O_DIRECT sequential write/read passes (disk_limits.h).
 */
#define _GNU_SOURCE
#include "bench/disk_limits.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <liburing.h>

#include "bench/bench.h"
#include "bench/internals.h"

#define TAG_SYNC UINT64_MAX

static int raw_open(const char *path, int flags, bool *direct)
{
	int fd = open(path, flags | O_DIRECT | O_CLOEXEC, 0644);
	*direct = fd >= 0;
	if (fd < 0 && errno == EINVAL)
		fd = open(path, flags | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

/* n I/O buffers of len bytes carved from one fresh anonymous mapping (so a
 * buffer never inherits another pass's pages), faulted in with source data
 * before any timing. */
typedef struct io_bufs {
	void *map;
	size_t map_bytes;
	void **b;
} io_bufs;

static int bufs_alloc(io_bufs *io, unsigned n, size_t len, const bench_disk_job *j)
{
	const size_t align = (size_t)2 << 20;
	size_t size = ((size_t)n * len + align - 1) / align * align;
	io->map_bytes = size + align;
	io->map = mmap(NULL, io->map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);
	io->b = calloc(n, sizeof(*io->b));
	if (io->map == MAP_FAILED || !io->b) {
		if (io->map != MAP_FAILED)
			munmap(io->map, io->map_bytes);
		free(io->b);
		io->map = NULL;
		io->b = NULL;
		return -ENOMEM;
	}
	unsigned char *base =
		(unsigned char *)(((uintptr_t)io->map + align - 1) & ~(uintptr_t)(align - 1));
	(void)madvise(base, size, j->huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	for (size_t off = 0; off < size;) {
		size_t from = off % j->src_bytes;
		size_t m = size - off < j->src_bytes - from ? size - off : j->src_bytes - from;
		memcpy(base + off, j->src + from, m);
		off += m;
	}
	for (unsigned i = 0; i < n; i++)
		io->b[i] = base + (size_t)i * len;
	return 0;
}

static void bufs_free(io_bufs *io)
{
	if (io->map)
		munmap(io->map, io->map_bytes);
	free(io->b);
	io->map = NULL;
	io->b = NULL;
}

/* Where I/O i goes: sequential pieces of len bytes from piece `first`; or,
 * with per (slices per record), as a promotion round reads what the
 * evictor wrote: the file holds n_groups groups (sequences) of `group`
 * records each, interleaved as the cold tier fills its slots in store order
 * (record r of group g at g + r * n_groups); from group `first` on,
 * wrapping around after the last, one group at a time, slice 0 of each of
 * its records, then slice 1, ...; the slices laid after each record's skip
 * bytes. */
typedef struct io_order {
	uint64_t first, n_groups;
	uint32_t per, group;
	size_t rec_bytes, skip;
} io_order;

static uint64_t io_off(const io_order *o, uint64_t i, size_t len)
{
	if (!o->per)
		return (o->first + i) * len;
	const uint64_t in_group = (uint64_t)o->group * o->per, k = i % in_group;
	const uint64_t g = (o->first + i / in_group) % o->n_groups; /* wraps around */
	const uint64_t rec = (k % o->group) * o->n_groups + g;
	return rec * o->rec_bytes + o->skip + (k / o->group) * len;
}

/* Without io_uring: one synchronous I/O at a time, I/O i into buffer
 * i % nbuf. */
static int run_sync(int fd, bool write, const io_order *ord, uint64_t n, size_t len, unsigned nbuf,
		    unsigned sync_every, void **bufs, tkv__crc_fn crc, bench_disk_io *out)
{
	uint32_t sum = 0;
	int rc = 0;
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < n && !rc; i++) {
		off_t off = (off_t)io_off(ord, i, len);
		ssize_t r = write ? pwrite(fd, bufs[i % nbuf], len, off)
				  : pread(fd, bufs[i % nbuf], len, off);
		if (r != (ssize_t)len)
			rc = r < 0 ? -errno : -EIO;
		else if (crc)
			sum ^= crc(0, bufs[i % nbuf], len);
		else if (write && sync_every && (i + 1) % sync_every == 0 && fdatasync(fd))
			rc = -errno;
	}
	if (!rc && write && sync_every && fdatasync(fd))
		rc = -errno;
	out->ns = bench_now_ns() - t0;
	out->bytes = n * len;
	out->crc = sum;
	return rc;
}

/* n I/Os of len bytes at the offsets ord gives, with up to qd in flight,
 * through nbuf >= qd buffers taken in turn (a FIFO: a buffer is reused only
 * after every other one); writes fdatasync after every sync_every
 * completions (0: never) and at the end. keep: a ring of at least qd + 1
 * entries kept by the caller across runs, as the cold tier keeps its own,
 * or NULL: a ring for this run. */
static int raw_run(int fd, bool write, const io_order *ord, uint64_t n, size_t len, unsigned qd,
		   unsigned nbuf, unsigned sync_every, void **bufs, tkv__crc_fn crc,
		   struct io_uring *keep, bench_disk_io *out)
{
	struct io_uring own, *rp = keep ? keep : &own;
	int rc = 0;
	uint32_t sum = 0;
	out->uring = keep || io_uring_queue_init(qd + 1, &own, 0) == 0;
	if (!out->uring)
		return run_sync(fd, write, ord, n, len, nbuf, sync_every, bufs, crc, out);
	uint64_t t0 = bench_now_ns();
	/* free buffers, oldest first: taken at head, returned after the
	 * nbuf - in_flight free ones */
	unsigned *free_buf = malloc(nbuf * sizeof(*free_buf)), head = 0, in_flight = 0;
	if (!free_buf) {
		if (!keep)
			io_uring_queue_exit(&own);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < nbuf; i++)
		free_buf[i] = i;
	uint64_t next = 0, done = 0, since_sync = 0;
	bool syncing = false;
	while (!rc && (done < n || syncing || (sync_every && since_sync))) {
		struct io_uring_sqe *sqe;
		while (in_flight < qd && next < n && (sqe = io_uring_get_sqe(rp))) {
			unsigned slot = free_buf[head];
			head = (head + 1) % nbuf;
			in_flight++;
			if (write)
				io_uring_prep_write(sqe, fd, bufs[slot], (unsigned)len,
						    io_off(ord, next, len));
			else
				io_uring_prep_read(sqe, fd, bufs[slot], (unsigned)len,
						   io_off(ord, next, len));
			io_uring_sqe_set_data64(sqe, slot);
			next++;
		}
		if (write && sync_every && !syncing &&
		    (since_sync >= sync_every || (done == n && since_sync)) &&
		    (sqe = io_uring_get_sqe(rp))) {
			io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
			io_uring_sqe_set_data64(sqe, TAG_SYNC);
			syncing = true;
			since_sync = 0;
		}
		int r = io_uring_submit_and_wait(rp, 1);
		if (r < 0 && r != -EINTR) {
			rc = r;
			break;
		}
		struct io_uring_cqe *cqe;
		while (io_uring_peek_cqe(rp, &cqe) == 0) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;
			io_uring_cqe_seen(rp, cqe);
			if (tag == TAG_SYNC) {
				syncing = false;
				if (res < 0)
					rc = res;
				continue;
			}
			if (res != (int)len)
				rc = res < 0 ? res : -EIO;
			else if (crc) /* verified before the buffer is reused */
				sum ^= crc(0, bufs[tag], len);
			free_buf[(head + nbuf - in_flight) % nbuf] = (unsigned)tag;
			in_flight--;
			done++;
			since_sync++;
			/* With a checksum per block, refill after each one, so
			 * the device is not left idle while a burst is verified:
			 * the best one thread that reads and verifies can do. */
			if (crc)
				break;
		}
	}
	out->ns = bench_now_ns() - t0;
	out->bytes = done * len;
	out->crc = sum;
	/* on error, let what is in flight finish before the buffers go */
	while (rc && in_flight) {
		struct io_uring_cqe *cqe;
		if (io_uring_wait_cqe(rp, &cqe))
			break;
		if (io_uring_cqe_get_data64(cqe) != TAG_SYNC)
			in_flight--;
		io_uring_cqe_seen(rp, cqe);
	}
	free(free_buf);
	if (!keep)
		io_uring_queue_exit(&own);
	return rc;
}

static int write_pass(const bench_disk_job *j, bench_disk_io *w)
{
	io_bufs bufs = {0};
	int fd = raw_open(j->path, O_RDWR | O_CREAT | O_TRUNC, &w->direct), rc = 0;
	if (fd < 0) {
		fprintf(stderr, "tierkv-bench: cannot create %s: %s\n", j->path, strerror(-fd));
		return fd;
	}
	if (fallocate(fd, 0, 0, (off_t)(j->n_writes * j->write_bytes)) && errno != EOPNOTSUPP) {
		rc = -errno;
		fprintf(stderr, "tierkv-bench: fallocate %s: %s\n", j->path, strerror(errno));
	}
	if (!rc)
		fdatasync(fd); /* the preallocation is not part of the write */
	if (!rc)
		rc = bufs_alloc(&bufs, j->write_depth, j->write_bytes, j);
	if (!rc)
		rc = raw_run(fd, true, &(io_order){0}, j->n_writes, j->write_bytes, j->write_depth,
			     j->write_depth, j->sync_every, bufs.b, NULL, NULL, w);
	bufs_free(&bufs);
	close(fd);
	if (rc)
		fprintf(stderr, "tierkv-bench: raw write: %s\n", strerror(-rc));
	return rc;
}

/* The distinct buffers a job's reads go through. */
static unsigned read_buffers_of(const bench_disk_job *j)
{
	return j->read_buffers > j->read_depth ? j->read_buffers : j->read_depth;
}

static int read_pass(const bench_disk_job *j, tkv__crc_fn crc, bench_disk_io *r)
{
	io_bufs bufs = {0};
	const unsigned nbuf = read_buffers_of(j);
	int fd = raw_open(j->path, O_RDONLY, &r->direct), rc;
	if (fd < 0)
		rc = fd;
	else if (!(rc = bufs_alloc(&bufs, nbuf, j->read_bytes, j)))
		rc = raw_run(fd, false, &(io_order){0}, j->n_reads, j->read_bytes, j->read_depth,
			     nbuf, 0, bufs.b, crc, NULL, r);
	bufs_free(&bufs);
	if (fd >= 0)
		close(fd);
	if (rc)
		fprintf(stderr, "tierkv-bench: raw read: %s\n", strerror(-rc));
	return rc;
}

int bench_disk_pass(const bench_disk_job *job, bench_disk_io *w, bench_disk_io *r)
{
	int rc = write_pass(job, w);
	if (!rc && job->n_reads)
		rc = read_pass(job, NULL, r);
	if (!rc && job->n_reads && job->crc_read)
		rc = read_pass(job, tkv__kernels_get(TKV_ISA_AUTO)->crc32c, job->crc_read);
	unlink(job->path);
	return rc;
}

struct bench_disk_reader {
	bench_disk_job job;
	char *path; /* job.path's copy: the file, removed at close */
	int fd;
	io_bufs bufs;
	unsigned nbuf; /* allocated; a read call uses as many as it reads */
	bool direct;
	bool uring;            /* ring set up (else each read call tries its own) */
	struct io_uring ring;  /* kept across read calls, like the cold tier's */
	uint64_t next_group; /* the next read's group, modulo the file's */
};

int bench_disk_reader_open(const bench_disk_job *job, bench_disk_reader **out)
{
	bench_disk_io w = {0};
	const uint64_t group = job->read_group ? job->read_group : 1;
	if (!job->read_slices || !job->read_depth || !job->n_writes || job->n_writes % group ||
	    !job->read_bytes || job->read_bytes % 4096 ||
	    job->write_bytes < (uint64_t)job->read_slices * job->read_bytes) {
		fprintf(stderr, "tierkv-bench: raw reader: the job does not describe whole groups "
				"of records of 4 KiB-multiple slices\n");
		return -EINVAL;
	}
	bench_disk_reader *rd = calloc(1, sizeof(*rd));
	if (!rd || !(rd->path = strdup(job->path))) {
		free(rd);
		return -ENOMEM;
	}
	rd->job = *job;
	rd->job.path = rd->path;
	rd->fd = -1;
	rd->nbuf = read_buffers_of(job);
	/* creates the file (close removes it); prints its own errors */
	int rc = write_pass(&rd->job, &w);
	if (!rc && (rd->fd = raw_open(rd->path, O_RDONLY, &rd->direct)) < 0)
		rc = rd->fd;
	if (!rc)
		rc = bufs_alloc(&rd->bufs, rd->nbuf, job->read_bytes, job);
	if (!rc)
		rd->uring = io_uring_queue_init(job->read_depth + 1, &rd->ring, 0) == 0;
	if (rc) {
		if (rd->fd != -1) /* after write_pass */
			fprintf(stderr, "tierkv-bench: raw reader: %s\n", strerror(-rc));
		bench_disk_reader_close(rd);
		return rc;
	}
	*out = rd;
	return 0;
}

int bench_disk_reader_read(bench_disk_reader *rd, uint64_t n, bench_disk_io *acc)
{
	const bench_disk_job *j = &rd->job;
	const uint64_t per = j->read_slices, group = j->read_group ? j->read_group : 1;
	if (n % (per * group))
		return -EINVAL;
	/* as many distinct buffers as the reads fill (up to those allocated) */
	const unsigned nbuf = n < rd->nbuf ? (n > j->read_depth ? (unsigned)n : j->read_depth)
					   : rd->nbuf;
	const uint64_t n_groups = j->n_writes / group;
	io_order ord = {.first = rd->next_group % n_groups,
			.n_groups = n_groups,
			.per = (uint32_t)per,
			.group = (uint32_t)group,
			.rec_bytes = j->write_bytes,
			.skip = j->write_bytes - per * j->read_bytes};
	bench_disk_io io = {0};
	int rc = raw_run(rd->fd, false, &ord, n, j->read_bytes, j->read_depth, nbuf, 0, rd->bufs.b,
			 NULL, rd->uring ? &rd->ring : NULL, &io);
	if (rc) {
		fprintf(stderr, "tierkv-bench: raw read: %s\n", strerror(-rc));
		return rc;
	}
	acc->bytes += io.bytes;
	acc->ns += io.ns;
	acc->direct = rd->direct;
	acc->uring = io.uring;
	rd->next_group += n / (per * group);
	return 0;
}

void bench_disk_reader_close(bench_disk_reader *rd)
{
	if (!rd)
		return;
	if (rd->uring)
		io_uring_queue_exit(&rd->ring);
	bufs_free(&rd->bufs);
	if (rd->fd >= 0)
		close(rd->fd);
	if (rd->path)
		unlink(rd->path);
	free(rd->path);
	free(rd);
}
