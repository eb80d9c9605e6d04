#!/usr/bin/env bash
# expect_race.sh - runs one case of racy_selftest and tells whether TSan
# caught it for the right reason. Registered in ctest with WILL_FAIL, so the
# exit status is inverted there:
#   non-zero  caught: a "ThreadSanitizer: data race" report whose top frame
#             matches FRAME_REGEX, and the process exited non-zero
#             (halt_on_error=1 in effect)                  -> ctest: Passed
#   0         not caught, caught in the wrong place, or reported but exit 0
#                                                          -> ctest: Failed
# Usage: expect_race.sh FRAME_REGEX COMMAND [ARG...]
set -u
frame_re=$1
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
what="$(basename "$1") ${*:2}"

if ! grep -q 'WARNING: ThreadSanitizer: data race' <<<"$out"; then
	echo "tsan-selftest: NOT CAUGHT: '$what' ran without a data race report (exit $rc)"
	exit 0
fi
# The first frame of each stack in the report ("#0 function file:line").
top=$(grep -E '^ +#0 ' <<<"$out" | head -n 2)
if ! grep -qE "#0 ($frame_re) " <<<"$top"; then
	echo "tsan-selftest: WRONG RACE: '$what' was reported at:"
	echo "$top"
	echo "tsan-selftest: expected a top frame matching '$frame_re'"
	exit 0
fi
if [[ $rc -eq 0 ]]; then
	echo "tsan-selftest: '$what' was reported but exited 0: halt_on_error=1 is not in effect"
	exit 0
fi
summary=$(grep -m1 '^SUMMARY: ThreadSanitizer: data race' <<<"$out" | sed 's/^SUMMARY: //')
echo "tsan-selftest: CAUGHT: '$what' (exit $rc): $summary"
exit "$rc"
