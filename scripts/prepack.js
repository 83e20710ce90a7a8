#!/usr/bin/env node
// `npm pack` / `npm publish` hook: the tarball is complete or there is none.
//   - dist/ is rebuilt (tsc, a few seconds), so it matches lib/;
//   - each prebuild (prebuilds/linux-<arch>/dmabuf.glibc.node + liburcu + notice)
//     must exist and be newer than every native source; a missing or stale one is
//     built (scripts/prebuilds.js) when DMABUF_PREPACK_BUILD is not 0, else refused.
// DMABUF_PACK_ARCHES (default "x64 arm64") says which prebuilds the tarball must
// carry; arm64 is cross-built (g++-aarch64-linux-gnu, liburcu-dev:arm64).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const refuse = (msg) => {
  process.stderr.write(`\nprepack: REFUSED: ${msg}\n\n`);
  process.exit(1);
};
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  return r.status === 0;
};

if (!fs.existsSync(path.join(root, 'node_modules', 'typescript'))) {
  refuse('node_modules/ is missing: run `npm ci` first (the tarball needs dist/, compiled from lib/, and the prebuilds)');
}
if (!run('npm', ['run', '--silent', 'build:ts'])) refuse('`npm run build:ts` failed');
for (const f of ['index.js', 'index.mjs', 'index.d.ts', 'index.d.mts', 'cli.js']) {
  if (!fs.existsSync(path.join(root, 'dist', f))) refuse(`dist/${f} missing after build:ts`);
}

function newestSource() {
  let newest = 0;
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  walk(path.join(root, 'native'));
  for (const f of ['CMakeLists.txt', 'binding.gyp']) newest = Math.max(newest, fs.statSync(path.join(root, f)).mtimeMs);
  return newest;
}
const sources = newestSource();
const build = process.env.DMABUF_PREPACK_BUILD !== '0';
const arches = (process.env.DMABUF_PACK_ARCHES ?? 'x64 arm64').split(/[\s,]+/).filter(Boolean);
for (const arch of arches) {
  const dir = path.join(root, 'prebuilds', `linux-${arch}`);
  const files = ['dmabuf.glibc.node', 'liburcu-bp.so.8', 'liburcu-common.so.8', 'liburcu-NOTICE.txt'];
  const problem = () => {
    const missing = files.filter((f) => !fs.existsSync(path.join(dir, f)));
    if (missing.length) return `prebuilds/linux-${arch} lacks ${missing.join(', ')}`;
    if (fs.statSync(path.join(dir, files[0])).mtimeMs < sources) return `prebuilds/linux-${arch} is older than native/`;
    return null;
  };
  let why = problem();
  if (!why) continue;
  if (!build) refuse(`${why} (DMABUF_PREPACK_BUILD=0: run \`npm run prebuilds${arch === process.arch ? '' : ':' + arch}\`)`);
  process.stderr.write(`prepack: ${why}: building it\n`);
  if (!run(process.execPath, [path.join(__dirname, 'prebuilds.js'), '--arch', arch]) || (why = problem())) {
    refuse(
      `could not build the linux-${arch} prebuild${why ? ` (${why})` : ''}` +
        (arch === process.arch ? '' : `; it needs g++-${arch === 'arm64' ? 'aarch64' : 'x86-64'}-linux-gnu and liburcu-dev:${arch}, or set DMABUF_PACK_ARCHES to leave it out`),
    );
  }
}
