// One fuzz run: `node --expose-gc -r ./addon-shim.cjs child.mjs --seed N [--ops N]
// [--pkg dist/index.js] [--without tag,tag]`. Every choice comes from the seed.
// Protocol (stderr, one line each): FUZZ-TRACE <op> as it goes; FUZZ-FINDING
// <json> for an exception of a class other than DmaBufError/TypeError/
// RangeError/AbortError, or an uncaught exception / unhandled rejection the
// run did not provoke (then exit code 3); FUZZ-EXIT-DELIBERATE before a
// process.exit() of our own; FUZZ-END <stats>; FUZZ-OK at a clean exit.
// Crashes, sanitizer reports and hangs are the parent's to see (run.mjs).
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from './prng.mjs';
import { Values, Deliberate, isDeliberate, safeGet } from './values.mjs';
import { Ops } from './ops.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const seed = Number(opt('seed', '1')) >>> 0;
const nOps = Number(opt('ops', '300'));
const pkgPath = path.resolve(opt('pkg', process.env.DMABUF_FUZZ_PKG || path.join(here, '..', '..', 'dist', 'index.js')));
const without = new Set((opt('without', '') || '').split(',').filter(Boolean));
const quiet = argv.includes('--quiet');

// Node makes fd 2 non-blocking once anything touches process.stderr, so a
// write can fail with EAGAIN while the parent is slow to read (a loaded CI
// machine): retry, or a lost FUZZ-OK line reads as "exit 0 without finishing".
const pause = new Int32Array(new SharedArrayBuffer(4));
function out(line) {
  let buf = Buffer.from(`${line}\n`);
  const deadline = Date.now() + 10000;
  while (buf.length) {
    try {
      buf = buf.subarray(fs.writeSync(2, buf));
    } catch (e) {
      if (e?.code !== 'EAGAIN' || Date.now() > deadline) return; // stderr gone
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

const ALLOWED = new Set(['DmaBufError', 'TypeError', 'RangeError', 'AbortError']);
let current = 'load';
let finished = false;
let reported = false;

function describeErr(e) {
  let name;
  let message;
  let code;
  let stack;
  try {
    name = e?.name;
    message = e?.message ?? String(e);
    code = e?.code;
    stack = typeof e?.stack === 'string' ? e.stack.split('\n').slice(0, 8).join('\n') : undefined;
  } catch {
    message = 'unprintable';
  }
  return { name: typeof name === 'string' ? name : String(name), message: String(message), code, stack };
}

function finding(kind, e, where = current) {
  if (reported) return;
  reported = true;
  out(`FUZZ-FINDING ${JSON.stringify({ kind, where, ...describeErr(e) })}`);
  process.exit(3);
}

const stats = { ops: 0, thrown: {}, uncoded: 0, deliberate: 0, callbacks: 0, workers: 0, unsettled: 0 };

/** Judges an exception an API call threw (or a promise it returned rejected with). */
export function judge(e, where = current) {
  if (isDeliberate(e)) {
    stats.deliberate++;
    return;
  }
  const name = e && (typeof e === 'object' || typeof e === 'function') ? safeGet(e, 'name') : undefined;
  if (ALLOWED.has(name)) {
    stats.thrown[name] = (stats.thrown[name] ?? 0) + 1;
    if ((name === 'TypeError' || name === 'RangeError') && safeGet(e, 'code') === undefined) stats.uncoded++;
    return;
  }
  finding('exception', e, where);
}

process.on('uncaughtException', (e) => {
  if (isDeliberate(e)) {
    stats.deliberate++;
    return;
  }
  // A mem-crypt hook that returned garbage is reported this way on purpose.
  if (fz?.badHookReturns && safeGet(e, 'code') === 'ERR_INVALID_RETURN_VALUE') return;
  // A class handed over as a callback throws when called: ours, surfaced as the package should.
  if (safeGet(e, 'name') === 'TypeError' && /Class constructor FuzzClass/.test(String(safeGet(e, 'message')))) return;
  finding('uncaught-exception', e);
});
process.on('unhandledRejection', (e) => {
  if (isDeliberate(e)) return;
  finding('unhandled-rejection', e);
});
process.on('exit', (code) => {
  if (reported) return;
  if (!finished && !fz?.exiting) {
    out(`FUZZ-FINDING ${JSON.stringify({ kind: 'premature-exit', where: current, name: '', message: `the event loop ended during op ${current} (exit code ${code})` })}`);
    process.exitCode = 3;
    return;
  }
  out('FUZZ-OK');
});

let fz;
let dm;
try {
  process.env.DMABUF_FUZZ_PKG = pkgPath;
  const require = createRequire(import.meta.url);
  dm = require(pkgPath);
} catch (e) {
  out(`FUZZ-LOAD-FAILED ${JSON.stringify(describeErr(e))}`);
  reported = true;
  process.exit(4);
}

class Fuzz {
  constructor() {
    this.rng = new Rng(seed);
    this.seed = seed;
    this.dm = dm;
    this.pkgPath = pkgPath;
    this.here = here;
    this.without = without;
    this.stats = stats;
    this.pools = new Map();
    this.all = []; // WeakRefs of everything ever made, for teardown
    this.promises = []; // { p, label, settled }
    this.controllers = [];
    this.workers = [];
    this.capturedSymbols = new Set();
    this.deadHandles = []; // native handle numbers of disposed fences
    this.badHookReturns = false;
    this.exiting = false;
    this.judge = judge;
    this.finding = finding;
    this.out = out;
    this.classes = Object.values(dm).filter((v) => typeof v === 'function' && /^class[\s{]/.test(Function.prototype.toString.call(v)));
    // Most derived first, so kindOf() names FenceArray before Fence.
    this.classes.sort((a, b) => (a.prototype instanceof b ? -1 : b.prototype instanceof a ? 1 : 0));
    this.values = new Values(this);
  }

  allow(tag) {
    return !this.without.has(tag);
  }
  note(text) {
    if (!quiet) out(`FUZZ-TRACE   ${text}`);
  }

  kindOf(o) {
    if (o === null || (typeof o !== 'object' && typeof o !== 'function')) return undefined;
    for (const c of this.classes) if (o instanceof c) return c.name;
    if (o instanceof ArrayBuffer) return 'ArrayBuffer';
    return undefined;
  }

  /** Remembers an object the package returned (arrays: each member). */
  register(o, depth = 0) {
    if (Array.isArray(o) && depth === 0) {
      for (const x of o.slice(0, 16)) this.register(x, 1);
      return o;
    }
    const kind = this.kindOf(o);
    if (!kind) return o;
    this.push(kind, o);
    if (o instanceof dm.Fence && kind !== 'Fence') this.push('Fence', o);
    this.all.push(new WeakRef(o));
    return o;
  }
  push(kind, o) {
    let pool = this.pools.get(kind);
    if (!pool) this.pools.set(kind, (pool = []));
    if (pool.includes(o)) return;
    pool.push(o);
    if (pool.length > 40) pool.splice(this.rng.int(pool.length), 1); // dropped, not disposed: GC's job
  }
  pick(kind) {
    const pool = this.pools.get(kind);
    return pool && pool.length ? this.rng.pick(pool) : undefined;
  }
  randomObject() {
    const kinds = [...this.pools.keys()].filter((k) => this.pools.get(k).length);
    if (!kinds.length) return undefined;
    return this.pick(this.rng.pick(kinds));
  }
  realHandleNumbers() {
    const nums = [...this.deadHandles];
    for (const f of (this.pools.get('Fence') ?? []).slice(0, 8)) {
      const h = safeGet(f, 'handle');
      if (typeof h === 'number') nums.push(h);
    }
    return nums;
  }

  abortSignal() {
    const c = new AbortController();
    this.controllers.push(c);
    if (this.controllers.length > 30) this.controllers.shift();
    return c.signal;
  }

  /** Tracks a promise the package returned: its rejection is judged, never unhandled. */
  track(p, label) {
    if (!p || typeof p.then !== 'function') return p;
    const rec = { p, label, settled: false };
    this.promises.push(rec);
    const where = `${current} (${label})`;
    p.then(
      () => {
        rec.settled = true;
      },
      (e) => {
        rec.settled = true;
        judge(e, where);
      },
    );
    return p;
  }

  /** A value that is valid, or nearly, for an option key. */
  semiValid(k) {
    const r = this.rng;
    switch (k) {
      case 'timeout': return r.pick([0, 1, 2, 5, 10, 0.5, Infinity, undefined]);
      case 'signal': return r.chance(0.2) ? AbortSignal.abort() : this.abortSignal();
      case 'context': return r.chance(0.5) ? safeCall(() => dm.Fence.allocContext()) : BigInt(r.int(4));
      case 'seqno': return r.chance(0.5) ? r.int(10) : BigInt(r.int(10));
      case 'seqno64': case 'pinned': case 'peer2peer': case 'memEncrypt': case 'dup': case 'cloexec': case 'jsOnly':
        return r.chance(0.5);
      case 'lock': return this.pick('FenceLock');
      case 'issuer': return this.pick('Issuer');
      case 'backend': return r.pick(['emulated', 'kernel', 'auto', 'all']);
      case 'name': case 'device': case 'driverName': case 'timelineName': return r.pick(['a', 'fuzz', 'x'.repeat(40), '']);
      case 'path': return r.pick(['/nonexistent', '/dev/null', '/']);
      case 'fdFlags': return r.pick([0, 2, 0o2000002, 0o2000000, 1, 0x80000000]);
      case 'heapFlags': return r.pick([0n, 1n]);
      case 'moveNotify': case 'decrypt': case 'encrypt': return this.reentrantCallback(k);
      case 'kernelVersion': return r.pick(['7.1', '6.12', '6.0', '5.10', 'x']);
      case 'arch': return r.pick(['x86_64', 'aarch64', 'armv7l', 'riscv64', 's390x', 'ppc64le', 'mips']);
      case 'cmaSize': case 'ramSize': return r.pick([0, 4096 * 16, 1 << 20, 4096n * 64n]);
      case 'nth': case 'times': return r.int(4);
      case 'error': return r.pick(['ENOMEM', -12, 'EIO', 5]);
      case 'offset': return r.pick([0, 4096]);
      case 'size': return r.pick([4096, 8192, 0]);
      case 'seals': return r.pick([['shrink'], [], ['seal', 'grow']]);
      case 'memfd': return this.pick('Memfd') ?? 3;
      case 'filter': return 'no-such-row';
      case 'ms': return 1;
      default: return undefined;
    }
  }

  /** A callback that re-enters the API when it runs (with its own random stream). */
  reentrantCallback(label) {
    const sub = this.rng.fork();
    return (...args) => {
      stats.callbacks++;
      const saved = this.rng;
      this.rng = sub;
      const where = `${current} > callback ${label}`;
      try {
        if (this.allow('reenter')) {
          const n = sub.int(4);
          for (let i = 0; i < n; i++) {
            try {
              this.ops.reentrant(args[0]);
            } catch (e) {
              judge(e, where);
            }
          }
        }
        if (sub.chance(0.1)) throw new Deliberate(`callback ${label}`);
        if (label === 'decrypt' || label === 'encrypt') {
          const r = sub.pick([0, undefined, 0, -12, 'ENOMEM', 'bogus', 7]);
          if (r === 'bogus' || r === 7) this.badHookReturns = true;
          return r;
        }
        return undefined;
      } finally {
        this.rng = saved;
      }
    };
  }

  exitNow(where) {
    this.exiting = true;
    out(`FUZZ-EXIT-DELIBERATE ${where}`);
    process.exit(0);
  }
}

function safeCall(fn) {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  fz = new Fuzz();
  fz.ops = new Ops(fz);
  const rng = fz.rng;
  const exitAt = fz.allow('exit') && rng.chance(0.08) ? rng.int(nOps) : -1;
  out(`FUZZ-TRACE seed ${seed} ops ${nOps} without [${[...without]}] exitAt ${exitAt}`);
  for (let i = 0; i < nOps; i++) {
    if (i === exitAt) fz.exitNow(`at op ${i}`);
    const op = fz.ops.choose();
    current = `#${i} ${op.name}`;
    stats.ops++;
    if (!quiet) out(`FUZZ-TRACE ${current}`);
    try {
      const r = op.fn();
      if (r && typeof r.then === 'function') await r;
    } catch (e) {
      judge(e);
    }
  }
  current = 'teardown';
  out('FUZZ-TRACE teardown');
  await fz.ops.teardown();
  const unsettled = fz.promises.filter((p) => !p.settled && p.label !== 'unload');
  stats.unsettled = unsettled.length;
  out(`FUZZ-END ${JSON.stringify(stats)}`);
  finished = true;
  if (fz.promises.some((p) => !p.settled) || fz.workers.some((w) => !w.exited)) {
    // Something can legitimately still be pending (a fence only a disposed
    // object could reach): end here rather than wait for it.
    if (unsettled.length) out(`FUZZ-TRACE unsettled: ${unsettled.slice(0, 5).map((p) => p.label).join(', ')}`);
    fz.exitNow('teardown with pending work');
  }
  // Everything settled: the loop must now end on its own.
  setTimeout(() => {
    current = 'after teardown';
    finding('hang-loop', new Error('the event loop stayed alive after every wait settled and every object was released'));
  }, 3000).unref();
}

main().catch((e) => {
  if (isDeliberate(e)) return;
  finding('fuzzer-bug', e);
});
