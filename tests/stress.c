/*
 * stress.c - many producers, many sequences, all layers, random batch sizes:
 * every byte read back (by copy and by view, while other threads keep
 * storing) must equal the deterministic pattern of (sequence, layer,
 * position, byte). Sizes come from the environment so the same test runs
 * briefly under sanitizers and long by hand:
 *   TKV_STRESS_PRODUCERS (default 4), TKV_STRESS_SEQS (64),
 *   TKV_STRESS_TOKENS (tokens per sequence and layer, default 96).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "tests/kv_pattern.h"
#include "tierkv.h"

typedef struct stress {
	tkv_runtime *rt;
	tkv_config cfg;
	size_t row;
	uint32_t producers, seqs, tokens;
	bool use_view;
} stress;

typedef struct producer {
	stress *st;
	uint32_t index;
	uint64_t seed;
	int failures;
} producer;

/* xorshift64*: per-thread, reproducible from the seed on any libc */
static uint32_t next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (uint32_t)((*s * 0x2545f4914f6cdd1dull) >> 32);
}

static uint32_t env_u32(const char *name, uint32_t dflt)
{
	const char *s = getenv(name);
	return s && *s ? (uint32_t)strtoul(s, NULL, 10) : dflt;
}

/* Reads [pos, pos+n) of (seq, layer) by copy or by view; 0 if it matches. */
static int verify_range(stress *st, uint64_t seq, uint32_t layer, uint64_t pos, uint32_t n,
			bool view)
{
	size_t rb = st->row;
	unsigned char *scratch = malloc(rb);
	int bad = 0;
	if (!view) {
		unsigned char *k = malloc(n * rb), *v = malloc(n * rb);
		if (tkv_read(st->rt, seq, layer, pos, n, k, v))
			bad = 1;
		else
			bad = kvp_check(k, seq, layer, pos, n, rb, 0, scratch) != -1 ||
			      kvp_check(v, seq, layer, pos, n, rb, 1, scratch) != -1;
		free(k);
		free(v);
	} else {
		uint32_t max = n / st->cfg.block_tokens + 2;
		tkv_view_block *b = calloc(max, sizeof(*b));
		tkv_view vw = {.struct_size = sizeof(vw), .blocks = b, .max_blocks = max};
		if (tkv_view_acquire(st->rt, seq, layer, pos, n, &vw)) {
			bad = 1;
		} else {
			uint64_t p = pos;
			for (uint32_t i = 0; i < vw.n_blocks && !bad; i++) {
				bad = b[i].first_pos != p ||
				      kvp_check(b[i].k, seq, layer, p, b[i].n_tokens, rb, 0, scratch) != -1 ||
				      kvp_check(b[i].v, seq, layer, p, b[i].n_tokens, rb, 1, scratch) != -1;
				p += b[i].n_tokens;
			}
			bad |= p != pos + n;
			bad |= tkv_view_release(st->rt, &vw) != 0;
		}
		free(b);
	}
	free(scratch);
	return bad;
}

/* One batch: allocate, fill, store; the buffer is kept until sync. */
static int store_batch(stress *st, uint64_t seq, uint32_t layer, uint64_t pos, uint32_t n,
		       void **keep)
{
	unsigned char *buf = malloc(2 * n * st->row);
	kvp_fill(buf, seq, layer, pos, n, st->row, 0);
	kvp_fill(buf + n * st->row, seq, layer, pos, n, st->row, 1);
	*keep = buf;
	return tkv_store(st->rt, seq, layer, pos, n, buf, buf + n * st->row, 0, NULL);
}

static void run_sequence(producer *p, uint64_t seq)
{
	stress *st = p->st;
	uint32_t L = st->cfg.n_layers;
	uint64_t *next = calloc(L, sizeof(*next));
	void **keep = calloc((size_t)L * st->tokens, sizeof(*keep));
	size_t nkeep = 0;
	if (tkv_seq_open(st->rt, seq)) {
		p->failures++;
		goto out;
	}
	for (bool more = true; more;) {
		more = false;
		for (uint32_t l = 0; l < L; l++) {
			if (next[l] >= st->tokens)
				continue;
			uint32_t n = 1 + (uint32_t)(next_rand(&p->seed) % 40);
			if (n > st->tokens - next[l])
				n = (uint32_t)(st->tokens - next[l]);
			p->failures += store_batch(st, seq, l, next[l], n, &keep[nkeep++]) != 0;
			next[l] += n;
			more |= next[l] < st->tokens;
			/* read back something stored so far, maybe still pending */
			if (next_rand(&p->seed) % 4 == 0) {
				uint32_t from = (uint32_t)(next_rand(&p->seed) % next[l]);
				p->failures += verify_range(st, seq, l, from,
							    (uint32_t)(next[l] - from),
							    next_rand(&p->seed) & 1);
			}
		}
	}
	p->failures += tkv_seq_sync(st->rt, seq) != 0;
out:
	for (size_t i = 0; i < nkeep; i++)
		free(keep[i]);
	free(keep);
	free(next);
}

static void *producer_main(void *arg)
{
	producer *p = arg;
	stress *st = p->st;
	for (uint64_t s = p->index; s < st->seqs; s += st->producers)
		run_sequence(p, 1000 + s * 7919); /* sparse, engine-like ids */
	return NULL;
}

/* streamed: rows of 512 bytes (4 heads x 64 dims bf16), so even one token
 * is long enough for the streaming kernels, and the hot copy forced to
 * stream: the workers' grouped copies, one fence per run (worker.c),
 * which a hot tier smaller than the LLC never reaches otherwise. */
static void run_stress(bool use_view, bool streamed)
{
	stress st = {0};
	tkv_config_default(&st.cfg);
	st.cfg.n_layers = 8;
	st.cfg.n_kv_heads = streamed ? 4 : 2;
	st.cfg.head_dim = streamed ? 64 : 8;
	st.cfg.dtype = TKV_DTYPE_BF16;
	st.cfg.block_tokens = 16;
	st.cfg.ring_slots = 64;
	st.cfg.hot_bytes = 256ull << 20;
	st.row = (size_t)st.cfg.n_kv_heads * st.cfg.head_dim * 2;
	st.producers = env_u32("TKV_STRESS_PRODUCERS", 4);
	st.seqs = env_u32("TKV_STRESS_SEQS", 64);
	st.tokens = env_u32("TKV_STRESS_TOKENS", 96);
	st.use_view = use_view;
	tkv__open_opts opts = {
		.queue = TKV__QUEUE_RING,
		.hot_copy = streamed ? TKV__HOT_COPY_STREAM : TKV__HOT_COPY_AUTO,
	};
	cr_assert_eq(tkv__open_ex(&st.cfg, &opts, &st.rt), 0, "%s", tkv_last_error());
	if (streamed)
		cr_assert(st.rt->hot_copy == st.rt->kern->copy_stream_unfenced);

	producer *ps = calloc(st.producers, sizeof(*ps));
	pthread_t *th = calloc(st.producers, sizeof(*th));
	for (uint32_t i = 0; i < st.producers; i++) {
		ps[i] = (producer){&st, i, 12345u + i, 0};
		pthread_create(&th[i], NULL, producer_main, &ps[i]);
	}
	int failures = 0;
	for (uint32_t i = 0; i < st.producers; i++) {
		pthread_join(th[i], NULL);
		failures += ps[i].failures;
	}
	cr_assert_eq(failures, 0, "%d stores or read-backs failed", failures);

	/* every sequence, every layer, whole range, from this thread */
	for (uint64_t s = 0; s < st.seqs; s++)
		for (uint32_t l = 0; l < st.cfg.n_layers; l++)
			cr_assert_eq(verify_range(&st, 1000 + s * 7919, l, 0, st.tokens, use_view), 0,
				     "sequence %llu layer %u", (unsigned long long)s, l);

	tkv_stats stats = {.struct_size = sizeof(stats)};
	cr_assert_eq(tkv_stats_get(st.rt, &stats), 0);
	uint64_t stored = 0;
	for (uint32_t w = 0; w < stats.n_workers; w++)
		stored += stats.workers[w].tokens_stored;
	cr_assert_eq(stored, (uint64_t)st.seqs * st.cfg.n_layers * st.tokens);
	cr_assert_eq(stats.open_sequences, st.seqs);
	cr_assert_eq(stats.pinned_blocks, 0);
	uint64_t blocks_per_seq = st.cfg.n_layers * ((st.tokens + 15) / 16);
	cr_assert_eq(stats.hot_blocks_used, st.seqs * blocks_per_seq);
	free(ps);
	free(th);
	tkv_close(st.rt);
}

Test(stress, producers_sequences_layers_copy_readback, .timeout = 600)
{
	run_stress(false, false);
}

Test(stress, producers_sequences_layers_view_readback, .timeout = 600)
{
	run_stress(true, false);
}

Test(stress, streamed_grouped_copies_copy_and_view_readback, .timeout = 600)
{
	run_stress(false, true);
	run_stress(true, true);
}
