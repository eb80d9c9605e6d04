/*
 * cold_write.c - the write pipeline of the cold tier (writer thread only).
 *
 * A write request moves through
 *   submit -> W_WRITING (record write in flight)
 *          -> W_WRITTEN (write complete, waiting for a sync batch)
 *          -> W_SYNCING (its batch's fdatasyncs in flight)
 *          -> W_DONE    (status known; index updated) -> reaped -> W_FREE
 * or straight to W_DONE on any failure. Only one batch syncs at a time;
 * writes keep going to the device while it does. A batch is every record
 * whose write completed before the batch started, and it syncs every segment
 * written since the previous batch, so each of its records is covered by an
 * fdatasync issued after its write completed. Records are committed to the
 * index (made readable) only then.
 *
 * With io_uring the fdatasyncs go through the ring (IORING_FSYNC_DATASYNC)
 * so the writer thread never blocks in them; past the ring's spare room
 * (more dirty segments than queue_depth) they are done synchronously.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tiers/cold_impl.h"

int tkv__cold_write_init(tkv__cold *c, bool force_pwrite)
{
	uint32_t n_sync = c->segs.n_segs < c->qd ? c->segs.n_segs : c->qd;
	int rc = tkv__cold_ioq_init(&c->wq, 2 * c->qd, force_pwrite, c->hooks);
	if (rc < 0)
		return tkv__fail(rc, "cold: cannot set up the write queue");
	c->wreqs = calloc(c->qd, sizeof(*c->wreqs));
	c->sync_reqs = calloc(n_sync, sizeof(*c->sync_reqs));
	c->w_iov = calloc((size_t)c->qd * (c->lay.n_layers + 1), sizeof(*c->w_iov));
	c->inv_reqs = calloc(c->qd, sizeof(*c->inv_reqs));
	if (!c->wreqs || !c->sync_reqs || !c->w_iov || !c->inv_reqs)
		return tkv__fail(-ENOMEM, "cold: out of memory for write requests");
	for (unsigned i = 0; i < c->qd; i++) {
		c->wreqs[i].next = c->w_free;
		c->w_free = &c->wreqs[i];
	}
	return 0;
}

static unsigned outstanding(const tkv__cold *c)
{
	return c->w_writing + c->w_n_written + (c->w_syncing != NULL);
}

/* Accounts busy time when the last outstanding write finishes. */
static void busy_update(tkv__cold *c)
{
	if (c->busy_since && !outstanding(c)) {
		ck_pr_add_64(&c->ctr.write_busy_ns, tkv__cold_now_ns() - c->busy_since);
		c->busy_since = 0;
	}
}

static void push_done(tkv__cold *c, tkv__cold_wreq *r, int status)
{
	r->status = status;
	r->stage = W_DONE;
	r->next = NULL;
	if (c->w_done_tail)
		c->w_done_tail->next = r;
	else
		c->w_done = r;
	c->w_done_tail = r;
}

/* The write failed: count it, release the record. */
static void fail(tkv__cold *c, tkv__cold_wreq *r, int64_t res)
{
	int status;
	if (res >= 0) {
		ck_pr_inc_64(&c->ctr.write_short);
		status = -EIO;
	} else if (res == -ENOSPC || res == -EDQUOT) {
		ck_pr_inc_64(&c->ctr.write_enospc);
		status = -ENOSPC;
	} else if (res == -EIO) {
		ck_pr_inc_64(&c->ctr.write_eio);
		status = -EIO;
	} else {
		ck_pr_inc_64(&c->ctr.write_other);
		status = (int)res;
	}
	if (r->ent)
		tkv__cold_index_abort(c->idx, r->ent); /* slot retired, header zeroed */
	r->ent = NULL;
	push_done(c, r, status);
}

/* The record is durable: make it readable. */
static void commit(tkv__cold *c, tkv__cold_wreq *r)
{
	int rc = tkv__cold_index_commit(c->idx, r->ent);
	r->ent = NULL;
	if (rc == 0) {
		ck_pr_inc_64(&c->ctr.records_written);
		ck_pr_add_64(&c->ctr.bytes_written, c->lay.record_bytes);
	} else {
		ck_pr_inc_64(&c->ctr.write_cancelled);
	}
	push_done(c, r, rc);
}

static void finish_batch(tkv__cold *c)
{
	for (tkv__cold_wreq *r = c->w_syncing, *n; r; r = n) {
		int err = c->segs.seg[r->io.seg].sync_err;
		n = r->next;
		if (err)
			fail(c, r, err);
		else
			commit(c, r);
	}
	c->w_syncing = NULL;
}

/* Starts a sync batch if one is due (see the file comment). */
static void maybe_start_batch(tkv__cold *c)
{
	uint32_t n_ring = 0, room, n_sync = c->segs.n_segs < c->qd ? c->segs.n_segs : c->qd;
	if (c->w_syncing || !c->w_written || (c->w_writing && c->w_n_written < c->sync_batch))
		return;
	c->w_syncing = c->w_written;
	c->w_written = NULL;
	c->w_n_written = 0;
	for (tkv__cold_wreq *r = c->w_syncing; r; r = r->next)
		r->stage = W_SYNCING;
	room = 2 * c->qd - c->w_writing;
	for (uint32_t i = 0; i < c->segs.n_segs; i++) {
		tkv__cold_seg *g = &c->segs.seg[i];
		if (!g->dirty)
			continue;
		g->dirty = false;
		g->sync_err = 0;
		ck_pr_inc_64(&c->ctr.syncs);
		if (n_ring < n_sync && n_ring < room) {
			tkv__cold_ioreq *s = &c->sync_reqs[n_ring++];
			memset(s, 0, sizeof(*s));
			s->op = TKV__COLD_OP_SYNC;
			s->fd = g->fd;
			s->seg = i;
			tkv__cold_ioq_submit(&c->wq, s);
		} else {
			g->sync_err = tkv__cold_io_sync(c->hooks, g->fd, i);
		}
	}
	c->sync_left = n_ring;
	if (n_ring)
		tkv__cold_ioq_flush(&c->wq);
	else
		finish_batch(c);
}

static void on_sync(tkv__cold *c, tkv__cold_ioreq *s)
{
	c->segs.seg[s->seg].sync_err = s->res < 0 ? (int)s->res : 0;
	if (--c->sync_left == 0)
		finish_batch(c);
}

static void on_write(tkv__cold *c, tkv__cold_wreq *r)
{
	c->w_writing--;
	if (r->io.res != (int64_t)r->io.len) {
		fail(c, r, r->io.res);
		return;
	}
	if (c->durability == TKV__COLD_DURABLE_NONE) {
		c->segs.seg[r->io.seg].dirty = true; /* close() still syncs */
		commit(c, r);
		return;
	}
	c->segs.seg[r->io.seg].dirty = true;
	r->stage = W_WRITTEN;
	r->next = c->w_written;
	c->w_written = r;
	c->w_n_written++;
}

/* A removed record's header is zeroed (or failed to be: the slot is reused
 * anyway; recovery tells records apart by their seqno): its slot is free. */
static void on_invalidate(tkv__cold *c, tkv__cold_ioreq *io)
{
	if (io->res != (int64_t)c->lay.header_bytes)
		ck_pr_inc_64(&c->ctr.invalidate_errors);
	c->segs.seg[io->seg].dirty = true;
	tkv__cold_segs_free(&c->segs, io->seg, (uint32_t)(io->off / c->lay.record_bytes));
	c->inv_pending--;
}

static void on_io(tkv__cold *c, tkv__cold_ioreq *io)
{
	if (io->op == TKV__COLD_OP_SYNC)
		on_sync(c, io);
	else if (io->op == TKV__COLD_OP_INVALIDATE)
		on_invalidate(c, io);
	else
		on_write(c, (tkv__cold_wreq *)io); /* io is the first member */
}

/* Handles every available completion (blocking for one if `wait`). */
static bool progress(tkv__cold *c, bool wait)
{
	tkv__cold_ioreq *io;
	bool any = false;
	while ((io = tkv__cold_ioq_reap(&c->wq, wait)) != NULL) {
		on_io(c, io);
		wait = false;
		any = true;
	}
	maybe_start_batch(c);
	busy_update(c);
	return any;
}

/*
 * Dead slots (cold.c, retire path). A removed record's header is zeroed
 * before its slot is reused, so that a restart does not bring it back.
 * Up to queue_depth of those writes go out together through the write
 * queue and are waited for as a group: one at a time, synchronously, as
 * before, a 4 KiB O_DIRECT write took ~70 us here and the evictor thread
 * sat through every one of them (506 per `tierkv-bench evict` run: closed
 * sequences' records), eviction stopped meanwhile. Returning only when the
 * group's slots are free keeps what callers see: a slot freed by a removal
 * is there for the very next submit. Writes and syncs that complete
 * meanwhile are handled as usual. In flight at once: up to queue_depth
 * record writes, syncs with the writes up to 2 x queue_depth
 * (maybe_start_batch), and up to queue_depth of these: within the ring's
 * 4 x queue_depth completion entries (twice its 2 x queue_depth SQ).
 */
static void wait_invalidations(tkv__cold *c)
{
	/* every one is in the ring or on the ready list, so progress only
	 * returns false once they are all reaped; the test is against a hang */
	while (c->inv_pending && progress(c, true))
		;
}

void tkv__cold_drain_dead(tkv__cold *c)
{
	for (;;) {
		tkv__cold_dead d;
		pthread_mutex_lock(&c->retire_lock);
		bool more = c->n_dead > 0 && c->inv_pending < c->qd;
		if (more)
			d = c->dead[--c->n_dead];
		pthread_mutex_unlock(&c->retire_lock);
		if (!more)
			break;
		if (d.keep) { /* harmless if recovered: no write (cold.h) */
			tkv__cold_segs_free(&c->segs, d.seg, d.slot);
			continue;
		}
		tkv__cold_ioreq *io = &c->inv_reqs[c->inv_pending++];
		*io = (tkv__cold_ioreq){.op = TKV__COLD_OP_INVALIDATE, .fd = c->segs.seg[d.seg].fd,
				       .seg = d.seg, .buf = c->zero_hdr,
				       .off = tkv__cold_slot_off(c, d.slot),
				       .len = c->lay.header_bytes};
		tkv__cold_ioq_submit(&c->wq, io);
		if (c->inv_pending == c->qd)
			wait_invalidations(c); /* a full group: its requests are reused */
	}
	wait_invalidations(c);
}

int tkv__cold_write_submit(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t n_tokens,
			   void *buf, void *user)
{
	return tkv__cold_write_submit_crc(c, seq, block, n_tokens, buf, NULL, user);
}

int tkv__cold_write_submit_crc(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t n_tokens,
			       void *buf, const uint32_t *layer_crc, void *user)
{
	return tkv__cold_write_submit_ext(c, seq, block, n_tokens, buf, layer_crc, NULL, user);
}

static tkv__cold_rec_id rec_id(const tkv__cold *c, uint64_t seq, uint64_t block,
			       uint32_t n_tokens, const tkv__cold_ext *ext)
{
	tkv__cold_rec_id id = {c->segs.store_id, 0, seq, block, n_tokens, 0, 0, 0, 0, 0, NULL};
	if (ext) {
		id.flags = TKV__COLD_REC_CACHE;
		id.key_hi = ext->key_hi;
		id.key_lo = ext->key_lo;
		id.parent_hi = ext->parent_hi;
		id.parent_lo = ext->parent_lo;
		id.tokens = ext->tokens;
	}
	return id;
}

static int check_tokens(const tkv__cold *c, uint32_t n_tokens)
{
	if (n_tokens == 0 || n_tokens > c->lay.block_tokens)
		return tkv__fail(-EINVAL, "cold write: n_tokens %u not in [1, %u]", n_tokens,
				 c->lay.block_tokens);
	return 0;
}

/* Pieces one vectored write may have: Linux's UIO_MAXIOV (its header
 * clashes with <sys/uio.h>; the value is ABI). */
enum { MAX_PIECES = 1024 };

static bool aligned(const void *p)
{
	return ((uintptr_t)p % TKV__COLD_ALIGN) == 0;
}

/*
 * The one submit path. `buf` holds the header and, unless `layers` is
 * given, every layer slice; with `layers` the slices are written from there
 * (one vectored write, header first), their CRCs computed from there.
 */
static int submit(tkv__cold *c, tkv__cold_rec_id id, void *buf, const void *const *layers,
		  const uint32_t *layer_crc, void *user)
{
	tkv__cold_wreq *r;
	uint32_t seg, slot;
	tkv__cold_drain_dead(c);
	if (!(r = c->w_free))
		return -EAGAIN;
	c->w_free = r->next;
	memset(r, 0, sizeof(*r));
	r->user = user;
	ck_pr_inc_64(&c->ctr.writes_in_flight);
	if (tkv__cold_segs_alloc(&c->segs, &seg, &slot) < 0) {
		ck_pr_inc_64(&c->ctr.write_full);
		push_done(c, r, -ENOSPC);
		return 0;
	}
	id.seqno = c->next_seqno++;
	r->seqno = id.seqno;
	r->ent = tkv__cold_ent_new(c->idx, id.seq, id.block, id.seqno, seg, slot, id.n_tokens,
				   NULL);
	if (r->ent) {
		uint32_t crc[TKV__COLD_MAX_LAYERS];
		if (layers && !layer_crc) {
			for (uint32_t l = 0; l < c->lay.n_layers; l++)
				crc[l] = c->crc(0, layers[l], c->lay.block_bytes);
			layer_crc = crc;
		}
		tkv__cold_record_seal(&c->lay, c->crc, &id, buf, layer_crc, r->ent->crc);
	}
	if (!r->ent || tkv__cold_index_add_pending(c->idx, r->ent) < 0) {
		tkv__cold_ent_free(r->ent);
		r->ent = NULL;
		tkv__cold_segs_free(&c->segs, seg, slot);
		push_done(c, r, -ENOMEM);
		return 0;
	}
	r->io = (tkv__cold_ioreq){.op = TKV__COLD_OP_WRITE, .fd = c->segs.seg[seg].fd, .seg = seg,
				  .buf = buf, .off = tkv__cold_slot_off(c, slot),
				  .len = c->lay.record_bytes};
	if (layers) {
		struct iovec *iov = c->w_iov + (size_t)(r - c->wreqs) * (c->lay.n_layers + 1);
		iov[0] = (struct iovec){buf, c->lay.header_bytes};
		for (uint32_t l = 0; l < c->lay.n_layers; l++)
			iov[l + 1] = (struct iovec){(void *)layers[l], c->lay.block_bytes};
		r->io.iov = iov;
		r->io.n_iov = (int)c->lay.n_layers + 1;
	}
	r->stage = W_WRITING;
	c->w_writing++;
	if (!c->busy_since)
		c->busy_since = tkv__cold_now_ns();
	tkv__cold_ioq_submit(&c->wq, &r->io);
	tkv__cold_ioq_flush(&c->wq);
	return 0;
}

int tkv__cold_write_submit_ext(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t n_tokens,
			       void *buf, const uint32_t *layer_crc, const tkv__cold_ext *ext,
			       void *user)
{
	if (!buf || !aligned(buf))
		return tkv__fail(-EINVAL, "cold write: buf must be a staging buffer (4 KiB aligned)");
	int rc = check_tokens(c, n_tokens);
	return rc ? rc : submit(c, rec_id(c, seq, block, n_tokens, ext), buf, NULL, layer_crc, user);
}

bool tkv__cold_direct_geometry(const tkv__cold *c)
{
	/* a 4 KiB multiple fills its slice (slices are 4 KiB aligned) */
	return c->lay.block_bytes % TKV__COLD_ALIGN == 0 && c->lay.n_layers + 1 <= MAX_PIECES;
}

bool tkv__cold_direct_ok(const tkv__cold *c, const void *const *layers)
{
	if (!tkv__cold_direct_geometry(c))
		return false;
	for (uint32_t l = 0; l < c->lay.n_layers; l++)
		if (!layers[l] || !aligned(layers[l]))
			return false;
	return true;
}

int tkv__cold_write_submit_layers(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t n_tokens,
				  void *hdr, const void *const *layers, const uint32_t *layer_crc,
				  const tkv__cold_ext *ext, void *user)
{
	if (!hdr || !aligned(hdr))
		return tkv__fail(-EINVAL, "cold write: hdr must be a header buffer (4 KiB aligned)");
	if (!layers || !tkv__cold_direct_ok(c, layers))
		return tkv__fail(-EINVAL, "cold write: layers must be %u blocks, each 4 KiB aligned, "
				 "of a size that fills its slice (block_bytes %zu, a multiple of "
				 "4 KiB): else write a staging buffer",
				 c->lay.n_layers, (size_t)c->lay.block_bytes);
	int rc = check_tokens(c, n_tokens);
	return rc ? rc : submit(c, rec_id(c, seq, block, n_tokens, ext), hdr, layers, layer_crc, user);
}

int tkv__cold_write_reap(tkv__cold *c, tkv__cold_done *done, int max, bool wait)
{
	int n = 0;
	tkv__cold_drain_dead(c);
	(void)progress(c, false);
	while (wait && !c->w_done && outstanding(c))
		if (!progress(c, true))
			break; /* nothing left in the queue: cannot happen, never hang */
	while (n < max && c->w_done) {
		tkv__cold_wreq *r = c->w_done;
		c->w_done = r->next;
		if (!c->w_done)
			c->w_done_tail = NULL;
		done[n++] = (tkv__cold_done){r->user, r->status, 0, r->status ? 0 : r->seqno};
		r->stage = W_FREE;
		r->next = c->w_free;
		c->w_free = r;
		ck_pr_dec_64(&c->ctr.writes_in_flight);
	}
	return n;
}

void tkv__cold_sync_dirty(tkv__cold *c)
{
	for (uint32_t i = 0; i < c->segs.n_segs; i++)
		if (c->segs.seg[i].dirty) {
			c->segs.seg[i].dirty = false;
			ck_pr_inc_64(&c->ctr.syncs);
			(void)tkv__cold_io_sync(c->hooks, c->segs.seg[i].fd, i);
		}
}

void tkv__cold_write_fini(tkv__cold *c)
{
	tkv__cold_done d[16];
	if (c->wreqs && c->segs.seg) {
		while (outstanding(c) || c->w_done)
			(void)tkv__cold_write_reap(c, d, 16, true);
		tkv__cold_drain_dead(c);
		tkv__cold_sync_dirty(c);
	}
	tkv__cold_ioq_exit(&c->wq);
	free(c->wreqs);
	free(c->sync_reqs);
	free(c->w_iov);
	free(c->inv_reqs);
	c->inv_reqs = NULL;
	c->wreqs = NULL;
	c->sync_reqs = NULL;
	c->w_iov = NULL;
}
