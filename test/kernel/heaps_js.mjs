#!/usr/bin/env node
// Real-kernel JS tests for heaps, dma-bufs and udmabuf (run inside the kernel
// rig by run-in-rig.sh; also runnable by hand on any machine with the nodes).
// The bad inputs and their errnos are those of the kernel's dmabuf-heap and
// udmabuf selftests, as test/kernel/heap_test.cc and udmabuf_test.cc check
// them from C++. Each case names the node it needs and is skipped, with the
// reason, when that node is absent or not accessible.
// Output: one "ok/not ok/skip" line per case (TAP-like); exit 1 on a failure.
import { suite } from './tap.mjs';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const distIndex = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../dist/index.js');
const {
  listHeaps, openHeap, DmaBuf, DmaBufError, createMemfd, udmabufCreate, udmabufCreateList,
  SwSyncTimeline, Fence, FenceArray, merge,
} = require(distIndex);

const HEAP = '/dev/dma_heap/system';
const UDMABUF = '/dev/udmabuf';
const SW_SYNC = '/sys/kernel/debug/sync/sw_sync';
const PAGE = 4096;
const MiB = 1 << 20;
const O_RDONLY = 0, O_RDWR = 2, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const pageAlign = (n) => Math.ceil(n / PAGE) * PAGE;

const { test: register, run } = suite();
const test = (name, needs, fn) => register(name, fn, needs);

/** Asserts fn throws a DmaBufError with `code` (and the op, when given); returns it. */
function throwsErrno(fn, code, syscall) {
  let err;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof DmaBufError, `expected DmaBufError ${code}, got ${err === undefined ? 'no error' : err}`);
  assert.equal(err.code, code, err.message);
  assert.ok(err.errno < 0);
  if (syscall) assert.equal(err.syscall, syscall, err.message);
  return err;
}
function throwsArg(fn, ctor, code) {
  assert.throws(fn, (e) => e instanceof ctor && e.code === code);
}
const fdFlags = (buf) => parseInt(buf.fdinfo().flags, 8);

// ---- heaps -------------------------------------------------------------------

test("listHeaps({ backend: 'kernel' }) sees 'system'", [HEAP], () => {
  const heaps = listHeaps({ backend: 'kernel' });
  const sys = heaps.find((h) => h.name === 'system');
  assert.deepEqual(sys, { name: 'system', backend: 'kernel', path: HEAP });
  const all = listHeaps({ backend: 'all' });
  assert.ok(all.some((h) => h.name === 'system' && h.backend === 'kernel'));
  assert.ok(all.some((h) => h.name === 'system' && h.backend === 'emulated'));
  throwsErrno(() => openHeap('no-such-heap', { backend: 'kernel' }), 'ENOENT', 'open');
  throwsErrno(() => openHeap('../null', { backend: 'kernel' }), 'EINVAL');
});

test("openHeap('system', { backend: 'auto' }) picks the kernel and says so", [HEAP], () => {
  const heap = openHeap('system', { backend: 'auto' });
  assert.equal(heap.backend, 'kernel');
  assert.equal(heap.name, 'system');
  const buf = heap.alloc(PAGE);
  assert.ok(buf instanceof DmaBuf);
  assert.equal(buf.backend, 'kernel');
  assert.ok(buf.fd >= 0);
  assert.match(fs.readlinkSync(`/proc/self/fd/${buf.fd}`), /^\/dmabuf:/);
  buf.close();
  heap.close();
  throwsErrno(() => heap.alloc(PAGE), 'EBADF');
  // 'emulated' stays emulated even with the node present
  const emu = openHeap('system');
  assert.equal(emu.backend, 'emulated');
  emu.close();
});

test('alloc: sizes round up to pages; zeroed memory; fdinfo of a fresh buffer', [HEAP], () => {
  const heap = openHeap('system', { backend: 'kernel' });
  for (const len of [1, PAGE, PAGE + 1, 65536, MiB, MiB + 1, 3 * MiB, 12345n]) {
    const buf = heap.alloc(len);
    const size = pageAlign(Number(len));
    assert.equal(buf.size, size, `len ${len}`);
    const info = buf.fdinfo();
    assert.equal(info.size, String(size));
    assert.equal(info.exp_name, 'system');
    assert.equal(buf.exporterName, 'system');
    assert.equal(buf.name, null, 'no name before DMA_BUF_SET_NAME');
    assert.equal(fdFlags(buf) & 3, O_RDWR);
    assert.ok(fdFlags(buf) & O_CLOEXEC, 'default fd_flags include O_CLOEXEC');
    const bytes = new Uint8Array(buf.map());
    assert.equal(bytes.length, size);
    buf.beginCpuAccess('read');
    assert.ok(bytes.every((b) => b === 0), 'heap memory comes zeroed');
    buf.endCpuAccess('read');
    buf.close();
  }
  heap.close();
});

test("alloc: every bad input with the kernel's errno (dmabuf-heap selftest)", [HEAP], () => {
  const heap = openHeap('system', { backend: 'kernel' });
  const ALLOC = 'DMA_HEAP_IOCTL_ALLOC';
  // PAGE_ALIGN(len) == 0
  throwsErrno(() => heap.alloc(0), 'EINVAL', ALLOC);
  throwsErrno(() => heap.alloc((1n << 64n) - 1n), 'EINVAL', ALLOC);
  throwsErrno(() => heap.alloc((1n << 64n) - 4095n), 'EINVAL', ALLOC); // wraps to 0 when aligned
  // fd_flags outside O_CLOEXEC | O_ACCMODE
  throwsErrno(() => heap.alloc(PAGE, { fdFlags: 0x111111 }), 'EINVAL', ALLOC);
  throwsErrno(() => heap.alloc(PAGE, { fdFlags: ~(O_RDWR | O_CLOEXEC) >>> 0 }), 'EINVAL', ALLOC);
  throwsErrno(() => heap.alloc(PAGE, { fdFlags: O_RDWR | O_NONBLOCK }), 'EINVAL', ALLOC);
  // heap_flags: no valid bits
  throwsErrno(() => heap.alloc(PAGE, { heapFlags: 1n }), 'EINVAL', ALLOC);
  throwsErrno(() => heap.alloc(PAGE, { heapFlags: 1n << 63n }), 'EINVAL', ALLOC);
  // ...and the argument errors TypeScript gives before any ioctl
  throwsArg(() => heap.alloc(-1), RangeError, 'ERR_OUT_OF_RANGE');
  throwsArg(() => heap.alloc(1n << 64n), RangeError, 'ERR_OUT_OF_RANGE');
  throwsArg(() => heap.alloc('4096'), TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsArg(() => heap.alloc(PAGE, { fdFlags: 2 ** 32 }), RangeError, 'ERR_OUT_OF_RANGE');
  // O_RDONLY is valid: the buffer then refuses a writable shared mapping
  const ro = heap.alloc(2 * PAGE, { fdFlags: O_RDONLY | O_CLOEXEC });
  assert.equal(fdFlags(ro) & 3, O_RDONLY);
  throwsErrno(() => ro.map(), 'EACCES', 'mmap');
  ro.close();
  const inheritable = heap.alloc(PAGE, { fdFlags: O_RDWR });
  assert.equal(fdFlags(inheritable) & O_CLOEXEC, 0);
  inheritable.close();
  heap.close();
});

// No upper bound on len in the kernel: 64 GiB on the rig's 1 GiB guest walks
// the page allocator until the OOM killer ends the caller (6.12), or ENOMEM.
// As in heap_test.cc: a child process marked as the preferred OOM victim.
test('alloc: a huge len (64 GiB) is ENOMEM or an OOM kill of the caller', [HEAP], () => {
  if (!process.env.KERNEL_RIG) return 'exhausts memory: runs only inside the kernel rig (KERNEL_RIG=1)';
  const child = `
    const fs = require('node:fs');
    fs.writeFileSync('/proc/self/oom_score_adj', '1000');
    const { openHeap } = require(${JSON.stringify(distIndex)});
    const heap = openHeap('system', { backend: 'kernel' });
    try { heap.alloc(1n << 36n); console.log('allocated?!'); }
    catch (e) { console.log(JSON.stringify({ code: e.code, syscall: e.syscall })); }`;
  const r = spawnSync(process.execPath, ['-e', child], { encoding: 'utf8', timeout: 300000 });
  if (r.signal) {
    assert.equal(r.signal, 'SIGKILL', `child ended by ${r.signal}: ${r.stderr}`);
    return 'note: the child was OOM-killed (no ENOMEM), as on 6.12';
  }
  assert.deepEqual(JSON.parse(r.stdout.trim()), { code: 'ENOMEM', syscall: 'DMA_HEAP_IOCTL_ALLOC' }, r.stderr);
  return 'note: ENOMEM';
});

test('map(): write a pattern, read it back through a second mapping; unmap()/close() detach', [HEAP], () => {
  const heap = openHeap('system', { backend: 'kernel' });
  const buf = heap.alloc(MiB + 1);
  const size = buf.size;
  const ab = buf.map();
  assert.equal(ab.byteLength, size);
  assert.equal(buf.map(), ab, 'the same ArrayBuffer until unmap()');
  const w = new Uint8Array(ab);
  buf.beginCpuAccess('write');
  for (let i = 0; i < size; i++) w[i] = (i * 7 + 3) & 0xff;
  buf.endCpuAccess('write');
  buf.unmap();
  assert.equal(ab.byteLength, 0, 'unmap() detaches the ArrayBuffer');
  assert.equal(w.length, 0, 'views of it are empty');
  buf.unmap(); // no-op
  const ab2 = buf.map();
  assert.notEqual(ab2, ab);
  const r = new Uint8Array(ab2);
  buf.beginCpuAccess('read');
  let same = true;
  for (let i = 0; i < size; i++) same &&= r[i] === ((i * 7 + 3) & 0xff);
  buf.endCpuAccess('read');
  assert.ok(same, 'the second mapping sees the pattern');
  buf.close();
  assert.equal(ab2.byteLength, 0, 'close() detaches the mapping too');
  assert.equal(r.length, 0);
  assert.equal(buf.closed, true);
  throwsErrno(() => buf.map(), 'EBADF');
  throwsErrno(() => buf.size, 'EBADF');
  buf.close(); // idempotent
  heap.close();
});

test('beginCpuAccess/endCpuAccess, and bad sync flags with their errno', [HEAP], () => {
  const heap = openHeap('system', { backend: 'kernel' });
  const buf = heap.alloc(PAGE);
  for (const dir of ['read', 'write', 'readwrite']) {
    buf.beginCpuAccess(dir);
    buf.endCpuAccess(dir);
  }
  buf.endCpuAccess('read'); // START/END are not paired for the system heap
  buf.beginCpuAccess('write');
  const SYNC = 'DMA_BUF_IOCTL_SYNC';
  throwsErrno(() => buf.sync(0n), 'EINVAL', SYNC); // START without READ or WRITE
  throwsErrno(() => buf.sync(4n), 'EINVAL', SYNC); // END without READ or WRITE
  throwsErrno(() => buf.sync(8n), 'EINVAL', SYNC); // a bit outside DMA_BUF_SYNC_VALID_FLAGS_MASK
  throwsErrno(() => buf.sync(0xffn), 'EINVAL', SYNC);
  throwsErrno(() => buf.sync(1n << 63n), 'EINVAL', SYNC);
  buf.sync(3n);
  buf.sync(7);
  throwsArg(() => buf.beginCpuAccess('rw'), TypeError, 'ERR_INVALID_ARG_VALUE');
  throwsArg(() => buf.sync(-1), RangeError, 'ERR_OUT_OF_RANGE');
  buf.close();
  throwsErrno(() => buf.beginCpuAccess('read'), 'EBADF');
  heap.close();
});

test('setName/name: up to 31 bytes; 32 or more is EINVAL and keeps the old name', [HEAP], () => {
  const heap = openHeap('system', { backend: 'kernel' });
  const buf = heap.alloc(PAGE);
  buf.setName('frame0');
  assert.equal(buf.name, 'frame0');
  assert.match(fs.readlinkSync(`/proc/self/fd/${buf.fd}`), /^\/dmabuf:frame0$/);
  const n31 = 'x'.repeat(31);
  buf.setName(n31);
  assert.equal(buf.name, n31);
  throwsErrno(() => buf.setName('y'.repeat(32)), 'EINVAL', 'DMA_BUF_SET_NAME');
  throwsErrno(() => buf.setName('z'.repeat(100)), 'EINVAL', 'DMA_BUF_SET_NAME');
  assert.equal(buf.name, n31, 'the old name is kept');
  // bytes, not characters: 16 x 'é' is 32 bytes of UTF-8
  throwsErrno(() => buf.setName('é'.repeat(16)), 'EINVAL', 'DMA_BUF_SET_NAME');
  buf.setName('é'.repeat(15));
  assert.equal(buf.name, 'é'.repeat(15));
  buf.setName('renamed'); // any time
  assert.equal(buf.name, 'renamed');
  throwsArg(() => buf.setName(3), TypeError, 'ERR_INVALID_ARG_TYPE');
  buf.close();
  heap.close();
});

test('fdinfo: pos, flags, ino, size, count, exp_name, name', [HEAP], () => {
  const heap = openHeap('system', { backend: 'kernel' });
  const a = heap.alloc(5 * PAGE);
  const b = heap.alloc(PAGE);
  const ia = a.fdinfo();
  for (const k of ['pos', 'flags', 'mnt_id', 'ino', 'size', 'count', 'exp_name']) assert.ok(k in ia, `fdinfo has ${k}: ${JSON.stringify(ia)}`);
  assert.equal(ia.size, String(5 * PAGE));
  assert.equal(ia.exp_name, 'system');
  assert.equal(ia.name, undefined);
  assert.notEqual(ia.ino, b.fdinfo().ino, 'each buffer has its own inode');
  // a mapping holds a file reference: count goes up by one while mapped
  const before = Number(ia.count);
  a.map();
  assert.equal(Number(a.fdinfo().count), before + 1);
  a.unmap();
  assert.equal(Number(a.fdinfo().count), before);
  a.setName('fdinfo-test');
  assert.equal(a.fdinfo().name, 'fdinfo-test');
  a.close();
  b.close();
  heap.close();
});

test('permission: an unprivileged user gets EACCES naming the node and why', [HEAP, UDMABUF], () => {
  if (process.getuid() !== 0) return 'needs root to drop to an unprivileged uid';
  const child = `
    const d = require(${JSON.stringify(distIndex)});
    const out = {};
    try { d.openHeap('system', { backend: 'kernel' }); out.heap = 'opened'; } catch (e) { out.heap = [e.code, e.message]; }
    const m = d.createMemfd(4096);
    try { d.udmabufCreate(m); out.udmabuf = 'created'; } catch (e) { out.udmabuf = [e.code, e.message]; }
    const h = d.openHeap('system', { backend: 'auto' });
    out.auto = h.backend;
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-e', child], { encoding: 'utf8', uid: 65534, gid: 65534, cwd: '/' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim());
  assert.equal(out.heap[0], 'EACCES');
  assert.match(out.heap[1], /\/dev\/dma_heap\/system/);
  assert.match(out.heap[1], /0600/);
  assert.equal(out.udmabuf[0], 'EACCES');
  assert.match(out.udmabuf[1], /\/dev\/udmabuf/);
  assert.match(out.udmabuf[1], /permission denied: mode 0600/);
  assert.equal(out.auto, 'emulated', "'auto' falls back to the emulation when the node does not open");
  return `note: ${out.udmabuf[1]}`;
});

// ---- udmabuf -----------------------------------------------------------------

test('udmabuf: an F_SEAL_SHRINK memfd becomes a dma-buf sharing its pages', [UDMABUF], () => {
  const m = createMemfd(MiB, { name: 'js-udmabuf' });
  assert.deepEqual(m.seals, ['shrink']);
  fs.writeSync(m.fd, Buffer.alloc(MiB, 0x5a), 0, MiB, 0);
  const buf = udmabufCreate(m);
  assert.ok(buf instanceof DmaBuf);
  assert.equal(buf.backend, 'kernel');
  assert.equal(buf.size, MiB);
  assert.equal(buf.exporterName, 'udmabuf');
  assert.equal(fdFlags(buf) & 3, O_RDWR);
  assert.ok(fdFlags(buf) & O_CLOEXEC);
  const bytes = new Uint8Array(buf.map());
  buf.beginCpuAccess('readwrite');
  assert.equal(bytes[12345], 0x5a, 'memfd writes show in the mapping');
  bytes[777] = 0xa5;
  bytes.set(Buffer.from('through the dma-buf'), 4096);
  buf.endCpuAccess('readwrite');
  const back = Buffer.alloc(19);
  fs.readSync(m.fd, back, 0, 19, 4096);
  assert.equal(back.toString(), 'through the dma-buf', 'mapping writes show in the memfd');
  fs.readSync(m.fd, back, 0, 1, 777);
  assert.equal(back[0], 0xa5);
  buf.setName('js-udmabuf');
  assert.equal(buf.name, 'js-udmabuf');
  // an offset range, without close-on-exec
  const part = udmabufCreate(m, { offset: 4096, size: 8192, cloexec: false });
  assert.equal(part.size, 8192);
  assert.equal(fdFlags(part) & O_CLOEXEC, 0);
  const p = new Uint8Array(part.map());
  part.beginCpuAccess('read');
  assert.equal(Buffer.from(p.subarray(0, 19)).toString(), 'through the dma-buf');
  part.endCpuAccess('read');
  // the pages outlive the memfd's fd
  m.close();
  assert.equal(bytes[777], 0xa5);
  buf.close();
  part.close();
  assert.equal(bytes.length, 0);
});

test('udmabuf: more seals are fine as long as none is a write seal', [UDMABUF], () => {
  const m = createMemfd(2 * PAGE, { seals: ['shrink', 'grow', 'seal'] });
  const buf = udmabufCreate(m);
  assert.equal(buf.size, 2 * PAGE);
  buf.close();
  m.close();
  // sealing after writing the contents, as GStreamer and libcamera do
  const late = createMemfd(PAGE, { seals: [] });
  fs.writeSync(late.fd, Buffer.from('late'), 0, 4, 0);
  late.addSeals(['shrink']);
  const lb = udmabufCreate(late);
  assert.equal(Buffer.from(new Uint8Array(lb.map(), 0, 4)).toString(), 'late');
  lb.close();
  late.close();
});

test('udmabuf: bad seals and ranges are EINVAL, not a memfd is EBADFD', [UDMABUF], () => {
  const CREATE = 'UDMABUF_CREATE';
  const unsealed = createMemfd(MiB, { seals: [] });
  let e = throwsErrno(() => udmabufCreate(unsealed), 'EINVAL', CREATE);
  assert.match(e.message, /F_SEAL_SHRINK/);
  const wseal = createMemfd(MiB, { seals: ['shrink', 'write'] });
  e = throwsErrno(() => udmabufCreate(wseal), 'EINVAL', CREATE);
  assert.match(e.message, /write seal/);
  const fseal = createMemfd(MiB, { seals: ['shrink', 'future-write'] });
  throwsErrno(() => udmabufCreate(fseal), 'EINVAL', CREATE);
  const good = createMemfd(MiB);
  throwsErrno(() => udmabufCreate(good, { size: PAGE + 1 }), 'EINVAL', CREATE); // size not page aligned
  throwsErrno(() => udmabufCreate(good, { offset: 100, size: PAGE }), 'EINVAL', CREATE); // offset not aligned
  throwsErrno(() => udmabufCreate(good, { size: 0 }), 'EINVAL', CREATE); // empty
  throwsErrno(() => udmabufCreate(good, { size: 2 * MiB }), 'EINVAL', CREATE); // beyond the memfd
  throwsErrno(() => udmabufCreate(good, { offset: MiB }), 'EINVAL', CREATE); // nothing left after offset
  throwsErrno(() => udmabufCreate(good, { size: 128 * MiB }), 'EINVAL', CREATE); // above size_limit_mb
  const nul = fs.openSync('/dev/null', 'r');
  try {
    throwsErrno(() => udmabufCreate(nul, { size: PAGE }), 'EBADFD', CREATE);
  } finally {
    fs.closeSync(nul);
  }
  throwsErrno(() => udmabufCreate(987654, { size: PAGE }), 'EBADFD', CREATE); // not an open fd
  // the raw fd of a good memfd works like the Memfd
  const raw = udmabufCreate(good.fd, { size: PAGE });
  assert.equal(raw.size, PAGE);
  raw.close();
  for (const m of [unsealed, wseal, fseal, good]) m.close();
});

test('udmabuf: UDMABUF_CREATE_LIST joins ranges in order; one bad range fails the list', [UDMABUF], () => {
  const a = createMemfd(2 * PAGE);
  const b = createMemfd(3 * PAGE);
  fs.writeSync(a.fd, Buffer.alloc(2 * PAGE, 'A'), 0, 2 * PAGE, 0);
  fs.writeSync(b.fd, Buffer.alloc(3 * PAGE, 'B'), 0, 3 * PAGE, 0);
  const buf = udmabufCreateList([{ memfd: a, offset: PAGE }, { memfd: b.fd, size: 3 * PAGE }]);
  assert.equal(buf.size, 4 * PAGE);
  assert.equal(buf.exporterName, 'udmabuf');
  const m = new Uint8Array(buf.map());
  buf.beginCpuAccess('read');
  assert.deepEqual([m[0], m[PAGE - 1], m[PAGE], m[4 * PAGE - 1]].map((c) => String.fromCharCode(c)), ['A', 'A', 'B', 'B']);
  buf.endCpuAccess('read');
  buf.close();
  const LIST = 'UDMABUF_CREATE_LIST';
  const unsealed = createMemfd(PAGE, { seals: [] });
  const e = throwsErrno(() => udmabufCreateList([{ memfd: a, size: PAGE }, { memfd: unsealed }]), 'EINVAL', LIST);
  assert.match(e.message, /F_SEAL_SHRINK/);
  throwsErrno(() => udmabufCreateList([]), 'EINVAL', LIST);
  throwsErrno(() => udmabufCreateList([{ memfd: a, size: PAGE + 1 }]), 'EINVAL', LIST);
  const many = (n) => Array.from({ length: n }, () => ({ memfd: a, size: PAGE }));
  throwsErrno(() => udmabufCreateList(many(1025)), 'EINVAL', LIST); // above list_limit
  const limit = udmabufCreateList(many(1024), { cloexec: false });
  assert.equal(limit.size, 1024 * PAGE);
  assert.equal(fdFlags(limit) & O_CLOEXEC, 0);
  limit.close();
  for (const x of [a, b, unsealed]) x.close();
});

test('udmabuf: END before any START is EINVAL (udmabuf builds its sg table on START)', [UDMABUF], () => {
  const m = createMemfd(PAGE);
  const buf = udmabufCreate(m);
  throwsErrno(() => buf.endCpuAccess('read'), 'EINVAL', 'DMA_BUF_IOCTL_SYNC');
  buf.beginCpuAccess('read');
  buf.endCpuAccess('read');
  buf.close();
  m.close();
});

// ---- the bridge: kernel fences among emulated ones ----------------------------

test('the bridge: a kernel sw_sync fence inside an emulated FenceArray gates CPU access', [SW_SYNC, HEAP], async () => {
  const heap = openHeap('system', { backend: 'kernel' });
  const buf = heap.alloc(PAGE);
  const bytes = new Uint8Array(buf.map());
  const tl = new SwSyncTimeline({ backend: 'kernel' });
  const point = tl.createFence(1);
  const kf = point.fence; // the kernel fence as a core Fence
  assert.ok(kf instanceof Fence);
  const js = new Fence({ context: Fence.allocContext(), seqno: 1n });
  const arr = new FenceArray([kf, js]);
  const merged = merge(kf, js);
  assert.ok(merged instanceof FenceArray);
  let wrote = false;
  const done = arr.wait({ timeout: 10000 }).then((ok) => {
    buf.beginCpuAccess('write');
    bytes.fill(0x42);
    buf.endCpuAccess('write');
    wrote = true;
    return ok;
  });
  js.signal();
  assert.equal(await arr.wait({ timeout: 50 }), false, 'the kernel point is still pending');
  assert.equal(wrote, false);
  setTimeout(() => tl.inc(1), 20);
  assert.equal(await done, true);
  assert.equal(wrote, true);
  assert.equal(arr.status, 1);
  assert.ok(kf.timestamp > 0n, 'the kernel timestamp came over');
  assert.equal(await merged.wait({ timeout: 10000 }), true);
  assert.equal(bytes[PAGE - 1], 0x42);
  // an error carries into the array: a closed timeline's point signals with ENOENT
  const t2 = new SwSyncTimeline({ backend: 'kernel' });
  const p2 = t2.createFence(5);
  const arr2 = new FenceArray([p2.fence, Fence.stub()]);
  const w2 = arr2.wait({ timeout: 10000 });
  t2.close();
  assert.equal(await w2, true);
  assert.equal(arr2.error, -2);
  for (const f of [arr, merged, arr2, js]) f.dispose();
  for (const s of [point, p2]) s.close();
  tl.close();
  buf.close();
  heap.close();
});

// ---- run ---------------------------------------------------------------------

function missing(node) {
  try {
    fs.accessSync(node, fs.constants.R_OK | fs.constants.W_OK);
    return null;
  } catch (e) {
    return `no usable ${node} (${e.code}); run test/kernel/run-in-rig.sh to test against a real kernel`;
  }
}

await run({ skipWhy: (needs) => needs.map(missing).find((w) => w !== null) ?? null });
