#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, test and bench tierkv.
# Idempotent: when every package is present it only runs dpkg-query and exits.
# Why each dependency is here: see README.md, "Dependencies".
set -euo pipefail

pkgs=(
	build-essential cmake pkg-config git
	libck-dev          # lock-free rings (ck_ring, ck_pr)
	libjemalloc-dev    # per-worker hot-tier arenas
	libcriterion-dev   # unit tests
	liburing-dev       # cold-tier async I/O
	libhiredis-dev     # shared tier: the Redis protocol under our cluster client (tiers/shared_*.c)
	redis-server redis-tools  # shared-tier tests: real cluster and standalone servers on loopback
	libxxhash-dev      # prefix-cache block keys: XXH3-128, seedless (docs/KEY_FORMAT.md)
	python3-xxhash     # tests/key_vectors.py: independent check of the key test vectors
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static  # NEON kernels under qemu
	gnuplot-nox        # bench plots
	python3            # bench smoke test: parses the JSON and CSV it checks
)

missing=()
for p in "${pkgs[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=()
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
	sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
