/*
 * cold_read.c - verified reads of the cold tier: synchronous (any thread)
 * and asynchronous (one prefetch thread) reads of one layer or one record.
 * An asynchronous read's verification may run on another thread than the
 * one that reaped it (read_reap_io + read_finish): the prefetch thread keeps
 * the device busy while readers waiting for blocks verify them.
 *
 * Every read pins its index entry first (tkv__cold_index_pin) and unpins it
 * after the data is verified, so the slot cannot be reused and rewritten
 * under the read, and no lock is held during the I/O. A layer read checks
 * the bytes against the layer CRC the index holds (no header read); a record
 * read also checks the header it reads, including that it is the record the
 * index names (seq, block, seqno), which catches misdirected writes. A CRC
 * failure drops the entry from the index (the block is a miss from then on)
 * and is counted once; the data is never handed out as valid.
 *
 * Alignment: under O_DIRECT the I/O goes straight into the caller's buffer
 * when it is 4 KiB aligned and block_bytes is a multiple of 4 KiB, else
 * through a pooled bounce buffer and one copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tiers/cold_impl.h"

int tkv__cold_read_init(tkv__cold *c, bool force_pwrite)
{
	int rc = tkv__cold_ioq_init(&c->rq, c->read_depth, force_pwrite, c->hooks);
	if (rc < 0)
		return tkv__fail(rc, "cold: cannot set up the read queue");
	c->rreqs = calloc(c->read_depth, sizeof(*c->rreqs));
	if (!c->rreqs)
		return tkv__fail(-ENOMEM, "cold: out of memory for read requests");
	for (unsigned i = 0; i < c->read_depth; i++) {
		c->rreqs[i].next = c->r_free;
		c->r_free = &c->rreqs[i];
	}
	return 0;
}

int tkv__cold_read_error(tkv__cold *c, int64_t res)
{
	if (res >= 0) {
		ck_pr_inc_64(&c->ctr.read_short);
		return -EIO;
	}
	if (res == -EIO) {
		ck_pr_inc_64(&c->ctr.read_eio);
		return -EIO;
	}
	ck_pr_inc_64(&c->ctr.read_other);
	return (int)res;
}

static bool record_ok(tkv__cold *c, tkv__cold_ent *e, void *rec)
{
	tkv__cold_rec_id id;
	if (tkv__cold_record_check(&c->lay, c->crc, rec, c->segs.store_id, &id, NULL) != 0 ||
	    id.seq != e->seq || id.block != e->block || id.seqno != e->seqno)
		return false;
	for (uint32_t l = 0; l < c->lay.n_layers; l++)
		if (!tkv__cold_layer_ok(&c->lay, c->crc, tkv__cold_record_layer(&c->lay, rec, l),
					e->crc[l]))
			return false;
	return true;
}

int tkv__cold_verify(tkv__cold *c, tkv__cold_ent *e, uint32_t layer, const void *data)
{
	bool ok = layer == TKV__COLD_ALL_LAYERS
			  ? record_ok(c, e, (void *)data)
			  : tkv__cold_layer_ok(&c->lay, c->crc, data, e->crc[layer]);
	if (ok)
		return 0;
	if (tkv__cold_index_drop(c->idx, e))
		ck_pr_inc_64(&c->ctr.corrupt);
	return -TKV_ECORRUPT;
}

/* Where and how much to read for one request; *bounce set if one is used. */
static int plan_read(tkv__cold *c, tkv__cold_ent *e, uint32_t layer, void *dst, void **buf,
		     size_t *len, uint64_t *off, void **bounce)
{
	*bounce = NULL;
	*off = tkv__cold_slot_off(c, e->slot);
	if (layer == TKV__COLD_ALL_LAYERS) {
		*buf = dst;
		*len = c->lay.record_bytes;
		return 0;
	}
	*off += tkv__cold_record_layer_off(&c->lay, layer);
	if (!c->segs.direct || ((uintptr_t)dst % TKV__COLD_ALIGN == 0 &&
				c->lay.block_bytes % TKV__COLD_ALIGN == 0)) {
		*buf = dst;
		*len = c->lay.block_bytes;
		return 0;
	}
	if (!(*bounce = tkv__cold_bounce_get(c)))
		return -ENOMEM;
	*buf = *bounce;
	*len = c->lay.slice_stride;
	return 0;
}

static int check_args(tkv__cold *c, uint32_t layer, const void *dst)
{
	if (!dst)
		return tkv__fail(-EINVAL, "cold read: NULL buffer");
	if (layer == TKV__COLD_ALL_LAYERS && (uintptr_t)dst % TKV__COLD_ALIGN != 0)
		return tkv__fail(-EINVAL, "cold read: a record buffer must be a staging buffer "
				 "(4 KiB aligned)");
	if (layer != TKV__COLD_ALL_LAYERS && layer >= c->lay.n_layers)
		return tkv__fail(-EINVAL, "cold read: layer %u out of range [0, %u)", layer,
				 c->lay.n_layers);
	return 0;
}

/* Finishes a read whose I/O returned res: verify, copy out, count. */
static int complete(tkv__cold *c, tkv__cold_ent *e, uint32_t layer, void *dst, void *bounce,
		    int64_t res, size_t len, uint64_t t0)
{
	int rc = res == (int64_t)len ? tkv__cold_verify(c, e, layer, bounce ? bounce : dst)
				     : tkv__cold_read_error(c, res);
	if (rc == 0) {
		size_t n = layer == TKV__COLD_ALL_LAYERS ? c->lay.payload_bytes : c->lay.block_bytes;
		if (bounce)
			memcpy(dst, bounce, c->lay.block_bytes);
		ck_pr_inc_64(&c->ctr.reads);
		ck_pr_add_64(&c->ctr.bytes_read, n);
		ck_pr_add_64(&c->ctr.read_ns, tkv__cold_now_ns() - t0);
	}
	tkv__cold_bounce_put(c, bounce);
	return rc;
}

static int read_sync(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t layer, void *dst,
		     uint32_t *n_tokens)
{
	uint64_t t0 = tkv__cold_now_ns(), off;
	tkv__cold_ent *e;
	void *buf, *bounce;
	size_t len;
	ssize_t n;
	int rc = check_args(c, layer, dst);
	if (rc < 0)
		return rc;
	if (!(e = tkv__cold_index_pin(c->idx, seq, block)))
		return -ENOENT;
	if ((rc = plan_read(c, e, layer, dst, &buf, &len, &off, &bounce)) == 0) {
		n = tkv__cold_io_rw(c->hooks, TKV__COLD_OP_READ, c->segs.seg[e->seg].fd, e->seg, buf,
				    len, off);
		rc = complete(c, e, layer, dst, bounce, n, len, t0);
	}
	if (rc == 0 && n_tokens)
		*n_tokens = e->n_tokens;
	tkv__cold_index_unpin(c->idx, e);
	return rc;
}

int tkv__cold_read_layer(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t layer, void *dst,
			 uint32_t *n_tokens)
{
	if (layer == TKV__COLD_ALL_LAYERS)
		return tkv__fail(-EINVAL, "cold read: layer %u out of range", layer);
	return read_sync(c, seq, block, layer, dst, n_tokens);
}

int tkv__cold_read_record(tkv__cold *c, uint64_t seq, uint64_t block, void *buf,
			  uint32_t *n_tokens)
{
	return read_sync(c, seq, block, TKV__COLD_ALL_LAYERS, buf, n_tokens);
}

int tkv__cold_read_submit(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t layer,
			  void *dst, void *user)
{
	tkv__cold_rreq *r;
	tkv__cold_ent *e;
	void *buf;
	size_t len;
	uint64_t off;
	int rc = check_args(c, layer, dst);
	if (rc < 0)
		return rc;
	if (!c->r_free)
		return -EAGAIN;
	if (!(e = tkv__cold_index_pin(c->idx, seq, block)))
		return -ENOENT;
	r = c->r_free;
	if ((rc = plan_read(c, e, layer, dst, &buf, &len, &off, &r->bounce)) < 0) {
		tkv__cold_index_unpin(c->idx, e);
		return rc;
	}
	c->r_free = r->next;
	r->ent = e;
	r->user = user;
	r->dst = dst;
	r->layer = layer;
	r->t0 = tkv__cold_now_ns();
	r->io = (tkv__cold_ioreq){.op = TKV__COLD_OP_READ, .fd = c->segs.seg[e->seg].fd,
				  .seg = e->seg, .buf = buf, .off = off, .len = len};
	c->r_out++;
	ck_pr_inc_64(&c->ctr.reads_in_flight);
	/* sent with the next flush or reap: one system call for a batch */
	tkv__cold_ioq_submit(&c->rq, &r->io);
	return 0;
}

void tkv__cold_read_flush(tkv__cold *c)
{
	tkv__cold_ioq_flush(&c->rq);
}

int tkv__cold_read_reap_io(tkv__cold *c, tkv__cold_rio *out, int max, bool wait)
{
	int n = 0;
	while (n < max) {
		tkv__cold_ioreq *io = tkv__cold_ioq_reap(&c->rq, wait && n == 0);
		tkv__cold_rreq *r = (tkv__cold_rreq *)io; /* io is the first member */
		if (!io)
			break;
		/* The record stays pinned until read_finish; the request slot
		 * is free for the next submit now. */
		out[n++] = (tkv__cold_rio){r->user, r->ent, r->dst, r->bounce, io->res, io->len,
					   r->t0, r->layer};
		r->ent = NULL;
		r->bounce = NULL;
		r->next = c->r_free;
		c->r_free = r;
		c->r_out--;
		ck_pr_dec_64(&c->ctr.reads_in_flight);
	}
	return n;
}

int tkv__cold_read_finish(tkv__cold *c, tkv__cold_rio *r, uint32_t *n_tokens)
{
	int rc = complete(c, r->ent, r->layer, r->dst, r->bounce, r->res, r->len, r->t0);
	if (rc == 0 && n_tokens)
		*n_tokens = r->ent->n_tokens;
	tkv__cold_index_unpin(c->idx, r->ent);
	r->ent = NULL;
	r->bounce = NULL;
	return rc;
}

int tkv__cold_read_reap(tkv__cold *c, tkv__cold_done *done, int max, bool wait)
{
	int n = 0;
	tkv__cold_rio r;
	while (n < max && tkv__cold_read_reap_io(c, &r, 1, wait && n == 0) == 1) {
		uint32_t tokens = 0;
		int rc = tkv__cold_read_finish(c, &r, &tokens);
		done[n++] = (tkv__cold_done){r.user, rc, tokens, 0};
	}
	return n;
}

void tkv__cold_read_fini(tkv__cold *c)
{
	tkv__cold_done d[16];
	if (c->rreqs)
		while (c->r_out)
			if (tkv__cold_read_reap(c, d, 16, true) == 0)
				break;
	tkv__cold_ioq_exit(&c->rq);
	free(c->rreqs);
	c->rreqs = NULL;
}

int tkv__cold_read_ext(tkv__cold *c, uint64_t seq, uint64_t block, tkv__cold_ext *ext,
		       uint32_t *tokens)
{
	tkv__cold_ent *e = tkv__cold_index_pin(c->idx, seq, block);
	if (!e)
		return -ENOENT;
	void *hdr = NULL;
	int rc = posix_memalign(&hdr, TKV__COLD_ALIGN, c->lay.header_bytes) ? -ENOMEM : 0;
	if (rc == 0) {
		ssize_t n = tkv__cold_io_rw(c->hooks, TKV__COLD_OP_READ, c->segs.seg[e->seg].fd,
					    e->seg, hdr, c->lay.header_bytes,
					    tkv__cold_slot_off(c, e->slot));
		rc = n == (ssize_t)c->lay.header_bytes ? 0 : tkv__cold_read_error(c, n);
	}
	tkv__cold_rec_id id;
	if (rc == 0 && (tkv__cold_record_check(&c->lay, c->crc, hdr, c->segs.store_id, &id,
					       NULL) != 0 ||
			id.seq != e->seq || id.block != e->block || id.seqno != e->seqno)) {
		if (tkv__cold_index_drop(c->idx, e))
			ck_pr_inc_64(&c->ctr.corrupt);
		rc = -TKV_ECORRUPT;
	}
	if (rc == 0 && !(id.flags & TKV__COLD_REC_CACHE))
		rc = -ENOENT;
	if (rc == 0) {
		*ext = (tkv__cold_ext){id.key_hi, id.key_lo, id.parent_hi, id.parent_lo, NULL};
		tkv__cold_record_tokens(&c->lay, hdr, tokens);
	}
	free(hdr);
	tkv__cold_index_unpin(c->idx, e);
	return rc;
}
