#!/usr/bin/env bash
# Builds and runs the whole test suite in every configuration CI requires:
# optimized, ThreadSanitizer, AddressSanitizer+UBSan, and the aarch64 kernels
# cross-built and run under qemu-aarch64-static. Exits non-zero on any failure.
# Usage: tools/test-all.sh [preset ...]   (default: release tsan asan aarch64)
#
# Output, per configuration and label (`unit`, then `system`; see README.md,
# "Tests"): each ctest result line, every Criterion closing line
# ("[====] Synthesis: ..."), every skipped test with its reason
# ("criterion-skip: ..."), the sanitizer self-test verdicts ("CAUGHT"), the
# install test's summary, the qemu command lines, and the tail of any failing
# test's output; then one summary line per label and configuration. The last
# line of all is "N passed, N failed, N skipped", counting ctest entries over
# all configurations; a skipped entry is not a pass (a configuration that
# does not build, that has a test without a label, or whose ctest run fails
# without a failed test, e.g. "No tests were found", counts as one failure).
# With CI=true, a skipped system test whose reason README.md does not list
# as acceptable is a failure (tests/criterion_run.sh).
# Full logs: build/test-all-<preset>.log (configure + build) and
# build/<preset>/ctest-<label>.log (ctest -V).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

presets=("$@")
[[ ${#presets[@]} -eq 0 ]] && presets=(release tsan asan aarch64)
mkdir -p build

passed=0 failed=0 skipped=0 problems=()

# Prints what a reader needs from a ctest -V log (see the header).
show_ctest_log() {
	grep -E '^ *[0-9]+/[0-9]+ Test +#[0-9]+: |^[0-9]+: \[====\] Synthesis|^[0-9]+: criterion-skip: |^[0-9]+: sanitizer-selftest: |^[0-9]+: install-test: (OK|FAILED|.*does not replace malloc)|qemu-aarch64|^No tests were found|tests passed, ' "$1" |
		sed 's/^/    /'
}

# For each failed test ("N: ..." lines of its output): the Criterion failure
# lines and sanitizer headlines (an assertion often comes long before the
# tail, e.g. followed by a leak report), then the last lines.
show_failures() {
	local log=$1 n
	sed -nE 's/^ *[0-9]+\/[0-9]+ Test +#([0-9]+): .*\*\*\*(Failed|Exception|Timeout|Not Run).*/\1/p' "$log" | while read -r n; do
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

	# Every test has a label: one without would run in neither pass below.
	unlabelled=$(ctest --preset "$p" -N -LE '^(unit|system)$' 2>&1 | sed -nE 's/^ *Test +#[0-9]+: //p')
	if [[ -n $unlabelled ]]; then
		echo "==== [$p] tests without a unit/system label: $unlabelled"
		failed=$((failed + 1)) problems+=("$p: unlabelled tests: $unlabelled")
	fi

	n_total=0
	for label in unit system; do
		echo "==== [$p] test, label $label"
		log=build/$p/ctest-$label.log
		# --timeout: default per test (seconds) so a hang cannot eat CI's
		# budget. --no-tests=ignore: a configuration may have no system
		# tests (aarch64); an empty configuration is caught below.
		ctest --preset "$p" -V -L "^$label\$" --no-tests=ignore --timeout 900 >"$log" 2>&1
		rc=$?
		show_ctest_log "$log"
		n_pass=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed ' "$log")
		n_fail=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*\*\*\*(Failed|Exception|Timeout|Not Run)' "$log")
		n_skip=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*\*\*\*Skipped' "$log")
		[[ $n_fail -gt 0 ]] && show_failures "$log"
		if [[ $rc -ne 0 && $n_fail -eq 0 ]]; then
			# ctest itself failed: a bad preset, a crash of ctest...
			tail -n 5 "$log" | sed 's/^/    /'
			n_fail=1
		fi
		n_total=$((n_total + n_pass + n_fail + n_skip))
		passed=$((passed + n_pass)) failed=$((failed + n_fail)) skipped=$((skipped + n_skip))
		[[ $n_fail -gt 0 ]] && problems+=("$p/$label: $n_fail failed (ctest exit $rc, log: $log)")
		echo "==== [$p] $label: $n_pass passed, $n_fail failed, $n_skip skipped (ctest exit $rc)"
	done
	if [[ $n_total -eq 0 ]]; then
		echo "==== [$p] no tests were found"
		failed=$((failed + 1)) problems+=("$p: no tests")
	fi
done

echo "==== test-all: configurations: ${presets[*]}"
for prob in "${problems[@]}"; do
	echo "==== FAILED: $prob"
done
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
