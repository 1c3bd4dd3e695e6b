#!/usr/bin/env bash
# Predict and job throughput of 1, 2 and 3 bnserve replicas on one
# PostgreSQL registry, on this machine (issue 12 §4; docs/SCALING.md uses
# the figures). Not part of `make test`: it runs for a few minutes.
#
#   make bench-replicas           (or: bash bench/replicas.sh [BUILD_DIR])
#
# For each replica count N: N servers (1 worker each) on one database;
# `bnctl bench predict` with the N addresses as one round-robin target
# (batch 1 and 256, 4 clients); then JOBS small training jobs submitted
# round-robin, timed until every one has finished. On a 2-core machine
# expect no gain past 2 replicas: the point is the per-replica cost and that
# the figures hold together, not scaling.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bnserve=$build/server/bnserve
bnctl=$build/client/bnctl
duration=${DURATION:-4s}
jobs=${JOBS:-12}
base_port=${BASE_PORT:-56100}
pg_port=${PG_PORT:-56099}
work=$(mktemp -d)
chmod 755 "$work"  # the postgres user (under root) must reach the cluster directory
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/local_postgres.sh stop "$work/pg" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

url=$(scripts/local_postgres.sh start "$work/pg" "$pg_port")
echo "registry $url; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

wait_ready() {
  for _ in $(seq 120); do
    "$bnctl" --server "$1" health --ready >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "server $1 not ready; log:" >&2
  cat "$work"/replica-*.log >&2
  exit 1
}

start_replica() {  # index, extra flags...
  local i=$1
  shift
  "$bnserve" --listen "127.0.0.1:$((base_port + i))" --http_listen "127.0.0.1:$((base_port + 10 + i))" \
    --registry "$url" --replica_id "replica-$i" --workers 1 "$@" >"$work/replica-$i.log" 2>&1 &
  pids+=($!)
  wait_ready "127.0.0.1:$((base_port + i))"
}

stop_replicas() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}

# The default model is trained once, by the first replica of the first round.
start_replica 1 --default_model digits
stop_replicas

printf '\n%-8s %-6s %-8s %12s %12s %10s\n' replicas batch clients "calls/s" "rows/s" "p50 ms"
declare -A job_rate
for n in 1 2 3; do
  targets=()
  for i in $(seq 1 "$n"); do
    start_replica "$i"
    targets+=("127.0.0.1:$((base_port + i))")
  done
  target=$(IFS=,; echo "${targets[*]}")
  "$bnctl" bench predict --server "$target" --model digits --batch 1,256 --clients 4 \
    --duration "$duration" --no-floor >"$work/bench-$n.txt"
  awk -v n="$n" '$1 ~ /^[0-9]+$/ && NF >= 5 { printf "%-8s %-6s %-8s %12s %12s %10s\n", n, $1, $2, $3, $4, $5 }' \
    "$work/bench-$n.txt"

  start=$(date +%s.%N)
  ids=()
  for j in $(seq 1 "$jobs"); do
    ids+=("$("$bnctl" --server "$target" --json train --model "throughput-$n" --hidden 100,100 \
      --epochs 2 --limit 1000 --seed "$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')")
  done
  for id in "${ids[@]}"; do
    until "$bnctl" --server "$target" --json jobs get "$id" |
      python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["state"] not in ("SUCCEEDED","FAILED","CANCELLED"))'; do
      sleep 0.2
    done
  done
  end=$(date +%s.%N)
  job_rate[$n]=$(python3 -c "print(f'{$jobs / ($end - $start) * 60:.1f}')")
  stop_replicas
done

printf '\n%-8s %14s\n' replicas "jobs/min"
for n in 1 2 3; do printf '%-8s %14s\n' "$n" "${job_rate[$n]}"; done
echo "(each job: 784-100-100-10, 1,000 rows, 2 epochs; $jobs jobs submitted round-robin)"
