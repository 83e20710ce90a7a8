#!/usr/bin/env bash
# Builds the prebuild (prebuilds/linux-x64/dmabuf.node + the liburcu .so files
# it needs, found through an $ORIGIN rpath) and proves it loads and works on a
# machine without liburcu: the system copies are hidden in a private mount
# namespace. Needs root (or unshare rights); skips with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run prebuild >/dev/null
pb=prebuilds/linux-x64
for f in dmabuf.node liburcu-bp.so.8 liburcu-common.so.8; do
  [ -f "$pb/$f" ] || { echo "check-prebuild: FAIL: $pb/$f missing"; exit 1; }
done
readelf -d "$pb/dmabuf.node" | grep -q 'RUNPATH.*\$ORIGIN' || { echo "check-prebuild: FAIL: no \$ORIGIN runpath"; exit 1; }

if ! unshare -m true 2>/dev/null; then
  echo "check-prebuild: SKIP hidden-liburcu run (unshare -m not permitted here)"
  exit 0
fi
libdir=$(dirname "$(readlink -f "$(ldconfig -p | awk '/liburcu-bp.so.8 /{print $NF; exit}')")")
script='
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
# prebuildify moved the addon out of build/; put the development build back.
npx cmake-js compile >/dev/null
