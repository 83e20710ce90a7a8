// dma_resv for JavaScript: the fences attached to a buffer, each tagged with a
// usage, behind a ww_mutex. AcquireContext is a ww_acquire_ctx: lock several
// Resv objects in any order; on DmaBufError 'EDEADLK' unlock everything, then
// lockSlow() the contended one and retry.
import { binding as rawBinding, type External, type Handle } from './binding';
import { adoptFence } from './containers';
import { drain } from './dispatch';
import {
  DmaBufError,
  abortError,
  invalidArgType,
  invalidArgValue,
  outOfRange,
  toI64,
  toTimeoutNs,
  toU64,
} from './errors';
import { Fence, handleOf, isFence, type WaitOptions } from './fence';

/** The addon functions this file uses (native/addon/resv_binding.cc). */
interface ResvBinding {
  resvCreate(): External;
  resvDispose(h: External): void;
  resvExport(h: External): bigint;
  resvImport(h: bigint): External | undefined;
  resvLock(h: External, ctx?: External): number;
  resvLockSlow(h: External, ctx?: External): number;
  resvTrylock(h: External): boolean;
  resvUnlock(h: External): number;
  resvIsLocked(h: External): boolean;
  resvHeld(h: External): boolean;
  resvReserve(h: External, n: number): number;
  resvAddFence(h: External, f: Handle, usage: number): number;
  resvReplaceFences(h: External, context: bigint, f: Handle, usage: number): number;
  resvCopyFences(dst: External, src: External): number;
  resvFences(h: External, usage: number, locked: boolean): [Handle[], number[]] | number;
  resvGetFences(h: External, usage: number): Handle[] | number;
  resvGetSingleton(h: External, usage: number): Handle;
  resvTestSignaled(h: External, usage: number): boolean;
  resvWaitSync(h: External, usage: number, timeoutNs: number): number;
  resvSetDeadline(h: External, usage: number, deadlineNs: bigint): void;
  resvDescribe(h: External): string | number;
  ctxCreate(): External;
  ctxDone(h: External): void;
  ctxFini(h: External): number;
  ctxAcquired(h: External): number;
  ctxStamp(h: External): bigint;
  ctxDispose(h: External): void;
}
const binding = rawBinding as unknown as ResvBinding;

/** How a fence in a Resv is used; querying a usage returns every fence with that usage or a stronger one. */
export type ResvUsage = 'kernel' | 'write' | 'read' | 'bookkeep';
const USAGES: readonly ResvUsage[] = ['kernel', 'write', 'read', 'bookkeep'];

function toUsage(name: string, v: unknown): number {
  if (typeof v !== 'string') throw invalidArgType(name, "one of 'kernel', 'write', 'read', 'bookkeep'", v);
  const u = USAGES.indexOf(v as ResvUsage);
  if (u < 0) throw invalidArgValue(name, "must be one of 'kernel', 'write', 'read', 'bookkeep'", v);
  return u;
}

// EINTR: the sleep ended because this thread's environment is being torn down
// (worker.terminate(), process.exit()); no JavaScript runs after it anyway.
function interrupted(op: string): DmaBufError {
  return new DmaBufError('EINTR', 'interrupted: the environment is being torn down', op);
}

function toFenceHandle(name: string, v: unknown): Handle {
  if (!isFence(v)) throw invalidArgType(name, 'an instance of Fence', v);
  return handleOf(v);
}

let isCtx!: (v: unknown) => v is AcquireContext;
let isResv!: (v: unknown) => v is Resv;
// The handle Resv.importHandle() hands to the constructor.
let adopting: External | null = null;

/**
 * ww_acquire_ctx: one locking transaction over several Resv objects (wait-die:
 * the younger context backs off). Use it on one thread; fini() (or `using`)
 * once every lock is released.
 */
export class AcquireContext implements Disposable {
  #h: External | null = binding.ctxCreate();
  #done = false;
  static {
    isCtx = (v): v is AcquireContext => typeof v === 'object' && v !== null && #h in v;
  }

  /** @internal */
  get handle(): External {
    if (!this.#h) throw new DmaBufError('EBADF', 'AcquireContext is finished');
    return this.#h;
  }
  /** @internal */
  get acquiring(): boolean {
    return !this.#done;
  }
  /** Locks held through this context. */
  get acquired(): number {
    return binding.ctxAcquired(this.handle);
  }
  /** The context's stamp: lower is older, and wins. */
  get stamp(): bigint {
    return binding.ctxStamp(this.handle);
  }
  /** ww_acquire_done: the acquire phase is over; further lock() calls throw EINVAL. */
  done(): void {
    binding.ctxDone(this.handle);
    this.#done = true;
  }
  /** ww_acquire_fini: ends the transaction. Throws EBUSY while it holds locks. */
  fini(): void {
    if (!this.#h) return;
    if (binding.ctxFini(this.#h) < 0) {
      throw new DmaBufError('EBUSY', 'the context still holds locks: unlock them first', 'ww_acquire_fini');
    }
    binding.ctxDispose(this.#h);
    this.#h = null;
  }
  /** Same as fini(). */
  dispose(): void {
    this.fini();
  }
  [Symbol.dispose](): void {
    this.fini();
  }
}

function toCtx(v: unknown): AcquireContext | undefined {
  if (v === undefined) return undefined;
  if (!isCtx(v)) throw invalidArgType('ctx', 'an instance of AcquireContext', v);
  return v;
}

/** dma_resv: a reservation object. */
export class Resv implements Disposable {
  #h: External | null;
  static {
    isResv = (v): v is Resv => typeof v === 'object' && v !== null && #h in v;
  }

  constructor() {
    this.#h = adopting ?? binding.resvCreate();
    adopting = null;
  }

  /** Adopts a handle exported by exportHandle() (once), typically in another worker. */
  static importHandle(h: bigint): Resv {
    if (typeof h !== 'bigint') throw invalidArgType('h', 'of type bigint', h);
    const ext = binding.resvImport(toU64('h', h));
    if (!ext) throw new DmaBufError('EINVAL', 'unknown Resv handle (never exported, or already imported)');
    adopting = ext;
    return new Resv();
  }

  /** @internal */
  get handle(): External {
    if (!this.#h) throw new DmaBufError('EBADF', 'Resv is disposed');
    return this.#h;
  }

  /** Whether dispose() has run (for a DmaBuf's resv: also after the buffer's close()). */
  get disposed(): boolean {
    return this.#h === null;
  }

  /** A new reference another worker can adopt with Resv.importHandle() (once). */
  exportHandle(): bigint {
    return binding.resvExport(this.handle);
  }

  /**
   * dma_resv_lock. Blocks while another thread holds it. With a context:
   * throws DmaBufError 'EDEADLK' when this context must back off (unlock all
   * its locks, then lockSlow() this one), and 'EALREADY' if it already holds it.
   */
  lock(ctx?: AcquireContext): void {
    const h = this.handle;
    const c = toCtx(ctx);
    if (c && !c.acquiring) throw new DmaBufError('EINVAL', 'locking after AcquireContext.done()', 'dma_resv_lock');
    const r = binding.resvLock(h, c?.handle);
    if (r === -114) throw new DmaBufError('EALREADY', 'this context already holds the lock', 'dma_resv_lock');
    if (r === -16) throw new DmaBufError('EDEADLK', 'this thread already holds the lock outside this context', 'dma_resv_lock');
    if (r === -4) throw interrupted('dma_resv_lock');
    if (r < 0) throw new DmaBufError(r, 'back off: unlock every lock of the context, then lockSlow()', 'dma_resv_lock');
  }

  /** dma_resv_lock_slow: after backing off (the context must hold no locks), sleep on this lock. */
  lockSlow(ctx: AcquireContext): void {
    const h = this.handle;
    const c = toCtx(ctx);
    if (!c) throw invalidArgType('ctx', 'an instance of AcquireContext', ctx);
    if (c.acquired !== 0) throw new DmaBufError('EBUSY', 'lockSlow() needs a context that holds no locks', 'dma_resv_lock_slow');
    if (binding.resvHeld(h)) throw new DmaBufError('EALREADY', 'this thread already holds the lock', 'dma_resv_lock_slow');
    if (binding.resvLockSlow(h, c.handle) < 0) throw interrupted('dma_resv_lock_slow');
  }

  /** dma_resv_trylock: true if it took the lock. */
  tryLock(): boolean {
    const h = this.handle;
    if (binding.resvHeld(h)) return false;
    return binding.resvTrylock(h);
  }

  /** dma_resv_unlock. Throws EPERM if this thread does not hold the lock. */
  unlock(): void {
    if (binding.resvUnlock(this.handle) < 0) {
      throw new DmaBufError('EPERM', 'the lock is not held by this thread', 'dma_resv_unlock');
    }
  }

  /** Whether anyone holds the lock. */
  get locked(): boolean {
    return binding.resvIsLocked(this.handle);
  }
  /** Whether this thread holds the lock. */
  get held(): boolean {
    return binding.resvHeld(this.handle);
  }

  #check(r: number, what: string): void {
    if (r === -1) throw new DmaBufError('EPERM', 'lock the Resv first', what);
    if (r < 0) throw new DmaBufError(r, `${what} failed`, what);
  }

  /** dma_resv_reserve_fences: room for `n` more addFence() calls (lock held). */
  reserveFences(n: number): void {
    const h = this.handle;
    if (typeof n !== 'number') throw invalidArgType('n', 'of type number', n);
    if (!Number.isInteger(n) || n < 1 || n > 0xffff) throw outOfRange('n', 'an integer >= 1 and <= 65535', n);
    this.#check(binding.resvReserve(h, n), 'dma_resv_reserve_fences');
  }

  /**
   * dma_resv_add_fence (lock held; reserve a slot first): replaces an entry of
   * the same context that is not later, or a signalled one. Containers are
   * refused (EINVAL): add their unwrap()ped members.
   */
  addFence(fence: Fence, usage: ResvUsage): void {
    const h = this.handle;
    const fh = toFenceHandle('fence', fence);
    const u = toUsage('usage', usage);
    if (isContainer(fence)) {
      throw new DmaBufError('EINVAL', 'add the members of a container (unwrap()), not the container', 'dma_resv_add_fence');
    }
    this.#check(binding.resvAddFence(h, fh, u), 'dma_resv_add_fence');
  }

  /** dma_resv_replace_fences: every fence of `context` becomes `replacement` with `usage` (lock held). */
  replaceFences(context: bigint, replacement: Fence, usage: ResvUsage): void {
    const h = this.handle;
    if (typeof context !== 'bigint') throw invalidArgType('context', 'of type bigint', context);
    const ctx = toU64('context', context);
    const fh = toFenceHandle('replacement', replacement);
    const u = toUsage('usage', usage);
    this.#check(binding.resvReplaceFences(h, ctx, fh, u), 'dma_resv_replace_fences');
  }

  /** dma_resv_copy_fences: this object's fences become a snapshot of `src`'s pending ones (lock held). */
  copyFences(src: Resv): void {
    const h = this.handle;
    if (!isResv(src)) throw invalidArgType('src', 'an instance of Resv', src);
    this.#check(binding.resvCopyFences(h, src.handle), 'dma_resv_copy_fences');
  }

  /**
   * The fences with `usage` or a stronger one. If this thread holds the lock:
   * every entry, signalled ones included (dma_resv_for_each_fence); otherwise
   * the pending ones (dma_resv_for_each_fence_unlocked). Each yielded Fence is
   * its own reference.
   */
  fences(usage: ResvUsage): Iterable<Fence> {
    return this.#fences(usage).map(([f]) => f);
  }

  /** fences(), with each fence's own usage. */
  entries(usage: ResvUsage): Array<[Fence, ResvUsage]> {
    return this.#fences(usage);
  }

  #fences(usage: unknown): Array<[Fence, ResvUsage]> {
    const h = this.handle;
    const u = toUsage('usage', usage);
    const r = binding.resvFences(h, u, binding.resvHeld(h));
    if (typeof r === 'number') this.#check(r, 'dma_resv_iter');
    const [hs, us] = r as [Handle[], number[]];
    return hs.map((fh, i) => [adoptFence(fh), USAGES[us[i]!]!]);
  }

  /** dma_resv_get_fences: a snapshot of the pending fences of `usage`. */
  getFences(usage: ResvUsage): Fence[] {
    const u = toUsage('usage', usage);
    const r = binding.resvGetFences(this.handle, u);
    if (typeof r === 'number') throw new DmaBufError(r, 'dma_resv_get_fences failed', 'dma_resv_get_fences');
    return r.map(adoptFence);
  }

  /**
   * dma_resv_get_singleton: null if nothing of `usage` is pending, the fence
   * itself if one is, else a new FenceArray. Never add it back to this object.
   */
  getSingleton(usage: ResvUsage): Fence | null {
    const u = toUsage('usage', usage);
    const r = binding.resvGetSingleton(this.handle, u);
    if (r < 0) throw new DmaBufError(r, 'dma_resv_get_singleton failed', 'dma_resv_get_singleton');
    return r === 0 ? null : adoptFence(r);
  }

  /** dma_resv_test_signaled: whether nothing of `usage` is pending. */
  testSignaled(usage: ResvUsage): boolean {
    const u = toUsage('usage', usage);
    const r = binding.resvTestSignaled(this.handle, u);
    drain();
    return r;
  }

  /**
   * Resolves true once every fence of `usage` pending now has signalled, false
   * on timeout; rejects on abort. Never blocks the event loop.
   */
  wait(usage: ResvUsage, opts?: WaitOptions): Promise<boolean> {
    let fences: Fence[];
    let timeoutMs: number;
    let signal: AbortSignal | undefined;
    try {
      const u = toUsage('usage', usage);
      if (opts !== undefined && (typeof opts !== 'object' || opts === null || Array.isArray(opts))) {
        throw invalidArgType('opts', 'of type object', opts);
      }
      const o = (opts ?? {}) as WaitOptions;
      toTimeoutNs('opts.timeout', o.timeout);
      if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
        throw invalidArgType('opts.signal', 'an instance of AbortSignal', o.signal);
      }
      timeoutMs = o.timeout ?? Infinity;
      signal = o.signal;
      if (signal?.aborted) return Promise.reject(abortError(signal.reason));
      const r = binding.resvGetFences(this.handle, u);
      if (typeof r === 'number') throw new DmaBufError(r, 'dma_resv_get_fences failed', 'dma_resv_get_fences');
      fences = r.map(adoptFence);
    } catch (e) {
      return Promise.reject(e);
    }
    // Wait for each in turn, like dma_resv_wait_timeout, within one deadline.
    const deadline = performance.now() + timeoutMs;
    const run = async (): Promise<boolean> => {
      try {
        for (const f of fences) {
          const left = timeoutMs === Infinity ? undefined : Math.max(0, deadline - performance.now());
          const opt: WaitOptions = {};
          if (left !== undefined) opt.timeout = left;
          if (signal) opt.signal = signal;
          if (!(await f.wait(opt))) return false;
        }
        return true;
      } finally {
        for (const f of fences) f.dispose();
      }
    };
    return run();
  }

  /** dma_resv_wait_timeout, blocking this thread (workers and scripts): true, or false on timeout. */
  waitSync(usage: ResvUsage, timeoutMs?: number): boolean {
    const u = toUsage('usage', usage);
    const ns = toTimeoutNs('timeoutMs', timeoutMs);
    const r = binding.resvWaitSync(this.handle, u, ns);
    drain();
    if (r === -4) throw interrupted('dma_resv_wait_timeout');
    if (r < 0) throw new DmaBufError(r, 'dma_resv_wait_timeout failed', 'dma_resv_wait_timeout');
    return r > 0;
  }

  /** dma_resv_set_deadline: forwards a deadline hint (CLOCK_MONOTONIC ns) to the pending fences of `usage`. */
  setDeadline(usage: ResvUsage, deadlineNs: bigint): void {
    const u = toUsage('usage', usage);
    binding.resvSetDeadline(this.handle, u, toI64('deadlineNs', deadlineNs));
    drain();
  }

  /** dma_resv_describe: one line per fence with usage up to 'read' (lock held). */
  describe(): string {
    const r = binding.resvDescribe(this.handle);
    if (typeof r === 'number') this.#check(r, 'dma_resv_describe');
    drain(); // describe polls (and may signal) each fence
    return r as string;
  }

  /** Drops this object's reference (unlocking it first if this thread holds it). Idempotent. */
  dispose(): void {
    if (this.#h) binding.resvDispose(this.#h);
    this.#h = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** @internal Wraps a native Resv handle (e.g. a dma-buf's resv), adopting its reference. */
export function resvFromHandle(h: External): Resv {
  adopting = h;
  return new Resv();
}

function isContainer(f: Fence): boolean {
  return (rawBinding as unknown as { fenceKind(h: Handle): number }).fenceKind(handleOf(f)) !== 0;
}
