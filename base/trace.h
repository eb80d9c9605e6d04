/*
 * trace.h - the runtime's event recorder: what happened on which thread, when,
 * and for how long, at a cost the hot path can afford.
 *
 * Shape. A tracer (one per runtime, NULL when tracing is off) owns one buffer
 * per thread that records. A thread registers once (tkv__tracer_thread; that
 * may lock and allocate) and keeps the returned pointer; from then on every
 * record is a handful of plain stores into memory only that thread writes: no
 * lock, no atomic read-modify-write, no allocation, no system call. When
 * tracing is off the pointer is NULL and each record costs one predictable
 * branch (use tkv__trace_begin/tkv__trace_end so the clock is not read
 * either).
 *
 * Buffer handoff. Each thread buffer is a ring of `n_chunks` chunks of
 * `chunk_events` fixed-size events, a single-producer single-consumer queue of
 * chunks: the owning thread fills a chunk and publishes it (one release
 * store); a background writer thread takes published chunks (acquire),
 * appends them to the file and gives them back (release). It goes round again
 * at once while it finds work, so it keeps up under load, and sleeps
 * `flush_ms` when it finds none.
 * If the writer has not given back the next chunk when the current one fills,
 * the hot path does not wait: it drops the event and counts it in the
 * thread's dropped counter, which is written to the file and printed by
 * tierkv-trace. Nothing is lost without being counted. With flush_ms < 0 there
 * is no writer thread and the buffer is a bounded in-memory store of
 * n_chunks * chunk_events events, written at close.
 *
 * Clock. Timestamps are CLOCK_MONOTONIC nanoseconds from clock_gettime (the
 * vDSO), which costs more per call than a raw rdtsc (docs/MEASUREMENTS.md).
 * We take that because the events are per batch (microseconds of copy or
 * I/O each), and in exchange the values need no TSC calibration, no
 * invariant-TSC check, stay correct on VMs whose clocksource is not the
 * TSC, are the same on aarch64, and compare directly across threads and
 * with other tools' logs.
 *
 * Lifetime and thread safety:
 *  - tkv__tracer_open/close: not concurrent with any other call on the same
 *    tracer. close must come after every thread that records has stopped
 *    recording (joined, or finished with the tracer): it reads the partial
 *    chunks those threads were filling. close frees the thread buffers, so
 *    their pointers die with the tracer.
 *  - tkv__tracer_thread: thread-safe; call it from the thread to register.
 *  - recording on a buffer: only from the thread that registered it.
 *
 * Use at a hook (tb is the thread's buffer, NULL when off):
 *	worker start:  w->tb = tkv__tracer_thread(rt->tracer, "worker-3");
 *	around a copy: uint64_t t0 = tkv__trace_begin(w->tb);
 *	               ...copy...
 *	               tkv__trace_end(w->tb, TKV__TRACE_COPY, t0, layer, bytes);
 *	an I/O:        keep t_submit = tkv__trace_begin(tb) in the request; at
 *	               completion tkv__trace_end(tb, TKV__TRACE_COLD_WRITE,
 *	               t_submit, segment, bytes) on the completing thread.
 *	engine threads (tkv_store): tkv__tracer_thread(rt->tracer, NULL) on each
 *	               call is a NULL test when off and a thread-local compare
 *	               when on.
 * The file format is described in tools/trace/FORMAT.md.
 */
#ifndef TKV_BASE_TRACE_H
#define TKV_BASE_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Event kinds. The numbers are written to files: never renumber, only append
 * (and add the kind to the table in trace.c, which names it in every file so
 * older readers can print kinds they do not know). Shapes:
 *  span     a synchronous interval on the recording thread; spans on one
 *           thread nest (inner ones end before outer ones)
 *  async    an interval that may overlap others on the same thread, e.g. an
 *           I/O from submission to completion, recorded at completion with
 *           the submission time as t0 (possibly by another thread)
 *  instant  a point in time (t0 == t1)
 * Arguments a (32-bit) and b (64-bit) mean what each line says.
 */
enum tkv__trace_kind {
	/* span, producer: tkv_store() entry until its batches are enqueued;
	 * a = sequence id, b = tokens */
	TKV__TRACE_STORE = 1,
	/* span, producer: waiting for space in a full ring; a = worker,
	 * b = attempts */
	TKV__TRACE_RING_WAIT = 2,
	/* span, worker: copying one batch into the hot tier; a = layer,
	 * b = bytes */
	TKV__TRACE_COPY = 3,
	/* instant, worker: a ticket completed; a = sequence id, b = ticket */
	TKV__TRACE_TICKET_DONE = 4,
	/* span, evictor: choosing the blocks to evict; a = blocks chosen,
	 * b = bytes */
	TKV__TRACE_EVICT_SELECT = 5,
	/* async, cold tier: a record write from submission to completion;
	 * a = segment, b = bytes */
	TKV__TRACE_COLD_WRITE = 6,
	/* async, cold tier: a promote read from submission to completion;
	 * a = sequence id, b = bytes */
	TKV__TRACE_PROMOTE = 7,
	/* instant, cold tier: an I/O failed; a = errno (positive),
	 * b = file offset */
	TKV__TRACE_IO_ERROR = 8,
	TKV__TRACE_KIND_END /* one past the last kind */
};

/* How a kind is drawn and summarised; written in the file's kind table. */
enum tkv__trace_shape {
	TKV__TRACE_SPAN = 0,
	TKV__TRACE_ASYNC = 1,
	TKV__TRACE_INSTANT = 2,
};

/* One record, in memory. 32 bytes, no padding; the file stores the same
 * fields little-endian (tools/trace/FORMAT.md). */
typedef struct tkv__trace_event {
	uint64_t t0;     /* start, CLOCK_MONOTONIC ns */
	uint64_t dur;    /* t1 - t0 in ns; 0 for instants */
	uint16_t kind;   /* enum tkv__trace_kind */
	uint16_t thread; /* index in the tracer's thread table */
	uint32_t a;      /* small argument (sequence id, layer, ...) */
	uint64_t b;      /* large argument (bytes, ticket, offset, ...) */
} tkv__trace_event;

typedef struct tkv__tracer tkv__tracer; /* NULL = tracing off */

/*
 * One thread's buffer. Only trace.c and the inline recorders below touch the
 * fields. The first cache line is written by the owning thread alone; `fill`
 * is the handoff between owner and writer; the writer's cursor lives in
 * trace.c's wrapper so it does not share the owner's line.
 */
#define TKV__TRACE_MAX_CHUNKS 16
typedef struct tkv__trace_buf {
	tkv__trace_event *cur; /* next free slot; == end: refill (slow path) */
	tkv__trace_event *end;
	uint64_t dropped;      /* events lost because no chunk was free */
	uint32_t head;         /* chunk being filled */
	uint16_t thread;
	/* Events published in each chunk; 0 = free (owned by the recording
	 * thread). Owner: release-store a count; writer: acquire-load it, write
	 * the chunk out, release-store 0; owner acquire-loads 0 before reuse. */
	__attribute__((aligned(64))) uint32_t fill[TKV__TRACE_MAX_CHUNKS];
} tkv__trace_buf;

/* Options; zero fields take the defaults in brackets. */
typedef struct tkv__tracer_opts {
	uint32_t chunk_events; /* events per chunk, <= 2^20 [4096: 128 KiB] */
	uint32_t n_chunks;     /* chunks per thread, 2..16 [8: 1 MiB/thread] */
	int32_t flush_ms;      /* writer's sleep when it finds nothing to write
				  [10]; < 0 = no writer: keep events in
				  memory until close */
} tkv__tracer_opts;

/*
 * Opens a trace. path NULL means the TKV_TRACE environment variable; if
 * neither names a file (NULL or ""), tracing is off: *out = NULL, return 0,
 * nothing allocated. Otherwise creates/truncates the file, writes its header
 * and kind table, starts the writer thread, and sets *out.
 * Returns 0, -EINVAL (bad opts), -ENOMEM, or the negative errno of the
 * failed open/write/thread creation, with tkv_last_error() naming the file.
 */
int tkv__tracer_open(const char *path, const tkv__tracer_opts *opts,
		     tkv__tracer **out);

/*
 * Registers the calling thread (once per thread and tracer: a second call
 * from the same thread returns the same buffer) and returns its buffer.
 * thread_name (copied; NULL = "thread-N") labels its track. Returns NULL if t
 * is NULL, and NULL (tracing off for this thread, counted in the file as an
 * untraced thread) if the buffer cannot be allocated or the tracer already
 * has 65535 threads. May lock and allocate: call it at thread start, not per
 * event. Thread-safe.
 */
tkv__trace_buf *tkv__tracer_thread(tkv__tracer *t, const char *thread_name);

/*
 * Writes out every event still buffered, the dropped counts and the end
 * marker, closes the file and frees the tracer and all its thread buffers.
 * NULL is a no-op. Returns 0, or the first error met while writing the file
 * at any point (negative errno; tkv_last_error() says what and how many
 * events were lost). The tracer is freed either way.
 */
int tkv__tracer_close(tkv__tracer *t);

/* Bytes currently allocated by all open tracers in the process: 0 when
 * tracing is off. For tests and stats. Thread-safe. */
uint64_t tkv__tracer_mem(void);

/* Slow path of the recorders: publish the full chunk, take the next one.
 * Returns the slot to write, or NULL after counting the event as dropped. */
tkv__trace_event *tkv__trace_refill(tkv__trace_buf *b);

/* ---- Recording (owner thread only; all no-ops when b is NULL) ---------- */

static inline uint64_t tkv__trace_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Records [t0, t1]; an instant when equal (t1 < t0 is recorded as 0 ns). */
static inline void tkv__trace_span(tkv__trace_buf *b, uint16_t kind,
				   uint64_t t0, uint64_t t1, uint32_t a,
				   uint64_t x)
{
	if (!b)
		return;
	tkv__trace_event *e = b->cur;
	if (__builtin_expect(e == b->end, 0)) { /* once per chunk */
		e = tkv__trace_refill(b);
		if (!e)
			return;
	}
	e->t0 = t0;
	e->dur = t1 > t0 ? t1 - t0 : 0; /* a caller's clock mix-up stays local */
	e->kind = kind;
	e->thread = b->thread;
	e->a = a;
	e->b = x;
	b->cur = e + 1;
}

/* The start time of a span, or 0 without reading the clock when off. */
static inline uint64_t tkv__trace_begin(const tkv__trace_buf *b)
{
	return b ? tkv__trace_now() : 0;
}

/* Ends a span begun with tkv__trace_begin(). */
static inline void tkv__trace_end(tkv__trace_buf *b, uint16_t kind,
				  uint64_t t0, uint32_t a, uint64_t x)
{
	if (!b)
		return;
	tkv__trace_span(b, kind, t0, tkv__trace_now(), a, x);
}

/* Records an instant now. */
static inline void tkv__trace_instant(tkv__trace_buf *b, uint16_t kind,
				      uint32_t a, uint64_t x)
{
	if (!b)
		return;
	uint64_t t = tkv__trace_now();
	tkv__trace_span(b, kind, t, t, a, x);
}

#endif
