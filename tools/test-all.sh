#!/usr/bin/env bash
# Builds and runs the whole test suite in every configuration CI requires:
# optimized, ThreadSanitizer, AddressSanitizer+UBSan, and the aarch64 kernels
# cross-built and run under qemu-aarch64-static. Exits non-zero on any failure.
# Usage: tools/test-all.sh [preset ...]   (default: release tsan asan aarch64)
#
# Output, per configuration: each ctest result line, every Criterion closing
# line ("[====] Synthesis: ..."), the sanitizer self-test verdicts ("CAUGHT"), the
# install test's summary, the qemu command lines, and the tail of any failing
# test's output; then one summary line. The last line of all is the plain
# "N passed, N failed", counting ctest tests over all configurations (a
# configuration that does not build, or whose ctest run fails without a failed
# test, e.g. "No tests were found", counts as one failure).
# Full logs: build/test-all-<preset>.log (configure + build) and
# build/<preset>/ctest.log (ctest -V).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

presets=("$@")
[[ ${#presets[@]} -eq 0 ]] && presets=(release tsan asan aarch64)
mkdir -p build

passed=0 failed=0 problems=()

# Prints what a reader needs from a ctest -V log (see the header).
show_ctest_log() {
	grep -E '^ *[0-9]+/[0-9]+ Test +#[0-9]+: |^[0-9]+: \[====\] Synthesis|^[0-9]+: sanitizer-selftest: |^[0-9]+: install-test: (OK|FAILED|.*does not replace malloc)|qemu-aarch64|^No tests were found|tests passed, ' "$1" |
		sed 's/^/    /'
}

# For each failed test ("N: ..." lines of its output): the Criterion failure
# lines and sanitizer headlines (an assertion often comes long before the
# tail, e.g. followed by a leak report), then the last lines.
show_failures() {
	local log=$1 n
	sed -nE 's/^ *[0-9]+\/[0-9]+ Test +#([0-9]+): .*\*\*\*.*/\1/p' "$log" | while read -r n; do
		echo "    ---- failed test #$n: failure lines"
		grep -E "^$n: " "$log" | grep -E '\[----\] .*(Assertion|Warning)|\[FAIL\]|ERROR: |SUMMARY: ' |
			head -n 20 | sed 's/^/    /'
		echo "    ---- failed test #$n: last 20 lines"
		grep -E "^$n: " "$log" | tail -n 20 | sed 's/^/    /'
	done
}

for p in "${presets[@]}"; do
	buildlog=build/test-all-$p.log
	echo "==== [$p] configure + build"
	if ! { cmake --preset "$p" && cmake --build --preset "$p"; } >"$buildlog" 2>&1; then
		tail -n 40 "$buildlog" | sed 's/^/    /'
		echo "==== [$p] BUILD FAILED (full log: $buildlog)"
		failed=$((failed + 1)) problems+=("$p: build")
		continue
	fi

	echo "==== [$p] test"
	log=build/$p/ctest.log
	# --timeout: default per test (seconds) so a hang cannot eat CI's budget.
	ctest --preset "$p" -V --timeout 900 >"$log" 2>&1
	rc=$?
	show_ctest_log "$log"
	n_pass=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed ' "$log")
	n_fail=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*\*\*\*' "$log")
	[[ $n_fail -gt 0 ]] && show_failures "$log"
	if [[ $rc -ne 0 && $n_fail -eq 0 ]]; then
		# ctest itself failed: no tests (noTestsAction=error), a bad preset...
		tail -n 5 "$log" | sed 's/^/    /'
		n_fail=1
	fi
	passed=$((passed + n_pass)) failed=$((failed + n_fail))
	[[ $n_fail -gt 0 ]] && problems+=("$p: $n_fail failed (ctest exit $rc, log: $log)")
	echo "==== [$p] $n_pass passed, $n_fail failed (ctest exit $rc)"
done

echo "==== test-all: configurations: ${presets[*]}"
for prob in "${problems[@]}"; do
	echo "==== FAILED: $prob"
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
