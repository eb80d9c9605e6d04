#!/usr/bin/env bash
# criterion_run.sh - runs one Criterion test binary for ctest, so that a
# skipped test is neither silent nor a pass. Criterion 2.4.1 exits 0 when a
# test calls cr_skip_test and prints nothing about it without --verbose;
# this reads the binary's TAP report instead and
#   - prints one "criterion-skip: SKIPPED suite::test: reason" line per skip;
#   - exits with the binary's own status if that is non-zero (a failure wins
#     over any skip);
#   - else exits 77 if any test was skipped (the ctest entry has
#     SKIP_RETURN_CODE 77, so ctest reports it as "Skipped", not "Passed");
#   - with CI=true, exits 1 instead if a skipped test of a `system` binary
#     gives a reason that README.md does not list as acceptable (the table
#     between the ci-acceptable-skips markers, section "Skipped tests").
# Usage: criterion_run.sh LABEL README BINARY [ARG...]
set -u
label=$1 readme=$2
shift 2
tap=$(mktemp)
trap 'rm -f "$tap"' EXIT

"$@" --tap="$tap"
rc=$?
[[ $rc -ne 0 ]] && exit "$rc"

# TAP lines of skipped tests: "ok - suite::test  # SKIP reason"
skips=$(sed -nE 's/^ok - ([^ ]+) +# SKIP ?(.*)$/\1\t\2/p' "$tap")
[[ -z $skips ]] && exit 0

# The README's table rows: | `suite::test glob` | `reason regex (ERE)` | why |
acceptable() {
	local test=$1 reason=$2 glob re
	while IFS=$'\t' read -r glob re; do
		# shellcheck disable=SC2053 # glob match on purpose
		[[ $test == $glob ]] && grep -qE -- "$re" <<<"$reason" && return 0
	done < <(sed -n '/<!-- ci-acceptable-skips -->/,/<!-- \/ci-acceptable-skips -->/p' "$readme" |
		sed -nE 's/^\| *`([^`]+)` *\| *`([^`]+)` *\|.*/\1\t\2/p')
	return 1
}

refused=0
while IFS=$'\t' read -r test reason; do
	echo "criterion-skip: SKIPPED $test: $reason"
	if [[ ${CI:-} == true && $label == system ]] && ! acceptable "$test" "$reason"; then
		echo "criterion-skip: NOT ACCEPTED (CI=true, system test, reason not listed in" \
			"$(basename "$readme"), \"Skipped tests\"): $test"
		refused=1
	fi
done <<<"$skips"
[[ $refused -eq 1 ]] && exit 1
exit 77
