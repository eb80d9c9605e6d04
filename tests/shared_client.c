/*
 * shared_client.c - the shared tier's Redis Cluster client against real
 * servers: the fixture's 3-master cluster and standalone server
 * (tests/redis/servers.sh; see shared_helpers.h). Round trips of set_nx,
 * get and exists with values whose bytes name their key, keys spread over
 * every master, the slot function against the server's CLUSTER KEYSLOT,
 * MOVED after a slot migrated, ASK during a migration, a buffer too small
 * for its value, bad configs, unreachable seeds, and several threads at
 * once. Tests that stop or kill a server are in shared_faults.c, on
 * private servers.
 *
 * Keys carry a random run prefix, so running this binary again against
 * the same servers never meets an earlier run's keys.
 */
#define _GNU_SOURCE
#include "tests/shared_helpers.h"
#include "tiers/shared_impl.h" /* tkv__shared_resolve */

#include <netdb.h>
#include <pthread.h>
#include <unistd.h>

static char prefix[32];
static void setup(void)
{
	srand((unsigned)tkv__now_ns());
	snprintf(prefix, sizeof(prefix), "t%08x", (unsigned)rand());
}
TestSuite(shared_client, .init = setup, .timeout = 120);

/* --- no server needed --- */

Test(shared_client, bad_config_is_einval_with_a_message)
{
	static const char *const bad[] = {"", "localhost", "host:", ":6379", "h:0", "h:65536",
					  "h:12x", "a:1,,b:2", "a:1,"};
	tkv__shared *s = (tkv__shared *)1;
	cr_assert_eq(tkv__shared_open(NULL, &s), -EINVAL);
	cr_assert_null(s);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tkv__shared_cfg cfg = {.seeds = bad[i]};
		cr_expect_eq(tkv__shared_open(&cfg, &s), -EINVAL, "seeds \"%s\"", bad[i]);
		cr_expect_null(s);
		cr_expect(strstr(tkv_last_error(), "seeds") != NULL, "message for \"%s\": %s", bad[i],
			  tkv_last_error());
	}
	tkv__shared_cfg none = {0};
	cr_assert_eq(tkv__shared_open(&none, &s), -EINVAL);
	cr_assert(strstr(tkv_last_error(), "seeds"));
}

Test(shared_client, unreachable_seed_opens_and_every_op_misses)
{
	/* Port 1 on loopback: nothing listens there, the connect is refused. */
	tkv__shared *s = open_client("127.0.0.1:1", 200);
	tkv__shared_conn *c = tkv__shared_conn_new(s);
	char buf[16];
	tkv__shared_op op = key_op("k");
	op.buf = buf, op.cap = sizeof(buf);
	uint64_t t0 = tkv__now_ns();
	cr_assert_eq(tkv__shared_get(c, &op, 1), 0);
	cr_assert_eq(op.status, -EHOSTDOWN);
	cr_assert_lt(tkv__now_ns() - t0, 1000000000ull, "a refused seed must not stall an op");
	tkv__shared_stats st;
	tkv__shared_get_stats(s, &st);
	cr_assert_geq(st.map_refresh_failures, 1);
	cr_assert_eq(st.gets, 1);
	cr_assert_eq(st.err_down, 1);
	cr_assert_eq(st.get_hits + st.get_misses, 0);
	tkv__shared_conn_free(c);
	tkv__shared_close(s);
}

/* --- against the fixture's servers --- */

Test(shared_client, slot_equals_cluster_keyslot)
{
	char *seeds = fixture_seeds("cluster");
	int port = first_port(seeds);
	char cmd[8192] = "", key[64];
	size_t off = 0;
	uint16_t mine[100];
	for (int i = 0; i < 100; i++) {
		/* Some keys with a hash tag, some with braces but no tag. */
		snprintf(key, sizeof(key), i % 3 == 0 ? "k%d{t%d}x" : i % 3 == 1 ? "{}%d-%d" : "%d:%d", rand(),
			 i);
		mine[i] = tkv__shared_key_slot(key, strlen(key));
		off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, "CLUSTER KEYSLOT '%s'\n", key);
	}
	char path[128];
	snprintf(path, sizeof(path), "/tmp/tkv-keyslot-%d", getpid());
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(cmd, f);
	fclose(f);
	const char *out = sh("redis-cli -p %d < %s", port, path);
	unlink(path);
	for (int i = 0; i < 100; i++) {
		char *end;
		long v = strtol(out, &end, 10);
		cr_assert_neq(end, out, "short redis-cli output");
		cr_expect_eq(v, mine[i], "key %d: server says %ld, we say %u", i, v, mine[i]);
		out = end;
	}
	free(seeds);
}

enum { N_KEYS = 48 };

/* Sets N_KEYS keys of assorted sizes (0 .. ~1.5 MiB), reads them back
 * byte-identical, checks exists, NX and absent keys, and the counters. */
static void round_trip(const char *seeds, const char *tag)
{
	tkv__shared *s = open_client(seeds, 2000);
	tkv__shared_conn *c = tkv__shared_conn_new(s);
	char keys[N_KEYS][64];
	size_t lens[N_KEYS];
	unsigned char *vals[N_KEYS], *bufs[N_KEYS];
	tkv__shared_op ops[N_KEYS];
	for (int i = 0; i < N_KEYS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "%s:%s:%d", prefix, tag, i);
		lens[i] = i == 0 ? 0 : i % 8 == 0 ? (1u << 20) + (size_t)i * 4099 : (size_t)i * 7919;
		vals[i] = malloc(lens[i] + 1);
		bufs[i] = malloc(lens[i] + 1);
		fill_value(vals[i], lens[i], keys[i], 1);
		ops[i] = key_op(keys[i]);
		ops[i].val = vals[i], ops[i].len = lens[i];
	}
	cr_assert_eq(tkv__shared_set_nx(c, ops, N_KEYS, 0), N_KEYS);
	for (int i = 0; i < N_KEYS; i++) {
		ops[i] = key_op(keys[i]);
		ops[i].buf = bufs[i], ops[i].cap = lens[i] + 1;
	}
	cr_assert_eq(tkv__shared_get(c, ops, N_KEYS), N_KEYS);
	for (int i = 0; i < N_KEYS; i++) {
		cr_assert_eq(ops[i].status, 0);
		cr_assert_eq(ops[i].len, lens[i], "key %d", i);
		cr_assert(memcmp(bufs[i], vals[i], lens[i]) == 0, "key %d: wrong bytes", i);
	}
	cr_assert_eq(tkv__shared_exists(c, ops, N_KEYS), N_KEYS);
	/* NX: a second value is refused and the first one stays. */
	unsigned char other[64];
	fill_value(other, sizeof(other), "other", 2);
	tkv__shared_op again = key_op(keys[5]);
	again.val = other, again.len = sizeof(other);
	cr_assert_eq(tkv__shared_set_nx(c, &again, 1, 0), 0);
	cr_assert_eq(again.status, -EEXIST);
	tkv__shared_op back = key_op(keys[5]);
	back.buf = bufs[5], back.cap = lens[5];
	cr_assert_eq(tkv__shared_get(c, &back, 1), 1);
	cr_assert(back.len == lens[5] && memcmp(bufs[5], vals[5], lens[5]) == 0);
	/* Absent keys. */
	char absent[64];
	snprintf(absent, sizeof(absent), "%s:%s:absent", prefix, tag);
	tkv__shared_op no = key_op(absent);
	no.buf = bufs[1], no.cap = lens[1];
	cr_assert_eq(tkv__shared_get(c, &no, 1), 0);
	cr_assert_eq(no.status, -ENOENT);
	cr_assert_eq(tkv__shared_exists(c, &no, 1), 0);
	cr_assert_eq(no.status, -ENOENT);

	tkv__shared_stats st;
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.sets, N_KEYS + 1);
	cr_assert_eq(st.sets_stored, N_KEYS);
	cr_assert_eq(st.sets_existed, 1);
	cr_assert_eq(st.gets, N_KEYS + 2);
	cr_assert_eq(st.get_hits, N_KEYS + 1);
	cr_assert_eq(st.get_misses, 1);
	cr_assert_eq(st.exists, N_KEYS + 1);
	uint64_t total = 0;
	for (int i = 0; i < N_KEYS; i++)
		total += lens[i];
	cr_assert_eq(st.bytes_sent, total);
	cr_assert_eq(st.bytes_received, total + lens[5]);
	cr_assert_eq(st.err_timeout + st.err_conn + st.err_down + st.err_busy + st.err_oom + st.err_proto +
			     st.err_redirect_limit + st.err_too_big,
		     0);
	cr_assert_eq(st.conns_closed_on_error, 0);
	cr_assert_geq(st.map_refreshes, 1);
	cr_assert_eq(st.nodes_down, 0);
	for (int i = 0; i < N_KEYS; i++)
		free(vals[i]), free(bufs[i]);
	tkv__shared_conn_free(c);
	tkv__shared_close(s);
}

static long long dbsize(int port)
{
	return atoll(sh("redis-cli -p %d dbsize", port));
}

Test(shared_client, round_trip_on_the_cluster_spreads_over_every_master)
{
	char *seeds = fixture_seeds("cluster");
	int ports[3];
	long long before[3];
	const char *p = seeds;
	for (int i = 0; i < 3; i++, p = strchr(p, ',') + 1) {
		ports[i] = first_port(p);
		before[i] = dbsize(ports[i]);
		if (i < 2)
			cr_assert_not_null(strchr(p, ','));
	}
	round_trip(seeds, "cl");
	for (int i = 0; i < 3; i++)
		cr_expect_gt(dbsize(ports[i]), before[i], "master %d got none of the keys", ports[i]);
	tkv__shared *s = open_client(seeds, 500);
	tkv__shared_stats st;
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.nodes_up, 3, "the map names 3 masters");
	tkv__shared_close(s);
	free(seeds);
}

Test(shared_client, round_trip_on_a_standalone_server)
{
	char *seeds = fixture_seeds("standalone");
	round_trip(seeds, "sa");
	tkv__shared *s = open_client(seeds, 500);
	tkv__shared_stats st;
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.nodes_up, 1);
	cr_assert_eq(st.map_refresh_failures, 0, "cluster support disabled is a map, not a failure");
	tkv__shared_close(s);
	free(seeds);
}

/* A node named by host name is resolved with a deadline (hiredis alone
 * would wait for the resolver without one), then used like any other. */
Test(shared_client, seed_by_host_name)
{
	char *seeds = fixture_seeds("standalone");
	const char *port = strrchr(seeds, ':');
	cr_assert_not_null(port);
	char named[64];
	snprintf(named, sizeof(named), "localhost%s", port);
	round_trip(named, "ln");
	free(seeds);
}

Test(shared_client, names_resolve_within_the_deadline)
{
	char out[256];
	cr_assert_eq(tkv__shared_resolve("10.1.2.3", 1, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "10.1.2.3", "numeric: no lookup, so no deadline to miss");
	cr_assert_eq(tkv__shared_resolve("::1", 1, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "::1");
	cr_assert_eq(tkv__shared_resolve("fe80::1%lo", 1, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "fe80::1%lo", "a scoped literal keeps its scope");
	int bad = tkv__shared_resolve("a:%b", 300000000ull, out, sizeof(out));
	cr_assert(bad == -EHOSTUNREACH || bad == -ETIMEDOUT, "not an address: %d", bad);
	cr_assert_eq(tkv__shared_resolve("localhost", 2000000000ull, out, sizeof(out)), 0, "%s",
		     tkv_last_error());
	cr_assert_str_eq(out, "127.0.0.1", "IPv4 first");
	/* .invalid never resolves (RFC 6761): a miss, or the deadline */
	int rc = tkv__shared_resolve("no-such-node.invalid", 300000000ull, out, sizeof(out));
	cr_assert(rc == -EHOSTUNREACH || rc == -ETIMEDOUT, "%d", rc);
	cr_assert_eq(tkv__shared_resolve("", 1, out, sizeof(out)), -EINVAL);
	cr_assert_eq(tkv__shared_resolve("10.1.2.3", 1, out, 4), -EINVAL, "does not fit");
}

/* A stand-in resolver (tkv__shared_gai_hook): counts its calls and answers
 * as fake_mode says, after fake_delay_us. */
enum { FAKE_OK, FAKE_TRY_AGAIN, FAKE_NO_NAME };
static int fake_mode, fake_calls;
static unsigned fake_delay_us;

static int fake_gai(const char *host, char *addr, size_t len)
{
	(void)host;
	__atomic_add_fetch(&fake_calls, 1, __ATOMIC_SEQ_CST);
	usleep(__atomic_load_n(&fake_delay_us, __ATOMIC_SEQ_CST));
	int mode = __atomic_load_n(&fake_mode, __ATOMIC_SEQ_CST);
	if (mode == FAKE_TRY_AGAIN)
		return EAI_AGAIN;
	if (mode == FAKE_NO_NAME)
		return EAI_NONAME;
	snprintf(addr, len, "10.9.8.7");
	return 0;
}

/* Every test of the seams starts from the same state, forked or not. */
static void fake_reset(void)
{
	tkv__shared_gai_hook = fake_gai;
	tkv__shared_resolve_ttl_ns = 5ull * 1000000000u;
	__atomic_store_n(&fake_mode, FAKE_OK, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fake_delay_us, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fake_calls, 0, __ATOMIC_SEQ_CST);
}

static void *resolve_slow_name(void *arg)
{
	char *out = arg;
	if (tkv__shared_resolve("slow.test", 2000000000ull, out, 64))
		out[0] = '\0';
	return NULL;
}

/* Reconnects of many links to one named node ask DNS once: callers join
 * the lookup under way, and the answer is then used for a while. */
Test(shared_client, names_resolve_once_for_many_callers)
{
	fake_reset();
	__atomic_store_n(&fake_delay_us, 100000, __ATOMIC_SEQ_CST);
	char out[4][64];
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, resolve_slow_name, out[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_assert_str_eq(out[i], "10.9.8.7", "caller %d", i);
	}
	cr_assert_eq(__atomic_load_n(&fake_calls, __ATOMIC_SEQ_CST), 1, "one lookup for all");
	char again[64];
	cr_assert_eq(tkv__shared_resolve("slow.test", 1000000ull, again, sizeof(again)), 0);
	cr_assert_str_eq(again, "10.9.8.7");
	cr_assert_eq(__atomic_load_n(&fake_calls, __ATOMIC_SEQ_CST), 1, "a fresh answer is reused");
}

/* With DNS slow or failing, a name keeps the address it had; a name DNS
 * says does not exist is believed at once, and no old address is used. */
Test(shared_client, names_keep_their_address_while_dns_is_down)
{
	fake_reset();
	tkv__shared_resolve_ttl_ns = 0; /* ask every time */
	char out[64];
	cr_assert_eq(tkv__shared_resolve("node.test", 1000000000ull, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "10.9.8.7");
	/* slow: half the deadline passes (the connect gets the other half),
	 * the last address is used */
	__atomic_store_n(&fake_mode, FAKE_TRY_AGAIN, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fake_delay_us, 300000, __ATOMIC_SEQ_CST);
	memset(out, 0, sizeof(out));
	cr_assert_eq(tkv__shared_resolve("node.test", 20000000ull, out, sizeof(out)), 0, "%s",
		     tkv_last_error());
	cr_assert_str_eq(out, "10.9.8.7");
	usleep(400000); /* that lookup ends (EAI_AGAIN) */
	/* failing at once: the same */
	__atomic_store_n(&fake_delay_us, 0, __ATOMIC_SEQ_CST);
	memset(out, 0, sizeof(out));
	cr_assert_eq(tkv__shared_resolve("node.test", 1000000000ull, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "10.9.8.7");
	/* no such name: believed, and the old address is forgotten */
	__atomic_store_n(&fake_mode, FAKE_NO_NAME, __ATOMIC_SEQ_CST);
	cr_assert_eq(tkv__shared_resolve("node.test", 1000000000ull, out, sizeof(out)),
		     -EHOSTUNREACH);
	__atomic_store_n(&fake_mode, FAKE_TRY_AGAIN, __ATOMIC_SEQ_CST);
	cr_assert_eq(tkv__shared_resolve("node.test", 1000000000ull, out, sizeof(out)),
		     -EHOSTUNREACH, "nothing to fall back on any more");
	/* a name never resolved waits its whole deadline, and has nothing to
	 * fall back on */
	__atomic_store_n(&fake_delay_us, 300000, __ATOMIC_SEQ_CST);
	cr_assert_eq(tkv__shared_resolve("other.test", 20000000ull, out, sizeof(out)),
		     -ETIMEDOUT);
}

Test(shared_client, value_longer_than_buffer_is_emsgsize)
{
	char *seeds = fixture_seeds("cluster");
	tkv__shared *s = open_client(seeds, 2000);
	tkv__shared_conn *c = tkv__shared_conn_new(s);
	char key[64];
	snprintf(key, sizeof(key), "%s:big", prefix);
	unsigned char val[1000], buf[1000];
	fill_value(val, sizeof(val), key, 3);
	tkv__shared_op op = key_op(key);
	op.val = val, op.len = sizeof(val);
	cr_assert_eq(tkv__shared_set_nx(c, &op, 1, 0), 1);
	memset(buf, 0xa5, sizeof(buf));
	op = key_op(key);
	op.buf = buf, op.cap = sizeof(val) - 1;
	cr_assert_eq(tkv__shared_get(c, &op, 1), 0);
	cr_assert_eq(op.status, -EMSGSIZE);
	for (size_t i = 0; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0xa5, "byte %zu written by a refused get", i);
	/* The connection is still in step: the next get is this key's value. */
	op.cap = sizeof(val);
	cr_assert_eq(tkv__shared_get(c, &op, 1), 1);
	cr_assert(op.len == sizeof(val) && memcmp(buf, val, sizeof(val)) == 0);
	tkv__shared_stats st;
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.err_too_big, 1);
	cr_assert_eq(st.get_hits, 1);
	cr_assert_eq(st.conns_closed_on_error, 0);
	tkv__shared_conn_free(c);
	tkv__shared_close(s);
	free(seeds);
}

/* --- redirections: a slot of the fixture's cluster changes owner --- */

struct cluster {
	int ports[3];
	char ids[3][64];
};

static void cluster_info(const char *seeds, struct cluster *cl)
{
	const char *p = seeds;
	for (int i = 0; i < 3; i++) {
		cl->ports[i] = first_port(p);
		snprintf(cl->ids[i], sizeof(cl->ids[i]), "%s", sh("redis-cli -p %d cluster myid", cl->ports[i]));
		p = strchr(p, ',') ? strchr(p, ',') + 1 : p;
	}
}

/* The index of the master that owns slot: each node's own line of
 * CLUSTER NODES (id addr flags master ping pong epoch state ranges...). */
static int owner_of(struct cluster *cl, uint16_t slot)
{
	for (int i = 0; i < 3; i++) {
		const char *n = sh("redis-cli -p %d cluster nodes | grep myself", cl->ports[i]);
		/* ranges start at the 9th field */
		char line[4096];
		snprintf(line, sizeof(line), "%s", n);
		char *save, *tok = strtok_r(line, " ", &save);
		for (int f = 1; tok && f < 9; f++)
			tok = strtok_r(NULL, " ", &save);
		for (; tok; tok = strtok_r(NULL, " ", &save)) {
			if (tok[0] == '[')
				continue;
			long lo = strtol(tok, NULL, 10), hi = lo;
			if (strchr(tok, '-'))
				hi = strtol(strchr(tok, '-') + 1, NULL, 10);
			if (slot >= lo && slot <= hi)
				return i;
		}
	}
	cr_assert_fail("no master owns slot %u", slot);
	return -1;
}

static void set_keys(tkv__shared_conn *c, char keys[][64], int n, size_t len)
{
	unsigned char *v = malloc(len);
	for (int i = 0; i < n; i++) {
		fill_value(v, len, keys[i], 4);
		tkv__shared_op op = key_op(keys[i]);
		op.val = v, op.len = len;
		cr_assert_eq(tkv__shared_set_nx(c, &op, 1, 0), 1, "set %s: %d", keys[i], op.status);
	}
	free(v);
}

static void expect_values(tkv__shared_conn *c, char keys[][64], int n, size_t len)
{
	unsigned char *v = malloc(len), *b = malloc(len);
	for (int i = 0; i < n; i++) {
		fill_value(v, len, keys[i], 4);
		tkv__shared_op op = key_op(keys[i]);
		op.buf = b, op.cap = len;
		cr_assert_eq(tkv__shared_get(c, &op, 1), 1, "get %s: %d", keys[i], op.status);
		cr_assert(op.len == len && memcmp(b, v, len) == 0, "get %s: wrong bytes", keys[i]);
	}
	free(v), free(b);
}

static void migrate_keys(struct cluster *cl, int from, int to, char keys[][64], int n)
{
	for (int i = 0; i < n; i++)
		sh("redis-cli -p %d migrate 127.0.0.1 %d '%s' 0 5000", cl->ports[from], cl->ports[to], keys[i]);
}

static void setslot_node(struct cluster *cl, uint16_t slot, int to)
{
	/* The new owner first, as redis-cli --cluster reshard does. */
	sh("redis-cli -p %d cluster setslot %u node %s", cl->ports[to], slot, cl->ids[to]);
	for (int i = 0; i < 3; i++)
		if (i != to)
			sh("redis-cli -p %d cluster setslot %u node %s", cl->ports[i], slot, cl->ids[to]);
}

Test(shared_client, moved_after_a_slot_migrated_refreshes_the_map)
{
	char *seeds = fixture_seeds("cluster");
	struct cluster cl;
	cluster_info(seeds, &cl);
	char keys[4][64];
	for (int i = 0; i < 4; i++)
		snprintf(keys[i], sizeof(keys[i]), "{%s-moved}%d", prefix, i);
	uint16_t slot = tkv__shared_key_slot(keys[0], strlen(keys[0]));
	int from = owner_of(&cl, slot), to = (from + 1) % 3;

	tkv__shared *s = open_client(seeds, 2000);
	tkv__shared_conn *c = tkv__shared_conn_new(s);
	set_keys(c, keys, 4, 5000);
	tkv__shared_stats st0, st;
	tkv__shared_get_stats(s, &st0);

	sh("redis-cli -p %d cluster setslot %u importing %s", cl.ports[to], slot, cl.ids[from]);
	sh("redis-cli -p %d cluster setslot %u migrating %s", cl.ports[from], slot, cl.ids[to]);
	migrate_keys(&cl, from, to, keys, 4);
	setslot_node(&cl, slot, to);

	/* The client's map still names the old owner: it answers MOVED. */
	expect_values(c, keys, 4, 5000);
	tkv__shared_get_stats(s, &st);
	cr_assert_geq(st.moved, 1);
	cr_assert_gt(st.map_refreshes, st0.map_refreshes, "MOVED refreshes the map");
	cr_assert_eq(st.ask, 0);
	/* After the refresh the map is right: no more redirections. */
	uint64_t moved = st.moved;
	expect_values(c, keys, 4, 5000);
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.moved, moved);
	tkv__shared_conn_free(c);
	tkv__shared_close(s);
	free(seeds);
}

Test(shared_client, ask_during_a_migration_leaves_the_map_alone)
{
	char *seeds = fixture_seeds("cluster");
	struct cluster cl;
	cluster_info(seeds, &cl);
	char keys[4][64];
	for (int i = 0; i < 4; i++)
		snprintf(keys[i], sizeof(keys[i]), "{%s-ask}%d", prefix, i);
	uint16_t slot = tkv__shared_key_slot(keys[0], strlen(keys[0]));
	int from = owner_of(&cl, slot), to = (from + 2) % 3;

	tkv__shared *s = open_client(seeds, 2000);
	tkv__shared_conn *c = tkv__shared_conn_new(s);
	set_keys(c, keys, 4, 3000);

	sh("redis-cli -p %d cluster setslot %u importing %s", cl.ports[to], slot, cl.ids[from]);
	sh("redis-cli -p %d cluster setslot %u migrating %s", cl.ports[from], slot, cl.ids[to]);
	migrate_keys(&cl, from, to, keys + 2, 2); /* keys 0, 1 stay behind */
	tkv__shared_stats st0, st;
	tkv__shared_get_stats(s, &st0);

	expect_values(c, keys, 4, 3000);
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.ask - st0.ask, 2, "the two moved keys are asked for on the new node");
	cr_assert_eq(st.moved, st0.moved);
	cr_assert_eq(st.map_refreshes, st0.map_refreshes, "ASK does not change the map");
	/* A new key of a migrating slot is stored on the importing node. */
	char fresh[1][64];
	snprintf(fresh[0], sizeof(fresh[0]), "{%s-ask}new", prefix);
	set_keys(c, fresh, 1, 100);
	cr_assert_eq(atoi(sh("redis-cli -p %d cluster countkeysinslot %u", cl.ports[to], slot)), 3);
	/* ASK again for the same keys: still one redirection each. */
	expect_values(c, keys + 2, 2, 3000);
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.ask - st0.ask, 5);

	migrate_keys(&cl, from, to, keys, 2);
	setslot_node(&cl, slot, to);
	expect_values(c, keys, 4, 3000);
	tkv__shared_conn_free(c);
	tkv__shared_close(s);
	free(seeds);
}

Test(shared_client, redirect_limit_is_eloop)
{
	/* Two nodes pointing at each other is impossible to arrange on a
	 * healthy cluster; max_redirects = 1 with a stale map and an ASK on top
	 * needs two redirections for one op. */
	char *seeds = fixture_seeds("cluster");
	struct cluster cl;
	cluster_info(seeds, &cl);
	char keys[1][64];
	snprintf(keys[0], sizeof(keys[0]), "{%s-loop}0", prefix);
	uint16_t slot = tkv__shared_key_slot(keys[0], strlen(keys[0]));
	int a = owner_of(&cl, slot), b = (a + 1) % 3, d = (a + 2) % 3;
	tkv__shared_cfg cfg = {.seeds = seeds, .op_timeout_ms = 2000, .max_redirects = 1};
	tkv__shared *s;
	cr_assert_eq(tkv__shared_open(&cfg, &s), 0);
	tkv__shared_conn *c = tkv__shared_conn_new(s);
	set_keys(c, keys, 1, 10);
	/* The slot moves a -> b (the client's map is now stale), then b starts
	 * migrating it to d with the key already there: a says MOVED b, b says
	 * ASK d. */
	sh("redis-cli -p %d cluster setslot %u importing %s", cl.ports[b], slot, cl.ids[a]);
	sh("redis-cli -p %d cluster setslot %u migrating %s", cl.ports[a], slot, cl.ids[b]);
	migrate_keys(&cl, a, b, keys, 1);
	setslot_node(&cl, slot, b);
	sh("redis-cli -p %d cluster setslot %u importing %s", cl.ports[d], slot, cl.ids[b]);
	sh("redis-cli -p %d cluster setslot %u migrating %s", cl.ports[b], slot, cl.ids[d]);
	migrate_keys(&cl, b, d, keys, 1);
	char buf[16];
	tkv__shared_op op = key_op(keys[0]);
	op.buf = buf, op.cap = sizeof(buf);
	cr_assert_eq(tkv__shared_get(c, &op, 1), 0);
	cr_assert_eq(op.status, -ELOOP);
	tkv__shared_stats st;
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.err_redirect_limit, 1);
	setslot_node(&cl, slot, d);
	/* With the map refreshed by the MOVED, it now takes one redirection. */
	expect_values(c, keys, 1, 10);
	tkv__shared_conn_free(c);
	tkv__shared_close(s);
	free(seeds);
}

/* --- threads --- */

struct worker {
	tkv__shared *s;
	int id;
	int hits;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	tkv__shared_conn *c = tkv__shared_conn_new(w->s);
	enum { N = 16, LEN = 65536 };
	char keys[N][64];
	unsigned char(*v)[LEN] = malloc(N * LEN), (*b)[LEN] = malloc(N * LEN);
	tkv__shared_op ops[N];
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < N; i++) {
			snprintf(keys[i], sizeof(keys[i]), "%s:thr%d:%d:%d", prefix, w->id, round, i);
			fill_value(v[i], LEN, keys[i], 5);
			ops[i] = key_op(keys[i]);
			ops[i].val = v[i], ops[i].len = LEN;
		}
		tkv__shared_set_nx(c, ops, N, 60000);
		for (int i = 0; i < N; i++) {
			ops[i] = key_op(keys[i]);
			ops[i].buf = b[i], ops[i].cap = LEN;
		}
		tkv__shared_get(c, ops, N);
		for (int i = 0; i < N; i++)
			w->hits += ops[i].status == 0 && ops[i].len == LEN && memcmp(b[i], v[i], LEN) == 0;
	}
	free(v), free(b);
	tkv__shared_conn_free(c);
	return NULL;
}

Test(shared_client, threads_each_with_their_own_conn)
{
	char *seeds = fixture_seeds("cluster");
	tkv__shared *s = open_client(seeds, 2000);
	enum { T = 4 };
	pthread_t th[T];
	struct worker w[T];
	for (int i = 0; i < T; i++) {
		w[i] = (struct worker){.s = s, .id = i};
		cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		cr_expect_eq(w[i].hits, 64, "thread %d", i);
	}
	tkv__shared_stats st;
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.get_hits, T * 64);
	cr_assert_eq(st.sets_stored, T * 64);
	tkv__shared_close(s);
	free(seeds);
}

Test(shared_client, unexpected_reply_is_eproto_and_closes_the_connection)
{
	/* A key holding a list: GET answers -WRONGTYPE, which this client
	 * never expects; nothing read after it on that connection is trusted. */
	char *seeds = fixture_seeds("standalone");
	char key[64];
	snprintf(key, sizeof(key), "%s:list", prefix);
	sh("redis-cli -p %d rpush %s x >/dev/null", first_port(seeds), key);
	tkv__shared *s = open_client(seeds, 2000);
	tkv__shared_conn *c = tkv__shared_conn_new(s);
	char other[64];
	snprintf(other, sizeof(other), "%s:after-list", prefix);
	unsigned char v[100], b[100];
	fill_value(v, sizeof(v), other, 6);
	tkv__shared_op ops[2] = {key_op(key), key_op(other)};
	ops[1].val = v, ops[1].len = sizeof(v);
	cr_assert_eq(tkv__shared_set_nx(c, &ops[1], 1, 0), 1);
	ops[0].buf = b, ops[0].cap = sizeof(b);
	ops[1] = key_op(other);
	ops[1].buf = b, ops[1].cap = sizeof(b);
	cr_assert_eq(tkv__shared_get(c, ops, 2), 0);
	cr_assert_eq(ops[0].status, -EPROTO);
	cr_assert_eq(ops[1].status, -ECONNRESET, "pipelined behind the bad reply: not trusted");
	tkv__shared_stats st;
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.err_proto, 1);
	cr_assert_eq(st.conns_closed_on_error, 1);
	cr_assert_eq(st.nodes_down, 0, "the node answered: it is not down");
	/* A new connection, in step again. */
	ops[1].status = 1;
	cr_assert_eq(tkv__shared_get(c, &ops[1], 1), 1);
	cr_assert(ops[1].len == sizeof(v) && memcmp(b, v, sizeof(v)) == 0);
	tkv__shared_conn_free(c);
	tkv__shared_close(s);
	free(seeds);
}

Test(shared_client, too_long_values_in_a_pipeline_keep_it_in_step)
{
	/* Big buffers take the direct read (value from socket into the
	 * buffer); a value longer than its buffer falls back to the reader,
	 * which skips it. Interleaved, every op must still get its own key. */
	char *seeds = fixture_seeds("standalone");
	tkv__shared *s = open_client(seeds, 2000);
	tkv__shared_conn *c = tkv__shared_conn_new(s);
	enum { N = 12, LEN = 200000 };
	char keys[N][64];
	unsigned char *v = malloc(LEN), *b[N];
	tkv__shared_op ops[N];
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "%s:pipe:%d", prefix, i);
		fill_value(v, LEN - (size_t)i, keys[i], 8);
		ops[i] = key_op(keys[i]);
		ops[i].val = v, ops[i].len = LEN - (size_t)i;
		cr_assert_eq(tkv__shared_set_nx(c, &ops[i], 1, 0), 1);
		b[i] = malloc(LEN);
	}
	for (int i = 0; i < N; i++) {
		ops[i] = key_op(keys[i]);
		/* every third buffer is one byte short */
		ops[i].buf = b[i], ops[i].cap = LEN - (size_t)i - (i % 3 == 0);
	}
	cr_assert_eq(tkv__shared_get(c, ops, N), N - 4);
	for (int i = 0; i < N; i++) {
		if (i % 3 == 0) {
			cr_assert_eq(ops[i].status, -EMSGSIZE, "op %d", i);
			continue;
		}
		fill_value(v, LEN - (size_t)i, keys[i], 8);
		cr_assert_eq(ops[i].status, 0, "op %d: %d", i, ops[i].status);
		cr_assert(ops[i].len == LEN - (size_t)i && memcmp(b[i], v, ops[i].len) == 0, "op %d", i);
	}
	tkv__shared_stats st;
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.err_too_big, 4);
	cr_assert_eq(st.conns_closed_on_error, 0);
	for (int i = 0; i < N; i++)
		free(b[i]);
	free(v);
	tkv__shared_conn_free(c);
	tkv__shared_close(s);
	free(seeds);
}

/* One pipelined get of many values whose buffers fit them exactly, so a
 * recvmsg may receive several at once (the link's ahead entries), with
 * replies of other shapes in between that must end that (a nil, a value
 * shorter than its buffer, one longer, one whose buffer is too small for
 * the direct read): every op still gets its own reply, byte-exact. Run
 * with values that fit a socket read and values that span several. */
static void ahead_pass(tkv__shared_conn *c, const char *tag, size_t len)
{
	enum { N = 40 };
	char keys[N][64];
	size_t vlen[N];
	unsigned char *v = malloc(len + 64), *b[N];
	tkv__shared_op ops[N];
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "%s:ahead:%s:%d", prefix, tag, i);
		vlen[i] = i == 9 ? len - 7 : i == 17 ? len + 5 : i == 25 ? 1000 : len;
		b[i] = malloc(len + 64);
		if (i % 11 == 5)
			continue; /* absent: a nil in the middle */
		fill_value(v, vlen[i], keys[i], 12);
		ops[i] = key_op(keys[i]);
		ops[i].val = v, ops[i].len = vlen[i];
		cr_assert_eq(tkv__shared_set_nx(c, &ops[i], 1, 0), 1);
	}
	for (int rep = 0; rep < 3; rep++) {
		for (int i = 0; i < N; i++) {
			ops[i] = key_op(keys[i]);
			/* 25: a buffer below the direct read's minimum */
			ops[i].buf = b[i], ops[i].cap = i == 25 ? 1000 : len;
			memset(b[i], 0xee, len + 64);
		}
		tkv__shared_get(c, ops, N);
		for (int i = 0; i < N; i++) {
			if (i % 11 == 5) {
				cr_assert_eq(ops[i].status, -ENOENT, "%s op %d: %d", tag, i, ops[i].status);
				continue;
			}
			if (i == 17) {
				cr_assert_eq(ops[i].status, -EMSGSIZE, "%s op %d: %d", tag, i, ops[i].status);
				continue;
			}
			fill_value(v, vlen[i], keys[i], 12);
			cr_assert_eq(ops[i].status, 0, "%s op %d: %d", tag, i, ops[i].status);
			cr_assert_eq(ops[i].len, vlen[i], "%s op %d", tag, i);
			cr_assert(memcmp(b[i], v, vlen[i]) == 0, "%s op %d: another reply's bytes", tag, i);
		}
	}
	for (int i = 0; i < N; i++)
		free(b[i]);
	free(v);
}

Test(shared_client, values_received_ahead_keep_every_reply_its_own)
{
	char *seeds = fixture_seeds("standalone");
	tkv__shared *s = open_client(seeds, 2000);
	tkv__shared_conn *c = tkv__shared_conn_new(s);
	ahead_pass(c, "20k", 20480);
	ahead_pass(c, "300k", 300 << 10);
	tkv__shared_stats st;
	tkv__shared_get_stats(s, &st);
	cr_assert_eq(st.conns_closed_on_error, 0);
	cr_assert_eq(st.err_proto, 0);
	tkv__shared_conn_free(c);
	tkv__shared_close(s);
	free(seeds);
}
