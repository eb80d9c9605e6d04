/*
 * cold.c - open/close of the cold tier, staging and bounce buffers, the
 * retire path of removed records, the index queries and the stats
 * (interface: cold.h; shared object: cold_impl.h).
 *
 * Retire path: an index entry whose last reference is gone (removed,
 * replaced, corrupt, cancelled or failed) is turned into a "dead slot" on a
 * mutex-protected list, from any thread. Only the writer thread turns dead
 * slots back into free ones (tkv__cold_drain_dead, cold_write.c), after
 * zeroing the record's header on disk, so the allocator stays
 * single-threaded and a removed record is not resurrected by the next
 * recovery.
 */
#include "tiers/cold_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

#include "base/array.h"
#include "base/error.h"
#include "kernels/kernels.h"

void tkv__cold_config_default(tkv__cold_config *c)
{
	memset(c, 0, sizeof(*c));
	c->dtype = TKV_DTYPE_F32;
	c->durability = TKV__COLD_DURABLE_BATCH;
	c->queue_depth = 32;
	c->read_depth = 64;
}

static int check_config(const tkv__cold_config *cfg)
{
	if (cfg->durability != TKV__COLD_DURABLE_BATCH && cfg->durability != TKV__COLD_DURABLE_NONE)
		return tkv__fail(-EINVAL, "cold config.durability: unknown mode %d", cfg->durability);
	if (cfg->queue_depth < 1 || cfg->queue_depth > 1024)
		return tkv__fail(-EINVAL, "cold config.queue_depth: must be in [1, 1024], got %u",
				 cfg->queue_depth);
	if (cfg->read_depth < 1 || cfg->read_depth > 4096)
		return tkv__fail(-EINVAL, "cold config.read_depth: must be in [1, 4096], got %u",
				 cfg->read_depth);
	if (cfg->sync_batch > cfg->queue_depth)
		return tkv__fail(-EINVAL, "cold config.sync_batch: %u exceeds queue_depth %u",
				 cfg->sync_batch, cfg->queue_depth);
	return 0;
}

static int open_parts(tkv__cold *c, const tkv__cold_config *cfg)
{
	int rc;
	if ((rc = tkv__cold_segs_open(&c->segs, cfg->dir, &c->lay, cfg->capacity_bytes,
				      cfg->segment_bytes, c->hooks, c->crc)) < 0)
		return rc;
	if ((rc = tkv__cold_index_create(c->lay.n_layers, tkv__cold_retire, c, &c->idx)) < 0)
		return tkv__fail(rc, "cold: out of memory for the index");
	if (posix_memalign(&c->zero_hdr, TKV__COLD_ALIGN, c->lay.header_bytes) != 0)
		return tkv__fail(-ENOMEM, "cold: out of memory");
	memset(c->zero_hdr, 0, c->lay.header_bytes);
	if ((rc = tkv__cold_write_init(c, cfg->force_pwrite)) < 0 ||
	    (rc = tkv__cold_read_init(c, cfg->force_pwrite)) < 0)
		return rc;
	if (!c->segs.fresh && (rc = tkv__cold_recover(c, cfg->verify_on_open)) < 0)
		return rc;
	c->run_seqno = c->next_seqno;
	return 0;
}

int tkv__cold_open(const tkv__cold_config *cfg, tkv__cold **out)
{
	tkv__cold *c;
	int rc;
	if (!cfg || !out)
		return tkv__fail(-EINVAL, "cold: NULL config or out");
	*out = NULL;
	if ((rc = check_config(cfg)) < 0)
		return rc;
	if (!(c = calloc(1, sizeof(*c))))
		return tkv__fail(-ENOMEM, "cold: out of memory");
	c->segs.lock_fd = -1;
	pthread_mutex_init(&c->retire_lock, NULL);
	pthread_mutex_init(&c->bounce_lock, NULL);
	c->crc = tkv__kernels_get(TKV_ISA_AUTO)->crc32c;
	c->hooks = cfg->io;
	c->durability = cfg->durability;
	c->qd = cfg->queue_depth;
	/* Half the queue by default: while one batch waits for its fdatasync
	 * the other half keeps the device busy (docs/MEASUREMENTS.md). */
	c->sync_batch = cfg->sync_batch ? cfg->sync_batch
					: (cfg->queue_depth + 1) / 2;
	c->read_depth = cfg->read_depth;
	c->next_seqno = 1;
	rc = tkv__cold_layout_init(&c->lay, cfg->n_layers, cfg->n_kv_heads, cfg->head_dim,
				   cfg->dtype, cfg->block_tokens, cfg->block_bytes);
	if (rc == 0)
		rc = open_parts(c, cfg);
	if (rc < 0) {
		char msg[256];
		/* close() below may overwrite the message: keep the first one. */
		strncpy(msg, tkv_last_error(), sizeof(msg) - 1);
		msg[sizeof(msg) - 1] = '\0';
		tkv__cold_close(c);
		return tkv__fail(rc, "%s", msg);
	}
	*out = c;
	return 0;
}

void tkv__cold_close(tkv__cold *c)
{
	if (!c)
		return;
	tkv__cold_read_fini(c);   /* unpins: may retire entries */
	tkv__cold_write_fini(c);  /* drains writes, zeroes dead headers, syncs */
	tkv__cold_index_destroy(c->idx);
	if (c->segs.dir)
		tkv__cold_segs_close(&c->segs);
	for (size_t i = 0; i < c->n_bounce; i++)
		free(c->bounce[i]);
	free(c->bounce);
	free(c->dead);
	free(c->zero_hdr);
	pthread_mutex_destroy(&c->retire_lock);
	pthread_mutex_destroy(&c->bounce_lock);
	free(c);
}

/* ---- buffers ---- */

/*
 * Staging buffers are records of several MiB that O_DIRECT hands straight to
 * the device: at 2 MiB alignment with huge-page advice the kernel pins and
 * maps a few huge pages per I/O instead of a thousand small ones. O_DIRECT
 * writes of multi-MiB records measured faster from huge-page buffers than
 * from 4 KiB pages (docs/MEASUREMENTS.md), and the raw baseline the evictor
 * is compared with uses them too.
 * Records under 2 MiB keep 4 KiB alignment (huge pages would mostly waste).
 */
#define HUGE_ALIGN ((size_t)2 << 20)

void *tkv__cold_buf_alloc(tkv__cold *c)
{
	void *p;
	size_t n = c->lay.record_bytes;
	size_t align = n >= HUGE_ALIGN ? HUGE_ALIGN : TKV__COLD_ALIGN;
	if (posix_memalign(&p, align, n) != 0)
		return NULL;
	if (align == HUGE_ALIGN)
		(void)madvise(p, (n + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1), MADV_HUGEPAGE);
	memset(p, 0, n); /* padding between slices stays zero */
	return p;
}

void *tkv__cold_header_alloc(tkv__cold *c)
{
	void *p;
	if (posix_memalign(&p, TKV__COLD_ALIGN, c->lay.header_bytes) != 0)
		return NULL;
	memset(p, 0, c->lay.header_bytes);
	return p;
}

void tkv__cold_buf_free(tkv__cold *c, void *buf)
{
	(void)c;
	free(buf);
}

void *tkv__cold_layer_ptr(const tkv__cold *c, void *buf, uint32_t layer)
{
	return tkv__cold_record_layer(&c->lay, buf, layer);
}

size_t tkv__cold_block_bytes(const tkv__cold *c)
{
	return c->lay.block_bytes;
}

size_t tkv__cold_record_bytes(const tkv__cold *c)
{
	return c->lay.record_bytes;
}

/* Bounce buffers (one layer slice each) for reads into unaligned memory. */
void *tkv__cold_bounce_get(tkv__cold *c)
{
	void *p = NULL;
	pthread_mutex_lock(&c->bounce_lock);
	if (c->n_bounce)
		p = c->bounce[--c->n_bounce];
	pthread_mutex_unlock(&c->bounce_lock);
	if (!p && posix_memalign(&p, TKV__COLD_ALIGN, c->lay.slice_stride) != 0)
		p = NULL;
	return p;
}

void tkv__cold_bounce_put(tkv__cold *c, void *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&c->bounce_lock);
	void **t = tkv__array_grow(c->bounce, &c->cap_bounce, c->n_bounce + 1, sizeof(*t));
	if (t)
		c->bounce = t;
	if (c->n_bounce < c->cap_bounce) {
		c->bounce[c->n_bounce++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&c->bounce_lock);
	free(b);
}

/* ---- retire path ---- */

void tkv__cold_retire(void *ctx, tkv__cold_ent *e)
{
	tkv__cold *c = ctx;
	tkv__cold_dead d = {e->seg, e->slot, e->keep_header};
	tkv__cold_ent_free(e);
	pthread_mutex_lock(&c->retire_lock);
	tkv__cold_dead *t = tkv__array_grow(c->dead, &c->cap_dead, c->n_dead + 1, sizeof(*t));
	if (t)
		c->dead = t;
	/* Out of memory here leaks the slot (until the next restart's
	 * recovery finds it) rather than losing track of a record; counted. */
	if (c->n_dead < c->cap_dead)
		c->dead[c->n_dead++] = d;
	else
		ck_pr_inc_64(&c->ctr.retire_dropped);
	pthread_mutex_unlock(&c->retire_lock);
}

/* ---- index queries ---- */

bool tkv__cold_lookup(tkv__cold *c, uint64_t seq, uint64_t block, uint32_t *n_tokens)
{
	return tkv__cold_index_lookup(c->idx, seq, block, n_tokens);
}

int tkv__cold_remove(tkv__cold *c, uint64_t seq, uint64_t block)
{
	return tkv__cold_index_remove(c->idx, seq, block) ? 0 : -ENOENT;
}

int tkv__cold_remove_if(tkv__cold *c, uint64_t seq, uint64_t block, uint64_t seqno)
{
	return tkv__cold_index_remove_if(c->idx, seq, block, seqno, false) ? 0 : -ENOENT;
}

int tkv__cold_drop_if(tkv__cold *c, uint64_t seq, uint64_t block, uint64_t seqno)
{
	return tkv__cold_index_remove_if(c->idx, seq, block, seqno, true) ? 0 : -ENOENT;
}

int64_t tkv__cold_remove_seq(tkv__cold *c, uint64_t seq)
{
	return (int64_t)tkv__cold_index_remove_seq(c->idx, seq);
}

size_t tkv__cold_list_seq(tkv__cold *c, uint64_t seq, tkv__cold_block_info *out, size_t max)
{
	return tkv__cold_index_list(c->idx, seq, out, out ? max : 0);
}

size_t tkv__cold_list_seqs(tkv__cold *c, uint64_t *out, size_t max)
{
	return tkv__cold_index_seqs(c->idx, out, out ? max : 0);
}

/* ---- stats ---- */

#define LD(f) ck_pr_load_64(&c->ctr.f)

void tkv__cold_stats_get(tkv__cold *c, tkv__cold_stats *o)
{
	memset(o, 0, sizeof(*o));
	o->records_written = LD(records_written);
	o->bytes_written = LD(bytes_written);
	o->write_busy_ns = LD(write_busy_ns);
	o->syncs = LD(syncs);
	o->write_full = LD(write_full);
	o->write_cancelled = LD(write_cancelled);
	o->write_enospc = LD(write_enospc);
	o->write_eio = LD(write_eio);
	o->write_short = LD(write_short);
	o->write_other = LD(write_other);
	o->reads = LD(reads);
	o->bytes_read = LD(bytes_read);
	o->read_ns = LD(read_ns);
	o->read_eio = LD(read_eio);
	o->read_short = LD(read_short);
	o->read_other = LD(read_other);
	o->corrupt = LD(corrupt);
	o->invalidate_errors = LD(invalidate_errors);
	o->retire_dropped = LD(retire_dropped);
	o->recovered = LD(recovered);
	o->recovery_torn = LD(recovery_torn);
	o->recovery_dups = LD(recovery_dups);
	o->recovery_stale = LD(recovery_stale);
	o->records_live = tkv__cold_index_count(c->idx);
	o->record_bytes = c->lay.record_bytes;
	o->bytes_used = ck_pr_load_64(&c->segs.used_slots) * c->lay.record_bytes;
	o->bytes_capacity = c->segs.total_slots * c->lay.record_bytes;
	o->writes_in_flight = (uint32_t)LD(writes_in_flight);
	o->reads_in_flight = (uint32_t)LD(reads_in_flight);
	o->io_uring = c->wq.uring;
	o->direct_io = c->segs.direct;
	o->preallocated = c->segs.prealloc;
	o->durability = c->durability;
	o->io_note = c->wq.note;
	o->fs_note = c->segs.note;
}

uint64_t tkv__cold_run_seqno(const tkv__cold *c)
{
	return c->run_seqno;
}
