// One failure shape across the boundary (issue 10): every native failure is a
// DmaBufError built by C++ (code, errno, syscall), out-of-memory included, and
// every public method or getter called on the wrong receiver is a TypeError
// with ERR_INVALID_ARG_TYPE (never a plain Error, never EBADF).
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Attachment } from '../lib/attachment';
import { binding } from '../lib/internal/binding';
import { DmaBuf } from '../lib/dma_buf';
import { DmaBufError } from '../lib/errors';
import { Fence, FenceLock } from '../lib/fence';
import { Heap, openHeap } from '../lib/heap';
import { Issuer } from '../lib/issuer';
import { createPlatform, exportVfioBuffer, Platform } from '../lib/platform';
import { AcquireContext, Resv } from '../lib/resv';
import { SwSyncTimeline, SyncFile } from '../lib/sync_file';
import { createMemfd, Memfd } from '../lib/udmabuf';
import { expectDmaBufError } from './helpers';

/** Calls every method and getter of `proto` (Symbol.dispose too) on `self`; each must throw (or reject with) a coded TypeError. */
async function expectWrongReceiver(proto: object, self: unknown, label: string): Promise<void> {
  const keys: (string | symbol)[] = [...Object.getOwnPropertyNames(proto), ...Object.getOwnPropertySymbols(proto)];
  for (const key of keys) {
    if (key === 'constructor') continue;
    const d = Object.getOwnPropertyDescriptor(proto, key)!;
    const call = d.get ? () => d.get!.call(self) : typeof d.value === 'function' ? () => d.value.call(self) : null;
    if (!call) continue;
    let caught: unknown;
    try {
      const r = call();
      if (r instanceof Promise) await r;
    } catch (e) {
      caught = e;
    }
    const where = `${label}.${String(key)}`;
    expect(caught, where).toBeInstanceOf(TypeError);
    expect((caught as { code?: string }).code, where).toBe('ERR_INVALID_ARG_TYPE');
  }
}

describe('wrong receivers are TypeErrors (ERR_INVALID_ARG_TYPE)', () => {
  const classes: Array<[string, { prototype: object }]> = [
    ['Resv', Resv],
    ['AcquireContext', AcquireContext],
    ['SyncFile', SyncFile],
    ['SwSyncTimeline', SwSyncTimeline],
    ['Issuer', Issuer],
    ['Heap', Heap],
    ['DmaBuf', DmaBuf],
    ['Attachment', Attachment],
    ['Platform', Platform],
    ['Memfd', Memfd],
  ];
  for (const [name, cls] of classes) {
    it(name, async () => {
      const fence = new Fence();
      const resv = new Resv();
      // Another class's instance (one with a private #h of its own, too), a
      // plain object, and an object with the right prototype but no fields.
      const others: unknown[] = [fence, {}, Object.create(cls.prototype)];
      others.push(name === 'Resv' ? new AcquireContext() : resv);
      for (const self of others) await expectWrongReceiver(cls.prototype, self, name);
      fence.dispose();
      resv.dispose();
    });
  }

  it('FenceLock', async () => {
    await expectWrongReceiver(FenceLock.prototype, {}, 'FenceLock');
    await expectWrongReceiver(FenceLock.prototype, new Resv(), 'FenceLock');
  });

  it('Resv.prototype.lock.call(new Fence()) is a TypeError, not EBADF', () => {
    const f = new Fence();
    let caught: unknown;
    try {
      Resv.prototype.lock.call(f as never);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(TypeError);
    expect(caught).not.toBeInstanceOf(DmaBufError);
    expect((caught as { code?: string }).code).toBe('ERR_INVALID_ARG_TYPE');
    f.dispose();
  });

  it('a real but disposed instance is still EBADF', () => {
    const r = new Resv();
    r.dispose();
    expectDmaBufError(() => r.lock(), 'EBADF');
    const t = new SwSyncTimeline();
    t.dispose();
    expectDmaBufError(() => t.inc(), 'EBADF');
  });
});

describe('SwSyncTimeline.dispose()', () => {
  it('is close(): pending points signal with ENOENT; idempotent; works with `using`', () => {
    const t = new SwSyncTimeline();
    const sf = t.createFence(1);
    expect(t.closed).toBe(false);
    t.dispose();
    expect(t.closed).toBe(true);
    expect(sf.status).toBe(-2);
    t.dispose();
    sf.close();
    {
      using u = new SwSyncTimeline();
      u.inc();
    }
  });
});

describe('native failures carry code, errno and syscall', () => {
  it('out of memory reaches JS as DmaBufError ENOMEM (platform fault injection)', () => {
    using p = createPlatform();
    using heap = p.openHeap('system');
    p.setFault('alloc_pages', { nth: 1 });
    let e = expectDmaBufError(() => heap.alloc(4096), 'ENOMEM');
    expect(e.errno).toBe(-12);
    expect(e.syscall).toBe('DMA_HEAP_IOCTL_ALLOC');
    expect(e.message).toMatch(/allocating 4096 bytes from heap 'system'/);

    p.setFault('dma_buf_export', { nth: 1 });
    e = expectDmaBufError(() => heap.alloc(4096), 'ENOMEM');
    expect(e.syscall).toBe('DMA_HEAP_IOCTL_ALLOC');

    p.setFault('dma_buf_export', { nth: 1 });
    e = expectDmaBufError(() => p.exportVfioBuffer(4096), 'ENOMEM');
    expect(e.syscall).toBe('VFIO_DEVICE_FEATURE_DMA_BUF');

    using buf = heap.alloc(4096); // disarmed after one failure each
    expect(buf.size).toBe(4096);
  });

  it('a failure the fault point is told to return keeps its errno', () => {
    using p = createPlatform();
    using heap = p.openHeap('system');
    p.setFault('dma_buf_fd', { nth: 1 });
    expect(expectDmaBufError(() => heap.alloc(4096), 'EMFILE').syscall).toBe('DMA_HEAP_IOCTL_ALLOC');
    p.setFault('dma_buf_export', { nth: 1, error: 'ENOSPC' });
    expect(expectDmaBufError(() => p.exportVfioBuffer(4096), 'ENOSPC').syscall).toBe('VFIO_DEVICE_FEATURE_DMA_BUF');
  });

  it('argument-level native failures: platform configuration, fault site, unknown handles', () => {
    let e = expectDmaBufError(() => createPlatform({ kernelVersion: 'x.y' }), 'EINVAL');
    expect(e.syscall).toBe('platform_create');
    expect(e.message).toMatch(/bad platform configuration \(kernel 'x.y'/);
    using p = createPlatform();
    e = expectDmaBufError(() => p.setFault('no_such_site', { nth: 1 }), 'EINVAL');
    expect(e.syscall).toBe('fault_inject');
    expect(e.message).toMatch(/arming fault 'no_such_site'/);
    expectDmaBufError(() => Platform.importHandle(12345n), 'EINVAL');
    expectDmaBufError(() => Resv.importHandle(12345n), 'EINVAL');
  });

  it('kernel-backend failures keep the kernel op as syscall', () => {
    // An fd that is not a sync_file: the kernel's SYNC_IOC_FILE_INFO errno.
    const fd = fs.openSync('/dev/null', 'r');
    try {
      const e = expectDmaBufError(() => SyncFile.fromFd(fd), 'ENOTTY');
      expect(e.syscall).toBe('SYNC_IOC_FILE_INFO');
    } finally {
      fs.closeSync(fd);
    }
    // A closed fd.
    const bad = fs.openSync('/dev/null', 'r');
    fs.closeSync(bad);
    const e = expectDmaBufError(() => SyncFile.fromFd(bad), 'EBADF');
    expect(e.syscall).toBeTruthy();
    // memfd fcntl failures name the fcntl.
    using m = createMemfd(4096, { seals: ['seal'] });
    expect(expectDmaBufError(() => m.addSeals(['grow']), 'EPERM').syscall).toBe('fcntl(F_ADD_SEALS)');
  });

  it('resv rules come from the core: EPERM without the lock, EDEADLK for a second lock, EINVAL after done()', () => {
    const r = new Resv();
    const f = new Fence();
    let e = expectDmaBufError(() => r.reserveFences(1), 'EPERM');
    expect(e.syscall).toBe('dma_resv_reserve_fences');
    expect(expectDmaBufError(() => r.addFence(f, 'write'), 'EPERM').syscall).toBe('dma_resv_add_fence');
    expect(expectDmaBufError(() => r.replaceFences(0n, f, 'write'), 'EPERM').syscall).toBe('dma_resv_replace_fences');
    expect(expectDmaBufError(() => r.copyFences(new Resv()), 'EPERM').syscall).toBe('dma_resv_copy_fences');
    expect(expectDmaBufError(() => r.describe(), 'EPERM').syscall).toBe('dma_resv_describe');
    expect(expectDmaBufError(() => r.unlock(), 'EPERM').syscall).toBe('dma_resv_unlock');
    r.lock();
    e = expectDmaBufError(() => r.lock(), 'EDEADLK');
    expect(e.message).toMatch(/outside this context/);
    expect(r.tryLock()).toBe(false); // information, not a failure
    r.unlock();
    const ctx = new AcquireContext();
    ctx.done();
    expect(expectDmaBufError(() => r.lock(ctx), 'EINVAL').syscall).toBe('dma_resv_lock');
    expect(r.locked).toBe(false);
    ctx.fini();
    f.dispose();
    r.dispose();
  });

  it('buffer calls under the caller\'s own resv lock are EDEADLK from the core, with the way out in the message', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    using sf = SyncFile.create(Fence.stub());
    const a = buf.attach();
    buf.resv.lock();
    let e = expectDmaBufError(() => buf.attach(), 'EDEADLK');
    expect(e.syscall).toBe('dma_buf_attach');
    expect(e.message).toMatch(/unlock it first/);
    expect(expectDmaBufError(() => a.detach(), 'EDEADLK').syscall).toBe('dma_buf_detach');
    expect(a.detached).toBe(false);
    e = expectDmaBufError(() => buf.importSyncFile(sf, 'write'), 'EDEADLK');
    expect(e.syscall).toBe('DMA_BUF_IOCTL_IMPORT_SYNC_FILE');
    const sgt = a.map(); // maps under the held lock, as a dynamic importer does
    a.unmap(sgt);
    buf.resv.unlock();
    a.detach();
    expect(a.detached).toBe(true);

    const v = exportVfioBuffer(4096);
    v.resv.lock();
    expect(expectDmaBufError(() => v.revoke(), 'EDEADLK').syscall).toBe('vfio_pci_dma_buf_move(revoke)');
    expect(expectDmaBufError(() => v.revoked, 'EDEADLK').syscall).toBe('vfio_dmabuf_revoked');
    v.resv.unlock();
    expect(v.revoked).toBe(false);
    v.close();
  });

  it('the addon functions throw DmaBufError themselves (no result values to unwrap)', () => {
    const r = new Resv();
    let caught: unknown;
    try {
      binding.resvImport(987654321n);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(DmaBufError);
    expect((caught as DmaBufError).code).toBe('EINVAL');
    r.dispose();
  });
});
