/*
 * topology.c - finding the performance cores in sysfs and pinning a worker
 * thread to one (rules and invariants: topology.h).
 *
 * sysfs is read as untrusted text: every file may be absent, empty, longer
 * than expected or garbage (a fake tree in a test, a half-loaded driver, a
 * container's masked /sys). None of that is an error of the call; it only
 * makes a rule inapplicable. Everything lives on the stack (about 24 KiB in
 * detection), so this works before the runtime's allocators exist.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_* and pthread_setaffinity_np */
#include "runtime/topology.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "tierkv.h"

_Static_assert(TKV__MAX_CPUS == CPU_SETSIZE,
	       "a cpu_set_t must cover every CPU number we can return");

/* The longest cpulist for 1024 CPUs ("0,2,4,...,1022\n") is about 2 KiB; a
 * file that fills this buffer is not an attribute we understand. */
#define ATTR_MAX 4096
/* Room left after the root for "/devices/system/cpu/cpu1023/cpufreq/...". */
#define ROOT_MAX (PATH_MAX - 128)
/* Internal only: "more CPUs than the caller's array holds", reported as
 * -ERANGE but with its own message. */
#define CPULIST_FULL (-ENOSPC)

/* ---- cpulist parsing --------------------------------------------------- */

static const char *skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	return p;
}

/* Reads one decimal number at p, or returns NULL if there is none. Growth
 * stops past INT_MAX: such a CPU is out of range anyway, and the cap keeps
 * "99999999999999999999" from overflowing. */
static const char *scan_number(const char *p, long long *v)
{
	long long n = 0;

	if (*p < '0' || *p > '9')
		return NULL;
	for (; *p >= '0' && *p <= '9'; p++)
		if (n <= INT_MAX)
			n = n * 10 + (*p - '0');
	*v = n;
	return p;
}

/* Keeps cpus[0..n) ascending and unique. A binary search for the place, so
 * that a list repeating "0-1023" a thousand times costs milliseconds, not a
 * quadratic scan per CPU; the kernel's sorted lists always land at the end. */
static int insert_cpu(int *cpus, int n, int max, int cpu)
{
	int i = 0, j = n;

	while (i < j) {
		int mid = i + (j - i) / 2;

		if (cpus[mid] < cpu)
			i = mid + 1;
		else
			j = mid;
	}
	if (i < n && cpus[i] == cpu)
		return n;
	if (n == max)
		return CPULIST_FULL;
	memmove(&cpus[i + 1], &cpus[i], (size_t)(n - i) * sizeof(*cpus));
	cpus[i] = cpu;
	return n + 1;
}

/* One "a" or "a-b" item at p; returns the text after it, or NULL with *bad
 * at the character that broke it. */
static const char *scan_item(const char *p, long long *lo, long long *hi,
			     const char **bad)
{
	const char *q = scan_number(p, lo);

	*bad = p;
	if (!q)
		return NULL;
	*hi = *lo;
	if (*q != '-')
		return q;
	*bad = q + 1;
	return scan_number(q + 1, hi);
}

/* The parser proper, without messages, so detection can try a sysfs file
 * without overwriting the thread's last error. On failure *bad points into
 * s at the offending text. */
static int scan_cpulist(const char *s, int *cpus, int max, int max_cpu,
			const char **bad)
{
	const char *p = skip_space(s);
	int n = 0;

	*bad = p;
	if (*p == '\0')
		return 0; /* the kernel prints an empty set as "\n" */
	for (;;) {
		long long lo, hi;
		const char *item = p;

		p = scan_item(item, &lo, &hi, bad);
		if (!p)
			return -EINVAL;
		*bad = item;
		if (hi < lo)
			return -EINVAL;
		if (hi >= max_cpu)
			return -ERANGE;
		for (long long c = lo; c <= hi && n >= 0; c++)
			n = insert_cpu(cpus, n, max, (int)c);
		if (n < 0 || *p != ',')
			break;
		p++;
	}
	*bad = skip_space(p);
	return n < 0 || **bad == '\0' ? n : -EINVAL;
}

/* How much of p to quote: up to the end of its line, at most 32 characters. */
static int quote_len(const char *p)
{
	int n = 0;

	while (p[n] != '\0' && p[n] != '\n' && n < 32)
		n++;
	return n;
}

static int cpulist_fail(const char *s, const char *bad, int err, int max, int max_cpu)
{
	int sl = quote_len(s), bl = quote_len(bad);

	if (err == CPULIST_FULL)
		return tkv__fail(-ERANGE, "cpulist \"%.*s\": more than %d CPUs", sl, s, max);
	if (err == -ERANGE)
		return tkv__fail(-ERANGE, "cpulist \"%.*s\": \"%.*s\" names a CPU >= %d", sl,
				 s, bl, bad, max_cpu);
	if (bl == 0)
		return tkv__fail(-EINVAL, "cpulist \"%.*s\": malformed: ends early", sl, s);
	return tkv__fail(-EINVAL, "cpulist \"%.*s\": malformed at \"%.*s\"", sl, s, bl, bad);
}

int tkv__parse_cpulist(const char *s, int *cpus, int max, int max_cpu)
{
	const char *bad;
	int n;

	if (!s || max < 0 || max_cpu < 0 || (!cpus && max > 0))
		return tkv__fail(-EINVAL, "cpulist: NULL text or array, or negative max (%d) "
					  "or max_cpu (%d)", max, max_cpu);
	n = scan_cpulist(s, cpus, max, max_cpu, &bad);
	return n >= 0 ? n : cpulist_fail(s, bad, n, max, max_cpu);
}

/* ---- reading sysfs ------------------------------------------------------ */

/* Whole file into buf as a string. Returns its length, -ENOENT if there is
 * no such file, or another negative errno when the content cannot be trusted
 * (read error, too long, an embedded NUL). */
static int read_attr(const char *path, char *buf, size_t size)
{
	/* O_NONBLOCK: a FIFO planted in a fake tree reads as empty instead of
	 * hanging detection until someone writes to it. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), err = 0;
	size_t len = 0;

	if (fd < 0)
		return errno == ENOTDIR ? -ENOENT : -errno;
	while (!err) {
		ssize_t r = read(fd, buf + len, size - 1 - len);

		if (r < 0) {
			if (errno != EINTR)
				err = -errno;
			continue;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len == size - 1)
			err = -EFBIG;
	}
	close(fd);
	if (err)
		return err;
	buf[len] = '\0';
	return strlen(buf) == len ? (int)len : -EINVAL;
}

/* One positive decimal number, optionally followed by whitespace, as sysfs
 * prints it ("1024\n"). Zero is refused: no performance measure is zero, so
 * a zero means a driver that has nothing to say. */
static int parse_positive(const char *s, unsigned long long *v)
{
	unsigned long long n = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (n > (ULLONG_MAX - d) / 10)
			return -ERANGE;
		n = n * 10 + d;
	}
	if (p == s || n == 0 || *skip_space(p) != '\0')
		return -EINVAL;
	*v = n;
	return 0;
}

__attribute__((format(printf, 2, 3)))
static int path_of(char *path, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(path, PATH_MAX, fmt, ap);
	va_end(ap);
	return n >= 0 && n < PATH_MAX ? 0 : -ENAMETOOLONG;
}

/* ---- detection ---------------------------------------------------------- */

typedef struct detect_ctx {
	const char *root;
	cpu_set_t allowed; /* this thread's sched_getaffinity mask */
	int n_cands;       /* the CPUs rules 2-4 compare, ascending */
	int cands[TKV__MAX_CPUS];
	unsigned long long vals[TKV__MAX_CPUS]; /* per candidate; 0 = absent */
} detect_ctx;

/* Parses a cpulist file; <= 0 for absent, garbage or empty. */
static int read_cpulist(const char *path, int *cpus)
{
	char buf[ATTR_MAX];
	const char *bad;

	if (read_attr(path, buf, sizeof(buf)) < 0)
		return 0;
	return scan_cpulist(buf, cpus, TKV__MAX_CPUS, TKV__MAX_CPUS, &bad);
}

/* Online CPUs first: an offline CPU can never be in the affinity mask, so
 * letting it win "highest" would only hide the online ones. */
static void enumerate_cpus(detect_ctx *ctx)
{
	static const char *const lists[] = {"online", "possible"};
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		if (path_of(path, "%s/devices/system/cpu/%s", ctx->root, lists[i]) != 0)
			continue;
		ctx->n_cands = read_cpulist(path, ctx->cands);
		if (ctx->n_cands > 0)
			return;
	}
	/* No usable list: compare the CPUs we may run on, the only ones we can
	 * return anyway. */
	ctx->n_cands = 0;
	for (int c = 0; c < TKV__MAX_CPUS; c++)
		if (CPU_ISSET(c, &ctx->allowed))
			ctx->cands[ctx->n_cands++] = c;
}

/* Drops the CPUs this thread may not run on; keeps the order. */
static int keep_allowed(const detect_ctx *ctx, int *cpus, int n)
{
	int kept = 0;

	for (int i = 0; i < n; i++)
		if (CPU_ISSET(cpus[i], &ctx->allowed))
			cpus[kept++] = cpus[i];
	return kept;
}

/* Rule 1: a cpulist file naming the performance CPUs outright. */
static int rule_cpulist(const detect_ctx *ctx, const char *rel, tkv__topology *t)
{
	char path[PATH_MAX];
	int n;

	if (path_of(path, "%s/%s", ctx->root, rel) != 0)
		return 0;
	n = read_cpulist(path, t->cpus);
	t->n_cpus = keep_allowed(ctx, t->cpus, n > 0 ? n : 0);
	t->all_equal = 0;
	return t->n_cpus > 0;
}

/* Reads every candidate's attribute into ctx->vals (0 where absent).
 * Returns the largest value, or 0 if none was read or one was garbage: a
 * single lying file makes the comparison meaningless. */
static unsigned long long read_values(detect_ctx *ctx, const char *attr)
{
	unsigned long long best = 0;
	char path[PATH_MAX], buf[ATTR_MAX];

	for (int i = 0; i < ctx->n_cands; i++) {
		int r = -ENAMETOOLONG;

		ctx->vals[i] = 0;
		if (path_of(path, "%s/devices/system/cpu/cpu%d/%s", ctx->root,
			    ctx->cands[i], attr) == 0)
			r = read_attr(path, buf, sizeof(buf));
		if (r == -ENOENT)
			continue;
		if (r < 0 || parse_positive(buf, &ctx->vals[i]) != 0)
			return 0;
		if (ctx->vals[i] > best)
			best = ctx->vals[i];
	}
	return best;
}

/* Rules 2-4: the allowed candidates whose attribute equals the maximum. */
static int rule_highest(detect_ctx *ctx, const char *attr, tkv__topology *t)
{
	unsigned long long best = read_values(ctx, attr);

	t->n_cpus = 0;
	t->all_equal = 1;
	if (best == 0)
		return 0;
	for (int i = 0; i < ctx->n_cands; i++) {
		if (ctx->vals[i] == 0)
			continue;
		if (ctx->vals[i] != best)
			t->all_equal = 0;
		else if (CPU_ISSET(ctx->cands[i], &ctx->allowed))
			t->cpus[t->n_cpus++] = ctx->cands[i];
	}
	return t->n_cpus > 0;
}

/* Rule 5: nothing tells the cores apart, so every CPU we may use is one. */
static int rule_affinity(const detect_ctx *ctx, tkv__topology *t)
{
	t->n_cpus = 0;
	for (int c = 0; c < TKV__MAX_CPUS; c++)
		if (CPU_ISSET(c, &ctx->allowed))
			t->cpus[t->n_cpus++] = c;
	t->all_equal = 1;
	t->source = "affinity";
	return t->n_cpus > 0;
}

static const struct highest_rule {
	const char *attr; /* under <root>/devices/system/cpu/cpuN/ */
	const char *source;
} highest_rules[] = {
	{"cpu_capacity", "cpu_capacity"},
	{"acpi_cppc/highest_perf", "acpi_cppc highest_perf"},
	{"cpufreq/cpuinfo_max_freq", "cpufreq max_freq"},
};

static int run_rules(detect_ctx *ctx, tkv__topology *t)
{
	if (rule_cpulist(ctx, "devices/cpu_core/cpus", t)) {
		t->source = "intel-hybrid cpu_core";
		return 1;
	}
	enumerate_cpus(ctx);
	for (size_t i = 0; i < sizeof(highest_rules) / sizeof(highest_rules[0]); i++) {
		if (rule_highest(ctx, highest_rules[i].attr, t)) {
			t->source = highest_rules[i].source;
			return 1;
		}
	}
	return rule_affinity(ctx, t);
}

int tkv__topology_detect(const char *sysfs_root, tkv__topology *out)
{
	detect_ctx ctx;
	tkv__topology t;

	if (!out)
		return tkv__fail(-EINVAL, "topology: out is NULL");
	ctx.root = sysfs_root ? sysfs_root : "/sys";
	if (strlen(ctx.root) > ROOT_MAX)
		return tkv__fail(-ENAMETOOLONG, "topology: sysfs root is longer than %d bytes",
				 ROOT_MAX);
	CPU_ZERO(&ctx.allowed);
	if (sched_getaffinity(0, sizeof(ctx.allowed), &ctx.allowed) != 0) {
		int err = errno;

		return tkv__fail(-err, "topology: sched_getaffinity: %s", tkv_strerror(-err));
	}
	if (!run_rules(&ctx, &t))
		return tkv__fail(-ENOENT, "topology: this thread's affinity mask has no CPU");
	t.n_allowed = CPU_COUNT(&ctx.allowed);
	*out = t;
	return 0;
}

/* ---- pinning ------------------------------------------------------------ */

int tkv__pin_self(int cpu)
{
	cpu_set_t set;
	int err;

	/* CPU_SET silently ignores a CPU past the set; say so ourselves. */
	if (cpu < 0 || cpu >= TKV__MAX_CPUS)
		return tkv__fail(-EINVAL, "pin: cpu %d is outside [0, %d)", cpu, TKV__MAX_CPUS);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (err != 0)
		return tkv__fail(-err, "pin: cpu %d: pthread_setaffinity_np failed (%s)%s", cpu,
				 tkv_strerror(-err),
				 err == EINVAL ? ": not online or not in this thread's cpuset" : "");
	return 0;
}
