/*
 * seq_cache.c - the prefix cache's API (tierkv.h, "Prefix cache"): opening
 * a sequence with its prompt's token ids (attaching the cached prefix),
 * appending token ids, looking a prompt up, dropping the cache. The cache
 * itself (index, publishing, drops) is tiers/cache.c.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>

#include "base/error.h"
#include "base/struct_size.h"
#include "runtime/runtime.h"

enum { MAX_SALT = 1024 };

static const tkv_seq_opts no_opts = {sizeof(tkv_seq_opts), NULL, 0, 0};

static int check_opts(const tkv_seq_opts *o, const char *what)
{
	int rc = tkv__struct_check(o, sizeof(tkv_seq_opts), sizeof(tkv_seq_opts),
				   TKV__STRUCT_IN, "tkv_seq_opts");
	if (rc)
		return rc;
	if (o->salt_len > MAX_SALT || (o->salt_len && !o->salt))
		return tkv__fail(-EINVAL, "%s: salt must be NULL/0 or 1..%d bytes", what, MAX_SALT);
	if (o->flags & ~TKV_SEQ_NO_PUBLISH)
		return tkv__fail(-EINVAL, "%s: unknown flags 0x%x", what, o->flags);
	return 0;
}

/* Keys of the first nb full blocks of s, contiguous (the lookup's input). */
static tkv__key *keys_of(const tkv__seq *s, uint64_t nb)
{
	tkv__key *k = malloc((nb ? nb : 1) * sizeof(*k));
	for (uint64_t b = 0; k && b < nb; b++)
		k[b] = tkv__seq_key(s, b);
	return k;
}

/*
 * Room in the hot tier for one fetched block, without waiting: the space
 * there is, or what dropping unreferenced cache blocks frees (offered to
 * the cluster first, cache.c). A fetch never waits for the evictor (that
 * would make an open wait on SSD writes) and a fetch that finds no room is
 * not a refused store: it only stops, and the engine stores those tokens
 * itself, with a store's backpressure. With a cache the hot tier is kept
 * full (automatic watermarks), so the evictor is asked for the room too:
 * the next fetches and stores find it demoted to SSD rather than dropped.
 */
static bool reserve_for_fetch(tkv_runtime *rt, uint64_t blocks)
{
	if (tkv__hot_reserve(&rt->hot, blocks))
		return true;
	if (rt->ev)
		tkv__evictor_want(rt->ev, blocks);
	return tkv__cache_reclaim_hot(rt->cache, blocks) > 0 && tkv__hot_reserve(&rt->hot, blocks);
}

/* A new unit holding a fetched record's layers in hot blocks, or NULL when
 * the hot tier has no room for it now. */
static tkv__unit *unit_from_record(tkv_runtime *rt, void *rec)
{
	const uint32_t nl = rt->cfg.n_layers;
	if (!reserve_for_fetch(rt, nl))
		return NULL;
	tkv__unit *u = tkv__unit_new(nl, TKV__CACHE_SEQ, 0);
	if (!u) {
		tkv__hot_release(&rt->hot, nl);
		return NULL;
	}
	uint32_t l = 0;
	for (; l < nl; l++) {
		void *mem = tkv__hot_alloc(&rt->hot, l);
		if (!mem)
			break;
		memcpy(mem, tkv__shared_tier_layer(rt->shared, rec, l), rt->geo.block_bytes);
		u->blocks[l].mem = mem;
	}
	if (l < nl) { /* frees the blocks it has and releases all nl */
		tkv__hot_release(&rt->hot, nl - l);
		tkv__unit_destroy(&rt->tiers, u);
		return NULL;
	}
	return u;
}

/*
 * Continues a lookup that matched blocks [0, from) locally in the shared
 * tier: fetches blocks from..nb-1 in windows (pipelined, verified), stops
 * at the first that is not a verified hit, and makes each one a cache
 * entry (tkv__cache_adopt) with a reference into units[]. Returns the
 * blocks now matched (>= from). Never fails: whatever goes wrong is a miss.
 */
static size_t fetch_shared(tkv_runtime *rt, const tkv__key *keys, const uint32_t *tokens,
			   size_t from, size_t nb, tkv__key salt_id, tkv__unit **units)
{
	const uint32_t bt = rt->cfg.block_tokens;
	size_t window = tkv__shared_tier_fetch_window(tkv__shared_tier_record_bytes(rt->shared));
	void *bufs[TKV__SHARED_TIER_FETCH_MAX] = {0};
	size_t got = from;
	while (got < nb) {
		size_t n = nb - got < window ? nb - got : window, have = 0;
		while (have < n && (bufs[have] || (bufs[have] = tkv__shared_tier_buf_raw(rt->shared))))
			have++;
		size_t ok = tkv__shared_tier_fetch(rt->shared, keys + got, tokens + got * bt, have,
						   bufs);
		size_t adopted = 0;
		for (; adopted < ok; adopted++) {
			size_t b = got + adopted;
			tkv__key parent = b == 0 ? salt_id : (tkv__key){0, units[b - 1]->rec_block};
			tkv__unit *u = unit_from_record(rt, bufs[adopted]);
			if (!u || !(u = tkv__cache_adopt(rt->cache, u, keys[b], parent,
							 b ? units[b - 1] : NULL, tokens + b * bt)))
				break;
			units[b] = u;
		}
		got += adopted;
		if (adopted < n)
			break;
	}
	for (size_t i = 0; i < window; i++)
		tkv__shared_tier_buf_free(rt->shared, bufs[i]);
	return got;
}

/* Attaches the cached prefix of s's known tokens; returns blocks attached
 * or -ENOMEM. */
static int64_t attach_prefix(tkv_runtime *rt, tkv__seq *s, const uint32_t *tokens)
{
	uint64_t nb = s->tok.keyed;
	tkv__key *keys = keys_of(s, nb);
	tkv__unit **units = malloc((nb ? nb : 1) * sizeof(*units));
	if (!keys || !units) {
		free(keys);
		free(units);
		return -ENOMEM;
	}
	tkv__key salt_id = {s->tok.salt_id_hi, s->tok.salt_id_lo};
	size_t m = tkv__cache_lookup(rt->cache, keys, tokens, nb, salt_id, units, NULL, true);
	if (rt->shared && m < nb)
		m = fetch_shared(rt, keys, tokens, m, nb, salt_id, units);
	int rc = 0;
	for (size_t b = 0; b < m; b++) {
		if (rc || (rc = tkv__seq_unit_set(s, b, units[b])))
			tkv__unit_put(&rt->tiers, units[b]); /* not installed */
	}
	free(keys);
	free(units);
	if (rc)
		return rc;
	/* Every layer holds the attached tokens: nothing of them is pending. */
	uint64_t pos = (uint64_t)m * rt->cfg.block_tokens;
	for (uint32_t l = 0; l < s->n_layers; l++) {
		s->layers[l].next_pos = pos;
		s->layers[l].done_pos = pos;
		s->layers[l].retired_pos = pos;
	}
	return (int64_t)m;
}

static int set_salt(tkv__seq *s, const tkv_seq_opts *o)
{
	tkv__key id = tkv__key_salt_id(o->salt, o->salt_len);
	s->tok.salt_id_hi = id.hi;
	s->tok.salt_id_lo = id.lo;
	if (!o->salt_len)
		return 0;
	if (!(s->tok.salt = malloc(o->salt_len)))
		return -ENOMEM;
	memcpy(s->tok.salt, o->salt, o->salt_len);
	s->tok.salt_len = o->salt_len;
	return 0;
}

int tkv_seq_open_tokens(tkv_runtime *rt, uint64_t seq_id, const uint32_t *tokens,
			size_t n_tokens, const tkv_seq_opts *opts, uint64_t *cached_tokens)
{
	int rc = tkv__rt_check(rt);
	if (rc || (rc = tkv__seq_id_check(seq_id, "seq_open_tokens")))
		return rc;
	if (!tokens && n_tokens)
		return tkv__fail(-EINVAL, "seq_open_tokens: NULL tokens");
	if (!opts)
		opts = &no_opts;
	if ((rc = check_opts(opts, "seq_open_tokens")) ||
	    (rc = tkv__seq_not_open(rt, seq_id, "seq_open_tokens")))
		return rc;
	tkv__seq *s = tkv__seq_new(seq_id, rt->cfg.n_layers);
	if (!s)
		return tkv__fail(-ENOMEM, "seq_open_tokens: sequence %llu",
				 (unsigned long long)seq_id);
	int64_t attached = 0;
	if (rt->cache) {
		s->tok.cache = !(opts->flags & TKV_SEQ_NO_PUBLISH);
		if (set_salt(s, opts) || tkv__seq_tokens_append(rt->cache, s, tokens, n_tokens) ||
		    (attached = attach_prefix(rt, s, tokens)) < 0) {
			tkv__seq_discard(rt, s);
			return tkv__fail(-ENOMEM, "seq_open_tokens: sequence %llu: out of memory",
					 (unsigned long long)seq_id);
		}
	}
	/* not a re-open: a previous run's records under this id must go */
	if ((rc = tkv__seq_insert_fresh(rt, s, "seq_open_tokens")))
		return rc;
	if (cached_tokens)
		*cached_tokens = (uint64_t)attached * rt->cfg.block_tokens;
	return 0;
}

int tkv_seq_append_tokens(tkv_runtime *rt, uint64_t seq_id, const uint32_t *tokens,
			  size_t n_tokens)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	if (!tokens && n_tokens)
		return tkv__fail(-EINVAL, "seq_append_tokens: NULL tokens");
	tkv__seq *s = tkv__seq_get(&rt->seqs, seq_id);
	if (!s)
		return tkv__fail(-ENOENT, "seq_append_tokens: sequence %llu is not open",
				 (unsigned long long)seq_id);
	if (rt->cache) {
		uint64_t first = s->tok.keyed;
		if (tkv__seq_tokens_append(rt->cache, s, tokens, n_tokens))
			rc = tkv__fail(-ENOMEM, "seq_append_tokens: out of memory");
		else
			tkv__cache_tokens_known(rt->cache, s, first, s->tok.keyed);
	}
	tkv__seq_put(s);
	return rc;
}

int tkv_cache_lookup(tkv_runtime *rt, const uint32_t *tokens, size_t n_tokens,
		     const tkv_seq_opts *opts, tkv_cache_match *out)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	if (!rt->cache)
		return tkv__fail(-EINVAL, "cache_lookup: no prefix cache (config.model_id)");
	if ((!tokens && n_tokens) || !out)
		return tkv__fail(-EINVAL, "cache_lookup: NULL tokens or out");
	if (!opts)
		opts = &no_opts;
	if ((rc = check_opts(opts, "cache_lookup")) ||
	    (rc = tkv__struct_check(out, offsetof(tkv_cache_match, shared_blocks), sizeof(*out),
				    TKV__STRUCT_OUT, "tkv_cache_match")))
		return rc;
	const uint32_t bt = rt->cfg.block_tokens;
	size_t nb = n_tokens / bt;
	/* short prompts (the common router question) need no allocation */
	tkv__key small[64];
	tkv__key *keys = nb <= 64 ? small : malloc(nb * sizeof(*keys));
	if (!keys)
		return tkv__fail(-ENOMEM, "cache_lookup: out of memory");
	tkv__key_chain(tkv__cache_ns(rt->cache), opts->salt, opts->salt_len, tokens, bt, nb, keys);
	tkv__cache_match m;
	tkv__cache_lookup(rt->cache, keys, tokens, nb, tkv__key_salt_id(opts->salt, opts->salt_len),
			  NULL, &m, true);
	uint64_t shared = 0;
	while (rt->shared && m.blocks + shared < nb) {
		size_t ask = nb - m.blocks - shared, got;
		ask = ask < 64 ? ask : 64;
		shared += got = tkv__shared_tier_present(rt->shared, keys + m.blocks + shared, ask);
		if (got < ask)
			break; /* the first absent block ends the prefix */
	}
	if (keys != small)
		free(keys);
	tkv_cache_match full = {sizeof(full), (m.blocks + shared) * bt, m.hot, m.cold, shared};
	tkv__struct_put(out, &full, sizeof(full));
	return 0;
}

int64_t tkv_cache_drop(tkv_runtime *rt)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	return rt->cache ? (int64_t)tkv__cache_drop_all(rt->cache) : 0;
}
