/*
 * kernels.c - Criterion suite of the copy and CRC32C kernels: one test per
 * check in kernel_checks.h (the same checks the aarch64 qemu driver runs).
 * Criterion runs every test in its own process, which the checks that set
 * TKV_MAX_ISA / TKV_STREAM_THRESHOLD rely on.
 */
#include <criterion/criterion.h>

#include "kernel_checks.h"

#define KC_TEST(name, fresh)                                      \
	Test(kernels, name)                                       \
	{                                                         \
		kc_why why = {""};                                \
		cr_assert(kc_##name(&why), "%s", why.msg);        \
	}
KC_CHECKS(KC_TEST)
