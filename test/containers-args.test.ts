// Every bad argument to the container and Resv APIs: the right error class
// and code, and no effect.
import { describe, expect, it } from 'vitest';
import { AcquireContext, Fence, FenceArray, FenceChain, Resv, dedup, merge, unwrap } from '../lib';
import { expectArgError, expectDmaBufError, expectRejectsCode } from './helpers';

const T = TypeError;
const R = RangeError;
const TYPE = 'ERR_INVALID_ARG_TYPE';
const VALUE = 'ERR_INVALID_ARG_VALUE';
const RANGE = 'ERR_OUT_OF_RANGE';
const fake = Object.create(Fence.prototype) as Fence;

describe('containers: bad arguments', () => {
  it('FenceArray', () => {
    const f = new Fence();
    expectArgError(() => new FenceArray(undefined as never), T, TYPE);
    expectArgError(() => new FenceArray('x' as never), T, TYPE);
    expectArgError(() => new FenceArray([f, 1 as never]), T, TYPE);
    expectArgError(() => new FenceArray([fake]), T, TYPE);
    expectDmaBufError(() => new FenceArray([]), 'EINVAL');
    expectArgError(() => new FenceArray([f], 5 as never), T, TYPE);
    expectArgError(() => new FenceArray([f], { context: 1 as never }), T, TYPE);
    expectArgError(() => new FenceArray([f], { context: -1n }), R, RANGE);
    expectArgError(() => new FenceArray([f], { seqno: -1 }), R, RANGE);
    expectArgError(() => new FenceArray([f], { seqno: 1.5 }), R, RANGE);
    expectArgError(() => new FenceArray([f], { seqno: 'x' as never }), T, TYPE);
    const a = new FenceArray([f]);
    expectDmaBufError(() => new FenceArray([a]), 'EINVAL'); // arrays are flat
    const c = new FenceChain(null, f, 1);
    expectDmaBufError(() => new FenceArray([f, c]), 'EINVAL');
    expectArgError(() => FenceArray.is(null as never), T, TYPE);
    expectArgError(() => a.matchContext(-1n), R, RANGE);
    a.dispose();
    c.dispose();
    f.dispose();
    expectDmaBufError(() => new FenceArray([f]), 'EBADF');
    expectDmaBufError(() => a.error, 'EBADF');
    expectDmaBufError(() => a.fences, 'EBADF');
  });

  it('FenceChain', () => {
    const f = new Fence();
    expectArgError(() => new FenceChain(undefined as never, f, 1), T, TYPE);
    expectArgError(() => new FenceChain({} as never, f, 1), T, TYPE);
    expectArgError(() => new FenceChain(null, null as never, 1), T, TYPE);
    expectArgError(() => new FenceChain(null, fake, 1), T, TYPE);
    expectArgError(() => new FenceChain(null, f, -1), R, RANGE);
    expectArgError(() => new FenceChain(null, f, 1n << 64n), R, RANGE);
    expectArgError(() => new FenceChain(null, f, '1' as never), T, TYPE);
    const c = new FenceChain(null, f, 3);
    expectDmaBufError(() => new FenceChain(null, c, 4), 'EINVAL'); // a chain inside a chain
    expectArgError(() => c.findSeqno(-1), R, RANGE);
    expectArgError(() => c.findSeqno(undefined as never), T, TYPE);
    expectDmaBufError(() => c.findSeqno(4), 'EINVAL');
    expectArgError(() => FenceChain.is(1 as never), T, TYPE);
    c.dispose();
    expectDmaBufError(() => c.findSeqno(1), 'EBADF');
    expectDmaBufError(() => new FenceChain(c, f, 9), 'EBADF');
    f.dispose();
  });

  it('unwrap / merge / dedup', () => {
    const f = new Fence();
    expectArgError(() => unwrap(undefined as never), T, TYPE);
    expectArgError(() => unwrap(fake), T, TYPE);
    expectArgError(() => merge(f, 2 as never), T, TYPE);
    expectArgError(() => dedup(f as never), T, TYPE);
    expectArgError(() => dedup([f, null as never]), T, TYPE);
    f.dispose();
    expectDmaBufError(() => unwrap(f), 'EBADF');
    expectDmaBufError(() => merge(f), 'EBADF');
  });
});

describe('Resv: bad arguments', () => {
  it('usages, fences, counts, contexts', async () => {
    const r = new Resv();
    const f = new Fence();
    for (const bad of [undefined, 0, 'shared', 'READ']) {
      const cls = typeof bad === 'string' ? T : T;
      const code = typeof bad === 'string' ? VALUE : TYPE;
      expectArgError(() => r.getFences(bad as never), cls, code);
      expectArgError(() => r.testSignaled(bad as never), cls, code);
      expectArgError(() => r.fences(bad as never), cls, code);
      expectArgError(() => r.getSingleton(bad as never), cls, code);
      expectArgError(() => r.waitSync(bad as never), cls, code);
      expectArgError(() => r.setDeadline(bad as never, 1n), cls, code);
      await expectRejectsCode(r.wait(bad as never), code);
    }
    expectDmaBufError(() => r.reserveFences(1), 'EPERM'); // not locked
    expectDmaBufError(() => r.addFence(f, 'read'), 'EPERM');
    expectDmaBufError(() => r.describe(), 'EPERM');
    r.lock();
    expectArgError(() => r.reserveFences(0), R, RANGE);
    expectArgError(() => r.reserveFences(1.5), R, RANGE);
    expectArgError(() => r.reserveFences('1' as never), T, TYPE);
    expectArgError(() => r.addFence({} as never, 'read'), T, TYPE);
    expectArgError(() => r.addFence(fake, 'read'), T, TYPE);
    expectArgError(() => r.addFence(f, 'shared' as never), T, VALUE);
    expectArgError(() => r.replaceFences(1 as never, f, 'read'), T, TYPE);
    expectArgError(() => r.replaceFences(-1n, f, 'read'), R, RANGE);
    expectArgError(() => r.replaceFences(1n, null as never, 'read'), T, TYPE);
    expectArgError(() => r.copyFences({} as never), T, TYPE);
    expectArgError(() => r.lock({} as never), T, TYPE);
    expectArgError(() => r.lockSlow(undefined as never), T, TYPE);
    expectArgError(() => r.setDeadline('read', 1 as never), T, TYPE);
    expectArgError(() => r.waitSync('read', -1), R, RANGE);
    await expectRejectsCode(r.wait('read', { timeout: -1 }), RANGE);
    await expectRejectsCode(r.wait('read', 5 as never), TYPE);
    await expectRejectsCode(r.wait('read', { signal: {} as never }), TYPE);
    r.unlock();
    expectArgError(() => Resv.importHandle(1 as never), T, TYPE);
    expectDmaBufError(() => Resv.importHandle(12345n), 'EINVAL');
    r.dispose();
    r.dispose(); // idempotent
    expectDmaBufError(() => r.lock(), 'EBADF');
    expectDmaBufError(() => r.getFences('read'), 'EBADF');
    await expectRejectsCode(r.wait('read'), 'EBADF');
    f.dispose();
  });

  it('AcquireContext after fini', () => {
    const r = new Resv();
    const ctx = new AcquireContext();
    ctx.fini();
    ctx.fini(); // idempotent
    expectDmaBufError(() => r.lock(ctx), 'EBADF');
    expectDmaBufError(() => ctx.done(), 'EBADF');
    const c2 = new AcquireContext();
    r.lock(c2);
    expectDmaBufError(() => r.lockSlow(c2), 'EBUSY'); // must hold no locks
    r.unlock();
    c2.fini();
    r.dispose();
  });
});
