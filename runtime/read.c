/*
 * read.c - getting KV back out of the hot tier: tkv_read copies a range into
 * the caller's buffers, tkv_view hands out pointers to the blocks themselves
 * and pins them until tkv_view_release.
 *
 * Both first wait for pending stores covering the range (completion.c), and
 * then touch only blocks below the layer's acquired done_pos, which the
 * owning worker no longer writes.
 */
#include <errno.h>
#include <string.h>

#include <ck_pr.h>

#include "base/error.h"
#include "base/struct_size.h"
#include "runtime/runtime.h"

/* The first released tkv_view layout (0.1). When the struct grows, this
 * stays at the old size (offsetof the first new field). */
#define TKV__VIEW_FIRST_SIZE sizeof(tkv_view)

/* "VIEW" in the high half of opaque[3] marks a view that is held. */
#define VIEW_HELD 0x56494557ull

/* Validates the call, finds the sequence (with a reference) and waits until
 * [pos, pos + n) of the layer is readable. */
static int range_ready(tkv_runtime *rt, const char *what, uint64_t seq_id, uint32_t layer,
		       uint64_t pos, uint32_t n, tkv__seq **out)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	if (layer >= rt->cfg.n_layers)
		return tkv__fail(-EINVAL, "%s: layer %u out of range (n_layers %u)", what, layer,
				 rt->cfg.n_layers);
	if (n == 0)
		return tkv__fail(-EINVAL, "%s: n_tokens is 0", what);
	uint64_t end;
	if (__builtin_add_overflow(pos, (uint64_t)n, &end))
		return tkv__fail(-EOVERFLOW, "%s: position overflows", what);
	tkv__seq *s = tkv__seq_get(&rt->seqs, seq_id);
	if (!s)
		return tkv__fail(-ENOENT, "%s: sequence %llu is not open", what,
				 (unsigned long long)seq_id);
	if (tkv__seq_editing(s)) {
		tkv__seq_put(s);
		return tkv__fail(-EBUSY, "%s: sequence %llu is being truncated", what,
				 (unsigned long long)seq_id);
	}
	tkv__layer *l = &s->layers[layer];
	uint64_t stored = ck_pr_load_64(&l->next_pos);
	if (end > stored) {
		tkv__seq_put(s);
		return tkv__fail(-ENOENT,
				 "%s: sequence %llu layer %u: tokens [%llu, %llu) not stored "
				 "(%llu stored)",
				 what, (unsigned long long)seq_id, layer, (unsigned long long)pos,
				 (unsigned long long)end, (unsigned long long)stored);
	}
	tkv__wait_done(rt, l, end);
	if ((rc = (int)ck_pr_load_32((uint32_t *)&l->error))) {
		tkv__seq_put(s);
		return tkv__fail(rc, "%s: layer %u lost tokens: out of memory", what, layer);
	}
	*out = s;
	return 0;
}

int tkv_read(tkv_runtime *rt, uint64_t seq_id, uint32_t layer, uint64_t pos, uint32_t n_tokens,
	     void *k, void *v)
{
	if (!k || !v)
		return tkv__fail(-EINVAL, "read: NULL %s buffer", !k ? "K" : "V");
	tkv__seq *s;
	int rc = range_ready(rt, "read", seq_id, layer, pos, n_tokens, &s);
	if (rc)
		return rc;
	const size_t row = rt->geo.row_bytes;
	const uint32_t bt = rt->cfg.block_tokens;
	unsigned char *kd = k, *vd = v;
	for (uint64_t p = pos, end = pos + n_tokens; p < end && !rc;) {
		uint32_t off = (uint32_t)(p % bt);
		uint32_t m = (uint32_t)(bt - off < end - p ? bt - off : end - p);
		const unsigned char *mem;
		/* pinned while copying: the evictor cannot free it under us */
		if ((rc = tkv__block_pin(rt->ev, s, layer, p / bt, &mem)))
			break;
		rt->kern->copy(kd, mem + (size_t)off * row, (size_t)m * row);
		rt->kern->copy(vd, mem + ((size_t)bt + off) * row, (size_t)m * row);
		tkv__block_unpin(s, layer, p / bt);
		kd += (size_t)m * row;
		vd += (size_t)m * row;
		p += m;
	}
	tkv__seq_put(s);
	return rc;
}

static void unpin_blocks(tkv__seq *s, uint32_t layer, uint64_t first, uint64_t nb)
{
	for (uint64_t b = first; b < first + nb; b++)
		tkv__block_unpin(s, layer, b);
}

/* Pins every block of the range (promoting cold ones) and fills the view;
 * on failure nothing stays pinned. */
static int fill_view(tkv_runtime *rt, tkv__seq *s, uint32_t layer, uint64_t pos, uint64_t end,
		     tkv_view *view)
{
	const size_t row = rt->geo.row_bytes;
	const uint32_t bt = rt->cfg.block_tokens;
	uint32_t i = 0;
	for (uint64_t p = pos; p < end; i++) {
		uint32_t off = (uint32_t)(p % bt);
		uint32_t m = (uint32_t)(bt - off < end - p ? bt - off : end - p);
		const unsigned char *mem;
		int rc = tkv__block_pin(rt->ev, s, layer, p / bt, &mem);
		if (rc) {
			unpin_blocks(s, layer, pos / bt, i);
			return rc;
		}
		view->blocks[i] = (tkv_view_block){mem + (size_t)off * row,
						   mem + ((size_t)bt + off) * row, p, m};
		p += m;
	}
	view->n_blocks = i;
	return 0;
}

int tkv_view_acquire(tkv_runtime *rt, uint64_t seq_id, uint32_t layer, uint64_t pos, uint32_t n_tokens,
	     tkv_view *view)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	if ((rc = tkv__struct_check(view, TKV__VIEW_FIRST_SIZE, sizeof(tkv_view),
				    TKV__STRUCT_INOUT, "tkv_view")))
		return rc;
	if (!view->blocks)
		return tkv__fail(-EINVAL, "view: NULL blocks");
	const uint32_t bt = rt->cfg.block_tokens;
	uint64_t first = pos / bt, nb = (pos % bt + n_tokens + bt - 1) / bt;
	if (nb > view->max_blocks) {
		view->n_blocks = (uint32_t)nb;
		return tkv__fail(-ERANGE, "view: range spans %llu blocks, max_blocks is %u",
				 (unsigned long long)nb, view->max_blocks);
	}
	tkv__seq *s;
	rc = range_ready(rt, "view", seq_id, layer, pos, n_tokens, &s);
	if (rc)
		return rc;
	if (!tkv__seq_pin(s, (uint32_t)nb)) {
		tkv__seq_put(s);
		return tkv__fail(-ENOENT, "view: sequence %llu is closing",
				 (unsigned long long)seq_id);
	}
	if ((rc = fill_view(rt, s, layer, pos, pos + n_tokens, view))) {
		tkv__seq_unpin(s, (uint32_t)nb);
		tkv__seq_put(s);
		return rc;
	}
	ck_pr_add_64(&rt->pinned_blocks, nb);
	view->opaque[0] = seq_id;
	view->opaque[1] = layer;
	view->opaque[2] = first;
	view->opaque[3] = (VIEW_HELD << 32) | nb;
	tkv__seq_put(s);
	return 0;
}

int tkv_view_release(tkv_runtime *rt, tkv_view *view)
{
	if (!rt)
		return tkv__fail(-EINVAL, "view_release: NULL runtime");
	if (!view || (view->opaque[3] >> 32) != VIEW_HELD)
		return tkv__fail(-EINVAL, "view_release: not a held view (released twice?)");
	uint64_t nb = view->opaque[3] & 0xffffffffu;
	/* A pinned sequence cannot be closed, so it is still in the table. */
	tkv__seq *s = tkv__seq_get(&rt->seqs, view->opaque[0]);
	if (!s || view->opaque[1] >= s->n_layers) {
		if (s)
			tkv__seq_put(s);
		return tkv__fail(-EINVAL, "view_release: view does not match an open sequence");
	}
	unpin_blocks(s, (uint32_t)view->opaque[1], view->opaque[2], nb);
	ck_pr_sub_64(&rt->pinned_blocks, nb);
	view->opaque[3] = 0;
	view->n_blocks = 0;
	tkv__seq_unpin(s, (uint32_t)nb);
	tkv__seq_put(s);
	return 0;
}
