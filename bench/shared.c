/*
 * shared.c - the "shared" scenario: `tierkv-bench shared --seeds HOST:PORT`
 * measures the shared tier's put and get GB/s against a raw pipelined
 * hiredis SET/GET of values of the same size on the same cluster, in the
 * same run (the limit: bench/shared_raw.c). Method and why the limit is
 * fair: bench/README.md, "The shared scenario".
 *
 * A point is one record size: the geometry's (default the replay
 * scenario's small one; --geometry llama3-8b for a real model) and a sweep
 * of sizes (--sizes). Per point: n values (n x record >= --bytes, at least
 * one fetch window), then --reps repeats. A repeat:
 *   put, each side in turn (which goes first alternates):
 *     raw:    SET NX of the n values in the writer's batches (one thread,
 *             one connection per master);
 *     tierkv: the point's shared tier (opened once, a fresh namespace;
 *             each repeat's block keys are fresh: NX skips nothing);
 *             n filled record buffers queued with tkv__shared_tier_put,
 *             timed until its writer has settled them all;
 *   get, interleaved window by window (which goes first alternates): a
 *     raw GET batch of the window's keys, and a tkv__shared_tier_fetch of
 *     the same window of blocks, every one verified by the tier (and,
 *     untimed, byte-compared); each side's time is the sum of its
 *     windows'. The load of a shared machine swings within a second; a
 *     pass of each side in turn let it fall on one side and not the
 *     other (repeat ratios 0.2-2.7 under a load of 6 on 2 cores).
 * Every repeat writes fresh keys into what the previous ones left empty:
 * the bench deletes the keys it wrote after each repeat (never anything
 * else: the cluster may be someone's).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/internals.h"
#include "bench/report.h"
#include "bench/shared.h"
#include "tierkv.h"

enum { KEY_LEN = TKV__SHARED_TIER_KEY_NAME_LEN, BT = 16, MAX_POINTS = 9 };

typedef struct sopts {
	const char *seeds, *json, *csv, *out, *geometry;
	uint32_t layers, heads, dim, timeout_ms;
	tkv_dtype dtype;
	size_t sizes[MAX_POINTS - 1];
	int n_sizes, reps;
	size_t pass_bytes;
} sopts;

/* One record size. */
typedef struct spoint {
	char name[40];
	uint32_t layers, heads, dim;
	tkv_dtype dtype;
	tkv__cold_layout lay;
	size_t n;
} spoint;

/* Per op of a point: GB/s of each repeat, tierkv and raw. */
typedef struct sfig {
	double tier[64], raw[64];
	double tier_cpu[64], raw_cpu[64]; /* client CPU s per GB */
	uint64_t errors;
} sfig;

/* One output row: a point's put or get. */
typedef struct srow {
	const spoint *pt;
	const char *op;
	int reps;
	double gbps, gbps_min, gbps_max, raw_gbps, raw_min, raw_max, ratio, ratio_min, ratio_max;
	double cpu, raw_cpu, cpu_ratio; /* medians: client CPU s/GB, tierkv/raw */
	uint64_t errors;
} srow;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tierkv-bench shared --seeds HOST:PORT[,...] [--geometry NAME | --layers N\n"
		"         --heads N --dim N] [--dtype f32|bf16|f16] [--sizes SIZE,..|none]\n"
		"         [--bytes SIZE] [--reps N] [--timeout-ms N] [--json FILE] [--csv FILE]\n"
		"         [--out DIR]\n"
		"  Shared-tier put/get GB/s vs a raw pipelined hiredis SET/GET of values of the\n"
		"  same size on the same cluster. Points: the geometry's record (default the\n"
		"  replay scenario's 2 layers x 1 kv head x head_dim 64 f32, block 16 tokens:\n"
		"  20 KiB) and --sizes (default 64K,256K,1M,4M: records of 1..32 layers of 8 kv\n"
		"  heads x 128 f32). Each pass moves --bytes (default 256M, at least 64 values);\n"
		"  --reps (default 6) repeats, raw and tierkv alternating (put ratios: one per\n"
		"  pair of repeats, the geometric mean, so the order cancels). The keys it writes\n"
		"  are deleted after each pass. --out DIR writes shared.json and shared.csv.\n");
}

static void need_seeds(void)
{
	fprintf(stderr,
		"tierkv-bench shared: --seeds HOST:PORT[,...] is required: this scenario measures\n"
		"against a running Redis Cluster (or one standalone server). A private one on\n"
		"loopback:\n"
		"  bash tests/redis/servers.sh cluster /tmp/tkv-redis 3   # writes /tmp/tkv-redis/seeds\n"
		"  tierkv-bench shared --seeds $(cat /tmp/tkv-redis/seeds)\n"
		"  bash tests/redis/servers.sh stop /tmp/tkv-redis\n");
}

static int parse_sizes(const char *v, sopts *o)
{
	o->n_sizes = 0;
	if (!strcmp(v, "none"))
		return 0;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", v);
	for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t b;
		if (o->n_sizes == MAX_POINTS - 1 || bench_parse_bytes(t, &b) != 0 || b < 16384)
			return -1;
		o->sizes[o->n_sizes++] = b;
	}
	return 0;
}

static int parse(int argc, char **argv, sopts *o)
{
	*o = (sopts){.geometry = "replay-small", .layers = 2, .heads = 1, .dim = 64,
		     .timeout_ms = 5000, .dtype = TKV_DTYPE_F32,
		     .sizes = {64 << 10, 256 << 10, 1 << 20, 4 << 20}, .n_sizes = 4, .reps = 6,
		     .pass_bytes = 256 << 20};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (!strcmp(a, name) && v && (i++, 1))
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 1;
		} else if (OPT("--seeds")) {
			o->seeds = v;
		} else if (OPT("--geometry")) {
			const bench_geometry *g = bench_geometry_find(v);
			if (!g) {
				fprintf(stderr, "tierkv-bench shared: unknown geometry %s\n", v);
				return -1;
			}
			o->geometry = g->name;
			o->layers = g->n_layers, o->heads = g->n_kv_heads, o->dim = g->head_dim;
		} else if (OPT("--layers")) {
			if (bench_opt_u32("shared", a, v, 1, 4096, &o->layers))
				return -1;
			o->geometry = "custom";
		} else if (OPT("--heads")) {
			if (bench_opt_u32("shared", a, v, 1, 1024, &o->heads))
				return -1;
			o->geometry = "custom";
		} else if (OPT("--dim")) {
			if (bench_opt_u32("shared", a, v, 1, 65536, &o->dim))
				return -1;
			o->geometry = "custom";
		} else if (OPT("--dtype")) {
			if (bench_parse_dtype(v, &o->dtype))
				return fprintf(stderr, "tierkv-bench shared: --dtype f32, bf16 or f16\n"), -1;
		} else if (OPT("--sizes")) {
			if (parse_sizes(v, o))
				return fprintf(stderr, "tierkv-bench shared: bad --sizes %s\n", v), -1;
		} else if (OPT("--bytes")) {
			if (bench_parse_bytes(v, &o->pass_bytes) || !o->pass_bytes)
				return fprintf(stderr, "tierkv-bench shared: bad --bytes %s\n", v), -1;
		} else if (OPT("--reps")) {
			if (bench_opt_int("shared", a, v, 1, 64, &o->reps))
				return -1;
		} else if (OPT("--timeout-ms")) {
			if (bench_opt_u32("shared", a, v, 1, 3600000, &o->timeout_ms))
				return -1;
		} else if (OPT("--json")) {
			o->json = v;
		} else if (OPT("--csv")) {
			o->csv = v;
		} else if (OPT("--out")) {
			o->out = v;
		} else {
			fprintf(stderr, "tierkv-bench shared: bad option %s\n", a);
			usage(stderr);
			return -1;
		}
#undef OPT
	}
	if (!o->seeds) {
		need_seeds();
		return -1;
	}
	if (o->reps < 1 || o->reps > 64 || !o->layers || !o->heads || !o->dim || !o->timeout_ms) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* ---- points ---- */

static int make_point(spoint *p, const char *name, uint32_t layers, uint32_t heads, uint32_t dim,
		      tkv_dtype dtype, size_t pass_bytes)
{
	*p = (spoint){.layers = layers, .heads = heads, .dim = dim, .dtype = dtype};
	snprintf(p->name, sizeof(p->name), "%s", name);
	if (tkv__cold_layout_init(&p->lay, layers, heads, dim, dtype, BT, 0))
		return -1;
	p->n = pass_bytes / p->lay.record_bytes;
	if (p->n < TKV__SHARED_TIER_FETCH_MAX) /* at least one full fetch window */
		p->n = TKV__SHARED_TIER_FETCH_MAX;
	return 0;
}

/* A record of about `size` bytes: layers of up to 8 kv heads x 128 f32
 * (16 KiB per head per block of 16 tokens), plus the 4 KiB header. */
static int sweep_point(spoint *p, size_t size, size_t pass_bytes)
{
	size_t per_head = 2 * BT * 128 * 4, heads = size / per_head;
	heads = heads < 1 ? 1 : heads > 8 ? 8 : heads;
	size_t layers = size / (heads * per_head);
	char name[40], b[24];
	snprintf(name, sizeof(name), "sweep-%s", bench_fmt_bytes(size, b));
	for (char *c = name; *c; c++)
		*c = *c == ' ' ? '-' : *c;
	return make_point(p, name, layers ? (uint32_t)layers : 1, (uint32_t)heads, 128,
			  TKV_DTYPE_F32, pass_bytes);
}

/* ---- values, keys ---- */

static uint64_t run_seed(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return tkv__mix_pair((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
			     (uint64_t)getpid());
}

static void fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = tkv__mix_pair(seed, i);
}

/* n key names, KEY_LEN bytes each (the tier's length), every one new. */
static void raw_names(char *names, size_t n, const char *prefix, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		snprintf(names + i * (KEY_LEN + 1), KEY_LEN + 1, "%s:%016llx%016llx:%016llx%016llx",
			 prefix, (unsigned long long)seed, (unsigned long long)tkv__mix64(seed),
			 (unsigned long long)tkv__mix_pair(seed, i),
			 (unsigned long long)tkv__mix_pair(~seed, i));
}

/* CPU time of the whole process (every thread: the tier's writer too). */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Client CPU seconds per GB moved. */
static double cpu_per_gb(size_t n, size_t bytes, uint64_t ns)
{
	return (double)ns / ((double)n * (double)bytes);
}

static double gbps(size_t n, size_t bytes, uint64_t ns)
{
	return ns ? (double)n * (double)bytes / (double)ns : 0;
}

/* Blocks per fetch, the runtime's rule (tkv__shared_tier_fetch_window):
 * the raw GET pipelines the same batches. */
static size_t fetch_window(size_t record_bytes)
{
	return tkv__shared_tier_fetch_window(record_bytes);
}

/* ---- one repeat ---- */

typedef struct ctx {
	const sopts *o;
	shraw *raw;
	spoint *pt;
	void **vals; /* n values of record_bytes: the blocks both sides move */
	char *names; /* the raw side's key names */
	char *tier_names; /* the tier's (to delete them) */
	uint64_t seed;
	tkv__shared_tier *st; /* the point's tier: its connections live across
				 repeats, as the raw side's do */
} ctx;

/* One repeat's tier side: its n blocks (fresh keys) on the point's tier. */
typedef struct tside {
	tkv__shared_tier *st;
	tkv__key *keys;
	uint32_t *tokens;
	void **bufs;               /* put buffers, then NULL (the tier took them) */
	void *win[TKV__SHARED_TIER_FETCH_MAX]; /* the fetch window's record buffers */
} tside;

static int raw_put(ctx *c, int rep, sfig *put, uint64_t *errs)
{
	const size_t n = c->pt->n, len = c->pt->lay.record_bytes;
	raw_names(c->names, n, "raw1", tkv__mix_pair(c->seed, (uint64_t)rep));
	uint64_t t0 = bench_now_ns(), c0 = cpu_ns();
	long set = shraw_set(c->raw, c->names, KEY_LEN, c->vals, len, n,
			     TKV__SHARED_TIER_WRITE_BATCH, TKV__SHARED_INFLIGHT_DEFAULT);
	uint64_t t1 = bench_now_ns(), c1 = cpu_ns();
	if (set < 0)
		return -1;
	errs[0] += n - (size_t)set;
	put->raw[rep] = gbps(n, len, t1 - t0);
	put->raw_cpu[rep] = cpu_per_gb(n, len, c1 - c0);
	return 0;
}

/* The point's tier, opened once: each repeat puts fresh block keys (SET NX
 * skips nothing), and its writer's and fetch's connections stay open from
 * one repeat to the next, as the raw side's stay from one pass to the
 * next (a fresh tier per repeat made the writer put over new connections,
 * whose send buffers had yet to grow, in every timed put). */
static int tier_open(ctx *c, tkv__shared_tier **st)
{
	const tkv__cold_layout *l = &c->pt->lay;
	uint64_t s = tkv__mix_pair(c->seed, 1000u);
	tkv__shared_tier_cfg cfg = {
		.client = {.seeds = c->o->seeds, .connect_timeout_ms = c->o->timeout_ms,
			   .op_timeout_ms = c->o->timeout_ms},
		.ns = {tkv__mix64(s), tkv__mix64(~s)}, /* fresh namespace */
		.layout = *l,
		.crc = tkv__kernels_get(TKV_ISA_AUTO)->crc32c,
		/* room for every block at once: the timed window holds the writer's
		 * work only, not the filling of buffers */
		.queue_bytes = (uint64_t)c->pt->n * l->record_bytes,
	};
	int rc = tkv__shared_tier_open(&cfg, st);
	if (rc)
		fprintf(stderr, "tierkv-bench shared: shared tier open: %s\n", tkv_strerror(rc));
	return rc;
}

/* Waits until the writer settled every queued block (stored, already
 * there, or failed); polls every 1 ms: at most 1 ms late on a pass of
 * 0.1 s or more, and the poller's wakeups (100 us polls cost ~0.3 CPU
 * s/GB on slow passes) do not take the cores the writer and the servers
 * need. -1 if it stalls for 60 s. */
static int wait_settled(tkv__shared_tier *st, tkv__shared_tier_stats *s)
{
	uint64_t last = 0, since = bench_now_ns();
	for (;;) {
		tkv__shared_tier_stats_get(st, s);
		uint64_t done = s->writes_stored + s->writes_existed + s->writes_failed;
		if (done >= s->writes_queued)
			return 0;
		uint64_t now = bench_now_ns();
		if (done != last)
			last = done, since = now;
		else if (now - since > 60000000000ull)
			return -1;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
}

/* Blocks that came back with a payload other than the one put (untimed). */
static uint64_t wrong_blocks(const ctx *c, void **bufs, void **vals, size_t hits)
{
	const tkv__cold_layout *l = &c->pt->lay;
	uint64_t wrong = 0;
	for (size_t i = 0; i < hits; i++)
		for (uint32_t y = 0; y < l->n_layers; y++)
			if (memcmp(tkv__cold_record_layer(l, bufs[i], y),
				   tkv__cold_record_layer(l, vals[i], y), l->block_bytes)) {
				wrong++;
				break;
			}
	return wrong;
}

/* Fills n record buffers with the values under the repeat's fresh keys
 * (untimed), the fetch's connection made before anything is timed. */
static int tier_prepare(ctx *c, int rep, tside *t)
{
	const size_t n = c->pt->n, len = c->pt->lay.record_bytes;
	const uint64_t kseed = tkv__mix_pair(c->seed, (uint64_t)rep);
	*t = (tside){.st = c->st};
	t->keys = calloc(n, sizeof(*t->keys));
	t->tokens = calloc(n * BT, sizeof(*t->tokens));
	t->bufs = calloc(n, sizeof(*t->bufs));
	if (!t->keys || !t->tokens || !t->bufs)
		return -1;
	for (size_t i = 0; i < n; i++) {
		t->keys[i] = (tkv__key){tkv__mix_pair(kseed ^ 1, i), tkv__mix_pair(kseed ^ 2, i)};
		for (size_t k = 0; k < BT; k++)
			t->tokens[i * BT + k] = (uint32_t)tkv__mix_pair(t->keys[i].lo, k);
		if (!(t->bufs[i] = tkv__shared_tier_buf(t->st)))
			return -1;
		memcpy(t->bufs[i], c->vals[i], len); /* the writer seals the header */
	}
	/* The fetch's connections to every master, as the raw side's are made
	 * before its passes (an EXISTS of fresh keys, which the writer's SET
	 * NX does not see; a no-op after the first repeat). A runtime's pool
	 * keeps them. */
	tkv__shared_tier_present(t->st, t->keys, n < TKV__SHARED_TIER_FETCH_MAX ? n : TKV__SHARED_TIER_FETCH_MAX);
	return 0;
}

static int tier_put(ctx *c, int rep, tside *t, sfig *put, uint64_t *errs)
{
	const size_t n = c->pt->n, len = c->pt->lay.record_bytes;
	tkv__shared_tier_stats s;
	tkv__shared_tier_stats_get(t->st, &s);
	const uint64_t stored = s.writes_stored; /* the tier's counters run on */
	uint64_t t0 = bench_now_ns(), c0 = cpu_ns();
	for (size_t i = 0; i < n; i++)
		tkv__shared_tier_put(t->st, t->keys[i], t->tokens + i * BT, t->bufs[i]); /* takes it */
	memset(t->bufs, 0, n * sizeof(*t->bufs));
	int rc = wait_settled(t->st, &s);
	uint64_t t1 = bench_now_ns(), c1 = cpu_ns();
	errs[0] += n - (s.writes_stored - stored);
	put->tier[rep] = gbps(n, len, t1 - t0);
	put->tier_cpu[rep] = cpu_per_gb(n, len, c1 - c0);
	return rc;
}

/* One fetch window of the tier, as the runtime fetches: the window of
 * record buffers (tkv__shared_tier_buf_raw, fresh), reused for every
 * window; then, untimed, its blocks byte-compared. Adds its wall and CPU
 * time to ns[0], ns[1]; returns the verified hits (*wrong: hits with
 * another payload). */
static size_t tier_window(const ctx *c, tside *t, size_t first, size_t w, uint64_t *wrong,
			  uint64_t ns[2])
{
	size_t have = 0;
	while (have < w && (t->win[have] || (t->win[have] = tkv__shared_tier_buf_raw(t->st))))
		have++;
	uint64_t t0 = bench_now_ns(), c0 = cpu_ns();
	size_t got = tkv__shared_tier_fetch(t->st, t->keys + first, t->tokens + first * BT, have, t->win);
	ns[0] += bench_now_ns() - t0, ns[1] += cpu_ns() - c0;
	*wrong += wrong_blocks(c, t->win, c->vals + first, got);
	return got;
}

/* The same window of the raw side: GET of its keys, one batch. */
static long raw_window(const ctx *c, size_t first, size_t w, uint64_t ns[2])
{
	const size_t len = c->pt->lay.record_bytes;
	uint64_t t0 = bench_now_ns(), c0 = cpu_ns();
	long got = shraw_get(c->raw, c->names + first * (KEY_LEN + 1), KEY_LEN, len, w, w,
			     TKV__SHARED_INFLIGHT_DEFAULT);
	ns[0] += bench_now_ns() - t0, ns[1] += cpu_ns() - c0;
	return got;
}

/* Both sides' gets, window by window in turn (which side goes first
 * alternates): the machine's load, which here swings within a second,
 * then weighs on both alike. Each side's figure is the sum of its
 * windows' times; a window is a whole round trip on either side (the
 * fetch returns when its window is in and checked, the raw batch when its
 * replies are read), so interleaving changes neither side's work. */
static int get_interleaved(ctx *c, int rep, tside *t, sfig *get, uint64_t *errs)
{
	const size_t n = c->pt->n, len = c->pt->lay.record_bytes, win = fetch_window(len);
	uint64_t raw_ns[2] = {0, 0}, tier_ns[2] = {0, 0}, wrong = 0;
	size_t hits = 0;
	long raw_got = 0;
	for (size_t i = 0, k = 0; i < n; i += win, k++) {
		size_t w = n - i < win ? n - i : win;
		long g = 0;
		if ((k + (size_t)rep) % 2 == 0) {
			g = raw_window(c, i, w, raw_ns);
			hits += tier_window(c, t, i, w, &wrong, tier_ns);
		} else {
			hits += tier_window(c, t, i, w, &wrong, tier_ns);
			g = raw_window(c, i, w, raw_ns);
		}
		if (g < 0)
			return -1;
		raw_got += g;
	}
	errs[1] += (n - (size_t)raw_got) + (n - hits + wrong);
	get->raw[rep] = gbps(n, len, raw_ns[0]);
	get->tier[rep] = gbps(n, len, tier_ns[0]);
	get->raw_cpu[rep] = cpu_per_gb(n, len, raw_ns[1]);
	get->tier_cpu[rep] = cpu_per_gb(n, len, tier_ns[1]);
	return 0;
}

/* Deletes what both sides wrote (also after a failed pass), frees the
 * tier side. */
static int rep_cleanup(ctx *c, tside *t)
{
	const size_t n = c->pt->n;
	int rc = shraw_del(c->raw, c->names, KEY_LEN, n);
	for (size_t i = 0; t->st && t->keys && i < n; i++)
		tkv__shared_tier_key_name(t->st, t->keys[i], c->tier_names + i * (KEY_LEN + 1), KEY_LEN + 1);
	if (t->st && t->keys && shraw_del(c->raw, c->tier_names, KEY_LEN, n))
		rc = -1;
	for (size_t i = 0; t->bufs && i < n; i++) /* put ones are NULL by now */
		if (t->bufs[i])
			tkv__shared_tier_buf_unused(t->st, t->bufs[i]);
	for (size_t i = 0; i < TKV__SHARED_TIER_FETCH_MAX; i++)
		tkv__shared_tier_buf_free(t->st, t->win[i]);
	free(t->keys), free(t->tokens), free(t->bufs);
	return rc;
}

/* One repeat: both puts (which side goes first alternates: neither always
 * runs on a warmer, or more fragmented, server), then both gets
 * interleaved by window, then the deletes. */
static int run_rep(ctx *c, int rep, sfig *put, sfig *get, uint64_t *errs)
{
	tside t;
	int rc = tier_prepare(c, rep, &t);
	if (!rc)
		rc = rep % 2 == 0 ? raw_put(c, rep, put, errs) || tier_put(c, rep, &t, put, errs)
				  : tier_put(c, rep, &t, put, errs) || raw_put(c, rep, put, errs);
	if (!rc)
		rc = get_interleaved(c, rep, &t, get, errs);
	if (rep_cleanup(c, &t))
		rc = -1;
	return rc;
}

/* ---- a point ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(const double *v, int n, double *lo, double *hi)
{
	double s[64];
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	*lo = s[0], *hi = s[n - 1];
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/*
 * The ratio is paired: each repeat's tierkv figure over the same repeat's
 * raw one (measured back to back), so a drift of the machine between
 * repeats moves both; the median of the pairs, and their range.
 *
 * Puts run one side after the other, and whichever goes first was faster
 * (at 68 KiB 1.7-2.0 GB/s first, 1.0-1.1 second, either side: not the
 * servers' memory, not persistence, cause not found), so a repeat's ratio
 * carries the order: 0.58 with raw first, 1.59 with the tier first. The
 * order alternates, and for puts each pair of repeats (raw first, then
 * tier first) gives one ratio, the geometric mean of the two: with
 * first = x F, second = x S it is sqrt((T S / R F)(T F / R S)) = T / R,
 * the order's factor gone. An odd last repeat is left out. Gets are
 * interleaved window by window: their repeats stand alone.
 */
static srow summarize(const spoint *pt, const char *op, const sfig *f, int reps)
{
	srow r = {.pt = pt, .op = op, .reps = reps, .errors = f->errors};
	double q[64];
	for (int i = 0; i < reps; i++)
		q[i] = f->raw[i] > 0 ? f->tier[i] / f->raw[i] : 0;
	int nq = reps;
	if (!strcmp(op, "put") && reps >= 2) {
		nq = reps / 2;
		for (int k = 0; k < nq; k++)
			q[k] = sqrt(q[2 * k] * q[2 * k + 1]);
	}
	r.gbps = median(f->tier, reps, &r.gbps_min, &r.gbps_max);
	r.raw_gbps = median(f->raw, reps, &r.raw_min, &r.raw_max);
	r.ratio = median(q, nq, &r.ratio_min, &r.ratio_max);
	double lo, hi;
	r.cpu = median(f->tier_cpu, reps, &lo, &hi);
	r.raw_cpu = median(f->raw_cpu, reps, &lo, &hi);
	r.cpu_ratio = r.raw_cpu > 0 ? r.cpu / r.raw_cpu : 0;
	return r;
}

static int run_point(const sopts *o, shraw *raw, spoint *pt, srow out[2])
{
	const size_t n = pt->n, len = pt->lay.record_bytes;
	ctx c = {o, raw, pt, calloc(n, sizeof(void *)), calloc(n, KEY_LEN + 1),
		 calloc(n, KEY_LEN + 1), run_seed(), NULL};
	int rc = c.vals && c.names && c.tier_names ? 0 : -1;
	for (size_t i = 0; i < n && !rc; i++)
		if ((c.vals[i] = aligned_alloc(TKV__COLD_ALIGN, len)))
			fill(c.vals[i], len, tkv__mix_pair(c.seed, i));
		else
			rc = -1;
	if (!rc)
		rc = tier_open(&c, &c.st);
	sfig put = {0}, get = {0};
	uint64_t errs[2] = {0, 0};
	for (int rep = 0; rep < o->reps && !rc; rep++)
		rc = run_rep(&c, rep, &put, &get, errs);
	tkv__shared_tier_close(c.st);
	put.errors = errs[0], get.errors = errs[1];
	if (!rc) {
		out[0] = summarize(pt, "put", &put, o->reps);
		out[1] = summarize(pt, "get", &get, o->reps);
	}
	for (size_t i = 0; c.vals && i < n; i++)
		free(c.vals[i]);
	free(c.vals), free(c.names), free(c.tier_names);
	return rc;
}

/* ---- output ---- */

#define FIELDS(X)                                                                  \
	X(op, "\"%s\"", "%s", r->op)                                                 \
	X(value_bytes, "%llu", "%llu", (unsigned long long)r->pt->lay.record_bytes)  \
	X(values, "%zu", "%zu", r->pt->n)                                            \
	X(layers, "%u", "%u", r->pt->layers)                                         \
	X(kv_heads, "%u", "%u", r->pt->heads)                                        \
	X(head_dim, "%u", "%u", r->pt->dim)                                          \
	X(dtype, "\"%s\"", "%s", bench_dtype_name(r->pt->dtype))                     \
	X(block_tokens, "%d", "%d", BT)                                              \
	X(repeats, "%d", "%d", r->reps)                                              \
	X(gbps, "%.4f", "%.4f", r->gbps)                                             \
	X(gbps_min, "%.4f", "%.4f", r->gbps_min)                                     \
	X(gbps_max, "%.4f", "%.4f", r->gbps_max)                                     \
	X(raw_gbps, "%.4f", "%.4f", r->raw_gbps)                                     \
	X(raw_gbps_min, "%.4f", "%.4f", r->raw_min)                                  \
	X(raw_gbps_max, "%.4f", "%.4f", r->raw_max)                                  \
	X(ratio, "%.4f", "%.4f", r->ratio)                                           \
	X(ratio_min, "%.4f", "%.4f", r->ratio_min)                                   \
	X(ratio_max, "%.4f", "%.4f", r->ratio_max)                                   \
	X(cpu_s_per_gb, "%.4f", "%.4f", r->cpu)                                      \
	X(raw_cpu_s_per_gb, "%.4f", "%.4f", r->raw_cpu)                              \
	X(cpu_ratio, "%.4f", "%.4f", r->cpu_ratio)                                   \
	X(errors, "%llu", "%llu", (unsigned long long)r->errors)

static int write_json(const srow *rows, size_t n, uint32_t masters, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return fprintf(stderr, "tierkv-bench shared: %s: %s\n", path, strerror(errno)), -1;
	fputs("[\n", f);
	for (size_t i = 0; i < n; i++) {
		const srow *r = &rows[i];
		fprintf(f, "  {\"scenario\": \"shared\", \"geometry\": \"%s\", \"masters\": %u",
			r->pt->name, masters);
#define JSON(name, jfmt, cfmt, val) fprintf(f, ", \"" #name "\": " jfmt, val);
		FIELDS(JSON)
#undef JSON
		fprintf(f, "}%s\n", i + 1 < n ? "," : "");
	}
	fputs("]\n", f);
	return fclose(f) ? -1 : 0;
}

static int write_csv(const srow *rows, size_t n, uint32_t masters, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return fprintf(stderr, "tierkv-bench shared: %s: %s\n", path, strerror(errno)), -1;
	fputs("scenario,geometry,masters", f);
#define HEAD(name, jfmt, cfmt, val) fputs("," #name, f);
	FIELDS(HEAD)
#undef HEAD
	fputc('\n', f);
	for (size_t i = 0; i < n; i++) {
		const srow *r = &rows[i];
		fprintf(f, "shared,%s,%u", r->pt->name, masters);
#define CSV(name, jfmt, cfmt, val) fprintf(f, "," cfmt, val);
		FIELDS(CSV)
#undef CSV
		fputc('\n', f);
	}
	return fclose(f) ? -1 : 0;
}

static void table_row(const srow *r)
{
	char b[24];
	printf("%-16s %10s %4s %6zu  %6.3f (%5.3f-%5.3f)  %6.3f (%5.3f-%5.3f)  %5.2f (%4.2f-%4.2f)"
	       "  %5.2f %5.2f %5.2f%s\n",
	       r->pt->name, bench_fmt_bytes(r->pt->lay.record_bytes, b), r->op, r->pt->n, r->raw_gbps,
	       r->raw_min, r->raw_max, r->gbps, r->gbps_min, r->gbps_max, r->ratio, r->ratio_min,
	       r->ratio_max, r->raw_cpu, r->cpu, r->cpu_ratio, r->errors ? "  ERRORS" : "");
	fflush(stdout);
}

static int write_outputs(const sopts *o, const srow *rows, size_t n, uint32_t masters)
{
	char path[4096];
	int rc = 0;
	if (o->json)
		rc |= write_json(rows, n, masters, o->json);
	if (o->csv)
		rc |= write_csv(rows, n, masters, o->csv);
	if (o->out) {
		snprintf(path, sizeof(path), "%s/shared.json", o->out);
		rc |= write_json(rows, n, masters, path);
		snprintf(path, sizeof(path), "%s/shared.csv", o->out);
		rc |= write_csv(rows, n, masters, path);
	}
	return rc;
}

int bench_shared_main(int argc, char **argv)
{
	sopts o;
	int rc = parse(argc, argv, &o);
	if (rc)
		return rc > 0 ? 0 : 2;
	spoint pts[MAX_POINTS];
	int np = 0;
	if (make_point(&pts[np++], o.geometry, o.layers, o.heads, o.dim, o.dtype, o.pass_bytes))
		return fprintf(stderr, "tierkv-bench shared: bad geometry: %s\n", tkv_last_error()), 2;
	for (int i = 0; i < o.n_sizes; i++)
		if (sweep_point(&pts[np++], o.sizes[i], o.pass_bytes))
			return fprintf(stderr, "tierkv-bench shared: bad size\n"), 2;
	shraw *raw = shraw_open(o.seeds, o.timeout_ms);
	if (!raw)
		return 1;
	printf("shared tier vs raw pipelined hiredis, %s: %u masters, one thread each side; %d "
	       "repeats (median, min-max); GB/s = 1e9 value bytes/s; ratio = tierkv/raw per repeat; "
	       "CPU = this process's CPU s per GB (medians)\n",
	       o.seeds, shraw_masters(raw), o.reps);
	printf("%-16s %10s %4s %6s  %-21s  %-21s  %-16s  %s\n", "geometry", "value", "op", "values",
	       "raw GB/s", "tierkv GB/s", "ratio", "CPU s/GB raw tkv ratio");
	srow rows[2 * MAX_POINTS];
	size_t nr = 0;
	uint64_t errors = 0;
	for (int i = 0; i < np && !rc; i++) {
		if ((rc = run_point(&o, raw, &pts[i], &rows[nr])))
			break;
		table_row(&rows[nr]);
		table_row(&rows[nr + 1]);
		errors += rows[nr].errors + rows[nr + 1].errors;
		nr += 2;
	}
	uint32_t masters = shraw_masters(raw);
	shraw_close(raw);
	if (rc)
		return fprintf(stderr, "tierkv-bench shared: a pass failed (see above)\n"), 1;
	if (write_outputs(&o, rows, nr, masters))
		return 1;
	if (errors)
		fprintf(stderr, "tierkv-bench shared: %llu values failed or came back wrong\n",
			(unsigned long long)errors);
	return errors ? 1 : 0;
}
