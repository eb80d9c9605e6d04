/*
 * topology.c - performance-core detection, cpulist parsing and pinning
 * (runtime/topology.c).
 *
 * Detection runs on fake sysfs trees built in a mkdtemp folder. A detected
 * CPU must also be in this process's affinity mask, so most trees are built
 * from the first two allowed CPUs ("lo" and "hi", 0 and 1 on a 2-CPU box)
 * and give them different roles: a test then proves which CPU a rule chose.
 * The trees that name CPUs outside the mask (a 16-CPU hybrid, an 8-CPU
 * big.LITTLE) check the other half: the mask is respected and an empty
 * intersection falls through to the next rule.
 */
#define _GNU_SOURCE /* sched_getaffinity, sched_getcpu, nftw */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "runtime/topology.h"
#include "tierkv.h"

/* ---- fixtures: a temporary sysfs root and the affinity mask ------------ */

static char root[64]; /* "/tmp/tkv-topology-XXXXXX" */
static int allowed[TKV__MAX_CPUS], n_allowed;
static int lo, hi; /* the first two allowed CPUs */

static int mask_cpus(int *cpus)
{
	cpu_set_t set;
	int n = 0;

	cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	return n;
}

/* The smallest CPU number this process may not run on. */
static int cpu_outside_mask(void)
{
	int c = 0;

	for (int i = 0; i < n_allowed && allowed[i] == c; i++)
		c++;
	return c;
}

static void setup(void)
{
	strcpy(root, "/tmp/tkv-topology-XXXXXX");
	cr_assert(mkdtemp(root), "mkdtemp: %s", strerror(errno));
	n_allowed = mask_cpus(allowed);
	lo = allowed[0];
	hi = n_allowed > 1 ? allowed[1] : -1;
}

static int remove_entry(const char *path, const struct stat *sb, int flag,
			struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void teardown(void)
{
	nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void need_two_cpus(void)
{
	if (n_allowed < 2)
		cr_skip_test("needs two CPUs in the affinity mask, have %d", n_allowed);
}

/* ---- building trees ----------------------------------------------------- */

/* mkdir -p of every folder above the file named by path. */
static void make_parents(char *path)
{
	for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path,
			  strerror(errno));
		*p = '/';
	}
}

static void put_bytes(const char *base, const char *rel, const char *data, size_t len)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", base, rel);
	make_parents(path);
	f = fopen(path, "w");
	cr_assert(f, "fopen %s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static void put(const char *base, const char *rel, const char *text)
{
	put_bytes(base, rel, text, strlen(text));
}

static void put_cpu(const char *base, int cpu, const char *attr, const char *text)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "devices/system/cpu/cpu%d/%s", cpu, attr);
	put(base, rel, text);
}

static void put_num(const char *base, int cpu, const char *attr, unsigned long v)
{
	char text[32];

	snprintf(text, sizeof(text), "%lu\n", v);
	put_cpu(base, cpu, attr, text);
}

/* "lo,hi\n" as the online list, like the kernel prints it. */
static void put_online_lo_hi(const char *base)
{
	char text[32];

	snprintf(text, sizeof(text), "%d,%d\n", lo, hi);
	put(base, "devices/system/cpu/online", text);
}

/* ---- checking results --------------------------------------------------- */

static void detect_ok(const char *base, tkv__topology *t)
{
	int r = tkv__topology_detect(base, t);

	cr_assert_eq(r, 0, "detect(%s) = %d: %s", base ? base : "NULL", r, tkv_last_error());
	cr_assert(t->source, "no source named");
	cr_assert(t->n_cpus >= 1 && t->n_cpus <= TKV__MAX_CPUS, "n_cpus %d", t->n_cpus);
}

static void expect(const tkv__topology *t, const char *source, const int *cpus, int n)
{
	cr_assert_str_eq(t->source, source);
	cr_assert_eq(t->n_cpus, n, "%s: %d CPUs, expected %d", source, t->n_cpus, n);
	for (int i = 0; i < n; i++)
		cr_assert_eq(t->cpus[i], cpus[i], "%s: cpus[%d] = %d, expected %d", source, i,
			     t->cpus[i], cpus[i]);
}

static void expect_one(const tkv__topology *t, const char *source, int cpu)
{
	expect(t, source, &cpu, 1);
}

/* Every CPU in the affinity mask, nothing else: the last rule's answer. */
static void expect_affinity(const tkv__topology *t)
{
	expect(t, "affinity", allowed, n_allowed);
	cr_assert_eq(t->all_equal, 1);
}

TestSuite(topology, .init = setup, .fini = teardown);

/* ---- rule 1: Intel hybrid ----------------------------------------------- */

Test(topology, intel_hybrid_16_cpus_respects_mask)
{
	tkv__topology t;
	int want[8], n_want = 0;

	put(root, "devices/system/cpu/online", "0-15\n");
	put(root, "devices/cpu_core/cpus", "0-7\n");
	put(root, "devices/cpu_atom/cpus", "8-15\n");
	for (int c = 0; c < 16; c++)
		put_num(root, c, "cpufreq/cpuinfo_max_freq", c < 8 ? 5000000 : 3800000);
	for (int i = 0; i < n_allowed; i++)
		if (allowed[i] < 8)
			want[n_want++] = allowed[i];
	if (n_want == 0)
		cr_skip_test("no allowed CPU among 0-7");
	detect_ok(root, &t);
	expect(&t, "intel-hybrid cpu_core", want, n_want);
	cr_assert_eq(t.all_equal, 0);
}

Test(topology, intel_hybrid_picks_cpu_core_not_cpu_atom)
{
	tkv__topology t;
	char text[16];

	need_two_cpus();
	put_online_lo_hi(root);
	snprintf(text, sizeof(text), "%d\n", hi);
	put(root, "devices/cpu_core/cpus", text);
	snprintf(text, sizeof(text), "%d\n", lo);
	put(root, "devices/cpu_atom/cpus", text);
	/* Equal capacities: without rule 1 the answer would be both CPUs. */
	put_num(root, lo, "cpu_capacity", 1024);
	put_num(root, hi, "cpu_capacity", 1024);
	detect_ok(root, &t);
	expect_one(&t, "intel-hybrid cpu_core", hi);
}

Test(topology, intel_hybrid_outside_mask_falls_through)
{
	tkv__topology t;
	char text[16];

	need_two_cpus();
	put_online_lo_hi(root);
	snprintf(text, sizeof(text), "%d\n", cpu_outside_mask());
	put(root, "devices/cpu_core/cpus", text);
	put_num(root, lo, "cpufreq/cpuinfo_max_freq", 2000000);
	put_num(root, hi, "cpufreq/cpuinfo_max_freq", 3000000);
	detect_ok(root, &t);
	expect_one(&t, "cpufreq max_freq", hi);
}

/* ---- rule 2: cpu_capacity ----------------------------------------------- */

Test(topology, big_little_8_cpus_respects_mask)
{
	tkv__topology t;
	int want[4], n_want = 0;

	put(root, "devices/system/cpu/online", "0-7\n");
	for (int c = 0; c < 8; c++)
		put_num(root, c, "cpu_capacity", c < 4 ? 446 : 1024);
	for (int i = 0; i < n_allowed; i++)
		if (allowed[i] >= 4 && allowed[i] < 8)
			want[n_want++] = allowed[i];
	detect_ok(root, &t);
	if (n_want == 0) {
		/* The big cores are outside the mask (0-1 here): nothing after
		 * cpu_capacity exists in this tree, so every allowed CPU. */
		expect_affinity(&t);
		return;
	}
	expect(&t, "cpu_capacity", want, n_want);
	cr_assert_eq(t.all_equal, 0);
}

Test(topology, big_little_picks_the_big_cpu)
{
	tkv__topology t;

	need_two_cpus();
	put_online_lo_hi(root);
	put_num(root, lo, "cpu_capacity", 446);
	put_num(root, hi, "cpu_capacity", 1024);
	detect_ok(root, &t);
	expect_one(&t, "cpu_capacity", hi);
	cr_assert_eq(t.all_equal, 0);

	/* The other way round, so neither "first" nor "last" passes. */
	put_num(root, lo, "cpu_capacity", 1024);
	put_num(root, hi, "cpu_capacity", 446);
	detect_ok(root, &t);
	expect_one(&t, "cpu_capacity", lo);
}

Test(topology, equal_capacities_mean_all_and_win_over_cppc)
{
	tkv__topology t;
	int both[2] = {lo, hi};

	need_two_cpus();
	put_online_lo_hi(root);
	put_num(root, lo, "cpu_capacity", 1024);
	put_num(root, hi, "cpu_capacity", 1024);
	put_num(root, lo, "acpi_cppc/highest_perf", 255);
	put_num(root, hi, "acpi_cppc/highest_perf", 200);
	detect_ok(root, &t);
	expect(&t, "cpu_capacity", both, 2);
	cr_assert_eq(t.all_equal, 1);
}

Test(topology, cpu_without_the_file_is_skipped)
{
	tkv__topology t;

	need_two_cpus();
	put_online_lo_hi(root);
	put_num(root, hi, "cpu_capacity", 512);
	detect_ok(root, &t);
	expect_one(&t, "cpu_capacity", hi);
}

/* ---- rules 3 and 4: acpi_cppc, cpufreq ---------------------------------- */

Test(topology, cppc_highest_perf_wins_over_cpufreq)
{
	tkv__topology t;

	need_two_cpus();
	put_online_lo_hi(root);
	put_num(root, lo, "acpi_cppc/highest_perf", 255);
	put_num(root, hi, "acpi_cppc/highest_perf", 200);
	/* cpufreq disagrees: it must not be consulted. */
	put_num(root, lo, "cpufreq/cpuinfo_max_freq", 2000000);
	put_num(root, hi, "cpufreq/cpuinfo_max_freq", 3000000);
	detect_ok(root, &t);
	expect_one(&t, "acpi_cppc highest_perf", lo);
	cr_assert_eq(t.all_equal, 0);
}

Test(topology, cpufreq_only)
{
	tkv__topology t;
	int both[2] = {lo, hi};

	need_two_cpus();
	put_online_lo_hi(root);
	put_num(root, lo, "cpufreq/cpuinfo_max_freq", 3600000);
	put_num(root, hi, "cpufreq/cpuinfo_max_freq", 2400000);
	detect_ok(root, &t);
	expect_one(&t, "cpufreq max_freq", lo);

	put_num(root, hi, "cpufreq/cpuinfo_max_freq", 3600000);
	detect_ok(root, &t);
	expect(&t, "cpufreq max_freq", both, 2);
	cr_assert_eq(t.all_equal, 1);
}

/* ---- rule 5: the affinity mask ------------------------------------------ */

Test(topology, empty_tree_is_the_affinity_mask)
{
	tkv__topology t;
	char missing[PATH_MAX];

	detect_ok(root, &t);
	expect_affinity(&t);

	snprintf(missing, sizeof(missing), "%s/no-such-root", root);
	detect_ok(missing, &t);
	expect_affinity(&t);
}

Test(topology, narrowed_mask_is_respected)
{
	tkv__topology t;
	cpu_set_t one;
	char missing[PATH_MAX];

	need_two_cpus();
	put_online_lo_hi(root);
	put_num(root, lo, "cpu_capacity", 1024);
	put_num(root, hi, "cpu_capacity", 1024);
	/* What a container's cpuset (or taskset) does to this thread. */
	CPU_ZERO(&one);
	CPU_SET(hi, &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	n_allowed = mask_cpus(allowed);

	detect_ok(root, &t);
	expect_one(&t, "cpu_capacity", hi);
	detect_ok(NULL, &t);
	expect(&t, t.source, &hi, 1);
	snprintf(missing, sizeof(missing), "%s/none", root);
	detect_ok(missing, &t);
	expect_affinity(&t);
}

/* ---- garbage ------------------------------------------------------------ */

/* Each case spoils lo's file of one rule in a tree where that rule, and the
 * next one, are valid for hi: the right answer is the next rule naming hi.
 * Believing the bad file gives lo; skipping it as absent gives the spoiled
 * rule's name. */
typedef struct garbage_case {
	const char *name;
	const char *rel;  /* printf format: %d is lo */
	const char *data; /* printf format: %d is lo */
	size_t nul_tail;  /* bytes after an embedded NUL in data, kept raw */
	const char *next; /* the rule expected to answer */
} garbage_case;

#define CPU_LO "devices/system/cpu/cpu%d/"
#define CAP "cpu_capacity"
#define CPPC "acpi_cppc highest_perf"
#define FREQ "cpufreq max_freq"
static const garbage_case garbage_cases[] = {
	{"hybrid text", "devices/cpu_core/cpus", "zzz\n", 0, CAP},
	{"hybrid empty", "devices/cpu_core/cpus", "", 0, CAP},
	{"hybrid out of range", "devices/cpu_core/cpus", "99999\n", 0, CAP},
	{"hybrid trailing comma", "devices/cpu_core/cpus", "%d,\n", 0, CAP},
	{"hybrid reversed range", "devices/cpu_core/cpus", "%d,9-0\n", 0, CAP},
	{"hybrid embedded NUL", "devices/cpu_core/cpus", "%d\0junk", 5, CAP},
	{"capacity text", CPU_LO "cpu_capacity", "big\n", 0, CPPC},
	{"capacity suffix", CPU_LO "cpu_capacity", "2048x\n", 0, CPPC},
	{"capacity negative", CPU_LO "cpu_capacity", "-2048\n", 0, CPPC},
	{"capacity empty", CPU_LO "cpu_capacity", "", 0, CPPC},
	{"capacity zero", CPU_LO "cpu_capacity", "0\n", 0, CPPC},
	{"capacity overflow", CPU_LO "cpu_capacity", "99999999999999999999999\n", 0, CPPC},
	{"capacity leading space", CPU_LO "cpu_capacity", " 2048\n", 0, CPPC},
	{"capacity NUL", CPU_LO "cpu_capacity", "2048\0", 1, CPPC},
	{"cppc hex", CPU_LO "acpi_cppc/highest_perf", "0x1ff\n", 0, FREQ},
	{"cppc float", CPU_LO "acpi_cppc/highest_perf", "2.5e3\n", 0, FREQ},
	{"cppc two numbers", CPU_LO "acpi_cppc/highest_perf", "300 1\n", 0, FREQ},
	{"online text", "devices/system/cpu/online", "all\n", 0, CAP},
	{"online open range", "devices/system/cpu/online", "0-\n", 0, CAP},
	{"online empty", "devices/system/cpu/online", "", 0, CAP},
};

/* The valid part of a case's tree. */
static void put_valid(const char *base, const char *next)
{
	put_online_lo_hi(base);
	if (strcmp(next, CAP) == 0) {
		put_num(base, lo, "cpu_capacity", 446);
		put_num(base, hi, "cpu_capacity", 1024);
	} else if (strcmp(next, CPPC) == 0) {
		put_num(base, hi, "cpu_capacity", 1024);
		put_num(base, lo, "acpi_cppc/highest_perf", 100);
		put_num(base, hi, "acpi_cppc/highest_perf", 200);
	} else {
		put_num(base, hi, "acpi_cppc/highest_perf", 200);
		put_num(base, lo, "cpufreq/cpuinfo_max_freq", 2000000);
		put_num(base, hi, "cpufreq/cpuinfo_max_freq", 3000000);
	}
}

static void put_garbage(const char *base, const garbage_case *gc)
{
	char rel[128], data[64];
	int len;

	snprintf(rel, sizeof(rel), gc->rel, lo);
	len = snprintf(data, sizeof(data), gc->data, lo); /* stops at a NUL */
	memcpy(data + len, gc->data + strlen(gc->data), gc->nul_tail);
	put_bytes(base, rel, data, (size_t)len + gc->nul_tail);
}

Test(topology, garbage_falls_through)
{
	need_two_cpus();
	for (size_t i = 0; i < sizeof(garbage_cases) / sizeof(garbage_cases[0]); i++) {
		const garbage_case *gc = &garbage_cases[i];
		char base[PATH_MAX];
		tkv__topology t;

		snprintf(base, sizeof(base), "%s/case%zu", root, i);
		put_valid(base, gc->next);
		put_garbage(base, gc);
		cr_log_info("case %zu: %s", i, gc->name);
		detect_ok(base, &t);
		expect_one(&t, gc->next, hi);
	}
}

Test(topology, oversized_and_unreadable_files_fall_through)
{
	static char big[3 * 4096];
	char path[PATH_MAX];
	tkv__topology t;

	need_two_cpus();
	put_valid(root, CPPC);
	/* "0,0,...,0": valid wherever it is cut, but too long to be a cpulist
	 * of <= 1024 CPUs, so it must be refused, not truncated and believed. */
	for (size_t i = 0; i + 2 <= sizeof(big); i += 2)
		memcpy(big + i, "0,", 2);
	put_bytes(root, "devices/cpu_core/cpus", big, sizeof(big) - 1);
	/* A folder where lo's number should be: read() fails with EISDIR. */
	snprintf(path, sizeof(path), "%s/devices/system/cpu/cpu%d/cpu_capacity", root, lo);
	cr_assert_eq(mkdir(path, 0755), 0, "mkdir %s: %s", path, strerror(errno));
	detect_ok(root, &t);
	expect_one(&t, CPPC, hi);
}

Test(topology, fifo_does_not_hang, .timeout = 10)
{
	char path[PATH_MAX];
	tkv__topology t;

	need_two_cpus();
	put_valid(root, CAP);
	snprintf(path, sizeof(path), "%s/devices/cpu_core", root);
	cr_assert_eq(mkdir(path, 0755), 0);
	strcat(path, "/cpus");
	cr_assert_eq(mkfifo(path, 0644), 0, "mkfifo %s: %s", path, strerror(errno));
	detect_ok(root, &t);
	expect_one(&t, CAP, hi);
}

Test(topology, fall_through_keeps_last_error)
{
	tkv__topology t;

	put(root, "devices/cpu_core/cpus", "zzz\n");
	tkv__fail(-EIO, "earlier failure");
	detect_ok(root, &t);
	cr_assert_str_eq(tkv_last_error(), "earlier failure");
}

/* ---- the real machine and bad arguments --------------------------------- */

Test(topology, real_sys)
{
	tkv__topology t, t2;

	detect_ok(NULL, &t);
	cr_log_info("real /sys: %d CPUs by %s", t.n_cpus, t.source);
	for (int i = 0; i < t.n_cpus; i++) {
		int in = 0;

		for (int j = 0; j < n_allowed; j++)
			in |= allowed[j] == t.cpus[i];
		cr_assert(in, "cpu %d is not in the affinity mask", t.cpus[i]);
		cr_assert(i == 0 || t.cpus[i - 1] < t.cpus[i], "not ascending at %d", i);
	}
	detect_ok("/sys", &t2);
	expect(&t2, t.source, t.cpus, t.n_cpus);
}

Test(topology, bad_arguments)
{
	static char long_root[PATH_MAX + 16];
	tkv__topology t, before;

	cr_assert_eq(tkv__topology_detect(NULL, NULL), -EINVAL);
	cr_assert(strstr(tkv_last_error(), "out"), "%s", tkv_last_error());

	memset(long_root, 'a', sizeof(long_root) - 1);
	long_root[0] = '/';
	memset(&t, 0x5a, sizeof(t));
	before = t;
	cr_assert_eq(tkv__topology_detect(long_root, &t), -ENAMETOOLONG);
	cr_assert(strstr(tkv_last_error(), "root"), "%s", tkv_last_error());
	cr_assert_eq(memcmp(&t, &before, sizeof(t)), 0, "failed detect changed *out");
}

/* ---- cpulist parsing ---------------------------------------------------- */

typedef struct list_case {
	const char *text;
	int ret;        /* count, -EINVAL or -ERANGE */
	int cpus[12];   /* when ret > 0 */
	const char *at; /* when ret < 0: must appear in the message */
} list_case;

static const list_case list_cases[] = {
	{"0", 1, {0}, NULL},
	{"0-3,8,10-11\n", 7, {0, 1, 2, 3, 8, 10, 11}, NULL},
	{"", 0, {0}, NULL},
	{"\n", 0, {0}, NULL},
	{" 5-5 \n", 1, {5}, NULL},
	{"3,1,2", 3, {1, 2, 3}, NULL},
	{"0-2,1-3,2", 4, {0, 1, 2, 3}, NULL},
	{"63", 1, {63}, NULL},
	{"007", 1, {7}, NULL},
	{"a", -EINVAL, {0}, "\"a\""},
	{"1,", -EINVAL, {0}, "ends early"},
	{",1", -EINVAL, {0}, "\",1\""},
	{"1,,2", -EINVAL, {0}, "\",2\""},
	{"1-", -EINVAL, {0}, "ends early"},
	{"-1", -EINVAL, {0}, "\"-1\""},
	{"3-1", -EINVAL, {0}, "\"3-1\""},
	{"1 2", -EINVAL, {0}, "\"2\""},
	{"1-2-3", -EINVAL, {0}, "\"-3\""},
	{"0x1", -EINVAL, {0}, "\"x1\""},
	{"+1", -EINVAL, {0}, "\"+1\""},
	{"1\n2", -EINVAL, {0}, "at \"2\""},
	{"0-3:2", -EINVAL, {0}, "\":2\""},
	{"64", -ERANGE, {0}, "\"64\""},
	{"0-64", -ERANGE, {0}, "\"0-64\""},
	{"1,99999999999999999999", -ERANGE, {0}, ">= 64"},
	{"0-12", -ERANGE, {0}, "more than 12"},
};

Test(topology, parse_cpulist_table)
{
	for (size_t i = 0; i < sizeof(list_cases) / sizeof(list_cases[0]); i++) {
		const list_case *lc = &list_cases[i];
		int cpus[12];
		int r = tkv__parse_cpulist(lc->text, cpus, 12, 64);

		cr_assert_eq(r, lc->ret, "case %zu \"%s\": %d, expected %d (%s)", i, lc->text, r,
			     lc->ret, tkv_last_error());
		for (int j = 0; j < r; j++)
			cr_assert_eq(cpus[j], lc->cpus[j], "case %zu: cpus[%d]", i, j);
		if (r < 0)
			cr_assert(strstr(tkv_last_error(), lc->at), "case %zu: '%s' lacks '%s'", i,
				  tkv_last_error(), lc->at);
	}
}

Test(topology, parse_cpulist_limits_and_arguments)
{
	static int cpus[TKV__MAX_CPUS];

	cr_assert_eq(tkv__parse_cpulist("0-1023\n", cpus, TKV__MAX_CPUS, TKV__MAX_CPUS), 1024);
	cr_assert_eq(cpus[1023], 1023);
	cr_assert_eq(tkv__parse_cpulist("1024", cpus, TKV__MAX_CPUS, TKV__MAX_CPUS), -ERANGE);
	cr_assert_eq(tkv__parse_cpulist("2147483647", cpus, 1, INT_MAX), -ERANGE);
	cr_assert_eq(tkv__parse_cpulist("0-2147483646", cpus, 4, INT_MAX), -ERANGE);
	cr_assert_eq(tkv__parse_cpulist("\n", NULL, 0, 8), 0);
	cr_assert_eq(tkv__parse_cpulist("0", NULL, 0, 8), -ERANGE);
	cr_assert_eq(tkv__parse_cpulist(NULL, cpus, 4, 8), -EINVAL);
	cr_assert_eq(tkv__parse_cpulist("0", NULL, 4, 8), -EINVAL);
	cr_assert_eq(tkv__parse_cpulist("0", cpus, -1, 8), -EINVAL);
	cr_assert_eq(tkv__parse_cpulist("0", cpus, 4, -1), -EINVAL);
}

/* ---- pinning ------------------------------------------------------------ */

static void expect_mask(const int *cpus, int n)
{
	int now[TKV__MAX_CPUS], n_now = mask_cpus(now);

	cr_assert_eq(n_now, n, "mask has %d CPUs, expected %d", n_now, n);
	cr_assert_eq(memcmp(now, cpus, (size_t)n * sizeof(*cpus)), 0, "mask changed");
}

Test(topology, pin_to_each_allowed_cpu)
{
	int all[TKV__MAX_CPUS], n_all = n_allowed;

	memcpy(all, allowed, sizeof(all));
	for (int i = 0; i < n_all; i++) {
		cr_assert_eq(tkv__pin_self(all[i]), 0, "pin %d: %s", all[i], tkv_last_error());
		expect_mask(&all[i], 1);
		/* Pinning the running thread migrates it before returning. */
		cr_assert_eq(sched_getcpu(), all[i]);
	}
}

Test(topology, pin_to_invalid_cpu_fails_cleanly)
{
	const int bad[] = {100000, -1, TKV__MAX_CPUS, cpu_outside_mask()};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char num[16];

		tkv__clear_error();
		cr_assert_eq(tkv__pin_self(bad[i]), -EINVAL, "pin %d", bad[i]);
		snprintf(num, sizeof(num), "cpu %d", bad[i]);
		cr_assert(strstr(tkv_last_error(), num), "message '%s'", tkv_last_error());
		expect_mask(allowed, n_allowed);
	}
}

static void *pin_hi(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)tkv__pin_self(hi);
}

Test(topology, pin_changes_only_the_calling_thread)
{
	pthread_t th;
	void *ret;

	need_two_cpus();
	cr_assert_eq(pthread_create(&th, NULL, pin_hi, NULL), 0);
	cr_assert_eq(pthread_join(th, &ret), 0);
	cr_assert_eq((intptr_t)ret, 0);
	expect_mask(allowed, n_allowed);
}
