/*
 * cold_segments.h - the cold directory: its lock, its manifest, its
 * preallocated segment files, and the slot allocator over them.
 *
 * Directory layout:
 *   lock          flock()ed exclusively while a runtime has the directory
 *                 open, so two runtimes cannot interleave records; holds the
 *                 owner's pid for the error message
 *   manifest      geometry + layout + store id, CRC32C'd, replaced atomically
 *                 (write temp, fsync, rename, fsync dir). Opening with another
 *                 geometry fails with -EMEDIUMTYPE instead of reading garbage
 *   seg-NNNNN     n_segs files of slots_per_seg * record_bytes each (the last
 *                 may hold fewer slots), preallocated with fallocate so a write
 *                 into a slot never needs new space: a full filesystem cannot
 *                 fail a record write that the allocator accepted
 *
 * Why a slot bitmap and not a general extent allocator: every record of a
 * store has the same size (the geometry fixes it), so the space is an array
 * of equal slots; a bitmap cannot fragment, costs one bit per record (3 KiB
 * for 100 GiB of 4 MiB records), allocates in O(1) amortised with a next-fit
 * cursor, and is rebuilt at recovery from the headers themselves.
 *
 * Allocation order: fill the current segment (next-fit from its cursor)
 * before moving to the next one with free slots. A batch of writes then
 * usually touches one segment, so a batch costs one fdatasync, and the
 * device sees writes that are sequential within a segment.
 *
 * Thread safety: the allocator (alloc/free/mark) is used only by the writer
 * thread, or by open/recovery before any other thread sees the store; the
 * used-slot counter is an atomic any thread may read.
 */
#ifndef TKV_TIERS_COLD_SEGMENTS_H
#define TKV_TIERS_COLD_SEGMENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "tiers/cold_io.h"
#include "tiers/cold_record.h"

#define TKV__COLD_SEG_DEFAULT (256ull << 20)

typedef struct tkv__cold_seg {
	int fd;
	uint32_t n_slots;
	uint32_t n_free;
	uint32_t cursor;   /* next-fit start */
	bool dirty;        /* written since its last fdatasync (writer only) */
	int sync_err;      /* result of its last batch fdatasync (writer only) */
	uint64_t *bitmap;  /* 1 = in use */
} tkv__cold_seg;

typedef struct tkv__cold_segs {
	char *dir;
	int lock_fd;
	uint64_t store_id;
	uint32_t n_segs, slots_per_seg;
	uint64_t total_slots;
	uint64_t used_slots; /* atomic (ck_pr); written by the writer only */
	uint32_t cur;        /* segment allocations come from first */
	bool fresh;          /* created by this open (nothing to recover) */
	bool direct;         /* segments opened with O_DIRECT */
	bool prealloc;       /* fallocate worked (else sparse files) */
	char note[160];      /* why not direct / not preallocated, or "" */
	tkv__cold_seg *seg;
} tkv__cold_segs;

/*
 * Opens (creating if needed) the directory `dir` for layout `l` with at most
 * capacity_bytes of segments of about seg_bytes each (0: 256 MiB). Errors,
 * each with a message: -EINVAL (capacity below one record, or a layout other
 * than the directory's), -EBUSY (another runtime holds the lock),
 * -EMEDIUMTYPE (the manifest has another geometry), -TKV_ECORRUPT (manifest
 * unreadable), -ENOSPC (the filesystem cannot hold the preallocated
 * segments; files created by this call are removed), other -errno from the
 * filesystem.
 */
int tkv__cold_segs_open(tkv__cold_segs *s, const char *dir, const tkv__cold_layout *l,
			uint64_t capacity_bytes, uint64_t seg_bytes, const tkv__cold_io *hooks,
			tkv__crc_fn crc);
/* Closes the files and releases the lock. */
void tkv__cold_segs_close(tkv__cold_segs *s);

/* A free slot, marked used: 0 or -ENOSPC. Writer only. */
int tkv__cold_segs_alloc(tkv__cold_segs *s, uint32_t *seg, uint32_t *slot);
/* Returns a slot. Writer only. */
void tkv__cold_segs_free(tkv__cold_segs *s, uint32_t seg, uint32_t slot);
/* Marks a slot used (recovery). */
void tkv__cold_segs_mark(tkv__cold_segs *s, uint32_t seg, uint32_t slot);
/* true if the slot is in use. */
bool tkv__cold_segs_used(const tkv__cold_segs *s, uint32_t seg, uint32_t slot);

#endif
