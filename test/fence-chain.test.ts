// dma-buf-fence-chain (st-dma-fence-chain.c, 11 cases) against the public API.
// The kernel's mock fences are plain Fences here; its threads are timers, and
// find_race uses real worker threads.
import { describe, expect, it } from 'vitest';
import { DmaBufError, Fence, FenceChain } from '../lib';
import { expectDmaBufError, sleep } from './helpers';

interface Chains {
  fences: Fence[];
  chains: FenceChain[];
  tail: FenceChain;
}

function chainsInit(count: number, seqno: (i: number) => number): Chains {
  const fences: Fence[] = [];
  const chains: FenceChain[] = [];
  let tail: FenceChain | null = null;
  for (let i = 0; i < count; i++) {
    const f = new Fence();
    const c: FenceChain = new FenceChain(tail, f, seqno(i));
    c.enableSignaling();
    fences.push(f);
    chains.push(c);
    tail = c;
  }
  return { fences, chains, tail: tail! };
}

function chainsFini(fc: Chains): void {
  for (const f of fc.fences) {
    f.signal();
    f.dispose();
  }
  for (const c of fc.chains) c.dispose();
}

const inc = (i: number): number => i + 1;
const inc2 = (i: number): number => 2 * i + 2;

// find_seqno from `from` must succeed and return `want` (a node, or null).
function expectFound(from: FenceChain, seqno: number, want: Fence | null): void {
  const r = from.findSeqno(seqno);
  if (want === null) expect(r).toBeNull();
  else {
    expect(r).not.toBeNull();
    expect(r!.is(want)).toBe(true);
  }
  r?.dispose();
}

describe('dma-buf-fence-chain', () => {
  it('sanitycheck', () => {
    const f = new Fence();
    const c = new FenceChain(null, f, 1);
    c.enableSignaling();
    expect(c.signaled).toBe(false);
    f.signal();
    expect(c.signaled).toBe(true);
    f.dispose();
    c.dispose();
  });

  it('find_seqno', () => {
    const fc = chainsInit(64, inc);
    expectFound(fc.tail, 0, fc.tail); // seqno 0 is a no-op: the node itself
    for (let i = 0; i < 64; i++) {
      expectFound(fc.tail, i + 1, fc.chains[i]!);
      expectFound(fc.chains[i]!, i + 1, fc.chains[i]!);
      expectDmaBufError(() => fc.chains[i]!.findSeqno(i + 2), 'EINVAL');
      if (i > 0) expectFound(fc.chains[i]!, i, fc.chains[i - 1]!);
    }
    chainsFini(fc);
  });

  it('find_signaled', () => {
    const fc = chainsInit(2, inc);
    fc.fences[0]!.signal();
    const r = fc.tail.findSeqno(1);
    expect(r === null || r.is(fc.chains[0]!)).toBe(true);
    r?.dispose();
    chainsFini(fc);
  });

  it('find_out_of_order', () => {
    const fc = chainsInit(3, inc);
    fc.fences[1]!.signal();
    expectFound(fc.tail, 2, fc.chains[0]!); // link 2 collected, link 1 still pending
    chainsFini(fc);
  });

  it('find_gap', () => {
    const fc = chainsInit(64, inc2);
    for (let i = 0; i < 64; i++) {
      expectFound(fc.tail, 2 * i + 1, fc.chains[i]!);
      expectFound(fc.chains[i]!, 2 * i + 2, fc.chains[i]!);
    }
    chainsFini(fc);
  });

  it('find_race (worker threads)', async () => {
    const { Worker } = await import('node:worker_threads');
    const len = 1024;
    const fc = chainsInit(len, inc);
    const lib = require.resolve('../dist/index.js');
    const workers = [0, 1].map(
      () =>
        new Worker(
          `const { workerData, parentPort } = require('node:worker_threads');
           const { Fence, FenceChain } = require(workerData.lib);
           const tail = FenceChain.importHandle(workerData.tail);
           const fences = workerData.fences.map((h) => Fence.importHandle(h));
           const len = fences.length;
           const end = Date.now() + workerData.ms;
           let err = 0, loops = 0;
           while (Date.now() < end && !err) {
             const seqno = 1 + Math.floor(Math.random() * len);
             let r;
             try { r = tail.findSeqno(seqno); } catch (e) { err = 'find ' + seqno + ': ' + e.message; break; }
             if (r && r.seqno === BigInt(seqno)) {
               try { const again = r.findSeqno(seqno); again && again.dispose(); }
               catch (e) { err = 'refind ' + seqno + ': ' + e.message; }
             }
             r && r.dispose();
             fences[Math.floor(Math.random() * (len - 1))].signal();
             loops++;
           }
           for (const f of fences) f.dispose();
           tail.dispose();
           parentPort.postMessage({ err, loops });`,
          {
            eval: true,
            workerData: {
              lib,
              ms: 300,
              tail: fc.tail.exportHandle(),
              fences: fc.fences.map((f) => f.exportHandle()),
            },
          },
        ),
    );
    const results = await Promise.all(
      workers.map((w) => new Promise<{ err: string | 0; loops: number }>((res, rej) => {
        w.once('message', res);
        w.once('error', rej);
      })),
    );
    for (const r of results) {
      expect(r.err).toBe(0);
      expect(r.loops).toBeGreaterThan(0);
    }
    await Promise.all(workers.map((w) => w.terminate()));
    chainsFini(fc);
  });

  it('signal_forward', () => {
    const fc = chainsInit(64, inc);
    for (let i = 0; i < 64; i++) {
      fc.fences[i]!.signal();
      expect(fc.chains[i]!.isSignaled()).toBe(true);
      if (i + 1 < 64) expect(fc.chains[i + 1]!.isSignaled()).toBe(false);
    }
    chainsFini(fc);
  });

  it('signal_backward', () => {
    const fc = chainsInit(64, inc);
    for (let i = 63; i > 0; i--) {
      fc.fences[i]!.signal();
      expect(fc.chains[i]!.isSignaled()).toBe(false);
    }
    fc.fences[0]!.signal();
    for (const c of fc.chains) expect(c.isSignaled()).toBe(true);
    chainsFini(fc);
  });

  // wait_*: the kernel's waiter thread is a pending wait() on the tail; the
  // signaller runs from timers, a slice of the fences per macrotask.
  async function waitTest(order: (n: number) => number[]): Promise<void> {
    const n = 1024; // the kernel uses 4096; shorter on shared machines
    const fc = chainsInit(n, inc);
    const waiting = fc.tail.wait({ timeout: 10000 });
    await sleep(1);
    const idx = order(n);
    for (let k = 0; k < idx.length; k += 512) {
      for (const i of idx.slice(k, k + 512)) fc.fences[i]!.signal();
      await new Promise((r) => setImmediate(r));
    }
    expect(await waiting).toBe(true);
    chainsFini(fc);
  }

  it('wait_forward', () => waitTest((n) => [...Array(n).keys()]));
  it('wait_backward', () => waitTest((n) => [...Array(n).keys()].reverse()));
  it('wait_random', () =>
    waitTest((n) => {
      const a = [...Array(n).keys()];
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [a[i], a[j]] = [a[j]!, a[i]!];
      }
      return a;
    }));
});

describe('FenceChain from JS', () => {
  it('a chain of 100k links is released without a stack overflow', async () => {
    let tail: FenceChain | null = null;
    const fences: Fence[] = [];
    for (let i = 0; i < 100_000; i++) {
      const f = new Fence();
      const c: FenceChain = new FenceChain(tail, f, i + 1);
      tail?.dispose();
      tail = c;
      fences.push(f);
    }
    expect(tail!.seqno).toBe(100000n);
    expect(tail!.isSignaled()).toBe(false);
    for (const f of fences) f.dispose(); // the chain holds the only references now
    tail!.dispose(); // drops 100k nodes iteratively
    await sleep(5);
    const probe = new FenceChain(null, new Fence(), 1);
    expect(probe.seqno).toBe(1n);
    probe.dispose();
  });

  it('exposes fence, prev, walk() and is()', () => {
    const f1 = new Fence();
    const f2 = new Fence();
    const c1 = new FenceChain(null, f1, 1);
    const c2 = new FenceChain(c1, f2, 2);
    expect(FenceChain.is(c2)).toBe(true);
    expect(FenceChain.is(f1)).toBe(false);
    expect(c2.context).toBe(c1.context);
    expect(c2.fence.is(f2)).toBe(true);
    expect(c2.prev!.is(c1)).toBe(true);
    expect(c1.prev).toBeNull();
    expect([...c2.walk()].map((c) => c.seqno)).toEqual([2n, 1n]);
    f1.signal();
    expect([...c2.walk()].map((c) => c.seqno)).toEqual([2n]); // the signalled link is collected
    expect(c2.prev).toBeNull();
    // a point that is not later starts a new context, with the seqno raised
    const c3 = new FenceChain(c2, new Fence(), 1);
    expect(c3.context).not.toBe(c2.context);
    expect(c3.seqno).toBe(2n);
    for (const x of [f1, f2, c1, c2, c3]) x.dispose();
  });

  it('importHandle keeps the subclass, and refuses the wrong kind', () => {
    const f = new Fence();
    const c = new FenceChain(null, f, 1);
    const back = FenceChain.importHandle(c.exportHandle());
    expect(back).toBeInstanceOf(FenceChain);
    expect(back.is(c)).toBe(true);
    expectDmaBufError(() => FenceChain.importHandle(f.exportHandle()), 'EINVAL');
    for (const x of [f, c, back]) x.dispose();
  });

  it('findSeqno on a future point is DmaBufError EINVAL', () => {
    const c = new FenceChain(null, new Fence(), 5);
    const e = expectDmaBufError(() => c.findSeqno(6), 'EINVAL');
    expect(e).toBeInstanceOf(DmaBufError);
    expect(e.syscall).toBe('dma_fence_chain_find_seqno');
    c.dispose();
  });
});
