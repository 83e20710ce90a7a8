#!/usr/bin/env bash
# Proves the linux-arm64 prebuild on this x64 machine: a Debian arm64 root
# (debootstrap --foreign, with Debian's nodejs; its packages unpacked with dpkg -x,
# since the second stage would need binfmt_misc), the package staged in it with
# prebuilds/linux-arm64 only, and the README's fence and heap examples run by
# arm64 Node under qemu-user (qemu-aarch64-static inside a chroot). The root has
# no liburcu, so the bundled copies are the ones loaded. Also prints the oldest
# glibc/libstdc++ each prebuild needs (the highest GLIBC_/GLIBCXX_ symbol versions
# objdump -T finds). Not in CI (a few minutes of downloads and emulation).
#
#   scripts/prove-arm64.sh [ROOT_DIR]     (default build-arm64-root/; reused when present)
# Needs root, qemu-user-static, debootstrap, and a built dist/ and prebuild
# (npm run build:ts && npm run prebuilds:arm64, which needs g++-aarch64-linux-gnu
# and liburcu-dev:arm64 through `dpkg --add-architecture arm64`).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
rootfs=$(realpath -m "${1:-build-arm64-root}")
suite=${DEBIAN_SUITE:-trixie}   # trixie has Node 20 (bookworm's is 18)
pb=prebuilds/linux-arm64

for t in qemu-aarch64-static debootstrap dpkg objdump; do
  command -v "$t" >/dev/null || { echo "prove-arm64: needs $t (apt-get install qemu-user-static debootstrap)"; exit 1; }
done
[ -f dist/index.js ] || { echo "prove-arm64: dist/ missing: npm run build:ts"; exit 1; }
[ -f "$pb/dmabuf.glibc.node" ] || { echo "prove-arm64: $pb missing: npm run prebuilds:arm64"; exit 1; }

echo "== oldest C libraries each prebuild needs (objdump -T)"
for d in prebuilds/linux-*; do
  [ -f "$d/dmabuf.glibc.node" ] || continue
  glibc=$(objdump -T "$d"/dmabuf.glibc.node "$d"/*.so.8 | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  cxx=$(objdump -T "$d"/dmabuf.glibc.node | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -1)
  echo "$d: $glibc $cxx"
done

if [ ! -x "$rootfs/usr/bin/node" ]; then
  if ! ls "$rootfs"/var/cache/apt/archives/nodejs_*.deb >/dev/null 2>&1; then
    echo "== debootstrap $suite arm64 into $rootfs"
    debootstrap --arch=arm64 --foreign --variant=minbase --include=nodejs "$suite" "$rootfs" \
      http://deb.debian.org/debian >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log"; exit 1; }
  fi
  echo "== unpacking the root's packages (dpkg -x)"
  for deb in "$rootfs"/var/cache/apt/archives/*.deb; do dpkg -x "$deb" "$rootfs"; done
fi
cp /usr/bin/qemu-aarch64-static "$rootfs/usr/bin/"
if ls "$rootfs"/usr/lib/aarch64-linux-gnu/liburcu* >/dev/null 2>&1; then
  echo "prove-arm64: FAIL: the arm64 root has a liburcu of its own"; exit 1
fi

echo "== staging the package (dist + prebuilds/linux-arm64 only)"
app=$rootfs/opt/app
rm -rf "$app"
mkdir -p "$app/node_modules/dmabuf/prebuilds" "$app/node_modules/node-gyp-build"
cp -r package.json dist "$app/node_modules/dmabuf/"
cp -r "$pb" "$app/node_modules/dmabuf/prebuilds/"
cp -r node_modules/node-gyp-build/. "$app/node_modules/node-gyp-build/"
# The README's examples, as test/readme.test.ts finds them: the js fence under a heading.
node -e '
  const fs = require("fs");
  const md = fs.readFileSync("README.md", "utf8");
  for (const [file, heading] of [["fence.js", "### Fences"], ["heap.js", "### Heaps and buffers"]]) {
    const at = md.indexOf(heading + "\n");
    const m = /```js\n([\s\S]*?)```/.exec(md.slice(at));
    if (at < 0 || !m) { console.error("no example under " + heading); process.exit(1); }
    fs.writeFileSync(process.argv[1] + "/" + file, m[1]);
  }' "$app"
cat >"$app/about.js" <<'EOF'
const r = process.report.getReport().header;
console.log(`node ${process.version} ${process.arch} glibc ${r.glibcVersionRuntime}`);
console.log('addon:', require('node-gyp-build').path(require('path').dirname(require.resolve('dmabuf/package.json'))));
EOF

# node reads /proc (CPU count, its own path): give the chroot one in a private mount namespace.
run() {
  unshare -m --propagation private bash -c '
    mount -t proc proc "$0/proc"
    env -u NODE_EXTRA_CA_CERTS chroot "$0" /usr/bin/qemu-aarch64-static /usr/bin/node "$@"' "$rootfs" "$@"
}

echo "== under qemu-aarch64"
run /opt/app/about.js
fail=0
check() {  # file, then the lines its output must contain
  local f=$1; shift
  local out; out=$(run "/opt/app/$f" 2>&1) || { echo "$f: exit $?"; echo "$out"; fail=1; return; }
  echo "--- $f"; echo "$out"
  for want in "$@"; do grep -qF -- "$want" <<<"$out" || { echo "prove-arm64: FAIL: $f printed no '$want'"; fail=1; }; done
}
check fence.js "0 dmabuf" "1 detached-driver" "signalled at"
check heap.js "emulated 8192 system" "frame0 255" "EINVAL" "0"
if [ "$fail" = 0 ]; then echo "prove-arm64: ok"; else echo "prove-arm64: FAILED"; exit 1; fi
