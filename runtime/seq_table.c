/*
 * seq_table.c - the sharded sequence hash table (see seq_table.h).
 */
#include "runtime/seq_table.h"

#include "base/fence.h"
#include "base/hash.h"

#include <errno.h>
#include <stdlib.h>

#include <ck_pr.h>

/* Request ids are often sequential: the shard (low bits) and the bucket
 * (high bits) must both come out uniform. */
static uint64_t mix(uint64_t x)
{
	return tkv__mix64(x);
}

static tkv__seq_shard *shard_of(tkv__seq_table *t, uint64_t h)
{
	return &t->shards[h & (TKV__SEQ_SHARDS - 1)];
}

int tkv__seq_table_init(tkv__seq_table *t)
{
	for (int i = 0; i < TKV__SEQ_SHARDS; i++) {
		tkv__seq_shard *s = &t->shards[i];
		s->n_buckets = 16;
		s->count = 0;
		s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
		if (!s->buckets) {
			while (i-- > 0) {
				free(t->shards[i].buckets);
				pthread_mutex_destroy(&t->shards[i].lock);
			}
			return -ENOMEM;
		}
		pthread_mutex_init(&s->lock, NULL);
	}
	t->count = 0;
	return 0;
}

void tkv__seq_table_fini(tkv__seq_table *t, void (*drop)(void *ctx, tkv__seq *s), void *ctx)
{
	for (int i = 0; i < TKV__SEQ_SHARDS; i++) {
		tkv__seq_shard *sh = &t->shards[i];
		for (uint32_t b = 0; b < sh->n_buckets; b++) {
			tkv__seq *s = sh->buckets[b];
			while (s) {
				tkv__seq *next = s->next;
				drop(ctx, s);
				s = next;
			}
		}
		free(sh->buckets);
		pthread_mutex_destroy(&sh->lock);
	}
}

/* Doubles the bucket array when chains average over 2 entries. */
static void maybe_grow(tkv__seq_shard *sh)
{
	if (sh->count < 2 * sh->n_buckets)
		return;
	uint32_t n = sh->n_buckets * 2;
	tkv__seq **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return; /* longer chains, still correct */
	for (uint32_t b = 0; b < sh->n_buckets; b++) {
		for (tkv__seq *s = sh->buckets[b], *next; s; s = next) {
			next = s->next;
			uint32_t i = (uint32_t)(mix(s->id) >> 32) & (n - 1);
			s->next = nb[i];
			nb[i] = s;
		}
	}
	free(sh->buckets);
	sh->buckets = nb;
	sh->n_buckets = n;
}

static tkv__seq **slot_of(tkv__seq_shard *sh, uint64_t id, uint64_t h)
{
	tkv__seq **p = &sh->buckets[(uint32_t)(h >> 32) & (sh->n_buckets - 1)];
	while (*p && (*p)->id != id)
		p = &(*p)->next;
	return p;
}

int tkv__seq_table_insert(tkv__seq_table *t, tkv__seq *s)
{
	uint64_t h = mix(s->id);
	tkv__seq_shard *sh = shard_of(t, h);
	pthread_mutex_lock(&sh->lock);
	tkv__seq **p = slot_of(sh, s->id, h);
	if (*p) {
		pthread_mutex_unlock(&sh->lock);
		return -EEXIST;
	}
	s->next = NULL;
	*p = s;
	sh->count++;
	maybe_grow(sh);
	pthread_mutex_unlock(&sh->lock);
	ck_pr_inc_64(&t->count);
	return 0;
}

tkv__seq *tkv__seq_get(tkv__seq_table *t, uint64_t id)
{
	uint64_t h = mix(id);
	tkv__seq_shard *sh = shard_of(t, h);
	pthread_mutex_lock(&sh->lock);
	tkv__seq *s = *slot_of(sh, id, h);
	if (s)
		ck_pr_inc_32(&s->refs);
	pthread_mutex_unlock(&sh->lock);
	return s;
}

tkv__seq *tkv__seq_table_remove(tkv__seq_table *t, uint64_t id, int *err)
{
	uint64_t h = mix(id);
	tkv__seq_shard *sh = shard_of(t, h);
	pthread_mutex_lock(&sh->lock);
	tkv__seq **p = slot_of(sh, id, h);
	tkv__seq *s = *p;
	if (!s) {
		*err = -ENOENT;
		pthread_mutex_unlock(&sh->lock);
		return NULL;
	}
	/* Dekker with tkv__seq_pin: we publish closing, then read pins; a view
	 * adds its pin, then reads closing. The full fences guarantee at least
	 * one side sees the other, so a view never keeps a pin on a sequence
	 * that is being freed. */
	ck_pr_store_32(&s->closing, 1);
	tkv__fence_full();
	if (ck_pr_load_32(&s->pins)) {
		ck_pr_store_32(&s->closing, 0);
		*err = -EBUSY;
		s = NULL;
	} else {
		*p = s->next;
		sh->count--;
		ck_pr_dec_64(&t->count);
	}
	pthread_mutex_unlock(&sh->lock);
	return s;
}
