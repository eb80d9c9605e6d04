/*
 * boxfort_arena.c - lets Criterion 2.4.1 start under ThreadSanitizer.
 *
 * Linked into every Criterion test binary of the TSan build only (see
 * tests/tsan/CMakeLists.txt). Upstream issue: Snaipe/Criterion#274.
 *
 * Why: Criterion's bundled BoxFort maps one shared "inheritable arena" at
 * start-up, at an address it draws from rand_r(). In the libcriterion.so.3 of
 * Debian 12 (read from its disassembly) the candidate is
 *     0x200000000000 + (rand_r(&seed) & 0x3fffff) * 16 MiB,
 * each page of it is probed with mincore() and must be unmapped, the mapping
 * is MAP_SHARED|MAP_FIXED, and it gives up after 10 candidates with "Could not
 * initialize inheritable arena". That range is [0x200000000000,
 * 0x600000000000), and TSan's x86_64 layout reserves all of it except the
 * "mid app" window [0x550000000000, 0x568000000000) where the kernel puts the
 * PIE executable, so 10 random draws almost never land in a hole.
 *
 * What: this file defines rand_r. The executable's definition comes first in
 * symbol lookup, so it interposes the call BoxFort makes from libcriterion
 * (and TSan's own rand_r interceptor). Calls from anywhere else get the real
 * rand_r, untouched. For BoxFort's calls it returns a draw whose candidate
 * address is a free 16 MiB slot below the lowest address a PIE executable is
 * ever loaded at (ELF_ET_DYN_BASE, 0x555555554000 on x86_64, plus ASLR, which
 * only adds). That matters because each test runs in a child that Criterion
 * re-executes from /proc/self/exe and that maps the arena at the same address
 * with MAP_FIXED: the child's executable and heap land at a random place at
 * or above that base, never in the slot chosen here, and TSan's reservations
 * are the same in every process.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if !defined(__x86_64__)
#error "boxfort_arena.c encodes BoxFort's and TSan's x86_64 address layout"
#endif

/* BoxFort's draw, as libcriterion computes it. */
#define BXF_BASE 0x200000000000ull
#define BXF_STEP (1ull << 24)
#define BXF_MASK 0x3fffffull

/* The part of TSan's mid-app window that no PIE executable or its brk heap
 * can occupy. */
#define WINDOW_LO 0x550000000000ull
#define WINDOW_HI 0x555000000000ull

/* Room required after the slot: the arena starts small but BoxFort may grow
 * it in place. */
#define SLOT_ROOM (1ull << 30)

typedef int (*rand_r_fn)(unsigned int *);

/* Test code may call rand_r from several threads at once; the lookup is
 * idempotent, and atomic so that TSan has nothing to report here. */
static rand_r_fn real_rand_r(void)
{
	static rand_r_fn fn;
	rand_r_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);

	if (!f) {
		f = (rand_r_fn)dlsym(RTLD_NEXT, "rand_r");
		__atomic_store_n(&fn, f, __ATOMIC_RELEASE);
	}
	return f;
}

/* True if the caller of rand_r is code inside libcriterion (BoxFort is
 * compiled into it). */
static int called_from_criterion(const void *ret)
{
	Dl_info info;

	if (!dladdr(ret, &info) || !info.dli_fname)
		return 0;
	const char *base = strrchr(info.dli_fname, '/');
	return strncmp(base ? base + 1 : info.dli_fname, "libcriterion", 12) == 0;
}

/* True if [lo, hi) overlaps no mapping listed in /proc/self/maps. */
static int range_is_free(FILE *maps, uint64_t lo, uint64_t hi)
{
	char line[512];
	unsigned long long a, b;

	rewind(maps);
	while (fgets(line, sizeof(line), maps)) {
		if (sscanf(line, "%llx-%llx", &a, &b) == 2 && a < hi && b > lo)
			return 0;
	}
	return 1;
}

/* A draw whose BoxFort candidate is a free slot of the window, starting the
 * search at a slot picked by `entropy` so runs do not all use one address.
 * -1 if the window is full or the maps cannot be read. */
static long steer(unsigned int entropy)
{
	const uint64_t n_slots = (WINDOW_HI - SLOT_ROOM - WINDOW_LO) / BXF_STEP;
	FILE *maps = fopen("/proc/self/maps", "r");
	long draw = -1;

	if (!maps)
		return -1;
	for (uint64_t i = 0; i < n_slots && draw < 0; i++) {
		uint64_t slot = WINDOW_LO + ((entropy + i) % n_slots) * BXF_STEP;

		if (range_is_free(maps, slot, slot + SLOT_ROOM))
			draw = (long)(((slot - BXF_BASE) / BXF_STEP) & BXF_MASK);
	}
	fclose(maps);
	return draw;
}

__attribute__((visibility("default"))) int rand_r(unsigned int *seed)
{
	rand_r_fn fn = real_rand_r();
	/* Advance the caller's seed exactly as the real function would; the
	 * fallback only matters if dlsym failed, which glibc does not do. */
	int r = fn ? fn(seed) : (int)((*seed = *seed * 1103515245u + 12345u) >> 1);

	if (!called_from_criterion(__builtin_return_address(0)))
		return r;
	long draw = steer((unsigned int)r);
	if (draw < 0) {
		fprintf(stderr, "boxfort_arena: no free slot in [%#llx, %#llx); "
				"leaving BoxFort's draw alone\n",
			WINDOW_LO, WINDOW_HI);
		return r;
	}
	return (int)draw;
}
