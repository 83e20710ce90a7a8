// udmabuf and Memfd from JavaScript, host side: argument validation, memfd
// seals and contents, and the ENOENT path when /dev/udmabuf is absent. The
// real-kernel cases (seals and ranges the kernel refuses, shared pages) are in
// test/kernel/heaps_js.mjs, run inside the kernel rig.
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DmaBuf } from '../lib/heap';
import { createMemfd, Memfd, udmabufAvailable, udmabufCreate, udmabufCreateList, UDMABUF_PATH } from '../lib/udmabuf';
import { runBenchAsync } from '../lib/bench';
import { KERNEL_SKIP_ROW } from '../lib/bench_sync_file';
import { SwSyncTimeline } from '../lib/sync_file';
import { DmaBufError, errnoName, errnoNumber } from '../lib/errors';
import { expectArgError, expectDmaBufError } from './helpers';

const hasUdmabuf = fs.existsSync(UDMABUF_PATH);

describe('Memfd', () => {
  it('is created sealed against shrinking, zero-filled, readable and writable through fs', () => {
    using m = createMemfd(3 * 4096, { name: 'test-memfd' });
    expect(m.name).toBe('test-memfd');
    expect(m.size).toBe(3 * 4096);
    expect(m.seals).toEqual(['shrink']);
    expect(fs.readlinkSync(`/proc/self/fd/${m.fd}`)).toMatch(/^\/memfd:test-memfd/);
    const back = Buffer.alloc(8, 0xff);
    fs.readSync(m.fd, back, 0, 8, 4096);
    expect([...back]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    fs.writeSync(m.fd, Buffer.from('udmabuf!'), 0, 8, 4096);
    fs.readSync(m.fd, back, 0, 8, 4096);
    expect(back.toString()).toBe('udmabuf!');
    // F_SEAL_SHRINK at work: ftruncate to less is refused
    expect(() => fs.ftruncateSync(m.fd, 4096)).toThrow(/EPERM/);
  });

  it('takes other seals, adds more later, and F_SEAL_SEAL ends that', () => {
    using none = createMemfd(4096, { seals: [] });
    expect(none.seals).toEqual([]);
    none.addSeals(['shrink', 'grow']);
    expect(none.seals).toEqual(['shrink', 'grow']);
    none.addSeals(['seal']);
    expect(none.seals).toEqual(['seal', 'shrink', 'grow']);
    const e = expectDmaBufError(() => none.addSeals(['write']), 'EPERM');
    expect(e.syscall).toBe('fcntl(F_ADD_SEALS)');
    using w = createMemfd(4096, { seals: ['shrink', 'write', 'future-write'] });
    expect(w.seals).toEqual(['shrink', 'write', 'future-write']);
    expect(() => fs.writeSync(w.fd, Buffer.from('x'), 0, 1, 0)).toThrow(/EPERM/);
  });

  it('close() is idempotent; later use is EBADF', () => {
    const m = createMemfd(4096);
    const fd = m.fd;
    m.close();
    m.close();
    expect(m.closed).toBe(true);
    expectDmaBufError(() => m.fd, 'EBADF');
    expectDmaBufError(() => m.size, 'EBADF');
    expectDmaBufError(() => m.seals, 'EBADF');
    expectDmaBufError(() => m.addSeals(['grow']), 'EBADF');
    expect(() => fs.fstatSync(fd)).toThrow(/EBADF/);
    expectDmaBufError(() => udmabufCreate(m), 'EBADF');
  });

  it('argument errors', () => {
    expectArgError(() => createMemfd('4096' as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => createMemfd(-1), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => createMemfd(1.5), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => createMemfd(4096, 'x' as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => createMemfd(4096, { name: 3 as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => createMemfd(4096, { seals: 'shrink' as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => createMemfd(4096, { seals: ['shrnk' as never] }), TypeError, 'ERR_INVALID_ARG_VALUE');
    using m = createMemfd(4096);
    expectArgError(() => m.addSeals(['x' as never]), TypeError, 'ERR_INVALID_ARG_VALUE');
    expectArgError(() => m.addSeals(2 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expect(() => new (Memfd as never as new () => Memfd)()).toThrow(TypeError);
  });

  it('memfd_create refuses an over-long name with EINVAL', () => {
    const e = expectDmaBufError(() => createMemfd(4096, { name: 'n'.repeat(300) }), 'EINVAL');
    expect(e.syscall).toBe('memfd_create');
  });
});

describe('udmabuf arguments', () => {
  it('TypeError / RangeError before any ioctl', () => {
    using m = createMemfd(4096);
    expectArgError(() => udmabufCreate('3' as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => udmabufCreate(-1), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => udmabufCreate(2 ** 31), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => udmabufCreate(m.fd), TypeError, 'ERR_INVALID_ARG_TYPE'); // a raw fd needs a size
    expectArgError(() => udmabufCreate(m, 1 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => udmabufCreate(m, { offset: -4096 }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => udmabufCreate(m, { size: '4096' as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => udmabufCreate(m, { size: 1n << 64n }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => udmabufCreate(m, { cloexec: 1 as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => udmabufCreateList({} as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => udmabufCreateList([null as never]), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => udmabufCreateList([undefined as never]), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => udmabufCreateList([{ memfd: m }, { memfd: 'x' as never, size: 4096 }]), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => udmabufCreateList([{ memfd: 1.5, size: 4096 }]), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => udmabufCreateList([{ memfd: m, offset: 0.5 }]), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => udmabufCreateList([{ memfd: m }], { cloexec: 'yes' as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
  });

  it.skipIf(hasUdmabuf)('without /dev/udmabuf: ENOENT naming the node, for both ioctls', () => {
    expect(udmabufAvailable()).toBe(false);
    using m = createMemfd(4096);
    for (const fn of [() => udmabufCreate(m), () => udmabufCreateList([{ memfd: m }, { memfd: m.fd, size: 4096 }])]) {
      const e = expectDmaBufError(fn, 'ENOENT');
      expect(e.errno).toBe(-2);
      expect(e.message).toContain('/dev/udmabuf');
      expect(e.message).toMatch(/CONFIG_UDMABUF/);
      expect(e.syscall).toBe('open');
    }
  });

  it.runIf(hasUdmabuf)('with /dev/udmabuf: the result is a kernel DmaBuf', () => {
    using m = createMemfd(8192);
    using b = udmabufCreate(m);
    expect(b).toBeInstanceOf(DmaBuf);
    expect(b.backend).toBe('kernel');
    expect(b.size).toBe(8192);
    expect(b.exporterName).toBe('udmabuf');
  });
});

describe('errno names Node leaves out', () => {
  it.runIf(process.arch === 'x64' || process.arch === 'arm64')("EBADFD (udmabuf's 'not a memfd') has its name", () => {
    expect(errnoName(-77)).toBe('EBADFD');
    expect(errnoNumber('EBADFD')).toBe(-77);
    expect(new DmaBufError(-77, 'x', 'UDMABUF_CREATE').code).toBe('EBADFD');
    expect(errnoName(-22)).toBe('EINVAL');
  });
});

describe('bench: sync_file wait latency from JS', () => {
  it('measures the emulated path against its floor', async () => {
    const rows = await runBenchAsync({ jsOnly: true, filter: 'emulated sw_sync', ms: 1 });
    expect(rows).toHaveLength(1);
    expect(rows[0]!.unit).toBe('us');
    expect(rows[0]!.floor).toBeGreaterThan(0);
    expect(rows[0]!.ratio).toBeCloseTo(rows[0]!.value / rows[0]!.floor, 6);
  });

  it.skipIf(SwSyncTimeline.kernelAvailable())('without kernel sw_sync: one skipped row with the reason', async () => {
    const rows = await runBenchAsync({ jsOnly: true, filter: 'kernel: JS', ms: 1 });
    expect(rows.map((r) => r.name)).toEqual([KERNEL_SKIP_ROW]);
    expect(rows[0]!.note).toMatch(/sw_sync/);
  });
});
