// dma-buf-fence-chain (st-dma-fence-chain.c, 11 cases): the cases live in
// lib/selftest/suites/fence_chain.ts (`dmabuf selftest --suite
// dma-buf-fence-chain`) and run here from the sources; below, FenceChain from JS.
import { describe, expect, it } from 'vitest';
import { DmaBufError, Fence, FenceChain } from '../lib';
import { fenceChainSuite } from '../lib/selftest/suites/fence_chain';
import { expectDmaBufError, sleep } from './helpers';
import { describeSuite } from './selftest-cases';

describeSuite(fenceChainSuite);

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
