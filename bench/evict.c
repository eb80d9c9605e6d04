/*
 * evict.c - the "evict" scenario: the cold tier against the disk it sits on.
 *
 * One run, one fresh directory (a mkdtemp'd subdirectory of --dir, else of
 * the first of /var/tmp, . and /tmp that statfs says is not tmpfs/ramfs;
 * removed at the end), these phases in this order:
 *
 *   1. raw write #1 + raw read #1   the limits, on a fresh file
 *   2. saturated eviction run       eviction bandwidth, then promotion
 *                                   bandwidth, in the same runtime
 *   3. raw write #2 + raw read #2   the limits again, on a fresh file (and,
 *                                   for information, a raw write from 4 KiB-
 *                                   page buffers, see "Buffers")
 *   4. paced runs, working set 4x hot    store latency with eviction
 *   5. paced runs, everything fits hot   store latency without eviction
 *      (--reps, default 3, of each, alternating E N N E E N, samples pooled)
 *
 * The limits bracket the run they are compared with (the host caches writes
 * and its speed drifts); the better of the two is the limit, so a drift makes
 * the ratios lower, never higher. Every runtime gets its own fresh cold
 * subdirectory and every raw pass its own fresh file: a preallocated extent
 * is "unwritten" until its first write, which costs the filesystem more
 * (extent conversion, journal at fdatasync) than an overwrite, so the evictor
 * and the raw baseline both write fresh preallocated space.
 *
 * Load. 16 sequences; each stores every layer, batch 16 tokens per tkv_store
 * (= block_tokens: one hot block per store), in engine order: for each
 * position step, each sequence, each layer. The working set is 4x the hot
 * tier: units = 4 * hot / (n_layers * block_bytes) block positions (one unit
 * = one cold record), spread over the 16 sequences. Defaults: llama3-8b f32,
 * hot 256 MiB, record 4 MiB + 4 KiB (32 layers x 128 KiB + a 4 KiB header),
 * 256 units = 1 GiB, 16 sequences x 256 tokens, 8192 stores. Each runtime
 * first stores and closes throw-away sequences filling its hot tier up to
 * just under the high watermark (untimed), so its block pool is faulted in,
 * as in a runtime that has served a while: first-touch page faults (slow in
 * a VM) would otherwise land in the workers' copies of the first fill, and
 * the no-eviction run (a 4x larger hot tier, never recycled) would pay far
 * more of them than the eviction runs.
 *
 * Buffers. Where the memory an O_DIRECT transfer touches is backed by
 * 2 MiB pages, this VM's disk moves it much faster (measured here: 128 KiB
 * reads 2.9-3.0 GB/s from huge-page buffers vs 1.2 GB/s from 4 KiB pages;
 * 4 MiB writes ~2.2 vs ~1.6 GB/s). The hot tier's slabs ask for huge pages
 * (MADV_HUGEPAGE), so promotion reads land in them; the cold tier's record
 * staging buffers do not (posix_memalign, no advice). The raw baselines use
 * fresh mmap'd, 2 MiB-aligned, MADV_HUGEPAGE buffers: the limit is what the
 * disk does at its best with the same I/O size and depth. Phase 3 also
 * prints a raw write from MADV_NOHUGEPAGE buffers like the evictor's, to
 * show how much of the eviction ratio that choice explains.
 *
 * Eviction bandwidth (phase 2). The producer stores the working set as fast
 * as it can, so past the high watermark it outruns the disk and blocks in
 * tkv_store waiting for hot space: the evictor is asked for more than it can
 * give, the condition under which its bandwidth means something. The
 * runtime has the default policy, queue depth and durability, but
 * hot_low_pct = 5 (high stays the default): once the stores end it keeps
 * writing at full depth down to 5%, which lengthens the saturated window and
 * leaves the hot tier nearly empty for the promotion (with the default low
 * watermark, most of a hot tier would stay hot and promoting anything would
 * first have to write it out). The producer stops one block under the high
 * watermark and waits for the workers (tkv_seq_sync), so the window starts
 * with the hot tier full of complete, evictable units, not with the workers
 * still copying the first fill.
 *   evict_gbps = evicted record bytes / (t_idle - t_high)
 * t_high: when the producer resumes, one block under the watermark (the
 * evictor has not started: nothing was evicted before); t_idle: the first
 * poll (every 100 us) that finds no record write outstanding and the hot
 * tier at the low watermark. Every byte evicted was written inside that
 * window, the producer blocked through its first part (the share is
 * printed) and the evictor draining at full depth through the rest. This is
 * the bench's own clock, and it charges the evictor with everything on its
 * path (victim choice, gather into the record buffer, CRC32C of every
 * layer, submit, fdatasync, freeing the hot blocks). The library's own
 * figure, evicted_bytes / evict_write_ns (time with >= 1 record write
 * outstanding), is printed as a cross-check; the two agree within ~1% here.
 * If the producer was blocked less than half the time, the producer set the
 * pace and the output says to trust the busy-time figure instead.
 *   Raw write baseline: as many records (units), one record_bytes write
 * each (the evictor's I/O size), O_DIRECT, sequential in one fresh fallocated
 * file in the same directory, io_uring, as many writes in flight as the
 * evictor may have (the cold tier's queue_depth, 32), and with durability
 * sync (the default, as in phase 2) an fdatasync through the ring after
 * every sync_batch (16) completed writes plus a final one, writes going on
 * while a sync runs, as the cold tier's batches do; time from the first
 * submit to the last completion (final sync included). With --durability
 * none neither side syncs. The baseline keeps 32 writes at the device at all
 * times (the evictor counts a write against its 32 until its batch is
 * synced) and does no gather and no CRC: it is the limit, not a second
 * implementation.
 *   What limits the evictor: its staging buffers' 4 KiB pages (see Buffers:
 * the evictor lands near the 4 KiB-page raw write); one thread gathering
 * and checksumming every record before submitting it, on a 2-core machine
 * shared with the producer and two pinned workers; then the disk.
 *
 * Promotion bandwidth (phase 2, after eviction). All evicted data is read
 * back as an engine would: in rounds that fit under the high watermark (so
 * no eviction runs during a round), tkv_prefetch of whole sequences (the
 * prefetch thread submits one asynchronous read per layer block, layer 0
 * first, up to the cold tier's read_depth, 64, in flight, and verifies each
 * layer's CRC32C as it completes), then tkv_view_acquire/release of every
 * layer of those sequences (a view waits for its layer's blocks, or promotes
 * one synchronously if the prefetch thread has not reached it).
 *   promote_gbps = promoted bytes (tkv_stats) / sum of the rounds' times
 * (first prefetch to last view). Between rounds, untimed: every block of the
 * round is compared with what was stored (must be byte-identical), and the
 * round's sequences are closed to make room.
 *   Raw read baseline: the same total size (units * n_layers layer blocks),
 * one layer block per read (the record's slice, 4 KiB-rounded: the
 * promotion's I/O size), O_DIRECT, io_uring with read_depth (64) in flight,
 * sequential through the raw write file (written: reading unwritten
 * preallocated extents costs no I/O), into huge-page buffers as promotion's
 * hot blocks are. What limits promotion: the prefetch thread verifies every
 * layer's CRC32C itself, serially (perf: ~70% of that thread's time in
 * tkv__crc32c_sse42 during the rounds), besides a hot-block reservation and
 * a publish per read; the rounds' ramps (fewer than 64 reads in flight at
 * each round's start and end); and the access pattern, layer-major across
 * records (strided by the record size) where the baseline is sequential
 * (measured here: no difference at 128 KiB).
 *
 * Store latency (phases 4 and 5). The same store sequence into fresh
 * runtimes with the default watermarks (tkv_config_default: 90/75 when this
 * was written) and durability: ones with the hot
 * tier of phase 2 (working set 4x hot: eviction runs), ones with a hot tier
 * holding everything below the high watermark (no eviction; checked),
 * --reps of each in alternating order with their samples pooled (a single
 * pair's p99 ratio swung between 0.6 and 1.5 from run to run here: the p99
 * of both sides, ~10-16 us, is scheduling noise on 2 shared cores). The
 * producer is paced, open loop: one unit's stores (every layer of one block
 * position) per interval, the interval set so the records it creates arrive
 * at --pace (default 0.5) of the raw write limit, a rate the disk absorbs.
 * Unpaced, the 4x run is phase 2, where the producer outruns the disk and
 * must block in tkv_store (the explicit backpressure of DESIGN.md invariant
 * 5): its percentiles then measure the disk, not the interference of
 * eviction, and are printed for information only. Latency = the duration of
 * each tkv_store call (CLOCK_MONOTONIC around it), all samples, exact
 * percentiles by nearest rank over the sorted samples; log2-ns
 * histograms (bucket b = [2^b, 2^(b+1)) ns) go into the result for the
 * latency plot. Store-to-completion is not measured here: the pipeline
 * scenario measures the copy path, and waiting on tickets would change the
 * load. The tail (p999, max) of the eviction runs was in milliseconds here
 * (p99 was not). A likely cause, not established: above a 90% watermark
 * the producer has 10% of the hot tier (25.6 MiB by default) before it
 * blocks, while the evictor frees nothing until a whole sync batch (16
 * records, 64 MiB in f32) is durable; with --hot-bytes 1G (102 MiB of
 * headroom) the eviction runs' p999 fell to ~40 us.
 *
 * Two library bugs are worked around here (and reported): a blocking
 * tkv_store can fail with -ENOSPC ("nothing more can be evicted") while the
 * hot tier is full of blocks still queued for the workers, which become
 * evictable a moment later (the store loop retries, counting the retries in
 * that store's latency, and prints how often); and tkv_seq_close of a
 * sequence with stores still pending can leave a freed unit in the eviction
 * policy (use after free in the evictor), so every close is preceded by
 * tkv_seq_sync.
 *
 * Size and time: peak disk use is ~1.3x the working set (one cold directory
 * or one raw file at a time); with less free space the hot tier (and so the
 * working set) is halved until it fits. A run takes ~8-10 s on the
 * project's 2-core machine with --reps 1, ~15 s with the default 3; RAM:
 * ~1.2 GiB (the no-eviction hot tier).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "bench/bench.h"
#include "bench/limits.h"
#include "bench/report.h"
#include "tiers/cold.h"
#include "tiers/cold_record.h"
#include "tiers/evictor.h"

enum {
	N_SEQS = 16,
	BATCH = 16, /* tokens per store = block_tokens */
	SRC_BYTES = 64 << 20,
	LAT_BUCKETS = 40,
	POLL_NS = 100 * 1000,
	SAT_LOW_PCT = 5,
	HIST_SLOTS = 8,
};

#define DEFAULT_HOT (256ull << 20)
#define DEFAULT_PACE 0.5
#define DEFAULT_REPS 3
#define IDLE_TIMEOUT_NS (20ull * 1000 * 1000 * 1000)
/* no eviction for this long, nothing in flight: the evictor is done */
#define IDLE_QUIET_NS (200ull * 1000 * 1000)
#define ENOSPC_RETRY_NS (10ull * 1000 * 1000 * 1000) /* give up on a store after this */
#define ENOSPC_NAP_NS (50 * 1000)

/* Histograms handed to the report: they must outlive it, so they live here;
 * HIST_SLOTS runs per process keep their own (later ones reuse the oldest). */
static uint64_t lat_hists[HIST_SLOTS][2][LAT_BUCKETS];
static unsigned lat_hist_next;

typedef struct evict_opts {
	const bench_geometry *geo;
	tkv_dtype dtype;
	const char *dir;
	uint64_t hot_bytes;
	double pace;  /* fraction of raw write bandwidth; 0: unpaced */
	unsigned reps; /* paced runs of each kind */
	bool durable; /* TKV_DURABLE_SYNC (and raw fdatasync) */
	const char *json;
} evict_opts;

/* Everything a phase needs to know about the load. */
typedef struct plan {
	const evict_opts *o;
	tkv__cold_layout lay;
	size_t row;         /* bytes of one token's K (or V) of one layer */
	size_t batch_bytes; /* BATCH rows */
	uint64_t hot_bytes;
	uint32_t n_seqs, blocks_per_seq, tokens_per_seq;
	uint64_t units, n_stores;
	uint64_t cold_bytes;
	unsigned wq_depth, sync_every, rq_depth;
	uint32_t high_pct, low_pct; /* the runtime's default watermarks */
	const unsigned char *src;
	char root[PATH_MAX];
} plan;

/* ---- small helpers ------------------------------------------------------- */

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0.0;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
	nanosleep(&ts, NULL);
}

static const char *fs_name(long type)
{
	static const struct {
		unsigned long magic;
		const char *name;
	} fs[] = {
		{0xEF53, "ext2/3/4"},       {0x58465342, "xfs"},   {0x9123683E, "btrfs"},
		{0x01021994, "tmpfs"},      {0x858458F6, "ramfs"}, {0x794C7630, "overlayfs"},
		{0x6969, "nfs"},            {0xF2F52010, "f2fs"},  {0x2FC12FC1, "zfs"},
		{0x65735546, "fuse"},       {0x73717368, "squashfs"},
	};
	for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++)
		if ((unsigned long)type == fs[i].magic)
			return fs[i].name;
	return "unknown";
}

static bool is_ram_fs(long type)
{
	return (unsigned long)type == 0x01021994 || (unsigned long)type == 0x858458F6;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) && errno != ENOENT)
		fprintf(stderr, "tierkv-bench evict: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_in(const plan *p, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", p->root, name);
}

/* A fresh subdirectory: of `dir` if given, else of the first of /var/tmp,
 * the current directory and /tmp that is not a RAM filesystem. */
static int make_root(const char *dir, char *out, size_t len, long *fs_type)
{
	static const char *const cands[] = {"/var/tmp", ".", "/tmp"};
	const char *use = dir;
	struct statfs sf;
	if (!use) {
		for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]) && !use; i++)
			if (statfs(cands[i], &sf) == 0 && !is_ram_fs((long)sf.f_type) &&
			    access(cands[i], W_OK) == 0)
				use = cands[i];
		if (!use) {
			use = "/var/tmp";
			fprintf(stderr, "tierkv-bench evict: no disk filesystem found among "
					"/var/tmp, . and /tmp; using /var/tmp (--dir to choose)\n");
		}
	}
	snprintf(out, len, "%s/tierkv-evict-XXXXXX", use);
	if (!mkdtemp(out)) {
		int e = errno;
		fprintf(stderr, "tierkv-bench evict: cannot create a directory under %s: %s\n", use,
			strerror(e));
		return -e;
	}
	*fs_type = statfs(out, &sf) == 0 ? (long)sf.f_type : 0;
	return 0;
}

/* K of store (step, seq, layer) inside the source buffer; V follows it. */
static const unsigned char *src_of(const plan *p, uint32_t step, uint32_t seq, uint32_t layer)
{
	uint64_t idx = ((uint64_t)step * p->n_seqs + seq) * p->lay.n_layers + layer;
	uint64_t span = 2 * (uint64_t)p->batch_bytes;
	return p->src + (idx * span) % (SRC_BYTES - span);
}

/* ---- raw O_DIRECT baselines ---------------------------------------------- */

typedef struct raw_io {
	uint64_t bytes, ns;
	bool direct, uring;
} raw_io;

static int raw_open(const char *path, int flags, bool *direct)
{
	int fd = open(path, flags | O_DIRECT | O_CLOEXEC, 0644);
	*direct = fd >= 0;
	if (fd < 0 && errno == EINVAL)
		fd = open(path, flags | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

/* n I/O buffers of len bytes (a multiple of 4 KiB) carved from one fresh
 * anonymous mapping, filled with distinct source data (so faulted in before
 * any timing). huge: 2 MiB aligned and transparent huge pages asked for, as
 * the hot tier's slabs (where promotion reads land) do; else huge pages are
 * refused, as for the evictor's staging buffers (posix_memalign, no advice).
 * A fresh mapping each time, so a buffer never inherits another's pages. */
typedef struct io_bufs {
	void *map;
	size_t map_bytes;
	void **b;
} io_bufs;

static int bufs_alloc(io_bufs *io, unsigned n, size_t len, bool huge, const unsigned char *src)
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
	(void)madvise(base, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	for (size_t off = 0; off < size;) {
		size_t from = off % SRC_BYTES;
		size_t m = size - off < SRC_BYTES - from ? size - off : SRC_BYTES - from;
		memcpy(base + off, src + from, m);
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

#define TAG_SYNC UINT64_MAX

/* n I/Os of len bytes at offsets 0, len, 2 len, ... with up to qd in flight;
 * writes fdatasync after every sync_every completions (0: never) and at the
 * end. Synchronous pread/pwrite if io_uring is unavailable. */
static int raw_run(int fd, bool write, uint64_t n, size_t len, unsigned qd, unsigned sync_every,
		   void **bufs, raw_io *out)
{
	struct io_uring ring;
	int rc = 0;
	out->uring = io_uring_queue_init(qd + 1, &ring, 0) == 0;
	uint64_t t0 = bench_now_ns();
	if (!out->uring) {
		for (uint64_t i = 0; i < n && !rc; i++) {
			ssize_t r = write ? pwrite(fd, bufs[i % qd], len, (off_t)(i * len))
					  : pread(fd, bufs[i % qd], len, (off_t)(i * len));
			if (r != (ssize_t)len)
				rc = r < 0 ? -errno : -EIO;
			else if (write && sync_every && (i + 1) % sync_every == 0 && fdatasync(fd))
				rc = -errno;
		}
		if (!rc && write && sync_every && fdatasync(fd))
			rc = -errno;
		out->ns = bench_now_ns() - t0;
		out->bytes = n * len;
		return rc;
	}
	unsigned *free_slot = malloc(qd * sizeof(*free_slot)), n_free = qd;
	if (!free_slot) {
		io_uring_queue_exit(&ring);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < qd; i++)
		free_slot[i] = qd - 1 - i;
	uint64_t next = 0, done = 0, since_sync = 0;
	bool syncing = false;
	while (!rc && (done < n || syncing || (sync_every && since_sync))) {
		struct io_uring_sqe *sqe;
		while (n_free && next < n && (sqe = io_uring_get_sqe(&ring))) {
			unsigned slot = free_slot[--n_free];
			if (write)
				io_uring_prep_write(sqe, fd, bufs[slot], (unsigned)len, next * len);
			else
				io_uring_prep_read(sqe, fd, bufs[slot], (unsigned)len, next * len);
			io_uring_sqe_set_data64(sqe, slot);
			next++;
		}
		if (write && sync_every && !syncing &&
		    (since_sync >= sync_every || (done == n && since_sync)) &&
		    (sqe = io_uring_get_sqe(&ring))) {
			io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
			io_uring_sqe_set_data64(sqe, TAG_SYNC);
			syncing = true;
			since_sync = 0;
		}
		int r = io_uring_submit_and_wait(&ring, 1);
		if (r < 0 && r != -EINTR) {
			rc = r;
			break;
		}
		struct io_uring_cqe *cqe;
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;
			io_uring_cqe_seen(&ring, cqe);
			if (tag == TAG_SYNC) {
				syncing = false;
				if (res < 0)
					rc = res;
				continue;
			}
			if (res != (int)len)
				rc = res < 0 ? res : -EIO;
			free_slot[n_free++] = (unsigned)tag;
			done++;
			since_sync++;
		}
	}
	out->ns = bench_now_ns() - t0;
	out->bytes = done * len;
	/* on error, let what is in flight finish before the buffers go */
	while (rc && n_free < qd) {
		struct io_uring_cqe *cqe;
		if (io_uring_wait_cqe(&ring, &cqe))
			break;
		if (io_uring_cqe_get_data64(cqe) != TAG_SYNC)
			n_free++;
		io_uring_cqe_seen(&ring, cqe);
	}
	free(free_slot);
	io_uring_queue_exit(&ring);
	return rc;
}

/* Writes `units` records to a fresh preallocated file in the directory;
 * then, if r, reads the same file back one layer block per read. huge: the
 * buffers are huge-page backed. */
static int raw_pass(const plan *p, const char *name, bool huge, raw_io *w, raw_io *r)
{
	char path[PATH_MAX + 32];
	path_in(p, name, path, sizeof(path));
	const size_t rec = p->lay.record_bytes, slice = p->lay.slice_stride;
	io_bufs bufs = {0};
	int fd = raw_open(path, O_RDWR | O_CREAT | O_TRUNC, &w->direct), rc = 0;
	if (fd < 0) {
		fprintf(stderr, "tierkv-bench evict: cannot create %s: %s\n", path, strerror(-fd));
		return fd;
	}
	if (fallocate(fd, 0, 0, (off_t)(p->units * rec)) && errno != EOPNOTSUPP) {
		rc = -errno;
		fprintf(stderr, "tierkv-bench evict: fallocate %s: %s\n", path, strerror(errno));
	}
	if (!rc)
		fdatasync(fd); /* the preallocation is not part of the write */
	if (!rc)
		rc = bufs_alloc(&bufs, p->wq_depth, rec, huge, p->src);
	if (!rc)
		rc = raw_run(fd, true, p->units, rec, p->wq_depth, p->o->durable ? p->sync_every : 0,
			     bufs.b, w);
	bufs_free(&bufs);
	close(fd);
	if (rc)
		fprintf(stderr, "tierkv-bench evict: raw write: %s\n", strerror(-rc));
	if (rc || !r) {
		unlink(path);
		return rc;
	}
	fd = raw_open(path, O_RDONLY, &r->direct);
	if (fd < 0)
		rc = fd;
	else if (!(rc = bufs_alloc(&bufs, p->rq_depth, slice, huge, p->src)))
		rc = raw_run(fd, false, p->units * p->lay.n_layers, slice, p->rq_depth, 0, bufs.b, r);
	bufs_free(&bufs);
	if (fd >= 0)
		close(fd);
	if (rc)
		fprintf(stderr, "tierkv-bench evict: raw read: %s\n", strerror(-rc));
	unlink(path);
	return rc;
}

/* ---- latency samples ----------------------------------------------------- */

typedef struct lat_set {
	uint64_t *ns;
	uint64_t n;
	double p50, p99, p999, max;
} lat_set;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double nearest_rank(const uint64_t *sorted, uint64_t n, double q)
{
	uint64_t k = (uint64_t)((double)n * q + 0.999999);
	return (double)sorted[(k ? k : 1) - 1];
}

/* Sorts the samples, fills the percentiles and (if hist) the histogram. */
static void lat_finish(lat_set *l, uint64_t *hist)
{
	if (!l->n)
		return;
	if (hist) {
		memset(hist, 0, LAT_BUCKETS * sizeof(*hist));
		for (uint64_t i = 0; i < l->n; i++) {
			uint64_t v = l->ns[i];
			unsigned b = v < 2 ? 0 : 63u - (unsigned)__builtin_clzll(v);
			hist[b < LAT_BUCKETS ? b : LAT_BUCKETS - 1]++;
		}
	}
	qsort(l->ns, l->n, sizeof(*l->ns), cmp_u64);
	l->p50 = nearest_rank(l->ns, l->n, 0.50);
	l->p99 = nearest_rank(l->ns, l->n, 0.99);
	l->p999 = nearest_rank(l->ns, l->n, 0.999);
	l->max = (double)l->ns[l->n - 1];
}

/* ---- runtimes ------------------------------------------------------------ */

static tkv_config run_config(const plan *p, uint64_t hot, const char *cold_dir,
			     uint64_t cold_bytes, uint32_t low_pct)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = p->o->geo->n_layers;
	c.n_kv_heads = p->o->geo->n_kv_heads;
	c.head_dim = p->o->geo->head_dim;
	c.dtype = p->o->dtype;
	c.block_tokens = BATCH;
	c.hot_bytes = hot;
	c.cold_dir = cold_dir;
	c.cold_bytes = cold_bytes;
	if (low_pct && low_pct < c.hot_high_pct) /* else the default */
		c.hot_low_pct = low_pct;
	c.durability = p->o->durable ? TKV_DURABLE_SYNC : TKV_DURABLE_NONE;
	c.trace_path = "";
	return c;
}

static int open_rt(const tkv_config *c, tkv_runtime **rt)
{
	int rc = tkv_open(c, rt);
	if (rc)
		fprintf(stderr, "tierkv-bench evict: open: %s\n", tkv_last_error());
	return rc;
}

static int stats_of(tkv_runtime *rt, tkv_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->struct_size = sizeof(*st);
	return tkv_stats_get(rt, st);
}

/* tkv_seq_close waits for pending stores itself, but a unit completed by a
 * worker during that wait is put back into the eviction policy after the
 * close took the sequence's units out of it, and the evictor later picks the
 * freed unit (use after free; see the report). Syncing first avoids it. */
static void close_seq(tkv_runtime *rt, uint64_t id)
{
	tkv_seq_sync(rt, id);
	tkv_seq_close(rt, id);
}

static int open_seqs(tkv_runtime *rt, const plan *p)
{
	for (uint32_t s = 0; s < p->n_seqs; s++) {
		int rc = tkv_seq_open(rt, s + 1);
		if (rc) {
			fprintf(stderr, "tierkv-bench evict: seq_open: %s\n", tkv_last_error());
			return rc;
		}
	}
	return 0;
}

/* What the store loop saw. */
typedef struct store_run {
	lat_set lat;
	uint64_t t0, t_high, t_end; /* t_high: 0 if never past the watermark */
	uint64_t blocked_ns_after_high; /* sum of store times after t_high */
	uint64_t enospc_retries;        /* spurious -ENOSPC answers retried */
} store_run;

/* What the runtime says when a store fails: enough to tell a stuck evictor
 * from a cold tier that refuses writes. */
static void store_failed(tkv_runtime *rt, uint32_t step, uint32_t seq, uint32_t layer,
			 uint64_t i)
{
	tkv_stats st;
	if (stats_of(rt, &st))
		return;
	fprintf(stderr,
		"  at store %llu (step %u, sequence %u, layer %u): hot %llu/%llu bytes, evicted "
		"%llu records, write errors eio %llu short %llu enospc %llu, writes in flight %u, "
		"cold used %llu/%llu bytes\n",
		(unsigned long long)i, step, seq + 1, layer, (unsigned long long)st.hot_bytes_used,
		(unsigned long long)st.hot_bytes_capacity, (unsigned long long)st.evicted_blocks,
		(unsigned long long)st.io_errors_eio, (unsigned long long)st.io_errors_short,
		(unsigned long long)st.io_errors_enospc, st.evictor_queue_depth,
		(unsigned long long)st.cold_bytes_used, (unsigned long long)st.cold_bytes_capacity);
}

/* Stores `units` units into throw-away sequences, waits for them and closes
 * them: the hot tier's block pool then holds that many blocks with their
 * pages faulted in, as in a runtime that has been serving for a while (and
 * as the evicting runs' recycled blocks are). Untimed. */
static int warm_up(tkv_runtime *rt, const plan *p, uint64_t units)
{
	const uint64_t id0 = 1000000;
	uint64_t done = 0;
	int rc = 0;
	for (uint32_t s = 0; s < p->n_seqs && !rc; s++)
		rc = tkv_seq_open(rt, id0 + s);
	for (uint32_t step = 0; !rc && done < units; step++)
		for (uint32_t s = 0; s < p->n_seqs && done < units && !rc; s++, done++)
			for (uint32_t l = 0; l < p->lay.n_layers && !rc; l++) {
				const unsigned char *k = src_of(p, step % p->blocks_per_seq, s, l);
				rc = tkv_store(rt, id0 + s, l, (uint64_t)step * BATCH, BATCH, k,
					       k + p->batch_bytes, 0, NULL);
			}
	if (rc)
		fprintf(stderr, "tierkv-bench evict: warm-up: %s\n", tkv_last_error());
	for (uint32_t s = 0; s < p->n_seqs; s++)
		close_seq(rt, id0 + s);
	return rc;
}

/* Units that fit under the high watermark of a hot tier of hot bytes, less
 * one for margin. */
static uint64_t units_below_high(const plan *p, uint64_t hot)
{
	uint64_t u = hot / p->lay.block_bytes * p->high_pct / 100 / p->lay.n_layers;
	return u > 1 ? u - 1 : 0;
}

/* Every store of the working set, in engine order; one unit (all layers of
 * one block position of one sequence) per `interval_ns` when paced (open
 * loop: a late unit does not shift the schedule). high_blocks: the hot
 * blocks at which the evictor starts. */
static int store_all(tkv_runtime *rt, const plan *p, uint64_t interval_ns, uint64_t high_blocks,
		     bool pause_at_high, store_run *sr)
{
	const uint32_t L = p->lay.n_layers;
	uint64_t i = 0, deadline;
	sr->t0 = deadline = bench_now_ns();
	sr->t_high = 0;
	sr->blocked_ns_after_high = 0;
	sr->enospc_retries = 0;
	for (uint32_t step = 0; step < p->blocks_per_seq; step++) {
		for (uint32_t s = 0; s < p->n_seqs; s++) {
			if (interval_ns) {
				deadline += interval_ns;
				struct timespec ts = {(time_t)(deadline / 1000000000u),
						      (long)(deadline % 1000000000u)};
				if (bench_now_ns() < deadline)
					clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
			}
			for (uint32_t l = 0; l < L; l++, i++) {
				const unsigned char *k = src_of(p, step, s, l);
				uint64_t a = bench_now_ns(), b;
				int rc;
				/* Retry -ENOSPC while the hot tier holds blocks still
				 * queued for copy (see the header: a library bug);
				 * the retries count in this store's latency. */
				while ((rc = tkv_store(rt, s + 1, l, (uint64_t)step * BATCH, BATCH,
						       k, k + p->batch_bytes, 0, NULL)) == -ENOSPC &&
				       (b = bench_now_ns()) - a < ENOSPC_RETRY_NS) {
					sr->enospc_retries++;
					sleep_ns(ENOSPC_NAP_NS);
				}
				b = bench_now_ns();
				if (rc) {
					fprintf(stderr, "tierkv-bench evict: store: %s\n",
						tkv_last_error());
					store_failed(rt, step, s, l, i);
					return rc;
				}
				sr->lat.ns[i] = b - a;
				if (sr->t_high) {
					sr->blocked_ns_after_high += b - a;
				} else if (pause_at_high && i + 2 == high_blocks) {
					/* one block under the watermark: let the workers
					 * finish, so the window starts with the hot tier
					 * full of complete, evictable units */
					for (uint32_t q = 0; q < p->n_seqs; q++)
						tkv_seq_sync(rt, q + 1);
					sr->t_high = bench_now_ns();
				} else if (!pause_at_high && i + 1 >= high_blocks) {
					sr->t_high = b; /* this store's reservation crossed it */
				}
			}
		}
	}
	sr->lat.n = i;
	sr->t_end = bench_now_ns();
	for (uint32_t s = 0; s < p->n_seqs; s++)
		tkv_seq_sync(rt, s + 1);
	return 0;
}

/* Waits until the evictor is done: no record write outstanding, and either
 * the hot tier at or under low_blocks or no record evicted for IDLE_QUIET_NS
 * (with watermark hysteresis an evictor that reached the low mark during
 * the stores is rightly idle when usage then settles under the high mark).
 * Returns the time of the last eviction seen (the end of the work), 0 on
 * timeout. */
static uint64_t wait_evictor_idle(tkv_runtime *rt, uint64_t low_blocks, uint64_t block_bytes)
{
	uint64_t t0 = bench_now_ns(), t_change = t0, last = UINT64_MAX;
	tkv_stats st;
	for (;;) {
		uint64_t now = bench_now_ns();
		if (stats_of(rt, &st) == 0) {
			if (st.evicted_blocks != last || st.evictor_queue_depth) {
				last = st.evicted_blocks;
				t_change = now;
			}
			if (st.evictor_queue_depth == 0 &&
			    (st.hot_bytes_used / block_bytes <= low_blocks ||
			     now - t_change > IDLE_QUIET_NS))
				return t_change;
		}
		if (now - t0 > IDLE_TIMEOUT_NS) {
			fprintf(stderr,
				"  evictor not idle: hot %llu/%llu bytes (low watermark %llu blocks), "
				"evicted %llu records, writes in flight %u, write errors eio %llu "
				"enospc %llu\n",
				(unsigned long long)st.hot_bytes_used,
				(unsigned long long)st.hot_bytes_capacity, (unsigned long long)low_blocks,
				(unsigned long long)st.evicted_blocks, st.evictor_queue_depth,
				(unsigned long long)st.io_errors_eio,
				(unsigned long long)st.io_errors_enospc);
			return 0;
		}
		sleep_ns(POLL_NS);
	}
}

/* Lets the evictor's housekeeping (zeroing the headers of removed records)
 * finish so it does not overlap the next timed round. */
static void wait_cold_settled(tkv_runtime *rt)
{
	tkv_stats st;
	uint64_t last = UINT64_MAX, t0 = bench_now_ns();
	int same = 0;
	while (same < 3 && bench_now_ns() - t0 < 1000000000ull) {
		if (stats_of(rt, &st))
			return;
		same = st.cold_bytes_used == last && st.evictor_queue_depth == 0 ? same + 1 : 0;
		last = st.cold_bytes_used;
		sleep_ns(1000 * 1000);
	}
}

/* Compares every block of one layer of a sequence with what was stored. */
static int verify_layer(tkv_runtime *rt, const plan *p, uint32_t s, uint32_t l,
			tkv_view_block *blocks, uint64_t *bad)
{
	tkv_view v = {.struct_size = sizeof(v), .blocks = blocks, .max_blocks = p->blocks_per_seq};
	int rc = tkv_view_acquire(rt, s + 1, l, 0, p->tokens_per_seq, &v);
	if (rc)
		return rc;
	for (uint32_t b = 0; b < v.n_blocks; b++) {
		const unsigned char *k = src_of(p, b, s, l);
		if (memcmp(v.blocks[b].k, k, p->batch_bytes) ||
		    memcmp(v.blocks[b].v, k + p->batch_bytes, p->batch_bytes))
			(*bad)++;
	}
	return tkv_view_release(rt, &v);
}

typedef struct promote_run {
	uint64_t bytes, ns, blocks;
	uint32_t rounds;
	uint64_t verified_blocks, bad_blocks;
} promote_run;

/* Reads every cold block back in rounds that fit under the high watermark,
 * verifies, closes the round's sequences. Closes all sequences. */
static int promote_all(tkv_runtime *rt, const plan *p, promote_run *pr)
{
	const uint32_t L = p->lay.n_layers;
	const uint64_t seq_blocks = (uint64_t)p->blocks_per_seq * L;
	tkv_view_block *blocks = calloc(p->blocks_per_seq, sizeof(*blocks));
	tkv_stats st;
	int rc = blocks ? stats_of(rt, &st) : -ENOMEM;
	if (rc) {
		free(blocks);
		return rc;
	}
	const uint64_t hot_blocks = st.hot_bytes_capacity / p->lay.block_bytes;
	const uint64_t high = hot_blocks * p->high_pct / 100;
	const uint64_t b0 = st.promoted_bytes, n0 = st.promoted_blocks;
	uint32_t next = 0;
	memset(pr, 0, sizeof(*pr));
	while (!rc && next < p->n_seqs) {
		if ((rc = stats_of(rt, &st)))
			break;
		uint64_t used = st.hot_bytes_used / p->lay.block_bytes;
		uint64_t room = high > used + L ? high - used - L : 0; /* a unit of margin */
		uint32_t k = (uint32_t)(room / seq_blocks);
		k = k < 1 ? 1 : k > p->n_seqs - next ? p->n_seqs - next : k;
		uint64_t t0 = bench_now_ns();
		for (uint32_t s = next; s < next + k && !rc; s++) {
			while ((rc = tkv_prefetch(rt, s + 1, 0, p->tokens_per_seq)) == -EAGAIN)
				sleep_ns(POLL_NS);
		}
		for (uint32_t s = next; s < next + k && !rc; s++) {
			for (uint32_t l = 0; l < L && !rc; l++) {
				tkv_view v = {.struct_size = sizeof(v), .blocks = blocks,
					      .max_blocks = p->blocks_per_seq};
				rc = tkv_view_acquire(rt, s + 1, l, 0, p->tokens_per_seq, &v);
				if (!rc)
					rc = tkv_view_release(rt, &v);
			}
		}
		pr->ns += bench_now_ns() - t0;
		pr->rounds++;
		if (rc) {
			fprintf(stderr, "tierkv-bench evict: promotion: %s\n", tkv_last_error());
			break;
		}
		for (uint32_t s = next; s < next + k && !rc; s++)
			for (uint32_t l = 0; l < L && !rc; l++) {
				rc = verify_layer(rt, p, s, l, blocks, &pr->bad_blocks);
				pr->verified_blocks += p->blocks_per_seq;
			}
		if (rc)
			fprintf(stderr, "tierkv-bench evict: verify: %s\n", tkv_last_error());
		for (uint32_t s = next; s < next + k; s++)
			close_seq(rt, s + 1);
		next += k;
		wait_cold_settled(rt);
	}
	for (uint32_t s = next; s < p->n_seqs; s++)
		close_seq(rt, s + 1);
	if (stats_of(rt, &st) == 0) {
		pr->bytes = st.promoted_bytes - b0;
		pr->blocks = st.promoted_blocks - n0;
	}
	free(blocks);
	return rc;
}

/* ---- the phases ---------------------------------------------------------- */

typedef struct sat_result {
	store_run sr;
	uint64_t t_idle;
	tkv_stats st; /* after eviction, before promotion */
	promote_run pr;
	uint32_t workers;
	bool direct, uring;
} sat_result;

/* Phase 2. */
static int saturated_run(const plan *p, sat_result *out)
{
	char cold[PATH_MAX + 32];
	path_in(p, "cold-saturated", cold, sizeof(cold));
	tkv_config c = run_config(p, p->hot_bytes, cold, p->cold_bytes, SAT_LOW_PCT);
	tkv_runtime *rt;
	int rc = open_rt(&c, &rt);
	if (rc)
		return rc;
	const uint64_t hot_blocks = c.hot_bytes / p->lay.block_bytes;
	if (!(rc = warm_up(rt, p, units_below_high(p, c.hot_bytes))) && !(rc = open_seqs(rt, p)))
		rc = store_all(rt, p, 0, hot_blocks * c.hot_high_pct / 100, true, &out->sr);
	if (!rc) {
		out->t_idle = wait_evictor_idle(rt, hot_blocks * c.hot_low_pct / 100, p->lay.block_bytes);
		if (!out->t_idle) {
			fprintf(stderr, "tierkv-bench evict: the evictor did not reach the low "
					"watermark within %llu s\n",
				(unsigned long long)(IDLE_TIMEOUT_NS / 1000000000u));
			rc = -ETIMEDOUT;
		}
	}
	if (!rc)
		rc = stats_of(rt, &out->st);
	if (!rc) {
		out->workers = out->st.n_workers;
		out->direct = out->st.cold_direct_io;
		out->uring = out->st.cold_io_uring;
		rc = promote_all(rt, p, &out->pr);
	} else {
		for (uint32_t s = 0; s < p->n_seqs; s++)
			close_seq(rt, s + 1);
	}
	tkv_close(rt);
	rm_tree(cold);
	return rc;
}

typedef struct paced_result {
	store_run sr;
	tkv_stats st;
} paced_result;

/* Phases 4 and 5: the paced store sequence into a fresh runtime. */
static int paced_run(const plan *p, const char *name, uint64_t hot, uint64_t cold_bytes,
		     uint64_t interval_ns, paced_result *out)
{
	char cold[PATH_MAX + 32];
	path_in(p, name, cold, sizeof(cold));
	tkv_config c = run_config(p, hot, cold, cold_bytes, 0);
	tkv_runtime *rt;
	int rc = open_rt(&c, &rt);
	if (rc)
		return rc;
	const uint64_t hot_blocks = c.hot_bytes / p->lay.block_bytes;
	uint64_t warm = units_below_high(p, c.hot_bytes);
	if (!(rc = warm_up(rt, p, warm < p->units ? warm : p->units)) && !(rc = open_seqs(rt, p)))
		rc = store_all(rt, p, interval_ns, hot_blocks * c.hot_high_pct / 100, false, &out->sr);
	if (!rc)
		rc = stats_of(rt, &out->st);
	for (uint32_t s = 0; s < p->n_seqs; s++)
		close_seq(rt, s + 1);
	tkv_close(rt);
	rm_tree(cold);
	return rc;
}

/* ---- planning ------------------------------------------------------------ */

static int make_plan(const evict_opts *o, plan *p)
{
	memset(p, 0, sizeof(*p));
	p->o = o;
	int rc = tkv__cold_layout_init(&p->lay, o->geo->n_layers, o->geo->n_kv_heads,
				       o->geo->head_dim, o->dtype, BATCH, 0);
	if (rc) {
		fprintf(stderr, "tierkv-bench evict: %s\n", tkv_last_error());
		return rc;
	}
	tkv__cold_config cc;
	tkv__cold_config_default(&cc);
	p->wq_depth = cc.queue_depth < TKV__EVICT_BUFS ? cc.queue_depth : TKV__EVICT_BUFS;
	p->sync_every = cc.sync_batch ? cc.sync_batch : (cc.queue_depth + 1) / 2;
	p->rq_depth = cc.read_depth;
	tkv_config dc;
	tkv_config_default(&dc);
	p->high_pct = dc.hot_high_pct;
	p->low_pct = dc.hot_low_pct;
	p->row = (size_t)o->geo->n_kv_heads * o->geo->head_dim * tkv_dtype_size(o->dtype);
	p->batch_bytes = BATCH * p->row;
	return 0;
}

/* Shapes the working set for hot bytes of hot tier. */
static int size_plan(plan *p, uint64_t hot)
{
	const uint64_t unit = p->lay.payload_bytes;
	p->hot_bytes = hot;
	p->units = 4 * hot / unit;
	if (p->units < 4 || hot / p->lay.block_bytes < 2ull * p->lay.n_layers) {
		fprintf(stderr,
			"tierkv-bench evict: hot tier of %llu bytes is too small for %s %s "
			"(a unit is %llu bytes; need at least 2 units)\n",
			(unsigned long long)hot, p->o->geo->name, bench_dtype_name(p->o->dtype),
			(unsigned long long)unit);
		return -EINVAL;
	}
	p->n_seqs = p->units < N_SEQS ? (uint32_t)p->units : N_SEQS;
	p->blocks_per_seq = (uint32_t)(p->units / p->n_seqs);
	p->units = (uint64_t)p->n_seqs * p->blocks_per_seq;
	p->tokens_per_seq = p->blocks_per_seq * BATCH;
	p->n_stores = p->units * p->lay.n_layers;
	p->cold_bytes = (p->units + p->units / 4 + 8) * p->lay.record_bytes;
	return 0;
}

/* ---- the scenario -------------------------------------------------------- */

static void print_lat(const char *what, const lat_set *l)
{
	printf("  %-34s p50 %8.0f ns  p99 %9.0f ns  p999 %9.0f ns  max %10.0f ns\n", what, l->p50,
	       l->p99, l->p999, l->max);
}

static int evict_run(const evict_opts *o, bench_report *rep)
{
	plan p;
	int rc = make_plan(o, &p);
	if (rc)
		return rc;
	long fs_type = 0;
	if ((rc = make_root(o->dir, p.root, sizeof(p.root), &fs_type)))
		return rc;
	uint64_t hot = o->hot_bytes ? o->hot_bytes : DEFAULT_HOT;
	struct statvfs sv;
	uint64_t avail = statvfs(p.root, &sv) == 0 ? (uint64_t)sv.f_bavail * sv.f_frsize : UINT64_MAX;
	while (!(rc = size_plan(&p, hot)) && p.cold_bytes + (64ull << 20) > avail &&
	       hot / 2 / p.lay.payload_bytes >= 1) {
		fprintf(stderr, "tierkv-bench evict: %llu MiB free in %s, not enough for a %llu MiB "
				"hot tier's working set; halving it\n",
			(unsigned long long)(avail >> 20), p.root, (unsigned long long)(hot >> 20));
		hot /= 2;
	}
	if (!rc && p.cold_bytes + (64ull << 20) > avail) {
		fprintf(stderr, "tierkv-bench evict: not enough free space in %s\n", p.root);
		rc = -ENOSPC;
	}
	unsigned char *src = rc ? NULL : bench_source_buffer(SRC_BYTES);
	if (!rc && !src)
		rc = -ENOMEM;
	if (rc) {
		rm_tree(p.root);
		return rc;
	}
	p.src = src;
	char b1[24], b2[24], b3[24];
	printf("# tierkv-bench evict: %s %s, record %s (%u layers x %s + %s header), hot tier "
	       "%llu MiB,\n# working set %llu MiB = 4x hot (%u sequences x %u tokens, %llu "
	       "records, %llu stores of %u tokens)\n",
	       o->geo->name, bench_dtype_name(o->dtype), bench_fmt_bytes(p.lay.record_bytes, b1),
	       p.lay.n_layers, bench_fmt_bytes(p.lay.block_bytes, b2),
	       bench_fmt_bytes(p.lay.header_bytes, b3), (unsigned long long)(p.hot_bytes >> 20),
	       (unsigned long long)(p.units * p.lay.payload_bytes >> 20), p.n_seqs,
	       p.tokens_per_seq, (unsigned long long)p.units, (unsigned long long)p.n_stores, BATCH);
	printf("# directory %s: %s%s, %llu MiB free; durability %s; evictor depth %u, sync "
	       "every %u records; read depth %u; watermarks %u/%u%% (saturated run: %u/%u%%)\n",
	       p.root, fs_name(fs_type), is_ram_fs(fs_type) ? " (RAM: not a disk!)" : "",
	       (unsigned long long)(avail >> 20), o->durable ? "sync" : "none", p.wq_depth,
	       p.sync_every, p.rq_depth, p.high_pct, p.low_pct, p.high_pct,
	       SAT_LOW_PCT < p.high_pct ? (unsigned)SAT_LOW_PCT : p.low_pct);
	fflush(stdout);

	raw_io w1 = {0}, r1 = {0}, w2 = {0}, r2 = {0}, w3 = {0};
	sat_result sat;
	memset(&sat, 0, sizeof(sat));
	const unsigned reps = o->reps;
	uint64_t *lat_mem = calloc((1 + 2 * (size_t)reps) * p.n_stores, sizeof(uint64_t));
	if (!lat_mem)
		rc = -ENOMEM;
	sat.sr.lat.ns = lat_mem;
	/* the paced runs' samples, pooled over the repetitions */
	lat_set pe = {.ns = lat_mem + p.n_stores}, pn = {.ns = lat_mem + (1 + reps) * p.n_stores};
	uint64_t pe_evicted = 0, pn_evicted = 0, pe_retries = 0, pn_retries = 0;

	if (!rc)
		rc = raw_pass(&p, "raw-1", true, &w1, &r1);
	if (!rc)
		rc = saturated_run(&p, &sat);
	if (!rc)
		rc = raw_pass(&p, "raw-2", true, &w2, &r2);
	if (!rc) /* information: buffers like the evictor's staging buffers */
		rc = raw_pass(&p, "raw-3", false, &w3, NULL);
	double raw_w = gbps(w1.bytes, w1.ns) > gbps(w2.bytes, w2.ns) ? gbps(w1.bytes, w1.ns)
								       : gbps(w2.bytes, w2.ns);
	double raw_r = gbps(r1.bytes, r1.ns) > gbps(r2.bytes, r2.ns) ? gbps(r1.bytes, r1.ns)
								       : gbps(r2.bytes, r2.ns);
	uint64_t interval = 0;
	if (!rc && o->pace > 0)
		interval = (uint64_t)((double)p.lay.record_bytes / (o->pace * raw_w));
	/* no eviction: everything below the high watermark, plus a unit */
	uint64_t big_hot = ((p.units + 2) * p.lay.payload_bytes * 100 + p.high_pct - 1) / p.high_pct;
	/* alternating which goes first, so a drift does not favour one side */
	for (unsigned k = 0; k < 2 * reps && !rc; k++) {
		bool evicting = (k % 2) == ((k / 2) % 2);
		paced_result pr;
		memset(&pr, 0, sizeof(pr));
		lat_set *into = evicting ? &pe : &pn;
		pr.sr.lat.ns = into->ns + into->n;
		rc = evicting ? paced_run(&p, "cold-paced", p.hot_bytes, p.cold_bytes, interval, &pr)
			      : paced_run(&p, "cold-noevict", big_hot, 8 * p.lay.record_bytes,
					  interval, &pr);
		into->n += pr.sr.lat.n;
		*(evicting ? &pe_evicted : &pn_evicted) += pr.st.evicted_blocks;
		*(evicting ? &pe_retries : &pn_retries) += pr.sr.enospc_retries;
	}
	rm_tree(p.root);
	free(src);
	if (rc) {
		free(lat_mem);
		fprintf(stderr, "tierkv-bench evict: failed: %s\n", tkv_strerror(rc));
		return rc;
	}

	/* eviction */
	const tkv_stats *es = &sat.st;
	uint64_t window = sat.t_idle - sat.sr.t_high;
	double ev_wall = gbps(es->evicted_bytes, window);
	double ev_busy = gbps(es->evicted_bytes, es->evict_write_ns);
	double blocked = sat.sr.t_end > sat.sr.t_high
				 ? (double)sat.sr.blocked_ns_after_high /
					   (double)(sat.sr.t_end - sat.sr.t_high)
				 : 0.0;
	double prom = gbps(sat.pr.bytes, sat.pr.ns);

	/* latency */
	unsigned slot = lat_hist_next++ % HIST_SLOTS;
	lat_finish(&sat.sr.lat, NULL);
	lat_finish(&pe, lat_hists[slot][0]);
	lat_finish(&pn, lat_hists[slot][1]);

	bench_result r = {0};
	r.scenario = "evict";
	r.geometry = o->geo->name;
	r.dtype = o->dtype;
	r.workers = sat.workers;
	r.batch = BATCH;
	r.evict_gbps = ev_wall;
	r.raw_write_gbps = raw_w;
	r.write_ratio = raw_w > 0 ? ev_wall / raw_w : 0;
	r.promote_gbps = prom;
	r.raw_read_gbps = raw_r;
	r.read_ratio = raw_r > 0 ? prom / raw_r : 0;
	r.p50_ns = pe.p50;
	r.p99_ns = pe.p99;
	r.p999_ns = pe.p999;
	r.p50_ns_no_evict = pn.p50;
	r.p99_ns_no_evict = pn.p99;
	r.p999_ns_no_evict = pn.p999;
	r.p99_ratio = pn.p99 > 0 ? pe.p99 / pn.p99 : 0;
	r.lat_hist = lat_hists[slot][0];
	r.lat_hist_no_evict = lat_hists[slot][1];
	r.lat_buckets = LAT_BUCKETS;
	/* the generic columns: eviction, as layer-tokens and GB/s against raw write */
	r.gbps = ev_wall;
	r.limit_gbps = raw_w;
	r.ratio = r.write_ratio;
	r.tokens_per_s = window ? (double)es->evicted_blocks * p.lay.n_layers * BATCH /
					  ((double)window / 1e9)
				: 0;
	bench_report_add(rep, &r);

	printf("# cold tier: O_DIRECT %s, io_uring %s; raw baseline: O_DIRECT %s, io_uring %s; "
	       "%u workers\n",
	       sat.direct ? "yes" : "NO (buffered)", sat.uring ? "yes" : "NO (pwrite)",
	       w1.direct && r1.direct ? "yes" : "NO", w1.uring && r1.uring ? "yes" : "NO",
	       sat.workers);
	if (sat.direct != (w1.direct && r1.direct) || sat.uring != (w1.uring && r1.uring))
		printf("# WARNING: the cold tier and the raw baseline do not use the same I/O "
		       "path: the ratios do not compare like with like\n");
	printf("raw write (%u in flight, %s):   #1 %6.2f GB/s  #2 %6.2f GB/s  -> limit %6.2f GB/s\n",
	       p.wq_depth, o->durable ? "fdatasync per batch" : "no sync", gbps(w1.bytes, w1.ns),
	       gbps(w2.bytes, w2.ns), raw_w);
	printf("  (the same with 4 KiB-page buffers, as the evictor's staging buffers: %.2f GB/s)\n",
	       gbps(w3.bytes, w3.ns));
	printf("raw read  (%u in flight, %s/read):  #1 %6.2f GB/s  #2 %6.2f GB/s  -> limit %6.2f GB/s\n",
	       p.rq_depth, bench_fmt_bytes(p.lay.slice_stride, b1), gbps(r1.bytes, r1.ns),
	       gbps(r2.bytes, r2.ns), raw_r);
	printf("eviction: %llu records (%llu MiB) in %.1f ms from the high watermark to idle: "
	       "%6.2f GB/s  ratio %.3f  (target >= 0.80)\n",
	       (unsigned long long)es->evicted_blocks,
	       (unsigned long long)(es->evicted_bytes >> 20), (double)window / 1e6, ev_wall,
	       r.write_ratio);
	printf("  cross-check, library busy time (>= 1 write outstanding) %.1f ms: %6.2f GB/s "
	       "(ratio %.3f)\n",
	       (double)es->evict_write_ns / 1e6, ev_busy, raw_w > 0 ? ev_busy / raw_w : 0);
	printf("  producer blocked in tkv_store %.0f%% of the time from the watermark to its last "
	       "store%s\n",
	       100.0 * blocked,
	       blocked < 0.5 ? " (LOW: the producer, not the evictor, set the pace; trust the "
			       "busy-time figure)"
			     : "");
	printf("promotion: %llu layer blocks (%llu MiB) in %u rounds, %.1f ms: %6.2f GB/s  "
	       "ratio %.3f  (target >= 0.80)\n",
	       (unsigned long long)sat.pr.blocks, (unsigned long long)(sat.pr.bytes >> 20),
	       sat.pr.rounds, (double)sat.pr.ns / 1e6, prom, r.read_ratio);
	printf("  read back and compared: %llu blocks, %llu differ%s\n",
	       (unsigned long long)sat.pr.verified_blocks, (unsigned long long)sat.pr.bad_blocks,
	       sat.pr.bad_blocks ? "  <-- DATA MISMATCH" : "");
	if (es->io_errors_eio || es->io_errors_short || es->io_errors_enospc || es->corrupt_records)
		printf("  I/O errors: eio %llu short %llu enospc %llu corrupt %llu\n",
		       (unsigned long long)es->io_errors_eio, (unsigned long long)es->io_errors_short,
		       (unsigned long long)es->io_errors_enospc,
		       (unsigned long long)es->corrupt_records);
	if (interval)
		printf("store latency, paced at %.2f of raw write (one unit = %u stores every %.0f "
		       "us, %.2f GB/s of records);\n",
		       o->pace, p.lay.n_layers, (double)interval / 1e3,
		       gbps(p.lay.record_bytes, interval));
	else
		printf("store latency, unpaced;\n");
	printf("  %u runs of each kind, alternating, %llu stores pooled per kind:\n", reps,
	       (unsigned long long)pe.n);
	print_lat("with eviction (4x hot)", &pe);
	print_lat("without eviction (all fits hot)", &pn);
	printf("  p99 ratio %.2f  (target <= 1.5); the eviction runs evicted %llu records, the "
	       "others %llu\n",
	       r.p99_ratio, (unsigned long long)pe_evicted, (unsigned long long)pn_evicted);
	print_lat("unpaced, saturated (phase 2; info)", &sat.sr.lat);
	if (sat.sr.enospc_retries || pe_retries || pn_retries)
		printf("  blocking tkv_store answered -ENOSPC with eviction possible (library "
		       "bug, retried): saturated %llu, paced %llu, no-evict %llu times\n",
		       (unsigned long long)sat.sr.enospc_retries,
		       (unsigned long long)pe_retries, (unsigned long long)pn_retries);
	if (pn_evicted)
		printf("# WARNING: the no-eviction run evicted: its hot tier was too small\n");
	fflush(stdout);
	free(lat_mem); /* the report keeps pointers to the static histograms only */
	return sat.pr.bad_blocks ? -EIO : 0; /* read back differently: a failure */
}

int bench_evict_run(const bench_geometry *geo, tkv_dtype dtype, const char *dir,
		    uint64_t hot_bytes, bench_report *rep)
{
	evict_opts o = {geo ? geo : bench_geometry_find("llama3-8b"), dtype, dir, hot_bytes,
			DEFAULT_PACE, DEFAULT_REPS, true, NULL};
	return evict_run(&o, rep);
}

static void evict_usage(FILE *f)
{
	fprintf(f,
		"usage: tierkv-bench evict [--geometry NAME] [--dtype f32|bf16] [--dir DIR]\n"
		"                          [--hot-bytes SIZE] [--pace FRACTION]\n"
		"                          [--durability sync|none] [--reps N] [--json FILE]\n"
		"  Eviction with a working set 4x the hot tier, then promotion of everything\n"
		"  evicted, against a raw O_DIRECT write/read of the same size in the same\n"
		"  directory, measured in the same run; producer store latency with and without\n"
		"  eviction under the same paced load. Method: bench/evict.c.\n"
		"  --geometry    llama3-8b (default), llama3-70b, mistral-7b, qwen2.5-7b\n"
		"  --dtype       f32 (default) or bf16\n"
		"  --dir         where to create the scratch directory (default: /var/tmp, else .)\n"
		"  --hot-bytes   hot tier (default 256M); the working set is 4x\n"
		"  --pace        latency runs' rate as a fraction of the raw write bandwidth\n"
		"                (default 0.5; 0: unpaced)\n"
		"  --durability  sync (default: fdatasync per batch, both sides) or none\n"
		"  --reps        latency runs of each kind, alternating, samples pooled (default 3)\n");
}

int bench_evict_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"geometry", required_argument, NULL, 'g'}, {"dtype", required_argument, NULL, 't'},
		{"dir", required_argument, NULL, 'd'},      {"hot-bytes", required_argument, NULL, 'b'},
		{"pace", required_argument, NULL, 'p'},     {"durability", required_argument, NULL, 'D'},
		{"json", required_argument, NULL, 'j'},     {"reps", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
	};
	evict_opts o = {bench_geometry_find("llama3-8b"), TKV_DTYPE_F32, NULL, DEFAULT_HOT,
			DEFAULT_PACE, DEFAULT_REPS, true, NULL};
	size_t bytes;
	char *end;
	for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		switch (c) {
		case 'g':
			if (!(o.geo = bench_geometry_find(optarg)))
				return fprintf(stderr, "tierkv-bench: unknown geometry '%s'\n", optarg), 2;
			break;
		case 't':
			if (!strcmp(optarg, "f32"))
				o.dtype = TKV_DTYPE_F32;
			else if (!strcmp(optarg, "bf16"))
				o.dtype = TKV_DTYPE_BF16;
			else
				return fprintf(stderr, "tierkv-bench: --dtype f32 or bf16\n"), 2;
			break;
		case 'd': o.dir = optarg; break;
		case 'b':
			if (bench_parse_bytes(optarg, &bytes) || !bytes)
				return fprintf(stderr, "tierkv-bench: bad size '%s'\n", optarg), 2;
			o.hot_bytes = bytes;
			break;
		case 'p':
			o.pace = strtod(optarg, &end);
			if (*end || o.pace < 0 || o.pace > 10)
				return fprintf(stderr, "tierkv-bench: --pace takes a fraction in [0, 10]\n"), 2;
			break;
		case 'D':
			if (strcmp(optarg, "sync") && strcmp(optarg, "none"))
				return fprintf(stderr, "tierkv-bench: --durability sync or none\n"), 2;
			o.durable = !strcmp(optarg, "sync");
			break;
		case 'j': o.json = optarg; break;
		case 'r':
			o.reps = (unsigned)strtoul(optarg, &end, 10);
			if (*end || o.reps < 1 || o.reps > 100)
				return fprintf(stderr, "tierkv-bench: --reps takes 1..100\n"), 2;
			break;
		case 'h': evict_usage(stdout); return 0;
		default: evict_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tierkv-bench evict: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	bench_report rep;
	bench_report_init(&rep, 1);
	int rc = evict_run(&o, &rep);
	if (rep.n) {
		const bench_result *x = &rep.results[0];
		printf("\n%-10s %-5s %7s | %9s %9s %6s | %9s %9s %6s | %9s %9s %6s\n", "geometry",
		       "dtype", "workers", "evict", "raw wr", "ratio", "promote", "raw rd", "ratio",
		       "p99 ns", "no-evict", "ratio");
		printf("%-10s %-5s %7u | %9.2f %9.2f %6.3f | %9.2f %9.2f %6.3f | %9.0f %9.0f %6.2f\n",
		       x->geometry, bench_dtype_name(x->dtype), x->workers, x->evict_gbps,
		       x->raw_write_gbps, x->write_ratio, x->promote_gbps, x->raw_read_gbps,
		       x->read_ratio, x->p99_ns, x->p99_ns_no_evict, x->p99_ratio);
	}
	if (!rc && o.json)
		rc = bench_report_json(&rep, o.json);
	bench_report_free(&rep);
	return rc ? 1 : 0;
}
