/*
 * cold.h - the cold tier's storage layer: records of whole blocks (all
 * layers of B tokens of one sequence) on local SSD, written asynchronously
 * and durably, read back one layer or one record at a time, verified, and
 * recovered after a restart. The evictor, the policies and the runtime glue
 * sit on top of this interface.
 *
 * Pieces (one job per file):
 *   cold_record.[ch]    record format: header, per-layer CRC table, sealing
 *                       and checking (the format is documented there)
 *   cold_segments.[ch]  directory lock, manifest (geometry), preallocated
 *                       segment files, slot bitmap allocator
 *   cold_index.[ch]     (seq, block) -> slot + layer CRCs; pins for readers
 *   cold_io.[ch]        io_uring / pwrite backends and the fault seam
 *   cold_write.c        write pipeline: submit, batch fdatasync, completions
 *   cold_read.c         synchronous and asynchronous verified reads
 *   cold_recovery.c     rebuilding the index from record headers at open
 *   cold.c              open/close, buffers, remove, lookup, stats
 *
 * Threads. One writer thread (the evictor) calls write_submit/write_reap;
 * one prefetch thread (it may be another) calls read_submit/read_flush/
 * read_reap/read_reap_io; every other function (read_finish included) may
 * be called from any thread at any time.
 * No lock is held across I/O: a read pins its index entry, so the slot
 * cannot be reused under it, and performs the I/O with no lock held.
 *
 * Durability. A write's completion reports status 0 only after the record
 * was written AND fdatasync'ed (TKV__COLD_DURABLE_BATCH: the writes that
 * completed since the last sync form a batch, which gets one fdatasync per
 * segment it touched; a batch closes when no write is in flight or when
 * sync_batch writes are waiting). Only then does the record become visible
 * to lookups and reads. TKV__COLD_DURABLE_NONE skips the fdatasync (benches
 * only; the stats say so).
 *
 * Removal. remove/remove_seq make records invisible at once. The slot is
 * reused only after (a) the last reader's pin is gone and (b) the writer
 * thread has overwritten the record's header with zeros, which happens at
 * its next write_submit/write_reap (or close) and is made durable by the
 * next sync batch. So a removed record does not come back after a restart,
 * except if the crash hits before that sync.
 *
 * Errors are negative errno values; the calls that fail for a reason a
 * person should read (open, bad arguments) leave a message in
 * tkv_last_error().
 */
#ifndef TKV_TIERS_COLD_H
#define TKV_TIERS_COLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierkv.h"
#include "tiers/cold_index.h"
#include "tiers/cold_io.h"

typedef struct tkv__cold tkv__cold;

enum {
	TKV__COLD_DURABLE_BATCH = 0, /* default: fdatasync per batch */
	TKV__COLD_DURABLE_NONE = 1,  /* no fdatasync: benches only */
};

/* read_submit: read every layer of the record (into a buf_alloc buffer). */
#define TKV__COLD_ALL_LAYERS UINT32_MAX

typedef struct tkv__cold_config {
	const char *dir;         /* created if missing (one level) */
	uint64_t capacity_bytes; /* total size of the segment files; >= one record */
	uint64_t segment_bytes;  /* per segment file; 0: 256 MiB (fewer when capacity is smaller) */
	uint32_t n_layers, n_kv_heads, head_dim, block_tokens;
	tkv_dtype dtype;
	size_t block_bytes;      /* one layer's block (2*B*kv_dim*elem); 0: derive; else must match */
	int durability;          /* TKV__COLD_DURABLE_*; default BATCH */
	unsigned queue_depth;    /* writes submitted and not reaped (in flight, waiting
				  * for their sync, or done); default 32, max 1024. The
				  * writer owns that many staging buffers at most */
	unsigned sync_batch;     /* close a batch at this many written records; 0:
				  * (queue_depth + 1) / 2, so half the queue keeps writing
				  * while a batch syncs. Larger: fewer fdatasyncs, later
				  * durability */
	unsigned read_depth;     /* async reads in flight; default 64, max 4096 */
	bool verify_on_open;     /* recovery also checks every layer CRC (reads everything) */
	bool force_pwrite;       /* do not try io_uring */
	const tkv__cold_io *io;  /* fault seam; NULL: real I/O */
} tkv__cold_config;

/* A finished asynchronous request. */
typedef struct tkv__cold_done {
	void *user;        /* as passed to *_submit */
	int status;        /* 0, or -errno (see the submit functions) */
	uint32_t n_tokens; /* reads: valid tokens in the block */
	uint64_t seqno;    /* writes with status 0: the durable record's seqno */
} tkv__cold_done;

typedef struct tkv__cold_stats {
	/* Writes (durable records only count as written). */
	uint64_t records_written, bytes_written;
	uint64_t write_busy_ns; /* wall time with >= 1 write submitted and not yet
				 * completed: bytes_written / write_busy_ns = bandwidth */
	uint64_t syncs;         /* fdatasync calls */
	uint64_t write_full;    /* writes refused: no free slot (-ENOSPC completion) */
	uint64_t write_cancelled; /* removed while in flight (-ECANCELED) */
	/* Write I/O errors by kind; each failed write counts once. */
	uint64_t write_enospc, write_eio, write_short, write_other;
	/* Reads (verified layers or records handed out). */
	uint64_t reads, bytes_read;
	uint64_t read_ns;       /* sum of read latencies (overlapping reads add up) */
	uint64_t read_eio, read_short, read_other;
	uint64_t corrupt;       /* CRC failures found by reads (record dropped) */
	uint64_t invalidate_errors; /* header-zeroing writes that failed */
	uint64_t retire_dropped;    /* removed records whose slot could not be
				     * queued for reuse (out of memory): the
				     * slot stays taken until a restart */
	/* Recovery at open. */
	uint64_t recovered, recovery_torn, recovery_dups, recovery_stale;
	/* Space. */
	uint64_t records_live;
	uint64_t bytes_used, bytes_capacity; /* slots in use (incl. in flight) x record size */
	uint64_t record_bytes;
	uint32_t writes_in_flight; /* submitted, completion not reaped yet */
	uint32_t reads_in_flight;
	/* Configuration in effect. */
	bool io_uring;          /* write queue uses io_uring (else pwrite) */
	bool direct_io;         /* O_DIRECT (else buffered: the fs refused it) */
	bool preallocated;      /* fallocate worked */
	int durability;
	const char *io_note;    /* "io_uring" or why pwrite; valid until close */
	const char *fs_note;    /* "" or why not O_DIRECT / preallocated */
} tkv__cold_stats;

/* Fills the defaults above (dir, capacity and geometry left 0). */
void tkv__cold_config_default(tkv__cold_config *c);

/*
 * Opens the cold directory: takes its lock, creates or checks the manifest,
 * opens/creates the preallocated segments and, for an existing store,
 * rebuilds the index from the record headers (torn or garbage slots are
 * skipped and freed; for duplicates of a (seq, block) the largest record
 * seqno wins). Errors (message in tkv_last_error()): -EINVAL (a config
 * field; the message names it), -EBUSY (directory used by another runtime),
 * -EMEDIUMTYPE (directory holds another geometry), -TKV_ECORRUPT (manifest
 * damaged), -ENOSPC (filesystem too small for capacity_bytes), -ENOMEM,
 * other -errno from the filesystem.
 */
int tkv__cold_open(const tkv__cold_config *cfg, tkv__cold **out);

/* Waits for writes in flight (their completions are dropped: reap first if
 * you need them) and reads in flight, zeroes the headers of removed records,
 * syncs, closes and unlocks. NULL: no-op. No other call may be running. */
void tkv__cold_close(tkv__cold *c);

/* A staging buffer for one record (record_bytes, 4 KiB aligned, zeroed), or
 * NULL. Any thread. Fill layer l's block_bytes at tkv__cold_layer_ptr(). */
void *tkv__cold_buf_alloc(tkv__cold *c);
void tkv__cold_buf_free(tkv__cold *c, void *buf);
/* A header buffer for tkv__cold_write_submit_layers (the header's bytes,
 * 4 KiB aligned, zeroed), or NULL; free it with tkv__cold_buf_free. */
void *tkv__cold_header_alloc(tkv__cold *c);
/* Layer l's slice inside a staging buffer (4 KiB aligned). */
void *tkv__cold_layer_ptr(const tkv__cold *c, void *buf, uint32_t layer);
/* Sizes: one layer's block and one record. */
size_t tkv__cold_block_bytes(const tkv__cold *c);
size_t tkv__cold_record_bytes(const tkv__cold *c);

/*
 * Writer thread only. Starts writing `buf` (a staging buffer with every
 * layer filled) as the record of (seq, block) with n_tokens valid tokens.
 * Returns 0: exactly one completion carrying `user` will come out of
 * write_reap, and the cold tier owns buf until then (do not touch it).
 * Completion status: 0 (durable and readable), -ENOSPC (no free slot, or
 * the device said ENOSPC), -EIO (I/O error, short write, or fdatasync
 * failed), -ECANCELED (the block was removed while in flight; nothing
 * stored), -ENOMEM. On any non-zero status nothing was stored and the slot
 * is free again: keep the block hot and retry later.
 * Returns without a completion: -EINVAL (n_tokens not in 1..block_tokens,
 * buf NULL or not 4 KiB aligned; message set), -EAGAIN (queue_depth writes
 * are submitted and not reaped: reap first).
 * Writing a (seq, block) that already has a record replaces it once the new
 * one is durable.
 */
int tkv__cold_write_submit(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t n_tokens,
			   void *buf, void *user);

/*
 * Writer thread only. As write_submit, with the layer CRCs (CRC32C of each
 * layer's block_bytes, n_layers of them) already computed by the caller:
 * the hot tier's workers can compute them while they copy a block in
 * (data in cache, in parallel across layers), which takes the checksum off
 * the writer thread (where perf found it a large share of the thread's
 * CPU time; the bandwidth gain is small while the device, not the CPU, is
 * the limit: docs/MEASUREMENTS.md) and covers the block's whole life, hot
 * tier included. A wrong CRC is not detected here: that layer reads back
 * as -TKV_ECORRUPT, never as valid data. layer_crc NULL: computed here.
 */
int tkv__cold_write_submit_crc(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t n_tokens,
			       void *buf, const uint32_t *layer_crc, void *user);

/* What a prefix-cache block's record carries besides its payload
 * (cold_record.h, flags bit 0): its key and its block_tokens token ids. */
typedef struct tkv__cold_ext {
	uint64_t key_hi, key_lo;
	uint64_t parent_hi, parent_lo; /* cold_record.h, "parent" */
	const uint32_t *tokens;        /* block_tokens ids; copied before return */
} tkv__cold_ext;

/* Writer thread only. As write_submit_crc; ext NULL writes a plain record,
 * else a cache block's record with ext's key and tokens. */
int tkv__cold_write_submit_ext(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t n_tokens,
			       void *buf, const uint32_t *layer_crc, const tkv__cold_ext *ext,
			       void *user);

/*
 * Writing a record without staging it. The evictor's blocks already sit in
 * RAM, each in one piece: copying them into a staging buffer only to have
 * the device read them from there cost the evictor thread more than half
 * of its time (perf, `tierkv-bench evict`: the copy 57%, the checksums
 * 28%), which held eviction near 0.6-0.75 of a raw write that reached
 * 3.4-4 GB/s (docs/MEASUREMENTS.md). So the record goes out as one vectored
 * write: the header from a header buffer, then each layer's block where it
 * lives. O_DIRECT needs every piece 4 KiB aligned in address and length,
 * and a block must fill its slice (no padding to write):
 *
 * tkv__cold_direct_geometry: this geometry's blocks can be written in
 * place (block_bytes a multiple of 4 KiB, and few enough layers for one
 * vectored write). Any thread.
 * tkv__cold_direct_ok: and these n_layers blocks are 4 KiB aligned.
 *
 * tkv__cold_write_submit_layers: writer thread only. As write_submit_ext,
 * with `hdr` (tkv__cold_header_alloc) for the header and `layers` (n_layers
 * pointers to block_bytes each) for the payload; layer_crc NULL computes
 * the CRCs from `layers`. The cold tier owns hdr until the completion, and
 * the caller must keep every block's bytes unchanged and in place until
 * then (the device reads them while the write is in flight: a change
 * would be written with the old CRC and read back as -TKV_ECORRUPT). The
 * pointer array itself may be reused at return. -EINVAL (message set) if
 * hdr is not 4 KiB aligned or tkv__cold_direct_ok says no; otherwise as
 * write_submit_ext.
 */
bool tkv__cold_direct_geometry(const tkv__cold *c);
bool tkv__cold_direct_ok(const tkv__cold *c, const void *const *layers);
int tkv__cold_write_submit_layers(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t n_tokens,
				  void *hdr, const void *const *layers, const uint32_t *layer_crc,
				  const tkv__cold_ext *ext, void *user);

/* Any thread. Reads the header of (seq, block)'s record and, if it is a
 * cache block's, its key and token ids (tokens: block_tokens entries).
 * 0, -ENOENT (no record, or not a cache block's), -TKV_ECORRUPT (the header
 * fails its check: the record is removed and counted), -EIO. */
int tkv__cold_read_ext(tkv__cold *c, uint64_t seq, uint64_t block, tkv__cold_ext *ext,
		       uint32_t *tokens);

/* Writer thread only. Moves up to max finished writes to done[] and returns
 * their number (0 if none). With wait, blocks until at least one is
 * available unless no write is outstanding (then returns 0 at once). Also
 * drives the pipeline (batches, fdatasync) and zeroes removed headers: call
 * it regularly even when not waiting for anything. */
int tkv__cold_write_reap(tkv__cold *c, tkv__cold_done *done, int max, bool wait);

/*
 * Any thread. Reads layer `layer` of (seq, block) into dst (block_bytes,
 * any alignment; 4 KiB aligned avoids a bounce copy under O_DIRECT) and
 * verifies its CRC; *n_tokens (may be NULL) gets the block's token count.
 * Reads only that layer. Returns 0, -ENOENT (no such record), -EINVAL
 * (layer out of range, dst NULL), -TKV_ECORRUPT (CRC mismatch: the record is
 * removed from the index and counted; dst holds garbage), -EIO (I/O error
 * or short read; the record stays). On error dst's contents are undefined.
 */
int tkv__cold_read_layer(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t layer, void *dst,
			 uint32_t *n_tokens);
/* Any thread. Reads the whole record into buf (a staging buffer; layer l at
 * tkv__cold_layer_ptr) with one I/O and verifies the header (identity
 * included) and every layer. Returns as read_layer. */
int tkv__cold_read_record(tkv__cold *c, uint64_t seq, uint64_t block, void *buf,
			  uint32_t *n_tokens);

/*
 * Prefetch thread only (one thread at a time). Queues an asynchronous read
 * of one layer (dst: block_bytes, any alignment) or, with layer ==
 * TKV__COLD_ALL_LAYERS, of the whole record (dst: a staging buffer); queued
 * reads go to the device together at the next read_flush, read_reap or
 * read_reap_io (one system call per batch, not per read). The record is
 * pinned until the read is finished, so it cannot be replaced under the
 * read. Returns 0 (one completion will carry `user`; dst must stay valid
 * until then), -ENOENT (no record; no completion), -EINVAL, -EAGAIN
 * (read_depth reads submitted and not reaped: reap first). Completion
 * status as read_layer / read_record. Reading each layer as its own request
 * lets a view of layer L complete without waiting for layer L+1.
 */
int tkv__cold_read_submit(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t layer,
			  void *dst, void *user);
/* Prefetch thread only. Sends the queued reads to the device. */
void tkv__cold_read_flush(tkv__cold *c);
/* Prefetch thread only. As write_reap, for reads: each completion is
 * verified (read_finish) before it is returned. */
int tkv__cold_read_reap(tkv__cold *c, tkv__cold_done *done, int max, bool wait);

/*
 * A read whose I/O has completed and whose bytes are NOT verified yet
 * (read_reap_io). Only `user` is for the caller; the rest is the cold
 * tier's. Pass it to tkv__cold_read_finish exactly once.
 */
typedef struct tkv__cold_rio {
	void *user;
	tkv__cold_ent *ent; /* pinned until read_finish */
	void *dst, *bounce;
	int64_t res;
	size_t len;
	uint64_t t0;
	uint32_t layer;
} tkv__cold_rio;

/*
 * Prefetch thread only. As read_reap, but the reads come out unverified:
 * up to max of them into out[], returned without checking their CRC, each
 * record still pinned. Their request slots are free at once, so the
 * prefetch thread can keep read_depth reads at the device while other
 * threads verify what it reaped. Nothing in dst may be used before
 * read_finish returned 0 for it.
 */
int tkv__cold_read_reap_io(tkv__cold *c, tkv__cold_rio *out, int max, bool wait);
/*
 * Any thread, exactly once per read out of read_reap_io, and before
 * tkv__cold_close: checks the I/O result and the CRC, copies the bytes out
 * of a bounce buffer if one was used, counts the read and unpins the
 * record. Returns as read_layer (-TKV_ECORRUPT: the record is dropped and
 * counted; dst holds garbage); *n_tokens (may be NULL) gets the block's
 * token count on success.
 */
int tkv__cold_read_finish(tkv__cold *c, tkv__cold_rio *r, uint32_t *n_tokens);

/* Any thread. true if (seq, block) has a durable record; its token count to
 * *n_tokens (may be NULL). */
bool tkv__cold_lookup(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t *n_tokens);
/* Any thread. Removes the record of (seq, block) (also cancels a write in
 * flight for it). 0, or -ENOENT if there was no durable record. */
int tkv__cold_remove(tkv__cold *c, uint64_t seq, uint64_t block);
/* Any thread. Removes the record of (seq, block) only if it is the one
 * with this seqno (a write in flight with it included): a holder of an old
 * record never removes a newer one written under the same name. 0, or
 * -ENOENT. seqno 0: any, as tkv__cold_remove. */
int tkv__cold_remove_if(tkv__cold *c, uint64_t seq, uint64_t block, uint64_t seqno);
/* Any thread. As remove_if, for a record whose coming back at the next
 * recovery would be harmless (an immutable cache block dropped for space,
 * or released because its block is back in RAM): its slot is reused
 * without the header-zeroing write every other removal costs
 * (tkv__cold_drain_dead). Until a new record overwrites the slot, a restart
 * finds the old record again, intact and checksummed. */
int tkv__cold_drop_if(tkv__cold *c, uint64_t seq, uint64_t block, uint64_t seqno);
/* Any thread. Removes every record of seq; returns how many (>= 0). */
int64_t tkv__cold_remove_seq(tkv__cold *c, uint64_t seq);
/* Any thread. The durable blocks of seq in increasing block order (after a
 * restart: what recovery found). Fills up to max entries of out and returns
 * how many there are (may be more than max). */
size_t tkv__cold_list_seq(tkv__cold *c, uint64_t seq, tkv__cold_block_info *out, size_t max);
/* Any thread. The sequence ids that have records (any order), as list_seq. */
size_t tkv__cold_list_seqs(tkv__cold *c, uint64_t *out, size_t max);

/* Any thread. Records with a seqno below this were written before this
 * open (by a previous run); later ones by this run. */
uint64_t tkv__cold_run_seqno(const tkv__cold *c);

/* Any thread. A snapshot of the counters (each read atomically). */
void tkv__cold_stats_get(tkv__cold *c, tkv__cold_stats *out);

#endif
