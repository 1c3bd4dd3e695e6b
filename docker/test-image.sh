#!/usr/bin/env bash
# Builds docker/Dockerfile for real on a machine without a Docker engine
# (buildah + podman with runc, a debian:bookworm-slim base made locally by
# debootstrap from this machine's own Debian mirror), then checks a running
# container as a user would: the HEALTHCHECK, the dashboard at / on the HTTP
# port, train/predict/evaluate with bnctl
# from outside the container, a non-root user, the registry on a named volume
# surviving a new container, a clean stop on SIGTERM, no toolchain in the
# runtime image, docker/compose.yaml brought up with podman-compose, and
# docker/test-scale.sh on the same image (compose.scale.yaml: PostgreSQL,
# three replicas, nginx).
# Prints PASS/FAIL per check and exits non-zero on any failure.
#
# usage: docker/test-image.sh [--build-only]   (as root; installs its tools if missing)
# env:   DOCKERFILE         default docker/Dockerfile
#        IMAGE              image to build and check (default localhost/bnserve:ci)
#        BNSERVE_TEST_PORT  host loopback port the container's gRPC port is
#                           published on (default 50061, so a server on 50051
#                           does not collide; the compose check uses the next
#                           one); its HTTP port goes to BNSERVE_TEST_PORT + 100
#        BNCTL              client used from outside (default: bnctl copied out
#                           of the image, e.g. BNCTL=build/client/bnctl)
#        REBUILD_BASE=1     remake the debootstrap base image even if it exists
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKERFILE=${DOCKERFILE:-$ROOT/docker/Dockerfile}
BUILD_ONLY=0
[ "${1:-}" = "--build-only" ] && BUILD_ONLY=1
IMAGE=${IMAGE:-localhost/bnserve:ci}
PORT=${BNSERVE_TEST_PORT:-50061}
HTTP_PORT=$((PORT + 100))
BASE=docker.io/library/debian:bookworm-slim
BASE_FULL=docker.io/library/debian:bookworm
NAME_A=bnserve-test-a
NAME_B=bnserve-test-b
NAME_TLS=bnserve-test-tls
TLS_HTTP_PORT=$((PORT + 200))
VOLUME=bnserve-test-registry
MODEL=docker-smoke
COMPOSE_PROJECT=bnserve-test
COMPOSE_PORT=$((PORT + 1))
# runc, cgroupfs and explicit rlimits: crun and the default cgroup and rlimit
# settings fail inside this sandbox.
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
RUN_OPTS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
STOP_GRACE=10

T0=$SECONDS
PASSED=0
FAILED=0
WORK=$(mktemp -d /tmp/bnserve-image-test.XXXXXX)
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
info() { echo "---- $*"; }
# podman's stderr without its complaint that systemd (healthcheck timers) is
# absent here; the checks run the healthcheck by hand instead.
quiet_errors() { grep -v 'systemd' || true; }

remove_test_objects() {
  "${PODMAN[@]}" rm -f -v -t 0 "$NAME_A" "$NAME_B" "$NAME_TLS" bnserve-test-cp "${COMPOSE_PROJECT}_bnserve_1" \
    >/dev/null 2>&1 || true
  "${PODMAN[@]}" volume rm -f "$VOLUME" "${COMPOSE_PROJECT}_registry" >/dev/null 2>&1 || true
  "${PODMAN[@]}" network rm -f "${COMPOSE_PROJECT}_default" >/dev/null 2>&1 || true
}
cleanup() {
  remove_test_objects
  rm -rf "$WORK"
}
trap cleanup EXIT

finish() {
  echo "image test: $((SECONDS - T0)) s in all"
  echo "$PASSED passed, $FAILED failed"
  if [ "$FAILED" -eq 0 ]; then exit 0; else exit 1; fi
}

if [ "$(id -u)" -ne 0 ]; then
  echo "test-image.sh: run as root (buildah and podman build and run rootful here)" >&2
  exit 2
fi

# ---- 1. tools -----------------------------------------------------------------
need=()
for tool in buildah podman runc debootstrap podman-compose; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  info "installing ${need[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
remove_test_objects

# ---- 2. base image --------------------------------------------------------------
# The first Debian (not -security) mirror in this machine's apt sources.
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
  [ -e /etc/apt/sources.list ] && awk '$1 == "deb" {
      for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' /etc/apt/sources.list
  for f in /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
  done
}
make_base() {
  local mirror security rootfs
  mirror=$(debian_mirror | grep -E '/debian/?$' | head -n1 || true)
  security=$(debian_mirror | grep -E '/debian-security/?$' | head -n1 || true)
  if [ -z "$mirror" ]; then
    echo "FAIL: no Debian mirror found in /etc/apt/sources.list{,.d}" >&2
    exit 1
  fi
  mirror=${mirror%/}
  info "debootstrap bookworm from $mirror"
  rootfs=$WORK/rootfs
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log"
    echo "FAIL: debootstrap" >&2
    exit 1
  }
  # Configure it like Docker's debian:bookworm-slim: deb822 sources (with
  # updates and security), no docs or man pages, no apt caches.
  rm -f "$rootfs/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [ -n "$security" ]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "${security%/}"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } >"$rootfs/etc/apt/sources.list.d/debian.sources"
  mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
         "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  tar -C "$rootfs" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$BASE" >/dev/null
  podman tag "$BASE" "$BASE_FULL"
  rm -rf "$rootfs"
}

t=$SECONDS
if [ "${REBUILD_BASE:-0}" != 1 ] && podman image exists "$BASE"; then
  podman image exists "$BASE_FULL" || podman tag "$BASE" "$BASE_FULL"
  info "base image $BASE present (REBUILD_BASE=1 remakes it)"
else
  make_base
  info "base image $BASE made in $((SECONDS - t)) s"
fi

# ---- 3. build -------------------------------------------------------------------
# Docker format keeps HEALTHCHECK (OCI image configs drop it). The CA bundle
# lets npm inside the build reach its registry behind this machine's TLS proxy.
build_args=(--isolation chroot --pull=never --format docker --layers
            -f "$DOCKERFILE" -t "$IMAGE")
ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$ca" ] && build_args+=(--secret "id=extra_ca,src=$ca")
info "buildah bud ${build_args[*]} $ROOT"
t=$SECONDS
if buildah bud "${build_args[@]}" "$ROOT" >"$WORK/build.log" 2>&1; then
  BUILD_TIME=$((SECONDS - t))
  grep -E '(^|] )STEP [0-9]+/|^runtime packages:' "$WORK/build.log" || true
  pass "image $IMAGE built in ${BUILD_TIME} s"
else
  tail -n 60 "$WORK/build.log"
  fail "image build (log above)"
  finish
fi
SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")
info "image size: $((SIZE / 1000 / 1000)) MB ($SIZE bytes)"
[ "$BUILD_ONLY" = 1 ] && finish

# ---- 4. checks --------------------------------------------------------------------
tc=$SECONDS

# Image metadata as declared.
meta=$(podman image inspect --format \
  'user={{.Config.User}} stop={{.Config.StopSignal}} ports={{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}volumes={{range $v, $_ := .Config.Volumes}}{{$v}} {{end}}' "$IMAGE")
hc=$(podman image inspect --format '{{json .HealthCheck}}' "$IMAGE")
echo "     $meta"
echo "     healthcheck=$hc"
if [[ $meta == *"user=bnserve "* && $meta == *"stop=SIGTERM "* && $meta == *"50051/tcp"* &&
      $meta == *"8000/tcp"* && $meta == *"/var/lib/bnserve"* &&
      $hc == *'"bnctl","health","--ready","--server","127.0.0.1:50051"'* ]]; then
  pass "image declares USER bnserve, STOPSIGNAL SIGTERM, EXPOSE 50051 8000, VOLUME /var/lib/bnserve, HEALTHCHECK bnctl health --ready"
else
  fail "image metadata (USER/STOPSIGNAL/EXPOSE/VOLUME/HEALTHCHECK) not as declared"
fi

# No toolchain: no -dev package, no compiler, binutils or build tool, and no
# compiler binary. (libgcc-s1 and gcc-12-base are libstdc++'s runtime.)
toolchain=$("${PODMAN[@]}" run --rm "${RUN_OPTS[@]}" --entrypoint sh "$IMAGE" -c '
  dpkg-query -W -f "\${Package}\n" | grep -E -- "-dev$|^(gcc|g\+\+|cpp|clang|binutils)(-[0-9]+)?$|^(build-essential|cmake|make|protobuf-compiler|libtool)$" || true
  for c in cc c++ gcc g++ cpp ld as clang cmake make; do command -v "$c" || true; done' \
  2>"$WORK/toolchain.err") || toolchain="podman run failed: $(quiet_errors <"$WORK/toolchain.err")"
if [ -z "$toolchain" ]; then
  pass "runtime image holds no compiler, build tool or -dev package"
else
  fail "runtime image holds toolchain parts: $(echo "$toolchain" | tr '\n' ' ')"
fi

# The client used from outside the container, and the data it reads locally
# (predict sends the samples): both copied out of the image. Where the copied
# bnctl cannot run on this host (libraries missing), a second container on the
# host network runs it.
"${PODMAN[@]}" create --name bnserve-test-cp "$IMAGE" >/dev/null
mkdir -p "$WORK/data"
"${PODMAN[@]}" cp bnserve-test-cp:/usr/share/bnserve/data/mnist-digits "$WORK/data/mnist-digits"
"${PODMAN[@]}" cp bnserve-test-cp:/usr/local/bin/bnctl "$WORK/bnctl"
"${PODMAN[@]}" rm -f -v bnserve-test-cp >/dev/null 2>&1
bnctl=${BNCTL:-$WORK/bnctl}
if "$bnctl" help >/dev/null 2>&1; then
  BNCTL_CMD=(env "BNSERVE_DATA_DIR=$WORK/data" "$bnctl")
  info "bnctl from outside: $bnctl -> 127.0.0.1:$PORT"
else
  BNCTL_CMD=("${PODMAN[@]}" run --rm "${RUN_OPTS[@]}" --network host --entrypoint bnctl "$IMAGE")
  info "bnctl from outside: a client container on the host network -> 127.0.0.1:$PORT"
fi

# Starts container $1 on the named volume, published on the host loopback.
# The image's own CMD and HEALTHCHECK (0.0.0.0:50051 inside its network
# namespace); podman's healthcheck timers need systemd, absent here, so the
# check is run by hand (podman healthcheck run).
start_container() {
  "${PODMAN[@]}" run -d --name "$1" "${RUN_OPTS[@]}" \
    -p "127.0.0.1:$PORT:50051" -p "127.0.0.1:$HTTP_PORT:8000" \
    -v "$VOLUME:/var/lib/bnserve" "$IMAGE" >/dev/null
}
# Waits (bounded) until the image's HEALTHCHECK passes in container $1.
wait_healthy() {
  local name=$1 deadline=$((SECONDS + 90)) state
  while [ $SECONDS -lt $deadline ]; do
    state=$("${PODMAN[@]}" inspect --format '{{.State.Status}}' "$name" 2>/dev/null || echo gone)
    if [ "$state" != running ]; then
      echo "     container $name is $state; its log:"
      "${PODMAN[@]}" logs "$name" 2>&1 | tail -n 30 | sed 's/^/     | /'
      return 1
    fi
    if "${PODMAN[@]}" healthcheck run "$name" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  "${PODMAN[@]}" logs "$name" 2>&1 | tail -n 30 | sed 's/^/     | /'
  return 1
}
# Runs bnctl from outside against the published port (CLIENT_PORT, default
# PORT), bounded, output saved.
client() {
  local out=$1; shift
  timeout 600 "${BNCTL_CMD[@]}" --server "127.0.0.1:${CLIENT_PORT:-$PORT}" "$@" >"$out" 2>&1
}

"${PODMAN[@]}" volume create "$VOLUME" >/dev/null
t=$SECONDS
if start_container "$NAME_A" 2>"$WORK/run.err" && wait_healthy "$NAME_A"; then
  pass "HEALTHCHECK passes ($((SECONDS - t)) s after start)"
else
  quiet_errors <"$WORK/run.err"
  fail "container did not become healthy within 90 s"
  finish
fi

# Healthy means ready: the image's CMD trains the default model "digits" on
# the first start, so a fresh container answers Predict at once.
if client "$WORK/digits.out" predict --model digits --dataset mnist-digits --split test \
     --limit 10; then
  pass "a fresh container predicts with its default model digits"
else
  fail "default model digits in a fresh container:"
  tail -n 10 "$WORK/digits.out" | sed 's/^/     | /'
fi

# The HTTP port: the Open Inference Protocol's REST readiness and metadata.
if code=$(curl -s -o "$WORK/ready.json" -w '%{http_code}' \
            "http://127.0.0.1:$HTTP_PORT/v2/health/ready") && [ "$code" = 200 ] &&
   curl -sf "http://127.0.0.1:$HTTP_PORT/v2/models/digits" >"$WORK/metadata.json" &&
   grep -q '"platform": *"bnserve_mlp"' "$WORK/metadata.json"; then
  pass "HTTP port: /v2/health/ready 200, /v2/models/digits is a bnserve_mlp"
else
  fail "HTTP port: ready $code $(cat "$WORK/ready.json" 2>/dev/null), metadata $(cat "$WORK/metadata.json" 2>/dev/null)"
fi

# The dashboard at / (bnserve --web_root in the image's CMD).
if code=$(curl -s -o "$WORK/index.html" -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/") &&
   [ "$code" = 200 ] && grep -q '<title>bnserve</title>' "$WORK/index.html" &&
   asset=$(grep -oE 'assets/index-[A-Za-z0-9_-]+\.js' "$WORK/index.html" | head -n1) &&
   [ -n "$asset" ] && curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/$asset"; then
  pass "HTTP port: / is the dashboard (and its script $asset loads)"
else
  fail "HTTP port: / answered $code: $(head -c 300 "$WORK/index.html" 2>/dev/null)"
fi

if out=$("${PODMAN[@]}" exec "$NAME_A" bnctl health --server 127.0.0.1:50051 2>&1) &&
   [[ $out == *SERVING* ]]; then
  pass "bnctl health inside the container: $out"
else
  fail "bnctl health inside the container: $out"
fi

uid=$("${PODMAN[@]}" exec "$NAME_A" id -u 2>&1 || true)
if [[ $uid =~ ^[0-9]+$ ]] && [ "$uid" -ne 0 ]; then
  pass "server runs as non-root (uid $uid)"
else
  fail "server user id: $uid"
fi

if client "$WORK/health.out" health; then
  pass "bnctl health from outside: $(tr '\n' ' ' <"$WORK/health.out")"
else
  fail "bnctl health from outside: $(cat "$WORK/health.out")"
fi

t=$SECONDS
# Adam for 5 epochs: a small job that learns well past chance (the default
# SGD at lr 0.01 reaches only ~0.28 test accuracy in 2 epochs on 1000 digits).
if client "$WORK/train.out" train --model "$MODEL" --dataset mnist-digits --limit 1000 \
     --epochs 5 --optimizer adam --follow; then
  pass "train $MODEL on mnist-digits (1000 samples, 5 epochs, Adam) from outside in $((SECONDS - t)) s"
  tail -n 3 "$WORK/train.out" | sed 's/^/     | /'
else
  fail "train from outside:"
  tail -n 20 "$WORK/train.out" | sed 's/^/     | /'
fi

if client "$WORK/predict.out" predict --model "$MODEL" --dataset mnist-digits --split test \
     --limit 100 && [ -s "$WORK/predict.out" ]; then
  pass "predict 100 test digits from outside ($(wc -l <"$WORK/predict.out") lines of output)"
  head -n 3 "$WORK/predict.out" | sed 's/^/     | /'
else
  fail "predict from outside:"
  tail -n 20 "$WORK/predict.out" | sed 's/^/     | /'
fi

# Evaluate: that model scores ~0.83 on 500 test digits (chance: 0.1).
if client "$WORK/evaluate.out" evaluate --model "$MODEL" --dataset mnist-digits --split test \
     --limit 500; then
  sed 's/^/     | /' "$WORK/evaluate.out" | tail -n 5
  acc=$(grep -ioE 'accuracy[^0-9]*[0-9]+(\.[0-9]+)?%?' "$WORK/evaluate.out" | head -n1 |
        grep -oE '[0-9]+(\.[0-9]+)?%?$' || true)
  case "$acc" in
    *%) acc=$(awk -v a="${acc%\%}" 'BEGIN { print a / 100 }') ;;
  esac
  if [ -z "$acc" ]; then
    fail "evaluate printed no accuracy"
  elif awk -v a="$acc" 'BEGIN { exit !(a > 0.6) }'; then
    pass "evaluate from outside: test accuracy $acc > 0.6"
  else
    fail "evaluate from outside: test accuracy $acc <= 0.6"
  fi
else
  fail "evaluate from outside:"
  tail -n 20 "$WORK/evaluate.out" | sed 's/^/     | /'
fi

# SIGTERM: podman stop sends the image's STOPSIGNAL, then SIGKILL after the
# grace period; a clean stop is exit code 0 well within it.
t=$SECONDS
"${PODMAN[@]}" stop -t "$STOP_GRACE" "$NAME_A" >/dev/null 2>&1 || true
stop_time=$((SECONDS - t))
code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$NAME_A" 2>/dev/null || echo '?')
"${PODMAN[@]}" logs "$NAME_A" 2>&1 | tail -n 4 | sed 's/^/     | /'
if [ "$code" = 0 ] && [ "$stop_time" -lt "$STOP_GRACE" ]; then
  pass "SIGTERM stops the server cleanly: exit 0 in ${stop_time} s (grace ${STOP_GRACE} s)"
else
  fail "SIGTERM stop: exit code $code after ${stop_time} s (want 0 within ${STOP_GRACE} s; 137 = killed, 143 = SIGTERM not handled)"
fi
"${PODMAN[@]}" rm -f -v "$NAME_A" >/dev/null 2>&1 || true

# The registry is on the named volume: a new container still has the model.
t=$SECONDS
if start_container "$NAME_B" 2>"$WORK/run.err" && wait_healthy "$NAME_B"; then
  if client "$WORK/list.out" models list && grep -q -- "$MODEL" "$WORK/list.out"; then
    pass "second container on volume $VOLUME lists $MODEL"
  else
    fail "second container on volume $VOLUME does not list $MODEL:"
    sed 's/^/     | /' "$WORK/list.out"
  fi
  if client "$WORK/predict2.out" predict --model "$MODEL" --dataset mnist-digits --split test \
       --limit 10; then
    pass "second container predicts with the model from the volume"
  else
    fail "second container predict:"
    tail -n 10 "$WORK/predict2.out" | sed 's/^/     | /'
  fi
else
  quiet_errors <"$WORK/run.err"
  fail "second container on volume $VOLUME did not become healthy"
fi

"${PODMAN[@]}" rm -f -v -t 0 "$NAME_B" >/dev/null 2>&1 || true

# HTTPS on the HTTP port with the image's own libraries (civetweb loads
# OpenSSL through bnserve's stand-ins in /usr/local/lib): a container with
# --tls_cert/--tls_key and no default model, asked with curl and the cert.
TLS_DIR=$WORK/tls
mkdir -p "$TLS_DIR"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
  -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.pem" >/dev/null 2>&1
chmod 755 "$TLS_DIR"; chmod 644 "$TLS_DIR"/*  # read by uid 10001 in the container
"${PODMAN[@]}" run -d --name "$NAME_TLS" "${RUN_OPTS[@]}" -p "127.0.0.1:$TLS_HTTP_PORT:8000" \
  -v "$TLS_DIR:/run/bnserve:ro" "$IMAGE" bnserve --listen=0.0.0.0:50051 \
  --http_listen=0.0.0.0:8000 --registry=/var/lib/bnserve/bnserve.db --default_model= \
  --tls_cert=/run/bnserve/server.pem --tls_key=/run/bnserve/server.key >/dev/null 2>"$WORK/tls.err"
code=000
for _ in $(seq 1 30); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$TLS_DIR/server.pem" \
           "https://127.0.0.1:$TLS_HTTP_PORT/v2/health/live" || true)
  [ "$code" = 200 ] && break
  sleep 1
done
plain=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
          "http://127.0.0.1:$TLS_HTTP_PORT/v2/health/live" || true)
if [ "$code" = 200 ] && [ "$plain" != 200 ]; then
  pass "HTTP port with --tls_cert: HTTPS /v2/health/live 200, plain HTTP refused"
else
  fail "HTTPS on the HTTP port: https $code, plain http $plain"
  "${PODMAN[@]}" logs "$NAME_TLS" 2>&1 | tail -n 10 | sed 's/^/     | /'
fi
"${PODMAN[@]}" rm -f -v -t 0 "$NAME_TLS" >/dev/null 2>&1 || true

# docker/compose.yaml as a user runs it (podman-compose; runc, cgroupfs and
# the rlimits through a containers.conf), on the image just built.
cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
compose() {
  (cd "$ROOT/docker" && CONTAINERS_CONF=$WORK/containers.conf BNSERVE_IMAGE=$IMAGE \
     BNSERVE_PUBLISH=127.0.0.1:$COMPOSE_PORT BNSERVE_HTTP_PUBLISH=127.0.0.1:$((COMPOSE_PORT + 100)) timeout 120 \
     podman-compose -p "$COMPOSE_PROJECT" -f compose.yaml "$@")
}
if compose up -d --no-build >"$WORK/compose.log" 2>&1 &&
   wait_healthy "${COMPOSE_PROJECT}_bnserve_1"; then
  mounts=$(podman inspect --format '{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}' \
           "${COMPOSE_PROJECT}_bnserve_1")
  if CLIENT_PORT=$COMPOSE_PORT client "$WORK/compose-health.out" health &&
     [[ $mounts == *"${COMPOSE_PROJECT}_registry:/var/lib/bnserve"* ]]; then
    pass "compose.yaml: healthy, SERVING on 127.0.0.1:$COMPOSE_PORT, registry on volume ${COMPOSE_PROJECT}_registry"
  else
    fail "compose.yaml service: mounts '$mounts', health: $(cat "$WORK/compose-health.out")"
  fi
else
  quiet_errors <"$WORK/compose.log" | tail -n 20 | sed 's/^/     | /'
  fail "compose.yaml service did not come up healthy"
fi
compose down -v >/dev/null 2>&1 || true

# compose.scale.yaml (PostgreSQL, three replicas behind nginx) on this image:
# its own PASS/FAIL lines, indented, and one line here.
t=$SECONDS
if IMAGE=$IMAGE BNSERVE_TEST_PORT=$PORT BNCTL=$bnctl "$ROOT/docker/test-scale.sh" 2>&1 |
     sed 's/^/     /'; then
  pass "docker/test-scale.sh: compose.scale.yaml checks passed ($((SECONDS - t)) s)"
else
  fail "docker/test-scale.sh (its FAIL lines above)"
fi

info "image $IMAGE: $((SIZE / 1000 / 1000)) MB; build ${BUILD_TIME} s; checks $((SECONDS - tc)) s"
finish
