/*
 * disk_limits.h - the cold path's limits: how fast the disk under a
 * directory takes O_DIRECT sequential writes and gives reads, measured in
 * the same run as the figure divided by them (bench/limits.h does the same
 * for memory copies).
 *
 * A pass writes n_writes records of write_bytes to a fresh fallocated file
 * (an extent is "unwritten" until its first write, which costs the
 * filesystem more than an overwrite; the cold tier writes fresh
 * preallocated segments, so the baseline does too), through io_uring with
 * write_depth writes in flight and, if sync_every, an fdatasync through the
 * ring after every sync_every completed writes plus a final one, writes
 * going on while a sync runs, as the cold tier's batches do. The time is
 * from the first submit to the last completion (final sync included). Then,
 * if asked, it reads the same file back sequentially, n_reads of read_bytes
 * with read_depth in flight (written data: reading unwritten extents costs
 * no I/O). No gather, no CRC: it is the limit, not a second implementation.
 * With crc_read set, a second read pass follows in which the thread that
 * reaps the completions also computes the CRC32C of each block (the
 * runtime's own CRC kernel) before reusing its buffer, one completion at a
 * time with a refill after each (as the prefetch thread reaps): what one
 * promotion thread that verifies every layer could reach on this disk, a
 * second reference for promotion beside the raw read.
 *
 * Where reads land: the read passes cycle through read_buffers distinct
 * buffers, each reused only after all the others (a FIFO of free buffers).
 * Promotion reads every block into its own hot block, so a round's reads
 * land in as much distinct memory as the round promotes; a read pass that
 * reuses read_depth buffers (8 MiB at 64 x 128 KiB) lands in memory the
 * CPU caches still hold, and on this project's VM that alone moved the
 * disk's read rate from ~2.5 to ~3.2 GB/s (bench/README.md, "Promotion's
 * limit"). The caller says how much memory its reads fill.
 *
 * Buffers: one fresh anonymous mapping per pass, 2 MiB aligned, filled with
 * source data before the clock starts. huge asks for transparent huge pages
 * (MADV_HUGEPAGE), else refuses them (MADV_NOHUGEPAGE). Where the memory an
 * O_DIRECT transfer touches is backed by 2 MiB pages, some disks (this
 * project's VM's) move it much faster, so the baseline says which it used.
 * Without io_uring: synchronous pwrite/pread; without O_DIRECT (the
 * filesystem refuses it): buffered. Both are reported, so a caller can tell
 * whether it compares like with like.
 */
#ifndef TKV_BENCH_DISK_LIMITS_H
#define TKV_BENCH_DISK_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bench_disk_job {
	const char *path; /* created (truncated), and removed before returning (the
			   * in-step reader: at its close) */
	uint64_t n_writes;
	size_t write_bytes; /* a multiple of 4 KiB */
	unsigned write_depth;
	unsigned sync_every; /* 0: no fdatasync at all */
	uint64_t n_reads;    /* 0: no read pass */
	size_t read_bytes;   /* a multiple of 4 KiB */
	unsigned read_depth;
	unsigned read_buffers;     /* distinct read buffers (>= read_depth; 0: read_depth);
				    * the in-step reader: the most one call may use */
	unsigned read_slices;      /* in-step reader: slices of read_bytes at each record's
				    * end (after its header) */
	unsigned read_group;       /* in-step reader: records of a group (a sequence),
				    * read slice-major together; divides n_writes */
	bool huge;                 /* huge-page-advised buffers, see above */
	const unsigned char *src;  /* what the buffers are filled with */
	size_t src_bytes;
	struct bench_disk_io *crc_read; /* NULL, or where the read + CRC32C pass goes */
} bench_disk_job;

typedef struct bench_disk_io {
	uint64_t bytes, ns;
	bool direct, uring; /* O_DIRECT, io_uring were used */
	uint32_t crc;       /* crc_read pass: XOR of the blocks' CRCs (keeps the work) */
} bench_disk_io;

/* Runs the write pass into *w and, if job->n_reads, the read pass into *r.
 * 0 or a negative errno (message on stderr). */
int bench_disk_pass(const bench_disk_job *job, bench_disk_io *w, bench_disk_io *r);

/*
 * A read limit taken in step with what it divides: the caller reads n blocks
 * raw right next to each piece of its own work, so both see the disk in the
 * same moments (this VM's disk rate drifts by 1.5x within seconds). open
 * writes the job's file (untimed: n_writes records of write_bytes, seen as
 * n_writes / read_group groups of read_group records, interleaved as the
 * cold tier lays out a sequence's records: record r of group g is the
 * file's record g + r * groups) and allocates read_buffers buffers. Each
 * read call times n reads (a multiple of read_slices x read_group): the
 * next n / (read_slices x read_group) groups, wrapping around, each read
 * as a promotion round reads a sequence (slice 0 of each of its records,
 * then slice 1, ...), into n distinct buffers (at most those allocated,
 * at least read_depth), and adds them to *acc. close removes the file.
 * 0 or a negative errno (message on stderr).
 */
typedef struct bench_disk_reader bench_disk_reader;
int bench_disk_reader_open(const bench_disk_job *job, bench_disk_reader **out);
int bench_disk_reader_read(bench_disk_reader *rd, uint64_t n, bench_disk_io *acc);
void bench_disk_reader_close(bench_disk_reader *rd);

/* 1e9 bytes per second; 0 when nothing was timed. */
static inline double bench_disk_gbps(const bench_disk_io *io)
{
	return io->ns ? (double)io->bytes / (double)io->ns : 0.0;
}

#endif
