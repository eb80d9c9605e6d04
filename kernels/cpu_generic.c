/*
 * cpu_generic.c - the kernel levels of an architecture without ISA kernels:
 * none beyond the scalar reference, which dispatch.c always provides.
 */
#include "kernels/kernels_impl.h"

void tkv__arch_kernels(tkv__kernels tab[TKV__ISA_COUNT])
{
	(void)tab;
}
