/*
 * shared_client.c - open/close, and the batch engine behind
 * tkv__shared_get/set_nx/exists (contract: shared_client.h).
 *
 * A batch runs in rounds. A round groups the ops still pending by the node
 * they are routed to (the slot map, or the node a redirection named) and
 * pipelines each group over this thread's link to that node, in windows of
 * at most max_inflight_bytes (commands plus the replies they may bring):
 * every group's window is sent first, then every group's replies are read,
 * so the nodes work in parallel while this thread reads. -MOVED and -ASK
 * leave an op pending, routed to the named node, for the next round; at
 * most max_redirects + 1 rounds run.
 *
 * Time: sending a window to a node, and reading its replies, each have
 * op_timeout_ms, counted from when this thread starts on that node's
 * window; so a batch waits op_timeout_ms for each node that stalls (it is
 * then down), not for each op.
 *
 * Any failure of a link (timeout, reset, a reply that does not fit its
 * command) closes it: its unanswered ops take the error, and the replies
 * that may still come are never read. A timeout or a reset also marks the
 * node down (and the map stale), and the group's unsent ops fail with
 * -EHOSTDOWN, as every op routed to it will until its backoff passes.
 */
#define _GNU_SOURCE /* strchrnul */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/array.h"
#include "base/clock.h"
#include "base/error.h"
#include "tiers/shared_impl.h"

enum cmd { CMD_GET, CMD_SET_NX, CMD_EXISTS };
enum { PENDING = 1 }; /* op->status while the batch runs */

struct route {
	uint16_t node;
	uint8_t ask;
};

struct group {
	uint16_t node;
	uint32_t first, end;       /* its ops: order[first..end) */
	uint32_t next_send, next_read;
	bool done;
};

struct tkv__shared_conn {
	tkv__shared *s;
	struct route *route;
	size_t route_cap;
	uint32_t *order; /* op indexes grouped by node */
	size_t order_cap;
	struct group groups[TKV__SHARED_MAX_NODES];
	uint32_t count[TKV__SHARED_MAX_NODES + 1];
	tkv__shared_link links[TKV__SHARED_MAX_NODES];
};

/* --- open, close --- */

static int add_seeds(tkv__shared *s)
{
	for (char *p = s->seeds_copy;; p++) {
		char *end = strchrnul(p, ',');
		const char *host;
		size_t host_len;
		int port;
		if (tkv__shared_parse_addr(p, (size_t)(end - p), NULL, &host, &host_len, &port) != 0 ||
		    host_len >= TKV__SHARED_HOST_MAX)
			return tkv__fail(-EINVAL, "shared: cfg.seeds: bad address '%.*s' (want host:port)",
					 (int)(end - p), p);
		if (tkv__shared_node_find_add(s, host, host_len, port) == TKV__SHARED_NO_NODE)
			return tkv__fail(-EINVAL, "shared: cfg.seeds: more than %d addresses",
					 TKV__SHARED_MAX_NODES);
		if (!*end)
			break;
		p = end;
	}
	s->n_seeds = s->n_nodes;
	return 0;
}

static void set_defaults(tkv__shared *s, const tkv__shared_cfg *cfg)
{
	s->cfg = *cfg;
	tkv__shared_cfg *c = &s->cfg;
	c->connect_timeout_ms = c->connect_timeout_ms ? c->connect_timeout_ms : 200;
	c->op_timeout_ms = c->op_timeout_ms ? c->op_timeout_ms : 500;
	c->max_redirects = c->max_redirects ? c->max_redirects : 5;
	c->backoff_ms = c->backoff_ms ? c->backoff_ms : 100;
	c->max_inflight_bytes = c->max_inflight_bytes ? c->max_inflight_bytes : TKV__SHARED_INFLIGHT_DEFAULT;
	c->seeds = s->seeds_copy;
	s->connect_timeout_ns = c->connect_timeout_ms * 1000000ull;
	s->op_timeout_ns = c->op_timeout_ms * 1000000ull;
	s->backoff_ns = c->backoff_ms * 1000000ull;
}

int tkv__shared_open(const tkv__shared_cfg *cfg, tkv__shared **out)
{
	if (!out)
		return tkv__fail(-EINVAL, "shared: out is NULL");
	*out = NULL;
	if (!cfg)
		return tkv__fail(-EINVAL, "shared: cfg is NULL");
	if (!cfg->seeds || !cfg->seeds[0])
		return tkv__fail(-EINVAL, "shared: cfg.seeds is empty (want host:port[,host:port...])");
	tkv__shared *s = calloc(1, sizeof(*s));
	if (!s || !(s->seeds_copy = strdup(cfg->seeds))) {
		free(s);
		return tkv__fail(-ENOMEM, "shared: out of memory");
	}
	pthread_mutex_init(&s->nodes_lock, NULL);
	pthread_mutex_init(&s->refresh_lock, NULL);
	for (uint32_t i = 0; i < TKV__SHARED_SLOTS; i++)
		s->slot_owner[i] = TKV__SHARED_NO_NODE;
	set_defaults(s, cfg);
	int rc = add_seeds(s);
	if (rc != 0) {
		tkv__shared_close(s);
		return rc;
	}
	/* Unreachable seeds are no error: ops miss until a refresh succeeds. */
	tkv__shared_map_maybe_refresh(s, true);
	*out = s;
	return 0;
}

void tkv__shared_close(tkv__shared *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->nodes_lock);
	pthread_mutex_destroy(&s->refresh_lock);
	free(s->seeds_copy);
	free(s);
}

tkv__shared_conn *tkv__shared_conn_new(tkv__shared *s)
{
	tkv__shared_conn *c = s ? calloc(1, sizeof(*c)) : NULL;
	if (c)
		c->s = s;
	return c;
}

void tkv__shared_conn_free(tkv__shared_conn *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < TKV__SHARED_MAX_NODES; i++)
		tkv__shared_link_free(&c->links[i]);
	free(c->route);
	free(c->order);
	free(c);
}

/* --- one command --- */

/* What an op adds to the bytes in flight: its value (a get's buffer size,
 * the most its reply can bring). Keys and protocol bytes are left out so
 * that the default 8 MiB holds two 4 MiB values, not one. */
static uint64_t op_cost(enum cmd cmd, const tkv__shared_op *op)
{
	return cmd == CMD_GET ? op->cap : cmd == CMD_SET_NX ? op->len : 0;
}

static int add_cmd(tkv__shared_link *l, enum cmd cmd, const tkv__shared_op *op, bool ask,
		   const char *ttl)
{
	static const char *const asking[] = {"ASKING"};
	static const size_t asking_len[] = {6};
	if (ask) {
		int rc = tkv__shared_link_add(l, 1, asking, asking_len, -1);
		if (rc)
			return rc;
	}
	const char *argv[6] = {NULL, op->key, op->val, "NX", "PX", ttl};
	size_t lens[6] = {0, op->key_len, op->len, 2, 2, ttl ? strlen(ttl) : 0};
	if (cmd == CMD_SET_NX) {
		argv[0] = "SET", lens[0] = 3;
		return tkv__shared_link_add(l, ttl ? 6 : 4, argv, lens, 2);
	}
	argv[0] = cmd == CMD_GET ? "GET" : "EXISTS";
	lens[0] = strlen(argv[0]);
	return tkv__shared_link_add(l, 2, argv, lens, -1);
}

static bool err_is(const redisReply *r, const char *prefix)
{
	size_t n = strlen(prefix);
	return r->len >= n && memcmp(r->str, prefix, n) == 0 && (r->len == n || r->str[n] == ' ');
}

/* -MOVED/-ASK <slot> <host>:<port>: reroutes the op; PENDING or -EPROTO. */
static int redirect(tkv__shared *s, const redisReply *r, uint16_t from, struct route *rt, bool ask)
{
	const char *sp = memchr(r->str, ' ', r->len), *sp2;
	if (!sp || !(sp2 = memchr(sp + 1, ' ', r->len - (size_t)(sp + 1 - r->str))))
		return -EPROTO;
	long slot = strtol(sp + 1, NULL, 10);
	const char *host;
	size_t host_len;
	int port;
	if (slot < 0 || slot >= TKV__SHARED_SLOTS ||
	    tkv__shared_parse_addr(sp2 + 1, r->len - (size_t)(sp2 + 1 - r->str), s->nodes[from].host,
				   &host, &host_len, &port) != 0)
		return -EPROTO;
	uint16_t node = tkv__shared_node_find_add(s, host, host_len, port);
	if (node == TKV__SHARED_NO_NODE)
		return -EPROTO;
	rt->node = node;
	rt->ask = ask;
	if (ask) {
		TKV__SHARED_COUNT(s, ask, 1);
	} else {
		TKV__SHARED_COUNT(s, moved, 1);
		tkv__shared_slot_set(s, (uint16_t)slot, node);
		ck_pr_store_32(&s->map_stale, 1);
	}
	return PENDING;
}

/* An error reply's status; *bad when the link must be closed. */
static int error_status(tkv__shared *s, const redisReply *r, uint16_t from, struct route *rt, bool *bad)
{
	static const char *const busy[] = {"TRYAGAIN", "LOADING", "CLUSTERDOWN", "BUSY", "MASTERDOWN"};
	if (err_is(r, "MOVED") || err_is(r, "ASK")) {
		int st = redirect(s, r, from, rt, err_is(r, "ASK"));
		*bad = st != PENDING;
		return st;
	}
	for (size_t i = 0; i < sizeof(busy) / sizeof(busy[0]); i++)
		if (err_is(r, busy[i]))
			return -EAGAIN;
	if (err_is(r, "OOM"))
		return -ENOMEM;
	*bad = true; /* not an answer this client expects: trust nothing after it */
	return -EPROTO;
}

static int reply_status(tkv__shared *s, enum cmd cmd, const void *reply, uint16_t from,
			struct route *rt, bool *bad)
{
	*bad = false;
	if (reply == &tkv__shared_hit_mark)
		return 0;
	if (reply == &tkv__shared_toobig_mark)
		return -EMSGSIZE;
	const redisReply *r = reply;
	if (r->type == REDIS_REPLY_ERROR)
		return error_status(s, r, from, rt, bad);
	if (cmd == CMD_GET && r->type == REDIS_REPLY_NIL)
		return -ENOENT;
	if (cmd == CMD_SET_NX && r->type == REDIS_REPLY_NIL)
		return -EEXIST;
	if (cmd == CMD_SET_NX && r->type == REDIS_REPLY_STATUS && r->len == 2 && !memcmp(r->str, "OK", 2))
		return 0;
	if (cmd == CMD_EXISTS && r->type == REDIS_REPLY_INTEGER && (r->integer == 0 || r->integer == 1))
		return r->integer ? 0 : -ENOENT;
	*bad = true;
	return -EPROTO;
}

/* --- a round --- */

struct batch {
	tkv__shared_conn *c;
	tkv__shared_op *ops;
	enum cmd cmd;
	const char *ttl; /* NULL: no PX */
};

static void fail_group(struct batch *b, struct group *g, int err, bool node_failed)
{
	tkv__shared *s = b->c->s;
	tkv__shared_link_close(s, &b->c->links[g->node], true);
	if (node_failed)
		tkv__shared_node_failed(s, g->node);
	for (uint32_t k = g->next_read; k < g->end; k++)
		b->ops[b->c->order[k]].status = k < g->next_send ? err : node_failed ? -EHOSTDOWN : -ECONNRESET;
	g->next_read = g->next_send = g->end;
	g->done = true;
}

static void send_window(struct batch *b, struct group *g)
{
	tkv__shared_link *l = &b->c->links[g->node];
	uint64_t bytes = 0, max = b->c->s->cfg.max_inflight_bytes;
	while (g->next_send < g->end) {
		uint32_t i = b->c->order[g->next_send];
		uint64_t cost = op_cost(b->cmd, &b->ops[i]);
		if (bytes && bytes + cost > max)
			break;
		if (add_cmd(l, b->cmd, &b->ops[i], b->c->route[i].ask, b->ttl) != 0) {
			/* Out of memory, maybe halfway through a command: send
			 * nothing of this window. */
			fail_group(b, g, -ENOMEM, false);
			return;
		}
		bytes += cost;
		g->next_send++;
	}
	int rc = tkv__shared_link_flush(l, tkv__now_ns() + b->c->s->op_timeout_ns);
	if (rc)
		fail_group(b, g, rc, rc != -ENOMEM);
}

/* The GETs sent after g's next one whose replies follow it with nothing
 * between (up to the first that needs ASKING): the link may receive
 * their values along with it. */
static size_t gets_after(struct batch *b, const struct group *g, tkv__shared_op **next)
{
	size_t n = 0;
	for (uint32_t k = g->next_read + 1; k < g->next_send && n < TKV__SHARED_AHEAD; k++) {
		uint32_t i = b->c->order[k];
		if (b->c->route[i].ask)
			break;
		next[n++] = &b->ops[i];
	}
	return n;
}

/* Reads one op's replies (ASKING's first); false when the group failed. */
static bool read_one(struct batch *b, struct group *g, uint64_t deadline)
{
	tkv__shared *s = b->c->s;
	tkv__shared_link *l = &b->c->links[g->node];
	uint32_t i = b->c->order[g->next_read];
	tkv__shared_op *op = &b->ops[i];
	struct route *rt = &b->c->route[i];
	void *r;
	int rc;
	if (rt->ask) {
		rc = tkv__shared_link_read(l, NULL, NULL, 0, &r, deadline);
		bool ok = rc == 0 && ((redisReply *)r)->type == REDIS_REPLY_STATUS;
		tkv__shared_reply_free(r);
		if (!ok) {
			fail_group(b, g, rc ? rc : -EPROTO, rc == -ETIMEDOUT || rc == -ECONNRESET);
			return false;
		}
		rt->ask = 0; /* ASK holds for this one command only */
	}
	tkv__shared_op *next[TKV__SHARED_AHEAD];
	size_t n_next = b->cmd == CMD_GET ? gets_after(b, g, next) : 0;
	rc = tkv__shared_link_read(l, b->cmd == CMD_GET ? op : NULL, next, n_next, &r, deadline);
	if (rc) {
		fail_group(b, g, rc, rc == -ETIMEDOUT || rc == -ECONNRESET);
		return false;
	}
	bool bad;
	op->status = reply_status(s, b->cmd, r, g->node, rt, &bad);
	tkv__shared_reply_free(r);
	g->next_read++;
	if (b->cmd == CMD_GET && op->status == 0 && op->on_hit)
		op->on_hit(op, op->arg);
	if (bad)
		fail_group(b, g, -ECONNRESET, false);
	return !bad;
}

/* Sorts the pending ops by node into c->order and c->groups; the number
 * of groups. Ops routed to a node that is down fail here. */
static uint32_t make_groups(struct batch *b, size_t n)
{
	tkv__shared_conn *c = b->c;
	uint64_t now = tkv__now_ns();
	memset(c->count, 0, sizeof(c->count));
	for (size_t i = 0; i < n; i++) {
		if (b->ops[i].status != PENDING)
			continue;
		if (tkv__shared_node_is_down(c->s, c->route[i].node, now))
			b->ops[i].status = -EHOSTDOWN;
		else
			c->count[c->route[i].node + 1]++;
	}
	uint32_t ng = 0;
	for (uint32_t k = 0; k < TKV__SHARED_MAX_NODES; k++) {
		if (c->count[k + 1])
			c->groups[ng++] = (struct group){.node = (uint16_t)k, .first = c->count[k],
							 .end = c->count[k] + c->count[k + 1]};
		c->count[k + 1] += c->count[k];
	}
	for (size_t i = 0; i < n; i++)
		if (b->ops[i].status == PENDING)
			c->order[c->count[c->route[i].node]++] = (uint32_t)i;
	for (uint32_t k = 0; k < ng; k++)
		c->groups[k].next_send = c->groups[k].next_read = c->groups[k].first;
	return ng;
}

static void open_links(struct batch *b, uint32_t ng)
{
	for (uint32_t k = 0; k < ng; k++) {
		struct group *g = &b->c->groups[k];
		tkv__shared_link *l = &b->c->links[g->node];
		if (l->ctx)
			continue;
		if (tkv__shared_link_open(b->c->s, l, g->node) == 0) {
			tkv__shared_node_ok(b->c->s, g->node);
		} else {
			g->next_send = g->first;
			fail_group(b, g, -EHOSTDOWN, true);
		}
	}
}

static void run_round(struct batch *b, size_t n)
{
	uint32_t ng = make_groups(b, n);
	open_links(b, ng);
	for (bool busy = true; busy;) {
		busy = false;
		for (uint32_t k = 0; k < ng; k++)
			if (!b->c->groups[k].done)
				send_window(b, &b->c->groups[k]);
		for (uint32_t k = 0; k < ng; k++) {
			struct group *g = &b->c->groups[k];
			/* From when this thread starts waiting for this node: a
			 * node read after a slow one still has its full time. */
			uint64_t deadline = tkv__now_ns() + b->c->s->op_timeout_ns;
			while (!g->done && g->next_read < g->next_send)
				if (!read_one(b, g, deadline))
					break;
			g->done = g->done || g->next_read == g->end;
			busy = busy || !g->done;
		}
	}
}

/* --- a batch --- */

/* Routes the pending ops that have no node yet by the slot map. */
static size_t route_pending(struct batch *b, size_t n)
{
	size_t pending = 0, unrouted = 0;
	for (int pass = 0; pass < 2; pass++) {
		unrouted = pending = 0;
		for (size_t i = 0; i < n; i++) {
			tkv__shared_op *op = &b->ops[i];
			if (op->status != PENDING)
				continue;
			pending++;
			if (b->c->route[i].node == TKV__SHARED_NO_NODE)
				b->c->route[i].node = tkv__shared_slot_owner(b->c->s,
									     tkv__shared_key_slot(op->key, op->key_len));
			unrouted += b->c->route[i].node == TKV__SHARED_NO_NODE;
		}
		if (!unrouted)
			return pending;
		tkv__shared_map_maybe_refresh(b->c->s, true);
	}
	for (size_t i = 0; i < n; i++)
		if (b->ops[i].status == PENDING && b->c->route[i].node == TKV__SHARED_NO_NODE)
			b->ops[i].status = -EHOSTDOWN;
	return pending - unrouted;
}

static int check_op(enum cmd cmd, tkv__shared_op *op)
{
	if (!op->key && op->key_len)
		return -EINVAL;
	if (cmd == CMD_GET) {
		op->len = 0;
		return !op->buf && op->cap ? -EINVAL : PENDING;
	}
	return cmd == CMD_SET_NX && !op->val && op->len ? -EINVAL : PENDING;
}

static bool prepare(struct batch *b, size_t n)
{
	tkv__shared_conn *c = b->c;
	void *t = tkv__array_grow(c->route, &c->route_cap, n, sizeof(*c->route));
	if (!t)
		return false;
	c->route = t;
	if (!(t = tkv__array_grow(c->order, &c->order_cap, n, sizeof(*c->order))))
		return false;
	c->order = t;
	for (size_t i = 0; i < n; i++) {
		b->ops[i].status = check_op(b->cmd, &b->ops[i]);
		c->route[i] = (struct route){TKV__SHARED_NO_NODE, 0};
	}
	return true;
}

static void count_errors(tkv__shared *s, int st)
{
	switch (st) {
	case -ETIMEDOUT: TKV__SHARED_COUNT(s, err_timeout, 1); break;
	case -ECONNRESET: TKV__SHARED_COUNT(s, err_conn, 1); break;
	case -EHOSTDOWN: TKV__SHARED_COUNT(s, err_down, 1); break;
	case -EAGAIN: TKV__SHARED_COUNT(s, err_busy, 1); break;
	case -ENOMEM: TKV__SHARED_COUNT(s, err_oom, 1); break;
	case -ELOOP: TKV__SHARED_COUNT(s, err_redirect_limit, 1); break;
	case -EMSGSIZE: TKV__SHARED_COUNT(s, err_too_big, 1); break;
	case -EINVAL: break; /* the caller's mistake, reported in its status */
	default: TKV__SHARED_COUNT(s, err_proto, 1); break;
	}
}

static size_t count(struct batch *b, size_t n)
{
	tkv__shared *s = b->c->s;
	uint64_t ok = 0, absent = 0, bytes = 0;
	for (size_t i = 0; i < n; i++) {
		int st = b->ops[i].status;
		if (st == 0) {
			ok++;
			bytes += b->cmd == CMD_EXISTS ? 0 : b->ops[i].len;
		} else if (st == (b->cmd == CMD_SET_NX ? -EEXIST : -ENOENT)) {
			absent++;
		} else {
			count_errors(s, st);
		}
	}
	if (b->cmd == CMD_GET) {
		TKV__SHARED_COUNT(s, gets, n);
		TKV__SHARED_COUNT(s, get_hits, ok);
		TKV__SHARED_COUNT(s, get_misses, absent);
		TKV__SHARED_COUNT(s, bytes_received, bytes);
	} else if (b->cmd == CMD_SET_NX) {
		TKV__SHARED_COUNT(s, sets, n);
		TKV__SHARED_COUNT(s, sets_stored, ok);
		TKV__SHARED_COUNT(s, sets_existed, absent);
		TKV__SHARED_COUNT(s, bytes_sent, bytes);
	} else {
		TKV__SHARED_COUNT(s, exists, n);
	}
	return ok;
}

static size_t run(struct batch *b, size_t n)
{
	tkv__shared *s = b->c->s;
	if (!prepare(b, n)) {
		for (size_t i = 0; i < n; i++)
			b->ops[i].status = -ENOMEM;
		return count(b, n);
	}
	tkv__shared_map_maybe_refresh(s, false);
	for (uint32_t round = 0;; round++) {
		if (route_pending(b, n) == 0)
			break;
		if (round > s->cfg.max_redirects) {
			for (size_t i = 0; i < n; i++)
				if (b->ops[i].status == PENDING)
					b->ops[i].status = -ELOOP;
			break;
		}
		run_round(b, n);
		tkv__shared_map_maybe_refresh(s, false); /* after a MOVED */
	}
	return count(b, n);
}

size_t tkv__shared_get(tkv__shared_conn *c, tkv__shared_op *ops, size_t n)
{
	struct batch b = {c, ops, CMD_GET, NULL};
	return c && (ops || !n) ? run(&b, n) : 0;
}

size_t tkv__shared_set_nx(tkv__shared_conn *c, tkv__shared_op *ops, size_t n, uint64_t ttl_ms)
{
	char ttl[24];
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
	struct batch b = {c, ops, CMD_SET_NX, ttl_ms ? ttl : NULL};
	return c && (ops || !n) ? run(&b, n) : 0;
}

size_t tkv__shared_exists(tkv__shared_conn *c, tkv__shared_op *ops, size_t n)
{
	struct batch b = {c, ops, CMD_EXISTS, NULL};
	return c && (ops || !n) ? run(&b, n) : 0;
}

void tkv__shared_get_stats(const tkv__shared *cs, tkv__shared_stats *out)
{
	tkv__shared *s = (tkv__shared *)cs; /* ck_pr loads take non-const */
	uint64_t *dst = (uint64_t *)out, *src = (uint64_t *)&s->st;
	size_t n64 = offsetof(tkv__shared_stats, nodes_up) / sizeof(uint64_t);
	for (size_t i = 0; i < n64; i++)
		dst[i] = ck_pr_load_64(&src[i]);
	out->nodes_up = out->nodes_down = 0;
	uint64_t now = tkv__now_ns();
	uint32_t n = tkv__shared_node_count(s);
	for (uint32_t i = 0; i < n; i++) {
		if (!ck_pr_load_32(&s->nodes[i].in_map))
			continue;
		if (tkv__shared_node_is_down(s, (uint16_t)i, now))
			out->nodes_down++;
		else
			out->nodes_up++;
	}
}
