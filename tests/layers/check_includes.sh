#!/usr/bin/env bash
# The include-direction check (docs/ARCHITECTURE.md, "Layers"):
#   base <- kernels <- tiers <- runtime <- bench, tools
# A library, bench or tool file may include "X/..." only from its own folder
# or a folder below it; "tierkv.h" (include/) is below everything. Up or
# sideways (bench <-> tools) fails, naming file, line and the rule it breaks.
# tests/ may include anything (white-box tests) and is not checked.
# Usage: check_includes.sh [source root]   (default: this repository)
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 2

rank() {
	case $1 in
	base) echo 0 ;; kernels) echo 1 ;; tiers) echo 2 ;; runtime) echo 3 ;;
	bench | tools) echo 4 ;; *) echo -1 ;;
	esac
}

bad=0 checked=0
while IFS= read -r file; do
	from=${file%%/*}
	from_rank=$(rank "$from")
	checked=$((checked + 1))
	while IFS=: read -r line inc; do
		target=${inc#*\"}
		target=${target%%\"*}
		[[ $target == tierkv.h ]] && continue
		if [[ $target != */* ]]; then
			echo "check_includes: $file:$line: #include \"$target\" has no folder (use \"$from/$target\")"
			bad=$((bad + 1))
			continue
		fi
		to=${target%%/*}
		to_rank=$(rank "$to")
		if [[ $to_rank -lt 0 ]]; then
			echo "check_includes: $file:$line: #include \"$target\": unknown layer '$to'"
			bad=$((bad + 1))
		elif [[ $to != "$from" && $to_rank -ge $from_rank ]]; then
			echo "check_includes: $file:$line: $from/ may not include $to/ (\"$target\"): layers point base <- kernels <- tiers <- runtime <- bench, tools"
			bad=$((bad + 1))
		fi
	done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" | sed -E 's/^([0-9]+):(.*)$/\1:\2/')
done < <(find base kernels tiers runtime bench tools -type f \( -name '*.c' -o -name '*.h' \) | sort)

if [[ $checked -eq 0 ]]; then
	echo "check_includes: no source files found under $root"
	exit 1
fi
echo "check_includes: $checked files, $bad violations"
[[ $bad -eq 0 ]]
