#!/usr/bin/env bash
# What `make fuzz` needs beyond scripts/setup.sh: Debian's clang-14 and its
# runtime libraries (libFuzzer, ASan, UBSan). Kept apart so that the normal
# build and the Docker image do not install a second compiler.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for p in clang-14 libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup_fuzz: installing ${missing[*]}"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
