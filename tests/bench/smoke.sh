#!/usr/bin/env bash
# Runs the default tierkv-bench run at a small size and checks what people
# look at: results.json parses as JSON and has every field the issues name
# (for the pipeline, the baselines and the evict scenario), each a number
# in a sane range (throughputs and limits above 0, throughput ratios in
# (0, 2) and equal to the figures they are the ratio of, percentiles in
# order, wrong_bytes 0 wherever present; the ring's pipeline and producers
# points carry their ratio to the mutex queue inside its spread; each
# figure measured per repetition lies inside its own spread, min-max; no NaN
# or infinity); results.csv parses with one row per JSON result holding the
# same values (a spread column empty where the result has none); the plots
# are PNG files; then `--trace FILE` writes a trace that tierkv-trace
# summarizes and converts to JSON; `producers --cold` measures every point
# on fresh runtimes; `pipeline --versus ring` pairs the ring with a second
# ring runtime; `shared` without --seeds refuses with a
# hint (it needs a server; no server here). Not a benchmark: the ranges only catch
# broken output (a zero, a negative, a ratio of a wrong pair), never a
# slow run. Needs python3 (json and csv from its standard library).
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
python3 - "$out/results.json" "$out/results.csv" <<'EOF' || fail "results.json / results.csv: see above"
import csv, json, math, sys

errors = []
def bad(what):
    errors.append(what)

def reject_constant(name):  # NaN, Infinity, -Infinity are not JSON numbers
    raise ValueError("non-finite number " + name)

def number(r, key, lo=None, hi=None, integer=False):
    """r[key] is a finite number (an int if integer) with lo < value < hi."""
    v = r.get(key)
    where = "%s[%s batch %s] %s" % (r.get("scenario"), r.get("dtype"), r.get("batch"), key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return bad("%s = %r is not a number" % (where, v))
    if integer and not isinstance(v, int):
        return bad("%s = %r is not an integer" % (where, v))
    if (lo is not None and not v > lo) or (hi is not None and not v < hi):
        return bad("%s = %r not in (%s, %s)" % (where, v, lo, hi))
    return v

def ratio_of(r, key, num, den):
    """r[key] is in (0, 2) and is r[num] / r[den] (printed to 4 decimals)."""
    q, n, d = number(r, key, 0, 2), r.get(num), r.get(den)
    if q is not None and isinstance(n, (int, float)) and isinstance(d, (int, float)) and d > 0:
        if abs(q - n / d) > 1e-3 + 1e-3 * q:
            bad("%s %s = %r but %s / %s = %r" % (r["scenario"], key, q, num, den, n / d))

def within_span(r, key, lo_key, hi_key):
    """r[key] lies in [r[lo_key], r[hi_key]], the lowest and highest of its
    repetitions' own values (printed rounded: a little slack)."""
    v, lo, hi = r.get(key), number(r, lo_key, 0), number(r, hi_key, 0)
    if None in (lo, hi) or not isinstance(v, (int, float)):
        return
    slack = 1e-3 * abs(hi) + 1e-4
    if not lo <= hi or not lo - slack <= v <= hi + slack:
        bad("%s %s %r outside its spread [%r, %r]" % (r["scenario"], key, v, lo, hi))

def paired_with_mutex(r, is_mutex):
    """The ring's points carry their ratio to the mutex queue, pair by pair
    (median inside its spread); the mutex queue's points carry none."""
    for key in ("vs_mutex", "cpu_vs_mutex"):
        if is_mutex:
            if key in r:
                bad("%s mutex point carries %s" % (r["scenario"], key))
            continue
        m, mlo, mhi = (number(r, key + sfx, 0) for sfx in ("", "_min", "_max"))
        if None not in (m, mlo, mhi) and not 0 < mlo <= m <= mhi:
            bad("%s %s %r outside its spread [%r, %r]" % (r["scenario"], key, m, mlo, mhi))

with open(sys.argv[1]) as f:
    try:
        results = json.load(f, parse_constant=reject_constant)
    except ValueError as e:
        sys.exit("bench-smoke: results.json does not parse: %s" % e)
if not isinstance(results, list) or not results:
    sys.exit("bench-smoke: results.json is not a non-empty list of results")

scenarios = set()
for r in results:
    if not isinstance(r, dict):
        bad("result %r is not an object" % (r,))
        continue
    scenarios.add(r.get("scenario"))
    for key in ("scenario", "geometry", "dtype"):
        if not isinstance(r.get(key), str) or not r.get(key):
            bad("%s = %r is not a name" % (key, r.get(key)))
    number(r, "workers", 0, 1024, integer=True)
    number(r, "batch", 0, 1 << 20, integer=True)
    number(r, "tokens_per_s", 0)
    number(r, "gbps", 0)
    number(r, "limit_gbps", 0)
    ratio_of(r, "ratio", "gbps", "limit_gbps")
    for key, v in r.items():
        if "wrong" in key and v != 0:
            bad("%s %s = %r: the bench read back wrong data" % (r["scenario"], key, v))
    if r.get("scenario") == "evict":
        for key in ("evict_gbps", "raw_write_gbps", "promote_gbps", "raw_read_gbps"):
            number(r, key, 0)
        ratio_of(r, "write_ratio", "evict_gbps", "raw_write_gbps")
        ratio_of(r, "read_ratio", "promote_gbps", "raw_read_gbps")
        # promotion's and eviction's CPU cost: measured (> 0), and the
        # promotion bound no higher than either single thread allows
        cpu = {k: number(r, k, 0) for k in ("promote_cpu_s_per_gb", "prefetch_cpu_s_per_gb",
                                            "viewer_cpu_s_per_gb", "promote_cpu_bound_gbps",
                                            "evictor_cpu_s_per_gb")}
        within_span(r, "promote_cpu_bound_gbps", "promote_cpu_bound_gbps_min",
                    "promote_cpu_bound_gbps_max")
        within_span(r, "evictor_cpu_s_per_gb", "evictor_cpu_s_per_gb_min",
                    "evictor_cpu_s_per_gb_max")
        if None not in cpu.values():
            for k in ("prefetch_cpu_s_per_gb", "viewer_cpu_s_per_gb"):
                if cpu["promote_cpu_bound_gbps"] > (1 / cpu[k]) * 1.01 + 1e-3:
                    bad("evict promote_cpu_bound_gbps %r above 1 / %s %r" %
                        (cpu["promote_cpu_bound_gbps"], k, 1 / cpu[k]))
        p = [number(r, k, 0, integer=True) for k in ("p50_ns", "p99_ns", "p999_ns")]
        q = [number(r, k, 0, integer=True) for k in ("p50_ns_no_evict", "p99_ns_no_evict",
                                                      "p999_ns_no_evict")]
        for pct in (p, q):
            if None not in pct and not pct[0] <= pct[1] <= pct[2]:
                bad("evict percentiles out of order: %r" % (pct,))
        pr = number(r, "p99_ratio", 0)
        if pr is not None and None not in (p[1], q[1]) and abs(pr - p[1] / q[1]) > 1e-3 * pr:
            bad("evict p99_ratio = %r but p99_ns / p99_ns_no_evict = %r" % (pr, p[1] / q[1]))
        # a pooled percentile lies between its runs' own (each run's CDF
        # below q means the pool's is too); the pooled p99 ratio need not
        # lie between the rounds' ratios, so only their order is checked
        for k in ("p50_ns", "p99_ns", "p999_ns", "p50_ns_no_evict", "p99_ns_no_evict",
                  "p999_ns_no_evict"):
            within_span(r, k, k + "_min", k + "_max")
        lo, hi = number(r, "p99_ratio_min", 0), number(r, "p99_ratio_max", 0)
        if None not in (lo, hi) and not lo <= hi:
            bad("evict p99_ratio_min %r > p99_ratio_max %r" % (lo, hi))
    elif r.get("scenario") == "producers":
        number(r, "threads", 0, 1 << 20, integer=True)
        number(r, "ratio_to_1", 0, 1000)
        if r.get("queue") not in ("ring", "mutex"):
            bad("producers queue = %r" % (r.get("queue"),))
        if r.get("wait_each") not in ("step", "layer"):
            bad("producers wait_each = %r" % (r.get("wait_each"),))
        for a, b in (("store_p50_ns", "store_p99_ns"), ("wait_p50_ns", "wait_p99_ns")):
            x, y = number(r, a, 0, integer=True), number(r, b, 0, integer=True)
            if None not in (x, y) and x > y:
                bad("producers %s > %s" % (a, b))
        number(r, "cpu_s_per_gb", 0)
        lo, hi = number(r, "gbps_min", 0), number(r, "gbps_max", 0)
        if None not in (lo, hi) and not lo <= r["gbps"] <= hi:
            bad("producers gbps %r outside its spread [%r, %r]" % (r["gbps"], lo, hi))
        for k in ("store_p50_ns", "store_p99_ns", "wait_p50_ns", "wait_p99_ns"):
            within_span(r, k, k + "_min", k + "_max")
        # the CPU figure is the mean of the repetitions'; the ratio (median
        # GB/s over median limit) is checked as gbps / limit_gbps above,
        # and its spread for order only
        within_span(r, "cpu_s_per_gb", "cpu_s_per_gb_min", "cpu_s_per_gb_max")
        lo, hi = number(r, "ratio_min", 0), number(r, "ratio_max", 0)
        if None not in (lo, hi) and not lo <= hi:
            bad("producers ratio_min %r > ratio_max %r" % (lo, hi))
        paired_with_mutex(r, r.get("queue") == "mutex")
    else:
        s = number(r, "speedup_vs_naive", 0)
        if r.get("scenario") == "naive" and s != 1:
            bad("naive speedup_vs_naive = %r, not 1" % (s,))
        if r.get("scenario") == "naive":  # its best repetition, its slowest and fastest
            within_span(r, "gbps", "gbps_min", "gbps_max")
            within_span(r, "ratio", "ratio_min", "ratio_max")
    if r.get("scenario") in ("pipeline", "mutex-queue"):
        # repetitions paired with limits: the point is one of them
        for key in ("gbps", "ratio"):
            lo, hi = number(r, key + "_min", 0), number(r, key + "_max", 0)
            if None not in (lo, hi) and not lo <= r[key] <= hi:
                bad("%s %s %r outside its spread [%r, %r]" % (r["scenario"], key, r[key], lo, hi))
        number(r, "cpu_s_per_gb", 0)
        within_span(r, "cpu_s_per_gb", "cpu_s_per_gb_min", "cpu_s_per_gb_max")
        paired_with_mutex(r, r["scenario"] == "mutex-queue")
for want in ("pipeline", "naive", "mutex-queue", "producers", "evict"):
    if want not in scenarios:
        bad("no %s result" % want)

with open(sys.argv[2], newline="") as f:
    rows = list(csv.DictReader(f))
if len(rows) != len(results):
    bad("CSV has %d rows, JSON %d results" % (len(rows), len(results)))
for i, (row, r) in enumerate(zip(rows, results)):
    for key, text in row.items():
        if text == "":  # a spread column of a result without one
            if key in r:
                bad("CSV row %d: column %s is empty, JSON %r" % (i + 1, key, r[key]))
            continue
        if key not in r:
            bad("CSV row %d: column %s is not in the JSON result" % (i + 1, key))
        elif isinstance(r[key], str):
            if text != r[key]:
                bad("CSV row %d: %s = %r, JSON %r" % (i + 1, key, text, r[key]))
        else:
            try:
                v = float(text)
            except ValueError:
                bad("CSV row %d: %s = %r is not a number" % (i + 1, key, text))
                continue
            if not math.isfinite(v) or abs(v - r[key]) > 1e-3 * max(1.0, abs(v)):
                bad("CSV row %d: %s = %r, JSON %r" % (i + 1, key, text, r[key]))

for e in errors:
    print("bench-smoke: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
objs=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$out/results.json")

"$bench" --geometry qwen2.5-7b --max-workers 1 --reps 1 --hot-bytes 32M \
	--trace "$out/run.trace" >"$out/trace.txt"
grep -q "tracing cost" "$out/trace.txt" || fail "--trace did not report its cost"
"$trace_tool" "$out/run.trace" >"$out/summary.txt"
grep -q copy "$out/summary.txt" || fail "trace summary has no copy stage"
"$trace_tool" "$out/run.trace" --json "$out/run.json"
grep -q '"traceEvents"' "$out/run.json" || fail "trace JSON lacks traceEvents"
# The replay scenario on a slice of the Mooncake trace (~6 s): one capacity
# below the working set and one above, hot+cold (restarted halfway) and hot
# only; every reused byte must be right and, above the working set, the hot
# only run must hit exactly the trace's ideal.
trace_file=$(dirname "$0")/../data/mooncake_synthetic_trace.jsonl
"$bench" replay "$trace_file" --requests 400 --capacity 0.25,1.5 --restart-at 0.5 \
	--dir "$out" --out "$out" >"$out/replay.txt"
for f in replay.json replay.csv replay.png; do
	[[ -s $out/$f ]] || fail "replay: $f missing or empty"
done
python3 - "$out/replay.json" "$out/replay.csv" <<'EOF2' || fail "replay.json / replay.csv: see above"
import csv, json, sys
r = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2], newline="")))
errs = []
if len(r) != 4 or len(rows) != 4:
    errs.append("expected 4 replay points, JSON %d CSV %d" % (len(r), len(rows)))
for p in r:
    for k in ("scenario", "trace", "capacity_frac", "hot_frac", "hit_ratio", "hot_hit_ratio",
              "cold_hit_ratio", "ideal_hit_ratio", "lru_hit_ratio", "wrong_bytes", "requests",
              "seconds"):
        if k not in p:
            errs.append("replay point lacks %s" % k)
    if p.get("scenario") != "replay" or p.get("requests") != 400:
        errs.append("bad scenario/requests: %r" % p)
    if p.get("wrong_bytes") != 0 or p.get("errors") != 0 or not p.get("checked_bytes"):
        errs.append("wrong_bytes %r errors %r checked %r" % (p.get("wrong_bytes"), p.get("errors"), p.get("checked_bytes")))
    if not 0 <= p["hit_ratio"] <= p["ideal_hit_ratio"] + 1e-9:
        errs.append("hit_ratio %r above the ideal %r" % (p["hit_ratio"], p["ideal_hit_ratio"]))
    if abs(p["hot_hit_ratio"] + p["cold_hit_ratio"] - p["hit_ratio"]) > 1e-5:
        errs.append("hot + cold hit ratios != hit_ratio")
    if p["capacity_frac"] >= 1 and p["hot_frac"] == 1 and p["hit_ratio"] != p["ideal_hit_ratio"]:
        errs.append("hot only above the working set: hit %r != ideal %r" % (p["hit_ratio"], p["ideal_hit_ratio"]))
for e in errs:
    print("bench-smoke: " + e, file=sys.stderr)
sys.exit(1 if errs else 0)
EOF2
# The shared scenario measures against a Redis server, so without --seeds
# it must refuse (exit status 2) and say how to start one; it never runs
# in the default job.
set +e
"$bench" shared >"$out/shared.txt" 2>&1
st=$?
set -e
[[ $st == 2 ]] || fail "shared without --seeds exited $st, not 2"
grep -q -- "--seeds HOST:PORT" "$out/shared.txt" && grep -q "servers.sh cluster" "$out/shared.txt" ||
	fail "shared without --seeds does not say how to start a server: $(cat "$out/shared.txt")"
# A mistyped option value is refused with a message naming the option,
# never read as a default (a typo must not measure something else).
bad_value() { # expected-option-name, then the bench arguments
	local want=$1
	shift
	set +e
	"$bench" "$@" >"$out/bad.txt" 2>&1
	local st=$?
	set -e
	[[ $st != 0 ]] || fail "'$*' was accepted"
	grep -q -- "$want" "$out/bad.txt" || fail "'$*' did not name $want: $(head -c 300 "$out/bad.txt")"
}
bad_value --policy replay "$trace_file" --policy lfu
bad_value --requests replay "$trace_file" --requests 10x
bad_value --durability replay "$trace_file" --durability fsync
bad_value --capacity replay "$trace_file" --capacity 0.5,x
bad_value --reps pipeline --reps 2x
bad_value --queue producers --queue rin
bad_value --hot-populate producers --hot-populate lazy
bad_value --trace producers --cold --trace "$out/cold.trace"
# --cold: a fresh runtime per timed run, every point still measured
"$bench" producers --cold --hot-populate on-use --threads 1,2 --seqs 4 --reps 2 \
	--geometry qwen2.5-7b --json "$out/cold.json" >"$out/cold.txt" ||
	fail "producers --cold failed: $(tail -c 300 "$out/cold.txt")"
grep -q "cold: a fresh runtime per timed run" "$out/cold.txt" || fail "producers --cold: no cold header"
python3 - "$out/cold.json" <<'EOF' || fail "producers --cold: see above"
import json, sys
rs = [r for r in json.load(open(sys.argv[1])) if r.get("scenario") == "producers"]
pts = sorted((r["queue"], r["threads"]) for r in rs)
want = [("mutex", 1), ("mutex", 2), ("ring", 1), ("ring", 2)]
if pts != want or any(not r["tokens_per_s"] > 0 or r["reps"] != 2 for r in rs):
    sys.exit("producers --cold: points %r, want %r, each with 2 repetitions" % (pts, want))
if any(not r.get("vs_mutex", 0) > 0 for r in rs if r["queue"] == "ring"):
    sys.exit("producers --cold: a ring point without its paired ratio to the mutex queue")
# with 2 repetitions, the ratio is still the point's GB/s over its limit
for r in rs:
    if abs(r["ratio"] - r["gbps"] / r["limit_gbps"]) > 1e-3 * r["ratio"] + 1e-4:
        sys.exit("producers --cold: ratio %r but gbps / limit_gbps %r"
                 % (r["ratio"], r["gbps"] / r["limit_gbps"]))
EOF
grep -q "paired by repetition" "$out/cold.txt" || fail "producers --cold: no paired table"
"$bench" producers --queue ring --threads 1,2 --seqs 4 --reps 1 --geometry qwen2.5-7b \
	--json "$out/ring.json" >"$out/ring.txt" || fail "producers --queue ring failed"
! grep -q "paired by repetition" "$out/ring.txt" || fail "producers --queue ring: a paired table"
! grep -q vs_mutex "$out/ring.json" || fail "producers --queue ring: a paired ratio without a baseline"
bad_value --wait-each producers --wait-each batch
# --wait-each layer: a ticket wait per layer-store, named in the header and the JSON
"$bench" producers --queue ring --wait-each layer --threads 1,2 --seqs 4 --reps 1 \
	--geometry qwen2.5-7b --json "$out/layer.json" >"$out/layer.txt" ||
	fail "producers --wait-each layer failed: $(tail -c 300 "$out/layer.txt")"
grep -q "each ticket waited right after its store" "$out/layer.txt" ||
	fail "producers --wait-each layer: no header"
python3 - "$out/layer.json" "$out/ring.json" <<'EOF' || fail "producers --wait-each: see above"
import json, sys
for path, want in ((sys.argv[1], "layer"), (sys.argv[2], "step")):
    rs = [r for r in json.load(open(path)) if r.get("scenario") == "producers"]
    if len(rs) != 2 or any(r.get("wait_each") != want or not r["tokens_per_s"] > 0 for r in rs):
        sys.exit("%s: producers points %r, want 2 with wait_each %r" % (path, rs, want))
EOF
bad_value --reps evict --reps 0
bad_value --versus pipeline --versus mutx
# --versus ring: the ring paired with a second ring runtime (A/A), named so
"$bench" pipeline --versus ring --geometry qwen2.5-7b --max-workers 1 --reps 1 --hot-bytes 32M \
	--json "$out/aa.json" >"$out/aa.txt" || fail "pipeline --versus ring failed"
grep -q "ring/ring-again" "$out/aa.txt" || fail "pipeline --versus ring: column not named"
python3 - "$out/aa.json" <<'EOF3' || fail "pipeline --versus ring: see above"
import json, sys
rs = json.load(open(sys.argv[1]))
kinds = sorted(set(r["scenario"] for r in rs))
if kinds != ["naive", "pipeline", "ring-again"]:
    sys.exit("pipeline --versus ring: scenarios %r" % (kinds,))
ring = [r for r in rs if r["scenario"] == "pipeline"]
again = [r for r in rs if r["scenario"] == "ring-again"]
if len(ring) != len(again) or any(r.get("versus") != "ring-again" or not r.get("vs_mutex", 0) > 0
                                  for r in ring):
    sys.exit("pipeline --versus ring: a ring point not paired with its ring-again point")
EOF3
echo "bench-smoke: OK ($objs results, plots and trace checked; replay checked; producers --cold checked; pipeline --versus ring checked; shared refuses without a server; bad option values refused)"
