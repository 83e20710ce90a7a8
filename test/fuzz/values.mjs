// Hostile values: wrong types, edge numbers, huge and negative bigints,
// Symbols, Proxies (some answering symbol keys with numbers, i.e. trying to
// forge native handles), objects whose getters throw, sparse arrays, fakes
// made with Object.create(X.prototype), and the fuzzer's own live objects.

/** Thrown on purpose by getters, traps, callbacks and hooks: never a finding. */
export class Deliberate extends Error {
  constructor(where) {
    super(`deliberate throw (${where})`);
    this.name = 'FuzzDeliberate';
  }
}
export const DELIBERATE_STRING = '\u0000fuzz-deliberate';
export function isDeliberate(e) {
  return e instanceof Deliberate || e === DELIBERATE_STRING || (e && e.name === 'FuzzDeliberate');
}

const NUMBERS = [
  0, -0, 1, -1, 2, 0.5, -0.5, NaN, Infinity, -Infinity, 3, 7, 31, 32, 63, 64, 255, 4095, 4096, 4097, 65535, 65536,
  2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 2 ** 63, 2 ** 64,
  Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON, 1e21, -4095, -4096, -5, -22, -16, 1e-300,
];
const BIGINTS = [
  0n, 1n, -1n, 2n, 4096n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n,
  2n ** 64n, -(2n ** 63n), -(2n ** 63n) - 1n, 2n ** 200n, -(2n ** 200n), 10n ** 30n,
];
const STRINGS = [
  '', ' ', 'x', 'EIO', 'ENOENT', 'EINVAL', 'eio', 'E2BIG', 'read', 'write', 'readwrite', 'kernel', 'bookkeep',
  'emulated', 'auto', 'all', 'system', 'default_cma_region', 'system_cc_shared', 'cma', 'protected',
  'bidirectional', 'to-device', 'from-device', 'shrink', 'seal', 'grow', 'future-write', 'names', 'ring',
  'polled', 'pinned', 'latency_us', 'advance', 'alloc_pages', 'dma_buf_export', 'set_memory_decrypted',
  'x86_64', 'arm64', 's390x', '7.1', '6.12', '5.4', '99.99', 'toString', '__proto__', 'constructor',
  'hasOwnProperty', '\u0000', 'a\u0000b', '\uD800', '\uDFFF\uD800', '%s%n%p', '../../dev/null', '/dev/null',
  '/', '.', '/nonexistent', '/proc/self/status', 'x'.repeat(31), 'x'.repeat(32), 'y'.repeat(255),
  'z'.repeat(256), 'w'.repeat(5000), '\u00e9'.repeat(16), '1', '-1', 'NaN', '0x1000',
];
/** Filters that match no benchmark row (anything else would run the benchmark). */
export const BENCH_FILTERS = ['\u0000zz', 'no-such-row-\uD800', 'q'.repeat(300), '%n%n', 'ZZZ-none'];

export const OPTION_KEYS = [
  'timeout', 'signal', 'context', 'seqno', 'seqno64', 'lock', 'issuer', 'backend', 'name', 'path', 'dup',
  'fdFlags', 'heapFlags', 'pinned', 'peer2peer', 'moveNotify', 'device', 'kernelVersion', 'arch',
  'memEncrypt', 'cmaSize', 'ramSize', 'nth', 'times', 'error', 'decrypt', 'encrypt', 'offset', 'size',
  'cloexec', 'seals', 'memfd', 'driverName', 'timelineName', 'filter', 'ms', 'jsOnly', 'length',
];

function safeGet(o, k) {
  try {
    return o?.[k];
  } catch {
    return undefined;
  }
}

export class Values {
  /** fz: the fuzzer (rng, pools, classes, capturedSymbols, allow(tag)). */
  constructor(fz) {
    this.fz = fz;
  }

  get rng() {
    return this.fz.rng;
  }

  number() {
    const r = this.rng;
    return r.chance(0.8) ? r.pick(NUMBERS) : r.chance(0.5) ? r.int(100) : (r.float() - 0.5) * 2 ** r.int(70);
  }
  bigint() {
    const r = this.rng;
    return r.chance(0.8) ? r.pick(BIGINTS) : BigInt(r.int(1000)) * (r.chance(0.2) ? -1n : 1n);
  }
  string() {
    return this.rng.pick(STRINGS);
  }

  primitive() {
    const r = this.rng;
    switch (r.int(9)) {
      case 0: return undefined;
      case 1: return null;
      case 2: return r.chance(0.5);
      case 3: case 4: return this.number();
      case 5: case 6: return this.bigint();
      case 7: return this.string();
      default: return r.pick([Symbol('fuzz'), Symbol.iterator, Symbol.for('dmabuf.adopt'), Symbol.dispose, Symbol.toPrimitive]);
    }
  }

  /** Any value at all. */
  any(depth = 0) {
    const r = this.rng;
    if (depth > 2) return this.primitive();
    return r.weighted([
      [30, () => this.primitive()],
      [25, () => this.poolObject()],
      [8, () => this.fake()],
      [8, () => this.proxy(depth)],
      [12, () => this.options(depth)],
      [9, () => this.array(depth)],
      [4, () => this.func()],
      [4, () => this.builtin()],
    ])();
  }

  /** One of the fuzzer's live (or disposed) objects, of any class. */
  poolObject() {
    const o = this.fz.randomObject();
    return o === undefined ? this.primitive() : o;
  }

  /** A fake of one of the package's classes, or a plain object claiming to be one. */
  fake() {
    const r = this.rng;
    const classes = this.fz.classes;
    const cls = r.pick(classes);
    switch (r.int(6)) {
      case 0: return Object.create(cls.prototype);
      case 1: {
        // A fake whose `handle` is a number: a forged native fence pointer.
        if (!this.fz.allow('forge')) return Object.create(cls.prototype);
        const o = Object.create(cls.prototype);
        Object.defineProperty(o, 'handle', { value: this.forgedNumber() });
        return o;
      }
      case 2: return { __proto__: cls.prototype, disposed: false, closed: false, backend: 'emulated' };
      case 3: {
        // A subclass instance: the real constructor runs, prototype is ours.
        const Sub = class extends cls {};
        try {
          return Reflect.construct(cls, [], Sub);
        } catch {
          return Object.create(Sub.prototype);
        }
      }
      case 4: return Object.create(null);
      default: {
        const o = {};
        for (const k of ['handle', 'context', 'seqno', 'signaled', 'backend', 'fd', 'size']) {
          if (r.chance(0.4)) o[k] = this.fz.allow('forge') || k !== 'handle' ? this.primitive() : undefined;
        }
        return o;
      }
    }
  }

  /** A number that, handed to native code as a fence handle, would be dereferenced. */
  forgedNumber() {
    const r = this.rng;
    const real = this.fz.realHandleNumbers();
    if (real.length && r.chance(0.6)) return r.pick(real);
    return r.pick([4096, 8, 0x7fff0000, 2 ** 47, 2 ** 53 - 1, -4096, 1.5, 16]);
  }

  proxy(depth) {
    const r = this.rng;
    const fz = this.fz;
    const forge = fz.allow('forge');
    const sub = r.fork();
    const answers = new Map();
    const answer = (k) => {
      if (!answers.has(k)) {
        const saved = fz.rng;
        fz.rng = sub; // answers come from the proxy's own stream
        try {
          answers.set(k, this.any(depth + 1));
        } finally {
          fz.rng = saved;
        }
      }
      return answers.get(k);
    };
    const capture = (k) => {
      if (typeof k === 'symbol') fz.capturedSymbols.add(k);
    };
    const kind = r.int(forge ? 10 : 7);
    switch (kind) {
      case 0: // throws on every access
        return new Proxy({}, { get() { throw new Deliberate('proxy get'); }, has() { throw new Deliberate('proxy has'); }, ownKeys() { throw new Deliberate('proxy ownKeys'); }, getPrototypeOf() { throw new Deliberate('proxy getPrototypeOf'); } });
      case 1: { // revoked
        const { proxy, revoke } = Proxy.revocable({}, {});
        revoke();
        return proxy;
      }
      case 2: // answers every key with its own random value
        return new Proxy({}, { get: (t, k) => (capture(k), typeof k === 'symbol' && !forge ? undefined : answer(k)) });
      case 3: { // pretends to be an instance of a package class
        const cls = r.pick(fz.classes);
        return new Proxy({}, { getPrototypeOf: () => cls.prototype, get: (t, k) => (capture(k), typeof k === 'symbol' ? undefined : answer(k)), has: () => true });
      }
      case 4: { // an array-like proxy (Array.isArray is true) with odd members and length
        const len = r.pick([0, 1, 2, 3, 8, -1, NaN, '2', 2 ** 32 + 1]);
        const base = [];
        for (let i = 0; i < 3; i++) base.push(r.chance(0.7) ? fz.pick('Fence') ?? this.primitive() : this.primitive());
        return new Proxy(base, {
          get: (t, k) => {
            capture(k);
            if (k === 'length') return typeof len === 'number' && len > 64 ? 3 : len;
            if (typeof k === 'string' && /^\d+$/.test(k)) return answer(k);
            return Reflect.get(t, k);
          },
        });
      }
      case 5: // a proxy over one of our live objects (private fields are not reachable through it)
        return new Proxy(this.poolObject() ?? {}, {});
      case 6: // records the symbols the package probes with, answers nothing
        return new Proxy({}, { get: (t, k) => (capture(k), undefined) });
      case 7: // issue 9 #3: symbol keys answered with 4096
        return new Proxy({}, { get: (t, k) => (capture(k), typeof k === 'symbol' ? 4096 : undefined) });
      case 8: // symbol keys answered with another object's native handle
        return new Proxy({}, { get: (t, k) => (capture(k), typeof k === 'symbol' ? this.forgedNumber() : undefined) });
      default: { // symbol keys answered with another live object's handle value (External or number)
        const other = this.poolObject();
        return new Proxy({}, { get: (t, k) => (capture(k), typeof k === 'symbol' ? safeGet(other, 'handle') : undefined) });
      }
    }
  }

  /** A plain object with option-like keys, semi-valid or hostile values, maybe throwing getters. */
  options(depth = 0) {
    const r = this.rng;
    const o = r.chance(0.1) ? Object.create(null) : {};
    const n = r.int(4);
    for (let i = 0; i < n; i++) {
      const k = r.pick(OPTION_KEYS);
      if (r.chance(0.12)) {
        Object.defineProperty(o, k, { get() { throw new Deliberate(`getter ${k}`); }, enumerable: true, configurable: true });
      } else {
        o[k] = r.chance(0.55) ? this.fz.semiValid(k) : this.any(depth + 1);
      }
    }
    if (this.fz.allow('forge') && this.fz.capturedSymbols.size && r.chance(0.3)) {
      // A private symbol the package probed a proxy with, now set on a plain object.
      const sym = r.pick([...this.fz.capturedSymbols]);
      o[sym] = r.chance(0.5) ? this.forgedNumber() : safeGet(this.poolObject(), 'handle');
    }
    if (r.chance(0.05)) Object.freeze(o);
    if ('keepOps' in o) delete o.keepOps;
    return o;
  }

  array(depth = 0) {
    const r = this.rng;
    switch (r.int(7)) {
      case 0: return [];
      case 1: return this.fz.allow('sparse') ? new Array(r.range(1, 4)) : []; // sparse
      case 2: { // fences, duplicates likely
        const a = [];
        const n = r.range(1, 5);
        for (let i = 0; i < n; i++) a.push(this.fz.pick('Fence') ?? this.primitive());
        if (a.length && this.fz.allow('dup') && r.chance(0.5)) a.push(a[0]);
        return a;
      }
      case 3: { // sparse with members
        const a = [];
        if (!this.fz.allow('sparse')) return a;
        a[r.int(3)] = this.fz.pick('Fence');
        a[r.range(3, 5)] = this.fz.pick('Fence');
        return a;
      }
      case 4: { // an index getter that throws
        const a = [this.fz.pick('Fence')];
        Object.defineProperty(a, 1, { get() { throw new Deliberate('array index getter'); }, enumerable: true });
        return a;
      }
      case 5: { // an array with extra properties and a hostile iterator
        const a = [this.fz.pick('Fence'), this.any(depth + 1)];
        a[Symbol.iterator] = function* it() { yield 1; throw new Deliberate('array iterator'); };
        return a;
      }
      default: {
        const a = [];
        const n = r.range(0, 4);
        for (let i = 0; i < n; i++) a.push(this.any(depth + 1));
        return a;
      }
    }
  }

  func() {
    const r = this.rng;
    const fz = this.fz;
    switch (r.int(4)) {
      case 0: return () => {};
      case 1: return () => { throw new Deliberate('callback'); };
      case 2: return class FuzzClass {}; // called without new: a TypeError naming FuzzClass
      default: return fz.reentrantCallback('value-callback');
    }
  }

  builtin() {
    const r = this.rng;
    switch (r.int(12)) {
      case 0: return new Date(NaN);
      case 1: return new Map();
      case 2: return Promise.resolve(1);
      case 3: return new ArrayBuffer(8);
      case 4: return new Float64Array([4096, 8192]);
      case 5: {
        const ab = new ArrayBuffer(8);
        structuredClone(ab, { transfer: [ab] }); // detached
        return ab;
      }
      case 6: return AbortSignal.abort(r.chance(0.5) ? new Deliberate('abort reason') : undefined);
      case 7: return this.fz.abortSignal();
      case 8: return { valueOf() { throw new Deliberate('valueOf'); }, toString() { throw new Deliberate('toString'); } };
      case 9: return { [Symbol.toPrimitive]: () => 4096 };
      case 10: return Buffer.alloc(4);
      default: return new WeakRef({});
    }
  }
}

export { safeGet };
