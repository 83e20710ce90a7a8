#!/usr/bin/env node
// After `tsc` (stripInternal): a class whose constructor is `/** @internal */`
// (objects only this package makes: Heap, DmaBuf, Attachment, ...) lost it from
// its .d.ts, which leaves TypeScript's implicit public constructor, so
// `new Heap()` would type-check and throw at run time. Declare it private.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const lib = path.join(root, 'lib');
const dist = path.join(root, 'dist');

function internalCtorClasses(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const found = [];
  let cls = null;
  lines.forEach((line, i) => {
    const m = /^export (?:abstract )?class (\w+)/.exec(line);
    if (m) cls = m[1];
    if (!cls || !/^ {2}constructor\(/.test(line)) return;
    // the JSDoc block right above the constructor
    let j = i - 1;
    if (!/\*\/\s*$/.test(lines[j] ?? '')) return;
    let doc = '';
    for (; j >= 0; j--) {
      doc = lines[j] + '\n' + doc;
      if (/\/\*\*/.test(lines[j])) break;
    }
    if (/@internal\b/.test(doc)) found.push(cls);
  });
  return found;
}

let patched = 0;
for (const e of fs.readdirSync(lib, { withFileTypes: true, recursive: true })) {
  if (!e.isFile() || !e.name.endsWith('.ts') || e.name.endsWith('.d.ts')) continue;
  const src = path.join(e.parentPath, e.name);
  const classes = internalCtorClasses(src);
  if (!classes.length) continue;
  const dts = path.join(dist, path.relative(lib, src)).replace(/\.ts$/, '.d.ts');
  if (!fs.existsSync(dts)) continue;
  const out = fs.readFileSync(dts, 'utf8').split('\n');
  for (const cls of classes) {
    const start = out.findIndex((l) => new RegExp(`^export declare (?:abstract )?class ${cls}\\b.*\\{$`).test(l));
    if (start < 0) continue;
    const end = out.indexOf('}', start);
    if (out.slice(start, end).some((l) => /^ {4}(?:private |protected )?constructor\(/.test(l))) continue;
    out.splice(start + 1, 0, '    /** Made by this package only (see the class summary). */', '    private constructor();');
    patched++;
  }
  fs.writeFileSync(dts, out.join('\n'));
}
if (process.argv.includes('--verbose')) process.stderr.write(`dts-internal-ctors: ${patched} classes\n`);
