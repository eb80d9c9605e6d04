/*
 * shared_tier.c - cache blocks in a shared Redis Cluster (design in
 * shared_tier.h): key names, the record a value is, verification of what
 * comes back, the write queue and its thread, the connection pool.
 */
#include "tiers/shared_tier.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>

#include "base/error.h"
#include "base/thread_name.h"

enum {
	KEY_NAME_LEN = TKV__SHARED_TIER_KEY_NAME_LEN,
	WRITE_BATCH = TKV__SHARED_TIER_WRITE_BATCH, /* records per pipelined SET NX batch */
};

/* A block waiting to be written. */
typedef struct job {
	struct job *next;
	tkv__key key;
	void *buf;
	uint32_t tokens[];
} job;

/* A pooled connection set (one hiredis context per node; not thread-safe,
 * so each is used by one thread at a time). */
typedef struct pooled {
	struct pooled *next;
	tkv__shared_conn *conn;
} pooled;

struct tkv__shared_tier {
	tkv__shared *client;
	tkv__key ns;
	tkv__cold_layout lay;
	tkv__crc_fn crc;
	uint64_t store_id;
	uint64_t queue_cap;
	/* "tkv1:<ns hex>:", the part of every key name that is the tier's */
	char name_prefix[KEY_NAME_LEN - 32];

	pthread_mutex_t lock; /* queue, pool, stop */
	pthread_cond_t more;  /* the writer waits for jobs or stop */
	job *head, *tail;
	uint64_t queued_bytes;
	bool stop;
	pooled *pool;
	pthread_t writer;
	/* Spare record buffers (linked through their first bytes), at most
	 * queue_cap bytes of them: a buffer per block from malloc cost a page
	 * fault per 4 KiB on every put and fetch, as glibc gave the memory back
	 * between batches (perf, bench shared: ~10% of a 20 KiB run). */
	pthread_mutex_t spare_lock;
	void *spare;
	uint64_t spare_bytes;
	bool started;

	/* counters (atomic) */
	uint64_t fetch_blocks, fetch_hits, fetch_misses, fetch_corrupt;
	uint64_t writes_queued, writes_dropped, writes_stored, writes_existed, writes_failed;
};

_Static_assert(KEY_NAME_LEN == 5 + 32 + 1 + 32, "key name: \"tkv1:\" ns \":\" key, in hex");

/* 16 lowercase hex digits of v, most significant first. */
static void hex64(char *out, uint64_t v)
{
	static const char digit[16] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--, v >>= 4)
		out[i] = digit[v & 15];
}

/* Written by hand, not by snprintf: a fetch and a write batch name every
 * block, and the formatting (with the command headers') was ~6% of a
 * 20 KiB get's samples (perf, bench shared). */
static void key_name(const tkv__shared_tier *st, tkv__key key, char out[KEY_NAME_LEN + 1])
{
	memcpy(out, st->name_prefix, sizeof(st->name_prefix));
	hex64(out + sizeof(st->name_prefix), key.hi);
	hex64(out + sizeof(st->name_prefix) + 16, key.lo);
	out[KEY_NAME_LEN] = '\0';
}

size_t tkv__shared_tier_key_name(const tkv__shared_tier *st, tkv__key key, char *out, size_t cap)
{
	char name[KEY_NAME_LEN + 1];
	key_name(st, key, name);
	if (cap)
		snprintf(out, cap, "%s", name);
	return KEY_NAME_LEN;
}

/* ---- connections -------------------------------------------------------- */

static tkv__shared_conn *conn_get(tkv__shared_tier *st)
{
	pthread_mutex_lock(&st->lock);
	pooled *p = st->pool;
	if (p)
		st->pool = p->next;
	pthread_mutex_unlock(&st->lock);
	if (p) {
		tkv__shared_conn *c = p->conn;
		free(p);
		return c;
	}
	return tkv__shared_conn_new(st->client);
}

static void conn_put(tkv__shared_tier *st, tkv__shared_conn *c)
{
	pooled *p = malloc(sizeof(*p));
	if (!p) {
		tkv__shared_conn_free(c);
		return;
	}
	p->conn = c;
	pthread_mutex_lock(&st->lock);
	p->next = st->pool;
	st->pool = p;
	pthread_mutex_unlock(&st->lock);
}

/* ---- buffers ------------------------------------------------------------ */

void *tkv__shared_tier_buf_raw(tkv__shared_tier *st)
{
	pthread_mutex_lock(&st->spare_lock);
	void *buf = st->spare;
	if (buf) {
		memcpy(&st->spare, buf, sizeof(void *));
		st->spare_bytes -= st->lay.record_bytes;
	}
	pthread_mutex_unlock(&st->spare_lock);
	return buf ? buf : aligned_alloc(TKV__COLD_ALIGN, st->lay.record_bytes);
}

void tkv__shared_tier_buf_free(tkv__shared_tier *st, void *buf)
{
	if (!buf)
		return;
	pthread_mutex_lock(&st->spare_lock);
	bool keep = st->spare_bytes + st->lay.record_bytes <= st->queue_cap;
	if (keep) {
		memcpy(buf, &st->spare, sizeof(void *));
		st->spare = buf;
		st->spare_bytes += st->lay.record_bytes;
	}
	pthread_mutex_unlock(&st->spare_lock);
	if (!keep)
		free(buf);
}

size_t tkv__shared_tier_record_bytes(const tkv__shared_tier *st)
{
	return st->lay.record_bytes;
}

void *tkv__shared_tier_layer(const tkv__shared_tier *st, void *buf, uint32_t layer)
{
	return tkv__cold_record_layer(&st->lay, buf, layer);
}

void tkv__shared_tier_buf_unused(tkv__shared_tier *st, void *buf)
{
	ck_pr_sub_64(&st->queued_bytes, st->lay.record_bytes);
	tkv__shared_tier_buf_free(st, buf);
}

void *tkv__shared_tier_buf(tkv__shared_tier *st)
{
	/* Reserve the queue space now, so a caller never fills a buffer
	 * (a copy of every layer, or an SSD read) only to have it refused. */
	uint64_t want = st->lay.record_bytes, have = ck_pr_load_64(&st->queued_bytes);
	do {
		if (have + want > st->queue_cap) {
			ck_pr_inc_64(&st->writes_dropped);
			return NULL;
		}
	} while (!ck_pr_cas_64_value(&st->queued_bytes, have, have + want, &have));
	void *buf = tkv__shared_tier_buf_raw(st);
	if (!buf) {
		ck_pr_sub_64(&st->queued_bytes, want);
		ck_pr_inc_64(&st->writes_dropped);
	}
	return buf;
}

/* ---- writes ------------------------------------------------------------- */

static void release_job(tkv__shared_tier *st, job *j)
{
	ck_pr_sub_64(&st->queued_bytes, st->lay.record_bytes);
	tkv__shared_tier_buf_free(st, j->buf);
	free(j);
}

void tkv__shared_tier_put(tkv__shared_tier *st, tkv__key key, const uint32_t *tokens, void *buf)
{
	size_t tb = (size_t)st->lay.block_tokens * sizeof(uint32_t);
	job *j = malloc(sizeof(*j) + tb);
	if (!j) {
		ck_pr_sub_64(&st->queued_bytes, st->lay.record_bytes);
		tkv__shared_tier_buf_free(st, buf);
		ck_pr_inc_64(&st->writes_dropped);
		return;
	}
	j->next = NULL;
	j->key = key;
	j->buf = buf;
	memcpy(j->tokens, tokens, tb);
	pthread_mutex_lock(&st->lock);
	*(st->tail ? &st->tail->next : &st->head) = j;
	st->tail = j;
	pthread_cond_signal(&st->more);
	pthread_mutex_unlock(&st->lock);
	ck_pr_inc_64(&st->writes_queued);
}

/* The record header of a block: a cache block's record, store id = the
 * namespace's, no sequence of ours (it is nobody's record on this node). */
static void seal(tkv__shared_tier *st, job *j)
{
	tkv__cold_rec_id id = {
		.store_id = st->store_id,
		.seqno = 1,
		.seq = UINT64_MAX,
		.block = 0,
		.n_tokens = st->lay.block_tokens,
		.flags = TKV__COLD_REC_CACHE,
		.key_hi = j->key.hi,
		.key_lo = j->key.lo,
		.tokens = j->tokens,
	};
	tkv__cold_record_seal(&st->lay, st->crc, &id, j->buf, NULL, NULL);
}

static void write_batch(tkv__shared_tier *st, tkv__shared_conn *conn, job **jobs, size_t n)
{
	char names[WRITE_BATCH][KEY_NAME_LEN + 1];
	tkv__shared_op ops[WRITE_BATCH];
	for (size_t i = 0; i < n; i++) {
		seal(st, jobs[i]);
		key_name(st, jobs[i]->key, names[i]);
		ops[i] = (tkv__shared_op){.key = names[i], .key_len = KEY_NAME_LEN,
					  .val = jobs[i]->buf, .len = st->lay.record_bytes};
	}
	tkv__shared_set_nx(conn, ops, n, 0);
	for (size_t i = 0; i < n; i++) {
		if (ops[i].status == 0)
			ck_pr_inc_64(&st->writes_stored);
		else if (ops[i].status == -EEXIST)
			ck_pr_inc_64(&st->writes_existed);
		else
			ck_pr_inc_64(&st->writes_failed);
	}
}

static void *writer_main(void *arg)
{
	tkv__shared_tier *st = arg;
	tkv__shared_conn *conn = tkv__shared_conn_new(st->client);
	job *jobs[WRITE_BATCH];
	pthread_mutex_lock(&st->lock);
	for (;;) {
		while (!st->head && !st->stop)
			pthread_cond_wait(&st->more, &st->lock);
		if (!st->head)
			break; /* stopped and drained */
		size_t n = 0;
		while (st->head && n < WRITE_BATCH) {
			jobs[n++] = st->head;
			st->head = st->head->next;
		}
		if (!st->head)
			st->tail = NULL;
		pthread_mutex_unlock(&st->lock);
		if (conn)
			write_batch(st, conn, jobs, n);
		else
			ck_pr_add_64(&st->writes_failed, n); /* no memory for a connection */
		for (size_t i = 0; i < n; i++)
			release_job(st, jobs[i]);
		if (!conn)
			conn = tkv__shared_conn_new(st->client);
		pthread_mutex_lock(&st->lock);
	}
	pthread_mutex_unlock(&st->lock);
	if (conn)
		tkv__shared_conn_free(conn);
	return NULL;
}

/* ---- reads -------------------------------------------------------------- */

/* Is buf (len bytes) the record of block `key` with these token ids? */
static bool believe(tkv__shared_tier *st, const void *buf, size_t len, tkv__key key,
		    const uint32_t *tokens)
{
	const tkv__cold_layout *l = &st->lay;
	if (len != l->record_bytes)
		return false;
	tkv__cold_rec_id id;
	uint32_t crcs[l->n_layers];
	if (tkv__cold_record_check(l, st->crc, buf, st->store_id, &id, crcs) != 0)
		return false;
	if (!(id.flags & TKV__COLD_REC_CACHE) || id.key_hi != key.hi || id.key_lo != key.lo ||
	    id.n_tokens != l->block_tokens)
		return false;
	uint32_t have[l->block_tokens];
	tkv__cold_record_tokens(l, buf, have);
	if (memcmp(have, tokens, sizeof(have)) != 0)
		return false;
	for (uint32_t layer = 0; layer < l->n_layers; layer++)
		if (!tkv__cold_layer_ok(l, st->crc, tkv__cold_record_layer(l, (void *)buf, layer),
					crcs[layer]))
			return false;
	return true;
}

enum { FETCH_MAX = TKV__SHARED_TIER_FETCH_MAX }; /* ops per client call; callers window above this */


/* ops[i] names block keys[i] (names[i] holds the text), every other field
 * zero: what a fetch and an EXISTS share. */
static void name_ops(const tkv__shared_tier *st, const tkv__key *keys, size_t n,
		     char (*names)[KEY_NAME_LEN + 1], tkv__shared_op *ops)
{
	for (size_t i = 0; i < n; i++) {
		key_name(st, keys[i], names[i]);
		ops[i] = (tkv__shared_op){.key = names[i], .key_len = KEY_NAME_LEN};
	}
}

/* A fetch in progress: each hit is verified as soon as it is read (the
 * client's on_hit), while the record is still in cache and the servers
 * are sending the next ones, not after the whole batch. */
typedef struct fetch {
	tkv__shared_tier *st;
	const tkv__key *keys;
	const uint32_t *tokens;
	tkv__shared_op *ops;
	bool believed[FETCH_MAX];
} fetch;

static void verify_hit(tkv__shared_op *op, void *arg)
{
	fetch *f = arg;
	size_t i = (size_t)(op - f->ops);
	f->believed[i] = believe(f->st, op->buf, op->len, f->keys[i],
				 f->tokens + i * f->st->lay.block_tokens);
}

size_t tkv__shared_tier_fetch(tkv__shared_tier *st, const tkv__key *keys, const uint32_t *tokens,
			      size_t n, void **bufs)
{
	n = n < FETCH_MAX ? n : FETCH_MAX;
	if (!n)
		return 0;
	tkv__shared_conn *conn = conn_get(st);
	if (!conn)
		return 0;
	char names[FETCH_MAX][KEY_NAME_LEN + 1];
	tkv__shared_op ops[FETCH_MAX];
	fetch f = {.st = st, .keys = keys, .tokens = tokens, .ops = ops};
	name_ops(st, keys, n, names, ops);
	for (size_t i = 0; i < n; i++) {
		ops[i].buf = bufs[i];
		ops[i].cap = st->lay.record_bytes;
		ops[i].on_hit = verify_hit;
		ops[i].arg = &f;
	}
	tkv__shared_get(conn, ops, n);
	conn_put(st, conn);
	size_t ok = 0;
	for (; ok < n; ok++) {
		if (ops[ok].status != 0) {
			ck_pr_inc_64(&st->fetch_misses);
			break;
		}
		if (!f.believed[ok]) {
			ck_pr_inc_64(&st->fetch_corrupt);
			break;
		}
	}
	ck_pr_add_64(&st->fetch_blocks, n);
	ck_pr_add_64(&st->fetch_hits, ok);
	return ok;
}

size_t tkv__shared_tier_present(tkv__shared_tier *st, const tkv__key *keys, size_t n)
{
	n = n < FETCH_MAX ? n : FETCH_MAX;
	if (!n)
		return 0;
	tkv__shared_conn *conn = conn_get(st);
	if (!conn)
		return 0;
	char names[FETCH_MAX][KEY_NAME_LEN + 1];
	tkv__shared_op ops[FETCH_MAX];
	name_ops(st, keys, n, names, ops);
	tkv__shared_exists(conn, ops, n);
	conn_put(st, conn);
	size_t i = 0;
	while (i < n && ops[i].status == 0)
		i++;
	return i;
}

/* ---- open, close, stats ------------------------------------------------- */

int tkv__shared_tier_open(const tkv__shared_tier_cfg *cfg, tkv__shared_tier **out)
{
	*out = NULL;
	tkv__shared_tier *st = calloc(1, sizeof(*st));
	if (!st)
		return tkv__fail(-ENOMEM, "open: shared tier");
	int rc = tkv__shared_open(&cfg->client, &st->client);
	if (rc) {
		free(st);
		return rc;
	}
	st->ns = cfg->ns;
	st->lay = cfg->layout;
	st->crc = cfg->crc;
	st->store_id = cfg->ns.hi;
	memcpy(st->name_prefix, "tkv1:", 5);
	hex64(st->name_prefix + 5, st->ns.hi);
	hex64(st->name_prefix + 21, st->ns.lo);
	st->name_prefix[37] = ':';
	st->queue_cap = cfg->queue_bytes ? cfg->queue_bytes : 64ull << 20;
	if (st->queue_cap < st->lay.record_bytes)
		st->queue_cap = st->lay.record_bytes; /* at least one block in flight */
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->spare_lock, NULL);
	pthread_cond_init(&st->more, NULL);
	if ((rc = pthread_create(&st->writer, NULL, writer_main, st))) {
		tkv__shared_tier_close(st);
		return tkv__fail(-rc, "open: shared tier writer thread");
	}
	tkv__thread_name(st->writer, "tkv-shared-put");
	st->started = true;
	*out = st;
	return 0;
}

void tkv__shared_tier_close(tkv__shared_tier *st)
{
	if (!st)
		return;
	if (st->started) {
		pthread_mutex_lock(&st->lock);
		st->stop = true;
		pthread_cond_signal(&st->more);
		pthread_mutex_unlock(&st->lock);
		pthread_join(st->writer, NULL);
	}
	for (job *j = st->head, *next; j; j = next) { /* only if the writer never ran */
		next = j->next;
		release_job(st, j);
	}
	for (pooled *p = st->pool, *next; p; p = next) {
		next = p->next;
		tkv__shared_conn_free(p->conn);
		free(p);
	}
	for (void *b = st->spare, *next; b; b = next) {
		memcpy(&next, b, sizeof(void *));
		free(b);
	}
	tkv__shared_close(st->client);
	pthread_mutex_destroy(&st->spare_lock);
	pthread_cond_destroy(&st->more);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

void tkv__shared_tier_stats_get(tkv__shared_tier *st, tkv__shared_tier_stats *out)
{
	memset(out, 0, sizeof(*out));
	tkv__shared_get_stats(st->client, &out->client);
	out->fetch_blocks = ck_pr_load_64(&st->fetch_blocks);
	out->fetch_hits = ck_pr_load_64(&st->fetch_hits);
	out->fetch_misses = ck_pr_load_64(&st->fetch_misses);
	out->fetch_corrupt = ck_pr_load_64(&st->fetch_corrupt);
	out->writes_queued = ck_pr_load_64(&st->writes_queued);
	out->writes_dropped = ck_pr_load_64(&st->writes_dropped);
	out->writes_stored = ck_pr_load_64(&st->writes_stored);
	out->writes_existed = ck_pr_load_64(&st->writes_existed);
	out->writes_failed = ck_pr_load_64(&st->writes_failed);
	out->queue_bytes = ck_pr_load_64(&st->queued_bytes);
}
