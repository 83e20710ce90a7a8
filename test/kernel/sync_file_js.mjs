#!/usr/bin/env node
// Real-kernel JS tests for SyncFile / SwSyncTimeline (run inside the kernel
// rig by run-in-rig.sh; also runnable by hand on any machine with sw_sync).
// Without a kernel sw_sync every case is skipped with the reason printed.
// Output: one "ok/not ok/skip" line per case (TAP-like); exit 1 on a failure.
import { suite } from './tap.mjs';
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const { SyncFile, SwSyncTimeline, Fence, FenceArray, DmaBufError } = require('../../dist/index.js');

const { test, run } = suite();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('sw_sync fence waited on from JS without blocking the loop', async () => {
  const t = new SwSyncTimeline({ backend: 'kernel' });
  assert.equal(t.backend, 'kernel');
  const f = t.createFence(1);
  assert.equal(f.backend, 'kernel');
  assert.ok(f.fd >= 0);
  // Warm up (the first timers of a fresh process under TCG are slow), then
  // count timer ticks while the wait is pending: a blocked loop gives none.
  await sleep(50);
  let ticks = 0;
  let settled = false;
  const iv = setInterval(() => ticks++, 10);
  const w = f.wait().then((v) => ((settled = true), v));
  await sleep(400);
  assert.equal(settled, false, 'the wait is still pending before inc');
  const during = ticks;
  t.inc(1);
  assert.equal(await w, true);
  clearInterval(iv);
  assert.ok(during >= 3, `the loop kept running while waiting (${during} timer ticks in 400 ms)`);
  assert.equal(f.status, 1);
  // timeout, and two concurrent waits on one fd (one shared uv_poll)
  const g = t.createFence(5);
  assert.equal(await g.wait({ timeout: 20 }), false);
  const both = Promise.all([g.wait(), g.wait({ timeout: 10000 })]);
  t.inc(4);
  assert.deepEqual(await both, [true, true]);
  // close while waiting rejects with EBADF
  const h = t.createFence(10);
  const p = h.wait();
  h.close();
  await assert.rejects(p, (e) => e instanceof DmaBufError && e.code === 'EBADF');
  f.close();
  g.close();
  t.close();
});

test('merge and info (names, status, timestamps, 6.12 names)', () => {
  const a = new SwSyncTimeline({ backend: 'kernel' });
  const b = new SwSyncTimeline({ backend: 'kernel' });
  const fa = a.createFence(1, 'ignored-by-6.12');
  const fb = b.createFence(2);
  const m = SyncFile.merge('my-merge', fa, fb);
  let i = m.info();
  assert.equal(i.name, 'my-merge');
  assert.equal(i.status, 0);
  assert.equal(i.fences.length, 2);
  for (const l of i.fences) {
    assert.equal(l.driverName, 'sw_sync');
    assert.equal(l.status, 0);
    assert.equal(l.timestampNs, 0n);
  }
  // 6.12: the create-fence name is ignored; "sw_sync-<comm><ctx>-<seqno>"
  assert.match(fa.info().name, /^sw_sync-.*-1$/);
  a.inc(1);
  i = m.info();
  assert.equal(i.status, 0);
  assert.equal(i.fences.filter((l) => l.status === 1).length, 1);
  b.inc(2);
  i = m.info();
  assert.equal(i.status, 1);
  for (const l of i.fences) assert.ok(l.timestampNs > 0n);
  // same timeline twice: one fence
  const s = SyncFile.merge('same', fa, fa);
  assert.equal(s.info().fences.length, 1);
  // close signals the rest with ENOENT
  const c = new SwSyncTimeline({ backend: 'kernel' });
  const fc = c.createFence(3);
  c.close();
  assert.equal(fc.status, -2);
  for (const x of [fa, fb, m, s, fc]) x.close();
  a.close();
  b.close();
});

test('deadlines (6.4+)', () => {
  const t = new SwSyncTimeline({ backend: 'kernel' });
  const f = t.createFence(1);
  assert.throws(() => t.getDeadline(f), (e) => e.code === 'ENOENT' && e.syscall === 'SW_SYNC_GET_DEADLINE');
  f.setDeadline(2000n);
  f.setDeadline(1000n);
  assert.equal(t.getDeadline(f), 1000n);
  f.close();
  t.close();
});

test('the bridge: a kernel fence in Fence.waitAny and callbacks', async () => {
  const t = new SwSyncTimeline({ backend: 'kernel' });
  const sf = t.createFence(1);
  const kf = sf.fence;
  assert.ok(kf instanceof Fence);
  assert.equal(kf.isSignaled(), false);
  const never = new Fence();
  let cbFired = false;
  kf.addCallback(() => (cbFired = true));
  const any = Fence.waitAny([never, kf], { timeout: 10000 });
  setTimeout(() => t.inc(1), 50);
  assert.equal(await any, 1);
  await sleep(0);
  assert.equal(cbFired, true);
  assert.equal(kf.isSignaled(), true);
  assert.ok(kf.timestamp > 0n);
  // errors carry over: a closed timeline's point signals with ENOENT
  const t2 = new SwSyncTimeline({ backend: 'kernel' });
  const sf2 = t2.createFence(7);
  const kf2 = sf2.fence;
  const w = kf2.wait({ timeout: 10000 });
  t2.close();
  assert.equal(await w, true);
  assert.equal(kf2.error, -2);
  never.signal();
  never.dispose();
  sf.close();
  sf2.close();
  t.close();
});

test('the bridge: kernel fences inside an emulated FenceArray', async () => {
  const t = new SwSyncTimeline({ backend: 'kernel' });
  const u = new SwSyncTimeline({ backend: 'kernel' });
  const a = t.createFence(1);
  const b = u.createFence(1);
  const js = new Fence({ context: Fence.allocContext(), seqno: 1n });
  const arr = new FenceArray([a.fence, b.fence, js]);
  const w = arr.wait({ timeout: 10000 });
  t.inc(1);
  js.signal();
  assert.equal(await arr.wait({ timeout: 50 }), false, 'one kernel member still pending');
  u.close(); // the last member signals with ENOENT: the array carries the error
  assert.equal(await w, true);
  assert.equal(arr.error, -2);
  arr.dispose();
  js.dispose();
  a.close();
  b.close();
  t.close();
});

test('fromFd errors: EBADF, a non-sync_file fd', () => {
  assert.throws(() => SyncFile.fromFd(987654), (e) => e instanceof DmaBufError && e.code === 'EBADF');
  const fd = fs.openSync('/dev/null', 'r');
  try {
    assert.throws(() => SyncFile.fromFd(fd), (e) => e instanceof DmaBufError && e.code === 'ENOTTY' && e.syscall === 'SYNC_IOC_FILE_INFO');
  } finally {
    fs.closeSync(fd);
  }
  // dup (default) leaves the caller's fd open; dup:false takes it
  const t = new SwSyncTimeline({ backend: 'kernel' });
  const f = t.createFence(1);
  const d = SyncFile.fromFd(f.fd);
  assert.notEqual(d.fd, f.fd);
  t.inc(1);
  assert.equal(d.status, 1);
  d.close();
  assert.equal(f.status, 1);
  f.close();
  t.close();
});

test('mixing backends is refused', () => {
  const k = new SwSyncTimeline({ backend: 'kernel' });
  const e = new SwSyncTimeline({ backend: 'emulated' });
  const a = k.createFence(1);
  const b = e.createFence(1);
  assert.throws(() => SyncFile.merge('x', a, b), (err) => err.code === 'EINVAL' && /a kernel sync_file with an emulated one/.test(err.message));
  assert.throws(() => e.getDeadline(a), (err) => err.code === 'EINVAL' && err.syscall === 'SW_SYNC_GET_DEADLINE');
  assert.throws(() => k.getDeadline(b), (err) => err.code === 'EINVAL' && /an emulated sync_file is not a point of a kernel timeline/.test(err.message));
  a.close();
  b.close();
  k.close();
  e.close();
});

test('a worker terminated with kernel sync_file waits pending ends cleanly', async () => {
  // Each pending wait is a uv_poll on the worker's loop: the addon must close
  // them when the environment goes, or Node aborts closing the loop.
  const { Worker } = await import('node:worker_threads');
  for (let i = 0; i < 5; i++) {
    const w = new Worker(`
      const { parentPort } = require('node:worker_threads');
      const { SwSyncTimeline } = require(${JSON.stringify(require.resolve('../../dist/index.js'))});
      const t = new SwSyncTimeline({ backend: 'kernel' });
      const fs = [1, 2, 3].map((v) => t.createFence(v));
      for (const f of fs) { f.wait().catch(() => {}); f.wait({ timeout: 60000 }).catch(() => {}); }
      parentPort.postMessage('waiting');
      setInterval(() => {}, 1000);
    `, { eval: true });
    await new Promise((res, rej) => { w.once('message', res); w.once('error', rej); });
    await w.terminate();
  }
});

let why = null;
if (!SwSyncTimeline.kernelAvailable()) {
  why = 'no kernel sw_sync';
  try {
    new SwSyncTimeline({ backend: 'kernel' });
  } catch (e) {
    why = e.message;
  }
}
await run({ why });
