/*
 * cold_fullfs.c - the runtime on a real, small filesystem filled to the
 * brim: when the disk is full, stores go on while the hot tier has room,
 * the failed record writes are counted, stores get -ENOSPC only once the
 * hot tier is full too, every acknowledged byte stays readable, nothing
 * crashes, and eviction resumes once space comes back (a file deleted, a
 * sequence closed).
 *
 * The cold tier preallocates its segment files (fallocate), so on a
 * filesystem that has fallocate a full disk cannot fail a record write:
 * it refuses a tier larger than the filesystem at open, and once open it
 * runs out of slots, not of disk. Both suites below run on a loop-mounted
 * ext4 image (O_DIRECT works there), each in a private mount namespace so
 * the mount disappears with the test process even if it crashes:
 *   - preallocated: ext4 as usual (or a size-limited tmpfs if no loop
 *     device can be had): open refuses an oversized tier cleanly; a tier
 *     that fits keeps evicting into its slots while another file fills
 *     the disk to the last block;
 *   - sparse: ext4 without extents, which has no fallocate, so the tier
 *     falls back to sparse segments and a record write really meets
 *     ENOSPC from the device when the disk is full.
 * Without root (or mount namespaces) the tests are skipped, saying why.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "tests/cold_runtime.h"
#include "tests/kv_pattern.h"
#include "tiers/cold.h"
#include "tiers/evictor.h"
#include "tierkv.h"

enum { PIN_UNITS = 4 };
#define FS_BYTES (16ull << 20)
#define MAX_UNITS 20000 /* a fill loop that never hits ENOSPC is a failure */
/* A record write refused for space can leave this much free: the record's
 * data blocks minus one, plus the indirect blocks a file without extents
 * needs to map them. */
#define FULL_SLACK(rec) ((rec) + 16 * 1024)

static char root[64], mnt[96], img[96], cold_dir[128], filler[128];
static bool mounted;

/* ---- a small filesystem of our own --------------------------------------- */

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void setup(void)
{
	strcpy(root, "/tmp/tierkv-fullfs-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	snprintf(mnt, sizeof(mnt), "%s/mnt", root);
	snprintf(img, sizeof(img), "%s/fs.img", root);
	snprintf(cold_dir, sizeof(cold_dir), "%s/cold", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	cr_assert_eq(mkdir(mnt, 0755), 0);
}

/* Runs even after a failed assertion. A runtime may still be open on the
 * mount (its threads hold files there): a lazy unmount detaches it anyway,
 * and the process exit that follows closes the rest. */
static void teardown(void)
{
	if (mounted)
		umount2(mnt, MNT_DETACH);
	mounted = false;
	if (root[0])
		nftw(root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	root[0] = '\0';
}

/* A skipped test does not run .fini: clean up first. */
#define skip_test(...)                     \
	do {                               \
		teardown();                \
		cr_skip_test(__VA_ARGS__); \
	} while (0)

/* A mount namespace of this test process alone, with no propagation to
 * the host's: whatever we mount vanishes when the process ends, crash or
 * not, and nobody else ever sees it. */
static bool private_mounts(char *why, size_t n)
{
	if (geteuid() != 0) {
		snprintf(why, n, "needs root to mount a small filesystem");
		return false;
	}
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		snprintf(why, n, "cannot make a private mount namespace: %s", strerror(errno));
		return false;
	}
	return true;
}

/* A FS_BYTES ext4 image on a loop device at mnt. fallocate = false makes
 * it without extents (and so without 64bit, which needs them): ext4 then
 * answers fallocate with EOPNOTSUPP, like ext2/ext3-format volumes. */
static bool mount_ext4(bool fallocate, char *why, size_t n)
{
	char cmd[512];
	int fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", img, strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)FS_BYTES), 0);
	close(fd);
	/* -m 0: no blocks reserved for root, so "full" means full for us too */
	snprintf(cmd, sizeof(cmd),
		 "mkfs.ext4 -q -F -m 0 -b 4096 %s '%s' >/dev/null 2>&1 && "
		 "mount -o loop '%s' '%s' >/dev/null 2>&1",
		 fallocate ? "" : "-O ^extents,^64bit", img, img, mnt);
	if (system(cmd) != 0) {
		snprintf(why, n, "cannot make a loop-mounted ext4 (mkfs.ext4, mount -o loop)");
		unlink(img);
		return false;
	}
	mounted = true;
	return true;
}

static bool mount_tmpfs(char *why, size_t n)
{
	char opts[64];
	snprintf(opts, sizeof(opts), "size=%llu", (unsigned long long)FS_BYTES);
	if (mount("tmpfs", mnt, "tmpfs", 0, opts) != 0) {
		snprintf(why, n, "cannot mount a tmpfs: %s", strerror(errno));
		return false;
	}
	mounted = true;
	return true;
}

static uint64_t fs_avail(void)
{
	struct statvfs v;
	cr_assert_eq(statvfs(mnt, &v), 0);
	return (uint64_t)v.f_bavail * v.f_frsize;
}

static uint64_t fs_size(void)
{
	struct statvfs v;
	cr_assert_eq(statvfs(mnt, &v), 0);
	return (uint64_t)v.f_blocks * v.f_frsize;
}

/* What the filesystem says about O_DIRECT, asked directly: the runtime
 * must report the same in tkv_stats.cold_direct_io. */
static bool fs_takes_direct_io(void)
{
	char p[160];
	void *buf = NULL;
	bool ok;
	snprintf(p, sizeof(p), "%s/direct-probe", mnt);
	int fd = open(p, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
	cr_assert_eq(posix_memalign(&buf, 4096, 4096), 0);
	memset(buf, 0, 4096);
	ok = fd >= 0 && pwrite(fd, buf, 4096, 0) == 4096;
	free(buf);
	if (fd >= 0)
		close(fd);
	unlink(p);
	return ok;
}

/* Grows the filler file until at most `leave` bytes are left free; with
 * leave 0, until the filesystem refuses even 4 KiB more: the brim. */
static void fill_filler(uint64_t leave)
{
	static char chunk[1 << 20];
	int fd = open(filler, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0, "%s: %s", filler, strerror(errno));
	memset(chunk, 0x5a, sizeof(chunk));
	for (size_t step = sizeof(chunk); step >= 4096; step /= 16) {
		for (;;) {
			uint64_t avail = fs_avail();
			if (avail <= leave || (leave && avail - leave < step))
				break;
			if (write(fd, chunk, step) != (ssize_t)step)
				break;
			cr_assert_eq(fsync(fd), 0); /* make statvfs count it */
		}
	}
	close(fd);
}

/* ---- the runtime ---------------------------------------------------------- */

static tkv_config fullfs_config(uint64_t cold_bytes)
{
	tkv_config c = cold_runtime_config(cold_dir, cold_bytes);
	/* start evicting at half the hot tier: the cold tier is asked (and
	 * fails) long before the hot tier is full */
	c.hot_high_pct = 50;
	c.hot_low_pct = 25;
	return c;
}

static tkv_stats stats(tkv_runtime *rt)
{
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	return st;
}

static tkv__cold_stats cold_stats(tkv_runtime *rt)
{
	tkv__cold_stats cs;
	tkv__cold_stats_get(rt->ev->cold, &cs);
	return cs;
}

/* A sequence being written: `units` complete units, and `layers` layers of
 * the next one (a store can be refused in the middle of a unit). */
typedef struct seqw {
	uint64_t id, units;
	uint32_t layers;
} seqw;

/* Stores the next layer block of s and waits for it. */
static int put_layer(tkv_runtime *rt, seqw *s)
{
	static unsigned char k[BT * ROW], v[BT * ROW];
	uint64_t p = s->units * BT;
	tkv_ticket t;
	kvp_fill(k, s->id, s->layers, p, BT, ROW, 0);
	kvp_fill(v, s->id, s->layers, p, BT, ROW, 1);
	int rc = tkv_store(rt, s->id, s->layers, p, BT, k, v, 0, &t);
	if (rc)
		return rc;
	/* k and v are refilled for the next store: wait for this one */
	cr_assert_eq(tkv_wait(rt, &t), 0);
	if (++s->layers == LAYERS) {
		s->layers = 0;
		s->units++;
	}
	return 0;
}

/* Completes the next unit of s; 0 or the first store error. */
static int put_unit(tkv_runtime *rt, seqw *s)
{
	uint64_t u = s->units;
	while (s->units == u) {
		int rc = put_layer(rt, s);
		if (rc)
			return rc;
	}
	return 0;
}

/* Once space is back, eviction resumes, but not necessarily by the very
 * next store: a store that finds the hot tier full waits only a bounded
 * time for the evictor (which backs off after failed writes), then says
 * -ENOSPC without storing anything. So retry, a bounded number of times. */
static void put_unit_eventually(tkv_runtime *rt, seqw *s)
{
	int rc, tries = 0;
	while ((rc = put_unit(rt, s)) == -ENOSPC && ++tries < 500)
		usleep(10 * 1000);
	cr_assert_eq(rc, 0, "seq %llu unit %llu: %s (%s)", (unsigned long long)s->id,
		     (unsigned long long)s->units, tkv_strerror(rc), tkv_last_error());
}

/* Reads one layer block back and compares it with the pattern. A cold
 * block is promoted first, which needs a free hot block: with the hot tier
 * full and nothing evictable the read says -ENOSPC, and returns no data;
 * `retry` waits that out. Any other error, or wrong bytes, fails. */
static int check_block(tkv_runtime *rt, uint64_t id, uint32_t l, uint64_t unit, bool retry)
{
	unsigned char k[BT * ROW], v[BT * ROW], scratch[ROW];
	int rc, tries = 0;
	while ((rc = tkv_read(rt, id, l, unit * BT, BT, k, v)) == -ENOSPC && retry && ++tries < 500)
		usleep(10 * 1000);
	if (rc == -ENOSPC && !retry)
		return rc;
	cr_assert_eq(rc, 0, "seq %llu layer %u unit %llu: %s (%s)", (unsigned long long)id, l,
		     (unsigned long long)unit, tkv_strerror(rc), tkv_last_error());
	cr_assert_eq(kvp_check(k, id, l, unit * BT, BT, ROW, 0, scratch), -1,
		     "seq %llu layer %u unit %llu: wrong K", (unsigned long long)id, l,
		     (unsigned long long)unit);
	cr_assert_eq(kvp_check(v, id, l, unit * BT, BT, ROW, 1, scratch), -1,
		     "seq %llu layer %u unit %llu: wrong V", (unsigned long long)id, l,
		     (unsigned long long)unit);
	return 0;
}

/* Everything acknowledged for s, the partial unit's layers included. */
static void check_all(tkv_runtime *rt, const seqw *s)
{
	for (uint64_t u = 0; u <= s->units; u++)
		for (uint32_t l = 0; l < (u < s->units ? LAYERS : s->layers); l++)
			check_block(rt, s->id, l, u, true);
}

/* Stores units round-robin into a and b until a store is refused, which
 * must be -ENOSPC, and only with the hot tier full. Returns the stats
 * taken right after the refusal. */
static tkv_stats fill_until_refused(tkv_runtime *rt, seqw *a, seqw *b)
{
	for (int i = 0; i < MAX_UNITS; i++) {
		seqw *s = i % 2 ? b : a;
		tkv_stats before = stats(rt);
		int rc = put_unit(rt, s);
		if (rc == 0)
			continue;
		tkv_stats after = stats(rt);
		cr_assert_eq(rc, -ENOSPC, "%s (%s)", tkv_strerror(rc), tkv_last_error());
		/* The hot tier was full when the store gave up, unless a record
		 * write happened to succeed meanwhile and freed a unit (then the
		 * refusal raced with it, which is allowed). */
		cr_assert(after.hot_bytes_used == after.hot_bytes_capacity ||
				  after.evicted_blocks != before.evicted_blocks,
			  "-ENOSPC with %llu of %llu hot bytes used",
			  (unsigned long long)after.hot_bytes_used,
			  (unsigned long long)after.hot_bytes_capacity);
		cr_assert_gt(after.enospc_events, before.enospc_events);
		return after;
	}
	cr_assert_fail("%d units stored and never refused: the disk never filled", MAX_UNITS);
	return stats(rt);
}

/* A sequence whose first PIN_UNITS units stay hot: a view pins layer 0 of
 * each, and a unit with a pinned layer is never evicted. Closing it later
 * frees hot blocks without freeing any disk space. */
static void pin_open(tkv_runtime *rt, seqw *s, tkv_view *vw, tkv_view_block *blocks)
{
	cr_assert_eq(tkv_seq_open(rt, s->id), 0);
	for (int u = 0; u < PIN_UNITS; u++)
		cr_assert_eq(put_unit(rt, s), 0, "%s", tkv_last_error());
	*vw = (tkv_view){.struct_size = sizeof(*vw), .blocks = blocks, .max_blocks = PIN_UNITS};
	cr_assert_eq(tkv_view_acquire(rt, s->id, 0, 0, PIN_UNITS * BT, vw), 0, "%s",
		     tkv_last_error());
}

/* With the disk still full: close the pinned sequence, and the hot blocks
 * it held take exactly as many layer stores (no SSD involved), then the
 * next one is refused. Counted in blocks, not units: the store refused
 * before may have left a unit half stored. */
static void hot_room_while_disk_full(tkv_runtime *rt, seqw *pin, tkv_view *vw, seqw *a)
{
	unsigned char scratch[ROW];
	for (uint32_t i = 0; i < vw->n_blocks; i++) /* the pinned data was never touched */
		cr_assert_eq(kvp_check(vw->blocks[i].k, pin->id, 0, vw->blocks[i].first_pos, BT, ROW,
				       0, scratch), -1);
	cr_assert_eq(tkv__cold_list_seq(rt->ev->cold, pin->id, NULL, 0), 0,
		     "a unit with a pinned layer was evicted");
	cr_assert_eq(tkv_view_release(rt, vw), 0);
	cr_assert_eq(tkv_seq_close(rt, pin->id), 0, "%s", tkv_last_error());
	for (int i = 0; i < PIN_UNITS * LAYERS; i++) {
		int rc = put_layer(rt, a);
		cr_assert_eq(rc, 0, "store %d into the freed hot room: %s (%s)", i, tkv_strerror(rc),
			     tkv_last_error());
	}
	tkv_stats st = stats(rt);
	cr_assert_eq(st.hot_bytes_used, st.hot_bytes_capacity);
	cr_assert_eq(put_layer(rt, a), -ENOSPC, "hot tier full and disk full");
}

TestSuite(cold_fullfs, .init = setup, .fini = teardown, .timeout = 300);

/* ---- preallocated segments ------------------------------------------------ */

Test(cold_fullfs, preallocated_tier_on_a_full_disk)
{
	char why[160] = "";
	bool ext4;
	if (!private_mounts(why, sizeof(why)))
		skip_test("%s", why);
	ext4 = mount_ext4(true, why, sizeof(why));
	if (!ext4) {
		char why2[96];
		if (!mount_tmpfs(why2, sizeof(why2)))
			skip_test("no small filesystem to fill: %s; %s", why, why2);
	}
	const char *fs = ext4 ? "ext4" : "tmpfs";
	bool direct = fs_takes_direct_io();

	/* A tier larger than the whole filesystem cannot be preallocated:
	 * refused at open, with the reason, and nothing left behind. */
	uint64_t avail0 = fs_avail();
	tkv_config c = fullfs_config(2 * fs_size());
	tkv_runtime *rt = (tkv_runtime *)(uintptr_t)1; /* must come back NULL */
	cr_assert_eq(tkv_open(&c, &rt), -ENOSPC, "%s", fs);
	cr_assert_null(rt);
	cr_assert(strstr(tkv_last_error(), "capacity_bytes"), "%s", tkv_last_error());
	char seg[192];
	snprintf(seg, sizeof(seg), "%s/seg-00000", cold_dir);
	cr_assert_neq(access(seg, F_OK), 0, "%s: a refused open left its segments", fs);
	cr_assert_geq(fs_avail() + 64 * 1024, avail0, "%s: space not given back", fs);

	/* A quarter of it fits; then another file takes every last block. */
	c = fullfs_config(fs_size() / 4);
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s: %s", fs, tkv_last_error());
	tkv_stats st = stats(rt);
	tkv__cold_stats cs = cold_stats(rt);
	cr_assert(cs.preallocated, "%s: %s", fs, cs.fs_note);
	cr_assert_eq(st.cold_direct_io, direct, "%s: O_DIRECT %s by the fs, runtime says %d (%s)",
		     fs, direct ? "taken" : "refused", st.cold_direct_io, cs.fs_note);
	fill_filler(0);
	cr_assert_lt(fs_avail(), 4096, "%s: the disk should be full", fs);
	uint64_t slots = st.cold_bytes_capacity / cs.record_bytes;

	seqw a = {1, 0, 0}, b = {2, 0, 0}, pin = {3, 0, 0};
	tkv_view vw;
	tkv_view_block pinned[PIN_UNITS];
	cr_assert_eq(tkv_seq_open(rt, a.id), 0);
	cr_assert_eq(tkv_seq_open(rt, b.id), 0);
	pin_open(rt, &pin, &vw, pinned);
	st = fill_until_refused(rt, &a, &b);
	/* the full disk never failed a record write: every slot was filled */
	cr_assert_eq(st.evicted_blocks, slots, "%s", fs);
	cr_assert_eq(st.cold_bytes_used, st.cold_bytes_capacity);
	cr_assert_eq(st.io_errors_eio, 0);
	cr_assert_eq(st.io_errors_short, 0);
	/* ... and then the slots ran out, which is counted */
	cr_assert_gt(st.io_errors_enospc, 0, "%s", fs);
	cr_log_info("%s, preallocated: %llu records written on a full disk, %llu refused writes "
		    "counted, %llu units stored", fs, (unsigned long long)st.evicted_blocks,
		    (unsigned long long)st.io_errors_enospc, (unsigned long long)(a.units + b.units));
	/* the newest unit is hot; an evicted one reads back or, the hot tier
	 * being full with nothing evictable, says -ENOSPC: never wrong data */
	check_block(rt, a.id, 0, a.units - 1, false);
	check_block(rt, a.id, LAYERS - 1, 0, false);

	hot_room_while_disk_full(rt, &pin, &vw, &a);

	/* Closing a sequence frees its slots: eviction resumes. */
	uint64_t evicted = stats(rt).evicted_blocks;
	cr_assert_eq(tkv_seq_close(rt, b.id), 0, "%s", tkv_last_error());
	for (int u = 0; u < 2 * HOT_UNITS; u++)
		put_unit_eventually(rt, &a);
	cr_assert_gt(stats(rt).evicted_blocks, evicted);
	check_all(rt, &a);
	st = stats(rt);
	cr_assert_eq(st.corrupt_records, 0);
	cr_assert_eq(st.io_errors_eio + st.io_errors_short, 0);
	tkv_close(rt);
}

/* ---- sparse segments: the device itself says ENOSPC ------------------------ */

Test(cold_fullfs, sparse_tier_fills_the_disk)
{
	char why[160] = "";
	if (!private_mounts(why, sizeof(why)))
		skip_test("%s", why);
	if (!mount_ext4(false, why, sizeof(why)))
		skip_test("%s (a filesystem without fallocate is needed)", why);
	bool direct = fs_takes_direct_io();

	/* The tier is larger than the filesystem: with no fallocate it opens
	 * anyway, with sparse segments, and the disk fills before it does. */
	tkv_config c = fullfs_config(FS_BYTES + FS_BYTES / 2);
	tkv_runtime *rt = NULL;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	tkv_stats st = stats(rt);
	tkv__cold_stats cs = cold_stats(rt);
	cr_assert_not(cs.preallocated, "ext4 without extents has no fallocate");
	cr_assert(strstr(cs.fs_note, "fallocate"), "%s", cs.fs_note);
	cr_assert_eq(st.cold_direct_io, direct, "O_DIRECT %s by the fs, runtime says %d (%s)",
		     direct ? "taken" : "refused", st.cold_direct_io, cs.fs_note);
	cr_assert_gt(st.cold_bytes_capacity, fs_size());
	/* leave room for a few dozen records, so the first fill is quick */
	fill_filler(40 * cs.record_bytes);

	seqw a = {1, 0, 0}, b = {2, 0, 0}, pin = {3, 0, 0};
	tkv_view vw;
	tkv_view_block pinned[PIN_UNITS];
	cr_assert_eq(tkv_seq_open(rt, a.id), 0);
	cr_assert_eq(tkv_seq_open(rt, b.id), 0);
	pin_open(rt, &pin, &vw, pinned);
	st = fill_until_refused(rt, &a, &b);
	cr_assert_gt(st.evicted_blocks, 0, "records were written until the disk filled");
	cr_assert_lt(fs_avail(), FULL_SLACK(cs.record_bytes), "the disk is full");
	cr_assert_lt(st.cold_bytes_used, st.cold_bytes_capacity, "the tier itself is not");
	/* a write the device refused for space is counted as such (one that
	 * got part of the record down first counts as short) */
	cr_assert_gt(st.io_errors_enospc, 0);
	cr_assert_eq(st.io_errors_eio, 0);
	cr_log_info("sparse: disk full after %llu records; %llu ENOSPC and %llu short writes "
		    "counted; %llu units stored", (unsigned long long)st.evicted_blocks,
		    (unsigned long long)st.io_errors_enospc, (unsigned long long)st.io_errors_short,
		    (unsigned long long)(a.units + b.units));
	check_block(rt, a.id, 0, a.units - 1, false);
	check_block(rt, a.id, LAYERS - 1, 0, false);

	hot_room_while_disk_full(rt, &pin, &vw, &a);

	/* Space comes back when the other file goes: eviction resumes. */
	uint64_t evicted = stats(rt).evicted_blocks;
	cr_assert_eq(unlink(filler), 0);
	/* ext4 hands freed blocks out again only once the journal committed
	 * the unlink (every 5 s by default): commit it now */
	int mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(mfd, 0);
	cr_assert_eq(syncfs(mfd), 0);
	close(mfd);
	for (int u = 0; u < 2 * HOT_UNITS; u++)
		put_unit_eventually(rt, &a);
	cr_assert_gt(stats(rt).evicted_blocks, evicted);
	check_all(rt, &a);
	check_all(rt, &b);

	/* Now the tier alone fills the disk to the brim ... */
	uint64_t errors = stats(rt).io_errors_enospc + stats(rt).io_errors_short;
	st = fill_until_refused(rt, &a, &b);
	cr_assert_lt(fs_avail(), FULL_SLACK(cs.record_bytes), "the disk is full again");
	cr_assert_lt(st.cold_bytes_used, st.cold_bytes_capacity);
	cr_assert_gt(st.io_errors_enospc + st.io_errors_short, errors);
	cr_log_info("sparse: disk full again after %llu records",
		    (unsigned long long)st.evicted_blocks);

	/* ... and closing a sequence gives its records' space back. */
	evicted = st.evicted_blocks;
	cr_assert_eq(tkv_seq_close(rt, b.id), 0, "%s", tkv_last_error());
	for (int u = 0; u < 2 * HOT_UNITS; u++)
		put_unit_eventually(rt, &a);
	cr_assert_gt(stats(rt).evicted_blocks, evicted);
	check_all(rt, &a);
	st = stats(rt);
	cr_assert_eq(st.corrupt_records, 0);
	cr_assert_eq(st.io_errors_eio, 0);
	tkv_close(rt);
}
