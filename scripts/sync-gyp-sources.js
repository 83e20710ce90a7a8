#!/usr/bin/env node
// Rewrites binding.gyp's source list from the directories CMakeLists.txt globs
// into the addon (native/core, native/kernel, native/bench, native/addon, with
// their subfolders, as CMake's GLOB_RECURSE), so
// adding a file is one command. test/build.test.ts checks the two agree.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
const dirs = ['native/addon', 'native/bench', 'native/core', 'native/kernel'];
const sources = dirs
  .flatMap((d) => fs.readdirSync(path.join(root, d), { recursive: true }).filter((f) => f.endsWith('.cc')).map((f) => `${d}/${f}`))
  .sort();
const file = path.join(root, 'binding.gyp');
const gyp = JSON.parse(fs.readFileSync(file, 'utf8'));
gyp.targets.find((t) => t.target_name === 'dmabuf').sources = sources;
fs.writeFileSync(file, JSON.stringify(gyp, null, 2) + '\n');
console.log(`binding.gyp: ${sources.length} sources`);
