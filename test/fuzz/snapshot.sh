#!/bin/sh
# Freezes the current build (dist/ plus the addon) into test/fuzz/.snapshot, so a
# long fuzz campaign is not disturbed by someone rebuilding the tree:
#   test/fuzz/snapshot.sh && node test/fuzz/run.mjs --pkg test/fuzz/.snapshot/dist/index.js ...
# The addon copied is build/Release/dmabuf.node, or the prebuild with --prebuild.
set -e
root=$(cd "$(dirname "$0")/../.." && pwd)
snap="$root/test/fuzz/.snapshot"
rm -rf "$snap"
mkdir -p "$snap/build/Release"
cp -r "$root/dist" "$snap/dist"
if [ "$1" = "--prebuild" ]; then
  cp -r "$root/prebuilds" "$snap/prebuilds"
else
  cp "$root"/build/Release/*.node "$root"/build/Release/*.so* "$snap/build/Release/"
fi
for d in issuers test-issuers; do [ -d "$root/build/$d" ] && cp -r "$root/build/$d" "$snap/build/"; done
echo "$snap/dist/index.js"
