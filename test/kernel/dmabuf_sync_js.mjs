#!/usr/bin/env node
// Real-kernel JS tests for what a kernel dma-buf refuses (resv, attach, revoke).
// Its implicit sync (exportSyncFile / importSyncFile with sw_sync fences) is the
// `dma-buf-implicit-sync` suite of `dmabuf selftest`, which run-in-rig.sh runs
// with --backend kernel. Run inside the kernel rig by run-in-rig.sh; also
// runnable by hand on any machine with a kernel system heap and sw_sync (else
// skipped with the reason). Output: KTAP (tap.mjs); exit 1 on a failure.
import { suite } from './tap.mjs';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const { openHeap, SwSyncTimeline, DmaBufError } = require('../../dist/index.js');

const { test, run } = suite();
const code = (c) => (e) => e instanceof DmaBufError && e.code === c;

function kernelBuffer(len = 4096) {
  const heap = openHeap('system', { backend: 'kernel' });
  assert.equal(heap.backend, 'kernel');
  const buf = heap.alloc(len);
  heap.close();
  assert.equal(buf.backend, 'kernel');
  return buf;
}

test('what userspace cannot reach on a kernel buffer: resv, attach, revoke (EOPNOTSUPP)', () => {
  const buf = kernelBuffer();
  assert.throws(() => buf.resv, (e) => code('EOPNOTSUPP')(e) && /exportSyncFile/.test(e.message));
  assert.throws(() => buf.attach(), code('EOPNOTSUPP'));
  assert.throws(() => buf.attach({ pinned: true }), code('EOPNOTSUPP'));
  assert.throws(() => buf.revoke(), code('EOPNOTSUPP'));
  assert.equal(buf.revoked, false);
  buf.close();
});

let why = null;
try {
  openHeap('system', { backend: 'kernel' }).close();
} catch (e) {
  why = `no kernel system heap: ${e.message}`;
}
if (!why && !SwSyncTimeline.kernelAvailable()) why = 'no kernel sw_sync';
await run({ why });
