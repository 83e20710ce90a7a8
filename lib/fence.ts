// Fence and FenceLock: dma_fence for JavaScript. A Fence object holds one
// reference to a native fence; dispose() drops it (the finalizer is only a
// backstop). Waits never block the event loop.
import { DmaBufError, errnoNumber } from './errors';
import { abortError, invalidArgType, invalidArgValue, outOfRange, toI64, toTimeoutNs, toU64 } from './internal/args';
import { binding, type External, type Handle } from './internal/binding';
import { drain, holdLoop, register, unregister, type Registration } from './internal/dispatch';
import { type Block, claim, currentBlock, release, takeDefault } from './internal/handles';
import { parseWaitOptions, waitTimer, type WaitOptions } from './internal/wait_options';
import { type Issuer, isIssuer } from './issuer';

// The hot calls, read once: the addon's exports object has too many
// properties for V8's fast mode, so every `binding.x` is a dictionary lookup.
const { fenceSignal, fenceSignaled } = binding;

// Adoption: package code wraps a native reference it already owns in a Fence
// (or subclass) through adoptFence(); the token waits here for the
// constructor. Nothing a user passes to a constructor can reach this path.
let adopting: Handle = 0;

/** @internal Whether a constructor is running for adoptFence() (subclasses skip their own creation). */
export function isAdopting(): boolean {
  return adopting !== 0;
}

/**
 * @internal For subclass constructors: `super(adoptNext(h))` makes Fence's
 * constructor adopt `h` (a reference the subclass just created).
 */
export function adoptNext(h: Handle): undefined {
  adopting = h;
  return undefined;
}

/** @internal Wraps a native fence reference (a token this package owns) in `cls`. */
export function adoptFence<T extends Fence>(h: Handle, cls?: abstract new (...args: never[]) => T): T {
  adopting = h;
  try {
    return new ((cls ?? Fence) as unknown as new () => T)();
  } finally {
    if (adopting !== 0) {
      adopting = 0;
      binding.fencePutMany(Float64Array.of(h), 1); // the constructor failed before adopting
    }
  }
}

// Brand checks: `instanceof` accepts objects made with Object.create(X.prototype),
// whose private fields then throw an uncoded TypeError on first use.
let isFenceLock!: (v: unknown) => v is FenceLock;
/** @internal Whether `v` is a real Fence (its private fields exist). */
export let isFence!: (v: unknown) => v is Fence;
/**
 * @internal A fence's native token, read from its private slot: a property a
 * user can redefine is never trusted. Throws EBADF once disposed.
 */
export let handleOf!: (f: Fence) => Handle;
/** @internal FenceLock's native handle (throws EBADF once disposed). */
let lockHandleOf!: (l: FenceLock) => External;

/** An external (legacy) lock shared by several fences. */
export class FenceLock implements Disposable {
  #h: External | null = binding.lockCreate();
  static {
    isFenceLock = (v): v is FenceLock => typeof v === 'object' && v !== null && #h in v;
    lockHandleOf = (l) => {
      if (!l.#h) throw new DmaBufError('EBADF', 'FenceLock is disposed');
      return l.#h;
    };
  }
  /** Drops this object's reference; fences on the lock keep it alive. */
  dispose(): void {
    if (!isFenceLock(this)) throw invalidArgType('this', 'an instance of FenceLock', this);
    if (this.#h) binding.lockDispose(this.#h);
    this.#h = null;
  }
  [Symbol.dispose](): void {
    FenceLock.prototype.dispose.call(this);
  }
}

export interface FenceInit {
  /** Fence context (timeline); default 0n. Use Fence.allocContext() for a new one. */
  context?: bigint;
  /** Sequence number within the context; default 0n. */
  seqno?: bigint | number;
  /** Compare seqnos as 64-bit values (dma_fence_init64) instead of 32-bit wrap-around. */
  seqno64?: boolean;
  /** A shared external lock (legacy); default: the fence's own inline lock. */
  lock?: FenceLock;
  /**
   * Create the fence through this issuer (same as issuer.createFence()); then
   * context and seqno default to the issuer's timeline, and `lock` is not
   * allowed (an issuer's fences use the issuer's locks).
   */
  issuer?: Issuer;
}

export type { WaitOptions } from './internal/wait_options';

export interface FenceFlags {
  initialized: boolean;
  inlineLock: boolean;
  seqno64: boolean;
  signaled: boolean;
  timestamp: boolean;
  enableSignal: boolean;
}

/** A callback registered with Fence.addCallback(). */
export class FenceCallback {
  /** @internal */
  reg: Registration | null = null;
  /** @internal */
  constructor(readonly fn: (f: Fence) => void) {}
  /** Whether the callback is still waiting for the fence. */
  get pending(): boolean {
    return this.reg !== null;
  }
}

// What a disposal must cancel: user callbacks and pending waits on this object.
interface PendingEntry {
  reg: Registration;
  onDispose?: () => void;
}

function checkInit(init: unknown): FenceInit {
  if (init === undefined) return {};
  if (typeof init !== 'object' || init === null || Array.isArray(init)) {
    throw invalidArgType('init', 'of type object', init);
  }
  return init as FenceInit;
}

/**
 * @internal importHandle() for Fence and its subclasses: `kind` 0 any, 1 array,
 * 2 chain. A handle of the wrong kind is refused and stays importable.
 */
export function importFenceHandle(h: unknown, kind: number): Fence {
  if (typeof h !== 'bigint') throw invalidArgType('h', 'of type bigint', h);
  const token = binding.fenceImportHandle(toU64('h', h), kind);
  return adoptFence(token, kind === 1 ? kindClasses.array : kind === 2 ? kindClasses.chain : undefined);
}

type AnyFenceClass = abstract new (...args: never[]) => Fence;
/** @internal Set by containers.ts: the subclasses importFenceHandle() makes. */
export const kindClasses: { array?: AnyFenceClass; chain?: AnyFenceClass } = {};

function toFenceArray(name: string, fences: unknown): Fence[] {
  if (!Array.isArray(fences)) throw invalidArgType(name, 'an array of Fence', fences);
  for (const [i, f] of fences.entries()) {
    if (!isFence(f)) throw invalidArgType(`${name}[${i}]`, 'an instance of Fence', f);
  }
  if (fences.length === 0) throw new DmaBufError('EINVAL', `"${name}" must contain at least one fence`);
  return fences as Fence[];
}

/** dma_fence: a one-way signal that some work has completed. */
export class Fence implements Disposable {
  // The reference lives in slot #i of block #b (0 once disposed).
  #b: Block;
  #i: number;
  #pending: Set<PendingEntry> | null = null;
  #context: bigint | undefined;
  #seqno: bigint | undefined;

  static {
    isFence = (v): v is Fence => typeof v === 'object' && v !== null && #b in v;
    handleOf = (f) => {
      if (!isFence(f)) throw invalidArgType('this', 'an instance of Fence', f);
      const h = f.#b.page[f.#i]!;
      if (h === 0) throw new DmaBufError('EBADF', 'fence is disposed');
      return h;
    };
  }

  constructor(init?: FenceInit) {
    // Validate (and create) before claiming a slot, so a bad init has no effect.
    let h = adopting;
    if (h !== 0) adopting = 0;
    else h = init === undefined ? takeDefault() : Fence.#fromInit(init);
    const b = (this.#b = currentBlock());
    this.#i = claim(b, h);
  }

  static #fromInit(init: unknown): Handle {
    const { context, seqno, seqno64, lock, issuer } = checkInit(init);
    if (typeof context !== 'bigint' && context !== undefined) {
      throw invalidArgType('init.context', 'of type bigint', context);
    }
    const ctx = context === undefined ? 0n : toU64('init.context', context);
    const sn = seqno === undefined ? 0n : toU64('init.seqno', seqno);
    if (seqno64 !== undefined && typeof seqno64 !== 'boolean') {
      throw invalidArgType('init.seqno64', 'of type boolean', seqno64);
    }
    if (lock !== undefined && !isFenceLock(lock)) {
      throw invalidArgType('init.lock', 'an instance of FenceLock', lock);
    }
    if (issuer !== undefined) {
      if (!isIssuer(issuer)) throw invalidArgType('init.issuer', 'an instance of Issuer', issuer);
      if (lock !== undefined) {
        throw invalidArgValue('init.lock', "cannot be combined with init.issuer (an issuer's fences use its own locks)", lock);
      }
      return issuer.newFenceHandle(
        context === undefined ? undefined : ctx,
        seqno === undefined ? undefined : sn,
        seqno64 === true,
      );
    }
    return binding.fenceCreate(ctx, sn, seqno64 === true, lock === undefined ? undefined : lockHandleOf(lock));
  }

  /** Reserves `count` new contexts and returns the first; never 0n. */
  static allocContext(count = 1): bigint {
    if (typeof count !== 'number') throw invalidArgType('count', 'of type number', count);
    if (!Number.isInteger(count) || count < 1 || count > 0xffffffff) {
      throw outOfRange('count', 'an integer >= 1 and <= 4294967295', count);
    }
    return binding.fenceAllocContext(count);
  }

  /** The shared, always-signalled stub fence (dma_fence_get_stub). */
  static stub(): Fence {
    return adoptFence(binding.fenceStub());
  }

  /** A new signalled fence with the given timestamp (dma_fence_allocate_private_stub). */
  static privateStub(timestampNs?: bigint): Fence {
    const ts = timestampNs === undefined ? undefined : toI64('timestampNs', timestampNs);
    return adoptFence(binding.fencePrivateStub(ts));
  }

  /** Whether `a` is later than `b`; false across contexts, like the kernel. */
  static isLater(a: Fence, b: Fence): boolean {
    if (!isFence(a)) throw invalidArgType('a', 'an instance of Fence', a);
    if (!isFence(b)) throw invalidArgType('b', 'an instance of Fence', b);
    if (a.context !== b.context) return false;
    return binding.fenceIsLater(handleOf(a), handleOf(b));
  }

  /** The later of two fences of one context, or null if it is already signalled (or contexts differ). */
  static later(a: Fence, b: Fence): Fence | null {
    if (!isFence(a)) throw invalidArgType('a', 'an instance of Fence', a);
    if (!isFence(b)) throw invalidArgType('b', 'an instance of Fence', b);
    if (a.context !== b.context) return null;
    const r = binding.fenceLater(handleOf(a), handleOf(b));
    drain();
    return r === 0 ? a : r === 1 ? b : null;
  }

  /**
   * Resolves with the index of the first signalled fence (the lowest index
   * among those signalled when it wakes), or -1 on timeout.
   */
  static waitAny(fences: Fence[], opts?: WaitOptions): Promise<number> {
    try {
      const list = toFenceArray('fences', fences);
      const { timeoutNs, timeoutMs, signal } = parseWaitOptions(opts);
      for (const f of list) handleOf(f); // throws for a disposed fence
      if (signal?.aborted) return Promise.reject(abortError(signal.reason));
      if (timeoutNs === 0) {
        const i = list.findIndex((f) => f.isSignaled());
        return Promise.resolve(i);
      }
      return new Promise<number>((resolve, reject) => {
        const entries: Array<{ f: Fence; e: PendingEntry | null }> = [];
        let timer: { cancel(): void } | undefined;
        let done = false;
        const finish = (settle: () => void): void => {
          if (done) return;
          done = true;
          for (const { f, e } of entries) if (e) f.#cancel(e);
          timer?.cancel();
          signal?.removeEventListener('abort', onAbort);
          holdLoop(false);
          settle();
        };
        // A fence disposed meanwhile (by a callback) counts as not signalled
        // here: reading it would throw EBADF out of the delivery.
        const onFire = (): void =>
          finish(() => resolve(Math.max(0, list.findIndex((f) => !f.disposed && f.signaled))));
        const onAbort = (): void => finish(() => reject(abortError(signal?.reason)));
        holdLoop(true);
        for (const [i, f] of list.entries()) {
          const e = f.#track(onFire, () =>
            finish(() => reject(new DmaBufError('EBADF', 'a fence was disposed while waiting'))),
          );
          entries.push({ f, e });
          if (e === null) {
            finish(() => resolve(i));
            return;
          }
        }
        if (timeoutMs !== Infinity) timer = waitTimer(timeoutMs, () => finish(() => resolve(-1)));
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Blocking waitAny for worker threads and scripts: index, or -1 on timeout. */
  static waitAnySync(fences: Fence[], timeoutMs?: number): number {
    const list = toFenceArray('fences', fences);
    const ns = toTimeoutNs('timeoutMs', timeoutMs);
    const [r, idx] = binding.fenceWaitAnySync(list.map(handleOf), ns);
    drain();
    return r > 0 ? idx : -1;
  }

  /**
   * Adopts a handle exported by exportHandle() (typically in another worker),
   * once. Throws EINVAL for a handle that was never exported, was already
   * imported, or expired (see exportHandle()).
   */
  static importHandle(h: bigint): Fence {
    return importFenceHandle(h, 0);
  }

  /** @internal The native token; throws if disposed. */
  get handle(): Handle {
    return handleOf(this);
  }

  get context(): bigint {
    return (this.#context ??= binding.fenceContext(handleOf(this)));
  }
  get seqno(): bigint {
    return (this.#seqno ??= binding.fenceSeqno(handleOf(this)));
  }
  get flags(): FenceFlags {
    const v = binding.fenceFlags(handleOf(this));
    return {
      initialized: (v & 1) !== 0,
      inlineLock: (v & 2) !== 0,
      seqno64: (v & 4) !== 0,
      signaled: (v & 8) !== 0,
      timestamp: (v & 16) !== 0,
      enableSignal: (v & 32) !== 0,
    };
  }
  /** The SIGNALED flag only; never polls the issuer. */
  get signaled(): boolean {
    return fenceSignaled(handleOf(this));
  }
  /** May poll the issuer's `signaled` op (and signal the fence). */
  isSignaled(): boolean {
    const r = binding.fenceIsSignaled(handleOf(this));
    drain();
    return r;
  }
  /** 0 pending, 1 signalled, negative errno if signalled with an error. */
  get status(): number {
    const r = binding.fenceStatus(handleOf(this));
    drain();
    return r;
  }
  /** 0 or a negative errno. */
  get error(): number {
    return binding.fenceError(handleOf(this));
  }
  /** CLOCK_MONOTONIC nanoseconds of the signal, or null while pending. */
  get timestamp(): bigint | null {
    return binding.fenceTimestamp(handleOf(this));
  }
  /** The issuer's driver name; "detached-driver" once signalled. */
  get driverName(): string {
    return binding.fenceDriverName(handleOf(this));
  }
  /** The issuer's timeline name; "signaled-timeline" once signalled. */
  get timelineName(): string {
    return binding.fenceTimelineName(handleOf(this));
  }
  /** Whether the ops were detached at signal time (issuers without release/wait). */
  get opsDetached(): boolean {
    return binding.fenceOpsDetached(handleOf(this));
  }

  /** Signals the fence (now, or at the given CLOCK_MONOTONIC time). A second call is a no-op. */
  signal(timestampNs?: bigint): void {
    const h = handleOf(this);
    if (timestampNs === undefined) fenceSignal(h);
    else binding.fenceSignalAt(h, toI64('timestampNs', timestampNs));
    drain();
  }

  /** Signals; returns true if it was already signalled (then nothing happens). */
  checkAndSignal(): boolean {
    const r = binding.fenceCheckAndSignal(handleOf(this));
    drain();
    return r;
  }

  /** Sets the error reported once signalled: a negative errno (-4095..-1) or its name ('EIO'). */
  setError(err: number | string): void {
    const h = handleOf(this);
    let n: number | undefined;
    if (typeof err === 'string') {
      n = errnoNumber(err);
      if (n === undefined) throw invalidArgValue('err', 'must be an errno name such as \'EIO\'', err);
    } else if (typeof err === 'number') {
      if (!Number.isInteger(err) || err < -4095 || err > -1) {
        throw outOfRange('err', 'a negative errno (-4095 to -1)', err);
      }
      n = err;
    } else {
      throw invalidArgType('err', 'of type number or string', err);
    }
    binding.fenceSetError(h, n); // EBUSY once signalled (dma_fence_set_error's rule, in the core)
  }

  /** dma_fence_enable_sw_signaling: asks the issuer to signal (calls enable_signaling at most once). */
  enableSignaling(): void {
    binding.fenceEnableSignaling(handleOf(this));
    drain();
  }

  /**
   * Calls `cb(fence)` on this thread when the fence signals: synchronously if
   * this thread signals it, otherwise from the event loop. Returns null (and
   * never calls cb) if the fence is already signalled. Adding a callback
   * enables signalling.
   */
  addCallback(cb: (f: Fence) => void): FenceCallback | null {
    if (typeof cb !== 'function') throw invalidArgType('cb', 'of type function', cb);
    const fc = new FenceCallback(cb);
    const e = this.#track(
      () => {
        fc.reg = null;
        cb(this);
      },
      () => {
        fc.reg = null;
      },
    );
    if (e === null) return null;
    fc.reg = e.reg;
    return fc;
  }

  /** Removes a callback; true if it had not run yet (it never will). */
  removeCallback(cb: FenceCallback): boolean {
    if (!(cb instanceof FenceCallback)) throw invalidArgType('cb', 'an instance of FenceCallback', cb);
    const h = handleOf(this);
    for (const e of this.#pending ?? []) {
      if (e.reg === cb.reg) {
        if (!unregister(h, e.reg)) return false;
        this.#pending!.delete(e);
        cb.reg = null;
        return true;
      }
    }
    return false;
  }

  /** Resolves true when signalled, false on timeout; rejects on abort or dispose. */
  wait(opts?: WaitOptions): Promise<boolean> {
    try {
      const h = handleOf(this);
      const { timeoutNs, timeoutMs, signal } = parseWaitOptions(opts);
      if (signal?.aborted) return Promise.reject(abortError(signal.reason));
      if (binding.fenceSignaled(h)) return Promise.resolve(true);
      if (timeoutNs === 0) {
        binding.fenceEnableSignaling(h); // the kernel's wait enables signalling too
        drain();
        return Promise.resolve(this.isSignaled());
      }
      return new Promise<boolean>((resolve, reject) => {
        let timer: { cancel(): void } | undefined;
        let done = false;
        const finish = (settle: () => void): void => {
          if (done) return;
          done = true;
          timer?.cancel();
          signal?.removeEventListener('abort', onAbort);
          holdLoop(false);
          settle();
        };
        const onAbort = (): void => {
          if (e && this.#cancel(e)) finish(() => reject(abortError(signal?.reason)));
        };
        holdLoop(true);
        const e = this.#track(
          () => finish(() => resolve(true)),
          () => finish(() => reject(new DmaBufError('EBADF', 'fence was disposed while waiting'))),
        );
        if (e === null) {
          finish(() => resolve(true));
          return;
        }
        if (timeoutMs !== Infinity) {
          timer = waitTimer(timeoutMs, () => {
            if (this.#cancel(e)) finish(() => resolve(false));
          });
        }
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Blocks this thread until signalled or timed out (for workers and scripts). */
  waitSync(timeoutMs?: number): boolean {
    const h = handleOf(this);
    const r = binding.fenceWaitSync(h, toTimeoutNs('timeoutMs', timeoutMs));
    drain();
    return r > 0;
  }

  /** Forwards a deadline hint (CLOCK_MONOTONIC ns) to the issuer. */
  setDeadline(deadlineNs: bigint): void {
    binding.fenceSetDeadline(handleOf(this), toI64('deadlineNs', deadlineNs));
    drain();
  }

  /** "<ctx>:<seqno> <timeline> <driver> [un]signalled" (dma_fence_describe). */
  describe(): string {
    const r = binding.fenceDescribe(handleOf(this));
    drain(); // like the kernel's, it polls (and may signal) the fence
    return r;
  }

  /**
   * A new reference another worker thread can adopt with Fence.importHandle()
   * (once). A handle that is never imported is released when the exporting
   * environment ends, after a 10 s grace period (so a worker may post its
   * handle and exit), or at once when the process exits.
   */
  exportHandle(): bigint {
    return binding.fenceExportHandle(handleOf(this));
  }

  /** Whether both objects refer to the same native fence. */
  is(other: Fence): boolean {
    if (!isFence(other)) throw invalidArgType('other', 'an instance of Fence', other);
    return binding.fenceSame(handleOf(this), handleOf(other));
  }

  /** Whether dispose() has been called. */
  get disposed(): boolean {
    if (!isFence(this)) throw invalidArgType('this', 'an instance of Fence', this);
    return this.#b.page[this.#i] === 0;
  }

  /**
   * Drops this object's reference. Callbacks added through it are removed;
   * its pending waits reject with EBADF. Idempotent.
   */
  dispose(): void {
    if (!isFence(this)) throw invalidArgType('this', 'an instance of Fence', this);
    const h = this.#b.page[this.#i]!;
    if (h === 0) return;
    if (this.#pending !== null && this.#pending.size !== 0) {
      for (const e of [...this.#pending]) {
        if (unregister(h, e.reg)) {
          this.#pending.delete(e);
          e.onDispose?.();
        }
      }
    }
    release(this.#b, this.#i);
  }

  [Symbol.dispose](): void {
    Fence.prototype.dispose.call(this);
  }

  // Registers native-callback work tied to this object; null if already signalled.
  #track(fire: () => void, onDispose?: () => void): PendingEntry | null {
    const h = handleOf(this);
    const entry: PendingEntry = { reg: null as unknown as Registration };
    if (onDispose) entry.onDispose = onDispose;
    const reg = register(h, () => {
      this.#pending?.delete(entry);
      fire();
    });
    if (!reg) return null;
    entry.reg = reg;
    (this.#pending ??= new Set()).add(entry);
    return entry;
  }

  // Unregisters; true if it had not fired.
  #cancel(e: PendingEntry): boolean {
    const h = this.#b.page[this.#i]!;
    if (h === 0 || !this.#pending?.has(e)) return false;
    if (!unregister(h, e.reg)) return false;
    this.#pending.delete(e);
    return true;
  }
}
