/*
 * kernels_qemu_main.c - runs the kernel checks of kernel_checks.h without
 * Criterion, for builds that have none: the aarch64 cross build, where ctest
 * starts this binary through qemu-aarch64-static (CMAKE_CROSSCOMPILING_EMULATOR).
 * Prints each check, the ISA the dispatcher selected and a closing line
 *     kernels (aarch64/neon under qemu-aarch64-static): N passed, 0 failed
 * and exits non-zero if any check failed.
 *
 * Usage: kernels_qemu [--emulator NAME]   (NAME only labels the closing line)
 *
 * Checks marked fresh read environment variables that the dispatcher reads
 * once per process, so they run first, each in a forked child, before this
 * process calls into the kernels.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel_checks.h"

typedef struct check {
	const char *name;
	bool (*fn)(kc_why *);
	bool fresh;
} check;

#define KC_ENTRY(name, fresh) {#name, kc_##name, fresh},
static const check checks[] = {KC_CHECKS(KC_ENTRY)};
#define N_CHECKS (sizeof(checks) / sizeof(checks[0]))

static bool run_in_child(const check *c, kc_why *w)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return kc_fail(w, "fork failed");
	if (pid == 0) {
		kc_why cw = {""};
		bool ok = c->fn(&cw);
		if (!ok)
			fprintf(stderr, "    %s\n", cw.msg);
		fflush(NULL);
		_exit(ok ? 0 : 1);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return kc_fail(w, "failed in its child process (reason above)");
	return true;
}

static const char *arch_name(void)
{
#if defined(__aarch64__)
	return "aarch64";
#elif defined(__x86_64__)
	return "x86_64";
#else
	return "unknown-arch";
#endif
}

int main(int argc, char **argv)
{
	const char *emulator = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--emulator") == 0 && i + 1 < argc)
			emulator = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--emulator NAME]\n", argv[0]);
			return 2;
		}
	}

	unsigned passed = 0, failed = 0;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < N_CHECKS; i++) {
			const check *c = &checks[i];
			if (c->fresh != (pass == 0))
				continue;
			kc_why w = {""};
			bool ok = c->fresh ? run_in_child(c, &w) : c->fn(&w);
			printf("%-32s %s%s%s\n", c->name, ok ? "ok" : "FAILED: ", ok ? "" : w.msg,
			       c->fresh ? "  (own process)" : "");
			ok ? passed++ : failed++;
		}

	const tkv__kernels *k = tkv__kernels_get(TKV_ISA_AUTO);
	const char *crc = k->crc32c == tkv__crc32c_ref ? "table (scalar)" : "hardware";
	char thr[32] = "off";
	if (k->stream_threshold != SIZE_MAX)
		snprintf(thr, sizeof(thr), "%zu bytes", k->stream_threshold);
	printf("selected ISA: %s (stream threshold %s), crc32c: %s\n", tkv_isa_name(k->isa), thr,
	       crc);
	printf("kernels (%s/%s%s%s): %u passed, %u failed\n", arch_name(), tkv_isa_name(k->isa),
	       emulator && *emulator ? " under " : "", emulator ? emulator : "", passed, failed);
	return failed ? 1 : 0;
}
