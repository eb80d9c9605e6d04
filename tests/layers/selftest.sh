#!/usr/bin/env bash
# Proves check_includes.sh can fail: a scratch tree with one upward include
# (tiers -> runtime) and one sideways include (bench -> tools) must be
# rejected naming both, and the same tree without them accepted.
set -uo pipefail
check=$(cd "$(dirname "$0")" && pwd)/check_includes.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{base,kernels,tiers,runtime,bench,tools/trace}
echo '#include "base/a.h"' >"$tmp/tiers/ok.c"
echo '#include "tierkv.h"' >"$tmp/base/a.h"
echo '#include "tiers/ok.h"' >"$tmp/runtime/ok.c"
cp "$tmp/tiers/ok.c" "$tmp/bench/ok.c"

out=$("$check" "$tmp") || { echo "selftest: clean tree rejected: $out"; exit 1; }
echo '#include "runtime/runtime.h"' >>"$tmp/tiers/ok.c"
echo '#include "tools/trace/trace_read.h"' >>"$tmp/bench/ok.c"
if out=$("$check" "$tmp"); then
	echo "selftest: violations accepted: $out"
	exit 1
fi
grep -q 'tiers/ok.c:2: tiers/ may not include runtime/' <<<"$out" &&
	grep -q 'bench/ok.c:2: bench/ may not include tools/' <<<"$out" ||
	{ echo "selftest: wrong report: $out"; exit 1; }
echo "selftest: upward and sideways includes caught"
