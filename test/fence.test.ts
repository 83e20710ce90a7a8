// Fence edge cases beyond the kernel suite, through the public API.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DmaBufError, Fence, FenceLock, diagnostics } from '../lib';
import { binding } from '../lib/internal/binding';
import { expectDmaBufError, expectRejectsCode, sleep } from './helpers';

describe('ordering', () => {
  it('32-bit seqnos wrap: values 2^31 apart are neither later', () => {
    const ctx = Fence.allocContext();
    const a = new Fence({ context: ctx, seqno: 1 });
    const b = new Fence({ context: ctx, seqno: 0x80000001 });
    expect(Fence.isLater(a, b)).toBe(false);
    expect(Fence.isLater(b, a)).toBe(false);
    const c = new Fence({ context: ctx, seqno: 0x80000002 });
    expect(Fence.isLater(a, c)).toBe(true); // difference 0x7fffffff: 1 is later
    const zero = new Fence({ context: ctx, seqno: 0 });
    const max = new Fence({ context: ctx, seqno: 0xffffffff });
    expect(Fence.isLater(zero, max)).toBe(true);
    const hi = new Fence({ context: ctx, seqno: 0x100000005n });
    const lo = new Fence({ context: ctx, seqno: 5 });
    expect(Fence.isLater(hi, lo)).toBe(false); // upper half ignored
    for (const f of [a, b, c, zero, max, hi, lo]) f.dispose();
  });

  it('64-bit seqnos compare as plain integers', () => {
    const ctx = Fence.allocContext();
    const a = new Fence({ context: ctx, seqno: 1, seqno64: true });
    const b = new Fence({ context: ctx, seqno: 0x80000001, seqno64: true });
    expect(a.flags.seqno64).toBe(true);
    expect(Fence.isLater(b, a)).toBe(true);
    expect(Fence.isLater(a, b)).toBe(false);
    const hi = new Fence({ context: ctx, seqno: 0x100000005n, seqno64: true });
    expect(Fence.isLater(hi, a)).toBe(true);
    for (const f of [a, b, hi]) f.dispose();
  });

  it('isLater is false and later() null across contexts; equal seqnos are not later', () => {
    const a = new Fence({ context: Fence.allocContext(), seqno: 2 });
    const b = new Fence({ context: Fence.allocContext(), seqno: 1 });
    expect(Fence.isLater(a, b)).toBe(false);
    expect(Fence.later(a, b)).toBeNull();
    const c = new Fence({ context: a.context, seqno: 2 });
    expect(Fence.isLater(a, c)).toBe(false);
    for (const f of [a, b, c]) f.dispose();
  });

  it('later() picks the later fence, or null once it is signalled', () => {
    const ctx = Fence.allocContext();
    const a = new Fence({ context: ctx, seqno: 1 });
    const b = new Fence({ context: ctx, seqno: 2 });
    expect(Fence.later(a, b)).toBe(b);
    expect(Fence.later(b, a)).toBe(b);
    b.signal();
    expect(Fence.later(a, b)).toBeNull();
    a.dispose();
    b.dispose();
  });

  it('allocContext hands out consecutive contexts, never 0', () => {
    const first = Fence.allocContext(3);
    expect(first).toBeGreaterThan(0n);
    expect(Fence.allocContext()).toBe(first + 3n);
  });
});

describe('state, names and timestamps', () => {
  it('reports names until signalled, then the 7.1 placeholders', () => {
    const f = new Fence({ context: 7n, seqno: 9 });
    expect(f.driverName).toBe('dmabuf');
    expect(f.timelineName).toBe('js');
    expect(f.describe()).toBe('7:9 js dmabuf unsignalled\n');
    expect(f.opsDetached).toBe(false);
    expect(f.timestamp).toBeNull();
    f.signal();
    expect(f.driverName).toBe('detached-driver');
    expect(f.timelineName).toBe('signaled-timeline');
    expect(f.describe()).toBe('7:9   signalled\n');
    expect(f.opsDetached).toBe(true);
    f.dispose();
  });

  it('keeps the first timestamp; signal(ts) sets it', () => {
    const f = new Fence();
    f.signal(1234n);
    expect(f.timestamp).toBe(1234n);
    f.signal(99n);
    expect(f.timestamp).toBe(1234n);
    expect(f.checkAndSignal()).toBe(true);
    expect(f.flags).toMatchObject({ signaled: true, timestamp: true, initialized: true, inlineLock: true });
    f.dispose();
  });

  it('stub and private stub are signalled with detached ops', () => {
    const s = Fence.stub();
    expect(s.signaled).toBe(true);
    expect(s.flags.enableSignal).toBe(true);
    expect(s.context).toBe(0n);
    expect(s.opsDetached).toBe(true);
    const p = Fence.privateStub(42n);
    expect(p.timestamp).toBe(42n);
    expect(p.status).toBe(1);
    expect(p.is(s)).toBe(false);
    const s2 = Fence.stub();
    expect(s2.is(s)).toBe(true);
    for (const f of [s, p, s2]) f.dispose();
  });

  it('setError takes a negative errno or its name; refuses after signal', () => {
    const f = new Fence();
    f.setError('EIO');
    expect(f.error).toBe(-5);
    f.setError(-125);
    f.signal();
    expect(f.status).toBe(-125);
    expectDmaBufError(() => f.setError(-5), 'EBUSY');
    expect(f.error).toBe(-125);
    f.dispose();
  });
});

describe('callbacks', () => {
  it('run in FIFO order, synchronously when this thread signals', () => {
    const f = new Fence();
    const order: number[] = [];
    f.addCallback(() => order.push(1));
    f.addCallback(() => order.push(2));
    f.addCallback(() => order.push(3));
    f.signal();
    expect(order).toEqual([1, 2, 3]);
    f.dispose();
  });

  it('receive the fence; adding from inside a callback works (and is refused for the signalled fence)', () => {
    const a = new Fence();
    const b = new Fence();
    const log: string[] = [];
    a.addCallback((f) => {
      expect(f).toBe(a);
      log.push('a');
      expect(a.addCallback(() => log.push('late'))).toBeNull();
      b.addCallback(() => log.push('b-from-a'));
    });
    a.signal();
    b.signal();
    expect(log).toEqual(['a', 'b-from-a']);
    a.dispose();
    b.dispose();
  });

  it('a callback may signal another fence, whose callbacks then run too', () => {
    const a = new Fence();
    const b = new Fence();
    const log: string[] = [];
    a.addCallback(() => {
      log.push('a');
      b.signal();
      log.push('after b.signal');
    });
    b.addCallback(() => log.push('b'));
    a.signal();
    expect(b.signaled).toBe(true);
    expect(log).toContain('a');
    expect(log).toContain('b');
    a.dispose();
    b.dispose();
  });

  it('a throwing callback does not stop the others and surfaces as an uncaught exception', () => {
    const script = `
      const { Fence } = require(${JSON.stringify(require.resolve('../dist/index.js'))});
      process.on('uncaughtException', (e) => { console.log('uncaught:' + e.message); });
      const f = new Fence(); let second = false;
      f.addCallback(() => { throw new Error('boom'); });
      f.addCallback(() => { second = true; });
      f.signal();
      console.log('second:' + second);
      f.dispose();
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('second:true');
    expect(r.stdout).toContain('uncaught:boom');
  });

  it('dispose removes callbacks added through that object', () => {
    const f = new Fence();
    const g = Fence.importHandle(f.exportHandle());
    let ran = false;
    const cb = f.addCallback(() => (ran = true))!;
    expect(cb.pending).toBe(true);
    f.dispose();
    expect(cb.pending).toBe(false);
    g.signal();
    expect(ran).toBe(false);
    g.dispose();
  });
});

describe('waits', () => {
  it('wait() resolves on a signal from a timer without blocking the loop', async () => {
    const f = new Fence();
    let ticks = 0;
    // The timer can only reach 5 ticks (and signal) if the wait leaves the loop running.
    const iv = setInterval(() => {
      if (++ticks === 5) f.signal();
    }, 1);
    expect(await f.wait()).toBe(true);
    clearInterval(iv);
    expect(ticks).toBeGreaterThanOrEqual(5);
    f.dispose();
  });

  it('wait() times out with false and leaves no callback behind', async () => {
    const f = new Fence();
    expect(await f.wait({ timeout: 5 })).toBe(false);
    let late = false;
    f.addCallback(() => (late = true));
    f.signal();
    expect(late).toBe(true);
    f.dispose();
  });

  it('wait() rejects with AbortError on abort, and at once if already aborted', async () => {
    const f = new Fence();
    const ac = new AbortController();
    const p = f.wait({ signal: ac.signal });
    ac.abort();
    await expectRejectsCode(p, 'ABORT_ERR');
    await expectRejectsCode(f.wait({ signal: ac.signal }), 'ABORT_ERR');
    f.dispose();
  });

  it('waiting on a fence that is disposed from JS rejects with EBADF', async () => {
    const f = new Fence();
    const p = f.wait();
    const q = Fence.waitAny([f]);
    f.dispose();
    await expectRejectsCode(p, 'EBADF');
    await expectRejectsCode(q, 'EBADF');
  });

  it('wait() on a fence signalled from a worker thread', async () => {
    const { Worker } = await import('node:worker_threads');
    const f = new Fence();
    const w = new Worker(
      `const { workerData } = require('node:worker_threads');
       const { Fence } = require(workerData.lib);
       const g = Fence.importHandle(workerData.h);
       setTimeout(() => { g.signal(); g.dispose(); }, 20);`,
      { eval: true, workerData: { lib: require.resolve('../dist/index.js'), h: f.exportHandle() } },
    );
    expect(await f.wait({ timeout: 5000 })).toBe(true);
    await w.terminate();
    f.dispose();
  });

  it('waitSync blocks a worker until the main thread signals', async () => {
    const { Worker } = await import('node:worker_threads');
    const f = new Fence();
    const w = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const { Fence } = require(workerData.lib);
       const g = Fence.importHandle(workerData.h);
       parentPort.postMessage('waiting');
       const r = g.waitSync(5000);
       parentPort.postMessage({ r, status: g.status });
       g.dispose();`,
      { eval: true, workerData: { lib: require.resolve('../dist/index.js'), h: f.exportHandle() } },
    );
    const msgs: unknown[] = [];
    const done = new Promise<void>((resolve) =>
      w.on('message', (m) => {
        msgs.push(m);
        if (m === 'waiting') setTimeout(() => { f.setError('ECANCELED'); f.signal(); }, 20);
        else resolve();
      }),
    );
    await done;
    expect(msgs[1]).toEqual({ r: true, status: -125 });
    await w.terminate();
    f.dispose();
  });

  it('waitAny resolves with the signalled index, -1 on timeout, at once if one is signalled', async () => {
    const fs = [new Fence(), new Fence(), new Fence()];
    expect(await Fence.waitAny(fs, { timeout: 5 })).toBe(-1);
    setTimeout(() => fs[1]!.signal(), 5);
    expect(await Fence.waitAny(fs)).toBe(1);
    expect(await Fence.waitAny(fs, { timeout: 0 })).toBe(1);
    expect(Fence.waitAnySync(fs, 0)).toBe(1);
    const fresh = [new Fence(), new Fence()];
    expect(Fence.waitAnySync(fresh, 1)).toBe(-1);
    fresh[0]!.signal();
    expect(Fence.waitAnySync(fresh)).toBe(0);
    for (const f of [...fs, ...fresh]) f.dispose();
  });

  it('waitAny aborts', async () => {
    const f = new Fence();
    const ac = new AbortController();
    const p = Fence.waitAny([f], { signal: ac.signal });
    ac.abort();
    await expectRejectsCode(p, 'ABORT_ERR');
    f.signal(); // no stale callback may fire into a settled promise
    f.dispose();
  });
});

describe('lifetime', () => {
  it('dispose is idempotent; every use afterwards is EBADF', async () => {
    const f = new Fence();
    f.dispose();
    f.dispose();
    expect(f.disposed).toBe(true);
    for (const use of [
      () => f.signal(),
      () => f.status,
      () => f.context,
      () => f.driverName,
      () => f.addCallback(() => {}),
      () => f.waitSync(0),
      () => f.exportHandle(),
      () => f.describe(),
    ]) {
      expectDmaBufError(use, 'EBADF');
    }
    await expectRejectsCode(f.wait(), 'EBADF');
  });

  it('slots of disposed fences are reused at once; the old objects stay disposed', () => {
    // Two pages' worth, so whole blocks are retired and handed out again.
    const old: Fence[] = [];
    for (let i = 0; i < 9000; i++) {
      const f = new Fence();
      f.signal();
      f.dispose();
      old.push(f);
    }
    const live = Array.from({ length: 200 }, (_, i) => new Fence({ seqno: i }));
    for (const f of old) {
      expect(f.disposed).toBe(true);
      expectDmaBufError(() => f.signal(), 'EBADF');
      f.dispose(); // a no-op: it must not drop a reference now in its old slot
    }
    diagnostics.rcuBarrier(); // flushes batched puts
    for (const [i, f] of live.entries()) {
      expect(f.disposed).toBe(false);
      expect(f.seqno).toBe(BigInt(i));
      expect(f.signaled).toBe(false);
      expect(binding.fenceRefcount(f.handle)).toBe(1);
      f.dispose();
    }
    // Some fences disposed, some not, in the same block: the live ones keep working.
    const mixed = Array.from({ length: 130 }, () => new Fence());
    for (let i = 0; i < mixed.length; i += 2) mixed[i]!.dispose();
    for (let i = 1; i < mixed.length; i += 2) {
      mixed[i]!.signal();
      expect(mixed[i]!.signaled).toBe(true);
      mixed[i]!.dispose();
    }
  });

  it('Symbol.dispose drops the reference', () => {
    const f = new Fence();
    const g = Fence.importHandle(f.exportHandle());
    expect(binding.fenceRefcount(g.handle)).toBe(2);
    {
      f[Symbol.dispose]();
    }
    diagnostics.rcuBarrier(); // flushes batched puts
    expect(binding.fenceRefcount(g.handle)).toBe(1);
    g.dispose();
  });

  it('importHandle adopts exactly once and refuses unknown handles', () => {
    const f = new Fence();
    const h = f.exportHandle();
    const g = Fence.importHandle(h);
    expect(g.is(f)).toBe(true);
    expectDmaBufError(() => Fence.importHandle(h), 'EINVAL');
    expectDmaBufError(() => Fence.importHandle(12345n), 'EINVAL');
    f.dispose();
    g.dispose();
  });

  it('a garbage-collected Fence releases its reference (finalizer per block)', () => {
    const script = `
      const { Fence, diagnostics } = require(${JSON.stringify(require.resolve('../dist/index.js'))});
      const { binding } = require(${JSON.stringify(require.resolve('../dist/internal/binding.js'))});
      const keep = new Fence();
      (function () { for (let i = 0; i < 1200; i++) Fence.importHandle(keep.exportHandle()); })();
      const h = keep.handle;
      const before = binding.fenceRefcount(h);
      (async () => {
        for (let i = 0; i < 50 && binding.fenceRefcount(h) > 512; i++) { gc(); await new Promise((r) => setImmediate(r)); }
        console.log(JSON.stringify({ before, after: binding.fenceRefcount(h) }));
      })();
    `;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const { before, after } = JSON.parse(r.stdout) as { before: number; after: number };
    expect(before).toBe(1201);
    // Blocks whose fences are all garbage were finalized. A block with a live
    // fence keeps its dead siblings' references (at most 255), and the block
    // being filled is still referenced: at most 1 + 255 + 256 may remain.
    expect(after).toBeLessThanOrEqual(512);
  });

  it('FenceLock: fences share it, and it outlives its JS object', () => {
    const lock = new FenceLock();
    const a = new Fence({ lock, context: 3n, seqno: 1 });
    const b = new Fence({ lock, context: 3n, seqno: 2 });
    expect(a.flags.inlineLock).toBe(false);
    lock.dispose();
    expectDmaBufError(() => new Fence({ lock }), 'EBADF');
    let ran = 0;
    a.addCallback(() => ran++);
    a.signal();
    b.signal();
    expect(ran).toBe(1);
    // external-lock fences keep their ops: their release drops the lock reference
    expect(a.opsDetached).toBe(false);
    expect(a.driverName).toBe('detached-driver');
    a.dispose();
    b.dispose();
    diagnostics.rcuBarrier();
  });

  it('DmaBufError carries code and negative errno', () => {
    const e = new DmaBufError('EINVAL', 'x');
    expect(e.errno).toBe(-22);
    expect(e.message).toBe('EINVAL: x');
    expect(new DmaBufError(-2, 'y').code).toBe('ENOENT');
  });

  it('many waits and callbacks leave nothing pending', async () => {
    const fs = Array.from({ length: 100 }, () => new Fence());
    const ps = fs.map((f) => f.wait({ timeout: 10000 }));
    for (const f of fs) f.signal();
    expect((await Promise.all(ps)).every(Boolean)).toBe(true);
    for (const f of fs) f.dispose();
    await sleep(1);
    diagnostics.rcuBarrier();
    expect(diagnostics.deferredPending()).toBe(0);
  });
});
