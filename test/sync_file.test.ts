// sync_file and sw_sync, emulated backend: the kernel's userspace sync_test
// cases (tools/testing/selftests/sync, spec §7.2) live in
// lib/selftest/suites/sync.ts (`dmabuf selftest --suite sync`, also on the
// kernel backend) and run here from the sources; then info, merge names,
// status, timestamps, deadlines, close and arguments.
import { describe, expect, it } from 'vitest';
import { DmaBufError, Fence, SwSyncTimeline, SyncFile } from '../lib';
import { expectArgError, expectDmaBufError } from './helpers';
import { syncSuite } from '../lib/selftest/suites/sync';
import { describeSuite } from './selftest-cases';

const tl = (name?: string) => new SwSyncTimeline(name === undefined ? undefined : { name });

describeSuite(syncSuite);

describe('SyncFile (emulated)', () => {
  it('info: names, status, timestamps; placeholder names once signalled', () => {
    const t = tl('tl-a');
    const f = t.createFence(3);
    const i0 = f.info();
    expect(i0.status).toBe(0);
    expect(i0.fences[0]).toMatchObject({ objName: 'tl-a', driverName: 'sw_sync', status: 0, timestampNs: 0n });
    expect(i0.name).toMatch(/^sw_sync-tl-a\d+-3$/);
    t.inc(3);
    const i1 = f.info();
    expect(i1.status).toBe(1);
    expect(i1.fences[0]!.status).toBe(1);
    expect(i1.fences[0]!.timestampNs).toBeGreaterThan(0n);
    // 7.1: FILE_INFO reports placeholder names for a signalled fence (6.12
    // reports the real names: see docs/kernel-backend.md).
    expect(i1.fences[0]!.objName).toBe('signaled-timeline');
    expect(i1.fences[0]!.driverName).toBe('detached-driver');
    f.close();
    t.close();
  });

  it('a plain Fence: create, wait, placeholder names after signal', async () => {
    const fence = new Fence();
    const sf = SyncFile.create(fence);
    expect(sf.backend).toBe('emulated');
    expect(sf.info().fences[0]).toMatchObject({ driverName: 'dmabuf', objName: 'js', status: 0 });
    const w = sf.wait();
    fence.signal();
    expect(await w).toBe(true);
    const leaf = sf.info().fences[0]!;
    expect(leaf.status).toBe(1);
    // 7.1 placeholder names for a signalled fence whose ops detached.
    expect(leaf.driverName).toBe('detached-driver');
    expect(leaf.objName).toBe('signaled-timeline');
    sf.close();
    fence.dispose();
  });

  it('merge names and error status', () => {
    const t = tl('x');
    const a = t.createFence(1);
    const fe = new Fence({ context: Fence.allocContext(), seqno: 1n });
    const b = SyncFile.create(fe);
    const m = SyncFile.merge('my-merge', a, b);
    expect(m.info().name).toBe('my-merge');
    expect(m.info().fences.length).toBe(2);
    fe.setError(-5);
    fe.signal();
    expect(m.info().fences.some((x) => x.status === -5)).toBe(true);
    t.inc(1);
    // The array's own status: its error is only propagated when signalling
    // was enabled (as in the kernel); the leaves carry it either way.
    expect(m.status).not.toBe(0);
    expect(m.info().fences.map((x) => x.status).sort()).toEqual([-5, 1]);
    for (const s of [a, b, m]) s.close();
    fe.dispose();
    t.close();
  });

  it('reuses a live point with the same value; inc signals in order', () => {
    const t = tl();
    const a = t.createFence(2);
    const b = t.createFence(2);
    expect(Fence.isLater(a.fence, b.fence) || Fence.isLater(b.fence, a.fence)).toBe(false);
    expect(a.fence.seqno).toBe(b.fence.seqno);
    const order: number[] = [];
    const c1 = t.createFence(1);
    c1.fence.addCallback(() => order.push(1));
    a.fence.addCallback(() => order.push(2));
    t.inc(2);
    expect(order).toEqual([1, 2]);
    for (const s of [a, b, c1]) s.close();
    t.close();
  });

  it('close signals the rest with ENOENT; a wait resolves', async () => {
    const t = tl();
    const done = t.createFence(1);
    const f = t.createFence(5);
    t.inc(1);
    const w = f.wait();
    t.close();
    expect(await w).toBe(true);
    expect(f.status).toBe(-2);
    expect(f.info().fences[0]!.status).toBe(-2);
    expect(done.status).toBe(1);
    expectDmaBufError(() => t.inc(1), 'EBADF');
    f.close();
    done.close();
  });

  it('deadlines: set on the sync_file, read on the timeline', () => {
    const t = tl();
    const f = t.createFence(1);
    const e = expectDmaBufError(() => t.getDeadline(f), 'ENOENT');
    expect(e.syscall).toBe('SW_SYNC_GET_DEADLINE');
    f.setDeadline(2000n);
    f.setDeadline(1000n);
    f.setDeadline(3000n);
    expect(t.getDeadline(f)).toBe(1000n); // the earliest
    const plain = SyncFile.create(Fence.stub());
    expectDmaBufError(() => t.getDeadline(plain), 'EINVAL');
    plain.close();
    f.close();
    t.close();
  });

  it('wait: timeout, abort, close while waiting', async () => {
    const t = tl();
    const f = t.createFence(1);
    expect(await f.wait({ timeout: 5 })).toBe(false);
    const ac = new AbortController();
    const p = f.wait({ signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    const q = f.wait();
    f.close();
    await expect(q).rejects.toBeInstanceOf(DmaBufError);
    t.close();
  });

  it('bad arguments and closed objects', async () => {
    const t = tl();
    expectArgError(() => t.createFence(-1), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => t.createFence(2 ** 32), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => t.createFence('1' as unknown as number), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => t.inc(1.5), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => SyncFile.create({} as Fence), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => new SwSyncTimeline({ backend: 'x' as 'auto' }), TypeError, 'ERR_INVALID_ARG_TYPE');
    const f = t.createFence(1);
    expectArgError(() => SyncFile.merge(1 as unknown as string, f, f), TypeError, 'ERR_INVALID_ARG_TYPE');
    await expect(f.wait({ timeout: -1 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    f.close();
    f.close(); // idempotent
    expectDmaBufError(() => f.info(), 'EBADF');
    expectDmaBufError(() => SyncFile.merge('m', f, f), 'EBADF');
    expectArgError(() => SyncFile.fromFd(-1), RangeError, 'ERR_OUT_OF_RANGE');
    t.close();
  });

  it("backend 'auto' says which it picked", () => {
    const t = new SwSyncTimeline({ backend: 'auto' });
    expect(t.backend).toBe(SwSyncTimeline.kernelAvailable() ? 'kernel' : 'emulated');
    t.close();
  });

  it("backend 'kernel' without sw_sync: ENOENT/EACCES naming the node", () => {
    const e = expectDmaBufError(
      () => new SwSyncTimeline({ backend: 'kernel', path: '/nonexistent/sync/sw_sync' }),
      'ENOENT',
    );
    expect(e.message).toContain('/nonexistent/sync/sw_sync');
    // Named once, with the reason (debugfs not mounted there).
    expect(e.message.split('/nonexistent/sync/sw_sync').length).toBe(2);
    expect(e.message).toMatch(/debugfs is not mounted/);
    expect(e.syscall).toBe('open');
  });
});
