/*
 * shared_node_main.c - "another serving node" for tests/shared_tier.c: a
 * separate process with its own runtime (own hot tier, no cold tier) that
 * computes a prompt's KV and puts its blocks in the shared tier, then exits.
 *
 *   shared_node SEEDS MODEL FIRST_TOKEN N_TOKENS SEED through|drop
 *
 * through: write-through (blocks go to the cluster when published).
 * drop:    the default policy; the hot tier holds 8 blocks, so storing
 *          further prompts after the first drops the first prompt's blocks
 *          (for space), which sends them to the cluster.
 * Waits until the writer has settled every queued block, prints the
 * shared-tier counters on one line and exits 0 if every block of the first
 * prompt was stored or found already there, 1 otherwise, 2 on a usage or
 * API error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/cache_config.h"
#include "tests/cache_helpers.h"
#include "tierkv.h"

static tkv_stats stats(tkv_runtime *rt)
{
	tkv_stats st;
	memset(&st, 0, sizeof(st));
	st.struct_size = sizeof(st);
	tkv_stats_get(rt, &st);
	return st;
}

/* Opens seq with n tokens from `first`, stores them all, syncs, closes. */
static int run(tkv_runtime *rt, uint64_t seq, uint32_t first, size_t n, uint64_t seed)
{
	uint32_t *t = malloc(n * sizeof(*t));
	for (size_t i = 0; i < n; i++)
		t[i] = first + (uint32_t)i;
	ckv_expect e;
	ckv_expect_make(&e, t, n, seed, LAYERS, ROW);
	uint64_t cached = 0;
	int rc = tkv_seq_open_tokens(rt, seq, t, n, NULL, &cached);
	if (!rc)
		rc = ckv_store(rt, seq, &e, cached, 7);
	if (!rc)
		rc = tkv_seq_sync(rt, seq);
	if (!rc)
		rc = tkv_seq_close(rt, seq);
	ckv_expect_free(&e);
	free(t);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: %s SEEDS MODEL FIRST_TOKEN N_TOKENS SEED through|drop\n",
			argv[0]);
		return 2;
	}
	bool through = strcmp(argv[6], "through") == 0;
	uint32_t first = (uint32_t)strtoul(argv[3], NULL, 10);
	size_t n = strtoull(argv[4], NULL, 10);
	uint64_t seed = strtoull(argv[5], NULL, 10);
	tkv_config c = cache_config(argv[2], 8); /* 8 whole blocks */
	c.shared_enabled = true;
	c.shared_seeds = argv[1];
	c.shared_write = through ? TKV_SHARED_WRITE_THROUGH : TKV_SHARED_WRITE_ON_DROP;
	tkv_runtime *rt = NULL;
	if (tkv_open(&c, &rt)) {
		fprintf(stderr, "shared_node: open: %s\n", tkv_last_error());
		return 2;
	}
	int rc = run(rt, 1, first, n, seed);
	/* drop: other prompts push the first one's blocks out of the hot tier */
	for (uint64_t s = 2; !rc && !through && s < 6; s++)
		rc = run(rt, s, first + 1000000u * (uint32_t)s, 8 * BT, seed);
	if (rc) {
		fprintf(stderr, "shared_node: %s\n", tkv_last_error());
		tkv_close(rt);
		return 2;
	}
	tkv_stats st = stats(rt);
	for (int i = 0; i < 10000; i++) { /* at most ~10 s */
		st = stats(rt);
		if (st.shared_writes_stored + st.shared_writes_existed + st.shared_writes_failed ==
		    st.shared_writes_queued)
			break;
		usleep(1000);
	}
	printf("shared_node: queued %llu stored %llu existed %llu failed %llu dropped %llu\n",
	       (unsigned long long)st.shared_writes_queued,
	       (unsigned long long)st.shared_writes_stored,
	       (unsigned long long)st.shared_writes_existed,
	       (unsigned long long)st.shared_writes_failed,
	       (unsigned long long)st.shared_writes_dropped);
	tkv_close(rt);
	uint64_t want = n / BT;
	return st.shared_writes_stored + st.shared_writes_existed >= want ? 0 : 1;
}
