#!/usr/bin/env bash
# run.sh - the install test: installs a built tierkv into a temporary prefix,
# then builds tests/install/consumer.c against that INSTALLED copy four ways
# and runs each: pkg-config shared, pkg-config fully static (--static),
# find_package with tierkv::tierkv and with tierkv::tierkv_static.
# Registered in ctest by tests/CMakeLists.txt (non-sanitizer builds).
# Usage: run.sh BUILD_DIR [CMAKE [CC]]
set -euo pipefail
build=$(cd "$1" && pwd)
cmake=${2:-cmake}
cc=${3:-cc}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tierkv-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
say() { echo "install-test: $*"; }
fail() { echo "install-test: FAILED: $*" >&2; exit 1; }

"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
	cat "$tmp/install.log"; fail "cmake --install"; }
[[ -f $prefix/include/tierkv.h ]] || fail "include/tierkv.h not installed"
pc=$(find "$prefix" -name tierkv.pc -print -quit)
config=$(find "$prefix" -name tierkv-config.cmake -print -quit)
[[ -n $pc && -n $config ]] || fail "tierkv.pc or tierkv-config.cmake not installed"
say "installed into a temporary prefix: $(cd "$prefix" && find . -type f | sort | tr '\n' ' ')"

# Runs a consumer binary, checks it says OK and which libtierkv it loaded.
check_run() {
	local name=$1 bin=$2 want_lib=$3
	"$bin" >"$tmp/$name.out" 2>&1 || { cat "$tmp/$name.out"; fail "$name exited non-zero"; }
	grep -q '^consumer: OK$' "$tmp/$name.out" || { cat "$tmp/$name.out"; fail "$name"; }
	local lib
	lib=$(ldd "$bin" 2>/dev/null | awk '/libtierkv/ {print $3}' || true) # static: ldd fails
	if [[ $want_lib == static ]]; then
		[[ -z $lib ]] || fail "$name is meant to be static but loads $lib"
	else
		[[ $(realpath "$lib") == "$prefix"/* ]] || fail "$name loads '$lib', not the installed copy"
	fi
	say "$name: $(head -n1 "$tmp/$name.out" | sed 's/^consumer: //'), round trip OK, libtierkv: ${lib:-linked in}"
}

PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
libdir=$(pkg-config --variable=libdir tierkv)
# shellcheck disable=SC2046 # pkg-config output is meant to be word-split
"$cc" -Wall -Werror "$here/consumer.c" -o "$tmp/pc_shared" \
	$(pkg-config --cflags --libs tierkv) -Wl,-rpath,"$libdir"
check_run pkg-config-shared "$tmp/pc_shared" shared

# README claim: linking libtierkv.so does not replace the program's malloc
# (tierkv reaches jemalloc only through mallocx/sdallocx). The program's own
# libc dependency precedes libtierkv's libjemalloc in symbol lookup order.
malloc_lib() {
	LD_DEBUG=bindings "$1" 2>&1 >/dev/null |
		sed -nE "s|.*binding file $1 \[0\] to ([^ ]+) \[0\]: normal symbol \`malloc'.*|\1|p" | head -n1
}
lib=$(malloc_lib "$tmp/pc_shared")
[[ $lib == */libc.so* ]] || fail "with libtierkv.so, malloc binds to '$lib', not libc"
say "pkg-config-shared: malloc binds to $lib (libtierkv.so does not replace malloc)"
# shellcheck disable=SC2046
"$cc" -Wall -Werror -static "$here/consumer.c" -o "$tmp/pc_static" \
	$(pkg-config --static --cflags --libs tierkv)
check_run pkg-config-static "$tmp/pc_static" static

unset PKG_CONFIG_PATH
"$cmake" -S "$here" -B "$tmp/cmake-consumer" -DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_C_COMPILER="$cc" >"$tmp/configure.log" 2>&1 || {
	cat "$tmp/configure.log"; fail "find_package(tierkv) consumer: configure"; }
"$cmake" --build "$tmp/cmake-consumer" >"$tmp/build.log" 2>&1 || {
	cat "$tmp/build.log"; fail "find_package(tierkv) consumer: build"; }
check_run find_package-tierkv::tierkv "$tmp/cmake-consumer/consumer_shared" shared
check_run find_package-tierkv::tierkv_static "$tmp/cmake-consumer/consumer_static" static
# Informative only: with the static library the program itself links
# -ljemalloc, so jemalloc becomes its malloc once it calls code that uses
# jemalloc (tkv_open); this consumer only calls config functions.
say "find_package-tierkv::tierkv_static: malloc binds to $(malloc_lib "$tmp/cmake-consumer/consumer_static")"
say "OK: pkg-config (shared, static) and find_package (tierkv::tierkv, tierkv::tierkv_static)"
