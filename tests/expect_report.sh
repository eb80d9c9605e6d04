#!/usr/bin/env bash
# expect_report.sh - runs one deliberately broken program (a case of a
# sanitizer self-test) and tells whether the sanitizer caught it for the
# right reason. Registered in ctest with WILL_FAIL, so the exit status is
# inverted there:
#   non-zero  caught: a report whose headline matches REPORT_REGEX, with a
#             frame matching FRAME_REGEX among the first DEPTH frames of its
#             first two stacks, and the process exited non-zero
#                                                          -> ctest: Passed
#   0         not caught, caught in the wrong place, or reported but exit 0
#                                                          -> ctest: Failed
# Usage: expect_report.sh [--report REPORT_REGEX] [--depth DEPTH] FRAME_REGEX COMMAND [ARG...]
#   REPORT_REGEX defaults to 'WARNING: ThreadSanitizer: data race', DEPTH to 1
#   (the top frame: where the racing access is).
set -u
report_re='WARNING: ThreadSanitizer: data race' depth=1
while [[ $# -gt 0 ]]; do
	case $1 in
	--report) report_re=$2; shift 2 ;;
	--depth) depth=$2; shift 2 ;;
	*) break ;;
	esac
done
frame_re=$1
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
what="$(basename "$1") ${*:2}"

if ! grep -qE "$report_re" <<<"$out"; then
	echo "sanitizer-selftest: NOT CAUGHT: '$what' ran without a '$report_re' report (exit $rc)"
	exit 0
fi
# The first DEPTH frames of the first two stacks ("#N function file:line").
top=$(grep -E "^ +#[0-$((depth - 1))] " <<<"$out" | head -n $((2 * depth)))
if ! grep -qE "#[0-9]+ (0x[0-9a-f]+ in )?($frame_re) " <<<"$top"; then
	echo "sanitizer-selftest: WRONG PLACE: '$what' was reported at:"
	echo "$top"
	echo "sanitizer-selftest: expected a frame matching '$frame_re'"
	exit 0
fi
if [[ $rc -eq 0 ]]; then
	echo "sanitizer-selftest: '$what' was reported but exited 0: the report does not fail the run"
	exit 0
fi
summary=$(grep -m1 '^SUMMARY: ' <<<"$out" | sed 's/^SUMMARY: //')
echo "sanitizer-selftest: CAUGHT: '$what' (exit $rc): $summary"
exit "$rc"
