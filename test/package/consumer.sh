#!/usr/bin/env bash
# The package as a consumer gets it. From a clean clone of this repository's HEAD:
#   1. `npm pack` refuses while the clone has no node_modules (prepack);
#   2. `npm pack` with node_modules makes the tarball (prepack builds dist/; the
#      prebuild is this checkout's already-built addon, packaged by
#      scripts/prebuilds.js --from build/Release, so nothing is compiled twice);
#      the tarball is checked file by file;
#   3. consumer "prebuild": installs the tarball with the system liburcu hidden
#      (a private mount namespace binds /dev/null over it) and must load
#      prebuilds/linux-<arch>/dmabuf.glibc.node;
#   4. without liburcu (pkg-config finds none) installing that tarball stops
#      with one line naming the package, and gyp never runs;
#   5. consumer "source": installs the same tarball without prebuilds/ and
#      nothing but system packages: the install hook compiles with node-gyp, once;
# and in each consumer a fence and a heap allocation run from CommonJS, ESM and
# a strict NodeNext TypeScript project (compiled without @types/node).
#
#   test/package/consumer.sh [--no-source]     (--no-source: skip step 5, the slow one)
# Needs: a built checkout (npm run build), git, root (or unshare rights) for the
# hidden-liburcu run (skipped with a reason otherwise), and for step 5 liburcu-dev,
# g++, make, python3.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
source_build=1
[ "${1:-}" = --no-source ] && source_build=0
work=$(mktemp -d "${TMPDIR:-/tmp}/dmabuf-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
say() { printf 'consumer: %s (%ss)\n' "$*" "$(( $(date +%s) - t0 ))"; }
fail() { echo "consumer: FAIL: $*"; exit 1; }
arch=$(node -p process.arch)
[ -f "$repo/build/Release/dmabuf.node" ] || fail "$repo/build/Release/dmabuf.node missing: npm run build first"

say "clean clone of HEAD"
git clone -q --no-hardlinks "$repo" "$work/clone"
cd "$work/clone"

say "npm pack without node_modules refuses"
if out=$(npm pack --pack-destination "$work" 2>&1); then fail "npm pack succeeded without node_modules"; fi
grep -q 'prepack: REFUSED' <<<"$out" || { echo "$out"; fail "npm pack failed without saying why"; }
ls "$work"/*.tgz >/dev/null 2>&1 && fail "a tarball was written anyway"

say "npm pack"
ln -s "$repo/node_modules" node_modules
node scripts/prebuilds.js --quiet --from "$repo/build/Release"
# Only this machine's prebuild: the arm64 one is proved by scripts/prove-arm64.sh.
tgz=$(DMABUF_PACK_ARCHES=$arch DMABUF_PREPACK_BUILD=0 npm pack --silent --pack-destination "$work" | tail -1)
tgz=$work/$tgz
[ -f "$tgz" ] || fail "npm pack wrote no tarball"
tar tzf "$tgz" | sort >"$work/files"
for f in package.json LICENSE README.md dist/index.js dist/index.mjs dist/index.d.ts dist/index.d.mts dist/cli.js \
  binding.gyp scripts/install.js native/addon/addon.cc \
  "prebuilds/linux-$arch/dmabuf.glibc.node" "prebuilds/linux-$arch/liburcu-bp.so.8" \
  "prebuilds/linux-$arch/liburcu-common.so.8" "prebuilds/linux-$arch/liburcu-NOTICE.txt"; do
  grep -qx "package/$f" "$work/files" || fail "the tarball lacks $f"
done
for bad in scripts/check-prebuild.sh scripts/setup.sh scripts/prepack.js scripts/prove-arm64.sh test/ .ci/ build/; do
  grep -q "^package/$bad" "$work/files" && fail "the tarball carries development-only $bad"
done
node -e '
  const p = JSON.parse(require("child_process").execFileSync("tar", ["xzfO", process.argv[1], "package/package.json"]));
  for (const k of ["repository", "homepage", "bugs", "license"]) if (!p[k]) { console.error("package.json lacks " + k); process.exit(1); }
  if (!p.dependencies["node-addon-api"]) { console.error("node-addon-api is no dependency"); process.exit(1); }
  if (p.scripts.prebuild) { console.error("a `prebuild` script runs before every build"); process.exit(1); }' "$tgz"
# The source tarball: the same package without prebuilds/.
mkdir "$work/src" && tar xzf "$tgz" -C "$work/src" && rm -rf "$work/src/package/prebuilds"
tar czf "$work/dmabuf-source.tgz" -C "$work/src" package
say "tarball ok: $(wc -l <"$work/files") files, $(du -k "$tgz" | cut -f1) KiB"

# One consumer project: CommonJS, ESM and a strict NodeNext TypeScript program,
# each a fence and a heap allocation, and which addon file was loaded.
make_consumer() {
  local dir=$1
  mkdir -p "$dir"
  cat >"$dir/package.json" <<'EOF'
{ "name": "dmabuf-consumer", "version": "1.0.0", "private": true }
EOF
  cat >"$dir/cjs.cjs" <<'EOF'
const { Fence, openHeap } = require('dmabuf');
const f = new Fence({ context: Fence.allocContext(), seqno: 1 });
f.signal();
const heap = openHeap('system');
const buf = heap.alloc(5000);
if (f.status !== 1 || buf.size !== 8192) throw new Error(`cjs: status ${f.status} size ${buf.size}`);
buf.close(); heap.close(); f.dispose();
console.log('cjs ok:', require('node-gyp-build').path(require('path').dirname(require.resolve('dmabuf/package.json'))));
EOF
  cat >"$dir/esm.mjs" <<'EOF'
import dmabuf, { Fence, openHeap } from 'dmabuf';
const f = new Fence();
setTimeout(() => f.signal(), 1);
if (!(await f.wait({ timeout: 1000 }))) throw new Error('esm: wait timed out');
const heap = openHeap('system');
const buf = heap.alloc(4096);
new Uint8Array(buf.map()).fill(7);
if (buf.size !== 4096 || dmabuf.Fence !== Fence) throw new Error('esm: wrong buffer or facade');
buf.close(); heap.close(); f.dispose();
console.log('esm ok');
EOF
  mkdir -p "$dir/ts"
  cat >"$dir/ts/package.json" <<'EOF'
{ "name": "dmabuf-ts-consumer", "private": true, "type": "module" }
EOF
  cat >"$dir/ts/tsconfig.json" <<'EOF'
{
  "compilerOptions": {
    "strict": true, "module": "nodenext", "moduleResolution": "nodenext", "target": "es2022",
    "lib": ["es2022"], "types": [], "skipLibCheck": false, "exactOptionalPropertyTypes": true,
    "noUncheckedIndexedAccess": true, "outDir": "out"
  },
  "files": ["main.ts"]
}
EOF
  cat >"$dir/ts/main.ts" <<'EOF'
// No @types/node in this project: the package's types must stand alone.
declare const console: { log(...args: unknown[]): void };
import { Fence, openHeap, DmaBufError, type DmaBufErrorCode, type HeapInfo } from 'dmabuf';
const f = new Fence();
f.signal();
let code: DmaBufErrorCode | undefined;
try { f.setError('EIO'); } catch (e) { if (e instanceof DmaBufError) code = e.code; }
const heap = openHeap('system');
const info: HeapInfo = { name: heap.name, backend: heap.backend };
using buf = heap.alloc(4096);
if (f.status !== 1 || code !== 'EBUSY' || buf.size !== 4096) throw new Error(`ts: ${f.status} ${code} ${buf.size}`);
heap.close();
f.dispose();
console.log('ts ok', info.backend);
EOF
  ln -s ../node_modules "$dir/ts/node_modules"
}

run_programs() {  # dir, the addon path the programs must load (a suffix)
  local dir=$1 want=$2
  (cd "$dir" && node cjs.cjs | tee "$dir/cjs.out") || fail "cjs failed in $dir"
  grep -q "cjs ok: .*$want\$" "$dir/cjs.out" || fail "$dir loaded $(cat "$dir/cjs.out"), not $want"
  (cd "$dir" && node esm.mjs) || fail "esm failed in $dir"
  (cd "$dir/ts" && node "$repo/node_modules/typescript/bin/tsc" -p . && node out/main.js) || fail "ts failed in $dir"
  (cd "$dir" && npx --no-install dmabuf --version) | grep -qx "$(node -p "require('$repo/package.json').version")" ||
    fail "npx dmabuf --version in $dir"
}

say "consumer 1: from the prebuild, system liburcu hidden"
make_consumer "$work/prebuilt"
if unshare -m true 2>/dev/null; then
  libdir=$(dirname "$(readlink -f "$(ldconfig -p | awk '/liburcu-bp.so.8 /{print $NF; exit}')")")
  export -f run_programs fail make_consumer
  export work repo tgz arch
  unshare -m bash -c '
    set -euo pipefail
    for l in '"$libdir"'/liburcu*.so*; do mount --bind /dev/null "$l"; done
    [ ! -s '"$libdir"'/liburcu-bp.so.8 ] || fail "system liburcu still visible"
    (cd "$work/prebuilt" && npm install --no-audit --no-fund --loglevel=error "$tgz")
    run_programs "$work/prebuilt" "prebuilds/linux-$arch/dmabuf.glibc.node"
  '
else
  echo "consumer: SKIP hiding liburcu (unshare -m not permitted); installing with it visible"
  (cd "$work/prebuilt" && npm install --no-audit --no-fund --loglevel=error "$tgz")
  run_programs "$work/prebuilt" "prebuilds/linux-$arch/dmabuf.glibc.node"
fi

say "consumer without liburcu: the source install stops with one line naming the package"
mkdir -p "$work/nourcu" && echo '{ "name": "nourcu", "version": "1.0.0", "private": true }' >"$work/nourcu/package.json"
if (cd "$work/nourcu" && PKG_CONFIG_LIBDIR=/nonexistent PKG_CONFIG_PATH= npm install --no-audit --no-fund \
    "$work/dmabuf-source.tgz" >"$work/nourcu.log" 2>&1); then
  fail "installing from source without liburcu succeeded"
fi
n=$(grep -c 'dmabuf: pkg-config cannot find liburcu-bp: .*install liburcu-dev' "$work/nourcu.log" || true)
[ "$n" = 1 ] || { cat "$work/nourcu.log"; fail "the liburcu line was printed $n times, not once"; }
grep -q 'gyp ERR!' "$work/nourcu.log" && { cat "$work/nourcu.log"; fail "gyp ran without liburcu"; }

if [ "$source_build" = 1 ]; then
  say "consumer 2: from source (no prebuilds/), the install hook compiles with node-gyp"
  make_consumer "$work/source"
  (cd "$work/source" && npm install --no-audit --no-fund --foreground-scripts "$work/dmabuf-source.tgz" >"$work/source-install.log" 2>&1) ||
    { tail -40 "$work/source-install.log"; fail "source install failed"; }
  n=$(grep -c 'gyp info ok' "$work/source-install.log" || true)
  [ "$n" = 1 ] || { tail -40 "$work/source-install.log"; fail "the addon was built $n times, not once"; }
  run_programs "$work/source" "build/Release/dmabuf.node"
fi
say "ok"
