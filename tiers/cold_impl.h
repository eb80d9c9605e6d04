/*
 * cold_impl.h - the cold tier object shared by cold.c, cold_write.c,
 * cold_read.c and cold_recovery.c. Nothing outside tiers/cold*.c includes it.
 *
 * Ownership of the fields, by thread:
 *   writer (evictor)   wq, wreqs, w_*, next_seqno, segs allocator,
 *                      seg[].dirty
 *   prefetch           rq, rreqs, r_free
 *   any thread         idx (its own locks), retire list (retire_lock),
 *                      bounce pool (bounce_lock), stats counters (ck_pr)
 * Lock order: index stripe locks, retire_lock and bounce_lock are leaves;
 * none is held while another is taken, and none across I/O.
 */
#ifndef TKV_TIERS_COLD_IMPL_H
#define TKV_TIERS_COLD_IMPL_H

#include <pthread.h>

#include <ck_pr.h>

#include "tiers/cold.h"
#include "tiers/cold_record.h"
#include "tiers/cold_segments.h"

/* Write request stages. */
enum { W_FREE, W_WRITING, W_WRITTEN, W_SYNCING, W_DONE };

typedef struct tkv__cold_wreq {
	tkv__cold_ioreq io; /* first: the I/O layer hands back &io */
	tkv__cold_ent *ent;
	void *user;
	uint64_t seqno; /* the record's, for the completion */
	int status;
	int stage;
	struct tkv__cold_wreq *next; /* free / written / syncing / done lists */
} tkv__cold_wreq;

typedef struct tkv__cold_rreq {
	tkv__cold_ioreq io;
	tkv__cold_ent *ent;
	void *user;
	void *dst;    /* caller's buffer */
	void *bounce; /* NULL: read went straight into dst */
	uint32_t layer;
	uint64_t t0;
	struct tkv__cold_rreq *next;
} tkv__cold_rreq;

/* A slot waiting to be reused, its header zeroed first unless `keep`
 * (tkv__cold_drop_if). */
typedef struct tkv__cold_dead {
	uint32_t seg, slot;
	bool keep;
} tkv__cold_dead;

/* Counters any thread reads; writers use ck_pr atomics. */
typedef struct tkv__cold_counters {
	uint64_t records_written, bytes_written, write_busy_ns, syncs, write_full,
		write_cancelled, write_enospc, write_eio, write_short, write_other;
	uint64_t writes_in_flight;
	uint64_t invalidate_errors;
	uint64_t retire_dropped;
	uint64_t reads __attribute__((aligned(64))), bytes_read, read_ns, read_eio,
		read_short, read_other, corrupt, reads_in_flight;
	uint64_t recovered, recovery_torn, recovery_dups, recovery_stale;
} tkv__cold_counters;

struct tkv__cold {
	tkv__cold_layout lay;
	tkv__crc_fn crc;
	const tkv__cold_io *hooks;
	int durability;
	unsigned qd, sync_batch, read_depth;
	tkv__cold_segs segs;
	tkv__cold_index *idx;

	/* writer */
	tkv__cold_ioq wq;
	tkv__cold_wreq *wreqs, *w_free, *w_written, *w_done, *w_done_tail;
	tkv__cold_wreq *w_syncing;       /* the batch being synced */
	struct iovec *w_iov;             /* n_layers + 1 per request (direct writes) */
	tkv__cold_ioreq *inv_reqs;       /* qd header-zeroing writes (drain_dead) */
	unsigned inv_pending;            /* of them in flight */
	tkv__cold_ioreq *sync_reqs;      /* one per segment */
	uint32_t sync_left;              /* sync requests of the batch in flight */
	unsigned w_writing, w_n_written; /* counts of the lists above */
	uint64_t busy_since;             /* 0: no write outstanding */
	uint64_t next_seqno;
	uint64_t run_seqno; /* next_seqno when opened: older records are a
			     * previous run's (immutable after open) */
	void *zero_hdr;                  /* header_bytes of zeros (invalidation) */

	/* prefetch */
	tkv__cold_ioq rq;
	tkv__cold_rreq *rreqs, *r_free;
	unsigned r_out;

	/* any thread */
	pthread_mutex_t retire_lock;
	tkv__cold_dead *dead;
	size_t n_dead, cap_dead;
	pthread_mutex_t bounce_lock;
	void **bounce;
	size_t n_bounce, cap_bounce;

	tkv__cold_counters ctr;
};

/* cold.c */
void tkv__cold_retire(void *ctx, tkv__cold_ent *e);
void *tkv__cold_bounce_get(tkv__cold *c);
void tkv__cold_bounce_put(tkv__cold *c, void *b);
static inline uint64_t tkv__cold_slot_off(const tkv__cold *c, uint32_t slot)
{
	return (uint64_t)slot * c->lay.record_bytes;
}

/* cold_write.c */
int tkv__cold_write_init(tkv__cold *c, bool force_pwrite);
/* Writer: turns dead slots into free ones, zeroing the headers of those
 * not kept; returns when every one of them is free. */
void tkv__cold_drain_dead(tkv__cold *c);
void tkv__cold_write_fini(tkv__cold *c);
/* Writer: fdatasync of every segment written since its last sync. */
void tkv__cold_sync_dirty(tkv__cold *c);

/* cold_read.c */
int tkv__cold_read_init(tkv__cold *c, bool force_pwrite);
void tkv__cold_read_fini(tkv__cold *c);
/* Counts a failed read result (res < 0 or short) and returns the status. */
int tkv__cold_read_error(tkv__cold *c, int64_t res);
/* Verifies the layer(s) read into `data` for entry e; on a CRC mismatch
 * drops the entry and counts it. 0 or -TKV_ECORRUPT. */
int tkv__cold_verify(tkv__cold *c, tkv__cold_ent *e, uint32_t layer, const void *data);

/* cold_recovery.c */
int tkv__cold_recover(tkv__cold *c, bool verify_payload);

#endif
