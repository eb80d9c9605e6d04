/*
 * metrics.c - tkv_stats in the Prometheus text exposition format, so an
 * engine can publish the runtime's counters from its own /metrics endpoint
 * without knowing their names.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/error.h"
#include "runtime/runtime.h"

/* Appends to a bounded buffer, counting what would have been written. */
typedef struct out {
	char *buf;
	size_t len, used;
} out;

__attribute__((format(printf, 2, 3))) static void put(out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = o->used < o->len ? o->len - o->used : 0;
	int n = vsnprintf(room ? o->buf + o->used : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->used += (size_t)n;
}

static void head(out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP tierkv_%s %s\n# TYPE tierkv_%s %s\n", name, help, name, type);
}

static void one(out *o, const char *name, const char *type, const char *help, uint64_t v)
{
	head(o, name, type, help);
	put(o, "tierkv_%s %llu\n", name, (unsigned long long)v);
}

typedef uint64_t (*worker_field)(const tkv_worker_stats *w);
static uint64_t w_tokens(const tkv_worker_stats *w) { return w->tokens_stored; }
static uint64_t w_bytes(const tkv_worker_stats *w) { return w->bytes_stored; }
static uint64_t w_batches(const tkv_worker_stats *w) { return w->batches; }

static void per_worker(out *o, const tkv_stats *st, const char *name, const char *help,
		       worker_field f)
{
	head(o, name, "counter", help);
	for (uint32_t i = 0; i < st->n_workers && i < TKV_STATS_MAX_WORKERS; i++)
		put(o, "tierkv_%s{worker=\"%u\"} %llu\n", name, i,
		    (unsigned long long)f(&st->workers[i]));
}

int64_t tkv_metrics_prometheus(tkv_runtime *rt, char *buf, size_t len)
{
	tkv_stats *st = malloc(sizeof(*st)); /* ~8 KiB: not on the caller's stack */
	if (!st)
		return tkv__fail(-ENOMEM, "metrics: out of memory");
	st->struct_size = sizeof(*st);
	int rc = tkv_stats_get(rt, st);
	if (rc) {
		free(st);
		return rc;
	}
	out o = {buf, buf ? len : 0, 0};
	per_worker(&o, st, "tokens_stored_total", "Layer-tokens copied into the hot tier.", w_tokens);
	per_worker(&o, st, "bytes_stored_total", "Bytes of K and V copied into the hot tier.", w_bytes);
	per_worker(&o, st, "batches_total", "Store batches copied by each worker.", w_batches);
	one(&o, "ring_full_total", "counter", "Stores that found their worker's ring full.",
	    st->ring_full_events);
	one(&o, "hot_full_total", "counter", "Stores refused because the hot tier was full.",
	    st->enospc_events);
	one(&o, "hot_bytes_used", "gauge", "Bytes of hot-tier blocks in use.", st->hot_bytes_used);
	one(&o, "hot_bytes_capacity", "gauge", "Hot-tier capacity in bytes.", st->hot_bytes_capacity);
	one(&o, "pinned_blocks", "gauge", "Hot blocks pinned by views.", st->pinned_blocks);
	one(&o, "open_sequences", "gauge", "Sequences open.", st->open_sequences);
	one(&o, "workers", "gauge", "Worker threads.", st->n_workers);
	one(&o, "worker_pin_failures", "gauge", "Workers that could not be pinned to a core.",
	    st->pin_failures);
	free(st);
	if (buf && len)
		buf[o.used < len ? o.used : len - 1] = '\0';
	return (int64_t)o.used;
}
