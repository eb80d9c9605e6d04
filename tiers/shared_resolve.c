/*
 * shared_resolve.c - a shared-tier node's host to a numeric address within
 * a deadline (design in shared_impl.h).
 *
 * hiredis resolves a host with getaddrinfo, which waits as long as the
 * system resolver does (seconds per name server in resolv.conf, retried),
 * whatever connect timeout it was given. A seed, map entry or redirection
 * that names a host would then hold an engine thread past shared_timeout_ms
 * at every (re)connect while DNS is slow or down. So a name is resolved on
 * a helper thread and waited for until the deadline; numeric addresses
 * (what Redis Cluster reports by default) pass through without a thread.
 *
 * Names are cached, process-wide (the resolver is), in a small table:
 *   - an answer younger than RESOLVE_TTL_NS is used without a lookup, so a
 *     burst of reconnects (every thread's link to a node that restarted)
 *     asks DNS once;
 *   - callers that find a lookup of their name under way wait for that one
 *     instead of starting another, so with DNS down a name has at most one
 *     helper thread pending, however many reconnects time out;
 *   - a name with a last answer waits at most half of the deadline for a
 *     new one (the connect needs the rest), and a lookup that times out or
 *     fails for a reason other than "no such name" (EAI_AGAIN, EAI_FAIL,
 *     ...) falls back on that answer, however old: with DNS down, nodes
 *     stay reachable at the address they had. A node that moved meanwhile
 *     fails its connect and is marked down, and the value checks
 *     (cold_record.h) make a wrong server a miss, never wrong bytes; the
 *     risk left is an old address now used by another Redis, which would
 *     be sent writes (and could answer CLUSTER SHARDS) until DNS answers
 *     again. "No such name" is believed at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tiers/shared_impl.h"

#include "base/clock.h"
#include "base/error.h"
#include "base/thread_name.h"

/* One lookup, shared by the caller and the helper thread; whichever lets
 * go last frees it, so a caller that gave up never waits for DNS. */
typedef struct lookup {
	pthread_mutex_t lock;
	pthread_cond_t done_cv;
	int refs;
	bool done;
	int gai_rc;
	char host[TKV__SHARED_HOST_MAX];
	char addr[INET6_ADDRSTRLEN];
} lookup;

static void lookup_put(lookup *q)
{
	pthread_mutex_lock(&q->lock);
	bool last = --q->refs == 0;
	pthread_mutex_unlock(&q->lock);
	if (last) {
		pthread_mutex_destroy(&q->lock);
		pthread_cond_destroy(&q->done_cv);
		free(q);
	}
}

/* The cache (see the file comment). Slots are reused oldest first. */
enum { CACHE_SLOTS = 64 };
#define RESOLVE_TTL_NS (5ull * 1000000000u)

typedef struct cached_name {
	char host[TKV__SHARED_HOST_MAX]; /* "" : free */
	char addr[INET6_ADDRSTRLEN];     /* "" : never resolved */
	uint64_t resolved_ns;            /* when addr was last confirmed */
	uint64_t used_ns;                /* for reuse of the slot */
	lookup *pending;                 /* a lookup under way (one reference) */
} cached_name;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cached_name cache[CACHE_SLOTS];

tkv__shared_gai_fn tkv__shared_gai_hook;
uint64_t tkv__shared_resolve_ttl_ns = RESOLVE_TTL_NS;

/* The slot of host, or a free or the least recently used one (cleared, its
 * pending lookup let go). cache_lock held. */
static cached_name *cache_slot(const char *host)
{
	cached_name *victim = &cache[0];
	for (int i = 0; i < CACHE_SLOTS; i++) {
		if (!strcmp(cache[i].host, host))
			return &cache[i];
		if (!cache[i].host[0] || (victim->host[0] && cache[i].used_ns < victim->used_ns))
			victim = &cache[i];
	}
	if (victim->pending)
		lookup_put(victim->pending);
	memset(victim, 0, sizeof(*victim));
	strcpy(victim->host, host);
	return victim;
}

/* A finished lookup: its result to its waiters and to its name's slot (if
 * it is still that slot's), both under cache_lock, so a caller either joins
 * it before it is done or finds the slot already updated, never a finished
 * lookup still pending (it would get the old result). */
static void lookup_done(lookup *q, int gai_rc, const char *addr)
{
	pthread_mutex_lock(&cache_lock);
	pthread_mutex_lock(&q->lock);
	q->gai_rc = gai_rc;
	memcpy(q->addr, addr, sizeof(q->addr));
	q->done = true;
	pthread_cond_broadcast(&q->done_cv); /* every caller that joined */
	pthread_mutex_unlock(&q->lock);
	for (int i = 0; i < CACHE_SLOTS; i++) {
		cached_name *c = &cache[i];
		if (c->pending != q)
			continue;
		c->pending = NULL;
		if (gai_rc == 0) {
			strcpy(c->addr, addr);
			c->resolved_ns = tkv__now_ns();
		} else if (gai_rc == EAI_NONAME) {
			c->addr[0] = '\0'; /* gone: never fall back on it */
		}
		lookup_put(q); /* the slot's reference */
		break;
	}
	pthread_mutex_unlock(&cache_lock);
}

/* getaddrinfo for one stream socket address of host, IPv4 first, as a
 * numeric string; 0 or an EAI_ code. */
static int resolve_now(const char *host, char addr[INET6_ADDRSTRLEN])
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	if (tkv__shared_gai_hook)
		return tkv__shared_gai_hook(host, addr, INET6_ADDRSTRLEN);
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc == 0) {
		/* IPv4 first: the one address goes to hiredis, which cannot try
		 * the next, and Redis nodes announce and mostly bind IPv4
		 * ("localhost" often lists ::1 first) */
		rc = EAI_NONAME;
		for (int fam = 0; fam < 2 && rc; fam++)
			for (struct addrinfo *a = res; a && rc; a = a->ai_next) {
				const void *src =
					fam == 0 && a->ai_family == AF_INET
						? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
					: fam == 1 && a->ai_family == AF_INET6
						? (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr
						: NULL;
				if (src && inet_ntop(a->ai_family, src, addr, INET6_ADDRSTRLEN))
					rc = 0;
			}
		freeaddrinfo(res);
	}
	return rc;
}

static void *resolve_main(void *arg)
{
	lookup *q = arg;
	/* named here: the thread is detached, its handle dead once it ends */
	tkv__thread_name(pthread_self(), "tkv-resolve");
	char addr[INET6_ADDRSTRLEN] = "";
	int rc = resolve_now(q->host, addr);
	lookup_done(q, rc, addr);
	lookup_put(q);
	return NULL;
}

static bool is_numeric(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
		return true;
	/* a scoped IPv6 literal (fe80::1%eth0) is numeric too: inet_pton
	 * rejects the scope, and resolving it would lose it */
	const char *pct = strchr(host, '%');
	char addr[INET6_ADDRSTRLEN];
	size_t len = pct ? (size_t)(pct - host) : 0;
	if (!pct || len >= sizeof(addr) || !pct[1])
		return false;
	memcpy(addr, host, len);
	addr[len] = '\0';
	return inet_pton(AF_INET6, addr, buf) == 1;
}

/* A new lookup of host on a detached helper thread, into *out with refs
 * references (the caller's, the slot's, the thread's); 0 or -errno (no
 * message: the caller may still succeed with the last address). */
static int lookup_start(const char *host, int refs, lookup **out)
{
	lookup *q = calloc(1, sizeof(*q));
	*out = NULL;
	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->done_cv, &ca);
	pthread_condattr_destroy(&ca);
	strcpy(q->host, host);
	q->refs = refs;
	pthread_attr_t ta;
	pthread_t th;
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	int trc = pthread_create(&th, &ta, resolve_main, q);
	pthread_attr_destroy(&ta);
	if (trc != 0) {
		pthread_mutex_destroy(&q->lock);
		pthread_cond_destroy(&q->done_cv);
		free(q);
		return -trc;
	}
	*out = q;
	return 0;
}

static int copy_out(const char *host, const char *addr, char *out, size_t out_len)
{
	if (strlen(addr) >= out_len)
		return tkv__fail(-EINVAL, "shared: address of '%s' does not fit", host);
	strcpy(out, addr);
	return 0;
}

int tkv__shared_resolve(const char *host, uint64_t timeout_ns, char *out, size_t out_len)
{
	size_t len = strlen(host);
	if (len == 0 || len >= TKV__SHARED_HOST_MAX)
		return tkv__fail(-EINVAL, "shared: host '%s': empty or too long", host);
	if (is_numeric(host)) {
		if (len >= out_len)
			return tkv__fail(-EINVAL, "shared: host '%s' does not fit", host);
		memcpy(out, host, len + 1);
		return 0;
	}
	/* a fresh answer, or the lookup under way, or a new one */
	char cached[INET6_ADDRSTRLEN] = "";
	pthread_mutex_lock(&cache_lock);
	/* The clock read under the lock: read before it, it could be older
	 * than an answer a finishing lookup stored meanwhile (lookup_done),
	 * and the unsigned age below would wrap and ask DNS again. */
	const uint64_t t0 = tkv__now_ns();
	cached_name *c = cache_slot(host);
	c->used_ns = t0;
	strcpy(cached, c->addr);
	if (cached[0] && t0 - c->resolved_ns < tkv__shared_resolve_ttl_ns) {
		pthread_mutex_unlock(&cache_lock);
		return copy_out(host, cached, out, out_len);
	}
	lookup *q = c->pending;
	int rc = 0;
	if (q) {
		pthread_mutex_lock(&q->lock);
		q->refs++;
		pthread_mutex_unlock(&q->lock);
	} else if (!(rc = lookup_start(host, 3, &q))) {
		c->pending = q;
	}
	pthread_mutex_unlock(&cache_lock);
	if (rc)
		return cached[0] ? copy_out(host, cached, out, out_len)
				 : tkv__fail(rc == -ENOMEM ? -ENOMEM : -EAGAIN,
					     "shared: resolving '%s': cannot start a lookup (%s)",
					     host, strerror(-rc));

	/* with a last answer to fall back on, leave the connect half the time */
	const uint64_t wait_ns = cached[0] ? timeout_ns / 2 : timeout_ns;
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	uint64_t ns = (uint64_t)dl.tv_nsec + wait_ns % 1000000000u;
	dl.tv_sec += (time_t)(wait_ns / 1000000000u + ns / 1000000000u);
	dl.tv_nsec = (long)(ns % 1000000000u);
	pthread_mutex_lock(&q->lock);
	while (!q->done && pthread_cond_timedwait(&q->done_cv, &q->lock, &dl) != ETIMEDOUT)
		;
	bool done = q->done;
	int gai_rc = q->gai_rc;
	char addr[INET6_ADDRSTRLEN];
	memcpy(addr, q->addr, sizeof(addr));
	pthread_mutex_unlock(&q->lock);
	lookup_put(q);
	if (done && gai_rc == 0)
		return copy_out(host, addr, out, out_len);
	if (done && gai_rc == EAI_NONAME)
		return tkv__fail(-EHOSTUNREACH, "shared: resolving '%s': %s", host,
				 gai_strerror(gai_rc));
	if (cached[0]) /* DNS slow or failing: the address it had */
		return copy_out(host, cached, out, out_len);
	if (!done)
		return tkv__fail(-ETIMEDOUT, "shared: resolving '%s' took longer than %llu ms", host,
				 (unsigned long long)(wait_ns / 1000000u));
	return tkv__fail(-EHOSTUNREACH, "shared: resolving '%s': %s", host, gai_strerror(gai_rc));
}
