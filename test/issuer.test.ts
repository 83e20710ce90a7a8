// Fence issuers through the public API: names-only issuers, the example modules
// (built by CMake into build/issuers/), the 7.1 unload protocol seen from JS,
// loader errors, argument validation, workers, process exit and the pre-7.1
// crash (in child processes).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DmaBufError, Fence, FenceLock, Issuer, diagnostics } from '../lib';
import { binding } from '../lib/internal/binding';
import { expectArgError, expectDmaBufError, expectRejectsCode, sleep } from './helpers';

const root = path.join(__dirname, '..');
const lib = require.resolve('../dist/index.js');
const testModule = (name: string): string => path.join(root, 'build', 'test-issuers', `test_issuer_${name}.so`);
// The deliberately broken modules are built with the C++ tests (they need GoogleTest).
const haveTestModules = existsSync(testModule('badabi'));

// Every test unloads what it loads; this catches the ones that do not. A few
// leave a module loaded on purpose (`orphans`): the exit handler unloads them.
let loaded: Issuer[] = [];
let orphans = 0;
function load(name: 'names' | 'ring' | 'polled' | 'pinned', opts?: { keepOps?: boolean }): Issuer {
  const iss = Issuer.load(Issuer.examplePath(name), opts);
  loaded.push(iss);
  return iss;
}
afterEach(async () => {
  for (const iss of loaded) {
    if (!iss.disposed && iss.state !== 'unloaded') await iss.unload({ timeout: 1000 }).catch(() => {});
    iss.dispose();
  }
  loaded = [];
  const expected = orphans;
  orphans = diagnostics.loadedIssuerModules(); // report a leak once, not in every later test
  expect(orphans).toBe(expected);
});

function mapped(file: string): boolean {
  return readFileSync('/proc/self/maps', 'utf8').includes(file);
}

function runChild(script: string, args: string[] = []): ReturnType<typeof spawnSync> {
  return spawnSync(process.execPath, ['-e', script, ...args], { encoding: 'utf8', timeout: 20000 });
}

describe('names-only issuers', () => {
  it('fences carry the names until they signal, then the detached names', () => {
    const iss = new Issuer({ driverName: 'gpu-driver', timelineName: 'ring-0' });
    expect(iss.kind).toBe('names');
    expect(iss.name).toBe('gpu-driver');
    expect(iss.timelineName).toBe('ring-0');
    expect(iss.path).toBeNull();
    expect(iss.params).toEqual([]);
    expect(iss.state).toBe('live');
    expect(iss.pinnedFences).toBe(0);
    expect(iss.lastUnloadStats).toBeNull();

    const a = iss.createFence();
    const b = new Fence({ issuer: iss });
    expect([a.driverName, a.timelineName]).toEqual(['gpu-driver', 'ring-0']);
    expect([b.driverName, b.timelineName]).toEqual(['gpu-driver', 'ring-0']);
    // one timeline: the issuer's own context, consecutive seqnos
    expect(a.context).toBe(b.context);
    expect(a.context).not.toBe(0n);
    expect(b.seqno).toBe(a.seqno + 1n);
    expect(Fence.isLater(b, a)).toBe(true);
    expect(a.describe()).toContain('ring-0 gpu-driver unsignalled');
    expect(iss.fencesCreated).toBe(2);

    a.signal();
    expect(a.status).toBe(1);
    expect(a.opsDetached).toBe(true);
    expect([a.driverName, a.timelineName]).toEqual(['detached-driver', 'signaled-timeline']);
    expect(b.driverName).toBe('gpu-driver');
    b.setError('EIO');
    b.signal();
    expect(b.status).toBe(-5);
    expect(b.opsDetached).toBe(true);
    a.dispose();
    b.dispose();
    iss.dispose();
  });

  it('explicit context, seqno and seqno64 are honoured', () => {
    const iss = new Issuer({ driverName: 'd', timelineName: 't' });
    const ctx = Fence.allocContext();
    const f = iss.createFence({ context: ctx, seqno: 0x1_0000_0005n, seqno64: true });
    expect(f.context).toBe(ctx);
    expect(f.seqno).toBe(0x1_0000_0005n);
    expect(f.flags.seqno64).toBe(true);
    const g = new Fence({ issuer: iss, context: ctx, seqno: 7 });
    expect([g.context, g.seqno, g.flags.seqno64]).toEqual([ctx, 7n, false]);
    f.dispose();
    g.dispose();
    iss.dispose();
  });

  it('bad names: the C++ codes (EINVAL, ENAMETOOLONG), counted in UTF-8 bytes', () => {
    const ok = 'x'.repeat(255);
    expectDmaBufError(() => new Issuer({ driverName: '', timelineName: 't' }), 'EINVAL');
    expectDmaBufError(() => new Issuer({ driverName: 'd', timelineName: '' }), 'EINVAL');
    const nul = expectDmaBufError(() => new Issuer({ driverName: 'a\0b', timelineName: 't' }), 'EINVAL');
    expect(nul.message).toContain('NUL');
    expectDmaBufError(() => new Issuer({ driverName: 'd', timelineName: 'x\0' }), 'EINVAL');
    const long = expectDmaBufError(() => new Issuer({ driverName: ok + 'x', timelineName: 't' }), 'ENAMETOOLONG');
    expect(long.message).toContain('255');
    expectDmaBufError(() => new Issuer({ driverName: 'd', timelineName: ok + 'x' }), 'ENAMETOOLONG');
    // 128 two-byte characters are 256 bytes
    expectDmaBufError(() => new Issuer({ driverName: 'é'.repeat(128), timelineName: 't' }), 'ENAMETOOLONG');
    const edge = new Issuer({ driverName: ok, timelineName: 'é'.repeat(127) + 'x' });
    const f = edge.createFence();
    expect(f.driverName).toBe(ok);
    expect(f.timelineName).toBe('é'.repeat(127) + 'x');
    f.dispose();
    edge.dispose();
  });

  it('dispose drops the handle only: fences keep their names, the object refuses use', () => {
    const iss = new Issuer({ driverName: 'd', timelineName: 't' });
    const f = iss.createFence();
    iss.dispose();
    iss.dispose(); // idempotent
    expect(iss.disposed).toBe(true);
    expect(iss.name).toBe('d'); // what never changes stays readable
    expect(iss.kind).toBe('names');
    expectDmaBufError(() => iss.createFence(), 'EBADF');
    expectDmaBufError(() => new Fence({ issuer: iss }), 'EBADF');
    expectDmaBufError(() => iss.state, 'EBADF');
    expectDmaBufError(() => iss.fencesCreated, 'EBADF');
    expectDmaBufError(() => iss.getParam('x'), 'EBADF');
    expect(f.driverName).toBe('d'); // each fence has its own copy of the names
    f.signal();
    expect(f.driverName).toBe('detached-driver');
    f.dispose();
    const g = new Issuer({ driverName: 'd', timelineName: 't' });
    g[Symbol.dispose]();
    expect(g.disposed).toBe(true);
  });

  it('unload() refuses new fences (ENODEV) and leaves existing ones alone', async () => {
    const iss = new Issuer({ driverName: 'd', timelineName: 't' });
    const f = iss.createFence();
    await iss.unload();
    expect(iss.state).toBe('unloaded');
    expect(iss.lastUnloadStats).toBeNull();
    expectDmaBufError(() => iss.createFence(), 'ENODEV');
    expect(f.status).toBe(0); // nothing signals a names issuer's fences for it
    expect(f.driverName).toBe('d');
    f.signal();
    expect(f.status).toBe(1);
    await iss.unload(); // again: a no-op
    f.dispose();
    iss.dispose();
  });

  it('has no parameters', () => {
    const iss = new Issuer({ driverName: 'd', timelineName: 't' });
    expectDmaBufError(() => iss.setParam('x', 1), 'ENOENT');
    expectDmaBufError(() => iss.getParam('x'), 'ENOENT');
    iss.dispose();
  });

  it('Fence: issuer with lock is refused; issuer must be an Issuer', () => {
    const iss = new Issuer({ driverName: 'd', timelineName: 't' });
    const lock = new FenceLock();
    expectArgError(() => new Fence({ issuer: iss, lock }), TypeError, 'ERR_INVALID_ARG_VALUE');
    expectArgError(() => new Fence({ issuer: {} as Issuer }), TypeError, 'ERR_INVALID_ARG_TYPE');
    const fake = Object.create(Issuer.prototype) as Issuer; // instanceof would accept it
    expectArgError(() => new Fence({ issuer: fake }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => new Fence({ issuer: iss, context: 1 as unknown as bigint }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => new Fence({ issuer: iss, seqno: -1 }), RangeError, 'ERR_OUT_OF_RANGE');
    expect(iss.fencesCreated).toBe(0);
    lock.dispose();
    iss.dispose();
  });
});

describe('example modules', () => {
  it('examplePath finds the built modules', () => {
    for (const n of ['names', 'ring', 'polled', 'pinned'] as const) {
      expect(Issuer.examplePath(n)).toBe(path.join(root, 'build', 'issuers', `issuer_${n}.so`));
    }
  });

  it('names module: fences signalled by JS and by unload; all readable after the module is gone', async () => {
    const iss = load('names');
    expect(iss.kind).toBe('module');
    expect(iss.name).toBe('example-names');
    expect(iss.path).toBe(Issuer.examplePath('names'));
    expect(iss.params).toEqual(['owned', 'created', 'context']);
    expect(iss.keepOps).toBe(false);
    const fences = Array.from({ length: 10 }, () => iss.createFence());
    const ctx = iss.getParam('context');
    expect(fences[0]!.context).toBe(ctx);
    expect(fences[0]!.driverName).toBe('example-names');
    expect(fences[0]!.timelineName).toBe(`names-${ctx}`);
    for (const f of fences.slice(0, 4)) f.signal();
    let fired = 0;
    for (const f of fences.slice(4)) f.addCallback(() => fired++);
    expect(iss.getParam('owned')).toBe(10n); // it drops signalled ones lazily
    expect(iss.fencesCreated).toBe(10);

    await iss.unload();
    expect(iss.state).toBe('unloaded');
    expect(mapped(iss.path!)).toBe(false);
    expect(fired).toBe(6);
    const s = iss.lastUnloadStats!;
    expect(s.totalNs).toBeGreaterThan(0);
    expect(s.totalNs).toBeGreaterThanOrEqual(s.signalAllNs + s.drainNs + s.graceNs + s.shutdownNs + s.closeNs);
    expect(iss.fencesCreated).toBe(10); // kept after unload
    expect(iss.pinnedFences).toBe(0);
    for (const [i, f] of fences.entries()) {
      expect(f.status).toBe(i < 4 ? 1 : -125); // the module cancelled what it still owned
      expect(f.driverName).toBe('detached-driver');
      expect(f.timelineName).toBe('signaled-timeline');
      expect(f.opsDetached).toBe(true);
      expect(typeof f.timestamp).toBe('bigint');
      expect(f.describe()).toContain('signalled');
      expect(await f.wait()).toBe(true);
      expect(f.addCallback(() => {})).toBeNull();
      f.setDeadline(1n);
      f.dispose();
    }
    expectDmaBufError(() => iss.createFence(), 'ENODEV');
    expectDmaBufError(() => iss.getParam('owned'), 'ENODEV');
    expectDmaBufError(() => iss.setParam('owned', 1), 'ENODEV');
  });

  it('ring module: fences signal themselves after the latency; unload cancels the queue', async () => {
    const ring = load('ring');
    expect(ring.name).toBe('example-ring');
    expect(ring.getParam('latency_us')).toBe(100n);
    // 100 us is the default; read the names with room to spare on a loaded machine.
    ring.setParam('latency_us', 200_000);
    const f = ring.createFence();
    expect(f.driverName).toBe('example-ring');
    expect(await f.wait({ timeout: 5000 })).toBe(true);
    expect(f.status).toBe(1);
    expect(f.driverName).toBe('detached-driver');

    ring.setParam('latency_us', 20_000);
    expect(ring.getParam('latency_us')).toBe(20_000n);
    const t0 = process.hrtime.bigint();
    const g = new Fence({ issuer: ring });
    expect(await g.wait({ timeout: 5000 })).toBe(true);
    expect(g.timestamp! - t0).toBeGreaterThanOrEqual(15_000_000n);

    ring.setParam('latency_us', 60_000_000); // a minute: never reached
    const queued = Array.from({ length: 20 }, () => ring.createFence());
    const waits = queued.map((q) => q.wait());
    expect(ring.getParam('queued')).toBe(20n);
    await ring.unload();
    expect(await Promise.all(waits)).toEqual(queued.map(() => true));
    for (const q of queued) {
      expect(q.status).toBe(-125);
      expect(q.driverName).toBe('detached-driver');
      q.dispose();
    }
    expect(ring.fencesCreated).toBe(22);
    expect(mapped(ring.path!)).toBe(false);
    f.dispose();
    g.dispose();
  });

  it('polled module: the flag stays clear until someone polls; enabled fences are pushed', async () => {
    const tl = load('polled');
    const [a, b, c] = [tl.createFence(), tl.createFence(), tl.createFence()];
    expect([a.seqno, b.seqno, c.seqno]).toEqual([1n, 2n, 3n]);
    expect(a.isSignaled()).toBe(false);
    const cWait = c.wait(); // enables signalling on c
    expect(tl.getParam('enable_calls')).toBe(1n);
    tl.setParam('advance', 2);
    expect(tl.getParam('counter')).toBe(2n);
    expect(a.signaled).toBe(false); // passed, but nobody asked
    expect(a.isSignaled()).toBe(true); // polls the `signaled` op, which signals it
    expect(a.signaled).toBe(true);
    expect(a.status).toBe(1);
    expect(b.status).toBe(1); // status polls too
    expect(tl.getParam('signaled_calls')).toBeGreaterThanOrEqual(2n);
    let cb = false;
    c.addCallback(() => (cb = true));
    c.setDeadline(123_456_789n);
    expect(tl.getParam('deadline_ns')).toBe(123_456_789n);
    tl.setParam('counter', 3); // pushes c: callbacks run before setParam returns
    expect(cb).toBe(true);
    expect(await cWait).toBe(true);
    expectDmaBufError(() => tl.setParam('counter', 1), 'EINVAL'); // hardware seqnos only go forward
    expectDmaBufError(() => tl.setParam('nope', 1), 'ENOENT');
    const d = tl.createFence();
    await tl.unload();
    expect(d.status).toBe(-125);
    expect(d.isSignaled()).toBe(true);
    for (const f of [a, b, c, d]) {
      expect(f.driverName).toBe('detached-driver');
      f.dispose();
    }
  });

  it('pinned module: unload waits for pinned fences without blocking the loop', async () => {
    const pin = load('pinned');
    const f = pin.createFence();
    const other = pin.createFence();
    other.signal();
    other.dispose();
    expect(f.opsDetached).toBe(false);
    f.signal();
    expect(f.opsDetached).toBe(false); // release: the fence never detaches
    expect(f.driverName).toBe('detached-driver'); // the 7.1 accessor still answers without the module
    diagnostics.rcuBarrier(); // flush the batched put of `other`
    // The module holds a reference to each fence it issued until signal_all.
    expect(pin.pinnedFences).toBe(2);
    expect(pin.getParam('jobs')).toBe(2n);
    expect(pin.getParam('released')).toBe(0n);

    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    let settled = false;
    const unloading = pin.unload({ timeout: 20_000 }).then(() => (settled = true));
    await sleep(100);
    expect(settled).toBe(false);
    expect(pin.state).toBe('draining');
    expect(pin.pinnedFences).toBe(1); // `other` went with signal_all's put; `f` is ours
    // The event loop kept running (were it blocked, the sleep above would never end).
    expect(ticks).toBeGreaterThanOrEqual(3);
    expectDmaBufError(() => pin.createFence(), 'ENODEV');
    expect(f.status).toBe(1);
    f.dispose(); // drops the last pinned fence: unload goes on
    await unloading;
    clearInterval(timer);
    expect(pin.state).toBe('unloaded');
    expect(pin.pinnedFences).toBe(0);
    expect(pin.lastUnloadStats!.drainNs).toBeGreaterThanOrEqual(50_000_000);
    expect(mapped(pin.path!)).toBe(false);
  });

  it('pinned module: timeout rejects EBUSY with the count; unload can be retried', async () => {
    const pin = load('pinned');
    const fences = [pin.createFence(), pin.createFence()];
    let caught: unknown;
    await pin.unload({ timeout: 30 }).catch((e: unknown) => (caught = e));
    expect(caught).toBeInstanceOf(DmaBufError);
    const e = caught as DmaBufError;
    expect(e.code).toBe('EBUSY');
    expect(e.errno).toBe(-16);
    expect(e.syscall).toBe('Issuer.unload');
    expect(e.message).toContain('2 fences with release/wait ops still alive after 30 ms');
    expect(pin.state).toBe('draining');
    expect(pin.pinnedFences).toBe(2);
    expect(fences.map((f) => f.status)).toEqual([-125, -125]); // signal_all ran
    expectDmaBufError(() => pin.createFence(), 'ENODEV');
    expect(diagnostics.loadedIssuerModules()).toBe(orphans + 1);

    fences[0]!.dispose();
    diagnostics.rcuBarrier();
    await expectRejectsCode(pin.unload({ timeout: 0 }), 'EBUSY');
    fences[1]!.dispose();
    await pin.unload({ timeout: 0 }); // unload() flushes dispose()'s batched puts first
    expect(pin.state).toBe('unloaded');
    expect(pin.fencesCreated).toBe(2);
  });

  it('concurrent unload() calls all resolve', async () => {
    const ring = load('ring');
    const f = ring.createFence();
    await Promise.all([ring.unload(), ring.unload(), ring.unload()]);
    expect(ring.state).toBe('unloaded');
    f.dispose();
  });

  it('dispose() does not unload: the module stays loaded until unload()', async () => {
    const before = diagnostics.loadedIssuerModules();
    const file = Issuer.examplePath('polled');
    const iss = Issuer.load(file);
    const f = iss.createFence();
    iss.dispose();
    expect(diagnostics.loadedIssuerModules()).toBe(before + 1);
    expect(mapped(file)).toBe(true);
    expect(f.driverName).toBe('example-polled'); // still answered by the module
    f.dispose();
    // A second load is a separate instance.
    const again = load('polled');
    expect(diagnostics.loadedIssuerModules()).toBe(before + 2);
    await again.unload();
    expect(diagnostics.loadedIssuerModules()).toBe(before + 1);
    expect(mapped(file)).toBe(true);
    orphans++; // no handle left to unload it with: the exit handler will
    // ... as a child proves: it exits cleanly with a module loaded, fences queued.
    const r = runChild(`
      const { Issuer, diagnostics } = require(${JSON.stringify(lib)});
      const iss = Issuer.load(Issuer.examplePath('ring'));
      iss.setParam('latency_us', 30000000);
      const f = iss.createFence(); f.addCallback(() => {});
      iss.dispose();
      console.log('loaded', diagnostics.loadedIssuerModules());`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0); // the exit handler unloaded it cleanly
    expect(r.stdout).toContain('loaded 1');
  });

  it('load/unload/load each module 200 times with fences in flight: nothing leaks', async () => {
    const names = Issuer.examplePath('names');
    const ring = Issuer.examplePath('ring');
    const baseline = diagnostics.loadedIssuerModules();
    const warns = diagnostics.warnCount();
    const held: Fence[] = [];
    for (let i = 0; i < 400; i++) {
      const a = Issuer.load(i % 2 ? names : ring);
      if (i % 2 === 0) a.setParam('latency_us', i % 4 === 0 ? 10 : 10_000_000);
      const fs = Array.from({ length: 5 }, () => a.createFence());
      fs[0]!.signal();
      const w = fs[1]!.wait();
      held.push(fs[2]!);
      const unloading = a.unload();
      for (const f of fs.slice(3)) f.dispose(); // dropped while the unload runs
      await unloading;
      expect(await w).toBe(true);
      expect(a.fencesCreated).toBe(5);
      expect(a.pinnedFences).toBe(0);
      fs[0]!.dispose();
      fs[1]!.dispose();
      a.dispose();
    }
    expect(diagnostics.loadedIssuerModules()).toBe(baseline);
    expect(mapped(names)).toBe(false);
    expect(mapped(ring)).toBe(false);
    for (const f of held) {
      expect(f.signaled).toBe(true);
      expect(f.driverName).toBe('detached-driver');
      expect(binding.fenceRefcount(f.handle)).toBe(1); // the module kept no reference
      f.dispose();
    }
    diagnostics.rcuBarrier();
    expect(diagnostics.warnCount()).toBe(warns);
  });
});

describe('loader errors', () => {
  it('missing file, directory, not a shared object, no entry points', () => {
    const missing = expectDmaBufError(() => Issuer.load('/nonexistent/issuer.so'), 'ENOENT');
    expect(missing.syscall).toBe('Issuer.load');
    expect(missing.message).toContain('/nonexistent/issuer.so');
    expectDmaBufError(() => Issuer.load('no-such-file.so'), 'ENOENT'); // relative: not searched
    expectDmaBufError(() => Issuer.load(path.join(root, 'build')), 'EISDIR');
    const notElf = expectDmaBufError(() => Issuer.load(path.join(root, 'package.json')), 'ENOEXEC');
    expect(notElf.message).toMatch(/invalid ELF header|file too short/); // dlerror()'s words
    // a real shared object that is not an issuer module
    const urcu = path.join(root, 'build', 'Release', 'liburcu-common.so.8');
    const nosys = expectDmaBufError(() => Issuer.load(urcu), 'ENOSYS');
    expect(nosys.message).toContain('DMABUF_ISSUER_MODULE');
    expectDmaBufError(() => Issuer.load(''), 'EINVAL');
    expectDmaBufError(() => Issuer.load(Issuer.examplePath('names') + '\0x'), 'EINVAL');
    expect(diagnostics.loadedIssuerModules()).toBe(orphans);
  });

  it.skipIf(!haveTestModules)('ABI mismatch, missing entry, failing init, incomplete module', () => {
    const badabi = expectDmaBufError(() => Issuer.load(testModule('badabi')), 'EPROTO');
    expect(badabi.message).toContain('99.0');
    expectDmaBufError(() => Issuer.load(testModule('newminor')), 'EPROTO');
    expectDmaBufError(() => Issuer.load(testModule('noinit')), 'ENOSYS');
    expectDmaBufError(() => Issuer.load(testModule('noentry')), 'ENOSYS');
    expectDmaBufError(() => Issuer.load(testModule('initfail')), 'ENXIO');
    const badops = expectDmaBufError(() => Issuer.load(testModule('badops')), 'EINVAL');
    expect(badops.message).toContain('get_timeline_name');
    expect(diagnostics.loadedIssuerModules()).toBe(orphans);
  });

  it('examplePath: ENOENT when not built, argument errors', () => {
    const saved = process.env['DMABUF_ISSUER_DIR'];
    process.env['DMABUF_ISSUER_DIR'] = path.join(root, 'test');
    try {
      const e = expectDmaBufError(() => Issuer.examplePath('ring'), 'ENOENT');
      expect(e.message).toContain('source builds');
    } finally {
      if (saved === undefined) delete process.env['DMABUF_ISSUER_DIR'];
      else process.env['DMABUF_ISSUER_DIR'] = saved;
    }
    expectArgError(() => Issuer.examplePath('nope' as 'ring'), TypeError, 'ERR_INVALID_ARG_VALUE');
    expectArgError(() => Issuer.examplePath(1 as unknown as 'ring'), TypeError, 'ERR_INVALID_ARG_TYPE');
  });
});

describe('argument validation', () => {
  it('constructor and load', () => {
    const T = TypeError;
    const bad = (v: unknown): Issuer => new Issuer(v as { driverName: string; timelineName: string });
    expectArgError(() => bad(undefined), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => bad(null), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => bad('gpu'), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => bad({ timelineName: 't' }), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => bad({ driverName: 'd', timelineName: 1 }), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => bad({ driverName: Buffer.from('d'), timelineName: 't' }), T, 'ERR_INVALID_ARG_TYPE');
    const load = Issuer.load as (...a: unknown[]) => Issuer;
    expectArgError(() => load(), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => load(42), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => load(new URL('file:///x.so')), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => load('x.so', 'keep'), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => load('x.so', null), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => load('x.so', []), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => bad([]), T, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => load('x.so', { keepOps: 1 }), T, 'ERR_INVALID_ARG_TYPE');
  });

  it('createFence, params and unload', async () => {
    const iss = load('polled');
    const cf = iss.createFence.bind(iss) as (...a: unknown[]) => Fence;
    expectArgError(() => cf('x'), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => cf(null), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => cf([]), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => cf(() => {}), TypeError, 'ERR_INVALID_ARG_TYPE');
    const lock = new FenceLock();
    expectArgError(() => cf({ lock }), TypeError, 'ERR_INVALID_ARG_VALUE'); // same rules as new Fence
    lock.dispose();
    expectArgError(() => cf({ context: 1 }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => cf({ context: -1n }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => cf({ seqno: -1 }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => cf({ seqno: 1.5 }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => cf({ seqno: 2n ** 64n }), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => cf({ seqno: '1' }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => cf({ seqno64: 1 }), TypeError, 'ERR_INVALID_ARG_TYPE');
    expect(iss.fencesCreated).toBe(0);

    const sp = iss.setParam.bind(iss) as (...a: unknown[]) => void;
    const gp = iss.getParam.bind(iss) as (...a: unknown[]) => bigint;
    expectArgError(() => sp(1, 1), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => sp('advance'), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => sp('advance', '1'), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => sp('advance', 1.5), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => sp('advance', NaN), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => sp('advance', 2 ** 53), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => sp('advance', 2n ** 63n), RangeError, 'ERR_OUT_OF_RANGE');
    expectArgError(() => gp(), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectArgError(() => gp(Symbol('x')), TypeError, 'ERR_INVALID_ARG_TYPE');
    expectDmaBufError(() => sp('advance', -1), 'EINVAL'); // the module's own check
    expectDmaBufError(() => gp(''), 'ENOENT');
    // "counter\0x" must not reach the module as "counter"
    expectDmaBufError(() => gp('counter\0x'), 'EINVAL');
    expectDmaBufError(() => sp('advance\0x', 1), 'EINVAL');
    expect(iss.getParam('counter')).toBe(0n);
    iss.setParam('advance', 3n);
    expect(iss.getParam('counter')).toBe(3n);

    const ul = iss.unload.bind(iss) as (...a: unknown[]) => Promise<void>;
    await expectRejectsCode(ul('fast'), 'ERR_INVALID_ARG_TYPE');
    await expectRejectsCode(ul(null), 'ERR_INVALID_ARG_TYPE');
    await expectRejectsCode(ul([]), 'ERR_INVALID_ARG_TYPE');
    await expectRejectsCode(ul({ timeout: '1' }), 'ERR_INVALID_ARG_TYPE');
    await expectRejectsCode(ul({ timeout: -1 }), 'ERR_OUT_OF_RANGE');
    await expectRejectsCode(ul({ timeout: NaN }), 'ERR_OUT_OF_RANGE');
    expect(iss.state).toBe('live'); // none of these started anything
    await ul({ timeout: Infinity });
    expect(iss.state).toBe('unloaded');
    iss.dispose();
    await expectRejectsCode(iss.unload(), 'EBADF');
  });
});

describe('threads and process lifetime', () => {
  it('a worker terminated while its unload waits for a fence it holds: no hang, the unload completes', async () => {
    const { Worker } = await import('node:worker_threads');
    const before = diagnostics.loadedIssuerModules();
    const w = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const { Issuer } = require(workerData.lib);
       const pin = Issuer.load(Issuer.examplePath('pinned'));
       globalThis.keep = pin.createFence();
       pin.unload({ timeout: Infinity }).then(() => parentPort.postMessage('unexpected'));
       setTimeout(() => parentPort.postMessage(pin.state), 30);`,
      { eval: true, workerData: { lib } },
    );
    const state = await new Promise((resolve) => w.once('message', resolve));
    expect(state).toBe('draining');
    expect(diagnostics.loadedIssuerModules()).toBe(before + 1);
    await w.terminate(); // teardown drops `keep`, so the unload thread finishes
    for (let i = 0; i < 500 && diagnostics.loadedIssuerModules() > before; i++) await sleep(10);
    expect(diagnostics.loadedIssuerModules()).toBe(before);
  });

  it('fences of a module loaded by a worker outlive the worker; modules are process-wide', async () => {
    const { Worker } = await import('node:worker_threads');
    const w = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const { Issuer } = require(workerData.lib);
       const iss = Issuer.load(Issuer.examplePath('polled'));
       const f = iss.createFence();
       parentPort.postMessage(f.exportHandle());
       f.dispose();
       iss.dispose();`,
      { eval: true, workerData: { lib } },
    );
    const h = await new Promise<bigint>((resolve) => w.once('message', resolve));
    await new Promise((resolve) => w.once('exit', resolve));
    const f = Fence.importHandle(h);
    expect(f.driverName).toBe('example-polled'); // still loaded: the worker's exit unloaded nothing
    expect(f.isSignaled()).toBe(false);
    expect(diagnostics.loadedIssuerModules()).toBe(1 + orphans);
    f.dispose();
    orphans++; // unloaded by the exit handler
  });

  it('process exit with modules loaded, fences queued and an unload in flight: clean', () => {
    for (const how of ['return', 'process.exit()']) {
      const r = runChild(`
        const { Issuer } = require(${JSON.stringify(lib)});
        const ring = Issuer.load(Issuer.examplePath('ring'));
        ring.setParam('latency_us', 2000);
        for (let i = 0; i < 200; i++) ring.createFence().addCallback(() => {});
        const pin = Issuer.load(Issuer.examplePath('pinned'));
        globalThis.keep = pin.createFence();
        pin.unload({ timeout: Infinity });
        const t0 = Date.now();
        process.on('exit', () => console.log('exiting'));
        setTimeout(() => { ${how === 'return' ? 'globalThis.keep.dispose()' : 'process.exit(0)'}; }, 20);`);
      expect(r.stderr).toBe('');
      expect(r.signal).toBeNull();
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('exiting');
    }
  });
});

describe('the pre-7.1 crash', () => {
  const crashScript = `
    const { Issuer, diagnostics } = require(${JSON.stringify(lib)});
    const keepOps = process.argv[1] === 'keep';
    const iss = Issuer.load(Issuer.examplePath('names'), { keepOps });
    const f = iss.createFence();
    f.signal();
    console.log('keepOps', iss.keepOps, 'opsDetached', f.opsDetached);
    iss.unload().then(() => {
      console.log('unloaded');
      // The 7.1 accessor never calls the ops of a signalled fence, even kept ones:
      console.log('driverName', f.driverName, f.timelineName, f.status);
      console.log('dropping the fence');
      f.dispose();
      diagnostics.rcuBarrier(); // flushes the batched put: release reads the unmapped ops table
      console.log('survived');
    });`;

  it('keepOps: dropping a signalled fence after unload kills the process with SIGSEGV', () => {
    const r = runChild(crashScript, ['keep']);
    expect(r.stdout).toContain('keepOps true opsDetached false');
    expect(r.stdout).toContain('driverName detached-driver signaled-timeline 1');
    expect(r.stdout).toContain('dropping the fence');
    expect(r.stdout).not.toContain('survived');
    expect(r.signal).toBe('SIGSEGV');
  });

  it('7.1 (default): the same steps survive', () => {
    const r = runChild(crashScript, ['detach']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('keepOps false opsDetached true');
    expect(r.stdout).toContain('survived');
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
  });
});
