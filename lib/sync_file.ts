// sync_file and sw_sync, both backends behind one class each:
//  - 'emulated': the in-process objects of native/core (drivers/dma-buf/sync_file.c
//    and sw_sync.c as userspace objects); any Fence can become a SyncFile.
//  - 'kernel': real fds (SYNC_IOC_* / SW_SYNC_IOC_* ioctls on /dev and debugfs).
//    `fence` bridges the fd into a core Fence (kernel_fence, signalled by the
//    kernel backend's epoll watcher), so it can go into emulated containers.
// The addon picks the backend from the handle (native/addon/sync_file_obj.h);
// this file never branches on it. The one choice here is how to wait: the
// addon names an fd to watch with uv_poll on Node's loop (a kernel
// sync_file's), or none, and the wait goes through the fence.
import { adoptFence } from './containers';
import { DmaBufError } from './errors';
import { type Fence, handleOf, isFence } from './fence';
import { abortError, invalidArgType, outOfRange, toU64 } from './internal/args';
import { binding as nb, type External } from './internal/binding';
import { drain } from './internal/dispatch';
import { parseWaitOptions, waitTimer, type WaitOptions } from './internal/wait_options';

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

function checkName(name: unknown, arg: string): string {
  if (typeof name !== 'string') throw invalidArgType(arg, 'of type string', name);
  return name;
}

function toU32(name: string, v: unknown): number {
  if (typeof v !== 'number') throw invalidArgType(name, 'of type number', v);
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw outOfRange(name, '>= 0 and <= 4294967295', v);
  return v;
}

const kCreate = Symbol('dmabuf.syncFile');

/** A JS waiter on a kernel sync_file's shared uv_poll. */
interface PollWaiter {
  done(revents: number, err?: Error): void;
}

// Brand checks: handles are read from the private slot of a real instance;
// anything else is a TypeError (ERR_INVALID_ARG_TYPE), never an EBADF.
/** @internal Whether `v` is a real SyncFile. */
export let isSyncFile!: (v: unknown) => v is SyncFile;
let sfSlot!: (v: unknown) => External | null;
/** @internal A SyncFile's native handle: TypeError for anything else, EBADF once closed. */
export function syncFileHandle(v: unknown): External {
  const h = sfSlot(v);
  if (!h) throw new DmaBufError('EBADF', 'sync_file is closed');
  return h;
}
let isTimeline!: (v: unknown) => v is SwSyncTimeline;
let tlSlot!: (v: unknown) => External | null;
function timelineHandle(v: unknown): External {
  const h = tlSlot(v);
  if (!h) throw new DmaBufError('EBADF', 'sw_sync timeline is closed');
  return h;
}

/**
 * A sync_file: a fence (or merged fences) as a handle. Emulated ones are made
 * with `SyncFile.create(fence)` or `SwSyncTimeline` ('emulated'); kernel ones
 * with `SyncFile.fromFd(fd)` or a kernel `SwSyncTimeline`.
 */
export class SyncFile implements Disposable {
  #h: External | null;
  #backend: SyncBackend;
  #fence: Fence | null = null;
  // With an fd: one uv_poll per sync_file (libuv allows one poll handle
  // per fd), shared by every pending wait().
  #poll: External | null = null;
  #waiters = new Set<PollWaiter>();
  static {
    isSyncFile = (v): v is SyncFile => typeof v === 'object' && v !== null && #h in v;
    sfSlot = (v) => {
      if (!isSyncFile(v)) throw invalidArgType('this', 'an instance of SyncFile', v);
      return v.#h;
    };
  }

  /** @internal */
  constructor(key: typeof kCreate, h: External) {
    if (key !== kCreate) throw new TypeError('Illegal constructor: use SyncFile.create() or SyncFile.fromFd()');
    this.#h = h;
    this.#backend = nb.sfBackend(h);
  }

  /** 'emulated' (an in-process sync_file) or 'kernel' (a real fd). */
  get backend(): SyncBackend {
    sfSlot(this); // a TypeError for a wrong receiver
    return this.#backend;
  }

  /** A new (emulated) sync_file holding a reference to `f` (sync_file_create). */
  static create(f: Fence): SyncFile {
    if (!isFence(f)) throw invalidArgType('f', 'an instance of Fence', f);
    return new SyncFile(kCreate, nb.sfCreate(handleOf(f)));
  }

  /**
   * Wraps a sync_file fd: a real one (backend 'kernel'), or an emulated
   * SyncFile's `fd` received from another process (backend 'emulated', its
   * fence signalled when the exporter's is). With `{ dup: true }` (the default) the SyncFile
   * owns a dup and the caller keeps (and closes) `fd`; with `{ dup: false }`
   * it takes ownership of `fd` and closes it on close(). A closed fd: EBADF; an
   * fd that is not a sync_file: the kernel's SYNC_IOC_FILE_INFO errno (ENOTTY).
   */
  static fromFd(fd: number, opts?: { dup?: boolean }): SyncFile {
    if (typeof fd !== 'number') throw invalidArgType('fd', 'of type number', fd);
    if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw outOfRange('fd', 'a non-negative 32-bit integer', fd);
    const dup = opts?.dup ?? true;
    if (typeof dup !== 'boolean') throw invalidArgType('opts.dup', 'of type boolean', dup);
    return new SyncFile(kCreate, nb.sfFromFd(fd, dup));
  }

  /**
   * SYNC_IOC_MERGE: a new sync_file with the fences of both (one per context,
   * the later of each). Both must have the same backend (else EINVAL).
   */
  static merge(name: string, a: SyncFile, b: SyncFile): SyncFile {
    checkName(name, 'name');
    if (!isSyncFile(a)) throw invalidArgType('a', 'an instance of SyncFile', a);
    if (!isSyncFile(b)) throw invalidArgType('b', 'an instance of SyncFile', b);
    return new SyncFile(kCreate, nb.sfMerge(name, syncFileHandle(a), syncFileHandle(b)));
  }

  /**
   * The fd (valid until close()). A kernel sync_file's own; for an emulated
   * one, an fd made on first read that poll/epoll/libuv report readable once
   * the fence signals, here or in any process it is sent to (FdChannel), where
   * `SyncFile.fromFd()` makes it a SyncFile again (status and error included).
   * See docs/internals.md, "Emulated objects as fds".
   */
  get fd(): number {
    return nb.sfFd(syncFileHandle(this));
  }

  /**
   * The sync_file's fence. Emulated: the fence it holds. Kernel: a core Fence
   * bridged from the fd (kernel_fence, owning a dup), which signals with the
   * kernel's error and timestamp -- usable in emulated containers and waitAny.
   * The same Fence object on every read; close() disposes it.
   */
  get fence(): Fence {
    const h = syncFileHandle(this);
    if (!this.#fence) {
      this.#fence = adoptFence(nb.sfFence(h));
    }
    return this.#fence;
  }

  /** SYNC_IOC_FILE_INFO: the name, status and every leaf fence. */
  info(): SyncFileInfo {
    return nb.sfInfo(syncFileHandle(this));
  }

  /** 1 signalled, 0 active, < 0 signalled with that errno. */
  get status(): number {
    return SyncFile.prototype.info.call(this).status;
  }

  /**
   * Whether the sync_file polls readable (signalled, with or without error).
   * Like poll(2) on the fd, the first call enables signalling on the fence.
   */
  isSignaled(): boolean {
    const r = nb.sfIsSignaled(syncFileHandle(this)); // arms the callback, as poll(2) on the fd does
    drain();
    return r;
  }

  /**
   * SYNC_IOC_SET_DEADLINE: a CLOCK_MONOTONIC deadline hint in ns (Linux 6.4+
   * for kernel sync_files; older kernels: ENOTTY).
   */
  setDeadline(deadlineNs: bigint | number): void {
    const h = syncFileHandle(this);
    nb.sfSetDeadline(h, toU64('deadlineNs', deadlineNs));
  }

  /**
   * Resolves true once signalled (also with an error: read `status`), false on
   * timeout; rejects on abort or close(). A sync_file with an fd is watched
   * with uv_poll on Node's loop (never blocking it); one without, through its
   * fence.
   */
  wait(opts?: WaitOptions): Promise<boolean> {
    try {
      const h = syncFileHandle(this);
      if (nb.sfWaitFd(h) < 0) {
        // Emulated: readable exactly when its fence signals.
        return this.fence.wait(opts);
      }
      const { timeoutMs, signal } = parseWaitOptions(opts);
      if (signal?.aborted) return Promise.reject(abortError(signal.reason));
      if (nb.sfIsSignaled(h)) return Promise.resolve(true);
      if (timeoutMs === 0) return Promise.resolve(false);
      return new Promise<boolean>((resolve, reject) => {
        let timer: { cancel(): void } | undefined;
        const onAbort = (): void => {
          finish();
          reject(abortError(signal?.reason));
        };
        const finish = (): void => {
          this.#waiters.delete(w);
          timer?.cancel();
          signal?.removeEventListener('abort', onAbort);
          if (this.#waiters.size === 0) this.#stopPoll();
        };
        const w: PollWaiter = {
          done: (revents, err) => {
            finish();
            if (err) reject(err);
            else resolve(true);
          },
        };
        this.#waiters.add(w);
        try {
          this.#startPoll(h);
        } catch (e) {
          this.#waiters.delete(w);
          reject(e);
          return;
        }
        if (timeoutMs !== Infinity) {
          timer = waitTimer(timeoutMs, () => {
            finish();
            resolve(false);
          });
        }
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #startPoll(h: External): void {
    if (this.#poll) return;
    this.#poll = nb.sfPoll(h, (revents, err) => {
      this.#poll = null; // the native side closed it before calling us
      for (const w of [...this.#waiters]) w.done(revents, err);
    });
  }

  #stopPoll(): void {
    if (!this.#poll) return;
    nb.sfPollCancel(this.#poll);
    this.#poll = null;
  }

  /** Closes the sync_file (and its fd); pending waits reject with EBADF. Idempotent. */
  close(): void {
    const h = sfSlot(this);
    if (!h) return;
    const closed = new DmaBufError('EBADF', 'sync_file was closed while waiting');
    for (const w of [...this.#waiters]) w.done(-9, closed);
    this.#stopPoll();
    this.#h = null;
    this.#fence?.dispose();
    this.#fence = null;
    nb.sfClose(h);
  }

  dispose(): void {
    SyncFile.prototype.close.call(this);
  }

  [Symbol.dispose](): void {
    SyncFile.prototype.close.call(this);
  }
}

/** @internal Wraps a native sync_file handle (e.g. from a dma-buf's EXPORT_SYNC_FILE), adopting it. */
export function wrapSyncFile(h: External): SyncFile {
  return new SyncFile(kCreate, h);
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
// The handle SwSyncTimeline.importHandle() hands to the constructor.
let adoptingTimeline: External | null = null;

/**
 * A sw_sync timeline: points created at a value signal, in order, when inc()
 * brings the timeline there; close() signals the rest with ENOENT.
 */
export class SwSyncTimeline implements Disposable {
  #h: External | null;
  #backend: SyncBackend;
  static {
    isTimeline = (v): v is SwSyncTimeline => typeof v === 'object' && v !== null && #h in v;
    tlSlot = (v) => {
      if (!isTimeline(v)) throw invalidArgType('this', 'an instance of SwSyncTimeline', v);
      return v.#h;
    };
  }

  constructor(opts?: SwSyncTimelineOptions) {
    if (adoptingTimeline) {
      // importHandle(): the handle was made by the addon just now.
      this.#h = adoptingTimeline;
      adoptingTimeline = null;
      this.#backend = nb.tlBackend(this.#h);
      return;
    }
    if (opts !== undefined && (typeof opts !== 'object' || opts === null)) {
      throw invalidArgType('opts', 'of type object', opts);
    }
    const want = opts?.backend ?? 'emulated';
    if (want !== 'emulated' && want !== 'kernel' && want !== 'auto') {
      throw invalidArgType('opts.backend', "one of 'emulated', 'kernel', 'auto'", want);
    }
    if (opts?.name !== undefined) checkName(opts.name, 'opts.name');
    if (opts?.path !== undefined) checkName(opts.path, 'opts.path');
    this.#h = nb.tlCreate(want, opts?.name, opts?.path ?? SW_SYNC_PATH);
    this.#backend = nb.tlBackend(this.#h);
  }

  /** 'emulated' (in-process) or 'kernel' (the debugfs sw_sync file). */
  get backend(): SyncBackend {
    tlSlot(this); // a TypeError for a wrong receiver
    return this.#backend;
  }

  /**
   * Adopts a timeline exported by exportHandle() (once), typically in another
   * worker: both objects are the same timeline, as two fds of one file are.
   * EINVAL for an unknown handle.
   */
  static importHandle(h: bigint): SwSyncTimeline {
    if (typeof h !== 'bigint') throw invalidArgType('h', 'of type bigint', h);
    adoptingTimeline = nb.tlImport(toU64('h', h));
    return new SwSyncTimeline();
  }

  /**
   * A new reference another worker can adopt with SwSyncTimeline.importHandle()
   * (once), so producer and consumer threads share a timeline. Closing one
   * holder drops its reference; the timeline's release (pending points signal
   * with ENOENT) comes with the last, as the kernel's with the last fd.
   */
  exportHandle(): bigint {
    return nb.tlExport(timelineHandle(this));
  }

  /** Whether a kernel timeline can be opened (debugfs sw_sync present and accessible). */
  static kernelAvailable(): boolean {
    return nb.tlKernelAvailable();
  }

  /** Whether close() has run. */
  get closed(): boolean {
    return tlSlot(this) === null;
  }

  /**
   * SW_SYNC_IOC_CREATE_FENCE: a sync_file for the point `value` (u32, wrap-around
   * order). Already signalled if the timeline is there; a live point with the
   * same value is reused. `name` is passed on and ignored, as by the kernel.
   */
  createFence(value: number, name = ''): SyncFile {
    const h = timelineHandle(this);
    const v = toU32('value', value);
    checkName(name, 'name');
    return new SyncFile(kCreate, nb.tlCreateFence(h, v, name));
  }

  /** SW_SYNC_IOC_INC: advance by `n` (default 1), signalling reached points in order. */
  inc(n = 1): void {
    const h = timelineHandle(this);
    nb.tlInc(h, toU32('n', n));
    drain(); // callbacks of points signalled on this thread
  }

  /**
   * SW_SYNC_GET_DEADLINE: the earliest deadline set (SYNC_IOC_SET_DEADLINE) on
   * the point of `f`. No deadline: ENOENT; not a point of a sw_sync timeline: EINVAL.
   */
  getDeadline(f: SyncFile): bigint {
    const h = timelineHandle(this);
    if (!isSyncFile(f)) throw invalidArgType('f', 'an instance of SyncFile', f);
    return nb.tlGetDeadline(h, syncFileHandle(f));
  }

  /**
   * Closes the timeline: points still pending signal with ENOENT (once no
   * other worker holds it: see exportHandle()). Idempotent.
   */
  close(): void {
    const h = tlSlot(this);
    if (!h) return;
    this.#h = null;
    nb.tlClose(h);
    drain();
  }

  /** Same as close(). */
  dispose(): void {
    SwSyncTimeline.prototype.close.call(this);
  }

  [Symbol.dispose](): void {
    SwSyncTimeline.prototype.close.call(this);
  }
}
