#!/usr/bin/env bash
# Runs each libFuzzer target of fuzz/ for SECONDS on a copy of its seed
# corpus (fuzz/corpus/TARGET/), with ASan/UBSan on (make fuzz builds them).
# A crash, leak, sanitizer report or timeout fails that target; its input is
# kept as BUILD_DIR/fuzz/TARGET-crash-*. Ends with "N passed, N failed".
#
#   scripts/run_fuzzers.sh BUILD_DIR SECONDS TARGET...
set -uo pipefail
build_dir=$1 seconds=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
passed=0 failed=0
for target in "$@"; do
  binary=$build_dir/fuzz/${target}_fuzzer
  work=$build_dir/fuzz/corpus-$target
  mkdir -p "$work"
  log=$build_dir/fuzz/$target.log
  # -rss_limit_mb: a request may cost memory, but not this much;
  # -timeout: no input may take 10 s.
  if "$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
       -artifact_prefix="$build_dir/fuzz/$target-" "$work" "$root/fuzz/corpus/$target" \
       >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    echo "PASS: $target: ${runs:-?} executions in ${seconds} s, corpus $(ls "$work" | wc -l) inputs"
    passed=$((passed + 1))
  else
    echo "FAIL: $target (log: $log)"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 20 | sed 's/^/     | /'
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
