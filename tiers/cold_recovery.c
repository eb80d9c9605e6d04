/*
 * cold_recovery.c - rebuilding the index of an existing cold directory at
 * open, from the record headers themselves (there is no separate log to
 * keep consistent: a record is its own index entry).
 *
 * For every slot: read the header (one 4 KiB-aligned read), check magic,
 * CRC, geometry and store id (cold_record.c). A valid record is indexed and
 * its slot marked used; for two records of one (seq, block) the larger
 * record seqno wins and the loser is retired (its header zeroed at the
 * writer's first call). Anything else is skipped and its slot stays free:
 * empty (zeros), torn or garbage (counted as torn), or a stale record of an
 * older store in reused files (counted as stale). The seqno counter resumes
 * after the largest seqno seen.
 *
 * Only headers are read, so a record whose header made it to disk but whose
 * payload was torn is indexed; its layer CRCs catch it at the first read
 * (-TKV_ECORRUPT, dropped). verify_on_open reads every layer too, for
 * callers that prefer a slow open to a later miss.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/error.h"
#include "tiers/cold_impl.h"

static bool payload_ok(tkv__cold *c, uint32_t seg, uint32_t slot, const uint32_t *crc, void *buf)
{
	for (uint32_t l = 0; l < c->lay.n_layers; l++) {
		uint64_t off = tkv__cold_slot_off(c, slot) + tkv__cold_record_layer_off(&c->lay, l);
		ssize_t n = tkv__cold_io_rw(c->hooks, TKV__COLD_OP_READ, c->segs.seg[seg].fd, seg,
					    buf, c->lay.slice_stride, off);
		if (n != (ssize_t)c->lay.slice_stride || !tkv__cold_layer_ok(&c->lay, c->crc, buf, crc[l]))
			return false;
	}
	return true;
}

/* Examines one slot; returns 0 or -ENOMEM. */
static int scan_slot(tkv__cold *c, uint32_t seg, uint32_t slot, void *hdr, void *slice,
		     uint32_t *crc, bool verify)
{
	tkv__cold_rec_id id;
	tkv__cold_ent *e;
	ssize_t n = tkv__cold_io_rw(c->hooks, TKV__COLD_OP_READ, c->segs.seg[seg].fd, seg, hdr,
				    c->lay.header_bytes, tkv__cold_slot_off(c, slot));
	int rc = n == (ssize_t)c->lay.header_bytes
			 ? tkv__cold_record_check(&c->lay, c->crc, hdr, c->segs.store_id, &id, crc)
			 : -TKV_ECORRUPT;
	if (rc == 0 && verify && !payload_ok(c, seg, slot, crc, slice))
		rc = -TKV_ECORRUPT;
	if (rc == -ENOENT)
		return 0;
	if (rc == -ESTALE) {
		ck_pr_inc_64(&c->ctr.recovery_stale);
		return 0;
	}
	if (rc < 0) {
		ck_pr_inc_64(&c->ctr.recovery_torn);
		return 0;
	}
	if (!(e = tkv__cold_ent_new(c->idx, id.seq, id.block, id.seqno, seg, slot, id.n_tokens, crc)))
		return -ENOMEM;
	tkv__cold_segs_mark(&c->segs, seg, slot);
	if (tkv__cold_index_insert(c->idx, e) < 0) {
		tkv__cold_segs_free(&c->segs, seg, slot);
		tkv__cold_ent_free(e);
		return -ENOMEM;
	}
	ck_pr_inc_64(&c->ctr.recovered);
	if (id.seqno >= c->next_seqno)
		c->next_seqno = id.seqno + 1;
	return 0;
}

int tkv__cold_recover(tkv__cold *c, bool verify_payload)
{
	void *hdr = NULL, *slice = NULL;
	uint32_t *crc = calloc(c->lay.n_layers, sizeof(*crc));
	int rc = 0;
	if (!crc || posix_memalign(&hdr, TKV__COLD_ALIGN, c->lay.header_bytes) != 0 ||
	    (verify_payload && posix_memalign(&slice, TKV__COLD_ALIGN, c->lay.slice_stride) != 0))
		rc = -ENOMEM;
	for (uint32_t s = 0; rc == 0 && s < c->segs.n_segs; s++)
		for (uint32_t j = 0; rc == 0 && j < c->segs.seg[s].n_slots; j++)
			rc = scan_slot(c, s, j, hdr, slice, crc, verify_payload);
	free(crc);
	free(hdr);
	free(slice);
	if (rc < 0)
		return tkv__fail(rc, "cold: out of memory while rebuilding the index");
	/* Every duplicate that lost was retired onto the dead list. */
	ck_pr_store_64(&c->ctr.recovery_dups, ck_pr_load_64(&c->ctr.recovered) -
						   tkv__cold_index_count(c->idx));
	return 0;
}
