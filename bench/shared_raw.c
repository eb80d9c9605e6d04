/*
 * shared_raw.c - the shared scenario's limit: plain hiredis, one blocking
 * connection per master, pipelined SET NX / GET of values of exactly the
 * shared tier's record size, shaped like the tier's traffic (shared.h).
 *
 * Nothing of the tier's client is used here except the slot function
 * (tkv__shared_key_slot, CRC16 of the key: the key must land on the master
 * it is sent to, or the server answers -MOVED) and the window rule's
 * constants. The map is read once, with CLUSTER SLOTS parsed by hiredis;
 * the bench owns the cluster for its run, so the map does not move.
 *
 * This is hiredis as an application would use it: redisAppendCommandArgv
 * (which formats each command, value included, into the context's output
 * buffer), redisBufferWrite until the buffer is sent, redisGetReply (which
 * reads in 16 KiB chunks and copies a bulk string into a reply object).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "bench/internals.h"
#include "bench/shared.h"

enum { SLOTS = 16384, MAX_MASTERS = 64, MAX_BATCH = 4096 };

typedef struct master {
	char host[256];
	int port;
	redisContext *ctx;
	/* the batch being run: its ops' indexes, what is sent and read */
	size_t *ops, n_ops, sent, read;
} master;

struct shraw {
	master m[MAX_MASTERS];
	uint32_t n;
	uint8_t owner[SLOTS];
	struct timeval tv;
};

static int find_add(shraw *r, const char *host, size_t host_len, int port)
{
	for (uint32_t i = 0; i < r->n; i++)
		if (r->m[i].port == port && strlen(r->m[i].host) == host_len &&
		    !memcmp(r->m[i].host, host, host_len))
			return (int)i;
	if (r->n == MAX_MASTERS || host_len >= sizeof(r->m[0].host))
		return -1;
	master *m = &r->m[r->n];
	memcpy(m->host, host, host_len);
	m->host[host_len] = '\0';
	m->port = port;
	return (int)r->n++;
}

/* CLUSTER SLOTS: [[start, end, [host, port, id], replicas...], ...]. */
static int read_map(shraw *r, redisContext *c, const char *seed_host, int seed_port)
{
	redisReply *rep = redisCommand(c, "CLUSTER SLOTS");
	if (!rep)
		return -1;
	int rc = 0;
	if (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "cluster support disabled")) {
		int i = find_add(r, seed_host, strlen(seed_host), seed_port); /* standalone */
		memset(r->owner, 0, sizeof(r->owner));
		rc = i == 0 ? 0 : -1;
	} else if (rep->type != REDIS_REPLY_ARRAY) {
		rc = -1;
	}
	for (size_t k = 0; rep->type == REDIS_REPLY_ARRAY && k < rep->elements && !rc; k++) {
		redisReply *e = rep->element[k];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2) {
			rc = -1;
			break;
		}
		redisReply *h = e->element[2]->element[0];
		long long lo = e->element[0]->integer, hi = e->element[1]->integer;
		/* an empty host means "the address you reached me on" */
		const char *host = h->len ? h->str : seed_host;
		int i = find_add(r, host, h->len ? h->len : strlen(seed_host),
				 (int)e->element[2]->element[1]->integer);
		if (i < 0 || lo < 0 || hi >= SLOTS || lo > hi)
			rc = -1;
		for (long long s = lo; !rc && s <= hi; s++)
			r->owner[s] = (uint8_t)i;
	}
	freeReplyObject(rep);
	return rc;
}

static int connect_masters(shraw *r)
{
	for (uint32_t i = 0; i < r->n; i++) {
		master *m = &r->m[i];
		m->ctx = redisConnectWithTimeout(m->host, m->port, r->tv);
		if (!m->ctx || m->ctx->err || redisSetTimeout(m->ctx, r->tv) != REDIS_OK) {
			fprintf(stderr, "tierkv-bench shared: cannot connect to %s:%d: %s\n", m->host,
				m->port, m->ctx ? m->ctx->errstr : "out of memory");
			return -1;
		}
		/* hiredis's documented setting for large replies, as the tier's
		 * client uses it (tiers/shared_conn.c): keep the reader's buffer
		 * instead of freeing and regrowing it for every value */
		m->ctx->reader->maxbuf = 0;
		if (!(m->ops = malloc(MAX_BATCH * sizeof(*m->ops))))
			return -1;
	}
	return 0;
}

shraw *shraw_open(const char *seeds, uint32_t timeout_ms)
{
	shraw *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->tv = (struct timeval){timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	bool mapped = false;
	for (const char *p = seeds; *p && !mapped;) {
		const char *end = strchr(p, ','), *colon;
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char host[256];
		if ((colon = memchr(p, ':', len)) && (size_t)(colon - p) < sizeof(host)) {
			memcpy(host, p, (size_t)(colon - p));
			host[colon - p] = '\0';
			int port = atoi(colon + 1);
			redisContext *c = redisConnectWithTimeout(host, port, r->tv);
			if (c && !c->err && redisSetTimeout(c, r->tv) == REDIS_OK)
				mapped = read_map(r, c, host, port) == 0;
			if (c)
				redisFree(c);
		}
		p += len + (end != NULL);
	}
	if (!mapped) {
		fprintf(stderr, "tierkv-bench shared: no seed of %s answered CLUSTER SLOTS\n", seeds);
	} else if (connect_masters(r) == 0) {
		return r;
	}
	shraw_close(r);
	return NULL;
}

void shraw_close(shraw *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < r->n; i++) {
		if (r->m[i].ctx)
			redisFree(r->m[i].ctx);
		free(r->m[i].ops);
	}
	free(r);
}

uint32_t shraw_masters(const shraw *r)
{
	return r->n;
}

/* ---- pipelined batches ---- */

typedef struct pass {
	shraw *r;
	const char *names;
	size_t key_len;
	void *const *vals; /* NULL: GET */
	size_t len;
	uint64_t inflight;
	long good;
} pass;

static const char *name_of(const pass *p, size_t i)
{
	return p->names + i * (p->key_len + 1);
}

/* Appends the next window of m's ops (the client's rule: the first always
 * goes, then while the window's cost stays within `inflight`) and sends
 * it. -1 on a connection failure. */
static int send_window(pass *p, master *m)
{
	uint64_t bytes = 0;
	while (m->sent < m->n_ops) {
		size_t i = m->ops[m->sent];
		uint64_t cost = p->len; /* the client's rule: value bytes only */
		if (bytes && bytes + cost > p->inflight)
			break;
		const char *argv[4] = {p->vals ? "SET" : "GET", name_of(p, i),
				       p->vals ? p->vals[i] : NULL, "NX"};
		size_t lens[4] = {3, p->key_len, p->len, 2};
		if (redisAppendCommandArgv(m->ctx, p->vals ? 4 : 2, argv, lens) != REDIS_OK)
			return -1;
		bytes += cost;
		m->sent++;
	}
	for (int done = 0; !done;)
		if (redisBufferWrite(m->ctx, &done) != REDIS_OK)
			return -1;
	return 0;
}

static int read_window(pass *p, master *m)
{
	for (; m->read < m->sent; m->read++) {
		redisReply *rep;
		if (redisGetReply(m->ctx, (void **)&rep) != REDIS_OK || !rep)
			return -1;
		bool ok = p->vals ? rep->type == REDIS_REPLY_STATUS && rep->len == 2
				  : rep->type == REDIS_REPLY_STRING && (size_t)rep->len == p->len;
		p->good += ok;
		/* freed at once: the leanest use of hiredis (malloc hands the
		 * next reply the same, cache-hot memory), so the strictest limit;
		 * README "The shared scenario" says what holding them costs */
		freeReplyObject(rep);
	}
	return 0;
}

/* Ops [first, first + n) as one batch of the tier's client. */
static int run_batch(pass *p, size_t first, size_t n)
{
	shraw *r = p->r;
	for (uint32_t k = 0; k < r->n; k++)
		r->m[k].n_ops = r->m[k].sent = r->m[k].read = 0;
	for (size_t i = first; i < first + n; i++) {
		master *m = &r->m[r->owner[tkv__shared_key_slot(name_of(p, i), p->key_len)]];
		m->ops[m->n_ops++] = i;
	}
	for (bool busy = true; busy;) {
		busy = false;
		for (uint32_t k = 0; k < r->n; k++)
			if (r->m[k].sent < r->m[k].n_ops && send_window(p, &r->m[k]))
				return -1;
		for (uint32_t k = 0; k < r->n; k++) {
			if (read_window(p, &r->m[k]))
				return -1;
			busy = busy || r->m[k].read < r->m[k].n_ops;
		}
	}
	return 0;
}

static long run_pass(pass *p, size_t n, size_t batch)
{
	batch = batch < MAX_BATCH ? batch : MAX_BATCH;
	for (size_t i = 0; i < n; i += batch)
		if (run_batch(p, i, n - i < batch ? n - i : batch)) {
			fprintf(stderr, "tierkv-bench shared: raw %s: connection failed\n",
				p->vals ? "SET" : "GET");
			return -1;
		}
	return p->good;
}

long shraw_set(shraw *r, const char *names, size_t key_len, void *const *vals, size_t len,
	       size_t n, size_t batch, uint64_t inflight)
{
	pass p = {r, names, key_len, vals, len, inflight, 0};
	return run_pass(&p, n, batch);
}

long shraw_get(shraw *r, const char *names, size_t key_len, size_t len, size_t n, size_t batch,
	       uint64_t inflight)
{
	pass p = {r, names, key_len, NULL, len, inflight, 0};
	return run_pass(&p, n, batch);
}

int shraw_del(shraw *r, const char *names, size_t key_len, size_t n)
{
	/* DEL in pipelined chunks: small commands, small replies */
	const size_t chunk = 1024;
	for (size_t first = 0; first < n; first += chunk) {
		size_t end = first + chunk < n ? first + chunk : n;
		uint32_t count[MAX_MASTERS] = {0};
		for (size_t i = first; i < end; i++) {
			const char *k = names + i * (key_len + 1);
			uint8_t o = r->owner[tkv__shared_key_slot(k, key_len)];
			const char *argv[2] = {"DEL", k};
			size_t lens[2] = {3, key_len};
			if (redisAppendCommandArgv(r->m[o].ctx, 2, argv, lens) != REDIS_OK)
				return -1;
			count[o]++;
		}
		for (uint32_t k = 0; k < r->n; k++)
			for (uint32_t j = 0; j < count[k]; j++) {
				redisReply *rep;
				if (redisGetReply(r->m[k].ctx, (void **)&rep) != REDIS_OK || !rep)
					return -1;
				freeReplyObject(rep);
			}
	}
	return 0;
}
