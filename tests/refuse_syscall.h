/*
 * refuse_syscall.h - makes one system call fail with a chosen errno in the
 * calling thread and the threads it starts later, through a seccomp filter, so a test can give the library
 * the answer an older kernel, a sandbox or an exhausted machine would.
 * Criterion runs each test in a process of its own, so the filter ends
 * with the test. Header-only: each test program that needs it includes it.
 */
#ifndef TKV_TESTS_REFUSE_SYSCALL_H
#define TKV_TESTS_REFUSE_SYSCALL_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <criterion/criterion.h>

#if defined(__x86_64__)
#define TKV_TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TKV_TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* System call nr fails with err from now on in this thread and the threads
 * it starts later (Criterion's test process: the test's own thread); with
 * arg >= 0, only when the low 32 bits of argument `arg` equal `value`.
 * Every other call goes through. Skips the test where no architecture
 * constant is known (the filter must check it). */
static inline void refuse_syscall(long nr, int arg, uint32_t value, int err)
{
#ifdef TKV_TEST_AUDIT_ARCH
	/* args[] are 64-bit; on these little-endian targets the low half
	 * comes first */
	const uint32_t arg_at = (uint32_t)offsetof(struct seccomp_data, args[arg >= 0 ? arg : 0]);
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TKV_TEST_AUDIT_ARCH, 0, 5),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg_at),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, value, 0, arg >= 0 ? 1 : 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((uint32_t)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
	cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		int err_set = errno;
		/* EINVAL is also a malformed filter, which must fail the test:
		 * skip only if the kernel refuses even a filter that allows
		 * everything (no seccomp filters here at all). */
		struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
		struct sock_fprog allow_prog = {.len = 1, .filter = allow};
		if ((err_set == EINVAL || err_set == ENOSYS) &&
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &allow_prog) != 0)
			cr_skip_test("seccomp filters are not available here: %s", strerror(err_set));
		cr_assert_fail("seccomp: %s", strerror(err_set));
	}
#else
	(void)nr, (void)arg, (void)value, (void)err;
	cr_skip_test("no seccomp architecture constant for this target");
#endif
}

#endif
