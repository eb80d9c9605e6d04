/*
 * shared_client.h - a Redis Cluster client for the shared tier: slot routing,
 * redirections, pipelining, timeouts and node health, on hiredis 0.14 (which
 * has no cluster support of its own).
 *
 * Two objects:
 *   tkv__shared       the cluster as this process knows it: seed addresses,
 *                     the slot map, the nodes and their health, the counters.
 *                     Thread-safe; one per runtime.
 *   tkv__shared_conn  one thread's connections, one per node it has talked
 *                     to. NOT thread-safe: each thread that issues commands
 *                     owns one (a hiredis context is not thread-safe).
 *
 * Everything here is a cache operation: no function ever fails the caller
 * because of the cluster. A dead node, a timeout, CLUSTERDOWN, TRYAGAIN,
 * LOADING, OOM, a protocol error: the op's status says so, the counters count
 * it, and the call returns within its deadline. A connection on which a
 * command timed out (or which saw anything unexpected) is closed, so a late
 * reply is never read as the answer to a later command.
 *
 * Routing: slot = CRC16-XMODEM(key) mod 16384, or of the part inside the
 * first "{...}" when it holds at least one byte. The map comes from CLUSTER
 * SHARDS (CLUSTER SLOTS on error) of any live seed or known node; a
 * standalone server (cluster support disabled) is one node owning every
 * slot. -MOVED refreshes the map and retries on the named node; -ASK sends
 * ASKING + the one command to the named node without changing the map; at
 * most max_redirects redirections per op, then the op fails with -ELOOP.
 * A node that fails (connect error, timeout, reset) is marked down and not
 * contacted again before its backoff passes (doubling from backoff_ms up to
 * 32x); ops routed to it fail fast with -EHOSTDOWN in the meantime.
 */
#ifndef TKV_TIERS_SHARED_CLIENT_H
#define TKV_TIERS_SHARED_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct tkv__shared tkv__shared;
typedef struct tkv__shared_conn tkv__shared_conn;

typedef struct tkv__shared_cfg {
	const char *seeds;           /* "host:port[,host:port...]", copied */
	uint32_t connect_timeout_ms; /* 0: 200 */
	uint32_t op_timeout_ms;      /* per command batch; 0: 500 */
	uint32_t max_redirects;      /* 0: 5 */
	uint32_t backoff_ms;         /* first retry delay of a down node; 0: 100 */
	uint64_t max_inflight_bytes; /* value bytes (SET values, GET buffers)
				      * pipelined to one node before reading
				      * replies; 0: TKV__SHARED_INFLIGHT_DEFAULT */
} tkv__shared_cfg;

/* The window rule (public so a baseline can pipeline the same way,
 * bench/shared.c): a command costs its value (SET) or the buffer its reply
 * may fill (GET), keys and protocol bytes left out so the default holds two
 * 4 MiB values; commands are added to a node's window while the sum stays
 * <= max_inflight_bytes (the first always goes), then the window is sent
 * and its replies read. */
#define TKV__SHARED_INFLIGHT_DEFAULT (8ull << 20)

/* One command of a batch. The caller fills the inputs; the call sets status
 * (and len for a get). */
typedef struct tkv__shared_op {
	const void *key;
	size_t key_len;
	/* get: the value is read into buf (cap bytes); set: val/len is sent. */
	void *buf;
	size_t cap;
	const void *val;
	size_t len; /* set: value length; get: value length found */
	/*
	 * Result:
	 *   get:    0 hit (len bytes in buf); -ENOENT nil; -EMSGSIZE value
	 *           longer than cap (nothing usable in buf). buf may be
	 *           written whatever the status: a value is received into it
	 *           before its reply is known to be this op's (when several
	 *           arrive at once); only a hit's len bytes mean anything
	 *   set_nx: 0 stored; -EEXIST the key was there (not overwritten)
	 *   exists: 0 present; -ENOENT absent
	 *   any:    -ETIMEDOUT, -EHOSTDOWN (node marked down), -ECONNRESET
	 *           (connection lost), -ELOOP (too many redirections),
	 *           -EAGAIN (TRYAGAIN, LOADING, CLUSTERDOWN), -ENOMEM (OOM),
	 *           -EPROTO (any other error reply or an unexpected reply type)
	 */
	int status;
	/*
	 * get, optional: called by the batch call, in its thread, as soon as
	 * this op's value is in buf (status 0), before later replies are read.
	 * Lets the caller check a value while it is still in cache and while
	 * the servers go on sending (a record's CRC after the whole batch came
	 * back read it all again from memory: measured with bench shared). It
	 * must not call into this conn. NULL: none.
	 */
	void (*on_hit)(struct tkv__shared_op *op, void *arg);
	void *arg;
} tkv__shared_op;

/* Counters, monotonic since open (nodes_up/nodes_down: now). */
typedef struct tkv__shared_stats {
	uint64_t gets, get_hits, get_misses; /* get ops; hits + misses + errors */
	uint64_t sets, sets_stored, sets_existed;
	uint64_t exists;
	uint64_t bytes_sent, bytes_received; /* values only */
	uint64_t err_timeout, err_conn, err_down, err_busy, err_oom, err_proto,
		err_redirect_limit, err_too_big;
	uint64_t moved, ask, map_refreshes, map_refresh_failures;
	uint64_t conns_opened, conns_closed_on_error;
	uint32_t nodes_up, nodes_down;
} tkv__shared_stats;

/* Parses cfg and connects to the first reachable seed for the slot map.
 * -EINVAL (message names the bad field or address) for a bad config;
 * unreachable seeds are NOT an error (the map is fetched on first use, and
 * every op misses until a seed answers). 0 or negative errno. */
int tkv__shared_open(const tkv__shared_cfg *cfg, tkv__shared **out);
void tkv__shared_close(tkv__shared *s); /* every conn must be freed first */

tkv__shared_conn *tkv__shared_conn_new(tkv__shared *s); /* NULL: -ENOMEM */
void tkv__shared_conn_free(tkv__shared_conn *c);

/* Batches: each op routed by its key's slot, pipelined per node (bounded by
 * max_inflight_bytes), redirections followed. Returns the number of ops with
 * status 0; never fails as a whole. Each batch call returns within about
 * op_timeout_ms per round of redirections (at most max_redirects + 1 rounds).
 * set_nx: SET key val NX (and PX ttl_ms when ttl_ms > 0). */
size_t tkv__shared_get(tkv__shared_conn *c, tkv__shared_op *ops, size_t n);
size_t tkv__shared_set_nx(tkv__shared_conn *c, tkv__shared_op *ops, size_t n, uint64_t ttl_ms);
size_t tkv__shared_exists(tkv__shared_conn *c, tkv__shared_op *ops, size_t n);

void tkv__shared_get_stats(const tkv__shared *s, tkv__shared_stats *out);

/* The slot of a key (exposed for tests and for spreading keys). */
uint16_t tkv__shared_key_slot(const void *key, size_t len);

#endif
