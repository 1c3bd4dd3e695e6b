#!/usr/bin/env bash
# Checks docker/compose.scale.yaml for real with podman-compose: builds the
# balancer (docker/nginx) and database (docker/postgres) images on the
# locally made debian:bookworm-slim base, checks nginx's configuration
# (nginx -t) and a password login to the new PostgreSQL cluster, brings up
# PostgreSQL, three bnserve replicas of IMAGE and nginx, trains one small
# job through nginx and sees it finish (its row in PostgreSQL: SUCCEEDED on
# one replica, Job.replica), makes Predict calls of the version it
# registered through nginx and reads each replica's own count of OK calls
# (/replicas/N/metrics) to see them spread over the three, and tears
# everything down.
#
# The three replicas share one database only with a bnserve that has
# --registry postgresql://... and --replica_id. With an IMAGE without them the
# replicas run on SQLite registries of their own (an override of the
# command, in a copy of the file), the model is trained on each replica directly, and the job
# through the balancer is NOT RUN (its WatchJob may reach another replica):
# the script says so and does not count it as passed.
#
# usage: docker/test-scale.sh   (as root; docker/test-image.sh calls it after
#                                building IMAGE)
# env:   IMAGE              bnserve image (default localhost/bnserve:ci, built)
#        BNSERVE_TEST_PORT  base port as in test-image.sh; nginx's gRPC port is
#                           published on BNSERVE_TEST_PORT + 3, its HTTP port
#                           on BNSERVE_TEST_PORT + 103 (loopback)
#        BNCTL              client used from outside (default: copied out of IMAGE)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:-localhost/bnserve:ci}
NGINX_IMAGE=localhost/bnserve-nginx:ci
POSTGRES_IMAGE=localhost/bnserve-postgres:ci
PORT=$((${BNSERVE_TEST_PORT:-50061} + 3))
HTTP_PORT=$((PORT + 100))
PROJECT=bnserve-scale-test
MODEL=scale-smoke
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
RUN_OPTS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

T0=$SECONDS
PASSED=0
FAILED=0
NOT_RUN=0
WORK=$(mktemp -d /tmp/bnserve-scale-test.XXXXXX)
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
not_run() { NOT_RUN=$((NOT_RUN + 1)); echo "NOT RUN: $*"; }
info() { echo "---- $*"; }
quiet_errors() { grep -v 'systemd' || true; }

cat >"$WORK/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
FILES=(-f compose.scale.yaml)
compose() {
  (cd "$ROOT/docker" && CONTAINERS_CONF=$WORK/containers.conf BNSERVE_IMAGE=$IMAGE \
     BNSERVE_NGINX_IMAGE=$NGINX_IMAGE BNSERVE_POSTGRES_IMAGE=$POSTGRES_IMAGE \
     BNSERVE_DB_PASSWORD=scale-test-password BNSERVE_DEFAULT_MODEL= \
     BNSERVE_PUBLISH=127.0.0.1:$PORT BNSERVE_HTTP_PUBLISH=127.0.0.1:$HTTP_PORT \
     timeout 180 podman-compose -p "$PROJECT" "${FILES[@]}" "$@")
}
container() { echo "${PROJECT}_$1_1"; }
remove_test_objects() {
  local s
  for s in nginx bnserve-1 bnserve-2 bnserve-3 postgres; do
    "${PODMAN[@]}" rm -f -v -t 0 "$(container "$s")" >/dev/null 2>&1 || true
  done
  "${PODMAN[@]}" rm -f -v -t 0 bnserve-scale-nginx-t bnserve-scale-pg bnserve-scale-cp >/dev/null 2>&1 || true
  "${PODMAN[@]}" volume rm -f "${PROJECT}_pgdata" bnserve-scale-pg-data >/dev/null 2>&1 || true
  "${PODMAN[@]}" network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
}
cleanup() {
  remove_test_objects
  rm -rf "$WORK"
}
trap cleanup EXIT
finish() {
  echo "scale test: $((SECONDS - T0)) s in all"
  echo "$PASSED passed, $FAILED failed, $NOT_RUN not run"
  if [ "$FAILED" -eq 0 ]; then exit 0; else exit 1; fi
}

if [ "$(id -u)" -ne 0 ]; then
  echo "test-scale.sh: run as root (buildah and podman build and run rootful here)" >&2
  exit 2
fi
for tool in buildah podman runc podman-compose curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "test-scale.sh: $tool missing (test-image.sh installs it)" >&2; exit 2; }
done
if ! podman image exists docker.io/library/debian:bookworm-slim || ! podman image exists "$IMAGE"; then
  echo "test-scale.sh: needs the base image and $IMAGE: run docker/test-image.sh first" >&2
  exit 2
fi
remove_test_objects

# ---- 1. the balancer and database images ---------------------------------------
for pair in "nginx:$NGINX_IMAGE" "postgres:$POSTGRES_IMAGE"; do
  dir=${pair%%:*}
  image=${pair#*:}
  t=$SECONDS
  if buildah bud --isolation chroot --pull=never --format docker --layers \
       -f "$ROOT/docker/$dir/Dockerfile" -t "$image" "$ROOT/docker/$dir" >"$WORK/build-$dir.log" 2>&1; then
    size=$(podman image inspect --format '{{.Size}}' "$image")
    pass "image $image built in $((SECONDS - t)) s ($((size / 1000 / 1000)) MB)"
  else
    tail -n 30 "$WORK/build-$dir.log"
    fail "image $image (log above)"
    finish
  fi
done

# ---- 2. nginx -t, with the replicas' names pointing anywhere --------------------
if "${PODMAN[@]}" run --rm --name bnserve-scale-nginx-t "${RUN_OPTS[@]}" \
     --add-host bnserve-1:127.0.0.1 --add-host bnserve-2:127.0.0.1 --add-host bnserve-3:127.0.0.1 \
     "$NGINX_IMAGE" nginx -t >"$WORK/nginx-t.out" 2>&1 &&
   grep -q 'test is successful' "$WORK/nginx-t.out"; then
  pass "nginx -t: $(grep -o 'configuration file .* test is successful' "$WORK/nginx-t.out")"
else
  quiet_errors <"$WORK/nginx-t.out" | sed 's/^/     | /'
  fail "nginx -t"
fi

# ---- 3. which bnserve ------------------------------------------------------------
SHARED=0
JOB_REPLICA=
# (Output to a file, then grep: with pipefail, grep -q closing the pipe early
# would fail the pipeline.)
"${PODMAN[@]}" run --rm "${RUN_OPTS[@]}" --entrypoint bnserve "$IMAGE" --helpfull \
  >"$WORK/helpfull.txt" 2>/dev/null || true
if grep -q -- '--replica_id' "$WORK/helpfull.txt"; then
  SHARED=1
  info "$IMAGE has --replica_id: the replicas share PostgreSQL (compose.scale.yaml as shipped)"
else
  info "$IMAGE has no --replica_id (no PostgreSQL store yet): replicas on SQLite registries of their own"
  # Each replica's own registry instead of postgresql:// and no --replica_id;
  # the rest as shipped. (A copy, not an override file: podman-compose 1.0.3
  # merges an override's command into the original's instead of replacing it.)
  sed -e 's|--registry=postgresql://[^ ]*|--registry=/var/lib/bnserve/bnserve.db|' \
      -e '/--replica_id=/d' "$ROOT/docker/compose.scale.yaml" >"$WORK/compose.scale.sqlite.yaml"
  grep -q -- '--registry=/var/lib/bnserve/bnserve.db' "$WORK/compose.scale.sqlite.yaml"
  FILES=(-f "$WORK/compose.scale.sqlite.yaml")
fi

# The client from outside: bnctl and the digits, copied out of IMAGE.
"${PODMAN[@]}" create --name bnserve-scale-cp "$IMAGE" >/dev/null
mkdir -p "$WORK/data"
"${PODMAN[@]}" cp bnserve-scale-cp:/usr/share/bnserve/data/mnist-digits "$WORK/data/mnist-digits"
"${PODMAN[@]}" cp bnserve-scale-cp:/usr/local/bin/bnctl "$WORK/bnctl"
"${PODMAN[@]}" rm -f -v bnserve-scale-cp >/dev/null 2>&1
bnctl=${BNCTL:-$WORK/bnctl}
if "$bnctl" help >/dev/null 2>&1; then
  BNCTL_CMD=(env "BNSERVE_DATA_DIR=$WORK/data" "$bnctl")
else
  BNCTL_CMD=("${PODMAN[@]}" run --rm "${RUN_OPTS[@]}" --network host --entrypoint bnctl "$IMAGE")
fi
client() {
  local out=$1; shift
  timeout 300 "${BNCTL_CMD[@]}" --server "127.0.0.1:$PORT" "$@" >"$out" 2>&1
}
# Predict calls replica $1 has answered OK, from its own /metrics through nginx.
predict_calls() {
  curl -sf --max-time 10 "http://127.0.0.1:$HTTP_PORT/replicas/$1/metrics" |
    awk '/^bnserve_grpc_server_handled_total\{/ && /grpc_method="Predict"/ && /grpc_code="OK"/ { s += $NF }
         END { print s + 0 }'
}
# A query on the shared database, as the replicas' user over TCP.
psql_query() {
  "${PODMAN[@]}" exec -e PGPASSWORD=scale-test-password "$(container postgres)" \
    psql -h 127.0.0.1 -U bnserve -d bnserve -tAF ' ' -c "$1"
}
# Waits (bounded) until container $1's healthcheck passes. A container that
# is not running is waited for too: a replica that finds no database yet
# exits and its restart policy starts it again.
wait_healthy() {
  local name=$1 deadline=$((SECONDS + ${2:-120})) state=gone
  while [ $SECONDS -lt $deadline ]; do
    state=$("${PODMAN[@]}" inspect --format '{{.State.Status}}' "$name" 2>/dev/null || echo gone)
    [ "$state" = gone ] && break
    if [ "$state" = running ] && "${PODMAN[@]}" healthcheck run "$name" >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  echo "     container $name ($state) is not healthy; its log:"
  "${PODMAN[@]}" logs "$name" 2>&1 | tail -n 20 | sed 's/^/     | /'
  return 1
}

# ---- 4. the stack ------------------------------------------------------------------
t=$SECONDS
if ! compose up -d --no-build >"$WORK/compose.log" 2>&1; then
  quiet_errors <"$WORK/compose.log" | tail -n 30 | sed 's/^/     | /'
  fail "podman-compose up"
  compose down -v >/dev/null 2>&1 || true
  finish
fi
if wait_healthy "$(container postgres)" 60 &&
   "${PODMAN[@]}" logs "$(container postgres)" >"$WORK/postgres.log" 2>&1 &&
   grep -q 'created cluster' "$WORK/postgres.log" &&
   "${PODMAN[@]}" exec -e PGPASSWORD=scale-test-password "$(container postgres)" \
     psql -h 127.0.0.1 -U bnserve -d bnserve -tAc 'SELECT 1' >"$WORK/psql.out" 2>&1 &&
   grep -qx 1 "$WORK/psql.out" &&
   ! "${PODMAN[@]}" exec -e PGPASSWORD=wrong "$(container postgres)" \
     psql -h 127.0.0.1 -U bnserve -d bnserve -tAc 'SELECT 1' >/dev/null 2>&1; then
  pass "postgres: cluster created at first start, healthy, password login over TCP (a wrong one refused)"
else
  fail "postgres: $(cat "$WORK/psql.out" 2>/dev/null)"
  tail -n 10 "$WORK/postgres.log" 2>/dev/null | sed 's/^/     | /' 
fi
healthy=0
for n in 1 2 3; do
  if wait_healthy "$(container "bnserve-$n")" 120; then healthy=$((healthy + 1)); fi
done
if [ "$healthy" = 3 ]; then
  pass "3 replicas healthy (bnctl health --ready) $((SECONDS - t)) s after up"
else
  fail "$healthy of 3 replicas healthy"
  compose down -v >/dev/null 2>&1 || true
  finish
fi
ok=0
for _ in $(seq 1 30); do
  if client "$WORK/health.out" health; then ok=1; break; fi
  sleep 1
done
if [ "$ok" = 1 ]; then
  pass "bnctl health through nginx on 127.0.0.1:$PORT: $(tr '\n' ' ' <"$WORK/health.out")"
else
  fail "bnctl health through nginx: $(cat "$WORK/health.out")"
fi

# ---- 5. a job through the balancer; the model on every replica ---------------------
train_args=(train --model "$MODEL" --dataset mnist-digits --limit 500 --hidden 32,32
            --epochs 2 --optimizer adam --follow)
t=$SECONDS
if [ "$SHARED" = 1 ]; then
  if client "$WORK/train.out" "${train_args[@]}"; then
    pass "train $MODEL through nginx: job finished in $((SECONDS - t)) s"
    tail -n 2 "$WORK/train.out" | sed 's/^/     | /'
    # The job in the shared queue: SUCCEEDED (3) on one replica, which
    # registered the version the Predict calls below read on all three.
    psql_query "SELECT j.replica, j.state, v.version FROM jobs j JOIN versions v ON v.job_id = j.job_id
                WHERE v.model_name = '$MODEL'" >"$WORK/job.out" 2>&1 || true
    read -r JOB_REPLICA job_state job_version <"$WORK/job.out" || true
    if [[ ${JOB_REPLICA:-} =~ ^bnserve-[123]$ && ${job_state:-} = 3 && ${job_version:-} = 1 ]]; then
      pass "the job SUCCEEDED on replica $JOB_REPLICA (Job.replica in PostgreSQL), which registered $MODEL v1"
    else
      fail "the job in PostgreSQL (replica state version): $(tr '\n' ' ' <"$WORK/job.out")"
      JOB_REPLICA=
    fi
  else
    fail "train through nginx:"
    tail -n 20 "$WORK/train.out" | sed 's/^/     | /'
  fi
else
  not_run "train through nginx (a job's WatchJob may reach another replica's own SQLite registry)"
  trained=0
  for n in 1 2 3; do
    if "${PODMAN[@]}" exec "$(container "bnserve-$n")" bnctl "${train_args[@]}" \
         >"$WORK/train-$n.out" 2>&1; then
      trained=$((trained + 1))
    else
      tail -n 10 "$WORK/train-$n.out" | sed 's/^/     | /'
    fi
  done
  if [ "$trained" = 3 ]; then
    pass "train $MODEL on each replica's own registry in $((SECONDS - t)) s"
  else
    fail "train $MODEL on each replica: $trained of 3"
  fi
fi

# ---- 6. Predict calls spread over the replicas ---------------------------------------
CALLS=60
declare -a before
for n in 1 2 3; do before[$n]=$(predict_calls "$n" || echo x); done
if client "$WORK/bench.out" bench predict --model "$MODEL" --batch 1 --clients 1 \
     --calls "$CALLS" --floor=false; then
  spread=()
  total=0
  low=$CALLS
  for n in 1 2 3; do
    after=$(predict_calls "$n" || echo x)
    if [ "${before[$n]}" = x ] || [ "$after" = x ]; then
      spread+=("?")
      low=0
      continue
    fi
    d=$(awk -v a="$after" -v b="${before[$n]}" 'BEGIN { print a - b }')
    spread+=("$d")
    total=$(awk -v t="$total" -v d="$d" 'BEGIN { print t + d }')
    low=$(awk -v l="$low" -v d="$d" 'BEGIN { print (d < l) ? d : l }')
  done
  # Round-robin per call: ~20 each; one connection pinned to a replica
  # (connection balancing) would give 60, 0, 0.
  if awk -v l="$low" -v t="$total" -v c="$CALLS" 'BEGIN { exit !(l >= c / 6 && t >= c) }'; then
    pass "$CALLS Predict calls over one connection through nginx spread ${spread[*]} over the 3 replicas"
    if [ -n "${JOB_REPLICA:-}" ]; then
      pass "$MODEL v1, registered by $JOB_REPLICA, served by the two other replicas too (their OK Predict counts above)"
    fi
  else
    fail "Predict calls through nginx per replica: ${spread[*]} (total $total of $CALLS)"
  fi
else
  fail "bench through nginx:"
  tail -n 20 "$WORK/bench.out" | sed 's/^/     | /'
fi

# The HTTP port through nginx: REST readiness from whichever replica.
if code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
            "http://127.0.0.1:$HTTP_PORT/v2/health/ready") && [ "$code" = 200 ]; then
  pass "HTTP through nginx: /v2/health/ready 200"
else
  fail "HTTP through nginx: /v2/health/ready $code"
fi

# ---- 7. down ---------------------------------------------------------------------------
t=$SECONDS
compose down -v >"$WORK/down.log" 2>&1 || true
left=$("${PODMAN[@]}" ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}')
if [ -z "$left" ]; then
  pass "podman-compose down: no container left ($((SECONDS - t)) s)"
else
  fail "containers left after down: $left"
fi
finish
