#!/usr/bin/env node
// A buffer Node allocated, used by a real DRM importer (issue 12, "Real
// devices"): test/kernel/vgem_import.c receives it over a SOCK_SEQPACKET
// channel (SCM_RIGHTS), imports it into vgem with DRM_IOCTL_PRIME_FD_TO_HANDLE,
// maps it and checks Node's bytes, then holds a vgem write fence on it
// (VGEM_FENCE_ATTACH ... ~300 ms ... VGEM_FENCE_SIGNAL) that Node's
// buf.busy('read') / buf.wait('read') see through poll() on the dma-buf fd.
//
// Usage: node test/kernel/vgem_js.mjs [path/to/vgem_import]  (default
// build-dev/vgem_import). Run by run-in-rig.sh in a boot with RIG_MODULES=vgem;
// without /dev/dri (vgem not loaded), a kernel heap or the helper, skipped with
// the reason.
//
// The channel is the package's FdChannel (FdChannel.pair(), the child's end
// as its fd 3): the helper reads FdChannel's wire format
// ({"v":1,"m":...,"a":[{"k":"dmabuf","b":"kernel"}]} + SCM_RIGHTS) and answers in it.
import { suite } from './tap.mjs';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const dm = require('../../dist/index.js');
const { openHeap, DmaBuf, FdChannel } = dm;

const HELPER = path.resolve(process.argv[2] ?? 'build-dev/vgem_import');
const PATTERN = 0xa5;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const openFds = () => readdirSync('/proc/self/fd').length;

// Spawns the helper with one end of an FdChannel as its fd 3 and sends it the
// buffer; next() is the helper's next reply (`m`).
async function startImporter(buf, message) {
  const [mine, theirs] = FdChannel.pair();
  const child = spawn(HELPER, [], { stdio: ['ignore', 'inherit', 'inherit', theirs.fd] });
  theirs.close();
  const exited = new Promise((r) => child.on('exit', (code, sig) => r(sig ?? code)));
  await mine.send(message, [buf]);
  return {
    async next() {
      const { message: m, attachments } = await mine.receive({ timeout: 20000 });
      assert.deepEqual(attachments, []);
      return m;
    },
    exited,
    close: () => mine.close(),
  };
}

const { test, run } = suite();

test('vgem imports a kernel-heap buffer (PRIME_FD_TO_HANDLE) and sees its bytes; its write fence holds buf.wait(read)', async () => {
  const heap = openHeap('system', { backend: 'kernel' });
  const buf = heap.alloc(64 * 1024);
  heap.close();
  assert.equal(buf.backend, 'kernel');
  const bytes = new Uint8Array(buf.map());
  buf.beginCpuAccess('write');
  bytes.fill(PATTERN);
  buf.endCpuAccess('write');
  buf.unmap();
  assert.equal(buf.busy('read'), false);
  assert.equal(buf.busy('write'), false);

  const imp = await startImporter(buf, { pattern: PATTERN, size: buf.size });
  const fenced = await imp.next();
  assert.ok(!fenced.error, `importer: ${fenced.error}`);
  assert.deepEqual(fenced, { fenced: true });
  const tFenced = performance.now();
  // vgem's write fence sits in the dma-buf's reservation object.
  assert.equal(buf.busy('read'), true, 'poll(POLLIN) blocks on the vgem write fence');
  assert.equal(buf.busy('write'), true, 'poll(POLLOUT) blocks too');
  assert.equal(await buf.wait('read', { timeout: 0 }), false);
  let resolvedAt = null;
  const reading = buf.wait('read').then((v) => ((resolvedAt = performance.now()), v));
  const writing = buf.wait('write', { timeout: 20000 });
  await sleep(100);
  assert.equal(resolvedAt, null, 'wait(read) pending while the fence is');
  const signalled = await imp.next();
  assert.ok(!signalled.error, `importer: ${signalled.error}`);
  assert.equal(signalled.signalled, true);
  assert.equal(signalled.bytesOk, true, "vgem's mapping shows Node's bytes");
  assert.equal(await reading, true);
  assert.equal(await writing, true);
  assert.ok(resolvedAt - tFenced >= 200, `wait(read) resolved ${Math.round(resolvedAt - tFenced)} ms after the fence, not ~300`);
  assert.equal(buf.busy('read'), false);
  assert.equal(await imp.exited, 0);
  imp.close();
  buf.close();
  return `note: vgem MAP_DUMB of the import: ${signalled.mapDumb}, mapped via ${signalled.mappedVia}`;
});

test('DmaBuf.fromFd of a kernel-heap buffer keeps its size, exporter and name; no fds leak', async () => {
  const before = openFds();
  const heap = openHeap('system', { backend: 'kernel' });
  const buf = heap.alloc(8192);
  heap.close();
  buf.setName('vgem-src');
  const again = DmaBuf.fromFd(buf.fd);
  assert.equal(again.size, 8192);
  assert.equal(again.exporterName, 'system');
  assert.equal(again.name, 'vgem-src');
  assert.equal(again.busy('read'), false);
  again.close();
  buf.close();
  assert.equal(openFds(), before);
});

let why = null;
try {
  openHeap('system', { backend: 'kernel' }).close();
} catch (e) {
  why = `no kernel system heap: ${e.message}`;
}
if (!why && !existsSync('/dev/dri')) why = 'no /dev/dri: vgem is not loaded (RIG_MODULES=vgem)';
if (!why && !existsSync(HELPER)) why = `no ${HELPER} (build the vgem_import target)`;
await run({ why, timeoutMs: 60000 });
