#!/usr/bin/env node
// Install hook: keep a prebuild or an existing build when it loads; otherwise compile.
// cmake-js is the canonical build (dev checkouts have it); a consumer installing from a
// tarball without prebuilds falls back to node-gyp and binding.gyp, which npm bundles.
'use strict';
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const root = path.join(__dirname, '..');

try {
  require(require('node-gyp-build').path(root));
  process.exit(0);
} catch {}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  return r.status === 0;
}
let cmakeJs = null;
try { cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] }); } catch {}
if (cmakeJs && run(process.execPath, [cmakeJs, 'compile'])) process.exit(0);
const npmNodeGyp = process.env.npm_config_node_gyp;
if (npmNodeGyp && run(process.execPath, [npmNodeGyp, 'rebuild'])) process.exit(0);
process.exit(run('node-gyp', ['rebuild']) ? 0 : 1);
