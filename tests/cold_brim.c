/* cold_brim.c - the cold tier storage layer on a real, small filesystem
 * filled to the brim (a loop-mounted ext4 image, and a size-limited tmpfs):
 * a tier larger than the filesystem is refused at open with nothing left
 * behind; a tier that fits keeps every record it preallocated while another
 * file fills the disk, then says ENOSPC; and it all comes back after a
 * reopen. Needs root (mount, loop devices): a system test, skipped with the
 * reason otherwise. The runtime on a full disk: cold_fullfs.c. */
#include "cold_helpers.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#define LAYERS 4

static char *dir;
static void setup(void) { dir = cold_tmpdir(); }
static void teardown(void) { cold_rmdir(dir); dir = NULL; }
TestSuite(cold_brim, .init = setup, .fini = teardown, .timeout = 120);


static bool try_mount_ext4(const char *img, const char *mnt, char *why, size_t n)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd),
		 "truncate -s 24M %s && mkfs.ext4 -q -F -m 0 %s >/dev/null 2>&1 && "
		 "mount -o loop %s %s 2>/dev/null", img, img, img, mnt);
	if (system(cmd) == 0)
		return true;
	snprintf(why, n, "cannot make a loop-mounted ext4 (needs root, mkfs.ext4, loop devices)");
	return false;
}

static void fill_fs(const char *mnt)
{
	char p[512];
	static char chunk[64 * 1024];
	int fd;
	snprintf(p, sizeof(p), "%s/filler", mnt);
	cr_assert_geq(fd = open(p, O_WRONLY | O_CREAT, 0644), 0);
	memset(chunk, 0x3c, sizeof(chunk));
	while (write(fd, chunk, sizeof(chunk)) > 0)
		;
	while (write(fd, chunk, 512) > 0) /* the last crumbs */
		;
	fsync(fd);
	close(fd);
}

static void brim_test(const char *mnt, const char *what)
{
	struct statvfs vfs;
	tkv__cold_config cfg;
	tkv__cold *c;
	tkv__cold_stats st;
	char sub[512];
	uint64_t free_b, n_rec;
	snprintf(sub, sizeof(sub), "%s/cold", mnt);
	cr_assert_eq(statvfs(mnt, &vfs), 0);
	free_b = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	/* more than the filesystem holds: a clean -ENOSPC, nothing left behind */
	cold_small_cfg(&cfg, sub, free_b / (4096 + 4 * 16384) + 8);
	cr_assert_eq(tkv__cold_open(&cfg, &c), -ENOSPC, "%s", what);
	cr_assert(strstr(tkv_last_error(), "no space"), "%s", tkv_last_error());
	snprintf(sub, sizeof(sub), "%s/cold/seg-00000", mnt);
	cr_assert_neq(access(sub, F_OK), 0, "failed open must remove its segments");
	snprintf(sub, sizeof(sub), "%s/cold", mnt);
	/* half of it, then the rest of the filesystem filled by someone else */
	n_rec = free_b / 2 / (4096 + 4 * 16384);
	cold_small_cfg(&cfg, sub, n_rec);
	cr_assert_eq(tkv__cold_open(&cfg, &c), 0, "%s: %s", what, tkv_last_error());
	fill_fs(mnt);
	cr_assert_eq(statvfs(mnt, &vfs), 0);
	cr_assert_lt((uint64_t)vfs.f_bavail * vfs.f_frsize, 64 * 1024, "fs should be full");
	/* preallocated segments: every record still fits, then ENOSPC, no crash */
	void *buf = tkv__cold_buf_alloc(c);
	for (uint64_t k = 0; k < n_rec; k++) {
		cold_fill(c, buf, LAYERS, 1, k, 0);
		cr_assert_eq(cold_write_sync(c, 1, k, 16, buf), 0, "%s: record %lu", what, k);
	}
	cr_assert_eq(cold_write_sync(c, 1, n_rec, 16, buf), -ENOSPC);
	tkv__cold_stats_get(c, &st);
	cr_assert(st.preallocated, "%s", st.fs_note);
	tkv__cold_close(c);
	/* and it all comes back */
	cr_assert_eq(tkv__cold_open(&cfg, &c), 0, "%s: %s", what, tkv_last_error());
	tkv__cold_stats_get(c, &st);
	cr_assert_eq(st.recovered, n_rec);
	unsigned char *dst = aligned_alloc(4096, tkv__cold_block_bytes(c));
	cr_assert_eq(tkv__cold_read_layer(c, 1, n_rec - 1, 3, dst, NULL), 0);
	cr_assert(cold_layer_is(c, dst, 1, n_rec - 1, 3, 0));
	free(dst);
	tkv__cold_buf_free(c, buf);
	tkv__cold_close(c);
}

Test(cold_brim, small_ext4_filled_to_the_brim)
{
	char mnt[512], img[512], why[160];
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	snprintf(img, sizeof(img), "%s.img", dir);
	cr_assert_eq(mkdir(mnt, 0755), 0);
	if (!try_mount_ext4(img, mnt, why, sizeof(why))) {
		unlink(img);
		rmdir(mnt);
		cr_skip_test("%s", why);
	}
	brim_test(mnt, "ext4");
	cr_assert_eq(umount2(mnt, MNT_DETACH), 0);
	unlink(img);
	rmdir(mnt);
}

Test(cold_brim, small_tmpfs_filled_to_the_brim)
{
	char mnt[512];
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	cr_assert_eq(mkdir(mnt, 0755), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m") != 0) {
		int e = errno;
		rmdir(mnt);
		cr_skip_test("cannot mount a tmpfs here (%s): needs root/CAP_SYS_ADMIN", strerror(e));
	}
	brim_test(mnt, "tmpfs");
	cr_assert_eq(umount2(mnt, MNT_DETACH), 0);
	rmdir(mnt);
}
