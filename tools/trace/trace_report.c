/*
 * trace_report.c - what tierkv-trace prints from a parsed trace: the
 * per-stage and per-thread latency summary, and Chrome Trace Event JSON for
 * Perfetto / chrome://tracing.
 *
 * Input comes from tkv__trace_parse(), which guarantees consistency (threads
 * exist, t0 + dur does not overflow); strings may still hold any bytes, so
 * every string is escaped (JSON) or made printable (text) on the way out.
 */
#include "tools/trace/trace_read.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* ---- Summary ----------------------------------------------------------- */

typedef struct key {
	uint16_t kind, thread;
	uint64_t dur;
} key;

static int cmp_kind_dur(const void *a, const void *b)
{
	const key *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return (x->dur > y->dur) - (x->dur < y->dur);
}

static int cmp_thread_kind_dur(const void *a, const void *b)
{
	const key *x = a, *y = b;
	if (x->thread != y->thread)
		return x->thread < y->thread ? -1 : 1;
	return cmp_kind_dur(a, b);
}

/* 1-based nearest rank: ceil(p * n / 100), at least 1. */
static size_t nearest_rank(size_t n, unsigned p)
{
	size_t r = (size_t)(((unsigned __int128)n * p + 99) / 100);
	return r ? r : 1;
}

uint64_t tkv__trace_percentile(const uint64_t *sorted, size_t n, unsigned p)
{
	return sorted[nearest_rank(n, p) - 1];
}

static bool is_instant(const tkv__trace_file *f, uint16_t kind)
{
	return tkv__trace_kind_at(f, kind)->shape == TKV__TRACE_INSTANT;
}

/* Fills a row from a run of keys sorted by duration. */
static void stat_run(const tkv__trace_file *f, const key *run, size_t n,
		     tkv__trace_stat *st)
{
	st->kind = run[0].kind;
	st->count = n;
	if (is_instant(f, st->kind))
		return;
	st->p50 = run[nearest_rank(n, 50) - 1].dur;
	st->p99 = run[nearest_rank(n, 99) - 1].dur;
	st->max = run[n - 1].dur;
	for (size_t i = 0; i < n; i++) /* saturate: a corrupt file may hold huge durations */
		st->total = st->total + run[i].dur < st->total ? UINT64_MAX
							       : st->total + run[i].dur;
}

/* Appends one row per run of equal (kind) or (thread, kind). */
static size_t add_rows(const tkv__trace_file *f, const key *k, size_t n, bool all,
		       tkv__trace_stat *rows)
{
	size_t n_rows = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && k[j].kind == k[i].kind && (all || k[j].thread == k[i].thread))
			j++;
		tkv__trace_stat *st = &rows[n_rows++];
		*st = (tkv__trace_stat){.all_threads = all, .thread = all ? 0 : k[i].thread};
		stat_run(f, k + i, j - i, st);
		i = j;
	}
	return n_rows;
}

int tkv__trace_summarize(const tkv__trace_file *f, tkv__trace_stat **rows, size_t *n_rows)
{
	size_t n = f->n_events;
	key *k = malloc((n + 1) * sizeof(*k));
	tkv__trace_stat *r = calloc(2 * n + 1, sizeof(*r));
	if (!k || !r) {
		free(k);
		free(r);
		return tkv__fail(-ENOMEM, "trace summary: out of memory for %zu events", n);
	}
	for (size_t i = 0; i < n; i++)
		k[i] = (key){f->events[i].kind, f->events[i].thread, f->events[i].dur};
	qsort(k, n, sizeof(*k), cmp_kind_dur);
	size_t m = add_rows(f, k, n, true, r);
	qsort(k, n, sizeof(*k), cmp_thread_kind_dur);
	m += add_rows(f, k, n, false, r + m);
	free(k);
	*rows = r;
	*n_rows = m;
	return 0;
}

/* ---- Text -------------------------------------------------------------- */

/* A file string as printable ASCII ('?' for anything else), NUL-terminated. */
static const char *printable(tkv__trace_str s, char *buf, size_t size)
{
	size_t n = s.len < size - 1 ? s.len : size - 1;
	for (size_t i = 0; i < n; i++)
		buf[i] = (s.p[i] >= 0x20 && s.p[i] < 0x7f) ? s.p[i] : '?';
	buf[n] = '\0';
	return buf;
}

static const char *kind_name(const tkv__trace_file *f, uint16_t kind, char *buf,
			     size_t size)
{
	const tkv__trace_kind_info *k = tkv__trace_kind_at(f, kind);
	if (!k->in_table || k->name.len == 0) {
		snprintf(buf, size, "kind_%u", kind);
		return buf;
	}
	return printable(k->name, buf, size);
}

/* ns as microseconds with three decimals: exact, no floating point. */
static const char *us(uint64_t ns, char *buf, size_t size)
{
	snprintf(buf, size, "%llu.%03u", (unsigned long long)(ns / 1000),
		 (unsigned)(ns % 1000));
	return buf;
}

static void print_row(const tkv__trace_file *f, const tkv__trace_stat *st,
		      const char *indent, FILE *out)
{
	char name[64], b[4][32];
	kind_name(f, st->kind, name, sizeof(name));
	if (is_instant(f, st->kind)) {
		fprintf(out, "%s%-*s %10llu %14s %14s %14s %16s\n", indent,
			(int)(22 - strlen(indent)), name, (unsigned long long)st->count,
			"-", "-", "-", "-");
		return;
	}
	fprintf(out, "%s%-*s %10llu %14s %14s %14s %16s\n", indent,
		(int)(22 - strlen(indent)), name, (unsigned long long)st->count,
		us(st->p50, b[0], 32), us(st->p99, b[1], 32), us(st->max, b[2], 32),
		us(st->total, b[3], 32));
}

static void print_header(const tkv__trace_file *f, FILE *out)
{
	uint64_t first = UINT64_MAX, last = 0;
	char b[32];
	for (size_t i = 0; i < f->n_events; i++) {
		const tkv__trace_event *e = &f->events[i];
		first = e->t0 < first ? e->t0 : first;
		last = e->t0 + e->dur > last ? e->t0 + e->dur : last;
	}
	fprintf(out, "trace format %u.%u: %zu threads, %zu events, %s us from first to last\n",
		f->version_major, f->version_minor, f->n_threads, f->n_events,
		us(f->n_events ? last - first : 0, b, sizeof(b)));
}

/* Lost events come first so nobody reads the figures without knowing. */
static void print_losses(const tkv__trace_file *f, FILE *out)
{
	char name[64];
	if (f->dropped) {
		fprintf(out, "WARNING: %llu events dropped (thread buffers full, writer behind):\n",
			(unsigned long long)f->dropped);
		for (size_t i = 0; i < f->n_threads; i++)
			if (f->threads[i].dropped)
				fprintf(out, "  [%u] %s: %llu\n", f->threads[i].index,
					printable(f->threads[i].name, name, sizeof(name)),
					(unsigned long long)f->threads[i].dropped);
	}
	if (f->untraced)
		fprintf(out, "WARNING: %u threads could not be traced (registration failed)\n",
			f->untraced);
}

int tkv__trace_print_summary(const tkv__trace_file *f, FILE *out)
{
	tkv__trace_stat *rows;
	size_t n, i = 0;
	char name[64];
	int rc = tkv__trace_summarize(f, &rows, &n);
	if (rc)
		return rc;
	print_header(f, out);
	print_losses(f, out);
	fprintf(out, "\n%-22s %10s %14s %14s %14s %16s\n", "stage", "count", "p50 us",
		"p99 us", "max us", "total us");
	for (; i < n && rows[i].all_threads; i++)
		print_row(f, &rows[i], "", out);
	for (size_t t = 0; t < f->n_threads; t++) {
		const tkv__trace_thread_info *th = &f->threads[t];
		fprintf(out, "\nthread [%u] %s: %llu events", th->index,
			printable(th->name, name, sizeof(name)), (unsigned long long)th->n_events);
		if (th->dropped)
			fprintf(out, ", %llu DROPPED", (unsigned long long)th->dropped);
		fputc('\n', out);
		for (; i < n && rows[i].thread == th->index; i++)
			print_row(f, &rows[i], "  ", out);
	}
	free(rows);
	return ferror(out) ? tkv__fail(-EIO, "trace summary: write failed") : 0;
}

/* ---- Chrome Trace Event JSON ------------------------------------------- */

static void json_str(FILE *out, const char *p, size_t n)
{
	fputc('"', out);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f) /* bytes, not UTF-8: keep the JSON valid */
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static bool str_eq(tkv__trace_str a, tkv__trace_str b)
{
	return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

static void json_args(FILE *out, const tkv__trace_kind_info *k, const tkv__trace_event *e)
{
	/* Argument names from the file; plain "a"/"b" if missing or clashing,
	 * so the object never has a duplicate key. */
	tkv__trace_str a = k->arg_a, b = k->arg_b;
	if (!k->in_table || a.len == 0 || b.len == 0 || str_eq(a, b)) {
		a = (tkv__trace_str){"a", 1};
		b = (tkv__trace_str){"b", 1};
	}
	fputs(",\"args\":{", out);
	json_str(out, a.p, a.len);
	fprintf(out, ":%u,", e->a);
	json_str(out, b.p, b.len);
	fprintf(out, ":%llu}", (unsigned long long)e->b);
}

/* Opens an event object up to and including its "ts". */
static void json_head(FILE *out, const tkv__trace_file *f, const tkv__trace_kind_info *k,
		      const tkv__trace_event *e, const char *ph, uint64_t at)
{
	char name[16], b[32];
	fputs(",\n{\"name\":", out);
	if (k->in_table && k->name.len)
		json_str(out, k->name.p, k->name.len);
	else
		json_str(out, name, (size_t)snprintf(name, sizeof(name), "kind_%u", k->kind));
	fprintf(out, ",\"cat\":\"tierkv\",\"ph\":\"%s\",\"pid\":1,\"tid\":%u,\"ts\":%s", ph,
		e->thread, us(at - f->base_ns, b, sizeof(b)));
}

static void json_event(FILE *out, const tkv__trace_file *f, const tkv__trace_event *e,
		       size_t serial)
{
	const tkv__trace_kind_info *k = tkv__trace_kind_at(f, e->kind);
	char b[32];
	switch (k->shape) {
	case TKV__TRACE_INSTANT:
		json_head(out, f, k, e, "i", e->t0);
		fputs(",\"s\":\"t\"", out);
		break;
	case TKV__TRACE_ASYNC:
		/* A begin/end pair with its own id: viewers put overlapping
		 * I/Os on separate async tracks instead of mis-nesting them. */
		json_head(out, f, k, e, "b", e->t0);
		fprintf(out, ",\"id\":\"0x%zx\"", serial);
		json_args(out, k, e);
		fputc('}', out);
		json_head(out, f, k, e, "e", e->t0 + e->dur);
		fprintf(out, ",\"id\":\"0x%zx\"}", serial);
		return;
	default:
		json_head(out, f, k, e, "X", e->t0);
		fprintf(out, ",\"dur\":%s", us(e->dur, b, sizeof(b)));
	}
	json_args(out, k, e);
	fputc('}', out);
}

static void json_threads(FILE *out, const tkv__trace_file *f)
{
	fputs("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,"
	      "\"args\":{\"name\":\"tierkv\"}}",
	      out);
	for (size_t i = 0; i < f->n_threads; i++) {
		const tkv__trace_thread_info *t = &f->threads[i];
		char name[256 + 64]; /* names are at most 255 bytes, any value */
		memcpy(name, t->name.p, t->name.len);
		int n = (int)t->name.len;
		if (t->dropped)
			n += snprintf(name + n, sizeof(name) - (size_t)n, " (%llu events DROPPED)",
				      (unsigned long long)t->dropped);
		fprintf(out, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%u,"
			     "\"args\":{\"name\":",
			t->index);
		json_str(out, name, (size_t)n);
		fprintf(out, "}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,"
			     "\"tid\":%u,\"args\":{\"sort_index\":%u}}",
			t->index, t->index);
	}
}

/* Start order, outer span before an inner one that starts at the same
 * nanosecond, so viewers that build slice stacks in file order nest them
 * right; the file holds inner spans first (they end first). */
typedef struct start_key {
	uint64_t t0, dur;
	size_t i;
} start_key;

static int cmp_start(const void *a, const void *b)
{
	const start_key *x = a, *y = b;
	if (x->t0 != y->t0)
		return x->t0 < y->t0 ? -1 : 1;
	if (x->dur != y->dur)
		return x->dur > y->dur ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

int tkv__trace_write_json(const tkv__trace_file *f, FILE *out)
{
	start_key *order = malloc((f->n_events + 1) * sizeof(*order));
	if (!order)
		return tkv__fail(-ENOMEM, "trace JSON: out of memory for %zu events", f->n_events);
	for (size_t i = 0; i < f->n_events; i++)
		order[i] = (start_key){f->events[i].t0, f->events[i].dur, i};
	qsort(order, f->n_events, sizeof(*order), cmp_start);
	fputs("{\"traceEvents\":[\n", out);
	json_threads(out, f);
	for (size_t i = 0; i < f->n_events; i++)
		json_event(out, f, &f->events[order[i].i], order[i].i);
	free(order);
	fprintf(out,
		"\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{\"format\":\"tierkv trace "
		"%u.%u\",\"dropped_events\":%llu,\"untraced_threads\":%u}}\n",
		f->version_major, f->version_minor, (unsigned long long)f->dropped, f->untraced);
	return ferror(out) ? tkv__fail(-EIO, "trace JSON: write failed") : 0;
}
