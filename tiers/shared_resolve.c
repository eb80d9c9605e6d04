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
 * A helper that outlives its deadline finishes on its own (the resolver's
 * own timeout); with DNS down a node's reconnects, one per back-off, can
 * leave a few of them pending at once. There is no cache of names: a node
 * that moved is found again at its next connect.
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

#include "base/error.h"

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

static void *resolve_main(void *arg)
{
	lookup *q = arg;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(q->host, NULL, &hints, &res);
	char addr[INET6_ADDRSTRLEN] = "";
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
				if (src && inet_ntop(a->ai_family, src, addr, sizeof(addr)))
					rc = 0;
			}
		freeaddrinfo(res);
	}
	pthread_mutex_lock(&q->lock);
	q->gai_rc = rc;
	memcpy(q->addr, addr, sizeof(addr));
	q->done = true;
	pthread_cond_signal(&q->done_cv);
	pthread_mutex_unlock(&q->lock);
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
	lookup *q = calloc(1, sizeof(*q));
	if (!q)
		return tkv__fail(-ENOMEM, "shared: resolving '%s': out of memory", host);
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->done_cv, &ca);
	pthread_condattr_destroy(&ca);
	memcpy(q->host, host, len + 1);
	q->refs = 2;
	pthread_attr_t ta;
	pthread_t th;
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	int trc = pthread_create(&th, &ta, resolve_main, q);
	pthread_attr_destroy(&ta);
	if (trc != 0) {
		q->refs = 1;
		lookup_put(q);
		return tkv__fail(-EAGAIN, "shared: resolving '%s': no thread (%s)", host,
				 strerror(trc));
	}
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	uint64_t ns = (uint64_t)dl.tv_nsec + timeout_ns % 1000000000u;
	dl.tv_sec += (time_t)(timeout_ns / 1000000000u + ns / 1000000000u);
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
	if (!done)
		return tkv__fail(-ETIMEDOUT, "shared: resolving '%s' took longer than %llu ms", host,
				 (unsigned long long)(timeout_ns / 1000000u));
	if (gai_rc != 0)
		return tkv__fail(-EHOSTUNREACH, "shared: resolving '%s': %s", host,
				 gai_strerror(gai_rc));
	if (strlen(addr) >= out_len)
		return tkv__fail(-EINVAL, "shared: address of '%s' does not fit", host);
	strcpy(out, addr);
	return 0;
}
