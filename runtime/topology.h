/*
 * topology.h - which CPUs the runtime's worker threads run on, and pinning a
 * thread to one of them.
 *
 * The runtime starts one worker per performance core and pins it there, so a
 * worker never lands on an efficiency core (which would make its layers the
 * slowest of every batch) and never migrates away from its warm caches.
 * "Performance core" is decided from sysfs by the first rule that names at
 * least one CPU this thread may run on:
 *
 *   1. "intel-hybrid cpu_core"   <root>/devices/cpu_core/cpus (a cpulist; it
 *                                exists only on Intel hybrid parts, beside
 *                                cpu_atom for the efficiency cores)
 *   2. "cpu_capacity"            the CPUs with the highest
 *                                <root>/devices/system/cpu/cpuN/cpu_capacity
 *                                (arm64 big.LITTLE; 1024 marks the biggest)
 *   3. "acpi_cppc highest_perf"  highest cpuN/acpi_cppc/highest_perf
 *   4. "cpufreq max_freq"        highest cpuN/cpufreq/cpuinfo_max_freq
 *   5. "affinity"                every CPU in this thread's sched_getaffinity
 *
 * Invariants:
 *  - Every CPU returned is in the calling thread's affinity mask at the time
 *    of the call: a container's cpuset (or a taskset) is respected. Rules 1-4
 *    find the machine's performance cores first and intersect afterwards, so
 *    a container confined to efficiency cores gets all of its CPUs (rule 5)
 *    rather than an empty answer.
 *  - Rules 2-4 compare the CPUs listed in <root>/devices/system/cpu/online
 *    (else .../possible, else the affinity mask itself). A CPU whose file is
 *    absent is skipped (offline, or no driver for it); a file that exists but
 *    does not hold one positive decimal number makes that whole rule
 *    untrusted, and detection moves on to the next rule.
 *  - "Highest" means exactly equal to the maximum. On x86 parts with favoured
 *    cores (Turbo Boost Max 3.0, AMD preferred cores) rules 3 and 4 can
 *    single out one or two cores; callers that care can check `all_equal`
 *    and n_cpus against the affinity mask.
 *  - Nothing is allocated and no state is kept: both functions are safe to
 *    call from any thread at any time.
 */
#ifndef TKV_RUNTIME_TOPOLOGY_H
#define TKV_RUNTIME_TOPOLOGY_H

/* Also CPU_SETSIZE in glibc: the most CPUs a cpu_set_t, and so we, describe. */
#define TKV__MAX_CPUS 1024

typedef struct tkv__topology {
	int n_cpus;                /* performance CPUs found, in ascending order */
	int cpus[TKV__MAX_CPUS];
	const char *source;        /* static string naming the rule that found them
				      (the quoted names above) */
	int all_equal;             /* 1 if the rule could not tell the CPUs apart
				      (every value equal, or the "affinity" rule):
				      the machine looks symmetric */
	int n_allowed;             /* CPUs in the caller's affinity mask, of any kind */
} tkv__topology;

/* Detects the performance cores (rules above) under sysfs_root, NULL meaning
 * "/sys". Returns 0 and fills *out, or a negative errno with a message and
 * *out untouched: -EINVAL for a NULL out, -ENAMETOOLONG for a sysfs_root too
 * long to build paths under, sched_getaffinity's error (-EINVAL on a machine
 * with more than TKV__MAX_CPUS possible CPUs), or -ENOENT if not even the
 * affinity mask gives a CPU. Missing or malformed sysfs files are not
 * errors: they make detection fall through to the next rule, and leave
 * tkv_last_error() as it was. Uses about 24 KiB of stack. */
int tkv__topology_detect(const char *sysfs_root, tkv__topology *out);

/* Pins the calling thread (only it) to one CPU. Returns 0, or a negative
 * errno with a message: -EINVAL for a cpu outside [0, TKV__MAX_CPUS), else
 * pthread_setaffinity_np's error (-EINVAL for a CPU that is not online or not
 * in the thread's cpuset). On failure the thread's affinity is unchanged. */
int tkv__pin_self(int cpu);

/* Parses a kernel cpulist ("0-3,8,10-11\n": decimal CPUs and inclusive
 * ranges, separated by commas, whitespace allowed only around the whole list;
 * "" and "\n" are the empty list) into cpus[0..max), ascending and without
 * duplicates. Returns the count, or with a message: -EINVAL for NULL s, a
 * negative max or max_cpu, NULL cpus with max > 0, or malformed text (the
 * message quotes the text from the offending character); -ERANGE for a CPU
 * >= max_cpu or more than max distinct CPUs. The kernel's "a-b:stride/group"
 * form is not accepted: sysfs never prints it. Thread-safe; cpus may be
 * changed even when the call fails. */
int tkv__parse_cpulist(const char *s, int *cpus, int max, int max_cpu);

#endif
