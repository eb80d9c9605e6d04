/*
 * shared_map.c - the node table, the slot map, its refresh from CLUSTER
 * SHARDS (CLUSTER SLOTS when that fails) and node health. Concurrency: see
 * shared_impl.h.
 *
 * A refresh asks the known nodes in turn (starting one further each time,
 * so a dead node is not always asked first), skipping nodes marked down,
 * and takes the first complete answer; it stops asking once it has waited
 * connect_timeout_ms + op_timeout_ms, the most one node can cost. A node that says
 * "cluster support disabled" is a standalone server: it owns every slot.
 * A shard without a master leaves its slots unowned; ops on them fail fast
 * with -EHOSTDOWN until a refresh finds one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "tiers/shared_impl.h"

uint32_t tkv__shared_node_count(tkv__shared *s)
{
	/* N2: pairs with N1; the entries below the count are fully written. */
	uint32_t n = ck_pr_load_32(&s->n_nodes);
	ck_pr_fence_load();
	return n;
}

static uint16_t node_lookup(tkv__shared *s, uint32_t n, const char *host, size_t len, int port)
{
	for (uint32_t i = 0; i < n; i++) {
		const tkv__shared_node *x = &s->nodes[i];
		if (x->port == port && strlen(x->host) == len && memcmp(x->host, host, len) == 0)
			return (uint16_t)i;
	}
	return TKV__SHARED_NO_NODE;
}

uint16_t tkv__shared_node_find_add(tkv__shared *s, const char *host, size_t host_len, int port)
{
	uint16_t id = node_lookup(s, tkv__shared_node_count(s), host, host_len, port);
	if (id != TKV__SHARED_NO_NODE || host_len == 0 || host_len >= TKV__SHARED_HOST_MAX)
		return id;
	pthread_mutex_lock(&s->nodes_lock);
	uint32_t n = s->n_nodes;
	id = node_lookup(s, n, host, host_len, port);
	if (id == TKV__SHARED_NO_NODE && n < TKV__SHARED_MAX_NODES) {
		tkv__shared_node *x = &s->nodes[n];
		memcpy(x->host, host, host_len);
		x->host[host_len] = '\0';
		x->port = port;
		/* N1: the entry is written before the count that shows it. */
		ck_pr_fence_store();
		ck_pr_store_32(&s->n_nodes, n + 1);
		id = (uint16_t)n;
	}
	pthread_mutex_unlock(&s->nodes_lock);
	return id;
}

bool tkv__shared_node_is_down(tkv__shared *s, uint16_t node, uint64_t now_ns)
{
	return now_ns < ck_pr_load_64(&s->nodes[node].down_until_ns);
}

void tkv__shared_node_failed(tkv__shared *s, uint16_t node)
{
	tkv__shared_node *x = &s->nodes[node];
	uint32_t fails = ck_pr_faa_32(&x->fails, 1) + 1;
	uint64_t mult = fails > 6 ? TKV__SHARED_BACKOFF_MAX : 1ull << (fails - 1);
	if (mult > TKV__SHARED_BACKOFF_MAX)
		mult = TKV__SHARED_BACKOFF_MAX;
	ck_pr_store_64(&x->down_until_ns, tkv__now_ns() + s->backoff_ns * mult);
	/* A failover may have given its slots to another node. */
	ck_pr_store_32(&s->map_stale, 1);
}

void tkv__shared_node_ok(tkv__shared *s, uint16_t node)
{
	tkv__shared_node *x = &s->nodes[node];
	if (ck_pr_load_32(&x->fails)) {
		ck_pr_store_32(&x->fails, 0);
		ck_pr_store_64(&x->down_until_ns, 0);
	}
}

uint16_t tkv__shared_slot_owner(tkv__shared *s, uint16_t slot)
{
	return ck_pr_load_16(&s->slot_owner[slot]);
}

void tkv__shared_slot_set(tkv__shared *s, uint16_t slot, uint16_t node)
{
	ck_pr_store_16(&s->slot_owner[slot], node);
}

int tkv__shared_parse_addr(const char *a, size_t n, const char *default_host, const char **host,
			   size_t *host_len, int *port)
{
	const char *colon = NULL;
	for (size_t i = 0; i < n; i++)
		if (a[i] == ':')
			colon = a + i;
	if (!colon || colon == a + n - 1 || (size_t)(a + n - colon) > 6)
		return -EINVAL;
	long p = 0;
	for (const char *d = colon + 1; d < a + n; d++) {
		if (*d < '0' || *d > '9')
			return -EINVAL;
		p = p * 10 + (*d - '0');
	}
	if (p < 1 || p > 65535)
		return -EINVAL;
	*host = colon == a ? default_host : a;
	*host_len = colon == a ? (default_host ? strlen(default_host) : 0) : (size_t)(colon - a);
	*port = (int)p;
	return *host_len ? 0 : -EINVAL;
}

/* --- parsing the two map commands --- */

static bool str_is(const redisReply *r, const char *s)
{
	return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
	       r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static bool int_of(const redisReply *r, long long *v)
{
	if (r->type == REDIS_REPLY_INTEGER) {
		*v = r->integer;
		return true;
	}
	if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 18)
		return false;
	char b[20], *end;
	memcpy(b, r->str, r->len);
	b[r->len] = '\0';
	*v = strtoll(b, &end, 10);
	return *end == '\0';
}

/* A field of a RESP2 "map" (an array of alternating names and values). */
static const redisReply *field(const redisReply *m, const char *name)
{
	if (m->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < m->elements; i += 2)
		if (str_is(m->element[i], name))
			return m->element[i + 1];
	return NULL;
}

static int set_range(uint16_t *owner, long long lo, long long hi, uint16_t node)
{
	if (lo < 0 || hi >= TKV__SHARED_SLOTS || lo > hi || node == TKV__SHARED_NO_NODE)
		return -EPROTO;
	for (long long i = lo; i <= hi; i++)
		owner[i] = node;
	return 0;
}

static uint16_t node_of(tkv__shared *s, const redisReply *host, long long port, const char *asked)
{
	if (!host || host->type != REDIS_REPLY_STRING || port < 1 || port > 65535)
		return TKV__SHARED_NO_NODE;
	/* An empty or "?" endpoint: the node does not know its address; the
	 * one we asked does, and it is the same host. */
	if (host->len == 0 || str_is(host, "?"))
		return tkv__shared_node_find_add(s, asked, strlen(asked), (int)port);
	return tkv__shared_node_find_add(s, host->str, host->len, (int)port);
}

static uint16_t shard_master(tkv__shared *s, const redisReply *nodes, const char *asked)
{
	for (size_t i = 0; nodes && nodes->type == REDIS_REPLY_ARRAY && i < nodes->elements; i++) {
		const redisReply *x = nodes->element[i];
		const redisReply *port = field(x, "port");
		const redisReply *host = field(x, "endpoint");
		long long p;
		if (!str_is(field(x, "role"), "master") || !port || !int_of(port, &p))
			continue;
		if (!host || host->len == 0 || str_is(host, "?"))
			host = field(x, "ip");
		return node_of(s, host, p, asked);
	}
	return TKV__SHARED_NO_NODE;
}

static int parse_shards(tkv__shared *s, const redisReply *r, uint16_t *owner, const char *asked)
{
	if (r->type != REDIS_REPLY_ARRAY)
		return -EPROTO;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *slots = field(r->element[i], "slots");
		if (!slots || slots->type != REDIS_REPLY_ARRAY || slots->elements % 2)
			return -EPROTO;
		if (slots->elements == 0)
			continue;
		uint16_t m = shard_master(s, field(r->element[i], "nodes"), asked);
		for (size_t k = 0; k < slots->elements; k += 2) {
			long long lo, hi;
			if (!int_of(slots->element[k], &lo) || !int_of(slots->element[k + 1], &hi))
				return -EPROTO;
			/* No master: the slots stay unowned, the rest is usable. */
			if (m != TKV__SHARED_NO_NODE && set_range(owner, lo, hi, m) != 0)
				return -EPROTO;
		}
	}
	return 0;
}

static int parse_slots(tkv__shared *s, const redisReply *r, uint16_t *owner, const char *asked)
{
	if (r->type != REDIS_REPLY_ARRAY)
		return -EPROTO;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		long long lo, hi, port;
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || !int_of(e->element[0], &lo) ||
		    !int_of(e->element[1], &hi))
			return -EPROTO;
		const redisReply *m = e->element[2];
		if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 || !int_of(m->element[1], &port))
			return -EPROTO;
		if (set_range(owner, lo, hi, node_of(s, m->element[0], port, asked)) != 0)
			return -EPROTO;
	}
	return 0;
}

static bool is_standalone(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR && strstr(r->str, "cluster support disabled");
}

/* The map according to one node: 0, or -EHOSTDOWN (no answer), -EPROTO. */
static int map_from(tkv__shared *s, uint16_t node, uint16_t *owner)
{
	static const char *const shards[] = {"CLUSTER", "SHARDS"}, *const slots[] = {"CLUSTER", "SLOTS"};
	const char *asked = s->nodes[node].host;
	redisReply *r = tkv__shared_query(s, node, 2, shards);
	int rc = -EPROTO;
	if (!r) {
		tkv__shared_node_failed(s, node);
		return -EHOSTDOWN;
	}
	if (is_standalone(r)) {
		rc = set_range(owner, 0, TKV__SHARED_SLOTS - 1, node);
	} else if (r->type == REDIS_REPLY_ERROR) {
		freeReplyObject(r); /* e.g. a server older than 7.0 */
		r = tkv__shared_query(s, node, 2, slots);
		if (r && is_standalone(r))
			rc = set_range(owner, 0, TKV__SHARED_SLOTS - 1, node);
		else if (r)
			rc = parse_slots(s, r, owner, asked);
	} else {
		rc = parse_shards(s, r, owner, asked);
	}
	if (r)
		freeReplyObject(r);
	return rc;
}

static void apply(tkv__shared *s, const uint16_t *owner)
{
	bool used[TKV__SHARED_MAX_NODES] = {0};
	for (uint32_t i = 0; i < TKV__SHARED_SLOTS; i++) {
		tkv__shared_slot_set(s, (uint16_t)i, owner[i]);
		if (owner[i] != TKV__SHARED_NO_NODE)
			used[owner[i]] = true;
	}
	uint32_t n = tkv__shared_node_count(s);
	for (uint32_t i = 0; i < n; i++)
		ck_pr_store_32(&s->nodes[i].in_map, used[i]);
}

/* Under refresh_lock. */
static int refresh(tkv__shared *s)
{
	uint16_t *owner = malloc(TKV__SHARED_SLOTS * sizeof(*owner));
	if (!owner)
		return -ENOMEM;
	uint32_t n = tkv__shared_node_count(s), start = s->refresh_rr++;
	/* One node's worth of waiting: a refresh runs on some op's thread. */
	uint64_t deadline = tkv__now_ns() + s->connect_timeout_ns + s->op_timeout_ns;
	int rc = -EHOSTDOWN;
	for (uint32_t k = 0; k < n && rc != 0 && tkv__now_ns() < deadline; k++) {
		uint16_t node = (uint16_t)((start + k) % n);
		if (tkv__shared_node_is_down(s, node, tkv__now_ns()))
			continue;
		for (uint32_t i = 0; i < TKV__SHARED_SLOTS; i++)
			owner[i] = TKV__SHARED_NO_NODE;
		rc = map_from(s, node, owner);
	}
	if (rc == 0)
		apply(s, owner);
	free(owner);
	return rc;
}

void tkv__shared_map_maybe_refresh(tkv__shared *s, bool force)
{
	if (!force && !ck_pr_load_32(&s->map_stale))
		return;
	if (tkv__now_ns() < ck_pr_load_64(&s->next_refresh_ns))
		return;
	if (pthread_mutex_trylock(&s->refresh_lock) != 0)
		return; /* another thread is at it: route by the map we have */
	ck_pr_store_32(&s->map_stale, 0);
	int rc = refresh(s);
	if (rc == 0) {
		TKV__SHARED_COUNT(s, map_refreshes, 1);
	} else {
		TKV__SHARED_COUNT(s, map_refresh_failures, 1);
		ck_pr_store_32(&s->map_stale, 1);
		ck_pr_store_64(&s->next_refresh_ns, tkv__now_ns() + s->backoff_ns);
	}
	pthread_mutex_unlock(&s->refresh_lock);
}
