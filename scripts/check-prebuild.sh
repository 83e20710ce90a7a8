#!/usr/bin/env bash
# Builds the host's prebuild (prebuilds/linux-<arch>/dmabuf.glibc.node + the
# liburcu .so files it needs, found through an $ORIGIN rpath, + their LGPL notice)
# and proves that node-gyp-build picks it and that it loads and works on a machine
# without liburcu: the system copies are hidden in a private mount namespace.
# Needs root (or unshare rights); skips that part with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run --silent prebuilds -- --quiet
arch=$(node -p process.arch)
pb=prebuilds/linux-$arch
for f in dmabuf.glibc.node liburcu-bp.so.8 liburcu-common.so.8 liburcu-NOTICE.txt; do
  [ -f "$pb/$f" ] || { echo "check-prebuild: FAIL: $pb/$f missing"; exit 1; }
done
readelf -d "$pb/dmabuf.glibc.node" | grep -q 'RUNPATH.*\$ORIGIN' || { echo "check-prebuild: FAIL: no \$ORIGIN runpath"; exit 1; }

if ! unshare -m true 2>/dev/null; then
  echo "check-prebuild: SKIP hidden-liburcu run (unshare -m not permitted here)"
  exit 0
fi
libdir=$(dirname "$(readlink -f "$(ldconfig -p | awk '/liburcu-bp.so.8 /{print $NF; exit}')")")
script='
  const picked = require("node-gyp-build").path(".");
  if (!picked.endsWith("/'"$pb"'/dmabuf.glibc.node")) { console.error("node-gyp-build picked " + picked); process.exit(4); }
  const { Fence } = require("./dist/index.js");
  const f = new Fence(); f.signal();
  if (f.status !== 1) process.exit(3);
  console.log("prebuild ok");'
unshare -m bash -c "
  set -e
  for l in $libdir/liburcu*.so*; do mount --bind /dev/null \"\$l\"; done
  # the system copies are really gone (bind-mounted /dev/null: empty)
  [ ! -s $libdir/liburcu-bp.so.8 ] || { echo 'check-prebuild: FAIL: system liburcu still visible'; exit 1; }
  PREBUILDS_ONLY=1 node -e '$script'
"
