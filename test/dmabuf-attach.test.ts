// Attachments from JavaScript: static, dynamic and pinned importers of heap
// buffers, the scatterlist they map, and a revocable (VFIO-like) exporter that
// refuses pinned importers and calls moveNotify on revocation.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Attachment, createPlatform, exportVfioBuffer, openHeap } from '../lib';
import { expectArgError, expectDmaBufError } from './helpers';

const dist = JSON.stringify(require.resolve('../dist/index.js'));
const fileCount = (b: { fdinfo(): Record<string, string> }): number => Number(b.fdinfo().count);

describe('heap buffers', () => {
  it('a static importer maps the buffer\'s scatterlist (one entry per chunk)', () => {
    using heap = openHeap('system');
    using buf = heap.alloc((1 << 20) + 65536 + 4096);
    const before = fileCount(buf);
    using a = buf.attach();
    expect(a).toBeInstanceOf(Attachment);
    expect(a.pinned).toBe(false);
    expect(a.dynamic).toBe(false);
    expect(a.device).toBe('node');
    expect(fileCount(buf)).toBe(before + 1); // the importer's dma_buf_get
    const sgt = a.map();
    expect(Object.isFrozen(sgt)).toBe(true);
    expect(sgt.direction).toBe('bidirectional');
    expect(sgt.ccShared).toBe(false);
    expect(sgt.entries.map((e) => e.length)).toEqual([1 << 20, 65536, 4096]);
    expect(typeof sgt.entries[0]!.phys).toBe('bigint');
    expect(a.stats()).toEqual({ moves: 0, cpuSyncs: 0, deviceSyncs: 0, mapped: 1 });
    // the exporter's cache maintenance runs for mapped attachments
    buf.beginCpuAccess('read');
    buf.endCpuAccess('read');
    expect(a.stats().cpuSyncs).toBe(1);
    expect(a.stats().deviceSyncs).toBe(1);
    const toDev = a.map('to-device');
    expect(toDev.direction).toBe('to-device');
    a.unmap(sgt);
    a.unmap(toDev);
    expect(a.stats().mapped).toBe(0);
    expectDmaBufError(() => a.unmap(sgt), 'EINVAL');
    a.detach();
    a.detach();
    expect(a.detached).toBe(true);
    expect(fileCount(buf)).toBe(before);
    expect(expectDmaBufError(() => a.map(), 'EBADF').syscall).toBe('dma_buf_map_attachment');
    expectDmaBufError(() => a.stats(), 'EBADF');
  });

  it('dynamic and pinned importers work (heaps pin as a no-op, never move)', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(8192);
    let moved = 0;
    using dyn = buf.attach({ moveNotify: () => moved++, device: 'gpu0' });
    using pinned = buf.attach({ pinned: true });
    using p2p = buf.attach({ peer2peer: true });
    expect([dyn.dynamic, pinned.dynamic, p2p.dynamic]).toEqual([true, true, true]);
    expect(pinned.pinned).toBe(true);
    expect(dyn.device).toBe('gpu0');
    // a dynamic importer of a static exporter gets the mapping cached at attach
    buf.beginCpuAccess('write');
    expect(dyn.stats().cpuSyncs).toBe(1);
    expect(dyn.map().entries.length).toBe(2); // two order-0 chunks
    expectDmaBufError(() => buf.revoke(), 'EINVAL'); // heaps are not revocable
    expect(buf.revoked).toBe(false);
    expect(moved).toBe(0);
  });

  it('system_cc_shared buffers map with DMA_ATTR_CC_SHARED', () => {
    using p = createPlatform({ memEncrypt: true, ramSize: 16 << 20 });
    using heap = p.openHeap('system_cc_shared');
    using buf = heap.alloc(4096);
    using a = buf.attach();
    expect(a.map().ccShared).toBe(true);
  });

  it('attachments keep the buffer alive after close(); detach frees it', () => {
    using p = createPlatform({ ramSize: 4 << 20 });
    using heap = p.openHeap('system');
    const free0 = p.stats().freePages;
    const buf = heap.alloc(65536);
    const a = buf.attach();
    buf.close();
    expect(a.map().entries[0]!.length).toBe(65536);
    expect(p.stats().freePages).toBe(free0 - 16);
    a.detach(); // also unmaps what was left mapped
    expect(p.stats().freePages).toBe(free0);
    expectDmaBufError(() => buf.attach(), 'EBADF');
  });

  it('kernels before 5.16 refuse to rename an attached buffer (EBUSY)', () => {
    using p = createPlatform({ kernelVersion: '5.15' });
    using heap = p.openHeap('system');
    using buf = heap.alloc(4096);
    const a = buf.attach();
    expectDmaBufError(() => buf.setName('busy'), 'EBUSY');
    a.detach();
    buf.setName('free');
    expect(buf.name).toBe('free');
  });

  it('an attachment collected while its thread holds the lock is detached at unlock', () => {
    const script = `
      const { openHeap } = require(${dist});
      const buf = openHeap('system').alloc(4096);
      const count = () => Number(buf.fdinfo().count);
      const resv = buf.resv; // holds a reference of its own
      const base = count();
      (() => { buf.attach({ moveNotify() {} }).map(); })();
      console.log('attached', count() - base);
      resv.lock();
      gc();
      setTimeout(() => {
        gc();
        setTimeout(() => {
          console.log('held', count() - base);
          resv.unlock();
          console.log('unlocked', count() - base);
          buf.close();
        }, 20);
      }, 20);
    `;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 20000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('attached 1');
    expect(r.stdout).toContain('held 1');
    expect(r.stdout).toContain('unlocked 0');
  });
});

describe('a revocable exporter (VFIO-like)', () => {
  it('refuses pinned and static importers, and importers without peer2peer (EOPNOTSUPP)', () => {
    using buf = exportVfioBuffer(65536);
    expect(buf.exporterName).toBe('vfio_pci_core');
    expect(buf.revoked).toBe(false);
    const pinned = expectDmaBufError(() => buf.attach({ pinned: true, peer2peer: true }), 'EOPNOTSUPP');
    expect(pinned.errno).toBe(-95);
    expect(pinned.syscall).toBe('dma_buf_attach');
    expectDmaBufError(() => buf.attach({ pinned: true, peer2peer: true, moveNotify: () => {} }), 'EOPNOTSUPP');
    expectDmaBufError(() => buf.attach(), 'EOPNOTSUPP');
    expectDmaBufError(() => buf.attach({ moveNotify: () => {} }), 'EOPNOTSUPP');
    expect(fileCount(buf)).toBe(1); // refused attaches leave no reference behind
  });

  it('revoke(): moveNotify runs before it returns; map/attach/mmap ENODEV until restore()', () => {
    using p = createPlatform();
    using buf = p.exportVfioBuffer(2 * 65536);
    const calls: string[] = [];
    let seen: Attachment | null = null;
    using a = buf.attach({ peer2peer: true, moveNotify: (att) => { calls.push('a'); seen = att; } });
    using b = buf.attach({ peer2peer: true, moveNotify: () => calls.push('b') });
    using quiet = buf.attach({ peer2peer: true }); // dynamic, ignores moves
    const sgt = a.map();
    expect(sgt.entries).toEqual([{ phys: sgt.entries[0]!.phys, length: 2 * 65536 }]);
    const bytes = new Uint8Array(buf.map());
    bytes[0] = 7;
    buf.revoke();
    expect(calls.sort()).toEqual(['a', 'b']);
    expect(seen).toBe(a);
    expect(buf.revoked).toBe(true);
    expect(a.moves).toBe(1);
    expect(quiet.moves).toBe(1);
    expect(bytes.length).toBe(0); // the CPU mapping is gone: the ArrayBuffer is detached
    expectDmaBufError(() => buf.map(), 'ENODEV');
    expectDmaBufError(() => b.map(), 'ENODEV');
    expectDmaBufError(() => buf.attach({ peer2peer: true }), 'ENODEV');
    a.unmap(sgt); // unmapping after a move is what importers do
    buf.revoke(); // no change, no notification
    expect(calls.length).toBe(2);
    buf.restore();
    expect(calls.length).toBe(4);
    expect(buf.revoked).toBe(false);
    expect(b.map().entries.length).toBe(1);
    expect(new Uint8Array(buf.map())[0]).toBe(7);
    a.detach();
    buf.revoke();
    expect(calls.filter((c) => c === 'a').length).toBe(2); // detached: no more calls
  });

  it('a throwing moveNotify surfaces as an uncaught exception and does not stop the others', () => {
    const script = `
      const { exportVfioBuffer } = require(${dist});
      process.on('uncaughtException', (e) => console.log('uncaught:' + e.message));
      const buf = exportVfioBuffer(4096);
      let other = 0;
      buf.attach({ peer2peer: true, moveNotify() { throw new Error('boom'); } });
      buf.attach({ peer2peer: true, moveNotify() { other++; } });
      buf.revoke();
      console.log('other:' + other);
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('other:1');
    expect(r.stdout).toContain('uncaught:boom');
  });

  it('export errors: size not page aligned or zero, bad fd flags: EINVAL', () => {
    expect(expectDmaBufError(() => exportVfioBuffer(1000), 'EINVAL').syscall).toBe('VFIO_DEVICE_FEATURE_DMA_BUF');
    expectDmaBufError(() => exportVfioBuffer(0), 'EINVAL');
    expectDmaBufError(() => exportVfioBuffer(4096, { fdFlags: 0o100 }), 'EINVAL');
    using ro = exportVfioBuffer(4096, { fdFlags: 0 });
    expect(ro.size).toBe(4096);
    const p = createPlatform();
    p.dispose();
    expectDmaBufError(() => p.exportVfioBuffer(4096), 'EBADF');
  });

  it('revoke while holding the resv: EDEADLK; closed: EBADF', () => {
    const buf = exportVfioBuffer(4096);
    buf.resv.lock();
    expectDmaBufError(() => buf.revoke(), 'EDEADLK');
    expectDmaBufError(() => buf.revoked, 'EDEADLK');
    buf.resv.unlock();
    buf.revoke();
    buf.close();
    expectDmaBufError(() => buf.restore(), 'EBADF');
    expectDmaBufError(() => buf.revoked, 'EBADF');
  });
});

describe('argument errors', () => {
  it('TypeError / RangeError with Node codes', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    expectArgError(() => buf.attach(5 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.attach(null as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.attach({ pinned: 1 as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.attach({ peer2peer: 'yes' as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.attach({ moveNotify: 'f' as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.attach({ device: 3 as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    using a = buf.attach();
    expectArgError(() => a.map('sideways' as never), TypeError, 'ERR_INVALID_ARG_VALUE');
    expectArgError(() => a.map(1 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => a.unmap(null as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectDmaBufError(() => a.unmap({ entries: [], ccShared: false, direction: 'bidirectional' }), 'EINVAL');
    expect(() => new (Attachment as never as new () => Attachment)()).toThrow(TypeError);
    expectArgError(() => exportVfioBuffer(-1), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => exportVfioBuffer(4096, { fdFlags: 'x' as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
  });
});
