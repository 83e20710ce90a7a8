// A fuzz worker: imports handles the main thread exported and does one kind of
// thing with them until it ends or the main thread terminates it (during
// require, mid-call, mid-wait, holding a lock).
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import { Rng } from './prng.mjs';

const ALLOWED = new Set(['DmaBufError', 'TypeError', 'RangeError', 'AbortError']);
const { pkg: pkgPath, seed, mode, fences: fenceHandles, resvs: resvHandles, platforms: platformHandles, allowBlock, allowLockExit } = workerData;
const rng = new Rng(seed);

function report(e, where) {
  if (e && typeof e === 'object' && ALLOWED.has(e.name)) return;
  parentPort.postMessage({
    finding: { kind: 'worker-exception', where: `worker ${mode}: ${where}`, name: e?.name, message: String(e?.message ?? e), stack: String(e?.stack ?? '') },
  });
}
function attempt(where, fn) {
  try {
    return fn();
  } catch (e) {
    report(e, where);
    return undefined;
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

parentPort.postMessage({ state: 'requiring' });
const require = createRequire(import.meta.url);
const dm = require(pkgPath);
const { Fence, Resv, Platform, listHeaps } = dm;
parentPort.postMessage({ state: 'loaded' });

const fences = (fenceHandles ?? []).map((h) => attempt('Fence.importHandle', () => Fence.importHandle(h))).filter(Boolean);
const resvs = (resvHandles ?? []).map((h) => attempt('Resv.importHandle', () => Resv.importHandle(h))).filter(Boolean);
const platforms = (platformHandles ?? []).map((h) => attempt('Platform.importHandle', () => Platform.importHandle(h))).filter(Boolean);

function track(p, where) {
  p.then(() => {}, (e) => report(e, where));
}

async function main() {
  switch (mode) {
    case 'require':
      setInterval(() => {}, 1000);
      return;
    case 'calls': {
      // Synchronous calls into the addon, in slices, until terminated.
      for (;;) {
        const until = Date.now() + rng.range(1, 10);
        while (Date.now() < until) {
          attempt('listHeaps', () => listHeaps());
          attempt('fence churn', () => {
            const f = new Fence({ context: Fence.allocContext(), seqno: rng.int(10) });
            f.addCallback(() => {});
            f.signal();
            f.dispose();
          });
          for (const f of fences) attempt('describe', () => f.describe());
        }
        await sleep(0);
      }
    }
    case 'waits': {
      const n = rng.range(20, 300);
      for (let i = 0; i < n && fences.length; i++) {
        const f = rng.pick(fences);
        if (rng.chance(0.5)) track(f.wait(rng.chance(0.5) ? undefined : { timeout: rng.range(1, 200) }), 'wait');
        else attempt('addCallback', () => f.addCallback(() => {}));
      }
      if (fences.length) track(Fence.waitAny([...fences, ...fences]), 'waitAny dup');
      parentPort.postMessage({ state: 'ready' });
      setInterval(() => {}, 1000);
      return;
    }
    case 'signal':
      for (const f of fences) {
        await sleep(rng.int(4));
        if (rng.chance(0.2)) attempt('setError', () => f.setError(rng.pick(['EIO', -22, 'ENOMEM'])));
        attempt('signal', () => f.signal());
        if (rng.chance(0.7)) attempt('dispose', () => f.dispose());
      }
      return;
    case 'waitSync': {
      const f = fences[0];
      if (!f) return;
      parentPort.postMessage({ state: 'ready' });
      const t = allowBlock && rng.chance(0.5) ? undefined : rng.range(0, 50);
      attempt('waitSync', () => f.waitSync(t));
      attempt('waitAnySync', () => Fence.waitAnySync([f, f], rng.range(0, 20)));
      return;
    }
    case 'lock': {
      for (const r of resvs) {
        attempt('lock', () => r.lock());
        for (const f of fences) {
          attempt('reserve', () => r.reserveFences(1));
          attempt('addFence', () => r.addFence(f, rng.pick(['kernel', 'write', 'read', 'bookkeep'])));
        }
      }
      parentPort.postMessage({ state: 'ready' });
      await sleep(rng.range(0, 20));
      if (allowLockExit && rng.chance(0.5)) return; // exits holding the locks (issue 9 #5)
      for (const r of resvs) attempt('unlock', () => r.unlock());
      return;
    }
    case 'platform': {
      for (const p of platforms) {
        const heap = attempt('openHeap', () => p.openHeap(rng.pick(['system', 'system_cc_shared', 'default_cma_region'])));
        const b = heap && attempt('alloc', () => heap.alloc(4096 * rng.range(1, 4)));
        const ab = b && attempt('map', () => b.map());
        if (ab) new Uint8Array(ab).fill(7);
        parentPort.postMessage({ state: 'ready' });
        await sleep(rng.int(5));
        if (rng.chance(0.7)) attempt('close', () => b?.close());
      }
      return;
    }
    default:
      return;
  }
}

main().catch((e) => report(e, 'main'));
