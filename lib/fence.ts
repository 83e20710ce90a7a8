// Fence and FenceLock: dma_fence for JavaScript. A Fence object holds one
// reference to a native fence; dispose() drops it (the finalizer is only a
// backstop). Waits never block the event loop.
import { binding, type External, type Handle } from './binding';
import { type Block, currentBlock, release, takeDefault } from './handles';
import { drain, holdLoop, register, unregister, type Registration } from './dispatch';
import {
  DmaBufError,
  abortError,
  errnoNumber,
  invalidArgType,
  invalidArgValue,
  outOfRange,
  toI64,
  toTimeoutNs,
  toU64,
} from './errors';
import { type Issuer, isIssuer } from './issuer';

/** Internal: construct a Fence around an existing native handle. */
export const kAdopt: unique symbol = Symbol('dmabuf.adopt');

// Brand checks: `instanceof` accepts objects made with Object.create(X.prototype),
// whose private fields then throw an uncoded TypeError on first use.
let isFenceLock!: (v: unknown) => v is FenceLock;
let isFence!: (v: unknown) => v is Fence;

/** An external (legacy) lock shared by several fences. */
export class FenceLock implements Disposable {
  #h: External | null = binding.lockCreate();
  static {
    isFenceLock = (v): v is FenceLock => typeof v === 'object' && v !== null && #h in v;
  }

  /** @internal */
  get handle(): External {
    if (!this.#h) throw new DmaBufError('EBADF', 'FenceLock is disposed');
    return this.#h;
  }
  /** Drops this object's reference; fences on the lock keep it alive. */
  dispose(): void {
    if (this.#h) binding.lockDispose(this.#h);
    this.#h = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
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

export interface WaitOptions {
  /** Milliseconds; default forever. 0 polls. */
  timeout?: number;
  /** Aborting rejects the wait with an AbortError. */
  signal?: AbortSignal;
}

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

// setTimeout() turns delays above 2^31 - 1 ms into 1 ms: chain timers instead.
const kMaxTimerMs = 0x7fffffff;
function longTimeout(ms: number, fn: () => void): { cancel(): void } {
  let t: NodeJS.Timeout;
  const arm = (left: number): void => {
    t = left > kMaxTimerMs ? setTimeout(() => arm(left - kMaxTimerMs), kMaxTimerMs) : setTimeout(fn, left);
  };
  arm(ms);
  return { cancel: () => clearTimeout(t) };
}

function toFenceArray(name: string, fences: unknown): Fence[] {
  if (!Array.isArray(fences)) throw invalidArgType(name, 'an array of Fence', fences);
  for (const [i, f] of fences.entries()) {
    if (!isFence(f)) throw invalidArgType(`${name}[${i}]`, 'an instance of Fence', f);
  }
  if (fences.length === 0) throw new DmaBufError('EINVAL', `"${name}" must contain at least one fence`);
  return fences as Fence[];
}

function checkWaitOptions(opts: unknown): { timeoutNs: number; timeoutMs: number; signal: AbortSignal | undefined } {
  if (opts === undefined) return { timeoutNs: -1, timeoutMs: Infinity, signal: undefined };
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw invalidArgType('opts', 'of type object', opts);
  }
  const { timeout, signal } = opts as WaitOptions;
  const timeoutNs = toTimeoutNs('opts.timeout', timeout);
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalidArgType('opts.signal', 'an instance of AbortSignal', signal);
  }
  return { timeoutNs, timeoutMs: timeout === undefined ? Infinity : timeout, signal };
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
  }

  constructor(init?: FenceInit) {
    // Validate (and create) before claiming a slot, so a bad init has no effect.
    const h = init === undefined ? takeDefault() : Fence.#fromInit(init);
    const b = (this.#b = currentBlock());
    this.#i = b.used++;
    b.page[this.#i] = h;
  }

  static #fromInit(init: unknown): Handle {
    const adopted = typeof init === 'object' && init !== null ? (init as { [kAdopt]?: Handle })[kAdopt] : undefined;
    if (adopted !== undefined) return adopted;
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
    return binding.fenceCreate(ctx, sn, seqno64 === true, lock?.handle);
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
    return new Fence({ [kAdopt]: binding.fenceStub() } as FenceInit);
  }

  /** A new signalled fence with the given timestamp (dma_fence_allocate_private_stub). */
  static privateStub(timestampNs?: bigint): Fence {
    const ts = timestampNs === undefined ? undefined : toI64('timestampNs', timestampNs);
    return new Fence({ [kAdopt]: binding.fencePrivateStub(ts) } as FenceInit);
  }

  /** Whether `a` is later than `b`; false across contexts, like the kernel. */
  static isLater(a: Fence, b: Fence): boolean {
    if (!isFence(a)) throw invalidArgType('a', 'an instance of Fence', a);
    if (!isFence(b)) throw invalidArgType('b', 'an instance of Fence', b);
    if (a.context !== b.context) return false;
    return binding.fenceIsLater(a.handle, b.handle);
  }

  /** The later of two fences of one context, or null if it is already signalled (or contexts differ). */
  static later(a: Fence, b: Fence): Fence | null {
    if (!isFence(a)) throw invalidArgType('a', 'an instance of Fence', a);
    if (!isFence(b)) throw invalidArgType('b', 'an instance of Fence', b);
    if (a.context !== b.context) return null;
    const r = binding.fenceLater(a.handle, b.handle);
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
      const { timeoutNs, timeoutMs, signal } = checkWaitOptions(opts);
      for (const f of list) f.handle; // throws for a disposed fence
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
        const onFire = (): void => finish(() => resolve(Math.max(0, list.findIndex((f) => f.signaled))));
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
        if (timeoutMs !== Infinity) timer = longTimeout(timeoutMs, () => finish(() => resolve(-1)));
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
    const [r, idx] = binding.fenceWaitAnySync(list.map((f) => f.handle), ns);
    drain();
    if (r < 0) throw new DmaBufError(r, 'dma_fence_wait_any_timeout failed');
    return r > 0 ? idx : -1;
  }

  /** Adopts a handle exported by exportHandle() (typically in another worker). */
  static importHandle(h: bigint): Fence {
    if (typeof h !== 'bigint') throw invalidArgType('h', 'of type bigint', h);
    const handle = binding.fenceImportHandle(toU64('h', h));
    if (!handle) throw new DmaBufError('EINVAL', 'unknown fence handle (never exported, or already imported)');
    return new Fence({ [kAdopt]: handle } as FenceInit);
  }

  /** @internal The native handle; throws if disposed. */
  get handle(): Handle {
    const h = this.#b.page[this.#i]!;
    if (h === 0) throw new DmaBufError('EBADF', 'fence is disposed');
    return h;
  }

  get context(): bigint {
    return (this.#context ??= binding.fenceContext(this.handle));
  }
  get seqno(): bigint {
    return (this.#seqno ??= binding.fenceSeqno(this.handle));
  }
  get flags(): FenceFlags {
    const v = binding.fenceFlags(this.handle);
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
    return binding.fenceSignaled(this.handle);
  }
  /** May poll the issuer's `signaled` op (and signal the fence). */
  isSignaled(): boolean {
    const r = binding.fenceIsSignaled(this.handle);
    drain();
    return r;
  }
  /** 0 pending, 1 signalled, negative errno if signalled with an error. */
  get status(): number {
    const r = binding.fenceStatus(this.handle);
    drain();
    return r;
  }
  /** 0 or a negative errno. */
  get error(): number {
    return binding.fenceError(this.handle);
  }
  /** CLOCK_MONOTONIC nanoseconds of the signal, or null while pending. */
  get timestamp(): bigint | null {
    return binding.fenceTimestamp(this.handle);
  }
  /** The issuer's driver name; "detached-driver" once signalled. */
  get driverName(): string {
    return binding.fenceDriverName(this.handle);
  }
  /** The issuer's timeline name; "signaled-timeline" once signalled. */
  get timelineName(): string {
    return binding.fenceTimelineName(this.handle);
  }
  /** Whether the ops were detached at signal time (issuers without release/wait). */
  get opsDetached(): boolean {
    return binding.fenceOpsDetached(this.handle);
  }

  /** Signals the fence (now, or at the given CLOCK_MONOTONIC time). A second call is a no-op. */
  signal(timestampNs?: bigint): void {
    const h = this.handle;
    if (timestampNs === undefined) binding.fenceSignal(h);
    else binding.fenceSignalAt(h, toI64('timestampNs', timestampNs));
    drain();
  }

  /** Signals; returns true if it was already signalled (then nothing happens). */
  checkAndSignal(): boolean {
    const r = binding.fenceCheckAndSignal(this.handle);
    drain();
    return r;
  }

  /** Sets the error reported once signalled: a negative errno (-4095..-1) or its name ('EIO'). */
  setError(err: number | string): void {
    const h = this.handle;
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
    if (binding.fenceSetError(h, n) !== 0) {
      throw new DmaBufError('EBUSY', 'cannot set the error of a signalled fence', 'dma_fence_set_error');
    }
  }

  /** dma_fence_enable_sw_signaling: asks the issuer to signal (calls enable_signaling at most once). */
  enableSignaling(): void {
    binding.fenceEnableSignaling(this.handle);
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
    const h = this.handle;
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
      const h = this.handle;
      const { timeoutNs, timeoutMs, signal } = checkWaitOptions(opts);
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
          timer = longTimeout(timeoutMs, () => {
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
    const h = this.handle;
    const r = binding.fenceWaitSync(h, toTimeoutNs('timeoutMs', timeoutMs));
    drain();
    if (r < 0) throw new DmaBufError(r, 'dma_fence_wait_timeout failed', 'dma_fence_wait_timeout');
    return r > 0;
  }

  /** Forwards a deadline hint (CLOCK_MONOTONIC ns) to the issuer. */
  setDeadline(deadlineNs: bigint): void {
    binding.fenceSetDeadline(this.handle, toI64('deadlineNs', deadlineNs));
    drain();
  }

  /** "<ctx>:<seqno> <timeline> <driver> [un]signalled" (dma_fence_describe). */
  describe(): string {
    return binding.fenceDescribe(this.handle);
  }

  /** A new reference another worker thread can adopt with Fence.importHandle() (once). */
  exportHandle(): bigint {
    return binding.fenceExportHandle(this.handle);
  }

  /** Whether both objects refer to the same native fence. */
  is(other: Fence): boolean {
    if (!isFence(other)) throw invalidArgType('other', 'an instance of Fence', other);
    return binding.fenceSame(this.handle, other.handle);
  }

  /** Whether dispose() has been called. */
  get disposed(): boolean {
    return this.#b.page[this.#i] === 0;
  }

  /**
   * Drops this object's reference. Callbacks added through it are removed;
   * its pending waits reject with EBADF. Idempotent.
   */
  dispose(): void {
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
    this.dispose();
  }

  // Registers native-callback work tied to this object; null if already signalled.
  #track(fire: () => void, onDispose?: () => void): PendingEntry | null {
    const h = this.handle;
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
