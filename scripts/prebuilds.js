#!/usr/bin/env node
// Makes a prebuild: prebuilds/linux-<arch>/dmabuf.<libc>.node (prebuildify's
// --napi --tag-libc naming, which node-gyp-build matches against the running
// libc) plus the liburcu .so files it loads through its $ORIGIN rpath, and the
// liburcu LGPL notice beside them. Stripped. Copies, never moves, so the
// development build in build/ stays where it is.
//
//   node scripts/prebuilds.js                  host arch: cmake-js compile (incremental) in build/
//   node scripts/prebuilds.js --arch arm64     cross-build in build-arm64/ (g++-aarch64-linux-gnu,
//                                              liburcu-dev:arm64 through multiarch)
//   node scripts/prebuilds.js --from DIR       package DIR/dmabuf.node (+ its liburcu) without building
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { parseArgs } = require('node:util');

const root = path.join(__dirname, '..');
const { values } = parseArgs({
  options: { arch: { type: 'string', default: process.arch }, from: { type: 'string' }, quiet: { type: 'boolean' } },
});
const arch = values.arch;
const cross = {
  arm64: { triple: 'aarch64-linux-gnu', processor: 'aarch64', strip: 'aarch64-linux-gnu-strip' },
  x64: { triple: 'x86_64-linux-gnu', processor: 'x86_64', strip: 'x86_64-linux-gnu-strip' },
}[arch];
if (!cross) {
  process.stderr.write(`prebuilds: unsupported --arch ${arch} (x64 or arm64)\n`);
  process.exit(2);
}
const log = (s) => values.quiet || process.stderr.write(`prebuilds: ${s}\n`);
const sh = (cmd, args, env) =>
  execFileSync(cmd, args, { cwd: root, stdio: values.quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', env: { ...process.env, ...env } });

let from = values.from && path.resolve(values.from);
if (!from && arch === process.arch) {
  sh(process.execPath, [require.resolve('cmake-js/bin/cmake-js', { paths: [root] }), 'compile']);
  from = path.join(root, 'build', 'Release');
} else if (!from) {
  const out = path.join(root, `build-${arch}`);
  const env = { PKG_CONFIG_LIBDIR: `/usr/lib/${cross.triple}/pkgconfig:/usr/share/pkgconfig`, PKG_CONFIG_PATH: '' };
  if (!fs.existsSync(path.join(out, 'build.ninja'))) {
    const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
    sh(process.execPath, [cmakeJs, 'configure', '-G', 'Ninja', '-O', out, `--arch=${arch}`,
      '--CDCMAKE_SYSTEM_NAME=Linux', `--CDCMAKE_SYSTEM_PROCESSOR=${cross.processor}`,
      `--CDCMAKE_C_COMPILER=${cross.triple}-gcc`, `--CDCMAKE_CXX_COMPILER=${cross.triple}-g++`,
      '--CDDMABUF_TESTS=OFF', `--CDCMAKE_FIND_ROOT_PATH=/usr/lib/${cross.triple}`], env);
  }
  sh('ninja', ['-C', out, '-j2', 'dmabuf'], env);
  from = path.join(out, 'Release');
}

const addon = path.join(from, 'dmabuf.node');
if (!fs.existsSync(addon)) {
  process.stderr.write(`prebuilds: ${addon} not found\n`);
  process.exit(1);
}
// The addon's ELF machine must be the one we name the folder after.
const machine = fs.readFileSync(addon).readUInt16LE(18);
if (machine !== { x64: 62, arm64: 183 }[arch]) {
  process.stderr.write(`prebuilds: ${addon} is ELF machine ${machine}, not ${arch}\n`);
  process.exit(1);
}

const dest = path.join(root, 'prebuilds', `linux-${arch}`);
fs.rmSync(dest, { recursive: true, force: true });
fs.mkdirSync(dest, { recursive: true });
const strip = (f) => {
  for (const s of [cross.strip, 'strip']) {
    try {
      execFileSync(s, ['--strip-unneeded', f], { stdio: 'ignore' });
      return;
    } catch {}
    if (arch !== process.arch) break; // the host's strip cannot strip another machine's ELF
  }
};
const target = path.join(dest, 'dmabuf.glibc.node');
fs.copyFileSync(addon, target);
strip(target);
for (const lib of ['liburcu-bp.so.8', 'liburcu-common.so.8']) {
  const src = path.join(from, lib);
  if (!fs.existsSync(src)) {
    process.stderr.write(`prebuilds: ${src} not found (the CMake build copies liburcu beside the addon)\n`);
    process.exit(1);
  }
  fs.copyFileSync(src, path.join(dest, lib));
  strip(path.join(dest, lib));
}
// `dmabuf run` (docs/run.md): the broker loads liburcu through $ORIGIN too; the
// preload library links only libc. Optional: a build without them still packs.
for (const tool of ['dmabuf-broker', 'libdmabuf-preload.so', 'dmabuf-run-bench']) {
  const src = path.join(from, tool);
  if (!fs.existsSync(src)) {
    process.stderr.write(`prebuilds: ${tool} not found in ${from}; \`dmabuf run\` will need a source build\n`);
    continue;
  }
  fs.copyFileSync(src, path.join(dest, tool));
  fs.chmodSync(path.join(dest, tool), 0o755);
  strip(path.join(dest, tool));
}
fs.copyFileSync(path.join(root, 'licenses', 'liburcu-NOTICE.txt'), path.join(dest, 'liburcu-NOTICE.txt'));
log(`wrote ${path.relative(root, dest)}: ${fs.readdirSync(dest).join(' ')}`);
