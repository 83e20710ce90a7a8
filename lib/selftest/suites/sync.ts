// sync: the kernel's userspace sync_test cases (tools/testing/selftests/sync)
// on either backend: emulated sw_sync/sync_file, or the kernel's through
// debugfs sync/sw_sync and real sync_file fds. Iteration counts are short.
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { SwSyncTimeline, SyncFile } from '../../index';
import type { SelftestBackend, SelftestSuite } from '../types';
import { def, LIB, throwsArg, throwsErrno } from './util';

/** Why the kernel's sw_sync cannot be used here, or null. */
export function swSyncUnavailable(backend: SelftestBackend): string | null {
  if (backend !== 'kernel') return null;
  if (SwSyncTimeline.kernelAvailable()) return null;
  try {
    new SwSyncTimeline({ backend: 'kernel' }).close();
    return null;
  } catch (e) {
    return `no kernel sw_sync: ${(e as Error).message}`;
  }
}

const tl = (backend: SelftestBackend): SwSyncTimeline => new SwSyncTimeline({ backend });

export const syncSuite: SelftestSuite = {
  name: 'sync',
  description: "sw_sync timelines and sync_file merge/wait/info (the kernel's sync_test)",
  unavailable: swSyncUnavailable,
  cases: [
    def('test_alloc_timeline', (t) => {
      const x = tl(t.backend);
      assert.equal(x.backend, t.backend);
      x.close();
    }),
    def('test_alloc_fence', (t) => {
      const x = tl(t.backend);
      const f = x.createFence(1, 'allocFence');
      assert.equal(f.backend, t.backend);
      assert.equal(f.info().fences.length, 1);
      f.close();
      x.close();
    }),
    def('test_alloc_fence_negative', (t) => {
      const x = tl(t.backend);
      x.close();
      throwsErrno(() => x.createFence(1, 'fence'), 'EBADF');
      throwsArg(() => SyncFile.merge('fence', null as unknown as SyncFile, null as unknown as SyncFile), TypeError, 'ERR_INVALID_ARG_TYPE');
    }),
    def('test_fence_one_timeline_wait', async (t) => {
      const x = tl(t.backend);
      const f = x.createFence(5, 'allocFence');
      assert.equal(await f.wait({ timeout: 0 }), false, 'fence signaled on creation');
      x.inc(1);
      assert.equal(await f.wait({ timeout: 0 }), false, 'fence signaled too early');
      x.inc(2);
      assert.equal(f.isSignaled(), false);
      x.inc(2);
      assert.equal(await f.wait({ timeout: 0 }), true, 'fence did not signal');
      x.inc(10);
      assert.equal(await f.wait({ timeout: 0 }), true);
      f.close();
      x.close();
    }),
    def('test_fence_one_timeline_merge', async (t) => {
      const x = tl(t.backend);
      const a = x.createFence(1, 'allocFence');
      const b = x.createFence(2, 'allocFence');
      const c = x.createFence(3, 'allocFence');
      const d = SyncFile.merge('mergeFence', b, a);
      const e = SyncFile.merge('mergeFence', c, d);
      assert.equal(e.info().fences.length, 1, 'one context: the later point wins');
      assert.equal(await a.wait({ timeout: 0 }), false);
      assert.equal(await e.wait({ timeout: 0 }), false);
      x.inc(1);
      assert.equal(await a.wait({ timeout: 0 }), true);
      assert.equal(await e.wait({ timeout: 0 }), false);
      x.inc(2);
      assert.equal(await e.wait({ timeout: 0 }), true);
      for (const s of [a, b, c, d, e]) s.close();
      x.close();
    }),
    def('test_fence_merge_same_fence', async (t) => {
      const x = tl(t.backend);
      const a = x.createFence(5, 'allocFence');
      const m = SyncFile.merge('mergeFence', a, a);
      assert.equal(m.info().fences.length, 1);
      assert.equal(m.isSignaled(), false);
      x.inc(5);
      assert.equal(await m.wait({ timeout: 0 }), true);
      m.close();
      a.close();
      x.close();
    }),
    def('test_fence_multi_timeline_wait', async (t) => {
      const [ta, tb, tc] = [tl(t.backend), tl(t.backend), tl(t.backend)];
      const a = ta.createFence(5, 'allocFence');
      const b = tb.createFence(5, 'allocFence');
      const c = tc.createFence(5, 'allocFence');
      const ab = SyncFile.merge('mergeFence', a, b);
      const m = SyncFile.merge('mergeFence', ab, c);
      assert.equal(m.info().fences.length, 3);
      const active = () => m.info().fences.filter((x) => x.status === 0).length;
      assert.equal(active(), 3);
      ta.inc(5);
      assert.equal(active(), 2);
      assert.equal(await m.wait({ timeout: 0 }), false);
      tb.inc(5);
      assert.equal(active(), 1);
      tc.inc(5);
      assert.equal(active(), 0);
      assert.equal(await m.wait({ timeout: 0 }), true);
      assert.equal(m.status, 1);
      for (const s of [a, b, c, ab, m]) s.close();
      for (const x of [ta, tb, tc]) x.close();
    }),
    // Two lock-stepped waiters on one timeline (each waits for its point, bumps
    // the counter, incs), then a second thread doing the same on its own.
    def('test_stress_two_threads_shared_timeline', async (t) => {
      const iterations = 100;
      const x = tl(t.backend);
      let counter = 0;
      const worker = async (id: number): Promise<void> => {
        for (let i = 0; i < iterations; i++) {
          const f = x.createFence(i * 2 + id + 1);
          assert.equal(await f.wait({ timeout: 10000 }), true);
          assert.equal(counter, i * 2 + id, 'the points ran out of order');
          counter++;
          f.close();
          x.inc(1);
        }
      };
      const p = Promise.all([worker(0), worker(1)]);
      x.inc(1);
      await p;
      assert.equal(counter, iterations * 2);
      x.close();
      const code = `
        const { parentPort, workerData } = require('node:worker_threads');
        const { SwSyncTimeline } = require(workerData.lib);
        const t = new SwSyncTimeline({ backend: workerData.backend });
        let ok = 0;
        for (let i = 1; i <= 100; i++) { const f = t.createFence(i); t.inc(1); if (f.isSignaled()) ok++; f.close(); }
        t.close();
        parentPort.postMessage(ok);`;
      const w = new Worker(code, { eval: true, workerData: { lib: LIB, backend: t.backend } });
      const ok = await new Promise<number>((res, rej) => {
        w.once('message', res);
        w.once('error', rej);
      });
      await w.terminate();
      assert.equal(ok, 100);
    }),
    def('test_consumer_stress_multi_producer_single_consumer', async (t) => {
      const producers = 4;
      const iterations = 25;
      const x = tl(t.backend);
      let counter = 0;
      const produce = async (id: number) => {
        for (let i = 0; i < iterations; i++) {
          const f = x.createFence(i * producers + id);
          assert.equal(await f.wait({ timeout: 10000 }), true);
          assert.equal(counter, i * producers + id);
          counter++;
          f.close();
          x.inc(1);
        }
      };
      const all = Promise.all(Array.from({ length: producers }, (_, id) => produce(id)));
      for (let n = 1; n <= producers * iterations; n++) {
        const f = x.createFence(n);
        assert.equal(await f.wait({ timeout: 10000 }), true);
        assert.ok(counter >= n, 'the consumer ran ahead of the producers');
        f.close();
      }
      await all;
      x.close();
    }),
    def('test_merge_stress_random_merge', async (t) => {
      const timelines = 8;
      const merges = 100;
      const tls = Array.from({ length: timelines }, () => tl(t.backend));
      const maxPerTl = new Array<number>(timelines).fill(0);
      let merged = tls[0]!.createFence(1);
      maxPerTl[0] = 1;
      let seed = 12345;
      const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
      for (let i = 0; i < merges; i++) {
        const ti = rnd(timelines);
        const v = rnd(100) + 1;
        const f = tls[ti]!.createFence(v);
        const m = SyncFile.merge('merge', f, merged);
        f.close();
        merged.close();
        merged = m;
        maxPerTl[ti] = Math.max(maxPerTl[ti]!, v);
      }
      assert.equal(merged.info().fences.length, maxPerTl.filter((v) => v > 0).length);
      for (let ti = 0; ti < timelines; ti++) if (maxPerTl[ti]! > 0) tls[ti]!.inc(maxPerTl[ti]! - 1);
      assert.equal(await merged.wait({ timeout: 0 }), false);
      for (let ti = 0; ti < timelines; ti++) if (maxPerTl[ti]! > 0) tls[ti]!.inc(1);
      assert.equal(await merged.wait({ timeout: 0 }), true);
      merged.close();
      for (const x of tls) x.close();
    }),
  ],
};
