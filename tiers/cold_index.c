/*
 * cold_index.c - striped hash index of cold records (design, life cycle and
 * lock order: cold_index.h).
 *
 * Each stripe keeps two chained hash tables that double when their load
 * passes 1: entries by (seq, block), and sequence nodes by seq, each node
 * heading a doubly linked list of that sequence's entries. Entries that lose
 * their last reference while the stripe lock is held are collected on a
 * local list (through hnext, free once unlinked) and handed to the retire
 * callback after the unlock.
 */
#include "tiers/cold_index.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>

#include "base/hash.h"

#define N_STRIPES 64
#define ENT_PENDING 1
#define ENT_LIVE 2

typedef struct seqnode {
	uint64_t seq;
	struct seqnode *next;
	tkv__cold_ent *head;
} seqnode;

typedef struct stripe {
	pthread_mutex_t lock;
	tkv__cold_ent **ents;
	size_t n_ents_b, n_ents;
	seqnode **seqs;
	size_t n_seqs_b, n_seqs;
} __attribute__((aligned(64))) stripe;

struct tkv__cold_index {
	stripe st[N_STRIPES];
	uint32_t n_layers;
	tkv__cold_retire_fn retire;
	void *ctx;
	uint64_t live; /* atomic: LIVE entries */
};

static stripe *stripe_of(tkv__cold_index *x, uint64_t seq)
{
	return &x->st[tkv__mix64(seq) % N_STRIPES];
}

static size_t key_bucket(uint64_t seq, uint64_t block, size_t nb)
{
	return tkv__mix_pair(seq, block) & (nb - 1);
}

int tkv__cold_index_create(uint32_t n_layers, tkv__cold_retire_fn retire, void *ctx,
			   tkv__cold_index **out)
{
	tkv__cold_index *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->n_layers = n_layers;
	x->retire = retire;
	x->ctx = ctx;
	for (int i = 0; i < N_STRIPES; i++) {
		stripe *s = &x->st[i];
		pthread_mutex_init(&s->lock, NULL);
		s->n_ents_b = s->n_seqs_b = 16;
		s->ents = calloc(s->n_ents_b, sizeof(*s->ents));
		s->seqs = calloc(s->n_seqs_b, sizeof(*s->seqs));
		if (!s->ents || !s->seqs) {
			x->st[i].n_ents_b = 0;
			tkv__cold_index_destroy(x);
			return -ENOMEM;
		}
	}
	*out = x;
	return 0;
}

void tkv__cold_index_destroy(tkv__cold_index *x)
{
	if (!x)
		return;
	for (int i = 0; i < N_STRIPES; i++) {
		stripe *s = &x->st[i];
		for (size_t b = 0; s->ents && b < s->n_ents_b; b++)
			for (tkv__cold_ent *e = s->ents[b], *n; e; e = n) {
				n = e->hnext;
				free(e);
			}
		for (size_t b = 0; s->seqs && b < s->n_seqs_b; b++)
			for (seqnode *q = s->seqs[b], *n; q; q = n) {
				n = q->next;
				free(q);
			}
		free(s->ents);
		free(s->seqs);
		pthread_mutex_destroy(&s->lock);
	}
	free(x);
}

tkv__cold_ent *tkv__cold_ent_new(tkv__cold_index *x, uint64_t seq, uint64_t block,
				 uint64_t seqno, uint32_t seg, uint32_t slot, uint32_t n_tokens,
				 const uint32_t *crc)
{
	tkv__cold_ent *e = calloc(1, sizeof(*e) + sizeof(uint32_t) * x->n_layers);
	if (!e)
		return NULL;
	e->seq = seq;
	e->block = block;
	e->seqno = seqno;
	e->seg = seg;
	e->slot = slot;
	e->n_tokens = n_tokens;
	if (crc)
		memcpy(e->crc, crc, sizeof(uint32_t) * x->n_layers);
	return e;
}

void tkv__cold_ent_free(tkv__cold_ent *e)
{
	free(e);
}

/* ---- tables (stripe lock held) ---- */

static int grow_ents(stripe *s)
{
	size_t nb = s->n_ents_b * 2;
	tkv__cold_ent **t = calloc(nb, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t b = 0; b < s->n_ents_b; b++)
		for (tkv__cold_ent *e = s->ents[b], *n; e; e = n) {
			size_t k = key_bucket(e->seq, e->block, nb);
			n = e->hnext;
			e->hnext = t[k];
			t[k] = e;
		}
	free(s->ents);
	s->ents = t;
	s->n_ents_b = nb;
	return 0;
}

static int grow_seqs(stripe *s)
{
	size_t nb = s->n_seqs_b * 2;
	seqnode **t = calloc(nb, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t b = 0; b < s->n_seqs_b; b++)
		for (seqnode *q = s->seqs[b], *n; q; q = n) {
			size_t k = tkv__mix64(q->seq) & (nb - 1);
			n = q->next;
			q->next = t[k];
			t[k] = q;
		}
	free(s->seqs);
	s->seqs = t;
	s->n_seqs_b = nb;
	return 0;
}

static seqnode **seq_slot(stripe *s, uint64_t seq)
{
	seqnode **p = &s->seqs[tkv__mix64(seq) & (s->n_seqs_b - 1)];
	while (*p && (*p)->seq != seq)
		p = &(*p)->next;
	return p;
}

/* Links e into both tables. */
static int link_ent(stripe *s, tkv__cold_ent *e)
{
	seqnode **p, *q;
	size_t k;
	if ((s->n_ents >= s->n_ents_b && grow_ents(s) < 0) ||
	    (s->n_seqs >= s->n_seqs_b && grow_seqs(s) < 0))
		return -ENOMEM;
	p = seq_slot(s, e->seq);
	if (!(q = *p)) {
		if (!(q = calloc(1, sizeof(*q))))
			return -ENOMEM;
		q->seq = e->seq;
		*p = q;
		s->n_seqs++;
	}
	e->sprev = NULL;
	e->snext = q->head;
	if (q->head)
		q->head->sprev = e;
	q->head = e;
	k = key_bucket(e->seq, e->block, s->n_ents_b);
	e->hnext = s->ents[k];
	s->ents[k] = e;
	s->n_ents++;
	e->linked = true;
	return 0;
}

/* Unlinks e from both tables and drops the table's reference; if that was
 * the last, pushes e on *dead. */
static void unlink_ent(tkv__cold_index *x, stripe *s, tkv__cold_ent *e, tkv__cold_ent **dead)
{
	tkv__cold_ent **p = &s->ents[key_bucket(e->seq, e->block, s->n_ents_b)];
	seqnode **qp = seq_slot(s, e->seq), *q = *qp;
	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	s->n_ents--;
	if (e->sprev)
		e->sprev->snext = e->snext;
	else
		q->head = e->snext;
	if (e->snext)
		e->snext->sprev = e->sprev;
	if (!q->head) {
		*qp = q->next;
		free(q);
		s->n_seqs--;
	}
	if (e->state == ENT_LIVE)
		ck_pr_dec_64(&x->live);
	e->linked = false;
	e->state = 0;
	if (--e->refs == 0) {
		e->hnext = *dead;
		*dead = e;
	}
}

static tkv__cold_ent *find_live(stripe *s, uint64_t seq, uint64_t block)
{
	tkv__cold_ent *e = s->ents[key_bucket(seq, block, s->n_ents_b)];
	while (e && !(e->seq == seq && e->block == block && e->state == ENT_LIVE))
		e = e->hnext;
	return e;
}

static void retire_all(tkv__cold_index *x, tkv__cold_ent *dead)
{
	while (dead) {
		tkv__cold_ent *n = dead->hnext;
		x->retire(x->ctx, dead);
		dead = n;
	}
}

/* Makes e (linked, not LIVE) the LIVE entry of its key unless a newer one is
 * there; the loser is unlinked. Returns true if e won. */
static bool make_live(tkv__cold_index *x, stripe *s, tkv__cold_ent *e, tkv__cold_ent **dead)
{
	tkv__cold_ent *old = find_live(s, e->seq, e->block);
	if (old && old->seqno > e->seqno) {
		unlink_ent(x, s, e, dead);
		return false;
	}
	if (old)
		unlink_ent(x, s, old, dead);
	e->state = ENT_LIVE;
	ck_pr_inc_64(&x->live);
	return true;
}

/* ---- operations ---- */

int tkv__cold_index_add_pending(tkv__cold_index *x, tkv__cold_ent *e)
{
	stripe *s = stripe_of(x, e->seq);
	int rc;
	pthread_mutex_lock(&s->lock);
	e->state = ENT_PENDING;
	e->refs = 2;
	rc = link_ent(s, e);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tkv__cold_index_commit(tkv__cold_index *x, tkv__cold_ent *e)
{
	stripe *s = stripe_of(x, e->seq);
	tkv__cold_ent *dead = NULL;
	int rc = 0;
	pthread_mutex_lock(&s->lock);
	if (!e->linked)
		rc = -ECANCELED;
	else
		(void)make_live(x, s, e, &dead); /* losing to a newer record is fine */
	if (--e->refs == 0) {
		e->hnext = dead;
		dead = e;
	}
	pthread_mutex_unlock(&s->lock);
	retire_all(x, dead);
	return rc;
}

void tkv__cold_index_abort(tkv__cold_index *x, tkv__cold_ent *e)
{
	stripe *s = stripe_of(x, e->seq);
	tkv__cold_ent *dead = NULL;
	pthread_mutex_lock(&s->lock);
	if (e->linked)
		unlink_ent(x, s, e, &dead);
	if (--e->refs == 0) {
		e->hnext = dead;
		dead = e;
	}
	pthread_mutex_unlock(&s->lock);
	retire_all(x, dead);
}

int tkv__cold_index_insert(tkv__cold_index *x, tkv__cold_ent *e)
{
	stripe *s = stripe_of(x, e->seq);
	tkv__cold_ent *dead = NULL;
	int rc;
	pthread_mutex_lock(&s->lock);
	e->state = ENT_PENDING;
	e->refs = 1;
	rc = link_ent(s, e);
	if (rc == 0)
		(void)make_live(x, s, e, &dead);
	pthread_mutex_unlock(&s->lock);
	retire_all(x, dead);
	return rc;
}

tkv__cold_ent *tkv__cold_index_pin(tkv__cold_index *x, uint64_t seq, uint64_t block)
{
	stripe *s = stripe_of(x, seq);
	tkv__cold_ent *e;
	pthread_mutex_lock(&s->lock);
	e = find_live(s, seq, block);
	if (e)
		e->refs++;
	pthread_mutex_unlock(&s->lock);
	return e;
}

void tkv__cold_index_unpin(tkv__cold_index *x, tkv__cold_ent *e)
{
	stripe *s = stripe_of(x, e->seq);
	bool last;
	pthread_mutex_lock(&s->lock);
	last = --e->refs == 0;
	pthread_mutex_unlock(&s->lock);
	if (last)
		x->retire(x->ctx, e);
}

bool tkv__cold_index_drop(tkv__cold_index *x, tkv__cold_ent *e)
{
	stripe *s = stripe_of(x, e->seq);
	tkv__cold_ent *dead = NULL;
	bool was = false;
	pthread_mutex_lock(&s->lock);
	if (e->linked && e->state == ENT_LIVE) {
		unlink_ent(x, s, e, &dead);
		was = true;
	}
	pthread_mutex_unlock(&s->lock);
	retire_all(x, dead);
	return was;
}

bool tkv__cold_index_lookup(tkv__cold_index *x, uint64_t seq, uint64_t block, uint32_t *n_tokens)
{
	stripe *s = stripe_of(x, seq);
	tkv__cold_ent *e;
	pthread_mutex_lock(&s->lock);
	e = find_live(s, seq, block);
	if (e && n_tokens)
		*n_tokens = e->n_tokens;
	pthread_mutex_unlock(&s->lock);
	return e != NULL;
}

/* Unlinks the entries of seq for which `all` or block == `block` (and, if
 * seqno is not 0, seqno matches). */
static size_t remove_where(tkv__cold_index *x, uint64_t seq, bool all, uint64_t block,
			   uint64_t seqno, bool keep_header)
{
	stripe *s = stripe_of(x, seq);
	tkv__cold_ent *dead = NULL;
	size_t n = 0;
	seqnode *q;
	pthread_mutex_lock(&s->lock);
	q = *seq_slot(s, seq);
	for (tkv__cold_ent *e = q ? q->head : NULL, *nx; e; e = nx) {
		nx = e->snext; /* read first: unlinking may free the node q */
		if (all || (e->block == block && (!seqno || e->seqno == seqno))) {
			n += e->state == ENT_LIVE;
			/* only a durable record: a cancelled write's slot may
			 * hold a torn header, zeroed as usual */
			e->keep_header = keep_header && e->state == ENT_LIVE;
			unlink_ent(x, s, e, &dead);
		}
	}
	pthread_mutex_unlock(&s->lock);
	retire_all(x, dead);
	return n;
}

int tkv__cold_index_remove(tkv__cold_index *x, uint64_t seq, uint64_t block)
{
	return (int)remove_where(x, seq, false, block, 0, false);
}

int tkv__cold_index_remove_if(tkv__cold_index *x, uint64_t seq, uint64_t block, uint64_t seqno,
			      bool keep_header)
{
	return (int)remove_where(x, seq, false, block, seqno, keep_header);
}

size_t tkv__cold_index_remove_seq(tkv__cold_index *x, uint64_t seq)
{
	return remove_where(x, seq, true, 0, 0, false);
}

static int cmp_block(const void *a, const void *b)
{
	uint64_t x = ((const tkv__cold_block_info *)a)->block;
	uint64_t y = ((const tkv__cold_block_info *)b)->block;
	return x < y ? -1 : x > y;
}

size_t tkv__cold_index_list(tkv__cold_index *x, uint64_t seq, tkv__cold_block_info *out,
			    size_t max)
{
	stripe *s = stripe_of(x, seq);
	size_t n = 0;
	seqnode *q;
	pthread_mutex_lock(&s->lock);
	q = *seq_slot(s, seq);
	for (tkv__cold_ent *e = q ? q->head : NULL; e; e = e->snext) {
		if (e->state != ENT_LIVE)
			continue;
		if (n < max)
			out[n] = (tkv__cold_block_info){e->block, e->n_tokens, e->seqno};
		n++;
	}
	pthread_mutex_unlock(&s->lock);
	if (out && max) /* qsort's base must not be NULL, even for 0 items */
		qsort(out, n < max ? n : max, sizeof(*out), cmp_block);
	return n;
}

size_t tkv__cold_index_seqs(tkv__cold_index *x, uint64_t *out, size_t max)
{
	size_t n = 0;
	for (int i = 0; i < N_STRIPES; i++) {
		stripe *s = &x->st[i];
		pthread_mutex_lock(&s->lock);
		for (size_t b = 0; b < s->n_seqs_b; b++)
			for (seqnode *q = s->seqs[b]; q; q = q->next) {
				bool live = false;
				for (tkv__cold_ent *e = q->head; e && !live; e = e->snext)
					live = e->state == ENT_LIVE;
				if (live && n < max)
					out[n] = q->seq;
				n += live;
			}
		pthread_mutex_unlock(&s->lock);
	}
	return n;
}

uint64_t tkv__cold_index_count(tkv__cold_index *x)
{
	return ck_pr_load_64(&x->live);
}
