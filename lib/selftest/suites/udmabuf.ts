// udmabuf: the kernel's udmabuf kselftest (tools/testing/selftests/drivers/
// dma-buf/udmabuf.c). udmabuf is real-kernel only: on the emulation only the
// memfd and argument cases run; the rest need /dev/udmabuf (--backend kernel).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createMemfd, udmabufCreate, udmabufCreateList, udmabufAvailable, UDMABUF_PATH } from '../../index';
import type { SelftestBackend, SelftestSuite } from '../types';
import { def, throwsArg, throwsErrno } from './util';

const PAGE = 4096;
const MiB = 1 << 20;

/** Why /dev/udmabuf cannot be used (on the kernel backend), or null. */
export function udmabufUnavailable(backend: SelftestBackend): string | null {
  if (backend !== 'kernel') return null;
  if (udmabufAvailable()) return null;
  try {
    fs.closeSync(fs.openSync(UDMABUF_PATH, 'r+'));
    return null;
  } catch (e) {
    return `no ${UDMABUF_PATH}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}

const kernelOnly = (backend: SelftestBackend): string | null =>
  backend === 'kernel' ? null : `udmabuf is real-kernel only: run with --backend kernel (or auto) where ${UDMABUF_PATH} exists`;

export const udmabufSuite: SelftestSuite = {
  name: 'udmabuf',
  description: "memfd pages as a dma-buf: UDMABUF_CREATE(_LIST) and its refusals (the kernel's udmabuf kselftest)",
  unavailable: udmabufUnavailable,
  cases: [
    def('memfd_seals', () => {
      const m = createMemfd(2 * PAGE, { name: 'selftest' });
      assert.deepEqual(m.seals, ['shrink']);
      assert.equal(m.size, 2 * PAGE);
      fs.writeSync(m.fd, Buffer.from('hello'), 0, 5, 0);
      const back = Buffer.alloc(5);
      fs.readSync(m.fd, back, 0, 5, 0);
      assert.equal(back.toString(), 'hello');
      m.close();
    }),
    def('arguments', () => {
      throwsArg(() => udmabufCreate(null as unknown as number), TypeError, 'ERR_INVALID_ARG_TYPE');
      throwsArg(() => udmabufCreateList('x' as unknown as []), TypeError, 'ERR_INVALID_ARG_TYPE');
    }),
    def('test_unsealed_memfd', () => {
      const m = createMemfd(MiB, { seals: [] });
      throwsErrno(() => udmabufCreate(m), 'EINVAL', 'UDMABUF_CREATE');
      m.close();
    }, kernelOnly),
    def('test_write_sealed_memfd', () => {
      const m = createMemfd(MiB, { seals: ['shrink', 'write'] });
      throwsErrno(() => udmabufCreate(m), 'EINVAL', 'UDMABUF_CREATE');
      m.close();
    }, kernelOnly),
    def('test_unaligned_size', () => {
      const m = createMemfd(MiB);
      throwsErrno(() => udmabufCreate(m, { size: PAGE + 1 }), 'EINVAL', 'UDMABUF_CREATE');
      throwsErrno(() => udmabufCreate(m, { offset: 100, size: PAGE }), 'EINVAL', 'UDMABUF_CREATE');
      throwsErrno(() => udmabufCreate(m, { size: 2 * MiB }), 'EINVAL', 'UDMABUF_CREATE');
      m.close();
    }, kernelOnly),
    def('test_not_a_memfd', () => {
      const nul = fs.openSync('/dev/null', 'r');
      try {
        throwsErrno(() => udmabufCreate(nul, { size: PAGE }), 'EBADFD', 'UDMABUF_CREATE');
      } finally {
        fs.closeSync(nul);
      }
    }, kernelOnly),
    def('test_create_and_map', () => {
      const m = createMemfd(MiB, { name: 'selftest-udmabuf' });
      fs.writeSync(m.fd, Buffer.alloc(MiB, 0x5a), 0, MiB, 0);
      const buf = udmabufCreate(m);
      assert.equal(buf.backend, 'kernel');
      assert.equal(buf.size, MiB);
      assert.equal(buf.exporterName, 'udmabuf');
      const bytes = new Uint8Array(buf.map());
      buf.beginCpuAccess('readwrite');
      assert.equal(bytes[12345], 0x5a, 'memfd writes show in the mapping');
      bytes.set(Buffer.from('through the dma-buf'), 4096);
      buf.endCpuAccess('readwrite');
      const back = Buffer.alloc(19);
      fs.readSync(m.fd, back, 0, 19, 4096);
      assert.equal(back.toString(), 'through the dma-buf', 'mapping writes show in the memfd');
      m.close();
      buf.close();
    }, kernelOnly),
    def('test_create_list', () => {
      const a = createMemfd(2 * PAGE);
      const b = createMemfd(3 * PAGE);
      fs.writeSync(a.fd, Buffer.alloc(2 * PAGE, 'A'), 0, 2 * PAGE, 0);
      fs.writeSync(b.fd, Buffer.alloc(3 * PAGE, 'B'), 0, 3 * PAGE, 0);
      const buf = udmabufCreateList([{ memfd: a, offset: PAGE }, { memfd: b }]);
      assert.equal(buf.size, 4 * PAGE);
      const m = new Uint8Array(buf.map());
      buf.beginCpuAccess('read');
      assert.deepEqual([m[0], m[PAGE - 1], m[PAGE], m[4 * PAGE - 1]].map((c) => String.fromCharCode(c!)), ['A', 'A', 'B', 'B']);
      buf.endCpuAccess('read');
      buf.close();
      throwsErrno(() => udmabufCreateList([]), 'EINVAL', 'UDMABUF_CREATE_LIST');
      const many = Array.from({ length: 1025 }, () => ({ memfd: a, size: PAGE }));
      throwsErrno(() => udmabufCreateList(many), 'EINVAL', 'UDMABUF_CREATE_LIST');
      a.close();
      b.close();
    }, kernelOnly),
  ],
};
