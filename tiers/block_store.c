/*
 * block_store.c - sequences, their segmented unit tables and the units'
 * references (see block_store.h for who writes what).
 */
#include "tiers/block_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>

#include "base/fence.h"
#include "base/hash.h"

_Static_assert(sizeof(tkv__layer) % 64 == 0, "layers must not share cache lines");

tkv__seq *tkv__seq_new(uint64_t id, uint32_t n_layers)
{
	tkv__seq *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->layers = aligned_alloc(64, sizeof(tkv__layer) * n_layers);
	if (!s->layers) {
		free(s);
		return NULL;
	}
	memset(s->layers, 0, sizeof(tkv__layer) * n_layers);
	for (uint32_t i = 0; i < n_layers; i++)
		s->layers[i].wait_min = UINT64_MAX;
	s->id = id;
	s->n_layers = n_layers;
	return s;
}

/* ---- units -------------------------------------------------------------- */

tkv__unit *tkv__unit_new(uint32_t n_layers, uint64_t rec_seq, uint64_t rec_block)
{
	tkv__unit *u = calloc(1, sizeof(*u) + (size_t)n_layers * sizeof(tkv__block));
	if (!u)
		return NULL;
	u->rec_seq = rec_seq;
	u->rec_block = rec_block;
	u->n_layers = n_layers;
	u->refs = 1;
	tkv__policy_node_init(&u->node, tkv__mix_pair(rec_seq, rec_block));
	return u;
}

bool tkv__unit_tryref(tkv__unit *u)
{
	uint32_t r = ck_pr_load_32(&u->refs);
	for (;;) {
		if (r == TKV__UNIT_DEAD || (r == 0 && ck_pr_load_32(&u->published) != TKV__PUB_YES))
			return false;
		if (ck_pr_cas_32_value(&u->refs, r, r + 1, &r))
			return true;
	}
}

void tkv__unit_ref(tkv__unit *u)
{
	ck_pr_inc_32(&u->refs);
}

bool tkv__unit_unref(tkv__unit *u)
{
	/* Release: this holder's accesses to the unit before whoever frees it
	 * acquires the zero. */
	ck_pr_fence_release();
	uint32_t old = ck_pr_faa_32(&u->refs, (uint32_t)-1);
	if (old != 1)
		return false;
	ck_pr_fence_acquire();
	return true;
}

void tkv__unit_free(tkv__unit *u)
{
	free(u);
}

/* ---- the unit table ----------------------------------------------------- */

/* The entry of block b, making its chunk if `make` (any thread: chunks are
 * installed by CAS; the loser frees its own). NULL past the table or on
 * ENOMEM. */
static tkv__unit **slot(const tkv__seq *s, uint64_t b, bool make)
{
	unsigned k;
	uint64_t off;
	if (!tkv__chunk_locate(b, &k, &off))
		return NULL;
	tkv__unit ***chunkp = (tkv__unit ***)&s->units[k];
	tkv__unit **c = ck_pr_load_ptr(chunkp);
	ck_pr_fence_acquire(); /* the zeroed chunk before its pointer */
	if (c || !make)
		return c ? &c[off] : NULL;
	tkv__unit **fresh = calloc((size_t)TKV__CHUNK0 << k, sizeof(*fresh));
	if (!fresh)
		return NULL;
	ck_pr_fence_release();
	if (ck_pr_cas_ptr_value(chunkp, NULL, fresh, &c)) {
		c = fresh;
	} else {
		free(fresh);
		ck_pr_fence_acquire();
	}
	return &c[off];
}

tkv__unit *tkv__seq_unit(const tkv__seq *s, uint64_t b)
{
	tkv__unit **p = slot(s, b, false);
	if (!p)
		return NULL;
	/* Acquire: the unit's initialized fields before its pointer. */
	tkv__unit *u = ck_pr_load_ptr(p);
	ck_pr_fence_acquire();
	return u;
}

tkv__unit *tkv__seq_unit_make(tkv__seq *s, uint64_t b)
{
	tkv__unit **p = slot(s, b, true);
	if (!p)
		return NULL;
	tkv__unit *u = ck_pr_load_ptr(p);
	ck_pr_fence_acquire();
	if (u)
		return u;
	tkv__unit *fresh = tkv__unit_new(s->n_layers, s->id, b);
	if (!fresh)
		return NULL;
	/* Release: the initialized unit before its pointer. Two workers (two
	 * layers of one block) may race; the loser frees its unit. */
	ck_pr_fence_release();
	if (ck_pr_cas_ptr_value(p, NULL, fresh, &u))
		return fresh;
	tkv__unit_free(fresh);
	ck_pr_fence_acquire();
	return u;
}

int tkv__seq_unit_set(tkv__seq *s, uint64_t b, tkv__unit *u)
{
	tkv__unit **p = slot(s, b, true);
	if (!p)
		return -ENOMEM;
	ck_pr_fence_release(); /* the unit's fields before its pointer */
	ck_pr_store_ptr(p, u);
	return 0;
}

tkv__unit *tkv__seq_unit_take(tkv__seq *s, uint64_t b)
{
	tkv__unit **p = slot(s, b, false);
	if (!p)
		return NULL;
	tkv__unit *u = ck_pr_load_ptr(p);
	ck_pr_store_ptr(p, NULL);
	return u;
}

void tkv__seq_free(tkv__seq *s, void (*put)(void *ctx, tkv__unit *u), void *ctx)
{
	if (!s)
		return;
	for (unsigned k = 0; k < TKV__NCHUNKS; k++) {
		tkv__unit **c = s->units[k];
		if (!c)
			continue;
		for (size_t i = 0; i < ((size_t)TKV__CHUNK0 << k); i++)
			if (c[i])
				put(ctx, c[i]);
		free(c);
	}
	for (unsigned k = 0; k < TKV__NCHUNKS; k++) {
		free(s->tok.chunks[k]);
		free(s->tok.keys[k]);
	}
	free(s->tok.salt);
	free(s->layers);
	free(s);
}

/* ---- pins and references ------------------------------------------------ */

bool tkv__seq_pin(tkv__seq *s, uint32_t n)
{
	ck_pr_add_32(&s->pins, n);
	/* Pairs with the fence in tkv__seq_table_remove (see there). */
	tkv__fence_full();
	if (ck_pr_load_32(&s->closing)) {
		ck_pr_sub_32(&s->pins, n);
		return false;
	}
	return true;
}

void tkv__seq_unpin(tkv__seq *s, uint32_t n)
{
	ck_pr_sub_32(&s->pins, n);
}

void tkv__seq_put(tkv__seq *s)
{
	/* Release: everything this caller did with the sequence happens before
	 * the closer's acquire of refs == 0 and the free that follows. */
	ck_pr_fence_release();
	ck_pr_dec_32(&s->refs);
}
