// A dma-buf's implicit sync from JavaScript: DmaBuf.resv (the buffer's own
// reservation object), EXPORT/IMPORT_SYNC_FILE, the kernel's rules for which
// fences an access waits for, and every failure path (argument errors, closed
// objects, mixed backends, the caller holding the lock, old kernels).
import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Fence, Resv, SwSyncTimeline, SyncFile, createPlatform, openHeap } from '../lib';
import { wrapDmaBuf } from '../lib/dma_buf';
import { binding as raw } from '../lib/internal/binding';
import { wrapSyncFile } from '../lib/sync_file';
import { expectArgError, expectDmaBufError } from './helpers';

function newFence(): Fence {
  return new Fence({ context: Fence.allocContext(), seqno: 1 });
}

describe('DmaBuf.resv', () => {
  it('is the buffer\'s reservation object: the same Resv, seen by begin/exportSyncFile', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    const resv = buf.resv;
    expect(resv).toBeInstanceOf(Resv);
    expect(buf.resv).toBe(resv);
    expect(resv.testSignaled('bookkeep')).toBe(true);
    const w = newFence();
    resv.lock();
    resv.reserveFences(1);
    resv.addFence(w, 'write');
    resv.unlock();
    expect(resv.getFences('write').map((f) => f.context)).toEqual([w.context]);
    const sf = buf.exportSyncFile('read');
    expect(sf.status).toBe(0);
    w.signal();
    expect(sf.status).toBe(1);
    buf.beginCpuAccess('readwrite'); // nothing pending: does not block
    buf.endCpuAccess('readwrite');
    sf.close();
    w.dispose();
  });

  it('close() disposes it; a disposed resv is replaced on the next read', () => {
    using heap = openHeap('system');
    const buf = heap.alloc(4096);
    const r1 = buf.resv;
    r1.dispose();
    expect(r1.disposed).toBe(true);
    const r2 = buf.resv;
    expect(r2).not.toBe(r1);
    expect(r2.disposed).toBe(false);
    buf.close();
    expect(r2.disposed).toBe(true);
    expectDmaBufError(() => r2.getFences('read'), 'EBADF');
    expectDmaBufError(() => buf.resv, 'EBADF');
  });

  it('a Resv reference keeps the buffer (and its memory) alive after close()', () => {
    using p = createPlatform({ ramSize: 4 << 20 });
    using heap = p.openHeap('system');
    const free0 = p.stats().freePages;
    const buf = heap.alloc(65536);
    expect(p.stats().freePages).toBe(free0 - 16);
    const h = buf.resv.exportHandle();
    const w = newFence();
    buf.resv.lock();
    buf.resv.reserveFences(1);
    buf.resv.addFence(w, 'kernel');
    buf.resv.unlock();
    buf.close();
    expect(p.stats().freePages).toBe(free0 - 16); // the exported reference holds it
    const kept = Resv.importHandle(h);
    expect(kept.getFences('kernel').length).toBe(1);
    kept.dispose();
    expect(p.stats().freePages).toBe(free0);
    w.dispose();
  });

  it('a worker can use the buffer\'s resv through a handle', () => {
    const dist = JSON.stringify(require.resolve('../dist/index.js'));
    const worker = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { Resv, Fence } = require(${dist});
      const r = Resv.importHandle(workerData);
      const f = new Fence({ context: Fence.allocContext() });
      r.lock(); r.reserveFences(1); r.addFence(f, 'write'); r.unlock();
      parentPort.postMessage('added');
      setTimeout(() => { f.signal(); f.dispose(); r.dispose(); }, 20);
    `;
    const script = `
      const { Worker } = require('node:worker_threads');
      const { openHeap } = require(${dist});
      const buf = openHeap('system').alloc(4096);
      const w = new Worker(${JSON.stringify(worker)}, { eval: true, workerData: buf.resv.exportHandle() });
      w.on('message', async () => {
        const pending = buf.exportSyncFile('read');
        console.log('status', pending.status);
        console.log('waited', await pending.wait({ timeout: 5000 }), pending.status);
        pending.close(); buf.close(); w.terminate();
      });
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('status 0');
    expect(r.stdout).toContain('waited true 1');
  });
});

describe('EXPORT_SYNC_FILE / IMPORT_SYNC_FILE (emulated)', () => {
  it('nothing pending: an already signalled sync_file', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    for (const dir of ['read', 'write', 'readwrite'] as const) {
      using sf = buf.exportSyncFile(dir);
      expect(sf).toBeInstanceOf(SyncFile);
      expect(sf.backend).toBe('emulated');
      expect(sf.status).toBe(1);
    }
  });

  it('import a pending fence for write: read and write exports wait for it until it signals', async () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    using tl = new SwSyncTimeline();
    using writer = tl.createFence(1);
    buf.importSyncFile(writer, 'write');
    expect(buf.resv.getFences('write').length).toBe(1);
    using forRead = buf.exportSyncFile('read');
    using forWrite = buf.exportSyncFile('write');
    expect(forRead.status).toBe(0);
    expect(forWrite.status).toBe(0);
    expect(await forRead.wait({ timeout: 5 })).toBe(false);
    setTimeout(() => tl.inc(1), 5);
    expect(await forRead.wait({ timeout: 5000 })).toBe(true);
    expect(forWrite.status).toBe(1);
    expect(buf.resv.testSignaled('bookkeep')).toBe(true);
  });

  it('a reader blocks writers only: read export ignores it, write export waits', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    using tl = new SwSyncTimeline();
    using reader = tl.createFence(1);
    buf.importSyncFile(reader, 'read');
    expect(buf.resv.getFences('write').length).toBe(0);
    expect(buf.resv.getFences('read').length).toBe(1);
    using forRead = buf.exportSyncFile('read');
    using forWrite = buf.exportSyncFile('write');
    expect(forRead.status).toBe(1);
    expect(forWrite.status).toBe(0);
    tl.inc(1);
    expect(forWrite.status).toBe(1);
  });

  it('readwrite imports as write; a merged sync_file is unwrapped into its fences', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    using a = new SwSyncTimeline();
    using b = new SwSyncTimeline();
    using fa = a.createFence(1);
    using fb = b.createFence(1);
    using both = SyncFile.merge('both', fa, fb);
    buf.importSyncFile(both, 'readwrite');
    expect(buf.resv.getFences('write').length).toBe(2);
    using out = buf.exportSyncFile('read');
    expect(out.info().fences.length).toBe(2); // an array of both (dma_resv_get_singleton)
    a.inc(1);
    expect(out.status).toBe(0);
    b.inc(1);
    expect(out.status).toBe(1);
  });

  it('an error reaches a sync_file exported while pending; signalled fences are skipped', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    const f = newFence();
    using sf = SyncFile.create(f);
    buf.importSyncFile(sf, 'write');
    using early = buf.exportSyncFile('read');
    f.setError('EIO');
    f.signal();
    expect(early.status).toBe(-5);
    // dma_resv iteration skips signalled fences, as the kernel's does
    using late = buf.exportSyncFile('read');
    expect(late.status).toBe(1);
    f.dispose();
  });

  it('emulated kernels before 6.0 have neither ioctl: ENOTTY', () => {
    using p = createPlatform({ kernelVersion: '5.19' });
    using heap = p.openHeap('system');
    using buf = heap.alloc(4096);
    const e = expectDmaBufError(() => buf.exportSyncFile('read'), 'ENOTTY');
    expect(e.syscall).toBe('DMA_BUF_IOCTL_EXPORT_SYNC_FILE');
    using sf = SyncFile.create(Fence.stub());
    expect(expectDmaBufError(() => buf.importSyncFile(sf, 'write'), 'ENOTTY').syscall).toBe('DMA_BUF_IOCTL_IMPORT_SYNC_FILE');
  });
});

describe('failure paths', () => {
  it('argument errors', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    using sf = SyncFile.create(Fence.stub());
    expectArgError(() => buf.exportSyncFile('rw' as never), TypeError, 'ERR_INVALID_ARG_VALUE');
    expectArgError(() => buf.exportSyncFile(undefined as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.exportSyncFile(2 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.importSyncFile(sf, 'both' as never), TypeError, 'ERR_INVALID_ARG_VALUE');
    expectArgError(() => buf.importSyncFile(sf, null as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.importSyncFile({} as never, 'read'), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.importSyncFile(Fence.stub() as never, 'read'), TypeError, 'ERR_INVALID_ARG_TYPE');
  });

  it('closed buffer or sync_file: EBADF', () => {
    using heap = openHeap('system');
    const buf = heap.alloc(4096);
    const sf = SyncFile.create(Fence.stub());
    sf.close();
    expectDmaBufError(() => buf.importSyncFile(sf, 'read'), 'EBADF');
    buf.close();
    using live = SyncFile.create(Fence.stub());
    expect(expectDmaBufError(() => buf.exportSyncFile('read'), 'EBADF').syscall).toBe('DMA_BUF_IOCTL_EXPORT_SYNC_FILE');
    expectDmaBufError(() => buf.importSyncFile(live, 'write'), 'EBADF');
  });

  it('mixed backends: EINVAL both ways', () => {
    // A kernel-backend handle over /dev/null stands in for a real sync_file:
    // the addon checks the backends before any ioctl.
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    using kernelSf = kernelHandle('sync_file', wrapSyncFile);
    expect(kernelSf.backend).toBe('kernel');
    const e = expectDmaBufError(() => buf.importSyncFile(kernelSf, 'write'), 'EINVAL');
    expect(e.message).toMatch(/kernel sync_file into an emulated dma-buf/);
    expect(e.syscall).toBe('DMA_BUF_IOCTL_IMPORT_SYNC_FILE');

    const kbuf = kernelLabelled();
    expect(kbuf.backend).toBe('kernel');
    using emuSf = SyncFile.create(Fence.stub());
    expect(expectDmaBufError(() => kbuf.importSyncFile(emuSf, 'read'), 'EINVAL').message).toMatch(/emulated sync_file into a kernel dma-buf/);
    kbuf.close();
    expect(kbuf.backend).toBe('kernel'); // still answers once closed
  });

  it('mixed backends: merge and SW_SYNC_GET_DEADLINE refuse them with EINVAL', () => {
    using kernelSf = kernelHandle('sync_file', wrapSyncFile);
    using emuSf = SyncFile.create(Fence.stub());
    for (const [a, b, msg] of [[kernelSf, emuSf, /a kernel sync_file with an emulated one/], [emuSf, kernelSf, /an emulated sync_file with a kernel one/]] as const) {
      const e = expectDmaBufError(() => SyncFile.merge('m', a, b), 'EINVAL');
      expect(e.message).toMatch(msg);
      expect(e.syscall).toBe('SYNC_IOC_MERGE');
    }
    using tl = new SwSyncTimeline();
    const e = expectDmaBufError(() => tl.getDeadline(kernelSf), 'EINVAL');
    expect(e.message).toMatch(/a kernel sync_file is not a point of an emulated timeline/);
    expect(e.syscall).toBe('SW_SYNC_GET_DEADLINE');
    // The kernel handle is a real fd: ioctls on it answer as that fd does.
    expect(kernelSf.fd).toBeGreaterThan(2);
    expectDmaBufError(() => kernelSf.info(), 'ENOTTY');
  });

  it('kernel buffers: resv and attach are EOPNOTSUPP, with the way out in the message', () => {
    const kbuf = kernelLabelled();
    const e = expectDmaBufError(() => kbuf.resv, 'EOPNOTSUPP');
    expect(e.errno).toBe(-95);
    expect(e.message).toMatch(/exportSyncFile\(\)\/importSyncFile\(\)/);
    expectDmaBufError(() => kbuf.attach(), 'EOPNOTSUPP');
    expectDmaBufError(() => kbuf.attach({ pinned: true }), 'EOPNOTSUPP');
    kbuf.close();
    expectDmaBufError(() => kbuf.resv, 'EBADF');
  });

  it('holding buf.resv on this thread: calls that need the lock throw EDEADLK instead of hanging', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    using sf = SyncFile.create(Fence.stub());
    const a = buf.attach({ moveNotify: () => {} });
    buf.resv.lock();
    expectDmaBufError(() => buf.importSyncFile(sf, 'write'), 'EDEADLK');
    expectDmaBufError(() => buf.attach(), 'EDEADLK');
    expectDmaBufError(() => a.detach(), 'EDEADLK');
    expect(a.detached).toBe(false);
    // what the kernel does under the lock works: export, CPU access, mapping
    using out = buf.exportSyncFile('write');
    expect(out.status).toBe(1);
    buf.beginCpuAccess('read');
    buf.endCpuAccess('read');
    const sgt = a.map();
    a.unmap(sgt);
    buf.resv.unlock();
    buf.importSyncFile(sf, 'write');
    a.detach();
  });

  it('lock held by another Resv object on the same thread counts too', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    const other = Resv.importHandle(buf.resv.exportHandle());
    other.lock();
    using sf = SyncFile.create(Fence.stub());
    expectDmaBufError(() => buf.importSyncFile(sf, 'read'), 'EDEADLK');
    other.dispose(); // dropping a held lock with the object
    buf.importSyncFile(sf, 'read');
  });
});

/** A kernel-backend object over a dup of /dev/null (the addon's test hook): its backend rules without the device. */
function kernelHandle<T>(kind: 'sync_file' | 'dma_buf', wrap: (h: ReturnType<typeof raw.diagWrapFd>) => T): T {
  const fd = openSync('/dev/null', 'r');
  try {
    return wrap(raw.diagWrapFd(kind, fd));
  } finally {
    closeSync(fd);
  }
}

/** A kernel-backend DmaBuf (over /dev/null): what kernel buffers refuse, checked by the addon. */
function kernelLabelled() {
  return kernelHandle('dma_buf', wrapDmaBuf);
}

