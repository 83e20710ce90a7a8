// dma-buf-fence-chain: the kernel's st-dma-fence-chain.c cases (all 11). Its
// kthreads are worker threads (find_race) or timers (wait_*).
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { Fence, FenceChain } from '../../index';
import type { SelftestSuite } from '../types';
import { def, inKernelOnly, LIB, throwsErrno } from './util';

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

function expectFound(from: FenceChain, seqno: number, want: Fence | null): void {
  const r = from.findSeqno(seqno);
  if (want === null) assert.equal(r, null, `find_seqno(${seqno}) found a node`);
  else {
    assert.notEqual(r, null, `find_seqno(${seqno}) found nothing`);
    assert.ok(r!.is(want), `find_seqno(${seqno}) found the wrong node (seqno ${r!.seqno})`);
  }
  r?.dispose();
}

const FIND_RACE_SRC = `
  const { workerData, parentPort } = require('node:worker_threads');
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
  parentPort.postMessage({ err, loops });
`;

async function waitTest(order: (n: number) => number[]): Promise<void> {
  const n = 1024; // the kernel uses 4096
  const fc = chainsInit(n, inc);
  const waiting = fc.tail.wait({ timeout: 10000 });
  await new Promise((r) => setTimeout(r, 1));
  const idx = order(n);
  for (let k = 0; k < idx.length; k += 512) {
    for (const i of idx.slice(k, k + 512)) fc.fences[i]!.signal();
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(await waiting, true, 'the tail did not signal');
  chainsFini(fc);
}

export const fenceChainSuite: SelftestSuite = {
  name: 'dma-buf-fence-chain',
  description: 'dma_fence_chain: find_seqno, signalling order, waits (st-dma-fence-chain.c)',
  unavailable: inKernelOnly('dma_fence_chain'),
  cases: [
    def('sanitycheck', () => {
      const f = new Fence();
      const c = new FenceChain(null, f, 1);
      c.enableSignaling();
      assert.equal(c.signaled, false);
      f.signal();
      assert.equal(c.signaled, true);
      f.dispose();
      c.dispose();
    }),
    def('find_seqno', () => {
      const fc = chainsInit(64, inc);
      expectFound(fc.tail, 0, fc.tail);
      for (let i = 0; i < 64; i++) {
        expectFound(fc.tail, i + 1, fc.chains[i]!);
        expectFound(fc.chains[i]!, i + 1, fc.chains[i]!);
        throwsErrno(() => fc.chains[i]!.findSeqno(i + 2), 'EINVAL');
        if (i > 0) expectFound(fc.chains[i]!, i, fc.chains[i - 1]!);
      }
      chainsFini(fc);
    }),
    def('find_signaled', () => {
      const fc = chainsInit(2, inc);
      fc.fences[0]!.signal();
      const r = fc.tail.findSeqno(1);
      assert.ok(r === null || r.is(fc.chains[0]!));
      r?.dispose();
      chainsFini(fc);
    }),
    def('find_out_of_order', () => {
      const fc = chainsInit(3, inc);
      fc.fences[1]!.signal();
      expectFound(fc.tail, 2, fc.chains[0]!);
      chainsFini(fc);
    }),
    def('find_gap', () => {
      const fc = chainsInit(64, inc2);
      for (let i = 0; i < 64; i++) {
        expectFound(fc.tail, 2 * i + 1, fc.chains[i]!);
        expectFound(fc.chains[i]!, 2 * i + 2, fc.chains[i]!);
      }
      chainsFini(fc);
    }),
    def('find_race', async () => {
      const fc = chainsInit(1024, inc);
      const workers = [0, 1].map(
        () =>
          new Worker(FIND_RACE_SRC, {
            eval: true,
            workerData: { lib: LIB, ms: 300, tail: fc.tail.exportHandle(), fences: fc.fences.map((f) => f.exportHandle()) },
          }),
      );
      const results = await Promise.all(
        workers.map(
          (w) =>
            new Promise<{ err: string | 0; loops: number }>((res, rej) => {
              w.once('message', res);
              w.once('error', rej);
            }),
        ),
      );
      await Promise.all(workers.map((w) => w.terminate()));
      for (const r of results) {
        assert.equal(r.err, 0);
        assert.ok(r.loops > 0);
      }
      chainsFini(fc);
    }),
    def('signal_forward', () => {
      const fc = chainsInit(64, inc);
      for (let i = 0; i < 64; i++) {
        fc.fences[i]!.signal();
        assert.equal(fc.chains[i]!.isSignaled(), true, `link ${i} not signalled`);
        if (i + 1 < 64) assert.equal(fc.chains[i + 1]!.isSignaled(), false, `link ${i + 1} signalled early`);
      }
      chainsFini(fc);
    }),
    def('signal_backward', () => {
      const fc = chainsInit(64, inc);
      for (let i = 63; i > 0; i--) {
        fc.fences[i]!.signal();
        assert.equal(fc.chains[i]!.isSignaled(), false, `link ${i} signalled before link 0`);
      }
      fc.fences[0]!.signal();
      for (const c of fc.chains) assert.equal(c.isSignaled(), true);
      chainsFini(fc);
    }),
    def('wait_forward', () => waitTest((n) => [...Array(n).keys()])),
    def('wait_backward', () => waitTest((n) => [...Array(n).keys()].reverse())),
    def('wait_random', () =>
      waitTest((n) => {
        const a = [...Array(n).keys()];
        for (let i = n - 1; i > 0; i--) {
          const j = Math.floor(Math.random() * (i + 1));
          [a[i], a[j]] = [a[j]!, a[i]!];
        }
        return a;
      }),
    ),
  ],
};
