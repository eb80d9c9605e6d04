#!/usr/bin/env bash
# Runs the default tierkv-bench run at a small size and checks what people
# look at: the JSON has every field the issues name (for the pipeline, the
# baselines and the evict scenario), the CSV has a row per result, the plots
# are PNG files; then `--trace FILE` writes a trace that tierkv-trace
# summarizes and converts to JSON. Not a benchmark: no figure is asserted.
# Usage: smoke.sh BENCH TRACE_TOOL
set -euo pipefail
bench=$1 trace_tool=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bench" --geometry qwen2.5-7b --max-workers 1 --reps 1 --hot-bytes 32M \
	--out "$out" --evict-dir "$out" >"$out/table.txt"

fail() { echo "bench-smoke: $*" >&2; exit 1; }
for f in results.json results.csv throughput.png latency.png; do
	[[ -s $out/$f ]] || fail "$f missing or empty"
done
for f in throughput.png latency.png; do
	[[ $(head -c 8 "$out/$f" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] ||
		fail "$f is not a PNG"
done
for key in scenario geometry dtype workers batch tokens_per_s gbps limit_gbps ratio; do
	grep -q "\"$key\": " "$out/results.json" || fail "results.json lacks $key"
done
for scen in pipeline naive mutex-queue evict; do
	grep -q "\"scenario\": \"$scen\"" "$out/results.json" || fail "no $scen result"
done
for key in evict_gbps raw_write_gbps write_ratio promote_gbps raw_read_gbps read_ratio \
	p99_ns p99_ns_no_evict p99_ratio; do
	grep -q "\"$key\": " "$out/results.json" || fail "evict result lacks $key"
done
rows=$(($(wc -l <"$out/results.csv") - 1))
objs=$(grep -c '"scenario"' "$out/results.json")
[[ $rows -eq $objs ]] || fail "CSV has $rows rows, JSON $objs objects"

"$bench" --geometry qwen2.5-7b --max-workers 1 --reps 1 --hot-bytes 32M \
	--trace "$out/run.trace" >"$out/trace.txt"
grep -q "tracing cost" "$out/trace.txt" || fail "--trace did not report its cost"
"$trace_tool" "$out/run.trace" >"$out/summary.txt"
grep -q copy "$out/summary.txt" || fail "trace summary has no copy stage"
"$trace_tool" "$out/run.trace" --json "$out/run.json"
grep -q '"traceEvents"' "$out/run.json" || fail "trace JSON lacks traceEvents"
echo "bench-smoke: OK ($objs results, plots and trace checked)"
