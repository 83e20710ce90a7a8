// dma-buf-resv: the kernel's st-dma-resv.c (sanitycheck, then four cases run
// once per usage: kernel, write, read, bookkeep).
import assert from 'node:assert/strict';
import { Fence, Resv, type ResvUsage } from '../../index';
import type { SelftestCase, SelftestSuite } from '../types';
import { def, inKernelOnly } from './util';

const USAGES: ResvUsage[] = ['kernel', 'write', 'read', 'bookkeep'];

function withFence(usage: ResvUsage, unlock: boolean): { r: Resv; f: Fence } {
  const r = new Resv();
  const f = new Fence();
  r.lock();
  r.reserveFences(1);
  r.addFence(f, usage);
  if (unlock) r.unlock();
  return { r, f };
}

const perUsage = (usage: ResvUsage): SelftestCase[] => [
  def(`test_signaling_${usage}`, () => {
    const { r, f } = withFence(usage, false);
    assert.equal(r.testSignaled(usage), false, 'resv signalled before its fence');
    f.signal();
    assert.equal(r.testSignaled(usage), true, 'resv not signalled after its fence');
    r.unlock();
    f.dispose();
    r.dispose();
  }),
  def(`test_for_each_${usage}`, () => {
    const { r, f } = withFence(usage, false);
    const seen = r.entries(usage);
    assert.equal(seen.length, 1);
    assert.ok(seen[0]![0].is(f));
    assert.equal(seen[0]![1], usage);
    f.signal();
    assert.equal([...r.fences(usage)].length, 1, 'the locked walk includes signalled entries');
    r.unlock();
    for (const [g] of seen) g.dispose();
    f.dispose();
    r.dispose();
  }),
  def(`test_for_each_unlocked_${usage}`, () => {
    const { r, f } = withFence(usage, true);
    const seen = r.entries(usage);
    assert.equal(seen.length, 1);
    assert.ok(seen[0]![0].is(f));
    assert.equal(seen[0]![1], usage);
    f.signal();
    assert.deepEqual([...r.fences(usage)], [], 'unlocked: pending fences only');
    seen[0]![0].dispose();
    f.dispose();
    r.dispose();
  }),
  def(`test_get_fences_${usage}`, () => {
    const { r, f } = withFence(usage, true);
    const got = r.getFences(usage);
    assert.equal(got.length, 1);
    assert.ok(got[0]!.is(f));
    f.signal();
    assert.deepEqual(r.getFences(usage), []);
    got[0]!.dispose();
    f.dispose();
    r.dispose();
  }),
];

export const resvSuite: SelftestSuite = {
  name: 'dma-buf-resv',
  description: 'dma_resv: lock, reserve, add, test_signaled, iterators, get_fences per usage (st-dma-resv.c)',
  unavailable: inKernelOnly('dma_resv'),
  cases: [
    def('sanitycheck', () => {
      const f = new Fence();
      f.enableSignaling();
      f.signal();
      f.dispose();
      const r = new Resv();
      r.lock();
      assert.equal(r.held, true);
      r.unlock();
      assert.equal(r.locked, false);
      r.dispose();
    }),
    ...USAGES.flatMap(perUsage),
  ],
};
