#!/usr/bin/env bash
# Builds and runs the whole test suite in every configuration CI requires:
# optimized, ThreadSanitizer, AddressSanitizer+UBSan, and the aarch64 kernels
# cross-built and run under qemu-aarch64-static. Exits non-zero on any failure.
# Usage: tools/test-all.sh [preset ...]   (default: release tsan asan aarch64)
set -uo pipefail
cd "$(dirname "$0")/.."

presets=("$@")
[[ ${#presets[@]} -eq 0 ]] && presets=(release tsan asan aarch64)

passed=0 failed=0 failed_names=()
for p in "${presets[@]}"; do
	echo "==== [$p] configure + build" >&2
	if ! cmake --preset "$p" >"build-$p.log" 2>&1 || ! cmake --build --preset "$p" >>"build-$p.log" 2>&1; then
		tail -n 40 "build-$p.log" >&2
		echo "==== [$p] BUILD FAILED (full log: build-$p.log)" >&2
		failed=$((failed + 1)) failed_names+=("$p:build")
		continue
	fi
	echo "==== [$p] test" >&2
	ctest --preset "$p" -V 2>&1 | tee "build/$p/ctest.log" | \
		grep -E '^[0-9]+: \[====\] Synthesis|Test +#|tests passed|Failed|EXPECTED-FAIL|qemu' >&2
	# ctest -V prefixes each test's output with its number; count per test.
	n_pass=$(grep -cE 'Test +#[0-9]+: .* Passed' "build/$p/ctest.log")
	n_fail=$(grep -cE 'Test +#[0-9]+: .*(\*\*\*|Failed|Exception|Timeout)' "build/$p/ctest.log")
	passed=$((passed + n_pass)) failed=$((failed + n_fail))
	[[ $n_fail -gt 0 ]] && failed_names+=("$p")
	rm -f "build-$p.log"
done

echo "==== test-all: configurations: ${presets[*]}" >&2
[[ ${#failed_names[@]} -gt 0 ]] && echo "==== failures in: ${failed_names[*]}" >&2
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
