// dma-buf heaps from JavaScript: the kernel's dmabuf-heap selftest essentials
// (tools/testing/selftests/dmabuf-heaps) against the emulated system heap,
// names, fdinfo, mapping lifetime, argument errors and backend selection.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DmaBuf, DmaBufError, Heap, createPlatform, listHeaps, openHeap } from '../lib';
import { expectArgError, expectDmaBufError } from './helpers';

const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const hasKernelHeaps = existsSync('/dev/dma_heap');

describe('dmabuf-heap selftest (emulated system heap)', () => {
  it('lists and opens the system heap', () => {
    const heaps = listHeaps();
    expect(heaps.map((h) => h.name)).toContain('system');
    const sys = heaps.find((h) => h.name === 'system')!;
    expect(sys.backend).toBe('emulated');
    expect(sys.kind).toBe('system');
    const names = heaps.map((h) => h.name);
    expect([...names].sort()).toEqual(names);
    const heap = openHeap('system');
    expect(heap).toBeInstanceOf(Heap);
    expect(heap.name).toBe('system');
    expect(heap.backend).toBe('emulated');
    heap.close();
    heap.close();
  });

  it('no such heap -> ENOENT', () => {
    const e = expectDmaBufError(() => openHeap('nope'), 'ENOENT');
    expect(e.errno).toBe(-2);
  });

  it.each([1, 4096, 4097, 65536, 1 << 20, (1 << 20) + 12345, 5 << 20])('alloc %i, map, write/read, sync', (len) => {
    using heap = openHeap('system');
    using buf = heap.alloc(len);
    expect(buf).toBeInstanceOf(DmaBuf);
    const size = Math.ceil(len / 4096) * 4096;
    expect(buf.size).toBe(size);
    expect(buf.fd).toBeGreaterThanOrEqual(0);
    const ab = buf.map();
    expect(ab.byteLength).toBe(size);
    expect(buf.map()).toBe(ab);
    const u8 = new Uint8Array(ab);
    expect(u8[0]).toBe(0); // system heap memory is zeroed
    expect(u8[size - 1]).toBe(0);
    buf.beginCpuAccess('write');
    u8.fill(0xa5);
    buf.endCpuAccess('write');
    buf.beginCpuAccess('read');
    expect(u8[0]).toBe(0xa5);
    expect(u8[size - 1]).toBe(0xa5);
    buf.endCpuAccess('read');
    buf.beginCpuAccess('readwrite');
    buf.endCpuAccess('readwrite');
    buf.unmap();
    // remapping sees the same memory
    const again = new Uint8Array(buf.map());
    expect(again[size >> 1]).toBe(0xa5);
  });

  it('alloc with O_RDWR|O_CLOEXEC and with 0 flags', () => {
    using heap = openHeap('system');
    heap.alloc(4096, { fdFlags: O_RDWR | O_CLOEXEC }).close();
    heap.alloc(4096, { fdFlags: 0, heapFlags: 0n }).close();
  });

  it('bad inputs: len 0, fd_flags, heap_flags -> EINVAL; huge -> ENOMEM', () => {
    using heap = openHeap('system');
    expect(expectDmaBufError(() => heap.alloc(0), 'EINVAL').syscall).toBe('DMA_HEAP_IOCTL_ALLOC');
    expectDmaBufError(() => heap.alloc(4096, { fdFlags: ~(O_RDWR | O_CLOEXEC) >>> 0 }), 'EINVAL');
    expectDmaBufError(() => heap.alloc(4096, { fdFlags: 0o100 /* O_CREAT */ }), 'EINVAL');
    expectDmaBufError(() => heap.alloc(4096, { heapFlags: 1n }), 'EINVAL');
    expectDmaBufError(() => heap.alloc(4096, { heapFlags: ~0n & ((1n << 64n) - 1n) }), 'EINVAL');
    // PAGE_ALIGN wraps to 0 within a page of the top of the address space
    expectDmaBufError(() => heap.alloc((1n << 64n) - 1n), 'EINVAL');
    const t0 = process.memoryUsage().rss;
    expectDmaBufError(() => heap.alloc(1n << 50n), 'ENOMEM');
    expect(process.memoryUsage().rss - t0).toBeLessThan(64 << 20);
  });

  it('sync: bad flags -> EINVAL, raw flags accepted', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    buf.sync(0n | 3n);
    buf.sync(4n | 3n);
    expectDmaBufError(() => buf.sync(8n | 1n), 'EINVAL');
    expectDmaBufError(() => buf.sync(0n), 'EINVAL'); // no direction
    expectDmaBufError(() => buf.sync(4n), 'EINVAL');
  });
});

describe('names and fdinfo', () => {
  it('31 bytes ok, 32 bytes EINVAL', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    expect(buf.name).toBe(null);
    const n31 = 'x'.repeat(31);
    buf.setName(n31);
    expect(buf.name).toBe(n31);
    expect(expectDmaBufError(() => buf.setName('y'.repeat(32)), 'EINVAL').syscall).toBe('DMA_BUF_SET_NAME');
    expect(buf.name).toBe(n31);
    buf.setName('cam0');
    expect(buf.name).toBe('cam0');
    expect(buf.fdinfo().name).toBe('cam0');
  });

  it('fdinfo keys', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(8192);
    const fi = buf.fdinfo();
    for (const k of ['pos', 'flags', 'mnt_id', 'ino', 'size', 'count', 'exp_name']) expect(fi).toHaveProperty(k);
    expect(fi.size).toBe('8192');
    expect(fi.count).toBe('1');
    expect(fi.exp_name).toBe('system');
    expect(buf.exporterName).toBe('system');
    expect(Number.parseInt(fi.flags!, 8) & 3).toBe(O_RDWR);
    buf.map();
    expect(buf.fdinfo().count).toBe('2'); // the mapping holds a file reference
    buf.unmap();
    expect(buf.fdinfo().count).toBe('1');
  });
});

describe('mapping lifetime and close', () => {
  it('the ArrayBuffer is detached after unmap()', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    const ab = buf.map();
    const u8 = new Uint8Array(ab);
    u8[0] = 7;
    buf.unmap();
    expect(ab.byteLength).toBe(0);
    expect(u8.length).toBe(0);
    expect(u8[0]).toBe(undefined);
    buf.unmap(); // no-op
  });

  it('the ArrayBuffer is detached after close(); use after close -> EBADF', () => {
    const heap = openHeap('system');
    const buf = heap.alloc(4096);
    const ab = buf.map();
    const view = new DataView(ab);
    view.setUint32(0, 0xdeadbeef);
    const u8 = new Uint8Array(ab);
    buf.close();
    expect(buf.closed).toBe(true);
    expect(ab.byteLength).toBe(0);
    expect(u8[0]).toBe(undefined);
    expect(() => new Uint8Array(ab)).toThrow(TypeError);
    expect(() => view.getUint32(0)).toThrow(TypeError);
    buf.close();
    buf.dispose();
    buf[Symbol.dispose]();
    expectDmaBufError(() => buf.map(), 'EBADF');
    expectDmaBufError(() => buf.size, 'EBADF');
    expectDmaBufError(() => buf.fd, 'EBADF');
    expectDmaBufError(() => buf.fdinfo(), 'EBADF');
    expectDmaBufError(() => buf.setName('a'), 'EBADF');
    expectDmaBufError(() => buf.beginCpuAccess('read'), 'EBADF');
    expectDmaBufError(() => buf.unmap(), 'EBADF');
    heap.close();
    expectDmaBufError(() => heap.alloc(4096), 'EBADF');
  });

  it('buffers outlive their heap handle', () => {
    const heap = openHeap('system');
    const buf = heap.alloc(4096);
    heap.close();
    new Uint8Array(buf.map())[1] = 1;
    expect(buf.size).toBe(4096);
    buf.close();
  });

  it('many buffers allocate and free without leaking fds', () => {
    using heap = openHeap('system');
    const fds = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const b = heap.alloc(4096);
      fds.add(b.fd);
      b.map();
      b.close();
    }
    expect(fds.size).toBeLessThan(5);
  });
});

describe('argument errors', () => {
  it('TypeError / RangeError with Node codes', () => {
    using heap = openHeap('system');
    expectArgError(() => openHeap(1 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => openHeap('system', { backend: 'gpu' as never }), TypeError, 'ERR_INVALID_ARG_VALUE');
    expectArgError(() => openHeap('system', 5 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => listHeaps({ backend: 'auto' as never }), TypeError, 'ERR_INVALID_ARG_VALUE');
    expectArgError(() => heap.alloc('4096' as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => heap.alloc(-1), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => heap.alloc(1.5), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => heap.alloc(-1n), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => heap.alloc(1n << 64n), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => heap.alloc(4096, { fdFlags: '2' as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => heap.alloc(4096, { fdFlags: -1 }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => heap.alloc(4096, { fdFlags: 2 ** 32 }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => heap.alloc(4096, { heapFlags: 'x' as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    using buf = heap.alloc(4096);
    expectArgError(() => buf.setName(3 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.beginCpuAccess('rw' as never), TypeError, 'ERR_INVALID_ARG_VALUE');
    expectArgError(() => buf.endCpuAccess(1 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.sync('3' as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expect(() => new (Heap as never as new () => Heap)()).toThrow(TypeError);
  });
});

describe('backend selection', () => {
  it.skipIf(hasKernelHeaps)("'kernel' without /dev/dma_heap -> ENOENT; 'auto' -> emulated", () => {
    const e = expectDmaBufError(() => openHeap('system', { backend: 'kernel' }), 'ENOENT');
    expect(e).toBeInstanceOf(DmaBufError);
    expect(e.message).toMatch(/dma_heap/);
    expect(listHeaps({ backend: 'kernel' })).toEqual([]);
    using heap = openHeap('system', { backend: 'auto' });
    expect(heap.backend).toBe('emulated');
    using buf = heap.alloc(4096);
    expect(buf.backend).toBe('emulated');
    expect(listHeaps({ backend: 'all' }).every((h) => h.backend === 'emulated')).toBe(true);
  });

  it.runIf(hasKernelHeaps)("'auto' picks the kernel heap", () => {
    using heap = openHeap('system', { backend: 'auto' });
    expect(heap.backend).toBe('kernel');
  });
});

describe('emulated platforms', () => {
  it('system_cc_shared only with memory encryption on an arch with set_memory_decrypted', () => {
    const names = (o: Parameters<typeof createPlatform>[0]) => {
      using p = createPlatform(o);
      return p.listHeaps().map((h) => h.name);
    };
    expect(names({})).not.toContain('system_cc_shared');
    expect(names({ memEncrypt: true })).toContain('system_cc_shared');
    expect(names({ memEncrypt: true, arch: 'arm64' })).toContain('system_cc_shared');
    expect(names({ memEncrypt: true, arch: 's390x' })).not.toContain('system_cc_shared');
    expect(names({ memEncrypt: true, arch: 'riscv64' })).not.toContain('system_cc_shared');
    expect(names({ memEncrypt: true, kernelVersion: '6.12' })).not.toContain('system_cc_shared');
    expect(names({ cmaSize: 16 << 20, kernelVersion: '6.17' })).toContain('default_cma_region');
    expect(names({ cmaSize: 16 << 20, kernelVersion: '6.12' })).not.toContain('default_cma_region');
  });

  it('buffers from a platform heap; the heap outlives the platform handle', () => {
    const p = createPlatform({ memEncrypt: true });
    const heap = p.openHeap('system_cc_shared');
    p.dispose();
    p.dispose();
    using buf = heap.alloc(4096);
    expect(buf.exporterName).toBe('system_cc_shared');
    new Uint8Array(buf.map())[0] = 1;
    heap.close();
    expectDmaBufError(() => p.openHeap('system'), 'EBADF');
  });

  it('fault injection', () => {
    using p = createPlatform();
    using heap = p.openHeap('system');
    p.setFault('alloc_pages', { nth: 1, times: 0 });
    expectDmaBufError(() => heap.alloc(1 << 20), 'ENOMEM');
    p.setFault('alloc_pages', { nth: 0 });
    heap.alloc(1 << 20).close();
    p.setFault('dma_buf_fd', { nth: 1, error: 'EMFILE' });
    expectDmaBufError(() => heap.alloc(4096), 'EMFILE');
    heap.alloc(4096).close();
    expectDmaBufError(() => p.setFault('no_such_site', { nth: 1 }), 'EINVAL');
    expectArgError(() => p.setFault('alloc_pages', { nth: 1, error: 'ENOPE' }), TypeError, 'ERR_INVALID_ARG_VALUE');
  });

  it('bad configurations', () => {
    expectDmaBufError(() => createPlatform({ arch: 'vax' }), 'EINVAL');
    expectDmaBufError(() => createPlatform({ kernelVersion: 'seven' }), 'EINVAL');
    expectArgError(() => createPlatform({ memEncrypt: 1 as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => createPlatform({ cmaSize: -1 }), RangeError, 'ERR_OUT_OF_RANGE');
  });
});
