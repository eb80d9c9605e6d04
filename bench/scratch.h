/*
 * scratch.h - the scratch directory a disk scenario writes into: where it
 * goes, what filesystem it is on, and that it is gone afterwards, even when
 * the run before this one was killed.
 *
 * A scratch directory is a mkdtemp'd `<prefix>-XXXXXX` under --dir, else
 * under the first of /var/tmp, . and /tmp that is writable and not a RAM
 * filesystem (a cold tier on tmpfs measures memory, not a disk). It holds an
 * `owner` file naming the process that made it (pid and start time), so a
 * later run can tell a directory whose run died (SIGKILL, a crash: nothing
 * cleaned up) from one whose run is still going. Before making its own,
 * bench_scratch_make removes the dead ones under the same parent and reports
 * the others: an evict run's leftovers are up to ~2.3 GiB, and the next run would
 * otherwise just see less free space and shrink its working set.
 */
#ifndef TKV_BENCH_SCRATCH_H
#define TKV_BENCH_SCRATCH_H

#include <stdbool.h>
#include <stddef.h>

/* Makes the scratch directory (path in out[len]) and sets *fs_type to its
 * statfs f_type; messages on stderr name `who`. 0 or a negative errno. */
int bench_scratch_make(const char *who, const char *dir, const char *prefix, char *out,
		       size_t len, long *fs_type);

/* Removes a directory tree (scratch directories, cold directories in them);
 * what cannot be removed is named on stderr. */
void bench_scratch_remove(const char *path);

/* "ext2/3/4", "xfs", "tmpfs", ... or "unknown", for a statfs f_type. */
const char *bench_fs_name(long type);
bool bench_fs_is_ram(long type);

#endif
