// poll() on a dma-buf from JavaScript -- DmaBuf.busy(dir) and DmaBuf.wait(dir,
// opts) -- on both backends, and DmaBuf.fromFd()'s refusals. The kernel side
// runs here over a FIFO wrapped as a kernel buffer (the addon's diagWrapFd test
// hook): its POLLIN/POLLOUT stand in for a dma-buf's, so the uv_poll path
// (shared watch, union of directions, timeout, abort, close) is exercised
// without /dev/dma_heap. A real dma-buf's fromFd (sizes, names, dup) and
// busy/wait with real fences run in the kernel rig (test/kernel/dmabuf_sync_js.mjs,
// test/kernel/vgem_js.mjs).
import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DmaBuf, DmaBufError, Fence, SwSyncTimeline, createMemfd, openHeap } from '../lib';
import { wrapDmaBuf } from '../lib/dma_buf';
import { binding as raw } from '../lib/internal/binding';
import { expectArgError, expectDmaBufError, expectRejectsCode, fifo as fifoIn, openFds, sleep } from './helpers';


function newFence(): Fence {
  return new Fence({ context: Fence.allocContext(), seqno: 1 });
}

/** An emulated buffer with `write` and `read` fences added through its resv. */
function emulated(fences: { write?: Fence[]; read?: Fence[] } = {}): DmaBuf {
  const heap = openHeap('system');
  const buf = heap.alloc(4096);
  heap.close();
  const resv = buf.resv;
  resv.lock();
  resv.reserveFences((fences.write?.length ?? 0) + (fences.read?.length ?? 0) || 1);
  for (const f of fences.write ?? []) resv.addFence(f, 'write');
  for (const f of fences.read ?? []) resv.addFence(f, 'read');
  resv.unlock();
  return buf;
}

// A FIFO: its read end polls readable once bytes are in it (and never
// writable); an O_RDWR end is writable while there is room.
const dir = mkdtempSync(path.join(tmpdir(), 'dmabuf-wait-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fifo = (): ReturnType<typeof fifoIn> => fifoIn(dir);
let rwSeq = 0;
/** A kernel-backend DmaBuf over a dup of `fd` (poll answers as that fd does). */
function kernelOver(fd: number): DmaBuf {
  return wrapDmaBuf(raw.diagWrapFd('dma_buf', fd));
}
/** Writes into a non-blocking fd until it is full; returns the byte count. */
function fill(fd: number): number {
  const chunk = Buffer.alloc(65536, 1);
  let n = 0;
  for (;;) {
    try {
      n += writeSync(fd, chunk);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return n;
      throw e;
    }
  }
}

describe('DmaBuf.busy / wait: emulated buffers (the reservation object)', () => {
  it("'read' waits for the writers only, 'write' for every fence (dma_buf_poll)", async () => {
    const w = newFence();
    const r = newFence();
    using buf = emulated({ write: [w], read: [r] });
    expect(buf.busy('read')).toBe(true);
    expect(buf.busy('write')).toBe(true);
    const reading = buf.wait('read');
    const writing = buf.wait('write');
    let writeDone = false;
    void writing.then(() => (writeDone = true));
    w.signal();
    expect(await reading).toBe(true);
    expect(buf.busy('read')).toBe(false);
    expect(buf.busy('write')).toBe(true); // a reader is still pending
    await sleep(10);
    expect(writeDone).toBe(false);
    r.signal();
    expect(await writing).toBe(true);
    expect(buf.busy('write')).toBe(false);
    w.dispose();
    r.dispose();
  });

  it('only read fences pending: not busy for read, busy for write', async () => {
    const r = newFence();
    using buf = emulated({ read: [r] });
    expect(buf.busy('read')).toBe(false);
    expect(await buf.wait('read', { timeout: 0 })).toBe(true);
    expect(buf.busy('write')).toBe(true);
    expect(await buf.wait('write', { timeout: 0 })).toBe(false);
    r.signal();
    expect(await buf.wait('write', { timeout: 0 })).toBe(true);
    r.dispose();
  });

  it('an idle buffer resolves true at once, with a sync_file imported it waits for it', async () => {
    using buf = emulated();
    expect(buf.busy('read')).toBe(false);
    expect(buf.busy('write')).toBe(false);
    expect(await buf.wait('write')).toBe(true);
    const tl = new SwSyncTimeline();
    const sf = tl.createFence(1);
    buf.importSyncFile(sf, 'write');
    expect(buf.busy('read')).toBe(true);
    const p = buf.wait('read', { timeout: 5000 });
    setTimeout(() => tl.inc(1), 10);
    expect(await p).toBe(true);
    sf.close();
    tl.close();
  });

  it('a writer added while waiting is waited for too (poll re-checks)', async () => {
    const w1 = newFence();
    const w2 = newFence();
    using buf = emulated({ write: [w1] });
    let done = false;
    const p = buf.wait('read').then((v) => ((done = true), v));
    const resv = buf.resv;
    resv.lock();
    resv.reserveFences(1);
    resv.addFence(w2, 'write');
    resv.unlock();
    w1.signal();
    await sleep(10);
    expect(done).toBe(false);
    w2.signal();
    expect(await p).toBe(true);
    w1.dispose();
    w2.dispose();
  });

  it('timeout resolves false, abort rejects AbortError, close() rejects EBADF', async () => {
    const w = newFence();
    const buf = emulated({ write: [w] });
    expect(await buf.wait('read', { timeout: 20 })).toBe(false);
    expect(await buf.wait('write', { timeout: 0 })).toBe(false);
    const ac = new AbortController();
    const aborted = buf.wait('read', { signal: ac.signal });
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    const pre = new AbortController();
    pre.abort();
    await expect(buf.wait('read', { signal: pre.signal })).rejects.toMatchObject({ name: 'AbortError' });
    const a = buf.wait('read');
    const b = buf.wait('write', { timeout: 60_000 });
    buf.close();
    await expectRejectsCode(a, 'EBADF');
    await expectRejectsCode(b, 'EBADF');
    expectDmaBufError(() => buf.busy('read'), 'EBADF');
    await expectRejectsCode(buf.wait('read'), 'EBADF');
    w.signal();
    w.dispose();
  });
});

describe('DmaBuf.busy / wait: kernel buffers (poll on the fd, one shared uv_poll)', () => {
  it("'read' is POLLIN: busy until the fd is readable, then wait resolves", async () => {
    const f = fifo();
    const buf = kernelOver(f.rd);
    expect(buf.backend).toBe('kernel');
    expect(buf.busy('read')).toBe(true);
    expect(buf.busy('write')).toBe(true); // a read end is never writable
    expect(await buf.wait('read', { timeout: 0 })).toBe(false);
    expect(await buf.wait('read', { timeout: 20 })).toBe(false);
    let settled = false;
    const p1 = buf.wait('read').then((v) => ((settled = true), v));
    const p2 = buf.wait('read', { timeout: 5000 });
    await sleep(20);
    expect(settled).toBe(false);
    writeSync(f.wr, 'x');
    expect(await p1).toBe(true);
    expect(await p2).toBe(true);
    expect(buf.busy('read')).toBe(false);
    buf.close();
    f.close();
  });

  it('both directions pending share one watch; the one left keeps waiting after the other resolves', async () => {
    const f = fifo();
    const buf = kernelOver(f.rd);
    const reading = buf.wait('read');
    let writeSettled: unknown = 'pending';
    const writing = buf.wait('write', { timeout: 150 }).then((v) => (writeSettled = v));
    writeSync(f.wr, 'x');
    expect(await reading).toBe(true);
    expect(writeSettled).toBe('pending');
    // Another read waiter joins the restarted (writable) watch.
    readSync(f.rd, Buffer.alloc(8));
    const again = buf.wait('read', { timeout: 5000 });
    setTimeout(() => writeSync(f.wr, 'y'), 20);
    expect(await again).toBe(true);
    expect(await writing).toBe(false); // never writable: timed out
    buf.close();
    f.close();
  });

  it("'write' is POLLOUT: a full pipe is busy until drained", async () => {
    const p = path.join(dir, `rw${rwSeq++}`);
    expect(spawnSync('mkfifo', [p]).status).toBe(0);
    const rw = openSync(p, constants.O_RDWR | constants.O_NONBLOCK);
    const buf = kernelOver(rw);
    expect(buf.busy('write')).toBe(false);
    expect(await buf.wait('write')).toBe(true);
    fill(rw);
    expect(buf.busy('write')).toBe(true);
    expect(buf.busy('read')).toBe(false);
    const writing = buf.wait('write', { timeout: 5000 });
    setTimeout(() => {
      const drain = Buffer.alloc(1 << 20);
      try {
        for (;;) readSync(rw, drain);
      } catch {
        /* EAGAIN: empty */
      }
    }, 20);
    expect(await writing).toBe(true);
    buf.close();
    closeSync(rw);
  });

  it('abort and timeout leave the other waiters alone; close() rejects the rest with EBADF and stops the watch', async () => {
    const f = fifo();
    const buf = kernelOver(f.rd);
    const ac = new AbortController();
    const aborted = buf.wait('read', { signal: ac.signal });
    const timed = buf.wait('read', { timeout: 10 });
    const a = buf.wait('read');
    const b = buf.wait('write');
    ac.abort(new Error('why'));
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    expect(await timed).toBe(false);
    buf.close();
    await expectRejectsCode(a, 'EBADF');
    await expectRejectsCode(b, 'EBADF');
    expectDmaBufError(() => buf.busy('write'), 'EBADF');
    await expectRejectsCode(buf.wait('write'), 'EBADF');
    // The fd's uv_poll is gone: another buffer over the same fd can be watched (no EEXIST).
    const again = kernelOver(f.rd);
    const p = again.wait('read', { timeout: 5000 });
    writeSync(f.wr, 'z');
    expect(await p).toBe(true);
    again.close();
    f.close();
  });

  it('closing from a wait callback, and many waits in a row, leak no fds', async () => {
    const before = openFds();
    for (let i = 0; i < 20; i++) {
      const f = fifo();
      const buf = kernelOver(f.rd);
      const p = buf.wait('read').then(() => buf.close());
      const q = buf.wait('write').catch((e: DmaBufError) => e.code);
      writeSync(f.wr, 'x');
      await p;
      expect(await q).toBe('EBADF');
      f.close();
    }
    expect(openFds()).toBe(before);
  });
});

describe('DmaBuf.busy / wait: arguments', () => {
  it('dir and options are checked (TypeError / RangeError), also for a wrong receiver', async () => {
    using buf = emulated();
    expectArgError(() => buf.busy(undefined as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => buf.busy('readwrite' as never), TypeError, 'ERR_INVALID_ARG_VALUE');
    expectArgError(() => buf.busy(1 as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => DmaBuf.prototype.busy.call({}, 'read'), TypeError, 'ERR_INVALID_ARG_TYPE');
    await expectRejectsCode(buf.wait('both' as never), 'ERR_INVALID_ARG_VALUE');
    await expectRejectsCode(buf.wait('read', 5 as never), 'ERR_INVALID_ARG_TYPE');
    await expectRejectsCode(buf.wait('read', { timeout: -1 }), 'ERR_OUT_OF_RANGE');
    await expectRejectsCode(buf.wait('read', { timeout: NaN }), 'ERR_OUT_OF_RANGE');
    await expectRejectsCode(buf.wait('read', { signal: {} as never }), 'ERR_INVALID_ARG_TYPE');
    await expectRejectsCode(DmaBuf.prototype.wait.call(null, 'read'), 'ERR_INVALID_ARG_TYPE');
  });

  it('the addon checks every argument itself (no JS value crashes it)', () => {
    using buf = emulated();
    const weird = [undefined, null, 1, -1, 1.5, NaN, 'read', {}, [], () => 0, 1n, Symbol('x')];
    for (const v of weird) {
      expect(() => raw.bufBusy(v as never, 'read')).toThrow();
      expect(() => raw.bufPollable(v as never)).toThrow();
      expect(() => raw.bufPoll(v as never, 1, () => {})).toThrow();
      expect(() => raw.bufPollCancel(v as never)).toThrow();
      if (typeof v !== 'number' || !(Number.isInteger(v) && v >= 0)) expect(() => raw.bufFromFd(v as never, true)).toThrow();
      expect(() => raw.bufFromFd(0, v as never)).toThrow();
    }
    expect(() => raw.bufFromFd(-1, true)).toThrow(RangeError);
    expect(() => raw.bufFromFd(2 ** 31, true)).toThrow(RangeError);
    expect(() => raw.bufFromFd(1.5, true)).toThrow(RangeError);
    expect(() => raw.bufFromFd('3' as never, true)).toThrow(TypeError);
    expect(() => raw.bufFromFd(0, 1 as never)).toThrow(TypeError);
  });

  it('native: bad dir, bad events, an fd epoll refuses, one watch per fd', () => {
    const w = newFence();
    using buf = emulated({ write: [w] });
    // The handle is private: reach it through a kernel wrap made by the hook instead.
    const nul = openSync('/dev/null', 'r');
    const kh = raw.diagWrapFd('dma_buf', nul);
    closeSync(nul);
    expect(() => raw.bufBusy(kh, 'readwrite' as never)).toThrow(TypeError);
    expect(() => raw.bufBusy(kh, 2 as never)).toThrow(TypeError);
    expect(raw.bufBusy(kh, 'read')).toBe(false); // /dev/null polls ready
    expect(raw.bufPollable(kh)).toBe(true);
    for (const ev of [0, 4, -1, 1.5, NaN]) expect(() => raw.bufPoll(kh, ev, () => {})).toThrow(RangeError);
    expect(() => raw.bufPoll(kh, 1, 'cb' as never)).toThrow(TypeError);
    expect(() => raw.bufPoll(kh, 1, () => {})).toThrow(expect.objectContaining({ code: 'EPERM' })); // not pollable
    const f = fifo();
    const kf = raw.diagWrapFd('dma_buf', f.rd);
    const token = raw.bufPoll(kf, 3, () => {});
    expect(() => raw.bufPoll(kf, 1, () => {})).toThrow(expect.objectContaining({ code: 'EEXIST' })); // one per fd
    raw.bufPollCancel(token);
    raw.bufPollCancel(token); // idempotent
    raw.bufClose(kf);
    raw.bufDispose(kf);
    f.close();
    raw.bufClose(kh);
    expect(() => raw.bufBusy(kh, 'read')).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => raw.bufPollable(kh)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => raw.bufPoll(kh, 1, () => {})).toThrow(expect.objectContaining({ code: 'EBADF' }));
    raw.bufDispose(kh);
    expect(buf.busy('read')).toBe(true);
    w.signal();
    w.dispose();
  });
});

describe('DmaBuf.fromFd', () => {
  it('refuses what is not a dma-buf with EINVAL (memfd, /dev/null, a FIFO) and a closed fd with EBADF; no fd leaks', () => {
    const memfd = createMemfd(4096);
    const nul = openSync('/dev/null', 'r');
    const f = fifo();
    const before = openFds();
    for (const fd of [memfd.fd, nul, f.rd]) {
      for (const dup of [true, false]) {
        const e = expectDmaBufError(() => DmaBuf.fromFd(fd, { dup }), 'EINVAL');
        expect(e.message).toMatch(/not a dma-buf/);
      }
    }
    expect(openFds()).toBe(before);
    // dup:false refused: the caller still owns (and can use) its fd.
    expect(readdirSync('/proc/self/fd')).toContain(String(nul));
    closeSync(nul);
    expectDmaBufError(() => DmaBuf.fromFd(nul), 'EBADF');
    expectDmaBufError(() => DmaBuf.fromFd(nul, { dup: false }), 'EBADF');
    expectDmaBufError(() => DmaBuf.fromFd(0x7fffffff), 'EBADF');
    expect(openFds()).toBe(before - 1);
    memfd.close();
    f.close();
  });

  it('checks its arguments (TypeError / RangeError)', () => {
    expectArgError(() => DmaBuf.fromFd('3' as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => DmaBuf.fromFd(undefined as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => DmaBuf.fromFd(3n as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => DmaBuf.fromFd(-1), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => DmaBuf.fromFd(1.5), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => DmaBuf.fromFd(2 ** 31), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => DmaBuf.fromFd(NaN), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => DmaBuf.fromFd(0, null as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => DmaBuf.fromFd(0, 'dup' as never), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => DmaBuf.fromFd(0, { dup: 1 as never }), TypeError, 'ERR_INVALID_ARG_TYPE');
  });
});
