// dma-buf-fence-unwrap: the kernel's st-dma-fence-unwrap.c cases (7.1: the
// six of 6.12 plus the merge cases added since).
import assert from 'node:assert/strict';
import { Fence, FenceArray, FenceChain, dedup, merge, unwrap } from '../../index';
import type { SelftestSuite } from '../types';
import { def, inKernelOnly } from './util';

function mockFence(context?: bigint, seqno = 1): Fence {
  const f = new Fence({ context: context ?? Fence.allocContext(), seqno });
  f.enableSignaling();
  return f;
}
const mockArray = (...fs: Fence[]): FenceArray => new FenceArray(fs);
const mockChain = (prev: Fence | null, f: Fence): FenceChain => new FenceChain(prev, f, 1);

function expectLeaves(head: Fence, want: Fence[]): void {
  const got = [...unwrap(head)];
  assert.equal(got.length, want.length, 'number of leaves');
  got.forEach((g, i) => assert.ok(g.is(want[i]!), `leaf ${i} is not the expected fence`));
  for (const g of got) g.dispose();
}

export const fenceUnwrapSuite: SelftestSuite = {
  name: 'dma-buf-fence-unwrap',
  description: 'dma_fence_unwrap and dma_fence_unwrap_merge over arrays and chains (st-dma-fence-unwrap.c)',
  unavailable: inKernelOnly('dma_fence_unwrap'),
  cases: [
    def('sanitycheck', () => {
      const f = mockFence();
      const a = mockArray(f);
      const c = mockChain(null, a);
      assert.equal(c.isSignaled(), false);
      for (const x of [f, a, c]) x.dispose();
    }),
    def('unwrap_array', () => {
      const [f1, f2] = [mockFence(), mockFence()];
      const a = mockArray(f1, f2);
      expectLeaves(a, [f1, f2]);
      for (const x of [f1, f2, a]) x.dispose();
    }),
    def('unwrap_chain', () => {
      const [f1, f2] = [mockFence(), mockFence()];
      const c = mockChain(f1, f2);
      expectLeaves(c, [f2, f1]);
      for (const x of [f1, f2, c]) x.dispose();
    }),
    def('unwrap_chain_array', () => {
      const [f1, f2] = [mockFence(), mockFence()];
      const c = mockChain(null, mockArray(f1, f2));
      expectLeaves(c, [f1, f2]);
      for (const x of [f1, f2, c]) x.dispose();
    }),
    def('unwrap_merge', () => {
      const [f1, f2] = [mockFence(), mockFence()];
      const m = merge(f1, f2)!;
      assert.ok(FenceArray.is(m), 'merge of two contexts is an array');
      expectLeaves(m, [f1, f2]);
      for (const x of [f1, f2, m]) x.dispose();
    }),
    def('unwrap_merge_duplicate', () => {
      const f1 = mockFence();
      const m = merge(f1, f1)!;
      assert.ok(m.is(f1), 'merging a fence with itself returns it');
      expectLeaves(m, [f1]);
      f1.dispose();
      m.dispose();
    }),
    def('unwrap_merge_seqno', () => {
      const ctxA = Fence.allocContext();
      const ctxB = Fence.allocContext();
      const f1 = mockFence(ctxB, 1);
      const f2 = mockFence(ctxB, 2);
      const f3 = mockFence(ctxA, 1);
      const m = merge(f1, f2, f3)!;
      expectLeaves(m, [f3, f2]);
      for (const x of [f1, f2, f3, m]) x.dispose();
    }),
    def('unwrap_merge_order', () => {
      const [f1, f2] = [mockFence(), mockFence()];
      const a1 = mockArray(f1, f2);
      const c2 = new FenceChain(mockChain(null, f1), f2, 2);
      expectLeaves(c2, [f2, f1]);
      const a2 = merge(a1, c2)!;
      expectLeaves(a2, [f1, f2]);
      for (const x of [f1, f2, a1, c2, a2]) x.dispose();
    }),
    def('unwrap_merge_complex', () => {
      const [f1, f2] = [mockFence(), mockFence()];
      const f3 = merge(f1, f2)!;
      const f4 = mockArray(f2, f1);
      const stub = Fence.stub();
      const f5 = merge(f3, f4, stub)!;
      expectLeaves(f5, [f1, f2]);
      for (const x of [f1, f2, f3, f4, f5, stub]) x.dispose();
    }),
    def('unwrap_merge_complex_seqno', () => {
      const ctx0 = Fence.allocContext();
      const ctx1 = Fence.allocContext();
      const f1 = mockFence(ctx0, 2);
      const f2 = mockFence(ctx1, 1);
      const f3 = mockFence(ctx0, 1);
      const f4 = mockFence(ctx1, 2);
      const m = merge(mockArray(f1, f2), mockArray(f3, f4))!;
      expectLeaves(m, [f1, f4]);
      for (const x of [f1, f2, f3, f4, m]) x.dispose();
    }),
    def('dedup_empty', () => {
      assert.deepEqual(dedup([]), []);
    }),
  ],
};
