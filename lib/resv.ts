// dma_resv for JavaScript: the fences attached to a buffer, each tagged with a
// usage, behind a ww_mutex. AcquireContext is a ww_acquire_ctx: lock several
// Resv objects in any order; on DmaBufError 'EDEADLK' unlock everything, then
// lockSlow() the contended one and retry.
import { adoptFence } from './containers';
import { DmaBufError } from './errors';
import { Fence, handleOf, isFence } from './fence';
import { abortError, invalidArgType, invalidArgValue, outOfRange, toI64, toTimeoutNs, toU64 } from './internal/args';
import { binding, type External, type Handle } from './internal/binding';
import { drain } from './internal/dispatch';
import { parseWaitOptions, type WaitOptions } from './internal/wait_options';

/** How a fence in a Resv is used; querying a usage returns every fence with that usage or a stronger one. */
export type ResvUsage = 'kernel' | 'write' | 'read' | 'bookkeep';
const USAGES: readonly ResvUsage[] = ['kernel', 'write', 'read', 'bookkeep'];

function toUsage(name: string, v: unknown): number {
  if (typeof v !== 'string') throw invalidArgType(name, "one of 'kernel', 'write', 'read', 'bookkeep'", v);
  const u = USAGES.indexOf(v as ResvUsage);
  if (u < 0) throw invalidArgValue(name, "must be one of 'kernel', 'write', 'read', 'bookkeep'", v);
  return u;
}

function toFenceHandle(name: string, v: unknown): Handle {
  if (!isFence(v)) throw invalidArgType(name, 'an instance of Fence', v);
  return handleOf(v);
}

// Brand checks: the native handle is read from the private slot of a real
// instance; anything else (another class, a plain object, an object made with
// Object.create(X.prototype)) is a TypeError, never an EBADF.
let isCtx!: (v: unknown) => v is AcquireContext;
let isResv!: (v: unknown) => v is Resv;
/** The context's handle slot (null once finished); TypeError for anything but an AcquireContext. */
let ctxSlot!: (v: unknown) => External | null;
/** The Resv's handle slot (null once disposed); TypeError for anything but a Resv. */
let resvSlot!: (v: unknown) => External | null;
// The handle Resv.importHandle() hands to the constructor.
let adopting: External | null = null;

function ctxHandle(v: unknown): External {
  const h = ctxSlot(v);
  if (!h) throw new DmaBufError('EBADF', 'AcquireContext is finished');
  return h;
}
function resvHandle(v: unknown): External {
  const h = resvSlot(v);
  if (!h) throw new DmaBufError('EBADF', 'Resv is disposed');
  return h;
}

/**
 * ww_acquire_ctx: one locking transaction over several Resv objects (wait-die:
 * the younger context backs off). Use it on one thread; fini() (or `using`)
 * once every lock is released.
 */
export class AcquireContext implements Disposable {
  #h: External | null = binding.ctxCreate();
  static {
    isCtx = (v): v is AcquireContext => typeof v === 'object' && v !== null && #h in v;
    ctxSlot = (v) => {
      if (!isCtx(v)) throw invalidArgType('this', 'an instance of AcquireContext', v);
      return v.#h;
    };
  }

  /** Locks held through this context. */
  get acquired(): number {
    return binding.ctxAcquired(ctxHandle(this));
  }
  /** The context's stamp: lower is older, and wins. */
  get stamp(): bigint {
    return binding.ctxStamp(ctxHandle(this));
  }
  /** ww_acquire_done: the acquire phase is over; further lock() calls throw EINVAL. */
  done(): void {
    binding.ctxDone(ctxHandle(this));
  }
  /** ww_acquire_fini: ends the transaction. Throws EBUSY while it holds locks. */
  fini(): void {
    const h = ctxSlot(this);
    if (!h) return;
    binding.ctxFini(h);
    binding.ctxDispose(h);
    this.#h = null;
  }
  /** Same as fini(). */
  dispose(): void {
    AcquireContext.prototype.fini.call(this);
  }
  [Symbol.dispose](): void {
    AcquireContext.prototype.fini.call(this);
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
    resvSlot = (v) => {
      if (!isResv(v)) throw invalidArgType('this', 'an instance of Resv', v);
      return v.#h;
    };
  }

  constructor() {
    this.#h = adopting ?? binding.resvCreate();
    adopting = null;
  }

  /** Adopts a handle exported by exportHandle() (once), typically in another worker. EINVAL for an unknown one. */
  static importHandle(h: bigint): Resv {
    if (typeof h !== 'bigint') throw invalidArgType('h', 'of type bigint', h);
    adopting = binding.resvImport(toU64('h', h));
    return new Resv();
  }

  /** Whether dispose() has run (for a DmaBuf's resv: also after the buffer's close()). */
  get disposed(): boolean {
    return resvSlot(this) === null;
  }

  /** A new reference another worker can adopt with Resv.importHandle() (once). */
  exportHandle(): bigint {
    return binding.resvExport(resvHandle(this));
  }

  /**
   * dma_resv_lock. Blocks while another thread holds it. With a context:
   * throws DmaBufError 'EDEADLK' when this context must back off (unlock all
   * its locks, then lockSlow() this one), and 'EALREADY' if it already holds it.
   * Without one (or outside it): 'EDEADLK' if this thread holds it already.
   */
  lock(ctx?: AcquireContext): void {
    const h = resvHandle(this);
    const c = toCtx(ctx);
    binding.resvLock(h, c && ctxHandle(c));
  }

  /** dma_resv_lock_slow: after backing off (the context must hold no locks), sleep on this lock. */
  lockSlow(ctx: AcquireContext): void {
    const h = resvHandle(this);
    const c = toCtx(ctx);
    if (!c) throw invalidArgType('ctx', 'an instance of AcquireContext', ctx);
    binding.resvLockSlow(h, ctxHandle(c));
  }

  /** dma_resv_trylock: true if it took the lock (false while anyone, this thread included, holds it). */
  tryLock(): boolean {
    return binding.resvTrylock(resvHandle(this));
  }

  /** dma_resv_unlock. Throws EPERM if this thread does not hold the lock. */
  unlock(): void {
    binding.resvUnlock(resvHandle(this));
  }

  /** Whether anyone holds the lock. */
  get locked(): boolean {
    return binding.resvIsLocked(resvHandle(this));
  }
  /** Whether this thread holds the lock. */
  get held(): boolean {
    return binding.resvHeld(resvHandle(this));
  }

  /** dma_resv_reserve_fences: room for `n` more addFence() calls (lock held, else EPERM). */
  reserveFences(n: number): void {
    const h = resvHandle(this);
    if (typeof n !== 'number') throw invalidArgType('n', 'of type number', n);
    if (!Number.isInteger(n) || n < 1 || n > 0xffff) throw outOfRange('n', 'an integer >= 1 and <= 65535', n);
    binding.resvReserve(h, n);
  }

  /**
   * dma_resv_add_fence (lock held, else EPERM; reserve a slot first): replaces
   * an entry of the same context that is not later, or a signalled one.
   * Containers are refused (EINVAL): add their unwrap()ped members.
   */
  addFence(fence: Fence, usage: ResvUsage): void {
    const h = resvHandle(this);
    const fh = toFenceHandle('fence', fence);
    const u = toUsage('usage', usage);
    binding.resvAddFence(h, fh, u);
  }

  /** dma_resv_replace_fences: every fence of `context` becomes `replacement` with `usage` (lock held, else EPERM). */
  replaceFences(context: bigint, replacement: Fence, usage: ResvUsage): void {
    const h = resvHandle(this);
    if (typeof context !== 'bigint') throw invalidArgType('context', 'of type bigint', context);
    const ctx = toU64('context', context);
    const fh = toFenceHandle('replacement', replacement);
    const u = toUsage('usage', usage);
    binding.resvReplaceFences(h, ctx, fh, u);
  }

  /** dma_resv_copy_fences: this object's fences become a snapshot of `src`'s pending ones (lock held, else EPERM). */
  copyFences(src: Resv): void {
    const h = resvHandle(this);
    if (!isResv(src)) throw invalidArgType('src', 'an instance of Resv', src);
    binding.resvCopyFences(h, resvHandle(src));
  }

  /**
   * The fences with `usage` or a stronger one. If this thread holds the lock:
   * every entry, signalled ones included (dma_resv_for_each_fence); otherwise
   * the pending ones (dma_resv_for_each_fence_unlocked). Each yielded Fence is
   * its own reference.
   */
  fences(usage: ResvUsage): Iterable<Fence> {
    return listFences(this, usage).map(([f]) => f);
  }

  /** fences(), with each fence's own usage. */
  entries(usage: ResvUsage): Array<[Fence, ResvUsage]> {
    return listFences(this, usage);
  }

  /** dma_resv_get_fences: a snapshot of the pending fences of `usage`. */
  getFences(usage: ResvUsage): Fence[] {
    const h = resvHandle(this);
    const u = toUsage('usage', usage);
    return binding.resvGetFences(h, u).map(adoptFence);
  }

  /**
   * dma_resv_get_singleton: null if nothing of `usage` is pending, the fence
   * itself if one is, else a new FenceArray. Never add it back to this object.
   */
  getSingleton(usage: ResvUsage): Fence | null {
    const h = resvHandle(this);
    const u = toUsage('usage', usage);
    const r = binding.resvGetSingleton(h, u);
    return r === 0 ? null : adoptFence(r);
  }

  /** dma_resv_test_signaled: whether nothing of `usage` is pending. */
  testSignaled(usage: ResvUsage): boolean {
    const h = resvHandle(this);
    const u = toUsage('usage', usage);
    const r = binding.resvTestSignaled(h, u);
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
      const h = resvHandle(this);
      const u = toUsage('usage', usage);
      ({ timeoutMs, signal } = parseWaitOptions(opts));
      if (signal?.aborted) return Promise.reject(abortError(signal.reason));
      fences = binding.resvGetFences(h, u).map(adoptFence);
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
    const h = resvHandle(this);
    const u = toUsage('usage', usage);
    const ns = toTimeoutNs('timeoutMs', timeoutMs);
    let r: number;
    try {
      r = binding.resvWaitSync(h, u, ns);
    } finally {
      drain();
    }
    return r > 0;
  }

  /** dma_resv_set_deadline: forwards a deadline hint (CLOCK_MONOTONIC ns) to the pending fences of `usage`. */
  setDeadline(usage: ResvUsage, deadlineNs: bigint): void {
    const h = resvHandle(this);
    const u = toUsage('usage', usage);
    binding.resvSetDeadline(h, u, toI64('deadlineNs', deadlineNs));
    drain();
  }

  /** dma_resv_describe: one line per fence with usage up to 'read' (lock held, else EPERM). */
  describe(): string {
    const r = binding.resvDescribe(resvHandle(this));
    drain(); // describe polls (and may signal) each fence
    return r;
  }

  /** Drops this object's reference (unlocking it first if this thread holds it). Idempotent. */
  dispose(): void {
    const h = resvSlot(this);
    if (h) binding.resvDispose(h);
    this.#h = null;
  }
  [Symbol.dispose](): void {
    Resv.prototype.dispose.call(this);
  }
}

function listFences(r: Resv, usage: unknown): Array<[Fence, ResvUsage]> {
  const h = resvHandle(r);
  const u = toUsage('usage', usage);
  const [hs, us] = binding.resvFences(h, u);
  return hs.map((fh, i) => [adoptFence(fh), USAGES[us[i]!]!]);
}

/** @internal Wraps a native Resv handle (e.g. a dma-buf's resv), adopting its reference. */
export function resvFromHandle(h: External): Resv {
  adopting = h;
  return new Resv();
}
