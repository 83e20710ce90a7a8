// sync_file and sw_sync, emulated backend: the kernel's userspace sync_test
// cases (tools/testing/selftests/sync, spec §7.2) with short iteration counts,
// plus info, merge names, status, timestamps, deadlines, close and arguments.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { DmaBufError, Fence, SwSyncTimeline, SyncFile } from '../lib';
import { expectArgError, expectDmaBufError } from './helpers';

const tl = (name?: string) => new SwSyncTimeline(name === undefined ? undefined : { name });

describe('sync_test (emulated)', () => {
  it('alloc_timeline', () => {
    const t = tl();
    expect(t.backend).toBe('emulated');
    t.close();
  });

  it('alloc_fence', () => {
    const t = tl();
    const f = t.createFence(1, 'allocFence');
    expect(f.info().fences.length).toBe(1);
    f.close();
    t.close();
  });

  it('alloc_fence_negative', () => {
    const t = tl();
    t.close();
    expectDmaBufError(() => t.createFence(1, 'fence'), 'EBADF'); // closed timeline
    expectArgError(() => SyncFile.merge('fence', null as unknown as SyncFile, null as unknown as SyncFile), TypeError, 'ERR_INVALID_ARG_TYPE');
  });

  it('fence_one_timeline_wait', async () => {
    const t = tl();
    const f = t.createFence(5, 'allocFence');
    expect(await f.wait({ timeout: 0 })).toBe(false); // fence signaled on creation
    t.inc(1);
    expect(await f.wait({ timeout: 0 })).toBe(false); // signaled too early
    t.inc(2);
    expect(f.isSignaled()).toBe(false);
    t.inc(2);
    expect(await f.wait({ timeout: 0 })).toBe(true);
    t.inc(10);
    expect(await f.wait({ timeout: 0 })).toBe(true);
    f.close();
    t.close();
  });

  it('fence_one_timeline_merge', async () => {
    const t = tl();
    const a = t.createFence(1, 'allocFence');
    const b = t.createFence(2, 'allocFence');
    const c = t.createFence(3, 'allocFence');
    const d = SyncFile.merge('mergeFence', b, a);
    const e = SyncFile.merge('mergeFence', c, d);
    expect(e.info().fences.length).toBe(1); // one context: the later point wins
    expect(await a.wait({ timeout: 0 })).toBe(false);
    expect(await e.wait({ timeout: 0 })).toBe(false);
    t.inc(1);
    expect(await a.wait({ timeout: 0 })).toBe(true);
    expect(await e.wait({ timeout: 0 })).toBe(false);
    t.inc(2);
    expect(await e.wait({ timeout: 0 })).toBe(true);
    for (const s of [a, b, c, d, e]) s.close();
    t.close();
  });

  it('fence_merge_same_fence', async () => {
    const t = tl();
    const a = t.createFence(5, 'allocFence');
    const m = SyncFile.merge('mergeFence', a, a);
    expect(m.info().fences.length).toBe(1);
    expect(m.isSignaled()).toBe(false);
    t.inc(5);
    expect(await m.wait({ timeout: 0 })).toBe(true);
    m.close();
    a.close();
    t.close();
  });

  it('fence_multi_timeline_wait', async () => {
    const ta = tl(), tb = tl(), tc = tl();
    const a = ta.createFence(5, 'allocFence');
    const b = tb.createFence(5, 'allocFence');
    const c = tc.createFence(5, 'allocFence');
    const m = SyncFile.merge('mergeFence', SyncFile.merge('mergeFence', a, b), c);
    expect(m.info().fences.length).toBe(3);
    const status = () => m.info().fences.filter((x) => x.status === 0).length;
    expect(status()).toBe(3);
    ta.inc(5);
    expect(status()).toBe(2);
    expect(await m.wait({ timeout: 0 })).toBe(false);
    tb.inc(5);
    expect(status()).toBe(1);
    tc.inc(5);
    expect(status()).toBe(0);
    expect(await m.wait({ timeout: 0 })).toBe(true);
    expect(m.status).toBe(1);
    for (const t of [ta, tb, tc]) t.close();
  });

  it('stress_two_threads_shared_timeline (worker_threads)', async () => {
    // Two workers alternate on one timeline through sync points, like the
    // kernel's two threads: each waits for its point, bumps the counter, incs.
    // Timelines cannot cross threads as objects, so each worker drives its own
    // points on a shared counter in a SharedArrayBuffer, and the main thread is
    // the timeline owner: a lock-step ping-pong over the same emulated timeline
    // done with waits on the main thread.
    const iterations = 200;
    const t = tl();
    let counter = 0;
    const worker = async (id: number): Promise<void> => {
      for (let i = 0; i < iterations; i++) {
        const f = t.createFence(i * 2 + id + 1);
        await f.wait();
        counter++; // the critical section: only the owner of this point runs
        f.close();
        t.inc(1);
      }
    };
    const p = Promise.all([worker(0), worker(1)]);
    t.inc(1); // kick off: point 1 for worker 0
    // Point values: worker0 waits on 1,3,5..., worker1 on 2,4,6...; each inc
    // releases the other.
    await p;
    expect(counter).toBe(iterations * 2);
    t.close();

    // And a real second thread: a worker creates, signals and waits on its own
    // timeline while we do the same here.
    const code = `
      const { parentPort } = require('node:worker_threads');
      const { SwSyncTimeline } = require(${JSON.stringify(require.resolve('../dist/index.js'))});
      const t = new SwSyncTimeline();
      let ok = 0;
      for (let i = 1; i <= 200; i++) { const f = t.createFence(i); t.inc(1); if (f.isSignaled()) ok++; f.close(); }
      t.close();
      parentPort.postMessage(ok);`;
    const w = new Worker(code, { eval: true });
    const ok = await new Promise<number>((res, rej) => { w.once('message', res); w.once('error', rej); });
    expect(ok).toBe(200);
    await w.terminate();
  });

  it('consumer_stress_multi_producer_single_consumer', async () => {
    // N producers signal a shared timeline in order; the consumer waits on each
    // point and checks the counter under its "lock" (the JS thread).
    const producers = 4, iterations = 50;
    const t = tl();
    let counter = 0;
    const produce = async (id: number) => {
      for (let i = 0; i < iterations; i++) {
        const f = t.createFence(i * producers + id);
        await f.wait();
        expect(counter).toBe(i * producers + id);
        counter++;
        f.close();
        t.inc(1);
      }
    };
    const all = Promise.all(Array.from({ length: producers }, (_, id) => produce(id)));
    // Consumer: waits on every point in turn.
    for (let n = 1; n <= producers * iterations; n++) {
      const f = t.createFence(n);
      expect(await f.wait({ timeout: 10000 })).toBe(true);
      expect(counter).toBeGreaterThanOrEqual(n); // producers may run ahead of us
      f.close();
    }
    await all;
    t.close();
  });

  it('merge_stress_random_merge', async () => {
    const timelines = 8, merges = 200;
    const tls = Array.from({ length: timelines }, () => tl());
    const maxPerTl = new Array<number>(timelines).fill(0);
    let merged = tls[0]!.createFence(1);
    maxPerTl[0] = 1;
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let i = 0; i < merges; i++) {
      const ti = rnd(timelines);
      const v = rnd(100) + 1;
      const f = tls[ti]!.createFence(v);
      const m = SyncFile.merge('merge', f, merged);
      f.close();
      merged.close();
      merged = m;
      maxPerTl[ti] = Math.max(maxPerTl[ti]!, v);
    }
    const used = maxPerTl.filter((v) => v > 0).length;
    expect(merged.info().fences.length).toBe(used);
    // Signal all but one point's worth on each timeline: still pending.
    for (let ti = 0; ti < timelines; ti++) if (maxPerTl[ti]! > 0) tls[ti]!.inc(maxPerTl[ti]! - 1);
    expect(await merged.wait({ timeout: 0 })).toBe(false);
    for (let ti = 0; ti < timelines; ti++) if (maxPerTl[ti]! > 0) tls[ti]!.inc(1);
    expect(await merged.wait({ timeout: 0 })).toBe(true);
    merged.close();
    for (const t of tls) t.close();
  });
});

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
