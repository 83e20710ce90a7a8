// dma-buf-implicit-sync: DMA_BUF_IOCTL_EXPORT_SYNC_FILE / IMPORT_SYNC_FILE
// (Linux 6.0): what a reader and a writer wait for, on either backend (a heap
// buffer and sw_sync fences, emulated or real).
import assert from 'node:assert/strict';
import { openHeap, SwSyncTimeline, SyncFile, Fence, DmaBufError, type DmaBuf } from '../../index';
import type { SelftestBackend, SelftestSuite } from '../types';
import { def } from './util';
import { heapUnavailable } from './heap';
import { swSyncUnavailable } from './sync';

function buffer(backend: SelftestBackend): DmaBuf {
  const heap = openHeap('system', { backend });
  const buf = heap.alloc(4096);
  heap.close();
  assert.equal(buf.backend, backend);
  return buf;
}
const tl = (backend: SelftestBackend) => new SwSyncTimeline({ backend });
const code = (c: string) => (e: unknown) => e instanceof DmaBufError && e.code === c;

export const implicitSyncSuite: SelftestSuite = {
  name: 'dma-buf-implicit-sync',
  description: 'implicit sync through sync_files: DMA_BUF_IOCTL_EXPORT_SYNC_FILE and IMPORT_SYNC_FILE rules',
  unavailable: (backend) => heapUnavailable(backend) ?? swSyncUnavailable(backend),
  cases: [
    def('export_idle_is_signalled', (t) => {
      const buf = buffer(t.backend);
      for (const dir of ['read', 'write', 'readwrite'] as const) {
        const s = buf.exportSyncFile(dir);
        assert.equal(s.status, 1, `${dir} export of an idle buffer is pending`);
        s.close();
      }
      buf.close();
    }),
    def('import_write_blocks_readers_and_writers', async (t) => {
      const buf = buffer(t.backend);
      const x = tl(t.backend);
      const writer = x.createFence(1);
      buf.importSyncFile(writer, 'write');
      const forRead = buf.exportSyncFile('read');
      const forWrite = buf.exportSyncFile('write');
      assert.equal(forRead.backend, t.backend);
      assert.equal(forRead.status, 0);
      assert.equal(forWrite.status, 0);
      assert.equal(await forRead.wait({ timeout: 20 }), false);
      const done = forRead.wait({ timeout: 10000 });
      x.inc(1);
      assert.equal(await done, true);
      assert.equal(forWrite.status, 1);
      const after = buf.exportSyncFile('read');
      assert.equal(after.status, 1, 'an export after the writer signalled is pending');
      if (t.backend === 'kernel') assert.ok(forRead.fd >= 0, 'a kernel export is a real sync_file fd');
      for (const s of [writer, forRead, forWrite, after]) s.close();
      x.close();
      buf.close();
    }),
    def('import_read_blocks_writers_only', (t) => {
      const buf = buffer(t.backend);
      const x = tl(t.backend);
      const reader = x.createFence(1);
      buf.importSyncFile(reader, 'read');
      const forRead = buf.exportSyncFile('read');
      const forWrite = buf.exportSyncFile('write');
      assert.equal(forRead.status, 1, 'a reader blocked a reader');
      assert.equal(forWrite.status, 0, 'a reader did not block a writer');
      x.inc(1);
      assert.equal(forWrite.status, 1);
      for (const s of [reader, forRead, forWrite]) s.close();
      x.close();
      buf.close();
    }),
    def('import_merged_is_unwrapped', (t) => {
      const buf = buffer(t.backend);
      const a = tl(t.backend);
      const b = tl(t.backend);
      const fa = a.createFence(1);
      const fb = b.createFence(1);
      const both = SyncFile.merge('both', fa, fb);
      buf.importSyncFile(both, 'readwrite');
      const out = buf.exportSyncFile('read');
      assert.equal(out.info().fences.length, 2);
      a.inc(1);
      assert.equal(out.status, 0);
      b.inc(1);
      assert.equal(out.status, 1);
      for (const s of [fa, fb, both, out]) s.close();
      a.close();
      b.close();
      buf.close();
    }),
    def('export_as_fence', async (t) => {
      const buf = buffer(t.backend);
      const x = tl(t.backend);
      const w = x.createFence(1);
      buf.importSyncFile(w, 'write');
      const out = buf.exportSyncFile('read');
      const f = out.fence;
      assert.ok(f instanceof Fence);
      assert.equal(f.signaled, false);
      setTimeout(() => x.inc(1), 10);
      assert.equal(await f.wait({ timeout: 10000 }), true);
      for (const s of [out, w]) s.close();
      x.close();
      buf.close();
    }),
    def('refusals', (t) => {
      const buf = buffer(t.backend);
      const other: SelftestBackend = t.backend === 'kernel' ? 'emulated' : 'kernel';
      const x = tl(t.backend);
      const k = x.createFence(1);
      if (t.backend === 'kernel') {
        // mixed backends, both ways
        const emu = SyncFile.create(Fence.stub());
        assert.throws(() => buf.importSyncFile(emu, 'write'), (e: unknown) => code('EINVAL')(e) && /emulated sync_file into a kernel/.test((e as Error).message));
        emu.close();
        const emuBuf = openHeap('system').alloc(4096);
        assert.throws(() => emuBuf.importSyncFile(k, 'read'), code('EINVAL'), 'a kernel sync_file into an emulated buffer');
        emuBuf.close();
      } else t.log(`mixed backends (a ${other} sync_file) are checked on the kernel backend`);
      const argCode = (c: string) => (e: unknown) => (e as { code?: string }).code === c;
      assert.throws(() => buf.exportSyncFile('rw' as 'read'), argCode('ERR_INVALID_ARG_VALUE'));
      assert.throws(() => buf.importSyncFile(k, 3 as unknown as 'read'), argCode('ERR_INVALID_ARG_TYPE'));
      k.close();
      assert.throws(() => buf.importSyncFile(k, 'read'), code('EBADF'), 'closed sync_file');
      buf.close();
      assert.throws(() => buf.exportSyncFile('read'), code('EBADF'), 'closed buffer');
      x.close();
    }),
  ],
};
