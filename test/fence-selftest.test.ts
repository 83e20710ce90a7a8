// The kernel's `dma-buf-fence` suite (st-dma-fence.c, 7.1), all 12 cases,
// ported to the public TypeScript API. Mock fences are `new Fence()`: inline
// lock, context 0, seqno 0, names-only ops, so detachment is exercised.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Fence } from '../lib';

describe('dma-buf-fence', () => {
  it('test_sanitycheck', () => {
    const f = new Fence();
    f.enableSignaling();
    f.signal();
    f.dispose();
  });

  it('test_signaling', () => {
    const f = new Fence();
    f.enableSignaling();
    expect(f.isSignaled()).toBe(false); // unexpectedly signaled on creation
    expect(f.checkAndSignal()).toBe(false); // reported being already signaled
    expect(f.isSignaled()).toBe(true);
    expect(f.signaled).toBe(true); // the flag itself
    expect(f.opsDetached).toBe(true); // ops detached after signaling
    f.dispose();
  });

  it('test_add_callback', () => {
    const f = new Fence();
    let seen = false;
    expect(f.addCallback(() => (seen = true))).not.toBeNull();
    f.signal();
    expect(seen).toBe(true);
    f.dispose();
  });

  it('test_late_add_callback', () => {
    const f = new Fence();
    let seen = false;
    f.enableSignaling();
    f.signal();
    expect(f.addCallback(() => (seen = true))).toBeNull(); // -ENOENT
    f.signal();
    expect(seen).toBe(false);
    f.dispose();
  });

  it('test_rm_callback', () => {
    const f = new Fence();
    let seen = false;
    const cb = f.addCallback(() => (seen = true))!;
    expect(f.removeCallback(cb)).toBe(true);
    f.signal();
    expect(seen).toBe(false);
    f.dispose();
  });

  it('test_late_rm_callback', () => {
    const f = new Fence();
    let seen = false;
    const cb = f.addCallback(() => (seen = true))!;
    f.signal();
    expect(seen).toBe(true);
    expect(f.removeCallback(cb)).toBe(false);
    f.dispose();
  });

  it('test_status', () => {
    const f = new Fence();
    f.enableSignaling();
    expect(f.status).toBe(0);
    f.signal();
    expect(f.status).toBe(1);
    f.dispose();
  });

  it('test_error', () => {
    const f = new Fence();
    f.enableSignaling();
    f.setError(-5);
    expect(f.status).toBe(0); // no error status before signal
    f.signal();
    expect(f.status).toBe(-5);
    f.dispose();
  });

  it('test_wait', async () => {
    const f = new Fence();
    f.enableSignaling();
    expect(f.waitSync(0)).toBe(false);
    expect(await f.wait({ timeout: 0 })).toBe(false);
    f.signal();
    expect(f.waitSync(0)).toBe(true);
    expect(await f.wait({ timeout: 0 })).toBe(true);
    f.dispose();
  });

  it('test_wait_timeout', async () => {
    const f = new Fence();
    f.enableSignaling();
    expect(await f.wait({ timeout: 1 })).toBe(false); // times out before signal
    const timer = setTimeout(() => f.signal(), 1);
    const r = await f.wait({ timeout: 1000 });
    clearTimeout(timer);
    expect(r).toBe(true);
    f.dispose();
  });

  it('test_stub', () => {
    const stubs = Array.from({ length: 64 }, () => Fence.stub());
    for (const s of stubs) expect(s.isSignaled()).toBe(true);
    for (const s of stubs) s.dispose();
  });

  // Two real threads (worker_threads): each round, each creates and enables a
  // fence, sends it to the peer, takes the peer's fence, adds a callback to it
  // and signals its own, with the signal after (pass 0) or before (pass 1) the
  // add. Every callback must be seen (or the add must report the fence already
  // signalled, which counts as seen, as in the kernel test).
  it('test_race_signal_callback', async () => {
    const src = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { Fence } = require(workerData.lib);
      const { before, rounds, port } = workerData;
      const inbox = [];
      let waiting = null;
      port.on('message', (h) => { if (waiting) { const w = waiting; waiting = null; w(h); } else inbox.push(h); });
      const next = () => inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => { waiting = r; });
      (async () => {
        let misses = 0, seen = 0;
        for (let r = 0; r < rounds; r++) {
          const f1 = new Fence();
          f1.enableSignaling();
          port.postMessage(f1.exportHandle());
          const f2 = Fence.importHandle(await next());
          if (before) f1.signal();
          let resolveSeen;
          const seenP = new Promise((res) => { resolveSeen = res; });
          const cb = f2.addCallback(() => resolveSeen(true));
          if (cb === null) { misses++; resolveSeen(true); }
          if (!before) f1.signal();
          const ok = await Promise.race([seenP, new Promise((res) => setTimeout(() => res(false), 5000))]);
          if (!ok) { parentPort.postMessage({ error: 'callback not seen in round ' + r }); return; }
          seen++;
          f2.dispose();
          f1.dispose();
        }
        port.close();
        parentPort.postMessage({ misses, seen });
      })().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
    `;
    const { MessageChannel } = await import('node:worker_threads');
    const lib = require.resolve('../dist/index.js');
    for (const before of [0, 1]) {
      const rounds = 300;
      const ch = new MessageChannel();
      const ports = [ch.port1, ch.port2];
      const workers = ports.map(
        (port) => new Worker(src, { eval: true, workerData: { before, rounds, port, lib }, transferList: [port] }),
      );
      const results = await Promise.all(
        workers.map(
          (w) =>
            new Promise<{ misses?: number; seen?: number; error?: string }>((resolve, reject) => {
              w.on('error', reject);
              w.on('message', resolve);
            }),
        ),
      );
      for (const r of results) {
        expect(r.error).toBeUndefined();
        expect(r.seen).toBe(rounds);
      }
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });
});
