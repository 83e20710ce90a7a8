#!/usr/bin/env node
// Install hook: keep a prebuild (prebuilds/linux-<arch>/dmabuf.<libc>.node) or an
// existing build when it loads; otherwise compile, once, with one builder:
//   - a development checkout (cmake-js installed): cmake-js, the canonical build;
//   - a consumer installing the tarball: node-gyp (the one npm bundles) with
//     binding.gyp, parallel jobs, and the running Node's own headers when it has
//     them (no header download).
// liburcu is checked first, so a machine without it gets one line saying what to
// install instead of gyp's stack.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const root = path.join(__dirname, '..');

function fail(msg) {
  process.stderr.write(`dmabuf: ${msg}\n`);
  process.exit(1);
}

// Why a source build is needed: no prebuild for this platform, or one that does
// not load here (an older glibc or libstdc++ than it needs, say).
let why = 'DMABUF_INSTALL_FORCE_BUILD is set';
if (!process.env.DMABUF_INSTALL_FORCE_BUILD) {
  why = 'no prebuild for this machine';
  try {
    require(require('node-gyp-build').path(root));
    process.exit(0);
  } catch (e) {
    const msg = String((e && e.message) || e).split('\n')[0];
    if (!/No native build was found/.test(msg)) why = `the prebuild does not load here (${msg})`;
  }
}

if (process.platform !== 'linux') fail(`dmabuf runs on Linux only (this is ${process.platform})`);

const pc = spawnSync('pkg-config', ['--exists', 'liburcu-bp'], { stdio: 'ignore' });
if (pc.error || pc.status !== 0) {
  fail(
    (pc.error ? 'pkg-config not found' : "pkg-config cannot find liburcu-bp") +
      `: ${why}, so the addon is built from source and needs liburcu;` +
      ' install liburcu-dev and pkg-config (Debian/Ubuntu), userspace-rcu-devel and pkgconf (Fedora), then reinstall',
  );
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) fail(`cannot run ${cmd}: ${r.error.message}`);
  return r.status === 0;
}

// A development checkout has cmake-js in its own node_modules and the C++ tests
// CMakeLists.txt builds. A cmake-js found further up (a consumer installed below
// some other project's node_modules) says nothing about this package: the
// tarball has no tests, so that would fail at CMake's configure step.
const cmakeJs = path.join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
if (fs.existsSync(cmakeJs) && fs.existsSync(path.join(root, 'test', 'native'))) {
  process.exit(run(process.execPath, [cmakeJs, 'compile']) ? 0 : 1);
}

// node-gyp: npm's own (npm_config_node_gyp, set for install scripts), else PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, pre] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
const args = [...pre, 'rebuild', '--jobs=max'];
// Node's own headers (include/node/common.gypi beside the binary, as the official
// builds and Debian's nodejs-dev ship them) instead of downloading a tarball.
const prefix = path.resolve(process.execPath, '..', '..');
if (!process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'common.gypi'))) {
  args.push(`--nodedir=${prefix}`);
}
if (!run(cmd, args)) fail('building the addon from source failed (the compiler output above says why)');
