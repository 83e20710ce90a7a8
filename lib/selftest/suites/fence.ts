// dma-buf-fence: the kernel's st-dma-fence.c cases (all 12) against the public
// API. Mock fences are `new Fence()`: inline lock, names-only ops.
import assert from 'node:assert/strict';
import { MessageChannel, Worker } from 'node:worker_threads';
import { Fence } from '../../index';
import type { SelftestSuite } from '../types';
import { def, inKernelOnly, LIB } from './util';

const RACE_SRC = `
  const { parentPort, workerData } = require('node:worker_threads');
  const { Fence } = require(workerData.lib);
  const { before, rounds, port } = workerData;
  const inbox = [];
  let waiting = null;
  port.on('message', (h) => { if (waiting) { const w = waiting; waiting = null; w(h); } else inbox.push(h); });
  const next = () => inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => { waiting = r; });
  (async () => {
    let seen = 0;
    for (let r = 0; r < rounds; r++) {
      const f1 = new Fence();
      f1.enableSignaling();
      port.postMessage(f1.exportHandle());
      const f2 = Fence.importHandle(await next());
      if (before) f1.signal();
      let resolveSeen;
      const seenP = new Promise((res) => { resolveSeen = res; });
      const cb = f2.addCallback(() => resolveSeen(true));
      if (cb === null) resolveSeen(true);
      if (!before) f1.signal();
      const ok = await Promise.race([seenP, new Promise((res) => setTimeout(() => res(false), 5000))]);
      if (!ok) { parentPort.postMessage({ error: 'callback not seen in round ' + r }); return; }
      seen++;
      f2.dispose();
      f1.dispose();
    }
    port.close();
    parentPort.postMessage({ seen });
  })().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
`;

export const fenceSuite: SelftestSuite = {
  name: 'dma-buf-fence',
  description: "dma_fence: signalling, callbacks, status, errors, waits, stubs (st-dma-fence.c)",
  unavailable: inKernelOnly('dma_fence'),
  cases: [
    def('sanitycheck', () => {
      const f = new Fence();
      f.enableSignaling();
      f.signal();
      f.dispose();
    }),
    def('test_signaling', () => {
      const f = new Fence();
      f.enableSignaling();
      assert.equal(f.isSignaled(), false, 'unexpectedly signaled on creation');
      assert.equal(f.checkAndSignal(), false, 'reported being already signaled');
      assert.equal(f.isSignaled(), true);
      assert.equal(f.signaled, true);
      assert.equal(f.opsDetached, true, 'ops detached after signaling');
      f.dispose();
    }),
    def('test_add_callback', () => {
      const f = new Fence();
      let seen = false;
      assert.notEqual(f.addCallback(() => (seen = true)), null);
      f.signal();
      assert.equal(seen, true, 'callback not run by signal()');
      f.dispose();
    }),
    def('test_late_add_callback', () => {
      const f = new Fence();
      let seen = false;
      f.enableSignaling();
      f.signal();
      assert.equal(f.addCallback(() => (seen = true)), null, 'add on a signalled fence is -ENOENT');
      f.signal();
      assert.equal(seen, false);
      f.dispose();
    }),
    def('test_rm_callback', () => {
      const f = new Fence();
      let seen = false;
      const cb = f.addCallback(() => (seen = true))!;
      assert.equal(f.removeCallback(cb), true);
      f.signal();
      assert.equal(seen, false, 'removed callback ran');
      f.dispose();
    }),
    def('test_late_rm_callback', () => {
      const f = new Fence();
      let seen = false;
      const cb = f.addCallback(() => (seen = true))!;
      f.signal();
      assert.equal(seen, true);
      assert.equal(f.removeCallback(cb), false, 'a run callback cannot be removed');
      f.dispose();
    }),
    def('test_status', () => {
      const f = new Fence();
      f.enableSignaling();
      assert.equal(f.status, 0);
      f.signal();
      assert.equal(f.status, 1);
      f.dispose();
    }),
    def('test_error', () => {
      const f = new Fence();
      f.enableSignaling();
      f.setError(-5);
      assert.equal(f.status, 0, 'no error status before signal');
      f.signal();
      assert.equal(f.status, -5);
      f.dispose();
    }),
    def('test_wait', async () => {
      const f = new Fence();
      f.enableSignaling();
      assert.equal(f.waitSync(0), false);
      assert.equal(await f.wait({ timeout: 0 }), false);
      f.signal();
      assert.equal(f.waitSync(0), true);
      assert.equal(await f.wait({ timeout: 0 }), true);
      f.dispose();
    }),
    def('test_wait_timeout', async () => {
      const f = new Fence();
      f.enableSignaling();
      assert.equal(await f.wait({ timeout: 1 }), false, 'signalled before the timeout');
      const timer = setTimeout(() => f.signal(), 1);
      const r = await f.wait({ timeout: 5000 });
      clearTimeout(timer);
      assert.equal(r, true);
      f.dispose();
    }),
    def('test_stub', () => {
      const stubs = Array.from({ length: 64 }, () => Fence.stub());
      for (const s of stubs) assert.equal(s.isSignaled(), true);
      for (const s of stubs) s.dispose();
    }),
    // Two worker threads: each round each creates and enables a fence, sends it
    // to the peer, adds a callback to the peer's and signals its own, before
    // (pass 1) or after (pass 0) the add. Every callback must be seen.
    def('race_signal_callback', async () => {
      for (const before of [0, 1]) {
        const rounds = 200;
        const ch = new MessageChannel();
        const workers = [ch.port1, ch.port2].map(
          (port) => new Worker(RACE_SRC, { eval: true, workerData: { before, rounds, port, lib: LIB }, transferList: [port] }),
        );
        const results = await Promise.all(
          workers.map(
            (w) =>
              new Promise<{ seen?: number; error?: string }>((resolve, reject) => {
                w.once('error', reject);
                w.once('message', resolve);
              }),
          ),
        );
        await Promise.all(workers.map((w) => w.terminate()));
        for (const r of results) {
          assert.equal(r.error, undefined);
          assert.equal(r.seen, rounds);
        }
      }
    }),
  ],
};
