/*
 * trace.c - the tracer: thread registration, the chunk handoff between the
 * recording threads and the background writer, and the file writer.
 *
 * Invariants:
 *  - A chunk belongs to its recording thread while fill[i] == 0 and to the
 *    writer while fill[i] != 0; each side hands it over with a release store
 *    that the other side acquire-loads before touching the events.
 *  - Chunks of one thread are published and drained in ring order, so the
 *    file holds each thread's events in recording order.
 *  - The thread list only grows until close and a node's immutable fields
 *    (name, index, chunks, next) are set before it is linked under the lock,
 *    so the writer can walk it without the lock once it has read the head.
 *  - Only the writer thread (or close, after joining it) touches the FILE.
 * Lock: tracer->lock guards the list head, counters of threads and the
 * writer's stop flag; it is never held across file I/O.
 */
#include "base/trace.h"

#include <ck_pr.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/thread_name.h"
#include "base/trace_format.h"

/* The kind table written into every file (tools/trace/FORMAT.md); indexed by kind. */
static const struct kind_desc {
	uint8_t shape;
	const char *name, *arg_a, *arg_b;
} kinds[TKV__TRACE_KIND_END] = {
	[TKV__TRACE_STORE] = {TKV__TRACE_SPAN, "store", "seq", "tokens"},
	[TKV__TRACE_RING_WAIT] = {TKV__TRACE_SPAN, "ring_wait", "worker", "attempts"},
	[TKV__TRACE_COPY] = {TKV__TRACE_SPAN, "copy", "layer", "bytes"},
	[TKV__TRACE_TICKET_DONE] = {TKV__TRACE_INSTANT, "ticket_done", "seq", "ticket"},
	[TKV__TRACE_EVICT_SELECT] = {TKV__TRACE_SPAN, "evict_select", "blocks", "bytes"},
	[TKV__TRACE_COLD_WRITE] = {TKV__TRACE_ASYNC, "cold_write", "segment", "bytes"},
	[TKV__TRACE_PROMOTE] = {TKV__TRACE_ASYNC, "promote", "seq", "bytes"},
	[TKV__TRACE_IO_ERROR] = {TKV__TRACE_INSTANT, "io_error", "errno", "offset"},
};

/* A thread buffer plus what only the tracer uses. `pub` comes first so a
 * tkv__trace_buf pointer converts back. The geometry both sides read comes
 * next; the writer's cursor sits on its own cache line, so the writer's
 * stores never invalidate a line the owner reads. */
struct tbuf {
	tkv__trace_buf pub;
	tkv__trace_event *chunks; /* n_chunks * chunk_events; read-only */
	uint32_t n_chunks, chunk_events;
	__attribute__((aligned(64))) uint32_t tail; /* writer: next chunk to drain */
	bool announced;          /* writer: THREAD section written */
	uint64_t owner_uid;      /* which thread registered it */
	struct tbuf *next;       /* older registration */
	uint8_t name_len;
	char name[256];
};

struct tkv__tracer {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct tbuf *threads; /* newest first; guarded by lock */
	uint32_t n_threads;   /* guarded by lock */
	uint32_t untraced;    /* guarded by lock */
	bool stop;            /* guarded by lock */
	bool has_writer;
	pthread_t writer;
	uint64_t id;
	tkv__tracer_opts opts;
	FILE *file;
	char *path;
	uint8_t *stage;        /* encode buffer: one chunk of events */
	uint64_t written;      /* events written to the file */
	uint64_t lost;         /* events not written after a file error */
	int err;               /* first file error, negative errno */
	const char *err_what;
	uint64_t mem;          /* bytes this tracer accounts in tracer_mem */
};

/* Process-wide counters. Statistics and unique ids only: nothing is ordered
 * by them, and ck_pr's read-modify-writes are atomic, which is all we need. */
static uint64_t tracer_mem;
static uint64_t next_tracer_id;
static uint64_t next_thread_uid;

/* The calling thread's last registration, so a repeated tkv__tracer_thread()
 * is a compare and a load. Ids are never reused, so a stale entry for a
 * closed tracer can never match a new one at the same address. */
static _Thread_local struct {
	uint64_t tracer_id;
	uint64_t uid;
	tkv__trace_buf *buf;
} tls;

static void mem_add(tkv__tracer *t, uint64_t n)
{
	t->mem += n;
	ck_pr_add_64(&tracer_mem, n); /* statistic: no ordering needed */
}

uint64_t tkv__tracer_mem(void)
{
	return ck_pr_load_64(&tracer_mem); /* statistic: no ordering needed */
}

static tkv__trace_event *chunk_at(const struct tbuf *tb, uint32_t i)
{
	return tb->chunks + (size_t)i * tb->chunk_events;
}

/* ---- Hot path's slow half ---------------------------------------------- */

tkv__trace_event *tkv__trace_refill(tkv__trace_buf *b)
{
	struct tbuf *tb = (struct tbuf *)b;
	if (b->cur) {
		/* The chunk at head is full. Release: the events we wrote into
		 * it are visible before the writer sees the count. */
		ck_pr_fence_release();
		ck_pr_store_32(&b->fill[b->head], tb->chunk_events);
		b->head = (b->head + 1) % tb->n_chunks;
		b->cur = b->end = NULL; /* until a chunk is free, every record lands here */
	}
	if (ck_pr_load_32(&b->fill[b->head]) != 0) {
		b->dropped++; /* the writer still has it: never wait */
		return NULL;
	}
	/* Acquire: the writer's reads of this chunk completed before it stored
	 * 0, so our writes below cannot overwrite events it is still reading. */
	ck_pr_fence_acquire();
	b->cur = chunk_at(tb, b->head);
	b->end = b->cur + tb->chunk_events;
	return b->cur;
}

/* ---- File writing (writer thread, or close after the writer stopped) --- */

static void file_fail(tkv__tracer *t, const char *what)
{
	if (!t->err) {
		t->err = errno ? -errno : -EIO;
		t->err_what = what;
	}
}

static void put_bytes(tkv__tracer *t, const void *p, size_t n, const char *what)
{
	if (t->err)
		return;
	errno = 0;
	if (fwrite(p, 1, n, t->file) != n)
		file_fail(t, what);
}

static void put_section(tkv__tracer *t, uint32_t type, const void *payload,
			uint32_t len)
{
	uint8_t h[TKV__TF_SECTION_HDR];
	tkv__put32(h, type);
	tkv__put32(h + 4, len);
	put_bytes(t, h, sizeof(h), "section header");
	put_bytes(t, payload, len, "section");
}

static void put_header(tkv__tracer *t)
{
	uint8_t h[TKV__TF_HEADER_SIZE] = {0};
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	memcpy(h, TKV__TF_MAGIC, TKV__TF_MAGIC_LEN);
	tkv__put16(h + 8, TKV__TF_MAJOR);
	tkv__put16(h + 10, TKV__TF_MINOR);
	tkv__put16(h + 12, TKV__TF_HEADER_SIZE);
	tkv__put16(h + 14, TKV__TF_EVENT_SIZE);
	tkv__put64(h + 16, tkv__trace_now());
	tkv__put64(h + 24, (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec);
	tkv__put32(h + 32, TKV__TF_CLOCK_MONOTONIC);
	put_bytes(t, h, sizeof(h), "header");
}

static size_t put_str8(uint8_t *p, const char *s)
{
	size_t n = strlen(s);
	p[0] = (uint8_t)n;
	memcpy(p + 1, s, n);
	return 1 + n;
}

static void put_kinds(tkv__tracer *t)
{
	uint8_t buf[2 + TKV__TRACE_KIND_END * (3 + 3 * 256)];
	size_t n = 2;
	uint16_t count = 0;
	for (uint16_t k = 0; k < TKV__TRACE_KIND_END; k++) {
		if (!kinds[k].name)
			continue;
		tkv__put16(buf + n, k);
		buf[n + 2] = kinds[k].shape;
		n += 3;
		n += put_str8(buf + n, kinds[k].name);
		n += put_str8(buf + n, kinds[k].arg_a);
		n += put_str8(buf + n, kinds[k].arg_b);
		count++;
	}
	tkv__put16(buf, count);
	put_section(t, TKV__TF_KINDS, buf, (uint32_t)n);
}

static void announce(tkv__tracer *t, struct tbuf *tb)
{
	uint8_t buf[3 + 256];
	if (tb->announced)
		return;
	tkv__put16(buf, tb->pub.thread);
	buf[2] = tb->name_len;
	memcpy(buf + 3, tb->name, tb->name_len);
	put_section(t, TKV__TF_THREAD, buf, 3u + tb->name_len);
	tb->announced = true;
}

static void encode_event(uint8_t *p, const tkv__trace_event *e)
{
	tkv__put64(p, e->t0);
	tkv__put64(p + 8, e->dur);
	tkv__put16(p + 16, e->kind);
	tkv__put16(p + 18, e->thread);
	tkv__put32(p + 20, e->a);
	tkv__put64(p + 24, e->b);
}

static void put_events(tkv__tracer *t, struct tbuf *tb,
		       const tkv__trace_event *ev, uint32_t n)
{
	uint8_t *p = t->stage;
	if (t->err) {
		t->lost += n;
		return;
	}
	announce(t, tb);
	tkv__put16(p, tb->pub.thread);
	tkv__put16(p + 2, 0);
	tkv__put32(p + 4, n);
	for (uint32_t i = 0; i < n; i++)
		encode_event(p + TKV__TF_EVENTS_HDR + (size_t)i * TKV__TF_EVENT_SIZE, ev + i);
	put_section(t, TKV__TF_EVENTS, p,
		    TKV__TF_EVENTS_HDR + n * (uint32_t)TKV__TF_EVENT_SIZE);
	if (t->err)
		t->lost += n;
	else
		t->written += n;
}

/* Writes every chunk the thread has published, oldest first, and hands each
 * back. Returns whether anything was written. */
static bool drain_full(tkv__tracer *t, struct tbuf *tb)
{
	bool any = false;
	for (;;) {
		uint32_t n = ck_pr_load_32(&tb->pub.fill[tb->tail]);
		if (n == 0)
			return any;
		/* Acquire: pairs with the owner's release in refill, so the
		 * events it wrote before publishing are visible here. */
		ck_pr_fence_acquire();
		put_events(t, tb, chunk_at(tb, tb->tail), n);
		/* Release: our reads of the chunk are done before the owner
		 * can see it free and overwrite it. */
		ck_pr_fence_release();
		ck_pr_store_32(&tb->pub.fill[tb->tail], 0);
		tb->tail = (tb->tail + 1) % tb->n_chunks;
		any = true;
	}
}

/* ---- Writer thread ----------------------------------------------------- */

static struct timespec deadline_after_ms(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* Sleeps flush_ms after a pass that found nothing (idle threads sleep:
 * nothing here spins). Recording threads never wake it: that would put a
 * system call on the hot path. */
static void *writer_main(void *arg)
{
	tkv__tracer *t = arg;
	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		struct tbuf *head = t->threads;
		pthread_mutex_unlock(&t->lock);
		bool any = false;
		for (struct tbuf *tb = head; tb; tb = tb->next)
			any |= drain_full(t, tb);
		if (any && !t->err && fflush(t->file) != 0)
			file_fail(t, "flush");
		struct timespec until = deadline_after_ms(t->opts.flush_ms);
		pthread_mutex_lock(&t->lock);
		/* A pass that found work goes again at once: under load the
		 * writer keeps up instead of letting threads drop events. */
		if (!t->stop && !any)
			pthread_cond_timedwait(&t->wake, &t->lock, &until);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static int start_writer(tkv__tracer *t)
{
	if (t->opts.flush_ms < 0)
		return 0;
	int rc = pthread_create(&t->writer, NULL, writer_main, t);
	if (rc)
		return -rc;
	tkv__thread_name(t->writer, "tkv-trace");
	t->has_writer = true;
	return 0;
}

static void stop_writer(tkv__tracer *t)
{
	if (!t->has_writer)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->writer, NULL);
	t->has_writer = false;
}

/* ---- Open -------------------------------------------------------------- */

static int check_opts(const tkv__tracer_opts *in, tkv__tracer_opts *o)
{
	*o = (tkv__tracer_opts){.chunk_events = 4096, .n_chunks = 8, .flush_ms = 10};
	if (!in)
		return 0;
	if (in->chunk_events)
		o->chunk_events = in->chunk_events;
	if (in->n_chunks)
		o->n_chunks = in->n_chunks;
	if (in->flush_ms)
		o->flush_ms = in->flush_ms;
	if (o->chunk_events > (1u << 20))
		return tkv__fail(-EINVAL, "trace opts.chunk_events: must be <= %u, got %u",
				 1u << 20, o->chunk_events);
	if (o->n_chunks < 2 || o->n_chunks > TKV__TRACE_MAX_CHUNKS)
		return tkv__fail(-EINVAL, "trace opts.n_chunks: must be in [2, %d], got %u",
				 TKV__TRACE_MAX_CHUNKS, o->n_chunks);
	if (o->flush_ms > 60000)
		return tkv__fail(-EINVAL, "trace opts.flush_ms: must be <= 60000, got %d",
				 o->flush_ms);
	return 0;
}

static void tracer_free(tkv__tracer *t)
{
	struct tbuf *tb = t->threads;
	while (tb) {
		struct tbuf *next = tb->next;
		free(tb->chunks);
		free(tb);
		tb = next;
	}
	ck_pr_sub_64(&tracer_mem, t->mem); /* statistic: no ordering needed */
	pthread_cond_destroy(&t->wake);
	pthread_mutex_destroy(&t->lock);
	free(t->stage);
	free(t->path);
	free(t);
}

/* Allocates the tracer; the file and writer come after. */
static int tracer_alloc(const char *path, const tkv__tracer_opts *o,
			tkv__tracer **out)
{
	tkv__tracer *t = calloc(1, sizeof(*t));
	if (!t)
		return tkv__fail(-ENOMEM, "trace: out of memory");
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	/* Timed waits measure the monotonic clock: a wall-clock step must not
	 * stall the writer. */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&t->lock, NULL);
	t->opts = *o;
	t->id = ck_pr_faa_64(&next_tracer_id, 1) + 1; /* unique id only */
	mem_add(t, sizeof(*t));
	size_t stage = TKV__TF_EVENTS_HDR + (size_t)o->chunk_events * TKV__TF_EVENT_SIZE;
	t->stage = malloc(stage);
	t->path = strdup(path);
	if (!t->stage || !t->path) {
		tracer_free(t);
		return tkv__fail(-ENOMEM, "trace: out of memory");
	}
	mem_add(t, stage + strlen(path) + 1);
	*out = t;
	return 0;
}

int tkv__tracer_open(const char *path, const tkv__tracer_opts *opts,
		     tkv__tracer **out)
{
	tkv__tracer_opts o;
	tkv__tracer *t = NULL;
	if (!out)
		return tkv__fail(-EINVAL, "trace: out is NULL");
	*out = NULL;
	if (!path)
		path = getenv("TKV_TRACE");
	if (!path || !*path)
		return 0;
	int rc = check_opts(opts, &o);
	if (!rc)
		rc = tracer_alloc(path, &o, &t);
	if (rc)
		return rc;
	t->file = fopen(path, "wb");
	if (!t->file) {
		rc = -errno;
		tracer_free(t);
		return tkv__fail(rc, "trace file %s: cannot create: %s", path, strerror(-rc));
	}
	put_header(t);
	put_kinds(t);
	if (!t->err && fflush(t->file) != 0)
		file_fail(t, "flush");
	rc = t->err ? t->err : start_writer(t);
	if (rc) {
		fclose(t->file);
		tracer_free(t);
		return tkv__fail(rc, "trace file %s: cannot start: %s", path, strerror(-rc));
	}
	*out = t;
	return 0;
}

/* ---- Thread registration ----------------------------------------------- */

static struct tbuf *tbuf_new(tkv__tracer *t, const char *name, uint16_t index)
{
	struct tbuf *tb;
	size_t bytes = (size_t)t->opts.n_chunks * t->opts.chunk_events *
		       sizeof(tkv__trace_event);
	if (posix_memalign((void **)&tb, 64, sizeof(*tb)))
		return NULL;
	memset(tb, 0, sizeof(*tb));
	if (posix_memalign((void **)&tb->chunks, 64, bytes)) {
		free(tb);
		return NULL;
	}
	/* Touch every page now so the hot path never takes a first-touch fault. */
	memset(tb->chunks, 0, bytes);
	tb->n_chunks = t->opts.n_chunks;
	tb->chunk_events = t->opts.chunk_events;
	tb->owner_uid = tls.uid;
	tb->pub.thread = index;
	tb->pub.cur = tb->chunks;
	tb->pub.end = tb->chunks + tb->chunk_events;
	if (name)
		snprintf(tb->name, sizeof(tb->name), "%s", name);
	else
		snprintf(tb->name, sizeof(tb->name), "thread-%u", (unsigned)index);
	tb->name_len = (uint8_t)strlen(tb->name);
	mem_add(t, sizeof(*tb) + bytes);
	return tb;
}

/* Under t->lock: this thread's existing buffer, or a new one linked in. */
static tkv__trace_buf *register_locked(tkv__tracer *t, const char *name)
{
	for (struct tbuf *tb = t->threads; tb; tb = tb->next)
		if (tb->owner_uid == tls.uid)
			return &tb->pub;
	struct tbuf *tb = t->n_threads < UINT16_MAX
				  ? tbuf_new(t, name, (uint16_t)t->n_threads)
				  : NULL;
	if (!tb) {
		t->untraced++;
		tkv__fail(-ENOMEM, "trace: thread '%s' not traced (no memory or %u threads)",
			  name ? name : "?", (unsigned)t->n_threads);
		return NULL;
	}
	t->n_threads++;
	tb->next = t->threads;
	t->threads = tb; /* the writer reads the head under the lock */
	return &tb->pub;
}

tkv__trace_buf *tkv__tracer_thread(tkv__tracer *t, const char *thread_name)
{
	if (!t)
		return NULL;
	if (tls.tracer_id == t->id)
		return tls.buf;
	if (!tls.uid)
		tls.uid = ck_pr_faa_64(&next_thread_uid, 1) + 1; /* unique id only */
	pthread_mutex_lock(&t->lock);
	tkv__trace_buf *b = register_locked(t, thread_name);
	pthread_mutex_unlock(&t->lock);
	tls.tracer_id = t->id;
	tls.buf = b;
	return b;
}

/* ---- Close ------------------------------------------------------------- */

/* The recording threads have stopped: write what each still holds. */
static void final_drain(tkv__tracer *t, struct tbuf *tb)
{
	announce(t, tb);
	drain_full(t, tb);
	tkv__trace_event *start = chunk_at(tb, tb->pub.head);
	if (tb->pub.cur && tb->pub.cur > start)
		put_events(t, tb, start, (uint32_t)(tb->pub.cur - start));
}

static void put_tail(tkv__tracer *t)
{
	uint8_t buf[TKV__TF_END_LEN];
	uint64_t dropped = 0;
	for (struct tbuf *tb = t->threads; tb; tb = tb->next) {
		if (!tb->pub.dropped)
			continue;
		memset(buf, 0, TKV__TF_DROPPED_LEN);
		tkv__put16(buf, tb->pub.thread);
		tkv__put64(buf + 8, tb->pub.dropped);
		put_section(t, TKV__TF_DROPPED, buf, TKV__TF_DROPPED_LEN);
		dropped += tb->pub.dropped;
	}
	tkv__put64(buf, t->written);
	tkv__put64(buf + 8, dropped);
	tkv__put32(buf + 16, t->n_threads);
	tkv__put32(buf + 20, t->untraced);
	put_section(t, TKV__TF_END, buf, TKV__TF_END_LEN);
}

int tkv__tracer_close(tkv__tracer *t)
{
	if (!t)
		return 0;
	stop_writer(t);
	for (struct tbuf *tb = t->threads; tb; tb = tb->next)
		final_drain(t, tb);
	put_tail(t);
	errno = 0;
	if (fclose(t->file) != 0)
		file_fail(t, "close");
	int rc = t->err;
	if (rc)
		tkv__fail(rc, "trace file %s: %s failed: %s; %llu events not written",
			  t->path, t->err_what, strerror(-rc), (unsigned long long)t->lost);
	tracer_free(t);
	return rc;
}
