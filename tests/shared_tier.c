/*
 * shared_tier.c - the shared tier through the public API (issue 12): two
 * runtimes in two processes share prefixes through a real Redis Cluster;
 * what comes back is verified (a value overwritten with garbage, or with a
 * valid-looking record whose payload was altered, is a miss); a server that
 * never answers or is not there makes misses within the timeout; a full
 * server (maxmemory, noeviction) makes failed writes, counted; the config
 * is checked.
 *
 * Servers: the ctest fixture `redis` (tests/redis/servers.sh) runs a
 * 3-master cluster and a standalone server on loopback for the whole run
 * (tests/shared_helpers.h finds them). Every read-back is
 * byte-exact against tests/cache_helpers.h (KV is a function of the token
 * prefix, so a wrong block reads back as wrong bytes).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/cache_small.h"
#include "tests/shared_helpers.h"
#include "tiers/block_key.h"
#include "tierkv.h"

extern char **environ;

/* The fixture's seeds ("cluster" or "standalone"; kept for the process). */
static const char *server(const char *which)
{
	static char *seeds[2];
	int i = strcmp(which, "cluster") != 0;
	if (!seeds[i])
		seeds[i] = fixture_seeds(which);
	return seeds[i];
}

/* A model id no other test run uses: the cluster outlives a test. */
static const char *fresh_model(char *buf, size_t cap, const char *what)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, cap, "shared-%s-%d-%lld-%ld", what, (int)getpid(), (long long)ts.tv_sec,
		 ts.tv_nsec);
	return buf;
}

static tkv_config shared_config(const char *model, const char *seeds, uint64_t units)
{
	tkv_config c = cache_config(model, units);
	c.shared_enabled = true;
	c.shared_seeds = seeds;
	c.shared_timeout_ms = 300;
	c.shared_connect_timeout_ms = 300;
	return c;
}

/* Runs tests/shared_node_main.c: another process, another runtime. */
static int run_node(const char *seeds, const char *model, uint32_t first, size_t n,
		    uint64_t seed, const char *mode)
{
	char a_first[32], a_n[32], a_seed[32];
	snprintf(a_first, sizeof(a_first), "%u", first);
	snprintf(a_n, sizeof(a_n), "%zu", n);
	snprintf(a_seed, sizeof(a_seed), "%llu", (unsigned long long)seed);
	char *argv[] = {(char *)TKV_SHARED_NODE, (char *)seeds, (char *)model, a_first, a_n,
			a_seed, (char *)mode, NULL};
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, TKV_SHARED_NODE, NULL, NULL, argv, environ), 0);
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "shared_node died");
	return WEXITSTATUS(status);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- two processes ------------------------------------------------------ */

/* Node 1 (another process) computes a prompt; node 2 opens the same prompt
 * and attaches every full block from the cluster, byte-exact. */
static void shared_between_processes(const char *mode)
{
	const char *seeds = server("cluster");
	char model[128];
	fresh_model(model, sizeof(model), mode);
	const size_t n = 6 * BT + 5;
	cr_assert_eq(run_node(seeds, model, 7000, n, 'm', mode), 0, "node 1 did not store");

	tkv_config c = shared_config(model, seeds, 64);
	tkv_runtime *rt = open_rt(&c);
	uint32_t *t = tokens_from(7000, n);
	ckv_expect e;
	cr_assert_eq(run_prompt(rt, 1, t, n, NULL, 'm', &e), 6 * BT,
		     "node 2 did not attach node 1's blocks");
	cr_assert_eq(ckv_check_all(rt, 1, &e, BT), 0, "attached bytes differ");
	tkv_stats st = ckv_stats(rt);
	cr_assert_eq(st.cache_hit_blocks_shared, 6);
	cr_assert_eq(st.shared_fetch_hits, 6);
	cr_assert_eq(st.shared_fetch_corrupt, 0);
	cr_assert_eq(st.shared_nodes_up, 3, "nodes up %u", st.shared_nodes_up);
	cr_assert_geq(st.shared_bytes_received, 6 * 3 * 4096);
	/* the Prometheus text says the same */
	char text[65536];
	cr_assert_lt(tkv_metrics_prometheus(rt, text, sizeof(text)), (int64_t)sizeof(text));
	cr_assert_not_null(strstr(text, "\ntierkv_shared_fetch_hits_total 6\n"));
	cr_assert_not_null(strstr(text, "\ntierkv_cache_hit_blocks_shared_total 6\n"));
	cr_assert_not_null(strstr(text, "\ntierkv_shared_nodes_up 3\n"));
	/* now local: a third sequence attaches them from RAM, not the cluster */
	ckv_expect e3;
	cr_assert_eq(run_prompt(rt, 3, t, n, NULL, 'm', &e3), 6 * BT);
	cr_assert_eq(ckv_check_all(rt, 3, &e, BT), 0);
	cr_assert_eq(ckv_stats(rt).shared_fetch_hits, 6, "fetched again");
	tkv_close(rt);
	ckv_expect_free(&e);
	ckv_expect_free(&e3);
	free(t);
}

Test(shared_tier, write_through_blocks_reach_another_process)
{
	shared_between_processes("through");
}

Test(shared_tier, dropped_blocks_reach_another_process)
{
	shared_between_processes("drop");
}

Test(shared_tier, lookup_counts_blocks_the_cluster_holds)
{
	const char *seeds = server("cluster");
	char model[128];
	fresh_model(model, sizeof(model), "lookup");
	cr_assert_eq(run_node(seeds, model, 100, 4 * BT, 'l', "through"), 0);
	tkv_config c = shared_config(model, seeds, 64);
	tkv_runtime *rt = open_rt(&c);
	uint32_t *t = tokens_from(100, 6 * BT);
	tkv_cache_match m = {.struct_size = sizeof(m)};
	cr_assert_eq(tkv_cache_lookup(rt, t, 6 * BT, NULL, &m), 0);
	cr_assert_eq(m.shared_blocks, 4);
	cr_assert_eq(m.tokens, 4 * BT);
	cr_assert_eq(m.hot_blocks + m.cold_blocks, 0);
	/* lookup attaches nothing */
	cr_assert_eq(ckv_stats(rt).shared_fetch_blocks, 0);
	tkv_close(rt);
	free(t);
}

/* ---- what comes back is verified ---------------------------------------- */

/* The key name of block b of the prompt (tiers/shared_tier.h's format). */
static void block_key_name(const char *model, const uint32_t *t, size_t b, char *out, size_t cap)
{
	tkv__key ns = tkv__key_namespace(model, LAYERS, HEADS, DIM, TKV_DTYPE_F32, BT);
	tkv__key keys[64];
	tkv__key_chain(ns, NULL, 0, t, BT, b + 1, keys);
	snprintf(out, cap, "tkv1:%016llx%016llx:%016llx%016llx", (unsigned long long)ns.hi,
		 (unsigned long long)ns.lo, (unsigned long long)keys[b].hi,
		 (unsigned long long)keys[b].lo);
}

/* redis-cli against the cluster (-c follows redirections); value from a
 * file with -x. 0 on success. */
static int redis_cli_set(const char *seeds, const char *key, const char *file, const char *literal)
{
	char host[64] = "127.0.0.1";
	int port = 0;
	cr_assert_eq(sscanf(seeds, "%63[^:]:%d", host, &port), 2);
	char cmd[512];
	if (file)
		snprintf(cmd, sizeof(cmd), "redis-cli -c -h %s -p %d -x SET %s < %s >/dev/null", host,
			 port, key, file);
	else
		snprintf(cmd, sizeof(cmd), "redis-cli -c -h %s -p %d SET %s %s >/dev/null", host, port,
			 key, literal);
	return system(cmd);
}

static int redis_cli_get_to(const char *seeds, const char *key, const char *file)
{
	char host[64] = "127.0.0.1";
	int port = 0;
	cr_assert_eq(sscanf(seeds, "%63[^:]:%d", host, &port), 2);
	char cmd[512];
	/* --raw prints the value with a newline after it: strip it with head */
	snprintf(cmd, sizeof(cmd),
		 "redis-cli -c -h %s -p %d --raw GET %s > %s.nl && head -c -1 %s.nl > %s && rm %s.nl",
		 host, port, key, file, file, file, file);
	return system(cmd);
}

enum lie { GARBAGE, FLIPPED_PAYLOAD, OTHER_BLOCK };

/* Node 1 stores 6 blocks; block 3's value is replaced; node 2 attaches
 * blocks 0..2 only, counts one corrupt value, and reads right bytes. */
static void corrupted_block_is_a_miss(enum lie how)
{
	const char *seeds = server("cluster");
	char model[128];
	bool garbage = how == GARBAGE;
	fresh_model(model, sizeof(model), how == GARBAGE ? "garbage" : how == OTHER_BLOCK ? "other" : "flip");
	const size_t n = 6 * BT;
	cr_assert_eq(run_node(seeds, model, 300, n, 'g', "through"), 0);
	uint32_t *t = tokens_from(300, n);
	char key[128];
	block_key_name(model, t, 3, key, sizeof(key));
	if (garbage) {
		cr_assert_eq(redis_cli_set(seeds, key, NULL, "garbage"), 0);
	} else if (how == OTHER_BLOCK) {
		/* a perfectly valid record, of block 2, under block 3's key */
		char other[128], file[] = "/tmp/tierkv-shared-XXXXXX";
		block_key_name(model, t, 2, other, sizeof(other));
		int fd = mkstemp(file);
		cr_assert_geq(fd, 0);
		close(fd);
		cr_assert_eq(redis_cli_get_to(seeds, other, file), 0);
		cr_assert_eq(redis_cli_set(seeds, key, file, NULL), 0);
		unlink(file);
	} else {
		/* a record of the right length whose header checks out, with
		 * one payload byte of layer 1 altered: only its CRC can tell */
		char file[] = "/tmp/tierkv-shared-XXXXXX";
		int fd = mkstemp(file);
		cr_assert_geq(fd, 0);
		close(fd);
		cr_assert_eq(redis_cli_get_to(seeds, key, file), 0);
		FILE *f = fopen(file, "r+b");
		cr_assert_not_null(f);
		cr_assert_eq(fseek(f, 0, SEEK_END), 0);
		long len = ftell(f);
		cr_assert_eq(len, 3 * 4096, "the value is a whole record (got %ld bytes)", len);
		cr_assert_eq(fseek(f, 2 * 4096 + 100, SEEK_SET), 0); /* layer 1 */
		int ch = fgetc(f);
		cr_assert_eq(fseek(f, 2 * 4096 + 100, SEEK_SET), 0);
		fputc(ch ^ 0x40, f);
		fclose(f);
		cr_assert_eq(redis_cli_set(seeds, key, file, NULL), 0);
		unlink(file);
	}
	tkv_config c = shared_config(model, seeds, 64);
	tkv_runtime *rt = open_rt(&c);
	ckv_expect e;
	cr_assert_eq(run_prompt(rt, 1, t, n, NULL, 'g', &e), 3 * BT,
		     "attached past the corrupted block");
	cr_assert_eq(ckv_check_all(rt, 1, &e, BT), 0);
	tkv_stats st = ckv_stats(rt);
	cr_assert_eq(st.shared_fetch_corrupt, 1);
	cr_assert_eq(st.cache_hit_blocks_shared, 3);
	tkv_close(rt);
	ckv_expect_free(&e);
	free(t);
}

Test(shared_tier, a_value_overwritten_with_garbage_is_a_miss)
{
	corrupted_block_is_a_miss(GARBAGE);
}

Test(shared_tier, a_record_with_an_altered_payload_is_a_miss)
{
	corrupted_block_is_a_miss(FLIPPED_PAYLOAD);
}

Test(shared_tier, another_blocks_record_under_a_key_is_a_miss)
{
	corrupted_block_is_a_miss(OTHER_BLOCK);
}

Test(shared_tier, another_model_never_matches)
{
	const char *seeds = server("cluster");
	char model[128], other[160];
	fresh_model(model, sizeof(model), "modelA");
	snprintf(other, sizeof(other), "%s-b", model);
	cr_assert_eq(run_node(seeds, model, 500, 4 * BT, 'a', "through"), 0);
	tkv_config c = shared_config(other, seeds, 64);
	tkv_runtime *rt = open_rt(&c);
	uint32_t *t = tokens_from(500, 4 * BT);
	ckv_expect e;
	cr_assert_eq(run_prompt(rt, 1, t, 4 * BT, NULL, 'b', &e), 0);
	cr_assert_eq(ckv_check_all(rt, 1, &e, BT), 0);
	tkv_close(rt);
	ckv_expect_free(&e);
	free(t);
}

/* ---- a server that fails ------------------------------------------------ */

/* A TCP port that accepts connections (the kernel's backlog) and never
 * answers a byte: the worst server. */
static int silent_listener(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 64), 0);
	socklen_t len = sizeof(a);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Opening a sequence against a server that never answers: the call
 * returns, without a hit, within a bound of the timeout (generous: this
 * pins "no hang", not a latency), and the timeout is counted. */
Test(shared_tier, a_server_that_never_answers_costs_at_most_the_timeout)
{
	int port, fd = silent_listener(&port);
	char seeds[64];
	snprintf(seeds, sizeof(seeds), "127.0.0.1:%d", port);
	tkv_config c = shared_config("silent", seeds, 64);
	c.shared_timeout_ms = 200;
	tkv_runtime *rt = open_rt(&c);
	uint32_t *t = tokens_from(1, 4 * BT);
	uint64_t cached = 99;
	double t0 = now_s();
	cr_assert_eq(tkv_seq_open_tokens(rt, 1, t, 4 * BT, NULL, &cached), 0);
	double took = now_s() - t0;
	cr_assert_eq(cached, 0);
	cr_assert_lt(took, 10.0, "open took %.1f s against a 0.2 s timeout", took);
	tkv_stats st = ckv_stats(rt);
	cr_assert_geq(st.shared_err_timeout + st.shared_err_down, 1, "the failure was not counted");
	cr_assert_eq(st.cache_hit_blocks_shared, 0);
	/* the sequence works as a local one */
	ckv_expect e;
	ckv_expect_make(&e, t, 4 * BT, 's', LAYERS, ROW);
	cr_assert_eq(ckv_store(rt, 1, &e, 0, 7), 0);
	cr_assert_eq(tkv_seq_sync(rt, 1), 0);
	cr_assert_eq(ckv_check_all(rt, 1, &e, BT), 0);
	tkv_close(rt);
	close(fd);
	ckv_expect_free(&e);
	free(t);
}

Test(shared_tier, no_server_at_all_is_a_miss)
{
	int port, fd = silent_listener(&port);
	close(fd); /* a port nobody listens on now */
	char seeds[64];
	snprintf(seeds, sizeof(seeds), "127.0.0.1:%d", port);
	tkv_config c = shared_config("absent", seeds, 64);
	tkv_runtime *rt = open_rt(&c);
	uint32_t *t = tokens_from(1, 4 * BT);
	ckv_expect e;
	cr_assert_eq(run_prompt(rt, 1, t, 4 * BT, NULL, 'x', &e), 0);
	cr_assert_eq(ckv_check_all(rt, 1, &e, BT), 0);
	tkv_stats st = ckv_stats(rt);
	cr_assert_geq(st.shared_err_conn + st.shared_err_down, 1);
	tkv_cache_match m = {.struct_size = sizeof(m)};
	cr_assert_eq(tkv_cache_lookup(rt, t, 4 * BT, NULL, &m), 0);
	cr_assert_eq(m.shared_blocks, 0);
	tkv_close(rt);
	ckv_expect_free(&e);
	free(t);
}

static void standalone_cli(const char *seeds, const char *args)
{
	char host[64];
	int port = 0;
	cr_assert_eq(sscanf(seeds, "%63[^:]:%d", host, &port), 2);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "redis-cli -h %s -p %d %s >/dev/null", host, port, args);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void unlimit_standalone(void)
{
	standalone_cli(server("standalone"), "CONFIG SET maxmemory 0");
}

/* A full server that refuses writes (maxmemory with noeviction): the
 * writes fail and are counted; the sequence keeps every byte. */
Test(shared_tier, a_full_server_fails_writes_and_says_so, .fini = unlimit_standalone)
{
	const char *seeds = server("standalone");
	standalone_cli(seeds, "CONFIG SET maxmemory-policy noeviction");
	standalone_cli(seeds, "CONFIG SET maxmemory 1");
	char model[128];
	fresh_model(model, sizeof(model), "oom");
	tkv_config c = shared_config(model, seeds, 64);
	c.shared_write = TKV_SHARED_WRITE_THROUGH;
	tkv_runtime *rt = open_rt(&c);
	uint32_t *t = tokens_from(900, 4 * BT);
	ckv_expect e;
	cr_assert_eq(run_prompt(rt, 1, t, 4 * BT, NULL, 'o', &e), 0);
	tkv_stats st = ckv_stats(rt);
	for (int i = 0; i < 10000 && st.shared_writes_failed < 4; i++, usleep(1000))
		st = ckv_stats(rt);
	cr_assert_eq(st.shared_writes_failed, 4, "failed writes %llu",
		     (unsigned long long)st.shared_writes_failed);
	cr_assert_geq(st.shared_err_oom, 4);
	cr_assert_eq(st.shared_writes_stored, 0);
	cr_assert_eq(ckv_check_all(rt, 1, &e, BT), 0);
	tkv_close(rt);
	ckv_expect_free(&e);
	free(t);
}

/* ---- config ------------------------------------------------------------- */

Test(shared_tier, config_is_checked)
{
	tkv_config c = cache_config("m", 64);
	c.shared_enabled = true;
	c.shared_seeds = NULL;
	cr_assert_eq(tkv_config_validate(&c), -EINVAL);
	cr_assert_not_null(strstr(tkv_last_error(), "shared_seeds"));
	c.shared_seeds = "127.0.0.1:1";
	c.model_id = NULL;
	cr_assert_eq(tkv_config_validate(&c), -EINVAL);
	cr_assert_not_null(strstr(tkv_last_error(), "model_id"));
	c.model_id = "m";
	c.shared_timeout_ms = 60001;
	cr_assert_eq(tkv_config_validate(&c), -EINVAL);
	c.shared_timeout_ms = 0;
	c.shared_write = (tkv_shared_write)7;
	cr_assert_eq(tkv_config_validate(&c), -EINVAL);
	c.shared_write = TKV_SHARED_WRITE_ON_DROP;
	cr_assert_eq(tkv_config_validate(&c), 0);
	/* a seed list the client cannot parse is refused at open */
	c.shared_seeds = "no-port-here";
	tkv_runtime *rt = NULL;
	cr_assert_eq(tkv_open(&c, &rt), -EINVAL);
	cr_assert_null(rt);
	/* off: the seeds are not even looked at */
	c.shared_enabled = false;
	cr_assert_eq(tkv_config_validate(&c), 0);
}

/* ---- a node killed in the middle of a run ------------------------------- */

/* Node 1 stores 8 blocks in a private cluster; the master holding block 3
 * is killed; node 2 attaches exactly the blocks before the first one that
 * lived there, byte-exact, counts the failure, and its own write-through
 * writes to the dead master fail and are counted, without a hang. */
Test(shared_tier, a_killed_master_costs_only_its_blocks)
{
	char *seeds = private_start("kill", "cluster", "3");
	char model[128];
	fresh_model(model, sizeof(model), "kill");
	const size_t nb = 8, n = nb * BT;
	cr_assert_eq(run_node(seeds, model, 4000, n, 'k', "through"), 0);
	uint32_t *t = tokens_from(4000, n);

	/* which master holds each block (it alone answers EXISTS with 1) */
	int ports[3], owner[8];
	const char *p = seeds;
	for (int i = 0; i < 3; i++) {
		ports[i] = atoi(strchr(p, ':') + 1);
		p = strchr(p, ',') ? strchr(p, ',') + 1 : p;
	}
	for (size_t b = 0; b < nb; b++) {
		char key[128];
		block_key_name(model, t, b, key, sizeof(key));
		owner[b] = -1;
		for (int i = 0; i < 3; i++)
			if (strcmp(sh("redis-cli -p %d EXISTS %s", ports[i], key), "1") == 0)
				owner[b] = i;
		cr_assert_geq(owner[b], 0, "block %zu is on no master", b);
	}
	int dead = owner[3];
	size_t expect = 0;
	while (owner[expect] != dead)
		expect++;
	pid_t pid = server_pid(ports[dead]);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	for (int i = 0; i < 200 && kill(pid, 0) == 0; i++)
		usleep(10000);

	tkv_config c = shared_config(model, seeds, 64);
	c.shared_write = TKV_SHARED_WRITE_THROUGH;
	tkv_runtime *rt = open_rt(&c);
	ckv_expect e;
	double t0 = now_s();
	cr_assert_eq(run_prompt(rt, 1, t, n, NULL, 'k', &e), expect * BT);
	cr_assert_lt(now_s() - t0, 20.0, "a dead master hung the call");
	cr_assert_eq(ckv_check_all(rt, 1, &e, BT), 0);
	tkv_stats st = ckv_stats(rt);
	cr_assert_eq(st.cache_hit_blocks_shared, expect);
	cr_assert_geq(st.shared_err_conn + st.shared_err_down + st.shared_err_timeout, 1);
	/* the blocks it computed are written through: the dead master's fail */
	for (int i = 0; i < 10000; i++, usleep(1000)) {
		st = ckv_stats(rt);
		if (st.shared_writes_stored + st.shared_writes_existed + st.shared_writes_failed ==
		    st.shared_writes_queued)
			break;
	}
	cr_assert_eq(st.shared_writes_queued, nb - expect);
	size_t on_dead = 0;
	for (size_t b = expect; b < nb; b++)
		on_dead += owner[b] == dead;
	cr_assert_eq(st.shared_writes_failed, on_dead);
	/* the others node 1 had written: SET NX found them and sent nothing new */
	cr_assert_eq(st.shared_writes_existed, nb - expect - on_dead);
	cr_assert_eq(st.shared_writes_stored, 0);
	tkv_close(rt);
	private_stop("kill");
	ckv_expect_free(&e);
	free(t);
	free(seeds);
}

/* ---- a fetch into a full hot tier --------------------------------------- */

/* Every hot block is held by a live sequence: the blocks the cluster has
 * cannot be attached. The open still succeeds at once, attaching nothing,
 * and it is not counted as a refused store (the engine's own stores of
 * those tokens get a store's backpressure). */
Test(shared_tier, a_full_hot_tier_stops_the_fetch_without_failing)
{
	const char *seeds = server("cluster");
	char model[128];
	fresh_model(model, sizeof(model), "full");
	cr_assert_eq(run_node(seeds, model, 6000, 4 * BT, 'f', "through"), 0);
	tkv_config c = shared_config(model, seeds, 4); /* 4 whole blocks */
	tkv_runtime *rt = open_rt(&c);
	uint32_t *other = tokens_from(90000, 4 * BT);
	ckv_expect eo;
	cr_assert_eq(run_prompt(rt, 1, other, 4 * BT, NULL, 'o', &eo), 0); /* fills it */
	uint32_t *t = tokens_from(6000, 4 * BT);
	uint64_t cached = 99;
	cr_assert_eq(tkv_seq_open_tokens(rt, 2, t, 4 * BT, NULL, &cached), 0, "%s",
		     tkv_last_error());
	cr_assert_eq(cached, 0);
	tkv_stats st = ckv_stats(rt);
	cr_assert_eq(st.enospc_events, 0, "a fetch counted as a refused store");
	cr_assert_geq(st.shared_fetch_hits, 1, "the cluster had the blocks");
	cr_assert_eq(st.cache_hit_blocks_shared, 0);
	cr_assert_eq(ckv_check_all(rt, 1, &eo, BT), 0, "the live sequence lost bytes");
	tkv_close(rt);
	ckv_expect_free(&eo);
	free(other);
	free(t);
}

/* Only a drop for space offers a block to the cluster (on-drop policy):
 * tkv_cache_drop (the model's weights changed, say) and tkv_close write
 * nothing there, so another node never finds those blocks. */
Test(shared_tier, cache_drop_and_close_write_nothing_to_the_cluster)
{
	const char *seeds = server("cluster");
	char model[128];
	fresh_model(model, sizeof(model), "nodrop");
	const size_t n = 4 * BT;
	uint32_t *t = tokens_from(300, n);
	tkv_config c = shared_config(model, seeds, 64);
	tkv_runtime *rt = open_rt(&c);
	ckv_expect e;
	cr_assert_eq(run_prompt(rt, 1, t, n, NULL, 'n', &e), 0);
	cr_assert_eq(tkv_seq_close(rt, 1), 0);
	cr_assert_eq(tkv_cache_drop(rt), 4, "%s", tkv_last_error());
	cr_assert_eq(ckv_stats(rt).shared_writes_queued, 0, "a drop not for space");
	ckv_expect e2;
	cr_assert_eq(run_prompt(rt, 2, t, n, NULL, 'n', &e2), 0, "dropped, not cached");
	ckv_expect_free(&e2);
	cr_assert_eq(tkv_seq_close(rt, 2), 0);
	tkv_close(rt);
	/* another runtime: the cluster has none of them */
	rt = open_rt(&c);
	tkv_cache_match m = {.struct_size = sizeof(m)};
	cr_assert_eq(tkv_cache_lookup(rt, t, n, NULL, &m), 0);
	cr_assert_eq(m.shared_blocks, 0);
	cr_assert_eq(m.tokens, 0);
	tkv_close(rt);
	ckv_expect_free(&e);
	free(t);
}
