#!/usr/bin/env node
// Real-kernel JS tests for a dma-buf's implicit sync (DmaBuf.exportSyncFile /
// importSyncFile on /dev/dma_heap/system buffers, with sw_sync fences), and for
// what a kernel buffer refuses (resv, attach, revoke). Run inside the kernel rig
// by run-in-rig.sh; also runnable by hand on any machine with both. Without a
// kernel system heap or sw_sync every case is skipped with the reason printed.
// Output: one "ok/not ok/skip" line per case (TAP-like); exit 1 on a failure.
import { suite } from './tap.mjs';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const { openHeap, SwSyncTimeline, SyncFile, Fence, DmaBufError } = require('../../dist/index.js');

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

test('implicit sync: a pending write fence makes the read export pending until it signals', async () => {
  const buf = kernelBuffer();
  const t = new SwSyncTimeline({ backend: 'kernel' });
  const writer = t.createFence(1);
  buf.importSyncFile(writer, 'write');
  const forRead = buf.exportSyncFile('read');
  const forWrite = buf.exportSyncFile('write');
  assert.equal(forRead.backend, 'kernel');
  assert.ok(forRead.fd >= 0);
  assert.equal(forRead.status, 0);
  assert.equal(forWrite.status, 0);
  assert.equal(await forRead.wait({ timeout: 20 }), false);
  const done = forRead.wait({ timeout: 10000 });
  t.inc(1);
  assert.equal(await done, true);
  assert.equal(forRead.status, 1);
  assert.equal(forWrite.status, 1);
  // once signalled, a new export has nothing to wait for
  const after = buf.exportSyncFile('read');
  assert.equal(after.status, 1);
  for (const s of [writer, forRead, forWrite, after]) s.close();
  t.close();
  buf.close();
});

test('no fences: both exports are already signalled', () => {
  const buf = kernelBuffer();
  for (const dir of ['read', 'write', 'readwrite']) {
    const s = buf.exportSyncFile(dir);
    assert.equal(s.status, 1, dir);
    s.close();
  }
  buf.close();
});

test('a read fence blocks writers only', () => {
  const buf = kernelBuffer();
  const t = new SwSyncTimeline({ backend: 'kernel' });
  const reader = t.createFence(1);
  buf.importSyncFile(reader, 'read');
  const forRead = buf.exportSyncFile('read');
  const forWrite = buf.exportSyncFile('write');
  assert.equal(forRead.status, 1);
  assert.equal(forWrite.status, 0);
  t.inc(1);
  assert.equal(forWrite.status, 1);
  for (const s of [reader, forRead, forWrite]) s.close();
  t.close();
  buf.close();
});

test('a merged sync_file is unwrapped: the export waits for every member', () => {
  const buf = kernelBuffer();
  const a = new SwSyncTimeline({ backend: 'kernel' });
  const b = new SwSyncTimeline({ backend: 'kernel' });
  const fa = a.createFence(1);
  const fb = b.createFence(1);
  const both = SyncFile.merge('both', fa, fb);
  buf.importSyncFile(both, 'readwrite');
  const out = buf.exportSyncFile('read');
  assert.equal(out.info().fences.length, 2);
  a.inc(1);
  assert.equal(out.status, 0);
  b.inc(1);
  assert.equal(out.status, 1);
  for (const s of [fa, fb, both, out]) s.close();
  a.close();
  b.close();
  buf.close();
});

test('the exported sync_file bridges into a Fence', async () => {
  const buf = kernelBuffer();
  const t = new SwSyncTimeline({ backend: 'kernel' });
  const w = t.createFence(1);
  buf.importSyncFile(w, 'write');
  const out = buf.exportSyncFile('read');
  const f = out.fence;
  assert.ok(f instanceof Fence);
  assert.equal(f.signaled, false);
  setTimeout(() => t.inc(1), 10);
  assert.equal(await f.wait({ timeout: 10000 }), true);
  out.close();
  w.close();
  t.close();
  buf.close();
});

test('mixed backends, bad directions, closed objects', () => {
  const buf = kernelBuffer();
  const emu = SyncFile.create(Fence.stub());
  assert.throws(() => buf.importSyncFile(emu, 'write'), (e) => code('EINVAL')(e) && /emulated sync_file into a kernel/.test(e.message));
  const emuBuf = openHeap('system').alloc(4096);
  const t = new SwSyncTimeline({ backend: 'kernel' });
  const k = t.createFence(1);
  assert.throws(() => emuBuf.importSyncFile(k, 'read'), code('EINVAL'));
  assert.throws(() => buf.exportSyncFile('rw'), (e) => e.code === 'ERR_INVALID_ARG_VALUE');
  assert.throws(() => buf.importSyncFile(k, 3), (e) => e.code === 'ERR_INVALID_ARG_TYPE');
  k.close();
  assert.throws(() => buf.importSyncFile(k, 'read'), code('EBADF'));
  buf.close();
  assert.throws(() => buf.exportSyncFile('read'), code('EBADF'));
  emu.close();
  emuBuf.close();
  t.close();
});

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
