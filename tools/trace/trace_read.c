/*
 * trace_read.c - the trace file parser (FORMAT.md).
 *
 * Three passes over the sections, each cheap: the first checks the framing of
 * every section and counts what to allocate, the second decodes the tables
 * (kinds, threads), the third the events and drop counts, checked against the
 * tables. Nothing is read before its bounds are checked against the bytes
 * that remain, and allocations are sized by the first pass, never by a count
 * taken from the file on trust.
 */
#include "tools/trace/trace_read.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/array.h"
#include "base/error.h"
#include "tierkv.h"
#include "base/trace_format.h"

typedef struct section {
	size_t off; /* of the section header */
	uint32_t type, len;
	const uint8_t *p; /* payload */
} section;

/* What the first pass found. */
typedef struct scan {
	uint16_t event_size;
	size_t first; /* offset of the first section */
	size_t n_threads, n_kinds, n_events, name_bytes;
} scan;

typedef struct reader {
	const uint8_t *d;
	size_t len;
	scan s;
	tkv__trace_file *f;
	uint32_t *thread_slot; /* index -> slot + 1; 0 = no such thread */
	uint32_t *kind_slot;   /* kind -> slot + 1 */
	size_t kinds_cap;
	size_t name_used;
} reader;

__attribute__((format(printf, 2, 3))) static int corrupt(size_t off, const char *fmt,
							  ...);

/* -TKV_ECORRUPT with a message naming where in the file and what. */
static int corrupt(size_t off, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return tkv__fail(-TKV_ECORRUPT, "corrupt trace at offset %zu: %s", off, msg);
}

/* ---- Framing ----------------------------------------------------------- */

/* Returns 1 with *s filled, 0 at the end of the data, or an error. */
static int next_section(const reader *r, size_t *off, section *s)
{
	size_t left = r->len - *off;
	if (left == 0)
		return 0;
	if (left < TKV__TF_SECTION_HDR)
		return corrupt(*off, "truncated section header (%zu of %d bytes)", left,
			       TKV__TF_SECTION_HDR);
	s->off = *off;
	s->type = tkv__get32(r->d + *off);
	s->len = tkv__get32(r->d + *off + 4);
	s->p = r->d + *off + TKV__TF_SECTION_HDR;
	if (s->len > left - TKV__TF_SECTION_HDR)
		return corrupt(*off, "truncated: section of type %u claims %u bytes, %zu remain",
			       s->type, s->len, left - TKV__TF_SECTION_HDR);
	*off += TKV__TF_SECTION_HDR + (size_t)s->len;
	return 1;
}

static int check_header(reader *r)
{
	const uint8_t *d = r->d;
	if (r->len < 16 || memcmp(d, TKV__TF_MAGIC, TKV__TF_MAGIC_LEN) != 0)
		return tkv__fail(-TKV_ECORRUPT, "not a tierkv trace file (%s)",
				 r->len < 16 ? "too short" : "bad magic");
	uint16_t major = tkv__get16(d + 8), hsize = tkv__get16(d + 12);
	if (major != TKV__TF_MAJOR)
		return tkv__fail(-EPROTONOSUPPORT,
				 "trace format version %u.%u: this reader reads %d.x",
				 major, tkv__get16(d + 10), TKV__TF_MAJOR);
	if (hsize < TKV__TF_HEADER_SIZE || hsize > r->len)
		return corrupt(12, "header size %u (file %zu bytes, need >= %d)", hsize,
			       r->len, TKV__TF_HEADER_SIZE);
	r->s.event_size = tkv__get16(d + 14);
	if (r->s.event_size < TKV__TF_EVENT_SIZE)
		return corrupt(14, "event size %u < %d", r->s.event_size, TKV__TF_EVENT_SIZE);
	if (tkv__get32(d + 32) != TKV__TF_CLOCK_MONOTONIC)
		return corrupt(32, "unknown clock %u", tkv__get32(d + 32));
	r->s.first = hsize;
	return 0;
}

/* Walks a KINDS payload; with f set also stores the entries. */
static int walk_kinds(reader *r, const section *s, bool store)
{
	if (s->len < 2)
		return corrupt(s->off, "kind table shorter than its count");
	uint16_t count = tkv__get16(s->p);
	size_t at = 2;
	for (uint16_t i = 0; i < count; i++) {
		tkv__trace_kind_info k = {.in_table = true};
		tkv__trace_str *str[3] = {&k.name, &k.arg_a, &k.arg_b};
		if (s->len - at < 3)
			return corrupt(s->off, "kind table entry %u truncated", i);
		k.kind = tkv__get16(s->p + at);
		k.shape = s->p[at + 2];
		at += 3;
		for (int j = 0; j < 3; j++) {
			if (s->len - at < 1 || s->len - at - 1 < s->p[at])
				return corrupt(s->off, "kind table entry %u: string overruns", i);
			str[j]->len = s->p[at];
			str[j]->p = (const char *)s->p + at + 1;
			at += 1 + str[j]->len;
		}
		if (k.shape > TKV__TRACE_INSTANT)
			return corrupt(s->off, "kind %u: unknown shape %u", k.kind, k.shape);
		if (!store) {
			r->s.name_bytes += k.name.len + k.arg_a.len + k.arg_b.len;
			continue;
		}
		if (r->kind_slot[k.kind])
			return corrupt(s->off, "kind %u listed twice", k.kind);
		r->f->kinds[r->f->n_kinds] = k;
		r->kind_slot[k.kind] = (uint32_t)++r->f->n_kinds;
	}
	if (at != s->len)
		return corrupt(s->off, "%zu stray bytes after the kind table", s->len - at);
	if (!store)
		r->s.n_kinds += count;
	return 0;
}

/* Pass 1 for one section: its size is consistent with its own fields. */
static int scan_section(reader *r, const section *s, size_t end_off, bool *kinds_seen)
{
	switch (s->type) {
	case TKV__TF_KINDS:
		if (*kinds_seen || r->s.n_events)
			return corrupt(s->off, "kind table repeated or after events");
		*kinds_seen = true;
		return walk_kinds(r, s, false);
	case TKV__TF_THREAD:
		if (s->len < 3 || s->len != 3u + s->p[2])
			return corrupt(s->off, "thread entry of %u bytes", s->len);
		r->s.n_threads++;
		r->s.name_bytes += s->p[2];
		return 0;
	case TKV__TF_EVENTS: {
		uint32_t count = s->len >= TKV__TF_EVENTS_HDR ? tkv__get32(s->p + 4) : 0;
		if (s->len < TKV__TF_EVENTS_HDR ||
		    count != (s->len - TKV__TF_EVENTS_HDR) / r->s.event_size ||
		    (s->len - TKV__TF_EVENTS_HDR) % r->s.event_size != 0)
			return corrupt(s->off, "event block of %u bytes does not hold its count",
				       s->len);
		r->s.n_events += count;
		return 0;
	}
	case TKV__TF_DROPPED:
		return s->len == TKV__TF_DROPPED_LEN
			       ? 0
			       : corrupt(s->off, "dropped entry of %u bytes", s->len);
	case TKV__TF_END:
		if (s->len != TKV__TF_END_LEN)
			return corrupt(s->off, "end marker of %u bytes", s->len);
		if (end_off != r->len)
			return corrupt(end_off, "%zu bytes after the end marker",
				       r->len - end_off);
		return 1;
	default:
		return 0; /* a newer writer's section: skip it */
	}
}

static int scan_file(reader *r)
{
	size_t off = r->s.first;
	bool kinds_seen = false;
	section s;
	int rc;
	while ((rc = next_section(r, &off, &s)) == 1) {
		rc = scan_section(r, &s, off, &kinds_seen);
		if (rc)
			return rc < 0 ? rc : 0; /* 1: the end marker, the last section */
	}
	if (rc < 0)
		return rc;
	return tkv__fail(-TKV_ECORRUPT,
			 "truncated trace: no end marker after %zu bytes (the process died "
			 "or the tracer was not closed)",
			 r->len);
}

/* ---- Tables ------------------------------------------------------------ */

static tkv__trace_str keep_name(reader *r, tkv__trace_str in)
{
	tkv__trace_str out = {r->f->names + r->name_used, in.len};
	memcpy(r->f->names + r->name_used, in.p, in.len);
	r->name_used += in.len;
	return out;
}

static int cmp_thread(const void *a, const void *b)
{
	const tkv__trace_thread_info *x = a, *y = b;
	return (x->index > y->index) - (x->index < y->index);
}

static int read_tables(reader *r)
{
	tkv__trace_file *f = r->f;
	size_t off = r->s.first;
	section s;
	while (next_section(r, &off, &s) == 1) {
		if (s.type == TKV__TF_KINDS) {
			int rc = walk_kinds(r, &s, true);
			if (rc)
				return rc;
		} else if (s.type == TKV__TF_THREAD) {
			tkv__trace_thread_info *t = &f->threads[f->n_threads++];
			t->index = tkv__get16(s.p);
			t->name = (tkv__trace_str){(const char *)s.p + 3, s.p[2]};
		}
	}
	for (size_t i = 0; i < f->n_kinds; i++) {
		tkv__trace_kind_info *k = &f->kinds[i];
		k->name = keep_name(r, k->name);
		k->arg_a = keep_name(r, k->arg_a);
		k->arg_b = keep_name(r, k->arg_b);
	}
	qsort(f->threads, f->n_threads, sizeof(*f->threads), cmp_thread);
	for (size_t i = 0; i < f->n_threads; i++) {
		tkv__trace_thread_info *t = &f->threads[i];
		if (r->thread_slot[t->index])
			return tkv__fail(-TKV_ECORRUPT, "corrupt trace: thread %u listed twice",
					 t->index);
		r->thread_slot[t->index] = (uint32_t)i + 1;
		t->name = keep_name(r, t->name);
	}
	return 0;
}

/* ---- Events ------------------------------------------------------------ */

/* Adds a kind that events use but the table lacks. */
static int add_unlisted_kind(reader *r, uint16_t kind)
{
	tkv__trace_file *f = r->f;
	void *p = tkv__array_grow(f->kinds, &r->kinds_cap, f->n_kinds + 1, sizeof(*f->kinds));
	if (!p)
		return tkv__fail(-ENOMEM, "trace: out of memory");
	f->kinds = p;
	f->kinds[f->n_kinds] = (tkv__trace_kind_info){.kind = kind, .shape = TKV__TRACE_SPAN};
	r->kind_slot[kind] = (uint32_t)++f->n_kinds;
	return 0;
}

static int read_event(reader *r, const uint8_t *p, uint16_t thread, size_t off)
{
	tkv__trace_event e = {
		.t0 = tkv__get64(p),
		.dur = tkv__get64(p + 8),
		.kind = tkv__get16(p + 16),
		.thread = tkv__get16(p + 18),
		.a = tkv__get32(p + 20),
		.b = tkv__get64(p + 24),
	};
	if (e.thread != thread)
		return corrupt(off, "event of thread %u in the block of thread %u", e.thread,
			       thread);
	if (e.t0 + e.dur < e.t0)
		return corrupt(off, "event time %llu + %llu overflows",
			       (unsigned long long)e.t0, (unsigned long long)e.dur);
	if (!r->kind_slot[e.kind]) {
		int rc = add_unlisted_kind(r, e.kind);
		if (rc)
			return rc;
	}
	if (e.t0 < r->f->base_ns)
		r->f->base_ns = e.t0;
	r->f->events[r->f->n_events++] = e;
	return 0;
}

static int read_event_block(reader *r, const section *s)
{
	uint16_t thread = tkv__get16(s->p);
	uint32_t count = tkv__get32(s->p + 4);
	uint32_t slot = r->thread_slot[thread];
	if (!slot)
		return corrupt(s->off, "events of thread %u, which has no thread entry", thread);
	r->f->threads[slot - 1].n_events += count;
	for (uint32_t i = 0; i < count; i++) {
		size_t at = TKV__TF_EVENTS_HDR + (size_t)i * r->s.event_size;
		int rc = read_event(r, s->p + at, thread, s->off + TKV__TF_SECTION_HDR + at);
		if (rc)
			return rc;
	}
	return 0;
}

static int read_dropped(reader *r, const section *s)
{
	uint16_t thread = tkv__get16(s->p);
	uint64_t n = tkv__get64(s->p + 8);
	uint32_t slot = r->thread_slot[thread];
	if (!slot)
		return corrupt(s->off, "dropped count of thread %u, which has no thread entry",
			       thread);
	if (r->f->threads[slot - 1].dropped)
		return corrupt(s->off, "dropped count of thread %u repeated", thread);
	if (n == 0 || r->f->dropped + n < n)
		return corrupt(s->off, "dropped count %llu", (unsigned long long)n);
	r->f->threads[slot - 1].dropped = n;
	r->f->dropped += n;
	return 0;
}

static int check_end(reader *r, const section *s)
{
	uint64_t n = tkv__get64(s->p), dropped = tkv__get64(s->p + 8);
	uint32_t threads = tkv__get32(s->p + 16);
	if (n != r->f->n_events || dropped != r->f->dropped || threads != r->f->n_threads)
		return corrupt(s->off,
			       "end marker counts (%llu events, %llu dropped, %u threads) "
			       "differ from the file's (%zu, %llu, %zu)",
			       (unsigned long long)n, (unsigned long long)dropped, threads,
			       r->f->n_events, (unsigned long long)r->f->dropped,
			       r->f->n_threads);
	r->f->untraced = tkv__get32(s->p + 20);
	return 0;
}

static int read_events(reader *r)
{
	size_t off = r->s.first;
	section s;
	while (next_section(r, &off, &s) == 1) {
		int rc = 0;
		if (s.type == TKV__TF_EVENTS)
			rc = read_event_block(r, &s);
		else if (s.type == TKV__TF_DROPPED)
			rc = read_dropped(r, &s);
		else if (s.type == TKV__TF_END)
			rc = check_end(r, &s);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- Entry points ------------------------------------------------------ */

static int cmp_kind(const void *a, const void *b)
{
	const tkv__trace_kind_info *x = a, *y = b;
	return (x->kind > y->kind) - (x->kind < y->kind);
}

static int alloc_file(reader *r)
{
	tkv__trace_file *f = calloc(1, sizeof(*f));
	r->f = f;
	if (!f)
		return tkv__fail(-ENOMEM, "trace: out of memory");
	r->kinds_cap = r->s.n_kinds + 16;
	f->threads = calloc(r->s.n_threads + 1, sizeof(*f->threads));
	f->kinds = calloc(r->kinds_cap, sizeof(*f->kinds));
	f->events = calloc(r->s.n_events + 1, sizeof(*f->events));
	f->names = malloc(r->s.name_bytes + 1);
	r->thread_slot = calloc(UINT16_MAX + 1, sizeof(uint32_t));
	r->kind_slot = calloc(UINT16_MAX + 1, sizeof(uint32_t));
	if (!f->threads || !f->kinds || !f->events || !f->names || !r->thread_slot ||
	    !r->kind_slot)
		return tkv__fail(-ENOMEM, "trace: out of memory for %zu events", r->s.n_events);
	return 0;
}

int tkv__trace_parse(const void *data, size_t len, tkv__trace_file **out)
{
	reader r = {.d = data, .len = len};
	*out = NULL;
	if (!data && len)
		return tkv__fail(-EINVAL, "trace: NULL data");
	int rc = check_header(&r);
	if (!rc)
		rc = scan_file(&r);
	if (!rc)
		rc = alloc_file(&r);
	if (!rc) {
		r.f->version_major = tkv__get16(r.d + 8);
		r.f->version_minor = tkv__get16(r.d + 10);
		r.f->open_mono_ns = tkv__get64(r.d + 16);
		r.f->open_realtime_ns = tkv__get64(r.d + 24);
		r.f->base_ns = r.f->open_mono_ns;
		rc = read_tables(&r);
	}
	if (!rc)
		rc = read_events(&r);
	free(r.thread_slot);
	free(r.kind_slot);
	if (rc) {
		tkv__trace_file_free(r.f);
		return rc;
	}
	qsort(r.f->kinds, r.f->n_kinds, sizeof(*r.f->kinds), cmp_kind);
	*out = r.f;
	return 0;
}

static int read_all(const char *path, uint8_t **data, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = malloc(cap);
	if (!fp || !buf) {
		int rc = fp ? -ENOMEM : -errno;
		free(buf);
		if (fp)
			fclose(fp);
		return tkv__fail(rc, "%s: cannot read: %s", path, strerror(-rc));
	}
	for (;;) {
		n += fread(buf + n, 1, cap - n, fp);
		if (n < cap)
			break;
		uint8_t *p = tkv__array_grow(buf, &cap, cap + 1, 1);
		if (!p)
			break;
		buf = p;
	}
	int bad = ferror(fp) || n == cap;
	fclose(fp);
	if (bad) {
		free(buf);
		return tkv__fail(-EIO, "%s: read failed", path);
	}
	*data = buf;
	*len = n;
	return 0;
}

int tkv__trace_load(const char *path, tkv__trace_file **out)
{
	uint8_t *data = NULL;
	size_t len = 0;
	*out = NULL;
	int rc = read_all(path, &data, &len);
	if (rc)
		return rc;
	rc = tkv__trace_parse(data, len, out);
	free(data);
	if (rc) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", tkv_last_error());
		return tkv__fail(rc, "%s: %s", path, msg);
	}
	return 0;
}

void tkv__trace_file_free(tkv__trace_file *f)
{
	if (!f)
		return;
	free(f->threads);
	free(f->kinds);
	free(f->events);
	free(f->names);
	free(f);
}

const tkv__trace_thread_info *tkv__trace_thread_at(const tkv__trace_file *f,
						   uint16_t index)
{
	tkv__trace_thread_info key = {.index = index};
	return bsearch(&key, f->threads, f->n_threads, sizeof(key), cmp_thread);
}

const tkv__trace_kind_info *tkv__trace_kind_at(const tkv__trace_file *f, uint16_t kind)
{
	tkv__trace_kind_info key = {.kind = kind};
	return bsearch(&key, f->kinds, f->n_kinds, sizeof(key), cmp_kind);
}
