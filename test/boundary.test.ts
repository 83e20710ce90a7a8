// The JS boundary (issue 9): each case here once crashed, hung or misreported
// from plain JavaScript. Native code validates every value JS hands it; JS
// never holds a pointer native code trusts; teardown is a normal path.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { binding } from '../lib/internal/binding';
import { FenceArray, FenceChain, dedup, merge } from '../lib/containers';
import { DmaBufError } from '../lib/errors';
import { Fence } from '../lib/fence';
import { exportVfioBuffer } from '../lib/platform';
import { Resv } from '../lib/resv';
import { SwSyncTimeline } from '../lib/sync_file';
import { expectArgError, expectDmaBufError, sleep } from './helpers';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const dist = path.join(__dirname, '..', 'dist', 'index.js');

async function collect(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

describe('callback delivery re-entering the API', () => {
  it('a callback that disposes its fence before the next callback runs', () => {
    const f = new Fence();
    const seen: string[] = [];
    f.addCallback(() => {
      seen.push('a');
      f.dispose();
    });
    f.addCallback(() => seen.push('b'));
    f.signal();
    // The second callback had fired natively before the first ran: it is
    // delivered (the kernel's remove_callback would say "already running").
    expect(seen).toEqual(['a', 'b']);
    expect(f.disposed).toBe(true);
  });

  it('waitAny with the same fence twice, then signal', async () => {
    const f = new Fence();
    const p = Fence.waitAny([f, f]);
    f.signal();
    expect(await p).toBe(0);
    f.dispose();
  });

  it('a callback that aborts another pending wait on the same fence', async () => {
    const f = new Fence();
    const ac = new AbortController();
    const other = f.wait({ signal: ac.signal });
    f.addCallback(() => ac.abort());
    const mine = f.wait();
    f.signal();
    expect(await mine).toBe(true);
    // Aborting after the fence fired cannot cancel the wait any more.
    expect(await other).toBe(true);
    f.dispose();
  });

  it('waitAny([a, b]) while a worker signals both', async () => {
    for (let round = 0; round < 20; round++) {
      const a = new Fence();
      const b = new Fence();
      const w = new Worker(
        `const { workerData } = require('node:worker_threads');
         const { Fence } = require(workerData.dist);
         const a = Fence.importHandle(workerData.a), b = Fence.importHandle(workerData.b);
         a.signal(); b.signal(); a.dispose(); b.dispose();`,
        { eval: true, workerData: { dist, a: a.exportHandle(), b: b.exportHandle() } },
      );
      const exited = new Promise((r) => w.once('exit', r));
      const i = await Fence.waitAny([a, b]);
      expect([0, 1]).toContain(i);
      await exited;
      a.dispose();
      b.dispose();
    }
  }, 90000); // 20 workers: ~13 s on a loaded machine, over 30 s with the ASan addon there

  it('removeCallback after delivery, and with a callback of another fence', () => {
    const f = new Fence();
    const g = new Fence();
    const cb = f.addCallback(() => {})!;
    f.signal();
    expect(f.removeCallback(cb)).toBe(false);
    const cg = g.addCallback(() => {})!;
    expect(f.removeCallback(cg)).toBe(false); // not one of f's
    expect(g.removeCallback(cg)).toBe(true);
    f.dispose();
    g.dispose();
  });
});

describe('handles cannot be forged', () => {
  it('a Proxy init object never reaches an adoption path', () => {
    const answers = [4096, 1, 2 ** 40, -1, NaN];
    for (const n of answers) {
      let f: Fence | undefined;
      try {
        f = new Fence(new Proxy({}, { get: (_t, k) => (typeof k === 'symbol' ? n : undefined) }) as never);
      } catch (e) {
        expect(e).toBeInstanceOf(TypeError);
        continue;
      }
      // A new default fence, nothing adopted.
      expect(f.status).toBe(0);
      expect(f.context).toBe(0n);
      f.dispose();
    }
  });

  it("a Proxy answering with another fence's token adopts nothing", () => {
    const victim = new Fence();
    const token = victim.handle;
    const f = new Fence(new Proxy({}, { get: (_t, k) => (typeof k === 'symbol' ? token : undefined) }) as never);
    expect(f.is(victim)).toBe(false);
    f.dispose();
    expect(victim.status).toBe(0); // still ours
    victim.dispose();
  });

  it('redefining a fence\'s handle property changes nothing native code sees', () => {
    const a = new Fence();
    const b = new Fence();
    Object.defineProperty(a, 'handle', { value: 4096 });
    Object.defineProperty(b, 'handle', { get: () => a.handle });
    const arr = new FenceArray([a, b]);
    expect(arr.fences.length).toBe(2);
    a.signal();
    expect(arr.isSignaled()).toBe(false); // b is still b
    b.signal();
    expect(arr.isSignaled()).toBe(true);
    for (const f of [a, b, arr]) f.dispose();
  });

  it('raw binding calls with arbitrary numbers are refused, never dereferenced', () => {
    const live = new Fence();
    // Never a live token: no generation 0, a generation this slot has not
    // reached, fractions, negatives, past 2^53.
    const values = [0, 1, 4096, live.handle + 2 ** 26 * 1000, 2 ** 52, -1, NaN, Infinity, 1.5, 2 ** 53, -0];
    for (const v of values) {
      expectDmaBufError(() => binding.fenceSignal(v), 'EBADF');
      expectDmaBufError(() => binding.fenceStatus(v), 'EBADF');
    }
    binding.fencePutMany(Float64Array.from(values), values.length); // skipped, not freed
    expect(live.status).toBe(0);
    live.dispose();
  });

  it('a disposed fence\'s token is dead even if a copy was kept', async () => {
    const f = new Fence();
    const token = f.handle;
    f.dispose();
    await Promise.resolve(); // dispose() batches its puts until a microtask
    const g = new Fence(); // may reuse the slot: the generation differs
    expectDmaBufError(() => binding.fenceSignal(token), 'EBADF');
    expect(g.status).toBe(0);
    g.dispose();
  });
});

describe('argument and receiver errors', () => {
  it('sparse arrays are TypeErrors naming the hole', () => {
    expectArgError(() => new FenceArray(new Array(2)), TypeError, 'ERR_INVALID_ARG_TYPE');
    // eslint-disable-next-line no-sparse-arrays
    expectArgError(() => dedup([, new Fence()] as Fence[]), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => merge(...(new Array(1) as Fence[])), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => Fence.waitAnySync(new Array(1)), TypeError, 'ERR_INVALID_ARG_TYPE');
  });

  it('Fence methods called on the wrong receiver are TypeErrors', () => {
    const r = new Resv();
    const fake = Object.create(Fence.prototype) as Fence;
    for (const self of [r, {}, fake, null]) {
      expectArgError(() => Fence.prototype.signal.call(self), TypeError, 'ERR_INVALID_ARG_TYPE');
      expectArgError(() => Fence.prototype.dispose.call(self), TypeError, 'ERR_INVALID_ARG_TYPE');
      expectArgError(
        () => Object.getOwnPropertyDescriptor(Fence.prototype, 'status')!.get!.call(self),
        TypeError,
        'ERR_INVALID_ARG_TYPE',
      );
    }
    r.dispose();
  });

  it('a typed importHandle of the wrong kind does not consume the handle', () => {
    const f = new Fence();
    const h = f.exportHandle();
    expectDmaBufError(() => FenceArray.importHandle(h), 'EINVAL');
    expectDmaBufError(() => FenceChain.importHandle(h), 'EINVAL');
    const g = Fence.importHandle(h); // the retry with the right type works
    expect(g.is(f)).toBe(true);
    expectDmaBufError(() => Fence.importHandle(h), 'EINVAL'); // once
    f.dispose();
    g.dispose();
  });

  it('native failures are DmaBufErrors with code, errno and syscall', () => {
    const f = new Fence();
    f.dispose();
    const e = expectDmaBufError(() => f.signal(), 'EBADF');
    expect(e.errno).toBe(-9);
    try {
      binding.fenceRemoveCallback(new Fence().handle, 12345);
    } catch (err) {
      expect(err).toBeInstanceOf(DmaBufError);
    }
  });
});

describe('reservation locks', () => {
  it("exportVfioBuffer: map() under the caller's own resv lock is EDEADLK, not a hang", () => {
    const b = exportVfioBuffer(4096);
    b.resv.lock();
    expectDmaBufError(() => b.map(), 'EDEADLK');
    b.resv.unlock();
    expect(b.map().byteLength).toBe(4096);
    b.close();
  });

  it('a locked Resv that is garbage-collected releases its lock (with a warning)', async () => {
    const shared = new Resv();
    const h = shared.exportHandle();
    const warns = binding.warnCount();
    (() => {
      const mine = Resv.importHandle(h);
      mine.lock();
      expect(shared.locked).toBe(true);
    })();
    await collect();
    await sleep(10);
    await collect();
    expect(shared.locked).toBe(false);
    expect(binding.warnCount()).toBeGreaterThan(warns);
    shared.lock(); // would block for ever if the lock had leaked
    shared.unlock();
    shared.dispose();
  });
});

describe('exported handles', () => {
  it('a handle posted by a worker that then exits can still be imported', async () => {
    const w = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const { Fence } = require(workerData.dist);
       const f = new Fence();
       parentPort.postMessage(f.exportHandle());
       f.dispose();`,
      { eval: true, workerData: { dist } },
    );
    const message = new Promise<bigint>((r) => w.once('message', r));
    const exited = new Promise((r) => w.once('exit', r));
    const h = await message;
    await exited;
    const f = Fence.importHandle(h);
    expect(f.status).toBe(0);
    f.signal();
    f.dispose();
  });

  it('a handle exported by a worker and never imported is released after the grace period', async () => {
    // The worker exports its timeline and never lets anyone import it: only the
    // registry's reference keeps the timeline alive, so its pending point
    // (imported here) shows when that reference goes (ENOENT, as at close()).
    const w = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const { SwSyncTimeline } = require(workerData.dist);
       const tl = new SwSyncTimeline();
       const sf = tl.createFence(1);
       const f = sf.fence;
       parentPort.postMessage({ point: f.exportHandle(), timeline: tl.exportHandle() });
       f.dispose(); sf.close(); tl.close();`,
      { eval: true, workerData: { dist } },
    );
    const exited = new Promise((r) => w.once('exit', r));
    const m = await new Promise<{ point: bigint; timeline: bigint }>((r) => w.once('message', r));
    const point = Fence.importHandle(m.point);
    await exited;
    // Expired orphans are dropped at the next export or import of their kind.
    const sweep = (): void => expectDmaBufError(() => SwSyncTimeline.importHandle(2n ** 64n - 1n), 'EINVAL');
    sweep();
    expect(point.status).toBe(0); // within the grace period: still importable, still alive
    const t0 = Date.now();
    while (point.status === 0 && Date.now() - t0 < 25000) {
      await sleep(250);
      sweep();
    }
    expect(point.status).toBe(-2); // -ENOENT: the orphaned export was dropped
    expect(Date.now() - t0).toBeLessThan(25000);
    expectDmaBufError(() => SwSyncTimeline.importHandle(m.timeline), 'EINVAL'); // gone for good
    point.dispose();
  }, 40000);
});

describe('buffers that are never closed', () => {
  it('external memory accounting lets GC close forgotten buffers before fds run out', () => {
    // 3000 forgotten 4 KiB buffers under a 256-fd limit: only GC can close them.
    const script = `
      const { openHeap } = require(${JSON.stringify(dist)});
      const heap = openHeap('system', { backend: 'emulated' });
      (async () => {
        for (let i = 0; i < 3000; i++) {
          heap.alloc(4096);
          if (i % 16 === 15) await new Promise((r) => setImmediate(r));
        }
        console.log('ok');
      })().catch((e) => { console.log('failed', e.code, e.message); process.exit(1); });`;
    const r = spawnSync('sh', ['-c', `ulimit -n 256 && exec "${process.execPath}" -e "$0"`, script], {
      encoding: 'utf8',
      timeout: 60000,
    });
    expect(r.stdout.trim(), r.stderr).toBe('ok');
  });
});

describe('callback registration that fails', () => {
  it('ENOMEM while registering rejects wait() and throws from addCallback, never "already signalled"', async () => {
    const f = new Fence();
    binding.diagFailCallbackAlloc(1, 2);
    try {
      let caught: unknown;
      await f.wait({ timeout: 1000 }).catch((e: unknown) => (caught = e));
      expect(caught).toBeInstanceOf(DmaBufError);
      expect((caught as DmaBufError).code).toBe('ENOMEM');
      expect((caught as DmaBufError).syscall).toBe('dma_fence_add_callback');
      expectDmaBufError(() => f.addCallback(() => {}), 'ENOMEM');
    } finally {
      binding.diagFailCallbackAlloc(0, 0);
    }
    expect(f.signaled).toBe(false);
    const p = f.wait();
    f.signal();
    expect(await p).toBe(true);
    f.dispose();
  });
});

describe('fence arrays as in Linux 7.1', () => {
  it('signalOnAny signals with the first member; the seqno is 32 bits', () => {
    const a = new Fence();
    const b = new Fence();
    const any = new FenceArray([a, b], { signalOnAny: true, seqno: 0xffffffff });
    expect(any.seqno).toBe(0xffffffffn);
    const all = new FenceArray([a, b]);
    b.signal();
    expect(any.isSignaled()).toBe(true);
    expect(all.isSignaled()).toBe(false);
    expectArgError(() => new FenceArray([a], { seqno: 2 ** 32 }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => new FenceArray([a], { signalOnAny: 1 as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    for (const f of [a, b, any, all]) f.dispose();
  });

  it("describe() polls like the kernel's: a finished array reads signalled", () => {
    const a = new Fence();
    const arr = new FenceArray([a]);
    a.signal();
    expect(arr.signaled).toBe(false); // nobody enabled signalling on the array
    expect(arr.describe()).toMatch(/ signalled\n$/);
    expect(arr.signaled).toBe(true);
    a.dispose();
    arr.dispose();
  });

  it('the shared stub is older than any fence made after the module loaded', () => {
    const f = new Fence();
    f.signal();
    const m = merge(f, Fence.stub());
    expect(m!.timestamp!).toBe(f.timestamp!);
    expect(Fence.stub().timestamp! < f.timestamp!).toBe(true);
    f.dispose();
    m!.dispose();
  });
});

describe('findings of the fuzzer', () => {
  it("map()'s ArrayBuffer is detached, not left over a dead mapping, when its DmaBuf is collected without close()", () => {
    const script = `
      const { openHeap } = require(${JSON.stringify(dist)});
      let b = openHeap('system', { backend: 'emulated' }).alloc(4096);
      const ab = b.map();
      new Uint8Array(ab)[0] = 7;
      b = null;
      gc();
      setTimeout(() => {
        gc();
        setTimeout(() => console.log(ab.byteLength === 0 && ab.detached !== false ? 'ok' : 'still ' + ab.byteLength), 20);
      }, 50);`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 30000 });
    expect(r.signal, r.stderr).toBe(null);
    expect(r.stdout.trim(), r.stderr).toBe('ok');
  });

  it('an emulated platform is capped at 1 TiB of RAM instead of hanging', async () => {
    const { createPlatform } = await import('../lib/platform');
    expectArgError(() => createPlatform({ ramSize: 2n ** 63n }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => createPlatform({ ramSize: 2n ** 40n + 1n }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => createPlatform({ cmaSize: 2n ** 50n }), RangeError, 'ERR_OUT_OF_RANGE');
  });

  it('runBench refuses bad options before running anything', async () => {
    const { runBench } = await import('../lib/bench');
    expectArgError(() => runBench({ filter: 4096 as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => runBench({ ms: -1 }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => runBench('fence' as never), TypeError, 'ERR_INVALID_ARG_TYPE');
  });
});

describe('waitAny and disposal during delivery', () => {
  it('a fence disposed by a callback before waitAny resolves does not throw out of the delivery', async () => {
    const a = new Fence();
    const b = new Fence();
    a.addCallback(() => a.dispose());
    const p = Fence.waitAny([a, b]);
    const uncaught: unknown[] = [];
    const onErr = (e: unknown): void => void uncaught.push(e);
    process.on('uncaughtException', onErr);
    try {
      a.signal();
      expect(await p).toBe(0);
      await sleep(5);
    } finally {
      process.off('uncaughtException', onErr);
    }
    expect(uncaught).toEqual([]);
    b.dispose();
  });
});
