// issuers: the Linux 7.1 unload protocol from JS. A fence issuer is what the
// kernel calls a driver; unloading one signals what it still owns, waits for
// fences that pin it and leaves detached fences readable. Emulation only: the
// kernel backend has no counterpart (it would be rmmod of a real driver).
import assert from 'node:assert/strict';
import { Issuer, Fence, DmaBufError } from '../../index';
import type { SelftestBackend, SelftestSuite } from '../types';
import { def, sleep, throwsErrno } from './util';

type Example = 'names' | 'ring' | 'polled' | 'pinned';

/** The example module's path, or a skip when this install has none (prebuilt binaries). */
function example(t: { skip(reason: string): never }, name: Example): string {
  try {
    return Issuer.examplePath(name);
  } catch (e) {
    if (e instanceof DmaBufError && e.code === 'ENOENT') t.skip(`the example issuer modules are not built here (${e.message})`);
    throw e;
  }
}

export const issuersSuite: SelftestSuite = {
  name: 'issuers',
  description: 'fence issuers and the Linux 7.1 unload protocol (detached ops, pinned fences, EBUSY on timeout)',
  unavailable: (backend: SelftestBackend) =>
    backend === 'kernel' ? 'issuer modules are emulated drivers; the kernel backend has no counterpart' : null,
  cases: [
    def('names_until_signalled', () => {
      const gpu = new Issuer({ driverName: 'selftest-gpu', timelineName: 'ring-0' });
      const a = gpu.createFence();
      const b = new Fence({ issuer: gpu });
      assert.equal(a.driverName, 'selftest-gpu');
      assert.equal(a.timelineName, 'ring-0');
      assert.equal(b.seqno - a.seqno, 1n);
      a.signal();
      assert.equal(a.driverName, 'detached-driver');
      assert.equal(a.timelineName, 'signaled-timeline');
      assert.equal(a.opsDetached, true);
      b.signal();
      for (const f of [a, b]) f.dispose();
      gpu.dispose();
    }),
    def('unload_refuses_new_fences', async () => {
      const iss = new Issuer({ driverName: 'd', timelineName: 't' });
      const f = iss.createFence();
      await iss.unload();
      assert.equal(iss.state, 'unloaded');
      throwsErrno(() => iss.createFence(), 'ENODEV');
      assert.equal(f.status, 0, 'a names issuer does not signal its fences');
      assert.equal(f.driverName, 'd');
      f.signal();
      assert.equal(f.status, 1);
      await iss.unload();
      f.dispose();
      iss.dispose();
    }),
    def('module_unload_cancels_owned', async (t) => {
      const iss = Issuer.load(example(t, 'names'));
      try {
        const fences = Array.from({ length: 10 }, () => iss.createFence());
        for (const f of fences.slice(0, 4)) f.signal();
        let fired = 0;
        for (const f of fences.slice(4)) f.addCallback(() => fired++);
        await iss.unload();
        assert.equal(iss.state, 'unloaded');
        assert.equal(fired, 6, 'unload signals every fence the module still owns');
        for (const [i, f] of fences.entries()) {
          assert.equal(f.status, i < 4 ? 1 : -125);
          assert.equal(f.driverName, 'detached-driver');
          assert.equal(f.opsDetached, true);
          assert.equal(await f.wait(), true);
          f.dispose();
        }
        throwsErrno(() => iss.createFence(), 'ENODEV');
      } finally {
        if (iss.state !== 'unloaded') await iss.unload({ timeout: 1000 }).catch(() => {});
        iss.dispose();
      }
    }),
    def('module_unload_waits_for_pinned', async (t) => {
      const pin = Issuer.load(example(t, 'pinned'));
      try {
        const f = pin.createFence();
        f.signal();
        let settled = false;
        const unloading = pin.unload({ timeout: 20000 }).then(() => (settled = true));
        await sleep(100);
        assert.equal(settled, false, 'unload finished while a pinned fence was alive');
        assert.equal(pin.state, 'draining');
        throwsErrno(() => pin.createFence(), 'ENODEV');
        f.dispose();
        await unloading;
        assert.equal(pin.state, 'unloaded');
        assert.equal(pin.pinnedFences, 0);
      } finally {
        if (pin.state !== 'unloaded') await pin.unload({ timeout: 1000 }).catch(() => {});
        pin.dispose();
      }
    }),
    def('module_unload_timeout_is_ebusy', async (t) => {
      const pin = Issuer.load(example(t, 'pinned'));
      const fences = [pin.createFence(), pin.createFence()];
      try {
        let caught: unknown;
        await pin.unload({ timeout: 30 }).catch((e: unknown) => (caught = e));
        assert.ok(caught instanceof DmaBufError, 'unload did not time out');
        assert.equal(caught.code, 'EBUSY');
        assert.equal(pin.state, 'draining');
        assert.deepEqual(fences.map((f) => f.status), [-125, -125], 'signal_all ran');
        for (const f of fences) f.dispose();
        await pin.unload({ timeout: 5000 });
        assert.equal(pin.state, 'unloaded');
      } finally {
        for (const f of fences) if (!f.disposed) f.dispose();
        if (pin.state !== 'unloaded') await pin.unload({ timeout: 1000 }).catch(() => {});
        pin.dispose();
      }
    }),
    def('module_ring_signals_itself', async (t) => {
      const ring = Issuer.load(example(t, 'ring'));
      try {
        const f = ring.createFence();
        assert.equal(await f.wait({ timeout: 10000 }), true, 'the ring never signalled its fence');
        f.dispose();
        await Promise.all([ring.unload(), ring.unload()]);
        assert.equal(ring.state, 'unloaded');
      } finally {
        if (ring.state !== 'unloaded') await ring.unload({ timeout: 1000 }).catch(() => {});
        ring.dispose();
      }
    }),
  ],
};
