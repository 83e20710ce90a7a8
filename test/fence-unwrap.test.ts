// dma-buf-fence-unwrap (st-dma-fence-unwrap.c, 10 cases + dedup_empty): the
// cases live in lib/selftest/suites/fence_unwrap.ts (`dmabuf selftest --suite
// dma-buf-fence-unwrap`) and run here from the sources; below, FenceArray's
// error sentinel and merge's signalled result.
import { describe, expect, it } from 'vitest';
import { Fence, FenceArray, FenceChain, dedup, merge, unwrap } from '../lib';
import { fenceUnwrapSuite } from '../lib/selftest/suites/fence_unwrap';
import { describeSuite } from './selftest-cases';

// __mock_fence(ctx, seqno) / mock_fence(): a new context, seqno 1.
function mockFence(context?: bigint, seqno = 1): Fence {
  const f = new Fence({ context: context ?? Fence.allocContext(), seqno });
  f.enableSignaling();
  return f;
}
const mockArray = (...fs: Fence[]): FenceArray => new FenceArray(fs);

describeSuite(fenceUnwrapSuite);

describe('merge / unwrap / dedup extras', () => {
  it('merge of signalled fences is a new signalled stub with the latest timestamp', () => {
    const a = new Fence();
    const b = new Fence();
    a.signal(1000n);
    b.signal(5000n);
    const m = merge(a, b)!;
    expect(m.signaled).toBe(true);
    expect(m.is(a) || m.is(b)).toBe(false);
    expect(m.timestamp).toBe(5000n);
    expect(merge()).toBeNull();
    for (const x of [a, b, m]) x.dispose();
  });

  it('merge returns the single pending leaf', () => {
    const a = new Fence();
    const b = new Fence();
    b.signal();
    const m = merge(a, b)!;
    expect(m.is(a)).toBe(true);
    expect(m.constructor).toBe(Fence);
    for (const x of [a, b, m]) x.dispose();
  });

  it('dedup keeps the latest per context, ascending', () => {
    const c0 = Fence.allocContext();
    const c1 = Fence.allocContext();
    const fs = [mockFence(c1, 1), mockFence(c0, 3), mockFence(c1, 7), mockFence(c0, 2)];
    const d = dedup(fs);
    expect(d.map((f) => [f.context, f.seqno])).toEqual([
      [c0, 3n],
      [c1, 7n],
    ]);
    for (const x of [...fs, ...d]) x.dispose();
  });

  it('unwrap stopped early releases the rest; each leaf is its own reference', () => {
    const [f1, f2, f3] = [mockFence(), mockFence(), mockFence()];
    const a = mockArray(f1, f2, f3);
    const before = [f1, f2, f3].map((f) => (f as unknown as { handle: number }).handle);
    void before;
    for (const leaf of unwrap(a)) {
      leaf.dispose();
      break;
    }
    const leaves = [...unwrap(a)];
    leaves[0]!.dispose();
    expect(leaves[1]!.is(f2)).toBe(true); // still valid after another leaf's dispose
    for (const x of [...leaves, f1, f2, f3, a]) x.dispose();
  });
});

describe('FenceArray', () => {
  it('hides the pending-error sentinel: error and status never show 1 while pending', () => {
    const [f1, f2] = [new Fence(), new Fence()];
    const a = new FenceArray([f1, f2]);
    expect(a.error).toBe(0);
    expect(a.status).toBe(0);
    a.enableSignaling();
    expect(a.error).toBe(0);
    expect(a.status).toBe(0);
    f1.setError('EIO');
    f1.signal();
    expect(a.error).toBe(-5); // first member error wins while pending
    expect(a.status).toBe(0);
    f2.setError('ENODEV');
    f2.signal();
    expect(a.signaled).toBe(true);
    expect(a.error).toBe(-5);
    expect(a.status).toBe(-5);
    for (const x of [f1, f2, a]) x.dispose();
  });

  it('signals with status 1 when no member failed', async () => {
    const [f1, f2] = [new Fence(), new Fence()];
    const a = new FenceArray([f1, f2], { context: 42n, seqno: 7 });
    expect([a.context, a.seqno]).toEqual([42n, 7n]);
    expect(a.driverName).toBe('dma_fence_array');
    const w = a.wait({ timeout: 5000 });
    f2.signal();
    f1.signal();
    expect(await w).toBe(true);
    expect([a.status, a.error]).toEqual([1, 0]);
    for (const x of [f1, f2, a]) x.dispose();
  });

  it('members, length, matchContext, is()', () => {
    const ctx = Fence.allocContext();
    const [f1, f2] = [new Fence({ context: ctx, seqno: 1 }), new Fence({ context: ctx, seqno: 2 })];
    const a = new FenceArray([f1, f2]);
    expect(FenceArray.is(a)).toBe(true);
    expect(FenceArray.is(f1)).toBe(false);
    expect(a.length).toBe(2);
    const ms = a.fences;
    expect(ms[0]!.is(f1) && ms[1]!.is(f2)).toBe(true);
    expect(a.matchContext(ctx)).toBe(true);
    expect(a.matchContext(ctx + 1n)).toBe(false);
    for (const x of [f1, f2, a, ...ms]) x.dispose();
  });
});

describe('references', () => {
  it('unwrap, merge, members, chains and Resv snapshots leave no reference behind', async () => {
    const { binding } = await import('../lib/internal/binding');
    const { flushPuts } = await import('../lib/internal/handles');
    const { Resv } = await import('../lib');
    const [f1, f2] = [new Fence({ context: Fence.allocContext() }), new Fence({ context: Fence.allocContext() })];
    const refs = (): number[] => [f1, f2].map((f) => binding.fenceRefcount(f.handle));
    const base = refs();
    {
      const a = new FenceArray([f1, f2]);
      const c1 = new FenceChain(null, f1, 1);
      const c = new FenceChain(c1, a, 2);
      const m = merge(a, c)!;
      const out = [...unwrap(c), ...unwrap(m), ...a.fences, c.fence, c.prev!, ...c.walk()];
      const r = new Resv();
      r.lock();
      r.reserveFences(2);
      r.addFence(f1, 'read');
      r.addFence(f2, 'write');
      out.push(...r.fences('bookkeep'), ...r.getFences('read'), r.getSingleton('read')!);
      r.unlock();
      for (const x of [a, c1, c, m, ...out, r]) x.dispose();
    }
    flushPuts();
    binding.rcuBarrier();
    expect(refs()).toEqual(base);
    f1.dispose();
    f2.dispose();
  });
});
