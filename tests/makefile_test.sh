#!/usr/bin/env bash
# The Makefile's configure step: `make run` (and build, test) runs CMake only
# when the build tree has no CMakeCache.txt yet or BUILD_TYPE / CMAKE_FLAGS
# changed since the last configure. Runs the real Makefile in a temporary
# directory with a stub cmake (which records its calls and writes a
# CMakeCache.txt), so nothing is built and the real build tree is untouched.
#
# usage: makefile_test.sh path/to/Makefile
set -euo pipefail
MAKEFILE=$(realpath "${1:?usage: makefile_test.sh path/to/Makefile}")
# Not a sub-make of whatever runs ctest (no jobserver, no inherited flags).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$work/bin" "$work/scripts" "$work/var"
cat > "$work/bin/cmake" <<'STUB'
#!/bin/bash
echo "cmake $*" >> "$CMAKE_CALLS"
if [ "$1" = "-S" ]; then mkdir -p "$4" && touch "$4/CMakeCache.txt"; fi
STUB
chmod 755 "$work/bin/cmake"
# setup is done: its stamp is newer than the scripts.
touch -d '2020-01-01' "$work/scripts/setup.sh" "$work/scripts/mnist_json_to_idx.js"
touch "$work/var/.setup-stamp"
export CMAKE_CALLS="$work/cmake-calls"
export PATH="$work/bin:$PATH"

# make TARGET [VAR=value...]: runs it in $work, returns the cmake calls made.
calls() {
  : > "$CMAKE_CALLS"
  make --no-print-directory -s -f "$MAKEFILE" -C "$work" "$@" >/dev/null
  cat "$CMAKE_CALLS"
}
configures() { grep -c '^cmake -S' <<<"$1" || true; }

out=$(calls build)
[ "$(configures "$out")" = 1 ] || fail "a fresh tree was not configured: $out"
grep -q -- '--build build' <<<"$out" || fail "no cmake --build: $out"

out=$(calls build)
[ "$(configures "$out")" = 0 ] || fail "configured again with nothing changed: $out"
grep -q -- '--build build' <<<"$out" || fail "no cmake --build: $out"

# make -n run: what `make run` would do, without running the server.
dry=$(make --no-print-directory -n -f "$MAKEFILE" -C "$work" run)
if grep -q 'cmake -S' <<<"$dry"; then fail "make run would configure again: $dry"; fi
grep -q 'server/bnserve' <<<"$dry" || fail "make run would not start the server: $dry"
grep -q -- '--http_listen 127.0.0.1:8000' <<<"$dry" || fail "make run would not serve HTTP: $dry"
grep -q -- '--web_root build/web/dist' <<<"$dry" || fail "make run would not serve the dashboard: $dry"

out=$(calls build CMAKE_FLAGS=-DBNSERVE_NATIVE=ON)
[ "$(configures "$out")" = 1 ] || fail "new CMAKE_FLAGS did not configure: $out"
grep -q -- '-DBNSERVE_NATIVE=ON' <<<"$out" || fail "the flags were not passed: $out"
out=$(calls build CMAKE_FLAGS=-DBNSERVE_NATIVE=ON)
[ "$(configures "$out")" = 0 ] || fail "configured again with the same flags: $out"

out=$(calls build BUILD_TYPE=Debug)
grep -q -- '^cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug' <<<"$out" || fail "BUILD_TYPE: $out"

rm "$work/build/CMakeCache.txt"
out=$(calls build BUILD_TYPE=Debug)
[ "$(configures "$out")" = 1 ] || fail "a tree without CMakeCache.txt was not configured: $out"
echo PASS
