/*
 * shared_impl.h - the insides of the shared-tier client (shared_client.h),
 * shared by its files:
 *   shared_slot.c    CRC16 and hash tags
 *   shared_map.c     the node table, the slot map, its refresh, node health
 *   shared_conn.c    one connection to one node: connect, send, read replies
 *   shared_client.c  open, close, batches, routing, redirections, counters
 *
 * Thread safety without a lock on the op path: the node table only grows
 * (a node is never removed, so a node index stays valid and a connection
 * array can be indexed by it); an entry's address is written before
 * n_nodes is published (N1 release in shared_map.c, paired with N2, the
 * acquire load in tkv__shared_node_count). The slot map is an array of
 * 16-bit node indexes, each loaded and stored atomically: a reader racing a
 * refresh may route by a mix of the old and new map, which costs at most a
 * MOVED. Node health (down_until_ns, fails) is atomics; two threads may
 * both retry a node whose backoff passed, which is harmless.
 *
 * Locks: nodes_lock (appends to the node table) and refresh_lock (one map
 * refresh at a time, taken with trylock on the op path so no op waits for
 * another thread's refresh). refresh_lock may be held while nodes_lock is
 * taken, never the reverse. refresh_lock is held across the refresh's I/O,
 * but only trylock ever contends for it, so nothing waits on that I/O.
 */
#ifndef TKV_TIERS_SHARED_IMPL_H
#define TKV_TIERS_SHARED_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_pr.h>
#include <hiredis/hiredis.h>

#include "tiers/shared_client.h"

enum {
	TKV__SHARED_SLOTS = 16384,
	TKV__SHARED_MAX_NODES = 256,
	TKV__SHARED_HOST_MAX = 256, /* with its NUL */
	TKV__SHARED_NO_NODE = 0xffff,
	TKV__SHARED_BACKOFF_MAX = 32, /* x backoff_ms */
	TKV__SHARED_RBUF = 256 << 10, /* bytes per read(2) of replies */
	TKV__SHARED_DIRECT_MIN = 16 << 10, /* GET buffers read into directly */
	TKV__SHARED_AHEAD = 8, /* GET values one recvmsg may receive beyond the one read */
	/* and their bytes, at most (3 values of 20 KiB; none of 68 KiB or
	 * more). At 256 KiB a recvmsg took ~3 values of 68 KiB and their gets
	 * fell to 0.72-0.83 of raw hiredis (medians), each wait for the socket
	 * ~1.4x longer with as many waits (bench shared, instrumented;
	 * docs/MEASUREMENTS.md, "Values read ahead"); at 64 KiB: 0.94-1.09,
	 * and 20 KiB keeps the ~7% CPU that reading ahead saves */
	TKV__SHARED_AHEAD_BYTES = 64 << 10,
};

typedef struct tkv__shared_node {
	char host[TKV__SHARED_HOST_MAX];
	int port;
	uint64_t down_until_ns; /* ck_pr; 0: up */
	uint32_t fails;         /* ck_pr; consecutive failures */
	uint32_t in_map;        /* ck_pr; owns slots in the current map */
} tkv__shared_node;

struct tkv__shared {
	tkv__shared_cfg cfg; /* defaults applied; seeds points to seeds_copy */
	char *seeds_copy;
	uint64_t connect_timeout_ns, op_timeout_ns, backoff_ns;

	pthread_mutex_t nodes_lock;
	uint32_t n_nodes; /* N1/N2 */
	uint32_t n_seeds; /* nodes[0..n_seeds) are the seeds */
	tkv__shared_node nodes[TKV__SHARED_MAX_NODES];

	pthread_mutex_t refresh_lock;
	uint32_t map_stale;        /* ck_pr; set by MOVED, a down node, no map */
	uint64_t next_refresh_ns;  /* ck_pr; a failed refresh waits backoff_ms */
	uint32_t refresh_rr;       /* under refresh_lock: who is asked first */
	uint16_t slot_owner[TKV__SHARED_SLOTS]; /* ck_pr; TKV__SHARED_NO_NODE */

	tkv__shared_stats st; /* ck_pr_add_64; nodes_up/down computed */
};

#define TKV__SHARED_COUNT(s, field, n) ck_pr_add_64(&(s)->st.field, (uint64_t)(n))

/* shared_map.c */
uint32_t tkv__shared_node_count(tkv__shared *s);
/* The index of host:port, added if new; TKV__SHARED_NO_NODE if the table
 * is full or the host too long. */
uint16_t tkv__shared_node_find_add(tkv__shared *s, const char *host, size_t host_len, int port);
bool tkv__shared_node_is_down(tkv__shared *s, uint16_t node, uint64_t now_ns);
void tkv__shared_node_failed(tkv__shared *s, uint16_t node);
void tkv__shared_node_ok(tkv__shared *s, uint16_t node);
uint16_t tkv__shared_slot_owner(tkv__shared *s, uint16_t slot);
void tkv__shared_slot_set(tkv__shared *s, uint16_t slot, uint16_t node);
/* Refreshes the map when it is marked stale (or force), unless another
 * thread is refreshing or a failed refresh's backoff has not passed. */
void tkv__shared_map_maybe_refresh(tkv__shared *s, bool force);
/* "host:port" (host may be empty: then default_host) into *host, *port. */
int tkv__shared_parse_addr(const char *a, size_t n, const char *default_host, const char **host,
			   size_t *host_len, int *port);

/* shared_conn.c: one connection to one node, owned by one thread. */
typedef struct tkv__shared_link {
	redisContext *ctx; /* NULL: closed */
	redisReplyObjectFunctions fns; /* ours: route GET values to sink */
	redisReplyObjectFunctions *orig;
	tkv__shared_op *sink; /* the GET whose reply is read next, or NULL */
	/* The commands of the window being built: bytes in hdr, iovecs that
	 * point into hdr (by offset) or at caller's values (zero copy). */
	char *hdr;
	size_t hdr_len, hdr_cap;
	struct tkv__shared_seg *segs;
	size_t n_segs, segs_cap;
	char *rbuf; /* TKV__SHARED_RBUF bytes, for reads */
	/* GET values whose header (exactly "$<cap>\r\n") and first `got`
	 * bytes a recvmsg already put in place, in reply order: the next
	 * reads take them from here (read_direct). Only the last may be
	 * partial; crlf: its trailing CRLF was consumed too. */
	struct tkv__shared_ahead {
		tkv__shared_op *op;
		size_t got;
		bool crlf;
	} ahead[TKV__SHARED_AHEAD];
	uint32_t n_ahead;
} tkv__shared_link;

/* Replies that are not hiredis objects: a GET value already in its op. */
extern char tkv__shared_hit_mark, tkv__shared_toobig_mark;

int tkv__shared_link_open(tkv__shared *s, tkv__shared_link *l, uint16_t node);

/* host (a name or a numeric address) to a numeric address in out, waiting
 * at most timeout_ns for the resolver (shared_resolve.c): 0, -ETIMEDOUT,
 * -EHOSTUNREACH (no such name, no address) or -EINVAL. */
int tkv__shared_resolve(const char *host, uint64_t timeout_ns, char *out, size_t out_len);
/* Test seams of the resolver: a stand-in for getaddrinfo (the numeric
 * address of host into addr, 0 or an EAI_ code; NULL: the system's), and
 * how long an answer is used without asking again (default 5 s). Set them
 * before any resolve runs. */
typedef int (*tkv__shared_gai_fn)(const char *host, char *addr, size_t addr_len);
extern tkv__shared_gai_fn tkv__shared_gai_hook;
extern uint64_t tkv__shared_resolve_ttl_ns;
void tkv__shared_link_close(tkv__shared *s, tkv__shared_link *l, bool on_error);
void tkv__shared_link_free(tkv__shared_link *l);
/* Queues one command. Argument `ext` (-1: none) is sent without a copy
 * (a value): it must live until tkv__shared_link_flush returns; the others
 * are copied. 0 or -ENOMEM. */
int tkv__shared_link_add(tkv__shared_link *l, int argc, const char *const *argv,
			 const size_t *lens, int ext);
/* Sends the queued commands by deadline_ns (tkv__now_ns clock).
 * 0, -ETIMEDOUT, -ECONNRESET, -ENOMEM. */
int tkv__shared_link_flush(tkv__shared_link *l, uint64_t deadline_ns);
/* Reads the next reply by deadline_ns; a bulk string goes into sink's
 * buffer when sink is not NULL. next[0..n_next) (may be 0): GETs whose
 * replies follow sink's on this link, in order, with nothing between
 * (no ASKING); while their values are receivable they may be received
 * along with sink's, into their buffers, and the next reads (which must
 * be for next[0], next[1], ... in turn) find them there. *reply: a
 * redisReply (free with tkv__shared_reply_free) or a mark. 0, -ETIMEDOUT,
 * -ECONNRESET, -EPROTO. */
int tkv__shared_link_read(tkv__shared_link *l, tkv__shared_op *sink, tkv__shared_op *const *next,
			  size_t n_next, void **reply, uint64_t deadline_ns);
void tkv__shared_reply_free(void *reply);
/* One command on a connection of its own (map refresh); NULL on failure. */
redisReply *tkv__shared_query(tkv__shared *s, uint16_t node, int argc, const char *const *argv);

#endif
