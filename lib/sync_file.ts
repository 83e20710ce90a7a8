// sync_file and sw_sync, both backends behind one class each:
//  - 'emulated': the in-process objects of native/core (drivers/dma-buf/sync_file.c
//    and sw_sync.c as userspace objects); any Fence can become a SyncFile.
//  - 'kernel': real fds (SYNC_IOC_* / SW_SYNC_IOC_* ioctls on /dev and debugfs).
//    wait() watches the fd with uv_poll on Node's loop (never blocks it);
//    `fence` bridges the fd into a core Fence (kernel_fence, signalled by the
//    kernel backend's epoll watcher), so it can go into emulated containers.
import { binding, type External, type Handle } from './binding';
import { drain } from './dispatch';
import { DmaBufError, abortError, invalidArgType, outOfRange, toTimeoutNs, toU64 } from './errors';
import { Fence, handleOf, isFence, type WaitOptions } from './fence';
import { adoptFence } from './containers';
import { isKErr, kcheck, type KErr } from './kerror';

export type SyncBackend = 'emulated' | 'kernel';

/** One leaf fence of a sync_file (struct sync_fence_info). */
export interface SyncFenceInfo {
  /** The timeline name. */
  objName: string;
  driverName: string;
  /** 1 signalled, 0 active, < 0 signalled with that errno. */
  status: number;
  /** CLOCK_MONOTONIC signal time in ns; 0n while active. */
  timestampNs: bigint;
}

/** SYNC_IOC_FILE_INFO. */
export interface SyncFileInfo {
  /** The merge name, or "<driver>-<timeline><context>-<seqno>". */
  name: string;
  /** The sync_file's own status: 1 signalled, 0 active, < 0 error. */
  status: number;
  fences: SyncFenceInfo[];
}


interface KernelBinding {
  sfCreate(f: Handle): External | number;
  sfMerge(name: string, a: External, b: External): External | number;
  sfFence(sf: External): Handle;
  sfInfo(sf: External): SyncFileInfo | number;
  sfSetDeadline(sf: External, ns: bigint): number;
  sfPoll(sf: External): boolean;
  sfDispose(sf: External): void;
  tlCreate(name?: string): External | number;
  tlCreateFence(tl: External, value: number, name: string): External | number;
  tlInc(tl: External, n: number): number;
  tlGetDeadline(tl: External, sf: External): bigint | number;
  tlClose(tl: External): void;
  ksfFromFd(fd: number, dup: boolean): External | KErr;
  ksfFd(sf: External): number;
  ksfClose(sf: External): void;
  ksfMerge(name: string, a: External, b: External): External | KErr;
  ksfInfo(sf: External): SyncFileInfo | KErr;
  ksfIsSignaled(sf: External): boolean | KErr;
  ksfSetDeadline(sf: External, ns: bigint): undefined | KErr;
  ksfFence(sf: External): Handle | KErr;
  ksfPoll(sf: External, cb: (revents: number) => void): External | KErr;
  ksfPollCancel(token: External): void;
  kswOpen(path?: string): External | KErr;
  kswCreateFence(tl: External, value: number, name: string): External | KErr;
  kswInc(tl: External, n: number): undefined | KErr;
  kswGetDeadline(tl: External, sf: External): bigint | KErr;
  kswClose(tl: External): void;
  kswAvailable(): boolean;
}
const nb = binding as unknown as KernelBinding;

/** Throws a DmaBufError for an emulated ioctl's negative errno. */
function check<T>(r: T | number, syscall: string, what: string): T {
  if (typeof r === 'number' && r < 0) throw new DmaBufError(r, what, syscall);
  return r as T;
}

function checkName(name: unknown, arg: string): string {
  if (typeof name !== 'string') throw invalidArgType(arg, 'of type string', name);
  return name;
}

function toU32(name: string, v: unknown): number {
  if (typeof v !== 'number') throw invalidArgType(name, 'of type number', v);
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw outOfRange(name, '>= 0 and <= 4294967295', v);
  return v;
}

function checkWait(opts: unknown): { timeoutMs: number; signal: AbortSignal | undefined } {
  if (opts === undefined) return { timeoutMs: Infinity, signal: undefined };
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw invalidArgType('opts', 'of type object', opts);
  }
  const { timeout, signal } = opts as WaitOptions;
  toTimeoutNs('opts.timeout', timeout); // validates
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalidArgType('opts.signal', 'an instance of AbortSignal', signal);
  }
  return { timeoutMs: timeout ?? Infinity, signal };
}

const kCreate = Symbol('dmabuf.syncFile');

/** A JS waiter on a kernel sync_file's shared uv_poll. */
interface PollWaiter {
  done(revents: number): void;
}

/**
 * A sync_file: a fence (or merged fences) as a handle. Emulated ones are made
 * with `SyncFile.create(fence)` or `SwSyncTimeline` ('emulated'); kernel ones
 * with `SyncFile.fromFd(fd)` or a kernel `SwSyncTimeline`.
 */
export class SyncFile implements Disposable {
  #h: External | null;
  readonly backend: SyncBackend;
  #fence: Fence | null = null;
  // Kernel backend: one uv_poll per sync_file (libuv allows one poll handle
  // per fd), shared by every pending wait().
  #poll: External | null = null;
  #waiters = new Set<PollWaiter>();

  /** @internal */
  constructor(key: typeof kCreate, h: External, backend: SyncBackend) {
    if (key !== kCreate) throw new TypeError('Illegal constructor: use SyncFile.create() or SyncFile.fromFd()');
    this.#h = h;
    this.backend = backend;
  }

  /** A new (emulated) sync_file holding a reference to `f` (sync_file_create). */
  static create(f: Fence): SyncFile {
    if (!isFence(f)) throw invalidArgType('f', 'an instance of Fence', f);
    const h = check(nb.sfCreate(handleOf(f)), 'sync_file_create', 'cannot create a sync_file');
    return new SyncFile(kCreate, h, 'emulated');
  }

  /**
   * Wraps a real sync_file fd. With `{ dup: true }` (the default) the SyncFile
   * owns a dup and the caller keeps (and closes) `fd`; with `{ dup: false }`
   * it takes ownership of `fd` and closes it on close(). A closed fd: EBADF; an
   * fd that is not a sync_file: the kernel's SYNC_IOC_FILE_INFO errno (ENOTTY).
   */
  static fromFd(fd: number, opts?: { dup?: boolean }): SyncFile {
    if (typeof fd !== 'number') throw invalidArgType('fd', 'of type number', fd);
    if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw outOfRange('fd', 'a non-negative 32-bit integer', fd);
    const dup = opts?.dup ?? true;
    if (typeof dup !== 'boolean') throw invalidArgType('opts.dup', 'of type boolean', dup);
    return new SyncFile(kCreate, kcheck(nb.ksfFromFd(fd, dup)), 'kernel');
  }

  /**
   * SYNC_IOC_MERGE: a new sync_file with the fences of both (one per context,
   * the later of each). Both must have the same backend (else EINVAL).
   */
  static merge(name: string, a: SyncFile, b: SyncFile): SyncFile {
    checkName(name, 'name');
    if (!(a instanceof SyncFile)) throw invalidArgType('a', 'an instance of SyncFile', a);
    if (!(b instanceof SyncFile)) throw invalidArgType('b', 'an instance of SyncFile', b);
    if (a.backend !== b.backend) {
      throw new DmaBufError('EINVAL', `cannot merge a ${a.backend} sync_file with a ${b.backend} one`, 'SYNC_IOC_MERGE');
    }
    if (a.backend === 'kernel') return new SyncFile(kCreate, kcheck(nb.ksfMerge(name, a.handle, b.handle)), 'kernel');
    const h = check(nb.sfMerge(name, a.handle, b.handle), 'SYNC_IOC_MERGE', 'merge failed');
    return new SyncFile(kCreate, h, 'emulated');
  }

  /** @internal The native handle; EBADF once closed. */
  get handle(): External {
    if (!this.#h) throw new DmaBufError('EBADF', 'sync_file is closed');
    return this.#h;
  }

  /** The kernel fd (valid until close()); -1 for an emulated sync_file. */
  get fd(): number {
    const h = this.handle;
    return this.backend === 'kernel' ? nb.ksfFd(h) : -1;
  }

  /**
   * The sync_file's fence. Emulated: the fence it holds. Kernel: a core Fence
   * bridged from the fd (kernel_fence, owning a dup), which signals with the
   * kernel's error and timestamp -- usable in emulated containers and waitAny.
   * The same Fence object on every read; close() disposes it.
   */
  get fence(): Fence {
    const h = this.handle;
    if (!this.#fence) {
      const fh = this.backend === 'kernel' ? kcheck(nb.ksfFence(h)) : nb.sfFence(h);
      this.#fence = adoptFence(fh);
    }
    return this.#fence;
  }

  /** SYNC_IOC_FILE_INFO: the name, status and every leaf fence. */
  info(): SyncFileInfo {
    const h = this.handle;
    if (this.backend === 'kernel') return kcheck(nb.ksfInfo(h));
    return check(nb.sfInfo(h), 'SYNC_IOC_FILE_INFO', 'cannot read sync_file info');
  }

  /** 1 signalled, 0 active, < 0 signalled with that errno. */
  get status(): number {
    return this.info().status;
  }

  /**
   * Whether the sync_file polls readable (signalled, with or without error).
   * Like poll(2) on the fd, the first call enables signalling on the fence.
   */
  isSignaled(): boolean {
    const h = this.handle;
    if (this.backend === 'kernel') return kcheck(nb.ksfIsSignaled(h));
    const r = nb.sfPoll(h); // arms the callback, as poll(2) on the fd does
    drain();
    return r;
  }

  /**
   * SYNC_IOC_SET_DEADLINE: a CLOCK_MONOTONIC deadline hint in ns (Linux 6.4+
   * for kernel sync_files; older kernels: ENOTTY).
   */
  setDeadline(deadlineNs: bigint | number): void {
    const ns = toU64('deadlineNs', deadlineNs);
    const h = this.handle;
    if (this.backend === 'kernel') kcheck(nb.ksfSetDeadline(h, ns));
    else check(nb.sfSetDeadline(h, ns), 'SYNC_IOC_SET_DEADLINE', 'cannot set the deadline');
  }

  /**
   * Resolves true once signalled (also with an error: read `status`), false on
   * timeout; rejects on abort or close(). Kernel fds are watched with uv_poll
   * on Node's loop: the loop keeps running while the wait is pending.
   */
  wait(opts?: WaitOptions): Promise<boolean> {
    try {
      const h = this.handle;
      if (this.backend === 'emulated') {
        // The emulated sync_file is readable exactly when its fence signals.
        return this.fence.wait(opts);
      }
      const { timeoutMs, signal } = checkWait(opts);
      if (signal?.aborted) return Promise.reject(abortError(signal.reason));
      if (kcheck(nb.ksfIsSignaled(h))) return Promise.resolve(true);
      if (timeoutMs === 0) return Promise.resolve(false);
      return new Promise<boolean>((resolve, reject) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const onAbort = (): void => {
          finish();
          reject(abortError(signal?.reason));
        };
        const finish = (): void => {
          this.#waiters.delete(w);
          if (timer) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if (this.#waiters.size === 0) this.#stopPoll();
        };
        const w: PollWaiter = {
          done: (revents) => {
            finish();
            if (revents === -9) reject(new DmaBufError('EBADF', 'sync_file was closed while waiting'));
            else if (revents < 0) reject(new DmaBufError(revents, 'uv_poll failed on the sync_file fd', 'uv_poll'));
            else resolve(true);
          },
        };
        this.#waiters.add(w);
        try {
          this.#startPoll();
        } catch (e) {
          this.#waiters.delete(w);
          reject(e);
          return;
        }
        if (timeoutMs !== Infinity) {
          timer = setTimeout(() => {
            finish();
            resolve(false);
          }, Math.min(timeoutMs, 0x7fffffff));
        }
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #startPoll(): void {
    if (this.#poll) return;
    this.#poll = kcheck(
      nb.ksfPoll(this.handle, (revents) => {
        this.#poll = null; // the native side closed it before calling us
        for (const w of [...this.#waiters]) w.done(revents);
      }),
    );
  }

  #stopPoll(): void {
    if (!this.#poll) return;
    nb.ksfPollCancel(this.#poll);
    this.#poll = null;
  }

  /** Closes the sync_file (the fd for the kernel backend); pending waits reject with EBADF. Idempotent. */
  close(): void {
    const h = this.#h;
    if (!h) return;
    for (const w of [...this.#waiters]) w.done(-9);
    this.#stopPoll();
    this.#h = null;
    this.#fence?.dispose();
    this.#fence = null;
    if (this.backend === 'kernel') nb.ksfClose(h);
    else nb.sfDispose(h);
  }

  dispose(): void {
    this.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** @internal Wraps a native sync_file handle (e.g. from a dma-buf's EXPORT_SYNC_FILE), adopting it. */
export function wrapSyncFile(h: External, backend: SyncBackend): SyncFile {
  return new SyncFile(kCreate, h, backend);
}

export interface SwSyncTimelineOptions {
  /** 'emulated' (default), 'kernel' (debugfs sw_sync; ENOENT/EACCES if absent), or 'auto'. */
  backend?: 'emulated' | 'kernel' | 'auto';
  /** Emulated only: the timeline name (default: the thread's name, as the kernel uses the opener's comm). */
  name?: string;
  /** Kernel only: the debugfs path (default /sys/kernel/debug/sync/sw_sync). */
  path?: string;
}

const SW_SYNC_PATH = '/sys/kernel/debug/sync/sw_sync';

/**
 * A sw_sync timeline: points created at a value signal, in order, when inc()
 * brings the timeline there; close() signals the rest with ENOENT.
 */
export class SwSyncTimeline implements Disposable {
  #h: External | null;
  readonly backend: SyncBackend;

  constructor(opts?: SwSyncTimelineOptions) {
    if (opts !== undefined && (typeof opts !== 'object' || opts === null)) {
      throw invalidArgType('opts', 'of type object', opts);
    }
    const want = opts?.backend ?? 'emulated';
    if (want !== 'emulated' && want !== 'kernel' && want !== 'auto') {
      throw invalidArgType('opts.backend', "one of 'emulated', 'kernel', 'auto'", want);
    }
    if (opts?.name !== undefined) checkName(opts.name, 'opts.name');
    if (opts?.path !== undefined) checkName(opts.path, 'opts.path');
    if (want !== 'emulated') {
      const r = nb.kswOpen(opts?.path ?? SW_SYNC_PATH);
      if (!isKErr(r)) {
        this.#h = r;
        this.backend = 'kernel';
        return;
      }
      if (want === 'kernel') {
        const [errno, op, msg] = r;
        const path = opts?.path ?? SW_SYNC_PATH;
        // The native message names the path already (with why, when it knows).
        const text = !msg ? `${path}: cannot open` : msg.startsWith(path) ? msg : `${path}: ${msg}`;
        throw new DmaBufError(errno, text, op);
      }
    }
    this.#h = check(nb.tlCreate(opts?.name), 'sw_sync_debugfs_open', 'cannot create a timeline');
    this.backend = 'emulated';
  }

  /** Whether a kernel timeline can be opened (debugfs sw_sync present and accessible). */
  static kernelAvailable(): boolean {
    return nb.kswAvailable();
  }

  /** @internal */
  get handle(): External {
    if (!this.#h) throw new DmaBufError('EBADF', 'sw_sync timeline is closed');
    return this.#h;
  }

  /**
   * SW_SYNC_IOC_CREATE_FENCE: a sync_file for the point `value` (u32, wrap-around
   * order). Already signalled if the timeline is there; a live point with the
   * same value is reused. `name` is passed on and ignored, as by the kernel.
   */
  createFence(value: number, name = ''): SyncFile {
    const v = toU32('value', value);
    checkName(name, 'name');
    const h = this.handle;
    if (this.backend === 'kernel') return new SyncFile(kCreate, kcheck(nb.kswCreateFence(h, v, name)), 'kernel');
    return new SyncFile(kCreate, check(nb.tlCreateFence(h, v, name), 'SW_SYNC_IOC_CREATE_FENCE', 'cannot create a fence'), 'emulated');
  }

  /** SW_SYNC_IOC_INC: advance by `n` (default 1), signalling reached points in order. */
  inc(n = 1): void {
    const v = toU32('n', n);
    const h = this.handle;
    if (this.backend === 'kernel') kcheck(nb.kswInc(h, v));
    else check(nb.tlInc(h, v), 'SW_SYNC_IOC_INC', 'cannot advance the timeline');
    drain(); // callbacks of points signalled on this thread
  }

  /**
   * SW_SYNC_GET_DEADLINE: the earliest deadline set (SYNC_IOC_SET_DEADLINE) on
   * the point of `f`. No deadline: ENOENT; not a point of a sw_sync timeline: EINVAL.
   */
  getDeadline(f: SyncFile): bigint {
    if (!(f instanceof SyncFile)) throw invalidArgType('f', 'an instance of SyncFile', f);
    const h = this.handle;
    if (f.backend !== this.backend) {
      throw new DmaBufError('EINVAL', `a ${f.backend} sync_file is not a point of a ${this.backend} timeline`, 'SW_SYNC_GET_DEADLINE');
    }
    if (this.backend === 'kernel') return kcheck(nb.kswGetDeadline(h, f.handle));
    return check(nb.tlGetDeadline(h, f.handle), 'SW_SYNC_GET_DEADLINE', 'cannot read the deadline');
  }

  /** Closes the timeline: points still pending signal with ENOENT. Idempotent. */
  close(): void {
    const h = this.#h;
    if (!h) return;
    this.#h = null;
    if (this.backend === 'kernel') nb.kswClose(h);
    else nb.tlClose(h);
    drain();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
