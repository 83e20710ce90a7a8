// The package's public surface, discovered from its exports (so new exports
// are fuzzed without touching this file), and hostile calls into it: wrong
// receivers, wrong argument types and counts, constructors without `new`.
import { types } from 'node:util';
import { Deliberate, safeGet } from './values.mjs';

const isProxy = (o) => types.isProxy(o);

/** Every callable member of the exports: functions, constructors, statics, methods, getters, setters. */
export function discover(dm) {
  const out = [];
  const isClass = (v) => typeof v === 'function' && /^class[\s{]/.test(Function.prototype.toString.call(v));
  for (const [name, v] of Object.entries(dm)) {
    if (typeof v === 'function' && isClass(v)) {
      out.push({ kind: 'new', cls: v, name: `new ${name}`, fn: v });
      out.push({ kind: 'call-ctor', cls: v, name: `${name}()`, fn: v });
      for (const key of Reflect.ownKeys(v)) {
        if (key === 'prototype' || key === 'length' || key === 'name') continue;
        const d = Object.getOwnPropertyDescriptor(v, key);
        if (typeof d.value === 'function') out.push({ kind: 'static', cls: v, name: `${name}.${String(key)}`, fn: d.value, key });
        if (d.get) out.push({ kind: 'static-get', cls: v, name: `${name}.${String(key)}`, fn: d.get, key });
      }
      // Prototype chain up to (not including) Object.prototype: inherited members too.
      const seen = new Set();
      for (let p = v.prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
        for (const key of Reflect.ownKeys(p)) {
          if (key === 'constructor' || seen.has(key)) continue;
          seen.add(key);
          const d = Object.getOwnPropertyDescriptor(p, key);
          const label = `${name}.prototype.${String(key)}`;
          if (typeof d.value === 'function') out.push({ kind: 'method', cls: v, name: label, fn: d.value, key });
          if (d.get) out.push({ kind: 'getter', cls: v, name: label, fn: d.get, key });
          if (d.set) out.push({ kind: 'setter', cls: v, name: label, fn: d.set, key });
        }
      }
    } else if (typeof v === 'function') {
      out.push({ kind: 'fn', name, fn: v });
    } else if (v && typeof v === 'object') {
      for (const key of Reflect.ownKeys(v)) {
        const f = safeGet(v, key);
        if (typeof f === 'function') out.push({ kind: 'obj-method', owner: v, name: `${name}.${String(key)}`, fn: f, key });
      }
    }
  }
  return out;
}

function kindName(v) {
  if (v && typeof v === 'object' && !types.isProxy(v) && Object.getOwnPropertyDescriptor(v, 'handle')) {
    return `${kindName2(v)}{own handle: ${String(Object.getOwnPropertyDescriptor(v, 'handle').value)}}`;
  }
  return kindName2(v);
}
function kindName2(v) {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return `${v}n`.slice(0, 24);
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 12 ? `${v.slice(0, 12)}…` : v);
  if (typeof v === 'symbol') return 'Symbol';
  if (typeof v === 'function') return 'function';
  if (typeof v !== 'object') return String(v);
  try {
    if (Array.isArray(v)) return `Array(${v.length})`;
    const c = Object.getPrototypeOf(v)?.constructor?.name;
    return c || 'Object';
  } catch {
    return 'Proxy?';
  }
}
export function describeValue(v) {
  try {
    return kindName(v);
  } catch {
    return '?';
  }
}

export class Surface {
  constructor(fz) {
    this.fz = fz;
    this.entries = discover(fz.dm);
    this.ownFds = [];
    // The package's own accessors, taken before any run can redefine properties
    // on instances ('redefine property' in ops.mjs): the CPU-access guard must
    // not believe a `closed` or `resv` a hostile op planted.
    const own = (cls, key) => Object.getOwnPropertyDescriptor(cls.prototype, key);
    const { DmaBuf, Resv } = fz.dm;
    this.bufClosed = own(DmaBuf, 'closed').get;
    this.bufResv = own(DmaBuf, 'resv').get;
    this.resvTestSignaled = own(Resv, 'testSignaled').value;
  }

  receiver(entry) {
    const fz = this.fz;
    const r = fz.rng;
    const v = fz.values;
    const name = entry.cls?.name;
    if (!fz.allow('wrongrecv')) return (name && fz.pick(name)) ?? undefined;
    return r.weighted([
      [60, () => (name && fz.pick(name)) ?? v.poolObject()],
      [12, () => v.poolObject()], // an object of (probably) another class
      [6, () => (entry.cls ? Object.create(entry.cls.prototype) : {})],
      [6, () => v.proxy(0)],
      [6, () => v.primitive()],
      [5, () => v.fake()],
      [5, () => {
        const o = (name && fz.pick(name)) ?? {};
        return new Proxy(o, {});
      }],
    ])();
  }

  args(entry) {
    const r = this.fz.rng;
    const v = this.fz.values;
    const len = entry.fn.length;
    const n = Math.max(0, r.weighted([[50, len], [20, len + 1], [15, len - 1], [10, 0], [5, r.int(5)]]));
    const a = [];
    for (let i = 0; i < n; i++) a.push(v.any(0));
    return a;
  }

  /** Keeps a hostile call from doing what ordinary code legitimately may not: block for ever, run the benchmark, close stdio, allocate gigabytes. */
  sanitize(entry, recv, args) {
    const fz = this.fz;
    const r = fz.rng;
    const key = String(entry.key ?? entry.name);
    if (/waitSync|waitAnySync/.test(key)) {
      const i = Math.max(0, entry.fn.length - 1);
      while (args.length <= i) args.push(undefined);
      const t = args[i];
      if (t === undefined || (typeof t === 'number' && t > 30)) args[i] = r.int(10);
    }
    if (/^(beginCpuAccess|sync)$/.test(key) && !this.cpuAccessWontBlock(recv)) return false;
    if (/runBench/.test(key)) {
      // runBench/runBenchAsync validate nothing, and even a filter that matches
      // no row runs for ~25 s (a non-string filter runs the whole benchmark):
      // only arguments that fail at once.
      const a = r.pick([
        null,
        new Proxy({}, { get() { throw new Deliberate('bench opts'); } }),
        { get filter() { throw new Deliberate('bench filter'); } },
      ]);
      args.splice(0, args.length, a);
    }
    if (key === 'load' && entry.cls?.name === 'Issuer') {
      // keepOps: true is the documented pre-7.1 crash; never ask for it.
      if (args.length > 1 && (typeof args[1] === 'object' || typeof args[1] === 'function') && args[1] !== null) {
        let keep;
        try {
          keep = args[1].keepOps;
        } catch {
          keep = true;
        }
        if (keep !== false && keep !== undefined) args[1] = undefined;
      }
      if (r.chance(0.5)) args[0] = fz.ops.modulePath();
    }
    if (/fromFd/.test(key) && typeof args[0] === 'number' && Number.isInteger(args[0]) && args[0] >= 0) {
      // dup: false hands the fd over to the package: only ever one of ours.
      let dup = true;
      if (args[1] !== undefined) {
        try {
          dup = args[1]?.dup ?? true;
        } catch {
          dup = false;
        }
      }
      if (dup !== true) args[0] = this.ownFd();
    }
    if (key === 'listen' && entry.cls?.name === 'FdChannel' && typeof args[0] === 'string') {
      // A listener creates a socket file at its path (and replaces a stale
      // socket there): never in the working tree (the repository) or anywhere
      // but a directory of our own. Paths that fail before touching the file
      // system (empty, NUL bytes, longer than sun_path) stay as they are.
      const p = args[0];
      if (p !== '' && !p.includes('\0') && Buffer.byteLength(p) < 108) args[0] = this.sockPath(p);
    }
    // Sizes: hostile extremes are fine (ENOMEM), real gigabyte allocations are not.
    for (let i = 0; i < args.length; i++) args[i] = this.capSize(args[i]);
    for (const o of args) {
      if (o && typeof o === 'object' && !isProxy(o) && !Array.isArray(o)) {
        for (const k of ['cmaSize', 'ramSize', 'size']) {
          const d = Object.getOwnPropertyDescriptor(o, k);
          if (d && 'value' in d && d.writable) o[k] = this.capSize(d.value);
        }
      }
    }
    return true;
  }

  capSize(x) {
    if (typeof x === 'number' && x > 1 << 24 && x < 2 ** 41) return 4096;
    if (typeof x === 'bigint' && x > 1n << 24n && x < 1n << 41n) return 4096n;
    return x;
  }

  /** A path in this process's own directory for a socket file named after `p`. */
  sockPath(p) {
    const fs = require_fs();
    if (!this.sockDir) {
      this.sockDir = fs.mkdtempSync(`${requireCjs('node:os').tmpdir()}/dmabuf-fuzz-sock-`);
      const dir = this.sockDir;
      process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    }
    return `${this.sockDir}/${encodeURIComponent(p).slice(0, 40) || 's'}`;
  }

  ownFd() {
    const fd = require_fs().openSync('/dev/null', 'r');
    this.ownFds.push(fd);
    return fd;
  }

  cpuAccessWontBlock(recv) {
    // DMA_BUF_IOCTL_SYNC(START) waits for the implicit fences, without a timeout, as the kernel does.
    const { DmaBuf } = this.fz.dm;
    if (!(recv instanceof DmaBuf)) return true;
    try {
      // Through the prototype's accessors, never the instance's properties:
      // hostile ops redefine those. A kernel buffer's resv throws (EOPNOTSUPP)
      // and lands below.
      if (this.bufClosed.call(recv)) return true;
      // A worker may add a pending fence between this check and the wait (ops.mjs).
      if (this.fz.resvHandedToWorker) return false;
      return this.resvTestSignaled.call(this.bufResv.call(recv), 'bookkeep');
    } catch {
      return true;
    }
  }

  /** One hostile call into a random member of the public surface. */
  call() {
    const fz = this.fz;
    const r = fz.rng;
    const e = r.pick(this.entries);
    let recv;
    const args = this.args(e);
    switch (e.kind) {
      case 'method': case 'getter': case 'setter':
        recv = this.receiver(e);
        if (recv === undefined && !fz.allow('wrongrecv')) return undefined;
        break;
      case 'static': case 'static-get': recv = r.chance(0.85) || !fz.allow('wrongrecv') ? e.cls : this.fz.values.any(0); break;
      case 'obj-method': recv = r.chance(0.85) || !fz.allow('wrongrecv') ? e.owner : this.fz.values.any(0); break;
      default: recv = r.chance(0.9) || !fz.allow('wrongrecv') ? undefined : this.fz.values.any(0);
    }
    if (!this.sanitize(e, recv, args)) return undefined;
    fz.note(`${e.name} this=${describeValue(recv)} (${args.map(describeValue).join(', ')})`);
    let result;
    switch (e.kind) {
      case 'new': {
        const nt = r.chance(0.1) ? r.pick(fz.classes) : e.cls;
        result = Reflect.construct(e.cls, args, nt);
        break;
      }
      case 'getter': case 'static-get': result = e.fn.call(recv); break;
      case 'setter': result = e.fn.call(recv, args[0]); break;
      default: result = e.fn.apply(recv, args);
    }
    return this.absorb(result, e.name);
  }

  /** Keeps what a call returned: objects join the pools, promises are tracked, iterables maybe consumed. */
  absorb(result, label) {
    const fz = this.fz;
    if (result && typeof result.then === 'function') {
      fz.track(result, label);
      return undefined;
    }
    if (result && typeof result === 'object' && typeof result[Symbol.iterator] === 'function' && !Array.isArray(result)) {
      fz.ops.iterables.push(result);
      if (fz.ops.iterables.length > 20) fz.ops.iterables.shift();
      return undefined;
    }
    fz.register(result);
    return undefined;
  }
}

import { createRequire } from 'node:module';
const requireCjs = createRequire(import.meta.url);
function require_fs() {
  return requireCjs('node:fs');
}
