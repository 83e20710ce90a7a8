#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: system packages (when
# missing), npm dependencies, and the build (addon, C++ tests, TypeScript).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for p in liburcu-dev libgtest-dev cmake g++ make pkg-config; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

# The install hook is for consumers; here `npm run build` compiles everything once.
npm ci --no-audit --no-fund --ignore-scripts
npm run build
