// dma-buf-resv (st-dma-resv.c: sanitycheck + 4 cases x 4 usages): the cases
// live in lib/selftest/suites/resv.ts (`dmabuf selftest --suite dma-buf-resv`)
// and run here from the sources; below, Resv from JS and ww deadlock avoidance
// across worker threads.
import { describe, expect, it } from 'vitest';
import { AcquireContext, Fence, FenceArray, Resv, type ResvUsage } from '../lib';
import { expectDmaBufError } from './helpers';
import { resvSuite } from '../lib/selftest/suites/resv';
import { describeSuite } from './selftest-cases';

const usages: ResvUsage[] = ['kernel', 'write', 'read', 'bookkeep'];

describeSuite(resvSuite);

describe('Resv', () => {
  it('usages are ordered: a query returns its usage and the stronger ones', () => {
    const r = new Resv();
    const fs = usages.map(() => new Fence({ context: Fence.allocContext(), seqno: 1 }));
    r.lock();
    r.reserveFences(4);
    usages.forEach((u, i) => r.addFence(fs[i]!, u));
    r.unlock();
    usages.forEach((u, i) => {
      const got = r.getFences(u);
      expect(got.length).toBe(i + 1);
      for (const g of got) g.dispose();
    });
    for (const f of fs) f.dispose();
    r.dispose();
  });

  it('getSingleton: null, the fence, or a new array', () => {
    const r = new Resv();
    expect(r.getSingleton('bookkeep')).toBeNull();
    const [a, b] = [new Fence({ context: Fence.allocContext() }), new Fence({ context: Fence.allocContext() })];
    r.lock();
    r.reserveFences(2);
    r.addFence(a, 'write');
    const one = r.getSingleton('write')!;
    expect(one.is(a)).toBe(true);
    r.addFence(b, 'read');
    r.unlock();
    const s = r.getSingleton('read')!;
    expect(FenceArray.is(s)).toBe(true);
    expect((s as FenceArray).length).toBe(2);
    for (const x of [a, b, one, s]) x.dispose();
    r.dispose();
  });

  it('wait() resolves when every fence of the usage signals, without blocking the loop', async () => {
    const r = new Resv();
    const [a, b] = [new Fence({ context: Fence.allocContext() }), new Fence({ context: Fence.allocContext() })];
    r.lock();
    r.reserveFences(2);
    r.addFence(a, 'write');
    r.addFence(b, 'read');
    r.unlock();
    expect(await r.wait('read', { timeout: 10 })).toBe(false);
    const w = r.wait('write');
    const w2 = r.wait('read');
    setTimeout(() => a.signal(), 5);
    expect(await w).toBe(true);
    setTimeout(() => b.signal(), 5);
    expect(await w2).toBe(true);
    expect(await r.wait('bookkeep', { timeout: 0 })).toBe(true);
    expect(r.waitSync('bookkeep', 0)).toBe(true);
    const ac = new AbortController();
    const c = new Fence();
    r.lock();
    r.addFence(c, 'kernel');
    r.unlock();
    const p = r.wait('kernel', { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect(r.waitSync('kernel', 1)).toBe(false);
    c.signal();
    for (const x of [a, b, c]) x.dispose();
    r.dispose();
  });

  it('replaceFences, copyFences, setDeadline, describe', () => {
    const r = new Resv();
    const ctx = Fence.allocContext();
    const a = new Fence({ context: ctx, seqno: 1 });
    const z = new Fence({ context: Fence.allocContext(), seqno: 1 });
    r.lock();
    r.reserveFences(2);
    r.addFence(a, 'read');
    r.replaceFences(ctx, z, 'bookkeep');
    expect(r.getFences('read')).toEqual([]);
    const bk = r.getFences('bookkeep');
    expect(bk.length).toBe(1);
    expect(bk[0]!.is(z)).toBe(true);
    r.setDeadline('bookkeep', 123n);
    expect(r.describe()).toBe(''); // bookkeep entries are not described
    r.addFence(a, 'write');
    expect(r.describe()).toContain('write fence:');
    r.unlock();
    const r2 = new Resv();
    r2.lock();
    r2.copyFences(r);
    r2.unlock();
    const copied = r2.getFences('bookkeep');
    expect(copied.length).toBe(2);
    for (const x of [a, z, ...bk, ...copied]) x.dispose();
    r.dispose();
    r2.dispose();
  });

  it('AcquireContext: EALREADY, done(), fini() with locks held, using', () => {
    const [r1, r2] = [new Resv(), new Resv()];
    {
      using ctx = new AcquireContext();
      r1.lock(ctx);
      expectDmaBufError(() => r1.lock(ctx), 'EALREADY');
      r2.lock(ctx);
      expect(ctx.acquired).toBe(2);
      ctx.done();
      expectDmaBufError(() => r1.lock(ctx), 'EINVAL');
      expectDmaBufError(() => ctx.fini(), 'EBUSY');
      r1.unlock();
      r2.unlock();
    }
    r1.lock();
    expectDmaBufError(() => r1.lock(), 'EDEADLK'); // would wait for itself
    expect(r1.tryLock()).toBe(false);
    r1.unlock();
    expectDmaBufError(() => r1.unlock(), 'EPERM');
    expect(r1.tryLock()).toBe(true);
    r1.unlock();
    r1.dispose();
    r2.dispose();
  });

  it('ww deadlock avoidance: workers lock two Resv objects in opposite orders and all finish', async () => {
    const { Worker } = await import('node:worker_threads');
    const lib = require.resolve('../dist/index.js');
    const [a, b] = [new Resv(), new Resv()];
    const rounds = 200;
    const gate = new SharedArrayBuffer(8);
    const spawn = (first: Resv, second: Resv): Worker =>
      new Worker(
        `const { workerData, parentPort } = require('node:worker_threads');
         const { Resv, AcquireContext, Fence, isDmaBufError } = require(workerData.lib);
         const objs = [Resv.importHandle(workerData.first), Resv.importHandle(workerData.second)];
         const gate = new Int32Array(workerData.gate);
         Atomics.add(gate, 0, 1);
         while (Atomics.load(gate, 0) < workerData.count) Atomics.wait(gate, 1, 0, 1); // start together
         const nap = new Int32Array(new SharedArrayBuffer(4));
         let backoffs = 0;
         for (let n = 0; n < workerData.rounds; n++) {
           const ctx = new AcquireContext();
           let contended = null;
           for (;;) {
             const held = [];
             if (contended) { contended.lockSlow(ctx); held.push(contended); }
             let retry = false;
             for (const r of objs) {
               if (r === contended) continue;
               try { r.lock(ctx); held.push(r); Atomics.wait(nap, 0, 0, 0.05); }
               catch (e) {
                 if (!isDmaBufError(e, 'EDEADLK')) throw e;
                 for (const h of held) h.unlock();
                 contended = r; retry = true; backoffs++; break;
               }
             }
             if (!retry) break;
           }
           ctx.done();
           const f = new Fence();
           for (const r of objs) { r.reserveFences(1); r.addFence(f, 'bookkeep'); }
           f.signal(); f.dispose();
           for (const r of objs) r.unlock();
           ctx.fini();
         }
         for (const r of objs) r.dispose();
         parentPort.postMessage({ backoffs });`,
        {
          eval: true,
          workerData: { lib, rounds, gate, count: 4, first: first.exportHandle(), second: second.exportHandle() },
        },
      );
    const workers = [spawn(a, b), spawn(b, a), spawn(a, b), spawn(b, a)];
    const results = await Promise.all(
      workers.map((w) => new Promise<{ backoffs: number }>((res, rej) => {
        w.once('message', res);
        w.once('error', rej);
      })),
    );
    expect(results.length).toBe(4);
    // wait-die made the younger contexts back off (and every worker still finished)
    expect(results.reduce((n, r) => n + r.backoffs, 0)).toBeGreaterThan(0);
    await Promise.all(workers.map((w) => w.terminate()));
    expect(a.locked || b.locked).toBe(false);
    a.dispose();
    b.dispose();
  });

  it('addFence refuses containers', () => {
    const r = new Resv();
    const f = new Fence();
    const arr = new FenceArray([f]);
    r.lock();
    r.reserveFences(1);
    expectDmaBufError(() => r.addFence(arr, 'read'), 'EINVAL');
    r.unlock();
    for (const x of [f, arr, r]) x.dispose();
  });
});
