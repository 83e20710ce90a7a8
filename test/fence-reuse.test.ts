// Unpublished default fences (`new Fence()` whose native pointer never left
// the environment's handle table) go back to a per-environment spare list when
// disposed, re-initialised, and the next `new Fence()` reuses them without a
// grace period. Anything that lets the pointer out (a container, a callback, an
// exported handle, a wait) makes the fence published for good, and it is then
// released the kernel's way, whatever happens to its references later.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Fence, FenceArray, FenceChain, Resv, SyncFile, diagnostics } from '../lib';
import { binding } from '../lib/internal/binding';
import { flushPuts } from '../lib/internal/handles';

/** Spare-list growth from disposing `f` (0: released the kernel's way, 1: reused). */
function disposeAndCount(f: Fence): number {
  flushPuts();
  const before = binding.spareFences();
  f.dispose();
  flushPuts();
  return binding.spareFences() - before;
}

describe('reuse of unpublished default fences', () => {
  // Created before anything is measured: a `new Fence()` may create a batch of
  // 256, which takes fences from the spare list. Holding 600 also empties it,
  // so it has room for what the tests give back (it keeps at most 512).
  const hold = Array.from({ length: 600 }, () => new Fence());
  const fences = Array.from({ length: 16 }, () => new Fence());
  let next = 0;
  const fresh = (): Fence => fences[next++]!;

  it('new Fence(); signal(); dispose() gives the fence back, and the reads that only look keep it unpublished', () => {
    expect(binding.spareFences()).toBeLessThan(500);
    const f = fresh();
    expect(f.driverName + ':' + f.timelineName).toBe('dmabuf:js');
    const t0 = process.hrtime.bigint();
    f.signal(); // without the fence lock: nobody else can see it
    const t1 = process.hrtime.bigint();
    expect(f.timestamp! >= t0 && f.timestamp! <= t1).toBe(true);
    f.signal(); // a second signal changes nothing
    expect(f.timestamp! <= t1).toBe(true);
    expect(f.signaled && f.isSignaled() && f.status === 1 && f.error === 0).toBe(true);
    expect(typeof f.timestamp).toBe('bigint');
    expect(f.context + f.seqno).toBe(0n);
    expect(f.flags.signaled && f.opsDetached).toBe(true);
    expect(f.describe()).toContain('signalled');
    expect(f.is(f)).toBe(true);
    expect(binding.fenceRefcount(f.handle)).toBe(1);
    expect(disposeAndCount(f)).toBe(1);
    // Never signalled, or with an error set: still the only reference.
    const g = fresh();
    g.setError('EIO');
    expect(disposeAndCount(g)).toBe(1);
    const h = fresh();
    expect(h.checkAndSignal()).toBe(false);
    h.signal(123n);
    expect(disposeAndCount(h)).toBe(1);
  });

  it('reused fences come back as new: pending, no error, no timestamp, default context', () => {
    const errored = fresh();
    errored.setError('EIO');
    errored.signal();
    errored.dispose();
    flushPuts();
    const spare = binding.spareFences();
    expect(spare).toBeGreaterThan(0);
    // Enough new fences to take every spare one (and a batch more).
    const again = Array.from({ length: spare + 300 }, () => new Fence());
    expect(binding.spareFences()).toBeLessThan(spare);
    for (const f of again) {
      expect(f.signaled).toBe(false);
      expect(f.error).toBe(0);
      expect(f.timestamp).toBeNull();
      expect(f.context).toBe(0n);
      expect(binding.fenceRefcount(f.handle)).toBe(1);
    }
    // Each is its own fence: signalling one signals no other.
    again[0]!.signal();
    expect(again.filter((f) => f.signaled)).toHaveLength(1);
    again.forEach((f) => f.dispose());
  });

  const publishers: Array<[string, (f: Fence) => void]> = [
    ['a FenceArray member (array disposed since)', (f) => new FenceArray([f]).dispose()],
    ['a FenceChain link (chain disposed since)', (f) => new FenceChain(null, f, 1n).dispose()],
    ['an exported handle (imported and disposed since)', (f) => Fence.importHandle(f.exportHandle()).dispose()],
    ['a callback (removed since)', (f) => f.removeCallback(f.addCallback(() => {})!)],
    ['a resv fence (resv disposed since)', (f) => {
      const r = new Resv();
      r.lock();
      r.reserveFences(1);
      r.addFence(f, 'write');
      r.unlock();
      r.dispose();
    }],
    ['a sync_file (closed since)', (f) => SyncFile.create(f).close()],
    ['a timed-out waitSync', (f) => void f.waitSync(0)],
    ['enableSignaling', (f) => f.enableSignaling()],
  ];
  for (const [what, publish] of publishers) {
    it(`${what}: released the kernel's way, not reused`, () => {
      const f = fresh();
      publish(f);
      diagnostics.rcuBarrier(); // every other reference has been dropped
      expect(binding.fenceRefcount(f.handle)).toBe(1);
      expect(disposeAndCount(f)).toBe(0);
    });
  }

  it('the spare list is bounded (512), and the rest is released the kernel\'s way', () => {
    const many = Array.from({ length: 1500 }, () => new Fence());
    many.forEach((f) => f.dispose());
    flushPuts();
    expect(binding.spareFences()).toBe(512);
    diagnostics.rcuBarrier();
    expect(diagnostics.deferredPending()).toBe(0);
    hold.forEach((f) => f.dispose());
    fences.forEach((f) => f.dispose());
  });

  it('a worker ending with spare fences (and one terminated while making them) frees them at teardown', async () => {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { Fence } = require(${JSON.stringify(require.resolve('../dist/index.js'))});
      const { binding } = require(${JSON.stringify(require.resolve('../dist/internal/binding.js'))});
      const { flushPuts } = require(${JSON.stringify(require.resolve('../dist/internal/handles.js'))});
      for (let i = 0; i < 2000; i++) { const f = new Fence(); f.signal(); f.dispose(); }
      flushPuts();
      parentPort.postMessage(binding.spareFences());
      if (workerData.spin) for (;;) { const f = new Fence(); f.signal(); f.dispose(); }
    `;
    const run = (spin: boolean): Promise<[number, number]> =>
      new Promise((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { spin } });
        let spare = -1;
        w.on('message', (n: number) => {
          spare = n;
          if (spin) void w.terminate();
        });
        w.on('error', reject);
        w.on('exit', (code) => resolve([spare, code]));
      });
    const [spare, code0] = await run(false);
    expect(spare).toBeGreaterThan(0);
    expect(code0).toBe(0);
    const [spare2, code1] = await run(true);
    expect(spare2).toBeGreaterThan(0);
    expect(code1).toBe(1); // terminated
    diagnostics.rcuBarrier();
    expect(diagnostics.deferredPending()).toBe(0);
  });
});
