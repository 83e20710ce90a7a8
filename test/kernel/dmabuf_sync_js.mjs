#!/usr/bin/env node
// Real-kernel JS tests for what a kernel dma-buf refuses (resv, attach, revoke),
// poll() on a dma-buf (busy/wait with sw_sync fences as implicit fences) and
// DmaBuf.fromFd() of real dma-buf fds (heap and udmabuf: sizes, names, dup).
// Its implicit sync (exportSyncFile / importSyncFile with sw_sync fences) is the
// `dma-buf-implicit-sync` suite of `dmabuf selftest`, which run-in-rig.sh runs
// with --backend kernel. Run inside the kernel rig by run-in-rig.sh; also
// runnable by hand on any machine with a kernel system heap and sw_sync (else
// skipped with the reason). Output: KTAP (tap.mjs); exit 1 on a failure.
import { suite } from './tap.mjs';
import { createRequire } from 'node:module';
import { fstatSync, readdirSync } from 'node:fs';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const { openHeap, SwSyncTimeline, DmaBufError, DmaBuf, createMemfd, udmabufCreate } = require('../../dist/index.js');
const openFds = () => readdirSync('/proc/self/fd').length;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

test('busy/wait: a pending sw_sync write fence blocks read and write; a read fence only write', async () => {
  const buf = kernelBuffer();
  const tl = new SwSyncTimeline({ backend: 'kernel' });
  const w = tl.createFence(1);
  const r = tl.createFence(2);
  assert.equal(buf.busy('read'), false);
  assert.equal(buf.busy('write'), false);
  assert.equal(await buf.wait('write'), true);
  buf.importSyncFile(r, 'read');
  assert.equal(buf.busy('read'), false, 'a reader does not block readers (EPOLLIN)');
  assert.equal(buf.busy('write'), true, 'a reader blocks writers (EPOLLOUT)');
  buf.importSyncFile(w, 'write');
  assert.equal(buf.busy('read'), true);
  assert.equal(await buf.wait('read', { timeout: 0 }), false);
  assert.equal(await buf.wait('read', { timeout: 30 }), false);
  let readAt = null;
  let writeAt = null;
  const reading = buf.wait('read').then((v) => ((readAt = performance.now()), v));
  const reading2 = buf.wait('read', { timeout: 20000 });
  const writing = buf.wait('write').then((v) => ((writeAt = performance.now()), v));
  await sleep(50);
  assert.equal(readAt, null);
  tl.inc(1); // the writer signals: readers may go, the writer waits for the reader
  assert.equal(await reading, true);
  assert.equal(await reading2, true);
  await sleep(50);
  assert.equal(writeAt, null, 'wait(write) still waits for the read fence');
  assert.equal(buf.busy('write'), true);
  tl.inc(1);
  assert.equal(await writing, true);
  assert.equal(buf.busy('write'), false);
  for (const x of [w, r, tl, buf]) x.close();
});

test('busy/wait: abort, close while waiting (EBADF), and the fd watch is gone after', async () => {
  const before = openFds();
  const buf = kernelBuffer();
  const tl = new SwSyncTimeline({ backend: 'kernel' });
  const w = tl.createFence(1);
  buf.importSyncFile(w, 'write');
  const ac = new AbortController();
  const aborted = buf.wait('read', { signal: ac.signal });
  const pending = buf.wait('read');
  const pendingW = buf.wait('write');
  ac.abort();
  await assert.rejects(aborted, { name: 'AbortError' });
  buf.close();
  await assert.rejects(pending, code('EBADF'));
  await assert.rejects(pendingW, code('EBADF'));
  assert.throws(() => buf.busy('read'), code('EBADF'));
  tl.inc(1);
  for (const x of [w, tl]) x.close();
  assert.equal(openFds(), before);
});

test('DmaBuf.fromFd: a heap buffer (size, exporter, name, same memory and fences), dup keeps the caller\'s fd', async () => {
  const before = openFds();
  const buf = kernelBuffer(3 * 4096);
  buf.setName('from-fd');
  const a = DmaBuf.fromFd(buf.fd);
  assert.equal(a.backend, 'kernel');
  assert.equal(a.size, 3 * 4096);
  assert.equal(a.exporterName, 'system');
  assert.equal(a.name, 'from-fd');
  assert.notEqual(a.fd, buf.fd);
  assert.equal(fstatSync(a.fd).ino, fstatSync(buf.fd).ino, 'the same dma-buf');
  // The same memory: a write through one mapping shows in the other.
  const x = new Uint8Array(buf.map());
  const y = new Uint8Array(a.map());
  x[100] = 0x5a;
  assert.equal(y[100], 0x5a);
  // Implicit fences are the buffer's, seen through either fd.
  const tl = new SwSyncTimeline({ backend: 'kernel' });
  const w = tl.createFence(1);
  buf.importSyncFile(w, 'write');
  assert.equal(a.busy('read'), true);
  const p = a.wait('read', { timeout: 20000 });
  tl.inc(1);
  assert.equal(await p, true);
  a.close();
  assert.equal(buf.size, 3 * 4096, "dup: closing the adopted DmaBuf leaves the caller's fd open");
  assert.ok(fstatSync(buf.fd).ino > 0);
  assert.equal(x[100], 0x5a);
  for (const s of [w, tl]) s.close();
  buf.close();
  assert.equal(openFds(), before);
});

test('DmaBuf.fromFd(fd, { dup: false }) takes the fd over: a child adopts its fd 3 and close() closes it', async () => {
  const buf = kernelBuffer(2 * 4096);
  buf.setName('handed-over');
  const script = `
    const fs = require('node:fs');
    const { DmaBuf } = require(${JSON.stringify(require.resolve('../../dist/index.js'))});
    // fd 3 still the dma-buf? (not just open: readdir of /proc/self/fd would take a free 3)
    const has3 = () => { try { return fs.readlinkSync('/proc/self/fd/3').startsWith('/dmabuf:'); } catch { return false; } };
    const b = DmaBuf.fromFd(3, { dup: false });
    const out = { fd: b.fd, size: b.size, exp: b.exporterName, name: b.name, before: has3() };
    b.close();
    out.after = has3();
    try { DmaBuf.fromFd(3); } catch (e) { out.again = e.code; }
    console.log(JSON.stringify(out));`;
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit', buf.fd], encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.deepEqual(JSON.parse(r.stdout), {
    fd: 3, size: 2 * 4096, exp: 'system', name: 'handed-over', before: true, after: false, again: 'EBADF',
  });
  buf.close();
});

test('DmaBuf.fromFd: a udmabuf is adopted with its exporter; a memfd is EINVAL; no fds leak', () => {
  const before = openFds();
  const memfd = createMemfd(8192);
  assert.throws(() => DmaBuf.fromFd(memfd.fd), code('EINVAL'));
  assert.throws(() => DmaBuf.fromFd(memfd.fd, { dup: false }), code('EINVAL'));
  let u = null;
  try {
    u = udmabufCreate(memfd);
  } catch (e) {
    memfd.close();
    return `no udmabuf: ${e.code}`;
  }
  const a = DmaBuf.fromFd(u.fd);
  assert.equal(a.exporterName, 'udmabuf');
  assert.equal(a.size, 8192);
  assert.equal(a.busy('read'), false);
  a.close();
  u.close();
  memfd.close();
  assert.throws(() => DmaBuf.fromFd(0x7ffffff0), code('EBADF')); // not open
  assert.equal(openFds(), before);
});

let why = null;
try {
  openHeap('system', { backend: 'kernel' }).close();
} catch (e) {
  why = `no kernel system heap: ${e.message}`;
}
if (!why && !SwSyncTimeline.kernelAvailable()) why = 'no kernel sw_sync';
await run({ why });
