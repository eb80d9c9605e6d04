/*
 * trace.c - tests of the event tracer (tools/trace): recording from several
 * threads with known durations, the summary against hand-computed figures,
 * the Chrome JSON checked by a strict in-test JSON parser (valid, one named
 * track per thread, spans properly nested per thread), dropped-event
 * accounting, tracing-off costs, and a corrupt-file sweep (every truncation,
 * seeded byte flips) run in-process so ASan sees any overread.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tierkv.h"
#include "base/trace.h"
#include "tools/trace/trace_read.h"

/* ---- A strict JSON parser (RFC 8259) building a small tree ------------- */

typedef enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
	jtype type;
	const char *raw; /* number text, or string contents without quotes */
	size_t raw_len;
	size_t n;           /* children of an array or object */
	struct jval *kids;  /* values */
	struct jval *keys;  /* object keys (J_STR), parallel to kids */
} jval;

typedef struct jparser {
	const char *p, *end;
	int depth;
} jparser;

static void jfree(jval *v)
{
	for (size_t i = 0; i < v->n; i++) {
		jfree(&v->kids[i]);
		if (v->keys)
			jfree(&v->keys[i]);
	}
	free(v->kids);
	free(v->keys);
}

static void jws(jparser *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool jdigits(jparser *j)
{
	const char *s = j->p;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p > s;
}

static bool jnumber(jparser *j, jval *v)
{
	const char *s = j->p;
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (!(j->p < j->end && *j->p >= '1' && *j->p <= '9') || !jdigits(j))
		return false;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!jdigits(j))
			return false;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!jdigits(j))
			return false;
	}
	*v = (jval){.type = J_NUM, .raw = s, .raw_len = (size_t)(j->p - s)};
	return true;
}

/* Length of a valid UTF-8 sequence at p (no overlongs, no surrogates, <=
 * U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	size_t n = p[0] < 0xc2 ? 0 : p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : p[0] < 0xf5 ? 4 : 0;
	if (n == 0 || (size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return n;
}

static bool jstring(jparser *j, jval *v)
{
	if (j->p >= j->end || *j->p != '"')
		return false;
	const char *s = ++j->p;
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = (unsigned char)*j->p;
		if (c < 0x20)
			return false;
		if (c == '\\') {
			if (++j->p >= j->end)
				return false;
			if (*j->p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (j->p + i >= j->end || !strchr("0123456789abcdefABCDEF", j->p[i]) ||
					    j->p[i] == '\0')
						return false;
				j->p += 5;
			} else if (strchr("\"\\/bfnrt", *j->p) && *j->p) {
				j->p++;
			} else {
				return false;
			}
		} else if (c >= 0x80) {
			size_t n = utf8_len((const unsigned char *)j->p, (const unsigned char *)j->end);
			if (!n)
				return false;
			j->p += n;
		} else {
			j->p++;
		}
	}
	if (j->p >= j->end)
		return false;
	*v = (jval){.type = J_STR, .raw = s, .raw_len = (size_t)(j->p - s)};
	j->p++;
	return true;
}

static bool jliteral(jparser *j, const char *lit, jtype type, jval *v)
{
	size_t n = strlen(lit);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return false;
	j->p += n;
	*v = (jval){.type = type};
	return true;
}

static bool jvalue(jparser *j, jval *v);

static bool jpush(jval *c, size_t *cap, const jval *key, const jval *val)
{
	if (c->n == *cap) {
		*cap = *cap ? 2 * *cap : 8;
		c->kids = realloc(c->kids, *cap * sizeof(jval));
		if (key)
			c->keys = realloc(c->keys, *cap * sizeof(jval));
		cr_assert(c->kids && (!key || c->keys));
	}
	c->kids[c->n] = *val;
	if (key)
		c->keys[c->n] = *key;
	c->n++;
	return true;
}

/* Array or object; open is '[' or '{'. */
static bool jcontainer(jparser *j, jval *v, char open)
{
	bool obj = open == '{';
	char close = obj ? '}' : ']';
	size_t cap = 0;
	*v = (jval){.type = obj ? J_OBJ : J_ARR};
	j->p++;
	jws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return true;
	}
	for (;;) {
		jval key = {0}, val = {0};
		jws(j);
		if (obj) {
			if (!jstring(j, &key))
				return false;
			jws(j);
			if (j->p >= j->end || *j->p++ != ':')
				return false;
		}
		if (!jvalue(j, &val))
			return false;
		jpush(v, &cap, obj ? &key : NULL, &val);
		jws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		return false;
	}
}

static bool jvalue(jparser *j, jval *v)
{
	bool ok;
	jws(j);
	*v = (jval){0};
	if (j->p >= j->end || ++j->depth > 64)
		return false;
	switch (*j->p) {
	case '{':
	case '[':
		ok = jcontainer(j, v, *j->p);
		break;
	case '"':
		ok = jstring(j, v);
		break;
	case 't':
		ok = jliteral(j, "true", J_BOOL, v);
		break;
	case 'f':
		ok = jliteral(j, "false", J_BOOL, v);
		break;
	case 'n':
		ok = jliteral(j, "null", J_NULL, v);
		break;
	default:
		ok = jnumber(j, v);
	}
	j->depth--;
	return ok;
}

/* Parses the whole text; false on any syntax error (the tree is freed). */
static bool json_parse(const char *text, size_t len, jval *root)
{
	jparser j = {text, text + len, 0};
	bool ok = jvalue(&j, root);
	jws(&j);
	if (!ok || j.p != j.end) {
		jfree(root);
		return false;
	}
	return true;
}

static const jval *jget(const jval *obj, const char *key)
{
	if (obj->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (obj->keys[i].raw_len == strlen(key) &&
		    memcmp(obj->keys[i].raw, key, obj->keys[i].raw_len) == 0)
			return &obj->kids[i];
	return NULL;
}

static bool jis(const jval *v, const char *s)
{
	return v && v->type == J_STR && v->raw_len == strlen(s) && memcmp(v->raw, s, v->raw_len) == 0;
}

/* A non-negative decimal microseconds number as integer nanoseconds. */
static uint64_t jns(const jval *v)
{
	cr_assert(v && v->type == J_NUM);
	uint64_t ns = 0;
	size_t i = 0;
	for (; i < v->raw_len && v->raw[i] != '.'; i++)
		ns = ns * 10 + (uint64_t)(v->raw[i] - '0');
	ns *= 1000;
	uint64_t scale = 100;
	for (i++; i < v->raw_len && scale; i++, scale /= 10)
		ns += scale * (uint64_t)(v->raw[i] - '0');
	return ns;
}

Test(trace_json, validator_accepts_and_rejects)
{
	static const char *good[] = {"{}", "[]", " [1, -0.5e+3, \"a\\u00e9\\n\", true, null] ",
				     "{\"a\":{\"b\":[false]}}", "\"\xc3\xa9\""};
	static const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\x01\"",
				    "\"\\x\"", "[1] x", "{'a':1}", "\"\xc3\"", "\"\xed\xa0\x80\"",
				    "tru", "[\"\\u12\"]"};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		jval v;
		cr_assert(json_parse(good[i], strlen(good[i]), &v), "rejected %s", good[i]);
		jfree(&v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		jval v;
		cr_assert(!json_parse(bad[i], strlen(bad[i]), &v), "accepted %s", bad[i]);
	}
}

/* ---- Helpers ----------------------------------------------------------- */

static char *temp_path(void)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/tkv-trace-test-XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	close(fd);
	return path;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	uint8_t *d = malloc((size_t)n + 1);
	cr_assert(d && fread(d, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return d;
}

/* Runs fn(stream) into memory and returns the text (free()). */
static char *capture(int (*fn)(const tkv__trace_file *, FILE *), const tkv__trace_file *f,
		     size_t *len)
{
	char *text = NULL;
	FILE *m = open_memstream(&text, len);
	cr_assert(m);
	cr_assert_eq(fn(f, m), 0, "%s", tkv_last_error());
	fclose(m);
	return text;
}

static const tkv__trace_stat *find_row(const tkv__trace_stat *rows, size_t n, uint16_t kind,
				       int thread /* -1 = all */)
{
	for (size_t i = 0; i < n; i++)
		if (rows[i].kind == kind && (thread < 0 ? rows[i].all_threads
						       : !rows[i].all_threads && rows[i].thread == thread))
			return &rows[i];
	return NULL;
}

static int thread_index(const tkv__trace_file *f, const char *name)
{
	for (size_t i = 0; i < f->n_threads; i++)
		if (f->threads[i].name.len == strlen(name) &&
		    memcmp(f->threads[i].name.p, name, strlen(name)) == 0)
			return f->threads[i].index;
	cr_assert_fail("no thread named %s", name);
	return -1;
}

#define US 1000ull
#define BASE 1000000000ull /* synthetic timestamps start at 1 s */

/* ---- Tracing off ------------------------------------------------------- */

Test(trace, off_records_nothing_and_allocates_nothing)
{
	tkv__tracer *t = (tkv__tracer *)1;
	unsetenv("TKV_TRACE");
	cr_assert_eq(tkv__tracer_mem(), 0);
	cr_assert_eq(tkv__tracer_open(NULL, NULL, &t), 0);
	cr_assert_null(t);
	setenv("TKV_TRACE", "", 1);
	cr_assert_eq(tkv__tracer_open(NULL, NULL, &t), 0);
	cr_assert_null(t);
	tkv__trace_buf *b = tkv__tracer_thread(t, "worker-0");
	cr_assert_null(b);
	uint64_t t0 = tkv__trace_begin(b);
	cr_assert_eq(t0, 0, "the clock is not read when off");
	tkv__trace_end(b, TKV__TRACE_COPY, t0, 1, 2);
	tkv__trace_span(b, TKV__TRACE_COPY, 1, 2, 3, 4);
	tkv__trace_instant(b, TKV__TRACE_TICKET_DONE, 1, 2);
	cr_assert_eq(tkv__tracer_close(t), 0);
	cr_assert_eq(tkv__tracer_mem(), 0);
}

Test(trace, env_var_turns_it_on)
{
	const char *path = temp_path();
	tkv__tracer *t;
	setenv("TKV_TRACE", path, 1);
	cr_assert_eq(tkv__tracer_open(NULL, NULL, &t), 0, "%s", tkv_last_error());
	cr_assert_not_null(t);
	cr_assert_gt(tkv__tracer_mem(), 0);
	tkv__trace_buf *b = tkv__tracer_thread(t, "main");
	cr_assert_not_null(b);
	cr_assert_eq(tkv__tracer_thread(t, "other name"), b, "registration is per thread, once");
	uint64_t t0 = tkv__trace_begin(b);
	cr_assert_gt(t0, 0);
	tkv__trace_end(b, TKV__TRACE_STORE, t0, 7, 16);
	tkv__trace_instant(b, TKV__TRACE_TICKET_DONE, 7, 1);
	cr_assert_eq(tkv__tracer_close(t), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv__tracer_mem(), 0, "close frees everything");

	tkv__trace_file *f;
	cr_assert_eq(tkv__trace_load(path, &f), 0, "%s", tkv_last_error());
	cr_assert_eq(f->n_events, 2);
	cr_assert_eq(f->n_threads, 1);
	cr_assert_eq(f->events[0].kind, TKV__TRACE_STORE);
	cr_assert_eq(f->events[0].a, 7);
	cr_assert_eq(f->events[0].b, 16);
	cr_assert_geq(f->events[1].t0, f->events[0].t0 + f->events[0].dur);
	tkv__trace_file_free(f);
	unlink(path);
}

Test(trace, registration_is_once_per_thread_and_tracer)
{
	char a_path[64], b_path[64];
	snprintf(a_path, sizeof(a_path), "%s", temp_path());
	snprintf(b_path, sizeof(b_path), "%s", temp_path());
	tkv__tracer *a, *b;
	cr_assert_eq(tkv__tracer_open(a_path, NULL, &a), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv__tracer_open(b_path, NULL, &b), 0, "%s", tkv_last_error());
	tkv__trace_buf *in_a = tkv__tracer_thread(a, NULL);
	tkv__trace_buf *in_b = tkv__tracer_thread(b, "main");
	cr_assert(in_a && in_b && in_a != in_b);
	cr_assert_eq(tkv__tracer_thread(a, "again"), in_a, "found again after using b");
	cr_assert_eq(tkv__tracer_thread(b, NULL), in_b);
	tkv__trace_instant(in_a, TKV__TRACE_IO_ERROR, 5, 4096);
	cr_assert_eq(tkv__tracer_close(a), 0);
	cr_assert_eq(tkv__tracer_close(b), 0);
	cr_assert_eq(tkv__tracer_mem(), 0);

	tkv__trace_file *f;
	cr_assert_eq(tkv__trace_load(a_path, &f), 0, "%s", tkv_last_error());
	cr_assert_eq(thread_index(f, "thread-0"), 0, "a NULL name becomes thread-<index>");
	cr_assert_eq(f->n_events, 1);
	tkv__trace_file_free(f);
	cr_assert_eq(tkv__trace_load(b_path, &f), 0, "%s", tkv_last_error());
	cr_assert_eq(f->n_events, 0);
	cr_assert_eq(f->n_threads, 1, "a thread that recorded nothing is still listed");
	tkv__trace_file_free(f);
	unlink(a_path);
	unlink(b_path);
}

Test(trace, open_errors_are_reported)
{
	tkv__tracer *t;
	cr_assert_eq(tkv__tracer_open("/nonexistent-dir/x.trace", NULL, &t), -ENOENT);
	cr_assert_null(t);
	cr_assert(strstr(tkv_last_error(), "/nonexistent-dir/x.trace"), "%s", tkv_last_error());
	tkv__tracer_opts bad = {.n_chunks = 1};
	cr_assert_eq(tkv__tracer_open("/tmp/unused.trace", &bad, &t), -EINVAL);
	cr_assert(strstr(tkv_last_error(), "n_chunks"), "%s", tkv_last_error());
	if (access("/dev/full", W_OK) == 0) { /* every write fails with ENOSPC */
		cr_assert_eq(tkv__tracer_open("/dev/full", NULL, &t), -ENOSPC);
		cr_assert(strstr(tkv_last_error(), "/dev/full"), "%s", tkv_last_error());
	}
	cr_assert_eq(tkv__tracer_mem(), 0);
	tkv__trace_file *f;
	cr_assert_lt(tkv__trace_load("/nonexistent-dir/x.trace", &f), 0);
	cr_assert(strstr(tkv_last_error(), "/nonexistent-dir/x.trace"), "%s", tkv_last_error());
}

/* A file that stops growing half-way: close reports it and how much was
 * lost, instead of leaving a silently short trace. */
Test(trace, write_error_is_reported_at_close)
{
	const char *path = temp_path();
	tkv__tracer_opts o = {.chunk_events = 512, .n_chunks = 2, .flush_ms = -1};
	tkv__tracer *t;
	cr_assert_eq(tkv__tracer_open(path, &o, &t), 0, "%s", tkv_last_error());
	tkv__trace_buf *b = tkv__tracer_thread(t, "w");
	for (uint32_t i = 0; i < 1000; i++)
		tkv__trace_span(b, TKV__TRACE_COPY, BASE + i, BASE + i + 1, i, 0);
	signal(SIGXFSZ, SIG_IGN); /* this test's process only: Criterion forks */
	struct rlimit lim = {8192, 8192};
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	cr_assert_eq(tkv__tracer_close(t), -EFBIG);
	cr_assert(strstr(tkv_last_error(), "events not written"), "%s", tkv_last_error());
	cr_assert_eq(tkv__tracer_mem(), 0);
	tkv__trace_file *f;
	cr_assert_eq(tkv__trace_load(path, &f), -TKV_ECORRUPT, "a short file is not a trace");
	unlink(path);
}

/* ---- A synthetic trace with known durations ---------------------------- */

/* worker-N: copies of (100N + 1) .. (100N + 100) us, one after another with
 * a 1 us gap, a ticket after each; worker-1 also has 10 overlapping async
 * cold writes of 50 us. */
static void record_worker(tkv__trace_buf *b, unsigned n)
{
	uint64_t t = BASE;
	for (unsigned i = 1; i <= 100; i++) {
		uint64_t d = (100 * n + i) * US;
		tkv__trace_span(b, TKV__TRACE_COPY, t, t + d, i, 8192);
		tkv__trace_span(b, TKV__TRACE_TICKET_DONE, t + d, t + d, i, i);
		t += d + US;
	}
	for (unsigned i = 0; n == 1 && i < 10; i++)
		tkv__trace_span(b, TKV__TRACE_COLD_WRITE, BASE + i * 10 * US,
				BASE + i * 10 * US + 50 * US, i, 1 << 20);
}

/* producer: 50 stores of 2i us, each containing a ring wait of i us that
 * starts with it (odd i: at the same nanosecond) or 100 ns later. */
static void record_producer(tkv__trace_buf *b)
{
	for (unsigned i = 1; i <= 50; i++) {
		uint64_t t = BASE + i * 1000 * US, w = t + (i % 2 ? 0 : 100);
		tkv__trace_span(b, TKV__TRACE_RING_WAIT, w, w + i * US, 0, 1);
		tkv__trace_span(b, TKV__TRACE_STORE, t, t + 2 * i * US, i, 16);
	}
}

typedef struct role {
	tkv__tracer *t;
	const char *name;
	int worker; /* -1: producer */
} role;

static void *record_role(void *arg)
{
	role *r = arg;
	tkv__trace_buf *b = tkv__tracer_thread(r->t, r->name);
	cr_assert_not_null(b);
	if (r->worker < 0)
		record_producer(b);
	else
		record_worker(b, (unsigned)r->worker);
	return NULL;
}

/* Records the synthetic trace from three threads while the writer runs, with
 * chunks small enough that it hands several over, and buffers big enough
 * that nothing is dropped. */
static tkv__trace_file *synthetic_trace(void)
{
	const char *path = temp_path();
	tkv__tracer_opts o = {.chunk_events = 32, .n_chunks = 16, .flush_ms = 1};
	tkv__tracer *t;
	cr_assert_eq(tkv__tracer_open(path, &o, &t), 0, "%s", tkv_last_error());
	role roles[3] = {{t, "producer-0", -1}, {t, "worker-0", 0}, {t, "worker-1", 1}};
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, record_role, &roles[i]), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(tkv__tracer_close(t), 0, "%s", tkv_last_error());
	tkv__trace_file *f;
	cr_assert_eq(tkv__trace_load(path, &f), 0, "%s", tkv_last_error());
	unlink(path);
	return f;
}

static void expect_row(const tkv__trace_stat *rows, size_t n, uint16_t kind, int thread,
		       uint64_t count, uint64_t p50, uint64_t p99, uint64_t max, uint64_t total)
{
	const tkv__trace_stat *r = find_row(rows, n, kind, thread);
	cr_assert_not_null(r, "no row for kind %u thread %d", kind, thread);
	cr_assert_eq(r->count, count, "kind %u thread %d count", kind, thread);
	cr_assert_eq(r->p50, p50, "kind %u thread %d p50 %llu", kind, thread,
		     (unsigned long long)r->p50);
	cr_assert_eq(r->p99, p99, "kind %u thread %d p99 %llu", kind, thread,
		     (unsigned long long)r->p99);
	cr_assert_eq(r->max, max, "kind %u thread %d max", kind, thread);
	cr_assert_eq(r->total, total, "kind %u thread %d total %llu", kind, thread,
		     (unsigned long long)r->total);
}

Test(trace, percentile_is_nearest_rank)
{
	uint64_t v[200];
	for (int i = 0; i < 200; i++)
		v[i] = (uint64_t)i + 1;
	cr_assert_eq(tkv__trace_percentile(v, 10, 50), 5);
	cr_assert_eq(tkv__trace_percentile(v, 10, 99), 10);
	cr_assert_eq(tkv__trace_percentile(v, 10, 100), 10);
	cr_assert_eq(tkv__trace_percentile(v, 10, 1), 1);
	cr_assert_eq(tkv__trace_percentile(v, 1, 99), 1);
	cr_assert_eq(tkv__trace_percentile(v, 200, 50), 100);
	cr_assert_eq(tkv__trace_percentile(v, 200, 99), 198);
	cr_assert_eq(tkv__trace_percentile(v, 101, 50), 51);
}

Test(trace, summary_matches_hand_computed_figures)
{
	tkv__trace_file *f = synthetic_trace();
	cr_assert_eq(f->n_threads, 3);
	cr_assert_eq(f->n_events, 100 + 200 + 210); /* producer, worker-0, worker-1 */
	cr_assert_eq(f->dropped, 0);
	int w0 = thread_index(f, "worker-0"), w1 = thread_index(f, "worker-1");
	int p = thread_index(f, "producer-0");
	tkv__trace_stat *rows;
	size_t n;
	cr_assert_eq(tkv__trace_summarize(f, &rows, &n), 0);
	/* copy: 1..200 us over both workers; rank 100 and rank ceil(198). */
	expect_row(rows, n, TKV__TRACE_COPY, -1, 200, 100 * US, 198 * US, 200 * US, 20100 * US);
	expect_row(rows, n, TKV__TRACE_COPY, w0, 100, 50 * US, 99 * US, 100 * US, 5050 * US);
	expect_row(rows, n, TKV__TRACE_COPY, w1, 100, 150 * US, 199 * US, 200 * US, 15050 * US);
	/* store: 2, 4, .. 100 us; ring wait: 1 .. 50 us. */
	expect_row(rows, n, TKV__TRACE_STORE, p, 50, 50 * US, 100 * US, 100 * US, 2550 * US);
	expect_row(rows, n, TKV__TRACE_RING_WAIT, -1, 50, 25 * US, 50 * US, 50 * US, 1275 * US);
	expect_row(rows, n, TKV__TRACE_COLD_WRITE, w1, 10, 50 * US, 50 * US, 50 * US, 500 * US);
	expect_row(rows, n, TKV__TRACE_TICKET_DONE, -1, 200, 0, 0, 0, 0);
	cr_assert_null(find_row(rows, n, TKV__TRACE_COLD_WRITE, w0));
	free(rows);

	size_t len;
	char *text = capture(tkv__trace_print_summary, f, &len);
	cr_assert(strstr(text, "worker-1"), "%s", text);
	cr_assert(strstr(text, "198.000"), "the all-thread copy p99 is printed:\n%s", text);
	cr_assert_null(strstr(text, "WARNING"), "%s", text);
	free(text);
	tkv__trace_file_free(f);
}

/* ---- JSON -------------------------------------------------------------- */

typedef struct span {
	uint64_t tid, t0, t1;
} span;

static int cmp_span(const void *a, const void *b)
{
	const span *x = a, *y = b;
	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	if (x->t0 != y->t0)
		return x->t0 < y->t0 ? -1 : 1;
	return (x->t1 < y->t1) - (x->t1 > y->t1); /* longer (outer) first */
}

/* Spans of one tid nest: each starts after the enclosing one ends, or ends
 * within it. A stack of open spans per tid, in start order. */
static void check_nesting(span *s, size_t n)
{
	qsort(s, n, sizeof(*s), cmp_span);
	span stack[64];
	size_t depth = 0;
	for (size_t i = 0; i < n; i++) {
		if (i && s[i].tid != s[i - 1].tid)
			depth = 0;
		while (depth && stack[depth - 1].t1 <= s[i].t0)
			depth--;
		if (depth)
			cr_assert_leq(s[i].t1, stack[depth - 1].t1,
				      "tid %llu: span [%llu, %llu] overlaps [%llu, %llu]",
				      (unsigned long long)s[i].tid, (unsigned long long)s[i].t0,
				      (unsigned long long)s[i].t1,
				      (unsigned long long)stack[depth - 1].t0,
				      (unsigned long long)stack[depth - 1].t1);
		cr_assert_lt(depth, 64);
		stack[depth++] = s[i];
	}
}

typedef struct json_counts {
	size_t x, i, b, e, thread_names;
} json_counts;

/* Validates the document's shape and returns the counts per phase. */
static json_counts check_trace_json(const char *text, size_t len, const tkv__trace_file *f)
{
	jval root;
	json_counts c = {0};
	cr_assert(json_parse(text, len, &root), "invalid JSON:\n%.2000s", text);
	const jval *ev = jget(&root, "traceEvents");
	cr_assert(ev && ev->type == J_ARR);
	span *spans = calloc(ev->n + 1, sizeof(*spans));
	size_t n_spans = 0;
	uint64_t prev_ts = 0, prev_dur = UINT64_MAX;
	for (size_t i = 0; i < ev->n; i++) {
		const jval *e = &ev->kids[i], *ph = jget(e, "ph");
		cr_assert(ph && ph->type == J_STR && ph->raw_len == 1);
		cr_assert(jget(e, "pid") && jget(e, "tid") && jget(e, "name"));
		if (jis(ph, "M")) {
			c.thread_names += jis(jget(e, "name"), "thread_name");
			continue;
		}
		uint64_t tid = strtoull(jget(e, "tid")->raw, NULL, 10);
		cr_assert(tkv__trace_thread_at(f, (uint16_t)tid), "tid %llu has no thread",
			  (unsigned long long)tid);
		uint64_t ts = jns(jget(e, "ts"));
		switch (ph->raw[0]) {
		case 'X': {
			uint64_t dur = jns(jget(e, "dur"));
			/* In start order, outer first on a tie, for viewers that
			 * stack slices in file order. */
			cr_assert(ts > prev_ts || (ts == prev_ts && dur <= prev_dur),
				  "X events out of start order at ts %llu", (unsigned long long)ts);
			prev_ts = ts;
			prev_dur = dur;
			spans[n_spans++] = (span){tid, ts, ts + dur};
			c.x++;
			break;
		}
		case 'i': c.i++; break;
		case 'b': c.b++; cr_assert(jget(e, "id")); break;
		case 'e': c.e++; cr_assert(jget(e, "id")); break;
		default: cr_assert_fail("unexpected ph %.1s", ph->raw);
		}
	}
	check_nesting(spans, n_spans);
	free(spans);
	jfree(&root);
	return c;
}

Test(trace, json_is_valid_with_one_nested_track_per_thread)
{
	tkv__trace_file *f = synthetic_trace();
	size_t len;
	char *text = capture(tkv__trace_write_json, f, &len);
	json_counts c = check_trace_json(text, len, f);
	cr_assert_eq(c.thread_names, 3);
	cr_assert_eq(c.x, 200 + 50 + 50);
	cr_assert_eq(c.i, 200);
	cr_assert_eq(c.b, 10);
	cr_assert_eq(c.e, 10);
	cr_assert(strstr(text, "\"args\":{\"name\":\"worker-0\"}"), "track named worker-0");
	cr_assert(strstr(text, "\"layer\":"), "argument names come from the kind table");
	free(text);
	tkv__trace_file_free(f);
}

/* ---- Dropped events ---------------------------------------------------- */

Test(trace, full_buffer_counts_dropped_events)
{
	const char *path = temp_path();
	/* No writer: the buffer holds 2 x 8 events until close. */
	tkv__tracer_opts o = {.chunk_events = 8, .n_chunks = 2, .flush_ms = -1};
	tkv__tracer *t;
	cr_assert_eq(tkv__tracer_open(path, &o, &t), 0, "%s", tkv_last_error());
	tkv__trace_buf *b = tkv__tracer_thread(t, "worker-0");
	for (uint32_t i = 0; i < 50; i++)
		tkv__trace_span(b, TKV__TRACE_COPY, BASE + i * US, BASE + i * US + 10, i, 0);
	cr_assert_eq(b->dropped, 34);
	cr_assert_eq(tkv__tracer_close(t), 0, "%s", tkv_last_error());

	tkv__trace_file *f;
	cr_assert_eq(tkv__trace_load(path, &f), 0, "%s", tkv_last_error());
	cr_assert_eq(f->n_events, 16);
	cr_assert_eq(f->dropped, 34);
	cr_assert_eq(f->threads[0].dropped, 34);
	for (uint32_t i = 0; i < 16; i++)
		cr_assert_eq(f->events[i].a, i, "the first 16 events are kept, in order");
	size_t len;
	char *text = capture(tkv__trace_print_summary, f, &len);
	cr_assert(strstr(text, "WARNING: 34 events dropped"), "%s", text);
	free(text);
	text = capture(tkv__trace_write_json, f, &len);
	cr_assert(strstr(text, "worker-0 (34 events DROPPED)"), "%s", text);
	cr_assert(strstr(text, "\"dropped_events\":34"));
	free(text);
	tkv__trace_file_free(f);
	unlink(path);
}

typedef struct stress_arg {
	tkv__tracer *t;
	char name[16];
	uint64_t dropped;
} stress_arg;

#define STRESS_EVENTS 20000

static void *stress_thread(void *arg)
{
	stress_arg *s = arg;
	tkv__trace_buf *b = tkv__tracer_thread(s->t, s->name);
	for (uint32_t i = 0; i < STRESS_EVENTS; i++) {
		uint64_t t0 = tkv__trace_begin(b);
		tkv__trace_end(b, TKV__TRACE_COPY, t0, i, 0);
	}
	s->dropped = b->dropped;
	return NULL;
}

/* The recorder and the writer run concurrently on small buffers: every event
 * is either in the file, in recording order, or counted as dropped. */
Test(trace, concurrent_recording_loses_nothing_uncounted)
{
	const char *path = temp_path();
	tkv__tracer_opts o = {.chunk_events = 64, .n_chunks = 4, .flush_ms = 1};
	tkv__tracer *t;
	cr_assert_eq(tkv__tracer_open(path, &o, &t), 0, "%s", tkv_last_error());
	stress_arg args[3];
	pthread_t th[3];
	for (int i = 0; i < 3; i++) {
		args[i] = (stress_arg){.t = t};
		snprintf(args[i].name, sizeof(args[i].name), "stress-%d", i);
		cr_assert_eq(pthread_create(&th[i], NULL, stress_thread, &args[i]), 0);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(tkv__tracer_close(t), 0, "%s", tkv_last_error());

	tkv__trace_file *f;
	cr_assert_eq(tkv__trace_load(path, &f), 0, "%s", tkv_last_error());
	cr_assert_eq(f->n_threads, 3);
	for (size_t i = 0; i < f->n_threads; i++)
		cr_assert_eq(f->threads[i].n_events + f->threads[i].dropped, STRESS_EVENTS);
	int64_t last[3] = {-1, -1, -1};
	for (size_t i = 0; i < f->n_events; i++) {
		const tkv__trace_event *e = &f->events[i];
		cr_assert_gt((int64_t)e->a, last[e->thread], "thread %u out of order", e->thread);
		last[e->thread] = e->a;
	}
	cr_log_info("stress: %llu of %d events dropped", (unsigned long long)f->dropped,
		    3 * STRESS_EVENTS);
	tkv__trace_file_free(f);
	unlink(path);
}

/* ---- Corrupt files ----------------------------------------------------- */

/* A small real trace: two threads, a few events of each shape. */
static uint8_t *small_trace(size_t *len)
{
	const char *path = temp_path();
	tkv__tracer_opts o = {.chunk_events = 4, .n_chunks = 2, .flush_ms = -1};
	tkv__tracer *t;
	cr_assert_eq(tkv__tracer_open(path, &o, &t), 0, "%s", tkv_last_error());
	tkv__trace_buf *b = tkv__tracer_thread(t, "w\"0\\");
	for (uint32_t i = 0; i < 10; i++) /* 2 of them dropped */
		tkv__trace_span(b, (uint16_t)(1 + i % 8), BASE + i * US, BASE + i * US + 500, i, i);
	cr_assert_eq(tkv__tracer_close(t), 0, "%s", tkv_last_error());
	uint8_t *d = read_file(path, len);
	unlink(path);
	return d;
}

/* A parse that succeeds must also summarise and convert to valid JSON. */
static void exercise(const uint8_t *d, size_t len, bool *ok)
{
	tkv__trace_file *f;
	int rc = tkv__trace_parse(d, len, &f);
	*ok = rc == 0;
	if (rc) {
		cr_assert(rc == -TKV_ECORRUPT || rc == -EPROTONOSUPPORT, "rc %d", rc);
		cr_assert(tkv_last_error()[0], "an error has a message");
		cr_assert_null(f);
		return;
	}
	size_t n;
	char *text = capture(tkv__trace_print_summary, f, &n);
	free(text);
	text = capture(tkv__trace_write_json, f, &n);
	jval root;
	cr_assert(json_parse(text, n, &root), "a parsed trace gave invalid JSON");
	jfree(&root);
	free(text);
	tkv__trace_file_free(f);
}

Test(trace_corrupt, every_truncation_is_an_error)
{
	size_t len;
	uint8_t *d = small_trace(&len);
	bool ok;
	exercise(d, len, &ok);
	cr_assert(ok, "the whole file parses: %s", tkv_last_error());
	for (size_t cut = 0; cut < len; cut++) {
		/* A fresh allocation of exactly `cut` bytes: ASan flags a read
		 * one past the end. */
		uint8_t *p = malloc(cut ? cut : 1);
		memcpy(p, d, cut);
		exercise(p, cut, &ok);
		cr_assert(!ok, "truncated at %zu of %zu bytes yet parsed", cut, len);
		if (cut > 40)
			cr_assert(strstr(tkv_last_error(), "trunc"), "at %zu: %s", cut,
				  tkv_last_error());
		free(p);
	}
	free(d);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

Test(trace_corrupt, byte_flips_never_crash)
{
	size_t len;
	uint8_t *d = small_trace(&len);
	uint8_t *p = malloc(len);
	uint64_t seed = 0x7ace5eedULL;
	size_t parsed = 0;
	for (int it = 0; it < 4000; it++) {
		memcpy(p, d, len);
		int flips = 1 + (int)(xorshift(&seed) % 4);
		for (int k = 0; k < flips; k++) {
			size_t at = xorshift(&seed) % len;
			/* Half bit flips, half whole random bytes. */
			if (xorshift(&seed) & 1)
				p[at] ^= (uint8_t)(1u << (xorshift(&seed) % 8));
			else
				p[at] = (uint8_t)xorshift(&seed);
		}
		bool ok;
		exercise(p, len, &ok);
		parsed += ok;
	}
	cr_log_info("byte flips: %zu of 4000 mutants parsed", parsed);
	free(p);
	free(d);
}

Test(trace_corrupt, other_major_version_is_refused)
{
	size_t len;
	uint8_t *d = small_trace(&len);
	tkv__trace_file *f;
	d[8] = 2;
	cr_assert_eq(tkv__trace_parse(d, len, &f), -EPROTONOSUPPORT);
	cr_assert(strstr(tkv_last_error(), "version 2."), "%s", tkv_last_error());
	d[8] = 1;
	d[0] = 'X';
	cr_assert_eq(tkv__trace_parse(d, len, &f), -TKV_ECORRUPT);
	cr_assert(strstr(tkv_last_error(), "not a tierkv trace"), "%s", tkv_last_error());
	free(d);
}
