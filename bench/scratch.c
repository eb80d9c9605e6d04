/*
 * scratch.c - scratch directories of the disk scenarios (scratch.h).
 */
#define _GNU_SOURCE
#include "bench/scratch.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define TMPFS_MAGIC_ 0x01021994ul
#define RAMFS_MAGIC_ 0x858458F6ul

const char *bench_fs_name(long type)
{
	static const struct {
		unsigned long magic;
		const char *name;
	} fs[] = {
		{0xEF53, "ext2/3/4"},       {0x58465342, "xfs"},   {0x9123683E, "btrfs"},
		{TMPFS_MAGIC_, "tmpfs"},    {RAMFS_MAGIC_, "ramfs"}, {0x794C7630, "overlayfs"},
		{0x6969, "nfs"},            {0xF2F52010, "f2fs"},  {0x2FC12FC1, "zfs"},
		{0x65735546, "fuse"},       {0x73717368, "squashfs"},
	};
	for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++)
		if ((unsigned long)type == fs[i].magic)
			return fs[i].name;
	return "unknown";
}

bool bench_fs_is_ram(long type)
{
	return (unsigned long)type == TMPFS_MAGIC_ || (unsigned long)type == RAMFS_MAGIC_;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) && errno != ENOENT)
		fprintf(stderr, "tierkv-bench: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

void bench_scratch_remove(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- owners: which run a directory belongs to, and whether it still runs -- */

/* Start time of a process (field 22 of /proc/PID/stat, clock ticks since
 * boot): with the pid it names one process, even after the pid is reused.
 * 0 if there is no such process. */
static unsigned long long proc_start(long pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	unsigned long long start = 0;
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p)
		start = strtoull(p + 1, NULL, 10);
	return start;
}

static void write_owner(const char *root)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/owner", root);
	FILE *f = fopen(path, "w");
	if (!f)
		return; /* only the leftover check loses: it will report, not remove */
	fprintf(f, "%ld %llu\n", (long)getpid(), proc_start((long)getpid()));
	fclose(f);
}

typedef enum { OWNER_UNKNOWN, OWNER_ALIVE, OWNER_DEAD } owner_state;

static owner_state owner_of(const char *root, long *pid)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/owner", root);
	FILE *f = fopen(path, "r");
	unsigned long long start = 0;
	*pid = 0;
	if (!f)
		return OWNER_UNKNOWN;
	int got = fscanf(f, "%ld %llu", pid, &start);
	fclose(f);
	if (got != 2 || *pid <= 0)
		return OWNER_UNKNOWN;
	unsigned long long now = proc_start(*pid);
	return now && now == start ? OWNER_ALIVE : OWNER_DEAD;
}

static uint64_t du_bytes;

static int du_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)flag;
	(void)ftw;
	du_bytes += (uint64_t)st->st_blocks * 512;
	return 0;
}

static uint64_t disk_usage(const char *path)
{
	du_bytes = 0;
	nftw(path, du_entry, 16, FTW_PHYS);
	return du_bytes;
}

/* Removes the scratch directories of dead runs under parent; names the ones
 * it cannot judge (no owner file: made by a bench from before owner files,
 * or whose run is still going) or that belong to a live run. */
static void sweep_leftovers(const char *who, const char *parent, const char *prefix)
{
	DIR *d = opendir(parent);
	if (!d)
		return;
	size_t plen = strlen(prefix);
	for (struct dirent *e; (e = readdir(d));) {
		if (strncmp(e->d_name, prefix, plen) || e->d_name[plen] != '-' ||
		    strlen(e->d_name + plen + 1) != 6)
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", parent, e->d_name);
		long pid;
		owner_state o = owner_of(path, &pid);
		unsigned long long mib = disk_usage(path) >> 20;
		if (o == OWNER_DEAD) {
			bench_scratch_remove(path);
			fprintf(stderr, "%s: removed %s (%llu MiB), left by a run (pid %ld) that did "
					"not finish\n", who, path, mib, pid);
		} else if (o == OWNER_ALIVE) {
			fprintf(stderr, "%s: %s (%llu MiB) belongs to a run still going (pid %ld); "
					"it counts against the free space\n", who, path, mib, pid);
		} else {
			fprintf(stderr, "%s: %s (%llu MiB) has no owner file (an older bench, "
					"maybe still running?); remove it if no run is using it\n",
				who, path, mib);
		}
	}
	closedir(d);
}

/* The parent of the scratch directory: dir if given, else the first of
 * /var/tmp, . and /tmp that is writable and on a disk. */
static const char *pick_parent(const char *who, const char *dir)
{
	static const char *const cands[] = {"/var/tmp", ".", "/tmp"};
	struct statfs sf;
	if (dir)
		return dir;
	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (statfs(cands[i], &sf) == 0 && !bench_fs_is_ram((long)sf.f_type) &&
		    access(cands[i], W_OK) == 0)
			return cands[i];
	fprintf(stderr, "%s: no disk filesystem found among /var/tmp, . and /tmp; using "
			"/var/tmp (--dir to choose)\n", who);
	return "/var/tmp";
}

int bench_scratch_make(const char *who, const char *dir, const char *prefix, char *out,
		       size_t len, long *fs_type)
{
	const char *use = pick_parent(who, dir);
	sweep_leftovers(who, use, prefix);
	snprintf(out, len, "%s/%s-XXXXXX", use, prefix);
	if (!mkdtemp(out)) {
		int e = errno;
		fprintf(stderr, "%s: cannot create a directory under %s: %s\n", who, use,
			strerror(e));
		return -e;
	}
	write_owner(out);
	struct statfs sf;
	*fs_type = statfs(out, &sf) == 0 ? (long)sf.f_type : 0;
	return 0;
}
