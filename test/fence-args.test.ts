// Every bad argument of the Fence / FenceLock / FenceCallback API: wrong types
// are TypeError ERR_INVALID_ARG_TYPE, out-of-range numbers and bigints
// RangeError ERR_OUT_OF_RANGE, invalid values TypeError ERR_INVALID_ARG_VALUE,
// kernel-like failures DmaBufError with code and errno. Each failing call must
// leave no trace: the objects involved stay usable and unchanged.
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  DmaBufError,
  Fence,
  FenceArray,
  FenceCallback,
  FenceChain,
  FenceLock,
  Resv,
  SyncFile,
  dedup,
  merge,
  unwrap,
} from '../lib';
import { currentBlock } from '../lib/internal/handles';

const TYPE = 'ERR_INVALID_ARG_TYPE';
const RANGE = 'ERR_OUT_OF_RANGE';
const VALUE = 'ERR_INVALID_ARG_VALUE';
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const U64_MAX = (1n << 64n) - 1n;

type ErrorClass = typeof TypeError | typeof RangeError | typeof DmaBufError;

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

function checkError(e: unknown, ctor: ErrorClass, code: string, arg?: string): void {
  expect(e).toBeInstanceOf(ctor);
  expect((e as { code?: unknown }).code).toBe(code);
  if (ctor !== DmaBufError) expect(e).not.toBeInstanceOf(DmaBufError);
  if (arg !== undefined) expect((e as Error).message).toContain(`"${arg}"`);
}

/** fn throws synchronously: `ctor` with `code`, naming `arg` when given. */
function expectThrows(fn: () => unknown, ctor: ErrorClass, code: string, arg?: string): void {
  checkError(thrown(fn), ctor, code, arg);
}

/** fn returns a Promise (never throws) that rejects with `ctor`/`code`. */
async function expectRejects(fn: () => Promise<unknown>, ctor: ErrorClass, code: string, arg?: string): Promise<void> {
  let p: Promise<unknown> | undefined;
  expect(() => {
    p = fn();
  }).not.toThrow();
  expect(p).toBeInstanceOf(Promise);
  let e: unknown;
  await p!.then(
    () => expect.unreachable('promise resolved'),
    (err: unknown) => {
      e = err;
    },
  );
  checkError(e, ctor, code, arg);
}

function expectDmaBuf(fn: () => unknown, code: string, errno: number): void {
  const e = thrown(fn);
  checkError(e, DmaBufError, code);
  expect((e as DmaBufError).errno).toBe(errno);
}

const EINVAL = -22;
const EBADF = -9;
const EBUSY = -16;

// Values of the wrong type for various parameters.
const notObjects: unknown[] = [null, 5, 'x', true, 1n, Symbol('s'), () => {}, []];
const notBigints: unknown[] = [5, -1, 1.5, NaN, '5', null, true, {}, [], Symbol('s')];
const notFences: unknown[] = [undefined, null, 5, 'f', {}, [], () => {}, Object.create(Fence.prototype) as unknown];
const notArrays: unknown[] = [undefined, null, 5, 'fences', {}, new Set<unknown>()];

const fences: Fence[] = [];
/** A fresh fence, disposed after the test. */
function fresh(init?: ConstructorParameters<typeof Fence>[0]): Fence {
  const f = new Fence(init);
  fences.push(f);
  return f;
}
afterEach(() => {
  for (const f of fences.splice(0)) {
    if (!f.disposed) {
      f.signal();
      f.dispose();
    }
  }
});

/** Nothing registered or enabled on `f`, and it still works. */
async function expectUntouchedAndUsable(f: Fence): Promise<void> {
  expect(f.flags.enableSignal).toBe(false); // no callback or wait was hooked in
  expect(f.signaled).toBe(false);
  expect(f.error).toBe(0);
  const p = f.wait({ timeout: 10000 });
  f.signal();
  expect(await p).toBe(true);
}

// --- new Fence(init) --------------------------------------------------------------

describe('new Fence(init)', () => {
  it('init that is not a plain object: TypeError', () => {
    for (const v of notObjects) expectThrows(() => new Fence(v as never), TypeError, TYPE, 'init');
  });

  it('context that is not a bigint: TypeError, even for numbers that would fit', () => {
    for (const v of [...notBigints, 0, 7]) {
      expectThrows(() => new Fence({ context: v as never }), TypeError, TYPE, 'init.context');
    }
  });

  it('context outside u64: RangeError; the bounds themselves are fine', () => {
    for (const v of [-1n, 1n << 64n, -(1n << 64n)]) {
      expectThrows(() => new Fence({ context: v }), RangeError, RANGE, 'init.context');
    }
    expect(fresh({ context: 0n }).context).toBe(0n);
    expect(fresh({ context: U64_MAX }).context).toBe(U64_MAX);
  });

  it('seqno of the wrong type: TypeError', () => {
    for (const v of ['1', null, true, {}, [], Symbol('s')]) {
      expectThrows(() => new Fence({ seqno: v as never }), TypeError, TYPE, 'init.seqno');
    }
  });

  it('seqno negative, fractional, NaN, unsafe or beyond u64: RangeError', () => {
    for (const v of [-1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, -0.5, -1n, 1n << 64n]) {
      expectThrows(() => new Fence({ seqno: v as never }), RangeError, RANGE, 'init.seqno');
    }
    expect(fresh({ seqno: Number.MAX_SAFE_INTEGER }).seqno).toBe(BigInt(Number.MAX_SAFE_INTEGER));
    expect(fresh({ seqno: U64_MAX, seqno64: true }).seqno).toBe(U64_MAX);
    expect(fresh({ seqno: 0 }).seqno).toBe(0n);
  });

  it('seqno64 that is not a boolean: TypeError', () => {
    for (const v of [1, 0, 'true', null, {}, 1n]) {
      expectThrows(() => new Fence({ seqno64: v as never }), TypeError, TYPE, 'init.seqno64');
    }
    expect(fresh({ seqno64: false }).flags.seqno64).toBe(false);
  });

  it('lock that is not a FenceLock (including look-alikes): TypeError', () => {
    const lookAlike = Object.create(FenceLock.prototype) as unknown;
    for (const v of [null, 5, {}, 'lock', new Fence(), lookAlike]) {
      expectThrows(() => new Fence({ lock: v as never }), TypeError, TYPE, 'init.lock');
      if (v instanceof Fence) v.dispose();
    }
  });

  it('a disposed lock: EBADF; fences made before the dispose keep working', () => {
    const lock = new FenceLock();
    const before = fresh({ lock });
    lock.dispose();
    lock.dispose(); // idempotent
    expectDmaBuf(() => new Fence({ lock }), 'EBADF', EBADF);
    expectDmaBuf(() => new Fence({ lock, context: 1n, seqno: 2 }), 'EBADF', EBADF);
    let ran = false;
    before.addCallback(() => (ran = true));
    before.signal();
    expect(ran).toBe(true);
  });

  it('the first bad field is reported, and a failed constructor claims no reference slot', () => {
    expectThrows(() => new Fence({ context: -1n, seqno: 'x' as never }), RangeError, RANGE, 'init.context');
    expectThrows(() => new Fence({ seqno: -1, seqno64: 'x' as never }), RangeError, RANGE, 'init.seqno');
    const block = currentBlock(); // has a free slot
    const used = block.used;
    for (const v of [null, { context: 5 }, { seqno: -1 }, { lock: {} }]) {
      expect(() => new Fence(v as never)).toThrow();
    }
    expect(currentBlock()).toBe(block);
    expect(block.used).toBe(used);
    // And the next valid fence is fine.
    const f = fresh({ context: 9n, seqno: 3 });
    expect(f.describe()).toBe('9:3 js dmabuf unsignalled\n');
  });
});

// --- static methods ------------------------------------------------------------------

describe('Fence.allocContext(count)', () => {
  it('count of the wrong type: TypeError; out of 1..2^32-1: RangeError; nothing reserved', () => {
    const first = Fence.allocContext();
    for (const v of ['x', '1', 1n, null, {}, true]) {
      expectThrows(() => Fence.allocContext(v as never), TypeError, TYPE, 'count');
    }
    for (const v of [0, -1, 1.5, 2 ** 32, NaN, Infinity, -Infinity, -0.5]) {
      expectThrows(() => Fence.allocContext(v), RangeError, RANGE, 'count');
    }
    expect(Fence.allocContext()).toBe(first + 1n);
    const big = Fence.allocContext(0xffffffff); // the upper bound is accepted
    expect(big).toBe(first + 2n);
    expect(Fence.allocContext(undefined)).toBe(big + 0xffffffffn);
  });
});

describe('Fence.privateStub(timestampNs)', () => {
  it('non-bigint: TypeError; outside i64: RangeError; the bounds are fine', () => {
    for (const v of [5, '5', null, {}, 1.5, true]) {
      expectThrows(() => Fence.privateStub(v as never), TypeError, TYPE, 'timestampNs');
    }
    for (const v of [I64_MAX + 1n, I64_MIN - 1n, U64_MAX]) {
      expectThrows(() => Fence.privateStub(v), RangeError, RANGE, 'timestampNs');
    }
    const lo = Fence.privateStub(I64_MIN);
    const hi = Fence.privateStub(I64_MAX);
    expect(lo.timestamp).toBe(I64_MIN);
    expect(hi.timestamp).toBe(I64_MAX);
    lo.dispose();
    hi.dispose();
  });
});

describe('Fence.isLater / Fence.later', () => {
  it('non-fence arguments: TypeError naming the argument', () => {
    const f = fresh();
    for (const v of notFences) {
      expectThrows(() => Fence.isLater(v as never, f), TypeError, TYPE, 'a');
      expectThrows(() => Fence.isLater(f, v as never), TypeError, TYPE, 'b');
      expectThrows(() => Fence.later(v as never, f), TypeError, TYPE, 'a');
      expectThrows(() => Fence.later(f, v as never), TypeError, TYPE, 'b');
    }
    expect(Fence.later(f, f)).toBe(f);
  });

  it('a disposed fence: EBADF', () => {
    const f = fresh();
    const d = new Fence();
    d.dispose();
    expectDmaBuf(() => Fence.isLater(d, f), 'EBADF', EBADF);
    expectDmaBuf(() => Fence.isLater(f, d), 'EBADF', EBADF);
    expectDmaBuf(() => Fence.later(d, f), 'EBADF', EBADF);
    expectDmaBuf(() => Fence.later(f, d), 'EBADF', EBADF);
  });
});

describe('Fence.importHandle(h)', () => {
  it('non-bigint: TypeError; outside u64: RangeError; unknown: EINVAL; the export survives', () => {
    const f = fresh();
    const h = f.exportHandle();
    for (const v of [Number(h), String(h), null, undefined, {}, f]) {
      expectThrows(() => Fence.importHandle(v as never), TypeError, TYPE, 'h');
    }
    for (const v of [-1n, 1n << 64n, -h]) {
      expectThrows(() => Fence.importHandle(v), RangeError, RANGE, 'h');
    }
    for (const v of [0n, 12345n, h + 8n, U64_MAX]) expectDmaBuf(() => Fence.importHandle(v), 'EINVAL', EINVAL);
    const g = Fence.importHandle(h);
    expect(g.is(f)).toBe(true);
    expectDmaBuf(() => Fence.importHandle(h), 'EINVAL', EINVAL); // adopted once
    g.dispose();
  });
});

describe('Fence.waitAny(fences, opts)', () => {
  it('fences not an array: rejects with TypeError', async () => {
    for (const v of notArrays) await expectRejects(() => Fence.waitAny(v as never), TypeError, TYPE, 'fences');
  });

  it('an element that is not a Fence: rejects with TypeError naming it', async () => {
    const f = fresh();
    for (const v of notFences) {
      await expectRejects(() => Fence.waitAny([f, v as never]), TypeError, TYPE, 'fences[1]');
    }
    await expectRejects(() => Fence.waitAny([, f] as never), TypeError, TYPE, 'fences[0]'); // a hole
    await expectUntouchedAndUsable(f);
  });

  it('empty: rejects with DmaBufError EINVAL', async () => {
    await expectRejects(() => Fence.waitAny([]), DmaBufError, 'EINVAL');
    await Fence.waitAny([]).catch((e: DmaBufError) => expect(e.errno).toBe(EINVAL));
  });

  it('bad opts: TypeError / RangeError, and nothing is hooked into the fences', async () => {
    const f = fresh();
    const g = fresh();
    for (const v of [null, 5, 'x', true, []]) {
      await expectRejects(() => Fence.waitAny([f, g], v as never), TypeError, TYPE, 'opts');
    }
    for (const v of ['5', null, 5n, {}, true]) {
      await expectRejects(() => Fence.waitAny([f, g], { timeout: v as never }), TypeError, TYPE, 'opts.timeout');
    }
    for (const v of [-1, -0.001, NaN, -Infinity]) {
      await expectRejects(() => Fence.waitAny([f, g], { timeout: v }), RangeError, RANGE, 'opts.timeout');
    }
    for (const v of [null, {}, 'abort', new EventTarget(), new AbortController()]) {
      await expectRejects(() => Fence.waitAny([f, g], { signal: v as never }), TypeError, TYPE, 'opts.signal');
    }
    await expectUntouchedAndUsable(f);
    await expectUntouchedAndUsable(g);
  });

  it('a disposed fence: rejects with EBADF and hooks nothing into the others', async () => {
    const f = fresh();
    const d = new Fence();
    d.dispose();
    await expectRejects(() => Fence.waitAny([f, d]), DmaBufError, 'EBADF');
    await expectRejects(() => Fence.waitAny([f, d], { timeout: 0 }), DmaBufError, 'EBADF');
    await expectUntouchedAndUsable(f);
  });
});

describe('Fence.waitAnySync(fences, timeoutMs)', () => {
  it('bad fences: TypeError / EINVAL, thrown synchronously', () => {
    const f = fresh();
    for (const v of notArrays) expectThrows(() => Fence.waitAnySync(v as never, 0), TypeError, TYPE, 'fences');
    for (const v of notFences) expectThrows(() => Fence.waitAnySync([f, v as never], 0), TypeError, TYPE, 'fences[1]');
    expectDmaBuf(() => Fence.waitAnySync([]), 'EINVAL', EINVAL);
    expectDmaBuf(() => Fence.waitAnySync([], 0), 'EINVAL', EINVAL);
  });

  it('bad timeouts: TypeError / RangeError; nothing hooked in', async () => {
    const f = fresh();
    for (const v of ['5', null, 5n, { timeout: 5 }, true]) {
      expectThrows(() => Fence.waitAnySync([f], v as never), TypeError, TYPE, 'timeoutMs');
    }
    for (const v of [-1, NaN, -Infinity]) {
      expectThrows(() => Fence.waitAnySync([f], v), RangeError, RANGE, 'timeoutMs');
    }
    const d = new Fence();
    d.dispose();
    expectDmaBuf(() => Fence.waitAnySync([f, d], 0), 'EBADF', EBADF);
    await expectUntouchedAndUsable(f);
  });
});

// --- instance methods -------------------------------------------------------------------

describe('fence.signal(timestampNs)', () => {
  it('non-bigint: TypeError; outside i64: RangeError; the fence stays unsignalled', async () => {
    const f = fresh();
    for (const v of [5, '5', null, 1.5, {}, true]) {
      expectThrows(() => f.signal(v as never), TypeError, TYPE, 'timestampNs');
    }
    for (const v of [I64_MAX + 1n, I64_MIN - 1n]) {
      expectThrows(() => f.signal(v), RangeError, RANGE, 'timestampNs');
    }
    expect(f.timestamp).toBeNull();
    await expectUntouchedAndUsable(f);
    const g = fresh();
    g.signal(I64_MIN);
    expect(g.timestamp).toBe(I64_MIN);
  });
});

describe('fence.setError(err)', () => {
  it('numbers outside -4095..-1 or not integers: RangeError; nothing stored', () => {
    const f = fresh();
    for (const v of [0, -0, 1, 5, -4096, -5000, 1.5, -1.5, NaN, Infinity, -Infinity]) {
      expectThrows(() => f.setError(v), RangeError, RANGE, 'err');
    }
    expect(f.error).toBe(0);
    f.setError(-4095);
    expect(f.error).toBe(-4095);
    f.setError(-1);
    expect(f.error).toBe(-1);
  });

  it('unknown errno names: TypeError ERR_INVALID_ARG_VALUE; nothing stored', () => {
    const f = fresh();
    for (const v of ['EFOO', '', 'eio', ' EIO', '-5', '5', 'toString', '__proto__', 'constructor']) {
      expectThrows(() => f.setError(v), TypeError, VALUE, 'err');
    }
    expect(f.error).toBe(0);
    f.setError('EIO');
    expect(f.error).toBe(-5);
  });

  it('other types: TypeError ERR_INVALID_ARG_TYPE', () => {
    const f = fresh();
    for (const v of [{}, null, undefined, -5n, true, [], () => -5]) {
      expectThrows(() => f.setError(v as never), TypeError, TYPE, 'err');
    }
    expect(f.error).toBe(0);
  });

  it('after signal: DmaBufError EBUSY, the error is kept; validation still comes first', () => {
    const f = fresh();
    f.setError('ETIME');
    f.signal();
    expectDmaBuf(() => f.setError(-5), 'EBUSY', EBUSY);
    expectDmaBuf(() => f.setError('EIO'), 'EBUSY', EBUSY);
    expectThrows(() => f.setError(1), RangeError, RANGE, 'err');
    expect(f.error).toBe(-62);
    expect(f.status).toBe(-62);
  });
});

describe('fence.addCallback(cb) / fence.removeCallback(cb)', () => {
  it('addCallback with a non-function: TypeError; nothing enabled or registered', async () => {
    const f = fresh();
    for (const v of [undefined, null, 5, 'cb', {}, [], Symbol('s')]) {
      expectThrows(() => f.addCallback(v as never), TypeError, TYPE, 'cb');
    }
    await expectUntouchedAndUsable(f);
  });

  it('removeCallback with a non-FenceCallback: TypeError; real callbacks unaffected', () => {
    const f = fresh();
    let ran = 0;
    const cb = f.addCallback(() => ran++)!;
    for (const v of [undefined, null, 5, {}, () => {}, { reg: null }, f]) {
      expectThrows(() => f.removeCallback(v as never), TypeError, TYPE, 'cb');
    }
    // Look-alikes and other fences' callbacks are simply not found.
    expect(f.removeCallback(Object.create(FenceCallback.prototype) as FenceCallback)).toBe(false);
    const g = fresh();
    let gRan = 0;
    const other = g.addCallback(() => gRan++)!;
    expect(f.removeCallback(other)).toBe(false);
    expect(other.pending).toBe(true);
    expect(cb.pending).toBe(true);
    f.signal();
    g.signal();
    expect(ran).toBe(1);
    expect(gRan).toBe(1);
  });
});

describe('fence.wait(opts)', () => {
  it('bad opts reject (never throw) and hook nothing into the fence', async () => {
    const f = fresh();
    for (const v of [null, 5, '5', true, []]) await expectRejects(() => f.wait(v as never), TypeError, TYPE, 'opts');
    for (const v of ['5', null, 5n, {}, true]) {
      await expectRejects(() => f.wait({ timeout: v as never }), TypeError, TYPE, 'opts.timeout');
    }
    for (const v of [-1, -0.001, NaN, -Infinity]) {
      await expectRejects(() => f.wait({ timeout: v }), RangeError, RANGE, 'opts.timeout');
    }
    for (const v of [null, {}, 'abort', new EventTarget(), new AbortController()]) {
      await expectRejects(() => f.wait({ signal: v as never }), TypeError, TYPE, 'opts.signal');
    }
    await expectUntouchedAndUsable(f);
  });

  it('timeouts beyond 2^31-1 ms are honoured, not turned into 1 ms', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const f = fresh();
      const g = fresh();
      const p = f.wait({ timeout: 2 ** 31 });
      const q = Fence.waitAny([g], { timeout: 2 ** 40 });
      setTimeout(() => {
        f.signal();
        g.signal();
      }, 30);
      expect(await p).toBe(true);
      expect(await q).toBe(0);
      await new Promise((r) => setImmediate(r));
      expect(warnings).not.toContain('TimeoutOverflowWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a timeout beyond 2^31-1 ms still expires, after the whole time', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const f = fresh();
      const g = fresh();
      let waitDone: boolean | undefined;
      let anyDone: number | undefined;
      void f.wait({ timeout: 2 ** 31 + 5 }).then((r) => (waitDone = r));
      void Fence.waitAny([g], { timeout: 2 ** 32 }).then((r) => (anyDone = r));
      await vi.advanceTimersByTimeAsync(2 ** 31 - 1);
      expect(waitDone).toBeUndefined();
      expect(anyDone).toBeUndefined();
      await vi.advanceTimersByTimeAsync(10);
      expect(waitDone).toBe(false);
      expect(anyDone).toBeUndefined();
      await vi.advanceTimersByTimeAsync(2 ** 31);
      expect(anyDone).toBe(-1);
      // Both waits unhooked themselves: a callback added now is the only one.
      let ran = 0;
      f.addCallback(() => ran++);
      f.signal();
      g.signal();
      expect(ran).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('fence.waitSync(timeoutMs)', () => {
  it('bad timeouts: TypeError / RangeError; the wait never starts', async () => {
    const f = fresh();
    for (const v of [-1, -0.5, NaN, -Infinity]) expectThrows(() => f.waitSync(v), RangeError, RANGE, 'timeoutMs');
    for (const v of ['x', '5', null, {}, 5n, true]) {
      expectThrows(() => f.waitSync(v as never), TypeError, TYPE, 'timeoutMs');
    }
    await expectUntouchedAndUsable(f); // fence_wait_timeout would have enabled signalling
  });
});

describe('fence.setDeadline(deadlineNs) / fence.is(other)', () => {
  it('setDeadline: non-bigint TypeError, outside i64 RangeError', async () => {
    const f = fresh();
    for (const v of [5, '5', null, undefined, {}, 1.5]) {
      expectThrows(() => f.setDeadline(v as never), TypeError, TYPE, 'deadlineNs');
    }
    for (const v of [I64_MAX + 1n, I64_MIN - 1n]) {
      expectThrows(() => f.setDeadline(v), RangeError, RANGE, 'deadlineNs');
    }
    f.setDeadline(I64_MAX);
    f.setDeadline(I64_MIN);
    await expectUntouchedAndUsable(f);
  });

  it('is: non-fence TypeError', () => {
    const f = fresh();
    for (const v of notFences) expectThrows(() => f.is(v as never), TypeError, TYPE, 'other');
    expect(f.is(f)).toBe(true);
  });
});

// --- use after dispose -----------------------------------------------------------------------

describe('use after dispose', () => {
  it('every member throws DmaBufError EBADF (argument errors still come first)', async () => {
    const f = new Fence();
    const other = fresh();
    const cb = other.addCallback(() => {})!;
    f.dispose();
    const uses: Array<[string, () => unknown]> = [
      ['context', () => f.context],
      ['seqno', () => f.seqno],
      ['flags', () => f.flags],
      ['signaled', () => f.signaled],
      ['isSignaled', () => f.isSignaled()],
      ['status', () => f.status],
      ['error', () => f.error],
      ['timestamp', () => f.timestamp],
      ['driverName', () => f.driverName],
      ['timelineName', () => f.timelineName],
      ['opsDetached', () => f.opsDetached],
      ['signal', () => f.signal()],
      ['signal(ts)', () => f.signal(1n)],
      ['checkAndSignal', () => f.checkAndSignal()],
      ['setError', () => f.setError(-5)],
      ['enableSignaling', () => f.enableSignaling()],
      ['addCallback', () => f.addCallback(() => {})],
      ['removeCallback', () => f.removeCallback(cb)],
      ['waitSync', () => f.waitSync(0)],
      ['setDeadline', () => f.setDeadline(0n)],
      ['describe', () => f.describe()],
      ['exportHandle', () => f.exportHandle()],
      ['is', () => f.is(other)],
      ['other.is', () => other.is(f)],
      ['waitAnySync', () => Fence.waitAnySync([other, f], 0)],
    ];
    for (const [name, use] of uses) {
      const e = thrown(use);
      expect(e, name).toBeInstanceOf(DmaBufError);
      expect((e as DmaBufError).code, name).toBe('EBADF');
      expect((e as DmaBufError).errno, name).toBe(EBADF);
    }
    await expectRejects(() => f.wait(), DmaBufError, 'EBADF');
    await expectRejects(() => f.wait({ timeout: 0 }), DmaBufError, 'EBADF');
    await expectRejects(() => Fence.waitAny([f]), DmaBufError, 'EBADF');
    expectThrows(() => f.setError('EFOO'), DmaBufError, 'EBADF'); // the handle is checked first
    expectThrows(() => f.addCallback(5 as never), TypeError, TYPE, 'cb');
    f.dispose(); // still idempotent
    expect(f.disposed).toBe(true);
    expect(cb.pending).toBe(true); // the other fence's callback is untouched
  });
});

// --- one brand check --------------------------------------------------------------

describe('isFence: one brand check for every Fence argument', () => {
  it('a look-alike (Object.create(Fence.prototype)) is ERR_INVALID_ARG_TYPE everywhere a Fence is taken', async () => {
    const fake = Object.create(Fence.prototype) as Fence;
    const real = fresh();
    const r = new Resv();
    r.lock();
    const calls: Array<[string, () => unknown]> = [
      ['Fence.isLater', () => Fence.isLater(fake, real)],
      ['Fence.later', () => Fence.later(real, fake)],
      ['Fence.waitAnySync', () => Fence.waitAnySync([fake], 0)],
      ['fence.is', () => real.is(fake)],
      ['SyncFile.create', () => SyncFile.create(fake)],
      ['new FenceArray', () => new FenceArray([fake])],
      ['new FenceChain (fence)', () => new FenceChain(null, fake, 1)],
      ['new FenceChain (prev)', () => new FenceChain(fake, real, 1)],
      ['unwrap', () => unwrap(fake)],
      ['merge', () => merge(fake)],
      ['dedup', () => dedup([fake])],
      ['FenceArray.is', () => FenceArray.is(fake)],
      ['resv.addFence', () => r.addFence(fake, 'read')],
      ['resv.replaceFences', () => r.replaceFences(1n, fake, 'read')],
      ['Fence.prototype.signal', () => Fence.prototype.signal.call(fake)],
      ['Fence.prototype.dispose', () => Fence.prototype.dispose.call(fake)],
    ];
    for (const [what, fn] of calls) {
      let caught: unknown;
      try {
        fn();
      } catch (e) {
        caught = e;
      }
      expect(caught, what).toBeInstanceOf(TypeError);
      expect((caught as { code?: string }).code, what).toBe(TYPE);
    }
    await expect(Fence.waitAny([fake])).rejects.toMatchObject({ code: TYPE });
    r.unlock();
    r.dispose();
  });

  it('lib/ validates fences with isFence() only: no instanceof, no second brand check', () => {
    const dir = path.join(__dirname, '..', 'lib');
    for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((n) => n.endsWith('.ts'))) {
      if (f.startsWith(`selftest${path.sep}`)) continue; // `dmabuf selftest`'s cases: test code that asserts types as tests do
      const text = readFileSync(path.join(dir, f), 'utf8');
      expect(text, f).not.toMatch(/instanceof\s+(Fence|FenceArray|FenceChain)\b/);
      if (f !== 'fence.ts') expect(text, f).not.toMatch(/\bisFence\s*=|function isFence\b/);
    }
    const fence = readFileSync(path.join(dir, 'fence.ts'), 'utf8');
    expect(fence.match(/\bisFence\s*=/g)).toHaveLength(1); // the static block defines it, once
  });
});
